/*
 * b64url.c - strict base64url without padding (RFC 4648 §5), the only
 * encoding RFC 7515 §2 allows in a JWS ("Base64url Encoding ... with all
 * trailing '=' characters omitted ... and without the inclusion of any line
 * breaks, whitespace, or other additional characters").
 *
 * Decoding is canonical: every input has exactly one accepted spelling, so
 * two different strings never decode to the same bytes (a token cannot be
 * re-spelt to dodge a cache keyed on its text).
 */
#include "identity/jws.h"

/* 0..63 for an alphabet character, 0xff for anything else. */
static const uint8_t dec_table[256] = {
    ['A'] = 0,  ['B'] = 1,  ['C'] = 2,  ['D'] = 3,  ['E'] = 4,  ['F'] = 5,
    ['G'] = 6,  ['H'] = 7,  ['I'] = 8,  ['J'] = 9,  ['K'] = 10, ['L'] = 11,
    ['M'] = 12, ['N'] = 13, ['O'] = 14, ['P'] = 15, ['Q'] = 16, ['R'] = 17,
    ['S'] = 18, ['T'] = 19, ['U'] = 20, ['V'] = 21, ['W'] = 22, ['X'] = 23,
    ['Y'] = 24, ['Z'] = 25, ['a'] = 26, ['b'] = 27, ['c'] = 28, ['d'] = 29,
    ['e'] = 30, ['f'] = 31, ['g'] = 32, ['h'] = 33, ['i'] = 34, ['j'] = 35,
    ['k'] = 36, ['l'] = 37, ['m'] = 38, ['n'] = 39, ['o'] = 40, ['p'] = 41,
    ['q'] = 42, ['r'] = 43, ['s'] = 44, ['t'] = 45, ['u'] = 46, ['v'] = 47,
    ['w'] = 48, ['x'] = 49, ['y'] = 50, ['z'] = 51, ['0'] = 52, ['1'] = 53,
    ['2'] = 54, ['3'] = 55, ['4'] = 56, ['5'] = 57, ['6'] = 58, ['7'] = 59,
    ['8'] = 60, ['9'] = 61, ['-'] = 62, ['_'] = 63,
};

static const char enc_table[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* The designated initializer leaves every other entry 0, which is also the
 * value of 'A'; this tells the two apart without a 256-entry literal. */
static inline int dec_char(unsigned char c)
{
    if (dec_table[c] == 0 && c != 'A')
        return -1;
    return dec_table[c];
}

ssize_t al_b64url_decode(const char *src, size_t len, uint8_t *dst, size_t cap)
{
    size_t rem = len % 4;
    /* One leftover character carries only 6 bits: never a whole byte. */
    if (rem == 1)
        return -1;
    size_t out_len = len / 4 * 3 + (rem ? rem - 1 : 0);
    if (out_len > cap || out_len > (size_t)SSIZE_MAX)
        return -1;

    size_t o = 0, i = 0;
    for (; i + 4 <= len; i += 4) {
        int a = dec_char((unsigned char)src[i]), b = dec_char((unsigned char)src[i + 1]);
        int c = dec_char((unsigned char)src[i + 2]), d = dec_char((unsigned char)src[i + 3]);
        if ((a | b | c | d) < 0)
            return -1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        dst[o++] = (uint8_t)(v >> 16);
        dst[o++] = (uint8_t)(v >> 8);
        dst[o++] = (uint8_t)v;
    }
    if (rem >= 2) {
        int a = dec_char((unsigned char)src[i]), b = dec_char((unsigned char)src[i + 1]);
        int c = rem == 3 ? dec_char((unsigned char)src[i + 2]) : 0;
        if ((a | b | c) < 0)
            return -1;
        /* RFC 4648 §3.5: the pad bits must be zero in canonical form. */
        if (rem == 2 && (b & 0x0f) != 0)
            return -1;
        if (rem == 3 && (c & 0x03) != 0)
            return -1;
        dst[o++] = (uint8_t)(a << 2 | b >> 4);
        if (rem == 3)
            dst[o++] = (uint8_t)((b & 0x0f) << 4 | c >> 2);
    }
    return (ssize_t)o;
}

int al_b64url_encode(al_buf_t *b, const uint8_t *src, size_t n)
{
    char chunk[256];
    size_t k = 0;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];
        chunk[k++] = enc_table[v >> 18];
        chunk[k++] = enc_table[(v >> 12) & 63];
        chunk[k++] = enc_table[(v >> 6) & 63];
        chunk[k++] = enc_table[v & 63];
        if (k > sizeof chunk - 4) {
            if (al_buf_append(b, chunk, k) != AL_OK)
                return AL_ERR;
            k = 0;
        }
    }
    size_t rem = n - i;
    if (rem) {
        /* Unpadded tail (RFC 7515 §2): 2 chars for 1 byte, 3 for 2. */
        uint32_t v = (uint32_t)src[i] << 16 | (rem == 2 ? (uint32_t)src[i + 1] << 8 : 0);
        chunk[k++] = enc_table[v >> 18];
        chunk[k++] = enc_table[(v >> 12) & 63];
        if (rem == 2)
            chunk[k++] = enc_table[(v >> 6) & 63];
    }
    return al_buf_append(b, chunk, k);
}
