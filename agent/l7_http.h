/*
 * l7_http.h - HTTP/1.x request and response heads, parsed from a prefix.
 *
 * The kernel copies at most the first 256 bytes of each request and of each
 * response into a ring-buffer record, so every function here works on a
 * possibly truncated prefix and says what it could not see instead of
 * guessing: a request target cut by the capture limit is flagged (so the
 * route is marked truncated rather than silently wrong), header-derived
 * facts are final only once the blank line ending the head was seen, and a
 * message length is either exact or "need more".
 *
 * Everything is pure: no I/O, no allocation, no global state. Strings in the
 * results point into the caller's buffer and live as long as it does.
 *
 * Return values follow the agent's convention (0 or a length on success, a
 * negative errno otherwise):
 *   -EAGAIN   the bytes so far are a consistent prefix, too short to decide
 *   -EINVAL   the bytes are not this kind of HTTP message at all
 *   -EBADMSG  it started like HTTP but is malformed
 *   -ENOTSUP  (lengths only) the body is delimited by connection close
 *
 * Deliberate leniency: bare LF line ends are accepted like CRLF. Deliberate
 * strictness: obsolete header folding, a header line without a colon, and
 * conflicting Content-Length values mark the head HTTP1_F_MALFORMED.
 */
#ifndef KS_L7_HTTP_H
#define KS_L7_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum http_method {
	HTTP_M_UNKNOWN = 0,
	HTTP_M_GET,
	HTTP_M_HEAD,
	HTTP_M_POST,
	HTTP_M_PUT,
	HTTP_M_DELETE,
	HTTP_M_PATCH,
	HTTP_M_OPTIONS,
	HTTP_M_CONNECT,
	HTTP_M_TRACE,
	HTTP_M__COUNT,
};

enum http_kind {
	HTTP_KIND_NONE = 0, /* not HTTP/1.x */
	HTTP_KIND_MAYBE, /* a prefix of a request or response line: need more */
	HTTP_KIND_REQUEST,
	HTTP_KIND_RESPONSE,
};

/* W3C Trace Context traceparent: version-traceid-parentid-flags. */
struct w3c_traceparent {
	uint8_t version;
	uint8_t trace_id[16];
	uint8_t parent_id[8];
	uint8_t flags; /* bit 0: sampled */
};

/* Flags in struct http1_head.flags. */
#define HTTP1_F_HEAD_COMPLETE 0x0001   /* blank line seen; head_len valid */
#define HTTP1_F_CONTENT_LENGTH 0x0002  /* content_length valid */
#define HTTP1_F_TE 0x0004	       /* Transfer-Encoding present */
#define HTTP1_F_CHUNKED 0x0008	       /* ... and its final coding is chunked */
#define HTTP1_F_CONN_CLOSE 0x0010      /* Connection: close */
#define HTTP1_F_CONN_KEEPALIVE 0x0020  /* Connection: keep-alive */
#define HTTP1_F_UPGRADE 0x0040	       /* Connection: upgrade */
#define HTTP1_F_EXPECT_CONTINUE 0x0080 /* Expect: 100-continue */
#define HTTP1_F_TRACEPARENT 0x0100     /* one valid traceparent header */
#define HTTP1_F_TRACEPARENT_BAD 0x0200 /* traceparent invalid or repeated */
#define HTTP1_F_MALFORMED 0x0400       /* header section unusable from here */
#define HTTP1_F_TARGET_TRUNC 0x0800    /* request target cut by the capture */
#define HTTP1_F_PATH_TRUNC 0x1000      /* ... and the cut is inside the path */
#define HTTP1_F_NO_BODY 0x2000	       /* response has no body by rule */

/*
 * What the header section said. Header facts reflect the complete header
 * lines in the prefix; they are final only with HTTP1_F_HEAD_COMPLETE.
 */
struct http1_head {
	unsigned int flags;		    /* HTTP1_F_* */
	size_t head_len;		    /* start line through blank line */
	uint64_t content_length;	    /* with HTTP1_F_CONTENT_LENGTH */
	struct w3c_traceparent traceparent; /* with HTTP1_F_TRACEPARENT */
};

struct http1_request {
	enum http_method method;
	int version_minor;  /* 0 or 1; -1 when the request line is cut */
	const char *target; /* request-target as captured (maybe cut) */
	size_t target_len;
	const char *path; /* target up to '?' or '#' */
	size_t path_len;
	const char *query; /* after '?', up to '#'; NULL if no '?' */
	size_t query_len;
	struct http1_head h;
};

struct http1_response {
	int version_minor; /* 0 or 1 */
	int status;	   /* 100..599 */
	struct http1_head h;
};

/* "GET", ...; "_OTHER" for HTTP_M_UNKNOWN, as OpenTelemetry spells it. */
const char *http1_method_name(enum http_method m);

/* Does buf start like a request line, a status line, or neither? */
enum http_kind http1_classify(const void *buf, size_t len);

/*
 * Parse a request head prefix. 0 once the method is known: the target may
 * be cut (HTTP1_F_TARGET_TRUNC, and HTTP1_F_PATH_TRUNC when no '?' or '#'
 * was seen, i.e. the route itself is incomplete), the version may be
 * unknown (-1), the headers may be incomplete. -EAGAIN, -EINVAL, -EBADMSG
 * as above (-EBADMSG: empty or control characters in the target, or a bad
 * version).
 */
int http1_parse_request(const void *buf, size_t len, struct http1_request *r);
/* The same without the header fields (r->h stays empty): for a caller
 * that needs the request line only. */
int http1_parse_request_line(const void *buf, size_t len,
			     struct http1_request *r);

/*
 * Parse a response head prefix. req_method is the method of the request it
 * answers (HTTP_M_UNKNOWN if not known); it decides HTTP1_F_NO_BODY for
 * HEAD and for 2xx answers to CONNECT. 0 once the status code is known.
 */
int http1_parse_response(const void *buf, size_t len,
			 enum http_method req_method, struct http1_response *r);

/*
 * Length of the first complete request in buf (head plus Content-Length or
 * chunked body; no framing headers means no body), so pipelined requests
 * can be split. -EAGAIN if buf ends before it does.
 */
ssize_t http1_request_len(const void *buf, size_t len);
/* The same for a request http1_parse_request already parsed from buf. */
ssize_t http1_request_end(const void *buf, size_t len,
			  const struct http1_request *r);

/*
 * Length of the first complete response in buf. A 1xx interim response is
 * a message of its own. -ENOTSUP when the body runs until close.
 */
ssize_t http1_response_len(const void *buf, size_t len,
			   enum http_method req_method);

/* Does the connection stay open after a message with this head? */
bool http1_keep_alive(int version_minor, unsigned int flags);

/*
 * Parse a traceparent header value (OWS already trimmed). Lowercase hex
 * only; version ff, all-zero ids and a wrong length are invalid, and a
 * version above 00 may carry more fields after a '-'. 0 or -EINVAL.
 */
int w3c_traceparent_parse(const char *s, size_t len,
			  struct w3c_traceparent *tp);

#endif
