/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * common.bpf.h - maps and helpers every katascope BPF object shares.
 *
 * Each probe family is its own object (and skeleton) so that one family
 * failing to load or attach leaves the others working. The maps declared
 * here exist in every object; the agent loads the first object and makes
 * the later ones reuse its map fds (bpf_map__reuse_fd), so there is one
 * ring buffer, one pid_stats table and one drop counter in the kernel.
 */
#ifndef KS_COMMON_BPF_H
#define KS_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "katascope.h"

/* Typed (probe-memory) loads through a pointer the verifier does not
 * know: cheaper than a bpf_probe_read_kernel per field. */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

#define KS_PID_STATS_MAX 16384
#define KS_PF_KTHREAD 0x00200000

/* The agent's own tgid: its traffic and CPU are not a monitored service's. */
const volatile __u32 self_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22); /* 4 MiB */
} events SEC(".maps");

/* One slot per process, shared by all CPUs (updated with atomic adds) and
 * allocated on use: its size does not grow with the CPU count. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KS_PID_STATS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct ks_pid_stats);
} pid_stats SEC(".maps");

#define ADD(field, v) __sync_fetch_and_add(&(field), (v))

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KS_DROP_MAX);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

static __always_inline void count_drop(__u32 reason)
{
	__u64 *v = bpf_map_lookup_elem(&drops, &reason);

	if (v)
		(*v)++;
}

/* The stats slot of a process, created on first use. */
static __always_inline struct ks_pid_stats *pid_stats_of(__u32 tgid)
{
	static const struct ks_pid_stats zero = {};
	struct ks_pid_stats *st;

	st = bpf_map_lookup_elem(&pid_stats, &tgid);
	if (st)
		return st;
	if (bpf_map_update_elem(&pid_stats, &tgid, &zero, BPF_NOEXIST) &&
	    bpf_map_lookup_elem(&pid_stats, &tgid) == NULL) {
		count_drop(KS_DROP_PIDSTATS_FULL);
		return NULL;
	}
	return bpf_map_lookup_elem(&pid_stats, &tgid);
}

/* The bucket of ns among n ascending bounds: the first bound >= ns, or n
 * (+Inf). n is a constant where it is inlined, so the loop unrolls. */
static __always_inline __u32 bucket_of(__u64 ns, const __u64 *bounds,
				       __u32 n)
{
	__u32 i;

#pragma unroll
	for (i = 0; i < n; i++)
		if (ns <= bounds[i])
			return i;
	return n;
}

static __always_inline __u32 lat_bucket(__u64 ns)
{
	static const __u64 bounds[KS_LAT_BUCKETS - 1] = KS_LAT_BOUNDS_NS;

	return bucket_of(ns, bounds, KS_LAT_BUCKETS - 1);
}

/*
 * Submit without waking the agent: a wakeup is an interrupt to the CPU the
 * agent sleeps on (measured: most of a close record's cost on a VM). The
 * agent drains the ring every 50 ms anyway; it is woken early only when
 * a burst has filled KS_WAKEUP_BYTES of the ring.
 */
#define KS_WAKEUP_BYTES (512 * 1024)

static __always_inline void submit_event(void *e)
{
	__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);

	bpf_ringbuf_submit(e, avail >= KS_WAKEUP_BYTES ? BPF_RB_FORCE_WAKEUP :
							 BPF_RB_NO_WAKEUP);
}

static __always_inline void *reserve_event(__u64 size)
{
	void *e = bpf_ringbuf_reserve(&events, size, 0);

	if (!e)
		count_drop(KS_DROP_RINGBUF);
	return e;
}

#endif
