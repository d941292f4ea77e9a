/*
 * procinfo.h - who a process is: container, pod, service name, identity.
 *
 * Two layers. The parsers (cgroup_parse, environ_get, exe_basename) are pure
 * functions over bytes a caller already holds, so tests and fuzzers feed them
 * any content directly. The readers (procinfo_read, proc_rss_bytes,
 * proc_foreach_pid) take a proc_root so tests can point them at a fake tree
 * built in a temporary directory; production passes "/proc".
 *
 * Everything read from /proc is untrusted: a process can rewrite its environ
 * with a title, comm may hold spaces and parentheses, a file may be cut short
 * because the process exited mid-read. The parsers never read past len and
 * never need a NUL terminator; the readers use fixed-size buffers.
 */
#ifndef KS_PROCINFO_H
#define KS_PROCINFO_H

#include <stddef.h>

#define PI_ID_LEN 65  /* container id: 64 hex + NUL */
#define PI_UID_LEN 37 /* pod uid, canonical 8-4-4-4-12 with dashes + NUL */
#define PI_NAME_LEN 128
#define PI_PATH_LEN 256

/*
 * Parse the contents of /proc/PID/cgroup (cgroup v1 lines
 * "hier:controllers:path" and v2 "0::path").
 *
 * Finds a container id (64 hex chars) and a Kubernetes pod UID in the path
 * forms of docker (/docker/<id>, /system.slice/docker-<id>.scope),
 * containerd/cri-containerd (kubepods/.../pod<uid>/<id>,
 * kubepods-burstable-pod<uid_with_underscores>.slice/cri-containerd-<id>
 * .scope), cri-o (crio-<id>.scope), podman (libpod-<id>.scope), systemd
 * slices, both cgroupfs and systemd drivers, burstable/besteffort/guaranteed
 * QoS.
 *
 * Pod UIDs written with underscores in systemd slice names are returned with
 * dashes; static pods, whose UID is a 32-hex config hash, are returned as
 * written. Container ids are never taken from ".slice" components (podman pod
 * slices carry a 64-hex pod id) nor from conmon scopes (the runtime monitor,
 * which is not inside the container). When a path nests containers
 * (kind, docker-in-docker) the innermost id wins. Outputs are "" when absent.
 *
 * Returns 0 (also when nothing found), -EINVAL on NULL.
 */
int cgroup_parse(const char *text, size_t len, char container_id[PI_ID_LEN],
		 char pod_uid[PI_UID_LEN]);

/*
 * Find KEY in a NUL-separated environ block (as read from /proc/PID/environ;
 * may lack the final NUL; may be garbage when a process overwrote it with its
 * title). The first occurrence wins, as with getenv(). Copies the value
 * (truncated to outlen-1, always NUL-terminated when outlen > 0) and returns
 * the value's full length, so a result >= outlen means it was truncated.
 * Returns -ENOENT when KEY is absent, -EINVAL on NULL or an empty key.
 */
int environ_get(const char *env, size_t len, const char *key, char *out,
		size_t outlen);

/* Base name of an executable path, with a trailing " (deleted)" removed. */
void exe_basename(const char *path, char *out, size_t outlen);

struct procinfo {
	int pid, ppid;
	char comm[16];
	/* readlink /proc/PID/exe, "" if unreadable (kernel threads) */
	char exe[PI_PATH_LEN];
	/* OTEL_SERVICE_NAME from environ, "" if none */
	char otel_service_name[PI_NAME_LEN];
	char container_id[PI_ID_LEN];
	char pod_uid[PI_UID_LEN];
	/* field 22 of /proc/PID/stat, clock ticks since boot */
	unsigned long long start_time;
	/* 1 for kernel threads (PF_KTHREAD, 0x00200000, in stat field 9) */
	int kthread;
};

/*
 * Read /proc/PID (proc_root is "/proc" in production, a fake tree in tests).
 * ppid, comm and start_time from /proc/PID/stat (comm may contain spaces and
 * ')': parsed from the LAST ')'). Missing or unreadable files other than stat
 * leave their fields empty. Returns 0, -ENOENT if the process is gone (stat
 * unreadable), -EINVAL on NULL arguments or a malformed stat line.
 */
int procinfo_read(const char *proc_root, int pid, struct procinfo *pi);

/*
 * Resident set size in bytes from /proc/PID/statm (field 2 * page size), or
 * -errno (-ENOENT when the process is gone, -EINVAL on malformed content).
 */
long long proc_rss_bytes(const char *proc_root, int pid);

/*
 * Call fn for every numeric entry of proc_root (every process). A negative
 * return from fn stops the walk and is returned. Returns the number of calls
 * made, or -errno.
 */
int proc_foreach_pid(const char *proc_root, int (*fn)(int pid, void *arg),
		     void *arg);

#endif
