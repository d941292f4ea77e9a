// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * pgusdt.bpf.c - PostgreSQL server internals from its USDT probes.
 *
 * Attached to the postgres binary for all its processes (libbpf sets the
 * probes' semaphores through the kernel's uprobe reference counters). A
 * backend runs one statement at a time, so per-thread state is enough:
 * query__start remembers the time, the parse/plan/execute probes add up
 * their phases, query__done sends one record with the statement text.
 * Lock waits and checkpoints send one record each; commits, aborts,
 * buffer hits/reads and deadlocks are counted in the process's pid_stats
 * slot. The first statement of a backend also sends its process title,
 * from which the agent learns the backend's database.
 *
 * checkpoint__done is attached as a plain uprobe at the probe's address
 * (found in the ELF notes by the agent): libbpf cannot parse its
 * RIP-relative argument specs, and a duration needs none of them.
 */
#include "common.bpf.h"
#include <bpf/usdt.bpf.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct backend {
	__u64 start, phase_start, lock_start;
	__u64 parse, plan, execute;
	__u64 born; /* task start time of the backend its title was sent for */
	__u64 ckpt_start;
	__u32 ckpt_flags;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32); /* thread id */
	__type(value, struct backend);
} backends SEC(".maps");

static __always_inline struct backend *backend_of(int create)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct backend *b, zero = {};

	b = bpf_map_lookup_elem(&backends, &tid);
	if (b || !create)
		return b;
	bpf_map_update_elem(&backends, &tid, &zero, BPF_ANY);
	return bpf_map_lookup_elem(&backends, &tid);
}

/* A record of kind k with room for size bytes, header filled. */
static __always_inline struct ks_pg_event *pg_event(__u32 kind, __u64 size)
{
	struct ks_pg_event *e = reserve_event(size);

	if (!e)
		return NULL;
	e->hdr.type = KS_EV_PG;
	e->hdr.pid = bpf_get_current_pid_tgid() >> 32;
	e->hdr.ts_ns = bpf_ktime_get_ns();
	e->kind = kind;
	e->len = e->flags = e->pad = 0;
	e->duration_ns = e->parse_ns = e->plan_ns = e->execute_ns = 0;
	return e;
}

/*
 * Once per backend process (a pid reused by a new backend has another
 * start time): its title, "postgres: USER DB HOST(PORT) ...", read from
 * the argv area that PostgreSQL overwrites with it.
 */
static __always_inline void announce_backend(struct backend *b)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	__u64 born = BPF_CORE_READ(t, start_time);
	unsigned long arg = BPF_CORE_READ(t, mm, arg_start);
	struct ks_pg_event *e;
	long n;

	if (b->born == born)
		return;
	e = pg_event(KS_PG_BACKEND, sizeof(*e));
	if (!e)
		return;
	n = bpf_probe_read_user_str(e->data, sizeof(e->data), (void *)arg);
	e->len = n > 0 ? (__u32)n - 1 : 0;
	b->born = born;
	submit_event(e);
}

SEC("usdt")
int BPF_USDT(handle_pg_query_start, const char *query)
{
	struct backend *b = backend_of(1);

	if (!b)
		return 0;
	announce_backend(b);
	b->start = bpf_ktime_get_ns();
	b->parse = b->plan = b->execute = 0;
	return 0;
}

SEC("usdt")
int BPF_USDT(handle_pg_query_done, const char *query)
{
	struct backend *b = backend_of(0);
	struct ks_pg_event *e;
	long n;

	if (!b || !b->start)
		return 0;
	e = pg_event(KS_PG_STATEMENT, sizeof(*e));
	if (!e)
		return 0;
	e->duration_ns = e->hdr.ts_ns - b->start;
	e->parse_ns = b->parse;
	e->plan_ns = b->plan;
	e->execute_ns = b->execute;
	n = bpf_probe_read_user_str(e->data, sizeof(e->data), query);
	e->len = n > 0 ? (__u32)n - 1 : 0;
	b->start = 0;
	submit_event(e);
	return 0;
}

static __always_inline int phase_start(void)
{
	struct backend *b = backend_of(0);

	if (b)
		b->phase_start = bpf_ktime_get_ns();
	return 0;
}

#define PHASE_DONE(field)                                                      \
	do {                                                                   \
		struct backend *b = backend_of(0);                             \
                                                                               \
		if (b && b->phase_start) {                                     \
			b->field += bpf_ktime_get_ns() - b->phase_start;       \
			b->phase_start = 0;                                    \
		}                                                              \
		return 0;                                                      \
	} while (0)

SEC("usdt")
int BPF_USDT(handle_pg_parse_start)
{
	return phase_start();
}

SEC("usdt")
int BPF_USDT(handle_pg_parse_done)
{
	PHASE_DONE(parse);
}

SEC("usdt")
int BPF_USDT(handle_pg_plan_start)
{
	return phase_start();
}

SEC("usdt")
int BPF_USDT(handle_pg_plan_done)
{
	PHASE_DONE(plan);
}

SEC("usdt")
int BPF_USDT(handle_pg_execute_start)
{
	return phase_start();
}

SEC("usdt")
int BPF_USDT(handle_pg_execute_done)
{
	PHASE_DONE(execute);
}

SEC("usdt")
int BPF_USDT(handle_pg_lock_wait_start)
{
	struct backend *b = backend_of(1);

	if (b)
		b->lock_start = bpf_ktime_get_ns();
	return 0;
}

SEC("usdt")
int BPF_USDT(handle_pg_lock_wait_done)
{
	struct backend *b = backend_of(0);
	struct ks_pg_event *e;

	if (!b || !b->lock_start)
		return 0;
	e = pg_event(KS_PG_LOCK_WAIT, offsetof(struct ks_pg_event, data));
	if (!e)
		return 0;
	e->duration_ns = e->hdr.ts_ns - b->lock_start;
	b->lock_start = 0;
	submit_event(e);
	return 0;
}

/* CreateCheckPoint(), in the checkpointer (or a standalone backend). */
SEC("usdt")
int BPF_USDT(handle_pg_checkpoint_start, int flags)
{
	struct backend *b = backend_of(1);

	if (b) {
		b->ckpt_start = bpf_ktime_get_ns();
		b->ckpt_flags = (__u32)flags;
	}
	return 0;
}

SEC("uprobe")
int handle_pg_checkpoint_done(struct pt_regs *ctx)
{
	struct backend *b = backend_of(0);
	struct ks_pg_event *e;

	if (!b || !b->ckpt_start)
		return 0;
	e = pg_event(KS_PG_CHECKPOINT, offsetof(struct ks_pg_event, data));
	if (!e)
		return 0;
	e->duration_ns = e->hdr.ts_ns - b->ckpt_start;
	e->flags = b->ckpt_flags;
	b->ckpt_start = 0;
	submit_event(e);
	return 0;
}

static __always_inline struct ks_pid_stats *my_stats(void)
{
	return pid_stats_of(bpf_get_current_pid_tgid() >> 32);
}

SEC("usdt")
int BPF_USDT(handle_pg_commit)
{
	struct ks_pid_stats *st = my_stats();

	if (st)
		ADD(st->pg_commits, 1);
	return 0;
}

SEC("usdt")
int BPF_USDT(handle_pg_abort)
{
	struct ks_pid_stats *st = my_stats();

	if (st)
		ADD(st->pg_aborts, 1);
	return 0;
}

SEC("usdt")
int BPF_USDT(handle_pg_deadlock)
{
	struct ks_pid_stats *st = my_stats();

	if (st)
		ADD(st->pg_deadlocks, 1);
	return 0;
}

/* PostgreSQL 15: buffer__read__done(fork, block, spc, db, rel, backend,
 * isExtend, found): only found, the 8th argument, is fetched (BPF_USDT
 * would fetch all eight, each a spec lookup: measured 1193 ns per run). */
SEC("usdt")
int handle_pg_buffer_read_done(struct pt_regs *ctx)
{
	struct ks_pid_stats *st;
	long found;

	if (bpf_usdt_arg(ctx, 7, &found))
		return 0;
	st = my_stats();
	if (!st)
		return 0;
	if (found & 0xff)
		ADD(st->pg_buf_hits, 1);
	else
		ADD(st->pg_buf_reads, 1);
	return 0;
}
