/*
 * main.c - katascope: wire the pieces together and run the event loop.
 *
 * One thread reads the ring buffer and, every --refresh-ms, folds the
 * kernel's per-process counters into the metric registry; libmicrohttpd's
 * thread serves the registry. Start-up order makes every user error cheap
 * to report: flags, privileges, BTF and the listening port are checked
 * before any BPF program is loaded.
 */
#include <errno.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "httpd.h"
#include "l7.h"
#include "oneshot.h"
#include "otlp_push.h"
#include "pgserver.h"
#include "profiler.h"
#include "log.h"
#include "metrics.h"
#include "probes.h"
#include "proctab.h"
#include "queries.h"
#include "spans.h"
#include "strbuf.h"
#include "svctab.h"
#include "sysenv.h"
#include "telemetry.h"

/* A process's counters are folded for this long after it exits, so that
 * records still in flight (its sockets closing) find its service. */
#define EXIT_GRACE_NS 3000000000ULL

struct agent {
	struct options opt;
	struct metric_registry *reg;
	struct proctab *procs;
	struct telemetry *tel;
	struct l7 *l7;
	struct spans *spans;
	struct queries *queries;
	struct profiler *profiler;
	struct pgserver *pgserver;
	struct probes *probes;
	struct httpd *httpd;
	struct otlp_push_stats *push_stats;
	struct otlp_push *push; /* NULL unless --otlp-endpoint */
	uint64_t start_unix_ns; /* cumulative values count from here */
	struct svctab *svcs; /* services' process attributes, for OTLP */
	struct otlp_service_info self_info;
	struct otlp_resource_info res;
	struct self_stats self;
};

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	stopping = 1;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/*
 * Runtimes with probes of their own: PostgreSQL (USDT) and Node.js (GC
 * uprobes), attached once per binary, found through /proc/PID/exe so that
 * binaries inside containers resolve too (then through /proc/PID/root).
 * Node's event loop is measured per process: a node process is watched
 * (its main thread's epoll waits) until it exits or execs something else.
 */
enum runtime { RT_NONE, RT_NODE, RT_POSTGRES };

static enum runtime runtime_of(const char *path)
{
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	if (!strcmp(base, "node") || !strcmp(base, "nodejs"))
		return RT_NODE;
	if (!strcmp(base, "postgres") || !strcmp(base, "postmaster"))
		return RT_POSTGRES;
	return RT_NONE;
}

static void maybe_runtime(struct agent *a, int pid, const char *path)
{
	char link[64], exe[PI_PATH_LEN], bin[PI_PATH_LEN + 64];
	enum runtime rt = runtime_of(path);
	struct stat want, st;
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/%d/exe", pid);
	n = readlink(link, exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		/* A script run through its #! line: the file exec'd is the
		 * script, the image is the interpreter's. */
		if (rt == RT_NONE)
			rt = runtime_of(exe);
	}
	if (rt != RT_NODE)
		probes_node_unwatch(a->probes, pid, 0);
	if (rt == RT_NONE || n <= 0 || stat(link, &want))
		return;
	/* A path that outlives the process: the binary's own path when it
	 * is the same file here, else through the process's root. */
	if (!stat(exe, &st) && st.st_dev == want.st_dev &&
	    st.st_ino == want.st_ino)
		snprintf(bin, sizeof(bin), "%s", exe);
	else
		snprintf(bin, sizeof(bin), "/proc/%d/root%s", pid, exe);
	if (rt == RT_POSTGRES) {
		probes_pg_attach(a->probes, bin);
		return;
	}
	probes_node_watch(a->probes, pid);
	probes_node_attach(a->probes, bin);
}

static void attach_running_runtimes(struct proc_entry *e, void *arg)
{
	maybe_runtime(arg, e->pid, e->exe);
}

static int on_event(void *ctx, void *data, size_t len)
{
	struct agent *a = ctx;
	const struct ks_event_hdr *h = data;
	const struct ks_exec_event *ex;
	const struct ks_fork_event *fk;
	struct proc_entry *e;

	if (len < sizeof(*h))
		return 0;
	if (h->type <= KS_EV_PG)
		a->self.events[h->type]++;
	switch (h->type) {
	case KS_EV_EXEC:
		if (len < sizeof(*ex))
			break;
		ex = data;
		{
			char env[KS_ENV_LEN];

			/* "OTEL_SERVICE_NAME=x" -> "x" */
			snprintf(env, sizeof(env), "%s",
				 ex->service_env[0] ? ex->service_env + 18 :
						      "");
			proctab_on_exec(a->procs, (int)h->pid, (int)ex->ppid,
					ex->comm, ex->filename, env);
			maybe_runtime(a, (int)h->pid, ex->filename);
		}
		break;
	case KS_EV_FORK:
		if (len < sizeof(*fk))
			break;
		fk = data;
		proctab_on_fork(a->procs, (int)h->pid, (int)fk->parent_pid,
				fk->comm);
		break;
	case KS_EV_EXIT:
		probes_node_unwatch(a->probes, (int)h->pid, 1);
		e = proctab_get(a->procs, (int)h->pid);
		if (e)
			e->exit_ns = h->ts_ns ? h->ts_ns : mono_ns();
		break;
	case KS_EV_TCP_CLOSE:
		if (len < sizeof(struct ks_tcp_close_event))
			break;
		e = proctab_lookup(a->procs, (int)h->pid);
		if (e)
			telemetry_tcp_close(a->tel, e, data);
		break;
	case KS_EV_PG:
		e = proctab_lookup(a->procs, (int)h->pid);
		if (e && a->pgserver)
			pgserver_on_event(a->pgserver, e, data, len);
		break;
	case KS_EV_L7:
		if (len < offsetof(struct ks_l7_event, data))
			break;
		e = proctab_lookup(a->procs, (int)h->pid);
		if (e)
			l7_on_event(a->l7, e, data);
		break;
	}
	return 0;
}

static void fold_one(uint32_t tgid, const struct ks_pid_stats *st, void *arg)
{
	struct agent *a = arg;
	struct proc_entry *e = proctab_lookup(a->procs, (int)tgid);

	if (!e) {
		/* Gone before we knew it, or a kernel thread. */
		probes_forget_pid(a->probes, tgid);
		return;
	}
	telemetry_fold_pid(a->tel, e, st);
}

static int fold_http_slot(uint32_t slot, const struct ks_http_key *k,
			    const struct ks_http_val *v, int final,
			    void *arg)
{
	struct agent *a = arg;

	/* As for a record: a process not known yet is read from /proc. */
	return l7_fold_http_slot(a->l7,
				   proctab_lookup(a->procs, (int)k->tgid), slot,
				   k, v, final);
}

struct reap_ctx {
	struct agent *a;
	uint64_t now;
	int pids[256];
	int n;
};

static void find_exited(struct proc_entry *e, void *arg)
{
	struct reap_ctx *c = arg;

	if (e->exit_ns && c->now > e->exit_ns + EXIT_GRACE_NS &&
	    c->n < (int)(sizeof(c->pids) / sizeof(c->pids[0])))
		c->pids[c->n++] = e->pid;
}

static void reap_exited(struct agent *a)
{
	struct reap_ctx c = { .a = a, .now = mono_ns() };
	int i;

	proctab_foreach(a->procs, find_exited, &c);
	for (i = 0; i < c.n; i++) {
		probes_forget_pid(a->probes, (uint32_t)c.pids[i]);
		pgserver_forget(a->pgserver, c.pids[i]);
		proctab_release(proctab_remove(a->procs, c.pids[i]));
	}
}

static void refresh(struct agent *a)
{
	probes_read_pid_stats(a->probes, fold_one, a);
	reap_exited(a);
	probes_node_prune(a->probes);
	probes_read_drops(a->probes, a->self.drops);
	a->self.processes = proctab_count(a->procs);
	a->self.proctab_dropped = proctab_dropped(a->procs);
	telemetry_refresh(a->tel, a->procs, &a->self);
	spans_tick(a->spans, mono_ns());
	spans_publish(a->spans);
	svctab_update(a->svcs, a->procs);
}

/* The /healthz document; returns whether every core group attached. */
static int render_health(struct agent *a, struct strbuf *sb)
{
	const struct probe_group *g;
	int i, n, ok = 1;

	g = probes_groups(a->probes, &n);
	for (i = 0; i < n; i++)
		if (g[i].core && g[i].enabled && !g[i].attached)
			ok = 0;
	sb_printf(sb, "{\"status\":\"%s\",\"version\":\"%s\",\"groups\":[",
		  ok ? "ok" : "degraded", KATASCOPE_VERSION);
	for (i = 0; i < n; i++) {
		sb_printf(sb, "%s{\"name\":", i ? "," : "");
		sb_json_str(sb, g[i].name);
		sb_printf(sb,
			  ",\"core\":%s,\"enabled\":%s,\"attached\":%s,\"programs\":%d,",
			  g[i].core ? "true" : "false",
			  g[i].enabled ? "true" : "false",
			  g[i].attached ? "true" : "false", g[i].nprogs);
		sb_puts(sb, "\"probes\":");
		sb_json_str(sb, g[i].what);
		sb_puts(sb, ",\"error\":");
		sb_json_str(sb, g[i].error);
		sb_putc(sb, '}');
	}
	sb_printf(sb, "],\"processes_tracked\":%u}\n",
		  proctab_count(a->procs));
	return ok;
}

static void publish_health(struct agent *a)
{
	struct strbuf sb = STRBUF_INIT;
	int ok = render_health(a, &sb);

	if (!sb.oom)
		httpd_set_health(a->httpd, ok, sb.buf);
	sb_free(&sb);
}

/* The OTLP resources' process attributes: the agent's own, and the
 * monitored services' from the table the event loop keeps current. */
static void self_resource(struct agent *a)
{
	struct procinfo pi;

	a->self_info.pid = getpid();
	if (!procinfo_read(a->opt.proc_root, getpid(), &pi)) {
		exe_basename(pi.exe, a->self_info.exe_name,
			     sizeof(a->self_info.exe_name));
		memcpy(a->self_info.container_id, pi.container_id,
		       sizeof(pi.container_id));
		memcpy(a->self_info.pod_uid, pi.pod_uid, sizeof(pi.pod_uid));
	}
	a->res.self = &a->self_info;
	a->res.service_info = svctab_get;
	a->res.ctx = a->svcs;
}

static int fail(const char *msg)
{
	fprintf(stderr, "katascope: %s\n", msg);
	return 1;
}

static int start(struct agent *a, char *msg, size_t len)
{
	struct proctab_filter filter = {
		a->opt.pids, a->opt.npids, a->opt.exclude_pids, a->opt.nexclude,
		getpid()
	};
	struct probes_config cfg = { 0 };
	int fd, err, n;

	if ((err = sysenv_check_caps(msg, len)))
		return err;
	if ((err = sysenv_check_btf(msg, len)))
		return err;
	if ((err = httpd_bind(&a->opt, &fd, msg, len)))
		return err;
	a->reg = metric_registry_new(a->opt.max_series);
	if (!a->reg) {
		close(fd);
		snprintf(msg, len, "out of memory");
		return -ENOMEM;
	}
	a->queries = queries_new(a->opt.slow_query_ms / 1000.0, 256, 1000);
	if (!a->queries) {
		close(fd);
		snprintf(msg, len, "out of memory");
		return -ENOMEM;
	}
	a->push_stats = otlp_push_stats_new(a->reg);
	a->svcs = svctab_new(0);
	if (!a->push_stats || !a->svcs) {
		close(fd);
		snprintf(msg, len, "out of memory");
		return -ENOMEM;
	}
	{
		/* Spans are built only with --traces (see docs/tracing.md);
		 * their self-metric families exist either way. An OTLP push
		 * of traces sets .push (the ring then queues for it) and
		 * enables tracing, and polls spans_collect_otlp(a->spans). */
		struct spans_opts so = { .cfg = a->opt.trace, .reg = a->reg };

		so.mono_to_unix_ns = spans_clock_offset();
		so.push = a->opt.trace.enabled && a->opt.otlp.traces_url[0];
		a->spans = spans_new(&so);
		if (!a->spans) {
			close(fd);
			snprintf(msg, len, "out of memory");
			return -ENOMEM;
		}
	}
	{
		/* Cumulative values count from here: the points' start. */
		struct httpd_sources src = { a->reg, a->queries, NULL, 0,
					     a->spans, &a->res };
		struct timespec now;

		self_resource(a);
		clock_gettime(CLOCK_REALTIME, &now);
		a->start_unix_ns = (uint64_t)now.tv_sec * 1000000000ULL +
				   (uint64_t)now.tv_nsec;
		src.start_unix_ns = a->start_unix_ns;
		a->httpd = httpd_start(fd, &src, msg, len);
	}
	if (!a->httpd)
		return -EIO;
	if ((err = sysenv_mount_fs(msg, len)))
		return err;
	if (sysenv_raise_memlock(msg, len))
		log_debug("%s (fine on kernels >= 5.11)", msg);
	a->tel = telemetry_new(a->reg, a->opt.proc_root);
	a->l7 = l7_new(a->reg, a->queries);
	a->pgserver = pgserver_new(a->reg, a->queries, a->opt.proc_root);
	a->procs = proctab_new(a->opt.proc_root, 0, &filter);
	if (!a->tel || !a->l7 || !a->pgserver || !a->procs) {
		snprintf(msg, len, "out of memory");
		return -ENOMEM;
	}
	l7_set_spans(a->l7, a->spans);
	/* Probes first, then the /proc scan: a process started in between
	 * is seen by both, never by neither. */
	cfg.profile_hz = a->opt.profile_hz;
	cfg.groups = a->opt.probe_groups;
	cfg.l7_split = spans_enabled(a->spans);
	err = probes_open(&a->probes, getpid(), &cfg, on_event, a, msg, len);
	if (err)
		return err;
	a->profiler = profiler_new(a->probes, a->opt.proc_root,
				   a->opt.profile_hz);
	httpd_set_profiler(a->httpd, a->profiler);
	n = proctab_seed(a->procs);
	if (n < 0) {
		snprintf(msg, len, "cannot scan %s: %s", a->opt.proc_root,
			 strerror(-n));
		return n;
	}
	proctab_foreach(a->procs, attach_running_runtimes, a);
	svctab_update(a->svcs, a->procs);
	if (a->opt.otlp.metrics_url[0] || a->opt.otlp.traces_url[0]) {
		struct otlp_push_config pc = {
			.otlp = &a->opt.otlp,
			.reg = a->reg,
			.res = &a->res,
			.start_unix_ns = a->start_unix_ns,
			.stats = a->push_stats,
		};

		a->push = otlp_push_start(&pc);
		if (!a->push) {
			snprintf(msg, len, "cannot start the OTLP exporter");
			return -EIO;
		}
		/* With --traces, spans go to <endpoint>/v1/traces too. */
		if (spans_enabled(a->spans) && a->opt.otlp.traces_url[0])
			otlp_push_set_trace_source(a->push, spans_collect_otlp,
						   a->spans);
	}
	publish_health(a);
	log_info("listening on http://%s:%d (/metrics, /healthz), %d processes",
		 a->opt.listen_host, a->opt.listen_port, n);
	if (spans_enabled(a->spans))
		log_info("tracing on: sample ratio %g (%s), keep spans slower than %llu ms",
			 a->opt.trace.ratio,
			 a->opt.trace.parent_based ? "parent-based" :
						     "trace id only",
			 (unsigned long long)(a->opt.trace.keep_slower_ns /
					      1000000));
	return 0;
}

/*
 * The main loop wakes at least every POLL_MS to drain the ring buffer
 * (records are sent without waking it; a burst that fills half a MiB of
 * the ring wakes it early), run the idle sweep (500 ms) and the refresh.
 * 100 ms rather than 50 (with the HTTP client slots visited by their
 * bitmap, an idle agent went from 1.86 to 1.27 ms of CPU per second); the
 * profiler drains every 50 ms while it records.
 */
#define POLL_MS 100
#define POLL_BUSY_MS 50

static void run(struct agent *a)
{
	uint64_t next = mono_ns(), period = a->opt.refresh_ms * 1000000ULL;
	uint64_t sweep = next;
	int err, sweep_warned = 0;

	while (!stopping) {
		err = probes_poll(a->probes, profiler_busy(a->profiler) ?
						     POLL_BUSY_MS :
						     POLL_MS);
		if (err < 0 && err != -EINTR) {
			log_error("ring buffer poll failed: %s", strerror(-err));
			break;
		}
		if (mono_ns() >= sweep) {
			err = probes_l7_sweep(a->probes);
			if (err < 0 && !sweep_warned++)
				log_warn("idle HTTP exchanges not ended (sweep failed: %s): they end at the next request or close",
					 strerror(-err));
			sweep = mono_ns() + PROBES_L7_SWEEP_MS * 1000000ULL;
			/* HTTP calls counted in the kernel, the ones the sweep
			 * just ended too: in /metrics within 2 s whatever
			 * --refresh-ms says. */
			probes_read_http_counts(a->probes, fold_http_slot,
						 a);
		}
		profiler_tick(a->profiler, a->procs, mono_ns());
		if (mono_ns() >= next) {
			refresh(a);
			publish_health(a);
			next = mono_ns() + period;
		}
	}
}

static void cleanup(struct agent *a)
{
	otlp_push_stop(a->push); /* flushes the last snapshot, <= 2 s */
	httpd_stop(a->httpd);
	profiler_free(a->profiler);
	probes_close(a->probes);
	telemetry_free(a->tel);
	l7_free(a->l7);
	spans_free(a->spans);
	pgserver_free(a->pgserver);
	proctab_free(a->procs);
	metric_registry_free(a->reg);
	otlp_push_stats_free(a->push_stats);
	svctab_free(a->svcs);
	queries_free(a->queries);
}

int main(int argc, char **argv)
{
	struct agent a;
	char msg[512] = "";
	struct sigaction sa;
	int err;

	memset(&a, 0, sizeof(a));
	if (argc > 1 && !strcmp(argv[1], "profile"))
		return profile_main(argc - 1, argv + 1);
	switch (cli_parse(argc, argv, &a.opt, msg, stdout)) {
	case CLI_EXIT_OK:
		return 0;
	case CLI_ERROR:
		fprintf(stderr, "katascope: %s\n", msg);
		return 2;
	case CLI_RUN:
		break;
	}
	log_level = (enum log_level)a.opt.log_level;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	err = start(&a, msg, sizeof(msg));
	if (err) {
		cleanup(&a);
		return fail(msg[0] ? msg : strerror(-err));
	}
	run(&a);
	log_info("stopping");
	cleanup(&a);
	return 0;
}
