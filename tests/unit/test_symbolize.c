/*
 * test_symbolize.c - the symbolizer against real processes and fake trees.
 *
 * Live part: the test compiles a small program (non-PIE, PIE, and a
 * stripped PIE that exports its functions with -rdynamic) linked to a small
 * shared library, runs it, and reads the addresses of its functions from
 * its stdout. The library has a function whose symbol is a C++ mangled name
 * (given with an asm label, so no C++ compiler is needed), so demangling is
 * checked through a real ELF file. Each process is snapshotted and its
 * addresses must come back as the right names, modules and offsets, also
 * after the process has been killed.
 *
 * Fake part: a proc_root in a temporary directory with maps files (JIT
 * memory, a perf-PID.map that grows, deleted, unreadable and non-ELF files,
 * garbage lines), a kallsyms file, and the library copied under a fake
 * /proc/PID/root so the root redirection is exercised.
 *
 * Without a C compiler the live part is skipped (and says so).
 */
#define _GNU_SOURCE
#include "check.h"
#include "symbolize.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[64];

static const char lib_src[] =
    "int ks_lib_fn(int x)\n"
    "{\n"
    "	volatile int v = x;\n"
    "	for (int i = 0; i < 10; i++)\n"
    "		v += i * v;\n"
    "	return v;\n"
    "}\n"
    "int ks_mangled(int x) __asm__(\"_ZN2ks6Worker3runEi\");\n"
    "int ks_mangled(int x)\n"
    "{\n"
    "	volatile int v = x * 3;\n"
    "	for (int i = 0; i < 10; i++)\n"
    "		v ^= i + v;\n"
    "	return v;\n"
    "}\n"
    "void *ks_lib_addr(void) { return (void *)ks_lib_fn; }\n"
    "void *ks_mangled_addr(void) { return (void *)ks_mangled; }\n";

static const char prog_src[] =
    "#include <stdio.h>\n"
    "#include <unistd.h>\n"
    "void *ks_lib_addr(void);\n"
    "void *ks_mangled_addr(void);\n"
    "__attribute__((noinline)) int ks_alpha(int x)\n"
    "{\n"
    "	volatile int v = x;\n"
    "	for (int i = 0; i < 10; i++)\n"
    "		v += i * v;\n"
    "	return v;\n"
    "}\n"
    "__attribute__((noinline)) int ks_beta(int x)\n"
    "{\n"
    "	volatile int v = x;\n"
    "	for (int i = 0; i < 20; i++)\n"
    "		v ^= i + v;\n"
    "	return v;\n"
    "}\n"
    "__attribute__((noinline)) static int ks_local(int x)\n"
    "{\n"
    "	volatile int v = x;\n"
    "	for (int i = 0; i < 30; i++)\n"
    "		v -= i * v;\n"
    "	return v;\n"
    "}\n"
    "int main(void)\n"
    "{\n"
    "	printf(\"%p %p %p %p %p\\n\", (void *)ks_alpha, (void *)ks_beta,\n"
    "	       (void *)ks_local, ks_lib_addr(), ks_mangled_addr());\n"
    "	fflush(stdout);\n"
    "	ks_alpha(1) + ks_beta(2) + ks_local(3);\n"
    "	for (;;)\n"
    "		pause();\n"
    "}\n";

enum { A_ALPHA, A_BETA, A_LOCAL, A_LIB, A_MANGLED, A_N };

struct child {
	pid_t pid;
	int alive;
	uint64_t addr[A_N];
};

static int write_file(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "w");
	size_t n;

	if (!f)
		return -errno;
	n = fwrite(data, 1, len, f);
	if (fclose(f) != 0 || n != len)
		return -EIO;
	return 0;
}

static int write_str(const char *path, const char *s)
{
	return write_file(path, s, strlen(s));
}

static int append_file(const char *path, const char *data)
{
	FILE *f = fopen(path, "a");
	size_t n, len = strlen(data);

	if (!f)
		return -errno;
	n = fwrite(data, 1, len, f);
	if (fclose(f) != 0 || n != len)
		return -EIO;
	return 0;
}

static int copy_file(const char *src, const char *dst)
{
	char buf[65536];
	FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
	size_t n;
	int err = 0;

	if (!in || !out)
		err = -errno;
	while (!err && (n = fread(buf, 1, sizeof(buf), in)) > 0)
		if (fwrite(buf, 1, n, out) != n)
			err = -EIO;
	if (in)
		fclose(in);
	if (out && fclose(out) != 0)
		err = -EIO;
	return err;
}

static int run(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static void path_of(char *out, size_t len, const char *fmt, ...)
{
	char rel[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	snprintf(out, len, "%s/%s", dir, rel);
}

static void mkdir_p(const char *fmt, ...)
{
	char rel[512], p[1024], *s;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	for (s = p + strlen(dir) + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		mkdir(p, 0755);
		*s = '/';
	}
	mkdir(p, 0755);
}

/* Start a compiled program; read the addresses it prints. */
static int spawn(const char *exe, struct child *c)
{
	int fds[2], n = 0;
	char buf[512];
	struct pollfd pfd;
	ssize_t r;
	void *p[A_N];
	int i;

	memset(c, 0, sizeof(*c));
	if (pipe(fds))
		return -errno;
	c->pid = fork();
	if (c->pid < 0)
		return -errno;
	if (c->pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execl(exe, exe, (char *)NULL);
		_exit(127);
	}
	c->alive = 1;
	close(fds[1]);
	pfd.fd = fds[0];
	pfd.events = POLLIN;
	while (n < (int)sizeof(buf) - 1 && !memchr(buf, '\n', (size_t)n)) {
		if (poll(&pfd, 1, 10000) <= 0)
			break;
		r = read(fds[0], buf + n, sizeof(buf) - 1 - (size_t)n);
		if (r <= 0)
			break;
		n += (int)r;
	}
	close(fds[0]);
	buf[n] = '\0';
	if (sscanf(buf, "%p %p %p %p %p", &p[0], &p[1], &p[2], &p[3], &p[4]) !=
	    A_N)
		return -EIO;
	for (i = 0; i < A_N; i++)
		c->addr[i] = (uint64_t)(uintptr_t)p[i];
	return 0;
}

static void reap(struct child *c)
{
	if (c->alive) {
		kill(c->pid, SIGKILL);
		waitpid(c->pid, NULL, 0);
		c->alive = 0;
	}
}

static int compile_all(void)
{
	char lib[256], src[256];

	path_of(src, sizeof(src), "lib.c");
	if (write_file(src, lib_src, sizeof(lib_src) - 1))
		return -1;
	path_of(src, sizeof(src), "prog.c");
	if (write_file(src, prog_src, sizeof(prog_src) - 1))
		return -1;
	path_of(lib, sizeof(lib), "libkstest.so");
	if (run("cc -O1 -fPIC -shared -o %s %s/lib.c", lib, dir))
		return -1;
	if (run("cc -O1 -no-pie -fno-pie -o %s/prog_nopie %s/prog.c -L%s "
		"-lkstest -Wl,-rpath,%s",
		dir, dir, dir, dir))
		return -1;
	if (run("cc -O1 -pie -fPIE -o %s/prog_pie %s/prog.c -L%s -lkstest "
		"-Wl,-rpath,%s",
		dir, dir, dir, dir))
		return -1;
	if (run("cc -O1 -pie -fPIE -rdynamic -s -o %s/prog_stripped "
		"%s/prog.c -L%s -lkstest -Wl,-rpath,%s",
		dir, dir, dir, dir))
		return -1;
	return 0;
}

static void expect(struct symbolizer *s, int pid, uint64_t addr,
		   const char *name, const char *module, uint64_t offset,
		   int line)
{
	struct sym out;
	int rc;

	memset(&out, 0x5a, sizeof(out));
	rc = symbolize_user(s, pid, addr, &out);
	if (strcmp(out.name, name) || strcmp(out.module, module) ||
	    out.offset != offset || out.known != 1 || rc != 0)
		fprintf(stderr,
			"line %d: addr %#" PRIx64 ": got %s in %s +%" PRIu64
			" known %d rc %d, want %s in %s +%" PRIu64 "\n",
			line, addr, out.name, out.module, out.offset, out.known,
			rc, name, module, offset);
	CHECK_STR(out.name, name);
	CHECK_STR(out.module, module);
	CHECK_INT(out.offset, offset);
	CHECK_INT(out.known, 1);
	CHECK_INT(rc, 0);
}

static void expect_unknown(struct symbolizer *s, int pid, uint64_t addr,
			   const char *name, const char *module, int want_rc,
			   int line)
{
	struct sym out;
	int rc;

	memset(&out, 0x5a, sizeof(out));
	rc = symbolize_user(s, pid, addr, &out);
	if (strcmp(out.name, name) || strcmp(out.module, module) || out.known ||
	    rc != want_rc)
		fprintf(stderr,
			"line %d: addr %#" PRIx64 ": got %s in %s known %d "
			"rc %d, want %s in %s rc %d\n",
			line, addr, out.name, out.module, out.known, rc, name,
			module, want_rc);
	CHECK_STR(out.name, name);
	CHECK_STR(out.module, module);
	CHECK_INT(out.offset, 0);
	CHECK_INT(out.known, 0);
	CHECK_INT(rc, want_rc);
}

#define EXPECT(s, pid, addr, name, mod, off)                                   \
	expect(s, pid, addr, name, mod, off, __LINE__)
#define EXPECT_UNKNOWN(s, pid, addr, name, mod, rc)                            \
	expect_unknown(s, pid, addr, name, mod, rc, __LINE__)

/* The r-xp line of /proc/PID/maps for a file whose name contains what. */
static int exec_line(int pid, const char *what, char *out, size_t len)
{
	char path[64], line[1024];
	FILE *f;
	int found = -ENOENT;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, what) && strstr(line, " r-xp ")) {
			snprintf(out, len, "%s", line);
			found = 0;
			break;
		}
	fclose(f);
	return found;
}

/* Live processes: the saved library line feeds the fake tree later. */
static void test_live(char *lib_line, size_t lib_line_len, uint64_t *lib_addr)
{
	struct symbolizer *s = symbolizer_new("/proc");
	struct symbolizer_stats st0, st1, st2;
	struct child nopie, pie, pie2, stripped;
	char exe[256];
	struct sym out;
	int rc;

	CHECK(s != NULL);
	if (!s)
		return;

	/* non-PIE: symbols at their link addresses */
	path_of(exe, sizeof(exe), "prog_nopie");
	CHECK_INT(spawn(exe, &nopie), 0);
	CHECK_INT(symbolizer_snapshot(s, nopie.pid), 0);
	EXPECT(s, nopie.pid, nopie.addr[A_ALPHA], "ks_alpha", "prog_nopie", 0);
	EXPECT(s, nopie.pid, nopie.addr[A_ALPHA] + 5, "ks_alpha", "prog_nopie",
	       5);
	EXPECT(s, nopie.pid, nopie.addr[A_BETA] + 1, "ks_beta", "prog_nopie",
	       1);
	EXPECT(s, nopie.pid, nopie.addr[A_LOCAL], "ks_local", "prog_nopie", 0);
	EXPECT(s, nopie.pid, nopie.addr[A_LIB] + 5, "ks_lib_fn", "libkstest.so",
	       5);
	EXPECT(s, nopie.pid, nopie.addr[A_MANGLED], "ks::Worker::run(int)",
	       "libkstest.so", 0);
	EXPECT_UNKNOWN(s, nopie.pid, 0x10, "[unknown]", "[unknown]", -ENOENT);

	/* PIE: the same names through the load bias */
	path_of(exe, sizeof(exe), "prog_pie");
	CHECK_INT(spawn(exe, &pie), 0);
	symbolizer_stats(s, &st0);
	CHECK_INT(symbolizer_snapshot(s, pie.pid), 0);
	symbolizer_stats(s, &st1);
	/* a new executable, while libkstest, libc and ld.so are cached */
	CHECK_INT(st1.elf_files_parsed, st0.elf_files_parsed + 1);
	CHECK(st1.elf_cache_hits >= st0.elf_cache_hits + 3);
	EXPECT(s, pie.pid, pie.addr[A_ALPHA] + 5, "ks_alpha", "prog_pie", 5);
	EXPECT(s, pie.pid, pie.addr[A_BETA], "ks_beta", "prog_pie", 0);
	EXPECT(s, pie.pid, pie.addr[A_LOCAL] + 2, "ks_local", "prog_pie", 2);
	EXPECT(s, pie.pid, pie.addr[A_LIB], "ks_lib_fn", "libkstest.so", 0);
	EXPECT(s, pie.pid, pie.addr[A_MANGLED] + 3, "ks::Worker::run(int)",
	       "libkstest.so", 3);
	CHECK(pie.addr[A_ALPHA] != nopie.addr[A_ALPHA]);

	/* a second process of the same binary costs no parse */
	CHECK_INT(spawn(exe, &pie2), 0);
	CHECK_INT(symbolizer_snapshot(s, pie2.pid), 0);
	symbolizer_stats(s, &st2);
	CHECK_INT(st2.elf_files_parsed, st1.elf_files_parsed);
	CHECK(st2.elf_cache_hits >= st1.elf_cache_hits + 4);
	EXPECT(s, pie2.pid, pie2.addr[A_ALPHA], "ks_alpha", "prog_pie", 0);
	/* again within a second: no I/O at all */
	CHECK_INT(symbolizer_snapshot(s, pie2.pid), 0);
	symbolizer_stats(s, &st1);
	CHECK_INT(st1.elf_cache_hits, st2.elf_cache_hits);
	CHECK_INT(st1.pids, 3);

	/* stripped, -rdynamic: exported names from .dynsym, the static one
	 * is unknown rather than its neighbour's name */
	path_of(exe, sizeof(exe), "prog_stripped");
	CHECK_INT(spawn(exe, &stripped), 0);
	EXPECT(s, stripped.pid, stripped.addr[A_ALPHA] + 5, "ks_alpha",
	       "prog_stripped", 5);
	EXPECT(s, stripped.pid, stripped.addr[A_BETA], "ks_beta",
	       "prog_stripped", 0);
	EXPECT_UNKNOWN(s, stripped.pid, stripped.addr[A_LOCAL] + 4, "[unknown]",
		       "prog_stripped", -ENOENT);

	/* keep the library's mapping for the fake tree */
	CHECK_INT(exec_line(pie.pid, "libkstest.so", lib_line, lib_line_len),
		  0);
	*lib_addr = pie.addr[A_LIB];

	/* the processes exit; their snapshots still answer */
	reap(&nopie);
	reap(&pie);
	reap(&stripped);
	EXPECT(s, nopie.pid, nopie.addr[A_BETA] + 5, "ks_beta", "prog_nopie",
	       5);
	EXPECT(s, pie.pid, pie.addr[A_MANGLED], "ks::Worker::run(int)",
	       "libkstest.so", 0);
	EXPECT(s, stripped.pid, stripped.addr[A_ALPHA], "ks_alpha",
	       "prog_stripped", 0);
	/* a reread after the window fails and keeps the old snapshot */
	usleep(1100 * 1000);
	CHECK_INT(symbolizer_snapshot(s, pie.pid), -ESRCH);
	EXPECT(s, pie.pid, pie.addr[A_LOCAL], "ks_local", "prog_pie", 0);
	/* and the one still running rereads its maps */
	CHECK_INT(symbolizer_snapshot(s, pie2.pid), 0);
	EXPECT(s, pie2.pid, pie2.addr[A_LIB] + 7, "ks_lib_fn", "libkstest.so",
	       7);

	/* forgotten: nothing left to answer from */
	symbolizer_forget(s, pie.pid);
	memset(&out, 0x5a, sizeof(out));
	rc = symbolize_user(s, pie.pid, pie.addr[A_ALPHA], &out);
	CHECK_INT(rc, -ESRCH);
	CHECK_STR(out.name, "[unknown]");
	CHECK_INT(out.known, 0);

	/* the cache shrinks to its bound once files are unpinned */
	symbolizer_set_cache_limit(s, 1, 0);
	symbolizer_stats(s, &st1);
	CHECK(st1.elf_files_cached > 1); /* pinned by three snapshots */
	EXPECT(s, nopie.pid, nopie.addr[A_ALPHA], "ks_alpha", "prog_nopie", 0);
	symbolizer_forget(s, nopie.pid);
	symbolizer_forget(s, stripped.pid);
	reap(&pie2);
	symbolizer_forget(s, pie2.pid);
	symbolizer_stats(s, &st1);
	CHECK(st1.elf_files_cached <= 1);
	CHECK_INT(st1.pids, 0);
	CHECK(st1.unknown_frames >= 3);
	symbolizer_free(s);
}

/* Our own process: the test binary itself and, when glibc lets us find it,
 * the vDSO. */
static __attribute__((noinline)) int self_marker(int x)
{
	volatile int v = x;

	for (int i = 0; i < 10; i++)
		v += i;
	return v;
}

static void test_self(void)
{
	struct symbolizer *s = symbolizer_new("/proc");
	struct sym out;
	void *h, *vdso_fn = NULL;

	CHECK(s != NULL);
	if (!s)
		return;
	self_marker(1);
	CHECK_INT(symbolizer_snapshot(s, getpid()), 0);
	CHECK_INT(symbolize_user(s, getpid(),
				 (uint64_t)(uintptr_t)self_marker + 3, &out),
		  0);
	CHECK_STR(out.name, "self_marker");
	CHECK_STR(out.module, "test_symbolize");
	CHECK_INT(out.offset, 3);

	h = dlopen("linux-vdso.so.1", RTLD_LAZY | RTLD_NOLOAD);
	if (h)
		vdso_fn = dlsym(h, "__vdso_clock_gettime");
	if (vdso_fn) {
		CHECK_INT(symbolize_user(s, getpid(),
					 (uint64_t)(uintptr_t)vdso_fn + 1,
					 &out),
			  0);
		CHECK_STR(out.name, "__vdso_clock_gettime");
		CHECK_STR(out.module, "[vdso]");
		CHECK_INT(out.offset, 1);
	} else {
		printf("note: vDSO symbol not found through dlsym, skipped\n");
	}
	if (h)
		dlclose(h);
	symbolizer_free(s);
}

static void fake_maps(int pid, const char *text)
{
	char p[1024];

	mkdir_p("proc/%d/root/tmp", pid);
	path_of(p, sizeof(p), "proc/%d/maps", pid);
	CHECK_INT(write_str(p, text), 0);
}

/* The library's real maps line, moved to /lib/libkstest.so and another
 * inode so the fake root's copy is parsed. */
static void fake_lib_line(const char *real, char *out, size_t len)
{
	char range[64], perms[8], off[32], dev[16];
	unsigned long long ino;

	if (sscanf(real, "%63s %7s %31s %15s %llu", range, perms, off, dev,
		   &ino) != 5) {
		out[0] = '\0';
		return;
	}
	snprintf(out, len, "%s %s %s fe:01 999999001   /lib/libkstest.so\n",
		 range, perms, off);
}

static const char perf_map_text[] =
    "7f0000001000 100 LazyCompile:~hello /app.js:1\n"
    "7f0000002000 80 _ZN2v88internal4Heap14CollectGarbageEv\n"
    "garbage line\n"
    "7f0000003000 zz bad size\n"
    "7f0000003000 0 zero size\n"
    "7f0000003000 10\n"
    "0x7f0000004000 0x40 Builtin:ArgsAdaptor\r\n"
    "7f0000001000 20 LazyCompile:*hello /app.js:1\n"
    "7f0000005000 10 _Zgarbage\n"
    "ffffffffffffffff 10 wraps\n"
    "7f0000006000 10 partial";

static void test_fake_proc(const char *lib_line, uint64_t lib_addr)
{
	struct symbolizer *s;
	struct symbolizer_stats st0, st1;
	char root[512], p[1024], maps[8192], line[512];
	char junk[3000];
	unsigned i;

	mkdir_p("proc/4242/root/lib");
	mkdir_p("proc/4242/root/tmp");
	if (lib_line[0]) {
		path_of(p, sizeof(p), "libkstest.so");
		path_of(root, sizeof(root), "proc/4242/root/lib/libkstest.so");
		CHECK_INT(copy_file(p, root), 0);
	}
	path_of(p, sizeof(p), "proc/4242/root/lib/notelf.so");
	CHECK_INT(write_str(p, "not an ELF file\n"), 0);

	fake_lib_line(lib_line, line, sizeof(line));
	snprintf(maps, sizeof(maps),
		 "garbage\n"
		 "\n"
		 "zzzz-yyyy r-xp 00000000 00:00 0\n"
		 "7e0000000000-7e0000001000\n"
		 "7e0000001000-7e0000000000 r-xp 00000000 00:00 0\n"
		 "7e0000002000-7e0000003000 r-xp 00000000 00:00\n"
		 "7e0000004000-7e0000005000 r-x\n"
		 "ffffffffffffffffffff-1 r-xp 0 0:0 0\n"
		 "7f0000000000-7f0000100000 rw-p 00000000 00:00 0 [heap]\n"
		 "7f0000000000-7f0000010000 r-xp 00000000 00:00 0 \n"
		 "7f0000010000-7f0000020000 r-xp 00000000 00:00 0   "
		 "[anon:v8 code]\n"
		 "%s"
		 "7f2000000000-7f2000001000 r-xp 00000000 fe:01 999999002   "
		 "/lib/gone.so (deleted)\n"
		 "7f2000010000-7f2000011000 r-xp 00000000 fe:01 999999003   "
		 "/lib/notelf.so\n"
		 "7f2000020000-7f2000021000 r-xp 00000000 fe:01 999999004   "
		 "/lib/missing.so\n"
		 "7fff00000000-7fff00002000 r-xp 00000000 00:00 0   [vdso]\n"
		 "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0   "
		 "[vsyscall]\n"
		 "7f3000000000-7f3000001000 r-xp 000",
		 line);
	fake_maps(4242, maps);
	path_of(p, sizeof(p), "proc/4242/root/tmp/perf-4242.map");
	CHECK_INT(write_str(p, perf_map_text), 0);

	/* a pid whose perf map is named after its pid in its namespace */
	fake_maps(4246, "7f0000000000-7f0000010000 r-xp 00000000 00:00 0\n");
	path_of(p, sizeof(p), "proc/4246/status");
	CHECK_INT(write_str(p, "Name:\tnode\nNSpid:\t4246\t7\n"), 0);
	path_of(p, sizeof(p), "proc/4246/root/tmp/perf-7.map");
	CHECK_INT(write_str(p, "7f0000000100 10 JS:inside\n"), 0);

	/* the inode missing.so had in pid 4242, readable in this one */
	if (lib_line[0]) {
		mkdir_p("proc/4247/root/lib");
		path_of(p, sizeof(p), "libkstest.so");
		path_of(root, sizeof(root), "proc/4247/root/lib/libkstest.so");
		CHECK_INT(copy_file(p, root), 0);
		fake_lib_line(lib_line, line, sizeof(line));
		memcpy(strstr(line, "999999001"), "999999004", 9);
		fake_maps(4247, line);
	}

	/* JIT memory without a perf map */
	fake_maps(4243, "7f0000000000-7f0000010000 r-xp 00000000 00:00 0\n");

	/* binary junk and an endless line */
	for (i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 131 + 7);
	mkdir_p("proc/4244");
	path_of(p, sizeof(p), "proc/4244/maps");
	CHECK_INT(write_file(p, junk, sizeof(junk)), 0);

	path_of(root, sizeof(root), "proc");
	s = symbolizer_new(root);
	CHECK(s != NULL);
	if (!s)
		return;
	symbolizer_stats(s, &st0);
	CHECK_INT(symbolizer_snapshot(s, 4242), 0);
	symbolizer_stats(s, &st1);
	CHECK_INT(st1.perf_map_files, st0.perf_map_files + 1);

	/* through the fake root */
	if (lib_line[0])
		EXPECT(s, 4242, lib_addr + 5, "ks_lib_fn", "libkstest.so", 5);

	/* perf map: the later line wins where lines overlap */
	EXPECT(s, 4242, 0x7f0000001010, "LazyCompile:*hello /app.js:1", "[jit]",
	       0x10);
	EXPECT(s, 4242, 0x7f0000001050, "LazyCompile:~hello /app.js:1", "[jit]",
	       0x50);
	EXPECT(s, 4242, 0x7f0000002004, "v8::internal::Heap::CollectGarbage()",
	       "[jit]", 4);
	EXPECT(s, 4242, 0x7f000000403f, "Builtin:ArgsAdaptor", "[jit]", 0x3f);
	EXPECT(s, 4242, 0x7f0000005000, "_Zgarbage", "[jit]", 0);
	/* named anonymous memory is JIT memory too */
	EXPECT_UNKNOWN(s, 4242, 0x7f0000010010, "[jit]", "[jit]", -ENOENT);
	EXPECT_UNKNOWN(s, 4242, 0x7f0000003004, "[jit]", "[jit]", -ENOENT);
	EXPECT_UNKNOWN(s, 4242, 0x7f0000001100, "[jit]", "[jit]", -ENOENT);
	/* the unfinished last line is not read until it is finished */
	EXPECT_UNKNOWN(s, 4242, 0x7f0000006004, "[jit]", "[jit]", -ENOENT);
	path_of(p, sizeof(p), "proc/4242/root/tmp/perf-4242.map");
	CHECK_INT(append_file(p, " /app.js:3\n7f0000009000 10 LazyCompile:~"
				 "later /app.js:9\n"),
		  0);
	EXPECT(s, 4242, 0x7f0000009004, "LazyCompile:~later /app.js:9", "[jit]",
	       4);
	EXPECT(s, 4242, 0x7f0000006004, "partial /app.js:3", "[jit]", 4);
	symbolizer_stats(s, &st1);
	CHECK_INT(st1.perf_map_files, st0.perf_map_files + 2);
	/* a miss with nothing appended rereads nothing */
	EXPECT_UNKNOWN(s, 4242, 0x7f000000f000, "[jit]", "[jit]", -ENOENT);
	symbolizer_stats(s, &st0);
	CHECK_INT(st0.perf_map_files, st1.perf_map_files);

	/* files that cannot be symbolized still name their module */
	EXPECT_UNKNOWN(s, 4242, 0x7f2000000010, "[unknown]", "gone.so",
		       -ENOENT);
	EXPECT_UNKNOWN(s, 4242, 0x7f2000010010, "[unknown]", "notelf.so",
		       -ENOENT);
	EXPECT_UNKNOWN(s, 4242, 0x7f2000020010, "[unknown]", "missing.so",
		       -ENOENT);
	EXPECT_UNKNOWN(s, 4242, 0xffffffffff600004, "[unknown]", "[vsyscall]",
		       -ENOENT);
	/* the fake [vdso] is not the size of ours: module only */
	EXPECT_UNKNOWN(s, 4242, 0x7fff00000010, "[unknown]", "[vdso]", -ENOENT);
	/* in no mapping, and garbage lines made none */
	EXPECT_UNKNOWN(s, 4242, 0x7e0000000010, "[unknown]", "[unknown]",
		       -ENOENT);
	EXPECT_UNKNOWN(s, 4242, 0x7e0000002010, "[unknown]", "[unknown]",
		       -ENOENT);
	EXPECT_UNKNOWN(s, 4242, 0x7f3000000010, "[unknown]", "[unknown]",
		       -ENOENT);
	EXPECT_UNKNOWN(s, 4242, 0, "[unknown]", "[unknown]", -ENOENT);
	EXPECT_UNKNOWN(s, 4242, UINT64_MAX, "[unknown]", "[unknown]", -ENOENT);

	/* one process's unopenable path does not blank the file for all */
	if (lib_line[0])
		EXPECT(s, 4247, lib_addr, "ks_lib_fn", "libkstest.so", 0);

	EXPECT(s, 4246, 0x7f0000000104, "JS:inside", "[jit]", 4);
	EXPECT_UNKNOWN(s, 4243, 0x7f0000000104, "[jit]", "[jit]", -ENOENT);
	CHECK_INT(symbolizer_snapshot(s, 4244), 0);
	EXPECT_UNKNOWN(s, 4244, 0x1000, "[unknown]", "[unknown]", -ENOENT);
	CHECK_INT(symbolizer_snapshot(s, 4245), -ESRCH);
	EXPECT_UNKNOWN(s, 4245, 0x1000, "[unknown]", "[unknown]", -ESRCH);
	CHECK_INT(symbolizer_snapshot(s, 0), -EINVAL);
	CHECK_INT(symbolizer_snapshot(s, -1), -EINVAL);
	symbolizer_forget(s, 99999); /* never seen: no-op */
	symbolizer_free(s);
}

static void kexpect(struct symbolizer *s, uint64_t addr, const char *name,
		    const char *module, uint64_t offset, int rc_want, int line)
{
	struct sym out;
	int rc;

	memset(&out, 0x5a, sizeof(out));
	rc = symbolize_kernel(s, addr, &out);
	if (strcmp(out.name, name) || strcmp(out.module, module) ||
	    out.offset != offset || rc != rc_want)
		fprintf(stderr,
			"line %d: kaddr %#" PRIx64 ": got %s in %s +%" PRIu64
			" rc %d\n",
			line, addr, out.name, out.module, out.offset, rc);
	CHECK_STR(out.name, name);
	CHECK_STR(out.module, module);
	CHECK_INT(out.offset, offset);
	CHECK_INT(out.known, rc_want == 0);
	CHECK_INT(rc, rc_want);
}

#define KEXPECT(s, addr, name, mod, off, rc)                                   \
	kexpect(s, addr, name, mod, off, rc, __LINE__)

static void test_kallsyms(void)
{
	static const char ks[] =
	    "0000000000000000 A fixed_percpu_data\n"
	    "ffffffff81000000 t _text\n"
	    "ffffffff81000000 T _stext\n"
	    "ffffffff81001000 T do_syscall_64\n"
	    "ffffffff81001200 D some_data\n"
	    "ffffffff81002000 W weak_fn\n"
	    "ffffffff81002000 t __weak_fn_alias\n"
	    "ffffffff81003000 t _ZN4rust3fooEv\n"
	    "ffffffff81003100 T _etext\n"
	    "garbage\n"
	    "ffffffff8100zzzz T bad\n"
	    "ffffffff81004000 T\n"
	    "ffffffffa0000000 t bpf_prog_6deef7357e7b4530_handler\t[bpf]\n"
	    "ffffffffc0001000 t ext4_fill_super\t[ext4]\n"
	    "ffffffffc0001800 T ext4_mount\t[ext4]\n"
	    "ffffffffc0002000 d ext4_data\t[ext4]\n"
	    "ffffffffc0003000 t xfs_last\t[xfs\n";
	struct symbolizer *s;
	char root[512], p[1024];
	struct sym out;
	FILE *f;
	char line[512], type, name[256];
	unsigned long long a = 0;
	int found = 0;

	mkdir_p("k1");
	path_of(p, sizeof(p), "k1/kallsyms");
	CHECK_INT(write_str(p, ks), 0);
	path_of(root, sizeof(root), "k1");
	s = symbolizer_new(root);
	CHECK(s != NULL);
	if (!s)
		return;
	KEXPECT(s, 0xffffffff81000004, "_stext", "[kernel]", 4, 0);
	KEXPECT(s, 0xffffffff81001010, "do_syscall_64", "[kernel]", 0x10, 0);
	/* ends where the data symbol starts */
	KEXPECT(s, 0xffffffff81001204, "[unknown]", "[kernel]", 0, -ENOENT);
	KEXPECT(s, 0xffffffff81002001, "weak_fn", "[kernel]", 1, 0);
	KEXPECT(s, 0xffffffff81003001, "_ZN4rust3fooEv", "[kernel]", 1, 0);
	KEXPECT(s, 0xffffffffa0000010, "bpf_prog_6deef7357e7b4530_handler",
		"bpf", 0x10, 0);
	KEXPECT(s, 0xffffffffc0001004, "ext4_fill_super", "ext4", 4, 0);
	KEXPECT(s, 0xffffffffc0001fff, "ext4_mount", "ext4", 0x7ff, 0);
	KEXPECT(s, 0xffffffffc0002004, "[unknown]", "[kernel]", 0, -ENOENT);
	/* an unclosed module column is no module */
	KEXPECT(s, 0xffffffffc0003004, "xfs_last", "[kernel]", 4, 0);
	KEXPECT(s, 0xffffffffc0103004, "[unknown]", "[kernel]", 0, -ENOENT);
	KEXPECT(s, 0x1000, "[unknown]", "[kernel]", 0, -ENOENT);
	symbolizer_free(s);

	/* kptr_restrict: all zeros */
	mkdir_p("k2");
	path_of(p, sizeof(p), "k2/kallsyms");
	CHECK_INT(write_str(p, "0000000000000000 T _stext\n"
			       "0000000000000000 T do_syscall_64\n"),
		  0);
	path_of(root, sizeof(root), "k2");
	s = symbolizer_new(root);
	KEXPECT(s, 0xffffffff81000004, "[unknown]", "[kernel]", 0, -EACCES);
	KEXPECT(s, 0xffffffff81000004, "[unknown]", "[kernel]", 0, -EACCES);
	symbolizer_free(s);

	/* no kallsyms at all */
	path_of(root, sizeof(root), "nonexistent");
	s = symbolizer_new(root);
	KEXPECT(s, 0xffffffff81000004, "[unknown]", "[kernel]", 0, -ENOENT);
	symbolizer_free(s);

	/* the real one, when this process may see its addresses */
	f = fopen("/proc/kallsyms", "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%llx %c %255s", &a, &type, name) == 3 && a &&
		    type == 'T' && !strchr(line, '[') &&
		    !strcmp(name, "schedule")) {
			found = 1;
			break;
		}
	if (f)
		fclose(f);
	if (found) {
		s = symbolizer_new("/proc");
		CHECK_INT(symbolize_kernel(s, a + 1, &out), 0);
		CHECK_STR(out.name, "schedule");
		CHECK_STR(out.module, "[kernel]");
		CHECK_INT(out.offset, 1);
		symbolizer_free(s);
	} else {
		printf("note: /proc/kallsyms hides addresses, skipped\n");
	}
}

static void test_demangle(void)
{
	char out[256], tiny[8];

	CHECK_INT(sym_demangle("_ZN2v88internal4Heap14CollectGarbageEv", out,
			       sizeof(out)),
		  1);
	CHECK_STR(out, "v8::internal::Heap::CollectGarbage()");
	CHECK_INT(sym_demangle("_ZN2ks6Worker3runEi.cold", out, sizeof(out)),
		  1);
	CHECK(strncmp(out, "ks::Worker::run(int)", 20) == 0);
	CHECK_INT(sym_demangle("_Zgarbage", out, sizeof(out)), 0);
	CHECK_STR(out, "_Zgarbage");
	CHECK_INT(sym_demangle("main", out, sizeof(out)), 0);
	CHECK_STR(out, "main");
	CHECK_INT(sym_demangle("_Z", out, sizeof(out)), 0);
	CHECK_STR(out, "_Z");
	CHECK_INT(sym_demangle("_ZN2v88internal4Heap14CollectGarbageEv", tiny,
			       sizeof(tiny)),
		  1);
	CHECK_STR(tiny, "v8::int");
	CHECK_INT(sym_demangle(NULL, out, sizeof(out)), 0);
	CHECK_STR(out, "");
	CHECK_INT(sym_demangle("x", NULL, 0), 0);
}

static void test_bad_args(void)
{
	struct symbolizer_stats st;
	struct sym out;

	errno = 0;
	CHECK(symbolizer_new(NULL) == NULL);
	CHECK_INT(errno, EINVAL);
	symbolizer_free(NULL);
	symbolizer_forget(NULL, 1);
	symbolizer_set_cache_limit(NULL, 1, 1);
	CHECK_INT(symbolizer_snapshot(NULL, 1), -EINVAL);
	CHECK_INT(symbolize_user(NULL, 1, 0x1000, &out), -EINVAL);
	CHECK_STR(out.name, "[unknown]");
	CHECK_INT(symbolize_kernel(NULL, 0x1000, &out), -EINVAL);
	CHECK_STR(out.module, "[kernel]");
	CHECK_INT(symbolize_user(NULL, 1, 0x1000, NULL), -EINVAL);
	CHECK_INT(symbolize_kernel(NULL, 0x1000, NULL), -EINVAL);
	symbolizer_stats(NULL, &st);
	CHECK_INT(st.elf_files_parsed, 0);
	symbolizer_stats(NULL, NULL);
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
		    struct FTW *ftw)
{
	return remove(path);
}

int main(void)
{
	char lib_line[1024] = "";
	uint64_t lib_addr = 0;

	snprintf(dir, sizeof(dir), "/tmp/ks-symbolize-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_demangle();
	test_bad_args();
	test_self();
	test_kallsyms();
	if (system("cc --version >/dev/null 2>&1") == 0) {
		CHECK_INT(compile_all(), 0);
		test_live(lib_line, sizeof(lib_line), &lib_addr);
	} else {
		printf("note: no C compiler, live processes skipped\n");
	}
	test_fake_proc(lib_line, lib_addr);
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return check_summary();
}
