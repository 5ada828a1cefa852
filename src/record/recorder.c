/*
 * recorder.c - the recorder thread and the worker-side line builder
 * (record.h, docs/recordings.md).
 *
 * Worker side: a line is built in the worker's scratch buffer and copied
 * into that worker's ring, a single-producer single-consumer byte ring
 * (release/acquire on head and tail, no lock, no allocation). When a line
 * does not fit, the worker switches to a locked overflow list and stays
 * there until the recorder has consumed all of it, so one worker's lines
 * always reach the file in the order they were made.
 *
 * Recorder side: every flush interval (or at once when a ring passes half
 * full or a session opens or closes) the thread drains the rings into
 * per-session buffers and writes each dirty session with one write(2).
 * A session's close compresses its file (gzip), hashing the compressed
 * bytes as they are written, fsyncs, renames it into place and submits the
 * closing audit event with the path and SHA-256.
 *
 * A failed write keeps the bytes and sets `failing`; the thread retries
 * every second and clears the flag when every pending write went through.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "audit/audit.h"
#include "record/record.h"

#define RING_DEFAULT (4u << 20)
#define HDR 16            /* message header: len, op, pad, session pointer */
#define PENDING_CAP (4u << 20)    /* bytes kept per session while writes fail */
#define PENDING_TOTAL (256u << 20) /* and for all sessions together */
#define RETRY_S 1.0
#define RETENTION_S 60.0

enum { OP_OPEN = 1, OP_LINE, OP_CLOSE, OP_WRAP };

typedef struct msg {
    uint32_t len; /* payload bytes */
    uint16_t op;
    uint16_t pad;
    al_rec_t *s;
} msg_t;
_Static_assert(sizeof(msg_t) == HDR, "message header layout");

typedef struct ovf {
    struct ovf *next;
    msg_t m;
    char data[];
} ovf_t;

typedef struct ring {
    /* producer (worker) */
    _Alignas(64) _Atomic size_t head;
    size_t ovf_pushed;          /* overflow messages pushed (producer count) */
    bool in_ovf;
    al_buf_t scratch;           /* the line being built */
    /* consumer (recorder) */
    _Alignas(64) _Atomic size_t tail;
    _Atomic size_t ovf_done;    /* overflow messages consumed */
    /* shared, locked */
    pthread_mutex_t lock;
    ovf_t *ovf_head, *ovf_tail;
    uint8_t *buf;
    size_t cap; /* power of two */
} ring_t;

struct al_rec {
    al_recorder_t *r;
    int worker;
    uint64_t t0_ns;             /* monotonic open time */
    int64_t started_us;
    char id[AL_AUDIT_ID_SIZE];
    char *protocol, *target;
    char *agent, *subject, *issuer; /* set by the worker before later lines */
    char *reason;               /* set by the worker before OP_CLOSE */
    int64_t bytes_up, bytes_down;
    /* recorder thread only */
    int fd;
    char *path;                 /* the open .jsonl */
    al_buf_t out;               /* bytes not yet written */
    bool dirty, closed, gap;
    al_rec_t *next_dirty, *next_pending;
};

struct al_recorder {
    al_rec_opts_t o;
    char *dir;
    struct al_audit *audit;
    ring_t *rings;
    int n_rings;
    int efd;
    pthread_t thread;
    bool started;
    _Atomic bool stop;
    _Atomic bool failing;       /* a write failed and has not been retried successfully */
    pthread_mutex_t err_lock;
    char err[512];
    al_rec_t *dirty;            /* recorder thread only */
    al_rec_t *pending;          /* closed sessions waiting for a retry */
    char made_dir[4096];        /* last day directory created */
    size_t buffered;            /* bytes in every session's `out` (recorder thread) */
    _Atomic uint64_t opened, closed, bytes, lines, overflow, failures, unrecorded;
};

/* ---- small helpers ---------------------------------------------------------------- */

static size_t align8(size_t n) { return (n + 7) & ~(size_t)7; }

static void wake(al_recorder_t *r)
{
    uint64_t one = 1;
    ssize_t n = write(r->efd, &one, sizeof one);
    (void)n; /* EAGAIN: already signalled */
}

static void set_error(al_recorder_t *r, const char *what, const char *path, int e)
{
    pthread_mutex_lock(&r->err_lock);
    bool first = !atomic_load(&r->failing);
    snprintf(r->err, sizeof r->err, "%s: %s at %s", what, strerror(e), path);
    atomic_store(&r->failing, true);
    pthread_mutex_unlock(&r->err_lock);
    atomic_fetch_add(&r->failures, 1);
    if (first)
        al_log(AL_LOG_ERROR, "session recording failed", "error", r->err, "on_failure",
               r->o.on_failure == AL_REC_FAIL_REFUSE ? "refuse" : "continue", NULL);
}

static void clear_error(al_recorder_t *r)
{
    if (!atomic_load(&r->failing))
        return;
    pthread_mutex_lock(&r->err_lock);
    r->err[0] = 0;
    atomic_store(&r->failing, false);
    pthread_mutex_unlock(&r->err_lock);
    al_log(AL_LOG_INFO, "session recording resumed", NULL);
}

bool al_recorder_refusing(const al_recorder_t *r)
{
    return r && r->o.on_failure == AL_REC_FAIL_REFUSE &&
           atomic_load_explicit(&((al_recorder_t *)r)->failing, memory_order_relaxed);
}

const char *al_recorder_error(const al_recorder_t *r, char *buf, size_t cap)
{
    if (!cap)
        return buf;
    buf[0] = 0;
    if (!r)
        return buf;
    al_recorder_t *m = (al_recorder_t *)r;
    pthread_mutex_lock(&m->err_lock);
    if (m->err[0])
        snprintf(buf, cap, "recording failed: %s", m->err);
    pthread_mutex_unlock(&m->err_lock);
    return buf;
}

void al_recorder_stats(const al_recorder_t *r, al_rec_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if (!r)
        return;
    al_recorder_t *m = (al_recorder_t *)r;
    out->sessions_open = atomic_load(&m->opened) - atomic_load(&m->closed);
    out->sessions_closed = atomic_load(&m->closed);
    out->bytes_written = atomic_load(&m->bytes);
    out->lines = atomic_load(&m->lines);
    out->overflow = atomic_load(&m->overflow);
    out->failures = atomic_load(&m->failures);
    out->failing = atomic_load(&m->failing);
}

/* mkdir -p for the day directory of path (everything before the last '/'). */
static int make_parent(al_recorder_t *r, const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;
    if (!n || n >= sizeof r->made_dir)
        return AL_ERR;
    if (!strncmp(r->made_dir, path, n) && r->made_dir[n] == 0)
        return AL_OK;
    char tmp[4096];
    memcpy(tmp, path, n);
    tmp[n] = 0;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(tmp, 0700) && errno != EEXIST)
            return AL_ERR;
        *p = '/';
    }
    if (mkdir(tmp, 0700) && errno != EEXIST)
        return AL_ERR;
    memcpy(r->made_dir, tmp, n + 1);
    return AL_OK;
}

/* ---- JSON pieces -------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (n bytes left), 0 if invalid
 * (RFC 3629 §4: no overlongs, no surrogates, at most U+10FFFF). */
static size_t utf8_len(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint32_t min, cp;
    if ((c & 0xe0) == 0xc0) {
        len = 2, min = 0x80, cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3, min = 0x800, cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4, min = 0x10000, cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* Bytes a JSON string carries as they are: printable ASCII but the quote
 * and the backslash. */
static const bool plain_byte[256] = {
    [0x20] = 1, [0x21] = 1, [0x23 ... 0x5b] = 1, [0x5d ... 0x7e] = 1,
};

/* Appends a JSON string of p[0..n). strict: returns false (and appends
 * nothing more) at the first invalid byte or NUL; otherwise those become
 * U+FFFD / \u0000. */
static bool json_string(al_buf_t *b, const uint8_t *p, size_t n, bool strict)
{
    static const char hex[] = "0123456789abcdef";
    size_t mark = b->len;
    /* the common case (no escapes) needs n + 2; escapes reserve more */
    if (al_buf_reserve(b, n + 2) != AL_OK)
        return !strict;
    char *o = b->p + b->len;
    char *lim = b->p + b->cap - 1;
    *o++ = '"';
    size_t i = 0;
    while (i < n) {
        /* a run of bytes that need no escape, copied at once */
        size_t r = i;
        while (r < n && plain_byte[p[r]])
            r++;
        if (r > i) {
            memcpy(o, p + i, r - i);
            o += r - i;
            i = r;
            if (i == n)
                break;
        }
        uint8_t c = p[i];
        /* up to 6 bytes for this one, 1 for each byte left, 1 for the quote */
        if ((size_t)(lim - o) < 6 + (n - i) + 1) {
            b->len = (size_t)(o - b->p);
            if (al_buf_reserve(b, 6 + (n - i) + 1 + (n - i) / 4) != AL_OK)
                goto fail;
            o = b->p + b->len;
            lim = b->p + b->cap - 1;
        }
        if (c >= 0x80) {
            size_t l = utf8_len(p + i, n - i);
            if (!l) {
                if (strict)
                    goto fail;
                memcpy(o, "\xef\xbf\xbd", 3);
                o += 3;
                i++;
            } else {
                memcpy(o, p + i, l);
                o += l;
                i += l;
            }
            continue;
        }
        if (c == 0 && strict)
            goto fail;
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\n': *o++ = 'n'; break;
        case '\t': *o++ = 't'; break;
        case '\r': *o++ = 'r'; break;
        default:
            memcpy(o, "u00", 3);
            o[3] = hex[c >> 4];
            o[4] = hex[c & 15];
            o += 5;
        }
        i++;
    }
    *o++ = '"';
    b->len = (size_t)(o - b->p);
    b->p[b->len] = 0;
    return true;
fail:
    if (b->p) {
        b->len = mark;
        b->p[mark] = 0;
    }
    return false;
}

/* Decimal digits of v into the end of tmp[24]; returns the first digit. */
static char *u64_dec(uint64_t v, char tmp[24])
{
    char *p = tmp + 24;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return p;
}

static void put_key(al_buf_t *b, const char *key)
{
    if (!key)
        return;
    al_buf_append(b, ",\"", 2);
    al_buf_puts(b, key);
    al_buf_append(b, "\":", 2);
}

void al_rec_str(al_buf_t *b, const char *key, const void *p, size_t n)
{
    put_key(b, key);
    json_string(b, p, n, false);
}

void al_rec_cstr(al_buf_t *b, const char *key, const char *s)
{
    put_key(b, key);
    if (s)
        json_string(b, (const uint8_t *)s, strlen(s), false);
    else
        al_buf_append(b, "null", 4);
}

void al_rec_int(al_buf_t *b, const char *key, int64_t v)
{
    put_key(b, key);
    char tmp[24];
    if (v < 0)
        al_buf_append(b, "-", 1);
    char *d = u64_dec(v < 0 ? 0 - (uint64_t)v : (uint64_t)v, tmp);
    al_buf_append(b, d, (size_t)(tmp + 24 - d));
}

void al_rec_bool(al_buf_t *b, const char *key, bool v)
{
    put_key(b, key);
    al_buf_puts(b, v ? "true" : "false");
}

void al_rec_bytes(al_buf_t *b, const char *key, const void *p, size_t n)
{
    if (key)
        put_key(b, key);
    if (json_string(b, p, n, true))
        return;
    al_rec_base64(b, NULL, p, n);
}

void al_rec_base64(al_buf_t *b, const char *key, const void *p, size_t n)
{
    put_key(b, key);
    al_buf_puts(b, "{\"base64\":\"");
    size_t start = b->len, need = 4 * ((n + 2) / 3) + 1;
    if (al_buf_append(b, NULL, 0) == AL_OK && b->cap - b->len < need) {
        /* grow: append a placeholder of the right size, then overwrite it */
        size_t old = b->len;
        for (size_t k = 0; k < need; k += 64)
            al_buf_append(b, "================================================================",
                          need - k < 64 ? need - k : 64);
        b->len = old;
    }
    if (!b->oom && b->cap - b->len >= need) {
        int w = EVP_EncodeBlock((unsigned char *)b->p + start, p, (int)n);
        b->len = start + (size_t)w;
        b->p[b->len] = 0;
    }
    al_buf_puts(b, "\"}");
}

/* ---- worker side ------------------------------------------------------------------ */

static void ring_wake_if_full(al_recorder_t *r, ring_t *g)
{
    size_t used = atomic_load_explicit(&g->head, memory_order_relaxed) -
                  atomic_load_explicit(&g->tail, memory_order_acquire);
    if (used > g->cap / 2)
        wake(r);
}

/* Pushes one message (header + payload) from the owning worker. */
static void push(al_rec_t *s, int op, const void *p, size_t n)
{
    al_recorder_t *r = s->r;
    ring_t *g = &r->rings[s->worker];
    atomic_fetch_add_explicit(&r->lines, 1, memory_order_relaxed);
    if (g->in_ovf && atomic_load_explicit(&g->ovf_done, memory_order_acquire) == g->ovf_pushed)
        g->in_ovf = false; /* the recorder has consumed every overflow message */
    size_t need = HDR + align8(n);
    if (!g->in_ovf && need <= g->cap / 2) {
        size_t head = atomic_load_explicit(&g->head, memory_order_relaxed);
        size_t tail = atomic_load_explicit(&g->tail, memory_order_acquire);
        size_t off = head & (g->cap - 1), room_end = g->cap - off;
        size_t total = room_end < need ? room_end + need : need;
        if (g->cap - (head - tail) >= total) {
            if (room_end < need) { /* skip to the start, marked when a header fits */
                if (room_end >= HDR) {
                    msg_t w = {.len = 0, .op = OP_WRAP};
                    memcpy(g->buf + off, &w, HDR);
                }
                head += room_end;
                off = 0;
            }
            msg_t m = {.len = (uint32_t)n, .op = (uint16_t)op, .s = s};
            memcpy(g->buf + off, &m, HDR);
            if (n)
                memcpy(g->buf + off + HDR, p, n);
            atomic_store_explicit(&g->head, head + need, memory_order_release);
            ring_wake_if_full(r, g);
            return;
        }
    }
    /* Overflow: allocate, queue under the lock, and stay on this path until
     * the recorder caught up, to keep the order. */
    ovf_t *o = malloc(sizeof *o + n);
    if (!o) {
        al_log(AL_LOG_ERROR, "session recording: out of memory; a line is lost", "session",
               s->id, NULL);
        return;
    }
    o->next = NULL;
    o->m = (msg_t){.len = (uint32_t)n, .op = (uint16_t)op, .s = s};
    if (n)
        memcpy(o->data, p, n);
    pthread_mutex_lock(&g->lock);
    if (g->ovf_tail)
        g->ovf_tail->next = o;
    else
        g->ovf_head = o;
    g->ovf_tail = o;
    pthread_mutex_unlock(&g->lock);
    g->in_ovf = true;
    g->ovf_pushed++;
    atomic_fetch_add_explicit(&r->overflow, 1, memory_order_relaxed);
    wake(r);
}

al_rec_t *al_rec_open(al_recorder_t *r, int worker, const al_rec_meta_t *m)
{
    if (!r || worker < 0 || worker >= r->n_rings || !al_rec_id_ok(m->session_id))
        return NULL;
    al_rec_t *s = calloc(1, sizeof *s);
    if (!s) {
        atomic_fetch_add(&r->unrecorded, 1);
        return NULL;
    }
    s->r = r;
    s->worker = worker;
    s->fd = -1;
    s->t0_ns = al_mono_ns();
    double now = al_now();
    s->started_us = (int64_t)(now * 1e6);
    memcpy(s->id, m->session_id, 37);
    s->protocol = al_xstrdup(m->protocol ? m->protocol : "");
    s->target = m->target ? al_xstrdup(m->target) : NULL;
    s->bytes_up = s->bytes_down = -1;
    atomic_fetch_add(&r->opened, 1);

    al_buf_t *b = &r->rings[worker].scratch;
    al_buf_reset(b);
    al_buf_printf(b, "{\"type\":\"session\",\"version\":%d", AL_REC_VERSION);
    al_rec_cstr(b, "session_id", s->id);
    al_rec_cstr(b, "protocol", m->protocol);
    al_rec_cstr(b, "target", m->target);
    al_rec_cstr(b, "client", m->client);
    char ts[64];
    time_t secs = (time_t)(s->started_us / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(s->started_us % 1000000));
    al_rec_cstr(b, "started", ts);
    al_rec_int(b, "started_us", s->started_us);
    for (const char *const *e = m->extra; e && e[0] && e[1]; e += 2)
        al_rec_cstr(b, e[0], e[1]);
    al_buf_append(b, "}\n", 2);
    push(s, OP_OPEN, b->p, b->len);
    wake(r);
    return s;
}

void al_rec_identify(al_rec_t *s, const al_rec_who_t *who)
{
    if (!s || !who)
        return;
    al_free(&s->agent);
    al_free(&s->subject);
    al_free(&s->issuer);
    s->agent = who->agent ? al_xstrdup(who->agent) : NULL;
    s->subject = who->subject ? al_xstrdup(who->subject) : NULL;
    s->issuer = who->issuer ? al_xstrdup(who->issuer) : NULL;
    al_buf_t *b = al_rec_begin(s, "identity");
    al_rec_cstr(b, "agent", who->agent);
    al_rec_cstr(b, "subject", who->subject);
    al_rec_cstr(b, "issuer", who->issuer);
    al_rec_end(s);
}

al_buf_t *al_rec_begin(al_rec_t *s, const char *type)
{
    if (!s)
        return NULL;
    al_buf_t *b = &s->r->rings[s->worker].scratch;
    uint64_t us = (al_mono_ns() - s->t0_ns) / 1000;
    al_buf_reset(b);
    /* {"t":<seconds>.<6 digits>,"type":"<type>" without printf */
    char tmp[24], frac[7];
    char *d = u64_dec(us / 1000000, tmp);
    uint64_t f = us % 1000000;
    for (int i = 5; i >= 0; i--, f /= 10)
        frac[i] = (char)('0' + f % 10);
    frac[6] = '.';
    al_buf_append(b, "{\"t\":", 5);
    al_buf_append(b, d, (size_t)(tmp + 24 - d));
    al_buf_append(b, ".", 1);
    al_buf_append(b, frac, 6);
    al_buf_append(b, ",\"type\":\"", 9);
    al_buf_puts(b, type);
    al_buf_append(b, "\"", 1);
    return b;
}

void al_rec_end(al_rec_t *s)
{
    if (!s)
        return;
    al_buf_t *b = &s->r->rings[s->worker].scratch;
    al_buf_append(b, "}\n", 2);
    if (b->oom) {
        al_buf_free(b);
        return;
    }
    push(s, OP_LINE, b->p, b->len);
    if (b->cap > (1u << 20)) /* do not keep a huge scratch after one big line */
        al_buf_free(b);
}

void al_rec_close(al_rec_t *s, const al_rec_end_info_t *e)
{
    if (!s)
        return;
    s->reason = al_xstrdup(e && e->reason ? e->reason : "closed");
    s->bytes_up = e ? e->bytes_up : -1;
    s->bytes_down = e ? e->bytes_down : -1;
    al_buf_t *b = al_rec_begin(s, "close");
    al_rec_cstr(b, "reason", s->reason);
    if (s->bytes_up >= 0)
        al_rec_int(b, "bytes_up", s->bytes_up);
    if (s->bytes_down >= 0)
        al_rec_int(b, "bytes_down", s->bytes_down);
    al_buf_append(b, "}\n", 2);
    push(s, OP_CLOSE, b->p, b->len);
    wake(s->r);
}

/* ---- recorder side ---------------------------------------------------------------- */

static void sess_free(al_rec_t *s)
{
    if (s->fd >= 0)
        close(s->fd);
    if (s->r)
        s->r->buffered -= s->out.len;
    al_buf_free(&s->out);
    al_free(&s->path);
    al_free(&s->protocol);
    al_free(&s->target);
    al_free(&s->agent);
    al_free(&s->subject);
    al_free(&s->issuer);
    al_free(&s->reason);
    free(s);
}

/* Appends s->out to the session's file; AL_OK when everything went out.
 * The file is opened for each flush and closed after it, so a thousand
 * idle sessions hold no descriptors. */
static int flush_one(al_recorder_t *r, al_rec_t *s);

static int flush_sess(al_recorder_t *r, al_rec_t *s)
{
    size_t before = s->out.len;
    int rc = flush_one(r, s);
    r->buffered -= before - s->out.len;
    return rc;
}

static int flush_one(al_recorder_t *r, al_rec_t *s)
{
    if (!s->out.len)
        return AL_OK;
    {
        char path[4096];
        if (al_rec_path(r->dir, s->id, s->started_us, AL_REC_EXT_JSONL, path, sizeof path,
                        NULL) != AL_OK)
            return AL_ERR;
        if (!s->path)
            s->path = al_xstrdup(path);
        if (make_parent(r, path) != AL_OK) {
            set_error(r, "cannot create the recordings directory", path, errno);
            return AL_ERR;
        }
        s->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (s->fd < 0) {
            set_error(r, "cannot create the recording", path, errno);
            return AL_ERR;
        }
    }
    size_t done = 0;
    while (done < s->out.len) {
        ssize_t w = write(s->fd, s->out.p + done, s->out.len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = w < 0 ? errno : ENOSPC;
            /* keep what was not written; a partial line is completed by the retry */
            memmove(s->out.p, s->out.p + done, s->out.len - done);
            s->out.len -= done;
            atomic_fetch_add(&r->bytes, done);
            close(s->fd);
            s->fd = -1;
            set_error(r, "cannot write the recording", s->path, e);
            return AL_ERR;
        }
        done += (size_t)w;
    }
    atomic_fetch_add(&r->bytes, done);
    al_buf_reset(&s->out);
    if (s->out.cap > (256u << 10)) /* a burst: do not keep its room */
        al_buf_free(&s->out);
    close(s->fd);
    s->fd = -1;
    return AL_OK;
}

static void finalize(al_recorder_t *r, al_rec_t *s, bool recovered);

static void consume(al_recorder_t *r, const msg_t *m, const char *data)
{
    al_rec_t *s = m->s;
    if (s->out.len > PENDING_CAP || r->buffered > PENDING_TOTAL) {
        /* writes have failed for long: drop, and say so in the file */
        if (!s->gap)
            al_log(AL_LOG_WARN, "session recording: dropping lines while writes fail", "session",
                   s->id, NULL);
        s->gap = true;
    } else {
        if (s->gap && m->op != OP_OPEN) {
            al_buf_puts(&s->out, "{\"type\":\"gap\",\"reason\":\"recorder could not write\"}\n");
            s->gap = false;
        }
        size_t before = s->out.len;
        al_buf_append(&s->out, data, m->len);
        r->buffered += s->out.len - before;
    }
    if (!s->dirty) {
        s->dirty = true;
        s->next_dirty = r->dirty;
        r->dirty = s;
    }
    if (m->op == OP_CLOSE)
        s->closed = true;
}

/* Consumes what the ring holds now; returns how many messages. */
static size_t take_ring(al_recorder_t *r, ring_t *g)
{
    size_t n = 0;
    size_t tail = atomic_load_explicit(&g->tail, memory_order_relaxed);
    size_t head = atomic_load_explicit(&g->head, memory_order_acquire);
    while (tail != head) {
        size_t off = tail & (g->cap - 1);
        msg_t m;
        if (g->cap - off >= HDR)
            memcpy(&m, g->buf + off, HDR);
        if (g->cap - off < HDR || m.op == OP_WRAP) { /* the producer skipped to the start */
            tail += g->cap - off;
            continue;
        }
        consume(r, &m, (const char *)g->buf + off + HDR);
        tail += HDR + align8(m.len);
        n++;
    }
    atomic_store_explicit(&g->tail, tail, memory_order_release);
    return n;
}

/* Takes every message of one ring, then its overflow list, draining the
 * ring once more in between: the worker pushed nothing to the ring since it
 * started overflowing, so every line still there is ahead of the list. */
static size_t drain_ring(al_recorder_t *r, ring_t *g)
{
    size_t n = 0;
    for (;;) {
        n += take_ring(r, g);
        pthread_mutex_lock(&g->lock);
        ovf_t *o = g->ovf_head;
        g->ovf_head = g->ovf_tail = NULL;
        pthread_mutex_unlock(&g->lock);
        if (!o)
            return n;
        n += take_ring(r, g);
        size_t k = 0;
        while (o) {
            ovf_t *next = o->next;
            consume(r, &o->m, o->data);
            free(o);
            o = next;
            k++;
        }
        n += k;
        atomic_fetch_add_explicit(&g->ovf_done, k, memory_order_release);
    }
}

static void flush_dirty(al_recorder_t *r)
{
    al_rec_t *list = r->dirty, *keep = NULL;
    r->dirty = NULL;
    bool ok = true;
    while (list) {
        al_rec_t *s = list;
        list = s->next_dirty;
        s->dirty = false;
        if (flush_sess(r, s) != AL_OK) {
            ok = false;
            s->dirty = true;
            s->next_dirty = keep;
            keep = s;
            continue;
        }
        if (s->closed)
            finalize(r, s, false);
    }
    r->dirty = keep;
    if (ok && !keep && !r->pending)
        clear_error(r);
}

/* Closed sessions whose compression failed wait here for a retry. */
static void retry_pending(al_recorder_t *r)
{
    al_rec_t *list = r->pending;
    r->pending = NULL;
    while (list) {
        al_rec_t *s = list;
        list = s->next_pending;
        finalize(r, s, false);
    }
}

/* Compresses src into dst (gzip), hashing the compressed bytes; fsyncs
 * dst. AL_OK, or AL_ERR with errno set. */
static int compress_file(const char *src, const char *dst, char hex[65])
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return AL_ERR;
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) {
        int e = errno;
        close(in);
        errno = e;
        return AL_ERR;
    }
    z_stream z = {0};
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int rc = AL_ERR, e = EIO;
    static _Thread_local uint8_t ibuf[1 << 16], obuf[1 << 16];
    if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL) ||
        deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        goto out;
    for (;;) {
        ssize_t n = read(in, ibuf, sizeof ibuf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            e = errno;
            goto out_z;
        }
        z.next_in = ibuf;
        z.avail_in = (uInt)n;
        int flush = n == 0 ? Z_FINISH : Z_NO_FLUSH;
        int zr;
        do {
            z.next_out = obuf;
            z.avail_out = sizeof obuf;
            zr = deflate(&z, flush);
            size_t have = sizeof obuf - z.avail_out;
            for (size_t done = 0; done < have;) {
                ssize_t w = write(out, obuf + done, have - done);
                if (w < 0 && errno == EINTR)
                    continue;
                if (w <= 0) {
                    e = w < 0 ? errno : ENOSPC;
                    goto out_z;
                }
                done += (size_t)w;
            }
            EVP_DigestUpdate(md, obuf, have);
        } while (z.avail_out == 0);
        if (flush == Z_FINISH && zr == Z_STREAM_END)
            break;
    }
    if (fsync(out)) {
        e = errno;
        goto out_z;
    }
    uint8_t dig[32];
    unsigned dl = 0;
    EVP_DigestFinal_ex(md, dig, &dl);
    al_hex(dig, 32, hex);
    rc = AL_OK;
out_z:
    deflateEnd(&z);
out:
    EVP_MD_CTX_free(md);
    close(in);
    if (close(out) && rc == AL_OK) {
        e = errno;
        rc = AL_ERR;
    }
    if (rc != AL_OK) {
        unlink(dst);
        errno = e;
    }
    return rc;
}

static void fsync_dir(const char *path)
{
    char d[4096];
    snprintf(d, sizeof d, "%s", path);
    char *slash = strrchr(d, '/');
    if (!slash)
        return;
    *slash = 0;
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Compresses a closed session's file, audits it, frees the session (or
 * queues it for a retry). */
static void finalize(al_recorder_t *r, al_rec_t *s, bool recovered)
{
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
    char gz[4096], tmp[4200], hex[65];
    const char *rel = NULL;
    if (!s->path ||
        al_rec_path(r->dir, s->id, s->started_us, AL_REC_EXT_JSONL AL_REC_EXT_GZ, gz, sizeof gz,
                    &rel) != AL_OK) {
        sess_free(s);
        return;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp", gz);
    if (compress_file(s->path, tmp, hex) != AL_OK || rename(tmp, gz)) {
        set_error(r, "cannot compress the recording", gz, errno);
        unlink(tmp);
        s->next_pending = r->pending;
        r->pending = s;
        return;
    }
    unlink(s->path);
    fsync_dir(gz);
    atomic_fetch_add(&r->closed, 1);
    if (r->audit) {
        al_audit_event_t ev;
        al_audit_event_init(&ev);
        ev.kind = AL_AUDIT_KIND_SESSION_END;
        ev.session_id = s->id;
        ev.agent = s->agent;
        ev.subject = s->subject;
        ev.issuer = s->issuer;
        ev.target = s->target;
        ev.protocol = s->protocol && *s->protocol ? s->protocol : NULL;
        ev.action = al_str_c("session");
        ev.reason = recovered ? "recovered after an unclean stop" : s->reason;
        ev.duration_us = recovered ? -1 : (int64_t)((al_mono_ns() - s->t0_ns) / 1000);
        ev.bytes_up = s->bytes_up;
        ev.bytes_down = s->bytes_down;
        ev.recording = rel;
        ev.recording_sha256 = hex;
        char id[AL_AUDIT_ID_SIZE];
        if (al_audit_submit_async(r->audit, &ev, id) != AL_OK)
            al_log(AL_LOG_ERROR, "session recording: closing audit event dropped", "session",
                   s->id, "recording", rel, NULL);
    }
    sess_free(s);
}

/* Finalizes one recording left open ("<id>.jsonl" in a day directory). */
static void recover_one(al_recorder_t *r, const char *day, const int ymd[3], const char *name)
{
    char id[37];
    if (strlen(name) != 36 + 6 || strcmp(name + 36, AL_REC_EXT_JSONL))
        return;
    memcpy(id, name, 36);
    id[36] = 0;
    if (!al_rec_id_ok(id))
        return;
    al_rec_t *s = calloc(1, sizeof *s);
    if (!s)
        return;
    s->fd = -1;
    memcpy(s->id, id, 37);
    s->bytes_up = s->bytes_down = -1;
    /* the day directory names the start date: al_rec_path finds it again */
    struct tm tm = {.tm_year = ymd[0] - 1900, .tm_mon = ymd[1] - 1, .tm_mday = ymd[2],
                    .tm_hour = 12};
    s->started_us = (int64_t)timegm(&tm) * 1000000;
    char full[4200];
    snprintf(full, sizeof full, "%s/%s", day, name);
    s->path = al_xstrdup(full);
    s->t0_ns = al_mono_ns();
    al_log(AL_LOG_WARN, "session recording: finalizing one left open", "session", id, NULL);
    finalize(r, s, true);
}

/* Walks dir/YYYY/MM/DD (level 0, 1, 2: names of 4, 2, 2 digits) and
 * recovers the open recordings of every day directory. */
static void recover_walk(al_recorder_t *r, const char *path, int level, int ymd[3])
{
    static const size_t digits[3] = {4, 2, 2};
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *e;
    char sub[4096];
    while ((e = readdir(d))) {
        if (level == 3) {
            recover_one(r, path, ymd, e->d_name);
            continue;
        }
        if (strlen(e->d_name) != digits[level] ||
            strspn(e->d_name, "0123456789") != digits[level])
            continue;
        int n = snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        if (n < 0 || (size_t)n >= sizeof sub)
            continue;
        ymd[level] = atoi(e->d_name);
        recover_walk(r, sub, level + 1, ymd);
    }
    closedir(d);
}

/* Recordings left open by a crash: compress and audit them. */
static void recover(al_recorder_t *r)
{
    int ymd[3] = {0};
    recover_walk(r, r->dir, 0, ymd);
}

static void on_removed(void *ud, const char *rel, const char *sha, const char *reason)
{
    al_recorder_t *r = ud;
    al_log(AL_LOG_INFO, "session recording removed", "recording", rel, "reason", reason, NULL);
    if (!r->audit)
        return;
    al_audit_event_t ev;
    al_audit_event_init(&ev);
    ev.kind = AL_AUDIT_KIND_RECORDING;
    ev.action = al_str_c("remove");
    ev.reason = reason;
    ev.recording = rel;
    ev.recording_sha256 = sha;
    char id[AL_AUDIT_ID_SIZE];
    if (al_audit_submit_async(r->audit, &ev, id) != AL_OK)
        al_log(AL_LOG_ERROR, "session recording: removal audit event dropped", "recording", rel,
               NULL);
}

static void retention(al_recorder_t *r)
{
    if (r->o.retain <= 0 && !r->o.max_bytes)
        return;
    char err[512];
    if (al_rec_retention(r->dir, r->o.retain, r->o.max_bytes, al_now(), on_removed, r, err,
                         sizeof err) != AL_OK)
        al_log(AL_LOG_WARN, "session recording retention", "error", err, NULL);
    r->made_dir[0] = 0; /* it may have removed an empty day directory */
}

static void *run(void *arg)
{
    al_recorder_t *r = arg;
    pthread_setname_np(pthread_self(), "al-record");
    int ms = (int)(r->o.flush_interval * 1000);
    if (ms < 1)
        ms = 1;
    double next_retry = 0, next_retention = al_now() + RETENTION_S;
    for (;;) {
        bool stopping = atomic_load(&r->stop);
        size_t n = 0;
        for (int i = 0; i < r->n_rings; i++)
            n += drain_ring(r, &r->rings[i]);
        double now = al_now();
        if (r->dirty && (!atomic_load(&r->failing) || now >= next_retry || stopping)) {
            flush_dirty(r);
            if (atomic_load(&r->failing))
                next_retry = now + RETRY_S;
        }
        if (r->pending && now >= next_retry) {
            retry_pending(r);
            if (atomic_load(&r->failing))
                next_retry = now + RETRY_S;
            else if (!r->dirty && !r->pending)
                clear_error(r);
        }
        if (now >= next_retention) {
            retention(r);
            next_retention = now + RETENTION_S;
        }
        if (stopping)
            break;
        /* sessions open: wake every interval to drain; none: sleep until signalled */
        bool busy = atomic_load(&r->opened) != atomic_load(&r->closed) || r->dirty || r->pending;
        struct pollfd p = {.fd = r->efd, .events = POLLIN};
        if (poll(&p, 1, busy ? ms : 1000) > 0) {
            uint64_t v;
            ssize_t rd = read(r->efd, &v, sizeof v);
            (void)rd;
        }
        (void)n;
    }
    return NULL;
}

int al_recorder_open(const al_rec_opts_t *o, struct al_audit *audit, al_recorder_t **out,
                     char *err, size_t cap)
{
    *out = NULL;
    if (!o->dir || o->n_workers < 1) {
        snprintf(err, cap, "recordings: no directory or no workers");
        return AL_ERR;
    }
    al_recorder_t *r = al_xcalloc(1, sizeof *r);
    r->o = *o;
    r->dir = al_xstrdup(o->dir);
    r->o.dir = r->dir;
    if (!r->o.flush_interval)
        r->o.flush_interval = 0.05;
    r->audit = audit;
    r->efd = -1;
    pthread_mutex_init(&r->err_lock, NULL);
    size_t rb = o->ring_bytes ? o->ring_bytes : RING_DEFAULT, c = 4096;
    while (c < rb)
        c <<= 1;
    r->n_rings = o->n_workers;
    r->rings = al_xcalloc((size_t)r->n_rings, sizeof *r->rings);
    for (int i = 0; i < r->n_rings; i++) {
        pthread_mutex_init(&r->rings[i].lock, NULL);
        r->rings[i].cap = c;
        r->rings[i].buf = malloc(c);
        if (!r->rings[i].buf) {
            snprintf(err, cap, "recordings: out of memory for the worker rings");
            r->n_rings = i;
            al_recorder_close(&r);
            return AL_ERR;
        }
    }
    /* the directory itself: refuse to start if it cannot be made */
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/x", r->dir);
    if (make_parent(r, probe) != AL_OK || access(r->dir, W_OK)) {
        snprintf(err, cap,
                 "recordings: cannot create or write the directory %s: %s; check "
                 "server.data_dir and its permissions",
                 r->dir, strerror(errno));
        al_recorder_close(&r);
        return AL_ERR;
    }
    r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->efd < 0) {
        snprintf(err, cap, "recordings: eventfd: %s", strerror(errno));
        al_recorder_close(&r);
        return AL_ERR;
    }
    recover(r);
    retention(r);
    if (pthread_create(&r->thread, NULL, run, r)) {
        snprintf(err, cap, "recordings: cannot start the recorder thread");
        al_recorder_close(&r);
        return AL_ERR;
    }
    r->started = true;
    *out = r;
    return AL_OK;
}

void al_recorder_close(al_recorder_t **rp)
{
    al_recorder_t *r = *rp;
    if (!r)
        return;
    *rp = NULL;
    if (r->started) {
        atomic_store(&r->stop, true);
        wake(r);
        pthread_join(r->thread, NULL);
    }
    /* what could not be written stays as an open .jsonl: the next start
     * finalizes it */
    while (r->dirty) {
        al_rec_t *s = r->dirty;
        r->dirty = s->next_dirty;
        if (s->closed)
            sess_free(s);
        else if (s->fd >= 0) {
            close(s->fd);
            s->fd = -1;
        }
    }
    while (r->pending) {
        al_rec_t *s = r->pending;
        r->pending = s->next_pending;
        sess_free(s);
    }
    for (int i = 0; i < r->n_rings; i++) {
        ring_t *g = &r->rings[i];
        for (ovf_t *o = g->ovf_head, *n; o; o = n) {
            n = o->next;
            free(o);
        }
        free(g->buf);
        al_buf_free(&g->scratch);
        pthread_mutex_destroy(&g->lock);
    }
    free(r->rings);
    if (r->efd >= 0)
        close(r->efd);
    pthread_mutex_destroy(&r->err_lock);
    al_free(&r->dir);
    free(r);
}
