/*
 * file.c - recording file names: session ids checked before they become
 * path components, and the YYYY/MM/DD layout (docs/recordings.md).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/config.h"
#include "record/record.h"

bool al_rec_id_ok(const char *id)
{
    /* 8-4-4-4-12 hex digits, lower case, as al_audit_uuid7 writes them */
    if (!id || strlen(id) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        char c = id[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return true;
}

int64_t al_rec_id_time(const char *id)
{
    if (!al_rec_id_ok(id) || id[14] != '7')
        return -1;
    /* RFC 9562 §5.7: the first 48 bits are Unix milliseconds */
    int64_t ms = 0;
    for (int i = 0; i < 13; i++) {
        if (id[i] == '-')
            continue;
        char c = id[i];
        ms = ms * 16 + (c <= '9' ? c - '0' : c - 'a' + 10);
    }
    return ms * 1000;
}

int al_rec_path(const char *dir, const char *id, int64_t t_us, const char *ext, char *out,
                size_t cap, const char **rel)
{
    if (!al_rec_id_ok(id))
        return AL_ERR;
    time_t secs = (time_t)(t_us / 1000000);
    struct tm tm;
    if (!gmtime_r(&secs, &tm))
        return AL_ERR;
    size_t dl = strlen(dir);
    int n = snprintf(out, cap, "%s/%04d/%02d/%02d/%s%s", dir, tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, id, ext);
    if (n < 0 || (size_t)n >= cap)
        return AL_ERR;
    if (rel)
        *rel = out + dl + 1;
    return AL_OK;
}

const char *al_rec_dir(const struct al_config *cfg, char *buf, size_t cap)
{
    const char *d = cfg && cfg->server.data_dir ? cfg->server.data_dir : ".";
    int n = snprintf(buf, cap, "%s/recordings", d);
    return n > 0 && (size_t)n < cap ? buf : NULL;
}
