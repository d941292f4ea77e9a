/*
 * l7_redis.h - Redis RESP2/RESP3 commands and replies from a prefix.
 *
 * Requests are what clients send: an array of bulk strings
 * ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n") or an inline command line ("PING\r\n").
 * The command name is the first element upper-cased; for multi-word
 * commands ("CLIENT SETNAME") that is the first word only. A name must look
 * like one (letters, digits, '.', '_', '-', '|', at most REDIS_NAME_MAX - 1
 * bytes; module commands such as "JSON.GET" qualify) or it is reported as
 * unknown (""), which keeps garbage out of metric labels.
 *
 * Replies are classified from their first line: simple string, error (with
 * its prefix word: "ERR", "WRONGTYPE", "MOVED"), integer, bulk string,
 * arrays and the RESP3 types. $-1, *-1 and RESP3 _ are REDIS_NIL (a GET
 * miss). The *_len functions walk a whole value, nested aggregates
 * included, without recursion (a count of pending elements replaces the
 * stack), so the length of a complete command or reply is known and
 * pipelined ones can be counted; anything cut is "need more".
 *
 * Counting rules match what the server does: empty inline lines and "*0"
 * arrays are consumed but are not commands (Redis ignores them); RESP3
 * push frames ('>') are consumed but are not replies (they answer no
 * command).
 *
 * Returns: a length or 0 on success; -EAGAIN for a consistent prefix that
 * ends too soon; -EBADMSG for bytes that are not RESP (lines end in CRLF,
 * lengths are decimal and bounded: 512 MiB per bulk string, 2^31 elements
 * per aggregate, as the server enforces).
 */
#ifndef KS_L7_REDIS_H
#define KS_L7_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define REDIS_NAME_MAX 32
#define REDIS_ERR_MAX 32

struct redis_cmd {
	char name[REDIS_NAME_MAX]; /* upper-cased first word; "" if unknown */
	long long argc; /* elements (words for inline); -1 if unknown */
	bool is_inline;
};

/*
 * Parse the first command in buf. Returns its length when complete;
 * -EAGAIN when cut (cmd->name is filled once the first element was
 * complete); -EBADMSG otherwise.
 */
ssize_t redis_parse_command(const void *buf, size_t len, struct redis_cmd *cmd);

/*
 * Count the complete commands at the start of buf (pipelining). *used gets
 * the bytes they take; it is less than len when buf ends in a partial
 * command or in bytes that are not RESP.
 */
int redis_count_commands(const void *buf, size_t len, size_t *used);

enum redis_type {
	REDIS_SIMPLE = '+',
	REDIS_ERROR = '-',
	REDIS_INTEGER = ':',
	REDIS_BULK = '$',
	REDIS_ARRAY = '*',
	REDIS_NIL = '_', /* also $-1 and *-1 */
	REDIS_DOUBLE = ',',
	REDIS_BOOL = '#',
	REDIS_BIGNUM = '(',
	REDIS_BLOB_ERROR = '!',
	REDIS_VERBATIM = '=',
	REDIS_MAP = '%',
	REDIS_SET = '~',
	REDIS_ATTRIBUTE = '|',
	REDIS_PUSH = '>',
};

struct redis_reply {
	enum redis_type type;
	long long n; /* integer value; string length; element count */
	char error[REDIS_ERR_MAX]; /* errors: first word, "" if unknown */
};

/*
 * Classify the reply at the start of buf from its first line (for a blob
 * error, from the first word of its data). 0, -EAGAIN, -EBADMSG.
 */
int redis_parse_reply(const void *buf, size_t len, struct redis_reply *r);

/* "simple", "error", "integer", "bulk", "array", "nil", ...; "?" if unknown. */
const char *redis_type_name(enum redis_type t);

/* Is this reply an error (simple or blob)? */
bool redis_reply_is_error(const struct redis_reply *r);

/* Length of the complete reply at the start of buf, or -EAGAIN/-EBADMSG. */
ssize_t redis_reply_len(const void *buf, size_t len);

/* Count the complete replies at the start of buf; see count_commands. */
int redis_count_replies(const void *buf, size_t len, size_t *used);

#endif
