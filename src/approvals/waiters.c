/*
 * waiters.c - held sessions waiting for their request to be decided.
 *
 * A decider marks the request's waiters as firing while it holds the
 * service mutex, calls them after releasing it (a callback may take its own
 * locks, e.g. a worker inbox's), then frees them and broadcasts `fired`.
 * unwait() of a firing waiter waits for that broadcast, so once it returns
 * the callback has finished and the caller may free its ud.
 */
#include <stdio.h>
#include <stdlib.h>

#include "approvals/approvals_int.h"

struct al__waiter {
    al__waiter_t *next;
    uint64_t token;
    char id[AL_APPROVAL_ID_SIZE];
    al_approval_cb cb;
    void *ud;
    bool firing;
    pthread_t firer;
};

void al__waiters_mark(al_approvals_t *a, const char *id, al__fire_batch_t *fb)
{
    for (al__waiter_t *w = a->waiters; w; w = w->next) {
        if (w->firing || strcmp(w->id, id))
            continue;
        if (fb->n == fb->cap) {
            size_t cap = fb->cap ? fb->cap * 2 : 4;
            al__waiter_t **nw = al_realloc(fb->w, cap * sizeof *nw);
            if (!nw)
                break; /* left armed: unwait or close frees it; fail closed */
            fb->w = nw;
            fb->cap = cap;
        }
        w->firing = true;
        w->firer = pthread_self();
        fb->w[fb->n++] = w;
    }
}

void al__waiters_fire(al_approvals_t *a, al__fire_batch_t *fb, const al_approval_event_t *ev)
{
    if (!fb->n) {
        al_free(&fb->w);
        return;
    }
    for (size_t i = 0; i < fb->n; i++)
        fb->w[i]->cb(fb->w[i]->ud, ev);
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < fb->n; i++)
        for (al__waiter_t **pp = &a->waiters; *pp; pp = &(*pp)->next)
            if (*pp == fb->w[i]) {
                *pp = fb->w[i]->next;
                free(fb->w[i]);
                break;
            }
    pthread_cond_broadcast(&a->fired);
    pthread_mutex_unlock(&a->mu);
    al_free(&fb->w);
    fb->n = fb->cap = 0;
}

void al__waiters_fire_ids(al_approvals_t *a, char (*ids)[AL_APPROVAL_ID_SIZE], size_t n,
                          al_approval_state_t state, const char *reason)
{
    for (size_t i = 0; i < n; i++) {
        al__fire_batch_t fb = {0};
        pthread_mutex_lock(&a->mu);
        al__waiters_mark(a, ids[i], &fb);
        pthread_mutex_unlock(&a->mu);
        al_approval_event_t ev = {.id = ids[i], .state = state, .reason = reason};
        al__waiters_fire(a, &fb, &ev);
    }
}

al_approval_status_t al_approvals_wait(al_approvals_t *a, const char *id, al_approval_cb cb,
                                       void *ud, uint64_t *token)
{
    if (!a || !id || !cb || !token)
        return AL_APPR_BAD_REQUEST;
    al__waiter_t *w = calloc(1, sizeof *w);
    if (!w)
        return AL_APPR_STORE_ERROR;
    al_approval_status_t res = AL_APPR_STORE_ERROR;
    pthread_mutex_lock(&a->mu);
    sqlite3_stmt *st = al__appr_stmt(&a->db, AL__SQL_REQ_GET);
    if (st) {
        al__bind_text(st, 1, id);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            res = AL_APPR_UNKNOWN_REQUEST;
        else if (rc == SQLITE_ROW)
            res = al__state_of(sqlite3_column_text(st, 0)) == AL_APPROVAL_PENDING
                      ? AL_APPR_OK
                      : AL_APPR_NOT_PENDING;
        else
            al__appr_log_err(&a->db, "cannot read a request", rc);
        sqlite3_reset(st);
    }
    if (res == AL_APPR_OK) {
        snprintf(w->id, sizeof w->id, "%s", id);
        w->cb = cb;
        w->ud = ud;
        w->token = ++a->next_token;
        w->next = a->waiters;
        a->waiters = w;
        *token = w->token;
        w = NULL;
    }
    pthread_mutex_unlock(&a->mu);
    free(w);
    return res;
}

bool al_approvals_unwait(al_approvals_t *a, uint64_t token)
{
    if (!a || !token)
        return false;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        al__waiter_t **pp = &a->waiters;
        while (*pp && (*pp)->token != token)
            pp = &(*pp)->next;
        al__waiter_t *w = *pp;
        if (!w) {
            pthread_mutex_unlock(&a->mu);
            return false; /* fired and freed */
        }
        if (!w->firing) {
            *pp = w->next;
            pthread_mutex_unlock(&a->mu);
            free(w);
            return true;
        }
        if (pthread_equal(w->firer, pthread_self())) {
            /* Misuse (called from the callback): waiting would deadlock. */
            pthread_mutex_unlock(&a->mu);
            return false;
        }
        pthread_cond_wait(&a->fired, &a->mu);
    }
}

void al__waiters_drop(al_approvals_t *a)
{
    while (a->waiters) {
        al__waiter_t *w = a->waiters;
        a->waiters = w->next;
        free(w);
    }
}
