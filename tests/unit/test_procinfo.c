/*
 * test_procinfo.c - cgroup/environ/exe parsers on real-world samples and
 * garbage, the /proc readers on a fake tree built in a temporary directory,
 * and procinfo_read on this process and a child exec'd with a known
 * environment.
 *
 * Parser inputs are copied into heap buffers of exactly their length so
 * ASan catches any read past len (the parsers must not need a NUL).
 */
#define _GNU_SOURCE /* nftw */
#include "check.h"
#include "procinfo.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ID1 "59e2535ac5acbc6a68058b1f38287d33d019cff45203b1a982d87d528a117b41"
#define ID2 "047d7595790127b4beca580c77b8056aec7341fb6a6c04f3196116da8c87bb87"
#define ID3 "6f8465d69be79748e9a823836a7b06e62575bc58c5f9886af8a7925cb30f391d"
#define UID1 "0f2a6b3c-1d4e-4f5a-9b6c-7d8e9fa0b1c2"
#define UID1_ "0f2a6b3c_1d4e_4f5a_9b6c_7d8e9fa0b1c2"
#define HASH "6d3a9ab5b5d8e36ab4b2ee6cfc0f73d8"

static char got_id[PI_ID_LEN], got_uid[PI_UID_LEN];

/* cgroup_parse on an exact-length heap copy of text[0..len). */
static int parse_n(const char *text, size_t len)
{
	char *copy = malloc(len ? len : 1);
	int err;

	memcpy(copy, text, len);
	err = cgroup_parse(copy, len, got_id, got_uid);
	free(copy);
	return err;
}

static int parse(const char *text)
{
	return parse_n(text, strlen(text));
}

#define EXPECT_CG(text, id, uid)                                               \
	do {                                                                   \
		CHECK_INT(parse(text), 0);                                     \
		CHECK_STR(got_id, id);                                         \
		CHECK_STR(got_uid, uid);                                       \
	} while (0)

static void test_cgroup_docker(void)
{
	/* docker, cgroup v1, cgroupfs driver: every controller names it. */
	EXPECT_CG("12:pids:/docker/" ID1 "\n"
		  "11:hugetlb:/docker/" ID1 "\n"
		  "10:net_cls,net_prio:/docker/" ID1 "\n"
		  "9:perf_event:/docker/" ID1 "\n"
		  "8:cpu,cpuacct:/docker/" ID1 "\n"
		  "7:memory:/docker/" ID1 "\n"
		  "6:devices:/docker/" ID1 "\n"
		  "5:blkio:/docker/" ID1 "\n"
		  "4:freezer:/docker/" ID1 "\n"
		  "3:cpuset:/docker/" ID1 "\n"
		  "2:rdma:/\n"
		  "1:name=systemd:/docker/" ID1 "\n"
		  "0::/system.slice/containerd.service\n",
		  ID1, "");
	/* docker, cgroup v1, systemd driver. */
	EXPECT_CG("11:memory:/system.slice/docker-" ID1 ".scope\n"
		  "1:name=systemd:/system.slice/docker-" ID1 ".scope\n",
		  ID1, "");
	/* docker, cgroup v2, systemd driver (host view). */
	EXPECT_CG("0::/system.slice/docker-" ID2 ".scope\n", ID2, "");
	/* docker, cgroup v2, cgroupfs driver. */
	EXPECT_CG("0::/docker/" ID2 "\n", ID2, "");
	/* Inside a container with a private cgroup namespace. */
	EXPECT_CG("0::/\n", "", "");
	/* No trailing newline. */
	EXPECT_CG("0::/docker/" ID3, ID3, "");
	/* A process in a sub-cgroup of the container. */
	EXPECT_CG("0::/system.slice/docker-" ID1 ".scope/init.scope\n", ID1,
		  "");
	/* AWS ECS: 32-hex task id, then the 64-hex container id. */
	EXPECT_CG("9:memory:/ecs/" HASH "/" ID2 "\n", ID2, "");
	/* Hybrid: v1 name=systemd at the user slice, memory in docker. */
	EXPECT_CG("1:name=systemd:/user.slice/user-1000.slice/session-3.scope\n"
		  "4:memory:/docker/" ID3 "\n"
		  "0::/user.slice/user-1000.slice/session-3.scope\n",
		  ID3, "");
}

static void test_cgroup_kubernetes(void)
{
	/* containerd, cgroupfs driver, v1, each QoS class. */
	EXPECT_CG("12:pids:/kubepods/burstable/pod" UID1 "/" ID1 "\n"
		  "7:memory:/kubepods/burstable/pod" UID1 "/" ID1 "\n"
		  "1:name=systemd:/kubepods/burstable/pod" UID1 "/" ID1 "\n",
		  ID1, UID1);
	EXPECT_CG("7:memory:/kubepods/besteffort/pod" UID1 "/" ID2 "\n", ID2,
		  UID1);
	EXPECT_CG("7:memory:/kubepods/pod" UID1 "/" ID3 "\n", ID3, UID1);
	/* containerd, cgroupfs driver, v2. */
	EXPECT_CG("0::/kubepods/burstable/pod" UID1 "/" ID2 "\n", ID2, UID1);
	/* containerd, systemd driver, v2: underscores become dashes. */
	EXPECT_CG("0::/kubepods.slice/kubepods-burstable.slice/"
		  "kubepods-burstable-pod" UID1_ ".slice/"
		  "cri-containerd-" ID1 ".scope\n",
		  ID1, UID1);
	EXPECT_CG("0::/kubepods.slice/kubepods-besteffort.slice/"
		  "kubepods-besteffort-pod" UID1_ ".slice/"
		  "cri-containerd-" ID2 ".scope\n",
		  ID2, UID1);
	/* Guaranteed QoS has no QoS slice. */
	EXPECT_CG("0::/kubepods.slice/kubepods-pod" UID1_ ".slice/"
		  "cri-containerd-" ID3 ".scope\n",
		  ID3, UID1);
	/* containerd, systemd driver, v1. */
	EXPECT_CG("11:memory:/kubepods.slice/kubepods-burstable.slice/"
		  "kubepods-burstable-pod" UID1_ ".slice/"
		  "cri-containerd-" ID1 ".scope\n"
		  "1:name=systemd:/kubepods.slice/kubepods-burstable.slice/"
		  "kubepods-burstable-pod" UID1_ ".slice/"
		  "cri-containerd-" ID1 ".scope\n",
		  ID1, UID1);
	/* cri-o, systemd driver. */
	EXPECT_CG("0::/kubepods.slice/kubepods-besteffort.slice/"
		  "kubepods-besteffort-pod" UID1_ ".slice/crio-" ID2 ".scope\n",
		  ID2, UID1);
	/* cri-o's conmon is the monitor, not the container. */
	EXPECT_CG("0::/kubepods.slice/kubepods-besteffort.slice/"
		  "kubepods-besteffort-pod" UID1_ ".slice/"
		  "crio-conmon-" ID2 ".scope\n",
		  "", UID1);
	/* The pod slice itself (e.g. a process moved there by hand). */
	EXPECT_CG("0::/kubepods.slice/kubepods-burstable.slice/"
		  "kubepods-burstable-pod" UID1_ ".slice\n",
		  "", UID1);
	/* Static pod: UID is a 32-hex config hash. */
	EXPECT_CG("0::/kubepods/burstable/pod" HASH "/" ID1 "\n", ID1, HASH);
	/* kind: a pod inside a node container; the innermost id wins. */
	EXPECT_CG("0::/docker/" ID1 "/kubelet.slice/kubelet-kubepods.slice/"
		  "kubelet-kubepods-besteffort.slice/"
		  "kubelet-kubepods-besteffort-pod" UID1_ ".slice/"
		  "cri-containerd-" ID2 ".scope\n",
		  ID2, UID1);
	/* kind: the node's own kubelet. */
	EXPECT_CG("0::/docker/" ID1 "/kubelet.slice/kubelet.service\n", ID1,
		  "");
}

static void test_cgroup_podman_systemd(void)
{
	EXPECT_CG("0::/machine.slice/libpod-" ID1 ".scope/container\n", ID1,
		  "");
	EXPECT_CG("0::/user.slice/user-1000.slice/user@1000.service/"
		  "user.slice/libpod-" ID2 ".scope\n",
		  ID2, "");
	/* A podman pod: the slice's 64-hex id is the pod, not a container. */
	EXPECT_CG("0::/machine.slice/machine-libpod_pod_" ID3 ".slice/"
		  "libpod-" ID1 ".scope\n",
		  ID1, "");
	EXPECT_CG("0::/machine.slice/machine-libpod_pod_" ID3 ".slice/"
		  "libpod-conmon-" ID1 ".scope\n",
		  "", "");
	EXPECT_CG("0::/machine.slice/libpod-conmon-" ID1 ".scope\n", "", "");
	/* Plain systemd: no container. */
	EXPECT_CG("0::/user.slice/user-1000.slice/session-2.scope\n", "", "");
	EXPECT_CG("0::/system.slice/sshd.service\n", "", "");
	EXPECT_CG("0::/init.scope\n", "", "");
	EXPECT_CG("0::/user.slice/user-1000.slice/user@1000.service/app.slice/"
		  "app-gnome-firefox-4242.scope\n",
		  "", "");
	EXPECT_CG("12:pids:/user.slice/user-1000.slice/session-2.scope\n"
		  "1:name=systemd:/user.slice/user-1000.slice/session-2.scope\n"
		  "0::/user.slice/user-1000.slice/session-2.scope\n",
		  "", "");
	/* "pod" inside other words is not a pod UID. */
	EXPECT_CG("0::/system.slice/ipod" UID1 ".service\n", "", "");
	EXPECT_CG("0::/kubepods/burstable\n", "", "");
}

static void test_cgroup_garbage(void)
{
	static const char bin[] = "\0\xff:\x01:/\xfe\0/docker/\0\n::\n:";
	char *big;
	size_t i, n;

	CHECK_INT(cgroup_parse(NULL, 0, got_id, got_uid), -EINVAL);
	CHECK_INT(cgroup_parse("", 0, NULL, got_uid), -EINVAL);
	CHECK_INT(cgroup_parse("", 0, got_id, NULL), -EINVAL);
	EXPECT_CG("", "", "");
	EXPECT_CG("\n\n\n", "", "");
	EXPECT_CG("no colons here " ID1 "\n", "", "");
	EXPECT_CG("one colon:" ID1 "\n", "", "");
	EXPECT_CG(":::::\n", "", "");
	CHECK_INT(parse_n(bin, sizeof(bin) - 1), 0);
	CHECK_STR(got_id, "");
	/* 63 and 65 hex digits, and a hex run glued to letters. */
	EXPECT_CG("0::/docker/" ID1 "a\n", "", "");
	EXPECT_CG("0::/docker/" ID1 "x\n", "", "");
	EXPECT_CG("0::/docker/x" ID1 "\n", "", "");
	EXPECT_CG("0::/docker/1" ID1 "\n", "", "");
	/* Truncated in the middle of the id: no partial id. */
	CHECK_INT(parse_n("0::/docker/" ID1, 11 + 40), 0);
	CHECK_STR(got_id, "");
	/* Truncated in the middle of the pod UID. */
	CHECK_INT(parse_n("0::/kubepods/pod" UID1, 16 + 20), 0);
	CHECK_STR(got_uid, "");
	/* Mixed separators are not a UUID. */
	EXPECT_CG("0::/kubepods/pod0f2a6b3c-1d4e_4f5a-9b6c-7d8e9fa0b1c2/" ID1,
		  ID1, "");
	/* Very long line: 100 KB of path, then a real id. */
	n = 100000;
	big = malloc(n + 80);
	memcpy(big, "0::", 3);
	for (i = 3; i < n; i++)
		big[i] = i % 7 ? 'a' + i % 26 : '/';
	memcpy(big + n, "/docker-" ID2 ".scope", 8 + 64 + 6);
	CHECK_INT(parse_n(big, n + 8 + 64 + 6), 0);
	CHECK_STR(got_id, ID2);
	/* And a single 100 KB component of hex: not an id. */
	memset(big + 3, 'a', n - 3);
	CHECK_INT(parse_n(big, n), 0);
	CHECK_STR(got_id, "");
	free(big);
	/* Random bytes, many rounds, just must not crash or overread. */
	srand(42);
	big = malloc(4096);
	for (n = 0; n < 200; n++) {
		for (i = 0; i < 4096; i++)
			big[i] = "0123456789abcdef:/-_.\n\0pod"[rand() % 27];
		CHECK_INT(parse_n(big, rand() % 4096), 0);
	}
	free(big);
}

static int env_n(const char *env, size_t len, const char *key, char *out,
		 size_t outlen)
{
	char *copy = malloc(len ? len : 1);
	int ret;

	memcpy(copy, env, len);
	ret = environ_get(copy, len, key, out, outlen);
	free(copy);
	return ret;
}

#define ENV(lit) lit, sizeof(lit) - 1

static void test_environ(void)
{
	char out[64];

	CHECK_INT(env_n(ENV("PATH=/bin\0OTEL_SERVICE_NAME=checkout\0HOME=/\0"),
			"OTEL_SERVICE_NAME", out, sizeof(out)),
		  8);
	CHECK_STR(out, "checkout");
	/* A longer key sharing the prefix must not match. */
	CHECK_INT(env_n(ENV("OTEL_SERVICE_NAMEX=wrong\0OTEL_SERVICE_NAME=ok\0"),
			"OTEL_SERVICE_NAME", out, sizeof(out)),
		  2);
	CHECK_STR(out, "ok");
	/* Neither a shorter one. */
	CHECK_INT(env_n(ENV("OTEL_SERVICE_NAM=x\0"), "OTEL_SERVICE_NAME", out,
			sizeof(out)),
		  -ENOENT);
	/* Key as a value or a suffix of another key. */
	CHECK_INT(env_n(ENV("A=OTEL_SERVICE_NAME=x\0XOTEL_SERVICE_NAME=y\0"),
			"OTEL_SERVICE_NAME", out, sizeof(out)),
		  -ENOENT);
	/* Values may contain '='. */
	CHECK_INT(env_n(ENV("K=a=b=c\0"), "K", out, sizeof(out)), 5);
	CHECK_STR(out, "a=b=c");
	/* Missing final NUL. */
	CHECK_INT(env_n(ENV("A=1\0K=last"), "K", out, sizeof(out)), 4);
	CHECK_STR(out, "last");
	/* Empty value is found, and is empty. */
	strcpy(out, "junk");
	CHECK_INT(env_n(ENV("K=\0L=2\0"), "K", out, sizeof(out)), 0);
	CHECK_STR(out, "");
	/* Entry without '=' equal to the key is not a match. */
	CHECK_INT(env_n(ENV("K\0"), "K", out, sizeof(out)), -ENOENT);
	/* First occurrence wins, as with getenv(). */
	CHECK_INT(env_n(ENV("K=1\0K=2\0"), "K", out, sizeof(out)), 1);
	CHECK_STR(out, "1");
	/* Truncation: full length returned, output cut and terminated. */
	CHECK_INT(env_n(ENV("K=abcdefgh\0"), "K", out, 4), 8);
	CHECK_STR(out, "abc");
	CHECK_INT(env_n(ENV("K=abcdefgh\0"), "K", NULL, 0), 8);
	/* Empty block, empty entries, garbage from a rewritten title. */
	CHECK_INT(env_n("", 0, "K", out, sizeof(out)), -ENOENT);
	CHECK_INT(env_n(ENV("\0\0\0K=v\0\0"), "K", out, sizeof(out)), 1);
	CHECK_STR(out, "v");
	CHECK_INT(env_n(ENV("postgres: checkpointer   "), "OTEL_SERVICE_NAME",
			out, sizeof(out)),
		  -ENOENT);
	CHECK_INT(env_n(ENV("\xff\xfe=\x01\0=\0=="), "K", out, sizeof(out)),
		  -ENOENT);
	/* Truncated right after the key or the '='. */
	CHECK_INT(env_n("A=1\0K=v", 5, "K", out, sizeof(out)), -ENOENT);
	CHECK_INT(env_n("A=1\0K=v", 6, "K", out, sizeof(out)), 0);
	/* Bad arguments. */
	CHECK_INT(environ_get(NULL, 0, "K", out, sizeof(out)), -EINVAL);
	CHECK_INT(environ_get("K=1", 3, NULL, out, sizeof(out)), -EINVAL);
	CHECK_INT(environ_get("K=1", 3, "", out, sizeof(out)), -EINVAL);
	CHECK_INT(environ_get("K=1", 3, "K=", out, sizeof(out)), -EINVAL);
	CHECK_INT(environ_get("K=1", 3, "K", NULL, 4), -EINVAL);
}

static void test_exe_basename(void)
{
	char out[16];

	exe_basename("/usr/bin/python3.11", out, sizeof(out));
	CHECK_STR(out, "python3.11");
	exe_basename("/opt/app/server (deleted)", out, sizeof(out));
	CHECK_STR(out, "server");
	exe_basename("server", out, sizeof(out));
	CHECK_STR(out, "server");
	exe_basename("/usr/bin/", out, sizeof(out));
	CHECK_STR(out, "");
	exe_basename("", out, sizeof(out));
	CHECK_STR(out, "");
	exe_basename(" (deleted)", out, sizeof(out));
	CHECK_STR(out, "");
	exe_basename("/a/b (deleted) (deleted)", out, sizeof(out));
	CHECK_STR(out, "b (deleted)");
	exe_basename("/a/(deleted)", out, sizeof(out));
	CHECK_STR(out, "(deleted)");
	exe_basename("/bin/a-very-long-executable-name", out, sizeof(out));
	CHECK_STR(out, "a-very-long-exe");
	exe_basename("/bin/x", out, 1);
	CHECK_STR(out, "");
	strcpy(out, "junk");
	exe_basename(NULL, out, sizeof(out));
	CHECK_STR(out, "");
	exe_basename("/bin/x", NULL, 0);
}

/* ---- fake /proc tree ---------------------------------------------------- */

static char root[] = "/tmp/ks_procinfo.XXXXXX";

static void put(const char *rel, const char *data, size_t len)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK_INT(write(fd, data, len), len);
	close(fd);
}

static void mkd(const char *rel)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	CHECK_INT(mkdir(path, 0755), 0);
}

static void lnk(const char *target, const char *rel)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	CHECK_INT(symlink(target, path), 0);
}

#define PUT(rel, lit) put(rel, lit, sizeof(lit) - 1)

static void build_fake_proc(void)
{
	CHECK(mkdtemp(root) != NULL);
	/* A container process whose comm holds spaces and parentheses. */
	mkd("4242");
	PUT("4242/stat", "4242 ((a) b)) S 17 4242 4242 0 -1 4194560 1200 0 0 "
			 "0 31 12 0 0 20 0 4 0 987654321 104857600 2500 "
			 "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 3 0 "
			 "0 0 0 0\n");
	PUT("4242/statm", "25600 2500 700 10 0 3000 0\n");
	PUT("4242/environ", "PATH=/usr/bin\0OTEL_SERVICE_NAMEX=no\0"
			    "OTEL_SERVICE_NAME=cart=v2\0HOME=/root\0");
	PUT("4242/cgroup", "0::/kubepods.slice/kubepods-burstable.slice/"
			   "kubepods-burstable-pod" UID1_ ".slice/"
			   "cri-containerd-" ID1 ".scope\n");
	lnk("/usr/local/bin/cart-server (deleted)", "4242/exe");
	/* A kernel thread: no exe, empty environ, root cgroup. */
	mkd("2");
	PUT("2/stat", "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 "
		      "1 0 4 0 0 18446744073709551615 0 0 0 0 0 0 0 "
		      "2147483647 0 0 0 0 17 1 0 0 0 0 0\n");
	PUT("2/environ", "");
	PUT("2/cgroup", "0::/\n");
	PUT("2/statm", "0 0 0 0 0 0 0\n");
	/* Gone between readdir and read: directory without stat. */
	mkd("77");
	/* Malformed stat lines. */
	mkd("78");
	PUT("78/stat", "78 (noclose S 1 2 3\n");
	mkd("79");
	PUT("79/stat", "79 (short) S 1 79 79 0 -1 4194560\n");
	mkd("80");
	PUT("80/stat", "80 (bad) S x 80 80 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 "
		       "1 0 5 0 0\n");
	PUT("80/statm", "garbage\n");
	/* Environ rewritten with a title, no cgroup file, unreadable exe. */
	mkd("81");
	PUT("81/stat", "81 (nginx) S 1 81 81 0 -1 4194560 0 0 0 0 0 0 0 0 20 "
		       "0 1 0 55 0 0\n");
	PUT("81/environ", "nginx: worker process\0\0\0\0\0\0\0\0");
	/* Entries that are not processes. */
	mkd("self");
	mkd("sys");
	mkd("12ab");
	mkd("0");
	mkd("99999999999");
	PUT("uptime", "1.0 1.0\n");
}

static int rm_entry(const char *path, const struct stat *st, int type,
		    struct FTW *ftw)
{
	return remove(path);
}

static void test_fake_procinfo(void)
{
	struct procinfo pi;

	CHECK_INT(procinfo_read(root, 4242, &pi), 0);
	CHECK_INT(pi.pid, 4242);
	CHECK_INT(pi.ppid, 17);
	CHECK_STR(pi.comm, "(a) b)");
	CHECK_INT(pi.start_time, 987654321ULL);
	CHECK_INT(pi.kthread, 0);
	CHECK_STR(pi.exe, "/usr/local/bin/cart-server (deleted)");
	CHECK_STR(pi.otel_service_name, "cart=v2");
	CHECK_STR(pi.container_id, ID1);
	CHECK_STR(pi.pod_uid, UID1);

	CHECK_INT(procinfo_read(root, 2, &pi), 0);
	CHECK_STR(pi.comm, "kthreadd");
	CHECK_INT(pi.ppid, 0);
	CHECK_INT(pi.kthread, 1);
	CHECK_INT(pi.start_time, 4);
	CHECK_STR(pi.exe, "");
	CHECK_STR(pi.otel_service_name, "");
	CHECK_STR(pi.container_id, "");
	CHECK_STR(pi.pod_uid, "");

	CHECK_INT(procinfo_read(root, 81, &pi), 0);
	CHECK_STR(pi.comm, "nginx");
	CHECK_STR(pi.exe, "");
	CHECK_STR(pi.otel_service_name, "");
	CHECK_STR(pi.container_id, "");

	CHECK_INT(procinfo_read(root, 76, &pi), -ENOENT);
	CHECK_INT(procinfo_read(root, 77, &pi), -ENOENT);
	CHECK_INT(procinfo_read(root, 78, &pi), -EINVAL);
	CHECK_INT(procinfo_read(root, 79, &pi), -EINVAL);
	CHECK_INT(procinfo_read(root, 80, &pi), -EINVAL);
	CHECK_INT(procinfo_read(root, 0, &pi), -EINVAL);
	CHECK_INT(procinfo_read(NULL, 1, &pi), -EINVAL);
	CHECK_INT(procinfo_read(root, 1, NULL), -EINVAL);

	CHECK_INT(proc_rss_bytes(root, 4242), 2500LL * sysconf(_SC_PAGESIZE));
	CHECK_INT(proc_rss_bytes(root, 2), 0);
	CHECK_INT(proc_rss_bytes(root, 80), -EINVAL);
	CHECK_INT(proc_rss_bytes(root, 81), -ENOENT);
	CHECK_INT(proc_rss_bytes(root, 76), -ENOENT);
	CHECK_INT(proc_rss_bytes(NULL, 1), -EINVAL);
}

struct seen {
	int pids[16];
	int n;
};

static int collect(int pid, void *arg)
{
	struct seen *s = arg;

	if (s->n < 16)
		s->pids[s->n++] = pid;
	return 0;
}

static int stop_at_second(int pid, void *arg)
{
	return ++*(int *)arg == 2 ? -EINTR : 0;
}

static int has_pid(const struct seen *s, int pid)
{
	int i;

	for (i = 0; i < s->n; i++)
		if (s->pids[i] == pid)
			return 1;
	return 0;
}

static void test_fake_foreach(void)
{
	struct seen s = {0};
	char missing[PATH_MAX];
	int calls = 0;

	/* 4242 2 77 78 79 80 81; not self, sys, 12ab, 0, 99999999999. */
	CHECK_INT(proc_foreach_pid(root, collect, &s), 7);
	CHECK_INT(s.n, 7);
	CHECK(has_pid(&s, 4242) && has_pid(&s, 2) && has_pid(&s, 77) &&
	      has_pid(&s, 81));
	CHECK_INT(proc_foreach_pid(root, stop_at_second, &calls), -EINTR);
	CHECK_INT(calls, 2);
	snprintf(missing, sizeof(missing), "%s/nope", root);
	CHECK_INT(proc_foreach_pid(missing, collect, &s), -ENOENT);
	CHECK_INT(proc_foreach_pid(NULL, collect, &s), -EINVAL);
	CHECK_INT(proc_foreach_pid(root, NULL, &s), -EINVAL);
}

/* ---- the real /proc ----------------------------------------------------- */

static void read_small(const char *path, char *buf, size_t cap)
{
	ssize_t n = -1;
	int fd = open(path, O_RDONLY);

	if (fd >= 0) {
		n = read(fd, buf, cap - 1);
		close(fd);
	}
	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
}

static void test_real_self(void)
{
	char exe[PI_PATH_LEN] = "", comm[16];
	struct procinfo pi;
	struct seen s = {0};
	ssize_t n;
	int count;

	CHECK_INT(procinfo_read("/proc", getpid(), &pi), 0);
	CHECK_INT(pi.pid, getpid());
	CHECK_INT(pi.ppid, getppid());
	CHECK_INT(pi.kthread, 0);
	CHECK(pi.start_time > 0);
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	CHECK(n > 0);
	exe[n > 0 ? n : 0] = '\0';
	CHECK_STR(pi.exe, exe);
	read_small("/proc/self/comm", comm, sizeof(comm));
	CHECK_STR(pi.comm, comm);
	CHECK(proc_rss_bytes("/proc", getpid()) > 0);

	count = proc_foreach_pid("/proc", collect, &s);
	CHECK(count >= 1);

	/* kthreadd is pid 2 when we share the host's pid namespace. */
	read_small("/proc/2/comm", comm, sizeof(comm));
	if (strcmp(comm, "kthreadd") == 0) {
		CHECK_INT(procinfo_read("/proc", 2, &pi), 0);
		CHECK_INT(pi.kthread, 1);
		CHECK_STR(pi.exe, "");
	}
}

static int self_seen(int pid, void *arg)
{
	if (pid == getpid())
		*(int *)arg = 1;
	return 0;
}

/* A child exec'd with a known environment, read until the exec shows. */
static void test_real_child(void)
{
	char *argv[] = {"sleep", "30", NULL};
	char *envp[] = {"PATH=/bin", "OTEL_SERVICE_NAME=checkout", NULL};
	struct timespec ts = {0, 10 * 1000 * 1000};
	char base[PI_NAME_LEN], want[PI_NAME_LEN], real[PATH_MAX];
	struct procinfo pi;
	int found = 0, i;
	pid_t child;

	CHECK(proc_foreach_pid("/proc", self_seen, &found) > 0);
	CHECK_INT(found, 1);
	if (access("/bin/sleep", X_OK))
		return;
	child = fork();
	if (child == 0) {
		execve("/bin/sleep", argv, envp);
		_exit(127);
	}
	CHECK(child > 0);
	if (child < 0)
		return;
	for (i = 0; i < 500; i++) {
		if (procinfo_read("/proc", child, &pi) == 0 &&
		    strcmp(pi.comm, "sleep") == 0)
			break;
		nanosleep(&ts, NULL);
	}
	CHECK_STR(pi.comm, "sleep");
	CHECK_INT(pi.ppid, getpid());
	CHECK_STR(pi.otel_service_name, "checkout");
	/* /bin/sleep may be a symlink (usrmerge, a multicall binary). */
	exe_basename(pi.exe, base, sizeof(base));
	exe_basename(realpath("/bin/sleep", real) ? real : "?", want,
		     sizeof(want));
	CHECK_STR(base, want);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	CHECK_INT(procinfo_read("/proc", child, &pi), -ENOENT);
}

int main(void)
{
	test_cgroup_docker();
	test_cgroup_kubernetes();
	test_cgroup_podman_systemd();
	test_cgroup_garbage();
	test_environ();
	test_exe_basename();
	build_fake_proc();
	test_fake_procinfo();
	test_fake_foreach();
	nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	test_real_self();
	test_real_child();
	return check_summary();
}
