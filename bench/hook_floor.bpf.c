// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bench/hook_floor.bpf.c - empty programs on the hooks the agent uses by
 * default (bench/hook_floor.py). Each returns at once: what is left is the
 * cost of being hooked at all (the kernel's traced-syscall path, the
 * tracepoint and BPF dispatch, the uprobe traps), the floor under any
 * program body. Built and loaded by bench/hook_floor.c.
 */
#include <stdbool.h>
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/usdt.bpf.h>

#define EMPTY(sec, name)                                                       \
	SEC(sec) int name(void *ctx)                                           \
	{                                                                      \
		return 0;                                                      \
	}

/* socket syscalls (l7.bpf.c, tcp.bpf.c) */
EMPTY("tracepoint/syscalls/sys_exit_read", floor_read)
EMPTY("tracepoint/syscalls/sys_exit_readv", floor_readv)
EMPTY("tracepoint/syscalls/sys_exit_recvfrom", floor_recvfrom)
EMPTY("tracepoint/syscalls/sys_exit_recvmsg", floor_recvmsg)
EMPTY("tracepoint/syscalls/sys_exit_write", floor_write)
EMPTY("tracepoint/syscalls/sys_exit_writev", floor_writev)
EMPTY("tracepoint/syscalls/sys_exit_sendto", floor_sendto)
EMPTY("tracepoint/syscalls/sys_exit_sendmsg", floor_sendmsg)
EMPTY("tracepoint/syscalls/sys_exit_sendfile64", floor_sendfile)
EMPTY("tracepoint/syscalls/sys_exit_accept", floor_accept)
EMPTY("tracepoint/syscalls/sys_exit_accept4", floor_accept4)
EMPTY("tracepoint/syscalls/sys_enter_close", floor_close)
/* tcp, process, scheduler */
EMPTY("raw_tp/inet_sock_set_state", floor_set_state)
EMPTY("raw_tp/tcp_retransmit_skb", floor_retransmit)
EMPTY("tracepoint/sched/sched_process_exec", floor_exec)
EMPTY("tracepoint/sched/sched_process_exit", floor_exit)
EMPTY("raw_tp/sched_process_fork", floor_fork)
EMPTY("raw_tp/sched_switch", floor_switch)
/* the Node event loop, as the agent narrows it for Node 20 */
EMPTY("tracepoint/syscalls/sys_enter_epoll_pwait", floor_pwait_enter)
EMPTY("tracepoint/syscalls/sys_exit_epoll_pwait", floor_pwait_exit)
/* the CPU sampler (perf event) and the PostgreSQL USDT probes; attached
 * by the loader, not by section */
EMPTY("perf_event", floor_cpu_sample)
EMPTY("usdt", floor_usdt)

char LICENSE[] SEC("license") = "Dual BSD/GPL";
