/*
 * l7.c - HTTP server request metrics, see l7.h.
 *
 * Pending requests live in a fixed table keyed by connection (tgid << 32 |
 * fd); each slot queues the requests of one read (pipelining), matched in
 * order with the end records. A collision overwrites the older entry and is
 * counted, so memory is fixed.
 *
 * Exchanges the kernel counted itself (katascope.h, "HTTP exchanges
 * counted in the kernel") are folded from their slot of its table: the
 * record of the exchange that claimed the slot named its route.
 */
#include "l7.h"
#include "l7_client.h"
#include "l7_http.h"
#include "route.h"
#include "spans.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PENDING_SLOTS 8192 /* power of two */
#define MAX_GUARDS 256

static const double http_bounds[] = { 0.005, 0.01, 0.025, 0.05, 0.075,
				      0.1,   0.25, 0.5,   0.75, 1,
				      2.5,   5,    7.5,   10 };

#define PIPELINE_MAX 4 /* requests remembered per connection */
/* Folds (500 ms apart) a server slot of the kernel's table waits for the
 * record naming its route before its counts go to the unmatched. */
#define SRV_DESC_WAIT 10

struct pending_req {
	char method[16];
	char route[128];
	uint32_t collapsed; /* segments the guard made "*" */
};

/* A slot of the kernel's table holding a server label set: what the
 * record that claimed it said, and the counts folded so far. */
struct srv_slot {
	bool described; /* that record came */
	bool unparsed; /* its request did not parse */
	bool released; /* freed in the kernel at the next round */
	unsigned waits; /* folds without it */
	unsigned idle; /* folds without growth */
	uint32_t tgid;
	uint16_t port, status;
	uint64_t method_word; /* ks_method_word of the request */
	struct pending_req req;
	struct ks_http_val last;
};

/* The requests of one connection awaiting their responses, in order. */
struct pending {
	uint64_t conn_id; /* 0: free */
	uint64_t start_ns;
	unsigned head, n;
	struct pending_req q[PIPELINE_MAX];
};

struct guard_slot {
	char service[PI_NAME_LEN];
	struct route_guard guard;
	struct route_memo memo; /* the guard's results for recent targets */
};

struct l7 {
	struct metric_registry *reg;
	struct l7_client *client;
	struct spans *spans; /* NULL: tracing off */
	struct metric_family *http_dur;
	struct metric_family *http_aborted;
	struct metric_family *http_ended_idle;
	struct metric_family *routes_collapsed;
	struct metric_family *unmatched, *unparsed;
	struct pending *pending;
	struct srv_slot **srv; /* KS_HTTP_SLOTS, allocated when used */
	struct guard_slot *guards[MAX_GUARDS];
	unsigned nguards;
	struct ks_num_str port, status; /* of the last end record */
	struct l7_stats st;
};

struct l7 *l7_new(struct metric_registry *reg, struct queries *q)
{
	static const char *const dur_labels[] = {
		"service_name",	  "http_request_method",
		"http_route",	  "http_response_status_code",
		"server_port",	  "url_scheme",
		NULL
	};
	static const char *const ab_labels[] = { "service_name",
						 "http_request_method",
						 "http_route", "server_port",
						 NULL };
	static const char *const svc[] = { "service_name", NULL };
	struct l7 *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->reg = reg;
	l->pending = calloc(PENDING_SLOTS, sizeof(*l->pending));
	l->srv = calloc(KS_HTTP_SLOTS, sizeof(*l->srv));
	l->client = l7_client_new(reg, q);
	l->http_dur = metric_family_new(
		reg, "http_server_request_duration_seconds", METRIC_HISTOGRAM,
		"HTTP server requests: from the first byte of the request read to the last byte of the response written.",
		dur_labels, http_bounds,
		sizeof(http_bounds) / sizeof(http_bounds[0]));
	l->http_aborted = metric_family_new(
		reg, "katascope_http_server_requests_aborted_total",
		METRIC_COUNTER,
		"HTTP requests whose connection closed before a response was written.",
		ab_labels, NULL, 0);
	l->http_ended_idle = metric_family_new(
		reg, "katascope_http_server_ended_idle_total", METRIC_COUNTER,
		"HTTP responses ended by a second of silence on their connection (no next request or close came): their end is the last write before it.",
		svc, NULL, 0);
	l->routes_collapsed = metric_family_new(
		reg, "katascope_http_route_collapsed_total", METRIC_COUNTER,
		"Route segments replaced by * by the per-service cardinality guard.",
		svc, NULL, 0);
	l->unmatched = metric_family_new(
		reg, "katascope_http_server_responses_unmatched_total",
		METRIC_COUNTER,
		"HTTP responses (or aborts) whose request was not seen: the request came before the agent started, its record was lost, or its captured bytes were overwritten (katascope_map_full_dropped_total{map=\"request_heads\"}). Not in the duration histogram.",
		svc, NULL, 0);
	l->unparsed = metric_family_new(
		reg, "katascope_http_server_requests_unparsed_total",
		METRIC_COUNTER,
		"Request records whose first bytes did not parse as an HTTP/1.x request line.",
		svc, NULL, 0);
	if (!l->pending || !l->srv || !l->client || !l->http_dur ||
	    !l->http_aborted ||
	    !l->http_ended_idle || !l->routes_collapsed || !l->unmatched ||
	    !l->unparsed) {
		l7_free(l);
		return NULL;
	}
	return l;
}

void l7_free(struct l7 *l)
{
	unsigned i;

	if (!l)
		return;
	for (i = 0; i < l->nguards; i++)
		free(l->guards[i]);
	for (i = 0; l->srv && i < KS_HTTP_SLOTS; i++)
		free(l->srv[i]);
	free(l->srv);
	l7_client_free(l->client);
	free(l->pending);
	free(l);
}

static struct pending *slot(struct l7 *l, uint64_t conn_id)
{
	uint64_t h = conn_id * 0x9E3779B97F4A7C15ULL;

	return &l->pending[(h >> 40) & (PENDING_SLOTS - 1)];
}

static struct guard_slot *guard_for(struct l7 *l, const char *service)
{
	struct guard_slot *g;
	unsigned i;

	for (i = 0; i < l->nguards; i++)
		if (strcmp(l->guards[i]->service, service) == 0)
			return l->guards[i];
	if (l->nguards == MAX_GUARDS)
		return NULL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	snprintf(g->service, sizeof(g->service), "%s", service);
	l->guards[l->nguards++] = g;
	return g;
}

/* Method and normalized, guarded route of one request head (parsed into
 * *req, whatever the outcome). */
static int describe(struct l7 *l, const struct proc_entry *e, const void *buf,
		    size_t len, bool line_only, struct pending_req *out,
		    struct http1_request *req)
{
	struct guard_slot *gs;
	uint64_t before;
	bool cut;
	int rlen;

	if (line_only ? http1_parse_request_line(buf, len, req) :
			http1_parse_request(buf, len, req))
		return -1;
	ks_strlcpy(out->method, http1_method_name(req->method),
		   sizeof(out->method));
	out->collapsed = 0;
	cut = (req->h.flags & HTTP1_F_PATH_TRUNC) != 0;
	gs = guard_for(l, e->service);
	if (!gs) {
		rlen = http_route(req->path, req->path_len, cut, out->route,
				  sizeof(out->route));
		if (rlen < 0)
			out->route[0] = '\0';
		return 0;
	}
	before = gs->guard.collapsed;
	rlen = route_memo_apply(&gs->memo, &gs->guard, req->path, req->path_len,
				cut, out->route, sizeof(out->route));
	if (rlen < 0) {
		out->route[0] = '\0';
		return 0;
	}
	if (gs->guard.collapsed != before) {
		const char *lv[] = { e->service };

		out->collapsed = (uint32_t)(gs->guard.collapsed - before);
		metric_add(l->routes_collapsed, lv, out->collapsed);
	}
	return 0;
}

/* Tell the tracer about a request (req NULL: its head did not parse). */
static void trace_request(struct l7 *l, const struct proc_entry *e,
			  const struct ks_l7_event *ev,
			  const struct pending_req *r,
			  const struct http1_request *req)
{
	struct span_server_req sr = {
		.pid = ev->hdr.pid,
		.service = e->service,
		.conn_id = ev->conn_id,
		.start_ns = ev->start_ns,
	};

	if (req) {
		sr.method = r->method;
		sr.route = r->route;
		sr.path = req->path;
		sr.path_len = req->path_len;
		if (req->h.flags & HTTP1_F_TRACEPARENT)
			sr.tp = &req->h.traceparent;
	}
	spans_server_request(l->spans, &sr);
}

/* Where the first blank line ("\r\n\r\n") of buf ends, or 0. */
static size_t blank_line_end(const uint8_t *buf, size_t len)
{
	const uint8_t *nl = buf, *end = buf + len;

	while ((nl = memchr(nl, '\n', (size_t)(end - nl))) != NULL) {
		nl++;
		if (end - nl >= 2 && nl[0] == '\r' && nl[1] == '\n')
			return (size_t)(nl + 2 - buf);
	}
	return 0;
}

/*
 * A request record holds the first bytes the server read: one request
 * head, or several pipelined requests. Queue each complete one; the last
 * may be cut by the capture and is still described from what is there.
 */
static void on_request(struct l7 *l, const struct proc_entry *e,
		       const struct ks_l7_event *ev)
{
	const uint8_t *buf = ev->data;
	size_t len = ev->len > KS_L7_DATA ? KS_L7_DATA : ev->len;
	struct pending *p = slot(l, ev->conn_id);
	struct http1_request req;
	bool one_head;
	ssize_t one;

	if (p->conn_id && p->conn_id != ev->conn_id)
		l->st.evicted++;
	p->conn_id = ev->conn_id;
	p->start_ns = ev->start_ns;
	p->head = p->n = 0;
	/* The usual read: all of it captured, one head and nothing after
	 * it. Its header fields would only find where a next request
	 * starts, and give the tracer a traceparent. */
	one_head = !l->spans && ev->total_len == len &&
		   blank_line_end(buf, len) == len;
	while (len > 0 && p->n < PIPELINE_MAX) {
		if (describe(l, e, buf, len, one_head, &p->q[p->n], &req)) {
			if (p->n == 0) {
				const char *sv[] = { e->service };

				l->st.unparsed++;
				metric_add(l->unparsed, sv, 1);
				if (l->spans)
					trace_request(l, e, ev, NULL, NULL);
			}
			break;
		}
		if (l->spans)
			trace_request(l, e, ev, &p->q[p->n], &req);
		p->n++;
		if (one_head)
			break;
		one = http1_request_end(buf, len, &req);
		if (one <= 0 || (size_t)one >= len)
			break;
		buf += one;
		len -= (size_t)one;
	}
	if (p->n == 0)
		p->conn_id = 0;
}

static void trace_end(struct l7 *l, const struct ks_l7_event *ev)
{
	struct span_server_end se = {
		.pid = ev->hdr.pid,
		.conn_id = ev->conn_id,
		.end_ns = ev->end_ns,
		.status = ev->status,
		.aborted = ev->kind == KS_L7_HTTP_ABORTED,
		.tls = (ev->flags & KS_L7_F_TLS) != 0,
		.lport = ev->lport,
		.rport = ev->rport,
		.family = ev->family,
		.raddr = ev->raddr,
	};

	spans_server_end(l->spans, &se);
}

static void on_end(struct l7 *l, const struct proc_entry *e,
		   const struct ks_l7_event *ev)
{
	static const struct pending_req unknown = { "_OTHER", ROUTE_TRUNCATED };
	struct pending *p = slot(l, ev->conn_id);
	const struct pending_req *r;
	const char *port;

	if (l->spans)
		trace_end(l, ev);
	if (p->conn_id != ev->conn_id) {
		const char *sv[] = { e->service };

		l->st.unmatched++;
		metric_add(l->unmatched, sv, 1);
		return;
	}
	/* More responses than the capture held requests: labelled as cut. */
	r = p->head < p->n ? &p->q[p->head] : &unknown;
	p->head++;
	port = ks_num_str(&l->port, ev->lport);
	if (ev->kind == KS_L7_HTTP_ABORTED) {
		const char *lv[] = { e->service, r->method, r->route, port };

		metric_add(l->http_aborted, lv, 1);
		p->conn_id = 0;
		return;
	} else {
		const char *lv[] = { e->service, r->method, r->route,
				     ks_num_str(&l->status, ev->status), port,
				     ev->flags & KS_L7_F_TLS ? "https" :
							       "http" };
		double d = ev->end_ns > p->start_ns ?
				   (double)(ev->end_ns - p->start_ns) * 1e-9 :
				   0;

		metric_observe(l->http_dur, lv, d);
		if (ev->flags & KS_L7_F_END_IDLE) {
			const char *sv[] = { e->service };

			metric_add(l->http_ended_idle, sv, 1);
		}
	}
}

/* ---- server exchanges counted in the kernel ---------------------------- */

/* What is known of server slot i (zeroed when new), or NULL without
 * memory. */
static struct srv_slot *srv_get(struct l7 *l, uint32_t i)
{
	if (!l->srv[i])
		l->srv[i] = calloc(1, sizeof(*l->srv[i]));
	return l->srv[i];
}

/* The label set this record's exchange claimed a slot for (srv.slot): its
 * request, parsed into the pending queue just now, names the route. */
static void srv_describe(struct l7 *l, const struct ks_l7_event *ev)
{
	uint32_t i = ev->srv.slot - 1;
	struct pending *p = slot(l, ev->conn_id);
	struct srv_slot *d;
	uint64_t w;

	if (i >= KS_HTTP_SLOTS)
		return;
	d = srv_get(l, i);
	if (!d)
		return; /* its counts go to the unmatched */
	if (d->released)
		return; /* waited too long for: its counts are unmatched */
	memset(d, 0, sizeof(*d)); /* a slot claimed anew counts from 0 */
	memcpy(&w, ev->data, sizeof(w));
	d->method_word = ks_method_word(w);
	d->tgid = ev->hdr.pid;
	d->port = ev->lport;
	d->status = ev->status;
	if (p->conn_id == ev->conn_id && p->n > 0)
		d->req = p->q[0];
	else
		d->unparsed = true;
	d->described = true;
}

static void srv_forget(struct l7 *l, uint32_t slot)
{
	free(l->srv[slot]);
	l->srv[slot] = NULL;
}

/* Is d what the record said of the label set k now in its slot? */
static bool srv_matches(const struct srv_slot *d,
			const struct ks_http_key *k)
{
	uint64_t mw;

	memcpy(&mw, k->method, sizeof(mw));
	return d->tgid == k->tgid && d->port == k->rport &&
	       d->status == k->status && d->method_word == mw;
}

/* What d's slot grew by since its last fold, into the histogram (or the
 * unparsed and unmatched counts when its request did not parse). */
static uint64_t srv_fold_growth(struct l7 *l, const struct proc_entry *e,
				struct srv_slot *d,
				const struct ks_http_key *k,
				const struct ks_http_val *v)
{
	uint64_t delta[KS_HTTP_BUCKETS], n, sum;
	const char *sv[] = { e->service };

	n = l7_http_growth(v, &d->last, delta, &sum);
	if (n && d->unparsed) {
		l->st.unparsed += n;
		l->st.unmatched += n;
		metric_add(l->unparsed, sv, (double)n);
		metric_add(l->unmatched, sv, (double)n);
	} else if (n) {
		const char *lv[] = { e->service, d->req.method, d->req.route,
				     ks_num_str(&l->status, k->status),
				     ks_num_str(&l->port, k->rport), "http" };

		metric_hist_add_buckets(metric_series_get(l->http_dur, lv),
					delta, (double)sum * 1e-9);
		if (d->req.collapsed)
			metric_add(l->routes_collapsed, sv,
				   (double)n * d->req.collapsed);
	}
	d->last = *v;
	return n;
}

/* A server slot's requests that no record named, as unmatched. */
static void srv_unnamed(struct l7 *l, const struct proc_entry *e,
			struct srv_slot *d, const struct ks_http_val *v)
{
	const char *sv[] = { e->service };
	uint64_t n = v->count >= d->last.count ? v->count - d->last.count : 0;

	if (n) {
		l->st.unmatched += n;
		metric_add(l->unmatched, sv, (double)n);
	}
	d->last = *v;
}

/* Fold a server slot's growth (see l7_fold_http_slot). */
static int fold_server(struct l7 *l, const struct proc_entry *e,
		       uint32_t slot, const struct ks_http_key *k,
		       const struct ks_http_val *v, int final)
{
	struct srv_slot *d;

	if (!e || !e->monitored) {
		if (final)
			srv_forget(l, slot);
		return !final;
	}
	d = srv_get(l, slot);
	if (!d)
		return 0; /* folded at a later round */
	if (d->described && !srv_matches(d, k))
		memset(d, 0, sizeof(*d)); /* an older claim's */
	if (final) {
		if (d->described)
			srv_fold_growth(l, e, d, k, v);
		else
			srv_unnamed(l, e, d, v);
		srv_forget(l, slot);
		return 0;
	}
	if (!d->described) {
		/* The record is on its way (folded at a later round), or
		 * was lost with a full ring buffer (counted there). */
		if (++d->waits < SRV_DESC_WAIT && !e->exit_ns)
			return 0;
		srv_unnamed(l, e, d, v);
		d->released = true;
		return 1;
	}
	if (srv_fold_growth(l, e, d, k, v))
		d->idle = 0;
	else
		d->idle++;
	/* Released when its process exited, or after a minute without
	 * growth: the slot may serve another label set. */
	d->released = e->exit_ns || d->idle >= L7_IDLE_FOLDS;
	return d->released;
}

void l7_on_event(struct l7 *l, const struct proc_entry *e,
		 const struct ks_l7_event *ev)
{
	if (!e->monitored)
		return;
	switch (ev->kind) {
	case KS_L7_HTTP_REQUEST:
		on_request(l, e, ev);
		break;
	case KS_L7_HTTP_DONE:
	case KS_L7_HTTP_ABORTED:
		/* One record per exchange: the request's bytes came with
		 * its end (KS_L7_F_HEAD). */
		if (ev->flags & KS_L7_F_HEAD) {
			on_request(l, e, ev);
			if (ev->kind == KS_L7_HTTP_DONE && ev->srv.slot)
				srv_describe(l, ev);
		}
		on_end(l, e, ev);
		break;
	default:
		l7_client_on_event(l->client, e, ev);
	}
}

void l7_set_spans(struct l7 *l, struct spans *s)
{
	l->spans = spans_enabled(s) ? s : NULL;
	l7_client_set_spans(l->client, l->spans);
}

int l7_fold_http_slot(struct l7 *l, const struct proc_entry *e,
			uint32_t slot, const struct ks_http_key *k,
			const struct ks_http_val *v, int final)
{
	if (slot >= KS_HTTP_SLOTS)
		return 0;
	if (k->family == KS_HTTP_KEY_SERVER)
		return fold_server(l, e, slot, k, v, final);
	return l7_client_fold_http(l->client, e, slot, k, v, final);
}

void l7_stats(const struct l7 *l, struct l7_stats *out)
{
	*out = l->st;
}
