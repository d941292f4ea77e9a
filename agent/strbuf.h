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

#endif
