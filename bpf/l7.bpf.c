// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * l7.bpf.c - HTTP/1.x server exchanges, and HTTP, PostgreSQL and Redis
 * client exchanges, from the socket syscalls.
 *
 * Every read/recvfrom and write/sendto/writev of every process is looked at
 * for a few instructions: is this fd a TCP socket (asked of the kernel once
 * per fd, then remembered in `conns`, negative answers too), and is the
 * connection between messages? Only the first bytes of a request and of a
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
 */
#include "sockfd.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define L7_CONNS_MAX 65536
#define HEAD_SCAN 256

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
	__u8 pad[2];
	__u64 expect_total;
	__u64 written; /* server: response bytes written; client: answer
			* bytes read */
	__u64 req_start_ns;
	__u64 last_write_ns;
	__u8 raddr[16];
	__u8 sqlstate[8];
};

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

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct io_args);
} inflight_io SEC(".maps");

struct scratch {
	__u8 b[512];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch_buf SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32); /* thread id */
	__type(value, __u32); /* fd of its last socket read */
} last_read_fd SEC(".maps");

struct ssl_args {
	__u64 ssl, buf, nptr; /* nptr: *_ex functions' size_t out-parameter */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
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
		if (fresh.family == KS_AF_INET)
			BPF_CORE_READ_INTO(&fresh.raddr, sk,
					   __sk_common.skc_daddr);
		else
			BPF_CORE_READ_INTO(&fresh.raddr, sk,
					   __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
	if (bpf_map_update_elem(&conns, &key, &fresh, BPF_ANY))
		count_drop(KS_DROP_L7_CONNS_FULL);
	if (!sk)
		return NULL;
	return bpf_map_lookup_elem(&conns, &key);
}

static __always_inline int enter_io(int fd, const void *buf, __u32 op,
				    __u32 iovcnt)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	struct io_args a;

	if (tgid == self_tgid || fd < 0)
		return 0;
	if (!conn_of(tgid, fd))
		return 0;
	a.buf = (__u64)buf;
	a.fd = (__u32)fd;
	a.op = op;
	a.iovcnt = iovcnt;
	bpf_map_update_elem(&inflight_io, &id, &a, BPF_ANY);
	return 0;
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
				 __u32 flags)
{
	e->hdr.type = KS_EV_L7;
	e->hdr.pid = key >> 32;
	e->hdr.ts_ns = bpf_ktime_get_ns();
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
				 __u64 end_ns, __u32 flags)
{
	struct ks_l7_event *e;

	e = reserve_event(offsetof(struct ks_l7_event, data));
	if (!e)
		return;
	fill(e, c, key, kind, end_ns, flags);
	submit_event(e);
}

/* A record carrying up to KS_L7_DATA bytes copied from user memory. */
static __always_inline void emit_data(struct l7_conn *c, __u64 key,
				      __u32 kind, __u64 end_ns,
				      const void *src, __u64 n)
{
	__u32 total = n > 0xffffffffULL ? 0xffffffffU : (__u32)n;
	struct ks_l7_event *e;

	e = reserve_event(sizeof(*e));
	if (!e)
		return;
	fill(e, c, key, kind, end_ns, 0);
	if (n > KS_L7_DATA)
		n = KS_L7_DATA;
	VERIFIER_BOUND(n, 0x1ff);
	if (n > KS_L7_DATA || bpf_probe_read_user(e->data, n, src)) {
		bpf_ringbuf_discard(e, 0);
		return;
	}
	e->len = n;
	e->total_len = total;
	submit_event(e);
}

static __always_inline void finish(struct l7_conn *c, __u64 key, __u64 end_ns,
				   __u32 flags)
{
	emit(c, key, KS_L7_HTTP_DONE, end_ns, flags);
	c->state = ST_IDLE;
}

static __always_inline void server_read(struct l7_conn *c, __u64 key,
					const void *buf, long ret, __u64 now)
{
	__u64 w = 0;
	int kind;

	if (c->state == ST_REQ)
		return; /* request body */
	if (ret < 4)
		return;
	bpf_probe_read_user(&w, ret < 8 ? 4 : 8, buf);
	kind = is_request_start(w);
	if (!kind) {
		/* A server of a protocol we do not measure server-side (it
		 * reads commands): never mistake its answers for requests. */
		if (c->role == ROLE_UNKNOWN && c->state == ST_IDLE &&
		    ((__u8)w == '*' || (__u8)w == 'Q' || (__u8)w == 'P'))
			c->role = ROLE_IGNORE;
		return;
	}
	if (c->state == ST_RESP) /* length unknown: ended by this request */
		finish(c, key, c->last_write_ns, KS_L7_F_END_GUESSED);
	c->role = ROLE_SERVER;
	c->state = ST_REQ;
	c->flags = kind == 2 ? CF_HEAD_REQ : 0;
	c->status = 0;
	c->req_start_ns = now;
	c->written = 0;
	c->last_write_ns = now;
	emit_data(c, key, KS_L7_HTTP_REQUEST, 0, buf, ret);
}

struct head_scan {
	__u8 *b;
	__u32 n;
	__u32 head_len;
	__u32 cl_pos;
	__u32 chunked;
};

/* One byte position of the head; bpf_loop callback (verified once). */
static long scan_one(__u32 i, struct head_scan *h)
{
	__u64 j = i;
	__u8 *b;

	if (i < 12)
		return 0;
	if (i >= HEAD_SCAN - 4 || i + 4 > h->n)
		return 1;
	/* Keep the verifier's bound: the compiler may otherwise reuse the
	 * unmasked copy of i after the check. */
	asm volatile("%0 &= 0xff" : "+r"(j));
	b = h->b + j; /* b[0..18] stays inside the 512-byte scratch */
	if (b[0] == '\r' && b[1] == '\n' && b[2] == '\r' && b[3] == '\n') {
		h->head_len = i + 4;
		return 1;
	}
	if (b[0] != '\n')
		return 0;
	if ((b[1] | 0x20) == 'c' && b[8] == '-' && (b[9] | 0x20) == 'l' &&
	    b[15] == ':')
		h->cl_pos = i + 16;
	else if ((b[1] | 0x20) == 't' && b[9] == '-' &&
		 (b[10] | 0x20) == 'e' && b[18] == ':')
		h->chunked = 1;
	return 0;
}

/*
 * Parse a response head from its first bytes: status, head length and
 * body length. Headers are matched by the position of their dash, which
 * is enough to tell Content-Length from Transfer-Encoding.
 */
static __always_inline void parse_response(struct l7_conn *c, const void *buf,
					   __u32 n)
{
	struct head_scan h = {};
	__u32 zero = 0, i;
	__u64 len;
	__u64 clen = 0;
	struct scratch *s;
	__u16 status;

	s = bpf_map_lookup_elem(&scratch_buf, &zero);
	if (!s)
		return;
	if (n > HEAD_SCAN)
		n = HEAD_SCAN;
	__builtin_memset(s->b + HEAD_SCAN, 0, 64);
	len = n;
	VERIFIER_BOUND(len, 0x1ff);
	if (len > HEAD_SCAN || bpf_probe_read_user(s->b, len, buf))
		return;
	status = (s->b[9] - '0') * 100 + (s->b[10] - '0') * 10 +
		 (s->b[11] - '0');
	c->status = status;
	h.b = s->b;
	h.n = n;
	bpf_loop(HEAD_SCAN, scan_one, &h, 0);
	if (h.chunked)
		c->flags |= CF_CHUNKED;
	if (!h.head_len)
		return; /* head longer than we look: end by next request */
	if ((c->flags & CF_HEAD_REQ) || status == 204 || status == 304 ||
	    status < 200) {
		c->flags |= CF_NO_BODY | CF_LEN_KNOWN;
		c->expect_total = h.head_len;
		return;
	}
	if (h.chunked || !h.cl_pos)
		return;
	for (i = 0; i < 20; i++) {
		__u8 ch = s->b[(h.cl_pos + i) & 511];

		if (ch == ' ' && !clen)
			continue;
		if (ch < '0' || ch > '9')
			break;
		clen = clen * 10 + (ch - '0');
	}
	c->flags |= CF_LEN_KNOWN;
	c->expect_total = h.head_len + clen;
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
	__u64 w = 0;

	/* IDLE after a request: a pipelined request's response may follow. */
	if (c->state == ST_IDLE && !c->req_start_ns)
		return;
	if (c->state != ST_RESP) {
		if (first_len < 12)
			return;
		bpf_probe_read_user(&w, 8, first);
		if (w != 0x2e312f5054544855ULL) /* "HTTP/1." + any */ {
			if ((w & 0x00ffffffffffffffULL) != 0x2e312f50545448ULL)
				return;
		}
		/* A pipelined request's method is not known here. */
		c->flags &= c->state == ST_REQ ? CF_HEAD_REQ : 0;
		parse_response(c, first, (__u32)first_len);
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
			finish(c, key, now, 0);
	} else if ((c->flags & CF_CHUNKED) && ends_chunked(tail_end)) {
		finish(c, key, now, 0);
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
					    __u8 *head_req)
{
	__u8 b[8] = {}, next = 0;
	__u32 len;
	int k;

	if (n < 5 || bpf_probe_read_user(b, n < 8 ? 5 : 8, buf))
		return 0;
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
 * writes a pipeline as one buffer per command): gather the first
 * KS_L7_DATA bytes of up to 8 of them through the per-CPU scratch.
 */
static __always_inline void emit_iov(struct l7_conn *c, __u64 key,
				     const struct io_args *a, long ret)
{
	struct ks_l7_event *e;
	struct scratch *s;
	struct iovec iov;
	__u32 zero = 0, i;
	__u64 off = 0, n;

	s = bpf_map_lookup_elem(&scratch_buf, &zero);
	if (!s)
		return;
	for (i = 0; i < 8 && i < a->iovcnt && off < KS_L7_DATA; i++) {
		if (bpf_probe_read_user(&iov, sizeof(iov),
					(const void *)a->buf + i * sizeof(iov)))
			break;
		n = iov.iov_len;
		if (n > KS_L7_DATA - off)
			n = KS_L7_DATA - off;
		VERIFIER_BOUND(off, 0xff);
		VERIFIER_BOUND(n, 0x1ff);
		if (n > KS_L7_DATA ||
		    bpf_probe_read_user(s->b + off, n, iov.iov_base))
			break;
		off += n;
	}
	e = reserve_event(sizeof(*e));
	if (!e)
		return;
	fill(e, c, key, KS_L7_CLIENT_REQUEST, 0, 0);
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
					 __u64 now)
{
	__u8 head_req = 0;
	int proto;

	/* Mid-request writes are the rest of it; Redis commands are a
	 * stream and each write of them is recorded. */
	if (c->state != ST_IDLE && c->proto != KS_PROTO_REDIS)
		return;
	proto = classify_request(first, first_len, &head_req);
	if (!proto || (c->state != ST_IDLE && proto != c->proto))
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
	if (a->op == IO_WRITEV && a->iovcnt > 1)
		emit_iov(c, key, a, ret);
	else
		emit_data(c, key, KS_L7_CLIENT_REQUEST, 0, first, first_len);
}

static __always_inline void client_done(struct l7_conn *c, __u64 key,
					__u64 now, const void *src, __u64 n)
{
	if (n)
		emit_data(c, key, KS_L7_CLIENT_DONE, now, src, n);
	else
		emit(c, key, KS_L7_CLIENT_DONE, now, 0);
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
		/* PostgreSQL flushes an ErrorResponse at once, so it often
		 * begins a read of its own, before ReadyForQuery. */
		if (ret > 12)
			pg_sqlstate(c, buf);
		/* The answer ends with ReadyForQuery: 'Z', length 5, status. */
		if (ret < 6 || bpf_probe_read_user(t, 6, buf + ret - 6))
			return;
		if (t[0] != 'Z' || t[1] || t[2] || t[3] || t[4] != 5)
			return;
		if (ret > KS_L7_DATA)
			client_done(c, key, now, buf + ret - KS_L7_DATA,
				    KS_L7_DATA);
		else
			client_done(c, key, now, buf, ret);
	} else if (c->proto == KS_PROTO_REDIS) {
		emit_data(c, key, KS_L7_CLIENT_DONE, now, buf, ret);
	} else if (c->proto == KS_PROTO_HTTP) {
		if (!c->resp_started) {
			if (ret < 12)
				return;
			parse_response(c, buf, (__u32)ret);
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
	__u64 first_len = ret;
	struct iovec iov;
	__u32 i;

	if (c->role == ROLE_IGNORE)
		return;
	if (a->op == IO_SENDFILE) {
		/* File bytes: only counted towards a response under way. */
		if (c->role == ROLE_SERVER && c->state == ST_RESP) {
			c->written += ret;
			c->last_write_ns = now;
			if ((c->flags & CF_LEN_KNOWN) &&
			    c->written >= c->expect_total)
				finish(c, key, now, 0);
		}
		return;
	}
	tail_end = (const void *)(a->buf + ret);
	if (a->op == IO_WRITEV) {
		/* Head in the first buffer; the tail is the end of the last
		 * non-empty one. */
		if (bpf_probe_read_user(&iov, sizeof(iov), first))
			return;
		first = iov.iov_base;
		first_len = iov.iov_len;
		tail_end = first + first_len;
		for (i = 1; i < 16 && i < a->iovcnt; i++) {
			if (bpf_probe_read_user(&iov, sizeof(iov),
						(const void *)a->buf +
							i * sizeof(iov)))
				break;
			if (iov.iov_len)
				tail_end = iov.iov_base + iov.iov_len;
		}
	}
	if (c->role == ROLE_SERVER)
		server_write(c, key, first, first_len, tail_end, ret, now);
	else
		client_write(c, key, a, ret, first, first_len, now);
}

/* The pending syscall's arguments and its connection, or NULL. */
static __always_inline struct l7_conn *exit_conn(long ret, __u64 *key,
						 struct io_args *out)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct io_args *a;

	a = bpf_map_lookup_elem(&inflight_io, &id);
	if (!a)
		return NULL;
	*out = *a;
	bpf_map_delete_elem(&inflight_io, &id);
	if (ret <= 0)
		return NULL;
	*key = conn_key(id >> 32, out->fd);
	return bpf_map_lookup_elem(&conns, key);
}

static __always_inline int exit_read(long ret)
{
	struct l7_conn *c;
	struct io_args a;
	__u32 tid;
	__u64 key;

	c = exit_conn(ret, &key, &a);
	if (!c)
		return 0;
	/* A TLS library reading through a memory BIO decrypts on this
	 * thread next: its SSL object learns the socket from here. */
	tid = (__u32)bpf_get_current_pid_tgid();
	bpf_map_update_elem(&last_read_fd, &tid, &a.fd, BPF_ANY);
	on_read(c, key, (const void *)a.buf, ret, bpf_ktime_get_ns());
	return 0;
}

static __always_inline int exit_write(long ret)
{
	struct l7_conn *c;
	struct io_args a;
	__u64 key;

	c = exit_conn(ret, &key, &a);
	if (c)
		on_write(c, key, &a, ret, bpf_ktime_get_ns());
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_read")
int handle_read_enter(struct trace_event_raw_sys_enter *ctx)
{
	return enter_io((int)ctx->args[0], (const void *)ctx->args[1], IO_READ,
			0);
}

SEC("tracepoint/syscalls/sys_exit_read")
int handle_read_exit(struct trace_event_raw_sys_exit *ctx)
{
	return exit_read(ctx->ret);
}

SEC("tracepoint/syscalls/sys_enter_recvfrom")
int handle_recvfrom_enter(struct trace_event_raw_sys_enter *ctx)
{
	return enter_io((int)ctx->args[0], (const void *)ctx->args[1], IO_READ,
			0);
}

SEC("tracepoint/syscalls/sys_exit_recvfrom")
int handle_recvfrom_exit(struct trace_event_raw_sys_exit *ctx)
{
	return exit_read(ctx->ret);
}

SEC("tracepoint/syscalls/sys_enter_write")
int handle_write_enter(struct trace_event_raw_sys_enter *ctx)
{
	return enter_io((int)ctx->args[0], (const void *)ctx->args[1],
			IO_WRITE, 0);
}

SEC("tracepoint/syscalls/sys_exit_write")
int handle_write_exit(struct trace_event_raw_sys_exit *ctx)
{
	return exit_write(ctx->ret);
}

SEC("tracepoint/syscalls/sys_enter_sendto")
int handle_sendto_enter(struct trace_event_raw_sys_enter *ctx)
{
	return enter_io((int)ctx->args[0], (const void *)ctx->args[1],
			IO_WRITE, 0);
}

SEC("tracepoint/syscalls/sys_exit_sendto")
int handle_sendto_exit(struct trace_event_raw_sys_exit *ctx)
{
	return exit_write(ctx->ret);
}

SEC("tracepoint/syscalls/sys_enter_writev")
int handle_writev_enter(struct trace_event_raw_sys_enter *ctx)
{
	return enter_io((int)ctx->args[0], (const void *)ctx->args[1],
			IO_WRITEV, (__u32)ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_exit_writev")
int handle_writev_exit(struct trace_event_raw_sys_exit *ctx)
{
	return exit_write(ctx->ret);
}

/* readv/recvmsg: only the first buffer is looked at (heads are small). */
static __always_inline int enter_readv(int fd, const struct iovec *iov)
{
	struct iovec first;

	if (!iov || bpf_probe_read_user(&first, sizeof(first), iov))
		return 0;
	return enter_io(fd, first.iov_base, IO_READ, 0);
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

SEC("tracepoint/syscalls/sys_enter_readv")
int handle_readv_enter(struct trace_event_raw_sys_enter *ctx)
{
	return enter_readv((int)ctx->args[0], (const struct iovec *)ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_exit_readv")
int handle_readv_exit(struct trace_event_raw_sys_exit *ctx)
{
	return exit_read(ctx->ret);
}

SEC("tracepoint/syscalls/sys_enter_recvmsg")
int handle_recvmsg_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u32 cnt = 0;

	return enter_readv((int)ctx->args[0],
			   msg_iov((const void *)ctx->args[1], &cnt));
}

SEC("tracepoint/syscalls/sys_exit_recvmsg")
int handle_recvmsg_exit(struct trace_event_raw_sys_exit *ctx)
{
	return exit_read(ctx->ret);
}

SEC("tracepoint/syscalls/sys_enter_sendmsg")
int handle_sendmsg_enter(struct trace_event_raw_sys_enter *ctx)
{
	const struct iovec *iov;
	__u32 cnt = 0;

	iov = msg_iov((const void *)ctx->args[1], &cnt);
	if (!iov)
		return 0;
	return enter_io((int)ctx->args[0], iov, IO_WRITEV, cnt);
}

SEC("tracepoint/syscalls/sys_exit_sendmsg")
int handle_sendmsg_exit(struct trace_event_raw_sys_exit *ctx)
{
	return exit_write(ctx->ret);
}

/* sendfile(out_fd, in_fd, ...): body bytes of a response, never a head. */
SEC("tracepoint/syscalls/sys_enter_sendfile64")
int handle_sendfile_enter(struct trace_event_raw_sys_enter *ctx)
{
	return enter_io((int)ctx->args[0], NULL, IO_SENDFILE, 0);
}

SEC("tracepoint/syscalls/sys_exit_sendfile64")
int handle_sendfile_exit(struct trace_event_raw_sys_exit *ctx)
{
	return exit_write(ctx->ret);
}

/* ---- TLS plaintext: uprobes on OpenSSL in the process's binary ------ */

/* The connection of an SSL object: its own key (high bit set, so never an
 * fd), its addresses taken from the socket this thread read last. */
static __always_inline struct l7_conn *ssl_conn_of(__u32 tgid, __u64 ssl,
						   __u64 *key)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid(), *fd;
	struct l7_conn *c, fresh = {}, *sock;
	__u64 skey;

	*key = conn_key(tgid, 0x80000000U | (__u32)((ssl >> 4) & 0x7fffffff));
	c = bpf_map_lookup_elem(&conns, key);
	if (c)
		return c;
	fresh.kind = CK_TCP;
	fresh.tls = 1;
	fd = bpf_map_lookup_elem(&last_read_fd, &tid);
	if (fd) {
		skey = conn_key(tgid, *fd);
		sock = bpf_map_lookup_elem(&conns, &skey);
		if (sock) {
			fresh.lport = sock->lport;
			fresh.rport = sock->rport;
			fresh.family = sock->family;
			__builtin_memcpy(fresh.raddr, sock->raddr,
					 sizeof(fresh.raddr));
		}
	}
	if (bpf_map_update_elem(&conns, key, &fresh, BPF_ANY))
		count_drop(KS_DROP_L7_CONNS_FULL);
	return bpf_map_lookup_elem(&conns, key);
}

static __always_inline int ssl_enter(struct pt_regs *ctx, int ex)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct ssl_args a = {};

	if ((__u32)(id >> 32) == self_tgid)
		return 0;
	a.ssl = PT_REGS_PARM1(ctx);
	a.buf = PT_REGS_PARM2(ctx);
	a.nptr = ex ? PT_REGS_PARM4(ctx) : 0;
	bpf_map_update_elem(&ssl_inflight, &id, &a, BPF_ANY);
	return 0;
}

static __always_inline int ssl_exit(struct pt_regs *ctx, int write)
{
	__u64 id = bpf_get_current_pid_tgid(), key, n = 0;
	long rc = PT_REGS_RC(ctx);
	struct io_args io = {};
	struct ssl_args *a;
	struct l7_conn *c;

	a = bpf_map_lookup_elem(&ssl_inflight, &id);
	if (!a)
		return 0;
	if (a->nptr) {
		if (rc == 1)
			bpf_probe_read_user(&n, sizeof(n), (void *)a->nptr);
	} else if (rc > 0) {
		n = rc;
	}
	if (n > 0 && n < (1ULL << 31)) {
		c = ssl_conn_of(id >> 32, a->ssl, &key);
		if (c && !write) {
			on_read(c, key, (const void *)a->buf, (long)n,
				bpf_ktime_get_ns());
		} else if (c) {
			io.buf = a->buf;
			io.op = IO_WRITE;
			on_write(c, key, &io, (long)n, bpf_ktime_get_ns());
		}
	}
	bpf_map_delete_elem(&ssl_inflight, &id);
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

	c = bpf_map_lookup_elem(&conns, &key);
	if (!c)
		return 0;
	if (c->role == ROLE_CLIENT && c->state == ST_REQ)
		emit(c, key, KS_L7_CLIENT_ABORTED, bpf_ktime_get_ns(), 0);
	else if (c->state == ST_REQ)
		emit(c, key, KS_L7_HTTP_ABORTED, bpf_ktime_get_ns(), 0);
	else if (c->state == ST_RESP)
		emit(c, key, KS_L7_HTTP_DONE, c->last_write_ns,
		     KS_L7_F_END_GUESSED);
	bpf_map_delete_elem(&conns, &key);
	return 0;
}
