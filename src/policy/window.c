/* window.c - parsing and evaluating policy time windows (see window.h). */
#include <stdio.h>

#include "core/core.h"
#include "policy/window.h"

#define WINDOW_DAY_MINUTES 1440
#define WINDOW_ALL_DAYS 0x7f

static const char *const day_names[7] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
#define DAY_HINT "(use mon, tue, wed, thu, fri, sat, sun)"

static void win_err(char *err, size_t errlen, const char *fmt, ...) AL_PRINTF(3, 4);
static void win_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Copies at most 64 bytes of p..p+n into out (>= 72 bytes) with anything
 * unprintable replaced, so that messages quoting config values are safe to
 * print. */
static const char *quote(const char *p, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n && i < 64; i++)
        out[o++] = (p[i] >= 0x20 && p[i] < 0x7f) ? p[i] : '?';
    if (n > 64) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Trims blanks around p..p+n. */
static al_str_t trim(const char *p, size_t n)
{
    while (n > 0 && is_space(*p)) {
        p++;
        n--;
    }
    while (n > 0 && is_space(p[n - 1]))
        n--;
    return (al_str_t){p, n};
}

/* ---- hours ------------------------------------------------------------------- */

typedef enum hm_status {
    HM_OK = 0,
    HM_SYNTAX,
    HM_HOUR,
    HM_MINUTE,
} hm_status_t;

/* "H:MM" or "HH:MM" into minutes after midnight (24:00 gives 1440). */
static hm_status_t parse_hm(al_str_t s, int *out)
{
    size_t i = 0;
    int h = 0;
    while (i < s.len && i < 2 && is_digit(s.p[i]))
        h = h * 10 + (s.p[i++] - '0');
    if (i == 0 || i + 3 != s.len || s.p[i] != ':' || !is_digit(s.p[i + 1]) ||
        !is_digit(s.p[i + 2]))
        return HM_SYNTAX;
    int m = (s.p[i + 1] - '0') * 10 + (s.p[i + 2] - '0');
    if (h > 24 || (h == 24 && m != 0))
        return HM_HOUR;
    if (m > 59)
        return HM_MINUTE;
    *out = h * 60 + m;
    return HM_OK;
}

static int parse_range(const char *item, al_window_range_t *r, char *err, size_t errlen)
{
    char q[72];
    size_t n = strlen(item);
    quote(item, n, q);
    const char *dash = memchr(item, '-', n);
    int start = 0, end = 0;
    hm_status_t st = HM_SYNTAX, en = HM_SYNTAX;
    if (dash) {
        st = parse_hm(trim(item, (size_t)(dash - item)), &start);
        en = parse_hm(trim(dash + 1, n - (size_t)(dash - item) - 1), &end);
    }
    if (st == HM_SYNTAX || en == HM_SYNTAX) {
        win_err(err, errlen, "hours '%s': expected HH:MM-HH:MM, e.g. 09:00-17:30", q);
        return AL_ERR;
    }
    if (st == HM_HOUR || en == HM_HOUR) {
        win_err(err, errlen, "hours '%s': hour must be 00-23", q);
        return AL_ERR;
    }
    if (st == HM_MINUTE || en == HM_MINUTE) {
        win_err(err, errlen, "hours '%s': minute must be 00-59", q);
        return AL_ERR;
    }
    if (start == WINDOW_DAY_MINUTES) {
        win_err(err, errlen,
                "hours '%s': a range cannot start at 24:00 (24:00 may only end one)", q);
        return AL_ERR;
    }
    if (start == end) {
        win_err(err, errlen,
                "hours '%s': start and end are the same (use 00:00-24:00 for the whole day)", q);
        return AL_ERR;
    }
    r->start = (uint16_t)start;
    r->end = (uint16_t)end;
    return AL_OK;
}

/* ---- days ------------------------------------------------------------------------ */

/* Weekday (0 = Sunday) of a three-letter name in any case, or -1. */
static int day_index(al_str_t s)
{
    if (s.len != 3)
        return -1;
    char low[3];
    for (size_t i = 0; i < 3; i++)
        low[i] = (char)((s.p[i] >= 'A' && s.p[i] <= 'Z') ? s.p[i] + 32 : s.p[i]);
    for (int d = 0; d < 7; d++)
        if (memcmp(low, day_names[d], 3) == 0)
            return d;
    return -1;
}

static int parse_days(const char *item, uint8_t *mask, char *err, size_t errlen)
{
    char q[72], qd[72];
    size_t n = strlen(item);
    quote(item, n, q);
    const char *dash = memchr(item, '-', n);
    al_str_t a = trim(item, dash ? (size_t)(dash - item) : n);
    al_str_t b = dash ? trim(dash + 1, n - (size_t)(dash - item) - 1) : a;
    if (a.len == 0 || b.len == 0) {
        win_err(err, errlen, "days '%s': expected a day or a range like mon-fri %s", q,
                DAY_HINT);
        return AL_ERR;
    }
    int from = day_index(a), to = day_index(b);
    if (from < 0 || to < 0) {
        al_str_t bad = from < 0 ? a : b;
        win_err(err, errlen, "days '%s': unknown day '%s' %s", q, quote(bad.p, bad.len, qd),
                DAY_HINT);
        return AL_ERR;
    }
    /* Walk forward through the week from 'from' to 'to', wrapping after
     * Saturday: "fri-mon" is fri, sat, sun, mon. */
    for (int d = from;; d = (d + 1) % 7) {
        *mask |= (uint8_t)(1u << d);
        if (d == to)
            break;
    }
    return AL_OK;
}

/* ---- API ----------------------------------------------------------------------------- */

int al_window_parse(al_window_t *w, const char *const *hours, size_t n_hours,
                    const char *const *days, size_t n_days, const char *tz, char *err,
                    size_t errlen)
{
    memset(w, 0, sizeof *w);
    al_window_t tmp;
    memset(&tmp, 0, sizeof tmp);
    if (n_hours > AL_WINDOW_MAX_RANGES) {
        win_err(err, errlen, "hours: at most %d ranges, got %zu", AL_WINDOW_MAX_RANGES, n_hours);
        return AL_ERR;
    }
    for (size_t i = 0; i < n_hours; i++) {
        if (!hours[i]) {
            win_err(err, errlen, "hours: entry %zu is empty", i + 1);
            return AL_ERR;
        }
        if (parse_range(hours[i], &tmp.ranges[i], err, errlen) != AL_OK)
            return AL_ERR;
    }
    tmp.n_ranges = n_hours;
    if (n_hours == 0) {
        tmp.ranges[0] = (al_window_range_t){0, WINDOW_DAY_MINUTES};
        tmp.n_ranges = 1;
    }
    for (size_t i = 0; i < n_days; i++) {
        if (!days[i]) {
            win_err(err, errlen, "days: entry %zu is empty %s", i + 1, DAY_HINT);
            return AL_ERR;
        }
        if (parse_days(days[i], &tmp.days, err, errlen) != AL_OK)
            return AL_ERR;
    }
    if (n_days == 0)
        tmp.days = WINDOW_ALL_DAYS;
    if (tz && tz[0] != '\0') {
        tmp.tz = al_tz_load(tz, err, errlen);
        if (!tmp.tz)
            return AL_ERR;
    }
    *w = tmp;
    return AL_OK;
}

bool al_window_contains(const al_window_t *w, int64_t utc)
{
    al_civil_t c;
    al_tz_civil(w->tz, utc, &c);
    unsigned m = (unsigned)(c.hour * 60 + c.minute);
    bool today = w->days & (1u << c.wday);
    bool yesterday = w->days & (1u << ((c.wday + 6) % 7));
    for (size_t i = 0; i < w->n_ranges; i++) {
        const al_window_range_t *r = &w->ranges[i];
        if (r->start < r->end) {
            if (today && m >= r->start && m < r->end)
                return true;
        } else if ((today && m >= r->start) || (yesterday && m < r->end)) {
            /* A wrapping range belongs to the day it starts on: its part
             * after midnight counts on the following day. */
            return true;
        }
    }
    return false;
}

void al_window_free(al_window_t *w)
{
    if (!w)
        return;
    al_tz_free(&w->tz);
    memset(w, 0, sizeof *w);
}
