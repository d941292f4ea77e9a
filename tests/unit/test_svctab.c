/*
 * test_svctab.c - per-service process attributes for OTLP resources: one
 * process gives its pid; several keep only what they agree on; exited
 * services keep their last attributes; the table forgets the services
 * longest without a live process when it is full.
 */
#include "check.h"
#include "svctab.h"

#include <errno.h>

static struct proc_entry proc(int pid, const char *svc, const char *exe,
			      const char *cid, const char *uid)
{
	struct proc_entry e;

	memset(&e, 0, sizeof(e));
	e.pid = pid;
	e.monitored = 1;
	snprintf(e.service, sizeof(e.service), "%s", svc);
	snprintf(e.exe, sizeof(e.exe), "%s", exe);
	snprintf(e.container_id, sizeof(e.container_id), "%s", cid);
	snprintf(e.pod_uid, sizeof(e.pod_uid), "%s", uid);
	return e;
}

int main(void)
{
	struct svctab *t = svctab_new(3);
	struct otlp_service_info si;
	struct proc_entry p[6];
	int i;

	p[0] = proc(10, "api", "/usr/bin/node", "c1", "u1");
	p[1] =
	    proc(20, "db", "/usr/lib/postgresql/15/bin/postgres", "c2", "u2");
	p[2] =
	    proc(21, "db", "/usr/lib/postgresql/15/bin/postgres", "c2", "u2");
	p[3] = proc(30, "mixed", "/bin/a", "c3", "u3");
	p[4] = proc(31, "mixed", "/bin/b (deleted)", "c4", "u3");
	p[5] = proc(40, "gone", "/bin/x", "", "");
	p[5].exit_ns = 1; /* exited: not a live process */

	svctab_begin(t);
	for (i = 5; i >= 0; i--) /* any order */
		svctab_add(t, &p[i]);
	svctab_commit(t);

	CHECK_INT(svctab_get(t, "api", &si), 0);
	CHECK_INT(si.pid, 10);
	CHECK_STR(si.exe_name, "node");
	CHECK_STR(si.container_id, "c1");
	CHECK_STR(si.pod_uid, "u1");
	CHECK_INT(svctab_get(t, "db", &si), 0);
	CHECK_INT(si.pid, 0); /* two processes: no single pid */
	CHECK_STR(si.exe_name, "postgres");
	CHECK_STR(si.container_id, "c2");
	CHECK_INT(svctab_get(t, "mixed", &si), 0);
	CHECK_STR(si.exe_name, ""); /* they disagree: left out */
	CHECK_STR(si.container_id, "");
	CHECK_STR(si.pod_uid, "u3"); /* they agree */
	CHECK_INT(svctab_get(t, "gone", &si), -ENOENT);
	CHECK_INT(svctab_get(t, "nope", &si), -ENOENT);

	/* api exits: it keeps its last attributes. */
	svctab_begin(t);
	svctab_add(t, &p[1]);
	svctab_add(t, &p[3]);
	svctab_commit(t);
	CHECK_INT(svctab_get(t, "api", &si), 0);
	CHECK_INT(si.pid, 10);
	CHECK_INT(svctab_get(t, "mixed", &si), 0);
	CHECK_INT(si.pid, 30); /* one process left: its pid */
	CHECK_STR(si.exe_name, "a");

	/* A fourth service in a table of 3: api (no live process since the
	 * last rebuild) is forgotten first. */
	p[5] = proc(50, "new", "/bin/new", "", "");
	svctab_begin(t);
	svctab_add(t, &p[1]);
	svctab_add(t, &p[3]);
	svctab_add(t, &p[5]);
	svctab_commit(t);
	CHECK_INT(svctab_get(t, "api", &si), -ENOENT);
	CHECK_INT(svctab_get(t, "new", &si), 0);
	CHECK_INT(svctab_get(t, "db", &si), 0);
	CHECK_INT(svctab_get(t, "mixed", &si), 0);

	/* Not monitored (filtered out): not a resource of its own. */
	p[0].monitored = 0;
	svctab_begin(t);
	svctab_add(t, &p[0]);
	svctab_commit(t);
	CHECK_INT(svctab_get(t, "api", &si), -ENOENT);

	svctab_free(t);
	return check_summary();
}
