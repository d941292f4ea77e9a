/*
 * otlp_metrics.c - the metric registry as an OTLP ExportMetricsServiceRequest;
 * see otlp_metrics.h for the mapping.
 *
 * Under the registry lock, one pass over every series records (family,
 * series, resource) references, the resource being the series'
 * service_name. A stable sort by resource then makes each resource's
 * series one run, and within it each family's series one run (foreach
 * walks families in order), so the message tree is built in one linear
 * pass with exact-size arrays. Strings and counts are borrowed from the
 * registry rather than copied, which is why the tree is packed before the
 * lock is released. Every message lives in one arena freed at once: the
 * tree is thrown away as soon as it is packed.
 */
#include "otlp_metrics.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb-c.h"

#define AGENT_SERVICE "katascope"
#define SCOPE_NAME "katascope"

typedef Opentelemetry__Proto__Common__V1__KeyValue otlp_kv;
typedef Opentelemetry__Proto__Common__V1__AnyValue otlp_any;
typedef Opentelemetry__Proto__Metrics__V1__Metric otlp_metric;

/* ---- names -----------------------------------------------------------------
 */

/* Metrics with a semantic-convention name (the Prometheus form is derived). */
static const struct {
	const char *prom, *otel, *unit;
} semconv_metrics[] = {
    {"http_server_request_duration_seconds", "http.server.request.duration",
     "s"},
    {"http_client_request_duration_seconds", "http.client.request.duration",
     "s"},
    {"db_client_operation_duration_seconds", "db.client.operation.duration",
     "s"},
    {"process_cpu_time_seconds_total", "process.cpu.time", "s"},
    {"process_memory_usage_bytes", "process.memory.usage", "By"},
    {"system_cpu_utilization_ratio", "system.cpu.utilization", "1"},
    {"system_memory_utilization_ratio", "system.memory.utilization", "1"},
    {"nodejs_eventloop_utilization_ratio", "nodejs.eventloop.utilization", "1"},
    {"v8js_gc_duration_seconds", "v8js.gc.duration", "s"},
};

/* Counts of things have a UCUM annotation rather than a unit. */
static const struct {
	const char *prom, *unit;
} count_units[] = {
    {"katascope_tcp_connections_opened_total", "{connection}"},
    {"katascope_tcp_connections_closed_total", "{connection}"},
    {"katascope_tcp_connect_failed_total", "{attempt}"},
    {"katascope_tcp_retransmits_total", "{segment}"},
    {"katascope_service_processes", "{process}"},
    {"katascope_http_server_requests_aborted_total", "{request}"},
    {"katascope_http_server_ended_idle_total", "{response}"},
    {"katascope_http_responses_cut_total", "{response}"},
    {"katascope_http_route_collapsed_total", "{segment}"},
    {"katascope_redis_get_total", "{command}"},
    {"katascope_client_requests_aborted_total", "{request}"},
    {"katascope_pg_transactions_total", "{transaction}"},
    {"katascope_pg_buffer_reads_total", "{read}"},
    {"katascope_pg_deadlocks_total", "{deadlock}"},
    {"katascope_ringbuf_lost_total", "{record}"},
    {"katascope_map_full_dropped_total", "{update}"},
    {"katascope_profile_stacks_lost_total", "{sample}"},
    {"katascope_metric_overflow_total", "{update}"},
    {"katascope_events_total", "{record}"},
    {"katascope_processes_tracked", "{process}"},
    {"katascope_processes_dropped_total", "{process}"},
    {"katascope_spans_total", "{span}"},
    {"katascope_spans_dropped_total", "{span}"},
    {"katascope_spans_unlinked_total", "{span}"},
    {"katascope_otlp_requests_total", "{request}"},
    {"katascope_otlp_exported_batches_total", "{batch}"},
    {"katascope_otlp_retries_total", "{request}"},
    {"katascope_otlp_dropped_batches_total", "{batch}"},
    {"katascope_otlp_queue_batches", "{batch}"},
};

/* Labels whose semconv attribute is not plain '_' -> '.', or is an int. */
static const struct {
	const char *label, *attr;
	bool is_int;
} semconv_attrs[] = {
    {"http_request_method", "http.request.method", false},
    {"http_route", "http.route", false},
    {"http_response_status_code", "http.response.status_code", true},
    {"server_port", "server.port", true},
    {"server_address", "server.address", false},
    {"url_scheme", "url.scheme", false},
    {"db_system_name", "db.system.name", false},
    {"db_operation_name", "db.operation.name", false},
    {"db_collection_name", "db.collection.name", false},
    {"error_type", "error.type", false},
    {"v8js_gc_type", "v8js.gc.type", false},
};

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static void copy_str(char *dst, size_t cap, const char *src, size_t n)
{
	if (!cap)
		return;
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static bool strip_suffix(const char *s, size_t *n, const char *suffix)
{
	size_t k = strlen(suffix);

	if (*n <= k || memcmp(s + *n - k, suffix, k))
		return false;
	*n -= k;
	return true;
}

void otlp_metric_name(const char *prom, enum metric_kind kind, char *name,
		      size_t name_cap, char *unit, size_t unit_cap)
{
	const char *u = "1";
	size_t i, n = strlen(prom);

	for (i = 0; i < ARRAY_LEN(semconv_metrics); i++) {
		if (!strcmp(prom, semconv_metrics[i].prom)) {
			copy_str(name, name_cap, semconv_metrics[i].otel,
				 strlen(semconv_metrics[i].otel));
			copy_str(unit, unit_cap, semconv_metrics[i].unit,
				 strlen(semconv_metrics[i].unit));
			return;
		}
	}
	for (i = 0; i < ARRAY_LEN(count_units); i++)
		if (!strcmp(prom, count_units[i].prom))
			u = count_units[i].unit;
	/* The Prometheus exporter appends _total to counters after the unit. */
	if (kind == METRIC_COUNTER)
		strip_suffix(prom, &n, "_total");
	if (strip_suffix(prom, &n, "_seconds"))
		u = "s";
	else if (strip_suffix(prom, &n, "_bytes"))
		u = "By";
	else if (strip_suffix(prom, &n, "_ratio"))
		u = "1";
	copy_str(name, name_cap, prom, n);
	for (i = 0; name_cap && name[i]; i++)
		if (name[i] == '_')
			name[i] = '.';
	copy_str(unit, unit_cap, u, strlen(u));
}

void otlp_attr_name(const char *label, char *attr, size_t cap, int *is_int)
{
	size_t i;

	*is_int = 0;
	for (i = 0; i < ARRAY_LEN(semconv_attrs); i++) {
		if (!strcmp(label, semconv_attrs[i].label)) {
			copy_str(attr, cap, semconv_attrs[i].attr,
				 strlen(semconv_attrs[i].attr));
			*is_int = semconv_attrs[i].is_int;
			return;
		}
	}
	copy_str(attr, cap, label, strlen(label));
	for (i = 0; cap && attr[i]; i++)
		if (attr[i] == '_')
			attr[i] = '.';
}

/* ---- arena --------------------------------------------------------------- */

struct chunk {
	struct chunk *next;
	size_t used, cap;
	max_align_t data[];
};

struct arena {
	struct chunk *head;
};

/* Zeroed, aligned; NULL on ENOMEM. */
static void *arena_alloc(struct arena *a, size_t n)
{
	struct chunk *c = a->head;
	unsigned char *p;

	n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
	if (!c || c->cap - c->used < n) {
		size_t cap = n > 65536 ? n : 65536;

		c = malloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->next = a->head;
		c->used = 0;
		c->cap = cap;
		a->head = c;
	}
	p = (unsigned char *)c->data + c->used;
	c->used += n;
	memset(p, 0, n);
	return p;
}

static void *arena_array(struct arena *a, size_t n, size_t elem)
{
	if (n && elem > SIZE_MAX / n)
		return NULL;
	return arena_alloc(a, n ? n * elem : 1);
}

static char *arena_strdup(struct arena *a, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = arena_alloc(a, n);

	if (p)
		memcpy(p, s, n);
	return p;
}

static void arena_free(struct arena *a)
{
	struct chunk *c, *next;

	for (c = a->head; c; c = next) {
		next = c->next;
		free(c);
	}
	a->head = NULL;
}

/* ---- collecting series --------------------------------------------------- */

struct ref {
	const struct metric_family *f;
	const struct metric_series *s;
	unsigned res;
	size_t seq;
};

struct collect {
	struct ref *refs;
	size_t n, cap;
	const char **services; /* borrowed from the registry, or literals */
	unsigned nserv, capserv;
	const struct metric_family *last_f;
	int svc_label; /* index of service_name in last_f, or -1 */
	unsigned last_res;
	int oom;
};

static int label_index(const struct metric_family *f, const char *name)
{
	unsigned i, n = metric_family_nlabels(f);

	for (i = 0; i < n; i++)
		if (!strcmp(metric_family_label_name(f, i), name))
			return (int)i;
	return -1;
}

static int service_index(struct collect *c, const char *svc)
{
	const char **ns;
	unsigned i, ncap;

	if (c->last_res < c->nserv && !strcmp(c->services[c->last_res], svc))
		return (int)c->last_res;
	for (i = 0; i < c->nserv; i++)
		if (!strcmp(c->services[i], svc))
			return (int)(c->last_res = i);
	if (c->nserv == c->capserv) {
		ncap = c->capserv ? c->capserv * 2 : 16;
		ns = realloc(c->services, ncap * sizeof(*ns));
		if (!ns)
			return -1;
		c->services = ns;
		c->capserv = ncap;
	}
	c->services[c->nserv] = svc;
	return (int)(c->last_res = c->nserv++);
}

static void collect_series(const struct metric_family *f,
			   const struct metric_series *s, void *arg)
{
	struct collect *c = arg;
	const char *svc = AGENT_SERVICE;
	struct ref *nr;
	size_t ncap;
	int res;

	if (c->oom)
		return;
	if (f != c->last_f) {
		c->last_f = f;
		c->svc_label = label_index(f, "service_name");
	}
	/* The overflow series mixes services: it is the agent's to report. */
	if (c->svc_label >= 0 && !metric_series_is_overflow(s)) {
		svc = metric_series_label_value(s, (unsigned)c->svc_label);
		if (!*svc)
			svc = "unknown_service";
	}
	res = service_index(c, svc);
	if (res < 0)
		goto oom;
	if (c->n == c->cap) {
		ncap = c->cap ? c->cap * 2 : 256;
		nr = realloc(c->refs, ncap * sizeof(*nr));
		if (!nr)
			goto oom;
		c->refs = nr;
		c->cap = ncap;
	}
	c->refs[c->n] = (struct ref){f, s, (unsigned)res, c->n};
	c->n++;
	return;
oom:
	c->oom = 1;
}

static int cmp_ref(const void *a, const void *b)
{
	const struct ref *x = a, *y = b;

	if (x->res != y->res)
		return x->res < y->res ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* ---- building messages --------------------------------------------------- */

struct build {
	struct arena arena;
	uint64_t start_ns, now_ns;
};

static otlp_kv *kv_new(struct arena *a, const char *key)
{
	otlp_kv *kv = arena_alloc(a, sizeof(*kv));
	otlp_any *v = arena_alloc(a, sizeof(*v));

	if (!kv || !v)
		return NULL;
	opentelemetry__proto__common__v1__key_value__init(kv);
	opentelemetry__proto__common__v1__any_value__init(v);
	kv->key = (char *)key;
	kv->value = v;
	return kv;
}

static otlp_kv *kv_str(struct arena *a, const char *key, const char *val)
{
	otlp_kv *kv = kv_new(a, key);

	if (kv) {
		kv->value->value_case =
		    OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
		kv->value->string_value = (char *)val;
	}
	return kv;
}

/* An integer attribute; a value that is not one stays a string. */
static otlp_kv *kv_int_or_str(struct arena *a, const char *key, const char *val)
{
	otlp_kv *kv;
	char *end;
	long long n;

	errno = 0;
	n = strtoll(val, &end, 10);
	if (errno || *end || end == val)
		return kv_str(a, key, val);
	kv = kv_new(a, key);
	if (kv) {
		kv->value->value_case =
		    OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
		kv->value->int_value = n;
	}
	return kv;
}

/* The attributes every resource shares, resolved once per request. */
struct res_common {
	const char *host, *node, *ns, *pod;
	const struct otlp_resource_info *info;
};

static otlp_kv *kv_int(struct arena *a, const char *key, long long v)
{
	otlp_kv *kv = kv_new(a, key);

	if (kv) {
		kv->value->value_case =
		    OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
		kv->value->int_value = v;
	}
	return kv;
}

/* A string attribute whose value is copied (si lives on the stack). */
static otlp_kv *kv_str_copy(struct arena *a, const char *key, const char *val)
{
	char *v = arena_strdup(a, val);

	return v ? kv_str(a, key, v) : NULL;
}

#define MAX_RES_ATTRS 14

static Opentelemetry__Proto__Resource__V1__Resource *
build_resource(struct arena *a, const char *service,
	       const struct res_common *rc)
{
	Opentelemetry__Proto__Resource__V1__Resource *r;
	struct otlp_service_info si;
	const struct otlp_service_info *proc = NULL;
	bool agent = !strcmp(service, AGENT_SERVICE);
	otlp_kv **kvs;
	size_t i, n = 0;

	r = arena_alloc(a, sizeof(*r));
	kvs = arena_array(a, MAX_RES_ATTRS, sizeof(*kvs));
	if (!r || !kvs)
		return NULL;
	opentelemetry__proto__resource__v1__resource__init(r);
	kvs[n++] = kv_str(a, "service.name", service);
	if (agent)
		kvs[n++] = kv_str(a, "service.version", KATASCOPE_VERSION);
	if (rc->host && *rc->host)
		kvs[n++] = kv_str(a, "host.name", rc->host);
	if (rc->node && *rc->node)
		kvs[n++] = kv_str(a, "k8s.node.name", rc->node);
	if (agent) {
		proc = rc->info ? rc->info->self : NULL;
		if (rc->ns && *rc->ns)
			kvs[n++] = kv_str(a, "k8s.namespace.name", rc->ns);
		if (rc->pod && *rc->pod)
			kvs[n++] = kv_str(a, "k8s.pod.name", rc->pod);
	} else if (rc->info && rc->info->service_info &&
		   !rc->info->service_info(rc->info->ctx, service, &si)) {
		proc = &si;
	}
	if (proc) {
		if (proc->pid > 0)
			kvs[n++] = kv_int(a, "process.pid", proc->pid);
		if (proc->exe_name[0])
			kvs[n++] = kv_str_copy(a, "process.executable.name",
					       proc->exe_name);
		if (proc->container_id[0])
			kvs[n++] = kv_str_copy(a, "container.id",
					       proc->container_id);
		if (proc->pod_uid[0])
			kvs[n++] = kv_str_copy(a, "k8s.pod.uid",
					       proc->pod_uid);
	}
	kvs[n++] = kv_str(a, "telemetry.sdk.name", "katascope");
	kvs[n++] = kv_str(a, "telemetry.sdk.version", KATASCOPE_VERSION);
	for (i = 0; i < n; i++)
		if (!kvs[i])
			return NULL;
	r->attributes = kvs;
	r->n_attributes = n;
	return r;
}

/* Per family: the attribute name of each label (NULL: dropped). */
struct fam_attrs {
	unsigned nlabels;
	const char **names;
	bool *is_int;
};

static int fam_attrs_init(struct arena *a, const struct metric_family *f,
			  struct fam_attrs *fa)
{
	char buf[128];
	unsigned i;
	int is_int;

	fa->nlabels = metric_family_nlabels(f);
	fa->names = arena_array(a, fa->nlabels, sizeof(*fa->names));
	fa->is_int = arena_array(a, fa->nlabels, sizeof(*fa->is_int));
	if (!fa->names || !fa->is_int)
		return -ENOMEM;
	for (i = 0; i < fa->nlabels; i++) {
		const char *label = metric_family_label_name(f, i);

		if (!strcmp(label, "service_name"))
			continue; /* it is the resource's service.name */
		otlp_attr_name(label, buf, sizeof(buf), &is_int);
		fa->names[i] = arena_strdup(a, buf);
		if (!fa->names[i])
			return -ENOMEM;
		fa->is_int[i] = is_int;
	}
	return 0;
}

/*
 * A series' attributes. Empty label values are left out (in Prometheus an
 * empty label is an absent one); the overflow series has only
 * otel.metric.overflow=true.
 */
static int series_attrs(struct arena *a, const struct fam_attrs *fa,
			const struct metric_series *s, size_t *n_out,
			otlp_kv ***out)
{
	otlp_kv **kvs;
	unsigned i;
	size_t n = 0;

	kvs = arena_array(a, fa->nlabels + 1, sizeof(*kvs));
	if (!kvs)
		return -ENOMEM;
	if (metric_series_is_overflow(s)) {
		kvs[0] = kv_new(a, "otel.metric.overflow");
		if (!kvs[0])
			return -ENOMEM;
		kvs[0]->value->value_case =
		    OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
		kvs[0]->value->bool_value = 1;
		n = 1;
		goto out;
	}
	for (i = 0; i < fa->nlabels; i++) {
		const char *v = metric_series_label_value(s, i);

		if (!fa->names[i] || !v || !*v)
			continue;
		kvs[n] = fa->is_int[i] ? kv_int_or_str(a, fa->names[i], v)
				       : kv_str(a, fa->names[i], v);
		if (!kvs[n++])
			return -ENOMEM;
	}
out:
	*n_out = n;
	*out = kvs;
	return 0;
}

static int
number_points(struct build *b, const struct fam_attrs *fa,
	      const struct ref *refs, size_t n, bool cumulative, size_t *n_out,
	      Opentelemetry__Proto__Metrics__V1__NumberDataPoint ***out)
{
	Opentelemetry__Proto__Metrics__V1__NumberDataPoint **pts, *p;
	size_t i;

	pts = arena_array(&b->arena, n, sizeof(*pts));
	if (!pts)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		p = arena_alloc(&b->arena, sizeof(*p));
		if (!p)
			return -ENOMEM;
		opentelemetry__proto__metrics__v1__number_data_point__init(p);
		if (series_attrs(&b->arena, fa, refs[i].s, &p->n_attributes,
				 &p->attributes))
			return -ENOMEM;
		if (cumulative)
			p->start_time_unix_nano = b->start_ns;
		p->time_unix_nano = b->now_ns;
		p->value_case =
		    OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_DOUBLE;
		p->as_double = metric_series_value(refs[i].s);
		pts[i] = p;
	}
	*n_out = n;
	*out = pts;
	return 0;
}

static int
histogram_points(struct build *b, const struct fam_attrs *fa,
		 const struct ref *refs, size_t n, size_t *n_out,
		 Opentelemetry__Proto__Metrics__V1__HistogramDataPoint ***out)
{
	Opentelemetry__Proto__Metrics__V1__HistogramDataPoint **pts, *p;
	const double *bounds;
	unsigned nbounds;
	size_t i;

	bounds = metric_family_bounds(refs[0].f, &nbounds);
	pts = arena_array(&b->arena, n, sizeof(*pts));
	if (!pts)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		p = arena_alloc(&b->arena, sizeof(*p));
		if (!p)
			return -ENOMEM;
		opentelemetry__proto__metrics__v1__histogram_data_point__init(
		    p);
		if (series_attrs(&b->arena, fa, refs[i].s, &p->n_attributes,
				 &p->attributes))
			return -ENOMEM;
		p->start_time_unix_nano = b->start_ns;
		p->time_unix_nano = b->now_ns;
		p->count = metric_series_count(refs[i].s);
		p->sum = metric_series_sum(refs[i].s);
		/* Borrowed: packed before the registry lock is released. */
		p->n_bucket_counts = (size_t)nbounds + 1;
		p->bucket_counts = (uint64_t *)metric_series_buckets(refs[i].s);
		p->n_explicit_bounds = nbounds;
		p->explicit_bounds = (double *)bounds;
		pts[i] = p;
	}
	*n_out = n;
	*out = pts;
	return 0;
}

/* One Metric from the n series (all of family refs[0].f) of one resource. */
static otlp_metric *build_metric(struct build *b, const struct ref *refs,
				 size_t n)
{
	const struct metric_family *f = refs[0].f;
	enum metric_kind kind = metric_family_kind(f);
	struct arena *a = &b->arena;
	char name[256], unit[64];
	struct fam_attrs fa;
	otlp_metric *m;
	int err = 0;

	m = arena_alloc(a, sizeof(*m));
	if (!m || fam_attrs_init(a, f, &fa))
		return NULL;
	opentelemetry__proto__metrics__v1__metric__init(m);
	otlp_metric_name(metric_family_name(f), kind, name, sizeof(name), unit,
			 sizeof(unit));
	m->name = arena_strdup(a, name);
	m->unit = arena_strdup(a, unit);
	m->description = (char *)metric_family_help(f);
	if (!m->name || !m->unit)
		return NULL;
	if (!m->description)
		m->description = "";

	if (kind == METRIC_COUNTER) {
		Opentelemetry__Proto__Metrics__V1__Sum *sum;

		sum = arena_alloc(a, sizeof(*sum));
		if (!sum)
			return NULL;
		opentelemetry__proto__metrics__v1__sum__init(sum);
		sum->aggregation_temporality =
		    OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_CUMULATIVE;
		sum->is_monotonic = 1;
		err = number_points(b, &fa, refs, n, true, &sum->n_data_points,
				    &sum->data_points);
		m->data_case =
		    OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM;
		m->sum = sum;
	} else if (kind == METRIC_GAUGE) {
		Opentelemetry__Proto__Metrics__V1__Gauge *g;

		g = arena_alloc(a, sizeof(*g));
		if (!g)
			return NULL;
		opentelemetry__proto__metrics__v1__gauge__init(g);
		err = number_points(b, &fa, refs, n, false, &g->n_data_points,
				    &g->data_points);
		m->data_case =
		    OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE;
		m->gauge = g;
	} else {
		Opentelemetry__Proto__Metrics__V1__Histogram *h;

		h = arena_alloc(a, sizeof(*h));
		if (!h)
			return NULL;
		opentelemetry__proto__metrics__v1__histogram__init(h);
		h->aggregation_temporality =
		    OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_CUMULATIVE;
		err = histogram_points(b, &fa, refs, n, &h->n_data_points,
				       &h->data_points);
		m->data_case =
		    OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM;
		m->histogram = h;
	}
	return err ? NULL : m;
}

/* One ResourceMetrics from the n series (sorted by family) of a resource. */
static Opentelemetry__Proto__Metrics__V1__ResourceMetrics *
build_resource_metrics(struct build *b, const char *service,
		       const struct res_common *rc, const struct ref *refs,
		       size_t n)
{
	Opentelemetry__Proto__Metrics__V1__ResourceMetrics *rm;
	Opentelemetry__Proto__Metrics__V1__ScopeMetrics *sm, **sms;
	Opentelemetry__Proto__Common__V1__InstrumentationScope *scope;
	struct arena *a = &b->arena;
	size_t i, j, nmetrics = 0;

	for (i = 0; i < n; i++)
		nmetrics += !i || refs[i].f != refs[i - 1].f;
	rm = arena_alloc(a, sizeof(*rm));
	sm = arena_alloc(a, sizeof(*sm));
	sms = arena_array(a, 1, sizeof(*sms));
	scope = arena_alloc(a, sizeof(*scope));
	if (!rm || !sm || !sms || !scope)
		return NULL;
	opentelemetry__proto__metrics__v1__resource_metrics__init(rm);
	opentelemetry__proto__metrics__v1__scope_metrics__init(sm);
	opentelemetry__proto__common__v1__instrumentation_scope__init(scope);
	scope->name = SCOPE_NAME;
	scope->version = KATASCOPE_VERSION;
	sm->scope = scope;
	sm->metrics = arena_array(a, nmetrics, sizeof(*sm->metrics));
	rm->resource = build_resource(a, service, rc);
	if (!sm->metrics || !rm->resource)
		return NULL;
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && refs[j].f == refs[i].f; j++)
			;
		sm->metrics[sm->n_metrics] = build_metric(b, refs + i, j - i);
		if (!sm->metrics[sm->n_metrics++])
			return NULL;
	}
	sms[0] = sm;
	rm->n_scope_metrics = 1;
	rm->scope_metrics = sms;
	return rm;
}

int otlp_metrics_encode(struct metric_registry *r,
			const struct otlp_resource_info *res,
			uint64_t start_unix_ns, uint64_t now_unix_ns,
			uint8_t **out, size_t *len)
{
	Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest
	    req =
		OPENTELEMETRY__PROTO__COLLECTOR__METRICS__V1__EXPORT_METRICS_SERVICE_REQUEST__INIT;
	struct build b = {.start_ns = start_unix_ns, .now_ns = now_unix_ns};
	struct collect c = {.svc_label = -1};
	struct res_common rc = {
		.host = res ? res->host_name : NULL,
		.node = res ? res->k8s_node_name : NULL,
		.ns = res ? res->k8s_namespace_name : NULL,
		.pod = res ? res->k8s_pod_name : NULL,
		.info = res,
	};
	char hostbuf[HOST_NAME_MAX + 1];
	uint8_t *buf = NULL;
	size_t i, j, size;
	int err = -ENOMEM;

	if (!rc.host && !gethostname(hostbuf, sizeof(hostbuf))) {
		hostbuf[sizeof(hostbuf) - 1] = '\0';
		rc.host = hostbuf;
	}
	if (!rc.node)
		rc.node = getenv("K8S_NODE_NAME");
	if (!rc.ns)
		rc.ns = getenv("K8S_NAMESPACE");
	if (!rc.pod)
		rc.pod = getenv("K8S_POD_NAME");

	metric_registry_lock(r);
	metric_registry_foreach(r, collect_series, &c);
	if (c.oom)
		goto out;
	if (c.n)
		qsort(c.refs, c.n, sizeof(*c.refs), cmp_ref);
	req.resource_metrics =
	    arena_array(&b.arena, c.nserv, sizeof(*req.resource_metrics));
	if (!req.resource_metrics)
		goto out;
	for (i = 0; i < c.n; i = j) {
		for (j = i + 1; j < c.n && c.refs[j].res == c.refs[i].res; j++)
			;
		req.resource_metrics[req.n_resource_metrics] =
		    build_resource_metrics(&b, c.services[c.refs[i].res], &rc,
					   c.refs + i, j - i);
		if (!req.resource_metrics[req.n_resource_metrics++])
			goto out;
	}
	size =
	    opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__get_packed_size(
		&req);
	buf = malloc(size ? size : 1);
	if (!buf)
		goto out;
	*len =
	    opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__pack(
		&req, buf);
	*out = buf;
	err = 0;
out:
	metric_registry_unlock(r);
	arena_free(&b.arena);
	free(c.refs);
	free(c.services);
	return err;
}
