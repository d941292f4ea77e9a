/*
 * sqlnorm.h - SQL text -> a literal-free shape, its operation and table.
 *
 * All functions share one small lexer that knows PostgreSQL's lexical
 * rules: 'strings' with '' escapes, E'..' with backslash escapes, B'' X''
 * N'' U&'' prefixes, $tag$..$tag$ and $$..$$ dollar quotes, "quoted
 * identifiers", $1 parameters, numbers (1, 1.5, .5, 1e-3, 0x1F, 1_000),
 * -- line and nested slash-star block comments. The input may be a prefix
 * cut by the 256-byte capture: an unterminated string, quote or comment
 * runs to the end of the input and is still recognized for what it is, so
 * a cut literal can never leak.
 *
 * sql_normalize(): every literal (number or any kind of string) becomes ?,
 * "IN (" followed by a list made only of literals and parameters becomes
 * "IN (?)" (the list's length is what varies between calls), $n parameters
 * and identifiers stay as written, comments disappear, runs of whitespace
 * become one space. Keywords keep their case. Output is bounded by the
 * caller's buffer and cut between tokens.
 *
 * sql_operation(): the first keyword upper-cased (db_operation_name),
 * skipping comments and opening parentheses. For WITH, the keyword of the
 * main statement after the CTEs (SELECT, INSERT, UPDATE, DELETE, MERGE),
 * or WITH if it is not in the text.
 *
 * sql_collection(): the first table named after FROM, JOIN, INTO, UPDATE,
 * TABLE, TRUNCATE or COPY
 * (db_collection_name), as written minus quotes, schema
 * included ("public"."Users" -> public.Users). FROM/JOIN inside a function
 * call's parentheses (extract(day FROM ts)) and set-returning functions
 * (FROM generate_series(..)) are not tables. Empty if there is none.
 *
 * Where a result would come from a word that touches the end of a cut
 * input (cut = true), it may be incomplete, so it is not reported.
 */
#ifndef KS_SQLNORM_H
#define KS_SQLNORM_H

#include <stdbool.h>
#include <stddef.h>

#define SQL_OP_MAX 24 /* operation buffer size; longer words are unknown */

/*
 * Normalize len bytes of sql into out (outsz > 0, NUL-terminated). Returns
 * the output length; *out_cut (if not NULL) says whether the output had to
 * be cut to fit.
 */
size_t sql_normalize(const char *sql, size_t len, char *out, size_t outsz,
		     bool *out_cut);

/* Operation keyword into op[SQL_OP_MAX]; returns its length, 0 if none. */
size_t sql_operation(const char *sql, size_t len, bool cut,
		     char op[SQL_OP_MAX]);

/*
 * First table into out (outsz > 0; 128 holds any PostgreSQL schema.table).
 * Returns its length, 0 if there is none (a name too long for out is
 * skipped).
 */
size_t sql_collection(const char *sql, size_t len, bool cut, char *out,
		      size_t outsz);

/*
 * Length of the first statement of a multi-statement string, through its
 * ';' (a ';' inside a string, quote or comment does not count); len if
 * there is only one.
 */
size_t sql_statement_len(const char *sql, size_t len);

#endif
