/*
 * test_profile_out.c - the profiler's encoders against a small known set of
 * stacks: pprof is gunzipped and unpacked with the generated protobuf-c code
 * and checked table by table (strings, sample types, samples, labels,
 * locations, functions, mappings, values for cpu and off_cpu); folded
 * output is compared as exact text; the SVG is checked for escaping and
 * layout and, when the tools are installed, validated by xmllint (XML) and
 * node --check (the embedded script). Empty input, zero values, odd bytes
 * in names, deep stacks and many distinct stacks are covered too. When Go
 * is installed, `go tool pprof -top` must read the profile as well.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "profile.pb-c.h"
#include "profile_out.h"

#define PERIOD 10101010 /* 1e9 / 99 */

static const struct prof_frame st_a[] = {
	{ "do_work", "app" },
	{ "main", "app" },
};
static const struct prof_frame st_b[] = {
	{ "schedule", "[kernel]" },
	{ "do_work", "app" },
	{ "main", "app" },
};
static const struct prof_frame st_c[] = {
	{ NULL, "libc.so.6" },
	{ "main", "app" },
};
static const struct prof_frame st_jit[] = {
	{ "LazyCompile:*handler", "[jit]" },
};

/* leaf-first stacks; D has value 0 and must vanish, E has no stack */
static const struct prof_sample samples[] = {
	{ st_a, 2, 3, 42, "api", 0 },
	{ st_b, 3, 2, 42, "api", 0 },
	{ st_c, 2, 1, 7, NULL, 0 },
	{ st_jit, 1, 0, 9, "db", 0 },
	{ NULL, 0, 4, 9, "db", 0 },
	{ st_a, 2, 5, 43, "", 0 },
};
#define NSAMPLES (sizeof(samples) / sizeof(samples[0]))

static const struct prof_meta cpu_meta = {
	.sample_type = "cpu",
	.unit = "nanoseconds",
	.period = PERIOD,
	.time_nanos = 1700000000123456789LL,
	.duration_nanos = 10000000000LL,
};

/* ---- helpers -------------------------------------------------------------- */

static int gunzip(const uint8_t *in, size_t len, uint8_t **out, size_t *out_len)
{
	z_stream z;
	size_t cap = 4096;
	uint8_t *buf = malloc(cap), *nb;
	int rc;

	memset(&z, 0, sizeof(z));
	if (!buf || inflateInit2(&z, 15 + 16) != Z_OK) {
		free(buf);
		return -1;
	}
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)len;
	do {
		if (z.total_out == cap) {
			nb = realloc(buf, cap * 2);
			if (!nb)
				break;
			buf = nb;
			cap *= 2;
		}
		z.next_out = buf + z.total_out;
		z.avail_out = (uInt)(cap - z.total_out);
		rc = inflate(&z, Z_NO_FLUSH);
	} while (rc == Z_OK);
	*out_len = z.total_out;
	inflateEnd(&z);
	if (rc != Z_STREAM_END || z.avail_in) {
		free(buf);
		return -1;
	}
	*out = buf;
	return 0;
}

static Perftools__Profiles__Profile *decode(const uint8_t *gz, size_t len)
{
	Perftools__Profiles__Profile *p;
	uint8_t *raw;
	size_t raw_len;

	CHECK(len >= 2 && gz[0] == 0x1f && gz[1] == 0x8b);
	if (gunzip(gz, len, &raw, &raw_len)) {
		CHECK(!"gunzip failed");
		return NULL;
	}
	p = perftools__profiles__profile__unpack(NULL, raw_len, raw);
	free(raw);
	CHECK(p != NULL);
	return p;
}

static const char *str(const Perftools__Profiles__Profile *p, int64_t i)
{
	if (i < 0 || (size_t)i >= p->n_string_table)
		return "(bad string index)";
	return p->string_table[i];
}

static const Perftools__Profiles__Location *
location(const Perftools__Profiles__Profile *p, uint64_t id)
{
	size_t i;

	for (i = 0; i < p->n_location; i++)
		if (p->location[i]->id == id)
			return p->location[i];
	return NULL;
}

static const Perftools__Profiles__Function *
function(const Perftools__Profiles__Profile *p, uint64_t id)
{
	size_t i;

	for (i = 0; i < p->n_function; i++)
		if (p->function[i]->id == id)
			return p->function[i];
	return NULL;
}

static const Perftools__Profiles__Mapping *
mapping(const Perftools__Profiles__Profile *p, uint64_t id)
{
	size_t i;

	for (i = 0; i < p->n_mapping; i++)
		if (p->mapping[i]->id == id)
			return p->mapping[i];
	return NULL;
}

/*
 * A sample's stack as "leaf<module;...;root<module", resolved through
 * location -> function and location -> mapping; "?" where a link is broken.
 */
static const char *stack_of(const Perftools__Profiles__Profile *p,
			    const Perftools__Profiles__Sample *s)
{
	static char buf[1024];
	size_t i, o = 0;

	buf[0] = '\0';
	for (i = 0; i < s->n_location_id; i++) {
		const Perftools__Profiles__Location *l =
			location(p, s->location_id[i]);
		const Perftools__Profiles__Function *f =
			l && l->n_line == 1 ? function(p, l->line[0]->function_id) :
					      NULL;
		const Perftools__Profiles__Mapping *m =
			l && l->mapping_id ? mapping(p, l->mapping_id) : NULL;

		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s<%s",
				      i ? ";" : "", f ? str(p, f->name) : "?",
				      m ? str(p, m->filename) : "-");
		if (o >= sizeof(buf))
			break;
	}
	return buf;
}

/* The label with this key: its string, or its number printed. */
static const char *label(const Perftools__Profiles__Profile *p,
			 const Perftools__Profiles__Sample *s, const char *key)
{
	static char num[32];
	size_t i;

	for (i = 0; i < s->n_label; i++) {
		const Perftools__Profiles__Label *l = s->label[i];

		if (strcmp(str(p, l->key), key))
			continue;
		if (l->str)
			return str(p, l->str);
		snprintf(num, sizeof(num), "%lld", (long long)l->num);
		return num;
	}
	return "(none)";
}

static char *write_temp(const void *data, size_t len, const char *suffix)
{
	char *path = malloc(64);
	int fd;

	snprintf(path, 64, "/tmp/test_profile_outXXXXXX%s", suffix);
	fd = mkstemps(path, (int)strlen(suffix));
	CHECK(fd >= 0);
	if (fd < 0) {
		free(path);
		return NULL;
	}
	CHECK(write(fd, data, len) == (ssize_t)len);
	close(fd);
	return path;
}

static int run(const char *fmt, const char *arg)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), fmt, arg);
	return system(cmd);
}

static size_t count_str(const char *hay, const char *needle)
{
	size_t n = 0;

	for (; (hay = strstr(hay, needle)); hay++)
		n++;
	return n;
}

/* ---- pprof ---------------------------------------------------------------- */

static void test_pprof_cpu(void)
{
	Perftools__Profiles__Profile *p;
	uint8_t *gz = NULL;
	size_t len = 0, i, j;
	int64_t empty_idx = -1;

	CHECK_INT(pprof_encode(samples, NSAMPLES, &cpu_meta, &gz, &len), 0);
	p = decode(gz, len);
	if (!p)
		goto out;

	/* string table: "" first, no duplicates */
	CHECK(p->n_string_table > 0);
	CHECK_STR(p->string_table[0], "");
	for (i = 0; i < p->n_string_table; i++) {
		if (!p->string_table[i][0])
			empty_idx = (int64_t)i;
		for (j = i + 1; j < p->n_string_table; j++)
			CHECK(strcmp(p->string_table[i], p->string_table[j]));
	}
	CHECK_INT(empty_idx, 0);

	/* header */
	CHECK_INT(p->n_sample_type, 2);
	if (p->n_sample_type == 2) {
		CHECK_STR(str(p, p->sample_type[0]->type), "samples");
		CHECK_STR(str(p, p->sample_type[0]->unit), "count");
		CHECK_STR(str(p, p->sample_type[1]->type), "cpu");
		CHECK_STR(str(p, p->sample_type[1]->unit), "nanoseconds");
	}
	CHECK(p->period_type != NULL);
	if (p->period_type) {
		CHECK_STR(str(p, p->period_type->type), "cpu");
		CHECK_STR(str(p, p->period_type->unit), "nanoseconds");
	}
	CHECK_INT(p->period, PERIOD);
	CHECK_INT(p->time_nanos, 1700000000123456789LL);
	CHECK_INT(p->duration_nanos, 10000000000LL);
	CHECK_STR(str(p, p->default_sample_type), "cpu");

	/* samples, in input order, the zero-valued one dropped */
	CHECK_INT(p->n_sample, 5);
	if (p->n_sample == 5) {
		static const struct {
			const char *stack;
			int64_t count;
			const char *pid, *service;
		} want[] = {
			{ "do_work<app;main<app", 3, "42", "api" },
			{ "schedule<[kernel];do_work<app;main<app", 2, "42", "api" },
			{ "[libc.so.6]<libc.so.6;main<app", 1, "7", "(none)" },
			{ "", 4, "9", "db" },
			{ "do_work<app;main<app", 5, "43", "(none)" },
		};

		for (i = 0; i < 5; i++) {
			const Perftools__Profiles__Sample *s = p->sample[i];

			CHECK_STR(stack_of(p, s), want[i].stack);
			CHECK_INT(s->n_value, 2);
			if (s->n_value == 2) {
				CHECK_INT(s->value[0], want[i].count);
				CHECK_INT(s->value[1], want[i].count * PERIOD);
			}
			CHECK_STR(label(p, s, "pid"), want[i].pid);
			CHECK_STR(label(p, s, "service_name"), want[i].service);
		}
		CHECK_INT(p->sample[2]->n_label, 1);
		CHECK_INT(p->sample[0]->n_label, 2);
	}

	/* one function and one location per (name, module), nonzero ids */
	CHECK_INT(p->n_function, 4);
	CHECK_INT(p->n_location, 4);
	for (i = 0; i < p->n_function; i++) {
		const Perftools__Profiles__Function *f = p->function[i];

		CHECK(f->id != 0);
		CHECK_STR(str(p, f->system_name), str(p, f->name));
		for (j = i + 1; j < p->n_function; j++) {
			CHECK(f->id != p->function[j]->id);
			CHECK(f->name != p->function[j]->name);
		}
	}
	for (i = 0; i < p->n_location; i++) {
		CHECK(p->location[i]->id != 0);
		CHECK_INT(p->location[i]->n_line, 1);
		CHECK_INT(p->location[i]->address, 0);
	}

	/* a mapping per module, marked as already symbolized */
	CHECK_INT(p->n_mapping, 3);
	for (i = 0; i < p->n_mapping; i++) {
		CHECK(p->mapping[i]->id != 0);
		CHECK(p->mapping[i]->has_functions);
	}
	if (p->n_mapping == 3) {
		CHECK_STR(str(p, p->mapping[0]->filename), "app");
		CHECK_STR(str(p, p->mapping[1]->filename), "[kernel]");
		CHECK_STR(str(p, p->mapping[2]->filename), "libc.so.6");
	}

	/* go tool pprof, when installed, must read it too */
	if (system("command -v go >/dev/null 2>&1") == 0) {
		char *path = write_temp(gz, len, ".pb.gz");

		if (path) {
			CHECK_INT(run("go tool pprof -top %s >/dev/null 2>&1",
				      path),
				  0);
			unlink(path);
			free(path);
		}
	}
	perftools__profiles__profile__free_unpacked(p, NULL);
out:
	free(gz);
}

static void test_pprof_off_cpu(void)
{
	static const struct prof_frame fr[] = {
		{ "futex_wait", "[kernel]" },
		{ "pthread_cond_wait", "libc.so.6" },
	};
	const struct prof_sample s[] = {
		{ fr, 2, 7000000, 5, "pg", 3 }, /* 3 waits, 7 ms in all */
		{ fr + 1, 1, 2500, 5, "pg", 0 }, /* count unknown: one wait */
	};
	const struct prof_meta m = { .sample_type = "off_cpu",
				     .unit = "nanoseconds",
				     .period = 0 };
	Perftools__Profiles__Profile *p;
	uint8_t *gz = NULL;
	size_t len = 0;

	CHECK_INT(pprof_encode(s, 2, &m, &gz, &len), 0);
	p = decode(gz, len);
	if (p) {
		CHECK_STR(str(p, p->sample_type[1]->type), "off_cpu");
		CHECK_STR(str(p, p->default_sample_type), "off_cpu");
		CHECK_INT(p->n_sample, 2);
		if (p->n_sample == 2) {
			CHECK_INT(p->sample[0]->value[0], 3);
			CHECK_INT(p->sample[0]->value[1], 7000000);
			CHECK_INT(p->sample[1]->value[0], 1);
			CHECK_INT(p->sample[1]->value[1], 2500);
			CHECK_STR(stack_of(p, p->sample[1]),
				  "pthread_cond_wait<libc.so.6");
		}
		CHECK_INT(p->n_function, 2);
		CHECK_INT(p->n_mapping, 2);
		perftools__profiles__profile__free_unpacked(p, NULL);
	}
	free(gz);
}

static void test_pprof_edges(void)
{
	static const struct prof_frame same_name[] = {
		{ "init", "liba.so" },
		{ "init", "libb.so" },
		{ "init", "liba.so" },
	};
	const struct prof_sample big = { same_name, 3, UINT64_MAX / 2, 1,
					 NULL, 0 };
	struct prof_meta bad = cpu_meta;
	Perftools__Profiles__Profile *p;
	uint8_t *gz = (uint8_t *)&bad;
	size_t len = 1;

	/* arguments */
	CHECK_INT(pprof_encode(samples, NSAMPLES, NULL, &gz, &len), -EINVAL);
	CHECK_INT(pprof_encode(NULL, 1, &cpu_meta, &gz, &len), -EINVAL);
	bad.sample_type = "wall";
	CHECK_INT(pprof_encode(samples, NSAMPLES, &bad, &gz, &len), -EINVAL);
	CHECK(gz == NULL && len == 0);
	bad.sample_type = "cpu";
	bad.period = 0;
	CHECK_INT(pprof_encode(samples, NSAMPLES, &bad, &gz, &len), -EINVAL);

	/* no samples: still a valid profile with its types */
	CHECK_INT(pprof_encode(NULL, 0, &cpu_meta, &gz, &len), 0);
	p = decode(gz, len);
	if (p) {
		CHECK_INT(p->n_sample, 0);
		CHECK_INT(p->n_function, 0);
		CHECK_INT(p->n_sample_type, 2);
		CHECK_STR(p->string_table[0], "");
		perftools__profiles__profile__free_unpacked(p, NULL);
	}
	free(gz);

	/* same name in two modules: two functions; huge values saturate */
	CHECK_INT(pprof_encode(&big, 1, &cpu_meta, &gz, &len), 0);
	p = decode(gz, len);
	if (p) {
		CHECK_INT(p->n_function, 2);
		CHECK_INT(p->n_mapping, 2);
		CHECK_STR(stack_of(p, p->sample[0]),
			  "init<liba.so;init<libb.so;init<liba.so");
		CHECK_INT(p->sample[0]->value[0], (int64_t)(UINT64_MAX / 2));
		CHECK_INT(p->sample[0]->value[1], INT64_MAX);
		perftools__profiles__profile__free_unpacked(p, NULL);
	}
	free(gz);
}

/* ---- folded ---------------------------------------------------------------- */

static void test_folded(void)
{
	static const struct prof_frame odd[] = {
		{ "a;b\nc", "x" },
		{ "[unknown]", "[kernel]" },
		{ "", NULL },
	};
	struct prof_sample s[NSAMPLES + 1];
	struct strbuf sb = STRBUF_INIT;

	memcpy(s, samples, sizeof(samples));
	s[NSAMPLES] = (struct prof_sample){ odd, 3, 6, 1, NULL, 0 };
	folded_render(s, NSAMPLES + 1, &sb);
	CHECK(!sb.oom);
	CHECK_STR(sb.buf, "[unknown] 4\n"
			  "[unknown];[kernel];a:b?c 6\n"
			  "main;[libc.so.6] 1\n"
			  "main;do_work 8\n"
			  "main;do_work;schedule 2\n");

	/* nothing to say: nothing appended */
	sb_reset(&sb);
	folded_render(NULL, 0, &sb);
	folded_render(s + 3, 1, &sb); /* value 0 only */
	CHECK_INT(sb.len, 0);
	sb_free(&sb);
}

/* ---- flame graph ------------------------------------------------------------ */

static void xml_valid(const struct strbuf *sb)
{
	const char *start, *end;
	char *path;

	if (access("/usr/bin/xmllint", X_OK) == 0) {
		path = write_temp(sb->buf, sb->len, ".svg");
		if (path) {
			CHECK_INT(run("/usr/bin/xmllint --noout %s", path), 0);
			unlink(path);
			free(path);
		}
	}
	/* the embedded script must at least parse */
	start = strstr(sb->buf, "<![CDATA[");
	end = strstr(sb->buf, "]]>");
	CHECK(start && end && end > start);
	if (start && end && access("/usr/bin/node", X_OK) == 0) {
		start += strlen("<![CDATA[");
		path = write_temp(start, (size_t)(end - start), ".js");
		if (path) {
			CHECK_INT(run("/usr/bin/node --check %s", path), 0);
			unlink(path);
			free(path);
		}
	}
}

static void test_svg(void)
{
	static const struct prof_frame tricky[] = {
		{ "operator<<(std::ostream&, char const*) 'q' \"d\"", "libstdc++.so.6" },
		{ "bad\xff\x01utf8 \xc3\xa9t\xc3\xa9", "app" },
	};
	struct prof_sample s[NSAMPLES + 1];
	struct strbuf sb = STRBUF_INIT;

	memcpy(s, samples, sizeof(samples));
	s[NSAMPLES] = (struct prof_sample){ tricky, 2, 5, 1, NULL, 0 };
	flamegraph_svg(s, NSAMPLES + 1, "CPU <api> & \"db\"", &sb);
	CHECK(!sb.oom);
	xml_valid(&sb);

	CHECK(strstr(sb.buf, "<svg xmlns=\"http://www.w3.org/2000/svg\"") != NULL);
	CHECK(strstr(sb.buf, ">CPU &lt;api&gt; &amp; &quot;db&quot;</text>") !=
	      NULL);
	/* names escaped; bytes XML cannot carry replaced */
	CHECK(strstr(sb.buf, "<title>operator&lt;&lt;(std::ostream&amp;, char "
			     "const*) &apos;q&apos; &quot;d&quot;\n"
			     "module: libstdc++.so.6\n5 samples, 25.00%</title>") !=
	      NULL);
	CHECK(strstr(sb.buf, "<title>bad??utf8 \xc3\xa9t\xc3\xa9\n") != NULL);
	CHECK(strstr(sb.buf, "operator<<") == NULL);
	/* every distinct path is one frame: all, main, do_work, schedule,
	 * [libc.so.6], [unknown], bad..., operator<< */
	CHECK_INT(count_str(sb.buf, "<g class=\"f\""), 8);
	CHECK(strstr(sb.buf, "<title>all\n20 samples, 100.00%</title><rect x=\"10.00\" "
			     "y=\"") != NULL);
	CHECK(strstr(sb.buf, " width=\"1180.00\"") != NULL);
	/* siblings sorted by name: [unknown] (4), bad... (5), main (11) */
	CHECK(strstr(sb.buf, "data-x=\"9\" data-v=\"11\" data-d=\"1\"><title>main\n"
			     "module: app\n11 samples, 55.00%</title>") != NULL);
	CHECK(strstr(sb.buf, "data-x=\"0\" data-v=\"4\" data-d=\"1\"><title>[unknown]\n") !=
	      NULL);
	CHECK(strstr(sb.buf, "<title>schedule\nmodule: [kernel]\n2 samples, "
			     "10.00%</title>") != NULL);
	/* clipped labels: do_work (10 of 20 -> 590 px) in full, schedule
	 * (2 of 20 -> 118 px) in full, "[libc.so.6]" (59 px) cut */
	CHECK(strstr(sb.buf, ">do_work</text>") != NULL);
	CHECK(strstr(sb.buf, ">schedule</text>") != NULL);
	CHECK(strstr(sb.buf, ">[libc..</text>") != NULL);
	/* self-contained and interactive */
	CHECK(strstr(sb.buf, "href") == NULL);
	CHECK(strstr(sb.buf, "id=\"search\"") != NULL);
	CHECK(strstr(sb.buf, "function zoom(") != NULL);
	sb_free(&sb);

	/* no samples: a valid page that says so */
	flamegraph_svg(NULL, 0, NULL, &sb);
	CHECK(!sb.oom);
	xml_valid(&sb);
	CHECK(strstr(sb.buf, ">No samples</text>") != NULL);
	CHECK(strstr(sb.buf, ">Flame Graph</text>") != NULL);
	CHECK_INT(count_str(sb.buf, "<g class=\"f\""), 0);
	sb_free(&sb);
}

/* ---- scale ------------------------------------------------------------------ */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

/*
 * A 20000-frame stack (no recursion may depend on depth), 5000 random
 * stacks over a few hundred names (hash tables grow), and a frame far too
 * narrow to draw; all three encoders must agree on the totals.
 */
static void test_scale(void)
{
	enum { DEEP = 20000, NRAND = 5000, NAMES = 300, MAXF = 24 };
	struct prof_frame *deep = calloc(DEEP, sizeof(*deep));
	struct prof_frame *rf = calloc((size_t)NRAND * MAXF, sizeof(*rf));
	struct prof_sample *s = calloc(NRAND + 2, sizeof(*s));
	static char names[NAMES][16];
	static const char *mods[] = { "app", "[kernel]", "[jit]", "libc.so.6" };
	static const struct prof_frame tiny[] = { { "needle", "app" } };
	struct strbuf sb = STRBUF_INIT;
	Perftools__Profiles__Profile *p;
	unsigned long long v, sum = 0, want = 0;
	uint8_t *gz = NULL;
	size_t len = 0, i, j;
	const char *line;

	for (i = 0; i < NAMES; i++)
		snprintf(names[i], sizeof(names[i]), "fn_%zu", i);
	for (i = 0; i < DEEP; i++)
		deep[i] = (struct prof_frame){ names[i % NAMES],
						mods[i % NAMES % 4] };
	s[0] = (struct prof_sample){ deep, DEEP, 1000000, 1, "deep", 0 };
	want += 1000000;
	for (i = 0; i < NRAND; i++) {
		unsigned nf = 1 + rnd() % MAXF;

		for (j = 0; j < nf; j++) {
			unsigned k = rnd() % NAMES;

			rf[i * MAXF + j] = (struct prof_frame){ names[k], mods[k % 4] };
		}
		s[i + 1] = (struct prof_sample){ &rf[i * MAXF], nf,
						 1 + rnd() % 100, (int)i, "svc", 0 };
		want += s[i + 1].value;
	}
	s[NRAND + 1] = (struct prof_sample){ tiny, 1, 1, 1, NULL, 0 };
	want += 1;

	folded_render(s, NRAND + 2, &sb);
	CHECK(!sb.oom);
	for (line = sb.buf; line && *line; line = strchr(line, '\n') + 1) {
		const char *nl = strchr(line, '\n'), *sp;

		if (!nl)
			break;
		for (sp = nl; sp > line && *sp != ' '; sp--)
			;
		v = strtoull(sp + 1, NULL, 10);
		sum += v;
	}
	CHECK_INT(sum, want);
	CHECK(strstr(sb.buf, "\nneedle 1\n") != NULL);
	sb_free(&sb);

	CHECK_INT(pprof_encode(s, NRAND + 2, &cpu_meta, &gz, &len), 0);
	p = decode(gz, len);
	if (p) {
		sum = 0;
		for (i = 0; i < p->n_sample; i++)
			sum += (unsigned long long)p->sample[i]->value[0];
		CHECK_INT(sum, want);
		CHECK_INT(p->n_sample, NRAND + 2);
		CHECK_INT(p->sample[0]->n_location_id, DEEP);
		CHECK_INT(p->n_function, NAMES + 1);
		CHECK_INT(p->n_mapping, 4);
		perftools__profiles__profile__free_unpacked(p, NULL);
	}
	free(gz);

	flamegraph_svg(s, NRAND + 2, "scale", &sb);
	CHECK(!sb.oom);
	xml_valid(&sb);
	CHECK(strstr(sb.buf, ">needle\n") == NULL); /* < 0.1 px: left out */
	CHECK(strstr(sb.buf, "data-d=\"20000\"") != NULL);
	sb_free(&sb);

	free(deep);
	free(rf);
	free(s);
}

int main(void)
{
	test_pprof_cpu();
	test_pprof_off_cpu();
	test_pprof_edges();
	test_folded();
	test_svg();
	test_scale();
	return check_summary();
}
