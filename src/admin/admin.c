/*
 * admin.c - the admin listener: HTTP/1.1 on the control loop.
 *
 * Requests are parsed by the same strict parser the HTTP gateway uses.
 * Bearer tokens (RFC 6750 §2.1) are verified by the identity layer with the
 * control thread's own token cache; an unknown kid waits for the rate-
 * limited JWKS refetch without blocking the loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "admin/admin.h"
#include "proto/http/http_parser.h"
#include "runtime/runtime.h"

#define ADMIN_MAX_INPUT (80 * 1024)
#define MAX_BODY (1024 * 1024)
#define MAX_HEADERS 64

typedef struct admin_req {
    char method[16];
    char path[2048];
    char *bearer;       /* owned copy of the token; wiped on release */
    size_t bearer_len;
    bool has_auth;      /* an Authorization header was present */
    bool keep_alive;
    al_buf_t body;
} admin_req_t;

typedef struct admin_conn {
    uv_tcp_t tcp;
    struct al_admin *a;
    al_http_parser_t parser;
    al_http_header_t hdrs[MAX_HEADERS];
    char *in;
    size_t in_len;
    admin_req_t req;
    bool in_request;    /* head seen, body not finished */
    bool busy;          /* a response is pending (write or key wait) */
    bool closing;
    uv_async_t wait;    /* JWKS refetch wake-up */
    bool waiting;
    al_jwks_entry_t *wait_entry;
    uv_write_t wr;
    al_buf_t out;
    struct admin_conn *next, **pprev;
} admin_conn_t;

struct al_admin {
    al_runtime_t *rt;
    uv_tcp_t listener;
    bool listening;
    admin_conn_t *conns;
    size_t inflight;
    al_token_cache_t *cache;
};

al_admin_t *al_admin_new(al_runtime_t *rt)
{
    al_admin_t *a = al_xcalloc(1, sizeof *a);
    a->rt = rt;
    a->cache = al_token_cache_new(1024);
    return a;
}

/* ---- responses ------------------------------------------------------------ */

static const char *status_text(int s)
{
    switch (s) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

static void conn_close(admin_conn_t *c);
static void process(admin_conn_t *c);

static void req_release(admin_req_t *r)
{
    if (r->bearer) {
        al_wipe(r->bearer, r->bearer_len);
        al_free(&r->bearer);
    }
    al_buf_free(&r->body);
    memset(r, 0, sizeof *r);
}

static void on_written(uv_write_t *w, int status)
{
    admin_conn_t *c = w->data;
    bool keep = status == 0 && c->req.keep_alive && !c->a->rt->draining;
    al_buf_reset(&c->out);
    req_release(&c->req);
    c->busy = false;
    c->a->inflight--;
    if (!keep) {
        conn_close(c);
        return;
    }
    process(c); /* pipelined bytes already buffered */
}

/* extra_headers: complete "Name: value\r\n" lines or NULL. */
static void respond(admin_conn_t *c, int status, const char *ctype, const char *extra_headers,
                    const char *body, size_t body_len)
{
    al_buf_t *o = &c->out;
    al_buf_reset(o);
    al_buf_printf(o, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n%s%s\r\n",
                  status, status_text(status), ctype, body_len, extra_headers ? extra_headers : "",
                  c->req.keep_alive && !c->a->rt->draining ? "" : "Connection: close\r\n");
    al_buf_append(o, body, body_len);
    if (o->oom) {
        conn_close(c);
        return;
    }
    uv_buf_t b = uv_buf_init(o->p, (unsigned)o->len);
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        c->busy = false;
        c->a->inflight--;
        conn_close(c);
    }
}

static void respond_json(admin_conn_t *c, int status, const char *extra, const char *json)
{
    respond(c, status, "application/json", extra, json, strlen(json));
}

static void respond_error(admin_conn_t *c, int status, const char *code, const char *detail)
{
    al_buf_t b;
    al_buf_init(&b);
    al_buf_puts(&b, "{\"error\":");
    al_buf_json_str(&b, code, strlen(code));
    if (detail) {
        al_buf_puts(&b, ",\"detail\":");
        al_buf_json_str(&b, detail, strlen(detail));
    }
    al_buf_puts(&b, "}");
    respond_json(c, status, NULL, b.p ? b.p : "{}");
    al_buf_free(&b);
}

/* ---- handlers ------------------------------------------------------------------- */

static void handle_healthz(admin_conn_t *c)
{
    al_runtime_t *rt = c->a->rt;
    char body[256];
    snprintf(body, sizeof body, "{\"status\":\"%s\",\"version\":\"%s\",\"uptime_seconds\":%.0f}",
             rt->draining ? "draining" : "ok", AL_VERSION, al_now() - rt->started);
    respond_json(c, rt->draining ? 503 : 200, NULL, body);
}

static void handle_metrics(admin_conn_t *c)
{
    al_buf_t b;
    al_buf_init(&b);
    al_admin_metrics(c->a->rt, &b);
    if (b.oom)
        respond_error(c, 500, "internal_error", NULL);
    else
        respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, b.p, b.len);
    al_buf_free(&b);
}

/* RFC 6750 §3: a refusal names the error; with no credentials at all, no
 * error code is sent (§3.1). The description carries only the reason code. */
static void respond_unauthorized(admin_conn_t *c, al_tok_status_t st)
{
    char hdr[256], body[192];
    const char *reason = al_tok_reason(st);
    if (st == AL_TOK_MISSING_TOKEN && !c->req.has_auth)
        snprintf(hdr, sizeof hdr, "WWW-Authenticate: Bearer realm=\"airlock\"\r\n");
    else
        snprintf(hdr, sizeof hdr,
                 "WWW-Authenticate: Bearer realm=\"airlock\", error=\"invalid_token\", "
                 "error_description=\"%s\"\r\n", reason);
    snprintf(body, sizeof body, "{\"error\":\"invalid_token\",\"reason\":\"%s\"}", reason);
    respond_json(c, 401, hdr, body);
}

static void whoami_finish(admin_conn_t *c, al_tok_status_t st, al_principal_t *p)
{
    if (st != AL_TOK_OK) {
        respond_unauthorized(c, st);
        return;
    }
    al_buf_t b;
    al_buf_init(&b);
    al_principal_json(p, &b);
    respond_json(c, 200, NULL, b.oom ? "{}" : b.p);
    al_buf_free(&b);
}

static al_tok_status_t verify_req(admin_conn_t *c, al_principal_t **p, al_verify_info_t *info)
{
    al_runtime_t *rt = c->a->rt;
    if (!c->req.bearer)
        return AL_TOK_MISSING_TOKEN;
    return al_verify(rt->snap->verifier, c->a->cache, c->req.bearer, c->req.bearer_len, NULL,
                     al_now(), p, info);
}

static void wait_closed(uv_handle_t *h) { AL_UNUSED(h); }

static void on_keys_fetched(uv_async_t *as)
{
    admin_conn_t *c = as->data;
    c->waiting = false;
    uv_close((uv_handle_t *)&c->wait, wait_closed);
    al_principal_t *p = NULL;
    al_verify_info_t info;
    al_tok_status_t st = verify_req(c, &p, &info);
    whoami_finish(c, st, p);
    al_principal_unref(&p);
}

static void wake_async(void *arg) { uv_async_send(arg); }

static void handle_whoami(admin_conn_t *c)
{
    al_principal_t *p = NULL;
    al_verify_info_t info;
    al_tok_status_t st = verify_req(c, &p, &info);
    if (st == AL_TOK_UNKNOWN_KID && info.refetch) {
        /* RFC 7517 §5: the issuer may have rotated; wait for the refetch. */
        if (uv_async_init(c->a->rt->loop, &c->wait, on_keys_fetched) == 0) {
            c->wait.data = c;
            c->waiting = true;
            c->wait_entry = info.refetch;
            if (al_jwks_entry_on_fetched(info.refetch, info.refetch_ticket, wake_async, &c->wait))
                uv_async_send(&c->wait); /* already fetched: verify again now */
            return;
        }
    }
    whoami_finish(c, st, p);
    al_principal_unref(&p);
}

static void dispatch(admin_conn_t *c)
{
    admin_req_t *r = &c->req;
    c->busy = true;
    c->a->inflight++;
    char *q = strchr(r->path, '?');
    if (q)
        *q = '\0';
    static const struct {
        const char *path;
        void (*fn)(admin_conn_t *);
    } routes[] = {
        {"/healthz", handle_healthz},
        {"/metrics", handle_metrics},
        {"/v1/whoami", handle_whoami},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(routes); i++) {
        if (strcmp(r->path, routes[i].path))
            continue;
        if (strcmp(r->method, "GET")) {
            respond_json(c, 405, "Allow: GET\r\n", "{\"error\":\"method_not_allowed\"}");
            return;
        }
        routes[i].fn(c);
        return;
    }
    respond_error(c, 404, "not_found", NULL);
}

/* ---- input -------------------------------------------------------------------- */

static void take_head(admin_conn_t *c, const al_http_head_t *h)
{
    admin_req_t *r = &c->req;
    memset(r, 0, sizeof *r);
    al_buf_init(&r->body);
    snprintf(r->method, sizeof r->method, "%.*s", (int)h->method.len, h->method.p);
    snprintf(r->path, sizeof r->path, "%.*s", (int)h->target.len, h->target.p);
    r->keep_alive = h->keep_alive;
    al_str_t auth = al_http_head_get(h, "authorization");
    r->has_auth = auth.p != NULL;
    /* RFC 6750 §2.1: "Bearer" (case-insensitive) 1*SP b64token */
    if (auth.len > 7 && !strncasecmp(auth.p, "Bearer ", 7)) {
        size_t i = 7;
        while (i < auth.len && auth.p[i] == ' ')
            i++;
        if (i < auth.len) {
            r->bearer = al_strndup(auth.p + i, auth.len - i);
            r->bearer_len = r->bearer ? auth.len - i : 0;
        }
    }
}

static void bad_request(admin_conn_t *c, int status, const char *reason)
{
    c->req.keep_alive = false;
    c->busy = true;
    c->a->inflight++;
    respond_error(c, status, "bad_request", reason);
}

static void process(admin_conn_t *c)
{
    size_t off = 0;
    while (!c->busy && !c->closing && off < c->in_len) {
        al_http_msg_t m;
        ssize_t n = al_http_parse(&c->parser, (const uint8_t *)c->in + off, c->in_len - off, &m);
        if (n < 0) {
            bad_request(c, 400, al_http_err_str(c->parser.err));
            break;
        }
        if (n == 0)
            break;
        off += (size_t)n;
        if (m.event == AL_HTTP_EV_HEAD) {
            take_head(c, &m.head);
            c->in_request = true;
        } else if ((m.event == AL_HTTP_EV_BODY || m.event == AL_HTTP_EV_END) && m.body.len) {
            if (c->req.body.len + m.body.len > MAX_BODY) {
                bad_request(c, 413, "body_too_large");
                break;
            }
            al_buf_append(&c->req.body, m.body.p, m.body.len);
        }
        if (m.done) {
            c->in_request = false;
            dispatch(c);
        }
    }
    if (off) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    admin_conn_t *c = h->data;
    AL_UNUSED(hint);
    size_t room = ADMIN_MAX_INPUT - c->in_len;
    *buf = uv_buf_init(room ? c->in + c->in_len : NULL, (unsigned)room);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    admin_conn_t *c = s->data;
    AL_UNUSED(buf);
    if (n < 0) {
        conn_close(c);
        return;
    }
    c->in_len += (size_t)n;
    process(c);
    if (!c->busy && !c->closing && c->in_len == ADMIN_MAX_INPUT)
        bad_request(c, 400, "head_too_large");
}

/* ---- connections ------------------------------------------------------------------ */

static void conn_freed(uv_handle_t *h)
{
    admin_conn_t *c = h->data;
    req_release(&c->req);
    al_buf_free(&c->out);
    free(c->in);
    free(c);
}

static void conn_close(admin_conn_t *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->waiting) {
        al_jwks_entry_cancel_wait(c->wait_entry, wake_async, &c->wait);
        uv_close((uv_handle_t *)&c->wait, wait_closed);
        c->waiting = false;
        if (c->busy) {
            c->busy = false;
            c->a->inflight--;
        }
    }
    if (c->next)
        c->next->pprev = c->pprev;
    *c->pprev = c->next;
    uv_close((uv_handle_t *)&c->tcp, conn_freed);
}

static void on_connection(uv_stream_t *srv, int status)
{
    al_admin_t *a = srv->data;
    if (status != 0 || a->rt->draining)
        return;
    admin_conn_t *c = al_calloc(1, sizeof *c);
    char *in = al_malloc(ADMIN_MAX_INPUT);
    if (!c || !in) {
        free(c);
        free(in);
        return;
    }
    c->in = in;
    c->a = a;
    al_buf_init(&c->out);
    al_http_parser_init(&c->parser, AL_HTTP_REQUEST, NULL, c->hdrs, MAX_HEADERS);
    uv_tcp_init(a->rt->loop, &c->tcp);
    c->tcp.data = c;
    c->next = a->conns;
    if (a->conns)
        a->conns->pprev = &c->next;
    c->pprev = &a->conns;
    a->conns = c;
    if (uv_accept(srv, (uv_stream_t *)&c->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        conn_close(c);
}

static int parse_addr(const char *addr, struct sockaddr_storage *ss)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= sizeof host)
        return AL_ERR;
    size_t hl = (size_t)(colon - addr);
    memcpy(host, addr, hl);
    host[hl] = '\0';
    int port = atoi(colon + 1);
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        return uv_ip6_addr(host + 1, port, (struct sockaddr_in6 *)ss) == 0 ? AL_OK : AL_ERR;
    }
    if (!strcmp(host, "localhost"))
        snprintf(host, sizeof host, "127.0.0.1");
    return uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0 ? AL_OK : AL_ERR;
}

int al_admin_listen(al_admin_t *a, const char *addr)
{
    struct sockaddr_storage ss;
    if (parse_addr(addr, &ss) != AL_OK) {
        al_log(AL_LOG_ERROR, "server.admin_listen is not an IP:port address", "addr", addr, NULL);
        return AL_ERR;
    }
    uv_tcp_init(a->rt->loop, &a->listener);
    a->listener.data = a;
    a->listening = true;
    int rc = uv_tcp_bind(&a->listener, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&a->listener, 128, on_connection);
    if (rc != 0) {
        al_log(AL_LOG_ERROR, "cannot listen on server.admin_listen", "addr", addr, "error",
               uv_strerror(rc), NULL);
        return AL_ERR;
    }
    return AL_OK;
}

static void listener_closed(uv_handle_t *h) { AL_UNUSED(h); }

void al_admin_stop_accepting(al_admin_t *a)
{
    if (a->listening && !uv_is_closing((uv_handle_t *)&a->listener))
        uv_close((uv_handle_t *)&a->listener, listener_closed);
    /* idle keep-alive connections go now; busy ones finish first */
    for (admin_conn_t *c = a->conns, *n; c; c = n) {
        n = c->next;
        if (!c->busy)
            conn_close(c);
    }
}

size_t al_admin_inflight(const al_admin_t *a) { return a->inflight; }

void al_admin_close_all(al_admin_t *a)
{
    al_admin_stop_accepting(a);
    while (a->conns)
        conn_close(a->conns);
}

void al_admin_free(al_admin_t **pa)
{
    al_admin_t *a = *pa;
    if (!a)
        return;
    if (a->listening && !uv_is_closing((uv_handle_t *)&a->listener)) {
        uv_close((uv_handle_t *)&a->listener, listener_closed);
        uv_run(a->rt->loop, UV_RUN_NOWAIT);
    }
    al_token_cache_free(&a->cache);
    al_free(pa);
}
