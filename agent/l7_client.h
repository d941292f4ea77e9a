/*
 * l7_client.h - client-side operations: HTTP calls, PostgreSQL statements
 * and Redis commands a process makes, from the kernel's client records.
 *
 * The request record (first bytes the client wrote) is parsed into
 * operations: one per SQL statement (simple Query, split at ';', or each
 * Execute of the extended protocol, its text from the Parse earlier on the
 * connection), one per Redis command (pipelines count each), one HTTP call.
 * The end record closes them all with one duration: from the first byte
 * written to the last byte of the answer read. With tracing on, each
 * operation also becomes a CLIENT span; its parent candidate is taken when
 * its request is written (spans_parent_at), the span built when it ends.
 */
#ifndef KS_L7_CLIENT_H
#define KS_L7_CLIENT_H

#include "katascope.h"
#include "metrics.h"
#include "proctab.h"
#include "queries.h"

struct l7_client;
struct spans;

struct l7_client *l7_client_new(struct metric_registry *reg,
				struct queries *q);
void l7_client_free(struct l7_client *c);
/* Build a span per operation too (NULL: do not). */
void l7_client_set_spans(struct l7_client *c, struct spans *s);
void l7_client_on_event(struct l7_client *c, const struct proc_entry *e,
			const struct ks_l7_event *ev);
/*
 * Plain HTTP calls are counted in the kernel (katascope.h, http_tab):
 * fold slot `slot`, holding label set k with counters v, adding to
 * http_client_request_duration_seconds what they grew by since the slot's
 * last fold. e: its process (NULL: unknown). Returns 1 when the slot is of
 * no more use (its process is unknown, not monitored, or exited; or it did
 * not grow for L7_IDLE_FOLDS folds, so that another label set may have
 * it): the caller releases it in the kernel and passes it once more, final
 * set;
 * then the counters seen last are forgotten, so the slot's next label set
 * counts from zero.
 */
/* What a slot's counters v grew by since last (a counter smaller than
 * before is a new label set's, all growth): per bucket into delta, the
 * sum's growth into *sum_ns; returns the exchanges added. */
uint64_t l7_http_growth(const struct ks_http_val *v,
			const struct ks_http_val *last,
			uint64_t delta[KS_HTTP_BUCKETS], uint64_t *sum_ns);
#define L7_IDLE_FOLDS 120 /* folds (500 ms apart) of a slot without growth
			   * before it is released: a minute */
int l7_client_fold_http(struct l7_client *c, const struct proc_entry *e,
			uint32_t slot, const struct ks_http_key *k,
			const struct ks_http_val *v, int final);

#endif
