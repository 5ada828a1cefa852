/*
 * admin.c - the admin listener: HTTP/1.1 on the control loop.
 *
 * Requests are parsed by the same strict parser the HTTP gateway uses.
 * Bearer tokens (RFC 6750 §2.1) are verified by the identity layer with the
 * control thread's own token cache; an unknown kid waits for the rate-
 * limited JWKS refetch without blocking the loop.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include <pthread.h>
#include <openssl/rand.h>

#include "admin/admin.h"
#include "approvals/approvals.h"
#include "audit/audit.h"
#include "identity/jws.h"
#include "policy/policy.h"
#include "proto/http/http_parser.h"
#include "proto/http/http_path.h"
#include "record/record.h"
#include "runtime/revoked.h"
#include "runtime/runtime.h"
#include "runtime/sessions.h"

#define ADMIN_MAX_INPUT (80 * 1024)
#define MAX_BODY (1024 * 1024)
#define MAX_HEADERS 64

typedef struct admin_req {
    char method[16];
    char path[2048];
    char target[2048];  /* path with its query, as received */
    char param[256];    /* the {NAME} segment of a pattern route, percent-decoded */
    char *bearer;       /* owned copy of the token; wiped on release */
    size_t bearer_len;
    bool has_auth;      /* an Authorization header was present */
    bool keep_alive;
    al_buf_t body;
} admin_req_t;

struct actor;

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
    /* authenticated continuation (re-run after a JWKS refetch wait) */
    void (*then)(struct admin_conn *c, const struct actor *who);
    unsigned need;
    struct pend *pend;  /* a strict audit write or query in flight */
    al_principal_t *principal; /* of the request being answered */
} admin_conn_t;

/* Admin roles (config admin.roles). */
enum { ROLE_ADMIN = 1u, ROLE_APPROVER = 2u, ROLE_AUDITOR = 4u, ROLE_ANY = 0u };

/* Who is calling: an OIDC principal or the bootstrap token. */
typedef struct actor {
    bool bootstrap;
    const al_principal_t *p; /* NULL for the bootstrap token */
    unsigned roles;
    const char *name;        /* agent name, subject, or "bootstrap" */
} actor_t;

/* Work that finishes off the loop (audit commit, store query). Owned by the
 * admin; `c` is cleared when the connection goes first. */
typedef struct pend {
    admin_conn_t *c;
    int rc;
    char id[AL_AUDIT_ID_SIZE];
    char err[AL_AUDIT_ERR_SIZE];
    al_buf_t body;           /* prepared response / query result */
    int status;
    al_audit_filter_t filter;
    char *query;             /* owned copy of the query string (filter borrows) */
    uv_work_t work;
    struct al_admin *a;
    struct appr_job *appr;   /* an approvals call (/v1/approvals) */
    char *rec_dir;           /* GET /v1/sessions/ID/recording: the recordings dir (id in id) */
    struct pend *next;
} pend_t;

struct al_admin {
    al_runtime_t *rt;
    uv_tcp_t listener;
    bool listening;
    admin_conn_t *conns;
    size_t inflight;
    al_token_cache_t *cache;
    char *bootstrap;         /* the bootstrap token; wiped on free */
    size_t bootstrap_len;
    uv_async_t done_async;   /* strict audit completions */
    bool done_async_open;
    pthread_mutex_t done_lock;
    pend_t *done;            /* completions waiting for the loop */
    bool done_closed;
    al_sql_t *sql;           /* classifier for /v1/decide (control thread) */
};

static void on_audit_done_async(uv_async_t *h);

al_admin_t *al_admin_new(al_runtime_t *rt)
{
    al_admin_t *a = al_xcalloc(1, sizeof *a);
    a->rt = rt;
    a->cache = al_token_cache_new(1024);
    pthread_mutex_init(&a->done_lock, NULL);
    uv_async_init(rt->loop, &a->done_async, on_audit_done_async);
    a->done_async.data = a;
    a->done_async_open = true;
    a->sql = al_sql_new(NULL);
    return a;
}

/* ---- bootstrap token ------------------------------------------------------- */

int al_admin_bootstrap(al_admin_t *a, const char *data_dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/admin-token", data_dir);
    char *tok = NULL;
    size_t len = 0;
    if (al_read_file(path, 4096, &tok, &len) == AL_OK) {
        while (len && (tok[len - 1] == '\n' || tok[len - 1] == '\r' || tok[len - 1] == ' '))
            tok[--len] = 0;
        if (len < 32) {
            al_log(AL_LOG_ERROR, "the bootstrap admin token file is too short; delete it to "
                                 "have a new one made", "path", path, NULL);
            al_wipe(tok, len);
            free(tok);
            return AL_ERR;
        }
        a->bootstrap = tok;
        a->bootstrap_len = len;
        return AL_OK;
    }
    uint8_t raw[32];
    al_buf_t b;
    al_buf_init(&b);
    al_buf_puts(&b, "alb_");
    if (RAND_bytes(raw, sizeof raw) != 1 || al_b64url_encode(&b, raw, sizeof raw) != AL_OK ||
        al_write_file_atomic(path, b.p, b.len, 0600) != AL_OK) {
        al_log(AL_LOG_ERROR, "cannot create the bootstrap admin token", "path", path, NULL);
        al_wipe(b.p, b.len);
        al_buf_free(&b);
        return AL_ERR;
    }
    al_wipe(raw, sizeof raw);
    a->bootstrap = al_xstrndup(b.p, b.len);
    a->bootstrap_len = b.len;
    al_wipe(b.p, b.len);
    al_buf_free(&b);
    al_log(AL_LOG_INFO, "created the bootstrap admin token (mode 0600)", "path", path, NULL);
    return AL_OK;
}

/* ---- responses ------------------------------------------------------------ */

static const char *status_text(int s)
{
    switch (s) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
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
    al_principal_unref(&c->principal);
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

static al_tok_status_t verify_req(admin_conn_t *c, al_principal_t **p, al_verify_info_t *info)
{
    al_runtime_t *rt = c->a->rt;
    memset(info, 0, sizeof *info);
    if (!c->req.bearer)
        return AL_TOK_MISSING_TOKEN;
    al_tok_status_t st = al_verify(rt->snap->verifier, c->a->cache, c->req.bearer,
                                   c->req.bearer_len, NULL, al_now(), p, info);
    if (st == AL_TOK_OK && al_revset_check(rt->revoked, *p) != AL_TOK_OK) {
        /* The kill switch holds at the admin API too. The principal stays
         * with the refusal, for its audit record; the caller releases it. */
        info->detail = "this agent is disabled";
        info->revoked_agent = (*p)->agent;
        return AL_TOK_REVOKED;
    }
    return st;
}

static bool in_any(const al_principal_t *p, char **groups, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (al_principal_in_group(p, groups[i]))
            return true;
    return false;
}

static unsigned roles_of(const al_config_t *cfg, const al_principal_t *p)
{
    const al_admin_roles_conf_t *r = &cfg->admin.roles;
    unsigned m = 0;
    if (in_any(p, r->admin, r->n_admin))
        m |= ROLE_ADMIN | ROLE_APPROVER | ROLE_AUDITOR;
    if (in_any(p, r->approver, r->n_approver))
        m |= ROLE_APPROVER;
    if (in_any(p, r->auditor, r->n_auditor))
        m |= ROLE_AUDITOR;
    return m;
}

static const char *role_name(unsigned need)
{
    return need & ROLE_AUDITOR ? "auditor" : need & ROLE_APPROVER ? "approver" : "admin";
}

/* Runs c->then once the caller is authenticated and holds c->need. */
static void run_authed(admin_conn_t *c, al_tok_status_t st, al_principal_t *p)
{
    admin_req_t *r = &c->req;
    if (r->bearer && c->a->bootstrap && r->bearer_len == c->a->bootstrap_len &&
        al_ct_eq(r->bearer, c->a->bootstrap, r->bearer_len)) {
        actor_t who = {true, NULL, ROLE_ADMIN | ROLE_APPROVER | ROLE_AUDITOR, "bootstrap"};
        c->then(c, &who);
        return;
    }
    if (st != AL_TOK_OK) {
        /* Refusals at the admin API are audit events too (kind auth). */
        al_audit_event_t ev;
        al_audit_event_init(&ev);
        ev.kind = AL_AUDIT_KIND_AUTH;
        ev.protocol = "admin";
        ev.action = al_str_c(c->req.path);
        ev.decision = "deny";
        ev.reason = al_tok_reason(st);
        if (p) { /* a revoked agent: who it was */
            ev.agent = p->agent;
            ev.subject = p->sub;
            ev.issuer = p->iss;
        }
        al_audit_submit_async(c->a->rt->audit, &ev, NULL);
        respond_unauthorized(c, st);
        return;
    }
    actor_t who = {false, p, roles_of(c->a->rt->snap->cfg, p),
                   p->agent ? p->agent : p->sub};
    if (c->need && !(who.roles & c->need)) {
        al_audit_event_t ev;
        al_audit_event_init(&ev);
        ev.kind = AL_AUDIT_KIND_AUTH;
        ev.protocol = "admin";
        ev.agent = who.name;
        ev.subject = p->sub;
        ev.issuer = p->iss;
        ev.action = al_str_c(c->req.path);
        ev.decision = "deny";
        ev.reason = "missing_role";
        al_audit_submit_async(c->a->rt->audit, &ev, NULL);
        char d[160];
        snprintf(d, sizeof d, "this needs the %s role (admin.roles.%s in the config)",
                 role_name(c->need), role_name(c->need));
        respond_error(c, 403, "forbidden", d);
        return;
    }
    al_principal_unref(&c->principal);
    c->principal = al_principal_ref(p);
    c->then(c, &who);
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
    run_authed(c, st, p);
    al_principal_unref(&p);
}

static void wake_async(void *arg) { uv_async_send(arg); }

static void authed(admin_conn_t *c, unsigned need, void (*then)(admin_conn_t *, const actor_t *))
{
    c->then = then;
    c->need = need;
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
    run_authed(c, st, p);
    al_principal_unref(&p);
}

/* ---- /v1/whoami ----------------------------------------------------------------- */

static void whoami_then(admin_conn_t *c, const actor_t *who)
{
    al_buf_t b;
    al_buf_init(&b);
    if (who->bootstrap)
        al_buf_puts(&b, "{\"bootstrap\":true}");
    else
        al_principal_json(who->p, &b);
    if (b.len > 1 && !b.oom) {
        b.len--; /* reopen the object to add the roles */
        al_buf_puts(&b, ",\"roles\":[");
        const char *names[] = {"admin", "approver", "auditor"};
        for (unsigned i = 0, n = 0; i < 3; i++)
            if (who->roles & (1u << i))
                al_buf_printf(&b, "%s\"%s\"", n++ ? "," : "", names[i]);
        al_buf_puts(&b, "]}");
    }
    respond_json(c, 200, NULL, b.oom ? "{}" : b.p);
    al_buf_free(&b);
}

static void handle_whoami(admin_conn_t *c) { authed(c, ROLE_ANY, whoami_then); }

/* ---- pending work ---------------------------------------------------------------- */

static pend_t *pend_new(admin_conn_t *c)
{
    pend_t *pd = al_xcalloc(1, sizeof *pd);
    pd->c = c;
    pd->a = c->a;
    al_buf_init(&pd->body);
    c->pend = pd;
    return pd;
}

static void pend_free(pend_t *pd)
{
    al_buf_free(&pd->body);
    free(pd->query);
    free(pd->rec_dir);
    free(pd);
}

/* Writer thread: a strict event committed or failed. */
static void on_audit_done(void *ud, int rc, const char *id, const char *err)
{
    pend_t *pd = ud;
    pd->rc = rc;
    snprintf(pd->id, sizeof pd->id, "%s", id ? id : "");
    snprintf(pd->err, sizeof pd->err, "%s", err ? err : "");
    struct al_admin *a = pd->a;
    pthread_mutex_lock(&a->done_lock);
    pd->next = a->done;
    a->done = pd;
    bool send = !a->done_closed;
    if (send)
        uv_async_send(&a->done_async);
    pthread_mutex_unlock(&a->done_lock);
}

static void decide_committed(pend_t *pd);

static void on_audit_done_async(uv_async_t *h)
{
    struct al_admin *a = h->data;
    pthread_mutex_lock(&a->done_lock);
    pend_t *list = a->done;
    a->done = NULL;
    pthread_mutex_unlock(&a->done_lock);
    while (list) {
        pend_t *pd = list;
        list = pd->next;
        if (pd->c) {
            pd->c->pend = NULL;
            decide_committed(pd);
        }
        pend_free(pd);
    }
}

/* ---- /v1/audit -------------------------------------------------------------------- */

static void audit_query_work(uv_work_t *w)
{
    pend_t *pd = w->data;
    const al_config_t *cfg = pd->a->rt->snap->cfg; /* read-only: the control thread
                                                     swaps it only after this finishes */
    AL_UNUSED(cfg);
    al_audit_store_t *st = NULL;
    al_audit_opts_t o = {.path = pd->a->rt->snap->cfg->audit.path};
    if (al_audit_store_open(o.path, &o, true, &st, pd->err, sizeof pd->err) != AL_OK) {
        pd->status = 503;
        return;
    }
    pd->status = al_audit_query_json(st, &pd->filter, &pd->body, pd->err, sizeof pd->err) ==
                         AL_OK
                     ? 200
                     : 500;
    al_audit_store_close(&st);
}

static void audit_query_after(uv_work_t *w, int status)
{
    pend_t *pd = w->data;
    AL_UNUSED(status);
    admin_conn_t *c = pd->c;
    if (c) {
        c->pend = NULL;
        if (pd->status == 200)
            respond(c, 200, "application/json", NULL, pd->body.p, pd->body.len);
        else
            respond_error(c, pd->status, "audit_unavailable", pd->err);
    }
    pend_free(pd);
}

static void record_admin(admin_conn_t *c, const actor_t *who, const char *action)
{
    al_audit_event_t ev;
    al_audit_event_init(&ev);
    ev.kind = AL_AUDIT_KIND_ADMIN;
    ev.protocol = "admin";
    ev.agent = who->name;
    if (who->p) {
        ev.subject = who->p->sub;
        ev.issuer = who->p->iss;
        ev.groups = who->p->groups;
        ev.n_groups = who->p->n_groups;
    }
    ev.action = al_str_c(action);
    ev.decision = "allow";
    ev.reason = who->bootstrap ? "bootstrap_token" : "role";
    al_audit_submit_async(c->a->rt->audit, &ev, NULL);
}

static void audit_then(admin_conn_t *c, const actor_t *who)
{
    pend_t *pd = pend_new(c);
    const char *q = strchr(c->req.target, '?');
    pd->query = al_xstrdup(q ? q + 1 : "");
    /* key=value&...; values are taken literally (no percent-decoding needed
     * for the filter values airlock writes: names, durations, times). */
    for (char *kv = strtok(pd->query, "&"); kv; kv = strtok(NULL, "&")) {
        char *eq = strchr(kv, '=');
        if (!eq || eq == kv)
            continue;
        *eq = 0;
        if (al_audit_filter_set(&pd->filter, kv, eq + 1, al_now(), pd->err, sizeof pd->err) !=
            AL_OK) {
            c->pend = NULL;
            respond_error(c, 400, "bad_filter", pd->err);
            pend_free(pd);
            return;
        }
    }
    record_admin(c, who, c->req.target);
    pd->work.data = pd;
    if (uv_queue_work(c->a->rt->loop, &pd->work, audit_query_work, audit_query_after) != 0) {
        c->pend = NULL;
        respond_error(c, 500, "internal_error", NULL);
        pend_free(pd);
    }
}

static void handle_audit(admin_conn_t *c) { authed(c, ROLE_AUDITOR, audit_then); }

/* ---- /v1/decide ------------------------------------------------------------------- */

/* The policy decision point as an API: an agent (its own bearer token)
 * asks whether it may run an action on a target. The decision is audited
 * like any gateway decision; in strict mode the answer is sent only after
 * the record has committed, and an audit failure refuses the action. */
static void decide_then(admin_conn_t *c, const actor_t *who)
{
    if (who->bootstrap) {
        respond_error(c, 403, "forbidden", "decisions are for agents: use the agent's token");
        return;
    }
    json_error_t je;
    json_t *body = json_loadb(c->req.body.p ? c->req.body.p : "", c->req.body.len,
                              JSON_REJECT_DUPLICATES, &je);
    const char *target = json_string_value(json_object_get(body, "target"));
    const char *sql = json_string_value(json_object_get(body, "sql"));
    const char *http = json_string_value(json_object_get(body, "http"));
    const char *cmd = json_string_value(json_object_get(body, "cmd"));
    if (!json_is_object(body) || !target || (!!sql + !!http + !!cmd) != 1) {
        json_decref(body);
        respond_error(c, 400, "bad_request",
                      "send {\"target\": NAME, and one of \"sql\", \"http\" (\"METHOD PATH\") "
                      "or \"cmd\"}");
        return;
    }
    al_runtime_t *rt = c->a->rt;
    const al_policy_t *pol = rt->snap->policy;
    const al_principal_t *p = who->p;
    al_subject_t subj = {p->agent, p->issuer_name, p->groups, p->n_groups};
    al_verdict_t v;
    al_audit_event_t ev;
    al_audit_event_init(&ev);
    ev.protocol = "api";
    ev.target = target;
    ev.agent = p->agent;
    ev.subject = p->sub;
    ev.issuer = p->iss;
    ev.groups = p->groups;
    ev.n_groups = p->n_groups;
    int64_t now = (int64_t)al_now();
    const char *tables[64];
    char tbuf[64][AL_POLICY_TABLE_NAME_MAX];
    char *norm = NULL;
    if (sql) {
        const al_sql_result_t *r = NULL;
        al_sql_opts_t o = {.default_function_class = al_policy_target_fn_default(pol, target)};
        al_sql_classify(c->a->sql, sql, strlen(sql), &o, &r);
        al_policy_decide_sql(pol, &subj, target, r, now, &v, NULL, 0);
        ev.action = al_str_c(sql);
        ev.cls = al_sql_class_name(r->cls);
        ev.n_tables = al_policy_table_names(r, tbuf, tables, AL_ARRAY_LEN(tables));
        ev.tables = tables;
    } else if (http) {
        const char *sp = strchr(http, ' ');
        al_str_t tgt = sp ? al_str_c(sp + 1) : al_str_c(""), path, query;
        size_t cap = tgt.len + 2, plen = 0;
        const char *perr = NULL;
        norm = al_xmalloc(cap);
        if (!sp || al_http_target_split(tgt, &path, &query) != AL_OK)
            perr = "bad_target";
        else if (al_http_path_normalize(path.p, path.len, norm, cap, &plen, &perr) == AL_OK)
            perr = NULL;
        else if (!perr)
            perr = "bad_path";
        if (perr) {
            memset(&v, 0, sizeof v);
            v.decision = AL_DECIDE_DENY;
            v.reason = perr;
            v.audit = AL_AUDIT_MODE_STRICT;
        } else {
            al_action_t act = {.kind = AL_ACTION_HTTP, .target = target,
                               .method = {http, (size_t)(sp - http)}, .path = {norm, plen},
                               .now = now};
            al_policy_decide(pol, &subj, &act, &v);
        }
        ev.action = al_str_c(http);
    } else {
        al_action_t act = {.kind = AL_ACTION_CMD, .target = target, .cmd = al_str_c(cmd),
                           .now = now};
        al_policy_decide(pol, &subj, &act, &v);
        ev.action = al_str_c(cmd);
    }
    ev.decision = al_decision_name(v.decision);
    ev.rule = v.rule ? v.rule->name : NULL;
    ev.reason = v.reason;

    pend_t *pd = pend_new(c);
    al_buf_t *o = &pd->body;
    al_buf_puts(o, "{\"decision\":");
    al_buf_json_str(o, ev.decision, strlen(ev.decision));
    al_buf_puts(o, ",\"rule\":");
    if (ev.rule)
        al_buf_json_str(o, ev.rule, strlen(ev.rule));
    else
        al_buf_puts(o, "null");
    al_buf_puts(o, ",\"reason\":");
    al_buf_json_str(o, ev.reason, strlen(ev.reason));
    const char *msg = v.rule && v.decision != AL_DECIDE_ALLOW ? v.rule->message : NULL;
    al_buf_puts(o, ",\"message\":");
    if (msg)
        al_buf_json_str(o, msg, strlen(msg));
    else
        al_buf_puts(o, "null");
    if (ev.cls) {
        al_buf_puts(o, ",\"class\":");
        al_buf_json_str(o, ev.cls, strlen(ev.cls));
    }
    al_buf_puts(o, ",\"masks\":[");
    for (size_t i = 0; i < v.n_masks; i++) {
        al_buf_puts(o, i ? "," : "");
        al_buf_json_str(o, v.masks[i], strlen(v.masks[i]));
    }
    al_buf_puts(o, "]");
    pd->status = 200;
    const char *serr = NULL;
    if (v.audit == AL_AUDIT_MODE_ASYNC) {
        al_audit_submit_async(rt->audit, &ev, pd->id);
        c->pend = NULL;
        pd->rc = AL_OK;
        pd->c = c;
        decide_committed(pd);
        pend_free(pd);
    } else if (al_audit_submit(rt->audit, &ev, on_audit_done, pd, pd->id, &serr) != AL_OK) {
        /* Refused at once (queue full, closed): fail closed. */
        c->pend = NULL;
        al_log(AL_LOG_ERROR, "audit refused a strict event; refusing the action", "error",
               serr ? serr : "?", NULL);
        respond_error(c, 503, "audit_unavailable", serr ? serr : "audit log unavailable");
        pend_free(pd);
    }
    free(norm);
    json_decref(body);
}

/* Strict record committed (or failed): now answer. */
static void decide_committed(pend_t *pd)
{
    admin_conn_t *c = pd->c;
    if (pd->rc != AL_OK) {
        al_log(AL_LOG_ERROR, "audit record not committed; action refused", "error", pd->err,
               NULL);
        char d[AL_AUDIT_ERR_SIZE + 128];
        snprintf(d, sizeof d, "the action was refused because its audit record could not be "
                              "written: %s", pd->err);
        respond_error(c, 503, "audit_unavailable", d);
        return;
    }
    al_buf_printf(&pd->body, ",\"audit_id\":\"%s\"}", pd->id);
    respond(c, 200, "application/json", NULL, pd->body.p, pd->body.len);
}

static void handle_decide(admin_conn_t *c) { authed(c, ROLE_ANY, decide_then); }

/* ---- live sessions and the kill switch (runtime/sessions.h) ------------------------- */

/* The optional {"reason": TEXT} body of kill/disable. Returns false after
 * answering 400. *out borrows from *doc (json_decref it after use). */
#define MAX_REASON 512
static bool reason_of(admin_conn_t *c, json_t **doc, const char **out)
{
    *doc = NULL;
    *out = "";
    if (!c->req.body.len)
        return true;
    json_error_t je;
    *doc = json_loadb(c->req.body.p, c->req.body.len, JSON_REJECT_DUPLICATES, &je);
    json_t *r = json_object_get(*doc, "reason");
    if (!json_is_object(*doc) || (r && !json_is_string(r)) ||
        (r && strlen(json_string_value(r)) > MAX_REASON)) {
        json_decref(*doc);
        *doc = NULL;
        respond_error(c, 400, "bad_request", "send {\"reason\": TEXT} (at most 512 bytes) or "
                                             "no body");
        return false;
    }
    if (r)
        *out = json_string_value(r);
    return true;
}

/* An admin change: who, what, why. Returns the event id in id. */
static void record_change(admin_conn_t *c, const actor_t *who, const char *action,
                          const char *reason, char id[AL_AUDIT_ID_SIZE])
{
    al_audit_event_t ev;
    al_audit_event_init(&ev);
    ev.kind = AL_AUDIT_KIND_ADMIN;
    ev.protocol = "admin";
    ev.agent = who->name;
    if (who->p) {
        ev.subject = who->p->sub;
        ev.issuer = who->p->iss;
        ev.groups = who->p->groups;
        ev.n_groups = who->p->n_groups;
    }
    ev.action = al_str_c(action);
    ev.decision = "allow";
    ev.rule = who->bootstrap ? "bootstrap_token" : "admin_role";
    ev.reason = reason && *reason ? reason : "no reason given";
    id[0] = 0;
    al_audit_submit_async(c->a->rt->audit, &ev, id);
}

static bool pct_decode(const char *seg, const char *end, char *param, size_t cap);

static void sessions_then(admin_conn_t *c, const actor_t *who)
{
    AL_UNUSED(who);
    char agent[256] = "";
    const char *q = strchr(c->req.target, '?');
    if (q && !strncmp(q + 1, "agent=", 6) &&
        !pct_decode(q + 7, q + 7 + strcspn(q + 7, "&"), agent, sizeof agent)) {
        respond_error(c, 400, "bad_request", "agent=NAME, percent-encoded");
        return;
    }
    al_buf_t b;
    al_buf_init(&b);
    if (al_sess_list_json(c->a->rt, agent[0] ? agent : NULL, &b) != AL_OK)
        respond_error(c, 500, "internal_error", NULL);
    else
        respond(c, 200, "application/json", NULL, b.p, b.len);
    al_buf_free(&b);
}

static void handle_sessions(admin_conn_t *c) { authed(c, ROLE_AUDITOR, sessions_then); }

/* GET /v1/sessions/ID/recording: the session's recording as NDJSON, read
 * (and inflated) on a pool thread. Like /v1/audit, an audited read. */
#define MAX_RECORDING_RESPONSE (64u << 20)

static int recording_line(void *ud, const char *line, size_t n)
{
    pend_t *pd = ud;
    if (pd->body.len + n + 1 > MAX_RECORDING_RESPONSE)
        return AL_AGAIN; /* too large to send whole */
    al_buf_append(&pd->body, line, n);
    al_buf_append(&pd->body, "\n", 1);
    if (pd->body.oom) {
        snprintf(pd->err, sizeof pd->err, "out of memory");
        return AL_ERR;
    }
    return AL_OK;
}

static void recording_work(uv_work_t *w)
{
    pend_t *pd = w->data;
    char path[4096];
    int r = al_rec_find(pd->rec_dir, pd->id, path, sizeof path, pd->err, sizeof pd->err);
    if (r == AL_AGAIN) {
        pd->status = 404;
        return;
    }
    if (r == AL_OK)
        r = al_rec_read(path, recording_line, pd, pd->err, sizeof pd->err);
    pd->status = r == AL_OK ? 200 : r == AL_AGAIN ? 413 : 500;
    if (pd->status != 200)
        al_buf_free(&pd->body);
}

static void recording_after(uv_work_t *w, int status)
{
    pend_t *pd = w->data;
    AL_UNUSED(status);
    admin_conn_t *c = pd->c;
    if (c) {
        c->pend = NULL;
        if (pd->status == 200)
            respond(c, 200, "application/x-ndjson", NULL, pd->body.p ? pd->body.p : "",
                    pd->body.len);
        else if (pd->status == 404)
            respond_error(c, 404, "not_found", "no recording for this session (removed by "
                                               "retention? GET /v1/audit?kind=recording)");
        else if (pd->status == 413)
            respond_error(c, 413, "too_large", "the recording is over 64 MiB decompressed: use "
                                               "airlock replay SESSION --json on the host");
        else
            respond_error(c, 500, "recording_unreadable", pd->err);
    }
    pend_free(pd);
}

static void recording_then(admin_conn_t *c, const actor_t *who)
{
    const char *id = c->req.param;
    char dir[4096];
    if (!al_rec_id_ok(id)) {
        respond_error(c, 400, "bad_request", "not a session id (36 characters: lower-case hex "
                                             "in UUID layout)");
        return;
    }
    if (!al_rec_dir(c->a->rt->snap->cfg, dir, sizeof dir)) {
        respond_error(c, 500, "internal_error", "server.data_dir is too long");
        return;
    }
    record_admin(c, who, c->req.target);
    pend_t *pd = pend_new(c);
    memcpy(pd->id, id, 37); /* al_rec_id_ok: 36 characters */
    pd->rec_dir = al_xstrdup(dir);
    pd->work.data = pd;
    if (uv_queue_work(c->a->rt->loop, &pd->work, recording_work, recording_after) != 0) {
        c->pend = NULL;
        respond_error(c, 500, "internal_error", NULL);
        pend_free(pd);
    }
}

static void handle_session_recording(admin_conn_t *c)
{
    authed(c, ROLE_AUDITOR, recording_then);
}

static void kill_then(admin_conn_t *c, const actor_t *who)
{
    json_t *doc;
    const char *reason;
    if (!reason_of(c, &doc, &reason))
        return;
    const char *id = c->req.param;
    char action[512], ev_id[AL_AUDIT_ID_SIZE];
    snprintf(action, sizeof action, "sessions kill %s", id);
    if (!al_sess_exists(c->a->rt, id)) {
        json_decref(doc);
        respond_error(c, 404, "not_found", "no live session has this id (airlock sessions list)");
        return;
    }
    /* Audited first, so the session's end record can point at it. A session
     * that ended in between is simply gone. */
    record_change(c, who, action, reason, ev_id);
    al_sess_kill(c->a->rt, id, reason, who->name, ev_id);
    al_buf_t b;
    al_buf_init(&b);
    al_buf_puts(&b, "{\"session\":");
    al_buf_json_str(&b, id, strlen(id));
    al_buf_printf(&b, ",\"status\":\"killed\",\"audit_id\":\"%s\"}", ev_id);
    respond(c, 200, "application/json", NULL, b.p, b.len);
    al_buf_free(&b);
    json_decref(doc);
}

static void handle_session_kill(admin_conn_t *c) { authed(c, ROLE_ADMIN, kill_then); }

static void agent_json(al_buf_t *b, al_runtime_t *rt, const char *name,
                       const al_agent_conf_t *a, size_t live, double seen)
{
    al_buf_puts(b, "{\"name\":");
    al_buf_json_str(b, name, strlen(name));
    const char *f[] = {"issuer", a ? a->issuer : NULL, "subject", a ? a->subject : NULL,
                       "owner", a ? a->owner : NULL, "system", a ? a->system : NULL};
    for (size_t i = 0; i < AL_ARRAY_LEN(f); i += 2) {
        al_buf_printf(b, ",\"%s\":", f[i]);
        if (f[i + 1])
            al_buf_json_str(b, f[i + 1], strlen(f[i + 1]));
        else
            al_buf_puts(b, "null");
    }
    al_buf_puts(b, ",\"groups\":[");
    for (size_t i = 0; a && i < a->n_groups; i++) {
        al_buf_puts(b, i ? "," : "");
        al_buf_json_str(b, a->groups[i], strlen(a->groups[i]));
    }
    al_buf_printf(b, "],\"in_inventory\":%s", a ? "true" : "false");
    char t[40];
    if (seen > 0)
        al_buf_printf(b, ",\"last_seen\":\"%s\"", al_time_rfc3339(seen, t, sizeof t));
    else
        al_buf_puts(b, ",\"last_seen\":null");
    al_buf_printf(b, ",\"sessions\":%zu", live);
    const al_revoked_t *r = al_revset_find(rt->revoked, name);
    al_buf_printf(b, ",\"status\":\"%s\",\"disabled\":", r ? "disabled" : "enabled");
    if (!r) {
        al_buf_puts(b, "null}");
        return;
    }
    al_buf_puts(b, "{\"reason\":");
    al_buf_json_str(b, r->reason, strlen(r->reason));
    al_buf_puts(b, ",\"by\":");
    al_buf_json_str(b, r->by, strlen(r->by));
    al_buf_printf(b, ",\"at\":\"%s\",\"audit_id\":", al_time_rfc3339(r->at, t, sizeof t));
    al_buf_json_str(b, r->event_id, strlen(r->event_id));
    al_buf_puts(b, "}}");
}

static void agents_then(admin_conn_t *c, const actor_t *who)
{
    AL_UNUSED(who);
    al_runtime_t *rt = c->a->rt;
    const al_config_t *cfg = rt->snap->cfg;
    /* Disabled names no longer in the inventory stay listed: they are still
     * refused, and `enable` is how they leave the set. */
    size_t n = 0, cap = cfg->n_agents + al_revset_count(rt->revoked);
    const char **names = al_xcalloc(cap ? cap : 1, sizeof *names);
    const al_agent_conf_t **conf = al_xcalloc(cap ? cap : 1, sizeof *conf);
    for (size_t i = 0; i < cfg->n_agents; i++, n++) {
        names[n] = cfg->agents[i].name;
        conf[n] = &cfg->agents[i];
    }
    for (size_t i = 0; i < al_revset_count(rt->revoked); i++) {
        const al_revoked_t *r = al_revset_at(rt->revoked, i);
        if (!al_config_agent(cfg, r->agent))
            names[n++] = r->agent;
    }
    size_t *live = al_xcalloc(n ? n : 1, sizeof *live);
    double *seen = al_xcalloc(n ? n : 1, sizeof *seen);
    al_sess_agent_stats(rt, names, n, live, seen);
    al_buf_t b;
    al_buf_init(&b);
    al_buf_puts(&b, "{\"agents\":[");
    for (size_t i = 0; i < n; i++) {
        al_buf_puts(&b, i ? "," : "");
        agent_json(&b, rt, names[i], conf[i], live[i], seen[i]);
    }
    al_buf_puts(&b, "]}");
    free(names);
    free(conf);
    free(live);
    free(seen);
    if (b.oom)
        respond_error(c, 500, "internal_error", NULL);
    else
        respond(c, 200, "application/json", NULL, b.p, b.len);
    al_buf_free(&b);
}

static void handle_agents(admin_conn_t *c) { authed(c, ROLE_AUDITOR, agents_then); }

static void disable_then(admin_conn_t *c, const actor_t *who)
{
    al_runtime_t *rt = c->a->rt;
    const char *name = c->req.param;
    json_t *doc;
    const char *reason;
    if (!reason_of(c, &doc, &reason))
        return;
    if (!al_config_agent(rt->snap->cfg, name) && !al_revset_find(rt->revoked, name)) {
        /* A typo must not look like a revocation that worked. */
        json_decref(doc);
        respond_error(c, 404, "not_found", "no agent has this name in the inventory "
                                           "(agents[].name; airlock agents list)");
        return;
    }
    char action[512], ev_id[AL_AUDIT_ID_SIZE];
    snprintf(action, sizeof action, "agents disable %s", name);
    record_change(c, who, action, reason, ev_id);
    size_t live = al_sess_count_agent(rt, name);
    al_revoked_t e = {name, reason, who->name, ev_id, al_now()};
    char err[1024];
    int rc = al_killswitch_disable(rt, &e, err, sizeof err);
    al_log(AL_LOG_WARN, "agent disabled (kill switch)", "agent", name, "by", who->name, NULL);
    if (rc != AL_OK) {
        respond_error(c, 500, "not_persisted", err);
    } else {
        al_buf_t b;
        al_buf_init(&b);
        al_buf_puts(&b, "{\"agent\":");
        al_buf_json_str(&b, name, strlen(name));
        al_buf_printf(&b, ",\"status\":\"disabled\",\"sessions_ended\":%zu,"
                          "\"audit_id\":\"%s\"}", live, ev_id);
        respond(c, 200, "application/json", NULL, b.p, b.len);
        al_buf_free(&b);
    }
    json_decref(doc);
}

static void handle_agent_disable(admin_conn_t *c) { authed(c, ROLE_ADMIN, disable_then); }

static void enable_then(admin_conn_t *c, const actor_t *who)
{
    al_runtime_t *rt = c->a->rt;
    const char *name = c->req.param;
    json_t *doc;
    const char *reason;
    if (!reason_of(c, &doc, &reason))
        return;
    char err[1024];
    int rc = AL_AGAIN;
    if (al_revset_find(rt->revoked, name))
        rc = al_killswitch_enable(rt, name, err, sizeof err);
    else if (!al_config_agent(rt->snap->cfg, name)) {
        json_decref(doc);
        respond_error(c, 404, "not_found", "no agent has this name in the inventory "
                                           "(agents[].name; airlock agents list)");
        return;
    }
    if (rc == AL_ERR) {
        json_decref(doc);
        respond_error(c, 500, "not_persisted", err);
        return;
    }
    char action[512], ev_id[AL_AUDIT_ID_SIZE] = "";
    if (rc == AL_OK) {
        snprintf(action, sizeof action, "agents enable %s", name);
        record_change(c, who, action, reason, ev_id);
        al_log(AL_LOG_WARN, "agent enabled again", "agent", name, "by", who->name, NULL);
    }
    al_buf_t b;
    al_buf_init(&b);
    al_buf_puts(&b, "{\"agent\":");
    al_buf_json_str(&b, name, strlen(name));
    al_buf_printf(&b, ",\"status\":\"enabled\",\"was_disabled\":%s,\"audit_id\":",
                  rc == AL_OK ? "true" : "false");
    if (ev_id[0])
        al_buf_printf(&b, "\"%s\"}", ev_id);
    else
        al_buf_puts(&b, "null}");
    respond(c, 200, "application/json", NULL, b.p, b.len);
    al_buf_free(&b);
    json_decref(doc);
}

static void handle_agent_enable(admin_conn_t *c) { authed(c, ROLE_ADMIN, enable_then); }

/* Percent-decodes (RFC 3986 §2.1) one path segment or query value
 * [seg, end) into out. False for a '/', a control character, a bad escape,
 * or no room. */
static bool pct_decode(const char *seg, const char *end, char *param, size_t cap)
{
    size_t n = 0;
    for (const char *p = seg; p < end; p++) {
        int ch = (unsigned char)*p;
        if (ch == '/')
            return false;
        if (ch == '%') {
            unsigned v;
            if (end - p < 3 || sscanf(p + 1, "%2x", &v) != 1 || !isxdigit((unsigned char)p[1]) ||
                !isxdigit((unsigned char)p[2]))
                return false;
            ch = (int)v;
            p += 2;
        }
        if (ch < 0x20 || ch == 0x7f || n + 1 >= cap)
            return false;
        param[n++] = (char)ch;
    }
    param[n] = 0;
    return n > 0;
}

/* Matches path against a pattern whose one "*" stands for a single
 * non-empty segment, decoded into param. */
static bool match_param(const char *pattern, const char *path, char *param, size_t cap)
{
    const char *star = strchr(pattern, '*');
    size_t pre = (size_t)(star - pattern), post = strlen(star + 1);
    size_t len = strlen(path);
    if (len <= pre + post || strncmp(path, pattern, pre) || strcmp(path + len - post, star + 1))
        return false;
    return pct_decode(path + pre, path + len - post, param, cap);
}

/* ---- /v1/approvals (approvals/approvals.h, docs/approvals.md) --------------------- */

/* Every call into the approvals store may fsync (listing times out what is
 * due), so it runs on a uv pool thread; the answer and the audit record are
 * made back on the control loop. */
enum { APPR_LIST = 1, APPR_GET, APPR_APPROVE, APPR_DENY };

typedef struct appr_job {
    int op;
    char id[256];
    char state[32], agent[256], target[256]; /* list filter */
    al_approval_filter_t filter;
    /* the approver, copied (the connection may go while the job runs) */
    al_principal_t *p;
    bool bootstrap;
    char *name;
    char *grant_for, *reason;
    /* results */
    al_approval_status_t st;
    al_approval_outcome_t out;
    json_t *doc;            /* list / get answer, or the request after a vote */
    char err[AL_APPROVALS_ERR_SIZE];
} appr_job_t;

static void appr_job_free(appr_job_t *j)
{
    if (!j)
        return;
    al_principal_unref(&j->p);
    free(j->name);
    free(j->grant_for);
    free(j->reason);
    json_decref(j->doc);
    free(j);
}

static int appr_http_status(al_approval_status_t st)
{
    switch (st) {
    case AL_APPR_OK: return 200;
    case AL_APPR_UNKNOWN_REQUEST: return 404;
    case AL_APPR_NOT_PENDING:
    case AL_APPR_EXPIRED:
    case AL_APPR_ALREADY_VOTED: return 409;
    case AL_APPR_SELF_APPROVAL:
    case AL_APPR_NOT_AN_APPROVER:
    case AL_APPR_NO_IDENTITY: return 403;
    case AL_APPR_STORE_ERROR: return 503;
    default: return 400;
    }
}

static const char *appr_detail(al_approval_status_t st)
{
    switch (st) {
    case AL_APPR_UNKNOWN_REQUEST: return "no approval request has this id (airlock approvals list)";
    case AL_APPR_NOT_PENDING: return "this request has already been decided";
    case AL_APPR_EXPIRED: return "this request expired before it was decided; it is now timed_out";
    case AL_APPR_ALREADY_VOTED: return "you have already approved this request";
    case AL_APPR_SELF_APPROVAL: return "you raised this request; someone else must decide it";
    case AL_APPR_NOT_AN_APPROVER:
        return "you hold none of the groups in this rule's approvers";
    case AL_APPR_NO_IDENTITY: return "your token has no issuer and subject";
    case AL_APPR_BAD_GRANT: return "\"for\" must be a duration from 1s to 7d, e.g. 15m";
    case AL_APPR_REASON_REQUIRED: return "a denial needs a reason: send {\"reason\": TEXT}";
    case AL_APPR_STORE_ERROR: return "the approvals store failed; nothing changed";
    default: return al_approval_reason(st);
    }
}

static void appr_work(uv_work_t *w)
{
    pend_t *pd = w->data;
    appr_job_t *j = pd->appr;
    al_approvals_t *ap = pd->a->rt->approvals;
    double now = al_now();
    if (j->op == APPR_LIST) {
        j->doc = al_approvals_list_json(ap, &j->filter, now, j->err, sizeof j->err);
        j->st = j->doc ? AL_APPR_OK : AL_APPR_STORE_ERROR;
        return;
    }
    if (j->op == APPR_GET) {
        j->doc = al_approvals_get_json(ap, j->id, j->err, sizeof j->err);
        j->st = j->doc ? AL_APPR_OK
                : !strcmp(j->err, "unknown_request") ? AL_APPR_UNKNOWN_REQUEST
                                                      : AL_APPR_STORE_ERROR;
        return;
    }
    al_approver_t who = {.name = j->name, .bootstrap = j->bootstrap};
    if (j->p) {
        who.subject = j->p->sub;
        who.issuer = j->p->iss;
        who.groups = j->p->groups;
        who.n_groups = j->p->n_groups;
    }
    if (j->op == APPR_APPROVE)
        j->st = al_approvals_approve(ap, j->id, &who, j->grant_for, j->reason, now, &j->out);
    else
        j->st = al_approvals_deny(ap, j->id, &who, j->reason, now, &j->out);
    /* for the audit record: the request's agent, target and rule */
    char e[AL_APPROVALS_ERR_SIZE];
    j->doc = al_approvals_get_json(ap, j->id, e, sizeof e);
}

static const char *jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* An approve or deny, accepted or refused, is an admin audit event that
 * names the request (approval_id) and, once approved, the grant. */
static void appr_audit(pend_t *pd, const appr_job_t *j, char id[AL_AUDIT_ID_SIZE])
{
    char action[400], reason[AL_APPROVALS_MAX_REASON + 200];
    bool ok = j->st == AL_APPR_OK;
    snprintf(action, sizeof action, "approvals %s %s", j->op == APPR_APPROVE ? "approve" : "deny",
             j->id);
    if (!ok)
        snprintf(reason, sizeof reason, "%s", al_approval_reason(j->st));
    else if (j->op == APPR_DENY)
        snprintf(reason, sizeof reason, "denied: %s", j->reason ? j->reason : "");
    else if (j->out.state == AL_APPROVAL_APPROVED)
        snprintf(reason, sizeof reason, "approved; grant %s (%s)%s%s", j->out.grant_id,
                 al_grant_kind_name(j->out.grant_kind), j->reason ? ": " : "",
                 j->reason ? j->reason : "");
    else
        snprintf(reason, sizeof reason, "approval %d of %d recorded%s%s", j->out.approvals,
                 j->out.needed, j->reason ? ": " : "", j->reason ? j->reason : "");
    al_audit_event_t ev;
    al_audit_event_init(&ev);
    ev.kind = AL_AUDIT_KIND_ADMIN;
    ev.protocol = "admin";
    ev.agent = j->name;
    if (j->p) {
        ev.subject = j->p->sub;
        ev.issuer = j->p->iss;
        ev.groups = j->p->groups;
        ev.n_groups = j->p->n_groups;
    }
    ev.target = jstr(j->doc, "target");
    ev.action = al_str_c(action);
    ev.decision = ok ? "allow" : "deny";
    ev.rule = jstr(j->doc, "rule");
    ev.reason = reason;
    ev.approval_id = j->id;
    id[0] = 0;
    al_audit_submit_async(pd->a->rt->audit, &ev, id);
}

static void appr_after(uv_work_t *w, int status)
{
    pend_t *pd = w->data;
    appr_job_t *j = pd->appr;
    admin_conn_t *c = pd->c;
    AL_UNUSED(status);
    char ev_id[AL_AUDIT_ID_SIZE] = "";
    bool vote = j->op == APPR_APPROVE || j->op == APPR_DENY;
    if (vote)
        appr_audit(pd, j, ev_id);
    if (vote && j->st == AL_APPR_OK)
        al_runtime_approvals_kick(pd->a->rt);
    if (c) {
        c->pend = NULL;
        if (j->st != AL_APPR_OK) {
            const char *code = al_approval_reason(j->st);
            al_buf_t b;
            al_buf_init(&b);
            al_buf_puts(&b, "{\"error\":");
            al_buf_json_str(&b, code, strlen(code));
            al_buf_puts(&b, ",\"reason\":");
            al_buf_json_str(&b, code, strlen(code));
            const char *d = j->st == AL_APPR_STORE_ERROR && j->err[0] ? j->err
                                                                      : appr_detail(j->st);
            al_buf_puts(&b, ",\"detail\":");
            al_buf_json_str(&b, d, strlen(d));
            if (vote && (j->st == AL_APPR_NOT_PENDING || j->st == AL_APPR_EXPIRED))
                al_buf_printf(&b, ",\"state\":\"%s\"", al_approval_state_name(j->out.state));
            if (j->doc && vote)
                al_buf_printf(&b, ",\"id\":\"%s\"", jstr(j->doc, "id") ? jstr(j->doc, "id") : "");
            al_buf_puts(&b, "}");
            respond_json(c, appr_http_status(j->st), NULL, b.oom ? "{}" : b.p);
            al_buf_free(&b);
        } else if (!vote) {
            char *s = json_dumps(j->doc, JSON_COMPACT);
            if (s)
                respond_json(c, 200, NULL, s);
            else
                respond_error(c, 500, "internal_error", NULL);
            free(s);
        } else {
            const al_approval_outcome_t *o = &j->out;
            al_buf_t b;
            al_buf_init(&b);
            al_buf_puts(&b, "{\"id\":");
            al_buf_json_str(&b, j->id, strlen(j->id));
            al_buf_printf(&b, ",\"state\":\"%s\",\"approvals\":%d,\"needed\":%d,\"grant_id\":",
                          al_approval_state_name(o->state), o->approvals, o->needed);
            if (o->grant_id[0]) {
                char t[40];
                al_buf_printf(&b, "\"%s\",\"grant_kind\":\"%s\",\"grant_expires_at\":\"%s\"",
                              o->grant_id, al_grant_kind_name(o->grant_kind),
                              al_time_rfc3339(o->grant_expires_at, t, sizeof t));
            } else {
                al_buf_puts(&b, "null,\"grant_kind\":null,\"grant_expires_at\":null");
            }
            al_buf_puts(&b, ",\"audit_id\":");
            if (ev_id[0])
                al_buf_json_str(&b, ev_id, strlen(ev_id));
            else
                al_buf_puts(&b, "null");
            al_buf_puts(&b, "}");
            respond_json(c, 200, NULL, b.oom ? "{}" : b.p);
            al_buf_free(&b);
        }
    }
    appr_job_free(j);
    pd->appr = NULL;
    pend_free(pd);
}

static void appr_queue(admin_conn_t *c, appr_job_t *j)
{
    pend_t *pd = pend_new(c);
    pd->appr = j;
    pd->work.data = pd;
    if (uv_queue_work(c->a->rt->loop, &pd->work, appr_work, appr_after) != 0) {
        c->pend = NULL;
        respond_error(c, 500, "internal_error", NULL);
        appr_job_free(j);
        pd->appr = NULL;
        pend_free(pd);
    }
}

static appr_job_t *appr_job_new(admin_conn_t *c, const actor_t *who, int op)
{
    appr_job_t *j = al_xcalloc(1, sizeof *j);
    j->op = op;
    snprintf(j->id, sizeof j->id, "%s", c->req.param);
    j->bootstrap = who->bootstrap;
    j->name = al_xstrdup(who->name ? who->name : "?");
    if (who->p)
        j->p = al_principal_ref((al_principal_t *)who->p);
    return j;
}

/* GET /v1/approvals[?state=S&agent=A&target=T&limit=N] */
static void appr_list_then(admin_conn_t *c, const actor_t *who)
{
    appr_job_t *j = appr_job_new(c, who, APPR_LIST);
    const char *q = strchr(c->req.target, '?');
    for (const char *kv = q ? q + 1 : NULL; kv && *kv;) {
        size_t n = strcspn(kv, "&");
        const char *eq = memchr(kv, '=', n);
        char *slot = NULL;
        size_t cap = 0;
        char lim[16];
        if (eq && (size_t)(eq - kv) == 5 && !strncmp(kv, "state", 5))
            slot = j->state, cap = sizeof j->state;
        else if (eq && (size_t)(eq - kv) == 5 && !strncmp(kv, "agent", 5))
            slot = j->agent, cap = sizeof j->agent;
        else if (eq && (size_t)(eq - kv) == 6 && !strncmp(kv, "target", 6))
            slot = j->target, cap = sizeof j->target;
        else if (eq && (size_t)(eq - kv) == 5 && !strncmp(kv, "limit", 5))
            slot = lim, cap = sizeof lim;
        if (!slot || !pct_decode(eq + 1, kv + n, slot, cap)) {
            appr_job_free(j);
            respond_error(c, 400, "bad_filter", "filters: state=S, agent=NAME, target=NAME, "
                                                "limit=N (percent-encoded)");
            return;
        }
        if (slot == lim) {
            char *end;
            long v = strtol(lim, &end, 10);
            if (*end || v < 1 || v > 10000) {
                appr_job_free(j);
                respond_error(c, 400, "bad_filter", "limit is 1 to 10000");
                return;
            }
            j->filter.limit = (size_t)v;
        }
        kv += n + (kv[n] == '&');
    }
    al_approval_state_t st;
    if (j->state[0] && al_approval_state_parse(j->state, &st) != AL_OK) {
        appr_job_free(j);
        respond_error(c, 400, "bad_filter", "state is one of pending, approved, denied, "
                                            "timed_out, cancelled, abandoned");
        return;
    }
    j->filter.state = j->state[0] ? j->state : NULL;
    j->filter.agent = j->agent[0] ? j->agent : NULL;
    j->filter.target = j->target[0] ? j->target : NULL;
    appr_queue(c, j);
}

static void handle_approvals(admin_conn_t *c)
{
    authed(c, ROLE_APPROVER | ROLE_AUDITOR, appr_list_then);
}

static void appr_get_then(admin_conn_t *c, const actor_t *who)
{
    appr_queue(c, appr_job_new(c, who, APPR_GET));
}

static void handle_approval_get(admin_conn_t *c)
{
    authed(c, ROLE_APPROVER | ROLE_AUDITOR, appr_get_then);
}

/* POST /v1/approvals/ID/approve {"for": "15m", "reason": TEXT} (both optional)
 * POST /v1/approvals/ID/deny {"reason": TEXT} */
static void appr_vote_then(admin_conn_t *c, const actor_t *who, int op)
{
    json_t *doc = NULL;
    if (c->req.body.len) {
        json_error_t je;
        doc = json_loadb(c->req.body.p, c->req.body.len, JSON_REJECT_DUPLICATES, &je);
    }
    json_t *f = json_object_get(doc, "for"), *r = json_object_get(doc, "reason");
    if ((c->req.body.len && !json_is_object(doc)) || (f && !json_is_string(f) && !json_is_null(f)) ||
        (r && !json_is_string(r) && !json_is_null(r)) || (f && op == APPR_DENY)) {
        json_decref(doc);
        respond_error(c, 400, "bad_request",
                      op == APPR_DENY ? "send {\"reason\": TEXT}"
                                      : "send {\"for\": DURATION, \"reason\": TEXT} (both "
                                        "optional) or no body");
        return;
    }
    appr_job_t *j = appr_job_new(c, who, op);
    if (json_is_string(f) && *json_string_value(f))
        j->grant_for = al_xstrdup(json_string_value(f));
    if (json_is_string(r) && *json_string_value(r))
        j->reason = al_xstrdup(json_string_value(r));
    json_decref(doc);
    appr_queue(c, j);
}

static void appr_approve_then(admin_conn_t *c, const actor_t *who)
{
    appr_vote_then(c, who, APPR_APPROVE);
}

static void appr_deny_then(admin_conn_t *c, const actor_t *who)
{
    appr_vote_then(c, who, APPR_DENY);
}

static void handle_approval_approve(admin_conn_t *c)
{
    authed(c, ROLE_APPROVER, appr_approve_then);
}

static void handle_approval_deny(admin_conn_t *c) { authed(c, ROLE_APPROVER, appr_deny_then); }

/* ---- the web console (admin/console.c) ------------------------------------------- */

/* Script and style come from this origin only; nothing inline, no frames,
 * no forms posted anywhere (W3C CSP Level 3; RFC 7034 X-Frame-Options). */
#define CONSOLE_HEADERS                                                                       \
    "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; "      \
    "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; "              \
    "frame-ancestors 'none'\r\n"                                                              \
    "X-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\n"                              \
    "Cross-Origin-Opener-Policy: same-origin\r\n"

static void handle_console(admin_conn_t *c)
{
    const char *ctype, *body;
    size_t len;
    if (al_admin_console_asset(c->req.path, &ctype, &body, &len) != AL_OK) {
        respond_error(c, 404, "not_found", NULL);
        return;
    }
    respond(c, 200, ctype, CONSOLE_HEADERS, body, len);
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
        const char *path, *method;
        void (*fn)(admin_conn_t *);
    } routes[] = {
        {"/healthz", "GET", handle_healthz},
        {"/metrics", "GET", handle_metrics},
        {"/v1/whoami", "GET", handle_whoami},
        {"/v1/audit", "GET", handle_audit},
        {"/v1/decide", "POST", handle_decide},
        {"/v1/sessions", "GET", handle_sessions},
        {"/v1/agents", "GET", handle_agents},
        {"/v1/approvals", "GET", handle_approvals},
        {"/", "GET", handle_console},
        {"/console.js", "GET", handle_console},
        {"/console.css", "GET", handle_console},
        /* pattern routes: "*" is one path segment (c->req.param) */
        {"/v1/sessions/*/kill", "POST", handle_session_kill},
        {"/v1/sessions/*/recording", "GET", handle_session_recording},
        {"/v1/agents/*/disable", "POST", handle_agent_disable},
        {"/v1/agents/*/enable", "POST", handle_agent_enable},
        {"/v1/approvals/*/approve", "POST", handle_approval_approve},
        {"/v1/approvals/*/deny", "POST", handle_approval_deny},
        {"/v1/approvals/*", "GET", handle_approval_get},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(routes); i++) {
        if (strchr(routes[i].path, '*')) {
            if (!match_param(routes[i].path, r->path, r->param, sizeof r->param))
                continue;
        } else if (strcmp(r->path, routes[i].path)) {
            continue;
        }
        if (strcmp(r->method, routes[i].method)) {
            char allow[64];
            snprintf(allow, sizeof allow, "Allow: %s\r\n", routes[i].method);
            respond_json(c, 405, allow, "{\"error\":\"method_not_allowed\"}");
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
    snprintf(r->target, sizeof r->target, "%.*s", (int)h->target.len, h->target.p);
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
    al_principal_unref(&c->principal);
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
    if (c->pend) { /* its work finishes without us */
        c->pend->c = NULL;
        c->pend = NULL;
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
    pthread_mutex_lock(&a->done_lock);
    a->done_closed = true;
    pthread_mutex_unlock(&a->done_lock);
    if (a->done_async_open) {
        uv_close((uv_handle_t *)&a->done_async, listener_closed);
        a->done_async_open = false;
    }
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
    if (a->done_async_open) {
        pthread_mutex_lock(&a->done_lock);
        a->done_closed = true;
        pthread_mutex_unlock(&a->done_lock);
        uv_close((uv_handle_t *)&a->done_async, listener_closed);
        uv_run(a->rt->loop, UV_RUN_NOWAIT);
    }
    for (pend_t *pd = a->done, *n; pd; pd = n) {
        n = pd->next;
        pend_free(pd);
    }
    pthread_mutex_destroy(&a->done_lock);
    al_token_cache_free(&a->cache);
    al_sql_free(&a->sql);
    if (a->bootstrap) {
        al_wipe(a->bootstrap, a->bootstrap_len);
        al_free(&a->bootstrap);
    }
    al_free(pa);
}
