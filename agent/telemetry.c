/*
 * telemetry.c - per-service metrics from kernel counters, see telemetry.h.
 *
 * Metric names follow the OpenTelemetry semantic conventions turned into
 * Prometheus names the way the OpenTelemetry Prometheus exporter does
 * (process.cpu.time in s -> process_cpu_time_seconds_total); what has no
 * convention is prefixed katascope_. docs/metrics.md lists every one and
 * tests/unit/test_metrics_doc.c checks that list against this file.
 */
#include "telemetry.h"
#include "procinfo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define NS 1e-9

struct telemetry {
	struct metric_registry *reg;
	const char *proc_root;
	double lat_bounds[KS_LAT_BUCKETS - 1];
	char prev_cpu_line[256];

	struct metric_family *tcp_opened;
	struct metric_family *tcp_closed;
	struct metric_family *tcp_failed;
	struct metric_family *tcp_connect_dur;
	struct metric_family *tcp_sent;
	struct metric_family *tcp_received;
	struct metric_family *tcp_rtt;
	struct metric_family *tcp_retrans;
	struct metric_family *tcp_conn_dur;
	struct metric_family *cpu_time;
	struct metric_family *loop_util;
	struct metric_family *loop_busy;
	struct metric_family *gc;
	struct loop_acc {
		char service[PI_NAME_LEN];
		uint64_t busy, idle;
	} loops[64];
	unsigned nloops;
	struct metric_family *pg_tx;
	struct metric_family *pg_buf;
	struct metric_family *pg_deadlocks;
	struct metric_family *runq;
	struct metric_family *rss;
	struct metric_family *nprocs;
	struct metric_family *node_cpu;
	struct metric_family *node_mem;
	struct metric_family *self_lost;
	struct metric_family *self_map_full;
	struct metric_family *self_stack_lost;
	struct metric_family *self_resp_cut;
	struct metric_family *self_overflow;
	struct metric_family *self_events;
	struct metric_family *self_procs;
	struct metric_family *self_proc_dropped;
	struct metric_family *self_cpu;
	struct metric_family *self_rss;
	struct metric_family *build_info;
};

static const char *const L_SERVICE[] = { "service_name", NULL };
static const char *const L_SERVICE_DIR[] = { "service_name", "direction",
					     NULL };
static const char *const L_SERVICE_OUTCOME[] = { "service_name", "outcome",
						 NULL };
static const char *const L_SERVICE_RESULT[] = { "service_name", "result",
						NULL };
static const char *const L_SERVICE_GCTYPE[] = { "service_name", "v8js_gc_type",
						NULL };

static struct metric_family *fam(struct telemetry *t, const char *name,
				 enum metric_kind kind, const char *help,
				 const char *const *labels, int hist)
{
	return metric_family_new(t->reg, name, kind, help, labels,
				 hist ? t->lat_bounds : NULL,
				 hist ? KS_LAT_BUCKETS - 1 : 0);
}

static int register_all(struct telemetry *t)
{
	static const char *const L_MAP[] = { "map", NULL };
	static const char *const L_TYPE[] = { "type", NULL };
	static const char *const L_VERSION[] = { "version", NULL };
	struct metric_family **all[] = {
		&t->tcp_opened, &t->tcp_closed, &t->tcp_failed,
		&t->tcp_connect_dur, &t->tcp_sent, &t->tcp_received,
		&t->tcp_rtt, &t->tcp_retrans, &t->tcp_conn_dur,
		&t->cpu_time, &t->runq, &t->rss, &t->nprocs,
		&t->pg_tx, &t->pg_buf, &t->pg_deadlocks,
		&t->loop_util, &t->loop_busy, &t->gc,
		&t->node_cpu, &t->node_mem, &t->self_lost, &t->self_map_full,
		&t->self_overflow, &t->self_events, &t->self_procs,
		&t->self_stack_lost, &t->self_resp_cut,
		&t->self_proc_dropped, &t->self_cpu, &t->self_rss,
		&t->build_info,
	};
	size_t i;

	t->tcp_opened = fam(t, "katascope_tcp_connections_opened_total",
			    METRIC_COUNTER,
			    "TCP connections established, by direction (active: connect, passive: accept).",
			    L_SERVICE_DIR, 0);
	t->tcp_closed = fam(t, "katascope_tcp_connections_closed_total",
			    METRIC_COUNTER,
			    "Established TCP connections that reached CLOSE.",
			    L_SERVICE_DIR, 0);
	t->tcp_failed = fam(t, "katascope_tcp_connect_failed_total",
			    METRIC_COUNTER,
			    "connect() attempts that never established (refused, timed out, reset).",
			    L_SERVICE, 0);
	t->tcp_connect_dur = fam(t, "katascope_tcp_connect_duration_seconds",
				 METRIC_HISTOGRAM,
				 "Time from SYN sent to ESTABLISHED for active connections.",
				 L_SERVICE, 1);
	t->tcp_sent = fam(t, "katascope_tcp_sent_bytes_total", METRIC_COUNTER,
			  "Bytes sent and acknowledged on closed TCP connections.",
			  L_SERVICE_DIR, 0);
	t->tcp_received = fam(t, "katascope_tcp_received_bytes_total",
			      METRIC_COUNTER,
			      "Bytes received on closed TCP connections.",
			      L_SERVICE_DIR, 0);
	t->tcp_rtt = fam(t, "katascope_tcp_rtt_seconds", METRIC_HISTOGRAM,
			 "Smoothed round-trip time of TCP connections at close.",
			 L_SERVICE, 1);
	t->tcp_retrans = fam(t, "katascope_tcp_retransmits_total",
			     METRIC_COUNTER, "TCP segments retransmitted.",
			     L_SERVICE, 0);
	t->tcp_conn_dur = fam(t, "katascope_tcp_connection_duration_seconds",
			      METRIC_HISTOGRAM,
			      "Lifetime of TCP connections, from establishment (or accept) to close.",
			      L_SERVICE_DIR, 1);
	t->cpu_time = fam(t, "process_cpu_time_seconds_total", METRIC_COUNTER,
			  "CPU time spent on-CPU by the service's processes (all threads).",
			  L_SERVICE, 0);
	t->loop_util = fam(t, "nodejs_eventloop_utilization_ratio",
			   METRIC_GAUGE,
			   "Share of the last refresh interval the Node.js main event loop spent running callbacks (outside its epoll wait), 0..1.",
			   L_SERVICE, 0);
	t->loop_busy = fam(t, "katascope_nodejs_eventloop_iteration_busy_seconds",
			   METRIC_HISTOGRAM,
			   "Busy time of each event-loop iteration (from the return of the loop's epoll wait to the next wait): what blocks the loop.",
			   L_SERVICE, 1);
	t->gc = fam(t, "v8js_gc_duration_seconds", METRIC_HISTOGRAM,
		    "V8 garbage-collection pauses (Heap::CollectGarbage), by type: minor (scavenge) or major (mark-compact).",
		    L_SERVICE_GCTYPE, 1);
	t->pg_tx = fam(t, "katascope_pg_transactions_total", METRIC_COUNTER,
		       "PostgreSQL transactions ended in the server, by outcome (commit, abort) (USDT).",
		       L_SERVICE_OUTCOME, 0);
	t->pg_buf = fam(t, "katascope_pg_buffer_reads_total", METRIC_COUNTER,
			"PostgreSQL shared-buffer reads by result: hit (found in shared buffers) or miss (read from the OS) (USDT buffer__read__done).",
			L_SERVICE_RESULT, 0);
	t->pg_deadlocks = fam(t, "katascope_pg_deadlocks_total",
			      METRIC_COUNTER,
			      "Deadlocks PostgreSQL detected (USDT deadlock__found).",
			      L_SERVICE, 0);
	t->runq = fam(t, "katascope_runqueue_latency_seconds",
		      METRIC_HISTOGRAM,
		      "Time threads of the service spent runnable but waiting for a CPU.",
		      L_SERVICE, 1);
	t->rss = fam(t, "process_memory_usage_bytes", METRIC_GAUGE,
		     "Resident set size summed over the service's processes.",
		     L_SERVICE, 0);
	t->nprocs = fam(t, "katascope_service_processes", METRIC_GAUGE,
			"Processes currently attributed to the service.",
			L_SERVICE, 0);
	t->node_cpu = fam(t, "system_cpu_utilization_ratio", METRIC_GAUGE,
			  "Share of node CPU time not idle over the last refresh interval (0..1).",
			  NULL, 0);
	t->node_mem = fam(t, "system_memory_utilization_ratio", METRIC_GAUGE,
			  "Share of node memory in use: 1 - MemAvailable/MemTotal (0..1).",
			  NULL, 0);
	t->self_lost = fam(t, "katascope_ringbuf_lost_total", METRIC_COUNTER,
			   "Kernel records lost because the ring buffer was full.",
			   NULL, 0);
	t->self_map_full = fam(t, "katascope_map_full_dropped_total",
			       METRIC_COUNTER,
			       "Updates dropped because a bounded BPF map was full.",
			       L_MAP, 0);
	t->self_stack_lost = fam(t, "katascope_profile_stacks_lost_total",
				 METRIC_COUNTER,
				 "Profile samples whose stack could not be stored (stack map hash collision or full).",
				 NULL, 0);
	t->self_resp_cut = fam(t, "katascope_http_responses_cut_total",
			       METRIC_COUNTER,
			       "HTTP responses (server or client side) that went on after a pause of more than a second had ended their exchange: their duration ends at the pause.",
			       NULL, 0);
	t->self_overflow = fam(t, "katascope_metric_overflow_total",
			       METRIC_COUNTER,
			       "New label sets refused because a metric reached --max-series (counted in its otel_metric_overflow series).",
			       NULL, 0);
	t->self_events = fam(t, "katascope_events_total", METRIC_COUNTER,
			     "Kernel records received, by type.", L_TYPE, 0);
	t->self_procs = fam(t, "katascope_processes_tracked", METRIC_GAUGE,
			    "Processes in the agent's process table.", NULL, 0);
	t->self_proc_dropped = fam(t, "katascope_processes_dropped_total",
				   METRIC_COUNTER,
				   "Processes not tracked because the process table was full.",
				   NULL, 0);
	t->self_cpu = fam(t, "katascope_agent_cpu_seconds_total",
			  METRIC_COUNTER,
			  "CPU time (user+system) used by the agent itself.",
			  NULL, 0);
	t->self_rss = fam(t, "katascope_agent_memory_rss_bytes", METRIC_GAUGE,
			  "Resident set size of the agent itself.", NULL, 0);
	t->build_info = fam(t, "katascope_build_info", METRIC_GAUGE,
			    "Always 1; the version label names the build.",
			    L_VERSION, 0);
	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (!*all[i])
			return -1;
	return 0;
}

struct telemetry *telemetry_new(struct metric_registry *r,
				const char *proc_root)
{
	static const uint64_t bounds_ns[KS_LAT_BUCKETS - 1] = KS_LAT_BOUNDS_NS;
	struct telemetry *t = calloc(1, sizeof(*t));
	const char *v[] = { KATASCOPE_VERSION };
	int i;

	if (!t)
		return NULL;
	t->reg = r;
	t->proc_root = proc_root;
	for (i = 0; i < KS_LAT_BUCKETS - 1; i++)
		t->lat_bounds[i] = (double)bounds_ns[i] * NS;
	if (register_all(t)) {
		free(t);
		return NULL;
	}
	metric_set(t->build_info, v, 1);
	return t;
}

void telemetry_free(struct telemetry *t)
{
	free(t);
}

static uint64_t d(uint64_t now, uint64_t last)
{
	/* A pid's kernel slot restarts at zero when it was deleted. */
	return now >= last ? now - last : now;
}

static void fold_hist(struct metric_family *f, const char *const *lv,
		      const __u64 *now, const __u64 *last,
		      uint64_t sum_now, uint64_t sum_last)
{
	uint64_t delta[KS_LAT_BUCKETS];
	uint64_t any = 0;
	int i;

	for (i = 0; i < KS_LAT_BUCKETS; i++) {
		delta[i] = d(now[i], last[i]);
		any |= delta[i];
	}
	if (any)
		metric_hist_add_buckets(metric_series_get(f, lv), delta,
					(double)d(sum_now, sum_last) * NS);
}

/* Event-loop time of this refresh, summed per service for the gauge. */
static void loop_account(struct telemetry *t, const char *service,
			 uint64_t busy, uint64_t idle)
{
	unsigned i;

	if (!busy && !idle)
		return;
	for (i = 0; i < t->nloops; i++)
		if (!strcmp(t->loops[i].service, service))
			break;
	if (i == t->nloops) {
		if (t->nloops == sizeof(t->loops) / sizeof(t->loops[0]))
			return;
		snprintf(t->loops[i].service, sizeof(t->loops[i].service),
			 "%s", service);
		t->loops[i].busy = t->loops[i].idle = 0;
		t->nloops++;
	}
	t->loops[i].busy += busy;
	t->loops[i].idle += idle;
}

static void refresh_loops(struct telemetry *t)
{
	unsigned i;

	/* A loop with no wait or return this interval keeps its last value. */
	for (i = 0; i < t->nloops; i++) {
		const char *lv[] = { t->loops[i].service };
		uint64_t all = t->loops[i].busy + t->loops[i].idle;

		if (all)
			metric_set(t->loop_util, lv,
				   (double)t->loops[i].busy / (double)all);
	}
	t->nloops = 0;
}

void telemetry_fold_pid(struct telemetry *t, struct proc_entry *e,
			const struct ks_pid_stats *now)
{
	const struct ks_pid_stats *l = &e->last;
	const char *svc[] = { e->service };
	const char *act[] = { e->service, "active" };
	const char *pas[] = { e->service, "passive" };
	uint64_t v;

	if (!e->monitored) {
		e->last = *now;
		return;
	}
	metric_registry_lock(t->reg);
	if ((v = d(now->tcp_active_opens, l->tcp_active_opens)))
		metric_add(t->tcp_opened, act, (double)v);
	if ((v = d(now->tcp_passive_opens, l->tcp_passive_opens)))
		metric_add(t->tcp_opened, pas, (double)v);
	if ((v = d(now->tcp_failed_connects, l->tcp_failed_connects)))
		metric_add(t->tcp_failed, svc, (double)v);
	if ((v = d(now->tcp_retransmits, l->tcp_retransmits)))
		metric_add(t->tcp_retrans, svc, (double)v);
	if ((v = d(now->sched.oncpu_ns, l->sched.oncpu_ns)))
		metric_add(t->cpu_time, svc, (double)v * NS);
	if ((v = d(now->pg_commits, l->pg_commits))) {
		const char *lv[] = { e->service, "commit" };

		metric_add(t->pg_tx, lv, (double)v);
	}
	if ((v = d(now->pg_aborts, l->pg_aborts))) {
		const char *lv[] = { e->service, "abort" };

		metric_add(t->pg_tx, lv, (double)v);
	}
	if ((v = d(now->pg_buf_hits, l->pg_buf_hits))) {
		const char *lv[] = { e->service, "hit" };

		metric_add(t->pg_buf, lv, (double)v);
	}
	if ((v = d(now->pg_buf_reads, l->pg_buf_reads))) {
		const char *lv[] = { e->service, "miss" };

		metric_add(t->pg_buf, lv, (double)v);
	}
	if ((v = d(now->pg_deadlocks, l->pg_deadlocks)))
		metric_add(t->pg_deadlocks, svc, (double)v);
	{
		const char *minor[] = { e->service, "minor" };
		const char *major[] = { e->service, "major" };

		fold_hist(t->loop_busy, svc, now->loop_busy, l->loop_busy,
			  now->loop_busy_sum_ns, l->loop_busy_sum_ns);
		fold_hist(t->gc, minor, now->gc_minor, l->gc_minor,
			  now->gc_minor_sum_ns, l->gc_minor_sum_ns);
		fold_hist(t->gc, major, now->gc_major, l->gc_major,
			  now->gc_major_sum_ns, l->gc_major_sum_ns);
	}
	loop_account(t, e->service, d(now->loop_busy_ns, l->loop_busy_ns),
		     d(now->loop_idle_ns, l->loop_idle_ns));
	fold_hist(t->tcp_connect_dur, svc, now->connect_lat, l->connect_lat,
		  now->connect_lat_sum_ns, l->connect_lat_sum_ns);
	fold_hist(t->runq, svc, now->sched.runq_lat, l->sched.runq_lat,
		  now->sched.runq_lat_sum_ns, l->sched.runq_lat_sum_ns);
	metric_registry_unlock(t->reg);
	e->last = *now;
}

void telemetry_tcp_close(struct telemetry *t, const struct proc_entry *e,
			 const struct ks_tcp_close_event *ev)
{
	const char *svc[] = { e->service };
	const char *sd[] = { e->service,
			     ev->dir == KS_TCP_ACTIVE ? "active" : "passive" };

	if (!e->monitored)
		return;
	metric_registry_lock(t->reg);
	metric_add(t->tcp_closed, sd, 1);
	metric_add(t->tcp_sent, sd, (double)ev->bytes_sent);
	metric_add(t->tcp_received, sd, (double)ev->bytes_received);
	metric_observe(t->tcp_rtt, svc, ev->srtt_us * 1e-6);
	metric_observe(t->tcp_conn_dur, sd, (double)ev->duration_ns * NS);
	metric_registry_unlock(t->reg);
}

/* ---- gauges -------------------------------------------------------------- */

static int read_file(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return -1;
	n = fread(buf, 1, len - 1, f);
	fclose(f);
	buf[n] = '\0';
	return (int)n;
}

double cpu_utilization(const char *prev, const char *cur)
{
	unsigned long long a[10] = { 0 }, b[10] = { 0 }, ta = 0, tb = 0, ia,
			   ib;
	int i;

	/* The aggregate line only ("cpu0" would parse as cpu with a field
	 * taken from the name). */
	if (strncmp(prev, "cpu ", 4) || strncmp(cur, "cpu ", 4))
		return -1;
	if (sscanf(prev, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &a[0],
		   &a[1], &a[2], &a[3], &a[4], &a[5], &a[6], &a[7]) < 4 ||
	    sscanf(cur, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &b[0],
		   &b[1], &b[2], &b[3], &b[4], &b[5], &b[6], &b[7]) < 4)
		return -1;
	for (i = 0; i < 8; i++) {
		ta += a[i];
		tb += b[i];
	}
	ia = a[3] + a[4]; /* idle + iowait */
	ib = b[3] + b[4];
	/* iowait can go backwards (tickless kernels): ib - ia would wrap
	 * and the ratio be hugely negative. */
	if (tb <= ta || ib < ia || ib - ia > tb - ta)
		return -1;
	return 1.0 - (double)(ib - ia) / (double)(tb - ta);
}

static long long meminfo_kb(const char *text, const char *key)
{
	const char *p = strstr(text, key);
	long long v;

	if (!p || sscanf(p + strlen(key), " %lld", &v) != 1)
		return -1;
	return v;
}

double mem_utilization(const char *meminfo)
{
	long long total = meminfo_kb(meminfo, "MemTotal:");
	long long avail = meminfo_kb(meminfo, "MemAvailable:");

	if (total <= 0 || avail < 0)
		return -1;
	return 1.0 - (double)avail / (double)total;
}

struct svc_sum {
	char name[PI_NAME_LEN];
	double rss;
	unsigned n;
};

struct rss_ctx {
	struct telemetry *t;
	struct svc_sum *sums;
	size_t n, cap;
};

static void rss_one(struct proc_entry *e, void *arg)
{
	struct rss_ctx *c = arg;
	long long rss;
	size_t i;

	if (!e->monitored)
		return;
	for (i = 0; i < c->n; i++)
		if (strcmp(c->sums[i].name, e->service) == 0)
			break;
	if (i == c->n) {
		if (c->n == c->cap) {
			size_t cap = c->cap ? c->cap * 2 : 64;
			struct svc_sum *ns = realloc(c->sums, cap * sizeof(*ns));

			if (!ns)
				return;
			c->sums = ns;
			c->cap = cap;
		}
		memset(&c->sums[i], 0, sizeof(c->sums[i]));
		memcpy(c->sums[i].name, e->service, sizeof(e->service));
		c->n++;
	}
	c->sums[i].n++;
	rss = proc_rss_bytes(c->t->proc_root, e->pid);
	if (rss > 0)
		c->sums[i].rss += (double)rss;
}

static void refresh_services(struct telemetry *t, struct proctab *pt)
{
	struct rss_ctx c = { .t = t };
	size_t i;

	proctab_foreach(pt, rss_one, &c);
	metric_registry_lock(t->reg);
	metric_family_reset(t->rss);
	metric_family_reset(t->nprocs);
	for (i = 0; i < c.n; i++) {
		const char *lv[] = { c.sums[i].name };

		metric_set(t->rss, lv, c.sums[i].rss);
		metric_set(t->nprocs, lv, c.sums[i].n);
	}
	metric_registry_unlock(t->reg);
	free(c.sums);
}

static void refresh_node(struct telemetry *t)
{
	char path[256], buf[4096], *nl;
	size_t n;
	double u;

	snprintf(path, sizeof(path), "%s/stat", t->proc_root);
	if (read_file(path, buf, sizeof(buf)) > 0) {
		nl = strchr(buf, '\n');
		if (nl)
			*nl = '\0';
		if (t->prev_cpu_line[0]) {
			u = cpu_utilization(t->prev_cpu_line, buf);
			if (u >= 0)
				metric_set(t->node_cpu, NULL, u);
		}
		n = strlen(buf);
		if (n >= sizeof(t->prev_cpu_line))
			n = sizeof(t->prev_cpu_line) - 1;
		memcpy(t->prev_cpu_line, buf, n);
		t->prev_cpu_line[n] = '\0';
	}
	snprintf(path, sizeof(path), "%s/meminfo", t->proc_root);
	if (read_file(path, buf, sizeof(buf)) > 0) {
		u = mem_utilization(buf);
		if (u >= 0)
			metric_set(t->node_mem, NULL, u);
	}
}

static void set_counter(struct metric_family *f, const char *const *lv,
			double total)
{
	struct metric_series *s = metric_series_get(f, lv);
	double cur = metric_series_value(s);

	if (total > cur)
		metric_counter_add(s, total - cur);
}

static void refresh_self(struct telemetry *t, const struct self_stats *st)
{
	static const char *const types[] = { NULL,	  "exec",
					     "exit",	  "fork",
					     "tcp_close", "l7",
					     "postgres" };
	const char *m_pid[] = { "pid_stats" }, *m_socks[] = { "socks" },
		   *m_conns[] = { "conns" }, *m_samples[] = { "profile_samples" },
		   *m_heads[] = { "request_heads" },
		   *m_http_cli[] = { "http_client_counts" },
		   *m_http_srv[] = { "http_server_counts" };
	struct rusage ru;
	long long rss;
	int i;

	set_counter(t->self_lost, NULL, (double)st->drops[KS_DROP_RINGBUF]);
	set_counter(t->self_map_full, m_pid,
		    (double)st->drops[KS_DROP_PIDSTATS_FULL]);
	set_counter(t->self_map_full, m_socks,
		    (double)st->drops[KS_DROP_SOCKS_FULL]);
	set_counter(t->self_map_full, m_conns,
		    (double)st->drops[KS_DROP_L7_CONNS_FULL]);
	set_counter(t->self_map_full, m_samples,
		    (double)st->drops[KS_DROP_SAMPLES_FULL]);
	set_counter(t->self_map_full, m_heads,
		    (double)st->drops[KS_DROP_L7_HEAD_REUSED]);
	set_counter(t->self_map_full, m_http_cli,
		    (double)st->drops[KS_DROP_HTTP_CLI_FULL]);
	set_counter(t->self_map_full, m_http_srv,
		    (double)st->drops[KS_DROP_HTTP_SRV_FULL]);
	set_counter(t->self_resp_cut, NULL,
		    (double)st->drops[KS_DROP_L7_RESP_CUT]);
	set_counter(t->self_stack_lost, NULL,
		    (double)st->drops[KS_DROP_STACK_COLLISION]);
	set_counter(t->self_overflow, NULL,
		    (double)metric_registry_overflows(t->reg));
	for (i = KS_EV_EXEC; i <= KS_EV_PG; i++) {
		const char *lv[] = { types[i] };

		set_counter(t->self_events, lv, (double)st->events[i]);
	}
	metric_set(t->self_procs, NULL, st->processes);
	set_counter(t->self_proc_dropped, NULL, (double)st->proctab_dropped);
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		set_counter(t->self_cpu, NULL,
			    (double)ru.ru_utime.tv_sec +
				    ru.ru_utime.tv_usec * 1e-6 +
				    (double)ru.ru_stime.tv_sec +
				    ru.ru_stime.tv_usec * 1e-6);
	rss = proc_rss_bytes(t->proc_root, getpid());
	if (rss > 0)
		metric_set(t->self_rss, NULL, (double)rss);
}

void telemetry_refresh(struct telemetry *t, struct proctab *pt,
		       const struct self_stats *self)
{
	refresh_services(t, pt);
	metric_registry_lock(t->reg);
	refresh_loops(t);
	refresh_node(t);
	refresh_self(t, self);
	metric_registry_unlock(t->reg);
}
