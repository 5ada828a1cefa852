/*
 * audit.h - the audit log: every decision the gateway takes becomes one
 * append-only, hash-chained event in a store (SQLite by default).
 *
 * Pieces, in the order a caller meets them:
 *
 *   al_audit_event_t   what happened (borrowed strings; the library copies)
 *   al_audit_t         a store plus one writer thread that commits queued
 *                      events in groups: every event queued while a commit
 *                      runs goes into the next transaction
 *   al_audit_submit    strict: the callback fires, on the writer thread,
 *                      only after the transaction holding the event has
 *                      committed (or failed: rc AL_ERR with a message)
 *   al_audit_submit_async   fire and forget, batched by flush interval and
 *                      batch size; failures are logged and counted
 *   al_audit_write_sync     blocking strict write for the control thread/CLI
 *   al_audit_store_t   the narrow store interface (open, append a batch in
 *                      one transaction, iterate in order, query, close)
 *   al_audit_verify    walks the hash chain and reports the first break
 *   al_audit_query_json     the JSON array `airlock audit query --json` and
 *                      GET /v1/audit print
 *
 * Chain: event i carries prev_hash = hash(i-1) (32 zero bytes for the first)
 * and hash = SHA-256(prev_hash || canonical(event)); the canonical form is
 * documented in docs/audit.md and produced by al_audit_canonical().
 *
 * Threading: al_audit_submit*, al_audit_write_sync and al_audit_stats are
 * safe from any thread. A store handle (al_audit_store_t) is used by one
 * thread at a time; the writer owns the one inside an al_audit_t.
 */
#ifndef AL_AUDIT_H
#define AL_AUDIT_H

#include "core/config.h"
#include "core/core.h"

/* ---- events --------------------------------------------------------------- */

/* Event kinds (the `kind` field). Free text in the store; these are the
 * ones airlock writes. */
#define AL_AUDIT_KIND_DECISION "decision" /* a policy decision on an action */
#define AL_AUDIT_KIND_RESULT "result"     /* the outcome of an allowed action */
#define AL_AUDIT_KIND_ADMIN "admin"       /* an admin API / CLI change */
#define AL_AUDIT_KIND_AUTH "auth"         /* an authentication refusal */

/* UUIDv7 text, 36 characters plus NUL (RFC 9562 §5.7). */
#define AL_AUDIT_ID_SIZE 37
/* At most this many groups and tables are kept per event; the rest are
 * dropped and groups_truncated / tables_truncated is set. */
#define AL_AUDIT_MAX_LIST 256
/* Room for any message this library writes into a caller's err buffer. */
#define AL_AUDIT_ERR_SIZE 1024

/* One audit event. As input (al_audit_submit*), every pointer is borrowed
 * for the duration of the call only: the library copies the event into one
 * allocation. NULL means "absent" and is kept distinct from "". As output
 * (store iteration), every pointer is owned by the store and valid only
 * during the row callback. Never put a token or password in any field. */
typedef struct al_audit_event {
    char id[AL_AUDIT_ID_SIZE]; /* output: UUIDv7, set at submission */
    int64_t time_us;           /* microseconds since the epoch, UTC; 0 on
                                  input = now */
    const char *kind;          /* AL_AUDIT_KIND_*; NULL on input = "decision" */
    const char *session_id;    /* gateway session (connection) id */
    /* principal */
    const char *agent;         /* inventory agent name */
    const char *subject;       /* token "sub" */
    const char *issuer;        /* token "iss" */
    const char *const *groups;
    size_t n_groups;
    bool groups_truncated;     /* output: more than AL_AUDIT_MAX_LIST groups */
    /* what was attempted */
    const char *target;        /* configured target name */
    const char *protocol;      /* "postgres", "http", "ssh", "admin" ... */
    al_str_t action;           /* statement text, "METHOD /path" or command;
                                  may hold any bytes */
    bool action_truncated;     /* set by the library when action was longer
                                  than max_action_bytes (or by the caller if
                                  it already cut it) */
    const char *cls;           /* statement class ("read", "write", ...); JSON "class" */
    const char *const *tables; /* "schema.name" or "name" */
    size_t n_tables;
    bool tables_truncated;     /* more than AL_AUDIT_MAX_LIST tables */
    /* the decision */
    const char *decision;      /* "allow", "deny", "pending" ... */
    const char *rule;          /* policy rule that decided */
    const char *reason;        /* stable reason code or text */
    const char *approval_id;   /* approval request, when one was involved */
    const char *ref_id;        /* for a "result": the id of its decision event */
    /* the result, when known */
    int64_t rows;              /* rows returned/affected; -1 unknown */
    const char *status;        /* protocol status: SQLSTATE, HTTP code, exit status */
    int64_t duration_us;       /* -1 unknown */
    const char *error;         /* error text from upstream, if any */
    /* bytes relayed, for sessions and HTTP exchanges; -1 unknown */
    int64_t bytes_up;          /* client -> upstream */
    int64_t bytes_down;        /* upstream -> client */
    /* session recordings (docs/recordings.md), store schema 3; NULL absent */
    const char *recording;        /* path under the recordings directory,
                                     "YYYY/MM/DD/<session>.jsonl.gz" */
    const char *recording_sha256; /* the file's SHA-256, 64 lower-case hex */
} al_audit_event_t;

/* An event with every optional field absent (rows/duration -1). */
void al_audit_event_init(al_audit_event_t *ev);

/* Appends the canonical serialization of ev (version 1, docs/audit.md) to
 * out. Deterministic; every field, NULL distinct from "". AL_OK or AL_ERR
 * (out of memory). */
int al_audit_canonical(const al_audit_event_t *ev, al_buf_t *out);

/* out = SHA-256(prev || canonical(ev)). scratch is reset and reused (pass
 * the same buffer for a run of events). AL_OK or AL_ERR (out of memory). */
int al_audit_chain_hash(const uint8_t prev[32], const al_audit_event_t *ev, al_buf_t *scratch,
                        uint8_t out[32]);

/* Writes a new UUIDv7 (RFC 9562 §5.7) for time t_us into out: 48-bit
 * milliseconds, sub-millisecond fraction in rand_a (§6.2 method 3), 62
 * random bits from OpenSSL's CSPRNG (drawn 512 bytes at a time per thread;
 * a fork discards the buffer). AL_ERR if the CSPRNG failed. */
int al_audit_uuid7(int64_t t_us, char out[AL_AUDIT_ID_SIZE]);

/* Appends ev as a JSON object (keys in docs/audit.md; "time" RFC 3339 UTC
 * with microseconds; invalid UTF-8 shown as U+FFFD). seq > 0 and non-NULL
 * hashes add "seq", "prev_hash", "hash". */
int al_audit_event_json(const al_audit_event_t *ev, int64_t seq, const uint8_t *prev_hash,
                        const uint8_t *hash, al_buf_t *out);

/* ---- options -------------------------------------------------------------- */

typedef struct al_audit_opts {
    const char *path;        /* store location: the SQLite file */
    size_t max_action_bytes; /* 0 = 4096; also caps every other text field */
    double commit_timeout;   /* seconds to wait for a lock (busy_timeout); 0 = 5 */
    double flush_interval;   /* async batching delay in seconds; 0 = 0.01 */
    size_t max_batch;        /* events per transaction at most; 0 = 512 */
    size_t queue_capacity;   /* queued events at most; 0 = 65536 */
    uint64_t max_bytes;      /* store size cap in bytes (SQLite
                                max_page_count); 0 = unlimited */
} al_audit_opts_t;

/* The store path for a config: `audit.path`, which the loader defaults to
 * `<server.data_dir>/audit.db` (that too when cfg->audit.path is NULL).
 * The one place that knows. Writes into buf (cap bytes) and returns buf, or
 * NULL if it does not fit. */
const char *al_audit_path(const al_config_t *cfg, char *buf, size_t cap);

/* Fills o from the config's `audit:` section (zeros mean the defaults
 * above), o->path pointing into buf. Returns o->path, NULL if the path does
 * not fit in cap bytes. */
const char *al_audit_opts_from_config(const al_config_t *cfg, al_audit_opts_t *o, char *buf,
                                      size_t cap);

/* ---- store interface -------------------------------------------------------- */

typedef struct al_audit_store al_audit_store_t;
typedef struct al_audit_store_ops al_audit_store_ops_t;

/* Every store begins with this header; implementations embed it first. */
struct al_audit_store {
    const al_audit_store_ops_t *ops;
    char *where; /* path / location for messages; owned by the store */
};

/* One stored row as iteration and queries hand it out. */
typedef struct al_audit_row {
    int64_t seq;          /* position in the chain, 1-based, no gaps unless tampered */
    al_audit_event_t ev;
    const uint8_t *prev_hash; /* prev_len bytes; 32 unless tampered */
    size_t prev_len;
    const uint8_t *hash;
    size_t hash_len;
    const char *decode_error; /* non-NULL: a column could not be decoded
                                 (tampering); ev is then partial */
} al_audit_row_t;

/* Row callback: return AL_OK to continue, anything else stops the walk (and
 * is returned by the walking function). The row is valid only during the
 * call. */
typedef int (*al_audit_row_cb)(void *ud, const al_audit_row_t *row);

/* Query filters. Strings are borrowed; NULL = no filter on that field. */
typedef struct al_audit_filter {
    const char *agent, *target, *decision, *kind, *session_id;
    const char *table;   /* exact table: "public.orders" and "orders" both
                            match an event table "public.orders"; an event
                            table "orders" (unqualified) matches both too */
    int64_t since_us;    /* time >= since; 0 = no bound */
    int64_t until_us;    /* time < until; 0 = no bound */
    int64_t before_seq;  /* seq < before (paging); 0 = no bound */
    size_t limit;        /* 0 = AL_AUDIT_DEFAULT_LIMIT; at most AL_AUDIT_MAX_LIMIT */
} al_audit_filter_t;
#define AL_AUDIT_DEFAULT_LIMIT 100
#define AL_AUDIT_MAX_LIMIT 100000

/* The vtable a store implements. Every function returns AL_OK or AL_ERR
 * with a message in err (cap bytes, AL_AUDIT_ERR_SIZE is enough) that names
 * the cause and the store location. */
struct al_audit_store_ops {
    const char *name; /* "sqlite" */
    /* Opens (creating if needed, unless read_only) the store at where.
     * A writable open refuses a store it cannot write. */
    int (*open)(const char *where, const al_audit_opts_t *o, bool read_only,
                al_audit_store_t **out, char *err, size_t cap);
    /* Appends n events in ONE transaction: reads the chain head inside it,
     * sets each event's prev_hash/hash, commits durably. On AL_ERR nothing
     * of the batch is stored and err reads "audit store: cannot commit:
     * <cause> (<CODE>) at <where>". */
    int (*append)(al_audit_store_t *s, const al_audit_event_t *const *evs, size_t n, char *err,
                  size_t cap);
    /* Calls cb for every row with seq > after_seq, in chain order, from
     * one consistent snapshot. */
    int (*iterate)(al_audit_store_t *s, int64_t after_seq, al_audit_row_cb cb, void *ud,
                   char *err, size_t cap);
    /* Calls cb for rows matching f, newest first, at most f->limit. */
    int (*query)(al_audit_store_t *s, const al_audit_filter_t *f, al_audit_row_cb cb, void *ud,
                 char *err, size_t cap);
    /* Releases everything; s is invalid afterwards. */
    void (*close)(al_audit_store_t *s);
};

/* The SQLite store (store_sqlite.c): WAL, synchronous=FULL, busy_timeout. */
extern const al_audit_store_ops_t al_audit_sqlite_ops;

/* Convenience wrappers over s->ops. al_audit_store_open uses the SQLite
 * store; o may be NULL (defaults). al_audit_store_close accepts *s == NULL
 * and clears it. */
int al_audit_store_open(const char *path, const al_audit_opts_t *o, bool read_only,
                        al_audit_store_t **out, char *err, size_t cap);
int al_audit_store_iterate(al_audit_store_t *s, int64_t after_seq, al_audit_row_cb cb, void *ud,
                           char *err, size_t cap);
int al_audit_store_query(al_audit_store_t *s, const al_audit_filter_t *f, al_audit_row_cb cb,
                         void *ud, char *err, size_t cap);
void al_audit_store_close(al_audit_store_t **s);

/* ---- writer ---------------------------------------------------------------- */

typedef struct al_audit al_audit_t;

/* Strict completion, called on the writer thread exactly once per accepted
 * submission: rc AL_OK once the transaction holding the event committed,
 * AL_ERR (err = "audit store: cannot commit: ...") if it failed. id and err
 * are valid during the call only. Keep it short: bounce to your own loop
 * (uv_async_send). Never call al_audit_write_sync or al_audit_close from
 * it. */
typedef void (*al_audit_done_cb)(void *ud, int rc, const char *id, const char *err);

/* Opens the SQLite store at o->path and starts the writer thread. Returns
 * AL_OK and *out (caller owns; al_audit_close), or AL_ERR with a message. */
int al_audit_open(const al_audit_opts_t *o, al_audit_t **out, char *err, size_t cap);

/* Same over an already opened store (any implementation); takes ownership
 * of store in every case. */
int al_audit_open_store(al_audit_store_t *store, const al_audit_opts_t *o, al_audit_t **out,
                        char *err, size_t cap);

/* Stops accepting, commits everything queued (strict callbacks fire), joins
 * the writer and closes the store. Accepts *a == NULL; clears *a.
 * Submissions racing with it are either committed or refused ("audit log
 * closed"); none may start after it returns (the handle is gone), so stop
 * the workers first. */
void al_audit_close(al_audit_t **a);

/* Strict submission (ev not NULL). Copies ev (one allocation; action cut at
 * max_action_bytes), assigns time (if 0) and a UUIDv7 id, written to id_out
 * when non-NULL, and queues it without blocking on I/O. Returns AL_OK: cb
 * will be called. AL_ERR: refused at once, cb will NOT be called, *err (if
 * err non-NULL) is a static message ("audit queue full", "audit log
 * closed", "out of memory", ...) - fail closed. */
int al_audit_submit(al_audit_t *a, const al_audit_event_t *ev, al_audit_done_cb cb, void *ud,
                    char id_out[AL_AUDIT_ID_SIZE], const char **err);

/* Asynchronous submission: no callback; committed within flush_interval or
 * as soon as max_batch events wait. AL_OK queued, AL_AGAIN dropped (queue
 * full or closed; counted in `dropped`), AL_ERR out of memory (counted in
 * `dropped` too). */
int al_audit_submit_async(al_audit_t *a, const al_audit_event_t *ev,
                          char id_out[AL_AUDIT_ID_SIZE]);

/* Strict submission that blocks the calling thread until the commit (or
 * its failure). AL_OK committed; AL_ERR with the message in err. Not from
 * the writer thread (a done callback). */
int al_audit_write_sync(al_audit_t *a, const al_audit_event_t *ev,
                        char id_out[AL_AUDIT_ID_SIZE], char *err, size_t cap);

/* Counters for /metrics. Monotonic except queue_depth. */
typedef struct al_audit_stats {
    uint64_t committed;      /* events in committed transactions */
    uint64_t failed;         /* events in transactions that failed */
    uint64_t rejected;       /* strict submissions refused at once */
    uint64_t dropped;        /* async submissions dropped */
    uint64_t batches;        /* transactions committed */
    uint64_t batches_failed; /* transactions that failed */
    uint64_t queue_depth;    /* events queued right now */
    uint64_t queue_capacity;
} al_audit_stats_t;

void al_audit_stats(const al_audit_t *a, al_audit_stats_t *out);

/* Appends the counters to b in Prometheus text format 0.0.4
 * (airlock_audit_events_total{result=...}, airlock_audit_batches_total,
 * airlock_audit_queue_depth, airlock_audit_queue_capacity). */
int al_audit_metrics(const al_audit_t *a, al_buf_t *b);

/* ---- verify and query ------------------------------------------------------ */

typedef struct al_audit_verify {
    uint64_t events;          /* rows walked, including the broken one */
    bool intact;
    int64_t bad_seq;          /* first broken row (0 when intact) */
    char bad_id[AL_AUDIT_ID_SIZE];
    char reason[256];         /* what is wrong with it */
    uint8_t head[32];         /* hash of the last intact event (zeros if none) */
} al_audit_verify_t;

/* Walks the whole chain in order. AL_OK: out->intact says whether every
 * event links to its predecessor and matches its own hash; otherwise
 * out->bad_seq / reason name the first break (edited, deleted, reordered
 * or inserted event). AL_ERR: the store could not be read (err). */
int al_audit_verify(al_audit_store_t *s, al_audit_verify_t *out, char *err, size_t cap);

/* ---- recordings (docs/recordings.md "Audit events") --------------------------- */

/* Event kinds the recorder writes (also in record/record.h). */
#ifndef AL_AUDIT_KIND_SESSION_END
#define AL_AUDIT_KIND_SESSION_END "session_end" /* a session closed; names its recording */
#endif
#ifndef AL_AUDIT_KIND_RECORDING
#define AL_AUDIT_KIND_RECORDING "recording" /* retention removed a recording */
#endif

/* What is wrong with one recording. Each has a stable text, the start of
 * the line al_audit_verify_recordings reports. */
typedef enum al_audit_rec_problem {
    AL_AUDIT_REC_OK = 0,
    AL_AUDIT_REC_CHANGED,         /* "recording changed": hash differs, or not a regular file */
    AL_AUDIT_REC_MISSING,         /* "recording missing": no file (or no directory) */
    AL_AUDIT_REC_PATH_INVALID,    /* "recording path invalid": not YYYY/MM/DD/<session>.<ext> */
    AL_AUDIT_REC_HASH_INVALID,    /* "recording hash invalid": recording_sha256 not 64 hex */
    AL_AUDIT_REC_UNREADABLE,      /* "recording unreadable": open/read failed (EACCES, EIO) */
    AL_AUDIT_REC_REMOVED_CHANGED, /* "recording changed before removal": the removal
                                     event's hash differs from the session's */
} al_audit_rec_problem_t;

/* Stable text of a problem ("recording changed", ...). */
const char *al_audit_rec_problem_str(al_audit_rec_problem_t p);

/* One report line, e.g. "recording changed: 2026/11/23/<id>.jsonl.gz
 * (session <id>, audit seq 12)". Paths and ids are shown with control and
 * non-ASCII bytes as \xNN (they are untrusted). line is valid during the
 * call only. */
typedef void (*al_audit_rec_problem_cb)(void *ud, al_audit_rec_problem_t what, int64_t seq,
                                        const char *line);

typedef struct al_audit_rec_verify {
    uint64_t named;    /* events naming a recording (not removals) */
    uint64_t checked;  /* of those, files present and matching their hash */
    uint64_t removed;  /* of those, removed later by retention (not checked) */
    uint64_t problems; /* reported through cb */
} al_audit_rec_verify_t;

/* Checks every recording an event names (the recorder's "session_end"
 * events; any kind but "recording" counts, so a renamed kind is still
 * checked rather than skipped): the file
 * <dir>/<recording> must be a regular file (no symbolic link anywhere under
 * dir) whose SHA-256 is recording_sha256, unless a later "recording" event
 * names the same recording (a retention removal; its hash must then match
 * too). `recording` is untrusted: only YYYY/MM/DD/<session id><ext> with ext
 * ".jsonl.gz", ".cast.gz", ".jsonl" or ".cast" is opened. Problems go to cb
 * (may be NULL) in chain order. Removals committed while the walk ran are
 * read again before a file is reported missing or changed, so a gateway's
 * retention running alongside raises no false alarm. Memory: one 56-byte
 * entry per removal event plus one per problem.
 * AL_OK (out says what was found), AL_ERR when the store or dir cannot be
 * read (err). */
int al_audit_verify_recordings(al_audit_store_t *s, const char *dir, al_audit_rec_problem_cb cb,
                               void *ud, al_audit_rec_verify_t *out, char *err, size_t cap);

/* SHA-256 of everything read from fd until end of file, as 64 lower-case
 * hex digits and a NUL in hex. AL_OK, or AL_ERR with errno set. */
int al_audit_sha256_fd(int fd, char hex[65]);

/* Sets one filter field from text, as `airlock audit query` options and
 * GET /v1/audit query parameters give them. Keys: agent, target, table,
 * decision, kind, session, since, until (a duration before now such as
 * "1h", or an RFC 3339 UTC time), before (seq), limit. value is borrowed
 * (kept by pointer for the string keys). now is epoch seconds. AL_OK, or
 * AL_ERR with a message naming the key. */
int al_audit_filter_set(al_audit_filter_t *f, const char *key, const char *value, double now,
                        char *err, size_t cap);

/* Appends to out the JSON array of the events matching f, newest first
 * (objects as al_audit_event_json, with seq and hashes). AL_OK, or AL_ERR
 * with err (out then holds a partial array: discard it). */
int al_audit_query_json(al_audit_store_t *s, const al_audit_filter_t *f, al_buf_t *out, char *err,
                        size_t cap);

/* True when an event table name matches a --table filter (the rule in
 * al_audit_filter_t.table). */
bool al_audit_table_match(const char *event_table, const char *want);

#endif
