/* test_audit_cli.c - `airlock audit verify|query` end to end through
 * al_cmd_audit: exit codes, output, JSON shape, and reading while a writer
 * has the store open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>

#include "audit_test.h"
#include "cli/cli.h"

typedef struct run {
    int rc;
    char out[65536];
    char errs[8192];
} run_t;

static void slurp(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* Runs al_cmd_audit with stdout and stderr captured in files. */
static void run(const tdir_t *t, run_t *r, int argc, const char **argv)
{
    char po[128], pe[128];
    snprintf(po, sizeof po, "%s/out.txt", t->dir);
    snprintf(pe, sizeof pe, "%s/err.txt", t->dir);
    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2);
    int fo = open(po, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int fe = open(pe, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fo, 1);
    dup2(fe, 2);
    r->rc = al_cmd_audit(argc, (char **)argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    close(fo);
    close(fe);
    slurp(po, r->out, sizeof r->out);
    slurp(pe, r->errs, sizeof r->errs);
    unlink(po);
    unlink(pe);
}

static void write_config(const tdir_t *t, char *cfg, size_t cap)
{
    snprintf(cfg, cap, "%s/airlock.yaml", t->dir);
    FILE *f = fopen(cfg, "w");
    assert_non_null(f);
    fprintf(f, "server:\n  data_dir: %s\n", t->dir);
    fclose(f);
}

static al_audit_t *writer_for(const char *cfgpath)
{
    al_config_errors_t errs;
    al_config_t *cfg = al_config_load(cfgpath, &errs);
    assert_non_null(cfg);
    char path[256];
    assert_non_null(al_audit_path(cfg, path, sizeof path));
    al_audit_opts_t o = {.path = path};
    al_audit_t *a = NULL;
    char err[AL_AUDIT_ERR_SIZE];
    if (al_audit_open(&o, &a, err, sizeof err) != AL_OK)
        fail_msg("%s", err);
    al_config_free(cfg);
    return a;
}

static void add(al_audit_t *a, const char *agent, const char *decision, const char *table,
                const char *sql)
{
    al_audit_event_t ev;
    al_audit_event_init(&ev);
    ev.agent = agent;
    ev.session_id = "sess-1";
    ev.target = "orders-db";
    ev.protocol = "postgres";
    ev.decision = decision;
    ev.rule = "r1";
    ev.reason = "because";
    ev.cls = "read";
    ev.tables = &table;
    ev.n_tables = 1;
    ev.action = al_str_c(sql);
    char err[AL_AUDIT_ERR_SIZE];
    if (al_audit_write_sync(a, &ev, NULL, err, sizeof err) != AL_OK)
        fail_msg("%s", err);
}

static void test_verify_and_query(void **st)
{
    (void)st;
    tdir_t t;
    tdir_make(&t);
    char cfg[128];
    write_config(&t, cfg, sizeof cfg);
    run_t *r = calloc(1, sizeof *r);

    /* No store yet: a clear error, exit 2, not "intact". */
    const char *verify[] = {"audit", "verify", "-c", cfg};
    run(&t, r, 4, verify);
    assert_int_equal(r->rc, 2);
    assert_non_null(strstr(r->errs, "audit.db"));

    al_audit_t *a = writer_for(cfg);
    add(a, "report-bot", "allow", "public.orders", "SELECT * FROM orders");
    add(a, "etl-bot", "deny", "public.customers", "DELETE FROM customers");
    add(a, "report-bot", "allow", "sales.orders", "SELECT 1 FROM sales.orders\nWHERE x");

    /* The writer is still open: read-only readers work alongside it. */
    run(&t, r, 4, verify);
    assert_int_equal(r->rc, 0);
    assert_non_null(strstr(r->out, "audit chain intact: 3 events, head "));

    const char *q1[] = {"audit", "query", "-c", cfg, "--table", "public.orders", "--json"};
    run(&t, r, 7, q1);
    assert_int_equal(r->rc, 0);
    json_error_t je;
    json_t *j = json_loads(r->out, 0, &je);
    if (!j)
        fail_msg("not JSON (%s): %s", je.text, r->out);
    assert_true(json_is_array(j));
    assert_int_equal(json_array_size(j), 1);
    json_t *e = json_array_get(j, 0);
    assert_string_equal(json_string_value(json_object_get(e, "agent")), "report-bot");
    assert_string_equal(json_string_value(json_object_get(e, "action")), "SELECT * FROM orders");
    assert_string_equal(json_string_value(json_object_get(e, "decision")), "allow");
    assert_string_equal(json_string_value(json_object_get(e, "session_id")), "sess-1");
    assert_string_equal(json_string_value(json_object_get(e, "target")), "orders-db");
    assert_string_equal(json_string_value(json_object_get(e, "protocol")), "postgres");
    assert_string_equal(json_string_value(json_object_get(e, "class")), "read");
    assert_string_equal(json_string_value(json_object_get(e, "rule")), "r1");
    assert_string_equal(json_string_value(json_object_get(e, "reason")), "because");
    assert_int_equal(json_array_size(json_object_get(e, "tables")), 1);
    const char *time = json_string_value(json_object_get(e, "time"));
    assert_non_null(time);
    assert_int_equal(strlen(time), 27); /* 2024-07-03T09:46:40.123456Z */
    assert_int_equal(time[26], 'Z');
    assert_int_equal(strlen(json_string_value(json_object_get(e, "id"))), 36);
    json_decref(j);

    const char *q2[] = {"audit", "query", "-c", cfg, "--agent", "report-bot", "--since", "1h",
                        "--json"};
    run(&t, r, 9, q2);
    assert_int_equal(r->rc, 0);
    j = json_loads(r->out, 0, &je);
    assert_non_null(j);
    assert_int_equal(json_array_size(j), 2);
    json_decref(j);

    const char *q3[] = {"audit", "query", "-c", cfg, "--decision", "deny"};
    run(&t, r, 6, q3);
    assert_int_equal(r->rc, 0);
    assert_non_null(strstr(r->out, "TIME"));
    assert_non_null(strstr(r->out, "ACTION"));
    assert_non_null(strstr(r->out, "etl-bot"));
    assert_non_null(strstr(r->out, "DELETE FROM customers"));
    assert_null(strstr(r->out, "report-bot"));
    assert_non_null(strstr(r->out, "(1 event, newest first)"));

    const char *q4[] = {"audit", "query", "-c", cfg, "--agent", "nobody", "--json"};
    run(&t, r, 7, q4);
    assert_int_equal(r->rc, 0);
    assert_string_equal(r->out, "[]\n");

    /* Agent-written text cannot drive the terminal: ESC and C1 CSI become
     * spaces in the table (JSON escapes them). */
    add(a, "evil-bot", "deny", "t", "SELECT '\x1b[2J\xc2\x9b" "31m' -- caf\xc3\xa9");
    const char *q5[] = {"audit", "query", "-c", cfg, "--agent", "evil-bot"};
    run(&t, r, 6, q5);
    assert_int_equal(r->rc, 0);
    assert_null(strchr(r->out, 0x1b));
    assert_null(strstr(r->out, "\xc2\x9b"));
    assert_non_null(strstr(r->out, "SELECT ' [2J 31m' -- caf\xc3\xa9"));

    /* Tamper with the middle event while the writer still runs. */
    sqlite3 *db = db_open(t.db);
    db_exec(db, "UPDATE audit_event SET decision = 'allow' WHERE seq = 2");
    sqlite3_close(db);
    run(&t, r, 4, verify);
    assert_int_equal(r->rc, 1);
    assert_non_null(strstr(r->out, "audit chain BROKEN at event seq 2"));
    assert_non_null(strstr(r->out, "edited"));
    assert_non_null(strstr(r->out, "1 event before it is intact"));

    /* --store reads another file (e.g. a copy) without the config. */
    const char *v2[] = {"audit", "verify", "--store", t.db};
    run(&t, r, 4, v2);
    assert_int_equal(r->rc, 1);
    al_audit_close(&a);

    /* usage and config errors exit 2 */
    const char *bad[][8] = {
        {"audit"},
        {"audit", "frobnicate", "-c", cfg},
        {"audit", "verify"},
        {"audit", "query", "-c", cfg, "--limit", "0"},
        {"audit", "query", "-c", cfg, "--since", "soon"},
        {"audit", "query", "-c", cfg, "--agent"},
        {"audit", "verify", "-c", cfg, "--table", "x"},
        {"audit", "verify", "-c", "/nonexistent/airlock.yaml"},
    };
    const int argcs[] = {1, 4, 2, 6, 6, 5, 6, 4};
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
        run(&t, r, argcs[i], bad[i]);
        if (r->rc != 2)
            fail_msg("case %zu exited %d", i, r->rc);
        assert_true(strlen(r->errs) > 0);
    }
    const char *help[] = {"audit", "query", "--help"};
    run(&t, r, 3, help);
    assert_int_equal(r->rc, 0);
    assert_non_null(strstr(r->out, "usage: airlock audit"));
    free(r);
    tdir_remove(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verify_and_query),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
