/*
 * route.c - request target -> http_route label, and its cardinality guard;
 * see route.h for the rules.
 *
 * http_route() writes through a small bounded writer that keeps room for
 * "/{truncated}" in reserve, so marking a cut route can never itself
 * overflow. The guard hashes the normalized route segment by segment: the
 * running hash of what came before is the key of a position, the hash of
 * the segment is the value. Positions live in a fixed open-addressing table
 * with no deletion, which is all a grow-only set needs.
 */
#include "route.h"
#include "hash.h"

#include <errno.h>
#include <string.h>


static const char hexdig[] = "0123456789ABCDEF";

/* ---- segment classification -------------------------------------------- */

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	       (c >= 'A' && c <= 'F');
}

static bool is_uuid(const char *s, size_t n)
{
	size_t i;

	if (n != 36)
		return false;
	for (i = 0; i < n; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-' : !is_hex(s[i]))
			return false;
	}
	return true;
}

bool route_segment_is_id(const char *s, size_t n)
{
	bool digits = true, hex = true;
	size_t i;

	if (!n)
		return false;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			digits = false;
		if (!is_hex(s[i]))
			hex = false;
	}
	return digits || (hex && n >= 8) || is_uuid(s, n);
}

/* ---- bounded writer --------------------------------------------------- */

struct writer {
	char *buf;
	size_t cap; /* usable bytes, not counting the reserve and the NUL */
	size_t len;
};

static bool needs_escape(unsigned char c)
{
	return c < 0x21 || c >= 0x7f;
}

/* Width of a segment once written: "{id}", or escaped bytes. */
static size_t segment_width(const char *s, size_t n, bool id)
{
	size_t i, w = 0;

	if (id)
		return sizeof(ROUTE_ID) - 1;
	for (i = 0; i < n; i++)
		w += needs_escape((unsigned char)s[i]) ? 3 : 1;
	return w;
}

static void put(struct writer *w, const char *s, size_t n)
{
	memcpy(w->buf + w->len, s, n);
	w->len += n;
}

static void put_segment(struct writer *w, const char *s, size_t n, bool id)
{
	size_t i;

	if (id) {
		put(w, ROUTE_ID, sizeof(ROUTE_ID) - 1);
		return;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[3] = {'%', hexdig[c >> 4], hexdig[c & 15]};

		if (needs_escape(c))
			put(w, esc, 3);
		else
			put(w, (const char *)&c, 1);
	}
}

/*
 * Write the path's segments. The last one becomes "{truncated}" when the
 * path was cut; any segment that would not fit ends the route the same way
 * (the marker always fits: its room is kept out of w->cap).
 */
static void put_path(struct writer *w, const char *path, size_t n, bool cut)
{
	size_t start = 0, end;

	for (;;) {
		const char *seg = path + start;
		size_t sep = start ? 1 : 0, seglen;
		bool id;

		for (end = start; end < n && path[end] != '/'; end++)
			;
		seglen = end - start;
		id = route_segment_is_id(seg, seglen);
		if ((cut && end == n) ||
		    w->len + sep + segment_width(seg, seglen, id) > w->cap) {
			put(w, "/", sep);
			put(w, ROUTE_TRUNCATED, sizeof(ROUTE_TRUNCATED) - 1);
			return;
		}
		put(w, "/", sep);
		put_segment(w, seg, seglen, id);
		if (end == n)
			return;
		start = end + 1;
	}
}

/* ---- target forms ----------------------------------------------------- */

/* Length of "scheme://" at the start of t, or 0. */
static size_t scheme_len(const char *t, size_t len)
{
	size_t i;

	if (!len || !((t[0] | 32) >= 'a' && (t[0] | 32) <= 'z'))
		return 0;
	for (i = 1; i < len; i++) {
		char c = t[i];

		if (((c | 32) >= 'a' && (c | 32) <= 'z') ||
		    (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.')
			continue;
		break;
	}
	if (len - i >= 3 && !memcmp(t + i, "://", 3))
		return i + 3;
	return 0;
}

int http_route(const char *target, size_t len, bool path_cut, char *out,
	       size_t outsz)
{
	struct writer w = {out, 0, 0};
	size_t start = 0, end;
	bool absolute;

	if (outsz < ROUTE_MIN)
		return -ENOSPC;
	w.cap = outsz - 1 - (sizeof("/" ROUTE_TRUNCATED) - 1);
	start = scheme_len(target, len);
	absolute = start != 0;
	while (absolute && start < len && !strchr("/?#", target[start]))
		start++;
	for (end = start; end < len && target[end] != '?' && target[end] != '#';
	     end++)
		;
	if (end < len)
		path_cut = false;
	if (absolute && start == end && !path_cut)
		put(&w, "/", 1);
	else if (absolute && start == end)
		put(&w, "/" ROUTE_TRUNCATED, sizeof("/" ROUTE_TRUNCATED) - 1);
	else
		put_path(&w, target + start, end - start, path_cut);
	out[w.len] = '\0';
	return (int)w.len;
}

/* ---- cardinality guard ------------------------------------------------ */

/* Spread the key's bits before taking the low ones as a slot index. */
static size_t slot_of(uint64_t key)
{
	key ^= key >> 33;
	key *= 0xff51afd7ed558ccdULL;
	key ^= key >> 33;
	return (size_t)(key & (ROUTE_GUARD_SLOTS - 1));
}

void route_guard_init(struct route_guard *g)
{
	memset(g, 0, sizeof(*g));
}

/* The position for key, claimed if new; NULL once the table is full. */
static struct route_guard_pos *find_pos(struct route_guard *g, uint64_t key)
{
	size_t i = slot_of(key), n;

	for (n = 0; n < ROUTE_GUARD_SLOTS; n++) {
		struct route_guard_pos *p = &g->slots[i];

		if (p->key == key)
			return p;
		if (!p->key) {
			if (g->npos >= ROUTE_GUARD_POSITIONS)
				return NULL;
			g->npos++;
			g->added++;
			p->key = key;
			return p;
		}
		i = (i + 1) & (ROUTE_GUARD_SLOTS - 1);
	}
	return NULL;
}

/* May this segment keep its name at this position? Records it if so. */
static bool admit(struct route_guard *g, uint64_t key, const char *s, size_t n)
{
	struct route_guard_pos *p = find_pos(g, key);
	uint64_t h = ks_hash_bytes(KS_HASH_SEED, s, n);
	uint32_t i;

	if (!p)
		return false;
	for (i = 0; i < p->nvalues; i++)
		if (p->values[i] == h)
			return true;
	if (p->nvalues >= ROUTE_GUARD_VALUES)
		return false;
	p->values[p->nvalues++] = h;
	g->added++;
	return true;
}

size_t route_guard_apply(struct route_guard *g, char *route, size_t len)
{
	uint64_t key = KS_HASH_SEED;
	size_t in = 0, out = 0, end;

	for (;;) {
		const char *seg = route + in;
		size_t n;

		for (end = in; end < len && route[end] != '/'; end++)
			;
		n = end - in;
		if (n && !admit(g, key ? key : 1, seg, n)) {
			seg = "*";
			n = 1;
			g->collapsed++;
		}
		memmove(route + out, seg, n);
		key = ks_hash_bytes(key, route + out, n);
		out += n;
		if (end == len)
			break;
		route[out++] = '/';
		in = end + 1;
	}
	route[out] = '\0';
	return out;
}

/* ---- memo --------------------------------------------------------------- */

/* The slot for this input in a table, and the hash that marks it. */
static struct route_memo_slot *memo_slot(struct route_memo_slot *table,
					 uint64_t seed, const char *in,
					 size_t len, uint64_t *hash)
{
	uint64_t h = ks_hash_bytes(seed, in, len);

	*hash = h | 1;
	return &table[h & (ROUTE_MEMO_SLOTS - 1)];
}

static bool memo_hit(const struct route_memo_slot *s, uint64_t h,
		     const char *in, size_t len, bool cut, size_t outsz)
{
	return s->hash == h && s->in_len == len && s->cut == cut &&
	       s->outsz == outsz && memcmp(s->in, in, len) == 0;
}

/* A hit: the remembered route, and its collapsed segments counted. */
static int memo_use(const struct route_memo_slot *s, struct route_guard *g,
		    char *out)
{
	memcpy(out, s->out, s->out_len + 1u);
	g->collapsed += s->collapsed;
	return s->out_len;
}

static void memo_keep(struct route_memo_slot *s, uint64_t h, const char *in,
		      size_t len, bool cut, size_t outsz, const char *out,
		      size_t n, uint64_t collapsed)
{
	s->hash = h;
	s->in_len = (uint16_t)len;
	s->cut = cut;
	s->outsz = (uint16_t)outsz;
	s->collapsed = (uint32_t)collapsed;
	s->out_len = (uint16_t)n;
	memcpy(s->in, in, len);
	memcpy(s->out, out, n + 1);
}

int route_memo_apply(struct route_memo *m, struct route_guard *g,
		     const char *target, size_t len, bool path_cut, char *out,
		     size_t outsz)
{
	struct route_memo_slot *t, *r;
	uint64_t th, rh, added, collapsed;
	char route[ROUTE_MEMO_OUT];
	int rlen;
	size_t n;

	if (len > ROUTE_MEMO_IN || outsz > ROUTE_MEMO_OUT) {
		rlen = http_route(target, len, path_cut, out, outsz);
		return rlen < 0 ? rlen
				: (int)route_guard_apply(g, out, (size_t)rlen);
	}
	t = memo_slot(m->targets, KS_HASH_SEED ^ (outsz << 1 | path_cut),
		      target, len, &th);
	if (memo_hit(t, th, target, len, path_cut, outsz))
		return memo_use(t, g, out);
	rlen = http_route(target, len, path_cut, out, outsz);
	if (rlen < 0)
		return rlen;
	/* Another target with the same route (another id) guards the same. */
	r = memo_slot(m->routes, KS_HASH_SEED, out, (size_t)rlen, &rh);
	if (memo_hit(r, rh, out, (size_t)rlen, false, 0)) {
		n = (size_t)memo_use(r, g, out);
		memo_keep(t, th, target, len, path_cut, outsz, out, n,
			  r->collapsed);
		return (int)n;
	}
	added = g->added;
	collapsed = g->collapsed;
	memcpy(route, out, (size_t)rlen); /* the guard rewrites out */
	n = route_guard_apply(g, out, (size_t)rlen);
	if (g->added != added)
		return (int)n; /* not final yet: the next pass may differ */
	collapsed = g->collapsed - collapsed;
	memo_keep(r, rh, route, (size_t)rlen, false, 0, out, n, collapsed);
	memo_keep(t, th, target, len, path_cut, outsz, out, n, collapsed);
	return (int)n;
}
