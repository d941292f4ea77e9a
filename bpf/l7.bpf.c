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
 * Per connection the kernel tracks IDLE -> REQ (a request line was read)
 * -> RESP (a status line was written) -> IDLE (the response ended). The
 * response's end is exact when its head says how long it is
 * (Content-Length, chunked, or no body by rule); otherwise it is the last
 * write before the next request or the close (flagged as guessed).
 * Pipelined requests (several in one read) share that read's time as their
 * start; each response written while the connection is idle after a
 * request starts the next one's exchange, and user space takes the
 * requests, in order, from the captured bytes.
 *
 * One ring record per exchange: a server's request bytes wait in the
 * connection's slot of req_heads and leave with the record that ends the
 * exchange, and an HTTP client's request needs only its method, kept in
 * the connection state. Tracing (split_records) needs to know a request
 * when it starts, so then a REQUEST record is sent at the start as well.
 */
#include "sockfd.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define L7_CONNS_MAX 65536
#define HEAD_SLOTS 8192 /* request heads in flight (power of two) */
#define HEAD_SCAN KS_L7_DATA /* response head bytes looked at */
#define IOV_LOOK 8 /* iovecs of a writev looked at for a response's tail */

/* var &= mask in a way the compiler cannot drop, so the verifier sees the
 * bound (it may otherwise reuse an unmasked copy). */
#define VERIFIER_BOUND(var, mask) asm volatile("%0 &= " #mask : "+r"(var))

enum conn_kind { CK_NOT_TCP = 1, CK_TCP = 2 };
enum conn_state { ST_IDLE = 0, ST_REQ, ST_RESP };

#define CF_HEAD_REQ 0x01 /* request was HEAD: response has no body */
#define CF_LEN_KNOWN 0x02 /* expect_total is the response's length */
#define CF_CHUNKED 0x04
#define CF_NO_BODY 0x08

enum conn_role { ROLE_UNKNOWN = 0, ROLE_SERVER, ROLE_CLIENT, ROLE_IGNORE };

#define PROTO_TLS (-1) /* classify_request: a TLS record, never parsed */

struct l7_conn {
	__u8 kind;
	__u8 state;
	__u8 flags;
	__u8 role;
	__u16 status;
	__u16 lport;
	__u16 rport;
	__u8 proto; /* client protocol */
	__u8 family;
	__u8 resp_started; /* client: the answer's first bytes were read */
	__u8 tls; /* plaintext seen through OpenSSL, keyed by the SSL object */
	__u16 head_slot; /* server: its slot in req_heads */
	__u64 expect_total;
	__u64 written; /* server: response bytes written; client: answer
			* bytes read */
	__u64 req_start_ns;
	__u64 last_write_ns;
	__u8 raddr[16];
	__u8 sqlstate[8];
	__u8 method8[8]; /* HTTP client: the request's first bytes */
	__u8 head_pending; /* server: req_heads holds this exchange's bytes */
	__u8 pad[7];
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

static __always_inline __u16 next_head_slot(void)
{
	__u32 zero = 0, *turn = bpf_map_lookup_elem(&head_turn, &zero);
	__u32 n = turn ? (*turn)++ : 0;

	return (__u16)((n * ncpus + bpf_get_smp_processor_id()) &
		       (HEAD_SLOTS - 1));
}

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
	__u8 b[512];
	/* head scan results: in map memory, whose contents the verifier
	 * does not track (on the stack each value would be a state) */
	__u32 n;
	__u32 head_len;
	__u32 cl_pos;
	__u32 chunked;
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

/* The connection state of fd, learning from the kernel on first sight
 * whether it is a TCP socket. NULL for anything that is not. */
static __always_inline struct l7_conn *conn_of(__u32 tgid, int fd)
{
	struct l7_conn *c, fresh = {};
	__u64 key = conn_key(tgid, (__u32)fd);
	struct sock *sk;

	c = bpf_map_lookup_elem(&conns, &key);
	if (c)
		return c->kind == CK_TCP ? c : NULL;
	sk = tcp_sock_of_fd(fd);
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
	if (bpf_map_update_elem(&conns, &key, &fresh, BPF_ANY))
		count_drop(KS_DROP_L7_CONNS_FULL);
	if (!sk)
		return NULL;
	return bpf_map_lookup_elem(&conns, &key);
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

/* The record ending a server exchange, with the request's bytes when they
 * wait in its slot. */
static __always_inline void emit_end(struct l7_conn *c, __u64 key, __u32 kind,
				     __u64 end_ns, __u32 flags, __u64 now)
{
	struct ks_l7_event *e;
	struct req_head *h;
	__u32 slot = c->head_slot & (HEAD_SLOTS - 1);

	if (!c->head_pending) {
		emit(c, key, kind, end_ns, flags, now);
		return;
	}
	c->head_pending = 0;
	h = bpf_map_lookup_elem(&req_heads, &slot);
	if (!h || h->owner != key) {
		count_drop(KS_DROP_L7_HEAD_REUSED);
		emit(c, key, kind, end_ns, flags, now);
		return;
	}
	e = reserve_event(sizeof(*e));
	if (!e)
		return;
	fill(e, c, key, kind, end_ns, flags | KS_L7_F_HEAD, now);
	__builtin_memcpy(e->data, h->data, KS_L7_DATA);
	e->len = h->len;
	e->total_len = h->total;
	submit_event(e);
}

static __always_inline void finish(struct l7_conn *c, __u64 key, __u64 end_ns,
				   __u32 flags, __u64 now)
{
	emit_end(c, key, KS_L7_HTTP_DONE, end_ns, flags, now);
	c->state = ST_IDLE;
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
	if (!split_records && c->role == ROLE_SERVER && c->state == ST_IDLE) {
		/* A server between exchanges: its slot holds nothing
		 * pending, so the read goes there at once (one copy). */
		h = stash(c, key, buf, ret);
		if (!h)
			return;
		w = *(__u64 *)h->data;
		if (ret < 8)
			w &= 0xffffffffULL;
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
	if (c->state == ST_RESP) /* length unknown: ended by this request */
		finish(c, key, c->last_write_ns, KS_L7_F_END_GUESSED, now);
	if (c->role != ROLE_SERVER) {
		c->role = ROLE_SERVER;
		c->head_slot = next_head_slot();
	}
	c->state = ST_REQ;
	c->flags = kind == 2 ? CF_HEAD_REQ : 0;
	c->status = 0;
	c->req_start_ns = now;
	c->written = 0;
	c->last_write_ns = now;
	if (split_records) {
		emit_data(c, key, KS_L7_HTTP_REQUEST, 0, buf, ret, now);
		return;
	}
	if (!h)
		h = stash(c, key, buf, ret);
	c->head_pending = h != NULL;
}

struct head_scan {
	struct scratch *s;
};

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/*
 * A line starts after the '\n' at j. Returns 1 at the blank line that
 * ends the head. Headers are matched by the position of their dash, which
 * is enough to tell Content-Length from Transfer-Encoding; only bytes
 * inside the n read are looked at.
 */
static __always_inline int head_line(struct head_scan *h, __u32 j)
{
	__u64 k = j - 1;
	__u8 *b;

	if (j < 12 || j + 3 > h->s->n)
		return 0;
	VERIFIER_BOUND(k, 0xff);
	/* b[0] is the byte before the '\n'; b[0..19] stays inside the
	 * 512-byte scratch */
	b = h->s->b + k;
	if (b[0] == '\r' && b[2] == '\r' && b[3] == '\n') {
		h->s->head_len = j + 3;
		return 1;
	}
	if (j + 19 > h->s->n)
		return 0;
	if ((b[2] | 0x20) == 'c' && b[9] == '-' && (b[10] | 0x20) == 'l' &&
	    b[16] == ':')
		h->s->cl_pos = j + 16;
	else if ((b[2] | 0x20) == 't' && b[10] == '-' &&
		 (b[11] | 0x20) == 'e' && b[19] == ':')
		h->s->chunked = 1;
	return 0;
}

/* The '\n' bytes of w, as the high bit of their byte (a zero byte of
 * w ^ "\n\n\n\n\n\n\n\n"; a 0x0b byte right after a '\n' may show too). */
static __always_inline __u64 newlines(__u64 w)
{
	__u64 x = w ^ (ONES * '\n');

	return (x - ONES) & ~x & HIGHS;
}

/* The lines starting in the 8 bytes at base: one step per '\n' marked in
 * m (the lowest mark's byte index by a multiply, BPF has no ctz). */
static __always_inline int scan_lines(struct head_scan *h, __u64 w, __u64 m,
				      __u32 base)
{
	__u32 i, k;

	for (i = 0; i < 8 && m; i++) {
		k = (((m & -m) >> 7) * 0x0001020304050607ULL) >> 56;
		if (((w >> (8 * k)) & 0xff) == '\n' && head_line(h, base + k))
			return 1;
		m &= m - 1;
	}
	return 0;
}

/*
 * SCAN_STEP bytes of the head per call (bpf_loop callback, verified once):
 * a stretch without a '\n' costs a few instructions. Calls cost: one per
 * byte was 2 us per head; 64 bytes per call instead of 16 saved 80 ns per
 * head (measured), and more bytes per call only add verification time.
 */
#define SCAN_STEP 64
static long scan_chunk(__u32 i, struct head_scan *h)
{
	__u64 base = (__u64)i * SCAN_STEP, w, m;
	__u32 k;

	if (base >= h->s->n || base >= HEAD_SCAN)
		return 1;
	VERIFIER_BOUND(base, 0xff);
#pragma unroll
	for (k = 0; k < SCAN_STEP; k += 8) {
		w = *(__u64 *)(h->s->b + base + k);
		m = newlines(w);
		if (m && scan_lines(h, w, m, (__u32)base + k))
			return 1;
	}
	return 0;
}

/* The first bytes of a response (n >= 12) in the per-CPU scratch, in one
 * copy; NULL unless they start with "HTTP/1.". */
static __always_inline struct scratch *response_head(const void *buf, __u32 n)
{
	struct scratch *s;
	__u32 zero = 0;
	__u64 w;

	s = bpf_map_lookup_elem(&scratch_buf, &zero);
	if (!s || copy_user_head(s->b, buf, n) < 0)
		return NULL;
	w = *(__u64 *)s->b & 0x00ffffffffffffffULL;
	return w == 0x2e312f50545448ULL ? s : NULL; /* "HTTP/1." */
}

/* Parse a response head from its first bytes, in s (response_head):
 * status, head length and body length. */
static __always_inline void parse_response(struct l7_conn *c,
					   struct scratch *s, __u32 n)
{
	struct head_scan h = {};
	__u64 clen = 0;
	__u16 status;
	__u32 i;

	if (n > HEAD_SCAN)
		n = HEAD_SCAN;
	status = (s->b[9] - '0') * 100 + (s->b[10] - '0') * 10 +
		 (s->b[11] - '0');
	c->status = status;
	h.s = s;
	s->n = n;
	s->head_len = 0;
	s->cl_pos = 0;
	s->chunked = 0;
	bpf_loop(HEAD_SCAN / SCAN_STEP, scan_chunk, &h, 0);
	if (s->chunked)
		c->flags |= CF_CHUNKED;
	if (!s->head_len)
		return; /* head longer than we look: end by next request */
	if ((c->flags & CF_HEAD_REQ) || status == 204 || status == 304 ||
	    status < 200) {
		c->flags |= CF_NO_BODY | CF_LEN_KNOWN;
		c->expect_total = s->head_len;
		return;
	}
	if (s->chunked || !s->cl_pos)
		return;
	for (i = 0; i < 20; i++) {
		__u32 at = s->cl_pos + i;
		__u8 ch;

		if (at >= n)
			break;
		ch = s->b[at & 511];
		if (ch == ' ' && !clen)
			continue;
		if (ch < '0' || ch > '9')
			break;
		clen = clen * 10 + (ch - '0');
	}
	c->flags |= CF_LEN_KNOWN;
	c->expect_total = s->head_len + clen;
}

/* Does the data just written end with the last chunk "0\r\n\r\n"? */
static __always_inline int ends_chunked(const void *end)
{
	char t[5] = {};

	if (bpf_probe_read_user(t, 5, end - 5))
		return 0;
	return t[0] == '0' && t[1] == '\r' && t[2] == '\n' && t[3] == '\r' &&
	       t[4] == '\n';
}

static __always_inline void server_write(struct l7_conn *c, __u64 key,
					 const void *first, __u64 first_len,
					 const void *tail_end, long ret,
					 __u64 now)
{
	struct scratch *s;

	/* IDLE after a request: a pipelined request's response may follow. */
	if (c->state == ST_IDLE && !c->req_start_ns)
		return;
	if (c->state != ST_RESP) {
		if (first_len < 12)
			return;
		s = response_head(first, (__u32)first_len);
		if (!s)
			return;
		/* A pipelined request's method is not known here. */
		c->flags &= c->state == ST_REQ ? CF_HEAD_REQ : 0;
		parse_response(c, s, (__u32)first_len);
		if (c->status >= 100 && c->status < 200 && c->status != 101)
			return; /* interim response: the real one follows */
		c->state = ST_RESP;
		c->written = 0;
	}
	if (c->state != ST_RESP)
		return;
	c->written += ret;
	c->last_write_ns = now;
	if (c->flags & CF_LEN_KNOWN) {
		if (c->written >= c->expect_total)
			finish(c, key, now, 0, now);
	} else if ((c->flags & CF_CHUNKED) && ends_chunked(tail_end)) {
		finish(c, key, now, 0, now);
	}
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
	if (c->state != ST_IDLE && c->proto != KS_PROTO_REDIS)
		return;
	proto = classify_request(first, first_len, &head_req, b);
	if (proto == PROTO_TLS && c->role == ROLE_UNKNOWN) {
		c->role = ROLE_IGNORE; /* ciphertext, from its first write */
		return;
	}
	if (proto <= 0 || (c->state != ST_IDLE && proto != c->proto))
		return;
	c->role = ROLE_CLIENT;
	c->proto = proto;
	c->state = ST_REQ;
	c->flags = head_req ? CF_HEAD_REQ : 0;
	c->status = 0;
	c->resp_started = 0;
	c->written = 0;
	c->req_start_ns = now;
	__builtin_memset(c->sqlstate, 0, sizeof(c->sqlstate));
	if (proto == KS_PROTO_HTTP && !split_records) {
		/* All user space needs of an HTTP request is its method:
		 * it rides on the record that ends the exchange. */
		__builtin_memcpy(c->method8, b, sizeof(c->method8));
		return;
	}
	if (a->op == IO_WRITEV && cnt > 1)
		emit_iov(c, key, iov, cnt, ret, now);
	else
		emit_data(c, key, KS_L7_CLIENT_REQUEST, 0, first, first_len,
			  now);
}

/* The end of an HTTP client exchange, with the request's method unless a
 * REQUEST record carried it. */
static __always_inline void emit_client_end(struct l7_conn *c, __u64 key,
					    __u32 kind, __u64 now)
{
	struct ks_l7_event *e;

	if (c->proto != KS_PROTO_HTTP || split_records) {
		emit(c, key, kind, now, 0, now);
		return;
	}
	e = reserve_event(offsetof(struct ks_l7_event, data) +
			  sizeof(c->method8));
	if (!e)
		return;
	fill(e, c, key, kind, now, KS_L7_F_HEAD, now);
	__builtin_memcpy(e->data, c->method8, sizeof(c->method8));
	e->len = sizeof(c->method8);
	submit_event(e);
}

static __always_inline void client_done(struct l7_conn *c, __u64 key,
					__u64 now, const void *src, __u64 n)
{
	if (n)
		emit_data(c, key, KS_L7_CLIENT_DONE, now, src, n, now);
	else
		emit_client_end(c, key, KS_L7_CLIENT_DONE, now);
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

	if (c->state != ST_REQ)
		return;
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
		if (!c->resp_started) {
			struct scratch *s;

			if (ret < 12)
				return;
			s = response_head(buf, (__u32)ret);
			if (!s)
				return;
			parse_response(c, s, (__u32)ret);
			if (c->status >= 100 && c->status < 200 &&
			    c->status != 101)
				return; /* interim: the real answer follows */
			c->resp_started = 1;
			c->written = 0;
		}
		c->written += ret;
		if (c->flags & CF_LEN_KNOWN) {
			if (c->written >= c->expect_total)
				client_done(c, key, now, NULL, 0);
		} else if ((c->flags & CF_CHUNKED) && ends_chunked(buf + ret)) {
			client_done(c, key, now, NULL, 0);
		}
	}
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
	const void *first = (const void *)a->buf, *tail_end;
	struct iovec iov[IOV_LOOK];
	__u64 first_len = ret, sz;
	__u32 i, cnt = 0;

	if (c->role == ROLE_IGNORE)
		return;
	if (a->op == IO_SENDFILE) {
		/* File bytes: only counted towards a response under way. */
		if (c->role == ROLE_SERVER && c->state == ST_RESP) {
			c->written += ret;
			c->last_write_ns = now;
			if ((c->flags & CF_LEN_KNOWN) &&
			    c->written >= c->expect_total)
				finish(c, key, now, 0, now);
		}
		return;
	}
	tail_end = (const void *)(a->buf + ret);
	if (a->op == IO_WRITEV) {
		/* Head in the first buffer; the tail is the end of the last
		 * non-empty one among the first IOV_LOOK (one copy). */
		cnt = a->iovcnt < IOV_LOOK ? a->iovcnt : IOV_LOOK;
		if (cnt == 0)
			return;
		sz = cnt * sizeof(struct iovec);
		VERIFIER_BOUND(sz, 0xff);
		if (sz > sizeof(iov) || bpf_probe_read_user(iov, sz, first))
			return;
		first = iov[0].iov_base;
		first_len = iov[0].iov_len;
		tail_end = first + first_len;
#pragma unroll
		for (i = 1; i < IOV_LOOK; i++)
			if (i < cnt && iov[i].iov_len)
				tail_end = iov[i].iov_base + iov[i].iov_len;
	}
	if (c->role == ROLE_SERVER)
		server_write(c, key, first, first_len, tail_end, ret, now);
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
	c = conn_of(tgid, (int)fd);
	if (!c)
		return 0;
	/* A TLS library reading through a memory BIO decrypts on this
	 * thread next: its SSL object learns the socket from here. */
	lr = bpf_map_lookup_elem(&last_read, &zero);
	if (lr) {
		lr->tid = (__u32)id;
		lr->fd = (__u32)fd;
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
	c = conn_of(tgid, (int)a->fd);
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
	struct last_read *lr;
	__u32 zero = 0;
	__u64 skey;

	lr = bpf_map_lookup_elem(&last_read, &zero);
	if (!lr || lr->tid != tid)
		return;
	skey = conn_key(tgid, lr->fd);
	sock = bpf_map_lookup_elem(&conns, &skey);
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
	struct l7_conn *c;
	__u64 now;

	c = bpf_map_lookup_elem(&conns, &key);
	if (!c)
		return 0;
	if (c->state != ST_IDLE) {
		now = bpf_ktime_get_ns();
		if (c->role == ROLE_CLIENT && c->state == ST_REQ)
			emit_client_end(c, key, KS_L7_CLIENT_ABORTED, now);
		else if (c->state == ST_REQ)
			emit_end(c, key, KS_L7_HTTP_ABORTED, now, 0, now);
		else if (c->state == ST_RESP)
			emit_end(c, key, KS_L7_HTTP_DONE, c->last_write_ns,
				 KS_L7_F_END_GUESSED, now);
	}
	bpf_map_delete_elem(&conns, &key);
	return 0;
}
