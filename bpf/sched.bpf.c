// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sched.bpf.c - CPU time and run-queue latency per process.
 *
 * On every context switch the outgoing task's slice is added to its
 * process's on-CPU time, and the incoming task's wait on the run queue
 * goes into its process's run-queue latency histogram. Both are the
 * scheduler's own figures, read off its stamps (CONFIG_SCHED_INFO): it
 * stamps sched_info.last_queued with the rq clock when a task is queued
 * runnable (wakeup, or preemption while runnable) and last_arrival when
 * the task arrives on a CPU, and __schedule has brought the rq clock up to
 * date before this tracepoint. So the slice is rq clock - prev's
 * last_arrival and the wait is rq clock - next's last_queued, the very
 * difference the kernel adds to /proc/PID/schedstat right after this
 * tracepoint. No clock read, no per-CPU state, no wakeup hook and no map
 * of runnable tasks. The run queue is reached through prev's cfs_rq
 * (CONFIG_FAIR_GROUP_SCHED), not the per-CPU runqueues ksym: the verifier
 * resolves a ksym's address with kallsyms, which holds no data symbols
 * without CONFIG_KALLSYMS_ALL (the load fails with ENOENT). Raw
 * tracepoint, because the plain sched_switch tracepoint carries thread ids
 * only and the tgid is what names a service.
 *
 * The figures go to the process's slot in sched_tab (see katascope.h), an
 * array the verifier inlines lookups of, not to its pid_stats entry: two
 * hash lookups per switch, each a chain of calls, were most of this
 * program's cost. A process whose slot another live process holds falls
 * back to pid_stats; the agent adds the two.
 */
#include "common.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KS_SCHED_SLOTS);
	__uint(map_flags, BPF_F_MMAPABLE); /* the agent reads and frees */
	__type(key, __u32);
	__type(value, struct ks_sched_slot);
} sched_tab SEC(".maps");

/* Where a process's figures go: its slot, claimed on first use, else (the
 * slot is another process's) its pid_stats entry. */
static __always_inline struct ks_sched_stats *sched_stats_of(__u32 tgid)
{
	__u32 i = ks_sched_slot_of(tgid);
	struct ks_sched_slot *s = bpf_map_lookup_elem(&sched_tab, &i);
	struct ks_pid_stats *st;
	__u64 owner;

	if (!s)
		return NULL; /* never: i < KS_SCHED_SLOTS */
	owner = s->tgid;
	/* Another CPU may claim it for the same process between the load
	 * and the cmpxchg: that is a claim for us too. */
	if (!owner)
		owner = __sync_val_compare_and_swap(&s->tgid, 0, tgid) ?: tgid;
	if (owner == tgid)
		return &s->st;
	st = pid_stats_of(tgid);
	if (!st)
		return NULL;
	/* Else clang offsets st before the test, which the verifier
	 * refuses on a pointer that may be NULL. */
	barrier_var(st);
	return &st->sched;
}

/* args: (bool preempt, struct task_struct *prev, struct task_struct *next) */
SEC("raw_tp/sched_switch")
int handle_switch(struct bpf_raw_tracepoint_args *ctx)
{
	/* prev is the current task: a trusted pointer, read directly. */
	struct task_struct *prev = bpf_get_current_task_btf();
	struct task_struct *next = bpf_rdonly_cast(
		(void *)ctx->args[2], bpf_core_type_id_kernel(struct task_struct));
	__u32 ptgid = prev->tgid, ntgid = next->tgid;
	__u64 now, arrived = 0, queued = 0;
	struct ks_sched_stats *st = NULL;

	/* The idle task (tgid 0) is never stamped. */
	if (ptgid && ptgid != self_tgid && !(prev->flags & KS_PF_KTHREAD))
		arrived = prev->sched_info.last_arrival;
	if (ntgid && ntgid != self_tgid && !(next->flags & KS_PF_KTHREAD))
		queued = next->sched_info.last_queued;
	if (!arrived && !queued)
		return 0;
	/* prev runs here, so its cfs_rq is on this CPU's rq. */
	now = prev->se.cfs_rq->rq->clock;

	if (arrived && now > arrived) {
		st = sched_stats_of(ptgid);
		if (st)
			ADD(st->oncpu_ns, now - arrived);
	}
	if (!queued || now <= queued)
		return 0;
	/* A switch between two threads of one process: one lookup. */
	if (!st || ntgid != ptgid)
		st = sched_stats_of(ntgid);
	if (st) {
		ADD(st->runq_lat_sum_ns, now - queued);
		ADD(st->runq_lat[lat_bucket(now - queued)], 1);
	}
	return 0;
}
