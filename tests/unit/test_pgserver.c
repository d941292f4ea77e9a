/*
 * test_pgserver.c - PostgreSQL server-side records to metrics
 * (agent/pgserver.c): checkpoint triggers from the flags, checkpoint
 * records observed in the histogram by trigger; the database of a backend
 * from its process title (titles observed on PostgreSQL 15 with and
 * without cluster_name, TCP and Unix-socket clients, names with spaces),
 * statements counted by database, the /proc fallback and forgetting.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
	struct pgserver *s = pgserver_new(reg, NULL, "/nonexistent");
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

static void check_title(const char *title, int ret, const char *db)
{
	char got[PG_DB_LEN] = "junk";

	CHECK_INT(pg_title_database(title, strlen(title) + 1, got, sizeof(got)),
		  ret);
	CHECK_STR(got, db);
}

static void test_titles(void)
{
	/* Observed on Debian's PostgreSQL 15 (cluster_name unset, then
	 * '15/main' as pg_createcluster sets it, then 'my: cluster'). */
	check_title("postgres: postgres shop 127.0.0.1(60564) SELECT", 0,
		    "shop");
	check_title("postgres: app postgres [local] idle", 0, "postgres");
	check_title("postgres: 15/main: app orders 127.0.0.1(60510) idle", 0,
		    "orders");
	check_title("postgres: 15/main: app orders [local] SELECT", 0,
		    "orders");
	check_title("postgres: my: cluster: app orders 127.0.0.1(45676) "
		    "idle in transaction",
		    0, "orders");
	check_title("postgres: app orders ::1(5433) INSERT waiting", 0,
		    "orders");
	check_title("postgres: app orders db.example.com(40000) idle", 0,
		    "orders");
	/* Not client backends. */
	check_title("postgres: checkpointer ", -1, "");
	check_title("postgres: 15/main: autovacuum launcher ", -1, "");
	check_title("postgres: logical replication launcher ", -1, "");
	check_title("/usr/lib/postgresql/15/bin/postgres", -1, "");
	check_title("postgres: parallel worker for PID 4242 ", -1, "");
	/* Names with spaces ("my db", user "u x"): which word is whose is
	 * not known. */
	check_title("postgres: postgres my db 127.0.0.1(60564) SELECT", -1,
		    "");
	check_title("postgres: 15/main: u x postgres [local] SELECT", -1, "");
	/* Replication: a logical walsender has a database, a physical one
	 * none. */
	check_title("postgres: walsender repl shop 10.0.0.2(41000) "
		    "START_REPLICATION",
		    0, "shop");
	check_title("postgres: walsender repl 10.0.0.2(41000) streaming "
		    "0/3000148",
		    -1, "");
	/* Cut before the client address; empty; the prefix alone. */
	check_title("postgres: app orders 127.0.0.1(604", -1, "");
	check_title("", -1, "");
	check_title("postgres: ", -1, "");
	/* Not a port: "(x)" or "()" is a name. */
	check_title("postgres: app orders host(x) idle", -1, "");
	check_title("postgres: app orders host() idle", -1, "");
	{
		/* No NUL within len: only len bytes are read. */
		const char t[] = "postgres: app orders [local] idleXXXX";
		char got[PG_DB_LEN];

		CHECK_INT(pg_title_database(t, 33, got, sizeof(got)), 0);
		CHECK_STR(got, "orders");
		/* A database longer than the buffer: not cut, unknown. */
		CHECK_INT(pg_title_database(t, 33, got, 6), -1);
	}
}

static struct ks_pg_event *record(int pid, uint32_t kind, const char *text)
{
	static struct ks_pg_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.hdr.type = KS_EV_PG;
	ev.hdr.pid = (uint32_t)pid;
	ev.kind = kind;
	ev.len = (uint32_t)strlen(text);
	memcpy(ev.data, text, ev.len);
	ev.duration_ns = 1000000;
	return &ev;
}

static uint64_t stmt_count(struct metric_registry *reg, const char *db)
{
	const struct metric_series *m = find(
		reg, "katascope_pg_statement_duration_seconds", "db_namespace",
		db);

	return m ? metric_series_count(m) : 0;
}

static void test_databases(void)
{
	char root[] = "/tmp/ks-pgproc-XXXXXX", path[128];
	struct metric_registry *reg = metric_registry_new(100);
	struct pgserver *s;
	struct proc_entry *a = proc(201, "db"), *b = proc(202, "db"),
			  *c = proc(203, "db");
	FILE *f;
	int i;

	CHECK(mkdtemp(root) != NULL);
	s = pgserver_new(reg, NULL, root);
	/* Backend 201 in "shop", sent by the kernel with its first statement. */
	pgserver_on_event(s, a,
			  record(201, KS_PG_BACKEND,
				 "postgres: 15/main: app shop [local] idle"),
			  sizeof(struct ks_pg_event));
	for (i = 0; i < 3; i++)
		pgserver_on_event(s, a, record(201, KS_PG_STATEMENT, "SELECT 1"),
				  sizeof(struct ks_pg_event));
	/* Backend 202 in "crm", title found only in /proc. */
	snprintf(path, sizeof(path), "%s/202", root);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/202/cmdline", root);
	f = fopen(path, "w");
	fputs("postgres: app crm 127.0.0.1(5000) idle", f);
	fwrite("\0\0\0", 1, 3, f);
	fclose(f);
	pgserver_on_event(s, b, record(202, KS_PG_STATEMENT, "SELECT 2"),
			  sizeof(struct ks_pg_event));
	/* Backend 203: no title anywhere (gone): not known, counted. */
	pgserver_on_event(s, c, record(203, KS_PG_STATEMENT, "SELECT 3"),
			  sizeof(struct ks_pg_event));
	CHECK_INT(stmt_count(reg, "shop"), 3);
	CHECK_INT(stmt_count(reg, "crm"), 1);
	CHECK_INT(stmt_count(reg, ""), 1);

	/* Remembered: the /proc file may go. */
	unlink(path);
	pgserver_on_event(s, b, record(202, KS_PG_STATEMENT, "SELECT 2"),
			  sizeof(struct ks_pg_event));
	CHECK_INT(stmt_count(reg, "crm"), 2);
	/* Forgotten when reaped; pid 202 reused by a backend of "shop". */
	pgserver_forget(s, 202);
	pgserver_on_event(s, b,
			  record(202, KS_PG_BACKEND,
				 "postgres: app shop 127.0.0.1(5001) idle"),
			  sizeof(struct ks_pg_event));
	pgserver_on_event(s, b, record(202, KS_PG_STATEMENT, "SELECT 2"),
			  sizeof(struct ks_pg_event));
	CHECK_INT(stmt_count(reg, "shop"), 4);
	CHECK_INT(stmt_count(reg, "crm"), 2);
	/* A backend record too short to hold its title: ignored. */
	pgserver_on_event(s, c,
			  record(203, KS_PG_BACKEND,
				 "postgres: app crm 127.0.0.1(5000) idle"),
			  offsetof(struct ks_pg_event, data));
	pgserver_on_event(s, c, record(203, KS_PG_STATEMENT, "SELECT 3"),
			  sizeof(struct ks_pg_event));
	CHECK_INT(stmt_count(reg, ""), 2);
	/* Phases carry the database too. */
	CHECK(find(reg, "katascope_pg_statement_phase_duration_seconds",
		   "db_namespace", "crm") != NULL);

	snprintf(path, sizeof(path), "%s/202", root);
	rmdir(path);
	rmdir(root);
	free(a);
	free(b);
	free(c);
	pgserver_free(s);
	metric_registry_free(reg);
}

int main(void)
{
	test_triggers();
	test_checkpoints();
	test_titles();
	test_databases();
	return check_summary();
}
