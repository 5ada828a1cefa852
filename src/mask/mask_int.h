/*
 * mask_int.h - internals shared by the src/mask sources and the white-box tests.
 * Not part of the folder's interface (mask.h is).
 */
#ifndef AL_MASK_MASK_INT_H
#define AL_MASK_MASK_INT_H

#include <hs.h>
#include <openssl/evp.h>
#include <stdatomic.h>

#include "mask/mask.h"

/* ---- validators ------------------------------------------------------------ */

/* The text a validator looks at: bytes outside [0, len) read as -1 (a
 * boundary). vmax caps a value's length. */
typedef struct al__mask_text {
    const uint8_t *p;
    size_t len;
    size_t vmax;
} al__mask_text_t;

/* A value [vs, ve) a validator accepted. */
typedef struct al__mask_span {
    size_t vs, ve;
} al__mask_span_t;

#define AL__MASK_SPANS_MAX 16

/* Called with the end offset `to` of a prefilter match. Writes up to
 * AL__MASK_SPANS_MAX accepted values to out and returns their number.
 * *skip_to (preset to `to`) may be raised: later matches of the same
 * pattern ending at or before it would find nothing new. A validator
 * reads at most 128 bytes before the values it reports and
 * AL_MASK_LOOKAHEAD bytes after them, and every value it reports is also
 * reported from a match that starts at most 128 bytes before the value:
 * this locality is what streaming relies on. */
typedef size_t (*al__mask_check_fn)(const al__mask_text_t *t, size_t to, al__mask_span_t *out,
                                    size_t *skip_to);

/* Class-led prefilter shapes matched bit-parallel (prefilter.c) instead of
 * by Hyperscan; each is the regex of one al__mask_patterns entry. */
typedef enum al__mask_shape {
    AL__MASK_SHAPE_NONE = 0,  /* a Hyperscan pattern */
    AL__MASK_SHAPE_CARD,      /* \d{13}|\d{4}[ -]\d{4}[ -]\d{4}[ -]\d|\d{4}[ -]\d{6}[ -]\d{4} */
    AL__MASK_SHAPE_SSN,       /* \d{3}[ -]\d{2}[ -]\d{4} */
    AL__MASK_SHAPE_NANP,      /* \d{3}[ .-]\d{3}[ .-]\d{4}|\)[ ]?\d{3}[ .-]\d{4} */
    AL__MASK_SHAPE_PHONE44,   /* \d{4}[ -]?\d{4} */
    AL__MASK_SHAPE_NATIONAL,  /* 0\d(?:[ .-]\d\d){4}|0\d\d[ -]\d{7} */
    AL__MASK_SHAPE_IPV4,      /* \d\.\d{1,3}\.\d{1,3}\.\d */
    AL__MASK_SHAPE_IBAN,      /* <country code>\d{2} ?[A-Z0-9]{4} */
    AL__MASK_SHAPE_IPV6_FULL, /* [0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){7} */
    AL__MASK_SHAPE__COUNT
} al__mask_shape_t;

/* An engine's Hyperscan databases. Literal sets scan much faster apart
 * than together (a single-literal database is a memchr; caseless key names
 * next to '@' or "::" slow the shared literal matcher down several times,
 * bench/mask), and a scan call costs about the same for each. */
typedef enum al__mask_db {
    AL__MASK_DB_LITERAL = 0, /* '+', "::", "eyJ", "AKIA", "-----BEGIN" */
    AL__MASK_DB_EMAIL,       /* '@' */
    AL__MASK_DB_NAMES,       /* caseless key names: bearer, secret...key, api_key... */
    AL__MASK_DB_CUSTOM,      /* the config's own patterns */
    AL__MASK_DB__COUNT
} al__mask_db_t;

/* One prefilter pattern of a built-in detector: a Hyperscan regex in
 * database db, or (shape != NONE) a shape prefilter.c matches with the
 * same results. */
typedef struct al__mask_pattern {
    al_mask_det_t det;
    const char *re;
    unsigned flags; /* HS_FLAG_* */
    al__mask_check_fn check;
    al__mask_shape_t shape;
    al__mask_db_t db;
} al__mask_pattern_t;

/* The built-in pattern table (detectors.c). */
extern const al__mask_pattern_t al__mask_patterns[];
extern const size_t al__mask_n_patterns;

/* ---- bit-parallel prefilter (prefilter.c) ------------------------------------- */

/* One bit mask per character class over 64 bytes (bit i = byte i). */
typedef struct al__mask_cls {
    uint64_t d, sp, dash, dot, rp, col, zero, up, hex;
} al__mask_cls_t;

/* Instruction sets the classifier has a version for; the prefilter uses
 * the best one this CPU has (al__mask_best_isa). */
enum {
    AL__MASK_ISA_SCALAR = 0, /* byte by byte: the reference */
    AL__MASK_ISA_SSE2,       /* every x86-64 */
    AL__MASK_ISA_AVX2,
    AL__MASK_ISA_AVX512,     /* AVX-512BW */
    AL__MASK_ISA__COUNT
};
/* Classes of p[0..64) byte by byte. */
void al__mask_classify_scalar(const uint8_t *p, al__mask_cls_t *c);
/* Classes of p[0..64) with one instruction set; false (c untouched) when
 * this build or CPU lacks it. */
bool al__mask_classify_isa(unsigned isa, const uint8_t *p, al__mask_cls_t *c);
unsigned al__mask_best_isa(void);

/* Called with a shape and the end offset (exclusive) of one of its
 * matches; non-zero stops the scan. */
typedef int (*al__mask_end_fn)(unsigned shape, size_t end, void *ctx);

/* Calls on_end for every end offset at which a match of an enabled shape
 * (bit 1 << shape in `want`) ends in p[0..len): exactly the ends Hyperscan
 * block mode reports for the shape's regex, in increasing order per shape.
 * Returns 1 when on_end stopped it, else 0. No allocation. */
int al__mask_prefilter(const uint8_t *p, size_t len, uint32_t want, al__mask_end_fn on_end,
                       void *ctx);

/* Validators (validate.c). */
bool al__mask_luhn(const uint8_t *digits, size_t n); /* ASCII digits */
bool al__mask_card_iin(const uint8_t *digits, size_t n);
/* A valid GS1 GTIN-13 (EAN-13) check digit; d holds 13 ASCII digits. */
bool al__mask_gtin13_ok(const uint8_t *d);
bool al__mask_ssn_ok(const uint8_t area[3], const uint8_t group[2], const uint8_t serial[4]);
/* IBAN: chars without spaces, uppercase letters and digits. */
bool al__mask_iban_ok(const uint8_t *s, size_t n);
/* Registered IBAN length for the country code at s[0..2), or 0. */
size_t al__mask_iban_country_len(const uint8_t *s);
double al__mask_entropy(const uint8_t *s, size_t n); /* Shannon, bits per byte */
/* True for a secret-looking value: >= 16 bytes, all "value" characters,
 * two character classes (or >= 32 bytes), entropy >= AL__MASK_MIN_ENTROPY,
 * not a placeholder, not a URL, not a date or time, not an ARN, URN or
 * file path. */
bool al__mask_secret_value_ok(const uint8_t *s, size_t n);
#define AL__MASK_MIN_ENTROPY 3.0
#define AL__MASK_SECRET_MIN 16u
/* Parses an IPv4 dotted quad exactly spanning s[0..n). */
bool al__mask_ipv4_ok(const uint8_t *s, size_t n);
/* Parses an IPv6 address (RFC 4291 §2.2) exactly spanning s[0..n). */
bool al__mask_ipv6_ok(const uint8_t *s, size_t n);
/* True for a byte that may appear in an API key / password value ('#',
 * the mask character, is not one). */
bool al__mask_is_value_char(uint8_t c);

/* Whole-value checks for key-like column names (detectors.c). */
bool al__mask_ssn_whole(const uint8_t *s, size_t n);
bool al__mask_aws_secret_whole(const uint8_t *s, size_t n);

/* What a column name is context for (detectors.c). */
typedef enum al__mask_colkind {
    AL__MASK_COL_NONE = 0,
    AL__MASK_COL_SSN,        /* us_ssn: whole value as an SSN */
    AL__MASK_COL_AWS_SECRET, /* aws_key: whole value as a secret access key */
    AL__MASK_COL_PASSWORD,   /* api_key: any non-empty value */
    AL__MASK_COL_SECRET,     /* api_key: a secret-looking value */
} al__mask_colkind_t;
al__mask_colkind_t al__mask_column_kind(al_str_t column);

/* ASCII case-insensitive glob: '*' any run, '?' one byte. */
bool al__mask_glob(const char *pat, al_str_t s);

/* ---- engine ------------------------------------------------------------------- */

typedef struct al__mask_pat {
    al__mask_check_fn check; /* NULL: custom pattern, extent from SOM */
    uint32_t rule;
    al_mask_det_t det;
} al__mask_pat_t;

typedef struct al__mask_rule {
    char *name;
    char *pattern; /* NULL for a built-in */
    al_mask_style_t style;
    al_mask_det_t det;
} al__mask_rule_t;

typedef struct al__mask_col {
    char *glob;
    al_mask_style_t style;
} al__mask_col_t;

struct al_mask_engine {
    atomic_uint refs;
    uint64_t serial; /* unique in the process, never 0 */
    hs_database_t *dbs[AL__MASK_DB__COUNT]; /* NULL when it has no pattern */
    bool has_db;                              /* any of them */
    al__mask_pat_t *pats; /* Hyperscan ids index it; shapes have entries too */
    size_t n_pats;
    uint32_t shapes;                          /* bit per enabled al__mask_shape_t */
    uint32_t shape_pat[AL__MASK_SHAPE__COUNT]; /* its index in pats */
    al__mask_rule_t *rules;
    size_t n_rules;
    al__mask_col_t *cols;
    size_t n_cols;
    int det_rule[AL_MASK_DET__COUNT]; /* rule index of each enabled built-in, or -1 */
    size_t max_value;                 /* stream hold-back */
    size_t vmax;                      /* AL_MASK_VALUE_CAP(max_value) */
    EVP_MAC_CTX *mac;                 /* keyed HMAC-SHA256 template; NULL without key */
    char prefix[AL_MASK_HASH_PREFIX_MAX + 1];
    size_t prefix_len;
    unsigned hex_len;
};

/* Appends the masked form of v[0..n) by style to out. Returns AL_MASK_MASKED,
 * or an error (AL_MASK_E_HASH_KEY, AL_MASK_E_NOMEM, ...). Drop appends
 * nothing. */
al_mask_rc_t al__mask_apply_style(const al_mask_engine_t *e, al_mask_style_t style,
                                  const uint8_t *v, size_t n, al_buf_t *out);

/* ---- scanning ----------------------------------------------------------------- */

typedef struct al__mask_hits {
    al_mask_match_t *v;
    size_t n, cap;
    al_mask_match_t *tmp; /* merge buffer of the sort, grown on demand */
    size_t tmp_cap;
} al__mask_hits_t;

struct al_mask_scratch {
    hs_scratch_t *hs;
    size_t *skip; /* per Hyperscan pattern id */
    size_t skip_cap;
    al__mask_hits_t hits;  /* main scan, then its resolved pieces */
    al__mask_hits_t hits2; /* sub-scans of decoded JSON strings / form bodies */
    al_buf_t doc;  /* body helper: the decoded document */
    al_buf_t segs; /* its escaped strings (JSON) */
    al_buf_t map;  /* decoded byte -> raw offset, for one string */
    al_buf_t val;  /* one styled value */
    /* Serials of the engines this scratch was last sized for: sizing only
     * grows, so it still fits them, and al_mask_scratch_alloc for one of
     * them (once per statement in the gateways) returns at once instead of
     * asking Hyperscan for every database. */
    uint64_t fits[8];
    bool busy;
};

/* Scans p[0..len) with e into hv (emptied first): every value any
 * validator (or custom pattern) accepted, unsorted, possibly overlapping.
 * Returns AL_MASK_OK or an error. */
al_mask_rc_t al__mask_scan(const al_mask_engine_t *e, al_mask_scratch_t *s, const uint8_t *p,
                           size_t len, al__mask_hits_t *hv, al_mask_stats_t *stats);

/* Sorts hv and keeps, in place, the pieces of the values starting in
 * [lo, hi): order of start, longest first, then lowest kind and rule; each
 * clipped to begin at *covered (the end of everything taken so far),
 * dropped when nothing is left. Updates *covered. */
void al__mask_resolve(al__mask_hits_t *hv, size_t lo, size_t hi, size_t *covered);

/* Appends p[from..to) to out with the pieces (sorted, non-overlapping, all
 * inside [from, to)) rewritten by their rules' styles. */
al_mask_rc_t al__mask_emit(const al_mask_engine_t *e, const uint8_t *p, size_t from, size_t to,
                           const al_mask_match_t *pieces, size_t n, al_buf_t *out,
                           al_mask_stats_t *stats);

/* Claims s for one call (AL_MASK_E_SCRATCH when it is in use or does not
 * fit e) and releases it. */
al_mask_rc_t al__mask_scratch_enter(const al_mask_engine_t *e, al_mask_scratch_t *s);
void al__mask_scratch_leave(al_mask_scratch_t *s);

/* Bumps stats->values/by_det for the pieces. */
void al__mask_count(al_mask_stats_t *stats, const al_mask_match_t *pieces, size_t n);

#endif
