/*
 * event.c - what makes an audit event tamper-evident and identifiable:
 * the canonical serialization, the chain hash and UUIDv7 ids.
 */
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "audit/audit.h"

void al_audit_event_init(al_audit_event_t *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->rows = -1;
    ev->duration_us = -1;
    ev->bytes_up = -1;
    ev->bytes_down = -1;
}

/* ---- canonical serialization (docs/audit.md "Chain format") ---------------
 * A domain tag, then every field in a fixed order. Strings are 0x00 when
 * absent, else 0x01 + u32 big-endian length + bytes; integers are 8 bytes
 * big-endian two's complement; flags one byte; lists a u32 count followed
 * by their strings. Length prefixes make the encoding injective, so no two
 * different events serialize to the same bytes. */

#define CANON_TAG "airlock-audit-v1"

static void put_u32(al_buf_t *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    al_buf_append(b, x, 4);
}

static void put_i64(al_buf_t *b, int64_t sv)
{
    uint64_t v = (uint64_t)sv;
    uint8_t x[8];
    for (int i = 0; i < 8; i++)
        x[i] = (uint8_t)(v >> (56 - 8 * i));
    al_buf_append(b, x, 8);
}

static void put_flag(al_buf_t *b, bool f)
{
    uint8_t x = f ? 1 : 0;
    al_buf_append(b, &x, 1);
}

static void put_bytes(al_buf_t *b, const char *p, size_t n, bool present)
{
    if (!present) {
        al_buf_append(b, "\0", 1);
        return;
    }
    if (n > UINT32_MAX) {
        b->oom = true; /* never stored: fields are capped far below */
        return;
    }
    al_buf_append(b, "\x01", 1);
    put_u32(b, (uint32_t)n);
    al_buf_append(b, p, n);
}

static void put_str(al_buf_t *b, const char *s)
{
    put_bytes(b, s, s ? strlen(s) : 0, s != NULL);
}

static void put_list(al_buf_t *b, const char *const *v, size_t n)
{
    put_u32(b, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        put_str(b, v[i]);
}

int al_audit_canonical(const al_audit_event_t *ev, al_buf_t *b)
{
    al_buf_append(b, CANON_TAG, sizeof CANON_TAG); /* with its NUL */
    put_str(b, ev->id);
    put_i64(b, ev->time_us);
    put_str(b, ev->kind);
    put_str(b, ev->session_id);
    put_str(b, ev->agent);
    put_str(b, ev->subject);
    put_str(b, ev->issuer);
    put_list(b, ev->groups, ev->n_groups);
    put_flag(b, ev->groups_truncated);
    put_str(b, ev->target);
    put_str(b, ev->protocol);
    put_bytes(b, ev->action.p, ev->action.len, ev->action.p != NULL);
    put_flag(b, ev->action_truncated);
    put_str(b, ev->cls);
    put_list(b, ev->tables, ev->n_tables);
    put_flag(b, ev->tables_truncated);
    put_str(b, ev->decision);
    put_str(b, ev->rule);
    put_str(b, ev->reason);
    put_str(b, ev->approval_id);
    put_str(b, ev->ref_id);
    put_i64(b, ev->rows);
    put_str(b, ev->status);
    put_i64(b, ev->duration_us);
    put_str(b, ev->error);
    /* Added in store schema 2 (byte counts) and 3 (recording), each
     * appended only when set, so events written before (and events without
     * them) hash exactly as they did. A recording brings the byte counts
     * along (-1 when unknown): the tail after `error` is then empty, 16
     * bytes, or 16 bytes and the two strings, which keeps the encoding
     * injective. */
    bool rec = ev->recording || ev->recording_sha256;
    if (ev->bytes_up >= 0 || ev->bytes_down >= 0 || rec) {
        put_i64(b, ev->bytes_up >= 0 ? ev->bytes_up : -1);
        put_i64(b, ev->bytes_down >= 0 ? ev->bytes_down : -1);
    }
    if (rec) {
        put_str(b, ev->recording);
        put_str(b, ev->recording_sha256);
    }
    return b->oom ? AL_ERR : AL_OK;
}

int al_audit_chain_hash(const uint8_t prev[32], const al_audit_event_t *ev, al_buf_t *scratch,
                        uint8_t out[32])
{
    al_buf_reset(scratch);
    al_buf_append(scratch, prev, 32);
    if (al_audit_canonical(ev, scratch) != AL_OK)
        return AL_ERR;
    al_sha256(scratch->p, scratch->len, out);
    return AL_OK;
}

/* ---- UUIDv7 ----------------------------------------------------------------
 * RFC 9562 §5.7: unix_ts_ms (48) | ver=0b0111 (4) | rand_a (12) |
 * var=0b10 (2) | rand_b (62). rand_a carries the sub-millisecond fraction
 * scaled to 12 bits (§6.2, method 3), so ids from one clock sort by time at
 * ~244 ns resolution; rand_b comes from the CSPRNG (§6.9: unguessable). */
/* RAND_bytes costs ~800 ns a call (OpenSSL 3 DRBG dispatch), more than
 * the rest of a submission; so each thread draws 512 bytes at a time and
 * hands out 8 per id. A fork bumps the generation so a child never reuses
 * its parent's buffered bytes. */
static atomic_uint g_rand_gen;
static pthread_once_t g_rand_once = PTHREAD_ONCE_INIT;
static void rand_after_fork(void) { atomic_fetch_add(&g_rand_gen, 1); }
static void rand_init(void) { pthread_atfork(NULL, NULL, rand_after_fork); }

static _Thread_local struct {
    uint8_t b[512];
    size_t pos;
    unsigned gen;
} t_rand = {.pos = sizeof t_rand.b};

static int rand8(uint8_t out[8])
{
    pthread_once(&g_rand_once, rand_init);
    unsigned gen = atomic_load_explicit(&g_rand_gen, memory_order_relaxed);
    if (t_rand.pos + 8 > sizeof t_rand.b || t_rand.gen != gen) {
        if (RAND_bytes(t_rand.b, sizeof t_rand.b) != 1)
            return AL_ERR;
        t_rand.pos = 0;
        t_rand.gen = gen;
    }
    memcpy(out, t_rand.b + t_rand.pos, 8);
    t_rand.pos += 8;
    return AL_OK;
}

int al_audit_uuid7(int64_t t_us, char out[AL_AUDIT_ID_SIZE])
{
    uint8_t u[16];
    if (rand8(u + 8) != AL_OK)
        return AL_ERR;
    if (t_us < 0)
        t_us = 0;
    uint64_t ms = (uint64_t)t_us / 1000;
    uint32_t frac = (uint32_t)(((uint64_t)t_us % 1000) * 4096 / 1000); /* < 4096 */
    for (int i = 0; i < 6; i++)
        u[i] = (uint8_t)(ms >> (40 - 8 * i));
    u[6] = (uint8_t)(0x70 | (frac >> 8));
    u[7] = (uint8_t)(frac & 0xff);
    u[8] = (uint8_t)(0x80 | (u[8] & 0x3f));
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[u[i] >> 4];
        out[o++] = hex[u[i] & 15];
    }
    out[o] = '\0';
    return AL_OK;
}
