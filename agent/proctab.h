/*
 * proctab.h - every process on the host and the service it belongs to.
 *
 * Seeded from /proc at start and kept current by the exec, fork and exit
 * records of the process probes. The service name follows DESIGN.md: the
 * process's OTEL_SERVICE_NAME; else, for a process forked (not exec'd) from
 * a named one, the parent's name (PostgreSQL backends overwrite their
 * environ with their title, so it cannot be read from them); else the base
 * name of its executable.
 */
#ifndef KS_PROCTAB_H
#define KS_PROCTAB_H

#include <stdint.h>

#include "katascope.h"
#include "procinfo.h"

struct proc_entry {
	int pid, ppid;
	char comm[16];
	char exe[PI_PATH_LEN];
	char service[PI_NAME_LEN];
	char container_id[PI_ID_LEN];
	char pod_uid[PI_UID_LEN];
	int named; /* service came from OTEL_SERVICE_NAME, own or inherited */
	int monitored; /* passes the --pid / --exclude-pid filters */
	struct ks_pid_stats last; /* kernel counters already folded in */
	uint64_t exit_ns; /* exited at (CLOCK_MONOTONIC), 0 while alive */
	struct proc_entry *next; /* hash chain */
};

struct proctab_filter {
	const int *pids; /* observe only these and their descendants */
	int npids;
	const int *exclude; /* never these */
	int nexclude;
	int self; /* the agent: never a monitored service */
};

struct proctab;

struct proctab *proctab_new(const char *proc_root, unsigned max_entries,
			    const struct proctab_filter *filter);
void proctab_free(struct proctab *t);
/* Scan proc_root; returns processes added. */
int proctab_seed(struct proctab *t);
struct proc_entry *proctab_get(struct proctab *t, int pid);
/* Look the process up, reading /proc when it is not known yet. */
struct proc_entry *proctab_lookup(struct proctab *t, int pid);
/* env_service: OTEL_SERVICE_NAME as the kernel read it at exec ("" none). */
struct proc_entry *proctab_on_exec(struct proctab *t, int pid, int ppid,
				   const char *comm, const char *filename,
				   const char *env_service);
struct proc_entry *proctab_on_fork(struct proctab *t, int pid, int ppid,
				   const char *comm);
/* Unlink and return the entry (caller frees with proctab_release). */
struct proc_entry *proctab_remove(struct proctab *t, int pid);
void proctab_release(struct proc_entry *e);
void proctab_foreach(struct proctab *t,
		     void (*fn)(struct proc_entry *e, void *arg), void *arg);
unsigned proctab_count(const struct proctab *t);
/* Processes not tracked because the table was full. */
uint64_t proctab_dropped(const struct proctab *t);

#endif
