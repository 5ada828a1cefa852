/* log.c - structured JSON logs on stderr, one object per line. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "core/core.h"

static al_log_level_t g_level = AL_LOG_INFO;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void al_log_set_level(al_log_level_t lvl) { g_level = lvl; }
al_log_level_t al_log_get_level(void) { return g_level; }

const char *al_log_num(char *buf, int64_t v)
{
    snprintf(buf, 32, "\x01%" PRId64, v);
    return buf;
}

void al_log(al_log_level_t lvl, const char *msg, ...)
{
    if (lvl < g_level)
        return;
    al_buf_t b;
    al_buf_init(&b);
    char ts[40];
    al_buf_puts(&b, "{\"ts\":\"");
    al_buf_puts(&b, al_time_rfc3339(al_now(), ts, sizeof ts));
    al_buf_printf(&b, "\",\"level\":\"%s\",\"msg\":", level_names[lvl]);
    al_buf_json_str(&b, msg, strlen(msg));
    va_list ap;
    va_start(ap, msg);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k)
            break;
        const char *v = va_arg(ap, const char *);
        al_buf_append(&b, ",", 1);
        al_buf_json_str(&b, k, strlen(k));
        al_buf_append(&b, ":", 1);
        if (!v)
            al_buf_puts(&b, "null");
        else if (v[0] == '\x01')
            al_buf_puts(&b, v + 1);
        else
            al_buf_json_str(&b, v, strlen(v));
    }
    va_end(ap);
    al_buf_append(&b, "}\n", 2);
    if (!b.oom) {
        pthread_mutex_lock(&g_lock);
        ssize_t off = 0;
        while ((size_t)off < b.len) {
            ssize_t w = write(STDERR_FILENO, b.p + off, b.len - (size_t)off);
            if (w <= 0)
                break;
            off += w;
        }
        pthread_mutex_unlock(&g_lock);
    }
    al_buf_free(&b);
}
