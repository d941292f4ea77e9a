/*
 * otlp_metrics.h - the metric registry as an OTLP ExportMetricsServiceRequest
 * (protobuf), served for pull at GET /v1/metrics and the body an OTLP/HTTP
 * push would POST.
 *
 * One ResourceMetrics per value of the service_name label (service.name in
 * the resource, the label itself dropped from the points); metrics without
 * that label (node and self metrics) and the overflow series belong to the
 * agent's resource, service.name "katascope". Prometheus names turn back
 * into OpenTelemetry names and units (http_server_request_duration_seconds
 * -> http.server.request.duration, "s"), label names into attribute names
 * (http_request_method -> http.request.method). Counters are monotonic
 * cumulative sums, gauges gauges, histograms cumulative explicit-bucket
 * histograms with the registry's bounds.
 */
#ifndef KS_OTLP_METRICS_H
#define KS_OTLP_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "procinfo.h"

/*
 * The process attributes of one resource: process.pid,
 * process.executable.name, container.id, k8s.pod.uid. Empty fields
 * (0, "") are left out.
 */
struct otlp_service_info {
	int pid;
	char exe_name[PI_NAME_LEN];
	char container_id[PI_ID_LEN];
	char pod_uid[PI_UID_LEN];
};

/* Resource attributes; NULL fields are looked up or left out. */
struct otlp_resource_info {
	const char *host_name;	   /* NULL: gethostname() */
	const char *k8s_node_name; /* NULL: $K8S_NODE_NAME, left out if unset */
	/* The agent's own pod, on the agent's resource only. */
	const char *k8s_namespace_name; /* NULL: $K8S_NAMESPACE */
	const char *k8s_pod_name;	/* NULL: $K8S_POD_NAME */
	/* The agent's own process; NULL: left out. */
	const struct otlp_service_info *self;
	/* A monitored service's process attributes: 0 with *out filled, or
	 * nonzero when unknown. Called under the registry lock; NULL: none. */
	int (*service_info)(void *ctx, const char *service,
			    struct otlp_service_info *out);
	void *ctx;
};

/*
 * Encode every series of r (taken under the registry lock, so the request
 * is one consistent snapshot). start_unix_ns: the agent's start, the start
 * of every cumulative point; now_unix_ns: the points' time. res may be
 * NULL. On success *out is a malloc'ed buffer of *len bytes the caller
 * frees; returns 0 or -ENOMEM.
 */
int otlp_metrics_encode(struct metric_registry *r,
			const struct otlp_resource_info *res,
			uint64_t start_unix_ns, uint64_t now_unix_ns,
			uint8_t **out, size_t *len);

/*
 * The OpenTelemetry name and UCUM unit of a Prometheus metric name, and
 * the attribute name of a label name (pure; for tests and other
 * exporters). name/unit are written NUL-terminated into buffers of size
 * cap (truncated if too small). *is_int: the attribute's values are
 * integers (status codes, ports).
 */
void otlp_metric_name(const char *prom, enum metric_kind kind, char *name,
		      size_t name_cap, char *unit, size_t unit_cap);
void otlp_attr_name(const char *label, char *attr, size_t cap, int *is_int);

#endif
