/*
 * profile_out.h - the CPU profiler's output encoders: pprof (gzipped
 * protobuf), collapsed ("folded") stacks and a self-contained SVG flame
 * graph, all from the same list of symbolized samples.
 *
 * The encoders are pure: no I/O, no global state, so the endpoints, the
 * unit tests and any fuzzer call them the same way. Strings in the input
 * are borrowed for the duration of the call only.
 *
 * Conventions shared by the three outputs:
 * - A frame's name may be NULL or "" (unsymbolized); it is shown as
 *   "[unknown]", or as "[module]" when the module is known ("[kernel]",
 *   "[jit]" and other bracketed modules are shown as they are).
 * - Samples whose value is 0 are skipped. A sample with no frames keeps its
 *   value: pprof gets a sample without locations, folded and SVG show it as
 *   one "[unknown]" frame, so totals agree everywhere.
 */
#ifndef KS_PROFILE_OUT_H
#define KS_PROFILE_OUT_H

#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

struct prof_frame {
	const char *name;   /* function name */
	const char *module; /* binary base name, "[kernel]", "[jit]"; or NULL */
};

struct prof_sample {
	const struct prof_frame *frames; /* leaf first */
	unsigned nframes;
	uint64_t value;      /* cpu: sample count; off_cpu: nanoseconds */
	int pid;             /* pprof label "pid" */
	const char *service; /* pprof label "service_name"; NULL/"" omits it */
	/*
	 * off_cpu only: how many waits were summed into value (0 counts as
	 * one). Ignored for cpu, where value is already the count.
	 */
	uint64_t count;
};

struct prof_meta {
	const char *sample_type; /* "cpu" or "off_cpu" */
	const char *unit;        /* unit of the time value: "nanoseconds" */
	int64_t period;          /* ns between cpu samples, e.g. 1e9/99 */
	int64_t time_nanos;      /* collection start, ns since the epoch */
	int64_t duration_nanos;
};

/*
 * pprof. sample_type is [{"samples","count"}, {meta->sample_type,
 * meta->unit}], period_type {meta->sample_type, meta->unit}, and the second
 * type is the default. Values per sample:
 *   cpu:     [value, value * period]   (saturating at INT64_MAX)
 *   off_cpu: [count or 1, value]       (value already is time)
 * One Function and one Location (same id) per distinct (name, module), one
 * Mapping per distinct module (has_functions set: already symbolized;
 * frames without a module get mapping_id 0), labels "pid" (num) and
 * "service_name" (str) on every sample. The protobuf is gzip-compressed as
 * pprof files are. On success *out is malloc'd (caller frees) and 0 is
 * returned; otherwise -EINVAL (bad arguments, unknown sample_type) or
 * -ENOMEM, and *out is NULL. n == 0 gives a valid empty profile.
 */
int pprof_encode(const struct prof_sample *s, size_t n,
		 const struct prof_meta *m, uint8_t **out, size_t *out_len);

/*
 * Collapsed stacks (Brendan Gregg's folded format, read by flamegraph
 * tools, speedscope, Pyroscope): one line per distinct stack, root first,
 * frame names joined by ';', a space, the summed value, '\n'. Lines are
 * sorted bytewise. Frames are named as above; in names ';' becomes ':' and
 * control characters become '?', so every line parses back unambiguously
 * (the value is after the last space; names may contain spaces). Appends to
 * out; check out->oom.
 */
void folded_render(const struct prof_sample *s, size_t n, struct strbuf *out);

/*
 * An interactive SVG flame graph, one file with no external resources:
 * root at the bottom, one row per stack depth, siblings sorted by name, width
 * proportional to value. Hover shows name, module, value and percent; click
 * zooms into a frame (click the root or "Reset Zoom" to go back); "Search"
 * (or Ctrl-F, '/') highlights frames matching a regexp and shows the matched
 * share. Colours by module: kernel, JIT, user code, unknown. Frames narrower
 * than a tenth of a pixel are left out. Appends to out; check out->oom.
 */
void flamegraph_svg(const struct prof_sample *s, size_t n, const char *title,
		    struct strbuf *out);

#endif
