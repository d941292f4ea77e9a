/*
 * svctab.h - the process attributes of each monitored service, for the
 * resources of the OTLP exporters (process.pid, process.executable.name,
 * container.id, k8s.pod.uid).
 *
 * The process table belongs to the event-loop thread; OTLP requests are
 * encoded on the HTTP and exporter threads. So the event loop rebuilds
 * this table from the process table every refresh (svctab_update) and
 * publishes it under a mutex; readers look services up (svctab_get).
 *
 * Rule for a service with several live processes: an attribute is kept
 * only when all of them agree on it, and process.pid only when there is
 * exactly one process. A service whose processes have all exited keeps its
 * last attributes, so its resource does not change while its cumulative
 * metrics are still exported; the table holds at most max services and
 * forgets those longest without a live process first.
 */
#ifndef KS_SVCTAB_H
#define KS_SVCTAB_H

#include "otlp_metrics.h"
#include "proctab.h"

struct svctab;

/* max 0: 4096. NULL on ENOMEM. */
struct svctab *svctab_new(unsigned max);
void svctab_free(struct svctab *t);

/* A rebuild: begin, add every live monitored process, commit. */
void svctab_begin(struct svctab *t);
void svctab_add(struct svctab *t, const struct proc_entry *e);
void svctab_commit(struct svctab *t);
/* All three over the process table. */
void svctab_update(struct svctab *t, struct proctab *pt);

/* Any thread. 0 with *out filled, -ENOENT when the service is unknown.
 * The signature of otlp_resource_info.service_info (ctx is the table). */
int svctab_get(void *t, const char *service, struct otlp_service_info *out);

#endif
