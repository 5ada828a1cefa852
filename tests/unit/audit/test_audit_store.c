/* test_audit_store.c - the SQLite store under the writer: every field round
 * trips, truncation, query filters, the chain across reopen, tampering
 * found by verify, and each way a commit can fail (read-only, full disk,
 * lock timeout) reported to every strict caller of the batch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "audit_test.h"

static al_audit_t *open_writer(const char *path, const al_audit_opts_t *in)
{
    al_audit_opts_t o = {0};
    if (in)
        o = *in;
    o.path = path;
    al_audit_t *a = NULL;
    char err[AL_AUDIT_ERR_SIZE];
    if (al_audit_open(&o, &a, err, sizeof err) != AL_OK)
        fail_msg("open: %s", err);
    return a;
}

static void write_ok(al_audit_t *a, const al_audit_event_t *ev, char id[AL_AUDIT_ID_SIZE])
{
    char err[AL_AUDIT_ERR_SIZE];
    if (al_audit_write_sync(a, ev, id, err, sizeof err) != AL_OK)
        fail_msg("write: %s", err);
}

static al_audit_store_t *open_ro(const char *path)
{
    al_audit_store_t *s = NULL;
    char err[AL_AUDIT_ERR_SIZE];
    if (al_audit_store_open(path, NULL, true, &s, err, sizeof err) != AL_OK)
        fail_msg("open read-only: %s", err);
    return s;
}

/* ---- collecting rows --------------------------------------------------------- */

typedef struct rows {
    int64_t seq[64];
    char id[64][AL_AUDIT_ID_SIZE];
    size_t n;
} rows_t;

static int collect(void *ud, const al_audit_row_t *row)
{
    rows_t *r = ud;
    assert_true(r->n < 64);
    r->seq[r->n] = row->seq;
    snprintf(r->id[r->n], AL_AUDIT_ID_SIZE, "%s", row->ev.id);
    r->n++;
    return AL_OK;
}

static size_t query_n(al_audit_store_t *s, const al_audit_filter_t *f, rows_t *r)
{
    memset(r, 0, sizeof *r);
    char err[AL_AUDIT_ERR_SIZE];
    if (al_audit_store_query(s, f, collect, r, err, sizeof err) != AL_OK)
        fail_msg("query: %s", err);
    return r->n;
}

static void assert_str_or_null(const char *got, const char *want)
{
    if (!want)
        assert_null(got);
    else
        assert_string_equal(got, want);
}

typedef struct rt_check {
    const al_audit_event_t *want;
    const char *id;
    int seen;
} rt_check_t;

static int check_full(void *ud, const al_audit_row_t *row)
{
    rt_check_t *c = ud;
    const al_audit_event_t *w = c->want, *g = &row->ev;
    assert_null(row->decode_error);
    assert_string_equal(g->id, c->id);
    assert_true(g->time_us > 1700000000000000);
    assert_str_or_null(g->kind, w->kind);
    assert_str_or_null(g->session_id, w->session_id);
    assert_str_or_null(g->agent, w->agent);
    assert_str_or_null(g->subject, w->subject);
    assert_str_or_null(g->issuer, w->issuer);
    assert_int_equal(g->n_groups, w->n_groups);
    for (size_t i = 0; i < w->n_groups; i++)
        assert_string_equal(g->groups[i], w->groups[i]);
    assert_int_equal(g->groups_truncated, false);
    assert_str_or_null(g->target, w->target);
    assert_str_or_null(g->protocol, w->protocol);
    assert_int_equal(g->action.len, w->action.len);
    assert_memory_equal(g->action.p, w->action.p, w->action.len);
    assert_int_equal(g->action_truncated, false);
    assert_str_or_null(g->cls, w->cls);
    assert_int_equal(g->n_tables, w->n_tables);
    for (size_t i = 0; i < w->n_tables; i++)
        assert_string_equal(g->tables[i], w->tables[i]);
    assert_str_or_null(g->decision, w->decision);
    assert_str_or_null(g->rule, w->rule);
    assert_str_or_null(g->reason, w->reason);
    assert_str_or_null(g->approval_id, w->approval_id);
    assert_str_or_null(g->ref_id, w->ref_id);
    assert_int_equal(g->rows, w->rows);
    assert_int_equal(g->bytes_up, w->bytes_up);
    assert_int_equal(g->bytes_down, w->bytes_down);
    assert_str_or_null(g->status, w->status);
    assert_int_equal(g->duration_us, w->duration_us);
    assert_str_or_null(g->error, w->error);
    assert_str_or_null(g->recording, w->recording);
    assert_str_or_null(g->recording_sha256, w->recording_sha256);
    assert_int_equal(row->prev_len, 32);
    assert_int_equal(row->hash_len, 32);
    c->seen++;
    return AL_OK;
}

static void test_round_trip_every_field(void **st)
{
    (void)st;
    tdir_t t;
    tdir_make(&t);
    al_audit_t *a = open_writer(t.db, NULL);
    al_audit_event_t ev, bare;
    full_event(&ev);
    char id1[AL_AUDIT_ID_SIZE], id2[AL_AUDIT_ID_SIZE];
    write_ok(a, &ev, id1);
    al_audit_event_init(&bare); /* every optional field absent */
    write_ok(a, &bare, id2);
    al_audit_close(&a);

    /* The file is private to the gateway's user. */
    struct stat sb;
    assert_int_equal(stat(t.db, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);

    al_audit_store_t *s = open_ro(t.db);
    char err[AL_AUDIT_ERR_SIZE];
    rt_check_t c = {.want = &ev, .id = id1};
    /* iterate from seq 0 would include the bare event; after_seq 0 then
     * look only at the first row through a filter. */
    al_audit_filter_t f = {.session_id = "sess-42"};
    assert_int_equal(al_audit_store_query(s, &f, check_full, &c, err, sizeof err), AL_OK);
    assert_int_equal(c.seen, 1);
    bare.kind = AL_AUDIT_KIND_DECISION; /* the default kind */
    c = (rt_check_t){.want = &bare, .id = id2};
    assert_int_equal(al_audit_store_iterate(s, 1, check_full, &c, err, sizeof err), AL_OK);
    assert_int_equal(c.seen, 1);

    /* The JSON export carries them too. */
    al_buf_t b;
    al_buf_init(&b);
    f = (al_audit_filter_t){.agent = "report-bot"};
    assert_int_equal(al_audit_query_json(s, &f, &b, err, sizeof err), AL_OK);
    assert_non_null(strstr(b.p, "\"session_id\":\"sess-42\""));
    assert_non_null(strstr(b.p, "\"tables\":[\"public.orders\",\"customers\"]"));
    assert_non_null(strstr(b.p, "\"approval_id\":\"appr-7\""));
    assert_non_null(strstr(b.p, "\"duration_ms\":12.345"));
    assert_non_null(strstr(b.p, "\"bytes_up\":345,\"bytes_down\":67890"));
    assert_non_null(strstr(b.p, "\"recording\":\"2024/07/03/0190f5c2-7d3a-7b4e-8c1d-2e3f4a5b6c7d"
                                ".jsonl.gz\",\"recording_sha256\":\"9f86d081"));
    assert_int_equal(b.p[0], '[');
    al_buf_free(&b);
    al_audit_store_close(&s);
    assert_null(s);
    tdir_remove(&t);
}

typedef struct trunc_check {
    size_t action_len;
    bool action_tr, tables_tr, groups_tr;
    size_t n_tables, n_groups, agent_len;
} trunc_check_t;

static int get_trunc(void *ud, const al_audit_row_t *row)
{
    trunc_check_t *c = ud;
    c->action_len = row->ev.action.len;
    c->action_tr = row->ev.action_truncated;
    c->tables_tr = row->ev.tables_truncated;
    c->groups_tr = row->ev.groups_truncated;
    c->n_tables = row->ev.n_tables;
    c->n_groups = row->ev.n_groups;
    c->agent_len = row->ev.agent ? strlen(row->ev.agent) : 0;
    return AL_OK;
}

static void test_truncation(void **st)
{
    (void)st;
    tdir_t t;
    tdir_make(&t);
    al_audit_opts_t o = {.max_action_bytes = 10};
    al_audit_t *a = open_writer(t.db, &o);
    al_audit_event_t ev;
    al_audit_event_init(&ev);
    /* 9 ASCII bytes then a 2-byte character straddling the 10-byte cap:
     * the cut backs off to 9 rather than split it. */
    ev.action = AL_STR("SELECT 12\xc3\xa9 more text");
    ev.agent = "an-agent-name-longer-than-ten";
    const char *many[AL_AUDIT_MAX_LIST + 5];
    for (size_t i = 0; i < AL_ARRAY_LEN(many); i++)
        many[i] = "t";
    ev.tables = many;
    ev.n_tables = AL_ARRAY_LEN(many);
    ev.groups = many;
    ev.n_groups = 3;
    write_ok(a, &ev, NULL);
    ev.action = AL_STR("short");
    ev.n_tables = 1;
    write_ok(a, &ev, NULL);
    al_audit_close(&a);

    al_audit_store_t *s = open_ro(t.db);
    char err[AL_AUDIT_ERR_SIZE];
    trunc_check_t c = {0};
    assert_int_equal(al_audit_store_iterate(s, 0, get_trunc, &c, err, sizeof err), AL_OK);
    /* the last row walked is the short one */
    assert_int_equal(c.action_len, 5);
    assert_false(c.action_tr);
    assert_false(c.tables_tr);
    assert_int_equal(c.n_tables, 1);
    c = (trunc_check_t){0};
    al_audit_filter_t f = {.limit = 1, .before_seq = 2};
    assert_int_equal(al_audit_store_query(s, &f, get_trunc, &c, err, sizeof err), AL_OK);
    assert_int_equal(c.action_len, 9);
    assert_true(c.action_tr);
    assert_true(c.tables_tr);
    assert_int_equal(c.n_tables, AL_AUDIT_MAX_LIST);
    assert_false(c.groups_tr);
    assert_int_equal(c.n_groups, 3);
    assert_int_equal(c.agent_len, 10); /* other text fields are capped too */
    al_audit_verify_t v;
    assert_int_equal(al_audit_verify(s, &v, err, sizeof err), AL_OK);
    assert_true(v.intact);
    al_audit_store_close(&s);
    tdir_remove(&t);
}

/* ---- filters ------------------------------------------------------------------- */

static void put_event(al_audit_t *a, const char *agent, const char *target, const char *decision,
                      const char *table, int64_t t_us, char id[AL_AUDIT_ID_SIZE])
{
    al_audit_event_t ev;
    al_audit_event_init(&ev);
    ev.agent = agent;
    ev.target = target;
    ev.decision = decision;
    ev.time_us = t_us;
    ev.tables = &table;
    ev.n_tables = table ? 1 : 0;
    ev.action = AL_STR("SELECT 1");
    ev.kind = strcmp(decision, "ok") ? AL_AUDIT_KIND_DECISION : AL_AUDIT_KIND_RESULT;
    write_ok(a, &ev, id);
}

static void test_query_filters(void **st)
{
    (void)st;
    tdir_t t;
    tdir_make(&t);
    al_audit_t *a = open_writer(t.db, NULL);
    int64_t t0 = 1720000000000000;
    char ids[8][AL_AUDIT_ID_SIZE];
    put_event(a, "bot-a", "pg", "allow", "public.orders", t0, ids[0]);
    put_event(a, "bot-b", "pg", "deny", "orders", t0 + 1000000, ids[1]);
    put_event(a, "bot-a", "api", "allow", "sales.orders", t0 + 2000000, ids[2]);
    put_event(a, "bot-a", "pg", "ok", "public.orders_archive", t0 + 3000000, ids[3]);
    put_event(a, "bot-c", "pg", "allow", "public.customers", t0 + 4000000, ids[4]);
    put_event(a, "bot-a\"x", "pg", "allow", NULL, t0 + 5000000, ids[5]);
    al_audit_close(&a);

    al_audit_store_t *s = open_ro(t.db);
    rows_t r;
    al_audit_filter_t f = {0};
    assert_int_equal(query_n(s, &f, &r), 6);
    assert_int_equal(r.seq[0], 6); /* newest first */
    assert_int_equal(r.seq[5], 1);

    f = (al_audit_filter_t){.agent = "bot-a"};
    assert_int_equal(query_n(s, &f, &r), 3);
    assert_string_equal(r.id[0], ids[3]);
    assert_string_equal(r.id[2], ids[0]);

    f = (al_audit_filter_t){.table = "public.orders"};
    assert_int_equal(query_n(s, &f, &r), 2); /* public.orders and unqualified orders */
    assert_string_equal(r.id[0], ids[1]);
    assert_string_equal(r.id[1], ids[0]);
    f = (al_audit_filter_t){.table = "orders"};
    assert_int_equal(query_n(s, &f, &r), 3); /* + sales.orders; never orders_archive */
    f = (al_audit_filter_t){.table = "orders", .limit = 2};
    assert_int_equal(query_n(s, &f, &r), 2);
    assert_string_equal(r.id[0], ids[2]);
    f = (al_audit_filter_t){.table = "customers", .agent = "bot-a"};
    assert_int_equal(query_n(s, &f, &r), 0);

    f = (al_audit_filter_t){.decision = "deny"};
    assert_int_equal(query_n(s, &f, &r), 1);
    assert_string_equal(r.id[0], ids[1]);
    f = (al_audit_filter_t){.target = "pg", .decision = "allow"};
    assert_int_equal(query_n(s, &f, &r), 3);
    f = (al_audit_filter_t){.kind = "result"};
    assert_int_equal(query_n(s, &f, &r), 1);
    assert_string_equal(r.id[0], ids[3]);
    f = (al_audit_filter_t){.since_us = t0 + 2000000, .until_us = t0 + 4000000};
    assert_int_equal(query_n(s, &f, &r), 2);
    assert_string_equal(r.id[0], ids[3]);
    assert_string_equal(r.id[1], ids[2]);
    f = (al_audit_filter_t){.before_seq = 3, .limit = 1};
    assert_int_equal(query_n(s, &f, &r), 1);
    assert_int_equal(r.seq[0], 2);
    f = (al_audit_filter_t){.agent = "bot-a\"x"};
    assert_int_equal(query_n(s, &f, &r), 1);
    f = (al_audit_filter_t){.agent = "bot-a' OR 1=1 --"};
    assert_int_equal(query_n(s, &f, &r), 0);
    al_audit_store_close(&s);
    tdir_remove(&t);
}

/* ---- chain -------------------------------------------------------------------- */

static void make_chain(const char *path, int n)
{
    al_audit_t *a = open_writer(path, NULL);
    al_audit_event_t ev;
    full_event(&ev);
    char sid[32];
    for (int i = 0; i < n; i++) {
        snprintf(sid, sizeof sid, "s-%d", i + 1);
        ev.session_id = sid;
        write_ok(a, &ev, NULL);
    }
    al_audit_close(&a);
}

static al_audit_verify_t verify_path(const char *path)
{
    al_audit_store_t *s = open_ro(path);
    al_audit_verify_t v;
    char err[AL_AUDIT_ERR_SIZE];
    if (al_audit_verify(s, &v, err, sizeof err) != AL_OK)
        fail_msg("verify: %s", err);
    al_audit_store_close(&s);
    return v;
}

static void tamper(const char *path, const char *sql)
{
    sqlite3 *db = db_open(path);
    db_exec(db, sql);
    sqlite3_close(db);
}

static void test_verify_detects_tampering(void **st)
{
    (void)st;
    static const struct {
        const char *sql;
        int64_t bad_seq;
        const char *why;
    } cases[] = {
        /* edited: any column, including ones a reader rarely looks at */
        {"UPDATE audit_event SET action = 'SELECT 2' WHERE seq = 3", 3, "edited"},
        {"UPDATE audit_event SET decision = 'deny' WHERE seq = 2", 2, "edited"},
        {"UPDATE audit_event SET tables = '[\"public.other\"]' WHERE seq = 4", 4, "edited"},
        {"UPDATE audit_event SET time_us = time_us + 1 WHERE seq = 5", 5, "edited"},
        {"UPDATE audit_event SET error = NULL WHERE seq = 1", 1, "edited"},
        {"UPDATE audit_event SET bytes_down = 1 WHERE seq = 4", 4, "edited"},
        {"UPDATE audit_event SET bytes_up = NULL, bytes_down = NULL WHERE seq = 2", 2, "edited"},
        {"UPDATE audit_event SET tables = 'garbage' WHERE seq = 2", 2, "edited"},
        {"UPDATE audit_event SET recording = '2024/07/03/x.jsonl.gz' WHERE seq = 3", 3, "edited"},
        {"UPDATE audit_event SET recording_sha256 = NULL WHERE seq = 5", 5, "edited"},
        {"UPDATE audit_event SET recording = NULL, recording_sha256 = NULL WHERE seq = 1", 1,
         "edited"},
        {"UPDATE audit_event SET hash = x'00' WHERE seq = 2", 2, "edited"},
        /* deleted: the next event no longer links */
        {"DELETE FROM audit_event WHERE seq = 3", 4, "deleted"},
        {"DELETE FROM audit_event WHERE seq = 1", 2, "deleted"},
        /* reordered: swap two events' positions */
        {"UPDATE audit_event SET seq = -1 WHERE seq = 2; UPDATE audit_event SET seq = 2 WHERE "
         "seq = 3; UPDATE audit_event SET seq = 3 WHERE seq = -1", 2, "reordered"},
        /* inserted: a copy of event 2 placed after it */
        {"UPDATE audit_event SET seq = seq + 100 WHERE seq > 2; UPDATE audit_event SET seq = "
         "seq - 99 WHERE seq > 100; INSERT INTO audit_event SELECT 3, id, time_us, kind, "
         "session_id, agent, subject, issuer, groups, groups_truncated, target, protocol, action, "
         "action_truncated, class, tables, tables_truncated, decision, rule, reason, "
         "approval_id, ref_id, rows, status, duration_us, error, prev_hash, hash, bytes_up, bytes_down, "
         "recording, recording_sha256 FROM "
         "audit_event WHERE seq = 2", 3, "inserted"},
        /* edited and re-hashed, but the next event still points at the old hash */
        {"UPDATE audit_event SET hash = (SELECT hash FROM audit_event WHERE seq = 1) WHERE seq = 3",
         3, "edited"},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(cases); i++) {
        tdir_t t;
        tdir_make(&t);
        make_chain(t.db, 6);
        al_audit_verify_t v = verify_path(t.db);
        assert_true(v.intact);
        assert_int_equal(v.events, 6);
        tamper(t.db, cases[i].sql);
        v = verify_path(t.db);
        if (v.intact)
            fail_msg("case %zu (%s) not detected", i, cases[i].sql);
        if (v.bad_seq != cases[i].bad_seq)
            fail_msg("case %zu: break reported at seq %lld, want %lld (%s)", i,
                     (long long)v.bad_seq, (long long)cases[i].bad_seq, v.reason);
        if (!strstr(v.reason, cases[i].why))
            fail_msg("case %zu: reason '%s' does not mention '%s'", i, v.reason, cases[i].why);
        /* rows walked up to and including the broken one */
        uint64_t want_events = (uint64_t)cases[i].bad_seq - (strstr(cases[i].sql, "DELETE") ? 1 : 0);
        assert_int_equal(v.events, want_events);
        tdir_remove(&t);
    }
}

/* A schema-1 store (before byte counts) is upgraded in place by a writer,
 * its old events still verify, and new ones chain on. A read-only opener
 * is told to start the gateway once. */
static void test_schema1_upgrade(void **st)
{
    (void)st;
    tdir_t t;
    tdir_make(&t);
    al_audit_t *a = open_writer(t.db, NULL);
    al_audit_event_t ev;
    full_event(&ev);
    ev.bytes_up = ev.bytes_down = -1; /* what a schema-1 writer could store */
    ev.recording = ev.recording_sha256 = NULL;
    write_ok(a, &ev, NULL);
    write_ok(a, &ev, NULL);
    al_audit_close(&a);
    tamper(t.db, "ALTER TABLE audit_event DROP COLUMN bytes_up; ALTER TABLE audit_event DROP "
                 "COLUMN bytes_down; ALTER TABLE audit_event DROP COLUMN recording; ALTER TABLE "
                 "audit_event DROP COLUMN recording_sha256; PRAGMA user_version=1");

    al_audit_store_t *s = NULL;
    char err[AL_AUDIT_ERR_SIZE];
    assert_int_equal(al_audit_store_open(t.db, NULL, true, &s, err, sizeof err), AL_ERR);
    assert_non_null(strstr(err, "airlock serve"));

    a = open_writer(t.db, NULL); /* upgrades */
    full_event(&ev);
    write_ok(a, &ev, NULL);
    al_audit_close(&a);
    al_audit_verify_t v = verify_path(t.db);
    assert_true(v.intact);
    assert_int_equal(v.events, 3);
    sqlite3 *db = db_open(t.db);
    assert_int_equal(db_int(db, "PRAGMA user_version"), 3);
    assert_int_equal(db_int(db, "SELECT count(*) FROM audit_event WHERE bytes_down = 67890"), 1);
    assert_int_equal(db_int(db, "SELECT count(*) FROM audit_event WHERE recording IS NOT NULL"), 1);
    sqlite3_close(db);
    tdir_remove(&t);
}

/* Schema 2, exactly as the previous release created it. */
static const char schema2_sql[] =
    "PRAGMA journal_mode=WAL; PRAGMA application_id=1634888811;"
    "CREATE TABLE audit_event ( seq INTEGER PRIMARY KEY, id TEXT NOT NULL,"
    " time_us INTEGER NOT NULL, kind TEXT, session_id TEXT, agent TEXT, subject TEXT, issuer TEXT,"
    " groups TEXT NOT NULL, groups_truncated INTEGER NOT NULL,"
    " target TEXT, protocol TEXT, action TEXT, action_truncated INTEGER NOT NULL, class TEXT,"
    " tables TEXT NOT NULL, tables_truncated INTEGER NOT NULL,"
    " decision TEXT, rule TEXT, reason TEXT, approval_id TEXT, ref_id TEXT,"
    " rows INTEGER, status TEXT, duration_us INTEGER, error TEXT,"
    " prev_hash BLOB NOT NULL, hash BLOB NOT NULL, bytes_up INTEGER, bytes_down INTEGER);"
    "CREATE INDEX audit_event_agent ON audit_event(agent);"
    "CREATE INDEX audit_event_target ON audit_event(target);"
    "CREATE INDEX audit_event_time ON audit_event(time_us);"
    "PRAGMA user_version=2;";

/* Inserts ev into a schema-2 table the way a schema-2 writer did, with a
 * hash from the same chain. */
static void insert_v2(sqlite3 *db, int64_t seq, const al_audit_event_t *ev, uint8_t prev[32])
{
    uint8_t h[32];
    al_buf_t b;
    al_buf_init(&b);
    assert_int_equal(al_audit_chain_hash(prev, ev, &b, h), AL_OK);
    al_buf_free(&b);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
        "INSERT INTO audit_event(seq, id, time_us, kind, session_id, agent, groups, "
        "groups_truncated, action, action_truncated, tables, tables_truncated, decision, rows, "
        "duration_us, prev_hash, hash, bytes_up, bytes_down) "
        "VALUES(?, ?, ?, ?, ?, ?, '[]', 0, ?, 0, '[]', 0, ?, NULL, NULL, ?, ?, ?, ?)", -1, &st,
        NULL), SQLITE_OK);
    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_text(st, 2, ev->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, ev->time_us);
    sqlite3_bind_text(st, 4, ev->kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, ev->session_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, ev->agent, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, ev->action.p, (int)ev->action.len, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, ev->decision, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 9, prev, 32, SQLITE_STATIC);
    sqlite3_bind_blob(st, 10, h, 32, SQLITE_STATIC);
    if (ev->bytes_up >= 0)
        sqlite3_bind_int64(st, 11, ev->bytes_up);
    if (ev->bytes_down >= 0)
        sqlite3_bind_int64(st, 12, ev->bytes_down);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    memcpy(prev, h, 32);
}

/* A schema-2 store: read-only readers (verify, query, a copy on read-only
 * media) read it as it is; the first writer upgrades it to 3 in one
 * transaction; its events keep their hashes and the chain goes on. */
static void test_schema2_upgrade(void **st)
{
    (void)st;
    tdir_t t;
    tdir_make(&t);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(t.db, &db), SQLITE_OK);
    db_exec(db, schema2_sql);
    uint8_t prev[32] = {0};
    al_audit_event_t ev;
    al_audit_event_init(&ev);
    snprintf(ev.id, sizeof ev.id, "0190f5c2-7d3a-7b4e-8c1d-2e3f4a5b6c7d");
    ev.time_us = 1720000000123456;
    ev.kind = "decision";
    ev.session_id = "old-1";
    ev.agent = "report-bot";
    ev.action = AL_STR("SELECT 1");
    ev.decision = "allow";
    insert_v2(db, 1, &ev, prev);
    ev.bytes_up = 10;
    ev.bytes_down = 20;
    ev.time_us++;
    insert_v2(db, 2, &ev, prev);
    sqlite3_close(db);

    /* read-only: reads and verifies the old schema as it is */
    al_audit_verify_t v = verify_path(t.db);
    assert_true(v.intact);
    assert_int_equal(v.events, 2);
    al_audit_store_t *s = open_ro(t.db);
    rows_t r;
    al_audit_filter_t f = {.session_id = "old-1"};
    assert_int_equal(query_n(s, &f, &r), 2);
    al_audit_store_close(&s);
    db = db_open(t.db);
    assert_int_equal(db_int(db, "PRAGMA user_version"), 2);
    sqlite3_close(db);

    /* a writer upgrades in place */
    al_audit_t *a = open_writer(t.db, NULL);
    al_audit_event_t full;
    full_event(&full);
    char id[AL_AUDIT_ID_SIZE];
    write_ok(a, &full, id);
    al_audit_close(&a);
    v = verify_path(t.db);
    assert_true(v.intact);
    assert_int_equal(v.events, 3);
    db = db_open(t.db);
    assert_int_equal(db_int(db, "PRAGMA user_version"), 3);
    assert_int_equal(db_int(db, "SELECT count(*) FROM audit_event WHERE recording IS NULL"), 2);
    sqlite3_close(db);
    s = open_ro(t.db);
    rt_check_t c = {.want = &full, .id = id};
    char err[AL_AUDIT_ERR_SIZE];
    assert_int_equal(al_audit_store_iterate(s, 2, check_full, &c, err, sizeof err), AL_OK);
    assert_int_equal(c.seen, 1);
    al_audit_store_close(&s);

    /* a failed upgrade leaves schema 2 whole (one transaction): a column
     * already there makes the second ALTER fail */
    tdir_remove(&t);
    tdir_make(&t);
    assert_int_equal(sqlite3_open(t.db, &db), SQLITE_OK);
    db_exec(db, schema2_sql);
    db_exec(db, "ALTER TABLE audit_event ADD COLUMN recording_sha256 TEXT");
    sqlite3_close(db);
    al_audit_opts_t o = {.path = t.db};
    a = NULL;
    assert_int_equal(al_audit_open(&o, &a, err, sizeof err), AL_ERR);
    assert_non_null(strstr(err, "cannot upgrade schema"));
    db = db_open(t.db);
    assert_int_equal(db_int(db, "PRAGMA user_version"), 2);
    assert_int_equal(db_int(db, "SELECT count(*) FROM pragma_table_info('audit_event') WHERE "
                                "name = 'recording'"), 0);
    sqlite3_close(db);
    tdir_remove(&t);
}

static int last_hashes(void *ud, const al_audit_row_t *row)
{
    uint8_t *h = ud; /* [0..32) prev of this row, [32..64) its hash */
    memcpy(h, row->prev_hash, 32);
    memcpy(h + 32, row->hash, 32);
    return AL_OK;
}

static void test_chain_continues_across_reopen(void **st)
{
    (void)st;
    tdir_t t;
    tdir_make(&t);
    make_chain(t.db, 3);
    al_audit_verify_t v1 = verify_path(t.db);
    assert_true(v1.intact);
    make_chain(t.db, 4); /* a new process: a new writer on the same file */
    al_audit_verify_t v2 = verify_path(t.db);
    assert_true(v2.intact);
    assert_int_equal(v2.events, 7);
    al_audit_store_t *s = open_ro(t.db);
    uint8_t h[64];
    char err[AL_AUDIT_ERR_SIZE];
    assert_int_equal(al_audit_store_iterate(s, 3, last_hashes, h, err, sizeof err), AL_OK);
    assert_memory_equal(h + 32, v2.head, 32);
    al_audit_store_close(&s);
    /* event 4 links to event 3, the head before the restart */
    sqlite3 *db = db_open(t.db);
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT prev_hash FROM audit_event WHERE seq = 4", -1,
                                        &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_memory_equal(sqlite3_column_blob(q, 0), v1.head, 32);
    sqlite3_finalize(q);
    sqlite3_close(db);
    tdir_remove(&t);
}

/* ---- failures ---------------------------------------------------------------- */

typedef struct fail_cb {
    int ok, err, odd; /* odd: a callback broke its contract */
    char msg[AL_AUDIT_ERR_SIZE];
} fail_cb_t;

static pthread_mutex_t fcb_lock = PTHREAD_MUTEX_INITIALIZER;

/* Runs on the writer thread: records only (cmocka asserts belong to the
 * test thread). */
static void on_done(void *ud, int rc, const char *id, const char *err)
{
    fail_cb_t *c = ud;
    pthread_mutex_lock(&fcb_lock);
    if (!id || strlen(id) != 36)
        c->odd++;
    if (rc == AL_OK) {
        c->ok++;
        c->odd += err != NULL;
    } else {
        c->err++;
        c->odd += rc != AL_ERR || !err;
        snprintf(c->msg, sizeof c->msg, "%s", err ? err : "");
    }
    pthread_mutex_unlock(&fcb_lock);
}

static void wait_done(fail_cb_t *c, int n)
{
    for (int i = 0; i < 10000; i++) {
        pthread_mutex_lock(&fcb_lock);
        int got = c->ok + c->err;
        pthread_mutex_unlock(&fcb_lock);
        if (got >= n)
            return;
        usleep(1000);
    }
    fail_msg("callbacks did not arrive");
}

static void test_read_only_store_fails_every_event(void **st)
{
    (void)st;
    tdir_t t;
    tdir_make(&t);
    make_chain(t.db, 1);
    /* The writer gets a store it cannot write (the read-only connection
     * the CLI uses): every strict event of the batch fails, with the
     * cause, and nothing is reported committed. */
    al_audit_store_t *s = open_ro(t.db);
    al_audit_t *a = NULL;
    char err[AL_AUDIT_ERR_SIZE];
    assert_int_equal(al_audit_open_store(s, NULL, &a, err, sizeof err), AL_OK);
    fail_cb_t c = {0};
    al_audit_event_t ev;
    full_event(&ev);
    for (int i = 0; i < 5; i++)
        assert_int_equal(al_audit_submit(a, &ev, on_done, &c, NULL, NULL), AL_OK);
    wait_done(&c, 5);
    assert_int_equal(c.odd, 0);
    assert_int_equal(c.ok, 0);
    assert_int_equal(c.err, 5);
    char want[512];
    snprintf(want, sizeof want,
             "audit store: cannot commit: attempt to write a readonly database (SQLITE_READONLY) "
             "at %s", t.db);
    assert_string_equal(c.msg, want);
    assert_int_equal(al_audit_write_sync(a, &ev, NULL, err, sizeof err), AL_ERR);
    assert_string_equal(err, want);
    al_audit_stats_t stx;
    al_audit_stats(a, &stx);
    assert_int_equal(stx.committed, 0);
    assert_int_equal(stx.failed, 6);
    assert_int_equal(stx.batches, 0);
    assert_true(stx.batches_failed >= 1);
    al_audit_close(&a);
    assert_int_equal(count_rows(t.db), 1);
    tdir_remove(&t);
}

/* Where a test mounted a tmpfs; the teardown unmounts it even when an
 * assertion failed half way. */
static tdir_t g_mounted;
static bool g_is_mounted;

static bool mount_tmpfs(tdir_t *t, const char *opts)
{
    if (mount("tmpfs", t->dir, "tmpfs", 0, opts) != 0)
        return false;
    g_mounted = *t;
    g_is_mounted = true;
    return true;
}

static int unmount_teardown(void **st)
{
    (void)st;
    if (g_is_mounted) {
        umount2(g_mounted.dir, MNT_DETACH);
        g_is_mounted = false;
        tdir_remove(&g_mounted);
    }
    return 0;
}

/* A real read-only file system (tmpfs remounted ro): the writer refuses to
 * open rather than fail later. Needs CAP_SYS_ADMIN; skipped without it. */
static void test_read_only_filesystem_refused(void **st)
{
    (void)st;
    tdir_t t;
    tdir_make(&t);
    if (!mount_tmpfs(&t, "size=1m,mode=0700")) {
        tdir_remove(&t);
        skip();
    }
    make_chain(t.db, 2);
    assert_int_equal(mount("tmpfs", t.dir, "tmpfs", MS_REMOUNT | MS_RDONLY, "size=1m"), 0);
    al_audit_opts_t o = {.path = t.db};
    al_audit_t *a = NULL;
    char err[AL_AUDIT_ERR_SIZE];
    assert_int_equal(al_audit_open(&o, &a, err, sizeof err), AL_ERR);
    assert_null(a);
    assert_non_null(strstr(err, "audit store: cannot open for writing"));
    assert_non_null(strstr(err, t.db));
    /* Read-only readers still work there. */
    al_audit_verify_t v = verify_path(t.db);
    assert_true(v.intact);
    assert_int_equal(v.events, 2);
    assert_int_equal(umount(t.dir), 0);
    g_is_mounted = false;
    tdir_remove(&t);
}

/* Fills the store to its cap: the failing batch reports SQLITE_FULL to
 * each of its events; what committed before stays intact. */
static void fill_until_full(const char *path, const al_audit_opts_t *o)
{
    al_audit_t *a = open_writer(path, o);
    al_audit_event_t ev;
    full_event(&ev);
    static char big[3000];
    memset(big, 'x', sizeof big);
    ev.action = (al_str_t){big, sizeof big};
    char err[AL_AUDIT_ERR_SIZE];
    int ok = 0, rc = AL_OK;
    for (int i = 0; i < 100000 && rc == AL_OK; i++) {
        rc = al_audit_write_sync(a, &ev, NULL, err, sizeof err);
        ok += rc == AL_OK;
    }
    assert_int_equal(rc, AL_ERR);
    assert_true(ok > 0);
    char want[512];
    snprintf(want, sizeof want, "audit store: cannot commit: database or disk is full (SQLITE_FULL) "
             "at %s", path);
    assert_string_equal(err, want);
    /* A strict batch of several fails as a whole. */
    fail_cb_t c = {0};
    for (int i = 0; i < 8; i++)
        assert_int_equal(al_audit_submit(a, &ev, on_done, &c, NULL, NULL), AL_OK);
    wait_done(&c, 8);
    assert_int_equal(c.odd, 0);
    assert_int_equal(c.ok, 0);
    assert_int_equal(c.err, 8);
    al_audit_stats_t s;
    al_audit_stats(a, &s);
    assert_int_equal(s.committed, (uint64_t)ok);
    assert_int_equal(s.failed, 9);
    al_audit_close(&a);
    assert_int_equal(count_rows(path), ok);
    al_audit_verify_t v = verify_path(path);
    assert_true(v.intact);
    assert_int_equal(v.events, (uint64_t)ok);
}

static void test_disk_full_max_bytes(void **st)
{
    (void)st;
    tdir_t t;
    tdir_make(&t);
    al_audit_opts_t o = {.max_bytes = 256 * 1024, .max_action_bytes = 4096};
    fill_until_full(t.db, &o);
    tdir_remove(&t);
}

static void test_disk_full_tmpfs(void **st)
{
    (void)st;
    tdir_t t;
    tdir_make(&t);
    if (!mount_tmpfs(&t, "size=256k,mode=0700")) {
        tdir_remove(&t);
        skip();
    }
    fill_until_full(t.db, NULL);
    assert_int_equal(umount(t.dir), 0);
    g_is_mounted = false;
    tdir_remove(&t);
}

static void test_locked_past_timeout(void **st)
{
    (void)st;
    tdir_t t;
    tdir_make(&t);
    al_audit_opts_t o = {.commit_timeout = 0.2};
    al_audit_t *a = open_writer(t.db, &o);
    al_audit_event_t ev;
    full_event(&ev);
    write_ok(a, &ev, NULL);
    sqlite3 *other = db_open(t.db);
    db_exec(other, "BEGIN IMMEDIATE"); /* holds the write lock */
    char err[AL_AUDIT_ERR_SIZE];
    uint64_t t0 = al_mono_ns();
    assert_int_equal(al_audit_write_sync(a, &ev, NULL, err, sizeof err), AL_ERR);
    uint64_t waited = al_mono_ns() - t0;
    assert_true(waited >= 150000000u); /* it did wait for the lock */
    char want[512];
    snprintf(want, sizeof want, "audit store: cannot commit: database is locked (SQLITE_BUSY) at %s",
             t.db);
    assert_string_equal(err, want);
    db_exec(other, "ROLLBACK");
    sqlite3_close(other);
    write_ok(a, &ev, NULL); /* the store recovers once the lock is gone */
    al_audit_close(&a);
    assert_int_equal(count_rows(t.db), 2);
    assert_true(verify_path(t.db).intact);
    tdir_remove(&t);
}

static void test_open_errors(void **st)
{
    (void)st;
    tdir_t t;
    tdir_make(&t);
    al_audit_store_t *s = NULL;
    char err[AL_AUDIT_ERR_SIZE];
    /* read-only open of a store that does not exist */
    assert_int_equal(al_audit_store_open(t.db, NULL, true, &s, err, sizeof err), AL_ERR);
    assert_null(s);
    assert_non_null(strstr(err, t.db));
    /* a database that is not an audit store */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(t.db, &db), SQLITE_OK);
    db_exec(db, "CREATE TABLE x(y); PRAGMA user_version=7");
    sqlite3_close(db);
    assert_int_equal(al_audit_store_open(t.db, NULL, false, &s, err, sizeof err), AL_ERR);
    assert_non_null(strstr(err, "not an airlock audit store"));
    assert_int_equal(al_audit_store_open(t.db, NULL, true, &s, err, sizeof err), AL_ERR);
    assert_non_null(strstr(err, "not an airlock audit store"));
    /* the parent directory is created */
    char deep[256];
    snprintf(deep, sizeof deep, "%s/sub/audit.db", t.dir);
    assert_int_equal(al_audit_store_open(deep, NULL, false, &s, err, sizeof err), AL_OK);
    al_audit_store_close(&s);
    unlink(deep);
    char sub[256];
    snprintf(sub, sizeof sub, "%s/sub/audit.db-wal", t.dir);
    unlink(sub);
    snprintf(sub, sizeof sub, "%s/sub/audit.db-shm", t.dir);
    unlink(sub);
    snprintf(sub, sizeof sub, "%s/sub", t.dir);
    assert_int_equal(rmdir(sub), 0);
    tdir_remove(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_field),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_query_filters),
        cmocka_unit_test(test_verify_detects_tampering),
        cmocka_unit_test(test_chain_continues_across_reopen),
        cmocka_unit_test(test_schema1_upgrade),
        cmocka_unit_test(test_schema2_upgrade),
        cmocka_unit_test(test_read_only_store_fails_every_event),
        cmocka_unit_test_teardown(test_read_only_filesystem_refused, unmount_teardown),
        cmocka_unit_test(test_disk_full_max_bytes),
        cmocka_unit_test_teardown(test_disk_full_tmpfs, unmount_teardown),
        cmocka_unit_test(test_locked_past_timeout),
        cmocka_unit_test(test_open_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
