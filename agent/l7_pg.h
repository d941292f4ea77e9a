/*
 * l7_pg.h - PostgreSQL wire protocol v3, split and parsed from a prefix.
 *
 * A captured buffer holds the first bytes (at most 256) of what one side
 * wrote: often several messages (the extended protocol pipelines Parse,
 * Bind, Describe, Execute, Sync in one write), the last of which may be cut.
 * struct pg_iter walks it message by message; the final message comes back
 * with .truncated set and only the bytes that were captured. Every message
 * parser reads within those bytes and distinguishes "cut by the capture"
 * (-EAGAIN, with whatever fields were complete filled in) from "impossible
 * for a complete message" (-EBADMSG).
 *
 * Types are validated per direction and lengths against the protocol's own
 * limits, so random bytes, TLS records or a desynchronized stream stop the
 * iterator with -EBADMSG instead of producing nonsense.
 *
 * The startup phase has untyped messages: StartupMessage, SSLRequest,
 * GSSENCRequest and CancelRequest are (length, code[, ...]) with no type
 * byte. The iterator in PG_FRONTEND direction returns them with type 0 (no
 * typed message starts with a zero byte). The server answers SSLRequest
 * with one unframed byte, 'S' (TLS follows: stop parsing) or 'N';
 * pg_ssl_answer() reads it.
 *
 * struct pg_stmts is the per-connection table of named prepared statements
 * (name -> normalized text) the extended protocol needs: a Bind names a
 * statement that a Parse defined earlier, maybe in another round trip.
 * It is fixed-size (PG_STMTS_MAX entries, least recently used evicted),
 * keys statements by a 64-bit hash of their name, and stores text already
 * passed through sql_normalize(), so no literal is ever kept.
 *
 * Pure: no I/O, no allocation; results point into the caller's buffer.
 */
#ifndef KS_L7_PG_H
#define KS_L7_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PG_PROTO_V3 0x00030000u /* major 3 in the high 16 bits */
#define PG_SSL_REQUEST_CODE 80877103u
#define PG_GSSENC_REQUEST_CODE 80877104u
#define PG_CANCEL_REQUEST_CODE 80877102u
#define PG_STARTUP_MAX_LEN 10000u  /* the server's own limit */
#define PG_MSG_MAX_LEN 0x40000000u /* 1 GiB: the server's own limit */

enum pg_dir {
	PG_FRONTEND, /* client to server */
	PG_BACKEND,  /* server to client */
};

enum pg_startup {
	PG_STARTUP_V3 = 1, /* StartupMessage, protocol 3.x */
	PG_STARTUP_SSL,	   /* SSLRequest: the client asks for TLS */
	PG_STARTUP_GSSENC, /* GSSENCRequest */
	PG_STARTUP_CANCEL, /* CancelRequest */
};

/*
 * What kind of startup-phase message does buf start with? A positive enum
 * pg_startup, -EAGAIN for fewer than 8 bytes that could still be one, or
 * -EINVAL.
 */
int pg_startup_kind(const void *buf, size_t len);

/*
 * The server's one-byte answer to SSLRequest ('S' or 'N') or GSSENCRequest
 * ('G' or 'N'): that byte, -EAGAIN if buf is empty, or -EINVAL.
 */
int pg_ssl_answer(const void *buf, size_t len);

/* One message as found in the buffer. */
struct pg_msg {
	enum pg_dir dir; /* who sent it: 'D' is Describe or DataRow */
	char type;	 /* type byte; 0 for a startup-phase message */
	uint32_t len;	 /* length field (counts itself); 0 if cut before it */
	const uint8_t *body; /* after the length field */
	size_t body_len; /* bytes of body present: len - 4 unless truncated */
	bool truncated;	 /* the buffer ends inside this message */
};

struct pg_iter {
	const uint8_t *p;
	size_t len;
	size_t off; /* where the next message starts */
	enum pg_dir dir;
};

void pg_iter_init(struct pg_iter *it, const void *buf, size_t len,
		  enum pg_dir dir);

/*
 * The next message: 1 (in *m; a truncated one is always the last), 0 at
 * the end of the buffer, -EBADMSG for an unknown type or impossible length
 * (the iterator then stays put).
 */
int pg_iter_next(struct pg_iter *it, struct pg_msg *m);

/* "Query", "Parse", ...; "?" if unknown in that direction. */
const char *pg_msg_name(char type, enum pg_dir dir);

/* A string field: the bytes present, and whether its NUL was seen. */
struct pg_str {
	const char *s;
	size_t len;
	bool cut; /* the message was truncated inside it */
};

/*
 * Field parsers. Each returns 0 when every field it reports is complete,
 * -EAGAIN when the capture cut one (complete fields and the captured part
 * of the cut one are filled in, the rest zeroed), -EBADMSG when the message
 * cannot be what its type says, -EINVAL for a message of another type or
 * direction.
 */
/* Frontend */
int pg_parse_query(const struct pg_msg *m, struct pg_str *sql); /* 'Q' */
int pg_parse_parse(const struct pg_msg *m, struct pg_str *stmt,
		   struct pg_str *sql); /* 'P' */
int pg_parse_bind(const struct pg_msg *m, struct pg_str *portal,
		  struct pg_str *stmt); /* 'B' */
int pg_parse_execute(const struct pg_msg *m, struct pg_str *portal,
		     uint32_t *max_rows); /* 'E' */
/* 'D' Describe and 'C' Close: *what is 'S' (statement) or 'P' (portal). */
int pg_parse_describe_close(const struct pg_msg *m, char *what,
			    struct pg_str *name);

/* Backend */
int pg_parse_ready(const struct pg_msg *m, char *status); /* 'Z': I T E */

struct pg_error {
	char severity[10];     /* "ERROR", "FATAL", ... ('V', else 'S') */
	char sqlstate[6];      /* "23505"; "" if absent */
	struct pg_str message; /* 'M' */
};
/* 'E' ErrorResponse and 'N' NoticeResponse. */
int pg_parse_error(const struct pg_msg *m, struct pg_error *e);

/* 'C' CommandComplete: the tag, e.g. "INSERT 0 1" or "SELECT 5". */
int pg_parse_command_complete(const struct pg_msg *m, struct pg_str *tag);
/* The row count at the end of a tag, or -1 ("BEGIN", "CREATE TABLE"). */
int64_t pg_tag_rows(const struct pg_str *tag);

int pg_parse_auth(const struct pg_msg *m, uint32_t *code); /* 'R' */
int pg_parse_param_status(const struct pg_msg *m, struct pg_str *name,
			  struct pg_str *value); /* 'S' */
int pg_parse_key_data(const struct pg_msg *m, uint32_t *pid,
		      uint32_t *key); /* 'K': first 4 key bytes */
int pg_parse_row_desc(const struct pg_msg *m, uint16_t *nfields); /* 'T' */
int pg_parse_data_row(const struct pg_msg *m, uint16_t *ncols);	  /* 'D' */
/* '1' '2' '3' 'n' 's' 'I' frontend 'S' 'H' 'X': no body at all. */
int pg_parse_empty(const struct pg_msg *m);

/* ---- prepared statements --------------------------------------------- */

#define PG_STMTS_MAX 32
#define PG_STMT_TEXT_MAX 192

struct pg_stmt {
	uint64_t name_hash;
	uint64_t last_use;	     /* 0: free slot */
	char text[PG_STMT_TEXT_MAX]; /* normalized, NUL-terminated */
	bool cut;		     /* the Parse text was cut by the capture */
};

struct pg_stmts {
	struct pg_stmt slot[PG_STMTS_MAX];
	uint64_t clock;
	uint64_t evicted; /* for a self-metric */
};

/* A zeroed table is ready too; this empties one (DISCARD ALL, reconnect). */
void pg_stmts_init(struct pg_stmts *t);
/* Remember a Parse: normalizes sql; replaces a statement of that name. */
void pg_stmts_put(struct pg_stmts *t, const struct pg_str *name,
		  const struct pg_str *sql);
/* The statement's entry, or NULL if it was never seen or was evicted. */
const struct pg_stmt *pg_stmts_get(struct pg_stmts *t,
				   const struct pg_str *name);
/* Forget one (Close 'S'). */
void pg_stmts_del(struct pg_stmts *t, const struct pg_str *name);

#endif
