/*
 * test_l7_redis.c - RESP2/RESP3: commands (multibulk and inline), reply
 * classification and lengths, pipelines, every split point of each
 * sample, deep nesting, and garbage. Buffers are exact-size heap copies so
 * ASan catches any read past the capture.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "l7_redis.h"

static char *exact(const char *s, size_t n)
{
	char *b = malloc(n ? n : 1);

	memcpy(b, s, n);
	return b;
}

static uint64_t rng = 0x6a09e667f3bcc909ULL;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

/* ---- commands ----------------------------------------------------------- */

#define GET_K "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n"
#define SET_K "*3\r\n$3\r\nset\r\n$1\r\nk\r\n$5\r\nhello\r\n"
#define CLIENT_SETNAME "*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$3\r\napp\r\n"
#define PING_INLINE "PING\r\n"

static const struct {
	const char *in;
	long ret; /* length, or -errno */
	const char *name;
	long long argc;
	bool is_inline;
} cmd_cases[] = {
    {GET_K, sizeof(GET_K) - 1, "GET", 2},
    {SET_K, sizeof(SET_K) - 1, "SET", 3},
    {CLIENT_SETNAME, sizeof(CLIENT_SETNAME) - 1, "CLIENT", 3},
    {"*2\r\n$8\r\nJSON.get\r\n$1\r\nk\r\n", 25, "JSON.GET", 2},
    {"*1\r\n$0\r\n\r\n", 10, "", 1},
    {"*1\r\n$5\r\nG\x01T!x\r\n", 15, "", 1},
    {"*1\r\n$40\r\n0123456789012345678901234567890123456789\r\n", 51, "", 1},
    {PING_INLINE, 6, "PING", 1, true},
    {"set k v\n", 8, "SET", 3, true},
    {"  GET\t  k  \r\n", 13, "GET", 2, true},
    {"\r\n", 2, "", 0, true},
    {"*0\r\n", 4, "", 0},
    {"*-1\r\n", 5, "", 0},
    /* cut */
    {"*2\r\n$3\r\nGET\r\n$3\r\nke", -EAGAIN, "GET", 2},
    {"*2\r\n$3\r\nGET", -EAGAIN, "GET", 2},
    {"*2\r\n$3\r\nGE", -EAGAIN, "", 2},
    {"*2\r\n$3", -EAGAIN, "", 2},
    {"*2\r", -EAGAIN, "", -1},
    {"*", -EAGAIN, "", -1},
    {"", -EAGAIN, "", -1},
    {"PIN", -EAGAIN, "", -1, true},
    {"GET k", -EAGAIN, "GET", -1, true},
    /* not RESP */
    {"*2\r\n:3\r\n", -EBADMSG, "", 2},
    {"*x\r\n", -EBADMSG, "", -1},
    {"*2\n", -EBADMSG, "", -1},
    {"*2\r\n$-1\r\n", -EBADMSG, "", 2},
    {"*2\r\n$3\r\nGETxx", -EBADMSG, "GET", 2},
    {"*99999999999\r\n", -EBADMSG, "", -1},
    {"*1\r\n$999999999999\r\n", -EBADMSG, "", 1},
    {"\x16\x03\x01\x00\xf8\x01", -EBADMSG, "", -1, true},
};

static void test_commands(void)
{
	size_t i;

	for (i = 0; i < sizeof(cmd_cases) / sizeof(cmd_cases[0]); i++) {
		size_t n = strlen(cmd_cases[i].in);
		char *b = exact(cmd_cases[i].in, n);
		struct redis_cmd c;
		ssize_t ret = redis_parse_command(b, n, &c);

		CHECK_INT(ret, cmd_cases[i].ret);
		CHECK_STR(c.name, cmd_cases[i].name);
		if (ret != -EBADMSG)
			CHECK_INT(c.argc, cmd_cases[i].argc);
		if (ret > 0)
			CHECK_INT(c.is_inline, cmd_cases[i].is_inline);
		if (ret != cmd_cases[i].ret)
			fprintf(stderr, "  command case %zu\n", i);
		free(b);
	}
}

static void test_count_commands(void)
{
	static const char pipe[] = GET_K
	    "\r\n" SET_K PING_INLINE "*0\r\n" CLIENT_SETNAME "*2\r\n$3\r\nGET";
	size_t n = sizeof(pipe) - 1, used, k, whole;
	char *b = exact(pipe, n);

	CHECK_INT(redis_count_commands(b, n, &used), 4);
	whole = n - strlen("*2\r\n$3\r\nGET");
	CHECK_INT(used, whole);
	free(b);

	/* every prefix counts the commands it holds whole, no more */
	for (k = 0; k <= n; k++) {
		int count;

		b = exact(pipe, k);
		count = redis_count_commands(b, k, &used);
		CHECK(count >= 0 && count <= 4 && used <= k);
		if (k >= whole)
			CHECK(count == 4 && used == whole);
		free(b);
	}
	CHECK_INT(redis_count_commands("GARBAGE\x01\r\n", 10, &used), 0);
	CHECK_INT(used, 0);
}

/* Each prefix of a command is "need more" and names it once it can. */
static void test_command_split_points(void)
{
	static const char *samples[] = {GET_K, SET_K, CLIENT_SETNAME,
					PING_INLINE, "hset h f v\r\n"};
	size_t i, k;

	for (i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		size_t n = strlen(samples[i]);
		struct redis_cmd full, c;

		CHECK_INT(redis_parse_command(samples[i], n, &full), n);
		for (k = 0; k < n; k++) {
			char *b = exact(samples[i], k);

			CHECK_INT(redis_parse_command(b, k, &c), -EAGAIN);
			CHECK(c.name[0] == '\0' || !strcmp(c.name, full.name));
			free(b);
		}
	}
}

/* ---- replies --------------------------------------------------------------
 */

static const struct {
	const char *in;
	int ret;
	enum redis_type type;
	long long n;
	const char *error;
} reply_cases[] = {
    {"+OK\r\n", 0, REDIS_SIMPLE, 0, ""},
    {"+OK", 0, REDIS_SIMPLE, 0, ""},
    {"-ERR unknown command 'foo'\r\n", 0, REDIS_ERROR, 0, "ERR"},
    {"-WRONGTYPE Operation against a key\r\n", 0, REDIS_ERROR, 0, "WRONGTYPE"},
    {"-MOVED 3999 127.0.0.1:6381\r\n", 0, REDIS_ERROR, 0, "MOVED"},
    {"-ERR\r\n", 0, REDIS_ERROR, 0, "ERR"},
    {"-NOAUTH Authentication requ", 0, REDIS_ERROR, 0, "NOAUTH"},
    {"-WRONGTY", 0, REDIS_ERROR, 0, ""},
    {"-\r\n", 0, REDIS_ERROR, 0, ""},
    {":1000\r\n", 0, REDIS_INTEGER, 1000, ""},
    {":-5\r\n", 0, REDIS_INTEGER, -5, ""},
    {"$5\r\nhello\r\n", 0, REDIS_BULK, 5, ""},
    {"$5\r\nhel", 0, REDIS_BULK, 5, ""},
    {"$0\r\n\r\n", 0, REDIS_BULK, 0, ""},
    {"$-1\r\n", 0, REDIS_NIL, -1, ""},
    {"*-1\r\n", 0, REDIS_NIL, -1, ""},
    {"_\r\n", 0, REDIS_NIL, 0, ""},
    {"*3\r\n:1\r\n", 0, REDIS_ARRAY, 3, ""},
    {"%2\r\n", 0, REDIS_MAP, 2, ""},
    {"~1\r\n", 0, REDIS_SET, 1, ""},
    {">3\r\n", 0, REDIS_PUSH, 3, ""},
    {"|1\r\n", 0, REDIS_ATTRIBUTE, 1, ""},
    {"#t\r\n", 0, REDIS_BOOL, 1, ""},
    {"#f\r\n", 0, REDIS_BOOL, 0, ""},
    {",3.14\r\n", 0, REDIS_DOUBLE, 0, ""},
    {"(3492890328409238509324850943850943825024385\r\n", 0, REDIS_BIGNUM, 0,
     ""},
    {"!21\r\nSYNTAX invalid syntax\r\n", 0, REDIS_BLOB_ERROR, 21, "SYNTAX"},
    {"!3\r\nERR\r\n", 0, REDIS_BLOB_ERROR, 3, "ERR"},
    {"!21\r\nSYN", 0, REDIS_BLOB_ERROR, 21, ""},
    {"=15\r\ntxt:Some string\r\n", 0, REDIS_VERBATIM, 15, ""},
    {":12", -EAGAIN},
    {"$", -EAGAIN},
    {"", -EAGAIN},
    {":1x\r\n", -EBADMSG},
    {"#x\r\n", -EBADMSG},
    {"_x\r\n", -EBADMSG},
    {"$abc\r\n", -EBADMSG},
    {"$-2\r\n", -EBADMSG},
    {"%-1\r\n", -EBADMSG},
    {"$999999999999\r\n", -EBADMSG},
    {"$12345678901234567890123", -EBADMSG},
    {"+OK\rX", -EBADMSG},
    {"?", -EBADMSG},
    {"\x16\x03\x03", -EBADMSG},
};

static void test_replies(void)
{
	size_t i;

	for (i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]); i++) {
		size_t n = strlen(reply_cases[i].in);
		char *b = exact(reply_cases[i].in, n);
		struct redis_reply r;
		int ret = redis_parse_reply(b, n, &r);

		CHECK_INT(ret, reply_cases[i].ret);
		if (ret == 0 && reply_cases[i].ret == 0) {
			CHECK_INT(r.type, reply_cases[i].type);
			CHECK_INT(r.n, reply_cases[i].n);
			CHECK_STR(r.error, reply_cases[i].error);
			CHECK_INT(redis_reply_is_error(&r),
				  r.type == REDIS_ERROR ||
				      r.type == REDIS_BLOB_ERROR);
		}
		if (ret != reply_cases[i].ret)
			fprintf(stderr, "  reply case %zu\n", i);
		if (ret == 0)
			CHECK(strcmp(redis_type_name(r.type), "?") != 0);
		free(b);
	}
}

#define NESTED "*2\r\n*1\r\n+a\r\n%1\r\n+k\r\n$1\r\nv\r\n"
#define ATTR "|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n:5\r\n"
#define ARR "*3\r\n$3\r\nfoo\r\n$-1\r\n:42\r\n"

static void test_type_names(void)
{
	CHECK_STR(redis_type_name(REDIS_NIL), "nil");
	CHECK_STR(redis_type_name(REDIS_ERROR), "error");
	CHECK_STR(redis_type_name(REDIS_BULK), "bulk");
	CHECK_STR(redis_type_name((enum redis_type)'Z'), "?");
}

static void test_reply_len(void)
{
	static const struct {
		const char *in;
		long want;
	} t[] = {
	    {"+OK\r\n", 5},
	    {"+OK\r\n+OK\r\n", 5},
	    {"$5\r\nhello\r\n", 11},
	    {"$-1\r\n", 5},
	    {"_\r\n", 3},
	    {ARR, sizeof(ARR) - 1},
	    {NESTED, sizeof(NESTED) - 1},
	    {ATTR, sizeof(ATTR) - 1},
	    {"*0\r\n", 4},
	    {"*3\r\n:1\r\n", -EAGAIN},
	    {"*1000000\r\n", -EAGAIN},
	    {"$5\r\nhelloXX", -EBADMSG},
	    {"*2147483649\r\n", -EBADMSG},
	    {"*2\r\n:1\r\n?", -EBADMSG},
	    {"", -EAGAIN},
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		size_t n = strlen(t[i].in);
		char *b = exact(t[i].in, n);

		CHECK_INT(redis_reply_len(b, n), t[i].want);
		free(b);
	}
}

/* Nesting costs no stack: 100000 levels deep is just a long walk. */
static void test_deep_nesting(void)
{
	size_t depth = 100000, n = depth * 4 + 4, i;
	char *b = malloc(n);

	for (i = 0; i < depth; i++)
		memcpy(b + i * 4, "*1\r\n", 4);
	memcpy(b + depth * 4, ":1\r\n", 4);
	CHECK_INT(redis_reply_len(b, n), n);
	CHECK_INT(redis_reply_len(b, n - 1), -EAGAIN);
	free(b);
}

static void test_count_replies(void)
{
	static const char pipe[] = "+OK\r\n"
				   ">3\r\n$10\r\ninvalidate\r\n*1\r\n"
				   "$1\r\nk\r\n_\r\n"
				   "$-1\r\n" ARR "-ERR x\r\n"
				   "$5\r\nhel";
	size_t n = sizeof(pipe) - 1, used, k, whole;
	char *b = exact(pipe, n);

	/* the push frame is consumed but answers no command */
	CHECK_INT(redis_count_replies(b, n, &used), 4);
	whole = n - strlen("$5\r\nhel");
	CHECK_INT(used, whole);
	free(b);
	for (k = 0; k <= n; k++) {
		int count;

		b = exact(pipe, k);
		count = redis_count_replies(b, k, &used);
		CHECK(count >= 0 && count <= 4 && used <= k);
		free(b);
	}
}

/* Every prefix of a reply is "need more", never malformed. */
static void test_reply_split_points(void)
{
	static const char *samples[] = {
	    "+OK\r\n",	"-ERR unknown command\r\n",
	    ":123\r\n", "$5\r\nhello\r\n",
	    "$-1\r\n",	"_\r\n",
	    ARR,	NESTED,
	    ATTR,	"!21\r\nSYNTAX invalid syntax\r\n",
	    "#t\r\n",
	};
	size_t i, k;

	for (i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		size_t n = strlen(samples[i]);
		struct redis_reply full, r;

		CHECK_INT(redis_parse_reply(samples[i], n, &full), 0);
		CHECK_INT(redis_reply_len(samples[i], n), n);
		for (k = 0; k < n; k++) {
			char *b = exact(samples[i], k);
			int ret = redis_parse_reply(b, k, &r);

			CHECK_INT(redis_reply_len(b, k), -EAGAIN);
			CHECK(ret == 0 || ret == -EAGAIN);
			if (ret == 0) {
				CHECK_INT(r.type, full.type);
				CHECK(!r.error[0] ||
				      !strcmp(r.error, full.error));
			}
			free(b);
		}
	}
}

/* ---- garbage ----------------------------------------------------------------
 */

static void test_garbage(void)
{
	static const char alphabet[] = "*$+-:_#,(!=%~>|\r\n0123456789-?abcGET ";
	char buf[300];
	size_t i, j, n, used;

	for (i = 0; i < 40000; i++) {
		struct redis_cmd c;
		struct redis_reply r;
		char *b;
		ssize_t l;

		n = rnd() % sizeof(buf);
		for (j = 0; j < n; j++)
			buf[j] = (i & 1)
				     ? (char)rnd()
				     : alphabet[rnd() % (sizeof(alphabet) - 1)];
		b = exact(buf, n);
		l = redis_parse_command(b, n, &c);
		CHECK(l <= (ssize_t)n && strlen(c.name) < REDIS_NAME_MAX);
		CHECK(l > 0 || l == -EAGAIN || l == -EBADMSG);
		l = redis_parse_reply(b, n, &r);
		CHECK(l == 0 || l == -EAGAIN || l == -EBADMSG);
		CHECK(strlen(r.error) < REDIS_ERR_MAX);
		l = redis_reply_len(b, n);
		CHECK(l <= (ssize_t)n);
		CHECK(redis_count_commands(b, n, &used) >= 0 && used <= n);
		CHECK(redis_count_replies(b, n, &used) >= 0 && used <= n);
		free(b);
	}
}

int main(void)
{
	test_commands();
	test_count_commands();
	test_command_split_points();
	test_replies();
	test_type_names();
	test_reply_len();
	test_deep_nesting();
	test_count_replies();
	test_reply_split_points();
	test_garbage();
	return check_summary();
}
