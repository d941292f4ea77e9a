/*
 * strbuf.c - growable byte string; see strbuf.h.
 */
#include "strbuf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sb_init(struct strbuf *sb)
{
	memset(sb, 0, sizeof(*sb));
}

void sb_free(struct strbuf *sb)
{
	free(sb->buf);
	memset(sb, 0, sizeof(*sb));
}

void sb_reset(struct strbuf *sb)
{
	sb->len = 0;
	if (sb->buf)
		sb->buf[0] = '\0';
}

static int sb_grow(struct strbuf *sb, size_t extra)
{
	size_t need, cap;
	char *nb;

	if (sb->oom)
		return -1;
	need = sb->len + extra + 1;
	if (need <= sb->cap)
		return 0;
	cap = sb->cap ? sb->cap : 256;
	while (cap < need)
		cap *= 2;
	nb = realloc(sb->buf, cap);
	if (!nb) {
		sb->oom = 1;
		return -1;
	}
	sb->buf = nb;
	sb->cap = cap;
	return 0;
}

char *sb_detach(struct strbuf *sb, size_t *len)
{
	char *b;

	if (!sb->buf && sb_grow(sb, 0))
		return NULL;
	b = sb->buf;
	if (len)
		*len = sb->len;
	memset(sb, 0, sizeof(*sb));
	return b;
}

void sb_append(struct strbuf *sb, const void *data, size_t len)
{
	if (sb_grow(sb, len))
		return;
	memcpy(sb->buf + sb->len, data, len);
	sb->len += len;
	sb->buf[sb->len] = '\0';
}

void sb_puts(struct strbuf *sb, const char *s)
{
	sb_append(sb, s, strlen(s));
}

void sb_putc(struct strbuf *sb, char c)
{
	sb_append(sb, &c, 1);
}

void sb_vprintf(struct strbuf *sb, const char *fmt, va_list ap)
{
	va_list cp;
	int n;

	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0 || sb_grow(sb, (size_t)n))
		return;
	vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
	sb->len += (size_t)n;
}

void sb_printf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sb_vprintf(sb, fmt, ap);
	va_end(ap);
}

void sb_json_str(struct strbuf *sb, const char *s)
{
	const unsigned char *p;

	sb_putc(sb, '"');
	for (p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"':
			sb_puts(sb, "\\\"");
			break;
		case '\\':
			sb_puts(sb, "\\\\");
			break;
		case '\n':
			sb_puts(sb, "\\n");
			break;
		case '\r':
			sb_puts(sb, "\\r");
			break;
		case '\t':
			sb_puts(sb, "\\t");
			break;
		default:
			if (*p < 0x20)
				sb_printf(sb, "\\u%04x", *p);
			else
				sb_putc(sb, (char)*p);
		}
	}
	sb_putc(sb, '"');
}

void sb_double(struct strbuf *sb, double v)
{
	if (isnan(v))
		sb_puts(sb, "NaN");
	else if (isinf(v))
		sb_puts(sb, v > 0 ? "+Inf" : "-Inf");
	else if (v == (double)(long long)v && fabs(v) < 1e15)
		sb_printf(sb, "%lld", (long long)v);
	else
		sb_printf(sb, "%.17g", v);
}

size_t ks_utoa(char *buf, unsigned long long v)
{
	char tmp[21];
	size_t n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	buf[n] = '\0';
	return n;
}

void ks_strlcpy(char *dst, const char *src, size_t cap)
{
	size_t n = strnlen(src, cap - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}
