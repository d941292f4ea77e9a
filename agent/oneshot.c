/*
 * oneshot.c - `katascope profile --pid P --duration 10s -o out.svg`.
 *
 * Loads only the process and profile probes (sampling that one pid in the
 * kernel), prints progress once a second while it samples, then symbolizes
 * and writes the file in the format its name asks for.
 */
#include "oneshot.h"
#include "cli.h"
#include "log.h"
#include "probes.h"
#include "profiler.h"
#include "proctab.h"
#include "strbuf.h"
#include "sysenv.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	interrupted = 1;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int ignore_event(void *ctx, void *data, size_t len)
{
	return 0;
}

static int write_file(const char *path, const struct strbuf *sb)
{
	FILE *f = fopen(path, "wb");
	int ok;

	if (!f)
		return -errno;
	ok = fwrite(sb->buf, 1, sb->len, f) == sb->len;
	if (fclose(f) || !ok)
		return -EIO;
	return 0;
}

static int record(struct profile_options *po, struct probes *probes,
		  struct strbuf *out)
{
	static const char *const what[] = { "samples", "waits" };
	struct proctab *pt = proctab_new("/proc", 0, NULL);
	struct profiler *prof = profiler_new(probes, "/proc", po->hz);
	struct prof_session *s = NULL;
	uint64_t samples, next = 0;
	char err[128];
	double secs;
	int rc = -ENOMEM;

	if (!pt || !prof)
		goto out;
	proctab_seed(pt);
	s = profiler_start(prof, po->offcpu ? PROF_OFFCPU : PROF_CPU,
			   po->seconds, po->pid, NULL, err, sizeof(err));
	if (!s) {
		fprintf(stderr, "katascope: %s\n", err);
		rc = -EINVAL;
		goto out;
	}
	for (;;) {
		probes_poll(probes, 50);
		profiler_tick(prof, pt, mono_ns());
		profiler_progress(prof, s, &secs, &samples);
		if (mono_ns() >= next) {
			fprintf(stderr, "\rsampling pid %d: %.0f/%u s, %llu %s ",
				po->pid, secs, po->seconds,
				(unsigned long long)samples,
				what[po->offcpu]);
			next = mono_ns() + 1000000000ULL;
		}
		if (profiler_done(prof, s))
			break;
		if (interrupted || kill(po->pid, 0)) {
			/* Stop early, keeping what was sampled: a last drain. */
			profiler_tick(prof, pt, mono_ns() + 1000000000ULL);
			break;
		}
	}
	fprintf(stderr, "\n");
	rc = profiler_render(prof, s, (enum prof_format)po->format, out);
out:
	if (s)
		profiler_end(prof, s);
	profiler_free(prof);
	proctab_free(pt);
	return rc;
}

int profile_main(int argc, char **argv)
{
	struct probes_config cfg = { 0 };
	struct profile_options po;
	struct strbuf out = STRBUF_INIT;
	struct probes *probes = NULL;
	char msg[512] = "";
	int err;

	switch (cli_parse_profile(argc, argv, &po, msg, stdout)) {
	case CLI_EXIT_OK:
		return 0;
	case CLI_ERROR:
		fprintf(stderr, "katascope: %s\n", msg);
		return 2;
	case CLI_RUN:
		break;
	}
	if (kill(po.pid, 0) && errno == ESRCH) {
		fprintf(stderr, "katascope: no process %d\n", po.pid);
		return 1;
	}
	if (sysenv_check_caps(msg, sizeof(msg)) ||
	    sysenv_check_btf(msg, sizeof(msg)) ||
	    sysenv_mount_fs(msg, sizeof(msg))) {
		fprintf(stderr, "katascope: %s\n", msg);
		return 1;
	}
	sysenv_raise_memlock(msg, sizeof(msg));
	log_level = LOG_WARN;
	signal(SIGINT, on_sigint);
	cfg.groups = 1u << PG_PROCESS | 1u << PG_PROFILE;
	cfg.profile_hz = po.hz;
	cfg.profile_pid = po.pid;
	err = probes_open(&probes, getpid(), &cfg, ignore_event, NULL, msg,
			  sizeof(msg));
	if (err) {
		fprintf(stderr, "katascope: %s\n", msg);
		return 1;
	}
	err = record(&po, probes, &out);
	probes_close(probes);
	if (!err)
		err = write_file(po.output, &out);
	if (err) {
		fprintf(stderr, "katascope: cannot write %s: %s\n", po.output,
			strerror(-err));
		sb_free(&out);
		return 1;
	}
	fprintf(stderr, "wrote %s (%zu bytes)\n", po.output, out.len);
	sb_free(&out);
	return 0;
}
