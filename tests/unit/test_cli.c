/*
 * test_cli.c - command-line parsing: defaults, values, and the one-line
 * error for every kind of bad input.
 */
#include "check.h"
#include "cli.h"
#include "cli_run.h"
#include "probes.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

int main(void)
{
	struct options o;
	char err[CLI_ERR_LEN];
	struct sockaddr_in *sin = (struct sockaddr_in *)&o.listen_addr;
	FILE *null = fopen("/dev/null", "w");

	CHECK_INT(run(&o, err, 1), CLI_RUN);
	CHECK_INT(o.listen_port, 9464);
	CHECK_STR(o.listen_host, "127.0.0.1");
	CHECK_INT(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
	CHECK_INT(o.max_series, 2000);

	CHECK_INT(run(&o, err, 3, "--listen", "0.0.0.0:9100"), CLI_RUN);
	CHECK_INT(o.listen_port, 9100);
	CHECK_INT(sin->sin_addr.s_addr, htonl(INADDR_ANY));
	CHECK_INT(run(&o, err, 2, "--listen=[::1]:9200"), CLI_RUN);
	CHECK_INT(o.listen_addr.ss_family, AF_INET6);
	CHECK_INT(o.listen_port, 9200);
	CHECK_INT(run(&o, err, 3, "-l", ":9300"), CLI_RUN);
	CHECK_INT(o.listen_port, 9300);

	CHECK_INT(run(&o, err, 5, "--pid", "12", "-p", "34"), CLI_RUN);
	CHECK_INT(o.npids, 2);
	CHECK_INT(o.pids[1], 34);
	CHECK_INT(run(&o, err, 3, "--exclude-pid", "7"), CLI_RUN);
	CHECK_INT(o.exclude_pids[0], 7);
	CHECK_INT(run(&o, err, 3, "--log-level", "debug"), CLI_RUN);
	CHECK_INT(o.log_level, 3);

	/* --probes: the groups named, process always; default (0): all but
	 * pgstatements; signed names change the default set. */
	CHECK_INT(o.probe_groups, 0);
	CHECK_INT(run(&o, err, 3, "--probes", "node"), CLI_RUN);
	CHECK_INT(o.probe_groups, 1u << PG_PROCESS | 1u << PG_NODE);
	CHECK_INT(run(&o, err, 2, "--probes=node,http,tcp"), CLI_RUN);
	CHECK_INT(o.probe_groups, 1u << PG_PROCESS | 1u << PG_NODE |
					  1u << PG_L7 | 1u << PG_TCP);
	CHECK_INT(run(&o, err, 3, "--probes",
		      "process,tcp,sched,http,profile,postgres,node"),
		  CLI_RUN);
	CHECK_INT(o.probe_groups, PROBE_GROUPS_DEFAULT);
	CHECK_INT(PROBE_GROUPS_DEFAULT, ((1u << PG_MAX) - 1) & ~(1u << PG_PGSTMT));
	CHECK_INT(run(&o, err, 3, "--probes", "+pgstatements"), CLI_RUN);
	CHECK_INT(o.probe_groups, (1u << PG_MAX) - 1);
	CHECK_INT(run(&o, err, 3, "--probes", "+pgstatements,-profile,-node"),
		  CLI_RUN);
	CHECK_INT(o.probe_groups, ((1u << PG_MAX) - 1) & ~(1u << PG_PROFILE) &
					  ~(1u << PG_NODE));
	CHECK_INT(run(&o, err, 3, "--probes", "-process"), CLI_RUN);
	CHECK_INT(o.probe_groups, PROBE_GROUPS_DEFAULT);
	CHECK_INT(run(&o, err, 3, "--probes", "-postgres"), CLI_RUN);
	CHECK_INT(o.probe_groups, PROBE_GROUPS_DEFAULT & ~(1u << PG_POSTGRES));
	CHECK_INT(run(&o, err, 3, "--probes", "pgstatements"), CLI_RUN);
	CHECK_INT(o.probe_groups, 1u << PG_PROCESS | 1u << PG_PGSTMT);
	CHECK_INT(run(&o, err, 3, "--probes", "+pgstatements,node"), CLI_ERROR);
	CHECK_INT(run(&o, err, 3, "--probes", "node,-profile"), CLI_ERROR);
	CHECK_INT(run(&o, err, 3, "--probes", "+"), CLI_ERROR);
	CHECK_INT(run(&o, err, 3, "--probes", "+pgstatements,"), CLI_ERROR);
	CHECK_INT(run(&o, err, 3, "--probes", "process"), CLI_RUN);
	CHECK_INT(o.probe_groups, 1u << PG_PROCESS);
	CHECK_INT(run(&o, err, 3, "--probes", "node,nod"), CLI_ERROR);
	CHECK_STR(err, "invalid value 'node,nod' for --probes: expected a "
		       "comma-separated list of process, tcp, sched, http, "
		       "profile, postgres, node, pgstatements, all with a + or - "
		       "sign or none");
	CHECK_INT(run(&o, err, 3, "--probes", ""), CLI_ERROR);
	CHECK_INT(run(&o, err, 3, "--probes", "node,"), CLI_ERROR);
	CHECK_INT(run(&o, err, 3, "--probes", ",node"), CLI_ERROR);
	CHECK_INT(run(&o, err, 3, "--probes", "Node"), CLI_ERROR);
	CHECK_INT(run(&o, err, 2, "--probes"), CLI_ERROR);
	CHECK_STR(err, "option --probes needs a value");
	{
		unsigned m = 42;

		CHECK_INT(parse_probe_groups("l7", &m), -EINVAL);
		CHECK_INT(m, 42); /* untouched on error */
	}

	/* Each bad input: CLI_ERROR and a message naming the flag/value. */
	CHECK_INT(run(&o, err, 2, "--bogus"), CLI_ERROR);
	CHECK_STR(err, "unknown option '--bogus' (see --help)");
	CHECK_INT(run(&o, err, 2, "-q"), CLI_ERROR);
	CHECK_STR(err, "unknown option '-q' (see --help)");
	CHECK_INT(run(&o, err, 3, "--listen", "nohost"), CLI_ERROR);
	CHECK(strstr(err, "'nohost' for --listen") != NULL);
	CHECK_INT(run(&o, err, 3, "--listen", "127.0.0.1:70000"), CLI_ERROR);
	CHECK(strstr(err, "--listen") != NULL);
	CHECK_INT(run(&o, err, 3, "--listen", "999.1.1.1:80"), CLI_ERROR);
	CHECK_INT(run(&o, err, 3, "--listen", "127.0.0.1:"), CLI_ERROR);
	CHECK_INT(run(&o, err, 3, "--listen", "[::1:80"), CLI_ERROR);
	CHECK_INT(run(&o, err, 3, "--pid", "abc"), CLI_ERROR);
	CHECK_STR(err, "invalid value 'abc' for --pid: expected a process id");
	CHECK_INT(run(&o, err, 3, "--pid", "-5"), CLI_ERROR);
	CHECK_INT(run(&o, err, 3, "--pid", "0"), CLI_ERROR);
	CHECK_INT(run(&o, err, 3, "--log-level", "loud"), CLI_ERROR);
	CHECK(strstr(err, "--log-level") != NULL);
	CHECK_INT(run(&o, err, 3, "--max-series", "0"), CLI_ERROR);
	CHECK_INT(run(&o, err, 3, "--refresh-ms", "5"), CLI_ERROR);
	CHECK_INT(run(&o, err, 2, "--listen"), CLI_ERROR);
	CHECK_STR(err, "option --listen needs a value");
	CHECK_INT(run(&o, err, 2, "extra"), CLI_ERROR);
	CHECK_STR(err, "unexpected argument 'extra' (see --help)");

	{
		char *argv[] = { "katascope", "--help", NULL };
		CHECK_INT(cli_parse(2, argv, &o, err, null), CLI_EXIT_OK);
	}
	{
		char *argv[] = { "katascope", "-V", NULL };
		CHECK_INT(cli_parse(2, argv, &o, err, null), CLI_EXIT_OK);
	}
	fclose(null);
	return check_summary();
}
