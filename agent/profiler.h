/*
 * profiler.h - CPU and off-CPU profiles from the kernel's stack counts.
 *
 * The kernel counts samples per (process, user stack, kernel stack). The
 * main thread drains those maps (profiler_tick) and hands what it read to
 * every profile being recorded; a profile is asked for by an HTTP thread
 * (or the one-shot CLI), which waits until its time is up, then symbolizes
 * and encodes it (pprof, folded stacks, SVG flame graph). With no profile
 * being recorded the counts are drained and dropped, so the maps never fill.
 */
#ifndef KS_PROFILER_H
#define KS_PROFILER_H

#include <stdint.h>

#include "probes.h"
#include "proctab.h"
#include "strbuf.h"

enum prof_type { PROF_CPU = 0, PROF_OFFCPU };
enum prof_format { PROF_PPROF = 0, PROF_FOLDED, PROF_SVG };

struct profiler;
struct prof_session;

struct profiler *profiler_new(struct probes *probes, const char *proc_root,
			      unsigned hz);
void profiler_free(struct profiler *p);
/* Main thread: drain the kernel maps if due; names pids via pt. */
void profiler_tick(struct profiler *p, struct proctab *pt, uint64_t now_ns);
/* Is a profile being recorded (then it drains every 50 ms)? */
int profiler_busy(struct profiler *p);
/* Main thread: a process exited; keep its mappings for pending profiles. */
void profiler_process_exit(struct profiler *p, int pid);

/* Any thread: start recording; pid 0 / service NULL for everything. */
struct prof_session *profiler_start(struct profiler *p, enum prof_type type,
				    unsigned seconds, int pid,
				    const char *service, char *err,
				    size_t errlen);
/* Block until the session's time is up (and a final drain happened). */
void profiler_wait(struct profiler *p, struct prof_session *s);
/* Has the session's time run out (and been drained)? */
int profiler_done(struct profiler *p, struct prof_session *s);
/* Seconds recorded so far and samples seen (for progress output). */
void profiler_progress(struct profiler *p, struct prof_session *s,
		       double *secs, uint64_t *samples);
/* Symbolize and encode; out gets the body. 0 or -errno. */
int profiler_render(struct profiler *p, struct prof_session *s,
		    enum prof_format fmt, struct strbuf *out);
void profiler_end(struct profiler *p, struct prof_session *s);

struct profiler_stats {
	uint64_t samples, dropped_stacks, sessions;
};
void profiler_stats(struct profiler *p, struct profiler_stats *out);

#endif
