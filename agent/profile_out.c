/*
 * profile_out.c - pprof, folded stacks and SVG flame graphs from symbolized
 * samples; see profile_out.h for the formats.
 *
 * All three start from the same question, "what is this frame called", and
 * answer it in one place (frame_display) so a stack reads the same in every
 * output. Unsymbolized frames borrow their module's name in brackets; those
 * few synthesized strings are interned once per call in a small owning
 * string table, everything else is borrowed from the caller.
 *
 * pprof: strings, functions and mappings are deduplicated through
 * open-addressing hash tables (strings by content, functions by the pair of
 * string indexes, mappings by the module's index). The protobuf-c message
 * tree is then built in a handful of exact-size arrays, packed once and
 * gzipped in a single deflate call, so memory is a small multiple of the
 * output.
 *
 * Folded: each sample becomes its line text in one scratch buffer; sorting
 * the lines makes equal stacks adjacent, so merging is a linear pass.
 *
 * Flame graph: samples are merged into a tree (a node per distinct path from
 * the root), keyed in a hash table by (parent, name, module). Nodes are
 * created after their parent, so one pass in creation order can lay
 * children out left to right (sorted by name) without recursion, however
 * deep the stacks are. The SVG carries each frame's offset, value and depth
 * as attributes; the embedded script only rescales those for zoom and
 * re-clips labels with the same rule the C side used, so the file is
 * readable without scripts and interactive with them.
 */
#include "profile_out.h"
#include "hash.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "profile.pb-c.h"

/* ---- hashing and interning ---------------------------------------------- */

static uint64_t hash_str(const char *s)
{
	return ks_hash_str(KS_HASH_SEED, s);
}

static uint64_t hash_mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

/* Grow *p (elements of size elem) so it holds at least need; 0 or -ENOMEM. */
static int grow(void *pp, size_t *cap, size_t need, size_t elem)
{
	void **p = pp;
	size_t ncap = *cap ? *cap : 16;
	void *np;

	if (need <= *cap)
		return 0;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2 / elem)
			return -ENOMEM;
		ncap *= 2;
	}
	np = realloc(*p, ncap * elem);
	if (!np)
		return -ENOMEM;
	*p = np;
	*cap = ncap;
	return 0;
}

/*
 * A string table: index -> string, plus a hash index by content. Strings
 * are borrowed unless interned with copy set; copies are freed with the
 * table.
 */
struct strtab {
	char **strs;
	bool *owned;
	size_t n, cap, owned_cap;
	uint32_t *slots; /* index + 1; 0 is empty */
	size_t nslots;   /* power of two, kept at most half full */
};

static void st_free(struct strtab *t)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (t->owned[i])
			free(t->strs[i]);
	free(t->strs);
	free(t->owned);
	free(t->slots);
	memset(t, 0, sizeof(*t));
}

static int st_rehash(struct strtab *t)
{
	size_t nslots = t->nslots ? t->nslots * 2 : 64, i, j;
	uint32_t *slots = calloc(nslots, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	for (i = 0; i < t->n; i++) {
		j = hash_str(t->strs[i]) & (nslots - 1);
		while (slots[j])
			j = (j + 1) & (nslots - 1);
		slots[j] = (uint32_t)(i + 1);
	}
	free(t->slots);
	t->slots = slots;
	t->nslots = nslots;
	return 0;
}

static int st_intern(struct strtab *t, const char *s, bool copy, uint32_t *idx)
{
	size_t j;
	char *str;

	if (t->n + 1 > t->nslots / 2 && st_rehash(t))
		return -ENOMEM;
	j = hash_str(s) & (t->nslots - 1);
	for (; t->slots[j]; j = (j + 1) & (t->nslots - 1)) {
		if (!strcmp(t->strs[t->slots[j] - 1], s)) {
			*idx = t->slots[j] - 1;
			return 0;
		}
	}
	if (t->n >= UINT32_MAX - 1)
		return -ENOMEM;
	if (grow(&t->strs, &t->cap, t->n + 1, sizeof(*t->strs)) ||
	    grow(&t->owned, &t->owned_cap, t->n + 1, sizeof(*t->owned)))
		return -ENOMEM;
	str = copy ? strdup(s) : (char *)s;
	if (!str)
		return -ENOMEM;
	t->strs[t->n] = str;
	t->owned[t->n] = copy;
	t->slots[j] = (uint32_t)(t->n + 1);
	*idx = (uint32_t)t->n++;
	return 0;
}

/* A uint64 -> nonzero uint32 map (0 means absent), for function/mapping ids. */
struct idmap {
	uint64_t *keys;
	uint32_t *vals;
	size_t n, nslots;
};

static void idmap_free(struct idmap *m)
{
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}

static uint32_t *idmap_slot(struct idmap *m, uint64_t key)
{
	size_t j = hash_mix(key) & (m->nslots - 1);

	while (m->vals[j] && m->keys[j] != key)
		j = (j + 1) & (m->nslots - 1);
	m->keys[j] = key;
	return &m->vals[j];
}

/* The value slot for key, created (as 0) if missing; NULL on ENOMEM. */
static uint32_t *idmap_get(struct idmap *m, uint64_t key)
{
	uint32_t *slot;

	if (m->n + 1 > m->nslots / 2) {
		struct idmap nm = { .nslots = m->nslots ? m->nslots * 2 : 64 };
		size_t i;

		nm.keys = calloc(nm.nslots, sizeof(*nm.keys));
		nm.vals = calloc(nm.nslots, sizeof(*nm.vals));
		if (!nm.keys || !nm.vals) {
			idmap_free(&nm);
			return NULL;
		}
		for (i = 0; i < m->nslots; i++)
			if (m->vals[i])
				*idmap_slot(&nm, m->keys[i]) = m->vals[i];
		nm.n = m->n;
		idmap_free(m);
		*m = nm;
	}
	slot = idmap_slot(m, key);
	if (!*slot)
		m->n++; /* claimed; the caller stores the id */
	return slot;
}

/* ---- frame names ---------------------------------------------------------- */

static bool name_unknown(const char *name)
{
	return !name || !*name || !strcmp(name, "[unknown]");
}

static const char *frame_module(const struct prof_frame *f)
{
	return f->module && *f->module ? f->module : NULL;
}

/* Synthesized "[module]" names, owned for the duration of one call. */
struct namer {
	struct strtab bracketed;
	struct strbuf scratch;
};

static void namer_free(struct namer *nm)
{
	st_free(&nm->bracketed);
	sb_free(&nm->scratch);
}

/*
 * What a frame is called everywhere: its name; else its module when that
 * is already bracketed ("[kernel]", "[jit]"); else "[module]"; else
 * "[unknown]". The result lives until the namer is freed. NULL on ENOMEM.
 */
static const char *frame_display(struct namer *nm, const struct prof_frame *f)
{
	const char *mod = frame_module(f);
	uint32_t idx;

	if (!name_unknown(f->name))
		return f->name;
	if (!mod)
		return "[unknown]";
	if (mod[0] == '[' && mod[strlen(mod) - 1] == ']')
		return mod;
	sb_reset(&nm->scratch);
	sb_printf(&nm->scratch, "[%s]", mod);
	if (nm->scratch.oom ||
	    st_intern(&nm->bracketed, nm->scratch.buf, true, &idx))
		return NULL;
	return nm->bracketed.strs[idx];
}

/* The frame standing for a sample that has no stack at all. */
static const struct prof_frame no_stack = { NULL, NULL };

static void sample_frames(const struct prof_sample *s,
			  const struct prof_frame **frames, unsigned *n)
{
	if (s->nframes && s->frames) {
		*frames = s->frames;
		*n = s->nframes;
	} else {
		*frames = &no_stack;
		*n = 1;
	}
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static int64_t i64_sat(uint64_t v)
{
	return v > INT64_MAX ? INT64_MAX : (int64_t)v;
}

/* ---- pprof ---------------------------------------------------------------- */

struct pp_func {
	uint32_t name, module; /* string indexes */
	uint32_t mapping_id;   /* 0: no module */
};

struct pp_state {
	struct strtab strings;
	struct namer names;
	struct idmap func_ids; /* (name << 32 | module) -> function id */
	struct idmap map_ids;  /* module string index -> mapping id */
	struct pp_func *funcs;
	size_t nfuncs, funcs_cap;
	uint32_t *map_files; /* mapping id - 1 -> filename string index */
	size_t nmaps, maps_cap;

	/* the message tree, exact-size arrays */
	Perftools__Profiles__Sample *samples, **sample_ptrs;
	Perftools__Profiles__Label *labels, **label_ptrs;
	uint64_t *loc_ids;
	int64_t *values;
	Perftools__Profiles__Function *fn, **fn_ptrs;
	Perftools__Profiles__Location *loc, **loc_ptrs;
	Perftools__Profiles__Line *line, **line_ptrs;
	Perftools__Profiles__Mapping *map, **map_ptrs;
	uint8_t *packed;
};

static void pp_free(struct pp_state *st)
{
	st_free(&st->strings);
	namer_free(&st->names);
	idmap_free(&st->func_ids);
	idmap_free(&st->map_ids);
	free(st->funcs);
	free(st->map_files);
	free(st->samples);
	free(st->sample_ptrs);
	free(st->labels);
	free(st->label_ptrs);
	free(st->loc_ids);
	free(st->values);
	free(st->fn);
	free(st->fn_ptrs);
	free(st->loc);
	free(st->loc_ptrs);
	free(st->line);
	free(st->line_ptrs);
	free(st->map);
	free(st->map_ptrs);
	free(st->packed);
}

static int pp_str(struct pp_state *st, const char *s, int64_t *idx)
{
	uint32_t i;
	int err = st_intern(&st->strings, s, false, &i);

	*idx = i;
	return err;
}

/* The function (and location: same id) for a frame; 0 on ENOMEM. */
static uint32_t pp_function(struct pp_state *st, const struct prof_frame *f)
{
	const char *disp = frame_display(&st->names, f);
	const char *mod = frame_module(f);
	uint32_t name, module = 0, *id, *map_id;

	if (!disp || st_intern(&st->strings, disp, false, &name))
		return 0;
	if (mod && st_intern(&st->strings, mod, false, &module))
		return 0;
	id = idmap_get(&st->func_ids, (uint64_t)name << 32 | module);
	if (!id)
		return 0;
	if (*id)
		return *id;
	if (grow(&st->funcs, &st->funcs_cap, st->nfuncs + 1,
		 sizeof(*st->funcs)))
		return 0;
	st->funcs[st->nfuncs] = (struct pp_func){ name, module, 0 };
	if (mod) {
		map_id = idmap_get(&st->map_ids, module);
		if (!map_id)
			return 0;
		if (!*map_id) {
			if (grow(&st->map_files, &st->maps_cap, st->nmaps + 1,
				 sizeof(*st->map_files)))
				return 0;
			st->map_files[st->nmaps++] = module;
			*map_id = (uint32_t)st->nmaps;
		}
		st->funcs[st->nfuncs].mapping_id = *map_id;
	}
	/*
	 * Write the id last: a failure above leaves the slot at 0 (absent),
	 * though the whole encode is abandoned on failure anyway.
	 */
	*id = (uint32_t)++st->nfuncs;
	return *id;
}

/* calloc that never returns NULL for a zero count (empty profiles) */
static void *pp_calloc(size_t n, size_t size)
{
	return calloc(n ? n : 1, size);
}

#define PP_ALLOC(ptr, n) ((ptr) = pp_calloc((n), sizeof(*(ptr))))

static int pp_build_tables(struct pp_state *st, Perftools__Profiles__Profile *p)
{
	size_t i, nf = st->nfuncs, nm = st->nmaps;

	if (!PP_ALLOC(st->fn, nf) || !PP_ALLOC(st->fn_ptrs, nf) ||
	    !PP_ALLOC(st->loc, nf) || !PP_ALLOC(st->loc_ptrs, nf) ||
	    !PP_ALLOC(st->line, nf) || !PP_ALLOC(st->line_ptrs, nf) ||
	    !PP_ALLOC(st->map, nm) || !PP_ALLOC(st->map_ptrs, nm))
		return -ENOMEM;
	for (i = 0; i < nf; i++) {
		perftools__profiles__function__init(&st->fn[i]);
		st->fn[i].id = i + 1;
		st->fn[i].name = st->funcs[i].name;
		st->fn[i].system_name = st->funcs[i].name;
		st->fn_ptrs[i] = &st->fn[i];

		perftools__profiles__line__init(&st->line[i]);
		st->line[i].function_id = i + 1;
		st->line_ptrs[i] = &st->line[i];

		perftools__profiles__location__init(&st->loc[i]);
		st->loc[i].id = i + 1;
		st->loc[i].mapping_id = st->funcs[i].mapping_id;
		st->loc[i].n_line = 1;
		st->loc[i].line = &st->line_ptrs[i];
		st->loc_ptrs[i] = &st->loc[i];
	}
	for (i = 0; i < nm; i++) {
		perftools__profiles__mapping__init(&st->map[i]);
		st->map[i].id = i + 1;
		st->map[i].filename = st->map_files[i];
		st->map[i].has_functions = 1;
		st->map_ptrs[i] = &st->map[i];
	}
	p->n_function = nf;
	p->function = st->fn_ptrs;
	p->n_location = nf;
	p->location = st->loc_ptrs;
	p->n_mapping = nm;
	p->mapping = st->map_ptrs;
	return 0;
}

static int gzip_buf(const uint8_t *in, size_t len, uint8_t **out,
		    size_t *out_len)
{
	z_stream z;
	uLong bound;
	uint8_t *buf;
	int rc;

	if (len > UINT_MAX / 2)
		return -EFBIG;
	memset(&z, 0, sizeof(z));
	/* windowBits 15 + 16: a gzip header and trailer, as pprof expects */
	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	bound = deflateBound(&z, (uLong)len);
	buf = malloc(bound);
	if (!buf) {
		deflateEnd(&z);
		return -ENOMEM;
	}
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)len;
	z.next_out = buf;
	z.avail_out = (uInt)bound;
	rc = deflate(&z, Z_FINISH);
	*out_len = z.total_out;
	deflateEnd(&z);
	if (rc != Z_STREAM_END) {
		free(buf);
		return rc == Z_MEM_ERROR ? -ENOMEM : -EIO;
	}
	*out = buf;
	return 0;
}

int pprof_encode(const struct prof_sample *s, size_t n,
		 const struct prof_meta *m, uint8_t **out, size_t *out_len)
{
	Perftools__Profiles__Profile p = PERFTOOLS__PROFILES__PROFILE__INIT;
	Perftools__Profiles__ValueType vt[2], *vt_ptrs[2], period_type;
	int64_t s_empty, s_samples, s_count, s_type, s_unit, s_pid, s_service;
	struct pp_state st;
	size_t i, j, nsamp = 0, nloc = 0, nlab = 0, packed_len;
	bool cpu;
	int err;

	if (!out || !out_len || !m || !m->sample_type || (n && !s))
		return -EINVAL;
	*out = NULL;
	*out_len = 0;
	cpu = !strcmp(m->sample_type, "cpu");
	if (!cpu && strcmp(m->sample_type, "off_cpu"))
		return -EINVAL;
	if (cpu && m->period <= 0)
		return -EINVAL;

	memset(&st, 0, sizeof(st));
	err = -ENOMEM;
	/* string_table[0] must be "" */
	if (pp_str(&st, "", &s_empty) || pp_str(&st, "samples", &s_samples) ||
	    pp_str(&st, "count", &s_count) ||
	    pp_str(&st, m->sample_type, &s_type) ||
	    pp_str(&st, m->unit ? m->unit : "nanoseconds", &s_unit) ||
	    pp_str(&st, "pid", &s_pid) ||
	    pp_str(&st, "service_name", &s_service))
		goto out;

	for (i = 0; i < n; i++) {
		if (!s[i].value)
			continue;
		if (s[i].frames && nloc > SIZE_MAX - s[i].nframes)
			goto out;
		nsamp++;
		nloc += s[i].frames ? s[i].nframes : 0;
	}
	if (!PP_ALLOC(st.samples, nsamp) || !PP_ALLOC(st.sample_ptrs, nsamp) ||
	    !PP_ALLOC(st.labels, 2 * nsamp) ||
	    !PP_ALLOC(st.label_ptrs, 2 * nsamp) ||
	    !PP_ALLOC(st.loc_ids, nloc) || !PP_ALLOC(st.values, 2 * nsamp))
		goto out;

	nsamp = nloc = 0;
	for (i = 0; i < n; i++) {
		const struct prof_sample *x = &s[i];
		Perftools__Profiles__Sample *ps = &st.samples[nsamp];
		Perftools__Profiles__Label *lab = &st.labels[nlab];
		unsigned nf = x->frames ? x->nframes : 0;
		uint64_t time;

		if (!x->value)
			continue;
		perftools__profiles__sample__init(ps);
		ps->location_id = &st.loc_ids[nloc];
		for (j = 0; j < nf; j++) {
			uint32_t id = pp_function(&st, &x->frames[j]);

			if (!id)
				goto out;
			st.loc_ids[nloc++] = id;
		}
		ps->n_location_id = nf;

		ps->value = &st.values[2 * nsamp];
		if (cpu) {
			ps->value[0] = i64_sat(x->value);
			time = x->value > UINT64_MAX / (uint64_t)m->period ?
				       UINT64_MAX :
				       x->value * (uint64_t)m->period;
			ps->value[1] = i64_sat(time);
		} else {
			ps->value[0] = i64_sat(x->count ? x->count : 1);
			ps->value[1] = i64_sat(x->value);
		}
		ps->n_value = 2;

		ps->label = &st.label_ptrs[nlab];
		perftools__profiles__label__init(&lab[0]);
		lab[0].key = s_pid;
		lab[0].num = x->pid;
		st.label_ptrs[nlab++] = &lab[0];
		if (x->service && *x->service) {
			perftools__profiles__label__init(&lab[1]);
			lab[1].key = s_service;
			if (pp_str(&st, x->service, &lab[1].str))
				goto out;
			st.label_ptrs[nlab++] = &lab[1];
		}
		ps->n_label = (size_t)(&st.label_ptrs[nlab] - ps->label);
		st.sample_ptrs[nsamp++] = ps;
	}
	if (pp_build_tables(&st, &p))
		goto out;

	perftools__profiles__value_type__init(&vt[0]);
	vt[0].type = s_samples;
	vt[0].unit = s_count;
	perftools__profiles__value_type__init(&vt[1]);
	vt[1].type = s_type;
	vt[1].unit = s_unit;
	vt_ptrs[0] = &vt[0];
	vt_ptrs[1] = &vt[1];
	perftools__profiles__value_type__init(&period_type);
	period_type.type = s_type;
	period_type.unit = s_unit;

	p.n_sample_type = 2;
	p.sample_type = vt_ptrs;
	p.n_sample = nsamp;
	p.sample = st.sample_ptrs;
	p.n_string_table = st.strings.n;
	p.string_table = st.strings.strs;
	p.time_nanos = m->time_nanos;
	p.duration_nanos = m->duration_nanos;
	p.period_type = &period_type;
	p.period = m->period;
	p.default_sample_type = s_type;

	packed_len = perftools__profiles__profile__get_packed_size(&p);
	st.packed = malloc(packed_len ? packed_len : 1);
	if (!st.packed)
		goto out;
	perftools__profiles__profile__pack(&p, st.packed);
	err = gzip_buf(st.packed, packed_len, out, out_len);
out:
	pp_free(&st);
	return err;
}

/* ---- folded stacks -------------------------------------------------------- */

struct folded_line {
	const char *text;
	uint64_t value;
};

static int cmp_folded(const void *a, const void *b)
{
	return strcmp(((const struct folded_line *)a)->text,
		      ((const struct folded_line *)b)->text);
}

/* A name made safe for the folded format: ';' separates, '\n' ends lines. */
static void folded_name(struct strbuf *sb, const char *name)
{
	const char *p;

	for (p = name; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == ';')
			c = ':';
		else if (c < 0x20 || c == 0x7f)
			c = '?';
		sb_putc(sb, (char)c);
	}
}

void folded_render(const struct prof_sample *s, size_t n, struct strbuf *out)
{
	struct strbuf text = STRBUF_INIT;
	struct namer nm;
	struct folded_line *lines = NULL;
	size_t *offs = NULL, nlines = 0, i, j;
	unsigned k;

	memset(&nm, 0, sizeof(nm));
	if (!n || !s)
		return;
	offs = calloc(n, sizeof(*offs));
	lines = calloc(n, sizeof(*lines));
	if (!offs || !lines)
		goto oom;
	for (i = 0; i < n; i++) {
		const struct prof_frame *fr;
		unsigned nf;

		if (!s[i].value)
			continue;
		sample_frames(&s[i], &fr, &nf);
		offs[nlines] = text.len;
		lines[nlines++].value = s[i].value;
		for (k = nf; k-- > 0;) {
			const char *disp = frame_display(&nm, &fr[k]);

			if (!disp)
				goto oom;
			folded_name(&text, disp);
			if (k)
				sb_putc(&text, ';');
		}
		sb_putc(&text, '\0');
	}
	if (text.oom)
		goto oom;
	for (i = 0; i < nlines; i++)
		lines[i].text = text.buf + offs[i];
	qsort(lines, nlines, sizeof(*lines), cmp_folded);
	for (i = 0; i < nlines; i = j) {
		uint64_t sum = lines[i].value;

		for (j = i + 1; j < nlines && !strcmp(lines[i].text, lines[j].text);
		     j++)
			sum = add_sat(sum, lines[j].value);
		sb_printf(out, "%s %llu\n", lines[i].text,
			  (unsigned long long)sum);
	}
	goto done;
oom:
	out->oom = 1;
done:
	free(offs);
	free(lines);
	sb_free(&text);
	namer_free(&nm);
}

/* ---- flame graph: the merged tree ----------------------------------------- */

struct fg_node {
	const char *name;   /* as displayed */
	const char *module; /* NULL if none */
	uint64_t value;
	uint64_t x; /* offset from the left edge, in value units */
	uint64_t hash;
	uint32_t parent;
	uint32_t depth;
	uint32_t child0, nchild; /* range in fg_tree.order */
	bool shown;
};

struct fg_tree {
	struct fg_node *nodes;
	size_t n, cap;
	uint32_t *slots; /* node index + 1; 0 is empty */
	size_t nslots;
	struct fg_node **order; /* all but the root, grouped by parent and
				 * sorted by name */
	struct namer names;
};

static void fg_free(struct fg_tree *t)
{
	free(t->nodes);
	free(t->slots);
	free(t->order);
	namer_free(&t->names);
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

static uint64_t fg_hash(uint32_t parent, const char *name, const char *module)
{
	return hash_mix(parent ^ hash_str(name) ^ hash_mix(hash_str(module)));
}

static int fg_rehash(struct fg_tree *t)
{
	size_t nslots = t->nslots ? t->nslots * 2 : 256, i, j;
	uint32_t *slots = calloc(nslots, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	for (i = 1; i < t->n; i++) {
		j = t->nodes[i].hash & (nslots - 1);
		while (slots[j])
			j = (j + 1) & (nslots - 1);
		slots[j] = (uint32_t)(i + 1);
	}
	free(t->slots);
	t->slots = slots;
	t->nslots = nslots;
	return 0;
}

/* The child of parent for frame f, created if new; -ENOMEM on failure. */
static int fg_child(struct fg_tree *t, uint32_t parent,
		    const struct prof_frame *f, uint32_t *child)
{
	const char *name = frame_display(&t->names, f);
	const char *module = frame_module(f);
	uint64_t h;
	size_t j;

	if (!name)
		return -ENOMEM;
	if (t->n + 1 > t->nslots / 2 && fg_rehash(t))
		return -ENOMEM;
	h = fg_hash(parent, name, module);
	for (j = h & (t->nslots - 1); t->slots[j]; j = (j + 1) & (t->nslots - 1)) {
		struct fg_node *c = &t->nodes[t->slots[j] - 1];

		if (c->hash == h && c->parent == parent &&
		    str_eq(c->name, name) && str_eq(c->module, module)) {
			*child = t->slots[j] - 1;
			return 0;
		}
	}
	if (t->n >= UINT32_MAX - 1 ||
	    grow(&t->nodes, &t->cap, t->n + 1, sizeof(*t->nodes)))
		return -ENOMEM;
	t->nodes[t->n] = (struct fg_node){
		.name = name,
		.module = module,
		.hash = h,
		.parent = parent,
		.depth = t->nodes[parent].depth + 1,
	};
	t->slots[j] = (uint32_t)(t->n + 1);
	*child = (uint32_t)t->n++;
	return 0;
}

static int cmp_nodes(const void *a, const void *b)
{
	const struct fg_node *x = *(struct fg_node *const *)a;
	const struct fg_node *y = *(struct fg_node *const *)b;
	int c;

	if (x->parent != y->parent)
		return x->parent < y->parent ? -1 : 1;
	c = strcmp(x->name, y->name);
	if (c)
		return c;
	return strcmp(x->module ? x->module : "", y->module ? y->module : "");
}

static int fg_build(struct fg_tree *t, const struct prof_sample *s, size_t n)
{
	size_t i;
	uint32_t k;

	if (grow(&t->nodes, &t->cap, 1, sizeof(*t->nodes)))
		return -ENOMEM;
	t->nodes[0] = (struct fg_node){ .name = "all" };
	t->n = 1;
	for (i = 0; i < n; i++) {
		const struct prof_frame *fr;
		uint32_t cur = 0;
		unsigned nf, f;

		if (!s[i].value)
			continue;
		sample_frames(&s[i], &fr, &nf);
		t->nodes[0].value = add_sat(t->nodes[0].value, s[i].value);
		for (f = nf; f-- > 0;) {
			if (fg_child(t, cur, &fr[f], &cur))
				return -ENOMEM;
			t->nodes[cur].value =
				add_sat(t->nodes[cur].value, s[i].value);
		}
	}

	/* children grouped by parent and sorted by name, then laid out */
	t->order = calloc(t->n, sizeof(*t->order));
	if (!t->order)
		return -ENOMEM;
	for (k = 1; k < t->n; k++)
		t->order[k - 1] = &t->nodes[k];
	qsort(t->order, t->n - 1, sizeof(*t->order), cmp_nodes);
	for (k = 0; k + 1 < t->n; k++) {
		struct fg_node *p = &t->nodes[t->order[k]->parent];

		if (!p->nchild)
			p->child0 = k;
		p->nchild++;
	}
	for (k = 0; k < t->n; k++) {
		struct fg_node *p = &t->nodes[k];
		uint64_t x = p->x;
		uint32_t c;

		for (c = p->child0; c < p->child0 + p->nchild; c++) {
			struct fg_node *ch = t->order[c];

			ch->x = x;
			x += ch->value;
		}
	}
	return 0;
}

/* ---- flame graph: SVG ----------------------------------------------------- */

#define FG_WIDTH 1200
#define FG_PAD 10	  /* left and right margin */
#define FG_TOP 56	  /* title, buttons, legend */
#define FG_BOTTOM 34	  /* details line */
#define FG_ROW 16	  /* frame height */
#define FG_FONT 12	  /* px */
#define FG_CHAR_W 7.08	  /* monospace advance at FG_FONT, about 0.59 em */
#define FG_MIN_PX 0.1	  /* narrower frames are left out */

/*
 * Length of the UTF-8 sequence at p, or 1 with *ok false for a byte that
 * does not start a well-formed sequence XML may carry (overlongs,
 * surrogates, beyond U+10FFFF, U+FFFE/U+FFFF and all C0/C1 control
 * characters are rejected).
 */
static size_t utf8_len(const unsigned char *p, bool *ok)
{
	unsigned c = p[0], cp, n, i;

	*ok = true;
	if (c < 0x80) {
		*ok = c >= 0x20 && c != 0x7f;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, cp = c & 0x07;
	else
		goto bad;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			goto bad;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
	    cp == 0xfffe || cp == 0xffff || (cp >= 0x80 && cp < 0xa0))
		goto bad;
	return n;
bad:
	*ok = false;
	return 1;
}

static size_t utf8_chars(const char *s)
{
	size_t n = 0;
	bool ok;

	while (*s) {
		s += utf8_len((const unsigned char *)s, &ok);
		n++;
	}
	return n;
}

/*
 * Append s escaped for XML text and attribute values, at most max
 * characters of it; bytes XML cannot carry become '?'.
 */
static void sb_xml(struct strbuf *sb, const char *s, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len;
	bool ok;

	for (; *p && max; p += len, max--) {
		len = utf8_len(p, &ok);
		if (!ok) {
			sb_putc(sb, '?');
			continue;
		}
		switch (*p) {
		case '&':
			sb_puts(sb, "&amp;");
			break;
		case '<':
			sb_puts(sb, "&lt;");
			break;
		case '>':
			sb_puts(sb, "&gt;");
			break;
		case '"':
			sb_puts(sb, "&quot;");
			break;
		case '\'':
			sb_puts(sb, "&apos;");
			break;
		default:
			sb_append(sb, p, len);
		}
	}
}

/* A label that fits w pixels: all of it, or a prefix and "..", or nothing. */
static void sb_xml_fit(struct strbuf *sb, const char *s, double w)
{
	double room = (w - 6) / FG_CHAR_W;
	size_t fit = room > 0 ? (size_t)room : 0;

	if (fit < 3)
		return;
	if (utf8_chars(s) <= fit) {
		sb_xml(sb, s, fit);
		return;
	}
	sb_xml(sb, s, fit - 2);
	sb_puts(sb, "..");
}

enum fg_kind { FG_USER, FG_KERNEL, FG_JIT, FG_UNKNOWN };

static enum fg_kind fg_kind_of(const struct fg_node *nd, bool root)
{
	const char *m = nd->module;

	if (root)
		return FG_UNKNOWN;
	if (m && !strncmp(m, "[kernel", 7))
		return FG_KERNEL;
	if (m && (!strncmp(m, "[jit", 4) || !strncmp(m, "perf-", 5)))
		return FG_JIT;
	if (!m && !strcmp(nd->name, "[unknown]"))
		return FG_UNKNOWN;
	return FG_USER;
}

/* A colour per kind, varied by the name's hash so neighbours stand apart. */
static void fg_fill(struct strbuf *sb, enum fg_kind kind, const char *name)
{
	uint64_t h = hash_mix(hash_str(name));
	unsigned a = h % 41, b = (h >> 16) % 41;
	unsigned r, g, bl;

	switch (kind) {
	case FG_KERNEL: /* orange to yellow */
		r = 230 + a / 2, g = 150 + b, bl = 20 + a / 2;
		break;
	case FG_JIT: /* green */
		r = 70 + a, g = 185 + b, bl = 70 + a / 2;
		break;
	case FG_UNKNOWN: /* grey */
		r = g = bl = 175 + a / 2;
		break;
	default: /* user code: red */
		r = 205 + a, g = 50 + b * 3 / 2, bl = 45 + a / 2;
		break;
	}
	sb_printf(sb, "rgb(%u,%u,%u)", r, g, bl);
}

static const char fg_style[] =
	"<style type=\"text/css\">\n"
	"text { font-family: monospace; font-size: 12px; fill: rgb(0,0,0); }\n"
	"#title { font-size: 17px; text-anchor: middle; }\n"
	".btn { cursor: pointer; fill: rgb(0,0,150); }\n"
	".btn:hover { text-decoration: underline; }\n"
	"#unzoom { display: none; }\n"
	"#matched { text-anchor: end; }\n"
	".f { cursor: pointer; }\n"
	".f:hover rect { stroke: rgb(0,0,0); stroke-width: 0.5; }\n"
	".f text { pointer-events: none; }\n"
	".anc { opacity: 0.6; }\n"
	"</style>\n";

/*
 * The interactive part. Frames carry data-x (offset), data-v (value) and
 * data-d (depth) in value units; zooming maps [x, x+v) of the chosen frame
 * onto the full width, keeps its ancestors full width (dimmed) and hides
 * everything outside. The label rule mirrors sb_xml_fit().
 */
static const char fg_script[] =
	"<script type=\"text/ecmascript\"><![CDATA[\n"
	"\"use strict\";\n"
	"var frames = [], total = 0, searchRe = null;\n"
	"var details = document.getElementById(\"details\");\n"
	"var matched = document.getElementById(\"matched\");\n"
	"var unzoomBtn = document.getElementById(\"unzoom\");\n"
	"function fit(name, w) {\n"
	"\tvar n = Math.floor((w - 6) / CHAR_W);\n"
	"\tif (n < 3) return \"\";\n"
	"\treturn name.length <= n ? name : name.substring(0, n - 2) + \"..\";\n"
	"}\n"
	"function place(f, x, w, cls) {\n"
	"\tf.g.style.display = \"\";\n"
	"\tf.g.setAttribute(\"class\", cls);\n"
	"\tf.r.setAttribute(\"x\", (PAD + x).toFixed(2));\n"
	"\tf.r.setAttribute(\"width\", w.toFixed(2));\n"
	"\tf.t.setAttribute(\"x\", (PAD + x + 3).toFixed(2));\n"
	"\tf.t.textContent = fit(f.name, w);\n"
	"}\n"
	"function zoom(z) {\n"
	"\tif (z && z.d === 0) z = null;\n"
	"\tvar X = z ? z.x : 0, V = z ? z.v : total, D = z ? z.d : 0;\n"
	"\tfor (var i = 0; i < frames.length; i++) {\n"
	"\t\tvar f = frames[i];\n"
	"\t\tif (f.d < D && f.x <= X && f.x + f.v >= X + V)\n"
	"\t\t\tplace(f, 0, W, \"f anc\");\n"
	"\t\telse if (f.d >= D && f.x >= X && f.x + f.v <= X + V)\n"
	"\t\t\tplace(f, (f.x - X) / V * W, f.v / V * W, \"f\");\n"
	"\t\telse\n"
	"\t\t\tf.g.style.display = \"none\";\n"
	"\t}\n"
	"\tunzoomBtn.style.display = z ? \"inline\" : \"none\";\n"
	"}\n"
	"function clearSearch() {\n"
	"\tsearchRe = null;\n"
	"\tfor (var i = 0; i < frames.length; i++)\n"
	"\t\tframes[i].r.setAttribute(\"fill\", frames[i].fill);\n"
	"\tmatched.textContent = \"\";\n"
	"}\n"
	"function applySearch() {\n"
	"\tvar spans = [], sum = 0, end = -1, i;\n"
	"\tfor (i = 0; i < frames.length; i++) {\n"
	"\t\tvar f = frames[i], hit = f.d > 0 && searchRe.test(f.name);\n"
	"\t\tf.r.setAttribute(\"fill\", hit ? \"rgb(230,0,230)\" : f.fill);\n"
	"\t\tif (hit) spans.push([f.x, f.x + f.v]);\n"
	"\t}\n"
	"\tspans.sort(function (a, b) { return a[0] - b[0]; });\n"
	"\tfor (i = 0; i < spans.length; i++) {\n"
	"\t\tvar s = Math.max(spans[i][0], end);\n"
	"\t\tif (spans[i][1] > s) sum += spans[i][1] - s;\n"
	"\t\tend = Math.max(end, spans[i][1]);\n"
	"\t}\n"
	"\tmatched.textContent = \"Matched: \" +\n"
	"\t\t(total ? 100 * sum / total : 0).toFixed(2) + \"%\";\n"
	"}\n"
	"function search() {\n"
	"\tvar term = prompt(\"Highlight frames matching (regular expression, \" +\n"
	"\t\t\"empty to clear):\", searchRe ? searchRe.source : \"\");\n"
	"\tif (term === null) return;\n"
	"\tif (term === \"\") { clearSearch(); return; }\n"
	"\ttry { searchRe = new RegExp(term); }\n"
	"\tcatch (e) { alert(\"Not a regular expression: \" + e.message); return; }\n"
	"\tapplySearch();\n"
	"}\n"
	"function hook(f) {\n"
	"\tf.g.addEventListener(\"click\", function () { zoom(f); });\n"
	"\tf.g.addEventListener(\"mouseover\", function () {\n"
	"\t\tdetails.textContent = f.info;\n"
	"\t});\n"
	"\tf.g.addEventListener(\"mouseout\", function () {\n"
	"\t\tdetails.textContent = \" \";\n"
	"\t});\n"
	"}\n"
	"(function () {\n"
	"\tvar gs = document.getElementById(\"frames\").getElementsByTagName(\"g\");\n"
	"\tfor (var i = 0; i < gs.length; i++) {\n"
	"\t\tvar g = gs[i], title = g.getElementsByTagName(\"title\")[0].textContent;\n"
	"\t\tvar f = { g: g, r: g.getElementsByTagName(\"rect\")[0],\n"
	"\t\t\tt: g.getElementsByTagName(\"text\")[0],\n"
	"\t\t\tx: +g.getAttribute(\"data-x\"), v: +g.getAttribute(\"data-v\"),\n"
	"\t\t\td: +g.getAttribute(\"data-d\"), name: title.split(\"\\n\")[0],\n"
	"\t\t\tinfo: title.split(\"\\n\").join(\" | \") };\n"
	"\t\tf.fill = f.r.getAttribute(\"fill\");\n"
	"\t\tif (f.d === 0) total = f.v;\n"
	"\t\tframes.push(f);\n"
	"\t\thook(f);\n"
	"\t}\n"
	"\tunzoomBtn.addEventListener(\"click\", function () { zoom(null); });\n"
	"\tdocument.getElementById(\"search\").addEventListener(\"click\", search);\n"
	"\tdocument.addEventListener(\"keydown\", function (e) {\n"
	"\t\tif (((e.ctrlKey || e.metaKey) && e.key === \"f\") || e.key === \"/\") {\n"
	"\t\t\te.preventDefault();\n"
	"\t\t\tsearch();\n"
	"\t\t} else if (e.key === \"Escape\") {\n"
	"\t\t\tclearSearch();\n"
	"\t\t}\n"
	"\t});\n"
	"})();\n"
	"]]></script>\n";

static void fg_legend(struct strbuf *out, int y)
{
	static const struct {
		enum fg_kind kind;
		const char *label;
	} keys[] = {
		{ FG_USER, "user" },
		{ FG_KERNEL, "kernel" },
		{ FG_JIT, "JIT" },
		{ FG_UNKNOWN, "unknown" },
	};
	int x = FG_PAD;
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		sb_printf(out, "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"",
			  x, y - 9);
		fg_fill(out, keys[i].kind, "");
		sb_printf(out, "\"/><text x=\"%d\" y=\"%d\">%s</text>\n", x + 14,
			  y, keys[i].label);
		x += 24 + (int)strlen(keys[i].label) * 8;
	}
}

static void fg_frame(struct strbuf *out, const struct fg_node *nd, bool root,
		     uint64_t total, int height)
{
	const double avail = FG_WIDTH - 2 * FG_PAD;
	double x = (double)nd->x / (double)total * avail;
	double w = (double)nd->value / (double)total * avail;
	int y = height - FG_BOTTOM - (int)(nd->depth + 1) * FG_ROW;

	sb_printf(out, "<g class=\"f\" data-x=\"%llu\" data-v=\"%llu\" data-d=\"%u\"><title>",
		  (unsigned long long)nd->x, (unsigned long long)nd->value,
		  nd->depth);
	sb_xml(out, nd->name, SIZE_MAX);
	if (nd->module) {
		sb_puts(out, "\nmodule: ");
		sb_xml(out, nd->module, SIZE_MAX);
	}
	sb_printf(out, "\n%llu samples, %.2f%%</title>",
		  (unsigned long long)nd->value,
		  100.0 * (double)nd->value / (double)total);
	sb_printf(out, "<rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" rx=\"2\" fill=\"",
		  FG_PAD + x, y, w, FG_ROW - 1);
	fg_fill(out, fg_kind_of(nd, root), nd->name);
	sb_printf(out, "\"/><text x=\"%.2f\" y=\"%d\">", FG_PAD + x + 3,
		  y + FG_ROW - 4);
	sb_xml_fit(out, nd->name, w);
	sb_puts(out, "</text></g>\n");
}

void flamegraph_svg(const struct prof_sample *s, size_t n, const char *title,
		    struct strbuf *out)
{
	const double avail = FG_WIDTH - 2 * FG_PAD;
	struct fg_tree t;
	uint64_t total;
	uint32_t maxdepth = 0, k;
	int height;

	memset(&t, 0, sizeof(t));
	if (fg_build(&t, s, s ? n : 0)) {
		out->oom = 1;
		goto out;
	}
	total = t.nodes[0].value;
	for (k = 0; total && k < t.n; k++) {
		struct fg_node *nd = &t.nodes[k];

		nd->shown = (double)nd->value / (double)total * avail >= FG_MIN_PX;
		if (nd->shown && nd->depth > maxdepth)
			maxdepth = nd->depth;
	}
	height = FG_TOP + (int)(maxdepth + 1) * FG_ROW + FG_BOTTOM;

	sb_puts(out, "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n");
	sb_printf(out, "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" "
		       "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">\n",
		  FG_WIDTH, height, FG_WIDTH, height);
	sb_puts(out, fg_style);
	sb_printf(out, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"rgb(248,248,244)\"/>\n",
		  FG_WIDTH, height);
	sb_printf(out, "<text id=\"title\" x=\"%d\" y=\"22\">", FG_WIDTH / 2);
	sb_xml(out, title ? title : "Flame Graph", SIZE_MAX);
	sb_puts(out, "</text>\n");
	sb_printf(out, "<text id=\"unzoom\" class=\"btn\" x=\"%d\" y=\"22\">Reset Zoom</text>\n",
		  FG_PAD);
	sb_printf(out, "<text id=\"search\" class=\"btn\" x=\"%d\" y=\"22\">Search</text>\n",
		  FG_WIDTH - FG_PAD - 60);
	sb_printf(out, "<text id=\"matched\" x=\"%d\" y=\"%d\"></text>\n",
		  FG_WIDTH - FG_PAD, height - 12);
	sb_printf(out, "<text id=\"details\" x=\"%d\" y=\"%d\"> </text>\n",
		  FG_PAD, height - 12);
	fg_legend(out, 44);
	if (!total)
		sb_printf(out, "<text x=\"%d\" y=\"%d\">No samples</text>\n",
			  FG_PAD, FG_TOP + FG_ROW - 4);

	sb_puts(out, "<g id=\"frames\">\n");
	if (total) {
		fg_frame(out, &t.nodes[0], true, total, height);
		for (k = 0; k + 1 < t.n; k++)
			if (t.order[k]->shown)
				fg_frame(out, t.order[k], false, total, height);
	}
	sb_puts(out, "</g>\n");
	sb_printf(out, "<script type=\"text/ecmascript\">var W = %.0f, PAD = %d, CHAR_W = %.2f;</script>\n",
		  avail, FG_PAD, FG_CHAR_W);
	sb_puts(out, fg_script);
	sb_puts(out, "</svg>\n");
out:
	fg_free(&t);
}
