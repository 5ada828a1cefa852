/*
 * store.c - the approvals store: one SQLite file (data_dir/approvals.db).
 *
 * Durability is the audit store's: journal_mode=WAL with synchronous=FULL
 * syncs the WAL at every commit, so an approval or a consumed `once` grant
 * survives power loss (https://www.sqlite.org/pragma.html#pragma_synchronous).
 * Every change runs in BEGIN IMMEDIATE, which takes the write lock up
 * front: a second airlock process on the same file waits (busy_timeout)
 * instead of deciding from a stale read.
 *
 * Times are integer microseconds since the epoch, UTC. Lists (groups,
 * approvers) are JSON arrays of strings. The action is a BLOB: any bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "approvals/approvals_int.h"

#define SCHEMA_VERSION 1
#define APPLICATION_ID 0x61726c61 /* "arla" */

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS approval_request ("
    " id TEXT PRIMARY KEY,"
    " state TEXT NOT NULL,"          /* al_approval_state_name */
    " mode TEXT NOT NULL,"           /* wait | retry */
    " agent TEXT NOT NULL, owner TEXT, subject TEXT, issuer TEXT,"
    " groups TEXT NOT NULL,"         /* JSON array */
    " target TEXT NOT NULL, protocol TEXT NOT NULL,"
    " action BLOB NOT NULL,"         /* the exact text */
    " fingerprint TEXT NOT NULL,"
    " rule TEXT NOT NULL,"
    " approvers TEXT NOT NULL,"      /* JSON array: the rule's groups when raised */
    " min_approvals INTEGER NOT NULL,"
    " grant_spec TEXT NOT NULL,"     /* once | session | target | a duration */
    " rule_timeout_us INTEGER NOT NULL,"
    " session_id TEXT,"
    " requested_us INTEGER NOT NULL, expires_us INTEGER NOT NULL,"
    " decided_us INTEGER, reason TEXT, decided_by TEXT, grant_id TEXT);"
    "CREATE INDEX IF NOT EXISTS approval_request_state ON approval_request(state, expires_us);"
    "CREATE INDEX IF NOT EXISTS approval_request_agent ON approval_request(agent, state);"
    "CREATE INDEX IF NOT EXISTS approval_request_session ON approval_request(session_id);"
    "CREATE INDEX IF NOT EXISTS approval_request_time ON approval_request(requested_us);"
    "CREATE TABLE IF NOT EXISTS approval_vote ("
    " request_id TEXT NOT NULL,"
    " voter TEXT NOT NULL,"          /* 'bootstrap' or issuer 0x1f subject */
    " name TEXT, subject TEXT, issuer TEXT, bootstrap INTEGER NOT NULL,"
    " vote TEXT NOT NULL,"           /* approve | deny */
    " for_us INTEGER,"               /* the approver's --for, NULL if none */
    " reason TEXT, time_us INTEGER NOT NULL,"
    " PRIMARY KEY (request_id, voter));"
    "CREATE TABLE IF NOT EXISTS approval_grant ("
    " id TEXT PRIMARY KEY,"
    " request_id TEXT NOT NULL,"
    " kind TEXT NOT NULL,"           /* al_grant_kind_name */
    " agent TEXT NOT NULL, target TEXT NOT NULL,"
    " fingerprint TEXT, rule TEXT, session_id TEXT,"
    " created_us INTEGER NOT NULL, expires_us INTEGER NOT NULL,"
    " used INTEGER NOT NULL DEFAULT 0,"  /* once: consumed */
    " uses INTEGER NOT NULL DEFAULT 0, last_used_us INTEGER,"
    " revoked TEXT);"                /* why it ended early, NULL while live */
    "CREATE INDEX IF NOT EXISTS approval_grant_lookup ON approval_grant(agent, target);"
    "CREATE INDEX IF NOT EXISTS approval_grant_session ON approval_grant(session_id);";

#define ROW_COLS                                                                            \
    "id, state, mode, agent, owner, subject, issuer, groups, target, protocol, action, "   \
    "fingerprint, rule, approvers, min_approvals, grant_spec, session_id, requested_us, "  \
    "expires_us, decided_us, reason, decided_by, grant_id"

static const char *const sql_text[AL__SQL__COUNT] = {
    [AL__SQL_REQ_FIND_RETRY] =
        "SELECT id, expires_us FROM approval_request WHERE state='pending' AND mode='retry' "
        "AND agent=?1 AND target=?2 AND fingerprint=?3 AND rule=?4 AND expires_us>?5 "
        "ORDER BY requested_us DESC LIMIT 1",
    [AL__SQL_REQ_COUNT_PENDING] =
        "SELECT count(*) FROM approval_request WHERE state='pending' AND agent=?1 "
        "AND expires_us>?2",
    [AL__SQL_REQ_INSERT] =
        "INSERT INTO approval_request(id, state, mode, agent, owner, subject, issuer, groups, "
        "target, protocol, action, fingerprint, rule, approvers, min_approvals, grant_spec, "
        "rule_timeout_us, session_id, requested_us, expires_us) VALUES(?1, 'pending', ?2, ?3, "
        "?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
    [AL__SQL_REQ_GET] =
        "SELECT state, expires_us, agent, subject, issuer, approvers, min_approvals, "
        "grant_spec, rule_timeout_us, session_id, target, fingerprint, rule, reason, grant_id "
        "FROM approval_request WHERE id=?1",
    [AL__SQL_REQ_DECIDE] =
        "UPDATE approval_request SET state=?2, decided_us=?3, reason=?4, decided_by=?5, "
        "grant_id=?6 WHERE id=?1 AND state='pending'",
    [AL__SQL_VOTE_GET] = "SELECT vote FROM approval_vote WHERE request_id=?1 AND voter=?2",
    [AL__SQL_VOTE_PUT] =
        "INSERT OR REPLACE INTO approval_vote(request_id, voter, name, subject, issuer, "
        "bootstrap, vote, for_us, reason, time_us) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
        "?10)",
    [AL__SQL_VOTE_TALLY] =
        "SELECT count(*), min(for_us) FROM approval_vote WHERE request_id=?1 "
        "AND vote='approve'",
    [AL__SQL_GRANT_INSERT] =
        "INSERT INTO approval_grant(id, request_id, kind, agent, target, fingerprint, rule, "
        "session_id, created_us, expires_us) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    /* Non-consuming grants first (ORDER BY kind='once': false sorts first),
     * then the one that lives longest. */
    [AL__SQL_GRANT_FIND] =
        "SELECT id, request_id, kind, expires_us FROM approval_grant "
        "WHERE agent=?1 AND target=?2 AND revoked IS NULL AND used=0 AND expires_us>?3 "
        "AND (?4 IS NULL OR request_id=?4) "
        "AND ((kind IN ('once', 'duration') AND fingerprint=?5) "
        "  OR (kind='session' AND rule=?6 AND session_id=?7) "
        "  OR kind='target') "
        "ORDER BY kind='once', expires_us DESC LIMIT 1",
    [AL__SQL_GRANT_CONSUME] =
        "UPDATE approval_grant SET used=1, uses=uses+1, last_used_us=?2 "
        "WHERE id=?1 AND used=0 AND revoked IS NULL",
    [AL__SQL_DUE_LIST] =
        "SELECT id FROM approval_request WHERE state='pending' AND expires_us<=?1",
    [AL__SQL_DUE_EXPIRE] =
        "UPDATE approval_request SET state='timed_out', decided_us=?1, reason='timeout' "
        "WHERE state='pending' AND expires_us<=?1",
    [AL__SQL_NEXT_DEADLINE] =
        "SELECT min(expires_us) FROM approval_request WHERE state='pending'",
    [AL__SQL_SESSION_LIST] =
        "SELECT id FROM approval_request WHERE state='pending' AND mode='wait' "
        "AND session_id=?1",
    [AL__SQL_SESSION_CANCEL] =
        "UPDATE approval_request SET state='cancelled', decided_us=?2, "
        "reason='client_disconnected' WHERE state='pending' AND mode='wait' AND session_id=?1",
    [AL__SQL_SESSION_GRANTS_END] =
        "UPDATE approval_grant SET revoked='session_ended' WHERE kind='session' "
        "AND session_id=?1 AND revoked IS NULL",
    [AL__SQL_AGENT_LIST] =
        "SELECT id FROM approval_request WHERE state='pending' AND agent=?1",
    [AL__SQL_AGENT_CANCEL] =
        "UPDATE approval_request SET state='cancelled', decided_us=?2, reason=?3 "
        "WHERE state='pending' AND agent=?1",
    [AL__SQL_AGENT_REVOKE] =
        "UPDATE approval_grant SET revoked=?3 WHERE agent=?1 AND revoked IS NULL",
    [AL__SQL_RESTART_ABANDON] =
        "UPDATE approval_request SET state='abandoned', decided_us=?1, reason='restart' "
        "WHERE state='pending' AND mode='wait'",
    [AL__SQL_RESTART_EXPIRE] =
        "UPDATE approval_request SET state='timed_out', decided_us=?1, reason='timeout' "
        "WHERE state='pending' AND expires_us<=?1",
    [AL__SQL_RESTART_SESSIONS] =
        "UPDATE approval_grant SET revoked='restart' WHERE kind='session' AND revoked IS NULL",
    [AL__SQL_LIST] =
        "SELECT " ROW_COLS " FROM approval_request WHERE (?1 IS NULL OR state=?1) "
        "AND (?2 IS NULL OR agent=?2) AND (?3 IS NULL OR target=?3) "
        "ORDER BY requested_us DESC, id DESC LIMIT ?4",
    [AL__SQL_ROW] = "SELECT " ROW_COLS " FROM approval_request WHERE id=?1",
    [AL__SQL_VOTES] =
        "SELECT name, vote, time_us, for_us, reason FROM approval_vote WHERE request_id=?1 "
        "ORDER BY time_us, voter",
};

void al__appr_set_err(al__appr_db_t *d, const char *what, int rc, char *err, size_t cap)
{
    const char *msg = NULL;
    if (d->db && sqlite3_extended_errcode(d->db) == rc)
        msg = sqlite3_errmsg(d->db);
    if (!msg || !*msg || !strcmp(msg, "not an error"))
        msg = sqlite3_errstr(rc);
    snprintf(err, cap, "approvals store: %s: %s (%d) at %s", what, msg, rc,
             d->path ? d->path : "?");
}

void al__appr_log_err(al__appr_db_t *d, const char *what, int rc)
{
    char err[AL_APPROVALS_ERR_SIZE];
    al__appr_set_err(d, what, rc, err, sizeof err);
    al_log(AL_LOG_ERROR, "approvals store failed", "error", err, NULL);
}

sqlite3_stmt *al__appr_stmt(al__appr_db_t *d, al__appr_sql_t which)
{
    sqlite3_stmt *st = d->st[which];
    if (st) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return st;
    }
    int rc = sqlite3_prepare_v3(d->db, sql_text[which], -1, SQLITE_PREPARE_PERSISTENT,
                                &d->st[which], NULL);
    if (rc != SQLITE_OK) {
        al__appr_log_err(d, "cannot prepare", rc);
        sqlite3_finalize(d->st[which]);
        d->st[which] = NULL;
        return NULL;
    }
    return d->st[which];
}

static int exec_logged(al__appr_db_t *d, const char *sql, const char *what)
{
    int rc = sqlite3_exec(d->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        al__appr_log_err(d, what, rc);
        return AL_ERR;
    }
    return AL_OK;
}

int al__appr_begin(al__appr_db_t *d) { return exec_logged(d, "BEGIN IMMEDIATE", "cannot begin"); }

int al__appr_commit(al__appr_db_t *d)
{
    if (exec_logged(d, "COMMIT", "cannot commit") == AL_OK)
        return AL_OK;
    al__appr_rollback(d);
    return AL_ERR;
}

void al__appr_rollback(al__appr_db_t *d)
{
    if (!sqlite3_get_autocommit(d->db))
        sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
}

int al__bind_text(sqlite3_stmt *st, int i, const char *s)
{
    return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

const char *al__col_text(sqlite3_stmt *st, int i, char *buf, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    if (!t || !cap)
        return NULL;
    snprintf(buf, cap, "%s", (const char *)t);
    return buf;
}

/* Creates the file 0600 (requests hold statement text and identities) in a
 * 0700 directory; SQLite would use 0644 and the umask. The -wal and -shm
 * files take the database file's mode (SQLite's unix VFS). */
static int precreate(const char *path, char *err, size_t cap)
{
    char dir[4096];
    size_t n = strlen(path);
    if (n >= sizeof dir) {
        snprintf(err, cap, "approvals store: path too long: %s", path);
        return AL_ERR;
    }
    memcpy(dir, path, n + 1);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (al_mkdir_p(dir, 0700) != AL_OK) {
            snprintf(err, cap, "approvals store: cannot create directory %s: %s", dir,
                     strerror(errno));
            return AL_ERR;
        }
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, cap, "approvals store: cannot open for writing: %s at %s",
                 strerror(errno), path);
        return AL_ERR;
    }
    close(fd);
    return AL_OK;
}

static int query_int(al__appr_db_t *d, const char *sql, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(d->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        *out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    return rc;
}

void al__appr_db_close(al__appr_db_t *d)
{
    for (size_t i = 0; i < AL__SQL__COUNT; i++) {
        sqlite3_finalize(d->st[i]);
        d->st[i] = NULL;
    }
    if (d->db)
        sqlite3_close(d->db);
    d->db = NULL;
    al_free(&d->path);
}

int al__appr_db_open(al__appr_db_t *d, const char *path, char *err, size_t cap)
{
    memset(d, 0, sizeof *d);
    if (!path || !*path) {
        snprintf(err, cap, "approvals store: no path given");
        return AL_ERR;
    }
    if (precreate(path, err, cap) != AL_OK)
        return AL_ERR;
    d->path = al_strndup(path, strlen(path));
    if (!d->path) {
        snprintf(err, cap, "approvals store: out of memory");
        return AL_ERR;
    }
    /* NOMUTEX: the service's own mutex serializes every use. */
    int rc = sqlite3_open_v2(path, &d->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        al__appr_set_err(d, "cannot open", rc, err, cap);
        goto fail;
    }
    sqlite3_extended_result_codes(d->db, 1);
    sqlite3_busy_timeout(d->db, 5000);
    if (sqlite3_db_readonly(d->db, "main") == 1) {
        snprintf(err, cap, "approvals store: cannot open for writing: read-only at %s", path);
        goto fail;
    }
    const char *what = "cannot open";
    int64_t ver = 0, wal = 0, tables = 0;
    if ((rc = sqlite3_exec(d->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL)) != SQLITE_OK ||
        (rc = sqlite3_exec(d->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL)) != SQLITE_OK ||
        (rc = query_int(d, "PRAGMA user_version", &ver)) != SQLITE_OK)
        goto sqlfail;
    if (ver == 0) {
        char sql[96];
        snprintf(sql, sizeof sql, "PRAGMA application_id=%d; PRAGMA user_version=%d",
                 APPLICATION_ID, SCHEMA_VERSION);
        what = "cannot create schema";
        if ((rc = sqlite3_exec(d->db, "BEGIN IMMEDIATE", NULL, NULL, NULL)) != SQLITE_OK)
            goto sqlfail;
        if ((rc = sqlite3_exec(d->db, schema_sql, NULL, NULL, NULL)) != SQLITE_OK ||
            (rc = sqlite3_exec(d->db, sql, NULL, NULL, NULL)) != SQLITE_OK ||
            (rc = sqlite3_exec(d->db, "COMMIT", NULL, NULL, NULL)) != SQLITE_OK) {
            al__appr_set_err(d, what, rc, err, cap);
            al__appr_rollback(d);
            goto fail;
        }
        ver = SCHEMA_VERSION;
    }
    if ((rc = query_int(d, "SELECT count(*) FROM pragma_journal_mode WHERE journal_mode='wal'",
                        &wal)) != SQLITE_OK ||
        (rc = query_int(d, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name IN "
                           "('approval_request', 'approval_vote', 'approval_grant')",
                        &tables)) != SQLITE_OK)
        goto sqlfail;
    if (wal != 1) {
        snprintf(err, cap, "approvals store: cannot open: WAL mode refused at %s", path);
        goto fail;
    }
    if (ver != SCHEMA_VERSION || tables != 3) {
        snprintf(err, cap,
                 "approvals store: cannot open: not an airlock approvals store (schema version "
                 "%" PRId64 ", expected %d) at %s", ver, SCHEMA_VERSION, path);
        goto fail;
    }
    return AL_OK;
sqlfail:
    al__appr_set_err(d, what, rc, err, cap);
fail:
    al__appr_db_close(d);
    return AL_ERR;
}
