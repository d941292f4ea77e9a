// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * node.bpf.c - Node.js runtime: event loop and garbage collection, from
 * uprobes on the node binary (libuv and V8 are linked into it).
 *
 * Event loop: a loop thread is either in uv__io_poll (waiting for I/O: idle)
 * or running callbacks (busy). Entry and return of uv__io_poll split the
 * two; the busy stretch before each poll is one iteration's busy time,
 * which is what users call event-loop lag or blocking.
 *
 * GC: v8::internal::Heap::CollectGarbage(space, ...) entry to return is a
 * pause; space NEW_SPACE (1) is a scavenge (minor), anything else a
 * mark-compact (major). Nested calls count once.
 */
#include "common.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define KS_NEW_SPACE 1

struct loop_thread {
	__u64 poll_enter; /* 0 when not inside uv__io_poll */
	__u64 poll_exit; /* last return from it */
	__u64 gc_start;
	__u32 gc_depth;
	__u32 gc_minor;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32); /* thread id */
	__type(value, struct loop_thread);
} loop_threads SEC(".maps");

static __always_inline struct loop_thread *thread_state(void)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct loop_thread *t, zero = {};

	t = bpf_map_lookup_elem(&loop_threads, &tid);
	if (t)
		return t;
	bpf_map_update_elem(&loop_threads, &tid, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&loop_threads, &tid);
}

SEC("uprobe")
int handle_uv_poll_enter(struct pt_regs *ctx)
{
	struct loop_thread *t = thread_state();
	struct ks_pid_stats *st;
	__u64 now = bpf_ktime_get_ns(), busy;

	if (!t)
		return 0;
	if (t->poll_exit) {
		busy = now - t->poll_exit;
		st = pid_stats_of(bpf_get_current_pid_tgid() >> 32);
		if (st) {
			ADD(st->loop_busy_ns, busy);
			ADD(st->loop_busy_sum_ns, busy);
			ADD(st->loop_busy[lat_bucket(busy)], 1);
		}
	}
	t->poll_enter = now;
	return 0;
}

SEC("uretprobe")
int handle_uv_poll_exit(struct pt_regs *ctx)
{
	struct loop_thread *t = thread_state();
	struct ks_pid_stats *st;
	__u64 now = bpf_ktime_get_ns();

	if (!t)
		return 0;
	if (t->poll_enter) {
		st = pid_stats_of(bpf_get_current_pid_tgid() >> 32);
		if (st)
			ADD(st->loop_idle_ns, now - t->poll_enter);
	}
	t->poll_enter = 0;
	t->poll_exit = now;
	return 0;
}

/* Heap::CollectGarbage(this, AllocationSpace space, reason, flags) */
SEC("uprobe")
int handle_gc_enter(struct pt_regs *ctx)
{
	struct loop_thread *t = thread_state();

	if (!t)
		return 0;
	if (t->gc_depth++ == 0) {
		t->gc_start = bpf_ktime_get_ns();
		t->gc_minor = PT_REGS_PARM2(ctx) == KS_NEW_SPACE;
	}
	return 0;
}

SEC("uretprobe")
int handle_gc_exit(struct pt_regs *ctx)
{
	struct loop_thread *t = thread_state();
	struct ks_pid_stats *st;
	__u64 d;

	if (!t || !t->gc_depth || --t->gc_depth || !t->gc_start)
		return 0;
	d = bpf_ktime_get_ns() - t->gc_start;
	t->gc_start = 0;
	st = pid_stats_of(bpf_get_current_pid_tgid() >> 32);
	if (!st)
		return 0;
	if (t->gc_minor) {
		ADD(st->gc_minor_sum_ns, d);
		ADD(st->gc_minor[lat_bucket(d)], 1);
	} else {
		ADD(st->gc_major_sum_ns, d);
		ADD(st->gc_major[lat_bucket(d)], 1);
	}
	return 0;
}
