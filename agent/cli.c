/*
 * cli.c - command-line parsing (getopt_long), see cli.h.
 */
#include "cli.h"
#include "log.h"
#include "probes.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
	"Usage: katascope [OPTIONS]\n"
	"Kernel-level eBPF observability agent: watches every process on this host\n"
	"and serves Prometheus metrics.\n"
	"\n"
	"  -l, --listen ADDR:PORT   HTTP address for /metrics, /healthz (default 127.0.0.1:9464)\n"
	"  -p, --pid PID            observe only this process (repeatable)\n"
	"  -x, --exclude-pid PID    do not observe this process (repeatable)\n"
	"      --max-series N       label sets per metric before overflow (default 2000)\n"
	"      --refresh-ms MS      how often kernel counters are read (default 1000)\n"
	"      --slow-query-ms MS   keep and log statements at least this slow (default 50)\n"
	"      --profile-hz HZ      CPU profile sampling frequency (default 99)\n"
	"      --probes LIST        load only these probe groups, e.g. node,http; or the\n"
	"                           default ones with some added or removed, e.g.\n"
	"                           +pgstatements,-profile. Groups: process, tcp, sched,\n"
	"                           http, profile, postgres, node (default: these) and\n"
	"                           pgstatements (PostgreSQL per-statement USDT probes:\n"
	"                           traps on every statement, see docs/metrics.md);\n"
	"                           process is always loaded\n"
	"      --log-level LEVEL    error, warn, info or debug (default info)\n"
	"      --traces             build spans of every exchange; serve the newest at\n"
	"                           /v1/traces (see docs/tracing.md)\n"
	"      --trace-sample-ratio R  keep this share of traces, 0..1 (default 1;\n"
	"                           OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG)\n"
	"      --trace-keep-slower-than DUR  keep spans at least this slow whatever\n"
	"                           the ratio, e.g. 500ms, 2s; 0: off (default 500ms)\n"
	"      --otlp-endpoint URL  push OTLP/HTTP to URL/v1/metrics (and /v1/traces);\n"
	"                           also OTEL_EXPORTER_OTLP_ENDPOINT\n"
	"      --otlp-interval DUR  metrics push interval, e.g. 15s (default 15s;\n"
	"                           OTEL_METRIC_EXPORT_INTERVAL in ms)\n"
	"      --otlp-headers K=V,K2=V2  extra request headers, values %-encoded\n"
	"                           (OTEL_EXPORTER_OTLP_HEADERS)\n"
	"      --otlp-timeout DUR   per request, e.g. 10s or 500ms (default 10s;\n"
	"                           OTEL_EXPORTER_OTLP_TIMEOUT in ms)\n"
	"      --otlp-compression gzip|none  request body encoding (default gzip;\n"
	"                           OTEL_EXPORTER_OTLP_COMPRESSION)\n"
	"  -h, --help               show this help\n"
	"  -V, --version            show the version\n"
	"\n"
	"       katascope profile --pid PID --duration 10s -o out.svg\n"
	"One-shot CPU profile of a process (see katascope profile --help).\n"
	"\n"
	"Needs root, or CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH\n"
	"(CAP_SYS_RESOURCE on kernels older than 5.11).\n";

void options_defaults(struct options *o)
{
	memset(o, 0, sizeof(*o));
	o->log_level = LOG_INFO;
	o->max_series = 2000;
	o->refresh_ms = 1000;
	o->slow_query_ms = 50;
	o->profile_hz = 99;
	o->proc_root = "/proc";
	parse_listen("127.0.0.1:9464", o);
}

static int parse_uint(const char *s, unsigned long min, unsigned long max,
		      unsigned long *out)
{
	char *end;
	unsigned long v;

	if (!*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int parse_listen(const char *s, struct options *o)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&o->listen_addr;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&o->listen_addr;
	char host[64];
	const char *colon, *hs, *he;
	unsigned long port;

	if (s[0] == '[') {
		he = strchr(s, ']');
		if (!he || he[1] != ':')
			return -EINVAL;
		hs = s + 1;
		colon = he + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		hs = s;
		he = colon;
	}
	if ((size_t)(he - hs) >= sizeof(host))
		return -EINVAL;
	memcpy(host, hs, he - hs);
	host[he - hs] = '\0';
	if (parse_uint(colon + 1, 1, 65535, &port))
		return -EINVAL;

	memset(&o->listen_addr, 0, sizeof(o->listen_addr));
	if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0) {
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_ANY);
	} else if (strcmp(host, "localhost") == 0) {
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
	} else {
		return -EINVAL;
	}
	if (o->listen_addr.ss_family == AF_INET) {
		sin->sin_port = htons((unsigned short)port);
		o->listen_addrlen = sizeof(*sin);
	} else {
		sin6->sin6_port = htons((unsigned short)port);
		o->listen_addrlen = sizeof(*sin6);
	}
	snprintf(o->listen_host, sizeof(o->listen_host), "%s", host);
	o->listen_port = (int)port;
	return 0;
}

int parse_probe_groups(const char *s, unsigned *mask)
{
	static const char *const names[PG_MAX] = PROBE_GROUP_NAMES;
	const char *p = s, *end;
	int signed_ = *s == '+' || *s == '-';
	unsigned m = signed_ ? PROBE_GROUPS_DEFAULT : 0;
	char sign;
	size_t n;
	int g;

	for (;;) {
		sign = *p == '+' || *p == '-' ? *p++ : 0;
		if (!sign != !signed_)
			return -EINVAL;
		end = strchr(p, ',');
		n = end ? (size_t)(end - p) : strlen(p);
		for (g = 0; g < PG_MAX; g++)
			if (strlen(names[g]) == n && !strncmp(p, names[g], n))
				break;
		if (g == PG_MAX)
			return -EINVAL;
		if (sign == '-')
			m &= ~(1u << g);
		else
			m |= 1u << g;
		if (!end)
			break;
		p = end + 1;
	}
	*mask = m | 1u << PG_PROCESS;
	return 0;
}

static int add_pid(int *arr, int *n, const char *flag, const char *v,
		   char err[CLI_ERR_LEN])
{
	unsigned long pid;

	if (parse_uint(v, 1, INT_MAX, &pid)) {
		snprintf(err, CLI_ERR_LEN,
			 "invalid value '%s' for %s: expected a process id", v,
			 flag);
		return -1;
	}
	if (*n >= CLI_MAX_PIDS) {
		snprintf(err, CLI_ERR_LEN, "too many %s options (at most %d)",
			 flag, CLI_MAX_PIDS);
		return -1;
	}
	arr[(*n)++] = (int)pid;
	return 0;
}

enum {
	OPT_LOG_LEVEL = 256,
	OPT_MAX_SERIES,
	OPT_REFRESH_MS,
	OPT_SLOW_MS,
	OPT_PROFILE_HZ,
	OPT_TYPE,
	OPT_TRACES,
	OPT_TRACE_RATIO,
	OPT_TRACE_SLOW,
	OPT_PROBES,
	OPT_OTLP_ENDPOINT,
	OPT_OTLP_INTERVAL,
	OPT_OTLP_HEADERS,
	OPT_OTLP_TIMEOUT,
	OPT_OTLP_COMPRESSION,
};

static const struct option longopts[] = {
	{ "listen", required_argument, NULL, 'l' },
	{ "pid", required_argument, NULL, 'p' },
	{ "exclude-pid", required_argument, NULL, 'x' },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "max-series", required_argument, NULL, OPT_MAX_SERIES },
	{ "refresh-ms", required_argument, NULL, OPT_REFRESH_MS },
	{ "slow-query-ms", required_argument, NULL, OPT_SLOW_MS },
	{ "profile-hz", required_argument, NULL, OPT_PROFILE_HZ },
	{ "traces", no_argument, NULL, OPT_TRACES },
	{ "trace-sample-ratio", required_argument, NULL, OPT_TRACE_RATIO },
	{ "trace-keep-slower-than", required_argument, NULL, OPT_TRACE_SLOW },
	{ "probes", required_argument, NULL, OPT_PROBES },
	{ "otlp-endpoint", required_argument, NULL, OPT_OTLP_ENDPOINT },
	{ "otlp-interval", required_argument, NULL, OPT_OTLP_INTERVAL },
	{ "otlp-headers", required_argument, NULL, OPT_OTLP_HEADERS },
	{ "otlp-timeout", required_argument, NULL, OPT_OTLP_TIMEOUT },
	{ "otlp-compression", required_argument, NULL, OPT_OTLP_COMPRESSION },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

/* The flag as the user wrote it, for messages. */
static const char *flag_name(int c, char *buf, size_t len)
{
	const struct option *lo;

	for (lo = longopts; lo->name; lo++)
		if (lo->val == c) {
			snprintf(buf, len, "--%s", lo->name);
			return buf;
		}
	snprintf(buf, len, "-%c", c);
	return buf;
}

enum cli_result cli_parse(int argc, char **argv, struct options *o,
			  char err[CLI_ERR_LEN], void *out)
{
	struct trace_flags tf = { 0 };
	struct otlp_flags otlp = { 0 };
	unsigned long v;
	char fb[32];
	int c, lvl;

	options_defaults(o);
	err[0] = '\0';
	optind = 0; /* full reset: tests call this repeatedly */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":l:p:x:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'l':
			if (parse_listen(optarg, o)) {
				snprintf(err, CLI_ERR_LEN,
					 "invalid value '%s' for --listen: expected ADDR:PORT, e.g. 127.0.0.1:9464 or [::1]:9464",
					 optarg);
				return CLI_ERROR;
			}
			break;
		case 'p':
			if (add_pid(o->pids, &o->npids, "--pid", optarg, err))
				return CLI_ERROR;
			break;
		case 'x':
			if (add_pid(o->exclude_pids, &o->nexclude,
				    "--exclude-pid", optarg, err))
				return CLI_ERROR;
			break;
		case OPT_LOG_LEVEL:
			lvl = log_level_parse(optarg);
			if (lvl < 0) {
				snprintf(err, CLI_ERR_LEN,
					 "invalid value '%s' for --log-level: expected error, warn, info or debug",
					 optarg);
				return CLI_ERROR;
			}
			o->log_level = lvl;
			break;
		case OPT_MAX_SERIES:
			if (parse_uint(optarg, 1, 1000000, &v)) {
				snprintf(err, CLI_ERR_LEN,
					 "invalid value '%s' for --max-series: expected 1..1000000",
					 optarg);
				return CLI_ERROR;
			}
			o->max_series = (unsigned)v;
			break;
		case OPT_REFRESH_MS:
			if (parse_uint(optarg, 100, 60000, &v)) {
				snprintf(err, CLI_ERR_LEN,
					 "invalid value '%s' for --refresh-ms: expected 100..60000",
					 optarg);
				return CLI_ERROR;
			}
			o->refresh_ms = (unsigned)v;
			break;
		case OPT_SLOW_MS:
			if (parse_uint(optarg, 0, 3600000, &v)) {
				snprintf(err, CLI_ERR_LEN,
					 "invalid value '%s' for --slow-query-ms: expected 0..3600000",
					 optarg);
				return CLI_ERROR;
			}
			o->slow_query_ms = (unsigned)v;
			break;
		case OPT_PROFILE_HZ:
			if (parse_uint(optarg, 1, 1000, &v)) {
				snprintf(err, CLI_ERR_LEN,
					 "invalid value '%s' for --profile-hz: expected 1..1000",
					 optarg);
				return CLI_ERROR;
			}
			o->profile_hz = (unsigned)v;
			break;
		case OPT_TRACES:
			tf.traces = true;
			break;
		case OPT_TRACE_RATIO:
			tf.ratio = optarg;
			break;
		case OPT_TRACE_SLOW:
			tf.keep_slower = optarg;
			break;
		case OPT_PROBES:
			if (parse_probe_groups(optarg, &o->probe_groups)) {
				snprintf(err, CLI_ERR_LEN,
					 "invalid value '%s' for --probes: expected a comma-separated list of process, tcp, sched, http, profile, postgres, node, pgstatements, all with a + or - sign or none",
					 optarg);
				return CLI_ERROR;
			}
			break;
		case OPT_OTLP_ENDPOINT:
			otlp.endpoint = optarg;
			break;
		case OPT_OTLP_INTERVAL:
			otlp.interval = optarg;
			break;
		case OPT_OTLP_HEADERS:
			otlp.headers = optarg;
			break;
		case OPT_OTLP_TIMEOUT:
			otlp.timeout = optarg;
			break;
		case OPT_OTLP_COMPRESSION:
			otlp.compression = optarg;
			break;
		case 'h':
			fputs(usage, (FILE *)out);
			return CLI_EXIT_OK;
		case 'V':
			fprintf((FILE *)out, "katascope %s\n", KATASCOPE_VERSION);
			return CLI_EXIT_OK;
		case ':':
			snprintf(err, CLI_ERR_LEN, "option %s needs a value",
				 optopt ? flag_name(optopt, fb, sizeof(fb)) :
					  argv[optind - 1]);
			return CLI_ERROR;
		default:
			if (optopt)
				snprintf(err, CLI_ERR_LEN,
					 "unknown option '-%c' (see --help)",
					 optopt);
			else
				snprintf(err, CLI_ERR_LEN,
					 "unknown option '%s' (see --help)",
					 argv[optind - 1]);
			return CLI_ERROR;
		}
	}
	if (optind < argc) {
		snprintf(err, CLI_ERR_LEN,
			 "unexpected argument '%s' (see --help)", argv[optind]);
		return CLI_ERROR;
	}
	if (trace_config_resolve(&tf, getenv, &o->trace, err, CLI_ERR_LEN))
		return CLI_ERROR;
	if (otlp_config_resolve(&otlp, getenv, &o->otlp, err, CLI_ERR_LEN))
		return CLI_ERROR;
	return CLI_RUN;
}

/* ---- katascope profile -------------------------------------------------- */

static const char profile_usage[] =
	"Usage: katascope profile --pid PID [--duration 10s] -o FILE [--hz 99] [--type cpu|off_cpu]\n"
	"Sample the stacks of one process and write a profile; the format follows\n"
	"the file name: .svg (flame graph), .pb.gz (pprof), .folded (collapsed).\n";

int parse_duration(const char *s, unsigned *secs)
{
	unsigned long v;
	char *end;

	if (!*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	if (!strcmp(end, "m"))
		v *= 60;
	else if (*end && strcmp(end, "s"))
		return -EINVAL;
	if (v < 1 || v > 3600)
		return -EINVAL;
	*secs = (unsigned)v;
	return 0;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a > b && !strcmp(s + a - b, suffix);
}

int output_format(const char *path)
{
	if (ends_with(path, ".pb.gz"))
		return 0;
	if (ends_with(path, ".folded"))
		return 1;
	if (ends_with(path, ".svg"))
		return 2;
	return -1;
}

enum cli_result cli_parse_profile(int argc, char **argv,
				  struct profile_options *o,
				  char err[CLI_ERR_LEN], void *out)
{
	static const struct option lo[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "duration", required_argument, NULL, 'd' },
		{ "output", required_argument, NULL, 'o' },
		{ "hz", required_argument, NULL, OPT_PROFILE_HZ },
		{ "type", required_argument, NULL, OPT_TYPE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long v;
	int c;

	memset(o, 0, sizeof(*o));
	o->seconds = 10;
	o->hz = 99;
	err[0] = '\0';
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":p:d:o:h", lo, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (parse_uint(optarg, 1, INT_MAX, &v)) {
				snprintf(err, CLI_ERR_LEN,
					 "invalid value '%s' for --pid: expected a process id",
					 optarg);
				return CLI_ERROR;
			}
			o->pid = (int)v;
			break;
		case 'd':
			if (parse_duration(optarg, &o->seconds)) {
				snprintf(err, CLI_ERR_LEN,
					 "invalid value '%s' for --duration: expected e.g. 10s or 2m (1s..60m)",
					 optarg);
				return CLI_ERROR;
			}
			break;
		case 'o':
			o->output = optarg;
			o->format = output_format(optarg);
			if (o->format < 0) {
				snprintf(err, CLI_ERR_LEN,
					 "cannot tell the format of '%s': name it .svg, .pb.gz or .folded",
					 optarg);
				return CLI_ERROR;
			}
			break;
		case OPT_PROFILE_HZ:
			if (parse_uint(optarg, 1, 1000, &v)) {
				snprintf(err, CLI_ERR_LEN,
					 "invalid value '%s' for --hz: expected 1..1000",
					 optarg);
				return CLI_ERROR;
			}
			o->hz = (unsigned)v;
			break;
		case OPT_TYPE:
			if (strcmp(optarg, "cpu") && strcmp(optarg, "off_cpu")) {
				snprintf(err, CLI_ERR_LEN,
					 "invalid value '%s' for --type: expected cpu or off_cpu",
					 optarg);
				return CLI_ERROR;
			}
			o->offcpu = !strcmp(optarg, "off_cpu");
			break;
		case 'h':
			fputs(profile_usage, (FILE *)out);
			return CLI_EXIT_OK;
		case ':':
			snprintf(err, CLI_ERR_LEN, "option %s needs a value",
				 argv[optind - 1]);
			return CLI_ERROR;
		default:
			snprintf(err, CLI_ERR_LEN,
				 "unknown option '%s' (see katascope profile --help)",
				 argv[optind - 1]);
			return CLI_ERROR;
		}
	}
	if (optind < argc) {
		snprintf(err, CLI_ERR_LEN, "unexpected argument '%s'",
			 argv[optind]);
		return CLI_ERROR;
	}
	if (!o->pid) {
		snprintf(err, CLI_ERR_LEN, "katascope profile needs --pid PID");
		return CLI_ERROR;
	}
	if (!o->output) {
		snprintf(err, CLI_ERR_LEN,
			 "katascope profile needs -o FILE (.svg, .pb.gz or .folded)");
		return CLI_ERROR;
	}
	return CLI_RUN;
}
