/*
 * l7.h - request metrics from the kernel's L7 records.
 *
 * The kernel sends one record per HTTP exchange, its end (status,
 * timestamps) carrying the first bytes of the request's head (two with
 * split records: the request's, then its end), or counts the exchange
 * itself in a slot of its table once a record named the slot's route
 * (l7_fold_http_slot). This file pairs requests and ends by connection,
 * parses the head with l7_http, normalizes the
 * route (route.h, plus a per-service cardinality guard) and observes
 * http_server_request_duration_seconds. With l7_set_spans() it also hands
 * every request and its end to the tracer (spans.h). Pure: no BPF, no I/O.
 */
#ifndef KS_L7_H
#define KS_L7_H

#include <stdint.h>

#include "katascope.h"
#include "metrics.h"
#include "proctab.h"
#include "queries.h"

struct l7;
struct spans;

struct l7_stats {
	uint64_t unmatched; /* end records with no request seen */
	uint64_t evicted; /* pending requests pushed out of a full table */
	uint64_t unparsed; /* request heads the parser refused */
};

struct l7 *l7_new(struct metric_registry *reg, struct queries *q);
void l7_free(struct l7 *l);
void l7_on_event(struct l7 *l, const struct proc_entry *e,
		 const struct ks_l7_event *ev);
void l7_stats(const struct l7 *l, struct l7_stats *out);
/* Fold the growth of a slot of the kernel's HTTP counters (katascope.h):
 * a client label set's (l7_client_fold_http), or a server's, whose route
 * the record that claimed the slot named. Returns 1 when the slot is to
 * be released (its process is gone or not monitored; a server's idle for
 * a minute); final: the slot's last fold after its release (see
 * probes_read_http_counts), after which it is forgotten. */
int l7_fold_http_slot(struct l7 *l, const struct proc_entry *e,
			uint32_t slot, const struct ks_http_key *k,
			const struct ks_http_val *v, int final);
/* Build spans of the exchanges too (NULL or disabled: do not). */
void l7_set_spans(struct l7 *l, struct spans *s);

#endif
