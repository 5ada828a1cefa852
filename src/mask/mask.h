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
 * How it works: every enabled detector contributes one or more prefilter
 * patterns, compiled once per config snapshot: literal-led ones into a few
 * Hyperscan block-mode databases, class-led ones (digit groups, IPv4, IBAN,
 * IPv6) into a bit-parallel matcher with the same results (prefilter.c). A
 * built-in pattern is a prefilter: a match only hands an end offset to the
 * detector's validator (detectors.c), which finds the value's extent by a
 * bounded scan around that offset and checks it (Luhn, mod-97, SSN area
 * rules, entropy, base64url header, ...). Validators run only on
 * candidates. Custom patterns report their own extent (leftmost start).
 *
 * Every decision about a value depends only on the value and a bounded
 * neighbourhood (AL_MASK_CONTEXT bytes before it, AL_MASK_LOOKAHEAD after
 * it), which is what lets the stream API give byte-for-byte the one-shot
 * result while holding back at most max_value_len bytes.
 *
 * Threads: an al_mask_engine_t is immutable after al_mask_compile and may be
 * shared by any number of threads. Each thread scans with its own
 * al_mask_scratch_t. An al_mask_stream_t belongs to one connection.
 *
 * Fail closed: every entry point returns an al_mask_rc_t; a negative value
 * means the caller must not forward the original bytes.
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
                               '#', other bytes kept; a value with 4 or fewer
                               alphanumerics is masked entirely */
    AL_MASK_STYLE_HASH,     /* prefix + first hex_len hex chars of
                               HMAC-SHA256(deployment key, value) */
    AL_MASK_STYLE_DROP,     /* the value is removed (empty output; a whole
                               column value becomes NULL: AL_MASK_DROPPED) */
    AL_MASK_STYLE__COUNT
} al_mask_style_t;

/* Config name of a built-in kind ("credit_card", ...; "custom" for
 * AL_MASK_DET_CUSTOM, "none" otherwise). Static string. */
const char *al_mask_det_name(al_mask_det_t det);
/* Kind for a config name, or AL_MASK_DET_NONE when it names no built-in
 * ("custom" is not a built-in name). name may be NULL. */
al_mask_det_t al_mask_det_from_name(const char *name);
/* "full", "last4", "hash", "drop" ("?" when out of range). Static string. */
const char *al_mask_style_name(al_mask_style_t style);
/* Returns AL_OK and sets *out, or AL_ERR for an unknown (or NULL) name. */
int al_mask_style_from_name(const char *name, al_mask_style_t *out);

/* ---- results and errors ---------------------------------------------- */

/* Every entry point returns one of these. Non-negative values are
 * successes; negative values are errors and mean: do not forward the
 * original bytes (fail closed). */
typedef enum al_mask_rc {
    AL_MASK_OK = 0,      /* success; a one-shot call found nothing and left
                            `out` untouched: forward the original bytes */
    AL_MASK_MASKED = 1,  /* `out` holds the rewritten bytes */
    AL_MASK_DROPPED = 2, /* al_mask_field / al_mask_value only: the whole
                            value was dropped; nothing was appended to `out`
                            and the caller sends NULL for a column */
    AL_MASK_E_NOMEM = -1,
    AL_MASK_E_INVALID = -2,          /* NULL argument, bad size or bad option */
    AL_MASK_E_UNKNOWN_DETECTOR = -3, /* rule names no built-in and has no pattern */
    AL_MASK_E_DUPLICATE = -4,        /* two rules (or two column globs) with one name */
    AL_MASK_E_BAD_NAME = -5,         /* custom name not [a-z0-9_]{1,64} or a built-in name */
    AL_MASK_E_BAD_PATTERN = -6,      /* Hyperscan refused a custom pattern */
    AL_MASK_E_UNBOUNDED = -7,        /* custom pattern can match more than the value cap */
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
#define AL_MASK_MAX_COLUMNS 1024
#define AL_MASK_MAX_VALUE_DEFAULT 16384u
#define AL_MASK_MAX_VALUE_MIN 1024u
#define AL_MASK_MAX_VALUE_MAX (1024u * 1024u)
#define AL_MASK_HASH_KEY_MIN 16u
#define AL_MASK_HASH_HEX_DEFAULT 16u
#define AL_MASK_HASH_HEX_MIN 8u
#define AL_MASK_HASH_HEX_MAX 64u
#define AL_MASK_HASH_PREFIX_DEFAULT "h:"
#define AL_MASK_HASH_PREFIX_MAX 16u
/* Bytes before a value that a decision may depend on (a key name, a
 * boundary), and bytes after it. */
#define AL_MASK_CONTEXT 256u
#define AL_MASK_LOOKAHEAD 64u
/* The longest value reported for a given max_value_len: half of it, less
 * the lookahead (a stream must see a value and its lookahead whole while
 * holding back at most max_value_len bytes; the other half is what it can
 * emit per scan, which keeps the cost per byte bounded for tiny chunks). */
#define AL_MASK_VALUE_CAP(max_value_len) ((max_value_len) / 2u - AL_MASK_LOOKAHEAD)

/* One detector to enable: a built-in by name (pattern NULL), or a custom
 * detector (name of the rule, pattern = a Hyperscan-compatible PCRE
 * subset: no backreferences or lookaround; it must not match the empty
 * string and its longest possible match must fit AL_MASK_VALUE_CAP, so
 * write {m,n} rather than + or *). A custom pattern should not match '#'
 * runs, or masked output would be masked again by it. */
typedef struct al_mask_rule {
    const char *name;
    const char *pattern;
    al_mask_style_t style;
} al_mask_rule_t;

/* A column masked as a whole, regardless of detectors (al_mask_field).
 * name is a glob compared ASCII case-insensitively: '*' matches any run of
 * bytes, '?' one byte, everything else itself ("*_ssn", "card?number",
 * "users.email" when the caller passes qualified names). The first rule in
 * config order that matches wins. */
typedef struct al_mask_column {
    const char *name;
    al_mask_style_t style;
} al_mask_column_t;

/* Everything al_mask_compile needs. Borrowed for the call only: the engine
 * copies what it keeps (names, patterns, globs, key). */
typedef struct al_mask_config {
    const al_mask_rule_t *rules;
    size_t n_rules;
    const al_mask_column_t *columns;
    size_t n_columns;
    /* Per-deployment HMAC key; required (>= 16 bytes) when any rule or
     * column uses the hash style. May be given without any hash rule
     * (al_mask_value can then hash). */
    const uint8_t *hash_key;
    size_t hash_key_len;
    /* NULL = AL_MASK_HASH_PREFIX_DEFAULT; <= 16 printable ASCII bytes other
     * than '"' and '\\' (it lands inside JSON strings). */
    const char *hash_prefix;
    unsigned hash_hex_len; /* 0 = AL_MASK_HASH_HEX_DEFAULT; 8..64 */
    /* The most a stream holds back. Values longer than
     * AL_MASK_VALUE_CAP(max_value_len) (JWTs, bearer and API keys, PEM
     * blocks) are masked up to that length. 0 = AL_MASK_MAX_VALUE_DEFAULT;
     * AL_MASK_MAX_VALUE_MIN..AL_MASK_MAX_VALUE_MAX. */
    size_t max_value_len;
} al_mask_config_t;

typedef struct al_mask_engine al_mask_engine_t;

/* Compiles cfg into an engine (refs = 1). On error returns a negative code,
 * leaves *out NULL, and, if detail is non-NULL, appends one line naming
 * the rule and saying how to fix it, e.g.
 *   custom detector "acct": Hyperscan: Invalid repeat at index 3. */
al_mask_rc_t al_mask_compile(const al_mask_config_t *cfg, al_mask_engine_t **out,
                             al_buf_t *detail);
/* Takes a reference (atomic). Returns e. */
al_mask_engine_t *al_mask_engine_ref(al_mask_engine_t *e);
/* Drops a reference and clears *e; the last one frees the engine (and
 * wipes its key). Accepts a pointer to NULL. */
void al_mask_engine_unref(al_mask_engine_t **e);
/* Number of enabled rules and the name of rule i (borrowed from e; NULL
 * when i is out of range). Rule i is cfg->rules[i]. */
size_t al_mask_engine_rules(const al_mask_engine_t *e);
const char *al_mask_engine_rule_name(const al_mask_engine_t *e, size_t i);
/* The engine's max_value_len (stream hold-back bound). */
size_t al_mask_engine_max_value(const al_mask_engine_t *e);
/* True when a column rule matches column; sets *style (may be NULL) to
 * the first matching rule's style. Lets a gateway decide on NULL for a
 * dropped column before reading the value. */
bool al_mask_column_style(const al_mask_engine_t *e, al_str_t column, al_mask_style_t *style);

/* ---- per-thread scratch ---------------------------------------------- */

typedef struct al_mask_scratch al_mask_scratch_t;

/* Allocates *s for e when *s is NULL, or grows an existing scratch so it
 * also fits e (after a reload). A scratch fits every engine it was
 * allocated for. Not thread-safe for one scratch. Startup/reload path:
 * allocates; for one of the last 8 engines *s was sized for it returns
 * AL_MASK_OK at once, so calling it per statement costs a few compares. */
al_mask_rc_t al_mask_scratch_alloc(const al_mask_engine_t *e, al_mask_scratch_t **s);
/* A copy of s for another thread, fitting the same engines. */
al_mask_rc_t al_mask_scratch_clone(const al_mask_scratch_t *s, al_mask_scratch_t **out);
/* Frees *s and clears it. Accepts a pointer to NULL. */
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
 * from that one's end, so every byte any validator claimed is masked.
 * On error out is restored to its length at the call. */
al_mask_rc_t al_mask_buffer(const al_mask_engine_t *e, al_mask_scratch_t *s,
                            const char *in, size_t len, al_buf_t *out,
                            al_mask_stats_t *stats);

/* The values masked by the last al_mask_buffer or al_mask_field call on s,
 * ordered by start, non-overlapping (offsets after overlap clipping).
 * Borrowed from s: valid until the next call with s. Other calls (body,
 * stream) leave it unspecified. */
const al_mask_match_t *al_mask_scratch_matches(const al_mask_scratch_t *s, size_t *n);

/* Masks one database field (e.g. a PostgreSQL DataRow text value).
 * column (may be {NULL,0}) is the column name:
 *  1. a column matching a column rule is masked whole by its style;
 *  2. a key-like column name is context for detectors that need one: a
 *     value of a column named like ssn / social_security_number is tested
 *     whole as an SSN (9 bare digits allowed), a column ending in
 *     secret_access_key as an AWS secret key, one ending in
 *     password/passwd/pwd is masked whole when non-empty, one ending in
 *     api_key/secret/token/... when the value looks like a secret; each by
 *     that detector's rule style (only when the detector is enabled);
 *  3. otherwise the value is scanned as al_mask_buffer does.
 * Returns AL_MASK_OK (untouched), AL_MASK_MASKED, AL_MASK_DROPPED (the whole
 * value was dropped: send NULL) or an error. */
al_mask_rc_t al_mask_field(const al_mask_engine_t *e, al_mask_scratch_t *s, al_str_t column,
                           const char *in, size_t len, al_buf_t *out, al_mask_stats_t *stats);

/* Masks the whole value by style, no detector involved (column masking).
 * Uses e only for the hash key and format. Returns AL_MASK_MASKED,
 * AL_MASK_DROPPED (style drop, out untouched), or an error
 * (AL_MASK_E_HASH_KEY when the engine has no key). */
al_mask_rc_t al_mask_value(const al_mask_engine_t *e, al_mask_style_t style,
                           const char *in, size_t len, al_buf_t *out);

/* Masks an HTTP message body by its Content-Type (media type compared
 * case-insensitively, parameters ignored, RFC 9110 §8.3.1):
 *  - application/json and application/<x>+json (RFC 6839 §3.1): values
 *    are masked inside string tokens only, escape-aware (a string holding
 *    escapes is decoded, scanned with its key as context, and re-escaped),
 *    and a JSON number that holds a value (a card number) becomes a
 *    string of its masked form, so valid JSON stays valid JSON. A body
 *    with bytes that cannot appear outside JSON strings is masked as text.
 *  - application/x-www-form-urlencoded: values are percent-decoded,
 *    masked and re-encoded (WHATWG URL §5); names are left alone.
 *  - text/<any>, and a missing/empty content type: masked as al_mask_buffer.
 *  - any other type: passed through (AL_MASK_OK, out untouched).
 * Returns AL_MASK_OK (forward the original), AL_MASK_MASKED (forward out)
 * or an error (forward nothing). The body must be whole and decoded
 * (no Content-Encoding, no chunk framing). */
/* True when al_mask_http_body would look into a body of this Content-Type
 * (JSON, form, text, or none): the proxy buffers only those. */
bool al_mask_http_maskable(al_str_t content_type);

al_mask_rc_t al_mask_http_body(const al_mask_engine_t *e, al_mask_scratch_t *s,
                               al_str_t content_type, const char *body, size_t len,
                               al_buf_t *out, al_mask_stats_t *stats);

/* ---- streaming ------------------------------------------------------------ */

/* Streaming masks a byte stream fed in arbitrary chunks with the same
 * result as al_mask_buffer on the concatenation of the chunks between two
 * flushes. After every feed at most max_value_len bytes are held back (a
 * value starting there may still be incomplete); AL_MASK_CONTEXT bytes of
 * already emitted text are kept as left context. al_mask_stream_flush
 * emits the rest at a message boundary. */
typedef struct al_mask_stream al_mask_stream_t;

/* Opens a stream on e (takes a reference). window is the buffer size in
 * bytes: 0 = default (256 KiB or 4 x (max_value_len + context), whichever
 * is larger); smaller values are raised to 2 x (max_value_len + context).
 * The window is the only allocation: feeding never allocates except to
 * grow out and, when something is found, the scratch's match list. */
al_mask_rc_t al_mask_stream_open(al_mask_engine_t *e, size_t window, al_mask_stream_t **out);
/* Feeds a chunk; appends to out whatever can be emitted (raw or masked:
 * unlike al_mask_buffer, a stream always writes what it emits to out).
 * Returns AL_MASK_OK (nothing masked in what was emitted), AL_MASK_MASKED,
 * or an error (the stream is then unusable: close the connection). */
al_mask_rc_t al_mask_stream_feed(al_mask_stream_t *st, al_mask_scratch_t *s, const char *chunk,
                                 size_t len, al_buf_t *out, al_mask_stats_t *stats);
/* Emits everything held: the flush point ends any value (a message
 * boundary). The stream can be fed again afterwards, as a new text. */
al_mask_rc_t al_mask_stream_flush(al_mask_stream_t *st, al_mask_scratch_t *s, al_buf_t *out,
                                  al_mask_stats_t *stats);
/* Bytes fed but not yet emitted (never more than max_value_len after a
 * feed returns). */
size_t al_mask_stream_pending(const al_mask_stream_t *st);
/* Frees *st (dropping its engine reference) and clears it. Accepts NULL. */
void al_mask_stream_free(al_mask_stream_t **st);

#endif
