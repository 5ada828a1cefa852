/* hash.c - SHA-256 and hex.
 *
 * SHA256() in OpenSSL 3 fetches the digest by name on every call, under
 * provider read locks; on the verified-token cache's hit path that lookup
 * cost more than the hash. The low-level SHA256_* functions (deprecated in
 * 3.0 but present, and using SHA-NI where the CPU has it) take no lock. */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/sha.h>

#include "core/core.h"

void al_sha256(const void *p, size_t n, uint8_t out[32])
{
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, p, n);
    SHA256_Final(out, &c);
}

void al_hex(const uint8_t *p, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 15];
    }
    out[2 * n] = '\0';
}
