/*
 * otlp_dump.c - decode an OTLP ExportMetricsServiceRequest (protobuf, on
 * stdin) with katascope's own protobuf-c code and print it as one JSON
 * document, for the end-to-end tests (which also decode the same bytes with
 * an independent decoder and compare):
 *
 *   {"resources":[{"attributes":{"service.name":"x",...},
 *     "metrics":[{"name":..,"unit":..,"type":"histogram|sum|gauge",
 *       "temporality":2,"monotonic":true,
 *       "points":[{"attributes":{..},"start":"ns","time":"ns",
 *         "count":N,"sum":S,"bounds":[..],"buckets":[..]} |
 * {..,"value":V}]}]}]}
 *
 * 64-bit times are strings (JSON numbers lose precision); ints are numbers.
 * Exit 1 when the input does not decode.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb-c.h"
#include "strbuf.h"

typedef Opentelemetry__Proto__Common__V1__KeyValue kv_t;
typedef Opentelemetry__Proto__Metrics__V1__Metric metric_t;

static void any(struct strbuf *sb,
		const Opentelemetry__Proto__Common__V1__AnyValue *v)
{
	if (!v) {
		sb_puts(sb, "null");
		return;
	}
	switch (v->value_case) {
	case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
		sb_json_str(sb, v->string_value);
		break;
	case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
		sb_printf(sb, "%" PRId64, v->int_value);
		break;
	case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
		sb_puts(sb, v->bool_value ? "true" : "false");
		break;
	case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
		sb_double(sb, v->double_value);
		break;
	default:
		sb_puts(sb, "null");
	}
}

static void attrs(struct strbuf *sb, kv_t **kvs, size_t n)
{
	size_t i;

	sb_putc(sb, '{');
	for (i = 0; i < n; i++) {
		if (i)
			sb_putc(sb, ',');
		sb_json_str(sb, kvs[i]->key);
		sb_putc(sb, ':');
		any(sb, kvs[i]->value);
	}
	sb_putc(sb, '}');
}

static void
number_points(struct strbuf *sb,
	      Opentelemetry__Proto__Metrics__V1__NumberDataPoint **p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		sb_puts(sb, i ? ",{\"attributes\":" : "{\"attributes\":");
		attrs(sb, p[i]->attributes, p[i]->n_attributes);
		sb_printf(sb,
			  ",\"start\":\"%" PRIu64 "\",\"time\":\"%" PRIu64
			  "\",\"value\":",
			  p[i]->start_time_unix_nano, p[i]->time_unix_nano);
		if (p[i]->value_case ==
		    OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_INT)
			sb_printf(sb, "%" PRId64, p[i]->as_int);
		else
			sb_double(sb, p[i]->as_double);
		sb_putc(sb, '}');
	}
}

static void
histogram_points(struct strbuf *sb,
		 Opentelemetry__Proto__Metrics__V1__HistogramDataPoint **p,
		 size_t n)
{
	size_t i, j;

	for (i = 0; i < n; i++) {
		sb_puts(sb, i ? ",{\"attributes\":" : "{\"attributes\":");
		attrs(sb, p[i]->attributes, p[i]->n_attributes);
		sb_printf(sb,
			  ",\"start\":\"%" PRIu64 "\",\"time\":\"%" PRIu64
			  "\",\"count\":%" PRIu64 ",\"sum\":",
			  p[i]->start_time_unix_nano, p[i]->time_unix_nano,
			  p[i]->count);
		sb_double(sb, p[i]->sum);
		sb_puts(sb, ",\"bounds\":[");
		for (j = 0; j < p[i]->n_explicit_bounds; j++) {
			if (j)
				sb_putc(sb, ',');
			sb_double(sb, p[i]->explicit_bounds[j]);
		}
		sb_puts(sb, "],\"buckets\":[");
		for (j = 0; j < p[i]->n_bucket_counts; j++)
			sb_printf(sb, "%s%" PRIu64, j ? "," : "",
				  p[i]->bucket_counts[j]);
		sb_puts(sb, "]}");
	}
}

static void metric(struct strbuf *sb, const metric_t *m)
{
	sb_puts(sb, "{\"name\":");
	sb_json_str(sb, m->name);
	sb_puts(sb, ",\"unit\":");
	sb_json_str(sb, m->unit);
	switch (m->data_case) {
	case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM:
		sb_printf(sb,
			  ",\"type\":\"sum\",\"temporality\":%d,\"monotonic\":%"
			  "s,\"points\":[",
			  (int)m->sum->aggregation_temporality,
			  m->sum->is_monotonic ? "true" : "false");
		number_points(sb, m->sum->data_points, m->sum->n_data_points);
		break;
	case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE:
		sb_puts(sb, ",\"type\":\"gauge\",\"points\":[");
		number_points(sb, m->gauge->data_points,
			      m->gauge->n_data_points);
		break;
	case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM:
		sb_printf(
		    sb,
		    ",\"type\":\"histogram\",\"temporality\":%d,\"points\":[",
		    (int)m->histogram->aggregation_temporality);
		histogram_points(sb, m->histogram->data_points,
				 m->histogram->n_data_points);
		break;
	default:
		sb_puts(sb, ",\"type\":\"other\",\"points\":[");
	}
	sb_puts(sb, "]}");
}

int main(void)
{
	Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest
	    *req;
	struct strbuf sb = STRBUF_INIT;
	size_t len = 0, cap = 1 << 16, n, i, j, k;
	uint8_t *buf = malloc(cap);

	while (buf && (n = fread(buf + len, 1, cap - len, stdin)) > 0) {
		len += n;
		if (len == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
		}
	}
	if (!buf)
		return 1;
	req =
	    opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__unpack(
		NULL, len, buf);
	free(buf);
	if (!req) {
		fprintf(stderr,
			"otlp_dump: not an ExportMetricsServiceRequest\n");
		return 1;
	}
	sb_puts(&sb, "{\"resources\":[");
	for (i = 0; i < req->n_resource_metrics; i++) {
		const Opentelemetry__Proto__Metrics__V1__ResourceMetrics *rm =
		    req->resource_metrics[i];
		int first = 1;

		sb_puts(&sb, i ? ",{\"attributes\":" : "{\"attributes\":");
		if (rm->resource)
			attrs(&sb, rm->resource->attributes,
			      rm->resource->n_attributes);
		else
			sb_puts(&sb, "{}");
		sb_puts(&sb, ",\"metrics\":[");
		for (j = 0; j < rm->n_scope_metrics; j++)
			for (k = 0; k < rm->scope_metrics[j]->n_metrics; k++) {
				if (!first)
					sb_putc(&sb, ',');
				first = 0;
				metric(&sb, rm->scope_metrics[j]->metrics[k]);
			}
		sb_puts(&sb, "]}");
	}
	sb_puts(&sb, "]}\n");
	opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__free_unpacked(
	    req, NULL);
	if (sb.oom)
		return 1;
	fwrite(sb.buf, 1, sb.len, stdout);
	sb_free(&sb);
	return 0;
}
