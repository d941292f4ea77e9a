/*
 * test_metrics.c - unit test for the metrics registry and its Prometheus
 * text renderer (agent/metrics.c).
 *
 * Rendering is checked against whole expected texts, so any change in
 * spacing, ordering, escaping or number format shows up as a diff. When
 * promtool (Debian package prometheus) is installed, a rendered sample is
 * also fed to `promtool check metrics`, which exits 1 on a syntax error
 * and 3 on mere lint findings (names without units and the like).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "metrics.h"

/* A label value list literal: V("GET", "/x"). */
#define V(...) ((const char *const[]){__VA_ARGS__})

static const double latency_bounds[] = {
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10};
#define NLAT (sizeof(latency_bounds) / sizeof(latency_bounds[0]))

/* Render r into a fresh string, compare with want, free. */
static void check_render(struct metric_registry *r, const char *want, int line)
{
	struct strbuf sb = STRBUF_INIT;

	metric_render_prometheus(r, &sb);
	CHECK(!sb.oom);
	if (!sb.buf || strcmp(sb.buf, want) != 0) {
		check_failed++;
		fprintf(stderr,
			"%s:%d: render mismatch\n--- got\n%s--- want\n%s---\n",
			__FILE__, line, sb.buf ? sb.buf : "(null)", want);
	} else {
		check_passed++;
	}
	sb_free(&sb);
}
#define CHECK_RENDER(r, want) check_render(r, want, __LINE__)

static void test_counter(void)
{
	static const char *const labels[] = {"method", "path", NULL};
	struct metric_registry *r = metric_registry_new(0);
	struct metric_family *f, *plain;
	struct metric_series *s;

	f = metric_family_new(r, "ks_http_requests_total", METRIC_COUNTER,
			      "HTTP requests.\nBy \\method \"quoted\".", labels,
			      NULL, 0);
	CHECK(f != NULL);
	metric_add(f, V("GET", "/a\"b\\c\nd"), 3);
	metric_add(f, V("POST", ""), 0.5);
	metric_add(f, V("GET", "/a\"b\\c\nd"), 2);
	metric_add(f, V("PUT", NULL), -1); /* creates, but -1 ignored */
	s = metric_series_get(f, V("POST", ""));
	metric_counter_add(s, 0.25);
	metric_counter_add(s, 0.0 / 0.0); /* NaN ignored */
	plain = metric_family_new(r, "ks_up_total", METRIC_COUNTER, "Plain.",
				  NULL, NULL, 0);
	metric_add(plain, NULL, 1);
	/* Counters read from the kernel as running totals are set. */
	metric_set(plain, NULL, 41);
	metric_add(plain, NULL, 1);
	CHECK_RENDER(r,
		     "# HELP ks_http_requests_total HTTP requests.\\nBy "
		     "\\\\method \"quoted\".\n"
		     "# TYPE ks_http_requests_total counter\n"
		     "ks_http_requests_total{method=\"GET\",path=\"/"
		     "a\\\"b\\\\c\\nd\"} 5\n"
		     "ks_http_requests_total{method=\"POST\",path=\"\"} 0.75\n"
		     "ks_http_requests_total{method=\"PUT\",path=\"\"} 0\n"
		     "# HELP ks_up_total Plain.\n"
		     "# TYPE ks_up_total counter\n"
		     "ks_up_total 42\n");
	metric_registry_free(r);
}

static void test_gauge(void)
{
	static const char *const labels[] = {"k", NULL};
	struct metric_registry *r = metric_registry_new(0);
	struct metric_family *f, *one;

	one = metric_family_new(r, "ks_ratio", METRIC_GAUGE, "A ratio.", NULL,
				NULL, 0);
	metric_set(one, NULL, 0.1 + 0.2);
	CHECK(metric_family_new(r, "ks_empty", METRIC_GAUGE, NULL, NULL, NULL,
				0) != NULL);
	f = metric_family_new(r, "ks_values", METRIC_GAUGE, "Odd values.",
			      labels, NULL, 0);
	metric_set(f, V("nan"), 0.0 / 0.0);
	metric_set(f, V("pinf"), 1.0 / 0.0);
	metric_set(f, V("ninf"), -1.0 / 0.0);
	metric_set(f, V("neg"), -2);
	metric_set(f, V("half"), 123456.5);
	metric_set(f, V("small"), 1e-05);
	metric_set(f, V("tenth"), 0.1);
	metric_set(f, V("bigint"), 4.5e15);
	metric_set(f, V("huge"), 1e21);
	metric_set(f, V("tiny"), 1e-300);
	metric_set(f, V("zero"), -0.0);
	metric_add(f, V("neg"), 0.5); /* gauges can be added to */
	CHECK_RENDER(r, "# HELP ks_ratio A ratio.\n"
			"# TYPE ks_ratio gauge\n"
			"ks_ratio 0.30000000000000004\n"
			"# HELP ks_empty \n"
			"# TYPE ks_empty gauge\n"
			"# HELP ks_values Odd values.\n"
			"# TYPE ks_values gauge\n"
			"ks_values{k=\"nan\"} NaN\n"
			"ks_values{k=\"pinf\"} +Inf\n"
			"ks_values{k=\"ninf\"} -Inf\n"
			"ks_values{k=\"neg\"} -1.5\n"
			"ks_values{k=\"half\"} 123456.5\n"
			"ks_values{k=\"small\"} 1e-05\n"
			"ks_values{k=\"tenth\"} 0.1\n"
			"ks_values{k=\"bigint\"} 4500000000000000\n"
			"ks_values{k=\"huge\"} 1e+21\n"
			"ks_values{k=\"tiny\"} 1e-300\n"
			"ks_values{k=\"zero\"} 0\n");
	metric_registry_free(r);
}

static void test_histogram(void)
{
	static const char *const labels[] = {"op", NULL};
	static const double one_bound[] = {1};
	uint64_t counts[NLAT + 1];
	struct metric_registry *r = metric_registry_new(0);
	struct metric_family *f, *bare;
	struct metric_series *k;
	unsigned i;

	f = metric_family_new(r, "ks_latency_seconds", METRIC_HISTOGRAM,
			      "Latency.", labels, latency_bounds, NLAT);
	CHECK(f != NULL);
	/* Binary fractions, so the sum is exact: 15.7578125. */
	metric_observe(f, V("read"), 0);
	metric_observe(f, V("read"), 0.0078125);
	metric_observe(f, V("read"), 0.25);
	metric_observe(f, V("read"), 0.5);
	metric_observe(f, V("read"), 1);
	metric_observe(f, V("read"), 3);
	metric_observe(f, V("read"), 11);
	k = metric_series_get(f, V("kernel"));
	for (i = 0; i <= NLAT; i++)
		counts[i] = i + 1;
	metric_hist_add_buckets(k, counts, 42.5);
	metric_hist_add_buckets(k, counts, 42.5);
	bare = metric_family_new(r, "ks_bare", METRIC_HISTOGRAM, "No bounds.",
				 NULL, NULL, 0);
	metric_observe(bare, NULL, 2);
	CHECK(metric_family_new(r, "ks_unused", METRIC_HISTOGRAM, "Unused.",
				NULL, one_bound, 1) != NULL);
	CHECK_RENDER(
	    r, "# HELP ks_latency_seconds Latency.\n"
	       "# TYPE ks_latency_seconds histogram\n"
	       "ks_latency_seconds_bucket{op=\"read\",le=\"0.005\"} 1\n"
	       "ks_latency_seconds_bucket{op=\"read\",le=\"0.01\"} 2\n"
	       "ks_latency_seconds_bucket{op=\"read\",le=\"0.025\"} 2\n"
	       "ks_latency_seconds_bucket{op=\"read\",le=\"0.05\"} 2\n"
	       "ks_latency_seconds_bucket{op=\"read\",le=\"0.075\"} 2\n"
	       "ks_latency_seconds_bucket{op=\"read\",le=\"0.1\"} 2\n"
	       "ks_latency_seconds_bucket{op=\"read\",le=\"0.25\"} 3\n"
	       "ks_latency_seconds_bucket{op=\"read\",le=\"0.5\"} 4\n"
	       "ks_latency_seconds_bucket{op=\"read\",le=\"0.75\"} 4\n"
	       "ks_latency_seconds_bucket{op=\"read\",le=\"1\"} 5\n"
	       "ks_latency_seconds_bucket{op=\"read\",le=\"2.5\"} 5\n"
	       "ks_latency_seconds_bucket{op=\"read\",le=\"5\"} 6\n"
	       "ks_latency_seconds_bucket{op=\"read\",le=\"7.5\"} 6\n"
	       "ks_latency_seconds_bucket{op=\"read\",le=\"10\"} 6\n"
	       "ks_latency_seconds_bucket{op=\"read\",le=\"+Inf\"} 7\n"
	       "ks_latency_seconds_sum{op=\"read\"} 15.7578125\n"
	       "ks_latency_seconds_count{op=\"read\"} 7\n"
	       "ks_latency_seconds_bucket{op=\"kernel\",le=\"0.005\"} 2\n"
	       "ks_latency_seconds_bucket{op=\"kernel\",le=\"0.01\"} 6\n"
	       "ks_latency_seconds_bucket{op=\"kernel\",le=\"0.025\"} 12\n"
	       "ks_latency_seconds_bucket{op=\"kernel\",le=\"0.05\"} 20\n"
	       "ks_latency_seconds_bucket{op=\"kernel\",le=\"0.075\"} 30\n"
	       "ks_latency_seconds_bucket{op=\"kernel\",le=\"0.1\"} 42\n"
	       "ks_latency_seconds_bucket{op=\"kernel\",le=\"0.25\"} 56\n"
	       "ks_latency_seconds_bucket{op=\"kernel\",le=\"0.5\"} 72\n"
	       "ks_latency_seconds_bucket{op=\"kernel\",le=\"0.75\"} 90\n"
	       "ks_latency_seconds_bucket{op=\"kernel\",le=\"1\"} 110\n"
	       "ks_latency_seconds_bucket{op=\"kernel\",le=\"2.5\"} 132\n"
	       "ks_latency_seconds_bucket{op=\"kernel\",le=\"5\"} 156\n"
	       "ks_latency_seconds_bucket{op=\"kernel\",le=\"7.5\"} 182\n"
	       "ks_latency_seconds_bucket{op=\"kernel\",le=\"10\"} 210\n"
	       "ks_latency_seconds_bucket{op=\"kernel\",le=\"+Inf\"} 240\n"
	       "ks_latency_seconds_sum{op=\"kernel\"} 85\n"
	       "ks_latency_seconds_count{op=\"kernel\"} 240\n"
	       "# HELP ks_bare No bounds.\n"
	       "# TYPE ks_bare histogram\n"
	       "ks_bare_bucket{le=\"+Inf\"} 1\n"
	       "ks_bare_sum 2\n"
	       "ks_bare_count 1\n"
	       "# HELP ks_unused Unused.\n"
	       "# TYPE ks_unused histogram\n");
	metric_registry_free(r);
}

/* le semantics: a value equal to a bound lands in that bound's bucket. */
static void test_histogram_edges(void)
{
	struct metric_registry *r = metric_registry_new(0);
	struct metric_family *f;
	struct metric_series *s;
	const uint64_t *b;
	unsigned n, i;

	f = metric_family_new(r, "ks_edges", METRIC_HISTOGRAM, "Edges.", NULL,
			      latency_bounds, NLAT);
	s = metric_series_get(f, NULL);
	for (i = 0; i < NLAT; i++)
		metric_hist_observe(s, latency_bounds[i]);
	metric_hist_observe(s, -5);	   /* first bucket */
	metric_hist_observe(s, 10.000001); /* +Inf */
	metric_hist_observe(s, 1.0 / 0.0); /* +Inf */
	metric_hist_observe(s, 0.0 / 0.0); /* NaN: +Inf */
	metric_counter_add(s, 1);	   /* wrong kind: ignored */
	metric_gauge_set(s, 1);
	b = metric_series_buckets(s);
	CHECK_INT(b[0], 2);
	for (i = 1; i < NLAT; i++)
		CHECK_INT(b[i], 1);
	CHECK_INT(b[NLAT], 3);
	CHECK_INT(metric_series_count(s), NLAT + 4);
	CHECK(metric_series_sum(s) != metric_series_sum(s)); /* NaN */
	CHECK(metric_series_value(s) == 0);
	CHECK(metric_family_bounds(f, &n) != latency_bounds); /* copied */
	CHECK_INT(n, NLAT);
	metric_registry_free(r);
}

static void test_overflow(void)
{
	static const char *const peer[] = {"peer", NULL};
	static const double bounds[] = {1};
	struct metric_registry *r = metric_registry_new(3);
	struct metric_family *f, *h;
	struct metric_series *ov;

	f = metric_family_new(r, "ks_conn_total", METRIC_COUNTER,
			      "Connections.", peer, NULL, 0);
	h = metric_family_new(r, "ks_rtt_seconds", METRIC_HISTOGRAM, "RTT.",
			      peer, bounds, 1);
	metric_add(f, V("a"), 1);
	metric_add(f, V("b"), 1);
	metric_add(f, V("c"), 1);
	CHECK_INT(metric_registry_overflows(r), 0);
	ov = metric_series_get(f, V("d"));
	CHECK(ov != NULL && metric_series_is_overflow(ov));
	CHECK_STR(metric_series_label_value(ov, 0), "");
	CHECK_INT(metric_registry_overflows(r), 1);
	metric_counter_add(ov, 1);
	metric_add(f, V("e"), 1);
	CHECK_INT(metric_registry_overflows(r), 2);
	CHECK(metric_series_get(f, V("f")) == ov);
	CHECK_INT(metric_registry_overflows(r), 3);
	metric_add(f, V("a"), 1); /* existing: no overflow */
	CHECK(!metric_series_is_overflow(metric_series_get(f, V("c"))));
	CHECK_INT(metric_registry_overflows(r), 3);

	metric_observe(h, V("x"), 0.5);
	metric_observe(h, V("y"), 0.5);
	metric_observe(h, V("z"), 0.5);
	metric_observe(h, V("w"), 2);
	CHECK_INT(metric_registry_overflows(r), 4);
	CHECK_RENDER(
	    r,
	    "# HELP ks_conn_total Connections.\n"
	    "# TYPE ks_conn_total counter\n"
	    "ks_conn_total{peer=\"a\"} 2\n"
	    "ks_conn_total{peer=\"b\"} 1\n"
	    "ks_conn_total{peer=\"c\"} 1\n"
	    "ks_conn_total{otel_metric_overflow=\"true\"} 2\n"
	    "# HELP ks_rtt_seconds RTT.\n"
	    "# TYPE ks_rtt_seconds histogram\n"
	    "ks_rtt_seconds_bucket{peer=\"x\",le=\"1\"} 1\n"
	    "ks_rtt_seconds_bucket{peer=\"x\",le=\"+Inf\"} 1\n"
	    "ks_rtt_seconds_sum{peer=\"x\"} 0.5\n"
	    "ks_rtt_seconds_count{peer=\"x\"} 1\n"
	    "ks_rtt_seconds_bucket{peer=\"y\",le=\"1\"} 1\n"
	    "ks_rtt_seconds_bucket{peer=\"y\",le=\"+Inf\"} 1\n"
	    "ks_rtt_seconds_sum{peer=\"y\"} 0.5\n"
	    "ks_rtt_seconds_count{peer=\"y\"} 1\n"
	    "ks_rtt_seconds_bucket{peer=\"z\",le=\"1\"} 1\n"
	    "ks_rtt_seconds_bucket{peer=\"z\",le=\"+Inf\"} 1\n"
	    "ks_rtt_seconds_sum{peer=\"z\"} 0.5\n"
	    "ks_rtt_seconds_count{peer=\"z\"} 1\n"
	    "ks_rtt_seconds_bucket{otel_metric_overflow=\"true\",le=\"1\"} 0\n"
	    "ks_rtt_seconds_bucket{otel_metric_overflow=\"true\",le=\"+Inf\"} "
	    "1\n"
	    "ks_rtt_seconds_sum{otel_metric_overflow=\"true\"} 2\n"
	    "ks_rtt_seconds_count{otel_metric_overflow=\"true\"} 1\n");
	metric_registry_free(r);
}

static void test_reset(void)
{
	static const char *const peer[] = {"peer", NULL};
	struct metric_registry *r = metric_registry_new(2);
	struct metric_family *f, *other;

	f = metric_family_new(r, "ks_queue", METRIC_GAUGE, "Queue.", peer, NULL,
			      0);
	other = metric_family_new(r, "ks_other", METRIC_GAUGE, "Other.", NULL,
				  NULL, 0);
	metric_set(f, V("a"), 1);
	metric_set(f, V("b"), 2);
	metric_set(f, V("c"), 3); /* overflow */
	metric_set(other, NULL, 7);
	metric_family_reset(f);
	CHECK_RENDER(r, "# HELP ks_queue Queue.\n"
			"# TYPE ks_queue gauge\n"
			"# HELP ks_other Other.\n"
			"# TYPE ks_other gauge\n"
			"ks_other 7\n");
	/* The cap counts again from zero; old values are gone. */
	metric_set(f, V("c"), 30);
	metric_set(f, V("b"), 20);
	metric_set(f, V("a"), 10); /* overflow */
	CHECK_INT(metric_registry_overflows(r), 2);
	metric_family_reset(f);
	metric_family_reset(f); /* twice is fine */
	metric_set(f, V("c"), 5);
	CHECK_RENDER(r, "# HELP ks_queue Queue.\n"
			"# TYPE ks_queue gauge\n"
			"ks_queue{peer=\"c\"} 5\n"
			"# HELP ks_other Other.\n"
			"# TYPE ks_other gauge\n"
			"ks_other 7\n");
	metric_registry_free(r);
}

static void test_invalid(void)
{
	static const char *const ok[] = {"a", "b_2", NULL};
	static const char *const reserved[] = {"__name", NULL};
	static const char *const digit[] = {"1x", NULL};
	static const char *const dash[] = {"a-b", NULL};
	static const char *const empty[] = {"", NULL};
	static const char *const dup[] = {"a", "b", "a", NULL};
	static const char *const le[] = {"le", NULL};
	static const char *const ovf[] = {"otel_metric_overflow", NULL};
	static const double unsorted[] = {1, 0.5};
	static const double equal[] = {1, 1};
	static const double inf[] = {1, 1.0 / 0.0};
	static const double nan[] = {0.0 / 0.0};
	struct metric_registry *r = metric_registry_new(0);
	const enum metric_kind C = METRIC_COUNTER, H = METRIC_HISTOGRAM;

	CHECK(!metric_family_new(r, NULL, C, "", NULL, NULL, 0));
	CHECK(!metric_family_new(r, "", C, "", NULL, NULL, 0));
	CHECK(!metric_family_new(r, "1abc", C, "", NULL, NULL, 0));
	CHECK(!metric_family_new(r, "a-b", C, "", NULL, NULL, 0));
	CHECK(!metric_family_new(r, "a b", C, "", NULL, NULL, 0));
	CHECK(!metric_family_new(r, "a\"b", C, "", NULL, NULL, 0));
	CHECK(!metric_family_new(r, "ok", C, "", reserved, NULL, 0));
	CHECK(!metric_family_new(r, "ok", C, "", digit, NULL, 0));
	CHECK(!metric_family_new(r, "ok", C, "", dash, NULL, 0));
	CHECK(!metric_family_new(r, "ok", C, "", empty, NULL, 0));
	CHECK(!metric_family_new(r, "ok", C, "", dup, NULL, 0));
	CHECK(!metric_family_new(r, "ok", C, "", ovf, NULL, 0));
	CHECK(!metric_family_new(r, "ok", H, "", le, NULL, 0));
	CHECK(!metric_family_new(r, "ok", H, "", NULL, unsorted, 2));
	CHECK(!metric_family_new(r, "ok", H, "", NULL, equal, 2));
	CHECK(!metric_family_new(r, "ok", H, "", NULL, inf, 2));
	CHECK(!metric_family_new(r, "ok", H, "", NULL, nan, 1));
	CHECK(!metric_family_new(r, "ok", H, "", NULL, NULL, 3));
	CHECK(!metric_family_new(r, "ok", (enum metric_kind)7, "", NULL, NULL,
				 0));
	/* Valid ones: colons in names, "le" on a non-histogram. */
	CHECK(metric_family_new(r, "ns:ok_total", C, "", ok, NULL, 0) != NULL);
	CHECK(metric_family_new(r, "_x", C, "", le, NULL, 0) != NULL);
	CHECK(!metric_family_new(r, "ns:ok_total", METRIC_GAUGE, "", NULL, NULL,
				 0));
	metric_registry_free(r);
}

struct visit {
	struct strbuf sb;
	int n;
};

static void visit_series(const struct metric_family *f,
			 const struct metric_series *s, void *arg)
{
	struct visit *v = arg;
	unsigned i;

	v->n++;
	sb_puts(&v->sb, metric_family_name(f));
	for (i = 0; i < metric_family_nlabels(f); i++)
		sb_printf(&v->sb, " %s=%s", metric_family_label_name(f, i),
			  metric_series_label_value(s, i));
	if (metric_series_is_overflow(s))
		sb_puts(&v->sb, " overflow");
	if (metric_family_kind(f) == METRIC_HISTOGRAM)
		sb_printf(&v->sb, " count=%llu",
			  (unsigned long long)metric_series_count(s));
	else
		sb_printf(&v->sb, " v=%g", metric_series_value(s));
	sb_putc(&v->sb, ';');
}

static void test_foreach(void)
{
	static const char *const kl[] = {"k", "l", NULL};
	static const double b[] = {1, 2};
	struct metric_registry *r = metric_registry_new(2);
	struct metric_family *c, *g, *h;
	struct visit v = {STRBUF_INIT, 0};

	c = metric_family_new(r, "c_total", METRIC_COUNTER, "C.", kl, NULL, 0);
	g = metric_family_new(r, "g", METRIC_GAUGE, "G.", NULL, NULL, 0);
	CHECK(metric_family_new(r, "empty", METRIC_GAUGE, "E.", NULL, NULL, 0));
	h = metric_family_new(r, "h", METRIC_HISTOGRAM, "H.", NULL, b, 2);
	/* Length-prefixed keys: ("ab","c") and ("a","bc") are distinct. */
	metric_add(c, V("ab", "c"), 1);
	metric_add(c, V("a", "bc"), 2);
	metric_add(c, V("a", "b"), 3);
	metric_set(g, NULL, 4);
	metric_observe(h, NULL, 1.5);
	metric_observe(h, NULL, 5);
	metric_registry_foreach(r, visit_series, &v);
	CHECK_INT(v.n, 5);
	CHECK_STR(v.sb.buf, "c_total k=ab l=c v=1;c_total k=a l=bc v=2;"
			    "c_total k= l= overflow v=3;g v=4;h count=2;");
	CHECK_STR(metric_family_help(h), "H.");
	CHECK(metric_family_label_name(c, 2) == NULL);
	CHECK(metric_series_buckets(metric_series_get(g, NULL)) == NULL);
	CHECK_INT(metric_series_buckets(metric_series_get(h, NULL))[1], 1);
	CHECK_INT(metric_series_buckets(metric_series_get(h, NULL))[2], 1);
	sb_free(&v.sb);
	metric_registry_free(r);
}

/* Enough series to grow the hash table several times. */
static void test_many_series(void)
{
	static const char *const labels[] = {"id", NULL};
	struct metric_registry *r = metric_registry_new(0);
	struct metric_family *f;
	struct metric_series *first[1500];
	char name[32];
	int i, same = 1;

	f = metric_family_new(r, "ks_many", METRIC_GAUGE, "Many.", labels, NULL,
			      0);
	for (i = 0; i < 1500; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		first[i] = metric_series_get(f, V(name));
		metric_gauge_set(first[i], i);
	}
	for (i = 0; i < 1500; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		if (metric_series_get(f, V(name)) != first[i] ||
		    metric_series_value(first[i]) != i)
			same = 0;
	}
	CHECK(same);
	CHECK_INT(metric_registry_overflows(r), 0);
	metric_registry_free(r);
}

/* A copy of s in a heap block of its exact size: ASan sees over-reads. */
static char *exact_copy(const char *s)
{
	size_t n = strlen(s) + 1;
	char *b = malloc(n);

	memcpy(b, s, n);
	return b;
}

/*
 * Values a byte apart, at every position of every length a word compare
 * splits differently, are different series; the same bytes from another
 * buffer are the same one. So is a byte moved from one value to the next.
 */
static void test_values_byte_apart(void)
{
	static const char *const labels[] = {"a", "b", NULL};
	struct metric_registry *r = metric_registry_new(0);
	struct metric_family *f;
	struct metric_series *s[25][25];
	char v[32], *c;
	unsigned n, j, k;
	int same = 1, distinct = 1;

	f = metric_family_new(r, "ks_bytes", METRIC_COUNTER, "Bytes.", labels,
			      NULL, 0);
	for (n = 0; n < 25; n++)
		for (j = 0; j <= n && j < 25; j++) {
			memset(v, 'x', n);
			v[n] = '\0';
			if (j < n)
				v[j] = 'y';
			c = exact_copy(v);
			s[n][j] = metric_series_get(f, V(c, "z"));
			free(c);
		}
	for (n = 0; n < 25; n++)
		for (j = 0; j <= n && j < 25; j++) {
			memset(v, 'x', n);
			v[n] = '\0';
			if (j < n)
				v[j] = 'y';
			c = exact_copy(v);
			if (metric_series_get(f, V(c, "z")) != s[n][j])
				same = 0;
			free(c);
			for (k = 0; k < j; k++)
				if (s[n][k] == s[n][j])
					distinct = 0;
		}
	CHECK(same);
	CHECK(distinct);
	CHECK_INT(metric_registry_overflows(r), 0);
	CHECK(metric_series_get(f, V("ab", "c")) !=
	      metric_series_get(f, V("a", "bc")));
	CHECK(metric_series_get(f, V("", "abcdefghij")) !=
	      metric_series_get(f, V("abcdefghij", "")));
	metric_registry_free(r);
}

/*
 * The series found last is tried first: a value that is a prefix of its
 * value, or longer, is another series; a refused label set right after
 * it still goes to the overflow series, and back.
 */
static void test_recent_series(void)
{
	static const char *const labels[] = {"a", "b", NULL};
	struct metric_registry *r = metric_registry_new(4);
	struct metric_family *f;
	struct metric_series *abc, *over;
	char *c;

	f = metric_family_new(r, "ks_recent", METRIC_COUNTER, "Recent.", labels,
			      NULL, 0);
	abc = metric_series_get(f, V("abc", "z"));
	CHECK(metric_series_get(f, V("ab", "z")) != abc);
	CHECK(metric_series_get(f, V("abc", "z")) == abc);
	c = exact_copy("abcd");
	CHECK(metric_series_get(f, V(c, "z")) != abc);
	free(c);
	CHECK(metric_series_get(f, V("abc", "z")) == abc);
	CHECK(metric_series_get(f, V("abc", "")) != abc);
	CHECK(metric_series_get(f, V("abc", "z")) == abc);
	CHECK(metric_series_get(f, V("abc", NULL)) != abc);
	CHECK_INT(metric_registry_overflows(r), 0);
	over = metric_series_get(f, V("x", "y"));
	CHECK(metric_series_is_overflow(over));
	CHECK(metric_series_get(f, V("abc", "z")) == abc);
	CHECK(metric_series_get(f, V("x", "y")) == over);
	CHECK(metric_series_get(f, V("", "")) == over);
	CHECK_INT(metric_registry_overflows(r), 3);
	metric_registry_free(r);
}

struct adder {
	struct metric_family *f;
	int id;
};

static void *add_many(void *arg)
{
	struct adder *a = arg;
	char id[8];
	int i;

	snprintf(id, sizeof(id), "t%d", a->id);
	for (i = 0; i < 20000; i++) {
		metric_add(a->f, V("shared"), 1);
		metric_add(a->f, V(id), 1);
	}
	return NULL;
}

static void count_total(const struct metric_family *f,
			const struct metric_series *s, void *arg)
{
	*(double *)arg += metric_series_value(s);
}

static void test_threads(void)
{
	static const char *const labels[] = {"who", NULL};
	struct metric_registry *r = metric_registry_new(0);
	struct adder a[4];
	pthread_t t[4];
	struct strbuf sb = STRBUF_INIT;
	double total = 0;
	int i;

	for (i = 0; i < 4; i++) {
		a[i].f =
		    i ? a[0].f
		      : metric_family_new(r, "ks_ops_total", METRIC_COUNTER,
					  "Ops.", labels, NULL, 0);
		a[i].id = i;
		pthread_create(&t[i], NULL, add_many, &a[i]);
	}
	for (i = 0; i < 20; i++) {
		sb_reset(&sb);
		metric_render_prometheus(r, &sb);
	}
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	metric_registry_foreach(r, count_total, &total);
	CHECK(total == 160000);
	CHECK(metric_series_value(metric_series_get(a[0].f, V("shared"))) ==
	      80000);
	sb_free(&sb);
	metric_registry_free(r);
}

/* promtool's exit status for text: 0 clean, 3 lint only, 1 syntax error. */
static int promtool_status(const char *text)
{
	char path[] = "/tmp/ks_metrics_XXXXXX";
	char cmd[128];
	int fd, st;
	size_t len = strlen(text);

	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	if (write(fd, text, len) != (ssize_t)len) {
		close(fd);
		unlink(path);
		return -1;
	}
	close(fd);
	snprintf(cmd, sizeof(cmd),
		 "/usr/bin/promtool check metrics < %s > /dev/null 2>&1", path);
	st = system(cmd);
	unlink(path);
	return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_promtool(void)
{
	static const char *const labels[] = {"method", "path", NULL};
	struct metric_registry *r;
	struct metric_family *c, *h;
	struct strbuf sb = STRBUF_INIT;
	int st;

	if (access("/usr/bin/promtool", X_OK) != 0) {
		printf("promtool not installed, skipping its check\n");
		return;
	}
	r = metric_registry_new(2);
	c = metric_family_new(r, "ks_requests_total", METRIC_COUNTER,
			      "Requests \\ with\nnewline.", labels, NULL, 0);
	metric_add(c, V("GET", "/a\"b\\c\nd"), 1);
	metric_add(c, V("POST", ""), 0.5);
	metric_add(c, V("PUT", "/"), 1); /* overflow */
	h = metric_family_new(r, "ks_latency_seconds", METRIC_HISTOGRAM,
			      "Latency.", labels, latency_bounds, NLAT);
	metric_observe(h, V("GET", "/"), 0.3);
	metric_observe(h, V("GET", "/x"), 1e-9);
	metric_observe(h, V("GET", "/y"), 1e9); /* overflow */
	metric_family_new(r, "ks_empty", METRIC_GAUGE, NULL, NULL, NULL, 0);
	metric_set(
	    metric_family_new(r, "ks_odd", METRIC_GAUGE, "Odd.", NULL, NULL, 0),
	    NULL, -1.0 / 0.0);
	metric_render_prometheus(r, &sb);
	st = promtool_status(sb.buf);
	if (st != 0 && st != 3)
		fprintf(stderr, "promtool rejected:\n%s", sb.buf);
	CHECK(st == 0 || st == 3);
	/* And it does catch a broken text: an unterminated label value. */
	CHECK_INT(promtool_status("# TYPE x gauge\nx{a=\"b} 1\n"), 1);
	sb_free(&sb);
	metric_registry_free(r);
}

/* The hot-path formatting helpers of strbuf.h. */
static void test_small_format(void)
{
	static const unsigned long long nums[] = { 0, 7, 10, 65535, 1000000,
						   18446744073709551615ULL };
	char buf[24], want[24], small[4];
	size_t i, n;

	for (i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		n = ks_utoa(buf, nums[i]);
		snprintf(want, sizeof(want), "%llu", nums[i]);
		CHECK_STR(buf, want);
		CHECK(n == strlen(want));
	}
	ks_strlcpy(small, "GET", sizeof(small));
	CHECK_STR(small, "GET");
	ks_strlcpy(small, "DELETE", sizeof(small));
	CHECK_STR(small, "DEL");
	ks_strlcpy(small, "", sizeof(small));
	CHECK_STR(small, "");
}

int main(void)
{
	test_small_format();
	test_counter();
	test_gauge();
	test_histogram();
	test_histogram_edges();
	test_overflow();
	test_reset();
	test_invalid();
	test_foreach();
	test_many_series();
	test_values_byte_apart();
	test_recent_series();
	test_threads();
	test_promtool();
	return check_summary();
}
