/*
 * sql_shape.c - the shape key of a statement: its text with every literal
 * constant replaced by one byte naming the constant's kind, so that
 * `... WHERE aid = 4711` and `... WHERE aid = 4712` share one key.
 *
 * The lexical rules are PostgreSQL 15's (documentation §4.1 "Lexical
 * Structure", as implemented by the server's scan.l): white space, `--` and
 * nested block comments, string constants (§4.1.2.1 '' doubling, §4.1.2.2
 * continuation across a newline, §4.1.2.2 E'' escapes, §4.1.2.3 U&'',
 * §4.1.2.4 dollar quoting, §4.1.2.5 B'' and X''), quoted identifiers
 * (§4.1.1, kept), numeric constants (§4.1.2.6) and positional parameters
 * (§4.1.3, kept). Everything that is not a literal is copied byte for byte,
 * white space and comments included, so the statement boundaries the parser
 * reports lie at the same offsets in the key as in the text.
 *
 * The kind byte keeps apart what the grammar keeps apart: an integer that
 * fits in 32 bits (ICONST) from other numbers (FCONST), strings from bit and
 * hex strings. Where the grammar looks at an integer's value (FLOAT(p)
 * rejects p outside 1..53, ALTER [COLUMN] n SET STATISTICS rejects n
 * outside 1..32767), the integer is kept as written.
 *
 * Whatever the lexer could read differently from the server, or where a
 * literal's bytes could make the server's lexer fail, gets no key: the
 * caller then classifies the text itself.
 */
#include <limits.h>

#include "policy/sql_classify.h"

typedef struct shp {
    const unsigned char *s;
    size_t n;
    char *out;
    size_t o, copied, n_lits;
    const char *why;
    bool last_float;  /* the last token was the keyword FLOAT */
    bool float_paren; /* the last two tokens were FLOAT ( */
    bool last_alter;  /* the last token was ALTER or COLUMN */
} shp_t;

/* scan.l: space [ \t\n\r\f]; newline [\n\r] */
static bool is_space(unsigned char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f';
}

static bool is_digit(unsigned char ch) { return ch >= '0' && ch <= '9'; }

/* scan.l: ident_start [A-Za-z\200-\377_]; ident_cont adds [0-9\$] */
static bool ident_start(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || ch >= 0x80;
}

static bool ident_cont(unsigned char ch) { return ident_start(ch) || is_digit(ch) || ch == '$'; }

/* scan.l: dolq_start [A-Za-z\200-\377_]; dolq_cont adds [0-9] (no '$') */
static bool dolq_cont(unsigned char ch) { return ident_start(ch) || is_digit(ch); }

/* RFC 3629 §4: well-formed UTF-8 (no overlong forms, no surrogates, nothing
 * above U+10FFFF), and no NUL. */
static bool valid_utf8(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else {
            return false;
        }
        if (n - i - 1 < need || s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (size_t k = 2; k <= need; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
        i += need + 1;
    }
    return true;
}

static bool fail(shp_t *st, const char *why)
{
    st->why = why;
    return false;
}

/* Copies the text up to `at`, then one placeholder byte, and skips the
 * literal up to `end`. */
static void emit_literal(shp_t *st, size_t at, size_t end, char ph)
{
    memcpy(st->out + st->o, st->s + st->copied, at - st->copied);
    st->o += at - st->copied;
    st->out[st->o++] = ph;
    st->copied = end;
    st->n_lits++;
}

/* After the closing quote at i-1: scan.l's quotecontinue, white space
 * holding a newline and then a quote, continues the constant. scan.l also
 * admits `--` comments in that gap, but the parser this classifier links
 * (libpg_query 15) ends the constant there: a comment between a closing
 * quote and the next quote gets no key. Returns the index of the quote
 * that continues the constant, 0 when it ends here, or SIZE_MAX when
 * unsure. */
static size_t continuation(const shp_t *st, size_t i)
{
    bool newline = false, comment = false;
    while (i < st->n) {
        unsigned char ch = st->s[i];
        if (is_space(ch)) {
            newline |= ch == '\n' || ch == '\r';
            i++;
        } else if (ch == '-' && i + 1 < st->n && st->s[i + 1] == '-') {
            comment = true;
            while (i < st->n && st->s[i] != '\n' && st->s[i] != '\r')
                i++;
        } else if (ch == '\'' && comment) {
            return SIZE_MAX;
        } else {
            return ch == '\'' && newline ? i : 0;
        }
    }
    return 0;
}

typedef enum qmode {
    Q_PLAIN = 0, /* '...': '' doubles; a backslash depends on standard_conforming_strings */
    Q_ESC,       /* E'...': backslash escapes, '' doubles */
    Q_UNICODE,   /* U&'...': '' doubles; escapes need validating */
    Q_BITS,      /* B'...' and X'...': no doubling, no escapes */
} qmode_t;

/* A quoted string whose opening quote is at q (its prefix starts at at).
 * Returns false when there is no key. */
static bool quoted(shp_t *st, size_t at, size_t q, qmode_t mode, char ph)
{
    static const char unterminated[] = "unterminated string constant";
    size_t i = q + 1;
    for (;;) {
        if (i >= st->n)
            return fail(st, unterminated);
        unsigned char ch = st->s[i];
        if (ch == '\\' && mode == Q_ESC) {
            if (i + 1 >= st->n)
                return fail(st, unterminated);
            unsigned char e = st->s[i + 1];
            /* octal, hex and Unicode escapes can make bytes the server
             * rejects (invalid UTF-8, bad code points): only the one-byte
             * escapes are safe whatever they hold */
            if ((e >= '0' && e <= '7') || e == 'x' || e == 'u' || e == 'U')
                return fail(st, "escape in E'' string that the server validates");
            i += 2;
            continue;
        }
        if (ch == '\\' && mode == Q_PLAIN)
            return fail(st, "backslash in '' string (depends on standard_conforming_strings)");
        if (ch == '\\' && mode == Q_UNICODE)
            return fail(st, "escape in U&'' string that the server validates");
        if (ch != '\'') {
            i++;
            continue;
        }
        if (mode != Q_BITS && i + 1 < st->n && st->s[i + 1] == '\'') {
            i += 2;
            continue;
        }
        size_t next = continuation(st, i + 1);
        if (next == SIZE_MAX)
            return fail(st, "string continuation across a comment");
        if (next == 0) {
            emit_literal(st, at, i + 1, ph);
            return true;
        }
        i = next + 1;
    }
}

/* At s[i] == '$': a dollar-quote delimiter $tag$ (scan.l dolqdelim)?
 * Returns its length, or 0. */
static size_t dollar_delim(const shp_t *st, size_t i)
{
    size_t j = i + 1;
    if (j < st->n && st->s[j] != '$') {
        if (is_digit(st->s[j]) || !dolq_cont(st->s[j]))
            return 0;
        while (j < st->n && dolq_cont(st->s[j]))
            j++;
    }
    return j < st->n && st->s[j] == '$' ? j + 1 - i : 0;
}

static bool dollar_quoted(shp_t *st, size_t i, size_t dl)
{
    const unsigned char *tag = st->s + i;
    for (size_t k = i + dl; k + dl <= st->n; k++) {
        if (st->s[k] == '$' && memcmp(st->s + k, tag, dl) == 0) {
            emit_literal(st, i, k + dl, AL__SQL_SHAPE_STR);
            return true;
        }
    }
    return fail(st, "unterminated dollar-quoted string");
}

/* scan.l (PostgreSQL 15): integer {digit}+, decimal, real, and the
 * *_junk / realfail rules that reject a number followed by letters. */
static bool number(shp_t *st, size_t *pos, bool keep_int)
{
    size_t i = *pos;
    const unsigned char *s = st->s;
    size_t n = st->n, j = i;
    bool is_float = false;
    if (s[j] == '.') {
        j++;
        is_float = true;
        while (j < n && is_digit(s[j]))
            j++;
    } else {
        while (j < n && is_digit(s[j]))
            j++;
        /* "1..2": decimalfail gives the integer back */
        if (j < n && s[j] == '.' && !(j + 1 < n && s[j + 1] == '.')) {
            j++;
            is_float = true;
            while (j < n && is_digit(s[j]))
                j++;
        }
    }
    if (j < n && (s[j] == 'e' || s[j] == 'E')) {
        size_t k = j + 1;
        if (k < n && (s[k] == '+' || s[k] == '-'))
            k++;
        if (k >= n || !is_digit(s[k]))
            return fail(st, "trailing junk after numeric literal");
        while (k < n && is_digit(s[k]))
            k++;
        j = k;
        is_float = true;
    }
    if (j < n && ident_start(s[j]))
        return fail(st, "trailing junk after numeric literal");
    bool fits = false;
    if (!is_float) {
        /* ICONST when strtoint takes it, else FCONST */
        size_t d = i;
        while (d + 1 < j && s[d] == '0')
            d++;
        uint64_t v = 0;
        if (j - d <= 10) {
            for (size_t k = d; k < j; k++)
                v = v * 10 + (uint64_t)(s[k] - '0');
            fits = v <= INT32_MAX;
        }
    }
    if (!(fits && keep_int)) /* the grammar checks this integer itself:
                               * it stays in the key as written */
        emit_literal(st, i, j, fits ? AL__SQL_SHAPE_INT : AL__SQL_SHAPE_NUM);
    *pos = j;
    return true;
}

static bool word_is(const unsigned char *p, size_t n, const char *lit)
{
    size_t k = 0;
    for (; k < n && lit[k]; k++) {
        unsigned char ch = p[k];
        if (ch >= 'A' && ch <= 'Z')
            ch = (unsigned char)(ch - 'A' + 'a');
        if (ch != (unsigned char)lit[k])
            return false;
    }
    return k == n && lit[k] == '\0';
}

/* One token (or white space / comment) at s[*pos]. Returns false when there
 * is no key. */
static bool step(shp_t *st, size_t *pos)
{
    const unsigned char *s = st->s;
    size_t n = st->n, i = *pos;
    unsigned char ch = s[i];
    unsigned char nx = i + 1 < n ? s[i + 1] : 0;

    if (is_space(ch)) {
        *pos = i + 1;
        return true;
    }
    if (ch == '-' && nx == '-') {
        while (i < n && s[i] != '\n' && s[i] != '\r')
            i++;
        *pos = i;
        return true;
    }
    if (ch == '/' && nx == '*') {
        size_t depth = 1;
        i += 2;
        while (depth > 0) {
            if (i + 1 >= n)
                return fail(st, "unterminated /* comment");
            if (s[i] == '/' && s[i + 1] == '*') {
                depth++;
                i += 2;
            } else if (s[i] == '*' && s[i + 1] == '/') {
                depth--;
                i += 2;
            } else {
                i++;
            }
        }
        *pos = i;
        return true;
    }

    /* a token: track FLOAT ( for number() */
    bool was_float = st->last_float, float_paren = st->float_paren, after_alter = st->last_alter;
    st->last_float = st->float_paren = st->last_alter = false;
    bool ok;
    if (ident_start(ch) && nx == '\'' && (ch == 'e' || ch == 'E')) {
        ok = quoted(st, i, i + 1, Q_ESC, AL__SQL_SHAPE_STR);
    } else if (ident_start(ch) && nx == '\'' && (ch == 'b' || ch == 'B')) {
        ok = quoted(st, i, i + 1, Q_BITS, AL__SQL_SHAPE_BIT);
    } else if (ident_start(ch) && nx == '\'' && (ch == 'x' || ch == 'X')) {
        ok = quoted(st, i, i + 1, Q_BITS, AL__SQL_SHAPE_HEX);
    } else if ((ch == 'u' || ch == 'U') && nx == '&' && i + 2 < n && s[i + 2] == '\'') {
        ok = quoted(st, i, i + 2, Q_UNICODE, AL__SQL_SHAPE_USTR);
    } else if (ident_start(ch)) {
        /* N'...' is the word NCHAR then an ordinary string: the next step
         * reads the quote. U&"..." is the word U, '&', then a quoted name. */
        size_t j = i + 1;
        while (j < n && ident_cont(s[j]))
            j++;
        if (word_is(s + i, j - i, "uescape"))
            return fail(st, "UESCAPE");
        st->last_float = word_is(s + i, j - i, "float");
        st->last_alter = word_is(s + i, j - i, "alter") || word_is(s + i, j - i, "column");
        *pos = j;
        return true;
    } else if (ch == '"') {
        for (i++;; i++) {
            if (i >= n)
                return fail(st, "unterminated quoted identifier");
            if (s[i] == '"') {
                if (i + 1 < n && s[i + 1] == '"') {
                    i++;
                    continue;
                }
                break;
            }
        }
        *pos = i + 1;
        return true;
    } else if (ch == '\'') {
        ok = quoted(st, i, i, Q_PLAIN, AL__SQL_SHAPE_STR);
    } else if (ch == '$') {
        size_t dl = dollar_delim(st, i);
        if (dl) {
            ok = dollar_quoted(st, i, dl);
        } else {
            i++;
            while (i < n && is_digit(s[i])) /* $1: a parameter, kept */
                i++;
            *pos = i;
            return true;
        }
    } else if (is_digit(ch) || (ch == '.' && is_digit(nx))) {
        /* FLOAT(p) rejects p outside 1..53; ALTER [COLUMN] n SET
         * STATISTICS rejects n outside 1..32767 */
        return number(st, pos, float_paren || after_alter);
    } else if (ch == '.' && nx == '.') {
        *pos = i + 2; /* scan.l dot_dot: one token, so "..5" is not ". .5" */
        return true;
    } else {
        st->float_paren = ch == '(' && was_float;
        *pos = i + 1;
        return true;
    }
    if (ok)
        *pos = st->copied; /* just past the literal */
    return ok;
}

ssize_t al__sql_shape(const char *sql, size_t len, char *out, size_t cap, size_t *n_literals,
                      const char **why)
{
    shp_t st = {.s = (const unsigned char *)sql, .n = len, .out = out};
    if (n_literals)
        *n_literals = 0;
    if (why)
        *why = NULL;
    if (len > cap || len > (size_t)SSIZE_MAX) {
        st.why = "statement longer than the shape buffer";
    } else if (!valid_utf8(st.s, len)) {
        st.why = "NUL byte or invalid UTF-8";
    } else {
        size_t i = 0;
        while (i < len)
            if (!step(&st, &i))
                break;
    }
    if (st.why) {
        if (why)
            *why = st.why;
        return -1;
    }
    memcpy(out + st.o, st.s + st.copied, len - st.copied);
    st.o += len - st.copied;
    if (n_literals)
        *n_literals = st.n_lits;
    return (ssize_t)st.o;
}
