/*
 * l7_redis.c - RESP commands and replies from a captured prefix; see
 * l7_redis.h.
 *
 * Everything rests on read_header(), which reads one type byte and its
 * line and validates it as far as the bytes go: a length line holding a
 * non-digit is malformed at once rather than "need more" forever, so
 * random bytes are rejected within a few bytes. value_end() skips one whole
 * value with a pending-element counter instead of recursion, which makes
 * nesting depth irrelevant and the work linear in the buffer.
 */
#include "l7_redis.h"

#include <errno.h>
#include <string.h>

#define BULK_MAX (512LL << 20)
#define AGG_MAX (1LL << 31)
#define NUM_LINE_MAX 21	       /* "-9223372036854775808" */
#define INLINE_MAX (64 * 1024) /* the server's inline limit */

struct hdr {
	char type;
	long long n; /* length, count or integer; 0 for other types */
	size_t line; /* offset of the line after the type byte */
	size_t eol;  /* offset of its CR */
};

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Parse a whole decimal integer, optionally negative. */
static bool parse_ll(const char *s, size_t n, long long *v)
{
	bool neg = n && s[0] == '-';
	unsigned long long acc = 0;
	size_t i = neg ? 1 : 0;

	if (i == n || n - i > 19)
		return false;
	for (; i < n; i++) {
		if (!is_digit(s[i]))
			return false;
		acc = acc * 10 + (unsigned long long)(s[i] - '0');
	}
	if (acc > (unsigned long long)9223372036854775807LL + neg)
		return false;
	*v = neg ? (long long)(0 - acc) : (long long)acc;
	return true;
}

/* Find the CRLF ending the line at off: offset past it, or -EAGAIN. */
static ssize_t line_end(const char *p, size_t len, size_t off, size_t *eol)
{
	const char *cr = memchr(p + off, '\r', len - off);

	if (!cr)
		return -EAGAIN;
	*eol = (size_t)(cr - p);
	if (*eol + 1 >= len)
		return -EAGAIN;
	return p[*eol + 1] == '\n' ? (ssize_t)(*eol + 2) : -EBADMSG;
}

/* A number line at off; rejects non-numbers before the line is whole. */
static ssize_t num_line(const char *p, size_t len, size_t off, long long *v)
{
	size_t eol, i, end;
	ssize_t next = line_end(p, len, off, &eol);

	if (next == -EAGAIN) {
		end = (len > off && p[len - 1] == '\r') ? len - 1 : len;
		if (end - off > NUM_LINE_MAX)
			return -EBADMSG;
		for (i = off; i < end; i++)
			if (!is_digit(p[i]) && !(i == off && p[i] == '-'))
				return -EBADMSG;
		return -EAGAIN;
	}
	if (next < 0 || !parse_ll(p + off, eol - off, v))
		return -EBADMSG;
	return next;
}

static bool is_blob(char t)
{
	return t == '$' || t == '!' || t == '=';
}

static bool is_aggregate(char t)
{
	return t == '*' || t == '%' || t == '~' || t == '>' || t == '|';
}

/* Check a length or count against the type's bounds. */
static bool count_ok(char t, long long n)
{
	long long min = (t == '$' || t == '*') ? -1 : 0;

	return n >= min && n <= (is_blob(t) ? BULK_MAX : AGG_MAX);
}

/* A line-only value's line, with the checks its type allows. */
static ssize_t plain_line(const char *p, size_t len, struct hdr *h)
{
	ssize_t next = line_end(p, len, h->line, &h->eol);
	size_t n = h->eol - h->line;

	if (next < 0)
		return next;
	if (h->type == '_' && n != 0)
		return -EBADMSG;
	if (h->type == '#' &&
	    (n != 1 || (p[h->line] != 't' && p[h->line] != 'f')))
		return -EBADMSG;
	if (h->type == ':' && !parse_ll(p + h->line, n, &h->n))
		return -EBADMSG;
	return next;
}

/* Read the type byte and line of the value at off; offset past them. */
static ssize_t read_header(const char *p, size_t len, size_t off, struct hdr *h)
{
	ssize_t next;

	memset(h, 0, sizeof(*h));
	if (off >= len)
		return -EAGAIN;
	h->type = p[off];
	h->line = off + 1;
	if (h->type && strchr("+-:,(#_", h->type))
		return plain_line(p, len, h);
	if (!is_blob(h->type) && !is_aggregate(h->type))
		return -EBADMSG;
	next = num_line(p, len, h->line, &h->n);
	if (next >= 0 && !count_ok(h->type, h->n))
		return -EBADMSG;
	h->eol = next >= 0 ? (size_t)next - 2 : 0;
	return next;
}

/* Skip a blob's data and its CRLF, starting at off. */
static ssize_t blob_end(const char *p, size_t len, size_t off, long long n)
{
	if (n < 0)
		return (ssize_t)off;
	if ((unsigned long long)(len - off) < (unsigned long long)n + 2)
		return -EAGAIN;
	off += (size_t)n;
	if (p[off] != '\r' || p[off + 1] != '\n')
		return -EBADMSG;
	return (ssize_t)(off + 2);
}

/* The end of the whole value at off, nested elements included. */
static ssize_t value_end(const char *p, size_t len, size_t off)
{
	unsigned long long pending = 1;
	struct hdr h;
	ssize_t next;

	while (pending) {
		next = read_header(p, len, off, &h);
		if (next < 0)
			return next;
		off = (size_t)next;
		if (h.type == '|') { /* attributes precede the value */
			pending += 2 * (unsigned long long)h.n;
			continue;
		}
		pending--;
		if (is_blob(h.type)) {
			next = blob_end(p, len, off, h.n);
			if (next < 0)
				return next;
			off = (size_t)next;
		} else if (is_aggregate(h.type) && h.n > 0) {
			pending +=
			    (unsigned long long)h.n * (h.type == '%' ? 2 : 1);
		}
	}
	return (ssize_t)off;
}

/* ---- commands --------------------------------------------------------- */

static bool name_char(char c)
{
	return is_digit(c) || ((c | 32) >= 'a' && (c | 32) <= 'z') ||
	       c == '.' || c == '_' || c == '-' || c == '|';
}

static void set_name(struct redis_cmd *cmd, const char *s, size_t n)
{
	size_t i;

	if (!n || n >= REDIS_NAME_MAX)
		return;
	for (i = 0; i < n; i++)
		if (!name_char(s[i]))
			return;
	for (i = 0; i < n; i++)
		cmd->name[i] =
		    (s[i] >= 'a' && s[i] <= 'z') ? (char)(s[i] - 32) : s[i];
	cmd->name[n] = '\0';
}

/* One bulk-string argument at off; the first one names the command. */
static ssize_t bulk_arg(const char *p, size_t len, size_t off, bool first,
			struct redis_cmd *cmd)
{
	struct hdr h;
	ssize_t next = read_header(p, len, off, &h);

	if (next < 0)
		return next;
	if (h.type != '$' || h.n < 0)
		return -EBADMSG;
	off = (size_t)next;
	if (first && (unsigned long long)(len - off) >= (unsigned long long)h.n)
		set_name(cmd, p + off, (size_t)h.n);
	return blob_end(p, len, off, h.n);
}

static ssize_t parse_multibulk(const char *p, size_t len, struct redis_cmd *cmd)
{
	long long n, i;
	ssize_t next = num_line(p, len, 1, &n);

	if (next < 0)
		return next;
	if (n > AGG_MAX)
		return -EBADMSG;
	cmd->argc = n > 0 ? n : 0;
	for (i = 0; i < n; i++) {
		next = bulk_arg(p, len, (size_t)next, i == 0, cmd);
		if (next < 0)
			return next;
	}
	return next;
}

static bool inline_char(unsigned char c)
{
	return c >= 0x20 || c == '\t' || c == '\r';
}

/* Name and word count of one inline line of n bytes (CR included). */
static void inline_words(const char *s, size_t n, bool whole,
			 struct redis_cmd *cmd)
{
	size_t i = 0, start;

	cmd->argc = 0;
	while (i < n) {
		while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r'))
			i++;
		if (i == n)
			break;
		for (start = i;
		     i < n && s[i] != ' ' && s[i] != '\t' && s[i] != '\r'; i++)
			;
		if (cmd->argc++ == 0 && (whole || i < n))
			set_name(cmd, s + start, i - start);
	}
	if (!whole)
		cmd->argc = -1;
}

static ssize_t parse_inline(const char *p, size_t len, struct redis_cmd *cmd)
{
	const char *nl = memchr(p, '\n', len);
	size_t n = nl ? (size_t)(nl - p) : len, i;

	cmd->is_inline = true;
	for (i = 0; i < n; i++)
		if (!inline_char((unsigned char)p[i]))
			return -EBADMSG;
	if (n > INLINE_MAX)
		return -EBADMSG;
	inline_words(p, n, nl != NULL, cmd);
	return nl ? (ssize_t)(n + 1) : -EAGAIN;
}

ssize_t redis_parse_command(const void *buf, size_t len, struct redis_cmd *cmd)
{
	const char *p = buf;

	memset(cmd, 0, sizeof(*cmd));
	cmd->argc = -1;
	if (!len)
		return -EAGAIN;
	if (p[0] == '*')
		return parse_multibulk(p, len, cmd);
	return parse_inline(p, len, cmd);
}

int redis_count_commands(const void *buf, size_t len, size_t *used)
{
	const char *p = buf;
	struct redis_cmd cmd;
	size_t off = 0;
	ssize_t n;
	int count = 0;

	while (off < len) {
		n = redis_parse_command(p + off, len - off, &cmd);
		if (n <= 0)
			break;
		if (cmd.argc > 0)
			count++;
		off += (size_t)n;
	}
	*used = off;
	return count;
}

/* ---- replies ---------------------------------------------------------- */

/* The error's first word from s (at most n bytes); "" unless whole. */
static void error_word(struct redis_reply *r, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n && s[i] != ' ' && s[i] != '\r' && s[i] != '\n'; i++) {
		if (!name_char(s[i]) || s[i] == '.' || s[i] == '|')
			return;
	}
	if (i == 0 || i == n || i >= REDIS_ERR_MAX)
		return;
	memcpy(r->error, s, i);
	r->error[i] = '\0';
}

/* '+' and '-' are classified without waiting for the end of their line. */
static int simple_reply(const char *p, size_t len, struct redis_reply *r)
{
	size_t eol;
	ssize_t next = line_end(p, len, 1, &eol);

	if (next == -EBADMSG)
		return -EBADMSG;
	r->type = (enum redis_type)p[0];
	if (p[0] == '-')
		error_word(r, p + 1, next > 0 ? eol - 1 + 2 : len - 1);
	return 0;
}

int redis_parse_reply(const void *buf, size_t len, struct redis_reply *r)
{
	const char *p = buf;
	struct hdr h;
	ssize_t next;

	memset(r, 0, sizeof(*r));
	if (!len)
		return -EAGAIN;
	if (p[0] == '+' || p[0] == '-')
		return simple_reply(p, len, r);
	next = read_header(p, len, 0, &h);
	if (next < 0)
		return (int)next;
	r->type = (enum redis_type)h.type;
	r->n = h.n;
	if ((h.type == '$' || h.type == '*') && h.n < 0)
		r->type = REDIS_NIL;
	else if (h.type == '#')
		r->n = p[h.line] == 't';
	else if (h.type == '!')
		error_word(r, p + next,
			   len - (size_t)next < (size_t)h.n + 2
			       ? len - (size_t)next
			       : (size_t)h.n + 2);
	return 0;
}

const char *redis_type_name(enum redis_type t)
{
	static const struct {
		char type;
		const char *name;
	} names[] = {
	    {'+', "simple"},	 {'-', "error"},     {':', "integer"},
	    {'$', "bulk"},	 {'*', "array"},     {'_', "nil"},
	    {',', "double"},	 {'#', "boolean"},   {'(', "bignum"},
	    {'!', "blob_error"}, {'=', "verbatim"},  {'%', "map"},
	    {'~', "set"},	 {'|', "attribute"}, {'>', "push"},
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].type == (char)t)
			return names[i].name;
	return "?";
}

bool redis_reply_is_error(const struct redis_reply *r)
{
	return r->type == REDIS_ERROR || r->type == REDIS_BLOB_ERROR;
}

ssize_t redis_reply_len(const void *buf, size_t len)
{
	return value_end(buf, len, 0);
}

int redis_count_replies(const void *buf, size_t len, size_t *used)
{
	const char *p = buf;
	size_t off = 0;
	ssize_t end;
	int count = 0;

	while (off < len) {
		end = value_end(p, len, off);
		if (end < 0)
			break;
		if (p[off] != '>')
			count++;
		off = (size_t)end;
	}
	*used = off;
	return count;
}
