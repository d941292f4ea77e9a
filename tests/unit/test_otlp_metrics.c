/*
 * test_otlp_metrics.c - unit test for the OTLP metrics encoder
 * (agent/otlp_metrics.c).
 *
 * A registry shaped like the agent's (a histogram and a counter for two
 * services, a gauge per service, a node gauge, an overflowing counter) is
 * encoded, then unpacked with protobuf-c's generated decoder and checked
 * field by field: resources and their attributes, metric names and units,
 * temporality and monotonicity, attribute names and types, bucket counts,
 * bounds, sum and count, the overflow attribute.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "metrics.h"
#include "otlp_metrics.h"

#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb-c.h"

#define V(...) ((const char *const[]){__VA_ARGS__})

typedef Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest
    req_t;
typedef Opentelemetry__Proto__Metrics__V1__ResourceMetrics rm_t;
typedef Opentelemetry__Proto__Metrics__V1__Metric metric_t;
typedef Opentelemetry__Proto__Common__V1__KeyValue kv_t;

#define START_NS 1700000000000000000ULL
#define NOW_NS 1700000060000000000ULL

static const double http_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25,
				     0.5,   0.75, 1,	 2.5,  5,     7.5, 10};
#define NHTTP (sizeof(http_bounds) / sizeof(http_bounds[0]))

static const kv_t *find_attr(kv_t **kvs, size_t n, const char *key)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(kvs[i]->key, key))
			return kvs[i];
	return NULL;
}

static const char *attr_str(kv_t **kvs, size_t n, const char *key)
{
	const kv_t *kv = find_attr(kvs, n, key);

	if (!kv || !kv->value ||
	    kv->value->value_case !=
		OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE)
		return NULL;
	return kv->value->string_value;
}

/* INT64_MIN when absent or not an int. */
static long long attr_int(kv_t **kvs, size_t n, const char *key)
{
	const kv_t *kv = find_attr(kvs, n, key);

	if (!kv || !kv->value ||
	    kv->value->value_case !=
		OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE)
		return INT64_MIN;
	return kv->value->int_value;
}

static const rm_t *find_resource(const req_t *req, const char *service)
{
	size_t i;

	for (i = 0; i < req->n_resource_metrics; i++) {
		const rm_t *rm = req->resource_metrics[i];
		const char *s =
		    attr_str(rm->resource->attributes,
			     rm->resource->n_attributes, "service.name");

		if (s && !strcmp(s, service))
			return rm;
	}
	return NULL;
}

static const metric_t *find_metric(const rm_t *rm, const char *name)
{
	size_t i, j;

	if (!rm)
		return NULL;
	for (i = 0; i < rm->n_scope_metrics; i++)
		for (j = 0; j < rm->scope_metrics[i]->n_metrics; j++)
			if (!strcmp(rm->scope_metrics[i]->metrics[j]->name,
				    name))
				return rm->scope_metrics[i]->metrics[j];
	return NULL;
}

static req_t *encode_and_unpack(struct metric_registry *r,
				const struct otlp_resource_info *ri)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	req_t *req;

	CHECK_INT(otlp_metrics_encode(r, ri, START_NS, NOW_NS, &buf, &len), 0);
	req =
	    opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__unpack(
		NULL, len, buf);
	free(buf);
	CHECK(req != NULL);
	return req;
}

static void test_names(void)
{
	char name[128], unit[32];
	int is_int;

	otlp_metric_name("http_server_request_duration_seconds",
			 METRIC_HISTOGRAM, name, sizeof(name), unit,
			 sizeof(unit));
	CHECK_STR(name, "http.server.request.duration");
	CHECK_STR(unit, "s");
	otlp_metric_name("process_cpu_time_seconds_total", METRIC_COUNTER, name,
			 sizeof(name), unit, sizeof(unit));
	CHECK_STR(name, "process.cpu.time");
	CHECK_STR(unit, "s");
	otlp_metric_name("process_memory_usage_bytes", METRIC_GAUGE, name,
			 sizeof(name), unit, sizeof(unit));
	CHECK_STR(name, "process.memory.usage");
	CHECK_STR(unit, "By");
	otlp_metric_name("system_cpu_utilization_ratio", METRIC_GAUGE, name,
			 sizeof(name), unit, sizeof(unit));
	CHECK_STR(name, "system.cpu.utilization");
	CHECK_STR(unit, "1");
	otlp_metric_name("katascope_tcp_connections_opened_total",
			 METRIC_COUNTER, name, sizeof(name), unit,
			 sizeof(unit));
	CHECK_STR(name, "katascope.tcp.connections.opened");
	CHECK_STR(unit, "{connection}");
	otlp_metric_name("katascope_tcp_sent_bytes_total", METRIC_COUNTER, name,
			 sizeof(name), unit, sizeof(unit));
	CHECK_STR(name, "katascope.tcp.sent");
	CHECK_STR(unit, "By");
	otlp_metric_name("katascope_tcp_rtt_seconds", METRIC_HISTOGRAM, name,
			 sizeof(name), unit, sizeof(unit));
	CHECK_STR(name, "katascope.tcp.rtt");
	CHECK_STR(unit, "s");
	otlp_metric_name("katascope_build_info", METRIC_GAUGE, name,
			 sizeof(name), unit, sizeof(unit));
	CHECK_STR(name, "katascope.build.info");
	CHECK_STR(unit, "1");
	/* A small buffer truncates, never overflows. */
	otlp_metric_name("katascope_ringbuf_lost_total", METRIC_COUNTER, name,
			 8, unit, sizeof(unit));
	CHECK_STR(name, "katasco");

	otlp_attr_name("http_response_status_code", name, sizeof(name),
		       &is_int);
	CHECK_STR(name, "http.response.status_code");
	CHECK_INT(is_int, 1);
	otlp_attr_name("http_route", name, sizeof(name), &is_int);
	CHECK_STR(name, "http.route");
	CHECK_INT(is_int, 0);
	otlp_attr_name("server_port", name, sizeof(name), &is_int);
	CHECK_STR(name, "server.port");
	CHECK_INT(is_int, 1);
	otlp_attr_name("db_collection_name", name, sizeof(name), &is_int);
	CHECK_STR(name, "db.collection.name");
	otlp_attr_name("direction", name, sizeof(name), &is_int);
	CHECK_STR(name, "direction");
	otlp_attr_name("v8js_gc_type", name, sizeof(name), &is_int);
	CHECK_STR(name, "v8js.gc.type");
}

static void test_encode(void)
{
	static const char *const http_labels[] = {
	    "service_name", "http_request_method",
	    "http_route",   "http_response_status_code",
	    "server_port",  NULL};
	static const char *const conn_labels[] = {"service_name", "direction",
						  NULL};
	static const char *const svc_labels[] = {"service_name", NULL};
	static const char *const map_labels[] = {"map", NULL};
	struct otlp_resource_info ri = {"host-a", "node-7"};
	struct metric_registry *r = metric_registry_new(3);
	struct metric_family *http, *conns, *mem, *sysmem, *drops;
	const metric_t *m;
	const rm_t *api, *db, *agent;
	req_t *req;
	size_t i;

	http = metric_family_new(r, "http_server_request_duration_seconds",
				 METRIC_HISTOGRAM, "Server request time.",
				 http_labels, http_bounds, NHTTP);
	conns = metric_family_new(r, "katascope_tcp_connections_opened_total",
				  METRIC_COUNTER, "Connections opened.",
				  conn_labels, NULL, 0);
	mem = metric_family_new(r, "process_memory_usage_bytes", METRIC_GAUGE,
				"RSS.", svc_labels, NULL, 0);
	sysmem = metric_family_new(r, "system_memory_utilization_ratio",
				   METRIC_GAUGE, "Memory used.", NULL, NULL, 0);
	drops = metric_family_new(r, "katascope_map_full_dropped_total",
				  METRIC_COUNTER, NULL, map_labels, NULL, 0);
	CHECK(http && conns && mem && sysmem && drops);

	/* api: 3 GETs (0.003, 0.02, 20 s) and a POST; db: one GET. */
	metric_observe(http, V("api", "GET", "/users/{id}", "200", "8080"),
		       0.003);
	metric_observe(http, V("api", "GET", "/users/{id}", "200", "8080"),
		       0.02);
	metric_observe(http, V("api", "GET", "/users/{id}", "200", "8080"), 20);
	metric_observe(http, V("api", "POST", "/users", "201", ""), 0.5);
	metric_observe(http, V("db", "GET", "/", "404", "8081"), 0.01);
	metric_add(conns, V("api", "passive"), 5);
	metric_add(conns, V("db", "active"), 2);
	metric_set(mem, V("api"), 1048576);
	metric_set(mem, V("db"), 2097152);
	metric_set(sysmem, NULL, 0.25);
	/* max 3 series: the 4th and 5th label sets overflow. */
	metric_add(drops, V("socks"), 1);
	metric_add(drops, V("conns"), 2);
	metric_add(drops, V("pid_stats"), 3);
	metric_add(drops, V("a"), 4);
	metric_add(drops, V("b"), 5);

	req = encode_and_unpack(r, &ri);
	if (!req)
		goto out;
	CHECK_INT(req->n_resource_metrics, 3);
	api = find_resource(req, "api");
	db = find_resource(req, "db");
	agent = find_resource(req, "katascope");
	CHECK(api && db && agent);
	if (!api || !db || !agent)
		goto out_req;

	/* Resource attributes. */
	for (i = 0; i < req->n_resource_metrics; i++) {
		const rm_t *rm = req->resource_metrics[i];
		kv_t **kv = rm->resource->attributes;
		size_t n = rm->resource->n_attributes;

		CHECK_STR(attr_str(kv, n, "host.name"), "host-a");
		CHECK_STR(attr_str(kv, n, "k8s.node.name"), "node-7");
		CHECK_STR(attr_str(kv, n, "telemetry.sdk.name"), "katascope");
		CHECK_STR(attr_str(kv, n, "telemetry.sdk.version"),
			  KATASCOPE_VERSION);
		CHECK_INT(rm->n_scope_metrics, 1);
		CHECK_STR(rm->scope_metrics[0]->scope->name, "katascope");
	}
	CHECK_STR(attr_str(agent->resource->attributes,
			   agent->resource->n_attributes, "service.version"),
		  KATASCOPE_VERSION);
	CHECK_INT(api->scope_metrics[0]->n_metrics, 3);
	CHECK_INT(db->scope_metrics[0]->n_metrics, 3);
	CHECK_INT(agent->scope_metrics[0]->n_metrics, 2);

	/* The api histogram: two series, bounds and per-bucket counts. */
	m = find_metric(api, "http.server.request.duration");
	CHECK(m != NULL);
	if (m) {
		const Opentelemetry__Proto__Metrics__V1__HistogramDataPoint *p;
		kv_t **kv;
		size_t n;

		CHECK_STR(m->unit, "s");
		CHECK_STR(m->description, "Server request time.");
		CHECK_INT(
		    m->data_case,
		    OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM);
		CHECK_INT(
		    m->histogram->aggregation_temporality,
		    OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_CUMULATIVE);
		CHECK_INT(m->histogram->n_data_points, 2);
		p = m->histogram->data_points[0];
		kv = p->attributes;
		n = p->n_attributes;
		CHECK_INT(n, 4); /* service_name dropped */
		CHECK(!find_attr(kv, n, "service_name"));
		CHECK(!find_attr(kv, n, "service.name"));
		CHECK_STR(attr_str(kv, n, "http.request.method"), "GET");
		CHECK_STR(attr_str(kv, n, "http.route"), "/users/{id}");
		CHECK_INT(attr_int(kv, n, "http.response.status_code"), 200);
		CHECK_INT(attr_int(kv, n, "server.port"), 8080);
		CHECK_INT(p->start_time_unix_nano, START_NS);
		CHECK_INT(p->time_unix_nano, NOW_NS);
		CHECK_INT(p->count, 3);
		CHECK(fabs(p->sum - 20.023) < 1e-9);
		CHECK_INT(p->n_explicit_bounds, NHTTP);
		CHECK_INT(p->n_bucket_counts, NHTTP + 1);
		for (i = 0; i < p->n_explicit_bounds && i < NHTTP; i++)
			CHECK(p->explicit_bounds[i] == http_bounds[i]);
		if (p->n_bucket_counts == NHTTP + 1) {
			uint64_t total = 0;

			CHECK_INT(p->bucket_counts[0], 1); /* 0.003 <= 0.005 */
			CHECK_INT(p->bucket_counts[1], 0);
			CHECK_INT(p->bucket_counts[2], 1); /* 0.02 <= 0.025 */
			CHECK_INT(p->bucket_counts[NHTTP], 1); /* 20: +Inf */
			for (i = 0; i < p->n_bucket_counts; i++)
				total += p->bucket_counts[i];
			CHECK_INT(total, 3);
		}
		/* The POST's empty server_port is left out. */
		p = m->histogram->data_points[1];
		CHECK_INT(p->n_attributes, 3);
		CHECK_STR(attr_str(p->attributes, p->n_attributes,
				   "http.request.method"),
			  "POST");
		CHECK(
		    !find_attr(p->attributes, p->n_attributes, "server.port"));
		CHECK_INT(p->count, 1);
		CHECK(p->sum == 0.5);
		CHECK_INT(p->bucket_counts[7], 1); /* 0.5 <= 0.5 */
	}
	m = find_metric(db, "http.server.request.duration");
	CHECK(m && m->histogram->n_data_points == 1);
	if (m && m->histogram->n_data_points == 1) {
		CHECK_INT(m->histogram->data_points[0]->count, 1);
		CHECK_INT(m->histogram->data_points[0]->bucket_counts[1], 1);
		CHECK_INT(attr_int(m->histogram->data_points[0]->attributes,
				   m->histogram->data_points[0]->n_attributes,
				   "http.response.status_code"),
			  404);
	}

	/* Counter: monotonic cumulative sum. */
	m = find_metric(api, "katascope.tcp.connections.opened");
	CHECK(m != NULL);
	if (m) {
		CHECK_STR(m->unit, "{connection}");
		CHECK_INT(m->data_case,
			  OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM);
		CHECK_INT(m->sum->is_monotonic, 1);
		CHECK_INT(
		    m->sum->aggregation_temporality,
		    OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_CUMULATIVE);
		CHECK_INT(m->sum->n_data_points, 1);
		CHECK(m->sum->data_points[0]->as_double == 5);
		CHECK_INT(m->sum->data_points[0]->start_time_unix_nano,
			  START_NS);
		CHECK_STR(attr_str(m->sum->data_points[0]->attributes,
				   m->sum->data_points[0]->n_attributes,
				   "direction"),
			  "passive");
	}
	m = find_metric(db, "katascope.tcp.connections.opened");
	CHECK(m && m->sum->n_data_points == 1 &&
	      m->sum->data_points[0]->as_double == 2);

	/* Gauges. */
	m = find_metric(db, "process.memory.usage");
	CHECK(m != NULL);
	if (m) {
		CHECK_STR(m->unit, "By");
		CHECK_INT(
		    m->data_case,
		    OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE);
		CHECK_INT(m->gauge->n_data_points, 1);
		CHECK(m->gauge->data_points[0]->as_double == 2097152);
		CHECK_INT(m->gauge->data_points[0]->n_attributes, 0);
		CHECK_INT(m->gauge->data_points[0]->time_unix_nano, NOW_NS);
	}
	m = find_metric(agent, "system.memory.utilization");
	CHECK(m != NULL);
	if (m) {
		CHECK_STR(m->unit, "1");
		CHECK_INT(
		    m->data_case,
		    OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE);
		CHECK(m->gauge->data_points[0]->as_double == 0.25);
	}
	CHECK(!find_metric(api, "system.memory.utilization"));

	/* Overflow: 3 named series, then one with otel.metric.overflow. */
	m = find_metric(agent, "katascope.map.full.dropped");
	CHECK(m != NULL);
	if (m) {
		const Opentelemetry__Proto__Metrics__V1__NumberDataPoint *p;
		const kv_t *kv;

		CHECK_STR(m->unit, "{update}");
		CHECK_STR(m->description, "");
		CHECK_INT(m->sum->n_data_points, 4);
		CHECK_STR(attr_str(m->sum->data_points[0]->attributes,
				   m->sum->data_points[0]->n_attributes, "map"),
			  "socks");
		p = m->sum->data_points[3];
		CHECK(p->as_double == 9);
		CHECK_INT(p->n_attributes, 1);
		kv = find_attr(p->attributes, p->n_attributes,
			       "otel.metric.overflow");
		CHECK(
		    kv &&
		    kv->value->value_case ==
			OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE &&
		    kv->value->bool_value);
	}
out_req:
	opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__free_unpacked(
	    req, NULL);
out:
	metric_registry_free(r);
}

/* Overflow of a per-service family lands in the agent's resource. */
static void test_service_overflow(void)
{
	static const char *const labels[] = {"service_name", NULL};
	struct metric_registry *r = metric_registry_new(1);
	struct metric_family *f;
	const rm_t *agent;
	const metric_t *m;
	req_t *req;

	f = metric_family_new(r, "process_cpu_time_seconds_total",
			      METRIC_COUNTER, "CPU.", labels, NULL, 0);
	metric_add(f, V("a"), 1.5);
	metric_add(f, V("b"), 2);
	metric_add(f, V("c"), 3);
	unsetenv("K8S_NODE_NAME");
	req = encode_and_unpack(r, NULL);
	if (!req)
		goto out;
	CHECK_INT(req->n_resource_metrics, 2);
	agent = find_resource(req, "katascope");
	m = find_metric(agent, "process.cpu.time");
	CHECK(m && m->sum->n_data_points == 1);
	if (m && m->sum->n_data_points == 1) {
		CHECK(m->sum->data_points[0]->as_double == 5);
		CHECK(find_attr(m->sum->data_points[0]->attributes,
				m->sum->data_points[0]->n_attributes,
				"otel.metric.overflow") != NULL);
	}
	m = find_metric(find_resource(req, "a"), "process.cpu.time");
	CHECK(m && m->sum->data_points[0]->as_double == 1.5);
	CHECK_STR(m ? m->unit : NULL, "s");
	/* No K8S_NODE_NAME: no k8s.node.name; host.name from gethostname. */
	if (agent) {
		CHECK(!find_attr(agent->resource->attributes,
				 agent->resource->n_attributes,
				 "k8s.node.name"));
		CHECK(find_attr(agent->resource->attributes,
				agent->resource->n_attributes,
				"host.name") != NULL);
	}
	opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__free_unpacked(
	    req, NULL);
out:
	metric_registry_free(r);
}

/* A service_info lookup for the test: only "api" is known. */
static int fake_service_info(void *ctx, const char *service,
			     struct otlp_service_info *out)
{
	if (strcmp(service, "api"))
		return -1;
	memset(out, 0, sizeof(*out));
	out->pid = 4242;
	snprintf(out->exe_name, sizeof(out->exe_name), "node");
	snprintf(out->container_id, sizeof(out->container_id), "%064d", 7);
	snprintf(out->pod_uid, sizeof(out->pod_uid),
		 "0d5c1f2e-1111-2222-3333-444455556666");
	return 0;
}

static const char *str_attr(const rm_t *rm, const char *key)
{
	const kv_t *kv = rm ? find_attr(rm->resource->attributes,
					rm->resource->n_attributes, key) :
			      NULL;

	return kv && kv->value->value_case ==
			     OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE ?
		       kv->value->string_value :
		       NULL;
}

/* Process and pod attributes: a known service gets its own; an unknown one
 * none; the agent its process and, from the environment, its pod. */
static void test_resource_attrs(void)
{
	static const char *const labels[] = {"service_name", NULL};
	struct metric_registry *r = metric_registry_new(0);
	struct otlp_service_info self = {.pid = 7, .exe_name = "katascope"};
	struct otlp_resource_info ri = {
	    .host_name = "h1",
	    .k8s_node_name = "n1",
	    .self = &self,
	    .service_info = fake_service_info,
	};
	struct metric_family *f;
	const rm_t *api, *other, *agent;
	const kv_t *pid;
	req_t *req;

	f = metric_family_new(r, "process_cpu_time_seconds_total",
			      METRIC_COUNTER, "CPU.", labels, NULL, 0);
	metric_add(f, V("api"), 1);
	metric_add(f, V("other"), 1);
	metric_family_new(r, "katascope_agent_cpu_seconds_total",
			  METRIC_COUNTER, "Agent.", NULL, NULL, 0);
	metric_add(metric_family_new(r, "katascope_x_total", METRIC_COUNTER,
				     "X.", NULL, NULL, 0),
		   NULL, 1);
	setenv("K8S_NAMESPACE", "obs", 1);
	setenv("K8S_POD_NAME", "katascope-abcde", 1);
	req = encode_and_unpack(r, &ri);
	unsetenv("K8S_NAMESPACE");
	unsetenv("K8S_POD_NAME");
	if (!req)
		goto out;
	api = find_resource(req, "api");
	other = find_resource(req, "other");
	agent = find_resource(req, "katascope");
	CHECK(api && other && agent);
	if (!api || !other || !agent)
		goto free;
	pid = find_attr(api->resource->attributes, api->resource->n_attributes,
			"process.pid");
	CHECK(pid && pid->value->value_case ==
			 OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE &&
	      pid->value->int_value == 4242);
	CHECK_STR(str_attr(api, "process.executable.name"), "node");
	CHECK(str_attr(api, "container.id") &&
	      strlen(str_attr(api, "container.id")) == 64);
	CHECK_STR(str_attr(api, "k8s.pod.uid"),
		  "0d5c1f2e-1111-2222-3333-444455556666");
	CHECK_STR(str_attr(api, "k8s.node.name"), "n1");
	CHECK(!str_attr(api, "k8s.pod.name")); /* the agent's pod, not api's */
	CHECK_INT(api->resource->n_attributes, 9);
	CHECK(!find_attr(other->resource->attributes,
			 other->resource->n_attributes, "process.pid"));
	CHECK_INT(other->resource->n_attributes, 5);
	CHECK_STR(str_attr(agent, "k8s.namespace.name"), "obs");
	CHECK_STR(str_attr(agent, "k8s.pod.name"), "katascope-abcde");
	CHECK_STR(str_attr(agent, "process.executable.name"), "katascope");
	CHECK(!str_attr(agent, "container.id"));
	CHECK(!str_attr(agent, "telemetry.sdk.language"));
free:
	opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__free_unpacked(
	    req, NULL);
out:
	metric_registry_free(r);
}

/* An empty registry is an empty (valid) request. */
static void test_empty(void)
{
	struct metric_registry *r = metric_registry_new(0);
	req_t *req = encode_and_unpack(r, NULL);

	if (req) {
		CHECK_INT(req->n_resource_metrics, 0);
		opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__free_unpacked(
		    req, NULL);
	}
	metric_registry_free(r);
}

int main(void)
{
	test_names();
	test_encode();
	test_service_overflow();
	test_empty();
	test_resource_attrs();
	return check_summary();
}
