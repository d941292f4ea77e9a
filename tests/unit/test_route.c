/*
 * test_route.c - http_route normalization (the contract's rules and the
 * edge cases around them), truncation marking, and the cardinality guard:
 * collapse after ROUTE_GUARD_VALUES, memory bound, routes never grow.
 * Inputs live in exact-size heap blocks so ASan catches over-reads.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "route.h"

static char *exact(const char *s, size_t n)
{
	char *b = malloc(n ? n : 1);

	memcpy(b, s, n);
	return b;
}

static uint64_t rng = 0x2545f4914f6cdd1dULL;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

static const char *route_of(const char *target, bool cut)
{
	static char out[ROUTE_MAX];
	size_t n = strlen(target);
	char *b = exact(target, n);
	int len = http_route(b, n, cut, out, sizeof(out));

	free(b);
	CHECK_INT(len, strlen(out));
	return out;
}

static void test_routes(void)
{
	static const struct {
		const char *in;
		bool cut;
		const char *want;
	} t[] = {
	    {"/api/users/42", false, "/api/users/{id}"},
	    {"/api/users/42?x=1&y=2", false, "/api/users/{id}"},
	    {"/api/users/42#top", false, "/api/users/{id}"},
	    {"/api/users/550e8400-e29b-41d4-a716-446655440000/orders", false,
	     "/api/users/{id}/orders"},
	    {"/u/550E8400-E29B-41D4-A716-446655440000", false, "/u/{id}"},
	    {"/u/550e8400e29b-41d4-a716-446655440000-", false,
	     "/u/550e8400e29b-41d4-a716-446655440000-"},
	    {"/u/550e8400-e29b-41d4-a716-44665544000g", false,
	     "/u/550e8400-e29b-41d4-a716-44665544000g"},
	    {"/objects/deadbeef", false, "/objects/{id}"},
	    {"/objects/DEADBEEF01", false, "/objects/{id}"},
	    {"/objects/deadbee", false, "/objects/deadbee"},
	    {"/objects/5f2b9c1e8a7d4e3f9b0c1d2e", false, "/objects/{id}"},
	    {"/v1/facade", false, "/v1/facade"},
	    {"/files/12a", false, "/files/12a"},
	    {"/n/12345678901234567890123", false, "/n/{id}"},
	    {"/0", false, "/{id}"},
	    {"/", false, "/"},
	    {"", false, ""},
	    {"//", false, "//"},
	    {"/a//b", false, "/a//b"},
	    {"/users/", false, "/users/"},
	    {"/users/7/", false, "/users/{id}/"},
	    {"/a%20b/%31%32", false, "/a%20b/%31%32"},
	    {"/caf\xc3\xa9/1", false, "/caf%C3%A9/{id}"},
	    {"/a\x7f", false, "/a%7F"},
	    {"/a\"b\\c", false, "/a\"b\\c"},
	    {"http://example.com/a/1?x", false, "/a/{id}"},
	    {"https://user@example.com:8443/a/b/", false, "/a/b/"},
	    {"HTTP://example.com", false, "/"},
	    {"http://h?x=1", false, "/"},
	    {"http://h#f", false, "/"},
	    {"*", false, "*"},
	    {"db.internal:5432", false, "db.internal:5432"},
	    {"?x=1", false, ""},
	    {"/api/users/123", true, "/api/users/{truncated}"},
	    {"/api/", true, "/api/{truncated}"},
	    {"", true, "{truncated}"},
	    {"/search?q=x", true, "/search"},
	    {"/search#x", true, "/search"},
	    {"http://exa", true, "/{truncated}"},
	    {"http://example.com/a/1", true, "/a/{truncated}"},
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		const char *got = route_of(t[i].in, t[i].cut);

		CHECK_STR(got, t[i].want);
	}
}

static void test_segment_ids(void)
{
	static const struct {
		const char *seg;
		bool id;
	} t[] = {
	    {"0", true},	 {"007", true},
	    {"abcdef01", true},	 {"ABCDEF0", false},
	    {"abcdefg1", false}, {"", false},
	    {"-1", false},	 {"1.5", false},
	    {"{id}", false},	 {"00000000-0000-0000-0000-000000000000", true},
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		CHECK_INT(route_segment_is_id(t[i].seg, strlen(t[i].seg)),
			  t[i].id);
}

/* Routes longer than the output are cut between segments and marked. */
static void test_long_routes(void)
{
	char target[1000], out[ROUTE_MAX], small[ROUTE_MIN];
	size_t n = 0;
	int len;

	while (n < 900)
		n += (size_t)snprintf(target + n, sizeof(target) - n, "/seg%zu",
				      n);
	len = http_route(target, n, false, out, sizeof(out));
	CHECK(len > 0 && (size_t)len < sizeof(out));
	CHECK_INT(len, strlen(out));
	CHECK(len > 12 && !strcmp(out + len - 12, "/" ROUTE_TRUNCATED));
	CHECK(!strncmp(out, target, (size_t)len - 12));

	/* one id per segment makes the route longer than the target */
	n = 0;
	while (n < 250)
		n += (size_t)snprintf(target + n, sizeof(target) - n, "/1");
	len = http_route(target, n, false, out, sizeof(out));
	CHECK(len > 0 && (size_t)len < sizeof(out));
	CHECK(!strcmp(out + len - 12, "/" ROUTE_TRUNCATED));

	CHECK_INT(http_route("/x", 2, false, small, sizeof(small)), 2);
	CHECK_STR(small, "/x");
	CHECK_INT(http_route("/x", 2, false, small, sizeof(small) - 1),
		  -ENOSPC);
	CHECK_INT(http_route("/abcd", 5, false, small, sizeof(small)), 12);
	CHECK_STR(small, "/" ROUTE_TRUNCATED);
}

/* Every prefix of a target, as a capture would cut it. */
static void test_split_points(void)
{
	static const char *samples[] = {
	    "/api/users/550e8400-e29b-41d4-a716-446655440000/orders/17?x=1",
	    "http://example.com:8080/a/deadbeef99/b#frag",
	    "//x//y/",
	};
	char out[ROUTE_MAX];
	size_t i, k;

	for (i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		size_t n = strlen(samples[i]);

		for (k = 0; k <= n; k++) {
			char *b = exact(samples[i], k);
			int len = http_route(b, k, true, out, sizeof(out));
			bool done = memchr(b, '?', k) || memchr(b, '#', k);

			CHECK(len >= 0 && (size_t)len == strlen(out));
			if (!done)
				CHECK(strstr(out, ROUTE_TRUNCATED) != NULL);
			else
				CHECK(strstr(out, ROUTE_TRUNCATED) == NULL);
			free(b);
		}
	}
}

/* ---- guard ------------------------------------------------------------- */

static const char *guard(struct route_guard *g, const char *route)
{
	static char buf[ROUTE_MAX];
	size_t n = strlen(route), len;

	memcpy(buf, route, n + 1);
	len = route_guard_apply(g, buf, n);
	CHECK(len <= n);
	CHECK_INT(len, strlen(buf));
	return buf;
}

static void test_guard_collapse(void)
{
	static struct route_guard g;
	char r[64];
	int i;

	route_guard_init(&g);
	for (i = 0; i < 15; i++) {
		snprintf(r, sizeof(r), "/users/name%d", i);
		CHECK_STR(guard(&g, r),
			  i < ROUTE_GUARD_VALUES ? r : "/users/*");
	}
	CHECK_INT(g.collapsed, 15 - ROUTE_GUARD_VALUES);
	/* values seen before the cap keep their names */
	CHECK_STR(guard(&g, "/users/name3"), "/users/name3");
	CHECK_STR(guard(&g, "/users/name3/profile"), "/users/name3/profile");
	/* positions below a collapsed segment are keyed by the "*" */
	CHECK_STR(guard(&g, "/users/name12/profile"), "/users/*/profile");
	CHECK_STR(guard(&g, "/users/name13/profile"), "/users/*/profile");
	/* other prefixes are independent */
	CHECK_STR(guard(&g, "/teams/a"), "/teams/a");
	/* {id} is one value however many ids it stands for */
	for (i = 0; i < 50; i++)
		CHECK_STR(guard(&g, "/orders/{id}"), "/orders/{id}");
	/* empty segments are kept and uncounted: routes never grow */
	CHECK_STR(guard(&g, "/users/"), "/users/");
	CHECK_STR(guard(&g, "/users//x"), "/users//x");
	CHECK_STR(guard(&g, ""), "");
	CHECK_STR(guard(&g, "*"), "*");
}

/* The root position fills like any other. */
static void test_guard_root(void)
{
	static struct route_guard g;
	char r[64];
	int i;

	for (i = 0; i < 12; i++) {
		snprintf(r, sizeof(r), "/svc%d/x", i);
		CHECK_STR(guard(&g, r), i < ROUTE_GUARD_VALUES ? r : "/*/x");
	}
}

/* Past ROUTE_GUARD_POSITIONS, a segment at a new position collapses. */
static void test_guard_memory_bound(void)
{
	static struct route_guard g;
	char r[64];
	int i, j, k;

	route_guard_init(&g);
	for (i = 0; i < 10; i++)
		for (j = 0; j < 10; j++)
			for (k = 0; k < 10; k++) {
				snprintf(r, sizeof(r), "/a%d/b%d/c%d/d", i, j,
					 k);
				guard(&g, r);
			}
	CHECK_INT(g.npos, ROUTE_GUARD_POSITIONS);
	CHECK_STR(guard(&g, "/a0/b0/c0/d"), "/a0/b0/c0/d");
	CHECK_STR(guard(&g, "/a0/b0/c0/d/e"), "/a0/b0/c0/d/*");
	CHECK(strchr(guard(&g, "/a9/b9/c9/d"), '*') != NULL);
	CHECK_INT(g.npos, ROUTE_GUARD_POSITIONS);
	CHECK(sizeof(g) < 32 * 1024);
}

/* ---- memo --------------------------------------------------------------- */

static const char *memo(struct route_memo *m, struct route_guard *g,
			const char *target, bool cut)
{
	static char out[ROUTE_MEMO_OUT];
	size_t n = strlen(target);
	char *b = exact(target, n);
	int len = route_memo_apply(m, g, b, n, cut, out, sizeof(out));

	free(b);
	CHECK(len >= 0);
	CHECK_INT(len, strlen(out));
	return out;
}

/* Is target's result remembered (with this cut flag)? */
static bool remembered(const struct route_memo *m, const char *target, bool cut)
{
	size_t n = strlen(target);
	unsigned i;

	for (i = 0; i < ROUTE_MEMO_SLOTS; i++)
		if (m->targets[i].hash && m->targets[i].in_len == n &&
		    m->targets[i].cut == cut &&
		    !memcmp(m->targets[i].in, target, n))
			return true;
	return false;
}

/*
 * A result is kept only once the guard recorded nothing for it, and a
 * remembered collapse still counts on every hit.
 */
static void test_memo_final(void)
{
	static struct route_guard g;
	static struct route_memo m;
	char r[64];
	int i;

	CHECK_STR(memo(&m, &g, "/users/name0/profile", false),
		  "/users/name0/profile");
	CHECK(!remembered(&m, "/users/name0/profile", false));
	CHECK_STR(memo(&m, &g, "/users/name0/profile", false),
		  "/users/name0/profile");
	CHECK(remembered(&m, "/users/name0/profile", false));
	CHECK_STR(memo(&m, &g, "/users/name0/profile", false),
		  "/users/name0/profile");
	for (i = 1; i < ROUTE_GUARD_VALUES; i++) {
		snprintf(r, sizeof(r), "/users/name%d", i);
		CHECK_STR(memo(&m, &g, r, false), r);
	}
	CHECK_INT(g.collapsed, 0);
	for (i = 1; i <= 3; i++) {
		CHECK_STR(memo(&m, &g, "/users/late?x=1", false), "/users/*");
		CHECK(remembered(&m, "/users/late?x=1", false));
		CHECK_INT(g.collapsed, (uint64_t)i);
	}
	/* The cut flag is part of the input. */
	for (i = 0; i < 3; i++) {
		CHECK_STR(memo(&m, &g, "/teams/t1", true),
			  "/teams/{truncated}");
		CHECK_STR(memo(&m, &g, "/teams/t1", false), "/teams/t1");
	}
	CHECK(remembered(&m, "/teams/t1", true));
	CHECK(remembered(&m, "/teams/t1", false));
	CHECK_INT(g.collapsed, 3);
}

/* Is route's guarded form remembered (the table of normalized routes)? */
static bool route_remembered(const struct route_memo *m, const char *route)
{
	size_t n = strlen(route);
	unsigned i;

	for (i = 0; i < ROUTE_MEMO_SLOTS; i++)
		if (m->routes[i].hash && m->routes[i].in_len == n &&
		    !memcmp(m->routes[i].in, route, n))
			return true;
	return false;
}

/* Targets with other ids share their route's result, collapse included. */
static void test_memo_ids(void)
{
	static struct route_guard g;
	static struct route_memo m;
	char r[64];
	int i;

	CHECK_STR(memo(&m, &g, "/orders/1/lines", false), "/orders/{id}/lines");
	CHECK(!route_remembered(&m, "/orders/{id}/lines"));
	CHECK_STR(memo(&m, &g, "/orders/2/lines", false), "/orders/{id}/lines");
	CHECK(route_remembered(&m, "/orders/{id}/lines"));
	CHECK_STR(memo(&m, &g, "/orders/3/lines", false), "/orders/{id}/lines");
	CHECK(remembered(&m, "/orders/3/lines", false));
	for (i = 0; i < ROUTE_GUARD_VALUES; i++) {
		snprintf(r, sizeof(r), "/items/n%d", i);
		CHECK_STR(memo(&m, &g, r, false), r);
	}
	CHECK_INT(g.collapsed, 0);
	CHECK_STR(memo(&m, &g, "/items/late/5", false), "/items/*/{id}");
	CHECK(!route_remembered(&m, "/items/late/{id}"));
	CHECK_STR(memo(&m, &g, "/items/late/6", false), "/items/*/{id}");
	CHECK(route_remembered(&m, "/items/late/{id}"));
	CHECK_STR(memo(&m, &g, "/items/late/7", false), "/items/*/{id}");
	CHECK_STR(memo(&m, &g, "/items/late/7", false), "/items/*/{id}");
	CHECK_INT(g.collapsed, 4);
}

/*
 * The memo against the two plain steps on a twin guard: many more targets
 * than slots (so they collide), positions and the position table filling
 * up, cut paths, several output sizes. Every result, and the guards'
 * state, must be the same.
 */
static void test_memo_same(void)
{
	static const char *const seg[] = {
	    "a",  "b",	"42", "c0ffee00", "item", "x%20", "",	"users",
	    "p1", "p2", "p3", "p4",	  "p5",	  "p6",	  "p7", "p8"};
	static const size_t sizes[] = {ROUTE_MIN, 40, ROUTE_MEMO_OUT};
	static struct route_guard g1, g2;
	static struct route_memo m;
	char target[200], out1[ROUTE_MEMO_OUT], out2[ROUTE_MEMO_OUT];
	unsigned i, j, nseg;
	size_t outsz, n;
	uint64_t saved;
	int len1, len2;
	bool cut;

	for (i = 0; i < 60000; i++) {
		/* Three times in four, one of 200 targets (the generator
		 * restarted from the target's number); else a new one. */
		saved = rng;
		if (i % 4)
			rng = 0x9e3779b97f4a7c15ULL * (rnd() % 200 + 1);
		nseg = rnd() % 5 + 1;
		n = 0;
		for (j = 0; j < nseg; j++) {
			n += (size_t)snprintf(target + n, sizeof(target) - n,
					      "/%s", seg[rnd() % 16]);
			if (i % 4 == 0 && rnd() % 3 == 0)
				n += (size_t)snprintf(target + n,
						      sizeof(target) - n, "%u",
						      rnd() % 30);
		}
		if (rnd() % 5 == 0)
			n += (size_t)snprintf(target + n, sizeof(target) - n,
					      "?q=%u", rnd() % 4);
		cut = rnd() % 7 == 0;
		outsz = sizes[rnd() % 3];
		if (i % 4) {
			rng = saved;
			rnd();
		}
		len1 = http_route(target, n, cut, out1, outsz);
		CHECK(len1 >= 0);
		len1 = (int)route_guard_apply(&g1, out1, (size_t)len1);
		len2 = route_memo_apply(&m, &g2, target, n, cut, out2, outsz);
		CHECK_INT(len2, len1);
		CHECK_STR(out2, out1);
		CHECK_INT(g2.collapsed, g1.collapsed);
		CHECK_INT(g2.added, g1.added);
		CHECK_INT(g2.npos, g1.npos);
	}
	CHECK(g1.collapsed > 0);
	CHECK_INT(g1.npos, ROUTE_GUARD_POSITIONS);
}

/* Random targets through both steps: no crash, bounded, never growing. */
static void test_garbage(void)
{
	static struct route_guard g;
	static const char alphabet[] = "/?#%0123456789abcdefABCDEF-{}*:.x\x80";
	char target[300], out[ROUTE_MAX];
	size_t i, j, n;

	for (i = 0; i < 20000; i++) {
		char *b;
		int len;

		n = rnd() % sizeof(target);
		for (j = 0; j < n; j++)
			target[j] =
			    (i & 1) ? (char)rnd()
				    : alphabet[rnd() % (sizeof(alphabet) - 1)];
		b = exact(target, n);
		len = http_route(b, n, i % 3 == 0, out, sizeof(out));
		CHECK(len >= 0 && (size_t)len < sizeof(out));
		CHECK(route_guard_apply(&g, out, (size_t)len) <= (size_t)len);
		free(b);
	}
	CHECK(g.npos <= ROUTE_GUARD_POSITIONS);
}

int main(void)
{
	test_routes();
	test_segment_ids();
	test_long_routes();
	test_split_points();
	test_guard_collapse();
	test_guard_root();
	test_guard_memory_bound();
	test_memo_final();
	test_memo_ids();
	test_memo_same();
	test_garbage();
	return check_summary();
}
