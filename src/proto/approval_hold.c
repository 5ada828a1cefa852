/*
 * approval_hold.c - an `approve` verdict on a worker loop: grants, requests,
 * waiting, without blocking the loop (approval_hold.h).
 *
 * Lifetime. A hold is touched on its loop only, except for the waiter
 * callback, which runs on whichever thread decided the request and only
 * copies the event under the hold's mutex and wakes the loop (uv_async).
 * The hold is freed (its handles closed) when the gateway has detached,
 * no off-loop job runs and no waiter registration can still call back:
 * the library's unwait tells which (false: the callback ran, its event is
 * in the hold).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/approval_hold.h"

#define GUARD_SLACK_MS 1000 /* after expires_at, before the hold times out itself */

typedef enum job {
    JOB_START = 0, /* check for a grant, create, register the waiter */
    JOB_CLAIM,     /* approved: claim the request's grant */
    JOB_GUARD,     /* past expiry: tick, then unwait */
    JOB_CANCEL,    /* detached while waiting: cancel, then unwait */
} job_t;

struct al_hold {
    uv_loop_t *loop;
    al_runtime_t *rt;
    al_approvals_t *a;
    al_hold_cb cb;
    void *ud;
    bool detached, busy, registered, waiting, done;
    int closing; /* handles still to close */
    uv_work_t work;
    job_t job;
    uv_async_t async;
    uv_timer_t guard;
    /* the request (owned copies) */
    al_snapshot_t *snap;
    const al_policy_conf_t *rule;
    char *agent, *owner, *subject, *issuer, *target, *protocol, *session_id, *action;
    size_t action_len;
    char **groups;
    size_t n_groups;
    al_approval_mode_t mode;
    char rule_name[128];
    /* job results (written off-loop, read after the job) */
    al_grant_check_t gc;
    al_grant_use_t use;
    al_approval_status_t st;
    al_approval_created_t created;
    uint64_t token;
    bool unwaited;
    bool early; /* decided before the waiter was registered */
    al_approval_state_t early_state;
    char early_reason[AL_APPROVALS_MAX_REASON + 1];
    /* the waiter's event (lock) */
    pthread_mutex_t lock;
    bool fired;
    al_approval_state_t ev_state;
    char ev_reason[AL_APPROVALS_MAX_REASON + 1];
};

static char *dup_or_null(const char *s) { return s ? al_xstrdup(s) : NULL; }

static void hold_free(al_hold_t *h)
{
    free(h->agent);
    free(h->owner);
    free(h->subject);
    free(h->issuer);
    free(h->target);
    free(h->protocol);
    free(h->session_id);
    free(h->action);
    for (size_t i = 0; i < h->n_groups; i++)
        free(h->groups[i]);
    free(h->groups);
    al_snapshot_unref(&h->snap);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

static void on_closed(uv_handle_t *hd)
{
    al_hold_t *h = hd->data;
    if (--h->closing == 0)
        hold_free(h);
}

/* Frees once nothing can reach the hold any more. */
static void maybe_free(al_hold_t *h)
{
    if (!h->detached || h->busy || h->registered || h->closing)
        return;
    h->closing = 2;
    uv_close((uv_handle_t *)&h->async, on_closed);
    uv_close((uv_handle_t *)&h->guard, on_closed);
}

static void deliver(al_hold_t *h, const al_hold_result_t *r)
{
    if (r->outcome != AL_HOLD_WAITING)
        h->done = true;
    if (!h->detached && h->cb)
        h->cb(h->ud, r);
}

static void ended(al_hold_t *h, al_approval_state_t state, const char *reason)
{
    al_hold_result_t r = {.outcome = AL_HOLD_ENDED, .id = h->created.id,
                          .expires_at = h->created.expires_at, .state = state,
                          .reason = reason ? reason : ""};
    deliver(h, &r);
}

/* ---- off-loop ------------------------------------------------------------------------ */

/* On the deciding thread: copy and wake the loop, nothing else. */
static void on_event(void *ud, const al_approval_event_t *ev)
{
    al_hold_t *h = ud;
    pthread_mutex_lock(&h->lock);
    h->fired = true;
    h->ev_state = ev->state;
    snprintf(h->ev_reason, sizeof h->ev_reason, "%s", ev->reason ? ev->reason : "");
    uv_async_send(&h->async);
    pthread_mutex_unlock(&h->lock);
}

static void job_start(al_hold_t *h)
{
    double now = al_now();
    char fp[AL_APPROVAL_FP_SIZE];
    al_approvals_fingerprint(h->target, h->protocol, (al_str_t){h->action, h->action_len}, fp);
    al_grant_query_t q = {.agent = h->agent, .target = h->target, .fingerprint = fp,
                          .rule = h->rule_name, .session_id = h->session_id};
    h->gc = al_approvals_check(h->a, &q, now, &h->use);
    if (h->gc == AL_GRANT_FOUND)
        return; /* AL_GRANT_ERROR: as none (fail closed: ask for approval) */
    al_approval_req_t r = {.agent = h->agent, .owner = h->owner, .subject = h->subject,
                           .issuer = h->issuer, .groups = (const char *const *)h->groups,
                           .n_groups = h->n_groups, .target = h->target,
                           .protocol = h->protocol,
                           .action = {h->action, h->action_len}, .rule = h->rule,
                           .mode = h->mode, .session_id = h->session_id};
    h->st = al_approvals_create(h->a, &r, now, &h->created);
    if (h->st == AL_APPR_OK && !h->created.existing)
        al_runtime_approvals_kick(h->rt); /* arm the tick for its expiry */
    if (h->st != AL_APPR_OK || h->mode != AL_APPROVAL_WAIT)
        return;
    al_approval_status_t ws = al_approvals_wait(h->a, h->created.id, on_event, h, &h->token);
    if (ws == AL_APPR_OK) {
        h->registered = true;
    } else if (ws == AL_APPR_NOT_PENDING) {
        h->early = true;
        if (al_approvals_status(h->a, h->created.id, &h->early_state, h->early_reason,
                                sizeof h->early_reason) != AL_APPR_OK) {
            h->early_state = AL_APPROVAL_CANCELLED;
            snprintf(h->early_reason, sizeof h->early_reason, "store_unavailable");
        }
    } else {
        h->st = ws;
    }
}

static void on_work(uv_work_t *w)
{
    al_hold_t *h = w->data;
    switch (h->job) {
    case JOB_START:
        job_start(h);
        break;
    case JOB_CLAIM: {
        /* The grant of this very request (it may be a `once`: consumed). */
        char fp[AL_APPROVAL_FP_SIZE];
        al_approvals_fingerprint(h->target, h->protocol, (al_str_t){h->action, h->action_len},
                                 fp);
        al_grant_query_t q = {.agent = h->agent, .target = h->target, .fingerprint = fp,
                              .rule = h->rule_name, .session_id = h->session_id,
                              .request_id = h->created.id};
        h->gc = al_approvals_check(h->a, &q, al_now(), &h->use);
        break;
    }
    case JOB_GUARD: {
        double next = 0;
        (void)al_approvals_tick(h->a, al_now(), &next);
        h->unwaited = al_approvals_unwait(h->a, h->token);
        break;
    }
    case JOB_CANCEL:
        (void)al_approvals_cancel(h->a, h->created.id, "client_disconnected", al_now());
        h->unwaited = al_approvals_unwait(h->a, h->token);
        break;
    }
}

static void after_work(uv_work_t *w, int status);

static void queue_job(al_hold_t *h, job_t job)
{
    h->job = job;
    h->busy = true;
    h->work.data = h;
    if (uv_queue_work(h->loop, &h->work, on_work, after_work) != 0) {
        /* Cannot happen with a live loop; run it here rather than leak. */
        on_work(&h->work);
        after_work(&h->work, 0);
    }
}

/* ---- on the loop ----------------------------------------------------------------------- */

static void decided(al_hold_t *h, al_approval_state_t state, const char *reason)
{
    uv_timer_stop(&h->guard);
    h->waiting = false;
    if (h->detached)
        return;
    if (state == AL_APPROVAL_APPROVED) {
        queue_job(h, JOB_CLAIM);
        return;
    }
    ended(h, state, reason);
}

/* The waiter's event, if it came (and no job runs meanwhile). */
static void take_event(al_hold_t *h)
{
    if (h->busy)
        return; /* looked at again when the job ends */
    pthread_mutex_lock(&h->lock);
    bool fired = h->fired;
    h->fired = false;
    al_approval_state_t state = h->ev_state;
    char reason[AL_APPROVALS_MAX_REASON + 1];
    memcpy(reason, h->ev_reason, sizeof reason);
    pthread_mutex_unlock(&h->lock);
    if (!fired)
        return;
    h->registered = false;
    if (!h->done)
        decided(h, state, reason);
    maybe_free(h);
}

static void on_async(uv_async_t *a) { take_event(a->data); }

static void on_guard(uv_timer_t *t)
{
    al_hold_t *h = t->data;
    if (h->busy || !h->registered || h->detached)
        return;
    queue_job(h, JOB_GUARD);
}

static void after_start(al_hold_t *h)
{
    al_snapshot_unref(&h->snap); /* the request is stored: the rule was copied */
    if (h->detached) {
        if (h->registered)
            queue_job(h, JOB_CANCEL);
        return;
    }
    if (h->gc == AL_GRANT_FOUND) {
        al_hold_result_t r = {.outcome = AL_HOLD_GRANTED, .id = h->use.request_id,
                              .use = &h->use};
        deliver(h, &r);
        return;
    }
    if (h->st != AL_APPR_OK) {
        al_hold_result_t r = {.outcome = AL_HOLD_REFUSED, .id = "", .status = h->st};
        deliver(h, &r);
        return;
    }
    if (h->mode != AL_APPROVAL_WAIT) {
        al_hold_result_t r = {.outcome = AL_HOLD_RETRY, .id = h->created.id,
                              .expires_at = h->created.expires_at};
        deliver(h, &r);
        return;
    }
    h->waiting = true;
    al_hold_result_t r = {.outcome = AL_HOLD_WAITING, .id = h->created.id,
                          .expires_at = h->created.expires_at};
    deliver(h, &r);
    if (h->detached)
        return;
    if (h->early) {
        decided(h, h->early_state, h->early_reason);
        return;
    }
    double left = h->created.expires_at - al_now();
    uint64_t ms = left > 0 ? (uint64_t)(left * 1000) : 0;
    uv_timer_start(&h->guard, on_guard, ms + GUARD_SLACK_MS, 0);
}

static void after_work(uv_work_t *w, int status)
{
    al_hold_t *h = w->data;
    (void)status;
    h->busy = false;
    switch (h->job) {
    case JOB_START:
        after_start(h);
        break;
    case JOB_CLAIM:
        if (h->detached)
            break;
        if (h->gc == AL_GRANT_FOUND) {
            al_hold_result_t r = {.outcome = AL_HOLD_APPROVED, .id = h->created.id,
                                  .use = &h->use};
            deliver(h, &r);
        } else {
            ended(h, AL_APPROVAL_APPROVED, "grant_unavailable");
        }
        break;
    case JOB_GUARD:
        if (h->unwaited) {
            h->registered = false;
            /* The store did not time it out (clock, store error): the hold
             * respects the rule's timeout anyway. */
            if (!h->done)
                decided(h, AL_APPROVAL_TIMED_OUT, "timeout");
        }
        break;
    case JOB_CANCEL:
        if (h->unwaited)
            h->registered = false;
        break;
    }
    take_event(h);
    if (h->detached && h->registered && !h->busy && h->job != JOB_CANCEL)
        queue_job(h, JOB_CANCEL);
    maybe_free(h);
}

al_hold_t *al_hold_start(uv_loop_t *loop, al_runtime_t *rt, al_snapshot_t *snap,
                         const al_approval_req_t *r, al_hold_cb cb, void *ud)
{
    al_hold_t *h = al_xcalloc(1, sizeof *h);
    h->loop = loop;
    h->rt = rt;
    h->a = rt->approvals;
    h->cb = cb;
    h->ud = ud;
    pthread_mutex_init(&h->lock, NULL);
    h->snap = al_snapshot_ref(snap);
    h->rule = r->rule;
    snprintf(h->rule_name, sizeof h->rule_name, "%s", r->rule && r->rule->name ? r->rule->name
                                                                               : "");
    h->agent = dup_or_null(r->agent);
    h->owner = dup_or_null(r->owner);
    h->subject = dup_or_null(r->subject);
    h->issuer = dup_or_null(r->issuer);
    h->target = dup_or_null(r->target);
    h->protocol = dup_or_null(r->protocol);
    h->session_id = dup_or_null(r->session_id);
    h->action = al_xmalloc(r->action.len + 1);
    memcpy(h->action, r->action.p, r->action.len);
    h->action[r->action.len] = 0;
    h->action_len = r->action.len;
    h->groups = al_xcalloc(r->n_groups ? r->n_groups : 1, sizeof *h->groups);
    for (size_t i = 0; i < r->n_groups; i++)
        h->groups[i] = al_xstrdup(r->groups[i]);
    h->n_groups = r->n_groups;
    h->mode = r->mode;
    uv_async_init(loop, &h->async, on_async);
    h->async.data = h;
    uv_timer_init(loop, &h->guard);
    h->guard.data = h;
    queue_job(h, JOB_START);
    return h;
}

void al_hold_detach(al_hold_t **hp)
{
    al_hold_t *h = *hp;
    *hp = NULL;
    if (!h || h->detached)
        return;
    h->detached = true;
    h->cb = NULL;
    uv_timer_stop(&h->guard);
    if (!h->busy && h->registered)
        queue_job(h, JOB_CANCEL);
    maybe_free(h);
}

/* ---- session end ----------------------------------------------------------------------- */

typedef struct end_job {
    uv_work_t work;
    al_approvals_t *a;
    char *session_id;
} end_job_t;

static void on_end_work(uv_work_t *w)
{
    end_job_t *j = w->data;
    if (al_approvals_session_end(j->a, j->session_id, al_now()) < 0)
        al_log(AL_LOG_WARN, "approvals: session end not recorded", "session", j->session_id,
               NULL);
}

static void on_end_done(uv_work_t *w, int status)
{
    end_job_t *j = w->data;
    (void)status;
    free(j->session_id);
    free(j);
}

void al_hold_session_end(uv_loop_t *loop, al_approvals_t *a, const char *session_id)
{
    if (!a || !session_id || !*session_id)
        return;
    end_job_t *j = al_xcalloc(1, sizeof *j);
    j->a = a;
    j->session_id = al_xstrdup(session_id);
    j->work.data = j;
    if (uv_queue_work(loop, &j->work, on_end_work, on_end_done) != 0) {
        on_end_work(&j->work);
        on_end_done(&j->work, 0);
    }
}

/* ---- texts ------------------------------------------------------------------------------ */

void al_hold_message(const al_hold_result_t *r, char *out, size_t cap)
{
    switch (r->outcome) {
    case AL_HOLD_RETRY:
        snprintf(out, cap, "airlock: approval required (request %s); ask an approver: "
                           "airlock approvals approve %s", r->id, r->id);
        return;
    case AL_HOLD_WAITING: {
        double left = r->expires_at - al_now();
        snprintf(out, cap, "airlock: approval required (request %s); holding this action "
                           "for up to %.0fs until an approver runs: airlock approvals approve %s",
                 r->id, left > 0 ? left : 0, r->id);
        return;
    }
    case AL_HOLD_REFUSED:
        snprintf(out, cap, "airlock: approval required but no request could be raised (%s)",
                 al_approval_reason(r->status));
        return;
    case AL_HOLD_ENDED:
        break;
    default:
        snprintf(out, cap, "airlock: approved (request %s)", r->id);
        return;
    }
    const char *why = r->reason && *r->reason ? r->reason : NULL;
    switch (r->state) {
    case AL_APPROVAL_DENIED:
        snprintf(out, cap, "airlock: approval denied (request %s): %s", r->id,
                 why ? why : "no reason given");
        break;
    case AL_APPROVAL_TIMED_OUT:
        snprintf(out, cap, "airlock: approval timed out (request %s): nobody decided within "
                           "the rule's timeout", r->id);
        break;
    case AL_APPROVAL_APPROVED:
        snprintf(out, cap, "airlock: approval request %s was approved but its grant is no "
                           "longer usable; run the action again", r->id);
        break;
    case AL_APPROVAL_ABANDONED:
        snprintf(out, cap, "airlock: approval request %s was abandoned (%s)", r->id,
                 why ? why : "restart");
        break;
    default:
        snprintf(out, cap, "airlock: approval request %s was cancelled (%s)", r->id,
                 why ? why : "cancelled");
        break;
    }
}

const char *al_hold_audit_reason(const al_hold_result_t *r, char *buf, size_t cap)
{
    switch (r->outcome) {
    case AL_HOLD_GRANTED:
    case AL_HOLD_APPROVED:
        snprintf(buf, cap, "approval_grant:%s", r->use ? r->use->grant_id : "");
        break;
    case AL_HOLD_RETRY:
    case AL_HOLD_WAITING:
        snprintf(buf, cap, "approval_required");
        break;
    case AL_HOLD_REFUSED:
        snprintf(buf, cap, "approval_%s", al_approval_reason(r->status));
        break;
    case AL_HOLD_ENDED:
        if (r->state == AL_APPROVAL_APPROVED)
            snprintf(buf, cap, "approval_grant_unavailable");
        else
            snprintf(buf, cap, "approval_%s", al_approval_state_name(r->state));
        break;
    }
    return buf;
}
