/*
 * proctab.c - the process table, see proctab.h.
 *
 * A chained hash on pid with a fixed bucket count and an entry cap: the
 * table never grows past max_entries, and what it refuses is counted.
 * Seeding reads every /proc/PID, then names the processes in start-time
 * order so that a parent is always named before its children (within one
 * clock tick, where start times are equal, by their depth in the tree: a
 * wrapped pid counter can give the child the smaller pid).
 */
#include "proctab.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 8192

struct proctab {
	const char *proc_root;
	unsigned max_entries;
	unsigned count;
	uint64_t dropped;
	struct proctab_filter filter;
	struct proc_entry *buckets[NBUCKETS];
};

struct proctab *proctab_new(const char *proc_root, unsigned max_entries,
			    const struct proctab_filter *filter)
{
	struct proctab *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->proc_root = proc_root;
	t->max_entries = max_entries ? max_entries : 65536;
	if (filter)
		t->filter = *filter;
	return t;
}

void proctab_free(struct proctab *t)
{
	struct proc_entry *e, *n;
	unsigned i;

	if (!t)
		return;
	for (i = 0; i < NBUCKETS; i++)
		for (e = t->buckets[i]; e; e = n) {
			n = e->next;
			free(e);
		}
	free(t);
}

static unsigned bucket(int pid)
{
	return (unsigned)pid % NBUCKETS;
}

struct proc_entry *proctab_get(struct proctab *t, int pid)
{
	struct proc_entry *e;

	for (e = t->buckets[bucket(pid)]; e; e = e->next)
		if (e->pid == pid)
			return e;
	return NULL;
}

static int in_list(const int *list, int n, int pid)
{
	int i;

	for (i = 0; i < n; i++)
		if (list[i] == pid)
			return 1;
	return 0;
}

static int decide_monitored(struct proctab *t, int pid,
			    const struct proc_entry *parent)
{
	if (pid == t->filter.self ||
	    in_list(t->filter.exclude, t->filter.nexclude, pid))
		return 0;
	if (t->filter.npids == 0)
		return 1;
	if (in_list(t->filter.pids, t->filter.npids, pid))
		return 1;
	return parent ? parent->monitored : 0;
}

/* Insert a fresh entry for pid, replacing a stale one (pid reuse). */
static struct proc_entry *insert(struct proctab *t, int pid)
{
	struct proc_entry *e = proctab_get(t, pid);

	if (e) {
		/* Same pid again (exec, or reuse): the kernel's counters for
		 * it carry on, so what was already folded stays folded. */
		struct proc_entry *next = e->next;
		struct ks_pid_stats last = e->last;

		memset(e, 0, sizeof(*e));
		e->next = next;
		e->pid = pid;
		e->last = last;
		return e;
	}
	if (t->count >= t->max_entries) {
		t->dropped++;
		return NULL;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		t->dropped++;
		return NULL;
	}
	e->pid = pid;
	e->next = t->buckets[bucket(pid)];
	t->buckets[bucket(pid)] = e;
	t->count++;
	return e;
}

static void name_from_exe(struct proc_entry *e)
{
	if (e->exe[0])
		exe_basename(e->exe, e->service, sizeof(e->service));
	if (!e->service[0])
		snprintf(e->service, sizeof(e->service), "%s", e->comm);
}

/*
 * Name e from what /proc said of it. A process whose environ has no
 * OTEL_SERVICE_NAME but that runs the same executable as a named parent
 * was forked from it (a PostgreSQL backend, a worker) and takes its name.
 */
static void apply_info(struct proctab *t, struct proc_entry *e,
		       const struct procinfo *pi)
{
	struct proc_entry *parent = proctab_get(t, pi->ppid);

	e->ppid = pi->ppid;
	memcpy(e->comm, pi->comm, sizeof(e->comm));
	memcpy(e->exe, pi->exe, sizeof(e->exe));
	memcpy(e->container_id, pi->container_id, sizeof(e->container_id));
	memcpy(e->pod_uid, pi->pod_uid, sizeof(e->pod_uid));
	e->monitored = decide_monitored(t, e->pid, parent);
	if (pi->otel_service_name[0]) {
		snprintf(e->service, sizeof(e->service), "%s",
			 pi->otel_service_name);
		e->named = 1;
	} else if (parent && parent->named && e->exe[0] &&
		   strcmp(parent->exe, e->exe) == 0) {
		memcpy(e->service, parent->service, sizeof(e->service));
		e->named = 1;
	} else {
		name_from_exe(e);
	}
}

struct seed_item {
	struct procinfo pi;
	unsigned depth; /* ancestors among the items started in the same tick */
};

/* Bounds the walk up a same-tick chain (and a ppid cycle in garbage). */
#define SAME_TICK_DEPTH_MAX 64

struct seed_ctx {
	struct proctab *t;
	struct seed_item *items;
	size_t n, cap;
};

static int seed_one(int pid, void *arg)
{
	struct seed_ctx *c = arg;
	struct seed_item *ni;

	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 256;

		ni = realloc(c->items, cap * sizeof(*ni));
		if (!ni)
			return -ENOMEM;
		c->items = ni;
		c->cap = cap;
	}
	if (procinfo_read(c->t->proc_root, pid, &c->items[c->n].pi))
		return 0; /* gone meanwhile */
	if (c->items[c->n].pi.kthread)
		return 0;
	c->n++;
	return 0;
}

static int by_pid(const void *a, const void *b)
{
	const struct seed_item *x = a, *y = b;

	return (x->pi.pid > y->pi.pid) - (x->pi.pid < y->pi.pid);
}

/* items sorted by pid */
static const struct seed_item *find_pid(const struct seed_item *items,
					size_t n, int pid)
{
	size_t lo = 0, hi = n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (items[mid].pi.pid == pid)
			return &items[mid];
		if (items[mid].pi.pid < pid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/*
 * A fork and its parent often start in the same clock tick, so start time
 * alone does not order them; count for each item its ancestors that started
 * in the same tick, which a parent always has fewer of than its child.
 */
static void same_tick_depths(struct seed_item *items, size_t n)
{
	const struct seed_item *it, *p;
	size_t i;
	unsigned d;

	qsort(items, n, sizeof(*items), by_pid);
	for (i = 0; i < n; i++) {
		it = &items[i];
		for (d = 0; d < SAME_TICK_DEPTH_MAX; d++, it = p) {
			p = find_pid(items, n, it->pi.ppid);
			if (!p || p->pi.start_time != it->pi.start_time)
				break;
		}
		items[i].depth = d;
	}
}

static int by_start_time(const void *a, const void *b)
{
	const struct seed_item *x = a, *y = b;

	if (x->pi.start_time != y->pi.start_time)
		return x->pi.start_time < y->pi.start_time ? -1 : 1;
	if (x->depth != y->depth)
		return x->depth < y->depth ? -1 : 1;
	return by_pid(a, b);
}

int proctab_seed(struct proctab *t)
{
	struct seed_ctx c = {.t = t};
	struct proc_entry *e;
	size_t i;
	int added = 0, err;

	err = proc_foreach_pid(t->proc_root, seed_one, &c);
	if (err < 0) {
		free(c.items);
		return err;
	}
	same_tick_depths(c.items, c.n);
	qsort(c.items, c.n, sizeof(*c.items), by_start_time);
	for (i = 0; i < c.n; i++) {
		e = insert(t, c.items[i].pi.pid);
		if (!e)
			continue;
		apply_info(t, e, &c.items[i].pi);
		added++;
	}
	free(c.items);
	return added;
}

struct proc_entry *proctab_lookup(struct proctab *t, int pid)
{
	struct proc_entry *e = proctab_get(t, pid);
	struct procinfo pi;

	if (e)
		return e;
	if (procinfo_read(t->proc_root, pid, &pi) || pi.kthread)
		return NULL;
	e = insert(t, pid);
	if (e)
		apply_info(t, e, &pi);
	return e;
}

struct proc_entry *proctab_on_exec(struct proctab *t, int pid, int ppid,
				   const char *comm, const char *filename,
				   const char *env_service)
{
	struct procinfo pi;
	struct proc_entry *e;

	if (procinfo_read(t->proc_root, pid, &pi)) {
		/* Already gone: name it from what the kernel told us. */
		memset(&pi, 0, sizeof(pi));
		pi.pid = pid;
		pi.ppid = ppid;
		snprintf(pi.comm, sizeof(pi.comm), "%s", comm);
		snprintf(pi.exe, sizeof(pi.exe), "%s", filename);
	}
	/* What the kernel read at exec time is the program's environment
	 * even if the process is gone (or has rewritten it) by now. */
	if (env_service && env_service[0])
		snprintf(pi.otel_service_name, sizeof(pi.otel_service_name),
			 "%s", env_service);
	e = insert(t, pid);
	if (!e)
		return NULL;
	/* An exec'd program is named afresh: only its own environ counts. */
	apply_info(t, e, &pi);
	if (!pi.otel_service_name[0]) {
		e->named = 0;
		e->service[0] = '\0';
		name_from_exe(e);
	}
	return e;
}

struct proc_entry *proctab_on_fork(struct proctab *t, int pid, int ppid,
				   const char *comm)
{
	struct proc_entry *parent = proctab_lookup(t, ppid);
	struct proc_entry *e;
	struct proc_entry *next;

	e = insert(t, pid);
	if (!e)
		return NULL;
	if (parent) {
		/* A fork is its parent until it execs. */
		next = e->next;
		*e = *parent;
		e->next = next;
		e->pid = pid;
		e->ppid = ppid;
		memset(&e->last, 0, sizeof(e->last));
		e->monitored = decide_monitored(t, pid, parent);
		e->exit_ns = 0;
		return e;
	}
	snprintf(e->comm, sizeof(e->comm), "%s", comm);
	e->ppid = ppid;
	e->monitored = decide_monitored(t, pid, NULL);
	name_from_exe(e);
	return e;
}

struct proc_entry *proctab_remove(struct proctab *t, int pid)
{
	struct proc_entry **pp, *e;

	for (pp = &t->buckets[bucket(pid)]; (e = *pp); pp = &e->next)
		if (e->pid == pid) {
			*pp = e->next;
			e->next = NULL;
			t->count--;
			return e;
		}
	return NULL;
}

void proctab_release(struct proc_entry *e)
{
	free(e);
}

void proctab_foreach(struct proctab *t,
		     void (*fn)(struct proc_entry *e, void *arg), void *arg)
{
	struct proc_entry *e, *n;
	unsigned i;

	for (i = 0; i < NBUCKETS; i++)
		for (e = t->buckets[i]; e; e = n) {
			n = e->next;
			fn(e, arg);
		}
}

unsigned proctab_count(const struct proctab *t)
{
	return t->count;
}

uint64_t proctab_dropped(const struct proctab *t)
{
	return t->dropped;
}
