/* test_tz.c - time zones checked against the C library's own conversion
 * (setenv("TZ") + tzset() + localtime_r: fine in this single-threaded
 * test), TZif parsing robustness, names, fixed offsets, and a count of the
 * allocations made on the hot path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/core.h"
#include "core/tz.h"

/* ---- allocation counter ------------------------------------------------------
 * The test binary interposes malloc and friends (forwarding to glibc) so the
 * hot-path test can prove that no allocation happens. ASan brings its own
 * allocator, so under ASan the count is not taken. */
#if defined(__SANITIZE_ADDRESS__)
#define TZ_COUNT_ALLOCS 0
#else
#define TZ_COUNT_ALLOCS 1
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
static volatile size_t n_allocs;
void *malloc(size_t n);
void *calloc(size_t c, size_t n);
void *realloc(void *p, size_t n);
void *malloc(size_t n)
{
    n_allocs++;
    return __libc_malloc(n);
}
void *calloc(size_t c, size_t n)
{
    n_allocs++;
    return __libc_calloc(c, n);
}
void *realloc(void *p, size_t n)
{
    n_allocs++;
    return __libc_realloc(p, n);
}
#endif

/* ---- helpers ------------------------------------------------------------------ */

static void set_tz(const char *tz)
{
    assert_int_equal(setenv("TZ", tz, 1), 0);
    tzset();
}

static int64_t utc_of(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                    .tm_hour = h, .tm_min = mi, .tm_sec = s};
    return (int64_t)timegm(&tm);
}

/* Compares one instant against localtime_r under the current TZ. */
static void check_one(const al_tz_t *tz, const char *zname, int64_t t)
{
    time_t tt = (time_t)t;
    struct tm want;
    assert_non_null(localtime_r(&tt, &want));
    al_civil_t got;
    al_tz_civil(tz, t, &got);
    if (got.year != want.tm_year + 1900 || got.month != want.tm_mon + 1 ||
        got.mday != want.tm_mday || got.wday != want.tm_wday || got.yday != want.tm_yday ||
        got.hour != want.tm_hour || got.minute != want.tm_min || got.second != want.tm_sec ||
        got.utoff != want.tm_gmtoff || got.isdst != (want.tm_isdst > 0) ||
        al_tz_offset(tz, t) != want.tm_gmtoff)
        fail_msg("%s at %lld: got %lld-%02d-%02d %02d:%02d:%02d wday %d yday %d off %d dst %d; "
                 "libc %d-%02d-%02d %02d:%02d:%02d wday %d yday %d off %ld dst %d",
                 zname, (long long)t, (long long)got.year, got.month, got.mday, got.hour,
                 got.minute, got.second, got.wday, got.yday, got.utoff, got.isdst,
                 want.tm_year + 1900, want.tm_mon + 1, want.tm_mday, want.tm_hour, want.tm_min,
                 want.tm_sec, want.tm_wday, want.tm_yday, want.tm_gmtoff, want.tm_isdst);
}

static long libc_off(int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    assert_non_null(localtime_r(&tt, &tm));
    return tm.tm_gmtoff;
}

typedef struct sweep_stats {
    size_t samples;
    size_t transitions;       /* offset changes found, 1970-2100 */
    size_t transitions_2038;  /* of which after 2038 (footer rule) */
} sweep_stats_t;

/* Walks [from, to) in steps of about 3 hours (odd, so minutes and seconds
 * vary), comparing every sample with libc; wherever libc's offset changes
 * between two samples, finds the exact second by bisection and compares
 * the second before, the second itself and the one after. TZ must be set. */
static void sweep(const al_tz_t *tz, const char *zname, int64_t from, int64_t to,
                  sweep_stats_t *st)
{
    const int64_t step = 3 * 3600 + 7 * 60 + 13;
    const int64_t y2038 = utc_of(2038, 1, 19, 3, 14, 8);
    long prev_off = libc_off(from);
    for (int64_t t = from; t < to; t += step) {
        check_one(tz, zname, t);
        st->samples++;
        long off = libc_off(t);
        if (off != prev_off && t > from) {
            int64_t lo = t - step, hi = t; /* libc_off(lo) != libc_off(hi) */
            while (hi - lo > 1) {
                int64_t mid = lo + (hi - lo) / 2;
                if (libc_off(mid) == off)
                    hi = mid;
                else
                    lo = mid;
            }
            for (int64_t d = -2; d <= 2; d++)
                check_one(tz, zname, hi + d);
            st->transitions++;
            if (hi > y2038)
                st->transitions_2038++;
        }
        prev_off = off;
    }
}

/* ---- zones from the system database vs libc -------------------------------------- */

static void test_zones_vs_libc(void **s)
{
    (void)s;
    static const struct {
        const char *name;
        size_t min_transitions_2038; /* DST zones keep changing after 2037 */
    } zones[] = {
        {"Europe/Paris", 2 * 62},     {"America/New_York", 2 * 62},
        {"Australia/Lord_Howe", 2 * 62}, /* 30-minute DST */
        {"Asia/Kolkata", 0},          {"America/Sao_Paulo", 0}, /* DST abolished 2019 */
        {"Pacific/Chatham", 2 * 62},  /* +12:45 / +13:45 */
        {"UTC", 0},                   {"Europe/London", 2 * 62},
        {"America/Santiago", 2 * 62}, {"Asia/Jerusalem", 2 * 62},
        {"America/Nuuk", 2 * 62},     /* footer with negative rule times */
        {"Africa/Casablanca", 0},     {"Asia/Tehran", 0},
        {"Etc/GMT+5", 0},             {"Pacific/Kiritimati", 0},
    };
    const int64_t from = utc_of(1970, 1, 1, 0, 0, 0);
    const int64_t to = utc_of(2100, 12, 31, 23, 59, 59);
    for (size_t i = 0; i < AL_ARRAY_LEN(zones); i++) {
        char err[256] = "";
        al_tz_t *tz = al_tz_load(zones[i].name, err, sizeof err);
        if (!tz)
            fail_msg("load %s: %s", zones[i].name, err);
        assert_string_equal(al_tz_name(tz), zones[i].name);
        set_tz(zones[i].name);
        sweep_stats_t st = {0};
        sweep(tz, zones[i].name, from, to, &st);
        /* Before 1970 too, more coarsely: LMT and early rules. */
        sweep_stats_t old = {0};
        sweep(tz, zones[i].name, utc_of(1850, 1, 1, 0, 0, 0), from, &old);
        if (st.transitions_2038 < zones[i].min_transitions_2038)
            fail_msg("%s: only %zu offset changes after 2038", zones[i].name,
                     st.transitions_2038);
        print_message("%-20s %zu samples, %zu changes (%zu after 2038)\n", zones[i].name,
                      st.samples + old.samples, st.transitions + old.transitions,
                      st.transitions_2038);
        al_tz_free(&tz);
        assert_null(tz);
    }
    unsetenv("TZ");
    tzset();
}

/* ---- footer rules alone vs libc's POSIX TZ strings -------------------------------- */

/* Builds a version 2 TZif image with no transitions, one type (offset
 * std_off) and the given footer, so every instant goes through the rule. */
static size_t make_tzif(uint8_t *out, size_t cap, const char *footer, int32_t std_off)
{
    size_t n = 0;
    for (int block = 0; block < 2; block++) {
        assert_true(n + 44 + 7 <= cap);
        memcpy(out + n, "TZif2", 5);
        memset(out + n + 5, 0, 15 + 24);
        out[n + 39] = 1; /* typecnt */
        out[n + 43] = 1; /* charcnt */
        n += 44;
        out[n++] = (uint8_t)((uint32_t)std_off >> 24);
        out[n++] = (uint8_t)((uint32_t)std_off >> 16);
        out[n++] = (uint8_t)((uint32_t)std_off >> 8);
        out[n++] = (uint8_t)std_off;
        out[n++] = 0; /* isdst */
        out[n++] = 0; /* desigidx */
        out[n++] = 0; /* "" */
    }
    size_t fl = strlen(footer);
    assert_true(n + fl + 2 <= cap);
    out[n++] = '\n';
    memcpy(out + n, footer, fl);
    n += fl;
    out[n++] = '\n';
    return n;
}

static void test_footer_rules_vs_libc(void **s)
{
    (void)s;
    static const char *rules[] = {
        "CET-1CEST,M3.5.0,M10.5.0/3",                 /* Europe/Paris */
        "EST5EDT,M3.2.0,M11.1.0",                     /* America/New_York */
        "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0",       /* Australia/Lord_Howe */
        "<+1245>-12:45<+1345>,M9.5.0/2:45,M4.1.0/3:45", /* Pacific/Chatham */
        "<-04>4<-03>,M9.1.6/24,M4.1.6/24",            /* America/Santiago */
        "IST-2IDT,M3.4.4/26,M10.5.0",                 /* Asia/Jerusalem: hour > 24 */
        "<-02>2<-01>,M3.5.0/-1,M10.5.0/0",            /* America/Nuuk: negative hour */
        "AAA3BBB,J60/2,J300/2",                       /* Jn skips February 29 */
        "AAA3BBB,59/2,299/2",                         /* n counts it */
        "AAA-3BBB-4:30:15,M2.5.3/23:59:59,M11.5.6/167", /* odd offsets, last week */
        "AAA11BBB,M1.2.0/-100,M12.3.2/100",           /* changes stay in their year */
        "<+0530>-5:30",                               /* no DST */
        "<-0330>3:30",
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(rules); i++) {
        uint8_t img[512];
        char err[256] = "";
        size_t n = make_tzif(img, sizeof img, rules[i], 0);
        al_tz_t *tz = al_tz_parse_tzif(rules[i], img, n, err, sizeof err);
        if (!tz)
            fail_msg("%s: %s", rules[i], err);
        set_tz(rules[i]);
        sweep_stats_t st = {0};
        sweep(tz, rules[i], utc_of(1970, 1, 1, 0, 0, 0), utc_of(2101, 1, 1, 0, 0, 0), &st);
        bool has_dst = strchr(rules[i], ',') != NULL;
        if (has_dst ? st.transitions < 2 * 130 : st.transitions != 0)
            fail_msg("%s: %zu offset changes", rules[i], st.transitions);
        al_tz_free(&tz);
    }
    unsetenv("TZ");
    tzset();
}

/* Rule times of +-100 hours move a change into the neighbouring year: the
 * start of 1971 (first Sunday of January, 3 Jan, minus 100 h) falls on 29
 * December 1970 at 20:00 standard time. glibc only looks at the changes
 * of t's UTC year and gets this wrong, so the instants are worked out by
 * hand. */
static void test_footer_year_crossing(void **s)
{
    (void)s;
    uint8_t img[256];
    char err[256];
    const char *r = "AAA11BBB,M1.1.0/-100,M12.4.2/100";
    al_tz_t *tz = al_tz_parse_tzif("x", img, make_tzif(img, sizeof img, r, -11 * 3600), err,
                                   sizeof err);
    assert_non_null(tz);
    /* End of 1970: 4th Tuesday of December (22nd) + 100 h = 26 Dec 04:00
     * daylight time (-10) = 14:00 UTC. */
    int64_t end70 = utc_of(1970, 12, 26, 14, 0, 0);
    /* Start of 1971: 29 Dec 1970 20:00 standard time (-11) = 30 Dec 07:00 UTC. */
    int64_t start71 = utc_of(1970, 12, 30, 7, 0, 0);
    assert_int_equal(al_tz_offset(tz, end70 - 1), -10 * 3600);
    assert_int_equal(al_tz_offset(tz, end70), -11 * 3600);
    assert_int_equal(al_tz_offset(tz, start71 - 1), -11 * 3600);
    assert_int_equal(al_tz_offset(tz, start71), -10 * 3600);
    al_civil_t c;
    al_tz_civil(tz, utc_of(1970, 12, 30, 9, 10, 35), &c);
    assert_true(c.isdst && c.year == 1970 && c.mday == 29 && c.hour == 23 && c.minute == 10);
    assert_int_equal(al_tz_offset(tz, utc_of(1971, 1, 1, 0, 0, 0)), -10 * 3600);
    /* Both of a year's changes after its end: J360 is 26 December, +167 h
     * (6 d 23 h) is 1 Jan 23:00 UTC; J365 is 31 December, +167 h is 6 Jan
     * 23:00 daylight (22:00 UTC); early on 1 January the changes of two years back are
     * the latest. */
    al_tz_free(&tz);
    r = "AAA0BBB,J360/167,J365/167";
    tz = al_tz_parse_tzif("x", img, make_tzif(img, sizeof img, r, 0), err, sizeof err);
    assert_non_null(tz);
    assert_int_equal(al_tz_offset(tz, utc_of(2025, 1, 1, 12, 0, 0)), 0);
    assert_int_equal(al_tz_offset(tz, utc_of(2025, 1, 1, 22, 59, 59)), 0);
    assert_int_equal(al_tz_offset(tz, utc_of(2025, 1, 1, 23, 0, 0)), 3600);
    assert_int_equal(al_tz_offset(tz, utc_of(2025, 1, 6, 21, 59, 59)), 3600);
    assert_int_equal(al_tz_offset(tz, utc_of(2025, 1, 6, 22, 0, 0)), 0);
    assert_int_equal(al_tz_offset(tz, utc_of(2025, 7, 1, 0, 0, 0)), 0);
    al_tz_free(&tz);
}

/* A year whose start and end fall on the same instant has no DST (the
 * end wins the tie), as glibc reads it too. */
static void test_footer_same_instant(void **s)
{
    (void)s;
    uint8_t img[256];
    char err[256];
    /* 02:00 standard = 03:00 daylight, both 02:00 UTC. */
    const char *r = "AAA0BBB,M3.5.0/2,M3.5.0/3";
    al_tz_t *tz = al_tz_parse_tzif("x", img, make_tzif(img, sizeof img, r, 0), err, sizeof err);
    assert_non_null(tz);
    set_tz(r);
    sweep_stats_t st = {0};
    sweep(tz, r, utc_of(2000, 1, 1, 0, 0, 0), utc_of(2030, 1, 1, 0, 0, 0), &st);
    assert_int_equal(st.transitions, 0);
    for (int y = 2000; y < 2030; y++) {
        /* Last Sunday of March, 02:00 UTC, and around it. */
        int64_t mar31 = utc_of(y, 3, 31, 2, 0, 0);
        time_t tt = (time_t)mar31;
        struct tm tm;
        gmtime_r(&tt, &tm);
        int64_t sunday = mar31 - (int64_t)tm.tm_wday * 86400;
        for (int64_t d = -1; d <= 1; d++)
            assert_int_equal(al_tz_offset(tz, sunday + d), 0);
    }
    unsetenv("TZ");
    tzset();
    al_tz_free(&tz);
}

/* RFC 8536 §3.3.1's example of DST all year: the offset never changes. */
static void test_footer_all_year_dst(void **s)
{
    (void)s;
    uint8_t img[256];
    char err[256];
    const char *r = "EST5EDT,0/0,J365/25";
    al_tz_t *tz = al_tz_parse_tzif("x", img, make_tzif(img, sizeof img, r, -5 * 3600), err,
                                   sizeof err);
    assert_non_null(tz);
    for (int64_t t = utc_of(1970, 1, 1, 0, 0, 0); t < utc_of(2100, 1, 1, 0, 0, 0);
         t += 3600 * 7 + 31) {
        al_civil_t c;
        al_tz_civil(tz, t, &c);
        if (c.utoff != -4 * 3600 || !c.isdst)
            fail_msg("at %lld: off %d dst %d", (long long)t, c.utoff, c.isdst);
    }
    al_tz_free(&tz);
}

static void test_footer_rejects(void **s)
{
    (void)s;
    static const char *bad[] = {
        "CET",          "CE-1",         "CET-1CEST",     "CET-1CEST,M3.5.0",
        "CET-1CEST,M13.5.0,M10.5.0", "CET-1CEST,M3.6.0,M10.5.0", "CET-1CEST,M3.5.7,M10.5.0",
        "CET-1CEST,J0,J10",  "CET-1CEST,366,10", "CET-1CEST,M3.5.0/168,M10.5.0",
        "CET-25",       "<AB>-1",       "<A?B>-1",       "<ABC-1",
        "CET-1CEST,M3.5.0,M10.5.0x", "CET-1:60",    "CET-1 ",
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
        uint8_t img[256];
        char err[256] = "";
        al_tz_t *tz = al_tz_parse_tzif("x", img, make_tzif(img, sizeof img, bad[i], 0), err,
                                       sizeof err);
        if (tz)
            fail_msg("footer '%s' was accepted", bad[i]);
        assert_non_null(strstr(err, "footer"));
    }
}

/* ---- calendar arithmetic far from 1970 --------------------------------------------- */

static void test_utc_calendar(void **s)
{
    (void)s;
    /* UTC (built in) and a NULL zone against gmtime_r, years -9999..9999. */
    char err[128];
    al_tz_t *utc = al_tz_load("UTC", err, sizeof err);
    assert_non_null(utc);
    const int64_t lo = utc_of(-9999, 1, 1, 0, 0, 0), hi = utc_of(9999, 12, 31, 0, 0, 0);
    for (int64_t t = lo; t < hi; t += 86400 * 13 + 3607) {
        for (int k = 0; k < 2; k++) {
            time_t tt = (time_t)t;
            struct tm w;
            assert_non_null(gmtime_r(&tt, &w));
            al_civil_t c;
            al_tz_civil(k ? utc : NULL, t, &c);
            if (c.year != w.tm_year + 1900LL || c.month != w.tm_mon + 1 || c.mday != w.tm_mday ||
                c.wday != w.tm_wday || c.yday != w.tm_yday || c.hour != w.tm_hour ||
                c.minute != w.tm_min || c.second != w.tm_sec || c.utoff != 0 || c.isdst)
                fail_msg("at %lld: %lld-%d-%d", (long long)t, (long long)c.year, c.month, c.mday);
        }
    }
    /* Fixed points. */
    al_civil_t c;
    al_tz_civil(utc, 0, &c);
    assert_true(c.year == 1970 && c.month == 1 && c.mday == 1 && c.wday == 4 && c.hour == 0);
    al_tz_civil(utc, -1, &c);
    assert_true(c.year == 1969 && c.month == 12 && c.mday == 31 && c.wday == 3 &&
                c.hour == 23 && c.minute == 59 && c.second == 59);
    al_tz_civil(utc, 951782400, &c); /* 2000-02-29 00:00:00, a Tuesday */
    assert_true(c.year == 2000 && c.month == 2 && c.mday == 29 && c.wday == 2 && c.yday == 59);
    /* Extremes are clamped, not undefined. */
    al_tz_civil(utc, INT64_MAX, &c);
    assert_true(c.year > 1000000000LL);
    al_tz_civil(utc, INT64_MIN, &c);
    assert_true(c.year < -1000000000LL);
    assert_string_equal(al_tz_name(NULL), "UTC");
    al_tz_free(&utc);
}

/* ---- names and fixed offsets ------------------------------------------------------- */

static void test_names(void **s)
{
    (void)s;
    char err[256];
    assert_null(al_tz_load("Europe/Pariss", err, sizeof err));
    assert_string_equal(err, "unknown time zone 'Europe/Pariss'");
    assert_null(al_tz_load("Europe", err, sizeof err)); /* a directory */
    assert_string_equal(err, "unknown time zone 'Europe'");
    assert_null(al_tz_load("Europe/Paris/x", err, sizeof err));
    assert_string_equal(err, "unknown time zone 'Europe/Paris/x'");

    static const char *invalid[] = {
        "",   "../etc/passwd", "Europe/../../etc/passwd", "/etc/localtime",
        "/usr/share/zoneinfo/UTC", "Europe//Paris", "Europe/", "Europe/Paris\n", "Europe Paris", "zone.tab",
        "Europe/Paris;rm", "Europe\\Paris", "..", "Europe/..",
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(invalid); i++) {
        err[0] = '\0';
        if (al_tz_load(invalid[i], err, sizeof err))
            fail_msg("'%s' was accepted", invalid[i]);
        assert_non_null(strstr(err, "invalid time zone name"));
        assert_null(strchr(err, '\n'));
    }
    /* A name made of 300 bytes is refused without overflowing anything. */
    char longname[301];
    memset(longname, 'A', 300);
    longname[300] = '\0';
    assert_null(al_tz_load(longname, err, sizeof err));
    assert_non_null(strstr(err, "invalid time zone name"));
    /* A tiny or absent err buffer is fine. */
    char tiny[4];
    assert_null(al_tz_load("Nope/Nope", tiny, sizeof tiny));
    assert_string_equal(tiny, "unk");
    assert_null(al_tz_load("Nope/Nope", NULL, 0));
    assert_null(al_tz_load(NULL, err, sizeof err));

    /* Files that are not TZif, and leap-second zones. */
    assert_null(al_tz_load("leapseconds", err, sizeof err));
    assert_non_null(strstr(err, "not a TZif file"));
    assert_null(al_tz_load("right/Europe/Paris", err, sizeof err));
    assert_non_null(strstr(err, "leap seconds"));

    /* Aliases through symlinks load. */
    al_tz_t *tz = al_tz_load("posix/Europe/Paris", err, sizeof err);
    assert_non_null(tz);
    assert_int_equal(al_tz_offset(tz, utc_of(2025, 7, 1, 0, 0, 0)), 7200);
    al_tz_free(&tz);
    al_tz_free(&tz); /* second free of a cleared pointer is a no-op */
    al_tz_free(NULL);
}

static void test_fixed_offsets(void **s)
{
    (void)s;
    static const struct {
        const char *name;
        int32_t off;
    } ok[] = {{"+02:00", 7200},  {"-0530", -19800}, {"+05", 18000},     {"-00:00", 0},
              {"+13:45", 49500}, {"-23:59", -86340}, {"+0000", 0},      {"UTC", 0}};
    for (size_t i = 0; i < AL_ARRAY_LEN(ok); i++) {
        char err[256];
        al_tz_t *tz = al_tz_load(ok[i].name, err, sizeof err);
        if (!tz)
            fail_msg("%s: %s", ok[i].name, err);
        assert_string_equal(al_tz_name(tz), ok[i].name);
        for (int64_t t = -3000000000LL; t < 5000000000LL; t += 123456789) {
            assert_int_equal(al_tz_offset(tz, t), ok[i].off);
            al_civil_t c, u;
            al_tz_civil(tz, t, &c);
            al_tz_civil(NULL, t + ok[i].off, &u);
            assert_true(c.year == u.year && c.yday == u.yday && c.hour == u.hour &&
                        c.minute == u.minute && c.second == u.second && !c.isdst);
        }
        al_tz_free(&tz);
    }
    static const char *bad[] = {"+2", "+24:00", "+02:60", "+02:0", "+0200x", "+", "-",
                                "+2:00", "+02-00", "+02:00:00", "++0200", "+ab:cd"};
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
        char err[256] = "";
        if (al_tz_load(bad[i], err, sizeof err))
            fail_msg("offset '%s' was accepted", bad[i]);
        assert_non_null(strstr(err, "invalid UTC offset"));
    }
}

/* ---- malformed TZif ------------------------------------------------------------------ */

static void read_zone(const char *name, uint8_t **data, size_t *len)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", AL_TZ_DIR, name);
    char *p;
    assert_int_equal(al_read_file(path, 1 << 20, &p, len), AL_OK);
    *data = (uint8_t *)p;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void test_tzif_malformed(void **s)
{
    (void)s;
    uint8_t *data;
    size_t len;
    read_zone("Europe/Paris", &data, &len);
    char err[256];
    al_tz_t *tz = al_tz_parse_tzif("Europe/Paris", data, len, err, sizeof err);
    assert_non_null(tz);
    al_tz_free(&tz);

    /* Every proper prefix lacks at least the footer's closing newline. */
    for (size_t n = 0; n < len; n++) {
        uint8_t *cut = malloc(n ? n : 1); /* exact size: ASan sees any over-read */
        assert_non_null(cut);
        memcpy(cut, data, n);
        err[0] = '\0';
        tz = al_tz_parse_tzif("x", cut, n, err, sizeof err);
        if (tz)
            fail_msg("prefix of %zu bytes accepted", n);
        assert_true(err[0] != '\0');
        free(cut);
    }

    /* Every single-byte corruption either fails cleanly or yields a zone
     * whose lookups stay within the RFC's offset bounds. */
    for (size_t i = 0; i < len; i++) {
        uint8_t *bad = malloc(len);
        assert_non_null(bad);
        memcpy(bad, data, len);
        bad[i] ^= (uint8_t)(0x5a + i);
        tz = al_tz_parse_tzif("x", bad, len, err, sizeof err);
        for (int64_t t = -5000000000LL; tz && t < 5000000000LL; t += 99999989) {
            int32_t off = al_tz_offset(tz, t);
            assert_true(off >= -89999 && off <= 93599);
        }
        al_tz_free(&tz);
        free(bad);
    }

    /* Targeted corruptions of the 64-bit block (header at v1 end). */
    size_t h2 = 44 + get32(data + 32) * 5 + get32(data + 36) * 6 + get32(data + 40) +
                get32(data + 24) + get32(data + 20) + get32(data + 28) * 8;
    assert_memory_equal(data + h2, "TZif", 4);
    uint32_t timecnt = get32(data + h2 + 32);
    assert_true(timecnt > 10);
    size_t times = h2 + 44, idx = times + 8 * (size_t)timecnt;
    struct {
        const char *what;
        size_t at;
        uint8_t val;
        const char *msg;
    } cases[] = {
        {"version", 4, '9', "unsupported TZif version"},
        {"magic", h2 + 1, 'X', "malformed TZif file"},
        {"leapcnt", h2 + 31, 1, "leap seconds"},
        {"typecnt", h2 + 39, 0, "malformed TZif header"},
        {"type index", idx + 3, 200, "malformed transitions"},
        {"order", times + 8 * 5, 0x80, "malformed transitions"}, /* times[5] very negative */
        {"isdst", idx + timecnt + 4, 7, "malformed local time type"},
        {"footer", len - 4, '\n', "footer"},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(cases); i++) {
        uint8_t *bad = malloc(len);
        assert_non_null(bad);
        memcpy(bad, data, len);
        bad[cases[i].at] = cases[i].val;
        err[0] = '\0';
        tz = al_tz_parse_tzif("x", bad, len, err, sizeof err);
        if (tz || !strstr(err, cases[i].msg))
            fail_msg("%s: accepted or wrong message '%s'", cases[i].what, err);
        free(bad);
    }
    /* A utoff of -2^31 (RFC 8536 §3.2 forbids it). */
    uint8_t *bad = malloc(len);
    assert_non_null(bad);
    memcpy(bad, data, len);
    put32(bad + idx + timecnt, 0x80000000u);
    assert_null(al_tz_parse_tzif("x", bad, len, err, sizeof err));
    assert_non_null(strstr(err, "malformed local time type"));
    free(bad);
    free(data);
}

/* Version 1 (32-bit, no footer) and version 2 with an empty footer: after
 * the last transition its type stays in force; before the first, type 0
 * (RFC 8536 §3.2). Transitions at 1000 (to type 1) and 2000 (to type 2). */
static size_t make_tzif_trans(uint8_t *out, char version, const char *footer)
{
    size_t n = 0;
    for (int block = 0; block < (version ? 2 : 1); block++) {
        unsigned tsize = block ? 8 : 4;
        memcpy(out + n, "TZif", 4);
        out[n + 4] = (uint8_t)version;
        memset(out + n + 5, 0, 15 + 24);
        out[n + 35] = 2; /* timecnt */
        out[n + 39] = 3; /* typecnt */
        out[n + 43] = 4; /* charcnt */
        n += 44;
        static const int64_t times[2] = {1000, 2000};
        for (int i = 0; i < 2; i++)
            for (unsigned b = 0; b < tsize; b++)
                out[n++] = (uint8_t)((uint64_t)times[i] >> (8 * (tsize - 1 - b)));
        out[n++] = 1;
        out[n++] = 2;
        static const int32_t offs[3] = {-3600, 7200, 19800};
        for (int i = 0; i < 3; i++) {
            put32(out + n, (uint32_t)offs[i]);
            out[n + 4] = i == 1;
            out[n + 5] = 0;
            n += 6;
        }
        memcpy(out + n, "ABC", 4);
        n += 4;
    }
    if (version) {
        size_t fl = strlen(footer);
        out[n++] = '\n';
        memcpy(out + n, footer, fl);
        n += fl;
        out[n++] = '\n';
    }
    return n;
}

static void test_tzif_versions(void **s)
{
    (void)s;
    for (int v = 0; v < 3; v++) {
        uint8_t img[512];
        char err[256];
        size_t n = make_tzif_trans(img, v == 0 ? 0 : v == 1 ? '2' : '4', "");
        al_tz_t *tz = al_tz_parse_tzif("t", img, n, err, sizeof err);
        if (!tz)
            fail_msg("version %d: %s", v, err);
        assert_int_equal(al_tz_offset(tz, INT64_MIN), -3600);
        assert_int_equal(al_tz_offset(tz, 999), -3600);
        assert_int_equal(al_tz_offset(tz, 1000), 7200);
        al_civil_t c;
        al_tz_civil(tz, 1999, &c);
        assert_true(c.isdst && c.utoff == 7200 && c.hour == 2 && c.minute == 33);
        assert_int_equal(al_tz_offset(tz, 2000), 19800);
        assert_int_equal(al_tz_offset(tz, 4000000000LL), 19800);
        assert_int_equal(al_tz_offset(tz, INT64_MAX), 19800);
        al_tz_free(&tz);
    }
    /* With a footer, it takes over from the last transition on. */
    uint8_t img[512];
    char err[256];
    size_t n = make_tzif_trans(img, '2', "<+01>-1");
    al_tz_t *tz = al_tz_parse_tzif("t", img, n, err, sizeof err);
    assert_non_null(tz);
    assert_int_equal(al_tz_offset(tz, 1999), 7200);
    assert_int_equal(al_tz_offset(tz, 2000), 3600);
    assert_int_equal(al_tz_offset(tz, 4000000000LL), 3600);
    al_tz_free(&tz);
    /* Version 3 is fine, version 1 written as '1' is not a TZif version. */
    n = make_tzif_trans(img, '3', "");
    assert_non_null(tz = al_tz_parse_tzif(NULL, img, n, err, sizeof err));
    assert_string_equal(al_tz_name(tz), "");
    al_tz_free(&tz);
    n = make_tzif_trans(img, '1', "");
    assert_null(al_tz_parse_tzif("t", img, n, err, sizeof err));
    assert_non_null(strstr(err, "unsupported TZif version"));
}

/* ---- hot path: no allocation, and how fast ---------------------------------------- */

static void test_hot_path(void **s)
{
    (void)s;
    char err[256];
    al_tz_t *tz = al_tz_load("Europe/Paris", err, sizeof err);
    assert_non_null(tz);
    const int64_t t0 = utc_of(2025, 1, 1, 0, 0, 0), t1 = utc_of(2060, 1, 1, 0, 0, 0);
    int64_t sink = 0;
#if TZ_COUNT_ALLOCS
    size_t before = n_allocs;
#endif
    uint64_t ns0 = al_mono_ns();
    size_t calls = 0;
    for (int64_t t = t0; t < t1; t += 3607, calls++) {
        al_civil_t c;
        al_tz_civil(tz, t, &c);
        sink += c.hour + al_tz_offset(tz, t);
    }
    uint64_t ns = al_mono_ns() - ns0;
#if TZ_COUNT_ALLOCS
    assert_int_equal(n_allocs, before);
#endif
    assert_true(sink != 0);
    print_message("al_tz_civil+al_tz_offset: %.1f ns per pair over %zu calls (2025-2060)\n",
                  (double)ns / (double)calls, calls);
    al_tz_free(&tz);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zones_vs_libc),
        cmocka_unit_test(test_footer_rules_vs_libc),
        cmocka_unit_test(test_footer_year_crossing),
        cmocka_unit_test(test_footer_same_instant),
        cmocka_unit_test(test_footer_all_year_dst),
        cmocka_unit_test(test_footer_rejects),
        cmocka_unit_test(test_utc_calendar),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_fixed_offsets),
        cmocka_unit_test(test_tzif_malformed),
        cmocka_unit_test(test_tzif_versions),
        cmocka_unit_test(test_hot_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
