/*
 * window.h - time windows of policy rules: local hours on chosen weekdays
 * in the rule's own time zone, e.g.
 *
 *   hours: ["09:00-12:00", "13:00-17:30"]   days: [mon-fri]
 *   timezone: Europe/Paris
 *
 * Parsed once at config load; al_window_contains is then allocation- and
 * lock-free and never touches the process-global TZ, so any number of
 * threads may share one window.
 *
 * Semantics, all in the zone's local wall-clock time:
 *   - A range "HH:MM-HH:MM" is [start, end) to the minute: "09:00-17:30"
 *     holds from 09:00:00 up to 17:29:59. "00:00-24:00" is the whole day;
 *     24:00 may only end a range.
 *   - A range whose end is before its start wraps past midnight and belongs
 *     to the day it starts on: "22:00-06:00" with days [mon] holds from
 *     Monday 22:00 to Tuesday 06:00, and not on Monday before 06:00.
 *   - days are mon, tue, wed, thu, fri, sat, sun (any case) or ranges of
 *     them such as "mon-fri"; a range may wrap: "fri-mon" is fri, sat, sun,
 *     mon.
 *   - Empty hours mean the whole day, empty days every day, no time zone
 *     UTC.
 *   - Local times that do not exist are never inside: on a spring-forward
 *     day in Europe/Paris, "02:30-02:45" simply does not occur (and
 *     "02:00-04:00" lasts one real hour). Local times that happen twice on
 *     a fall-back day are inside both times.
 */
#ifndef AL_POLICY_WINDOW_H
#define AL_POLICY_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/tz.h"

/* Ranges a window may hold (the hours list). */
#define AL_WINDOW_MAX_RANGES 16

typedef struct al_window_range {
    uint16_t start; /* minutes after local midnight, 0..1439 */
    uint16_t end;   /* 1..1440; end < start means it wraps past midnight */
} al_window_range_t;

typedef struct al_window {
    al_tz_t *tz;   /* owned; NULL means UTC */
    uint8_t days;  /* bit d set: ranges may start on weekday d (0 = Sunday) */
    size_t n_ranges;
    al_window_range_t ranges[AL_WINDOW_MAX_RANGES];
} al_window_t;

/* Parses a window from the rule's hours (n_hours strings such as
 * "09:00-17:30"), days (n_days strings such as "mon" or "mon-fri") and
 * time zone name (see al_tz_load; NULL or "" means UTC) into *w, which
 * the caller owns and releases with al_window_free. The strings are not
 * kept. Returns AL_OK, or AL_ERR with *w zeroed (nothing to free) and a
 * message for the operator in err (errlen bytes, NUL-terminated when
 * errlen > 0), e.g. "hours '25:00-26:00': hour must be 00-23" or
 * "days 'mon-fry': unknown day 'fry' (use mon, tue, wed, thu, fri, sat, sun)". */
int al_window_parse(al_window_t *w, const char *const *hours, size_t n_hours,
                    const char *const *days, size_t n_days, const char *tz, char *err,
                    size_t errlen);

/* True if the POSIX time utc falls inside the window. Allocation- and
 * lock-free; w is only read. */
bool al_window_contains(const al_window_t *w, int64_t utc);

/* Releases what w owns (its zone) and zeroes it. Accepts a zeroed window;
 * calling it twice is harmless. */
void al_window_free(al_window_t *w);

#endif
