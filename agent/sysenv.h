/*
 * sysenv.h - what the host must offer before any probe is loaded:
 * capabilities, kernel BTF, tracefs and bpffs, the memlock limit.
 * Each check fails with one line naming the cause and the fix.
 */
#ifndef KS_SYSENV_H
#define KS_SYSENV_H

#include <stddef.h>

/* 0, or -EPERM with msg naming the first missing capability. */
int sysenv_check_caps(char *msg, size_t len);
/* 0, or -ENOENT with msg when /sys/kernel/btf/vmlinux is absent. */
int sysenv_check_btf(char *msg, size_t len);
/* Mount tracefs at /sys/kernel/tracing and bpffs at /sys/fs/bpf if absent. */
int sysenv_mount_fs(char *msg, size_t len);
/* RLIMIT_MEMLOCK to infinity (kernels before 5.11 charge BPF maps there). */
int sysenv_raise_memlock(char *msg, size_t len);

#endif
