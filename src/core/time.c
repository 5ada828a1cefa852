/* time.c - clocks, RFC 3339 formatting and duration parsing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/core.h"

double al_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint64_t al_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

const char *al_time_rfc3339(double t, char *buf, size_t cap)
{
    time_t s = (time_t)floor(t);
    int ms = (int)((t - (double)s) * 1000.0);
    if (ms > 999)
        ms = 999;
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
    return buf;
}

/* Strict decimal: digits, optionally '.' and more digits. No sign,
 * exponent, hex, whitespace or locale (which strtod would all accept). */
static const char *scan_decimal(const char *p, double *v)
{
    const char *q = p;
    double x = 0, scale = 1;
    while (*q >= '0' && *q <= '9')
        x = x * 10 + (*q++ - '0');
    if (q == p)
        return NULL;
    if (*q == '.') {
        const char *f = ++q;
        while (*q >= '0' && *q <= '9') {
            scale /= 10;
            x += (*q++ - '0') * scale;
        }
        if (q == f)
            return NULL;
    }
    *v = x;
    return q;
}

int al_parse_duration(const char *s, double *out)
{
    if (!s || !*s)
        return AL_ERR;
    double total = 0;
    const char *p = s;
    while (*p) {
        double v, mult;
        const char *end = scan_decimal(p, &v);
        if (!end)
            return AL_ERR;
        p = end;
        if (*p == '\0') {
            if (total != 0 || strpbrk(s, "smhd"))
                return AL_ERR; /* "1m30": a number without a unit only alone */
            mult = 1;          /* bare number: seconds */
        } else if (p[0] == 'm' && p[1] == 's') {
            mult = 0.001;
            p += 2;
        } else if (*p == 's') {
            mult = 1;
            p++;
        } else if (*p == 'm') {
            mult = 60;
            p++;
        } else if (*p == 'h') {
            mult = 3600;
            p++;
        } else if (*p == 'd') {
            mult = 86400;
            p++;
        } else {
            return AL_ERR;
        }
        total += v * mult;
        if (total > 100.0 * 365 * 86400)
            return AL_ERR;
    }
    *out = total;
    return AL_OK;
}
