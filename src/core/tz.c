/*
 * tz.c - time zones from TZif files (RFC 8536), fixed offsets and UTC,
 * converted without libc's global TZ state.
 *
 * A loaded zone is a sorted array of transition instants, each naming a
 * local time type (offset, DST flag), plus the footer's POSIX TZ rule for
 * instants at or after the last transition. Lookups are a binary search or
 * a few lines of calendar arithmetic: no allocation, no lock, no libc call.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "core/tz.h"

#define TZ_NAME_MAX 255
#define TZ_FILE_MAX (1u << 20) /* tzdata's largest zone is a few KiB */
#define TZ_FOOTER_MAX 256
/* RFC 8536 §3.2: utoff SHOULD be within these bounds (-25h < utoff < 26h). */
#define TZ_UTOFF_MIN (-89999)
#define TZ_UTOFF_MAX 93599
/* Instants are clamped to +-2^55 s (about 1.1e9 years) so that every sum
 * and product below stays far from int64 overflow. */
#define TZ_T_LIMIT ((int64_t)1 << 55)

typedef struct tz_type {
    int32_t utoff;
    bool isdst;
} tz_type_t;

typedef enum tz_date_kind {
    TZ_DATE_NONE = 0,
    TZ_DATE_JULIAN,     /* Jn: 1..365, February 29 never counted */
    TZ_DATE_ZERO_BASED, /* n: 0..365, February 29 counted in leap years */
    TZ_DATE_MWD,        /* Mm.w.d: day d of week w (5 = last) of month m */
} tz_date_kind_t;

typedef struct tz_date {
    tz_date_kind_t kind;
    int day;               /* JULIAN, ZERO_BASED */
    int month, week, wday; /* MWD */
    int32_t time;          /* local seconds after midnight, -167h..167h */
} tz_date_t;

/* The POSIX TZ string of the footer (RFC 8536 §3.3). */
typedef struct tz_rule {
    bool present;
    bool has_dst;
    int32_t std_off; /* seconds east of UTC (POSIX writes them west) */
    int32_t dst_off;
    tz_date_t start; /* std -> dst, in local standard time */
    tz_date_t end;   /* dst -> std, in local daylight time */
} tz_rule_t;

struct al_tz {
    char *name;
    size_t n_trans;
    int64_t *times; /* strictly ascending */
    uint8_t *idx;   /* type of the time from times[i] on */
    size_t n_types;
    tz_type_t types[256];
    tz_rule_t rule;
};

/* ---- errors ---------------------------------------------------------------- */

static void tz_err(char *err, size_t errlen, const char *fmt, ...) AL_PRINTF(3, 4);
static void tz_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Copies at most 64 bytes of a name an operator typed into out (>= 72
 * bytes), replacing anything unprintable, so the error message is safe to
 * print whatever the config held. */
static const char *tz_printable(const char *s, char *out)
{
    size_t o = 0;
    for (size_t i = 0; s[i] && i < 64; i++)
        out[o++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    if (strlen(s) > 64) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

/* ---- calendar arithmetic (proleptic Gregorian) ------------------------------ */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static int64_t floor_mod(int64_t a, int64_t b)
{
    return a - floor_div(a, b) * b;
}

/* Weekday of a day since the epoch, 0 = Sunday: 1970-01-01 was a Thursday. */
static int weekday(int64_t days)
{
    return (int)floor_mod(days + 4, 7);
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int64_t y, int m)
{
    static const int len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : len[m - 1];
}

/* Days from 1970-01-01 to y-m-d. The year is counted from March so that
 * the leap day falls last; 400 Gregorian years are exactly 146097 days. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    if (m <= 2)
        y -= 1;
    int64_t cycle = floor_div(y, 400);
    int64_t yoc = y - cycle * 400;             /* 0..399 */
    int64_t mar = m > 2 ? m - 3 : m + 9;       /* 0 = March .. 11 = February */
    int64_t doy = (153 * mar + 2) / 5 + d - 1; /* 0..365, from March 1 */
    int64_t doc = yoc * 365 + yoc / 4 - yoc / 100 + doy;
    return cycle * 146097 + doc - 719468; /* 719468: 0000-03-01 to 1970-01-01 */
}

/* Inverse of days_from_civil. */
static void civil_from_days(int64_t days, int64_t *y, int *m, int *d)
{
    int64_t z = days + 719468;
    int64_t cycle = floor_div(z, 146097);
    int64_t doc = z - cycle * 146097; /* 0..146096 */
    /* Year of the cycle: remove the leap days before doc, divide by 365. */
    int64_t yoc = (doc - doc / 1460 + doc / 36524 - doc / 146096) / 365;
    int64_t doy = doc - (365 * yoc + yoc / 4 - yoc / 100);
    int64_t mar = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mar + 2) / 5 + 1);
    *m = (int)(mar < 10 ? mar + 3 : mar - 9);
    *y = cycle * 400 + yoc + (*m <= 2 ? 1 : 0);
}

/* ---- POSIX TZ rule (RFC 8536 §3.3, POSIX XBD 8.3) --------------------------- */

/* Day (days since the epoch) on which a rule date falls in year y. */
static int64_t rule_day(const tz_date_t *r, int64_t y)
{
    int64_t jan1 = days_from_civil(y, 1, 1);
    switch (r->kind) {
    case TZ_DATE_JULIAN:
        return jan1 + r->day - 1 + (is_leap(y) && r->day >= 60 ? 1 : 0);
    case TZ_DATE_ZERO_BASED:
        return jan1 + r->day;
    case TZ_DATE_MWD:
    default: {
        int64_t first = days_from_civil(y, r->month, 1);
        int64_t day = first + (r->wday - weekday(first) + 7) % 7 + 7 * (r->week - 1);
        if (day >= first + month_days(y, r->month))
            day -= 7; /* week 5 = the last such weekday */
        return day;
    }
    }
}

/* The rule's offset at t: that of its latest change at or before t. With
 * rule times of up to +-167 hours (RFC 8536 §3.3.1) a year's changes may
 * fall in the neighbouring years, so the changes of the years around t are
 * all considered; on a tie the later one wins (a year's end after its
 * start, a year's start after the previous year's end), which makes
 * "EST5EDT,0/0,J365/25" DST all year as §3.3.1 says. */
static void rule_eval(const tz_rule_t *r, int64_t t, int32_t *off, bool *isdst)
{
    bool dst = false;
    if (r->has_dst) {
        int64_t y;
        int m, d;
        civil_from_days(floor_div(t + r->std_off, 86400), &y, &m, &d);
        int64_t best = INT64_MIN;
        for (int64_t yy = y - 1; yy <= y + 1; yy++) {
            /* Each change is a wall time of the offset it leaves. */
            int64_t start = rule_day(&r->start, yy) * 86400 + r->start.time - r->std_off;
            int64_t end = rule_day(&r->end, yy) * 86400 + r->end.time - r->dst_off;
            if (start <= t && start >= best) {
                best = start;
                dst = true;
            }
            if (end <= t && end >= best) {
                best = end;
                dst = false;
            }
        }
        if (best == INT64_MIN) {
            /* Both changes of y-1 lie after t (rule times far past the end
             * of December): the last change of y-2 is in force. */
            int64_t start = rule_day(&r->start, y - 2) * 86400 + r->start.time - r->std_off;
            int64_t end = rule_day(&r->end, y - 2) * 86400 + r->end.time - r->dst_off;
            dst = start > end;
        }
    }
    *off = dst ? r->dst_off : r->std_off;
    *isdst = dst;
}

typedef struct tz_scan {
    const char *p;
    const char *end;
} tz_scan_t;

static bool sc_eof(const tz_scan_t *s)
{
    return s->p >= s->end;
}

static int sc_peek(const tz_scan_t *s)
{
    return s->p < s->end ? (unsigned char)*s->p : -1;
}

static bool sc_is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static bool sc_is_alpha(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* Reads 1..maxd digits as a number. */
static bool sc_num(tz_scan_t *s, int maxd, int *out)
{
    int v = 0, n = 0;
    while (n < maxd && sc_is_digit(sc_peek(s))) {
        v = v * 10 + (*s->p++ - '0');
        n++;
    }
    *out = v;
    return n > 0;
}

/* A zone abbreviation: three or more letters, or <...> of [A-Za-z0-9+-]. */
static bool sc_name(tz_scan_t *s)
{
    size_t n = 0;
    if (sc_peek(s) == '<') {
        s->p++;
        for (;;) {
            int c = sc_peek(s);
            if (c == '>')
                break;
            if (!(sc_is_alpha(c) || sc_is_digit(c) || c == '+' || c == '-'))
                return false;
            s->p++;
            n++;
        }
        s->p++;
    } else {
        while (sc_is_alpha(sc_peek(s))) {
            s->p++;
            n++;
        }
    }
    return n >= 3;
}

/* [+-]hh[:mm[:ss]] with hh <= max_h, in seconds. */
static bool sc_hms(tz_scan_t *s, int max_h, int32_t *out)
{
    int sign = 1, h, m = 0, sec = 0;
    if (sc_peek(s) == '+' || sc_peek(s) == '-')
        sign = *s->p++ == '-' ? -1 : 1;
    if (!sc_num(s, 3, &h) || h > max_h)
        return false;
    if (sc_peek(s) == ':') {
        s->p++;
        if (!sc_num(s, 2, &m) || m > 59)
            return false;
        if (sc_peek(s) == ':') {
            s->p++;
            if (!sc_num(s, 2, &sec) || sec > 59)
                return false;
        }
    }
    *out = sign * (h * 3600 + m * 60 + sec);
    return true;
}

static bool sc_date(tz_scan_t *s, tz_date_t *d)
{
    int c = sc_peek(s);
    if (c == 'J') {
        s->p++;
        d->kind = TZ_DATE_JULIAN;
        if (!sc_num(s, 3, &d->day) || d->day < 1 || d->day > 365)
            return false;
    } else if (c == 'M') {
        s->p++;
        d->kind = TZ_DATE_MWD;
        if (!sc_num(s, 2, &d->month) || d->month < 1 || d->month > 12 || sc_peek(s) != '.')
            return false;
        s->p++;
        if (!sc_num(s, 1, &d->week) || d->week < 1 || d->week > 5 || sc_peek(s) != '.')
            return false;
        s->p++;
        if (!sc_num(s, 1, &d->wday) || d->wday > 6)
            return false;
    } else {
        d->kind = TZ_DATE_ZERO_BASED;
        if (!sc_num(s, 3, &d->day) || d->day > 365)
            return false;
    }
    d->time = 2 * 3600; /* POSIX default: 02:00:00 */
    if (sc_peek(s) == '/') {
        s->p++;
        /* RFC 8536 §3.3.1: the hour may range over -167..167. */
        if (!sc_hms(s, 167, &d->time))
            return false;
    }
    return true;
}

/* std offset [dst [offset] ,start[/time],end[/time]]. An empty string means
 * "no rule". A dst without a rule is refused: POSIX leaves its dates to the
 * implementation and tzdata never writes one. */
static bool rule_parse(const char *p, size_t n, tz_rule_t *r)
{
    memset(r, 0, sizeof *r);
    if (n == 0)
        return true;
    tz_scan_t s = {p, p + n};
    int32_t west;
    if (!sc_name(&s) || !sc_hms(&s, 24, &west))
        return false;
    r->present = true;
    r->std_off = -west;
    r->dst_off = r->std_off;
    if (sc_eof(&s))
        return true;
    if (!sc_name(&s))
        return false;
    r->has_dst = true;
    r->dst_off = r->std_off + 3600;
    if (sc_peek(&s) != ',') {
        if (!sc_hms(&s, 24, &west))
            return false;
        r->dst_off = -west;
    }
    if (sc_peek(&s) != ',')
        return false;
    s.p++;
    if (!sc_date(&s, &r->start) || sc_peek(&s) != ',')
        return false;
    s.p++;
    if (!sc_date(&s, &r->end))
        return false;
    return sc_eof(&s);
}

/* ---- TZif (RFC 8536 §3) ---------------------------------------------------- */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const uint8_t *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

typedef struct tzif_hdr {
    uint8_t version;
    uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
} tzif_hdr_t;

#define TZIF_HDR_LEN 44

static bool tzif_hdr(const uint8_t *p, size_t len, tzif_hdr_t *h)
{
    if (len < TZIF_HDR_LEN || memcmp(p, "TZif", 4) != 0)
        return false;
    h->version = p[4];
    h->isutcnt = be32(p + 20);
    h->isstdcnt = be32(p + 24);
    h->leapcnt = be32(p + 28);
    h->timecnt = be32(p + 32);
    h->typecnt = be32(p + 36);
    h->charcnt = be32(p + 40);
    return true;
}

/* Size of a data block with time values of tsize bytes (§3.2). Counts are
 * < 2^32 and sizes are 64-bit, so the sum cannot overflow. */
static uint64_t tzif_block_len(const tzif_hdr_t *h, unsigned tsize)
{
    return (uint64_t)h->timecnt * tsize + h->timecnt + (uint64_t)h->typecnt * 6 + h->charcnt +
           (uint64_t)h->leapcnt * (tsize + 4) + h->isstdcnt + h->isutcnt;
}

static al_tz_t *tz_new(const char *name, char *err, size_t errlen)
{
    al_tz_t *tz = al_calloc(1, sizeof *tz);
    if (tz)
        tz->name = al_strndup(name, strlen(name));
    if (!tz || !tz->name) {
        al_tz_free(&tz);
        tz_err(err, errlen, "time zone '%s': out of memory", name);
        return NULL;
    }
    return tz;
}

al_tz_t *al_tz_parse_tzif(const char *name, const uint8_t *data, size_t len, char *err,
                          size_t errlen)
{
    char pn[72];
    if (!name)
        name = "";
    const char *what = tz_printable(name, pn);
    tzif_hdr_t h;
    if (!tzif_hdr(data, len, &h)) {
        tz_err(err, errlen, "time zone '%s': not a TZif file", what);
        return NULL;
    }
    if (h.version != 0 && (h.version < '2' || h.version > '4')) {
        tz_err(err, errlen, "time zone '%s': unsupported TZif version 0x%02x", what, h.version);
        return NULL;
    }
    const uint8_t *p = data + TZIF_HDR_LEN;
    size_t left = len - TZIF_HDR_LEN;
    unsigned tsize = 4;
    if (h.version != 0) {
        /* §4: a version 2+ reader skips the 32-bit block for the 64-bit one. */
        uint64_t skip = tzif_block_len(&h, 4);
        if (skip > left) {
            tz_err(err, errlen, "time zone '%s': truncated TZif file", what);
            return NULL;
        }
        if (!tzif_hdr(p + skip, left - skip, &h)) {
            tz_err(err, errlen, "time zone '%s': malformed TZif file (no 64-bit header)", what);
            return NULL;
        }
        p += skip + TZIF_HDR_LEN;
        left -= skip + TZIF_HDR_LEN;
        tsize = 8;
    }
    /* §3.1: the counts must agree with each other. */
    if (h.typecnt == 0 || h.typecnt > 256 || h.charcnt == 0 ||
        (h.isstdcnt != 0 && h.isstdcnt != h.typecnt) ||
        (h.isutcnt != 0 && h.isutcnt != h.typecnt)) {
        tz_err(err, errlen, "time zone '%s': malformed TZif header", what);
        return NULL;
    }
    if (h.leapcnt != 0) {
        tz_err(err, errlen,
               "time zone '%s': zones with leap seconds are not supported (use the plain name, "
               "not right/...)",
               what);
        return NULL;
    }
    uint64_t blen = tzif_block_len(&h, tsize);
    if (blen > left) {
        tz_err(err, errlen, "time zone '%s': truncated TZif file", what);
        return NULL;
    }
    const uint8_t *tp = p;                         /* transition times */
    const uint8_t *ip = tp + (size_t)h.timecnt * tsize; /* transition types */
    const uint8_t *yp = ip + h.timecnt;            /* local time type records */

    al_tz_t *tz = tz_new(name, err, errlen);
    if (!tz)
        return NULL;
    if (h.timecnt > 0) {
        tz->times = al_calloc(h.timecnt, sizeof *tz->times);
        tz->idx = al_malloc(h.timecnt);
        if (!tz->times || !tz->idx) {
            tz_err(err, errlen, "time zone '%s': out of memory", what);
            goto fail;
        }
    }
    tz->n_trans = h.timecnt;
    tz->n_types = h.typecnt;
    for (size_t i = 0; i < h.timecnt; i++) {
        tz->times[i] = tsize == 8 ? be64(tp + 8 * i) : (int64_t)(int32_t)be32(tp + 4 * i);
        tz->idx[i] = ip[i];
        if (ip[i] >= h.typecnt || (i > 0 && tz->times[i] <= tz->times[i - 1])) {
            tz_err(err, errlen, "time zone '%s': malformed transitions", what);
            goto fail;
        }
    }
    for (size_t i = 0; i < h.typecnt; i++) {
        const uint8_t *r = yp + 6 * i;
        int32_t utoff = (int32_t)be32(r);
        if (utoff < TZ_UTOFF_MIN || utoff > TZ_UTOFF_MAX || r[4] > 1 || r[5] >= h.charcnt) {
            tz_err(err, errlen, "time zone '%s': malformed local time type", what);
            goto fail;
        }
        tz->types[i].utoff = utoff;
        tz->types[i].isdst = r[4] == 1;
    }
    if (tsize == 8) {
        /* §3.3: the footer is "\n" TZ-string "\n". */
        const char *f = (const char *)p + blen;
        size_t flen = (size_t)(left - blen);
        const char *nl = flen > 1 && f[0] == '\n' ? memchr(f + 1, '\n', flen - 1) : NULL;
        if (!nl || (size_t)(nl - f - 1) > TZ_FOOTER_MAX) {
            tz_err(err, errlen, "time zone '%s': missing TZif footer", what);
            goto fail;
        }
        if (!rule_parse(f + 1, (size_t)(nl - f - 1), &tz->rule)) {
            tz_err(err, errlen, "time zone '%s': unsupported footer TZ string '%.*s'", what,
                   (int)AL_MIN((size_t)(nl - f - 1), 64), f + 1);
            goto fail;
        }
    }
    return tz;
fail:
    al_tz_free(&tz);
    return NULL;
}

/* ---- names ------------------------------------------------------------------- */

static bool name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > TZ_NAME_MAX || name[0] == '/' || name[n - 1] == '/' ||
        strstr(name, "..") || strstr(name, "//"))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!(sc_is_alpha((unsigned char)c) || sc_is_digit((unsigned char)c) || c == '_' ||
              c == '+' || c == '-' || c == '/'))
            return false;
    }
    return true;
}

/* "+HH", "+HHMM" or "+HH:MM" (ISO 8601: positive is east of UTC). */
static bool offset_parse(const char *s, int32_t *out)
{
    size_t n = strlen(s);
    int sign = s[0] == '-' ? -1 : 1;
    const char *d = s + 1;
    char buf[4];
    if (n == 3) {
        memcpy(buf, d, 2);
        memcpy(buf + 2, "00", 2);
    } else if (n == 5) {
        memcpy(buf, d, 4);
    } else if (n == 6 && d[2] == ':') {
        memcpy(buf, d, 2);
        memcpy(buf + 2, d + 3, 2);
    } else {
        return false;
    }
    for (int i = 0; i < 4; i++)
        if (!sc_is_digit((unsigned char)buf[i]))
            return false;
    int h = (buf[0] - '0') * 10 + buf[1] - '0';
    int m = (buf[2] - '0') * 10 + buf[3] - '0';
    if (h > 23 || m > 59)
        return false;
    *out = sign * (h * 3600 + m * 60);
    return true;
}

static al_tz_t *tz_fixed(const char *name, int32_t off, char *err, size_t errlen)
{
    al_tz_t *tz = tz_new(name, err, errlen);
    if (tz) {
        tz->n_types = 1;
        tz->types[0].utoff = off;
    }
    return tz;
}

/* Reads a regular file of at most TZ_FILE_MAX bytes. Returns the errno on
 * failure (EINVAL for anything that is not a regular file). */
static int read_zone_file(const char *path, uint8_t **out, size_t *out_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return errno;
    struct stat st;
    int rc = 0;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (fstat(fd, &st) != 0) {
        rc = errno;
    } else if (!S_ISREG(st.st_mode)) {
        rc = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
    } else if (st.st_size > (off_t)TZ_FILE_MAX) {
        rc = EFBIG;
    } else if (!(buf = al_malloc((size_t)st.st_size + 1))) {
        rc = ENOMEM;
    } else {
        while (len < (size_t)st.st_size) {
            ssize_t r = read(fd, buf + len, (size_t)st.st_size - len);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                rc = r < 0 ? errno : EIO;
                break;
            }
            len += (size_t)r;
        }
    }
    close(fd);
    if (rc != 0) {
        al_free(&buf);
        return rc;
    }
    *out = buf;
    *out_len = len;
    return 0;
}

al_tz_t *al_tz_load(const char *name, char *err, size_t errlen)
{
    char pn[72];
    if (!name) {
        tz_err(err, errlen, "no time zone given");
        return NULL;
    }
    if (strcmp(name, "UTC") == 0)
        return tz_fixed(name, 0, err, errlen);
    if (name[0] == '+' || name[0] == '-') {
        int32_t off;
        if (!offset_parse(name, &off)) {
            tz_err(err, errlen,
                   "invalid UTC offset '%s': use +HH:MM, +HHMM or +HH (east of UTC), hours "
                   "00-23, minutes 00-59",
                   tz_printable(name, pn));
            return NULL;
        }
        return tz_fixed(name, off, err, errlen);
    }
    if (!name_ok(name)) {
        tz_err(err, errlen,
               "invalid time zone name '%s': use an IANA name like Europe/Paris, UTC, or an "
               "offset like +02:00",
               tz_printable(name, pn));
        return NULL;
    }
    char path[sizeof AL_TZ_DIR + 1 + TZ_NAME_MAX + 1];
    snprintf(path, sizeof path, "%s/%s", AL_TZ_DIR, name);
    uint8_t *data = NULL;
    size_t len = 0;
    int e = read_zone_file(path, &data, &len);
    if (e == ENOENT || e == ENOTDIR || e == EISDIR) {
        tz_err(err, errlen, "unknown time zone '%s'", name);
        return NULL;
    }
    if (e != 0) {
        tz_err(err, errlen, "time zone '%s': cannot read %s: %s", name, path, strerror(e));
        return NULL;
    }
    al_tz_t *tz = al_tz_parse_tzif(name, data, len, err, errlen);
    al_free(&data);
    return tz;
}

void al_tz_free(al_tz_t **tz)
{
    if (!tz || !*tz)
        return;
    al_free(&(*tz)->name);
    al_free(&(*tz)->times);
    al_free(&(*tz)->idx);
    al_free(tz);
}

const char *al_tz_name(const al_tz_t *tz)
{
    return tz ? tz->name : "UTC";
}

/* ---- lookups (hot path) ------------------------------------------------------ */

static int64_t clamp_t(int64_t t)
{
    return t > TZ_T_LIMIT ? TZ_T_LIMIT : t < -TZ_T_LIMIT ? -TZ_T_LIMIT : t;
}

static void tz_lookup(const al_tz_t *tz, int64_t t, int32_t *off, bool *isdst)
{
    if (!tz) {
        *off = 0;
        *isdst = false;
        return;
    }
    size_t n = tz->n_trans;
    /* §3.2/§3.3: the footer rule covers instants from the last transition
     * on (all instants when there is none); before the first transition,
     * type 0 applies. */
    if (tz->rule.present && (n == 0 || t >= tz->times[n - 1])) {
        rule_eval(&tz->rule, t, off, isdst);
        return;
    }
    size_t ti = 0;
    if (n > 0 && t >= tz->times[0]) {
        size_t lo = 0, hi = n; /* times[lo] <= t < times[hi] (hi == n: +inf) */
        while (hi - lo > 1) {
            size_t mid = lo + (hi - lo) / 2;
            if (tz->times[mid] <= t)
                lo = mid;
            else
                hi = mid;
        }
        ti = tz->idx[lo];
    }
    *off = tz->types[ti].utoff;
    *isdst = tz->types[ti].isdst;
}

int32_t al_tz_offset(const al_tz_t *tz, int64_t utc)
{
    int32_t off;
    bool dst;
    tz_lookup(tz, clamp_t(utc), &off, &dst);
    return off;
}

void al_tz_civil(const al_tz_t *tz, int64_t utc, al_civil_t *out)
{
    int64_t t = clamp_t(utc);
    tz_lookup(tz, t, &out->utoff, &out->isdst);
    int64_t local = t + out->utoff;
    int64_t days = floor_div(local, 86400);
    int64_t secs = local - days * 86400;
    civil_from_days(days, &out->year, &out->month, &out->mday);
    out->yday = (int)(days - days_from_civil(out->year, 1, 1));
    out->wday = weekday(days);
    out->hour = (int)(secs / 3600);
    out->minute = (int)(secs / 60 % 60);
    out->second = (int)(secs % 60);
}
