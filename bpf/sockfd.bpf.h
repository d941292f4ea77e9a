/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * sockfd.bpf.h - from a file descriptor of the current process to its
 * struct sock, asking the kernel rather than remembering accept/connect:
 * this is how connections opened before the agent started are recognised.
 */
#ifndef KS_SOCKFD_BPF_H
#define KS_SOCKFD_BPF_H

#include "common.bpf.h"

#define KS_S_IFMT 00170000
#define KS_S_IFSOCK 0140000
#define KS_AF_INET 2
#define KS_AF_INET6 10
#define KS_IPPROTO_TCP 6

/* The TCP sock of an open file, or NULL. */
static __always_inline struct sock *tcp_sock_of_file(struct file *file)
{
	struct socket *sock;
	struct sock *sk;
	umode_t mode;
	__u16 family;

	if (!file)
		return NULL;
	mode = BPF_CORE_READ(file, f_inode, i_mode);
	if ((mode & KS_S_IFMT) != KS_S_IFSOCK)
		return NULL;
	sock = BPF_CORE_READ(file, private_data);
	if (!sock)
		return NULL;
	sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return NULL;
	if (BPF_CORE_READ(sk, sk_protocol) != KS_IPPROTO_TCP)
		return NULL;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != KS_AF_INET && family != KS_AF_INET6)
		return NULL;
	return sk;
}

/* The TCP sock behind fd in the current task, or NULL. */
static __always_inline struct sock *tcp_sock_of_fd(int fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt;
	struct file **fds, *file;
	unsigned int max_fds;

	if (fd < 0)
		return NULL;
	fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt)
		return NULL;
	max_fds = BPF_CORE_READ(fdt, max_fds);
	if ((unsigned int)fd >= max_fds)
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]))
		return NULL;
	return tcp_sock_of_file(file);
}

#endif
