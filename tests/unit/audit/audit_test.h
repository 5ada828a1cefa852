/* audit_test.h - helpers shared by the audit unit tests: temp dirs, a full
 * event, and a second SQLite connection to look at (or tamper with) the
 * store behind the library's back. */
#ifndef AL_AUDIT_TEST_H
#define AL_AUDIT_TEST_H

#include <dirent.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "audit/audit.h"

typedef struct tdir {
    char dir[64];
    char db[128];
} tdir_t;

static inline void tdir_make(tdir_t *t)
{
    snprintf(t->dir, sizeof t->dir, "/tmp/al-audit-test-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->db, sizeof t->db, "%s/audit.db", t->dir);
}

/* Removes the files of the (flat) directory, then the directory. */
static inline void tdir_remove(tdir_t *t)
{
    DIR *d = opendir(t->dir);
    if (!d)
        return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", t->dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(t->dir);
}

static const char *const test_groups[] = {"bots", "readers"};
static const char test_recording[] = "2024/07/03/0190f5c2-7d3a-7b4e-8c1d-2e3f4a5b6c7d.jsonl.gz";
static const char test_recording_sha[] =
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
static const char *const test_tables[] = {"public.orders", "customers"};

/* Every field set, so a round trip checks them all. */
static inline void full_event(al_audit_event_t *ev)
{
    al_audit_event_init(ev);
    ev->kind = AL_AUDIT_KIND_RESULT;
    ev->session_id = "sess-42";
    ev->agent = "report-bot";
    ev->subject = "8f0c2a4e-agent";
    ev->issuer = "https://login.example.test/tid/v2.0";
    ev->groups = test_groups;
    ev->n_groups = 2;
    ev->target = "orders-db";
    ev->protocol = "postgres";
    ev->action = AL_STR("SELECT o.id, c.\"name\" FROM public.orders o JOIN customers c ON true\n"
                        "-- caf\xc3\xa9 \x01\x7f");
    ev->cls = "read";
    ev->tables = test_tables;
    ev->n_tables = 2;
    ev->decision = "allow";
    ev->rule = "readers-may-read";
    ev->reason = "matched rule readers-may-read";
    ev->approval_id = "appr-7";
    ev->ref_id = "0190f5c2-7d3a-7b4e-8c1d-2e3f4a5b6c7d";
    ev->rows = 17;
    ev->status = "SELECT 17";
    ev->duration_us = 12345;
    ev->error = "";
    ev->bytes_up = 345;
    ev->bytes_down = 67890;
    ev->recording = test_recording;
    ev->recording_sha256 = test_recording_sha;
}

/* A second, independent connection (not the library's). */
static inline sqlite3 *db_open(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static inline int64_t db_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    int64_t v = -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static inline void db_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg ? msg : "?");
}

static inline int64_t count_rows(const char *path)
{
    sqlite3 *db = db_open(path);
    int64_t n = db_int(db, "SELECT count(*) FROM audit_event");
    sqlite3_close(db);
    return n;
}

#endif
