/*
 * cli.h - command-line options.
 *
 * Parsing is a pure function of argv so that the unit tests can check
 * every error message; main() only prints and exits.
 */
#ifndef KS_CLI_H
#define KS_CLI_H

#include <netinet/in.h>
#include <sys/socket.h>

#include "sampler.h"
#include "otlp_config.h"

#define CLI_MAX_PIDS 64
#define CLI_ERR_LEN 512

struct options {
	char listen_host[64];
	int listen_port;
	struct sockaddr_storage listen_addr;
	socklen_t listen_addrlen;
	int pids[CLI_MAX_PIDS]; /* only these processes (and their children) */
	int npids;
	int exclude_pids[CLI_MAX_PIDS];
	int nexclude;
	int log_level;
	unsigned max_series; /* label sets per metric family */
	unsigned refresh_ms; /* how often kernel maps are folded into metrics */
	unsigned slow_query_ms; /* statements at least this slow are kept */
	unsigned profile_hz; /* CPU sampling frequency */
	unsigned probe_groups; /* bit per enum probe_group_id; 0: default */
	const char *proc_root;
	struct trace_config trace; /* --traces, sampling */
	struct otlp_config otlp; /* push off when both URLs are "" */
};

enum cli_result {
	CLI_RUN = 0, /* start the agent */
	CLI_EXIT_OK, /* --help / --version printed */
	CLI_ERROR, /* bad usage; err holds one line */
};

void options_defaults(struct options *o);
/*
 * Parse argv into o. On CLI_ERROR, err holds one line naming the bad flag
 * or value. --help and --version write to out.
 */
enum cli_result cli_parse(int argc, char **argv, struct options *o,
			  char err[CLI_ERR_LEN], void *out /* FILE * */);
/* katascope profile --pid P --duration 10s -o out.svg */
struct profile_options {
	int pid;
	unsigned seconds;
	unsigned hz;
	int offcpu;
	const char *output; /* format from the extension */
	int format; /* enum prof_format */
};

enum cli_result cli_parse_profile(int argc, char **argv,
				  struct profile_options *o,
				  char err[CLI_ERR_LEN], void *out);
/* "10", "10s", "2m" -> seconds; -EINVAL otherwise. */
int parse_duration(const char *s, unsigned *secs);
/* ".svg" -> 2, ".pb.gz" -> 0, ".folded" -> 1; -1 otherwise. */
int output_format(const char *path);

/*
 * "node,http" -> a bit per probe group named (enum probe_group_id);
 * "+pgstatements,-profile" -> the default groups with those added and
 * removed (every name signed, or none). The process group is always
 * included. 0 or -EINVAL (an unknown or empty name, signed and unsigned
 * names mixed).
 */
int parse_probe_groups(const char *s, unsigned *mask);

/* "HOST:PORT" or "[V6]:PORT" -> sockaddr. 0 or -EINVAL. */
int parse_listen(const char *s, struct options *o);

#endif
