/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * katascope.h - the one ABI between the BPF programs and the agent.
 *
 * Records that cross the ring buffer and the values of the maps that user
 * space reads are defined here and nowhere else. The file is included by
 * the bpf/ programs (with vmlinux.h already in scope) and by agent/ (with the
 * standard integer types), so it uses only fixed-width types.
 */
#ifndef KATASCOPE_ABI_H
#define KATASCOPE_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define KS_COMM_LEN 16
#define KS_PATH_LEN 256

/*
 * Latency buckets computed in the kernel. Upper bounds in nanoseconds; a
 * value lands in the first bucket whose bound is >= it, the last bucket is
 * +Inf. The agent exposes the same bounds in seconds.
 */
#define KS_LAT_BUCKETS 16
#define KS_LAT_BOUNDS_NS                                                       \
	{ 10000ULL, 50000ULL, 100000ULL, 250000ULL, 500000ULL, 1000000ULL,     \
	  2500000ULL, 5000000ULL, 10000000ULL, 25000000ULL, 50000000ULL,       \
	  100000000ULL, 250000000ULL, 500000000ULL, 1000000000ULL }

enum ks_event_type {
	KS_EV_EXEC = 1,
	KS_EV_EXIT = 2,
	KS_EV_FORK = 3,
	KS_EV_TCP_CLOSE = 4,
	KS_EV_L7 = 5,
	KS_EV_PG = 6,
};

struct ks_event_hdr {
	__u32 type;
	__u32 pid; /* tgid */
	__u64 ts_ns; /* bpf_ktime_get_ns() */
};

#define KS_ENV_LEN 128

struct ks_exec_event {
	struct ks_event_hdr hdr;
	__u32 ppid;
	__u32 pad;
	char comm[KS_COMM_LEN];
	char filename[KS_PATH_LEN];
	/* "OTEL_SERVICE_NAME=value" from the new program's environment, read
	 * at exec time ("" if absent): a process that exits before the agent
	 * reads /proc is still named right. */
	char service_env[KS_ENV_LEN];
};

struct ks_exit_event {
	struct ks_event_hdr hdr;
};

struct ks_fork_event {
	struct ks_event_hdr hdr; /* hdr.pid is the child */
	__u32 parent_pid;
	__u32 pad;
	char comm[KS_COMM_LEN];
};

enum ks_tcp_dir {
	KS_TCP_ACTIVE = 1, /* we connected */
	KS_TCP_PASSIVE = 2, /* we accepted */
};

struct ks_tcp_close_event {
	struct ks_event_hdr hdr;
	__u64 bytes_sent; /* payload bytes sent, retransmissions not counted */
	__u64 bytes_received; /* payload bytes received */
	__u64 duration_ns; /* first sight to close */
	__u32 srtt_us; /* smoothed RTT at close */
	__u32 total_retrans;
	__u16 family; /* AF_INET / AF_INET6 */
	__u16 sport; /* host order */
	__u16 dport; /* host order */
	__u8 dir; /* enum ks_tcp_dir */
	__u8 established; /* 0: never reached ESTABLISHED */
	__u8 saddr[16];
	__u8 daddr[16];
};

/*
 * L7 exchanges seen on socket syscalls. The kernel finds where an HTTP
 * request starts (first read of a request line on an idle connection) and
 * where its response ends: the last byte written (server) or read (client)
 * before the next request, the close, or a second of silence (the idle
 * sweep); a body-less response (101, 204, 304, HEAD) ends with its head.
 * At most one record per exchange, its end, carrying the request's first
 * bytes (two with split records: the request's first, see KS_L7_F_HEAD);
 * none for a plain HTTP exchange the kernel counts itself (see "HTTP
 * exchanges counted in the kernel" below).
 */
#define KS_L7_DATA 256

enum ks_l7_kind {
	KS_L7_HTTP_REQUEST = 1, /* server read a request; data: its head
				 * (only with split records, see below) */
	KS_L7_HTTP_DONE = 2, /* server's response complete; data: see
			      * KS_L7_F_HEAD */
	KS_L7_HTTP_ABORTED = 3, /* closed with a request unanswered */
	KS_L7_CLIENT_REQUEST = 4, /* client wrote a request; data: its head */
	KS_L7_CLIENT_DONE = 5, /* client read the whole answer; data: see
				* ks_l7_proto */
	KS_L7_CLIENT_ABORTED = 6, /* client closed before the answer ended */
};

/*
 * Client protocols, decided from the first bytes the client writes. In a
 * CLIENT_DONE record the data is: HTTP nothing (status is parsed in the
 * kernel); PG the last bytes of the final read (an ErrorResponse sits right
 * before ReadyForQuery). Redis is a stream: every write of commands is a
 * CLIENT_REQUEST and every read of replies a CLIENT_DONE with the read's
 * first bytes; user space matches replies to commands in order.
 */
enum ks_l7_proto {
	KS_PROTO_HTTP = 1,
	KS_PROTO_PG = 2,
	KS_PROTO_REDIS = 3,
};

#define KS_L7_F_END_IDLE 0x1 /* ended by the idle sweep (no next request
			    * or close came within a second) */
#define KS_L7_F_TLS 0x2 /* plaintext of a TLS connection (SSL_read/write) */
/*
 * The request's bytes ride on the record that ends its exchange: one
 * record per exchange instead of two. Server DONE/ABORTED: data holds what
 * the read that started the exchange returned (as a REQUEST record would);
 * the exchanges after it that the same read pipelined carry no data. HTTP
 * client DONE/ABORTED: data holds the request's first 8 bytes (its
 * method). Without this flag on such a record (split records: --traces,
 * whose spans need to know a request when it starts), a REQUEST record
 * came first.
 */
#define KS_L7_F_HEAD 0x4

struct ks_l7_event {
	struct ks_event_hdr hdr; /* hdr.ts_ns: when the record was made */
	__u64 conn_id; /* tgid << 32 | fd */
	__u64 start_ns; /* server: first request byte read; client: first
			 * request byte written */
	__u64 end_ns; /* server: last response byte written; client: last
		       * answer byte read */
	__u32 kind; /* enum ks_l7_kind */
	__u16 status; /* HTTP status code (DONE) */
	__u16 lport; /* local port of the socket */
	__u16 rport; /* remote port */
	__u8 proto; /* enum ks_l7_proto, client records */
	__u8 family; /* AF_INET / AF_INET6 of raddr */
	__u32 flags;
	__u8 raddr[16]; /* remote address */
	union {
		__u8 sqlstate[8]; /* PG: SQLSTATE of an ErrorResponse that
				   * began a read of the answer ("" if
				   * none) */
		struct {
			/* Server DONE with KS_L7_F_HEAD: 1 + the slot of
			 * http_tab this record's exchange claimed for
			 * its label set (0: none). The request it carries
			 * names the slot's route; the slot counts the label
			 * set's later exchanges, not this one. */
			__u32 slot;
			__u32 pad;
		} srv;
	};
	__u32 len; /* bytes valid in data */
	__u32 total_len; /* bytes the syscall moved (data holds len of them) */
	__u8 data[KS_L7_DATA];
};

/*
 * HTTP exchanges counted in the kernel (l7.bpf.c's http_tab, below):
 * without split records, the end of a plain HTTP client exchange adds to
 * its label set's histogram instead of making a ring record (when the
 * label set finds no slot it makes one). So does the end of a plain HTTP
 * server exchange whose label set has a slot already: a server label set
 * is named by a route key the kernel computes from the request line (the
 * method, and the target's path with every all-digit segment taken as
 * one), and the agent learns which route a key is from the record of the
 * exchange that claimed the slot (ks_l7_event.srv.slot). Paths that need
 * more (longer than 128 bytes, cut by the capture, a request line the
 * agent would refuse) and exchanges that may share their read with
 * pipelined requests go by record. The buckets are
 * http_{client,server}_request_duration_seconds's, in ns: an exchange goes
 * into the first whose bound is >= its duration, the last is +Inf.
 * Counters only grow while their slot is held; the agent folds their
 * growth.
 */
#define KS_HTTP_BUCKETS 15
#define KS_HTTP_BOUNDS_NS                                                  \
	{ 5000000ULL,	10000000ULL,   25000000ULL,   50000000ULL,            \
	  75000000ULL,	100000000ULL,  250000000ULL,  500000000ULL,           \
	  750000000ULL, 1000000000ULL, 2500000000ULL, 5000000000ULL,          \
	  7500000000ULL, 10000000000ULL }

#define KS_HTTP_KEY_SERVER 0xff /* ks_http_key.family of a server's */

/* A label set; w is the same bytes as five words, hashed and compared
 * with five loads (pad is zero). A client's, or with family
 * KS_HTTP_KEY_SERVER a server's: rport is then the local port and raddr
 * the route key (a 64-bit hash, then zeros). */
struct ks_http_key {
	union {
		struct {
			__u32 tgid;
			__u16 rport; /* server port */
			__u16 status; /* HTTP status code */
			__u8 family; /* AF_INET / AF_INET6 of raddr */
			__u8 pad[7];
			__u8 raddr[16]; /* server address */
			__u8 method[8]; /* the request's method, zero-padded */
		};
		__u64 w[5];
	};
};

/* The first 8 bytes of a request line (little-endian) cut before the
 * space that ends its method: "GET /use" -> "GET" (a key's method). */
static inline __u64 ks_method_word(__u64 w)
{
	__u64 t = w ^ 0x2020202020202020ULL;
	__u64 z = (t - 0x0101010101010101ULL) & ~t & 0x8080808080808080ULL;

	/* z's lowest set bit is the high bit of the first space byte. */
	return z ? w & (((z & -z) >> 7) - 1) : w;
}

struct ks_http_val {
	__u64 count;
	__u64 sum_ns;
	__u64 bucket[KS_HTTP_BUCKETS];
};

/*
 * http_tab: an array of KS_HTTP_SLOTS slots, a label set's home
 * slot picked by a multiplicative hash of its key, open addressing over
 * KS_HTTP_PROBE slots from there. An exchange adds to the slot whose
 * owner is its tgid and whose key is its label set; the lookups are an
 * index and a bounds check each, which the verifier inlines (a hash map
 * lookup is a chain of calls, per exchange). A new label set claims the
 * first free slot of its probe with a cmpxchg (owner 0 -> CLAIMED), writes
 * the key and then publishes it with a second cmpxchg (CLAIMED -> tgid), a
 * full barrier: an exchange that reads the owner and then the key never
 * matches a key half written. A label set that finds neither its slot nor
 * a free one, or loses the race for a free one, goes by ring record. Two
 * CPUs may thus leave one label set in two slots: the agent folds each
 * slot on its own, into the same series.
 *
 * The agent maps the array (BPF_F_MMAPABLE), folds each held slot's growth
 * since its last fold every 500 ms (after the idle sweep), and frees the
 * slots of processes that are unknown, not monitored or exited in two
 * steps: it sets KS_HTTP_DEAD in owner (no exchange matches or claims
 * the slot from then on), and at the next fold, long after any exchange
 * that matched the slot before has ended, zeroes the counters, the key and
 * then owner.
 * A pid used again never finds the old process's counts.
 */
#define KS_HTTP_SLOT_BITS 13
#define KS_HTTP_SLOTS (1u << KS_HTTP_SLOT_BITS)
#define KS_HTTP_PROBE 4
#define KS_HTTP_CLAIMED (1ULL << 32) /* not a tgid: key being written */
#define KS_HTTP_DEAD (1ULL << 33)

/* Which slots of http_tab have been published (bit i: slot i), in the
 * one value of http_tab_used: the agent visits those, not all 8192 (a
 * full scan every 500 ms was a tenth of the idle agent's CPU). The kernel
 * sets a slot's bit after publishing it; the agent clears it before it
 * frees the slot, so a slot claimed again always ends with its bit set. */
struct ks_http_used {
	__u64 w[KS_HTTP_SLOTS / 64];
};

struct ks_http_slot {
	__u64 owner; /* 0: free; CLAIMED; the tgid of key once published,
		      * | KS_HTTP_DEAD once released (64 bits: the BPF
		      * cmpxchg of older compilers) */
	struct ks_http_key key;
	struct ks_http_val val;
};

/* The home slot of k: each word mixed in by a multiply, the top bits. */
static inline __u32 ks_http_slot_of(const struct ks_http_key *k)
{
	__u64 h = 0;
	int i;

	for (i = 0; i < 5; i++)
		h = (h ^ k->w[i]) * 0x9e3779b97f4a7c15ULL;
	return (__u32)(h >> (64 - KS_HTTP_SLOT_BITS));
}

/*
 * A process's scheduler figures (sched.bpf.c). They live in its sched_tab
 * slot (below), or in its ks_pid_stats while another live process holds
 * that slot; the agent adds the two.
 */
struct ks_sched_stats {
	__u64 oncpu_ns;
	__u64 runq_lat_sum_ns;
	__u64 runq_lat[KS_LAT_BUCKETS];
};

/*
 * Per-process counters, one entry per tgid in a hash map updated with
 * atomic adds. Kept in the kernel so that no per-packet or per-switch
 * event reaches user space.
 */
struct ks_pid_stats {
	__u64 tcp_active_opens;
	__u64 tcp_passive_opens;
	__u64 tcp_failed_connects;
	__u64 tcp_retransmits;
	__u64 connect_lat_sum_ns;
	__u64 connect_lat[KS_LAT_BUCKETS];
	struct ks_sched_stats sched; /* see ks_sched_stats */
	/* PostgreSQL server processes (USDT) */
	__u64 pg_commits;
	__u64 pg_aborts;
	__u64 pg_buf_hits; /* buffer__read__done with found */
	__u64 pg_buf_reads; /* ... not found: read from disk/OS cache */
	__u64 pg_deadlocks;
	/* Node.js: main event loop (epoll syscall tracepoints; kept in
	 * ks_node_loop while the process is watched, copied here by the
	 * agent), GC (uprobes on V8) */
	__u64 loop_busy_ns; /* main thread outside the epoll wait */
	__u64 loop_idle_ns; /* ... inside it (waiting for I/O) */
	__u64 loop_busy_sum_ns;
	__u64 loop_busy[KS_LAT_BUCKETS]; /* busy time per loop iteration: a
					  * wait's return to the next entry */
	__u64 gc_minor_sum_ns;
	__u64 gc_minor[KS_LAT_BUCKETS]; /* scavenges */
	__u64 gc_major_sum_ns;
	__u64 gc_major[KS_LAT_BUCKETS]; /* mark-compact */
};

/*
 * sched.bpf.c's sched_tab: a direct-mapped array of KS_SCHED_SLOTS slots,
 * a process's slot picked by a multiplicative hash of its tgid. The
 * context-switch program claims a free slot (tgid 0) with a cmpxchg and
 * adds to the slot holding its tgid; the lookup is an index and a compare,
 * which the verifier inlines (a hash map lookup is a chain of calls, on
 * every switch). When the slot is held by another live process the
 * figures go to the process's ks_pid_stats instead.
 *
 * The agent maps the array (BPF_F_MMAPABLE), reads a slot's figures with
 * the process's ks_pid_stats, and frees it in two steps once it has
 * folded the process's last figures: it sets KS_SCHED_DEAD in tgid (no
 * switch matches or claims the slot from then on), and at the next
 * refresh, long after any switch that matched the slot before has ended,
 * zeroes the figures and then tgid. A pid used again never finds the old
 * process's figures.
 */
#define KS_SCHED_SLOT_BITS 13
#define KS_SCHED_SLOTS (1u << KS_SCHED_SLOT_BITS)
#define KS_SCHED_DEAD 0x80000000ULL /* tgids are < 2^22 (PID_MAX_LIMIT) */

struct ks_sched_slot {
	__u64 tgid; /* 0: free; the owner, | KS_SCHED_DEAD once released
		     * (64 bits: the BPF cmpxchg of older compilers) */
	struct ks_sched_stats st;
};

/* Fibonacci hashing: the top bits of tgid * 2^32 / phi. */
static inline __u32 ks_sched_slot_of(__u32 tgid)
{
	return (tgid * 2654435769u) >> (32 - KS_SCHED_SLOT_BITS);
}

/*
 * The value of node.bpf.c's node_loops map, keyed by the tgid of a node
 * process: its main thread's epoll wait state and the loop's counters
 * (written by that thread only, so without atomics or a pid_stats lookup
 * per wait). The agent inserts it zeroed when it sees a node process,
 * reads the counters with the process's ks_pid_stats, copies them there
 * and deletes the entry when the process exits or stops being node; it
 * reads waits_seen to detach the tracepoints of the wait syscalls no
 * watched loop uses.
 */
struct ks_node_loop {
	__u64 wait_enter; /* 0 when not inside an epoll wait */
	__u64 wait_exit; /* last return from one; 0 before the first seen */
	__u32 waits_seen; /* KS_WAIT_* bits: the wait syscalls it used */
	__u32 retired; /* set by the agent: the process exited, its last
			* counters wait here for their last fold */
	__u64 busy_ns; /* as ks_pid_stats.loop_busy_ns ... */
	__u64 idle_ns;
	__u64 busy_sum_ns;
	__u64 busy[KS_LAT_BUCKETS];
};

/* The epoll wait syscalls, as bits (ks_node_loop.waits_seen). */
enum {
	KS_WAIT_EPOLL_PWAIT = 1,
	KS_WAIT_EPOLL_WAIT = 2,
	KS_WAIT_EPOLL_PWAIT2 = 4,
	KS_WAIT_ALL = 7,
};

/*
 * PostgreSQL server-side events from its USDT probes: one record per
 * statement (query__start to query__done, with the time spent in parse,
 * plan and execute inside it), one per lock wait, one per checkpoint, and
 * one when a backend runs its first statement seen (its process title,
 * which names its database). Counters (commits, buffer hits) stay in
 * pid_stats.
 */
enum ks_pg_kind {
	KS_PG_STATEMENT = 1,
	KS_PG_LOCK_WAIT = 2,
	KS_PG_CHECKPOINT = 3, /* flags: checkpoint__start's flags argument */
	KS_PG_BACKEND = 4, /* data: the process title (argv area) */
};

struct ks_pg_event {
	struct ks_event_hdr hdr;
	__u32 kind;
	__u32 len; /* bytes of text in data */
	__u32 flags;
	__u32 pad;
	__u64 duration_ns;
	__u64 parse_ns, plan_ns, execute_ns;
	__u8 data[KS_L7_DATA]; /* the statement's (title's) first bytes */
};

/*
 * CPU profile: the kernel counts samples per (process, user stack, kernel
 * stack) in `cpu_samples`; the stacks themselves are in a stack-trace map.
 * Off-CPU time (while a thread waits) is summed in `offcpu_ns` the same way.
 * The agent reads and clears both.
 */
#define KS_STACK_DEPTH 127

struct ks_stack_key {
	__u32 pid; /* tgid */
	__s32 user_stack; /* stack id, or < 0 when it could not be taken */
	__s32 kern_stack;
	__u32 pad;
};

/* Self-accounting, one slot per reason in a per-CPU array. */
enum ks_drop_reason {
	KS_DROP_RINGBUF = 0, /* ring buffer full: record lost */
	KS_DROP_PIDSTATS_FULL, /* pid_stats map full */
	KS_DROP_SOCKS_FULL, /* socks map full */
	KS_DROP_L7_CONNS_FULL, /* l7 conns map full */
	KS_DROP_STACK_COLLISION, /* stack id not taken (hash collision, full) */
	KS_DROP_SAMPLES_FULL, /* cpu_samples / offcpu_ns map full */
	KS_DROP_L7_HEAD_REUSED, /* a request head's slot was taken by another
				 * connection before its exchange ended */
	KS_DROP_L7_RESP_CUT, /* an HTTP response went on after the idle sweep
			      * had ended its exchange (a pause > 1 s) */
	KS_DROP_HTTP_CLI_FULL, /* an HTTP client exchange went by ring record:
				* its label set found no slot in
				* http_tab (counted all the same) */
	KS_DROP_HTTP_SRV_FULL, /* an HTTP server label set found no slot in
				* http_tab: its exchanges go by ring
				* record (counted all the same) */
	KS_DROP_MAX,
};

#endif /* KATASCOPE_ABI_H */
