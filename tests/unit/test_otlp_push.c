/*
 * test_otlp_push.c - the exporter's pure parts (status classes, Retry-After,
 * backoff bounds, gzip, the Status message of an error body), and the
 * exporter itself against a one-thread HTTP server on loopback: a trace
 * source's ExportTraceServiceRequest arrives at /v1/traces, gzip-encoded,
 * with the configured headers; submit() into a full queue drops the oldest
 * batches and counts them.
 */
#define _GNU_SOURCE /* strcasestr */
#include "check.h"
#include "metrics.h"
#include "otlp_push.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

static void test_pure(void)
{
	uint8_t in[4096], *gz = NULL, back[4096];
	size_t gzlen = 0, i;
	uLongf backlen = sizeof(back);
	z_stream zs;
	char msg[64];
	unsigned k;

	CHECK_INT(otlp_classify_status(200), OTLP_OUT_SUCCESS);
	CHECK_INT(otlp_classify_status(204), OTLP_OUT_SUCCESS);
	CHECK_INT(otlp_classify_status(429), OTLP_OUT_RETRYABLE);
	CHECK_INT(otlp_classify_status(502), OTLP_OUT_RETRYABLE);
	CHECK_INT(otlp_classify_status(503), OTLP_OUT_RETRYABLE);
	CHECK_INT(otlp_classify_status(504), OTLP_OUT_RETRYABLE);
	CHECK_INT(otlp_classify_status(400), OTLP_OUT_REJECTED);
	CHECK_INT(otlp_classify_status(401), OTLP_OUT_REJECTED);
	CHECK_INT(otlp_classify_status(500), OTLP_OUT_REJECTED);
	CHECK_INT(otlp_classify_status(301), OTLP_OUT_REJECTED);

	CHECK_INT(otlp_retry_after_ms("1", 0), 1000);
	CHECK_INT(otlp_retry_after_ms(" 30\r\n", 0), 30000);
	CHECK_INT(otlp_retry_after_ms("0", 0), 0);
	CHECK_INT(otlp_retry_after_ms("-1", 0), -1);
	CHECK_INT(otlp_retry_after_ms("soon", 0), -1);
	CHECK_INT(otlp_retry_after_ms("1.5", 0), -1);
	/* 784111777 is Sun, 06 Nov 1994 08:49:37 GMT */
	CHECK_INT(otlp_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT\r\n",
				      784111777 - 5),
		  5000);
	CHECK_INT(
	    otlp_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 + 5),
	    0);

	/* Doubling from 1 s, capped at 30 s, jitter within [d/2, d). */
	CHECK_INT(otlp_backoff_ms(1, 0), 500);
	CHECK_INT(otlp_backoff_ms(1, 0xffffffffu), 999);
	CHECK_INT(otlp_backoff_ms(2, 0), 1000);
	CHECK_INT(otlp_backoff_ms(3, 0x80000000u), 3000);
	CHECK_INT(otlp_backoff_ms(4, 0), 4000);
	CHECK_INT(otlp_backoff_ms(10, 0), 15000);
	CHECK_INT(otlp_backoff_ms(40, 0xffffffffu), 29999);
	for (k = 1; k < 8; k++)
		CHECK(otlp_backoff_ms(k + 1, 12345) >
			  otlp_backoff_ms(k, 12345) ||
		      otlp_backoff_ms(k, 12345) >= 15000);

	for (i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i % 7);
	CHECK_INT(otlp_gzip(in, sizeof(in), &gz, &gzlen), 0);
	CHECK(gz && gzlen > 18 && gzlen < sizeof(in));
	CHECK(gz && gz[0] == 0x1f && gz[1] == 0x8b); /* gzip magic */
	memset(&zs, 0, sizeof(zs));
	inflateInit2(&zs, 15 + 16);
	zs.next_in = gz;
	zs.avail_in = (uInt)gzlen;
	zs.next_out = back;
	zs.avail_out = (uInt)backlen;
	CHECK_INT(inflate(&zs, Z_FINISH), Z_STREAM_END);
	CHECK_INT(zs.total_out, sizeof(in));
	CHECK(!memcmp(back, in, sizeof(in)));
	inflateEnd(&zs);
	free(gz);

	/* google.rpc.Status{code=3, message="bad data"} */
	{
		const uint8_t st[] = {0x08, 0x03, 0x12, 0x08, 'b', 'a',
				      'd',  ' ',  'd',	'a',  't', 'a'};
		const uint8_t cut[] = {0x12, 0x20, 'x'};
		const uint8_t ctl[] = {0x12, 0x02, '\n', 'x'};

		otlp_status_message(st, sizeof(st), msg, sizeof(msg));
		CHECK_STR(msg, "bad data");
		otlp_status_message(st, sizeof(st), msg, 4);
		CHECK_STR(msg, "bad");
		otlp_status_message(cut, sizeof(cut), msg, sizeof(msg));
		CHECK_STR(msg, "");
		otlp_status_message(ctl, sizeof(ctl), msg, sizeof(msg));
		CHECK_STR(msg, "?x");
		otlp_status_message(NULL, 0, msg, sizeof(msg));
		CHECK_STR(msg, "");
	}
}

/* ---- a one-connection-at-a-time HTTP server -------------------------------
 */

struct server {
	int fd, port;
	pthread_t thread;
	pthread_mutex_t mu;
	int requests;
	char path[64], head[4096];
	uint8_t body[4096];
	size_t body_len;
	int status; /* to answer */
};

static void *serve(void *arg)
{
	struct server *s = arg;
	char buf[16384];
	const char *cl, *end;
	size_t n, len, want;
	ssize_t r;
	int c;

	while ((c = accept(s->fd, NULL, NULL)) >= 0) {
		for (;;) { /* requests on this (kept-alive) connection */
			n = 0;
			end = NULL;
			while (!end && n < sizeof(buf) - 1) {
				r = read(c, buf + n, sizeof(buf) - 1 - n);
				if (r <= 0)
					break;
				n += (size_t)r;
				buf[n] = '\0';
				end = strstr(buf, "\r\n\r\n");
			}
			if (!end)
				break;
			len = (size_t)(end + 4 - buf);
			cl = strcasestr(buf, "Content-Length:");
			want = cl ? strtoul(cl + 15, NULL, 10) : 0;
			while (n - len < want && n < sizeof(buf)) {
				r = read(c, buf + n, sizeof(buf) - n);
				if (r <= 0)
					break;
				n += (size_t)r;
			}
			pthread_mutex_lock(&s->mu);
			s->requests++;
			sscanf(buf, "POST %63s", s->path);
			snprintf(s->head, sizeof(s->head), "%.*s", (int)len,
				 buf);
			s->body_len = want < sizeof(s->body) ? want : 0;
			memcpy(s->body, buf + len, s->body_len);
			snprintf(buf, sizeof(buf),
				 "HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n",
				 s->status);
			pthread_mutex_unlock(&s->mu);
			if (write(c, buf, strlen(buf)) < 0)
				break;
		}
		close(c);
	}
	return NULL;
}

static int server_start(struct server *s)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t alen = sizeof(a);

	memset(s, 0, sizeof(*s));
	s->status = 200;
	pthread_mutex_init(&s->mu, NULL);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(s->fd, 4) ||
	    getsockname(s->fd, (struct sockaddr *)&a, &alen))
		return -1;
	s->port = ntohs(a.sin_port);
	return pthread_create(&s->thread, NULL, serve, s);
}

static void server_stop(struct server *s)
{
	shutdown(s->fd, SHUT_RDWR);
	close(s->fd);
	pthread_join(s->thread, NULL);
}

static int wait_requests(struct server *s, int n)
{
	int i, got = 0;

	for (i = 0; i < 500 && got < n; i++) {
		pthread_mutex_lock(&s->mu);
		got = s->requests;
		pthread_mutex_unlock(&s->mu);
		if (got < n)
			usleep(10000);
	}
	return got;
}

/* ---- the trace source ------------------------------------------------------
 */

/* ExportTraceServiceRequest{resource_spans{scope_spans{spans{name="GET /"}}}}
 * hand-encoded: fields 1 (resource_spans), 2 (scope_spans), 2 (spans),
 * span field 5 (name). */
static const uint8_t trace_req[] = {0x0a, 0x0b, 0x12, 0x09, 0x12, 0x07, 0x2a,
				    0x05, 'G',	'E',  'T',  ' ',  '/'};

struct source {
	int calls, handed;
};

static int collect(void *ctx, uint8_t **body, size_t *len)
{
	struct source *src = ctx;

	src->calls++;
	if (src->handed)
		return 0; /* nothing more: *body stays NULL */
	*body = malloc(sizeof(trace_req));
	if (!*body)
		return -ENOMEM;
	memcpy(*body, trace_req, sizeof(trace_req));
	*len = sizeof(trace_req);
	src->handed = 1;
	return 0;
}

static void test_traces(void)
{
	static struct otlp_config oc;
	struct otlp_push_config pc = {.otlp = &oc};
	struct server s;
	struct source src = {0};
	struct otlp_push *p;
	uint8_t out[256];
	uLongf outlen = sizeof(out);
	z_stream zs;

	if (server_start(&s)) {
		CHECK(!"loopback server");
		return;
	}
	snprintf(oc.traces_url, sizeof(oc.traces_url),
		 "http://127.0.0.1:%d/v1/traces", s.port);
	oc.timeout_ms = 2000;
	oc.interval_ms = 60000;
	oc.gzip = 1;
	oc.nheaders = 1;
	snprintf(oc.headers[0], sizeof(oc.headers[0]), "api-key: k1");
	p = otlp_push_start(&pc);
	CHECK(p != NULL);
	if (!p) {
		server_stop(&s);
		return;
	}
	/* Metrics have no URL here: refused, ownership taken. */
	CHECK_INT(otlp_push_submit(p, OTLP_METRICS, malloc(4), 4), -ENOENT);
	otlp_push_set_trace_source(p, collect, &src);
	otlp_push_kick(p);
	CHECK_INT(wait_requests(&s, 1), 1);
	pthread_mutex_lock(&s.mu);
	CHECK_STR(s.path, "/v1/traces");
	CHECK(
	    strcasestr(s.head, "\r\nContent-Type: application/x-protobuf\r\n"));
	CHECK(strcasestr(s.head, "\r\nContent-Encoding: gzip\r\n"));
	CHECK(strcasestr(s.head, "\r\napi-key: k1\r\n"));
	memset(&zs, 0, sizeof(zs));
	inflateInit2(&zs, 15 + 16);
	zs.next_in = s.body;
	zs.avail_in = (uInt)s.body_len;
	zs.next_out = out;
	zs.avail_out = (uInt)outlen;
	CHECK_INT(inflate(&zs, Z_FINISH), Z_STREAM_END);
	CHECK_INT(zs.total_out, sizeof(trace_req));
	CHECK(!memcmp(out, trace_req, sizeof(trace_req)));
	inflateEnd(&zs);
	pthread_mutex_unlock(&s.mu);
	otlp_push_stop(p);
	CHECK(src.calls >= 2); /* polled again after the batch: nothing */
	/* The thread has ended: no request followed the one batch. */
	pthread_mutex_lock(&s.mu);
	CHECK_INT(s.requests, 1);
	pthread_mutex_unlock(&s.mu);
	server_stop(&s);
}

/* A queue of 2 batches, the collector answering 503 forever (the first
 * batch is stuck retrying): the oldest waiting batches are dropped. */
static void test_queue_full(void)
{
	static struct otlp_config oc;
	struct metric_registry *reg = metric_registry_new(0);
	struct otlp_push_stats *st = otlp_push_stats_new(reg);
	struct otlp_push_config pc = {.otlp = &oc,
				      .stats = st,
				      .max_queue_batches = 2,
				      .max_queue_bytes = 1000,
				      .flush_ms = 200};
	struct strbuf sb = STRBUF_INIT;
	struct server s;
	struct otlp_push *p;
	int i;

	if (!st || server_start(&s)) {
		CHECK(!"setup");
		goto out;
	}
	s.status = 503;
	snprintf(oc.traces_url, sizeof(oc.traces_url),
		 "http://127.0.0.1:%d/v1/traces", s.port);
	oc.timeout_ms = 2000;
	oc.interval_ms = 60000;
	p = otlp_push_start(&pc);
	CHECK(p != NULL);
	if (!p) {
		server_stop(&s);
		goto out;
	}
	/* The first goes out (and is retried later); then 5 wait in a queue
	 * of 2: the 3 oldest of them are dropped. */
	CHECK_INT(otlp_push_submit(p, OTLP_TRACES, calloc(1, 100), 100), 0);
	CHECK_INT(wait_requests(&s, 1), 1);
	for (i = 0; i < 5; i++)
		CHECK_INT(otlp_push_submit(p, OTLP_TRACES, calloc(1, 100), 100),
			  0);
	/* Larger than the whole queue: refused, counted. */
	CHECK_INT(otlp_push_submit(p, OTLP_TRACES, calloc(1, 2000), 2000),
		  -E2BIG);
	metric_render_prometheus(reg, &sb);
	CHECK(strstr(sb.buf, "katascope_otlp_dropped_batches_total{signal="
			     "\"traces\",reason=\"queue_full\"} 4\n"));
	CHECK(strstr(sb.buf, "katascope_otlp_dropped_bytes_total{signal="
			     "\"traces\",reason=\"queue_full\"} 2300\n"));
	CHECK(strstr(sb.buf, "katascope_otlp_queue_batches 2\n"));
	CHECK(strstr(sb.buf, "katascope_otlp_queue_bytes 200\n"));
	CHECK(strstr(sb.buf, "katascope_otlp_requests_total{signal=\"traces\","
			     "outcome=\"retryable\"} 1\n"));
	otlp_push_stop(p);
	sb_reset(&sb);
	metric_render_prometheus(reg, &sb);
	/* At stop: the retrying batch and the 2 queued are tried once within
	 * the flush and dropped as shutdown (the server still says 503). */
	CHECK(strstr(sb.buf, "katascope_otlp_dropped_batches_total{signal="
			     "\"traces\",reason=\"shutdown\"} 3\n"));
	CHECK(strstr(
		  sb.buf,
		  "katascope_otlp_exported_batches_total{signal=\"traces\"}") ==
	      NULL);
	server_stop(&s);
out:
	sb_free(&sb);
	metric_registry_free(reg);
	otlp_push_stats_free(st);
}

int main(void)
{
	test_pure();
	test_traces();
	test_queue_full();
	return check_summary();
}
