/*
 * pgserver.c - PostgreSQL server-side statement, lock-wait and checkpoint
 * metrics; see pgserver.h. Statement texts are literal-stripped (sqlnorm)
 * before anything keeps them, like the client-side statements.
 *
 * A backend serves one database for its whole life, and says which in its
 * process title. The kernel sends the title once per backend (with its
 * first statement seen); the database is kept per pid in a small
 * direct-mapped table (a collision evicts, /proc/PID/cmdline refills) and
 * forgotten when the process table reaps the pid.
 */
#include "pgserver.h"
#include "sqlnorm.h"

#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DB_SLOTS 1024 /* backends whose database is remembered */

struct db_slot {
	int pid; /* 0: free */
	char db[PG_DB_LEN]; /* "" when the title did not tell */
};

static const double bounds[] = { 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05,
				 0.1,	 0.3,	 0.5,	1,     5,    10 };

struct pgserver {
	struct metric_registry *reg;
	struct queries *queries;
	struct metric_family *stmt;
	struct metric_family *phase;
	struct metric_family *lock;
	struct metric_family *checkpoint;
	const char *proc_root;
	struct db_slot dbs[DB_SLOTS];
};

/* Checkpoints are spread over minutes (checkpoint_completion_target). */
static const double ckpt_bounds[] = { 0.01, 0.05, 0.1, 0.5, 1,	 5,
				      10,   30,	  60,  120, 300, 600 };

/* CHECKPOINT_* request flags as PostgreSQL 15 defines them (access/xlog.h;
 * older releases numbered the cause bits differently). */
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

/* A title word that is the client's address: "[local]" or "HOST(PORT)". */
static int is_client_addr(const char *s, size_t n)
{
	size_t i;

	if (n == 7 && !memcmp(s, "[local]", 7))
		return 1;
	if (n < 4 || s[n - 1] != ')')
		return 0;
	for (i = n - 2; i > 0 && isdigit((unsigned char)s[i]); i--)
		;
	return s[i] == '(' && i > 0 && i < n - 2;
}

/* The next space-separated word of [*p, end); 0 when none is left. */
static size_t next_word(const char **p, const char *end, const char **word)
{
	const char *q = *p;

	while (q < end && *q == ' ')
		q++;
	*word = q;
	while (q < end && *q != ' ')
		q++;
	*p = q;
	return (size_t)(q - *word);
}

/*
 * "postgres: [CLUSTER: ][walsender ]USER DB HOST(PORT) ACTIVITY", HOST
 * being "[local]" for a Unix socket: the words between the prefix (and a
 * cluster_name, which ends at the last ": ") and the client address are
 * the user and the database. Names containing spaces make that split
 * ambiguous: then the database is not known.
 */
int pg_title_database(const char *title, size_t len, char *db, size_t dblen)
{
	static const char prefix[] = "postgres: ";
	const char *p, *end, *w, *names, *host = NULL, *words[3];
	size_t n, wl[3];
	int nw = 0;

	db[0] = '\0';
	len = strnlen(title, len);
	if (len < sizeof(prefix) - 1 ||
	    memcmp(title, prefix, sizeof(prefix) - 1))
		return -1;
	end = title + len;
	p = names = title + sizeof(prefix) - 1;
	while ((n = next_word(&p, end, &w)) > 0)
		if (is_client_addr(w, n)) {
			host = w;
			break;
		}
	if (!host)
		return -1;
	for (p = names; p + 1 < host; p++)
		if (p[0] == ':' && p[1] == ' ')
			names = p + 2;
	p = names;
	while ((n = next_word(&p, host, &w)) > 0) {
		if (nw == 3)
			return -1;
		words[nw] = w;
		wl[nw++] = n;
	}
	if (nw > 0 && wl[0] == 9 && !memcmp(words[0], "walsender", 9)) {
		words[0] = words[1];
		wl[0] = wl[1];
		words[1] = words[2];
		wl[1] = wl[2];
		nw--;
	}
	if (nw != 2 || wl[1] >= dblen)
		return -1;
	memcpy(db, words[1], wl[1]);
	db[wl[1]] = '\0';
	return 0;
}

struct pgserver *pgserver_new(struct metric_registry *reg, struct queries *q,
			      const char *proc_root)
{
	static const char *const l_stmt[] = { "service_name", "db_namespace",
					      "db_operation_name", NULL };
	static const char *const l_phase[] = { "service_name", "db_namespace",
					       "phase", NULL };
	static const char *const l_svc[] = { "service_name", NULL };
	static const char *const l_ckpt[] = { "service_name", "trigger",
					      NULL };
	struct pgserver *s = calloc(1, sizeof(*s));
	unsigned nb = sizeof(bounds) / sizeof(bounds[0]);

	if (!s)
		return NULL;
	s->reg = reg;
	s->queries = q;
	s->proc_root = proc_root;
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

static struct db_slot *db_slot(struct pgserver *s, int pid)
{
	return &s->dbs[(unsigned)pid % DB_SLOTS];
}

static void remember_title(struct pgserver *s, int pid, const char *title,
			   size_t len)
{
	struct db_slot *d = db_slot(s, pid);

	d->pid = pid;
	pg_title_database(title, len, d->db, sizeof(d->db));
}

/* The backend's database; read from its title in /proc if not known. */
static const char *database_of(struct pgserver *s, int pid)
{
	struct db_slot *d = db_slot(s, pid);
	char path[64], title[KS_L7_DATA];
	ssize_t n = -1;
	int fd;

	if (d->pid == pid)
		return d->db;
	snprintf(path, sizeof(path), "%s/%d/cmdline", s->proc_root, pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, title, sizeof(title));
		close(fd);
	}
	if (n <= 0)
		return ""; /* gone: not remembered, a later record may tell */
	remember_title(s, pid, title, (size_t)n);
	return d->db;
}

void pgserver_forget(struct pgserver *s, int pid)
{
	struct db_slot *d = db_slot(s, pid);

	if (d->pid == pid)
		d->pid = 0;
}

static void statement(struct pgserver *s, const struct proc_entry *e,
		      const struct ks_pg_event *ev)
{
	char text[256], op[SQL_OP_MAX];
	size_t len = ev->len > KS_L7_DATA ? KS_L7_DATA : ev->len;
	bool cut = len >= KS_L7_DATA - 1;
	const char *db = database_of(s, e->pid);
	struct query_sample qs;
	struct timespec ts;
	double secs = (double)ev->duration_ns * 1e-9;

	sql_normalize((const char *)ev->data, len, text, sizeof(text), NULL);
	if (!sql_operation(text, strlen(text), cut, op))
		snprintf(op, sizeof(op), "_OTHER");
	{
		const char *lv[] = { e->service, db, op };

		metric_observe(s->stmt, lv, secs);
	}
	{
		const char *pv[] = { e->service, db, "parse" };
		const char *lv[] = { e->service, db, "plan" };
		const char *xv[] = { e->service, db, "execute" };

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
	if (ev->kind == KS_PG_BACKEND) {
		if (len < sizeof(*ev))
			return;
		remember_title(s, e->pid, (const char *)ev->data,
			       ev->len < KS_L7_DATA ? ev->len : KS_L7_DATA);
		return;
	}
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
