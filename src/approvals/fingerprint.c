/*
 * fingerprint.c - what makes two actions "the same action" for a grant.
 *
 * SHA-256 (FIPS 180-4) over a version tag and three length-prefixed
 * fields: target, protocol, the normalized action. Normalization is
 * deliberately minimal: only what cannot change meaning is dropped
 * (surrounding ASCII whitespace; for SQL, trailing ';'). Collapsing inner
 * whitespace or case would merge 'a  b' and 'a b' inside a string literal,
 * and an approval for one would then pass the other.
 */
#include "approvals/approvals_int.h"

static bool ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static void put_len(uint8_t *p, uint64_t n)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(n >> (56 - 8 * i));
}

void al_approvals_fingerprint(const char *target, const char *protocol, al_str_t action,
                              char out[AL_APPROVAL_FP_SIZE])
{
    const char *p = action.p ? action.p : "";
    size_t n = action.p ? action.len : 0;
    bool sql = protocol && !strcmp(protocol, "postgres");
    for (;;) {
        while (n && ws(*p))
            p++, n--;
        while (n && ws(p[n - 1]))
            n--;
        if (!(sql && n && p[n - 1] == ';'))
            break;
        n--;
    }
    /* "airlock-approval-v1" \0, then each field as 8-byte big-endian length
     * and bytes: unambiguous, and a future normalization gets a new tag. */
    static const char tag[] = "airlock-approval-v1";
    const char *f[3] = {target ? target : "", protocol ? protocol : "", p};
    size_t fl[3] = {strlen(f[0]), strlen(f[1]), n};
    al_buf_t b;
    al_buf_init(&b);
    al_buf_append(&b, tag, sizeof tag);
    for (int i = 0; i < 3; i++) {
        uint8_t len[8];
        put_len(len, fl[i]);
        al_buf_append(&b, len, 8);
        al_buf_append(&b, f[i], fl[i]);
    }
    uint8_t h[32];
    if (b.oom) {
        /* Cannot hash what we could not buffer: a fingerprint no grant has. */
        memset(out, 'x', AL_APPROVAL_FP_SIZE - 1);
        out[AL_APPROVAL_FP_SIZE - 1] = '\0';
    } else {
        al_sha256(b.p, b.len, h);
        al_hex(h, 32, out);
    }
    al_buf_free(&b);
}
