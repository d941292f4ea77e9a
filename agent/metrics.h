/*
 * metrics.h - the agent's metrics registry and its Prometheus text renderer.
 *
 * A registry holds families (one per metric name, fixed kind, label names
 * and histogram bounds); a family holds series (one per label value set).
 * Probes and refreshers update series on hot paths; the HTTP thread renders
 * the whole registry as Prometheus text format 0.0.4. One recursive mutex
 * guards everything, so every call below is safe from any thread, and a
 * caller can group several changes with metric_registry_lock()/unlock() so
 * a concurrent render sees all of them or none.
 *
 * Cardinality is bounded: a family holds at most max_series label sets plus
 * one overflow series (label otel_metric_overflow="true") that absorbs the
 * updates of every label set refused after the cap, as OpenTelemetry SDKs do.
 *
 * No I/O here: rendering appends to a strbuf, and exporters other than
 * Prometheus read series through metric_registry_foreach() and the getters.
 */
#ifndef KS_METRICS_H
#define KS_METRICS_H

#include <stdint.h>

#include "strbuf.h"

enum metric_kind { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

struct metric_registry;
struct metric_family;
struct metric_series;

/* max_series_per_family 0 means the default, 2000. NULL on ENOMEM. */
struct metric_registry *metric_registry_new(unsigned max_series_per_family);
void metric_registry_free(struct metric_registry *r);

/*
 * A recursive mutex guards the whole registry. Every function below locks
 * it itself; a caller that needs several changes to appear atomically to a
 * concurrent renderer (HTTP thread) wraps them in lock/unlock.
 */
void metric_registry_lock(struct metric_registry *r);
void metric_registry_unlock(struct metric_registry *r);

/*
 * name: the full Prometheus name (counters include the _total suffix;
 * histograms the base name, the renderer adds _bucket/_sum/_count).
 * help: NULL means "". label_names: NULL-terminated array (may be NULL for
 * no labels); copied. bounds: histogram upper bounds, strictly ascending and
 * finite (copied; +Inf is implicit); ignored for counters and gauges.
 * Returns NULL on bad args (invalid metric/label name per Prometheus rules,
 * reserved or duplicate label name, "le" on a histogram, duplicate family
 * name, unsorted or non-finite bounds) or ENOMEM.
 */
struct metric_family *metric_family_new(struct metric_registry *r,
					const char *name, enum metric_kind kind,
					const char *help,
					const char *const *label_names,
					const double *bounds, unsigned nbounds);

/*
 * values: one string per label name (NULL treated as ""). Finds or creates
 * the series. When the family already holds max_series series, a new label
 * set is not created: the call returns the family's single overflow series
 * (rendered with only the label otel_metric_overflow="true"), and the
 * registry's overflow counter is incremented. Never returns NULL for a
 * valid family except on allocation failure.
 */
struct metric_series *metric_series_get(struct metric_family *f,
					const char *const *values);

/* v >= 0, ignored otherwise. Also adds to a gauge; ignored on histograms. */
void metric_counter_add(struct metric_series *s, double v);
/* Also sets a counter (kernel counters are read as running totals). */
void metric_gauge_set(struct metric_series *s, double v);
/* bucket = first bound >= v (le semantics); NaN lands in +Inf. */
void metric_hist_observe(struct metric_series *s, double v);
/*
 * Fold in pre-bucketed data (from kernel histograms): counts has nbounds+1
 * entries (last is +Inf, NOT cumulative); sum is added to the series' sum.
 */
void metric_hist_add_buckets(struct metric_series *s, const uint64_t *counts,
			     double sum);

/* Convenience: series_get + update in one locked call. */
void metric_add(struct metric_family *f, const char *const *values, double v);
void metric_set(struct metric_family *f, const char *const *values, double v);
void metric_observe(struct metric_family *f, const char *const *values,
		    double v);

/*
 * Remove every series of a family, the overflow series included (gauges
 * recomputed from scratch each refresh). Series pointers obtained earlier
 * from this family become invalid.
 */
void metric_family_reset(struct metric_family *f);

/* Label sets refused so far (calls sent to an overflow series), all families.
 */
uint64_t metric_registry_overflows(struct metric_registry *r);

/*
 * Prometheus text format 0.0.4: per family "# HELP" and "# TYPE" lines,
 * then its series. Families in registration order, series in creation
 * order; a family with no series still gets HELP and TYPE. Histograms get
 * cumulative _bucket lines ending at le="+Inf", then _sum and _count.
 * Numbers are printed in the shortest form that round-trips.
 */
void metric_render_prometheus(struct metric_registry *r, struct strbuf *out);

/*
 * Read access for other exporters (OTLP later): iterate under the lock.
 * Family getters may be called at any time (a family never changes after
 * creation); series getters only under the lock, e.g. inside foreach.
 */
typedef void (*metric_series_fn)(const struct metric_family *f,
				 const struct metric_series *s, void *arg);
void metric_registry_foreach(struct metric_registry *r, metric_series_fn fn,
			     void *arg);

const char *metric_family_name(const struct metric_family *f);
const char *metric_family_help(const struct metric_family *f);
enum metric_kind metric_family_kind(const struct metric_family *f);
unsigned metric_family_nlabels(const struct metric_family *f);
const char *metric_family_label_name(const struct metric_family *f, unsigned i);
const double *metric_family_bounds(const struct metric_family *f,
				   unsigned *nbounds);
/* "" for every label of the overflow series. */
const char *metric_series_label_value(const struct metric_series *s,
				      unsigned i);
int metric_series_is_overflow(const struct metric_series *s);
/* counter/gauge */
double metric_series_value(const struct metric_series *s);
/* histogram, nbounds+1 non-cumulative */
const uint64_t *metric_series_buckets(const struct metric_series *s);
uint64_t metric_series_count(const struct metric_series *s);
double metric_series_sum(const struct metric_series *s);

#endif
