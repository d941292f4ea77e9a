/*
 * probes.c - BPF skeletons: load, share maps, attach, read. See probes.h.
 */
#include "probes.h"
#include "log.h"
#include "usdt_notes.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <linux/perf_event.h>
#include <sys/syscall.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "proc.skel.h"
#include "sched.skel.h"
#include "l7.skel.h"
#include "node.skel.h"
#include "pgusdt.skel.h"
#include "profile.skel.h"
#include "tcp.skel.h"

struct probes {
	struct proc_bpf *proc;
	struct tcp_bpf *tcp;
	struct sched_bpf *sched;
	/* sched.bpf.c's sched_tab, mapped (NULL without the sched group),
	 * and each slot's owner when the current read began (0: none),
	 * | SLOT_REPORTED once reported with its pid_stats entry */
	struct ks_sched_slot *sched_tab;
	uint32_t sched_owner[KS_SCHED_SLOTS];
	uint32_t *ps_keys; /* PID_STATS_BATCH each, for batch reads */
	struct ks_pid_stats *ps_vals;
	struct l7_bpf *l7;
	/* l7.bpf.c's http_tab, mapped (NULL without the l7 group) */
	struct ks_http_slot *http_tab;
	struct ks_http_used *http_tab_used; /* mapped too */
	struct profile_bpf *profile;
	struct pgusdt_bpf *pg;
	struct stat pg_bins[16]; /* postgres binaries attached (dev, ino) */
	int npg_bins;
	struct node_bpf *node;
	struct stat node_bins[16]; /* node binaries seen (GC, SSL uprobes) */
	int nnode_bins;
	int ngc_bins; /* ... of which with the GC uprobes attached */
	int nwatched; /* node processes in node_loops */
	int nretired; /* exited ones still there (probes_node_unwatch) */
	/* epoll wait tracepoints (enter, exit) per KS_WAIT_* bit, while
	 * nwatched; those no watched loop uses are detached once learned */
	struct bpf_link *loop_links[3][2];
	unsigned loop_on; /* KS_WAIT_* attached */
	unsigned loop_absent; /* KS_WAIT_* not attachable here */
	uint64_t loop_learn_ns; /* all attached since; 0: learned */
	struct bpf_link *offcpu_link;
	int offcpu_refs;
	struct ring_buffer *rb;
	int events_fd, pid_stats_fd, drops_fd;
	int ncpus;
	struct probe_group groups[PG_MAX];
	struct bpf_link *links[256];
	int nlinks;
};

static int libbpf_print(enum libbpf_print_level level, const char *fmt,
			va_list ap)
{
	char line[512];
	size_t n;

	if (level == LIBBPF_DEBUG && log_level < LOG_DEBUG)
		return 0;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = '\0';
	log_msg(level == LIBBPF_WARN ? LOG_WARN : LOG_DEBUG, "%s",
		line);
	return 0;
}

static void group_fail(struct probe_group *g, const char *stage, int err)
{
	g->attached = 0;
	snprintf(g->error, sizeof(g->error), "%s failed: %s", stage,
		 strerror(-err));
	log_warn("probe group %s unavailable: %s", g->name, g->error);
}

/* Attach every program of an object; all or nothing for the group. */
static int attach_all(struct probes *p, struct bpf_object *obj,
		      struct probe_group *g)
{
	struct bpf_program *prog;
	struct bpf_link *link;
	int err;

	bpf_object__for_each_program(prog, obj) {
		/* Uprobes attach per binary, when one is found; syscall
		 * programs are run by the agent (probes_l7_sweep). */
		if (!strncmp(bpf_program__section_name(prog), "uprobe", 6) ||
		    !strncmp(bpf_program__section_name(prog), "uretprobe", 9) ||
		    !strcmp(bpf_program__section_name(prog), "syscall"))
			continue;
		link = bpf_program__attach(prog);
		err = libbpf_get_error(link);
		if (err) {
			snprintf(g->error, sizeof(g->error),
				 "attach %s failed: %s",
				 bpf_program__name(prog), strerror(-err));
			log_warn("probe group %s unavailable: %s", g->name,
				 g->error);
			return err;
		}
		if (p->nlinks < (int)(sizeof(p->links) / sizeof(p->links[0])))
			p->links[p->nlinks++] = link;
		g->nprogs++;
	}
	g->attached = 1;
	return 0;
}

static int reuse_shared(struct probes *p, struct bpf_map *events,
			struct bpf_map *pid_stats, struct bpf_map *drops)
{
	int err;

	err = bpf_map__reuse_fd(events, p->events_fd);
	if (!err)
		err = bpf_map__reuse_fd(pid_stats, p->pid_stats_fd);
	if (!err)
		err = bpf_map__reuse_fd(drops, p->drops_fd);
	return err;
}

static int open_proc(struct probes *p, pid_t self)
{
	struct probe_group *g = &p->groups[PG_PROCESS];
	int err;

	p->proc = proc_bpf__open();
	if (!p->proc) {
		group_fail(g, "open", -errno);
		return -errno;
	}
	p->proc->rodata->self_tgid = (uint32_t)self;
	err = proc_bpf__load(p->proc);
	if (err) {
		group_fail(g, "load", err);
		return err;
	}
	p->events_fd = bpf_map__fd(p->proc->maps.events);
	p->pid_stats_fd = bpf_map__fd(p->proc->maps.pid_stats);
	p->drops_fd = bpf_map__fd(p->proc->maps.drops);
	return attach_all(p, p->proc->obj, g);
}

/*
 * Open, share the maps of the process family, load and attach one more
 * family. A macro because each skeleton has its own type and functions.
 */
/* Open and load a family's skeleton into p->field (the statements after
 * gid run before the load); ok is set to 1 when it is loaded. */
#define LOAD_FAMILY(p, self, field, skel, gid, ok, ...)                        \
	do {                                                                   \
		struct probe_group *g_ = &(p)->groups[gid];                    \
		int err_;                                                      \
                                                                               \
		(ok) = 0;                                                      \
		(p)->field = skel##__open();                                   \
		if (!(p)->field) {                                             \
			group_fail(g_, "open", -errno);                        \
			break;                                                 \
		}                                                              \
		(p)->field->rodata->self_tgid = (uint32_t)(self);              \
		__VA_ARGS__;                                                   \
		err_ = reuse_shared((p), (p)->field->maps.events,              \
				    (p)->field->maps.pid_stats,                \
				    (p)->field->maps.drops);                   \
		if (!err_)                                                     \
			err_ = skel##__load((p)->field);                       \
		if (err_) {                                                    \
			group_fail(g_, "load", err_);                          \
			break;                                                 \
		}                                                              \
		(ok) = 1;                                                      \
	} while (0)

/* The same, then attach all its programs. */
#define OPEN_FAMILY(p, self, field, skel, gid, ...)                            \
	do {                                                                   \
		int ok_;                                                       \
                                                                               \
		LOAD_FAMILY(p, self, field, skel, gid, ok_, __VA_ARGS__);      \
		if (ok_)                                                       \
			attach_all((p), (p)->field->obj, &(p)->groups[gid]);   \
	} while (0)

static int wanted(const struct probes_config *cfg, int g)
{
	return ((cfg->groups ? cfg->groups : PROBE_GROUPS_DEFAULT) >> g) & 1u;
}

static int perf_event_open_cpu(int cpu, unsigned hz)
{
	struct perf_event_attr attr = {
		.type = PERF_TYPE_SOFTWARE,
		.size = sizeof(attr),
		.config = PERF_COUNT_SW_CPU_CLOCK,
		.sample_freq = hz,
		.freq = 1,
	};

	return (int)syscall(SYS_perf_event_open, &attr, -1, cpu, -1,
			    PERF_FLAG_FD_CLOEXEC);
}

/*
 * Entries of the CPU count map: the distinct (pid, stacks) between two
 * drains (200 ms apart, 50 ms while a profile is recorded) are at most the
 * samples taken meanwhile, ncpus x hz / 5, with room to spare. A drain
 * visits every bucket, so the map is not made larger than that needs.
 */
static uint32_t cpu_samples_entries(int ncpus, unsigned hz)
{
	uint64_t want = (uint64_t)ncpus * hz * 2 / 5;
	uint32_t n = 1024;

	while (n < want && n < 65536)
		n <<= 1;
	return n;
}

/*
 * The profile family: the CPU sampler is attached to a cpu-clock perf
 * event on every CPU; the off-CPU program waits for probes_offcpu_get().
 */
static void open_profile(struct probes *p, pid_t self,
			 const struct probes_config *cfg)
{
	struct probe_group *g = &p->groups[PG_PROFILE];
	unsigned hz = cfg->profile_hz ? cfg->profile_hz : 99;
	struct bpf_link *link;
	int cpu, fd, err;

	p->profile = profile_bpf__open();
	if (!p->profile) {
		group_fail(g, "open", -errno);
		return;
	}
	p->profile->rodata->self_tgid = (uint32_t)self;
	p->profile->rodata->target_tgid = (uint32_t)cfg->profile_pid;
	err = reuse_shared(p, p->profile->maps.events,
			   p->profile->maps.pid_stats, p->profile->maps.drops);
	if (!err)
		err = bpf_map__set_max_entries(
			p->profile->maps.cpu_samples,
			cpu_samples_entries(p->ncpus, hz));
	if (!err)
		err = profile_bpf__load(p->profile);
	if (err) {
		group_fail(g, "load", err);
		return;
	}
	for (cpu = 0; cpu < p->ncpus; cpu++) {
		fd = perf_event_open_cpu(cpu, hz);
		if (fd < 0) {
			if (errno == ENODEV || errno == ENXIO)
				continue; /* possible but offline CPU */
			group_fail(g, "perf_event_open cpu-clock", -errno);
			return;
		}
		link = bpf_program__attach_perf_event(
			p->profile->progs.handle_cpu_sample, fd);
		err = libbpf_get_error(link);
		if (err) {
			close(fd);
			group_fail(g, "attach perf event", err);
			return;
		}
		if (p->nlinks < (int)(sizeof(p->links) / sizeof(p->links[0])))
			p->links[p->nlinks++] = link;
		g->nprogs++;
	}
	g->attached = 1;
}

/* An mmapable BPF array's memory, shared with the kernel; NULL (and the
 * group failed) if it cannot be mapped. */
static void *map_shared(struct probe_group *g, struct bpf_map *map,
			size_t size)
{
	void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
			 bpf_map__fd(map), 0);
	int err = -errno;
	char what[64];

	if (mem != MAP_FAILED)
		return mem;
	snprintf(what, sizeof(what), "mmap %s", bpf_map__name(map));
	group_fail(g, what, err);
	return NULL;
}

/*
 * The sched family. Its slots are mapped before the program is attached:
 * figures the agent could not read would be lost.
 */
static void open_sched(struct probes *p, pid_t self)
{
	struct probe_group *g = &p->groups[PG_SCHED];
	int ok;

	LOAD_FAMILY(p, self, sched, sched_bpf, PG_SCHED, ok);
	if (!ok)
		return;
	p->sched_tab = map_shared(g, p->sched->maps.sched_tab,
				  sizeof(struct ks_sched_slot) *
					  KS_SCHED_SLOTS);
	if (!p->sched_tab)
		return;
	attach_all(p, p->sched->obj, g);
}

/*
 * The l7 programs, and their HTTP client counters mapped before attaching:
 * without the agent reading them they would count for nobody.
 */
static void open_l7(struct probes *p, pid_t self,
		    const struct probes_config *cfg)
{
	struct probe_group *g = &p->groups[PG_L7];
	int ok;

	LOAD_FAMILY(p, self, l7, l7_bpf, PG_L7, ok,
		    p->l7->rodata->split_records = cfg->l7_split;
		    p->l7->rodata->ncpus = (uint32_t)p->ncpus);
	if (!ok)
		return;
	p->http_tab = map_shared(g, p->l7->maps.http_tab,
				     sizeof(struct ks_http_slot) *
					     KS_HTTP_SLOTS);
	p->http_tab_used = map_shared(g, p->l7->maps.http_tab_used,
				      sizeof(struct ks_http_used));
	if (!p->http_tab || !p->http_tab_used)
		return;
	attach_all(p, p->l7->obj, g);
}

#define PG_NONE "no postgres binary seen yet (attached when one runs)"

/* The groups of the PostgreSQL USDT programs (one object, pgusdt). */
static const int pg_groups[2] = { PG_POSTGRES, PG_PGSTMT };

/*
 * Load the USDT programs now, for the postgres and pgstatements groups
 * that are wanted; they attach when a postgres binary shows.
 */
static void open_pg(struct probes *p, pid_t self,
		    const struct probes_config *cfg)
{
	const int *gid = pg_groups;
	int i, err;

	p->pg = pgusdt_bpf__open();
	if (p->pg) {
		p->pg->rodata->self_tgid = (uint32_t)self;
		err = reuse_shared(p, p->pg->maps.events,
				   p->pg->maps.pid_stats, p->pg->maps.drops);
		if (!err)
			err = pgusdt_bpf__load(p->pg);
	} else {
		err = -errno;
	}
	for (i = 0; i < 2; i++) {
		if (!wanted(cfg, gid[i]))
			continue;
		if (err)
			group_fail(&p->groups[gid[i]], p->pg ? "load" : "open",
				   err);
		else
			snprintf(p->groups[gid[i]].error,
				 sizeof(p->groups[gid[i]].error), PG_NONE);
	}
	if (err && p->pg) {
		pgusdt_bpf__destroy(p->pg);
		p->pg = NULL;
	}
}

static void keep_link(struct probes *p, struct bpf_link *link)
{
	if (p->nlinks < (int)(sizeof(p->links) / sizeof(p->links[0])))
		p->links[p->nlinks++] = link;
	else
		bpf_link__destroy(link);
}

/*
 * Checkpoint durations: checkpoint__start through libbpf's USDT support
 * (its flags argument is a register), checkpoint__done as a plain uprobe
 * at the address its ELF note gives, the kernel setting the probe's
 * semaphore through the uprobe's reference counter (libbpf 1.1 cannot
 * parse that probe's RIP-relative argument specs and refuses to attach
 * it). Both or neither; a binary without them keeps its other probes.
 * Returns the programs attached or -errno with why.
 */
static int attach_pg_checkpoints(struct probes *p, const char *path,
				 char *why, size_t len)
{
	struct usdt_note notes[4];
	struct bpf_link *links[5];
	int i, n, nl = 0, err;

	n = usdt_notes_find(path, "postgresql", "checkpoint__done", notes, 4);
	if (n <= 0) {
		snprintf(why, len, "no USDT note postgresql:checkpoint__done%s%s",
			 n < 0 ? ": " : "", n < 0 ? strerror(-n) : "");
		return n < 0 ? n : -ENOENT;
	}
	n = n > 4 ? 4 : n;
	links[nl] = bpf_program__attach_usdt(
		p->pg->progs.handle_pg_checkpoint_start, -1, path,
		"postgresql", "checkpoint__start", NULL);
	err = libbpf_get_error(links[nl]);
	if (err) {
		snprintf(why, len, "USDT postgresql:checkpoint__start: %s",
			 strerror(-err));
		return err;
	}
	nl++;
	for (i = 0; i < n; i++) {
		LIBBPF_OPTS(bpf_uprobe_opts, uo,
			    .ref_ctr_offset = notes[i].sema_offset);

		links[nl] = bpf_program__attach_uprobe_opts(
			p->pg->progs.handle_pg_checkpoint_done, -1, path,
			notes[i].pc_offset, &uo);
		err = libbpf_get_error(links[nl]);
		if (err) {
			snprintf(why, len,
				 "uprobe at postgresql:checkpoint__done (offset 0x%llx): %s",
				 (unsigned long long)notes[i].pc_offset,
				 strerror(-err));
			while (nl > 0)
				bpf_link__destroy(links[--nl]);
			return err;
		}
		nl++;
	}
	for (i = 0; i < nl; i++)
		keep_link(p, links[i]);
	return nl;
}

/*
 * The USDT probes of one group (gid) in the binary at path, all or none.
 * Returns the number attached or -errno (the group's error says why).
 */
static int attach_pg_group(struct probes *p, const char *path, int gid)
{
	static const struct {
		int gid;
		const char *prog, *probe;
	} map[] = {
		/* rare: what waits, deadlocks and checkpoints */
		{ PG_POSTGRES, "handle_pg_lock_wait_start", "lock__wait__start" },
		{ PG_POSTGRES, "handle_pg_lock_wait_done", "lock__wait__done" },
		{ PG_POSTGRES, "handle_pg_deadlock", "deadlock__found" },
		/* on every statement, transaction or buffer read */
		{ PG_PGSTMT, "handle_pg_query_start", "query__start" },
		{ PG_PGSTMT, "handle_pg_query_done", "query__done" },
		{ PG_PGSTMT, "handle_pg_parse_start", "query__parse__start" },
		{ PG_PGSTMT, "handle_pg_parse_done", "query__parse__done" },
		{ PG_PGSTMT, "handle_pg_plan_start", "query__plan__start" },
		{ PG_PGSTMT, "handle_pg_plan_done", "query__plan__done" },
		{ PG_PGSTMT, "handle_pg_execute_start",
		  "query__execute__start" },
		{ PG_PGSTMT, "handle_pg_execute_done", "query__execute__done" },
		{ PG_PGSTMT, "handle_pg_commit", "transaction__commit" },
		{ PG_PGSTMT, "handle_pg_abort", "transaction__abort" },
		{ PG_PGSTMT, "handle_pg_buffer_read_done",
		  "buffer__read__done" },
	};
	struct probe_group *g = &p->groups[gid];
	struct bpf_link *links[sizeof(map) / sizeof(map[0])];
	struct bpf_program *prog;
	char why[160];
	unsigned i;
	int err, n = 0;

	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (map[i].gid != gid)
			continue;
		prog = bpf_object__find_program_by_name(p->pg->obj,
							map[i].prog);
		links[n] = bpf_program__attach_usdt(prog, -1, path,
						    "postgresql", map[i].probe,
						    NULL);
		err = libbpf_get_error(links[n]);
		if (err) {
			snprintf(g->error, sizeof(g->error),
				 "%s: USDT postgresql:%s not attached: %s (a postgres built without --enable-dtrace, or stripped)",
				 path, map[i].probe, strerror(-err));
			log_warn("probe group %s: %s", g->name, g->error);
			while (n > 0)
				bpf_link__destroy(links[--n]);
			return err;
		}
		n++;
	}
	for (i = 0; i < (unsigned)n; i++)
		keep_link(p, links[i]);
	g->attached = 1;
	g->error[0] = '\0';
	if (gid == PG_POSTGRES) {
		err = attach_pg_checkpoints(p, path, why, sizeof(why));
		if (err < 0) {
			snprintf(g->error, sizeof(g->error),
				 "%s: checkpoint durations not measured: %s",
				 path, why);
			log_warn("probe group %s: %s", g->name, g->error);
		} else {
			n += err;
		}
	}
	g->nprogs += n;
	log_info("attached %d PostgreSQL USDT probes (%s) to %s", n, g->name,
		 path);
	return n;
}

int probes_pg_attach(struct probes *p, const char *path)
{
	const int *gid = pg_groups;
	int i, n, any = 0, fail = 0;
	struct stat st;

	if (!p->pg)
		return -ENOTSUP;
	if (stat(path, &st))
		return -errno;
	for (i = 0; i < p->npg_bins; i++)
		if (p->pg_bins[i].st_dev == st.st_dev &&
		    p->pg_bins[i].st_ino == st.st_ino)
			return 0;
	if (p->npg_bins >= (int)(sizeof(p->pg_bins) / sizeof(p->pg_bins[0])))
		return -ENOSPC;
	for (i = 0; i < 2; i++) {
		if (!p->groups[gid[i]].enabled)
			continue;
		n = attach_pg_group(p, path, gid[i]);
		if (n < 0)
			fail = n;
		else
			any = 1;
	}
	/* Not retried while the file is there: a group that failed lacks
	 * its probes in this binary. */
	if (any || !access(path, R_OK))
		p->pg_bins[p->npg_bins++] = st;
	return any ? 1 : fail;
}

#define NODE_NONE "no node process seen yet (attached when one runs)"

static void open_node(struct probes *p, pid_t self)
{
	struct probe_group *g = &p->groups[PG_NODE];
	int ok;

	LOAD_FAMILY(p, self, node, node_bpf, PG_NODE, ok);
	if (!ok)
		return;
	snprintf(g->error, sizeof(g->error), NODE_NONE);
}

/* Whether tracefs has the tracepoint (tracefs mounted at either place). */
static int tracepoint_exists(const char *category, const char *name)
{
	static const char *const roots[] = { "/sys/kernel/tracing",
					     "/sys/kernel/debug/tracing" };
	char path[256];
	unsigned i;

	for (i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
		snprintf(path, sizeof(path), "%s/events/%s/%s", roots[i],
			 category, name);
		if (!access(path, F_OK))
			return 1;
	}
	return 0;
}

static int seen_binary(struct stat *bins, int n, const struct stat *st)
{
	int i;

	for (i = 0; i < n; i++)
		if (bins[i].st_dev == st->st_dev &&
		    bins[i].st_ino == st->st_ino)
			return 1;
	return 0;
}

/*
 * OpenSSL linked into the binary: the plaintext of TLS connections goes
 * through the same HTTP parsing as plain sockets (url_scheme https).
 * Reported in the http group's text; a binary without the symbols only
 * loses HTTPS.
 */
static void attach_ssl(struct probes *p, const char *path)
{
	static const struct {
		const char *prog, *func;
		int ret;
	} map[] = {
		{ "handle_ssl_read_enter", "SSL_read", 0 },
		{ "handle_ssl_read_exit", "SSL_read", 1 },
		{ "handle_ssl_read_ex_enter", "SSL_read_ex", 0 },
		{ "handle_ssl_read_ex_exit", "SSL_read_ex", 1 },
		{ "handle_ssl_write_enter", "SSL_write", 0 },
		{ "handle_ssl_write_exit", "SSL_write", 1 },
		{ "handle_ssl_write_ex_enter", "SSL_write_ex", 0 },
		{ "handle_ssl_write_ex_exit", "SSL_write_ex", 1 },
	};
	struct probe_group *g = &p->groups[PG_L7];
	struct bpf_link *link;
	unsigned i;
	int err, n = 0;

	if (!p->l7 || !g->attached)
		return;
	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		LIBBPF_OPTS(bpf_uprobe_opts, uo, .func_name = map[i].func,
			    .retprobe = map[i].ret != 0);
		struct bpf_program *prog = bpf_object__find_program_by_name(
			p->l7->obj, map[i].prog);

		link = bpf_program__attach_uprobe_opts(prog, -1, path, 0, &uo);
		err = libbpf_get_error(link);
		if (err) {
			log_warn("HTTPS in %s not traced: %s: %s", path,
				 map[i].func, strerror(-err));
			continue;
		}
		if (p->nlinks < (int)(sizeof(p->links) / sizeof(p->links[0])))
			p->links[p->nlinks++] = link;
		n++;
	}
	g->nprogs += n;
	if (n)
		log_info("attached %d OpenSSL probes to %s (HTTPS)", n, path);
}

/* Index i of these is the bit 1 << i of KS_WAIT_*. */
static const char *const wait_syscalls[3] = { "epoll_pwait", "epoll_wait",
					      "epoll_pwait2" };

/* Once every watched loop has waited (returned from or entered a wait, or
 * is blocked in one: blocked_in_wait),
 * and at least this long after the last process was watched, the wait
 * syscalls none of them uses are detached: libuv keeps to one. */
#define LOOP_LEARN_NS 1000000000ULL

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void wait_names(unsigned mask, char *out, size_t len)
{
	unsigned i;

	out[0] = '\0';
	for (i = 0; i < 3; i++)
		if (mask & (1u << i))
			snprintf(out + strlen(out), len - strlen(out), "%s%s",
				 out[0] ? ", " : "", wait_syscalls[i]);
}

/*
 * The main event loop of node processes: epoll wait tracepoints, attached
 * while at least one node process is watched (a host without Node pays
 * nothing). Each syscall in want whose enter and exit tracepoints exist
 * is attached, both or neither; Node 20's libuv waits in epoll_pwait,
 * other builds in epoll_wait or epoll_pwait2. Returns 0 or -ENOENT when
 * none is attached.
 */
static int attach_loop(struct probes *p, unsigned want)
{
	struct probe_group *g = &p->groups[PG_NODE];
	struct bpf_program *prog;
	struct bpf_link *link;
	char name[64], tp[64], done[64];
	unsigned i, dir, added = 0;
	int err;

	for (i = 0; i < 3; i++) {
		if (!(want & (1u << i)) || ((p->loop_on | p->loop_absent) &
					    (1u << i)))
			continue;
		for (dir = 0; dir < 2; dir++) {
			snprintf(tp, sizeof(tp), "sys_%s_%s",
				 dir ? "exit" : "enter", wait_syscalls[i]);
			if (!tracepoint_exists("syscalls", tp))
				break;
		}
		if (dir < 2) {
			log_info("node event loop: no tracepoint syscalls:%s on this kernel (%s not watched)",
				 tp, wait_syscalls[i]);
			p->loop_absent |= 1u << i;
			continue;
		}
		for (dir = 0; dir < 2; dir++) {
			snprintf(name, sizeof(name), "handle_%s_%s",
				 wait_syscalls[i], dir ? "exit" : "enter");
			prog = bpf_object__find_program_by_name(p->node->obj,
								name);
			link = bpf_program__attach(prog);
			err = libbpf_get_error(link);
			if (err) {
				log_warn("node event loop: %s not attached: %s",
					 name, strerror(-err));
				break;
			}
			p->loop_links[i][dir] = link;
		}
		if (dir < 2) { /* both or neither; not retried */
			if (dir == 1)
				bpf_link__destroy(p->loop_links[i][0]);
			p->loop_absent |= 1u << i;
			continue;
		}
		p->loop_on |= 1u << i;
		g->nprogs += 2;
		added |= 1u << i;
	}
	if (!p->loop_on) {
		snprintf(g->error, sizeof(g->error),
			 "no epoll_pwait/epoll_wait/epoll_pwait2 tracepoint attached: event-loop metrics not measured");
		log_warn("probe group %s: %s", g->name, g->error);
		return -ENOENT;
	}
	g->attached = 1;
	if (!strcmp(g->error, NODE_NONE))
		g->error[0] = '\0';
	if (added) {
		wait_names(added, done, sizeof(done));
		log_info("attached Node.js event-loop tracepoints (%s)", done);
	}
	return 0;
}

struct dead_links {
	unsigned n;
	struct bpf_link *links[6];
};

static void *destroy_links(void *arg)
{
	struct dead_links *d = arg;

	while (d->n > 0)
		bpf_link__destroy(d->links[--d->n]);
	free(d);
	return NULL;
}

/*
 * Detaching a tracepoint program waits for an RCU grace period: measured
 * 130-145 ms per program here. On the thread that drains the ring buffer
 * that stall lost records at 40 000 HTTP exchanges/s, so it is done on a
 * thread of its own (the programs stop running soon after either way).
 */
static void destroy_links_later(struct dead_links *d, int wait)
{
	pthread_attr_t attr;
	pthread_t t;
	int err = -1;

	if (!wait && !pthread_attr_init(&attr)) {
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		err = pthread_create(&t, &attr, destroy_links, d);
		pthread_attr_destroy(&attr);
	}
	if (err)
		destroy_links(d);
}

static void detach_loop(struct probes *p, unsigned mask, const char *why,
			int wait)
{
	struct probe_group *g = &p->groups[PG_NODE];
	struct dead_links *d;
	char names[64];
	unsigned i;

	mask &= p->loop_on;
	if (!mask)
		return;
	d = calloc(1, sizeof(*d));
	for (i = 0; i < 3; i++) {
		if (!(mask & (1u << i)))
			continue;
		if (d) {
			d->links[d->n++] = p->loop_links[i][0];
			d->links[d->n++] = p->loop_links[i][1];
		} else {
			bpf_link__destroy(p->loop_links[i][0]);
			bpf_link__destroy(p->loop_links[i][1]);
		}
		p->loop_links[i][0] = p->loop_links[i][1] = NULL;
		g->nprogs -= 2;
	}
	if (d)
		destroy_links_later(d, wait);
	p->loop_on &= ~mask;
	if (!p->loop_on && !p->ngc_bins) {
		g->attached = 0;
		if (!g->error[0])
			snprintf(g->error, sizeof(g->error),
				 "no node process running (attached when one runs)");
	}
	wait_names(mask, names, sizeof(names));
	log_info("Node.js event-loop tracepoints detached (%s): %s", names,
		 why);
}

/* The loop counters node.bpf.c keeps in node_loops, as ks_pid_stats has
 * them. */
static void loop_to_stats(const struct ks_node_loop *l,
			  struct ks_pid_stats *st)
{
	st->loop_busy_ns = l->busy_ns;
	st->loop_idle_ns = l->idle_ns;
	st->loop_busy_sum_ns = l->busy_sum_ns;
	memcpy(st->loop_busy, l->busy, sizeof(st->loop_busy));
}

static void stats_to_loop(const struct ks_pid_stats *st,
			  struct ks_node_loop *l)
{
	l->busy_ns = st->loop_busy_ns;
	l->idle_ns = st->loop_idle_ns;
	l->busy_sum_ns = st->loop_busy_sum_ns;
	memcpy(l->busy, st->loop_busy, sizeof(l->busy));
}

int probes_node_watch(struct probes *p, pid_t tgid)
{
	struct ks_node_loop fresh = { 0 }, old;
	uint32_t key = (uint32_t)tgid;
	struct ks_pid_stats st;
	int fd, existed;

	if (!p->node)
		return -ENOTSUP;
	fd = bpf_map__fd(p->node->maps.node_loops);
	existed = !bpf_map_lookup_elem(fd, &key, &old);
	if (existed && old.retired) { /* an exited process's: pid reused */
		existed = 0;
		p->nretired--;
		memset(&old, 0, sizeof(old));
	}
	/* Reset on a second exec: the old image's last wait is not the
	 * start of the new one's busy time. The counters go on, from the
	 * process's stats when it was watched before. */
	if (existed) {
		fresh = old;
		fresh.wait_enter = fresh.wait_exit = 0;
		fresh.waits_seen = 0;
	} else if (!bpf_map_lookup_elem(p->pid_stats_fd, &key, &st)) {
		stats_to_loop(&st, &fresh);
	} else {
		/* The counters are read with the process's stats: make sure
		 * it has some (without the sched group nothing else may). */
		memset(&st, 0, sizeof(st));
		bpf_map_update_elem(p->pid_stats_fd, &key, &st, BPF_NOEXIST);
	}
	if (bpf_map_update_elem(fd, &key, &fresh, BPF_ANY)) {
		int err = -errno;

		log_warn("node process %d: event loop not measured: %s",
			 (int)tgid, strerror(-err));
		return err;
	}
	if (!existed)
		p->nwatched++;
	/* Learn again which waits the loops use, this one included. */
	if ((p->loop_on | p->loop_absent) != KS_WAIT_ALL)
		attach_loop(p, KS_WAIT_ALL);
	p->loop_learn_ns = now_ns();
	return !existed;
}

void probes_node_unwatch(struct probes *p, pid_t tgid, int exited)
{
	uint32_t key = (uint32_t)tgid;
	struct ks_pid_stats st;
	struct ks_node_loop l;
	int fd;

	if (!p->node || !p->nwatched)
		return;
	fd = bpf_map__fd(p->node->maps.node_loops);
	if (bpf_map_lookup_elem(fd, &key, &l) || l.retired)
		return; /* not a watched process */
	if (exited) {
		/* Nothing updates its entry any more: it stays, read with
		 * the process's stats, until those are forgotten. */
		l.retired = 1;
		if (bpf_map_update_elem(fd, &key, &l, BPF_EXIST))
			return;
		p->nretired++;
	} else {
		/* It goes on as another program: its counters so far go to
		 * its stats (a kernel add to those between this read and
		 * the write is lost: a rare path, exec of non-Node). */
		if (bpf_map_lookup_elem(p->pid_stats_fd, &key, &st))
			memset(&st, 0, sizeof(st));
		loop_to_stats(&l, &st);
		bpf_map_update_elem(p->pid_stats_fd, &key, &st, BPF_ANY);
		if (bpf_map_delete_elem(fd, &key))
			return;
	}
	if (--p->nwatched == 0) {
		detach_loop(p, KS_WAIT_ALL, "no node process left", 0);
		p->loop_learn_ns = 0;
	}
}

/*
 * The KS_WAIT_* bit of the wait syscall a process's main thread is blocked
 * in now (/proc/PID/syscall: its number first, or "running"), else 0. An
 * idle loop entered its wait before the tracepoints were attached and may
 * not leave it for hours: that is where it waits.
 */
static unsigned blocked_in_wait(uint32_t tgid)
{
	char path[48], buf[32];
	ssize_t n;
	long nr;
	int fd;

	snprintf(path, sizeof(path), "/proc/%u/syscall", tgid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	if (buf[0] < '0' || buf[0] > '9')
		return 0;
	nr = strtol(buf, NULL, 10);
#ifdef SYS_epoll_pwait
	if (nr == SYS_epoll_pwait)
		return KS_WAIT_EPOLL_PWAIT;
#endif
#ifdef SYS_epoll_wait
	if (nr == SYS_epoll_wait)
		return KS_WAIT_EPOLL_WAIT;
#endif
#ifdef SYS_epoll_pwait2
	if (nr == SYS_epoll_pwait2)
		return KS_WAIT_EPOLL_PWAIT2;
#endif
	return 0;
}

void probes_node_prune(struct probes *p)
{
	struct ks_node_loop v;
	uint32_t key, next, *prev = NULL;
	unsigned used = 0, w;
	int fd;

	if (!p->node || !p->nwatched || !p->loop_learn_ns ||
	    now_ns() - p->loop_learn_ns < LOOP_LEARN_NS)
		return;
	fd = bpf_map__fd(p->node->maps.node_loops);
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &v) || v.retired)
			continue;
		w = v.waits_seen ? v.waits_seen : blocked_in_wait(key);
		if (!w)
			return; /* a loop that has not waited yet: keep all */
		used |= w;
	}
	p->loop_learn_ns = 0;
	detach_loop(p, p->loop_on & ~used,
		    "no watched Node.js main thread waits in them", 0);
}

/*
 * GC uprobes on a node binary, and its OpenSSL for HTTPS. A binary
 * without the GC symbol loses the GC pauses only: the event loop does
 * not depend on symbols.
 */
int probes_node_attach(struct probes *p, const char *path)
{
	static const char gc_sym[] =
		"_ZN2v88internal4Heap14CollectGarbageENS0_15AllocationSpaceENS0_23GarbageCollectionReasonENS_15GCCallbackFlagsE";
	static const char *const progs[2] = { "handle_gc_enter",
					      "handle_gc_exit" };
	struct probe_group *g = &p->groups[PG_NODE];
	struct bpf_link *links[2];
	struct stat st;
	unsigned i;
	int err = 0;

	if (!p->node)
		return -ENOTSUP;
	if (stat(path, &st))
		return -errno;
	if (seen_binary(p->node_bins, p->nnode_bins, &st))
		return 0;
	if (p->nnode_bins >= 16)
		return -ENOSPC;
	for (i = 0; i < 2; i++) {
		LIBBPF_OPTS(bpf_uprobe_opts, uo, .func_name = gc_sym,
			    .retprobe = i == 1);
		struct bpf_program *prog =
			bpf_object__find_program_by_name(p->node->obj,
							 progs[i]);

		links[i] = bpf_program__attach_uprobe_opts(prog, -1, path, 0,
							   &uo);
		err = libbpf_get_error(links[i]);
		if (err)
			break;
	}
	if (err) {
		while (i > 0)
			bpf_link__destroy(links[--i]);
		snprintf(g->error, sizeof(g->error),
			 "%s: symbol v8::internal::Heap::CollectGarbage not usable: %s (GC pauses not measured; the event loop is)",
			 path, strerror(-err));
		log_warn("probe group %s: %s", g->name, g->error);
		/* Not retried while the file is there: the binary lacks the
		 * symbol. */
		if (access(path, R_OK))
			return err;
		p->node_bins[p->nnode_bins++] = st;
		attach_ssl(p, path);
		return err;
	}
	for (i = 0; i < 2; i++)
		keep_link(p, links[i]);
	p->node_bins[p->nnode_bins++] = st;
	p->ngc_bins++;
	g->nprogs += 2;
	g->attached = 1;
	if (!strcmp(g->error, NODE_NONE))
		g->error[0] = '\0';
	log_info("attached Node.js GC probes to %s", path);
	attach_ssl(p, path);
	return 1;
}

void probes_profile_fds(struct probes *p, struct profile_fds *out)
{
	if (!p->profile || !p->groups[PG_PROFILE].attached) {
		out->stacks = out->cpu_samples = out->offcpu_ns = -1;
		return;
	}
	out->stacks = bpf_map__fd(p->profile->maps.stacks);
	out->cpu_samples = bpf_map__fd(p->profile->maps.cpu_samples);
	out->offcpu_ns = bpf_map__fd(p->profile->maps.offcpu_ns);
}

int probes_offcpu_get(struct probes *p)
{
	struct bpf_link *link;
	int err;

	if (!p->profile || !p->groups[PG_PROFILE].attached)
		return -ENOTSUP;
	if (p->offcpu_refs++ > 0)
		return 0;
	link = bpf_program__attach(p->profile->progs.handle_offcpu_switch);
	err = libbpf_get_error(link);
	if (err) {
		p->offcpu_refs--;
		return err;
	}
	p->offcpu_link = link;
	return 0;
}

void probes_offcpu_put(struct probes *p)
{
	if (p->offcpu_refs <= 0 || --p->offcpu_refs > 0)
		return;
	bpf_link__destroy(p->offcpu_link);
	p->offcpu_link = NULL;
}

int probes_open(struct probes **out, pid_t self,
		const struct probes_config *cfg, probe_event_fn fn, void *ctx,
		char *msg, size_t len)
{
	static const char *const names[PG_MAX] = PROBE_GROUP_NAMES;
	struct probes *p;
	int err, i;

	libbpf_set_print(libbpf_print);
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->groups[PG_PROCESS] = (struct probe_group){
		names[PG_PROCESS], "sched_process_exec/exit/fork tracepoints", 1
	};
	p->groups[PG_TCP] = (struct probe_group){
		names[PG_TCP], "inet_sock_set_state, tcp_retransmit_skb, accept exits",
		1
	};
	p->groups[PG_SCHED] = (struct probe_group){
		names[PG_SCHED], "sched_switch: CPU time, run-queue latency", 0
	};
	p->groups[PG_PROFILE] = (struct probe_group){
		names[PG_PROFILE], "perf_event cpu-clock sampling on every CPU; sched_switch for off-CPU on demand",
		0
	};
	p->groups[PG_POSTGRES] = (struct probe_group){
		names[PG_POSTGRES], "USDT postgresql:lock__wait__*, deadlock__found, checkpoint__start/done",
		0
	};
	p->groups[PG_PGSTMT] = (struct probe_group){
		names[PG_PGSTMT], "USDT postgresql:query__*, transaction__*, buffer__read__done (traps on every statement; not in the default set)",
		0
	};
	p->groups[PG_NODE] = (struct probe_group){
		names[PG_NODE], "event loop: epoll_pwait/epoll_wait/epoll_pwait2 enter/exit tracepoints on node processes' main thread (attached while one runs; once every loop has waited or is blocked in a wait, only the ones they use); GC: uprobes on node's v8 Heap::CollectGarbage",
		0
	};
	p->groups[PG_L7] = (struct probe_group){
		names[PG_L7], "read/recvfrom/write/sendto/writev/close syscalls: HTTP/1.x server exchanges",
		0
	};
	p->ncpus = libbpf_num_possible_cpus();
	if (p->ncpus <= 0) {
		snprintf(msg, len, "cannot count possible CPUs");
		err = -EINVAL;
		goto fail;
	}

	err = open_proc(p, self);
	if (err) {
		snprintf(msg, len,
			 "cannot load the core BPF programs: %s (run with --log-level debug for the verifier log)",
			 p->groups[PG_PROCESS].error);
		goto fail;
	}
	if (wanted(cfg, PG_TCP))
		OPEN_FAMILY(p, self, tcp, tcp_bpf, PG_TCP);
	if (wanted(cfg, PG_SCHED))
		open_sched(p, self);
	if (wanted(cfg, PG_L7))
		open_l7(p, self, cfg);
	if (wanted(cfg, PG_PROFILE))
		open_profile(p, self, cfg);
	if (wanted(cfg, PG_POSTGRES) || wanted(cfg, PG_PGSTMT))
		open_pg(p, self, cfg);
	if (wanted(cfg, PG_NODE))
		open_node(p, self);

	for (i = 0; i < PG_MAX; i++) {
		p->groups[i].enabled = wanted(cfg, i);
		if (!p->groups[i].enabled)
			snprintf(p->groups[i].error, sizeof(p->groups[i].error),
				 "not enabled (--probes%s)",
				 (PROBE_GROUPS_DEFAULT >> i) & 1u ?
					 "" :
					 "; not in the default set, --probes +pgstatements adds it");
	}
	p->rb = ring_buffer__new(p->events_fd, fn, ctx, NULL);
	if (!p->rb) {
		err = -errno;
		snprintf(msg, len, "cannot open the BPF ring buffer: %s",
			 strerror(errno));
		goto fail;
	}
	*out = p;
	return 0;
fail:
	probes_close(p);
	return err;
}

void probes_close(struct probes *p)
{
	if (!p)
		return;
	ring_buffer__free(p->rb);
	while (p->nlinks > 0)
		bpf_link__destroy(p->links[--p->nlinks]);
	detach_loop(p, KS_WAIT_ALL, "exiting", 1);
	bpf_link__destroy(p->offcpu_link);
	pgusdt_bpf__destroy(p->pg);
	node_bpf__destroy(p->node);
	profile_bpf__destroy(p->profile);
	if (p->http_tab)
		munmap(p->http_tab,
		       sizeof(struct ks_http_slot) * KS_HTTP_SLOTS);
	if (p->http_tab_used)
		munmap(p->http_tab_used, sizeof(struct ks_http_used));
	l7_bpf__destroy(p->l7);
	if (p->sched_tab)
		munmap(p->sched_tab,
		       sizeof(struct ks_sched_slot) * KS_SCHED_SLOTS);
	sched_bpf__destroy(p->sched);
	tcp_bpf__destroy(p->tcp);
	proc_bpf__destroy(p->proc);
	free(p->ps_keys);
	free(p->ps_vals);
	free(p);
}

int probes_l7_sweep(struct probes *p)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts);
	int err;

	if (!p->l7 || !p->groups[PG_L7].attached)
		return 0;
	err = bpf_prog_test_run_opts(bpf_program__fd(p->l7->progs.l7_sweep),
				     &opts);
	return err ? -errno : (int)opts.retval;
}

/*
 * Records are submitted without a wakeup (see common.bpf.h), so waiting
 * on the ring's epoll only returns early for bursts: drain it after every
 * wait, timeout or not.
 */
int probes_poll(struct probes *p, int timeout_ms)
{
	int n = ring_buffer__poll(p->rb, timeout_ms);

	if (n < 0)
		return n;
	return ring_buffer__consume(p->rb);
}

/*
 * sched_tab's slots are written by the kernel while the agent reads them:
 * each figure is read (and zeroed) on its own, as one 8-byte access.
 */
#define LOAD(v) __atomic_load_n(&(v), __ATOMIC_RELAXED)
#define ZERO(v) __atomic_store_n(&(v), 0, __ATOMIC_RELAXED)

static void add_slot(struct ks_sched_stats *to, struct ks_sched_slot *s)
{
	int i;

	to->oncpu_ns += LOAD(s->st.oncpu_ns);
	to->runq_lat_sum_ns += LOAD(s->st.runq_lat_sum_ns);
	for (i = 0; i < KS_LAT_BUCKETS; i++)
		to->runq_lat[i] += LOAD(s->st.runq_lat[i]);
}

/*
 * A slot released at the last read (KS_SCHED_DEAD): every switch that
 * matched it before then has long ended, none matches it since. Its
 * figures are zeroed before it is free to claim.
 */
static void free_slot(struct ks_sched_slot *s)
{
	int i;

	ZERO(s->st.oncpu_ns);
	ZERO(s->st.runq_lat_sum_ns);
	for (i = 0; i < KS_LAT_BUCKETS; i++)
		ZERO(s->st.runq_lat[i]);
	__atomic_store_n(&s->tgid, 0, __ATOMIC_RELEASE);
}

/*
 * Free the slots released at the last read and note each slot's owner:
 * its figures are reported once, with its pid_stats entry if it has one.
 * A slot claimed after this is reported at the next read.
 */
static void sched_read_begin(struct probes *p)
{
	struct ks_sched_slot *s;
	uint64_t owner;
	uint32_t i;

	for (i = 0; p->sched_tab && i < KS_SCHED_SLOTS; i++) {
		s = &p->sched_tab[i];
		owner = __atomic_load_n(&s->tgid, __ATOMIC_ACQUIRE);
		if (owner & KS_SCHED_DEAD) {
			free_slot(s);
			owner = 0;
		}
		p->sched_owner[i] = (uint32_t)owner;
	}
}

#define SLOT_REPORTED 0x80000000u

/*
 * Add a process's slot to its pid_stats figures, if it had one. Again if
 * the entry is met twice (deleting an entry restarts the walk): a second
 * report without the slot would look like figures that fell.
 */
static void sched_read_add(struct probes *p, uint32_t tgid,
			   struct ks_sched_stats *st)
{
	uint32_t i = ks_sched_slot_of(tgid);

	if (!p->sched_tab || (p->sched_owner[i] & ~SLOT_REPORTED) != tgid)
		return;
	add_slot(st, &p->sched_tab[i]);
	p->sched_owner[i] |= SLOT_REPORTED;
}

/*
 * A process's figures are its pid_stats entry plus its sched_tab slot.
 * Either may be missing: a process that uses no socket has no entry, one
 * whose slot another process holds has no slot. The sums only grow while
 * the process lives: neither is removed before probes_forget_pid.
 */
#define PID_STATS_BATCH 256

/* Every pid_stats entry to fn, PID_STATS_BATCH per system call (an entry
 * cost a get_next_key and a lookup before). */
static int read_pid_entries(struct probes *p, pid_stats_fn fn, void *arg)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	struct ks_node_loop loop;
	uint64_t in = 0, out = 0;
	int err, first = 1, n = 0;
	__u32 i, cnt;

	if (!p->ps_keys) {
		p->ps_keys = calloc(PID_STATS_BATCH, sizeof(*p->ps_keys));
		p->ps_vals = calloc(PID_STATS_BATCH, sizeof(*p->ps_vals));
		if (!p->ps_keys || !p->ps_vals) {
			free(p->ps_keys);
			free(p->ps_vals);
			p->ps_keys = NULL;
			p->ps_vals = NULL;
			return 0; /* read at a later refresh */
		}
	}
	for (;;) {
		cnt = PID_STATS_BATCH;
		err = bpf_map_lookup_batch(p->pid_stats_fd, first ? NULL : &in,
					   &out, p->ps_keys, p->ps_vals, &cnt,
					   &opts);
		if (err && errno != ENOENT)
			return n;
		for (i = 0; i < cnt; i++) {
			struct ks_pid_stats *st = &p->ps_vals[i];
			uint32_t key = p->ps_keys[i];

			if (p->node && (p->nwatched || p->nretired) &&
			    !bpf_map_lookup_elem(
				    bpf_map__fd(p->node->maps.node_loops),
				    &key, &loop))
				loop_to_stats(&loop, st);
			sched_read_add(p, key, &st->sched);
			fn(key, st, arg);
			n++;
		}
		if (err) /* ENOENT: that was the last batch */
			return n;
		in = out;
		first = 0;
	}
}

int probes_read_pid_stats(struct probes *p, pid_stats_fn fn, void *arg)
{
	struct ks_pid_stats st;
	uint32_t i;
	int n;

	sched_read_begin(p);
	n = read_pid_entries(p, fn, arg);
	/* The slots of processes without a pid_stats entry. */
	for (i = 0; p->sched_tab && i < KS_SCHED_SLOTS; i++) {
		if (!p->sched_owner[i] || p->sched_owner[i] & SLOT_REPORTED)
			continue;
		memset(&st, 0, sizeof(st));
		add_slot(&st.sched, &p->sched_tab[i]);
		fn(p->sched_owner[i], &st, arg);
		n++;
	}
	return n;
}

int probes_forget_pid(struct probes *p, uint32_t tgid)
{
	struct ks_sched_slot *s;
	uint64_t owner = tgid;

	/* Released now, freed at the next read (see sched_read_begin). */
	if (p->sched_tab) {
		s = &p->sched_tab[ks_sched_slot_of(tgid)];
		__atomic_compare_exchange_n(&s->tgid, &owner,
					    tgid | KS_SCHED_DEAD, 0,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
	}
	if (p->node && p->nretired) {
		int fd = bpf_map__fd(p->node->maps.node_loops);
		struct ks_node_loop l;

		if (!bpf_map_lookup_elem(fd, &tgid, &l) && l.retired &&
		    !bpf_map_delete_elem(fd, &tgid))
			p->nretired--;
	}
	return bpf_map_delete_elem(p->pid_stats_fd, &tgid);
}

/*
 * A slot released at the last read (KS_HTTP_DEAD), once its last
 * counts were read: every exchange that matched it before then has long
 * ended, none matches it since. Zeroed before it is free to claim, its
 * owner last.
 */
static void http_slot_free(struct probes *p, uint32_t slot)
{
	struct ks_http_slot *s = &p->http_tab[slot];
	int i;

	__atomic_fetch_and(&p->http_tab_used->w[slot / 64],
			   ~(1ULL << (slot % 64)), __ATOMIC_SEQ_CST);

	ZERO(s->val.count);
	ZERO(s->val.sum_ns);
	for (i = 0; i < KS_HTTP_BUCKETS; i++)
		ZERO(s->val.bucket[i]);
	for (i = 0; i < 5; i++)
		ZERO(s->key.w[i]);
	__atomic_store_n(&s->owner, 0, __ATOMIC_RELEASE);
}

int probes_read_http_counts(struct probes *p, http_count_fn fn, void *arg)
{
	struct ks_http_slot *s;
	struct ks_http_key k;
	struct ks_http_val v;
	uint64_t owner, bits;
	uint32_t i, w;
	int j, n = 0, dead;

	if (!p->http_tab || !p->groups[PG_L7].attached)
		return 0;
	for (w = 0; w < KS_HTTP_SLOTS / 64; w++)
	for (bits = __atomic_load_n(&p->http_tab_used->w[w], __ATOMIC_ACQUIRE);
	     bits; bits &= bits - 1) {
		i = w * 64 + (uint32_t)__builtin_ctzll(bits);
		s = &p->http_tab[i];
		owner = __atomic_load_n(&s->owner, __ATOMIC_ACQUIRE);
		dead = (owner & KS_HTTP_DEAD) != 0;
		if (!owner || owner == KS_HTTP_CLAIMED)
			continue;
		/* The key stays as published while the slot is held. */
		for (j = 0; j < 5; j++)
			k.w[j] = LOAD(s->key.w[j]);
		v.count = LOAD(s->val.count);
		v.sum_ns = LOAD(s->val.sum_ns);
		for (j = 0; j < KS_HTTP_BUCKETS; j++)
			v.bucket[j] = LOAD(s->val.bucket[j]);
		if (dead) { /* released at the last read: its last counts */
			fn(i, &k, &v, 1, arg);
			http_slot_free(p, i);
			continue;
		}
		/* Released now, freed at the next read. */
		if (fn(i, &k, &v, 0, arg))
			__atomic_compare_exchange_n(&s->owner, &owner,
						    owner | KS_HTTP_DEAD, 0,
						    __ATOMIC_RELAXED,
						    __ATOMIC_RELAXED);
		n++;
	}
	return n;
}

void probes_read_drops(struct probes *p, uint64_t out[KS_DROP_MAX])
{
	uint64_t vals[p->ncpus];
	uint32_t k;
	int i;

	for (k = 0; k < KS_DROP_MAX; k++) {
		out[k] = 0;
		if (bpf_map_lookup_elem(p->drops_fd, &k, vals))
			continue;
		for (i = 0; i < p->ncpus; i++)
			out[k] += vals[i];
	}
}

const struct probe_group *probes_groups(struct probes *p, int *n)
{
	*n = PG_MAX;
	return p->groups;
}

int probes_prog_ids(struct probes *p, uint32_t *ids, const char **names,
		    int max)
{
	struct bpf_object *objs[7] = { p->node ? p->node->obj : NULL, p->proc ? p->proc->obj : NULL,
				       p->tcp ? p->tcp->obj : NULL,
				       p->sched ? p->sched->obj : NULL,
				       p->l7 ? p->l7->obj : NULL,
				       p->profile ? p->profile->obj : NULL,
				       p->pg ? p->pg->obj : NULL };
	struct bpf_prog_info info;
	struct bpf_program *prog;
	uint32_t ilen;
	int i, n = 0, fd;

	for (i = 0; i < 7; i++) {
		if (!objs[i])
			continue;
		bpf_object__for_each_program(prog, objs[i]) {
			fd = bpf_program__fd(prog);
			if (fd < 0 || n >= max)
				continue;
			memset(&info, 0, sizeof(info));
			ilen = sizeof(info);
			if (bpf_obj_get_info_by_fd(fd, &info, &ilen))
				continue;
			ids[n] = info.id;
			names[n] = bpf_program__name(prog);
			n++;
		}
	}
	return n;
}
