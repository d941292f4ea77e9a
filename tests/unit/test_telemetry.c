/*
 * test_telemetry.c - unit test for kernel counters turned into per-service
 * metrics (agent/telemetry.c).
 *
 * The node ratios are checked on sample /proc/stat lines and /proc/meminfo
 * texts, garbage included. The folding of cumulative per-process kernel
 * counters is checked by reading the registry back: deltas add up per
 * service across processes and folds, a counter that went backwards (the
 * kernel's slot for the pid was deleted and started again) counts afresh,
 * unmonitored processes add nothing. Close records add bytes and closes
 * under their direction. The refresh reads a fake /proc.
 */
#define _GNU_SOURCE /* nftw */
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "telemetry.h"

#define V(...) ((const char *const[]){__VA_ARGS__})
#define NEAR(a, b) (fabs((a) - (b)) < 1e-9)

/* ---- reading the registry back ------------------------------------------ */

struct found {
	const char *name;
	const char *const *lv; /* NULL: the series without labels */
	int n;		       /* series matched */
	double value;
	uint64_t count;
	double sum;
	uint64_t buckets[KS_LAT_BUCKETS + 1];
};

static void find_one(const struct metric_family *f,
		     const struct metric_series *s, void *arg)
{
	struct found *q = arg;
	unsigned i, nl = metric_family_nlabels(f), nb = 0;

	if (strcmp(metric_family_name(f), q->name))
		return;
	for (i = 0; i < nl; i++)
		if (!q->lv || strcmp(metric_series_label_value(s, i), q->lv[i]))
			return;
	q->n++;
	if (metric_family_kind(f) != METRIC_HISTOGRAM) {
		q->value = metric_series_value(s);
		return;
	}
	metric_family_bounds(f, &nb);
	q->count = metric_series_count(s);
	q->sum = metric_series_sum(s);
	for (i = 0; i <= nb && i < KS_LAT_BUCKETS + 1; i++)
		q->buckets[i] = metric_series_buckets(s)[i];
}

static struct found find(struct metric_registry *r, const char *name,
			 const char *const *lv)
{
	struct found q = {.name = name, .lv = lv};

	metric_registry_foreach(r, find_one, &q);
	return q;
}

/* Value of a counter or gauge series; -1 when there is no such series. */
static double val(struct metric_registry *r, const char *name,
		  const char *const *lv)
{
	struct found q = find(r, name, lv);

	return q.n == 1 ? q.value : -1;
}

/* Count series of a family holding a label value (any label). */
struct count_ctx {
	const char *name, *value;
	int n;
};

static void count_one(const struct metric_family *f,
		      const struct metric_series *s, void *arg)
{
	struct count_ctx *c = arg;
	unsigned i;

	if (c->name && strcmp(metric_family_name(f), c->name))
		return;
	for (i = 0; i < metric_family_nlabels(f); i++)
		if (strcmp(metric_series_label_value(s, i), c->value) == 0) {
			c->n++;
			return;
		}
}

static int series_with(struct metric_registry *r, const char *name,
		       const char *value)
{
	struct count_ctx c = {name, value, 0};

	metric_registry_foreach(r, count_one, &c);
	return c.n;
}

static char *render(struct metric_registry *r)
{
	struct strbuf sb = STRBUF_INIT;

	metric_render_prometheus(r, &sb);
	CHECK(!sb.oom);
	return sb_detach(&sb, NULL);
}

#define CHECK_HAS(text, line)                                                  \
	do {                                                                   \
		if ((text) && strstr(text, line "\n")) {                       \
			check_passed++;                                        \
		} else {                                                       \
			check_failed++;                                        \
			fprintf(stderr, "%s:%d: rendered text lacks: %s\n",    \
				__FILE__, __LINE__, line);                     \
		}                                                              \
	} while (0)

/* ---- node ratios --------------------------------------------------------- */

static void test_cpu_utilization(void)
{
	static const struct {
		const char *prev, *cur;
		double want; /* -1: unusable */
	} cases[] = {
	    /* user nice system idle iowait irq softirq steal guest gn */
	    {"cpu  100 0 100 800 0 0 0 0 0 0",
	     "cpu  200 0 100 1500 100 0 0 0 0 0", 1.0 / 9},
	    {"cpu  4705 356 584 3699176 23060 0 277 0 0 0",
	     "cpu  4805 356 684 3699376 23060 0 277 0 0 0", 0.5},
	    /* steal counts as busy; guest is already inside user */
	    {"cpu 0 0 0 0 0 0 0 0 50 50", "cpu 0 0 0 100 0 0 0 100 80 80", 0.5},
	    /* irq and softirq are busy, iowait idle */
	    {"cpu 1 1 1 1 1 1 1 1", "cpu 1 1 1 1 301 51 51 1", 0.25},
	    /* all idle, all busy */
	    {"cpu 0 0 0 10 0 0 0 0", "cpu 0 0 0 20 0 0 0 0", 0},
	    {"cpu 5 0 0 10 0 0 0 0", "cpu 25 0 0 10 0 0 0 0", 1},
	    /* four fields (old kernels) are enough */
	    {"cpu 10 0 10 80", "cpu 20 0 20 160", 0.2},
	    /* no time passed, or the counters went back (reboot) */
	    {"cpu 1 2 3 4 5 6 7 8", "cpu 1 2 3 4 5 6 7 8", -1},
	    {"cpu 100 0 100 800 0 0 0 0", "cpu 10 0 10 80 0 0 0 0", -1},
	    /* idle + iowait went back while the total grew (iowait is
	     * known to decrease on tickless kernels) */
	    {"cpu 100 0 0 800 50 0 0 0", "cpu 300 0 0 790 0 0 0 0", -1},
	    /* garbage */
	    {"", "cpu 1 2 3 4", -1},
	    {"cpu 1 2 3 4", "", -1},
	    {"cpu 1 2 3", "cpu 2 3 4", -1},
	    {"intr 1 2 3 4 5", "intr 2 3 4 5 6", -1},
	    {"cpu0 1 2 3 4 5 6 7", "cpu0 2 3 4 5 6 7 8", -1},
	    {"cpu x y z w", "cpu 1 2 3 4", -1},
	    {"cpu -1 -1 -1 -1", "cpu 1 1 1 1", -1},
	};
	size_t i;
	double u;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		u = cpu_utilization(cases[i].prev, cases[i].cur);
		if (cases[i].want < 0) {
			if (u != -1)
				fprintf(stderr, "case %zu: %g\n", i, u);
			CHECK(u == -1);
		} else {
			if (!NEAR(u, cases[i].want))
				fprintf(stderr, "case %zu: %g want %g\n", i, u,
					cases[i].want);
			CHECK(NEAR(u, cases[i].want));
		}
	}
}

static void test_mem_utilization(void)
{
	static const struct {
		const char *text;
		double want;
	} cases[] = {
	    {"MemTotal:       16000000 kB\n"
	     "MemFree:         1000000 kB\n"
	     "MemAvailable:    4000000 kB\n"
	     "Buffers:          200000 kB\n",
	     0.75},
	    /* order does not matter */
	    {"MemAvailable: 500 kB\nMemTotal: 1000 kB\n", 0.5},
	    {"MemTotal: 1000 kB\nMemAvailable: 1000 kB\n", 0},
	    {"MemTotal: 1000 kB\nMemAvailable: 0 kB\n", 1},
	    /* MemFree is not MemAvailable (kernels before 3.14) */
	    {"MemTotal: 1000 kB\nMemFree: 500 kB\n", -1},
	    {"MemAvailable: 500 kB\n", -1},
	    {"MemTotal: 0 kB\nMemAvailable: 0 kB\n", -1},
	    {"MemTotal: -5 kB\nMemAvailable: 1 kB\n", -1},
	    {"MemTotal: lots\nMemAvailable: 1 kB\n", -1},
	    {"MemTotal: 1000 kB\nMemAvailable: some\n", -1},
	    {"MemTotal:", -1},
	    {"", -1},
	    {"\x01\x02\xff garbage", -1},
	};
	size_t i;
	double u;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		u = mem_utilization(cases[i].text);
		if (cases[i].want < 0) {
			if (u != -1)
				fprintf(stderr, "case %zu: %g\n", i, u);
			CHECK(u == -1);
		} else {
			CHECK(NEAR(u, cases[i].want));
		}
	}
}

/* ---- folding kernel counters --------------------------------------------- */

static void entry(struct proc_entry *e, int pid, const char *service,
		  int monitored)
{
	memset(e, 0, sizeof(*e));
	e->pid = pid;
	snprintf(e->service, sizeof(e->service), "%s", service);
	e->monitored = monitored;
}

#define OPENED "katascope_tcp_connections_opened_total"
#define CPU "process_cpu_time_seconds_total"
#define CONNECT "katascope_tcp_connect_duration_seconds"
#define RUNQ "katascope_runqueue_latency_seconds"

static void test_fold(void)
{
	struct metric_registry *r = metric_registry_new(0);
	struct telemetry *t = telemetry_new(r, "/nonexistent");
	struct ks_pid_stats s = {0};
	struct proc_entry a, b, quiet, off;
	struct found h;
	char *text;

	CHECK(t != NULL);
	if (!t)
		return;
	entry(&a, 100, "orders", 1);
	entry(&b, 101, "orders", 1);
	entry(&quiet, 102, "quiet", 1);
	entry(&off, 103, "unmonitored", 0);

	/* First read of a. */
	s.tcp_active_opens = 3;
	s.tcp_passive_opens = 2;
	s.tcp_failed_connects = 1;
	s.tcp_retransmits = 4;
	s.sched.oncpu_ns = 1500000000;
	s.connect_lat[0] = 2; /* <= 10 us */
	s.connect_lat[5] = 1; /* <= 1 ms */
	s.connect_lat_sum_ns = 2 * 5000 + 800000;
	s.sched.runq_lat[1] = 10;
	s.sched.runq_lat_sum_ns = 300000;
	telemetry_fold_pid(t, &a, &s);
	CHECK(memcmp(&a.last, &s, sizeof(s)) == 0);
	CHECK_INT(val(r, OPENED, V("orders", "active")), 3);
	CHECK_INT(val(r, OPENED, V("orders", "passive")), 2);
	CHECK_INT(val(r, "katascope_tcp_connect_failed_total", V("orders")), 1);
	CHECK_INT(val(r, "katascope_tcp_retransmits_total", V("orders")), 4);
	CHECK(NEAR(val(r, CPU, V("orders")), 1.5));
	h = find(r, CONNECT, V("orders"));
	CHECK_INT(h.n, 1);
	CHECK_INT(h.count, 3);
	CHECK_INT(h.buckets[0], 2);
	CHECK_INT(h.buckets[5], 1);
	CHECK_INT(h.buckets[KS_LAT_BUCKETS - 1], 0);
	CHECK(NEAR(h.sum, 810e-6));
	h = find(r, RUNQ, V("orders"));
	CHECK_INT(h.count, 10);
	CHECK_INT(h.buckets[1], 10);
	text = render(r);
	CHECK_HAS(text, CPU "{service_name=\"orders\"} 1.5");
	CHECK_HAS(text,
		  OPENED "{service_name=\"orders\",direction=\"active\"} 3");
	CHECK_HAS(text,
		  CONNECT "_bucket{service_name=\"orders\",le=\"1e-05\"} 2");
	CHECK_HAS(text,
		  CONNECT "_bucket{service_name=\"orders\",le=\"0.0005\"} 2");
	CHECK_HAS(text,
		  CONNECT "_bucket{service_name=\"orders\",le=\"0.001\"} 3");
	CHECK_HAS(text,
		  CONNECT "_bucket{service_name=\"orders\",le=\"+Inf\"} 3");
	CHECK_HAS(text, CONNECT "_count{service_name=\"orders\"} 3");
	free(text);

	/* Second read of a: only the deltas are added. */
	s.tcp_active_opens = 5;
	s.sched.oncpu_ns = 2000000000;
	s.connect_lat[0] = 3;
	s.connect_lat[15] = 1; /* > 1 s */
	s.connect_lat_sum_ns += 5000 + 2000000000ULL;
	telemetry_fold_pid(t, &a, &s);
	CHECK_INT(val(r, OPENED, V("orders", "active")), 5);
	CHECK_INT(val(r, OPENED, V("orders", "passive")), 2);
	CHECK_INT(val(r, "katascope_tcp_retransmits_total", V("orders")), 4);
	CHECK(NEAR(val(r, CPU, V("orders")), 2.0));
	h = find(r, CONNECT, V("orders"));
	CHECK_INT(h.count, 5);
	CHECK_INT(h.buckets[0], 3);
	CHECK_INT(h.buckets[15], 1);
	CHECK(NEAR(h.sum, 2.000815));
	/* The same read again adds nothing. */
	telemetry_fold_pid(t, &a, &s);
	CHECK_INT(val(r, OPENED, V("orders", "active")), 5);
	CHECK_INT(find(r, CONNECT, V("orders")).count, 5);

	/* Another process of the service adds to the same series. */
	memset(&s, 0, sizeof(s));
	s.tcp_active_opens = 10;
	s.sched.oncpu_ns = 250000000;
	s.connect_lat[2] = 10;
	s.connect_lat_sum_ns = 10 * 70000;
	telemetry_fold_pid(t, &b, &s);
	CHECK_INT(val(r, OPENED, V("orders", "active")), 15);
	CHECK(NEAR(val(r, CPU, V("orders")), 2.25));
	CHECK_INT(find(r, CONNECT, V("orders")).count, 15);

	/* The kernel slot of a restarted from zero: its values count
	 * afresh, not as a (huge) negative delta. */
	memset(&s, 0, sizeof(s));
	s.tcp_active_opens = 1;
	s.tcp_passive_opens = 2; /* equal to before: no change */
	s.sched.oncpu_ns = 100000000;
	s.connect_lat[0] = 1;
	s.connect_lat_sum_ns = 4000;
	telemetry_fold_pid(t, &a, &s);
	CHECK_INT(val(r, OPENED, V("orders", "active")), 16);
	CHECK_INT(val(r, OPENED, V("orders", "passive")), 2);
	CHECK(NEAR(val(r, CPU, V("orders")), 2.35));
	h = find(r, CONNECT, V("orders"));
	CHECK_INT(h.count, 16);
	CHECK_INT(h.buckets[0], 4);
	CHECK(NEAR(h.sum, 2.000815 + 0.0007 + 0.000004));

	/* A process with nothing to report creates no series. */
	memset(&s, 0, sizeof(s));
	telemetry_fold_pid(t, &quiet, &s);
	CHECK_INT(series_with(r, NULL, "quiet"), 0);

	/* Unmonitored: nothing added, but what was read is remembered, so
	 * it is not added later either. */
	s.tcp_active_opens = 100;
	s.sched.oncpu_ns = 5000000000ULL;
	s.connect_lat[0] = 100;
	telemetry_fold_pid(t, &off, &s);
	CHECK_INT(series_with(r, NULL, "unmonitored"), 0);
	CHECK_INT(off.last.tcp_active_opens, 100);
	off.monitored = 1;
	s.tcp_active_opens = 101;
	telemetry_fold_pid(t, &off, &s);
	CHECK_INT(val(r, OPENED, V("unmonitored", "active")), 1);
	CHECK_INT(find(r, CONNECT, V("unmonitored")).n, 0);
	CHECK_INT(val(r, CPU, V("unmonitored")), -1);

	telemetry_free(t);
	metric_registry_free(r);
}

static void test_tcp_close(void)
{
	struct metric_registry *r = metric_registry_new(0);
	struct telemetry *t = telemetry_new(r, "/nonexistent");
	struct ks_tcp_close_event ev;
	struct proc_entry e, off;
	struct found h;

	if (!t)
		return;
	entry(&e, 100, "api", 1);
	entry(&off, 101, "hidden", 0);

	memset(&ev, 0, sizeof(ev));
	ev.hdr.type = KS_EV_TCP_CLOSE;
	ev.hdr.pid = 100;
	ev.dir = KS_TCP_ACTIVE;
	ev.established = 1;
	ev.bytes_sent = 1000;
	ev.bytes_received = 2000;
	ev.srtt_us = 250;
	ev.duration_ns = 3000000000ULL;
	telemetry_tcp_close(t, &e, &ev);
	ev.bytes_sent = 24;
	ev.bytes_received = 0;
	ev.srtt_us = 10;
	ev.duration_ns = 1000000;
	telemetry_tcp_close(t, &e, &ev);
	ev.dir = KS_TCP_PASSIVE;
	ev.bytes_sent = 5;
	ev.bytes_received = 7;
	ev.srtt_us = 2000000; /* 2 s: +Inf */
	ev.duration_ns = 50000000;
	telemetry_tcp_close(t, &e, &ev);
	telemetry_tcp_close(t, &off, &ev);

	CHECK_INT(val(r, "katascope_tcp_connections_closed_total",
		      V("api", "active")),
		  2);
	CHECK_INT(val(r, "katascope_tcp_connections_closed_total",
		      V("api", "passive")),
		  1);
	CHECK_INT(val(r, "katascope_tcp_sent_bytes_total", V("api", "active")),
		  1024);
	CHECK_INT(
	    val(r, "katascope_tcp_received_bytes_total", V("api", "active")),
	    2000);
	CHECK_INT(val(r, "katascope_tcp_sent_bytes_total", V("api", "passive")),
		  5);
	CHECK_INT(
	    val(r, "katascope_tcp_received_bytes_total", V("api", "passive")),
	    7);
	/* Opens come from the kernel counters, not from closes. */
	CHECK_INT(find(r, OPENED, V("api", "active")).n, 0);
	h = find(r, "katascope_tcp_rtt_seconds", V("api"));
	CHECK_INT(h.count, 3);
	CHECK_INT(h.buckets[0], 1); /* 10 us: on the bound, le */
	CHECK_INT(h.buckets[3], 1); /* 250 us: on the bound, le */
	CHECK_INT(h.buckets[KS_LAT_BUCKETS - 1], 1);
	h = find(r, "katascope_tcp_connection_duration_seconds",
		 V("api", "active"));
	CHECK_INT(h.count, 2);
	CHECK(NEAR(h.sum, 3.001));
	CHECK_INT(h.buckets[5], 1);		     /* 1 ms */
	CHECK_INT(h.buckets[KS_LAT_BUCKETS - 1], 1); /* 3 s */
	h = find(r, "katascope_tcp_connection_duration_seconds",
		 V("api", "passive"));
	CHECK_INT(h.count, 1);
	CHECK_INT(h.buckets[10], 1); /* 50 ms */
	CHECK_INT(series_with(r, NULL, "hidden"), 0);
	telemetry_free(t);
	metric_registry_free(r);
}

/* ---- refresh on a fake /proc ----------------------------------------------
 */

static char root[64];

static void put(const char *rel, const char *data)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	f = fopen(path, "w");
	CHECK(f != NULL);
	if (!f)
		return;
	fputs(data, f);
	fclose(f);
}

static void mkd(const char *rel)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	CHECK_INT(mkdir(path, 0755), 0);
}

static int rm_entry(const char *path, const struct stat *st, int type,
		    struct FTW *ftw)
{
	return remove(path);
}

static void test_refresh(void)
{
	struct metric_registry *r = metric_registry_new(0);
	struct self_stats self = {0};
	struct telemetry *t;
	struct proctab *pt;
	struct proc_entry *e;
	long page = sysconf(_SC_PAGESIZE);

	snprintf(root, sizeof(root), "/tmp/ks_telemetry.XXXXXX");
	CHECK(mkdtemp(root) != NULL);
	put("stat", "cpu  100 0 100 800 0 0 0 0 0 0\n"
		    "cpu0 100 0 100 800 0 0 0 0 0 0\nintr 1\n");
	put("meminfo", "MemTotal: 1000 kB\nMemAvailable: 250 kB\n");
	mkd("10");
	put("10/statm", "300 100 10 1 0 50 0\n");
	mkd("11");
	put("11/statm", "300 50 10 1 0 50 0\n");
	t = telemetry_new(r, root);
	pt = proctab_new(root, 0, NULL);
	CHECK(t && pt);
	if (!t || !pt)
		goto out;
	/* Three processes (no stat files: named by comm), one service gone
	 * from /proc, one unmonitored. */
	e = proctab_on_fork(pt, 10, 1, "web");
	e = proctab_on_fork(pt, 11, 1, "web");
	e = proctab_on_fork(pt, 12, 1, "web");
	e = proctab_on_fork(pt, 13, 1, "batch");
	e = proctab_on_fork(pt, 14, 1, "off");
	e->monitored = 0;
	self.drops[KS_DROP_RINGBUF] = 7;
	self.drops[KS_DROP_SOCKS_FULL] = 2;
	self.events[KS_EV_EXEC] = 40;
	self.events[KS_EV_L7] = 9;
	self.processes = 5;
	self.proctab_dropped = 3;
	telemetry_refresh(t, pt, &self);
	CHECK_INT(val(r, "process_memory_usage_bytes", V("web")), 150 * page);
	CHECK_INT(val(r, "katascope_service_processes", V("web")), 3);
	CHECK_INT(val(r, "process_memory_usage_bytes", V("batch")), 0);
	CHECK_INT(val(r, "katascope_service_processes", V("batch")), 1);
	CHECK_INT(series_with(r, NULL, "off"), 0);
	/* One /proc/stat read is not a rate yet. */
	CHECK_INT(find(r, "system_cpu_utilization_ratio", NULL).n, 0);
	CHECK(NEAR(val(r, "system_memory_utilization_ratio", NULL), 0.75));
	CHECK_INT(val(r, "katascope_ringbuf_lost_total", NULL), 7);
	CHECK_INT(val(r, "katascope_map_full_dropped_total", V("socks")), 2);
	CHECK_INT(val(r, "katascope_map_full_dropped_total", V("pid_stats")),
		  0);
	CHECK_INT(val(r, "katascope_events_total", V("exec")), 40);
	CHECK_INT(val(r, "katascope_events_total", V("l7")), 9);
	CHECK_INT(val(r, "katascope_processes_tracked", NULL), 5);
	CHECK_INT(val(r, "katascope_processes_dropped_total", NULL), 3);
	CHECK_INT(val(r, "katascope_build_info", V(KATASCOPE_VERSION)), 1);

	/* Second refresh: a CPU rate, gauges recomputed, counters carried. */
	put("stat", "cpu  200 0 100 1500 100 0 0 0 0 0\n");
	put("meminfo", "MemTotal: 1000 kB\nMemAvailable: 900 kB\n");
	proctab_release(proctab_remove(pt, 13));
	self.events[KS_EV_EXEC] = 45;
	self.drops[KS_DROP_RINGBUF] = 7;
	telemetry_refresh(t, pt, &self);
	CHECK(NEAR(val(r, "system_cpu_utilization_ratio", NULL), 1.0 / 9));
	CHECK(NEAR(val(r, "system_memory_utilization_ratio", NULL), 0.1));
	CHECK_INT(series_with(r, "katascope_service_processes", "batch"), 0);
	CHECK_INT(series_with(r, "process_memory_usage_bytes", "batch"), 0);
	CHECK_INT(val(r, "katascope_events_total", V("exec")), 45);
	CHECK_INT(val(r, "katascope_ringbuf_lost_total", NULL), 7);
	/* A garbage /proc/stat keeps the last good ratio. */
	put("stat", "garbage\n");
	put("meminfo", "nothing useful\n");
	telemetry_refresh(t, pt, &self);
	CHECK(NEAR(val(r, "system_cpu_utilization_ratio", NULL), 1.0 / 9));
	CHECK(NEAR(val(r, "system_memory_utilization_ratio", NULL), 0.1));
out:
	proctab_free(pt);
	telemetry_free(t);
	metric_registry_free(r);
	nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
	test_cpu_utilization();
	test_mem_utilization();
	test_fold();
	test_tcp_close();
	test_refresh();
	return check_summary();
}
