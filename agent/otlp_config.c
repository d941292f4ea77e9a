/*
 * otlp_config.c - the OTLP exporter's settings from flags and OTEL_*
 * variables; see otlp_config.h.
 */
#include "otlp_config.h"
#include "strbuf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_INTERVAL_MS 15000
#define DEFAULT_TIMEOUT_MS 10000
#define MIN_INTERVAL_MS 100
#define MAX_INTERVAL_MS 3600000
#define MIN_TIMEOUT_MS 100
#define MAX_TIMEOUT_MS 600000

static int is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

int otlp_url_check(const char *url)
{
	const char *p, *host, *end;
	size_t n;

	if (!strncasecmp(url, "http://", 7))
		host = url + 7;
	else if (!strncasecmp(url, "https://", 8))
		host = url + 8;
	else
		return -EINVAL;
	for (p = url; *p; p++)
		if (is_ctl((unsigned char)*p) || *p == ' ' || *p == '#')
			return -EINVAL;
	end = host + strcspn(host, "/?");
	/* user:password@ before the host */
	for (p = end; p > host; p--)
		if (p[-1] == '@') {
			host = p;
			break;
		}
	if (host == end)
		return -EINVAL;
	if (*host == '[') {
		p = memchr(host, ']', (size_t)(end - host));
		if (!p || p == host + 1)
			return -EINVAL;
		p++;
	} else {
		p = memchr(host, ':', (size_t)(end - host));
		if (!p)
			p = end;
		if (p == host)
			return -EINVAL;
	}
	if (p == end)
		return 0;
	if (*p != ':')
		return -EINVAL;
	p++;
	n = (size_t)(end - p);
	if (n < 1 || n > 5 || strspn(p, "0123456789") < n)
		return -EINVAL;
	if (atoi(p) < 1 || atoi(p) > 65535)
		return -EINVAL;
	return 0;
}

int otlp_signal_url(const char *base, const char *path, char *out, size_t cap)
{
	size_t blen, qpos;
	const char *q;
	int n;

	if (otlp_url_check(base))
		return -EINVAL;
	q = strchr(base, '?');
	qpos = q ? (size_t)(q - base) : strlen(base);
	blen = qpos;
	if (blen && base[blen - 1] == '/')
		blen--;
	n = snprintf(out, cap, "%.*s/%s%s", (int)blen, base, path, q ? q : "");
	if (n < 0 || (size_t)n >= cap)
		return -ENAMETOOLONG;
	return 0;
}

static void trim(const char **s, const char **e)
{
	while (*s < *e && (**s == ' ' || **s == '\t'))
		(*s)++;
	while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
		(*e)--;
}

/* One "key=value" member into "key: value". */
static int parse_member(const char *s, const char *e, char *out)
{
	const char *eq = memchr(s, '=', (size_t)(e - s)), *ks = s, *ke, *vs,
		   *ve;
	size_t n = 0;
	int hi, lo;

	if (!eq)
		return -EINVAL;
	ke = eq;
	vs = eq + 1;
	ve = e;
	trim(&ks, &ke);
	trim(&vs, &ve);
	if (ks == ke)
		return -EINVAL;
	if ((size_t)(ke - ks) + 2 >= OTLP_HEADER_LEN)
		return -E2BIG;
	for (; ks < ke; ks++) {
		if (!ks_is_tchar((unsigned char)*ks))
			return -EINVAL;
		out[n++] = *ks;
	}
	out[n++] = ':';
	out[n++] = ' ';
	for (; vs < ve; vs++) {
		char c = *vs;

		if (c == '%') {
			if (ve - vs < 3 || (hi = ks_hexval(vs[1])) < 0 ||
			    (lo = ks_hexval(vs[2])) < 0)
				return -EINVAL;
			c = (char)(hi << 4 | lo);
			vs += 2;
		}
		/* A decoded CR, LF or NUL would split the request head. */
		if (is_ctl((unsigned char)c) && c != '\t')
			return -EINVAL;
		if (n + 1 >= OTLP_HEADER_LEN)
			return -E2BIG;
		out[n++] = c;
	}
	out[n] = '\0';
	return 0;
}

int otlp_parse_headers(const char *s, char out[][OTLP_HEADER_LEN], unsigned max)
{
	const char *e, *ms, *me;
	unsigned n = 0;
	int err;

	while (*s) {
		e = s + strcspn(s, ",");
		ms = s;
		me = e;
		trim(&ms, &me);
		if (ms < me) {
			if (n == max)
				return -E2BIG;
			err = parse_member(ms, me, out[n]);
			if (err)
				return err;
			n++;
		}
		s = *e ? e + 1 : e;
	}
	return (int)n;
}

int otlp_parse_duration_ms(const char *s, unsigned min_ms, unsigned max_ms,
			   unsigned *ms)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || v > 1000000000ULL)
		return -EINVAL;
	if (!strcmp(end, "ms"))
		;
	else if (!strcmp(end, "s"))
		v *= 1000;
	else if (!strcmp(end, "m"))
		v *= 60000;
	else
		return -EINVAL;
	if (v < min_ms || v > max_ms)
		return -EINVAL;
	*ms = (unsigned)v;
	return 0;
}

/* An environment variable, or NULL when unset or empty. */
static const char *env(char *(*getenv_fn)(const char *), const char *name)
{
	const char *v = getenv_fn(name);

	return v && *v ? v : NULL;
}

/* A plain number of milliseconds (the OTEL_* variables' unit). */
static int env_ms(const char *v, unsigned min_ms, unsigned max_ms, unsigned *ms)
{
	unsigned long long n;
	char *end;

	if (*v < '0' || *v > '9')
		return -EINVAL;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno || *end || n < min_ms || n > max_ms)
		return -EINVAL;
	*ms = (unsigned)n;
	return 0;
}

/* Where a value came from, for messages: "for --flag" or "in VARIABLE". */
static const char *origin(const char *flag_value, const char *flag,
			  const char *var, char *buf, size_t len)
{
	if (flag_value)
		snprintf(buf, len, "for %s", flag);
	else
		snprintf(buf, len, "in %s", var);
	return buf;
}

static int resolve_urls(const struct otlp_flags *f,
			char *(*getenv_fn)(const char *), struct otlp_config *c,
			char *err, size_t errlen)
{
	static const struct {
		const char *path, *var;
	} sig[2] = {
	    {"v1/metrics", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"},
	    {"v1/traces", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
	};
	char *urls[2] = {c->metrics_url, c->traces_url};
	const char *base = f->endpoint, *v;
	char where[64];
	int i;

	if (!base)
		base = env(getenv_fn, "OTEL_EXPORTER_OTLP_ENDPOINT");
	if (base && otlp_url_check(base)) {
		snprintf(err, errlen,
			 "invalid value '%s' %s: expected an http:// or "
			 "https:// URL, e.g. http://collector:4318",
			 base,
			 origin(f->endpoint, "--otlp-endpoint",
				"OTEL_EXPORTER_OTLP_ENDPOINT", where,
				sizeof(where)));
		return -EINVAL;
	}
	for (i = 0; i < 2; i++) {
		v = f->endpoint ? NULL : env(getenv_fn, sig[i].var);
		if (v) {
			if (otlp_url_check(v) || strlen(v) >= OTLP_URL_LEN) {
				snprintf(err, errlen,
					 "invalid value '%s' in %s: expected "
					 "an http:// or https:// URL",
					 v, sig[i].var);
				return -EINVAL;
			}
			snprintf(urls[i], OTLP_URL_LEN, "%s", v);
		} else if (base && otlp_signal_url(base, sig[i].path, urls[i],
						   OTLP_URL_LEN)) {
			snprintf(err, errlen,
				 "the OTLP endpoint '%s' is too long", base);
			return -EINVAL;
		}
	}
	return 0;
}

static int resolve_protocol(char *(*getenv_fn)(const char *), char *err,
			    size_t errlen)
{
	static const char *const vars[] = {
	    "OTEL_EXPORTER_OTLP_PROTOCOL",
	    "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
	    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
	};
	const char *v;
	size_t i;

	for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
		v = env(getenv_fn, vars[i]);
		if (v && strcmp(v, "http/protobuf")) {
			snprintf(
			    err, errlen,
			    "unsupported value '%s' in %s: katascope pushes "
			    "OTLP/HTTP protobuf only (http/protobuf)",
			    v, vars[i]);
			return -EINVAL;
		}
	}
	return 0;
}

int otlp_config_resolve(const struct otlp_flags *f,
			char *(*getenv_fn)(const char *), struct otlp_config *c,
			char *err, size_t errlen)
{
	const char *v;
	char where[64];
	int n;

	memset(c, 0, sizeof(*c));
	c->interval_ms = DEFAULT_INTERVAL_MS;
	c->timeout_ms = DEFAULT_TIMEOUT_MS;
	c->gzip = 1;
	if (resolve_urls(f, getenv_fn, c, err, errlen))
		return -EINVAL;
	if (!c->metrics_url[0] && !c->traces_url[0]) {
		const char *given = f->interval	     ? "--otlp-interval"
				    : f->headers     ? "--otlp-headers"
				    : f->timeout     ? "--otlp-timeout"
				    : f->compression ? "--otlp-compression"
						     : NULL;

		if (given) {
			snprintf(err, errlen,
				 "%s needs --otlp-endpoint (or "
				 "OTEL_EXPORTER_OTLP_ENDPOINT)",
				 given);
			return -EINVAL;
		}
		return 0; /* push is off; the OTEL_* settings do not matter */
	}
	if (resolve_protocol(getenv_fn, err, errlen))
		return -EINVAL;

	if (f->interval) {
		if (otlp_parse_duration_ms(f->interval, MIN_INTERVAL_MS,
					   MAX_INTERVAL_MS, &c->interval_ms))
			goto bad_interval;
	} else if ((v = env(getenv_fn, "OTEL_METRIC_EXPORT_INTERVAL")) &&
		   env_ms(v, MIN_INTERVAL_MS, MAX_INTERVAL_MS,
			  &c->interval_ms)) {
		snprintf(err, errlen,
			 "invalid value '%s' in OTEL_METRIC_EXPORT_INTERVAL: "
			 "expected milliseconds, 100..3600000",
			 v);
		return -EINVAL;
	}

	if (f->timeout) {
		if (otlp_parse_duration_ms(f->timeout, MIN_TIMEOUT_MS,
					   MAX_TIMEOUT_MS, &c->timeout_ms))
			goto bad_timeout;
	} else if ((v = env(getenv_fn, "OTEL_EXPORTER_OTLP_TIMEOUT")) &&
		   env_ms(v, MIN_TIMEOUT_MS, MAX_TIMEOUT_MS, &c->timeout_ms)) {
		snprintf(err, errlen,
			 "invalid value '%s' in OTEL_EXPORTER_OTLP_TIMEOUT: "
			 "expected milliseconds, 100..600000",
			 v);
		return -EINVAL;
	}

	v = f->compression ? f->compression
			   : env(getenv_fn, "OTEL_EXPORTER_OTLP_COMPRESSION");
	if (v) {
		if (strcmp(v, "gzip") && strcmp(v, "none")) {
			snprintf(err, errlen,
				 "invalid value '%s' %s: expected gzip or none",
				 v,
				 origin(f->compression, "--otlp-compression",
					"OTEL_EXPORTER_OTLP_COMPRESSION", where,
					sizeof(where)));
			return -EINVAL;
		}
		c->gzip = !strcmp(v, "gzip");
	}

	v = f->headers ? f->headers
		       : env(getenv_fn, "OTEL_EXPORTER_OTLP_HEADERS");
	if (v) {
		n = otlp_parse_headers(v, c->headers, OTLP_MAX_HEADERS);
		if (n < 0) {
			snprintf(err, errlen,
				 "invalid headers %s (value not shown): "
				 "expected key=value,key2=value2, keys HTTP "
				 "tokens, values %%-encoded, at most %d",
				 origin(f->headers, "--otlp-headers",
					"OTEL_EXPORTER_OTLP_HEADERS", where,
					sizeof(where)),
				 OTLP_MAX_HEADERS);
			return -EINVAL;
		}
		c->nheaders = (unsigned)n;
	}
	return 0;

bad_interval:
	snprintf(err, errlen,
		 "invalid value '%s' for --otlp-interval: expected a duration "
		 "such as 15s, 500ms or 1m (100ms..60m)",
		 f->interval);
	return -EINVAL;
bad_timeout:
	snprintf(err, errlen,
		 "invalid value '%s' for --otlp-timeout: expected a duration "
		 "such as 10s or 500ms (100ms..10m)",
		 f->timeout);
	return -EINVAL;
}
