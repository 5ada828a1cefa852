/*
 * record.h - session recording (docs/recordings.md).
 *
 * Every gateway session writes a recording: JSON Lines for PostgreSQL,
 * HTTP and tunnel sessions (asciicast v2 for terminal sessions, later).
 * Workers never touch the disk: they format one line at a time into their
 * own scratch buffer and push it into a per-worker single-producer ring;
 * one recorder thread drains the rings, appends to
 * <recordings dir>/YYYY/MM/DD/<session>.jsonl, and when the session closes
 * compresses the file to <session>.jsonl.gz (gzip), fsyncs it, and writes
 * the session's closing audit event (kind "session") carrying the
 * compressed file's path and SHA-256, so `airlock audit verify` detects a
 * changed or missing recording.
 *
 * Retention (recordings.retain, recordings.max_bytes) runs on the recorder
 * thread; every removal is an audit event (kind "recording").
 *
 * A write failure (disk full) sets a flag workers read with
 * al_recorder_refusing(): under recordings.on_failure: refuse, new actions
 * are refused until a retry succeeds.
 */
#ifndef AL_RECORD_H
#define AL_RECORD_H

#include <stdint.h>

#include "core/core.h"

struct al_audit;

/* Recording format version (the header line's "version"). */
#define AL_REC_VERSION 1

/* Compressed recordings end with this; open ones are plain ".jsonl". */
#define AL_REC_EXT_JSONL ".jsonl"
#define AL_REC_EXT_GZ ".gz"

/* Audit event kinds written here. */
#define AL_AUDIT_KIND_SESSION_END "session_end" /* a session closed; carries its recording */
#define AL_AUDIT_KIND_RECORDING "recording" /* retention removed a recording */

typedef enum al_rec_failure {
    AL_REC_FAIL_REFUSE = 0, /* refuse new actions while the recorder cannot write */
    AL_REC_FAIL_CONTINUE,   /* keep serving; the recording has a gap (logged, audited) */
} al_rec_failure_t;

typedef struct al_rec_opts {
    const char *dir;         /* <data_dir>/recordings */
    double retain;           /* seconds; 0 = keep forever */
    uint64_t max_bytes;      /* total size cap of closed recordings; 0 = none */
    al_rec_failure_t on_failure;
    int n_workers;           /* one ring per worker */
    size_t ring_bytes;       /* per worker; 0 = 4 MiB */
    double flush_interval;   /* seconds between drains; 0 = 0.05 (50 ms) */
} al_rec_opts_t;

typedef struct al_recorder al_recorder_t;
typedef struct al_rec al_rec_t; /* one session's recording */

/* Creates dir if needed, finalizes recordings left open by a crash (each
 * gets its closing "session" event with reason "recovered"), runs
 * retention once, and starts the recorder thread. audit is borrowed (may
 * be NULL in tests: no events). AL_OK or AL_ERR with a message. */
int al_recorder_open(const al_rec_opts_t *o, struct al_audit *audit, al_recorder_t **out,
                     char *err, size_t cap);

/* Drains every ring, finalizes every session (closed or not: "shutdown"),
 * joins the thread. Stop the workers first. Accepts *r == NULL. */
void al_recorder_close(al_recorder_t **r);

/* True while the recorder cannot write and on_failure is refuse: new
 * actions must be refused with al_recorder_error()'s text. One relaxed
 * atomic load: call it before every action. r may be NULL (false). */
bool al_recorder_refusing(const al_recorder_t *r);

/* The current failure as "recording failed: <cause> at <path>", or "". */
const char *al_recorder_error(const al_recorder_t *r, char *buf, size_t cap);

/* What a session's header line and closing audit event say about it.
 * Borrowed for the call. */
typedef struct al_rec_meta {
    const char *session_id; /* [0-9a-f-]{36} (UUIDv7): also the file name */
    const char *protocol;   /* "postgres", "http", "tcp" */
    const char *target;
    const char *client;     /* peer address "ip:port", may be NULL */
    const char *const *extra; /* NULL-terminated key, value pairs for the header
                                 (database, user, application_name, ...) */
} al_rec_meta_t;

/* The identity, once known (after authentication); borrowed. */
typedef struct al_rec_who {
    const char *agent, *subject, *issuer;
} al_rec_who_t;

/* Worker side. `worker` is the worker index (its ring). Returns the
 * session's handle, or NULL when r is NULL or out of memory (the session
 * then goes unrecorded; counted and logged once). Writes the header line. */
al_rec_t *al_rec_open(al_recorder_t *r, int worker, const al_rec_meta_t *m);

/* Sets the identity for the header's "agent"/"subject"/"issuer" and the
 * closing event. */
void al_rec_identify(al_rec_t *s, const al_rec_who_t *who);

/* Line building: al_rec_begin returns the worker's scratch buffer holding
 * `{"t":<seconds since open>,"type":"<type>"`; append `,"key":value` pairs
 * with the helpers below, then al_rec_end() closes the object, adds the
 * newline and pushes the line to the ring (no allocation once the scratch
 * has grown; the ring never blocks: on overflow lines go to a locked
 * overflow list). s NULL (an unrecorded session): al_rec_begin returns
 * NULL and al_rec_end does nothing; guard the line building with `if (s)`. */
al_buf_t *al_rec_begin(al_rec_t *s, const char *type);
void al_rec_end(al_rec_t *s);

/* `,"key":` followed by a JSON string of p[0..n) (invalid UTF-8 as
 * U+FFFD), an integer, a number, a bool, null, or raw JSON. */
void al_rec_str(al_buf_t *b, const char *key, const void *p, size_t n);
void al_rec_cstr(al_buf_t *b, const char *key, const char *s); /* NULL -> null */
void al_rec_int(al_buf_t *b, const char *key, int64_t v);
void al_rec_bool(al_buf_t *b, const char *key, bool v);
/* A value that may be binary: a JSON string when p[0..n) is valid UTF-8
 * without NUL, else {"base64":"..."}. key NULL: no key (array element). */
void al_rec_bytes(al_buf_t *b, const char *key, const void *p, size_t n);
/* Always {"base64":"..."} (binary-format values). */
void al_rec_base64(al_buf_t *b, const char *key, const void *p, size_t n);

/* Closing: writes the "close" line (reason, bytes each way, duration) and
 * hands the session to the recorder, which compresses, hashes and audits
 * it. s is invalid afterwards. Accepts NULL. */
typedef struct al_rec_end_info {
    const char *reason;      /* "client closed", "revoked", ... */
    int64_t bytes_up, bytes_down; /* -1 unknown */
} al_rec_end_info_t;
void al_rec_close(al_rec_t *s, const al_rec_end_info_t *e);

/* Counters for /metrics. */
typedef struct al_rec_stats {
    uint64_t sessions_open, sessions_closed, bytes_written, lines, overflow, failures;
    bool failing;
} al_rec_stats_t;
void al_recorder_stats(const al_recorder_t *r, al_rec_stats_t *out);

/* ---- files (shared by the recorder, replay, the admin API, retention) ---- */

struct al_config;
/* The recordings directory of a config: <server.data_dir>/recordings.
 * Writes into buf (cap bytes) and returns buf, NULL if it does not fit. */
const char *al_rec_dir(const struct al_config *cfg, char *buf, size_t cap);

/* Retention (retention.c), run by the recorder thread at start and then
 * every minute: removes closed recordings (".jsonl.gz", ".cast.gz") older
 * than retain seconds (by the file's mtime; 0 = no age limit), then the
 * oldest until the total size of closed recordings is at most max_bytes
 * (0 = no cap). Open recordings are never removed. For each removal cb is
 * called with the path relative to dir, the file's SHA-256 (hex) computed
 * just before the unlink, and the reason ("retention: older than 90d",
 * "retention: over max_bytes"). Empty day/month/year directories are
 * removed. AL_OK, or AL_ERR with err (a directory could not be read; what
 * could be done was done). */
typedef void (*al_rec_removed_cb)(void *ud, const char *rel, const char *sha256_hex,
                                  const char *reason);
int al_rec_retention(const char *dir, double retain, uint64_t max_bytes, double now,
                     al_rec_removed_cb cb, void *ud, char *err, size_t cap);

/* True when id is a session id safe to use as a file name:
 * 36 characters of [0-9a-f-] in UUID layout. */
bool al_rec_id_ok(const char *id);

/* Writes "<dir>/YYYY/MM/DD/<id><ext>" for a session starting at t_us (UTC)
 * into out; AL_ERR if it does not fit. rel (may be NULL) receives the part
 * after "<dir>/". */
int al_rec_path(const char *dir, const char *id, int64_t t_us, const char *ext, char *out,
                size_t cap, const char **rel);

/* The start time a UUIDv7 carries (its 48-bit millisecond field), in
 * microseconds; -1 when id is not a version-7 UUID. */
int64_t al_rec_id_time(const char *id);

/* Finds the recording of session id under dir: first in the YYYY/MM/DD
 * directory its UUIDv7 time names, then by scanning every day directory.
 * Prefers the closed ".jsonl.gz" over an open ".jsonl" (and ".cast.gz",
 * ".cast" for terminal sessions). AL_OK with the full path in out,
 * AL_AGAIN when there is none, AL_ERR (bad id, path too long) with err. */
int al_rec_find(const char *dir, const char *id, char *out, size_t cap, char *err,
                size_t errcap);

/* Reads a recording, gzip-compressed or plain, and calls cb once per line
 * (without its newline; lines are at most AL_REC_MAX_LINE bytes). A
 * non-AL_OK return from cb stops the read and is returned. AL_ERR with err
 * on an unreadable or corrupt file. */
#define AL_REC_MAX_LINE (64u << 20)
typedef int (*al_rec_line_cb)(void *ud, const char *line, size_t n);
int al_rec_read(const char *path, al_rec_line_cb cb, void *ud, char *err, size_t cap);

#endif
