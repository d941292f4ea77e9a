// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * profile.bpf.c - CPU and off-CPU stack sampling.
 *
 * On-CPU: a perf_event program on each CPU's software cpu-clock (there is
 * no hardware PMU here) at the agent's frequency counts one sample per
 * (process, user stack id, kernel stack id). Nothing goes through the ring
 * buffer; the agent reads and clears the counts.
 *
 * Off-CPU: attached only while someone asked for an off-CPU profile (it
 * takes two stack walks per context switch). When a thread leaves the CPU
 * its stacks and the time are remembered; when it comes back the time it
 * waited is added to (process, stacks).
 */
#include "common.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define KS_STACKS_MAX 8192
#define KS_SAMPLES_MAX 16384

/* Only this process (0: all); set when the agent profiles one pid only. */
const volatile __u32 target_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, KS_STACKS_MAX);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, KS_STACK_DEPTH * sizeof(__u64));
} stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024); /* the agent sizes it: cpu_samples_entries */
	__type(key, struct ks_stack_key);
	__type(value, __u64);
} cpu_samples SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KS_SAMPLES_MAX);
	__type(key, struct ks_stack_key);
	__type(value, __u64);
} offcpu_ns SEC(".maps");

struct offcpu_start {
	__u64 ts;
	struct ks_stack_key key;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 32768);
	__type(key, __u32); /* thread id */
	__type(value, struct offcpu_start);
} offcpu_since SEC(".maps");

static __always_inline void add(void *map, struct ks_stack_key *k, __u64 v)
{
	__u64 *cnt = bpf_map_lookup_elem(map, k);

	if (cnt) {
		__sync_fetch_and_add(cnt, v);
		return;
	}
	if (bpf_map_update_elem(map, k, &v, BPF_NOEXIST)) {
		cnt = bpf_map_lookup_elem(map, k);
		if (cnt)
			__sync_fetch_and_add(cnt, v);
		else
			count_drop(KS_DROP_SAMPLES_FULL);
	}
}

static __always_inline int take_stacks(void *ctx, struct ks_stack_key *k,
				       int user)
{
	k->kern_stack = bpf_get_stackid(ctx, &stacks, 0);
	k->user_stack = user ? bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK) :
			       -1;
	if ((user && k->user_stack < 0 && k->user_stack != -14 /* -EFAULT: no user stack */) ||
	    (k->kern_stack < 0 && k->kern_stack != -14))
		count_drop(KS_DROP_STACK_COLLISION);
	return k->user_stack >= 0 || k->kern_stack >= 0;
}

SEC("perf_event")
int handle_cpu_sample(struct bpf_perf_event_data *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct ks_stack_key k = {};
	__u32 tgid = id >> 32;

	if (!tgid || tgid == self_tgid) /* idle, or the agent itself */
		return 0;
	if (target_tgid && tgid != target_tgid)
		return 0;
	k.pid = tgid;
	take_stacks(ctx, &k, 1);
	add(&cpu_samples, &k, 1);
	return 0;
}

/* args: (bool preempt, struct task_struct *prev, struct task_struct *next) */
SEC("raw_tp/sched_switch")
int handle_offcpu_switch(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *prev = (struct task_struct *)ctx->args[1];
	struct task_struct *next = (struct task_struct *)ctx->args[2];
	struct offcpu_start st = {}, *since;
	__u64 now = bpf_ktime_get_ns();
	__u32 tgid, tid;

	/* The thread leaving: `current` is still prev, so its stacks. */
	tgid = BPF_CORE_READ(prev, tgid);
	if (tgid && tgid != self_tgid &&
	    !(BPF_CORE_READ(prev, flags) & KS_PF_KTHREAD) &&
	    (!target_tgid || tgid == target_tgid)) {
		tid = BPF_CORE_READ(prev, pid);
		st.ts = now;
		st.key.pid = tgid;
		if (take_stacks(ctx, &st.key, 1))
			bpf_map_update_elem(&offcpu_since, &tid, &st, BPF_ANY);
	}
	tid = BPF_CORE_READ(next, pid);
	since = bpf_map_lookup_elem(&offcpu_since, &tid);
	if (!since)
		return 0;
	st.key = since->key;
	now -= since->ts;
	bpf_map_delete_elem(&offcpu_since, &tid);
	add(&offcpu_ns, &st.key, now);
	return 0;
}
