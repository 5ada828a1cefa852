/*
 * store_sqlite.c - the embedded audit store: one SQLite file in WAL mode.
 *
 * Durability: journal_mode=WAL with synchronous=FULL syncs the WAL on every
 * commit, so a committed batch survives power loss; with NORMAL it would
 * survive only an application crash (https://www.sqlite.org/pragma.html
 * #pragma_synchronous, https://www.sqlite.org/wal.html). WAL also lets
 * `airlock audit query/verify` read from their own read-only connection
 * while the gateway writes: readers see the last committed snapshot and
 * never block the writer (wal.html §"Concurrency").
 *
 * Lock waits: busy_timeout = commit_timeout, so a writer that finds the
 * database locked by someone else waits that long and then fails the
 * batch with SQLITE_BUSY (https://www.sqlite.org/c3ref/busy_timeout.html).
 *
 * Chain: append() reads the head (last seq and hash) inside the same
 * BEGIN IMMEDIATE transaction that inserts the batch, so the chain stays
 * linear even if a second process wrote in between; it also makes the
 * chain continue across restarts without any cached state.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit.h"

#define SCHEMA_VERSION 3 /* 2: bytes_up, bytes_down; 3: recording, recording_sha256 */
#define YIELD_EVERY 4            /* events inserted between sched_yield() calls (sq_append) */
#define APPLICATION_ID 0x61726c6b /* "arlk": `file` and tools can tell it is ours */

/* Column order shared by INSERT and SELECT. */
#define COLS_V2                                                                                 \
    "seq, id, time_us, kind, session_id, agent, subject, issuer, groups, groups_truncated, "   \
    "target, protocol, action, action_truncated, class, tables, tables_truncated, decision, " \
    "rule, reason, approval_id, ref_id, rows, status, duration_us, error, prev_hash, hash, " \
    "bytes_up, bytes_down"
#define COLS COLS_V2 ", recording, recording_sha256"
/* What a read-only reader of a schema-2 store selects (a copy on read-only
 * media cannot be upgraded; its events have no recordings). */
#define COLS_READ_V2 COLS_V2 ", NULL, NULL"
enum {
    C_SEQ, C_ID, C_TIME, C_KIND, C_SESSION, C_AGENT, C_SUBJECT, C_ISSUER, C_GROUPS, C_GROUPS_TR,
    C_TARGET, C_PROTOCOL, C_ACTION, C_ACTION_TR, C_CLASS, C_TABLES, C_TABLES_TR, C_DECISION,
    C_RULE, C_REASON, C_APPROVAL, C_REF, C_ROWS, C_STATUS, C_DURATION, C_ERROR, C_PREV, C_HASH,
    C_BYTES_UP, C_BYTES_DOWN, C_RECORDING, C_RECORDING_SHA, C__COUNT
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS audit_event ("
    " seq INTEGER PRIMARY KEY,"  /* chain order */
    " id TEXT NOT NULL,"
    " time_us INTEGER NOT NULL," /* microseconds since the epoch, UTC */
    " kind TEXT, session_id TEXT, agent TEXT, subject TEXT, issuer TEXT,"
    " groups TEXT NOT NULL,"     /* JSON array of strings */
    " groups_truncated INTEGER NOT NULL,"
    " target TEXT, protocol TEXT, action TEXT, action_truncated INTEGER NOT NULL, class TEXT,"
    " tables TEXT NOT NULL,"     /* JSON array of strings */
    " tables_truncated INTEGER NOT NULL,"
    " decision TEXT, rule TEXT, reason TEXT, approval_id TEXT, ref_id TEXT,"
    " rows INTEGER, status TEXT, duration_us INTEGER, error TEXT,"
    " prev_hash BLOB NOT NULL, hash BLOB NOT NULL,"
    " bytes_up INTEGER, bytes_down INTEGER,"
    " recording TEXT, recording_sha256 TEXT);"
    "CREATE INDEX IF NOT EXISTS audit_event_agent ON audit_event(agent);"
    "CREATE INDEX IF NOT EXISTS audit_event_target ON audit_event(target);"
    "CREATE INDEX IF NOT EXISTS audit_event_time ON audit_event(time_us);";

typedef struct sq_store {
    al_audit_store_t base;
    sqlite3 *db;
    bool read_only;
    bool v2;                  /* read-only over a schema-2 store: COLS_READ_V2 */
    sqlite3_stmt *ins, *head;
    al_buf_t scratch, gj, tj; /* canonical bytes; groups and tables JSON */
    al_buf_t dec;             /* decoded list strings of the current row */
    size_t *offs;             /* their offsets in dec */
    const char **ptrs;
    size_t cap;               /* entries in offs and ptrs */
} sq_store_t;

static const char *code_name(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_ERROR: return "SQLITE_ERROR";
    case SQLITE_PERM: return "SQLITE_PERM";
    case SQLITE_ABORT: return "SQLITE_ABORT";
    case SQLITE_BUSY: return "SQLITE_BUSY";
    case SQLITE_LOCKED: return "SQLITE_LOCKED";
    case SQLITE_NOMEM: return "SQLITE_NOMEM";
    case SQLITE_READONLY: return "SQLITE_READONLY";
    case SQLITE_INTERRUPT: return "SQLITE_INTERRUPT";
    case SQLITE_IOERR: return "SQLITE_IOERR";
    case SQLITE_CORRUPT: return "SQLITE_CORRUPT";
    case SQLITE_FULL: return "SQLITE_FULL";
    case SQLITE_CANTOPEN: return "SQLITE_CANTOPEN";
    case SQLITE_PROTOCOL: return "SQLITE_PROTOCOL";
    case SQLITE_SCHEMA: return "SQLITE_SCHEMA";
    case SQLITE_TOOBIG: return "SQLITE_TOOBIG";
    case SQLITE_CONSTRAINT: return "SQLITE_CONSTRAINT";
    case SQLITE_MISMATCH: return "SQLITE_MISMATCH";
    case SQLITE_MISUSE: return "SQLITE_MISUSE";
    case SQLITE_NOTADB: return "SQLITE_NOTADB";
    default: return "SQLITE_ERROR";
    }
}

/* "audit store: <what>: <sqlite message> (<CODE>) at <path>" */
static void set_err(const sq_store_t *s, const char *what, int rc, char *err, size_t cap)
{
    /* The connection's message is more specific ("attempt to write a
     * readonly database") but only belongs to rc if it is the last error. */
    const char *msg = NULL;
    if (s->db && sqlite3_extended_errcode(s->db) == rc)
        msg = sqlite3_errmsg(s->db);
    if (!msg || !*msg || !strcmp(msg, "not an error"))
        msg = sqlite3_errstr(rc);
    snprintf(err, cap, "audit store: %s: %s (%s) at %s", what, msg, code_name(rc), s->base.where);
}

static void sq_free(sq_store_t *s)
{
    sqlite3_finalize(s->ins);
    sqlite3_finalize(s->head);
    if (s->db)
        sqlite3_close(s->db); /* every statement is finalized: no SQLITE_BUSY */
    al_buf_free(&s->scratch);
    al_buf_free(&s->gj);
    al_buf_free(&s->tj);
    al_buf_free(&s->dec);
    al_free(&s->offs);
    al_free(&s->ptrs);
    al_free(&s->base.where);
    free(s);
}

static void sq_close(al_audit_store_t *base) { sq_free((sq_store_t *)base); }

static int exec(sq_store_t *s, const char *sql, const char *what, char *err, size_t cap)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        set_err(s, what, rc, err, cap);
        return AL_ERR;
    }
    return AL_OK;
}

/* Single integer result of a PRAGMA or SELECT; AL_ERR on any failure. */
static int query_int(sq_store_t *s, const char *sql, int64_t *out, char *err, size_t cap)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            *out = 0;
            rc = SQLITE_OK;
        }
    }
    if (rc != SQLITE_OK)
        set_err(s, "cannot open", rc, err, cap);
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? AL_OK : AL_ERR;
}

/* Creates the file 0600 if missing (audit events are sensitive), and its
 * directory 0700: SQLite would use 0644 and the umask. The -wal and -shm
 * files inherit the database file's mode (SQLite's unix VFS). */
static int precreate(const char *path, char *err, size_t cap)
{
    char dir[4096];
    size_t n = strlen(path);
    if (n >= sizeof dir) {
        snprintf(err, cap, "audit store: path too long: %s", path);
        return AL_ERR;
    }
    memcpy(dir, path, n + 1);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (al_mkdir_p(dir, 0700) != AL_OK) {
            snprintf(err, cap, "audit store: cannot create directory %s: %s", dir, strerror(errno));
            return AL_ERR;
        }
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        /* Let SQLite try anyway (it may open read-only and say so). */
        if (errno == EACCES || errno == EROFS || errno == EPERM) {
            snprintf(err, cap, "audit store: cannot open for writing: %s at %s", strerror(errno),
                     path);
            return AL_ERR;
        }
        return AL_OK;
    }
    close(fd);
    return AL_OK;
}

/* True when the directory holding path is on a read-only file system. */
static bool on_read_only_fs(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;
    if (n >= sizeof dir)
        return false;
    if (n == 0)
        snprintf(dir, sizeof dir, "%s", slash ? "/" : ".");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)n, path);
    return access(dir, W_OK) != 0 && errno == EROFS;
}

static int sq_open(const char *where, const al_audit_opts_t *o, bool read_only,
                   al_audit_store_t **out, char *err, size_t cap)
{
    *out = NULL;
    if (!where || !*where) {
        snprintf(err, cap, "audit store: no path given");
        return AL_ERR;
    }
    if (!read_only && precreate(where, err, cap) != AL_OK)
        return AL_ERR;
    if (read_only && access(where, F_OK) != 0) {
        snprintf(err, cap, "audit store: cannot open: no audit store at %s (%s)", where,
                 strerror(errno));
        return AL_ERR;
    }
    sq_store_t *s = calloc(1, sizeof *s);
    char *w = al_strndup(where, strlen(where));
    if (!s || !w) {
        free(s);
        free(w);
        snprintf(err, cap, "audit store: out of memory");
        return AL_ERR;
    }
    s->base.ops = &al_audit_sqlite_ops;
    s->base.where = w;
    s->read_only = read_only;
    al_buf_init(&s->scratch);
    al_buf_init(&s->gj);
    al_buf_init(&s->tj);
    al_buf_init(&s->dec);
    /* NOMUTEX: a store handle belongs to one thread at a time (audit.h). */
    int flags = (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                SQLITE_OPEN_NOMUTEX;
    char *uri = NULL;
    if (read_only && on_read_only_fs(where)) {
        /* A WAL reader needs to create the -shm file; on read-only media
         * (say, a forensic copy mounted ro) nothing can change the file, so
         * open it immutable: no locks, no -shm
         * (https://www.sqlite.org/uri.html#uriimmutable). */
        al_buf_t u;
        al_buf_init(&u);
        al_buf_puts(&u, "file:");
        for (const char *p = where; *p; p++) /* RFC 3986 §2.1: escape what ends a path */
            if (*p == '%' || *p == '?' || *p == '#')
                al_buf_printf(&u, "%%%02X", (unsigned char)*p);
            else
                al_buf_append(&u, p, 1);
        al_buf_puts(&u, "?immutable=1");
        uri = u.oom ? NULL : sqlite3_mprintf("%s", u.p);
        al_buf_free(&u);
        flags |= SQLITE_OPEN_URI;
    }
    int rc = sqlite3_open_v2(uri ? uri : where, &s->db, flags, NULL);
    sqlite3_free(uri);
    if (rc != SQLITE_OK) {
        set_err(s, "cannot open", rc, err, cap);
        sq_free(s);
        return AL_ERR;
    }
    sqlite3_extended_result_codes(s->db, 1);
    double t = o && o->commit_timeout > 0 ? o->commit_timeout : 5.0;
    sqlite3_busy_timeout(s->db, (int)(t * 1000));

    int64_t ver = 0, tables = 0;
    if (!read_only) {
        /* SQLite silently opens a write-protected file read-only; refuse it
         * here rather than fail every batch later (fail closed at start). */
        if (sqlite3_db_readonly(s->db, "main") == 1) {
            snprintf(err, cap,
                     "audit store: cannot open for writing: attempt to write a readonly database "
                     "(SQLITE_READONLY) at %s", where);
            sq_free(s);
            return AL_ERR;
        }
        char sql[160];
        snprintf(sql, sizeof sql, "PRAGMA application_id=%d", APPLICATION_ID);
        if (exec(s, "PRAGMA journal_mode=WAL", "cannot open", err, cap) != AL_OK ||
            exec(s, "PRAGMA synchronous=FULL", "cannot open", err, cap) != AL_OK ||
            query_int(s, "PRAGMA user_version", &ver, err, cap) != AL_OK)
            goto fail;
        if (ver == 0) {
            if (exec(s, "BEGIN IMMEDIATE", "cannot create schema", err, cap) != AL_OK)
                goto fail;
            if (exec(s, schema_sql, "cannot create schema", err, cap) != AL_OK ||
                exec(s, sql, "cannot create schema", err, cap) != AL_OK ||
                exec(s, "PRAGMA user_version=3", "cannot create schema", err, cap) != AL_OK ||
                exec(s, "COMMIT", "cannot create schema", err, cap) != AL_OK) {
                sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
                goto fail;
            }
            ver = SCHEMA_VERSION;
        } else if (ver == 1 || ver == 2) {
            /* Schema 1 -> 3 (byte counts and recordings) and 2 -> 3
             * (recordings), in one transaction. Old rows keep NULL, which
             * hashes as it did (al_audit_canonical). */
            static const char up1[] = "ALTER TABLE audit_event ADD COLUMN bytes_up INTEGER;"
                                      "ALTER TABLE audit_event ADD COLUMN bytes_down INTEGER;";
            static const char up2[] = "ALTER TABLE audit_event ADD COLUMN recording TEXT;"
                                      "ALTER TABLE audit_event ADD COLUMN recording_sha256 TEXT;"
                                      "PRAGMA user_version=3";
            if (exec(s, "BEGIN IMMEDIATE", "cannot upgrade schema", err, cap) != AL_OK)
                goto fail;
            if ((ver == 1 && exec(s, up1, "cannot upgrade schema", err, cap) != AL_OK) ||
                exec(s, up2, "cannot upgrade schema", err, cap) != AL_OK ||
                exec(s, "COMMIT", "cannot upgrade schema", err, cap) != AL_OK) {
                sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
                goto fail;
            }
            ver = SCHEMA_VERSION;
        }
        int64_t mode = 0;
        if (query_int(s, "SELECT count(*) FROM pragma_journal_mode WHERE journal_mode='wal'",
                      &mode, err, cap) != AL_OK)
            goto fail;
        if (mode != 1) {
            snprintf(err, cap, "audit store: cannot open: WAL mode refused at %s", where);
            goto fail;
        }
        if (o && o->max_bytes) {
            int64_t psz = 4096;
            if (query_int(s, "PRAGMA page_size", &psz, err, cap) != AL_OK)
                goto fail;
            uint64_t pages = o->max_bytes / (uint64_t)(psz > 0 ? psz : 4096);
            snprintf(sql, sizeof sql, "PRAGMA max_page_count=%" PRIu64, pages ? pages : 1);
            if (exec(s, sql, "cannot open", err, cap) != AL_OK)
                goto fail;
        }
    } else {
        /* query_only: belt and braces for the CLI's read-only connection. */
        if (exec(s, "PRAGMA query_only=1", "cannot open", err, cap) != AL_OK ||
            query_int(s, "PRAGMA user_version", &ver, err, cap) != AL_OK)
            goto fail;
    }
    if (query_int(s, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='audit_event'",
                  &tables, err, cap) != AL_OK)
        goto fail;
    if (ver == 1 && tables == 1) {
        snprintf(err, cap,
                 "audit store: cannot open: schema version 1 is from an older airlock; start "
                 "`airlock serve` once to upgrade it in place, at %s", where);
        goto fail;
    }
    if (read_only && ver == 2 && tables == 1) {
        s->v2 = true;
        ver = SCHEMA_VERSION;
    }
    if (ver != SCHEMA_VERSION || tables != 1) {
        snprintf(err, cap,
                 "audit store: cannot open: not an airlock audit store (schema version %" PRId64
                 ", expected %d) at %s", ver, SCHEMA_VERSION, where);
        goto fail;
    }
    if (!read_only) {
        rc = sqlite3_prepare_v3(s->db,
                                "INSERT INTO audit_event(" COLS ") VALUES(?,?,?,?,?,?,?,?,?,?,?,?,"
                                "?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                -1, SQLITE_PREPARE_PERSISTENT, &s->ins, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_prepare_v3(s->db, "SELECT seq, hash FROM audit_event ORDER BY seq DESC "
                                    "LIMIT 1", -1, SQLITE_PREPARE_PERSISTENT, &s->head, NULL);
        if (rc != SQLITE_OK) {
            set_err(s, "cannot open", rc, err, cap);
            goto fail;
        }
    }
    *out = &s->base;
    return AL_OK;
fail:
    sq_free(s);
    return AL_ERR;
}

/* ---- lists as JSON arrays ----------------------------------------------------
 * Written with al_buf_json_str; read back by its exact inverse below, which
 * keeps any bytes (jansson would refuse invalid UTF-8, and the hash covers
 * the raw bytes). */

static void list_json(al_buf_t *b, const char *const *v, size_t n)
{
    al_buf_reset(b);
    al_buf_append(b, "[", 1);
    for (size_t i = 0; i < n; i++) {
        if (i)
            al_buf_append(b, ",", 1);
        al_buf_json_str(b, v[i], strlen(v[i]));
    }
    al_buf_append(b, "]", 1);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static int reserve_ptrs(sq_store_t *s, size_t n)
{
    if (n <= s->cap)
        return AL_OK;
    size_t cap = s->cap ? s->cap * 2 : 16;
    while (cap < n)
        cap *= 2;
    size_t *o = al_realloc(s->offs, cap * sizeof *o);
    if (!o)
        return AL_ERR;
    s->offs = o;
    const char **p = al_realloc(s->ptrs, cap * sizeof *p);
    if (!p)
        return AL_ERR;
    s->ptrs = p;
    s->cap = cap;
    return AL_OK;
}

/* Appends the strings of JSON array p[0..n) to s->dec (each NUL-ended),
 * their offsets to s->offs from *count on. AL_ERR if it is not exactly
 * what list_json writes. */
static int list_parse(sq_store_t *s, const char *p, size_t n, size_t *count)
{
    size_t i = 0;
    if (!p || n < 2 || p[0] != '[' || p[n - 1] != ']')
        return AL_ERR;
    i = 1;
    if (n == 2)
        return AL_OK;
    for (;;) {
        if (i >= n || p[i] != '"')
            return AL_ERR;
        i++;
        if (reserve_ptrs(s, *count + 1) != AL_OK)
            return AL_ERR;
        s->offs[(*count)++] = s->dec.len;
        for (;;) {
            if (i >= n - 1)
                return AL_ERR;
            char c = p[i];
            if (c == '"') {
                i++;
                break;
            }
            if (c != '\\') {
                al_buf_append(&s->dec, &c, 1);
                i++;
                continue;
            }
            if (i + 1 >= n - 1)
                return AL_ERR;
            char e = p[i + 1], out;
            i += 2;
            switch (e) {
            case '"': out = '"'; break;
            case '\\': out = '\\'; break;
            case 'n': out = '\n'; break;
            case 'r': out = '\r'; break;
            case 't': out = '\t'; break;
            case 'u': {
                if (i + 4 > n - 1 || p[i] != '0' || p[i + 1] != '0')
                    return AL_ERR;
                int h = hexval(p[i + 2]), l = hexval(p[i + 3]);
                if (h < 0 || l < 0 || (h << 4 | l) == 0)
                    return AL_ERR;
                out = (char)(h << 4 | l);
                i += 4;
                break;
            }
            default:
                return AL_ERR;
            }
            al_buf_append(&s->dec, &out, 1);
        }
        al_buf_append(&s->dec, "", 1);
        if (i == n - 1)
            break;
        if (p[i] != ',')
            return AL_ERR;
        i++;
    }
    return s->dec.oom ? AL_ERR : AL_OK;
}

/* ---- append --------------------------------------------------------------- */

static int bind_str(sqlite3_stmt *st, int col, const char *v)
{
    if (!v)
        return sqlite3_bind_null(st, col + 1);
    return sqlite3_bind_text(st, col + 1, v, -1, SQLITE_STATIC);
}

static int bind_event(sq_store_t *s, int64_t seq, const al_audit_event_t *ev,
                      const uint8_t prev[32], const uint8_t hash[32])
{
    sqlite3_stmt *st = s->ins;
    list_json(&s->gj, ev->groups, ev->n_groups);
    list_json(&s->tj, ev->tables, ev->n_tables);
    if (s->gj.oom || s->tj.oom)
        return SQLITE_NOMEM;
    int rc = sqlite3_bind_int64(st, C_SEQ + 1, seq);
    rc |= bind_str(st, C_ID, ev->id);
    rc |= sqlite3_bind_int64(st, C_TIME + 1, ev->time_us);
    rc |= bind_str(st, C_KIND, ev->kind);
    rc |= bind_str(st, C_SESSION, ev->session_id);
    rc |= bind_str(st, C_AGENT, ev->agent);
    rc |= bind_str(st, C_SUBJECT, ev->subject);
    rc |= bind_str(st, C_ISSUER, ev->issuer);
    rc |= sqlite3_bind_text(st, C_GROUPS + 1, s->gj.p, (int)s->gj.len, SQLITE_STATIC);
    rc |= sqlite3_bind_int(st, C_GROUPS_TR + 1, ev->groups_truncated);
    rc |= bind_str(st, C_TARGET, ev->target);
    rc |= bind_str(st, C_PROTOCOL, ev->protocol);
    if (ev->action.p)
        rc |= sqlite3_bind_text(st, C_ACTION + 1, ev->action.p, (int)ev->action.len, SQLITE_STATIC);
    else
        rc |= sqlite3_bind_null(st, C_ACTION + 1);
    rc |= sqlite3_bind_int(st, C_ACTION_TR + 1, ev->action_truncated);
    rc |= bind_str(st, C_CLASS, ev->cls);
    rc |= sqlite3_bind_text(st, C_TABLES + 1, s->tj.p, (int)s->tj.len, SQLITE_STATIC);
    rc |= sqlite3_bind_int(st, C_TABLES_TR + 1, ev->tables_truncated);
    rc |= bind_str(st, C_DECISION, ev->decision);
    rc |= bind_str(st, C_RULE, ev->rule);
    rc |= bind_str(st, C_REASON, ev->reason);
    rc |= bind_str(st, C_APPROVAL, ev->approval_id);
    rc |= bind_str(st, C_REF, ev->ref_id);
    rc |= ev->rows >= 0 ? sqlite3_bind_int64(st, C_ROWS + 1, ev->rows)
                        : sqlite3_bind_null(st, C_ROWS + 1);
    rc |= bind_str(st, C_STATUS, ev->status);
    rc |= ev->duration_us >= 0 ? sqlite3_bind_int64(st, C_DURATION + 1, ev->duration_us)
                               : sqlite3_bind_null(st, C_DURATION + 1);
    rc |= bind_str(st, C_ERROR, ev->error);
    rc |= sqlite3_bind_blob(st, C_PREV + 1, prev, 32, SQLITE_STATIC);
    rc |= sqlite3_bind_blob(st, C_HASH + 1, hash, 32, SQLITE_STATIC);
    rc |= ev->bytes_up >= 0 ? sqlite3_bind_int64(st, C_BYTES_UP + 1, ev->bytes_up)
                            : sqlite3_bind_null(st, C_BYTES_UP + 1);
    rc |= ev->bytes_down >= 0 ? sqlite3_bind_int64(st, C_BYTES_DOWN + 1, ev->bytes_down)
                              : sqlite3_bind_null(st, C_BYTES_DOWN + 1);
    rc |= bind_str(st, C_RECORDING, ev->recording);
    rc |= bind_str(st, C_RECORDING_SHA, ev->recording_sha256);
    return rc ? SQLITE_RANGE : SQLITE_OK;
}

static int sq_append(al_audit_store_t *base, const al_audit_event_t *const *evs, size_t n,
                     char *err, size_t cap)
{
    sq_store_t *s = (sq_store_t *)base;
    if (s->read_only || !s->ins) {
        snprintf(err, cap,
                 "audit store: cannot commit: attempt to write a readonly database "
                 "(SQLITE_READONLY) at %s", s->base.where);
        return AL_ERR;
    }
    if (n == 0)
        return AL_OK;
    int rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        goto fail;
    /* On every failure below, err is written at once, before a reset or
     * rollback can replace the connection's message. */
    uint8_t prev[32] = {0}, hash[32];
    int64_t seq = 0;
    rc = sqlite3_step(s->head);
    if (rc == SQLITE_ROW) {
        seq = sqlite3_column_int64(s->head, 0);
        const void *h = sqlite3_column_blob(s->head, 1);
        size_t hl = (size_t)sqlite3_column_bytes(s->head, 1);
        /* A tampered head of the wrong size is copied as far as it goes;
         * verify reports that row, and the chain goes on from here. */
        if (h)
            memcpy(prev, h, AL_MIN(hl, sizeof prev));
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK)
        set_err(s, "cannot commit", rc, err, cap);
    sqlite3_reset(s->head);
    if (rc != SQLITE_OK)
        goto rollback;
    for (size_t i = 0; i < n; i++) {
        /* The writer is background work beside the gateways' loops: a batch
         * of a few hundred inserts is ~1 ms of CPU, and a gateway thread (or
         * the client, or the upstream) woken onto this CPU meanwhile waited
         * for it (the scheduler does not preempt a running thread at once).
         * Yielding every YIELD_EVERY events lets them run first; it returns
         * at once when nothing waits. Measured at one HTTP connection
         * (bench/http): p99 ~800 us -> ~350 us. */
        if (i && i % YIELD_EVERY == 0)
            sched_yield();
        if (al_audit_chain_hash(prev, evs[i], &s->scratch, hash) != AL_OK) {
            rc = SQLITE_NOMEM;
            goto fail;
        }
        rc = bind_event(s, ++seq, evs[i], prev, hash);
        if (rc == SQLITE_OK) {
            rc = sqlite3_step(s->ins);
            if (rc == SQLITE_DONE)
                rc = SQLITE_OK;
        }
        if (rc != SQLITE_OK)
            set_err(s, "cannot commit", rc, err, cap);
        sqlite3_reset(s->ins);
        sqlite3_clear_bindings(s->ins);
        if (rc != SQLITE_OK)
            goto rollback;
        memcpy(prev, hash, 32);
    }
    sched_yield(); /* and before the commit's writes */
    rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        goto fail;
    return AL_OK;
fail:
    set_err(s, "cannot commit", rc, err, cap);
rollback:
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return AL_ERR;
}

/* ---- reading ---------------------------------------------------------------- */

static const char *col_str(sqlite3_stmt *st, int c)
{
    if (sqlite3_column_type(st, c) == SQLITE_NULL)
        return NULL;
    return (const char *)sqlite3_column_text(st, c);
}

/* Fills row from the current result row of st. Never fails: a column that
 * cannot be decoded sets row->decode_error. */
static void decode_row(sq_store_t *s, sqlite3_stmt *st, al_audit_row_t *row)
{
    memset(row, 0, sizeof *row);
    al_audit_event_t *ev = &row->ev;
    row->seq = sqlite3_column_int64(st, C_SEQ);
    const char *id = col_str(st, C_ID);
    snprintf(ev->id, sizeof ev->id, "%s", id ? id : "");
    if (id && strlen(id) >= sizeof ev->id)
        row->decode_error = "id is not a UUID";
    ev->time_us = sqlite3_column_int64(st, C_TIME);
    ev->kind = col_str(st, C_KIND);
    ev->session_id = col_str(st, C_SESSION);
    ev->agent = col_str(st, C_AGENT);
    ev->subject = col_str(st, C_SUBJECT);
    ev->issuer = col_str(st, C_ISSUER);
    ev->groups_truncated = sqlite3_column_int(st, C_GROUPS_TR) != 0;
    ev->target = col_str(st, C_TARGET);
    ev->protocol = col_str(st, C_PROTOCOL);
    if (sqlite3_column_type(st, C_ACTION) != SQLITE_NULL) {
        ev->action.p = (const char *)sqlite3_column_text(st, C_ACTION);
        ev->action.len = (size_t)sqlite3_column_bytes(st, C_ACTION);
    }
    ev->action_truncated = sqlite3_column_int(st, C_ACTION_TR) != 0;
    ev->cls = col_str(st, C_CLASS);
    ev->tables_truncated = sqlite3_column_int(st, C_TABLES_TR) != 0;
    ev->decision = col_str(st, C_DECISION);
    ev->rule = col_str(st, C_RULE);
    ev->reason = col_str(st, C_REASON);
    ev->approval_id = col_str(st, C_APPROVAL);
    ev->ref_id = col_str(st, C_REF);
    ev->rows = sqlite3_column_type(st, C_ROWS) == SQLITE_NULL ? -1
                                                              : sqlite3_column_int64(st, C_ROWS);
    ev->status = col_str(st, C_STATUS);
    ev->duration_us = sqlite3_column_type(st, C_DURATION) == SQLITE_NULL
                          ? -1
                          : sqlite3_column_int64(st, C_DURATION);
    ev->error = col_str(st, C_ERROR);
    ev->bytes_up = sqlite3_column_type(st, C_BYTES_UP) == SQLITE_NULL
                       ? -1
                       : sqlite3_column_int64(st, C_BYTES_UP);
    ev->bytes_down = sqlite3_column_type(st, C_BYTES_DOWN) == SQLITE_NULL
                         ? -1
                         : sqlite3_column_int64(st, C_BYTES_DOWN);
    ev->recording = col_str(st, C_RECORDING);
    ev->recording_sha256 = col_str(st, C_RECORDING_SHA);
    row->prev_hash = sqlite3_column_blob(st, C_PREV);
    row->prev_len = (size_t)sqlite3_column_bytes(st, C_PREV);
    row->hash = sqlite3_column_blob(st, C_HASH);
    row->hash_len = (size_t)sqlite3_column_bytes(st, C_HASH);

    /* Lists last: their text pointers must stay valid, and reading other
     * columns after them is fine (no type conversion on these). */
    al_buf_reset(&s->dec);
    size_t ng = 0, nt = 0;
    const char *g = col_str(st, C_GROUPS);
    size_t gl = g ? (size_t)sqlite3_column_bytes(st, C_GROUPS) : 0;
    const char *t = col_str(st, C_TABLES);
    size_t tl = t ? (size_t)sqlite3_column_bytes(st, C_TABLES) : 0;
    if (list_parse(s, g, gl, &ng) != AL_OK) {
        row->decode_error = "groups is not a list";
        return;
    }
    nt = ng;
    if (list_parse(s, t, tl, &nt) != AL_OK) {
        row->decode_error = "tables is not a list";
        return;
    }
    for (size_t i = 0; i < nt; i++)
        s->ptrs[i] = s->dec.p + s->offs[i];
    ev->groups = ng ? s->ptrs : NULL;
    ev->n_groups = ng;
    ev->tables = nt > ng ? s->ptrs + ng : NULL;
    ev->n_tables = nt - ng;
}

static bool row_tables_match(const al_audit_row_t *row, const char *want)
{
    for (size_t i = 0; i < row->ev.n_tables; i++)
        if (al_audit_table_match(row->ev.tables[i], want))
            return true;
    return false;
}

/* Steps st to the end (or limit rows passing the table filter), calling cb
 * for each. */
static int walk(sq_store_t *s, sqlite3_stmt *st, const char *table, size_t limit,
                al_audit_row_cb cb, void *ud, char *err, size_t cap)
{
    al_audit_row_t row;
    size_t n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        decode_row(s, st, &row);
        if (table && (row.decode_error || !row_tables_match(&row, table)))
            continue;
        int r = cb(ud, &row);
        if (r != AL_OK)
            return r;
        if (limit && ++n >= limit)
            return AL_OK;
    }
    if (rc != SQLITE_DONE) {
        set_err(s, "cannot read", rc, err, cap);
        return AL_ERR;
    }
    return AL_OK;
}

static int sq_iterate(al_audit_store_t *base, int64_t after_seq, al_audit_row_cb cb, void *ud,
                      char *err, size_t cap)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = NULL;
    static const char sql3[] = "SELECT " COLS " FROM audit_event WHERE seq > ? ORDER BY seq";
    static const char sql2[] = "SELECT " COLS_READ_V2 " FROM audit_event WHERE seq > ? ORDER BY seq";
    int rc = sqlite3_prepare_v2(s->db, s->v2 ? sql2 : sql3, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        set_err(s, "cannot read", rc, err, cap);
        return AL_ERR;
    }
    sqlite3_bind_int64(st, 1, after_seq);
    /* One statement = one read transaction = one consistent snapshot. */
    int r = walk(s, st, NULL, 0, cb, ud, err, cap);
    sqlite3_finalize(st);
    return r;
}

static int sq_query(al_audit_store_t *base, const al_audit_filter_t *f, al_audit_row_cb cb,
                    void *ud, char *err, size_t cap)
{
    sq_store_t *s = (sq_store_t *)base;
    al_buf_t sql, needle;
    al_buf_init(&sql);
    al_buf_init(&needle);
    const char *texts[8];
    int nt = 0;
    int64_t ints[3];
    int ni = 0;
    al_buf_printf(&sql, "SELECT %s FROM audit_event WHERE 1", s->v2 ? COLS_READ_V2 : COLS);
    static const struct {
        size_t off;
        const char *col;
    } eq[] = {
        {offsetof(al_audit_filter_t, agent), "agent"},
        {offsetof(al_audit_filter_t, target), "target"},
        {offsetof(al_audit_filter_t, decision), "decision"},
        {offsetof(al_audit_filter_t, kind), "kind"},
        {offsetof(al_audit_filter_t, session_id), "session_id"},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(eq); i++) {
        const char *v = *(const char *const *)((const char *)f + eq[i].off);
        if (v) {
            al_buf_printf(&sql, " AND %s = ?%d", eq[i].col, nt + 1);
            texts[nt++] = v;
        }
    }
    if (f->table) {
        /* Prefilter on the JSON text: the escaped bare name is a substring
         * of every event that can match; the exact rule runs in walk(). */
        const char *dot = strrchr(f->table, '.');
        const char *bare = dot ? dot + 1 : f->table;
        al_buf_json_str(&needle, bare, strlen(bare));
        needle.p[needle.len - 1] = '\0';
        al_buf_printf(&sql, " AND instr(tables, ?%d) > 0", nt + 1);
        texts[nt++] = needle.p + 1;
    }
    int first_int = nt + 1;
    if (f->since_us) {
        al_buf_printf(&sql, " AND time_us >= ?%d", first_int + ni);
        ints[ni++] = f->since_us;
    }
    if (f->until_us) {
        al_buf_printf(&sql, " AND time_us < ?%d", first_int + ni);
        ints[ni++] = f->until_us;
    }
    if (f->before_seq) {
        al_buf_printf(&sql, " AND seq < ?%d", first_int + ni);
        ints[ni++] = f->before_seq;
    }
    size_t limit = f->limit ? AL_MIN(f->limit, (size_t)AL_AUDIT_MAX_LIMIT) : AL_AUDIT_DEFAULT_LIMIT;
    al_buf_puts(&sql, " ORDER BY seq DESC");
    if (!f->table)
        al_buf_printf(&sql, " LIMIT %zu", limit);
    int r = AL_ERR;
    sqlite3_stmt *st = NULL;
    if (sql.oom || needle.oom) {
        snprintf(err, cap, "audit store: out of memory");
        goto out;
    }
    int rc = sqlite3_prepare_v2(s->db, sql.p, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        set_err(s, "cannot read", rc, err, cap);
        goto out;
    }
    for (int i = 0; i < nt; i++)
        sqlite3_bind_text(st, i + 1, texts[i], -1, SQLITE_STATIC);
    for (int i = 0; i < ni; i++)
        sqlite3_bind_int64(st, first_int + i, ints[i]);
    r = walk(s, st, f->table, limit, cb, ud, err, cap);
out:
    sqlite3_finalize(st);
    al_buf_free(&sql);
    al_buf_free(&needle);
    return r;
}

const al_audit_store_ops_t al_audit_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .append = sq_append,
    .iterate = sq_iterate,
    .query = sq_query,
    .close = sq_close,
};
