/*
 * otlp_config.h - where and how the OTLP/HTTP exporter sends: the metrics
 * and traces URLs, extra headers, timeout, compression and the metrics
 * interval, from the --otlp-* flags and the standard OTEL_* environment
 * variables of the OpenTelemetry exporter specification.
 *
 * A flag beats its environment variable. A base endpoint (--otlp-endpoint,
 * OTEL_EXPORTER_OTLP_ENDPOINT) gets the signal's path appended (v1/metrics,
 * v1/traces); the signal-specific variables OTEL_EXPORTER_OTLP_METRICS_ENDPOINT
 * and OTEL_EXPORTER_OTLP_TRACES_ENDPOINT are used as they are. Header values
 * are percent-decoded as OTEL_EXPORTER_OTLP_HEADERS specifies.
 *
 * Everything here is pure (the environment comes through a getter), so the
 * unit tests check every rule and every error message.
 */
#ifndef KS_OTLP_CONFIG_H
#define KS_OTLP_CONFIG_H

#include <stddef.h>

#define OTLP_URL_LEN 1024
#define OTLP_MAX_HEADERS 16
#define OTLP_HEADER_LEN 2048

struct otlp_config {
	char metrics_url[OTLP_URL_LEN]; /* "" : metrics are not pushed */
	char traces_url[OTLP_URL_LEN];	/* "" : traces are not pushed */
	char headers[OTLP_MAX_HEADERS][OTLP_HEADER_LEN]; /* "Key: value" */
	unsigned nheaders;
	unsigned interval_ms; /* metrics export interval */
	unsigned timeout_ms;  /* one HTTP request, connect to response */
	int gzip;	      /* Content-Encoding: gzip */
};

/* The --otlp-* flags as given (NULL: not given). */
struct otlp_flags {
	const char *endpoint;
	const char *interval;
	const char *headers;
	const char *timeout;
	const char *compression;
};

/*
 * Resolve flags and environment (getenv_fn, e.g. getenv) into c. Returns 0,
 * or -EINVAL with one line in err naming the flag or variable and what was
 * expected. No endpoint at all leaves both URLs empty (push off); a flag
 * other than --otlp-endpoint given without any endpoint is an error.
 */
int otlp_config_resolve(const struct otlp_flags *f,
			char *(*getenv_fn)(const char *), struct otlp_config *c,
			char *err, size_t errlen);

/* http:// or https://, a host, an optional port and path; no fragment,
 * no spaces or control characters. 0 or -EINVAL. */
int otlp_url_check(const char *url);

/*
 * base + "/" + path ("v1/metrics"), with exactly one '/' between them and
 * any query string of base kept at the end. 0, -EINVAL on a bad base, or
 * -ENAMETOOLONG.
 */
int otlp_signal_url(const char *base, const char *path, char *out, size_t cap);

/*
 * "k1=v1,k2=v2" (OTEL_EXPORTER_OTLP_HEADERS syntax): keys are HTTP tokens,
 * values percent-decoded, whitespace around both trimmed, empty members
 * skipped. Writes "k1: v1" lines. Returns the number of headers, or
 * -EINVAL (bad syntax, a bad key, a bad %XX, a control character in a
 * decoded value), -E2BIG (more than max headers or one too long).
 */
int otlp_parse_headers(const char *s, char out[][OTLP_HEADER_LEN],
		       unsigned max);

/* "500ms", "10s", "2m" -> milliseconds in [min_ms, max_ms]; a unit is
 * required. 0 or -EINVAL. */
int otlp_parse_duration_ms(const char *s, unsigned min_ms, unsigned max_ms,
			   unsigned *ms);

#endif
