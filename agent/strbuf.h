/*
 * strbuf.h - a growable byte string for building responses and labels.
 *
 * Every renderer (Prometheus text, JSON, folded stacks) appends into one of
 * these. Allocation failure is sticky: the buffer stops growing, sb->oom is
 * set, and the caller checks once at the end instead of after every append.
 */
#ifndef KS_STRBUF_H
#define KS_STRBUF_H

#include <stdarg.h>
#include <stddef.h>
#include <string.h>

struct strbuf {
	char *buf;
	size_t len;
	size_t cap;
	int oom;
};

#define STRBUF_INIT { 0 }

void sb_init(struct strbuf *sb);
void sb_free(struct strbuf *sb);
void sb_reset(struct strbuf *sb);
/* Detach the buffer (NUL-terminated, caller frees) and reset sb. */
char *sb_detach(struct strbuf *sb, size_t *len);
void sb_append(struct strbuf *sb, const void *data, size_t len);
void sb_puts(struct strbuf *sb, const char *s);
void sb_putc(struct strbuf *sb, char c);
void sb_printf(struct strbuf *sb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void sb_vprintf(struct strbuf *sb, const char *fmt, va_list ap);
/* A JSON string literal with quotes, escaping as RFC 8259 requires. */
void sb_json_str(struct strbuf *sb, const char *s);
/* A double the way Prometheus and JSON both accept it (NaN/Inf spelled out). */
void sb_double(struct strbuf *sb, double v);

/*
 * Small formatting for hot paths (a per-event snprintf costs more than the
 * rest of the event's handling): the decimal digits of v into buf, which
 * has room for 21 bytes, NUL-terminated, returning their count; and a copy
 * of src into dst of size cap >= 1, truncated and NUL-terminated.
 */
size_t ks_utoa(char *buf, unsigned long long v);
void ks_strlcpy(char *dst, const char *src, size_t cap);

/*
 * ks_utoa() for a label value that mostly repeats (a port, a status): the
 * digits of the last value are kept. A zeroed struct is empty.
 */
struct ks_num_str {
	unsigned long long v;
	int set;
	char s[21];
};

static inline const char *ks_num_str(struct ks_num_str *c,
				     unsigned long long v)
{
	if (!c->set || c->v != v) {
		ks_utoa(c->s, v);
		c->v = v;
		c->set = 1;
	}
	return c->s;
}

/* The value of a hex digit, either case; -1 for anything else. */
static inline int ks_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* An RFC 9110 token character (header names, W3C baggage keys...). */
static inline int ks_is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

#endif
