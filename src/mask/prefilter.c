/* prefilter.c - the built-in prefilter patterns that start with a character
 * class (digits, hex, letters), matched bit-parallel instead of by Hyperscan.
 *
 * Hyperscan finds literal-led patterns (an '@', "eyJ", "AKIA") at several
 * GB/s, but a pattern led by \d or [0-9A-Fa-f] has no literal to search for
 * and costs its automaton about a nanosecond per byte of digit-dense text
 * (logs, JSON, CSV); eight such patterns held the whole scan near 300 MB/s.
 * They are short, fixed shapes of classes, so they are cheap to match with
 * shift-and over bit masks: for a window of 64 bytes, one 64-bit mask per
 * character class (SIMD compares: AVX-512BW, AVX2 or SSE2, whichever the
 * CPU has), then each shape is an AND of shifted
 * masks (bit i set = the shape ends at byte i of the window). Bounded
 * repeats ({1,3}, {1,4}) are ORs of the fixed lengths.
 *
 * Windows overlap: each covers the 16 bytes before its 48 new ones, and
 * every shape but one is at most 16 bytes long, so a window sees each match
 * ending in its new bytes whole. The exception, eight IPv6 groups (up to 39
 * bytes), runs on a 128-bit window, only where enough "hex:" pairs make a
 * match possible. A window with no digit and no ':' ends no shape and costs
 * one compare pass.
 *
 * Contract: for each enabled shape, on_end gets exactly the end offsets at
 * which Hyperscan (block mode, no flags) reports a match of the shape's
 * regex in al__mask_patterns, in increasing order. The validators then see
 * the same calls as before, so masking results are unchanged;
 * test_mask_prefilter.c checks the equivalence against Hyperscan.
 * No allocation, no state outside the call. */
#include "mask/mask_int.h"

#if (defined(__x86_64__) || defined(__i386__)) && !defined(AL_MASK_NO_SIMD)
#include <immintrin.h>
#define HAVE_X86 1
#endif

/* ---- character classes ---------------------------------------------------------- */

void al__mask_classify_scalar(const uint8_t *p, al__mask_cls_t *c)
{
    memset(c, 0, sizeof *c);
    for (unsigned i = 0; i < 64; i++) {
        uint8_t x = p[i];
        uint64_t b = (uint64_t)1 << i;
        bool dig = x >= '0' && x <= '9';
        c->d |= dig ? b : 0;
        c->hex |= (dig || ((x | 0x20) >= 'a' && (x | 0x20) <= 'f')) ? b : 0;
        c->up |= (x >= 'A' && x <= 'Z') ? b : 0;
        c->sp |= x == ' ' ? b : 0;
        c->dash |= x == '-' ? b : 0;
        c->dot |= x == '.' ? b : 0;
        c->rp |= x == ')' ? b : 0;
        c->col |= x == ':' ? b : 0;
        c->zero |= x == '0' ? b : 0;
    }
}

#ifdef HAVE_X86
/* SSE2 (every x86-64): 16 bytes per compare. Bytes of v in [lo, hi]
 * (unsigned) are the ones where max(v, lo) == min(v, hi). */
static inline __m128i in_range16(__m128i v, uint8_t lo, uint8_t hi)
{
    return _mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8((char)lo)),
                          _mm_min_epu8(v, _mm_set1_epi8((char)hi)));
}

static inline uint64_t mm16(__m128i m, unsigned k)
{
    return (uint64_t)(uint16_t)_mm_movemask_epi8(m) << (16 * k);
}

static inline __attribute__((always_inline)) void classify_sse2(const uint8_t *p,
                                                                al__mask_cls_t *c)
{
    memset(c, 0, sizeof *c);
    for (unsigned k = 0; k < 4; k++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * k));
        __m128i d = in_range16(v, '0', '9');
        __m128i hl = in_range16(_mm_or_si128(v, _mm_set1_epi8(0x20)), 'a', 'f');
        c->d |= mm16(d, k);
        c->hex |= mm16(_mm_or_si128(d, hl), k);
        c->up |= mm16(in_range16(v, 'A', 'Z'), k);
        c->sp |= mm16(_mm_cmpeq_epi8(v, _mm_set1_epi8(' ')), k);
        c->dash |= mm16(_mm_cmpeq_epi8(v, _mm_set1_epi8('-')), k);
        c->dot |= mm16(_mm_cmpeq_epi8(v, _mm_set1_epi8('.')), k);
        c->rp |= mm16(_mm_cmpeq_epi8(v, _mm_set1_epi8(')')), k);
        c->col |= mm16(_mm_cmpeq_epi8(v, _mm_set1_epi8(':')), k);
        c->zero |= mm16(_mm_cmpeq_epi8(v, _mm_set1_epi8('0')), k);
    }
}

static inline __attribute__((always_inline)) uint64_t dc_sse2(const uint8_t *p)
{
    uint64_t r = 0;
    for (unsigned k = 0; k < 4; k++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * k));
        r |= mm16(_mm_or_si128(in_range16(v, '0', '9'), _mm_cmpeq_epi8(v, _mm_set1_epi8(':'))), k);
    }
    return r;
}

/* AVX2: 32 bytes per compare. */
#define AVX2 __attribute__((target("avx2"), always_inline)) static inline

AVX2 __m256i in_range32(__m256i v, uint8_t lo, uint8_t hi)
{
    return _mm256_cmpeq_epi8(_mm256_max_epu8(v, _mm256_set1_epi8((char)lo)),
                             _mm256_min_epu8(v, _mm256_set1_epi8((char)hi)));
}

AVX2 uint64_t mm32(__m256i m, unsigned k)
{
    return (uint64_t)(uint32_t)_mm256_movemask_epi8(m) << (32 * k);
}

AVX2 void classify_avx2(const uint8_t *p, al__mask_cls_t *c)
{
    memset(c, 0, sizeof *c);
    for (unsigned k = 0; k < 2; k++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(p + 32 * k));
        __m256i d = in_range32(v, '0', '9');
        __m256i hl = in_range32(_mm256_or_si256(v, _mm256_set1_epi8(0x20)), 'a', 'f');
        c->d |= mm32(d, k);
        c->hex |= mm32(_mm256_or_si256(d, hl), k);
        c->up |= mm32(in_range32(v, 'A', 'Z'), k);
        c->sp |= mm32(_mm256_cmpeq_epi8(v, _mm256_set1_epi8(' ')), k);
        c->dash |= mm32(_mm256_cmpeq_epi8(v, _mm256_set1_epi8('-')), k);
        c->dot |= mm32(_mm256_cmpeq_epi8(v, _mm256_set1_epi8('.')), k);
        c->rp |= mm32(_mm256_cmpeq_epi8(v, _mm256_set1_epi8(')')), k);
        c->col |= mm32(_mm256_cmpeq_epi8(v, _mm256_set1_epi8(':')), k);
        c->zero |= mm32(_mm256_cmpeq_epi8(v, _mm256_set1_epi8('0')), k);
    }
}

AVX2 uint64_t dc_avx2(const uint8_t *p)
{
    uint64_t r = 0;
    for (unsigned k = 0; k < 2; k++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(p + 32 * k));
        r |= mm32(_mm256_or_si256(in_range32(v, '0', '9'),
                                  _mm256_cmpeq_epi8(v, _mm256_set1_epi8(':'))),
                  k);
    }
    return r;
}

/* AVX-512BW: one compare gives the 64-bit mask directly. */
__attribute__((target("avx512bw"), always_inline)) static inline uint64_t
rng512(__m512i v, uint8_t lo, uint8_t hi)
{
    return _mm512_cmple_epu8_mask(_mm512_sub_epi8(v, _mm512_set1_epi8((char)lo)),
                                  _mm512_set1_epi8((char)(hi - lo)));
}

__attribute__((target("avx512bw"), always_inline)) static inline uint64_t eq512(__m512i v, char x)
{
    return _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(x));
}

__attribute__((target("avx512bw"), always_inline)) static inline void
classify_avx512(const uint8_t *p, al__mask_cls_t *c)
{
    __m512i v = _mm512_loadu_si512((const void *)p);
    c->d = rng512(v, '0', '9');
    c->hex = c->d | rng512(_mm512_or_si512(v, _mm512_set1_epi8(0x20)), 'a', 'f');
    c->up = rng512(v, 'A', 'Z');
    c->sp = eq512(v, ' ');
    c->dash = eq512(v, '-');
    c->dot = eq512(v, '.');
    c->rp = eq512(v, ')');
    c->col = eq512(v, ':');
    c->zero = eq512(v, '0');
}

__attribute__((target("avx512bw"), always_inline)) static inline uint64_t
dc_avx512(const uint8_t *p)
{
    __m512i v = _mm512_loadu_si512((const void *)p);
    return rng512(v, '0', '9') | eq512(v, ':');
}
#endif

static uint64_t dc_scalar(const uint8_t *p)
{
    uint64_t r = 0;
    for (unsigned i = 0; i < 64; i++)
        r |= (uint64_t)((p[i] >= '0' && p[i] <= '9') || p[i] == ':') << i;
    return r;
}

typedef void (*classify_fn)(const uint8_t *p, al__mask_cls_t *c);
typedef uint64_t (*dc_fn)(const uint8_t *p);

/* The classifier for an instruction set, if this CPU has it. */
static bool pick(unsigned isa, classify_fn *cf, dc_fn *df)
{
    switch (isa) {
    case AL__MASK_ISA_SCALAR:
        *cf = al__mask_classify_scalar;
        *df = dc_scalar;
        return true;
#ifdef HAVE_X86
    case AL__MASK_ISA_SSE2:
        *cf = classify_sse2;
        *df = dc_sse2;
        return true;
    case AL__MASK_ISA_AVX2:
        if (!__builtin_cpu_supports("avx2"))
            return false;
        *cf = classify_avx2;
        *df = dc_avx2;
        return true;
    case AL__MASK_ISA_AVX512:
        if (!__builtin_cpu_supports("avx512bw"))
            return false;
        *cf = classify_avx512;
        *df = dc_avx512;
        return true;
#endif
    default:
        return false;
    }
}

bool al__mask_classify_isa(unsigned isa, const uint8_t *p, al__mask_cls_t *c)
{
    classify_fn cf;
    dc_fn df;
    if (!pick(isa, &cf, &df))
        return false;
    cf(p, c);
    return true;
}

unsigned al__mask_best_isa(void)
{
    classify_fn cf;
    dc_fn df;
    for (unsigned isa = AL__MASK_ISA__COUNT; isa-- > 0;)
        if (pick(isa, &cf, &df))
            return isa;
    return AL__MASK_ISA_SCALAR;
}

/* ---- shapes ---------------------------------------------------------------------- */

#define WANT(s) (want & (1u << (s)))
#define INLINE static inline __attribute__((always_inline))

/* Set bits of x (SWAR: the build does not assume the POPCNT instruction). */
INLINE unsigned pop64(uint64_t x)
{
    x = x - (x >> 1 & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + (x >> 2 & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (unsigned)((x * 0x0101010101010101ull) >> 56);
}
#define POP(x) pop64(x)

/* End masks (bit i: a match ends at byte i of the window) of the shapes
 * no longer than 16 bytes. Each shape is computed only when the window
 * holds what it needs (a run of 4 digits, three "digit." ...). */
INLINE void short_shapes(const al__mask_cls_t *c, uint32_t want, uint64_t end[],
                         uint64_t *iban_b)
{
    uint64_t D = c->d, SP = c->sp, SD = SP | c->dash, SDD = SD | c->dot;
    uint64_t R2 = D & D << 1, R3 = R2 & D << 2, R4 = R2 & R2 << 2;
    /* R<n> at bit i: bytes i-n+1..i are digits. */
    if (R4) {
        if (WANT(AL__MASK_SHAPE_CARD) && POP(D) >= 13) {
            /* \d{13} | \d{4}[ -]\d{4}[ -]\d{4}[ -]\d | \d{4}[ -]\d{6}[ -]\d{4} */
            uint64_t R13 = R4 & R4 << 4 & R4 << 8 & D << 12, R6 = R4 & R2 << 4;
            uint64_t tail = SD << 11 & R4 << 12;
            end[AL__MASK_SHAPE_CARD] = R13 | (D & SD << 1 & R4 << 2 & SD << 6 & R4 << 7 & tail) |
                                       (R4 & SD << 4 & R6 << 5 & tail);
        }
        if (WANT(AL__MASK_SHAPE_SSN)) /* \d{3}[ -]\d{2}[ -]\d{4} */
            end[AL__MASK_SHAPE_SSN] = R4 & SD << 4 & R2 << 5 & SD << 7 & R3 << 8;
        if (WANT(AL__MASK_SHAPE_NANP)) {
            /* \d{3}[ .-]\d{3}[ .-]\d{4} | \)[ ]?\d{3}[ .-]\d{4} */
            uint64_t RP = c->rp;
            end[AL__MASK_SHAPE_NANP] =
                R4 & SDD << 4 & R3 << 5 & ((SDD << 8 & R3 << 9) | RP << 8 | (SP << 8 & RP << 9));
        }
        if (WANT(AL__MASK_SHAPE_PHONE44)) /* \d{4}[ -]?\d{4} */
            end[AL__MASK_SHAPE_PHONE44] = R4 & (R4 << 4 | (SD << 4 & R4 << 5));
        if (WANT(AL__MASK_SHAPE_NATIONAL)) /* 0\d\d[ -]\d{7} */
            end[AL__MASK_SHAPE_NATIONAL] = R4 & R3 << 4 & SD << 7 & R2 << 8 & c->zero << 10;
    }
    uint64_t pair = R2 & SDD << 2; /* [ .-]\d\d ends here */
    if (WANT(AL__MASK_SHAPE_NATIONAL) && POP(pair) >= 4) /* 0\d(?:[ .-]\d\d){4} */
        end[AL__MASK_SHAPE_NATIONAL] |=
            pair & pair << 3 & pair << 6 & pair << 9 & D << 12 & c->zero << 13;
    uint64_t DOT = c->dot, dd = DOT & D << 1;
    if (WANT(AL__MASK_SHAPE_IPV4) && POP(dd) >= 3) {
        /* \d\.\d{1,3}\.\d{1,3}\.\d, left to right: s = matched so far ends here */
        uint64_t s = dd;
        s = D & (s << 1 | (s << 2 & D << 1) | (s << 3 & R2 << 1));
        s = s << 1 & DOT;
        s = D & (s << 1 | (s << 2 & D << 1) | (s << 3 & R2 << 1));
        s = s << 1 & DOT;
        end[AL__MASK_SHAPE_IPV4] = s << 1 & D;
    }
    if (WANT(AL__MASK_SHAPE_IBAN)) {
        /* CC\d{2} ?[A-Z0-9]{4}; the country code is checked per candidate */
        uint64_t U = c->up, cc_dd = R2 & (U & U << 1) << 2; /* "CCdd" ends here */
        if (cc_dd) {
            uint64_t UD = U | D, UD4 = UD & UD << 1 & UD << 2 & UD << 3;
            end[AL__MASK_SHAPE_IBAN] = UD4 & cc_dd << 4;
            *iban_b = UD4 & SP << 4 & cc_dd << 5; /* paper form: "CCdd XXXX" */
        }
    }
}

typedef unsigned __int128 u128;

/* [0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){7} over 128 bits (bit i = byte i of
 * the two windows lo, hi): e = "k groups end here". */
static uint64_t ipv6_full(const al__mask_cls_t *lo, const al__mask_cls_t *hi)
{
    u128 H = (u128)hi->hex << 64 | lo->hex, COL = (u128)hi->col << 64 | lo->col;
    u128 H1 = H << 1, H2 = H << 2, H3 = H << 3, e = H;
    for (int k = 0; k < 7; k++) {
        u128 f = COL & e << 1; /* a ':' right after k groups */
        e = H & (f << 1 | (H1 & (f << 2 | (H2 & (f << 3 | (H3 & f << 4))))));
    }
    return (uint64_t)(e >> 64);
}

/* The 64 bytes of p starting at `from` (may be negative or run past len):
 * bytes outside [0, len) read as NUL, which is in no class. */
INLINE const uint8_t *window(const uint8_t *p, size_t len, ptrdiff_t from, uint8_t *tmp)
{
    if (from >= 0 && (size_t)from + 64 <= len)
        return p + from;
    for (ptrdiff_t i = 0; i < 64; i++) {
        ptrdiff_t j = from + i;
        tmp[i] = (j >= 0 && (size_t)j < len) ? p[j] : 0;
    }
    return tmp;
}

#define STRIDE 48
#define LOOK 16 /* the window's bytes before its new ones */

/* The scan loop, instantiated once per instruction set so the classifier
 * inlines (no indirect call per window). */
#define SCAN_LOOP(CLASSIFY, HAS_DC)                                                            \
    uint8_t tmp[64], tmp2[64];                                                                 \
    uint64_t prev_colh = 0; /* "hex:" of the previous window */                                \
    for (size_t base = 0; base < len; base += STRIDE) {                                        \
        const uint8_t *w = window(p, len, (ptrdiff_t)base - LOOK, tmp);                        \
        if (!HAS_DC(w)) {                                                                      \
            /* Every shape has a digit within its last 16 bytes, or a ':'                      \
             * within its last 5: none ends in this window's new bytes. */                     \
            prev_colh = 0;                                                                     \
            continue;                                                                          \
        }                                                                                      \
        al__mask_cls_t c;                                                                      \
        CLASSIFY(w, &c);                                                                       \
        uint64_t end[AL__MASK_SHAPE__COUNT] = {0}, iban_b = 0;                                 \
        short_shapes(&c, want, end, &iban_b);                                                  \
        uint64_t colh = c.col & c.hex << 1;                                                    \
        /* Eight groups have seven "hex:" within 39 bytes: in this window                      \
         * or the previous one's bytes 25..47 (the window's first bit may                      \
         * miss its hex, hence 6). */                                                          \
        if (WANT(AL__MASK_SHAPE_IPV6_FULL) &&                                                  \
            POP(colh) + POP(prev_colh >> 25 & ((1ull << 23) - 1)) >= 6) {                      \
            al__mask_cls_t lo;                                                                 \
            CLASSIFY(window(p, len, (ptrdiff_t)base - LOOK - 64, tmp2), &lo);                  \
            end[AL__MASK_SHAPE_IPV6_FULL] = ipv6_full(&lo, &c);                                \
        }                                                                                      \
        prev_colh = colh;                                                                      \
        if (report(p, base, end, iban_b, on_end, ctx))                                         \
            return 1;                                                                          \
    }                                                                                          \
    return 0

/* Calls on_end for the ends in the window's new bytes, shape by shape. */
INLINE int report(const uint8_t *p, size_t base, const uint64_t end[], uint64_t iban_b,
                  al__mask_end_fn on_end, void *ctx)
{
    uint64_t fresh = ~(uint64_t)0 << LOOK, any = iban_b;
    for (unsigned sh = 1; sh < AL__MASK_SHAPE__COUNT; sh++)
        any |= end[sh];
    if (!(any & fresh))
        return 0;
    for (unsigned sh = 1; sh < AL__MASK_SHAPE__COUNT; sh++) {
        uint64_t a = end[sh] & fresh, b = sh == AL__MASK_SHAPE_IBAN ? iban_b & fresh : 0;
        uint64_t m = a | b;
        while (m) {
            unsigned i = (unsigned)__builtin_ctzll(m);
            m &= m - 1;
            size_t at = base - LOOK + i; /* the match's last byte */
            if (sh == AL__MASK_SHAPE_IBAN &&
                !(((a >> i & 1) && al__mask_iban_country_len(p + at - 7)) ||
                  ((b >> i & 1) && al__mask_iban_country_len(p + at - 8))))
                continue;
            if (on_end(sh, at + 1, ctx))
                return 1;
        }
    }
    return 0;
}

#ifdef HAVE_X86
__attribute__((target("avx512bw"))) static int scan_avx512(const uint8_t *p, size_t len,
                                                           uint32_t want, al__mask_end_fn on_end,
                                                           void *ctx)
{
    SCAN_LOOP(classify_avx512, dc_avx512);
}

__attribute__((target("avx2"))) static int scan_avx2(const uint8_t *p, size_t len,
                                                     uint32_t want, al__mask_end_fn on_end,
                                                     void *ctx)
{
    SCAN_LOOP(classify_avx2, dc_avx2);
}

static int scan_sse2(const uint8_t *p, size_t len, uint32_t want, al__mask_end_fn on_end,
                     void *ctx)
{
    SCAN_LOOP(classify_sse2, dc_sse2);
}
#endif

static int scan_scalar(const uint8_t *p, size_t len, uint32_t want, al__mask_end_fn on_end,
                       void *ctx)
{
    SCAN_LOOP(al__mask_classify_scalar, dc_scalar);
}

int al__mask_prefilter(const uint8_t *p, size_t len, uint32_t want, al__mask_end_fn on_end,
                       void *ctx)
{
    if (!want || !len)
        return 0;
    switch (al__mask_best_isa()) {
#ifdef HAVE_X86
    case AL__MASK_ISA_AVX512:
        return scan_avx512(p, len, want, on_end, ctx);
    case AL__MASK_ISA_AVX2:
        return scan_avx2(p, len, want, on_end, ctx);
    case AL__MASK_ISA_SSE2:
        return scan_sse2(p, len, want, on_end, ctx);
#endif
    default:
        return scan_scalar(p, len, want, on_end, ctx);
    }
}
