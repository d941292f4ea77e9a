/*
 * test_proctab.c - unit test for the process table (agent/proctab.c).
 *
 * Every case builds its own fake /proc in a temporary directory (stat with
 * the field layout of /proc/PID/stat, an exe symlink, environ, cgroup) and
 * checks how the table names processes: OTEL_SERVICE_NAME first, else the
 * name of a parent running the same executable, else the executable's base
 * name; how fork and exec records change that; the --pid / --exclude-pid
 * filters and the agent itself; the entry cap; remove and release.
 */
#define _GNU_SOURCE /* nftw */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "proctab.h"

#define PF_KTHREAD 0x00200000u
#define PF_NORMAL 0x00400100u /* a user process (4194560), no PF_KTHREAD */

#define PG_EXE "/usr/lib/postgresql/16/bin/postgres"
#define CID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* One fake process. NULL exe: no symlink; NULL env: no environ file. */
struct fake {
	int pid, ppid;
	const char *comm;
	unsigned long long start; /* field 22, ticks since boot */
	const char *exe;
	const char *env; /* NUL-separated; length in env_len */
	size_t env_len;
	const char *cgroup;
	unsigned flags; /* field 9 */
};

#define ENV(lit) lit, sizeof(lit) - 1

static char root[64];

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

/* Write the files of one process, as procfs lays them out. */
static void add_fake(const struct fake *f)
{
	char rel[64], path[PATH_MAX], stat[512];
	int n;

	snprintf(path, sizeof(path), "%s/%d", root, f->pid);
	CHECK_INT(mkdir(path, 0755), 0);
	/* pid (comm) state ppid pgrp session tty_nr tpgid flags minflt
	 * cminflt majflt cmajflt utime stime cutime cstime priority nice
	 * num_threads itrealvalue starttime vsize rss ... (52 fields) */
	n = snprintf(stat, sizeof(stat),
		     "%d (%s) S %d %d %d 0 -1 %u 120 0 0 0 3 1 0 0 20 0 1 0 "
		     "%llu 10485760 300 18446744073709551615 1 1 0 0 0 0 0 "
		     "0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
		     f->pid, f->comm, f->ppid, f->pid, f->pid,
		     f->flags ? f->flags : PF_NORMAL, f->start);
	snprintf(rel, sizeof(rel), "%d/stat", f->pid);
	put(rel, stat, (size_t)n);
	if (f->exe) {
		snprintf(path, sizeof(path), "%s/%d/exe", root, f->pid);
		CHECK_INT(symlink(f->exe, path), 0);
	}
	if (f->env) {
		snprintf(rel, sizeof(rel), "%d/environ", f->pid);
		put(rel, f->env, f->env_len);
	}
	if (f->cgroup) {
		snprintf(rel, sizeof(rel), "%d/cgroup", f->pid);
		put(rel, f->cgroup, strlen(f->cgroup));
	}
}

static void make_root(void)
{
	snprintf(root, sizeof(root), "/tmp/ks_proctab.XXXXXX");
	CHECK(mkdtemp(root) != NULL);
}

static int rm_entry(const char *path, const struct stat *st, int type,
		    struct FTW *ftw)
{
	return remove(path);
}

static void drop_root(void)
{
	nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/*
 * The host most cases share: init; a PostgreSQL postmaster named by its
 * environment, whose backends (one with a pid below the postmaster's,
 * the pid counter having wrapped) overwrote theirs with a title; a backend
 * of a backend; a pg_dump the postmaster started (another executable); a
 * kernel thread; processes named by their executable.
 */
static const struct fake host[] = {
    {1, 0, "systemd", 1, "/usr/lib/systemd/systemd",
     ENV("HOME=/\0TERM=linux\0"), "0::/init.scope\n"},
    {2, 0, "kthreadd", 2, NULL, ENV(""), "0::/\n", PF_KTHREAD | 0x40},
    {900, 1, "postgres", 1000, PG_EXE,
     ENV("PGDATA=/var/lib/pg\0OTEL_SERVICE_NAME=orders-db\0LANG=C\0"),
     "0::/system.slice/docker-" CID ".scope\n"},
    /* Started later than its parent but with a smaller pid. */
    {50, 900, "postgres", 2000, PG_EXE,
     ENV("postgres: orders orders 10.0.0.7(5432) idle\0\0\0\0\0"),
     "0::/system.slice/docker-" CID ".scope\n"},
    {51, 50, "postgres", 2100, PG_EXE, ENV("postgres: parallel worker\0"),
     NULL},
    {60, 900, "pg_dump", 3000, "/usr/bin/pg_dump", ENV("PGDATA=/var/lib/pg\0"),
     NULL},
    {300, 1, "nginx", 500, "/usr/sbin/nginx (deleted)", NULL, 0, NULL},
    /* No exe link (unreadable): named by comm. */
    {301, 1, "mystery", 600, NULL, NULL, 0, NULL},
    /* An unnamed parent's child running the same executable with its
     * own name, and one without. */
    {400, 1, "python3", 700, "/usr/bin/python3.11", ENV("A=1\0"), NULL},
    {401, 400, "python3", 800, "/usr/bin/python3.11",
     ENV("OTEL_SERVICE_NAME=worker\0"), NULL},
    {402, 400, "python3", 810, "/usr/bin/python3.11", ENV("A=1\0"), NULL},
};

static void build_host(void)
{
	char path[PATH_MAX];
	size_t i;

	make_root();
	for (i = 0; i < sizeof(host) / sizeof(host[0]); i++)
		add_fake(&host[i]);
	/* Not processes. */
	snprintf(path, sizeof(path), "%s/self", root);
	CHECK_INT(mkdir(path, 0755), 0);
	put("uptime", "1.0 1.0\n", 8);
}

static void test_seed_naming(void)
{
	static const struct {
		int pid;
		const char *service;
		int named;
	} want[] = {
	    {1, "systemd", 0},	    {900, "orders-db", 1},
	    {50, "orders-db", 1}, /* same exe as named parent */
	    {51, "orders-db", 1}, /* ... through a named backend */
	    {60, "pg_dump", 0},	  /* another executable */
	    {300, "nginx", 0},	  /* " (deleted)" dropped */
	    {301, "mystery", 0},  /* no exe: comm */
	    {400, "python3.11", 0}, {401, "worker", 1},
	    {402, "python3.11", 0}, /* parent not named */
	};
	struct proctab *t;
	struct proc_entry *e;
	size_t i;

	build_host();
	t = proctab_new(root, 0, NULL);
	CHECK(t != NULL);
	CHECK_INT(proctab_seed(t), 10); /* all but the kernel thread */
	CHECK_INT(proctab_count(t), 10);
	CHECK(proctab_get(t, 2) == NULL);
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		e = proctab_get(t, want[i].pid);
		CHECK(e != NULL);
		if (!e)
			continue;
		if (strcmp(e->service, want[i].service))
			fprintf(stderr, "pid %d:\n", want[i].pid);
		CHECK_STR(e->service, want[i].service);
		CHECK_INT(e->named, want[i].named);
		CHECK_INT(e->monitored, 1);
		CHECK_INT(e->exit_ns, 0);
	}
	e = proctab_get(t, 50);
	if (e) {
		CHECK_INT(e->ppid, 900);
		CHECK_STR(e->comm, "postgres");
		CHECK_STR(e->exe, PG_EXE);
		CHECK_STR(e->container_id, CID);
	}
	e = proctab_get(t, 51);
	if (e)
		CHECK_STR(e->container_id, "");
	/* Seeding again replaces, it does not add. */
	CHECK_INT(proctab_seed(t), 10);
	CHECK_INT(proctab_count(t), 10);
	CHECK_INT(proctab_dropped(t), 0);
	/* Lookup reads /proc for what it does not know, and caches. */
	CHECK(proctab_lookup(t, 2) == NULL);	 /* kernel thread */
	CHECK(proctab_lookup(t, 12345) == NULL); /* not there */
	CHECK_INT(proctab_count(t), 10);
	proctab_free(t);
	drop_root();
}

/*
 * Parent and child started in the same clock tick, the child with the
 * smaller pid (the pid counter wrapped between them): the order by start
 * time alone cannot tell which came first.
 */
static void test_seed_same_tick(void)
{
	static const struct fake same_tick[] = {
	    {7000, 1, "nginx", 4242, "/usr/sbin/nginx",
	     ENV("OTEL_SERVICE_NAME=edge\0"), NULL},
	    {300, 7000, "nginx", 4242, "/usr/sbin/nginx",
	     ENV("nginx: worker process\0"), NULL},
	    {301, 300, "nginx", 4242, "/usr/sbin/nginx",
	     ENV("nginx: cache loader\0"), NULL},
	    {1, 0, "init", 1, "/sbin/init", ENV(""), NULL},
	    /* Garbage: each the other's parent, same tick. */
	    {800, 801, "a", 99, "/bin/a", ENV(""), NULL},
	    {801, 800, "b", 99, "/bin/b", ENV(""), NULL},
	};
	const int pids[] = {7000};
	const struct proctab_filter filter = {.pids = pids, .npids = 1};
	struct proctab *t;
	struct proc_entry *e;
	size_t i;

	make_root();
	for (i = 0; i < sizeof(same_tick) / sizeof(same_tick[0]); i++)
		add_fake(&same_tick[i]);
	t = proctab_new(root, 0, &filter);
	CHECK_INT(proctab_seed(t), 6);
	for (i = 0; i < 3; i++) {
		e = proctab_get(t, same_tick[i].pid);
		CHECK(e != NULL);
		if (!e)
			continue;
		CHECK_STR(e->service, "edge");
		CHECK_INT(e->named, 1);
		CHECK_INT(e->monitored, 1);
	}
	e = proctab_get(t, 1);
	CHECK(e && !e->monitored);
	e = proctab_get(t, 800);
	CHECK(e && strcmp(e->service, "a") == 0 && !e->monitored);
	e = proctab_get(t, 801);
	CHECK(e && strcmp(e->service, "b") == 0 && !e->monitored);
	proctab_free(t);
	drop_root();
}

static void test_fork(void)
{
	struct proctab *t;
	struct proc_entry *e, *p;

	build_host();
	t = proctab_new(root, 0, NULL);
	proctab_seed(t);
	p = proctab_get(t, 900);
	CHECK(p != NULL);
	if (!p)
		goto out;
	p->last.sched.oncpu_ns = 123456; /* already folded: not the child's */
	e = proctab_on_fork(t, 5000, 900, "postgres");
	CHECK(e != NULL);
	if (e) {
		CHECK_INT(e->pid, 5000);
		CHECK_INT(e->ppid, 900);
		CHECK_STR(e->service, "orders-db");
		CHECK_INT(e->named, 1);
		CHECK_STR(e->exe, PG_EXE);
		CHECK_STR(e->container_id, CID);
		CHECK_INT(e->last.sched.oncpu_ns, 0);
		CHECK_INT(e->monitored, 1);
		CHECK(proctab_get(t, 5000) == e);
	}
	/* The parent was not touched. */
	CHECK_INT(p->pid, 900);
	CHECK_INT(p->last.sched.oncpu_ns, 123456);
	CHECK(proctab_get(t, 900) == p);
	/* A fork of an unnamed process is its parent too. */
	e = proctab_on_fork(t, 5001, 60, "pg_dump");
	CHECK(e && strcmp(e->service, "pg_dump") == 0 && !e->named);
	/* Parent unknown and gone from /proc: the child's comm. */
	e = proctab_on_fork(t, 5002, 4444, "cron");
	CHECK(e != NULL);
	if (e) {
		CHECK_STR(e->service, "cron");
		CHECK_STR(e->comm, "cron");
		CHECK_INT(e->ppid, 4444);
		CHECK_INT(e->named, 0);
	}
	/* Parent not known yet but in /proc: read on the way. */
	e = proctab_remove(t, 401);
	CHECK(e != NULL);
	proctab_release(e);
	e = proctab_on_fork(t, 5003, 401, "python3");
	CHECK(e && strcmp(e->service, "worker") == 0 && e->named);
	CHECK(proctab_get(t, 401) != NULL);
	/* A fork of a fork. */
	e = proctab_on_fork(t, 5004, 5000, "postgres");
	CHECK(e && strcmp(e->service, "orders-db") == 0);
	CHECK_INT(proctab_dropped(t), 0);
out:
	proctab_free(t);
	drop_root();
}

static void test_exec(void)
{
	struct proctab *t;
	struct proc_entry *e;

	build_host();
	t = proctab_new(root, 0, NULL);
	proctab_seed(t);

	/* Gone before /proc was read: the kernel's view is all there is. */
	e = proctab_on_exec(t, 6000, 900, "sh", "/bin/sh", "checkout");
	CHECK(e != NULL);
	if (e) {
		CHECK_STR(e->service, "checkout");
		CHECK_INT(e->named, 1);
		CHECK_STR(e->exe, "/bin/sh");
		CHECK_STR(e->comm, "sh");
		CHECK_INT(e->ppid, 900);
		CHECK_INT(e->monitored, 1);
	}
	/* No variable: the executable names it, whatever the parent is. */
	e = proctab_on_exec(t, 6001, 900, "psql", "/usr/bin/psql", "");
	CHECK(e && strcmp(e->service, "psql") == 0 && !e->named);
	e = proctab_on_exec(t, 6002, 900, "postgres", PG_EXE, NULL);
	CHECK(e && strcmp(e->service, "postgres") == 0 && !e->named);
	/* Same executable as its named parent, environ a title: exec'd, so
	 * not a fork of it; named by its executable. */
	e = proctab_on_exec(t, 50, 900, "postgres", PG_EXE, "");
	CHECK(e != NULL);
	if (e) {
		CHECK_STR(e->service, "postgres");
		CHECK_INT(e->named, 0);
		CHECK_STR(e->container_id, CID); /* /proc still read */
	}
	/* The kernel's copy of the variable wins over a rewritten environ. */
	e = proctab_on_exec(t, 50, 900, "postgres", PG_EXE, "orders-db-2");
	CHECK(e && strcmp(e->service, "orders-db-2") == 0 && e->named);
	/* A process already named from /proc keeps it with no env given. */
	e = proctab_on_exec(t, 401, 400, "python3", "/usr/bin/python3.11", "");
	CHECK(e && strcmp(e->service, "worker") == 0 && e->named);
	/* Exec keeps the counters already folded for the pid. */
	e = proctab_get(t, 300);
	if (e) {
		e->last.tcp_active_opens = 77;
		e = proctab_on_exec(t, 300, 1, "nginx", "/usr/sbin/nginx", "");
		CHECK(e && e->last.tcp_active_opens == 77);
	}
	/* A " (deleted)" filename, and one without a slash. */
	e = proctab_on_exec(t, 6003, 1, "x", "/opt/app/bin/api (deleted)", "");
	CHECK(e && strcmp(e->service, "api") == 0);
	e = proctab_on_exec(t, 6004, 1, "y", "relative", "");
	CHECK(e && strcmp(e->service, "relative") == 0);
	/* Empty filename: comm. */
	e = proctab_on_exec(t, 6005, 1, "kworkerish", "", "");
	CHECK(e && strcmp(e->service, "kworkerish") == 0);
	CHECK_INT(proctab_count(t), 16);
	proctab_free(t);
	drop_root();
}

struct collect {
	int n, monitored;
};

static void count_one(struct proc_entry *e, void *arg)
{
	struct collect *c = arg;

	c->n++;
	c->monitored += e->monitored;
}

static void test_filter(void)
{
	static const int pids[] = {900, 12345 /* not running */};
	static const int exclude[] = {60, 401};
	static const struct {
		int pid, monitored;
	} want[] = {
	    {1, 0},   {900, 1}, {50, 1},  {51, 1},  {60, 0}, /* excluded */
	    {300, 0},					     /* self */
	    {301, 0}, {400, 0}, {401, 0}, {402, 0},
	};
	struct proctab_filter f = {
	    .pids = pids,
	    .npids = 2,
	    .exclude = exclude,
	    .nexclude = 2,
	    .self = 300,
	};
	struct collect c = {0};
	struct proctab *t;
	struct proc_entry *e;
	size_t i;

	build_host();
	t = proctab_new(root, 0, &f);
	CHECK_INT(proctab_seed(t), 10);
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		e = proctab_get(t, want[i].pid);
		CHECK(e != NULL);
		if (e && e->monitored != want[i].monitored)
			fprintf(stderr, "pid %d:\n", want[i].pid);
		if (e)
			CHECK_INT(e->monitored, want[i].monitored);
	}
	proctab_foreach(t, count_one, &c);
	CHECK_INT(c.n, 10);
	CHECK_INT(c.monitored, 3);

	/* Descendants by fork and by exec follow their parent. */
	e = proctab_on_fork(t, 7000, 51, "postgres");
	CHECK(e && e->monitored);
	e = proctab_on_exec(t, 7001, 7000, "sh", "/bin/sh", "");
	CHECK(e && e->monitored);
	e = proctab_on_fork(t, 7002, 1, "bash");
	CHECK(e && !e->monitored);
	e = proctab_on_exec(t, 7003, 300, "sh", "/bin/sh", "x");
	CHECK(e && !e->monitored);
	/* Excluded and self stay out, fork or exec, whatever the parent. */
	e = proctab_on_exec(t, 60, 900, "pg_dump", "/usr/bin/pg_dump", "");
	CHECK(e && !e->monitored);
	e = proctab_on_fork(t, 401, 900, "python3");
	CHECK(e && !e->monitored);
	e = proctab_on_fork(t, 300, 900, "nginx");
	CHECK(e && !e->monitored);
	/* A listed pid seen first by a record is monitored. */
	e = proctab_on_fork(t, 12345, 1, "late");
	CHECK(e && e->monitored);
	e = proctab_on_exec(t, 12345, 1, "late", "/bin/late", "");
	CHECK(e && e->monitored);
	proctab_free(t);

	/* No --pid: everything but the excluded and self. */
	f.npids = 0;
	t = proctab_new(root, 0, &f);
	proctab_seed(t);
	c = (struct collect){0};
	proctab_foreach(t, count_one, &c);
	CHECK_INT(c.n, 10);
	CHECK_INT(c.monitored, 7);
	CHECK(!proctab_get(t, 60)->monitored);
	CHECK(!proctab_get(t, 300)->monitored);
	CHECK(!proctab_get(t, 401)->monitored);
	CHECK(proctab_get(t, 402)->monitored);
	proctab_free(t);
	drop_root();
}

static void test_cap(void)
{
	struct proctab *t;
	struct proc_entry *e;

	build_host();
	t = proctab_new(root, 4, NULL);
	CHECK_INT(proctab_seed(t), 4);
	CHECK_INT(proctab_count(t), 4);
	CHECK_INT(proctab_dropped(t), 6);
	/* The earliest started were kept. */
	CHECK(proctab_get(t, 1) != NULL);
	CHECK(proctab_get(t, 300) != NULL);
	CHECK(proctab_get(t, 301) != NULL);
	CHECK(proctab_get(t, 400) != NULL);
	CHECK(proctab_on_fork(t, 8000, 1, "x") == NULL);
	CHECK(proctab_on_exec(t, 8001, 1, "x", "/bin/x", "") == NULL);
	CHECK(proctab_lookup(t, 900) == NULL);
	CHECK_INT(proctab_dropped(t), 9);
	/* Known pids still update in place at the cap. */
	e = proctab_on_exec(t, 1, 0, "init", "/sbin/init", "boot");
	CHECK(e && strcmp(e->service, "boot") == 0);
	CHECK_INT(proctab_count(t), 4);
	/* Room again after a removal. */
	e = proctab_remove(t, 300);
	CHECK(e != NULL);
	proctab_release(e);
	CHECK(proctab_on_fork(t, 8000, 1, "x") != NULL);
	CHECK_INT(proctab_count(t), 4);
	CHECK_INT(proctab_dropped(t), 9);
	proctab_free(t);
	drop_root();
}

static void test_remove(void)
{
	struct proctab *t;
	struct proc_entry *e, *other;

	build_host();
	t = proctab_new(root, 0, NULL);
	proctab_seed(t);
	/* Pids that share a hash bucket (NBUCKETS is 8192). */
	CHECK(proctab_on_fork(t, 8192 + 900, 900, "postgres") != NULL);
	CHECK(proctab_on_fork(t, 2 * 8192 + 900, 900, "postgres") != NULL);
	CHECK_INT(proctab_count(t), 12);
	e = proctab_remove(t, 8192 + 900); /* middle of the chain */
	CHECK(e && e->pid == 8192 + 900 && e->next == NULL);
	proctab_release(e);
	CHECK(proctab_get(t, 8192 + 900) == NULL);
	other = proctab_get(t, 2 * 8192 + 900);
	CHECK(other && strcmp(other->service, "orders-db") == 0);
	CHECK(proctab_get(t, 900) != NULL);
	CHECK_INT(proctab_count(t), 11);
	CHECK(proctab_remove(t, 8192 + 900) == NULL);
	CHECK(proctab_remove(t, 31337) == NULL);
	CHECK_INT(proctab_count(t), 11);
	e = proctab_remove(t, 900);
	CHECK(e != NULL);
	proctab_release(e);
	/* Its children keep their name; a new fork of it reads /proc. */
	CHECK_STR(proctab_get(t, 50)->service, "orders-db");
	e = proctab_on_fork(t, 9000, 900, "postgres");
	CHECK(e && strcmp(e->service, "orders-db") == 0);
	CHECK(proctab_get(t, 900) != NULL);
	proctab_release(NULL);
	proctab_free(t);
	proctab_free(NULL);
	drop_root();
}

int main(void)
{
	test_seed_naming();
	test_seed_same_tick();
	test_fork();
	test_exec();
	test_filter();
	test_cap();
	test_remove();
	return check_summary();
}
