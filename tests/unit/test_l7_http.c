/*
 * test_l7_http.c - HTTP/1.x prefix parsing: tables of requests, responses
 * and message lengths, then every split point of each sample, pipelines,
 * and garbage (random bytes, mutated samples, a TLS ClientHello). Inputs
 * are copied into exact-size heap blocks so ASan reports any read past the
 * end.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "l7_http.h"

#define F(x) HTTP1_F_##x
#define TRUNC_FLAGS (F(TARGET_TRUNC) | F(PATH_TRUNC))

static char *exact(const char *s, size_t n)
{
	char *b = malloc(n ? n : 1);

	memcpy(b, s, n);
	return b;
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

static int streq(const char *p, size_t n, const char *want)
{
	if (!want)
		return p == NULL;
	return p && strlen(want) == n && !memcmp(p, want, n);
}

/* ---- classify ---------------------------------------------------------- */

static void test_classify(void)
{
	static const struct {
		const char *in;
		enum http_kind want;
	} t[] = {
	    {"GET / HTTP/1.1\r\n", HTTP_KIND_REQUEST},
	    {"DELETE /x", HTTP_KIND_REQUEST},
	    {"OPTIONS * HTTP/1.1", HTTP_KIND_REQUEST},
	    {"PATCH ", HTTP_KIND_REQUEST},
	    {"", HTTP_KIND_MAYBE},
	    {"G", HTTP_KIND_MAYBE},
	    {"GET", HTTP_KIND_MAYBE},
	    {"H", HTTP_KIND_MAYBE},
	    {"HTTP/1.", HTTP_KIND_MAYBE},
	    {"HTTP/1.1 20", HTTP_KIND_MAYBE},
	    {"GETX / HTTP/1.1", HTTP_KIND_NONE},
	    {"get / HTTP/1.1", HTTP_KIND_NONE},
	    {"PRI * HTTP/2.0\r\n", HTTP_KIND_NONE},
	    {"HTTP/1.1 200 OK\r\n", HTTP_KIND_RESPONSE},
	    {"HTTP/1.0 404", HTTP_KIND_RESPONSE},
	    {"HTTP/1.1 200\r\n", HTTP_KIND_RESPONSE},
	    {"HTTP/2 200", HTTP_KIND_NONE},
	    {"HTTP/1.2 200", HTTP_KIND_NONE},
	    {"HTTP/1.1 2000", HTTP_KIND_NONE},
	    {"HTTP/1.1 099 x", HTTP_KIND_NONE},
	    {"HTTP/1.1 600 x", HTTP_KIND_NONE},
	    {"*3\r\n$3\r\nSET\r\n", HTTP_KIND_NONE},
	    {"\x16\x03\x01\x02\x00\x01", HTTP_KIND_NONE},
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char *b = exact(t[i].in, strlen(t[i].in));

		CHECK_INT(http1_classify(b, strlen(t[i].in)), t[i].want);
		free(b);
	}
	CHECK_STR(http1_method_name(HTTP_M_PATCH), "PATCH");
	CHECK_STR(http1_method_name(HTTP_M_UNKNOWN), "_OTHER");
}

/* ---- requests ---------------------------------------------------------- */

struct req_case {
	const char *in;
	int ret;
	enum http_method method;
	const char *target, *path, *query;
	int version;
	unsigned int flags;
	uint64_t cl;
};

static const struct req_case req_cases[] = {
    {"GET /api/users/42?page=2&x=1 HTTP/1.1\r\nHost: a\r\n\r\n", 0, HTTP_M_GET,
     "/api/users/42?page=2&x=1", "/api/users/42", "page=2&x=1", 1,
     F(HEAD_COMPLETE)},
    {"POST /orders HTTP/1.1\r\nContent-Length: 13\r\n"
     "Content-Type: application/json\r\n\r\n{\"qty\": 1234}",
     0, HTTP_M_POST, "/orders", "/orders", NULL, 1,
     F(HEAD_COMPLETE) | F(CONTENT_LENGTH), 13},
    {"PUT /x HTTP/1.1\r\ncontent-length:  7 \r\n\r\n", 0, HTTP_M_PUT, "/x",
     "/x", NULL, 1, F(HEAD_COMPLETE) | F(CONTENT_LENGTH), 7},
    {"POST /up HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n", 0,
     HTTP_M_POST, "/up", "/up", NULL, 1, F(HEAD_COMPLETE) | F(TE) | F(CHUNKED)},
    {"POST /up HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 0,
     HTTP_M_POST, "/up", "/up", NULL, 1, F(HEAD_COMPLETE) | F(TE)},
    {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 0, HTTP_M_GET, "/",
     "/", NULL, 0, F(HEAD_COMPLETE) | F(CONN_KEEPALIVE)},
    {"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 0, HTTP_M_GET, "/", "/",
     NULL, 1, F(HEAD_COMPLETE) | F(CONN_CLOSE)},
    {"GET /ws HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\n\r\n", 0,
     HTTP_M_GET, "/ws", "/ws", NULL, 1,
     F(HEAD_COMPLETE) | F(CONN_KEEPALIVE) | F(UPGRADE)},
    {"PUT /big HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 9000"
     "\r\n\r\n",
     0, HTTP_M_PUT, "/big", "/big", NULL, 1,
     F(HEAD_COMPLETE) | F(EXPECT_CONTINUE) | F(CONTENT_LENGTH), 9000},
    {"GET /t HTTP/1.1\r\n"
     "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
     "\r\n\r\n",
     0, HTTP_M_GET, "/t", "/t", NULL, 1, F(HEAD_COMPLETE) | F(TRACEPARENT)},
    {"GET /t HTTP/1.1\r\n"
     "Traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
     "\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"
     "-01\r\n\r\n",
     0, HTTP_M_GET, "/t", "/t", NULL, 1, F(HEAD_COMPLETE) | F(TRACEPARENT_BAD)},
    {"GET /t HTTP/1.1\r\n"
     "traceparent: 00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"
     "\r\n\r\n",
     0, HTTP_M_GET, "/t", "/t", NULL, 1, F(HEAD_COMPLETE) | F(TRACEPARENT_BAD)},
    {"GET http://example.com:8080/a/b?c=d HTTP/1.1\r\n\r\n", 0, HTTP_M_GET,
     "http://example.com:8080/a/b?c=d", "http://example.com:8080/a/b", "c=d", 1,
     F(HEAD_COMPLETE)},
    {"OPTIONS * HTTP/1.1\r\n\r\n", 0, HTTP_M_OPTIONS, "*", "*", NULL, 1,
     F(HEAD_COMPLETE)},
    {"CONNECT db.internal:5432 HTTP/1.1\r\n\r\n", 0, HTTP_M_CONNECT,
     "db.internal:5432", "db.internal:5432", NULL, 1, F(HEAD_COMPLETE)},
    {"GET /a#frag HTTP/1.1\r\n\r\n", 0, HTTP_M_GET, "/a#frag", "/a", NULL, 1,
     F(HEAD_COMPLETE)},
    {"GET /q?a=1#f HTTP/1.1\r\n\r\n", 0, HTTP_M_GET, "/q?a=1#f", "/q", "a=1", 1,
     F(HEAD_COMPLETE)},
    {"GET /lf HTTP/1.1\nHost: a\nContent-Length: 0\n\n", 0, HTTP_M_GET, "/lf",
     "/lf", NULL, 1, F(HEAD_COMPLETE) | F(CONTENT_LENGTH), 0},
    {"DELETE /items/9 HTTP/1.1\r\nContent-Length: 3\r\n"
     "Content-Length: 3\r\n\r\n",
     0, HTTP_M_DELETE, "/items/9", "/items/9", NULL, 1,
     F(HEAD_COMPLETE) | F(CONTENT_LENGTH), 3},
    /* cut by the capture */
    {"GET /api/users/12345", 0, HTTP_M_GET, "/api/users/12345",
     "/api/users/12345", NULL, -1, TRUNC_FLAGS},
    {"GET /search?q=abc", 0, HTTP_M_GET, "/search?q=abc", "/search", "q=abc",
     -1, F(TARGET_TRUNC)},
    {"GET ", 0, HTTP_M_GET, "", "", NULL, -1, TRUNC_FLAGS},
    {"GET / HTT", 0, HTTP_M_GET, "/", "/", NULL, -1, 0},
    {"GET / HTTP/1.1", 0, HTTP_M_GET, "/", "/", NULL, -1, 0},
    {"GET / HTTP/1.1\r", 0, HTTP_M_GET, "/", "/", NULL, -1, 0},
    {"GET / HTTP/1.1\r\nHost: x\r\nContent-Le", 0, HTTP_M_GET, "/", "/", NULL,
     1, 0},
    {"POST / HTTP/1.1\r\nContent-Length: 12", 0, HTTP_M_POST, "/", "/", NULL, 1,
     0},
    {"POST / HTTP/1.1\r\nContent-Length: 12\r\n", 0, HTTP_M_POST, "/", "/",
     NULL, 1, F(CONTENT_LENGTH), 12},
    /* malformed heads: the request line still counts */
    {"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 0, HTTP_M_GET, "/", "/", NULL,
     1, F(MALFORMED)},
    {"GET / HTTP/1.1\r\nNoColon\r\n\r\n", 0, HTTP_M_GET, "/", "/", NULL, 1,
     F(MALFORMED)},
    {"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 0, HTTP_M_GET, "/", "/", NULL, 1,
     F(MALFORMED)},
    {"POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 0, HTTP_M_POST, "/", "/",
     NULL, 1, F(MALFORMED) | F(HEAD_COMPLETE)},
    {"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 0,
     HTTP_M_POST, "/", "/", NULL, 1,
     F(MALFORMED) | F(CONTENT_LENGTH) | F(HEAD_COMPLETE), 5},
    {"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 0,
     HTTP_M_POST, "/", "/", NULL, 1, F(MALFORMED) | F(HEAD_COMPLETE)},
    /* not requests, or broken request lines */
    {"GE", -EAGAIN},
    {"", -EAGAIN},
    {"get / HTTP/1.1\r\n", -EINVAL},
    {"HTTP/1.1 200 OK\r\n", -EINVAL},
    {"GET  / HTTP/1.1\r\n", -EBADMSG},
    {"GET /\x01 HTTP/1.1\r\n", -EBADMSG},
    {"GET /\r\n", -EBADMSG},
    {"GET / HTTP/2.0\r\n", -EBADMSG},
    {"GET / HTTP/1.1x\r\n", -EBADMSG},
};

static void check_req(const struct req_case *c, size_t idx)
{
	size_t n = strlen(c->in);
	char *b = exact(c->in, n);
	struct http1_request r;
	int ret = http1_parse_request(b, n, &r);

	CHECK_INT(ret, c->ret);
	if (ret == 0 && c->ret == 0) {
		CHECK_INT(r.method, c->method);
		CHECK(streq(r.target, r.target_len, c->target));
		CHECK(streq(r.path, r.path_len, c->path));
		CHECK(streq(r.query, r.query_len, c->query));
		CHECK_INT(r.version_minor, c->version);
		CHECK_INT(r.h.flags, c->flags);
		if (c->flags & F(CONTENT_LENGTH))
			CHECK_INT(r.h.content_length, c->cl);
	}
	if (ret != c->ret || (ret == 0 && r.h.flags != c->flags))
		fprintf(stderr, "  request case %zu: %s\n", idx, c->in);
	free(b);
}

static void test_requests(void)
{
	struct http1_request r;
	const char *s = "GET /t HTTP/1.1\r\nHost: a\r\n\r\n";
	size_t i;

	for (i = 0; i < sizeof(req_cases) / sizeof(req_cases[0]); i++)
		check_req(&req_cases[i], i);

	CHECK_INT(http1_parse_request(s, strlen(s), &r), 0);
	CHECK_INT(r.h.head_len, strlen(s));
}

/* A target longer than the 256-byte capture is reported as cut. */
static void test_capture_limit(void)
{
	char full[600], *b;
	struct http1_request r;
	size_t n;

	n = (size_t)snprintf(full, sizeof(full), "GET /api/");
	for (; n < 400; n++)
		full[n] = (char)('a' + n % 26);
	memcpy(full + n, " HTTP/1.1\r\n\r\n", 14);
	b = exact(full, 256);
	CHECK_INT(http1_parse_request(b, 256, &r), 0);
	CHECK_INT(r.target_len, 256 - 4);
	CHECK(r.h.flags & F(TARGET_TRUNC));
	CHECK(r.h.flags & F(PATH_TRUNC));
	CHECK_INT(r.version_minor, -1);
	free(b);
}

/* ---- responses --------------------------------------------------------- */

struct resp_case {
	const char *in;
	enum http_method req;
	int ret, status, version;
	unsigned int flags;
	uint64_t cl;
};

static const struct resp_case resp_cases[] = {
    {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", HTTP_M_GET, 0, 200, 1,
     F(HEAD_COMPLETE) | F(CONTENT_LENGTH), 2},
    {"HTTP/1.1 204 No Content\r\n\r\n", HTTP_M_DELETE, 0, 204, 1,
     F(HEAD_COMPLETE) | F(NO_BODY)},
    {"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n", HTTP_M_GET, 0,
     304, 1, F(HEAD_COMPLETE) | F(NO_BODY) | F(CONTENT_LENGTH), 50},
    {"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n", HTTP_M_HEAD, 0, 200, 1,
     F(HEAD_COMPLETE) | F(NO_BODY) | F(CONTENT_LENGTH), 50},
    {"HTTP/1.1 100 Continue\r\n\r\n", HTTP_M_PUT, 0, 100, 1,
     F(HEAD_COMPLETE) | F(NO_BODY)},
    {"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
     "Upgrade: websocket\r\n\r\n",
     HTTP_M_GET, 0, 101, 1, F(HEAD_COMPLETE) | F(NO_BODY) | F(UPGRADE)},
    {"HTTP/1.1 200 Connection established\r\n\r\n", HTTP_M_CONNECT, 0, 200, 1,
     F(HEAD_COMPLETE) | F(NO_BODY)},
    {"HTTP/1.1 407 Proxy Auth\r\nContent-Length: 0\r\n\r\n", HTTP_M_CONNECT, 0,
     407, 1, F(HEAD_COMPLETE) | F(CONTENT_LENGTH), 0},
    {"HTTP/1.0 500 Internal\r\nConnection: close\r\n\r\n", HTTP_M_GET, 0, 500,
     0, F(HEAD_COMPLETE) | F(CONN_CLOSE)},
    {"HTTP/1.1 200\r\n\r\n", HTTP_M_GET, 0, 200, 1, F(HEAD_COMPLETE)},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
     "5\r\nhello\r\n0\r\n\r\n",
     HTTP_M_GET, 0, 200, 1, F(HEAD_COMPLETE) | F(TE) | F(CHUNKED)},
    {"HTTP/1.1 404 Not Fo", HTTP_M_GET, 0, 404, 1, 0},
    {"HTTP/1.1 503", HTTP_M_GET, 0, 503, 1, 0},
    {"HTTP/1.1 20", HTTP_M_GET, -EAGAIN},
    {"", HTTP_M_GET, -EAGAIN},
    {"HTTP/1.1 2x0 OK\r\n", HTTP_M_GET, -EINVAL},
    {"GET / HTTP/1.1\r\n", HTTP_M_GET, -EINVAL},
    {"\x16\x03\x03\x00\x5a\x02", HTTP_M_GET, -EINVAL},
};

static void test_responses(void)
{
	size_t i;

	for (i = 0; i < sizeof(resp_cases) / sizeof(resp_cases[0]); i++) {
		const struct resp_case *c = &resp_cases[i];
		size_t n = strlen(c->in);
		char *b = exact(c->in, n);
		struct http1_response r;
		int ret = http1_parse_response(b, n, c->req, &r);

		CHECK_INT(ret, c->ret);
		if (ret == 0 && c->ret == 0) {
			CHECK_INT(r.status, c->status);
			CHECK_INT(r.version_minor, c->version);
			CHECK_INT(r.h.flags, c->flags);
			if (c->flags & F(CONTENT_LENGTH))
				CHECK_INT(r.h.content_length, c->cl);
		}
		if (ret != c->ret || (ret == 0 && r.h.flags != c->flags))
			fprintf(stderr, "  response case %zu: %s\n", i, c->in);
		free(b);
	}
}

/* ---- message lengths -------------------------------------------------- */

struct len_case {
	const char *in;
	bool response;
	enum http_method req;
	long want; /* length, or a negative errno */
};

#define GET_NOBODY "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
#define POST_CL "POST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
#define POST_CHUNKED                                                           \
	"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"               \
	"4;ext=1\r\nWiki\r\n5 \r\npedia\r\n0\r\nX-Trailer: 1\r\n\r\n"

#define RESP_OK "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
#define RESP_204 "HTTP/1.1 204 No Content\r\n\r\n"
#define RESP_HEAD "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n"
#define RESP_100 "HTTP/1.1 100 Continue\r\n\r\n"
#define RESP_CHUNKED                                                           \
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"                \
	"5\r\nhello\r\n0\r\n\r\n"

static const struct len_case len_cases[] = {
    {GET_NOBODY, false, 0, sizeof(GET_NOBODY) - 1},
    {GET_NOBODY "GET /next", false, 0, sizeof(GET_NOBODY) - 1},
    {POST_CL, false, 0, sizeof(POST_CL) - 1},
    {POST_CL GET_NOBODY, false, 0, sizeof(POST_CL) - 1},
    {POST_CHUNKED, false, 0, sizeof(POST_CHUNKED) - 1},
    {POST_CHUNKED GET_NOBODY, false, 0, sizeof(POST_CHUNKED) - 1},
    {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", false, 0,
     -EAGAIN},
    {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false, 0,
     -EBADMSG},
    {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
     "fffffffffffffffff\r\n",
     false, 0, -EBADMSG},
    {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX", false, 0,
     -EBADMSG},
    {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n", false, 0,
     -EAGAIN},
    {"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort", false, 0, -EAGAIN},
    {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", false, 0, -EBADMSG},
    {"GET / HTTP/1.1\r\nNoColon\r\n\r\n", false, 0, -EBADMSG},
    {"GET / HTTP/1.1\r\nHost: a\r\n", false, 0, -EAGAIN},
    {RESP_OK "HTTP/1.1", true, HTTP_M_GET, sizeof(RESP_OK) - 1},
    {"HTTP/1.1 200 OK\r\n\r\nbody until close", true, HTTP_M_GET, -ENOTSUP},
    {RESP_204, true, HTTP_M_GET, sizeof(RESP_204) - 1},
    {RESP_HEAD "body-free", true, HTTP_M_HEAD, sizeof(RESP_HEAD) - 1},
    {RESP_100 RESP_OK, true, HTTP_M_PUT, sizeof(RESP_100) - 1},
    {RESP_CHUNKED RESP_OK, true, HTTP_M_GET, sizeof(RESP_CHUNKED) - 1},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", true, HTTP_M_GET,
     -ENOTSUP},
};

static void test_lengths(void)
{
	size_t i;

	for (i = 0; i < sizeof(len_cases) / sizeof(len_cases[0]); i++) {
		const struct len_case *c = &len_cases[i];
		size_t n = strlen(c->in);
		char *b = exact(c->in, n);
		ssize_t got = c->response ? http1_response_len(b, n, c->req)
					  : http1_request_len(b, n);

		CHECK_INT(got, c->want);
		if (got != c->want)
			fprintf(stderr, "  length case %zu: %s\n", i, c->in);
		free(b);
	}
}

/* Split a pipeline of three requests, then check every prefix of it. */
static void test_pipeline(void)
{
	static const char pipe[] = POST_CL GET_NOBODY POST_CHUNKED;
	static const size_t lens[] = {sizeof(POST_CL) - 1,
				      sizeof(GET_NOBODY) - 1,
				      sizeof(POST_CHUNKED) - 1};
	static const enum http_method ms[] = {HTTP_M_POST, HTTP_M_GET,
					      HTTP_M_POST};
	size_t n = sizeof(pipe) - 1, off = 0, k, count = 0;
	char *b = exact(pipe, n);

	while (off < n && count < 3) {
		struct http1_request r;
		ssize_t l = http1_request_len(b + off, n - off);

		CHECK_INT(l, lens[count]);
		if (l <= 0)
			break;
		CHECK_INT(http1_parse_request(b + off, (size_t)l, &r), 0);
		CHECK_INT(r.method, ms[count]);
		off += (size_t)l;
		count++;
	}
	CHECK_INT(count, 3);
	CHECK_INT(off, n);
	free(b);

	for (k = 0; k <= n; k++) {
		ssize_t l;

		b = exact(pipe, k);
		l = http1_request_len(b, k);
		CHECK(k < lens[0] ? l == -EAGAIN : l == (ssize_t)lens[0]);
		free(b);
	}
}

/* ---- every split point ------------------------------------------------ */

static bool is_prefix(const char *a, size_t an, const char *b, size_t bn)
{
	return an <= bn && !memcmp(a, b, an);
}

/* A prefix never contradicts the whole: it only knows less. */
static void split_request(const char *s)
{
	size_t n = strlen(s), k;
	struct http1_request full, r;
	unsigned int provisional = TRUNC_FLAGS;

	CHECK_INT(http1_parse_request(s, n, &full), 0);
	/* a second traceparent further on can still spoil the first */
	if (full.h.flags & F(TRACEPARENT_BAD))
		provisional |= F(TRACEPARENT);
	for (k = 0; k <= n; k++) {
		char *b = exact(s, k);
		int ret = http1_parse_request(b, k, &r);

		CHECK(ret == 0 || ret == -EAGAIN);
		if (ret == 0) {
			CHECK_INT(r.method, full.method);
			CHECK(is_prefix(r.target, r.target_len, full.target,
					full.target_len));
			CHECK(!(r.h.flags & ~provisional & ~full.h.flags));
			if (r.target + r.target_len == b + k)
				CHECK(r.h.flags & F(TARGET_TRUNC));
			if (r.h.flags & F(CONTENT_LENGTH))
				CHECK_INT(r.h.content_length,
					  full.h.content_length);
			if (r.h.flags & F(HEAD_COMPLETE))
				CHECK_INT(r.h.flags, full.h.flags);
		}
		if (k < n && http1_request_len(b, k) != -EAGAIN &&
		    http1_request_len(s, n) == (ssize_t)n)
			CHECK(!"prefix of a complete request has a length");
		free(b);
	}
}

static void split_response(const char *s, enum http_method req)
{
	size_t n = strlen(s), k;
	struct http1_response full, r;

	CHECK_INT(http1_parse_response(s, n, req, &full), 0);
	for (k = 0; k <= n; k++) {
		char *b = exact(s, k);
		int ret = http1_parse_response(b, k, req, &r);

		CHECK(ret == 0 || ret == -EAGAIN);
		CHECK(ret == 0 || k < 12);
		if (ret == 0) {
			CHECK_INT(r.status, full.status);
			CHECK(!(r.h.flags & ~full.h.flags));
		}
		free(b);
	}
}

static void test_split_points(void)
{
	size_t i;

	for (i = 0; i < sizeof(req_cases) / sizeof(req_cases[0]); i++)
		if (req_cases[i].ret == 0 &&
		    (req_cases[i].flags & F(HEAD_COMPLETE)))
			split_request(req_cases[i].in);
	split_request(POST_CHUNKED);
	for (i = 0; i < sizeof(resp_cases) / sizeof(resp_cases[0]); i++)
		if (resp_cases[i].ret == 0)
			split_response(resp_cases[i].in, resp_cases[i].req);
}

/* ---- garbage ------------------------------------------------------------ */

/* Whatever the bytes, the results stay within the documented set. */
static void feed(const char *b, size_t n)
{
	struct http1_request rq;
	struct http1_response rs;
	ssize_t l;
	int ret;

	ret = (int)http1_classify(b, n);
	CHECK(ret >= HTTP_KIND_NONE && ret <= HTTP_KIND_RESPONSE);
	ret = http1_parse_request(b, n, &rq);
	CHECK(ret == 0 || ret == -EAGAIN || ret == -EINVAL || ret == -EBADMSG);
	if (ret == 0)
		CHECK(rq.target >= b && rq.target + rq.target_len <= b + n);
	ret = http1_parse_response(b, n, HTTP_M_GET, &rs);
	CHECK(ret == 0 || ret == -EAGAIN || ret == -EINVAL);
	l = http1_request_len(b, n);
	CHECK(l <= (ssize_t)n);
	l = http1_response_len(b, n, HTTP_M_GET);
	CHECK(l <= (ssize_t)n);
}

static const unsigned char client_hello[] = {
    0x16, 0x03, 0x01, 0x00, 0xf8, 0x01, 0x00, 0x00, 0xf4, 0x03, 0x03, 0x7b,
    0x2a, 0x9c, 0x11, 0x5e, 0x80, 0x03, 0x44, 0x9f, 0x10, 0x6d, 0xe2, 0x2b,
    0x01, 0x77, 0x3c, 0x40, 0xa5, 0x0e, 0x63, 0x22, 0xd1, 0x9a, 0x57, 0x35,
    0xbb, 0x6e, 0x02, 0x16, 0x20, 0xe0, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6,
    0xe7, 0x00, 0x08, 0x13, 0x02, 0x13, 0x03, 0x13, 0x01, 0x00, 0xff, 0x01,
    0x00, 0x00, 0x0b, 0x00, 0x00, 0x00, 0x0e, 0x00, 0x0c, 0x00, 0x00, 0x09,
    'l',  'o',	'c',  'a',  'l',  'h',	'o',  's',  't',
};

static void test_garbage(void)
{
	static const char alphabet[] = "GET HTTP/1.1 \r\n:;,0123456789abcdef"
				       "?#/-Content-Length: chunked\x00\xff";
	char buf[300];
	size_t i, j, n;

	n = sizeof(client_hello);
	for (i = 0; i <= n; i++) {
		char *b = exact((const char *)client_hello, i);

		feed(b, i);
		CHECK(i == 0 || http1_classify(b, i) == HTTP_KIND_NONE);
		free(b);
	}
	for (i = 0; i < 20000; i++) {
		char *b;

		n = rnd() % sizeof(buf);
		for (j = 0; j < n; j++)
			buf[j] = (i & 1)
				     ? (char)rnd()
				     : alphabet[rnd() % (sizeof(alphabet) - 1)];
		if (i % 3 == 0 && n > 4)
			memcpy(buf, (i & 4) ? "GET /" : "HTTP/1.1 200 ", 5);
		b = exact(buf, n);
		feed(b, n);
		free(b);
	}
	/* single-byte mutations of every sample */
	for (i = 0; i < sizeof(req_cases) / sizeof(req_cases[0]); i++) {
		n = strlen(req_cases[i].in);
		for (j = 0; j < n; j++) {
			char *b = exact(req_cases[i].in, n);

			b[j] = (char)rnd();
			feed(b, n);
			free(b);
		}
	}
}

/* ---- traceparent and keep-alive ----------------------------------------- */

static void test_traceparent(void)
{
	static const struct {
		const char *in;
		int ret;
	} t[] = {
	    {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 0},
	    {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", 0},
	    {"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-ab", 0},
	    {"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 0},
	    {"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
	     -EINVAL},
	    {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
	     -EINVAL},
	    {"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	     -EINVAL},
	    {"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
	     -EINVAL},
	    {"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
	     -EINVAL},
	    {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902B7-01",
	     -EINVAL},
	    {"00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
	     -EINVAL},
	    {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0", -EINVAL},
	    {"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	     -EINVAL},
	    {"xx-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	     -EINVAL},
	    {"", -EINVAL},
	};
	struct w3c_traceparent tp;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char *b = exact(t[i].in, strlen(t[i].in));

		CHECK_INT(w3c_traceparent_parse(b, strlen(t[i].in), &tp),
			  t[i].ret);
		free(b);
	}
	CHECK_INT(w3c_traceparent_parse(t[0].in, 55, &tp), 0);
	CHECK_INT(tp.version, 0);
	CHECK_INT(tp.trace_id[0], 0x4b);
	CHECK_INT(tp.trace_id[15], 0x36);
	CHECK_INT(tp.parent_id[0], 0x00);
	CHECK_INT(tp.parent_id[7], 0xb7);
	CHECK_INT(tp.flags, 1);
}

static void test_keep_alive(void)
{
	CHECK(http1_keep_alive(1, 0));
	CHECK(!http1_keep_alive(1, F(CONN_CLOSE)));
	CHECK(!http1_keep_alive(0, 0));
	CHECK(http1_keep_alive(0, F(CONN_KEEPALIVE)));
	CHECK(!http1_keep_alive(0, F(CONN_KEEPALIVE) | F(CONN_CLOSE)));
}

int main(void)
{
	test_classify();
	test_requests();
	test_capture_limit();
	test_responses();
	test_lengths();
	test_pipeline();
	test_split_points();
	test_garbage();
	test_traceparent();
	test_keep_alive();
	return check_summary();
}
