/*
 * runtime.h - the process model: one control loop (signals, admin API,
 * reloads) on the main thread, N worker threads each with its own libuv
 * loop, and an immutable, reference-counted snapshot of everything workers
 * read (config, verifier), swapped atomically on reload.
 *
 * Snapshots reach workers by message: the control thread hands each worker
 * a new reference through its inbox and a uv_async wake-up; the worker
 * swaps its own pointer and drops the old reference. No worker ever reads a
 * shared mutable pointer, so no lock is taken on the data path.
 */
#ifndef AL_RUNTIME_H
#define AL_RUNTIME_H

#include <pthread.h>
#include <uv.h>

#include "core/config.h"
#include "identity/identity.h"
#include "net/listen.h"

typedef struct al_snapshot {
    int refs;                 /* atomic */
    uint64_t gen;
    al_config_t *cfg;         /* owned */
    al_verifier_t *verifier;  /* owned; borrows cfg and the runtime's JWKS manager */
    struct al_policy *policy; /* owned; compiled from cfg */
    struct al_mask_set *masks; /* owned; mask engines compiled from cfg */
    double loaded_at;
} al_snapshot_t;

al_snapshot_t *al_snapshot_ref(al_snapshot_t *s);
void al_snapshot_unref(al_snapshot_t **s);

typedef struct al_worker {
    int id;
    pthread_t thread;
    uv_loop_t loop;
    uv_async_t wake;
    struct al_runtime *rt;
    al_snapshot_t *snap;           /* this worker's current snapshot */
    al_token_cache_t *token_cache; /* this worker's verified-token cache */
    pthread_mutex_t inbox_lock;
    al_snapshot_t *inbox_snap;     /* a newer snapshot to adopt */
    bool inbox_stop;               /* drain and exit */
    bool inbox_force;              /* drain timeout: close every session now */
    bool loop_inited, started;     /* how far workers_start got */
    size_t active;                 /* in-flight connections */
    al_listen_set_t pg_ls;         /* listening sockets made by the control thread */
    void *pg;                      /* the PostgreSQL gateway's per-worker state */
    al_listen_set_t http_ls;       /* the same for HTTP targets */
    void *http;                    /* the HTTP gateway's per-worker state */
    al_listen_set_t tcp_ls;        /* the same for tcp (CONNECT tunnel) targets */
    void *tcp;                     /* the tunnel gateway's per-worker state */
    /* kill switch (runtime/sessions.h) */
    struct al_revset *revoked;     /* this worker's revocation set (never NULL once started) */
    struct al_revset *inbox_rev;   /* a newer one to adopt (inbox_lock) */
    struct al_sess_kill *inbox_kill; /* sessions to end (inbox_lock) */
    struct al_sess *sessions;      /* this worker's live sessions (worker thread only) */
} al_worker_t;

typedef struct al_runtime {
    char *config_path;
    uv_loop_t *loop;               /* control loop (main thread) */
    al_snapshot_t *snap;           /* control thread's current snapshot */
    al_jwks_mgr_t *jwks;
    al_worker_t *workers;
    int n_workers;
    uint64_t gen;
    double started;
    bool draining;
    uint64_t reloads_ok, reloads_err;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t drain_timer;
    struct al_admin *admin;
    struct al_audit *audit;        /* the audit writer (strict and async events) */
    struct al_revset *revoked;     /* control thread's revocation set (runtime/revoked.h) */
    struct al_sess_reg *sessions;  /* live-session registry (runtime/sessions.h) */
    struct al_recorder *recorder;  /* session recording (record/record.h); NULL when
                                      recordings.enabled is false */
    struct al_approvals *approvals; /* approval requests and grants (approvals/approvals.h);
                                       thread-safe, but its writes fsync: call from the
                                       control thread or a uv pool thread */
    /* approvals timer (control loop): al_approvals_tick runs on a uv pool
     * thread (it fsyncs), then the timer is armed for the next deadline */
    uv_timer_t appr_timer;
    uv_async_t appr_kick;          /* al_runtime_approvals_kick from any thread */
    uv_work_t appr_work;
    double appr_next;              /* the tick's answer: next deadline, 0 = none */
    bool appr_busy, appr_again;    /* a tick in flight; run another after it */
    bool appr_started;
    pthread_mutex_t appr_lock;     /* guards appr_closed against kicks from workers */
    bool appr_closed;
    int exit_code;
} al_runtime_t;

/* Runs the gateway until SIGTERM/SIGINT has drained it. Takes ownership of
 * cfg. Returns the process exit code. */
int al_runtime_run(const char *config_path, al_config_t *cfg);

/* Opens a gateway's listeners (net/listen.h) into each worker's set at
 * byte offset `set_off` of al_worker_t, and closes them again. */
int al_runtime_listen(al_runtime_t *rt, const al_listen_spec_t *spec, size_t set_off);
void al_runtime_listen_close(al_runtime_t *rt, size_t set_off);

/* Verifies a token on worker w as every gateway must, before each statement
 * or request: the worker's snapshot verifier and token cache, then the
 * worker's revocation set (AL_TOK_REVOKED for a disabled agent; no lock).
 * On AL_TOK_OK, *out is a new principal reference. */
al_tok_status_t al_worker_verify(al_worker_t *w, const char *token, size_t len, double now,
                                 al_principal_t **out, al_verify_info_t *info);

/* Asks the control loop to time out due approval requests now and to re-arm
 * its timer for the next deadline. Call after creating or deciding a
 * request. Safe from any thread (uv_async_send); a no-op before the timer
 * starts and after shutdown has begun. */
void al_runtime_approvals_kick(al_runtime_t *rt);

/* Number of worker threads a config asks for (auto = cores). */
int al_runtime_worker_count(const al_config_t *cfg);

#endif
