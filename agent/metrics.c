/*
 * metrics.c - metrics registry and Prometheus text renderer; see metrics.h.
 *
 * Layout. The registry keeps its families in a singly linked list in
 * registration order. Each family keeps its series twice: in a linked list
 * in creation order (what the renderer walks) and in a chained hash table
 * (what updates use). The table is keyed by the length-prefixed encoding of
 * the label values - each value as a 4-byte length followed by its bytes -
 * so ("a,b") and ("a", "b") can never collide as keys. Lookups hash the
 * values in place and compare them one by one, which is the same equality
 * as comparing encoded keys but costs no allocation on the hot path. The
 * table doubles when it gets as many series as buckets; since a family is
 * capped at max_series, so is the table.
 *
 * A series is one allocation: the struct, then its label value pointers,
 * then its histogram buckets, then the values' lengths, then the value
 * strings themselves. A refused label set costs nothing: it shares the
 * family's one overflow series, which sits in the creation-order list but
 * not in the hash table.
 *
 * Locking. One recursive mutex per registry. Updates are a lock, a hash,
 * and a few compares; a render holds the lock for the whole text so a
 * scrape sees a consistent snapshot. Family metadata (names, bounds) never
 * changes after creation, so its getters take no lock.
 *
 * Numbers. Prometheus parses Go's float syntax, and people read the text,
 * so values are printed as the shortest decimal that reads back to the same
 * double: integers without a point, 0.1 not 0.10000000000000001. The le
 * strings of a histogram are formatted once, when the family is created.
 */
#include "metrics.h"
#include "hash.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRIC_DEFAULT_MAX_SERIES 2000
#define METRIC_MIN_TABLE 16
#define METRIC_NUM_LEN 32 /* "-1.2345678901234567e-308" fits */
#define OVERFLOW_LABEL "otel_metric_overflow"

struct metric_series {
	struct metric_family *fam;
	struct metric_series *next;  /* creation order */
	struct metric_series *hnext; /* hash chain */
	uint64_t hash;
	const char **values; /* nlabels strings, in this allocation */
	uint32_t *lens;	     /* their lengths, in this allocation */
	uint64_t *buckets;   /* histograms: nbounds + 1, else NULL */
	double value;	     /* counters, gauges */
	double sum;	     /* histograms */
	uint64_t count;	     /* histograms */
	int overflow;
};

struct metric_family {
	struct metric_registry *reg;
	struct metric_family *next; /* registration order */
	char *name;
	char *help;
	enum metric_kind kind;
	unsigned nlabels;
	char **label_names;
	size_t *lens; /* nlabels: the lengths of the values being looked up */
	unsigned nbounds;
	double *bounds;
	char (*le)[METRIC_NUM_LEN]; /* bounds as rendered */
	struct metric_series *first, *last;
	struct metric_series **table;
	unsigned table_size; /* power of two; 0 until first series */
	unsigned nseries;    /* not counting the overflow series */
	struct metric_series *overflow;
	struct metric_series *recent; /* what the last lookup found */
};

struct metric_registry {
	pthread_mutex_t lock;
	unsigned max_series;
	uint64_t overflows;
	struct metric_family *first, *last;
};

/* ---- numbers ---- */

/* Shortest decimal that strtod() reads back as v; see the top comment. */
static void format_double(char buf[METRIC_NUM_LEN], double v)
{
	int p;

	if (isnan(v)) {
		strcpy(buf, "NaN");
		return;
	}
	if (isinf(v)) {
		strcpy(buf, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (v == 0) {
		strcpy(buf, "0");
		return;
	}
	/* Below 2^53 every integer is exact, so print all its digits. */
	if (fabs(v) < 9007199254740992.0 && v == trunc(v)) {
		snprintf(buf, METRIC_NUM_LEN, "%.0f", v);
		return;
	}
	for (p = 1; p < 17; p++) {
		snprintf(buf, METRIC_NUM_LEN, "%.*g", p, v);
		if (strtod(buf, NULL) == v)
			return;
	}
	snprintf(buf, METRIC_NUM_LEN, "%.17g", v);
}

static void put_double(struct strbuf *out, double v)
{
	char buf[METRIC_NUM_LEN];

	format_double(buf, v);
	sb_puts(out, buf);
}

/* ---- names ---- */

static int is_alpha_(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* */
static int valid_metric_name(const char *s)
{
	if (!s || !*s || is_digit(*s))
		return 0;
	for (; *s; s++)
		if (!is_alpha_(*s) && !is_digit(*s) && *s != ':')
			return 0;
	return 1;
}

/* [a-zA-Z_][a-zA-Z0-9_]*, minus the reserved __ prefix. */
static int valid_label_name(const char *s)
{
	if (!s || !*s || is_digit(*s) || strncmp(s, "__", 2) == 0)
		return 0;
	for (; *s; s++)
		if (!is_alpha_(*s) && !is_digit(*s))
			return 0;
	return 1;
}

static int valid_labels(const char *const *names, enum metric_kind kind)
{
	unsigned i, j;

	for (i = 0; names && names[i]; i++) {
		if (!valid_label_name(names[i]) ||
		    strcmp(names[i], OVERFLOW_LABEL) == 0)
			return 0;
		if (kind == METRIC_HISTOGRAM && strcmp(names[i], "le") == 0)
			return 0;
		for (j = 0; j < i; j++)
			if (strcmp(names[i], names[j]) == 0)
				return 0;
	}
	return 1;
}

static int valid_bounds(const double *bounds, unsigned n)
{
	unsigned i;

	if (n && !bounds)
		return 0;
	for (i = 0; i < n; i++) {
		if (!isfinite(bounds[i]))
			return 0;
		if (i && !(bounds[i - 1] < bounds[i]))
			return 0;
	}
	return 1;
}

/* ---- registry ---- */

struct metric_registry *metric_registry_new(unsigned max_series_per_family)
{
	struct metric_registry *r;
	pthread_mutexattr_t attr;

	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->max_series = max_series_per_family ? max_series_per_family
					      : METRIC_DEFAULT_MAX_SERIES;
	if (pthread_mutexattr_init(&attr))
		goto out_free;
	if (pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE) ||
	    pthread_mutex_init(&r->lock, &attr)) {
		pthread_mutexattr_destroy(&attr);
		goto out_free;
	}
	pthread_mutexattr_destroy(&attr);
	return r;

out_free:
	free(r);
	return NULL;
}

static void free_series_list(struct metric_family *f)
{
	struct metric_series *s, *next;

	for (s = f->first; s; s = next) {
		next = s->next;
		free(s);
	}
	f->first = f->last = NULL;
	f->overflow = NULL;
	f->recent = NULL;
	f->nseries = 0;
	if (f->table)
		memset(f->table, 0, f->table_size * sizeof(*f->table));
}

static void family_free(struct metric_family *f)
{
	unsigned i;

	if (!f)
		return;
	free_series_list(f);
	free(f->table);
	for (i = 0; f->label_names && i < f->nlabels; i++)
		free(f->label_names[i]);
	free(f->label_names);
	free(f->lens);
	free(f->bounds);
	free(f->le);
	free(f->help);
	free(f->name);
	free(f);
}

void metric_registry_free(struct metric_registry *r)
{
	struct metric_family *f, *next;

	if (!r)
		return;
	for (f = r->first; f; f = next) {
		next = f->next;
		family_free(f);
	}
	pthread_mutex_destroy(&r->lock);
	free(r);
}

void metric_registry_lock(struct metric_registry *r)
{
	pthread_mutex_lock(&r->lock);
}

void metric_registry_unlock(struct metric_registry *r)
{
	pthread_mutex_unlock(&r->lock);
}

uint64_t metric_registry_overflows(struct metric_registry *r)
{
	uint64_t n;

	metric_registry_lock(r);
	n = r->overflows;
	metric_registry_unlock(r);
	return n;
}

/* ---- families ---- */

static int copy_labels(struct metric_family *f, const char *const *names)
{
	unsigned n = 0, i;

	while (names && names[n])
		n++;
	if (!n)
		return 0;
	f->label_names = calloc(n, sizeof(*f->label_names));
	f->lens = calloc(n, sizeof(*f->lens));
	if (!f->label_names || !f->lens)
		return -1;
	f->nlabels = n;
	for (i = 0; i < n; i++) {
		f->label_names[i] = strdup(names[i]);
		if (!f->label_names[i])
			return -1;
	}
	return 0;
}

static int copy_bounds(struct metric_family *f, const double *bounds,
		       unsigned n)
{
	unsigned i;

	if (f->kind != METRIC_HISTOGRAM || !n)
		return 0;
	f->bounds = malloc(n * sizeof(*f->bounds));
	f->le = malloc(n * sizeof(*f->le));
	if (!f->bounds || !f->le)
		return -1;
	memcpy(f->bounds, bounds, n * sizeof(*f->bounds));
	for (i = 0; i < n; i++)
		format_double(f->le[i], bounds[i]);
	f->nbounds = n;
	return 0;
}

static struct metric_family *find_family(struct metric_registry *r,
					 const char *name)
{
	struct metric_family *f;

	for (f = r->first; f; f = f->next)
		if (strcmp(f->name, name) == 0)
			return f;
	return NULL;
}

static struct metric_family *
family_build(const char *name, enum metric_kind kind, const char *help,
	     const char *const *label_names, const double *bounds,
	     unsigned nbounds)
{
	struct metric_family *f;

	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->kind = kind;
	f->name = strdup(name);
	f->help = strdup(help ? help : "");
	if (!f->name || !f->help || copy_labels(f, label_names) ||
	    copy_bounds(f, bounds, nbounds)) {
		family_free(f);
		return NULL;
	}
	return f;
}

struct metric_family *metric_family_new(struct metric_registry *r,
					const char *name, enum metric_kind kind,
					const char *help,
					const char *const *label_names,
					const double *bounds, unsigned nbounds)
{
	struct metric_family *f;

	if (!r || !valid_metric_name(name) || kind > METRIC_HISTOGRAM ||
	    !valid_labels(label_names, kind))
		return NULL;
	if (kind == METRIC_HISTOGRAM && !valid_bounds(bounds, nbounds))
		return NULL;
	f = family_build(name, kind, help, label_names, bounds, nbounds);
	if (!f)
		return NULL;

	metric_registry_lock(r);
	if (find_family(r, name)) {
		metric_registry_unlock(r);
		family_free(f);
		return NULL;
	}
	f->reg = r;
	if (r->last)
		r->last->next = f;
	else
		r->first = f;
	r->last = f;
	metric_registry_unlock(r);
	return f;
}

void metric_family_reset(struct metric_family *f)
{
	metric_registry_lock(f->reg);
	free_series_list(f);
	metric_registry_unlock(f->reg);
}

/* ---- series lookup ---- */

static const char *value_at(const char *const *values, unsigned i)
{
	const char *v = values ? values[i] : NULL;

	return v ? v : "";
}

static uint64_t load64(const char *p)
{
	uint64_t w;

	memcpy(&w, p, 8);
	return w;
}

static uint64_t load32(const char *p)
{
	uint32_t w;

	memcpy(&w, p, 4);
	return w;
}

/*
 * One value's hash, its length included: whole words, the last one
 * overlapping the one before it; a short value as two overlapping halves
 * (or three bytes). No byte loop, and one multiply for most label values.
 * Equal hashes are compared in full, so this only has to spread.
 */
static uint64_t value_hash(const char *v, size_t n)
{
	uint64_t h = KS_HASH_SEED ^ n, w = 0;
	size_t i;

	if (n >= 8) {
		for (i = 0; i + 8 < n; i += 8)
			h = ks_hash_mix(h, load64(v + i));
		w = load64(v + n - 8);
	} else if (n >= 4) {
		w = load32(v) << 32 | load32(v + n - 4);
	} else if (n) {
		w = (uint64_t)(unsigned char)v[0] << 16 |
		    (uint64_t)(unsigned char)v[n / 2] << 8 |
		    (unsigned char)v[n - 1];
	}
	return ks_hash_mix(h, w);
}

/*
 * Hash of the values, whose lengths are in f->lens. Each value is hashed on
 * its own and then folded in: the multiplies of different values overlap
 * instead of waiting on each other.
 */
static uint64_t hash_values(struct metric_family *f, const char *const *values)
{
	uint64_t h = KS_HASH_SEED;
	unsigned i;

	for (i = 0; i < f->nlabels; i++)
		h = ks_hash_mix(h, value_hash(value_at(values, i), f->lens[i]));
	return h ^ (h >> 32);
}

/* n bytes of a and b equal? Words as in value_hash(), and no call. */
static int bytes_equal(const char *a, const char *b, size_t n)
{
	size_t i;

	if (n >= 8) {
		for (i = 0; i + 8 < n; i += 8)
			if (load64(a + i) != load64(b + i))
				return 0;
		return load64(a + n - 8) == load64(b + n - 8);
	}
	if (n >= 4)
		return load32(a) == load32(b) &&
		       load32(a + n - 4) == load32(b + n - 4);
	for (i = 0; i < n; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
}

/* Same values as the ones hash_values() measured last? */
static int series_matches(const struct metric_family *f,
			  const struct metric_series *s,
			  const char *const *values)
{
	unsigned i;

	for (i = 0; i < f->nlabels; i++)
		if (s->lens[i] != f->lens[i] ||
		    !bytes_equal(s->values[i], value_at(values, i), f->lens[i]))
			return 0;
	return 1;
}

static struct metric_series *
find_series(struct metric_family *f, const char *const *values, uint64_t hash)
{
	struct metric_series *s;

	if (!f->table_size)
		return NULL;
	for (s = f->table[hash & (f->table_size - 1)]; s; s = s->hnext)
		if (s->hash == hash && series_matches(f, s, values))
			return s;
	return NULL;
}

static int table_grow(struct metric_family *f)
{
	unsigned size = f->table_size ? f->table_size * 2 : METRIC_MIN_TABLE;
	struct metric_series **t, *s;
	unsigned idx;

	t = calloc(size, sizeof(*t));
	if (!t)
		return -1;
	for (s = f->first; s; s = s->next) {
		if (s->overflow)
			continue;
		idx = (unsigned)(s->hash & (size - 1));
		s->hnext = t[idx];
		t[idx] = s;
	}
	free(f->table);
	f->table = t;
	f->table_size = size;
	return 0;
}

/* One allocation: struct, value pointers, buckets, value strings. */
static struct metric_series *series_alloc(struct metric_family *f,
					  const char *const *values)
{
	size_t ptrs = f->nlabels * (sizeof(char *) + sizeof(uint32_t));
	size_t nbuck = f->kind == METRIC_HISTOGRAM ? f->nbounds + 1 : 0;
	size_t size =
	    sizeof(struct metric_series) + ptrs + nbuck * sizeof(uint64_t);
	struct metric_series *s;
	char *p;
	unsigned i;

	for (i = 0; i < f->nlabels; i++)
		size += strlen(value_at(values, i)) + 1;
	s = calloc(1, size);
	if (!s)
		return NULL;
	s->fam = f;
	s->values = (const char **)(s + 1);
	p = (char *)(s + 1) + f->nlabels * sizeof(char *);
	if (nbuck) {
		s->buckets = (uint64_t *)p;
		p += nbuck * sizeof(uint64_t);
	}
	s->lens = (uint32_t *)p;
	p += f->nlabels * sizeof(uint32_t);
	for (i = 0; i < f->nlabels; i++) {
		const char *v = value_at(values, i);
		size_t len = strlen(v) + 1;

		memcpy(p, v, len);
		s->values[i] = p;
		s->lens[i] = (uint32_t)(len - 1);
		p += len;
	}
	return s;
}

static void append_series(struct metric_family *f, struct metric_series *s)
{
	if (f->last)
		f->last->next = s;
	else
		f->first = s;
	f->last = s;
}

static struct metric_series *
add_series(struct metric_family *f, const char *const *values, uint64_t hash)
{
	struct metric_series *s;
	unsigned idx;

	/* A failed grow of a live table only means longer chains. */
	if (f->nseries >= f->table_size && table_grow(f) && !f->table_size)
		return NULL;
	s = series_alloc(f, values);
	if (!s)
		return NULL;
	s->hash = hash;
	idx = (unsigned)(hash & (f->table_size - 1));
	s->hnext = f->table[idx];
	f->table[idx] = s;
	append_series(f, s);
	f->nseries++;
	return s;
}

static struct metric_series *overflow_series(struct metric_family *f)
{
	struct metric_series *s;

	f->reg->overflows++;
	if (f->overflow)
		return f->overflow;
	s = series_alloc(f, NULL);
	if (!s)
		return NULL;
	s->overflow = 1;
	append_series(f, s);
	f->overflow = s;
	return s;
}

/*
 * Updates come in runs of one label set (a busy route, one peer), so the
 * series found last is tried before hashing. The values' lengths, measured
 * first, serve both and end most compares with another label set early.
 */
static struct metric_series *series_get_locked(struct metric_family *f,
					       const char *const *values)
{
	struct metric_series *s = f->recent;
	uint64_t hash;
	unsigned i;

	for (i = 0; i < f->nlabels; i++)
		f->lens[i] = strlen(value_at(values, i));
	if (s && series_matches(f, s, values))
		return s;
	hash = hash_values(f, values);
	s = find_series(f, values, hash);
	if (!s && f->nseries >= f->reg->max_series)
		return overflow_series(f);
	if (!s)
		s = add_series(f, values, hash);
	if (s)
		f->recent = s;
	return s;
}

struct metric_series *metric_series_get(struct metric_family *f,
					const char *const *values)
{
	struct metric_series *s;

	if (!f)
		return NULL;
	metric_registry_lock(f->reg);
	s = series_get_locked(f, values);
	metric_registry_unlock(f->reg);
	return s;
}

/* ---- updates ---- */

static void counter_add_locked(struct metric_series *s, double v)
{
	if (v >= 0 && s->fam->kind != METRIC_HISTOGRAM)
		s->value += v;
}

static void gauge_set_locked(struct metric_series *s, double v)
{
	if (s->fam->kind != METRIC_HISTOGRAM)
		s->value = v;
}

/*
 * Index of the first bound >= v; nbounds (the +Inf bucket) if none. A scan
 * from the lowest bound: a dozen bounds, most values in the first few
 * buckets, and no chain of dependent loads as in a binary search.
 */
static unsigned bucket_index(const struct metric_family *f, double v)
{
	unsigned i;

	if (isnan(v))
		return f->nbounds;
	for (i = 0; i < f->nbounds && f->bounds[i] < v; i++)
		;
	return i;
}

static void hist_observe_locked(struct metric_series *s, double v)
{
	if (s->fam->kind != METRIC_HISTOGRAM)
		return;
	s->buckets[bucket_index(s->fam, v)]++;
	s->count++;
	s->sum += v;
}

void metric_counter_add(struct metric_series *s, double v)
{
	if (!s)
		return;
	metric_registry_lock(s->fam->reg);
	counter_add_locked(s, v);
	metric_registry_unlock(s->fam->reg);
}

void metric_gauge_set(struct metric_series *s, double v)
{
	if (!s)
		return;
	metric_registry_lock(s->fam->reg);
	gauge_set_locked(s, v);
	metric_registry_unlock(s->fam->reg);
}

void metric_hist_observe(struct metric_series *s, double v)
{
	if (!s)
		return;
	metric_registry_lock(s->fam->reg);
	hist_observe_locked(s, v);
	metric_registry_unlock(s->fam->reg);
}

void metric_hist_add_buckets(struct metric_series *s, const uint64_t *counts,
			     double sum)
{
	unsigned i;

	if (!s || !counts || s->fam->kind != METRIC_HISTOGRAM)
		return;
	metric_registry_lock(s->fam->reg);
	for (i = 0; i <= s->fam->nbounds; i++) {
		s->buckets[i] += counts[i];
		s->count += counts[i];
	}
	s->sum += sum;
	metric_registry_unlock(s->fam->reg);
}

void metric_add(struct metric_family *f, const char *const *values, double v)
{
	struct metric_series *s;

	if (!f)
		return;
	metric_registry_lock(f->reg);
	s = series_get_locked(f, values);
	if (s)
		counter_add_locked(s, v);
	metric_registry_unlock(f->reg);
}

void metric_set(struct metric_family *f, const char *const *values, double v)
{
	struct metric_series *s;

	if (!f)
		return;
	metric_registry_lock(f->reg);
	s = series_get_locked(f, values);
	if (s)
		gauge_set_locked(s, v);
	metric_registry_unlock(f->reg);
}

void metric_observe(struct metric_family *f, const char *const *values,
		    double v)
{
	struct metric_series *s;

	if (!f)
		return;
	metric_registry_lock(f->reg);
	s = series_get_locked(f, values);
	if (s)
		hist_observe_locked(s, v);
	metric_registry_unlock(f->reg);
}

/* ---- Prometheus text ---- */

static const char *kind_name(enum metric_kind kind)
{
	switch (kind) {
	case METRIC_COUNTER:
		return "counter";
	case METRIC_GAUGE:
		return "gauge";
	default:
		return "histogram";
	}
}

/* HELP text escapes only \ and newline; label values also escape ". */
static void put_escaped(struct strbuf *out, const char *s, int quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			sb_puts(out, "\\\\");
		else if (*s == '\n')
			sb_puts(out, "\\n");
		else if (*s == '"' && quote)
			sb_puts(out, "\\\"");
		else
			sb_putc(out, *s);
	}
}

/* {a="x",b="y",le="0.5"}, or nothing at all when there are no labels. */
static void put_labels(struct strbuf *out, const struct metric_family *f,
		       const struct metric_series *s, const char *le)
{
	int any = 0;
	unsigned i;

	if (s->overflow) {
		sb_puts(out, "{" OVERFLOW_LABEL "=\"true\"");
		any = 1;
	} else {
		for (i = 0; i < f->nlabels; i++) {
			sb_putc(out, any ? ',' : '{');
			sb_puts(out, f->label_names[i]);
			sb_puts(out, "=\"");
			put_escaped(out, s->values[i], 1);
			sb_putc(out, '"');
			any = 1;
		}
	}
	if (le) {
		sb_putc(out, any ? ',' : '{');
		sb_printf(out, "le=\"%s\"", le);
		any = 1;
	}
	if (any)
		sb_putc(out, '}');
}

/* The start of a sample line: name, suffix, labels and the space. */
static void put_sample_head(struct strbuf *out, const struct metric_family *f,
			    const struct metric_series *s, const char *suffix,
			    const char *le)
{
	sb_puts(out, f->name);
	sb_puts(out, suffix);
	put_labels(out, f, s, le);
	sb_putc(out, ' ');
}

static void render_histogram(struct strbuf *out, const struct metric_family *f,
			     const struct metric_series *s)
{
	uint64_t cum = 0;
	unsigned i;

	for (i = 0; i <= f->nbounds; i++) {
		cum += s->buckets[i];
		put_sample_head(out, f, s, "_bucket",
				i < f->nbounds ? f->le[i] : "+Inf");
		sb_printf(out, "%" PRIu64 "\n", cum);
	}
	put_sample_head(out, f, s, "_sum", NULL);
	put_double(out, s->sum);
	sb_putc(out, '\n');
	put_sample_head(out, f, s, "_count", NULL);
	sb_printf(out, "%" PRIu64 "\n", s->count);
}

static void render_family(struct strbuf *out, const struct metric_family *f)
{
	const struct metric_series *s;

	sb_printf(out, "# HELP %s ", f->name);
	put_escaped(out, f->help, 0);
	sb_printf(out, "\n# TYPE %s %s\n", f->name, kind_name(f->kind));
	for (s = f->first; s; s = s->next) {
		if (f->kind == METRIC_HISTOGRAM) {
			render_histogram(out, f, s);
			continue;
		}
		put_sample_head(out, f, s, "", NULL);
		put_double(out, s->value);
		sb_putc(out, '\n');
	}
}

void metric_render_prometheus(struct metric_registry *r, struct strbuf *out)
{
	const struct metric_family *f;

	metric_registry_lock(r);
	for (f = r->first; f; f = f->next)
		render_family(out, f);
	metric_registry_unlock(r);
}

/* ---- read access ---- */

void metric_registry_foreach(struct metric_registry *r, metric_series_fn fn,
			     void *arg)
{
	const struct metric_family *f;
	const struct metric_series *s;

	metric_registry_lock(r);
	for (f = r->first; f; f = f->next)
		for (s = f->first; s; s = s->next)
			fn(f, s, arg);
	metric_registry_unlock(r);
}

const char *metric_family_name(const struct metric_family *f)
{
	return f->name;
}

const char *metric_family_help(const struct metric_family *f)
{
	return f->help;
}

enum metric_kind metric_family_kind(const struct metric_family *f)
{
	return f->kind;
}

unsigned metric_family_nlabels(const struct metric_family *f)
{
	return f->nlabels;
}

const char *metric_family_label_name(const struct metric_family *f, unsigned i)
{
	return i < f->nlabels ? f->label_names[i] : NULL;
}

const double *metric_family_bounds(const struct metric_family *f,
				   unsigned *nbounds)
{
	if (nbounds)
		*nbounds = f->nbounds;
	return f->bounds;
}

const char *metric_series_label_value(const struct metric_series *s, unsigned i)
{
	return i < s->fam->nlabels ? s->values[i] : NULL;
}

int metric_series_is_overflow(const struct metric_series *s)
{
	return s->overflow;
}

double metric_series_value(const struct metric_series *s)
{
	return s->value;
}

const uint64_t *metric_series_buckets(const struct metric_series *s)
{
	return s->buckets;
}

uint64_t metric_series_count(const struct metric_series *s)
{
	return s->count;
}

double metric_series_sum(const struct metric_series *s)
{
	return s->sum;
}
