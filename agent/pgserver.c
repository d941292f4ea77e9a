/*
 * pgserver.c - PostgreSQL server-side statement and lock-wait metrics;
 * see pgserver.h. Statement texts are literal-stripped (sqlnorm) before
 * anything keeps them, like the client-side statements.
 */
#include "pgserver.h"
#include "sqlnorm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const double bounds[] = { 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05,
				 0.1,	 0.3,	 0.5,	1,     5,    10 };

struct pgserver {
	struct metric_registry *reg;
	struct queries *queries;
	struct metric_family *stmt;
	struct metric_family *phase;
	struct metric_family *lock;
	struct metric_family *checkpoint;
};

/* Checkpoints are spread over minutes (checkpoint_completion_target). */
static const double ckpt_bounds[] = { 0.01, 0.05, 0.1, 0.5, 1,	 5,
				      10,   30,	  60,  120, 300, 600 };

/* PostgreSQL's CHECKPOINT_* request flags (access/xlog.h, 9.6 to 17). */
#define CKPT_IS_SHUTDOWN 0x0001
#define CKPT_END_OF_RECOVERY 0x0002
#define CKPT_CAUSE_XLOG 0x0080
#define CKPT_CAUSE_TIME 0x0100

const char *pg_checkpoint_trigger(uint32_t flags)
{
	if (flags & CKPT_IS_SHUTDOWN)
		return "shutdown";
	if (flags & CKPT_END_OF_RECOVERY)
		return "end_of_recovery";
	if (flags & CKPT_CAUSE_XLOG)
		return "wal";
	if (flags & CKPT_CAUSE_TIME)
		return "time";
	return "requested";
}

struct pgserver *pgserver_new(struct metric_registry *reg, struct queries *q)
{
	static const char *const l_stmt[] = { "service_name",
					      "db_operation_name", NULL };
	static const char *const l_phase[] = { "service_name", "phase", NULL };
	static const char *const l_svc[] = { "service_name", NULL };
	static const char *const l_ckpt[] = { "service_name", "trigger",
					      NULL };
	struct pgserver *s = calloc(1, sizeof(*s));
	unsigned nb = sizeof(bounds) / sizeof(bounds[0]);

	if (!s)
		return NULL;
	s->reg = reg;
	s->queries = q;
	s->stmt = metric_family_new(
		reg, "katascope_pg_statement_duration_seconds",
		METRIC_HISTOGRAM,
		"PostgreSQL statements measured in the server (USDT query__start to query__done).",
		l_stmt, bounds, nb);
	s->phase = metric_family_new(
		reg, "katascope_pg_statement_phase_duration_seconds",
		METRIC_HISTOGRAM,
		"Time PostgreSQL statements spent parsing, planning and executing (USDT), per statement.",
		l_phase, bounds, nb);
	s->lock = metric_family_new(
		reg, "katascope_pg_lock_wait_duration_seconds",
		METRIC_HISTOGRAM,
		"Heavyweight lock waits in PostgreSQL backends (USDT lock__wait__start to lock__wait__done).",
		l_svc, bounds, nb);
	s->checkpoint = metric_family_new(
		reg, "katascope_pg_checkpoint_duration_seconds",
		METRIC_HISTOGRAM,
		"PostgreSQL checkpoints, checkpoint__start to checkpoint__done in the process that ran them, by what triggered them.",
		l_ckpt, ckpt_bounds,
		sizeof(ckpt_bounds) / sizeof(ckpt_bounds[0]));
	if (!s->stmt || !s->phase || !s->lock || !s->checkpoint) {
		free(s);
		return NULL;
	}
	return s;
}

void pgserver_free(struct pgserver *s)
{
	free(s);
}

static void statement(struct pgserver *s, const struct proc_entry *e,
		      const struct ks_pg_event *ev)
{
	char text[256], op[SQL_OP_MAX];
	size_t len = ev->len > KS_L7_DATA ? KS_L7_DATA : ev->len;
	bool cut = len >= KS_L7_DATA - 1;
	struct query_sample qs;
	struct timespec ts;
	double secs = (double)ev->duration_ns * 1e-9;

	sql_normalize((const char *)ev->data, len, text, sizeof(text), NULL);
	if (!sql_operation(text, strlen(text), cut, op))
		snprintf(op, sizeof(op), "_OTHER");
	{
		const char *lv[] = { e->service, op };

		metric_observe(s->stmt, lv, secs);
	}
	{
		const char *pv[] = { e->service, "parse" };
		const char *lv[] = { e->service, "plan" };
		const char *xv[] = { e->service, "execute" };

		metric_observe(s->phase, pv, (double)ev->parse_ns * 1e-9);
		metric_observe(s->phase, lv, (double)ev->plan_ns * 1e-9);
		metric_observe(s->phase, xv, (double)ev->execute_ns * 1e-9);
	}
	if (!s->queries)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	qs.service = e->service;
	qs.system = "postgresql (server)";
	qs.text = text;
	qs.error = "";
	qs.seconds = secs;
	qs.unix_ns = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	queries_add(s->queries, &qs);
}

void pgserver_on_event(struct pgserver *s, const struct proc_entry *e,
		       const struct ks_pg_event *ev, size_t len)
{
	if (!e->monitored || len < offsetof(struct ks_pg_event, data))
		return;
	metric_registry_lock(s->reg);
	if (ev->kind == KS_PG_STATEMENT && len >= sizeof(*ev)) {
		statement(s, e, ev);
	} else if (ev->kind == KS_PG_LOCK_WAIT) {
		const char *lv[] = { e->service };

		metric_observe(s->lock, lv, (double)ev->duration_ns * 1e-9);
	} else if (ev->kind == KS_PG_CHECKPOINT) {
		const char *lv[] = { e->service,
				     pg_checkpoint_trigger(ev->flags) };

		metric_observe(s->checkpoint, lv,
			       (double)ev->duration_ns * 1e-9);
	}
	metric_registry_unlock(s->reg);
}
