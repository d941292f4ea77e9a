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
	uint64_t added;	    /* positions and values recorded, ever */
};

/* A zeroed guard is ready too; this resets one. */
void route_guard_init(struct route_guard *g);

/*
 * Apply the guard to a route from http_route(), rewriting it in place
 * (it can only shrink). Returns the new length.
 */
size_t route_guard_apply(struct route_guard *g, char *route, size_t len);

/*
 * 3. struct route_memo remembers what the two steps above made of recent
 *    targets, and what the guard made of recent routes (a target with
 *    another id has the same route): a service asks for the same few
 *    routes over and over, and normalizing and guarding them showed in
 *    the agent's profile on every request. Only final results are kept: a
 *    guard pass that recorded nothing (every segment already admitted, or
 *    refused at a position or table that is full) gives the same route
 *    forever, since the guard never forgets and a full position or table
 *    stays full. A hit adds the result's collapsed segments to the guard's
 *    counter, as the pass would have. Both tables are direct-mapped by a
 *    hash of the input; a hit compares the input itself. Targets longer
 *    than ROUTE_MEMO_IN bytes and outputs larger than ROUTE_MEMO_OUT are
 *    not remembered.
 */
#define ROUTE_MEMO_SLOTS 32 /* per table, a power of two */
#define ROUTE_MEMO_IN 128
#define ROUTE_MEMO_OUT 128

struct route_memo_slot {
	uint64_t hash; /* input, cut flag and output size; 0: empty */
	uint16_t in_len, out_len, outsz;
	bool cut;
	uint32_t collapsed; /* segments the guard rewrote to "*" */
	char in[ROUTE_MEMO_IN];
	char out[ROUTE_MEMO_OUT]; /* NUL-terminated */
};

struct route_memo {
	struct route_memo_slot targets[ROUTE_MEMO_SLOTS]; /* -> guarded */
	struct route_memo_slot routes[ROUTE_MEMO_SLOTS]; /* normalized -> */
};

/*
 * http_route() then route_guard_apply() on g, through memo m (zeroed:
 * empty). Same arguments, result and effect on g as the two calls. A memo
 * serves one guard: reset it (zero it) when the guard is reset.
 */
int route_memo_apply(struct route_memo *m, struct route_guard *g,
		     const char *target, size_t len, bool path_cut, char *out,
		     size_t outsz);

#endif
