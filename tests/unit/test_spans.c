/*
 * test_spans.c - unit test for spans (agent/spans.c), head sampling and
 * its configuration (agent/sampler.c) and the OTLP trace encoder
 * (agent/otlp_traces.c).
 *
 * Synthetic exchanges go in the way l7.c and l7_client.c hand them over
 * (and, for the traceparent capture limit, as kernel records through l7);
 * spans come out of the ring and are checked field by field: ids and
 * parents, names, attributes, status, times in unix ns. The parenting
 * rules are driven through their ambiguous cases (two requests in flight,
 * a request reaching the agent late, an unparsed request, a closed
 * parent, a full process), sampling through its decisions (deterministic
 * per trace id, parent-based, errors and slow spans kept with their whole
 * local trace), and the encoder through protobuf-c's generated decoder.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "l7.h"
#include "otlp_traces.h"
#include "sampler.h"
#include "spans.h"

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

#define MS 1000000ULL
#define OFFSET 1700000000000000000LL /* mono -> unix in these tests */
#define PID 4242

static struct span out[SPANS_RING];

static struct trace_config cfg(double ratio, bool parent_based,
			       uint64_t slow_ns)
{
	struct trace_config c = {.enabled = true,
				 .parent_based = parent_based,
				 .ratio = ratio,
				 .keep_slower_ns = slow_ns};

	c.threshold = sampler_threshold(ratio);
	return c;
}

static struct spans *mk(struct trace_config c, bool push)
{
	struct spans_opts o = {.cfg = c,
			       .mono_to_unix_ns = OFFSET,
			       .push = push,
			       .seed = 12345,
			       .host_name = "testhost"};

	return spans_new(&o);
}

static void req(struct spans *s, uint64_t conn, uint64_t start,
		const char *path, const struct w3c_traceparent *tp)
{
	struct span_server_req r = {.pid = PID,
				    .service = "api",
				    .conn_id = conn,
				    .start_ns = start,
				    .method = "GET",
				    .route = path,
				    .path = path,
				    .path_len = strlen(path),
				    .tp = tp};

	spans_server_request(s, &r);
}

static void end(struct spans *s, uint64_t conn, uint64_t t, unsigned status)
{
	static const uint8_t addr[16] = {10, 0, 0, 7};
	struct span_server_end e = {.pid = PID,
				    .conn_id = conn,
				    .end_ns = t,
				    .status = status,
				    .lport = 8080,
				    .rport = 50000,
				    .family = 2,
				    .raddr = addr};

	spans_server_end(s, &e);
}

/* A SELECT on users from start to end, with an error if err != "". */
static void sql(struct spans *s, uint64_t start, uint64_t endt,
		const struct span_parent *par, const char *err)
{
	struct span_client_op op = {.pid = PID,
				    .service = "api",
				    .proto = SPAN_PROTO_PG,
				    .start_ns = start,
				    .end_ns = endt,
				    .operation = "SELECT",
				    .collection = "users",
				    .query_text =
					"SELECT * FROM users WHERE id = $1",
				    .error = err,
				    .peer_addr = "127.0.0.1",
				    .peer_port = 5432};

	spans_client(s, &op, par);
}

static size_t recent(struct spans *s)
{
	return spans_recent(s, out, SPANS_RING);
}

static const struct span *by_name(size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(span_name(&out[i]), name))
			return &out[i];
	return NULL;
}

static int64_t iattr(const struct span *sp, const char *key)
{
	int64_t v = -1;

	span_attr_int(sp, key, &v);
	return v;
}

static const char *sattr(const struct span *sp, const char *key)
{
	const char *v = span_attr_str(sp, key);

	return v ? v : "(none)";
}

static bool zero(const uint8_t *b, size_t n)
{
	while (n--)
		if (*b++)
			return false;
	return true;
}

/* ---- traceparent ------------------------------------------------------- */

static void test_traceparent(void)
{
	static const struct {
		const char *in;
		int ok;
	} t[] = {
	    {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 1},
	    {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", 1},
	    /* a later version may append fields after a '-' */
	    {"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz", 1},
	    {"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 1},
	    /* ... but version 00 is exactly 55 characters */
	    {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz", 0},
	    {"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", 0},
	    {"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 0},
	    {"0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 0},
	    {"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", 0},
	    {"00-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b7-01", 0},
	    {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01", 0},
	    {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1", 0},
	    {"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", 0},
	    {"00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01", 0},
	    {"0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 0},
	    {"00-00000000000000000000000000000000-00f067aa0ba902b7-01", 0},
	    {"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", 0},
	    {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902g7-01", 0},
	    {"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 0},
	    {"", 0},
	};
	struct w3c_traceparent tp;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int rc = w3c_traceparent_parse(t[i].in, strlen(t[i].in), &tp);

		if ((rc == 0) != t[i].ok)
			fprintf(stderr, "traceparent case %zu: %s\n", i,
				t[i].in);
		CHECK_INT(rc == 0, t[i].ok);
	}
	CHECK_INT(w3c_traceparent_parse(t[0].in, strlen(t[0].in), &tp), 0);
	CHECK_INT(tp.trace_id[0], 0x4b);
	CHECK_INT(tp.trace_id[15], 0x36);
	CHECK_INT(tp.parent_id[7], 0xb7);
	CHECK_INT(tp.flags, 1);
}

/* ---- span building ------------------------------------------------------ */

static void test_server_span(void)
{
	struct spans *s = mk(cfg(1, true, 0), false);
	struct spans_stats st;
	const struct span *sp;

	req(s, 1, 1000 * MS, "/users/{id}", NULL);
	end(s, 1, 1012 * MS, 200);
	req(s, 2, 2000 * MS, "/boom", NULL);
	end(s, 2, 2001 * MS, 503);
	CHECK_INT(recent(s), 2);
	sp = &out[0];
	CHECK_STR(span_name(sp), "GET /users/{id}");
	CHECK_INT(sp->kind, SPAN_KIND_SERVER);
	CHECK_INT(sp->start_unix_ns, OFFSET + 1000 * MS);
	CHECK_INT(sp->end_unix_ns, OFFSET + 1012 * MS);
	CHECK_STR(sattr(sp, "http.request.method"), "GET");
	CHECK_STR(sattr(sp, "http.route"), "/users/{id}");
	CHECK_STR(sattr(sp, "url.path"), "/users/{id}");
	CHECK_STR(sattr(sp, "url.scheme"), "http");
	CHECK_INT(iattr(sp, "http.response.status_code"), 200);
	CHECK_INT(iattr(sp, "server.port"), 8080);
	CHECK_STR(sattr(sp, "client.address"), "10.0.0.7");
	CHECK_INT(iattr(sp, "client.port"), 50000);
	CHECK_INT(sp->error, 0);
	CHECK_STR(sattr(sp, "error.type"), "(none)");
	CHECK_INT(sp->has_parent, 0);
	CHECK(!zero(sp->trace_id, 16) && !zero(sp->span_id, 8));
	CHECK_INT(sp->flags, SPAN_FLAG_HAS_IS_REMOTE | SPAN_FLAG_SAMPLED);
	CHECK_STR(sp->service, "api");
	CHECK_INT(sp->pid, PID);
	/* a 5xx is an error; trace ids differ per request */
	CHECK_INT(out[1].error, 1);
	CHECK_STR(sattr(&out[1], "error.type"), "503");
	CHECK(memcmp(out[0].trace_id, out[1].trace_id, 16) != 0);
	spans_get_stats(s, &st);
	CHECK_INT(st.server, 2);
	CHECK_INT(st.kept, 2);
	spans_free(s);
}

static void test_client_spans(void)
{
	struct spans *s = mk(cfg(1, true, 0), false);
	struct span_client_op http = {.pid = PID,
				      .service = "api",
				      .proto = SPAN_PROTO_HTTP,
				      .start_ns = 10 * MS,
				      .end_ns = 15 * MS,
				      .operation = "POST",
				      .status = 404,
				      .peer_addr = "10.1.2.3",
				      .peer_port = 80};
	struct span_client_op rd = {.pid = PID,
				    .service = "api",
				    .proto = SPAN_PROTO_REDIS,
				    .start_ns = 20 * MS,
				    .end_ns = 21 * MS,
				    .operation = "GET",
				    .collection = "",
				    .query_text = "GET",
				    .error = "WRONGTYPE",
				    .peer_addr = "127.0.0.1",
				    .peer_port = 6379};
	struct span_client_op other = {.pid = PID,
				       .service = "api",
				       .proto = SPAN_PROTO_PG,
				       .start_ns = 30 * MS,
				       .end_ns = 31 * MS,
				       .operation = "_OTHER",
				       .collection = "",
				       .error = ""};
	const struct span *sp;
	size_t n;

	spans_client(s, &http, NULL);
	spans_client(s, &rd, NULL);
	sql(s, 25 * MS, 27 * MS, NULL, "");
	spans_client(s, &other, NULL);
	n = recent(s);
	CHECK_INT(n, 4);
	sp = by_name(n, "POST");
	if (sp) {
		CHECK_INT(sp->kind, SPAN_KIND_CLIENT);
		CHECK_STR(sattr(sp, "http.request.method"), "POST");
		CHECK_STR(sattr(sp, "server.address"), "10.1.2.3");
		CHECK_INT(iattr(sp, "server.port"), 80);
		CHECK_INT(iattr(sp, "http.response.status_code"), 404);
		/* clients: >= 400 is an error */
		CHECK_INT(sp->error, 1);
		CHECK_STR(sattr(sp, "error.type"), "404");
		CHECK_INT(sp->end_unix_ns - sp->start_unix_ns, 5 * MS);
	}
	CHECK(sp != NULL);
	sp = by_name(n, "GET");
	if (sp) {
		CHECK_STR(sattr(sp, "db.system.name"), "redis");
		CHECK_STR(sattr(sp, "db.operation.name"), "GET");
		CHECK_STR(sattr(sp, "db.query.text"), "(none)");
		CHECK_INT(sp->error, 1);
		CHECK_STR(sattr(sp, "error.type"), "WRONGTYPE");
	}
	CHECK(sp != NULL);
	sp = by_name(n, "SELECT users");
	if (sp) {
		CHECK_STR(sattr(sp, "db.system.name"), "postgresql");
		CHECK_STR(sattr(sp, "db.collection.name"), "users");
		CHECK_STR(sattr(sp, "db.query.text"),
			  "SELECT * FROM users WHERE id = $1");
		CHECK_INT(iattr(sp, "server.port"), 5432);
		CHECK_INT(sp->error, 0);
		CHECK_INT(sp->has_parent, 0);
	}
	CHECK(sp != NULL);
	/* no operation name: the span is named after the system */
	sp = by_name(n, "postgresql");
	CHECK(sp != NULL && !span_attr_str(sp, "db.operation.name"));
	spans_free(s);
}

/* ---- parenting --------------------------------------------------------- */

static void test_parent_one_in_flight(void)
{
	struct spans *s = mk(cfg(1, true, 0), false);
	struct span_parent par;
	struct spans_stats st;
	const struct span *srv, *db;
	size_t n;

	req(s, 1, 100 * MS, "/db/user/{id}", NULL);
	spans_parent_at(s, PID, 101 * MS, &par);
	CHECK(par.exch >= 0);
	/* a request that starts after the statement does not matter */
	req(s, 2, 102 * MS, "/later", NULL);
	sql(s, 101 * MS, 103 * MS, &par, "");
	/* the child waits for its parent */
	CHECK_INT(recent(s), 0);
	end(s, 1, 104 * MS, 200);
	end(s, 2, 105 * MS, 200);
	n = recent(s);
	CHECK_INT(n, 3);
	srv = by_name(n, "GET /db/user/{id}");
	db = by_name(n, "SELECT users");
	CHECK(srv && db);
	if (srv && db) {
		CHECK(!memcmp(db->trace_id, srv->trace_id, 16));
		CHECK(!memcmp(db->parent_id, srv->span_id, 8));
		CHECK_INT(db->has_parent, 1);
		CHECK_INT(db->flags,
			  SPAN_FLAG_HAS_IS_REMOTE | SPAN_FLAG_SAMPLED);
	}
	spans_get_stats(s, &st);
	CHECK_INT(st.linked, 1);
	CHECK_INT(st.client, 1);
	spans_free(s);
}

static void test_parent_ambiguous(void)
{
	struct spans *s = mk(cfg(1, true, 0), false);
	struct span_parent par;
	struct spans_stats st;
	size_t n, i;

	/* two requests in flight when the statement starts */
	req(s, 1, 100 * MS, "/a", NULL);
	req(s, 2, 100 * MS + 5, "/b", NULL);
	spans_parent_at(s, PID, 101 * MS, &par);
	CHECK_INT(par.exch, -1);
	CHECK_INT(par.reason, SPAN_UNLINKED_AMBIGUOUS);
	sql(s, 101 * MS, 102 * MS, &par, "");
	end(s, 1, 103 * MS, 200);
	end(s, 2, 104 * MS, 200);

	/* one in flight at the snapshot, but another that started before
	 * the statement reached the agent after it (other CPU) */
	req(s, 3, 200 * MS, "/c", NULL);
	spans_parent_at(s, PID, 201 * MS, &par);
	CHECK(par.exch >= 0);
	req(s, 4, 200 * MS + 500, "/late", NULL);
	sql(s, 201 * MS, 202 * MS, &par, "");
	end(s, 3, 203 * MS, 200);
	end(s, 4, 204 * MS, 200);

	/* nothing in flight */
	spans_parent_at(s, PID, 301 * MS, &par);
	CHECK_INT(par.reason, SPAN_UNLINKED_NONE_IN_FLIGHT);
	sql(s, 301 * MS, 302 * MS, &par, "");
	/* a process never seen serving */
	spans_parent_at(s, PID + 1, 301 * MS, &par);
	CHECK_INT(par.reason, SPAN_UNLINKED_NONE_IN_FLIGHT);

	/* the only request in flight did not parse: no span to join */
	{
		struct span_server_req r = {.pid = PID,
					    .service = "api",
					    .conn_id = 9,
					    .start_ns = 400 * MS};

		spans_server_request(s, &r);
	}
	spans_parent_at(s, PID, 401 * MS, &par);
	CHECK_INT(par.reason, SPAN_UNLINKED_UNKNOWN);
	sql(s, 401 * MS, 402 * MS, &par, "");
	end(s, 9, 403 * MS, 200);
	/* no snapshot at all */
	sql(s, 501 * MS, 502 * MS, NULL, "");

	spans_get_stats(s, &st);
	CHECK_INT(st.linked, 0);
	CHECK_INT(st.unlinked[SPAN_UNLINKED_AMBIGUOUS], 2);
	CHECK_INT(st.unlinked[SPAN_UNLINKED_NONE_IN_FLIGHT], 1);
	CHECK_INT(st.unlinked[SPAN_UNLINKED_UNKNOWN], 2);
	CHECK_INT(st.server, 4); /* the unparsed request has no span */
	n = recent(s);
	CHECK_INT(n, 9);
	for (i = 0; i < n; i++)
		if (out[i].kind == SPAN_KIND_CLIENT)
			CHECK_INT(out[i].has_parent, 0);
	spans_free(s);
}

static void test_parent_many_open(void)
{
	struct spans *s = mk(cfg(1, true, 0), false);
	struct span_parent par;
	struct spans_stats st;
	unsigned i;

	/* more open requests than a process entry tracks */
	for (i = 0; i < 20; i++)
		req(s, 100 + i, (100 + i) * MS, "/x", NULL);
	for (i = 0; i < 19; i++)
		end(s, 100 + i, 200 * MS, 200);
	/* one open left, but an untracked one may be it: ambiguous */
	spans_parent_at(s, PID, 300 * MS, &par);
	CHECK_INT(par.exch, -1);
	end(s, 119, 301 * MS, 200);
	spans_parent_at(s, PID, 302 * MS, &par);
	CHECK_INT(par.reason, SPAN_UNLINKED_NONE_IN_FLIGHT);
	spans_get_stats(s, &st);
	CHECK_INT(st.dropped[SPAN_DROP_UNTRACKED], 4);
	spans_free(s);
}

static void test_child_after_parent(void)
{
	struct spans *s = mk(cfg(0, true, 0), false);
	struct span_parent par;
	size_t n;

	/* ratio 0: the trace is not sampled ... */
	req(s, 1, 100 * MS, "/fire", NULL);
	spans_parent_at(s, PID, 101 * MS, &par);
	end(s, 1, 102 * MS, 200);
	CHECK_INT(recent(s), 0);
	/* ... a child ending after its parent follows that decision, but an
	 * error is kept by itself (with the parent's ids) */
	sql(s, 101 * MS, 103 * MS, &par, "");
	CHECK_INT(recent(s), 0);
	spans_parent_at(s, PID, 100 * MS, &par); /* stale: nothing open */
	req(s, 2, 200 * MS, "/fire", NULL);
	spans_parent_at(s, PID, 201 * MS, &par);
	end(s, 2, 202 * MS, 200);
	sql(s, 201 * MS, 203 * MS, &par, "57014");
	n = recent(s);
	CHECK_INT(n, 1);
	CHECK_INT(out[0].has_parent, 1);
	CHECK_INT(out[0].error, 1);
	CHECK_STR(sattr(&out[0], "db.response.status_code"), "57014");
	spans_free(s);
}

/* ---- sampling ----------------------------------------------------------- */

static void tid_with_tail(uint8_t id[16], uint64_t tail56)
{
	int i;

	memset(id, 0xab, 16);
	for (i = 15; i >= 9; i--, tail56 >>= 8)
		id[i] = (uint8_t)tail56;
}

static void test_sampler(void)
{
	struct trace_config c = cfg(0.5, false, 0);
	uint8_t id[16];
	unsigned i, kept = 0;
	uint64_t r = 88172645463325252ULL;

	CHECK_INT(sampler_threshold(1), 0);
	CHECK_INT(sampler_threshold(0), 1ULL << 56);
	CHECK_INT(sampler_threshold(0.5), 1ULL << 55);
	tid_with_tail(id, 1ULL << 55);
	CHECK(sampler_keep_trace(&c, id));
	tid_with_tail(id, (1ULL << 55) - 1);
	CHECK(!sampler_keep_trace(&c, id));
	/* only the last 7 bytes count */
	id[0] = 0;
	id[8] = 0xff;
	CHECK(!sampler_keep_trace(&c, id));
	/* parent-based follows the flag; traceidratio does not */
	c.parent_based = true;
	CHECK(sampler_head(&c, id, true, true));
	CHECK(!sampler_head(&c, id, false, true));
	c.parent_based = false;
	CHECK(!sampler_head(&c, id, true, true));
	/* the share kept over many ids is the ratio (fixed xorshift ids) */
	c = cfg(0.25, true, 0);
	for (i = 0; i < 20000; i++) {
		unsigned k;

		for (k = 0; k < 16; k++) {
			r ^= r << 13;
			r ^= r >> 7;
			r ^= r << 17;
			id[k] = (uint8_t)r;
		}
		kept += sampler_keep_trace(&c, id);
	}
	CHECK(kept > 4700 && kept < 5300);
}

static void test_sampling_spans(void)
{
	/* 00-...-00: the caller did not sample; ratio 1 is not consulted */
	struct w3c_traceparent tp = {.version = 0, .flags = 0};
	struct spans *s = mk(cfg(1, true, 50 * MS), false);
	struct span_parent par;
	struct spans_stats st;
	const struct span *srv;
	size_t n;

	memset(tp.trace_id, 0x11, 16);
	memset(tp.parent_id, 0x22, 8);
	req(s, 1, 100 * MS, "/quiet", &tp);
	spans_parent_at(s, PID, 101 * MS, &par);
	sql(s, 101 * MS, 102 * MS, &par, "");
	end(s, 1, 103 * MS, 200);
	CHECK_INT(recent(s), 0);
	/* the same with a failing statement: the whole local trace kept */
	req(s, 2, 200 * MS, "/loud", &tp);
	spans_parent_at(s, PID, 201 * MS, &par);
	sql(s, 201 * MS, 202 * MS, &par, "");
	sql(s, 202 * MS, 203 * MS, &par, "23505");
	end(s, 2, 204 * MS, 200);
	n = recent(s);
	CHECK_INT(n, 3);
	srv = by_name(n, "GET /loud");
	CHECK(srv != NULL);
	if (srv) {
		CHECK(!memcmp(srv->trace_id, tp.trace_id, 16));
		CHECK(!memcmp(srv->parent_id, tp.parent_id, 8));
		CHECK_INT(srv->has_parent, 1);
		CHECK_INT(srv->flags,
			  SPAN_FLAG_HAS_IS_REMOTE | SPAN_FLAG_IS_REMOTE);
	}
	/* and slow (>= 50 ms) with no error: kept too */
	req(s, 3, 300 * MS, "/slow", &tp);
	spans_parent_at(s, PID, 301 * MS, &par);
	sql(s, 301 * MS, 302 * MS, &par, "");
	end(s, 3, 350 * MS, 200);
	CHECK_INT(recent(s), 5);
	spans_get_stats(s, &st);
	CHECK_INT(st.dropped[SPAN_DROP_NOT_SAMPLED], 2);
	CHECK_INT(st.kept, 5);
	spans_free(s);

	/* sampled=1 from the caller with ratio 0: kept (parent-based) */
	tp.flags = 1;
	s = mk(cfg(0, true, 0), false);
	req(s, 1, 100 * MS, "/x", &tp);
	end(s, 1, 101 * MS, 200);
	CHECK_INT(recent(s), 1);
	CHECK_INT(out[0].flags, SPAN_FLAG_HAS_IS_REMOTE | SPAN_FLAG_IS_REMOTE |
				    SPAN_FLAG_SAMPLED);
	spans_free(s);
}

static void test_child_wait_timeout(void)
{
	struct spans *s = mk(cfg(1, true, 0), false);
	struct span_parent par;

	req(s, 1, 100 * MS, "/long", NULL);
	spans_parent_at(s, PID, 101 * MS, &par);
	sql(s, 101 * MS, 102 * MS, &par, "");
	spans_tick(s, 5000 * MS);
	CHECK_INT(recent(s), 0);
	spans_tick(s, 10100 * MS);
	CHECK_INT(recent(s), 1); /* flushed after 10 s */
	CHECK_INT(out[0].has_parent, 1);
	sql(s, 10200 * MS, 10201 * MS, &par, ""); /* no more waiting */
	CHECK_INT(recent(s), 2);
	end(s, 1, 20000 * MS, 200);
	CHECK_INT(recent(s), 3);
	/* a request never ended is forgotten after 10 minutes */
	req(s, 2, 30000 * MS, "/hold", NULL);
	spans_tick(s, 30000 * MS + 600001 * MS);
	spans_parent_at(s, PID, 30000 * MS + 600002 * MS, &par);
	CHECK_INT(par.reason, SPAN_UNLINKED_NONE_IN_FLIGHT);
	{
		struct spans_stats st;

		spans_get_stats(s, &st);
		CHECK_INT(st.dropped[SPAN_DROP_OPEN_TIMEOUT], 1);
	}
	spans_free(s);
}

static char *fake_env[8];

static char *fake_getenv(const char *name)
{
	size_t n = strlen(name);
	int i;

	for (i = 0; fake_env[i]; i++)
		if (!strncmp(fake_env[i], name, n) && fake_env[i][n] == '=')
			return fake_env[i] + n + 1;
	return NULL;
}

static void test_config(void)
{
	struct trace_flags f = {0};
	struct trace_config c;
	char err[256];

	memset(fake_env, 0, sizeof(fake_env));
	CHECK_INT(trace_config_resolve(&f, fake_getenv, &c, err, sizeof(err)),
		  0);
	CHECK(!c.enabled && c.parent_based && c.ratio == 1);
	CHECK_INT(c.keep_slower_ns, 500 * MS);
	fake_env[0] = "OTEL_TRACES_SAMPLER=traceidratio";
	fake_env[1] = "OTEL_TRACES_SAMPLER_ARG=0.25";
	f.traces = true;
	CHECK_INT(trace_config_resolve(&f, fake_getenv, &c, err, sizeof(err)),
		  0);
	CHECK(c.enabled && !c.parent_based && c.ratio == 0.25);
	CHECK_INT(c.threshold, 3ULL << 54);
	f.ratio = "0.5"; /* the flag beats the variable */
	f.keep_slower = "2s";
	CHECK_INT(trace_config_resolve(&f, fake_getenv, &c, err, sizeof(err)),
		  0);
	CHECK(c.ratio == 0.5 && !c.parent_based);
	CHECK_INT(c.keep_slower_ns, 2000 * MS);
	f.keep_slower = "0";
	trace_config_resolve(&f, fake_getenv, &c, err, sizeof(err));
	CHECK_INT(c.keep_slower_ns, 0);
	fake_env[0] = "OTEL_TRACES_SAMPLER=parentbased_always_off";
	f.ratio = NULL;
	trace_config_resolve(&f, fake_getenv, &c, err, sizeof(err));
	CHECK(c.parent_based && c.ratio == 0);
	fake_env[0] = "OTEL_TRACES_SAMPLER=sometimes";
	CHECK_INT(trace_config_resolve(&f, fake_getenv, &c, err, sizeof(err)),
		  -EINVAL);
	CHECK(strstr(err, "OTEL_TRACES_SAMPLER 'sometimes'") != NULL);
	fake_env[0] = "OTEL_TRACES_SAMPLER=parentbased_traceidratio";
	fake_env[1] = "OTEL_TRACES_SAMPLER_ARG=1.5";
	CHECK_INT(trace_config_resolve(&f, fake_getenv, &c, err, sizeof(err)),
		  -EINVAL);
	CHECK(strstr(err, "OTEL_TRACES_SAMPLER_ARG") != NULL);
	fake_env[0] = NULL;
	f.ratio = "half";
	CHECK_INT(trace_config_resolve(&f, fake_getenv, &c, err, sizeof(err)),
		  -EINVAL);
	CHECK(strstr(err, "--trace-sample-ratio") != NULL);
	f.ratio = NULL;
	f.keep_slower = "5 parsecs";
	CHECK_INT(trace_config_resolve(&f, fake_getenv, &c, err, sizeof(err)),
		  -EINVAL);
	CHECK(strstr(err, "--trace-keep-slower-than") != NULL);
}

/* ---- the ring and the push hook ---------------------------------------- */

static void test_queue(void)
{
	struct spans *s = mk(cfg(1, true, 0), true);
	struct spans_stats st;
	uint8_t *body;
	size_t len, n;
	unsigned i;

	CHECK_INT(spans_collect_otlp(s, &body, &len), 0);
	CHECK(body == NULL && len == 0);
	for (i = 0; i < SPANS_RING + 10; i++)
		sql(s, i * MS, i * MS + 1, NULL, "");
	spans_get_stats(s, &st);
	CHECK_INT(st.dropped[SPAN_DROP_QUEUE_FULL], 10);
	/* the oldest pending span is the 11th */
	n = spans_take(s, out, 1);
	CHECK_INT(n, 1);
	CHECK_INT(out[0].start_unix_ns, OFFSET + 10 * MS);
	/* batches of SPANS_BATCH until empty; recent stays */
	for (i = 0; spans_collect_otlp(s, &body, &len) == 0 && body; i++)
		free(body);
	CHECK_INT(i, (SPANS_RING - 1 + SPANS_BATCH - 1) / SPANS_BATCH);
	CHECK_INT(recent(s), SPANS_RECENT);
	CHECK_INT(out[SPANS_RECENT - 1].start_unix_ns,
		  OFFSET + (SPANS_RING + 9) * MS);
	spans_free(s);

	/* tracing off: nothing is built */
	{
		struct trace_config off = cfg(1, true, 0);

		off.enabled = false;
		s = mk(off, false);
		CHECK(!spans_enabled(s));
		req(s, 1, 1, "/x", NULL);
		end(s, 1, 2, 200);
		CHECK_INT(recent(s), 0);
		spans_free(s);
	}
}

/* ---- through l7: the traceparent capture limit -------------------------- */

static void l7_request(struct l7 *l, const struct proc_entry *e, uint64_t conn,
		       const char *head, uint64_t t)
{
	struct ks_l7_event ev;
	size_t n = strlen(head);

	memset(&ev, 0, sizeof(ev));
	ev.hdr.type = KS_EV_L7;
	ev.hdr.pid = PID;
	ev.conn_id = conn;
	ev.start_ns = t;
	ev.kind = KS_L7_HTTP_REQUEST;
	ev.total_len = (uint32_t)n;
	ev.len = n > KS_L7_DATA ? KS_L7_DATA : (uint32_t)n; /* the capture */
	memcpy(ev.data, head, ev.len);
	l7_on_event(l, e, &ev);
	ev.kind = KS_L7_HTTP_DONE;
	ev.status = 200;
	ev.end_ns = t + MS;
	ev.len = 0;
	l7_on_event(l, e, &ev);
}

static void test_through_l7(void)
{
	struct metric_registry *reg = metric_registry_new(0);
	struct spans *s = mk(cfg(1, true, 0), false);
	struct l7 *l = l7_new(reg, NULL);
	struct proc_entry e = {.pid = PID, .service = "api", .monitored = 1};
	char head[512], pad[300];
	size_t n;

	l7_set_spans(l, s);
	l7_request(l, &e, 1,
		   "GET /users/17?x=1 HTTP/1.1\r\nHost: a\r\ntraceparent: "
		   "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		   "\r\n\r\n",
		   100 * MS);
	/* the same header past the 256 captured bytes is not seen */
	memset(pad, 'a', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	snprintf(head, sizeof(head),
		 "GET /users/18 HTTP/1.1\r\nX-Pad: %.220s\r\ntraceparent: "
		 "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		 "\r\n\r\n",
		 pad);
	l7_request(l, &e, 2, head, 200 * MS);
	n = recent(s);
	CHECK_INT(n, 2);
	if (n == 2) {
		CHECK_STR(span_name(&out[0]), "GET /users/{id}");
		CHECK_STR(sattr(&out[0], "url.path"), "/users/17");
		CHECK_INT(out[0].trace_id[0], 0x4b);
		CHECK_INT(out[0].parent_id[0], 0x00);
		CHECK_INT(out[0].parent_id[7], 0xb7);
		CHECK_INT(out[0].has_parent, 1);
		CHECK_INT(out[1].has_parent, 0);
		CHECK(out[1].trace_id[0] != 0x4b || out[1].trace_id[1] != 0xf9);
	}
	l7_free(l);
	spans_free(s);
	metric_registry_free(reg);
}

/* ---- encoding ---------------------------------------------------------- */

typedef Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest
    req_t;
typedef Opentelemetry__Proto__Common__V1__KeyValue kv_t;

static const kv_t *kv(kv_t **kvs, size_t n, const char *key)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(kvs[i]->key, key))
			return kvs[i];
	return NULL;
}

static void test_encode(void)
{
	struct spans *s = mk(cfg(1, true, 0), false);
	struct span_parent par;
	struct span_client_op other = {.pid = PID + 1,
				       .service = "worker",
				       .proto = SPAN_PROTO_REDIS,
				       .start_ns = 5 * MS,
				       .end_ns = 6 * MS,
				       .operation = "SET",
				       .error = ""};
	Opentelemetry__Proto__Trace__V1__ResourceSpans *rs;
	Opentelemetry__Proto__Trace__V1__Span *sp, *db;
	const kv_t *a;
	uint8_t *body;
	size_t len, n;
	req_t *r;

	req(s, 1, 100 * MS, "/users/{id}", NULL);
	spans_parent_at(s, PID, 101 * MS, &par);
	sql(s, 101 * MS, 102 * MS, &par, "42P01");
	spans_client(s, &other, NULL);
	end(s, 1, 110 * MS, 200);
	n = recent(s);
	CHECK_INT(n, 3);
	CHECK_INT(otlp_traces_encode(out, n, "testhost", &body, &len), 0);
	r = opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(
	    NULL, len, body);
	CHECK(r != NULL);
	if (!r)
		return;
	/* the worker's span came out first: its resource is first */
	CHECK_INT(r->n_resource_spans, 2);
	rs = r->resource_spans[1];
	a = kv(rs->resource->attributes, rs->resource->n_attributes,
	       "service.name");
	CHECK(a && !strcmp(a->value->string_value, "api"));
	a = kv(rs->resource->attributes, rs->resource->n_attributes,
	       "process.pid");
	CHECK(a && a->value->int_value == PID);
	a = kv(rs->resource->attributes, rs->resource->n_attributes,
	       "host.name");
	CHECK(a && !strcmp(a->value->string_value, "testhost"));
	a = kv(rs->resource->attributes, rs->resource->n_attributes,
	       "telemetry.sdk.name");
	CHECK(a && !strcmp(a->value->string_value, "katascope"));
	CHECK_INT(rs->n_scope_spans, 1);
	CHECK_STR(rs->scope_spans[0]->scope->name, "katascope");
	CHECK_INT(rs->scope_spans[0]->n_spans, 2);
	/* a parent is emitted first, with its children after it */
	sp = rs->scope_spans[0]->spans[0];
	db = rs->scope_spans[0]->spans[1];
	CHECK_STR(sp->name, "GET /users/{id}");
	CHECK_INT(
	    sp->kind,
	    OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER);
	CHECK_INT(sp->trace_id.len, 16);
	CHECK_INT(sp->span_id.len, 8);
	CHECK_INT(sp->parent_span_id.len, 0);
	CHECK_INT(sp->start_time_unix_nano, OFFSET + 100 * MS);
	CHECK_INT(sp->end_time_unix_nano, OFFSET + 110 * MS);
	CHECK_INT(sp->flags, SPAN_FLAG_HAS_IS_REMOTE | SPAN_FLAG_SAMPLED);
	CHECK(sp->status == NULL);
	a = kv(sp->attributes, sp->n_attributes, "http.response.status_code");
	CHECK(
	    a &&
	    a->value->value_case ==
		OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE &&
	    a->value->int_value == 200);
	CHECK_STR(db->name, "SELECT users");
	CHECK_INT(
	    db->kind,
	    OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_CLIENT);
	CHECK(db->trace_id.len == 16 &&
	      !memcmp(db->trace_id.data, sp->trace_id.data, 16));
	CHECK(db->parent_span_id.len == 8 &&
	      !memcmp(db->parent_span_id.data, sp->span_id.data, 8));
	CHECK(
	    db->status &&
	    db->status->code ==
		OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR);
	a = kv(db->attributes, db->n_attributes, "error.type");
	CHECK(a && !strcmp(a->value->string_value, "42P01"));
	a = kv(r->resource_spans[0]->resource->attributes,
	       r->resource_spans[0]->resource->n_attributes, "service.name");
	CHECK(a && !strcmp(a->value->string_value, "worker"));
	opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(
	    r, NULL);
	free(body);
	/* no spans: an empty, valid request */
	CHECK_INT(otlp_traces_encode(out, 0, "h", &body, &len), 0);
	CHECK_INT(len, 0);
	free(body);
	spans_free(s);
}

int main(void)
{
	test_traceparent();
	test_server_span();
	test_client_spans();
	test_parent_one_in_flight();
	test_parent_ambiguous();
	test_parent_many_open();
	test_child_after_parent();
	test_sampler();
	test_sampling_spans();
	test_child_wait_timeout();
	test_config();
	test_queue();
	test_through_l7();
	test_encode();
	return check_summary();
}
