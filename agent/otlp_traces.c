/*
 * otlp_traces.c - spans as an ExportTraceServiceRequest; see otlp_traces.h.
 *
 * The protobuf-c message tree is built over the caller's spans without
 * copying a string: each span gets one fixed block (Span, Status and its
 * attributes' KeyValue/AnyValue), each resource another, all in two
 * calloc'ed arrays freed as soon as the tree is packed.
 */
#include "otlp_traces.h"
#include "spans.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

typedef Opentelemetry__Proto__Common__V1__KeyValue otlp_kv;
typedef Opentelemetry__Proto__Common__V1__AnyValue otlp_any;
typedef Opentelemetry__Proto__Trace__V1__Span otlp_span;

#define RES_ATTRS 5

struct enc_span {
	otlp_span s;
	Opentelemetry__Proto__Trace__V1__Status st;
	otlp_kv kv[SPAN_ATTRS_MAX];
	otlp_any av[SPAN_ATTRS_MAX];
	otlp_kv *kvp[SPAN_ATTRS_MAX];
};

struct enc_res {
	Opentelemetry__Proto__Trace__V1__ResourceSpans rs;
	Opentelemetry__Proto__Resource__V1__Resource r;
	Opentelemetry__Proto__Trace__V1__ScopeSpans ss;
	Opentelemetry__Proto__Trace__V1__ScopeSpans *ssp;
	otlp_kv kv[RES_ATTRS];
	otlp_any av[RES_ATTRS];
	otlp_kv *kvp[RES_ATTRS];
};

static void set_str(otlp_kv *kv, otlp_any *av, const char *key, const char *val)
{
	opentelemetry__proto__common__v1__key_value__init(kv);
	opentelemetry__proto__common__v1__any_value__init(av);
	kv->key = (char *)key;
	kv->value = av;
	av->value_case =
	    OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
	av->string_value = (char *)val;
}

static void set_int(otlp_kv *kv, otlp_any *av, const char *key, int64_t val)
{
	opentelemetry__proto__common__v1__key_value__init(kv);
	opentelemetry__proto__common__v1__any_value__init(av);
	kv->key = (char *)key;
	kv->value = av;
	av->value_case =
	    OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
	av->int_value = val;
}

static void build_span(struct enc_span *e, const struct span *sp)
{
	otlp_span *s = &e->s;
	unsigned i;

	opentelemetry__proto__trace__v1__span__init(s);
	opentelemetry__proto__trace__v1__status__init(&e->st);
	s->trace_id.data = (uint8_t *)sp->trace_id;
	s->trace_id.len = sizeof(sp->trace_id);
	s->span_id.data = (uint8_t *)sp->span_id;
	s->span_id.len = sizeof(sp->span_id);
	if (sp->has_parent) {
		s->parent_span_id.data = (uint8_t *)sp->parent_id;
		s->parent_span_id.len = sizeof(sp->parent_id);
	}
	s->flags = sp->flags;
	s->name = (char *)span_name(sp);
	s->kind =
	    sp->kind == SPAN_KIND_SERVER
		? OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER
		: OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_CLIENT;
	s->start_time_unix_nano = sp->start_unix_ns;
	s->end_time_unix_nano = sp->end_unix_ns;
	for (i = 0; i < sp->nattrs && i < SPAN_ATTRS_MAX; i++) {
		const struct span_attr *a = &sp->attrs[i];

		if (a->is_int)
			set_int(&e->kv[i], &e->av[i], a->key, a->ival);
		else
			set_str(&e->kv[i], &e->av[i], a->key,
				sp->pool + a->off);
		e->kvp[i] = &e->kv[i];
	}
	s->attributes = e->kvp;
	s->n_attributes = i;
	if (sp->error) {
		e->st.code =
		    OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR;
		s->status = &e->st;
	}
}

static void
build_resource(struct enc_res *e, const struct span *first, const char *host,
	       Opentelemetry__Proto__Common__V1__InstrumentationScope *scope)
{
	size_t n = 0;

	opentelemetry__proto__trace__v1__resource_spans__init(&e->rs);
	opentelemetry__proto__resource__v1__resource__init(&e->r);
	opentelemetry__proto__trace__v1__scope_spans__init(&e->ss);
	set_str(&e->kv[n], &e->av[n], "service.name", first->service);
	n++;
	set_int(&e->kv[n], &e->av[n], "process.pid", first->pid);
	n++;
	if (host && *host) {
		set_str(&e->kv[n], &e->av[n], "host.name", host);
		n++;
	}
	set_str(&e->kv[n], &e->av[n], "telemetry.sdk.name", "katascope");
	n++;
	set_str(&e->kv[n], &e->av[n], "telemetry.sdk.version",
		KATASCOPE_VERSION);
	n++;
	for (size_t i = 0; i < n; i++)
		e->kvp[i] = &e->kv[i];
	e->r.attributes = e->kvp;
	e->r.n_attributes = n;
	e->rs.resource = &e->r;
	e->ss.scope = scope;
	e->ssp = &e->ss;
	e->rs.scope_spans = &e->ssp;
	e->rs.n_scope_spans = 1;
}

/* The resource of sp among the first spans of the resources so far. */
static size_t find_res(const struct span *spans, const size_t *first,
		       size_t nres, const struct span *sp)
{
	size_t r;

	for (r = 0; r < nres; r++)
		if (spans[first[r]].pid == sp->pid &&
		    !strcmp(spans[first[r]].service, sp->service))
			break;
	return r;
}

int otlp_traces_encode(const struct span *spans, size_t n,
		       const char *host_name, uint8_t **out, size_t *len)
{
	Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest req =
	    OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
	Opentelemetry__Proto__Common__V1__InstrumentationScope scope =
	    OPENTELEMETRY__PROTO__COMMON__V1__INSTRUMENTATION_SCOPE__INIT;
	Opentelemetry__Proto__Trace__V1__ResourceSpans **rsp = NULL;
	struct enc_span *es = NULL;
	struct enc_res *er = NULL;
	otlp_span **order = NULL;
	size_t *res_of = NULL, nres = 0, i, r, k;
	int err = -ENOMEM;

	*out = NULL;
	*len = 0;
	scope.name = "katascope";
	scope.version = KATASCOPE_VERSION;
	es = calloc(n ? n : 1, sizeof(*es));
	er = calloc(n ? n : 1, sizeof(*er));
	rsp = calloc(n ? n : 1, sizeof(*rsp));
	order = calloc(n ? n : 1, sizeof(*order));
	res_of = calloc(n ? n : 1, sizeof(*res_of));
	if (!es || !er || !rsp || !order || !res_of)
		goto out;
	/* Resources in order of first appearance: a linear scan of the
	 * resources so far (a handful of processes per batch). */
	for (i = 0; i < n; i++) {
		build_span(&es[i], &spans[i]);
		r = find_res(spans, res_of, nres, &spans[i]);
		if (r == nres) {
			build_resource(&er[nres], &spans[i], host_name, &scope);
			res_of[nres] = i; /* its first span */
			nres++;
		}
		er[r].ss.n_spans++;
	}
	/* Hand out each resource's slice of order[]. */
	for (r = 0, k = 0; r < nres; r++) {
		er[r].ss.spans = order + k;
		k += er[r].ss.n_spans;
		er[r].ss.n_spans = 0;
		rsp[r] = &er[r].rs;
	}
	for (i = 0; i < n; i++) {
		r = find_res(spans, res_of, nres, &spans[i]);
		er[r].ss.spans[er[r].ss.n_spans++] = &es[i].s;
	}
	req.resource_spans = rsp;
	req.n_resource_spans = nres;
	*len =
	    opentelemetry__proto__collector__trace__v1__export_trace_service_request__get_packed_size(
		&req);
	*out = malloc(*len ? *len : 1);
	if (!*out) {
		*len = 0;
		goto out;
	}
	opentelemetry__proto__collector__trace__v1__export_trace_service_request__pack(
	    &req, *out);
	err = 0;
out:
	free(es);
	free(er);
	free(rsp);
	free(order);
	free(res_of);
	return err;
}
