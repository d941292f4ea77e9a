/*
 * sysenv.c - host prerequisites, see sysenv.h.
 *
 * Capabilities are read with capget(2) directly: the agent needs to know
 * which one is missing to say so, and libcap would be one more dependency
 * for four bits. CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON, as
 * it does in the kernel. CAP_SYS_RESOURCE is not required: since 5.11 BPF
 * memory is charged to the memory cgroup, and RLIMIT_MEMLOCK is raised only
 * where that is allowed (sysenv_raise_memlock is best effort).
 */
#include "sysenv.h"

#include <errno.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif
#define TRACEFS_MAGIC_ 0x74726163
#define BPF_FS_MAGIC_ 0xcafe4a11

static int have_cap(const struct __user_cap_data_struct *d, int cap)
{
	return (d[cap / 32].effective >> (cap % 32)) & 1;
}

int sysenv_check_caps(char *msg, size_t len)
{
	static const struct {
		int cap;
		const char *name;
		int admin_ok; /* 1: CAP_SYS_ADMIN will do, 2: CAP_DAC_OVERRIDE */
	} need[] = {
		{ CAP_BPF, "CAP_BPF", 1 },
		{ CAP_PERFMON, "CAP_PERFMON", 1 },
		{ CAP_SYS_PTRACE, "CAP_SYS_PTRACE", 0 },
		{ CAP_DAC_READ_SEARCH, "CAP_DAC_READ_SEARCH", 2 },
	};
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	unsigned i;
	int admin;

	memset(data, 0, sizeof(data));
	if (syscall(SYS_capget, &hdr, data)) {
		snprintf(msg, len, "cannot read capabilities: %s",
			 strerror(errno));
		return -errno;
	}
	admin = have_cap(data, CAP_SYS_ADMIN);
	for (i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		if (have_cap(data, need[i].cap))
			continue;
		if (need[i].admin_ok == 1 && admin)
			continue;
		/* Reading tracefs ids and other users' /proc/PID/environ:
		 * CAP_DAC_OVERRIDE serves as well. */
		if (need[i].admin_ok == 2 && have_cap(data, CAP_DAC_OVERRIDE))
			continue;
		snprintf(msg, len,
			 "missing capability %s (%s): run as root, or grant CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH",
			 need[i].name,
			 geteuid() == 0 ? "root without it" : "not root");
		return -EPERM;
	}
	return 0;
}

int sysenv_check_btf(char *msg, size_t len)
{
	if (access("/sys/kernel/btf/vmlinux", R_OK) == 0)
		return 0;
	snprintf(msg, len,
		 "kernel BTF not found at /sys/kernel/btf/vmlinux (%s): katascope needs a kernel built with CONFIG_DEBUG_INFO_BTF=y",
		 strerror(errno));
	return -ENOENT;
}

static int is_fs(const char *path, long magic)
{
	struct statfs st;

	return statfs(path, &st) == 0 && (long)st.f_type == magic;
}

static int mount_if_absent(const char *path, const char *type, long magic,
			   char *msg, size_t len)
{
	if (is_fs(path, magic))
		return 0;
	mkdir(path, 0700);
	if (mount(type, path, type, 0, NULL) == 0)
		return 0;
	snprintf(msg, len, "cannot mount %s at %s: %s (needs CAP_SYS_ADMIN)",
		 type, path, strerror(errno));
	return -errno;
}

int sysenv_mount_fs(char *msg, size_t len)
{
	int err;

	err = mount_if_absent("/sys/kernel/tracing", "tracefs", TRACEFS_MAGIC_,
			      msg, len);
	if (err)
		return err;
	return mount_if_absent("/sys/fs/bpf", "bpf", BPF_FS_MAGIC_, msg, len);
}

int sysenv_raise_memlock(char *msg, size_t len)
{
	struct rlimit rl = { RLIM_INFINITY, RLIM_INFINITY };

	if (setrlimit(RLIMIT_MEMLOCK, &rl) == 0)
		return 0;
	snprintf(msg, len, "cannot raise RLIMIT_MEMLOCK: %s", strerror(errno));
	return -errno;
}
