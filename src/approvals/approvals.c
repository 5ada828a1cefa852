/*
 * approvals.c - the approvals service: requests, votes, cancellation, expiry.
 *
 * Every state change is one BEGIN IMMEDIATE transaction on the store under
 * the service mutex, so a decision is durable before anyone hears of it:
 * waiters are called, and the grant is usable, only after COMMIT. Waiters
 * are called after the mutex is released (waiters.c).
 *
 * States (docs/approvals.md): pending -> approved | denied | timed_out |
 * cancelled | abandoned; only pending ever changes, and the UPDATE says
 * `AND state='pending'`, so two deciders cannot both win.
 */
#include <stdio.h>
#include <stdlib.h>

#include "approvals/approvals_int.h"
#include "audit/audit.h"

static const char *const state_names[] = {
    [AL_APPROVAL_PENDING] = "pending",     [AL_APPROVAL_APPROVED] = "approved",
    [AL_APPROVAL_DENIED] = "denied",       [AL_APPROVAL_TIMED_OUT] = "timed_out",
    [AL_APPROVAL_CANCELLED] = "cancelled", [AL_APPROVAL_ABANDONED] = "abandoned",
};

const char *al_approval_state_name(al_approval_state_t s)
{
    return (size_t)s < AL_ARRAY_LEN(state_names) ? state_names[s] : "pending";
}

int al_approval_state_parse(const char *s, al_approval_state_t *out)
{
    for (size_t i = 0; s && i < AL_ARRAY_LEN(state_names); i++)
        if (!strcmp(s, state_names[i])) {
            *out = (al_approval_state_t)i;
            return AL_OK;
        }
    return AL_ERR;
}

static const char *const reasons[] = {
    [AL_APPR_OK] = "ok",
    [AL_APPR_UNKNOWN_REQUEST] = "unknown_request",
    [AL_APPR_NOT_PENDING] = "not_pending",
    [AL_APPR_EXPIRED] = "expired",
    [AL_APPR_SELF_APPROVAL] = "self_approval",
    [AL_APPR_NOT_AN_APPROVER] = "not_an_approver",
    [AL_APPR_ALREADY_VOTED] = "already_voted",
    [AL_APPR_NO_IDENTITY] = "no_identity",
    [AL_APPR_BAD_GRANT] = "bad_grant",
    [AL_APPR_REASON_REQUIRED] = "reason_required",
    [AL_APPR_TOO_MANY_PENDING] = "too_many_pending",
    [AL_APPR_ACTION_TOO_LARGE] = "action_too_large",
    [AL_APPR_BAD_REQUEST] = "bad_request",
    [AL_APPR_STORE_ERROR] = "store_unavailable",
};

const char *al_approval_reason(al_approval_status_t s)
{
    return (size_t)s < AL_ARRAY_LEN(reasons) && reasons[s] ? reasons[s] : "store_unavailable";
}

al_approval_state_t al__state_of(const unsigned char *s)
{
    al_approval_state_t st = AL_APPROVAL_PENDING;
    if (s && al_approval_state_parse((const char *)s, &st) != AL_OK)
        st = AL_APPROVAL_CANCELLED; /* unknown text: never treat as pending */
    return st;
}

static bool ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* ---- open, configure, close ---------------------------------------------------------- */

const char *al_approvals_path(const al_config_t *cfg, char *buf, size_t cap)
{
    int n;
    if (cfg && cfg->approvals.path)
        n = snprintf(buf, cap, "%s", cfg->approvals.path);
    else
        n = snprintf(buf, cap, "%s/approvals.db",
                     cfg && cfg->server.data_dir ? cfg->server.data_dir : ".");
    return n < 0 || (size_t)n >= cap ? NULL : buf;
}

/* Runs one restart-recovery statement; AL_OK or AL_ERR with err. */
static int recover(al_approvals_t *a, al__appr_sql_t which, int64_t now_us, char *err,
                   size_t cap, int64_t *changed)
{
    sqlite3_stmt *st = al__appr_stmt(&a->db, which);
    if (!st) {
        snprintf(err, cap, "approvals store: cannot prepare recovery at %s", a->db.path);
        return AL_ERR;
    }
    if (which != AL__SQL_RESTART_SESSIONS)
        sqlite3_bind_int64(st, 1, now_us);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        al__appr_set_err(&a->db, "cannot recover after restart", rc, err, cap);
        return AL_ERR;
    }
    *changed = sqlite3_changes(a->db.db);
    return AL_OK;
}

int al_approvals_open(const al_approvals_opts_t *o, al_approvals_t **out, char *err, size_t cap)
{
    *out = NULL;
    al_approvals_t *a = al_xcalloc(1, sizeof *a);
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->fired, NULL);
    a->max_pending = o->max_pending_per_agent > 0 ? o->max_pending_per_agent : 64;
    a->session_max_us = al__us(o->session_grant_max > 0 ? o->session_grant_max : 86400);
    if (al__appr_db_open(&a->db, o->path, err, cap) != AL_OK)
        goto fail;
    int64_t now_us = al__us(o->now > 0 ? o->now : al_now());
    int64_t abandoned = 0, expired = 0, sessions = 0;
    if (al__appr_begin(&a->db) != AL_OK) {
        snprintf(err, cap, "approvals store: cannot begin recovery at %s", a->db.path);
        goto fail;
    }
    if (recover(a, AL__SQL_RESTART_ABANDON, now_us, err, cap, &abandoned) != AL_OK ||
        recover(a, AL__SQL_RESTART_EXPIRE, now_us, err, cap, &expired) != AL_OK ||
        recover(a, AL__SQL_RESTART_SESSIONS, now_us, err, cap, &sessions) != AL_OK) {
        al__appr_rollback(&a->db);
        goto fail;
    }
    if (al__appr_commit(&a->db) != AL_OK) {
        snprintf(err, cap, "approvals store: cannot commit recovery at %s", a->db.path);
        goto fail;
    }
    if (abandoned || expired) {
        char n1[32], n2[32];
        al_log(AL_LOG_INFO, "approval requests closed at start", "abandoned",
               al_log_num(n1, abandoned), "timed_out", al_log_num(n2, expired), NULL);
    }
    a->notify = al__notify_start(o->notify_queue, o->notify_backoff);
    if (!a->notify) {
        snprintf(err, cap, "approvals: cannot start the notifier thread");
        goto fail;
    }
    if (o->cfg)
        al_approvals_configure(a, o->cfg);
    *out = a;
    return AL_OK;
fail:
    al__appr_db_close(&a->db);
    pthread_cond_destroy(&a->fired);
    pthread_mutex_destroy(&a->mu);
    free(a);
    return AL_ERR;
}

void al_approvals_configure(al_approvals_t *a, const al_config_t *cfg)
{
    if (!a || !cfg)
        return;
    al_webhook_conf_t *w = al__webhook_dup(&cfg->approvals.webhook);
    char *url = cfg->approvals.public_url ? al_xstrdup(cfg->approvals.public_url) : NULL;
    pthread_mutex_lock(&a->mu);
    al__webhook_free(&a->webhook);
    al_free(&a->public_url);
    a->webhook = w;
    a->public_url = url;
    if (cfg->approvals.max_pending_per_agent > 0)
        a->max_pending = cfg->approvals.max_pending_per_agent;
    pthread_mutex_unlock(&a->mu);
}

void al_approvals_close(al_approvals_t **pa)
{
    al_approvals_t *a = *pa;
    if (!a)
        return;
    al__notify_stop(&a->notify);
    pthread_mutex_lock(&a->mu);
    al__waiters_drop(a);
    al__appr_db_close(&a->db);
    al__webhook_free(&a->webhook);
    al_free(&a->public_url);
    pthread_mutex_unlock(&a->mu);
    pthread_cond_destroy(&a->fired);
    pthread_mutex_destroy(&a->mu);
    al_free(pa);
}

void al_approvals_notify_stats(al_approvals_t *a, al_approvals_notify_stats_t *out)
{
    al__notify_stats(a ? a->notify : NULL, out);
}

/* ---- create ------------------------------------------------------------------------ */

static char *list_json(const char *const *v, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        json_array_append_new(arr, al__json_text(v[i], strlen(v[i])));
    char *s = arr ? json_dumps(arr, JSON_COMPACT) : NULL;
    json_decref(arr);
    return s;
}

static int64_t count_pending(al_approvals_t *a, const char *agent, int64_t now_us, int *rc)
{
    sqlite3_stmt *st = al__appr_stmt(&a->db, AL__SQL_REQ_COUNT_PENDING);
    if (!st) {
        *rc = SQLITE_ERROR;
        return -1;
    }
    al__bind_text(st, 1, agent);
    sqlite3_bind_int64(st, 2, now_us);
    *rc = sqlite3_step(st);
    int64_t n = *rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    *rc = *rc == SQLITE_ROW ? SQLITE_OK : *rc;
    sqlite3_reset(st);
    return n;
}

/* The retry-mode request this one repeats: 1 found (out filled), 0 none,
 * -1 store error. */
static int find_retry(al_approvals_t *a, const al_approval_req_t *r, const char *fp,
                      int64_t now_us, al_approval_created_t *out)
{
    sqlite3_stmt *st = al__appr_stmt(&a->db, AL__SQL_REQ_FIND_RETRY);
    if (!st)
        return -1;
    al__bind_text(st, 1, r->agent);
    al__bind_text(st, 2, r->target);
    al__bind_text(st, 3, fp);
    al__bind_text(st, 4, r->rule->name);
    sqlite3_bind_int64(st, 5, now_us);
    int rc = sqlite3_step(st);
    int res = 0;
    if (rc == SQLITE_ROW) {
        al__col_text(st, 0, out->id, sizeof out->id);
        out->expires_at = (double)sqlite3_column_int64(st, 1) / 1e6;
        out->existing = true;
        res = 1;
    } else if (rc != SQLITE_DONE) {
        al__appr_log_err(&a->db, "cannot look up requests", rc);
        res = -1;
    }
    sqlite3_reset(st);
    return res;
}

static void notify_new(al_approvals_t *a, const al_approval_req_t *r,
                       const al_approval_created_t *c, double now)
{
    const al_webhook_conf_t *rw = &r->rule->webhook;
    pthread_mutex_lock(&a->mu);
    al_webhook_conf_t *w = al__webhook_dup(al_webhook_set(rw) ? rw : a->webhook);
    char *url = a->public_url ? al_xstrdup(a->public_url) : NULL;
    pthread_mutex_unlock(&a->mu);
    if (w) {
        al__notice_t n = {
            .id = c->id, .agent = r->agent, .owner = r->owner, .target = r->target,
            .protocol = r->protocol, .rule = r->rule->name,
            .mode = r->mode == AL_APPROVAL_RETRY ? "retry" : "wait", .action = r->action,
            .approvers = (const char *const *)r->rule->approvers,
            .n_approvers = r->rule->n_approvers, .min_approvals = r->rule->min_approvals,
            .requested_at = now, .expires_at = c->expires_at, .public_url = url,
        };
        al__notify_post(a->notify, w, c->id, al__appr_notice_body(&n, w->slack));
    }
    al__webhook_free(&w);
    al_free(&url);
}

al_approval_status_t al_approvals_create(al_approvals_t *a, const al_approval_req_t *r,
                                         double now, al_approval_created_t *out)
{
    memset(out, 0, sizeof *out);
    if (!a || !r || !r->agent || !*r->agent || !r->target || !r->protocol || !r->rule ||
        !r->rule->name || (!r->action.p && r->action.len))
        return AL_APPR_BAD_REQUEST;
    if (r->action.len > AL_APPROVALS_MAX_ACTION)
        return AL_APPR_ACTION_TOO_LARGE;
    int64_t now_us = al__us(now);
    int64_t timeout_us = al__us(r->rule->timeout > 0 ? r->rule->timeout : 300);
    al_approvals_fingerprint(r->target, r->protocol, r->action, out->fingerprint);
    char *groups = list_json(r->groups, r->n_groups);
    char *approvers = list_json((const char *const *)r->rule->approvers, r->rule->n_approvers);
    if (!groups || !approvers) {
        free(groups);
        free(approvers);
        return AL_APPR_STORE_ERROR;
    }
    al_approval_status_t res = AL_APPR_STORE_ERROR;
    pthread_mutex_lock(&a->mu);
    if (al__appr_begin(&a->db) != AL_OK)
        goto unlock;
    int found = r->mode == AL_APPROVAL_RETRY ? find_retry(a, r, out->fingerprint, now_us, out)
                                              : 0;
    if (found < 0)
        goto rollback;
    if (found) {
        res = AL_APPR_OK;
        goto rollback; /* nothing written */
    }
    int rc;
    int64_t pending = count_pending(a, r->agent, now_us, &rc);
    if (pending < 0) {
        al__appr_log_err(&a->db, "cannot count requests", rc);
        goto rollback;
    }
    if (pending >= a->max_pending) {
        res = AL_APPR_TOO_MANY_PENDING;
        goto rollback;
    }
    if (al_audit_uuid7(now_us, out->id) != AL_OK)
        goto rollback;
    out->expires_at = (double)(now_us + timeout_us) / 1e6;
    sqlite3_stmt *st = al__appr_stmt(&a->db, AL__SQL_REQ_INSERT);
    if (!st)
        goto rollback;
    al__bind_text(st, 1, out->id);
    al__bind_text(st, 2, r->mode == AL_APPROVAL_RETRY ? "retry" : "wait");
    al__bind_text(st, 3, r->agent);
    al__bind_text(st, 4, r->owner);
    al__bind_text(st, 5, r->subject);
    al__bind_text(st, 6, r->issuer);
    al__bind_text(st, 7, groups);
    al__bind_text(st, 8, r->target);
    al__bind_text(st, 9, r->protocol);
    sqlite3_bind_blob64(st, 10, r->action.len ? r->action.p : "", r->action.len,
                        SQLITE_TRANSIENT);
    al__bind_text(st, 11, out->fingerprint);
    al__bind_text(st, 12, r->rule->name);
    al__bind_text(st, 13, approvers);
    sqlite3_bind_int(st, 14, r->rule->min_approvals > 0 ? r->rule->min_approvals : 1);
    al__bind_text(st, 15, r->rule->grant ? r->rule->grant : "once");
    sqlite3_bind_int64(st, 16, timeout_us);
    al__bind_text(st, 17, r->session_id);
    sqlite3_bind_int64(st, 18, now_us);
    sqlite3_bind_int64(st, 19, now_us + timeout_us);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        al__appr_log_err(&a->db, "cannot store a request", rc);
        goto rollback;
    }
    if (al__appr_commit(&a->db) != AL_OK)
        goto unlock;
    res = AL_APPR_OK;
    goto unlock;
rollback:
    al__appr_rollback(&a->db);
unlock:
    pthread_mutex_unlock(&a->mu);
    free(groups);
    free(approvers);
    if (res != AL_APPR_OK) {
        if (!out->existing)
            memset(out->id, 0, sizeof out->id);
        return res;
    }
    if (!out->existing)
        notify_new(a, r, out, now);
    return res;
}

/* ---- votes --------------------------------------------------------------------------- */

/* A request as a decision needs it. Strings owned here. */
typedef struct req {
    al_approval_state_t state;
    int64_t expires_us, rule_timeout_us;
    int min_approvals;
    char *agent, *subject, *issuer, *approvers, *grant_spec, *session_id, *target, *fp, *rule;
} req_t;

static char *col_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? al_xstrdup((const char *)t) : NULL;
}

static void req_free(req_t *r)
{
    al_free(&r->agent);
    al_free(&r->subject);
    al_free(&r->issuer);
    al_free(&r->approvers);
    al_free(&r->grant_spec);
    al_free(&r->session_id);
    al_free(&r->target);
    al_free(&r->fp);
    al_free(&r->rule);
}

/* Reads request id: AL_APPR_OK, UNKNOWN_REQUEST or STORE_ERROR. */
static al_approval_status_t req_load(al_approvals_t *a, const char *id, req_t *r)
{
    memset(r, 0, sizeof *r);
    sqlite3_stmt *st = al__appr_stmt(&a->db, AL__SQL_REQ_GET);
    if (!st)
        return AL_APPR_STORE_ERROR;
    al__bind_text(st, 1, id);
    int rc = sqlite3_step(st);
    al_approval_status_t res = AL_APPR_OK;
    if (rc == SQLITE_ROW) {
        r->state = al__state_of(sqlite3_column_text(st, 0));
        r->expires_us = sqlite3_column_int64(st, 1);
        r->agent = col_dup(st, 2);
        r->subject = col_dup(st, 3);
        r->issuer = col_dup(st, 4);
        r->approvers = col_dup(st, 5);
        r->min_approvals = sqlite3_column_int(st, 6);
        r->grant_spec = col_dup(st, 7);
        r->rule_timeout_us = sqlite3_column_int64(st, 8);
        r->session_id = col_dup(st, 9);
        r->target = col_dup(st, 10);
        r->fp = col_dup(st, 11);
        r->rule = col_dup(st, 12);
    } else if (rc == SQLITE_DONE) {
        res = AL_APPR_UNKNOWN_REQUEST;
    } else {
        al__appr_log_err(&a->db, "cannot read a request", rc);
        res = AL_APPR_STORE_ERROR;
    }
    sqlite3_reset(st);
    return res;
}

/* Sets a pending request's final state. SQLITE_DONE when it changed. */
static int decide(al_approvals_t *a, const char *id, al_approval_state_t state, int64_t now_us,
                  const char *reason, const char *by, const char *grant_id)
{
    sqlite3_stmt *st = al__appr_stmt(&a->db, AL__SQL_REQ_DECIDE);
    if (!st)
        return SQLITE_ERROR;
    al__bind_text(st, 1, id);
    al__bind_text(st, 2, al_approval_state_name(state));
    sqlite3_bind_int64(st, 3, now_us);
    al__bind_text(st, 4, reason);
    al__bind_text(st, 5, by);
    al__bind_text(st, 6, grant_id);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE && sqlite3_changes(a->db.db) != 1)
        rc = SQLITE_CONSTRAINT; /* not pending any more: cannot happen under BEGIN IMMEDIATE */
    return rc;
}

static bool eq(const char *x, const char *y) { return x && y && !strcmp(x, y); }

/* Whether who may vote on r (pending, not expired: checked by the caller). */
static al_approval_status_t eligible(const req_t *r, const al_approver_t *who)
{
    if (!who->bootstrap && (!who->subject || !*who->subject || !who->issuer || !*who->issuer))
        return AL_APPR_NO_IDENTITY;
    /* Same agent name, or same principal (issuer and subject): the one who
     * raised it. The bootstrap token has no subject; its name is compared
     * like any other (an agent called "bootstrap" cannot use it either). */
    if (eq(who->name, r->agent) ||
        (!who->bootstrap && eq(who->subject, r->subject) && eq(who->issuer, r->issuer)))
        return AL_APPR_SELF_APPROVAL;
    if (who->bootstrap)
        return AL_APPR_OK;
    json_t *groups = r->approvers ? json_loads(r->approvers, 0, NULL) : NULL;
    bool ok = false;
    size_t i;
    json_t *g;
    json_array_foreach(groups, i, g)
    {
        for (size_t k = 0; !ok && json_is_string(g) && k < who->n_groups; k++)
            ok = who->groups[k] && !strcmp(who->groups[k], json_string_value(g));
    }
    json_decref(groups);
    return ok ? AL_APPR_OK : AL_APPR_NOT_AN_APPROVER;
}

/* How an approver is shown (votes, decided_by). */
static const char *who_name(const al_approver_t *who)
{
    return who->name ? who->name : who->bootstrap ? "bootstrap" : who->subject;
}

/* The vote key: one per approver. */
static void voter_key(const al_approver_t *who, al_buf_t *b)
{
    if (who->bootstrap) {
        al_buf_puts(b, "bootstrap");
        return;
    }
    al_buf_puts(b, who->issuer);
    al_buf_append(b, "\x1f", 1);
    al_buf_puts(b, who->subject);
}

/* The reason as stored: control bytes (line breaks included: it ends up in
 * a one-line protocol error) become spaces, cut at AL_APPROVALS_MAX_REASON
 * on a UTF-8 boundary. NULL or "" stays NULL. Heap copy. */
static char *clean_reason(const char *s)
{
    if (!s || !*s)
        return NULL;
    size_t n = strlen(s);
    if (n > AL_APPROVALS_MAX_REASON) {
        n = AL_APPROVALS_MAX_REASON;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--;
    }
    char *c = al_xstrndup(s, n);
    for (char *p = c; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    return c;
}

static bool blank(const char *s)
{
    for (; s && *s; s++)
        if (!ws(*s))
            return false;
    return true;
}

/* The common start of approve and deny: loads, checks pending and expiry
 * (an expired request is timed out here, and its id copied to *expired),
 * and eligibility. Called inside the transaction. */
static al_approval_status_t vote_checks(al_approvals_t *a, const char *id,
                                        const al_approver_t *who, int64_t now_us, req_t *r,
                                        al_approval_outcome_t *out, bool *expired)
{
    al_approval_status_t res = req_load(a, id, r);
    if (res != AL_APPR_OK)
        return res;
    out->state = r->state;
    out->needed = r->min_approvals;
    if (r->state != AL_APPROVAL_PENDING)
        return AL_APPR_NOT_PENDING;
    if (r->expires_us <= now_us) {
        if (decide(a, id, AL_APPROVAL_TIMED_OUT, now_us, "timeout", NULL, NULL) != SQLITE_DONE)
            return AL_APPR_STORE_ERROR;
        out->state = AL_APPROVAL_TIMED_OUT;
        *expired = true;
        return AL_APPR_EXPIRED;
    }
    return eligible(r, who);
}

/* Commits (an expiry found by vote_checks is worth keeping) or rolls back,
 * and fires the waiters of an expired request. */
static al_approval_status_t vote_end(al_approvals_t *a, const char *id, al_approval_status_t res,
                                     bool expired)
{
    if (expired) {
        if (al__appr_commit(&a->db) != AL_OK)
            res = AL_APPR_STORE_ERROR;
    } else {
        al__appr_rollback(&a->db);
    }
    pthread_mutex_unlock(&a->mu);
    if (expired && res == AL_APPR_EXPIRED) {
        char ids[1][AL_APPROVAL_ID_SIZE];
        snprintf(ids[0], sizeof ids[0], "%s", id);
        al__waiters_fire_ids(a, ids, 1, AL_APPROVAL_TIMED_OUT, "timeout");
    }
    return res;
}

static int put_vote(al_approvals_t *a, const char *id, const char *key,
                    const al_approver_t *who, const char *vote, int64_t for_us,
                    const char *reason, int64_t now_us)
{
    sqlite3_stmt *st = al__appr_stmt(&a->db, AL__SQL_VOTE_PUT);
    if (!st)
        return SQLITE_ERROR;
    al__bind_text(st, 1, id);
    al__bind_text(st, 2, key);
    al__bind_text(st, 3, who_name(who));
    al__bind_text(st, 4, who->subject);
    al__bind_text(st, 5, who->issuer);
    sqlite3_bind_int(st, 6, who->bootstrap);
    al__bind_text(st, 7, vote);
    if (for_us > 0)
        sqlite3_bind_int64(st, 8, for_us);
    else
        sqlite3_bind_null(st, 8);
    al__bind_text(st, 9, reason);
    sqlite3_bind_int64(st, 10, now_us);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc;
}

al_approval_status_t al_approvals_approve(al_approvals_t *a, const char *id,
                                          const al_approver_t *who, const char *grant_for,
                                          const char *reason, double now,
                                          al_approval_outcome_t *out)
{
    al_approval_outcome_t tmp;
    if (!out)
        out = &tmp;
    memset(out, 0, sizeof *out);
    if (!a || !id || !who)
        return AL_APPR_BAD_REQUEST;
    int64_t for_us = 0;
    if (grant_for && *grant_for) {
        double d;
        if (al_parse_duration(grant_for, &d) != AL_OK || d < 1 || d > 7 * 86400)
            return AL_APPR_BAD_GRANT;
        for_us = al__us(d);
    }
    int64_t now_us = al__us(now);
    req_t r;
    bool expired = false;
    al_buf_t key;
    al_buf_init(&key);
    char *why = clean_reason(reason);
    char grant_id[AL_APPROVAL_ID_SIZE] = "";
    al_approval_status_t res = AL_APPR_STORE_ERROR;
    pthread_mutex_lock(&a->mu);
    if (al__appr_begin(&a->db) != AL_OK) {
        pthread_mutex_unlock(&a->mu);
        memset(&r, 0, sizeof r);
        goto done;
    }
    res = vote_checks(a, id, who, now_us, &r, out, &expired);
    if (res != AL_APPR_OK) {
        res = vote_end(a, id, res, expired);
        goto done;
    }
    voter_key(who, &key);
    res = AL_APPR_STORE_ERROR;
    sqlite3_stmt *st = key.oom ? NULL : al__appr_stmt(&a->db, AL__SQL_VOTE_GET);
    if (!st) {
        res = vote_end(a, id, res, false);
        goto done;
    }
    al__bind_text(st, 1, id);
    al__bind_text(st, 2, key.p);
    int rc = sqlite3_step(st);
    bool voted = rc == SQLITE_ROW;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        al__appr_log_err(&a->db, "cannot read votes", rc);
        res = vote_end(a, id, res, false);
        goto done;
    }
    if (voted) { /* only approvals are stored for a pending request */
        res = vote_end(a, id, AL_APPR_ALREADY_VOTED, false);
        goto done;
    }
    if ((rc = put_vote(a, id, key.p, who, "approve", for_us, why, now_us)) != SQLITE_DONE) {
        al__appr_log_err(&a->db, "cannot store a vote", rc);
        res = vote_end(a, id, res, false);
        goto done;
    }
    st = al__appr_stmt(&a->db, AL__SQL_VOTE_TALLY);
    if (!st) {
        res = vote_end(a, id, res, false);
        goto done;
    }
    al__bind_text(st, 1, id);
    rc = sqlite3_step(st);
    int approvals = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    int64_t min_for = rc == SQLITE_ROW && sqlite3_column_type(st, 1) != SQLITE_NULL
                          ? sqlite3_column_int64(st, 1)
                          : 0;
    sqlite3_reset(st);
    if (approvals < 0) {
        al__appr_log_err(&a->db, "cannot count votes", rc);
        res = vote_end(a, id, res, false);
        goto done;
    }
    out->approvals = approvals;
    out->state = AL_APPROVAL_PENDING;
    if (approvals >= r.min_approvals) {
        al__grant_plan_t plan;
        al__grant_plan(r.grant_spec, r.rule_timeout_us, min_for, r.session_id != NULL,
                       a->session_max_us, now_us, &plan);
        if (al_audit_uuid7(now_us, grant_id) != AL_OK ||
            (rc = al__grant_insert(&a->db, grant_id, id, &plan, r.agent, r.target, r.fp, r.rule,
                                   r.session_id, now_us)) != SQLITE_DONE ||
            (rc = decide(a, id, AL_APPROVAL_APPROVED, now_us, why,
                         who_name(who), grant_id)) != SQLITE_DONE) {
            al__appr_log_err(&a->db, "cannot approve", rc);
            res = vote_end(a, id, res, false);
            goto done;
        }
        out->state = AL_APPROVAL_APPROVED;
        snprintf(out->grant_id, sizeof out->grant_id, "%s", grant_id);
        out->grant_kind = plan.kind;
        out->grant_expires_at = (double)plan.expires_us / 1e6;
    }
    if (al__appr_commit(&a->db) != AL_OK) {
        pthread_mutex_unlock(&a->mu);
        memset(out, 0, sizeof *out);
        res = AL_APPR_STORE_ERROR;
        goto done;
    }
    al__fire_batch_t fb = {0};
    if (out->state == AL_APPROVAL_APPROVED)
        al__waiters_mark(a, id, &fb);
    pthread_mutex_unlock(&a->mu);
    al_approval_event_t ev = {.id = id, .state = AL_APPROVAL_APPROVED, .reason = why,
                              .grant_id = grant_id};
    al__waiters_fire(a, &fb, &ev);
    res = AL_APPR_OK;
done:
    req_free(&r);
    al_buf_free(&key);
    al_free(&why);
    return res;
}

al_approval_status_t al_approvals_deny(al_approvals_t *a, const char *id,
                                       const al_approver_t *who, const char *reason, double now,
                                       al_approval_outcome_t *out)
{
    al_approval_outcome_t tmp;
    if (!out)
        out = &tmp;
    memset(out, 0, sizeof *out);
    if (!a || !id || !who)
        return AL_APPR_BAD_REQUEST;
    if (blank(reason))
        return AL_APPR_REASON_REQUIRED;
    int64_t now_us = al__us(now);
    char *why = clean_reason(reason);
    req_t r;
    bool expired = false;
    al_buf_t key;
    al_buf_init(&key);
    al_approval_status_t res = AL_APPR_STORE_ERROR;
    pthread_mutex_lock(&a->mu);
    if (al__appr_begin(&a->db) != AL_OK) {
        pthread_mutex_unlock(&a->mu);
        memset(&r, 0, sizeof r);
        goto done;
    }
    res = vote_checks(a, id, who, now_us, &r, out, &expired);
    if (res != AL_APPR_OK) {
        res = vote_end(a, id, res, expired);
        goto done;
    }
    voter_key(who, &key);
    int rc;
    if (key.oom || (rc = put_vote(a, id, key.p, who, "deny", 0, why, now_us)) != SQLITE_DONE ||
        (rc = decide(a, id, AL_APPROVAL_DENIED, now_us, why,
                     who_name(who), NULL)) != SQLITE_DONE) {
        res = vote_end(a, id, AL_APPR_STORE_ERROR, false);
        goto done;
    }
    if (al__appr_commit(&a->db) != AL_OK) {
        pthread_mutex_unlock(&a->mu);
        res = AL_APPR_STORE_ERROR;
        goto done;
    }
    out->state = AL_APPROVAL_DENIED;
    al__fire_batch_t fb = {0};
    al__waiters_mark(a, id, &fb);
    pthread_mutex_unlock(&a->mu);
    al_approval_event_t ev = {.id = id, .state = AL_APPROVAL_DENIED, .reason = why};
    al__waiters_fire(a, &fb, &ev);
    res = AL_APPR_OK;
done:
    req_free(&r);
    al_buf_free(&key);
    al_free(&why);
    return res;
}

/* ---- cancel, sessions, agents, expiry --------------------------------------------------- */

al_approval_status_t al_approvals_cancel(al_approvals_t *a, const char *id, const char *why,
                                         double now)
{
    if (!a || !id)
        return AL_APPR_BAD_REQUEST;
    char *reason = clean_reason(why ? why : "cancelled");
    int64_t now_us = al__us(now);
    req_t r;
    al_approval_status_t res = AL_APPR_STORE_ERROR;
    al__fire_batch_t fb = {0};
    pthread_mutex_lock(&a->mu);
    if (al__appr_begin(&a->db) != AL_OK) {
        memset(&r, 0, sizeof r);
        goto unlock;
    }
    res = req_load(a, id, &r);
    if (res == AL_APPR_OK && r.state != AL_APPROVAL_PENDING)
        res = AL_APPR_NOT_PENDING;
    if (res == AL_APPR_OK &&
        decide(a, id, AL_APPROVAL_CANCELLED, now_us, reason, NULL, NULL) != SQLITE_DONE)
        res = AL_APPR_STORE_ERROR;
    if (res != AL_APPR_OK)
        al__appr_rollback(&a->db);
    else if (al__appr_commit(&a->db) != AL_OK)
        res = AL_APPR_STORE_ERROR;
    if (res == AL_APPR_OK)
        al__waiters_mark(a, id, &fb);
unlock:
    pthread_mutex_unlock(&a->mu);
    al_approval_event_t ev = {.id = id, .state = AL_APPROVAL_CANCELLED, .reason = reason};
    al__waiters_fire(a, &fb, &ev);
    req_free(&r);
    al_free(&reason);
    return res;
}

/* The ids a SELECT (bound by bind) returns; heap array in *ids. -1 on a
 * store error. */
typedef char req_id_t[AL_APPROVAL_ID_SIZE];

static ssize_t select_ids(al_approvals_t *a, al__appr_sql_t which, const char *s1, int64_t i1,
                          req_id_t **ids)
{
    *ids = NULL;
    sqlite3_stmt *st = al__appr_stmt(&a->db, which);
    if (!st)
        return -1;
    if (s1)
        al__bind_text(st, 1, s1);
    else
        sqlite3_bind_int64(st, 1, i1);
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            req_id_t *v = al_realloc(*ids, cap * sizeof *v);
            if (!v) {
                rc = SQLITE_NOMEM;
                break;
            }
            *ids = v;
        }
        al__col_text(st, 0, (*ids)[n], AL_APPROVAL_ID_SIZE);
        n++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        al__appr_log_err(&a->db, "cannot list requests", rc);
        al_free(ids);
        return -1;
    }
    return (ssize_t)n;
}

/* Runs an UPDATE: ?1 = s1, ?2 = i2 and ?3 = s3 when the statement has
 * them. SQLITE_DONE on success (logged otherwise). */
static int run_update(al_approvals_t *a, al__appr_sql_t which, const char *s1, int64_t i2,
                      const char *s3)
{
    sqlite3_stmt *st = al__appr_stmt(&a->db, which);
    if (!st)
        return SQLITE_ERROR;
    int np = sqlite3_bind_parameter_count(st);
    al__bind_text(st, 1, s1);
    if (np >= 2)
        sqlite3_bind_int64(st, 2, i2);
    if (np >= 3)
        al__bind_text(st, 3, s3);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        al__appr_log_err(&a->db, "cannot update", rc);
    return rc;
}

int al_approvals_session_end(al_approvals_t *a, const char *session_id, double now)
{
    if (!a || !session_id)
        return 0;
    req_id_t *ids = NULL;
    ssize_t n = -1;
    pthread_mutex_lock(&a->mu);
    if (al__appr_begin(&a->db) != AL_OK)
        goto unlock;
    n = select_ids(a, AL__SQL_SESSION_LIST, session_id, 0, &ids);
    if (n < 0 ||
        run_update(a, AL__SQL_SESSION_CANCEL, session_id, al__us(now), NULL) !=
            SQLITE_DONE ||
        run_update(a, AL__SQL_SESSION_GRANTS_END, session_id, 0, NULL) != SQLITE_DONE) {
        al__appr_rollback(&a->db);
        n = -1;
    } else if (al__appr_commit(&a->db) != AL_OK) {
        n = -1;
    }
unlock:
    pthread_mutex_unlock(&a->mu);
    if (n > 0)
        al__waiters_fire_ids(a, ids, (size_t)n, AL_APPROVAL_CANCELLED, "client_disconnected");
    al_free(&ids);
    return n < 0 ? AL_ERR : (int)n;
}

int al_approvals_cancel_agent(al_approvals_t *a, const char *agent, const char *why, double now)
{
    if (!a || !agent)
        return 0;
    char *reason = clean_reason(why ? why : "agent_disabled");
    req_id_t *ids = NULL;
    ssize_t n = -1;
    pthread_mutex_lock(&a->mu);
    if (al__appr_begin(&a->db) != AL_OK)
        goto unlock;
    n = select_ids(a, AL__SQL_AGENT_LIST, agent, 0, &ids);
    if (n < 0 ||
        run_update(a, AL__SQL_AGENT_CANCEL, agent, al__us(now), reason) != SQLITE_DONE ||
        run_update(a, AL__SQL_AGENT_REVOKE, agent, 0, reason) != SQLITE_DONE) {
        al__appr_rollback(&a->db);
        n = -1;
    } else if (al__appr_commit(&a->db) != AL_OK) {
        n = -1;
    }
unlock:
    pthread_mutex_unlock(&a->mu);
    if (n > 0)
        al__waiters_fire_ids(a, ids, (size_t)n, AL_APPROVAL_CANCELLED, reason);
    al_free(&ids);
    al_free(&reason);
    return n < 0 ? AL_ERR : (int)n;
}

int al_approvals_tick(al_approvals_t *a, double now, double *next)
{
    if (next)
        *next = 0;
    if (!a)
        return 0;
    int64_t now_us = al__us(now);
    req_id_t *ids = NULL;
    ssize_t n = -1;
    pthread_mutex_lock(&a->mu);
    if (al__appr_begin(&a->db) != AL_OK)
        goto unlock;
    n = select_ids(a, AL__SQL_DUE_LIST, NULL, now_us, &ids);
    if (n > 0) {
        sqlite3_stmt *st = al__appr_stmt(&a->db, AL__SQL_DUE_EXPIRE);
        int rc = SQLITE_ERROR;
        if (st) {
            sqlite3_bind_int64(st, 1, now_us);
            rc = sqlite3_step(st);
            sqlite3_reset(st);
        }
        if (rc != SQLITE_DONE) {
            al__appr_log_err(&a->db, "cannot time out requests", rc);
            n = -1;
        }
    }
    if (n < 0) {
        al__appr_rollback(&a->db);
        goto unlock;
    }
    if (al__appr_commit(&a->db) != AL_OK) {
        n = -1;
        goto unlock;
    }
    sqlite3_stmt *st = next ? al__appr_stmt(&a->db, AL__SQL_NEXT_DEADLINE) : NULL;
    if (st) {
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
            *next = (double)sqlite3_column_int64(st, 0) / 1e6;
        sqlite3_reset(st);
    }
unlock:
    pthread_mutex_unlock(&a->mu);
    if (n > 0)
        al__waiters_fire_ids(a, ids, (size_t)n, AL_APPROVAL_TIMED_OUT, "timeout");
    al_free(&ids);
    return n < 0 ? AL_ERR : (int)n;
}

al_approval_status_t al_approvals_status(al_approvals_t *a, const char *id,
                                         al_approval_state_t *state, char *reason, size_t cap)
{
    if (reason && cap)
        reason[0] = '\0';
    if (!a || !id)
        return AL_APPR_BAD_REQUEST;
    al_approval_status_t res = AL_APPR_STORE_ERROR;
    pthread_mutex_lock(&a->mu);
    sqlite3_stmt *st = al__appr_stmt(&a->db, AL__SQL_REQ_GET);
    if (st) {
        al__bind_text(st, 1, id);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            if (state)
                *state = al__state_of(sqlite3_column_text(st, 0));
            if (reason)
                al__col_text(st, 13, reason, cap);
            res = AL_APPR_OK;
        } else if (rc == SQLITE_DONE) {
            res = AL_APPR_UNKNOWN_REQUEST;
        } else {
            al__appr_log_err(&a->db, "cannot read a request", rc);
        }
        sqlite3_reset(st);
    }
    pthread_mutex_unlock(&a->mu);
    return res;
}

/* ---- listing ---------------------------------------------------------------------------- */

json_t *al_approvals_list_json(al_approvals_t *a, const al_approval_filter_t *f, double now,
                               char *err, size_t cap)
{
    al_approval_filter_t none = {0};
    if (!f)
        f = &none;
    al_approval_state_t s;
    if (f->state && al_approval_state_parse(f->state, &s) != AL_OK) {
        snprintf(err, cap, "unknown state '%.64s': use pending, approved, denied, timed_out, "
                           "cancelled or abandoned", f->state);
        return NULL;
    }
    if (al_approvals_tick(a, now, NULL) < 0) {
        snprintf(err, cap, "approvals store: cannot time out requests (see the log)");
        return NULL;
    }
    size_t limit = f->limit ? AL_MIN(f->limit, (size_t)10000) : 100;
    json_t *arr = json_array();
    pthread_mutex_lock(&a->mu);
    sqlite3_stmt *st = arr ? al__appr_stmt(&a->db, AL__SQL_LIST) : NULL;
    int rc = SQLITE_ERROR;
    if (st) {
        al__bind_text(st, 1, f->state);
        al__bind_text(st, 2, f->agent);
        al__bind_text(st, 3, f->target);
        sqlite3_bind_int64(st, 4, (int64_t)limit);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            json_t *o = al__appr_row_json(&a->db, st);
            if (!o || json_array_append_new(arr, o) != 0) {
                rc = SQLITE_NOMEM;
                break;
            }
        }
        sqlite3_reset(st);
    }
    if (rc != SQLITE_DONE) {
        al__appr_set_err(&a->db, "cannot list requests", rc, err, cap);
        json_decref(arr);
        arr = NULL;
    }
    pthread_mutex_unlock(&a->mu);
    return arr;
}

json_t *al_approvals_get_json(al_approvals_t *a, const char *id, char *err, size_t cap)
{
    json_t *o = NULL;
    pthread_mutex_lock(&a->mu);
    sqlite3_stmt *st = al__appr_stmt(&a->db, AL__SQL_ROW);
    int rc = SQLITE_ERROR;
    if (st) {
        al__bind_text(st, 1, id);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            o = al__appr_row_json(&a->db, st);
        sqlite3_reset(st);
    }
    if (rc == SQLITE_DONE)
        snprintf(err, cap, "%s", al_approval_reason(AL_APPR_UNKNOWN_REQUEST));
    else if (!o)
        al__appr_set_err(&a->db, "cannot read a request", rc, err, cap);
    pthread_mutex_unlock(&a->mu);
    return o;
}
