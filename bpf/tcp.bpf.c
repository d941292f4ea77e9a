// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tcp.bpf.c - TCP connection telemetry without per-packet events.
 *
 * A connection is remembered in `socks` (LRU, keyed by struct sock address)
 * from the moment a process owns it: at SYN_SENT for connect(), which runs
 * in the connecting process, and at the return of accept() for the server
 * side. State changes seen later in softirq context (where `current` is
 * whatever was running, on loopback often the peer) are attributed through
 * that entry, never through `current`. Opens, failed connects, connect
 * latency and retransmits are counted in pid_stats; one ring-buffer record
 * per connection is sent at close with its byte counts and smoothed RTT.
 * Connections that existed before the agent started are not attributed.
 */
#include "sockfd.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define KS_SOCKS_MAX 65536

struct sock_info {
	__u64 start_ns;
	__u32 tgid;
	__u8 dir;
	__u8 established;
	__u8 fin_rcvd; /* went through CLOSE_WAIT: the peer's FIN came first */
	__u8 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, KS_SOCKS_MAX);
	__type(key, __u64);
	__type(value, struct sock_info);
} socks SEC(".maps");

static __always_inline void remember(struct sock *sk, __u32 tgid, __u8 dir,
				     __u8 established)
{
	struct sock_info si = {
		.start_ns = bpf_ktime_get_ns(),
		.tgid = tgid,
		.dir = dir,
		.established = established,
	};
	__u64 key = (__u64)sk;

	if (bpf_map_update_elem(&socks, &key, &si, BPF_ANY))
		count_drop(KS_DROP_SOCKS_FULL);
}

static __always_inline void emit_close(struct sock *sk, struct sock_info *si,
				      int fin_rcvd)
{
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	struct ks_tcp_close_event *e;
	__u64 now = bpf_ktime_get_ns();

	e = reserve_event(sizeof(*e));
	if (!e)
		return;
	e->hdr.type = KS_EV_TCP_CLOSE;
	e->hdr.pid = si->tgid;
	e->hdr.ts_ns = now;
	/* Payload only: bytes_acked and bytes_received count SYN and FIN
	 * in sequence space, so use data bytes sent less retransmissions,
	 * and take the peer's FIN off what was received. */
	e->bytes_sent = BPF_CORE_READ(tp, bytes_sent) -
			BPF_CORE_READ(tp, bytes_retrans);
	e->bytes_received = BPF_CORE_READ(tp, bytes_received);
	if (fin_rcvd && e->bytes_received)
		e->bytes_received--;
	e->duration_ns = now - si->start_ns;
	e->srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3;
	e->total_retrans = BPF_CORE_READ(tp, total_retrans);
	e->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	e->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	e->dport = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
	e->dir = si->dir;
	e->established = si->established;
	if (e->family == KS_AF_INET) {
		/* BPF_CORE_READ_INTO copies sizeof(*dst): 4-byte values
		 * here, the rest of the 16 zero. */
		__u32 s4 = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__u32 d4 = BPF_CORE_READ(sk, __sk_common.skc_daddr);

		__builtin_memset(e->saddr, 0, sizeof(e->saddr));
		__builtin_memset(e->daddr, 0, sizeof(e->daddr));
		__builtin_memcpy(e->saddr, &s4, sizeof(s4));
		__builtin_memcpy(e->daddr, &d4, sizeof(d4));
	} else {
		BPF_CORE_READ_INTO(&e->saddr, sk,
				   __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&e->daddr, sk,
				   __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
	submit_event(e);
}

/* args: (const struct sock *sk, int oldstate, int newstate) */
SEC("raw_tp/inet_sock_set_state")
int handle_set_state(struct bpf_raw_tracepoint_args *ctx)
{
	struct sock *sk = (struct sock *)ctx->args[0];
	int oldstate = (int)ctx->args[1];
	int newstate = (int)ctx->args[2];
	struct ks_pid_stats *st;
	struct sock_info *si;
	__u64 key = (__u64)sk, lat;
	__u32 tgid;

	if (BPF_CORE_READ(sk, sk_protocol) != KS_IPPROTO_TCP)
		return 0;

	if (newstate == TCP_SYN_SENT) {
		tgid = bpf_get_current_pid_tgid() >> 32;
		if (tgid != self_tgid)
			remember(sk, tgid, KS_TCP_ACTIVE, 0);
		return 0;
	}

	si = bpf_map_lookup_elem(&socks, &key);
	if (!si)
		return 0;

	if (oldstate == TCP_SYN_SENT && newstate == TCP_ESTABLISHED) {
		lat = bpf_ktime_get_ns() - si->start_ns;
		si->established = 1;
		st = pid_stats_of(si->tgid);
		if (st) {
			ADD(st->tcp_active_opens, 1);
			ADD(st->connect_lat_sum_ns, lat);
			ADD(st->connect_lat[lat_bucket(lat)], 1);
		}
		return 0;
	}

	if (newstate == TCP_CLOSE_WAIT) {
		si->fin_rcvd = 1;
		return 0;
	}
	if (newstate != TCP_CLOSE)
		return 0;
	if (oldstate == TCP_SYN_SENT) {
		st = pid_stats_of(si->tgid);
		if (st)
			ADD(st->tcp_failed_connects, 1);
	} else if (si->established) {
		/* FIN_WAIT2/CLOSING -> CLOSE: the peer's FIN ended our close
		 * (the socket becomes a timewait mini-socket). */
		emit_close(sk, si,
			   si->fin_rcvd || oldstate == TCP_FIN_WAIT2 ||
				   oldstate == TCP_CLOSING);
	}
	bpf_map_delete_elem(&socks, &key);
	return 0;
}

static __always_inline int on_accept_exit(long ret)
{
	struct ks_pid_stats *st;
	struct sock *sk;
	__u32 tgid;

	if (ret < 0)
		return 0;
	tgid = bpf_get_current_pid_tgid() >> 32;
	if (tgid == self_tgid)
		return 0;
	sk = tcp_sock_of_fd((int)ret);
	if (!sk)
		return 0;
	remember(sk, tgid, KS_TCP_PASSIVE, 1);
	st = pid_stats_of(tgid);
	if (st)
		ADD(st->tcp_passive_opens, 1);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int handle_accept4_exit(struct trace_event_raw_sys_exit *ctx)
{
	return on_accept_exit(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int handle_accept_exit(struct trace_event_raw_sys_exit *ctx)
{
	return on_accept_exit(ctx->ret);
}

/* args: (const struct sock *sk, const struct sk_buff *skb, ...) */
SEC("raw_tp/tcp_retransmit_skb")
int handle_retransmit(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 key = ctx->args[0];
	struct ks_pid_stats *st;
	struct sock_info *si;

	si = bpf_map_lookup_elem(&socks, &key);
	if (!si)
		return 0;
	st = pid_stats_of(si->tgid);
	if (st)
		ADD(st->tcp_retransmits, 1);
	return 0;
}
