// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * pingpong.c - one thread plays both ends of a keep-alive HTTP/1.1
 * connection over loopback TCP, with the syscalls wrk and Node use: the
 * client write()s a request, the server read()s it and writev()s the
 * response (head and body in the first buffer, an empty second one, as
 * Node does), the client read()s it. No event loop, no other thread, no
 * context switch: the BPF and agent cost of one exchange without the
 * noise of a real server (bench/l7_pingpong.py).
 *
 *   pingpong N     N exchanges; prints the mean wall time per exchange
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static const char RESPONSE[] =
	"HTTP/1.1 200 OK\r\n"
	"Content-Type: application/json\r\n"
	"Date: Fri, 27 Nov 2026 07:37:53 GMT\r\n"
	"Connection: keep-alive\r\n"
	"Keep-Alive: timeout=30\r\n"
	"Content-Length: 10\r\n"
	"\r\n"
	"{\"id\":\"1\"}";

static int fail(const char *what)
{
	perror(what);
	return 1;
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct iovec iov[2] = { { (void *)RESPONSE, sizeof(RESPONSE) - 1 },
				{ (void *)RESPONSE, 0 } };
	ssize_t resp_len = sizeof(RESPONSE) - 1;
	socklen_t alen = sizeof(a);
	char req[128], buf[65536];
	struct timespec t0, t1;
	int l, c, s, one = 1;
	long n, i;
	ssize_t rl;

	n = argc > 1 ? atol(argv[1]) : 0;
	if (n <= 0) {
		fprintf(stderr, "usage: pingpong EXCHANGES\n");
		return 2;
	}
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (void *)&a, sizeof(a)) || listen(l, 1) ||
	    getsockname(l, (void *)&a, &alen))
		return fail("listen");
	c = socket(AF_INET, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (void *)&a, sizeof(a)))
		return fail("connect");
	s = accept(l, NULL, NULL);
	if (s < 0)
		return fail("accept");
	setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	rl = snprintf(req, sizeof(req),
		      "GET /users/1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n",
		      ntohs(a.sin_port));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < n; i++) {
		if (write(c, req, rl) != rl || read(s, buf, sizeof(buf)) != rl ||
		    writev(s, iov, 2) != resp_len ||
		    read(c, buf, sizeof(buf)) != resp_len) {
			fprintf(stderr, "pingpong: short I/O at exchange %ld\n",
				i);
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("%.1f\n", ((t1.tv_sec - t0.tv_sec) * 1e9 +
			  (t1.tv_nsec - t0.tv_nsec)) / n);
	/* Closed as clients and servers do: the close ends the last
	 * exchange (at exit without a close, the agent's idle sweep does,
	 * a second later). */
	close(c);
	close(s);
	return 0;
}
