/*
 * pgserver.h - PostgreSQL server-side metrics from its USDT records:
 * statement durations (with parse/plan/execute phases), lock waits and
 * checkpoints.
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
/* What made a checkpoint, from checkpoint__start's flags: shutdown,
 * end_of_recovery, wal (max_wal_size), time (checkpoint_timeout) or
 * requested (CHECKPOINT, a base backup, CREATE DATABASE...). */
const char *pg_checkpoint_trigger(uint32_t flags);
void pgserver_on_event(struct pgserver *s, const struct proc_entry *e,
		       const struct ks_pg_event *ev, size_t len);

#endif
