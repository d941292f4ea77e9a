/*
 * otlp_push.c - the OTLP/HTTP exporter thread; see otlp_push.h for the
 * policy.
 *
 * One thread does everything that waits: it encodes the periodic metrics,
 * polls the trace source, compresses and sends, sleeps out backoffs. It
 * owns the batch being sent ("cur") outside the queue, so a retrying batch
 * keeps its place at the head and never counts against the bounds while
 * newer batches line up behind it. Other threads only touch the queue,
 * under p->mu, and wake the thread with p->cv. Waits use CLOCK_MONOTONIC.
 *
 * libcurl runs one easy handle in a multi handle, reused so the connection
 * to the collector stays alive between requests. The multi wait is woken
 * by stop, and a request still running at the flush deadline is cut off:
 * that is what bounds shutdown when a collector accepts the connection
 * and never answers.
 */
#define _GNU_SOURCE /* strptime, timegm */
#include "otlp_push.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <zlib.h>

#include "log.h"

#define NS_PER_MS 1000000ULL

static const char *const signal_names[OTLP_NSIGNALS] = {"metrics", "traces"};
static const char *const outcome_names[OTLP_OUT_MAX] = {
    "success", "retryable", "rejected", "network_error", "timeout", "aborted",
};

enum drop_reason {
	DROP_QUEUE_FULL,
	DROP_NON_RETRYABLE,
	DROP_RETRIES_EXHAUSTED,
	DROP_SHUTDOWN,
	DROP_MAX,
};
static const char *const drop_names[DROP_MAX] = {
    "queue_full",
    "non_retryable",
    "retries_exhausted",
    "shutdown",
};

/* ---- pure parts -----------------------------------------------------------
 */

enum otlp_outcome otlp_classify_status(long status)
{
	if (status >= 200 && status < 300)
		return OTLP_OUT_SUCCESS;
	if (status == 429 || status == 502 || status == 503 || status == 504)
		return OTLP_OUT_RETRYABLE;
	return OTLP_OUT_REJECTED;
}

long otlp_retry_after_ms(const char *v, time_t now)
{
	struct tm tm;
	const char *end;
	char *e;
	long secs;
	time_t t;

	while (*v == ' ' || *v == '\t')
		v++;
	if (*v >= '0' && *v <= '9') {
		errno = 0;
		secs = strtol(v, &e, 10);
		while (*e == ' ' || *e == '\t' || *e == '\r' || *e == '\n')
			e++;
		if (errno || *e || secs > 86400)
			return -1;
		return secs * 1000;
	}
	/* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
	memset(&tm, 0, sizeof(tm));
	end = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (!end)
		return -1;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return -1;
	if (t <= now)
		return 0;
	return t - now > 86400 ? 86400000L : (long)(t - now) * 1000;
}

unsigned otlp_backoff_ms(unsigned failures, uint32_t rnd)
{
	uint64_t d = OTLP_INITIAL_BACKOFF_MS;

	while (failures-- > 1 && d < OTLP_MAX_BACKOFF_MS)
		d *= 2;
	if (d > OTLP_MAX_BACKOFF_MS)
		d = OTLP_MAX_BACKOFF_MS;
	/* Jitter: d * (0.5 + rnd / 2^33), so in [d/2, d). */
	return (unsigned)(d / 2 + ((d * rnd) >> 33));
}

int otlp_gzip(const uint8_t *in, size_t len, uint8_t **out, size_t *out_len)
{
	z_stream zs;
	uint8_t *buf;
	uLong cap;

	memset(&zs, 0, sizeof(zs));
	/* windowBits 15 + 16: a gzip header and trailer, not zlib's. */
	if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	cap = deflateBound(&zs, (uLong)len);
	buf = malloc(cap ? cap : 1);
	if (!buf) {
		deflateEnd(&zs);
		return -ENOMEM;
	}
	zs.next_in = (Bytef *)in;
	zs.avail_in = (uInt)len;
	zs.next_out = buf;
	zs.avail_out = (uInt)cap;
	if (deflate(&zs, Z_FINISH) != Z_STREAM_END) {
		deflateEnd(&zs);
		free(buf);
		return -ENOMEM;
	}
	*out_len = zs.total_out;
	*out = buf;
	deflateEnd(&zs);
	return 0;
}

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	unsigned shift = 0;

	*v = 0;
	while (*p < end && shift < 64) {
		uint8_t b = *(*p)++;

		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return 0;
		shift += 7;
	}
	return -1;
}

void otlp_status_message(const uint8_t *body, size_t len, char *out, size_t cap)
{
	const uint8_t *p = body, *end = body + len;
	uint64_t key, n;
	size_t i, o = 0;

	if (!cap)
		return;
	out[0] = '\0';
	while (p < end) {
		if (read_varint(&p, end, &key))
			return;
		switch (key & 7) {
		case 0:
			if (read_varint(&p, end, &n))
				return;
			break;
		case 1:
			if (end - p < 8)
				return;
			p += 8;
			break;
		case 5:
			if (end - p < 4)
				return;
			p += 4;
			break;
		case 2:
			if (read_varint(&p, end, &n) || n > (uint64_t)(end - p))
				return;
			if (key >> 3 == 2) {
				for (i = 0; i < n && o + 1 < cap; i++)
					out[o++] = p[i] >= 0x20 && p[i] < 0x7f
						       ? (char)p[i]
						       : '?';
				out[o] = '\0';
				return;
			}
			p += n;
			break;
		default:
			return;
		}
	}
}

/* ---- self-metrics ---------------------------------------------------------
 */

struct otlp_push_stats {
	struct metric_family *requests;
	struct metric_family *exported;
	struct metric_family *retries;
	struct metric_family *dropped;
	struct metric_family *dropped_bytes;
	struct metric_family *queue_batches;
	struct metric_family *queue_bytes;
	struct metric_family *last_success;
};

struct otlp_push_stats *otlp_push_stats_new(struct metric_registry *r)
{
	static const char *const L_SIG[] = {"signal", NULL};
	static const char *const L_SIG_OUT[] = {"signal", "outcome", NULL};
	static const char *const L_SIG_REASON[] = {"signal", "reason", NULL};
	struct otlp_push_stats *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->requests = metric_family_new(
	    r, "katascope_otlp_requests_total", METRIC_COUNTER,
	    "OTLP/HTTP export requests sent, by signal and outcome: success "
	    "(2xx), retryable (429, 502, 503, 504), rejected (any other "
	    "status), network_error, timeout, aborted (at shutdown).",
	    L_SIG_OUT, NULL, 0);
	s->exported = metric_family_new(
	    r, "katascope_otlp_exported_batches_total", METRIC_COUNTER,
	    "Batches (export requests) the collector accepted.", L_SIG, NULL,
	    0);
	s->retries = metric_family_new(
	    r, "katascope_otlp_retries_total", METRIC_COUNTER,
	    "Requests that re-sent a batch after a retryable failure.", L_SIG,
	    NULL, 0);
	s->dropped = metric_family_new(
	    r, "katascope_otlp_dropped_batches_total", METRIC_COUNTER,
	    "Batches given up, by reason: queue_full, non_retryable, "
	    "retries_exhausted, shutdown.",
	    L_SIG_REASON, NULL, 0);
	s->dropped_bytes = metric_family_new(
	    r, "katascope_otlp_dropped_bytes_total", METRIC_COUNTER,
	    "Encoded (uncompressed) bytes of the dropped batches, by reason.",
	    L_SIG_REASON, NULL, 0);
	s->queue_batches =
	    metric_family_new(r, "katascope_otlp_queue_batches", METRIC_GAUGE,
			      "Batches waiting to be sent (not counting the "
			      "one being sent or retried).",
			      NULL, NULL, 0);
	s->queue_bytes = metric_family_new(
	    r, "katascope_otlp_queue_bytes", METRIC_GAUGE,
	    "Encoded bytes of the batches waiting to be sent.", NULL, NULL, 0);
	s->last_success = metric_family_new(
	    r, "katascope_otlp_last_success_timestamp_seconds", METRIC_GAUGE,
	    "Unix time of the last export the collector accepted, by signal.",
	    L_SIG, NULL, 0);
	if (!s->requests || !s->exported || !s->retries || !s->dropped ||
	    !s->dropped_bytes || !s->queue_batches || !s->queue_bytes ||
	    !s->last_success) {
		free(s);
		return NULL;
	}
	return s;
}

void otlp_push_stats_free(struct otlp_push_stats *s)
{
	free(s); /* the families belong to the registry */
}

/* ---- the exporter ---------------------------------------------------------
 */

struct batch {
	enum otlp_signal sig;
	uint8_t *body; /* encoded protobuf */
	size_t len;
	uint8_t *wire; /* what is sent: gzip of body, or body */
	size_t wire_len;
	unsigned attempts;
	uint64_t first_ns, next_ns; /* first attempt, next attempt due */
	struct batch *next;
};

#define MAX_REASONS 8

struct otlp_push {
	struct otlp_config cfg;
	struct metric_registry *reg;
	const struct otlp_resource_info *res;
	uint64_t start_unix_ns;
	struct otlp_push_stats *stats;
	unsigned max_batches, flush_ms;
	size_t max_bytes;
	const char *urls[OTLP_NSIGNALS];

	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* under mu */
	struct batch *head, *tail;
	unsigned nqueued;
	size_t queued_bytes;
	int (*collect)(void *ctx, uint8_t **body, size_t *len);
	void *collect_ctx;
	bool kicked;
	bool stopping;
	/* read by perform() without the lock */
	atomic_bool abort_armed;
	_Atomic uint64_t abort_ns;

	/* exporter thread only */
	struct batch *cur;
	CURL *curl;
	CURLM *multi;
	struct curl_slist *headers;
	uint64_t next_metrics, next_trace_poll;
	unsigned rnd;
	struct {
		char seen[MAX_REASONS][32];
		unsigned n;
		bool failing;
	} reasons[OTLP_NSIGNALS];
	bool collect_err_logged;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void stat_add(struct metric_family *f, const char *a, const char *b,
		     double v)
{
	const char *lv[] = {a, b};

	if (f)
		metric_add(f, lv, v);
}

/* Under p->mu. */
static void publish_queue(struct otlp_push *p)
{
	if (!p->stats)
		return;
	metric_set(p->stats->queue_batches, NULL, p->nqueued);
	metric_set(p->stats->queue_bytes, NULL, (double)p->queued_bytes);
}

static void batch_free(struct batch *b)
{
	if (b->wire != b->body)
		free(b->wire);
	free(b->body);
	free(b);
}

static void drop(struct otlp_push *p, struct batch *b, enum drop_reason why)
{
	if (p->stats) {
		stat_add(p->stats->dropped, signal_names[b->sig],
			 drop_names[why], 1);
		stat_add(p->stats->dropped_bytes, signal_names[b->sig],
			 drop_names[why], (double)b->len);
	}
	batch_free(b);
}

/*
 * Append b, dropping the oldest waiting batches until it fits; the dropped
 * ones are chained on *evicted for the caller to count outside the lock.
 * Under p->mu. -E2BIG: b alone exceeds the byte bound (not queued).
 */
static int enqueue(struct otlp_push *p, struct batch *b, struct batch **evicted)
{
	struct batch *old;

	if (b->len > p->max_bytes)
		return -E2BIG;
	while (p->head && (p->nqueued + 1 > p->max_batches ||
			   p->queued_bytes + b->len > p->max_bytes)) {
		old = p->head;
		p->head = old->next;
		if (!p->head)
			p->tail = NULL;
		p->nqueued--;
		p->queued_bytes -= old->len;
		old->next = *evicted;
		*evicted = old;
	}
	b->next = NULL;
	if (p->tail)
		p->tail->next = b;
	else
		p->head = b;
	p->tail = b;
	p->nqueued++;
	p->queued_bytes += b->len;
	publish_queue(p);
	pthread_cond_signal(&p->cv);
	return 0;
}

/* final: the last metrics snapshot of the flush, queued after stop. */
static int submit(struct otlp_push *p, enum otlp_signal sig, uint8_t *body,
		  size_t len, bool final)
{
	struct batch *b, *evicted = NULL, *next;
	int err;

	if (!p || !body || (sig != OTLP_METRICS && sig != OTLP_TRACES)) {
		free(body);
		return -EINVAL;
	}
	if (!p->urls[sig]) {
		free(body);
		return -ENOENT;
	}
	b = calloc(1, sizeof(*b));
	if (!b) {
		free(body);
		return -ENOMEM;
	}
	b->sig = sig;
	b->body = body;
	b->len = len;
	pthread_mutex_lock(&p->mu);
	err = p->stopping && !final ? -ESHUTDOWN : enqueue(p, b, &evicted);
	pthread_mutex_unlock(&p->mu);
	for (; evicted; evicted = next) {
		next = evicted->next;
		drop(p, evicted, DROP_QUEUE_FULL);
	}
	if (err)
		drop(p, b, err == -E2BIG ? DROP_QUEUE_FULL : DROP_SHUTDOWN);
	return err;
}

int otlp_push_submit(struct otlp_push *p, enum otlp_signal sig, uint8_t *body,
		     size_t len)
{
	return submit(p, sig, body, len, false);
}

void otlp_push_set_trace_source(struct otlp_push *p,
				int (*collect)(void *ctx, uint8_t **body,
					       size_t *len),
				void *ctx)
{
	pthread_mutex_lock(&p->mu);
	p->collect = collect;
	p->collect_ctx = ctx;
	p->kicked = true;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

void otlp_push_kick(struct otlp_push *p)
{
	pthread_mutex_lock(&p->mu);
	p->kicked = true;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

/* ---- sending --------------------------------------------------------------
 */

/* Log a failure the first time its cause (key) is seen since the last
 * success; a success after failures is logged once too. */
static void note_failure(struct otlp_push *p, enum otlp_signal sig,
			 const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void note_failure(struct otlp_push *p, enum otlp_signal sig,
			 const char *key, const char *fmt, ...)
{
	__typeof__(p->reasons[0]) *r = &p->reasons[sig];
	char msg[512];
	va_list ap;
	unsigned i;

	r->failing = true;
	for (i = 0; i < r->n; i++)
		if (!strcmp(r->seen[i], key))
			return;
	if (r->n < MAX_REASONS)
		snprintf(r->seen[r->n++], sizeof(r->seen[0]), "%s", key);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn("OTLP %s export to %s: %s (logged once until it succeeds)",
		 signal_names[sig], p->urls[sig], msg);
}

static void note_success(struct otlp_push *p, enum otlp_signal sig)
{
	if (p->reasons[sig].failing)
		log_info("OTLP %s export to %s succeeds again",
			 signal_names[sig], p->urls[sig]);
	p->reasons[sig].failing = false;
	p->reasons[sig].n = 0;
}

struct response {
	long retry_after_ms;
	uint8_t body[512];
	size_t body_len;
};

static size_t on_header(char *buf, size_t size, size_t n, void *arg)
{
	struct response *r = arg;
	size_t len = size * n;
	char v[128];

	if (len >= 5 && !strncmp(buf, "HTTP/", 5)) {
		r->retry_after_ms = -1; /* a new response (after a 100) */
		r->body_len = 0;
	} else if (len > 12 && !strncasecmp(buf, "Retry-After:", 12)) {
		snprintf(v, sizeof(v), "%.*s", (int)(len - 12), buf + 12);
		r->retry_after_ms = otlp_retry_after_ms(v, time(NULL));
	}
	return len;
}

static size_t on_body(char *buf, size_t size, size_t n, void *arg)
{
	struct response *r = arg;
	size_t len = size * n, room = sizeof(r->body) - r->body_len;

	memcpy(r->body + r->body_len, buf, len < room ? len : room);
	r->body_len += len < room ? len : room;
	return len;
}

static bool past_abort(struct otlp_push *p)
{
	return atomic_load(&p->abort_armed) &&
	       mono_ns() >= atomic_load(&p->abort_ns);
}

/* How long a wait may last: until the flush deadline once stop began. */
static int poll_ms(struct otlp_push *p)
{
	uint64_t now = mono_ns(), at = atomic_load(&p->abort_ns);

	if (!atomic_load(&p->abort_armed))
		return 1000;
	return at <= now ? 0
	       : at - now >= 1000 * NS_PER_MS
		   ? 1000
		   : (int)((at - now) / NS_PER_MS) + 1;
}

/*
 * curl_easy_perform, but through the multi interface so that stop can
 * wake the wait (curl_multi_wakeup) and a request is cut off right at the
 * flush deadline instead of at curl's next progress tick.
 */
static CURLcode perform(struct otlp_push *p)
{
	CURLcode rc = CURLE_ABORTED_BY_CALLBACK;
	CURLMcode mc;
	CURLMsg *msg;
	int running = 1, left;

	if (curl_multi_add_handle(p->multi, p->curl) != CURLM_OK)
		return CURLE_OUT_OF_MEMORY;
	for (;;) {
		mc = curl_multi_perform(p->multi, &running);
		if (mc != CURLM_OK) {
			rc = CURLE_OUT_OF_MEMORY;
			break;
		}
		if (!running) {
			rc = CURLE_RECV_ERROR;
			while ((msg = curl_multi_info_read(p->multi, &left)))
				if (msg->msg == CURLMSG_DONE)
					rc = msg->data.result;
			break;
		}
		if (past_abort(p))
			break; /* rc: aborted */
		curl_multi_poll(p->multi, NULL, 0, poll_ms(p), NULL);
	}
	curl_multi_remove_handle(p->multi, p->curl);
	return rc;
}

/* One POST of b. *why: a short cause for the logs, *key its class. */
static enum otlp_outcome post(struct otlp_push *p, struct batch *b,
			      long timeout_ms, struct response *resp, char *why,
			      size_t whylen, char *key, size_t keylen)
{
	char errbuf[CURL_ERROR_SIZE] = "", msg[256];
	enum otlp_outcome out;
	long status = 0;
	CURLcode rc;

	resp->retry_after_ms = -1;
	resp->body_len = 0;
	curl_easy_setopt(p->curl, CURLOPT_URL, p->urls[b->sig]);
	curl_easy_setopt(p->curl, CURLOPT_POSTFIELDS, b->wire);
	curl_easy_setopt(p->curl, CURLOPT_POSTFIELDSIZE_LARGE,
			 (curl_off_t)b->wire_len);
	curl_easy_setopt(p->curl, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(p->curl, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	curl_easy_setopt(p->curl, CURLOPT_HEADERDATA, resp);
	curl_easy_setopt(p->curl, CURLOPT_WRITEDATA, resp);
	curl_easy_setopt(p->curl, CURLOPT_ERRORBUFFER, errbuf);
	rc = perform(p);
	curl_easy_setopt(p->curl, CURLOPT_ERRORBUFFER, NULL);
	if (rc == CURLE_OK) {
		curl_easy_getinfo(p->curl, CURLINFO_RESPONSE_CODE, &status);
		out = otlp_classify_status(status);
		otlp_status_message(resp->body, resp->body_len, msg,
				    sizeof(msg));
		snprintf(why, whylen, "HTTP %ld%s%s", status,
			 msg[0] ? ": " : "", msg);
		snprintf(key, keylen, "http-%ld", status);
		return out;
	}
	if (rc == CURLE_ABORTED_BY_CALLBACK)
		out = OTLP_OUT_ABORTED;
	else if (rc == CURLE_OPERATION_TIMEDOUT)
		out = OTLP_OUT_TIMEOUT;
	else
		out = OTLP_OUT_NETWORK;
	snprintf(why, whylen, "%s",
		 errbuf[0] ? errbuf : curl_easy_strerror(rc));
	snprintf(key, keylen, "curl-%d", (int)rc);
	return out;
}

static bool prepare_wire(struct otlp_push *p, struct batch *b)
{
	if (b->wire)
		return true;
	if (!p->cfg.gzip) {
		b->wire = b->body;
		b->wire_len = b->len;
		return true;
	}
	return otlp_gzip(b->body, b->len, &b->wire, &b->wire_len) == 0;
}

/*
 * Send b once. Returns true when b is finished (exported or dropped and
 * freed), false when it waits for a retry at b->next_ns. final: the flush
 * at stop, where a retryable failure drops the batch instead.
 */
static bool attempt(struct otlp_push *p, struct batch *b, long timeout_ms,
		    bool final)
{
	const char *sig = signal_names[b->sig];
	char why[384], key[32];
	struct response resp;
	enum otlp_outcome out;
	uint64_t now = mono_ns(), delay_ms;
	struct timespec wall;

	if (!prepare_wire(p, b)) {
		log_warn("OTLP %s export: out of memory compressing %zu bytes",
			 sig, b->len);
		drop(p, b, DROP_NON_RETRYABLE);
		return true;
	}
	if (b->attempts++)
		stat_add(p->stats ? p->stats->retries : NULL, sig, NULL, 1);
	else
		b->first_ns = now;
	out = post(p, b, timeout_ms, &resp, why, sizeof(why), key, sizeof(key));
	if (p->stats)
		stat_add(p->stats->requests, sig, outcome_names[out], 1);
	now = mono_ns();
	switch (out) {
	case OTLP_OUT_SUCCESS:
		note_success(p, b->sig);
		if (p->stats) {
			stat_add(p->stats->exported, sig, NULL, 1);
			clock_gettime(CLOCK_REALTIME, &wall);
			{
				const char *lv[] = {sig};

				metric_set(p->stats->last_success, lv,
					   (double)wall.tv_sec +
					       wall.tv_nsec * 1e-9);
			}
		}
		batch_free(b);
		return true;
	case OTLP_OUT_REJECTED:
		note_failure(p, b->sig, key, "%s; not retryable, batch dropped",
			     why);
		drop(p, b, DROP_NON_RETRYABLE);
		return true;
	case OTLP_OUT_ABORTED:
		drop(p, b, DROP_SHUTDOWN);
		return true;
	default:
		break;
	}
	if (final) {
		drop(p, b, DROP_SHUTDOWN);
		return true;
	}
	delay_ms =
	    resp.retry_after_ms >= 0
		? (uint64_t)resp.retry_after_ms
		: otlp_backoff_ms(b->attempts,
				  (uint32_t)rand_r(&p->rnd) * 2654435761u);
	if (b->attempts >= OTLP_MAX_ATTEMPTS ||
	    now + delay_ms * NS_PER_MS - b->first_ns >
		OTLP_MAX_ELAPSED_MS * NS_PER_MS) {
		note_failure(p, b->sig, key,
			     "%s; gave up after %u attempts, batch dropped",
			     why, b->attempts);
		drop(p, b, DROP_RETRIES_EXHAUSTED);
		return true;
	}
	note_failure(p, b->sig, key,
		     "%s; retrying (backoff, at most %d attempts)", why,
		     OTLP_MAX_ATTEMPTS);
	b->next_ns = now + delay_ms * NS_PER_MS;
	return false;
}

/* ---- producers ------------------------------------------------------------
 */

static void produce_metrics(struct otlp_push *p, bool final)
{
	struct timespec now;
	uint8_t *body = NULL;
	size_t len = 0;

	clock_gettime(CLOCK_REALTIME, &now);
	if (otlp_metrics_encode(p->reg, p->res, p->start_unix_ns,
				(uint64_t)now.tv_sec * 1000000000ULL +
				    (uint64_t)now.tv_nsec,
				&body, &len)) {
		log_warn("OTLP metrics export: out of memory encoding");
		return;
	}
	submit(p, OTLP_METRICS, body, len, final);
}

static void poll_traces(struct otlp_push *p,
			int (*collect)(void *, uint8_t **, size_t *), void *ctx)
{
	uint8_t *body;
	size_t len;
	int err, n;

	/* Drain what is ready, bounded so the other duties keep their turn. */
	for (n = 0; n < 16; n++) {
		body = NULL;
		len = 0;
		err = collect(ctx, &body, &len);
		if (err < 0) {
			if (!p->collect_err_logged)
				log_warn(
				    "OTLP traces: the span source failed: %s",
				    strerror(-err));
			p->collect_err_logged = true;
			free(body);
			return;
		}
		if (!body)
			return;
		otlp_push_submit(p, OTLP_TRACES, body, len);
	}
}

/* ---- the thread -----------------------------------------------------------
 */

static void wait_until(struct otlp_push *p, uint64_t when_ns)
{
	struct timespec ts = {.tv_sec = (time_t)(when_ns / 1000000000ULL),
			      .tv_nsec = (long)(when_ns % 1000000000ULL)};

	pthread_cond_timedwait(&p->cv, &p->mu, &ts);
}

static struct batch *pop(struct otlp_push *p)
{
	struct batch *b = p->head;

	if (!b)
		return NULL;
	p->head = b->next;
	if (!p->head)
		p->tail = NULL;
	p->nqueued--;
	p->queued_bytes -= b->len;
	b->next = NULL;
	publish_queue(p);
	return b;
}

/* The last flush: one attempt per batch, in order, until the deadline. */
static void flush(struct otlp_push *p)
{
	uint64_t deadline = atomic_load(&p->abort_ns), now;
	struct batch *b;

	if (p->reg && p->urls[OTLP_METRICS])
		produce_metrics(p, true); /* the values at exit */
	for (;;) {
		b = p->cur;
		p->cur = NULL;
		if (!b) {
			pthread_mutex_lock(&p->mu);
			b = pop(p);
			pthread_mutex_unlock(&p->mu);
		}
		if (!b)
			break;
		now = mono_ns();
		if (now + 50 * NS_PER_MS >= deadline) {
			drop(p, b, DROP_SHUTDOWN);
			continue;
		}
		attempt(p, b,
			(long)((deadline - now) / NS_PER_MS) <
				(long)p->cfg.timeout_ms
			    ? (long)((deadline - now) / NS_PER_MS)
			    : (long)p->cfg.timeout_ms,
			true);
	}
}

static void *worker(void *arg)
{
	struct otlp_push *p = arg;
	int (*collect)(void *, uint8_t **, size_t *);
	uint64_t now, wake;
	void *ctx;

	pthread_mutex_lock(&p->mu);
	while (!p->stopping) {
		now = mono_ns();
		if (p->reg && p->urls[OTLP_METRICS] && now >= p->next_metrics) {
			p->next_metrics += p->cfg.interval_ms * NS_PER_MS;
			if (p->next_metrics <= now)
				p->next_metrics =
				    now + p->cfg.interval_ms * NS_PER_MS;
			pthread_mutex_unlock(&p->mu);
			produce_metrics(p, false);
			pthread_mutex_lock(&p->mu);
			continue;
		}
		if (!p->collect || !p->urls[OTLP_TRACES])
			p->kicked = false;
		if (p->collect && p->urls[OTLP_TRACES] &&
		    (p->kicked || now >= p->next_trace_poll)) {
			p->kicked = false;
			p->next_trace_poll =
			    now + OTLP_TRACE_POLL_MS * NS_PER_MS;
			collect = p->collect;
			ctx = p->collect_ctx;
			pthread_mutex_unlock(&p->mu);
			poll_traces(p, collect, ctx);
			pthread_mutex_lock(&p->mu);
			continue;
		}
		if (!p->cur)
			p->cur = pop(p);
		if (p->cur && now >= p->cur->next_ns) {
			pthread_mutex_unlock(&p->mu);
			if (attempt(p, p->cur, (long)p->cfg.timeout_ms, false))
				p->cur = NULL;
			pthread_mutex_lock(&p->mu);
			continue;
		}
		wake = now + 3600 * 1000 * NS_PER_MS;
		if (p->reg && p->urls[OTLP_METRICS] && p->next_metrics < wake)
			wake = p->next_metrics;
		if (p->collect && p->urls[OTLP_TRACES] &&
		    p->next_trace_poll < wake)
			wake = p->next_trace_poll;
		if (p->cur && p->cur->next_ns < wake)
			wake = p->cur->next_ns;
		if (!p->kicked)
			wait_until(p, wake);
	}
	pthread_mutex_unlock(&p->mu);
	flush(p);
	return NULL;
}

static struct curl_slist *build_headers(const struct otlp_config *c)
{
	struct curl_slist *l = NULL, *n;
	unsigned i;

#define ADD(h)                                                                 \
	do {                                                                   \
		n = curl_slist_append(l, (h));                                 \
		if (!n)                                                        \
			goto oom;                                              \
		l = n;                                                         \
	} while (0)
	ADD("Content-Type: application/x-protobuf");
	if (c->gzip)
		ADD("Content-Encoding: gzip");
	/* No "Expect: 100-continue" round trip before larger bodies. */
	ADD("Expect:");
	for (i = 0; i < c->nheaders; i++)
		ADD(c->headers[i]);
#undef ADD
	return l;
oom:
	curl_slist_free_all(l);
	return NULL;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void push_free(struct otlp_push *p)
{
	struct batch *b, *next;

	for (b = p->head; b; b = next) {
		next = b->next;
		batch_free(b);
	}
	if (p->cur)
		batch_free(p->cur);
	curl_slist_free_all(p->headers);
	if (p->curl)
		curl_easy_cleanup(p->curl);
	if (p->multi)
		curl_multi_cleanup(p->multi);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

struct otlp_push *otlp_push_start(const struct otlp_push_config *cfg)
{
	pthread_condattr_t ca;
	struct otlp_push *p;
	uint64_t now;

	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK) {
		log_error("OTLP push: libcurl failed to initialize: %s",
			  curl_easy_strerror(curl_init_rc));
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->cfg = *cfg->otlp;
	p->reg = cfg->reg;
	p->res = cfg->res;
	p->start_unix_ns = cfg->start_unix_ns;
	p->stats = cfg->stats;
	p->max_batches = cfg->max_queue_batches ? cfg->max_queue_batches
						: OTLP_DEFAULT_QUEUE_BATCHES;
	p->max_bytes = cfg->max_queue_bytes ? cfg->max_queue_bytes
					    : OTLP_DEFAULT_QUEUE_BYTES;
	p->flush_ms = cfg->flush_ms ? cfg->flush_ms : OTLP_DEFAULT_FLUSH_MS;
	p->urls[OTLP_METRICS] =
	    p->cfg.metrics_url[0] ? p->cfg.metrics_url : NULL;
	p->urls[OTLP_TRACES] = p->cfg.traces_url[0] ? p->cfg.traces_url : NULL;
	p->rnd = (unsigned)(mono_ns() ^ (uint64_t)getpid());
	pthread_mutex_init(&p->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cv, &ca);
	pthread_condattr_destroy(&ca);

	p->curl = curl_easy_init();
	p->multi = curl_multi_init();
	p->headers = build_headers(&p->cfg);
	if (!p->curl || !p->multi || !p->headers) {
		log_error("OTLP push: out of memory");
		goto fail;
	}
	curl_easy_setopt(p->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(p->curl, CURLOPT_POST, 1L);
	curl_easy_setopt(p->curl, CURLOPT_HTTPHEADER, p->headers);
	curl_easy_setopt(p->curl, CURLOPT_USERAGENT,
			 "katascope/" KATASCOPE_VERSION);
	curl_easy_setopt(p->curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(p->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(p->curl, CURLOPT_PROTOCOLS_STR, "http,https");

	now = mono_ns();
	p->next_metrics = now + p->cfg.interval_ms * NS_PER_MS;
	p->next_trace_poll = now + OTLP_TRACE_POLL_MS * NS_PER_MS;
	if (p->stats)
		publish_queue(p);
	if (pthread_create(&p->thread, NULL, worker, p)) {
		log_error("OTLP push: cannot start the exporter thread");
		goto fail;
	}
	if (p->urls[OTLP_METRICS])
		log_info(
		    "OTLP metrics push to %s every %u ms (%s, timeout %u ms)",
		    p->urls[OTLP_METRICS], p->cfg.interval_ms,
		    p->cfg.gzip ? "gzip" : "uncompressed", p->cfg.timeout_ms);
	if (p->urls[OTLP_TRACES])
		log_info("OTLP traces push to %s (once a span source is set)",
			 p->urls[OTLP_TRACES]);
	return p;
fail:
	push_free(p);
	return NULL;
}

void otlp_push_stop(struct otlp_push *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	atomic_store(&p->abort_ns, mono_ns() + p->flush_ms * NS_PER_MS);
	atomic_store(&p->abort_armed, true);
	p->stopping = true;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	curl_multi_wakeup(p->multi); /* a request in flight: look at the time */
	pthread_join(p->thread, NULL);
	log_info("OTLP exporter stopped");
	push_free(p);
}
