/*
 * mask.h - the sensitive-data masking engine: finds card numbers, SSNs,
 * e-mail addresses, phone numbers, IBANs, IP addresses, JWTs and bearer
 * tokens, AWS keys, PEM private keys, API keys and custom patterns in bytes
 * flowing back to an agent, and rewrites them in place of the original.
 *
 * Protocol independent: it sees bytes (a response body, a column value),
 * never a socket. docs/masking.md says what each detector matches and
 * what it deliberately does not.
 *
 * How it works: every enabled detector contributes one or more Hyperscan
 * patterns to ONE block-mode database per config snapshot. A pattern is a
 * prefilter: a match only hands an end offset to the detector's validator
 * (src/mask/detectors.c), which finds the value's extent by a bounded scan
 * around that offset and checks it (Luhn, mod-97, SSN area rules, entropy,
 * base64url/JSON, ...). Validators run only on candidates.
 *
 * Threads: an al_mask_engine_t is immutable after al_mask_compile and may be
 * shared by any number of threads. Each thread scans with its own
 * al_mask_scratch_t. An al_mask_stream_t belongs to one connection.
 */
#ifndef AL_MASK_MASK_H
#define AL_MASK_MASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

/* ---- detectors and styles -------------------------------------------- */

/* Built-in detector kinds. The config names (al_mask_det_name) are a public
 * contract. Order matters: when two detectors claim exactly the same bytes,
 * the lower kind wins (specific before generic: aws_key before api_key). */
typedef enum al_mask_det {
    AL_MASK_DET_NONE = 0,
    AL_MASK_DET_CREDIT_CARD, /* "credit_card" */
    AL_MASK_DET_US_SSN,      /* "us_ssn" */
    AL_MASK_DET_EMAIL,       /* "email" */
    AL_MASK_DET_PHONE,       /* "phone" */
    AL_MASK_DET_IBAN,        /* "iban" */
    AL_MASK_DET_IP_ADDRESS,  /* "ip_address" */
    AL_MASK_DET_JWT,         /* "jwt" (also "Bearer <token>" values) */
    AL_MASK_DET_AWS_KEY,     /* "aws_key" */
    AL_MASK_DET_PRIVATE_KEY, /* "private_key" */
    AL_MASK_DET_API_KEY,     /* "api_key" */
    AL_MASK_DET_CUSTOM,      /* a regex from the config, under its own name */
    AL_MASK_DET__COUNT
} al_mask_det_t;

/* How a found value is rewritten. */
typedef enum al_mask_style {
    AL_MASK_STYLE_FULL = 0, /* every byte becomes '#': same length */
    AL_MASK_STYLE_LAST4,    /* all but the last 4 ASCII alphanumerics become
                               '#', separators kept; a value with 4 or fewer
                               alphanumerics is masked entirely */
    AL_MASK_STYLE_HASH,     /* prefix + first N hex chars of
                               HMAC-SHA256(deployment key, value) */
    AL_MASK_STYLE_DROP,     /* the value is removed (empty output) */
    AL_MASK_STYLE__COUNT
} al_mask_style_t;

/* Config name of a built-in kind ("credit_card", ...; "custom" for
 * AL_MASK_DET_CUSTOM, "none" otherwise). Static string. */
const char *al_mask_det_name(al_mask_det_t det);
/* Kind for a config name, or AL_MASK_DET_NONE when it names no built-in
 * ("custom" is not a built-in name). */
al_mask_det_t al_mask_det_from_name(const char *name);
/* "full", "last4", "hash", "drop". Static string. */
const char *al_mask_style_name(al_mask_style_t style);
/* Returns AL_OK and sets *out, or AL_ERR for an unknown name. */
int al_mask_style_from_name(const char *name, al_mask_style_t *out);

/* ---- results and errors ---------------------------------------------- */

/* Every entry point returns one of these. Non-negative values are
 * successes; negative values are errors and mean: do not forward the
 * original bytes (fail closed). */
typedef enum al_mask_rc {
    AL_MASK_OK = 0,      /* success; a masking call found nothing and left
                            `out` untouched: forward the original bytes */
    AL_MASK_MASKED = 1,  /* `out` holds the rewritten bytes */
    AL_MASK_DROPPED = 2, /* al_mask_field / al_mask_value only: the whole
                            value was dropped; `out` is empty and the caller
                            may send NULL for a column */
    AL_MASK_E_NOMEM = -1,
    AL_MASK_E_INVALID = -2,          /* NULL argument, bad size or bad option */
    AL_MASK_E_UNKNOWN_DETECTOR = -3, /* rule names no built-in and has no pattern */
    AL_MASK_E_DUPLICATE = -4,        /* two rules (or columns) with one name */
    AL_MASK_E_BAD_NAME = -5,         /* custom name not [a-z0-9_]{1,64} or a built-in name */
    AL_MASK_E_BAD_PATTERN = -6,      /* Hyperscan refused a custom pattern */
    AL_MASK_E_UNBOUNDED = -7,        /* custom pattern longer than max_value_len */
    AL_MASK_E_BAD_STYLE = -8,        /* style out of range */
    AL_MASK_E_HASH_KEY = -9,         /* hash style without a key of >= 16 bytes */
    AL_MASK_E_TOO_MANY = -10,        /* more than AL_MASK_MAX_CUSTOM custom rules */
    AL_MASK_E_SCAN = -11,            /* Hyperscan failed while scanning */
    AL_MASK_E_SCRATCH = -12,         /* scratch not allocated for this engine, or in use */
    AL_MASK_E_TOO_LARGE = -13,       /* input longer than a scan can take (4 GiB) */
} al_mask_rc_t;

/* A static description of rc. */
const char *al_mask_strerror(al_mask_rc_t rc);

/* ---- configuration ------------------------------------------------------ */

#define AL_MASK_MAX_CUSTOM 64
#define AL_MASK_MAX_VALUE_DEFAULT 16384u
#define AL_MASK_MAX_VALUE_MIN 512u
#define AL_MASK_MAX_VALUE_MAX (1024u * 1024u)
#define AL_MASK_HASH_KEY_MIN 16u
#define AL_MASK_HASH_HEX_DEFAULT 16u
#define AL_MASK_HASH_PREFIX_DEFAULT "h:"
#define AL_MASK_HASH_PREFIX_MAX 16u

/* One detector to enable: a built-in by name (pattern NULL), or a custom
 * detector (name of the rule, pattern = a Hyperscan-compatible PCRE
 * subset: no backreferences or lookaround; its longest possible match must
 * be bounded by max_value_len, so write {m,n} rather than + or *). */
typedef struct al_mask_rule {
    const char *name;
    const char *pattern;
    al_mask_style_t style;
} al_mask_rule_t;

/* A column masked as a whole, regardless of detectors (al_mask_field). */
typedef struct al_mask_column {
    const char *name; /* compared ASCII case-insensitively */
    al_mask_style_t style;
} al_mask_column_t;

/* Everything al_mask_compile needs. Borrowed for the call only: the engine
 * copies what it keeps (names, patterns, key). */
typedef struct al_mask_config {
    const al_mask_rule_t *rules;
    size_t n_rules;
    const al_mask_column_t *columns;
    size_t n_columns;
    /* Per-deployment HMAC key; required (>= 16 bytes) when any rule or
     * column uses the hash style. */
    const uint8_t *hash_key;
    size_t hash_key_len;
    const char *hash_prefix; /* NULL = AL_MASK_HASH_PREFIX_DEFAULT; <= 16 bytes */
    unsigned hash_hex_len;   /* 0 = AL_MASK_HASH_HEX_DEFAULT; 8..64 */
    /* Longest value a detector reports (JWTs, bearer and API keys and PEM
     * blocks longer than this are masked up to it). Sets the streaming
     * hold-back. 0 = AL_MASK_MAX_VALUE_DEFAULT; 512..1 MiB. */
    size_t max_value_len;
} al_mask_config_t;

typedef struct al_mask_engine al_mask_engine_t;

/* Compiles cfg into an engine (refs = 1). On error returns a negative code,
 * leaves *out NULL, and, if detail is non-NULL, appends a message naming
 * the rule and saying how to fix it, e.g.
 *   custom detector "acct": Hyperscan: Invalid repeat at index 3. */
al_mask_rc_t al_mask_compile(const al_mask_config_t *cfg, al_mask_engine_t **out,
                             al_buf_t *detail);
/* Takes a reference (atomic). Returns e. */
al_mask_engine_t *al_mask_engine_ref(al_mask_engine_t *e);
/* Drops a reference and clears *e; the last one frees the engine (and
 * wipes its key). Accepts a pointer to NULL. */
void al_mask_engine_unref(al_mask_engine_t **e);
/* Number of enabled rules and the name of rule i (borrowed from e). */
size_t al_mask_engine_rules(const al_mask_engine_t *e);
const char *al_mask_engine_rule_name(const al_mask_engine_t *e, size_t i);
/* Longest value the engine reports (its max_value_len). */
size_t al_mask_engine_max_value(const al_mask_engine_t *e);

/* ---- per-thread scratch ---------------------------------------------- */

typedef struct al_mask_scratch al_mask_scratch_t;

/* Allocates *s for e when *s is NULL, or grows an existing scratch so it
 * also fits e (after a reload). A scratch fits every engine it was
 * allocated for. Not thread-safe for one scratch. */
al_mask_rc_t al_mask_scratch_alloc(const al_mask_engine_t *e, al_mask_scratch_t **s);
/* A copy of s for another thread (hs_clone_scratch). */
al_mask_rc_t al_mask_scratch_clone(const al_mask_scratch_t *s, al_mask_scratch_t **out);
void al_mask_scratch_free(al_mask_scratch_t **s);

/* ---- masking ------------------------------------------------------------ */

/* Counters, accumulated by every masking call (the caller zeroes them). */
typedef struct al_mask_stats {
    uint64_t bytes;      /* input bytes scanned (each byte once) */
    uint64_t candidates; /* prefilter matches handed to validators */
    uint64_t values;     /* values masked */
    uint64_t by_det[AL_MASK_DET__COUNT]; /* values masked per kind */
} al_mask_stats_t;

/* One masked value, as reported by al_mask_scratch_matches. */
typedef struct al_mask_match {
    size_t start, end;  /* byte offsets in the input, end exclusive */
    uint32_t rule;      /* index of the rule in the config */
    al_mask_det_t det;  /* its kind */
} al_mask_match_t;

/* Masks in[0..len): appends the rewritten bytes to out and returns
 * AL_MASK_MASKED, or returns AL_MASK_OK without touching out when nothing
 * matched (the no-match path neither allocates nor copies). stats may be
 * NULL. Overlaps: values are taken in order of start, then longest, then
 * lowest kind/rule; a value overlapping one already taken is masked only
 * from that one's end (so no byte any validator claimed is left
 * unmasked). */
al_mask_rc_t al_mask_buffer(const al_mask_engine_t *e, al_mask_scratch_t *s,
                            const char *in, size_t len, al_buf_t *out,
                            al_mask_stats_t *stats);

/* The values masked by the last al_mask_buffer or al_mask_field call on s,
 * ordered by start, non-overlapping (offsets after overlap clipping).
 * Borrowed from s: valid until the next call with s. */
const al_mask_match_t *al_mask_scratch_matches(const al_mask_scratch_t *s, size_t *n);

/* Masks one database field. column (may be {NULL,0}) is the column name:
 *  1. a column listed in the config is masked whole by its style;
 *  2. a key-like column name is context for detectors that need one: a
 *     value of a column named like ssn/social_security_number is tested
 *     whole as an SSN (9 digits allowed), like api_key/secret/token/password
 *     as an API key, like aws_secret_access_key as an AWS secret key;
 *  3. otherwise the value is scanned as al_mask_buffer does.
 * Returns AL_MASK_OK (untouched), AL_MASK_MASKED, AL_MASK_DROPPED (the whole
 * value was dropped) or an error. */
al_mask_rc_t al_mask_field(const al_mask_engine_t *e, al_mask_scratch_t *s, al_str_t column,
                           const char *in, size_t len, al_buf_t *out, al_mask_stats_t *stats);

/* Masks the whole value by style, no detector involved (column masking).
 * Uses e only for the hash key and format. Returns AL_MASK_MASKED,
 * AL_MASK_DROPPED (style drop), or an error (AL_MASK_E_HASH_KEY when the
 * engine has no key). */
al_mask_rc_t al_mask_value(const al_mask_engine_t *e, al_mask_style_t style,
                           const char *in, size_t len, al_buf_t *out);

/* ---- streaming ------------------------------------------------------------ */

/* Streaming masks a byte stream fed in arbitrary chunks with the same
 * result as al_mask_buffer on the concatenation of the chunks between two
 * flushes. It holds back the last max_value_len + 64 bytes (a value that
 * starts there may still be incomplete) and keeps 256 bytes of already
 * emitted text as left context. Bytes are emitted when the window is full;
 * al_mask_stream_flush emits the rest at a message boundary. */
typedef struct al_mask_stream al_mask_stream_t;

/* Opens a stream on e (takes a reference). window is the buffer size in
 * bytes: 0 = default (64 KiB or 4 x (hold-back + context), whichever is
 * larger); smaller values are raised to 2 x (hold-back + context) + 1. The
 * window is the only allocation: feeding never allocates except to grow out. */
al_mask_rc_t al_mask_stream_open(al_mask_engine_t *e, size_t window, al_mask_stream_t **out);
/* Feeds a chunk; appends to out whatever can be emitted. Returns AL_MASK_OK
 * or AL_MASK_MASKED (something was masked in what was emitted), or an error
 * (the stream is then unusable: close the connection). */
al_mask_rc_t al_mask_stream_feed(al_mask_stream_t *st, al_mask_scratch_t *s, const char *chunk,
                                 size_t len, al_buf_t *out, al_mask_stats_t *stats);
/* Emits everything held: the flush point ends any value (a message
 * boundary). The stream can be fed again afterwards. */
al_mask_rc_t al_mask_stream_flush(al_mask_stream_t *st, al_mask_scratch_t *s, al_buf_t *out,
                                  al_mask_stats_t *stats);
/* Bytes currently held back. */
size_t al_mask_stream_pending(const al_mask_stream_t *st);
void al_mask_stream_free(al_mask_stream_t **st);

/* ---- internal: shared by src/mask/*.c and white-box tests ---------------- */

/* The text a validator looks at. */
typedef struct al__mask_text {
    const uint8_t *p;
    size_t len;
    size_t max_value; /* cap on a value's length */
} al__mask_text_t;

/* What a validator found for a prefilter match ending at `to`. */
typedef struct al__mask_hit {
    size_t vs, ve;        /* the value [vs, ve) when the validator accepts */
    size_t lo;            /* lowest offset the decision depended on; 0 means
                             it ran into the start of the text */
    size_t skip_s, skip_e; /* later matches of the same pattern ending in
                              (skip_s, skip_e] would get the same answer */
} al__mask_hit_t;

typedef bool (*al__mask_check_fn)(const al__mask_text_t *t, size_t to, al__mask_hit_t *h);

/* One Hyperscan pattern of a built-in detector. */
typedef struct al__mask_pattern {
    al_mask_det_t det;
    const char *re;
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
double al__mask_entropy(const uint8_t *s, size_t n); /* Shannon, bits per byte */
/* True for a secret-looking value: >= 16 bytes, all "value" characters,
 * entropy >= AL__MASK_MIN_ENTROPY, not a placeholder. */
bool al__mask_secret_value_ok(const uint8_t *s, size_t n);
#define AL__MASK_MIN_ENTROPY 3.0
#define AL__MASK_SECRET_MIN 16u
/* Parses an IPv4 dotted quad exactly spanning s[0..n). */
bool al__mask_ipv4_ok(const uint8_t *s, size_t n);
/* Parses an IPv6 address (RFC 4291 §2.2) exactly spanning s[0..n). */
bool al__mask_ipv6_ok(const uint8_t *s, size_t n);
/* True for a byte that may appear in an API key / password value. */
bool al__mask_is_value_char(uint8_t c);

/* Styles (style.c): appends the masked form of v to out. The engine
 * supplies the hash key and format. */
typedef struct al__mask_hash_cfg {
    const uint8_t *key;
    size_t key_len;
    const char *prefix;
    size_t prefix_len;
    unsigned hex_len;
} al__mask_hash_cfg_t;
int al__mask_apply_style(al_mask_style_t style, const al__mask_hash_cfg_t *h, const uint8_t *v,
                         size_t n, al_buf_t *out);

/* Whole-value checks for key-like column names (detectors.c). */
bool al__mask_ssn_whole(const uint8_t *s, size_t n);
bool al__mask_aws_secret_whole(const uint8_t *s, size_t n);
/* Which kind a column name is context for: AL_MASK_DET_US_SSN,
 * AL_MASK_DET_AWS_KEY, AL_MASK_DET_API_KEY or AL_MASK_DET_NONE. */
al_mask_det_t al__mask_column_kind(al_str_t column);

#endif
