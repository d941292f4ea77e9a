/*
 * procinfo.c - container, pod and service identity of a process.
 *
 * Container runtimes do not agree on where they put a container's id in its
 * cgroup path (docker/<id>, docker-<id>.scope, cri-containerd-<id>.scope,
 * crio-<id>.scope, libpod-<id>.scope, kubepods/.../<id>) and Kubernetes
 * writes the pod UID two ways (pod<uid> under cgroupfs, pod<uid_with_
 * underscores>.slice under systemd). Rather than a table of runtime
 * patterns that goes stale with every new runtime, cgroup_parse looks at
 * each path component for shapes: a run of exactly 64 hex digits bounded by
 * non-alphanumerics is a container id, a "pod" token at a word start
 * followed by a UUID (or a 32-hex static-pod hash) is a pod UID. Two
 * exclusions keep this honest: ".slice" components are never containers
 * (podman pods name slices after a 64-hex pod id) and conmon scopes are the
 * runtime's monitor, not the container. The innermost match of a line wins
 * so nested setups (kind, docker-in-docker) name the process's own
 * container; across v1 lines the first line that names a container wins.
 *
 * The readers open /proc/PID once as a directory and read everything else
 * relative to that fd. If the pid dies and is reused between reads, the old
 * directory fd keeps answering for the old process (with ESRCH) rather than
 * silently describing the new one.
 */
#include "procinfo.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PF_KTHREAD 0x00200000ULL
#define ENVIRON_MAX (64 * 1024)
#define CGROUP_MAX (8 * 1024)
#define STAT_MAX 4096
#define STAT_LAST_FIELD 22
#define UUID_LEN 36
#define HASH_UID_LEN 32

static int is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	       (c >= 'A' && c <= 'F');
}

static int is_alnum(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z');
}

static int has_suffix(const char *s, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);

	return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

static int contains(const char *s, size_t len, const char *needle)
{
	size_t n = strlen(needle), i;

	for (i = 0; i + n <= len; i++)
		if (memcmp(s + i, needle, n) == 0)
			return 1;
	return 0;
}

/* Exactly 64 hex digits, bounded by the component's ends or non-alnums. */
static const char *find_container_id(const char *c, size_t len)
{
	const char *found = NULL;
	size_t i = 0, start;

	if (has_suffix(c, len, ".slice") || contains(c, len, "conmon"))
		return NULL;
	while (i < len) {
		if (!is_hex(c[i])) {
			i++;
			continue;
		}
		start = i;
		while (i < len && is_hex(c[i]))
			i++;
		if (i - start == PI_ID_LEN - 1 &&
		    (start == 0 || !is_alnum(c[start - 1])) &&
		    (i == len || !is_alnum(c[i])))
			found = c + start;
	}
	return found;
}

/* 8-4-4-4-12 hex with one separator ('-' or '_') used throughout. */
static int is_uuid(const char *s, size_t len)
{
	char sep;
	size_t i;

	if (len < UUID_LEN)
		return 0;
	sep = s[8];
	if (sep != '-' && sep != '_')
		return 0;
	for (i = 0; i < UUID_LEN; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != sep)
				return 0;
		} else if (!is_hex(s[i])) {
			return 0;
		}
	}
	return 1;
}

static int all_hex(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (!is_hex(s[i]))
			return 0;
	return 1;
}

/* The UID must end the component or be followed by a suffix like ".slice". */
static int uid_ends(const char *c, size_t len, size_t end)
{
	return end == len || c[end] == '.';
}

/*
 * "pod<uid>" at the start of the component (cgroupfs) or after a '-'
 * (systemd "kubepods-besteffort-pod<uid>.slice"). Writes the UID with dashes.
 */
static int find_pod_uid(const char *c, size_t len, char uid[PI_UID_LEN])
{
	size_t i, rest, k;
	const char *u;

	for (i = 0; i + 3 <= len; i++) {
		if (memcmp(c + i, "pod", 3) || (i > 0 && c[i - 1] != '-'))
			continue;
		u = c + i + 3;
		rest = len - i - 3;
		if (is_uuid(u, rest) && uid_ends(c, len, i + 3 + UUID_LEN)) {
			for (k = 0; k < UUID_LEN; k++)
				uid[k] = u[k] == '_' ? '-' : u[k];
			uid[UUID_LEN] = '\0';
			return 1;
		}
		if (rest >= HASH_UID_LEN && all_hex(u, HASH_UID_LEN) &&
		    uid_ends(c, len, i + 3 + HASH_UID_LEN)) {
			memcpy(uid, u, HASH_UID_LEN);
			uid[HASH_UID_LEN] = '\0';
			return 1;
		}
	}
	return 0;
}

/* One cgroup path: the innermost container id and pod UID, "" if none. */
static void parse_cgroup_path(const char *p, size_t len, char id[PI_ID_LEN],
			      char uid[PI_UID_LEN])
{
	const char *end = p + len, *c, *slash, *hit;
	char tmp[PI_UID_LEN];

	id[0] = uid[0] = '\0';
	for (c = p; c < end; c = slash + 1) {
		slash = memchr(c, '/', end - c);
		if (!slash)
			slash = end;
		hit = find_container_id(c, slash - c);
		if (hit) {
			memcpy(id, hit, PI_ID_LEN - 1);
			id[PI_ID_LEN - 1] = '\0';
		}
		if (find_pod_uid(c, slash - c, tmp))
			memcpy(uid, tmp, PI_UID_LEN);
	}
}

/* The path of a "hier:controllers:path" line, or NULL if it has no two ':'. */
static const char *cgroup_line_path(const char *line, size_t len, size_t *plen)
{
	const char *a, *b;

	a = memchr(line, ':', len);
	if (!a)
		return NULL;
	b = memchr(a + 1, ':', line + len - (a + 1));
	if (!b)
		return NULL;
	*plen = line + len - (b + 1);
	return b + 1;
}

int cgroup_parse(const char *text, size_t len, char container_id[PI_ID_LEN],
		 char pod_uid[PI_UID_LEN])
{
	const char *end, *line, *nl, *path;
	char id[PI_ID_LEN], uid[PI_UID_LEN];
	size_t plen;

	if (!text || !container_id || !pod_uid)
		return -EINVAL;
	container_id[0] = pod_uid[0] = '\0';
	end = text + len;
	for (line = text; line < end; line = nl + 1) {
		nl = memchr(line, '\n', end - line);
		if (!nl)
			nl = end;
		path = cgroup_line_path(line, nl - line, &plen);
		if (!path)
			continue;
		parse_cgroup_path(path, plen, id, uid);
		if (!container_id[0] && id[0]) {
			memcpy(container_id, id, PI_ID_LEN);
			if (uid[0])
				memcpy(pod_uid, uid, PI_UID_LEN);
		} else if (!pod_uid[0] && uid[0]) {
			memcpy(pod_uid, uid, PI_UID_LEN);
		}
	}
	return 0;
}

int environ_get(const char *env, size_t len, const char *key, char *out,
		size_t outlen)
{
	size_t klen, pos = 0, elen, vlen, n;
	const char *entry, *nul;

	if (!env || !key || (!out && outlen))
		return -EINVAL;
	klen = strlen(key);
	if (!klen || strchr(key, '='))
		return -EINVAL;
	while (pos < len) {
		entry = env + pos;
		nul = memchr(entry, '\0', len - pos);
		elen = nul ? (size_t)(nul - entry) : len - pos;
		pos += elen + 1;
		if (elen <= klen || entry[klen] != '=' ||
		    memcmp(entry, key, klen))
			continue;
		vlen = elen - klen - 1;
		if (outlen) {
			n = vlen < outlen - 1 ? vlen : outlen - 1;
			memcpy(out, entry + klen + 1, n);
			out[n] = '\0';
		}
		return vlen > INT_MAX ? INT_MAX : (int)vlen;
	}
	return -ENOENT;
}

void exe_basename(const char *path, char *out, size_t outlen)
{
	static const char deleted[] = " (deleted)";
	const char *base, *slash;
	size_t n;

	if (!out || !outlen)
		return;
	out[0] = '\0';
	if (!path)
		return;
	slash = strrchr(path, '/');
	base = slash ? slash + 1 : path;
	n = strlen(base);
	if (has_suffix(base, n, deleted))
		n -= sizeof(deleted) - 1;
	if (n > outlen - 1)
		n = outlen - 1;
	memcpy(out, base, n);
	out[n] = '\0';
}

/* Read up to cap bytes of a file relative to dirfd; bytes read or -errno. */
static ssize_t read_at(int dirfd, const char *name, char *buf, size_t cap)
{
	size_t got = 0;
	ssize_t n;
	int fd, err = 0;

	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (got < cap) {
		n = read(fd, buf + got, cap - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			break;
		}
		if (n == 0)
			break;
		got += n;
	}
	close(fd);
	return err ? err : (ssize_t)got;
}

/* Split the fields after comm's ')' into field[3..STAT_LAST_FIELD]. */
static int stat_fields(char *p, char *field[STAT_LAST_FIELD + 1])
{
	int i;

	for (i = 3; i <= STAT_LAST_FIELD; i++) {
		while (*p == ' ')
			p++;
		if (!*p || *p == '\n')
			return -EINVAL;
		field[i] = p;
		while (*p && *p != ' ' && *p != '\n')
			p++;
		if (*p)
			*p++ = '\0';
	}
	return 0;
}

static int parse_ull(const char *s, unsigned long long *v)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	*v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	return 0;
}

/* "pid (comm) state ppid ...": comm may hold spaces and ')'. */
static int parse_stat(char *buf, size_t len, struct procinfo *pi)
{
	char *field[STAT_LAST_FIELD + 1];
	unsigned long long ppid, flags, start;
	char *lp, *rp = NULL;
	size_t i, n;

	lp = memchr(buf, '(', len);
	for (i = len; i > 0; i--) {
		if (buf[i - 1] == ')') {
			rp = buf + i - 1;
			break;
		}
	}
	if (!lp || !rp || rp < lp)
		return -EINVAL;
	if (stat_fields(rp + 1, field) || parse_ull(field[4], &ppid) ||
	    parse_ull(field[9], &flags) || parse_ull(field[22], &start) ||
	    ppid > INT_MAX)
		return -EINVAL;
	n = rp - lp - 1;
	if (n > sizeof(pi->comm) - 1)
		n = sizeof(pi->comm) - 1;
	memcpy(pi->comm, lp + 1, n);
	pi->comm[n] = '\0';
	pi->ppid = (int)ppid;
	pi->kthread = !!(flags & PF_KTHREAD);
	pi->start_time = start;
	return 0;
}

static int read_stat(int dfd, struct procinfo *pi)
{
	char buf[STAT_MAX];
	ssize_t n;

	n = read_at(dfd, "stat", buf, sizeof(buf) - 1);
	if (n == -ESRCH || n == -ENOENT || n == 0)
		return -ENOENT;
	if (n < 0)
		return (int)n;
	buf[n] = '\0';
	return parse_stat(buf, n, pi);
}

static void read_exe(int dfd, struct procinfo *pi)
{
	ssize_t n;

	n = readlinkat(dfd, "exe", pi->exe, sizeof(pi->exe) - 1);
	pi->exe[n > 0 ? n : 0] = '\0';
}

static void read_environ(int dfd, struct procinfo *pi)
{
	char *buf;
	ssize_t n;

	buf = malloc(ENVIRON_MAX);
	if (!buf)
		return;
	n = read_at(dfd, "environ", buf, ENVIRON_MAX);
	if (n > 0)
		environ_get(buf, n, "OTEL_SERVICE_NAME", pi->otel_service_name,
			    sizeof(pi->otel_service_name));
	free(buf);
}

static void read_cgroup(int dfd, struct procinfo *pi)
{
	char buf[CGROUP_MAX];
	ssize_t n;

	n = read_at(dfd, "cgroup", buf, sizeof(buf));
	if (n > 0)
		cgroup_parse(buf, n, pi->container_id, pi->pod_uid);
}

static int open_pid_dir(const char *proc_root, int pid)
{
	char path[PATH_MAX];
	int fd, n;

	n = snprintf(path, sizeof(path), "%s/%d", proc_root, pid);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ESRCH ? -ENOENT : -errno;
	return fd;
}

int procinfo_read(const char *proc_root, int pid, struct procinfo *pi)
{
	int dfd, err;

	if (!proc_root || !pi || pid <= 0)
		return -EINVAL;
	memset(pi, 0, sizeof(*pi));
	pi->pid = pid;
	dfd = open_pid_dir(proc_root, pid);
	if (dfd < 0)
		return dfd;
	err = read_stat(dfd, pi);
	if (err)
		goto out;
	read_exe(dfd, pi);
	read_environ(dfd, pi);
	read_cgroup(dfd, pi);
out:
	close(dfd);
	return err;
}

long long proc_rss_bytes(const char *proc_root, int pid)
{
	unsigned long long pages;
	char buf[256], *p, *end;
	long page;
	ssize_t n;
	int dfd;

	if (!proc_root || pid <= 0)
		return -EINVAL;
	dfd = open_pid_dir(proc_root, pid);
	if (dfd < 0)
		return dfd;
	n = read_at(dfd, "statm", buf, sizeof(buf) - 1);
	close(dfd);
	if (n < 0)
		return n == -ESRCH ? -ENOENT : n;
	buf[n] = '\0';
	p = strchr(buf, ' ');
	if (!p || p[1] < '0' || p[1] > '9')
		return -EINVAL;
	errno = 0;
	pages = strtoull(p + 1, &end, 10);
	if (errno || (*end && *end != ' ' && *end != '\n'))
		return -EINVAL;
	page = sysconf(_SC_PAGESIZE);
	if (page <= 0 || pages > (unsigned long long)LLONG_MAX / page)
		return -EOVERFLOW;
	return (long long)pages * page;
}

/* A positive int written only in digits, as /proc names processes. */
static int pid_from_name(const char *name)
{
	long v = 0;

	if (!*name)
		return -1;
	for (; *name; name++) {
		if (*name < '0' || *name > '9')
			return -1;
		v = v * 10 + (*name - '0');
		if (v > INT_MAX)
			return -1;
	}
	return v > 0 ? (int)v : -1;
}

int proc_foreach_pid(const char *proc_root, int (*fn)(int pid, void *arg),
		     void *arg)
{
	struct dirent *de;
	int count = 0, pid, err = 0;
	DIR *dir;

	if (!proc_root || !fn)
		return -EINVAL;
	dir = opendir(proc_root);
	if (!dir)
		return -errno;
	for (;;) {
		errno = 0;
		de = readdir(dir);
		if (!de) {
			err = errno ? -errno : 0;
			break;
		}
		pid = pid_from_name(de->d_name);
		if (pid < 0)
			continue;
		count++;
		err = fn(pid, arg);
		if (err < 0)
			break;
		err = 0;
	}
	closedir(dir);
	return err < 0 ? err : count;
}
