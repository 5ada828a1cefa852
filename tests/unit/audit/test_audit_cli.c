/* test_audit_cli.c - `airlock audit verify|query` end to end through
 * al_cmd_audit: exit codes, output, JSON shape, and reading while a writer
 * has the store open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <sys/stat.h>

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

/* ---- recordings ---------------------------------------------------------------- */

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    return flag == FTW_DP ? rmdir(p) : unlink(p);
}

static void rm_tree(const char *dir) { nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

#define SID1 "0193a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b"
#define SID2 "0193a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2c"
#define REL1 "2026/11/23/" SID1 ".jsonl.gz"
#define REL2 "2026/11/23/" SID2 ".jsonl.gz"

/* Writes <base>/<rel> and returns its SHA-256 in hex. */
static void put_recording(const char *base, const char *rel, const char *content, char hex[65])
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", base, rel);
    char *slash = strrchr(p, '/');
    *slash = '\0';
    assert_int_equal(al_mkdir_p(p, 0700), AL_OK);
    *slash = '/';
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
    uint8_t h[32];
    al_sha256(content, strlen(content), h);
    al_hex(h, 32, hex);
}

static void add_rec_event(al_audit_t *a, const char *kind, const char *sid, const char *rel,
                          const char *sha)
{
    al_audit_event_t ev;
    al_audit_event_init(&ev);
    ev.kind = kind;
    ev.session_id = sid;
    ev.protocol = "postgres";
    ev.target = "orders-db";
    bool removal = !strcmp(kind, AL_AUDIT_KIND_RECORDING);
    ev.action = al_str_c(removal ? "remove" : "session");
    ev.reason = removal ? "retention: older than 90d" : "client closed";
    ev.recording = rel;
    ev.recording_sha256 = sha;
    char err[AL_AUDIT_ERR_SIZE];
    if (al_audit_write_sync(a, &ev, NULL, err, sizeof err) != AL_OK)
        fail_msg("%s", err);
}

static void test_verify_recordings(void **st)
{
    (void)st;
    tdir_t t;
    tdir_make(&t);
    char cfg[128], recdir[128], p[512], h1[65], h2[65];
    write_config(&t, cfg, sizeof cfg);
    snprintf(recdir, sizeof recdir, "%s/recordings", t.dir);
    run_t *r = calloc(1, sizeof *r);
    const char *verify[] = {"audit", "verify", "-c", cfg};

    al_audit_t *a = writer_for(cfg);
    add(a, "report-bot", "allow", "public.orders", "SELECT 1");
    /* no session events: as before, nothing said about recordings */
    run(&t, r, 4, verify);
    assert_int_equal(r->rc, 0);
    assert_null(strstr(r->out, "recording"));

    put_recording(recdir, REL1, "{\"type\":\"session\"}\n", h1);
    add_rec_event(a, "session_end", SID1, REL1, h1); /* seq 2 */
    run(&t, r, 4, verify);
    assert_int_equal(r->rc, 0);
    assert_non_null(strstr(r->out, "audit chain intact: 2 events"));
    assert_non_null(strstr(r->out, "recordings intact: 1 checked, 0 removed by retention"));

    /* one byte changed */
    snprintf(p, sizeof p, "%s/%s", recdir, REL1);
    FILE *f = fopen(p, "r+");
    assert_non_null(f);
    fputc('X', f);
    fclose(f);
    run(&t, r, 4, verify);
    assert_int_equal(r->rc, 1);
    assert_non_null(strstr(r->out, "audit chain intact: 2 events"));
    assert_non_null(strstr(r->out, "recording changed: " REL1 " (session " SID1 ", audit seq 2)\n"));
    assert_non_null(strstr(r->out, "recordings: 1 problem; 0 checked intact"));

    /* a link in its place, even to the right content */
    char elsewhere[512];
    snprintf(elsewhere, sizeof elsewhere, "%s/elsewhere.gz", t.dir);
    put_recording(t.dir, "elsewhere.gz", "{\"type\":\"session\"}\n", h2);
    assert_string_equal(h1, h2);
    unlink(p);
    assert_int_equal(symlink(elsewhere, p), 0);
    run(&t, r, 4, verify);
    assert_int_equal(r->rc, 1);
    assert_non_null(strstr(r->out, "recording changed: " REL1 " (session " SID1 ", audit seq 2): "
                                   "a symbolic link or not a regular file"));
    /* ... or a linked day directory */
    unlink(p);
    snprintf(p, sizeof p, "%s/2026/11/23", recdir);
    rmdir(p);
    char day[512];
    snprintf(day, sizeof day, "%s/day", t.dir);
    put_recording(day, SID1 ".jsonl.gz", "{\"type\":\"session\"}\n", h2);
    assert_int_equal(symlink(day, p), 0);
    run(&t, r, 4, verify);
    assert_int_equal(r->rc, 1);
    assert_non_null(strstr(r->out, "recording changed: " REL1));
    unlink(p);

    /* missing (the day directory too) */
    run(&t, r, 4, verify);
    assert_int_equal(r->rc, 1);
    assert_non_null(strstr(r->out, "recording missing: " REL1 " (session " SID1 ", audit seq 2)\n"));
    /* --recordings points elsewhere: there it is */
    char other[128];
    snprintf(other, sizeof other, "%s/copy", t.dir);
    put_recording(other, REL1, "{\"type\":\"session\"}\n", h2);
    const char *v_other[] = {"audit", "verify", "-c", cfg, "--recordings", other};
    run(&t, r, 6, v_other);
    assert_int_equal(r->rc, 0);
    assert_non_null(strstr(r->out, "recordings intact: 1 checked"));
    assert_non_null(strstr(r->out, other));

    /* a later removal by retention, with the same hash, excuses it */
    add_rec_event(a, "recording", NULL, REL1, h1); /* seq 3 */
    run(&t, r, 4, verify);
    assert_int_equal(r->rc, 0);
    assert_non_null(strstr(r->out, "recordings intact: 0 checked, 1 removed by retention"));

    /* a removal BEFORE the session does not; nor one with another hash */
    put_recording(recdir, REL2, "second", h2);
    add_rec_event(a, "recording", NULL, REL2, h2);  /* seq 4, before the session */
    add_rec_event(a, "session_end", SID2, REL2, h2);    /* seq 5 */
    run(&t, r, 4, verify);
    assert_int_equal(r->rc, 0);
    assert_non_null(strstr(r->out, "recordings intact: 1 checked, 1 removed by retention"));
    add_rec_event(a, "recording", NULL, REL2, h1);  /* seq 6: another hash */
    run(&t, r, 4, verify);
    assert_int_equal(r->rc, 1);
    assert_non_null(strstr(r->out, "recording changed before removal: " REL2 " (session " SID2
                                   ", audit seq 5): removed at audit seq 6\n"));

    /* untrusted paths are refused before they reach the file system, and
     * shown without control bytes */
    static const char *const bad[] = {
        "../../etc/passwd", "/etc/passwd", "2026/11/23/../../../../etc/passwd",
        "2026/11/23/" SID1 ".jsonl.gz/..", "2026/11/23/" SID1 ".txt", "2026/1/23/" SID1 ".jsonl.gz",
        "2026/11/23/sub/" SID1 ".jsonl.gz", "2026/11/23/\x1b[2J-3d4-7e5f-8a6b-7c8d9e0f1a2b.jsonl.gz",
        "",
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
        char sha[65];
        put_recording(t.dir, "x", "y", sha);
        tdir_t t2;
        tdir_make(&t2);
        char cfg2[128];
        write_config(&t2, cfg2, sizeof cfg2);
        al_audit_t *a2 = writer_for(cfg2);
        add_rec_event(a2, "session_end", SID1, bad[i], sha);
        al_audit_close(&a2);
        const char *v2[] = {"audit", "verify", "-c", cfg2};
        run(&t2, r, 4, v2);
        if (r->rc != 1 || !strstr(r->out, "recording path invalid: "))
            fail_msg("case %zu (%s): rc %d, %s", i, bad[i], r->rc, r->out);
        assert_null(strchr(r->out, 0x1b));
        rm_tree(t2.dir);
    }
    assert_non_null(strstr(r->out, "recording path invalid:  (session " SID1 ", audit seq 1)"));

    /* a hash that is not 64 lower-case hex digits */
    tdir_t t3;
    tdir_make(&t3);
    char cfg3[128];
    write_config(&t3, cfg3, sizeof cfg3);
    al_audit_t *a3 = writer_for(cfg3);
    snprintf(p, sizeof p, "%s/recordings", t3.dir);
    put_recording(p, REL1, "z", h2);
    for (char *c = h2; *c; c++)
        if (*c >= 'a' && *c <= 'f')
            *c = (char)(*c - 'a' + 'A');
    add_rec_event(a3, "session_end", SID1, REL1, h2);
    add_rec_event(a3, "session_end", SID1, REL1, NULL);
    al_audit_close(&a3);
    const char *v3[] = {"audit", "verify", "-c", cfg3};
    run(&t3, r, 4, v3);
    assert_int_equal(r->rc, 1);
    assert_non_null(strstr(r->out, "recording hash invalid: " REL1 " (session " SID1 ", audit seq 1)"));
    assert_non_null(strstr(r->out, "recording hash invalid: " REL1 " (session " SID1 ", audit seq 2)"));
    assert_non_null(strstr(r->out, "recordings: 2 problems"));
    /* --store alone: the recordings beside the store */
    const char *v4[] = {"audit", "verify", "--store", t3.db};
    run(&t3, r, 4, v4);
    assert_int_equal(r->rc, 1);
    assert_non_null(strstr(r->out, "recording hash invalid"));
    rm_tree(t3.dir);

    al_audit_close(&a);
    rm_tree(t.dir);
    free(r);
}

/* ---- the library: callback order, and retention racing with verify ------------- */

typedef struct seen {
    al_audit_rec_problem_t what[8];
    int64_t seq[8];
    size_t n;
} seen_t;

static void on_problem(void *ud, al_audit_rec_problem_t what, int64_t seq, const char *line)
{
    seen_t *s = ud;
    assert_true(s->n < 8);
    assert_non_null(strstr(line, al_audit_rec_problem_str(what)));
    s->what[s->n] = what;
    s->seq[s->n++] = seq;
}

/* A store that appends a removal event when the second walk starts: what
 * a gateway's retention does when it runs while verify walks. */
typedef struct racing {
    al_audit_store_t base;
    al_audit_store_t *inner;
    int walks;
    const char *rel, *sha;
} racing_t;

static int racing_iterate(al_audit_store_t *b, int64_t after, al_audit_row_cb cb, void *ud,
                          char *err, size_t cap)
{
    racing_t *s = (racing_t *)b;
    if (++s->walks == 2) {
        al_audit_event_t ev;
        al_audit_event_init(&ev);
        snprintf(ev.id, sizeof ev.id, "0193a1b2-c3d4-7e5f-8a6b-000000000001");
        ev.time_us = 1795452001000000;
        ev.kind = AL_AUDIT_KIND_RECORDING;
        ev.recording = s->rel;
        ev.recording_sha256 = s->sha;
        const al_audit_event_t *evs[] = {&ev};
        assert_int_equal(s->inner->ops->append(s->inner, evs, 1, err, cap), AL_OK);
    }
    return s->inner->ops->iterate(s->inner, after, cb, ud, err, cap);
}

static void test_verify_recordings_lib(void **st)
{
    (void)st;
    tdir_t t;
    tdir_make(&t);
    char cfg[128], recdir[128], h1[65], h2[65];
    write_config(&t, cfg, sizeof cfg);
    snprintf(recdir, sizeof recdir, "%s/recordings", t.dir);
    al_audit_t *a = writer_for(cfg);
    put_recording(recdir, REL1, "one", h1);
    put_recording(recdir, REL2, "two", h2);
    add_rec_event(a, "session_end", SID1, "../x", h1);         /* 1: invalid */
    add_rec_event(a, "session_end", SID2, REL2, h1);           /* 2: changed */
    add_rec_event(a, "session", SID1, REL1, h1);           /* 3: ok (any kind counts) */
    add_rec_event(a, "session_end", SID1, "2026/11/24/" SID1 ".jsonl.gz", h1); /* 4: missing */
    al_audit_close(&a);

    al_audit_store_t *s = NULL;
    char err[AL_AUDIT_ERR_SIZE];
    assert_int_equal(al_audit_store_open(t.db, NULL, false, &s, err, sizeof err), AL_OK);
    seen_t seen = {0};
    al_audit_rec_verify_t v;
    assert_int_equal(al_audit_verify_recordings(s, recdir, on_problem, &seen, &v, err, sizeof err),
                     AL_OK);
    assert_int_equal(v.named, 4);
    assert_int_equal(v.checked, 1);
    assert_int_equal(v.removed, 0);
    assert_int_equal(v.problems, 3);
    assert_int_equal(seen.n, 3);
    assert_int_equal(seen.what[0], AL_AUDIT_REC_PATH_INVALID);
    assert_int_equal(seen.seq[0], 1);
    assert_int_equal(seen.what[1], AL_AUDIT_REC_CHANGED);
    assert_int_equal(seen.seq[1], 2);
    assert_int_equal(seen.what[2], AL_AUDIT_REC_MISSING);
    assert_int_equal(seen.seq[2], 4);

    /* retention removes REL2 while verify walks: its removal event lands
     * after the first walk, and the file is gone; no false alarm for it */
    char p[512];
    snprintf(p, sizeof p, "%s/%s", recdir, REL2);
    unlink(p);
    al_audit_store_ops_t ops = *s->ops;
    ops.iterate = racing_iterate;
    racing_t rs = {.base = {.ops = &ops, .where = s->where}, .inner = s, .rel = REL2, .sha = h1};
    memset(&seen, 0, sizeof seen);
    assert_int_equal(al_audit_verify_recordings(&rs.base, recdir, on_problem, &seen, &v, err,
                                                sizeof err), AL_OK);
    assert_true(rs.walks >= 3);
    assert_int_equal(v.removed, 1);
    assert_int_equal(seen.n, 2);
    assert_int_equal(seen.what[0], AL_AUDIT_REC_PATH_INVALID);
    assert_int_equal(seen.what[1], AL_AUDIT_REC_MISSING);
    assert_int_equal(seen.seq[1], 4);

    /* an unreadable recordings directory is an error, not "missing" */
    char notdir[128];
    snprintf(notdir, sizeof notdir, "%s/audit.db", t.dir);
    assert_int_equal(al_audit_verify_recordings(s, notdir, NULL, NULL, &v, err, sizeof err), AL_ERR);
    assert_non_null(strstr(err, "recordings directory"));
    al_audit_store_close(&s);
    rm_tree(t.dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verify_and_query),
        cmocka_unit_test(test_verify_recordings),
        cmocka_unit_test(test_verify_recordings_lib),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
