/*
 * cli_run.h - for unit tests of command-line parsing: cli_parse() over
 * "katascope" and the given arguments (at most 15).
 */
#ifndef KS_TEST_CLI_RUN_H
#define KS_TEST_CLI_RUN_H

#include "cli.h"

#include <stdarg.h>
#include <stdio.h>

static inline enum cli_result run(struct options *o, char *err, int argc, ...)
{
	char *argv[16];
	va_list ap;
	int i;

	va_start(ap, argc);
	argv[0] = "katascope";
	for (i = 1; i < argc; i++)
		argv[i] = va_arg(ap, char *);
	argv[argc] = NULL;
	va_end(ap);
	return cli_parse(argc, argv, o, err, stdout);
}

#endif
