/*
 * probes.h - loading, attaching and reading the BPF side.
 *
 * Probe families are loaded one by one; a family that fails to load or
 * attach is recorded with its reason (served by /healthz) and the others go
 * on. The process family is loaded first and owns the shared maps (ring
 * buffer, pid_stats, drop counters) that the later families reuse.
 */
#ifndef KS_PROBES_H
#define KS_PROBES_H

#include <stdint.h>
#include <sys/types.h>

#include "katascope.h"

enum probe_group_id {
	PG_PROCESS = 0,
	PG_TCP,
	PG_SCHED,
	PG_L7,
	PG_PROFILE,
	PG_POSTGRES,
	PG_NODE,
	PG_PGSTMT,
	PG_MAX
};

/* Group names as /healthz and --probes spell them, in enum order. */
#define PROBE_GROUP_NAMES                                                      \
	{ "process", "tcp",	 "sched", "http",                             \
	  "profile", "postgres", "node",  "pgstatements" }

/*
 * What runs without --probes: every group but pgstatements, whose USDT
 * probes trap on every statement a PostgreSQL server runs (measured in
 * docs/benchmarks.md: about 11 % of a database-bound API's throughput,
 * empty programs included).
 */
#define PROBE_GROUPS_DEFAULT (((1u << PG_MAX) - 1) & ~(1u << PG_PGSTMT))

struct probe_group {
	const char *name;
	const char *what;
	int core; /* /healthz is 503 unless every enabled core group attached */
	int enabled; /* 0: left out by configuration (--probes) */
	int attached;
	int nprogs;
	char error[256];
};

struct probes;

typedef int (*probe_event_fn)(void *ctx, void *data, size_t len);
typedef void (*pid_stats_fn)(uint32_t tgid, const struct ks_pid_stats *st,
			     void *arg);

struct probes_config {
	unsigned groups; /* bit per enum probe_group_id; 0: the default */
	unsigned profile_hz; /* CPU sampling frequency */
	pid_t profile_pid; /* sample only this process (0: all) */
	int l7_split; /* a record when each request starts (tracing needs it),
		       * not only when it ends */
};

/* Load and attach. Fails only when no core group could load. */
int probes_open(struct probes **out, pid_t self,
		const struct probes_config *cfg, probe_event_fn fn, void *ctx,
		char *msg, size_t len);
void probes_close(struct probes *p);
/* End the HTTP exchanges whose response has been silent for a second (the
 * kernel ends the others at the next request or the close): run every
 * PROBES_L7_SWEEP_MS, so that completed requests reach /metrics within
 * 2 s. Returns how many it ended, or -errno. */
#define PROBES_L7_SWEEP_MS 500
int probes_l7_sweep(struct probes *p);
/* Consume ring-buffer records; returns records handled or -errno. */
int probes_poll(struct probes *p, int timeout_ms);
/* Read the stats of every process and call fn for each: its pid_stats
 * entry plus its sched_tab slot, cumulative while the process lives. */
int probes_read_pid_stats(struct probes *p, pid_stats_fn fn, void *arg);
/* Drop a process's figures once its last ones have been folded: its
 * pid_stats entry now, its sched_tab slot at the next read. */
int probes_forget_pid(struct probes *p, uint32_t tgid);
/* Calls fn for every held slot of the kernel's HTTP counters (http_tab,
 * katascope.h) and releases the slots for which it returns nonzero. A
 * released slot is passed once more at the next call, with final set and
 * the counters as they ended (an exchange that matched the slot just
 * before its release may have added to them), and then freed. Returns the
 * slots read (0 without the l7 group). A slot's counters only grow until
 * it is freed. */
typedef int (*http_count_fn)(uint32_t slot, const struct ks_http_key *k,
			   const struct ks_http_val *v, int final,
			   void *arg);
int probes_read_http_counts(struct probes *p, http_count_fn fn, void *arg);
void probes_read_drops(struct probes *p, uint64_t out[KS_DROP_MAX]);
const struct probe_group *probes_groups(struct probes *p, int *n);
/* The profile maps (-1 when the profile group did not load). */
struct profile_fds {
	int stacks, cpu_samples, offcpu_ns;
};
void probes_profile_fds(struct probes *p, struct profile_fds *out);
/* Off-CPU sampling costs two stack walks per context switch: attached
 * only while wanted. Reference counted; 0 or -errno. */
int probes_offcpu_get(struct probes *p);
void probes_offcpu_put(struct probes *p);
/*
 * PostgreSQL USDT probes are attached per postgres binary (all its
 * processes, present and future). Returns 1 if newly attached, 0 if that
 * binary already was, -errno on failure (the group's error says why).
 */
int probes_pg_attach(struct probes *p, const char *binary_path);
/* The same for a node binary: GC uprobes (and its OpenSSL for HTTPS). */
int probes_node_attach(struct probes *p, const char *binary_path);
/*
 * Node's main event loop is measured per process: watch adds a node
 * process (1 if new, 0 if it was watched: its state is reset, e.g. after a
 * second exec; -errno), attaching the epoll tracepoints with the first
 * one; unwatch removes it (exit, or exec of something else), detaching
 * them with the last one. An exited process's counters stay in the
 * kernel's map, read with its stats, until probes_forget_pid: written
 * back into pid_stats they could overwrite the kernel's last adds there.
 */
int probes_node_watch(struct probes *p, pid_t tgid);
void probes_node_unwatch(struct probes *p, pid_t tgid, int exited);
/* Once every watched loop has waited for a while, detach the tracepoints
 * of the wait syscalls none of them uses (other programs' epoll_wait need
 * not run a program). Called every refresh. */
void probes_node_prune(struct probes *p);
/* Names and ids of the loaded BPF programs (for bench and debugging). */
int probes_prog_ids(struct probes *p, uint32_t *ids, const char **names,
		    int max);

#endif
