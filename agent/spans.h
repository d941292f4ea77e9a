/*
 * spans.h - trace spans from the exchanges the L7 parsers finish: a SERVER
 * span per HTTP request a process answers, a CLIENT span per HTTP call,
 * SQL statement and Redis command it makes. docs/tracing.md is the user's
 * description; this is the mechanism.
 *
 * Context. A server span joins the trace of a valid W3C traceparent found
 * in the captured request head (its trace id, the header's span id as
 * parent, its sampled flag); otherwise it starts a trace with a random id.
 * A client span is parented to a server span of the same process only
 * when that is unambiguous: exactly one known request of the process was
 * in flight (read, response not yet complete) when the client operation
 * started, and no other request of the process started before it and
 * reached the agent late (records of different CPUs can arrive out of
 * order). The snapshot is taken when the client request is seen
 * (spans_parent_at) and checked again when it ends (spans_client). The
 * thread is deliberately not used: event loops (Node) and M:N schedulers
 * (Go, virtual threads) run many requests on one thread, so "the same
 * thread" proves nothing. Everything else is a root span and is counted
 * as unlinked by reason.
 *
 * Keeping. The head decision is sampler.h's, per trace id, so children
 * follow their root. A server span waits for its children (buffered in a
 * bounded pool, at most CHILD_WAIT of the parent's age) and is decided
 * with them when it ends: the whole local trace is kept when the head
 * decision says so, or when any of its spans is an error or slower than
 * --trace-keep-slower-than. Kept spans go to a ring of SPANS_RING spans:
 * the newest SPANS_RECENT are served at GET /v1/traces, and, when a push
 * consumer is attached (opts.push), the ring is also its queue: spans not
 * collected before the ring wraps are dropped and counted.
 *
 * Times: the kernel stamps with CLOCK_MONOTONIC (bpf_ktime_get_ns); spans
 * carry unix ns, start + the offset spans_clock_offset() measured once.
 *
 * Threads: the spans_server_* / spans_client / spans_parent_at /
 * spans_tick calls come from the event loop; the readers (recent, take,
 * collect, stats) from any thread. Self-metrics are folded into the
 * registry by spans_publish().
 */
#ifndef KS_SPANS_H
#define KS_SPANS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "l7_http.h"
#include "metrics.h"
#include "procinfo.h"
#include "sampler.h"

#define SPAN_ATTRS_MAX 12
#define SPAN_POOL 448

#define SPANS_RING 8192	  /* kept spans: push queue and /v1/traces window */
#define SPANS_RECENT 2048 /* newest spans served at /v1/traces */
#define SPANS_BATCH 512	  /* spans per spans_collect_otlp body */

/* OTLP Span.SpanKind values. */
enum span_kind { SPAN_KIND_SERVER = 2, SPAN_KIND_CLIENT = 3 };

/* OTLP Span.flags bits beyond the W3C trace flags. */
#define SPAN_FLAG_SAMPLED 0x001
#define SPAN_FLAG_HAS_IS_REMOTE 0x100
#define SPAN_FLAG_IS_REMOTE 0x200

struct span_attr {
	const char *key; /* a string literal */
	int64_t ival;
	uint16_t off; /* string value at pool + off */
	uint8_t is_int;
};

/* A finished span; strings live in its own pool. */
struct span {
	uint8_t trace_id[16];
	uint8_t span_id[8];
	uint8_t parent_id[8];
	uint32_t flags; /* SPAN_FLAG_* */
	uint8_t kind;	/* enum span_kind */
	uint8_t error;	/* status ERROR */
	uint8_t has_parent;
	uint8_t nattrs;
	uint32_t pid;
	uint64_t start_unix_ns, end_unix_ns;
	char service[PI_NAME_LEN];
	uint16_t name_off, pool_used;
	struct span_attr attrs[SPAN_ATTRS_MAX];
	char pool[SPAN_POOL];
};

const char *span_name(const struct span *sp);
/* A string attribute's value, NULL if absent. */
const char *span_attr_str(const struct span *sp, const char *key);
/* An integer attribute: true and *v if present. */
bool span_attr_int(const struct span *sp, const char *key, int64_t *v);

/* A request the server read. */
struct span_server_req {
	uint32_t pid;
	const char *service;
	uint64_t conn_id;
	uint64_t start_ns;  /* kernel clock */
	const char *method; /* NULL: the head did not parse; tracked, no span */
	const char *route;  /* normalized; "" when unknown */
	const char *path;
	size_t path_len;
	const struct w3c_traceparent *tp; /* NULL: none valid */
};

/* The end of the oldest open request of a connection. */
struct span_server_end {
	uint32_t pid;
	uint64_t conn_id;
	uint64_t end_ns;
	unsigned status;
	bool aborted; /* closed before the response */
	bool tls;
	uint16_t lport, rport;
	uint8_t family; /* AF_INET / AF_INET6 of raddr */
	const uint8_t *raddr;
};

enum span_proto { SPAN_PROTO_HTTP, SPAN_PROTO_PG, SPAN_PROTO_REDIS };

/* A finished client operation. */
struct span_client_op {
	uint32_t pid;
	const char *service;
	enum span_proto proto;
	uint64_t start_ns, end_ns; /* kernel clock */
	const char *operation;	   /* HTTP method, SQL keyword, Redis command */
	const char *collection;	   /* table; "" */
	const char *query_text;	   /* literal-stripped SQL; NULL */
	const char *error;	   /* SQLSTATE or Redis error prefix; "" */
	unsigned status;	   /* HTTP status */
	const char *peer_addr;
	unsigned peer_port;
};

enum span_unlinked {
	SPAN_UNLINKED_NONE_IN_FLIGHT, /* no request of the process in flight */
	SPAN_UNLINKED_AMBIGUOUS,      /* two or more */
	SPAN_UNLINKED_UNKNOWN, /* the agent lost track (tables, unparsed) */
	SPAN_UNLINKED__COUNT,
};

enum span_drop {
	SPAN_DROP_NOT_SAMPLED,	/* head sampling said no, no error, not slow */
	SPAN_DROP_QUEUE_FULL,	/* the push consumer fell behind the ring */
	SPAN_DROP_UNTRACKED,	/* request tables full: no server span */
	SPAN_DROP_OPEN_TIMEOUT, /* no end seen for SPANS_OPEN_MAX */
	SPAN_DROP_ENCODE,	/* taken for push but could not be encoded */
	SPAN_DROP__COUNT,
};

/* The parent candidate of a client operation, taken when it started. */
struct span_parent {
	int32_t exch; /* exchange slot; -1: none (reason) */
	uint32_t gen;
	uint32_t proc, epoch; /* process slot and its epoch */
	uint64_t seq;	      /* the process's requests seen at the snapshot */
	uint8_t reason;	      /* enum span_unlinked, when exch < 0 */
	uint8_t valid;
};

struct spans_stats {
	uint64_t server, client; /* spans built */
	uint64_t linked;	 /* client spans parented to a server span */
	uint64_t unlinked[SPAN_UNLINKED__COUNT];
	uint64_t dropped[SPAN_DROP__COUNT];
	uint64_t kept; /* spans put into the ring */
};

struct spans_opts {
	struct trace_config cfg;
	int64_t mono_to_unix_ns; /* spans_clock_offset() */
	bool push;     /* a consumer drains the ring (spans_collect_otlp) */
	uint64_t seed; /* ids; 0: from getrandom() */
	const char *host_name;	     /* NULL: gethostname() */
	struct metric_registry *reg; /* self-metric families; may be NULL */
};

struct spans;

/* Tracing off (cfg.enabled false) allocates no span storage: every call
 * below is then a no-op and the self-metric families stay empty. */
struct spans *spans_new(const struct spans_opts *o);
void spans_free(struct spans *s);
bool spans_enabled(const struct spans *s);

void spans_server_request(struct spans *s, const struct span_server_req *r);
void spans_server_end(struct spans *s, const struct span_server_end *e);
void spans_parent_at(struct spans *s, uint32_t pid, uint64_t start_ns,
		     struct span_parent *out);
/* par: the snapshot taken when the operation started (NULL: unknown). */
void spans_client(struct spans *s, const struct span_client_op *op,
		  const struct span_parent *par);
/* Timeouts: children waiting too long, requests never ended. */
void spans_tick(struct spans *s, uint64_t now_ns);

void spans_get_stats(struct spans *s, struct spans_stats *out);
/* Fold the counters into the self-metric families. */
void spans_publish(struct spans *s);

/* Copy up to max of the newest kept spans, oldest first (non-destructive). */
size_t spans_recent(struct spans *s, struct span *out, size_t max);
/* Remove and copy up to max pending spans (push), oldest first. */
size_t spans_take(struct spans *s, struct span *out, size_t max);

/* The newest spans as an ExportTraceServiceRequest (GET /v1/traces). */
int spans_recent_otlp(struct spans *s, uint8_t **body, size_t *len);
/*
 * The push hook: encodes and removes up to SPANS_BATCH pending spans.
 * *body NULL (and *len 0) when none; 0 or -ENOMEM. ctx: struct spans.
 */
int spans_collect_otlp(void *ctx, uint8_t **body, size_t *len);

/* CLOCK_REALTIME - CLOCK_MONOTONIC, from the tightest of a few samples. */
int64_t spans_clock_offset(void);

#endif
