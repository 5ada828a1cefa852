/*
 * json.c - approval requests as JSON: the listing objects of the admin API
 * and CLI, and the webhook body.
 *
 * Action texts may hold any bytes; JSON (RFC 8259 §8.1) must be UTF-8, so
 * invalid sequences are shown as U+FFFD (the stored text and the
 * fingerprint keep the exact bytes).
 */
#include <stdio.h>
#include <stdlib.h>

#include "approvals/approvals_int.h"

/* Length of the well-formed UTF-8 sequence at p (RFC 3629 §4: no
 * overlongs, no surrogates, at most U+10FFFF), 0 if there is none. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return len;
}

json_t *al__json_text(const char *p, size_t n)
{
    if (!p)
        return json_null();
    const unsigned char *u = (const unsigned char *)p;
    size_t i = 0;
    while (i < n) {
        size_t l = utf8_len(u + i, n - i);
        if (!l)
            break;
        i += l;
    }
    if (i == n)
        return json_stringn(p, n);
    al_buf_t b;
    al_buf_init(&b);
    al_buf_append(&b, p, i);
    while (i < n) {
        size_t l = utf8_len(u + i, n - i);
        if (l) {
            al_buf_append(&b, p + i, l);
            i += l;
        } else {
            al_buf_append(&b, "\xef\xbf\xbd", 3);
            i++;
        }
    }
    json_t *j = b.oom ? NULL : json_stringn(b.p, b.len);
    al_buf_free(&b);
    return j;
}

static json_t *jtext(const char *s) { return al__json_text(s, s ? strlen(s) : 0); }

static json_t *jtime(int64_t us)
{
    char buf[40];
    return json_string(al_time_rfc3339((double)us / 1e6, buf, sizeof buf));
}

static json_t *col_text(sqlite3_stmt *st, int i)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return json_null();
    const char *p = (const char *)sqlite3_column_text(st, i);
    return al__json_text(p, (size_t)sqlite3_column_bytes(st, i));
}

static json_t *col_time(sqlite3_stmt *st, int i)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return json_null();
    return jtime(sqlite3_column_int64(st, i));
}

/* A stored JSON array of strings; [] when it does not parse. */
static json_t *col_list(sqlite3_stmt *st, int i)
{
    const char *p = (const char *)sqlite3_column_text(st, i);
    json_t *j = p ? json_loads(p, 0, NULL) : NULL;
    if (j && json_is_array(j))
        return j;
    json_decref(j);
    return json_array();
}

static json_t *votes_json(al__appr_db_t *d, const char *id)
{
    sqlite3_stmt *st = al__appr_stmt(d, AL__SQL_VOTES);
    if (!st)
        return NULL;
    al__bind_text(st, 1, id);
    json_t *arr = json_array();
    int rc = SQLITE_DONE;
    while (arr && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *v = json_object();
        json_object_set_new(v, "approver", col_text(st, 0));
        json_object_set_new(v, "vote", col_text(st, 1));
        json_object_set_new(v, "at", col_time(st, 2));
        json_object_set_new(v, "for", sqlite3_column_type(st, 3) == SQLITE_NULL
                                          ? json_null()
                                          : json_real((double)sqlite3_column_int64(st, 3) / 1e6));
        json_object_set_new(v, "reason", col_text(st, 4));
        json_array_append_new(arr, v);
    }
    if (arr && rc != SQLITE_DONE) {
        al__appr_log_err(d, "cannot read votes", rc);
        json_decref(arr);
        arr = NULL;
    }
    sqlite3_reset(st);
    return arr;
}

json_t *al__appr_row_json(al__appr_db_t *d, sqlite3_stmt *row)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "id", col_text(row, AL__COL_ID));
    json_object_set_new(o, "state", col_text(row, AL__COL_STATE));
    json_object_set_new(o, "agent", col_text(row, AL__COL_AGENT));
    json_object_set_new(o, "owner", col_text(row, AL__COL_OWNER));
    json_object_set_new(o, "subject", col_text(row, AL__COL_SUBJECT));
    json_object_set_new(o, "issuer", col_text(row, AL__COL_ISSUER));
    json_object_set_new(o, "groups", col_list(row, AL__COL_GROUPS));
    json_object_set_new(o, "target", col_text(row, AL__COL_TARGET));
    json_object_set_new(o, "protocol", col_text(row, AL__COL_PROTOCOL));
    json_object_set_new(o, "action",
                        al__json_text(sqlite3_column_blob(row, AL__COL_ACTION),
                                      (size_t)sqlite3_column_bytes(row, AL__COL_ACTION)));
    json_object_set_new(o, "fingerprint", col_text(row, AL__COL_FP));
    json_object_set_new(o, "rule", col_text(row, AL__COL_RULE));
    json_object_set_new(o, "mode", col_text(row, AL__COL_MODE));
    json_object_set_new(o, "grant", col_text(row, AL__COL_GRANT));
    json_object_set_new(o, "approvers", col_list(row, AL__COL_APPROVERS));
    json_object_set_new(o, "min_approvals", json_integer(sqlite3_column_int64(row, AL__COL_MIN)));
    json_object_set_new(o, "session_id", col_text(row, AL__COL_SESSION));
    json_object_set_new(o, "requested_at", col_time(row, AL__COL_REQUESTED));
    json_object_set_new(o, "expires_at", col_time(row, AL__COL_EXPIRES));
    json_object_set_new(o, "decided_at", col_time(row, AL__COL_DECIDED));
    json_object_set_new(o, "reason", col_text(row, AL__COL_REASON));
    json_object_set_new(o, "decided_by", col_text(row, AL__COL_DECIDED_BY));
    json_object_set_new(o, "grant_id", col_text(row, AL__COL_GRANT_ID));
    const char *id = (const char *)sqlite3_column_text(row, AL__COL_ID);
    json_t *votes = votes_json(d, id);
    if (!votes) {
        json_decref(o);
        return NULL;
    }
    json_object_set_new(o, "votes", votes);
    return o;
}

/* ---- the webhook body ------------------------------------------------------------- */

/* Bytes of the action a notification carries at most; the whole text is
 * in the store and the listing. */
#define NOTICE_ACTION_MAX 4096
#define NOTICE_TEXT_ACTION_MAX 1500

/* n, moved back so that it does not split a UTF-8 sequence. */
static size_t cut_utf8(const char *p, size_t len, size_t n)
{
    if (n >= len)
        return len;
    while (n > 0 && ((unsigned char)p[n] & 0xc0) == 0x80)
        n--;
    return n;
}

/* Slack mrkdwn control characters (https://api.slack.com/reference/surfaces
 * /formatting#escaping): & < > become entities; a backtick, which would end
 * the code block, becomes U+02CB. */
static void slack_escape(al_buf_t *b, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (p[i]) {
        case '&': al_buf_puts(b, "&amp;"); break;
        case '<': al_buf_puts(b, "&lt;"); break;
        case '>': al_buf_puts(b, "&gt;"); break;
        case '`': al_buf_puts(b, "\xcb\x8b"); break;
        default: al_buf_append(b, p + i, 1);
        }
    }
}

static void slack_escape_c(al_buf_t *b, const char *s)
{
    if (s)
        slack_escape(b, s, strlen(s));
}

static void approve_url(al_buf_t *b, const char *base, const char *id)
{
    size_t n = strlen(base);
    while (n && base[n - 1] == '/')
        n--;
    al_buf_append(b, base, n);
    al_buf_printf(b, "/v1/approvals/%s", id);
}

char *al__appr_notice_body(const al__notice_t *n, bool slack)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    size_t cut = cut_utf8(n->action.p, n->action.len, NOTICE_ACTION_MAX);
    char rt[40], et[40];
    al_time_rfc3339(n->requested_at, rt, sizeof rt);
    al_time_rfc3339(n->expires_at, et, sizeof et);
    json_t *appr = json_array();
    for (size_t i = 0; appr && i < n->n_approvers; i++)
        json_array_append_new(appr, jtext(n->approvers[i]));
    json_object_set_new(o, "id", jtext(n->id));
    json_object_set_new(o, "agent", jtext(n->agent));
    json_object_set_new(o, "owner", jtext(n->owner));
    json_object_set_new(o, "target", jtext(n->target));
    json_object_set_new(o, "protocol", jtext(n->protocol));
    json_object_set_new(o, "action", al__json_text(n->action.p, cut));
    json_object_set_new(o, "action_truncated", json_boolean(cut < n->action.len));
    json_object_set_new(o, "rule", jtext(n->rule));
    json_object_set_new(o, "mode", jtext(n->mode));
    json_object_set_new(o, "approvers", appr ? appr : json_array());
    json_object_set_new(o, "min_approvals", json_integer(n->min_approvals));
    json_object_set_new(o, "requested_at", json_string(rt));
    json_object_set_new(o, "expires_at", json_string(et));
    al_buf_t b;
    al_buf_init(&b);
    if (n->public_url) {
        approve_url(&b, n->public_url, n->id);
        json_object_set_new(o, "approve_url", jtext(b.p));
    }
    if (slack) {
        size_t tcut = cut_utf8(n->action.p, n->action.len, NOTICE_TEXT_ACTION_MAX);
        al_buf_reset(&b);
        al_buf_puts(&b, ":lock: *Approval needed* for agent *");
        slack_escape_c(&b, n->agent);
        al_buf_puts(&b, "*");
        if (n->owner) {
            al_buf_puts(&b, " (owner ");
            slack_escape_c(&b, n->owner);
            al_buf_puts(&b, ")");
        }
        al_buf_puts(&b, " on *");
        slack_escape_c(&b, n->target);
        al_buf_puts(&b, "* (");
        slack_escape_c(&b, n->protocol);
        al_buf_puts(&b, "), rule *");
        slack_escape_c(&b, n->rule);
        al_buf_puts(&b, "*:\n```");
        slack_escape(&b, n->action.p, tcut);
        if (tcut < n->action.len)
            al_buf_puts(&b, "\n[...]");
        al_buf_printf(&b, "```\nExpires %s. Approve with `airlock approvals approve %s`", et,
                      n->id);
        if (n->public_url) {
            al_buf_puts(&b, " or at <");
            approve_url(&b, n->public_url, n->id);
            al_buf_puts(&b, ">");
        }
        al_buf_puts(&b, ".");
        json_object_set_new(o, "text", b.oom ? json_null() : al__json_text(b.p, b.len));
    }
    al_buf_free(&b);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}
