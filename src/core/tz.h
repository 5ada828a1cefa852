/*
 * tz.h - time zones without the process-global TZ: a zone is loaded once
 * (at config load) into an immutable object, then converted against on the
 * hot path with no allocation, no lock and no libc time-zone state, so each
 * policy rule can carry its own zone and many threads can share one.
 *
 * Sources of a zone, chosen by the name given to al_tz_load:
 *   - "UTC": built in, never touches the filesystem;
 *   - a fixed offset east of UTC, ISO 8601 style: "+02:00", "-0530", "+05"
 *     (note: the opposite sign of POSIX TZ and of the Etc/GMT+N files);
 *   - an IANA name such as "Europe/Paris": the TZif file (RFC 8536) under
 *     /usr/share/zoneinfo, whose footer TZ string (RFC 8536 §3.3, POSIX
 *     TZ rules) covers instants after the last listed transition.
 */
#ifndef AL_TZ_H
#define AL_TZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Opaque and immutable once loaded; safe to share between threads. */
typedef struct al_tz al_tz_t;

/* A broken-down local time. */
typedef struct al_civil {
    int64_t year;   /* proleptic Gregorian, e.g. 2025 (no 1900 bias) */
    int month;      /* 1-12 */
    int mday;       /* 1-31 */
    int wday;       /* 0 = Sunday .. 6 = Saturday */
    int yday;       /* 0-365 */
    int hour;       /* 0-23 */
    int minute;     /* 0-59 */
    int second;     /* 0-59 (POSIX time has no leap seconds) */
    int32_t utoff;  /* seconds east of UTC in effect at that instant */
    bool isdst;     /* daylight saving time in effect */
} al_civil_t;

/* Directory the IANA names are looked up in. */
#define AL_TZ_DIR "/usr/share/zoneinfo"

/* Loads the zone called name (see the list above). Names are refused unless
 * they are relative, contain no "..", no empty component and only the bytes
 * [A-Za-z0-9_+-/]. Returns a new zone owned by the caller (release it with
 * al_tz_free), or NULL with a message for the operator in err (errlen bytes,
 * always NUL-terminated when errlen > 0), e.g.
 * "unknown time zone 'Europe/Pariss'". Zones with leap-second records
 * ("right/...") are refused: airlock's clock is POSIX time. */
al_tz_t *al_tz_load(const char *name, char *err, size_t errlen);

/* Parses a TZif image (RFC 8536, versions 1 to 4) held in memory, e.g. for
 * tests and fuzzing; name is only recorded (al_tz_name). Same ownership and
 * error rules as al_tz_load. Does not keep a reference to data. */
al_tz_t *al_tz_parse_tzif(const char *name, const uint8_t *data, size_t len, char *err,
                          size_t errlen);

/* Frees *tz and sets it to NULL. Accepts a pointer to NULL. */
void al_tz_free(al_tz_t **tz);

/* The name the zone was loaded under ("Europe/Paris", "+02:00", "UTC").
 * Borrowed from tz; valid until it is freed. */
const char *al_tz_name(const al_tz_t *tz);

/* Offset in seconds east of UTC in effect at the POSIX time utc. A NULL tz
 * means UTC. Allocation- and lock-free: a binary search over the
 * transitions, then O(1) arithmetic for the footer rule. */
int32_t al_tz_offset(const al_tz_t *tz, int64_t utc);

/* Fills *out with the local time in tz at the POSIX time utc (NULL tz means
 * UTC). Allocation- and lock-free. utc must lie within about +-2^55
 * seconds, far beyond any date a policy can name. */
void al_tz_civil(const al_tz_t *tz, int64_t utc, al_civil_t *out);

#endif
