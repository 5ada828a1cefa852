/* body.c - masking an HTTP body by its media type: JSON (inside string
 * tokens, escape-aware, output stays valid JSON), form-urlencoded (decoded
 * values, re-encoded), text; anything else passes through.
 *
 * Output is written lazily: nothing is appended to `out` until the first
 * edit, so a body with nothing to mask returns AL_MASK_OK untouched. */
#include <strings.h>

#include "mask/mask_int.h"

typedef enum body_kind {
    BODY_PASS = 0,
    BODY_TEXT,
    BODY_JSON,
    BODY_FORM,
} body_kind_t;

/* RFC 9110 §8.3.1: type "/" subtype *( OWS ";" OWS parameter ), case-
 * insensitive; RFC 6839 §3.1 for the +json suffix. */
static body_kind_t body_kind(al_str_t ct)
{
    size_t i = 0, n = ct.p ? ct.len : 0;
    while (i < n && (ct.p[i] == ' ' || ct.p[i] == '\t'))
        i++;
    size_t s = i;
    while (i < n && ct.p[i] != ';' && ct.p[i] != ' ' && ct.p[i] != '\t')
        i++;
    const char *m = ct.p + s;
    size_t ml = i - s;
    if (ml == 0)
        return BODY_TEXT;
    if (ml == 16 && strncasecmp(m, "application/json", 16) == 0)
        return BODY_JSON;
    if (ml > 17 && strncasecmp(m, "application/", 12) == 0 &&
        strncasecmp(m + ml - 5, "+json", 5) == 0)
        return BODY_JSON;
    if (ml == 33 && strncasecmp(m, "application/x-www-form-urlencoded", 33) == 0)
        return BODY_FORM;
    if (ml > 5 && strncasecmp(m, "text/", 5) == 0)
        return BODY_TEXT;
    return BODY_PASS;
}

/* Lazy output: raw bytes up to `done` are accounted for. */
typedef struct lazy {
    const uint8_t *raw;
    size_t done;
    bool started;
    al_buf_t *out;
} lazy_t;

/* Copies raw[done..upto) and positions after a replaced region. */
static bool lazy_to(lazy_t *z, size_t upto)
{
    z->started = true;
    bool ok = al_buf_append(z->out, z->raw + z->done, upto - z->done) == AL_OK;
    z->done = upto;
    return ok;
}

/* ---- JSON -------------------------------------------------------------------------- */

static int hexv(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
        return (c | 0x20) - 'a' + 10;
    return -1;
}

static int hex4(const uint8_t *p, size_t avail)
{
    if (avail < 4)
        return -1;
    int v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexv(p[k]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

/* Bytes that end a run of plain string content: '"', '\\', controls. */
static const bool str_special[256] = {
    [0x00] = 1, [0x01] = 1, [0x02] = 1, [0x03] = 1, [0x04] = 1, [0x05] = 1, [0x06] = 1,
    [0x07] = 1, [0x08] = 1, [0x09] = 1, [0x0a] = 1, [0x0b] = 1, [0x0c] = 1, [0x0d] = 1,
    [0x0e] = 1, [0x0f] = 1, [0x10] = 1, [0x11] = 1, [0x12] = 1, [0x13] = 1, [0x14] = 1,
    [0x15] = 1, [0x16] = 1, [0x17] = 1, [0x18] = 1, [0x19] = 1, [0x1a] = 1, [0x1b] = 1,
    [0x1c] = 1, [0x1d] = 1, [0x1e] = 1, [0x1f] = 1, ['"'] = 1,  ['\\'] = 1,
};

typedef enum jtok {
    JT_END = 0,
    JT_STRING,
    JT_NUMBER,
    JT_BAD, /* a byte that cannot appear outside a JSON string */
} jtok_t;

/* Next string or number token at or after *i; structural bytes, whitespace
 * and literals are skipped. For a string, [*s, *e) is its content and
 * *esc whether it holds a backslash. RFC 8259 §2, §6, §7. */
static jtok_t json_next(const uint8_t *p, size_t len, size_t *i, size_t *s, size_t *e, bool *esc)
{
    while (*i < len) {
        uint8_t c = p[*i];
        switch (c) {
        case ' ': case '\t': case '\r': case '\n': case '{': case '}': case '[': case ']':
        case ',': case ':':
            (*i)++;
            continue;
        case '"': {
            size_t j = *i + 1;
            bool b = false;
            for (;;) {
                while (j < len && !str_special[p[j]])
                    j++;
                if (j >= len || p[j] == '"')
                    break;
                if (p[j] < 0x20)
                    return JT_BAD;
                b = true; /* a backslash */
                if (j + 1 >= len)
                    return JT_BAD;
                switch (p[j + 1]) {
                case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                    break;
                case 'u':
                    if (hex4(p + j + 2, len - j - 2) < 0)
                        return JT_BAD;
                    break;
                default:
                    return JT_BAD;
                }
                j += 2;
            }
            if (j >= len)
                return JT_BAD;
            *s = *i + 1;
            *e = j;
            *esc = b;
            *i = j + 1;
            return JT_STRING;
        }
        case 't':
        case 'f':
        case 'n': {
            static const char *const lit[] = {"true", "false", "null"};
            const char *l = lit[c == 't' ? 0 : c == 'f' ? 1 : 2];
            size_t ll = strlen(l);
            if (len - *i < ll || memcmp(p + *i, l, ll) != 0)
                return JT_BAD;
            *i += ll;
            continue;
        }
        default:
            if (c == '-' || (c >= '0' && c <= '9')) {
                size_t j = *i;
                while (j < len && ((p[j] >= '0' && p[j] <= '9') || p[j] == '-' || p[j] == '+' ||
                                   p[j] == '.' || p[j] == 'e' || p[j] == 'E'))
                    j++;
                *s = *i;
                *e = j;
                *i = j;
                return JT_NUMBER;
            }
            return JT_BAD;
        }
    }
    return JT_END;
}

static size_t utf8_put(uint8_t *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (uint8_t)(0xc0 | (cp >> 6));
        o[1] = (uint8_t)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xe0 | (cp >> 12));
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (uint8_t)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (uint8_t)(0xf0 | (cp >> 18));
    o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (uint8_t)(0x80 | (cp & 0x3f));
    return 4;
}

/* Decodes the string content p[s..e) (RFC 8259 §7) appending the bytes to
 * dec and, per decoded byte, the raw offset of the escape or byte it came
 * from to map (either may be NULL). A lone surrogate decodes to U+FFFD.
 * False on a bad escape or a failed append. */
static bool json_decode(const uint8_t *p, size_t s, size_t e, al_buf_t *dec, al_buf_t *map)
{
    size_t i = s;
    while (i < e) {
        uint8_t o[4];
        size_t on = 0, from = i;
        if (p[i] != '\\') {
            size_t r = i;
            while (r < e && p[r] != '\\')
                r++;
            if (dec && al_buf_append(dec, p + i, r - i) != AL_OK)
                return false;
            for (; map && i < r; i++)
                if (al_buf_append(map, &i, sizeof i) != AL_OK)
                    return false;
            i = r;
            continue;
        }
        {
            if (i + 1 >= e)
                return false;
            uint8_t c = p[i + 1];
            i += 2;
            switch (c) {
            case '"': case '\\': case '/': o[0] = c; on = 1; break;
            case 'b': o[0] = '\b'; on = 1; break;
            case 'f': o[0] = '\f'; on = 1; break;
            case 'n': o[0] = '\n'; on = 1; break;
            case 'r': o[0] = '\r'; on = 1; break;
            case 't': o[0] = '\t'; on = 1; break;
            case 'u': {
                int u = hex4(p + i, e - i);
                if (u < 0)
                    return false;
                i += 4;
                uint32_t cp = (uint32_t)u;
                if (cp >= 0xd800 && cp <= 0xdbff && e - i >= 6 && p[i] == '\\' && p[i + 1] == 'u') {
                    int lo = hex4(p + i + 2, e - i - 2);
                    if (lo >= 0xdc00 && lo <= 0xdfff) {
                        cp = 0x10000 + ((cp - 0xd800) << 10) + ((uint32_t)lo - 0xdc00);
                        i += 6;
                    }
                }
                if (cp >= 0xd800 && cp <= 0xdfff)
                    cp = 0xfffd;
                on = utf8_put(o, cp);
                break;
            }
            default:
                return false;
            }
        }
        if (dec && al_buf_append(dec, o, on) != AL_OK)
            return false;
        for (size_t k = 0; map && k < on; k++)
            if (al_buf_append(map, &from, sizeof from) != AL_OK)
                return false;
    }
    return true;
}

/* Appends v[0..n) as JSON string content (no quotes). */
static bool json_escape(al_buf_t *out, const uint8_t *v, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = v[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f)
            continue;
        if (al_buf_append(out, v + run, i - run) != AL_OK)
            return false;
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        if (c == '"' || c == '\\') {
            esc[1] = (char)c;
            if (al_buf_append(out, esc, 2) != AL_OK)
                return false;
        } else if (al_buf_append(out, esc, 6) != AL_OK) {
            return false;
        }
        run = i + 1;
    }
    return al_buf_append(out, v + run, n - run) == AL_OK;
}

/* An escaped string: where its decoded content sits in the document. */
typedef struct jseg {
    size_t doc_s, doc_e; /* decoded content in the document */
    size_t raw_s, raw_e; /* its raw (escaped) content in the body */
} jseg_t;

/* Writes the pieces falling in the document range [ds, de) of one token
 * over the raw bytes. Unescaped tokens map by a shift (raw = doc + shift);
 * an escaped string maps through m (raw offset per decoded byte), with
 * each piece widened to whole escapes and whole UTF-8 sequences and its
 * styled form escaped back into JSON. */
typedef struct jtoken {
    size_t ds, de;      /* document range */
    size_t rs, re;      /* raw range */
    const size_t *m;    /* NULL: raw = doc - ds + rs */
    const uint8_t *doc; /* document bytes */
} jtoken_t;

static al_mask_rc_t json_apply(const al_mask_engine_t *e, lazy_t *z, const al_mask_match_t *pc,
                               size_t np, size_t *k, const jtoken_t *t, al_buf_t *val,
                               al_mask_stats_t *stats)
{
    while (*k < np && pc[*k].end <= t->ds)
        (*k)++;
    for (size_t j = *k; j < np && pc[j].start < t->de; j++) {
        size_t a = AL_MAX(pc[j].start, t->ds) - t->ds, b = AL_MIN(pc[j].end, t->de) - t->ds;
        size_t n = t->de - t->ds, ra, rb;
        const uint8_t *d = t->doc + t->ds;
        al_buf_reset(val);
        if (!t->m) {
            ra = t->rs + a;
            rb = t->rs + b;
            if (ra < z->done)
                continue;
            al_mask_rc_t rc = al__mask_apply_style(e, e->rules[pc[j].rule].style, d + a, b - a, val);
            if (rc < 0)
                return rc;
            if (!lazy_to(z, ra) || al_buf_append(z->out, val->p, val->len) != AL_OK)
                return AL_MASK_E_NOMEM;
        } else {
            const size_t *m = t->m;
            while (a > 0 && (m[a - 1] == m[a] || (d[a] & 0xc0) == 0x80))
                a--;
            while (b < n && (m[b] == m[b - 1] || (d[b] & 0xc0) == 0x80))
                b++;
            while (a < b && m[a] < z->done)
                a++; /* widened into a piece already written */
            if (a >= b)
                continue;
            ra = m[a];
            rb = b < n ? m[b] : t->re;
            al_mask_rc_t rc = al__mask_apply_style(e, e->rules[pc[j].rule].style, d + a, b - a, val);
            if (rc < 0)
                return rc;
            if (!lazy_to(z, ra) || !json_escape(z->out, (const uint8_t *)val->p, val->len))
                return AL_MASK_E_NOMEM;
        }
        z->done = rb;
        al__mask_count(stats, &pc[j], 1);
    }
    return AL_MASK_OK;
}

/* The document a JSON body is scanned as: the body itself, or, when it
 * holds escaped strings, the body with each escaped string's content
 * decoded in place, so a value written with escapes (bob\u0040example.com,
 * a PEM with \n, JSON inside a JSON string) is seen as the client will
 * see it, with its key still in front of it. One pass checks the body is
 * JSON-shaped and builds the document; segs gets a jseg_t per escaped
 * string. */
static al_mask_rc_t mask_json(const al_mask_engine_t *e, al_mask_scratch_t *s, const uint8_t *p,
                              size_t len, al_buf_t *out, al_mask_stats_t *stats, bool *not_json)
{
    size_t i = 0, ts, te, done = 0;
    bool esc, any_esc = false;
    jtok_t k;
    al_buf_t *docb = &s->doc, *segb = &s->segs;
    al_buf_reset(docb);
    al_buf_reset(segb);
    while ((k = json_next(p, len, &i, &ts, &te, &esc)) != JT_END) {
        if (k == JT_BAD) {
            *not_json = true;
            return AL_MASK_OK;
        }
        if (k != JT_STRING || !esc)
            continue;
        any_esc = true;
        if (al_buf_append(docb, p + done, ts - done) != AL_OK)
            return AL_MASK_E_NOMEM;
        jseg_t g = {docb->len, 0, ts, te};
        if (!json_decode(p, ts, te, docb, NULL))
            return AL_MASK_E_NOMEM; /* escapes were checked by json_next */
        g.doc_e = docb->len;
        if (al_buf_append(segb, &g, sizeof g) != AL_OK)
            return AL_MASK_E_NOMEM;
        done = te;
    }
    if (stats)
        stats->bytes += len;
    const uint8_t *doc = p;
    size_t doc_len = len;
    al_mask_rc_t rc;
    if (any_esc) {
        if (al_buf_append(docb, p + done, len - done) != AL_OK)
            return AL_MASK_E_NOMEM;
        doc = (const uint8_t *)docb->p;
        doc_len = docb->len;
    }
    rc = al__mask_scan(e, s, doc, doc_len, &s->hits, stats);
    if (rc < 0 || s->hits.n == 0)
        return rc;
    size_t cov = 0;
    al__mask_resolve(&s->hits, 0, SIZE_MAX, &cov);
    const al_mask_match_t *pc = s->hits.v;
    const jseg_t *segs = any_esc ? (const jseg_t *)(const void *)s->segs.p : NULL;
    size_t np = s->hits.n, kk = 0, ns = any_esc ? s->segs.len / sizeof(jseg_t) : 0, si = 0;
    /* raw - doc for the bytes after the escaped strings seen so far */
    size_t shift_raw = 0, shift_doc = 0;
    lazy_t z = {p, 0, false, out};
    al_buf_t *val = &s->val;
    i = 0;
    while (rc >= 0 && kk < np && (k = json_next(p, len, &i, &ts, &te, &esc)) != JT_END) {
        jtoken_t t = {ts - shift_raw + shift_doc, te - shift_raw + shift_doc, ts, te, NULL, doc};
        if (k == JT_STRING && esc) {
            if (si >= ns) {
                rc = AL_MASK_E_INVALID; /* the two passes disagree: fail closed */
                break;
            }
            const jseg_t *g = &segs[si++];
            t.ds = g->doc_s;
            t.de = g->doc_e;
            shift_raw += (g->raw_e - g->raw_s);
            shift_doc += (g->doc_e - g->doc_s);
            while (kk < np && pc[kk].end <= t.ds)
                kk++;
            if (kk >= np || pc[kk].start >= t.de)
                continue;
            al_buf_t *map = &s->map;
            al_buf_reset(map);
            if (!json_decode(p, ts, te, NULL, map))
                rc = AL_MASK_E_NOMEM;
            t.m = (const size_t *)(const void *)map->p;
            if (rc >= 0)
                rc = json_apply(e, &z, pc, np, &kk, &t, val, stats);
        } else if (k == JT_STRING) {
            rc = json_apply(e, &z, pc, np, &kk, &t, val, stats);
        } else {
            while (kk < np && pc[kk].end <= t.ds)
                kk++;
            if (kk < np && pc[kk].start < t.de) {
                /* A number holding a value becomes a string of its masked
                 * form: still valid JSON, no digits left. */
                if (!lazy_to(&z, ts) || al_buf_append(out, "\"", 1) != AL_OK)
                    rc = AL_MASK_E_NOMEM;
                else
                    rc = json_apply(e, &z, pc, np, &kk, &t, val, stats);
                if (rc >= 0 && (!lazy_to(&z, te) || al_buf_append(out, "\"", 1) != AL_OK))
                    rc = AL_MASK_E_NOMEM;
            }
        }
    }
    if (rc < 0)
        return rc;
    if (!z.started)
        return AL_MASK_OK;
    return lazy_to(&z, len) ? AL_MASK_MASKED : AL_MASK_E_NOMEM;
}

/* ---- application/x-www-form-urlencoded --------------------------------------------- */

/* WHATWG URL §5.1: '+' is a space, %XX a byte, a bad % stays literal.
 * Appends to dec when non-NULL; returns the decoded length. */
static size_t form_decode(const uint8_t *p, size_t n, al_buf_t *dec)
{
    size_t out = 0;
    for (size_t i = 0; i < n; i++, out++) {
        uint8_t c = p[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%' && i + 2 < n && hexv(p[i + 1]) >= 0 && hexv(p[i + 2]) >= 0) {
            c = (uint8_t)(hexv(p[i + 1]) * 16 + hexv(p[i + 2]));
            i += 2;
        }
        if (dec)
            al_buf_append(dec, &c, 1);
    }
    return out;
}

/* WHATWG URL §5.2 serializer: [*-._0-9A-Za-z] as is, space as '+', the
 * rest %XX. */
static bool form_encode(al_buf_t *out, const uint8_t *v, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        uint8_t c = v[i];
        bool plain = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                     c == '*' || c == '-' || c == '.' || c == '_';
        char b[3] = {'%', hex[c >> 4], hex[c & 15]};
        if (plain)
            b[0] = (char)c;
        else if (c == ' ')
            b[0] = '+';
        if (al_buf_append(out, b, plain || c == ' ' ? 1 : 3) != AL_OK)
            return false;
    }
    return true;
}

/* One name=value pair of the raw body starting at i. */
static void form_pair(const uint8_t *p, size_t len, size_t i, size_t *ne, size_t *vs, size_t *ve)
{
    size_t j = i;
    while (j < len && p[j] != '&' && p[j] != '=')
        j++;
    *ne = j;
    if (j < len && p[j] == '=')
        j++;
    *vs = j;
    while (j < len && p[j] != '&')
        j++;
    *ve = j;
}

static al_mask_rc_t mask_form(const al_mask_engine_t *e, al_mask_scratch_t *s, const uint8_t *p,
                              size_t len, al_buf_t *out, al_mask_stats_t *stats)
{
    /* The decoded document: name=value& ... so a value keeps its name as
     * context. */
    al_buf_t *doc = &s->doc;
    al_buf_reset(doc);
    for (size_t i = 0; i <= len;) {
        size_t ne, vs, ve;
        form_pair(p, len, i, &ne, &vs, &ve);
        form_decode(p + i, ne - i, doc);
        al_buf_append(doc, "=", 1);
        form_decode(p + vs, ve - vs, doc);
        al_buf_append(doc, "&", 1);
        i = ve + 1;
    }
    if (doc->oom)
        return AL_MASK_E_NOMEM;
    if (stats)
        stats->bytes += len;
    const uint8_t *d = (const uint8_t *)doc->p;
    al_mask_rc_t rc = al__mask_scan(e, s, d, doc->len, &s->hits2, stats);
    if (rc < 0 || s->hits2.n == 0)
        return rc;
    size_t cov = 0;
    al__mask_resolve(&s->hits2, 0, SIZE_MAX, &cov);
    const al_mask_match_t *pc = s->hits2.v;
    size_t np = s->hits2.n, k = 0, dpos = 0;
    lazy_t z = {p, 0, false, out};
    al_buf_t *val = &s->val;
    for (size_t i = 0; i <= len && rc >= 0;) {
        size_t ne, vs, ve;
        form_pair(p, len, i, &ne, &vs, &ve);
        size_t dvs = dpos + form_decode(p + i, ne - i, NULL) + 1;
        size_t dve = dvs + form_decode(p + vs, ve - vs, NULL);
        dpos = dve + 1;
        i = ve + 1;
        while (k < np && pc[k].end <= dvs)
            k++;
        if (k >= np || pc[k].start >= dve)
            continue;
        /* Rebuild the decoded value with its pieces masked, re-encode it. */
        al_buf_reset(val);
        size_t pos = dvs;
        for (; k < np && pc[k].start < dve && rc >= 0; k++) {
            size_t a = AL_MAX(pc[k].start, dvs), b = AL_MIN(pc[k].end, dve);
            if (al_buf_append(val, d + pos, a - pos) != AL_OK)
                rc = AL_MASK_E_NOMEM;
            else
                rc = al__mask_apply_style(e, e->rules[pc[k].rule].style, d + a, b - a, val);
            al__mask_count(stats, &pc[k], 1);
            pos = b;
            if (pc[k].end > dve)
                break; /* continues into the next pair's bytes: keep it */
        }
        if (rc < 0)
            break;
        if (al_buf_append(val, d + pos, dve - pos) != AL_OK || !lazy_to(&z, vs) ||
            !form_encode(out, (const uint8_t *)val->p, val->len))
            rc = AL_MASK_E_NOMEM;
        z.done = ve;
    }
    if (rc < 0)
        return rc;
    if (!z.started)
        return AL_MASK_OK;
    return lazy_to(&z, len) ? AL_MASK_MASKED : AL_MASK_E_NOMEM;
}

/* ---- entry point ---------------------------------------------------------------------- */

bool al_mask_http_maskable(al_str_t content_type)
{
    return body_kind(content_type) != BODY_PASS;
}

al_mask_rc_t al_mask_http_body(const al_mask_engine_t *e, al_mask_scratch_t *s,
                               al_str_t content_type, const char *body, size_t len,
                               al_buf_t *out, al_mask_stats_t *stats)
{
    if (!e || !s || (!body && len) || !out)
        return AL_MASK_E_INVALID;
    body_kind_t kind = body_kind(content_type);
    if (kind == BODY_PASS)
        return AL_MASK_OK;
    al_mask_rc_t rc = al__mask_scratch_enter(e, s);
    if (rc < 0)
        return rc;
    const uint8_t *p = (const uint8_t *)body;
    size_t mark = out->len;
    bool not_json = false;
    if (kind == BODY_JSON)
        rc = mask_json(e, s, p, len, out, stats, &not_json);
    else if (kind == BODY_FORM)
        rc = mask_form(e, s, p, len, out, stats);
    if (kind == BODY_TEXT || not_json) {
        /* Not JSON after all: every byte may be data, mask it as text. */
        if (stats)
            stats->bytes += len;
        rc = al__mask_scan(e, s, p, len, &s->hits, stats);
        if (rc == AL_MASK_OK && s->hits.n) {
            size_t cov = 0;
            al__mask_resolve(&s->hits, 0, SIZE_MAX, &cov);
            rc = al__mask_emit(e, p, 0, len, s->hits.v, s->hits.n, out, stats);
        }
    }
    if (rc < 0 && out->p && out->len > mark) {
        out->len = mark;
        out->p[mark] = '\0';
    }
    al__mask_scratch_leave(s);
    return rc;
}
