/*
 * test_l7_client.c - unit test for client operations (agent/l7_client.c),
 * reached as main.c reaches them: through l7_on_event with the CLIENT_*
 * records the kernel sends.
 *
 * PostgreSQL requests are real frontend messages (simple Query with one and
 * several statements; Parse/Bind/Describe/Execute/Sync with named and
 * unnamed statements, pipelines, a prepare without execution) and answers
 * end with ReadyForQuery, some with an ErrorResponse before it. Redis
 * requests are RESP command pipelines and answers come as reads split in
 * arbitrary places. HTTP calls take their labels from the request line and
 * the record's address. Each record is a heap block of the size the kernel
 * sends, so ASan catches any read past it.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "l7.h"
#include "l7_client.h"
#include "log.h"
#include "queries.h"

#define V(...) ((const char *const[]){__VA_ARGS__})
#define NEAR(a, b) ((a) - (b) < 1e-9 && (b) - (a) < 1e-9)
#define MS 1000000ULL

#define DB "db_client_operation_duration_seconds"
#define HTTPC "http_client_request_duration_seconds"
#define GETS "katascope_redis_get_total"
#define ABORTED "katascope_client_requests_aborted_total"

/* ---- reading the registry back ------------------------------------------ */

struct found {
	const char *name;
	const char *const *lv;
	int n;
	double value, sum;
	uint64_t count;
};

static void find_one(const struct metric_family *f,
		     const struct metric_series *s, void *arg)
{
	struct found *q = arg;
	unsigned i;

	if (strcmp(metric_family_name(f), q->name))
		return;
	for (i = 0; i < metric_family_nlabels(f); i++)
		if (strcmp(metric_series_label_value(s, i), q->lv[i]))
			return;
	q->n++;
	if (metric_family_kind(f) == METRIC_HISTOGRAM) {
		q->count = metric_series_count(s);
		q->sum = metric_series_sum(s);
	} else {
		q->value = metric_series_value(s);
	}
}

static struct found find(struct metric_registry *r, const char *name,
			 const char *const *lv)
{
	struct found q = {.name = name, .lv = lv};

	metric_registry_foreach(r, find_one, &q);
	return q;
}

/* Observations of one PostgreSQL label set. */
static uint64_t pg(struct metric_registry *r, const char *op, const char *coll,
		   const char *err)
{
	return find(r, DB,
		    V("app", "postgresql", op, coll, err, "10.1.2.3", "5432"))
	    .count;
}

static uint64_t redis(struct metric_registry *r, const char *op,
		      const char *err)
{
	return find(r, DB, V("app", "redis", op, "", err, "10.1.2.3", "5432"))
	    .count;
}

static double counter(struct metric_registry *r, const char *name,
		      const char *const *lv)
{
	struct found q = find(r, name, lv);

	return q.n ? q.value : 0;
}

struct total_ctx {
	const char *name;
	uint64_t n;
};

static void total_one(const struct metric_family *f,
		      const struct metric_series *s, void *arg)
{
	struct total_ctx *c = arg;

	if (strcmp(metric_family_name(f), c->name) == 0)
		c->n += metric_family_kind(f) == METRIC_HISTOGRAM
			    ? metric_series_count(s)
			    : (uint64_t)metric_series_value(s);
}

static uint64_t total(struct metric_registry *r, const char *name)
{
	struct total_ctx c = {name, 0};

	metric_registry_foreach(r, total_one, &c);
	return c.n;
}

/* ---- records ------------------------------------------------------------- */

struct rec {
	uint64_t conn;
	uint8_t proto;
	uint64_t start, end;
	uint16_t status;
	const char *sqlstate;
	uint32_t total_len; /* 0: len */
};

/*
 * Send one record; data NULL: a record without data (the kernel's emit(),
 * which reserves only the part before data).
 */
static void record(struct l7 *l, const struct proc_entry *e, uint32_t kind,
		   const struct rec *r, const void *data, size_t len)
{
	size_t size = data ? sizeof(struct ks_l7_event)
			   : offsetof(struct ks_l7_event, data);
	struct ks_l7_event *ev = calloc(1, size);

	ev->hdr.type = KS_EV_L7;
	ev->hdr.pid = (uint32_t)(r->conn >> 32);
	ev->conn_id = r->conn;
	ev->kind = kind;
	ev->proto = r->proto;
	ev->start_ns = r->start;
	ev->end_ns = r->end;
	ev->status = r->status;
	ev->lport = 51234;
	ev->rport = 5432;
	ev->family = AF_INET;
	inet_pton(AF_INET, "10.1.2.3", ev->raddr);
	if (r->sqlstate)
		memcpy(ev->sqlstate, r->sqlstate, strlen(r->sqlstate));
	if (data) {
		if (len > KS_L7_DATA)
			len = KS_L7_DATA;
		memcpy(ev->data, data, len);
		ev->len = (uint32_t)len;
		ev->total_len = r->total_len ? r->total_len : (uint32_t)len;
	}
	l7_on_event(l, e, ev);
	free(ev);
}

/* ---- PostgreSQL messages ------------------------------------------------- */

struct wbuf {
	uint8_t b[1024];
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

/* Open a message: type and a length patched by w_end. */
static size_t w_begin(struct wbuf *w, char type)
{
	size_t at;

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

static void m_query(struct wbuf *w, const char *sql)
{
	size_t at = w_begin(w, 'Q');

	w_str(w, sql);
	w_end(w, at);
}

static void m_parse(struct wbuf *w, const char *name, const char *sql)
{
	size_t at = w_begin(w, 'P');

	w_str(w, name);
	w_str(w, sql);
	w_u16(w, 0); /* parameter types */
	w_end(w, at);
}

static void m_bind(struct wbuf *w, const char *stmt, const char *param)
{
	size_t at = w_begin(w, 'B');

	w_str(w, ""); /* portal */
	w_str(w, stmt);
	w_u16(w, 0); /* parameter formats: all text */
	w_u16(w, param ? 1 : 0);
	if (param) {
		w_u32(w, (uint32_t)strlen(param));
		memcpy(w->b + w->n, param, strlen(param));
		w->n += strlen(param);
	}
	w_u16(w, 0); /* result formats */
	w_end(w, at);
}

static void m_describe(struct wbuf *w, char what)
{
	size_t at = w_begin(w, 'D');

	w_u8(w, (uint8_t)what);
	w_str(w, "");
	w_end(w, at);
}

static void m_execute(struct wbuf *w)
{
	size_t at = w_begin(w, 'E');

	w_str(w, "");
	w_u32(w, 0);
	w_end(w, at);
}

static void m_empty(struct wbuf *w, char type)
{
	w_end(w, w_begin(w, type));
}

static void m_complete(struct wbuf *w, const char *tag)
{
	size_t at = w_begin(w, 'C');

	w_str(w, tag);
	w_end(w, at);
}

static void m_error(struct wbuf *w, const char *sqlstate)
{
	size_t at = w_begin(w, 'E');

	w_u8(w, 'S');
	w_str(w, "ERROR");
	w_u8(w, 'V');
	w_str(w, "ERROR");
	w_u8(w, 'C');
	w_str(w, sqlstate);
	w_u8(w, 'M');
	w_str(w, "relation \"nope\" does not exist");
	w_u8(w, 'P');
	w_str(w, "15");
	w_u8(w, 0);
	w_end(w, at);
}

static void m_ready(struct wbuf *w, char status)
{
	size_t at = w_begin(w, 'Z');

	w_u8(w, (uint8_t)status);
	w_end(w, at);
}

/* A backend answer: n CommandCompletes, an error if given, ReadyForQuery. */
static void answer(struct wbuf *w, int n, const char *sqlstate)
{
	w->n = 0;
	while (n-- > 0)
		m_complete(w, "SELECT 1");
	if (sqlstate)
		m_error(w, sqlstate);
	m_ready(w, sqlstate ? 'E' : 'I');
}

static void entry(struct proc_entry *e, const char *service, int monitored)
{
	memset(e, 0, sizeof(*e));
	e->pid = 777;
	snprintf(e->service, sizeof(e->service), "%s", service);
	e->monitored = monitored;
}

#define CONN(fd) ((uint64_t)777 << 32 | (fd))

struct fixture {
	struct metric_registry *r;
	struct queries *q;
	struct l7 *l;
	struct proc_entry e;
};

static int setup(struct fixture *f)
{
	f->r = metric_registry_new(0);
	f->q = queries_new(0.050, 16, 100);
	f->l = l7_new(f->r, f->q);
	entry(&f->e, "app", 1);
	CHECK(f->r && f->q && f->l);
	return f->r && f->q && f->l ? 0 : -1;
}

static void teardown(struct fixture *f)
{
	l7_free(f->l);
	queries_free(f->q);
	metric_registry_free(f->r);
}

/* A PostgreSQL exchange: request bytes, answer bytes, times. */
static void pg_exchange(struct fixture *f, uint64_t conn,
			const struct wbuf *req, const struct wbuf *ans,
			uint64_t start, uint64_t end, const char *sqlstate)
{
	struct rec r = {conn, KS_PROTO_PG, start, 0, 0, NULL, 0};

	record(f->l, &f->e, KS_L7_CLIENT_REQUEST, &r, req->b, req->n);
	r.end = end;
	r.sqlstate = sqlstate;
	/* The kernel sends the last bytes of the final read. */
	if (ans->n > KS_L7_DATA)
		record(f->l, &f->e, KS_L7_CLIENT_DONE, &r,
		       ans->b + ans->n - KS_L7_DATA, KS_L7_DATA);
	else
		record(f->l, &f->e, KS_L7_CLIENT_DONE, &r, ans->b, ans->n);
}

/* ---- PostgreSQL cases ---------------------------------------------------- */

static void test_pg_simple(void)
{
	static const struct {
		const char *sql;
		int nstmts;
		const char *error; /* ErrorResponse in the answer */
		struct {
			const char *op, *coll, *err;
		} want[3];
	} cases[] = {
	    {"SELECT * FROM users WHERE id = 1",
	     1,
	     NULL,
	     {{"SELECT", "users", ""}}},
	    {"INSERT INTO orders (id, total) VALUES (7, 9.5); "
	     "UPDATE stock SET n = n - 1 WHERE sku = 'a'",
	     2,
	     NULL,
	     {{"INSERT", "orders", ""}, {"UPDATE", "stock", ""}}},
	    {"SELECT * FROM nope", 0, "42P01", {{"SELECT", "nope", "42P01"}}},
	    /* The error ended the exchange: the last statement's. */
	    {"BEGIN; DELETE FROM carts WHERE id = 3; SELECT 1 FROM gone;",
	     2,
	     "42P01",
	     {{"BEGIN", "", ""},
	      {"DELETE", "carts", ""},
	      {"SELECT", "gone", "42P01"}}},
	    /* Whitespace after the last ';' is no statement. */
	    {"  VACUUM ;  \n ", 1, NULL, {{"VACUUM", "", ""}}},
	};
	struct fixture f;
	struct wbuf req, ans;
	size_t i, j, n;

	if (setup(&f))
		return;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		req.n = 0;
		m_query(&req, cases[i].sql);
		answer(&ans, cases[i].nstmts, cases[i].error);
		pg_exchange(&f, CONN(5), &req, &ans, 1000 * MS,
			    1000 * MS + 20 * MS, NULL);
		for (j = 0; j < 3 && cases[i].want[j].op; j++) {
			n = pg(f.r, cases[i].want[j].op, cases[i].want[j].coll,
			       cases[i].want[j].err);
			if (n != 1)
				fprintf(stderr, "case %zu stmt %zu: %s %s %s\n",
					i, j, cases[i].want[j].op,
					cases[i].want[j].coll,
					cases[i].want[j].err);
			CHECK_INT(n, 1);
		}
	}
	CHECK_INT(total(f.r, DB), 8);
	CHECK(NEAR(find(f.r, DB,
			V("app", "postgresql", "SELECT", "users", "",
			  "10.1.2.3", "5432"))
		       .sum,
		   0.020));
	/* The answer's records only; a DONE without a request is no one's. */
	answer(&ans, 1, NULL);
	record(f.l, &f.e, KS_L7_CLIENT_DONE,
	       &(struct rec){CONN(6), KS_PROTO_PG, MS, 2 * MS}, ans.b, ans.n);
	/* ... nor is a second DONE for one request. */
	record(f.l, &f.e, KS_L7_CLIENT_DONE,
	       &(struct rec){CONN(5), KS_PROTO_PG, MS, 2 * MS}, ans.b, ans.n);
	CHECK_INT(total(f.r, DB), 8);
	teardown(&f);
}

/* More distinct statements than the memo of derived facts has slots,
 * each run twice, interleaved: every one is named after its own text. */
static void test_pg_memo(void)
{
	struct fixture f;
	struct wbuf req, ans;
	char sql[96], coll[16];
	int round, k;

	if (setup(&f))
		return;
	for (round = 0; round < 2; round++) {
		for (k = 0; k < 300; k++) {
			snprintf(sql, sizeof(sql),
				 k % 2 ? "UPDATE t%d SET n = %d WHERE id = 1"
				       : "SELECT * FROM t%d WHERE id = %d",
				 k, round);
			req.n = 0;
			m_query(&req, sql);
			answer(&ans, 1, NULL);
			pg_exchange(&f, CONN(5), &req, &ans, 1000 * MS,
				    1001 * MS, NULL);
		}
	}
	for (k = 0; k < 300; k++) {
		snprintf(coll, sizeof(coll), "t%d", k);
		CHECK_INT(pg(f.r, k % 2 ? "UPDATE" : "SELECT", coll, ""), 2);
	}
	CHECK_INT(total(f.r, DB), 600);
	teardown(&f);
}

static void test_pg_errors(void)
{
	struct fixture f;
	struct wbuf req, ans;

	if (setup(&f))
		return;
	req.n = 0;
	m_query(&req, "INSERT INTO users (email) VALUES ('a@b')");
	/* The ErrorResponse came in a read of its own, before the one with
	 * ReadyForQuery: the kernel kept its SQLSTATE in the record. */
	answer(&ans, 0, NULL);
	pg_exchange(&f, CONN(7), &req, &ans, MS, 3 * MS, "23505");
	CHECK_INT(pg(f.r, "INSERT", "users", "23505"), 1);
	/* Both: the ErrorResponse in the data wins. */
	answer(&ans, 0, "40001");
	pg_exchange(&f, CONN(7), &req, &ans, MS, 3 * MS, "23505");
	CHECK_INT(pg(f.r, "INSERT", "users", "40001"), 1);
	/* An answer longer than the capture: its last bytes still hold the
	 * error before ReadyForQuery. */
	answer(&ans, 40, "57014");
	CHECK(ans.n > KS_L7_DATA);
	pg_exchange(&f, CONN(7), &req, &ans, MS, 3 * MS, NULL);
	CHECK_INT(pg(f.r, "INSERT", "users", "57014"), 1);
	/* A NoticeResponse-like 'E' that is not right before 'Z' is not the
	 * error: the answer is a success. */
	ans.n = 0;
	m_error(&ans, "01000");
	m_complete(&ans, "INSERT 0 1");
	m_ready(&ans, 'I');
	pg_exchange(&f, CONN(7), &req, &ans, MS, 3 * MS, NULL);
	CHECK_INT(pg(f.r, "INSERT", "users", ""), 1);
	CHECK_INT(total(f.r, DB), 4);
	teardown(&f);
}

static void test_pg_extended(void)
{
	struct fixture f;
	struct wbuf req, ans;
	struct strbuf sb = STRBUF_INIT;

	if (setup(&f))
		return;
	/* Parse of a named statement, Bind, Describe, Execute, Sync. */
	req.n = 0;
	m_parse(&req, "get_user", "SELECT name FROM users WHERE id = $1");
	m_bind(&req, "get_user", "42");
	m_describe(&req, 'P');
	m_execute(&req);
	m_empty(&req, 'S');
	ans.n = 0;
	m_empty(&ans, '1');
	m_empty(&ans, '2');
	m_complete(&ans, "SELECT 1");
	m_ready(&ans, 'I');
	pg_exchange(&f, CONN(8), &req, &ans, MS, 101 * MS, NULL); /* slow */
	CHECK_INT(pg(f.r, "SELECT", "users", ""), 1);

	/* Later, the same statement by name only, on the same connection. */
	req.n = 0;
	m_bind(&req, "get_user", "43");
	m_execute(&req);
	m_empty(&req, 'S');
	pg_exchange(&f, CONN(8), &req, &ans, 5 * MS, 6 * MS, NULL);
	CHECK_INT(pg(f.r, "SELECT", "users", ""), 2);
	/* On another connection the name means nothing. */
	pg_exchange(&f, CONN(9), &req, &ans, 5 * MS, 6 * MS, NULL);
	CHECK_INT(pg(f.r, "_OTHER", "", ""), 1);

	/* A pipeline: two Executes of the unnamed statement before one
	 * Sync, the second failing. */
	req.n = 0;
	m_parse(&req, "", "INSERT INTO log (msg) VALUES ($1)");
	m_bind(&req, "", "a");
	m_execute(&req);
	m_bind(&req, "", "b");
	m_execute(&req);
	m_empty(&req, 'S');
	ans.n = 0;
	m_empty(&ans, '1');
	m_empty(&ans, '2');
	m_complete(&ans, "INSERT 0 1");
	m_empty(&ans, '2');
	m_error(&ans, "23514");
	m_ready(&ans, 'I');
	pg_exchange(&f, CONN(10), &req, &ans, MS, 4 * MS, NULL);
	CHECK_INT(pg(f.r, "INSERT", "log", ""), 1);
	CHECK_INT(pg(f.r, "INSERT", "log", "23514"), 1);
	/* The unnamed statement is remembered for a Bind without Parse. */
	req.n = 0;
	m_bind(&req, "", "c");
	m_execute(&req);
	m_empty(&req, 'S');
	answer(&ans, 1, NULL);
	pg_exchange(&f, CONN(10), &req, &ans, MS, 4 * MS, NULL);
	CHECK_INT(pg(f.r, "INSERT", "log", ""), 2);

	/* Preparing is not executing: Parse, Describe, Sync (libpq's
	 * PQprepare, pgx, JDBC) is a round trip with no statement run. */
	req.n = 0;
	m_parse(&req, "upd", "UPDATE accounts SET balance = $1 WHERE id = $2");
	m_describe(&req, 'S');
	m_empty(&req, 'S');
	ans.n = 0;
	m_empty(&ans, '1');
	m_empty(&ans, 't');
	m_empty(&ans, 'n');
	m_ready(&ans, 'I');
	pg_exchange(&f, CONN(11), &req, &ans, MS, 2 * MS, NULL);
	req.n = 0;
	m_parse(&req, "upd2", "UPDATE accounts SET n = 1");
	m_empty(&req, 'S');
	pg_exchange(&f, CONN(11), &req, &ans, MS, 2 * MS, NULL);
	CHECK_INT(pg(f.r, "UPDATE", "accounts", ""), 0);
	req.n = 0;
	m_bind(&req, "upd", "5");
	m_execute(&req);
	m_empty(&req, 'S');
	answer(&ans, 1, NULL);
	pg_exchange(&f, CONN(11), &req, &ans, MS, 2 * MS, NULL);
	CHECK_INT(pg(f.r, "UPDATE", "accounts", ""), 1);

	/* Execute past the capture: a long Parse fills the 256 bytes. */
	{
		char sql[400];

		snprintf(
		    sql, sizeof(sql),
		    "SELECT id FROM items WHERE tag = $1 AND note = '%0300d'",
		    0);
		req.n = 0;
		m_parse(&req, "", sql);
		m_bind(&req, "", "x");
		m_execute(&req);
		m_empty(&req, 'S');
		CHECK(req.n > KS_L7_DATA);
		answer(&ans, 1, NULL);
		record(f.l, &f.e, KS_L7_CLIENT_REQUEST,
		       &(struct rec){CONN(12), KS_PROTO_PG, MS, 0, 0, NULL,
				     (uint32_t)req.n},
		       req.b, KS_L7_DATA);
		record(f.l, &f.e, KS_L7_CLIENT_DONE,
		       &(struct rec){CONN(12), KS_PROTO_PG, MS, 2 * MS}, ans.b,
		       ans.n);
		CHECK_INT(pg(f.r, "SELECT", "items", ""), 1);
	}

	/* The statement's text cut by the capture inside a table name: the
	 * name may be incomplete, so it is not a label. */
	{
		char sql[400];
		size_t cut;

		snprintf(sql, sizeof(sql),
			 "SELECT %0220d AS pad FROM very_long_table_name_here",
			 0);
		req.n = 0;
		m_parse(&req, "", sql);
		m_bind(&req, "", NULL);
		m_execute(&req);
		m_empty(&req, 'S');
		/* Where the capture ends: inside "very_long_table_name". */
		cut = (size_t)(strstr((char *)req.b + 7, "very_long") -
			       (char *)req.b) +
		      9;
		CHECK(cut < KS_L7_DATA);
		record(f.l, &f.e, KS_L7_CLIENT_REQUEST,
		       &(struct rec){CONN(13), KS_PROTO_PG, MS, 0, 0, NULL,
				     (uint32_t)req.n},
		       req.b, cut);
		record(f.l, &f.e, KS_L7_CLIENT_DONE,
		       &(struct rec){CONN(13), KS_PROTO_PG, MS, 2 * MS}, ans.b,
		       ans.n);
		CHECK_INT(pg(f.r, "SELECT", "very_long", ""), 0);
		CHECK_INT(pg(f.r, "SELECT", "", ""), 1);
		/* The same for a named statement used later. */
		req.n = 0;
		m_parse(&req, "cutme", sql);
		m_bind(&req, "cutme", NULL);
		m_execute(&req);
		m_empty(&req, 'S');
		record(f.l, &f.e, KS_L7_CLIENT_REQUEST,
		       &(struct rec){CONN(13), KS_PROTO_PG, MS, 0, 0, NULL,
				     (uint32_t)req.n},
		       req.b, cut + 6);
		record(f.l, &f.e, KS_L7_CLIENT_DONE,
		       &(struct rec){CONN(13), KS_PROTO_PG, MS, 2 * MS}, ans.b,
		       ans.n);
		req.n = 0;
		m_bind(&req, "cutme", NULL);
		m_execute(&req);
		m_empty(&req, 'S');
		pg_exchange(&f, CONN(13), &req, &ans, MS, 2 * MS, NULL);
		CHECK_INT(pg(f.r, "SELECT", "very_long_ta", ""), 0);
		CHECK_INT(pg(f.r, "SELECT", "", ""), 3);
	}

	/* Slow statements reach the query log, literals stripped. */
	queries_render_slow(f.q, &sb);
	CHECK(sb.buf && strstr(sb.buf, "SELECT name FROM users WHERE id = $1"));
	sb_reset(&sb);
	queries_render_top(f.q, &sb, 100);
	CHECK(sb.buf && strstr(sb.buf, "INSERT INTO log (msg) VALUES ($1)"));
	sb_free(&sb);
	teardown(&f);
}

static void test_pg_cut_query(void)
{
	struct fixture f;
	struct wbuf req, ans;
	char sql[400];

	if (setup(&f))
		return;
	/* A Query cut by the capture while its text is whitespace after a
	 * ';': nothing may be read past the record. */
	memset(sql, ' ', sizeof(sql) - 1);
	sql[sizeof(sql) - 1] = '\0';
	memcpy(sql, "DELETE FROM sessions;", 21);
	req.n = 0;
	m_query(&req, sql);
	answer(&ans, 1, NULL);
	record(f.l, &f.e, KS_L7_CLIENT_REQUEST,
	       &(struct rec){CONN(14), KS_PROTO_PG, MS, 0, 0, NULL,
			     (uint32_t)req.n},
	       req.b, KS_L7_DATA);
	record(f.l, &f.e, KS_L7_CLIENT_DONE,
	       &(struct rec){CONN(14), KS_PROTO_PG, MS, 2 * MS}, ans.b, ans.n);
	CHECK_INT(pg(f.r, "DELETE", "sessions", ""), 1);
	CHECK_INT(total(f.r, DB), 1);
	/* Semicolons to the end, too. */
	memset(sql + 21, ';', sizeof(sql) - 22);
	req.n = 0;
	m_query(&req, sql);
	record(f.l, &f.e, KS_L7_CLIENT_REQUEST,
	       &(struct rec){CONN(14), KS_PROTO_PG, MS, 0, 0, NULL,
			     (uint32_t)req.n},
	       req.b, KS_L7_DATA);
	record(f.l, &f.e, KS_L7_CLIENT_DONE,
	       &(struct rec){CONN(14), KS_PROTO_PG, MS, 2 * MS}, ans.b, ans.n);
	CHECK_INT(pg(f.r, "DELETE", "sessions", ""), 2);
	/* Aborted: the connection closed before ReadyForQuery. */
	record(f.l, &f.e, KS_L7_CLIENT_REQUEST,
	       &(struct rec){CONN(14), KS_PROTO_PG, MS}, req.b, 40);
	record(f.l, &f.e, KS_L7_CLIENT_ABORTED,
	       &(struct rec){CONN(14), KS_PROTO_PG, MS, 0}, NULL, 0);
	CHECK_INT(counter(f.r, ABORTED, V("app", "postgresql")), 1);
	CHECK_INT(total(f.r, DB), 2);
	teardown(&f);
}

/* ---- Redis --------------------------------------------------------------- */

#define GET(k) "*2\r\n$3\r\nGET\r\n$1\r\n" k "\r\n"

static void redis_req(struct fixture *f, uint64_t conn, uint64_t start,
		      const char *cmds)
{
	record(f->l, &f->e, KS_L7_CLIENT_REQUEST,
	       &(struct rec){conn, KS_PROTO_REDIS, start}, cmds, strlen(cmds));
}

static void redis_read(struct fixture *f, uint64_t conn, uint64_t end,
		       const char *data, uint32_t total_len)
{
	record(
	    f->l, &f->e, KS_L7_CLIENT_DONE,
	    &(struct rec){conn, KS_PROTO_REDIS, end, end, 0, NULL, total_len},
	    data, strlen(data));
}

static void test_redis(void)
{
	/* Three replies to three pipelined GETs, split in every place
	 * between two reads. */
	static const char replies[] = "$1\r\nv\r\n$-1\r\n_\r\n";
	struct fixture f;
	char a[sizeof(replies)], b[sizeof(replies)];
	size_t split;
	struct found h;
	uint64_t hits = 0, misses = 0, n = 0;

	if (setup(&f))
		return;
	for (split = 0; split <= strlen(replies); split++) {
		redis_req(&f, CONN(20), 10 * MS, GET("a") GET("b") GET("c"));
		memcpy(a, replies, split);
		a[split] = '\0';
		strcpy(b, replies + split);
		if (split)
			redis_read(&f, CONN(20), 11 * MS, a, 0);
		if (split < strlen(replies))
			redis_read(&f, CONN(20), 12 * MS, b, 0);
		hits++;
		misses += 2;
		n += 3;
		if (counter(f.r, GETS, V("app", "miss")) != misses)
			fprintf(stderr, "split at %zu\n", split);
		CHECK_INT(counter(f.r, GETS, V("app", "hit")), hits);
		CHECK_INT(counter(f.r, GETS, V("app", "miss")), misses);
		CHECK_INT(redis(f.r, "GET", ""), n);
	}
	/* Timed from the write to the read that held the reply. */
	h = find(f.r, DB, V("app", "redis", "GET", "", "", "10.1.2.3", "5432"));
	CHECK(h.sum > 0);

	/* Commands of several writes queue up; each is timed from its
	 * own write. */
	redis_req(&f, CONN(21), 100 * MS, GET("k"));
	redis_req(&f, CONN(21), 103 * MS,
		  "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n");
	redis_req(&f, CONN(21), 104 * MS, "PING\r\n");
	redis_read(
	    &f, CONN(21), 105 * MS,
	    "$3\r\nabc\r\n-WRONGTYPE Operation against a key\r\n+PONG\r\n", 0);
	h = find(f.r, DB, V("app", "redis", "GET", "", "", "10.1.2.3", "5432"));
	CHECK_INT(counter(f.r, GETS, V("app", "hit")), hits + 1);
	CHECK_INT(redis(f.r, "SET", "WRONGTYPE"), 1);
	CHECK(NEAR(
	    find(f.r, DB,
		 V("app", "redis", "SET", "", "WRONGTYPE", "10.1.2.3", "5432"))
		.sum,
	    0.002));
	CHECK(NEAR(
	    find(f.r, DB, V("app", "redis", "PING", "", "", "10.1.2.3", "5432"))
		.sum,
	    0.001));
	/* An error reply to a GET is neither hit nor miss. */
	redis_req(&f, CONN(21), 110 * MS, GET("x"));
	redis_read(&f, CONN(21), 111 * MS, "-ERR\r\n", 0);
	CHECK_INT(redis(f.r, "GET", "ERR"), 1);
	CHECK_INT(counter(f.r, GETS, V("app", "hit")), hits + 1);
	CHECK_INT(counter(f.r, GETS, V("app", "miss")), misses);

	/* A read longer than the capture ends every command waiting. */
	redis_req(&f, CONN(22), MS, GET("a") GET("b") GET("c"));
	redis_read(&f, CONN(22), 2 * MS, "$5\r\nhello\r\n$70000\r\nxxxx",
		   70100);
	CHECK_INT(counter(f.r, GETS, V("app", "hit")), hits + 2);
	CHECK_INT(redis(f.r, "GET", ""), n + 4);
	/* ... and the rest of that read ends nothing more. */
	redis_read(&f, CONN(22), 3 * MS, "xxxxxxxx\r\n", 0);
	CHECK_INT(redis(f.r, "GET", ""), n + 4);

	/* A RESP3 push (client tracking) answers no command. */
	redis_req(&f, CONN(23), MS, GET("p"));
	redis_read(&f, CONN(23), 2 * MS,
		   ">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\np\r\n$-1\r\n", 0);
	CHECK_INT(counter(f.r, GETS, V("app", "hit")), hits + 2);
	CHECK_INT(counter(f.r, GETS, V("app", "miss")), misses + 1);
	CHECK_INT(redis(f.r, "GET", ""), n + 5);

	/* Aborted with commands waiting. */
	redis_req(&f, CONN(24), MS, GET("z"));
	record(f.l, &f.e, KS_L7_CLIENT_ABORTED,
	       &(struct rec){CONN(24), KS_PROTO_REDIS}, NULL, 0);
	CHECK_INT(counter(f.r, ABORTED, V("app", "redis")), 1);
	CHECK_INT(redis(f.r, "GET", ""), n + 5);
	/* Redis statements are not in the SQL query log. */
	{
		struct strbuf sb = STRBUF_INIT;

		queries_render_top(f.q, &sb, 100);
		CHECK(sb.buf && !strstr(sb.buf, "\"redis\""));
		sb_free(&sb);
	}
	teardown(&f);
}

/* ---- HTTP client --------------------------------------------------------- */

/* A record of only the part before data plus n bytes of it, in a heap
 * block that size (ASan catches a read past it). */
static void send_short(struct l7 *l, const struct proc_entry *e,
		       const struct ks_l7_event *full, size_t n)
{
	size_t size = offsetof(struct ks_l7_event, data) + n;
	void *d = malloc(size);

	memcpy(d, full, size);
	l7_on_event(l, e, d);
	free(d);
}

static void test_http_client(void)
{
	struct fixture f;
	struct found h;
	struct ks_l7_event *ev;
	static const char req[] = "POST /v1/charge HTTP/1.1\r\nHost: pay\r\n"
				  "Content-Length: 2\r\n\r\n{}";

	if (setup(&f))
		return;
	record(f.l, &f.e, KS_L7_CLIENT_REQUEST,
	       &(struct rec){CONN(30), KS_PROTO_HTTP, 10 * MS}, req,
	       sizeof(req) - 1);
	record(f.l, &f.e, KS_L7_CLIENT_DONE,
	       &(struct rec){CONN(30), KS_PROTO_HTTP, 10 * MS, 35 * MS, 201},
	       NULL, 0);
	h = find(f.r, HTTPC, V("app", "POST", "10.1.2.3", "5432", "201"));
	CHECK_INT(h.count, 1);
	CHECK(NEAR(h.sum, 0.025));
	/* IPv6 peer. */
	ev = calloc(1, sizeof(*ev));
	ev->kind = KS_L7_CLIENT_REQUEST;
	ev->proto = KS_PROTO_HTTP;
	ev->conn_id = CONN(31);
	ev->len = ev->total_len = 16;
	memcpy(ev->data, "GET / HTTP/1.1\r\n", 16);
	l7_on_event(f.l, &f.e, ev);
	memset(ev, 0, sizeof(*ev));
	ev->kind = KS_L7_CLIENT_DONE;
	ev->proto = KS_PROTO_HTTP;
	ev->conn_id = CONN(31);
	ev->family = 10; /* AF_INET6 */
	inet_pton(AF_INET6, "fd00::1", ev->raddr);
	ev->rport = 443;
	ev->status = 503;
	ev->start_ns = 5;
	ev->end_ns = 4; /* end before start: 0, not negative */
	l7_on_event(f.l, &f.e, ev);
	free(ev);
	h = find(f.r, HTTPC, V("app", "GET", "fd00::1", "443", "503"));
	CHECK_INT(h.count, 1);
	CHECK(h.sum == 0);
	/* Aborted: counted by protocol, no duration. */
	record(f.l, &f.e, KS_L7_CLIENT_REQUEST,
	       &(struct rec){CONN(32), KS_PROTO_HTTP, MS}, "DELETE /x", 9);
	record(f.l, &f.e, KS_L7_CLIENT_ABORTED,
	       &(struct rec){CONN(32), KS_PROTO_HTTP}, NULL, 0);
	CHECK_INT(counter(f.r, ABORTED, V("app", "http")), 1);
	/* An answer with no request. */
	record(f.l, &f.e, KS_L7_CLIENT_DONE,
	       &(struct rec){CONN(33), KS_PROTO_HTTP, MS, 2 * MS, 200}, NULL,
	       0);
	CHECK_INT(total(f.r, HTTPC), 2);
	/* One record per exchange: the method's 8 bytes ride on the end
	 * (KS_L7_F_HEAD), on a record only as long as they are. */
	{
		struct ks_l7_event one;

		memset(&one, 0, sizeof(one));
		one.hdr.type = KS_EV_L7;
		one.kind = KS_L7_CLIENT_DONE;
		one.proto = KS_PROTO_HTTP;
		one.flags = KS_L7_F_HEAD;
		one.conn_id = CONN(34);
		one.family = AF_INET;
		inet_pton(AF_INET, "10.1.2.3", one.raddr);
		one.rport = 8080;
		one.status = 200;
		one.start_ns = 2 * MS;
		one.end_ns = 9 * MS;
		one.len = 8;
		memcpy(one.data, "OPTIONS ", 8);
		send_short(f.l, &f.e, &one, 8);
		h = find(f.r, HTTPC,
			 V("app", "OPTIONS", "10.1.2.3", "8080", "200"));
		CHECK_INT(h.count, 1);
		CHECK(NEAR(h.sum, 0.007));
		/* The same connection again, then aborted. */
		memcpy(one.data, "GET /x/y", 8);
		send_short(f.l, &f.e, &one, 8);
		CHECK_INT(find(f.r, HTTPC,
			       V("app", "GET", "10.1.2.3", "8080", "200"))
				  .count,
			  1);
		one.kind = KS_L7_CLIENT_ABORTED;
		memcpy(one.data, "PATCH /z", 8);
		send_short(f.l, &f.e, &one, 8);
		CHECK_INT(counter(f.r, ABORTED, V("app", "http")), 2);
	}
	CHECK_INT(total(f.r, HTTPC), 4);
	teardown(&f);
}

/* One entry of the kernel's HTTP client counters. */
static void cli_key(struct ks_http_key *k, uint32_t tgid,
		    const char *method, uint16_t status)
{
	memset(k, 0, sizeof(*k));
	k->tgid = tgid;
	k->rport = 8080;
	k->status = status;
	k->family = AF_INET;
	inet_pton(AF_INET, "10.1.2.3", k->raddr);
	memcpy(k->method, method, strlen(method) < 8 ? strlen(method) : 8);
}

/* HTTP calls counted in the kernel, each slot folded by its growth. */
static void test_http_client_folded(void)
{
	struct ks_http_key k, k2;
	struct ks_http_val v = {0}, w = {0};
	struct proc_entry off, gone;
	struct fixture f;
	struct found h;
	unsigned i;

	if (setup(&f))
		return;
	cli_key(&k, 77, "GET", 200);
	v.count = 3;
	v.sum_ns = 30 * MS;
	v.bucket[1] = 2; /* <= 10 ms */
	v.bucket[3] = 1; /* <= 50 ms */
	CHECK_INT(l7_fold_http_slot(f.l, &f.e, 5, &k, &v, 0), 0);
	h = find(f.r, HTTPC, V("app", "GET", "10.1.2.3", "8080", "200"));
	CHECK_INT(h.count, 3);
	CHECK(NEAR(h.sum, 0.030));
	/* The same counters again: nothing new. */
	CHECK_INT(l7_fold_http_slot(f.l, &f.e, 5, &k, &v, 0), 0);
	CHECK_INT(find(f.r, HTTPC, V("app", "GET", "10.1.2.3", "8080", "200"))
			  .count,
		  3);
	/* They grew by two exchanges of 4 ms. */
	v.count = 5;
	v.sum_ns += 8 * MS;
	v.bucket[0] = 2;
	CHECK_INT(l7_fold_http_slot(f.l, &f.e, 5, &k, &v, 0), 0);
	h = find(f.r, HTTPC, V("app", "GET", "10.1.2.3", "8080", "200"));
	CHECK_INT(h.count, 5);
	CHECK(NEAR(h.sum, 0.038));
	/* The same label set in a second slot (two CPUs claimed one each):
	 * folded on its own, into the same series. */
	w.count = 1;
	w.sum_ns = 60 * MS;
	w.bucket[4] = 1; /* <= 75 ms */
	CHECK_INT(l7_fold_http_slot(f.l, &f.e, 6, &k, &w, 0), 0);
	CHECK_INT(l7_fold_http_slot(f.l, &f.e, 5, &k, &v, 0), 0);
	h = find(f.r, HTTPC, V("app", "GET", "10.1.2.3", "8080", "200"));
	CHECK_INT(h.count, 6);
	CHECK(NEAR(h.sum, 0.098));
	/* A method of all 8 bytes, and another status: their own series. */
	cli_key(&k2, 77, "PROPFIND", 404);
	CHECK_INT(l7_fold_http_slot(f.l, &f.e, 7, &k2, &v, 0), 0);
	CHECK_INT(find(f.r, HTTPC,
		       V("app", "PROPFIND", "10.1.2.3", "8080", "404"))
			  .count,
		  5);
	/* An unknown or unmonitored process: released, not counted. */
	cli_key(&k2, 78, "GET", 200);
	CHECK_INT(l7_fold_http_slot(f.l, NULL, 8, &k2, &v, 0), 1);
	entry(&off, "quiet", 0);
	CHECK_INT(l7_fold_http_slot(f.l, &off, 8, &k2, &v, 0), 1);
	CHECK_INT(find(f.r, HTTPC, V("quiet", "GET", "10.1.2.3", "8080", "200"))
			  .n,
		  0);
	/* A slot out of range is ignored (and kept). */
	CHECK_INT(l7_fold_http_slot(f.l, &f.e, KS_HTTP_SLOTS, &k, &v, 0),
		  0);
	CHECK_INT(find(f.r, HTTPC, V("app", "GET", "10.1.2.3", "8080", "200"))
			  .count,
		  6);
	/* An exited process: its last growth counted, then released; the
	 * slot's next label set (here the same, pid reused) counts from
	 * zero. */
	entry(&gone, "app", 1);
	gone.exit_ns = 1;
	v.count = 6;
	v.bucket[0] = 3;
	CHECK_INT(l7_fold_http_slot(f.l, &gone, 5, &k, &v, 0), 1);
	CHECK_INT(find(f.r, HTTPC, V("app", "GET", "10.1.2.3", "8080", "200"))
			  .count,
		  7);
	/* Its last fold, after the release: an exchange that matched the
	 * slot just before it is counted too. */
	v.count = 7;
	v.bucket[0] = 4;
	CHECK_INT(l7_fold_http_slot(f.l, &gone, 5, &k, &v, 1), 0);
	CHECK_INT(find(f.r, HTTPC, V("app", "GET", "10.1.2.3", "8080", "200"))
			  .count,
		  8);
	memset(&v, 0, sizeof(v));
	v.count = 1;
	v.bucket[2] = 1;
	CHECK_INT(l7_fold_http_slot(f.l, &f.e, 5, &k, &v, 0), 0);
	CHECK_INT(find(f.r, HTTPC, V("app", "GET", "10.1.2.3", "8080", "200"))
			  .count,
		  9);
	/* A slot released by an unmonitored process and taken again by a
	 * monitored one: counted from zero, not from what was seen. */
	cli_key(&k2, 79, "DELETE", 204);
	memset(&w, 0, sizeof(w));
	w.count = 4;
	w.bucket[0] = 4;
	CHECK_INT(l7_fold_http_slot(f.l, &f.e, 9, &k2, &w, 0), 0);
	CHECK_INT(l7_fold_http_slot(f.l, &off, 9, &k2, &w, 0), 1);
	CHECK_INT(l7_fold_http_slot(f.l, &off, 9, &k2, &w, 1), 0);
	w.count = 1;
	w.bucket[0] = 1;
	CHECK_INT(l7_fold_http_slot(f.l, &f.e, 9, &k2, &w, 0), 0);
	CHECK_INT(find(f.r, HTTPC,
		       V("app", "DELETE", "10.1.2.3", "8080", "204"))
			  .count,
		  5);
	/* Every other slot used, released and used again: the survivor's
	 * growth is still exact. */
	for (i = 16; i < KS_HTTP_SLOTS; i++) {
		struct ks_http_val one = {.count = 1, .bucket = {1}};

		cli_key(&k2, 1000 + i, "PUT", 201);
		CHECK_INT(l7_fold_http_slot(f.l, &f.e, i, &k2, &one, 0), 0);
		CHECK_INT(l7_fold_http_slot(f.l, &gone, i, &k2, &one, 0), 1);
		CHECK_INT(l7_fold_http_slot(f.l, &gone, i, &k2, &one, 1), 0);
		CHECK_INT(l7_fold_http_slot(f.l, &f.e, i, &k2, &one, 0), 0);
		CHECK_INT(l7_fold_http_slot(f.l, &gone, i, &k2, &one, 0), 1);
		CHECK_INT(l7_fold_http_slot(f.l, &gone, i, &k2, &one, 1), 0);
	}
	CHECK_INT(find(f.r, HTTPC, V("app", "PUT", "10.1.2.3", "8080", "201"))
			  .count,
		  2 * (KS_HTTP_SLOTS - 16));
	v.count = 2;
	v.bucket[2] = 2;
	CHECK_INT(l7_fold_http_slot(f.l, &f.e, 5, &k, &v, 0), 0);
	CHECK_INT(find(f.r, HTTPC, V("app", "GET", "10.1.2.3", "8080", "200"))
			  .count,
		  10);
	/* A minute of folds without growth: released for another label set
	 * (a process calling ever new servers would hold slots for good);
	 * the call that came just before the release still counts. */
	for (i = 1; i < L7_IDLE_FOLDS; i++)
		CHECK_INT(l7_fold_http_slot(f.l, &f.e, 5, &k, &v, 0), 0);
	CHECK_INT(l7_fold_http_slot(f.l, &f.e, 5, &k, &v, 0), 1);
	v.count++;
	v.bucket[2]++;
	CHECK_INT(l7_fold_http_slot(f.l, &f.e, 5, &k, &v, 1), 0);
	CHECK_INT(find(f.r, HTTPC, V("app", "GET", "10.1.2.3", "8080", "200"))
			  .count,
		  11);
	teardown(&f);
}

static void test_unmonitored_and_garbage(void)
{
	struct fixture f;
	struct proc_entry off;
	uint8_t buf[KS_L7_DATA];
	uint64_t rng = 0x9e3779b97f4a7c15ULL;
	unsigned i, j, n;
	struct ks_l7_event *ev;

	if (setup(&f))
		return;
	entry(&off, "hidden", 0);
	record(f.l, &off, KS_L7_CLIENT_REQUEST,
	       &(struct rec){CONN(40), KS_PROTO_REDIS, MS}, GET("a"),
	       strlen(GET("a")));
	record(f.l, &off, KS_L7_CLIENT_DONE,
	       &(struct rec){CONN(40), KS_PROTO_REDIS, MS, 2 * MS}, "$-1\r\n",
	       5);
	CHECK_INT(total(f.r, DB), 0);
	CHECK_INT(total(f.r, GETS), 0);

	/* Random and mutated records of every kind and protocol. */
	for (i = 0; i < 30000; i++) {
		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		n = (unsigned)(rng % (KS_L7_DATA + 1));
		for (j = 0; j < n; j++)
			buf[j] = (uint8_t)(rng >> (j % 56));
		if (i % 5 == 0 && n > 0)
			buf[0] = "QPBE*$+-:_"[rng % 10];
		record(f.l, &f.e, KS_L7_CLIENT_REQUEST + (uint32_t)(rng % 3),
		       &(struct rec){CONN(41 + rng % 3), (uint8_t)(1 + rng % 3),
				     MS, (rng >> 20) % (100 * MS), 0, NULL,
				     (uint32_t)(rng % 3 ? n : n + 1000)},
		       buf, n);
	}
	/* A length beyond the data array (a bad record) is clamped. */
	ev = calloc(1, sizeof(*ev));
	for (i = 1; i <= 3; i++) {
		memset(ev, 0, sizeof(*ev));
		memset(ev->data, 'x', sizeof(ev->data));
		ev->conn_id = CONN(50);
		ev->proto = (uint8_t)i;
		ev->kind = KS_L7_CLIENT_REQUEST;
		ev->len = ev->total_len = 100000;
		if (i == KS_PROTO_HTTP) {
			memcpy(ev->data, "GET / HTTP/1.1\r\n", 16);
		} else if (i == KS_PROTO_PG) {
			struct wbuf w = {.n = 0};

			m_query(&w, "SELECT 1");
			memcpy(ev->data, w.b, w.n);
		} else {
			memcpy(ev->data, GET("a"), strlen(GET("a")));
		}
		l7_on_event(f.l, &f.e, ev);
		memset(ev->data, 'x', sizeof(ev->data));
		if (i == KS_PROTO_REDIS)
			memcpy(ev->data, "$300\r\n", 6);
		ev->kind = KS_L7_CLIENT_DONE;
		ev->end_ns = 2 * MS;
		l7_on_event(f.l, &f.e, ev);
	}
	free(ev);
	teardown(&f);
}

int main(void)
{
	log_level = LOG_ERROR; /* slow statements are logged at info */
	test_pg_simple();
	test_pg_memo();
	test_pg_errors();
	test_pg_extended();
	test_pg_cut_query();
	test_redis();
	test_http_client();
	test_http_client_folded();
	test_unmonitored_and_garbage();
	return check_summary();
}
