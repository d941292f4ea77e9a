/*
 * test_queries.c - unit test for the slow-query ring and the per-statement
 * totals (agent/queries.c).
 *
 * The threshold (at least it is slow), the ring (newest first, oldest
 * overwritten), the totals (calls, errors, total, mean, max; by total
 * time; limit), the statement cap (what is not tracked is counted), and
 * the JSON both render: every output is run through a small strict JSON
 * checker (grammar, escapes, UTF-8) and strings are decoded back to what
 * went in.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "log.h"
#include "queries.h"
#include "strbuf.h"

/* ---- a strict JSON checker ---------------------------------------------- */

static const char *j_value(const char *p, int depth);

static const char *j_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/* One UTF-8 sequence (shortest form, no surrogates); NULL if invalid. */
static const char *j_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned n, i;
	uint32_t c;

	if (p[0] < 0x80)
		return s + 1;
	if ((p[0] & 0xe0) == 0xc0)
		n = 1, c = p[0] & 0x1f;
	else if ((p[0] & 0xf0) == 0xe0)
		n = 2, c = p[0] & 0x0f;
	else if ((p[0] & 0xf8) == 0xf0)
		n = 3, c = p[0] & 0x07;
	else
		return NULL;
	for (i = 1; i <= n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return NULL;
		c = c << 6 | (p[i] & 0x3f);
	}
	if ((n == 1 && c < 0x80) || (n == 2 && c < 0x800) ||
	    (n == 3 && c < 0x10000) || c > 0x10ffff ||
	    (c >= 0xd800 && c <= 0xdfff))
		return NULL;
	return s + n + 1;
}

/* A string; decoded (ASCII escapes only) into out if out is not NULL. */
static const char *j_string(const char *p, char *out, size_t outsz)
{
	size_t n = 0;
	int i, v;
	char c;

	if (*p++ != '"')
		return NULL;
	for (;;) {
		if ((unsigned char)*p < 0x20)
			return NULL; /* raw control byte, or the end */
		if (*p == '"')
			break;
		if (*p == '\\') {
			p++;
			switch (*p) {
			case '"':
				c = '"';
				break;
			case '\\':
				c = '\\';
				break;
			case '/':
				c = '/';
				break;
			case 'b':
				c = '\b';
				break;
			case 'f':
				c = '\f';
				break;
			case 'n':
				c = '\n';
				break;
			case 'r':
				c = '\r';
				break;
			case 't':
				c = '\t';
				break;
			case 'u':
				for (v = 0, i = 1; i <= 4; i++) {
					if (ks_hexval(p[i]) < 0)
						return NULL;
					v = v * 16 + ks_hexval(p[i]);
				}
				if (v >= 0x80)
					return NULL; /* not needed here */
				c = (char)v;
				p += 4;
				break;
			default:
				return NULL;
			}
			p++;
			if (out && n + 1 < outsz)
				out[n++] = c;
			continue;
		}
		{
			const char *q = j_utf8(p);

			if (!q)
				return NULL;
			while (p < q) {
				if (out && n + 1 < outsz)
					out[n++] = *p;
				p++;
			}
		}
	}
	if (out)
		out[n] = '\0';
	return p + 1;
}

static const char *j_number(const char *p)
{
	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (*p >= '0' && *p <= '9')
			p++;
	else
		return NULL;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return NULL;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (*p < '0' || *p > '9')
			return NULL;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	return p;
}

static const char *j_members(const char *p, char close, int depth)
{
	p = j_ws(p + 1);
	if (*p == close)
		return p + 1;
	for (;;) {
		if (close == '}') {
			p = j_string(p, NULL, 0);
			if (!p)
				return NULL;
			p = j_ws(p);
			if (*p++ != ':')
				return NULL;
		}
		p = j_value(p, depth + 1);
		if (!p)
			return NULL;
		p = j_ws(p);
		if (*p == close)
			return p + 1;
		if (*p++ != ',')
			return NULL;
	}
}

static const char *j_value(const char *p, int depth)
{
	if (depth > 32)
		return NULL;
	p = j_ws(p);
	switch (*p) {
	case '{':
		return j_members(p, '}', depth);
	case '[':
		return j_members(p, ']', depth);
	case '"':
		return j_string(p, NULL, 0);
	case 't':
		return strncmp(p, "true", 4) ? NULL : p + 4;
	case 'f':
		return strncmp(p, "false", 5) ? NULL : p + 5;
	case 'n':
		return strncmp(p, "null", 4) ? NULL : p + 4;
	default:
		return j_number(p);
	}
}

/* The whole text is one JSON value (and a final newline). */
static int json_valid(const char *text)
{
	const char *end = text ? j_value(text, 0) : NULL;

	return end && *j_ws(end) == '\0';
}

/* The decoded values of every "key":"string" in text, in order. */
static int json_strings(const char *text, const char *key, char out[][512],
			int max)
{
	char pat[64];
	const char *p = text;
	int n = 0;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	while (n < max && (p = strstr(p, pat))) {
		p += strlen(pat);
		if (!j_string(p, out[n], sizeof(out[n])))
			return -1;
		n++;
	}
	return n;
}

static char *render_slow(struct queries *q)
{
	struct strbuf sb = STRBUF_INIT;

	queries_render_slow(q, &sb);
	CHECK(!sb.oom);
	return sb_detach(&sb, NULL);
}

static char *render_top(struct queries *q, unsigned limit)
{
	struct strbuf sb = STRBUF_INIT;

	queries_render_top(q, &sb, limit);
	CHECK(!sb.oom);
	return sb_detach(&sb, NULL);
}

static void add(struct queries *q, const char *service, const char *text,
		const char *err, double secs, int want_slow)
{
	struct query_sample s = {
	    .service = service,
	    .system = "postgresql",
	    .text = text,
	    .error = err,
	    .seconds = secs,
	    .unix_ns = 1700000000123456789ULL,
	};

	CHECK_INT(queries_add(q, &s), want_slow);
}

#define CHECK_HAS(text, s)                                                     \
	do {                                                                   \
		if ((text) && strstr(text, s)) {                               \
			check_passed++;                                        \
		} else {                                                       \
			check_failed++;                                        \
			fprintf(stderr, "%s:%d: %s lacks %s\n", __FILE__,      \
				__LINE__, text ? text : "(null)", s);          \
		}                                                              \
	} while (0)

/* ---- cases --------------------------------------------------------------- */

static void test_checker(void)
{
	static const struct {
		const char *text;
		int valid;
	} cases[] = {
	    {"{}", 1},
	    {"{\"a\":[1,-2.5e3,\"x\\\"y\",true,null,{}]}\n", 1},
	    {"{\"a\":1,}", 0},
	    {"{\"a\" 1}", 0},
	    {"{\"a\":\"\x01\"}", 0},
	    {"{\"a\":\"\\x\"}", 0},
	    {"{\"a\":\"\xc3\xa9\"}", 1},
	    {"{\"a\":\"\xc3\"}", 0},
	    {"{\"a\":01}", 0},
	    {"[1,2", 0},
	    {"{} {}", 0},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK_INT(json_valid(cases[i].text), cases[i].valid);
}

static void test_threshold_and_ring(void)
{
	struct queries *q = queries_new(0.050, 4, 100);
	char got[8][512], *j;
	int n;

	CHECK(q != NULL);
	if (!q)
		return;
	j = render_slow(q);
	CHECK_STR(j, "{\"threshold_ms\":50.000,\"slow_queries\":[]}\n");
	CHECK(json_valid(j));
	free(j);

	add(q, "svc", "SELECT fast", "", 0.049, 0);
	add(q, "svc", "SELECT edge", "", 0.050, 1); /* at least: slow */
	add(q, "svc", "SELECT ?", "", 0.0, 0);
	j = render_slow(q);
	CHECK(json_valid(j));
	n = json_strings(j, "statement", got, 8);
	CHECK_INT(n, 1);
	CHECK_STR(got[0], "SELECT edge");
	CHECK_HAS(j, "\"duration_ms\":50.000");
	CHECK_HAS(j, "\"end_unix_ms\":1700000000123");
	CHECK_HAS(j, "\"service_name\":\"svc\"");
	CHECK_HAS(j, "\"db_system_name\":\"postgresql\"");
	CHECK_HAS(j, "\"error_type\":\"\"");
	free(j);

	/* Wrap around: six more slow ones in a ring of four. */
	add(q, "svc", "s1", "", 0.1, 1);
	add(q, "svc", "s2", "42P01", 0.2, 1);
	add(q, "svc", "s3", "", 0.3, 1);
	add(q, "svc", "s4", "", 0.4, 1);
	j = render_slow(q);
	n = json_strings(j, "statement", got, 8);
	CHECK_INT(n, 4);
	if (n == 4) {
		CHECK_STR(got[0], "s4");
		CHECK_STR(got[1], "s3");
		CHECK_STR(got[2], "s2");
		CHECK_STR(got[3], "s1");
	}
	CHECK(json_strings(j, "error_type", got, 8) == 4 &&
	      strcmp(got[2], "42P01") == 0);
	free(j);
	add(q, "svc", "s5", "", 0.5, 1);
	add(q, "svc", "s6", "", 0.6, 1);
	j = render_slow(q);
	CHECK(json_valid(j));
	n = json_strings(j, "statement", got, 8);
	CHECK_INT(n, 4);
	if (n == 4) {
		CHECK_STR(got[0], "s6");
		CHECK_STR(got[1], "s5");
		CHECK_STR(got[2], "s4");
		CHECK_STR(got[3], "s3");
	}
	free(j);
	/* Many laps later, still the newest four in order. */
	{
		char t[16];
		int i;

		for (i = 0; i < 103; i++) {
			snprintf(t, sizeof(t), "lap%d", i);
			add(q, "svc", t, "", 1, 1);
		}
		j = render_slow(q);
		n = json_strings(j, "statement", got, 8);
		CHECK(n == 4 && strcmp(got[0], "lap102") == 0 &&
		      strcmp(got[3], "lap99") == 0);
		free(j);
	}
	queries_free(q);

	/* A ring of one (0 means 1). */
	q = queries_new(0, 0, 0);
	add(q, "svc", "a", NULL, 0, 1); /* threshold 0: everything */
	add(q, "svc", "b", NULL, 0, 1);
	j = render_slow(q);
	CHECK(json_valid(j));
	n = json_strings(j, "statement", got, 8);
	CHECK(n == 1 && strcmp(got[0], "b") == 0);
	free(j);
	queries_free(q);
	queries_free(NULL);
}

static void test_totals(void)
{
	struct queries *q = queries_new(10, 4, 100);
	char got[8][512], *j;
	int n;

	if (!q)
		return;
	add(q, "a", "SELECT * FROM t WHERE id = ?", "", 0.010, 0);
	add(q, "a", "SELECT * FROM t WHERE id = ?", "23505", 0.200, 0);
	add(q, "a", "SELECT * FROM t WHERE id = ?", NULL, 0.030, 0);
	add(q, "b", "SELECT * FROM t WHERE id = ?", "", 0.500, 0);
	add(q, "a", "INSERT INTO t VALUES (?)", "", 0.001, 0);
	j = render_top(q, 100);
	CHECK(json_valid(j));
	/* By total time: b's (500 ms), a's SELECT (240), a's INSERT (1). */
	n = json_strings(j, "service_name", got, 8);
	CHECK_INT(n, 3);
	if (n == 3) {
		CHECK_STR(got[0], "b");
		CHECK_STR(got[1], "a");
		CHECK_STR(got[2], "a");
	}
	n = json_strings(j, "statement", got, 8);
	CHECK(n == 3 && strcmp(got[2], "INSERT INTO t VALUES (?)") == 0);
	CHECK_HAS(j, "\"calls\":3,\"errors\":1,\"total_ms\":240.000,"
		     "\"mean_ms\":80.000,\"max_ms\":200.000}");
	CHECK_HAS(j, "\"calls\":1,\"errors\":0,\"total_ms\":500.000,"
		     "\"mean_ms\":500.000,\"max_ms\":500.000}");
	CHECK_HAS(j, "\"untracked\":0}");
	free(j);
	/* The limit. */
	j = render_top(q, 1);
	CHECK(json_valid(j));
	CHECK_INT(json_strings(j, "statement", got, 8), 1);
	free(j);
	j = render_top(q, 0);
	CHECK_STR(j, "{\"statements\":[],\"untracked\":0}\n");
	free(j);
	/* Nothing was slow. */
	j = render_slow(q);
	CHECK_STR(j, "{\"threshold_ms\":10000.000,\"slow_queries\":[]}\n");
	free(j);
	queries_free(q);
}

static void test_cap(void)
{
	struct queries *q = queries_new(10, 4, 3);
	char got[8][512], *j;

	if (!q)
		return;
	add(q, "s", "one", "", 0.1, 0);
	add(q, "s", "two", "", 0.2, 0);
	add(q, "s", "three", "", 0.3, 0);
	add(q, "s", "four", "", 0.4, 0); /* table full: not tracked */
	add(q, "s", "four", "", 0.4, 0);
	add(q, "t", "one", "", 0.4, 0); /* another service's: new */
	CHECK_INT(queries_dropped(q), 3);
	/* What is tracked keeps counting, exactly. */
	add(q, "s", "one", "E", 1.0, 0);
	CHECK_INT(queries_dropped(q), 3);
	j = render_top(q, 100);
	CHECK(json_valid(j));
	CHECK_INT(json_strings(j, "statement", got, 8), 3);
	CHECK_STR(got[0], "one");
	CHECK_HAS(j, "\"calls\":2,\"errors\":1,\"total_ms\":1100.000");
	CHECK(strstr(j, "four") == NULL);
	CHECK_HAS(j, "\"untracked\":3}");
	free(j);
	queries_free(q);

	/* Many statements through a larger table: every one accounted for. */
	q = queries_new(10, 4, 1000);
	{
		char t[32];
		int i;

		for (i = 0; i < 3000; i++) {
			snprintf(t, sizeof(t), "SELECT %d", i % 1500);
			add(q, "s", t, "", 0.001, 0);
		}
		CHECK_INT(queries_dropped(q), 1000); /* 500 statements x 2 */
		j = render_top(q, 5000);
		CHECK(json_valid(j));
		{
			char(*all)[512] = malloc(1100 * sizeof(*all));

			CHECK_INT(json_strings(j, "statement", all, 1100),
				  1000);
			free(all);
		}
		free(j);
	}
	queries_free(q);
}

static void test_escaping(void)
{
	static const char *const texts[] = {
	    "SELECT \"weird\"\"col\" FROM \"t\" WHERE a = ?",
	    "SELECT E'\\\\' AS b, '\\' AS c",
	    "SELECT 1\n\tFROM x\r",
	    "SELECT \x01\x1f\x7f",
	    "SELECT caf\xc3\xa9, \xe2\x82\xac, \xf0\x9f\x98\x80 FROM t",
	    "",
	};
	struct queries *q = queries_new(0, 16, 100);
	char got[8][512], *j, svc[300], err[40], text[600];
	size_t i;
	int n;

	if (!q)
		return;
	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		add(q, "sv\"c\\", texts[i], "x\"y", 0.001 * (double)(i + 1), 1);
	j = render_slow(q);
	CHECK(json_valid(j));
	n = json_strings(j, "statement", got, 8);
	CHECK_INT(n, 6);
	for (i = 0; (int)i < n; i++)
		CHECK_STR(got[i], texts[n - 1 - i]);
	CHECK(json_strings(j, "service_name", got, 8) == 6 &&
	      strcmp(got[0], "sv\"c\\") == 0);
	CHECK(json_strings(j, "error_type", got, 8) == 6 &&
	      strcmp(got[0], "x\"y") == 0);
	free(j);
	j = render_top(q, 100);
	CHECK(json_valid(j));
	n = json_strings(j, "statement", got, 8);
	CHECK_INT(n, 6);
	if (n == 6)
		for (i = 0; i < 6; i++)
			CHECK_STR(got[i], texts[5 - i]); /* by total time */
	free(j);
	queries_free(q);

	/* Fields longer than kept are cut, never inside a UTF-8 sequence. */
	q = queries_new(0, 4, 10);
	memset(svc, 'S', sizeof(svc));
	svc[sizeof(svc) - 1] = '\0';
	for (i = 0; i + 2 < sizeof(text); i += 2)
		memcpy(text + i, "\xc3\xa9", 2); /* é é é ... */
	text[i] = '\0';
	snprintf(err, sizeof(err), "%s", "ABCDEFGHIJKLMN\xc3\xa9XYZ");
	add(q, svc, text, err, 1, 1);
	/* A 3-byte character straddling the cut of the 256-byte text. */
	memset(text, 'a', sizeof(text));
	memcpy(text + 254, "\xe2\x82\xac", 3);
	text[300] = '\0';
	add(q, "s", text, "", 1, 1);
	j = render_slow(q);
	CHECK(json_valid(j));
	n = json_strings(j, "statement", got, 8);
	CHECK_INT(n, 2);
	if (n == 2) {
		CHECK_INT(strlen(got[0]), 254);
		CHECK_INT(strlen(got[1]), 254); /* 127 whole characters */
	}
	CHECK(json_strings(j, "service_name", got, 8) == 2 &&
	      strlen(got[1]) == 127);
	CHECK(json_strings(j, "error_type", got, 8) == 2 &&
	      strcmp(got[1], "ABCDEFGHIJKLMN") == 0);
	free(j);
	j = render_top(q, 10);
	CHECK(json_valid(j));
	free(j);
	queries_free(q);
}

struct worker {
	struct queries *q;
	int id;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	struct strbuf sb = STRBUF_INIT;
	char t[32];
	int i;

	for (i = 0; i < 2000; i++) {
		struct query_sample s = {"svc", "postgresql",	t,
					 "",	0.01 * (i % 7), (uint64_t)i};

		snprintf(t, sizeof(t), "SELECT %d", (i * 7 + w->id) % 300);
		queries_add(w->q, &s);
		if (i % 100 == 0) {
			sb_reset(&sb);
			queries_render_top(w->q, &sb, 50);
			queries_render_slow(w->q, &sb);
		}
	}
	sb_free(&sb);
	return NULL;
}

static void test_threads(void)
{
	struct queries *q = queries_new(0.03, 64, 200);
	struct worker w[4];
	pthread_t th[4];
	char *j;
	int i;

	for (i = 0; i < 4; i++) {
		w[i].q = q;
		w[i].id = i;
		CHECK_INT(pthread_create(&th[i], NULL, work, &w[i]), 0);
	}
	for (i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	j = render_top(q, 1000);
	CHECK(json_valid(j));
	free(j);
	j = render_slow(q);
	CHECK(json_valid(j));
	free(j);
	CHECK(queries_dropped(q) > 0);
	queries_free(q);
}

int main(void)
{
	log_level = LOG_ERROR; /* slow queries are logged at info */
	test_checker();
	test_threshold_and_ring();
	test_totals();
	test_cap();
	test_escaping();
	test_threads();
	return check_summary();
}
