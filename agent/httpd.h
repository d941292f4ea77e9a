/*
 * httpd.h - the agent's HTTP endpoints on libmicrohttpd.
 *
 * The listening socket is bound by httpd_bind() before any BPF work, so a
 * busy port is reported at once with its cause. libmicrohttpd serves from
 * its own thread; everything it reads is either the metric registry (which
 * has its own lock) or the health document, swapped under a mutex.
 */
#ifndef KS_HTTPD_H
#define KS_HTTPD_H

#include <stddef.h>
#include <stdint.h>

#include "cli.h"
#include "metrics.h"
#include "otlp_metrics.h"
#include "profiler.h"
#include "queries.h"
#include "spans.h"

struct httpd;

/* Bind and listen; -errno with one line in msg on failure. */
int httpd_bind(const struct options *o, int *fd_out, char *msg, size_t len);
/* Start serving on fd (takes ownership). */
struct httpd_sources {
	struct metric_registry *reg;
	struct queries *queries;
	struct profiler *profiler; /* NULL until the probes are loaded */
	uint64_t start_unix_ns; /* the registry's start, for OTLP points */
	struct spans *spans; /* /v1/traces; NULL or disabled: 404 */
	const struct otlp_resource_info *res; /* NULL: only the defaults */
};

struct httpd *httpd_start(int fd, const struct httpd_sources *src, char *msg,
			  size_t len);
/* The profiler arrives after the server started (it needs the probes). */
void httpd_set_profiler(struct httpd *h, struct profiler *p);
void httpd_stop(struct httpd *h);
/* Replace the /healthz document; ok selects 200 or 503. */
void httpd_set_health(struct httpd *h, int ok, const char *json);

#endif
