/*
 * http_gateway.c - HTTP/1.1 sessions: agent <-> airlock <-> upstream API.
 *
 * Per client connection (one worker loop, no locks on the data path), one
 * request at a time:
 *
 *   HEAD     parse the request head (http_parser.h, strict: anything two
 *            implementations could frame differently is a 400). Then, in
 *            order: bearer token (RFC 6750 §2.1, verified through the
 *            worker's token cache on every request), path normalized once
 *            (http_path.h), policy on method, normalized path and Host.
 *   WAIT     allowed: the upstream request head is built; a strict audit
 *            record commits, and the upstream connection is made, before
 *            a byte goes out. Client input waits in `cin`.
 *   BODY     the request body streams to the upstream, re-framed with the
 *            framing it came with (Content-Length or chunked; trailers
 *            dropped).
 *   RESPONSE the response (parsed with the same parser) streams back,
 *            hop-by-hop fields removed (RFC 9110 §7.6.1), re-framed as
 *            chunked when the upstream delimits by closing.
 *   DISCARD  a refused request's body is read and dropped, so the
 *            connection stays usable.
 *
 * One upstream connection per client connection, opened on the first
 * allowed request and kept while both sides keep it alive.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <zlib.h>

#include "approvals/approvals.h"
#include "audit/audit.h"
#include "net/listen.h"
#include "net/write.h"
#include "net/tls.h"
#include "mask/mask.h"
#include "policy/masking.h"
#include "record/record.h"
#include "policy/policy.h"
#include "proto/http/http_gateway.h"
#include "proto/approval_hold.h"
#include "proto/http/http_parser.h"
#include "proto/http/http_path.h"
#include "runtime/sessions.h"

#define READ_CHUNK (64 * 1024)
#define HIGH_WATER (1024 * 1024)   /* pause the producer above this much queued */
#define MAX_PENDING (256 * 1024)   /* client bytes held while a request is in flight */
#define MAX_HEADERS 100
#define MAX_SECRET 8192
#define MAX_REQ_ID 128

typedef struct http_worker hw_t;
typedef struct sess sess_t;

typedef struct up up_t;

typedef struct listener {
    uv_tcp_t tcp;
    hw_t *hw;
    char *target;         /* looked up in the current snapshot per accept */
    al_tls_ctx_t *tls;    /* server context (NULL for tls: off); shared, read-only */
    al_tls_ctx_t *up_tls; /* client context for an https upstream */
    _Atomic int *count;   /* the target's sessions across all workers */
    bool open;
    /* idle upstream connections of this target on this worker, most recently
     * used first (taken LIFO: the warmest connection is least likely to have
     * been closed by the upstream's own keep-alive timeout) */
    up_t *pool;
    size_t n_pool;
} listener_t;

/* A strict audit submission in flight; `s` cleared if the session goes. */
typedef struct pend {
    sess_t *s;
    hw_t *hw;
    int rc;
    char err[AL_AUDIT_ERR_SIZE];
    struct pend *next;
} pend_t;

struct http_worker {
    al_worker_t *w;
    listener_t *ls;
    size_t n_ls;
    uv_timer_t sweep;     /* closes pooled upstream connections idle too long */
    bool sweep_on;
    al_mask_scratch_t *mscr; /* masking scratch, grown to fit every engine used */
    uv_async_t audit_async;
    pthread_mutex_t lock;
    pend_t *done; /* strict audit completions from the writer thread */
    bool closed;
    sess_t *sessions;
    size_t n_sessions;
    bool draining;
};

/* One upstream connection; freed in its close callback. Owned by a session
 * (s set) or idle in its listener's pool (s NULL, pool_ls set). */
struct up {
    uv_tcp_t tcp;
    uv_connect_t conn;
    sess_t *s;
    al_tls_t *tls;
    bool connected;
    bool reused;          /* served an earlier request (from the pool) */
    char *url;            /* upstream.url it was made for (pool key) */
    listener_t *pool_ls;  /* while pooled */
    up_t *pnext, **ppprev;
    uint64_t idle_since;  /* ms, loop time, while pooled */
};

typedef enum st {
    S_HEAD = 0,
    S_WAIT,
    S_BODY,
    S_RESPONSE,
    S_DISCARD,
    S_TUNNEL,   /* after 101 Switching Protocols: raw bytes both ways */
    S_CLOSING,
} st_t;

/* What the session timer is measuring. */
typedef enum tmr {
    T_NONE = 0,
    T_HEAD,      /* a request head must complete: http.header_timeout */
    T_IDLE,      /* kept-alive, between requests: http.idle_timeout */
    T_CONNECT,   /* upstream connect: upstream.connect_timeout */
    T_RESPONSE,  /* the response head after the request went out: header_timeout */
    T_REQUEST,   /* the whole exchange: http.request_timeout */
    T_TOKEN,     /* a tunnel lives until its token expires (+ session_grace) */
} tmr_t;

struct sess {
    hw_t *hw;
    al_snapshot_t *snap; /* the snapshot the connection came in under */
    const al_target_conf_t *target;
    const listener_t *ls;
    uv_tcp_t client;
    uv_timer_t idle;     /* the session timer (tmr_t) */
    bool idle_inited;
    tmr_t tmr;
    uint64_t deadline;   /* ms, loop time: end of the whole exchange */
    int handles;         /* open uv handles (client from accept, upstreams) and the
                            resolver request; free at 0 */
    st_t st;
    char session_id[AL_AUDIT_ID_SIZE];
    char peer[INET6_ADDRSTRLEN + 2];
    bool peer_v6;
    al_tls_t *ctls;
    al_buf_t cin;        /* client plaintext not yet parsed */
    al_buf_t uin;        /* upstream plaintext not yet parsed */
    al_buf_t out;        /* scratch for building what is sent */
    al_buf_t tls_scratch;
    al_buf_t ck_cl, ck_up; /* corked writes (send_to) */
    al_buf_t up_fixed;     /* Host, credential and Forwarded lines of upstream heads */
    int corked;
    al_http_parser_t reqp, resp;
    al_http_header_t rq_hdrs[MAX_HEADERS], rs_hdrs[MAX_HEADERS];
    bool client_paused, up_paused;
    bool flush_close;    /* close once the client's write queue drains */
    bool drain_close;    /* the worker drains: close after this exchange */
    /* upstream */
    up_t *up;
    al_http_url_t url;
    char *up_host;       /* NUL-terminated copy of url.host */
    char **secrets;      /* values of target->upstream.headers, same order */
    size_t n_secrets;
    const char *secret_err; /* why the secrets are unavailable; NULL when fine */
    uv_getaddrinfo_t gai;
    bool resolving;
    struct sockaddr_storage up_addr;
    /* identity of the current request */
    al_principal_t *principal;
    uv_async_t kid_wait;       /* RFC 7517 §5: waiting for a JWKS refetch, once */
    bool kid_waiting, kid_retried;
    al_jwks_entry_t *kid_entry;
    al_http_head_t held_head;  /* the head waiting for it (views into cin, which is
                                  not read into meanwhile) */
    size_t held_k;
    /* the current exchange */
    bool active;         /* a request was allowed and is being proxied */
    bool req_chunked, req_done, resp_started, resp_chunked, resp_done;
    bool client_keep, client_http10, close_after, up_keep, expect_continue;
    bool client_eof;     /* the client half-closed after a complete request */
    bool strict, audit_wait;
    bool deferred;       /* async rule: one decision event when the exchange ends */
    bool upgrading;      /* an authorized Upgrade (WebSocket) request is out */
    bool retried;        /* this request was re-sent once on a fresh connection */
    bool has_body;       /* the request carries a body */
    /* response masking (docs/masking.md): engines for this exchange, and the
     * buffered body when one is masked */
    al_mask_engine_t *meng[4];
    size_t n_meng;
    bool mask_body;      /* buffer the body, mask, then send with Content-Length */
    bool mask_failed;    /* no scratch: every maskable response is refused */
    int mask_coding;     /* 0 identity, 1 gzip, 2 deflate */
    al_buf_t mhead;      /* the client response head, without framing */
    al_buf_t mbody;      /* the buffered (encoded) response body */
    char ctype[128];     /* the response's Content-Type, for the masker */
    uint64_t masked_values;
    uint64_t t0;
    int64_t bytes_up, bytes_down;
    int status;
    char req_id[MAX_REQ_ID + 1];
    char decision_id[AL_AUDIT_ID_SIZE];
    char rule[128];
    const char *reason;  /* static (policy) */
    al_buf_t action;     /* "METHOD /path?query", query values redacted */
    al_buf_t uphead;     /* the upstream request head, waiting for audit/connect */
    char method[32];
    pend_t *pend;
    bool counted;
    al_sess_t *reg;
    /* approvals: the request held for an `approve` verdict (approval_hold.h);
     * nothing reaches the upstream until it is decided */
    al_hold_t *hold;
    bool appr_wait;
    bool appr_used;      /* raised a request or used a grant: end them at close */
    /* recording (record/record.h): the request line waits for its body (and
     * decision), the response line for its body */
    al_rec_t *rec;
    al_buf_t rq_rec, rs_rec;   /* the lines' fields so far */
    al_buf_t rq_body, rs_body; /* the first max_body_bytes of each body */
    int64_t rq_total, rs_total;
    bool rq_pending, rs_pending;
    const char *rec_decision, *rec_reason; /* static */
    char rec_rule[128];
    int64_t sess_up, sess_down; /* bytes over the whole connection */
    const char *close_reason;
    char rec_sub[128];         /* the subject last recorded (identity lines on change) */
    sess_t *next, **pprev;
};

static void sess_close(sess_t *s);
static void upstream_failed(sess_t *s, const char *why);
static void process_client(sess_t *s);
static void up_feed(sess_t *s);
static void proceed(sess_t *s);
static void update_reads(sess_t *s);
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b);
static void on_client_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b);
static void on_up_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b);

/* ---- formatting without printf (per-request paths) ---------------------------------------- */

static void buf_u64(al_buf_t *b, uint64_t v)
{
    char d[24];
    size_t i = sizeof d;
    do {
        d[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    al_buf_append(b, d + i, sizeof d - i);
}

static void buf_str(al_buf_t *b, const char *s) { al_buf_append(b, s, strlen(s)); }

/* "200" into st (at least 4 bytes) for a status 100..999. */
static const char *status_str(int status, char st[8])
{
    if (status < 100 || status > 999)
        status = 0;
    st[0] = (char)('0' + status / 100);
    st[1] = (char)('0' + status / 10 % 10);
    st[2] = (char)('0' + status % 10);
    st[3] = 0;
    return st;
}

/* ---- writes ------------------------------------------------------------------------------ */

static size_t queued(uv_tcp_t *t) { return uv_stream_get_write_queue_size((uv_stream_t *)t); }

/* An upstream write names its connection (tag), not a session: the
 * connection may have moved to the pool or to another session since. uv
 * runs every write callback before the handle's close callback, so the
 * up_t is still there. */
static void on_write(uv_write_t *r, int status)
{
    al_wreq_t *w = (al_wreq_t *)r;
    up_t *up = (up_t *)w->tag; /* NULL: to the client */
    sess_t *s = up ? up->s : w->owner;
    free(w);
    if (!s || s->st == S_CLOSING)
        return;
    if (status < 0) {
        if (!up)
            sess_close(s);
        else if (up == s->up)
            upstream_failed(s, "cannot write to the upstream");
        return;
    }
    if (!up && s->flush_close && !queued(&s->client)) {
        sess_close(s);
        return;
    }
    if (up && (s->st == S_BODY || s->st == S_TUNNEL) && s->cin.len) {
        process_client(s); /* the upstream took what was queued: stream on */
        return;
    }
    if (!up && s->st == S_TUNNEL && s->uin.len) {
        up_feed(s);
        return;
    }
    update_reads(s);
}

static void raw_send(sess_t *s, up_t *up, const void *p, size_t n)
{
    if (!n || s->st == S_CLOSING || (up && !up->connected))
        return;
    uv_stream_t *dst = up ? (uv_stream_t *)&up->tcp : (uv_stream_t *)&s->client;
    if (al_stream_write(dst, p, n, on_write, up ? NULL : s, (uintptr_t)up) == AL_OK)
        return;
    if (up && up == s->up)
        upstream_failed(s, "cannot write to the upstream"); /* may retry (retry_fresh) */
    else
        sess_close(s);
}

static void tls_flush(sess_t *s, up_t *up)
{
    al_tls_t *t = up ? up->tls : s->ctls;
    al_buf_t *o = &s->tls_scratch;
    al_buf_reset(o);
    if (t && al_tls_pending_out(t, o) == AL_OK && o->len)
        raw_send(s, up, o->p, o->len);
    al_buf_reset(o);
}

static void send_now(sess_t *s, up_t *up, const void *p, size_t n)
{
    al_tls_t *t = up ? up->tls : s->ctls;
    if (!t) {
        raw_send(s, up, p, n);
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
    tls_flush(s, up);
}

/* While corked (one read event being handled), writes are gathered and go
 * out as one write per side at uncork: a response head and its body are
 * one send(), one segment, one TLS record, not two. */
static void send_to(sess_t *s, up_t *up, const void *p, size_t n)
{
    if (s->corked && n && s->st != S_CLOSING) {
        al_buf_append(up ? &s->ck_up : &s->ck_cl, p, n);
        return;
    }
    send_now(s, up, p, n);
}

static void flush_client(sess_t *s)
{
    if (!s->ck_cl.len)
        return;
    al_buf_t b = s->ck_cl; /* sending may re-enter: take the bytes first */
    al_buf_init(&s->ck_cl);
    send_now(s, NULL, b.p, b.len);
    al_buf_reset(&b);
    if (!s->ck_cl.p)
        s->ck_cl = b; /* keep the capacity */
    else
        al_buf_free(&b);
}

static void flush_up(sess_t *s)
{
    if (!s->ck_up.len)
        return;
    al_buf_t b = s->ck_up;
    al_buf_init(&s->ck_up);
    if (s->up)
        send_now(s, s->up, b.p, b.len);
    al_buf_reset(&b);
    if (!s->ck_up.p)
        s->ck_up = b;
    else
        al_buf_free(&b);
}

static void cork(sess_t *s) { s->corked++; }

static void uncork(sess_t *s)
{
    if (--s->corked)
        return;
    if (s->st == S_CLOSING) {
        al_buf_reset(&s->ck_cl);
        al_buf_reset(&s->ck_up);
        return;
    }
    flush_up(s);
    flush_client(s);
}

static void to_client(sess_t *s, const void *p, size_t n) { send_to(s, NULL, p, n); }

static void to_up(sess_t *s, const void *p, size_t n)
{
    if (s->up)
        send_to(s, s->up, p, n);
}

/* Close the client connection once everything queued for it is written. */
static void close_when_flushed(sess_t *s)
{
    if (s->st == S_CLOSING)
        return;
    flush_client(s);
    if (s->st == S_CLOSING)
        return;
    if (s->ctls) {
        al_tls_shutdown(s->ctls);
        tls_flush(s, NULL);
    }
    if (s->st == S_CLOSING)
        return;
    if (!queued(&s->client)) {
        sess_close(s);
        return;
    }
    s->flush_close = true;
    if (!s->client_paused) {
        s->client_paused = true;
        uv_read_stop((uv_stream_t *)&s->client);
    }
}

/* ---- session lifetime -------------------------------------------------------------------- */

static void drained(hw_t *hw)
{
    if (!hw->closed) {
        pthread_mutex_lock(&hw->lock);
        hw->closed = true;
        pthread_mutex_unlock(&hw->lock);
        uv_close((uv_handle_t *)&hw->audit_async, NULL);
    }
    if (!hw->w->active && !uv_is_closing((uv_handle_t *)&hw->w->wake))
        uv_close((uv_handle_t *)&hw->w->wake, NULL);
}

static void wipe_secrets(sess_t *s)
{
    for (size_t i = 0; i < s->n_secrets; i++)
        if (s->secrets[i]) {
            al_wipe(s->secrets[i], strlen(s->secrets[i]));
            free(s->secrets[i]);
        }
    al_free(&s->secrets);
    s->n_secrets = 0;
}

static void sess_free(sess_t *s)
{
    al_buf_free(&s->rq_rec);
    al_buf_free(&s->rs_rec);
    al_buf_free(&s->rq_body);
    al_buf_free(&s->rs_body);
    al_buf_free(&s->cin);
    al_buf_free(&s->uin);
    al_buf_free(&s->out);
    al_buf_free(&s->tls_scratch);
    al_buf_free(&s->ck_cl);
    /* These held the upstream credential (up_fixed, and uphead copies of it). */
    if (s->up_fixed.p)
        al_wipe(s->up_fixed.p, s->up_fixed.cap);
    if (s->uphead.p)
        al_wipe(s->uphead.p, s->uphead.cap);
    if (s->ck_up.p)
        al_wipe(s->ck_up.p, s->ck_up.cap);
    al_buf_free(&s->ck_up);
    al_buf_free(&s->up_fixed);
    al_buf_free(&s->action);
    al_buf_free(&s->uphead);
    al_buf_free(&s->mhead);
    al_buf_free(&s->mbody);
    for (size_t i = 0; i < s->n_meng; i++)
        al_mask_engine_unref(&s->meng[i]);
    al_tls_free(&s->ctls);
    wipe_secrets(s);
    free(s->up_host);
    al_principal_unref(&s->principal);
    al_snapshot_unref(&s->snap);
    hw_t *hw = s->hw;
    if (s->counted)
        atomic_fetch_sub(s->ls->count, 1);
    free(s);
    hw->w->active--;
    hw->n_sessions--;
    if (hw->draining && !hw->n_sessions)
        drained(hw);
}

static void handle_closed(uv_handle_t *h)
{
    sess_t *s = h->data;
    if (--s->handles == 0)
        sess_free(s);
}

static void up_closed(uv_handle_t *h)
{
    up_t *up = h->data;
    sess_t *s = up->s;
    al_tls_free(&up->tls);
    free(up->url);
    free(up);
    if (s && --s->handles == 0)
        sess_free(s);
}

/* ---- the upstream connection pool ----------------------------------------------------------
 * A connection whose exchange ended cleanly (request sent whole, response
 * read whole, both sides keep-alive) goes to its listener's pool on this
 * worker, and the next allowed request for the same upstream.url, from any
 * client connection, takes it instead of connecting (RFC 9112 §9.3). An
 * idle pooled connection is read from: EOF or any byte closes it. */

static void pool_unlink(up_t *up)
{
    if (!up->pool_ls)
        return;
    *up->ppprev = up->pnext;
    if (up->pnext)
        up->pnext->ppprev = up->ppprev;
    up->pool_ls->n_pool--;
    up->pool_ls = NULL;
    up->pnext = NULL;
    up->ppprev = NULL;
}

static void pool_discard(up_t *up)
{
    pool_unlink(up);
    up->s = NULL;
    if (!uv_is_closing((uv_handle_t *)&up->tcp))
        uv_close((uv_handle_t *)&up->tcp, up_closed);
}

static void on_sweep(uv_timer_t *t)
{
    hw_t *hw = t->data;
    uint64_t now = uv_now(&hw->w->loop);
    size_t left = 0;
    for (size_t k = 0; k < hw->n_ls; k++) {
        listener_t *l = &hw->ls[k];
        const al_target_conf_t *tc = al_config_target(hw->w->snap->cfg, l->target);
        uint64_t idle_ms = (uint64_t)((tc ? tc->http.idle_timeout : 60) * 1000);
        for (up_t *up = l->pool, *n; up; up = n) {
            n = up->pnext;
            if (now - up->idle_since >= idle_ms)
                pool_discard(up);
        }
        left += l->n_pool;
    }
    if (!left) {
        uv_timer_stop(t);
        hw->sweep_on = false;
    }
}

/* Takes a pooled connection to s's upstream, or NULL. */
static up_t *pool_take(sess_t *s)
{
    listener_t *l = (listener_t *)s->ls;
    for (up_t *up = l->pool; up; up = up->pnext) {
        if (strcmp(up->url, s->target->upstream.url))
            continue;
        pool_unlink(up);
        up->s = s;
        s->handles++;
        return up;
    }
    return NULL;
}

/* Lets go of the session's upstream connection: into the pool when `keep`
 * and it can serve another request, else closed. */
static void up_release(sess_t *s, bool keep)
{
    up_t *up = s->up;
    if (!up)
        return;
    listener_t *l = (listener_t *)s->ls;
    bool pool = keep && up->connected && !s->uin.len && !s->hw->draining && s->target &&
                l->n_pool < (size_t)s->target->http.pool_size && up->url;
    if (pool)
        flush_up(s); /* everything for it goes before it serves another */
    else
        al_buf_reset(&s->ck_up);
    s->up = NULL;
    s->up_paused = false;
    al_buf_reset(&s->uin);
    al_http_parser_reset(&s->resp);
    up->tcp.data = up;
    if (!pool) {
        uv_close((uv_handle_t *)&up->tcp, up_closed);
        return;
    }
    up->s = NULL;
    s->handles--; /* the client handle keeps it above 0 */
    up->reused = true;
    up->pool_ls = l;
    up->pnext = l->pool;
    if (l->pool)
        l->pool->ppprev = &up->pnext;
    up->ppprev = &l->pool;
    l->pool = up;
    l->n_pool++;
    hw_t *hw = s->hw;
    up->idle_since = uv_now(&hw->w->loop);
    uv_read_start((uv_stream_t *)&up->tcp, on_alloc, on_up_read); /* notice a close */
    if (!hw->sweep_on) {
        hw->sweep_on = true;
        uv_timer_start(&hw->sweep, on_sweep, 1000, 1000);
    }
}

/* Drops the upstream connection (a new one is made for the next request). */
static void up_close(sess_t *s) { up_release(s, false); }

static void record_result(sess_t *s, const char *error);
static void rec_request_push(sess_t *s);
static void rec_response_push(sess_t *s);
static void kid_wake(void *arg) { uv_async_send(arg); }
static void on_kid_fetched(uv_async_t *a);
static void after_refusal(sess_t *s);

static void sess_close(sess_t *s)
{
    if (s->st == S_CLOSING)
        return;
    if (s->active && !s->audit_wait)
        record_result(s, s->st == S_TUNNEL ? NULL
                                           : "connection closed before the response ended");
    s->active = false;
    s->st = S_CLOSING;
    if (s->rec) {
        rec_request_push(s);
        rec_response_push(s);
        al_rec_close(s->rec, &(al_rec_end_info_t){.reason = s->close_reason ? s->close_reason
                                                                           : "connection closed",
                                                  .bytes_up = s->sess_up,
                                                  .bytes_down = s->sess_down});
        s->rec = NULL;
    }
    al_sess_end(&s->reg);
    if (s->pend) {
        s->pend->s = NULL;
        s->pend = NULL;
    }
    /* A held request's approval is cancelled (client_disconnected). */
    al_hold_detach(&s->hold);
    s->appr_wait = false;
    if (s->appr_used)
        al_hold_session_end(&s->hw->w->loop, s->hw->w->rt->approvals, s->session_id);
    if (s->next)
        s->next->pprev = s->pprev;
    *s->pprev = s->next;
    s->handles++; /* guard while closing the rest */
    up_close(s);
    if (!uv_is_closing((uv_handle_t *)&s->client)) /* counted since accept */
        uv_close((uv_handle_t *)&s->client, handle_closed);
    if (s->idle_inited && !uv_is_closing((uv_handle_t *)&s->idle))
        uv_close((uv_handle_t *)&s->idle, handle_closed);
    if (s->kid_waiting) {
        al_jwks_entry_cancel_wait(s->kid_entry, kid_wake, &s->kid_wait);
        s->kid_waiting = false;
        uv_close((uv_handle_t *)&s->kid_wait, handle_closed);
    }
    if (--s->handles == 0)
        sess_free(s);
}

/* ---- responses airlock makes itself ------------------------------------------------------ */

static const char *status_text(int st)
{
    switch (st) {
    case 100: return "Continue";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

/* Sends a JSON error response. `close`: the connection ends after it. */
/* ---- recording (docs/recordings.md) ------------------------------------------------ */

static bool rec_redacted(const sess_t *s, al_str_t name)
{
    static const char *const always[] = {"authorization", "proxy-authorization", "cookie",
                                         "set-cookie"};
    for (size_t i = 0; i < AL_ARRAY_LEN(always); i++)
        if (name.len == strlen(always[i]) && !strncasecmp(name.p, always[i], name.len))
            return true;
    const al_recordings_conf_t *rc = &s->hw->w->snap->cfg->recordings;
    for (size_t i = 0; i < rc->n_redact_headers; i++)
        if (name.len == strlen(rc->redact_headers[i]) &&
            !strncasecmp(name.p, rc->redact_headers[i], name.len))
            return true;
    const al_target_conf_t *t = s->target;
    for (size_t i = 0; t && i < t->upstream.n_headers; i++)
        if (name.len == strlen(t->upstream.headers[i].name) &&
            !strncasecmp(name.p, t->upstream.headers[i].name, name.len))
            return true;
    return false;
}

static void rec_header(const sess_t *s, al_buf_t *b, bool first, al_str_t n, al_str_t v)
{
    al_buf_puts(b, first ? "[" : ",[");
    al_rec_str(b, NULL, n.p, n.len);
    al_buf_append(b, ",", 1);
    if (rec_redacted(s, n))
        al_buf_puts(b, "\"[redacted]\"");
    else
        al_rec_str(b, NULL, v.p, v.len);
    al_buf_append(b, "]", 1);
}

/* Header lines of a head as sent ("Name: value\r\n" after the first line). */
static void rec_head_text(const sess_t *s, al_buf_t *b, const char *p, size_t n)
{
    al_buf_puts(b, ",\"headers\":[");
    const char *end = p + n, *line = memchr(p, '\n', n);
    bool first = true;
    while (line && ++line < end) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol)
            break;
        size_t len = (size_t)(eol - line);
        if (len && line[len - 1] == '\r')
            len--;
        if (!len)
            break;
        const char *colon = memchr(line, ':', len);
        if (colon) {
            const char *v = colon + 1;
            while (v < line + len && *v == ' ')
                v++;
            rec_header(s, b, first, (al_str_t){line, (size_t)(colon - line)},
                       (al_str_t){v, (size_t)(line + len - v)});
            first = false;
        }
        line = eol;
    }
    al_buf_append(b, "]", 1);
}

static void rec_capture(const sess_t *s, al_buf_t *body, int64_t *total, const void *p,
                        size_t n)
{
    size_t cap = (size_t)s->hw->w->snap->cfg->recordings.max_body_bytes;
    if (body->len < cap)
        al_buf_append(body, p, AL_MIN(n, cap - body->len));
    *total += (int64_t)n;
}

/* The request line's method and headers; the target follows once the path
 * is normalized (rec_request_target); pushed later. */
static void rec_request_head(sess_t *s, const al_http_head_t *h)
{
    if (!s->rec)
        return;
    al_buf_t *b = &s->rq_rec;
    al_buf_reset(b);
    al_buf_reset(&s->rq_body);
    s->rq_total = 0;
    s->rec_decision = s->rec_reason = NULL;
    s->rec_rule[0] = 0;
    al_rec_str(b, "method", h->method.p, h->method.len);
    al_buf_puts(b, ",\"headers\":[");
    for (size_t i = 0; i < h->nheaders; i++)
        rec_header(s, b, i == 0, h->headers[i].name, h->headers[i].value);
    al_buf_append(b, "]", 1);
    s->rq_pending = true;
}

/* "METHOD /path?query" (normalized, sensitive values redacted) -> target. */
static void rec_request_target(sess_t *s)
{
    if (!s->rq_pending)
        return;
    const char *sp = memchr(s->action.p, ' ', s->action.len);
    if (sp)
        al_rec_str(&s->rq_rec, "target", sp + 1, s->action.len - (size_t)(sp + 1 - s->action.p));
}

static void rec_request_push(sess_t *s)
{
    if (!s->rq_pending)
        return;
    s->rq_pending = false;
    al_buf_t *b = al_rec_begin(s->rec, "request");
    if (!b)
        return;
    al_buf_append(b, s->rq_rec.p, s->rq_rec.len);
    if (s->rq_total > 0)
        al_rec_bytes(b, "body", s->rq_body.p, s->rq_body.len);
    al_rec_int(b, "body_bytes", s->rq_total);
    al_rec_bool(b, "body_truncated", (int64_t)s->rq_body.len < s->rq_total);
    al_rec_cstr(b, "decision", s->rec_decision ? s->rec_decision : "deny");
    if (s->rec_rule[0])
        al_rec_cstr(b, "rule", s->rec_rule);
    if (s->rec_reason)
        al_rec_cstr(b, "reason", s->rec_reason);
    al_rec_end(s->rec);
}

static void rec_response_head(sess_t *s, int status, const char *head, size_t n)
{
    if (!s->rec)
        return;
    rec_request_push(s);
    al_buf_t *b = &s->rs_rec;
    al_buf_reset(b);
    al_buf_reset(&s->rs_body);
    s->rs_total = 0;
    al_rec_int(b, "status", status);
    rec_head_text(s, b, head, n);
    s->rs_pending = true;
}

static void rec_response_push(sess_t *s)
{
    if (!s->rs_pending)
        return;
    s->rs_pending = false;
    al_buf_t *b = al_rec_begin(s->rec, "response");
    if (!b)
        return;
    al_buf_append(b, s->rs_rec.p, s->rs_rec.len);
    if (s->rs_total > 0)
        al_rec_bytes(b, "body", s->rs_body.p, s->rs_body.len);
    al_rec_int(b, "body_bytes", s->rs_total);
    al_rec_bool(b, "body_truncated", (int64_t)s->rs_body.len < s->rs_total);
    if (s->t0)
        al_rec_int(b, "duration_us", (int64_t)((al_mono_ns() - s->t0) / 1000));
    al_rec_end(s->rec);
}

static void send_error(sess_t *s, int status, const char *www_auth, const al_buf_t *json,
                       bool close)
{
    al_buf_t *b = &s->out;
    al_buf_reset(b);
    al_buf_printf(b, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nCache-Control: no-store\r\n",
                  status, status_text(status), json->len);
    if (www_auth)
        al_buf_printf(b, "WWW-Authenticate: %s\r\n", www_auth);
    if (s->req_id[0])
        al_buf_printf(b, "X-Request-Id: %s\r\n", s->req_id);
    if (close)
        al_buf_puts(b, "Connection: close\r\n");
    al_buf_puts(b, "\r\n");
    if (s->rec) {
        rec_response_head(s, status, b->p, b->len);
        rec_capture(s, &s->rs_body, &s->rs_total, json->p, json->len);
        rec_response_push(s);
    }
    al_buf_append(b, json->p, json->len);
    to_client(s, b->p, b->len);
    al_buf_reset(b);
    if (close)
        close_when_flushed(s);
}

/* {"error": code, "reason": reason} */
static void error_reason(sess_t *s, int status, const char *code, const char *reason,
                         bool close)
{
    al_buf_t j;
    al_buf_init(&j);
    al_buf_puts(&j, "{\"error\":");
    al_buf_json_str(&j, code, strlen(code));
    al_buf_puts(&j, ",\"reason\":");
    al_buf_json_str(&j, reason, strlen(reason));
    al_buf_puts(&j, "}");
    send_error(s, status, NULL, &j, close);
    al_buf_free(&j);
}

/* ---- audit ------------------------------------------------------------------------------- */

static void fill_event(sess_t *s, al_audit_event_t *ev);

/* A request refused before any decision (framing, path, unsupported
 * form): the answer, and a `decision` event with the reason. */
static void refuse_request(sess_t *s, int status, const char *code, const char *reason,
                           bool close)
{
    al_audit_event_t ev;
    fill_event(s, &ev);
    char st[8];
    snprintf(st, sizeof st, "%d", status);
    ev.kind = AL_AUDIT_KIND_DECISION;
    ev.decision = "deny";
    ev.reason = reason;
    ev.status = st;
    if (s->action.len)
        ev.action = (al_str_t){s->action.p, s->action.len};
    al_audit_submit_async(s->hw->w->rt->audit, &ev, NULL);
    s->rec_decision = "deny";
    s->rec_reason = reason;
    error_reason(s, status, code, reason, close);
}

static void fill_event(sess_t *s, al_audit_event_t *ev)
{
    al_audit_event_init(ev);
    ev->session_id = s->session_id;
    ev->protocol = "http";
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

/* The RESULT record of an allowed request, referring to its decision:
 * status, duration and body bytes each way (a WebSocket tunnel: the bytes
 * relayed after the upgrade). */
static void record_result(sess_t *s, const char *error)
{
    al_audit_event_t ev;
    fill_event(s, &ev);
    char st[8], masked[48];
    status_str(s->status, st);
    if (s->deferred) {
        /* An async rule's request is recorded once, when it ended: the
         * decision with its outcome (as the PostgreSQL gateway does for
         * async reads). Half the audit writes of a decision + result pair. */
        ev.kind = AL_AUDIT_KIND_DECISION;
        ev.decision = "allow";
        ev.rule = s->rule[0] ? s->rule : NULL;
        ev.reason = s->reason;
        s->deferred = false;
    } else {
        ev.kind = AL_AUDIT_KIND_RESULT;
        ev.ref_id = s->decision_id;
        ev.decision = error ? "error" : "ok";
    }
    if (s->masked_values && !ev.reason) {
        snprintf(masked, sizeof masked, "masked %llu values",
                 (unsigned long long)s->masked_values);
        ev.reason = masked;
    }
    ev.bytes_up = s->bytes_up;
    ev.bytes_down = s->bytes_down;
    ev.action = (al_str_t){s->action.p, s->action.len};
    ev.status = s->status ? st : NULL;
    ev.duration_us = (int64_t)((al_mono_ns() - s->t0) / 1000);
    ev.error = error;
    al_audit_submit_async(s->hw->w->rt->audit, &ev, NULL);
}

static void on_audit_done(void *ud, int rc, const char *id, const char *err)
{
    pend_t *pd = ud;
    AL_UNUSED(id);
    pd->rc = rc;
    snprintf(pd->err, sizeof pd->err, "%s", err ? err : "");
    hw_t *hw = pd->hw;
    pthread_mutex_lock(&hw->lock);
    pd->next = hw->done;
    hw->done = pd;
    if (!hw->closed)
        uv_async_send(&hw->audit_async);
    pthread_mutex_unlock(&hw->lock);
}

/* Fail closed: no forwarding without the strict record. */
static void audit_failed(sess_t *s, const char *err)
{
    al_log(AL_LOG_ERROR, "audit record not committed; request refused", "session",
           s->session_id, "error", err, NULL);
    s->active = false;
    error_reason(s, 503, "audit_unavailable", err && *err ? err : "audit store failure", false);
    after_refusal(s);
}

static void committed(sess_t *s, int rc, const char *err)
{
    s->audit_wait = false;
    if (rc != AL_OK) {
        audit_failed(s, err);
        process_client(s);
        return;
    }
    proceed(s);
}

static void on_audit_async(uv_async_t *h)
{
    hw_t *hw = h->data;
    pthread_mutex_lock(&hw->lock);
    pend_t *list = hw->done;
    hw->done = NULL;
    pthread_mutex_unlock(&hw->lock);
    while (list) {
        pend_t *pd = list;
        list = pd->next;
        if (pd->s) {
            sess_t *s = pd->s;
            s->pend = NULL;
            cork(s);
            committed(s, pd->rc, pd->err);
            uncork(s);
        }
        free(pd);
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
        return (c | 0x20) - 'a' + 10;
    return -1;
}

/* Query parameter names whose values never reach the audit log: the
 * target's http.redact_params (exact, case-insensitive) and any name
 * containing one of the built-in words. */
static bool sensitive_param(const sess_t *s, const char *k, size_t n)
{
    static const char *const words[] = {"token", "password", "passwd", "pwd", "secret",
                                        "key", "auth", "signature", "sig", "credential",
                                        "session", "code"};
    /* The name as the application will read it: percent-decoded (RFC 3986
     * §2.1), '+' as space (WHATWG urlencoded), lowercase; "%74oken" is
     * "token". Too long to decode here: redacted. */
    char low[64];
    size_t m = 0;
    for (size_t i = 0; i < n; i++, m++) {
        if (m + 1 >= sizeof low)
            return true;
        unsigned char c = (unsigned char)k[i];
        if (c == '%' && i + 2 < n) {
            int hi = hexval(k[i + 1]), lo = hexval(k[i + 2]);
            if (hi >= 0 && lo >= 0) {
                c = (unsigned char)(hi << 4 | lo);
                i += 2;
            }
        } else if (c == '+') {
            c = ' ';
        }
        low[m] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
    }
    low[m] = 0;
    const al_http_conf_t *hc = &s->target->http;
    for (size_t i = 0; i < hc->n_redact_params; i++)
        if (!strcasecmp(hc->redact_params[i], low))
            return true;
    for (size_t i = 0; i < AL_ARRAY_LEN(words); i++)
        if (strstr(low, words[i]))
            return true;
    return false;
}

/* "METHOD /normalized/path?query" with sensitive values replaced. */
static void build_action(sess_t *s, al_str_t method, const char *path, size_t plen,
                         al_str_t query)
{
    al_buf_t *a = &s->action;
    al_buf_reset(a);
    al_buf_append(a, method.p, method.len);
    al_buf_append(a, " ", 1);
    al_buf_append(a, path, plen);
    if (!query.p)
        return;
    al_buf_append(a, "?", 1);
    const char *q = query.p, *end = query.p + query.len;
    while (q <= end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(pe - q));
        if (eq && sensitive_param(s, q, (size_t)(eq - q))) {
            al_buf_append(a, q, (size_t)(eq - q) + 1);
            al_buf_puts(a, "REDACTED");
        } else {
            al_buf_append(a, q, (size_t)(pe - q));
        }
        if (!amp)
            break;
        al_buf_append(a, "&", 1);
        q = amp + 1;
    }
}

/* ---- headers ----------------------------------------------------------------------------- */

static bool name_is(al_str_t n, const char *c)
{
    size_t l = strlen(c);
    return n.len == l && !strncasecmp(n.p, c, l);
}

/* Is `name` listed in a Connection field of head (RFC 9110 §7.6.1)? */
static bool conn_listed(const al_http_head_t *h, al_str_t name)
{
    for (size_t i = 0; i < h->nheaders; i++) {
        if (!name_is(h->headers[i].name, "connection"))
            continue;
        al_str_t v = h->headers[i].value;
        const char *p = v.p, *end = v.p + v.len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
                p++;
            const char *t = p;
            while (p < end && *p != ',' && *p != ' ' && *p != '\t')
                p++;
            if (p > t && (size_t)(p - t) == name.len && !strncasecmp(t, name.p, name.len))
                return true;
        }
    }
    return false;
}

/* Hop-by-hop fields (RFC 9110 §7.6.1) and the framing airlock redoes
 * (RFC 9112 §6). */
static bool hop_by_hop(const al_http_head_t *h, al_str_t n)
{
    static const char *const hop[] = {"connection", "keep-alive", "te", "trailer",
                                      "transfer-encoding", "upgrade", "content-length"};
    for (size_t i = 0; i < AL_ARRAY_LEN(hop); i++)
        if (name_is(n, hop[i]))
            return true;
    if (n.len >= 6 && !strncasecmp(n.p, "proxy-", 6))
        return true;
    return conn_listed(h, n);
}

/* The host part of a Host value, without the port (policy hosts are names). */
static al_str_t host_only(al_str_t h)
{
    if (h.len && h.p[0] == '[') {
        const char *rb = memchr(h.p, ']', h.len);
        return rb ? (al_str_t){h.p, (size_t)(rb - h.p) + 1} : h;
    }
    const char *c = memchr(h.p, ':', h.len);
    return c ? (al_str_t){h.p, (size_t)(c - h.p)} : h;
}

static bool req_id_ok(al_str_t v)
{
    if (!v.len || v.len > MAX_REQ_ID)
        return false;
    for (size_t i = 0; i < v.len; i++) {
        char c = v.p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':'))
            return false;
    }
    return true;
}

/* Builds the upstream request head into s->uphead. */
static void build_upstream_head(sess_t *s, const al_http_head_t *h, const char *path,
                                size_t plen, al_str_t query)
{
    al_buf_t *b = &s->uphead;
    al_buf_reset(b);
    al_buf_append(b, h->method.p, h->method.len);
    al_buf_append(b, " ", 1);
    al_buf_append(b, s->url.base.p, s->url.base.len);
    al_buf_append(b, path, plen);
    if (query.p) {
        al_buf_append(b, "?", 1);
        al_buf_append(b, query.p, query.len);
    }
    al_buf_puts(b, " HTTP/1.1\r\n");
    const al_upstream_conf_t *u = &s->target->upstream;
    if (!s->up_fixed.len) {
        /* The same for every request of the connection: built once. */
        al_buf_t *f = &s->up_fixed;
        bool v6 = memchr(s->url.host.p, ':', s->url.host.len) != NULL;
        al_buf_printf(f, "Host: %s%s%s", v6 ? "[" : "", s->up_host, v6 ? "]" : "");
        if (s->url.port != (s->url.https ? 443 : 80))
            al_buf_printf(f, ":%d", s->url.port);
        al_buf_puts(f, "\r\n");
        for (size_t k = 0; k < u->n_headers && k < s->n_secrets; k++)
            al_buf_printf(f, "%s: %s\r\n", u->headers[k].name, s->secrets[k]);
        /* RFC 7239 §4-§6: an IPv6 node is a quoted "[addr]". */
        al_buf_printf(f, "Forwarded: for=%s%s%s;proto=%s\r\n", s->peer_v6 ? "\"[" : "",
                      s->peer, s->peer_v6 ? "]\"" : "", s->ls->tls ? "https" : "http");
    }
    al_buf_append(b, s->up_fixed.p, s->up_fixed.len);
    for (size_t i = 0; i < h->nheaders; i++) {
        al_str_t n = h->headers[i].name;
        if (hop_by_hop(h, n) || name_is(n, "host") || name_is(n, "authorization") ||
            name_is(n, "expect") || name_is(n, "forwarded") || name_is(n, "x-request-id") ||
            (n.len > 12 && !strncasecmp(n.p, "x-forwarded-", 12)))
            continue; /* what the agent claims about the hop is not evidence */
        if (s->n_meng && (name_is(n, "range") || name_is(n, "if-range")))
            continue; /* masking needs whole bodies: a part could cut a value in two */
        bool injected = false;
        for (size_t k = 0; k < u->n_headers && !injected; k++)
            injected = name_is(n, u->headers[k].name);
        if (injected)
            continue;
        al_buf_append(b, n.p, n.len);
        al_buf_append(b, ": ", 2);
        al_buf_append(b, h->headers[i].value.p, h->headers[i].value.len);
        al_buf_append(b, "\r\n", 2);
    }
    al_buf_puts(b, "X-Request-Id: ");
    buf_str(b, s->req_id);
    al_buf_puts(b, "\r\n");
    if (s->upgrading) {
        /* RFC 9110 §7.8: Upgrade is hop-by-hop, so it is sent again, with
         * the Connection option that names it. */
        al_str_t uv = al_http_head_get(h, "upgrade");
        al_buf_puts(b, "Connection: Upgrade\r\nUpgrade: ");
        al_buf_append(b, uv.p, uv.len);
        al_buf_puts(b, "\r\n");
    }
    if (h->has_body && h->chunked)
        al_buf_puts(b, "Transfer-Encoding: chunked\r\n");
    else if (h->content_length >= 0) {
        al_buf_puts(b, "Content-Length: ");
        buf_u64(b, (uint64_t)h->content_length);
        al_buf_puts(b, "\r\n");
    }
    al_buf_puts(b, "\r\n");
}

/* ---- the request ------------------------------------------------------------------------- */

/* After a refusal: drop the body if one follows, else expect the next
 * request. A client waiting for 100-continue will not send the body it
 * announced, so that connection closes instead (RFC 9110 §10.1.1). */
static bool body_pending(const sess_t *s) { return s->reqp.state != AL_HTTP_S_HEAD; }

static void on_tmr(uv_timer_t *t);

/* Arms the session timer for `k`. Upstream waits (connect, response head)
 * never outlive the exchange's own deadline (http.request_timeout). */
static void tmr_arm(sess_t *s, tmr_t k)
{
    if (!s->idle_inited || s->st == S_CLOSING)
        return;
    const al_http_conf_t *hc = &s->target->http;
    double secs = 0;
    switch (k) {
    case T_NONE: uv_timer_stop(&s->idle); s->tmr = T_NONE; return;
    case T_HEAD: secs = hc->header_timeout; break;
    case T_IDLE: secs = hc->idle_timeout; break;
    case T_CONNECT: secs = s->target->upstream.connect_timeout; break;
    case T_RESPONSE: secs = hc->header_timeout; break;
    case T_REQUEST: secs = 0; break;
    case T_TOKEN: {
        double left = s->principal ? s->principal->exp + s->target->session_grace - al_now() : 0;
        secs = left > 0 ? left : 0.001;
        break;
    }
    }
    uint64_t ms = (uint64_t)(secs * 1000);
    if (k == T_CONNECT || k == T_RESPONSE || k == T_REQUEST) {
        uint64_t now = uv_now(&s->hw->w->loop);
        uint64_t left = s->deadline > now ? s->deadline - now : 0;
        if (k == T_REQUEST || left <= ms) {
            k = T_REQUEST;
            ms = left;
        }
    }
    s->tmr = k;
    uv_timer_start(&s->idle, on_tmr, ms ? ms : 1, 0);
}

/* While an exchange is in flight: the response head is awaited once the
 * request went out whole, else the whole-exchange deadline runs. */
static void tmr_exchange(sess_t *s)
{
    if (s->st == S_CLOSING || s->st == S_TUNNEL)
        return;
    tmr_arm(s, s->req_done && !s->resp_started && !s->mask_body ? T_RESPONSE : T_REQUEST);
}

static void upstream_error(sess_t *s, int status, const char *why);

static void on_tmr(uv_timer_t *t)
{
    sess_t *s = t->data;
    char why[160];
    const al_target_conf_t *tc = s->target;
    switch (s->tmr) {
    case T_HEAD:
    case T_IDLE:
        /* Slowloris and idle keep-alive: a head that does not complete in
         * header_timeout, or no request within idle_timeout. */
        if (s->st == S_HEAD || s->st == S_DISCARD) {
            al_log(AL_LOG_DEBUG, s->tmr == T_HEAD ? "request head timed out"
                                                  : "idle keep-alive connection closed",
                   "session", s->session_id, NULL);
            sess_close(s);
        }
        return;
    case T_CONNECT:
        snprintf(why, sizeof why, "cannot connect to the upstream within %gs "
                                  "(upstream.connect_timeout)", tc->upstream.connect_timeout);
        upstream_error(s, 504, why);
        return;
    case T_RESPONSE:
        snprintf(why, sizeof why, "the upstream did not answer within %gs "
                                  "(http.header_timeout)", tc->http.header_timeout);
        upstream_error(s, 504, why);
        return;
    case T_REQUEST:
        snprintf(why, sizeof why, "the exchange took longer than %gs (http.request_timeout)",
                 tc->http.request_timeout);
        upstream_error(s, 504, why);
        return;
    case T_TOKEN:
        if (s->st == S_TUNNEL) {
            s->active = false;
            record_result(s, "token expired");
            sess_close(s);
        }
        return;
    case T_NONE:
        return;
    }
}

/* A held upgrade request that was not carried out: parse on. */
static void unhold(sess_t *s)
{
    if (s->reqp.state == AL_HTTP_S_HOLD)
        al_http_parser_resume(&s->reqp);
    s->upgrading = false;
}

static void after_refusal(sess_t *s)
{
    if (s->st == S_CLOSING)
        return;
    unhold(s);
    bool body = body_pending(s);
    s->st = body ? S_DISCARD : S_HEAD;
    tmr_arm(s, body ? T_HEAD : T_IDLE);
    if ((body && s->expect_continue) || !s->client_keep || s->drain_close)
        close_when_flushed(s);
}

/* RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" /
 * "+" / "/" ) *"=". A switch, not strchr: this runs for every byte of
 * every token on every request. */
static inline bool b64token_char(char c)
{
    switch (c) {
    case '-': case '.': case '_': case '~': case '+': case '/':
        return true;
    default:
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    }
}

/* RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token, the scheme
 * case-insensitive (RFC 9110 §11.1). Returns 0 and the token, 1 when no
 * bearer credentials were presented, -1 malformed. */
static int bearer(al_str_t v, al_str_t *tok)
{
    if (v.len < 6 || strncasecmp(v.p, "bearer", 6) || (v.len > 6 && v.p[6] != ' '))
        return 1;
    size_t i = 6;
    while (i < v.len && v.p[i] == ' ')
        i++;
    if (i == 6 || i == v.len)
        return -1;
    size_t start = i;
    while (i < v.len && b64token_char(v.p[i]))
        i++;
    while (i < v.len && v.p[i] == '=')
        i++;
    if (i != v.len)
        return -1;
    *tok = (al_str_t){v.p + start, v.len - start};
    return 0;
}

static void unauthorized(sess_t *s, const char *reason,
                         const char *detail)
{
    al_audit_event_t ev;
    fill_event(s, &ev);
    ev.kind = AL_AUDIT_KIND_AUTH;
    ev.decision = "deny";
    ev.reason = reason;
    ev.action = (al_str_t){s->action.p, s->action.len};
    ev.status = "401";
    al_audit_submit_async(s->hw->w->rt->audit, &ev, NULL);
    s->rec_decision = "deny";
    s->rec_reason = reason;
    al_buf_t j;
    al_buf_init(&j);
    al_buf_puts(&j, "{\"error\":\"unauthorized\",\"reason\":");
    al_buf_json_str(&j, reason, strlen(reason));
    if (detail) {
        al_buf_puts(&j, ",\"detail\":");
        al_buf_json_str(&j, detail, strlen(detail));
    }
    al_buf_puts(&j, "}");
    char www[192];
    /* RFC 6750 §3: no error code when no credentials came (§3.1). */
    if (!strcmp(reason, "missing_token"))
        snprintf(www, sizeof www, "Bearer realm=\"airlock\"");
    else
        snprintf(www, sizeof www, "Bearer error=\"invalid_token\", error_description=\"%s\"",
                 reason);
    send_error(s, 401, www, &j, false);
    al_buf_free(&j);
    after_refusal(s);
}

/* Verifies the request's bearer token. Returns false after answering. */
static bool authenticate(sess_t *s, const al_http_head_t *h)
{
    al_str_t auth = {NULL, 0};
    size_t n = 0;
    for (size_t i = 0; i < h->nheaders; i++)
        if (name_is(h->headers[i].name, "authorization")) {
            auth = h->headers[i].value;
            n++;
        }
    al_principal_unref(&s->principal);
    if (n > 1) {
        unauthorized(s, "duplicate_authorization", "send one Authorization field");
        return false;
    }
    al_str_t tok = {NULL, 0};
    int br = n ? bearer(auth, &tok) : 1;
    if (br == 1) {
        unauthorized(s, "missing_token", "send 'Authorization: Bearer <token>'");
        return false;
    }
    if (br < 0) {
        unauthorized(s, al_tok_reason(AL_TOK_MALFORMED), "not an RFC 6750 bearer token");
        return false;
    }
    al_worker_t *w = s->hw->w;
    al_principal_t *p = NULL;
    al_verify_info_t info;
    memset(&info, 0, sizeof info);
    al_tok_status_t st = al_worker_verify(w, tok.p, tok.len, al_now(), &p, &info);
    if (st == AL_TOK_UNKNOWN_KID && info.refetch && !s->kid_retried &&
        uv_async_init(&w->loop, &s->kid_wait, on_kid_fetched) == 0) {
        /* RFC 7517 §5: the issuer may have rotated; wait for the
         * rate-limited refetch once, then verify again. */
        s->kid_wait.data = s;
        s->handles++;
        s->kid_waiting = true;
        s->kid_entry = info.refetch;
        if (al_jwks_entry_on_fetched(info.refetch, info.refetch_ticket, kid_wake, &s->kid_wait))
            uv_async_send(&s->kid_wait);
        return false;
    }
    if (st != AL_TOK_OK) {
        unauthorized(s, al_tok_reason(st), info.detail);
        return false;
    }
    s->principal = p;
    al_sess_identify(s->reg, p);
    al_sess_action(s->reg);
    return true;
}

static void refuse_policy(sess_t *s, const al_verdict_t *v)
{
    al_buf_t j;
    al_buf_init(&j);
    al_buf_puts(&j, v->decision == AL_DECIDE_APPROVE ? "{\"error\":\"approval_required\""
                                                     : "{\"error\":\"denied\"");
    al_buf_puts(&j, ",\"rule\":");
    if (v->rule)
        al_buf_json_str(&j, v->rule->name, strlen(v->rule->name));
    else
        al_buf_puts(&j, "null");
    al_buf_puts(&j, ",\"message\":");
    if (v->rule && v->rule->message)
        al_buf_json_str(&j, v->rule->message, strlen(v->rule->message));
    else if (v->decision == AL_DECIDE_APPROVE)
        al_buf_puts(&j, "\"this request needs a human approval, which cannot be requested "
                        "now; ask an approver\"");
    else
        al_buf_puts(&j, "null");
    al_buf_puts(&j, ",\"reason\":");
    al_buf_json_str(&j, v->reason, strlen(v->reason));
    al_buf_puts(&j, "}");
    send_error(s, 403, NULL, &j, false);
    al_buf_free(&j);
    after_refusal(s);
}

static void audit_refusal(sess_t *s, const al_verdict_t *v)
{
    al_audit_event_t ev;
    fill_event(s, &ev);
    ev.kind = AL_AUDIT_KIND_DECISION;
    ev.action = (al_str_t){s->action.p, s->action.len};
    ev.decision = al_decision_name(v->decision);
    ev.rule = v->rule ? v->rule->name : NULL;
    ev.reason = v->reason;
    ev.status = "403";
    al_audit_submit_async(s->hw->w->rt->audit, &ev, NULL);
}

/* The engines that mask this exchange's response: the target's unnamed
 * masking entries and those the deciding rule names. */
static void set_masks(sess_t *s, const al_verdict_t *v)
{
    for (size_t i = 0; i < s->n_meng; i++)
        al_mask_engine_unref(&s->meng[i]);
    s->n_meng = 0;
    s->mask_body = false;
    s->masked_values = 0;
    const al_mask_set_t *ms = s->hw->w->snap->masks;
    al_mask_engine_t *e = al_mask_set_target(ms, s->target->name);
    if (e)
        s->meng[s->n_meng++] = al_mask_engine_ref(e);
    for (size_t i = 0; i < v->n_masks && s->n_meng < AL_ARRAY_LEN(s->meng); i++)
        if ((e = al_mask_set_named(ms, v->masks[i], s->target->name)))
            s->meng[s->n_meng++] = al_mask_engine_ref(e);
    for (size_t i = 0; i < s->n_meng; i++)
        if (al_mask_scratch_alloc(s->meng[i], &s->hw->mscr) < 0) {
            al_log(AL_LOG_ERROR, "cannot allocate masking scratch", NULL);
            s->mask_failed = true;
        }
}

/* ---- approvals (docs/approvals.md, approval_hold.h) ----------------------------------- */

static void start_exchange(sess_t *s, const char *approval_id, const char *reason);

/* A decision event for the held request: pending (with the request id) or
 * deny (how it ended). */
static void audit_held(sess_t *s, const char *decision, const char *reason, const char *id,
                       const char *status)
{
    al_audit_event_t ev;
    fill_event(s, &ev);
    ev.kind = AL_AUDIT_KIND_DECISION;
    ev.action = (al_str_t){s->action.p, s->action.len};
    ev.decision = decision;
    ev.rule = s->rule[0] ? s->rule : NULL;
    ev.reason = reason;
    ev.approval_id = id && *id ? id : NULL;
    ev.status = status;
    al_audit_submit_async(s->hw->w->rt->audit, &ev, NULL);
}

/* 403 {"error": CODE, "approval_id": ID, "rule": RULE, "message": TEXT,
 * "reason": REASON}; the connection goes on. */
static void refuse_held(sess_t *s, const al_hold_result_t *r, const char *reason)
{
    const char *code = "approval_required";
    if (r->outcome == AL_HOLD_ENDED)
        code = r->state == AL_APPROVAL_DENIED      ? "approval_denied"
             : r->state == AL_APPROVAL_TIMED_OUT   ? "approval_timed_out"
             : r->state == AL_APPROVAL_ABANDONED   ? "approval_abandoned"
             : r->state == AL_APPROVAL_APPROVED    ? "approval_grant_unavailable"
                                                   : "approval_cancelled";
    char msg[AL_APPROVALS_MAX_REASON + 256];
    al_hold_message(r, msg, sizeof msg);
    al_buf_t j;
    al_buf_init(&j);
    al_buf_puts(&j, "{\"error\":");
    al_buf_json_str(&j, code, strlen(code));
    al_buf_puts(&j, ",\"approval_id\":");
    if (r->id && *r->id)
        al_buf_json_str(&j, r->id, strlen(r->id));
    else
        al_buf_puts(&j, "null");
    al_buf_puts(&j, ",\"rule\":");
    al_buf_json_str(&j, s->rule, strlen(s->rule));
    al_buf_puts(&j, ",\"message\":");
    al_buf_json_str(&j, msg, strlen(msg));
    al_buf_puts(&j, ",\"reason\":");
    al_buf_json_str(&j, reason, strlen(reason));
    al_buf_puts(&j, "}");
    send_error(s, 403, NULL, &j, false);
    al_buf_free(&j);
    after_refusal(s);
}

static void on_hold(void *ud, const al_hold_result_t *r)
{
    sess_t *s = ud;
    if (s->st == S_CLOSING)
        return;
    char why[128];
    const char *reason = al_hold_audit_reason(r, why, sizeof why);
    if (r->outcome == AL_HOLD_WAITING) {
        audit_held(s, "pending", reason, r->id, NULL);
        return; /* HTTP/1.1 has nothing to tell the client meanwhile */
    }
    al_hold_detach(&s->hold);
    s->appr_wait = false;
    if (r->outcome == AL_HOLD_GRANTED || r->outcome == AL_HOLD_APPROVED) {
        if (s->principal && al_now() >= s->principal->exp + s->target->session_grace) {
            /* The token ran out while the request was held. */
            audit_held(s, "deny", "expired", r->id, "401");
            error_reason(s, 401, "invalid_token", "expired", false);
            after_refusal(s);
            process_client(s);
            return;
        }
        start_exchange(s, r->id, reason);
        if (s->st == S_WAIT && !s->audit_wait)
            proceed(s); /* async audit: forward now */
        else if (s->st != S_WAIT && s->st != S_CLOSING)
            process_client(s); /* refused (audit unavailable): parse on */
        return;
    }
    audit_held(s, r->outcome == AL_HOLD_RETRY ? "pending" : "deny", reason, r->id, "403");
    refuse_held(s, r, reason);
    process_client(s);
}

/* An `approve` verdict: the upstream head is built but nothing is sent;
 * ask the approvals service (off-loop) for a grant or a new request. The
 * rule's timeout bounds the hold, not the session timer. */
static void hold_request(sess_t *s, const al_policy_conf_t *rule)
{
    al_worker_t *w = s->hw->w;
    s->st = S_WAIT;
    s->appr_wait = true;
    s->appr_used = true;
    tmr_arm(s, T_NONE);
    const al_principal_t *p = s->principal;
    al_approval_req_t r = {.agent = p->agent ? p->agent : p->sub, .owner = p->owner,
                           .subject = p->sub, .issuer = p->iss,
                           .groups = (const char *const *)p->groups, .n_groups = p->n_groups,
                           .target = s->target->name, .protocol = "http",
                           .action = {s->action.p, s->action.len}, .rule = rule,
                           .mode = rule->mode, .session_id = s->session_id};
    s->hold = al_hold_start(&w->loop, w->rt, w->snap, &r, on_hold, s);
}

/* A request head arrived: decide it. h points into s->cin. */
static void on_request(sess_t *s, const al_http_head_t *h)
{
    if (s->idle_inited)
        uv_timer_stop(&s->idle);
    s->t0 = al_mono_ns();
    s->bytes_up = s->bytes_down = 0;
    s->status = 0;
    s->resp_started = s->resp_chunked = s->resp_done = s->req_done = false;
    s->close_after = false;
    s->client_keep = h->keep_alive;
    s->client_http10 = h->version == 10;
    s->expect_continue = h->expect_continue;
    s->req_chunked = h->has_body && h->chunked;
    size_t ml = AL_MIN(h->method.len, sizeof s->method - 1);
    memcpy(s->method, h->method.p, ml);
    s->method[ml] = 0;
    al_str_t rid = al_http_head_get(h, "x-request-id");
    if (req_id_ok(rid)) {
        memcpy(s->req_id, rid.p, rid.len); /* at most MAX_REQ_ID */
        s->req_id[rid.len] = 0;
    }
    else
        al_audit_uuid7((int64_t)(al_now() * 1e6), s->req_id);
    al_buf_reset(&s->action);
    al_buf_append(&s->action, h->method.p, h->method.len);
    rec_request_head(s, h);

    if (h->form == AL_HTTP_FORM_AUTHORITY || h->form == AL_HTTP_FORM_ASTERISK) {
        refuse_request(s, 501, "not_implemented", h->form == AL_HTTP_FORM_AUTHORITY
                                                    ? "CONNECT is served by the listeners of "
                                                      "'protocol: tcp' targets, not http ones"
                                                    : "OPTIONS * is not supported", true);
        return;
    }
    if (h->upgrade) {
        /* RFC 6455 §4.1: a WebSocket opening handshake is a GET without a
         * body. Other upgrades (h2c, TLS) are not relayed. */
        al_str_t u = al_http_head_get(h, "upgrade");
        if (!(u.len == 9 && !strncasecmp(u.p, "websocket", 9))) {
            refuse_request(s, 501, "not_implemented",
                           "only 'Upgrade: websocket' is relayed", true);
            return;
        }
        if (h->has_body || !(h->method.len == 3 && !memcmp(h->method.p, "GET", 3))) {
            refuse_request(s, 400, "bad_request", "bad_upgrade", true);
            return;
        }
    }
    al_str_t path, query;
    if (al_http_target_split(h->target, &path, &query) != AL_OK) {
        refuse_request(s, 400, "bad_request", "bad_target", true);
        return;
    }
    size_t cap = path.len + 2, nlen = 0;
    char *npath = al_xmalloc(cap);
    const char *perr = NULL;
    if (al_http_path_normalize(path.p, path.len, npath, cap, &nlen, &perr) != AL_OK) {
        free(npath);
        refuse_request(s, 400, "bad_request", perr ? perr : "bad_path", false);
        after_refusal(s);
        return;
    }
    build_action(s, h->method, npath, nlen, query);
    rec_request_target(s);
    if (!authenticate(s, h)) {
        free(npath);
        return;
    }
    const al_principal_t *p = s->principal;
    if (s->rec && p->sub && strcmp(s->rec_sub, p->sub)) {
        al_rec_identify(s->rec, &(al_rec_who_t){p->agent, p->sub, p->iss});
        snprintf(s->rec_sub, sizeof s->rec_sub, "%s", p->sub);
    }
    if (al_recorder_refusing(s->hw->w->rt->recorder)) {
        /* recordings.on_failure: refuse (docs/recordings.md) */
        free(npath);
        char cause[600];
        al_recorder_error(s->hw->w->rt->recorder, cause, sizeof cause);
        al_audit_event_t ev;
        fill_event(s, &ev);
        ev.kind = AL_AUDIT_KIND_DECISION;
        ev.action = (al_str_t){s->action.p, s->action.len};
        ev.decision = "deny";
        ev.reason = "recording_failed";
        ev.status = "503";
        ev.error = cause;
        al_audit_submit_async(s->hw->w->rt->audit, &ev, NULL);
        s->rec_decision = "deny";
        s->rec_reason = "recording_failed";
        char msg[800];
        snprintf(msg, sizeof msg, "session %s; the action is refused (recordings.on_failure: "
                                  "refuse)", *cause ? cause : "recording failed");
        error_reason(s, 503, "recording_failed", msg, false);
        after_refusal(s);
        return;
    }
    al_subject_t who = {p->agent, p->issuer_name, p->groups, p->n_groups};
    al_action_t a = {.kind = AL_ACTION_HTTP,
                     .target = s->target->name,
                     .method = h->method,
                     .path = {npath, nlen},
                     .host = host_only(h->authority.p ? h->authority : h->host),
                     .now = (int64_t)al_now()};
    al_verdict_t v;
    al_policy_decide(s->hw->w->snap->policy, &who, &a, &v);
    bool hold = v.decision == AL_DECIDE_APPROVE && v.rule && s->hw->w->rt->approvals;
    if (v.decision != AL_DECIDE_ALLOW && !hold) {
        free(npath);
        s->rec_decision = al_decision_name(v.decision);
        s->rec_reason = v.reason;
        snprintf(s->rec_rule, sizeof s->rec_rule, "%s", v.rule ? v.rule->name : "");
        audit_refusal(s, &v);
        refuse_policy(s, &v);
        return;
    }
    if (s->secret_err) {
        free(npath);
        al_log(AL_LOG_ERROR, "upstream credential unavailable", "target", s->target->name,
               "error", s->secret_err, NULL);
        error_reason(s, 502, "bad_gateway", "the upstream credential is not available", false);
        after_refusal(s);
        return;
    }
    set_masks(s, &v);
    s->upgrading = h->upgrade;
    s->has_body = h->has_body;
    s->retried = false;
    build_upstream_head(s, h, npath, nlen, query);
    free(npath);
    s->strict = v.audit != AL_AUDIT_MODE_ASYNC;
    s->reason = v.reason;
    size_t rl = v.rule ? AL_MIN(strlen(v.rule->name), sizeof s->rule - 1) : 0;
    memcpy(s->rule, v.rule ? v.rule->name : "", rl);
    s->rule[rl] = 0;
    snprintf(s->rec_rule, sizeof s->rec_rule, "%s", s->rule);
    if (hold) {
        s->rec_decision = "pending";
        hold_request(s, v.rule);
        return;
    }
    start_exchange(s, NULL, NULL);
}

/* The request goes out: the exchange's deadline, then its decision event
 * (strict: proceed once committed). approval_id and reason are set when an
 * approval let it through. */
static void start_exchange(sess_t *s, const char *approval_id, const char *reason)
{
    s->active = true;
    s->rec_decision = "allow";
    s->rec_reason = approval_id ? "approved" : NULL;
    s->deadline = uv_now(&s->hw->w->loop) + (uint64_t)(s->target->http.request_timeout * 1000);
    tmr_arm(s, T_REQUEST);
    s->st = S_WAIT;
    al_audit_event_t ev;
    fill_event(s, &ev);
    ev.kind = AL_AUDIT_KIND_DECISION;
    ev.action = (al_str_t){s->action.p, s->action.len};
    ev.decision = "allow";
    ev.rule = s->rule[0] ? s->rule : NULL;
    ev.reason = reason ? reason : s->reason;
    ev.approval_id = approval_id;
    /* a tunnel is recorded when it opens; an approved request at once */
    s->deferred = !s->strict && !s->upgrading && !approval_id;
    if (!s->strict) { /* process_client proceeds once the head is consumed */
        if (!s->deferred)
            al_audit_submit_async(s->hw->w->rt->audit, &ev, s->decision_id);
        else
            s->decision_id[0] = 0;
        return;
    }
    pend_t *pd = al_xcalloc(1, sizeof *pd);
    pd->s = s;
    pd->hw = s->hw;
    const char *err = NULL;
    if (al_audit_submit(s->hw->w->rt->audit, &ev, on_audit_done, pd, s->decision_id, &err) !=
        AL_OK) {
        free(pd);
        audit_failed(s, err ? err : "audit queue refused the record");
        return;
    }
    s->pend = pd;
    s->audit_wait = true;
}

/* ---- upstream connection ----------------------------------------------------------------- */

/* RFC 9110 §9.2.2 */
static bool idempotent(const char *m)
{
    static const char *const ok[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
    for (size_t i = 0; i < AL_ARRAY_LEN(ok); i++)
        if (!strcmp(m, ok[i]))
            return true;
    return false;
}

/* A pooled connection can be closed by the upstream just as a request is
 * written to it. An idempotent request without a body that got no byte of
 * response is sent once more on a fresh connection (RFC 9110 §9.2.2,
 * RFC 9112 §9.3.1); anything else fails. */
static bool retry_fresh(sess_t *s)
{
    if (!s->up || !s->up->reused || s->retried || s->resp_started || s->mask_body ||
        s->has_body || s->upgrading || !s->active || !idempotent(s->method) || !s->uphead.len)
        return false;
    s->retried = true;
    up_close(s);
    s->req_done = false;
    s->st = S_WAIT;
    proceed(s);
    return true;
}

static void upstream_failed(sess_t *s, const char *why) { upstream_error(s, 502, why); }

/* The exchange failed on the upstream side: 502 (or 504 for a timeout)
 * when nothing of the response was sent yet, else the connection closes. */
static void upstream_error(sess_t *s, int status, const char *why)
{
    if (status == 502 && retry_fresh(s))
        return;
    al_log(AL_LOG_WARN, "upstream request failed", "target", s->target->name, "session",
           s->session_id, "error", why, NULL);
    up_close(s);
    if (!s->active)
        return;
    s->active = false;
    s->status = status;
    record_result(s, why);
    if (!s->resp_started)
        error_reason(s, status, status == 504 ? "gateway_timeout" : "bad_gateway", why, true);
    else
        close_when_flushed(s);
}

static void on_connected_in(uv_connect_t *c, int status)
{
    up_t *up = c->data;
    sess_t *s = up->s;
    if (s->st == S_CLOSING || up != s->up)
        return;
    if (status < 0) {
        char why[160];
        snprintf(why, sizeof why, "cannot connect to the upstream: %s", uv_strerror(status));
        upstream_failed(s, why);
        return;
    }
    up->connected = true;
    tmr_exchange(s);
    uv_tcp_nodelay(&up->tcp, 1);
    uv_read_start((uv_stream_t *)&up->tcp, on_alloc, on_up_read);
    if (s->url.https) {
        up->tls = s->ls->up_tls ? al_tls_new(s->ls->up_tls, s->up_host) : NULL;
        if (!up->tls) {
            upstream_failed(s, "cannot start TLS to the upstream");
            return;
        }
        al_buf_t tmp;
        al_buf_init(&tmp);
        al_tls_read(up->tls, &tmp); /* the ClientHello */
        al_buf_free(&tmp);
        tls_flush(s, up);
    }
    proceed(s);
}

static void on_connected(uv_connect_t *c, int status)
{
    sess_t *cs = ((up_t *)c->data)->s;
    if (!cs) {
        on_connected_in(c, status);
        return;
    }
    cork(cs);
    on_connected_in(c, status);
    uncork(cs);
}

static void connect_upstream(sess_t *s)
{
    up_t *up = al_xcalloc(1, sizeof *up);
    up->s = s;
    up->url = al_xstrdup(s->target->upstream.url);
    tmr_arm(s, T_CONNECT);
    uv_tcp_init(&s->hw->w->loop, &up->tcp);
    up->tcp.data = up;
    s->handles++;
    s->up = up;
    al_http_parser_reset(&s->resp);
    al_buf_reset(&s->uin);
    up->conn.data = up;
    if (uv_tcp_connect(&up->conn, &up->tcp, (struct sockaddr *)&s->up_addr, on_connected) != 0)
        upstream_failed(s, "cannot connect to the upstream");
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res)
{
    sess_t *s = g->data;
    s->resolving = false;
    if (s->st == S_CLOSING) {
        uv_freeaddrinfo(res);
        if (--s->handles == 0)
            sess_free(s);
        return;
    }
    s->handles--;
    if (status < 0 || !res) {
        uv_freeaddrinfo(res);
        upstream_failed(s, "cannot resolve the upstream host");
        return;
    }
    memcpy(&s->up_addr, res->ai_addr, res->ai_addrlen);
    uv_freeaddrinfo(res);
    connect_upstream(s);
}

/* Allowed and (strict) committed: connect if needed, then send the head
 * and whatever body is already here. */
static void proceed(sess_t *s)
{
    if (s->st == S_CLOSING || s->resolving)
        return;
    if (!s->up && !s->retried && (s->up = pool_take(s))) {
        al_http_parser_reset(&s->resp);
        al_buf_reset(&s->uin);
    }
    if (!s->up) {
        if (s->up_addr.ss_family) {
            connect_upstream(s);
            return;
        }
        char port[8];
        snprintf(port, sizeof port, "%d", s->url.port);
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        s->gai.data = s;
        s->handles++;
        s->resolving = true;
        if (uv_getaddrinfo(&s->hw->w->loop, &s->gai, on_resolved, s->up_host, port, &hints) !=
            0) {
            s->handles--;
            s->resolving = false;
            upstream_failed(s, "cannot resolve the upstream host");
        }
        return;
    }
    if (!s->up->connected)
        return;
    al_http_parser_set_request(&s->resp, (al_str_t){s->method, strlen(s->method)});
    up_t *sent_on = s->up;
    to_up(s, s->uphead.p, s->uphead.len);
    if (s->st == S_CLOSING || s->up != sent_on)
        return; /* the write failed: closed, or being retried */
    s->bytes_up = 0;
    if (s->has_body || s->upgrading)
        al_buf_reset(&s->uphead); /* kept for a retry otherwise (retry_fresh) */
    if (s->st == S_CLOSING)
        return;
    if (!body_pending(s) || s->upgrading) { /* no body: the request is complete */
        rec_request_push(s);
        s->req_done = true;
        s->st = S_RESPONSE;
        tmr_exchange(s);
    } else {
        if (s->expect_continue) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            to_client(s, cont, sizeof cont - 1);
        }
        s->st = S_BODY;
    }
    process_client(s);
}

/* ---- client input ------------------------------------------------------------------------ */

static void consume(al_buf_t *b, size_t n)
{
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
    b->p[b->len] = 0;
}

static void send_chunk(sess_t *s, bool upstream, bool chunked, al_str_t d)
{
    if (!d.len)
        return;
    void (*send)(sess_t *, const void *, size_t) = upstream ? to_up : to_client;
    if (chunked) {
        char hdr[24];
        int n = snprintf(hdr, sizeof hdr, "%zx\r\n", d.len);
        send(s, hdr, (size_t)n);
        send(s, d.p, d.len);
        send(s, "\r\n", 2);
    } else {
        send(s, d.p, d.len);
    }
}

static void exchange_end(sess_t *s);

/* The head of k bytes was handled: consume it and go on. Returns true
 * when the caller should parse on. */
static bool head_done(sess_t *s, size_t k)
{
    s->kid_retried = false;
    consume(&s->cin, k);
    if (s->st == S_CLOSING || s->flush_close)
        return false;
    if (s->st == S_WAIT && !s->audit_wait && !s->appr_wait) {
        proceed(s); /* async audit: forward now (proceed parses on) */
        return false;
    }
    return true;
}

static void on_kid_fetched_in(uv_async_t *a)
{
    sess_t *s = a->data;
    s->kid_waiting = false;
    uv_close((uv_handle_t *)a, handle_closed);
    if (s->st == S_CLOSING)
        return;
    s->kid_retried = true;
    on_request(s, &s->held_head);
    if (head_done(s, s->held_k))
        process_client(s);
    else if (s->st != S_CLOSING)
        update_reads(s);
}

static void on_kid_fetched(uv_async_t *a)
{
    sess_t *cs = (sess_t *)a->data;
    if (!cs) {
        on_kid_fetched_in(a);
        return;
    }
    cork(cs);
    on_kid_fetched_in(a);
    uncork(cs);
}

static void process_client(sess_t *s)
{
    if (s->st == S_TUNNEL) {
        if (s->cin.len && s->up && queued(&s->up->tcp) <= HIGH_WATER) {
            to_up(s, s->cin.p, s->cin.len);
            s->bytes_up += (int64_t)s->cin.len;
            al_buf_reset(&s->cin);
        }
        update_reads(s);
        return;
    }
    while (s->st == S_HEAD || s->st == S_BODY || s->st == S_DISCARD) {
        if (!s->cin.len || s->kid_waiting)
            break;
        if (s->st == S_BODY && s->up && queued(&s->up->tcp) > HIGH_WATER)
            break;
        al_http_msg_t m;
        ssize_t k = al_http_parse(&s->reqp, (const uint8_t *)s->cin.p, s->cin.len, &m);
        if (k < 0) {
            const char *why = al_http_err_str(s->reqp.err);
            bool was_active = s->active;
            if (s->active) {
                s->active = false;
                s->status = 400;
                record_result(s, why);
            }
            up_close(s);
            if (s->st == S_HEAD) {
                s->req_id[0] = 0;
                al_buf_reset(&s->action);
            }
            if (s->resp_started)
                close_when_flushed(s);
            else if (was_active)
                error_reason(s, 400, "bad_request", why, true);
            else
                refuse_request(s, 400, "bad_request", why, true);
            return;
        }
        if (k == 0) {
            /* Part of a head is here: it must complete within
             * header_timeout from now (not restarted by each byte). */
            if (s->st == S_HEAD && s->tmr == T_IDLE)
                tmr_arm(s, T_HEAD);
            break;
        }
        if (m.event == AL_HTTP_EV_HEAD) {
            if (s->st != S_HEAD) { /* cannot happen: one message at a time */
                sess_close(s);
                return;
            }
            /* m.head points into cin: nothing may parse on until consumed. */
            on_request(s, &m.head);
            if (s->kid_waiting) {
                s->held_head = m.head;
                s->held_k = (size_t)k;
                break;
            }
            if (!head_done(s, (size_t)k))
                return;
            continue;
        }
        /* BODY / END */
        if (s->st == S_BODY) {
            send_chunk(s, true, s->req_chunked, m.body);
            s->bytes_up += (int64_t)m.body.len;
            if (s->rec)
                rec_capture(s, &s->rq_body, &s->rq_total, m.body.p, m.body.len);
            if (m.event == AL_HTTP_EV_END) {
                rec_request_push(s);
                if (s->req_chunked)
                    to_up(s, "0\r\n\r\n", 5);
                s->req_done = true;
                s->st = S_RESPONSE;
                tmr_exchange(s);
            }
        } else if (s->st == S_DISCARD && m.event == AL_HTTP_EV_END) {
            s->st = S_HEAD;
            if (s->drain_close)
                close_when_flushed(s);
        }
        consume(&s->cin, (size_t)k);
    }
    update_reads(s);
}

static void update_reads(sess_t *s)
{
    if (s->st == S_CLOSING)
        return;
    bool want = !s->flush_close && !s->client_eof && !s->kid_waiting &&
                s->cin.len < (s->st == S_TUNNEL ? HIGH_WATER : MAX_PENDING) &&
                !(s->up && queued(&s->up->tcp) > HIGH_WATER);
    if (want && s->client_paused) {
        s->client_paused = false;
        uv_read_start((uv_stream_t *)&s->client, on_alloc, on_client_read);
    } else if (!want && !s->client_paused) {
        s->client_paused = true;
        uv_read_stop((uv_stream_t *)&s->client);
    }
    if (s->up && s->up->connected) {
        bool uwant = queued(&s->client) < HIGH_WATER;
        if (uwant && s->up_paused) {
            s->up_paused = false;
            uv_read_start((uv_stream_t *)&s->up->tcp, on_alloc, on_up_read);
        } else if (!uwant && !s->up_paused) {
            s->up_paused = true;
            uv_read_stop((uv_stream_t *)&s->up->tcp);
        }
    }
}

/* The response ended (and the request was sent whole, or cut short). */
static void exchange_end(sess_t *s)
{
    s->active = false;
    if (s->resp_chunked)
        to_client(s, "0\r\n\r\n", 5);
    /* The client has the whole response before the bookkeeping (recording
     * lines, the audit event): at one connection that work then overlaps
     * the client's handling of the response instead of delaying it. */
    if (s->corked && s->st != S_CLOSING)
        flush_client(s);
    if (s->rec) {
        rec_request_push(s);
        rec_response_push(s);
    }
    record_result(s, NULL);
    up_release(s, s->up_keep && s->req_done);
    if (s->st == S_CLOSING)
        return;
    al_buf_reset(&s->uphead);
    al_buf_reset(&s->mbody);
    s->mask_body = false;
    if (!s->client_keep || s->close_after || s->drain_close || !s->req_done) {
        close_when_flushed(s);
        return;
    }
    s->st = S_HEAD;
    s->req_id[0] = 0;
    tmr_arm(s, T_IDLE);
    process_client(s);
}

/* ---- upstream input ---------------------------------------------------------------------- */

/* The status line and end-to-end fields of a response, as the client gets
 * them: hop-by-hop fields and framing removed (RFC 9110 §7.6.1), an
 * X-Request-Id added. `strip_coding`: a body airlock decoded loses its
 * Content-Encoding, and validators that described the encoded or unmasked
 * bytes (ETag, Content-MD5, Digest) go with it. */
static void head_fields(sess_t *s, const al_http_head_t *h, al_buf_t *b, bool strip_coding)
{
    char st[8];
    al_buf_puts(b, "HTTP/1.1 ");
    al_buf_append(b, status_str(h->status, st), 3);
    al_buf_append(b, " ", 1);
    al_buf_append(b, h->reason.p, h->reason.len);
    al_buf_puts(b, "\r\n");
    bool has_rid = false;
    for (size_t i = 0; i < h->nheaders; i++) {
        al_str_t n = h->headers[i].name;
        if (hop_by_hop(h, n))
            continue;
        if (strip_coding && (name_is(n, "content-encoding") || name_is(n, "etag") ||
                             name_is(n, "content-md5") || name_is(n, "digest")))
            continue;
        has_rid |= name_is(n, "x-request-id");
        al_buf_append(b, n.p, n.len);
        al_buf_append(b, ": ", 2);
        al_buf_append(b, h->headers[i].value.p, h->headers[i].value.len);
        al_buf_append(b, "\r\n", 2);
    }
    if (!has_rid) {
        al_buf_puts(b, "X-Request-Id: ");
        buf_str(b, s->req_id);
        al_buf_puts(b, "\r\n");
    }
}

static void content_length(al_buf_t *b, int64_t n)
{
    al_buf_puts(b, "Content-Length: ");
    buf_u64(b, (uint64_t)n);
    al_buf_puts(b, "\r\n");
}

static void conn_field(sess_t *s, al_buf_t *b)
{
    if (!s->client_keep || s->drain_close || s->close_after)
        al_buf_puts(b, "Connection: close\r\n");
    else if (s->client_http10)
        al_buf_puts(b, "Connection: keep-alive\r\n");
}

/* 101 to an authorized WebSocket handshake: relay it and tunnel. */
static void tunnel_start(sess_t *s, const al_http_head_t *h)
{
    al_buf_t *b = &s->out;
    al_buf_reset(b);
    head_fields(s, h, b, false);
    al_str_t u = al_http_head_get(h, "upgrade");
    al_buf_puts(b, "Connection: Upgrade\r\nUpgrade: ");
    al_buf_append(b, u.p, u.len);
    al_buf_puts(b, "\r\n\r\n");
    if (s->rec) { /* the bytes of the tunnel that follows are not recorded */
        rec_response_head(s, h->status, b->p, b->len);
        rec_response_push(s);
    }
    to_client(s, b->p, b->len);
    al_buf_reset(b);
    s->status = h->status;
    s->resp_started = true;
    s->bytes_up = s->bytes_down = 0;
    s->st = S_TUNNEL;
    al_http_parser_tunnel(&s->reqp);
    tmr_arm(s, T_TOKEN); /* no per-request re-check in a tunnel: it ends with the token */
}

/* Content-Encoding of a body to be masked: 0 none, 1 gzip, 2 deflate, -1
 * anything else (br, zstd, compress, a list). RFC 9110 §8.4.1. */
static int body_coding(const al_http_head_t *h)
{
    al_str_t v = al_http_head_get(h, "content-encoding");
    size_t n = 0;
    for (size_t i = 0; i < h->nheaders; i++)
        n += name_is(h->headers[i].name, "content-encoding");
    if (!v.p || (n == 1 && (v.len == 0 || name_is(v, "identity"))))
        return 0;
    if (n != 1)
        return -1;
    if (name_is(v, "gzip") || name_is(v, "x-gzip"))
        return 1;
    if (name_is(v, "deflate"))
        return 2;
    return -1;
}

/* Returns false after refusing the response (masking cannot be done). */
static bool mask_prepare(sess_t *s, const al_http_head_t *h)
{
    al_str_t ct = al_http_head_get(h, "content-type");
    if (!s->n_meng || !h->has_body || !al_mask_http_maskable(ct))
        return true;
    const al_http_conf_t *hc = &s->target->http;
    const char *why = NULL;
    int coding = body_coding(h);
    if (s->mask_failed)
        why = "mask_failed: masking is not available on this worker";
    else if (h->status == 206)
        why = "mask_partial_content: a partial body cannot be masked";
    else if (coding < 0)
        why = "mask_encoding_refused: the body's Content-Encoding cannot be decoded to mask it";
    else if (coding > 0 && hc->compressed == AL_HTTP_COMPRESSED_REFUSE)
        why = "mask_encoding_refused: compressed bodies are refused (http.compressed: refuse)";
    else if (h->content_length > (int64_t)hc->max_mask_body)
        why = "mask_body_too_large: the body exceeds http.max_mask_body";
    if (why) {
        upstream_error(s, 502, why);
        return false;
    }
    s->mask_body = true;
    s->mask_coding = coding;
    if (ct.len < sizeof s->ctype)
        snprintf(s->ctype, sizeof s->ctype, "%.*s", (int)ct.len, ct.p);
    else
        snprintf(s->ctype, sizeof s->ctype, "text/plain"); /* odd: scan it as text */
    al_buf_reset(&s->mhead);
    al_buf_reset(&s->mbody);
    head_fields(s, h, &s->mhead, coding > 0);
    s->status = h->status;
    tmr_exchange(s);
    return true;
}

/* Inflates a gzip (RFC 1952) or zlib-wrapped deflate (RFC 1950, what
 * RFC 9110 §8.4.1.2 calls "deflate"; raw deflate accepted too, as sent by
 * some servers) body into out, at most cap bytes. */
static const char *inflate_body(const al_buf_t *in, int coding, size_t cap, al_buf_t *out)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        z_stream z;
        memset(&z, 0, sizeof z);
        int wbits = coding == 1 ? 15 + 16 : (attempt ? -15 : 15);
        if (inflateInit2(&z, wbits) != Z_OK)
            return "mask_failed: cannot start decompression";
        al_buf_reset(out);
        z.next_in = (Bytef *)in->p;
        z.avail_in = (uInt)in->len;
        int rc = Z_OK;
        char chunk[16384];
        while (rc == Z_OK) {
            z.next_out = (Bytef *)chunk;
            z.avail_out = sizeof chunk;
            rc = inflate(&z, Z_NO_FLUSH);
            size_t got = sizeof chunk - z.avail_out;
            if (out->len + got > cap) {
                inflateEnd(&z);
                return "mask_body_too_large: the decoded body exceeds http.max_mask_body";
            }
            al_buf_append(out, chunk, got);
            if (rc == Z_BUF_ERROR && !z.avail_in)
                break;
        }
        inflateEnd(&z);
        if (rc == Z_STREAM_END && !z.avail_in)
            return out->oom ? "mask_failed: out of memory" : NULL;
        if (rc == Z_DATA_ERROR && coding == 2 && !attempt)
            continue;
        return rc == Z_STREAM_END ? "mask_encoding_refused: bytes after the compressed body"
                                  : "mask_encoding_refused: the compressed body is damaged";
    }
    return "mask_encoding_refused: the compressed body is damaged";
}

/* The buffered body ended: decode, mask with every engine in turn, send
 * the head with the new Content-Length and the body. False after refusing. */
static bool mask_finish(sess_t *s)
{
    al_buf_t plain, a, b;
    al_buf_init(&plain);
    al_buf_init(&a);
    al_buf_init(&b);
    const char *why = NULL;
    const al_buf_t *cur = &s->mbody;
    if (s->mask_coding) {
        why = inflate_body(&s->mbody, s->mask_coding, (size_t)s->target->http.max_mask_body,
                           &plain);
        cur = &plain;
    }
    al_str_t ct = {s->ctype, strlen(s->ctype)};
    al_mask_stats_t st;
    for (size_t i = 0; !why && i < s->n_meng; i++) {
        al_buf_t *dst = cur == &a ? &b : &a;
        al_buf_reset(dst);
        memset(&st, 0, sizeof st);
        al_mask_rc_t rc = al_mask_http_body(s->meng[i], s->hw->mscr, ct, cur->p ? cur->p : "",
                                            cur->len, dst, &st);
        if (rc == AL_MASK_MASKED) {
            cur = dst;
            s->masked_values += st.values;
        } else if (rc != AL_MASK_OK) {
            why = "mask_failed: the masking engine failed";
        }
    }
    if (why) {
        al_buf_free(&plain);
        al_buf_free(&a);
        al_buf_free(&b);
        s->mask_body = false;
        upstream_error(s, 502, why);
        return false;
    }
    al_buf_t *o = &s->mhead;
    al_buf_printf(o, "Content-Length: %zu\r\n", cur->len);
    conn_field(s, o);
    al_buf_puts(o, "\r\n");
    if (s->rec) { /* the masked body, as the client gets it */
        rec_response_head(s, s->status, o->p, o->len);
        rec_capture(s, &s->rs_body, &s->rs_total, cur->p, cur->len);
    }
    to_client(s, o->p, o->len);
    to_client(s, cur->p, cur->len);
    s->bytes_down = (int64_t)cur->len;
    s->resp_started = true;
    al_buf_reset(&s->mhead);
    al_buf_reset(&s->mbody);
    al_buf_free(&plain);
    al_buf_free(&a);
    al_buf_free(&b);
    s->mask_body = false;
    return s->st != S_CLOSING;
}

static void response_head(sess_t *s, const al_http_head_t *h)
{
    s->status = h->status;
    s->up_keep = h->keep_alive && !h->close_delimited;
    if (!mask_prepare(s, h) || s->mask_body)
        return;
    al_buf_t *b = &s->out;
    al_buf_reset(b);
    head_fields(s, h, b, false);
    if (!h->has_body) {
        if (h->content_length >= 0)
            content_length(b, h->content_length);
    } else if (h->chunked || h->close_delimited) {
        if (!s->client_http10) {
            /* RFC 9112 §7: chunked for an HTTP/1.1 client; the upstream's own
             * chunk sizes and trailers are not passed through. */
            al_buf_puts(b, "Transfer-Encoding: chunked\r\n");
            s->resp_chunked = true;
        } else {
            s->close_after = true; /* HTTP/1.0: the body ends with the connection */
        }
    } else {
        content_length(b, h->content_length);
    }
    conn_field(s, b);
    al_buf_puts(b, "\r\n");
    rec_response_head(s, h->status, b->p, b->len);
    to_client(s, b->p, b->len);
    al_buf_reset(b);
    s->resp_started = true;
    tmr_exchange(s);
}

/* The response was read whole (or ended with the connection). */
static void response_done(sess_t *s)
{
    s->resp_done = true;
    if (s->mask_body && !mask_finish(s))
        return;
    if (!s->req_done) {
        /* Answered before the body was sent whole (e.g. 413): this
         * connection's framing cannot be trusted to continue. */
        s->close_after = true;
    }
    exchange_end(s);
}

static void up_feed(sess_t *s)
{
    if (s->st == S_TUNNEL) {
        if (s->uin.len && queued(&s->client) <= HIGH_WATER) {
            to_client(s, s->uin.p, s->uin.len);
            s->bytes_down += (int64_t)s->uin.len;
            al_buf_reset(&s->uin);
        }
        update_reads(s);
        return;
    }
    while (s->st != S_CLOSING && s->uin.len && s->up) {
        if (!s->active) {
            upstream_failed(s, "the upstream sent bytes with no request outstanding");
            return;
        }
        al_http_msg_t m;
        ssize_t k = al_http_parse(&s->resp, (const uint8_t *)s->uin.p, s->uin.len, &m);
        if (k < 0) {
            char why[96];
            snprintf(why, sizeof why, "bad response from the upstream: %s",
                     al_http_err_str(s->resp.err));
            upstream_failed(s, why);
            return;
        }
        if (k == 0)
            break;
        if (m.event == AL_HTTP_EV_HEAD) {
            if (m.head.status < 200 && m.head.status != 101) { /* interim: not forwarded */
                consume(&s->uin, (size_t)k);
                continue;
            }
            if (m.head.tunnel) {
                if (!s->upgrading || m.head.status != 101) {
                    upstream_failed(s, "the upstream switched protocols, which was not "
                                       "asked for");
                    return;
                }
                tunnel_start(s, &m.head);
                consume(&s->uin, (size_t)k);
                up_feed(s);          /* bytes the upstream sent after its 101 */
                if (s->st == S_TUNNEL)
                    process_client(s); /* and the client's, after its request */
                return;
            }
            if (s->upgrading)
                unhold(s); /* refused the upgrade: an ordinary response */
            response_head(s, &m.head);
        } else if (s->mask_body) {
            al_buf_append(&s->mbody, m.body.p, m.body.len);
            if (s->mbody.len > (size_t)s->target->http.max_mask_body || s->mbody.oom) {
                s->mask_body = false;
                upstream_error(s, 502, "mask_body_too_large: the body exceeds "
                                       "http.max_mask_body");
                return;
            }
        } else {
            send_chunk(s, false, s->resp_chunked, m.body);
            s->bytes_down += (int64_t)m.body.len;
            if (s->rs_pending)
                rec_capture(s, &s->rs_body, &s->rs_total, m.body.p, m.body.len);
        }
        if (s->st == S_CLOSING || !s->up)
            return;
        consume(&s->uin, (size_t)k);
        if (m.done) {
            response_done(s);
            return;
        }
    }
    update_reads(s);
}

/* The upstream closed (EOF or TLS close_notify) with the exchange active. */
static void up_eof(sess_t *s)
{
    if (s->st == S_TUNNEL) {
        to_client(s, s->uin.p, s->uin.len); /* what is left, whatever is queued */
        s->bytes_down += (int64_t)s->uin.len;
        s->active = false;
        record_result(s, NULL);
        up_close(s);
        close_when_flushed(s);
        return;
    }
    al_http_msg_t m;
    if (al_http_parser_eof(&s->resp, &m) == AL_OK && m.event == AL_HTTP_EV_END &&
        (s->resp_started || s->mask_body)) {
        s->up_keep = false;
        response_done(s);
        return;
    }
    upstream_failed(s, s->resp_started || s->mask_body ? "the upstream closed mid-response"
                                                       : "the upstream closed without a "
                                                         "response");
}

static void on_up_read_in(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    up_t *up = st->data;
    sess_t *s = up->s;
    if (!s) { /* pooled and idle: closed by the upstream, or stray bytes */
        if (n != 0)
            pool_discard(up);
        return;
    }
    if (s->st == S_CLOSING || up != s->up)
        return;
    if (n > 0) {
        al_sess_bytes(s->reg, 0, (uint64_t)n);
        s->sess_down += n;
    }
    if (n < 0) {
        if (!s->active) {
            up_close(s); /* idle keep-alive connection closed by the upstream */
            return;
        }
        if (up->tls) { /* no close_notify: a truncation attack cannot end a body */
            upstream_failed(s, "the upstream closed mid-response");
            return;
        }
        up_eof(s);
        return;
    }
    if (up->tls) {
        if (al_tls_feed(up->tls, (const uint8_t *)b->base, (size_t)n) != AL_OK) {
            upstream_failed(s, al_tls_error(up->tls));
            return;
        }
        int rc = al_tls_read(up->tls, &s->uin);
        tls_flush(s, up);
        if (s->st == S_CLOSING || up != s->up)
            return;
        if (rc == AL_ERR) {
            upstream_failed(s, al_tls_error(up->tls));
            return;
        }
        if (rc == AL_TLS_EOF) {
            up_feed(s);
            if (s->st == S_CLOSING || up != s->up)
                return;
            if (s->active)
                up_eof(s);
            else
                up_close(s);
            return;
        }
    } else {
        al_buf_append(&s->uin, b->base, (size_t)n);
    }
    if (s->uin.oom) {
        upstream_failed(s, "out of memory");
        return;
    }
    up_feed(s);
}

static void on_up_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    sess_t *cs = ((up_t *)st->data)->s;
    if (!cs) {
        on_up_read_in(st, n, b);
        return;
    }
    cork(cs);
    on_up_read_in(st, n, b);
    uncork(cs);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    AL_UNUSED(h);
    AL_UNUSED(hint);
    static _Thread_local char chunk[READ_CHUNK];
    *b = uv_buf_init(chunk, sizeof chunk);
}

static void on_client_read_in(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    sess_t *s = st->data;
    if (s->st == S_CLOSING)
        return;
    if (n > 0) {
        al_sess_bytes(s->reg, (uint64_t)n, 0);
        s->sess_up += n;
    }
    if (n < 0) {
        if (s->st == S_TUNNEL) {
            to_up(s, s->cin.p, s->cin.len);
            s->bytes_up += (int64_t)s->cin.len;
            al_buf_reset(&s->cin);
            s->active = false;
            record_result(s, NULL);
            sess_close(s);
            return;
        }
        if (s->active && (s->st == S_RESPONSE || (s->st == S_WAIT && !body_pending(s)))) {
            /* Half-close after a complete request: finish the response. */
            s->client_keep = false;
            s->client_eof = true;
            if (!s->client_paused) {
                s->client_paused = true;
                uv_read_stop((uv_stream_t *)&s->client);
            }
            return;
        }
        sess_close(s);
        return;
    }
    if (s->ctls) {
        if (al_tls_feed(s->ctls, (const uint8_t *)b->base, (size_t)n) != AL_OK) {
            sess_close(s);
            return;
        }
        int rc = al_tls_read(s->ctls, &s->cin);
        tls_flush(s, NULL);
        if (s->st == S_CLOSING)
            return;
        if (rc == AL_ERR || rc == AL_TLS_EOF) {
            if (rc == AL_ERR)
                al_log(AL_LOG_DEBUG, "client TLS failed", "session", s->session_id, "error",
                       al_tls_error(s->ctls), NULL);
            sess_close(s);
            return;
        }
    } else {
        al_buf_append(&s->cin, b->base, (size_t)n);
    }
    if (s->cin.oom) {
        sess_close(s);
        return;
    }
    process_client(s);
}

static void on_client_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    sess_t *cs = (sess_t *)st->data;
    if (!cs) {
        on_client_read_in(st, n, b);
        return;
    }
    cork(cs);
    on_client_read_in(st, n, b);
    uncork(cs);
}

/* ---- accept ------------------------------------------------------------------------------ */

/* Reads the configured header secrets (per connection, like pg reads its
 * password per session). A value must be a valid field value (RFC 9110
 * §5.5) with no CR or LF, or it could inject header lines. */
static void load_secrets(sess_t *s)
{
    const al_upstream_conf_t *u = &s->target->upstream;
    s->secrets = al_xcalloc(u->n_headers ? u->n_headers : 1, sizeof *s->secrets);
    s->n_secrets = u->n_headers;
    for (size_t i = 0; i < u->n_headers; i++) {
        const al_http_header_conf_t *h = &u->headers[i];
        char *v = NULL;
        size_t len = 0;
        if (h->env) {
            const char *e = getenv(h->env);
            if (!e) {
                s->secret_err = "an upstream.headers environment variable is not set";
                return;
            }
            v = al_xstrdup(e);
            len = strlen(v);
        } else if (al_read_file(h->file, MAX_SECRET, &v, &len) != AL_OK) {
            s->secret_err = "an upstream.headers file cannot be read";
            return;
        }
        while (len && (v[len - 1] == '\n' || v[len - 1] == '\r'))
            v[--len] = 0;
        s->secrets[i] = v;
        for (size_t k = 0; k < len; k++) {
            unsigned char c = (unsigned char)v[k];
            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                s->secret_err = "an upstream.headers value holds a control character";
                return;
            }
        }
        if (strlen(v) != len) {
            s->secret_err = "an upstream.headers value holds a NUL byte";
            return;
        }
    }
}

static void http_kill(void *arg, const char *reason)
{
    sess_t *s = arg;
    s->close_reason = !strcmp(reason, AL_SESS_REVOKED) ? "agent access revoked"
                                                       : "killed by an administrator";
    sess_close(s);
}

static void on_connection(uv_stream_t *srv, int status)
{
    listener_t *l = srv->data;
    hw_t *hw = l->hw;
    if (status < 0 || hw->draining)
        return;
    sess_t *s = al_xcalloc(1, sizeof *s);
    s->hw = hw;
    s->ls = l;
    s->snap = al_snapshot_ref(hw->w->snap);
    s->target = al_config_target(s->snap->cfg, l->target);
    uv_tcp_init(&hw->w->loop, &s->client);
    s->client.data = s;
    s->handles = 1; /* the client handle */
    al_buf_init(&s->cin);
    al_buf_init(&s->uin);
    al_buf_init(&s->out);
    al_buf_init(&s->tls_scratch);
    al_buf_init(&s->ck_cl);
    al_buf_init(&s->ck_up);
    al_buf_init(&s->up_fixed);
    al_buf_init(&s->action);
    al_buf_init(&s->uphead);
    al_buf_init(&s->mhead);
    al_buf_init(&s->mbody);
    al_http_limits_t lim = al_http_limits_default();
    if (s->target && s->target->protocol == AL_PROTO_HTTP) {
        const al_http_conf_t *hc = &s->target->http;
        lim.max_start_line = (size_t)hc->max_request_line;
        lim.max_head = (size_t)hc->max_header_bytes;
        lim.max_headers = (size_t)hc->max_headers;
    }
    al_http_parser_init(&s->reqp, AL_HTTP_REQUEST, &lim, s->rq_hdrs, MAX_HEADERS);
    al_http_parser_init(&s->resp, AL_HTTP_RESPONSE, NULL, s->rs_hdrs, MAX_HEADERS);
    al_audit_uuid7((int64_t)(al_now() * 1e6), s->session_id);
    s->next = hw->sessions;
    if (hw->sessions)
        hw->sessions->pprev = &s->next;
    s->pprev = &hw->sessions;
    hw->sessions = s;
    hw->w->active++;
    hw->n_sessions++;
    if (uv_accept(srv, (uv_stream_t *)&s->client) != 0) {
        sess_close(s);
        return;
    }
    uv_tcp_nodelay(&s->client, 1);
    char peer[64];
    al_sess_peer_name(&s->client, peer, sizeof peer);
    s->reg = al_sess_start(hw->w, &(al_sess_info_t){.id = s->session_id, .protocol = "http",
                                                    .target = l->target, .client = peer,
                                                    .kill = http_kill, .sess = s});
    s->rec = al_rec_open(hw->w->rt->recorder, hw->w->id,
                         &(al_rec_meta_t){.session_id = s->session_id, .protocol = "http",
                                          .target = l->target, .client = peer});
    struct sockaddr_storage pa;
    int pl = sizeof pa;
    if (uv_tcp_getpeername(&s->client, (struct sockaddr *)&pa, &pl) == 0) {
        s->peer_v6 = pa.ss_family == AF_INET6;
        if (s->peer_v6)
            uv_ip6_name((struct sockaddr_in6 *)&pa, s->peer, sizeof s->peer);
        else
            uv_ip4_name((struct sockaddr_in *)&pa, s->peer, sizeof s->peer);
    } else {
        snprintf(s->peer, sizeof s->peer, "unknown");
    }
    if (l->tls && !(s->ctls = al_tls_new(l->tls, NULL))) {
        sess_close(s);
        return;
    }
    if (!s->target || s->target->protocol != AL_PROTO_HTTP || !s->target->upstream.url ||
        al_config_http_url(s->target->upstream.url, &s->url)) {
        error_reason(s, 502, "bad_gateway", "this listener's target is no longer configured",
                     true);
        return;
    }
    s->up_host = al_xstrndup(s->url.host.p, s->url.host.len);
    s->counted = true;
    if (atomic_fetch_add(l->count, 1) >= s->target->max_connections) {
        error_reason(s, 503, "too_many_connections", "targets[].max_connections", true);
        return;
    }
    load_secrets(s);
    uv_timer_init(&hw->w->loop, &s->idle);
    s->idle.data = s;
    s->idle_inited = true;
    s->handles++;
    tmr_arm(s, T_HEAD);
    uv_read_start((uv_stream_t *)&s->client, on_alloc, on_client_read);
}

/* ---- listeners --------------------------------------------------------------------------- */

static bool is_http_listener(const al_target_conf_t *tc)
{
    return tc->listen && tc->protocol == AL_PROTO_HTTP;
}

static bool http_up_tls(const al_target_conf_t *t, const char **ca, bool *verify)
{
    al_http_url_t u;
    *ca = t->upstream.ca_file;
    *verify = true; /* https upstreams are always verified */
    return t->upstream.url && !al_config_http_url(t->upstream.url, &u) && u.https;
}

static const al_listen_spec_t http_spec = {"http", is_http_listener, http_up_tls};

int al_http_listen_all(al_runtime_t *rt)
{
    return al_runtime_listen(rt, &http_spec, offsetof(al_worker_t, http_ls));
}

void al_http_listen_close(al_runtime_t *rt)
{
    al_runtime_listen_close(rt, offsetof(al_worker_t, http_ls));
}

int al_http_worker_start(al_worker_t *w)
{
    hw_t *hw = al_xcalloc(1, sizeof *hw);
    hw->w = w;
    w->http = hw;
    pthread_mutex_init(&hw->lock, NULL);
    uv_timer_init(&w->loop, &hw->sweep);
    hw->sweep.data = hw;
    uv_async_init(&w->loop, &hw->audit_async, on_audit_async);
    hw->audit_async.data = hw;
    hw->ls = al_xcalloc(w->http_ls.n ? w->http_ls.n : 1, sizeof *hw->ls);
    for (size_t k = 0; k < w->http_ls.n; k++) {
        listener_t *l = &hw->ls[k];
        al_listen_slot_t *sl = &w->http_ls.slots[k];
        l->hw = hw;
        l->target = sl->target;
        l->tls = sl->tls;
        l->up_tls = sl->up_tls;
        l->count = sl->count;
        l->open = true;
        hw->n_ls++;
        if (al_listen_start(&w->loop, &l->tcp, l, sl, on_connection) != AL_OK)
            return AL_ERR;
    }
    return AL_OK;
}

void al_http_worker_drain(al_worker_t *w, bool force)
{
    hw_t *hw = w->http;
    if (!hw)
        return;
    hw->draining = true;
    for (size_t k = 0; k < hw->n_ls; k++) {
        al_listen_stop(&hw->ls[k].tcp, &hw->ls[k].open);
        while (hw->ls[k].pool)
            pool_discard(hw->ls[k].pool);
    }
    if (!uv_is_closing((uv_handle_t *)&hw->sweep))
        uv_close((uv_handle_t *)&hw->sweep, NULL);
    for (sess_t *s = hw->sessions, *n; s; s = n) {
        n = s->next;
        s->drain_close = true;
        if (force || (s->st == S_HEAD && !s->active && !s->cin.len))
            sess_close(s);
    }
    if (!hw->n_sessions && !hw->closed) {
        pthread_mutex_lock(&hw->lock);
        hw->closed = true;
        pthread_mutex_unlock(&hw->lock);
        uv_close((uv_handle_t *)&hw->audit_async, NULL);
    }
}

void al_http_worker_free(al_worker_t *w)
{
    hw_t *hw = w->http;
    if (!hw)
        return;
    for (pend_t *pd = hw->done, *n; pd; pd = n) {
        n = pd->next;
        free(pd);
    }
    pthread_mutex_destroy(&hw->lock);
    al_mask_scratch_free(&hw->mscr);
    free(hw->ls);
    free(hw);
    w->http = NULL;
}
