/*
 * profiler.c - profile sessions over the kernel's stack counts; see
 * profiler.h.
 *
 * Threads: profiler_tick runs on the main thread and is the only reader
 * of the BPF maps; sessions are created, awaited and rendered by HTTP
 * threads. One mutex guards the session list and the symbolizer, a
 * condition variable wakes the waiters after each drain.
 *
 * A session keeps raw stacks (addresses, not names), merged by identical
 * (pid, user stack, kernel stack), up to SESSION_MAX_STACKS; what does not
 * fit is counted. Mappings of every pid seen are snapshotted at drain time
 * so a process that exits before the profile is rendered is still named.
 */
#include "profiler.h"
#include "log.h"
#include "profile_out.h"
#include "symbolize.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SESSION_MAX_STACKS 20000
/*
 * How often the maps are drained. The stack map is a hash table without
 * chaining: a new stack whose bucket holds another one is lost (counted in
 * katascope_profile_stacks_lost_total), so the fewer stacks it holds, the
 * fewer are lost, and only a drain empties it. A drain costs a few system
 * calls per distinct (pid, stacks) key, at most one per sample, so
 * draining often costs little more than draining seldom: at every
 * main-loop tick (50 ms) while recording, every 200 ms otherwise.
 * Measured with --profile-hz 999 on a busy Node server: 1.6 % of the
 * stacks lost at 200 ms while recording; see docs/benchmarks.md.
 */
#define DRAIN_IDLE_NS 200000000ULL
#define DRAIN_BATCH 512 /* count-map entries per system call */
#define IDS_MAX 8192 /* stack ids remembered per drain */
#define CLEAR_ALL_DRAINS 50 /* the whole stack map: every 10 s, idle */
#define DRAIN_BUSY_NS 50000000ULL
#define MAX_SECONDS 300

struct raw_stack {
	int pid;
	char service[64];
	uint64_t value;
	uint32_t nuser, nkern;
	uint64_t ips[]; /* user frames (leaf first), then kernel frames */
};

struct prof_session {
	struct prof_session *next;
	enum prof_type type;
	int pid;
	char service[PI_NAME_LEN];
	uint64_t start_ns, end_ns;
	int armed; /* the drain that cleared samples older than it happened */
	int done;
	struct raw_stack **stacks;
	size_t n, cap;
	uint64_t samples, dropped;
};

struct profiler {
	struct probes *probes;
	struct profile_fds fds;
	unsigned hz;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct prof_session *sessions;
	struct symbolizer *sym;
	uint64_t last_drain;
	int offcpu_sessions;
	int offcpu_dirty; /* the off-CPU map may hold counts */
	unsigned drains; /* since the stack map was last cleared whole */
	struct ks_stack_key *keys; /* DRAIN_BATCH each, for batch reads */
	uint64_t *vals;
	int32_t *ids; /* stack ids of the keys drained (2 per key) */
	size_t nids;
	struct profiler_stats st;
	uint64_t *ubuf, *kbuf; /* one stack each, for map reads */
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

struct profiler *profiler_new(struct probes *probes, const char *proc_root,
			      unsigned hz)
{
	struct profiler *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->probes = probes;
	p->hz = hz ? hz : 99;
	probes_profile_fds(probes, &p->fds);
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->sym = symbolizer_new(proc_root);
	p->ubuf = calloc(KS_STACK_DEPTH, sizeof(uint64_t));
	p->kbuf = calloc(KS_STACK_DEPTH, sizeof(uint64_t));
	p->keys = calloc(DRAIN_BATCH, sizeof(*p->keys));
	p->vals = calloc(DRAIN_BATCH, sizeof(*p->vals));
	p->ids = calloc(IDS_MAX, sizeof(*p->ids));
	if (!p->sym || !p->ubuf || !p->kbuf || !p->keys || !p->vals ||
	    !p->ids) {
		profiler_free(p);
		return NULL;
	}
	return p;
}

static void session_free(struct prof_session *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		free(s->stacks[i]);
	free(s->stacks);
	free(s);
}

void profiler_free(struct profiler *p)
{
	struct prof_session *s, *n;

	if (!p)
		return;
	for (s = p->sessions; s; s = n) {
		n = s->next;
		session_free(s);
	}
	symbolizer_free(p->sym);
	free(p->ubuf);
	free(p->kbuf);
	free(p->keys);
	free(p->vals);
	free(p->ids);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

/* Frames of a stack id: count of leading non-zero addresses. */
static uint32_t read_stack(int fd, int32_t id, uint64_t *buf)
{
	uint32_t n = 0;

	if (id < 0 || fd < 0)
		return 0;
	memset(buf, 0, KS_STACK_DEPTH * sizeof(uint64_t));
	if (bpf_map_lookup_elem(fd, &id, buf))
		return 0;
	while (n < KS_STACK_DEPTH && buf[n])
		n++;
	return n;
}

static int same_stack(const struct raw_stack *r, int pid, const uint64_t *u,
		      uint32_t nu, const uint64_t *k, uint32_t nk)
{
	return r->pid == pid && r->nuser == nu && r->nkern == nk &&
	       !memcmp(r->ips, u, nu * sizeof(*u)) &&
	       !memcmp(r->ips + nu, k, nk * sizeof(*k));
}

static void session_add(struct prof_session *s, int pid, const char *service,
			const uint64_t *u, uint32_t nu, const uint64_t *k,
			uint32_t nk, uint64_t value)
{
	struct raw_stack *r, **ns;
	size_t i;

	s->samples += s->type == PROF_CPU ? value : 1;
	/* Merge with the same stack from an earlier drain (few per drain). */
	for (i = s->n; i-- > 0 && i + 64 >= s->n;) {
		if (same_stack(s->stacks[i], pid, u, nu, k, nk)) {
			s->stacks[i]->value += value;
			return;
		}
	}
	if (s->n >= SESSION_MAX_STACKS) {
		s->dropped++;
		return;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;

		ns = realloc(s->stacks, cap * sizeof(*ns));
		if (!ns) {
			s->dropped++;
			return;
		}
		s->stacks = ns;
		s->cap = cap;
	}
	r = malloc(sizeof(*r) + (nu + nk) * sizeof(uint64_t));
	if (!r) {
		s->dropped++;
		return;
	}
	r->pid = pid;
	snprintf(r->service, sizeof(r->service), "%s", service);
	r->value = value;
	r->nuser = nu;
	r->nkern = nk;
	memcpy(r->ips, u, nu * sizeof(*u));
	memcpy(r->ips + nu, k, nk * sizeof(*k));
	s->stacks[s->n++] = r;
}

static int session_wants(const struct prof_session *s, enum prof_type type,
			 int pid, const char *service, uint64_t now)
{
	if (s->done || !s->armed || s->type != type || now < s->start_ns)
		return 0;
	if (s->pid && s->pid != pid)
		return 0;
	if (s->service[0] && strcmp(s->service, service))
		return 0;
	return 1;
}

/* One (pid, stacks) -> value read from a count map: to the sessions that
 * want it; its stack ids are deleted after the drain (clear_drained). */
static void take(struct profiler *p, struct proctab *pt,
		 enum prof_type type, const struct ks_stack_key *key,
		 uint64_t value, uint64_t now)
{
	struct prof_session *s;
	struct proc_entry *e;
	const char *service;
	uint32_t nu, nk;
	int any = 0;

	if (type == PROF_CPU)
		p->st.samples += value;
	if (p->nids + 2 <= IDS_MAX) {
		if (key->user_stack >= 0)
			p->ids[p->nids++] = key->user_stack;
		if (key->kern_stack >= 0)
			p->ids[p->nids++] = key->kern_stack;
	}
	e = proctab_get(pt, (int)key->pid);
	service = e ? e->service : "";
	for (s = p->sessions; s; s = s->next)
		any |= session_wants(s, type, (int)key->pid, service, now);
	if (!any)
		return;
	nu = read_stack(p->fds.stacks, key->user_stack, p->ubuf);
	nk = read_stack(p->fds.stacks, key->kern_stack, p->kbuf);
	if (nu)
		symbolizer_snapshot(p->sym, (int)key->pid);
	for (s = p->sessions; s; s = s->next)
		if (session_wants(s, type, (int)key->pid, service, now))
			session_add(s, (int)key->pid, service, p->ubuf, nu,
				    p->kbuf, nk, value);
}

/*
 * Read every (pid, stacks) -> value of one map, clear it, feed sessions:
 * in batches of DRAIN_BATCH, each read and deleted by one system call
 * (next key, lookup and delete for every entry showed in the agent's
 * profile under load). Batches came with Linux 5.6; the ring buffer the
 * agent needs anyway with 5.8.
 */
static void drain(struct profiler *p, struct proctab *pt, int fd,
		  enum prof_type type, uint64_t now)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	uint64_t in = 0, out = 0;
	int err, first = 1;
	__u32 i, n;

	for (;;) {
		n = DRAIN_BATCH;
		err = bpf_map_lookup_and_delete_batch(fd, first ? NULL : &in,
						      &out, p->keys, p->vals,
						      &n, &opts);
		if (err && errno != ENOENT)
			return; /* the rest at the next drain */
		for (i = 0; i < n; i++)
			take(p, pt, type, &p->keys[i], p->vals[i], now);
		if (err) /* ENOENT: that was the last batch */
			return;
		in = out;
		first = 0;
	}
}

static int cmp_id(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;

	return (x > y) - (x < y);
}

/* Delete the stacks the drained keys named, each once. */
static void clear_drained(struct profiler *p)
{
	size_t i;

	qsort(p->ids, p->nids, sizeof(*p->ids), cmp_id);
	for (i = 0; i < p->nids; i++)
		if (i == 0 || p->ids[i] != p->ids[i - 1])
			bpf_map_delete_elem(p->fds.stacks, &p->ids[i]);
	p->nids = 0;
}

/*
 * Stack ids are shared between keys: clear them after the counts, each
 * deleted once the next id is known (as in drain).
 */
static void clear_stacks(struct profiler *p)
{
	int fd = p->fds.stacks;
	int32_t key, next;
	int have = 0;

	while (bpf_map_get_next_key(fd, have ? &key : NULL, &next) == 0) {
		if (have)
			bpf_map_delete_elem(fd, &key);
		key = next;
		have = 1;
	}
	if (have)
		bpf_map_delete_elem(fd, &key);
}

void profiler_tick(struct profiler *p, struct proctab *pt, uint64_t now)
{
	struct prof_session *s;
	int busy;

	if (!p || p->fds.cpu_samples < 0)
		return;
	pthread_mutex_lock(&p->lock);
	busy = p->sessions != NULL;
	if (now < p->last_drain + (busy ? DRAIN_BUSY_NS : DRAIN_IDLE_NS)) {
		pthread_mutex_unlock(&p->lock);
		return;
	}
	p->last_drain = now;
	drain(p, pt, p->fds.cpu_samples, PROF_CPU, now);
	/* The off-CPU program runs only during off-CPU profiles. */
	if (p->offcpu_sessions || p->offcpu_dirty) {
		drain(p, pt, p->fds.offcpu_ns, PROF_OFFCPU, now);
		p->offcpu_dirty = p->offcpu_sessions > 0;
	}
	/* The stacks the counts named; now and then the whole map, for the
	 * stacks of samples the full count map dropped (or more ids than
	 * IDS_MAX). */
	if (++p->drains >= CLEAR_ALL_DRAINS || p->nids >= IDS_MAX - 1) {
		clear_stacks(p);
		p->nids = 0;
		p->drains = 0;
	} else {
		clear_drained(p);
	}
	for (s = p->sessions; s; s = s->next) {
		s->armed = 1; /* counts start now, not at the last idle drain */
		if (!s->done && now >= s->end_ns) {
			s->done = 1;
			if (s->type == PROF_OFFCPU && --p->offcpu_sessions == 0) {
				probes_offcpu_put(p->probes);
				p->offcpu_dirty = 1;
			}
		}
	}
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

int profiler_busy(struct profiler *p)
{
	int busy;

	if (!p)
		return 0;
	pthread_mutex_lock(&p->lock);
	busy = p->sessions != NULL;
	pthread_mutex_unlock(&p->lock);
	return busy;
}

void profiler_process_exit(struct profiler *p, int pid)
{
	(void)p;
	(void)pid; /* mappings were snapshotted when its samples were read */
}

struct prof_session *profiler_start(struct profiler *p, enum prof_type type,
				    unsigned seconds, int pid,
				    const char *service, char *err,
				    size_t errlen)
{
	struct prof_session *s;

	if (!p || p->fds.cpu_samples < 0) {
		snprintf(err, errlen,
			 "the profile probes are not attached (see /healthz)");
		return NULL;
	}
	if (seconds < 1 || seconds > MAX_SECONDS) {
		snprintf(err, errlen, "seconds must be 1..%d", MAX_SECONDS);
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->type = type;
	s->pid = pid;
	snprintf(s->service, sizeof(s->service), "%s", service ? service : "");
	pthread_mutex_lock(&p->lock);
	if (type == PROF_OFFCPU && p->offcpu_sessions++ == 0 &&
	    probes_offcpu_get(p->probes)) {
		p->offcpu_sessions--;
		pthread_mutex_unlock(&p->lock);
		free(s);
		snprintf(err, errlen, "cannot attach the off-CPU probe");
		return NULL;
	}
	s->start_ns = mono_ns();
	s->end_ns = s->start_ns + (uint64_t)seconds * 1000000000ULL;
	s->next = p->sessions;
	p->sessions = s;
	p->st.sessions++;
	p->last_drain = 0; /* drain at the next tick: that arms the session */
	pthread_mutex_unlock(&p->lock);
	return s;
}

void profiler_wait(struct profiler *p, struct prof_session *s)
{
	pthread_mutex_lock(&p->lock);
	while (!s->done)
		pthread_cond_wait(&p->cond, &p->lock);
	pthread_mutex_unlock(&p->lock);
}

int profiler_done(struct profiler *p, struct prof_session *s)
{
	int done;

	pthread_mutex_lock(&p->lock);
	done = s->done;
	pthread_mutex_unlock(&p->lock);
	return done;
}

void profiler_progress(struct profiler *p, struct prof_session *s,
		       double *secs, uint64_t *samples)
{
	uint64_t now = mono_ns();

	pthread_mutex_lock(&p->lock);
	*secs = (double)((now < s->end_ns ? now : s->end_ns) - s->start_ns) *
		1e-9;
	*samples = s->samples;
	pthread_mutex_unlock(&p->lock);
}

void profiler_end(struct profiler *p, struct prof_session *s)
{
	struct prof_session **pp;

	pthread_mutex_lock(&p->lock);
	for (pp = &p->sessions; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	if (!s->done && s->type == PROF_OFFCPU && --p->offcpu_sessions == 0) {
		probes_offcpu_put(p->probes);
		p->offcpu_dirty = 1;
	}
	pthread_mutex_unlock(&p->lock);
	session_free(s);
}

/* Names of one raw stack, leaf first: kernel frames, then user frames. */
static unsigned name_frames(struct profiler *p, const struct raw_stack *r,
			    struct prof_frame *f, struct sym *syms)
{
	unsigned i, n = 0;

	for (i = 0; i < r->nkern; i++, n++) {
		symbolize_kernel(p->sym, r->ips[r->nuser + i], &syms[n]);
		f[n].name = syms[n].name;
		f[n].module = syms[n].module;
	}
	for (i = 0; i < r->nuser; i++, n++) {
		symbolize_user(p->sym, r->pid, r->ips[i], &syms[n]);
		f[n].name = syms[n].name;
		f[n].module = syms[n].module;
	}
	return n;
}

int profiler_render(struct profiler *p, struct prof_session *s,
		    enum prof_format fmt, struct strbuf *out)
{
	struct prof_sample *samples;
	struct prof_frame *frames;
	struct sym *syms;
	struct prof_meta meta;
	size_t i, nf = 0, total = 0;
	uint8_t *pb = NULL;
	size_t pblen = 0;
	int err = 0;

	for (i = 0; i < s->n; i++)
		total += s->stacks[i]->nuser + s->stacks[i]->nkern;
	samples = calloc(s->n ? s->n : 1, sizeof(*samples));
	frames = calloc(total ? total : 1, sizeof(*frames));
	syms = calloc(total ? total : 1, sizeof(*syms));
	if (!samples || !frames || !syms) {
		err = -ENOMEM;
		goto out;
	}
	pthread_mutex_lock(&p->lock); /* the symbolizer is shared */
	for (i = 0; i < s->n; i++) {
		samples[i].frames = frames + nf;
		samples[i].nframes = name_frames(p, s->stacks[i], frames + nf,
						 syms + nf);
		nf += samples[i].nframes;
		samples[i].value = s->stacks[i]->value;
		samples[i].pid = s->stacks[i]->pid;
		samples[i].service = s->stacks[i]->service;
	}
	pthread_mutex_unlock(&p->lock);

	switch (fmt) {
	case PROF_FOLDED:
		folded_render(samples, s->n, out);
		break;
	case PROF_SVG:
		flamegraph_svg(samples, s->n,
			       s->type == PROF_CPU ? "CPU flame graph" :
						     "Off-CPU flame graph",
			       out);
		break;
	case PROF_PPROF:
		memset(&meta, 0, sizeof(meta));
		meta.sample_type = s->type == PROF_CPU ? "cpu" : "off_cpu";
		meta.unit = "nanoseconds";
		meta.period = 1000000000LL / p->hz;
		meta.time_nanos = (int64_t)time(NULL) * 1000000000LL;
		meta.duration_nanos = (int64_t)(s->end_ns - s->start_ns);
		err = pprof_encode(samples, s->n, &meta, &pb, &pblen);
		if (!err)
			sb_append(out, pb, pblen);
		free(pb);
		break;
	}
	if (out->oom)
		err = -ENOMEM;
out:
	free(samples);
	free(frames);
	free(syms);
	return err;
}

void profiler_stats(struct profiler *p, struct profiler_stats *out)
{
	pthread_mutex_lock(&p->lock);
	*out = p->st;
	pthread_mutex_unlock(&p->lock);
}
