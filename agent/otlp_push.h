/*
 * otlp_push.h - the OTLP/HTTP exporter: one thread that POSTs encoded
 * ExportMetricsServiceRequest and ExportTraceServiceRequest bodies to a
 * collector, with libcurl.
 *
 * Producers hand over encoded bodies with otlp_push_submit(); the thread
 * also produces the metrics itself every interval (otlp_metrics_encode of
 * the registry) and polls an optional trace source about every second.
 * Batches wait in one bounded FIFO (batches and bytes); when a new batch
 * does not fit, the OLDEST waiting batches are dropped to make room (the
 * newest data is the most useful: metrics are cumulative) and counted.
 *
 * Each batch is sent, gzip-compressed unless configured otherwise, to
 * <endpoint>/v1/metrics or /v1/traces, one request at a time, in order.
 * Retries follow the OTLP/HTTP specification: 429, 502, 503, 504, network
 * errors and timeouts are retried after an exponential backoff with jitter
 * (1 s, 2 s, 4 s, 8 s, each scaled by a random 0.5..1), or after the
 * server's Retry-After when it sends one, for at most OTLP_MAX_ATTEMPTS
 * attempts and OTLP_MAX_ELAPSED_MS since the first; any other status drops
 * the batch at once. A failure is logged once per distinct cause until
 * the next success, not once per batch. The katascope_otlp_* self-metrics
 * count every request, retry and drop (docs/otlp.md).
 *
 * otlp_push_stop() makes one last flush (a final metrics snapshot, then
 * whatever is queued) for at most flush_ms, aborting a request that hangs,
 * so the agent exits promptly even when the collector does not answer.
 */
#ifndef KS_OTLP_PUSH_H
#define KS_OTLP_PUSH_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "metrics.h"
#include "otlp_config.h"
#include "otlp_metrics.h"

enum otlp_signal { OTLP_METRICS = 0, OTLP_TRACES = 1 };
#define OTLP_NSIGNALS 2

#define OTLP_MAX_ATTEMPTS 5
#define OTLP_MAX_ELAPSED_MS 60000
#define OTLP_INITIAL_BACKOFF_MS 1000
#define OTLP_MAX_BACKOFF_MS 30000
#define OTLP_DEFAULT_QUEUE_BATCHES 64
#define OTLP_DEFAULT_QUEUE_BYTES (32u << 20)
#define OTLP_DEFAULT_FLUSH_MS 1500
#define OTLP_TRACE_POLL_MS 1000

/*
 * The katascope_otlp_* families. Registered whether or not push is on, so
 * /metrics always lists them (NULL on ENOMEM or a name clash).
 */
struct otlp_push_stats;
struct otlp_push_stats *otlp_push_stats_new(struct metric_registry *r);
void otlp_push_stats_free(struct otlp_push_stats *s);

struct otlp_push_config {
	const struct otlp_config *otlp; /* URLs, headers, ...; copied */
	/* Pushed every otlp->interval_ms; NULL: no metrics producer. */
	struct metric_registry *reg;
	const struct otlp_resource_info *res; /* borrowed until stop */
	uint64_t start_unix_ns;	       /* start of the cumulative points */
	struct otlp_push_stats *stats; /* NULL: nothing counted */
	unsigned max_queue_batches;    /* 0: OTLP_DEFAULT_QUEUE_BATCHES */
	size_t max_queue_bytes;	       /* 0: OTLP_DEFAULT_QUEUE_BYTES */
	unsigned flush_ms;	       /* 0: OTLP_DEFAULT_FLUSH_MS */
};

struct otlp_push;

/* Start the exporter thread. NULL on error (logged). */
struct otlp_push *otlp_push_start(const struct otlp_push_config *cfg);
/* Flush for at most flush_ms, stop the thread, free everything. */
void otlp_push_stop(struct otlp_push *p);

/*
 * Queue an encoded request body (malloc'ed; ownership passes in every
 * case). Returns 0 when queued (possibly after dropping older batches),
 * -ENOENT when that signal has no URL, -E2BIG when the body alone is larger
 * than the queue (dropped, counted), -ESHUTDOWN after stop began, -EINVAL.
 */
int otlp_push_submit(struct otlp_push *p, enum otlp_signal sig, uint8_t *body,
		     size_t len);

/*
 * The trace source, polled by the exporter thread about every
 * OTLP_TRACE_POLL_MS, and at once after otlp_push_kick(). collect returns
 * 0 with *body a malloc'ed ExportTraceServiceRequest (ownership passes to
 * the exporter) and *len its size, or 0 with *body NULL when it has
 * nothing; a negative return is logged once and ignored. It runs on the
 * exporter thread without any exporter lock held. Set it before there is
 * anything to collect; NULL collect removes it.
 */
void otlp_push_set_trace_source(struct otlp_push *p,
				int (*collect)(void *ctx, uint8_t **body,
					       size_t *len),
				void *ctx);
/* Poll the trace source now (e.g. a full batch is ready). */
void otlp_push_kick(struct otlp_push *p);

/* ---- pure parts, for the unit tests -------------------------------------- */

enum otlp_outcome {
	OTLP_OUT_SUCCESS,   /* 2xx */
	OTLP_OUT_RETRYABLE, /* 429, 502, 503, 504 */
	OTLP_OUT_REJECTED,  /* any other status: not retried */
	OTLP_OUT_NETWORK,   /* connect/send/receive failed: retried */
	OTLP_OUT_TIMEOUT,   /* no complete answer in time: retried */
	OTLP_OUT_ABORTED,   /* cut short by stop */
	OTLP_OUT_MAX,
};

/* The outcome of an HTTP status (a response arrived). */
enum otlp_outcome otlp_classify_status(long status);
/*
 * Retry-After as delay-seconds ("3") or an HTTP-date, in milliseconds from
 * now (0 when the date is past); -1 when absent or unparsable.
 */
long otlp_retry_after_ms(const char *value, time_t now);
/* Backoff before attempt failures+1: OTLP_INITIAL_BACKOFF_MS doubling per
 * failure, capped at OTLP_MAX_BACKOFF_MS, scaled by 0.5 + rnd/2^33. */
unsigned otlp_backoff_ms(unsigned failures, uint32_t rnd);
/* gzip (RFC 1952) of in; *out malloc'ed. 0 or -ENOMEM. */
int otlp_gzip(const uint8_t *in, size_t len, uint8_t **out, size_t *out_len);
/*
 * The message (field 2) of a protobuf google.rpc.Status, the body OTLP
 * servers send with an error status, copied printable into out; "" when
 * there is none. Never reads past len.
 */
void otlp_status_message(const uint8_t *body, size_t len, char *out,
			 size_t cap);

#endif
