/*
 * token_cache.c - the verified-token cache: a repeated token costs one
 * SHA-256 (SHA-NI) and a lookup instead of a signature verification.
 *
 * One cache per thread, so no locks. Keys are the full 32-byte SHA-256 of
 * the token, compared in full: the token itself is never stored. Sets of
 * four slots; a miss replaces the slot that expires first. Entries carry
 * the verifier generation, so a config reload invalidates them all.
 */
#include <stdlib.h>

#include "identity/identity.h"

#define WAYS 4

typedef struct slot {
    uint8_t hash[32];
    uint64_t gen;
    double until;
    al_principal_t *p;
} slot_t;

struct al_token_cache {
    slot_t *slots;
    size_t mask; /* number of sets - 1 */
};

al_token_cache_t *al_token_cache_new(size_t slots)
{
    size_t sets = 1;
    while (sets * WAYS < slots)
        sets <<= 1;
    al_token_cache_t *c = al_xcalloc(1, sizeof *c);
    c->slots = al_xcalloc(sets * WAYS, sizeof *c->slots);
    c->mask = sets - 1;
    return c;
}

void al_token_cache_free(al_token_cache_t **pc)
{
    al_token_cache_t *c = *pc;
    if (!c)
        return;
    for (size_t i = 0; i < (c->mask + 1) * WAYS; i++)
        al_principal_unref(&c->slots[i].p);
    al_free(&c->slots);
    al_free(pc);
}

static slot_t *set_of(al_token_cache_t *c, const uint8_t hash[32])
{
    uint64_t h;
    memcpy(&h, hash, sizeof h);
    return &c->slots[(h & c->mask) * WAYS];
}

al_principal_t *al_token_cache_get(al_token_cache_t *c, const uint8_t hash[32], uint64_t gen, double now)
{
    slot_t *s = set_of(c, hash);
    for (int i = 0; i < WAYS; i++) {
        if (!s[i].p || memcmp(s[i].hash, hash, 32) != 0)
            continue;
        if (s[i].gen != gen || now >= s[i].until) {
            al_principal_unref(&s[i].p);
            return NULL;
        }
        return al_principal_ref(s[i].p);
    }
    return NULL;
}

void al_token_cache_put(al_token_cache_t *c, const uint8_t hash[32], uint64_t gen, double until,
                        al_principal_t *p)
{
    slot_t *s = set_of(c, hash), *victim = &s[0];
    for (int i = 0; i < WAYS; i++) {
        if (!s[i].p || !memcmp(s[i].hash, hash, 32)) {
            victim = &s[i];
            break;
        }
        if (s[i].until < victim->until)
            victim = &s[i];
    }
    al_principal_unref(&victim->p);
    memcpy(victim->hash, hash, 32);
    victim->gen = gen;
    victim->until = until;
    victim->p = al_principal_ref(p);
}
