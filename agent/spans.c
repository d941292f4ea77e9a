/*
 * spans.c - spans from finished exchanges; see spans.h for the rules.
 *
 * Three fixed tables, allocated when tracing is on:
 *  - exchanges (EXCH_MAX): every request a server read, open until its end
 *    record, then closed and kept (with the keep decision made at its end)
 *    until the slot is reused, so a child that ends after its parent still
 *    follows the parent's decision. Slots are handed out round-robin,
 *    skipping open ones, which keeps closed ones as long as possible.
 *  - processes (PROC_SLOTS, open addressing by pid): the open requests of
 *    each process, oldest first, the number of requests it has read (seq)
 *    and the start times of the last RECENT_STARTS of them, which is what
 *    the late-arrival check reads.
 *  - a pool of CHILD_MAX client spans waiting for their parent to end.
 * Kept spans are copied into the ring under the lock; nothing else is
 * shared with the reader threads.
 */
#include "spans.h"
#include "otlp_traces.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define EXCH_MAX 2048
#define CHILD_MAX 2048
#define PROC_SLOTS 1024 /* power of two */
#define PROC_PROBE 16
#define PROC_OPEN 16		     /* open requests tracked per process */
#define RECENT_STARTS 32	     /* power of two */
#define CHILD_WAIT_NS 10000000000ULL /* children wait at most 10 s */
#define OPEN_MAX_NS 600000000000ULL  /* a request open 10 min is lost */

enum exch_state { EX_FREE = 0, EX_OPEN, EX_CLOSED };

struct exch {
	uint32_t gen;
	uint8_t state;
	uint8_t has_span;  /* the head parsed: a server span is built */
	uint8_t head_keep; /* head sampling decision of its trace */
	uint8_t tail_keep; /* an error or slow span in the local trace */
	uint8_t flushed;   /* children no longer wait (CHILD_WAIT passed) */
	uint8_t kept;	   /* closed: the decision made at its end */
	uint32_t pid;
	uint64_t conn_id;
	uint64_t start_ns;
	int32_t child_head, child_tail; /* buffered children, -1: none */
	struct span sp;
};

struct child {
	int32_t next;
	uint8_t keep_alone; /* error or slow by itself */
	struct span sp;
};

struct tproc {
	uint32_t pid;	/* 0: free */
	uint32_t epoch; /* bumped when the slot changes hands */
	uint16_t nopen;
	int32_t open[PROC_OPEN];	/* exchange slots, oldest first */
	uint32_t untracked;		/* open requests not in open[] */
	uint64_t seq;			/* requests read */
	uint64_t starts[RECENT_STARTS]; /* start of request seq % N */
};

struct spans {
	struct trace_config cfg;
	int64_t offset;
	bool push;
	uint64_t rng;
	char host[256];

	struct exch *xs;
	unsigned next_exch;
	struct child *children;
	int32_t child_free;
	struct tproc *procs;
	uint32_t epochs;

	pthread_mutex_t lock; /* ring and stats */
	struct span *ring;
	uint64_t head, tail; /* spans written; spans taken (push) */
	struct spans_stats st;

	struct metric_family *m_spans, *m_dropped, *m_unlinked;
};

/* ---- span building ------------------------------------------------------ */

static uint16_t pool_add(struct span *sp, const char *s, size_t n, bool *ok)
{
	uint16_t off = sp->pool_used;

	if (n >= (size_t)(SPAN_POOL - sp->pool_used)) {
		*ok = false;
		return 0;
	}
	memcpy(sp->pool + off, s, n);
	sp->pool[off + n] = '\0';
	sp->pool_used = (uint16_t)(off + n + 1);
	*ok = true;
	return off;
}

static void attr_strn(struct span *sp, const char *key, const char *v, size_t n)
{
	struct span_attr *a;
	bool ok;

	if (!v || sp->nattrs == SPAN_ATTRS_MAX)
		return;
	a = &sp->attrs[sp->nattrs];
	a->off = pool_add(sp, v, n, &ok);
	if (!ok)
		return;
	a->key = key;
	a->is_int = 0;
	sp->nattrs++;
}

static void attr_str(struct span *sp, const char *key, const char *v)
{
	if (v && *v)
		attr_strn(sp, key, v, strlen(v));
}

static void attr_int(struct span *sp, const char *key, int64_t v)
{
	struct span_attr *a;

	if (sp->nattrs == SPAN_ATTRS_MAX)
		return;
	a = &sp->attrs[sp->nattrs++];
	a->key = key;
	a->ival = v;
	a->is_int = 1;
}

static void set_name(struct span *sp, const char *fmt, ...)
{
	char buf[192];
	va_list ap;
	bool ok;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	sp->name_off = pool_add(sp, buf, (size_t)n, &ok);
	if (!ok)
		sp->name_off = 0, sp->pool[0] = '\0';
}

const char *span_name(const struct span *sp)
{
	return sp->pool + sp->name_off;
}

static const struct span_attr *find_attr(const struct span *sp, const char *key)
{
	unsigned i;

	for (i = 0; i < sp->nattrs; i++)
		if (!strcmp(sp->attrs[i].key, key))
			return &sp->attrs[i];
	return NULL;
}

const char *span_attr_str(const struct span *sp, const char *key)
{
	const struct span_attr *a = find_attr(sp, key);

	return a && !a->is_int ? sp->pool + a->off : NULL;
}

bool span_attr_int(const struct span *sp, const char *key, int64_t *v)
{
	const struct span_attr *a = find_attr(sp, key);

	if (!a || !a->is_int)
		return false;
	*v = a->ival;
	return true;
}

/* splitmix64: ids need to be unique and unpredictable enough for
 * sampling, not secret. */
static uint64_t next_rand(struct spans *s)
{
	uint64_t z = (s->rng += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static void rand_bytes(struct spans *s, uint8_t *out, size_t n)
{
	uint64_t r = 0;
	size_t i;

	do {
		for (i = 0; i < n; i++) {
			if (i % 8 == 0)
				r = next_rand(s);
			out[i] = (uint8_t)(r >> (8 * (i % 8)));
		}
		for (i = 0; i < n && !out[i]; i++)
			;
	} while (i == n); /* all-zero ids are invalid */
}

static uint64_t to_unix(const struct spans *s, uint64_t mono)
{
	return (uint64_t)((int64_t)mono + s->offset);
}

static bool is_slow(const struct spans *s, const struct span *sp)
{
	return s->cfg.keep_slower_ns &&
	       sp->end_unix_ns - sp->start_unix_ns >= s->cfg.keep_slower_ns;
}

static void span_begin(struct spans *s, struct span *sp, uint8_t kind,
		       uint32_t pid, const char *service, uint64_t start_ns)
{
	memset(sp, 0, offsetof(struct span, pool));
	sp->pool[0] = '\0';
	sp->pool_used = 1; /* offset 0 is "" */
	sp->kind = kind;
	sp->pid = pid;
	snprintf(sp->service, sizeof(sp->service), "%s", service);
	sp->start_unix_ns = to_unix(s, start_ns);
	rand_bytes(s, sp->span_id, sizeof(sp->span_id));
}

static void span_end(struct spans *s, struct span *sp, uint64_t end_ns)
{
	sp->end_unix_ns = to_unix(s, end_ns);
	if (sp->end_unix_ns < sp->start_unix_ns)
		sp->end_unix_ns = sp->start_unix_ns;
}

/* The method as the semantic conventions name spans: "HTTP" if unknown. */
static const char *span_method(const char *m)
{
	return m && *m && strcmp(m, "_OTHER") ? m : "HTTP";
}

/* ---- the ring ------------------------------------------------------------ */

static void emit(struct spans *s, const struct span *sp, bool keep)
{
	pthread_mutex_lock(&s->lock);
	if (!keep) {
		s->st.dropped[SPAN_DROP_NOT_SAMPLED]++;
	} else {
		if (s->push && s->head - s->tail == SPANS_RING) {
			s->tail++;
			s->st.dropped[SPAN_DROP_QUEUE_FULL]++;
		}
		s->ring[s->head % SPANS_RING] = *sp;
		s->head++;
		if (!s->push)
			s->tail = s->head;
		s->st.kept++;
	}
	pthread_mutex_unlock(&s->lock);
}

static void count(struct spans *s, uint64_t *c)
{
	pthread_mutex_lock(&s->lock);
	(*c)++;
	pthread_mutex_unlock(&s->lock);
}

/* ---- processes ----------------------------------------------------------- */

static unsigned proc_hash(uint32_t pid)
{
	return (unsigned)((pid * 0x9E3779B1U) >> 16) & (PROC_SLOTS - 1);
}

static struct tproc *proc_find(struct spans *s, uint32_t pid)
{
	unsigned h = proc_hash(pid), i;
	struct tproc *p;

	for (i = 0; i < PROC_PROBE; i++) {
		p = &s->procs[(h + i) & (PROC_SLOTS - 1)];
		if (p->pid == pid)
			return p;
	}
	return NULL;
}

/* The process's entry, taking a free or idle slot of its probe run. */
static struct tproc *proc_get(struct spans *s, uint32_t pid)
{
	unsigned h = proc_hash(pid), i;
	struct tproc *p, *idle = NULL;

	p = proc_find(s, pid);
	if (p)
		return p;
	for (i = 0; i < PROC_PROBE && !idle; i++) {
		p = &s->procs[(h + i) & (PROC_SLOTS - 1)];
		if (!p->pid || (!p->nopen && !p->untracked))
			idle = p;
	}
	if (!idle)
		return NULL;
	memset(idle, 0, sizeof(*idle));
	idle->pid = pid;
	idle->epoch = ++s->epochs;
	return idle;
}

static void proc_unlink(struct tproc *p, unsigned i)
{
	memmove(&p->open[i], &p->open[i + 1],
		(p->nopen - i - 1) * sizeof(p->open[0]));
	p->nopen--;
}

/* ---- exchanges and their children ------------------------------------- */

static int32_t exch_alloc(struct spans *s)
{
	unsigned i, k;

	for (i = 0; i < EXCH_MAX; i++) {
		k = (s->next_exch + i) % EXCH_MAX;
		if (s->xs[k].state != EX_OPEN) {
			s->next_exch = (k + 1) % EXCH_MAX;
			s->xs[k].gen++;
			return (int32_t)k;
		}
	}
	return -1;
}

/* Emit (or count as not sampled) every buffered child of x. */
static void flush_children(struct spans *s, struct exch *x, bool keep_all)
{
	int32_t i = x->child_head, next;
	struct child *c;

	while (i >= 0) {
		c = &s->children[i];
		next = c->next;
		emit(s, &c->sp, keep_all || x->head_keep || c->keep_alone);
		c->next = s->child_free;
		s->child_free = i;
		i = next;
	}
	x->child_head = x->child_tail = -1;
}

static void server_span_start(struct spans *s, struct exch *x,
			      const struct span_server_req *r)
{
	struct span *sp = &x->sp;
	const struct w3c_traceparent *tp = r->tp;

	span_begin(s, sp, SPAN_KIND_SERVER, r->pid, r->service, r->start_ns);
	if (tp) {
		memcpy(sp->trace_id, tp->trace_id, 16);
		memcpy(sp->parent_id, tp->parent_id, 8);
		sp->has_parent = 1;
		sp->flags = SPAN_FLAG_HAS_IS_REMOTE | SPAN_FLAG_IS_REMOTE;
	} else {
		rand_bytes(s, sp->trace_id, 16);
		sp->flags = SPAN_FLAG_HAS_IS_REMOTE;
	}
	x->head_keep = sampler_head(&s->cfg, sp->trace_id, tp != NULL,
				    tp && (tp->flags & 1));
	if (x->head_keep)
		sp->flags |= SPAN_FLAG_SAMPLED;
	if (r->route && *r->route)
		set_name(sp, "%s %s", span_method(r->method), r->route);
	else
		set_name(sp, "%s", span_method(r->method));
	attr_str(sp, "http.request.method", r->method);
	if (r->path_len)
		attr_strn(sp, "url.path", r->path,
			  r->path_len > 255 ? 255 : r->path_len);
	attr_str(sp, "http.route", r->route);
}

void spans_server_request(struct spans *s, const struct span_server_req *r)
{
	struct tproc *p;
	struct exch *x;
	int32_t i;

	if (!s || !s->xs)
		return;
	p = proc_get(s, r->pid);
	if (!p) {
		if (r->method)
			count(s, &s->st.dropped[SPAN_DROP_UNTRACKED]);
		return;
	}
	p->seq++;
	p->starts[p->seq % RECENT_STARTS] = r->start_ns;
	i = p->nopen < PROC_OPEN ? exch_alloc(s) : -1;
	if (i < 0) {
		p->untracked++;
		if (r->method)
			count(s, &s->st.dropped[SPAN_DROP_UNTRACKED]);
		return;
	}
	x = &s->xs[i];
	x->state = EX_OPEN;
	x->pid = r->pid;
	x->conn_id = r->conn_id;
	x->start_ns = r->start_ns;
	x->has_span = r->method != NULL;
	x->head_keep = x->tail_keep = x->flushed = x->kept = 0;
	x->child_head = x->child_tail = -1;
	if (x->has_span) {
		server_span_start(s, x, r);
		count(s, &s->st.server);
	}
	p->open[p->nopen++] = i;
}

static void addr_attr(struct span *sp, const char *key, uint8_t family,
		      const uint8_t *raddr)
{
	char buf[INET6_ADDRSTRLEN];

	if (!raddr)
		return;
	if (inet_ntop(family == 10 ? AF_INET6 : AF_INET, raddr, buf,
		      sizeof(buf)))
		attr_str(sp, key, buf);
}

/* The request ended (or was abandoned): decide its local trace. */
static void close_exchange(struct spans *s, struct exch *x,
			   const struct span_server_end *e)
{
	struct span *sp = &x->sp;
	char code[8];
	bool keep;

	if (x->has_span) {
		span_end(s, sp, e->end_ns);
		attr_str(sp, "url.scheme", e->tls ? "https" : "http");
		if (!e->aborted)
			attr_int(sp, "http.response.status_code", e->status);
		attr_int(sp, "server.port", e->lport);
		addr_attr(sp, "client.address", e->family, e->raddr);
		if (e->raddr)
			attr_int(sp, "client.port", e->rport);
		if (e->aborted) {
			sp->error = 1;
			attr_str(sp, "error.type", "aborted");
		} else if (e->status >= 500) {
			sp->error = 1;
			snprintf(code, sizeof(code), "%u", e->status);
			attr_str(sp, "error.type", code);
		}
		if (sp->error || is_slow(s, sp))
			x->tail_keep = 1;
	}
	keep = x->head_keep || x->tail_keep;
	if (x->has_span)
		emit(s, sp, keep);
	flush_children(s, x, keep);
	x->kept = keep;
	x->state = EX_CLOSED;
}

void spans_server_end(struct spans *s, const struct span_server_end *e)
{
	struct tproc *p;
	unsigned i;
	bool found = false;

	if (!s || !s->xs)
		return;
	p = proc_find(s, e->pid);
	if (!p)
		return;
	/* The oldest open request of the connection; an abort (close)
	 * ends every one it had. */
	for (i = 0; i < p->nopen;) {
		struct exch *x = &s->xs[p->open[i]];

		if (x->conn_id != e->conn_id) {
			i++;
			continue;
		}
		proc_unlink(p, i);
		close_exchange(s, x, e);
		found = true;
		if (!e->aborted)
			return;
	}
	if (!found && p->untracked)
		p->untracked--;
}

/* ---- client spans ------------------------------------------------------- */

void spans_parent_at(struct spans *s, uint32_t pid, uint64_t start_ns,
		     struct span_parent *out)
{
	struct tproc *p;
	int32_t only = -1;
	unsigned i, n = 0;

	memset(out, 0, sizeof(*out));
	out->valid = 1;
	out->exch = -1;
	if (!s || !s->xs)
		return;
	p = proc_find(s, pid);
	if (!p) {
		out->reason = SPAN_UNLINKED_NONE_IN_FLIGHT;
		return;
	}
	out->proc = (uint32_t)(p - s->procs);
	out->epoch = p->epoch;
	out->seq = p->seq;
	for (i = 0; i < p->nopen; i++) {
		if (s->xs[p->open[i]].start_ns <= start_ns) {
			only = p->open[i];
			n++;
		}
	}
	n += p->untracked;
	if (n == 0) {
		out->reason = SPAN_UNLINKED_NONE_IN_FLIGHT;
	} else if (n > 1) {
		out->reason = SPAN_UNLINKED_AMBIGUOUS;
	} else if (only < 0 || !s->xs[only].has_span) {
		out->reason = SPAN_UNLINKED_UNKNOWN;
	} else {
		out->exch = only;
		out->gen = s->xs[only].gen;
	}
}

/*
 * Recheck a snapshot when the operation ends: the parent is still the
 * request it named, and no request of the process that started before
 * the operation was seen after the snapshot. Returns the exchange or NULL
 * with *reason.
 */
static struct exch *confirm_parent(struct spans *s,
				   const struct span_client_op *op,
				   const struct span_parent *par, int *reason)
{
	struct tproc *p;
	struct exch *x;
	uint64_t q;

	*reason = SPAN_UNLINKED_UNKNOWN;
	if (!par || !par->valid)
		return NULL;
	if (par->exch < 0) {
		*reason = par->reason;
		return NULL;
	}
	x = &s->xs[par->exch];
	p = &s->procs[par->proc % PROC_SLOTS];
	if (x->gen != par->gen || p->epoch != par->epoch || p->pid != op->pid ||
	    p->seq - par->seq >= RECENT_STARTS)
		return NULL;
	for (q = par->seq + 1; q <= p->seq; q++) {
		if (p->starts[q % RECENT_STARTS] <= op->start_ns) {
			*reason = SPAN_UNLINKED_AMBIGUOUS;
			return NULL;
		}
	}
	return x;
}

static void client_span_attrs(struct span *sp, const struct span_client_op *op)
{
	static const char *const systems[] = {"http", "postgresql", "redis"};
	const char *opname =
	    op->operation && *op->operation && strcmp(op->operation, "_OTHER")
		? op->operation
		: NULL;
	char code[8];

	if (op->proto == SPAN_PROTO_HTTP) {
		set_name(sp, "%s", span_method(op->operation));
		attr_str(sp, "http.request.method", op->operation);
		attr_str(sp, "server.address", op->peer_addr);
		attr_int(sp, "server.port", op->peer_port);
		attr_int(sp, "http.response.status_code", op->status);
		if (op->status >= 400) {
			sp->error = 1;
			snprintf(code, sizeof(code), "%u", op->status);
			attr_str(sp, "error.type", code);
		}
		return;
	}
	if (opname && op->collection && *op->collection)
		set_name(sp, "%s %s", opname, op->collection);
	else
		set_name(sp, "%s", opname ? opname : systems[op->proto]);
	attr_str(sp, "db.system.name", systems[op->proto]);
	attr_str(sp, "db.operation.name", opname);
	attr_str(sp, "db.collection.name", op->collection);
	if (op->proto == SPAN_PROTO_PG)
		attr_str(sp, "db.query.text", op->query_text);
	attr_str(sp, "server.address", op->peer_addr);
	attr_int(sp, "server.port", op->peer_port);
	if (op->error && *op->error) {
		sp->error = 1;
		attr_str(sp, "error.type", op->error);
		if (op->proto == SPAN_PROTO_PG)
			attr_str(sp, "db.response.status_code", op->error);
	}
}

void spans_client(struct spans *s, const struct span_client_op *op,
		  const struct span_parent *par)
{
	struct span sp;
	struct exch *x;
	struct child *c;
	bool alone, head;
	int reason, i;

	if (!s || !s->xs)
		return;
	span_begin(s, &sp, SPAN_KIND_CLIENT, op->pid, op->service,
		   op->start_ns);
	span_end(s, &sp, op->end_ns);
	client_span_attrs(&sp, op);
	alone = sp.error || is_slow(s, &sp);
	x = confirm_parent(s, op, par, &reason);
	pthread_mutex_lock(&s->lock);
	s->st.client++;
	if (x)
		s->st.linked++;
	else
		s->st.unlinked[reason]++;
	pthread_mutex_unlock(&s->lock);
	if (!x) {
		rand_bytes(s, sp.trace_id, 16);
		head = sampler_head(&s->cfg, sp.trace_id, false, false);
		sp.flags =
		    SPAN_FLAG_HAS_IS_REMOTE | (head ? SPAN_FLAG_SAMPLED : 0);
		emit(s, &sp, head || alone);
		return;
	}
	memcpy(sp.trace_id, x->sp.trace_id, 16);
	memcpy(sp.parent_id, x->sp.span_id, 8);
	sp.has_parent = 1;
	sp.flags =
	    SPAN_FLAG_HAS_IS_REMOTE | (x->head_keep ? SPAN_FLAG_SAMPLED : 0);
	if (x->state == EX_CLOSED) {
		emit(s, &sp, x->kept || alone);
		return;
	}
	if (alone)
		x->tail_keep = 1;
	if (x->flushed || s->child_free < 0) {
		emit(s, &sp, x->head_keep || alone);
		return;
	}
	i = s->child_free;
	c = &s->children[i];
	s->child_free = c->next;
	c->next = -1;
	c->keep_alone = alone;
	c->sp = sp;
	if (x->child_tail >= 0)
		s->children[x->child_tail].next = i;
	else
		x->child_head = i;
	x->child_tail = i;
}

void spans_tick(struct spans *s, uint64_t now_ns)
{
	struct tproc *p;
	struct exch *x;
	unsigned i, j;

	if (!s || !s->xs)
		return;
	for (i = 0; i < EXCH_MAX; i++) {
		x = &s->xs[i];
		if (x->state != EX_OPEN || now_ns < x->start_ns)
			continue;
		if (now_ns - x->start_ns >= CHILD_WAIT_NS && !x->flushed) {
			flush_children(s, x, x->tail_keep);
			x->flushed = 1;
		}
		if (now_ns - x->start_ns < OPEN_MAX_NS)
			continue;
		/* Its end was never seen: forget it. */
		p = proc_find(s, x->pid);
		for (j = 0; p && j < p->nopen; j++)
			if (p->open[j] == (int32_t)i) {
				proc_unlink(p, j);
				break;
			}
		if (x->has_span)
			count(s, &s->st.dropped[SPAN_DROP_OPEN_TIMEOUT]);
		x->state = EX_FREE;
		x->gen++; /* snapshots naming it are stale */
	}
}

/* ---- readers ------------------------------------------------------------- */

void spans_get_stats(struct spans *s, struct spans_stats *out)
{
	pthread_mutex_lock(&s->lock);
	*out = s->st;
	pthread_mutex_unlock(&s->lock);
}

void spans_publish(struct spans *s)
{
	static const char *const unlinked[] = {"none_in_flight", "ambiguous",
					       "unknown"};
	static const char *const dropped[] = {
	    "not_sampled", "queue_full", "untracked", "open_timeout", "encode"};
	struct spans_stats st;
	unsigned i;

	if (!s || !s->xs || !s->m_spans)
		return;
	spans_get_stats(s, &st);
	{
		const char *sv[] = {"server"}, *cv[] = {"client"};

		metric_set(s->m_spans, sv, (double)st.server);
		metric_set(s->m_spans, cv, (double)st.client);
	}
	for (i = 0; i < SPAN_UNLINKED__COUNT; i++) {
		const char *lv[] = {unlinked[i]};

		metric_set(s->m_unlinked, lv, (double)st.unlinked[i]);
	}
	for (i = 0; i < SPAN_DROP__COUNT; i++) {
		const char *lv[] = {dropped[i]};

		metric_set(s->m_dropped, lv, (double)st.dropped[i]);
	}
}

size_t spans_recent(struct spans *s, struct span *out, size_t max)
{
	uint64_t n, i, from;

	if (!s || !s->ring)
		return 0;
	pthread_mutex_lock(&s->lock);
	n = s->head < SPANS_RECENT ? s->head : SPANS_RECENT;
	if (n > max)
		n = max;
	from = s->head - n;
	for (i = 0; i < n; i++)
		out[i] = s->ring[(from + i) % SPANS_RING];
	pthread_mutex_unlock(&s->lock);
	return (size_t)n;
}

size_t spans_take(struct spans *s, struct span *out, size_t max)
{
	uint64_t n, i;

	if (!s || !s->ring)
		return 0;
	pthread_mutex_lock(&s->lock);
	n = s->head - s->tail;
	if (n > max)
		n = max;
	for (i = 0; i < n; i++)
		out[i] = s->ring[(s->tail + i) % SPANS_RING];
	s->tail += n;
	pthread_mutex_unlock(&s->lock);
	return (size_t)n;
}

int spans_recent_otlp(struct spans *s, uint8_t **body, size_t *len)
{
	struct span *buf = malloc(SPANS_RECENT * sizeof(*buf));
	size_t n;
	int err;

	if (!buf)
		return -ENOMEM;
	n = spans_recent(s, buf, SPANS_RECENT);
	err = otlp_traces_encode(buf, n, s ? s->host : "", body, len);
	free(buf);
	return err;
}

int spans_collect_otlp(void *ctx, uint8_t **body, size_t *len)
{
	struct spans *s = ctx;
	struct span *buf;
	size_t n;
	int err;

	*body = NULL;
	*len = 0;
	if (!s || !s->ring)
		return 0;
	buf = malloc(SPANS_BATCH * sizeof(*buf));
	if (!buf)
		return -ENOMEM;
	n = spans_take(s, buf, SPANS_BATCH);
	err = n ? otlp_traces_encode(buf, n, s->host, body, len) : 0;
	free(buf);
	if (err) {
		pthread_mutex_lock(&s->lock);
		s->st.dropped[SPAN_DROP_ENCODE] += n;
		pthread_mutex_unlock(&s->lock);
		*body = NULL;
		*len = 0;
	}
	return err;
}

/* ---- setup ----------------------------------------------------------------
 */

int64_t spans_clock_offset(void)
{
	struct timespec a, r, b;
	int64_t best_gap = INT64_MAX, off = 0, gap, mid;
	int i;

	for (i = 0; i < 7; i++) {
		clock_gettime(CLOCK_MONOTONIC, &a);
		clock_gettime(CLOCK_REALTIME, &r);
		clock_gettime(CLOCK_MONOTONIC, &b);
		gap = (b.tv_sec - a.tv_sec) * 1000000000LL +
		      (b.tv_nsec - a.tv_nsec);
		if (gap >= best_gap)
			continue;
		best_gap = gap;
		mid = a.tv_sec * 1000000000LL + a.tv_nsec + gap / 2;
		off = r.tv_sec * 1000000000LL + r.tv_nsec - mid;
	}
	return off;
}

static int register_metrics(struct spans *s, struct metric_registry *reg)
{
	static const char *const kind[] = {"span_kind", NULL};
	static const char *const reason[] = {"reason", NULL};

	s->m_spans =
	    metric_family_new(reg, "katascope_spans_total", METRIC_COUNTER,
			      "Spans built from finished exchanges, by "
			      "span_kind (server, client), before sampling.",
			      kind, NULL, 0);
	s->m_dropped = metric_family_new(
	    reg, "katascope_spans_dropped_total", METRIC_COUNTER,
	    "Spans not exported, by reason: not_sampled, queue_full (push fell "
	    "behind), untracked (request tables full), open_timeout (no end "
	    "seen), encode.",
	    reason, NULL, 0);
	s->m_unlinked = metric_family_new(
	    reg, "katascope_spans_unlinked_total", METRIC_COUNTER,
	    "Client spans not parented to a server span, by reason: "
	    "none_in_flight, ambiguous (several requests in flight), unknown "
	    "(the agent lost track).",
	    reason, NULL, 0);
	return s->m_spans && s->m_dropped && s->m_unlinked ? 0 : -ENOMEM;
}

struct spans *spans_new(const struct spans_opts *o)
{
	struct spans *s = calloc(1, sizeof(*s));
	unsigned i;

	if (!s)
		return NULL;
	s->cfg = o->cfg;
	s->offset = o->mono_to_unix_ns;
	s->push = o->push;
	s->rng = o->seed;
	pthread_mutex_init(&s->lock, NULL);
	if (o->host_name)
		snprintf(s->host, sizeof(s->host), "%s", o->host_name);
	else if (gethostname(s->host, sizeof(s->host) - 1))
		s->host[0] = '\0';
	if (!s->rng &&
	    getrandom(&s->rng, sizeof(s->rng), 0) != (ssize_t)sizeof(s->rng))
		s->rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	if (o->reg && register_metrics(s, o->reg))
		goto fail;
	if (!s->cfg.enabled)
		return s;
	s->xs = calloc(EXCH_MAX, sizeof(*s->xs));
	s->children = calloc(CHILD_MAX, sizeof(*s->children));
	s->procs = calloc(PROC_SLOTS, sizeof(*s->procs));
	s->ring = malloc(SPANS_RING * sizeof(*s->ring));
	if (!s->xs || !s->children || !s->procs || !s->ring)
		goto fail;
	for (i = 0; i < CHILD_MAX; i++)
		s->children[i].next = i + 1 < CHILD_MAX ? (int32_t)i + 1 : -1;
	s->child_free = 0;
	return s;
fail:
	spans_free(s);
	return NULL;
}

void spans_free(struct spans *s)
{
	if (!s)
		return;
	free(s->xs);
	free(s->children);
	free(s->procs);
	free(s->ring);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

bool spans_enabled(const struct spans *s)
{
	return s && s->xs;
}
