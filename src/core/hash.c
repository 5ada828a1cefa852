/* hash.c - SHA-256 (OpenSSL, SHA-NI where the CPU has it) and hex. */
#include <openssl/sha.h>

#include "core/core.h"

void al_sha256(const void *p, size_t n, uint8_t out[32]) { SHA256(p, n, out); }

void al_hex(const uint8_t *p, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 15];
    }
    out[2 * n] = '\0';
}
