/*
 * sampler.h - which traces are kept: head sampling by trace id, and the
 * tracing flags and OTEL_TRACES_SAMPLER* variables that configure it.
 *
 * The decision is a pure function of the trace id, so every span of a
 * trace (a server span and the client spans parented to it) gets the same
 * one, and any other component that samples by the same rule agrees. The
 * rule is OpenTelemetry's consistent probability sampling: the last 7
 * bytes of the trace id (56 bits, random in W3C version 00 ids) as an
 * integer R are kept when R >= T, T = round((1 - ratio) * 2^56). Ratio 1
 * keeps every trace, ratio 0 none.
 *
 * Parent-based samplers (the default) follow the sampled flag of an
 * incoming traceparent instead of the ratio; the plain traceidratio
 * sampler applies the ratio to every trace. Errors and slow spans are kept
 * whatever the head decision (spans.h does that part).
 *
 * Pure: the environment comes through a getter, so the unit tests check
 * every rule and message.
 */
#ifndef KS_SAMPLER_H
#define KS_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct trace_config {
	bool enabled;		 /* build spans at all (--traces) */
	bool parent_based;	 /* follow an incoming sampled flag */
	double ratio;		 /* 0..1 */
	uint64_t threshold;	 /* T above, from ratio */
	uint64_t keep_slower_ns; /* 0: off */
};

/* The flags as given (NULL / false: not given). */
struct trace_flags {
	bool traces;
	const char *ratio;	 /* --trace-sample-ratio */
	const char *keep_slower; /* --trace-keep-slower-than */
};

#define TRACE_KEEP_SLOWER_DEFAULT_NS 500000000ULL /* 500 ms */

/*
 * Flags beat OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG. Accepted
 * samplers: always_on, always_off, traceidratio, parentbased_always_on,
 * parentbased_always_off, parentbased_traceidratio. Returns 0, or -EINVAL
 * with one line in err naming the flag or variable.
 */
int trace_config_resolve(const struct trace_flags *f,
			 char *(*getenv_fn)(const char *),
			 struct trace_config *c, char *err, size_t errlen);

/* T for a ratio in [0, 1]. */
uint64_t sampler_threshold(double ratio);

/* The ratio decision for a trace id (16 bytes). */
bool sampler_keep_trace(const struct trace_config *c,
			const uint8_t trace_id[16]);

/*
 * The head decision for a root span (no parent context: has_parent
 * false) or a span whose remote parent said sampled or not.
 */
bool sampler_head(const struct trace_config *c, const uint8_t trace_id[16],
		  bool has_parent, bool parent_sampled);

/* "500ms", "2s", "1m", "0" -> ns; -EINVAL otherwise. */
int parse_duration_ns(const char *s, uint64_t *ns);

#endif
