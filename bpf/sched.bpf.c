// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sched.bpf.c - CPU time and run-queue latency per process.
 *
 * On every context switch the outgoing task's slice (since the previous
 * switch on this CPU) is added to its process's on-CPU time, and the
 * incoming task's wait on the run queue goes into its process's run-queue
 * latency histogram. The wait is the scheduler's own figure: the kernel
 * stamps sched_info.last_queued (rq clock) when a task is queued runnable
 * (wakeup, or preemption while runnable) and turns it into run_delay when
 * the task arrives on the CPU, which happens right after this tracepoint.
 * The rq clock is sched_clock, not bpf_ktime_get_ns's CLOCK_MONOTONIC, and
 * the kernel symbol of the run queues is not resolvable here (no
 * KALLSYMS_ALL), so the offset between the two clocks is learnt on every
 * switch: the outgoing task arrived on this CPU at the previous switch,
 * whose ktime this program kept, and the kernel stamped that arrival in
 * its sched_info.last_arrival. Now minus that offset minus last_queued is
 * the wait /proc/PID/schedstat adds (to within the sub-microsecond gap
 * between the scheduler reading its clock and this tracepoint, the same
 * in both stamps). No wakeup hook and no map of runnable tasks is
 * needed. Raw tracepoint, because the plain sched_switch tracepoint
 * carries thread ids only and the tgid is what names a service.
 */
#include "common.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct cpu_slot {
	__u64 start; /* ktime of the last switch on this CPU */
	__s64 offset; /* ktime - rq clock, learnt at the last switch */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cpu_slot);
} cpu_slots SEC(".maps");

/* args: (bool preempt, struct task_struct *prev, struct task_struct *next) */
SEC("raw_tp/sched_switch")
int handle_switch(struct bpf_raw_tracepoint_args *ctx)
{
	/* prev is the current task: a trusted pointer, read directly. */
	struct task_struct *prev = bpf_get_current_task_btf();
	struct task_struct *next = bpf_rdonly_cast(
		(void *)ctx->args[2], bpf_core_type_id_kernel(struct task_struct));
	__u64 now = bpf_ktime_get_ns(), queued, arrived, rq_now;
	struct ks_pid_stats *st;
	struct cpu_slot *slot;
	__u32 zero = 0, tgid;

	slot = bpf_map_lookup_elem(&cpu_slots, &zero);
	if (!slot)
		return 0;
	tgid = prev->tgid;
	if (tgid && slot->start) {
		/* The idle task (tgid 0) is never stamped. */
		arrived = prev->sched_info.last_arrival;
		if (arrived)
			slot->offset = (__s64)(slot->start - arrived);
	}
	if (tgid && tgid != self_tgid && slot->start &&
	    !(prev->flags & KS_PF_KTHREAD)) {
		st = pid_stats_of(tgid);
		if (st)
			ADD(st->oncpu_ns, now - slot->start);
	}
	slot->start = now;

	tgid = next->tgid;
	if (!tgid || tgid == self_tgid || (next->flags & KS_PF_KTHREAD))
		return 0;
	queued = next->sched_info.last_queued;
	if (!queued || !slot->offset)
		return 0;
	rq_now = now - slot->offset;
	if (rq_now <= queued)
		return 0;
	st = pid_stats_of(tgid);
	if (st) {
		ADD(st->runq_lat_sum_ns, rq_now - queued);
		ADD(st->runq_lat[lat_bucket(rq_now - queued)], 1);
	}
	return 0;
}
