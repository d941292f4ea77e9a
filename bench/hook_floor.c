// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bench/hook_floor.c - load bench/hook_floor.bpf.o and attach its empty
 * programs where the agent attaches its own by default: the tracepoints
 * by section, the CPU sampler at HZ on every CPU, and one empty USDT
 * program on each PostgreSQL probe the agent uses in each postgres binary
 * named. Prints "ready N" (links made) and holds them until SIGTERM or
 * SIGINT. --only attaches only the kinds named (a comma-separated list
 * of syscalls, sched, tcp, sampler, usdt). For bench/hook_floor.py only.
 *
 *   hook_floor OBJ [--hz N] [--only KINDS] [--postgres BINARY]...
 */
#include <errno.h>
#include <linux/perf_event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <bpf/libbpf.h>

#define MAX_LINKS 256

static const char *const pg_probes[] = {
	"query__start",		 "query__done",		"query__parse__start",
	"query__parse__done",	 "query__plan__start",	"query__plan__done",
	"query__execute__start", "query__execute__done", "lock__wait__start",
	"lock__wait__done",	 "transaction__commit", "transaction__abort",
	"deadlock__found",	 "buffer__read__done",	"checkpoint__start",
};

/* The kind of each program, by name; sampler and usdt are named below. */
static const struct {
	const char *prog, *kind;
} kinds[] = {
	{ "floor_set_state", "tcp" },	  { "floor_retransmit", "tcp" },
	{ "floor_exec", "sched" },	  { "floor_exit", "sched" },
	{ "floor_fork", "sched" },	  { "floor_switch", "sched" },
	{ "floor_cpu_sample", "sampler" }, { "floor_usdt", "usdt" },
};

static struct bpf_link *links[MAX_LINKS];
static int nlinks;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = sig;
}

static int keep(struct bpf_link *l, const char *what)
{
	long err = libbpf_get_error(l);

	if (err) {
		fprintf(stderr, "hook_floor: attach %s: %s\n", what,
			strerror((int)-err));
		return -1;
	}
	if (nlinks == MAX_LINKS) {
		fprintf(stderr, "hook_floor: more than %d links\n", MAX_LINKS);
		return -1;
	}
	links[nlinks++] = l;
	return 0;
}

static const char *kind_of(const char *prog)
{
	unsigned i;

	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (!strcmp(kinds[i].prog, prog))
			return kinds[i].kind;
	return "syscalls";
}

/* Whether kind is in the comma-separated list (NULL: all kinds). */
static int wanted(const char *list, const char *kind)
{
	size_t n = strlen(kind);
	const char *p = list;

	if (!list)
		return 1;
	while ((p = strstr(p, kind))) {
		if ((p == list || p[-1] == ',') && (p[n] == ',' || !p[n]))
			return 1;
		p += n;
	}
	return 0;
}

static int attach_sampler(struct bpf_program *prog, unsigned hz)
{
	struct perf_event_attr attr = {
		.type = PERF_TYPE_SOFTWARE,
		.size = sizeof(attr),
		.config = PERF_COUNT_SW_CPU_CLOCK,
		.sample_freq = hz,
		.freq = 1,
	};
	long ncpu = sysconf(_SC_NPROCESSORS_CONF);
	int cpu, fd;

	for (cpu = 0; cpu < ncpu; cpu++) {
		fd = (int)syscall(SYS_perf_event_open, &attr, -1, cpu, -1,
				  PERF_FLAG_FD_CLOEXEC);
		if (fd < 0) {
			if (errno == ENODEV || errno == ENXIO)
				continue;
			perror("hook_floor: perf_event_open");
			return -1;
		}
		if (keep(bpf_program__attach_perf_event(prog, fd),
			 "perf event"))
			return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *pg[8], *only = NULL;
	unsigned hz = 99;
	int npg = 0, i, j;
	struct bpf_object *obj;
	struct bpf_program *prog;

	if (argc < 2) {
		fprintf(stderr,
			"usage: hook_floor OBJ [--hz N] [--only KINDS] [--postgres BINARY]...\n");
		return 2;
	}
	for (i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--hz") && i + 1 < argc) {
			hz = (unsigned)atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
			only = argv[++i];
		} else if (!strcmp(argv[i], "--postgres") && i + 1 < argc &&
			   npg < 8) {
			pg[npg++] = argv[++i];
		} else {
			fprintf(stderr, "hook_floor: bad argument %s\n",
				argv[i]);
			return 2;
		}
	}
	obj = bpf_object__open_file(argv[1], NULL);
	if (libbpf_get_error(obj) || bpf_object__load(obj)) {
		fprintf(stderr, "hook_floor: cannot load %s\n", argv[1]);
		return 1;
	}
	bpf_object__for_each_program(prog, obj)
	{
		const char *name = bpf_program__name(prog);

		if (!wanted(only, kind_of(name)))
			continue;
		if (!strcmp(name, "floor_cpu_sample")) {
			if (hz && attach_sampler(prog, hz))
				return 1;
		} else if (!strcmp(name, "floor_usdt")) {
			for (i = 0; i < npg; i++)
				for (j = 0; j < (int)(sizeof(pg_probes) /
						      sizeof(pg_probes[0]));
				     j++)
					if (keep(bpf_program__attach_usdt(
							 prog, -1, pg[i],
							 "postgresql",
							 pg_probes[j], NULL),
						 pg_probes[j]))
						return 1;
		} else if (keep(bpf_program__attach(prog), name)) {
			return 1;
		}
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	printf("ready %d\n", nlinks);
	fflush(stdout);
	while (!stop)
		pause();
	for (i = 0; i < nlinks; i++)
		bpf_link__destroy(links[i]);
	bpf_object__close(obj);
	return 0;
}
