/*
 * test_otlp_config.c - the OTLP exporter's settings: URL checks and the
 * signal path rule, OTEL_EXPORTER_OTLP_HEADERS syntax and percent-decoding,
 * durations, flag-over-environment precedence, and the one-line errors of
 * --otlp-* flags through cli_parse.
 */
#include "check.h"
#include "cli.h"
#include "cli_run.h"
#include "otlp_config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>

/* A fake environment: NULL-terminated name, value pairs. */
static const char *const *fake_env;

static char *fake_getenv(const char *name)
{
	const char *const *p;

	for (p = fake_env; p && *p; p += 2)
		if (!strcmp(p[0], name))
			return (char *)p[1];
	return NULL;
}

static int resolve(struct otlp_config *c, char *err, const char *const *envp,
		   const char *endpoint, const char *interval,
		   const char *headers, const char *timeout,
		   const char *compression)
{
	struct otlp_flags f = {endpoint, interval, headers, timeout,
			       compression};

	fake_env = envp;
	err[0] = '\0';
	return otlp_config_resolve(&f, fake_getenv, c, err, 512);
}

static void test_urls(void)
{
	char out[OTLP_URL_LEN];

	CHECK_INT(otlp_url_check("http://collector:4318"), 0);
	CHECK_INT(otlp_url_check("https://otlp.example.com/otlp"), 0);
	CHECK_INT(otlp_url_check("HTTP://127.0.0.1"), 0);
	CHECK_INT(otlp_url_check("http://[::1]:4318/"), 0);
	CHECK_INT(otlp_url_check("http://user:pw@host:1/x?a=b"), 0);
	CHECK(otlp_url_check("collector:4318") < 0);
	CHECK(otlp_url_check("grpc://collector:4317") < 0);
	CHECK(otlp_url_check("http://") < 0);
	CHECK(otlp_url_check("http:///v1") < 0);
	CHECK(otlp_url_check("http://host:0") < 0);
	CHECK(otlp_url_check("http://host:65536") < 0);
	CHECK(otlp_url_check("http://host:") < 0);
	CHECK(otlp_url_check("http://host:12a") < 0);
	CHECK(otlp_url_check("http://[::1") < 0);
	CHECK(otlp_url_check("http://host/a b") < 0);
	CHECK(otlp_url_check("http://host/a#frag") < 0);
	CHECK(otlp_url_check("http://host/\r\nX: y") < 0);

	CHECK_INT(
	    otlp_signal_url("http://c:4318", "v1/metrics", out, sizeof(out)),
	    0);
	CHECK_STR(out, "http://c:4318/v1/metrics");
	CHECK_INT(
	    otlp_signal_url("http://c:4318/", "v1/traces", out, sizeof(out)),
	    0);
	CHECK_STR(out, "http://c:4318/v1/traces");
	CHECK_INT(
	    otlp_signal_url("https://h/otlp", "v1/metrics", out, sizeof(out)),
	    0);
	CHECK_STR(out, "https://h/otlp/v1/metrics");
	CHECK_INT(otlp_signal_url("https://h/otlp/?k=v", "v1/metrics", out,
				  sizeof(out)),
		  0);
	CHECK_STR(out, "https://h/otlp/v1/metrics?k=v");
	CHECK_INT(otlp_signal_url("http://c", "v1/metrics", out, 10),
		  -ENAMETOOLONG);
	CHECK_INT(otlp_signal_url("c:4318", "v1/metrics", out, sizeof(out)),
		  -EINVAL);
}

static void test_headers(void)
{
	static char h[OTLP_MAX_HEADERS][OTLP_HEADER_LEN];
	char many[1024] = "";
	int i;

	CHECK_INT(otlp_parse_headers("api-key=secret", h, OTLP_MAX_HEADERS), 1);
	CHECK_STR(h[0], "api-key: secret");
	CHECK_INT(otlp_parse_headers(" a = 1 , b=two%20words ,,", h,
				     OTLP_MAX_HEADERS),
		  2);
	CHECK_STR(h[0], "a: 1");
	CHECK_STR(h[1], "b: two words");
	/* Only the first '=' splits; '+' stays a plus. */
	CHECK_INT(otlp_parse_headers("Authorization=Basic%20dXNlcjpwdw==,x=a+b",
				     h, OTLP_MAX_HEADERS),
		  2);
	CHECK_STR(h[0], "Authorization: Basic dXNlcjpwdw==");
	CHECK_STR(h[1], "x: a+b");
	CHECK_INT(otlp_parse_headers("k=", h, OTLP_MAX_HEADERS), 1);
	CHECK_STR(h[0], "k: ");
	CHECK_INT(otlp_parse_headers("", h, OTLP_MAX_HEADERS), 0);
	CHECK_INT(otlp_parse_headers("novalue", h, OTLP_MAX_HEADERS), -EINVAL);
	CHECK_INT(otlp_parse_headers("=v", h, OTLP_MAX_HEADERS), -EINVAL);
	CHECK_INT(otlp_parse_headers("bad key=v", h, OTLP_MAX_HEADERS),
		  -EINVAL);
	CHECK_INT(otlp_parse_headers("k:x=v", h, OTLP_MAX_HEADERS), -EINVAL);
	CHECK_INT(otlp_parse_headers("k=%zz", h, OTLP_MAX_HEADERS), -EINVAL);
	CHECK_INT(otlp_parse_headers("k=%4", h, OTLP_MAX_HEADERS), -EINVAL);
	/* A decoded CR LF must not inject a header. */
	CHECK_INT(otlp_parse_headers("k=a%0D%0AEvil: 1", h, OTLP_MAX_HEADERS),
		  -EINVAL);
	CHECK_INT(otlp_parse_headers("k=a%00", h, OTLP_MAX_HEADERS), -EINVAL);
	for (i = 0; i <= OTLP_MAX_HEADERS; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many),
			 "%sk%d=v", i ? "," : "", i);
	CHECK_INT(otlp_parse_headers(many, h, OTLP_MAX_HEADERS), -E2BIG);
}

static void test_durations(void)
{
	unsigned ms = 0;

	CHECK_INT(otlp_parse_duration_ms("15s", 100, 3600000, &ms), 0);
	CHECK_INT(ms, 15000);
	CHECK_INT(otlp_parse_duration_ms("250ms", 100, 3600000, &ms), 0);
	CHECK_INT(ms, 250);
	CHECK_INT(otlp_parse_duration_ms("2m", 100, 3600000, &ms), 0);
	CHECK_INT(ms, 120000);
	CHECK_INT(otlp_parse_duration_ms("15", 100, 3600000, &ms), -EINVAL);
	CHECK_INT(otlp_parse_duration_ms("50ms", 100, 3600000, &ms), -EINVAL);
	CHECK_INT(otlp_parse_duration_ms("-1s", 100, 3600000, &ms), -EINVAL);
	CHECK_INT(otlp_parse_duration_ms("2h", 100, 3600000, &ms), -EINVAL);
	CHECK_INT(otlp_parse_duration_ms("61m", 100, 3600000, &ms), -EINVAL);
	CHECK_INT(otlp_parse_duration_ms("", 100, 3600000, &ms), -EINVAL);
}

static void test_resolve(void)
{
	static struct otlp_config c;
	char err[512];
	const char *const base_env[] = {
	    "OTEL_EXPORTER_OTLP_ENDPOINT",
	    "http://env:4318",
	    "OTEL_METRIC_EXPORT_INTERVAL",
	    "5000",
	    "OTEL_EXPORTER_OTLP_TIMEOUT",
	    "2500",
	    "OTEL_EXPORTER_OTLP_COMPRESSION",
	    "none",
	    "OTEL_EXPORTER_OTLP_HEADERS",
	    "from=env",
	    NULL,
	};
	const char *const signal_env[] = {
	    "OTEL_EXPORTER_OTLP_ENDPOINT",
	    "http://env:4318",
	    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
	    "http://m:9/custom",
	    NULL,
	};
	const char *const only_traces[] = {
	    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
	    "https://t/v1/traces",
	    NULL,
	};
	const char *const bad_env[] = {
	    "OTEL_EXPORTER_OTLP_ENDPOINT",
	    "http://env:4318",
	    "OTEL_METRIC_EXPORT_INTERVAL",
	    "15s",
	    NULL,
	};
	const char *const grpc_env[] = {
	    "OTEL_EXPORTER_OTLP_PROTOCOL",
	    "grpc",
	    NULL,
	};
	const char *const empty_env[] = {
	    "OTEL_EXPORTER_OTLP_ENDPOINT",
	    "",
	    NULL,
	};

	/* Nothing configured: push off, defaults. */
	CHECK_INT(resolve(&c, err, NULL, NULL, NULL, NULL, NULL, NULL), 0);
	CHECK_STR(c.metrics_url, "");
	CHECK_STR(c.traces_url, "");
	CHECK_INT(resolve(&c, err, empty_env, NULL, NULL, NULL, NULL, NULL), 0);
	CHECK_STR(c.metrics_url, "");

	/* Flag only: defaults for the rest. */
	CHECK_INT(
	    resolve(&c, err, NULL, "http://f:4318", NULL, NULL, NULL, NULL), 0);
	CHECK_STR(c.metrics_url, "http://f:4318/v1/metrics");
	CHECK_STR(c.traces_url, "http://f:4318/v1/traces");
	CHECK_INT(c.interval_ms, 15000);
	CHECK_INT(c.timeout_ms, 10000);
	CHECK_INT(c.gzip, 1);
	CHECK_INT(c.nheaders, 0);

	/* Environment only. */
	CHECK_INT(resolve(&c, err, base_env, NULL, NULL, NULL, NULL, NULL), 0);
	CHECK_STR(c.metrics_url, "http://env:4318/v1/metrics");
	CHECK_INT(c.interval_ms, 5000);
	CHECK_INT(c.timeout_ms, 2500);
	CHECK_INT(c.gzip, 0);
	CHECK_INT(c.nheaders, 1);
	CHECK_STR(c.headers[0], "from: env");

	/* Every flag beats its variable. */
	CHECK_INT(resolve(&c, err, base_env, "http://f:1", "1s", "from=flag",
			  "500ms", "gzip"),
		  0);
	CHECK_STR(c.metrics_url, "http://f:1/v1/metrics");
	CHECK_INT(c.interval_ms, 1000);
	CHECK_INT(c.timeout_ms, 500);
	CHECK_INT(c.gzip, 1);
	CHECK_STR(c.headers[0], "from: flag");

	/* Signal-specific variables are used as they are; the flag beats
	 * them too. */
	CHECK_INT(resolve(&c, err, signal_env, NULL, NULL, NULL, NULL, NULL),
		  0);
	CHECK_STR(c.metrics_url, "http://m:9/custom");
	CHECK_STR(c.traces_url, "http://env:4318/v1/traces");
	CHECK_INT(
	    resolve(&c, err, signal_env, "http://f:1/", NULL, NULL, NULL, NULL),
	    0);
	CHECK_STR(c.metrics_url, "http://f:1/v1/metrics");
	CHECK_INT(resolve(&c, err, only_traces, NULL, NULL, NULL, NULL, NULL),
		  0);
	CHECK_STR(c.metrics_url, "");
	CHECK_STR(c.traces_url, "https://t/v1/traces");

	/* Errors name the flag or the variable. */
	CHECK_INT(
	    resolve(&c, err, NULL, "collector:4318", NULL, NULL, NULL, NULL),
	    -EINVAL);
	CHECK_STR(
	    err, "invalid value 'collector:4318' for --otlp-endpoint: expected "
		 "an http:// or https:// URL, e.g. http://collector:4318");
	CHECK_INT(resolve(&c, err, NULL, "http://f", "15", NULL, NULL, NULL),
		  -EINVAL);
	CHECK(strstr(err, "'15' for --otlp-interval") != NULL);
	CHECK_INT(resolve(&c, err, NULL, "http://f", NULL, NULL, "0s", NULL),
		  -EINVAL);
	CHECK(strstr(err, "'0s' for --otlp-timeout") != NULL);
	CHECK_INT(resolve(&c, err, NULL, "http://f", NULL, NULL, NULL, "zstd"),
		  -EINVAL);
	CHECK_STR(err, "invalid value 'zstd' for --otlp-compression: expected "
		       "gzip or none");
	CHECK_INT(
	    resolve(&c, err, NULL, "http://f", NULL, "secret", NULL, NULL),
	    -EINVAL);
	CHECK(strstr(err, "--otlp-headers") != NULL);
	CHECK(strstr(err, "secret") == NULL); /* credentials are not echoed */
	CHECK_INT(resolve(&c, err, bad_env, NULL, NULL, NULL, NULL, NULL),
		  -EINVAL);
	CHECK(strstr(err, "'15s' in OTEL_METRIC_EXPORT_INTERVAL") != NULL);
	CHECK_INT(
	    resolve(&c, err, grpc_env, "http://f", NULL, NULL, NULL, NULL),
	    -EINVAL);
	CHECK(strstr(err, "OTEL_EXPORTER_OTLP_PROTOCOL") != NULL);
	/* ...but only matters when pushing. */
	CHECK_INT(resolve(&c, err, grpc_env, NULL, NULL, NULL, NULL, NULL), 0);
	CHECK_INT(resolve(&c, err, NULL, NULL, "1s", NULL, NULL, NULL),
		  -EINVAL);
	CHECK_STR(err, "--otlp-interval needs --otlp-endpoint (or "
		       "OTEL_EXPORTER_OTLP_ENDPOINT)");
}

static void test_cli(void)
{
	static struct options o;
	char err[CLI_ERR_LEN];

	unsetenv("OTEL_EXPORTER_OTLP_ENDPOINT");
	unsetenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT");
	unsetenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
	CHECK_INT(run(&o, err, 1), CLI_RUN);
	CHECK_STR(o.otlp.metrics_url, "");
	CHECK_INT(run(&o, err, 8, "--otlp-endpoint", "http://127.0.0.1:4318",
		      "--otlp-interval", "1s", "--otlp-headers", "a=b",
		      "--otlp-compression=none"),
		  CLI_RUN);
	CHECK_STR(o.otlp.metrics_url, "http://127.0.0.1:4318/v1/metrics");
	CHECK_INT(o.otlp.interval_ms, 1000);
	CHECK_INT(o.otlp.gzip, 0);
	CHECK_STR(o.otlp.headers[0], "a: b");
	CHECK_INT(run(&o, err, 3, "--otlp-endpoint", "ftp://x"), CLI_ERROR);
	CHECK(strstr(err, "'ftp://x' for --otlp-endpoint") != NULL);
	CHECK_INT(run(&o, err, 2, "--otlp-endpoint"), CLI_ERROR);
	CHECK_STR(err, "option --otlp-endpoint needs a value");

	/* The real environment, through cli_parse. */
	setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://envhost:4318/", 1);
	CHECK_INT(run(&o, err, 1), CLI_RUN);
	CHECK_STR(o.otlp.traces_url, "http://envhost:4318/v1/traces");
	CHECK_INT(run(&o, err, 3, "--otlp-endpoint", "https://flag"), CLI_RUN);
	CHECK_STR(o.otlp.traces_url, "https://flag/v1/traces");
	setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "envhost:4318", 1);
	CHECK_INT(run(&o, err, 1), CLI_ERROR);
	CHECK(strstr(err, "in OTEL_EXPORTER_OTLP_ENDPOINT") != NULL);
	unsetenv("OTEL_EXPORTER_OTLP_ENDPOINT");
}

int main(void)
{
	test_urls();
	test_headers();
	test_durations();
	test_resolve();
	test_cli();
	return check_summary();
}
