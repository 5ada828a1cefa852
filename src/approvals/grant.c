/*
 * grant.c - what an approval grants, and finding a grant for a new action.
 *
 * A rule's `grant` and an approver's `--for` make one grant per approved
 * request (docs/approvals.md, "Grants"):
 *
 *   rule grant   no --for                          with --for D
 *   once         once, until now + rule timeout    duration D (fingerprint)
 *   <duration>   duration, that long               duration D
 *   session      session, until the session ends   session, at most D
 *                (at most session_grant_max)
 *   target       target, for the rule's timeout    target, D
 *
 * A `once` grant expires too: it is the window in which a `retry` agent
 * must send the action again. A `session` rule whose request had no
 * session id grants as a `once` rule (a session grant could never match).
 */
#include <stdio.h>
#include <stdlib.h>

#include "approvals/approvals_int.h"

const char *al_grant_kind_name(al_grant_kind_t k)
{
    switch (k) {
    case AL_GRANT_ONCE: return "once";
    case AL_GRANT_DURATION: return "duration";
    case AL_GRANT_SESSION: return "session";
    case AL_GRANT_TARGET: return "target";
    }
    return "once";
}

static al_grant_kind_t kind_parse(const char *s)
{
    if (s && !strcmp(s, "duration"))
        return AL_GRANT_DURATION;
    if (s && !strcmp(s, "session"))
        return AL_GRANT_SESSION;
    if (s && !strcmp(s, "target"))
        return AL_GRANT_TARGET;
    return AL_GRANT_ONCE;
}

void al__grant_plan(const char *spec, int64_t rule_timeout_us, int64_t for_us,
                    bool has_session, int64_t session_max_us, int64_t now_us,
                    al__grant_plan_t *out)
{
    double d = 0;
    if (spec && !strcmp(spec, "session") && !has_session)
        spec = "once";
    if (!spec || !strcmp(spec, "once")) {
        out->kind = for_us > 0 ? AL_GRANT_DURATION : AL_GRANT_ONCE;
        out->expires_us = now_us + (for_us > 0 ? for_us : rule_timeout_us);
    } else if (!strcmp(spec, "session")) {
        out->kind = AL_GRANT_SESSION;
        out->expires_us = now_us + (for_us > 0 && for_us < session_max_us ? for_us
                                                                          : session_max_us);
    } else if (!strcmp(spec, "target")) {
        out->kind = AL_GRANT_TARGET;
        out->expires_us = now_us + (for_us > 0 ? for_us : rule_timeout_us);
    } else if (al_parse_duration(spec, &d) == AL_OK && d >= 1) {
        out->kind = AL_GRANT_DURATION;
        out->expires_us = now_us + (for_us > 0 ? for_us : al__us(d));
    } else {
        /* The loader refuses anything else; fail closed to the narrowest. */
        out->kind = AL_GRANT_ONCE;
        out->expires_us = now_us + rule_timeout_us;
    }
}

int al__grant_insert(al__appr_db_t *d, const char *grant_id, const char *request_id,
                     const al__grant_plan_t *p, const char *agent, const char *target,
                     const char *fingerprint, const char *rule, const char *session_id,
                     int64_t now_us)
{
    sqlite3_stmt *st = al__appr_stmt(d, AL__SQL_GRANT_INSERT);
    if (!st)
        return SQLITE_ERROR;
    al__bind_text(st, 1, grant_id);
    al__bind_text(st, 2, request_id);
    al__bind_text(st, 3, al_grant_kind_name(p->kind));
    al__bind_text(st, 4, agent);
    al__bind_text(st, 5, target);
    al__bind_text(st, 6, fingerprint);
    al__bind_text(st, 7, rule);
    al__bind_text(st, 8, p->kind == AL_GRANT_SESSION ? session_id : NULL);
    sqlite3_bind_int64(st, 9, now_us);
    sqlite3_bind_int64(st, 10, p->expires_us);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc;
}

al_grant_check_t al_approvals_check(al_approvals_t *a, const al_grant_query_t *q, double now,
                                    al_grant_use_t *out)
{
    al_grant_use_t tmp;
    if (!out)
        out = &tmp;
    memset(out, 0, sizeof *out);
    if (!a || !q || !q->agent || !q->target || !q->fingerprint)
        return AL_GRANT_NONE;
    int64_t now_us = al__us(now);
    al_grant_check_t res = AL_GRANT_ERROR;
    pthread_mutex_lock(&a->mu);
    /* Two rounds at most: a `once` grant another process consumed between
     * our SELECT and UPDATE is skipped and the lookup runs again. */
    for (int round = 0; round < 2; round++) {
        sqlite3_stmt *st = al__appr_stmt(&a->db, AL__SQL_GRANT_FIND);
        if (!st)
            break;
        al__bind_text(st, 1, q->agent);
        al__bind_text(st, 2, q->target);
        sqlite3_bind_int64(st, 3, now_us);
        al__bind_text(st, 4, q->request_id);
        al__bind_text(st, 5, q->fingerprint);
        al__bind_text(st, 6, q->rule);
        al__bind_text(st, 7, q->session_id);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) {
            res = AL_GRANT_NONE;
            break;
        }
        if (rc != SQLITE_ROW) {
            al__appr_log_err(&a->db, "cannot look up grants", rc);
            break;
        }
        al__col_text(st, 0, out->grant_id, sizeof out->grant_id);
        al__col_text(st, 1, out->request_id, sizeof out->request_id);
        out->kind = kind_parse((const char *)sqlite3_column_text(st, 2));
        out->expires_at = (double)sqlite3_column_int64(st, 3) / 1e6;
        sqlite3_reset(st);
        if (out->kind != AL_GRANT_ONCE) {
            res = AL_GRANT_FOUND;
            break;
        }
        /* Consume: one UPDATE guarded by used=0 is atomic on its own; a
         * change count of 0 means someone else used it first. */
        sqlite3_stmt *u = al__appr_stmt(&a->db, AL__SQL_GRANT_CONSUME);
        if (!u)
            break;
        al__bind_text(u, 1, out->grant_id);
        sqlite3_bind_int64(u, 2, now_us);
        rc = sqlite3_step(u);
        sqlite3_reset(u);
        if (rc != SQLITE_DONE) {
            al__appr_log_err(&a->db, "cannot use a grant", rc);
            break;
        }
        if (sqlite3_changes(a->db.db) == 1) {
            res = AL_GRANT_FOUND;
            break;
        }
        res = AL_GRANT_NONE;
    }
    pthread_mutex_unlock(&a->mu);
    if (res != AL_GRANT_FOUND)
        memset(out, 0, sizeof *out);
    return res;
}
