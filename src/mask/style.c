/* style.c - rewriting a found value: '#' fill, last four, keyed hash, drop.
 *
 * The hash style is HMAC-SHA256 (RFC 2104, FIPS 198-1) under the
 * deployment key, so one value always masks to the same text (joins and
 * GROUP BY on masked columns still work) while nobody without the key can
 * test a guess. The keyed context is built once per engine; each value
 * duplicates it, so the key schedule is not redone per value. */
#include "mask/mask_int.h"

static const char hashes[64] = "################################################################";

static al_mask_rc_t fill(al_buf_t *out, size_t n)
{
    while (n > 0) {
        size_t k = n < sizeof hashes ? n : sizeof hashes;
        if (al_buf_append(out, hashes, k) != AL_OK)
            return AL_MASK_E_NOMEM;
        n -= k;
    }
    return AL_MASK_MASKED;
}

static bool is_alnum(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static al_mask_rc_t last4(const uint8_t *v, size_t n, al_buf_t *out)
{
    size_t alnums = 0;
    for (size_t i = 0; i < n; i++)
        alnums += is_alnum(v[i]);
    size_t hide = alnums > 4 ? alnums - 4 : alnums;
    size_t mark = out->len;
    if (al_buf_append(out, v, n) != AL_OK)
        return AL_MASK_E_NOMEM;
    uint8_t *w = (uint8_t *)out->p + mark;
    for (size_t i = 0; i < n && hide > 0; i++) {
        if (is_alnum(w[i])) {
            w[i] = '#';
            hide--;
        }
    }
    return AL_MASK_MASKED;
}

static al_mask_rc_t hmac_hex(const al_mask_engine_t *e, const uint8_t *v, size_t n, al_buf_t *out)
{
    if (!e->mac)
        return AL_MASK_E_HASH_KEY;
    EVP_MAC_CTX *c = EVP_MAC_CTX_dup(e->mac);
    if (!c)
        return AL_MASK_E_NOMEM;
    uint8_t md[32];
    size_t mdlen = 0;
    int ok = EVP_MAC_update(c, v, n) && EVP_MAC_final(c, md, &mdlen, sizeof md) && mdlen == 32;
    EVP_MAC_CTX_free(c);
    if (!ok)
        return AL_MASK_E_NOMEM;
    char hex[65];
    al_hex(md, 32, hex);
    al_wipe(md, sizeof md);
    if (al_buf_append(out, e->prefix, e->prefix_len) != AL_OK ||
        al_buf_append(out, hex, e->hex_len) != AL_OK)
        return AL_MASK_E_NOMEM;
    return AL_MASK_MASKED;
}

al_mask_rc_t al__mask_apply_style(const al_mask_engine_t *e, al_mask_style_t style,
                                  const uint8_t *v, size_t n, al_buf_t *out)
{
    switch (style) {
    case AL_MASK_STYLE_FULL:
        return fill(out, n);
    case AL_MASK_STYLE_LAST4:
        return last4(v, n, out);
    case AL_MASK_STYLE_HASH:
        return hmac_hex(e, v, n, out);
    case AL_MASK_STYLE_DROP:
        return AL_MASK_MASKED;
    default:
        return AL_MASK_E_BAD_STYLE;
    }
}
