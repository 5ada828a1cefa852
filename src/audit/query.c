/*
 * query.c - who did what: filters from text (CLI options and admin API
 * query parameters share them), the table-name rule, the JSON array, and
 * the generic store entry points.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "audit/audit.h"

/* ---- generic store entry points ------------------------------------------- */

int al_audit_store_open(const char *path, const al_audit_opts_t *o, bool read_only,
                        al_audit_store_t **out, char *err, size_t cap)
{
    return al_audit_sqlite_ops.open(path, o, read_only, out, err, cap);
}

int al_audit_store_iterate(al_audit_store_t *s, int64_t after_seq, al_audit_row_cb cb, void *ud,
                           char *err, size_t cap)
{
    return s->ops->iterate(s, after_seq, cb, ud, err, cap);
}

int al_audit_store_query(al_audit_store_t *s, const al_audit_filter_t *f, al_audit_row_cb cb,
                         void *ud, char *err, size_t cap)
{
    return s->ops->query(s, f, cb, ud, err, cap);
}

void al_audit_store_close(al_audit_store_t **s)
{
    if (*s)
        (*s)->ops->close(*s);
    *s = NULL;
}

/* ---- tables ----------------------------------------------------------------- */

/* True if `shorter` equals the last dot-separated components of `longer`. */
static bool dot_suffix(const char *longer, size_t ll, const char *shorter, size_t sl)
{
    return sl < ll && longer[ll - sl - 1] == '.' && !memcmp(longer + ll - sl, shorter, sl);
}

/* Exact names, qualified as far as either side says: "orders" matches
 * "public.orders", "public.orders" matches "orders" (an unqualified name in
 * a statement), "db.public.orders" matches "public.orders"; "x.orders"
 * never matches "y.orders". Case-sensitive: PostgreSQL already folded
 * unquoted names to lower case. */
bool al_audit_table_match(const char *t, const char *want)
{
    size_t tl = strlen(t), wl = strlen(want);
    if (tl == wl)
        return !memcmp(t, want, tl);
    return tl > wl ? dot_suffix(t, tl, want, wl) : dot_suffix(want, wl, t, tl);
}

/* ---- filters -------------------------------------------------------------- */

static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return AL_ERR;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return AL_OK;
}

/* RFC 3339 §5.6 date-time: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM). */
static int parse_rfc3339(const char *s, int64_t *out_us)
{
    const char *p = s;
    int y, mo, d, h, mi, sec, oh = 0, om = 0;
    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
        digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' '))
        return AL_ERR;
    p++;
    if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' ||
        digits(&p, 2, &sec))
        return AL_ERR;
    int64_t frac_us = 0;
    if (*p == '.') {
        p++;
        int64_t scale = 100000;
        if (*p < '0' || *p > '9')
            return AL_ERR;
        while (*p >= '0' && *p <= '9') {
            frac_us += (*p++ - '0') * scale;
            scale /= 10;
        }
    }
    int sign = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p++ == '+' ? 1 : -1;
        if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om))
            return AL_ERR;
    } else {
        return AL_ERR;
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || oh > 23 ||
        om > 59)
        return AL_ERR;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
                    .tm_min = mi, .tm_sec = sec};
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return AL_ERR;
    t -= sign * (oh * 3600 + om * 60);
    *out_us = (int64_t)t * 1000000 + frac_us;
    return AL_OK;
}

static int parse_time(const char *v, double now, int64_t *out)
{
    if (parse_rfc3339(v, out) == AL_OK)
        return AL_OK;
    double d;
    if (al_parse_duration(v, &d) != AL_OK)
        return AL_ERR;
    *out = (int64_t)((now - d) * 1e6);
    return AL_OK;
}

static int parse_count(const char *v, int64_t max, int64_t *out)
{
    if (!*v)
        return AL_ERR;
    int64_t x = 0;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9')
            return AL_ERR;
        x = x * 10 + (*p - '0');
        if (x > max)
            return AL_ERR;
    }
    if (x < 1)
        return AL_ERR;
    *out = x;
    return AL_OK;
}

int al_audit_filter_set(al_audit_filter_t *f, const char *key, const char *value, double now,
                        char *err, size_t cap)
{
    static const struct {
        const char *key;
        size_t off;
    } strs[] = {
        {"agent", offsetof(al_audit_filter_t, agent)},
        {"target", offsetof(al_audit_filter_t, target)},
        {"table", offsetof(al_audit_filter_t, table)},
        {"decision", offsetof(al_audit_filter_t, decision)},
        {"kind", offsetof(al_audit_filter_t, kind)},
        {"session", offsetof(al_audit_filter_t, session_id)},
    };
    if (!value) {
        snprintf(err, cap, "audit filter '%s' needs a value", key);
        return AL_ERR;
    }
    for (size_t i = 0; i < AL_ARRAY_LEN(strs); i++) {
        if (strcmp(key, strs[i].key))
            continue;
        if (!*value) {
            snprintf(err, cap, "audit filter '%s' needs a non-empty value", key);
            return AL_ERR;
        }
        *(const char **)((char *)f + strs[i].off) = value;
        return AL_OK;
    }
    int64_t x;
    if (!strcmp(key, "since") || !strcmp(key, "until")) {
        if (parse_time(value, now, &x) != AL_OK) {
            snprintf(err, cap, "audit filter '%s': '%s' is neither a duration (90s, 15m, 1h, 7d) "
                     "nor an RFC 3339 time (2024-05-01T12:00:00Z)", key, value);
            return AL_ERR;
        }
        *(key[0] == 's' ? &f->since_us : &f->until_us) = x > 0 ? x : 1;
        return AL_OK;
    }
    if (!strcmp(key, "limit")) {
        if (parse_count(value, AL_AUDIT_MAX_LIMIT, &x) != AL_OK) {
            snprintf(err, cap, "audit filter 'limit': '%s' is not a number from 1 to %d", value,
                     AL_AUDIT_MAX_LIMIT);
            return AL_ERR;
        }
        f->limit = (size_t)x;
        return AL_OK;
    }
    if (!strcmp(key, "before")) {
        if (parse_count(value, INT64_MAX / 10, &x) != AL_OK) {
            snprintf(err, cap, "audit filter 'before': '%s' is not a positive seq", value);
            return AL_ERR;
        }
        f->before_seq = x;
        return AL_OK;
    }
    snprintf(err, cap, "unknown audit filter '%s' (agent, target, table, decision, kind, session, "
             "since, until, before, limit)", key);
    return AL_ERR;
}

/* ---- JSON ------------------------------------------------------------------- */

typedef struct jstate {
    al_buf_t *out;
    size_t n;
} jstate_t;

static int json_row(void *ud, const al_audit_row_t *row)
{
    jstate_t *j = ud;
    if (j->n++)
        al_buf_append(j->out, ",", 1);
    return al_audit_event_json(&row->ev, row->seq, row->prev_len == 32 ? row->prev_hash : NULL,
                               row->hash_len == 32 ? row->hash : NULL, j->out);
}

int al_audit_query_json(al_audit_store_t *s, const al_audit_filter_t *f, al_buf_t *out, char *err,
                        size_t cap)
{
    jstate_t j = {.out = out};
    al_buf_append(out, "[", 1);
    int r = al_audit_store_query(s, f, json_row, &j, err, cap);
    al_buf_append(out, "]", 1);
    if (out->oom) {
        snprintf(err, cap, "audit query: out of memory");
        r = AL_ERR;
    }
    return r == AL_OK ? AL_OK : AL_ERR;
}
