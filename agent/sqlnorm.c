/*
 * sqlnorm.c - SQL normalization, operation and table; see sqlnorm.h.
 *
 * One lexer, three consumers. The lexer splits the text into words,
 * quoted identifiers, numbers, strings (every literal form folds into one
 * token type, so consumers cannot forget one), parameters and single
 * punctuation characters, remembering whether blank space or a comment
 * preceded each token. The normalizer re-emits tokens with one space where
 * the input had any, so "a=1" stays "a=?" and "a = 1" stays "a = ?". Any
 * lookahead (IN lists, qualified names) runs on a copy of the lexer and is
 * committed only when it matches.
 */
#include "sqlnorm.h"

#include <stdint.h>
#include <string.h>

enum tok_type {
	T_END,
	T_WORD,	  /* identifier or keyword */
	T_QIDENT, /* "quoted identifier" */
	T_NUMBER,
	T_STRING, /* any quoted literal */
	T_PARAM,  /* $1 */
	T_PUNCT,  /* one character */
};

struct token {
	enum tok_type type;
	const char *s;
	size_t len;
	bool space; /* blank space or a comment came before it */
	bool open;  /* unterminated: runs into the end of the input */
};

struct lexer {
	const char *p;
	size_t len;
	size_t off;
};

/* ---- lexer ------------------------------------------------------------ */

static bool is_blank(unsigned char c)
{
	return c <= 0x20 || c == 0x7f; /* control bytes count as blank */
}

static bool is_alpha(unsigned char c)
{
	return ((c | 32) >= 'a' && (c | 32) <= 'z');
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool ident_start(unsigned char c)
{
	return is_alpha(c) || c == '_' || c >= 0x80;
}

static bool ident_cont(unsigned char c)
{
	return ident_start(c) || is_digit(c) || c == '$';
}

static bool at(const struct lexer *lx, size_t off, const char *s)
{
	size_t n = strlen(s);

	return lx->len - off >= n && !memcmp(lx->p + off, s, n);
}

/* Skip a (nested) block comment starting at lx->off. */
static void skip_block_comment(struct lexer *lx)
{
	unsigned long depth = 1;

	lx->off += 2;
	while (lx->off < lx->len && depth) {
		if (at(lx, lx->off, "/*")) {
			depth++;
			lx->off += 2;
		} else if (at(lx, lx->off, "*/")) {
			depth--;
			lx->off += 2;
		} else {
			lx->off++;
		}
	}
}

/* Skip blanks and comments; true if there were any. */
static bool skip_blank(struct lexer *lx)
{
	size_t start = lx->off;

	while (lx->off < lx->len) {
		if (is_blank((unsigned char)lx->p[lx->off])) {
			lx->off++;
		} else if (at(lx, lx->off, "--")) {
			while (lx->off < lx->len && lx->p[lx->off] != '\n')
				lx->off++;
		} else if (at(lx, lx->off, "/*")) {
			skip_block_comment(lx);
		} else {
			break;
		}
	}
	return lx->off != start;
}

/* A quoted run from lx->off (at the opening quote); true if closed. */
static bool lex_quoted(struct lexer *lx, char q, bool backslash)
{
	lx->off++;
	while (lx->off < lx->len) {
		char c = lx->p[lx->off];

		if (backslash && c == '\\') {
			lx->off += lx->len - lx->off >= 2 ? 2 : 1;
		} else if (c == q) {
			lx->off++;
			if (lx->off >= lx->len || lx->p[lx->off] != q)
				return true;
			lx->off++;
		} else {
			lx->off++;
		}
	}
	return false;
}

/* Length of a "$tag$" opener at off, or 0 if there is none. */
static size_t dollar_tag_len(const struct lexer *lx, size_t off)
{
	size_t i = off + 1;

	if (i < lx->len && lx->p[i] == '$')
		return 2;
	if (i >= lx->len || !ident_start((unsigned char)lx->p[i]))
		return 0;
	while (i < lx->len && ident_cont((unsigned char)lx->p[i]) &&
	       lx->p[i] != '$')
		i++;
	return (i < lx->len && lx->p[i] == '$') ? i - off + 1 : 0;
}

/* A dollar-quoted string whose tag is taglen bytes; true if closed. */
static bool lex_dollar(struct lexer *lx, size_t taglen)
{
	const char *tag = lx->p + lx->off;

	lx->off += taglen;
	while (lx->off < lx->len) {
		if (lx->p[lx->off] == '$' && lx->len - lx->off >= taglen &&
		    !memcmp(lx->p + lx->off, tag, taglen)) {
			lx->off += taglen;
			return true;
		}
		lx->off++;
	}
	return false;
}

static void lex_number(struct lexer *lx)
{
	while (lx->off < lx->len) {
		unsigned char c = (unsigned char)lx->p[lx->off];

		if (!is_alpha(c) && !is_digit(c) && c != '_' && c != '.')
			break;
		lx->off++;
		if ((c | 32) == 'e' && lx->off < lx->len &&
		    (lx->p[lx->off] == '+' || lx->p[lx->off] == '-'))
			lx->off++;
	}
}

/* Strings with a prefix: E'..' B'..' X'..' N'..' U&'..' (and U&".."). */
static bool lex_prefixed(struct lexer *lx, struct token *t)
{
	const char *p = lx->p + lx->off;
	size_t left = lx->len - lx->off;
	char c = (char)(p[0] | 32);

	if (left >= 2 && p[1] == '\'' && strchr("ebxn", c)) {
		lx->off++;
		t->type = T_STRING;
		t->open = !lex_quoted(lx, '\'', c == 'e');
		return true;
	}
	if (left >= 3 && c == 'u' && p[1] == '&' &&
	    (p[2] == '\'' || p[2] == '"')) {
		lx->off += 2;
		t->type = p[2] == '"' ? T_QIDENT : T_STRING;
		t->open = !lex_quoted(lx, p[2], false);
		return true;
	}
	return false;
}

/* Tokens that start with '$': a parameter, a dollar quote, or punctuation. */
static void lex_dollar_token(struct lexer *lx, struct token *t)
{
	size_t taglen;

	if (lx->off + 1 < lx->len &&
	    is_digit((unsigned char)lx->p[lx->off + 1])) {
		lx->off++;
		while (lx->off < lx->len &&
		       is_digit((unsigned char)lx->p[lx->off]))
			lx->off++;
		t->type = T_PARAM;
	} else if ((taglen = dollar_tag_len(lx, lx->off)) != 0) {
		t->type = T_STRING;
		t->open = !lex_dollar(lx, taglen);
	} else {
		lx->off++;
		t->type = T_PUNCT;
	}
}

static void lex_body(struct lexer *lx, struct token *t)
{
	unsigned char c = (unsigned char)lx->p[lx->off];
	unsigned char n =
	    lx->off + 1 < lx->len ? (unsigned char)lx->p[lx->off + 1] : 0;

	if (lex_prefixed(lx, t))
		return;
	if (ident_start(c)) {
		while (lx->off < lx->len &&
		       ident_cont((unsigned char)lx->p[lx->off]))
			lx->off++;
		t->type = T_WORD;
	} else if (is_digit(c) || (c == '.' && is_digit(n))) {
		lex_number(lx);
		t->type = T_NUMBER;
	} else if (c == '\'' || c == '"') {
		t->type = c == '"' ? T_QIDENT : T_STRING;
		t->open = !lex_quoted(lx, (char)c, false);
	} else if (c == '$') {
		lex_dollar_token(lx, t);
	} else {
		lx->off++;
		t->type = T_PUNCT;
	}
}

static enum tok_type lex(struct lexer *lx, struct token *t)
{
	memset(t, 0, sizeof(*t));
	t->space = skip_blank(lx);
	t->s = lx->p + lx->off;
	if (lx->off >= lx->len) {
		t->type = T_END;
		return T_END;
	}
	lex_body(lx, t);
	t->len = (size_t)(lx->p + lx->off - t->s);
	return t->type;
}

static void lex_init(struct lexer *lx, const char *sql, size_t len)
{
	lx->p = sql ? sql : "";
	lx->len = sql ? len : 0;
	lx->off = 0;
}

static bool is_punct(const struct token *t, char c)
{
	return t->type == T_PUNCT && t->s[0] == c;
}

/* Case-insensitive: is the word token this (lowercase) keyword? */
/* Called for every word against keyword lists: no strlen of the keyword
 * (that was the agent's top cost on SQL), its NUL ends the comparison. */
static bool is_kw(const struct token *t, const char *kw)
{
	size_t i;

	if (t->type != T_WORD)
		return false;
	for (i = 0; i < t->len; i++)
		if (!kw[i] || (char)(t->s[i] | 32) != kw[i])
			return false;
	return kw[t->len] == '\0';
}

static bool is_kw_in(const struct token *t, const char *const *kws)
{
	for (; *kws; kws++)
		if (is_kw(t, *kws))
			return true;
	return false;
}

/* Might the token have been cut by the end of a cut input? */
static bool may_be_cut(const struct lexer *lx, const struct token *t, bool cut)
{
	return t->open || (cut && t->s + t->len == lx->p + lx->len);
}

/* ---- normalize -------------------------------------------------------- */

struct out {
	char *buf;
	size_t cap; /* without the NUL */
	size_t len;
	bool full;
};

/*
 * Append a token (after one space if asked and not at the start). Control
 * bytes, possible only inside quoted identifiers, become '_' so the output
 * is always a clean C string.
 */
static void emit(struct out *o, bool space, const char *s, size_t n)
{
	size_t sp = (space && o->len) ? 1 : 0, i;

	if (o->full || o->len + sp + n > o->cap) {
		o->full = true;
		return;
	}
	if (sp)
		o->buf[o->len++] = ' ';
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		o->buf[o->len++] = (c < 0x20 || c == 0x7f) ? '_' : (char)c;
	}
}

static bool is_literal(const struct token *t)
{
	return t->type == T_NUMBER || t->type == T_STRING || t->type == T_PARAM;
}

/* One IN-list element: [+-] literal [::type]. 1: ok, 0: not, -1: end. */
static int in_list_element(struct lexer *lx)
{
	struct token t;
	struct lexer save;

	if (lex(lx, &t) == T_END)
		return -1;
	if ((is_punct(&t, '-') || is_punct(&t, '+')) && lex(lx, &t) == T_END)
		return -1;
	if (!is_literal(&t))
		return 0;
	save = *lx;
	if (lex(lx, &t) == T_PUNCT && t.s[0] == ':' && lex(lx, &t) == T_PUNCT &&
	    t.s[0] == ':' && lex(lx, &t) == T_WORD)
		return 1;
	*lx = save;
	return 1;
}

/*
 * After the word IN: a parenthesized list of literals only? Advances lx
 * past it if so; *open says the input ended inside the list.
 */
static bool in_list(struct lexer *lx, bool *open)
{
	struct lexer la = *lx;
	struct token t;
	int r;

	if (lex(&la, &t) != T_PUNCT || t.s[0] != '(')
		return false;
	for (;;) {
		r = in_list_element(&la);
		if (r == 0)
			return false;
		if (r > 0)
			lex(&la, &t);
		if (r < 0 || t.type == T_END) {
			*open = true;
			break;
		}
		if (is_punct(&t, ')')) {
			*open = false;
			break;
		}
		if (!is_punct(&t, ','))
			return false;
	}
	*lx = la;
	return true;
}

size_t sql_normalize(const char *sql, size_t len, char *out, size_t outsz,
		     bool *out_cut)
{
	struct out o = {out, outsz - 1, 0, false};
	struct lexer lx;
	struct token t;
	bool open;

	if (!outsz)
		return 0;
	lex_init(&lx, sql, len);
	while (!o.full && lex(&lx, &t) != T_END) {
		if (is_kw(&t, "in") && in_list(&lx, &open)) {
			emit(&o, t.space, t.s, t.len);
			emit(&o, true, open ? "(?" : "(?)", open ? 2 : 3);
		} else if (t.type == T_NUMBER || t.type == T_STRING) {
			emit(&o, t.space, "?", 1);
		} else {
			emit(&o, t.space, t.s, t.len);
		}
	}
	out[o.len] = '\0';
	if (out_cut)
		*out_cut = o.full;
	return o.len;
}

/* ---- operation -------------------------------------------------------- */

/* Copy a keyword token upper-cased; 0 if it is not a plain keyword. */
static size_t keyword(const struct lexer *lx, const struct token *t, bool cut,
		      char op[SQL_OP_MAX])
{
	size_t i;

	if (t->type != T_WORD || t->len >= SQL_OP_MAX || may_be_cut(lx, t, cut))
		return 0;
	for (i = 0; i < t->len; i++)
		if (!is_alpha((unsigned char)t->s[i]))
			return 0;
	for (i = 0; i < t->len; i++)
		op[i] = (char)(t->s[i] & ~32);
	op[t->len] = '\0';
	return t->len;
}

/* After WITH: the keyword of the main statement, at paren depth 0. */
static size_t main_keyword(struct lexer *lx, bool cut, char op[SQL_OP_MAX])
{
	static const char *const mains[] = {"select", "insert", "update",
					    "delete", "merge",	NULL};
	unsigned long depth = 0;
	struct token t;

	while (lex(lx, &t) != T_END) {
		if (is_punct(&t, '('))
			depth++;
		else if (is_punct(&t, ')') && depth)
			depth--;
		else if (!depth && is_kw_in(&t, mains))
			return keyword(lx, &t, cut, op);
	}
	return 0;
}

size_t sql_operation(const char *sql, size_t len, bool cut, char op[SQL_OP_MAX])
{
	struct lexer lx;
	struct token t;
	size_t n;

	op[0] = '\0';
	lex_init(&lx, sql, len);
	while (lex(&lx, &t) == T_PUNCT && t.s[0] == '(')
		;
	n = keyword(&lx, &t, cut, op);
	if (n && !strcmp(op, "WITH") && main_keyword(&lx, cut, op) == 0)
		strcpy(op, "WITH");
	return strlen(op);
}

/* ---- collection ------------------------------------------------------- */

enum trigger { TRIG_NONE, TRIG_NAME, TRIG_RELATION };

/* FROM/JOIN name relations (maybe functions); the rest name tables. */
static enum trigger trigger_of(const struct token *t)
{
	static const char *const names[] = {"into", "update",	"table",
					    "copy", "truncate", NULL};
	static const char *const relations[] = {"from", "join", NULL};

	if (is_kw_in(t, relations))
		return TRIG_RELATION;
	return is_kw_in(t, names) ? TRIG_NAME : TRIG_NONE;
}

/* Words that follow a trigger keyword without being a table. */
static bool not_a_name(const struct token *t)
{
	static const char *const kws[] = {
	    "select",  "set",	"where",    "lateral", "values", "default",
	    "with",    "on",	"using",    "as",      "skip",	 "nowait",
	    "of",      "table", "from",	    "join",    "stdin",	 "stdout",
	    "cascade", "no",	"restrict", NULL};

	return t->type == T_WORD ? is_kw_in(t, kws) : t->type != T_QIDENT;
}

/* Append one name part, minus quotes; false if it does not fit. */
static bool put_name_part(struct out *o, const struct token *t, bool dot)
{
	size_t i, start = 0, end = t->len;

	if (dot)
		emit(o, false, ".", 1);
	if (t->type == T_QIDENT) {
		start = t->s[0] == '"' ? 1 : 3; /* "x" or U&"x" */
		end = t->len - 1;
	}
	for (i = start; i < end && !o->full; i++) {
		char c = t->s[i];

		if (t->type == T_QIDENT && c == '"')
			i++; /* "" inside quotes is one " */
		emit(o, false, &c, 1);
	}
	return !o->full;
}

/*
 * Read a possibly qualified table name after a trigger keyword into o.
 * Returns false (o unspecified) if what follows is not a table name.
 */
static bool read_name(struct lexer *lx, enum trigger trig, bool cut,
		      struct out *o)
{
	static const char *const skip[] = {"only", "if", "not", "exists", NULL};
	struct token t;
	struct lexer save;
	bool dot = false;

	do
		lex(lx, &t);
	while (is_kw_in(&t, skip));
	for (;;) {
		if (not_a_name(&t) || may_be_cut(lx, &t, cut) ||
		    !put_name_part(o, &t, dot))
			return false;
		save = *lx;
		if (lex(lx, &t) != T_PUNCT || t.s[0] != '.')
			break;
		lex(lx, &t);
		dot = true;
	}
	*lx = save;
	return trig != TRIG_RELATION || lex(lx, &t) != T_PUNCT || t.s[0] != '(';
}

/*
 * Paren tracking: bit d of subq says the parens at depth d hold a query
 * (their first token is SELECT or WITH); depth 0 always does. FROM inside
 * other parens (function calls) is not a table.
 */
struct parens {
	unsigned long depth;
	uint64_t subq;
	bool just_opened;
};

static bool in_query(const struct parens *ps)
{
	return ps->depth == 0 ||
	       (ps->depth < 64 && (ps->subq >> ps->depth & 1));
}

static void track_parens(struct parens *ps, const struct token *t)
{
	static const char *const starts[] = {"select", "with", NULL};

	if (ps->just_opened && ps->depth < 64 && is_kw_in(t, starts))
		ps->subq |= 1ULL << ps->depth;
	ps->just_opened = false;
	if (is_punct(t, '(')) {
		ps->depth++;
		if (ps->depth < 64)
			ps->subq &= ~(1ULL << ps->depth);
		ps->just_opened = true;
	} else if (is_punct(t, ')') && ps->depth) {
		ps->depth--;
	}
}

size_t sql_collection(const char *sql, size_t len, bool cut, char *out,
		      size_t outsz)
{
	struct parens ps = {0, 1, false};
	struct lexer lx, la;
	struct token t;
	enum trigger trig;

	if (!outsz)
		return 0;
	out[0] = '\0';
	lex_init(&lx, sql, len);
	while (lex(&lx, &t) != T_END) {
		struct out o = {out, outsz - 1, 0, false};

		track_parens(&ps, &t);
		trig = trigger_of(&t);
		if (!trig || !in_query(&ps))
			continue;
		la = lx;
		if (read_name(&la, trig, cut, &o)) {
			out[o.len] = '\0';
			return o.len;
		}
	}
	out[0] = '\0';
	return 0;
}

/* ---- statements ------------------------------------------------------- */

size_t sql_statement_len(const char *sql, size_t len)
{
	struct lexer lx;
	struct token t;

	lex_init(&lx, sql, len);
	while (lex(&lx, &t) != T_END)
		if (is_punct(&t, ';'))
			return (size_t)(t.s - lx.p) + 1;
	return lx.len;
}
