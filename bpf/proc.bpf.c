// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * proc.bpf.c - process lifecycle: exec, fork (new processes, not threads)
 * and exit, one ring-buffer record each. The agent's process table is seeded
 * from /proc and kept current by these.
 */
#include "common.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct env_scan {
	unsigned long p, end;
	char *out;
	int found;
};

/* One environment string per call (bpf_loop callback). */
static long env_one(__u32 i, struct env_scan *s)
{
	const __u64 *w = (const __u64 *)s->out;
	long n;

	if (s->p >= s->end)
		return 1;
	n = bpf_probe_read_user_str(s->out, KS_ENV_LEN, (const void *)s->p);
	if (n <= 0)
		return 1;
	/* "OTEL_SER" "VICE_NAM" "E=" as little-endian words */
	if (n > 18 && w[0] == 0x5245535f4c45544fULL &&
	    w[1] == 0x4d414e5f45434956ULL && s->out[16] == 'E' &&
	    s->out[17] == '=') {
		s->found = 1;
		return 1;
	}
	s->p += n;
	return 0;
}

static __always_inline void read_service_env(struct task_struct *task,
					     char *out)
{
	struct env_scan s = {};

	s.p = BPF_CORE_READ(task, mm, env_start);
	s.end = BPF_CORE_READ(task, mm, env_end);
	s.out = out;
	bpf_loop(512, env_one, &s, 0);
	if (!s.found)
		out[0] = '\0';
}

SEC("tracepoint/sched/sched_process_exec")
int handle_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct ks_exec_event *e;
	unsigned int off;

	e = reserve_event(sizeof(*e));
	if (!e)
		return 0;
	e->hdr.type = KS_EV_EXEC;
	e->hdr.pid = bpf_get_current_pid_tgid() >> 32;
	e->hdr.ts_ns = bpf_ktime_get_ns();
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->pad = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	off = ctx->__data_loc_filename & 0xFFFF;
	bpf_probe_read_kernel_str(e->filename, sizeof(e->filename),
				  (void *)ctx + off);
	read_service_env(task, e->service_env);
	submit_event(e);
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int handle_exit(struct trace_event_raw_sched_process_template *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct ks_exit_event *e;

	/* Only the thread-group leader's exit ends a process. */
	if ((__u32)id != (__u32)(id >> 32))
		return 0;
	e = reserve_event(sizeof(*e));
	if (!e)
		return 0;
	e->hdr.type = KS_EV_EXIT;
	e->hdr.pid = id >> 32;
	e->hdr.ts_ns = bpf_ktime_get_ns();
	submit_event(e);
	return 0;
}

/* Raw tracepoint: the plain one gives thread ids only, and thread creation
 * must not look like a new process. args: (parent, child). */
SEC("raw_tp/sched_process_fork")
int handle_fork(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *parent = (struct task_struct *)ctx->args[0];
	struct task_struct *child = (struct task_struct *)ctx->args[1];
	struct ks_fork_event *e;
	__u32 pid, tgid;

	pid = BPF_CORE_READ(child, pid);
	tgid = BPF_CORE_READ(child, tgid);
	if (pid != tgid || (BPF_CORE_READ(child, flags) & KS_PF_KTHREAD))
		return 0;
	e = reserve_event(sizeof(*e));
	if (!e)
		return 0;
	e->hdr.type = KS_EV_FORK;
	e->hdr.pid = tgid;
	e->hdr.ts_ns = bpf_ktime_get_ns();
	e->parent_pid = BPF_CORE_READ(parent, tgid);
	e->pad = 0;
	BPF_CORE_READ_STR_INTO(&e->comm, parent, comm);
	submit_event(e);
	return 0;
}
