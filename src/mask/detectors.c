/* detectors.c - the built-in detectors: one or more Hyperscan prefilter
 * patterns each, and the validator a prefilter match is handed to.
 *
 * A validator gets the end offset of a match, finds the value's extent by a
 * bounded scan around it and checks it. Every rule below reads at most a
 * few bytes around the value it reports (never more than 128 before it or
 * AL_MASK_LOOKAHEAD after it), so the same bytes give the same answer
 * whether the text is scanned whole or through a stream window.
 *
 * '#', the mask character, counts as a word character in every boundary
 * test and as a possible digit in every "is this part of a longer number"
 * test: a value glued to '#' is not reported. That keeps masking
 * idempotent: masking a value never turns a neighbour that was rejected
 * into one that is accepted, so a re-scan of `full` output finds nothing.
 */
#include <strings.h>

#include "mask/mask_int.h"

/* ---- byte classes ------------------------------------------------------------ */

/* Byte at i, or -1 outside the text (the text's edges are boundaries). */
static inline int at(const al__mask_text_t *t, ptrdiff_t i)
{
    return (i < 0 || (size_t)i >= t->len) ? -1 : t->p[i];
}
#define AT(i) at(t, (ptrdiff_t)(i))

static inline bool dig(int c) { return c >= '0' && c <= '9'; }
static inline bool upper(int c) { return c >= 'A' && c <= 'Z'; }
static inline bool alpha(int c) { return (c >= 'a' && c <= 'z') || upper(c); }
static inline bool alnum(int c) { return dig(c) || alpha(c); }
static inline bool hexd(int c)
{
    return dig(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
/* Part of a word: a value may not touch one. */
static inline bool wordish(int c) { return alnum(c) || c == '_' || c == '#'; }
/* A digit, or a masked byte that may have been one. */
static inline bool digh(int c) { return dig(c) || c == '#'; }

static size_t push(al__mask_span_t *out, size_t n, size_t vs, size_t ve)
{
    if (n >= AL__MASK_SPANS_MAX)
        return n;
    for (size_t i = 0; i < n; i++)
        if (out[i].vs == vs && out[i].ve == ve)
            return n;
    out[n].vs = vs;
    out[n].ve = ve;
    return n + 1;
}

/* Later matches inside an accepted value [vs, ve) find a suffix of it,
 * which is masked already, unless the value was cut at the length cap:
 * then a later match may reach further, and must be looked at. */
static void skip_past(const al__mask_text_t *t, size_t vs, size_t ve, size_t *skip_to)
{
    if (ve - vs < t->vmax)
        *skip_to = ve;
}

/* The run of digits containing i: [*gs, *ge). False when it is longer than
 * max; *ge is then as far as the scan got. */
static bool digit_group(const al__mask_text_t *t, size_t i, size_t max, size_t *gs, size_t *ge)
{
    size_t s = i, e = i + 1;
    while (s > 0 && dig(t->p[s - 1])) {
        if (e - s >= max) {
            *ge = e;
            return false;
        }
        s--;
    }
    while (e < t->len && dig(t->p[e])) {
        if (e - s >= max) {
            *ge = e;
            return false;
        }
        e++;
    }
    *gs = s;
    *ge = e;
    return true;
}

/* ---- payment cards ----------------------------------------------------------- */

/* Card numbers are written as one run of 13-19 digits, or in groups joined
 * by one space or one dash: 4-4-4-4, 4-4-4-1..4, 4-4-4-4-1..3 (Visa,
 * Mastercard, Discover, ...), 4-6-5 (Amex), 4-6-4 (Diners). Any such window
 * of a longer run of groups is a candidate: "ref 1234 4111 1111 1111 1111"
 * still masks the card. Checked with Luhn (ISO/IEC 7812-1 Annex B) and the
 * issuer ranges. */
typedef struct card_grp {
    size_t s, e;
    uint8_t sep; /* separator before this group (0 for the first) */
} card_grp_t;

static bool card_layout(const card_grp_t *g, size_t k)
{
    size_t sz[5];
    for (size_t i = 0; i < k; i++)
        sz[i] = g[i].e - g[i].s;
    if (k == 1)
        return sz[0] >= 13 && sz[0] <= 19;
    if (sz[0] != 4)
        return false;
    for (size_t i = 2; i < k; i++)
        if (g[i].sep != g[1].sep)
            return false;
    if (k == 3)
        return sz[1] == 6 && (sz[2] == 5 || sz[2] == 4);
    if (k == 4)
        return sz[1] == 4 && sz[2] == 4 && sz[3] >= 1 && sz[3] <= 4;
    if (k == 5)
        return sz[1] == 4 && sz[2] == 4 && sz[3] == 4 && sz[4] >= 1 && sz[4] <= 3;
    return false;
}

/* Not glued to a word, a '+' (phone) or a decimal point. A ',' between
 * digits is a CSV field separator ("42,4111111111111111,12/27") far more
 * often than a decimal comma in front of a 13-19 digit fraction, so only
 * '.' counts as a decimal point. */
static bool num_left_ok(const al__mask_text_t *t, size_t s)
{
    int c = AT((ptrdiff_t)s - 1);
    if (c < 0)
        return true;
    if (wordish(c) || c == '+')
        return false;
    return !(c == '.' && digh(AT((ptrdiff_t)s - 2)));
}

static bool num_right_ok(const al__mask_text_t *t, size_t e)
{
    int c = AT(e);
    if (c < 0)
        return true;
    if (wordish(c))
        return false;
    return !(c == '.' && digh(AT(e + 1)));
}

static size_t check_card(const al__mask_text_t *t, size_t to, al__mask_span_t *out,
                         size_t *skip_to)
{
    const uint8_t *p = t->p;
    if (to == 0 || !dig(p[to - 1]))
        return 0;
    size_t gs, ge;
    if (!digit_group(t, to - 1, 19, &gs, &ge)) {
        *skip_to = ge;
        return 0;
    }
    /* Every later match whose last digit is in this group sees the same
     * windows. */
    *skip_to = ge;
    card_grp_t g[9];
    size_t m = 0, gi = 0;
    card_grp_t left[4];
    size_t nl = 0;
    if (ge - gs <= 6) {
        size_t cur = gs;
        while (nl < 4 && cur >= 2 && (p[cur - 1] == ' ' || p[cur - 1] == '-') &&
               dig(p[cur - 2])) {
            size_t s2, e2;
            if (!digit_group(t, cur - 2, 6, &s2, &e2))
                break;
            left[nl].s = s2;
            left[nl].e = e2;
            left[nl].sep = 0;
            nl++;
            cur = s2;
        }
    }
    for (size_t i = nl; i-- > 0;)
        g[m++] = left[i];
    for (size_t i = 1; i < m; i++)
        g[i].sep = p[g[i].s - 1];
    gi = m;
    g[m].s = gs;
    g[m].e = ge;
    g[m].sep = m > 0 ? p[gs - 1] : 0;
    m++;
    if (ge - gs <= 6) {
        size_t cur = ge;
        while (m < 9 && cur + 1 < t->len && (p[cur] == ' ' || p[cur] == '-') &&
               dig(p[cur + 1])) {
            size_t s2, e2;
            if (!digit_group(t, cur + 1, 6, &s2, &e2))
                break;
            g[m].s = s2;
            g[m].e = e2;
            g[m].sep = p[cur];
            m++;
            cur = e2;
        }
    }
    size_t n = 0;
    for (size_t i = gi >= 4 ? gi - 4 : 0; i <= gi; i++) {
        for (size_t j = gi; j < m && j - i < 5; j++) {
            if (!card_layout(&g[i], j - i + 1))
                continue;
            if (!num_left_ok(t, g[i].s) || !num_right_ok(t, g[j].e))
                continue;
            uint8_t d[19];
            size_t nd = 0;
            for (size_t k = i; k <= j; k++)
                for (size_t q = g[k].s; q < g[k].e && nd < sizeof d; q++)
                    d[nd++] = p[q];
            /* An unbroken 13-digit run that is also a valid EAN-13 is taken
             * for a product code (German GS1 prefixes 400-440 look like
             * Visa-13); a card with that property is missed. */
            if (nd == 13 && i == j && al__mask_gtin13_ok(d))
                continue;
            if (al__mask_card_iin(d, nd) && al__mask_luhn(d, nd))
                n = push(out, n, g[i].s, g[j].e);
        }
    }
    return n;
}

/* ---- US social security numbers -------------------------------------------------- */

/* AAA-GG-SSSS or AAA GG SSSS (one separator kind), not part of a longer
 * dashed or dotted number. */
static size_t check_ssn(const al__mask_text_t *t, size_t to, al__mask_span_t *out,
                        size_t *skip_to)
{
    AL_UNUSED(skip_to);
    if (to < 11)
        return 0;
    size_t s = to - 11;
    const uint8_t *v = t->p + s;
    uint8_t sep = v[3];
    if ((sep != '-' && sep != ' ') || v[6] != sep)
        return 0;
    for (size_t i = 0; i < 11; i++)
        if (i != 3 && i != 6 && !dig(v[i]))
            return 0;
    int c = AT((ptrdiff_t)s - 1);
    if (wordish(c) || c == '+' ||
        ((c == '-' || c == '.' || c == sep) && digh(AT((ptrdiff_t)s - 2))))
        return 0;
    c = AT(to);
    if (wordish(c) || ((c == '-' || c == '.' || c == sep) && digh(AT(to + 1))))
        return 0;
    if (!al__mask_ssn_ok(v, v + 4, v + 7))
        return 0;
    return push(out, 0, s, to);
}

bool al__mask_ssn_whole(const uint8_t *s, size_t n)
{
    uint8_t d[9];
    size_t nd = 0;
    if (n == 9) {
        memcpy(d, s, 9);
        nd = 9;
    } else if (n == 11 && (s[3] == '-' || s[3] == ' ') && s[6] == s[3]) {
        memcpy(d, s, 3);
        memcpy(d + 3, s + 4, 2);
        memcpy(d + 5, s + 7, 4);
        nd = 9;
    }
    if (nd != 9)
        return false;
    for (size_t i = 0; i < 9; i++)
        if (!dig(d[i]))
            return false;
    return al__mask_ssn_ok(d, d + 3, d + 5);
}

/* ---- e-mail ---------------------------------------------------------------------------- */

/* The dot-atom subset people use (RFC 5322 §3.4.1 without quoted local
 * parts and the rarer atext symbols), at most 64 bytes (RFC 5321
 * §4.5.3.1.1), @, a host name of >= 2 labels (RFC 1035 §2.3.1: 1-63 bytes,
 * no leading or trailing '-'; <= 253 in all) ending in an alphabetic or
 * punycode TLD. */
static bool local_char(int c)
{
    return alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}
static bool label_char(int c) { return alnum(c) || c == '-'; }

static bool tld_ok(const uint8_t *s, size_t n)
{
    if (n >= 5 && strncasecmp((const char *)s, "xn--", 4) == 0)
        return true;
    if (n < 2)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!alpha(s[i]))
            return false;
    return true;
}

static size_t check_email(const al__mask_text_t *t, size_t to, al__mask_span_t *out,
                          size_t *skip_to)
{
    AL_UNUSED(skip_to);
    const uint8_t *p = t->p;
    if (to < 4 || p[to - 2] != '.')
        return 0;
    size_t dot = to - 2, a = dot;
    while (a > 0 && label_char(p[a - 1]) && dot - a < 63)
        a--;
    if (a == 0 || p[a - 1] != '@')
        return 0;
    size_t at_ = a - 1;
    size_t ls = at_;
    while (ls > 0 && local_char(p[ls - 1])) {
        if (at_ - ls >= 64)
            return 0;
        ls--;
    }
    if (AT((ptrdiff_t)ls - 1) == '#')
        return 0;
    while (ls < at_ && p[ls] == '.')
        ls++;
    if (ls == at_ || p[at_ - 1] == '.')
        return 0;
    /* "logo@2x.png": an image scale suffix (@2x, @3x), not a host. */
    if (dig(AT(at_ + 1)) && (AT(at_ + 2) | 0x20) == 'x' && AT(at_ + 3) == '.')
        return 0;
    size_t pos = at_ + 1, best = 0, labels = 0;
    for (;;) {
        size_t s = pos;
        while (pos < t->len && label_char(p[pos]) && pos - s < 64)
            pos++;
        size_t l = pos - s;
        if (l == 0 || l > 63 || p[s] == '-' || p[pos - 1] == '-')
            break;
        labels++;
        if (pos - (at_ + 1) > 253)
            break;
        if (labels >= 2 && tld_ok(p + s, l))
            best = pos;
        if (AT(pos) == '.' && label_char(AT(pos + 1))) {
            pos++;
            continue;
        }
        break;
    }
    if (!best)
        return 0;
    int c = AT(best);
    if (label_char(c) || c == '#')
        return 0;
    return push(out, 0, ls, best);
}

/* ---- phone numbers ---------------------------------------------------------------- */

/* Three shapes, each a run of digit groups joined by one ' ', '-' or '.'
 * (or a parenthesised group):
 *   E.164 (ITU-T E.164 §6): '+', country code, 8-15 digits in all, an
 *     optional "(0)" trunk prefix: +1 415 555 2671, +44 (0)20 7946 0958;
 *   NANP: [1] (NXX) NXX-XXXX with area and exchange starting 2-9:
 *     415-555-2671, (415) 555-2671, 1-800-555-0199;
 *   national trunk-prefixed: 10-11 digits, an area code of 2-5 starting
 *     with 0 then groups of 2-4, or one subscriber group of up to 8:
 *     020 7946 0958, 01 23 45 67 89, 01.23.45.67.89, (030) 1234 5678,
 *     030 12345678, 07700 900123.
 * Bare digit runs (timestamps, ids) never match without a '+'. A window may
 * start or end inside a longer run only at a space. */
typedef struct ph_grp {
    uint8_t len, first, sep;
    bool par;
} ph_grp_t;

static bool phone_layout(bool plus, const ph_grp_t *g, size_t ng, size_t digits)
{
    if (plus) {
        size_t dd = 0;
        if (g[0].par || g[0].first == '0')
            return false;
        for (size_t k = 0; k < ng; k++)
            if (!(k > 0 && g[k].par && g[k].len == 1 && g[k].first == '0'))
                dd += g[k].len;
        return dd >= 8 && dd <= 15;
    }
    size_t k0 = (ng == 4 && g[0].len == 1 && g[0].first == '1' && !g[0].par) ? 1 : 0;
    if (ng - k0 == 3 && g[k0].len == 3 && g[k0 + 1].len == 3 && g[k0 + 2].len == 4 &&
        !g[k0 + 1].par && !g[k0 + 2].par && g[k0].first >= '2' && g[k0 + 1].first >= '2' &&
        (g[k0 + 1].sep != 0 || g[k0].par) && g[k0 + 2].sep != 0)
        return true;
    if (g[0].first != '0' || ng < 2 || ng > 5 || digits < 10 || digits > 11 || g[0].len < 2 ||
        g[0].len > 5)
        return false;
    /* After the area code: one subscriber group of up to 8 digits
     * (030 12345678, 07700 900123, 06-12345678), or groups of 2-4. '.'
     * joins only the French pairs 0X.XX.XX.XX.XX. */
    bool pairs = ng == 5;
    for (size_t k = 0; k < ng; k++)
        pairs &= g[k].len == 2;
    size_t maxlen = ng == 2 ? 8 : 4;
    uint8_t sep = 0;
    for (size_t k = 1; k < ng; k++) {
        if (g[k].par || g[k].len < 2 || g[k].len > maxlen)
            return false;
        if (g[k].sep == 0) {
            if (!(k == 1 && g[0].par))
                return false;
        } else {
            if ((g[k].sep == '.' && !pairs) || (sep && g[k].sep != sep))
                return false;
            sep = g[k].sep;
        }
    }
    return true;
}

static bool phone_left_ok(const al__mask_text_t *t, size_t ws)
{
    int c = AT((ptrdiff_t)ws - 1);
    if (c < 0)
        return true;
    if (wordish(c) || c == '+')
        return false;
    return !((c == '-' || c == '.') && (digh(AT((ptrdiff_t)ws - 2)) || AT((ptrdiff_t)ws - 2) == ')'));
}

static bool phone_right_ok(const al__mask_text_t *t, size_t we)
{
    int c = AT(we);
    if (c < 0)
        return true;
    if (wordish(c))
        return false;
    return !((c == '-' || c == '.') && (digh(AT(we + 1)) || AT(we + 1) == '('));
}

/* Parses groups forward from ws; reports every valid window ending after d. */
static size_t phone_from(const al__mask_text_t *t, size_t ws, size_t d, al__mask_span_t *out,
                         size_t n)
{
    size_t pos = ws, digits = 0, ng = 0;
    bool plus = false;
    ph_grp_t g[8];
    uint8_t sep = 0;
    if (AT(pos) == '+') {
        plus = true;
        pos++;
    }
    while (ng < AL_ARRAY_LEN(g)) {
        bool par = false;
        if (AT(pos) == '(') {
            par = true;
            pos++;
        }
        size_t s = pos;
        while (dig(AT(pos)) && pos - s < 16)
            pos++;
        size_t l = pos - s;
        if (l == 0 || l >= 16)
            break;
        if (par) {
            if (AT(pos) != ')')
                break;
            pos++;
        }
        g[ng].len = (uint8_t)l;
        g[ng].first = t->p[s];
        g[ng].sep = sep;
        g[ng].par = par;
        ng++;
        digits += l;
        if (pos - ws > 30 || digits > 15)
            break;
        if (pos > d && phone_right_ok(t, pos) && phone_layout(plus, g, ng, digits))
            n = push(out, n, ws, pos);
        int c = AT(pos);
        if ((c == ' ' || c == '-' || c == '.') && (dig(AT(pos + 1)) || AT(pos + 1) == '(')) {
            sep = (uint8_t)c;
            pos++;
        } else if (par && (dig(c) || c == '(')) {
            sep = 0;
        } else {
            break;
        }
    }
    return n;
}

static size_t check_phone(const al__mask_text_t *t, size_t to, al__mask_span_t *out,
                          size_t *skip_to)
{
    AL_UNUSED(skip_to);
    if (to == 0 || !dig(t->p[to - 1]))
        return 0;
    size_t d = to - 1, n = 0;
    for (size_t ws = d > 26 ? d - 26 : 0; ws <= d; ws++) {
        int c = t->p[ws];
        if (c == '+' || c == '(') {
            if (!dig(AT(ws + 1)))
                continue;
        } else if (!dig(c) || dig(AT((ptrdiff_t)ws - 1))) {
            continue;
        }
        if (phone_left_ok(t, ws))
            n = phone_from(t, ws, d, out, n);
    }
    return n;
}

/* ---- IBAN ------------------------------------------------------------------------------ */

/* ISO 13616: country code, check digits, BBAN, in the electronic form
 * (no spaces) or the paper form (groups of four, one space). The length
 * must be the registered one for the country; mod-97 in validate.c.
 * Lowercase is not accepted. */
static bool iban_char(int c) { return upper(c) || dig(c); }

static size_t check_iban(const al__mask_text_t *t, size_t to, al__mask_span_t *out,
                         size_t *skip_to)
{
    AL_UNUSED(skip_to);
    const uint8_t *p = t->p;
    size_t n = 0;
    for (size_t back = 8; back <= 9 && back <= to; back++) {
        size_t vs = to - back;
        bool paper = back == 9;
        if (paper != (p[vs + 4] == ' '))
            continue;
        if (!upper(p[vs]) || !upper(p[vs + 1]) || !dig(p[vs + 2]) || !dig(p[vs + 3]))
            continue;
        if (wordish(AT((ptrdiff_t)vs - 1)))
            continue;
        size_t want = al__mask_iban_country_len(p + vs);
        if (!want)
            continue;
        uint8_t buf[34];
        size_t k = 0, pos = vs;
        while (k < want && iban_char(AT(pos))) {
            buf[k++] = p[pos++];
            if (paper && k % 4 == 0 && k < want) {
                if (AT(pos) != ' ' || !iban_char(AT(pos + 1)))
                    break;
                pos++;
            }
        }
        if (k != want || wordish(AT(pos)))
            continue;
        if (al__mask_iban_ok(buf, k))
            n = push(out, n, vs, pos);
    }
    return n;
}

/* ---- IP addresses ---------------------------------------------------------------------- */

/* IPv4: a run of digits and dots that is exactly a dotted quad (one
 * trailing sentence dot allowed), not touching a word: 999.1.1.1 and
 * version strings such as 1.2.3.4.5 are runs that are not quads. */
static bool v4char(int c) { return dig(c) || c == '.'; }

static size_t check_ipv4(const al__mask_text_t *t, size_t to, al__mask_span_t *out,
                         size_t *skip_to)
{
    const uint8_t *p = t->p;
    if (to == 0)
        return 0;
    size_t d = to - 1, rs = d, re = to;
    while (rs > 0 && v4char(p[rs - 1])) {
        if (d - rs >= 16)
            return 0;
        rs--;
    }
    while (re < t->len && v4char(p[re])) {
        if (re - rs >= 17) {
            *skip_to = re;
            return 0;
        }
        re++;
    }
    *skip_to = re;
    size_t ve = re;
    if (p[ve - 1] == '.') {
        ve--;
        if (AT(re) == '#')
            return 0;
    }
    if (p[rs] == '.' || wordish(AT((ptrdiff_t)rs - 1)) || wordish(AT(re)))
        return 0;
    if (!al__mask_ipv4_ok(p + rs, ve - rs))
        return 0;
    return push(out, 0, rs, ve);
}

/* IPv6: a run of hex digits, ':' and '.' (at most 46 bytes) that is a
 * valid RFC 4291 §2.2 text form once one trailing ':' or '.' is dropped,
 * not touching a word ("std::map" and "Foo::Bar" are not addresses; a
 * "%zone" suffix or "[...]:port" is left outside the value). */
static bool v6char(int c) { return hexd(c) || c == ':' || c == '.'; }

static size_t check_ipv6(const al__mask_text_t *t, size_t to, al__mask_span_t *out,
                         size_t *skip_to)
{
    const uint8_t *p = t->p;
    if (to == 0)
        return 0;
    size_t d = to - 1, rs = d, re = to;
    while (rs > 0 && v6char(p[rs - 1])) {
        if (d - rs >= 46)
            return 0;
        rs--;
    }
    while (re < t->len && v6char(p[re])) {
        if (re - rs >= 47) {
            *skip_to = re;
            return 0;
        }
        re++;
    }
    *skip_to = re;
    if (wordish(AT((ptrdiff_t)rs - 1)) || wordish(AT(re)))
        return 0;
    size_t vs = rs, ve = re;
    if (ve - vs >= 3 && p[ve - 1] == '.')
        ve--;
    else if (ve - vs >= 3 && p[ve - 1] == ':' && p[ve - 2] != ':')
        ve--;
    if (ve - vs >= 3 && p[vs] == ':' && p[vs + 1] != ':')
        vs++;
    if (!al__mask_ipv6_ok(p + vs, ve - vs))
        return 0;
    return push(out, 0, vs, ve);
}

/* ---- JWTs and bearer tokens ------------------------------------------------------------ */

/* RFC 7519 §3 / RFC 7515 §7.1 compact form: BASE64URL(header) '.' payload
 * '.' signature (empty for "alg":"none"), or the five parts of a JWE
 * (RFC 7516 §7.1). The header must be a JSON object naming "alg" (RFC 7515
 * §4.1.1, RFC 7516 §4.1.1): its encoding starts with "eyJ" ('{"'). */
static bool b64u(int c) { return alnum(c) || c == '-' || c == '_'; }

static int b64u_val(uint8_t c)
{
    if (upper(c))
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (dig(c))
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Decodes s[0..n) on the fly and looks for the bytes "alg" in quotes. */
static bool header_names_alg(const uint8_t *s, size_t n)
{
    static const uint8_t want[5] = {'"', 'a', 'l', 'g', '"'};
    uint8_t win[5] = {0};
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64u_val(s[i]);
        if (v < 0)
            return false;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            memmove(win, win + 1, 4);
            win[4] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
            if (memcmp(win, want, 5) == 0)
                return true;
        }
    }
    return false;
}

static size_t check_jwt(const al__mask_text_t *t, size_t to, al__mask_span_t *out,
                        size_t *skip_to)
{
    const uint8_t *p = t->p;
    if (to < 2 || p[to - 1] != '.')
        return 0;
    size_t dot1 = to - 1, vs = dot1;
    while (vs > 0 && b64u(p[vs - 1])) {
        if (dot1 - vs >= t->vmax)
            return 0;
        vs--;
    }
    if (dot1 - vs < 13 || memcmp(p + vs, "eyJ", 3) != 0)
        return 0;
    int c = AT((ptrdiff_t)vs - 1);
    if (b64u(c) || c == '.' || c == '#')
        return 0;
    /* The other parts follow (payload, signature; five parts for a JWE;
     * the signature is empty for "alg":"none"). A token longer than the
     * cap is cut there. */
    size_t pos = to, dots = 1;
    for (;;) {
        while (pos < t->len && b64u(p[pos]) && pos - vs < t->vmax)
            pos++;
        if (dots < 4 && pos - vs < t->vmax && AT(pos) == '.') {
            pos++;
            dots++;
            continue;
        }
        break;
    }
    if (dots < 2 && pos - vs < t->vmax)
        return 0;
    if (!header_names_alg(p + vs, dot1 - vs))
        return 0;
    skip_past(t, vs, pos, skip_to);
    return push(out, 0, vs, pos);
}

/* RFC 6750 §2.1: "Bearer" 1*SP b64token. The token must look like a
 * secret (length, classes, entropy), so prose such as "a bearer token
 * issued by ..." is left alone; the scheme name stays readable. */
static bool tok68(int c)
{
    return alnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

static size_t check_bearer(const al__mask_text_t *t, size_t to, al__mask_span_t *out,
                           size_t *skip_to)
{
    const uint8_t *p = t->p;
    if (to < 16 + 7)
        return 0;
    size_t vs = to - 16, w = vs, ws = 0;
    while (w > 0 && (p[w - 1] == ' ' || p[w - 1] == '\t') && ws < 4) {
        w--;
        ws++;
    }
    if (ws == 0 || w < 6 || strncasecmp((const char *)p + w - 6, "bearer", 6) != 0)
        return 0;
    if (wordish(AT((ptrdiff_t)w - 7)))
        return 0;
    size_t te = vs;
    while (te < t->len && tok68(p[te]) && te - vs < t->vmax)
        te++;
    while (te < t->len && p[te] == '=' && te - vs < t->vmax)
        te++;
    if (AT(te) == '#' || !al__mask_secret_value_ok(p + vs, te - vs))
        return 0;
    skip_past(t, vs, te, skip_to);
    return push(out, 0, vs, te);
}

/* ---- AWS keys ---------------------------------------------------------------------------- */

/* Access key ids: a 4-letter type prefix (AKIA long-term, ASIA temporary,
 * ...) and 16 upper-case alphanumerics, standing alone. */
static size_t check_aws_id(const al__mask_text_t *t, size_t to, al__mask_span_t *out,
                           size_t *skip_to)
{
    AL_UNUSED(skip_to);
    if (to < 20)
        return 0;
    size_t vs = to - 20;
    if (wordish(AT((ptrdiff_t)vs - 1)) || wordish(AT(to)))
        return 0;
    return push(out, 0, vs, to);
}

static bool aws_secret_char(int c) { return alnum(c) || c == '/' || c == '+'; }

bool al__mask_aws_secret_whole(const uint8_t *s, size_t n)
{
    if (n != 40)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!aws_secret_char(s[i]))
            return false;
    return al__mask_secret_value_ok(s, n);
}

/* Secret access keys have no marker of their own: 40 base64 characters
 * right after a name such as aws_secret_access_key / SecretAccessKey. */
static size_t check_aws_secret(const al__mask_text_t *t, size_t to, al__mask_span_t *out,
                               size_t *skip_to)
{
    const uint8_t *p = t->p;
    size_t vs = to;
    for (int k = 0; k < 4 && vs < t->len && (p[vs] == ' ' || p[vs] == '\t' || p[vs] == '"' ||
                                               p[vs] == '\'');
         k++)
        vs++;
    size_t ve = vs;
    while (ve < t->len && aws_secret_char(p[ve]) && ve - vs <= 40)
        ve++;
    int c = AT(ve);
    if (ve - vs != 40 || c == '=' || c == '#' || !al__mask_aws_secret_whole(p + vs, 40))
        return 0;
    *skip_to = ve;
    return push(out, 0, vs, ve);
}

/* ---- PEM private keys --------------------------------------------------------------------- */

/* RFC 7468 §2: "-----BEGIN <label>-----" ... "-----END <label>-----" for
 * labels ending in PRIVATE KEY (PKCS #8 §10, encrypted §11, and the legacy
 * RSA/EC/DSA/OPENSSH ones). The value runs to the END line; without one
 * (a truncated block) it runs over the base64 body as far as it goes, so
 * a partial key is masked too. Literal "\n" escapes count as body. */
static bool pem_char(int c)
{
    return alnum(c) || c == '+' || c == '/' || c == '=' || c == ' ' || c == '\t' || c == '\r' ||
           c == '\n' || c == ':' || c == ',' || c == '.' || c == '-' || c == '\\';
}

static bool pem_label_char(int c) { return upper(c) || dig(c) || c == ' '; }

static size_t check_pem(const al__mask_text_t *t, size_t to, al__mask_span_t *out,
                        size_t *skip_to)
{
    const uint8_t *p = t->p;
    if (to < 27)
        return 0;
    size_t k = to - 16, lim = k > 62 ? k - 62 : 0, vs = k;
    for (;;) {
        if (vs + 11 <= t->len && memcmp(p + vs, "-----BEGIN ", 11) == 0)
            break;
        if (vs == lim)
            return 0;
        vs--;
    }
    size_t cap = vs + t->vmax < t->len ? vs + t->vmax : t->len;
    size_t pos = to, ve = 0;
    while (pos < cap && pem_char(p[pos])) {
        if (p[pos] == '-' && pos + 9 <= cap && memcmp(p + pos, "-----END ", 9) == 0) {
            size_t q = pos + 9;
            while (q < cap && pem_label_char(p[q]) && q - pos < 60)
                q++;
            if (q - (pos + 9) >= 11 && q + 5 <= cap && memcmp(p + q - 11, "PRIVATE KEY", 11) == 0 &&
                memcmp(p + q, "-----", 5) == 0) {
                ve = q + 5;
                break;
            }
        }
        pos++;
    }
    if (!ve)
        ve = pos;
    skip_past(t, vs, ve, skip_to);
    return push(out, 0, vs, ve);
}

/* ---- generic API keys ---------------------------------------------------------------------- */

/* True when the match ending at `to` lies in an ARN ("arn:aws:secretsmanager:
 * eu-west-1:...": the name "secretsmanager" is a service, not a key). */
static bool arn_char(int c)
{
    return alnum(c) || c == ':' || c == '/' || c == '-' || c == '_' || c == '.';
}

static bool in_arn(const al__mask_text_t *t, size_t to)
{
    size_t i = to, lim = to > 128 ? to - 128 : 0;
    while (i > lim && arn_char(t->p[i - 1]))
        i--;
    return i + 4 <= t->len && memcmp(t->p + i, "arn:", 4) == 0;
}

/* A high-entropy value right after a key-like name and ':' '=' or '=>'
 * (JSON, YAML, env files, HTTP headers, query strings):
 *   "api_key": "sk_live_...", X-Api-Key: ..., PASSWORD=..., token=... .
 * The value must look like a secret (al__mask_secret_value_ok): a short or
 * low-entropy password is not found here (use a column rule). */
static size_t check_api(const al__mask_text_t *t, size_t to, al__mask_span_t *out,
                        size_t *skip_to)
{
    const uint8_t *p = t->p;
    if (in_arn(t, to))
        return 0;
    size_t vs = to;
    for (int k = 0; k < 4 && vs < t->len && (p[vs] == ' ' || p[vs] == '\t' || p[vs] == '"' ||
                                               p[vs] == '\'');
         k++)
        vs++;
    size_t ve = vs;
    while (ve < t->len && al__mask_is_value_char(p[ve]) && ve - vs < t->vmax)
        ve++;
    if (ve == vs || AT(ve) == '#' || !al__mask_secret_value_ok(p + vs, ve - vs))
        return 0;
    skip_past(t, vs, ve, skip_to);
    return push(out, 0, vs, ve);
}

/* ---- the table ------------------------------------------------------------------------------ */

#define API_NAMES                                                                              \
    "(?:api[_-]?key|api[_-]?secret|secret|token|passw(?:or)?d|pwd|access[_-]?key|auth[_-]?key|" \
    "private[_-]?key|credentials?|session[_-]?key)"
#define KV_SEP "[\"']?[ \\t]{0,4}(?:=>|[:=])[ \\t]{0,4}[\"']?"

/* Prefilters are chosen for speed; the validators search around the match,
 * so a prefilter only has to land somewhere inside every value it serves.
 * Hyperscan runs the literal-led ones; the ones led by a class (digits,
 * hex, letters) name a shape and are matched bit-parallel by prefilter.c
 * with the same results, because in Hyperscan each cost about a
 * nanosecond per byte of digit-dense text. (bench/mask measures the set.) */
#define IBAN_CC                                                                                \
    "(?:AD|AE|AL|AT|AZ|BA|BE|BG|BH|BR|BY|CH|CR|CY|CZ|DE|DK|DO|EE|EG|ES|FI|FO|FR|GB|GE|GI|GL|"    \
    "GR|GT|HR|HU|IE|IL|IQ|IS|IT|JO|KW|KZ|LB|LC|LI|LT|LU|LV|MC|MD|ME|MK|MR|MT|MU|NL|NO|PK|PL|"    \
    "PS|PT|QA|RO|RS|SA|SC|SE|SI|SK|SM|ST|SV|TL|TN|TR|UA|VA|VG|XK)"

const al__mask_pattern_t al__mask_patterns[] = {
    /* 13 digits in a row, or the start of a 4-4-4-x or 4-6-x layout */
    {AL_MASK_DET_CREDIT_CARD, "\\d{13}|\\d{4}[ -]\\d{4}[ -]\\d{4}[ -]\\d|\\d{4}[ -]\\d{6}[ -]\\d{4}", 0,
     check_card, AL__MASK_SHAPE_CARD},
    {AL_MASK_DET_US_SSN, "\\d{3}[ -]\\d{2}[ -]\\d{4}", 0, check_ssn, AL__MASK_SHAPE_SSN},
    {AL_MASK_DET_EMAIL, "[A-Za-z0-9._%+-]@[A-Za-z0-9-]{1,63}\\.[A-Za-z]", 0, check_email,
     AL__MASK_SHAPE_NONE, AL__MASK_DB_EMAIL},
    /* E.164; NANP (3-3-4 or ")" 3-4); trunk-prefixed national (a 4-4
     * tail, French pairs, or a 3-digit area code and 7 digits) */
    {AL_MASK_DET_PHONE, "\\+[1-9]\\d{0,3}[ .(-]{0,2}\\d", 0, check_phone},
    {AL_MASK_DET_PHONE, "\\d{3}[ .-]\\d{3}[ .-]\\d{4}|\\)[ ]?\\d{3}[ .-]\\d{4}", 0, check_phone,
     AL__MASK_SHAPE_NANP},
    {AL_MASK_DET_PHONE, "\\d{4}[ -]?\\d{4}", 0, check_phone, AL__MASK_SHAPE_PHONE44},
    {AL_MASK_DET_PHONE, "0\\d(?:[ .-]\\d\\d){4}|0\\d\\d[ -]\\d{7}", 0, check_phone,
     AL__MASK_SHAPE_NATIONAL},
    {AL_MASK_DET_IBAN, IBAN_CC "\\d{2} ?[A-Z0-9]{4}", 0, check_iban, AL__MASK_SHAPE_IBAN},
    {AL_MASK_DET_IP_ADDRESS, "\\d\\.\\d{1,3}\\.\\d{1,3}\\.\\d", 0, check_ipv4, AL__MASK_SHAPE_IPV4},
    {AL_MASK_DET_IP_ADDRESS, "[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){7}", 0, check_ipv6,
     AL__MASK_SHAPE_IPV6_FULL},
    {AL_MASK_DET_IP_ADDRESS, "[0-9A-Fa-f]::|::[0-9A-Fa-f]", 0, check_ipv6},
    {AL_MASK_DET_JWT, "eyJ[A-Za-z0-9_-]{10,}\\.", 0, check_jwt},
    {AL_MASK_DET_JWT, "bearer[ \\t]{1,4}[A-Za-z0-9._~+/-]{16}", HS_FLAG_CASELESS, check_bearer,
     AL__MASK_SHAPE_NONE, AL__MASK_DB_NAMES},
    {AL_MASK_DET_AWS_KEY,
     "(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|APKA|AROA|ASCA)[A-Z0-9]{16}", 0,
     check_aws_id},
    {AL_MASK_DET_AWS_KEY, "(?:aws[_-]?)?secret[_-]?(?:access[_-]?)?key" KV_SEP, HS_FLAG_CASELESS,
     check_aws_secret, AL__MASK_SHAPE_NONE, AL__MASK_DB_NAMES},
    {AL_MASK_DET_PRIVATE_KEY, "-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----", 0, check_pem},
    {AL_MASK_DET_API_KEY, API_NAMES "[a-z0-9_-]{0,24}" KV_SEP, HS_FLAG_CASELESS, check_api,
     AL__MASK_SHAPE_NONE, AL__MASK_DB_NAMES},
};
const size_t al__mask_n_patterns = AL_ARRAY_LEN(al__mask_patterns);

/* ---- column names ------------------------------------------------------------------------------ */

static bool ends_with(const char *s, size_t n, const char *suf)
{
    size_t m = strlen(suf);
    return n >= m && memcmp(s + n - m, suf, m) == 0;
}

/* Column names are compared as their lowercase alphanumerics ("AWS_Secret
 * Access-Key" -> "awssecretaccesskey"); "ssn" must be the last word so
 * "classname" is not an SSN column. */
al__mask_colkind_t al__mask_column_kind(al_str_t column)
{
    char j[128];
    size_t n = 0, last_word = 0;
    bool prev_alnum = false, prev_lower = false;
    for (size_t i = 0; i < column.len && n < sizeof j; i++) {
        int c = (unsigned char)column.p[i];
        if (!alnum(c)) {
            prev_alnum = false;
            continue;
        }
        bool up = upper(c);
        if (!prev_alnum || (up && prev_lower))
            last_word = n;
        prev_alnum = true;
        prev_lower = !up && !dig(c);
        j[n++] = (char)(up ? c + 32 : c);
    }
    if (n == 0 || n == sizeof j)
        return AL__MASK_COL_NONE;
    if ((n - last_word == 3 && ends_with(j, n, "ssn")) || ends_with(j, n, "socialsecuritynumber") ||
        ends_with(j, n, "socialsecurityno") || ends_with(j, n, "socialsecurity"))
        return AL__MASK_COL_SSN;
    if (ends_with(j, n, "secretaccesskey") || ends_with(j, n, "awssecretkey"))
        return AL__MASK_COL_AWS_SECRET;
    static const char *const pw[] = {"password", "passwd", "pwd", "passphrase"};
    for (size_t i = 0; i < AL_ARRAY_LEN(pw); i++)
        if (ends_with(j, n, pw[i]))
            return AL__MASK_COL_PASSWORD;
    static const char *const sec[] = {"apikey",   "apisecret",  "secret",      "secretkey",
                                      "token",    "privatekey", "accesskey",   "authkey",
                                      "sessionkey", "credential", "credentials", "clientsecret"};
    for (size_t i = 0; i < AL_ARRAY_LEN(sec); i++)
        if (ends_with(j, n, sec[i]))
            return AL__MASK_COL_SECRET;
    return AL__MASK_COL_NONE;
}

static int lower(int c) { return upper(c) ? c + 32 : c; }

bool al__mask_glob(const char *pat, al_str_t s)
{
    size_t pi = 0, si = 0, star_p = SIZE_MAX, star_s = 0;
    size_t pn = strlen(pat);
    while (si < s.len) {
        if (pi < pn && pat[pi] == '*') {
            star_p = ++pi;
            star_s = si;
            continue;
        }
        if (pi < pn && (pat[pi] == '?' || lower((unsigned char)pat[pi]) ==
                                              lower((unsigned char)s.p[si]))) {
            pi++;
            si++;
            continue;
        }
        if (star_p == SIZE_MAX)
            return false;
        pi = star_p;
        si = ++star_s;
    }
    while (pi < pn && pat[pi] == '*')
        pi++;
    return pi == pn;
}
