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

/* One Hyperscan pattern of a built-in detector. */
typedef struct al__mask_pattern {
    al_mask_det_t det;
    const char *re;
    unsigned flags; /* HS_FLAG_* */
    al__mask_check_fn check;
} al__mask_pattern_t;

/* The built-in pattern table (detectors.c). */
extern const al__mask_pattern_t al__mask_patterns[];
extern const size_t al__mask_n_patterns;

/* Validators (validate.c). */
bool al__mask_luhn(const uint8_t *digits, size_t n); /* ASCII digits */
bool al__mask_card_iin(const uint8_t *digits, size_t n);
bool al__mask_ssn_ok(const uint8_t area[3], const uint8_t group[2], const uint8_t serial[4]);
/* IBAN: chars without spaces, uppercase letters and digits. */
bool al__mask_iban_ok(const uint8_t *s, size_t n);
/* Registered IBAN length for the country code at s[0..2), or 0. */
size_t al__mask_iban_country_len(const uint8_t *s);
double al__mask_entropy(const uint8_t *s, size_t n); /* Shannon, bits per byte */
/* True for a secret-looking value: >= 16 bytes, all "value" characters,
 * two character classes (or >= 32 bytes), entropy >= AL__MASK_MIN_ENTROPY,
 * not a placeholder, not a URL. */
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
    hs_database_t *db; /* NULL when no detector is enabled */
    al__mask_pat_t *pats;
    size_t n_pats;
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
