/*
 * test_sqlnorm.c - literal stripping, operation and table extraction,
 * statement splitting; every prefix of literal-laden samples (a cut
 * capture must never leak a literal), bounded output, random bytes.
 */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "sqlnorm.h"

static char *exact(const char *s, size_t n)
{
	char *b = malloc(n ? n : 1);

	memcpy(b, s, n);
	return b;
}

static uint64_t rng = 0x853c49e6748fea9bULL;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

static void test_normalize(void)
{
	static const struct {
		const char *in, *want;
	} t[] = {
	    {"SELECT * FROM users WHERE id = 42",
	     "SELECT * FROM users WHERE id = ?"},
	    {"SELECT * FROM t WHERE a=1 AND b='x'",
	     "SELECT * FROM t WHERE a=? AND b=?"},
	    {"select  *\n\tfrom t -- note\nwhere x = 'it''s'",
	     "select * from t where x = ?"},
	    {"SELECT /* a /* nested */ still */ 1", "SELECT ?"},
	    {"SELECT/**/1", "SELECT ?"},
	    {"SELECT E'a\\'b', e'\\\\', 'c\\'", "SELECT ?, ?, ?"},
	    {"SELECT $$a;'b$$, $fn$ x $$ y $fn$", "SELECT ?, ?"},
	    {"SELECT * FROM t WHERE id IN (1, 2, 3)",
	     "SELECT * FROM t WHERE id IN (?)"},
	    {"SELECT * FROM t WHERE id in(1,2)",
	     "SELECT * FROM t WHERE id in (?)"},
	    {"WHERE s IN ('a','b') AND n NOT IN (-1, +2.5)",
	     "WHERE s IN (?) AND n NOT IN (?)"},
	    {"WHERE id IN ($1, $2, $3)", "WHERE id IN (?)"},
	    {"WHERE s IN ('a'::text, 'b'::text)", "WHERE s IN (?)"},
	    {"WHERE id IN (SELECT id FROM u WHERE x = 5)",
	     "WHERE id IN (SELECT id FROM u WHERE x = ?)"},
	    {"WHERE id IN (a, b)", "WHERE id IN (a, b)"},
	    {"WHERE id IN (1, a)", "WHERE id IN (?, a)"},
	    {"WHERE id = $1 AND name = $2", "WHERE id = $1 AND name = $2"},
	    {"SELECT $1::int, a$b FROM t", "SELECT $1::int, a$b FROM t"},
	    {"SELECT 1.5e-3, .5, 0x1F, 1_000, 42.", "SELECT ?, ?, ?, ?, ?"},
	    {"SELECT t1.col2 FROM t1", "SELECT t1.col2 FROM t1"},
	    {"SELECT \"Weird 1\" FROM \"public\".\"Users\"",
	     "SELECT \"Weird 1\" FROM \"public\".\"Users\""},
	    {"SELECT B'101', X'1F', N'abc', U&'d\\0061t'", "SELECT ?, ?, ?, ?"},
	    {"INSERT INTO t (a, b) VALUES (1, 'x')",
	     "INSERT INTO t (a, b) VALUES (?, ?)"},
	    {"SELECT 'a' 'b'", "SELECT ? ?"},
	    {"SELECT now() - interval '1 day'", "SELECT now() - interval ?"},
	    {"SELECT ARRAY[1,2]", "SELECT ARRAY[?,?]"},
	    {"SELECT x FROM t;  ", "SELECT x FROM t;"},
	    /* cut by the capture */
	    {"SELECT * FROM t WHERE name = 'secr",
	     "SELECT * FROM t WHERE name = ?"},
	    {"SELECT $$secret", "SELECT ?"},
	    {"SELECT $tag$secret$ta", "SELECT ?"},
	    {"SELECT E'abc\\", "SELECT ?"},
	    {"SELECT 1 /* unterminated", "SELECT ?"},
	    {"SELECT * FROM t WHERE id IN (1, 2, 3",
	     "SELECT * FROM t WHERE id IN (?"},
	    {"SELECT * FROM t WHERE id IN (1, -",
	     "SELECT * FROM t WHERE id IN (?"},
	    {"SELECT \"unterminated", "SELECT \"unterminated"},
	    {"", ""},
	    {"  \n ", ""},
	    {"SELECT\x01\x02"
	     "1",
	     "SELECT ?"},
	};
	char out[256];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		size_t n = strlen(t[i].in), len;
		char *b = exact(t[i].in, n);
		bool cut = true;

		len = sql_normalize(b, n, out, sizeof(out), &cut);
		CHECK_STR(out, t[i].want);
		CHECK_INT(len, strlen(out));
		CHECK(!cut);
		free(b);
	}
	CHECK_INT(sql_normalize(NULL, 0, out, sizeof(out), NULL), 0);
}

/* The output is cut between tokens and says so. */
static void test_bounded(void)
{
	static const char sql[] =
	    "SELECT a, b, c FROM tbl WHERE x = 'long literal'";
	char out[16];
	bool cut = false;
	size_t len;

	len = sql_normalize(sql, sizeof(sql) - 1, out, sizeof(out), &cut);
	CHECK(cut);
	CHECK_INT(len, strlen(out));
	CHECK_STR(out, "SELECT a, b, c");
	len = sql_normalize(sql, sizeof(sql) - 1, out, 1, &cut);
	CHECK(cut && len == 0 && out[0] == '\0');
	CHECK_INT(sql_normalize(sql, sizeof(sql) - 1, out, 0, &cut), 0);
}

static void test_operation(void)
{
	static const struct {
		const char *in;
		bool cut;
		const char *want;
	} t[] = {
	    {"SELECT 1", false, "SELECT"},
	    {"  select 1", false, "SELECT"},
	    {"/* hint */ insert into t values (1)", false, "INSERT"},
	    {"-- x\nUpdate t set a = 1", false, "UPDATE"},
	    {"(SELECT 1) UNION (SELECT 2)", false, "SELECT"},
	    {"WITH x AS (SELECT 1) SELECT * FROM x", false, "SELECT"},
	    {"with x as (delete from t returning *) insert into u select * "
	     "from x",
	     false, "INSERT"},
	    {"WITH RECURSIVE r(n) AS (VALUES (1) UNION ALL SELECT n+1 FROM "
	     "r) SELECT n FROM r",
	     false, "SELECT"},
	    {"WITH a AS (SELECT 1), b AS NOT MATERIALIZED (SELECT 2) "
	     "DELETE FROM t",
	     false, "DELETE"},
	    {"WITH x AS (SELECT 1", true, "WITH"},
	    {"WITH x AS (SELECT 1) SEL", true, "WITH"},
	    {"begin", false, "BEGIN"},
	    {"COMMIT;", false, "COMMIT"},
	    {"vacuum analyze t", false, "VACUUM"},
	    {"SELECT", false, "SELECT"},
	    {"SEL", true, ""},
	    {"SELECT", true, ""},
	    {"SELECT ", true, "SELECT"},
	    {"", false, ""},
	    {"123", false, ""},
	    {"ab1 x", false, ""},
	    {"'str'", false, ""},
	    {"averyveryverylongkeywordxx", false, ""},
	};
	char op[SQL_OP_MAX];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		size_t n = strlen(t[i].in);
		char *b = exact(t[i].in, n);

		CHECK_INT(sql_operation(b, n, t[i].cut, op), strlen(t[i].want));
		CHECK_STR(op, t[i].want);
		free(b);
	}
}

static void test_collection(void)
{
	static const struct {
		const char *in;
		bool cut;
		const char *want;
	} t[] = {
	    {"SELECT * FROM users WHERE id = 1", false, "users"},
	    {"select * from public.users u join orders o on o.u = u.id", false,
	     "public.users"},
	    {"SELECT * FROM \"public\".\"Users\"", false, "public.Users"},
	    {"SELECT * FROM \"we\"\"ird\"", false, "we\"ird"},
	    {"select * from s . t", false, "s.t"},
	    {"INSERT INTO orders (a) VALUES (1)", false, "orders"},
	    {"UPDATE accounts SET x = 1", false, "accounts"},
	    {"DELETE FROM sessions WHERE t < now()", false, "sessions"},
	    {"SELECT 1", false, ""},
	    {"SELECT extract(day FROM ts) FROM events", false, "events"},
	    {"SELECT substring(name FROM 2) FROM people", false, "people"},
	    {"SELECT * FROM generate_series(1, 10) g", false, ""},
	    {"SELECT * FROM generate_series(1,3) g JOIN items i ON true", false,
	     "items"},
	    {"SELECT * FROM (SELECT * FROM inner_t) sub", false, "inner_t"},
	    {"SELECT * FROM ONLY parent", false, "parent"},
	    {"WITH x AS (SELECT * FROM src) SELECT * FROM x", false, "src"},
	    {"SELECT * FROM t FOR UPDATE", false, "t"},
	    {"SELECT 1 FOR UPDATE", false, ""},
	    {"SELECT 1 FOR UPDATE OF t SKIP LOCKED", false, ""},
	    {"INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET x = 1",
	     false, "t"},
	    {"CREATE TABLE IF NOT EXISTS metrics (id int)", false, "metrics"},
	    {"TRUNCATE TABLE logs", false, "logs"},
	    {"TRUNCATE logs", false, "logs"},
	    {"COPY items FROM STDIN", false, "items"},
	    {"SELECT * FROM a, b", false, "a"},
	    {"SELECT * FROM users", true, ""},
	    {"SELECT * FROM users ", true, "users"},
	    {"SELECT * FROM public.", true, ""},
	    {"SELECT * FROM \"unterminated", false, ""},
	    {"SELECT * FROM 'str'", false, ""},
	    {"SELECT 'FROM x' AS y", false, ""},
	    {"SELECT 1 -- FROM x", false, ""},
	    {"", false, ""},
	};
	char out[128];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		size_t n = strlen(t[i].in);
		char *b = exact(t[i].in, n);

		CHECK_INT(sql_collection(b, n, t[i].cut, out, sizeof(out)),
			  strlen(t[i].want));
		CHECK_STR(out, t[i].want);
		free(b);
	}
	/* a name that does not fit is not reported half */
	CHECK_INT(sql_collection("SELECT * FROM abcdefgh", 22, false, out, 5),
		  0);
	CHECK_STR(out, "");
}

static void test_statements(void)
{
	static const struct {
		const char *in;
		size_t want;
	} t[] = {
	    {"BEGIN; SELECT 1; COMMIT", 6},
	    {"SELECT ';'; x", 11},
	    {"SELECT $$;$$; x", 13},
	    {"SELECT 1 -- ;\n; x", 15},
	    {"SELECT \";\"; x", 11},
	    {"SELECT 1", 8},
	    {"", 0},
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		CHECK_INT(sql_statement_len(t[i].in, strlen(t[i].in)),
			  t[i].want);
}

/*
 * Literals in these samples (and comments) hold only '7' and 'Q';
 * identifiers never do. No prefix may let either reach the output.
 */
static void test_no_leak_at_any_cut(void)
{
	static const char *samples[] = {
	    "SELECT a FROM t WHERE b = 'QQ7Q' AND c = 777 AND d IN (7, 'Q')",
	    "SELECT E'Q\\'Q7', $tag$Q7;Q$tag$, $$QQ$$ /* Q7 */ FROM x -- 7Q\n",
	    "UPDATE t SET x = X'7Q', y = B'77', z = U&'Q\\0077' WHERE k = .7e7",
	    "INSERT INTO t VALUES ('Q''Q', 7.77, -7, N'Q7')",
	};
	char out[256];
	size_t i, k;

	for (i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		size_t n = strlen(samples[i]);

		for (k = 0; k <= n; k++) {
			char *b = exact(samples[i], k);
			char op[SQL_OP_MAX], tbl[64];

			sql_normalize(b, k, out, sizeof(out), NULL);
			CHECK(!strchr(out, 'Q') && !strchr(out, '7'));
			sql_operation(b, k, true, op);
			sql_collection(b, k, true, tbl, sizeof(tbl));
			CHECK(sql_statement_len(b, k) <= k);
			free(b);
		}
	}
}

static void test_garbage(void)
{
	static const char alphabet[] = "SELECT FROM IN ('\"$$1.e-/**/--\n;,)"
				       "ab_xX&U\\\x80";
	char in[300], out[64], op[SQL_OP_MAX], tbl[32];
	size_t i, j, n, len;

	for (i = 0; i < 30000; i++) {
		char *b;

		n = rnd() % sizeof(in);
		for (j = 0; j < n; j++)
			in[j] = (i & 1)
				    ? (char)rnd()
				    : alphabet[rnd() % (sizeof(alphabet) - 1)];
		b = exact(in, n);
		len = sql_normalize(b, n, out, sizeof(out), NULL);
		CHECK(len < sizeof(out) && len == strlen(out));
		len = sql_operation(b, n, i & 2, op);
		CHECK(len < SQL_OP_MAX && len == strlen(op));
		len = sql_collection(b, n, i & 2, tbl, sizeof(tbl));
		CHECK(len < sizeof(tbl) && len == strlen(tbl));
		CHECK(sql_statement_len(b, n) <= n);
		free(b);
	}
}

int main(void)
{
	test_normalize();
	test_bounded();
	test_operation();
	test_collection();
	test_statements();
	test_no_leak_at_any_cut();
	test_garbage();
	return check_summary();
}
