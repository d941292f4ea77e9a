/*
 * l7_client.c - client operations from the kernel's records; see
 * l7_client.h.
 *
 * Two fixed tables keyed by connection (tgid << 32 | fd): pending requests
 * (the operations of the request in flight) and, for PostgreSQL, the named
 * prepared statements each connection has parsed, so a later Bind/Execute
 * of a statement prepared earlier is named by its text. Collisions replace
 * the older entry; memory is fixed.
 */
#include "l7_client.h"
#include "hash.h"
#include "l7_pg.h"
#include "l7_redis.h"
#include "spans.h"
#include "sqlnorm.h"
#include "strbuf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PENDING_SLOTS 4096 /* power of two */
#define PG_CONN_SLOTS 512 /* power of two */
#define OPS_MAX 8

static const double db_bounds[] = { 0.001, 0.005, 0.01, 0.05, 0.1,
				    0.5,   1,	  5,	10 };
static const double http_bounds[] = { 0.005, 0.01, 0.025, 0.05, 0.075,
				      0.1,   0.25, 0.5,   0.75, 1,
				      2.5,   5,	   7.5,	  10 };

struct op {
	uint64_t start_ns; /* Redis: when its command was written */
	struct span_parent parent; /* tracing: taken when it was written */
	char name[REDIS_NAME_MAX]; /* SELECT, GET, or the HTTP method */
	char collection[64];
	char text[PG_STMT_TEXT_MAX]; /* normalized statement */
};

struct cpending {
	uint64_t conn_id; /* 0: free */
	uint8_t proto;
	unsigned head, n; /* ops[head..n) await their answer */
	struct op ops[OPS_MAX];
	/* Redis: a reply cut at the end of a read, completed by the next */
	uint16_t carry_len;
	uint8_t carry[KS_L7_DATA];
};

/*
 * What the agent derives from a statement's text, kept for the texts seen
 * last: an application runs the same few statements over and over, and
 * normalizing and naming them was a fifth of the agent's CPU on a route
 * doing one query per request. Direct-mapped by a hash of the input; a
 * hit compares the input itself.
 */
#define SQL_MEMO_SLOTS 128

struct sql_memo {
	uint64_t hash; /* of the input and flags; 0: empty */
	uint16_t len;
	uint8_t flags; /* MEMO_* of the input */
	bool text_cut; /* text may end inside a word */
	char in[KS_L7_DATA];
	char text[PG_STMT_TEXT_MAX]; /* normalized */
	char name[REDIS_NAME_MAX];
	char collection[64];
};

#define MEMO_CUT 1 /* the input was cut */
#define MEMO_NORMALIZED 2 /* the input is normalized text already */

struct pg_conn {
	uint64_t conn_id;
	struct pg_stmts stmts;
	char unnamed[PG_STMT_TEXT_MAX]; /* the unnamed statement's text */
	bool unnamed_cut; /* ... cut by the capture or to fit */
};

struct l7_client {
	struct metric_registry *reg;
	struct queries *queries;
	struct metric_family *db_dur;
	struct metric_family *http_dur;
	struct metric_family *redis_get;
	struct metric_family *aborted;
	struct cpending *pending;
	struct spans *spans; /* NULL: tracing off */
	struct pg_conn *pg[PG_CONN_SLOTS];
	struct sql_memo *memo; /* SQL_MEMO_SLOTS; NULL: none (no memory) */
	struct sql_memo memo_miss; /* a result not kept */
	/* The peer of the answer being handled (server_address/port). */
	char peer_addr[INET6_ADDRSTRLEN];
	uint8_t peer_raw[17]; /* family, address: what peer_addr spells */
	struct ks_num_str peer_port;
	struct ks_num_str status; /* of the last HTTP response */
	/* The kernel's HTTP client counters as last folded, per slot of
	 * http_tab (KS_HTTP_SLOTS, allocated on first use); zero
	 * for a slot released or never folded. */
	struct ks_http_val *seen;
	uint16_t *idle; /* per slot: folds in a row without growth */
};

struct l7_client *l7_client_new(struct metric_registry *reg,
				struct queries *q)
{
	static const char *const db_labels[] = {
		"service_name",	      "db_system_name", "db_operation_name",
		"db_collection_name", "error_type",	"server_address",
		"server_port",	      NULL
	};
	static const char *const http_labels[] = {
		"service_name", "http_request_method",
		"server_address", "server_port",
		"http_response_status_code", NULL
	};
	static const char *const get_labels[] = { "service_name", "result",
						  NULL };
	static const char *const ab_labels[] = { "service_name", "protocol",
						 NULL };
	struct l7_client *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->peer_raw[0] = 0xff; /* no family: the first record converts */
	c->reg = reg;
	c->queries = q;
	c->pending = calloc(PENDING_SLOTS, sizeof(*c->pending));
	c->memo = calloc(SQL_MEMO_SLOTS, sizeof(*c->memo));
	c->db_dur = metric_family_new(
		reg, "db_client_operation_duration_seconds", METRIC_HISTOGRAM,
		"Database operations measured in the client process: from the first byte of the request written to the last byte of the answer read.",
		db_labels, db_bounds, sizeof(db_bounds) / sizeof(db_bounds[0]));
	c->http_dur = metric_family_new(
		reg, "http_client_request_duration_seconds", METRIC_HISTOGRAM,
		"Outgoing HTTP requests: from the first byte of the request written to the last byte of the response read.",
		http_labels, http_bounds,
		sizeof(http_bounds) / sizeof(http_bounds[0]));
	c->redis_get = metric_family_new(
		reg, "katascope_redis_get_total", METRIC_COUNTER,
		"Redis GET commands by result: hit (a value) or miss (nil). The cache hit rate is hit / (hit + miss).",
		get_labels, NULL, 0);
	c->aborted = metric_family_new(
		reg, "katascope_client_requests_aborted_total", METRIC_COUNTER,
		"Client requests whose connection was closed before the whole answer was read.",
		ab_labels, NULL, 0);
	if (!c->pending || !c->db_dur || !c->http_dur || !c->redis_get ||
	    !c->aborted) {
		l7_client_free(c);
		return NULL;
	}
	return c;
}

void l7_client_free(struct l7_client *c)
{
	unsigned i;

	if (!c)
		return;
	for (i = 0; i < PG_CONN_SLOTS; i++)
		free(c->pg[i]);
	free(c->pending);
	free(c->memo);
	free(c->seen);
	free(c->idle);
	free(c);
}

/* Bytes of data a record holds: a bad len never reads past the array. */
static size_t data_len(const struct ks_l7_event *ev)
{
	return ev->len < KS_L7_DATA ? ev->len : KS_L7_DATA;
}

static unsigned hash_slot(uint64_t id, unsigned n)
{
	return (unsigned)((id * 0x9E3779B97F4A7C15ULL) >> 40) & (n - 1);
}

static struct pg_conn *pg_conn_of(struct l7_client *c, uint64_t conn_id)
{
	struct pg_conn **pp = &c->pg[hash_slot(conn_id, PG_CONN_SLOTS)];

	if (!*pp)
		*pp = calloc(1, sizeof(**pp));
	if (!*pp)
		return NULL;
	if ((*pp)->conn_id != conn_id) {
		memset(*pp, 0, sizeof(**pp));
		(*pp)->conn_id = conn_id;
	}
	return *pp;
}

/* Normalized text, operation and collection of a statement's text. */
static void derive(struct sql_memo *m, const char *sql, size_t len,
		   bool cut, bool normalized)
{
	bool out_cut = false;
	size_t n;

	if (normalized)
		snprintf(m->text, sizeof(m->text), "%.*s", (int)len, sql);
	else
		sql_normalize(sql, len, m->text, sizeof(m->text), &out_cut);
	m->text_cut = cut || out_cut;
	n = strlen(m->text);
	if (!sql_operation(m->text, n, m->text_cut, m->name))
		snprintf(m->name, sizeof(m->name), "_OTHER");
	sql_collection(m->text, n, m->text_cut, m->collection,
		       sizeof(m->collection));
}

/*
 * cut: the text may end inside a word (capture or buffer limit), so a
 * name touching its end is not reported. normalized: the text is the
 * normalizer's output already (a prepared statement's).
 */
static const struct sql_memo *sql_facts(struct l7_client *c, const char *sql,
					size_t len, bool cut, bool normalized)
{
	uint8_t flags = (uint8_t)((cut ? MEMO_CUT : 0) |
				  (normalized ? MEMO_NORMALIZED : 0));
	struct sql_memo *m;
	uint64_t h;

	if (!c->memo || len > sizeof(m->in)) {
		derive(&c->memo_miss, sql, len, cut, normalized);
		return &c->memo_miss;
	}
	h = ks_hash_bytes(KS_HASH_SEED ^ flags, sql, len);
	m = &c->memo[h % SQL_MEMO_SLOTS];
	h |= 1; /* after the slot: an odd hash would use odd slots only */
	if (m->hash == h && m->len == len && m->flags == flags &&
	    memcmp(m->in, sql, len) == 0)
		return m;
	derive(m, sql, len, cut, normalized);
	memcpy(m->in, sql, len);
	m->len = (uint16_t)len;
	m->flags = flags;
	m->hash = h;
	return m;
}

static void op_from_sql(struct l7_client *c, struct op *o, const char *sql,
			size_t len, bool cut, bool normalized)
{
	const struct sql_memo *m = sql_facts(c, sql, len, cut, normalized);

	memcpy(o->text, m->text, strlen(m->text) + 1);
	memcpy(o->name, m->name, strlen(m->name) + 1);
	memcpy(o->collection, m->collection, strlen(m->collection) + 1);
}

static struct op *next_op(struct cpending *p)
{
	struct op *o;

	if (p->n >= OPS_MAX && p->head > 0) {
		memmove(p->ops, p->ops + p->head,
			(p->n - p->head) * sizeof(p->ops[0]));
		p->n -= p->head;
		p->head = 0;
	}
	if (p->n >= OPS_MAX)
		return NULL;
	/* Field by field, the strings by their first byte: clearing the
	 * whole operation (or all but its text) showed in the agent's
	 * profile. */
	o = &p->ops[p->n++];
	o->start_ns = 0;
	memset(&o->parent, 0, sizeof(o->parent));
	o->name[0] = '\0';
	o->collection[0] = '\0';
	o->text[0] = '\0';
	return o;
}

static bool only_blanks(const char *s, size_t n)
{
	for (; n > 0; s++, n--)
		if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n' &&
		    *s != ';')
			return false;
	return true;
}

/* A simple Query may hold several statements: one operation each. */
static void pg_query(struct l7_client *c, struct cpending *p,
		     const struct pg_str *sql)
{
	const char *s = sql->s;
	size_t left = sql->len, one;
	struct op *o;

	while (left > 0) {
		one = sql_statement_len(s, left);
		if (one == 0)
			break;
		/* Skip what is only whitespace after the last ';' (a cut
		 * text has no NUL: strspn could run past the record). */
		if (only_blanks(s, one)) {
			s += one;
			left -= one;
			continue;
		}
		o = next_op(p);
		if (!o)
			return;
		op_from_sql(c, o, s, one, one == left && sql->cut, false);
		s += one;
		left -= one;
	}
}

static void parse_pg_request(struct l7_client *c, struct cpending *p,
			     const struct ks_l7_event *ev)
{
	struct pg_conn *pc = pg_conn_of(c, ev->conn_id);
	const char *current = NULL;
	struct pg_str name, sql, portal;
	const struct pg_stmt *st;
	struct pg_iter it;
	struct pg_msg m;
	bool pending_parse = false, current_cut = false;
	struct op *o;

	pg_iter_init(&it, ev->data, data_len(ev), PG_FRONTEND);
	while (pg_iter_next(&it, &m) == 1) {
		switch (m.type) {
		case 'Q':
			if (pg_parse_query(&m, &sql) >= 0 || sql.len)
				pg_query(c, p, &sql);
			break;
		case 'P':
			if (pg_parse_parse(&m, &name, &sql) < 0 && !sql.len)
				break;
			if (pc && name.len)
				pg_stmts_put(&pc->stmts, &name, &sql);
			if (pc && !name.len) {
				const struct sql_memo *f = sql_facts(
					c, sql.s, sql.len, sql.cut, false);

				memcpy(pc->unnamed, f->text,
				       strlen(f->text) + 1);
				pc->unnamed_cut = f->text_cut;
			}
			pending_parse = true;
			current = NULL;
			if (pc && name.len) {
				st = pg_stmts_get(&pc->stmts, &name);
				current = st ? st->text : NULL;
				current_cut = st && st->cut;
			} else if (pc) {
				current = pc->unnamed;
				current_cut = pc->unnamed_cut;
			}
			break;
		case 'B':
			if (pg_parse_bind(&m, &portal, &name) < 0 && !m.truncated)
				break;
			if (pc && name.len) {
				st = pg_stmts_get(&pc->stmts, &name);
				current = st ? st->text : NULL;
				current_cut = st && st->cut;
			} else if (pc) {
				current = pc->unnamed;
				current_cut = pc->unnamed_cut;
			}
			pending_parse = true;
			break;
		case 'E':
			o = next_op(p);
			if (o && current && current[0])
				op_from_sql(c, o, current, strlen(current),
					    current_cut, true);
			else if (o)
				snprintf(o->name, sizeof(o->name), "_OTHER");
			pending_parse = false;
			break;
		case 'S':
			/* Sync with no Execute since the Parse: a prepare
			 * (PQprepare, pgx, JDBC), no statement was run. */
			pending_parse = false;
			break;
		}
		if (m.truncated)
			break;
	}
	/* Parse/Bind seen but the Execute was past the capture (or in a
	 * later write). */
	if (pending_parse && (o = next_op(p))) {
		if (current && current[0])
			op_from_sql(c, o, current, strlen(current),
				    current_cut, true);
		else
			snprintf(o->name, sizeof(o->name), "_OTHER");
	}
}

static void parse_redis_request(struct cpending *p,
				const struct ks_l7_event *ev)
{
	const uint8_t *b = ev->data;
	size_t left = data_len(ev);
	struct redis_cmd cmd;
	ssize_t n;
	struct op *o;

	while (left > 0) {
		n = redis_parse_command(b, left, &cmd);
		if (n < 0 && !cmd.name[0])
			break;
		o = next_op(p);
		if (!o)
			break;
		o->start_ns = ev->start_ns;
		ks_strlcpy(o->name, cmd.name, sizeof(o->name));
		ks_strlcpy(o->text, cmd.name, sizeof(o->text));
		if (n <= 0)
			break; /* cut by the capture: counted, then stop */
		b += n;
		left -= (size_t)n;
	}
}

static void parse_http_request(struct cpending *p,
			       const struct ks_l7_event *ev)
{
	struct op *o = next_op(p);
	size_t i;

	if (!o)
		return;
	for (i = 0; i < data_len(ev) && i < sizeof(o->name) - 1; i++) {
		if (ev->data[i] == ' ')
			break;
		o->name[i] = (char)ev->data[i];
	}
	o->name[i] = '\0';
}

/* The operations this write started: which request they serve. */
static void snapshot_parents(struct l7_client *c, struct cpending *p,
			     const struct ks_l7_event *ev)
{
	unsigned i;

	for (i = p->head; i < p->n; i++)
		if (!p->ops[i].parent.valid)
			spans_parent_at(c->spans, ev->hdr.pid, ev->start_ns,
					&p->ops[i].parent);
}

/* One finished operation as a span. */
static void trace_op(struct l7_client *c, const struct proc_entry *e,
		     enum span_proto proto, const struct op *o,
		     const char *err, uint64_t start_ns, uint64_t end_ns,
		     unsigned status)
{
	struct span_client_op so = {
		.pid = (uint32_t)e->pid,
		.service = e->service,
		.proto = proto,
		.start_ns = start_ns,
		.end_ns = end_ns,
		.operation = o->name,
		.collection = o->collection,
		.query_text = o->text,
		.error = err,
		.status = status,
		.peer_addr = c->peer_addr,
		.peer_port = (unsigned)c->peer_port.v,
	};

	spans_client(c->spans, &so, &o->parent);
}

static void on_request(struct l7_client *c, const struct ks_l7_event *ev)
{
	struct cpending *p = &c->pending[hash_slot(ev->conn_id, PENDING_SLOTS)];

	/* Redis commands queue up until their replies are read. */
	if (ev->proto != KS_PROTO_REDIS || p->conn_id != ev->conn_id ||
	    p->proto != ev->proto)
		p->head = p->n = p->carry_len = 0;
	p->conn_id = ev->conn_id;
	p->proto = ev->proto;
	if (ev->proto == KS_PROTO_PG)
		parse_pg_request(c, p, ev);
	else if (ev->proto == KS_PROTO_REDIS)
		parse_redis_request(p, ev);
	else if (ev->proto == KS_PROTO_HTTP)
		parse_http_request(p, ev);
	if (p->n == p->head)
		p->conn_id = 0;
	if (c->spans)
		snapshot_parents(c, p, ev);
}

/* SQLSTATE of an ErrorResponse right before the final ReadyForQuery. */
static void pg_error_code(const struct ks_l7_event *ev, char out[6])
{
	const uint8_t *d = ev->data;
	size_t n = data_len(ev), z, i;
	struct pg_error err;
	struct pg_iter it;
	struct pg_msg m;
	uint32_t len;

	out[0] = '\0';
	if (n < 6)
		return;
	z = n - 6; /* where 'Z' starts */
	for (i = 0; i + 5 <= z; i++) {
		const uint8_t *e = memchr(d + i, 'E', z - 4 - i);

		if (!e)
			return;
		i = (size_t)(e - d);
		len = (uint32_t)d[i + 1] << 24 | (uint32_t)d[i + 2] << 16 |
		      (uint32_t)d[i + 3] << 8 | d[i + 4];
		if (i + 1 + len != z)
			continue;
		pg_iter_init(&it, d + i, z - i, PG_BACKEND);
		if (pg_iter_next(&it, &m) == 1 && m.type == 'E' &&
		    pg_parse_error(&m, &err) >= 0)
			snprintf(out, 6, "%s", err.sqlstate);
		return;
	}
}

static uint64_t unix_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void observe_db(struct l7_client *c, const struct proc_entry *e,
		       const char *system, const struct op *o,
		       const char *err, uint64_t start_ns, uint64_t end_ns)
{
	double secs = end_ns > start_ns ? (double)(end_ns - start_ns) * 1e-9 :
					  0;
	const char *lv[] = { e->service,     system,	     o->name,
			     o->collection,  err,	     c->peer_addr,
			     c->peer_port.s };
	struct query_sample qs;

	metric_observe(c->db_dur, lv, secs);
	if (c->spans)
		trace_op(c, e,
			 strcmp(system, "redis") ? SPAN_PROTO_PG :
						   SPAN_PROTO_REDIS,
			 o, err, start_ns, end_ns, 0);
	if (!c->queries || strcmp(system, "postgresql"))
		return;
	qs.service = e->service;
	qs.system = system;
	qs.text = o->text;
	qs.error = err;
	qs.seconds = secs;
	qs.unix_ns = unix_ns();
	queries_add(c->queries, &qs);
}

static void finish_pg(struct l7_client *c, const struct proc_entry *e,
		      struct cpending *p, const struct ks_l7_event *ev)
{
	char err[8] = "";
	unsigned i;

	pg_error_code(ev, err);
	if (!err[0] && ev->sqlstate[0])
		snprintf(err, 6, "%.5s", (const char *)ev->sqlstate);
	/* The error ended the exchange: it belongs to the last statement. */
	for (i = p->head; i < p->n; i++)
		observe_db(c, e, "postgresql", &p->ops[i],
			   i + 1 == p->n ? err : "", ev->start_ns, ev->end_ns);
	p->conn_id = 0;
}

/* One Redis reply (or, past the capture, an unseen one) ends command o. */
static void redis_done(struct l7_client *c, const struct proc_entry *e,
		       const struct op *o, const struct redis_reply *rep,
		       uint64_t end_ns)
{
	const char *err = "";

	if (rep && redis_reply_is_error(rep))
		err = rep->error[0] ? rep->error : "ERR";
	if (rep && !err[0] && strcmp(o->name, "GET") == 0) {
		const char *lv[] = { e->service,
				     rep->type == REDIS_NIL ? "miss" : "hit" };

		metric_add(c->redis_get, lv, 1);
	}
	observe_db(c, e, "redis", o, err, o->start_ns, end_ns);
}

/*
 * A read of replies: each complete reply in the capture ends the oldest
 * command waiting (RESP3 pushes answer none). A reply cut at the end of a
 * read the capture holds whole is kept and completed by the next read. A
 * read longer than the capture ends every command still waiting (their
 * replies, past the capture, unseen); a read holding no complete reply
 * that cannot be kept is the rest of a long one and ends one command.
 */
static void finish_redis(struct l7_client *c, const struct proc_entry *e,
			 struct cpending *p, const struct ks_l7_event *ev)
{
	uint8_t buf[2 * KS_L7_DATA];
	size_t len = data_len(ev), left;
	const uint8_t *b = buf;
	struct redis_reply rep;
	unsigned done = 0;
	ssize_t n = 0;

	memcpy(buf, p->carry, p->carry_len);
	memcpy(buf + p->carry_len, ev->data, len);
	left = p->carry_len + len;
	p->carry_len = 0;
	while (p->head < p->n && left > 0) {
		n = redis_reply_len(b, left);
		if (n <= 0 || redis_parse_reply(b, left, &rep))
			break;
		if (rep.type != REDIS_PUSH) {
			redis_done(c, e, &p->ops[p->head++], &rep, ev->end_ns);
			done++;
		}
		b += n;
		left -= (size_t)n;
	}
	if (ev->total_len > len) {
		while (p->head < p->n)
			redis_done(c, e, &p->ops[p->head++], NULL, ev->end_ns);
	} else if (p->head < p->n && left > 0 && n == -EAGAIN &&
		   left <= sizeof(p->carry)) {
		memcpy(p->carry, b, left);
		p->carry_len = (uint16_t)left;
	} else if (!done && p->head < p->n) {
		redis_done(c, e, &p->ops[p->head++], NULL, ev->end_ns);
	}
	if (p->head == p->n)
		p->conn_id = 0;
}

static void finish_http(struct l7_client *c, const struct proc_entry *e,
			struct cpending *p, const struct ks_l7_event *ev,
			double secs)
{
	const char *lv[] = { e->service, p->ops[0].name, c->peer_addr,
			     c->peer_port.s, ks_num_str(&c->status, ev->status) };

	metric_observe(c->http_dur, lv, secs);
	if (c->spans)
		trace_op(c, e, SPAN_PROTO_HTTP, &p->ops[0], "", ev->start_ns,
			 ev->end_ns, ev->status);
}

static void on_done(struct l7_client *c, const struct proc_entry *e,
		    const struct ks_l7_event *ev)
{
	struct cpending *p = &c->pending[hash_slot(ev->conn_id, PENDING_SLOTS)];
	double secs;

	if (p->conn_id != ev->conn_id)
		return;
	if (ev->kind == KS_L7_CLIENT_ABORTED) {
		const char *lv[] = { e->service,
				     p->proto == KS_PROTO_PG ? "postgresql" :
				     p->proto == KS_PROTO_REDIS ? "redis" :
								  "http" };

		metric_add(c->aborted, lv, 1);
		p->conn_id = 0;
		return;
	}
	/* Most records come from the peer before (inet_ntop costs a
	 * printf). */
	if (c->peer_raw[0] != ev->family ||
	    memcmp(c->peer_raw + 1, ev->raddr, 16)) {
		c->peer_raw[0] = ev->family;
		memcpy(c->peer_raw + 1, ev->raddr, 16);
		c->peer_addr[0] = '\0';
		inet_ntop(ev->family == 10 ? AF_INET6 : AF_INET, ev->raddr,
			  c->peer_addr, sizeof(c->peer_addr));
	}
	ks_num_str(&c->peer_port, ev->rport);
	secs = ev->end_ns > ev->start_ns ?
		       (double)(ev->end_ns - ev->start_ns) * 1e-9 :
		       0;
	metric_registry_lock(c->reg);
	if (p->proto == KS_PROTO_HTTP) {
		finish_http(c, e, p, ev, secs);
		p->conn_id = 0;
	} else if (p->proto == KS_PROTO_PG) {
		finish_pg(c, e, p, ev);
	} else {
		finish_redis(c, e, p, ev);
	}
	metric_registry_unlock(c->reg);
}

void l7_client_set_spans(struct l7_client *c, struct spans *s)
{
	c->spans = s;
}

void l7_client_on_event(struct l7_client *c, const struct proc_entry *e,
			const struct ks_l7_event *ev)
{
	if (!e->monitored)
		return;
	/* An HTTP request's method may come with its end (KS_L7_F_HEAD). */
	if (ev->kind == KS_L7_CLIENT_REQUEST ||
	    (ev->flags & KS_L7_F_HEAD && ev->proto == KS_PROTO_HTTP))
		on_request(c, ev);
	if (ev->kind != KS_L7_CLIENT_REQUEST)
		on_done(c, e, ev);
}

/* ---- HTTP calls counted in the kernel ---------------------------------- */

/* The method's bytes as a string (they are zero-padded, or fill 8). */
static void method_str(const struct ks_http_key *k, char out[9])
{
	size_t i;

	for (i = 0; i < sizeof(k->method) && k->method[i]; i++)
		out[i] = (char)k->method[i];
	out[i] = '\0';
}

uint64_t l7_http_growth(const struct ks_http_val *v,
			const struct ks_http_val *last,
			uint64_t delta[KS_HTTP_BUCKETS], uint64_t *sum_ns)
{
	uint64_t n = 0;
	unsigned i;

	for (i = 0; i < KS_HTTP_BUCKETS; i++) {
		delta[i] = v->bucket[i] >= last->bucket[i] ?
				   v->bucket[i] - last->bucket[i] :
				   v->bucket[i];
		n += delta[i];
	}
	*sum_ns = v->sum_ns >= last->sum_ns ? v->sum_ns - last->sum_ns :
					      v->sum_ns;
	return n;
}

int l7_client_fold_http(struct l7_client *c, const struct proc_entry *e,
			uint32_t slot, const struct ks_http_key *k,
			const struct ks_http_val *v, int final)
{
	uint64_t delta[KS_HTTP_BUCKETS], n, sum;
	char method[9], addr[INET6_ADDRSTRLEN], port[8], status[8];
	struct ks_http_val *last;

	if (slot >= KS_HTTP_SLOTS)
		return 0;
	if (!c->seen)
		c->seen = calloc(KS_HTTP_SLOTS, sizeof(*c->seen));
	if (!c->idle)
		c->idle = calloc(KS_HTTP_SLOTS, sizeof(*c->idle));
	if (!c->seen || !c->idle)
		return 0; /* folded at a later refresh */
	last = &c->seen[slot];
	if (!e || !e->monitored) {
		if (final) {
			memset(last, 0, sizeof(*last));
			c->idle[slot] = 0;
		}
		return !final;
	}
	n = l7_http_growth(v, last, delta, &sum);
	if (n) {
		method_str(k, method);
		addr[0] = '\0';
		inet_ntop(k->family == 10 ? AF_INET6 : AF_INET, k->raddr, addr,
			  sizeof(addr));
		snprintf(port, sizeof(port), "%u", (unsigned)k->rport);
		snprintf(status, sizeof(status), "%u", (unsigned)k->status);
		{
			const char *lv[] = { e->service, method, addr, port,
					     status };

			metric_hist_add_buckets(
				metric_series_get(c->http_dur, lv), delta,
				(double)sum * 1e-9);
		}
	}
	*last = *v;
	if (final) {
		memset(last, 0, sizeof(*last));
		c->idle[slot] = 0;
		return 0;
	}
	c->idle[slot] = n ? 0 : (uint16_t)(c->idle[slot] + 1);
	/* Released when its process exited, or after a minute without
	 * growth: the slot may serve another label set. */
	return e->exit_ns || c->idle[slot] >= L7_IDLE_FOLDS;
}
