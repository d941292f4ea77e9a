/*
 * test_pgserver.c - PostgreSQL server-side records to metrics
 * (agent/pgserver.c): checkpoint triggers from the flags, checkpoint
 * records observed in the histogram by trigger.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "pgserver.h"

/* PostgreSQL's flags as sent by checkpoint__start (access/xlog.h). */
enum {
	SHUTDOWN = 0x1,
	END_OF_RECOVERY = 0x2,
	IMMEDIATE = 0x4,
	FORCE = 0x8,
	WAIT = 0x20,
	REQUESTED = 0x40,
	CAUSE_XLOG = 0x80,
	CAUSE_TIME = 0x100,
};

static void test_triggers(void)
{
	/* The CHECKPOINT command; a base backup without fast. */
	CHECK_STR(pg_checkpoint_trigger(IMMEDIATE | FORCE | WAIT | REQUESTED),
		  "requested");
	CHECK_STR(pg_checkpoint_trigger(FORCE | WAIT | REQUESTED),
		  "requested");
	CHECK_STR(pg_checkpoint_trigger(SHUTDOWN | IMMEDIATE), "shutdown");
	CHECK_STR(pg_checkpoint_trigger(END_OF_RECOVERY | IMMEDIATE | WAIT),
		  "end_of_recovery");
	/* max_wal_size: RequestCheckpoint(CAUSE_XLOG) also sets REQUESTED. */
	CHECK_STR(pg_checkpoint_trigger(CAUSE_XLOG | REQUESTED), "wal");
	CHECK_STR(pg_checkpoint_trigger(CAUSE_TIME), "time");
	CHECK_STR(pg_checkpoint_trigger(0), "requested");
}

static const struct metric_series *find(struct metric_registry *reg,
					 const char *family, const char *label,
					 const char *value);

struct find_ctx {
	const char *family, *label, *value;
	const struct metric_series *found;
};

static void find_one(const struct metric_family *f,
		     const struct metric_series *s, void *arg)
{
	struct find_ctx *c = arg;
	unsigned i;

	if (strcmp(metric_family_name(f), c->family))
		return;
	for (i = 0; i < metric_family_nlabels(f); i++)
		if (!strcmp(metric_family_label_name(f, i), c->label) &&
		    !strcmp(metric_series_label_value(s, i), c->value))
			c->found = s;
}

static const struct metric_series *find(struct metric_registry *reg,
					 const char *family, const char *label,
					 const char *value)
{
	struct find_ctx c = { family, label, value, NULL };

	metric_registry_foreach(reg, find_one, &c);
	return c.found;
}

static struct proc_entry *proc(int pid, const char *service)
{
	struct proc_entry *e = calloc(1, sizeof(*e));

	e->pid = pid;
	e->monitored = 1;
	snprintf(e->service, sizeof(e->service), "%s", service);
	return e;
}

static void test_checkpoints(void)
{
	struct metric_registry *reg = metric_registry_new(100);
	struct pgserver *s = pgserver_new(reg, NULL);
	struct proc_entry *ckpt = proc(100, "db");
	struct ks_pg_event ev;
	const struct metric_series *m;

	memset(&ev, 0, sizeof(ev));
	ev.hdr.type = KS_EV_PG;
	ev.hdr.pid = 100;
	ev.kind = KS_PG_CHECKPOINT;
	ev.flags = IMMEDIATE | FORCE | WAIT | REQUESTED;
	ev.duration_ns = 2500000;
	pgserver_on_event(s, ckpt, &ev, offsetof(struct ks_pg_event, data));
	ev.duration_ns = 7000000000ULL;
	pgserver_on_event(s, ckpt, &ev, offsetof(struct ks_pg_event, data));
	ev.flags = SHUTDOWN | IMMEDIATE;
	ev.duration_ns = 1000000;
	pgserver_on_event(s, ckpt, &ev, offsetof(struct ks_pg_event, data));
	/* Too short to hold a duration: ignored. */
	pgserver_on_event(s, ckpt, &ev, 20);

	m = find(reg, "katascope_pg_checkpoint_duration_seconds", "trigger",
		 "requested");
	CHECK(m != NULL);
	if (m) {
		CHECK_INT(metric_series_count(m), 2);
		CHECK(metric_series_sum(m) > 7.0024 &&
		      metric_series_sum(m) < 7.0026);
		/* 2.5 ms in the 0.01 s bucket, 7 s in the 10 s one. */
		CHECK_INT(metric_series_buckets(m)[0], 1);
		CHECK_INT(metric_series_buckets(m)[6], 1);
	}
	m = find(reg, "katascope_pg_checkpoint_duration_seconds", "trigger",
		 "shutdown");
	CHECK(m != NULL && metric_series_count(m) == 1);

	/* Not a monitored process: nothing. */
	ckpt->monitored = 0;
	pgserver_on_event(s, ckpt, &ev, offsetof(struct ks_pg_event, data));
	CHECK(m != NULL && metric_series_count(m) == 1);

	free(ckpt);
	pgserver_free(s);
	metric_registry_free(reg);
}

int main(void)
{
	test_triggers();
	test_checkpoints();
	return check_summary();
}
