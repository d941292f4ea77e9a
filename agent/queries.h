/*
 * queries.h - slow statements and the top statements by time.
 *
 * Every database operation the agent measures is offered here with its
 * literal-stripped text (sqlnorm: numbers, strings and IN-lists become ?,
 * so no raw literal is ever kept). Those slower than the threshold go into
 * a fixed ring (the newest N) and are logged one line each; all of them
 * are summed per (service, statement) in a bounded table. Both are served
 * as JSON by the HTTP thread, so a mutex guards them.
 */
#ifndef KS_QUERIES_H
#define KS_QUERIES_H

#include <stdint.h>

#include "strbuf.h"

struct queries;

struct query_sample {
	const char *service;
	const char *system; /* "postgresql", "redis" */
	const char *text; /* normalized statement */
	const char *error; /* SQLSTATE or error word; "" if none */
	double seconds;
	uint64_t unix_ns; /* when it finished (wall clock) */
};

struct queries *queries_new(double slow_seconds, unsigned ring_size,
			    unsigned max_statements);
void queries_free(struct queries *q);
/* Record one operation; returns 1 if it was slow. */
int queries_add(struct queries *q, const struct query_sample *s);
/* {"threshold_ms":..,"slow_queries":[newest first]} */
void queries_render_slow(struct queries *q, struct strbuf *out);
/* {"statements":[by total time, at most limit]} */
void queries_render_top(struct queries *q, struct strbuf *out,
			unsigned limit);
uint64_t queries_dropped(struct queries *q); /* statements not tracked */

#endif
