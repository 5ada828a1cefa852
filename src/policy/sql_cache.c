/*
 * sql_cache.c - bounded LRU cache of classification results, keyed by the
 * exact statement text plus the options that change the result.
 *
 * One cache per worker thread (not thread-safe). The bucket index comes from
 * SipHash-2-4 under a random per-cache key, so clients cannot aim many
 * statements at one chain; a hit also compares the stored text byte for
 * byte, so two different statements never share a result.
 */
#include <openssl/rand.h>

#include "policy/sql_classify.h"

typedef struct centry {
    uint64_t hash;
    const char *text; /* inside blk */
    size_t len;
    al_sql_class_t fn_default;
    al__sql_block_t blk; /* blk.mem is the al_sql_result_t */
    int32_t next;        /* bucket chain, or free list */
    int32_t prev_lru, next_lru;
} centry_t;

struct al__sql_cache {
    centry_t *e;
    size_t cap, count;
    int32_t *buckets;
    size_t mask;
    int32_t mru, lru, free_head;
    size_t bytes, max_bytes;
    uint64_t k0, k1;
    uint64_t hits, misses, evictions;
};

/* ---- SipHash-2-4 (Aumasson & Bernstein, "SipHash: a fast short-input
 * PRF", 2012) ---------------------------------------------------------- */

static inline uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

static inline uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

#define SIPROUND                                                                               \
    do {                                                                                       \
        v0 += v1;                                                                              \
        v1 = rotl(v1, 13);                                                                     \
        v1 ^= v0;                                                                              \
        v0 = rotl(v0, 32);                                                                     \
        v2 += v3;                                                                              \
        v3 = rotl(v3, 16);                                                                     \
        v3 ^= v2;                                                                              \
        v0 += v3;                                                                              \
        v3 = rotl(v3, 21);                                                                     \
        v3 ^= v0;                                                                              \
        v2 += v1;                                                                              \
        v1 = rotl(v1, 17);                                                                     \
        v1 ^= v2;                                                                              \
        v2 = rotl(v2, 32);                                                                     \
    } while (0)

uint64_t al__sql_siphash(uint64_t k0, uint64_t k1, const void *data, size_t n)
{
    const uint8_t *p = data;
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL;
    uint64_t v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL;
    uint64_t v3 = k1 ^ 0x7465646279746573ULL;
    size_t whole = n & ~(size_t)7;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = load_le64(p + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)n << 56;
    for (size_t i = 0; i < (n & 7); i++)
        b |= (uint64_t)p[whole + i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- LRU list ------------------------------------------------------------- */

static void lru_unlink(al__sql_cache_t *c, int32_t i)
{
    centry_t *e = &c->e[i];
    if (e->prev_lru >= 0)
        c->e[e->prev_lru].next_lru = e->next_lru;
    else
        c->mru = e->next_lru;
    if (e->next_lru >= 0)
        c->e[e->next_lru].prev_lru = e->prev_lru;
    else
        c->lru = e->prev_lru;
    e->prev_lru = e->next_lru = -1;
}

static void lru_push_front(al__sql_cache_t *c, int32_t i)
{
    centry_t *e = &c->e[i];
    e->prev_lru = -1;
    e->next_lru = c->mru;
    if (c->mru >= 0)
        c->e[c->mru].prev_lru = i;
    c->mru = i;
    if (c->lru < 0)
        c->lru = i;
}

/* ---- cache ------------------------------------------------------------------ */

al__sql_cache_t *al__sql_cache_new(size_t entries, size_t max_bytes)
{
    if (entries == 0 || entries > (1u << 24))
        return NULL;
    al__sql_cache_t *c = al_calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    size_t nb = 1;
    while (nb < entries * 2)
        nb <<= 1;
    c->e = al_calloc(entries, sizeof(*c->e));
    c->buckets = al_malloc(nb * sizeof(*c->buckets));
    uint8_t key[16];
    if (!c->e || !c->buckets || RAND_bytes(key, sizeof(key)) != 1) {
        al__sql_cache_free(&c);
        return NULL;
    }
    c->k0 = load_le64(key);
    c->k1 = load_le64(key + 8);
    al_wipe(key, sizeof(key));
    for (size_t i = 0; i < nb; i++)
        c->buckets[i] = -1;
    c->mask = nb - 1;
    c->cap = entries;
    c->max_bytes = max_bytes;
    c->mru = c->lru = -1;
    for (size_t i = 0; i < entries; i++) {
        c->e[i].next = i + 1 < entries ? (int32_t)(i + 1) : -1;
        c->e[i].prev_lru = c->e[i].next_lru = -1;
    }
    c->free_head = 0;
    return c;
}

void al__sql_cache_free(al__sql_cache_t **cp)
{
    al__sql_cache_t *c = *cp;
    if (!c)
        return;
    if (c->e)
        for (int32_t i = c->mru; i >= 0; i = c->e[i].next_lru)
            al_free(&c->e[i].blk.mem);
    al_free(&c->e);
    al_free(&c->buckets);
    al_free(cp);
}

static void evict(al__sql_cache_t *c, int32_t i)
{
    centry_t *e = &c->e[i];
    int32_t *link = &c->buckets[e->hash & c->mask];
    while (*link != i)
        link = &c->e[*link].next;
    *link = e->next;
    lru_unlink(c, i);
    c->bytes -= e->blk.size;
    c->count--;
    c->evictions++;
    al_free(&e->blk.mem);
    e->blk.size = 0;
    e->next = c->free_head;
    c->free_head = i;
}

al_sql_result_t *al__sql_cache_get(al__sql_cache_t *c, const char *text, size_t len,
                                   al_sql_class_t fn_default, uint64_t *hash)
{
    uint64_t h = al__sql_siphash(c->k0, c->k1, text, len);
    *hash = h;
    for (int32_t i = c->buckets[h & c->mask]; i >= 0; i = c->e[i].next) {
        centry_t *e = &c->e[i];
        if (e->hash == h && e->len == len && e->fn_default == fn_default &&
            memcmp(e->text, text, len) == 0) {
            lru_unlink(c, i);
            lru_push_front(c, i);
            c->hits++;
            return e->blk.mem;
        }
    }
    c->misses++;
    return NULL;
}

al_sql_result_t *al__sql_cache_put(al__sql_cache_t *c, al__sql_block_t blk, uint64_t hash,
                                   const char *text, size_t len, al_sql_class_t fn_default)
{
    if (blk.size > c->max_bytes) {
        al_free(&blk.mem);
        return NULL;
    }
    while (c->lru >= 0 && (c->count == c->cap || c->bytes + blk.size > c->max_bytes))
        evict(c, c->lru);
    int32_t i = c->free_head;
    centry_t *e = &c->e[i];
    c->free_head = e->next;
    e->hash = hash;
    e->text = text;
    e->len = len;
    e->fn_default = fn_default;
    e->blk = blk;
    int32_t *head = &c->buckets[hash & c->mask];
    e->next = *head;
    *head = i;
    lru_push_front(c, i);
    c->count++;
    c->bytes += blk.size;
    return blk.mem;
}

void al__sql_cache_stats(const al__sql_cache_t *c, al_sql_cache_stats_t *out)
{
    out->hits = c->hits;
    out->misses = c->misses;
    out->evictions = c->evictions;
    out->entries = c->count;
    out->bytes = c->bytes;
}
