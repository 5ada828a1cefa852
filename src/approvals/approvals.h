/*
 * approvals.h - approval requests, votes and grants (docs/approvals.md).
 *
 * A policy verdict `approve` becomes an approval request: a durable record
 * (SQLite, data_dir/approvals.db) of who wants to do what where, under
 * which rule, until when. Approvers vote on it; enough approvals turn it
 * into a grant, one denial ends it. A grant lets the same agent do the
 * approved action (or, by its kind, more) without asking again until it
 * expires or is used up.
 *
 * Pieces, in the order a caller meets them:
 *
 *   al_approvals_open      open (create) the store; on every open, pending
 *                          `wait` requests become `abandoned` (their held
 *                          client connection died with the old process)
 *   al_approvals_create    a new request; the webhook is notified on the
 *                          service's notifier thread
 *   al_approvals_wait      a held session asks to be called back when its
 *                          request is decided
 *   al_approvals_approve / _deny / _cancel   decisions, each refusal a
 *                          stable reason code (al_approval_status_t)
 *   al_approvals_tick      times pending requests out; returns the next
 *                          deadline so the control loop can arm a timer
 *   al_approvals_check     a grant for a new action? (consumes `once`)
 *   al_approvals_list_json the JSON the admin API and CLI print
 *
 * Threading: every function is safe from any thread; one mutex guards the
 * store. Functions that change state run one SQLite transaction with
 * synchronous=FULL, i.e. an fsync (milliseconds): call them from the
 * control thread or a libuv pool thread, not from a worker's loop.
 * al_approvals_check is read-only except when it consumes a `once` grant.
 *
 * Time: every function takes `now` (seconds since the epoch, as al_now())
 * so that tests control the clock. Stored as integer microseconds.
 */
#ifndef AL_APPROVALS_H
#define AL_APPROVALS_H

#include <jansson.h>

#include "core/config.h"
#include "core/core.h"

/* UUIDv7 text (RFC 9562 §5.7), 36 characters and a NUL. */
#define AL_APPROVAL_ID_SIZE 37
/* Lowercase hex SHA-256 and a NUL. */
#define AL_APPROVAL_FP_SIZE 65
/* An action text longer than this is refused (action_too_large): approvers
 * always see the whole text they approve, never a truncated one. */
#define AL_APPROVALS_MAX_ACTION (1u << 20)
/* Approver and denial reasons are cut to this many bytes; control bytes in
 * them become spaces (they reach the agent's error message). */
#define AL_APPROVALS_MAX_REASON 1024
/* Room for any message this library writes into an err buffer. */
#define AL_APPROVALS_ERR_SIZE 1024

/* ---- states and refusal reasons --------------------------------------------- */

typedef enum al_approval_state {
    AL_APPROVAL_PENDING = 0, /* waiting for votes */
    AL_APPROVAL_APPROVED,    /* min_approvals reached; a grant exists */
    AL_APPROVAL_DENIED,      /* an approver said no (with a reason) */
    AL_APPROVAL_TIMED_OUT,   /* nobody decided before expires_at */
    AL_APPROVAL_CANCELLED,   /* the client went away or the agent was disabled */
    AL_APPROVAL_ABANDONED,   /* a `wait` request whose airlock restarted */
} al_approval_state_t;

/* "pending", "approved", "denied", "timed_out", "cancelled", "abandoned". */
const char *al_approval_state_name(al_approval_state_t s);
/* Parses one of those names; AL_OK or AL_ERR. */
int al_approval_state_parse(const char *s, al_approval_state_t *out);

/* Why a call was refused. Stable strings (al_approval_reason) for the
 * audit log, the admin API and the agent's error message. */
typedef enum al_approval_status {
    AL_APPR_OK = 0,           /* "ok" */
    AL_APPR_UNKNOWN_REQUEST,  /* "unknown_request": no request with this id */
    AL_APPR_NOT_PENDING,      /* "not_pending": already decided (state says how) */
    AL_APPR_EXPIRED,          /* "expired": past expires_at; now timed_out */
    AL_APPR_SELF_APPROVAL,    /* "self_approval": the approver raised the request
                                 (same agent name, or same issuer and subject) */
    AL_APPR_NOT_AN_APPROVER,  /* "not_an_approver": holds none of the rule's
                                 approver groups (and is not the bootstrap token) */
    AL_APPR_ALREADY_VOTED,    /* "already_voted": this approver approved already */
    AL_APPR_NO_IDENTITY,      /* "no_identity": approver without issuer+subject */
    AL_APPR_BAD_GRANT,        /* "bad_grant": --for is not a duration 1s..7d */
    AL_APPR_REASON_REQUIRED,  /* "reason_required": a denial needs a reason */
    AL_APPR_TOO_MANY_PENDING, /* "too_many_pending": agent over
                                 approvals.max_pending_per_agent */
    AL_APPR_ACTION_TOO_LARGE, /* "action_too_large": over AL_APPROVALS_MAX_ACTION */
    AL_APPR_BAD_REQUEST,      /* "bad_request": agent, target, protocol or rule missing */
    AL_APPR_STORE_ERROR,      /* "store_unavailable": the store failed; nothing
                                 changed (fail closed) */
} al_approval_status_t;

const char *al_approval_reason(al_approval_status_t s);

/* ---- the service ---------------------------------------------------------------- */

typedef struct al_approvals al_approvals_t;

typedef struct al_approvals_opts {
    const char *path;            /* the SQLite file (created 0600, its directory 0700) */
    double now;                  /* for restart recovery; 0 = al_now() */
    int max_pending_per_agent;   /* 0 = 64 */
    double session_grant_max;    /* longest `session` grant, seconds; 0 = 24h */
    size_t notify_queue;         /* notifications waiting at most; 0 = 1024 */
    double notify_backoff;       /* first retry delay, doubled each try; 0 = 1s */
    /* Configuration snapshot to start with (al_approvals_configure); may
     * be NULL: no webhook, no public URL. Not kept. */
    const al_config_t *cfg;
} al_approvals_opts_t;

/* The store path for a config: approvals.path, else
 * <server.data_dir>/approvals.db. Writes into buf (cap bytes) and returns
 * it, or NULL when it does not fit. */
const char *al_approvals_path(const al_config_t *cfg, char *buf, size_t cap);

/* Opens (creating if needed) the store at o->path: WAL, synchronous=FULL,
 * busy_timeout 5s. Then, in one transaction: every pending `wait` request
 * becomes abandoned (reason "restart"), pending requests already past
 * their expiry become timed_out, and `session` grants end (no session
 * survives a restart). Pending `retry` requests stay pending. Starts the
 * notifier thread. Returns AL_OK and *out (caller owns: al_approvals_close)
 * or AL_ERR with a message naming the file. */
int al_approvals_open(const al_approvals_opts_t *o, al_approvals_t **out, char *err, size_t cap);

/* Takes what the service needs from cfg (approvals.public_url,
 * approvals.webhook, approvals.max_pending_per_agent); copies it, cfg is
 * not kept. Call at start and on each reload. */
void al_approvals_configure(al_approvals_t *a, const al_config_t *cfg);

/* Stops the notifier (queued notifications are dropped, with a log line
 * counting them), closes the store and frees. Waiters still registered are
 * dropped without a call. No other call may run or start on a (stop the
 * workers and the admin listener first). Accepts *a == NULL; clears *a. */
void al_approvals_close(al_approvals_t **a);

/* ---- fingerprints --------------------------------------------------------------- */

/* SHA-256 over target, protocol and the normalized action, each
 * length-prefixed (so ("ab","c") and ("a","bc") differ), behind a version
 * tag, as lowercase hex into out. Normalization only drops what cannot
 * change meaning: leading and trailing ASCII whitespace and, for
 * "postgres", trailing ';' (whitespace or letter case inside the text is
 * kept: it may sit in a string literal). */
void al_approvals_fingerprint(const char *target, const char *protocol, al_str_t action,
                              char out[AL_APPROVAL_FP_SIZE]);

/* ---- requests --------------------------------------------------------------------- */

/* A new request. Every pointer is borrowed for the call. */
typedef struct al_approval_req {
    const char *agent;       /* required: inventory name (or another stable
                                name of the principal); grants are keyed on it */
    const char *owner;       /* inventory owner, may be NULL */
    const char *subject;     /* token "sub", for the self-approval check */
    const char *issuer;      /* token "iss" */
    const char *const *groups;
    size_t n_groups;
    const char *target;      /* required: target name */
    const char *protocol;    /* required: "postgres", "http", ... */
    al_str_t action;         /* required: the exact action text (any bytes) */
    const al_policy_conf_t *rule; /* required: the deciding approve rule;
                                     its name, approvers, timeout, grant,
                                     min_approvals and webhook are copied */
    al_approval_mode_t mode; /* usually rule->mode; a gateway that cannot
                                hold a client passes AL_APPROVAL_RETRY */
    const char *session_id;  /* the gateway session, may be NULL (then a
                                `session` grant acts as `once`) */
} al_approval_req_t;

typedef struct al_approval_created {
    char id[AL_APPROVAL_ID_SIZE];
    char fingerprint[AL_APPROVAL_FP_SIZE];
    double expires_at;
    bool existing; /* retry mode: the agent's pending request for the same
                      rule, target and fingerprint was returned (no new
                      request, no new notification) */
} al_approval_created_t;

/* Stores a pending request expiring at now + rule->timeout and queues its
 * notification (rule->webhook if set, else approvals.webhook). AL_APPR_OK
 * fills out; otherwise nothing was stored: BAD_REQUEST, ACTION_TOO_LARGE,
 * TOO_MANY_PENDING, STORE_ERROR. A notification that cannot be delivered
 * never changes the request. */
al_approval_status_t al_approvals_create(al_approvals_t *a, const al_approval_req_t *r,
                                         double now, al_approval_created_t *out);

/* Who votes. Borrowed for the call. */
typedef struct al_approver {
    const char *name;        /* display name: the principal's agent name or
                                subject; "bootstrap" for the bootstrap token */
    const char *subject;     /* token "sub" (required unless bootstrap) */
    const char *issuer;      /* token "iss" (required unless bootstrap) */
    const char *const *groups;
    size_t n_groups;
    bool bootstrap;          /* the local bootstrap admin token: may approve
                                any rule, counts as one approver */
} al_approver_t;

typedef enum al_grant_kind {
    AL_GRANT_ONCE = 0, /* this action (fingerprint), one use */
    AL_GRANT_DURATION, /* this fingerprint, agent and target, until expiry */
    AL_GRANT_SESSION,  /* every action this rule holds, for this agent and
                          target, in this session, until it ends */
    AL_GRANT_TARGET,   /* every action held for approval on this target, for
                          this agent, until expiry */
} al_grant_kind_t;

/* "once", "duration", "session", "target". */
const char *al_grant_kind_name(al_grant_kind_t k);

/* The state of a request after a vote. */
typedef struct al_approval_outcome {
    al_approval_state_t state;
    int approvals;           /* distinct approvers so far */
    int needed;              /* the rule's min_approvals */
    char grant_id[AL_APPROVAL_ID_SIZE]; /* "" unless approved */
    al_grant_kind_t grant_kind;
    double grant_expires_at;
} al_approval_outcome_t;

/* Records who's approval of request id. grant_for (NULL or "") is the
 * approver's `--for`: a duration 1s..7d that sets the grant's length (a
 * `once` rule then grants that fingerprint for that long; with several
 * approvers the shortest asked-for duration wins). reason may be NULL.
 * Checks, in order: the request exists, is pending and not expired, the
 * approver has an identity, did not raise it, holds one of the rule's
 * approver groups (or is the bootstrap token), has not approved it yet.
 * When min_approvals distinct approvers agree, the request becomes
 * approved, a grant is created and waiters are called. AL_APPR_OK with out
 * filled (state pending while more approvals are needed), else the reason;
 * out->state is filled for NOT_PENDING and EXPIRED too. */
al_approval_status_t al_approvals_approve(al_approvals_t *a, const char *id,
                                          const al_approver_t *who, const char *grant_for,
                                          const char *reason, double now,
                                          al_approval_outcome_t *out);

/* One eligible approver's denial ends the request (even after their own
 * approval: a veto is always allowed); reason is required and reaches the
 * agent. Same checks as approve but already_voted. out may be NULL. */
al_approval_status_t al_approvals_deny(al_approvals_t *a, const char *id,
                                       const al_approver_t *who, const char *reason, double now,
                                       al_approval_outcome_t *out);

/* Ends a pending request as cancelled with why (e.g. "client_disconnected",
 * "agent_disabled"); waiters are called (yours too: unwait first if you do
 * not want the call). UNKNOWN_REQUEST, NOT_PENDING or STORE_ERROR. */
al_approval_status_t al_approvals_cancel(al_approvals_t *a, const char *id, const char *why,
                                         double now);

/* A gateway session ended: its pending `wait` requests are cancelled
 * ("client_disconnected") and its `session` grants end. Returns the number
 * of requests cancelled, or AL_ERR. */
int al_approvals_session_end(al_approvals_t *a, const char *session_id, double now);

/* An agent was disabled: its pending requests are cancelled (why) and its
 * grants revoked. Returns the number of requests cancelled, or AL_ERR. */
int al_approvals_cancel_agent(al_approvals_t *a, const char *agent, const char *why, double now);

/* Times out every pending request with expires_at <= now (waiters called).
 * Returns the number timed out (or AL_ERR) and sets *next to the earliest
 * expiry still pending, 0 when none. */
int al_approvals_tick(al_approvals_t *a, double now, double *next);

/* The state of request id and, when decided, its reason (denial reason,
 * cancel cause, "timeout", "restart") copied into reason (cap bytes; may
 * be NULL). AL_APPR_OK, UNKNOWN_REQUEST or STORE_ERROR. */
al_approval_status_t al_approvals_status(al_approvals_t *a, const char *id,
                                         al_approval_state_t *state, char *reason, size_t cap);

/* ---- waiting ------------------------------------------------------------------- */

/* What a waiter is told. Valid during the call only. */
typedef struct al_approval_event {
    const char *id;
    al_approval_state_t state; /* never pending */
    const char *reason;        /* denial reason or cause; may be NULL */
    const char *grant_id;      /* approved: the grant to claim with
                                  al_approvals_check (request_id = id) */
} al_approval_event_t;

/* Called once, on whichever thread decided the request (the admin API's,
 * the tick's, a canceller's), without the service's lock held. It must
 * only hand the event to its own loop (copy what it needs, uv_async_send)
 * and return: no blocking, no call back into this service. */
typedef void (*al_approval_cb)(void *ud, const al_approval_event_t *ev);

/* Registers cb for request id. AL_APPR_OK: *token identifies the
 * registration; cb will be called exactly once unless al_approvals_unwait
 * removes it first. NOT_PENDING (already decided: ask al_approvals_status),
 * UNKNOWN_REQUEST or STORE_ERROR: no registration. */
al_approval_status_t al_approvals_wait(al_approvals_t *a, const char *id, al_approval_cb cb,
                                       void *ud, uint64_t *token);

/* Removes a registration. true: removed, cb will never be called. false:
 * cb has been called or is being called on another thread, in which case
 * unwait returns only after it returned (so ud may be freed afterwards).
 * Never call it from inside the callback. */
bool al_approvals_unwait(al_approvals_t *a, uint64_t token);

/* ---- grants ----------------------------------------------------------------------- */

/* A new action that policy holds for approval: which grant covers it?
 * Strings borrowed for the call. */
typedef struct al_grant_query {
    const char *agent;
    const char *target;
    const char *fingerprint;  /* al_approvals_fingerprint of the action */
    const char *rule;         /* the rule that holds it (session grants) */
    const char *session_id;   /* may be NULL: session grants then never match */
    const char *request_id;   /* set: only the grant of this request counts
                                 (a held action whose request was just approved) */
} al_grant_query_t;

typedef enum al_grant_check {
    AL_GRANT_NONE = 0, /* no grant: ask for approval */
    AL_GRANT_FOUND,    /* covered: out names the grant (audit it) */
    AL_GRANT_ERROR,    /* the store failed: treat as none (fail closed) */
} al_grant_check_t;

typedef struct al_grant_use {
    char grant_id[AL_APPROVAL_ID_SIZE];
    char request_id[AL_APPROVAL_ID_SIZE];
    al_grant_kind_t kind;
    double expires_at;
} al_grant_use_t;

/* Finds a live grant (not expired, revoked or used) for q: `once` and
 * duration grants by agent + target + fingerprint, `session` by agent +
 * target + rule + session id, `target` by agent + target. Grants that are
 * not used up are preferred to `once`; a `once` grant is consumed
 * atomically (two concurrent checks cannot both use it). out may be NULL. */
al_grant_check_t al_approvals_check(al_approvals_t *a, const al_grant_query_t *q, double now,
                                    al_grant_use_t *out);

/* ---- listing ------------------------------------------------------------------- */

typedef struct al_approval_filter {
    const char *state;   /* a state name, NULL = all */
    const char *agent;   /* NULL = all */
    const char *target;  /* NULL = all */
    size_t limit;        /* 0 = 100; at most 10000 */
} al_approval_filter_t;

/* Times out what is due (as al_approvals_tick), then returns a new JSON
 * array (caller owns: json_decref) of the requests matching f, newest
 * first. Each object: id, state, agent, owner, subject, issuer, target,
 * protocol, action (invalid UTF-8 shown as U+FFFD), fingerprint, rule,
 * mode, grant, approvers, min_approvals, session_id, requested_at,
 * expires_at (RFC 3339 UTC), decided_at, reason, grant_id (null when
 * unset) and votes [{approver, vote, at, for, reason}]. NULL with err
 * when the store failed or f->state is not a state name. */
json_t *al_approvals_list_json(al_approvals_t *a, const al_approval_filter_t *f, double now,
                               char *err, size_t cap);

/* One request as the objects above; NULL with err ("unknown_request" or
 * the store's message). */
json_t *al_approvals_get_json(al_approvals_t *a, const char *id, char *err, size_t cap);

/* ---- notifications ---------------------------------------------------------------- */

typedef struct al_approvals_notify_stats {
    uint64_t queued;   /* accepted into the queue */
    uint64_t sent;     /* delivered (2xx) */
    uint64_t failed;   /* given up after the last try */
    uint64_t retries;  /* attempts after a first failure */
    uint64_t dropped;  /* queue full or closing */
} al_approvals_notify_stats_t;

void al_approvals_notify_stats(al_approvals_t *a, al_approvals_notify_stats_t *out);

#endif
