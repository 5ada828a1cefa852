/*
 * core.h - the small vocabulary every airlock file shares: return codes,
 * string views, checked allocation, structured logging and time.
 *
 * Ownership rules: an al_str_t never owns its bytes. Anything returned by
 * al_malloc/al_calloc/al_strndup is owned by the caller and released with
 * al_free(&p), which also clears the pointer.
 */
#ifndef AL_CORE_H
#define AL_CORE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#define AL_OK 0
#define AL_ERR (-1)
#define AL_AGAIN (-2)

#define AL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define AL_MIN(a, b) ((a) < (b) ? (a) : (b))
#define AL_MAX(a, b) ((a) > (b) ? (a) : (b))
#define AL_UNUSED(x) ((void)(x))
#define AL_MUST_USE __attribute__((warn_unused_result))
#define AL_PRINTF(f, a) __attribute__((format(printf, f, a)))

#ifndef AL_VERSION
#define AL_VERSION "0.0.0-dev"
#endif

/* A borrowed byte range. Never owns; copy to keep. */
typedef struct al_str {
    const char *p;
    size_t len;
} al_str_t;

#define AL_STR(lit) ((al_str_t){(lit), sizeof(lit) - 1})
static inline al_str_t al_str_c(const char *s) { return (al_str_t){s, s ? strlen(s) : 0}; }
static inline bool al_str_eq(al_str_t a, al_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}
static inline bool al_str_eq_c(al_str_t a, const char *c) { return al_str_eq(a, al_str_c(c)); }

/* ---- allocation ------------------------------------------------------- */

/* Checked allocators for sizes a peer can influence: return NULL on failure
 * (including multiplication overflow in al_calloc); the caller must check. */
AL_MUST_USE void *al_malloc(size_t n);
AL_MUST_USE void *al_calloc(size_t count, size_t size);
AL_MUST_USE void *al_realloc(void *p, size_t n);
AL_MUST_USE char *al_strndup(const char *s, size_t n);

/* Startup allocators: abort the process with a message on failure. Use only
 * for configuration-sized data, never for anything a peer controls. */
void *al_xmalloc(size_t n);
void *al_xcalloc(size_t count, size_t size);
char *al_xstrdup(const char *s);
char *al_xstrndup(const char *s, size_t n);

/* Frees *pp and sets it to NULL. Accepts a pointer to NULL. */
#define al_free(pp) al__free((void **)(pp))
void al__free(void **pp);

/* Overwrites n bytes in a way the compiler may not elide (secrets). */
void al_wipe(void *p, size_t n);

/* Constant-time comparison of two equal-length buffers; true if equal. */
bool al_ct_eq(const void *a, const void *b, size_t n);

/* ---- growable buffer -------------------------------------------------- */

/* A growable byte buffer. Owns its data; release with al_buf_free. The data
 * is always NUL-terminated (the NUL is not counted in len). */
typedef struct al_buf {
    char *p;
    size_t len;
    size_t cap;
    bool oom; /* set when a growth failed; further appends are no-ops */
} al_buf_t;

void al_buf_init(al_buf_t *b);
void al_buf_free(al_buf_t *b);
void al_buf_reset(al_buf_t *b);
int al_buf_append(al_buf_t *b, const void *p, size_t n);
/* Room for extra more bytes (and the NUL) without another allocation:
 * write at b->p + b->len, then advance len. AL_ERR (and oom) if it fails. */
int al_buf_reserve(al_buf_t *b, size_t extra);
int al_buf_puts(al_buf_t *b, const char *s);
int al_buf_printf(al_buf_t *b, const char *fmt, ...) AL_PRINTF(2, 3);
/* Appends s as a JSON string literal, quotes included. */
int al_buf_json_str(al_buf_t *b, const char *s, size_t n);

/* ---- logging ------------------------------------------------------------ */

typedef enum al_log_level {
    AL_LOG_DEBUG = 0,
    AL_LOG_INFO,
    AL_LOG_WARN,
    AL_LOG_ERROR,
} al_log_level_t;

/* One JSON object per line on stderr: {"ts":..,"level":..,"msg":..,<fields>}.
 * Fields are given as alternating key/value C strings ending with NULL:
 *   al_log(AL_LOG_INFO, "listening", "addr", "127.0.0.1:7480", NULL);
 * A value that starts with the byte 0x01 is emitted raw (a number or a
 * JSON literal), the byte itself skipped: use AL_LOG_NUM for that. Never
 * pass a token, password or other secret as a field. Thread-safe. */
void al_log(al_log_level_t lvl, const char *msg, ...) __attribute__((sentinel));
void al_log_set_level(al_log_level_t lvl);
al_log_level_t al_log_get_level(void);
/* Formats a number as a raw log field value into buf (>= 32 bytes). */
const char *al_log_num(char *buf, int64_t v);

/* ---- time --------------------------------------------------------------- */

/* Wall clock in seconds since the epoch, as a double (sub-second). */
double al_now(void);
/* Monotonic clock in nanoseconds. */
uint64_t al_mono_ns(void);
/* Formats t (epoch seconds) as RFC 3339 UTC with milliseconds into buf
 * (>= 32 bytes). Returns buf. */
const char *al_time_rfc3339(double t, char *buf, size_t cap);

/* Parses a duration such as "90s", "15m", "24h", "7d", "250ms", or a bare
 * number of seconds, into seconds. Returns AL_OK or AL_ERR. */
int al_parse_duration(const char *s, double *out);

/* ---- hashing -------------------------------------------------------------- */

/* SHA-256 of p..p+n into out[32]. */
void al_sha256(const void *p, size_t n, uint8_t out[32]);
/* Lowercase hex of n bytes into out (2n+1 bytes, NUL-terminated). */
void al_hex(const uint8_t *p, size_t n, char *out);

/* ---- files ------------------------------------------------------------------ */

/* Reads a whole file (at most max bytes) into a NUL-terminated heap buffer.
 * Returns AL_OK, or AL_ERR with errno set (EFBIG when over max). */
int al_read_file(const char *path, size_t max, char **out, size_t *out_len);

/* Writes data to path atomically (temp file + rename) with the given mode. */
int al_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);

/* mkdir -p with mode for every created component. */
int al_mkdir_p(const char *path, mode_t mode);

#endif
