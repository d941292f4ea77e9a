/*
 * sampler.c - head sampling by trace id and its configuration; see
 * sampler.h.
 */
#include "sampler.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TWO_56 72057594037927936.0 /* 2^56 */

uint64_t sampler_threshold(double ratio)
{
	if (!(ratio > 0))
		return 1ULL << 56; /* nothing is >= 2^56 */
	if (ratio >= 1)
		return 0;
	return (uint64_t)llround((1 - ratio) * TWO_56);
}

bool sampler_keep_trace(const struct trace_config *c,
			const uint8_t trace_id[16])
{
	uint64_t r = 0;
	int i;

	for (i = 9; i < 16; i++)
		r = r << 8 | trace_id[i];
	return r >= c->threshold;
}

bool sampler_head(const struct trace_config *c, const uint8_t trace_id[16],
		  bool has_parent, bool parent_sampled)
{
	if (has_parent && c->parent_based)
		return parent_sampled;
	return sampler_keep_trace(c, trace_id);
}

static int parse_ratio(const char *s, double *out)
{
	char *end;
	double v;

	if (!*s)
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || !(v >= 0 && v <= 1))
		return -EINVAL;
	*out = v;
	return 0;
}

int parse_duration_ns(const char *s, uint64_t *ns)
{
	unsigned long long v;
	uint64_t unit;
	char *end;

	if (!*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	if (!strcmp(end, "ms"))
		unit = 1000000ULL;
	else if (!strcmp(end, "s"))
		unit = 1000000000ULL;
	else if (!strcmp(end, "m"))
		unit = 60000000000ULL;
	else if (!*end && v == 0)
		unit = 0;
	else
		return -EINVAL;
	if (v > 3600000ULL)
		return -EINVAL;
	*ns = v * unit;
	return 0;
}

static const struct {
	const char *name;
	bool parent_based;
	int ratio; /* -1: use the argument; else a fixed 0 or 1 */
} samplers[] = {
    {"always_on", false, 1},
    {"always_off", false, 0},
    {"traceidratio", false, -1},
    {"parentbased_always_on", true, 1},
    {"parentbased_always_off", true, 0},
    {"parentbased_traceidratio", true, -1},
};

int trace_config_resolve(const struct trace_flags *f,
			 char *(*getenv_fn)(const char *),
			 struct trace_config *c, char *err, size_t errlen)
{
	const char *env = getenv_fn("OTEL_TRACES_SAMPLER");
	const char *arg = getenv_fn("OTEL_TRACES_SAMPLER_ARG");
	size_t i;

	memset(c, 0, sizeof(*c));
	c->enabled = f->traces;
	c->parent_based = true;
	c->ratio = 1;
	c->keep_slower_ns = TRACE_KEEP_SLOWER_DEFAULT_NS;
	if (env && *env) {
		for (i = 0; i < sizeof(samplers) / sizeof(samplers[0]); i++)
			if (!strcmp(env, samplers[i].name))
				break;
		if (i == sizeof(samplers) / sizeof(samplers[0])) {
			snprintf(
			    err, errlen,
			    "invalid OTEL_TRACES_SAMPLER '%s': expected "
			    "always_on, always_off, traceidratio, "
			    "parentbased_always_on, parentbased_always_off or "
			    "parentbased_traceidratio",
			    env);
			return -EINVAL;
		}
		c->parent_based = samplers[i].parent_based;
		if (samplers[i].ratio >= 0) {
			c->ratio = samplers[i].ratio;
		} else if (arg && *arg && parse_ratio(arg, &c->ratio)) {
			snprintf(err, errlen,
				 "invalid OTEL_TRACES_SAMPLER_ARG '%s': "
				 "expected a ratio 0..1",
				 arg);
			return -EINVAL;
		}
	}
	if (f->ratio && parse_ratio(f->ratio, &c->ratio)) {
		snprintf(err, errlen,
			 "invalid value '%s' for --trace-sample-ratio: "
			 "expected 0..1",
			 f->ratio);
		return -EINVAL;
	}
	if (f->keep_slower &&
	    parse_duration_ns(f->keep_slower, &c->keep_slower_ns)) {
		snprintf(err, errlen,
			 "invalid value '%s' for --trace-keep-slower-than: "
			 "expected e.g. 500ms, 2s or 0 (off)",
			 f->keep_slower);
		return -EINVAL;
	}
	c->threshold = sampler_threshold(c->ratio);
	return 0;
}
