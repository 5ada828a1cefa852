/*
 * event_json.c - one audit event as a JSON object (RFC 8259), the shape
 * `airlock audit query --json` and GET /v1/audit print.
 */
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "audit/audit.h"

/* Length of the well-formed UTF-8 sequence at p (RFC 3629 §4: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0 if it is not one. */
static size_t utf8_len(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    size_t len;
    uint8_t lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
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
    } else {
        return 0;
    }
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return len;
}

/* A JSON string literal of n bytes; bytes that are not UTF-8 become U+FFFD
 * so the output is always valid JSON (the store keeps the raw bytes). */
static void json_bytes(al_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = (const uint8_t *)s;
    al_buf_append(b, "\"", 1);
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (run < n && p[run] >= 0x20 && p[run] < 0x7f && p[run] != '"' && p[run] != '\\')
            run++;
        if (run > i) {
            al_buf_append(b, s + i, run - i);
            i = run;
            continue;
        }
        uint8_t c = p[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            al_buf_append(b, e, 2);
            i++;
        } else if (c == '\n') {
            al_buf_append(b, "\\n", 2);
            i++;
        } else if (c == '\r') {
            al_buf_append(b, "\\r", 2);
            i++;
        } else if (c == '\t') {
            al_buf_append(b, "\\t", 2);
            i++;
        } else if (c < 0x80) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            al_buf_append(b, e, 6);
            i++;
        } else {
            size_t l = utf8_len(p + i, n - i);
            if (l) {
                al_buf_append(b, s + i, l);
                i += l;
            } else {
                al_buf_append(b, "\\ufffd", 6);
                i++;
            }
        }
    }
    al_buf_append(b, "\"", 1);
}

static void json_str(al_buf_t *b, const char *s)
{
    if (s)
        json_bytes(b, s, strlen(s));
    else
        al_buf_puts(b, "null");
}

static void key(al_buf_t *b, const char *k)
{
    al_buf_printf(b, ",\"%s\":", k);
}

static void json_list(al_buf_t *b, const char *const *v, size_t n)
{
    al_buf_append(b, "[", 1);
    for (size_t i = 0; i < n; i++) {
        if (i)
            al_buf_append(b, ",", 1);
        json_str(b, v[i]);
    }
    al_buf_append(b, "]", 1);
}

static void json_hex(al_buf_t *b, const uint8_t *h)
{
    char hx[65];
    al_hex(h, 32, hx);
    al_buf_printf(b, "\"%s\"", hx);
}

/* RFC 3339 §5.6 date-time in UTC with a six-digit fraction. */
static void json_time(al_buf_t *b, int64_t t_us)
{
    int64_t s = t_us / 1000000, us = t_us % 1000000;
    if (us < 0) {
        us += 1000000;
        s--;
    }
    time_t tt = (time_t)s;
    struct tm tm;
    if (!gmtime_r(&tt, &tm)) {
        al_buf_puts(b, "null");
        return;
    }
    al_buf_printf(b, "\"%04d-%02d-%02dT%02d:%02d:%02d.%06dZ\"", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)us);
}

int al_audit_event_json(const al_audit_event_t *ev, int64_t seq, const uint8_t *prev_hash,
                        const uint8_t *hash, al_buf_t *b)
{
    al_buf_puts(b, "{\"id\":");
    json_str(b, ev->id);
    if (seq > 0)
        al_buf_printf(b, ",\"seq\":%" PRId64, seq);
    key(b, "time");
    json_time(b, ev->time_us);
    key(b, "kind");
    json_str(b, ev->kind);
    key(b, "session_id");
    json_str(b, ev->session_id);
    key(b, "agent");
    json_str(b, ev->agent);
    key(b, "subject");
    json_str(b, ev->subject);
    key(b, "issuer");
    json_str(b, ev->issuer);
    key(b, "groups");
    json_list(b, ev->groups, ev->n_groups);
    al_buf_printf(b, ",\"groups_truncated\":%s", ev->groups_truncated ? "true" : "false");
    key(b, "target");
    json_str(b, ev->target);
    key(b, "protocol");
    json_str(b, ev->protocol);
    key(b, "action");
    if (ev->action.p)
        json_bytes(b, ev->action.p, ev->action.len);
    else
        al_buf_puts(b, "null");
    al_buf_printf(b, ",\"action_truncated\":%s", ev->action_truncated ? "true" : "false");
    key(b, "class");
    json_str(b, ev->cls);
    key(b, "tables");
    json_list(b, ev->tables, ev->n_tables);
    al_buf_printf(b, ",\"tables_truncated\":%s", ev->tables_truncated ? "true" : "false");
    key(b, "decision");
    json_str(b, ev->decision);
    key(b, "rule");
    json_str(b, ev->rule);
    key(b, "reason");
    json_str(b, ev->reason);
    key(b, "approval_id");
    json_str(b, ev->approval_id);
    key(b, "ref_id");
    json_str(b, ev->ref_id);
    key(b, "rows");
    if (ev->rows >= 0)
        al_buf_printf(b, "%" PRId64, ev->rows);
    else
        al_buf_puts(b, "null");
    key(b, "status");
    json_str(b, ev->status);
    key(b, "duration_ms");
    if (ev->duration_us >= 0)
        al_buf_printf(b, "%" PRId64 ".%03d", ev->duration_us / 1000, (int)(ev->duration_us % 1000));
    else
        al_buf_puts(b, "null");
    key(b, "error");
    json_str(b, ev->error);
    key(b, "bytes_up");
    if (ev->bytes_up >= 0)
        al_buf_printf(b, "%" PRId64, ev->bytes_up);
    else
        al_buf_puts(b, "null");
    key(b, "bytes_down");
    if (ev->bytes_down >= 0)
        al_buf_printf(b, "%" PRId64, ev->bytes_down);
    else
        al_buf_puts(b, "null");
    key(b, "recording");
    json_str(b, ev->recording);
    key(b, "recording_sha256");
    json_str(b, ev->recording_sha256);
    if (prev_hash) {
        key(b, "prev_hash");
        json_hex(b, prev_hash);
    }
    if (hash) {
        key(b, "hash");
        json_hex(b, hash);
    }
    al_buf_append(b, "}", 1);
    return b->oom ? AL_ERR : AL_OK;
}
