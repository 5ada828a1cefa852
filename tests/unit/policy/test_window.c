/* test_window.c - policy time windows: parse errors, boundaries, ranges
 * past midnight, DST days, and a cross-check against libc's localtime_r
 * (setenv("TZ") + tzset(): fine in this single-threaded test). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/core.h"
#include "policy/window.h"

/* ---- allocation counter (not under ASan, which owns malloc) ---------------- */
#if defined(__SANITIZE_ADDRESS__)
#define WIN_COUNT_ALLOCS 0
#else
#define WIN_COUNT_ALLOCS 1
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

#define LIST(...) ((const char *const[]){__VA_ARGS__})
#define N(...) AL_ARRAY_LEN(((const char *const[]){__VA_ARGS__}))

/* UTC instant of a local wall-clock time in a fixed offset (seconds east). */
static int64_t at(int y, int mo, int d, int h, int mi, int s, int32_t off)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                    .tm_hour = h, .tm_min = mi, .tm_sec = s};
    return (int64_t)timegm(&tm) - off;
}

static void must_parse(al_window_t *w, const char *const *hours, size_t nh,
                       const char *const *days, size_t nd, const char *tz)
{
    char err[256] = "";
    if (al_window_parse(w, hours, nh, days, nd, tz, err, sizeof err) != AL_OK)
        fail_msg("parse failed: %s", err);
}

/* ---- parse errors ---------------------------------------------------------------- */

static void test_parse_errors(void **s)
{
    (void)s;
    static const struct {
        const char *hour, *day, *tz, *msg;
    } cases[] = {
        {"25:00-26:00", NULL, NULL, "hours '25:00-26:00': hour must be 00-23"},
        {"09:00-24:30", NULL, NULL, "hours '09:00-24:30': hour must be 00-23"},
        {"09:60-10:00", NULL, NULL, "hours '09:60-10:00': minute must be 00-59"},
        {"24:00-06:00", NULL, NULL,
         "hours '24:00-06:00': a range cannot start at 24:00 (24:00 may only end one)"},
        {"09:00-09:00", NULL, NULL,
         "hours '09:00-09:00': start and end are the same (use 00:00-24:00 for the whole day)"},
        {"9-17", NULL, NULL, "hours '9-17': expected HH:MM-HH:MM, e.g. 09:00-17:30"},
        {"09:00", NULL, NULL, "hours '09:00': expected HH:MM-HH:MM, e.g. 09:00-17:30"},
        {"", NULL, NULL, "hours '': expected HH:MM-HH:MM, e.g. 09:00-17:30"},
        {"09:00-17:3", NULL, NULL, "hours '09:00-17:3': expected HH:MM-HH:MM, e.g. 09:00-17:30"},
        {"009:00-17:30", NULL, NULL,
         "hours '009:00-17:30': expected HH:MM-HH:MM, e.g. 09:00-17:30"},
        {"09:00-10:00-11:00", NULL, NULL,
         "hours '09:00-10:00-11:00': expected HH:MM-HH:MM, e.g. 09:00-17:30"},
        {"+9:00-17:00", NULL, NULL, "hours '+9:00-17:00': expected HH:MM-HH:MM, e.g. 09:00-17:30"},
        {"09:00-17:00\n", NULL, NULL,
         "hours '09:00-17:00?': expected HH:MM-HH:MM, e.g. 09:00-17:30"},
        {NULL, "mon-fry", NULL,
         "days 'mon-fry': unknown day 'fry' (use mon, tue, wed, thu, fri, sat, sun)"},
        {NULL, "monday", NULL,
         "days 'monday': unknown day 'monday' (use mon, tue, wed, thu, fri, sat, sun)"},
        {NULL, "mon-", NULL,
         "days 'mon-': expected a day or a range like mon-fri (use mon, tue, wed, thu, fri, "
         "sat, sun)"},
        {NULL, "", NULL,
         "days '': expected a day or a range like mon-fri (use mon, tue, wed, thu, fri, sat, "
         "sun)"},
        {NULL, "mon,tue", NULL,
         "days 'mon,tue': unknown day 'mon,tue' (use mon, tue, wed, thu, fri, sat, sun)"},
        {NULL, NULL, "Europe/Pariss", "unknown time zone 'Europe/Pariss'"},
        {NULL, NULL, "../../etc/passwd", NULL}, /* message checked by test_tz */
        {NULL, NULL, "+25:00", NULL},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(cases); i++) {
        al_window_t w;
        memset(&w, 0xa5, sizeof w); /* parse must zero it on failure */
        char err[256] = "";
        const char *h[1] = {cases[i].hour}, *d[1] = {cases[i].day};
        int rc = al_window_parse(&w, h, cases[i].hour ? 1 : 0, d, cases[i].day ? 1 : 0,
                                 cases[i].tz, err, sizeof err);
        if (rc != AL_ERR)
            fail_msg("case %zu was accepted", i);
        if (cases[i].msg && strcmp(err, cases[i].msg) != 0)
            fail_msg("case %zu: got \"%s\"\n want \"%s\"", i, err, cases[i].msg);
        assert_true(err[0] != '\0');
        assert_null(w.tz);
        assert_int_equal(w.n_ranges, 0);
        al_window_free(&w);
    }
    /* Errors in later entries, too many ranges, NULL entries. */
    al_window_t w;
    char err[256];
    assert_int_equal(al_window_parse(&w, LIST("09:00-10:00", "11:00-1200"), 2, NULL, 0, NULL,
                                     err, sizeof err),
                     AL_ERR);
    assert_string_equal(err, "hours '11:00-1200': expected HH:MM-HH:MM, e.g. 09:00-17:30");
    const char *many[AL_WINDOW_MAX_RANGES + 1];
    for (size_t i = 0; i < AL_ARRAY_LEN(many); i++)
        many[i] = "09:00-10:00";
    assert_int_equal(al_window_parse(&w, many, AL_ARRAY_LEN(many), NULL, 0, NULL, err,
                                     sizeof err),
                     AL_ERR);
    assert_string_equal(err, "hours: at most 16 ranges, got 17");
    assert_int_equal(al_window_parse(&w, many, AL_WINDOW_MAX_RANGES, NULL, 0, NULL, err,
                                     sizeof err),
                     AL_OK);
    al_window_free(&w);
    assert_int_equal(al_window_parse(&w, LIST(NULL), 1, NULL, 0, NULL, err, sizeof err), AL_ERR);
    assert_string_equal(err, "hours: entry 1 is empty");
    assert_int_equal(al_window_parse(&w, NULL, 0, LIST("mon", NULL), 2, NULL, err, sizeof err),
                     AL_ERR);
    assert_non_null(strstr(err, "days: entry 2 is empty"));
    /* A long value is cut in the message. */
    char lng[200];
    memset(lng, 'x', sizeof lng - 1);
    lng[sizeof lng - 1] = '\0';
    assert_int_equal(al_window_parse(&w, NULL, 0, LIST(lng), 1, NULL, err, sizeof err), AL_ERR);
    assert_true(strlen(err) < 250);
    assert_non_null(strstr(err, "..."));
    /* A tiny error buffer is fine. */
    char tiny[6];
    assert_int_equal(al_window_parse(&w, LIST("x"), 1, NULL, 0, NULL, tiny, sizeof tiny),
                     AL_ERR);
    assert_string_equal(tiny, "hours");
    assert_int_equal(al_window_parse(&w, LIST("x"), 1, NULL, 0, NULL, NULL, 0), AL_ERR);
}

/* ---- boundaries ---------------------------------------------------------------------- */

static void test_office_hours_paris(void **s)
{
    (void)s;
    al_window_t w;
    must_parse(&w, LIST("09:00-17:30"), 1, LIST("mon-fri"), 1, "Europe/Paris");
    /* Monday 3 March 2025, CET (+01:00). */
    const int32_t cet = 3600;
    assert_false(al_window_contains(&w, at(2025, 3, 3, 8, 59, 59, cet)));
    assert_true(al_window_contains(&w, at(2025, 3, 3, 9, 0, 0, cet)));
    assert_true(al_window_contains(&w, at(2025, 3, 3, 17, 29, 59, cet)));
    assert_false(al_window_contains(&w, at(2025, 3, 3, 17, 30, 0, cet)));
    /* Same local times in summer (CEST, +02:00): the window follows the
     * wall clock, not UTC. */
    const int32_t cest = 7200;
    assert_false(al_window_contains(&w, at(2025, 7, 7, 8, 59, 59, cest)));
    assert_true(al_window_contains(&w, at(2025, 7, 7, 9, 0, 0, cest)));
    assert_true(al_window_contains(&w, at(2025, 7, 11, 17, 29, 59, cest))); /* Friday */
    assert_false(al_window_contains(&w, at(2025, 7, 11, 17, 30, 0, cest)));
    /* Weekend. */
    assert_false(al_window_contains(&w, at(2025, 7, 12, 12, 0, 0, cest)));
    assert_false(al_window_contains(&w, at(2025, 7, 13, 12, 0, 0, cest)));
    /* Past 2037: the zone's footer rule. Monday 6 July 2099. */
    assert_true(al_window_contains(&w, at(2099, 7, 6, 9, 0, 0, cest)));
    assert_false(al_window_contains(&w, at(2099, 7, 6, 8, 59, 59, cest)));
    al_window_free(&w);
    assert_null(w.tz);
    al_window_free(&w);
}

static void test_wrap_past_midnight(void **s)
{
    (void)s;
    al_window_t w;
    must_parse(&w, LIST("22:00-06:00"), 1, LIST("mon"), 1, NULL);
    /* Monday 7 July 2025 22:00 to Tuesday 06:00, UTC. */
    assert_false(al_window_contains(&w, at(2025, 7, 7, 21, 59, 59, 0)));
    assert_true(al_window_contains(&w, at(2025, 7, 7, 22, 0, 0, 0)));
    assert_true(al_window_contains(&w, at(2025, 7, 7, 23, 59, 59, 0)));
    assert_true(al_window_contains(&w, at(2025, 7, 8, 0, 0, 0, 0)));
    assert_true(al_window_contains(&w, at(2025, 7, 8, 5, 59, 59, 0)));
    assert_false(al_window_contains(&w, at(2025, 7, 8, 6, 0, 0, 0)));
    /* Monday before 06:00 belongs to Sunday's range: Sunday is not listed. */
    assert_false(al_window_contains(&w, at(2025, 7, 7, 3, 0, 0, 0)));
    assert_false(al_window_contains(&w, at(2025, 7, 6, 23, 0, 0, 0)));
    /* Tuesday evening is not Monday. */
    assert_false(al_window_contains(&w, at(2025, 7, 8, 22, 0, 0, 0)));
    al_window_free(&w);

    /* Saturday night into Sunday, across a week boundary (Sunday = 0). */
    must_parse(&w, LIST("23:30-00:30"), 1, LIST("sat"), 1, "+05:30");
    assert_true(al_window_contains(&w, at(2025, 7, 12, 23, 30, 0, 19800)));
    assert_true(al_window_contains(&w, at(2025, 7, 13, 0, 29, 59, 19800)));
    assert_false(al_window_contains(&w, at(2025, 7, 13, 0, 30, 0, 19800)));
    assert_false(al_window_contains(&w, at(2025, 7, 13, 23, 30, 0, 19800)));
    assert_false(al_window_contains(&w, at(2025, 7, 12, 0, 15, 0, 19800)));
    al_window_free(&w);

    /* Wrapping day ranges: fri-mon is fri, sat, sun, mon. */
    must_parse(&w, LIST("12:00-13:00"), 1, LIST(" FRI - Mon "), 1, NULL);
    static const bool want[7] = {true, true, false, false, false, true, true}; /* Sun.. */
    for (int d = 0; d < 7; d++) /* 6 July 2025 is a Sunday */
        assert_int_equal(al_window_contains(&w, at(2025, 7, 6 + d, 12, 30, 0, 0)), want[d]);
    al_window_free(&w);
}

static void test_whole_day_and_defaults(void **s)
{
    (void)s;
    al_window_t w;
    /* 00:00-24:00 on Wednesday: all of Wednesday, nothing of Thursday. */
    must_parse(&w, LIST("00:00-24:00"), 1, LIST("wed"), 1, "UTC");
    assert_false(al_window_contains(&w, at(2025, 7, 8, 23, 59, 59, 0)));
    assert_true(al_window_contains(&w, at(2025, 7, 9, 0, 0, 0, 0)));
    assert_true(al_window_contains(&w, at(2025, 7, 9, 23, 59, 59, 0)));
    assert_false(al_window_contains(&w, at(2025, 7, 10, 0, 0, 0, 0)));
    al_window_free(&w);

    /* 22:00-24:00 ends at midnight, does not wrap. */
    must_parse(&w, LIST(" 22:00 - 24:00 "), 1, LIST("wed"), 1, NULL);
    assert_true(al_window_contains(&w, at(2025, 7, 9, 23, 59, 59, 0)));
    assert_false(al_window_contains(&w, at(2025, 7, 10, 0, 0, 0, 0)));
    assert_false(al_window_contains(&w, at(2025, 7, 9, 21, 59, 59, 0)));
    al_window_free(&w);

    /* No hours: all day on the listed days. No days: every day. */
    must_parse(&w, NULL, 0, LIST("sat", "sun"), 2, NULL);
    assert_true(al_window_contains(&w, at(2025, 7, 12, 0, 0, 0, 0)));
    assert_true(al_window_contains(&w, at(2025, 7, 13, 23, 59, 59, 0)));
    assert_false(al_window_contains(&w, at(2025, 7, 14, 0, 0, 0, 0)));
    assert_false(al_window_contains(&w, at(2025, 7, 11, 23, 59, 59, 0)));
    al_window_free(&w);
    must_parse(&w, LIST("9:00-10:00", "13:00-14:00"), 2, NULL, 0, "");
    for (int d = 0; d < 7; d++) {
        assert_true(al_window_contains(&w, at(2025, 7, 6 + d, 9, 0, 0, 0)));
        assert_false(al_window_contains(&w, at(2025, 7, 6 + d, 10, 0, 0, 0)));
        assert_false(al_window_contains(&w, at(2025, 7, 6 + d, 12, 59, 59, 0)));
        assert_true(al_window_contains(&w, at(2025, 7, 6 + d, 13, 59, 0, 0)));
    }
    assert_null(w.tz); /* no zone: UTC */
    al_window_free(&w);
    must_parse(&w, NULL, 0, NULL, 0, NULL);
    for (int64_t t = -86400 * 400; t < 86400 * 400; t += 7919)
        assert_true(al_window_contains(&w, t));
    al_window_free(&w);
}

/* ---- DST days ----------------------------------------------------------------------- */

/* Seconds in [from, to) inside w, stepping by one second. */
static int64_t seconds_inside(const al_window_t *w, int64_t from, int64_t to)
{
    int64_t n = 0;
    for (int64_t t = from; t < to; t++)
        n += al_window_contains(w, t);
    return n;
}

static void test_dst_days_paris(void **s)
{
    (void)s;
    al_window_t w;
    /* Sunday 30 March 2025: clocks go from 02:00 CET to 03:00 CEST at
     * 01:00 UTC. Scan the whole local day (23:00 UTC Sat to 22:00 UTC Sun). */
    const int64_t spring0 = at(2025, 3, 29, 23, 0, 0, 0), spring1 = at(2025, 3, 30, 22, 0, 0, 0);
    must_parse(&w, LIST("02:30-02:45"), 1, LIST("sun"), 1, "Europe/Paris");
    assert_int_equal(seconds_inside(&w, spring0, spring1), 0); /* 02:30 never happens */
    /* The next Sunday it lasts 15 minutes. */
    assert_int_equal(seconds_inside(&w, spring0 + 7 * 86400, spring1 + 7 * 86400), 15 * 60);
    /* Sunday 26 October 2025: 03:00 CEST back to 02:00 CET at 01:00 UTC, so
     * 02:30-02:45 happens twice. */
    const int64_t fall0 = at(2025, 10, 25, 22, 0, 0, 0), fall1 = at(2025, 10, 26, 23, 0, 0, 0);
    assert_int_equal(seconds_inside(&w, fall0, fall1), 2 * 15 * 60);
    al_window_free(&w);

    /* 02:00-04:00 on the spring day is one real hour (03:00-04:00 CEST). */
    must_parse(&w, LIST("02:00-04:00"), 1, LIST("sun"), 1, "Europe/Paris");
    assert_int_equal(seconds_inside(&w, spring0, spring1), 3600);
    assert_false(al_window_contains(&w, at(2025, 3, 30, 0, 59, 59, 0))); /* 01:59:59 CET */
    assert_true(al_window_contains(&w, at(2025, 3, 30, 1, 0, 0, 0)));    /* 03:00:00 CEST */
    assert_false(al_window_contains(&w, at(2025, 3, 30, 2, 0, 0, 0)));   /* 04:00:00 CEST */
    /* and three real hours on the fall-back day. */
    assert_int_equal(seconds_inside(&w, fall0, fall1), 3 * 3600);
    al_window_free(&w);

    /* A whole-day window still covers the 23- and 25-hour days exactly. */
    must_parse(&w, LIST("00:00-24:00"), 1, LIST("sun"), 1, "Europe/Paris");
    assert_int_equal(seconds_inside(&w, spring0 - 3600, spring1 + 3600), 23 * 3600);
    assert_int_equal(seconds_inside(&w, fall0 - 3600, fall1 + 3600), 25 * 3600);
    al_window_free(&w);

    /* Lord Howe moves by 30 minutes: on 5 October 2025 local 02:00 LHST
     * (+10:30) becomes 02:30 LHDT (+11), so 02:00-02:30 never happens. */
    must_parse(&w, LIST("02:00-02:30"), 1, LIST("sun"), 1, "Australia/Lord_Howe");
    const int64_t lh0 = at(2025, 10, 5, 0, 0, 0, 37800), lh1 = at(2025, 10, 6, 0, 0, 0, 39600);
    assert_int_equal(seconds_inside(&w, lh0, lh1), 0);
    al_window_free(&w);
}

/* ---- against libc ------------------------------------------------------------------------- */

/* The same semantics written differently: minutes of the week, each
 * (day, range) an interval of [start, start + length) modulo the week. */
static bool ref_contains(const int *starts, const int *ends, size_t n, unsigned days,
                         const struct tm *lt)
{
    int wm = lt->tm_wday * 1440 + lt->tm_hour * 60 + lt->tm_min;
    for (int d = 0; d < 7; d++) {
        if (!(days & (1u << d)))
            continue;
        for (size_t i = 0; i < n; i++) {
            int len = ends[i] > starts[i] ? ends[i] - starts[i] : ends[i] + 1440 - starts[i];
            int off = ((wm - (d * 1440 + starts[i])) % 10080 + 10080) % 10080;
            if (off < len)
                return true;
        }
    }
    return false;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

static void test_against_libc(void **s)
{
    (void)s;
    static const char *zones[] = {"Europe/Paris", "America/New_York", "Australia/Lord_Howe",
                                  "Pacific/Chatham", "Asia/Kolkata", "America/Sao_Paulo"};
    static const char *dn[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
    size_t inside = 0, total = 0;
    for (size_t z = 0; z < AL_ARRAY_LEN(zones); z++) {
        assert_int_equal(setenv("TZ", zones[z], 1), 0);
        tzset();
        for (int round = 0; round < 40; round++) {
            size_t n = 1 + rnd(3);
            char hbuf[3][16];
            const char *hours[3];
            int st[3], en[3];
            for (size_t i = 0; i < n; i++) {
                st[i] = (int)rnd(1440);
                do
                    en[i] = 1 + (int)rnd(1440);
                while (en[i] == st[i]);
                snprintf(hbuf[i], sizeof hbuf[i], "%02d:%02d-%02d:%02d", st[i] / 60, st[i] % 60,
                         en[i] / 60, en[i] % 60);
                hours[i] = hbuf[i];
            }
            unsigned days = 1 + rnd(127);
            const char *dl[7];
            size_t nd = 0;
            for (int d = 0; d < 7; d++)
                if (days & (1u << d))
                    dl[nd++] = dn[d];
            al_window_t w;
            must_parse(&w, hours, n, dl, nd, zones[z]);
            /* 1970..2100, odd steps so every minute of the day comes up. */
            for (int64_t t = 0; t < 4102444800LL; t += 86400 * 37 + 60 * 7 + 11 + rnd(86400)) {
                time_t tt = (time_t)t;
                struct tm lt;
                assert_non_null(localtime_r(&tt, &lt));
                bool want = ref_contains(st, en, n, days, &lt);
                if (al_window_contains(&w, t) != want)
                    fail_msg("%s %s.. days %#x at %lld: want %d", zones[z], hours[0], days,
                             (long long)t, want);
                inside += want;
                total++;
            }
            al_window_free(&w);
        }
    }
    unsetenv("TZ");
    tzset();
    print_message("%zu of %zu instants inside\n", inside, total);
    assert_true(inside > total / 10 && inside < total - total / 10);
}

/* ---- hot path ------------------------------------------------------------------------------- */

static void test_hot_path(void **s)
{
    (void)s;
    al_window_t w;
    must_parse(&w, LIST("09:00-12:00", "13:00-17:30", "22:00-06:00"), 3, LIST("mon-fri"), 1,
               "Europe/Paris");
    size_t calls = 0, hits = 0;
#if WIN_COUNT_ALLOCS
    size_t before = n_allocs;
#endif
    uint64_t ns0 = al_mono_ns();
    for (int64_t t = at(2025, 1, 1, 0, 0, 0, 0); t < at(2030, 1, 1, 0, 0, 0, 0); t += 307) {
        hits += al_window_contains(&w, t);
        calls++;
    }
    uint64_t ns = al_mono_ns() - ns0;
#if WIN_COUNT_ALLOCS
    assert_int_equal(n_allocs, before);
#endif
    assert_true(hits > 0 && hits < calls);
    print_message("al_window_contains: %.1f ns per call over %zu calls\n",
                  (double)ns / (double)calls, calls);
    al_window_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_office_hours_paris),
        cmocka_unit_test(test_wrap_past_midnight),
        cmocka_unit_test(test_whole_day_and_defaults),
        cmocka_unit_test(test_dst_days_paris),
        cmocka_unit_test(test_against_libc),
        cmocka_unit_test(test_hot_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
