/*
 * Unit tests of src/policy/sql_shape.c and the shape cache in
 * sql_classify.c: the normalizer token by token (every literal form, what
 * is kept, every fall-back), the cache's behaviour (hits, statement ranges,
 * literal-sensitive results kept apart), a differential test over every SQL
 * string of the policy tests and the fuzz corpus with generated literal
 * variants (a shape-cached answer must equal a fresh one), and a timing of
 * pgbench-style traffic.
 *
 * Runs from the source root (meson's workdir), where the corpus files are.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "policy/sql_classify.h"

/* ---- helpers ------------------------------------------------------------ */

/* The key with placeholders spelled ?i ?n ?s ?u ?b ?x, into buf. */
static const char *render(const char *key, size_t n, char *buf, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 3 < cap; i++) {
        char k = 0;
        switch (key[i]) {
        case AL__SQL_SHAPE_INT: k = 'i'; break;
        case AL__SQL_SHAPE_NUM: k = 'n'; break;
        case AL__SQL_SHAPE_STR: k = 's'; break;
        case AL__SQL_SHAPE_USTR: k = 'u'; break;
        case AL__SQL_SHAPE_BIT: k = 'b'; break;
        case AL__SQL_SHAPE_HEX: k = 'x'; break;
        default: break;
        }
        if (k) {
            buf[o++] = '?';
            buf[o++] = k;
        } else {
            buf[o++] = key[i];
        }
    }
    buf[o] = '\0';
    return buf;
}

typedef struct kcase {
    const char *sql, *key;
    size_t n_lits;
} kcase_t;

static const kcase_t keyed[] = {
    {"SELECT abalance FROM pgbench_accounts WHERE aid = 4711",
     "SELECT abalance FROM pgbench_accounts WHERE aid = ?i", 1},
    /* numbers: integer (ICONST) or not, never from inside a name or $n */
    {"SELECT 0, 007, 2147483647, 2147483648, 99999999999", "SELECT ?i, ?i, ?i, ?n, ?n", 5},
    {"SELECT 1.5, .5, 5., 1e10, 1.5E-3, 2e+7, 1.e5", "SELECT ?n, ?n, ?n, ?n, ?n, ?n, ?n", 7},
    {"SELECT -5, - 5, 1-2, 3+-4", "SELECT -?i, - ?i, ?i-?i, ?i+-?i", 6},
    {"SELECT t1.c2, x$1, $1, $12 FROM t1", "SELECT t1.c2, x$1, $1, $12 FROM t1", 0},
    {"SELECT a[1:2], 1..2, 1...5, 1 ..5", "SELECT a[?i:?i], ?i..?i, ?i..?n, ?i ..?i", 8},
    {"SELECT 1.5.3", "SELECT ?n?n", 2},
    /* strings of every form */
    {"SELECT 'a', 'it''s', ''", "SELECT ?s, ?s, ?s", 3},
    {"SELECT E'\\'', e'a\\nb\\\\', E'x''y'", "SELECT ?s, ?s, ?s", 3},
    {"SELECT N'x', n'y'", "SELECT N?s, n?s", 2},
    {"SELECT U&'d''a', u&'x'", "SELECT ?u, ?u", 2},
    {"SELECT B'101', b'', X'1F', x'ab'", "SELECT ?b, ?b, ?x, ?x", 4},
    {"SELECT B'10''01'", "SELECT ?b?s", 2}, /* no doubling in bit strings */
    {"SELECT $$a;b$$, $q$ $$ ; $q$, $a_1$x$a_1$", "SELECT ?s, ?s, ?s", 3},
    {"SELECT $a$x$b$y$a$", "SELECT ?s", 1},
    /* continuation across a newline is one constant; without one it is two */
    {"SELECT 'a'\n'b'", "SELECT ?s", 1},
    {"SELECT 'a'\r\n\t'b'", "SELECT ?s", 1},
    {"SELECT 'a' 'b'", "SELECT ?s ?s", 2},
    {"SELECT 'a' /* c */\n'b'", "SELECT ?s /* c */\n?s", 2},
    {"SELECT E'a'\n'\\''", "SELECT ?s", 1},
    /* typed literals, arrays */
    {"SELECT DATE '2020-01-01', interval '1 day', '{1,2}'::int[]",
     "SELECT DATE ?s, interval ?s, ?s::int[]", 3},
    /* quoted names and comments are kept as written */
    {"SELECT \"a'b\", \"x\"\"1\" FROM \"t 1\"", "SELECT \"a'b\", \"x\"\"1\" FROM \"t 1\"", 0},
    {"SELECT U&\"d\\0061t\" FROM t", "SELECT U&\"d\\0061t\" FROM t", 0},
    {"SELECT 1 -- it's 2\n, /* '3' /* 4 */ 5 */ 6", "SELECT ?i -- it's 2\n, /* '3' /* 4 */ 5 */ ?i", 2},
    {"SELECT 1--2\n", "SELECT ?i--2\n", 1},
    {"SELECT 2/**/3", "SELECT ?i/**/?i", 2},
    /* FLOAT(p): the grammar rejects p outside 1..53, so p stays */
    {"CREATE TABLE t (a float(5), b float (7), c numeric(10, 2))",
     "CREATE TABLE t (a float(5), b float (7), c numeric(?i, ?i))", 2},
    {"SELECT 1::float(53), float8(3)", "SELECT ?i::float(53), float8(?i)", 2},
    /* ALTER [COLUMN] n: the grammar rejects n outside 1..32767 */
    {"ALTER INDEX i ALTER COLUMN 2 SET STATISTICS 100, ALTER 3 SET STATISTICS -1",
     "ALTER INDEX i ALTER COLUMN 2 SET STATISTICS ?i, ALTER 3 SET STATISTICS -?i", 2},
    {"SELECT 'ünï', \"ü\" FROM é", "SELECT ?s, \"ü\" FROM é", 1},
    {"", "", 0},
};

typedef struct fcase {
    const char *sql, *why;
} fcase_t;

static const fcase_t unkeyed[] = {
    {"SELECT 'abc", "unterminated string"},
    {"SELECT 'a''", "unterminated string"},
    {"SELECT E'abc\\", "unterminated string"},
    {"SELECT 'a'\n'b", "unterminated string"},
    {"SELECT 'a' -- c\n  'b', 1", "continuation across a comment"},
    {"SELECT 'a'\n-- c\n'b'", "continuation across a comment"},
    {"SELECT B'10", "unterminated string"},
    {"SELECT $$abc", "unterminated dollar"},
    {"SELECT $a$abc$b$", "unterminated dollar"},
    {"SELECT \"abc", "unterminated quoted identifier"},
    {"SELECT 1 /* a /* b */", "unterminated /*"},
    {"SELECT '\\'", "backslash in '' string"},
    {"SELECT 'a\\nb'", "backslash in '' string"},
    {"SELECT E'\\101'", "escape in E''"},
    {"SELECT E'\\x41'", "escape in E''"},
    {"SELECT E'\\u0041'", "escape in E''"},
    {"SELECT E'\\U00000041'", "escape in E''"},
    {"SELECT U&'\\0041'", "escape in U&''"},
    {"SELECT U&'!0041' UESCAPE '!'", "UESCAPE"},
    {"SELECT U&\"!0061\" uescape '!' FROM t", "UESCAPE"},
    {"SELECT 123abc", "trailing junk"},
    {"SELECT 0x1F", "trailing junk"},
    {"SELECT 1.5a", "trailing junk"},
    {"SELECT 1e", "trailing junk"},
    {"SELECT 1e+", "trailing junk"},
    {"SELECT 1e5x", "trailing junk"},
    {"SELECT .5e", "trailing junk"},
    {"SELECT 1\xff", "invalid UTF-8"},
    {"SELECT '\xc3'", "invalid UTF-8"},
    {"SELECT '\xc0\xaf'", "invalid UTF-8"},     /* overlong */
    {"SELECT '\xed\xa0\x80'", "invalid UTF-8"}, /* surrogate */
    {"SELECT '\xf4\x90\x80\x80'", "invalid UTF-8"},
};

static void test_keys(void **state)
{
    (void)state;
    char key[512], shown[1024];
    for (size_t i = 0; i < AL_ARRAY_LEN(keyed); i++) {
        const kcase_t *k = &keyed[i];
        size_t n = 99;
        const char *why = "unset";
        ssize_t kl = al__sql_shape(k->sql, strlen(k->sql), key, sizeof(key), &n, &why);
        if (kl < 0)
            fail_msg("no key for [%s]: %s", k->sql, why);
        assert_null(why);
        render(key, (size_t)kl, shown, sizeof(shown));
        if (strcmp(shown, k->key) != 0 || n != k->n_lits)
            fail_msg("[%s] -> [%s] (%zu literals), expected [%s] (%zu)", k->sql, shown, n, k->key,
                     k->n_lits);
        assert_true((size_t)kl <= strlen(k->sql));
    }
}

static void test_fallbacks(void **state)
{
    (void)state;
    char key[512];
    for (size_t i = 0; i < AL_ARRAY_LEN(unkeyed); i++) {
        const fcase_t *f = &unkeyed[i];
        const char *why = NULL;
        size_t n = 99;
        ssize_t kl = al__sql_shape(f->sql, strlen(f->sql), key, sizeof(key), &n, &why);
        if (kl != -1 || !why || !strstr(why, f->why))
            fail_msg("[%s]: %zd (%s), expected no key because %s", f->sql, kl, why ? why : "-",
                     f->why);
        assert_int_equal(n, 0);
    }
    /* a NUL byte, and text longer than the buffer */
    const char *why = NULL;
    assert_int_equal(al__sql_shape("SELECT '\0'", 10, key, sizeof(key), NULL, &why), -1);
    assert_non_null(strstr(why, "NUL"));
    assert_int_equal(al__sql_shape("SELECT 1", 8, key, 7, NULL, &why), -1);
    assert_non_null(strstr(why, "longer"));
    assert_int_equal(al__sql_shape("SELECT 1", 8, key, 8, NULL, &why), 8);
}

/* Each prefix of a keyed statement either has a key or names its reason;
 * never reads past the end (ASan). */
static void test_prefixes(void **state)
{
    (void)state;
    char key[512];
    for (size_t i = 0; i < AL_ARRAY_LEN(keyed); i++) {
        size_t len = strlen(keyed[i].sql);
        for (size_t cut = 0; cut <= len; cut++) {
            char *p = malloc(cut ? cut : 1); /* exact size: ASan sees overreads */
            assert_non_null(p);
            memcpy(p, keyed[i].sql, cut);
            const char *why = NULL;
            ssize_t kl = al__sql_shape(p, cut, key, sizeof(key), NULL, &why);
            assert_true(kl >= 0 ? why == NULL : why != NULL);
            free(p);
        }
    }
}

/* ---- comparing results -------------------------------------------------- */

static bool str_same(al_str_t a, al_str_t b) { return al_str_eq(a, b); }

/* Everything but from_cache / from_shape_cache. Returns a description of
 * the first difference, or NULL. */
static const char *differs(const al_sql_result_t *a, const al_sql_result_t *b)
{
    if (a->cls != b->cls)
        return "class";
    if (a->n_stmts != b->n_stmts)
        return "n_stmts";
    if (a->n_tables != b->n_tables)
        return "n_tables";
    if (!str_same(a->error, b->error) || a->error_pos != b->error_pos)
        return "error";
    if (a->literal_sensitive != b->literal_sensitive)
        return "literal_sensitive";
    for (size_t i = 0; i < a->n_stmts; i++) {
        const al_sql_stmt_t *x = &a->stmts[i], *y = &b->stmts[i];
        if (x->cls != y->cls || x->tree_cls != y->tree_cls)
            return "statement class";
        if (x->offset != y->offset || x->len != y->len)
            return "statement range";
        if (strcmp(x->kind, y->kind) != 0)
            return "kind";
        if (strcmp(x->reason, y->reason) != 0 || strcmp(x->tree_reason, y->tree_reason) != 0 ||
            !str_same(x->reason_arg, y->reason_arg) || !str_same(x->tree_reason_arg, y->tree_reason_arg))
            return "reason";
        if (!str_same(x->prepare_name, y->prepare_name) ||
            !str_same(x->execute_name, y->execute_name) || x->executes != y->executes)
            return "prepare/execute";
        if (x->n_tables != y->n_tables || x->n_funcs != y->n_funcs || x->n_schemas != y->n_schemas)
            return "counts";
        for (size_t k = 0; k < x->n_tables; k++)
            if (!str_same(x->tables[k].catalog, y->tables[k].catalog) ||
                !str_same(x->tables[k].schema, y->tables[k].schema) ||
                !str_same(x->tables[k].name, y->tables[k].name))
                return "tables";
        for (size_t k = 0; k < x->n_funcs; k++)
            if (!str_same(x->funcs[k].schema, y->funcs[k].schema) ||
                !str_same(x->funcs[k].name, y->funcs[k].name) || x->funcs[k].cls != y->funcs[k].cls ||
                x->funcs[k].listed != y->funcs[k].listed)
                return "functions";
        for (size_t k = 0; k < x->n_schemas; k++)
            if (!str_same(x->schemas[k], y->schemas[k]))
                return "schemas";
    }
    return NULL;
}

/* ---- shape cache behaviour ---------------------------------------------- */

static const al_sql_result_t *classify(al_sql_t *c, const char *sql)
{
    const al_sql_result_t *r = NULL;
    assert_int_equal(al_sql_classify(c, sql, strlen(sql), NULL, &r), AL_OK);
    assert_non_null(r);
    return r;
}

static void test_cache_hits(void **state)
{
    (void)state;
    al_sql_t *c = al_sql_new(NULL);
    assert_non_null(c);
    const al_sql_result_t *r = classify(c, "SELECT abalance FROM pgbench_accounts WHERE aid = 1");
    assert_false(r->from_cache);
    assert_false(r->literal_sensitive);
    r = classify(c, "  ;; SELECT abalance FROM pgbench_accounts WHERE aid = 123456 ; -- end");
    assert_false(r->from_shape_cache); /* another shape: the prefix differs */
    r = classify(c, "SELECT abalance FROM pgbench_accounts WHERE aid = 4711");
    assert_true(r->from_cache);
    assert_true(r->from_shape_cache);
    assert_int_equal(r->cls, AL_SQL_READ);
    assert_int_equal(r->n_stmts, 1);
    assert_int_equal(r->stmts[0].offset, 0);
    assert_int_equal(r->stmts[0].len, strlen("SELECT abalance FROM pgbench_accounts WHERE aid = 4711"));
    assert_int_equal(r->n_tables, 1);
    assert_string_equal(r->tables[0].name.p, "pgbench_accounts");

    /* the statement range is this text's, with a prefix and a suffix */
    const char *a = "  ;; SELECT abalance FROM pgbench_accounts WHERE aid = 7 ; -- end";
    r = classify(c, a);
    assert_true(r->from_shape_cache);
    assert_int_equal(r->stmts[0].offset, 4);
    assert_int_equal(r->stmts[0].len, strlen(" SELECT abalance FROM pgbench_accounts WHERE aid = 7 "));

    /* the same text again is an exact hit */
    r = classify(c, "SELECT abalance FROM pgbench_accounts WHERE aid = 1");
    assert_true(r->from_cache);
    assert_false(r->from_shape_cache);

    al_sql_cache_stats_t st;
    al_sql_cache_stats(c, &st);
    assert_int_equal(st.shape_hits, 2);
    assert_int_equal(st.shape_misses, 2);
    assert_int_equal(st.shape_entries, 2);
    assert_true(st.shape_bytes > 0);
    assert_int_equal(st.hits, 1);
    al_sql_free(&c);
}

/* Pairs of the same shape whose answers differ by value: never shared. */
static void test_literal_sensitive(void **state)
{
    (void)state;
    static const struct {
        const char *a, *b;
        al_sql_class_t ca, cb;
    } pairs[] = {
        {"SET client_encoding = 'UTF8'", "SET client_encoding = 'SJIS'", AL_SQL_READ, AL_SQL_ADMIN},
        {"SET standard_conforming_strings = 'on'", "SET standard_conforming_strings = 'off'",
         AL_SQL_READ, AL_SQL_ADMIN},
        {"SET client_encoding TO 6", "SET client_encoding TO 7", AL_SQL_ADMIN, AL_SQL_ADMIN},
        {"EXPLAIN (ANALYZE 0) DELETE FROM t", "EXPLAIN (ANALYZE 1) DELETE FROM t", AL_SQL_READ,
         AL_SQL_WRITE},
        {"EXPLAIN (ANALYZE 'off') DELETE FROM t", "EXPLAIN (ANALYZE 'on') DELETE FROM t",
         AL_SQL_READ, AL_SQL_WRITE},
        {"CREATE FUNCTION f() RETURNS int LANGUAGE 'sql' AS 'select 1'",
         "CREATE FUNCTION f() RETURNS int LANGUAGE 'c' AS 'select 1'", AL_SQL_DDL, AL_SQL_ADMIN},
        {"COPY t FROM '/tmp/a'", "COPY t FROM '/tmp/b'", AL_SQL_ADMIN, AL_SQL_ADMIN},
        {"ALTER ROLE r SET client_encoding = 'UTF8'", "ALTER ROLE r SET client_encoding = 'LATIN1'",
         AL_SQL_DCL, AL_SQL_ADMIN},
    };
    al_sql_t *c = al_sql_new(NULL);
    assert_non_null(c);
    for (size_t i = 0; i < AL_ARRAY_LEN(pairs); i++) {
        const al_sql_result_t *r = classify(c, pairs[i].a);
        if (r->cls != pairs[i].ca)
            fail_msg("[%s] is %s", pairs[i].a, al_sql_class_name(r->cls));
        assert_true(r->literal_sensitive);
        r = classify(c, pairs[i].b);
        if (r->cls != pairs[i].cb || r->from_cache)
            fail_msg("[%s] is %s (cached %d)", pairs[i].b, al_sql_class_name(r->cls), r->from_cache);
    }
    al_sql_cache_stats_t st;
    al_sql_cache_stats(c, &st);
    assert_int_equal(st.shape_hits, 0);
    assert_int_equal(st.shape_entries, 0);
    al_sql_free(&c);
}

/* Same-looking statements the grammar tells apart by the constant's kind or
 * value, and what is never shared (errors, several statements). */
static void test_kept_apart(void **state)
{
    (void)state;
    static const struct {
        const char *a, *b;
    } pairs[] = {
        {"FETCH 5 FROM c", "FETCH 99999999999 FROM c"},
        {"FETCH 5 FROM c", "FETCH '5' FROM c"},
        {"FETCH 5 FROM c", "FETCH 5.0 FROM c"},
        {"CREATE TABLE t (a float(5))", "CREATE TABLE t (a float(0))"},
        {"CREATE TABLE t (a float(5))", "CREATE TABLE t (a float(54))"},
        {"ALTER INDEX i ALTER COLUMN 2 SET STATISTICS 5", "ALTER INDEX i ALTER COLUMN 0 SET STATISTICS 5"},
        {"ALTER INDEX i ALTER 2 SET STATISTICS 5", "ALTER INDEX i ALTER 40000 SET STATISTICS 5"},
        {"SELECT B'1'", "SELECT X'1'"},
        {"SELECT 1; SELECT 2", "SELECT 1; SELECT 3"},
        {"SELECT 1 +", "SELECT 2 +"},
    };
    al_sql_t *c = al_sql_new(NULL);
    al_sql_config_t none = {.no_cache = true};
    al_sql_t *u = al_sql_new(&none);
    assert_non_null(c);
    assert_non_null(u);
    for (size_t i = 0; i < AL_ARRAY_LEN(pairs); i++) {
        (void)classify(c, pairs[i].a);
        const al_sql_result_t *r = classify(c, pairs[i].b);
        assert_false(r->from_shape_cache);
        const char *d = differs(r, classify(u, pairs[i].b));
        if (d)
            fail_msg("[%s] after [%s]: %s", pairs[i].b, pairs[i].a, d);
    }
    al_sql_free(&c);
    al_sql_free(&u);
}

/* Off by configuration: no_shape_cache, and no_cache. */
static void test_config(void **state)
{
    (void)state;
    al_sql_config_t off = {.no_shape_cache = true};
    al_sql_t *c = al_sql_new(&off);
    assert_non_null(c);
    (void)classify(c, "SELECT * FROM t WHERE a = 1");
    assert_false(classify(c, "SELECT * FROM t WHERE a = 2")->from_cache);
    al_sql_cache_stats_t st;
    al_sql_cache_stats(c, &st);
    assert_int_equal(st.shape_misses + st.shape_hits, 0);
    al_sql_free(&c);

    /* a tiny shape cache evicts */
    al_sql_config_t tiny = {.shape_cache_entries = 2};
    c = al_sql_new(&tiny);
    assert_non_null(c);
    (void)classify(c, "SELECT * FROM a WHERE x = 1");
    (void)classify(c, "SELECT * FROM b WHERE x = 1");
    (void)classify(c, "SELECT * FROM c WHERE x = 1");
    al_sql_cache_stats(c, &st);
    assert_int_equal(st.shape_entries, 2);
    assert_int_equal(st.shape_evictions, 1);
    assert_false(classify(c, "SELECT * FROM a WHERE x = 2")->from_shape_cache);
    assert_true(classify(c, "SELECT * FROM c WHERE x = 2")->from_shape_cache);
    al_sql_free(&c);
}

/* ---- differential test over the corpus ------------------------------------ */

typedef struct corpus {
    char **s;
    size_t *len;
    size_t n, cap;
} corpus_t;

static void corpus_add(corpus_t *c, const char *p, size_t n)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 256;
        c->s = realloc(c->s, c->cap * sizeof(*c->s));
        c->len = realloc(c->len, c->cap * sizeof(*c->len));
        assert_non_null(c->s);
        assert_non_null(c->len);
    }
    c->s[c->n] = malloc(n + 1);
    assert_non_null(c->s[c->n]);
    memcpy(c->s[c->n], p, n);
    c->s[c->n][n] = '\0';
    c->len[c->n++] = n;
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s (run from the source root)", path);
    char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0)
            break;
    }
    fclose(f);
    buf[len] = '\0';
    *n = len;
    return buf;
}

static int hexval(char ch)
{
    return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                                            : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
}

/* Decodes a C or YAML double-quoted string body starting after the quote;
 * returns the index after the closing quote. */
static size_t dq_string(const char *s, size_t n, size_t i, char *out, size_t *o)
{
    while (i < n && s[i] != '"') {
        if (s[i] != '\\' || i + 1 >= n) {
            out[(*o)++] = s[i++];
            continue;
        }
        char e = s[i + 1];
        i += 2;
        if (e == 'n') out[(*o)++] = '\n';
        else if (e == 't') out[(*o)++] = '\t';
        else if (e == 'r') out[(*o)++] = '\r';
        else if (e == 'f') out[(*o)++] = '\f';
        else if (e == 'x') {
            int v = 0, d;
            while (i < n && (d = hexval(s[i])) >= 0)
                v = v * 16 + d, i++;
            out[(*o)++] = (char)v;
        } else if (e >= '0' && e <= '7') {
            int v = e - '0';
            for (int k = 0; k < 2 && i < n && s[i] >= '0' && s[i] <= '7'; k++)
                v = v * 8 + (s[i++] - '0');
            out[(*o)++] = (char)v;
        } else if (e == '\n') {
            while (i < n && (s[i] == ' ' || s[i] == '\t'))
                i++; /* YAML line folding with a trailing backslash */
        } else {
            out[(*o)++] = e;
        }
    }
    return i + 1;
}

/* Every string literal of a C file (adjacent ones joined). */
static void from_c_file(corpus_t *c, const char *path)
{
    size_t n;
    char *s = slurp(path, &n);
    char *buf = malloc(n + 1);
    assert_non_null(buf);
    size_t i = 0;
    while (i < n) {
        if (s[i] == '/' && i + 1 < n && s[i + 1] == '/') {
            while (i < n && s[i] != '\n')
                i++;
        } else if (s[i] == '/' && i + 1 < n && s[i + 1] == '*') {
            char *e = strstr(s + i + 2, "*/");
            i = e ? (size_t)(e - s) + 2 : n;
        } else if (s[i] == '\'') {
            i++;
            while (i < n && s[i] != '\'')
                i += s[i] == '\\' ? 2 : 1;
            i++;
        } else if (s[i] == '"') {
            size_t o = 0;
            for (;;) {
                i = dq_string(s, n, i + 1, buf, &o);
                size_t j = i;
                while (j < n && (s[j] == ' ' || s[j] == '\n' || s[j] == '\t'))
                    j++;
                if (j < n && s[j] == '"')
                    i = j;
                else
                    break;
            }
            if (memchr(buf, '\0', o) == NULL && o > 0)
                corpus_add(c, buf, o);
        } else {
            i++;
        }
    }
    free(buf);
    free(s);
}

/* Every `sql: "..."` or `sql: '...'` of a YAML file. */
static void from_yaml(corpus_t *c, const char *path)
{
    size_t n;
    char *s = slurp(path, &n);
    char *buf = malloc(n + 1);
    assert_non_null(buf);
    for (char *p = strstr(s, "sql: "); p; p = strstr(p + 1, "sql: ")) {
        size_t i = (size_t)(p - s) + 5, o = 0;
        if (s[i] == '"') {
            dq_string(s, n, i + 1, buf, &o);
        } else if (s[i] == '\'') {
            for (i++; i < n; i++) {
                if (s[i] == '\'' && i + 1 < n && s[i + 1] == '\'')
                    buf[o++] = s[i++];
                else if (s[i] == '\'')
                    break;
                else
                    buf[o++] = s[i];
            }
        } else {
            continue;
        }
        corpus_add(c, buf, o);
    }
    free(buf);
    free(s);
}

static void from_dir(corpus_t *c, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        fail_msg("cannot open %s", dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        size_t n;
        char *s = slurp(path, &n);
        corpus_add(c, s, n);
        free(s);
    }
    closedir(d);
}

/* Statements written for this test: the literal forms of the brief. */
static const char *const extra[] = {
    "SELECT abalance FROM pgbench_accounts WHERE aid = 4711",
    "UPDATE pgbench_accounts SET abalance = abalance + -4711 WHERE aid = 17",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 2, 3, 4, CURRENT_TIMESTAMP)",
    "SELECT '1', 1, E'\\'', $$a;b$$, $t$;$t$, t1.c, -5, 1e10, .5, 5., x$1 FROM t1 WHERE c = $1",
    "SELECT DATE '2020-01-01', interval '1 day', '{1,2}'::int[], B'101', X'ff', U&'x', N'y'",
    "SELECT 'a'\n'b' AS c, E'x'\n  -- c\n'y'",
    "SELECT * FROM t WHERE a IN (1, 2.5, 'x') AND b BETWEEN -1 AND 2147483647 LIMIT 10 OFFSET 20",
    "FETCH 5 FROM c",
    "MOVE -3 IN c",
    "CREATE TABLE t (a float(5), b numeric(10, 2), c varchar(20) DEFAULT 'x', d bit(3))",
    "ALTER TABLE t ALTER COLUMN a SET STATISTICS 100",
    "ALTER INDEX i ALTER COLUMN 2 SET STATISTICS 100",
    "CREATE SEQUENCE s START 1 INCREMENT 5 MAXVALUE 99999999999",
    "SELECT pg_sleep(1), set_config('search_path', 'x', false), nextval('s'), lo_import('/etc/passwd')",
    "SELECT pg_terminate_backend(1234)",
    "EXPLAIN (ANALYZE 0) DELETE FROM t WHERE a = 1",
    "EXPLAIN (ANALYZE 1, COSTS 0) DELETE FROM t WHERE a = 1",
    "EXPLAIN SELECT * FROM t WHERE a = 1",
    "SET statement_timeout = 5000",
    "SET search_path = 'x'",
    "SET client_encoding = 'UTF8'",
    "SET standard_conforming_strings = 'off'",
    "SET TIME ZONE 'UTC'",
    "ALTER SYSTEM SET work_mem = '64MB'",
    "COPY t FROM '/tmp/x' WITH (FORMAT 'csv')",
    "COPY t TO PROGRAM 'gzip > /tmp/x'",
    "COPY (SELECT * FROM t WHERE a > 1) TO STDOUT",
    "CREATE FUNCTION f(int) RETURNS int LANGUAGE 'sql' AS $$ SELECT 1; $$",
    "CREATE FUNCTION f(int) RETURNS int LANGUAGE c AS 'lib', 'sym'",
    "PREPARE p AS SELECT * FROM t WHERE a = 1",
    "EXECUTE p(1, 'x')",
    "WITH d AS (DELETE FROM t WHERE a = 1 RETURNING *) SELECT * FROM d WHERE b = 'x'",
    "SELECT * FROM t FOR UPDATE SKIP LOCKED LIMIT 1",
    "SELECT 1 INTO newt",
    "SELECT * FROM t TABLESAMPLE SYSTEM (10) REPEATABLE (42)",
    "SELECT a[1], a[1:2], (x).f FROM t",
    "SELECT 1::int, '1'::int, 2::float(24)",
    "SELECT * FROM t WHERE a = 1;",
    " ; SELECT * FROM t WHERE a = 1 ; ; -- end",
    "/* lead */ SELECT * FROM t WHERE a = 1 -- trail",
    "SELECT x FROM t WHERE y LIKE 'a%' ESCAPE '!'",
    "NOTIFY ch, 'payload'",
    "COMMENT ON TABLE t IS 'text'",
    "SELECT 1 +",
    "SELECT 1; SELECT 2",
    "DO $$ BEGIN PERFORM 1; END $$",
    "CALL p(1, 'a')",
    "VACUUM (PARALLEL 2) t",
    "CREATE ROLE r CONNECTION LIMIT 5 PASSWORD 'x' VALID UNTIL '2030-01-01'",
    "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
    "SELECT current_setting('role'), timezone('UTC', now()), extract(year FROM DATE '2020-01-01')",
};

/* Literal spellings per kind, of varied lengths and forms. */
static const char *const pool_int[] = {"0", "1", "7", "4711", "2147483647", "00012", "42"};
static const char *const pool_num[] = {"2147483648", "99999999999", "1.5", ".5", "5.", "1e10",
                                       "1.5E-3", "3.14159265358979"};
static const char *const pool_str[] = {
    "''", "'x'", "'it''s'", "E'\\''", "E'a\\nb'", "$$a;b$$", "$q$ $$ ; $q$",
    "'a'\n'b'", "'{1,2}'", "'2020-01-01'", "'1 day'", "'ünï ☃'", "'on'", "'off'",
    "'SJIS'", "'/tmp/x'", "'c'", "'0'", "$_$x'y$_$", "'x'\n\n 'y'", "E'\\\\'",
};
static const char *const pool_ustr[] = {"U&'x'", "U&'d''a'", "u&''"};
static const char *const pool_bit[] = {"B'101'", "B''", "b'1'\n'0'"};
static const char *const pool_hex[] = {"X'1F'", "X''", "x'ab'"};
/* a different kind in place of a literal: must not share */
static const char *const pool_cross[] = {"'1'", "1", "1.0", "B'1'", "X'1'", "U&'1'"};

#define POOL(p) p, AL_ARRAY_LEN(p)

/* Fills the key's placeholders: variant v picks spelling (v + k) of each
 * kind for the k-th literal; cross != 0 puts a spelling of another kind at
 * the first literal. */
static size_t fill(const char *key, size_t klen, size_t v, bool cross, char *out, size_t cap)
{
    size_t o = 0, k = 0;
    for (size_t i = 0; i < klen; i++) {
        const char *const *pool = NULL;
        size_t np = 0;
        switch (key[i]) {
        case AL__SQL_SHAPE_INT: pool = pool_int; np = AL_ARRAY_LEN(pool_int); break;
        case AL__SQL_SHAPE_NUM: pool = pool_num; np = AL_ARRAY_LEN(pool_num); break;
        case AL__SQL_SHAPE_STR: pool = pool_str; np = AL_ARRAY_LEN(pool_str); break;
        case AL__SQL_SHAPE_USTR: pool = pool_ustr; np = AL_ARRAY_LEN(pool_ustr); break;
        case AL__SQL_SHAPE_BIT: pool = pool_bit; np = AL_ARRAY_LEN(pool_bit); break;
        case AL__SQL_SHAPE_HEX: pool = pool_hex; np = AL_ARRAY_LEN(pool_hex); break;
        default: break;
        }
        if (!pool) {
            if (o + 1 >= cap)
                return 0;
            out[o++] = key[i];
            continue;
        }
        if (cross && k == 0) {
            pool = pool_cross;
            np = AL_ARRAY_LEN(pool_cross);
        }
        const char *lit = pool[(v + k * 3) % np];
        size_t ln = strlen(lit);
        if (o + ln + 1 >= cap)
            return 0;
        memcpy(out + o, lit, ln);
        o += ln;
        k++;
    }
    out[o] = '\0';
    return o;
}

static al_sql_class_t resolver(void *arg, al_str_t name)
{
    (void)arg;
    return (al_sql_class_t)(name.len % AL_SQL_CLASS_COUNT);
}

typedef struct diffstat {
    size_t texts, keyed, variants, same_key, shape_hits, compared;
} diffstat_t;

static void compare_one(al_sql_t *cached, al_sql_t *fresh, const char *sib, size_t sib_len,
                        const char *sql, size_t len, const al_sql_opts_t *o, diffstat_t *ds)
{
    const al_sql_result_t *r = NULL, *f = NULL;
    if (sib)
        assert_int_equal(al_sql_classify(cached, sib, sib_len, o, &r), AL_OK);
    assert_int_equal(al_sql_classify(cached, sql, len, o, &r), AL_OK);
    bool hit = r->from_shape_cache;
    assert_int_equal(al_sql_classify(fresh, sql, len, o, &f), AL_OK);
    /* `r` stays valid: `fresh` is another classifier */
    const char *d = differs(r, f);
    if (d)
        fail_msg("shape-cached answer differs (%s) for [%.*s] after sibling [%.*s]", d, (int)len,
                 sql, sib ? (int)sib_len : 0, sib ? sib : "");
    ds->compared++;
    ds->shape_hits += hit;
}

static void test_differential(void **state)
{
    (void)state;
    corpus_t c = {0};
    from_c_file(&c, "tests/unit/policy/test_sql_classify.c");
    static const char *const yamls[] = {
        "tests/data/policy/sql.yaml", "tests/data/policy/sql-2.yaml", "tests/data/policy/sql-3.yaml",
        "tests/data/policy/docs-examples.yaml", "tests/data/policy/http-and-rules.yaml",
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(yamls); i++)
        from_yaml(&c, yamls[i]);
    from_dir(&c, "tests/fuzz/corpus/sql");
    for (size_t i = 0; i < AL_ARRAY_LEN(extra); i++)
        corpus_add(&c, extra[i], strlen(extra[i]));
    assert_true(c.n > 500);

    al_sql_t *cached = al_sql_new(NULL);
    al_sql_config_t none = {.no_cache = true};
    al_sql_t *fresh = al_sql_new(&none);
    assert_non_null(cached);
    assert_non_null(fresh);
    diffstat_t ds = {0};
    static const al_sql_opts_t opts[] = {
        {.default_function_class = AL_SQL_READ, .resolve_prepared = resolver},
        {.default_function_class = AL_SQL_WRITE},
    };
    size_t cap = 64 << 10;
    char *key = malloc(cap), *v1 = malloc(cap * 4), *v2 = malloc(cap * 4), *kk = malloc(cap * 4);
    assert_non_null(key);
    assert_non_null(v1);
    assert_non_null(v2);
    assert_non_null(kk);
    for (size_t t = 0; t < c.n; t++) {
        const char *sql = c.s[t];
        size_t len = c.len[t];
        ds.texts++;
        for (size_t oi = 0; oi < AL_ARRAY_LEN(opts); oi++)
            compare_one(cached, fresh, NULL, 0, sql, len, &opts[oi], &ds);
        size_t n_lits = 0;
        ssize_t kl = al__sql_shape(sql, len, key, cap, &n_lits, NULL);
        if (kl < 0 || n_lits == 0)
            continue;
        ds.keyed++;
        for (size_t v = 0; v < 24; v++) {
            bool cross = v >= 20;
            size_t l1 = fill(key, (size_t)kl, v + 7, false, v1, cap * 4);
            size_t l2 = fill(key, (size_t)kl, v, cross, v2, cap * 4);
            if (!l1 || !l2)
                continue;
            ds.variants++;
            size_t nl = 0;
            ssize_t k2 = al__sql_shape(v2, l2, kk, cap * 4, &nl, NULL);
            if (!cross && k2 == kl && memcmp(kk, key, (size_t)kl) == 0)
                ds.same_key++;
            const al_sql_opts_t *o = &opts[v % AL_ARRAY_LEN(opts)];
            /* the original as the sibling, and another variant */
            compare_one(cached, fresh, sql, len, v2, l2, o, &ds);
            compare_one(cached, fresh, v1, l1, v2, l2, o, &ds);
        }
    }
    al_sql_cache_stats_t st;
    al_sql_cache_stats(cached, &st);
    print_message("differential: %zu texts, %zu with a shape key, %zu variants (%zu of the same "
                  "key), %zu comparisons, %zu shape hits; cache %llu shape hits / %llu misses\n",
                  ds.texts, ds.keyed, ds.variants, ds.same_key, ds.compared, ds.shape_hits,
                  (unsigned long long)st.shape_hits, (unsigned long long)st.shape_misses);
    /* the test must have exercised the shape path, a lot */
    assert_true(ds.keyed > 200);
    assert_true(ds.same_key > ds.variants / 2);
    assert_true(ds.shape_hits > 1000);
    free(key);
    free(v1);
    free(v2);
    free(kk);
    for (size_t i = 0; i < c.n; i++)
        free(c.s[i]);
    free(c.s);
    free(c.len);
    al_sql_free(&cached);
    al_sql_free(&fresh);
}

/* ---- timing -------------------------------------------------------------- */

static double ns_per_call(al_sql_t *c, size_t n, size_t base)
{
    char sql[128];
    uint64_t t0 = al_mono_ns();
    for (size_t i = 0; i < n; i++) {
        int len = snprintf(sql, sizeof(sql),
                           "SELECT abalance FROM pgbench_accounts WHERE aid = %zu", base + i);
        const al_sql_result_t *r = NULL;
        assert_int_equal(al_sql_classify(c, sql, (size_t)len, NULL, &r), AL_OK);
        assert_int_equal(r->cls, AL_SQL_READ);
    }
    return (double)(al_mono_ns() - t0) / (double)n;
}

static void test_timing(void **state)
{
    (void)state;
    al_sql_config_t exact_only = {.no_shape_cache = true};
    al_sql_t *before = al_sql_new(&exact_only);
    al_sql_t *after = al_sql_new(NULL);
    assert_non_null(before);
    assert_non_null(after);
    (void)ns_per_call(after, 1, 1); /* warm: one miss stores the shape */
    double b = ns_per_call(before, 20000, 1000000);
    double a = ns_per_call(after, 200000, 1000000);
    al_sql_cache_stats_t st;
    al_sql_cache_stats(after, &st);
    print_message("pgbench-style SELECT, a new literal each call: exact cache only %.0f ns, "
                  "shape cache %.0f ns (%llu shape hits)\n",
                  b, a, (unsigned long long)st.shape_hits);
    assert_int_equal(st.shape_hits, 200000);
    assert_true(a < b); /* a hit skips the parser */
    al_sql_free(&before);
    al_sql_free(&after);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_fallbacks),
        cmocka_unit_test(test_prefixes),
        cmocka_unit_test(test_cache_hits),
        cmocka_unit_test(test_literal_sensitive),
        cmocka_unit_test(test_kept_apart),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_differential),
        cmocka_unit_test(test_timing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
