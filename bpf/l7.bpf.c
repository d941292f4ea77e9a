// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * l7.bpf.c - HTTP/1.x server exchanges, and HTTP, PostgreSQL and Redis
 * client exchanges, from the socket syscalls.
 *
 * Every read/recvfrom and write/sendto/writev of every process is looked at
 * for a few instructions when it returns: is this fd a TCP socket (asked of
 * the kernel once per fd, then remembered in `conns`, negative answers
 * too), and is the connection between messages? Only the syscall's exit is
 * hooked: its arguments are still in the task's saved user registers
 * (pt_regs), which the syscall does not change, so no entry program and no
 * map of in-flight calls is needed (half the program runs, and no hash
 * update and delete per call). Only the first bytes of a request and of a
 * response head are copied; bodies never are. Connections opened before
 * the agent started are recognised the same way, from their bytes.
 *
 * Per connection the kernel tracks IDLE -> REQ (a request line was read,
 * or a client wrote one) -> RESP (a status line was written, or a client
 * read one) -> IDLE. A response ends with the last byte written (server)
 * or read (client) before the next request on the connection, its close,
 * or a second of silence (the idle sweep, a program the agent runs every
 * 500 ms; a response that goes on after it is counted as cut). The
 * response's length is never looked for: a write costs a look at its first
 * 12 bytes, and no response head is copied or scanned (that scan, and
 * ending each exchange where the head said, cost a fifth of the BPF time of
 * an exchange: 1982 against 1592 ns on the ping-pong bench). 1xx heads but
 * 101 are interim; 101, 204, 304 and answers to HEAD end with their head.
 * Pipelined requests (several in one read) share that read's time as their
 * start; a response head written while one is under way ends it and starts
 * the next exchange, and user space takes the requests, in order, from the
 * captured bytes.
 *
 * At most one ring record per exchange: a server's request bytes wait in
 * the connection's slot of req_heads and leave with the record that ends
 * the exchange. Most plain HTTP exchanges make none: they are counted in
 * the kernel (http_tab), a client's by its method, kept in the connection
 * state, a server's by its route key once a record named its route.
 * Tracing (split_records) needs to know a request when it starts, so then
 * a REQUEST record is sent at the start as well, and every exchange ends
 * with a record.
 */
#include "sockfd.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define L7_CONNS_MAX 16384 /* overflow of conn_tab, and SSL objects */
#define HEAD_SLOTS 8192 /* request heads in flight (power of two) */
#define IOV_LOOK 8 /* iovecs of a client's writev gathered */

/* var &= mask in a way the compiler cannot drop, so the verifier sees the
 * bound (it may otherwise reuse an unmasked copy). */
#define VERIFIER_BOUND(var, mask) asm volatile("%0 &= " #mask : "+r"(var))

/*
 * can_loop: true until the kernel's may_goto budget for the program runs
 * out (millions of passes), so that a loop ended by its data needs no
 * bound the verifier walks pass by pass: it checks the body until its
 * states stop changing. The instruction (BPF_JMP | BPF_JCOND, kernel 6.9)
 * is spelled in bytes for compilers that do not know it.
 */
#define can_loop                                                       \
	({                                                             \
		__label__ l_break, l_continue;                         \
		int ret_ = 1;                                          \
		asm volatile goto("1:.byte 0xe5;"                      \
				  ".byte 0;"                           \
				  ".long ((%l[l_break] - 1b - 8) / 8) & 0xffff;" \
				  ".short 0" ::: : l_break);           \
		goto l_continue;                                       \
	l_break:                                                       \
		ret_ = 0;                                              \
	l_continue:;                                                   \
		ret_;                                                  \
	})

enum conn_kind { CK_NOT_TCP = 1, CK_TCP = 2 };
enum conn_state { ST_IDLE = 0, ST_REQ, ST_RESP };

#define CF_HEAD_REQ 0x01 /* request was HEAD: response has no body */
#define CF_HEAD_PENDING 0x02 /* server: req_heads holds this exchange's
			      * bytes */
#define CF_IDLE_ENDED 0x04 /* the last exchange was ended by the sweep */

/* An exchange whose last byte moved this long ago is ended by the sweep
 * (the agent runs it every 500 ms): completed requests reach /metrics
 * within 2 s. A response that pauses longer is cut there (counted,
 * KS_DROP_L7_RESP_CUT). */
const volatile __u64 idle_end_ns = 1000000000ULL;

enum conn_role { ROLE_UNKNOWN = 0, ROLE_SERVER, ROLE_CLIENT, ROLE_IGNORE };

#define PROTO_TLS (-1) /* classify_request: a TLS record, never parsed */

/* The first word of struct l7_conn, as claim_end and the sweep change it
 * (one cmpxchg). */
union conn_word {
	__u64 word;
	struct {
		__u8 kind, state, flags, role;
	};
};

struct l7_conn {
	/* kind..lport as one word: changed at once by the sweep, and by a
	 * syscall ending an exchange the sweep may end too (claim_end) */
	union {
		__u64 word;
		struct {
			__u8 kind;
			__u8 state;
			__u8 flags;
			__u8 role;
			__u16 status;
			__u16 lport;
		};
	};
	__u16 rport;
	__u8 proto; /* client protocol */
	__u8 family;
	__u8 has_slot; /* head_slot is this connection's */
	__u8 tls; /* plaintext seen through OpenSSL, keyed by the SSL object */
	__u16 head_slot; /* its slot in req_heads (server) and resp_open */
	__u64 req_start_ns;
	__u64 last_ns; /* RESP: the last response byte written (server) or
			* read (client) */
	__u8 raddr[16];
	__u8 sqlstate[8];
	__u8 method8[8]; /* HTTP client: the request's first bytes */
	__u64 file; /* the struct file the fd named when it was learnt */
};

/*
 * Without split records (the default), a request's bytes wait in a slot
 * of req_heads, given to each server connection in turn, and leave with
 * the record that ends the exchange: one record and one copy from user
 * memory per exchange. A slot taken by a newer connection while the older
 * one's exchange is under way loses that request's bytes (counted,
 * KS_DROP_L7_HEAD_REUSED); that needs HEAD_SLOTS newer server connections
 * within one exchange.
 */
const volatile __u8 split_records = 0; /* --traces: REQUEST records */

struct req_head {
	__u64 owner; /* connection key */
	__u32 len;
	__u32 total;
	__u8 data[KS_L7_DATA];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, HEAD_SLOTS);
	__type(key, __u32);
	__type(value, struct req_head);
} req_heads SEC(".maps");

const volatile __u32 ncpus = 1; /* possible CPUs */

/* Slots are given out in turn by each CPU: CPU c gives c, c + ncpus, ...
 * (no shared counter to bounce between CPUs). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} head_turn SEC(".maps");

/*
 * The HTTP connection that last entered RESP in each slot (its key, or 0):
 * what the idle sweep walks (8192 words; walking the conns hash map's
 * 65536 buckets cost 1 ms per sweep), ending the exchange of a connection
 * still in RESP. A slot names its connection until the connection goes
 * or a newer one takes the slot; that hides the older one's exchange from
 * the sweep, and it then ends at the next request or the close.
 */
struct resp_slots {
	__u64 key[HEAD_SLOTS];
};

/* One value holding every slot: the sweep reads them as one array. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct resp_slots);
} resp_open SEC(".maps");

/* Slot c's word in resp_open, or NULL. */
static __always_inline __u64 *resp_slot(struct l7_conn *c)
{
	__u32 zero = 0;
	struct resp_slots *v = bpf_map_lookup_elem(&resp_open, &zero);

	return v ? &v->key[c->head_slot & (HEAD_SLOTS - 1)] : NULL;
}

static __always_inline __u16 next_head_slot(void)
{
	__u32 zero = 0, *turn = bpf_map_lookup_elem(&head_turn, &zero);
	__u32 n = turn ? (*turn)++ : 0;

	return (__u16)((n * ncpus + bpf_get_smp_processor_id()) &
		       (HEAD_SLOTS - 1));
}

/*
 * Connection state is kept in conn_tab, an array indexed by process and fd:
 * a process's fds take consecutive slots from a base its tgid picks, so
 * finding the state on every socket syscall is an index and a compare,
 * inlined (a hash map's lookup is a chain of calls: 55 ns of each run on
 * the ping-pong bench). A connection whose slot is held by another goes to
 * the LRU hash `conns`, as do SSL objects. Every entry names the struct
 * file its fd had when it was learnt, checked on each lookup: an fd closed
 * without close() (exec, dup2, close_range, exit) and opened again is
 * learnt again, never taken for the old one. A process's slots are
 * emptied when it exits (handle_exit_fds).
 */
#define CONN_TAB 65536 /* power of two */

struct conn_slot {
	__u64 key; /* conn_key, or 0: free */
	struct l7_conn c;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CONN_TAB);
	__type(key, __u32);
	__type(value, struct conn_slot);
} conn_tab SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, L7_CONNS_MAX);
	__type(key, __u64);
	__type(value, struct l7_conn);
} conns SEC(".maps");

enum io_op { IO_READ = 1, IO_WRITE, IO_WRITEV, IO_SENDFILE };

struct io_args {
	__u64 buf; /* buffer, or iovec array for IO_WRITEV */
	__u32 fd;
	__u32 op;
	__u32 iovcnt;
};

struct scratch {
	__u8 b[512] __attribute__((aligned(8))); /* copied by words */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch_buf SEC(".maps");

/* The socket the thread on this CPU read last, for OpenSSL on memory BIOs
 * (see ssl_conn_of). Per CPU, checked against the thread id: a thread that
 * moved CPUs in between just does not learn its addresses this time. */
struct last_read {
	__u32 tid;
	__u32 fd;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct last_read);
} last_read SEC(".maps");

struct ssl_args {
	__u64 ssl, buf, nptr; /* nptr: *_ex functions' size_t out-parameter */
	__u64 busy; /* a call is in flight */
};

/* An SSL call's arguments from its entry to its return, per thread. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ssl_args);
} ssl_inflight SEC(".maps");

static __always_inline __u64 conn_key(__u32 tgid, __u32 fd)
{
	return (__u64)tgid << 32 | fd;
}

/* The conn_tab slot of a process's fd. */
static __always_inline struct conn_slot *tab_slot(__u32 tgid, __u32 fd)
{
	__u32 i = (((tgid * 0x9E3779B1U) >> 16) + fd) & (CONN_TAB - 1);

	return bpf_map_lookup_elem(&conn_tab, &i);
}

/* The state of the connection key names, wherever it is kept (slot: its
 * conn_tab slot, or NULL), or NULL. Not checked against the fd's file. */
static __always_inline struct l7_conn *conn_find(__u64 key,
						 struct conn_slot **slot)
{
	struct conn_slot *s = tab_slot(key >> 32, (__u32)key);

	if (s && s->key == key) {
		*slot = s;
		return &s->c;
	}
	*slot = NULL;
	return bpf_map_lookup_elem(&conns, &key);
}

/* The struct file at fd in the task's table, as a number, or 0: typed
 * loads (the array's element is read as the first word of a struct). */
static __always_inline __u64 fd_file(struct task_struct *task, __u32 fd)
{
	struct fdtable *fdt = task->files->fdt;
	struct rb_node *w;

	if (fd >= fdt->max_fds)
		return 0;
	w = bpf_rdonly_cast((void *)((__u64)fdt->fd + (__u64)fd * 8),
			    bpf_core_type_id_kernel(struct rb_node));
	return w->__rb_parent_color;
}

/* Do these first bytes (little-endian) start a TLS record (content type
 * 20..23, version 3.x)? Ciphertext: the SSL uprobes see its plaintext. */
static __always_inline int is_tls_record(__u64 w)
{
	__u8 type = (__u8)w, major = (__u8)(w >> 8), minor = (__u8)(w >> 16);

	return type >= 0x14 && type <= 0x17 && major == 3 && minor <= 4;
}

static __always_inline int is_request_start(__u64 w)
{
	/* First 8 bytes of the buffer, little-endian. */
	__u32 lo = (__u32)w;

	switch (lo) {
	case 0x20544547: /* "GET " */
	case 0x20545550: /* "PUT " */
		return 1;
	case 0x54534f50: /* "POST" */
		return ((w >> 32) & 0xff) == ' ';
	case 0x44414548: /* "HEAD" */
		return ((w >> 32) & 0xff) == ' ' ? 2 : 0;
	case 0x454c4544: /* "DELE" */
	case 0x43544150: /* "PATC" */
	case 0x4954504f: /* "OPTI" */
	case 0x4e4e4f43: /* "CONN" */
	case 0x43415254: /* "TRAC" */
		return 1;
	}
	return 0;
}

static __always_inline void fill(struct ks_l7_event *e, struct l7_conn *c,
				 __u64 key, __u32 kind, __u64 end_ns,
				 __u32 flags, __u64 now)
{
	e->hdr.type = KS_EV_L7;
	e->hdr.pid = key >> 32;
	e->hdr.ts_ns = now;
	e->conn_id = key;
	e->start_ns = c->req_start_ns;
	e->end_ns = end_ns;
	e->kind = kind;
	e->status = c->status;
	e->lport = c->lport;
	e->rport = c->rport;
	e->proto = c->proto;
	e->family = c->family;
	e->flags = flags | (c->tls ? KS_L7_F_TLS : 0);
	__builtin_memcpy(e->raddr, c->raddr, sizeof(e->raddr));
	__builtin_memcpy(e->sqlstate, c->sqlstate, sizeof(e->sqlstate));
	e->len = 0;
	e->total_len = 0;
}

static __always_inline void emit(struct l7_conn *c, __u64 key, __u32 kind,
				 __u64 end_ns, __u32 flags, __u64 now)
{
	struct ks_l7_event *e;

	e = reserve_event(offsetof(struct ks_l7_event, data));
	if (!e)
		return;
	fill(e, c, key, kind, end_ns, flags, now);
	submit_event(e);
}

/* Copy the first min(n, KS_L7_DATA) bytes at user address src into dst:
 * the count copied, or -1. */
static __always_inline long copy_user_head(void *dst, const void *src,
					   __u64 n)
{
	if (n > KS_L7_DATA)
		n = KS_L7_DATA;
	VERIFIER_BOUND(n, 0x1ff);
	if (n > KS_L7_DATA || bpf_probe_read_user(dst, n, src))
		return -1;
	return (long)n;
}

/* A record carrying up to KS_L7_DATA bytes copied from user memory. */
static __always_inline void emit_data(struct l7_conn *c, __u64 key,
				      __u32 kind, __u64 end_ns,
				      const void *src, __u64 n, __u64 now)
{
	__u32 total = n > 0xffffffffULL ? 0xffffffffU : (__u32)n;
	struct ks_l7_event *e;
	long len;

	e = reserve_event(sizeof(*e));
	if (!e)
		return;
	fill(e, c, key, kind, end_ns, 0, now);
	len = copy_user_head(e->data, src, n);
	if (len < 0) {
		bpf_ringbuf_discard(e, 0);
		return;
	}
	e->len = len;
	e->total_len = total;
	submit_event(e);
}

/* c's slot names it for the sweep. Written only when it changes: the
 * slots of both CPUs' connections share cache lines, and a store on every
 * exchange bounced them between the CPUs. */
static __always_inline void resp_open_set(struct l7_conn *c, __u64 key)
{
	__u64 *o = resp_slot(c);

	if (o && *o != key)
		*o = key;
}

/* c is gone: its slot no longer names it. */
static __always_inline void resp_open_clear(struct l7_conn *c, __u64 key)
{
	__u64 *o = resp_slot(c);

	if (o && *o == key)
		__sync_val_compare_and_swap(o, key, 0);
}

/* An exchange enters RESP: its response (server) or answer (client)
 * started. */
static __always_inline void enter_resp(struct l7_conn *c, __u64 key,
				       __u64 now)
{
	c->state = ST_RESP;
	c->last_ns = now;
	if (c->has_slot)
		resp_open_set(c, key);
}

/*
 * May this syscall end the exchange under way on c (state RESP)? The sweep
 * ends exchanges silent for idle_end_ns and a syscall may end the same one
 * at the same time: for such an exchange both claim it by an atomic change
 * of its state word, and the loser does not report it. A fresher one the
 * sweep does not touch: plain stores. The slot keeps naming c (the sweep
 * passes over it while c is not in RESP).
 */
static __always_inline int claim_end(struct l7_conn *c, __u64 now)
{
	union conn_word old, new;

	if (now - c->last_ns < idle_end_ns / 2) {
		c->state = ST_IDLE;
	} else {
		old.word = c->word;
		if (old.state != ST_RESP)
			return 0;
		new.word = old.word;
		new.state = ST_IDLE;
		if (__sync_val_compare_and_swap(&c->word, old.word,
						new.word) != old.word)
			return 0;
	}
	return 1;
}

/* ---- HTTP exchanges counted in the kernel ---------------------------- */

/*
 * Plain HTTP client exchanges (without split records) are counted here,
 * not sent, and so are plain HTTP server exchanges of a label set whose
 * route the agent has been told (see katascope.h): the agent needs only
 * their label set and duration, and a ring record with its share of the
 * agent's work cost about 200 ns of the 2 µs budget of an exchange.
 * Bounded; a label set that finds no slot goes by ring record as before.
 * An array, not a hash map: its lookups are inlined (see katascope.h),
 * which took handle_write_exit, where wrk's exchanges end, from 423 to
 * 332 ns per request against the Node app.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KS_HTTP_SLOTS);
	__uint(map_flags, BPF_F_MMAPABLE); /* the agent reads and frees */
	__type(key, __u32);
	__type(value, struct ks_http_slot);
} http_tab SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct ks_http_used);
} http_tab_used SEC(".maps");

static __always_inline __u32 http_bucket(__u64 ns)
{
	static const __u64 bounds[KS_HTTP_BUCKETS - 1] = KS_HTTP_BOUNDS_NS;

	return bucket_of(ns, bounds, KS_HTTP_BUCKETS - 1);
}

/* How long c's exchange lasted if it ended at end_ns. */
static __always_inline __u64 exchange_ns(const struct l7_conn *c,
					 __u64 end_ns)
{
	return end_ns > c->req_start_ns ? end_ns - c->req_start_ns : 0;
}

/* The label set of c's exchange, and its duration, as they stand. */
static __always_inline __u64 http_cli_key(const struct l7_conn *c, __u64 key,
					  __u64 end_ns,
					  struct ks_http_key *k)
{
	k->tgid = key >> 32;
	k->rport = c->rport;
	k->status = c->status;
	k->family = c->family;
	__builtin_memcpy(k->raddr, c->raddr, sizeof(k->raddr));
	__builtin_memcpy(k->method, c->method8, sizeof(k->method));
	return exchange_ns(c, end_ns);
}

static __always_inline int http_key_is(const struct ks_http_slot *s,
				       const struct ks_http_key *k)
{
	return s->key.w[0] == k->w[0] && s->key.w[1] == k->w[1] &&
	       s->key.w[2] == k->w[2] && s->key.w[3] == k->w[3] &&
	       s->key.w[4] == k->w[4];
}

/*
 * The slot of http_tab holding label set k (see katascope.h), or, when
 * claim is set and k has none, a free slot of its probe claimed and
 * published for it (*claimed: 1 + its index; else 0). NULL when k has no
 * slot, or cannot claim one (drop counted).
 */
static __always_inline struct ks_http_slot *
http_tab_find(const struct ks_http_key *k, int claim, __u32 *claimed,
	      __u32 drop)
{
	struct ks_http_slot *s, *free = NULL;
	__u32 h = ks_http_slot_of(k), i, n, free_i = 0, zero = 0;
	struct ks_http_used *used;
	__u64 owner;

	*claimed = 0;
#pragma unroll
	for (n = 0; n < KS_HTTP_PROBE; n++) {
		i = (h + n) & (KS_HTTP_SLOTS - 1);
		s = bpf_map_lookup_elem(&http_tab, &i);
		if (!s)
			return NULL; /* never: i < KS_HTTP_SLOTS */
		owner = *(volatile __u64 *)&s->owner; /* one load */
		if (owner == k->tgid) {
			/* The key is read after its owner (x86 keeps loads
			 * in order; this keeps the compiler from hoisting
			 * them), so it is whole: it was written before the
			 * owner was published. */
			barrier();
			if (http_key_is(s, k))
				return s;
		} else if (!owner && !free) {
			free = s;
			free_i = i;
		}
	}
	if (!claim)
		return NULL;
	/* Losing the race for a free slot, to another label set or to this
	 * one on another CPU, is rare: a record then. */
	if (!free || __sync_val_compare_and_swap(&free->owner, 0,
						 KS_HTTP_CLAIMED)) {
		count_drop(drop);
		return NULL;
	}
	s = free;
	s->key = *k;
	/* Published with a full barrier: the key's stores come first. */
	__sync_val_compare_and_swap(&s->owner, KS_HTTP_CLAIMED, k->tgid);
	used = bpf_map_lookup_elem(&http_tab_used, &zero);
	if (used)
		__sync_fetch_and_or(&used->w[(free_i >> 6) &
					    (KS_HTTP_SLOTS / 64 - 1)],
				    1ULL << (free_i & 63));
	*claimed = free_i + 1;
	return s;
}

/* One exchange lasting ns, counted in its label set's slot. */
static __always_inline void http_tab_add(struct ks_http_slot *s, __u64 ns)
{
	__u32 b = http_bucket(ns); /* 0..KS_HTTP_BUCKETS - 1 */

	ADD(s->val.count, 1);
	ADD(s->val.sum_ns, ns);
	if (b < KS_HTTP_BUCKETS)
		ADD(s->val.bucket[b], 1);
}

/* Count one client exchange of label set k lasting ns in its slot,
 * claimed if need be: 0, or -1 when it has none (the caller makes a
 * record instead). */
static __always_inline int http_cli_add(const struct ks_http_key *k,
					__u64 ns)
{
	struct ks_http_slot *s;
	__u32 claimed;

	s = http_tab_find(k, 1, &claimed, KS_DROP_HTTP_CLI_FULL);
	if (!s)
		return -1;
	http_tab_add(s, ns);
	return 0;
}

#define ROUTE_DIGITS 0x6469676974736964ULL /* an all-digit segment */
#define FNV_BASIS 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

/* hash with the segment just ended mixed in: seg, or the all-digit mark
 * when nd is 0 (see route_key), chosen without a branch. */
static __always_inline __u64 route_mix(__u64 hash, __u64 seg, __u64 nd)
{
	__u64 m = -((nd | -nd) >> 63); /* ones unless all digits */

	return (hash ^ ((seg & m) | (ROUTE_DIGITS & ~m))) *
	       0x9e3779b97f4a7c15ULL;
}

/* The hash's start, read from writable data: a value the verifier does
 * not know, so that the hashes of a pass are not constants it would have
 * to follow pass by pass. */
volatile __u64 route_seed = FNV_BASIS;

/*
 * The route key of the request in h (see katascope.h): a hash of the
 * target's path, its segments hashed one by one and an all-digit segment
 * as one mark, so /users/1 and /users/22 share it (the agent names both
 * /users/{id}); 0 when the agent could read the request line otherwise
 * than the key says: a method longer than 7 bytes, a target cut by the
 * capture, bytes the agent's parser refuses, no " HTTP/1." after the
 * target. A global function, verified once per program (inlined at each
 * caller, its loop was more than the verifier takes). With the slot's
 * lookup and the scratch copy, counting an exchange this way costs about
 * 70 ns of BPF time on the ping-pong bench, a record 140 (and the agent's
 * work on it, 110).
 */
__noinline __u64 route_key(const struct req_head *h)
{
	__u64 hash = route_seed, seg = FNV_BASIS, w, z, nd = 2;
	__u32 len, p, query = 0;
	__u8 ch;

	if (!h)
		return 0;
	len = h->len;
	if (len > KS_L7_DATA)
		return 0;
	/* The method's length: the bytes before the first space of the
	 * first 8, counted without a loop (one verifier path, not 7). */
	w = *(__u64 *)h->data;
	z = w ^ 0x2020202020202020ULL;
	z = (z - 0x0101010101010101ULL) & ~z & 0x8080808080808080ULL;
	if (!z)
		return 0;
	w = (z & -z) - 1; /* ones below the space's high bit */
	p = (__u32)((((w >> 7) & 0x0101010101010101ULL) *
		     0x0101010101010101ULL) >> 56); /* the space's index */
	p++;
	if (p >= len || h->data[p & (KS_L7_DATA - 1)] <= ' ')
		return 0; /* an empty target */
	/*
	 * nd: bit 1 while the segment is empty, bit 0 once it holds a byte
	 * that is not a digit; 0: an all-digit segment. Kept by arithmetic,
	 * not branches: values the verifier need not follow. p wraps at the
	 * buffer's end: a range that stays the same from pass to pass.
	 */
	for (; can_loop; p = (p + 1) & (KS_L7_DATA - 1)) {
		if (!p || p >= len)
			return 0; /* the capture ends inside the target */
		ch = h->data[p & (KS_L7_DATA - 1)];
		if (ch <= ' ' || ch == 0x7f) {
			if (ch != ' ')
				return 0; /* refused by the agent's parser */
			break;
		}
		if (query)
			continue;
		if (ch == '?' || ch == '#') {
			query = 1; /* not part of the route */
			continue;
		}
		if (ch == '/') {
			hash = route_mix(hash, seg, nd);
			seg = FNV_BASIS;
			nd = 2;
			continue;
		}
		seg = (seg ^ ch) * FNV_PRIME;
		/* (ch - '0') + 246 passes 255 unless ch is a digit */
		nd = (nd & 1) | ((((__u64)(__u8)(ch - '0')) + 246) >> 8);
	}
	p++; /* the version after the target's space */
	if (p + 7 > len)
		return 0;
#define AT(k) h->data[(p + (k)) & (KS_L7_DATA - 1)]
	if (AT(0) != 'H' || AT(1) != 'T' || AT(2) != 'T' || AT(3) != 'P' ||
	    AT(4) != '/' || AT(5) != '1' || AT(6) != '.')
		return 0;
#undef AT
	hash = route_mix(hash, seg, nd);
	return hash ? hash : 1;
}

/* The label set of a server exchange ending on c (status known) whose
 * request h holds: 0, or -1 when it goes by record (see route_key). */
static __always_inline int srv_key(const struct l7_conn *c, __u64 key,
				   const struct req_head *h,
				   struct ks_http_key *k)
{
	__u64 route;

	if (split_records || c->tls)
		return -1;
	route = route_key(h);
	if (!route)
		return -1;
	k->tgid = key >> 32;
	k->rport = c->lport;
	k->status = c->status;
	k->family = KS_HTTP_KEY_SERVER;
	*(__u64 *)k->raddr = route;
	*(__u64 *)k->method = ks_method_word(*(__u64 *)h->data);
	return 0;
}

/* Slot's request bytes if key's read put them there, or NULL (the slot
 * was taken by a newer connection since). */
static __always_inline struct req_head *slot_head(__u32 slot, __u64 key)
{
	struct req_head *h;

	slot &= HEAD_SLOTS - 1;
	h = bpf_map_lookup_elem(&req_heads, &slot);
	return h && h->owner == key ? h : NULL;
}

/* A record carries a server's request bytes (KS_L7_F_HEAD). */
static __always_inline void put_head(struct ks_l7_event *e,
				     const struct req_head *h)
{
	__builtin_memcpy(e->data, h->data, KS_L7_DATA);
	e->len = h->len;
	e->total_len = h->total;
	e->flags |= KS_L7_F_HEAD;
}

/* A record carries an HTTP client's request method (KS_L7_F_HEAD). */
static __always_inline void put_method(struct ks_l7_event *e,
				       const struct l7_conn *c)
{
	__builtin_memcpy(e->data, c->method8, sizeof(c->method8));
	e->len = sizeof(c->method8);
	e->flags |= KS_L7_F_HEAD;
}

/*
 * The end of a server exchange: a record, with the request's bytes when
 * they wait in its slot. The caller owns the exchange's end. table: no
 * exchange after this one may share its read (pipelined requests end
 * elsewhere); then a plain one whose label set has a slot in http_tab
 * is counted there instead, and one whose label set has none claims one
 * (its record names the slot, for the agent to learn the route).
 */
static __always_inline void emit_end(struct l7_conn *c, __u64 key, __u32 kind,
				     __u64 end_ns, __u32 flags, __u64 now,
				     int table)
{
	struct ks_http_key k = {};
	struct ks_http_slot *s;
	struct ks_l7_event *e;
	struct req_head *h;
	__u32 claimed = 0;

	if (!(c->flags & CF_HEAD_PENDING)) {
		emit(c, key, kind, end_ns, flags, now);
		return;
	}
	c->flags &= ~CF_HEAD_PENDING;
	h = slot_head(c->head_slot, key);
	if (!h) {
		count_drop(KS_DROP_L7_HEAD_REUSED);
		emit(c, key, kind, end_ns, flags, now);
		return;
	}
	if (table && kind == KS_L7_HTTP_DONE && !flags &&
	    !srv_key(c, key, h, &k)) {
		s = http_tab_find(&k, 1, &claimed, KS_DROP_HTTP_SRV_FULL);
		if (s && !claimed) {
			http_tab_add(s, exchange_ns(c, end_ns));
			return;
		}
	}
	e = reserve_event(sizeof(*e));
	if (!e)
		return;
	fill(e, c, key, kind, end_ns, flags, now);
	put_head(e, h);
	e->srv.slot = claimed;
	submit_event(e);
}

/* Copy a read's first bytes into the connection's head slot. */
static __always_inline struct req_head *stash(struct l7_conn *c, __u64 key,
					      const void *buf, long ret)
{
	__u32 slot = c->head_slot & (HEAD_SLOTS - 1);
	struct req_head *h;
	long n;

	h = bpf_map_lookup_elem(&req_heads, &slot);
	if (!h)
		return NULL;
	n = copy_user_head(h->data, buf, ret);
	if (n < 0)
		return NULL;
	h->owner = key;
	h->len = n;
	h->total = ret;
	return h;
}

/* A request read on a server connection: its exchange starts. h: the slot
 * already holding the read's bytes, or NULL. */
static __always_inline void start_request(struct l7_conn *c, __u64 key,
					  int kind, struct req_head *h,
					  const void *buf, long ret, __u64 now)
{
	if (c->role != ROLE_SERVER) {
		c->role = ROLE_SERVER;
		c->head_slot = next_head_slot();
		c->has_slot = 1;
	}
	c->state = ST_REQ;
	c->flags = kind == 2 ? CF_HEAD_REQ : 0;
	c->status = 0;
	c->req_start_ns = now;
	c->last_ns = now;
	if (split_records) {
		emit_data(c, key, KS_L7_HTTP_REQUEST, 0, buf, ret, now);
		return;
	}
	if (!h)
		h = stash(c, key, buf, ret);
	if (h)
		c->flags |= CF_HEAD_PENDING;
}

/* The first 8 bytes of a read copied to b (8-byte aligned), for
 * is_request_start: 4 of them when the read was shorter. */
static __always_inline __u64 head_word(const __u8 *b, long ret)
{
	__u64 w = *(const __u64 *)b;

	return ret < 8 ? w & 0xffffffffULL : w;
}

/*
 * server_read_next for an exchange whose label set has slot s: the read
 * goes to a scratch buffer first, so that the slot keeps the request
 * under way when the read is not the next request.
 */
static __always_inline int server_read_counted(struct l7_conn *c, __u64 key,
					       struct req_head *h,
					       struct ks_http_slot *s,
					       const void *buf, long ret,
					       __u64 now)
{
	struct scratch *sc;
	__u32 zero = 0;
	long n;
	int kind;

	sc = bpf_map_lookup_elem(&scratch_buf, &zero);
	if (!sc)
		return -1;
	n = copy_user_head(sc->b, buf, ret);
	if (n < 0)
		return -1;
	kind = is_request_start(head_word(sc->b, ret));
	if (!kind)
		return 0;
	__builtin_memcpy(h->data, sc->b, KS_L7_DATA);
	h->len = n;
	h->total = ret;
	if (claim_end(c, now))
		http_tab_add(s, exchange_ns(c, c->last_ns));
	start_request(c, key, kind, h, buf, ret, now);
	return 0;
}

/*
 * A read while a response is under way: the next request, normally, which
 * ends that response. The ending record is made first, while the slot
 * still holds the request it answers, so that the read can go to the slot
 * at once (one copy from user memory, as between exchanges); or, when the
 * exchange's label set has its slot of http_tab, it is counted there.
 * No request of the slot's read is left unanswered here (pipelined
 * requests end at the next response head), so the table may count it.
 * Returns 0 when done; -1 to take the general path.
 */
static __always_inline int server_read_next(struct l7_conn *c, __u64 key,
					    const void *buf, long ret,
					    __u64 now)
{
	struct ks_http_key k = {};
	struct ks_http_slot *s;
	struct ks_l7_event *e;
	struct req_head *h;
	__u32 claimed = 0;
	int kind = 0, srv;

	h = slot_head(c->head_slot, key);
	if (!h)
		return -1;
	srv = !srv_key(c, key, h, &k);
	if (srv) {
		s = http_tab_find(&k, 0, &claimed, 0);
		if (s)
			return server_read_counted(c, key, h, s, buf, ret, now);
	}
	e = reserve_event(sizeof(*e));
	if (!e)
		return -1;
	fill(e, c, key, KS_L7_HTTP_DONE, c->last_ns, 0, now);
	put_head(e, h);
	if (copy_user_head(h->data, buf, ret) >= 0)
		kind = is_request_start(head_word(h->data, ret));
	if (!kind) {
		/* Not a request: the slot gets its bytes back. */
		__builtin_memcpy(h->data, e->data, KS_L7_DATA);
		bpf_ringbuf_discard(e, BPF_RB_NO_WAKEUP);
		return 0;
	}
	h->len = ret < KS_L7_DATA ? ret : KS_L7_DATA;
	h->total = ret;
	if (claim_end(c, now)) {
		/* A label set seen for the first time: this record names
		 * the slot its next exchanges are counted in. */
		if (srv && http_tab_find(&k, 1, &claimed,
					 KS_DROP_HTTP_SRV_FULL))
			e->srv.slot = claimed;
		submit_event(e);
	} else { /* the sweep ended it, with its own record */
		bpf_ringbuf_discard(e, BPF_RB_NO_WAKEUP);
	}
	start_request(c, key, kind, h, buf, ret, now);
	return 0;
}

static __always_inline void server_read(struct l7_conn *c, __u64 key,
					const void *buf, long ret, __u64 now)
{
	struct req_head *h = NULL;
	__u64 w = 0;
	int kind;

	if (c->state == ST_REQ)
		return; /* request body */
	if (ret < 4)
		return;
	if (!split_records && c->state == ST_RESP &&
	    (c->flags & CF_HEAD_PENDING) &&
	    server_read_next(c, key, buf, ret, now) == 0)
		return;
	if (!split_records && c->role == ROLE_SERVER && c->state == ST_IDLE) {
		/* A server between exchanges: its slot holds nothing
		 * pending, so the read goes there at once (one copy). */
		h = stash(c, key, buf, ret);
		if (!h)
			return;
		w = head_word(h->data, ret);
	} else {
		bpf_probe_read_user(&w, ret < 8 ? 4 : 8, buf);
	}
	kind = is_request_start(w);
	if (!kind) {
		/* A server of a protocol we do not measure server-side (it
		 * reads commands): never mistake its answers for requests.
		 * TLS: nothing to parse in ciphertext. */
		if (c->role == ROLE_UNKNOWN && c->state == ST_IDLE &&
		    ((__u8)w == '*' || (__u8)w == 'Q' || (__u8)w == 'P' ||
		     is_tls_record(w)))
			c->role = ROLE_IGNORE;
		return;
	}
	/* The next request ends the response under way. */
	if (c->state == ST_RESP && claim_end(c, now))
		emit_end(c, key, KS_L7_HTTP_DONE, c->last_ns, 0, now, 1);
	start_request(c, key, kind, h, buf, ret, now);
}

/* The status of a response head starting at buf ("HTTP/1.x NNN"), or 0. */
static __always_inline __u16 response_status(const void *buf, __u64 n)
{
	__u8 b[16] = {};

	if (n < 12 || bpf_probe_read_user(b, 12, buf) ||
	    (*(__u64 *)b & 0x00ffffffffffffffULL) != 0x2e312f50545448ULL)
		return 0; /* "HTTP/1." */
	return (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
}

/* 1xx heads but 101 are interim: the real answer follows. */
static __always_inline int interim(__u16 status)
{
	return status >= 100 && status < 200 && status != 101;
}

/* An answer that ends with its head: 101 (the connection leaves HTTP),
 * 204, 304, or the answer to HEAD. */
static __always_inline int no_body(struct l7_conn *c, __u16 status)
{
	return status == 101 || status == 204 || status == 304 ||
	       (c->flags & CF_HEAD_REQ);
}

/* A write while nothing is under way: counted when it goes on with a
 * response the sweep ended (a pause longer than idle_end_ns). */
static __always_inline void late_bytes(struct l7_conn *c)
{
	if (c->flags & CF_IDLE_ENDED) {
		c->flags &= ~CF_IDLE_ENDED;
		count_drop(KS_DROP_L7_RESP_CUT);
	}
}

static __always_inline void server_write(struct l7_conn *c, __u64 key,
					 const void *first, __u64 first_len,
					 __u64 now)
{
	__u16 status;

	if (c->state == ST_IDLE && !c->req_start_ns)
		return;
	status = response_status(first, first_len);
	if (c->state == ST_RESP) {
		if (!status) {
			c->last_ns = now; /* the response goes on */
			return;
		}
		/* A head while a response is under way: the answer to the
		 * next of pipelined requests. */
		if (claim_end(c, now))
			emit_end(c, key, KS_L7_HTTP_DONE, c->last_ns, 0, now,
				 0);
		c->flags &= ~CF_HEAD_REQ; /* its method is not known here */
	} else if (!status) {
		if (c->state == ST_IDLE)
			late_bytes(c);
		return;
	} else if (c->state == ST_IDLE) {
		/* IDLE after a request: a pipelined request's answer. */
		c->flags &= ~(CF_HEAD_REQ | CF_IDLE_ENDED);
	}
	if (interim(status))
		return;
	c->status = status;
	c->last_ns = now;
	if (no_body(c, status)) {
		/* pipelined requests may follow: no table */
		emit_end(c, key, KS_L7_HTTP_DONE, now, 0, now, 0);
		c->state = ST_IDLE;
		return;
	}
	enter_resp(c, key, now);
}

/* ---- client side ------------------------------------------------------ */

static __always_inline __u32 be32(const __u8 *b)
{
	return (__u32)b[0] << 24 | (__u32)b[1] << 16 | (__u32)b[2] << 8 | b[3];
}

static __always_inline int pg_frontend_type(__u8 t)
{
	switch (t) {
	case 'Q': case 'P': case 'B': case 'E': case 'S': case 'D': case 'C':
	case 'H': case 'F': case 'd': case 'c': case 'f': case 'X':
		return 1;
	}
	return 0;
}

/*
 * Does a write start a request, and of which protocol? PostgreSQL: a
 * statement starts with Query, Parse or Bind, whose length field either
 * spans the write or is followed by another frontend message. Redis: a RESP
 * array of bulk strings. HTTP: a request line.
 */
static __always_inline int classify_request(const void *buf, __u64 n,
					    __u8 *head_req, __u8 b[8])
{
	__u8 next = 0;
	__u32 len;
	int k;

	if (n < 5 || bpf_probe_read_user(b, n < 8 ? 5 : 8, buf))
		return 0;
	if (is_tls_record(*(__u64 *)b))
		return PROTO_TLS;
	if (n >= 8) {
		k = is_request_start(*(__u64 *)b);
		if (k) {
			*head_req = k == 2;
			return KS_PROTO_HTTP;
		}
	}
	if (b[0] == '*' && b[1] >= '1' && b[1] <= '9' &&
	    (b[2] == '\r' || (b[2] >= '0' && b[2] <= '9')))
		return KS_PROTO_REDIS;
	if (b[0] == 'Q' || b[0] == 'P' || b[0] == 'B') {
		len = be32(b + 1);
		if (len < 4 || len > (1U << 30))
			return 0;
		if ((__u64)len + 1 == n)
			return KS_PROTO_PG;
		if ((__u64)len + 1 < n &&
		    !bpf_probe_read_user(&next, 1, buf + len + 1) &&
		    pg_frontend_type(next))
			return KS_PROTO_PG;
	}
	return 0;
}

/*
 * A request written with writev spreads over several buffers (node-redis
 * writes a pipeline as one buffer per command, node-postgres a statement
 * as one per message): gather the first KS_L7_DATA bytes of the first
 * IOV_LOOK of them (on_write has read their iovecs) through the per-CPU
 * scratch.
 */
static __always_inline void emit_iov(struct l7_conn *c, __u64 key,
				     const struct iovec *iov, __u32 cnt,
				     long ret, __u64 now)
{
	struct ks_l7_event *e;
	struct scratch *s;
	__u32 zero = 0, i;
	__u64 off = 0, n;

	s = bpf_map_lookup_elem(&scratch_buf, &zero);
	if (!s)
		return;
	for (i = 0; i < IOV_LOOK && i < cnt && off < KS_L7_DATA; i++) {
		n = iov[i].iov_len;
		if (n > KS_L7_DATA - off)
			n = KS_L7_DATA - off;
		VERIFIER_BOUND(off, 0xff);
		VERIFIER_BOUND(n, 0x1ff);
		if (n > KS_L7_DATA ||
		    bpf_probe_read_user(s->b + off, n, iov[i].iov_base))
			break;
		off += n;
	}
	e = reserve_event(sizeof(*e));
	if (!e)
		return;
	fill(e, c, key, KS_L7_CLIENT_REQUEST, 0, 0, now);
	VERIFIER_BOUND(off, 0x1ff);
	if (off > KS_L7_DATA || bpf_probe_read_kernel(e->data, off, s->b)) {
		bpf_ringbuf_discard(e, 0);
		return;
	}
	e->len = off;
	e->total_len = ret;
	submit_event(e);
}

/* The end of an HTTP client exchange: counted in http_tab, or a
 * record with the request's method unless a REQUEST record carried it. */
static __always_inline void emit_client_end(struct l7_conn *c, __u64 key,
					    __u32 kind, __u64 end_ns,
					    __u32 flags, __u64 now)
{
	struct ks_http_key k = {};
	struct ks_l7_event *e;
	__u64 ns;

	if (c->proto != KS_PROTO_HTTP || split_records) {
		emit(c, key, kind, end_ns, flags, now);
		return;
	}
	if (kind == KS_L7_CLIENT_DONE) {
		ns = http_cli_key(c, key, end_ns, &k);
		if (!http_cli_add(&k, ns))
			return;
	}
	e = reserve_event(offsetof(struct ks_l7_event, data) +
			  sizeof(c->method8));
	if (!e)
		return;
	fill(e, c, key, kind, end_ns, flags, now);
	put_method(e, c);
	submit_event(e);
}

static __always_inline void client_write(struct l7_conn *c, __u64 key,
					 const struct io_args *a, long ret,
					 const void *first, __u64 first_len,
					 const struct iovec *iov, __u32 cnt,
					 __u64 now)
{
	__u8 head_req = 0, b[8] = {};
	int proto;

	/* Mid-request writes are the rest of it; Redis commands are a
	 * stream and each write of them is recorded. */
	if (c->state == ST_REQ && c->proto != KS_PROTO_REDIS)
		return;
	proto = classify_request(first, first_len, &head_req, b);
	if (proto == PROTO_TLS && c->role == ROLE_UNKNOWN) {
		c->role = ROLE_IGNORE; /* ciphertext, from its first write */
		return;
	}
	if (proto <= 0 || (c->state != ST_IDLE && proto != c->proto))
		return;
	/* The next HTTP request ends the answer under way. */
	if (c->state == ST_RESP && claim_end(c, now))
		emit_client_end(c, key, KS_L7_CLIENT_DONE, c->last_ns, 0, now);
	c->role = ROLE_CLIENT;
	c->proto = proto;
	if (proto == KS_PROTO_HTTP && !c->has_slot) {
		c->head_slot = next_head_slot();
		c->has_slot = 1;
	}
	c->state = ST_REQ;
	c->flags = head_req ? CF_HEAD_REQ : 0;
	c->status = 0;
	c->req_start_ns = now;
	__builtin_memset(c->sqlstate, 0, sizeof(c->sqlstate));
	if (proto == KS_PROTO_HTTP && !split_records) {
		/* All user space needs of an HTTP request is its method:
		 * it rides on the record that ends the exchange, or names
		 * its label set (method_only). */
		*(__u64 *)c->method8 = ks_method_word(*(__u64 *)b);
		return;
	}
	if (a->op == IO_WRITEV && cnt > 1)
		emit_iov(c, key, iov, cnt, ret, now);
	else
		emit_data(c, key, KS_L7_CLIENT_REQUEST, 0, first, first_len,
			  now);
}

static __always_inline void client_done(struct l7_conn *c, __u64 key,
					__u64 now, const void *src, __u64 n)
{
	if (n)
		emit_data(c, key, KS_L7_CLIENT_DONE, now, src, n, now);
	else
		emit_client_end(c, key, KS_L7_CLIENT_DONE, now, 0, now);
	c->state = ST_IDLE;
}

/*
 * If buf starts with an ErrorResponse, keep its SQLSTATE: the 'C' field,
 * found among the first fields ('S' and 'V' severity come before it).
 */
static __always_inline void pg_sqlstate(struct l7_conn *c, const void *buf)
{
	__u8 b[48] = {};
	__u32 i;

	if (bpf_probe_read_user(b, sizeof(b), buf) || b[0] != 'E')
		return;
	for (i = 5; i < sizeof(b) - 7; i++) {
		if (b[i] == 0 && b[i + 1] == 'C') {
			__builtin_memcpy(c->sqlstate, &b[i + 2], 5);
			c->sqlstate[5] = 0;
			return;
		}
	}
}

static __always_inline void client_read(struct l7_conn *c, __u64 key,
					const void *buf, long ret, __u64 now)
{
	__u8 t[6] = {};

	if (c->state == ST_RESP) {
		c->last_ns = now; /* the answer goes on */
		return;
	}
	if (c->state != ST_REQ) {
		late_bytes(c);
		return;
	}
	if (c->proto == KS_PROTO_PG) {
		/* The answer ends with ReadyForQuery: 'Z', length 5, status. */
		if (ret < 6 || bpf_probe_read_user(t, 6, buf + ret - 6))
			return;
		if (t[0] != 'Z' || t[1] || t[2] || t[3] || t[4] != 5) {
			/* PostgreSQL flushes an ErrorResponse at once, so
			 * it often begins a read of its own. */
			if (ret > 12)
				pg_sqlstate(c, buf);
			return;
		}
		/* A last read that fits the record goes to user space
		 * whole, where an ErrorResponse in it is found. */
		if (ret > KS_L7_DATA) {
			pg_sqlstate(c, buf);
			client_done(c, key, now, buf + ret - KS_L7_DATA,
				    KS_L7_DATA);
		} else {
			client_done(c, key, now, buf, ret);
		}
	} else if (c->proto == KS_PROTO_REDIS) {
		emit_data(c, key, KS_L7_CLIENT_DONE, now, buf, ret, now);
	} else if (c->proto == KS_PROTO_HTTP) {
		__u16 status = response_status(buf, ret);

		if (!status || interim(status))
			return;
		c->status = status;
		if (no_body(c, status)) {
			client_done(c, key, now, NULL, 0);
			return;
		}
		enter_resp(c, key, now);
	}
}

/* The connection on fd went away (close, exit, or its fd now names
 * another file): the exchange under way on it ends. */
static __always_inline void end_under_way(struct l7_conn *c, __u64 key)
{
	__u64 now;

	if (c->state == ST_IDLE)
		return;
	now = bpf_ktime_get_ns();
	if (c->role == ROLE_CLIENT && c->state == ST_REQ)
		emit_client_end(c, key, KS_L7_CLIENT_ABORTED, now, 0, now);
	else if (c->state == ST_REQ)
		emit_end(c, key, KS_L7_HTTP_ABORTED, now, 0, now, 0);
	else if (c->state == ST_RESP && claim_end(c, now)) {
		if (c->role == ROLE_CLIENT)
			emit_client_end(c, key, KS_L7_CLIENT_DONE, c->last_ns,
					0, now);
		else
			emit_end(c, key, KS_L7_HTTP_DONE, c->last_ns, 0, now,
				 1);
	}
}

/* A connection's fd goes away (close, or its process's exit): the
 * exchange under way ends, and its state is dropped. */
static __always_inline void conn_gone(struct l7_conn *c, struct conn_slot *s,
				      __u64 key)
{
	end_under_way(c, key);
	if (c->has_slot)
		resp_open_clear(c, key);
	if (s) {
		c->file = 0;
		s->key = 0;
	} else {
		bpf_map_delete_elem(&conns, &key);
	}
}

/* First sight of a process's fd (or of the file it names now): ask the
 * kernel whether it is a TCP socket, and keep the answer, in its slot
 * when that is free or stale. NULL for anything but a TCP socket. */
static __always_inline struct l7_conn *conn_learn(__u64 key, __u64 file,
						  struct conn_slot *s)
{
	struct sock *sk = tcp_sock_of_file((struct file *)file);
	struct l7_conn fresh = {};

	fresh.kind = sk ? CK_TCP : CK_NOT_TCP;
	if (sk) {
		fresh.lport = BPF_CORE_READ(sk, __sk_common.skc_num);
		fresh.rport = __builtin_bswap16(
			BPF_CORE_READ(sk, __sk_common.skc_dport));
		fresh.family = BPF_CORE_READ(sk, __sk_common.skc_family);
		if (fresh.family == KS_AF_INET) {
			/* 4 bytes, the rest zero (READ_INTO would copy
			 * sizeof(raddr) bytes from the field on). */
			__u32 a4 = BPF_CORE_READ(sk, __sk_common.skc_daddr);

			__builtin_memcpy(fresh.raddr, &a4, sizeof(a4));
		} else
			BPF_CORE_READ_INTO(&fresh.raddr, sk,
					   __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
	if (s->key == key || (!s->key && !__sync_val_compare_and_swap(
						 &s->key, 0, key))) {
		/* The file last: a lookup that matches it sees the rest. */
		s->c = fresh;
		asm volatile("" ::: "memory");
		s->c.file = file;
		return sk ? &s->c : NULL;
	}
	fresh.file = file;
	if (bpf_map_update_elem(&conns, &key, &fresh, BPF_ANY))
		count_drop(KS_DROP_L7_CONNS_FULL);
	if (!sk)
		return NULL;
	return bpf_map_lookup_elem(&conns, &key);
}

/* The connection state of a process's fd, learnt from the kernel on
 * first sight. NULL for anything but a TCP socket. */
static __always_inline struct l7_conn *conn_of(struct task_struct *task,
					       __u32 tgid, __u32 fd)
{
	__u64 key = conn_key(tgid, fd), file = fd_file(task, fd);
	struct conn_slot *s = tab_slot(tgid, fd);
	struct l7_conn *c;

	if (!s || !file)
		return NULL;
	c = s->key == key ? &s->c : bpf_map_lookup_elem(&conns, &key);
	if (c && c->file == file)
		return c->kind == CK_TCP ? c : NULL;
	if (c && c->kind == CK_TCP)
		end_under_way(c, key); /* its fd was reused unseen */
	return conn_learn(key, file, s);
}

/* ---- dispatch ---------------------------------------------------------- */

static __always_inline void on_read(struct l7_conn *c, __u64 key,
				    const void *buf, long ret, __u64 now)
{
	if (c->role == ROLE_CLIENT)
		client_read(c, key, buf, ret, now);
	else if (c->role != ROLE_IGNORE)
		server_read(c, key, buf, ret, now);
}

static __always_inline void on_write(struct l7_conn *c, __u64 key,
				     const struct io_args *a, long ret,
				     __u64 now)
{
	const void *first = (const void *)a->buf;
	struct iovec iov[IOV_LOOK];
	__u64 first_len = ret, sz;
	__u32 cnt = 0;

	if (c->role == ROLE_IGNORE)
		return;
	if (a->op == IO_SENDFILE) {
		/* File bytes: only part of a response under way. */
		if (c->role == ROLE_SERVER && c->state == ST_RESP)
			c->last_ns = now;
		return;
	}
	if (a->op == IO_WRITEV) {
		/* A server's head is in the first buffer; a client's request
		 * may spread over several (emit_iov). */
		cnt = a->iovcnt < IOV_LOOK ? a->iovcnt : IOV_LOOK;
		if (cnt == 0)
			return;
		if (c->role == ROLE_SERVER)
			cnt = 1;
		sz = cnt * sizeof(struct iovec);
		VERIFIER_BOUND(sz, 0xff);
		if (sz > sizeof(iov) || bpf_probe_read_user(iov, sz, first))
			return;
		first = iov[0].iov_base;
		first_len = iov[0].iov_len;
	}
	if (c->role == ROLE_SERVER)
		server_write(c, key, first, first_len, now);
	else
		client_write(c, key, a, ret, first, first_len, iov, cnt, now);
}

/* Where a task's saved user registers sit above its stack base: the same
 * for every task of this kernel, learnt from bpf_task_pt_regs on the first
 * call. Typed loads at that offset spare the helper call on every socket
 * syscall (measured: 32 ns per run). */
static __u64 regs_off;

/*
 * The arguments of the syscall returning now, from the user registers
 * saved at its entry (x86-64 and arm64 keep the first argument apart from
 * the return value: PT_REGS_PARM1_SYSCALL). Compat (32-bit) syscalls do
 * not reach these tracepoints. The thread's ids are read off its task too
 * (cheaper than bpf_get_current_pid_tgid, a helper call).
 */
static __always_inline int syscall_args(struct task_struct *task, __u64 *a0,
					__u64 *a1, __u64 *a2)
{
	struct pt_regs *regs;
	__u64 off = regs_off;

	if (off) {
		regs = bpf_rdonly_cast((__u8 *)task->stack + off,
				       bpf_core_type_id_kernel(struct pt_regs));
	} else {
		regs = (struct pt_regs *)bpf_task_pt_regs(task);
		if (!regs)
			return -1;
		regs_off = (__u64)regs - (__u64)task->stack;
	}
	*a0 = PT_REGS_PARM1_SYSCALL(regs);
	*a1 = PT_REGS_PARM2_SYSCALL(regs);
	*a2 = PT_REGS_PARM3_SYSCALL(regs);
	return 0;
}

/* A read-side syscall returned ret > 0 bytes into buf on fd. */
static __always_inline int read_done(long ret, __u64 fd, const void *buf,
				     struct task_struct *task)
{
	__u64 id = (__u64)task->tgid << 32 | (__u32)task->pid;
	__u32 tgid = id >> 32, zero = 0;
	struct last_read *lr;
	struct l7_conn *c;

	if (ret <= 0 || tgid == self_tgid || (int)fd < 0)
		return 0;
	c = conn_of(task, tgid, (__u32)fd);
	if (!c)
		return 0;
	if (c->role == ROLE_IGNORE || c->role == ROLE_UNKNOWN) {
		/* A TLS library reading through a memory BIO decrypts on
		 * this thread next: its SSL object learns the socket from
		 * here (a socket that carries plaintext HTTP never does). */
		lr = bpf_map_lookup_elem(&last_read, &zero);
		if (lr) {
			lr->tid = (__u32)id;
			lr->fd = (__u32)fd;
		}
	}
	/* A socket of a protocol we do not parse on this side (a database
	 * server's, a TLS one's ciphertext): no clock read (47 ns). */
	if (c->role == ROLE_IGNORE)
		return 0;
	on_read(c, conn_key(tgid, (__u32)fd), buf, ret, bpf_ktime_get_ns());
	return 0;
}

/* A write-side syscall moved ret > 0 bytes; a->fd, a->buf, a->op set. */
static __always_inline int write_done(long ret, struct io_args *a,
				      struct task_struct *task)
{
	__u32 tgid = task->tgid;
	struct l7_conn *c;

	if (ret <= 0 || tgid == self_tgid || (int)a->fd < 0)
		return 0;
	c = conn_of(task, tgid, a->fd);
	if (c && c->role != ROLE_IGNORE)
		on_write(c, conn_key(tgid, a->fd), a, ret, bpf_ktime_get_ns());
	return 0;
}

/* read(fd, buf, n) and recvfrom(fd, buf, n, ...) */
static __always_inline int exit_read(long ret)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 fd, buf, n;

	if (ret <= 0 || syscall_args(task, &fd, &buf, &n))
		return 0;
	return read_done(ret, fd, (const void *)buf, task);
}

/* write(fd, buf, n), sendto(fd, buf, n, ...), writev(fd, iov, cnt) */
static __always_inline int exit_write(long ret, __u32 op)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct io_args a = {};
	__u64 fd, buf, n;

	if (ret <= 0 || syscall_args(task, &fd, &buf, &n))
		return 0;
	a.fd = (__u32)fd;
	a.buf = buf;
	a.op = op;
	a.iovcnt = op == IO_WRITEV ? (__u32)n : 0;
	return write_done(ret, &a, task);
}

SEC("tracepoint/syscalls/sys_exit_read")
int handle_read_exit(struct trace_event_raw_sys_exit *ctx)
{
	return exit_read(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_recvfrom")
int handle_recvfrom_exit(struct trace_event_raw_sys_exit *ctx)
{
	return exit_read(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_write")
int handle_write_exit(struct trace_event_raw_sys_exit *ctx)
{
	return exit_write(ctx->ret, IO_WRITE);
}

SEC("tracepoint/syscalls/sys_exit_sendto")
int handle_sendto_exit(struct trace_event_raw_sys_exit *ctx)
{
	return exit_write(ctx->ret, IO_WRITE);
}

SEC("tracepoint/syscalls/sys_exit_writev")
int handle_writev_exit(struct trace_event_raw_sys_exit *ctx)
{
	return exit_write(ctx->ret, IO_WRITEV);
}

static __always_inline const struct iovec *msg_iov(const void *msg,
						   __u32 *cnt)
{
	struct user_msghdr m;

	if (!msg || bpf_probe_read_user(&m, sizeof(m), msg))
		return NULL;
	*cnt = (__u32)m.msg_iovlen;
	return m.msg_iov;
}

/* readv/recvmsg: only the first buffer is looked at (heads are small). */
static __always_inline int readv_done(long ret, __u64 fd,
				      const struct iovec *iov,
				      struct task_struct *task)
{
	struct iovec first;

	if (!iov || bpf_probe_read_user(&first, sizeof(first), iov))
		return 0;
	return read_done(ret, fd, first.iov_base, task);
}

SEC("tracepoint/syscalls/sys_exit_readv")
int handle_readv_exit(struct trace_event_raw_sys_exit *ctx)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 fd, iov, n;

	if (ctx->ret <= 0 || syscall_args(task, &fd, &iov, &n))
		return 0;
	return readv_done(ctx->ret, fd, (const struct iovec *)iov, task);
}

SEC("tracepoint/syscalls/sys_exit_recvmsg")
int handle_recvmsg_exit(struct trace_event_raw_sys_exit *ctx)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 fd, msg, flags;
	__u32 cnt = 0;

	if (ctx->ret <= 0 || syscall_args(task, &fd, &msg, &flags))
		return 0;
	return readv_done(ctx->ret, fd, msg_iov((const void *)msg, &cnt),
			  task);
}

SEC("tracepoint/syscalls/sys_exit_sendmsg")
int handle_sendmsg_exit(struct trace_event_raw_sys_exit *ctx)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct io_args a = {};
	__u64 fd, msg, flags;
	__u32 cnt = 0;

	if (ctx->ret <= 0 || syscall_args(task, &fd, &msg, &flags))
		return 0;
	a.buf = (__u64)msg_iov((const void *)msg, &cnt);
	if (!a.buf)
		return 0;
	a.fd = (__u32)fd;
	a.op = IO_WRITEV;
	a.iovcnt = cnt;
	return write_done(ctx->ret, &a, task);
}

/* sendfile(out_fd, in_fd, ...): body bytes of a response, never a head. */
SEC("tracepoint/syscalls/sys_exit_sendfile64")
int handle_sendfile_exit(struct trace_event_raw_sys_exit *ctx)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct io_args a = {};
	__u64 fd, in_fd, off;

	if (ctx->ret <= 0 || syscall_args(task, &fd, &in_fd, &off))
		return 0;
	a.fd = (__u32)fd;
	a.op = IO_SENDFILE;
	return write_done(ctx->ret, &a, task);
}

/* ---- TLS plaintext: uprobes on OpenSSL in the process's binary ------ */

/* The addresses of the socket this thread read last, if it is a TCP
 * connection we know (see struct last_read). */
static __always_inline void ssl_learn_addr(struct l7_conn *c, __u32 tgid,
					   __u32 tid)
{
	struct l7_conn *sock;
	struct conn_slot *s;
	struct last_read *lr;
	__u32 zero = 0;
	__u64 skey;

	lr = bpf_map_lookup_elem(&last_read, &zero);
	if (!lr || lr->tid != tid)
		return;
	skey = conn_key(tgid, lr->fd);
	sock = conn_find(skey, &s);
	if (!sock || sock->kind != CK_TCP)
		return;
	c->lport = sock->lport;
	c->rport = sock->rport;
	c->family = sock->family;
	__builtin_memcpy(c->raddr, sock->raddr, sizeof(c->raddr));
}

/* The connection of an SSL object: its own key (high bit set, so never an
 * fd), its addresses taken from the socket this thread read last (tried
 * again on later calls while unknown). */
static __always_inline struct l7_conn *ssl_conn_of(__u64 id, __u64 ssl,
						   __u64 *key)
{
	struct l7_conn *c, fresh = {};
	__u32 tgid = id >> 32;

	*key = conn_key(tgid, 0x80000000U | (__u32)((ssl >> 4) & 0x7fffffff));
	c = bpf_map_lookup_elem(&conns, key);
	if (!c) {
		fresh.kind = CK_TCP;
		fresh.tls = 1;
		if (bpf_map_update_elem(&conns, key, &fresh, BPF_ANY))
			count_drop(KS_DROP_L7_CONNS_FULL);
		c = bpf_map_lookup_elem(&conns, key);
	}
	if (c && !c->family)
		ssl_learn_addr(c, tgid, (__u32)id);
	return c;
}

static __always_inline int ssl_enter(struct pt_regs *ctx, int ex)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct ssl_args *a;

	if ((__u32)(id >> 32) == self_tgid)
		return 0;
	a = bpf_task_storage_get(&ssl_inflight, bpf_get_current_task_btf(), 0,
				 BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!a)
		return 0;
	a->ssl = PT_REGS_PARM1(ctx);
	a->buf = PT_REGS_PARM2(ctx);
	a->nptr = ex ? PT_REGS_PARM4(ctx) : 0;
	a->busy = 1;
	return 0;
}

static __always_inline int ssl_exit(struct pt_regs *ctx, int write)
{
	__u64 id = bpf_get_current_pid_tgid(), key, n = 0, now;
	long rc = PT_REGS_RC(ctx);
	struct io_args io = {};
	struct ssl_args *a;
	struct l7_conn *c;

	a = bpf_task_storage_get(&ssl_inflight, bpf_get_current_task_btf(), 0,
				 0);
	if (!a || !a->busy)
		return 0;
	a->busy = 0;
	if (a->nptr) {
		if (rc == 1)
			bpf_probe_read_user(&n, sizeof(n), (void *)a->nptr);
	} else if (rc > 0) {
		n = rc;
	}
	if (n == 0 || n >= (1ULL << 31))
		return 0;
	c = ssl_conn_of(id, a->ssl, &key);
	if (!c)
		return 0;
	now = bpf_ktime_get_ns();
	if (!write) {
		on_read(c, key, (const void *)a->buf, (long)n, now);
	} else {
		io.buf = a->buf;
		io.op = IO_WRITE;
		on_write(c, key, &io, (long)n, now);
	}
	return 0;
}

SEC("uprobe")
int handle_ssl_read_enter(struct pt_regs *ctx)
{
	return ssl_enter(ctx, 0);
}

SEC("uretprobe")
int handle_ssl_read_exit(struct pt_regs *ctx)
{
	return ssl_exit(ctx, 0);
}

SEC("uprobe")
int handle_ssl_read_ex_enter(struct pt_regs *ctx)
{
	return ssl_enter(ctx, 1);
}

SEC("uretprobe")
int handle_ssl_read_ex_exit(struct pt_regs *ctx)
{
	return ssl_exit(ctx, 0);
}

SEC("uprobe")
int handle_ssl_write_enter(struct pt_regs *ctx)
{
	return ssl_enter(ctx, 0);
}

SEC("uretprobe")
int handle_ssl_write_exit(struct pt_regs *ctx)
{
	return ssl_exit(ctx, 1);
}

SEC("uprobe")
int handle_ssl_write_ex_enter(struct pt_regs *ctx)
{
	return ssl_enter(ctx, 1);
}

SEC("uretprobe")
int handle_ssl_write_ex_exit(struct pt_regs *ctx)
{
	return ssl_exit(ctx, 1);
}

SEC("tracepoint/syscalls/sys_enter_close")
int handle_close_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 key = conn_key(tgid, (__u32)ctx->args[0]);
	struct conn_slot *s;
	struct l7_conn *c;

	c = conn_find(key, &s);
	if (c)
		conn_gone(c, s, key);
	return 0;
}

struct exit_ctx {
	__u32 tgid;
};

static long exit_fd(__u32 fd, struct exit_ctx *x)
{
	__u64 key = conn_key(x->tgid, fd);
	struct conn_slot *s = tab_slot(x->tgid, fd);

	if (s && s->key == key)
		conn_gone(&s->c, s, key);
	return 0;
}

/*
 * A process is gone: its fds close without close(). Its conn_tab slots
 * are emptied (ending exchanges under way, as a close does), so that they
 * serve new processes. args: (struct task_struct *, bool group_dead); the
 * fd table is still there.
 */
SEC("raw_tp/sched_process_exit")
int handle_exit_fds(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct exit_ctx x = { .tgid = task->tgid };
	__u32 n;

	if (!ctx->args[1] || x.tgid == self_tgid)
		return 0;
	n = task->files->fdt->max_fds;
	bpf_loop(n < CONN_TAB ? n : CONN_TAB, exit_fd, &x, 0);
	return 0;
}

/* ---- the idle sweep ---------------------------------------------------- */

struct sweep_ctx {
	__u64 now;
	__u32 ended;
};

/*
 * End the exchange of the connection named in *o (its slot's word) if its
 * response has been silent for idle_end_ns. The record is made first, from
 * the state as it stands, and sent only if the claim succeeds: a syscall
 * that wins the race starts the next exchange in the same state (its
 * request bytes, its method), which must not leak into this record.
 */
static __noinline long sweep_slot(__u64 *o, __u32 slot,
				  struct sweep_ctx *x)
{
	struct ks_http_key k = {};
	union conn_word old, new;
	struct ks_l7_event *e;
	struct conn_slot *s;
	struct req_head *h;
	struct l7_conn *c;
	__u64 key, last, ns = 0;
	int counted = 0;

	key = *o;
	c = conn_find(key, &s);
	if (!c || !c->has_slot || (c->head_slot & (HEAD_SLOTS - 1)) != slot) {
		/* Gone, or its fd names another connection now. */
		__sync_val_compare_and_swap(o, key, 0);
		return 0;
	}
	last = c->last_ns;
	old.word = c->word;
	if (old.state != ST_RESP)
		return 0; /* between exchanges */
	if (last + idle_end_ns > x->now)
		return 0;
	e = reserve_event(sizeof(*e));
	if (!e)
		return 0;
	fill(e, c, key, old.role == ROLE_CLIENT ? KS_L7_CLIENT_DONE :
						  KS_L7_HTTP_DONE,
	     last, KS_L7_F_END_IDLE, x->now);
	if (old.role == ROLE_CLIENT && c->proto == KS_PROTO_HTTP &&
	    !split_records) {
		put_method(e, c);
		ns = http_cli_key(c, key, last, &k);
		counted = 1;
	} else if (old.role == ROLE_SERVER && (old.flags & CF_HEAD_PENDING)) {
		h = slot_head(slot, key);
		if (h)
			put_head(e, h);
		else
			count_drop(KS_DROP_L7_HEAD_REUSED);
	}
	new.word = old.word;
	new.state = ST_IDLE;
	new.flags = (old.flags & ~CF_HEAD_PENDING) | CF_IDLE_ENDED;
	if (__sync_val_compare_and_swap(&c->word, old.word, new.word) !=
	    old.word) {
		bpf_ringbuf_discard(e, BPF_RB_NO_WAKEUP);
		return 0;
	}
	__sync_val_compare_and_swap(o, key, 0);
	/* An HTTP client's exchange is counted, unless it finds no slot. */
	if (counted && !http_cli_add(&k, ns))
		bpf_ringbuf_discard(e, BPF_RB_NO_WAKEUP);
	else
		submit_event(e);
	x->ended++;
	return 0;
}

#define SWEEP_STEP 64 /* slots per bpf_loop call */

static long sweep_chunk(__u32 i, struct sweep_ctx *x)
{
	struct resp_slots *v;
	__u32 zero = 0, j, slot;

	v = bpf_map_lookup_elem(&resp_open, &zero);
	if (!v)
		return 1;
	for (j = 0; j < SWEEP_STEP; j++) {
		slot = (i * SWEEP_STEP + j) & (HEAD_SLOTS - 1);
		if (v->key[slot])
			sweep_slot(&v->key[slot], slot, x);
	}
	return 0;
}

/* Run by the agent (BPF_PROG_TEST_RUN) every 500 ms: returns the number of
 * exchanges it ended. */
SEC("syscall")
int l7_sweep(void *ctx)
{
	struct sweep_ctx x = { .now = bpf_ktime_get_ns() };

	bpf_loop(HEAD_SLOTS / SWEEP_STEP, sweep_chunk, &x, 0);
	return x.ended;
}
