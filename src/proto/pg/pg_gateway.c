/*
 * pg_gateway.c - PostgreSQL sessions: agent <-> airlock <-> database.
 *
 * Per session (one worker loop, no locks on the data path):
 *
 *   STARTUP   client's untyped packet: SSLRequest/GSSENCRequest answered 'N'
 *             (TLS termination is not in this build; config insists on
 *             `tls: off`), CancelRequest forwarded for its own session only,
 *             StartupMessage kept.
 *   PASSWORD  AuthenticationCleartextPassword; the password is the agent's
 *             OIDC token, verified by the identity layer (worker's cache).
 *   UPSTREAM  connect, StartupMessage with the target's role, authenticate
 *             with the credential airlock holds (trust, cleartext, MD5,
 *             SCRAM-SHA-256: pg_auth.h), relay ParameterStatus, hand the
 *             client airlock's own BackendKeyData, then ReadyForQuery.
 *   READY     frame both directions. Query and Parse are classified and
 *             decided before anything is forwarded; strict audit records
 *             commit before the statement goes out (reading from the client
 *             pauses meanwhile). Refusals: ErrorResponse 42501, in order,
 *             and the session goes on. An `approve` verdict holds the
 *             statement (approval_hold.h): a grant lets it through, `retry`
 *             refuses it with the request id, `wait` sends a NoticeResponse
 *             and processes no more of the session's input until the
 *             request is decided (the client is still read, so a
 *             disconnect cancels the request).
 *
 * Protocol: https://www.postgresql.org/docs/current/protocol-flow.html
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "approvals/approvals.h"
#include "audit/audit.h"
#include "policy/masking.h"
#include "record/record.h"
#include "policy/policy.h"
#include "proto/approval_hold.h"
#include "proto/pg/pg_auth.h"
#include "proto/pg/pg_codec.h"
#include "proto/pg/pg_gateway.h"
#include "net/listen.h"
#include "net/write.h"
#include "net/tls.h"
#include "runtime/sessions.h"

#define READ_CHUNK (64 * 1024)
#define HIGH_WATER (1024 * 1024) /* pause the other side above this much queued */
#define CORK_KEEP (64 * 1024)     /* a cork buffer above this is freed after use */
#define MAX_REFUSED 64           /* refused statement names remembered per session */
#define NAMEDATALEN_MAX 255       /* longest statement name DEALLOCATE is read for */
#define MAX_PREPARED 4096         /* prepared statements tracked per session */
#define MAX_PREPARED_BYTES (16u << 20) /* and their SQL text in all */
#define MAX_INFLIGHT 1024        /* statements awaiting their result */
#define KILL_UPSTREAM_DELAY_MS 20 /* a killed session's upstream closes this much later */

typedef struct pg_worker pg_worker_t;
typedef struct sess sess_t;

/* ---- cancel registry (process-wide; cancels are rare) ----------------------- */

typedef struct cancel_ent {
    int32_t pid;
    uint32_t key;
    sess_t *s;
    int32_t up_pid;
    uint32_t up_key;
    struct sockaddr_storage up_addr;
    struct cancel_ent *next;
} cancel_ent_t;

static pthread_mutex_t g_cancel_lock = PTHREAD_MUTEX_INITIALIZER;
static cancel_ent_t *g_cancel;

/* ---- per-worker state --------------------------------------------------------- */

typedef struct listener {
    uv_tcp_t tcp;
    pg_worker_t *pw;
    char *target; /* target name; looked up in the current snapshot per accept */
    al_tls_ctx_t *tls; /* server context (NULL for tls: off); shared, read-only */
    al_tls_mode_t tls_mode;
    al_tls_ctx_t *up_tls; /* client context for the upstream (sslmode != disable) */
    _Atomic int *count;   /* the target's sessions across all workers */
    bool open;
} listener_t;

typedef struct pend pend_t;

struct pg_worker {
    al_worker_t *w;
    listener_t *ls;
    size_t n_ls;
    uv_async_t audit_async;
    pthread_mutex_t lock;
    pend_t *done;        /* strict audit completions from the writer thread */
    bool closed;
    al_sql_t *sql;
    al_mask_scratch_t *mscr; /* masking scratch, grown to fit every engine used */
    al_buf_t mout;           /* masked values of the row being rewritten */
    al_buf_t mrow;           /* the rewritten DataRow */
    al_buf_t mcell, mswap;   /* one value through the engines */
    sess_t *sessions;
    size_t n_sessions;
    bool draining;
};

/* A strict audit submission in flight; `s` cleared if the session goes. */
struct pend {
    sess_t *s;
    pg_worker_t *pw;
    int rc;
    char err[AL_AUDIT_ERR_SIZE];
    pend_t *next;
};

typedef enum st {
    S_STARTUP = 0,
    S_PASSWORD,
    S_VERIFYING,
    S_CONNECTING,
    S_UP_AUTH,
    S_READY,
    S_CLOSING,
} st_t;

typedef struct inflight {
    char id[AL_AUDIT_ID_SIZE]; /* the decision event */
    uint64_t t0;
    int64_t rows;
    bool execute;              /* one result (Execute), else until ReadyForQuery */
    uint64_t rfq;              /* the ReadyForQuery (s->rfq_seen) its batch ends at */
    char status[6];
    char *error;
    /* Async (allowed, not strict) statements record ONE event, decision and
     * result together, when the result is known: half the store writes.
     * The slot's buffer is reused, so steady state allocates nothing. */
    bool deferred;
    const char *cls, *reason; /* static strings */
    char rule[64];
    al_buf_t text;             /* action, NUL, then each table NUL-terminated */
    size_t n_tables;
} inflight_t;

struct sess {
    pg_worker_t *pw;
    al_snapshot_t *snap;
    const al_target_conf_t *target;
    uv_tcp_t client, server;
    bool client_closed, server_inited, server_closed;
    int handles; /* open uv handles; free at 0 */
    st_t st;
    al_pg_framer_t cf, sf;
    char session_id[AL_AUDIT_ID_SIZE];
    /* startup */
    al_buf_t startup;     /* client's startup body copy (params point in) */
    al_pg_startup_t su;
    /* identity */
    char *token;
    size_t token_len;
    al_principal_t *principal;
    uv_async_t kid_wait;
    bool kid_waiting;
    al_jwks_entry_t *kid_entry;
    uv_timer_t expiry;
    bool expiry_inited;
    /* upstream */
    uv_getaddrinfo_t gai;
    uv_connect_t conn;
    struct sockaddr_storage up_addr;
    al_pg_auth_t auth;
    bool auth_inited;
    al_buf_t hold_to_client; /* ParameterStatus etc. until AuthenticationOk to client */
    int32_t my_pid;
    uint32_t my_key;
    bool cancel_registered;
    char txn;                /* last ReadyForQuery status */
    /* flow */
    bool client_paused, server_paused, audit_wait;
    al_buf_t pending_in;     /* client bytes not yet processed (while waiting) */
    /* Ordering of refusals. Every Query, Sync and FunctionCall forwarded
     * earns exactly one ReadyForQuery; a refusal is emitted right away when
     * nothing is in flight, else just before the ReadyForQuery of the batch
     * it belongs to (FIFO, pipelining-safe). */
    uint64_t rfq_expected, rfq_seen;
    uint64_t since_sync;     /* extended messages forwarded since the last Sync */
    bool skipping;           /* extended query refused: drop until Sync */
    struct inject {
        uint64_t idx;        /* emit before ReadyForQuery number idx */
        bool placeholder;    /* the batch is our empty query: drop its EmptyQueryResponse */
        char *bytes;
        size_t len;
    } inj[16];
    size_t n_inj;
    bool upstream_error;     /* upstream sent an error in this batch */
    char *refused[MAX_REFUSED];
    size_t n_refused;
    /* Prepared statements the client prepared (Parse allowed): name -> SQL,
     * so that each later execution (a Bind with no Parse before it) is
     * decided and audited again, as a statement. A Bind in the same batch
     * as the Parse (before a Sync), the first one, is the run the Parse's
     * decision and event cover. */
    struct prep {
        char *name;
        char *sql;
        size_t sql_len;
        uint64_t batch; /* s->syncs when it was parsed */
        bool bound;     /* a Bind of it was seen */
    } *preps;
    size_t n_preps, cap_preps, prep_bytes;
    uint64_t syncs; /* Sync messages from the client */
    /* A ring, grown on demand up to MAX_INFLIGHT (an idle session holds
     * none: 1000 idle sessions stay small, bench/pg). */
    inflight_t *fl;
    size_t fl_cap, fl_head, fl_n;
    pend_t *pend;
    al_buf_t held_msg;       /* the message waiting for its strict audit record */
    char held_id[AL_AUDIT_ID_SIZE];
    uint64_t verified_gen;   /* snapshot generation the principal was checked in */
    double valid_until;      /* its token's exp */
    bool oauth_failed;       /* OAUTHBEARER error sent; expecting the client's kvsep */
    al_tls_t *ctls, *stls;   /* TLS with the client / the upstream, when on */
    bool client_tls;         /* the client side is TLS (handshake may be running) */
    bool up_ssl_wait;        /* SSLRequest sent upstream; waiting for 'S'/'N' */
    al_buf_t tls_scratch;    /* ciphertext to write */
    /* Corked while a read event is handled: what it sends to each side
     * ([0] upstream, [1] client) is gathered and written once at the end,
     * one system call and one TCP segment for the messages of a round trip
     * (a result was RowDescription, DataRow, CommandComplete, ReadyForQuery:
     * four writes). */
    bool corked;
    al_buf_t cork[2];
    al_buf_t plain;          /* decrypted bytes */
    const listener_t *ls;    /* where the session came in */
    /* masking of result rows (engines referenced, from the deciding snapshot) */
    al_mask_engine_t *meng[4];
    size_t n_meng;
    al_buf_t colnames;       /* names of the current RowDescription, NUL-separated */
    uint32_t *coloff;        /* offsets into colnames */
    uint8_t *colfmt;         /* 0 text, 1 binary */
    size_t ncols;            /* 0: no description known for the rows that follow */
    bool copy_out;           /* between CopyOutResponse and CopyDone, masking on */
    bool counted;            /* holds one of its listener's session counts */
    al_sess_t *reg;          /* live-session registry entry (runtime/sessions.h) */
    /* recording (record/record.h): rows recorded of the current statement */
    al_rec_t *rec;
    uint32_t rec_rows;
    bool rec_rows_cut;
    uint64_t rec_t0;         /* when the current statement was forwarded */
    const char *close_reason; /* static or the fatal message (copied) */
    char close_msg[160];
    uint64_t bytes_up, bytes_down;
    bool defer_upstream;     /* killed: close the upstream a loop turn after the client */
    uint64_t rev_gen;        /* revocation set generation the principal was checked in */
    /* approvals: a statement held for an `approve` verdict */
    al_hold_t *hold;
    bool appr_wait;          /* held: process no client input until decided */
    bool appr_used;          /* raised a request or used a grant: end them at close */
    bool appr_simple;        /* the held message is a Query (else a Parse or a Bind) */
    al_buf_t appr_msg;       /* the held message */
    al_buf_t appr_sql;       /* its SQL */
    char *appr_stmt;         /* its prepared statement name (Parse, Bind) */
    sess_t *next, **pprev;
};

static void sess_close(sess_t *s);
static void client_feed(sess_t *s, const uint8_t *p, size_t n);
static void server_feed(sess_t *s, const uint8_t *p, size_t n);
static void resume_client(sess_t *s);
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b);
static void on_client_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b);
static void on_server_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b);
static void verify_token(sess_t *s);
static void sess_free(sess_t *s);
static void record_result(sess_t *s, inflight_t *f);
static void upstream_tls_start(sess_t *s);
static void upstream_startup(sess_t *s);
static bool tls_in(sess_t *s, bool client, const uint8_t *p, size_t n,
                   void (*deliver)(sess_t *, const uint8_t *, size_t));

/* ---- writes --------------------------------------------------------------------- */

static void on_write(uv_write_t *r, int status)
{
    al_wreq_t *w = (al_wreq_t *)r;
    sess_t *s = w->owner;
    bool to_client = w->tag != 0;
    free(w);
    if (status < 0) {
        sess_close(s);
        return;
    }
    /* Backpressure: resume the producer once the queue drained. */
    if (s->st == S_CLOSING)
        return;
    if (to_client && s->server_paused &&
        uv_stream_get_write_queue_size((uv_stream_t *)&s->client) < HIGH_WATER / 4) {
        s->server_paused = false;
        uv_read_start((uv_stream_t *)&s->server, on_alloc, on_server_read);
    }
    if (!to_client && s->client_paused && !s->audit_wait && !s->appr_wait &&
        uv_stream_get_write_queue_size((uv_stream_t *)&s->server) < HIGH_WATER / 4)
        resume_client(s);
}

static void raw_send(sess_t *s, bool to_client, const void *p, size_t n)
{
    if (!n || s->st == S_CLOSING)
        return;
    uv_stream_t *dst = to_client ? (uv_stream_t *)&s->client : (uv_stream_t *)&s->server;
    if (to_client ? s->client_closed : (!s->server_inited || s->server_closed))
        return;
    if (al_stream_write(dst, p, n, on_write, s, to_client) != AL_OK)
        sess_close(s);
}

/* Ciphertext the TLS engine has for the socket. */
static void tls_flush(sess_t *s, bool to_client)
{
    al_tls_t *t = to_client ? s->ctls : s->stls;
    al_buf_t *o = &s->tls_scratch;
    al_buf_reset(o);
    if (t && al_tls_pending_out(t, o) == AL_OK && o->len)
        raw_send(s, to_client, o->p, o->len);
    al_buf_reset(o);
}

static void send_now(sess_t *s, bool to_client, const void *p, size_t n)
{
    al_tls_t *t = to_client ? s->ctls : s->stls;
    if (!t) {
        raw_send(s, to_client, p, n);
        return;
    }
    if (!n || s->st == S_CLOSING)
        return;
    if (al_tls_write(t, p, n) != AL_OK) {
        al_log(AL_LOG_WARN, "TLS write failed", "session", s->session_id, "error",
               al_tls_error(t), NULL);
        sess_close(s);
        return;
    }
    tls_flush(s, to_client);
}

static void send_bytes(sess_t *s, bool to_client, const void *p, size_t n)
{
    if (s->corked && s->st != S_CLOSING) {
        al_buf_append(&s->cork[to_client], p, n);
        return;
    }
    send_now(s, to_client, p, n);
}

/* Starts gathering writes; false when already corked (the caller that
 * corked uncorks). */
static bool cork(sess_t *s)
{
    if (s->corked)
        return false;
    s->corked = true;
    return true;
}

/* Writes what was gathered, upstream first, then applies backpressure:
 * a side whose peer has more than HIGH_WATER queued is not read. */
/* Writes what was gathered for one side now ([1] the client). */
static void flush_corked(sess_t *s, int side)
{
    al_buf_t *b = &s->cork[side];
    if (b->len && s->st != S_CLOSING)
        send_now(s, side == 1, b->p, b->len);
    al_buf_reset(b);
    if (b->cap > CORK_KEEP) /* a large result passed: give the memory back */
        al_buf_free(b);
}

static void uncork(sess_t *s)
{
    s->corked = false;
    flush_corked(s, 0);
    flush_corked(s, 1);
    if (s->st != S_READY)
        return;
    if (!s->server_paused &&
        uv_stream_get_write_queue_size((uv_stream_t *)&s->client) > HIGH_WATER) {
        s->server_paused = true;
        uv_read_stop((uv_stream_t *)&s->server);
    }
    if (!s->client_paused &&
        uv_stream_get_write_queue_size((uv_stream_t *)&s->server) > HIGH_WATER) {
        s->client_paused = true;
        uv_read_stop((uv_stream_t *)&s->client);
    }
}

static void send_buf(sess_t *s, bool to_client, al_buf_t *b)
{
    send_bytes(s, to_client, b->p, b->len);
    al_buf_reset(b);
}

/* FATAL error to the client, then close. */
static void rec_error(sess_t *s, const char *severity, const char *sqlstate, const char *msg,
                      const char *source)
{
    al_buf_t *b = al_rec_begin(s->rec, "error");
    if (!b)
        return;
    al_rec_cstr(b, "severity", severity);
    al_rec_cstr(b, "sqlstate", sqlstate);
    al_rec_cstr(b, "message", msg);
    al_rec_cstr(b, "source", source);
    al_rec_end(s->rec);
}

static void fatal(sess_t *s, const char *sqlstate, const char *msg, const char *detail)
{
    if (s->st != S_CLOSING) {
        rec_error(s, "FATAL", sqlstate, msg, "airlock");
        snprintf(s->close_msg, sizeof s->close_msg, "%s", msg);
        s->close_reason = s->close_msg;
    }
    al_buf_t b;
    al_buf_init(&b);
    al_pg_build_error(&b, "FATAL", sqlstate, msg, detail, NULL);
    send_buf(s, true, &b);
    al_buf_free(&b);
    sess_close(s);
}

/* ---- session lifetime ---------------------------------------------------------- */

/* Draining and no session left: release the worker's own handles so its
 * loop can end. */
static void drained(pg_worker_t *pw)
{
    if (!pw->closed) {
        pthread_mutex_lock(&pw->lock);
        pw->closed = true;
        pthread_mutex_unlock(&pw->lock);
        uv_close((uv_handle_t *)&pw->audit_async, NULL);
    }
    /* The worker's wake handle goes with its last session of any protocol. */
    if (!pw->w->active && !uv_is_closing((uv_handle_t *)&pw->w->wake))
        uv_close((uv_handle_t *)&pw->w->wake, NULL);
}

static void sess_free(sess_t *s)
{
    al_pg_framer_free(&s->cf);
    al_pg_framer_free(&s->sf);
    al_buf_free(&s->startup);
    al_buf_free(&s->hold_to_client);
    al_buf_free(&s->pending_in);
    for (size_t i = 0; i < s->n_inj; i++)
        free(s->inj[i].bytes);
    al_buf_free(&s->held_msg);
    al_buf_free(&s->appr_msg);
    al_buf_free(&s->appr_sql);
    free(s->appr_stmt);
    for (size_t i = 0; i < s->n_preps; i++) {
        free(s->preps[i].name);
        free(s->preps[i].sql);
    }
    free(s->preps);
    al_buf_free(&s->tls_scratch);
    al_buf_free(&s->cork[0]);
    al_buf_free(&s->cork[1]);
    al_buf_free(&s->plain);
    al_buf_free(&s->colnames);
    free(s->coloff);
    free(s->colfmt);
    for (size_t i = 0; i < s->n_meng; i++)
        al_mask_engine_unref(&s->meng[i]);
    al_tls_free(&s->ctls);
    al_tls_free(&s->stls);
    for (size_t i = 0; i < s->n_refused; i++)
        free(s->refused[i]);
    for (size_t i = 0; i < s->fl_cap; i++) {
        free(s->fl[i].error);
        al_buf_free(&s->fl[i].text);
    }
    free(s->fl);
    if (s->auth_inited)
        al_pg_auth_free(&s->auth);
    if (s->token) {
        al_wipe(s->token, s->token_len);
        free(s->token);
    }
    al_principal_unref(&s->principal);
    al_snapshot_unref(&s->snap);
    pg_worker_t *pw = s->pw;
    if (s->counted)
        atomic_fetch_sub(s->ls->count, 1);
    free(s);
    pw->w->active--;
    pw->n_sessions--;
    if (pw->draining && !pw->n_sessions)
        drained(pw);
}

static void handle_closed(uv_handle_t *h)
{
    sess_t *s = h->data;
    if (--s->handles == 0)
        sess_free(s);
}

static void close_handle(sess_t *s, uv_handle_t *h)
{
    if (!uv_is_closing(h)) {
        h->data = s;
        s->handles++;
        uv_close(h, handle_closed);
    }
}

static void cancel_unregister(sess_t *s)
{
    if (!s->cancel_registered)
        return;
    pthread_mutex_lock(&g_cancel_lock);
    for (cancel_ent_t **pp = &g_cancel; *pp; pp = &(*pp)->next) {
        if ((*pp)->s == s) {
            cancel_ent_t *e = *pp;
            *pp = e->next;
            free(e);
            break;
        }
    }
    pthread_mutex_unlock(&g_cancel_lock);
    s->cancel_registered = false;
}

static void kid_wake(void *arg) { uv_async_send(arg); }

static void reap_upstream(uv_timer_t *t)
{
    sess_t *s = t->data;
    close_handle(s, (uv_handle_t *)&s->server);
    close_handle(s, (uv_handle_t *)&s->expiry);
    s->handles--; /* sess_close's guard */
}

static void sess_close(sess_t *s)
{
    if (s->st == S_CLOSING)
        return;
    if (s->corked)
        uncork(s); /* what was sent before the close (a FATAL) goes out first */
    /* Statements still in flight keep their records (deferred decisions). */
    while (s->fl_n) {
        inflight_t *f = &s->fl[s->fl_head];
        if (!f->error && f->deferred)
            f->error = al_xstrdup("session closed before the result");
        record_result(s, f);
        s->fl_head = (s->fl_head + 1) % s->fl_cap;
        s->fl_n--;
    }
    s->st = S_CLOSING;
    al_rec_close(s->rec, &(al_rec_end_info_t){.reason = s->close_reason ? s->close_reason
                                                                         : "connection closed",
                                              .bytes_up = (int64_t)s->bytes_up,
                                              .bytes_down = (int64_t)s->bytes_down});
    s->rec = NULL;
    al_sess_end(&s->reg);
    cancel_unregister(s);
    /* A held statement's request is cancelled (client_disconnected); the
     * session's `session` grants end. */
    al_hold_detach(&s->hold);
    s->appr_wait = false;
    if (s->appr_used)
        al_hold_session_end(&s->pw->w->loop, s->pw->w->rt->approvals, s->session_id);
    if (s->pend) {
        s->pend->s = NULL;
        s->pend = NULL;
    }
    if (s->kid_waiting) {
        al_jwks_entry_cancel_wait(s->kid_entry, kid_wake, &s->kid_wait);
        s->kid_waiting = false;
        close_handle(s, (uv_handle_t *)&s->kid_wait);
    }
    if (s->next)
        s->next->pprev = s->pprev;
    *s->pprev = s->next;
    s->handles++; /* guard while closing the rest */
    close_handle(s, (uv_handle_t *)&s->client);
    if (s->defer_upstream && s->expiry_inited && s->server_inited) {
        /* Killed: cut every agent of a kill pass off first, on every worker;
         * the upstreams follow a moment later. Each upstream close makes a
         * backend exit, and a hundred exiting at once on a database that
         * shares the host delayed the last client's close by ~100 ms
         * (bench/revoke). Nothing more is read from or sent upstream; the
         * backend aborts an open transaction when its socket closes. The
         * guard reference stays until then. */
        uv_read_stop((uv_stream_t *)&s->server);
        uv_timer_start(&s->expiry, reap_upstream, KILL_UPSTREAM_DELAY_MS, 0);
        return;
    }
    if (s->expiry_inited)
        close_handle(s, (uv_handle_t *)&s->expiry);
    if (s->server_inited)
        close_handle(s, (uv_handle_t *)&s->server);
    s->handles--;
}

/* ---- audit ------------------------------------------------------------------------- */

static void fill_event(sess_t *s, al_audit_event_t *ev)
{
    al_audit_event_init(ev);
    ev->session_id = s->session_id;
    ev->protocol = "postgres";
    ev->target = s->target ? s->target->name : NULL;
    const al_principal_t *p = s->principal;
    if (p) {
        ev->agent = p->agent;
        ev->subject = p->sub;
        ev->issuer = p->iss;
        ev->groups = p->groups;
        ev->n_groups = p->n_groups;
    }
}

static void on_audit_done(void *ud, int rc, const char *id, const char *err)
{
    pend_t *pd = ud;
    AL_UNUSED(id);
    pd->rc = rc;
    snprintf(pd->err, sizeof pd->err, "%s", err ? err : "");
    pg_worker_t *pw = pd->pw;
    pthread_mutex_lock(&pw->lock);
    pd->next = pw->done;
    pw->done = pd;
    if (!pw->closed)
        uv_async_send(&pw->audit_async);
    pthread_mutex_unlock(&pw->lock);
}

static void held_committed(sess_t *s, int rc, const char *err);

static void on_audit_async(uv_async_t *h)
{
    pg_worker_t *pw = h->data;
    pthread_mutex_lock(&pw->lock);
    pend_t *list = pw->done;
    pw->done = NULL;
    pthread_mutex_unlock(&pw->lock);
    while (list) {
        pend_t *pd = list;
        list = pd->next;
        if (pd->s) {
            pd->s->pend = NULL;
            held_committed(pd->s, pd->rc, pd->err);
        }
        free(pd);
    }
}

/* Result of a forwarded statement, recorded async after the fact. */
static void record_result(sess_t *s, inflight_t *f)
{
    al_audit_event_t ev;
    fill_event(s, &ev);
    const char *tables[64];
    if (f->deferred) {
        ev.kind = AL_AUDIT_KIND_DECISION;
        ev.action = al_str_c(f->text.p);
        ev.cls = f->cls;
        ev.rule = f->rule[0] ? f->rule : NULL;
        ev.reason = f->reason;
        const char *t = f->text.p + strlen(f->text.p) + 1;
        for (size_t i = 0; i < f->n_tables && i < 64; i++, t += strlen(t) + 1)
            tables[i] = t;
        ev.tables = tables;
        ev.n_tables = AL_MIN(f->n_tables, 64);
    } else {
        ev.kind = AL_AUDIT_KIND_RESULT;
        ev.ref_id = f->id;
    }
    ev.rows = f->rows;
    ev.status = f->status[0] ? f->status : "00000";
    ev.duration_us = (int64_t)((al_mono_ns() - f->t0) / 1000);
    ev.error = f->error;
    ev.decision = f->deferred ? "allow" : f->error ? "error" : "ok";
    al_audit_submit_async(s->pw->w->rt->audit, &ev, NULL);
    free(f->error);
    f->error = NULL;
    f->deferred = false;
}

/* Room for one more statement in flight: grows the ring (8, 16, ... up to
 * MAX_INFLIGHT), keeping its order. false when full or out of memory. */
static bool fl_room(sess_t *s)
{
    if (s->fl_n < s->fl_cap)
        return true;
    if (s->fl_cap == MAX_INFLIGHT)
        return false;
    size_t cap = s->fl_cap ? s->fl_cap * 2 : 8;
    inflight_t *nf = calloc(cap, sizeof *nf);
    if (!nf)
        return false;
    for (size_t i = 0; i < s->fl_n; i++) /* full: every old slot moves, in order */
        nf[i] = s->fl[(s->fl_head + i) % s->fl_cap];
    free(s->fl);
    s->fl = nf;
    s->fl_cap = cap;
    s->fl_head = 0;
    return true;
}

static void inflight_push(sess_t *s, const char *id, bool execute)
{
    if (!fl_room(s)) /* pathological pipelining: record and forget */
        return;
    inflight_t *f = &s->fl[(s->fl_head + s->fl_n++) % s->fl_cap];
    snprintf(f->id, sizeof f->id, "%s", id);
    /* Pushed after its message was forwarded: a Query counted its own
     * ReadyForQuery then; a Parse's or Bind's batch ends at the next Sync. */
    f->rfq = execute ? s->rfq_expected + 1 : s->rfq_expected;
    f->t0 = al_mono_ns();
    f->rows = -1;
    f->execute = execute;
    f->status[0] = 0;
    free(f->error);
    f->error = NULL;
    f->deferred = false;
}

static inflight_t *inflight_head(sess_t *s)
{
    return s->fl_n ? &s->fl[s->fl_head] : NULL;
}

static void inflight_pop(sess_t *s)
{
    inflight_t *f = inflight_head(s);
    if (!f)
        return;
    record_result(s, f);
    s->fl_head = (s->fl_head + 1) % s->fl_cap;
    s->fl_n--;
}

/* ---- decisions -------------------------------------------------------------------- */

/* Identity before every statement. Within one config snapshot and one
 * revocation set the session's principal stays valid until its token
 * expires, so the check is a clock read and two compares; a new snapshot
 * (reload: issuers, inventory, keys may have changed) or a new revocation
 * set (kill switch) verifies the token again through the worker's
 * verified-token cache and revocation set. */
static bool recheck_identity(sess_t *s)
{
    al_worker_t *w = s->pw->w;
    double now = al_now();
    if (s->verified_gen == w->snap->gen && now < s->valid_until &&
        s->rev_gen == al_revset_gen(w->revoked))
        return true;
    al_principal_t *p = NULL;
    al_verify_info_t info;
    al_tok_status_t st = al_worker_verify(w, s->token, s->token_len, now, &p, &info);
    if (st == AL_TOK_EXPIRED && s->target->session_grace > 0 && s->principal &&
        now < s->principal->exp + s->target->session_grace &&
        al_revset_check(w->revoked, s->principal) == AL_TOK_OK)
        return true;
    if (st != AL_TOK_OK) {
        char msg[160];
        snprintf(msg, sizeof msg, "airlock: token %s", al_tok_reason(st));
        al_audit_event_t ev;
        fill_event(s, &ev);
        ev.kind = AL_AUDIT_KIND_AUTH;
        ev.decision = "deny";
        ev.reason = al_tok_reason(st);
        al_audit_submit_async(w->rt->audit, &ev, NULL);
        fatal(s, "28000", msg, info.detail);
        return false;
    }
    s->verified_gen = w->snap->gen;
    s->rev_gen = al_revset_gen(w->revoked);
    s->valid_until = p->exp;
    al_principal_unref(&s->principal);
    s->principal = p; /* the current snapshot's view (groups, agent) */
    al_sess_identify(s->reg, p);
    return true;
}

static void refusal_message(const al_verdict_t *v, al_sql_class_t cls, char *out, size_t cap)
{
    const char *msg = v->rule && v->rule->message ? v->rule->message : NULL;
    if (v->decision == AL_DECIDE_APPROVE) /* FunctionCall, or no approvals store */
        snprintf(out, cap, "airlock: approval required by policy %s: %s", v->rule->name,
                 msg ? msg : "this action needs a human approval, which cannot be requested "
                             "for it; ask an approver");
    else if (v->rule)
        snprintf(out, cap, "airlock: denied by policy %s: %s", v->rule->name,
                 msg ? msg : "statement not allowed");
    else if (!strcmp(v->reason, "invalid_function_call"))
        snprintf(out, cap, "airlock: denied by policy: function calls are not allowed");
    else
        snprintf(out, cap, "airlock: denied by policy: no rule allows this %s statement",
                 al_sql_class_name(cls));
}

typedef struct decision {
    al_verdict_t v;
    al_sql_class_t cls;
    const al_sql_result_t *r;
    /* approvals: what the audit event says instead of the verdict's name
     * and reason, and the request involved; NULL when none */
    const char *decision, *reason, *approval_id;
} decision_t;

static void decide(sess_t *s, al_str_t sql, decision_t *d)
{
    const al_policy_t *pol = s->pw->w->snap->policy;
    al_sql_opts_t o = {.default_function_class = al_policy_target_fn_default(pol, s->target->name)};
    al_sql_classify(s->pw->sql, sql.p, sql.len, &o, &d->r);
    const al_principal_t *p = s->principal;
    al_subject_t who = {p->agent, p->issuer_name, p->groups, p->n_groups};
    al_policy_decide_sql(pol, &who, s->target->name, d->r, (int64_t)al_now(), &d->v, NULL, 0);
    d->cls = d->r->cls;
    d->decision = d->reason = d->approval_id = NULL;
}

/* A COPY ... TO statement (results as CopyData, without column names). */
static bool copy_to(const al_sql_result_t *r)
{
    for (size_t i = 0; r && i < r->n_stmts; i++)
        if (r->stmts[i].kind && !strcmp(r->stmts[i].kind, "CopyStmt") &&
            r->stmts[i].cls == AL_SQL_READ)
            return true;
    return false;
}

/* The engines that mask the results of the statement just allowed: the
 * target's own, plus named entries its rule (or rules) listed. */
static void set_masks(sess_t *s, const al_verdict_t *v)
{
    for (size_t i = 0; i < s->n_meng; i++)
        al_mask_engine_unref(&s->meng[i]);
    s->n_meng = 0;
    const al_mask_set_t *ms = s->pw->w->snap->masks;
    al_mask_engine_t *e = al_mask_set_target(ms, s->target->name);
    if (e)
        s->meng[s->n_meng++] = al_mask_engine_ref(e);
    for (size_t i = 0; i < v->n_masks && s->n_meng < AL_ARRAY_LEN(s->meng); i++)
        if ((e = al_mask_set_named(ms, v->masks[i], s->target->name)))
            s->meng[s->n_meng++] = al_mask_engine_ref(e);
    for (size_t i = 0; i < s->n_meng; i++)
        if (al_mask_scratch_alloc(s->meng[i], &s->pw->mscr) < 0) {
            al_log(AL_LOG_ERROR, "cannot allocate masking scratch", NULL);
            sess_close(s);
            return;
        }
}

/* Builds and submits the decision event. strict: returns AL_OK when the
 * submission was accepted (callback to come), AL_ERR refused at once. */
static int audit_decision(sess_t *s, al_str_t action, const decision_t *d, bool strict,
                          char id[AL_AUDIT_ID_SIZE], const char **err)
{
    al_audit_event_t ev;
    fill_event(s, &ev);
    ev.kind = AL_AUDIT_KIND_DECISION;
    ev.action = action;
    ev.cls = al_sql_class_name(d->cls);
    ev.decision = d->decision ? d->decision : al_decision_name(d->v.decision);
    ev.rule = d->v.rule ? d->v.rule->name : NULL;
    ev.reason = d->reason ? d->reason : d->v.reason;
    ev.approval_id = d->approval_id;
    const char *tables[64];
    char tb[64][AL_POLICY_TABLE_NAME_MAX];
    ev.n_tables = al_policy_table_names(d->r, tb, tables, 64);
    ev.tables = tables;
    al_audit_t *a = s->pw->w->rt->audit;
    if (!strict) {
        al_audit_submit_async(a, &ev, id);
        return AL_OK;
    }
    pend_t *pd = al_xcalloc(1, sizeof *pd);
    pd->s = s;
    pd->pw = s->pw;
    if (al_audit_submit(a, &ev, on_audit_done, pd, id, err) != AL_OK) {
        free(pd);
        return AL_ERR;
    }
    s->pend = pd;
    return AL_OK;
}

/* Queues an ErrorResponse for the client at the right place in the stream:
 * now when nothing is outstanding upstream, else just before the next
 * ReadyForQuery. simple: the refused message was a Query (answer it with
 * ReadyForQuery too). */
static bool in_flight(const sess_t *s)
{
    return s->rfq_expected != s->rfq_seen || s->since_sync;
}

static void refuse(sess_t *s, const char *sqlstate, const char *msg, bool simple)
{
    rec_error(s, "ERROR", sqlstate, msg, "airlock");
    al_buf_t e;
    al_buf_init(&e);
    al_pg_build_error(&e, "ERROR", sqlstate, msg, NULL, NULL);
    if (!in_flight(s)) {
        send_buf(s, true, &e);
        if (simple) {
            al_pg_build_ready(&e, s->txn ? s->txn : 'I');
            send_buf(s, true, &e);
        }
        al_buf_free(&e);
        return;
    }
    if (s->n_inj == AL_ARRAY_LEN(s->inj)) {
        al_buf_free(&e);
        fatal(s, "54000", "airlock: too many refused statements in flight", NULL);
        return;
    }
    struct inject *in = &s->inj[s->n_inj++];
    in->bytes = al_xmalloc(e.len);
    memcpy(in->bytes, e.p, e.len);
    in->len = e.len;
    if (simple) {
        /* Keep order: an empty query upstream answers EmptyQueryResponse
         * (dropped) and ReadyForQuery, before which the error goes. */
        al_buf_reset(&e);
        al_pg_build_query(&e, "");
        send_buf(s, false, &e);
        in->idx = ++s->rfq_expected;
        in->placeholder = true;
    } else {
        in->idx = s->rfq_expected + 1; /* the batch's Sync is still to come */
        in->placeholder = false;
    }
    al_buf_free(&e);
}

static void remember_refused(sess_t *s, al_str_t name)
{
    for (size_t i = 0; i < s->n_refused; i++)
        if (strlen(s->refused[i]) == name.len && !memcmp(s->refused[i], name.p, name.len))
            return;
    if (s->n_refused == MAX_REFUSED) {
        free(s->refused[0]);
        memmove(s->refused, s->refused + 1, (MAX_REFUSED - 1) * sizeof *s->refused);
        s->n_refused--;
    }
    s->refused[s->n_refused++] = al_xstrndup(name.p, name.len);
}

static void forget_refused(sess_t *s, al_str_t name)
{
    for (size_t i = 0; i < s->n_refused; i++) {
        if (strlen(s->refused[i]) == name.len && !memcmp(s->refused[i], name.p, name.len)) {
            free(s->refused[i]);
            s->refused[i] = s->refused[--s->n_refused];
            return;
        }
    }
}

static bool is_refused(sess_t *s, al_str_t name)
{
    for (size_t i = 0; i < s->n_refused; i++)
        if (strlen(s->refused[i]) == name.len && !memcmp(s->refused[i], name.p, name.len))
            return true;
    return false;
}

static struct prep *prep_find(sess_t *s, al_str_t name)
{
    for (size_t i = 0; i < s->n_preps; i++)
        if (strlen(s->preps[i].name) == name.len && !memcmp(s->preps[i].name, name.p, name.len))
            return &s->preps[i];
    return NULL;
}

static void prep_del(sess_t *s, al_str_t name)
{
    struct prep *p = prep_find(s, name);
    if (!p)
        return;
    s->prep_bytes -= p->sql_len;
    free(p->name);
    free(p->sql);
    *p = s->preps[--s->n_preps];
}

/* Whether a Parse of `name` with `len` bytes of SQL fits the caps. */
static bool prep_room(sess_t *s, al_str_t name, size_t len)
{
    struct prep *p = prep_find(s, name);
    size_t bytes = s->prep_bytes - (p ? p->sql_len : 0);
    return (p || s->n_preps < MAX_PREPARED) && len <= MAX_PREPARED_BYTES - bytes;
}

/* An allowed Parse: the statement's text, for its later executions.
 * false when out of memory (the caller ends the session: an execution
 * that cannot be decided again must not run). */
static bool prep_put(sess_t *s, al_str_t name, al_str_t sql)
{
    prep_del(s, name);
    if (s->n_preps == s->cap_preps) {
        size_t cap = s->cap_preps ? s->cap_preps * 2 : 8;
        struct prep *np = realloc(s->preps, cap * sizeof *np);
        if (!np)
            return false;
        s->preps = np;
        s->cap_preps = cap;
    }
    char *n = al_strndup(name.p, name.len), *q = al_strndup(sql.p, sql.len);
    if (!n || !q) {
        free(n);
        free(q);
        return false;
    }
    s->preps[s->n_preps++] = (struct prep){.name = n, .sql = q, .sql_len = sql.len,
                                           .batch = s->syncs};
    s->prep_bytes += sql.len;
    return true;
}

/* Skips whitespace and SQL comments; returns the new position. */
static size_t sql_skip_space(const char *p, size_t n, size_t i)
{
    for (;;) {
        while (i < n && strchr(" \t\r\n\f", p[i]))
            i++;
        if (i + 1 < n && p[i] == '-' && p[i + 1] == '-') {
            while (i < n && p[i] != '\n')
                i++;
        } else if (i + 1 < n && p[i] == '/' && p[i + 1] == '*') {
            size_t e = i + 2;
            while (e + 1 < n && !(p[e] == '*' && p[e + 1] == '/'))
                e++;
            i = e + 1 < n ? e + 2 : n;
        } else {
            return i;
        }
    }
}

/* The keyword kw (upper case) at p[i], case-insensitive, ending there. */
static bool sql_word(const char *p, size_t n, size_t *i, const char *kw)
{
    size_t k = strlen(kw);
    if (n - *i < k || strncasecmp(p + *i, kw, k) ||
        (*i + k < n && (isalnum((unsigned char)p[*i + k]) || p[*i + k] == '_')))
        return false;
    *i = sql_skip_space(p, n, *i + k);
    return true;
}

/* A Query that is exactly DEALLOCATE [PREPARE] name|ALL or DISCARD ALL
 * (drivers such as psycopg release their prepared statements so): the
 * statements it releases are forgotten here too, so a long session's
 * table of prepared statements does not fill up with released ones. An
 * unquoted name is folded to lower case, as PostgreSQL does. */
static void prep_forget_sql(sess_t *s, al_str_t sql)
{
    const char *p = sql.p;
    size_t n = sql.len, i = sql_skip_space(p, n, 0);
    bool all = false;
    char name[NAMEDATALEN_MAX + 1];
    size_t nl = 0;
    if (sql_word(p, n, &i, "DISCARD")) {
        if (!sql_word(p, n, &i, "ALL"))
            return;
        all = true;
    } else if (sql_word(p, n, &i, "DEALLOCATE")) {
        sql_word(p, n, &i, "PREPARE");
        if (sql_word(p, n, &i, "ALL")) {
            all = true;
        } else if (i < n && p[i] == '"') {
            for (i++; i < n; i++) {
                if (p[i] == '"' && !(i + 1 < n && p[i + 1] == '"'))
                    break;
                if (p[i] == '"')
                    i++;
                if (nl == NAMEDATALEN_MAX)
                    return;
                name[nl++] = p[i];
            }
            if (i++ >= n)
                return;
        } else {
            while (i < n && (isalnum((unsigned char)p[i]) || p[i] == '_' || p[i] == '$' ||
                             (unsigned char)p[i] >= 0x80)) {
                if (nl == NAMEDATALEN_MAX)
                    return;
                name[nl++] = (char)tolower((unsigned char)p[i++]);
            }
            if (!nl)
                return;
        }
        i = sql_skip_space(p, n, i);
    } else {
        return;
    }
    if (i < n && p[i] == ';')
        i = sql_skip_space(p, n, i + 1);
    if (i != n)
        return; /* more than one statement: left to the upstream */
    if (all) {
        while (s->n_preps)
            prep_del(s, al_str_c(s->preps[0].name));
        return;
    }
    prep_del(s, (al_str_t){name, nl});
}

/* ---- client -> upstream ---------------------------------------------------------- */

static void forward(sess_t *s, const al_pg_msg_t *m)
{
    send_bytes(s, false, m->raw, m->raw_len);
    if (m->type == 'Q' || m->type == 'F') {
        s->rfq_expected++;
    } else if (m->type == 'S') {
        s->rfq_expected++;
        s->since_sync = 0;
    } else if (strchr("PBEDCH", m->type)) {
        s->since_sync++; /* extended-query messages answered at the next Sync */
    }
}

/* Strict record done: forward the held message, or refuse it. */
static void held_committed(sess_t *s, int rc, const char *err)
{
    s->audit_wait = false;
    if (rc != AL_OK) {
        al_log(AL_LOG_ERROR, "audit record not committed; statement refused", "session",
               s->session_id, "error", err, NULL);
        char msg[AL_AUDIT_ERR_SIZE + 96];
        snprintf(msg, sizeof msg, "airlock: statement refused: its audit record could not be "
                                  "written (%s)", err);
        bool simple = s->held_msg.len && s->held_msg.p[0] == 'Q';
        if (!simple)
            s->skipping = true;
        refuse(s, "58030", msg, simple);
    } else {
        bool simple = s->held_msg.p[0] == 'Q';
        al_pg_msg_t hm = {.type = (uint8_t)s->held_msg.p[0],
                          .raw = (const uint8_t *)s->held_msg.p, .raw_len = s->held_msg.len};
        forward(s, &hm);
        inflight_push(s, s->held_id, !simple);
    }
    al_buf_reset(&s->held_msg);
    resume_client(s);
}

/* An allowed statement (or one an approval let through: d->approval_id):
 * masks, audit (strict: hold until committed), forward. Returns false when
 * the session must stop processing input. */
static bool allow_statement(sess_t *s, const al_pg_msg_t *m, al_str_t sql, al_str_t stmt_name,
                            bool simple, decision_t *d)
{
    if (!simple)
        forget_refused(s, stmt_name);
    if (m->type == 'Q' && s->n_preps)
        prep_forget_sql(s, sql);
    if (m->type == 'P' && !prep_put(s, stmt_name, sql)) {
        fatal(s, "53200", "airlock: out of memory", NULL);
        return false;
    }
    set_masks(s, &d->v);
    if (s->n_meng && copy_to(d->r) &&
        al_mask_set_has_columns(s->pw->w->snap->masks, s->target->name)) {
        /* COPY TO carries no column names: column masking cannot apply. */
        char id[AL_AUDIT_ID_SIZE];
        d->v.decision = AL_DECIDE_DENY;
        d->v.reason = "copy_to_with_column_masking";
        d->decision = d->reason = NULL;
        audit_decision(s, sql, d, false, id, NULL);
        if (!simple) {
            if (m->type == 'P')
                remember_refused(s, stmt_name);
            s->skipping = true;
        }
        refuse(s, "42501", "airlock: COPY TO is refused on a target with column masking; "
                           "use SELECT so masking can see the column names", simple);
        return true;
    }
    bool strict = d->v.audit != AL_AUDIT_MODE_ASYNC;
    if (!strict && fl_room(s) && !d->approval_id) {
        forward(s, m);
        inflight_push(s, "", !simple);
        inflight_t *f = &s->fl[(s->fl_head + s->fl_n - 1) % s->fl_cap];
        f->deferred = true;
        f->cls = al_sql_class_name(d->cls);
        f->reason = d->v.reason;
        snprintf(f->rule, sizeof f->rule, "%s", d->v.rule ? d->v.rule->name : "");
        al_buf_reset(&f->text);
        size_t cap = s->pw->w->snap->cfg->audit.max_action_bytes;
        al_buf_append(&f->text, sql.p, AL_MIN(sql.len, cap));
        al_buf_append(&f->text, "", 1);
        f->n_tables = 0;
        const al_sql_result_t *r = d->r;
        char tn[AL_POLICY_TABLE_NAME_MAX];
        for (size_t i = 0; i < r->n_tables && i < 64; i++, f->n_tables++) {
            al_buf_puts(&f->text, al_policy_table_name(&r->tables[i], tn, sizeof tn));
            al_buf_append(&f->text, "", 1);
        }
        return true;
    }
    const char *err = NULL;
    char id[AL_AUDIT_ID_SIZE] = "";
    if (audit_decision(s, sql, d, strict, id, &err) != AL_OK) {
        al_log(AL_LOG_ERROR, "audit refused a strict event; statement refused", "session",
               s->session_id, "error", err ? err : "?", NULL);
        char msg[256];
        snprintf(msg, sizeof msg, "airlock: statement refused: its audit record could not be "
                                  "written (%s)", err ? err : "audit unavailable");
        if (!simple)
            s->skipping = true;
        refuse(s, "58030", msg, simple);
        return true;
    }
    if (strict) {
        /* Hold the message until the record commits; stop reading. */
        al_buf_append(&s->held_msg, m->raw, m->raw_len);
        snprintf(s->held_id, sizeof s->held_id, "%s", id);
        s->audit_wait = true;
        return false;
    }
    forward(s, m);
    inflight_push(s, id, !simple);
    return true;
}

/* ---- approvals (docs/approvals.md, approval_hold.h) -------------------------------- */

/* The held statement's SQL (a view into appr_sql). */
static bool held_sql(sess_t *s, al_str_t *sql)
{
    if (s->appr_msg.len < 5 || s->appr_sql.oom)
        return false;
    *sql = (al_str_t){s->appr_sql.p ? s->appr_sql.p : "", s->appr_sql.len};
    return true;
}

/* The held statement is refused: 42501 in stream order; the session goes on. */
static void held_refused(sess_t *s, const char *msg)
{
    if (!s->appr_simple) {
        if (s->appr_msg.p[0] == 'P') /* a Bind's statement is decided again next time */
            remember_refused(s, al_str_c(s->appr_stmt ? s->appr_stmt : ""));
        s->skipping = true;
    }
    refuse(s, "42501", msg, s->appr_simple);
}

/* An audit event for the held statement: decision `decision` (pending,
 * deny), reason, request id. */
static void audit_held(sess_t *s, const char *decision, const char *reason, const char *id)
{
    al_str_t sql;
    if (!held_sql(s, &sql))
        return;
    decision_t d;
    decide(s, sql, &d);
    d.decision = decision;
    d.reason = reason;
    d.approval_id = id && *id ? id : NULL;
    char eid[AL_AUDIT_ID_SIZE];
    audit_decision(s, sql, &d, false, eid, NULL);
}

/* A grant covers the held statement: it goes on as an allowed one, its
 * decision event naming the request and the grant. */
static void held_allowed(sess_t *s, const char *id, const char *reason)
{
    al_str_t sql;
    if (!held_sql(s, &sql)) {
        held_refused(s, "airlock: the held statement could not be read again");
        return;
    }
    if (!recheck_identity(s))
        return;
    decision_t d;
    decide(s, sql, &d);
    if (d.v.decision == AL_DECIDE_DENY) {
        /* A reload made it a denial meanwhile: deny beats any grant. */
        char eid[AL_AUDIT_ID_SIZE];
        audit_decision(s, sql, &d, false, eid, NULL);
        char msg[512];
        refusal_message(&d.v, d.cls, msg, sizeof msg);
        held_refused(s, msg);
        return;
    }
    d.v.decision = AL_DECIDE_ALLOW;
    d.decision = "allow";
    d.reason = reason;
    d.approval_id = id && *id ? id : NULL;
    al_pg_msg_t hm = {.type = (uint8_t)s->appr_msg.p[0], .raw = (const uint8_t *)s->appr_msg.p,
                      .raw_len = s->appr_msg.len};
    al_str_t name = al_str_c(s->appr_stmt ? s->appr_stmt : "");
    allow_statement(s, &hm, sql, name, s->appr_simple, &d);
}

static void on_hold(void *ud, const al_hold_result_t *r)
{
    sess_t *s = ud;
    if (s->st == S_CLOSING)
        return;
    char msg[AL_APPROVALS_MAX_REASON + 256], why[128];
    al_hold_message(r, msg, sizeof msg);
    const char *reason = al_hold_audit_reason(r, why, sizeof why);
    if (r->outcome == AL_HOLD_WAITING) {
        audit_held(s, "pending", reason, r->id);
        al_buf_t b;
        al_buf_init(&b);
        al_pg_build_notice(&b, "NOTICE", "01000", msg, NULL, NULL);
        send_buf(s, true, &b);
        al_buf_free(&b);
        return;
    }
    al_hold_detach(&s->hold);
    s->appr_wait = false;
    if (r->outcome == AL_HOLD_GRANTED || r->outcome == AL_HOLD_APPROVED) {
        held_allowed(s, r->id, reason);
    } else {
        audit_held(s, r->outcome == AL_HOLD_RETRY ? "pending" : "deny", reason, r->id);
        held_refused(s, msg);
    }
    al_buf_reset(&s->appr_msg);
    if (s->st != S_CLOSING && !s->audit_wait && !s->appr_wait)
        resume_client(s);
}

/* An `approve` verdict: hold the message and ask the approvals service
 * (off-loop) for a grant or a new request. Returns false: no more input
 * is processed until on_hold. */
static bool hold_statement(sess_t *s, const al_pg_msg_t *m, al_str_t sql, al_str_t stmt_name,
                           bool simple, const decision_t *d)
{
    al_worker_t *w = s->pw->w;
    al_buf_reset(&s->appr_msg);
    al_buf_append(&s->appr_msg, m->raw, m->raw_len);
    al_buf_reset(&s->appr_sql);
    al_buf_append(&s->appr_sql, sql.p, sql.len);
    s->appr_simple = simple;
    free(s->appr_stmt);
    s->appr_stmt = al_xstrndup(stmt_name.p, stmt_name.len);
    s->appr_wait = true;
    s->appr_used = true;
    const al_principal_t *p = s->principal;
    al_approval_req_t r = {.agent = p->agent ? p->agent : p->sub, .owner = p->owner,
                           .subject = p->sub, .issuer = p->iss,
                           .groups = (const char *const *)p->groups, .n_groups = p->n_groups,
                           .target = s->target->name, .protocol = "postgres", .action = sql,
                           .rule = d->v.rule, .mode = d->v.rule->mode,
                           .session_id = s->session_id};
    s->hold = al_hold_start(&w->loop, w->rt, w->snap, &r, on_hold, s);
    return false;
}

/* Query or Parse: decide, audit, forward or refuse. Returns false when the
 * session must stop processing input (waiting for audit, or closed). */
/* The statement line of the recording: what was asked and what was decided. */
static void rec_statement(sess_t *s, al_str_t sql, al_str_t stmt_name, char msg_type,
                          const char *decision, const char *rule, const char *reason)
{
    bool simple = msg_type == 'Q' || msg_type == 'F';
    s->rec_rows = 0;
    s->rec_rows_cut = false;
    s->rec_t0 = al_mono_ns();
    al_buf_t *b = al_rec_begin(s->rec, simple ? "query" : msg_type == 'B' ? "execute" : "parse");
    if (!b)
        return;
    if (!simple)
        al_rec_str(b, "name", stmt_name.p, stmt_name.len);
    al_rec_str(b, "sql", sql.p, sql.len);
    al_rec_cstr(b, "decision", decision);
    if (rule)
        al_rec_cstr(b, "rule", rule);
    if (reason)
        al_rec_cstr(b, "reason", reason);
    al_rec_end(s->rec);
}

/* recordings.on_failure: refuse - the recorder cannot write: refuse the
 * action like an unwritable audit log (docs/recordings.md). */
static bool recording_refused(sess_t *s, al_str_t action, bool simple)
{
    al_recorder_t *r = s->pw->w->rt->recorder;
    if (!al_recorder_refusing(r))
        return false;
    char cause[600], msg[800];
    al_recorder_error(r, cause, sizeof cause);
    snprintf(msg, sizeof msg,
             "airlock: session %s; the action is refused (recordings.on_failure: refuse)",
             *cause ? cause : "recording failed");
    al_audit_event_t ev;
    fill_event(s, &ev);
    ev.kind = AL_AUDIT_KIND_DECISION;
    ev.action = action;
    ev.decision = "deny";
    ev.reason = "recording_failed";
    ev.error = cause;
    al_audit_submit_async(s->pw->w->rt->audit, &ev, NULL);
    if (!simple)
        s->skipping = true;
    refuse(s, "58030", msg, simple);
    return true;
}

static bool statement(sess_t *s, const al_pg_msg_t *m, al_str_t sql, al_str_t stmt_name,
                      bool simple)
{
    if (!recheck_identity(s))
        return false;
    al_sess_action(s->reg);
    if (recording_refused(s, sql, simple)) {
        if (m->type == 'P')
            remember_refused(s, stmt_name);
        return true;
    }
    decision_t d;
    decide(s, sql, &d);
    if (s->rec)
        rec_statement(s, sql, stmt_name, (char)m->type,
                      d.v.decision == AL_DECIDE_APPROVE && d.v.rule && s->pw->w->rt->approvals
                          ? "pending"
                          : al_decision_name(d.v.decision),
                      d.v.rule ? d.v.rule->name : NULL,
                      d.v.decision == AL_DECIDE_ALLOW ? NULL : d.v.reason);
    if (d.v.decision == AL_DECIDE_APPROVE && d.v.rule && s->pw->w->rt->approvals)
        return hold_statement(s, m, sql, stmt_name, simple, &d);
    if (d.v.decision != AL_DECIDE_ALLOW) {
        char id[AL_AUDIT_ID_SIZE];
        audit_decision(s, sql, &d, false, id, NULL);
        char msg[512];
        refusal_message(&d.v, d.cls, msg, sizeof msg);
        if (!simple) {
            /* A refused Parse is never prepared upstream: its Binds are
             * refused. A refused execution (Bind) refuses this run only;
             * the next one is decided again. */
            if (m->type == 'P')
                remember_refused(s, stmt_name);
            s->skipping = true;
        }
        refuse(s, "42501", msg, simple);
        return true;
    }
    return allow_statement(s, m, sql, stmt_name, simple, &d);
}

/* A run of values (Bind parameters, DataRow columns) as a JSON array;
 * each value at most `cap` bytes (cut values end the array with a note). */
static void rec_values(al_buf_t *b, const char *key, al_pg_values_t it, size_t n, size_t cap,
                       const uint8_t *fmts, size_t nfmts, const uint8_t *colfmt, size_t ncolfmt)
{
    al_buf_puts(b, ",\"");
    al_buf_puts(b, key);
    al_buf_puts(b, "\":[");
    al_pg_value_t v;
    bool cut = false;
    for (size_t i = 0; i < n && al_pg_values_next(&it, &v); i++) {
        if (i)
            al_buf_append(b, ",", 1);
        if (v.null) {
            al_buf_append(b, "null", 4);
            continue;
        }
        bool binary = fmts ? (nfmts == 1 ? al_pg_u16(fmts) : i < nfmts ? al_pg_u16(fmts + 2 * i) : 0)
                           : (i < ncolfmt && colfmt[i]);
        size_t len = v.len > cap ? cap : v.len;
        cut |= len < v.len;
        if (binary) {
            al_rec_base64(b, NULL, v.p, len);
        } else {
            al_rec_bytes(b, NULL, v.p, len);
        }
    }
    al_buf_append(b, "]", 1);
    if (cut)
        al_rec_bool(b, "values_cut", true);
}

static void rec_bind(sess_t *s, const al_pg_bind_t *bd)
{
    al_buf_t *b = al_rec_begin(s->rec, "bind");
    if (!b)
        return;
    al_rec_str(b, "statement", bd->statement.p, bd->statement.len);
    al_rec_str(b, "portal", bd->portal.p, bd->portal.len);
    rec_values(b, "params", al_pg_bind_params(bd), bd->nparams,
               (size_t)s->pw->w->snap->cfg->recordings.max_body_bytes, bd->param_formats,
               bd->nparam_formats, NULL, 0);
    al_rec_end(s->rec);
    s->rec_rows = 0;
    s->rec_rows_cut = false;
    s->rec_t0 = al_mono_ns();
}

/* One client message in READY. Returns false to stop processing input. */
static bool client_msg(sess_t *s, const al_pg_msg_t *m)
{
    switch (m->type) {
    case 'Q': {
        al_str_t sql;
        if (al_pg_parse_query(m->body, m->body_len, &sql) != AL_PG_OK) {
            fatal(s, "08P01", "airlock: malformed Query message", NULL);
            return false;
        }
        s->ncols = 0;
        return statement(s, m, sql, (al_str_t){"", 0}, true);
    }
    case 'S': /* Sync ends a refused batch */
        s->skipping = false;
        s->syncs++;
        forward(s, m);
        return true;
    case 'X':
        s->close_reason = "client terminated";
        send_bytes(s, false, m->raw, m->raw_len);
        sess_close(s);
        return false;
    default:
        break;
    }
    if (s->skipping) /* after a refusal, a server discards until Sync too */
        return true;
    switch (m->type) {
    case 'P': {
        al_pg_parse_msg_t pm;
        if (al_pg_parse_parse(m->body, m->body_len, &pm) != AL_PG_OK) {
            fatal(s, "08P01", "airlock: malformed Parse message", NULL);
            return false;
        }
        if (!prep_room(s, pm.statement, pm.query.len)) {
            s->skipping = true;
            refuse(s, "54000",
                   "airlock: too many prepared statements in this session (at most 4096, "
                   "16 MiB of SQL); close the ones no longer used (Close message) or reconnect",
                   false);
            return true;
        }
        return statement(s, m, pm.query, pm.statement, false);
    }
    case 'B': {
        al_pg_bind_t b;
        if (al_pg_parse_bind(m->body, m->body_len, &b) != AL_PG_OK) {
            fatal(s, "08P01", "airlock: malformed Bind message", NULL);
            return false;
        }
        if (is_refused(s, b.statement)) {
            s->skipping = true;
            refuse(s, "42501", "airlock: denied by policy: this prepared statement was refused",
                   false);
            return true;
        }
        s->ncols = 0; /* a RowDescription may follow (Describe portal) */
        struct prep *pr = prep_find(s, b.statement);
        if (pr && (pr->bound || pr->batch != s->syncs)) {
            /* The statement runs again: decided again (the policy may have
             * been reloaded, a grant used up) and audited as a statement,
             * strict ones durable before this run. */
            if (s->rec)
                rec_bind(s, &b);
            return statement(s, m, (al_str_t){pr->sql, pr->sql_len}, b.statement, false);
        }
        if (pr)
            pr->bound = true; /* the run its Parse was decided and audited for */
        /* A statement airlock has not seen prepared (SQL PREPARE) was
         * decided as that statement. */
        if (!recheck_identity(s))
            return false;
        if (recording_refused(s, al_str_c("<Bind>"), false))
            return true;
        if (s->rec)
            rec_bind(s, &b);
        forward(s, m);
        return true;
    }
    case 'C': {
        /* Close of a prepared statement: forget its text. */
        if (m->body_len >= 2 && m->body[0] == 'S' && m->body[m->body_len - 1] == 0)
            prep_del(s, al_str_c((const char *)m->body + 1));
        forward(s, m);
        return true;
    }
    case 'E':
        if (!recheck_identity(s))
            return false;
        forward(s, m);
        return true;
    case 'F': {
        /* FunctionCall: an admin-class action unless a rule allows admin. */
        if (!recheck_identity(s))
            return false;
        al_sess_action(s->reg);
        if (recording_refused(s, al_str_c("<FunctionCall>"), true))
            return true;
        const al_principal_t *p = s->principal;
        al_subject_t who = {p->agent, p->issuer_name, p->groups, p->n_groups};
        al_action_t act = {.kind = AL_ACTION_SQL, .target = s->target->name,
                           .cls = AL_SQL_ADMIN, .now = (int64_t)al_now()};
        decision_t d = {.cls = AL_SQL_ADMIN};
        al_policy_decide(s->pw->w->snap->policy, &who, &act, &d.v);
        char id[AL_AUDIT_ID_SIZE];
        audit_decision(s, al_str_c("<FunctionCall>"), &d, false, id, NULL);
        if (s->rec)
            rec_statement(s, al_str_c("<FunctionCall>"), (al_str_t){"", 0}, 'F',
                          al_decision_name(d.v.decision), d.v.rule ? d.v.rule->name : NULL,
                          d.v.decision == AL_DECIDE_ALLOW ? NULL : d.v.reason);
        if (d.v.decision != AL_DECIDE_ALLOW) {
            char msg[512];
            refusal_message(&d.v, AL_SQL_ADMIN, msg, sizeof msg);
            refuse(s, "42501", msg, true);
            return true;
        }
        forward(s, m);
        return true;
    }
    default:
        forward(s, m); /* Describe, Close, Flush, CopyData/Done/Fail, ... */
        return true;
    }
}

static void process_client(sess_t *s)
{
    size_t off = 0;
    al_buf_t *in = &s->pending_in;
    while (off < in->len && s->st == S_READY && !s->audit_wait && !s->appr_wait) {
        al_pg_msg_t m;
        ssize_t n = al_pg_frame(&s->cf, (const uint8_t *)in->p + off, in->len - off, &m);
        if (n < 0) {
            fatal(s, "08P01", "airlock: protocol violation from the client",
                  al_pg_err_str(s->cf.err));
            return;
        }
        if (n == 0) {
            off = in->len;
            break;
        }
        off += (size_t)n;
        if (!client_msg(s, &m))
            break;
    }
    if (s->st == S_CLOSING)
        return;
    memmove(in->p, in->p + off, in->len - off);
    in->len -= off;
    /* Held for an approval, the client is still read (its disconnect
     * cancels the request) until HIGH_WATER bytes wait. */
    if ((s->audit_wait || (s->appr_wait && in->len > HIGH_WATER)) && !s->client_paused) {
        s->client_paused = true;
        uv_read_stop((uv_stream_t *)&s->client);
    }
}

/* ---- upstream -> client -------------------------------------------------------------- */

static void row_desc(sess_t *s, const al_pg_msg_t *m)
{
    al_pg_row_desc_t d;
    s->ncols = 0;
    if (al_pg_parse_row_desc(m->body, m->body_len, &d) != AL_PG_OK)
        return;
    al_buf_reset(&s->colnames);
    s->coloff = realloc(s->coloff, (d.nfields ? d.nfields : 1) * sizeof *s->coloff);
    s->colfmt = realloc(s->colfmt, d.nfields ? d.nfields : 1);
    if (!s->coloff || !s->colfmt) {
        sess_close(s);
        return;
    }
    al_pg_fields_t it = al_pg_row_desc_fields(&d);
    al_pg_field_t fl;
    size_t i = 0;
    while (i < d.nfields && al_pg_fields_next(&it, &fl)) {
        s->coloff[i] = (uint32_t)s->colnames.len;
        al_buf_append(&s->colnames, fl.name.p, fl.name.len);
        al_buf_append(&s->colnames, "", 1);
        s->colfmt[i++] = (uint8_t)(fl.format == 1);
    }
    s->ncols = i;
}

/* Masks one DataRow into pw->mrow. Returns true when the row changed.
 * Text columns go through every engine (column rules, then detectors);
 * binary columns cannot be scanned, so a binary column a column rule names
 * is sent as NULL. Without a known RowDescription (an Execute of a
 * statement described earlier), detectors still run, column rules cannot. */
static bool mask_row(sess_t *s, const al_pg_msg_t *m, bool *failed)
{
    pg_worker_t *pw = s->pw;
    al_pg_data_row_t row;
    *failed = false;
    if (al_pg_parse_data_row(m->body, m->body_len, &row) != AL_PG_OK)
        return false;
    al_pg_cell_edit_t edits[1664];
    size_t offs[1664];
    if (row.ncols > AL_ARRAY_LEN(edits))
        return false;
    al_buf_reset(&pw->mout);
    bool changed = false;
    al_pg_values_t it = al_pg_data_row_values(&row);
    al_pg_value_t v;
    size_t i = 0;
    while (i < row.ncols && al_pg_values_next(&it, &v)) {
        edits[i] = (al_pg_cell_edit_t){AL_PG_CELL_KEEP, NULL, 0};
        al_str_t col = i < s->ncols ? al_str_c(s->colnames.p + s->coloff[i]) : (al_str_t){NULL, 0};
        bool binary = i < s->ncols && s->colfmt[i];
        if (v.null) {
            i++;
            continue;
        }
        if (binary) {
            for (size_t k = 0; k < s->n_meng; k++)
                if (col.p && al_mask_column_style(s->meng[k], col, NULL)) {
                    edits[i].op = AL_PG_CELL_NULL;
                    changed = true;
                    break;
                }
            i++;
            continue;
        }
        const char *val = (const char *)v.p;
        size_t len = v.len;
        bool set = false;
        for (size_t k = 0; k < s->n_meng; k++) {
            al_buf_reset(&pw->mcell);
            al_mask_rc_t rc = al_mask_field(s->meng[k], pw->mscr, col, val, len, &pw->mcell,
                                            NULL);
            if (rc < 0) {
                *failed = true;
                return false;
            }
            if (rc == AL_MASK_DROPPED) {
                edits[i].op = AL_PG_CELL_NULL;
                set = false;
                changed = true;
                break;
            }
            if (rc == AL_MASK_MASKED) {
                /* the next engine reads the masked text from a buffer of
                 * its own (its output may grow mcell) */
                al_buf_reset(&pw->mswap);
                al_buf_append(&pw->mswap, pw->mcell.p, pw->mcell.len);
                val = pw->mswap.p;
                len = pw->mswap.len;
                set = changed = true;
            }
        }
        if (set) {
            edits[i].op = AL_PG_CELL_SET;
            edits[i].len = len;
            offs[i] = pw->mout.len;
            al_buf_append(&pw->mout, val, len);
        }
        i++;
    }
    if (!changed)
        return false;
    if (pw->mout.oom) {
        *failed = true;
        return false;
    }
    for (size_t k = 0; k < i; k++) /* mout may have moved while growing */
        if (edits[k].op == AL_PG_CELL_SET)
            edits[k].p = pw->mout.p + offs[k];
    al_buf_reset(&pw->mrow);
    if (al_pg_build_data_row_edit(&pw->mrow, &row, edits, i) != AL_OK) {
        *failed = true;
        return false;
    }
    return true;
}

/* Masks a CopyData row with every engine's detectors and sends it. False
 * when the session was closed (masking failed). */
static bool mask_copy_data(sess_t *s, const al_pg_msg_t *m)
{
    pg_worker_t *pw = s->pw;
    const char *val = (const char *)m->body;
    size_t len = m->body_len;
    bool changed = false;
    for (size_t k = 0; k < s->n_meng; k++) {
        al_buf_reset(&pw->mcell);
        al_mask_rc_t rc = al_mask_buffer(s->meng[k], pw->mscr, val, len, &pw->mcell, NULL);
        if (rc < 0) {
            fatal(s, "XX000", "airlock: masking failed; the session is closed", NULL);
            return false;
        }
        if (rc == AL_MASK_MASKED) {
            al_buf_reset(&pw->mswap);
            al_buf_append(&pw->mswap, pw->mcell.p, pw->mcell.len);
            val = pw->mswap.p;
            len = pw->mswap.len;
            changed = true;
        }
    }
    if (!changed) {
        send_bytes(s, true, m->raw, m->raw_len);
        return true;
    }
    uint8_t hdr[5] = {'d', (uint8_t)((len + 4) >> 24), (uint8_t)((len + 4) >> 16),
                      (uint8_t)((len + 4) >> 8), (uint8_t)(len + 4)};
    al_buf_reset(&pw->mrow);
    al_buf_append(&pw->mrow, hdr, 5);
    al_buf_append(&pw->mrow, val, len);
    if (pw->mrow.oom) {
        fatal(s, "XX000", "airlock: masking failed; the session is closed", NULL);
        return false;
    }
    send_bytes(s, true, pw->mrow.p, pw->mrow.len);
    return true;
}

/* A DataRow as the client receives it (after masking). */
static void rec_row(sess_t *s, const uint8_t *body, size_t len)
{
    const al_recordings_conf_t *rc = &s->pw->w->snap->cfg->recordings;
    if (s->rec_rows >= (uint32_t)rc->max_rows) {
        s->rec_rows_cut = true;
        return;
    }
    al_pg_data_row_t row;
    if (al_pg_parse_data_row(body, len, &row) != AL_PG_OK)
        return;
    al_buf_t *b = al_rec_begin(s->rec, "row");
    rec_values(b, "values", al_pg_data_row_values(&row), row.ncols,
               (size_t)rc->max_body_bytes, NULL, 0, s->colfmt, s->ncols);
    al_rec_end(s->rec);
    s->rec_rows++;
}

static void rec_complete(sess_t *s, const al_pg_msg_t *m)
{
    al_str_t tag;
    if (al_pg_parse_command_complete(m->body, m->body_len, &tag) != AL_PG_OK)
        return;
    al_buf_t *b = al_rec_begin(s->rec, "complete");
    al_rec_str(b, "tag", tag.p, tag.len);
    uint64_t rows;
    if (al_pg_command_rows(tag, &rows))
        al_rec_int(b, "rows", (int64_t)rows);
    if (s->rec_t0)
        al_rec_int(b, "duration_us", (int64_t)((al_mono_ns() - s->rec_t0) / 1000));
    al_rec_int(b, "rows_recorded", s->rec_rows);
    al_rec_bool(b, "rows_truncated", s->rec_rows_cut);
    al_rec_end(s->rec);
    s->rec_rows = 0;
    s->rec_rows_cut = false;
}

static void rec_upstream_error(sess_t *s, const al_pg_msg_t *m)
{
    al_pg_notice_t n;
    if (al_pg_parse_notice(m->body, m->body_len, &n) != AL_PG_OK)
        return;
    al_str_t sev = al_pg_notice_get(&n, 'S'), code = al_pg_notice_get(&n, 'C'),
             msg = al_pg_notice_get(&n, 'M');
    al_buf_t *b = al_rec_begin(s->rec, "error");
    al_rec_str(b, "severity", sev.p ? sev.p : "", sev.len);
    al_rec_str(b, "sqlstate", code.p ? code.p : "", code.len);
    al_rec_str(b, "message", msg.p ? msg.p : "", msg.len);
    al_rec_cstr(b, "source", "upstream");
    al_rec_end(s->rec);
}

static void server_msg(sess_t *s, const al_pg_msg_t *m)
{
    inflight_t *f = inflight_head(s);
    if (s->rec) {
        switch (m->type) {
        case 'D':
            if (!s->n_meng) /* masked rows are recorded as rewritten, below */
                rec_row(s, m->body, m->body_len);
            break;
        case 'C':
            rec_complete(s, m);
            break;
        case 'E':
            rec_upstream_error(s, m);
            break;
        default:
            break;
        }
    }
    switch (m->type) {
    case 'T':
        row_desc(s, m);
        break;
    case 'H': /* CopyOutResponse */
        if (s->n_meng) {
            al_pg_copy_response_t cr;
            if (al_pg_parse_copy_response(m->body, m->body_len, &cr) != AL_PG_OK ||
                cr.format != 0) {
                /* binary COPY cannot be scanned: fail closed before any row */
                fatal(s, "42501", "airlock: binary COPY TO is refused on a masked target",
                      NULL);
                return;
            }
            s->copy_out = true;
        }
        break;
    case 'c': /* CopyDone */
        s->copy_out = false;
        break;
    case 'd': /* CopyData of a COPY TO: one text row per message */
        if (s->copy_out && s->n_meng) {
            if (!mask_copy_data(s, m))
                return;
            return;
        }
        break;
    case 'D':
        if (s->n_meng) {
            bool failed;
            if (mask_row(s, m, &failed)) {
                if (s->rec)
                    rec_row(s, (const uint8_t *)s->pw->mrow.p + 5, s->pw->mrow.len - 5);
                send_bytes(s, true, s->pw->mrow.p, s->pw->mrow.len);
                return;
            }
            if (failed) { /* fail closed: never the unmasked row */
                fatal(s, "XX000", "airlock: masking failed; the session is closed", NULL);
                return;
            }
            if (s->rec)
                rec_row(s, m->body, m->body_len);
        }
        break;
    case 'Z': {
        char status = 'I';
        al_pg_parse_ready(m->body, m->body_len, &status);
        s->txn = status;
        s->rfq_seen++;
        while (s->n_inj && s->inj[0].idx <= s->rfq_seen) {
            /* A batch where the upstream already failed needs no second error. */
            if (s->inj[0].idx == s->rfq_seen && (s->inj[0].placeholder || !s->upstream_error))
                send_bytes(s, true, s->inj[0].bytes, s->inj[0].len);
            free(s->inj[0].bytes);
            memmove(s->inj, s->inj + 1, --s->n_inj * sizeof *s->inj);
        }
        s->upstream_error = false;
        bool drained_now = s->pw->draining && status == 'I' && !s->pending_in.len;
        send_bytes(s, true, m->raw, m->raw_len);
        /* The client has its answer before the bookkeeping: the batch's
         * results are audited (and the waiting client's next statement is
         * already on its way) after the send. */
        if (s->corked)
            flush_corked(s, 1);
        /* The statements of this batch end here; pipelined ones after it
         * wait for their own ReadyForQuery. */
        while (s->fl_n && inflight_head(s)->rfq <= s->rfq_seen)
            inflight_pop(s);
        if (drained_now)
            sess_close(s); /* drain: idle now */
        return;
    }
    case 'I':
        if (s->n_inj && s->inj[0].placeholder && s->inj[0].idx == s->rfq_seen + 1)
            return; /* our placeholder for a refused Query */
        if (f && f->execute)
            inflight_pop(s);
        break;
    case 'C': {
        al_str_t tag;
        uint64_t rows;
        if (f && al_pg_parse_command_complete(m->body, m->body_len, &tag) == AL_PG_OK &&
            al_pg_command_rows(tag, &rows))
            f->rows = (f->rows < 0 ? 0 : f->rows) + (int64_t)rows;
        if (f && f->execute)
            inflight_pop(s);
        break;
    }
    case 's': /* PortalSuspended */
        if (f && f->execute)
            inflight_pop(s);
        break;
    case 'E': {
        s->upstream_error = true;
        al_pg_notice_t n;
        if (f && al_pg_parse_notice(m->body, m->body_len, &n) == AL_PG_OK) {
            al_str_t code = al_pg_notice_get(&n, 'C'), msg = al_pg_notice_get(&n, 'M');
            snprintf(f->status, sizeof f->status, "%.*s", (int)AL_MIN(code.len, 5), code.p);
            free(f->error);
            f->error = al_xstrndup(msg.p ? msg.p : "", msg.len);
            if (f->execute)
                inflight_pop(s);
        }
        break;
    }
    case 'K': /* only at start; never relayed later */
        return;
    default:
        break;
    }
    send_bytes(s, true, m->raw, m->raw_len);
}

/* ---- upstream authentication --------------------------------------------------------- */

static char *upstream_password(const al_target_conf_t *t, char *err, size_t cap)
{
    const al_upstream_conf_t *u = &t->upstream;
    if (u->password_env) {
        const char *v = getenv(u->password_env);
        if (!v) {
            snprintf(err, cap, "the environment variable %s (upstream.password_env) is not set",
                     u->password_env);
            return NULL;
        }
        return al_xstrdup(v);
    }
    if (u->password_file) {
        char *data = NULL;
        size_t len = 0;
        if (al_read_file(u->password_file, 4096, &data, &len) != AL_OK) {
            snprintf(err, cap, "cannot read upstream.password_file %s", u->password_file);
            return NULL;
        }
        while (len && (data[len - 1] == '\n' || data[len - 1] == '\r'))
            data[--len] = 0;
        return data;
    }
    return al_xstrdup("");
}

static void upstream_ready(sess_t *s)
{
    /* Client: AuthenticationOk, the upstream's ParameterStatus, our own
     * BackendKeyData (cancel goes through airlock), then ReadyForQuery. */
    al_buf_t b;
    al_buf_init(&b);
    al_pg_build_auth_ok(&b);
    al_buf_append(&b, s->hold_to_client.p, s->hold_to_client.len);
    al_buf_reset(&s->hold_to_client);
    al_pg_build_backend_key(&b, s->my_pid, s->my_key);
    send_buf(s, true, &b);
    al_buf_free(&b);
}

/* SCRAM's server-first step runs PBKDF2 (4096 iterations and up, RFC 7677
 * §4): milliseconds of CPU that must not stall the worker loop, so it runs
 * on libuv's thread pool. The session waits (the upstream sends nothing
 * until answered) and stays alive through s->handles. */
typedef struct auth_work {
    uv_work_t w;
    sess_t *s;
    al_pg_authreq_t req;
    char *data;
    al_buf_t out;
    al_pg_auth_rc_t rc;
} auth_work_t;

static void auth_step_done(sess_t *s, al_pg_auth_rc_t rc, al_buf_t *out);

static void auth_work_run(uv_work_t *w)
{
    auth_work_t *aw = w->data;
    aw->rc = al_pg_auth_step(&aw->s->auth, &aw->req, &aw->out);
}

static void auth_work_after(uv_work_t *w, int status)
{
    auth_work_t *aw = w->data;
    sess_t *s = aw->s;
    AL_UNUSED(status);
    if (s->st != S_CLOSING)
        auth_step_done(s, aw->rc, &aw->out);
    al_buf_free(&aw->out);
    free(aw->data);
    free(aw);
    if (--s->handles == 0 && s->st == S_CLOSING)
        sess_free(s); /* the session closed while the step ran */
}

static void auth_step_done(sess_t *s, al_pg_auth_rc_t rc, al_buf_t *out)
{
    if (rc == AL_PG_AUTH_SEND)
        send_buf(s, false, out);
    if (rc < 0) {
        al_log(AL_LOG_ERROR, "upstream authentication failed", "target", s->target->name,
               "error", al_pg_auth_rc_str(rc), NULL);
        fatal(s, "08006", "airlock: cannot authenticate to the upstream database",
              "see the gateway log; the agent's credentials were fine");
        return;
    }
    if (rc == AL_PG_AUTH_DONE)
        al_pg_framer_set_authenticated(&s->sf);
}

static void server_auth_msg(sess_t *s, const al_pg_msg_t *m)
{
    switch (m->type) {
    case 'R': {
        al_pg_authreq_t req;
        if (al_pg_parse_authentication(m->body, m->body_len, &req) != AL_PG_OK) {
            fatal(s, "08P01", "airlock: malformed authentication request from the upstream",
                  NULL);
            return;
        }
        if (req.code == AL_PG_AUTHREQ_SASL_CONTINUE) {
            auth_work_t *aw = al_xcalloc(1, sizeof *aw);
            aw->s = s;
            aw->req = req;
            aw->data = al_xstrndup(req.data.p, req.data.len); /* the view dies with the read */
            aw->req.data = (al_str_t){aw->data, req.data.len};
            al_buf_init(&aw->out);
            aw->w.data = aw;
            s->handles++;
            if (uv_queue_work(&s->pw->w->loop, &aw->w, auth_work_run, auth_work_after) != 0) {
                s->handles--;
                free(aw->data);
                free(aw);
                fatal(s, "08006", "airlock: cannot authenticate to the upstream database", NULL);
            }
            return;
        }
        al_buf_t out;
        al_buf_init(&out);
        al_pg_auth_rc_t rc = al_pg_auth_step(&s->auth, &req, &out);
        auth_step_done(s, rc, &out);
        al_buf_free(&out);
        return;
    }
    case 'E': {
        al_pg_notice_t n;
        al_str_t msg = {"", 0};
        if (al_pg_parse_notice(m->body, m->body_len, &n) == AL_PG_OK)
            msg = al_pg_notice_get(&n, 'M');
        char d[512];
        snprintf(d, sizeof d, "%.*s", (int)msg.len, msg.p ? msg.p : "");
        al_log(AL_LOG_ERROR, "the upstream refused the connection", "target", s->target->name,
               "error", d, NULL);
        fatal(s, "08006", "airlock: the upstream database refused the connection", d);
        return;
    }
    case 'K': {
        al_pg_backend_key_t k;
        if (al_pg_parse_backend_key(m->body, m->body_len, &k) == AL_PG_OK) {
            cancel_ent_t *e = al_xcalloc(1, sizeof *e);
            e->pid = s->my_pid;
            e->key = s->my_key;
            e->s = s;
            e->up_pid = k.pid;
            e->up_key = k.key;
            e->up_addr = s->up_addr;
            pthread_mutex_lock(&g_cancel_lock);
            e->next = g_cancel;
            g_cancel = e;
            pthread_mutex_unlock(&g_cancel_lock);
            s->cancel_registered = true;
        }
        return;
    }
    case 'Z':
        upstream_ready(s);
        s->st = S_READY;
        al_pg_framer_set_authenticated(&s->cf);
        s->rfq_expected++; /* the start-up ReadyForQuery */
        server_msg(s, m);
        resume_client(s);
        return;
    case 'S':
    case 'N':
        al_buf_append(&s->hold_to_client, m->raw, m->raw_len);
        return;
    default:
        fatal(s, "08P01", "airlock: unexpected message from the upstream during start-up",
              NULL);
    }
}

/* ---- reads ----------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    AL_UNUSED(h);
    AL_UNUSED(hint);
    static _Thread_local char chunk[READ_CHUNK];
    *b = uv_buf_init(chunk, sizeof chunk);
}

static void server_feed(sess_t *s, const uint8_t *p, size_t n)
{
    size_t off = 0;
    while (off < n && s->st != S_CLOSING) {
        al_pg_msg_t m;
        ssize_t k = al_pg_frame(&s->sf, p + off, n - off, &m);
        if (k < 0) {
            fatal(s, "08P01", "airlock: protocol violation from the upstream",
                  al_pg_err_str(s->sf.err));
            return;
        }
        if (k == 0)
            break;
        off += (size_t)k;
        if (s->st == S_UP_AUTH)
            server_auth_msg(s, &m);
        else
            server_msg(s, &m);
    }
}

static void on_server_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    sess_t *s = st->data;
    if (n < 0) {
        if (s->st != S_CLOSING && s->st != S_READY)
            fatal(s, "08006", "airlock: the upstream closed the connection", NULL);
        else
            sess_close(s);
        return;
    }
    al_sess_bytes(s->reg, 0, (uint64_t)n);
    s->bytes_down += (uint64_t)n;
    const uint8_t *p = (const uint8_t *)b->base;
    size_t len = (size_t)n;
    if (s->up_ssl_wait && len) {
        s->up_ssl_wait = false;
        if (p[0] != 'S') {
            fatal(s, "08006", "airlock: the upstream database does not accept TLS",
                  "the target's upstream.sslmode requires it");
            return;
        }
        if (len > 1) { /* CVE-2021-23222: nothing may precede the handshake */
            fatal(s, "08006", "airlock: the upstream sent data before the TLS handshake",
                  NULL);
            return;
        }
        upstream_tls_start(s);
        return;
    }
    bool mine = cork(s);
    if (s->stls)
        tls_in(s, false, p, len, server_feed);
    else
        server_feed(s, p, len);
    if (mine)
        uncork(s);
}

static void resume_client_corked(sess_t *s);

/* The client's pending input is processed again (an audit record
 * committed, an approval came, the upstream's queue drained). */
static void resume_client(sess_t *s)
{
    bool mine = cork(s);
    resume_client_corked(s);
    if (mine)
        uncork(s);
}

static void resume_client_corked(sess_t *s)
{
    if (s->st == S_CLOSING)
        return;
    if (s->pending_in.len)
        process_client(s);
    if (s->st == S_CLOSING || s->audit_wait || s->appr_wait)
        return;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&s->server) > HIGH_WATER) {
        if (!s->client_paused) {
            s->client_paused = true;
            uv_read_stop((uv_stream_t *)&s->client);
        }
        return;
    }
    if (s->client_paused) {
        s->client_paused = false;
        uv_read_start((uv_stream_t *)&s->client, on_alloc, on_client_read);
    }
}

/* ---- start-up ---------------------------------------------------------------------- */

static void on_connected(uv_connect_t *c, int status)
{
    sess_t *s = c->data;
    if (s->st == S_CLOSING)
        return;
    if (status < 0) {
        al_log(AL_LOG_ERROR, "cannot connect to the upstream", "target", s->target->name,
               "error", uv_strerror(status), NULL);
        fatal(s, "08006", "airlock: cannot reach the upstream database", uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&s->server, 1);
    s->st = S_UP_AUTH;
    uv_read_start((uv_stream_t *)&s->server, on_alloc, on_server_read);
    if (s->target->upstream.sslmode != AL_SSLMODE_DISABLE) {
        al_buf_t b;
        al_buf_init(&b);
        al_pg_build_ssl_request(&b);
        raw_send(s, false, b.p, b.len);
        al_buf_free(&b);
        s->up_ssl_wait = true;
        return;
    }
    upstream_startup(s);
}

static void upstream_tls_start(sess_t *s)
{
    const al_upstream_conf_t *u = &s->target->upstream;
    s->stls = s->ls->up_tls ? al_tls_new(s->ls->up_tls, u->host) : NULL;
    if (!s->stls) {
        fatal(s, "08006", "airlock: cannot start TLS to the upstream database", NULL);
        return;
    }
    al_buf_reset(&s->plain);
    al_tls_read(s->stls, &s->plain); /* the ClientHello */
    tls_flush(s, false);
    upstream_startup(s);              /* queued until the handshake is done */
}

static void upstream_startup(sess_t *s)
{
    const al_upstream_conf_t *u = &s->target->upstream;
    /* The client's parameters pass on, except who it is and where. */
    al_pg_param_t ps[AL_PG_MAX_STARTUP_PARAMS];
    size_t n = 0;
    const char *db = u->database;
    ps[n++] = (al_pg_param_t){al_str_c("user"), al_str_c(u->user ? u->user : "postgres")};
    for (size_t i = 0; i < s->su.nparams && n < AL_PG_MAX_STARTUP_PARAMS - 1; i++) {
        al_str_t k = s->su.params[i].name;
        if (al_str_eq_c(k, "user") || al_str_eq_c(k, "database") ||
            (k.len > 4 && !memcmp(k.p, "_pq_", 4)))
            continue;
        ps[n++] = s->su.params[i];
    }
    if (db)
        ps[n++] = (al_pg_param_t){al_str_c("database"), al_str_c(db)};
    else if (s->su.database.p)
        ps[n++] = (al_pg_param_t){al_str_c("database"), s->su.database};
    al_buf_t b;
    al_buf_init(&b);
    al_pg_build_startup(&b, ps, n);
    send_buf(s, false, &b);
    al_buf_free(&b);
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res)
{
    sess_t *s = g->data;
    if (s->st == S_CLOSING) {
        uv_freeaddrinfo(res);
        if (--s->handles == 0)
            sess_free(s);
        return;
    }
    s->handles--;
    if (status < 0 || !res) {
        fatal(s, "08006", "airlock: cannot resolve the upstream host", uv_strerror(status));
        uv_freeaddrinfo(res);
        return;
    }
    memcpy(&s->up_addr, res->ai_addr, res->ai_addrlen);
    uv_freeaddrinfo(res);
    uv_tcp_init(&s->pw->w->loop, &s->server);
    s->server.data = s;
    s->server_inited = true;
    s->conn.data = s;
    if (uv_tcp_connect(&s->conn, &s->server, (struct sockaddr *)&s->up_addr, on_connected) != 0)
        fatal(s, "08006", "airlock: cannot connect to the upstream database", NULL);
}

static void start_upstream(sess_t *s)
{
    char err[256];
    char *pw = upstream_password(s->target, err, sizeof err);
    if (!pw) {
        al_log(AL_LOG_ERROR, "upstream credential unavailable", "target", s->target->name,
               "error", err, NULL);
        fatal(s, "08006", "airlock: the upstream credential is not configured", NULL);
        return;
    }
    const al_upstream_conf_t *u = &s->target->upstream;
    al_pg_auth_opts_t ao = {.allow = AL_PG_AUTH_ALLOW_ANY};
    int rc = al_pg_auth_init(&s->auth, u->user ? u->user : "postgres", pw, &ao);
    al_wipe(pw, strlen(pw));
    free(pw);
    if (rc != AL_OK) {
        fatal(s, "08006", "airlock: cannot prepare upstream authentication", NULL);
        return;
    }
    s->auth_inited = true;
    s->st = S_CONNECTING;
    char port[8];
    snprintf(port, sizeof port, "%d", u->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    s->gai.data = s;
    s->handles++; /* the resolver holds the session */
    if (uv_getaddrinfo(&s->pw->w->loop, &s->gai, on_resolved, u->host, port, &hints) != 0) {
        s->handles--;
        fatal(s, "08006", "airlock: cannot resolve the upstream host", NULL);
    }
}

static void on_expiry(uv_timer_t *t)
{
    sess_t *s = t->data;
    if (s->st != S_READY && !s->principal) {
        /* Like PostgreSQL's authentication_timeout: a client that does
         * not finish start-up does not keep a session. */
        fatal(s, "08006", "airlock: authentication timeout", NULL);
        return;
    }
    fatal(s, "28000", "airlock: token expired", "the session ends with the agent's token");
}

static void verified(sess_t *s, al_tok_status_t st, al_principal_t *p,
                     const al_verify_info_t *info)
{
    const char *detail = info->detail;
    if (st != AL_TOK_OK) {
        char msg[160];
        snprintf(msg, sizeof msg, "airlock: token %s", al_tok_reason(st));
        al_audit_event_t ev;
        fill_event(s, &ev);
        ev.agent = info->revoked_agent; /* who, when the kill switch refused it */
        ev.kind = AL_AUDIT_KIND_AUTH;
        ev.decision = "deny";
        ev.reason = al_tok_reason(st);
        al_audit_submit_async(s->pw->w->rt->audit, &ev, NULL);
        fatal(s, st == AL_TOK_MISSING_TOKEN ? "28P01" : "28000", msg, detail);
        return;
    }
    s->principal = al_principal_ref(p);
    al_rec_identify(s->rec, &(al_rec_who_t){p->agent, p->sub, p->iss});
    s->verified_gen = s->pw->w->snap->gen;
    s->rev_gen = al_revset_gen(s->pw->w->revoked);
    s->valid_until = p->exp;
    al_sess_identify(s->reg, p);
    /* The session ends with the token (plus the configured grace). */
    double left = p->exp + s->target->session_grace - al_now();
    uv_timer_start(&s->expiry, on_expiry, left > 0 ? (uint64_t)(left * 1000) : 0, 0);
    start_upstream(s);
}

static void on_kid_fetched(uv_async_t *a)
{
    sess_t *s = a->data;
    s->kid_waiting = false;
    close_handle(s, (uv_handle_t *)a);
    if (s->st == S_VERIFYING)
        verify_token(s);
}

static void verify_token(sess_t *s)
{
    al_worker_t *w = s->pw->w;
    al_principal_t *p = NULL;
    al_verify_info_t info;
    al_tok_status_t st = al_worker_verify(w, s->token, s->token_len, al_now(), &p, &info);
    if (st == AL_TOK_UNKNOWN_KID && info.refetch && !s->kid_entry) {
        /* RFC 7517 §5: wait for the rate-limited refetch, once. */
        if (uv_async_init(&w->loop, &s->kid_wait, on_kid_fetched) == 0) {
            s->kid_wait.data = s;
            s->kid_waiting = true;
            s->kid_entry = info.refetch;
            if (al_jwks_entry_on_fetched(info.refetch, info.refetch_ticket, kid_wake,
                                         &s->kid_wait))
                uv_async_send(&s->kid_wait);
            return;
        }
    }
    verified(s, st, p, &info);
    al_principal_unref(&p);
}

/* RFC 7628 §3.1: client-resp = (gs2-header kvsep *kvpair kvsep) / kvsep,
 * gs2-header = "n,," / "y,," / "n,a=<authzid>," (RFC 5801 §4; no channel
 * binding here), kvpair = key "=" value kvsep with key "auth" carrying
 * "Bearer <token>" (RFC 6750 §2.1). Returns the token, {"", 0} for a
 * well-formed response without one (discovery), {NULL, 0} when malformed. */
static al_str_t oauthbearer_token(al_str_t d)
{
    const char *p = d.p, *end = d.p + d.len;
    if (d.len < 3 || (p[0] != 'n' && p[0] != 'y') || p[1] != ',')
        return (al_str_t){NULL, 0};
    const char *c = memchr(p + 2, ',', (size_t)(end - p - 2)); /* end of authzid */
    if (!c || c + 1 >= end || c[1] != '\x01' ||
        (c != p + 2 && (c - p < 5 || memcmp(p + 2, "a=", 2))))
        return (al_str_t){NULL, 0};
    al_str_t tok = {NULL, 0};
    for (p = c + 2; p < end && *p != '\x01';) {
        const char *e = memchr(p, '\x01', (size_t)(end - p));
        if (!e)
            return (al_str_t){NULL, 0};
        size_t kl = (size_t)(e - p);
        if (kl > 12 && !memcmp(p, "auth=", 5) && !strncasecmp(p + 5, "Bearer ", 7)) {
            const char *t = p + 12;
            while (t < e && *t == ' ')
                t++;
            tok = (al_str_t){t, (size_t)(e - t)};
        }
        p = e + 1;
    }
    if (p + 1 != end) /* the final kvsep must end the message */
        return (al_str_t){NULL, 0};
    return tok.p ? tok : (al_str_t){"", 0};
}

static void oauthbearer_msg(sess_t *s, const al_pg_msg_t *m)
{
    if (s->oauth_failed) {
        /* RFC 7628 §3.2.2: the client acknowledges the error with a lone
         * kvsep; then the exchange fails. */
        fatal(s, "28000", "airlock: token missing_token",
              "send the agent's access token in the OAUTHBEARER initial response");
        return;
    }
    al_pg_sasl_initial_t si;
    if (m->type != 'p' || al_pg_parse_sasl_initial(m->body, m->body_len, &si) != AL_PG_OK ||
        !al_str_eq_c(si.mechanism, "OAUTHBEARER") || !si.has_data) {
        fatal(s, "08P01", "airlock: expected a SASL OAUTHBEARER initial response", NULL);
        return;
    }
    al_str_t tok = oauthbearer_token(si.data);
    if (!tok.p) {
        fatal(s, "08P01", "airlock: malformed OAUTHBEARER initial response (RFC 7628 §3.1)",
              NULL);
        return;
    }
    if (!tok.len) {
        /* Discovery request (no token): answer with an error status, as
         * RFC 7628 §3.2.2 describes; the client then gives up or retries
         * with a token on a new connection. */
        s->oauth_failed = true;
        al_buf_t b;
        al_buf_init(&b);
        static const char err[] = "{\"status\":\"invalid_token\"}";
        al_pg_build_auth_sasl_continue(&b, err, sizeof err - 1);
        send_buf(s, true, &b);
        al_buf_free(&b);
        return;
    }
    s->token = al_xstrndup(tok.p, tok.len);
    s->token_len = tok.len;
    s->st = S_VERIFYING;
    verify_token(s);
}

static void startup_msg(sess_t *s, const al_pg_msg_t *m)
{
    if (s->st == S_STARTUP) {
        al_buf_append(&s->startup, m->body, m->body_len);
        al_pg_err_t e = al_pg_parse_startup((const uint8_t *)s->startup.p, s->startup.len, &s->su);
        if (e != AL_PG_OK) {
            fatal(s, "08P01", "airlock: invalid startup packet", al_pg_err_str(e));
            return;
        }
        switch (s->su.kind) {
        case AL_PG_SK_SSL_REQUEST:
            if (s->ls->tls && !s->client_tls) {
                /* 'S' in clear, then everything through TLS. */
                raw_send(s, true, "S", 1);
                s->ctls = al_tls_new(s->ls->tls, NULL);
                if (!s->ctls) {
                    sess_close(s);
                    return;
                }
                s->client_tls = true;
                al_buf_reset(&s->startup);
                al_pg_framer_resume(&s->cf);
                return;
            }
            /* no TLS here (tls: off), or already in TLS */
            __attribute__((fallthrough));
        case AL_PG_SK_GSSENC_REQUEST:
            /* No GSSAPI encryption: 'N', then the client goes on. */
            raw_send(s, true, "N", 1);
            al_buf_reset(&s->startup);
            al_pg_framer_resume(&s->cf);
            return;
        case AL_PG_SK_CANCEL_REQUEST: {
            /* Forward only to the session holding this pid and key. */
            cancel_ent_t found = {0};
            bool ok = false;
            pthread_mutex_lock(&g_cancel_lock);
            for (cancel_ent_t *c = g_cancel; c; c = c->next)
                if (c->pid == s->su.cancel_pid && c->key == s->su.cancel_key) {
                    found = *c;
                    ok = true;
                    break;
                }
            pthread_mutex_unlock(&g_cancel_lock);
            if (ok) {
                int fd = socket(found.up_addr.ss_family, SOCK_STREAM, 0);
                al_buf_t b;
                al_buf_init(&b);
                al_pg_build_cancel_request(&b, found.up_pid, found.up_key);
                socklen_t sl = found.up_addr.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                                    : sizeof(struct sockaddr_in);
                /* A short blocking exchange to a configured upstream. */
                if (fd >= 0 && connect(fd, (struct sockaddr *)&found.up_addr, sl) == 0 &&
                    write(fd, b.p, b.len) == (ssize_t)b.len)
                    al_log(AL_LOG_INFO, "cancel forwarded", "target", s->target->name, NULL);
                if (fd >= 0)
                    close(fd);
                al_buf_free(&b);
            }
            sess_close(s);
            return;
        }
        case AL_PG_SK_STARTUP:
            if (s->ls->tls_mode == AL_TLS_REQUIRED && !s->client_tls) {
                /* The password is the token: never over plaintext here. */
                fatal(s, "28000", "airlock: this listener requires TLS",
                      "connect with sslmode=require (or verify-full)");
                return;
            }
            break;
        default:
            fatal(s, "08P01", "airlock: unsupported startup request", NULL);
            return;
        }
        s->st = S_PASSWORD;
        al_buf_t *rb = al_rec_begin(s->rec, "startup");
        if (rb) {
            al_rec_str(rb, "user", s->su.user.p, s->su.user.len);
            if (s->su.database.p)
                al_rec_str(rb, "database", s->su.database.p, s->su.database.len);
            for (size_t i = 0; i < s->su.nparams; i++)
                if (al_str_eq_c(s->su.params[i].name, "application_name"))
                    al_rec_str(rb, "application_name", s->su.params[i].value.p,
                               s->su.params[i].value.len);
            al_rec_end(s->rec);
        }
        al_buf_t b;
        al_buf_init(&b);
        if (s->target->sasl_oauthbearer) {
            static const char *const mechs[] = {"OAUTHBEARER"};
            al_pg_build_auth_sasl(&b, mechs, 1);
        } else {
            al_pg_build_auth_cleartext(&b);
        }
        send_buf(s, true, &b);
        al_buf_free(&b);
        return;
    }
    if (s->st == S_PASSWORD && s->target->sasl_oauthbearer) {
        oauthbearer_msg(s, m);
        return;
    }
    if (s->st == S_PASSWORD) {
        al_str_t pw;
        if (m->type != 'p' || al_pg_parse_password(m->body, m->body_len, &pw) != AL_PG_OK) {
            fatal(s, "08P01", "airlock: expected a password message (the agent's token)", NULL);
            return;
        }
        if (!pw.len) {
            fatal(s, "28P01", "airlock: token missing_token",
                  "send the agent's OIDC access token as the password");
            return;
        }
        s->token = al_xstrndup(pw.p, pw.len);
        s->token_len = pw.len;
        s->st = S_VERIFYING;
        verify_token(s);
        return;
    }
    fatal(s, "08P01", "airlock: unexpected message before authentication completed", NULL);
}

static void client_feed(sess_t *s, const uint8_t *p, size_t n)
{
    if (s->st == S_READY || s->audit_wait || s->appr_wait || s->pending_in.len) {
        al_buf_append(&s->pending_in, p, n);
        if (s->st == S_READY && !s->audit_wait && !s->appr_wait)
            process_client(s);
        else if (s->appr_wait && s->pending_in.len > HIGH_WATER && !s->client_paused) {
            s->client_paused = true;
            uv_read_stop((uv_stream_t *)&s->client);
        }
        return;
    }
    size_t off = 0;
    while (off < n && (s->st == S_STARTUP || s->st == S_PASSWORD)) {
        al_pg_msg_t m;
        ssize_t k = al_pg_frame(&s->cf, p + off, n - off, &m);
        if (k < 0) {
            fatal(s, "08P01", "airlock: invalid message before authentication",
                  al_pg_err_str(s->cf.err));
            return;
        }
        if (k == 0)
            return;
        off += (size_t)k;
        bool was_tls = s->client_tls;
        startup_msg(s, &m);
        if (!was_tls && s->client_tls && off < n) {
            /* CVE-2021-23214: bytes sent after SSLRequest but before the
             * handshake could be injected by a man in the middle. */
            fatal(s, "08P01", "airlock: data after SSLRequest before the TLS handshake", NULL);
            return;
        }
        if (!was_tls && s->client_tls)
            return;
    }
    /* Bytes after the password (pipelined queries) wait for READY. */
    if (off < n && s->st != S_CLOSING)
        al_buf_append(&s->pending_in, p + off, n - off);
    if (s->st != S_STARTUP && s->st != S_PASSWORD && s->st != S_READY && s->st != S_CLOSING &&
        !s->client_paused) {
        s->client_paused = true;
        uv_read_stop((uv_stream_t *)&s->client);
    }
}

/* Feeds ciphertext from one side; delivers the plaintext to `deliver`.
 * Returns false when the session was closed. */
static bool tls_in(sess_t *s, bool client, const uint8_t *p, size_t n,
                   void (*deliver)(sess_t *, const uint8_t *, size_t))
{
    al_tls_t *t = client ? s->ctls : s->stls;
    if (al_tls_feed(t, p, n) != AL_OK) {
        sess_close(s);
        return false;
    }
    for (;;) {
        al_buf_reset(&s->plain);
        int rc = al_tls_read(t, &s->plain);
        tls_flush(s, client); /* handshake records, alerts */
        if (s->st == S_CLOSING)
            return false;
        if (rc == AL_ERR) {
            al_log(AL_LOG_WARN, client ? "client TLS failed" : "upstream TLS failed",
                   "session", s->session_id, "error", al_tls_error(t), NULL);
            if (client)
                sess_close(s);
            else
                fatal(s, "08006", "airlock: TLS to the upstream database failed",
                      al_tls_error(t));
            return false;
        }
        if (rc == AL_TLS_EOF) {
            sess_close(s);
            return false;
        }
        if (!s->plain.len)
            return true; /* AL_AGAIN, or nothing more decrypted */
        deliver(s, (const uint8_t *)s->plain.p, s->plain.len);
        if (s->st == S_CLOSING)
            return false;
    }
}

static void on_client_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    sess_t *s = st->data;
    if (n < 0) {
        sess_close(s);
        return;
    }
    al_sess_bytes(s->reg, (uint64_t)n, 0);
    s->bytes_up += (uint64_t)n;
    bool mine = cork(s);
    if (s->ctls)
        tls_in(s, true, (const uint8_t *)b->base, (size_t)n, client_feed);
    else
        client_feed(s, (const uint8_t *)b->base, (size_t)n);
    if (mine)
        uncork(s);
}

/* ---- accept ------------------------------------------------------------------------- */

/* The kill switch (runtime/sessions.h), on this session's worker: FATAL
 * 57P01 (admin_shutdown, as a server's pg_terminate_backend sends) with the
 * reason, then close both sides. */
static void pg_kill(void *arg, const char *reason)
{
    sess_t *s = arg;
    if (s->st == S_CLOSING)
        return;
    const char *note = al_sess_note(s->reg);
    bool revoked = !strcmp(reason, AL_SESS_REVOKED);
    char msg[600];
    snprintf(msg, sizeof msg, "airlock: %s%s%s",
             revoked ? "agent access revoked" : "session killed by an administrator",
             *note ? ": " : "", note);
    s->defer_upstream = true;
    fatal(s, "57P01", msg,
          revoked ? "an administrator disabled this agent; its sessions end and its tokens are "
                    "refused until it is enabled again"
                  : NULL);
}

static void on_connection(uv_stream_t *srv, int status)
{
    listener_t *l = srv->data;
    pg_worker_t *pw = l->pw;
    if (status < 0 || pw->draining)
        return;
    sess_t *s = al_xcalloc(1, sizeof *s);
    s->pw = pw;
    s->snap = al_snapshot_ref(pw->w->snap);
    s->target = al_config_target(s->snap->cfg, l->target);
    uv_tcp_init(&pw->w->loop, &s->client);
    s->client.data = s;
    if (uv_accept(srv, (uv_stream_t *)&s->client) != 0) {
        s->pprev = &s->next; /* not linked */
        s->st = S_CLOSING;
        s->handles = 0;
        close_handle(s, (uv_handle_t *)&s->client);
        pw->w->active++;
        pw->n_sessions++;
        return;
    }
    uv_tcp_nodelay(&s->client, 1);
    s->next = pw->sessions;
    if (pw->sessions)
        pw->sessions->pprev = &s->next;
    s->pprev = &pw->sessions;
    pw->sessions = s;
    pw->w->active++;
    pw->n_sessions++;
    al_pg_framer_init(&s->cf, AL_PG_FRONTEND, NULL);
    al_pg_framer_init(&s->sf, AL_PG_BACKEND, NULL);
    al_buf_init(&s->startup);
    al_buf_init(&s->hold_to_client);
    al_buf_init(&s->pending_in);
    al_buf_init(&s->held_msg);
    al_buf_init(&s->tls_scratch);
    al_buf_init(&s->cork[0]);
    al_buf_init(&s->cork[1]);
    al_buf_init(&s->plain);
    al_buf_init(&s->colnames);
    s->ls = l;
    al_audit_uuid7((int64_t)(al_now() * 1e6), s->session_id);
    char peer[64];
    al_sess_peer_name(&s->client, peer, sizeof peer);
    s->reg = al_sess_start(pw->w, &(al_sess_info_t){.id = s->session_id, .protocol = "postgres",
                                                    .target = l->target, .client = peer,
                                                    .kill = pg_kill, .sess = s});
    s->rec = al_rec_open(pw->w->rt->recorder, pw->w->id,
                         &(al_rec_meta_t){.session_id = s->session_id, .protocol = "postgres",
                                          .target = l->target, .client = peer});
    uint8_t r[8];
    RAND_bytes(r, sizeof r);
    memcpy(&s->my_pid, r, 4);
    memcpy(&s->my_key, r + 4, 4);
    s->my_pid = (s->my_pid & 0x3fffffff) | 1;
    s->txn = 'I';
    if (!s->target || s->target->protocol != AL_PROTO_POSTGRES) {
        fatal(s, "08006", "airlock: this listener's target is no longer configured", NULL);
        return;
    }
    s->counted = true;
    if (atomic_fetch_add(l->count, 1) >= s->target->max_connections) {
        fatal(s, "53300", "airlock: too many connections for this target",
              "targets[].max_connections");
        return;
    }
    uv_timer_init(&pw->w->loop, &s->expiry);
    s->expiry.data = s;
    s->expiry_inited = true;
    uv_timer_start(&s->expiry, on_expiry, (uint64_t)(s->target->auth_timeout * 1000), 0);
    uv_read_start((uv_stream_t *)&s->client, on_alloc, on_client_read);
}

/* ---- listeners ---------------------------------------------------------------------- */

static bool pg_want(const al_target_conf_t *t)
{
    return t->listen && t->protocol == AL_PROTO_POSTGRES;
}

static bool pg_up_tls(const al_target_conf_t *t, const char **ca, bool *verify)
{
    *ca = t->upstream.ca_file;
    *verify = t->upstream.sslmode == AL_SSLMODE_VERIFY_FULL;
    return t->upstream.sslmode != AL_SSLMODE_DISABLE;
}

static const al_listen_spec_t pg_spec = {"postgres", pg_want, pg_up_tls};

int al_pg_listen_all(al_runtime_t *rt)
{
    return al_runtime_listen(rt, &pg_spec, offsetof(al_worker_t, pg_ls));
}

void al_pg_listen_close(al_runtime_t *rt)
{
    al_runtime_listen_close(rt, offsetof(al_worker_t, pg_ls));
}

int al_pg_worker_start(al_worker_t *w)
{
    pg_worker_t *pw = al_xcalloc(1, sizeof *pw);
    pw->w = w;
    w->pg = pw;
    pthread_mutex_init(&pw->lock, NULL);
    uv_async_init(&w->loop, &pw->audit_async, on_audit_async);
    pw->audit_async.data = pw;
    pw->sql = al_sql_new(NULL);
    al_buf_init(&pw->mout);
    al_buf_init(&pw->mrow);
    al_buf_init(&pw->mcell);
    al_buf_init(&pw->mswap);
    pw->ls = al_xcalloc(w->pg_ls.n ? w->pg_ls.n : 1, sizeof *pw->ls);
    for (size_t k = 0; k < w->pg_ls.n; k++) {
        listener_t *l = &pw->ls[k];
        al_listen_slot_t *sl = &w->pg_ls.slots[k];
        l->pw = pw;
        l->target = sl->target;
        l->tls = sl->tls;
        l->up_tls = sl->up_tls;
        l->count = sl->count;
        const al_target_conf_t *tc = al_config_target(w->snap->cfg, l->target);
        l->tls_mode = tc ? tc->tls : AL_TLS_REQUIRED;
        l->open = true; /* also on failure: drain closes the handle */
        pw->n_ls++;
        if (al_listen_start(&w->loop, &l->tcp, l, sl, on_connection) != AL_OK)
            return AL_ERR;
    }
    return AL_OK;
}

void al_pg_worker_drain(al_worker_t *w, bool force)
{
    pg_worker_t *pw = w->pg;
    if (!pw)
        return;
    pw->draining = true;
    for (size_t k = 0; k < pw->n_ls; k++)
        al_listen_stop(&pw->ls[k].tcp, &pw->ls[k].open);
    for (sess_t *s = pw->sessions, *n; s; s = n) {
        n = s->next;
        /* Idle between transactions, or forced: close now. */
        if (force || (s->st == S_READY && !in_flight(s) && s->txn == 'I' && !s->audit_wait &&
                      !s->appr_wait))
            sess_close(s);
        else if (s->st != S_READY)
            sess_close(s);
    }
    if (!pw->n_sessions && !pw->closed) {
        pthread_mutex_lock(&pw->lock);
        pw->closed = true;
        pthread_mutex_unlock(&pw->lock);
        uv_close((uv_handle_t *)&pw->audit_async, NULL);
    }
}

void al_pg_worker_free(al_worker_t *w)
{
    pg_worker_t *pw = w->pg;
    if (!pw)
        return;
    for (pend_t *pd = pw->done, *n; pd; pd = n) {
        n = pd->next;
        free(pd);
    }
    pthread_mutex_destroy(&pw->lock);
    al_sql_free(&pw->sql);
    al_mask_scratch_free(&pw->mscr);
    al_buf_free(&pw->mout);
    al_buf_free(&pw->mrow);
    al_buf_free(&pw->mcell);
    al_buf_free(&pw->mswap);
    free(pw->ls);
    free(pw);
    w->pg = NULL;
}
