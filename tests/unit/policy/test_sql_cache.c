/*
 * Unit tests of src/policy/sql_cache.c through al_sql_classify: hits, the
 * key (text and default function class), both bounds, LRU eviction, EXECUTE
 * resolved on hits, and SipHash-2-4 against the reference vectors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "policy/sql_classify.h"

static const al_sql_result_t *run_opts(al_sql_t *c, const char *sql, const al_sql_opts_t *o)
{
    const al_sql_result_t *r = NULL;
    assert_int_equal(al_sql_classify(c, sql, strlen(sql), o, &r), AL_OK);
    assert_non_null(r);
    return r;
}

static const al_sql_result_t *run(al_sql_t *c, const char *sql)
{
    return run_opts(c, sql, NULL);
}

static al_sql_cache_stats_t stats(const al_sql_t *c)
{
    al_sql_cache_stats_t s;
    al_sql_cache_stats(c, &s);
    return s;
}

/* SipHash-2-4 reference vectors (key 00..0f, message 00..n-1), from the
 * paper's appendix and the reference implementation's vectors.h. */
static void test_siphash_vectors(void **state)
{
    uint8_t key[16], msg[64];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++)
        msg[i] = (uint8_t)i;
    uint64_t k0 = 0, k1 = 0;
    for (int i = 7; i >= 0; i--) {
        k0 = (k0 << 8) | key[i];
        k1 = (k1 << 8) | key[8 + i];
    }
    assert_true(al__sql_siphash(k0, k1, msg, 0) == 0x726fdb47dd0e0e31ULL);
    assert_true(al__sql_siphash(k0, k1, msg, 1) == 0x74f839c593dc67fdULL);
    assert_true(al__sql_siphash(k0, k1, msg, 7) == 0xab0200f58b01d137ULL);
    assert_true(al__sql_siphash(k0, k1, msg, 8) == 0x93f5f5799a932462ULL);
    assert_true(al__sql_siphash(k0, k1, msg, 15) == 0xa129ca6149be45e5ULL);
    assert_true(al__sql_siphash(k0, k1, msg, 63) == 0x958a324ceb064572ULL);
    AL_UNUSED(state);
}

static void test_hit(void **state)
{
    al_sql_t *c = al_sql_new(NULL);
    assert_non_null(c);
    const al_sql_result_t *r = run(c, "SELECT * FROM t; DELETE FROM u");
    assert_false(r->from_cache);
    assert_int_equal(r->cls, AL_SQL_WRITE);
    r = run(c, "SELECT * FROM t; DELETE FROM u");
    assert_true(r->from_cache);
    assert_int_equal(r->cls, AL_SQL_WRITE);
    assert_int_equal(r->n_stmts, 2);
    assert_int_equal(r->stmts[1].cls, AL_SQL_WRITE);
    assert_string_equal(r->stmts[1].kind, "DeleteStmt");
    assert_true(al_str_eq_c(r->stmts[0].tables[0].name, "t"));
    assert_true(al_str_eq_c(r->stmts[1].tables[0].name, "u"));
    assert_int_equal(r->n_tables, 2);
    al_sql_cache_stats_t s = stats(c);
    assert_int_equal(s.hits, 1);
    assert_int_equal(s.misses, 1);
    assert_int_equal(s.entries, 1);
    assert_true(s.bytes > 0);
    /* one byte of difference is another key */
    r = run(c, "SELECT * FROM t; DELETE FROM v");
    assert_false(r->from_cache);
    assert_true(al_str_eq_c(r->stmts[1].tables[0].name, "v"));
    r = run(c, "select * FROM t; DELETE FROM u");
    assert_false(r->from_cache);
    /* the length is part of the key */
    const al_sql_result_t *r2 = NULL;
    assert_int_equal(al_sql_classify(c, "SELECT 1; DROP TABLE t", 8, NULL, &r2), AL_OK);
    assert_false(r2->from_cache);
    assert_int_equal(r2->cls, AL_SQL_READ);
    assert_int_equal(al_sql_classify(c, "SELECT 1; DROP TABLE t", 22, NULL, &r2), AL_OK);
    assert_false(r2->from_cache);
    assert_int_equal(r2->cls, AL_SQL_DDL);
    assert_int_equal(al_sql_classify(c, "SELECT 1; DROP TABLE t", 8, NULL, &r2), AL_OK);
    assert_true(r2->from_cache);
    assert_int_equal(r2->cls, AL_SQL_READ);
    /* errors are cached with their message and position */
    r = run(c, "SELECT (");
    assert_false(r->from_cache);
    r = run(c, "SELECT (");
    assert_true(r->from_cache);
    assert_int_equal(r->cls, AL_SQL_UNKNOWN);
    assert_true(r->error.len > 0);
    assert_int_equal(r->error_pos, 9);
    al_sql_free(&c);
    assert_null(c);
    al_sql_free(&c); /* a pointer to NULL is fine */
    AL_UNUSED(state);
}

/* The default function class changes results, so it is part of the key. */
static void test_key_has_default_class(void **state)
{
    al_sql_t *c = al_sql_new(NULL);
    assert_non_null(c);
    al_sql_opts_t rd = {.default_function_class = AL_SQL_READ};
    al_sql_opts_t wr = {.default_function_class = AL_SQL_WRITE};
    al_sql_opts_t bad = {.default_function_class = (al_sql_class_t)99};
    const al_sql_result_t *r = run_opts(c, "SELECT f(1)", &rd);
    assert_int_equal(r->cls, AL_SQL_READ);
    r = run_opts(c, "SELECT f(1)", &wr);
    assert_false(r->from_cache);
    assert_int_equal(r->cls, AL_SQL_WRITE);
    assert_int_equal(r->stmts[0].funcs[0].cls, AL_SQL_WRITE);
    r = run_opts(c, "SELECT f(1)", &rd);
    assert_true(r->from_cache);
    assert_int_equal(r->cls, AL_SQL_READ);
    assert_int_equal(r->stmts[0].funcs[0].cls, AL_SQL_READ);
    r = run(c, "SELECT f(1)"); /* NULL opts = read */
    assert_true(r->from_cache);
    assert_int_equal(r->cls, AL_SQL_READ);
    r = run_opts(c, "SELECT f(1)", &wr);
    assert_true(r->from_cache);
    assert_int_equal(r->cls, AL_SQL_WRITE);
    /* out of range is unknown, and cached as unknown */
    r = run_opts(c, "SELECT f(1)", &bad);
    assert_false(r->from_cache);
    assert_int_equal(r->cls, AL_SQL_UNKNOWN);
    r = run_opts(c, "SELECT f(1)", &(al_sql_opts_t){.default_function_class = AL_SQL_UNKNOWN});
    assert_true(r->from_cache);
    assert_int_equal(r->cls, AL_SQL_UNKNOWN);
    al_sql_free(&c);
    AL_UNUSED(state);
}

static al_sql_class_t resolve_counter(void *arg, al_str_t name)
{
    al_sql_class_t *cls = arg;
    return al_str_eq_c(name, "p") ? *cls : AL_SQL_UNKNOWN;
}

/* EXECUTE depends on session state: resolved on every call, hits too. */
static void test_execute_on_hit(void **state)
{
    al_sql_t *c = al_sql_new(NULL);
    assert_non_null(c);
    al_sql_class_t cls = AL_SQL_READ;
    al_sql_opts_t o = {.resolve_prepared = resolve_counter, .resolve_arg = &cls};
    const al_sql_result_t *r = run_opts(c, "SELECT 1; EXECUTE p", &o);
    assert_false(r->from_cache);
    assert_int_equal(r->cls, AL_SQL_READ);
    cls = AL_SQL_ADMIN;
    r = run_opts(c, "SELECT 1; EXECUTE p", &o);
    assert_true(r->from_cache);
    assert_int_equal(r->cls, AL_SQL_ADMIN);
    assert_int_equal(r->stmts[1].cls, AL_SQL_ADMIN);
    assert_int_equal(r->stmts[1].tree_cls, AL_SQL_READ);
    cls = AL_SQL_WRITE; /* lower again: the cached tree class is untouched */
    r = run_opts(c, "SELECT 1; EXECUTE p", &o);
    assert_true(r->from_cache);
    assert_int_equal(r->cls, AL_SQL_WRITE);
    assert_int_equal(r->stmts[1].cls, AL_SQL_WRITE);
    r = run(c, "SELECT 1; EXECUTE p"); /* no resolver */
    assert_true(r->from_cache);
    assert_int_equal(r->cls, AL_SQL_UNKNOWN);
    al_sql_free(&c);
    AL_UNUSED(state);
}

static void stmt_text(char *buf, size_t cap, int i)
{
    snprintf(buf, cap, "SELECT * FROM t%d", i);
}

static void test_entry_bound_lru(void **state)
{
    al_sql_config_t cfg = {.cache_entries = 4};
    al_sql_t *c = al_sql_new(&cfg);
    assert_non_null(c);
    char sql[64];
    for (int i = 0; i < 10; i++) {
        stmt_text(sql, sizeof sql, i);
        assert_false(run(c, sql)->from_cache);
        assert_true(stats(c).entries <= 4);
    }
    al_sql_cache_stats_t s = stats(c);
    assert_int_equal(s.entries, 4);
    assert_int_equal(s.evictions, 6);
    /* 6..9 are in; touch 6 so 7 is the least recently used */
    stmt_text(sql, sizeof sql, 6);
    assert_true(run(c, sql)->from_cache);
    stmt_text(sql, sizeof sql, 10);
    assert_false(run(c, sql)->from_cache);
    stmt_text(sql, sizeof sql, 6);
    assert_true(run(c, sql)->from_cache);
    stmt_text(sql, sizeof sql, 8);
    assert_true(run(c, sql)->from_cache);
    stmt_text(sql, sizeof sql, 7);
    const al_sql_result_t *r = run(c, sql);
    assert_false(r->from_cache);
    assert_true(al_str_eq_c(r->stmts[0].tables[0].name, "t7"));
    al_sql_free(&c);
    AL_UNUSED(state);
}

static void test_byte_bound(void **state)
{
    al_sql_config_t cfg = {.cache_entries = 1000, .cache_max_bytes = 3000};
    al_sql_t *c = al_sql_new(&cfg);
    assert_non_null(c);
    char sql[64];
    for (int i = 0; i < 100; i++) {
        stmt_text(sql, sizeof sql, i);
        const al_sql_result_t *r = run(c, sql);
        assert_int_equal(r->cls, AL_SQL_READ);
        assert_true(stats(c).bytes <= 3000);
    }
    al_sql_cache_stats_t s = stats(c);
    assert_true(s.entries >= 2 && s.entries < 100);
    assert_int_equal(s.evictions, 100 - s.entries);
    /* a result bigger than the whole cache is classified but not kept */
    al_buf_t b;
    al_buf_init(&b);
    assert_int_equal(al_buf_puts(&b, "SELECT * FROM a0"), AL_OK);
    for (int i = 1; i < 200; i++)
        assert_int_equal(al_buf_printf(&b, ", a%d", i), AL_OK);
    for (int k = 0; k < 2; k++) {
        const al_sql_result_t *r = run(c, b.p);
        assert_false(r->from_cache);
        assert_int_equal(r->cls, AL_SQL_READ);
        assert_int_equal(r->stmts[0].n_tables, 200);
    }
    assert_true(stats(c).bytes <= 3000);
    al_buf_free(&b);
    al_sql_free(&c);
    AL_UNUSED(state);
}

static void test_max_text_not_cached(void **state)
{
    al_sql_config_t cfg = {.cache_max_text = 16};
    al_sql_t *c = al_sql_new(&cfg);
    assert_non_null(c);
    const char *small = "SELECT 1"; /* 8 bytes */
    const char *edge = "SELECT 12345678;";   /* 16 bytes */
    const char *big = "SELECT 123456789;";   /* 17 bytes */
    run(c, small);
    assert_true(run(c, small)->from_cache);
    run(c, edge);
    assert_true(run(c, edge)->from_cache);
    for (int k = 0; k < 3; k++) {
        const al_sql_result_t *r = run(c, big);
        assert_false(r->from_cache);
        assert_int_equal(r->cls, AL_SQL_READ);
        assert_int_equal(r->n_stmts, 1);
    }
    assert_int_equal(stats(c).entries, 2);
    al_sql_free(&c);
    AL_UNUSED(state);
}

static void test_no_cache(void **state)
{
    al_sql_config_t cfg = {.no_cache = true};
    al_sql_t *c = al_sql_new(&cfg);
    assert_non_null(c);
    for (int k = 0; k < 3; k++) {
        const al_sql_result_t *r = run(c, "DELETE FROM t");
        assert_false(r->from_cache);
        assert_int_equal(r->cls, AL_SQL_WRITE);
    }
    al_sql_cache_stats_t s = stats(c);
    assert_int_equal(s.hits + s.misses + s.entries + s.bytes + s.evictions, 0);
    al_sql_free(&c);
    AL_UNUSED(state);
}

/* Under churn, a cached classifier answers exactly like an uncached one. */
static void test_same_answers_under_churn(void **state)
{
    static const char *const stmts[] = {
        "SELECT 1",
        "DELETE FROM a",
        "SELECT * FROM vault.secrets FOR UPDATE",
        "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
        "SELECT pg_terminate_backend(1)",
        "SELECT (",
        "CREATE TABLE x (a int); GRANT SELECT ON x TO r",
        "SELECT my_func(1) FROM s.t",
        "COPY t FROM PROGRAM 'id'",
        "",
        "EXPLAIN ANALYZE UPDATE t SET a = 1",
        "SELECT * FROM \"Mixed\".\"Case\"",
    };
    al_sql_config_t small = {.cache_entries = 3};
    al_sql_config_t none = {.no_cache = true};
    al_sql_t *c = al_sql_new(&small);
    al_sql_t *u = al_sql_new(&none);
    assert_non_null(c);
    assert_non_null(u);
    uint32_t x = 12345;
    for (int i = 0; i < 2000; i++) {
        x = x * 1103515245u + 12345u;
        const char *sql = stmts[(x >> 16) % AL_ARRAY_LEN(stmts)];
        al_sql_opts_t o = {.default_function_class = (al_sql_class_t)((x >> 8) % 2)};
        const al_sql_result_t *a = run_opts(c, sql, &o);
        const al_sql_result_t *b = run_opts(u, sql, &o);
        assert_int_equal(a->cls, b->cls);
        assert_int_equal(a->n_stmts, b->n_stmts);
        assert_int_equal(a->n_tables, b->n_tables);
        assert_int_equal(a->error_pos, b->error_pos);
        assert_true(al_str_eq(a->error, b->error));
        for (size_t k = 0; k < a->n_stmts; k++) {
            assert_int_equal(a->stmts[k].cls, b->stmts[k].cls);
            assert_int_equal(a->stmts[k].offset, b->stmts[k].offset);
            assert_int_equal(a->stmts[k].len, b->stmts[k].len);
            assert_int_equal(a->stmts[k].n_funcs, b->stmts[k].n_funcs);
            for (size_t f = 0; f < a->stmts[k].n_funcs; f++)
                assert_int_equal(a->stmts[k].funcs[f].cls, b->stmts[k].funcs[f].cls);
        }
        for (size_t t = 0; t < a->n_tables; t++) {
            assert_true(al_str_eq(a->tables[t].schema, b->tables[t].schema));
            assert_true(al_str_eq(a->tables[t].name, b->tables[t].name));
        }
    }
    al_sql_cache_stats_t s = stats(c);
    assert_true(s.hits > 0 && s.evictions > 0);
    assert_int_equal(s.hits + s.misses, 2000);
    al_sql_free(&c);
    al_sql_free(&u);
    AL_UNUSED(state);
}

/* The internal cache directly: a block over the byte bound is refused and
 * freed (ASan would report a leak). */
static void test_put_oversized(void **state)
{
    al__sql_cache_t *cache = al__sql_cache_new(4, 100);
    assert_non_null(cache);
    uint64_t h = 0;
    assert_null(al__sql_cache_get(cache, "x", 1, AL_SQL_READ, &h));
    al__sql_block_t blk = {al_malloc(200), 200};
    assert_non_null(blk.mem);
    memset(blk.mem, 0, 200);
    assert_null(al__sql_cache_put(cache, blk, h, (char *)blk.mem + 190, 1, AL_SQL_READ));
    al_sql_cache_stats_t s;
    al__sql_cache_stats(cache, &s);
    assert_int_equal(s.entries, 0);
    assert_int_equal(s.bytes, 0);
    al__sql_cache_free(&cache);
    assert_null(cache);
    /* sizes the cache refuses */
    assert_null(al__sql_cache_new(0, 100));
    AL_UNUSED(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_siphash_vectors),
        cmocka_unit_test(test_hit),
        cmocka_unit_test(test_key_has_default_class),
        cmocka_unit_test(test_execute_on_hit),
        cmocka_unit_test(test_entry_bound_lru),
        cmocka_unit_test(test_byte_bound),
        cmocka_unit_test(test_max_text_not_cached),
        cmocka_unit_test(test_no_cache),
        cmocka_unit_test(test_same_answers_under_churn),
        cmocka_unit_test(test_put_oversized),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
