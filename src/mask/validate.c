/* validate.c - the checks a candidate value must pass: Luhn and issuer
 * prefixes for cards, SSA rules for SSNs, ISO 13616 mod-97 for IBANs,
 * Shannon entropy for secrets, RFC 4291 text forms for IPv6. Pure
 * functions over bytes; no allocation. */
#include <math.h>

#include "mask/mask_int.h"

static bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
static bool is_upper(uint8_t c) { return c >= 'A' && c <= 'Z'; }
static bool is_lower(uint8_t c) { return c >= 'a' && c <= 'z'; }

static int hex_val(uint8_t c)
{
    if (is_digit(c))
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* ---- payment cards ----------------------------------------------------- */

/* ISO/IEC 7812-1 Annex B (Luhn): double every second digit from the right. */
bool al__mask_luhn(const uint8_t *d, size_t n)
{
    unsigned sum = 0;
    bool dbl = false;
    for (size_t i = n; i-- > 0;) {
        unsigned v = (unsigned)(d[i] - '0');
        if (dbl) {
            v *= 2;
            if (v > 9)
                v -= 9;
        }
        sum += v;
        dbl = !dbl;
    }
    return n > 0 && sum % 10 == 0;
}

#define LEN(a) (1u << (a))
#define LENS(a, b) (((1u << ((b) + 1)) - 1) & ~((1u << (a)) - 1))

/* Issuer identification number ranges of the networks we recognise, on a
 * prefix of `digits` digits, with the lengths each issues. */
typedef struct iin_range {
    uint32_t lo, hi;
    uint8_t digits;
    uint32_t lens; /* bit n set: length n is issued */
} iin_range_t;

static const iin_range_t iin_ranges[] = {
    {4, 4, 1, LEN(13) | LEN(16) | LEN(19)},    /* Visa */
    {51, 55, 2, LEN(16)},                      /* Mastercard */
    {2221, 2720, 4, LEN(16)},                  /* Mastercard 2-series */
    {34, 34, 2, LEN(15)},                      /* American Express */
    {37, 37, 2, LEN(15)},                      /* American Express */
    {6011, 6011, 4, LENS(16, 19)},             /* Discover */
    {644, 649, 3, LENS(16, 19)},               /* Discover */
    {65, 65, 2, LENS(16, 19)},                 /* Discover / RuPay */
    {3528, 3589, 4, LENS(16, 19)},             /* JCB */
    {300, 305, 3, LENS(14, 19)},               /* Diners Club */
    {3095, 3095, 4, LENS(14, 19)},             /* Diners Club */
    {36, 36, 2, LENS(14, 19)},                 /* Diners Club */
    {38, 39, 2, LENS(14, 19)},                 /* Diners Club */
    {62, 62, 2, LENS(16, 19)},                 /* UnionPay */
    {60, 60, 2, LEN(16)},                      /* RuPay */
    {2200, 2204, 4, LENS(16, 19)},             /* Mir */
    {5018, 5018, 4, LENS(13, 19)},             /* Maestro */
    {5020, 5020, 4, LENS(13, 19)},             /* Maestro */
    {5038, 5038, 4, LENS(13, 19)},             /* Maestro */
    {5893, 5893, 4, LENS(13, 19)},             /* Maestro */
    {6304, 6304, 4, LENS(13, 19)},             /* Maestro */
    {6759, 6759, 4, LENS(13, 19)},             /* Maestro */
    {6761, 6763, 4, LENS(13, 19)},             /* Maestro */
};

bool al__mask_card_iin(const uint8_t *d, size_t n)
{
    if (n < 13 || n > 19)
        return false;
    for (size_t i = 0; i < AL_ARRAY_LEN(iin_ranges); i++) {
        const iin_range_t *r = &iin_ranges[i];
        uint32_t pfx = 0;
        for (size_t k = 0; k < r->digits; k++)
            pfx = pfx * 10 + (uint32_t)(d[k] - '0');
        if (pfx >= r->lo && pfx <= r->hi && (r->lens & LEN(n)))
            return true;
    }
    return false;
}

/* GS1 General Specifications §7.9.1: the check digit of a GTIN-13 (EAN-13)
 * makes the sum of the digits, weighted 1 and 3 alternately from the left,
 * a multiple of 10. */
bool al__mask_gtin13_ok(const uint8_t *d)
{
    unsigned sum = 0;
    for (size_t i = 0; i < 13; i++)
        sum += (unsigned)(d[i] - '0') * (i % 2 ? 3u : 1u);
    return sum % 10 == 0;
}

/* ---- US social security numbers ---------------------------------------- */

/* SSA rules since the 2011 randomisation: area 000, 666 and 900-999 are
 * never issued, nor group 00 or serial 0000. */
bool al__mask_ssn_ok(const uint8_t area[3], const uint8_t group[2], const uint8_t serial[4])
{
    int a = (area[0] - '0') * 100 + (area[1] - '0') * 10 + (area[2] - '0');
    if (a == 0 || a == 666 || a >= 900)
        return false;
    if (group[0] == '0' && group[1] == '0')
        return false;
    return !(serial[0] == '0' && serial[1] == '0' && serial[2] == '0' && serial[3] == '0');
}

/* ---- IBAN ----------------------------------------------------------------- */

/* IBAN lengths from the SWIFT IBAN registry, for the countries we accept. */
static const struct {
    char cc[3];
    uint8_t len;
} iban_lens[] = {
    {"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20}, {"BE", 16},
    {"BG", 22}, {"BH", 22}, {"BR", 29}, {"BY", 28}, {"CH", 21}, {"CR", 22}, {"CY", 28},
    {"CZ", 24}, {"DE", 22}, {"DK", 18}, {"DO", 28}, {"EE", 20}, {"EG", 29}, {"ES", 24},
    {"FI", 18}, {"FO", 18}, {"FR", 27}, {"GB", 22}, {"GE", 22}, {"GI", 23}, {"GL", 18},
    {"GR", 27}, {"GT", 28}, {"HR", 21}, {"HU", 28}, {"IE", 22}, {"IL", 23}, {"IQ", 23},
    {"IS", 26}, {"IT", 27}, {"JO", 30}, {"KW", 30}, {"KZ", 20}, {"LB", 28}, {"LC", 32},
    {"LI", 21}, {"LT", 20}, {"LU", 20}, {"LV", 21}, {"MC", 27}, {"MD", 24}, {"ME", 22},
    {"MK", 19}, {"MR", 27}, {"MT", 31}, {"MU", 30}, {"NL", 18}, {"NO", 15}, {"PK", 24},
    {"PL", 28}, {"PS", 29}, {"PT", 25}, {"QA", 29}, {"RO", 24}, {"RS", 22}, {"SA", 24},
    {"SC", 31}, {"SE", 24}, {"SI", 19}, {"SK", 24}, {"SM", 27}, {"ST", 25}, {"SV", 28},
    {"TL", 23}, {"TN", 24}, {"TR", 26}, {"UA", 29}, {"VA", 22}, {"VG", 24}, {"XK", 20},
};

size_t al__mask_iban_country_len(const uint8_t *s)
{
    for (size_t i = 0; i < AL_ARRAY_LEN(iban_lens); i++)
        if (iban_lens[i].cc[0] == (char)s[0] && iban_lens[i].cc[1] == (char)s[1])
            return iban_lens[i].len;
    return 0;
}

/* ISO 13616-1 / ISO 7064 MOD 97-10: move the first four characters to the
 * end, read letters as 10..35, the number must be 1 mod 97. */
bool al__mask_iban_ok(const uint8_t *s, size_t n)
{
    if (n < 15 || n > 34 || !is_upper(s[0]) || !is_upper(s[1]) || !is_digit(s[2]) ||
        !is_digit(s[3]) || al__mask_iban_country_len(s) != n)
        return false;
    int cd = (s[2] - '0') * 10 + (s[3] - '0');
    if (cd < 2 || cd > 98)
        return false;
    unsigned r = 0;
    for (size_t k = 0; k < n; k++) {
        uint8_t c = s[(k + 4) % n];
        if (is_digit(c))
            r = (r * 10 + (unsigned)(c - '0')) % 97;
        else if (is_upper(c))
            r = (r * 100 + (unsigned)(c - 'A' + 10)) % 97;
        else
            return false;
    }
    return r == 1;
}

/* ---- secrets ------------------------------------------------------------- */

double al__mask_entropy(const uint8_t *s, size_t n)
{
    if (n == 0)
        return 0.0;
    uint32_t cnt[256] = {0};
    for (size_t i = 0; i < n; i++)
        cnt[s[i]]++;
    double h = 0.0, dn = (double)n;
    for (size_t c = 0; c < 256; c++) {
        if (cnt[c]) {
            double p = (double)cnt[c] / dn;
            h -= p * log2(p);
        }
    }
    return h;
}

bool al__mask_is_value_char(uint8_t c)
{
    if (c < 0x21 || c > 0x7e)
        return false;
    switch (c) {
    case '#': /* the mask character: masked output never reads as a secret */
    case '"': case '\'': case '\\': case '`': case '&': case ',': case ';':
    case '<': case '>': case '(': case ')': case '[': case ']': case '{': case '}':
        return false;
    default:
        return true;
    }
}

static bool contains_ci(const uint8_t *s, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++) {
        size_t k = 0;
        while (k < m && (s[i + k] | 0x20) == (uint8_t)needle[k])
            k++;
        if (k == m)
            return true;
    }
    return false;
}

/* Values people put where a secret goes when there is none. */
static bool is_placeholder(const uint8_t *s, size_t n)
{
    static const char *const words[] = {"your", "redacted", "changeme", "placeholder",
                                        "xxxx", "****", "...."};
    for (size_t i = 0; i < AL_ARRAY_LEN(words); i++)
        if (contains_ci(s, n, words[i]))
            return true;
    return false;
}

/* A date or time in RFC 3339 §5.6 / ISO 8601 form ("2024-05-01T10:22:33.123Z"):
 * digits, the separators - : . + / and the letters T and Z only. Such values
 * sit after key-like names (reset_password_sent_at, token_expires_at) and
 * are never secrets. */
static bool is_timestamp(const uint8_t *s, size_t n)
{
    size_t digits = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (is_digit(c))
            digits++;
        else if (c == 0 || !strchr("-:.+/TZtz", c))
            return false;
    }
    return digits >= 6;
}

/* Identifiers that sit after key-like names and are no secrets: ARNs
 * ("SecretArn": "arn:aws:secretsmanager:..."), URNs (RFC 8141), and file
 * paths (private_key_path: /etc/ssl/private/site.key). A path here starts
 * with '/', "./", "../" or "~/", holds only [A-Za-z0-9._/-] with at least
 * two '/' and one of '.', '-', '_': standard base64 has none of those three
 * and base64url has no '/', so no base64 secret reads as a path. */
static bool is_identifier(const uint8_t *s, size_t n)
{
    if (n > 4 && ((s[0] | 0x20) == 'a' || (s[0] | 0x20) == 'u') && (s[1] | 0x20) == 'r' &&
        (s[2] | 0x20) == 'n' && s[3] == ':')
        return true;
    if (!(s[0] == '/' || (n > 2 && s[0] == '~' && s[1] == '/') ||
          (n > 2 && s[0] == '.' && (s[1] == '/' || (s[1] == '.' && s[2] == '/')))))
        return false;
    size_t slashes = 0;
    bool punct = false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c == '/')
            slashes++;
        else if (c == '.' || c == '-' || c == '_')
            punct = true;
        else if (!(is_digit(c) || is_upper(c) || is_lower(c)) && !(i == 0 && c == '~'))
            return false;
    }
    return slashes >= 2 && punct;
}

bool al__mask_secret_value_ok(const uint8_t *s, size_t n)
{
    if (n < AL__MASK_SECRET_MIN)
        return false;
    bool lower = false, upper = false, digit = false;
    for (size_t i = 0; i < n; i++) {
        if (!al__mask_is_value_char(s[i]))
            return false;
        lower |= is_lower(s[i]);
        upper |= is_upper(s[i]);
        digit |= is_digit(s[i]);
    }
    /* Random keys mix classes; a lowercase phrase such as
     * "refresh_token_expired" does not. Long values pass on entropy alone. */
    if ((int)lower + (int)upper + (int)digit < 2 && n < 32)
        return false;
    if (is_placeholder(s, n) || contains_ci(s, n, "://") || is_timestamp(s, n) ||
        is_identifier(s, n))
        return false;
    return al__mask_entropy(s, n) >= AL__MASK_MIN_ENTROPY;
}

/* ---- IP addresses ----------------------------------------------------------- */

/* Dotted quad, each octet 0..255 in 1-3 digits without a leading zero. */
bool al__mask_ipv4_ok(const uint8_t *s, size_t n)
{
    size_t i = 0;
    for (int oct = 0; oct < 4; oct++) {
        if (oct > 0) {
            if (i >= n || s[i] != '.')
                return false;
            i++;
        }
        size_t st = i;
        unsigned v = 0;
        while (i < n && is_digit(s[i]) && i - st < 4)
            v = v * 10 + (unsigned)(s[i++] - '0');
        size_t dl = i - st;
        if (dl == 0 || dl > 3 || v > 255 || (dl > 1 && s[st] == '0'))
            return false;
    }
    return i == n;
}

/* RFC 4291 §2.2: eight groups of 1-4 hex digits, one "::" standing for one
 * or more zero groups, and optionally a dotted quad as the last 32 bits. */
bool al__mask_ipv6_ok(const uint8_t *s, size_t n)
{
    size_t i = 0;
    int groups = 0;
    bool dbl = false;
    if (n >= 2 && s[0] == ':' && s[1] == ':') {
        dbl = true;
        i = 2;
        if (i == n)
            return false; /* "::" alone: deliberately not an address here */
    }
    while (i < n) {
        size_t st = i;
        while (i < n && hex_val(s[i]) >= 0 && i - st < 5)
            i++;
        if (i < n && s[i] == '.') {
            if (groups > 6 || !al__mask_ipv4_ok(s + st, n - st))
                return false;
            groups += 2;
            i = n;
            break;
        }
        if (i == st || i - st > 4)
            return false;
        groups++;
        if (i == n)
            break;
        if (s[i] != ':')
            return false;
        i++;
        if (i < n && s[i] == ':') {
            if (dbl)
                return false;
            dbl = true;
            i++;
        } else if (i == n) {
            return false; /* a trailing single ':' */
        }
    }
    return dbl ? groups <= 7 : groups == 8;
}
