/*
 * telemetry.h - kernel counters and records turned into per-service metrics.
 *
 * Owns the metric families of the chassis (TCP, CPU, memory, node and
 * self-metrics). The kernel keeps cumulative per-process counters; this
 * file folds the difference since the last read into the process's
 * service, so a service's counters are monotonic across its processes
 * coming and going. No BPF calls here: main.c reads the maps and hands
 * the values in, which keeps this testable.
 */
#ifndef KS_TELEMETRY_H
#define KS_TELEMETRY_H

#include <stdint.h>

#include "katascope.h"
#include "metrics.h"
#include "proctab.h"

struct telemetry;

struct self_stats {
	uint64_t drops[KS_DROP_MAX];
	uint64_t events[KS_EV_PG + 1];
	uint64_t proctab_dropped;
	unsigned processes;
};

struct telemetry *telemetry_new(struct metric_registry *r,
				const char *proc_root);
void telemetry_free(struct telemetry *t);
/* Fold a process's cumulative kernel counters (delta against e->last). */
void telemetry_fold_pid(struct telemetry *t, struct proc_entry *e,
			const struct ks_pid_stats *now);
void telemetry_tcp_close(struct telemetry *t, const struct proc_entry *e,
			 const struct ks_tcp_close_event *ev);
/* Recompute gauges: per-service RSS and process counts, node CPU and
 * memory utilization, the agent's own CPU, RSS and drop counters. */
void telemetry_refresh(struct telemetry *t, struct proctab *pt,
		       const struct self_stats *self);

/* Node CPU utilization from two /proc/stat "cpu" lines; pure. */
double cpu_utilization(const char *prev_line, const char *cur_line);
/* 1 - MemAvailable/MemTotal from /proc/meminfo text; -1 if unparsable. */
double mem_utilization(const char *meminfo);

#endif
