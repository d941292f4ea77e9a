// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * node.bpf.c - Node.js runtime: the event loop from epoll syscall
 * tracepoints, garbage collection from uprobes on the node binary (V8 is
 * linked into it).
 *
 * Event loop: libuv's loop thread waits for I/O in epoll_pwait (Node 20),
 * epoll_wait or epoll_pwait2 (other libuv builds) and runs callbacks in
 * between. Time inside the wait is idle, time from one wait's return to
 * the next wait's entry is busy; each busy stretch is one iteration's busy
 * time, which is what users call event-loop lag or blocking. This is
 * Node's own definition (libuv's idle time is measured around epoll_wait,
 * performance.eventLoopUtilization() reads it). A loop that waits several
 * times in one iteration (more events than one epoll_wait returns, EINTR)
 * shows as several shorter busy stretches.
 *
 * Only the main event loop is measured: the thread whose tid is the tgid,
 * of the processes the agent put in node_loops (it recognises node
 * processes at exec and in its /proc scan, and removes them at exit).
 * Every other epoll wait on the host (wrk, nginx, the agent...) costs the
 * tid == tgid compare and, for main threads, one hash lookup. The agent
 * attaches these tracepoints only while a node process is watched, so a
 * host without Node pays nothing, and once every watched loop has waited
 * it keeps only the syscalls they use (waits_seen): Node 20 waits in
 * epoll_pwait, so other programs' epoll_wait (wrk, redis, Java...) stop
 * running a program. Tracepoints, unlike uprobes, do not trap: no
 * breakpoint or single-step on Node's hot path.
 *
 * GC: v8::internal::Heap::CollectGarbage(space, ...) entry to return is a
 * pause; space NEW_SPACE (1) is a scavenge (minor), anything else a
 * mark-compact (major). Nested calls count once. Those run on any thread
 * (the main one, workers) and keep their state per thread.
 */
#include "common.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define KS_NEW_SPACE 1
#define KS_NODE_LOOPS_MAX 4096

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KS_NODE_LOOPS_MAX);
	__type(key, __u32); /* tgid of a node process (filled by the agent) */
	__type(value, struct ks_node_loop);
} node_loops SEC(".maps");

/* The loop state when the caller is the main thread of a node process. */
static __always_inline struct ks_node_loop *main_loop(__u32 *tgid)
{
	__u64 id = bpf_get_current_pid_tgid();

	struct ks_node_loop *l;

	*tgid = id >> 32;
	if ((__u32)id != *tgid)
		return NULL;
	l = bpf_map_lookup_elem(&node_loops, tgid);
	/* An exited process's, kept for its last fold: not a new process
	 * that has its pid. */
	return l && !l->retired ? l : NULL;
}

static __always_inline int wait_enter(__u32 syscall_bit)
{
	struct ks_node_loop *l;
	__u64 now, busy;
	__u32 tgid;

	l = main_loop(&tgid);
	if (!l)
		return 0;
	now = bpf_ktime_get_ns();
	if (l->wait_exit) {
		busy = now - l->wait_exit;
		l->busy_ns += busy;
		l->busy_sum_ns += busy;
		l->busy[lat_bucket(busy)]++;
	}
	l->wait_enter = now;
	if (!(l->waits_seen & syscall_bit))
		l->waits_seen |= syscall_bit;
	return 0;
}

static __always_inline int wait_exit(__u32 syscall_bit)
{
	struct ks_node_loop *l;
	__u64 now;
	__u32 tgid;

	l = main_loop(&tgid);
	if (!l)
		return 0;
	now = bpf_ktime_get_ns();
	/* No entry seen (already waiting when the agent attached): the
	 * wait's length is unknown, only the busy stretch starts here. */
	if (l->wait_enter)
		l->idle_ns += now - l->wait_enter;
	l->wait_enter = 0;
	l->wait_exit = now;
	if (!(l->waits_seen & syscall_bit))
		l->waits_seen |= syscall_bit;
	return 0;
}

/* The agent attaches whichever of these the kernel has. */
SEC("tracepoint/syscalls/sys_enter_epoll_pwait")
int handle_epoll_pwait_enter(void *ctx)
{
	return wait_enter(KS_WAIT_EPOLL_PWAIT);
}

SEC("tracepoint/syscalls/sys_exit_epoll_pwait")
int handle_epoll_pwait_exit(void *ctx)
{
	return wait_exit(KS_WAIT_EPOLL_PWAIT);
}

SEC("tracepoint/syscalls/sys_enter_epoll_wait")
int handle_epoll_wait_enter(void *ctx)
{
	return wait_enter(KS_WAIT_EPOLL_WAIT);
}

SEC("tracepoint/syscalls/sys_exit_epoll_wait")
int handle_epoll_wait_exit(void *ctx)
{
	return wait_exit(KS_WAIT_EPOLL_WAIT);
}

SEC("tracepoint/syscalls/sys_enter_epoll_pwait2")
int handle_epoll_pwait2_enter(void *ctx)
{
	return wait_enter(KS_WAIT_EPOLL_PWAIT2);
}

SEC("tracepoint/syscalls/sys_exit_epoll_pwait2")
int handle_epoll_pwait2_exit(void *ctx)
{
	return wait_exit(KS_WAIT_EPOLL_PWAIT2);
}

/* GC state per thread (V8 collects on workers' heaps too). */
struct gc_thread {
	__u64 gc_start;
	__u32 gc_depth;
	__u32 gc_minor;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32); /* thread id */
	__type(value, struct gc_thread);
} gc_threads SEC(".maps");

static __always_inline struct gc_thread *thread_state(void)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct gc_thread *t, zero = {};

	t = bpf_map_lookup_elem(&gc_threads, &tid);
	if (t)
		return t;
	bpf_map_update_elem(&gc_threads, &tid, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&gc_threads, &tid);
}

/* Heap::CollectGarbage(this, AllocationSpace space, reason, flags) */
SEC("uprobe")
int handle_gc_enter(struct pt_regs *ctx)
{
	struct gc_thread *t = thread_state();

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
	struct gc_thread *t = thread_state();
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
