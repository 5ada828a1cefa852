/*
 * approvals_int.h - internals shared by the files of src/approvals (not for use
 * outside the folder):
 *   store.c      the SQLite file: open, schema, every statement's text
 *   approvals.c  the service: requests, votes, cancellation, expiry
 *   waiters.c    held sessions called back when their request is decided
 *   fingerprint.c  what makes two actions the same action
 *   grant.c      grant kinds, creation on approval, lookup and use
 *   json.c       listing objects and the notification body
 *   notify.c     the webhook thread: bounded queue, retries, logs
 */
#ifndef AL_APPROVALS_INT_H
#define AL_APPROVALS_INT_H

#include <pthread.h>
#include <sqlite3.h>

#include "approvals/approvals.h"

/* ---- store.c ----------------------------------------------------------------------- */

/* Every statement the folder runs; texts in store.c. */
typedef enum al__appr_sql {
    AL__SQL_REQ_FIND_RETRY = 0,
    AL__SQL_REQ_COUNT_PENDING,
    AL__SQL_REQ_INSERT,
    AL__SQL_REQ_GET,
    AL__SQL_REQ_DECIDE,
    AL__SQL_VOTE_GET,
    AL__SQL_VOTE_PUT,
    AL__SQL_VOTE_TALLY,
    AL__SQL_GRANT_INSERT,
    AL__SQL_GRANT_FIND,
    AL__SQL_GRANT_CONSUME,
    AL__SQL_DUE_LIST,
    AL__SQL_DUE_EXPIRE,
    AL__SQL_NEXT_DEADLINE,
    AL__SQL_SESSION_LIST,
    AL__SQL_SESSION_CANCEL,
    AL__SQL_SESSION_GRANTS_END,
    AL__SQL_AGENT_LIST,
    AL__SQL_AGENT_CANCEL,
    AL__SQL_AGENT_REVOKE,
    AL__SQL_RESTART_ABANDON,
    AL__SQL_RESTART_EXPIRE,
    AL__SQL_RESTART_SESSIONS,
    AL__SQL_LIST,
    AL__SQL_ROW,
    AL__SQL_VOTES,
    AL__SQL__COUNT
} al__appr_sql_t;

/* Columns of AL__SQL_LIST and AL__SQL_ROW, in order. */
enum {
    AL__COL_ID, AL__COL_STATE, AL__COL_MODE, AL__COL_AGENT, AL__COL_OWNER, AL__COL_SUBJECT,
    AL__COL_ISSUER, AL__COL_GROUPS, AL__COL_TARGET, AL__COL_PROTOCOL, AL__COL_ACTION,
    AL__COL_FP, AL__COL_RULE, AL__COL_APPROVERS, AL__COL_MIN, AL__COL_GRANT,
    AL__COL_SESSION, AL__COL_REQUESTED, AL__COL_EXPIRES, AL__COL_DECIDED, AL__COL_REASON,
    AL__COL_DECIDED_BY, AL__COL_GRANT_ID,
};

typedef struct al__appr_db {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *st[AL__SQL__COUNT]; /* prepared on first use */
} al__appr_db_t;

/* Opens path (created 0600 in a 0700 directory), WAL, synchronous=FULL,
 * schema version 1. AL_OK or AL_ERR with "approvals store: ... at PATH". */
int al__appr_db_open(al__appr_db_t *d, const char *path, char *err, size_t cap);
void al__appr_db_close(al__appr_db_t *d);
/* The statement, reset and unbound; NULL (logged) if it cannot be prepared. */
sqlite3_stmt *al__appr_stmt(al__appr_db_t *d, al__appr_sql_t which);
/* BEGIN IMMEDIATE / COMMIT / ROLLBACK. AL_OK or AL_ERR (logged). */
int al__appr_begin(al__appr_db_t *d);
int al__appr_commit(al__appr_db_t *d);
void al__appr_rollback(al__appr_db_t *d);
/* Logs a failed statement: "approvals store: <what>: <msg> (<rc>) at <path>"
 * (never a bound value). */
void al__appr_log_err(al__appr_db_t *d, const char *what, int rc);
/* "approvals store: <what>: <msg> at <path>" into err. */
void al__appr_set_err(al__appr_db_t *d, const char *what, int rc, char *err, size_t cap);

/* Binding helpers: NULL binds SQL NULL. */
int al__bind_text(sqlite3_stmt *st, int i, const char *s);
/* Copies column i (text, may be NULL) into buf; returns buf or NULL. */
const char *al__col_text(sqlite3_stmt *st, int i, char *buf, size_t cap);

/* ---- notify.c ---------------------------------------------------------------------- */

typedef struct al__notify al__notify_t;

/* Starts the notifier thread. queue: jobs waiting at most; backoff: first
 * retry delay (seconds). NULL (logged) if the thread cannot start. */
al__notify_t *al__notify_start(size_t queue, double backoff);
/* Queues body (takes ownership, freed with free()) for w, which is copied.
 * AL_OK queued; AL_AGAIN dropped (full or closing; logged and counted). */
int al__notify_post(al__notify_t *n, const al_webhook_conf_t *w, const char *id, char *body);
/* Stops the thread: the attempt in flight finishes (bounded by its
 * timeout), queued jobs are dropped and counted. Accepts *n == NULL. */
void al__notify_stop(al__notify_t **n);
void al__notify_stats(al__notify_t *n, al_approvals_notify_stats_t *out);

/* Deep copy / free of a webhook conf (names and paths only: secrets are
 * read at delivery). */
al_webhook_conf_t *al__webhook_dup(const al_webhook_conf_t *w);
void al__webhook_free(al_webhook_conf_t **w);

/* ---- json.c ------------------------------------------------------------------------ */

/* A JSON string of n bytes, invalid UTF-8 replaced by U+FFFD. NULL p: JSON
 * null. Never NULL except out of memory. */
json_t *al__json_text(const char *p, size_t n);
/* The object of the current row of AL__SQL_LIST / AL__SQL_ROW, with its
 * votes (AL__SQL_VOTES). NULL when out of memory or the store failed. */
json_t *al__appr_row_json(al__appr_db_t *d, sqlite3_stmt *row);

/* What a notification says about a new request. Borrowed. */
typedef struct al__notice {
    const char *id, *agent, *owner, *target, *protocol, *rule, *mode;
    al_str_t action;
    const char *const *approvers;
    size_t n_approvers;
    int min_approvals;
    double requested_at, expires_at;
    const char *public_url; /* NULL: no approve_url */
} al__notice_t;

/* The webhook body (docs/approvals.md): a NUL-terminated JSON text
 * (malloc'd, caller frees), with "text" when slack. NULL out of memory. */
char *al__appr_notice_body(const al__notice_t *n, bool slack);

/* ---- grant.c ----------------------------------------------------------------------- */

/* What a rule's `grant` (and an approver's --for) make of an approved
 * request. for_us 0 = none. session_max_us: the cap of session grants. */
typedef struct al__grant_plan {
    al_grant_kind_t kind;
    int64_t expires_us;
} al__grant_plan_t;

void al__grant_plan(const char *spec, int64_t rule_timeout_us, int64_t for_us,
                    bool has_session, int64_t session_max_us, int64_t now_us,
                    al__grant_plan_t *out);

/* Inserts the grant of an approved request (inside the caller's
 * transaction). SQLITE_DONE on success, else the SQLite code. */
int al__grant_insert(al__appr_db_t *d, const char *grant_id, const char *request_id,
                     const al__grant_plan_t *p, const char *agent, const char *target,
                     const char *fingerprint, const char *rule, const char *session_id,
                     int64_t now_us);

/* ---- approvals.c ------------------------------------------------------------------- */

/* A stored state name; unknown text reads as cancelled (never pending). */
al_approval_state_t al__state_of(const unsigned char *s);

/* ---- waiters.c --------------------------------------------------------------------- */

typedef struct al__waiter al__waiter_t;

/* Waiters of decided requests, to be called once the mutex is released. */
typedef struct al__fire_batch {
    al__waiter_t **w;
    size_t n, cap;
} al__fire_batch_t;

/* Marks the waiters of id as firing and adds them to fb. Called with mu. */
void al__waiters_mark(al_approvals_t *a, const char *id, al__fire_batch_t *fb);
/* Calls fb's waiters with ev, without mu (takes it afterwards to free
 * them and wake unwait()); frees fb's array. Call without mu. */
void al__waiters_fire(al_approvals_t *a, al__fire_batch_t *fb, const al_approval_event_t *ev);
/* Marks and fires the waiters of each of ids (same state and reason).
 * Call without mu. */
void al__waiters_fire_ids(al_approvals_t *a, char (*ids)[AL_APPROVAL_ID_SIZE], size_t n,
                          al_approval_state_t state, const char *reason);
/* Frees every waiter without calling it (close). Called with mu. */
void al__waiters_drop(al_approvals_t *a);

/* ---- the service ------------------------------------------------------------------- */

struct al_approvals {
    pthread_mutex_t mu;          /* guards everything below */
    pthread_cond_t fired;        /* a firing batch finished */
    al__appr_db_t db;
    char *public_url;
    al_webhook_conf_t *webhook;  /* global; NULL when none */
    int max_pending;
    int64_t session_max_us;
    al__notify_t *notify;
    al__waiter_t *waiters;
    uint64_t next_token;
};

static inline int64_t al__us(double t) { return (int64_t)(t * 1e6); }

#endif
