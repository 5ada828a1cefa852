/*
 * cmd_replay.c - `airlock replay SESSION -c FILE [--speed N] [--json]`:
 * shows a recorded session as it happened (docs/recordings.md).
 *
 * Everything in a recording came from an agent or an upstream, so the
 * human view escapes every control character (C0, DEL, C1) and the Unicode
 * bidirectional and line-separator controls before they reach the
 * terminal: a row value holding "\x1b[2J" is shown as those characters,
 * never run. Asciicast playback is the exception: terminal output is what
 * it records, and writing it raw is the point.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli/cli.h"
#include "record/record.h"

static void usage(FILE *f)
{
    fputs("usage: airlock replay SESSION -c FILE [--speed N] [--json]\n\n"
          "Shows a recorded session as it happened: each PostgreSQL statement with\n"
          "its decision, parameters, result rows, tag, row count and duration; each\n"
          "HTTP request and response; tunnels and the close. SESSION is the\n"
          "session_id the session's audit events carry (airlock audit query).\n"
          "Terminal recordings (asciicast v2) are played back on the terminal.\n\n"
          "  -c, --config FILE  the gateway's config (recordings live under\n"
          "                     <server.data_dir>/recordings)\n"
          "  --speed N          pause between lines by their recorded gaps divided\n"
          "                     by N (default 1 = real time; 10 = ten times faster,\n"
          "                     0.5 = half speed, 0 = no pauses)\n"
          "  --json             the recording's lines verbatim (decompressed), one\n"
          "                     per line, no pauses\n\n"
          "exit status: 0 shown, 1 no recording for the session or it cannot be read\n"
          "(corrupt, truncated), 2 usage or config error\n",
          f);
}

/* ---- text safe for a terminal ----------------------------------------------------- */

/* Strict UTF-8 (RFC 3629 §3): no overlong forms, surrogates or values past
 * U+10FFFF. Returns the sequence length, 0 when invalid. */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        len = 2, v = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3, v = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return len;
}

/* Code points a terminal acts on, or that reorder or break what is shown
 * (Unicode UAX #9 explicit formatting characters; U+2028/2029). */
static bool invisible_control(uint32_t cp)
{
    return (cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || cp == 0x200e || cp == 0x200f ||
           (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/* Appends s[0..n) to b with control characters escaped. With indent, a
 * newline stays a newline followed by indent and a tab stays a tab (text
 * blocks: statements, bodies); without, they are "\n" and "\t" (cells).
 * Bytes that are not UTF-8 are shown as \xNN. */
static void esc(al_buf_t *b, const char *s, size_t n, const char *indent)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned char c = u[i];
        if (c >= 0x20 && c < 0x7f) {
            size_t j = i;
            while (j < n && u[j] >= 0x20 && u[j] < 0x7f)
                j++;
            al_buf_append(b, s + i, j - i);
            i = j;
            continue;
        }
        if (c < 0x80) {
            if (c == '\n' && indent) {
                al_buf_puts(b, "\n");
                al_buf_puts(b, indent);
            } else if (c == '\t' && indent) {
                al_buf_puts(b, "\t");
            } else if (c == '\n') {
                al_buf_puts(b, "\\n");
            } else if (c == '\t') {
                al_buf_puts(b, "\\t");
            } else if (c == '\r') {
                al_buf_puts(b, "\\r");
            } else {
                al_buf_printf(b, "\\x%02x", c);
            }
            i++;
            continue;
        }
        uint32_t cp;
        size_t len = utf8_next(u + i, n - i, &cp);
        if (!len) {
            al_buf_printf(b, "\\x%02x", c);
            i++;
        } else {
            if (invisible_control(cp))
                al_buf_printf(b, "\\u%04x", (unsigned)cp);
            else
                al_buf_append(b, s + i, len);
            i += len;
        }
    }
}

/* Characters shown (UTF-8 code points) in s[0..n). */
static size_t width_of(const char *s, size_t n)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        w += ((unsigned char)s[i] & 0xc0) != 0x80;
    return w;
}

/* Cuts an escaped b to at most max shown characters, ending with "...". */
static void cut(al_buf_t *b, size_t max)
{
    if (width_of(b->p, b->len) <= max)
        return;
    size_t w = 0, i = 0;
    for (; i < b->len; i++) {
        if (((unsigned char)b->p[i] & 0xc0) != 0x80 && ++w > max - 3)
            break;
    }
    b->len = i;
    al_buf_puts(b, "...");
}

/* Escaped s, at most max shown characters (0: no limit), into b (reset). */
static const char *cell_text(al_buf_t *b, const char *s, size_t n, size_t max)
{
    al_buf_reset(b);
    if (max && n > max * 4 + 16)
        n = max * 4 + 16; /* enough to fill max; the rest is cut anyway */
    esc(b, s, n, NULL);
    if (max)
        cut(b, max);
    return b->p ? b->p : "";
}

/* ---- the replay ----------------------------------------------------------------------- */

#define IND "              " /* under the line's text, past "[  12.345] " */
#define CELL_MAX 60
#define BODY_SHOWN 2048
#define ROWS_BATCH 200

typedef struct replay {
    double speed;
    bool json;
    const char *path;
    uint64_t lineno;
    double last_t;
    bool cast;           /* asciicast v2 */
    bool header_seen, closed;
    uint64_t bad_line;   /* first line that is not a JSON object/array */
    bool bad_is_last;
    bool out_err;
    /* result rows of the current statement, shown as one table */
    json_t *rows[ROWS_BATCH];
    size_t n_rows;
    double rows_t;
    char agent_hint[256]; /* from the identity line, for the header */
    al_buf_t tmp, line;
} replay_t;

static void pause_for(double secs)
{
    if (!(secs > 0))
        return;
    fflush(stdout);
    struct timespec ts = {(time_t)secs, (long)((secs - floor(secs)) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Waits until line time t (seconds since the session opened). */
static void pace(replay_t *r, double t)
{
    if (!isfinite(t) || t < 0)
        return;
    if (r->speed > 0 && t > r->last_t)
        pause_for((t - r->last_t) / r->speed);
    if (t > r->last_t)
        r->last_t = t;
}

static const char *jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* Writes the escaped text of s to the output line buffer. */
static void put(replay_t *r, const char *s)
{
    if (s)
        esc(&r->line, s, strlen(s), IND);
}

static void put_cell(replay_t *r, const char *s, size_t max)
{
    if (s) {
        const char *t = cell_text(&r->tmp, s, strlen(s), max);
        al_buf_puts(&r->line, t);
    } else {
        al_buf_puts(&r->line, "-");
    }
}

static void flush_line(replay_t *r)
{
    if (r->line.len && fwrite(r->line.p, 1, r->line.len, stdout) != r->line.len)
        r->out_err = true;
    al_buf_reset(&r->line);
    fflush(stdout);
}

static void stamp(replay_t *r, double t, const char *type)
{
    al_buf_printf(&r->line, "[%9.3f] %-9s ", t, type);
}

static void put_duration(replay_t *r, json_t *us)
{
    if (!json_is_integer(us))
        return;
    double v = (double)json_integer_value(us);
    if (v < 1000)
        al_buf_printf(&r->line, "%.0f us", v);
    else if (v < 1e6)
        al_buf_printf(&r->line, "%.1f ms", v / 1e3);
    else
        al_buf_printf(&r->line, "%.3f s", v / 1e6);
}

/* "allow (rule reads)" / "DENY (rule no-ddl): reason" */
static void put_decision(replay_t *r, json_t *o)
{
    const char *d = jstr(o, "decision"), *rule = jstr(o, "rule"), *why = jstr(o, "reason");
    if (!d)
        return;
    bool allow = !strcmp(d, "allow");
    if (allow) {
        put_cell(r, d, CELL_MAX);
    } else {
        const char *t = cell_text(&r->tmp, d, strlen(d), CELL_MAX);
        for (const char *p = t; *p; p++)
            al_buf_printf(&r->line, "%c", *p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    }
    if (rule) {
        al_buf_puts(&r->line, " (rule ");
        put_cell(r, rule, 80);
        al_buf_puts(&r->line, ")");
    }
    if (!allow && why && *why) {
        al_buf_puts(&r->line, ": ");
        put_cell(r, why, 200);
    }
}

/* A recorded value: string, null, or {"base64": ...}. */
static void value_text(json_t *v, al_buf_t *out, size_t max)
{
    al_buf_reset(out);
    if (json_is_string(v)) {
        esc(out, json_string_value(v), json_string_length(v), NULL);
    } else if (json_is_null(v) || !v) {
        al_buf_puts(out, "NULL");
    } else if (json_is_string(json_object_get(v, "base64"))) {
        al_buf_puts(out, "(base64) ");
        const char *b = jstr(v, "base64");
        esc(out, b, strlen(b), NULL);
    } else {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (s)
            esc(out, s, strlen(s), NULL);
        free(s);
    }
    if (max)
        cut(out, max);
}

/* The buffered rows as an aligned table. */
static void flush_rows(replay_t *r)
{
    if (!r->n_rows)
        return;
    size_t ncol = 0;
    for (size_t i = 0; i < r->n_rows; i++)
        ncol = AL_MAX(ncol, json_array_size(json_object_get(r->rows[i], "values")));
    size_t *w = al_xcalloc(ncol ? ncol : 1, sizeof *w);
    al_buf_t v;
    al_buf_init(&v);
    for (size_t i = 0; i < r->n_rows; i++) {
        json_t *vals = json_object_get(r->rows[i], "values");
        for (size_t k = 0; k < json_array_size(vals); k++) {
            value_text(json_array_get(vals, k), &v, CELL_MAX);
            w[k] = AL_MAX(w[k], width_of(v.p, v.len));
        }
    }
    stamp(r, r->rows_t, "rows");
    al_buf_printf(&r->line, "%zu\n", r->n_rows);
    for (size_t i = 0; i < r->n_rows; i++) {
        json_t *vals = json_object_get(r->rows[i], "values");
        al_buf_puts(&r->line, IND "| ");
        for (size_t k = 0; k < ncol; k++) {
            size_t shown = 0;
            if (k < json_array_size(vals)) {
                value_text(json_array_get(vals, k), &v, CELL_MAX);
                al_buf_append(&r->line, v.p, v.len);
                shown = width_of(v.p, v.len);
            }
            for (; shown < w[k]; shown++)
                al_buf_puts(&r->line, " ");
            al_buf_puts(&r->line, " | ");
        }
        r->line.len--; /* no trailing space */
        al_buf_puts(&r->line, "\n");
        json_decref(r->rows[i]);
    }
    r->n_rows = 0;
    al_buf_free(&v);
    free(w);
    flush_line(r);
}

static void put_headers(replay_t *r, json_t *hs)
{
    size_t i;
    json_t *h;
    json_array_foreach(hs, i, h) {
        al_buf_puts(&r->line, IND);
        put_cell(r, json_string_value(json_array_get(h, 0)), 80);
        al_buf_puts(&r->line, ": ");
        put_cell(r, json_string_value(json_array_get(h, 1)), 400);
        al_buf_puts(&r->line, "\n");
    }
}

static void put_body(replay_t *r, json_t *o)
{
    const char *body = jstr(o, "body"), *b64 = jstr(o, "body_base64");
    json_t *total = json_object_get(o, "body_bytes");
    bool trunc = json_is_true(json_object_get(o, "body_truncated"));
    if (!body && !b64) {
        if (json_integer_value(total) > 0)
            al_buf_printf(&r->line, IND "body: %lld bytes, not recorded\n",
                          (long long)json_integer_value(total));
        return;
    }
    size_t n = body ? json_string_length(json_object_get(o, "body")) : strlen(b64);
    if (body && !n && !json_integer_value(total))
        return;
    al_buf_printf(&r->line, IND "body%s: %lld bytes", b64 ? " (binary, base64)" : "",
                  (long long)(json_is_integer(total) ? json_integer_value(total) : (json_int_t)n));
    if (trunc)
        al_buf_puts(&r->line, ", recording kept the first part");
    al_buf_puts(&r->line, "\n" IND "  ");
    const char *s = body ? body : b64;
    size_t shown = AL_MIN(n, (size_t)BODY_SHOWN);
    while (shown < n && shown > 0 && ((unsigned char)s[shown] & 0xc0) == 0x80)
        shown--; /* whole UTF-8 characters */
    esc(&r->line, s, shown, IND "  ");
    if (shown < n)
        al_buf_printf(&r->line, "\n" IND "  ... %zu more bytes (airlock replay --json has them)",
                      n - shown);
    al_buf_puts(&r->line, "\n");
}

static void show_header(replay_t *r, json_t *o)
{
    static const char *const known[] = {"type", "version", "session_id", "protocol", "target",
                                        "client", "started", "started_us", "agent", "subject",
                                        "issuer"};
    al_buf_puts(&r->line, "session   ");
    put_cell(r, jstr(o, "session_id"), 80);
    al_buf_puts(&r->line, "\nprotocol  ");
    put_cell(r, jstr(o, "protocol"), 80);
    al_buf_puts(&r->line, "\ntarget    ");
    put_cell(r, jstr(o, "target"), 200);
    al_buf_puts(&r->line, "\nagent     ");
    const char *agent = jstr(o, "agent");
    put_cell(r, agent ? agent : r->agent_hint[0] ? r->agent_hint : NULL, 200);
    if (jstr(o, "subject")) {
        al_buf_puts(&r->line, " (subject ");
        put_cell(r, jstr(o, "subject"), 200);
        al_buf_puts(&r->line, ")");
    }
    al_buf_puts(&r->line, "\nclient    ");
    put_cell(r, jstr(o, "client"), 200);
    al_buf_puts(&r->line, "\nstarted   ");
    put_cell(r, jstr(o, "started"), 80);
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        bool skip = false;
        for (size_t i = 0; i < AL_ARRAY_LEN(known) && !skip; i++)
            skip = !strcmp(k, known[i]);
        if (skip)
            continue;
        al_buf_puts(&r->line, "\n");
        put_cell(r, k, 40);
        al_buf_puts(&r->line, " ");
        for (size_t w = width_of(k, strlen(k)); w < 9; w++)
            al_buf_puts(&r->line, " ");
        value_text(v, &r->tmp, 200);
        al_buf_append(&r->line, r->tmp.p, r->tmp.len);
    }
    al_buf_puts(&r->line, "\n\n");
    flush_line(r);
}

static void show_event(replay_t *r, json_t *o, double t, const char *type)
{
    if (!strcmp(type, "identity")) {
        stamp(r, t, type);
        al_buf_puts(&r->line, "agent ");
        put_cell(r, jstr(o, "agent"), 200);
        al_buf_puts(&r->line, "  subject ");
        put_cell(r, jstr(o, "subject"), 200);
        al_buf_puts(&r->line, "  issuer ");
        put_cell(r, jstr(o, "issuer"), 200);
        al_buf_puts(&r->line, "\n");
    } else if (!strcmp(type, "query") || !strcmp(type, "parse") || !strcmp(type, "execute")) {
        stamp(r, t, type);
        if (strcmp(type, "query")) {
            al_buf_puts(&r->line, "statement ");
            const char *nm = jstr(o, "name");
            put_cell(r, nm && *nm ? nm : "(unnamed)", 80);
            al_buf_puts(&r->line, "  ");
        }
        put_decision(r, o);
        al_buf_puts(&r->line, "\n" IND);
        put(r, jstr(o, "sql"));
        al_buf_puts(&r->line, "\n");
    } else if (!strcmp(type, "bind")) {
        stamp(r, t, type);
        al_buf_puts(&r->line, "statement ");
        const char *st = jstr(o, "statement");
        put_cell(r, st && *st ? st : "(unnamed)", 80);
        const char *portal = jstr(o, "portal");
        if (portal && *portal) {
            al_buf_puts(&r->line, "  portal ");
            put_cell(r, portal, 80);
        }
        json_t *ps = json_object_get(o, "params");
        size_t i;
        json_t *v;
        json_array_foreach(ps, i, v) {
            al_buf_printf(&r->line, "\n" IND "$%zu = ", i + 1);
            value_text(v, &r->tmp, 200);
            if (json_is_string(v))
                al_buf_puts(&r->line, "'");
            al_buf_append(&r->line, r->tmp.p, r->tmp.len);
            if (json_is_string(v))
                al_buf_puts(&r->line, "'");
        }
        al_buf_puts(&r->line, "\n");
    } else if (!strcmp(type, "complete")) {
        stamp(r, t, type);
        put_cell(r, jstr(o, "tag"), 80);
        json_t *rows = json_object_get(o, "rows");
        if (json_is_integer(rows))
            al_buf_printf(&r->line, "  %lld row%s", (long long)json_integer_value(rows),
                          json_integer_value(rows) == 1 ? "" : "s");
        if (json_is_true(json_object_get(o, "rows_truncated")))
            al_buf_printf(&r->line, " (%lld recorded)",
                          (long long)json_integer_value(json_object_get(o, "rows_recorded")));
        al_buf_puts(&r->line, "  ");
        put_duration(r, json_object_get(o, "duration_us"));
        al_buf_puts(&r->line, "\n");
    } else if (!strcmp(type, "error")) {
        stamp(r, t, type);
        put_cell(r, jstr(o, "sqlstate"), 10);
        al_buf_puts(&r->line, " ");
        put_cell(r, jstr(o, "message"), 400);
        if (jstr(o, "source")) {
            al_buf_puts(&r->line, " (");
            put_cell(r, jstr(o, "source"), 20);
            al_buf_puts(&r->line, ")");
        }
        al_buf_puts(&r->line, "\n");
    } else if (!strcmp(type, "request")) {
        stamp(r, t, type);
        put_cell(r, jstr(o, "method"), 20);
        al_buf_puts(&r->line, " ");
        put_cell(r, jstr(o, "target"), 400);
        al_buf_puts(&r->line, "  ");
        put_decision(r, o);
        al_buf_puts(&r->line, "\n");
        put_headers(r, json_object_get(o, "headers"));
        put_body(r, o);
    } else if (!strcmp(type, "response")) {
        stamp(r, t, type);
        json_t *st = json_object_get(o, "status");
        if (json_is_integer(st))
            al_buf_printf(&r->line, "%lld", (long long)json_integer_value(st));
        else
            al_buf_puts(&r->line, "-");
        al_buf_puts(&r->line, "  ");
        put_duration(r, json_object_get(o, "duration_us"));
        al_buf_puts(&r->line, "\n");
        put_headers(r, json_object_get(o, "headers"));
        put_body(r, o);
    } else if (!strcmp(type, "tunnel")) {
        stamp(r, t, type);
        al_buf_puts(&r->line, "to ");
        put_cell(r, jstr(o, "upstream"), 200);
        al_buf_puts(&r->line, "  ");
        put_decision(r, o);
        al_buf_puts(&r->line, "\n");
    } else if (!strcmp(type, "close")) {
        r->closed = true;
        stamp(r, t, type);
        put_cell(r, jstr(o, "reason"), 200);
        json_t *up = json_object_get(o, "bytes_up"), *down = json_object_get(o, "bytes_down");
        if (json_is_integer(up) && json_integer_value(up) >= 0)
            al_buf_printf(&r->line, "  bytes up %lld", (long long)json_integer_value(up));
        if (json_is_integer(down) && json_integer_value(down) >= 0)
            al_buf_printf(&r->line, "  bytes down %lld", (long long)json_integer_value(down));
        al_buf_printf(&r->line, "  after %.3f s\n", t);
    } else {
        /* a line type this version does not know: shown whole */
        stamp(r, t, "");
        char *s = json_dumps(o, JSON_COMPACT);
        if (s)
            put_cell(r, s, 400);
        free(s);
        al_buf_puts(&r->line, "\n");
    }
    flush_line(r);
}

/* asciicast v2: [time, code, data]; "o" is terminal output. */
static void show_cast(replay_t *r, json_t *ev)
{
    json_t *t = json_array_get(ev, 0);
    const char *code = json_string_value(json_array_get(ev, 1));
    json_t *data = json_array_get(ev, 2);
    if (!json_is_number(t) || !code || !json_is_string(data)) {
        if (!r->bad_line)
            r->bad_line = r->lineno;
        return;
    }
    pace(r, json_number_value(t));
    if (!strcmp(code, "o")) {
        size_t n = json_string_length(data);
        if (fwrite(json_string_value(data), 1, n, stdout) != n)
            r->out_err = true;
        fflush(stdout);
    }
}

static int on_line(void *ud, const char *line, size_t n)
{
    replay_t *r = ud;
    r->lineno++;
    r->bad_is_last = false;
    if (r->json) {
        if (fwrite(line, 1, n, stdout) != n || putchar('\n') == EOF)
            r->out_err = true;
        return r->out_err ? AL_ERR : AL_OK;
    }
    json_error_t je;
    json_t *o = json_loadb(line, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (r->lineno == 1 && json_is_object(o) && !json_object_get(o, "type") &&
        json_integer_value(json_object_get(o, "version")) == 2) {
        r->cast = true; /* the asciicast v2 header */
        r->header_seen = true;
        json_decref(o);
        return AL_OK;
    }
    if (r->cast && json_is_array(o)) {
        show_cast(r, o);
        json_decref(o);
        return r->out_err ? AL_ERR : AL_OK;
    }
    if (!json_is_object(o) || r->cast) {
        json_decref(o);
        if (!r->bad_line)
            r->bad_line = r->lineno;
        r->bad_is_last = true;
        flush_rows(r);
        al_buf_printf(&r->line, "[?] line %llu is not a recording line: ",
                      (unsigned long long)r->lineno);
        al_buf_puts(&r->line, cell_text(&r->tmp, line, n, 120));
        al_buf_puts(&r->line, "\n");
        flush_line(r);
        return AL_OK;
    }
    const char *type = jstr(o, "type");
    json_t *tj = json_object_get(o, "t");
    double t = json_is_number(tj) ? json_number_value(tj) : r->last_t;
    if (type && !strcmp(type, "session") && !r->header_seen) {
        r->header_seen = true;
        show_header(r, o);
    } else if (type && !strcmp(type, "row")) {
        pace(r, t);
        if (!r->n_rows)
            r->rows_t = t;
        r->rows[r->n_rows++] = json_incref(o);
        if (r->n_rows >= ROWS_BATCH)
            flush_rows(r);
    } else {
        flush_rows(r); /* the statement's rows, at the time of the last one */
        pace(r, t);
        show_event(r, o, t, type ? type : "?");
    }
    json_decref(o);
    return r->out_err ? AL_ERR : AL_OK;
}

/* First pass over the start of the file: who the agent was (the identity
 * line comes after the header). */
static int hint_line(void *ud, const char *line, size_t n)
{
    replay_t *r = ud;
    json_error_t je;
    json_t *o = json_loadb(line, n, 0, &je);
    const char *type = jstr(o, "type"), *agent = jstr(o, "agent");
    int rc = ++r->lineno >= 8 ? 1 : AL_OK;
    if (type && !strcmp(type, "identity")) {
        if (agent)
            snprintf(r->agent_hint, sizeof r->agent_hint, "%s", agent);
        rc = 1;
    } else if (type && strcmp(type, "session")) {
        rc = 1;
    }
    json_decref(o);
    return rc;
}

/* --speed: a decimal >= 0 (0 = no pauses). */
static bool parse_speed(const char *s, double *out)
{
    if (!s || !((*s >= '0' && *s <= '9') || *s == '.'))
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < 0)
        return false;
    for (const char *p = s; *p; p++) /* no hex floats, exponents or "inf" */
        if (!((*p >= '0' && *p <= '9') || *p == '.'))
            return false;
    *out = v;
    return true;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

int al_cmd_replay(int argc, char **argv)
{
    const char *cfg_path = NULL, *id = NULL;
    replay_t r;
    memset(&r, 0, sizeof r);
    r.speed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--json")) {
            r.json = true;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--config") || !strcmp(a, "--speed")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "airlock replay: %s needs a value\n", a);
                return 2;
            }
            const char *v = argv[++i];
            if (strcmp(a, "--speed")) {
                cfg_path = v;
            } else if (!parse_speed(v, &r.speed)) {
                fprintf(stderr, "airlock replay: --speed takes a number >= 0 (1 = real time, "
                                "10 = ten times faster, 0 = no pauses), not '%s'\n", v);
                return 2;
            }
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "airlock replay: unknown argument '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (id) {
            fprintf(stderr, "airlock replay: one session at a time ('%s' and '%s')\n", id, a);
            return 2;
        } else {
            id = a;
        }
    }
    if (!id) {
        fputs("airlock replay: which session? (its session_id, from airlock audit query)\n",
              stderr);
        usage(stderr);
        return 2;
    }
    if (!al_rec_id_ok(id)) {
        al_buf_t b;
        al_buf_init(&b);
        fprintf(stderr, "airlock replay: '%s' is not a session id (36 characters: lower-case "
                        "hex in UUID layout, as audit events carry it)\n",
                cell_text(&b, id, strlen(id), 80));
        al_buf_free(&b);
        return 2;
    }
    if (!cfg_path) {
        fputs("airlock replay: a config file is required (-c FILE)\n", stderr);
        return 2;
    }
    al_config_t *cfg = al_cli_load_config(cfg_path);
    if (!cfg)
        return 2;
    char dir[4096], path[4096], err[1024];
    const char *d = al_rec_dir(cfg, dir, sizeof dir);
    al_config_free(cfg);
    if (!d) {
        fputs("airlock replay: server.data_dir is too long\n", stderr);
        return 2;
    }
    int rc = 0;
    for (int attempt = 0;; attempt++) {
        int f = al_rec_find(dir, id, path, sizeof path, err, sizeof err);
        if (f == AL_AGAIN) {
            fprintf(stderr, "airlock replay: no recording for session %s under %s (removed by "
                            "retention? see airlock audit query --kind recording)\n", id, dir);
            return 1;
        }
        if (f != AL_OK) {
            fprintf(stderr, "airlock replay: %s\n", err);
            return 1;
        }
        al_buf_init(&r.tmp);
        al_buf_init(&r.line);
        r.path = path;
        if (!r.json) {
            al_rec_read(path, hint_line, &r, err, sizeof err);
            r.lineno = 0;
        }
        int rd = al_rec_read(path, on_line, &r, err, sizeof err);
        flush_rows(&r);
        if (rd == AL_ERR && r.lineno == 0 && attempt == 0 && strstr(err, "cannot open")) {
            /* closed between finding and opening: the .jsonl became .jsonl.gz */
            al_buf_free(&r.tmp);
            al_buf_free(&r.line);
            continue;
        }
        fflush(stdout);
        if (r.out_err) {
            rc = 1;
        } else if (rd != AL_OK) {
            fprintf(stderr, "airlock replay: %s\n", err);
            rc = 1;
        } else if (r.bad_line && !(r.bad_is_last && !ends_with(path, AL_REC_EXT_GZ))) {
            fprintf(stderr, "airlock replay: %s: line %llu is not a recording line (corrupt)\n",
                    path, (unsigned long long)r.bad_line);
            rc = 1;
        } else if (!r.json && !r.cast) {
            if (r.bad_line)
                printf("(the last line is incomplete: the session is still being recorded)\n");
            else if (!r.closed)
                printf("(no close line: the session is still open, or its recording was cut "
                       "short)\n");
        }
        break;
    }
    al_buf_free(&r.tmp);
    al_buf_free(&r.line);
    return rc;
}
