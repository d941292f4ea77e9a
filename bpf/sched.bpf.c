// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sched.bpf.c - CPU time and run-queue latency per process.
 *
 * On every context switch the outgoing task's slice (since the previous
 * switch on this CPU) is added to its process's on-CPU time, and the
 * incoming task's wait since it became runnable (wakeup, or preemption
 * while still runnable) goes into its process's run-queue latency
 * histogram. Raw tracepoints, because the plain sched_switch tracepoint
 * carries thread ids only and the tgid is what names a service.
 */
#include "common.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define KS_TASK_RUNNING 0

struct task_struct___o {
	volatile long state;
} __attribute__((preserve_access_index));

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} slice_start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 32768);
	__type(key, __u32);
	__type(value, __u64);
} runnable_since SEC(".maps");

static __always_inline long task_state(struct task_struct *t)
{
	if (bpf_core_field_exists(t->__state))
		return BPF_CORE_READ(t, __state);
	return BPF_CORE_READ((struct task_struct___o *)t, state);
}

static __always_inline void mark_runnable(struct task_struct *t, __u64 now)
{
	__u32 tid = BPF_CORE_READ(t, pid);

	if (tid)
		bpf_map_update_elem(&runnable_since, &tid, &now, BPF_ANY);
}

/* args: (bool preempt, struct task_struct *prev, struct task_struct *next) */
SEC("raw_tp/sched_switch")
int handle_switch(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *prev = (struct task_struct *)ctx->args[1];
	struct task_struct *next = (struct task_struct *)ctx->args[2];
	__u64 now = bpf_ktime_get_ns(), *start, *since, delta;
	struct ks_pid_stats *st;
	__u32 zero = 0, tgid, tid;

	start = bpf_map_lookup_elem(&slice_start, &zero);
	if (!start)
		return 0;
	tgid = BPF_CORE_READ(prev, tgid);
	if (tgid && tgid != self_tgid &&
	    !(BPF_CORE_READ(prev, flags) & KS_PF_KTHREAD)) {
		if (*start) {
			st = pid_stats_of(tgid);
			if (st)
				ADD(st->oncpu_ns, now - *start);
		}
		if (task_state(prev) == KS_TASK_RUNNING)
			mark_runnable(prev, now);
	}
	*start = now;

	tgid = BPF_CORE_READ(next, tgid);
	if (!tgid || tgid == self_tgid ||
	    (BPF_CORE_READ(next, flags) & KS_PF_KTHREAD))
		return 0;
	tid = BPF_CORE_READ(next, pid);
	since = bpf_map_lookup_elem(&runnable_since, &tid);
	if (!since)
		return 0;
	delta = now - *since;
	bpf_map_delete_elem(&runnable_since, &tid);
	st = pid_stats_of(tgid);
	if (st) {
		ADD(st->runq_lat_sum_ns, delta);
		ADD(st->runq_lat[lat_bucket(delta)], 1);
	}
	return 0;
}

/* args: (struct task_struct *p) */
SEC("raw_tp/sched_wakeup")
int handle_wakeup(struct bpf_raw_tracepoint_args *ctx)
{
	mark_runnable((struct task_struct *)ctx->args[0], bpf_ktime_get_ns());
	return 0;
}

SEC("raw_tp/sched_wakeup_new")
int handle_wakeup_new(struct bpf_raw_tracepoint_args *ctx)
{
	mark_runnable((struct task_struct *)ctx->args[0], bpf_ktime_get_ns());
	return 0;
}
