/*
 * tcp_gateway.c - CONNECT tunnels: agent <-> airlock <-> one TCP upstream.
 *
 * Per client connection (one worker loop, no locks on the data path):
 *
 *   HEAD     TLS first when the listener requires it, then one request head
 *            read by the strict HTTP parser (http_parser.h, request mode).
 *            Only CONNECT is accepted (405). Then, in order: the bearer
 *            token in Proxy-Authorization (407), the requested host:port
 *            among the target's `upstreams` (403 connect_target_not_allowed),
 *            policy as an HTTP request with method CONNECT (403).
 *   VERIFY   waiting, once, for a JWKS refetch after an unknown kid.
 *   AUDIT    strict: the decision event commits before a byte goes out.
 *   CONNECT  resolve and connect, bounded by upstream.connect_timeout
 *            (502 when it fails, 504 when it takes too long).
 *   TUNNEL   `200 Connection established`, then bytes both ways untouched.
 *            Bytes the client sent after the head (pipelined) go first.
 *            A reader pauses while the other side's write queue is above
 *            HIGH_WATER. An EOF from one side half-closes the other once
 *            its queued writes are out; the session ends when both
 *            directions have ended, on an error, or when the identity timer
 *            finds the token expired (plus session_grace) or no longer
 *            valid under a reloaded config.
 *
 * Every refusal is answered in HTTP with a stable reason and audited. An
 * allowed tunnel has a `decision` event ("CONNECT host:port") and, when it
 * ends, a `result` event with its duration, bytes each way and why it
 * ended. Refusals end the connection: the answer is written, the write
 * side shut down, and what the client still sends is read and dropped for
 * a moment (a lingering close), so a client that pipelined bytes after
 * its head reads the answer instead of a reset.
 */
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "audit/audit.h"
#include "net/listen.h"
#include "net/tls.h"
#include "net/write.h"
#include "policy/policy.h"
#include "proto/http/http_parser.h"
#include "proto/tcp/tcp_connect.h"
#include "proto/tcp/tcp_gateway.h"
#include "record/record.h"
#include "runtime/sessions.h"

#define READ_CHUNK (64 * 1024)
#define HIGH_WATER (1024 * 1024)  /* pause the producer above this much queued */
#define MAX_PENDING (256 * 1024)  /* client bytes held until the tunnel opens */
#define MAX_HEADERS 50
#define MAX_HEAD (16 * 1024)      /* before authentication: tighter than HTTP's 64 KiB */
#define RECHECK_MS 5000           /* identity re-check period (reloads, inventory) */
#define LINGER_MS 2000            /* reading and dropping after a refusal */
#define DEFAULT_CONNECT_TIMEOUT 5.0

enum { TO_CLIENT = 0, TO_UP = 1 };

typedef struct tcp_worker tw_t;
typedef struct sess sess_t;

typedef struct listener {
    uv_tcp_t tcp;
    tw_t *tw;
    char *target;       /* looked up in the current snapshot per accept */
    al_tls_ctx_t *tls;  /* server context (NULL for tls: off); shared, read-only */
    _Atomic int *count; /* the target's sessions across all workers */
    bool open;
} listener_t;

/* A strict audit submission in flight; `s` cleared if the session goes. */
typedef struct pend {
    sess_t *s;
    tw_t *tw;
    int rc;
    char err[AL_AUDIT_ERR_SIZE];
    struct pend *next;
} pend_t;

struct tcp_worker {
    al_worker_t *w;
    listener_t *ls;
    size_t n_ls;
    uv_async_t audit_async;
    pthread_mutex_t lock;
    pend_t *done; /* strict audit completions from the writer thread */
    bool closed;
    sess_t *sessions;
    size_t n_sessions;
    bool draining;
};

typedef enum st {
    S_HEAD = 0,
    S_VERIFY,
    S_AUDIT,
    S_CONNECT,
    S_TUNNEL,
    S_CLOSING,
} st_t;

struct sess {
    tw_t *tw;
    al_sess_t *reg;      /* the session registry's entry (runtime/sessions.h) */
    al_snapshot_t *snap; /* the snapshot the decision was taken under */
    const al_target_conf_t *target; /* in snap */
    const listener_t *ls;
    uv_tcp_t client;
    uv_tcp_t up;
    uv_connect_t conn;
    uv_getaddrinfo_t gai;
    uv_timer_t phase;    /* auth_timeout, then connect_timeout, then the linger */
    uv_timer_t ident;    /* token expiry and the periodic identity re-check */
    uv_shutdown_t c_shut, u_shut;
    uv_async_t kid_wait; /* RFC 7517 §5: waiting for a JWKS refetch, once */
    int handles;         /* open handles and the resolver request; free at 0 */
    st_t st;
    bool timers_inited, up_inited, up_connected, resolving;
    bool client_paused, up_paused;
    bool flush_close;    /* refused: answer written, lingering, then closed */
    bool c_eof, u_eof, c_shut_sent, u_shut_sent, c_shut_done, u_shut_done;
    bool kid_waiting, kid_retried;
    al_jwks_entry_t *kid_entry;
    char session_id[AL_AUDIT_ID_SIZE];
    al_tls_t *ctls;
    al_buf_t cin;        /* client plaintext: the head, then bytes for the upstream */
    al_buf_t out;        /* scratch for the answers airlock writes */
    al_buf_t tls_scratch;
    al_buf_t action;     /* "CONNECT host:port" (or "METHOD /path" for a 405) */
    al_http_parser_t reqp;
    al_http_header_t hdrs[MAX_HEADERS];
    char *authority;     /* the requested host:port; owned */
    char *token;         /* the agent's token, kept for re-checks; wiped, owned */
    size_t token_len;
    al_principal_t *principal;
    uint64_t verified_gen;
    const char *entry;   /* the matched `upstreams` entry (in snap) */
    bool opened;         /* an allowed decision was audited: a result follows */
    const char *first_close; /* "client_closed" / "upstream_closed" */
    uint64_t t0;
    int64_t bytes_up, bytes_down;
    char decision_id[AL_AUDIT_ID_SIZE];
    char rule[128];
    pend_t *pend;
    bool counted;
    bool rec_identified;
    al_rec_t *rec;       /* recording: the CONNECT line and the close (record/record.h) */
    sess_t *next, **pprev;
};

static void sess_close(sess_t *s);
static void end_session(sess_t *s, const char *reason, const char *error);
static void update_reads(sess_t *s);
static void process_client(sess_t *s);
static void decide(sess_t *s);
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b);
static void on_client_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b);
static void on_up_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b);

/* ---- writes ------------------------------------------------------------------------------ */

static size_t queued(uv_tcp_t *t) { return uv_stream_get_write_queue_size((uv_stream_t *)t); }

static void on_write(uv_write_t *r, int status)
{
    al_wreq_t *w = (al_wreq_t *)r;
    sess_t *s = w->owner;
    uintptr_t dir = w->tag;
    free(w);
    if (s->st == S_CLOSING)
        return;
    if (status < 0) {
        if (s->flush_close) {
            if (dir == TO_CLIENT)
                sess_close(s);
            return;
        }
        end_session(s, dir == TO_UP ? "upstream_error" : "client_error", uv_strerror(status));
        return;
    }
    update_reads(s);
}

static void raw_send(sess_t *s, int dir, const void *p, size_t n)
{
    if (!n || s->st == S_CLOSING || (dir == TO_UP && !s->up_connected))
        return;
    uv_stream_t *dst = dir == TO_UP ? (uv_stream_t *)&s->up : (uv_stream_t *)&s->client;
    if (al_stream_write(dst, p, n, on_write, s, (uintptr_t)dir) != AL_OK)
        end_session(s, dir == TO_UP ? "upstream_error" : "client_error", "write failed");
}

static void tls_flush(sess_t *s)
{
    al_buf_t *o = &s->tls_scratch;
    al_buf_reset(o);
    if (s->ctls && al_tls_pending_out(s->ctls, o) == AL_OK && o->len)
        raw_send(s, TO_CLIENT, o->p, o->len);
    al_buf_reset(o);
}

static void to_client(sess_t *s, const void *p, size_t n)
{
    if (!s->ctls) {
        raw_send(s, TO_CLIENT, p, n);
        return;
    }
    if (!n || s->st == S_CLOSING)
        return;
    if (al_tls_write(s->ctls, p, n) != AL_OK) {
        al_log(AL_LOG_DEBUG, "TLS write to the client failed", "session", s->session_id,
               "error", al_tls_error(s->ctls), NULL);
        end_session(s, "client_error", "TLS write failed");
        return;
    }
    tls_flush(s);
}

static void to_up(sess_t *s, const void *p, size_t n)
{
    s->bytes_up += (int64_t)n;
    al_sess_bytes(s->reg, (uint64_t)n, 0);
    raw_send(s, TO_UP, p, n);
}

/* ---- session lifetime -------------------------------------------------------------------- */

static void drained(tw_t *tw)
{
    if (!tw->closed) {
        pthread_mutex_lock(&tw->lock);
        tw->closed = true;
        pthread_mutex_unlock(&tw->lock);
        uv_close((uv_handle_t *)&tw->audit_async, NULL);
    }
    if (!tw->w->active && !uv_is_closing((uv_handle_t *)&tw->w->wake))
        uv_close((uv_handle_t *)&tw->w->wake, NULL);
}

static void sess_free(sess_t *s)
{
    al_buf_free(&s->cin);
    al_buf_free(&s->out);
    al_buf_free(&s->tls_scratch);
    al_buf_free(&s->action);
    al_tls_free(&s->ctls);
    if (s->token) {
        al_wipe(s->token, s->token_len);
        al_free(&s->token);
    }
    al_free(&s->authority);
    al_principal_unref(&s->principal);
    al_snapshot_unref(&s->snap);
    tw_t *tw = s->tw;
    if (s->counted)
        atomic_fetch_sub(s->ls->count, 1);
    free(s);
    tw->w->active--;
    tw->n_sessions--;
    if (tw->draining && !tw->n_sessions)
        drained(tw);
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
        uv_close(h, handle_closed);
    }
}

static void kid_wake(void *arg) { uv_async_send(arg); }

static void sess_close(sess_t *s)
{
    if (s->st == S_CLOSING)
        return;
    s->st = S_CLOSING;
    al_rec_close(s->rec, &(al_rec_end_info_t){.reason = "connection closed",
                                              .bytes_up = s->bytes_up,
                                              .bytes_down = s->bytes_down});
    s->rec = NULL;
    al_sess_end(&s->reg);
    if (s->pend) {
        s->pend->s = NULL;
        s->pend = NULL;
    }
    if (s->next)
        s->next->pprev = s->pprev;
    *s->pprev = s->next;
    s->handles++; /* guard while closing the rest */
    close_handle(s, (uv_handle_t *)&s->client); /* counted since accept */
    if (s->up_inited)
        close_handle(s, (uv_handle_t *)&s->up);
    if (s->timers_inited) {
        close_handle(s, (uv_handle_t *)&s->phase);
        close_handle(s, (uv_handle_t *)&s->ident);
    }
    if (s->kid_waiting) {
        al_jwks_entry_cancel_wait(s->kid_entry, kid_wake, &s->kid_wait);
        s->kid_waiting = false;
        close_handle(s, (uv_handle_t *)&s->kid_wait);
    }
    if (--s->handles == 0)
        sess_free(s);
}

/* ---- audit ------------------------------------------------------------------------------- */

static void fill_event(sess_t *s, al_audit_event_t *ev, const char *kind)
{
    al_audit_event_init(ev);
    ev->kind = kind;
    ev->session_id = s->session_id;
    ev->protocol = "tcp";
    ev->target = s->target ? s->target->name : s->ls->target;
    ev->action = (al_str_t){s->action.p, s->action.len};
    const al_principal_t *p = s->principal;
    if (p) {
        ev->agent = p->agent;
        ev->subject = p->sub;
        ev->issuer = p->iss;
        ev->groups = p->groups;
        ev->n_groups = p->n_groups;
    }
}

/* An asynchronous event for a refusal (no tunnel follows). */
static void audit_refusal(sess_t *s, const char *kind, const char *decision, const char *rule,
                          const char *reason, const char *status)
{
    al_audit_event_t ev;
    fill_event(s, &ev, kind);
    ev.decision = decision;
    ev.rule = rule;
    ev.reason = reason;
    ev.status = status;
    al_audit_submit_async(s->tw->w->rt->audit, &ev, NULL);
}

/* The RESULT of an allowed tunnel, once: why it ended, how long it ran,
 * the bytes each way. decision: "ok" (a peer ended it), "error" (a socket
 * or upstream failure) or "terminated" (airlock ended it: token expired,
 * identity no longer valid, drain, kill). */
static void record_result(sess_t *s, const char *decision, const char *reason,
                          const char *error, const char *status)
{
    if (!s->opened)
        return;
    s->opened = false;
    al_audit_event_t ev;
    fill_event(s, &ev, AL_AUDIT_KIND_RESULT);
    ev.ref_id = s->decision_id;
    ev.decision = decision;
    ev.rule = s->rule[0] ? s->rule : NULL;
    ev.reason = reason;
    ev.error = error;
    ev.status = status;
    ev.duration_us = (int64_t)((al_mono_ns() - s->t0) / 1000);
    ev.bytes_up = s->bytes_up;
    ev.bytes_down = s->bytes_down;
    al_audit_submit_async(s->tw->w->rt->audit, &ev, NULL);
}

/* Ends the session now (no lingering); an opened tunnel's result is
 * recorded. reason: "client_closed" / "upstream_closed" (a peer ended it),
 * "client_error" / "upstream_error" with error set, or a code for airlock
 * ending it ("token_expired", an identity reason, "drain", a kill reason). */
static void end_session(sess_t *s, const char *reason, const char *error)
{
    if (s->st == S_CLOSING)
        return;
    bool peer = !strcmp(reason, "client_closed") || !strcmp(reason, "upstream_closed");
    const char *decision = peer ? "ok" : error ? "error" : "terminated";
    record_result(s, decision, reason, error, s->st == S_TUNNEL ? "200" : NULL);
    if (!peer && !error)
        al_log(AL_LOG_INFO, "tunnel closed by airlock", "session", s->session_id, "target",
               s->target ? s->target->name : s->ls->target, "agent",
               s->principal && s->principal->agent ? s->principal->agent : "", "reason",
               reason, NULL);
    sess_close(s);
}

/* ---- answers airlock writes itself ------------------------------------------------------- */

static const char *status_text(int st)
{
    switch (st) {
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 405: return "Method Not Allowed";
    case 407: return "Proxy Authentication Required";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Error";
    }
}

static void on_phase(uv_timer_t *t);

static void on_linger_shut(uv_shutdown_t *r, int status)
{
    sess_t *s = r->data;
    if (s->st != S_CLOSING && status < 0)
        sess_close(s);
}

/* After a refusal: everything queued goes out, then FIN; what the client
 * still sends is dropped until its EOF or LINGER_MS (RFC 9112 §9.6: a
 * server closing with unread input risks a reset that destroys the
 * answer before the client reads it). */
static void linger(sess_t *s)
{
    if (s->st == S_CLOSING || s->flush_close)
        return;
    s->flush_close = true;
    if (s->timers_inited)
        uv_timer_stop(&s->ident);
    if (s->up_inited)
        close_handle(s, (uv_handle_t *)&s->up);
    s->up_connected = false;
    if (s->ctls) {
        al_tls_shutdown(s->ctls);
        tls_flush(s);
        if (s->st == S_CLOSING)
            return;
    }
    s->c_shut.data = s;
    if (!s->timers_inited ||
        uv_shutdown(&s->c_shut, (uv_stream_t *)&s->client, on_linger_shut) != 0) {
        sess_close(s);
        return;
    }
    s->c_shut_sent = true;
    uv_timer_start(&s->phase, on_phase, LINGER_MS, 0);
    update_reads(s);
}

/* A JSON answer, then the connection ends. extra: header lines (CRLF
 * terminated) or NULL. */
static void respond(sess_t *s, int status, const char *extra, const al_buf_t *json)
{
    if (s->st == S_CLOSING || s->flush_close)
        return;
    al_buf_t *b = &s->out;
    al_buf_reset(b);
    al_buf_printf(b, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nCache-Control: no-store\r\nConnection: close\r\n"
                     "%s\r\n",
                  status, status_text(status), json->len, extra ? extra : "");
    al_buf_append(b, json->p, json->len);
    to_client(s, b->p, b->len);
    al_buf_reset(b);
    linger(s);
}

/* {"error": code, "reason": reason} */
static void respond_reason(sess_t *s, int status, const char *extra, const char *code,
                           const char *reason)
{
    al_buf_t j;
    al_buf_init(&j);
    al_buf_puts(&j, "{\"error\":");
    al_buf_json_str(&j, code, strlen(code));
    al_buf_puts(&j, ",\"reason\":");
    al_buf_json_str(&j, reason, strlen(reason));
    al_buf_puts(&j, "}");
    respond(s, status, extra, &j);
    al_buf_free(&j);
}

/* {"error": error, "rule": rule|null, "message": message, "reason": reason} */
static void rec_tunnel(sess_t *s, const char *decision, const char *rule, const char *reason)
{
    al_buf_t *b = al_rec_begin(s->rec, "tunnel");
    if (!b)
        return;
    al_rec_cstr(b, "upstream", s->authority);
    al_rec_cstr(b, "decision", decision);
    if (rule)
        al_rec_cstr(b, "rule", rule);
    if (reason)
        al_rec_cstr(b, "reason", reason);
    al_rec_end(s->rec);
}

static void respond_denied(sess_t *s, const char *error, const char *rule, const char *message,
                           const char *reason)
{
    rec_tunnel(s, "deny", rule, reason);
    al_buf_t j;
    al_buf_init(&j);
    al_buf_puts(&j, "{\"error\":");
    al_buf_json_str(&j, error, strlen(error));
    al_buf_puts(&j, ",\"rule\":");
    if (rule)
        al_buf_json_str(&j, rule, strlen(rule));
    else
        al_buf_puts(&j, "null");
    al_buf_puts(&j, ",\"message\":");
    if (message)
        al_buf_json_str(&j, message, strlen(message));
    else
        al_buf_puts(&j, "null");
    al_buf_puts(&j, ",\"reason\":");
    al_buf_json_str(&j, reason, strlen(reason));
    al_buf_puts(&j, "}");
    respond(s, 403, NULL, &j);
    al_buf_free(&j);
}

/* RFC 9110 §15.5.8 and §11.7.1: 407 with a Proxy-Authenticate challenge,
 * in RFC 6750 §3 syntax. Every refusal carries error="invalid_token" and
 * the reason code, a missing credential too ("missing_token"): a proxy
 * client has no other way to tell the cases apart. */
static void proxy_auth_refused(sess_t *s, const char *reason, const char *detail)
{
    audit_refusal(s, AL_AUDIT_KIND_AUTH, "deny", NULL, reason, "407");
    char hdr[192];
    snprintf(hdr, sizeof hdr,
             "Proxy-Authenticate: Bearer error=\"invalid_token\", error_description=\"%s\"\r\n",
             reason);
    al_buf_t j;
    al_buf_init(&j);
    al_buf_puts(&j, "{\"error\":\"unauthorized\",\"reason\":");
    al_buf_json_str(&j, reason, strlen(reason));
    if (detail) {
        al_buf_puts(&j, ",\"detail\":");
        al_buf_json_str(&j, detail, strlen(detail));
    }
    al_buf_puts(&j, "}");
    respond(s, 407, hdr, &j);
    al_buf_free(&j);
}

/* ---- identity ---------------------------------------------------------------------------- */

static void on_ident(uv_timer_t *t);

/* The session ends with the token (plus the target's session_grace); in
 * between, every RECHECK_MS, a reloaded config verifies the token again
 * (through the worker's verified-token cache) so an agent removed from the
 * inventory, a dropped issuer or a revoked identity closes the tunnel. */
static void ident_schedule(sess_t *s)
{
    double left = s->principal->exp + s->target->session_grace - al_now();
    uint64_t ms = left > 0 ? (uint64_t)(left * 1000) + 1 : 0;
    uv_timer_start(&s->ident, on_ident, AL_MIN(ms, (uint64_t)RECHECK_MS), 0);
}

static void on_ident(uv_timer_t *t)
{
    sess_t *s = t->data;
    if (s->st == S_CLOSING || s->flush_close || !s->principal)
        return;
    double now = al_now();
    double deadline = s->principal->exp + s->target->session_grace;
    if (now >= deadline) {
        end_session(s, "token_expired", NULL);
        return;
    }
    al_worker_t *w = s->tw->w;
    if (w->snap->gen != s->verified_gen) {
        al_principal_t *p = NULL;
        al_verify_info_t info;
        memset(&info, 0, sizeof info);
        al_tok_status_t st = al_worker_verify(w, s->token, s->token_len, now, &p, &info);
        if (st == AL_TOK_OK) {
            al_principal_unref(&s->principal);
            s->principal = p;
        } else if (st != AL_TOK_EXPIRED) {
            end_session(s, al_tok_reason(st), NULL);
            return;
        }
        s->verified_gen = w->snap->gen;
    }
    ident_schedule(s);
}

static void on_kid_fetched(uv_async_t *a);

/* Verifies s->token; on success goes on to the decision. */
static void verify_token(sess_t *s)
{
    al_worker_t *w = s->tw->w;
    al_principal_t *p = NULL;
    al_verify_info_t info;
    memset(&info, 0, sizeof info);
    al_tok_status_t st = al_worker_verify(w, s->token, s->token_len, al_now(), &p, &info);
    if (st == AL_TOK_UNKNOWN_KID && info.refetch && !s->kid_retried &&
        uv_async_init(&w->loop, &s->kid_wait, on_kid_fetched) == 0) {
        /* RFC 7517 §5: the issuer may have rotated; wait for the
         * rate-limited refetch once, then verify again. */
        s->kid_wait.data = s;
        s->handles++;
        s->kid_waiting = true;
        s->kid_entry = info.refetch;
        s->st = S_VERIFY;
        if (al_jwks_entry_on_fetched(info.refetch, info.refetch_ticket, kid_wake, &s->kid_wait))
            uv_async_send(&s->kid_wait);
        return;
    }
    if (st != AL_TOK_OK) {
        proxy_auth_refused(s, al_tok_reason(st), info.detail);
        return;
    }
    s->principal = p;
    s->verified_gen = w->snap->gen;
    al_sess_identify(s->reg, p);
    if (!s->rec_identified) {
        al_rec_identify(s->rec, &(al_rec_who_t){p->agent, p->sub, p->iss});
        s->rec_identified = true;
    }
    al_sess_action(s->reg);
    decide(s);
}

static void on_kid_fetched(uv_async_t *a)
{
    sess_t *s = a->data;
    s->kid_waiting = false;
    close_handle(s, (uv_handle_t *)a);
    if (s->st != S_VERIFY || s->flush_close)
        return;
    s->kid_retried = true;
    verify_token(s);
}

/* ---- upstream ---------------------------------------------------------------------------- */

/* A tunnel that was allowed could not be opened: 502 or 504. */
static void upstream_failed(sess_t *s, int status, const char *reason, const char *why)
{
    al_log(AL_LOG_WARN, "CONNECT upstream failed", "target", s->target->name, "session",
           s->session_id, "upstream", s->entry, "error", why, NULL);
    char st[8];
    snprintf(st, sizeof st, "%d", status);
    record_result(s, "error", reason, why, st);
    respond_reason(s, status, NULL, status == 504 ? "gateway_timeout" : "bad_gateway", why);
}

static void open_tunnel(sess_t *s)
{
    static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
    s->st = S_TUNNEL;
    to_client(s, ok, sizeof ok - 1);
    if (s->st == S_CLOSING)
        return;
    al_log(AL_LOG_DEBUG, "tunnel open", "session", s->session_id, "target", s->target->name,
           "upstream", s->entry, NULL);
    process_client(s); /* the bytes that came after the head */
}

static void on_u_shut(uv_shutdown_t *r, int status);

/* The client's input ended: the upstream's write side follows once what is
 * queued for it is out (libuv's shutdown waits for queued writes). */
static void half_close_up(sess_t *s)
{
    if (s->u_shut_sent)
        return;
    s->u_shut_sent = true;
    s->u_shut.data = s;
    if (uv_shutdown(&s->u_shut, (uv_stream_t *)&s->up, on_u_shut) != 0)
        on_u_shut(&s->u_shut, UV_ENOTCONN);
}

static void on_c_shut(uv_shutdown_t *r, int status);

static void half_close_client(sess_t *s)
{
    if (s->c_shut_sent)
        return;
    if (s->ctls) { /* RFC 8446 §6.1: close_notify closes our write direction */
        al_tls_shutdown(s->ctls);
        tls_flush(s);
        if (s->st == S_CLOSING)
            return;
    }
    s->c_shut_sent = true;
    s->c_shut.data = s;
    if (uv_shutdown(&s->c_shut, (uv_stream_t *)&s->client, on_c_shut) != 0)
        on_c_shut(&s->c_shut, UV_ENOTCONN);
}

static void maybe_finished(sess_t *s)
{
    if (s->c_shut_done && s->u_shut_done)
        end_session(s, s->first_close ? s->first_close : "client_closed", NULL);
}

static void on_u_shut(uv_shutdown_t *r, int status)
{
    sess_t *s = r->data;
    AL_UNUSED(status);
    if (s->st == S_CLOSING || s->flush_close)
        return;
    s->u_shut_done = true;
    maybe_finished(s);
}

static void on_c_shut(uv_shutdown_t *r, int status)
{
    sess_t *s = r->data;
    AL_UNUSED(status);
    if (s->st == S_CLOSING || s->flush_close)
        return;
    s->c_shut_done = true;
    maybe_finished(s);
}

static void on_connected(uv_connect_t *c, int status)
{
    sess_t *s = c->data;
    if (s->st != S_CONNECT || s->flush_close)
        return; /* closing, or timed out: the handle is being closed */
    if (status < 0) {
        char why[160];
        snprintf(why, sizeof why, "cannot connect to the upstream: %s", uv_strerror(status));
        upstream_failed(s, 502, "upstream_unreachable", why);
        return;
    }
    uv_timer_stop(&s->phase);
    s->up_connected = true;
    s->up_paused = true; /* update_reads starts reading once the tunnel is open */
    uv_tcp_nodelay(&s->up, 1);
    open_tunnel(s);
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res)
{
    sess_t *s = g->data;
    s->resolving = false;
    if (s->st != S_CONNECT || s->flush_close) {
        uv_freeaddrinfo(res);
        if (--s->handles == 0)
            sess_free(s);
        return;
    }
    s->handles--;
    if (status < 0 || !res) {
        uv_freeaddrinfo(res);
        upstream_failed(s, 502, "upstream_unreachable", "cannot resolve the upstream host");
        return;
    }
    uv_tcp_init(&s->tw->w->loop, &s->up);
    s->up.data = s;
    s->up_inited = true;
    s->handles++;
    s->conn.data = s;
    int rc = uv_tcp_connect(&s->conn, &s->up, res->ai_addr, on_connected);
    uv_freeaddrinfo(res);
    if (rc != 0) {
        char why[160];
        snprintf(why, sizeof why, "cannot connect to the upstream: %s", uv_strerror(rc));
        upstream_failed(s, 502, "upstream_unreachable", why);
    }
}

static void connect_upstream(sess_t *s)
{
    s->st = S_CONNECT;
    double ct = s->target->upstream.connect_timeout > 0 ? s->target->upstream.connect_timeout
                                                         : DEFAULT_CONNECT_TIMEOUT;
    uv_timer_start(&s->phase, on_phase, (uint64_t)(ct * 1000), 0);
    al_tcp_authority_t a;
    char host[AL_TCP_HOST_MAX + 1], port[8];
    if (al_tcp_authority_split(al_str_c(s->entry), &a) != AL_OK) { /* the loader checked */
        upstream_failed(s, 502, "upstream_unreachable", "bad upstreams entry");
        return;
    }
    snprintf(host, sizeof host, "%.*s", (int)a.host.len, a.host.p);
    snprintf(port, sizeof port, "%d", a.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    s->gai.data = s;
    s->handles++; /* the resolver holds the session */
    s->resolving = true;
    if (uv_getaddrinfo(&s->tw->w->loop, &s->gai, on_resolved, host, port, &hints) != 0) {
        s->handles--;
        s->resolving = false;
        upstream_failed(s, 502, "upstream_unreachable", "cannot resolve the upstream host");
    }
}

/* ---- the decision ------------------------------------------------------------------------ */

static void committed(sess_t *s, int rc, const char *err)
{
    if (rc != AL_OK) {
        /* Fail closed: no tunnel without its decision record. */
        al_log(AL_LOG_ERROR, "audit record not committed; tunnel refused", "session",
               s->session_id, "error", err, NULL);
        s->opened = false;
        respond_reason(s, 503, NULL, "audit_unavailable",
                       err && *err ? err : "audit store failure");
        return;
    }
    connect_upstream(s);
}

static void on_audit_done(void *ud, int rc, const char *id, const char *err)
{
    pend_t *pd = ud;
    AL_UNUSED(id);
    pd->rc = rc;
    snprintf(pd->err, sizeof pd->err, "%s", err ? err : "");
    tw_t *tw = pd->tw;
    pthread_mutex_lock(&tw->lock);
    pd->next = tw->done;
    tw->done = pd;
    if (!tw->closed)
        uv_async_send(&tw->audit_async);
    pthread_mutex_unlock(&tw->lock);
}

static void on_audit_async(uv_async_t *h)
{
    tw_t *tw = h->data;
    pthread_mutex_lock(&tw->lock);
    pend_t *list = tw->done;
    tw->done = NULL;
    pthread_mutex_unlock(&tw->lock);
    while (list) {
        pend_t *pd = list;
        list = pd->next;
        if (pd->s) {
            pd->s->pend = NULL;
            if (pd->s->st == S_AUDIT && !pd->s->flush_close)
                committed(pd->s, pd->rc, pd->err);
        }
        free(pd);
    }
}

/* Authenticated: is the authority one of the target's upstreams, and does
 * policy allow the tunnel? */
static void decide(sess_t *s)
{
    al_worker_t *w = s->tw->w;
    uv_timer_stop(&s->phase); /* auth_timeout: the head and the token are in */
    if (s->snap != w->snap) { /* decide under the config the token was verified with */
        al_snapshot_unref(&s->snap);
        s->snap = al_snapshot_ref(w->snap);
        s->target = al_config_target(s->snap->cfg, s->ls->target);
        if (!s->target || s->target->protocol != AL_PROTO_TCP) {
            s->target = NULL;
            respond_reason(s, 502, NULL, "bad_gateway",
                           "this listener's target is no longer configured");
            return;
        }
    }
    ident_schedule(s);
    int idx = al_tcp_upstream_match(al_str_c(s->authority),
                                    (const char *const *)s->target->upstreams,
                                    s->target->n_upstreams);
    if (idx < 0) {
        audit_refusal(s, AL_AUDIT_KIND_DECISION, "deny", NULL, "connect_target_not_allowed",
                      "403");
        al_buf_t m;
        al_buf_init(&m);
        al_buf_printf(&m, "%s is not one of the upstreams of target %s", s->authority,
                      s->target->name);
        respond_denied(s, "denied", NULL, m.p ? m.p : "", "connect_target_not_allowed");
        al_buf_free(&m);
        return;
    }
    s->entry = s->target->upstreams[idx];
    al_buf_reset(&s->action);
    al_buf_printf(&s->action, "CONNECT %s", s->entry);
    const al_principal_t *p = s->principal;
    al_subject_t who = {p->agent, p->issuer_name, p->groups, p->n_groups};
    al_action_t a = {.kind = AL_ACTION_HTTP,
                     .target = s->target->name,
                     .method = AL_STR("CONNECT"),
                     .path = AL_STR(""),
                     .host = al_str_c(s->entry),
                     .now = (int64_t)al_now()};
    al_verdict_t v;
    al_policy_decide(s->snap->policy, &who, &a, &v);
    const char *rule = v.rule ? v.rule->name : NULL;
    if (v.decision != AL_DECIDE_ALLOW) {
        audit_refusal(s, AL_AUDIT_KIND_DECISION, al_decision_name(v.decision), rule, v.reason,
                      "403");
        bool approve = v.decision == AL_DECIDE_APPROVE;
        const char *msg = v.rule && v.rule->message ? v.rule->message
                          : approve ? "this tunnel needs a human approval, which this gateway "
                                      "cannot hold yet; ask an approver"
                                    : NULL;
        respond_denied(s, approve ? "approval_required" : "denied", rule, msg, v.reason);
        return;
    }
    if (al_recorder_refusing(w->rt->recorder)) {
        /* recordings.on_failure: refuse (docs/recordings.md) */
        audit_refusal(s, AL_AUDIT_KIND_DECISION, "deny", rule, "recording_failed", "503");
        respond_denied(s, "recording_failed", rule,
                       "session recording failed; the tunnel is refused "
                       "(recordings.on_failure: refuse)", "recording_failed");
        return;
    }
    rec_tunnel(s, "allow", rule, NULL);
    snprintf(s->rule, sizeof s->rule, "%s", rule ? rule : "");
    al_audit_event_t ev;
    fill_event(s, &ev, AL_AUDIT_KIND_DECISION);
    ev.decision = "allow";
    ev.rule = rule;
    ev.reason = v.reason;
    s->t0 = al_mono_ns();
    al_audit_t *au = w->rt->audit;
    if (v.audit == AL_AUDIT_MODE_ASYNC) {
        s->opened = al_audit_submit_async(au, &ev, s->decision_id) == AL_OK;
        connect_upstream(s);
        return;
    }
    pend_t *pd = al_xcalloc(1, sizeof *pd);
    pd->s = s;
    pd->tw = s->tw;
    const char *err = NULL;
    if (al_audit_submit(au, &ev, on_audit_done, pd, s->decision_id, &err) != AL_OK) {
        free(pd);
        committed(s, AL_ERR, err ? err : "audit queue refused the record");
        return;
    }
    s->opened = true;
    s->pend = pd;
    s->st = S_AUDIT;
}

/* ---- the request head -------------------------------------------------------------------- */

static bool name_is(al_str_t n, const char *c)
{
    size_t l = strlen(c);
    return n.len == l && !strncasecmp(n.p, c, l);
}

/* Reads what the session needs out of the head (views into cin) and
 * answers what can be answered without a token. Returns true when the
 * token is to be verified next. */
static bool read_head(sess_t *s, const al_http_head_t *h)
{
    al_buf_reset(&s->action);
    al_buf_append(&s->action, h->method.p, h->method.len);
    al_buf_append(&s->action, " ", 1);
    const char *q = memchr(h->target.p, '?', h->target.len); /* no query in the audit log */
    al_buf_append(&s->action, h->target.p, q ? (size_t)(q - h->target.p) : h->target.len);
    if (s->tw->draining) {
        audit_refusal(s, AL_AUDIT_KIND_DECISION, "deny", NULL, "draining", "503");
        respond_reason(s, 503, NULL, "unavailable", "draining");
        return false;
    }
    if (h->form != AL_HTTP_FORM_AUTHORITY) {
        /* RFC 9110 §15.5.6: a 405 lists the allowed methods in Allow. */
        audit_refusal(s, AL_AUDIT_KIND_DECISION, "deny", NULL, "method_not_allowed", "405");
        respond_reason(s, 405, "Allow: CONNECT\r\n", "method_not_allowed",
                       "this listener is a CONNECT proxy (RFC 9110 §9.3.6): send "
                       "'CONNECT host:port HTTP/1.1'");
        return false;
    }
    al_str_t auth = {NULL, 0};
    size_t n = 0;
    for (size_t i = 0; i < h->nheaders; i++)
        if (name_is(h->headers[i].name, "proxy-authorization")) {
            auth = h->headers[i].value;
            n++;
        }
    if (n > 1) {
        proxy_auth_refused(s, "duplicate_authorization", "send one Proxy-Authorization field");
        return false;
    }
    al_str_t tok = {NULL, 0};
    int br = n ? al_tcp_bearer(auth, &tok) : 1;
    if (br == 1) {
        proxy_auth_refused(s, al_tok_reason(AL_TOK_MISSING_TOKEN),
                           "send 'Proxy-Authorization: Bearer <token>'");
        return false;
    }
    if (br < 0) {
        proxy_auth_refused(s, al_tok_reason(AL_TOK_MALFORMED), "not an RFC 6750 bearer token");
        return false;
    }
    s->token = al_strndup(tok.p, tok.len);
    s->authority = al_strndup(h->target.p, h->target.len);
    if (!s->token || !s->authority) {
        sess_close(s);
        return false;
    }
    s->token_len = tok.len;
    return true;
}

static void consume(al_buf_t *b, size_t n)
{
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
    b->p[b->len] = 0;
}

static void process_head(sess_t *s)
{
    al_http_msg_t m;
    ssize_t k = al_http_parse(&s->reqp, (const uint8_t *)s->cin.p, s->cin.len, &m);
    if (k < 0) {
        const char *why = al_http_err_str(s->reqp.err);
        audit_refusal(s, AL_AUDIT_KIND_DECISION, "deny", NULL, why, "400");
        respond_reason(s, 400, NULL, "bad_request", why);
        return;
    }
    if (k == 0 || m.event != AL_HTTP_EV_HEAD)
        return;
    bool go = read_head(s, &m.head);
    consume(&s->cin, (size_t)k); /* what is left came after the head: tunnel bytes */
    if (go && s->st == S_HEAD && !s->flush_close)
        verify_token(s);
}

/* ---- relaying ---------------------------------------------------------------------------- */

static void process_client(sess_t *s)
{
    if (s->st == S_CLOSING || s->flush_close)
        return;
    if (s->st == S_HEAD && s->cin.len)
        process_head(s);
    if (s->st == S_TUNNEL && s->cin.len) {
        to_up(s, s->cin.p, s->cin.len);
        al_buf_reset(&s->cin);
    }
    if (s->st == S_TUNNEL && s->c_eof)
        half_close_up(s);
    update_reads(s);
}

static void update_reads(sess_t *s)
{
    if (s->st == S_CLOSING)
        return;
    bool want;
    if (s->flush_close)
        want = true; /* lingering: read and drop */
    else if (s->c_eof)
        want = false;
    else if (s->st == S_TUNNEL)
        want = queued(&s->up) <= HIGH_WATER;
    else
        want = s->cin.len < MAX_PENDING;
    if (want && s->client_paused) {
        s->client_paused = false;
        uv_read_start((uv_stream_t *)&s->client, on_alloc, on_client_read);
    } else if (!want && !s->client_paused) {
        s->client_paused = true;
        uv_read_stop((uv_stream_t *)&s->client);
    }
    if (s->up_connected && !s->flush_close && s->st == S_TUNNEL) {
        bool uwant = !s->u_eof && queued(&s->client) <= HIGH_WATER;
        if (uwant && s->up_paused) {
            s->up_paused = false;
            uv_read_start((uv_stream_t *)&s->up, on_alloc, on_up_read);
        } else if (!uwant && !s->up_paused) {
            s->up_paused = true;
            uv_read_stop((uv_stream_t *)&s->up);
        }
    }
}

static void client_eof(sess_t *s, ssize_t n)
{
    /* A reset after the upstream has ended is how many clients close (unread
     * bytes at close(2) turn the FIN into an RST): the tunnel is over. */
    if (n == UV_ECONNRESET && s->u_eof)
        n = UV_EOF;
    if (n != UV_EOF) {
        end_session(s, "client_error", uv_strerror((int)n));
        return;
    }
    if (s->st == S_HEAD) {
        sess_close(s); /* no request: nothing to audit */
        return;
    }
    s->c_eof = true;
    if (!s->first_close)
        s->first_close = "client_closed";
    process_client(s); /* in a tunnel: half-close the upstream */
}

static void on_client_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    sess_t *s = st->data;
    if (s->st == S_CLOSING)
        return;
    if (s->flush_close) {
        if (n < 0)
            sess_close(s);
        return;
    }
    if (n < 0) {
        client_eof(s, n);
        return;
    }
    if (!s->ctls) {
        if (s->st == S_TUNNEL && !s->cin.len) { /* the common case: no copy */
            to_up(s, b->base, (size_t)n);
            update_reads(s);
            return;
        }
        al_buf_append(&s->cin, b->base, (size_t)n);
    } else {
        if (al_tls_feed(s->ctls, (const uint8_t *)b->base, (size_t)n) != AL_OK) {
            end_session(s, "client_error", al_tls_error(s->ctls));
            return;
        }
        int rc = al_tls_read(s->ctls, &s->cin);
        tls_flush(s);
        if (s->st == S_CLOSING)
            return;
        if (rc == AL_ERR) {
            al_log(AL_LOG_DEBUG, "client TLS failed", "session", s->session_id, "error",
                   al_tls_error(s->ctls), NULL);
            end_session(s, "client_error", al_tls_error(s->ctls));
            return;
        }
        if (rc == AL_TLS_EOF) {
            process_client(s);
            if (s->st != S_CLOSING && !s->flush_close)
                client_eof(s, UV_EOF);
            return;
        }
    }
    if (s->cin.oom) {
        end_session(s, "client_error", "out of memory");
        return;
    }
    process_client(s);
}

static void on_up_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    sess_t *s = st->data;
    if (s->st != S_TUNNEL || s->flush_close)
        return;
    if (n == UV_ECONNRESET && s->c_eof) /* see client_eof */
        n = UV_EOF;
    if (n == UV_EOF) {
        s->u_eof = true;
        if (!s->first_close)
            s->first_close = "upstream_closed";
        if (!s->up_paused) {
            s->up_paused = true;
            uv_read_stop((uv_stream_t *)&s->up);
        }
        half_close_client(s);
        return;
    }
    if (n < 0) {
        end_session(s, "upstream_error", uv_strerror((int)n));
        return;
    }
    s->bytes_down += n;
    al_sess_bytes(s->reg, 0, (uint64_t)n);
    to_client(s, b->base, (size_t)n);
    update_reads(s);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    AL_UNUSED(h);
    AL_UNUSED(hint);
    static _Thread_local char chunk[READ_CHUNK];
    *b = uv_buf_init(chunk, sizeof chunk);
}

/* auth_timeout (head and token), connect_timeout, or the end of a linger. */
static void on_phase(uv_timer_t *t)
{
    sess_t *s = t->data;
    if (s->st == S_CLOSING)
        return;
    if (s->flush_close) {
        sess_close(s);
        return;
    }
    if (s->st == S_CONNECT) {
        upstream_failed(s, 504, "upstream_connect_timeout",
                        "connecting to the upstream timed out (upstream.connect_timeout)");
        return;
    }
    if (s->st == S_HEAD || s->st == S_VERIFY) {
        /* Slowloris bound: the head and its token within auth_timeout. */
        if (s->cin.len || s->st == S_VERIFY)
            audit_refusal(s, AL_AUDIT_KIND_AUTH, "deny", NULL, "auth_timeout", NULL);
        sess_close(s);
    }
}

/* ---- accept ------------------------------------------------------------------------------ */

/* The registry's kill (runtime/sessions.h): an agent disabled or the
 * session killed by an administrator. */
static void tcp_kill(void *arg, const char *reason)
{
    sess_t *s = arg;
    if (!s->opened) /* not yet a tunnel: its refusal is the record */
        audit_refusal(s, AL_AUDIT_KIND_AUTH, "deny", NULL, reason, NULL);
    end_session(s, reason, NULL);
}

static void on_connection(uv_stream_t *srv, int status)
{
    listener_t *l = srv->data;
    tw_t *tw = l->tw;
    if (status < 0 || tw->draining)
        return;
    sess_t *s = al_xcalloc(1, sizeof *s);
    s->tw = tw;
    s->ls = l;
    s->snap = al_snapshot_ref(tw->w->snap);
    s->target = al_config_target(s->snap->cfg, l->target);
    uv_tcp_init(&tw->w->loop, &s->client);
    s->client.data = s;
    s->handles = 1; /* the client handle */
    al_buf_init(&s->cin);
    al_buf_init(&s->out);
    al_buf_init(&s->tls_scratch);
    al_buf_init(&s->action);
    al_http_limits_t lim = al_http_limits_default();
    lim.max_head = MAX_HEAD;
    lim.max_headers = MAX_HEADERS;
    al_http_parser_init(&s->reqp, AL_HTTP_REQUEST, &lim, s->hdrs, MAX_HEADERS);
    al_audit_uuid7((int64_t)(al_now() * 1e6), s->session_id);
    s->next = tw->sessions;
    if (tw->sessions)
        tw->sessions->pprev = &s->next;
    s->pprev = &tw->sessions;
    tw->sessions = s;
    tw->w->active++;
    tw->n_sessions++;
    if (uv_accept(srv, (uv_stream_t *)&s->client) != 0) {
        sess_close(s);
        return;
    }
    uv_tcp_nodelay(&s->client, 1);
    char peer[64];
    al_sess_peer_name(&s->client, peer, sizeof peer);
    s->reg = al_sess_start(tw->w, &(al_sess_info_t){.id = s->session_id, .protocol = "tcp",
                                                    .target = l->target, .client = peer,
                                                    .kill = tcp_kill, .sess = s});
    s->rec = al_rec_open(tw->w->rt->recorder, tw->w->id,
                         &(al_rec_meta_t){.session_id = s->session_id, .protocol = "tcp",
                                          .target = l->target, .client = peer});
    uv_timer_init(&tw->w->loop, &s->phase);
    uv_timer_init(&tw->w->loop, &s->ident);
    s->phase.data = s->ident.data = s;
    s->timers_inited = true;
    s->handles += 2;
    if (l->tls && !(s->ctls = al_tls_new(l->tls, NULL))) {
        sess_close(s);
        return;
    }
    uv_read_start((uv_stream_t *)&s->client, on_alloc, on_client_read);
    if (!s->target || s->target->protocol != AL_PROTO_TCP) {
        s->target = NULL;
        respond_reason(s, 502, NULL, "bad_gateway",
                       "this listener's target is no longer configured");
        return;
    }
    s->counted = true;
    if (atomic_fetch_add(l->count, 1) >= s->target->max_connections) {
        audit_refusal(s, AL_AUDIT_KIND_DECISION, "deny", NULL, "too_many_connections", "503");
        respond_reason(s, 503, NULL, "too_many_connections", "targets[].max_connections");
        return;
    }
    uv_timer_start(&s->phase, on_phase, (uint64_t)(s->target->auth_timeout * 1000), 0);
}

/* ---- listeners and workers --------------------------------------------------------------- */

static bool is_tcp_listener(const al_target_conf_t *tc)
{
    return tc->listen && tc->protocol == AL_PROTO_TCP;
}

/* The tunnel carries the agent's own protocol (its TLS included) to the
 * upstream untouched: airlock adds no TLS of its own on that side. */
static bool tcp_up_tls(const al_target_conf_t *t, const char **ca, bool *verify)
{
    AL_UNUSED(t);
    *ca = NULL;
    *verify = true;
    return false;
}

static const al_listen_spec_t tcp_spec = {"tcp", is_tcp_listener, tcp_up_tls};

int al_tcp_listen_all(al_runtime_t *rt)
{
    return al_runtime_listen(rt, &tcp_spec, offsetof(al_worker_t, tcp_ls));
}

void al_tcp_listen_close(al_runtime_t *rt)
{
    al_runtime_listen_close(rt, offsetof(al_worker_t, tcp_ls));
}

int al_tcp_worker_start(al_worker_t *w)
{
    tw_t *tw = al_xcalloc(1, sizeof *tw);
    tw->w = w;
    w->tcp = tw;
    pthread_mutex_init(&tw->lock, NULL);
    uv_async_init(&w->loop, &tw->audit_async, on_audit_async);
    tw->audit_async.data = tw;
    tw->ls = al_xcalloc(w->tcp_ls.n ? w->tcp_ls.n : 1, sizeof *tw->ls);
    for (size_t k = 0; k < w->tcp_ls.n; k++) {
        listener_t *l = &tw->ls[k];
        al_listen_slot_t *sl = &w->tcp_ls.slots[k];
        l->tw = tw;
        l->target = sl->target;
        l->tls = sl->tls;
        l->count = sl->count;
        l->open = true;
        tw->n_ls++;
        if (al_listen_start(&w->loop, &l->tcp, l, sl, on_connection) != AL_OK)
            return AL_ERR;
    }
    return AL_OK;
}

void al_tcp_worker_drain(al_worker_t *w, bool force)
{
    tw_t *tw = w->tcp;
    if (!tw)
        return;
    tw->draining = true;
    for (size_t k = 0; k < tw->n_ls; k++)
        al_listen_stop(&tw->ls[k].tcp, &tw->ls[k].open);
    for (sess_t *s = tw->sessions, *n; s; s = n) {
        n = s->next;
        if (force)
            end_session(s, "drain", NULL);
        else if (s->st == S_HEAD && !s->cin.len && !s->flush_close)
            sess_close(s);
    }
    if (!tw->n_sessions && !tw->closed) {
        pthread_mutex_lock(&tw->lock);
        tw->closed = true;
        pthread_mutex_unlock(&tw->lock);
        uv_close((uv_handle_t *)&tw->audit_async, NULL);
    }
}

void al_tcp_worker_free(al_worker_t *w)
{
    tw_t *tw = w->tcp;
    if (!tw)
        return;
    for (pend_t *pd = tw->done, *n; pd; pd = n) {
        n = pd->next;
        free(pd);
    }
    pthread_mutex_destroy(&tw->lock);
    free(tw->ls);
    free(tw);
    w->tcp = NULL;
}
