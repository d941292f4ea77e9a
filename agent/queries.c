/*
 * queries.c - slow-query ring and per-statement totals, see queries.h.
 *
 * The totals table is open addressing over a fixed array: once it is full,
 * new statements are not tracked (counted in queries_dropped) rather than
 * evicting old ones, so the numbers of what is there stay exact.
 */
#include "queries.h"
#include "hash.h"
#include "log.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define TEXT_MAX 256
#define NAME_MAX_ 128

struct slow_entry {
	char service[NAME_MAX_];
	char system[16];
	char text[TEXT_MAX];
	char error[16];
	double seconds;
	uint64_t unix_ns;
};

struct stmt_entry {
	uint64_t hash; /* 0: free */
	char service[NAME_MAX_];
	char system[16];
	char text[TEXT_MAX];
	uint64_t calls, errors;
	double total, max;
};

struct queries {
	pthread_mutex_t lock;
	double slow;
	struct slow_entry *ring;
	unsigned ring_size, ring_next, ring_count;
	struct stmt_entry *stmts;
	unsigned nslots, nstmts, max_statements;
	uint64_t dropped;
};

struct queries *queries_new(double slow_seconds, unsigned ring_size,
			    unsigned max_statements)
{
	struct queries *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	pthread_mutex_init(&q->lock, NULL);
	q->slow = slow_seconds;
	q->ring_size = ring_size ? ring_size : 1;
	q->max_statements = max_statements ? max_statements : 1;
	q->nslots = 2 * q->max_statements;
	q->ring = calloc(q->ring_size, sizeof(*q->ring));
	q->stmts = calloc(q->nslots, sizeof(*q->stmts));
	if (!q->ring || !q->stmts) {
		queries_free(q);
		return NULL;
	}
	return q;
}

void queries_free(struct queries *q)
{
	if (!q)
		return;
	pthread_mutex_destroy(&q->lock);
	free(q->ring);
	free(q->stmts);
	free(q);
}

static void copy(char *dst, size_t n, const char *src)
{
	size_t l = strlen(src ? src : "");

	if (l >= n) {
		l = n - 1;
		/* Not inside a UTF-8 sequence: the JSON must stay valid. */
		while (l > 0 && ((unsigned char)src[l] & 0xc0) == 0x80)
			l--;
	}
	memcpy(dst, src ? src : "", l);
	dst[l] = '\0';
}

static struct stmt_entry *stmt_slot(struct queries *q,
				    const struct query_sample *s)
{
	uint64_t h = ks_hash_str(ks_hash_str(ks_hash_str(KS_HASH_SEED,
							  s->service),
					      s->system),
				  s->text);
	unsigned i, idx;

	h = h ? h : 1;
	for (i = 0; i < q->nslots; i++) {
		idx = (unsigned)((h + i) % q->nslots);
		if (q->stmts[idx].hash == h &&
		    strcmp(q->stmts[idx].text, s->text) == 0 &&
		    strcmp(q->stmts[idx].service, s->service) == 0)
			return &q->stmts[idx];
		if (!q->stmts[idx].hash) {
			if (q->nstmts >= q->max_statements)
				return NULL;
			q->nstmts++;
			q->stmts[idx].hash = h;
			copy(q->stmts[idx].service, NAME_MAX_, s->service);
			copy(q->stmts[idx].system, 16, s->system);
			copy(q->stmts[idx].text, TEXT_MAX, s->text);
			return &q->stmts[idx];
		}
	}
	return NULL;
}

int queries_add(struct queries *q, const struct query_sample *s)
{
	struct stmt_entry *st;
	struct slow_entry *e;
	int slow = s->seconds >= q->slow;

	pthread_mutex_lock(&q->lock);
	st = stmt_slot(q, s);
	if (st) {
		st->calls++;
		st->total += s->seconds;
		if (s->seconds > st->max)
			st->max = s->seconds;
		if (s->error && s->error[0])
			st->errors++;
	} else {
		q->dropped++;
	}
	if (slow) {
		e = &q->ring[q->ring_next];
		copy(e->service, NAME_MAX_, s->service);
		copy(e->system, 16, s->system);
		copy(e->text, TEXT_MAX, s->text);
		copy(e->error, 16, s->error);
		e->seconds = s->seconds;
		e->unix_ns = s->unix_ns;
		q->ring_next = (q->ring_next + 1) % q->ring_size;
		if (q->ring_count < q->ring_size)
			q->ring_count++;
	}
	pthread_mutex_unlock(&q->lock);
	if (slow)
		log_info("slow query: service=%s system=%s duration_ms=%.1f%s%s statement=\"%s\"",
			 s->service, s->system, s->seconds * 1e3,
			 s->error && s->error[0] ? " error=" : "",
			 s->error && s->error[0] ? s->error : "", s->text);
	return slow;
}

void queries_render_slow(struct queries *q, struct strbuf *out)
{
	struct slow_entry *e;
	unsigned i, idx;

	pthread_mutex_lock(&q->lock);
	sb_printf(out, "{\"threshold_ms\":%.3f,\"slow_queries\":[",
		  q->slow * 1e3);
	for (i = 0; i < q->ring_count; i++) {
		idx = (q->ring_next + q->ring_size - 1 - i) % q->ring_size;
		e = &q->ring[idx];
		sb_puts(out, i ? ",{" : "{");
		sb_puts(out, "\"service_name\":");
		sb_json_str(out, e->service);
		sb_puts(out, ",\"db_system_name\":");
		sb_json_str(out, e->system);
		sb_printf(out, ",\"duration_ms\":%.3f,\"end_unix_ms\":%llu",
			  e->seconds * 1e3,
			  (unsigned long long)(e->unix_ns / 1000000));
		sb_puts(out, ",\"error_type\":");
		sb_json_str(out, e->error);
		sb_puts(out, ",\"statement\":");
		sb_json_str(out, e->text);
		sb_putc(out, '}');
	}
	sb_puts(out, "]}\n");
	pthread_mutex_unlock(&q->lock);
}

static int by_total(const void *a, const void *b)
{
	const struct stmt_entry *x = *(const struct stmt_entry *const *)a;
	const struct stmt_entry *y = *(const struct stmt_entry *const *)b;

	return x->total < y->total ? 1 : x->total > y->total ? -1 : 0;
}

void queries_render_top(struct queries *q, struct strbuf *out, unsigned limit)
{
	struct stmt_entry **v;
	unsigned i, n = 0;

	pthread_mutex_lock(&q->lock);
	v = calloc(q->nstmts ? q->nstmts : 1, sizeof(*v));
	for (i = 0; v && i < q->nslots; i++)
		if (q->stmts[i].hash)
			v[n++] = &q->stmts[i];
	if (v)
		qsort(v, n, sizeof(*v), by_total);
	sb_puts(out, "{\"statements\":[");
	for (i = 0; i < n && i < limit; i++) {
		sb_puts(out, i ? ",{" : "{");
		sb_puts(out, "\"service_name\":");
		sb_json_str(out, v[i]->service);
		sb_puts(out, ",\"db_system_name\":");
		sb_json_str(out, v[i]->system);
		sb_puts(out, ",\"statement\":");
		sb_json_str(out, v[i]->text);
		sb_printf(out,
			  ",\"calls\":%llu,\"errors\":%llu,\"total_ms\":%.3f,\"mean_ms\":%.3f,\"max_ms\":%.3f}",
			  (unsigned long long)v[i]->calls,
			  (unsigned long long)v[i]->errors, v[i]->total * 1e3,
			  v[i]->total * 1e3 / (double)v[i]->calls,
			  v[i]->max * 1e3);
	}
	sb_printf(out, "],\"untracked\":%llu}\n",
		  (unsigned long long)q->dropped);
	free(v);
	pthread_mutex_unlock(&q->lock);
}

uint64_t queries_dropped(struct queries *q)
{
	uint64_t d;

	pthread_mutex_lock(&q->lock);
	d = q->dropped;
	pthread_mutex_unlock(&q->lock);
	return d;
}
