/*
 * route.h - http_route: a request target turned into a bounded label value.
 *
 * Two steps, both pure and allocation-free:
 *
 * 1. http_route() applies the external contract: the path without query
 *    string (or fragment), with every segment that is all digits, a UUID
 *    (8-4-4-4-12 hex) or 8+ hex characters replaced by "{id}". Everything
 *    else is kept as written: empty segments ("//"), a trailing slash,
 *    percent-encoding. An absolute-form target ("http://host:80/p") loses
 *    its scheme and authority ("/p", or "/" if it has no path); "*" (OPTIONS
 *    *) and authority-form ("host:443", CONNECT) pass through as one
 *    segment; an empty target gives an empty route. Bytes that are not
 *    printable ASCII are percent-encoded so the label is always valid UTF-8.
 *    When the capture cut the path (HTTP1_F_PATH_TRUNC) or the route does
 *    not fit the output, the incomplete last segment becomes "{truncated}":
 *    a cut route is marked, never silently wrong.
 *
 * 2. struct route_guard caps cardinality per service. A path position is
 *    identified by the normalized route before it ("/api/users/" is the
 *    position of "{id}" in "/api/users/{id}"). Each position keeps the
 *    first ROUTE_GUARD_VALUES distinct segment values it sees; a new value
 *    at a full position becomes "*" (values already seen keep their name),
 *    and the positions below it are keyed by the "*". Empty segments (a
 *    trailing slash, "//") are always kept and not counted, so applying
 *    the guard can only shorten a route. At most
 *    ROUTE_GUARD_POSITIONS positions are tracked; once that many exist,
 *    every segment at a position not yet tracked becomes "*". Values are
 *    remembered as 64-bit hashes, so a guard is a fixed ~25 KiB that never
 *    grows and never forgets (until route_guard_init()).
 */
#ifndef KS_ROUTE_H
#define KS_ROUTE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define ROUTE_MAX 256 /* a good output size for http_route() */
#define ROUTE_MIN 16  /* the smallest output size http_route() accepts */
#define ROUTE_ID "{id}"
#define ROUTE_TRUNCATED "{truncated}"

#define ROUTE_GUARD_VALUES 10
#define ROUTE_GUARD_POSITIONS 128
#define ROUTE_GUARD_SLOTS (2 * ROUTE_GUARD_POSITIONS) /* open addressing */

/*
 * Normalize target (len bytes, as captured) into out (outsz bytes, NUL-
 * terminated). path_cut: the capture ended inside the path. Returns the
 * route's length, or -ENOSPC if outsz < ROUTE_MIN.
 */
int http_route(const char *target, size_t len, bool path_cut, char *out,
	       size_t outsz);

/* Is this one path segment an id by the contract's rule? */
bool route_segment_is_id(const char *seg, size_t len);

struct route_guard_pos {
	uint64_t key; /* hash of the route before this position; 0 = free */
	uint32_t nvalues;
	uint64_t values[ROUTE_GUARD_VALUES];
};

struct route_guard {
	struct route_guard_pos slots[ROUTE_GUARD_SLOTS];
	uint32_t npos;
	uint64_t collapsed; /* segments rewritten to "*", for a self-metric */
};

/* A zeroed guard is ready too; this resets one. */
void route_guard_init(struct route_guard *g);

/*
 * Apply the guard to a route from http_route(), rewriting it in place
 * (it can only shrink). Returns the new length.
 */
size_t route_guard_apply(struct route_guard *g, char *route, size_t len);

#endif
