/*
 * pgserver.h - PostgreSQL server-side metrics from its USDT records:
 * statement durations (with parse/plan/execute phases) and lock waits.
 * Pure: records in, metric observations out.
 */
#ifndef KS_PGSERVER_H
#define KS_PGSERVER_H

#include "katascope.h"
#include "metrics.h"
#include "proctab.h"
#include "queries.h"

struct pgserver;

struct pgserver *pgserver_new(struct metric_registry *reg, struct queries *q);
void pgserver_free(struct pgserver *s);
void pgserver_on_event(struct pgserver *s, const struct proc_entry *e,
		       const struct ks_pg_event *ev, size_t len);

#endif
