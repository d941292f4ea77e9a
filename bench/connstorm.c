/*
 * connstorm.c - a loopback TCP connection storm for katascope's benchmarks.
 *
 * One process runs both ends so that the agent sees both directions under
 * one service name (set OTEL_SERVICE_NAME on it):
 *
 *   server: a listener on 127.0.0.1 (an ephemeral port), --server-threads
 *           threads blocked in accept4(); each accepted connection gets one
 *           byte and is closed at once.
 *   client: --threads threads that take tickets from a shared counter.
 *           Ticket i is due at start + i / rate; a thread sleeps until its
 *           ticket is due, then connect()s, reads the byte, reads EOF and
 *           closes. With --rate 0 there is no pacing: every thread loops as
 *           fast as the kernel lets it (saturation).
 *
 * The server closes first so TIME_WAIT lands on the server side, whose
 * 4-tuples differ by client port; the client's ephemeral ports are released
 * at once and the run cannot starve of them. Everything is bounded: the
 * client stops issuing tickets at --duration seconds, every socket has a
 * 5 s send/receive timeout, and a watchdog alarm kills the process if it is
 * still running at duration + 30 s.
 *
 * Output (stdout): one "key=value" per line, e.g.
 *   completed=150000      connections that delivered the byte and EOF
 *   connect_failed=0      connect() returned an error
 *   io_failed=0           connected, but the byte or EOF did not arrive
 *   accepted=150000       connections the server accepted
 *   elapsed_s=30.000      first ticket to last connection closed
 *   achieved_rate=5000.0  completed / elapsed_s
 *   late_max_ms=0.3       worst lag of a ticket behind its schedule
 *   cpu_user_s=0.1        this process's CPU time (getrusage), user
 *   cpu_sys_s=2.5         and system: BPF programs that run in its
 *                         context (socket state changes, accept, context
 *                         switches) show up here
 * Exit status: 0 on a finished run (whatever the failures), 2 on bad usage,
 * 1 when the storm could not be set up.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 64
#define IO_TIMEOUT_S 5

static double rate = 5000; /* connections per second, 0: unpaced */
static double duration = 10; /* seconds */
static int nthreads = 4;
static int nservers = 2;

static int listen_fd = -1;
static struct sockaddr_in server_addr;
static uint64_t start_ns, end_ns;

static atomic_ullong next_ticket;
static atomic_ullong completed, connect_failed, io_failed, accepted;
static atomic_ullong late_max_ns;
static atomic_int stopping;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = { .tv_sec = t / 1000000000ULL,
			       .tv_nsec = t % 1000000000ULL };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	       EINTR)
		;
}

static void set_timeouts(int fd)
{
	struct timeval tv = { .tv_sec = IO_TIMEOUT_S };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static void *server_main(void *arg)
{
	char byte = 'k';
	int fd;

	(void)arg;
	for (;;) {
		fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (atomic_load(&stopping))
				return NULL;
			if (errno == EINTR || errno == ECONNABORTED ||
			    errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM)
				continue;
			/* shutdown() of the listener ends accept with EINVAL */
			return NULL;
		}
		atomic_fetch_add(&accepted, 1);
		set_timeouts(fd);
		if (write(fd, &byte, 1) != 1) {
			/* the client will count it as io_failed */
		}
		close(fd);
	}
}

/* One connection: connect, read the byte, read EOF, close. */
static void one_connection(void)
{
	char buf[8];
	ssize_t n;
	int fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		atomic_fetch_add(&connect_failed, 1);
		return;
	}
	set_timeouts(fd);
	if (connect(fd, (struct sockaddr *)&server_addr,
		    sizeof(server_addr))) {
		atomic_fetch_add(&connect_failed, 1);
		close(fd);
		return;
	}
	n = read(fd, buf, sizeof(buf));
	if (n == 1)
		n = read(fd, buf, sizeof(buf));
	if (n == 0)
		atomic_fetch_add(&completed, 1);
	else
		atomic_fetch_add(&io_failed, 1);
	close(fd);
}

static void note_lateness(uint64_t late)
{
	unsigned long long cur = atomic_load(&late_max_ns);

	while (late > cur &&
	       !atomic_compare_exchange_weak(&late_max_ns, &cur, late))
		;
}

static void *client_main(void *arg)
{
	uint64_t stop = start_ns + (uint64_t)(duration * 1e9);
	uint64_t i, due, t;

	(void)arg;
	for (;;) {
		i = atomic_fetch_add(&next_ticket, 1);
		if (rate > 0) {
			due = start_ns + (uint64_t)((double)i * 1e9 / rate);
			if (due >= stop)
				return NULL;
			t = now_ns();
			if (t < due)
				sleep_until(due);
			else
				note_lateness(t - due);
		} else if (now_ns() >= stop) {
			return NULL;
		}
		one_connection();
	}
}

static void on_alarm(int sig)
{
	static const char msg[] = "connstorm: watchdog: run overran, aborting\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0) {
		/* nothing more to do */
	}
	_exit(1);
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: connstorm [--rate N] [--duration S] [--threads N] [--server-threads N]\n"
		"Opens and closes short loopback TCP connections at N per second for S seconds\n"
		"(--rate 0: as fast as possible) and prints what it achieved.\n"
		"  --rate N            connections per second (default 5000; 0 = unpaced)\n"
		"  --duration S        seconds of load (default 10)\n"
		"  --threads N         client threads (default 4, max %d)\n"
		"  --server-threads N  threads in accept() (default 2, max %d)\n",
		MAX_THREADS, MAX_THREADS);
}

static int parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "rate", required_argument, NULL, 'r' },
		{ "duration", required_argument, NULL, 'd' },
		{ "threads", required_argument, NULL, 't' },
		{ "server-threads", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "r:d:t:s:h", opts, NULL)) != -1) {
		errno = 0;
		switch (c) {
		case 'r':
			rate = strtod(optarg, &end);
			if (errno || *end || rate < 0 || rate > 1e7)
				goto bad;
			break;
		case 'd':
			duration = strtod(optarg, &end);
			if (errno || *end || duration <= 0 || duration > 3600)
				goto bad;
			break;
		case 't':
			nthreads = (int)strtol(optarg, &end, 10);
			if (errno || *end || nthreads < 1 ||
			    nthreads > MAX_THREADS)
				goto bad;
			break;
		case 's':
			nservers = (int)strtol(optarg, &end, 10);
			if (errno || *end || nservers < 1 ||
			    nservers > MAX_THREADS)
				goto bad;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return -1;
	}
	return 0;
bad:
	fprintf(stderr, "connstorm: invalid value '%s' for option -%c\n",
		optarg, c);
	return -1;
}

static int open_listener(void)
{
	socklen_t len = sizeof(server_addr);
	int one = 1;

	listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (listen_fd < 0)
		return -errno;
	setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&server_addr, 0, sizeof(server_addr));
	server_addr.sin_family = AF_INET;
	server_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(listen_fd, (struct sockaddr *)&server_addr,
		 sizeof(server_addr)) ||
	    listen(listen_fd, 4096) ||
	    getsockname(listen_fd, (struct sockaddr *)&server_addr, &len))
		return -errno;
	return 0;
}

int main(int argc, char **argv)
{
	pthread_t clients[MAX_THREADS], servers[MAX_THREADS];
	struct rusage ru;
	double elapsed;
	int i, err;

	if (parse_args(argc, argv))
		return 2;
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, on_alarm);
	alarm((unsigned int)duration + 30);

	err = open_listener();
	if (err) {
		fprintf(stderr, "connstorm: cannot listen on 127.0.0.1: %s\n",
			strerror(-err));
		return 1;
	}
	for (i = 0; i < nservers; i++)
		if (pthread_create(&servers[i], NULL, server_main, NULL)) {
			fprintf(stderr, "connstorm: cannot start threads\n");
			return 1;
		}

	start_ns = now_ns() + 10000000ULL; /* 10 ms for the threads to start */
	for (i = 0; i < nthreads; i++)
		if (pthread_create(&clients[i], NULL, client_main, NULL)) {
			fprintf(stderr, "connstorm: cannot start threads\n");
			return 1;
		}
	for (i = 0; i < nthreads; i++)
		pthread_join(clients[i], NULL);
	end_ns = now_ns();

	/* Every completed connection was accepted (the byte proves it);
	 * stop the server threads. */
	atomic_store(&stopping, 1);
	shutdown(listen_fd, SHUT_RDWR);
	for (i = 0; i < nservers; i++)
		pthread_join(servers[i], NULL);
	close(listen_fd);

	elapsed = (double)(end_ns - start_ns) * 1e-9;
	printf("target_rate=%.0f\n", rate);
	printf("duration_s=%.3f\n", duration);
	printf("threads=%d\n", nthreads);
	printf("completed=%llu\n", (unsigned long long)atomic_load(&completed));
	printf("connect_failed=%llu\n",
	       (unsigned long long)atomic_load(&connect_failed));
	printf("io_failed=%llu\n", (unsigned long long)atomic_load(&io_failed));
	printf("accepted=%llu\n", (unsigned long long)atomic_load(&accepted));
	printf("elapsed_s=%.3f\n", elapsed);
	printf("achieved_rate=%.1f\n",
	       (double)atomic_load(&completed) / elapsed);
	printf("late_max_ms=%.3f\n",
	       (double)atomic_load(&late_max_ns) * 1e-6);
	getrusage(RUSAGE_SELF, &ru);
	printf("cpu_user_s=%.3f\n",
	       ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6);
	printf("cpu_sys_s=%.3f\n",
	       ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6);
	return 0;
}
