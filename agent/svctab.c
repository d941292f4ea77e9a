/*
 * svctab.c - per-service process attributes for OTLP resources; see
 * svctab.h.
 *
 * A rebuild collects one record per live process, sorts them by service
 * and folds each run into the service's attributes; the result is merged
 * with the published table (which is sorted by name too, so lookups are
 * binary searches) and swapped in under the lock. Nothing is shared with
 * the readers but the published array.
 */
#include "svctab.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX 4096

struct svc {
	char name[PI_NAME_LEN];
	struct otlp_service_info info;
	unsigned nprocs; /* while folding */
	uint64_t seen;	 /* the generation that last saw a live process */
};

struct svctab {
	unsigned max;
	uint64_t gen;
	/* the rebuild: one record per process, event-loop thread only */
	struct svc *stage;
	size_t nstage, capstage;
	int oom;
	/* published, sorted by name, under mu */
	pthread_mutex_t mu;
	struct svc *pub;
	size_t npub;
};

struct svctab *svctab_new(unsigned max)
{
	struct svctab *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->max = max ? max : DEFAULT_MAX;
	pthread_mutex_init(&t->mu, NULL);
	return t;
}

void svctab_free(struct svctab *t)
{
	if (!t)
		return;
	free(t->stage);
	free(t->pub);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

void svctab_begin(struct svctab *t)
{
	t->nstage = 0;
	t->oom = 0;
	t->gen++;
}

void svctab_add(struct svctab *t, const struct proc_entry *e)
{
	struct svc *s;

	if (!e->monitored || e->exit_ns || !e->service[0])
		return;
	if (t->nstage == t->capstage) {
		size_t cap = t->capstage ? t->capstage * 2 : 256;

		s = realloc(t->stage, cap * sizeof(*s));
		if (!s) {
			t->oom = 1;
			return;
		}
		t->stage = s;
		t->capstage = cap;
	}
	s = &t->stage[t->nstage++];
	memset(s, 0, sizeof(*s));
	memcpy(s->name, e->service, sizeof(s->name));
	s->name[sizeof(s->name) - 1] = '\0';
	s->info.pid = e->pid;
	exe_basename(e->exe, s->info.exe_name, sizeof(s->info.exe_name));
	memcpy(s->info.container_id, e->container_id,
	       sizeof(s->info.container_id));
	memcpy(s->info.pod_uid, e->pod_uid, sizeof(s->info.pod_uid));
	s->nprocs = 1;
	s->seen = t->gen;
}

static int cmp_svc(const void *a, const void *b)
{
	return strcmp(((const struct svc *)a)->name,
		      ((const struct svc *)b)->name);
}

static int cmp_seen_desc(const void *a, const void *b)
{
	const struct svc *x = a, *y = b;

	return x->seen < y->seen ? 1 : x->seen > y->seen ? -1 : 0;
}

/* Fold the sorted stage into one record per service, in place. */
static size_t fold(struct svc *s, size_t n)
{
	size_t i, out = 0;

	struct svc *o;

	for (i = 0; i < n; i++) {
		if (!out || strcmp(s[out - 1].name, s[i].name)) {
			if (out != i)
				s[out] = s[i];
			out++;
			continue;
		}
		o = &s[out - 1];
		o->nprocs++;
		o->info.pid = 0; /* several processes: no single pid */
		if (strcmp(o->info.exe_name, s[i].info.exe_name))
			o->info.exe_name[0] = '\0';
		if (strcmp(o->info.container_id, s[i].info.container_id))
			o->info.container_id[0] = '\0';
		if (strcmp(o->info.pod_uid, s[i].info.pod_uid))
			o->info.pod_uid[0] = '\0';
	}
	return out;
}

void svctab_commit(struct svctab *t)
{
	struct svc *merged, *old;
	size_t n, i = 0, j = 0, m = 0;
	int c;

	if (t->oom)
		return; /* keep the last table rather than publish half */
	qsort(t->stage, t->nstage, sizeof(*t->stage), cmp_svc);
	n = fold(t->stage, t->nstage);
	pthread_mutex_lock(&t->mu);
	merged = malloc((n + t->npub + 1) * sizeof(*merged));
	if (!merged) {
		pthread_mutex_unlock(&t->mu);
		return;
	}
	while (i < n || j < t->npub) {
		c = i == n	   ? 1
		    : j == t->npub ? -1
				   : strcmp(t->stage[i].name, t->pub[j].name);
		if (c <= 0) {
			merged[m++] = t->stage[i++];
			j += c == 0;
		} else {
			merged[m++] = t->pub[j++]; /* no live process now */
		}
	}
	if (m > t->max) {
		/* Forget the services longest without a live process. */
		qsort(merged, m, sizeof(*merged), cmp_seen_desc);
		m = t->max;
		qsort(merged, m, sizeof(*merged), cmp_svc);
	}
	old = t->pub;
	t->pub = merged;
	t->npub = m;
	pthread_mutex_unlock(&t->mu);
	free(old);
}

static void add_one(struct proc_entry *e, void *arg)
{
	svctab_add(arg, e);
}

void svctab_update(struct svctab *t, struct proctab *pt)
{
	svctab_begin(t);
	proctab_foreach(pt, add_one, t);
	svctab_commit(t);
}

int svctab_get(void *arg, const char *service, struct otlp_service_info *out)
{
	struct svctab *t = arg;
	struct svc key, *s;
	int err = -ENOENT;

	if (strlen(service) >= sizeof(key.name))
		return -ENOENT;
	strcpy(key.name, service);
	pthread_mutex_lock(&t->mu);
	s = t->npub ? bsearch(&key, t->pub, t->npub, sizeof(*t->pub), cmp_svc)
		    : NULL;
	if (s) {
		*out = s->info;
		err = 0;
	}
	pthread_mutex_unlock(&t->mu);
	return err;
}
