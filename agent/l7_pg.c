/*
 * l7_pg.c - PostgreSQL v3 messages from a captured prefix; see l7_pg.h.
 *
 * One table per direction lists the message types with their length
 * bounds; the iterator trusts nothing else. Field parsers read through a
 * small cursor (struct rd) that knows whether running out of bytes means
 * "the capture was cut" (-EAGAIN) or "this message is broken" (-EBADMSG).
 */
#include "l7_pg.h"
#include "hash.h"

#include <errno.h>
#include <string.h>

#include "sqlnorm.h"

struct pg_type {
	char type;
	const char *name;
	uint32_t min_len; /* length field bounds, the field included */
	uint32_t max_len; /* 0: PG_MSG_MAX_LEN */
};

static const struct pg_type frontend_types[] = {
    {'B', "Bind", 12, 0},
    {'C', "Close", 6, 0},
    {'d', "CopyData", 4, 0},
    {'c', "CopyDone", 4, 4},
    {'f', "CopyFail", 5, 0},
    {'D', "Describe", 6, 0},
    {'E', "Execute", 9, 0},
    {'H', "Flush", 4, 4},
    {'F', "FunctionCall", 14, 0},
    {'p', "PasswordMessage", 4, 0},
    {'P', "Parse", 8, 0},
    {'Q', "Query", 5, 0},
    {'S', "Sync", 4, 4},
    {'X', "Terminate", 4, 4},
    {0, NULL, 0, 0},
};

static const struct pg_type backend_types[] = {
    {'R', "Authentication", 8, 0},
    {'K', "BackendKeyData", 12, 4 + 4 + 256},
    {'2', "BindComplete", 4, 4},
    {'3', "CloseComplete", 4, 4},
    {'C', "CommandComplete", 5, 0},
    {'d', "CopyData", 4, 0},
    {'c', "CopyDone", 4, 4},
    {'G', "CopyInResponse", 7, 0},
    {'H', "CopyOutResponse", 7, 0},
    {'W', "CopyBothResponse", 7, 0},
    {'D', "DataRow", 6, 0},
    {'I', "EmptyQueryResponse", 4, 4},
    {'E', "ErrorResponse", 5, 0},
    {'V', "FunctionCallResponse", 8, 0},
    {'v', "NegotiateProtocolVersion", 12, 0},
    {'n', "NoData", 4, 4},
    {'N', "NoticeResponse", 5, 0},
    {'A', "NotificationResponse", 10, 0},
    {'t', "ParameterDescription", 6, 0},
    {'S', "ParameterStatus", 6, 0},
    {'1', "ParseComplete", 4, 4},
    {'s', "PortalSuspended", 4, 4},
    {'Z', "ReadyForQuery", 5, 5},
    {'T', "RowDescription", 6, 0},
    {0, NULL, 0, 0},
};

static const struct pg_type *find_type(char type, enum pg_dir dir)
{
	const struct pg_type *t;

	t = dir == PG_FRONTEND ? frontend_types : backend_types;
	for (; t->name; t++)
		if (t->type == type)
			return t;
	return NULL;
}

const char *pg_msg_name(char type, enum pg_dir dir)
{
	const struct pg_type *t;

	if (type == 0 && dir == PG_FRONTEND)
		return "Startup";
	t = find_type(type, dir);
	return t ? t->name : "?";
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* ---- startup phase ---------------------------------------------------- */

static int startup_code_kind(uint32_t len, uint32_t code)
{
	if (code == PG_SSL_REQUEST_CODE && len == 8)
		return PG_STARTUP_SSL;
	if (code == PG_GSSENC_REQUEST_CODE && len == 8)
		return PG_STARTUP_GSSENC;
	if (code == PG_CANCEL_REQUEST_CODE && len >= 16 && len <= 12 + 256)
		return PG_STARTUP_CANCEL;
	if ((code >> 16) == 3 && code != PG_SSL_REQUEST_CODE)
		return PG_STARTUP_V3;
	return -EINVAL;
}

int pg_startup_kind(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint32_t plen;

	/* A length <= PG_STARTUP_MAX_LEN has two zero high bytes. */
	if ((len >= 1 && p[0]) || (len >= 2 && p[1]))
		return -EINVAL;
	if (len < 4)
		return -EAGAIN;
	plen = be32(p);
	if (plen < 8 || plen > PG_STARTUP_MAX_LEN)
		return -EINVAL;
	if (len < 8)
		return -EAGAIN;
	return startup_code_kind(plen, be32(p + 4));
}

int pg_ssl_answer(const void *buf, size_t len)
{
	const char *p = buf;

	if (!len)
		return -EAGAIN;
	if (len == 1 && (p[0] == 'S' || p[0] == 'N' || p[0] == 'G'))
		return p[0];
	return -EINVAL;
}

/* ---- iterator --------------------------------------------------------- */

void pg_iter_init(struct pg_iter *it, const void *buf, size_t len,
		  enum pg_dir dir)
{
	it->p = buf;
	it->len = buf ? len : 0;
	it->off = 0;
	it->dir = dir;
}

/* Fill body fields of a message whose header (hdr bytes) was read. */
static int take_body(struct pg_iter *it, struct pg_msg *m, size_t hdr)
{
	size_t left = it->len - it->off - hdr, need = m->len - 4;

	m->body = it->p + it->off + hdr;
	if (left < need) {
		m->body_len = left;
		m->truncated = true;
		it->off = it->len;
	} else {
		m->body_len = need;
		it->off += hdr + need;
	}
	return 1;
}

static int cut_header(struct pg_iter *it, struct pg_msg *m)
{
	m->truncated = true;
	m->body = it->p + it->len;
	it->off = it->len;
	return 1;
}

static int next_startup(struct pg_iter *it, struct pg_msg *m)
{
	const uint8_t *p = it->p + it->off;
	size_t left = it->len - it->off;
	int kind = pg_startup_kind(p, left);

	if (kind == -EINVAL)
		return -EBADMSG;
	if (left < 4)
		return cut_header(it, m);
	m->len = be32(p);
	return take_body(it, m, 4);
}

int pg_iter_next(struct pg_iter *it, struct pg_msg *m)
{
	const uint8_t *p = it->p + it->off;
	size_t left = it->len - it->off;
	const struct pg_type *t;
	uint32_t max;

	memset(m, 0, sizeof(*m));
	m->dir = it->dir;
	if (!left)
		return 0;
	if (it->dir == PG_FRONTEND && p[0] == 0)
		return next_startup(it, m);
	t = find_type((char)p[0], it->dir);
	if (!t)
		return -EBADMSG;
	m->type = t->type;
	if (left < 5)
		return cut_header(it, m);
	m->len = be32(p + 1);
	max = t->max_len ? t->max_len : PG_MSG_MAX_LEN;
	if (m->len < t->min_len || m->len > max) {
		memset(m, 0, sizeof(*m));
		return -EBADMSG;
	}
	return take_body(it, m, 5);
}

/* ---- field cursor ----------------------------------------------------- */

struct rd {
	const uint8_t *p;
	size_t len;
	size_t off;
	bool trunc; /* running out means the capture was cut */
};

static int rd_init(struct rd *r, const struct pg_msg *m, const char *types,
		   enum pg_dir dir)
{
	if (m->dir != dir || !m->type || !strchr(types, m->type))
		return -EINVAL;
	r->p = m->body;
	r->len = m->body_len;
	r->off = 0;
	r->trunc = m->truncated;
	return 0;
}

static int rd_short(const struct rd *r)
{
	return r->trunc ? -EAGAIN : -EBADMSG;
}

static int rd_str(struct rd *r, struct pg_str *s)
{
	const uint8_t *start = r->p + r->off;
	const uint8_t *nul = memchr(start, 0, r->len - r->off);

	s->s = (const char *)start;
	if (!nul) {
		s->len = r->len - r->off;
		s->cut = true;
		r->off = r->len;
		return rd_short(r);
	}
	s->len = (size_t)(nul - start);
	s->cut = false;
	r->off += s->len + 1;
	return 0;
}

static int rd_bytes(struct rd *r, size_t n, const uint8_t **out)
{
	if (r->len - r->off < n)
		return rd_short(r);
	*out = r->p + r->off;
	r->off += n;
	return 0;
}

static int rd_u8(struct rd *r, uint8_t *v)
{
	const uint8_t *b;
	int err = rd_bytes(r, 1, &b);

	if (!err)
		*v = b[0];
	return err;
}

static int rd_u16(struct rd *r, uint16_t *v)
{
	const uint8_t *b;
	int err = rd_bytes(r, 2, &b);

	if (!err)
		*v = be16(b);
	return err;
}

static int rd_u32(struct rd *r, uint32_t *v)
{
	const uint8_t *b;
	int err = rd_bytes(r, 4, &b);

	if (!err)
		*v = be32(b);
	return err;
}

/* ---- frontend messages ------------------------------------------------ */

int pg_parse_query(const struct pg_msg *m, struct pg_str *sql)
{
	struct rd r;
	int err;

	memset(sql, 0, sizeof(*sql));
	err = rd_init(&r, m, "Q", PG_FRONTEND);
	return err ? err : rd_str(&r, sql);
}

int pg_parse_parse(const struct pg_msg *m, struct pg_str *stmt,
		   struct pg_str *sql)
{
	struct rd r;
	int err;

	memset(stmt, 0, sizeof(*stmt));
	memset(sql, 0, sizeof(*sql));
	err = rd_init(&r, m, "P", PG_FRONTEND);
	if (!err)
		err = rd_str(&r, stmt);
	return err ? err : rd_str(&r, sql);
}

int pg_parse_bind(const struct pg_msg *m, struct pg_str *portal,
		  struct pg_str *stmt)
{
	struct rd r;
	int err;

	memset(portal, 0, sizeof(*portal));
	memset(stmt, 0, sizeof(*stmt));
	err = rd_init(&r, m, "B", PG_FRONTEND);
	if (!err)
		err = rd_str(&r, portal);
	return err ? err : rd_str(&r, stmt);
}

int pg_parse_execute(const struct pg_msg *m, struct pg_str *portal,
		     uint32_t *max_rows)
{
	struct rd r;
	int err;

	memset(portal, 0, sizeof(*portal));
	*max_rows = 0;
	err = rd_init(&r, m, "E", PG_FRONTEND);
	if (!err)
		err = rd_str(&r, portal);
	return err ? err : rd_u32(&r, max_rows);
}

int pg_parse_describe_close(const struct pg_msg *m, char *what,
			    struct pg_str *name)
{
	struct rd r;
	uint8_t w = 0;
	int err;

	memset(name, 0, sizeof(*name));
	*what = 0;
	err = rd_init(&r, m, "DC", PG_FRONTEND);
	if (!err)
		err = rd_u8(&r, &w);
	if (err)
		return err;
	if (w != 'S' && w != 'P')
		return -EBADMSG;
	*what = (char)w;
	return rd_str(&r, name);
}

/* ---- backend messages ------------------------------------------------- */

int pg_parse_ready(const struct pg_msg *m, char *status)
{
	struct rd r;
	uint8_t s = 0;
	int err;

	*status = 0;
	err = rd_init(&r, m, "Z", PG_BACKEND);
	if (!err)
		err = rd_u8(&r, &s);
	if (err)
		return err;
	if (s != 'I' && s != 'T' && s != 'E')
		return -EBADMSG;
	*status = (char)s;
	return 0;
}

static void copy_field(char *dst, size_t size, const struct pg_str *v)
{
	size_t n = v->len < size - 1 ? v->len : size - 1;

	memcpy(dst, v->s, n);
	dst[n] = '\0';
}

static void error_field(struct pg_error *e, uint8_t code,
			const struct pg_str *v)
{
	switch (code) {
	case 'V':
		copy_field(e->severity, sizeof(e->severity), v);
		break;
	case 'S':
		if (!e->severity[0])
			copy_field(e->severity, sizeof(e->severity), v);
		break;
	case 'C':
		if (v->len == 5)
			copy_field(e->sqlstate, sizeof(e->sqlstate), v);
		break;
	case 'M':
		e->message = *v;
		break;
	}
}

int pg_parse_error(const struct pg_msg *m, struct pg_error *e)
{
	struct pg_str v;
	struct rd r;
	uint8_t code;
	int err;

	memset(e, 0, sizeof(*e));
	err = rd_init(&r, m, "EN", PG_BACKEND);
	while (!err) {
		err = rd_u8(&r, &code);
		if (err || code == 0)
			break;
		err = rd_str(&r, &v);
		if (!err)
			error_field(e, code, &v);
		else if (code == 'M')
			e->message = v;
	}
	return err;
}

int pg_parse_command_complete(const struct pg_msg *m, struct pg_str *tag)
{
	struct rd r;
	int err;

	memset(tag, 0, sizeof(*tag));
	err = rd_init(&r, m, "C", PG_BACKEND);
	return err ? err : rd_str(&r, tag);
}

int64_t pg_tag_rows(const struct pg_str *tag)
{
	size_t i = tag->len;
	int64_t rows = 0, scale = 1;

	if (tag->cut)
		return -1;
	while (i && tag->s[i - 1] >= '0' && tag->s[i - 1] <= '9') {
		if (tag->len - i >= 18)
			return -1;
		rows += (tag->s[i - 1] - '0') * scale;
		scale *= 10;
		i--;
	}
	if (i == tag->len || i == 0 || tag->s[i - 1] != ' ')
		return -1;
	return rows;
}

int pg_parse_auth(const struct pg_msg *m, uint32_t *code)
{
	struct rd r;
	int err;

	*code = 0;
	err = rd_init(&r, m, "R", PG_BACKEND);
	return err ? err : rd_u32(&r, code);
}

int pg_parse_param_status(const struct pg_msg *m, struct pg_str *name,
			  struct pg_str *value)
{
	struct rd r;
	int err;

	memset(name, 0, sizeof(*name));
	memset(value, 0, sizeof(*value));
	err = rd_init(&r, m, "S", PG_BACKEND);
	if (!err)
		err = rd_str(&r, name);
	return err ? err : rd_str(&r, value);
}

int pg_parse_key_data(const struct pg_msg *m, uint32_t *pid, uint32_t *key)
{
	struct rd r;
	int err;

	*pid = *key = 0;
	err = rd_init(&r, m, "K", PG_BACKEND);
	if (!err)
		err = rd_u32(&r, pid);
	return err ? err : rd_u32(&r, key);
}

int pg_parse_row_desc(const struct pg_msg *m, uint16_t *nfields)
{
	struct rd r;
	int err;

	*nfields = 0;
	err = rd_init(&r, m, "T", PG_BACKEND);
	return err ? err : rd_u16(&r, nfields);
}

int pg_parse_data_row(const struct pg_msg *m, uint16_t *ncols)
{
	struct rd r;
	int err;

	*ncols = 0;
	err = rd_init(&r, m, "D", PG_BACKEND);
	return err ? err : rd_u16(&r, ncols);
}

int pg_parse_empty(const struct pg_msg *m)
{
	const char *types = m->dir == PG_FRONTEND ? "SHXc" : "123nsIc";

	if (!m->type || !strchr(types, m->type))
		return -EINVAL;
	if (m->truncated && m->len == 0)
		return -EAGAIN;
	return m->len == 4 && m->body_len == 0 ? 0 : -EBADMSG;
}

/* ---- prepared statements ---------------------------------------------- */

static uint64_t name_hash(const struct pg_str *name)
{
	return ks_hash_bytes(KS_HASH_SEED, name->s, name->len);
}

void pg_stmts_init(struct pg_stmts *t)
{
	memset(t, 0, sizeof(*t));
}

static struct pg_stmt *find_stmt(struct pg_stmts *t, uint64_t h)
{
	size_t i;

	for (i = 0; i < PG_STMTS_MAX; i++)
		if (t->slot[i].last_use && t->slot[i].name_hash == h)
			return &t->slot[i];
	return NULL;
}

/* A free slot, else the least recently used one (counted as evicted). */
static struct pg_stmt *free_stmt(struct pg_stmts *t)
{
	struct pg_stmt *lru = &t->slot[0];
	size_t i;

	for (i = 0; i < PG_STMTS_MAX; i++) {
		if (!t->slot[i].last_use)
			return &t->slot[i];
		if (t->slot[i].last_use < lru->last_use)
			lru = &t->slot[i];
	}
	t->evicted++;
	return lru;
}

void pg_stmts_put(struct pg_stmts *t, const struct pg_str *name,
		  const struct pg_str *sql)
{
	uint64_t h;
	struct pg_stmt *s;
	bool out_cut;

	if (name->cut)
		return;
	h = name_hash(name);
	s = find_stmt(t, h);
	if (!s)
		s = free_stmt(t);
	s->name_hash = h;
	s->last_use = ++t->clock;
	sql_normalize(sql->s, sql->len, s->text, sizeof(s->text), &out_cut);
	s->cut = sql->cut || out_cut;
}

const struct pg_stmt *pg_stmts_get(struct pg_stmts *t,
				   const struct pg_str *name)
{
	struct pg_stmt *s;

	if (name->cut)
		return NULL;
	s = find_stmt(t, name_hash(name));
	if (s)
		s->last_use = ++t->clock;
	return s;
}

void pg_stmts_del(struct pg_stmts *t, const struct pg_str *name)
{
	struct pg_stmt *s;

	if (name->cut)
		return;
	s = find_stmt(t, name_hash(name));
	if (s)
		memset(s, 0, sizeof(*s));
}
