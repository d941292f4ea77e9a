/*
 * otlp_traces.h - finished spans as an OTLP ExportTraceServiceRequest
 * (protobuf): the body of GET /v1/traces and of an OTLP/HTTP push to
 * /v1/traces.
 *
 * One ResourceSpans per (service, process): service.name, process.pid,
 * host.name, telemetry.sdk.name "katascope" and telemetry.sdk.version;
 * one ScopeSpans in it, scope "katascope". Spans keep their order within
 * a resource; resources come in the order of their first span.
 */
#ifndef KS_OTLP_TRACES_H
#define KS_OTLP_TRACES_H

#include <stddef.h>
#include <stdint.h>

struct span;

/*
 * Encode n spans (n may be 0: an empty request). On success *out is a
 * malloc'ed buffer of *len bytes the caller frees; 0 or -ENOMEM.
 */
int otlp_traces_encode(const struct span *spans, size_t n,
		       const char *host_name, uint8_t **out, size_t *len);

#endif
