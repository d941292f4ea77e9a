/*
 * pgserver.h - PostgreSQL server-side metrics from its USDT records:
 * statement durations (with parse/plan/execute phases), lock waits and
 * checkpoints, statements by database. Pure but for one fallback: a
 * backend's title read from /proc when no record brought it.
 */
#ifndef KS_PGSERVER_H
#define KS_PGSERVER_H

#include "katascope.h"
#include "metrics.h"
#include "proctab.h"
#include "queries.h"

struct pgserver;

#define PG_DB_LEN 64 /* NAMEDATALEN */

/* proc_root: where a backend's title is read when no record brought it. */
struct pgserver *pgserver_new(struct metric_registry *reg, struct queries *q,
			      const char *proc_root);
void pgserver_free(struct pgserver *s);
/* The process is gone: forget its database. */
void pgserver_forget(struct pgserver *s, int pid);
/*
 * The database a backend serves, from its process title (e.g. "postgres:
 * 15/main: alice shop 10.0.0.7(51234) idle"): 0 and db filled, or -1 and
 * db "" when the title does not say (not a client backend, cut, or names
 * with spaces that make the split ambiguous).
 */
int pg_title_database(const char *title, size_t len, char *db, size_t dblen);
/* What made a checkpoint, from checkpoint__start's flags: shutdown,
 * end_of_recovery, wal (max_wal_size), time (checkpoint_timeout) or
 * requested (CHECKPOINT, a base backup, CREATE DATABASE...). */
const char *pg_checkpoint_trigger(uint32_t flags);
void pgserver_on_event(struct pgserver *s, const struct proc_entry *e,
		       const struct ks_pg_event *ev, size_t len);

#endif
