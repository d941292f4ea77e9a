/*
 * l7_http.c - HTTP/1.x heads from a captured prefix; see l7_http.h.
 *
 * The parser is a straight walk: start line, then one header line at a
 * time. A line counts only once its LF is in the buffer, so a header cut by
 * the capture limit is ignored rather than half-read (a cut "Content-Length:
 * 12" must not become 1). Header values are matched case-insensitively and
 * only the handful of headers that change framing or tracing are looked at.
 * Body framing (Content-Length, chunked) is only walked by the *_len
 * helpers, which need the whole message anyway.
 */
#include "l7_http.h"
#include "strbuf.h"

#include <errno.h>
#include <string.h>

#define CL_MAX (1ULL << 62) /* larger Content-Length values are malformed */

static const struct {
	const char *name;
	size_t len;
} methods[HTTP_M__COUNT] = {
    [HTTP_M_GET] = {"GET", 3},	       [HTTP_M_HEAD] = {"HEAD", 4},
    [HTTP_M_POST] = {"POST", 4},       [HTTP_M_PUT] = {"PUT", 3},
    [HTTP_M_DELETE] = {"DELETE", 6},   [HTTP_M_PATCH] = {"PATCH", 5},
    [HTTP_M_OPTIONS] = {"OPTIONS", 7}, [HTTP_M_CONNECT] = {"CONNECT", 7},
    [HTTP_M_TRACE] = {"TRACE", 5},
};

const char *http1_method_name(enum http_method m)
{
	if (m <= HTTP_M_UNKNOWN || m >= HTTP_M__COUNT)
		return "_OTHER";
	return methods[m].name;
}

static char lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

/* Case-insensitive equality of a counted string and a lowercase literal. */
static bool ci_eq(const char *s, size_t len, const char *lit)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (!lit[i] || lower(s[i]) != lit[i])
			return false;
	return lit[len] == '\0';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static void trim_ows(const char **s, size_t *len)
{
	while (*len && is_ows(**s)) {
		(*s)++;
		(*len)--;
	}
	while (*len && is_ows((*s)[*len - 1]))
		(*len)--;
}

/*
 * The line starting at off: returns the offset just past its LF and sets
 * *line_len to its length without CR/LF, or returns 0 if the LF is not in
 * the buffer.
 */
static size_t next_line(const char *p, size_t len, size_t off, size_t *line_len)
{
	const char *nl = memchr(p + off, '\n', len - off);
	size_t n;

	if (!nl)
		return 0;
	n = (size_t)(nl - (p + off));
	*line_len = (n && p[off + n - 1] == '\r') ? n - 1 : n;
	return off + n + 1;
}

/* ---- start lines ---------------------------------------------------- */

/* 1: method + SP matched; 0: a prefix of some method; -1: no method. */
static int match_method(const char *p, size_t len, enum http_method *m)
{
	bool maybe = false;
	int i;

	if (!len)
		return 0;
	for (i = 1; i < HTTP_M__COUNT; i++) {
		size_t n = methods[i].len;

		if (len > n) {
			if (!memcmp(p, methods[i].name, n) && p[n] == ' ') {
				*m = (enum http_method)i;
				return 1;
			}
		} else if (!memcmp(p, methods[i].name, len)) {
			maybe = true;
		}
	}
	return maybe ? 0 : -1;
}

/*
 * Match "HTTP/1.x SSS" at the start of p. 1: matched (12 bytes); 0: a
 * consistent prefix; -1: not a status line. A fourth digit is rejected.
 */
static int match_status_line(const char *p, size_t len, int *minor, int *status)
{
	static const char pat[] = "HTTP/1.v ddd";
	size_t i;

	for (i = 0; i < sizeof(pat) - 1; i++) {
		if (i >= len)
			return 0;
		if (pat[i] == 'v' && (p[i] == '0' || p[i] == '1'))
			continue;
		if (pat[i] == 'd' && is_digit(p[i]))
			continue;
		if (pat[i] != p[i])
			return -1;
	}
	if (p[9] < '1' || p[9] > '5')
		return -1;
	if (len > 12 && p[12] != ' ' && p[12] != '\r' && p[12] != '\n')
		return -1;
	*minor = p[7] - '0';
	*status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	return 1;
}

enum http_kind http1_classify(const void *buf, size_t len)
{
	enum http_method m;
	int minor, status, rm, rs;

	rm = match_method(buf, len, &m);
	if (rm > 0)
		return HTTP_KIND_REQUEST;
	rs = match_status_line(buf, len, &minor, &status);
	if (rs > 0)
		return HTTP_KIND_RESPONSE;
	if (rm == 0 || rs == 0)
		return HTTP_KIND_MAYBE;
	return HTTP_KIND_NONE;
}

/*
 * Match "HTTP/1.x" then CRLF or LF at p. Returns the offset past the line
 * end (setting *minor), 0 if the buffer ends first, -1 if it does not match.
 */
static long match_version_eol(const char *p, size_t len, int *minor)
{
	static const char pat[] = "HTTP/1.v\r\n";
	size_t i;

	for (i = 0; i < sizeof(pat) - 1; i++) {
		if (i >= len)
			return 0;
		if (pat[i] == 'v' && (p[i] == '0' || p[i] == '1'))
			continue;
		if (i == 8 && p[i] == '\n')
			break;
		if (pat[i] != p[i])
			return -1;
	}
	*minor = p[7] - '0';
	return (long)i + (i == 8 ? 1 : 0);
}

/* Split the target into path and query; flag a cut inside the path. */
static void split_target(struct http1_request *r, bool cut)
{
	const char *t = r->target;
	size_t i, qend;

	for (i = 0; i < r->target_len && t[i] != '?' && t[i] != '#'; i++)
		;
	r->path = t;
	r->path_len = i;
	if (cut) {
		r->h.flags |= HTTP1_F_TARGET_TRUNC;
		if (i == r->target_len)
			r->h.flags |= HTTP1_F_PATH_TRUNC;
	}
	if (i == r->target_len || t[i] != '?')
		return;
	for (qend = i + 1; qend < r->target_len && t[qend] != '#'; qend++)
		;
	r->query = t + i + 1;
	r->query_len = qend - i - 1;
}

/*
 * Parse the request line. Returns the offset of the first header line,
 * 0 if the line is cut (what was seen is filled in), or -EBADMSG.
 */
static long parse_request_line(const char *p, size_t len, size_t off,
			       struct http1_request *r)
{
	size_t i;
	long v;

	for (i = off; i < len && p[i] != ' '; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c < 0x21 || c == 0x7f)
			return -EBADMSG;
	}
	if (i == off && i < len)
		return -EBADMSG;
	r->target = p + off;
	r->target_len = i - off;
	split_target(r, i == len);
	if (i == len)
		return 0;
	v = match_version_eol(p + i + 1, len - i - 1, &r->version_minor);
	if (v < 0)
		return -EBADMSG;
	return v ? (long)(i + 1) + v : 0;
}

/* ---- header fields ---------------------------------------------------- */

static void on_content_length(struct http1_head *h, const char *v, size_t n)
{
	uint64_t cl = 0;
	size_t i;

	if (!n)
		goto bad;
	for (i = 0; i < n; i++) {
		if (!is_digit(v[i]))
			goto bad;
		cl = cl * 10 + (uint64_t)(v[i] - '0');
		if (cl > CL_MAX)
			goto bad;
	}
	if ((h->flags & HTTP1_F_CONTENT_LENGTH) && h->content_length != cl)
		goto bad;
	h->content_length = cl;
	h->flags |= HTTP1_F_CONTENT_LENGTH;
	return;
bad:
	h->flags |= HTTP1_F_MALFORMED;
}

/*
 * Call fn on each comma-separated, OWS-trimmed element of a list value.
 * Returns the last non-empty element through *last.
 */
static void each_token(const char *v, size_t n, struct http1_head *h,
		       void (*fn)(struct http1_head *, const char *, size_t),
		       const char **last, size_t *last_len)
{
	size_t start = 0, i;

	for (i = 0; i <= n; i++) {
		const char *t = v + start;
		size_t tn = i - start;

		if (i < n && v[i] != ',')
			continue;
		start = i + 1;
		trim_ows(&t, &tn);
		if (!tn)
			continue;
		if (fn)
			fn(h, t, tn);
		*last = t;
		*last_len = tn;
	}
}

static void connection_token(struct http1_head *h, const char *t, size_t n)
{
	if (ci_eq(t, n, "close"))
		h->flags |= HTTP1_F_CONN_CLOSE;
	else if (ci_eq(t, n, "keep-alive"))
		h->flags |= HTTP1_F_CONN_KEEPALIVE;
	else if (ci_eq(t, n, "upgrade"))
		h->flags |= HTTP1_F_UPGRADE;
}

/* Only the final coding decides chunked framing (RFC 9112 6.3). */
static void on_transfer_encoding(struct http1_head *h, const char *v, size_t n)
{
	const char *last = NULL;
	size_t last_len = 0;

	each_token(v, n, h, NULL, &last, &last_len);
	h->flags |= HTTP1_F_TE;
	if (last && ci_eq(last, last_len, "chunked"))
		h->flags |= HTTP1_F_CHUNKED;
	else
		h->flags &= ~HTTP1_F_CHUNKED;
}

static void on_traceparent(struct http1_head *h, const char *v, size_t n)
{
	if (h->flags & (HTTP1_F_TRACEPARENT | HTTP1_F_TRACEPARENT_BAD)) {
		h->flags &= ~HTTP1_F_TRACEPARENT;
		h->flags |= HTTP1_F_TRACEPARENT_BAD;
		return;
	}
	if (w3c_traceparent_parse(v, n, &h->traceparent) == 0)
		h->flags |= HTTP1_F_TRACEPARENT;
	else
		h->flags |= HTTP1_F_TRACEPARENT_BAD;
}

/* The names' lengths tell them apart: most fields are none of these. */
static void on_field(struct http1_head *h, const char *name, size_t nlen,
		     const char *v, size_t n)
{
	const char *last;
	size_t last_len;

	switch (nlen) {
	case sizeof("content-length") - 1:
		if (ci_eq(name, nlen, "content-length"))
			on_content_length(h, v, n);
		break;
	case sizeof("transfer-encoding") - 1:
		if (ci_eq(name, nlen, "transfer-encoding"))
			on_transfer_encoding(h, v, n);
		break;
	case sizeof("connection") - 1:
		if (ci_eq(name, nlen, "connection"))
			each_token(v, n, h, connection_token, &last, &last_len);
		break;
	case sizeof("expect") - 1:
		if (ci_eq(name, nlen, "expect") && ci_eq(v, n, "100-continue"))
			h->flags |= HTTP1_F_EXPECT_CONTINUE;
		break;
	case sizeof("traceparent") - 1:
		if (ci_eq(name, nlen, "traceparent"))
			on_traceparent(h, v, n);
		break;
	}
}

/* One "name: value" line; false if it is not one. */
static bool header_line(struct http1_head *h, const char *line, size_t n)
{
	const char *colon = memchr(line, ':', n);
	const char *v;
	size_t i, nlen, vlen;

	if (!colon || colon == line)
		return false;
	nlen = (size_t)(colon - line);
	for (i = 0; i < nlen; i++)
		if (!ks_is_tchar((unsigned char)line[i]))
			return false;
	v = colon + 1;
	vlen = n - nlen - 1;
	trim_ows(&v, &vlen);
	on_field(h, line, nlen, v, vlen);
	return true;
}

/* Walk header lines from off until the blank line or the buffer's end. */
static void parse_headers(const char *p, size_t len, size_t off,
			  struct http1_head *h)
{
	size_t next, n;

	while ((next = next_line(p, len, off, &n)) != 0) {
		if (n == 0) {
			h->flags |= HTTP1_F_HEAD_COMPLETE;
			h->head_len = next;
			return;
		}
		if (is_ows(p[off]) || !header_line(h, p + off, n)) {
			h->flags |= HTTP1_F_MALFORMED;
			return;
		}
		off = next;
	}
}

/* ---- public parsers --------------------------------------------------- */

/* The request line; the offset of the header lines (0: none yet) or
 * -errno. */
static long request_line(const char *p, size_t len, struct http1_request *r)
{
	int rm;

	memset(r, 0, sizeof(*r));
	r->version_minor = -1;
	rm = match_method(p, len, &r->method);
	if (rm <= 0)
		return rm == 0 ? -EAGAIN : -EINVAL;
	return parse_request_line(p, len, methods[r->method].len + 1, r);
}

int http1_parse_request(const void *buf, size_t len, struct http1_request *r)
{
	long off = request_line(buf, len, r);

	if (off < 0)
		return (int)off;
	if (off > 0)
		parse_headers(buf, len, (size_t)off, &r->h);
	return 0;
}

int http1_parse_request_line(const void *buf, size_t len,
			     struct http1_request *r)
{
	long off = request_line(buf, len, r);

	return off < 0 ? (int)off : 0;
}

static bool no_body_by_rule(int status, enum http_method req_method)
{
	if (status < 200 || status == 204 || status == 304)
		return true;
	if (req_method == HTTP_M_HEAD)
		return true;
	return req_method == HTTP_M_CONNECT && status < 300;
}

int http1_parse_response(const void *buf, size_t len,
			 enum http_method req_method, struct http1_response *r)
{
	const char *p = buf;
	size_t off, n;
	int rs;

	memset(r, 0, sizeof(*r));
	rs = match_status_line(p, len, &r->version_minor, &r->status);
	if (rs <= 0)
		return rs == 0 ? -EAGAIN : -EINVAL;
	if (no_body_by_rule(r->status, req_method))
		r->h.flags |= HTTP1_F_NO_BODY;
	off = next_line(p, len, 0, &n);
	if (off)
		parse_headers(p, len, off, &r->h);
	return 0;
}

bool http1_keep_alive(int version_minor, unsigned int flags)
{
	if (flags & HTTP1_F_CONN_CLOSE)
		return false;
	return version_minor >= 1 || (flags & HTTP1_F_CONN_KEEPALIVE);
}

/* ---- message lengths -------------------------------------------------- */

/*
 * One chunk-size line at off: hex size, optional extensions. Returns the
 * offset past it, -EAGAIN or -EBADMSG.
 */
static ssize_t chunk_size_line(const char *p, size_t len, size_t off,
			       uint64_t *size)
{
	size_t next, n, i;

	next = next_line(p, len, off, &n);
	if (!next)
		return -EAGAIN;
	*size = 0;
	for (i = 0; i < n && ks_hexval(p[off + i]) >= 0; i++) {
		if (i >= 15)
			return -EBADMSG;
		*size = *size * 16 + (uint64_t)ks_hexval(p[off + i]);
	}
	if (i == 0)
		return -EBADMSG;
	while (i < n && is_ows(p[off + i]))
		i++;
	if (i < n && p[off + i] != ';')
		return -EBADMSG;
	return (ssize_t)next;
}

/* Skip the trailer section after the last chunk, up to its blank line. */
static ssize_t trailer_end(const char *p, size_t len, size_t off)
{
	size_t next, n;

	while ((next = next_line(p, len, off, &n)) != 0) {
		if (n == 0)
			return (ssize_t)next;
		off = next;
	}
	return -EAGAIN;
}

/* The end offset of a chunked body starting at off. */
static ssize_t chunked_end(const char *p, size_t len, size_t off)
{
	for (;;) {
		uint64_t size;
		ssize_t next = chunk_size_line(p, len, off, &size);

		if (next < 0)
			return next;
		off = (size_t)next;
		if (size == 0)
			return trailer_end(p, len, off);
		if (size >= len - off)
			return -EAGAIN;
		off += (size_t)size;
		if (p[off] == '\n') {
			off += 1;
		} else if (p[off] == '\r') {
			if (off + 1 >= len)
				return -EAGAIN;
			if (p[off + 1] != '\n')
				return -EBADMSG;
			off += 2;
		} else {
			return -EBADMSG;
		}
	}
}

/* The end of the message whose head h was parsed from p; no body = 0. */
static ssize_t message_end(const char *p, size_t len,
			   const struct http1_head *h, bool until_close)
{
	if (h->flags & HTTP1_F_MALFORMED)
		return -EBADMSG;
	if (!(h->flags & HTTP1_F_HEAD_COMPLETE))
		return -EAGAIN;
	if (h->flags & HTTP1_F_NO_BODY)
		return (ssize_t)h->head_len;
	if (h->flags & HTTP1_F_CHUNKED)
		return chunked_end(p, len, h->head_len);
	if (h->flags & HTTP1_F_TE)
		return until_close ? -ENOTSUP : -EBADMSG;
	if (h->flags & HTTP1_F_CONTENT_LENGTH) {
		if (h->content_length > len - h->head_len)
			return -EAGAIN;
		return (ssize_t)(h->head_len + h->content_length);
	}
	return until_close ? -ENOTSUP : (ssize_t)h->head_len;
}

ssize_t http1_request_len(const void *buf, size_t len)
{
	struct http1_request r;
	int err = http1_parse_request(buf, len, &r);

	if (err)
		return err;
	return message_end(buf, len, &r.h, false);
}

ssize_t http1_request_end(const void *buf, size_t len,
			  const struct http1_request *r)
{
	return message_end(buf, len, &r->h, false);
}

ssize_t http1_response_len(const void *buf, size_t len,
			   enum http_method req_method)
{
	struct http1_response r;
	int err = http1_parse_response(buf, len, req_method, &r);

	if (err)
		return err;
	return message_end(buf, len, &r.h, true);
}

/* ---- traceparent ------------------------------------------------------ */

/* n bytes of lowercase hex from s into out; false if any is not. */
static bool lower_hex(const char *s, size_t n, uint8_t *out)
{
	size_t i;

	for (i = 0; i < n; i++) {
		int v = ks_hexval(s[i]);

		if (v < 0 || (s[i] >= 'A' && s[i] <= 'F'))
			return false;
		if (i % 2 == 0)
			out[i / 2] = (uint8_t)(v << 4);
		else
			out[i / 2] |= (uint8_t)v;
	}
	return true;
}

static bool all_zero(const uint8_t *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

int w3c_traceparent_parse(const char *s, size_t len, struct w3c_traceparent *tp)
{
	if (len < 55 || s[2] != '-' || s[35] != '-' || s[52] != '-')
		return -EINVAL;
	if (!lower_hex(s, 2, &tp->version) || tp->version == 0xff)
		return -EINVAL;
	if (tp->version == 0 ? len != 55 : (len > 55 && s[55] != '-'))
		return -EINVAL;
	if (!lower_hex(s + 3, 32, tp->trace_id) ||
	    !lower_hex(s + 36, 16, tp->parent_id) ||
	    !lower_hex(s + 53, 2, &tp->flags))
		return -EINVAL;
	if (all_zero(tp->trace_id, 16) || all_zero(tp->parent_id, 8))
		return -EINVAL;
	return 0;
}
