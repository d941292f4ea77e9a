/*
 * httpd.c - /, /metrics, /v1/metrics, /v1/traces, /healthz ... on
 * libmicrohttpd. See
 * httpd.h.
 */
#include "httpd.h"
#include "log.h"
#include "otlp_metrics.h"
#include "strbuf.h"

#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct httpd {
	struct MHD_Daemon *d;
	struct metric_registry *reg;
	struct queries *queries;
	struct profiler *volatile profiler;
	struct spans *spans;
	uint64_t start_unix_ns;
	const struct otlp_resource_info *res;
	pthread_mutex_t lock;
	char *health;
	int health_ok;
};

static const char index_page[] =
	"katascope " KATASCOPE_VERSION "\n"
	"\n"
	"GET /metrics   Prometheus metrics (text format 0.0.4)\n"
	"GET /v1/metrics  the same metrics as an OTLP ExportMetricsServiceRequest (application/x-protobuf)\n"
	"GET /v1/traces   the newest spans (up to 2048) as an OTLP ExportTraceServiceRequest (with --traces)\n"
	"GET /healthz   probe groups and whether they attached (JSON; 200 ok, 503 not ready)\n"
	"GET /api/slow-queries  the newest statements slower than --slow-query-ms (JSON)\n"
	"GET /api/queries       statements by total time: calls, errors, total/mean/max ms (JSON; ?limit=N)\n"
	"GET /debug/pprof/profile?seconds=N[&pid=P|&service=S][&type=off_cpu]  gzipped pprof protobuf\n"
	"GET /debug/pprof/folded?seconds=N...  collapsed stacks, one 'frame;frame;... count' line each\n"
	"GET /flamegraph.svg?seconds=N...      interactive SVG flame graph\n"
	"GET /          this page\n";

int httpd_bind(const struct options *o, int *fd_out, char *msg, size_t len)
{
	int fd, one = 1, err;

	fd = socket(o->listen_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err = -errno;
		snprintf(msg, len, "cannot create a socket for --listen %s:%d: %s",
			 o->listen_host, o->listen_port, strerror(errno));
		return err;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&o->listen_addr,
		 o->listen_addrlen) || listen(fd, 128)) {
		err = -errno;
		snprintf(msg, len, "cannot listen on %s:%d: %s%s",
			 o->listen_host, o->listen_port, strerror(errno),
			 errno == EADDRINUSE ?
				 " (another process holds the port; pick another with --listen)" :
				 errno == EADDRNOTAVAIL ?
				 " (no interface has this address)" :
				 "");
		close(fd);
		return err;
	}
	*fd_out = fd;
	return 0;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status,
			     const char *ctype, char *body, size_t len,
			     int owned)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(
		len, body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!r) {
		if (owned)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", ctype);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, "Allow", "GET, HEAD");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result text(struct MHD_Connection *c, unsigned status,
			    const char *s)
{
	return reply(c, status, "text/plain; charset=utf-8", (char *)s,
		     strlen(s), 0);
}

static enum MHD_Result serve_metrics(struct httpd *h, struct MHD_Connection *c)
{
	struct strbuf sb = STRBUF_INIT;
	size_t len;
	char *body;

	metric_render_prometheus(h->reg, &sb);
	if (sb.oom) {
		sb_free(&sb);
		return text(c, 500, "out of memory\n");
	}
	body = sb_detach(&sb, &len);
	return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
		     body, len, 1);
}

/* The registry as OTLP protobuf, the body an OTLP/HTTP push would send. */
static enum MHD_Result serve_otlp_metrics(struct httpd *h,
					  struct MHD_Connection *c)
{
	struct timespec now;
	uint8_t *body;
	size_t len;

	clock_gettime(CLOCK_REALTIME, &now);
	if (otlp_metrics_encode(h->reg, h->res, h->start_unix_ns,
				(uint64_t)now.tv_sec * 1000000000ULL +
					(uint64_t)now.tv_nsec,
				&body, &len))
		return text(c, 500, "out of memory\n");
	return reply(c, MHD_HTTP_OK, "application/x-protobuf", (char *)body,
		     len, 1);
}

/* The newest kept spans; the push queue is not touched. */
static enum MHD_Result serve_otlp_traces(struct httpd *h,
					 struct MHD_Connection *c)
{
	uint8_t *body;
	size_t len;

	if (!spans_enabled(h->spans))
		return text(c, MHD_HTTP_NOT_FOUND,
			    "tracing is off: start the agent with --traces\n");
	if (spans_recent_otlp(h->spans, &body, &len))
		return text(c, 500, "out of memory\n");
	return reply(c, MHD_HTTP_OK, "application/x-protobuf", (char *)body,
		     len, 1);
}

static enum MHD_Result serve_json(struct MHD_Connection *c,
				   struct strbuf *sb)
{
	size_t len;
	char *body;

	if (sb->oom) {
		sb_free(sb);
		return text(c, 500, "out of memory\n");
	}
	body = sb_detach(sb, &len);
	return reply(c, MHD_HTTP_OK, "application/json", body, len, 1);
}

static enum MHD_Result serve_queries(struct httpd *h, struct MHD_Connection *c,
				     int slow)
{
	struct strbuf sb = STRBUF_INIT;
	const char *lim;
	long limit = 50;

	if (slow) {
		queries_render_slow(h->queries, &sb);
	} else {
		lim = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
						  "limit");
		if (lim)
			limit = strtol(lim, NULL, 10);
		if (limit <= 0 || limit > 1000)
			return text(c, MHD_HTTP_BAD_REQUEST,
				    "limit must be 1..1000\n");
		queries_render_top(h->queries, &sb, (unsigned)limit);
	}
	return serve_json(c, &sb);
}

/* ?seconds=N (default 30), pid=P or service=S, type=cpu|off_cpu */
static enum MHD_Result serve_profile(struct httpd *h, struct MHD_Connection *c,
				     enum prof_format fmt)
{
	static const char *const ctypes[] = { "application/octet-stream",
					      "text/plain; charset=utf-8",
					      "image/svg+xml" };
	const char *v, *service;
	struct strbuf sb = STRBUF_INIT;
	struct prof_session *s;
	enum prof_type type = PROF_CPU;
	struct profiler *prof = h->profiler;
	long seconds = 30, pid = 0;
	char err[128], *end, *body;
	size_t len;
	int rc;

	v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "seconds");
	if (v) {
		seconds = strtol(v, &end, 10);
		if (*end || seconds < 1 || seconds > 300)
			return text(c, MHD_HTTP_BAD_REQUEST,
				    "seconds must be 1..300\n");
	}
	v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "pid");
	if (v) {
		pid = strtol(v, &end, 10);
		if (*end || pid < 1)
			return text(c, MHD_HTTP_BAD_REQUEST,
				    "pid must be a process id\n");
	}
	service = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
					      "service");
	v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "type");
	if (v && !strcmp(v, "off_cpu"))
		type = PROF_OFFCPU;
	else if (v && strcmp(v, "cpu"))
		return text(c, MHD_HTTP_BAD_REQUEST,
			    "type must be cpu or off_cpu\n");
	if (!prof)
		return text(c, MHD_HTTP_SERVICE_UNAVAILABLE,
			    "the profiler is not ready\n");
	s = profiler_start(prof, type, (unsigned)seconds, (int)pid, service,
			   err, sizeof(err));
	if (!s) {
		sb_printf(&sb, "%s\n", err);
		body = sb_detach(&sb, &len);
		return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE,
			     "text/plain; charset=utf-8", body, len, 1);
	}
	profiler_wait(prof, s);
	rc = profiler_render(prof, s, fmt, &sb);
	profiler_end(prof, s);
	if (rc) {
		sb_free(&sb);
		return text(c, 500, "cannot render the profile\n");
	}
	body = sb_detach(&sb, &len);
	return reply(c, MHD_HTTP_OK, ctypes[fmt], body, len, 1);
}

static enum MHD_Result serve_health(struct httpd *h, struct MHD_Connection *c)
{
	char *body;
	int ok;

	pthread_mutex_lock(&h->lock);
	body = strdup(h->health ? h->health :
				  "{\"status\":\"starting\",\"groups\":[]}\n");
	ok = h->health_ok;
	pthread_mutex_unlock(&h->lock);
	if (!body)
		return text(c, 500, "out of memory\n");
	return reply(c, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
		     "application/json", body, strlen(body), 1);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c,
			       const char *url, const char *method,
			       const char *version, const char *upload_data,
			       size_t *upload_data_size, void **req_cls)
{
	struct httpd *h = cls;
	static const char *const paths[] = {
		"/",		    "/metrics",		  "/v1/metrics", "/v1/traces",
		"/healthz",
		"/api/slow-queries", "/api/queries",	  "/debug/pprof/profile",
		"/debug/pprof/folded", "/flamegraph.svg", NULL
	};
	int known = 0, i;

	for (i = 0; paths[i]; i++)
		known |= !strcmp(url, paths[i]);

	if (!known)
		return text(c, MHD_HTTP_NOT_FOUND,
			    "not found; GET / lists the endpoints\n");
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return text(c, MHD_HTTP_METHOD_NOT_ALLOWED,
			    "method not allowed; use GET\n");
	if (!strcmp(url, "/metrics"))
		return serve_metrics(h, c);
	if (!strcmp(url, "/v1/metrics"))
		return serve_otlp_metrics(h, c);
	if (!strcmp(url, "/v1/traces"))
		return serve_otlp_traces(h, c);
	if (!strcmp(url, "/healthz"))
		return serve_health(h, c);
	if (!strcmp(url, "/api/slow-queries"))
		return serve_queries(h, c, 1);
	if (!strcmp(url, "/api/queries"))
		return serve_queries(h, c, 0);
	if (!strcmp(url, "/debug/pprof/profile"))
		return serve_profile(h, c, PROF_PPROF);
	if (!strcmp(url, "/debug/pprof/folded"))
		return serve_profile(h, c, PROF_FOLDED);
	if (!strcmp(url, "/flamegraph.svg"))
		return serve_profile(h, c, PROF_SVG);
	return text(c, MHD_HTTP_OK, index_page);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = '\0';
	log_debug("httpd: %s", line);
}

void httpd_set_profiler(struct httpd *h, struct profiler *p)
{
	h->profiler = p;
}

struct httpd *httpd_start(int fd, const struct httpd_sources *src, char *msg,
			  size_t len)
{
	struct httpd *h = calloc(1, sizeof(*h));

	if (!h) {
		snprintf(msg, len, "out of memory");
		close(fd);
		return NULL;
	}
	h->reg = src->reg;
	h->queries = src->queries;
	h->profiler = src->profiler;
	h->spans = src->spans;
	h->start_unix_ns = src->start_unix_ns;
	h->res = src->res;
	pthread_mutex_init(&h->lock, NULL);
	h->d = MHD_start_daemon(
		MHD_USE_THREAD_PER_CONNECTION |
			MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
		0, NULL,
		NULL, handler, h, MHD_OPTION_LISTEN_SOCKET, fd,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
		MHD_OPTION_CONNECTION_LIMIT, 64U,
		MHD_OPTION_CONNECTION_TIMEOUT, 330U, MHD_OPTION_END);
	if (!h->d) {
		snprintf(msg, len, "cannot start the HTTP server");
		close(fd);
		pthread_mutex_destroy(&h->lock);
		free(h);
		return NULL;
	}
	return h;
}

void httpd_stop(struct httpd *h)
{
	if (!h)
		return;
	MHD_stop_daemon(h->d);
	pthread_mutex_destroy(&h->lock);
	free(h->health);
	free(h);
}

void httpd_set_health(struct httpd *h, int ok, const char *json)
{
	char *copy = strdup(json);

	if (!copy)
		return;
	pthread_mutex_lock(&h->lock);
	free(h->health);
	h->health = copy;
	h->health_ok = ok;
	pthread_mutex_unlock(&h->lock);
}
