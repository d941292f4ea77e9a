/*
 * test_l7_pg.c - PostgreSQL v3: startup-phase detection, the message
 * iterator over pipelined and truncated buffers (every split point), the
 * field parsers, the prepared-statement table, and garbage (random bytes,
 * TLS and HTTP on a Postgres port). Buffers are exact-size heap copies so
 * ASan catches any read past the capture.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "l7_pg.h"

static uint8_t *exact(const void *s, size_t n)
{
	uint8_t *b = malloc(n ? n : 1);

	memcpy(b, s, n);
	return b;
}

static uint64_t rng = 0xda942042e4dd58b5ULL;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

static int streq(const struct pg_str *s, const char *want)
{
	return s->len == strlen(want) && !memcmp(s->s, want, s->len);
}

/* ---- message builder --------------------------------------------------- */

struct wbuf {
	uint8_t b[2048];
	size_t n;
};

static void w_u8(struct wbuf *w, uint8_t v)
{
	w->b[w->n++] = v;
}

static void w_u16(struct wbuf *w, uint16_t v)
{
	w_u8(w, (uint8_t)(v >> 8));
	w_u8(w, (uint8_t)v);
}

static void w_u32(struct wbuf *w, uint32_t v)
{
	w_u16(w, (uint16_t)(v >> 16));
	w_u16(w, (uint16_t)v);
}

static void w_str(struct wbuf *w, const char *s)
{
	size_t n = strlen(s) + 1;

	memcpy(w->b + w->n, s, n);
	w->n += n;
}

/* Start a typed message (type 0: untyped startup); returns its length slot. */
static size_t w_begin(struct wbuf *w, char type)
{
	size_t at;

	if (type)
		w_u8(w, (uint8_t)type);
	at = w->n;
	w_u32(w, 0);
	return at;
}

static void w_end(struct wbuf *w, size_t at)
{
	uint32_t len = (uint32_t)(w->n - at);

	w->b[at] = (uint8_t)(len >> 24);
	w->b[at + 1] = (uint8_t)(len >> 16);
	w->b[at + 2] = (uint8_t)(len >> 8);
	w->b[at + 3] = (uint8_t)len;
}

#define QUERY "SELECT * FROM users WHERE id = $1 AND name = 'bob'"

/* Parse/Bind/Describe/Execute/Sync, as node-postgres pipelines them. */
static void build_extended(struct wbuf *w)
{
	size_t at;

	at = w_begin(w, 'P');
	w_str(w, "s1");
	w_str(w, QUERY);
	w_u16(w, 1);
	w_u32(w, 23);
	w_end(w, at);
	at = w_begin(w, 'B');
	w_str(w, "");
	w_str(w, "s1");
	w_u16(w, 0);
	w_u16(w, 1);
	w_u32(w, 2);
	w_u16(w, 0x3432);
	w_u16(w, 0);
	w_end(w, at);
	at = w_begin(w, 'D');
	w_u8(w, 'P');
	w_str(w, "");
	w_end(w, at);
	at = w_begin(w, 'E');
	w_str(w, "");
	w_u32(w, 0);
	w_end(w, at);
	at = w_begin(w, 'S');
	w_end(w, at);
}

/* The server's answer: 1 2 T D C Z. */
static void build_backend(struct wbuf *w)
{
	size_t at;

	at = w_begin(w, '1');
	w_end(w, at);
	at = w_begin(w, '2');
	w_end(w, at);
	at = w_begin(w, 'T');
	w_u16(w, 1);
	w_str(w, "id");
	w_u32(w, 16384);
	w_u16(w, 1);
	w_u32(w, 23);
	w_u16(w, 4);
	w_u32(w, 0xffffffff);
	w_u16(w, 0);
	w_end(w, at);
	at = w_begin(w, 'D');
	w_u16(w, 1);
	w_u32(w, 2);
	w_u16(w, 0x3432);
	w_end(w, at);
	at = w_begin(w, 'C');
	w_str(w, "SELECT 1");
	w_end(w, at);
	at = w_begin(w, 'Z');
	w_u8(w, 'I');
	w_end(w, at);
}

static void build_error(struct wbuf *w, char type)
{
	size_t at = w_begin(w, type);

	w_u8(w, 'S');
	w_str(w, type == 'E' ? "ERREUR" : "NOTICE");
	if (type == 'E') {
		w_u8(w, 'V');
		w_str(w, "ERROR");
	}
	w_u8(w, 'C');
	w_str(w, type == 'E' ? "23505" : "00000");
	w_u8(w, 'M');
	w_str(w, "duplicate key value violates unique constraint");
	w_u8(w, 'D');
	w_str(w, "Key (id)=(1) already exists.");
	w_u8(w, 0);
	w_end(w, at);
}

/* ---- startup phase ----------------------------------------------------- */

static void test_startup(void)
{
	static const uint8_t ssl[] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f};
	static const uint8_t gss[] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30};
	static const uint8_t cancel[] = {
	    0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e, 0, 0, 0x30, 0x39, 1, 2, 3, 4};
	static const uint8_t v2[] = {0, 0, 0, 8, 0, 2, 0, 0};
	static const uint8_t ssl_len9[] = {0, 0, 0, 9, 0x04, 0xd2, 0x16, 0x2f};
	static const uint8_t huge[] = {0, 0, 0x4e, 0x21, 0, 3, 0, 0};
	struct wbuf w = {.n = 0};
	size_t at, k;

	at = w_begin(&w, 0);
	w_u32(&w, PG_PROTO_V3);
	w_str(&w, "user");
	w_str(&w, "postgres");
	w_u8(&w, 0);
	w_end(&w, at);

	CHECK_INT(pg_startup_kind(w.b, w.n), PG_STARTUP_V3);
	CHECK_INT(pg_startup_kind(ssl, 8), PG_STARTUP_SSL);
	CHECK_INT(pg_startup_kind(gss, 8), PG_STARTUP_GSSENC);
	CHECK_INT(pg_startup_kind(cancel, 16), PG_STARTUP_CANCEL);
	CHECK_INT(pg_startup_kind(v2, 8), -EINVAL);
	CHECK_INT(pg_startup_kind(ssl_len9, 8), -EINVAL);
	CHECK_INT(pg_startup_kind(huge, 8), -EINVAL);
	CHECK_INT(pg_startup_kind("GET / HTTP/1.1", 14), -EINVAL);
	CHECK_INT(pg_startup_kind("Q\0\0\0\x0d", 5), -EINVAL);
	for (k = 0; k < 8; k++) {
		uint8_t *b = exact(ssl, k);

		CHECK_INT(pg_startup_kind(b, k), -EAGAIN);
		free(b);
	}
	w.b[7] = 2; /* protocol 3.2 */
	CHECK_INT(pg_startup_kind(w.b, w.n), PG_STARTUP_V3);

	CHECK_INT(pg_ssl_answer("S", 1), 'S');
	CHECK_INT(pg_ssl_answer("N", 1), 'N');
	CHECK_INT(pg_ssl_answer("G", 1), 'G');
	CHECK_INT(pg_ssl_answer("", 0), -EAGAIN);
	CHECK_INT(pg_ssl_answer("SX", 2), -EINVAL);
	CHECK_INT(pg_ssl_answer("E", 1), -EINVAL);
}

/* The iterator yields startup messages as type 0, then typed ones. */
static void test_startup_then_query(void)
{
	struct wbuf w = {.n = 0};
	struct pg_iter it;
	struct pg_msg m;
	struct pg_str sql;
	size_t at;

	at = w_begin(&w, 0);
	w_u32(&w, PG_SSL_REQUEST_CODE);
	w_end(&w, at);
	at = w_begin(&w, 'Q');
	w_str(&w, "SELECT 1");
	w_end(&w, at);
	pg_iter_init(&it, w.b, w.n, PG_FRONTEND);
	CHECK_INT(pg_iter_next(&it, &m), 1);
	CHECK_INT(m.type, 0);
	CHECK_INT(m.len, 8);
	CHECK_STR(pg_msg_name(m.type, PG_FRONTEND), "Startup");
	CHECK_INT(pg_iter_next(&it, &m), 1);
	CHECK_INT(m.type, 'Q');
	CHECK_INT(pg_parse_query(&m, &sql), 0);
	CHECK(streq(&sql, "SELECT 1"));
	CHECK_INT(pg_iter_next(&it, &m), 0);

	/* the backend never sends untyped messages */
	pg_iter_init(&it, w.b, w.n, PG_BACKEND);
	CHECK_INT(pg_iter_next(&it, &m), -EBADMSG);
}

/* ---- full exchanges ----------------------------------------------------- */

static void check_frontend_msg(const struct pg_msg *m)
{
	struct pg_str a, b;
	uint32_t rows;
	char what;

	switch (m->type) {
	case 'P':
		CHECK_INT(pg_parse_parse(m, &a, &b), 0);
		CHECK(streq(&a, "s1") && streq(&b, QUERY));
		break;
	case 'B':
		CHECK_INT(pg_parse_bind(m, &a, &b), 0);
		CHECK(streq(&a, "") && streq(&b, "s1"));
		break;
	case 'D':
		CHECK_INT(pg_parse_describe_close(m, &what, &a), 0);
		CHECK(what == 'P' && streq(&a, ""));
		break;
	case 'E':
		CHECK_INT(pg_parse_execute(m, &a, &rows), 0);
		CHECK(streq(&a, "") && rows == 0);
		break;
	case 'S':
		CHECK_INT(pg_parse_empty(m), 0);
		break;
	default:
		CHECK(!"unexpected frontend message");
	}
}

static void test_extended(void)
{
	static const char types[] = "PBDES";
	struct wbuf w = {.n = 0};
	struct pg_iter it;
	struct pg_msg m;
	size_t i = 0;
	int ret;

	build_extended(&w);
	pg_iter_init(&it, w.b, w.n, PG_FRONTEND);
	while ((ret = pg_iter_next(&it, &m)) == 1) {
		CHECK(i < 5 && m.type == types[i]);
		CHECK(!m.truncated);
		check_frontend_msg(&m);
		i++;
	}
	CHECK_INT(ret, 0);
	CHECK_INT(i, 5);
}

static void check_backend_msg(const struct pg_msg *m)
{
	struct pg_str tag;
	uint16_t n;
	char st;

	switch (m->type) {
	case '1':
	case '2':
		CHECK_INT(pg_parse_empty(m), 0);
		break;
	case 'T':
		CHECK_INT(pg_parse_row_desc(m, &n), 0);
		CHECK_INT(n, 1);
		break;
	case 'D':
		CHECK_INT(pg_parse_data_row(m, &n), 0);
		CHECK_INT(n, 1);
		break;
	case 'C':
		CHECK_INT(pg_parse_command_complete(m, &tag), 0);
		CHECK(streq(&tag, "SELECT 1"));
		CHECK_INT(pg_tag_rows(&tag), 1);
		break;
	case 'Z':
		CHECK_INT(pg_parse_ready(m, &st), 0);
		CHECK_INT(st, 'I');
		break;
	default:
		CHECK(!"unexpected backend message");
	}
}

static void test_backend(void)
{
	static const char types[] = "12TDCZ";
	struct wbuf w = {.n = 0};
	struct pg_iter it;
	struct pg_msg m;
	size_t i = 0;

	build_backend(&w);
	pg_iter_init(&it, w.b, w.n, PG_BACKEND);
	while (pg_iter_next(&it, &m) == 1) {
		CHECK(i < 6 && m.type == types[i]);
		check_backend_msg(&m);
		i++;
	}
	CHECK_INT(i, 6);
	CHECK_STR(pg_msg_name('T', PG_BACKEND), "RowDescription");
	CHECK_STR(pg_msg_name('D', PG_FRONTEND), "Describe");
	CHECK_STR(pg_msg_name('D', PG_BACKEND), "DataRow");
	CHECK_STR(pg_msg_name('x', PG_BACKEND), "?");
}

static void test_errors(void)
{
	struct wbuf w = {.n = 0};
	struct pg_iter it;
	struct pg_msg m;
	struct pg_error e;

	build_error(&w, 'E');
	build_error(&w, 'N');
	pg_iter_init(&it, w.b, w.n, PG_BACKEND);
	CHECK_INT(pg_iter_next(&it, &m), 1);
	CHECK_INT(pg_parse_error(&m, &e), 0);
	CHECK_STR(e.severity, "ERROR");
	CHECK_STR(e.sqlstate, "23505");
	CHECK(streq(&e.message,
		    "duplicate key value violates unique constraint"));
	CHECK_INT(pg_iter_next(&it, &m), 1);
	CHECK_INT(pg_parse_error(&m, &e), 0);
	CHECK_STR(e.severity, "NOTICE");
	CHECK_STR(e.sqlstate, "00000");

	/* cut inside the message text: code and severity are known */
	w.n = 0;
	build_error(&w, 'E');
	pg_iter_init(&it, w.b, 40, PG_BACKEND);
	CHECK_INT(pg_iter_next(&it, &m), 1);
	CHECK(m.truncated);
	CHECK_INT(pg_parse_error(&m, &e), -EAGAIN);
	CHECK_STR(e.sqlstate, "23505");
	CHECK(e.message.cut && e.message.len > 0);
	CHECK(!memcmp(e.message.s, "duplicate", 9));
}

static void test_auth_and_status(void)
{
	struct wbuf w = {.n = 0};
	struct pg_iter it;
	struct pg_msg m;
	struct pg_str name, value;
	uint32_t code, pid, key;
	size_t at;

	at = w_begin(&w, 'R');
	w_u32(&w, 10);
	w_str(&w, "SCRAM-SHA-256");
	w_u8(&w, 0);
	w_end(&w, at);
	at = w_begin(&w, 'R');
	w_u32(&w, 0);
	w_end(&w, at);
	at = w_begin(&w, 'S');
	w_str(&w, "server_version");
	w_str(&w, "15.4");
	w_end(&w, at);
	at = w_begin(&w, 'K');
	w_u32(&w, 4242);
	w_u32(&w, 0xdeadbeef);
	w_end(&w, at);
	pg_iter_init(&it, w.b, w.n, PG_BACKEND);
	CHECK_INT(pg_iter_next(&it, &m), 1);
	CHECK_INT(pg_parse_auth(&m, &code), 0);
	CHECK_INT(code, 10);
	CHECK_INT(pg_iter_next(&it, &m), 1);
	CHECK_INT(pg_parse_auth(&m, &code), 0);
	CHECK_INT(code, 0);
	CHECK_INT(pg_iter_next(&it, &m), 1);
	CHECK_INT(pg_parse_param_status(&m, &name, &value), 0);
	CHECK(streq(&name, "server_version") && streq(&value, "15.4"));
	CHECK_INT(pg_iter_next(&it, &m), 1);
	CHECK_INT(pg_parse_key_data(&m, &pid, &key), 0);
	CHECK_INT(pid, 4242);
	CHECK_INT(key, 0xdeadbeef);
	CHECK_INT(pg_iter_next(&it, &m), 0);
}

/* ---- malformed ------------------------------------------------------------
 */

static void test_malformed(void)
{
	static const struct {
		const char *bytes;
		size_t n;
		enum pg_dir dir;
	} bad_hdr[] = {
	    {"Q\0\0\0\x03", 5, PG_FRONTEND},	      /* length < 4 */
	    {"Z\0\0\0\x06I\0", 7, PG_BACKEND},	      /* ReadyForQuery is 5 */
	    {"S\0\0\0\x05x", 6, PG_FRONTEND},	      /* Sync has no body */
	    {"x\0\0\0\x04", 5, PG_FRONTEND},	      /* unknown type */
	    {"Q\x7f\0\0\0", 5, PG_FRONTEND},	      /* over 1 GiB */
	    {"\x16\x03\x01\x00\xf8", 5, PG_FRONTEND}, /* TLS */
	    {"GET /", 5, PG_FRONTEND},		      /* HTTP */
	    {"\0\0\0\x04", 4, PG_FRONTEND},	      /* startup length < 8 */
	};
	struct pg_iter it;
	struct pg_msg m;
	struct pg_str s;
	char st;
	size_t i;

	for (i = 0; i < sizeof(bad_hdr) / sizeof(bad_hdr[0]); i++) {
		uint8_t *b = exact(bad_hdr[i].bytes, bad_hdr[i].n);

		pg_iter_init(&it, b, bad_hdr[i].n, bad_hdr[i].dir);
		CHECK_INT(pg_iter_next(&it, &m), -EBADMSG);
		CHECK_INT(it.off, 0);
		free(b);
	}
	/* complete messages whose fields do not fit their length */
	pg_iter_init(&it,
		     "Q\0\0\0\x06"
		     "ab",
		     7, PG_FRONTEND);
	CHECK_INT(pg_iter_next(&it, &m), 1);
	CHECK_INT(pg_parse_query(&m, &s), -EBADMSG);
	pg_iter_init(&it, "Z\0\0\0\x05X", 6, PG_BACKEND);
	CHECK_INT(pg_iter_next(&it, &m), 1);
	CHECK_INT(pg_parse_ready(&m, &st), -EBADMSG);
	/* a parser asked about a message of another type or direction */
	CHECK_INT(pg_parse_query(&m, &s), -EINVAL);
	pg_iter_init(&it, "Z\0\0\0\x05I", 6, PG_FRONTEND);
	CHECK_INT(pg_iter_next(&it, &m), -EBADMSG);
}

static void test_tag_rows(void)
{
	static const struct {
		const char *tag;
		int64_t rows;
	} t[] = {
	    {"SELECT 5", 5},
	    {"INSERT 0 1", 1},
	    {"UPDATE 0", 0},
	    {"COPY 12345", 12345},
	    {"BEGIN", -1},
	    {"CREATE TABLE", -1},
	    {"", -1},
	    {"5", -1},
	    {"SELECT 99999999999999999999", -1},
	};
	struct pg_str s;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		s.s = t[i].tag;
		s.len = strlen(t[i].tag);
		s.cut = false;
		CHECK_INT(pg_tag_rows(&s), t[i].rows);
	}
	s.s = "SELECT 12";
	s.len = 8;
	s.cut = true;
	CHECK_INT(pg_tag_rows(&s), -1);
}

/* ---- every split point ----------------------------------------------------
 */

/*
 * Iterate a prefix of a stream: the messages must be the stream's own,
 * only the last may be truncated, and parsers on it report -EAGAIN, never
 * -EBADMSG.
 */
static void split_stream(const struct wbuf *w, enum pg_dir dir,
			 const char *types)
{
	size_t k;

	for (k = 0; k <= w->n; k++) {
		uint8_t *b = exact(w->b, k);
		struct pg_iter it;
		struct pg_msg m;
		struct pg_str s1, s2;
		struct pg_error e;
		size_t i = 0;
		int ret;
		char c;
		uint16_t u16;
		uint32_t u32;

		pg_iter_init(&it, b, k, dir);
		while ((ret = pg_iter_next(&it, &m)) == 1) {
			int pr = 0;

			CHECK(m.type == types[i]);
			CHECK(m.body + m.body_len <= b + k);
			if (dir == PG_FRONTEND && m.type == 'P')
				pr = pg_parse_parse(&m, &s1, &s2);
			else if (dir == PG_FRONTEND && m.type == 'B')
				pr = pg_parse_bind(&m, &s1, &s2);
			else if (dir == PG_FRONTEND && m.type == 'E')
				pr = pg_parse_execute(&m, &s1, &u32);
			else if (dir == PG_FRONTEND && m.type == 'D')
				pr = pg_parse_describe_close(&m, &c, &s1);
			else if (dir == PG_BACKEND && m.type == 'E')
				pr = pg_parse_error(&m, &e);
			else if (dir == PG_BACKEND && m.type == 'C')
				pr = pg_parse_command_complete(&m, &s1);
			else if (dir == PG_BACKEND && m.type == 'Z')
				pr = pg_parse_ready(&m, &c);
			else if (dir == PG_BACKEND && m.type == 'T')
				pr = pg_parse_row_desc(&m, &u16);
			else if (dir == PG_BACKEND && m.type == 'D')
				pr = pg_parse_data_row(&m, &u16);
			else
				pr = pg_parse_empty(&m);
			CHECK(m.truncated ? (pr == 0 || pr == -EAGAIN)
					  : pr == 0);
			CHECK(!m.truncated || it.off == k);
			i++;
		}
		CHECK_INT(ret, 0);
		free(b);
	}
}

static void test_split_points(void)
{
	struct wbuf w = {.n = 0};

	build_extended(&w);
	split_stream(&w, PG_FRONTEND, "PBDES");
	w.n = 0;
	build_backend(&w);
	build_error(&w, 'E');
	split_stream(&w, PG_BACKEND, "12TDCZE");
}

/* A truncated Parse still yields its statement name and a text prefix. */
static void test_truncated_parse(void)
{
	struct wbuf w = {.n = 0};
	struct pg_iter it;
	struct pg_msg m;
	struct pg_str stmt, sql;

	build_extended(&w);
	pg_iter_init(&it, w.b, 20, PG_FRONTEND);
	CHECK_INT(pg_iter_next(&it, &m), 1);
	CHECK(m.truncated);
	CHECK_INT(m.len, 4 + 3 + sizeof(QUERY) + 2 + 4);
	CHECK_INT(m.body_len, 15);
	CHECK_INT(pg_parse_parse(&m, &stmt, &sql), -EAGAIN);
	CHECK(streq(&stmt, "s1") && !stmt.cut);
	CHECK(sql.cut && sql.len == 12 && !memcmp(sql.s, "SELECT * FRO", 12));
	CHECK_INT(pg_iter_next(&it, &m), 0);

	/* cut inside the header: the type is known, nothing else */
	pg_iter_init(&it, w.b, 3, PG_FRONTEND);
	CHECK_INT(pg_iter_next(&it, &m), 1);
	CHECK(m.truncated && m.type == 'P' && m.len == 0 && m.body_len == 0);
	CHECK_INT(pg_parse_parse(&m, &stmt, &sql), -EAGAIN);
}

/* ---- garbage ----------------------------------------------------------------
 */

static void walk(const uint8_t *b, size_t n, enum pg_dir dir)
{
	struct pg_iter it;
	struct pg_msg m;
	struct pg_str s1, s2;
	struct pg_error e;
	size_t steps = 0;
	int ret;

	pg_iter_init(&it, b, n, dir);
	while ((ret = pg_iter_next(&it, &m)) == 1) {
		CHECK(m.body + m.body_len <= b + n);
		pg_parse_query(&m, &s1);
		pg_parse_parse(&m, &s1, &s2);
		pg_parse_bind(&m, &s1, &s2);
		pg_parse_error(&m, &e);
		pg_parse_param_status(&m, &s1, &s2);
		steps++;
		CHECK(steps <= n);
	}
	CHECK(ret == 0 || ret == -EBADMSG);
	pg_startup_kind(b, n);
}

static void test_garbage(void)
{
	static const char types[] = "PBDESQCHXpdcf12TDCZEKRSNnsIAtvGW";
	uint8_t buf[300];
	size_t i, j, n;

	for (i = 0; i < 30000; i++) {
		uint8_t *b;

		n = rnd() % sizeof(buf);
		for (j = 0; j < n; j++)
			buf[j] = (uint8_t)rnd();
		/* plausible headers reach the field parsers */
		for (j = 0; (i & 1) && j + 5 <= n; j += 5 + (rnd() % 8)) {
			buf[j] = (uint8_t)types[rnd() % (sizeof(types) - 1)];
			buf[j + 1] = buf[j + 2] = buf[j + 3] = 0;
			buf[j + 4] = (uint8_t)(4 + rnd() % 12);
		}
		b = exact(buf, n);
		walk(b, n, PG_FRONTEND);
		walk(b, n, PG_BACKEND);
		free(b);
	}
}

/* ---- prepared statements --------------------------------------------------
 */

static struct pg_str S(const char *s) {
	struct pg_str r = {s, strlen(s), false};

	return r;
}

static void
test_stmts(void)
{
	static struct pg_stmts t;
	struct pg_str name, sql;
	const struct pg_stmt *st;
	char buf[32];
	int i;

	pg_stmts_init(&t);
	name = S("s1");
	sql = S(QUERY);
	pg_stmts_put(&t, &name, &sql);
	st = pg_stmts_get(&t, &name);
	CHECK(st != NULL);
	if (st) {
		CHECK_STR(st->text,
			  "SELECT * FROM users WHERE id = $1 AND name = ?");
		CHECK(!st->cut);
	}
	/* the unnamed statement is a statement too */
	name = S("");
	sql = S("DELETE FROM t WHERE x = 'secret'");
	pg_stmts_put(&t, &name, &sql);
	st = pg_stmts_get(&t, &name);
	CHECK(st && !strcmp(st->text, "DELETE FROM t WHERE x = ?"));
	/* redefining replaces */
	sql = S("SELECT 1");
	pg_stmts_put(&t, &name, &sql);
	st = pg_stmts_get(&t, &name);
	CHECK(st && !strcmp(st->text, "SELECT ?"));
	/* a cut text is stored normalized and flagged */
	name = S("cut");
	sql = S("SELECT * FROM t WHERE a = 'sec");
	sql.cut = true;
	pg_stmts_put(&t, &name, &sql);
	st = pg_stmts_get(&t, &name);
	CHECK(st && st->cut &&
	      !strcmp(st->text, "SELECT * FROM t WHERE a = ?"));
	/* a cut name is never stored or found */
	name = S("s");
	name.cut = true;
	pg_stmts_put(&t, &name, &sql);
	CHECK(pg_stmts_get(&t, &name) == NULL);
	name = S("s1");
	pg_stmts_del(&t, &name);
	CHECK(pg_stmts_get(&t, &name) == NULL);
	CHECK(pg_stmts_get(&t, &(struct pg_str){"nope", 4, false}) == NULL);

	/* least recently used goes first once the table is full */
	pg_stmts_init(&t);
	sql = S("SELECT 1");
	for (i = 0; i < PG_STMTS_MAX; i++) {
		snprintf(buf, sizeof(buf), "stmt%d", i);
		name = S(buf);
		pg_stmts_put(&t, &name, &sql);
	}
	CHECK_INT(t.evicted, 0);
	name = S("stmt0");
	CHECK(pg_stmts_get(&t, &name) != NULL);
	name = S("stmt_new");
	pg_stmts_put(&t, &name, &sql);
	CHECK_INT(t.evicted, 1);
	CHECK(pg_stmts_get(&t, &(struct pg_str){"stmt0", 5, false}));
	CHECK(!pg_stmts_get(&t, &(struct pg_str){"stmt1", 5, false}));
	CHECK(pg_stmts_get(&t, &(struct pg_str){"stmt_new", 8, false}));
}

int main(void)
{
	test_startup();
	test_startup_then_query();
	test_extended();
	test_backend();
	test_errors();
	test_auth_and_status();
	test_malformed();
	test_tag_rows();
	test_split_points();
	test_truncated_parse();
	test_garbage();
	test_stmts();
	return check_summary();
}
