/*
 * test_l7.c - unit test for HTTP server request metrics (agent/l7.c).
 *
 * Feeds the records the kernel would send (a REQUEST with the first bytes
 * the server read, then DONE or ABORTED) and reads
 * http_server_request_duration_seconds and its companions back from the
 * registry: labels (method, normalized route, status, port, scheme), the
 * duration from the request's first byte to the response's last, pipelined
 * requests answered in order, more answers than captured requests, aborts,
 * answers to no request, the per-service route guard, and garbage.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "l7.h"

#define V(...) ((const char *const[]){__VA_ARGS__})
#define NEAR(a, b) ((a) - (b) < 1e-9 && (b) - (a) < 1e-9)
#define MS 1000000ULL

#define DUR "http_server_request_duration_seconds"
#define ABORTED "katascope_http_server_requests_aborted_total"
#define ENDED_IDLE "katascope_http_server_ended_idle_total"
#define COLLAPSED "katascope_http_route_collapsed_total"

/* ---- reading the registry back ------------------------------------------ */

struct found {
	const char *name;
	const char *const *lv;
	int n;
	double value, sum;
	uint64_t count;
	uint64_t buckets[16];
};

static void find_one(const struct metric_family *f,
		     const struct metric_series *s, void *arg)
{
	struct found *q = arg;
	unsigned i, nb = 0;

	if (strcmp(metric_family_name(f), q->name))
		return;
	for (i = 0; i < metric_family_nlabels(f); i++)
		if (strcmp(metric_series_label_value(s, i), q->lv[i]))
			return;
	q->n++;
	if (metric_family_kind(f) != METRIC_HISTOGRAM) {
		q->value = metric_series_value(s);
		return;
	}
	metric_family_bounds(f, &nb);
	q->count = metric_series_count(s);
	q->sum = metric_series_sum(s);
	for (i = 0; i <= nb && i < 16; i++)
		q->buckets[i] = metric_series_buckets(s)[i];
}

static struct found find(struct metric_registry *r, const char *name,
			 const char *const *lv)
{
	struct found q = {.name = name, .lv = lv};

	metric_registry_foreach(r, find_one, &q);
	return q;
}

/* Observations in a duration series (0 if there is none). */
static uint64_t count(struct metric_registry *r, const char *const *lv)
{
	return find(r, DUR, lv).count;
}

/* Counter value, -1 if there is no such series. */
static double val(struct metric_registry *r, const char *name,
		  const char *const *lv)
{
	struct found q = find(r, name, lv);

	return q.n ? q.value : -1;
}

struct total_ctx {
	const char *name;
	uint64_t n;
	unsigned series;
};

static void total_one(const struct metric_family *f,
		      const struct metric_series *s, void *arg)
{
	struct total_ctx *c = arg;

	if (strcmp(metric_family_name(f), c->name))
		return;
	c->series++;
	c->n += metric_family_kind(f) == METRIC_HISTOGRAM
		    ? metric_series_count(s)
		    : (uint64_t)metric_series_value(s);
}

/* Observations (or counts) over every series of a family. */
static uint64_t total(struct metric_registry *r, const char *name,
		      unsigned *series)
{
	struct total_ctx c = {name, 0, 0};

	metric_registry_foreach(r, total_one, &c);
	if (series)
		*series = c.series;
	return c.n;
}

/* ---- records ------------------------------------------------------------- */

static struct ks_l7_event ev;

/* The fields every record of these tests shares. */
static void base(struct ks_l7_event *e, uint64_t conn, uint32_t kind,
		 uint64_t start, uint64_t end_ns, uint16_t status,
		 uint32_t flags)
{
	memset(e, 0, sizeof(*e));
	e->hdr.type = KS_EV_L7;
	e->hdr.pid = (uint32_t)(conn >> 32);
	e->conn_id = conn;
	e->start_ns = start;
	e->end_ns = end_ns;
	e->kind = kind;
	e->status = status;
	e->lport = 8080;
	e->rport = 40000;
	e->family = 2;
	e->flags = flags;
}

/* Request bytes as the kernel captures them: up to KS_L7_DATA of len. */
static void put_data(struct ks_l7_event *e, const void *head, size_t len)
{
	e->total_len = (uint32_t)len;
	e->len = (uint32_t)(len > KS_L7_DATA ? KS_L7_DATA : len);
	memcpy(e->data, head, e->len);
}

static void request_n(struct l7 *l, const struct proc_entry *e, uint64_t conn,
		      uint64_t start, const void *head, size_t len)
{
	base(&ev, conn, KS_L7_HTTP_REQUEST, start, 0, 0, 0);
	put_data(&ev, head, len);
	l7_on_event(l, e, &ev);
}

static void request(struct l7 *l, const struct proc_entry *e, uint64_t conn,
		    uint64_t start, const char *head)
{
	request_n(l, e, conn, start, head, strlen(head));
}

static void end(struct l7 *l, const struct proc_entry *e, uint64_t conn,
		uint32_t kind, uint64_t start, uint64_t end_ns, uint16_t status,
		uint32_t flags)
{
	/* An end record is only the part before data (emit() in l7.bpf.c):
	 * a heap block of that size lets ASan catch a read of data. */
	size_t n = offsetof(struct ks_l7_event, data);
	struct ks_l7_event full;
	void *d = malloc(n);

	base(&full, conn, kind, start, end_ns, status, flags);
	memcpy(d, &full, n);
	l7_on_event(l, e, d);
	free(d);
}

static void done(struct l7 *l, const struct proc_entry *e, uint64_t conn,
		 uint64_t start, uint64_t end_ns, uint16_t status)
{
	end(l, e, conn, KS_L7_HTTP_DONE, start, end_ns, status, 0);
}

/* An end record carrying its request's bytes (KS_L7_F_HEAD): the one
 * record per exchange the kernel sends unless tracing splits them. */
static void end_head(struct l7 *l, const struct proc_entry *e, uint64_t conn,
		     uint32_t kind, uint64_t start, uint64_t end_ns,
		     uint16_t status, uint32_t flags, const char *head)
{
	base(&ev, conn, kind, start, end_ns, status, flags | KS_L7_F_HEAD);
	put_data(&ev, head, strlen(head));
	l7_on_event(l, e, &ev);
}

static void entry(struct proc_entry *e, const char *service, int monitored)
{
	memset(e, 0, sizeof(*e));
	e->pid = 4242;
	snprintf(e->service, sizeof(e->service), "%s", service);
	e->monitored = monitored;
}

#define CONN(fd) ((uint64_t)4242 << 32 | (fd))

/* ---- cases --------------------------------------------------------------- */

static void test_single(void)
{
	static const struct {
		const char *head;
		uint16_t status;
		uint64_t ms; /* duration */
		const char *method, *route, *code;
		int bucket; /* index in the server's buckets */
	} cases[] = {
	    {"GET /api/users/123?x=1 HTTP/1.1\r\nHost: a\r\n\r\n", 200, 30,
	     "GET", "/api/users/{id}", "200", 3},
	    {"POST /orders HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", 201, 4,
	     "POST", "/orders", "201", 0},
	    {"DELETE /orders/0f2a6b3c-1d4e-4f5a-9b6c-7d8e9fa0b1c2 "
	     "HTTP/1.1\r\n\r\n",
	     204, 11, "DELETE", "/orders/{id}", "204", 2},
	    {"HEAD / HTTP/1.0\r\n\r\n", 304, 1, "HEAD", "/", "304", 0},
	    {"PUT /x/deadbeef00/y#frag HTTP/1.1\r\n\r\n", 500, 12000, "PUT",
	     "/x/{id}/y", "500", 14},
	    {"OPTIONS * HTTP/1.1\r\n\r\n", 200, 8, "OPTIONS", "*", "200", 1},
	    {"PATCH http://h:80/p/42 HTTP/1.1\r\n\r\n", 404, 90, "PATCH",
	     "/p/{id}", "404", 5},
	    /* The head cut by the capture before the request line ends. */
	    {"GET /only/part", 200, 1, "GET", "/only/{truncated}", "200", 0},
	};
	struct metric_registry *r = metric_registry_new(0);
	struct l7 *l = l7_new(r, NULL);
	struct l7_stats st;
	struct proc_entry e;
	struct found h;
	uint64_t start = 5000 * MS;
	size_t i;

	CHECK(l != NULL);
	if (!l)
		return;
	entry(&e, "web", 1);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		request(l, &e, CONN(10 + i), start, cases[i].head);
		done(l, &e, CONN(10 + i), start, start + cases[i].ms * MS,
		     cases[i].status);
		h = find(r, DUR,
			 V("web", cases[i].method, cases[i].route,
			   cases[i].code, "8080", "http"));
		if (h.n != 1)
			fprintf(stderr, "case %zu (%s %s) not found\n", i,
				cases[i].method, cases[i].route);
		CHECK_INT(h.n, 1);
		CHECK_INT(h.count, 1);
		CHECK(NEAR(h.sum, cases[i].ms * 1e-3));
		CHECK_INT(h.buckets[cases[i].bucket], 1);
		start += 1000 * MS;
	}
	CHECK_INT(total(r, DUR, NULL), sizeof(cases) / sizeof(cases[0]));
	/* The same label set again adds to its series. */
	request(l, &e, CONN(10), start, cases[0].head);
	done(l, &e, CONN(10), start, start + 2 * MS, 200);
	CHECK_INT(
	    count(r, V("web", "GET", "/api/users/{id}", "200", "8080", "http")),
	    2);
	/* An end before the start (clocks of another CPU) is not negative. */
	request(l, &e, CONN(10), start, cases[0].head);
	done(l, &e, CONN(10), start, start - 1, 200);
	h = find(r, DUR,
		 V("web", "GET", "/api/users/{id}", "200", "8080", "http"));
	CHECK_INT(h.count, 3);
	CHECK_INT(h.buckets[0], 2);
	CHECK(h.sum >= 0.03);
	l7_stats(l, &st);
	CHECK_INT(st.unmatched, 0);
	CHECK_INT(st.unparsed, 0);
	CHECK_INT(total(r, ENDED_IDLE, NULL), 0);
	l7_free(l);
	metric_registry_free(r);
}

static void test_pipelined(void)
{
	static const char three[] =
	    "POST /orders HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
	    "GET /health HTTP/1.1\r\n\r\n"
	    "HEAD /items/77 HTTP/1.1\r\n\r\n";
	static const char five[] = "GET /a HTTP/1.1\r\n\r\n"
				   "GET /b HTTP/1.1\r\n\r\n"
				   "GET /c HTTP/1.1\r\n\r\n"
				   "GET /d HTTP/1.1\r\n\r\n"
				   "GET /e HTTP/1.1\r\n\r\n";
	struct metric_registry *r = metric_registry_new(0);
	struct l7 *l = l7_new(r, NULL);
	struct proc_entry e;
	struct l7_stats st;
	struct found h;
	uint64_t t0 = 100 * MS;

	if (!l)
		return;
	entry(&e, "web", 1);
	/* Three requests in one read, answered in order; each answer is
	 * timed from the read. */
	request(l, &e, CONN(3), t0, three);
	done(l, &e, CONN(3), t0, t0 + 20 * MS, 201);
	done(l, &e, CONN(3), t0, t0 + 40 * MS, 200);
	done(l, &e, CONN(3), t0, t0 + 60 * MS, 200);
	h = find(r, DUR, V("web", "POST", "/orders", "201", "8080", "http"));
	CHECK_INT(h.count, 1);
	CHECK(NEAR(h.sum, 0.020));
	h = find(r, DUR, V("web", "GET", "/health", "200", "8080", "http"));
	CHECK_INT(h.count, 1);
	CHECK(NEAR(h.sum, 0.040));
	h = find(r, DUR,
		 V("web", "HEAD", "/items/{id}", "200", "8080", "http"));
	CHECK_INT(h.count, 1);
	CHECK(NEAR(h.sum, 0.060));

	/* More answers than the capture held requests: labelled as cut. */
	request(l, &e, CONN(4), t0, "GET /one HTTP/1.1\r\n\r\n");
	done(l, &e, CONN(4), t0, t0 + MS, 200);
	done(l, &e, CONN(4), t0, t0 + 2 * MS, 404);
	done(l, &e, CONN(4), t0, t0 + 3 * MS, 404);
	CHECK_INT(count(r, V("web", "GET", "/one", "200", "8080", "http")), 1);
	CHECK_INT(
	    count(r, V("web", "_OTHER", "{truncated}", "404", "8080", "http")),
	    2);

	/* More pipelined requests than are remembered. */
	request(l, &e, CONN(5), t0, five);
	done(l, &e, CONN(5), t0, t0 + MS, 200);
	done(l, &e, CONN(5), t0, t0 + MS, 200);
	done(l, &e, CONN(5), t0, t0 + MS, 200);
	done(l, &e, CONN(5), t0, t0 + MS, 200);
	done(l, &e, CONN(5), t0, t0 + MS, 200);
	CHECK_INT(count(r, V("web", "GET", "/a", "200", "8080", "http")), 1);
	CHECK_INT(count(r, V("web", "GET", "/d", "200", "8080", "http")), 1);
	CHECK_INT(count(r, V("web", "GET", "/e", "200", "8080", "http")), 0);
	CHECK_INT(
	    count(r, V("web", "_OTHER", "{truncated}", "200", "8080", "http")),
	    1);

	/* The last pipelined request cut by the capture is still one. */
	{
		char buf[KS_L7_DATA];
		size_t n = sizeof(buf);

		memset(buf, 'x', sizeof(buf));
		memcpy(buf, "GET /first HTTP/1.1\r\n\r\nGET /second/", 35);
		request_n(l, &e, CONN(6), t0, buf, n);
		done(l, &e, CONN(6), t0, t0 + MS, 200);
		done(l, &e, CONN(6), t0, t0 + MS, 200);
		CHECK_INT(
		    count(r, V("web", "GET", "/first", "200", "8080", "http")),
		    1);
		CHECK_INT(count(r, V("web", "GET", "/second/{truncated}", "200",
				     "8080", "http")),
			  1);
	}
	/* A new read of requests on the connection starts a new queue.
	 * (Ten first segments were seen: the guard makes new ones "*".) */
	request(l, &e, CONN(3), t0 + 100 * MS, "PUT /again HTTP/1.1\r\n\r\n");
	done(l, &e, CONN(3), t0, t0 + 101 * MS, 200);
	h = find(r, DUR, V("web", "PUT", "/*", "200", "8080", "http"));
	CHECK_INT(h.count, 1);
	CHECK(NEAR(h.sum, 0.001));
	CHECK_INT(val(r, COLLAPSED, V("web")), 1);
	l7_stats(l, &st);
	CHECK_INT(st.unmatched, 0);
	l7_free(l);
	metric_registry_free(r);
}

static void test_aborted_unmatched(void)
{
	struct metric_registry *r = metric_registry_new(0);
	struct l7 *l = l7_new(r, NULL);
	struct proc_entry e, off;
	struct l7_stats st;
	unsigned series;

	if (!l)
		return;
	entry(&e, "web", 1);
	entry(&off, "hidden", 0);

	request(l, &e, CONN(7), MS, "GET /slow/99 HTTP/1.1\r\n\r\n");
	end(l, &e, CONN(7), KS_L7_HTTP_ABORTED, MS, 0, 0, 0);
	CHECK_INT(val(r, ABORTED, V("web", "GET", "/slow/{id}", "8080")), 1);
	CHECK_INT(total(r, DUR, NULL), 0);
	/* The connection is done with: a late answer is no one's. */
	done(l, &e, CONN(7), MS, 2 * MS, 200);
	CHECK_INT(total(r, DUR, NULL), 0);
	l7_stats(l, &st);
	CHECK_INT(st.unmatched, 1);

	/* An answer to a request never seen (made before the agent started,
	 * or its record lost): ignored, counted. */
	done(l, &e, CONN(8), MS, 2 * MS, 200);
	end(l, &e, CONN(9), KS_L7_HTTP_ABORTED, MS, 0, 0, 0);
	CHECK_INT(total(r, DUR, NULL), 0);
	CHECK_INT(total(r, ABORTED, &series), 1);
	CHECK_INT(series, 1);
	l7_stats(l, &st);
	CHECK_INT(st.unmatched, 3);

	/* Abort of the second of two pipelined requests. */
	request(l, &e, CONN(11), MS,
		"GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\n\r\n");
	done(l, &e, CONN(11), MS, 3 * MS, 200);
	end(l, &e, CONN(11), KS_L7_HTTP_ABORTED, MS, 0, 0, 0);
	CHECK_INT(count(r, V("web", "GET", "/a", "200", "8080", "http")), 1);
	CHECK_INT(val(r, ABORTED, V("web", "POST", "/b", "8080")), 1);

	/* An end made by the idle sweep is counted. */
	request(l, &e, CONN(12), MS, "GET /stream HTTP/1.1\r\n\r\n");
	end(l, &e, CONN(12), KS_L7_HTTP_DONE, MS, 9 * MS, 200,
	    KS_L7_F_END_IDLE);
	CHECK_INT(count(r, V("web", "GET", "/stream", "200", "8080", "http")),
		  1);
	CHECK_INT(val(r, ENDED_IDLE, V("web")), 1);

	/* Unmonitored processes add nothing and disturb nothing. */
	request(l, &off, CONN(13), MS, "GET /x HTTP/1.1\r\n\r\n");
	done(l, &off, CONN(13), MS, 2 * MS, 200);
	end(l, &off, CONN(13), KS_L7_HTTP_ABORTED, MS, 0, 0, 0);
	CHECK_INT(count(r, V("hidden", "GET", "/x", "200", "8080", "http")), 0);
	l7_stats(l, &st);
	CHECK_INT(st.unmatched, 3);
	l7_free(l);
	metric_registry_free(r);
}

/* One record per exchange: the request's bytes ride on its end. */
static void test_head_on_end(void)
{
	struct metric_registry *r = metric_registry_new(0);
	struct l7 *l = l7_new(r, NULL);
	struct proc_entry e;
	struct l7_stats st;
	struct found h;

	if (!l)
		return;
	entry(&e, "web", 1);
	end_head(l, &e, CONN(20), KS_L7_HTTP_DONE, MS, 31 * MS, 200, 0,
		 "GET /users/17 HTTP/1.1\r\nHost: a\r\n\r\n");
	h = find(r, DUR, V("web", "GET", "/users/{id}", "200", "8080", "http"));
	CHECK_INT(h.count, 1);
	CHECK(NEAR(h.sum, 0.030));
	/* Keep-alive: the next exchange's record brings its own request. */
	end_head(l, &e, CONN(20), KS_L7_HTTP_DONE, 40 * MS, 41 * MS, 404, 0,
		 "DELETE /users/18 HTTP/1.1\r\n\r\n");
	CHECK_INT(count(r, V("web", "DELETE", "/users/{id}", "404", "8080",
			     "http")),
		  1);
	/* Pipelined: the first end brings the read's three requests, the
	 * two ends after it none. */
	end_head(l, &e, CONN(21), KS_L7_HTTP_DONE, MS, 3 * MS, 200, 0,
		 "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n"
		 "POST /c HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
	done(l, &e, CONN(21), MS, 5 * MS, 200);
	end(l, &e, CONN(21), KS_L7_HTTP_DONE, MS, 7 * MS, 201,
	    KS_L7_F_END_IDLE);
	CHECK_INT(count(r, V("web", "GET", "/a", "200", "8080", "http")), 1);
	h = find(r, DUR, V("web", "GET", "/b", "200", "8080", "http"));
	CHECK_INT(h.count, 1);
	CHECK(NEAR(h.sum, 0.004));
	CHECK_INT(count(r, V("web", "POST", "/c", "201", "8080", "http")), 1);
	CHECK_INT(val(r, ENDED_IDLE, V("web")), 1);
	/* Aborted: the request is known from the abort record itself. */
	end_head(l, &e, CONN(22), KS_L7_HTTP_ABORTED, MS, 0, 0, 0,
		 "PUT /slow/5 HTTP/1.1\r\n\r\n");
	CHECK_INT(val(r, ABORTED, V("web", "PUT", "/slow/{id}", "8080")), 1);
	/* Garbage instead of a request: unparsed, nothing observed. */
	end_head(l, &e, CONN(23), KS_L7_HTTP_DONE, MS, 2 * MS, 200, 0,
		 "\x16\x03\x01garbage");
	CHECK_INT(total(r, DUR, NULL), 5);
	l7_stats(l, &st);
	CHECK_INT(st.unparsed, 1);
	CHECK_INT(st.unmatched, 1);
	l7_free(l);
	metric_registry_free(r);
}

/* ---- server exchanges counted in the kernel ------------------------------ */

/* A server label set's key as the kernel makes it (route: any hash). */
static void srv_key(struct ks_http_key *k, uint32_t tgid,
		    const char *method, uint16_t status, uint64_t route)
{
	uint64_t w = 0;

	memset(k, 0, sizeof(*k));
	k->tgid = tgid;
	k->rport = 8080;
	k->status = status;
	k->family = KS_HTTP_KEY_SERVER;
	memcpy(k->raddr, &route, sizeof(route));
	memcpy(&w, method, strlen(method));
	memcpy(k->method, &w, sizeof(w));
}

/* An end record that claimed slot `slot` for its label set. */
static void claim(struct l7 *l, const struct proc_entry *e, uint64_t conn,
		  uint32_t slot, uint64_t start, uint64_t end_ns,
		  uint16_t status, const char *head)
{
	base(&ev, conn, KS_L7_HTTP_DONE, start, end_ns, status, KS_L7_F_HEAD);
	put_data(&ev, head, strlen(head));
	ev.srv.slot = slot + 1;
	l7_on_event(l, e, &ev);
}

static void test_kernel_counted(void)
{
	struct metric_registry *r = metric_registry_new(0);
	struct l7 *l = l7_new(r, NULL);
	const char *const *lv = V("web", "GET", "/users/{id}", "200", "8080",
				  "http");
	struct ks_http_key k, k2;
	struct ks_http_val v = {0};
	struct proc_entry e, gone;
	struct l7_stats st;
	struct found h;
	int i;

	if (!l)
		return;
	entry(&e, "web", 1);
	srv_key(&k, 4242, "GET", 200, 0x1234);
	/* Counts in a slot no record named yet: waited for. */
	v.count = 2;
	v.sum_ns = 8 * MS;
	v.bucket[0] = 2;
	CHECK_INT(l7_fold_http_slot(l, &e, 3, &k, &v, 0), 0);
	CHECK_INT(count(r, lv), 0);
	/* The record that claimed the slot is itself counted, and names
	 * the route of what the slot counts. */
	claim(l, &e, CONN(30), 3, MS, 11 * MS, 200,
	      "GET /users/5 HTTP/1.1\r\nHost: a\r\n\r\n");
	CHECK_INT(count(r, lv), 1);
	CHECK_INT(l7_fold_http_slot(l, &e, 3, &k, &v, 0), 0);
	h = find(r, DUR, lv);
	CHECK_INT(h.count, 3);
	CHECK(NEAR(h.sum, 0.018));
	/* Growth only, bucket by bucket. */
	v.count = 3;
	v.sum_ns += 30 * MS;
	v.bucket[3] = 1; /* <= 50 ms */
	CHECK_INT(l7_fold_http_slot(l, &e, 3, &k, &v, 0), 0);
	CHECK_INT(l7_fold_http_slot(l, &e, 3, &k, &v, 0), 0);
	h = find(r, DUR, lv);
	CHECK_INT(h.count, 4);
	CHECK(NEAR(h.sum, 0.048));
	CHECK_INT(find(r, DUR, lv).n, 1);
	/* Another status of the same route: a slot of its own. */
	srv_key(&k2, 4242, "GET", 404, 0x1234);
	claim(l, &e, CONN(31), 4, MS, 2 * MS, 404,
	      "GET /users/6 HTTP/1.1\r\n\r\n");
	v.count = 1;
	memset(v.bucket, 0, sizeof(v.bucket));
	v.bucket[0] = 1;
	v.sum_ns = MS;
	CHECK_INT(l7_fold_http_slot(l, &e, 4, &k2, &v, 0), 0);
	CHECK_INT(count(r, V("web", "GET", "/users/{id}", "404", "8080",
			     "http")),
		  2);
	/* A slot now holding another label set than its record said (the
	 * record of the new claim not come yet): not folded as the old. */
	srv_key(&k2, 4242, "POST", 201, 0x99);
	CHECK_INT(l7_fold_http_slot(l, &e, 4, &k2, &v, 0), 0);
	CHECK_INT(total(r, DUR, NULL), 6);
	/* An exited process: released, then its last counts folded. */
	entry(&gone, "web", 1);
	gone.exit_ns = 1;
	memset(&v, 0, sizeof(v));
	v.count = 4;
	v.sum_ns = 38 * MS;
	v.bucket[0] = 3;
	v.bucket[3] = 1;
	CHECK_INT(l7_fold_http_slot(l, &gone, 3, &k, &v, 0), 1);
	v.count = 5;
	v.bucket[0] = 4;
	CHECK_INT(l7_fold_http_slot(l, &gone, 3, &k, &v, 1), 0);
	CHECK_INT(count(r, lv), 6);
	/* The slot's next label set counts from zero. */
	claim(l, &e, CONN(32), 3, MS, 2 * MS, 200,
	      "GET /users/7 HTTP/1.1\r\n\r\n");
	memset(&v, 0, sizeof(v));
	v.count = 1;
	v.bucket[0] = 1;
	CHECK_INT(l7_fold_http_slot(l, &e, 3, &k, &v, 0), 0);
	CHECK_INT(count(r, lv), 8);
	/* Idle for a minute of folds: released, so that another label set
	 * may have the slot. */
	for (i = 0; i < 119; i++)
		CHECK_INT(l7_fold_http_slot(l, &e, 3, &k, &v, 0), 0);
	CHECK_INT(l7_fold_http_slot(l, &e, 3, &k, &v, 0), 1);
	CHECK_INT(l7_fold_http_slot(l, &e, 3, &k, &v, 1), 0);
	CHECK_INT(count(r, lv), 8);
	/* A request the parser refuses: its slot's counts are unparsed. */
	srv_key(&k2, 4242, "DELEX", 400, 0x77);
	claim(l, &e, CONN(33), 5, MS, 2 * MS, 400,
	      "DELEX /a HTTP/1.1\r\n\r\n");
	v.count = 2;
	v.bucket[0] = 2;
	CHECK_INT(l7_fold_http_slot(l, &e, 5, &k2, &v, 0), 0);
	l7_stats(l, &st);
	CHECK_INT(st.unparsed, 3);
	/* A slot whose record never comes: unmatched after 10 folds. */
	srv_key(&k2, 4242, "PUT", 200, 0x55);
	v.count = 7;
	for (i = 0; i < 9; i++)
		CHECK_INT(l7_fold_http_slot(l, &e, 6, &k2, &v, 0), 0);
	CHECK_INT(l7_fold_http_slot(l, &e, 6, &k2, &v, 0), 1);
	v.count = 8;
	CHECK_INT(l7_fold_http_slot(l, &e, 6, &k2, &v, 1), 0);
	l7_stats(l, &st);
	CHECK_INT(st.unmatched, 3 + 8);
	CHECK_INT(total(r, DUR, NULL), 10);
	/* Its record coming after that, late: the record's own exchange is
	 * counted, the slot's counts stay unmatched (not counted twice). */
	srv_key(&k2, 4242, "PUT", 200, 0x56);
	v.count = 2;
	for (i = 0; i < 9; i++)
		CHECK_INT(l7_fold_http_slot(l, &e, 7, &k2, &v, 0), 0);
	CHECK_INT(l7_fold_http_slot(l, &e, 7, &k2, &v, 0), 1);
	claim(l, &e, CONN(34), 7, MS, 2 * MS, 200,
	      "PUT /late HTTP/1.1\r\n\r\n");
	v.count = 3;
	CHECK_INT(l7_fold_http_slot(l, &e, 7, &k2, &v, 1), 0);
	l7_stats(l, &st);
	CHECK_INT(st.unmatched, 3 + 8 + 3);
	CHECK_INT(count(r, V("web", "PUT", "/late", "200", "8080", "http")), 1);
	l7_free(l);
	metric_registry_free(r);
}

static void test_route_guard(void)
{
	struct metric_registry *r = metric_registry_new(0);
	struct l7 *l = l7_new(r, NULL);
	struct proc_entry shop, other;
	char head[128], route[64];
	unsigned i, series;

	if (!l)
		return;
	entry(&shop, "shop", 1);
	entry(&other, "other", 1);
	/* Twelve distinct names at one position: ten keep their name. */
	for (i = 0; i < 12; i++) {
		snprintf(head, sizeof(head),
			 "GET /catalog/item-%c/reviews HTTP/1.1\r\n\r\n",
			 'a' + i);
		request(l, &shop, CONN(20), MS, head);
		done(l, &shop, CONN(20), MS, 2 * MS, 200);
	}
	for (i = 0; i < 10; i++) {
		snprintf(route, sizeof(route), "/catalog/item-%c/reviews",
			 'a' + i);
		CHECK_INT(
		    count(r, V("shop", "GET", route, "200", "8080", "http")),
		    1);
	}
	CHECK_INT(count(r, V("shop", "GET", "/catalog/*/reviews", "200", "8080",
			     "http")),
		  2);
	CHECK_INT(val(r, COLLAPSED, V("shop")), 2);
	/* A name seen before the position filled keeps it. */
	request(l, &shop, CONN(20), MS,
		"GET /catalog/item-c/reviews HTTP/1.1\r\n\r\n");
	done(l, &shop, CONN(20), MS, 2 * MS, 200);
	CHECK_INT(count(r, V("shop", "GET", "/catalog/item-c/reviews", "200",
			     "8080", "http")),
		  2);
	/* Ids are one value, not many. */
	for (i = 0; i < 20; i++) {
		snprintf(head, sizeof(head), "GET /users/%u HTTP/1.1\r\n\r\n",
			 1000 + i);
		request(l, &shop, CONN(21), MS, head);
		done(l, &shop, CONN(21), MS, 2 * MS, 200);
	}
	CHECK_INT(
	    count(r, V("shop", "GET", "/users/{id}", "200", "8080", "http")),
	    20);
	CHECK_INT(val(r, COLLAPSED, V("shop")), 2);
	/* Each service has its own guard. */
	request(l, &other, CONN(22), MS,
		"GET /catalog/item-z/reviews HTTP/1.1\r\n\r\n");
	done(l, &other, CONN(22), MS, 2 * MS, 200);
	CHECK_INT(count(r, V("other", "GET", "/catalog/item-z/reviews", "200",
			     "8080", "http")),
		  1);
	CHECK_INT(total(r, COLLAPSED, &series), 2);
	CHECK_INT(series, 1);
	l7_free(l);
	metric_registry_free(r);
}

static uint64_t rng = 0x2545f4914f6cdd1dULL;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

static void test_garbage(void)
{
	static const char *const samples[] = {
	    "GET /a/b?c=d HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n"
	    "abcGET /z HTTP/1.1\r\n\r\n",
	    "POST /upload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
	    "GET /\x01\x02 HTTP/1.1\r\n\r\n",
	    "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
	    "GET",
	    "",
	};
	struct metric_registry *r = metric_registry_new(50);
	struct l7 *l = l7_new(r, NULL);
	uint8_t buf[KS_L7_DATA];
	struct proc_entry e;
	struct l7_stats st;
	unsigned i, j, n;

	if (!l)
		return;
	entry(&e, "fuzz", 1);
	for (i = 0; i < 20000; i++) {
		const char *s = samples[i % 6];
		size_t len = strlen(s);

		n = len ? rnd() % (len + 1) : 0;
		memcpy(buf, s, n);
		/* Flip some bytes, or fill with noise. */
		if (i % 3 == 0)
			for (j = 0; j < 4 && n; j++)
				buf[rnd() % n] = (uint8_t)rnd();
		if (i % 7 == 0) {
			n = rnd() % (KS_L7_DATA + 1);
			for (j = 0; j < n; j++)
				buf[j] = (uint8_t)rnd();
		}
		request_n(l, &e, CONN(30 + rnd() % 4), MS, buf, n);
		for (j = rnd() % 3; j > 0; j--)
			end(l, &e, CONN(30 + rnd() % 4),
			    rnd() % 4 ? KS_L7_HTTP_DONE : KS_L7_HTTP_ABORTED,
			    MS, rnd(), (uint16_t)rnd(), rnd());
	}
	/* A length beyond the data array (a bad record) is clamped. */
	memset(&ev, 0, sizeof(ev));
	ev.kind = KS_L7_HTTP_REQUEST;
	ev.conn_id = CONN(40);
	ev.len = 100000;
	ev.total_len = 100000;
	memcpy(ev.data, "GET /big HTTP/1.1\r\n", 19);
	memset(ev.data + 19, 'a', sizeof(ev.data) - 19);
	l7_on_event(l, &e, &ev);
	done(l, &e, CONN(40), MS, 2 * MS, 200);
	/* Unknown record kinds go to the client side, which ignores them. */
	memset(&ev, 0, sizeof(ev));
	ev.kind = 99;
	ev.conn_id = CONN(41);
	l7_on_event(l, &e, &ev);
	l7_stats(l, &st);
	CHECK(st.unparsed > 0);
	CHECK(st.unmatched > 0);
	CHECK(total(r, DUR, NULL) > 0);
	l7_free(l);
	metric_registry_free(r);
	l7_free(NULL);
}

int main(void)
{
	test_single();
	test_pipelined();
	test_aborted_unmatched();
	test_head_on_end();
	test_kernel_counted();
	test_route_guard();
	test_garbage();
	return check_summary();
}
