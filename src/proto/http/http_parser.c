/* http_parser.c - strict incremental HTTP/1.1 parser; the rules it enforces
 * are listed in http_parser.h. */
#include "proto/http/http_parser.h"

/* 2^62: the largest Content-Length accepted. */
#define CL_MAX ((uint64_t)1 << 62)
/* RFC 9112 §7.1: we accept at most 16 hex digits, so a size fits uint64. */
#define CHUNK_SIZE_DIGITS 16

static const char *const err_codes[AL_HTTP__ERR_COUNT] = {
    [AL_HTTP_OK] = "ok",
    [AL_HTTP_E_BAD_CALL] = "bad_call",
    [AL_HTTP_E_NO_REQUEST_METHOD] = "no_request_method",
    [AL_HTTP_E_AWAITING_RESPONSE] = "awaiting_response",
    [AL_HTTP_E_REQUEST_LINE_TOO_LONG] = "request_line_too_long",
    [AL_HTTP_E_STATUS_LINE_TOO_LONG] = "status_line_too_long",
    [AL_HTTP_E_HEAD_TOO_LARGE] = "head_too_large",
    [AL_HTTP_E_TOO_MANY_HEADERS] = "too_many_headers",
    [AL_HTTP_E_BARE_LF] = "bare_lf",
    [AL_HTTP_E_BARE_CR] = "bare_cr",
    [AL_HTTP_E_BAD_REQUEST_LINE] = "bad_request_line",
    [AL_HTTP_E_BAD_METHOD] = "bad_method",
    [AL_HTTP_E_BAD_TARGET] = "bad_target",
    [AL_HTTP_E_BAD_VERSION] = "bad_version",
    [AL_HTTP_E_BAD_STATUS_LINE] = "bad_status_line",
    [AL_HTTP_E_OBS_FOLD] = "obs_fold",
    [AL_HTTP_E_SPACE_BEFORE_COLON] = "space_before_colon",
    [AL_HTTP_E_BAD_HEADER_NAME] = "bad_header_name",
    [AL_HTTP_E_MISSING_COLON] = "missing_colon",
    [AL_HTTP_E_BAD_HEADER_VALUE] = "bad_header_value",
    [AL_HTTP_E_BAD_CONTENT_LENGTH] = "bad_content_length",
    [AL_HTTP_E_DUPLICATE_CONTENT_LENGTH] = "duplicate_content_length",
    [AL_HTTP_E_BAD_TRANSFER_ENCODING] = "bad_transfer_encoding",
    [AL_HTTP_E_DUPLICATE_TRANSFER_ENCODING] = "duplicate_transfer_encoding",
    [AL_HTTP_E_TE_IN_HTTP10] = "te_in_http10",
    [AL_HTTP_E_CL_AND_TE] = "cl_and_te",
    [AL_HTTP_E_MISSING_HOST] = "missing_host",
    [AL_HTTP_E_DUPLICATE_HOST] = "duplicate_host",
    [AL_HTTP_E_BAD_HOST] = "bad_host",
    [AL_HTTP_E_HOST_MISMATCH] = "host_mismatch",
    [AL_HTTP_E_CONNECT_WITH_BODY] = "connect_with_body",
    [AL_HTTP_E_BAD_CHUNK_SIZE] = "bad_chunk_size",
    [AL_HTTP_E_BAD_CHUNK_EXT] = "bad_chunk_ext",
    [AL_HTTP_E_MISSING_CHUNK_CRLF] = "missing_chunk_crlf",
    [AL_HTTP_E_TRAILERS_TOO_LARGE] = "trailers_too_large",
    [AL_HTTP_E_BAD_TRAILER] = "bad_trailer",
    [AL_HTTP_E_TRUNCATED] = "truncated",
};

const char *al_http_err_str(al_http_err_t e)
{
    return (unsigned)e < AL_HTTP__ERR_COUNT ? err_codes[e] : "bad_call";
}

al_http_limits_t al_http_limits_default(void)
{
    return (al_http_limits_t){
        .max_start_line = AL_HTTP_DEFAULT_MAX_START_LINE,
        .max_head = AL_HTTP_DEFAULT_MAX_HEAD,
        .max_headers = AL_HTTP_DEFAULT_MAX_HEADERS,
    };
}

/* ---- character classes ------------------------------------------------ */

static bool is_alpha(uint8_t c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

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

/* RFC 9110 §5.6.2 tchar */
static bool is_tchar(uint8_t c)
{
    if (is_alpha(c) || is_digit(c))
        return true;
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*':
    case '+': case '-': case '.': case '^': case '_': case '`': case '|': case '~':
        return true;
    default:
        return false;
    }
}

/* RFC 3986 §2.2-2.3: unreserved / sub-delims (the characters a host may use
 * besides '%' escapes). */
static bool is_unreserved_or_sub_delim(uint8_t c)
{
    if (is_alpha(c) || is_digit(c))
        return true;
    switch (c) {
    case '-': case '.': case '_': case '~':
    case '!': case '$': case '&': case '\'': case '(': case ')':
    case '*': case '+': case ',': case ';': case '=':
        return true;
    default:
        return false;
    }
}

/* Characters of a request-target (RFC 3986 URI characters, '#' excluded:
 * RFC 9112 §3.2 has no fragment). '%' is checked separately. */
static bool is_target_char(uint8_t c)
{
    if (is_unreserved_or_sub_delim(c))
        return true;
    switch (c) {
    case ':': case '/': case '?': case '@': case '[': case ']': case '%':
        return true;
    default:
        return false;
    }
}

/* RFC 9110 §5.5 field-vchar / SP / HTAB */
static bool is_value_char(uint8_t c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

static uint8_t lower(uint8_t c) { return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c; }

/* ASCII case-insensitive equality of s[0..n) and the literal lit. */
static bool ieq(const char *s, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    if (n != m)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower((uint8_t)s[i]) != lower((uint8_t)lit[i]))
            return false;
    return true;
}

static bool ieq_str(al_str_t a, al_str_t b)
{
    if (a.len != b.len)
        return false;
    for (size_t i = 0; i < a.len; i++)
        if (lower((uint8_t)a.p[i]) != lower((uint8_t)b.p[i]))
            return false;
    return true;
}

static al_str_t view(const uint8_t *p, size_t n) { return (al_str_t){(const char *)p, n}; }

/* ---- state helpers ------------------------------------------------------ */

static ssize_t fail(al_http_parser_t *st, al_http_err_t e, size_t at)
{
    st->err = e;
    st->err_pos = st->stream_off + at;
    st->state = AL_HTTP_S_DEAD;
    return AL_ERR;
}

static void clear_message(al_http_parser_t *st)
{
    st->scan = 0;
    st->line_start = 0;
    st->nfields = 0;
    st->trailer_bytes = 0;
    st->remaining = 0;
}

/* The message is complete: decide what the next byte on this stream is. */
static void end_message(al_http_parser_t *st, al_http_msg_t *out)
{
    out->done = true;
    clear_message(st);
    if (st->mode == AL_HTTP_REQUEST && st->hold_after)
        st->state = AL_HTTP_S_HOLD;
    else
        st->state = AL_HTTP_S_HEAD;
    st->hold_after = false;
}

void al_http_parser_init(al_http_parser_t *st, al_http_mode_t mode,
                         const al_http_limits_t *limits,
                         al_http_header_t *headers, size_t headers_cap)
{
    memset(st, 0, sizeof *st);
    st->mode = mode;
    st->limits = limits ? *limits : al_http_limits_default();
    if (st->limits.max_start_line > st->limits.max_head)
        st->limits.max_start_line = st->limits.max_head;
    st->headers = headers;
    st->headers_cap = headers ? headers_cap : 0;
    al_http_parser_reset(st);
}

void al_http_parser_reset(al_http_parser_t *st)
{
    clear_message(st);
    st->state = AL_HTTP_S_HEAD;
    st->req = AL_HTTP_REQ_UNSET;
    st->stream_off = 0;
    st->hold_after = false;
    st->err = AL_HTTP_OK;
    st->err_pos = 0;
}

void al_http_parser_set_request(al_http_parser_t *st, al_str_t method)
{
    if (al_str_eq_c(method, "HEAD"))
        st->req = AL_HTTP_REQ_HEAD;
    else if (al_str_eq_c(method, "CONNECT"))
        st->req = AL_HTTP_REQ_CONNECT;
    else
        st->req = AL_HTTP_REQ_OTHER;
}

int al_http_parser_tunnel(al_http_parser_t *st)
{
    if (st->state != AL_HTTP_S_HOLD)
        return AL_ERR;
    st->state = AL_HTTP_S_TUNNEL;
    return AL_OK;
}

int al_http_parser_resume(al_http_parser_t *st)
{
    if (st->state != AL_HTTP_S_HOLD)
        return AL_ERR;
    st->state = AL_HTTP_S_HEAD;
    return AL_OK;
}

al_str_t al_http_head_get(const al_http_head_t *head, const char *name)
{
    for (size_t i = 0; i < head->nheaders; i++)
        if (ieq(head->headers[i].name.p, head->headers[i].name.len, name))
            return head->headers[i].value;
    return (al_str_t){NULL, 0};
}

/* ---- start lines -------------------------------------------------------- */

/* RFC 9112 §2.3: exactly HTTP/1.1 or HTTP/1.0 (HTTP-name is case-sensitive). */
static int parse_version(const uint8_t *s, size_t n)
{
    if (n != 8 || memcmp(s, "HTTP/1.", 7) != 0)
        return 0;
    if (s[7] == '1')
        return 11;
    if (s[7] == '0')
        return 10;
    return 0;
}

/* host [":" port] (RFC 3986 §3.2.2-3.2.3). need_port for authority-form;
 * allow_empty for a Host field (RFC 9112 §3.2 allows an empty value). */
static bool valid_authority(const uint8_t *s, size_t n, bool need_port, bool allow_empty)
{
    if (n == 0)
        return allow_empty && !need_port;
    size_t i = 0;
    if (s[0] == '[') { /* IP-literal; the inner syntax is left to the resolver */
        for (i = 1; i < n && s[i] != ']'; i++)
            if (!(hex_val(s[i]) >= 0 || s[i] == ':' || s[i] == '.'))
                return false;
        if (i == n || i == 1)
            return false;
        i++;
    } else {
        for (; i < n && s[i] != ':'; i++) {
            if (s[i] == '%') {
                if (i + 2 >= n || hex_val(s[i + 1]) < 0 || hex_val(s[i + 2]) < 0)
                    return false;
                i += 2;
            } else if (!is_unreserved_or_sub_delim(s[i])) {
                return false;
            }
        }
        if (i == 0) /* RFC 9110 §4.2.1: an empty host is invalid */
            return false;
    }
    if (i == n)
        return !need_port;
    if (s[i] != ':' || n - i - 1 == 0 || n - i - 1 > 5)
        return false;
    uint32_t port = 0;
    for (i++; i < n; i++) {
        if (!is_digit(s[i]))
            return false;
        port = port * 10 + (uint32_t)(s[i] - '0');
    }
    return port <= 65535;
}

/* Checks the characters of a target; returns the index of the first bad
 * byte, or n. */
static size_t target_bad_char(const uint8_t *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!is_target_char(t[i]))
            return i;
        if (t[i] == '%') {
            if (i + 2 >= n || hex_val(t[i + 1]) < 0 || hex_val(t[i + 2]) < 0)
                return i;
            i += 2;
        }
    }
    return n;
}

/* absolute-form: ("http" / "https") "://" authority [ path-abempty ] [ "?" query ].
 * Sets *auth to the authority. */
static bool parse_absolute(const uint8_t *t, size_t n, al_str_t *auth)
{
    size_t s;
    if (n > 7 && ieq((const char *)t, 7, "http://"))
        s = 7;
    else if (n > 8 && ieq((const char *)t, 8, "https://"))
        s = 8;
    else
        return false;
    size_t e = s;
    while (e < n && t[e] != '/' && t[e] != '?')
        e++;
    /* RFC 9110 §4.2.4: userinfo is refused */
    if (memchr(t + s, '@', e - s) || !valid_authority(t + s, e - s, false, false))
        return false;
    *auth = view(t + s, e - s);
    return true;
}

/* RFC 9112 §3.2: the target form must fit the method. */
static al_http_err_t check_target(al_http_head_t *h, const uint8_t *t, size_t n, size_t *bad)
{
    size_t b = target_bad_char(t, n);
    *bad = b;
    if (b != n)
        return AL_HTTP_E_BAD_TARGET;
    *bad = 0;
    bool connect = al_str_eq_c(h->method, "CONNECT");
    if (connect) {
        if (!valid_authority(t, n, true, false) || memchr(t, '@', n))
            return AL_HTTP_E_BAD_TARGET;
        h->form = AL_HTTP_FORM_AUTHORITY;
        h->authority = view(t, n);
    } else if (t[0] == '/') {
        h->form = AL_HTTP_FORM_ORIGIN;
    } else if (n == 1 && t[0] == '*') {
        if (!al_str_eq_c(h->method, "OPTIONS"))
            return AL_HTTP_E_BAD_TARGET;
        h->form = AL_HTTP_FORM_ASTERISK;
    } else if (parse_absolute(t, n, &h->authority)) {
        h->form = AL_HTTP_FORM_ABSOLUTE;
    } else {
        return AL_HTTP_E_BAD_TARGET;
    }
    return AL_HTTP_OK;
}

/* RFC 9112 §3: method SP request-target SP HTTP-version */
static al_http_err_t parse_request_line(const uint8_t *l, size_t n, al_http_head_t *h, size_t *bad)
{
    size_t i = 0;
    while (i < n && is_tchar(l[i]))
        i++;
    *bad = i;
    if (i == 0 || (i < n && l[i] != ' '))
        return AL_HTTP_E_BAD_METHOD;
    if (i == n)
        return AL_HTTP_E_BAD_REQUEST_LINE;
    h->method = view(l, i);
    size_t t = i + 1;
    const uint8_t *sp = t < n ? memchr(l + t, ' ', n - t) : NULL;
    if (!sp) {
        *bad = n;
        return AL_HTTP_E_BAD_REQUEST_LINE;
    }
    size_t te = (size_t)(sp - l);
    *bad = t;
    if (te == t)
        return AL_HTTP_E_BAD_TARGET;
    h->target = view(l + t, te - t);
    al_http_err_t e = check_target(h, l + t, te - t, bad);
    if (e != AL_HTTP_OK) {
        *bad += t;
        return e;
    }
    *bad = te + 1;
    h->version = parse_version(l + te + 1, n - te - 1);
    return h->version ? AL_HTTP_OK : AL_HTTP_E_BAD_VERSION;
}

/* RFC 9112 §4: HTTP-version SP status-code [SP [reason-phrase]] */
static al_http_err_t parse_status_line(const uint8_t *l, size_t n, al_http_head_t *h, size_t *bad)
{
    *bad = 0;
    if (n < 12 || l[8] != ' ')
        return AL_HTTP_E_BAD_STATUS_LINE;
    h->version = parse_version(l, 8);
    if (!h->version)
        return AL_HTTP_E_BAD_STATUS_LINE;
    *bad = 9;
    if (!is_digit(l[9]) || !is_digit(l[10]) || !is_digit(l[11]) || l[9] < '1' || l[9] > '5')
        return AL_HTTP_E_BAD_STATUS_LINE;
    h->status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
    *bad = 12;
    if (n == 12) {
        h->reason = view(l + n, 0);
        return AL_HTTP_OK;
    }
    if (l[12] != ' ')
        return AL_HTTP_E_BAD_STATUS_LINE;
    for (size_t i = 13; i < n; i++) {
        if (!is_value_char(l[i])) {
            *bad = i;
            return AL_HTTP_E_BAD_STATUS_LINE;
        }
    }
    h->reason = view(l + 13, n - 13);
    return AL_HTTP_OK;
}

/* ---- field lines ------------------------------------------------------- */

/* RFC 9112 §5: field-name ":" OWS field-value OWS, with §5.1 (no space
 * before the colon) and §5.2 (no obs-fold). l[0..n) has no CRLF, n > 0. */
static al_http_err_t parse_field_line(const uint8_t *l, size_t n, al_http_header_t *f, size_t *bad)
{
    *bad = 0;
    if (l[0] == ' ' || l[0] == '\t')
        return AL_HTTP_E_OBS_FOLD;
    size_t i = 0;
    while (i < n && is_tchar(l[i]))
        i++;
    *bad = i;
    if (i == n)
        return AL_HTTP_E_MISSING_COLON;
    if (l[i] == ' ' || l[i] == '\t')
        return AL_HTTP_E_SPACE_BEFORE_COLON;
    if (l[i] != ':' || i == 0)
        return AL_HTTP_E_BAD_HEADER_NAME;
    for (size_t j = i + 1; j < n; j++) {
        if (!is_value_char(l[j])) {
            *bad = j;
            return AL_HTTP_E_BAD_HEADER_VALUE;
        }
    }
    size_t vs = i + 1, ve = n;
    while (vs < ve && (l[vs] == ' ' || l[vs] == '\t'))
        vs++;
    while (ve > vs && (l[ve - 1] == ' ' || l[ve - 1] == '\t'))
        ve--;
    f->name = view(l, i);
    f->value = view(l + vs, ve - vs);
    return AL_HTTP_OK;
}

/* RFC 9110 §8.6: 1*DIGIT, capped at 2^62. */
static bool parse_content_length(al_str_t v, int64_t *out)
{
    if (v.len == 0)
        return false;
    uint64_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        uint8_t c = (uint8_t)v.p[i];
        if (!is_digit(c))
            return false;
        n = n * 10 + (uint64_t)(c - '0');
        if (n > CL_MAX)
            return false;
    }
    *out = (int64_t)n;
    return true;
}

/* What the semantic pass collects from the fields. */
typedef struct field_flags {
    bool cl, te, host, conn_close, conn_keep_alive, conn_upgrade, upgrade_field, expect_100;
} field_flags_t;

/* RFC 9110 §7.6.1: Connection is a comma list of tokens. */
static void scan_connection(al_str_t v, field_flags_t *ff)
{
    size_t i = 0;
    while (i < v.len) {
        size_t s = i;
        while (i < v.len && v.p[i] != ',')
            i++;
        size_t e = i;
        while (s < e && (v.p[s] == ' ' || v.p[s] == '\t'))
            s++;
        while (e > s && (v.p[e - 1] == ' ' || v.p[e - 1] == '\t'))
            e--;
        if (ieq(v.p + s, e - s, "close"))
            ff->conn_close = true;
        else if (ieq(v.p + s, e - s, "keep-alive"))
            ff->conn_keep_alive = true;
        else if (ieq(v.p + s, e - s, "upgrade"))
            ff->conn_upgrade = true;
        i++;
    }
}

/* Applies one field to the head; framing fields are checked here, at the
 * line that breaks a rule, so the error position names it. */
static al_http_err_t apply_field(const al_http_parser_t *st, al_http_head_t *h,
                                 const al_http_header_t *f, field_flags_t *ff)
{
    al_str_t n = f->name;
    if (ieq(n.p, n.len, "content-length")) {
        if (ff->cl)
            return AL_HTTP_E_DUPLICATE_CONTENT_LENGTH;
        ff->cl = true;
        if (!parse_content_length(f->value, &h->content_length))
            return AL_HTTP_E_BAD_CONTENT_LENGTH;
        if (ff->te)
            return AL_HTTP_E_CL_AND_TE;
    } else if (ieq(n.p, n.len, "transfer-encoding")) {
        if (ff->te)
            return AL_HTTP_E_DUPLICATE_TRANSFER_ENCODING;
        ff->te = true;
        if (!ieq(f->value.p, f->value.len, "chunked"))
            return AL_HTTP_E_BAD_TRANSFER_ENCODING;
        if (h->version == 10)
            return AL_HTTP_E_TE_IN_HTTP10;
        if (ff->cl)
            return AL_HTTP_E_CL_AND_TE;
        h->chunked = true;
    } else if (st->mode == AL_HTTP_REQUEST && ieq(n.p, n.len, "host")) {
        if (ff->host)
            return AL_HTTP_E_DUPLICATE_HOST;
        ff->host = true;
        if (!valid_authority((const uint8_t *)f->value.p, f->value.len, false, true))
            return AL_HTTP_E_BAD_HOST;
        h->host = f->value;
    } else if (ieq(n.p, n.len, "connection")) {
        scan_connection(f->value, ff);
    } else if (ieq(n.p, n.len, "upgrade")) {
        ff->upgrade_field = true;
    } else if (ieq(n.p, n.len, "expect")) {
        if (ieq(f->value.p, f->value.len, "100-continue"))
            ff->expect_100 = true;
    }
    return AL_HTTP_OK;
}

/* ---- framing decisions (RFC 9112 §6.3) ---------------------------------- */

static al_http_err_t frame_request(al_http_parser_t *st, al_http_head_t *h)
{
    h->has_body = h->chunked || h->content_length > 0;
    bool connect = h->form == AL_HTTP_FORM_AUTHORITY;
    if (connect && h->has_body)
        return AL_HTTP_E_CONNECT_WITH_BODY;
    st->hold_after = connect || h->upgrade;
    if (h->chunked)
        st->state = AL_HTTP_S_CHUNK_SIZE;
    else if (h->has_body) {
        st->state = AL_HTTP_S_BODY_CL;
        st->remaining = (uint64_t)h->content_length;
    }
    return AL_HTTP_OK;
}

static void frame_response(al_http_parser_t *st, al_http_head_t *h)
{
    int s = h->status;
    bool informational = s < 200;
    if (s == 101 || (st->req == AL_HTTP_REQ_CONNECT && s >= 200 && s < 300)) {
        h->tunnel = true;
        h->keep_alive = false;
    } else if (informational || st->req == AL_HTTP_REQ_HEAD || s == 204 || s == 304) {
        h->has_body = false;
    } else if (h->chunked) {
        h->has_body = true;
        st->state = AL_HTTP_S_CHUNK_SIZE;
    } else if (h->content_length >= 0) {
        h->has_body = h->content_length > 0;
        st->state = AL_HTTP_S_BODY_CL;
        st->remaining = (uint64_t)h->content_length;
    } else {
        h->has_body = true;
        h->close_delimited = true;
        h->keep_alive = false;
        st->state = AL_HTTP_S_BODY_EOF;
    }
    if (!informational || s == 101) /* the request is answered */
        st->req = AL_HTTP_REQ_UNSET;
}

/* ---- head --------------------------------------------------------------- */

static size_t max_fields(const al_http_parser_t *st)
{
    return AL_MIN(st->limits.max_headers, st->headers_cap);
}

/* Position of the next line end at or after *pos in p[0..head_len); the
 * head was validated, so every line ends in CRLF. Returns the line length
 * without CRLF and advances *pos past the CRLF. */
static size_t next_line(const uint8_t *p, size_t head_len, size_t *pos)
{
    const uint8_t *nl = memchr(p + *pos, '\n', head_len - *pos);
    size_t lf = (size_t)(nl - p);
    size_t n = lf - 1 - *pos;
    *pos = lf + 1;
    return n;
}

/* Second pass over a complete, line-validated head: fill out->head and
 * decide the framing. */
static ssize_t finish_head(al_http_parser_t *st, const uint8_t *p, size_t head_len,
                           al_http_msg_t *out)
{
    al_http_head_t *h = &out->head;
    clear_message(st);
    memset(h, 0, sizeof *h);
    h->content_length = -1;
    h->raw = view(p, head_len);
    h->headers = st->headers;
    size_t pos = 0, bad = 0;
    size_t n = next_line(p, head_len, &pos);
    al_http_err_t e = st->mode == AL_HTTP_REQUEST ? parse_request_line(p, n, h, &bad)
                                                  : parse_status_line(p, n, h, &bad);
    if (e != AL_HTTP_OK)
        return fail(st, e, bad);
    field_flags_t ff = {0};
    for (;;) {
        size_t ls = pos;
        n = next_line(p, head_len, &pos);
        if (n == 0)
            break;
        al_http_header_t *f = &h->headers[h->nheaders++];
        e = parse_field_line(p + ls, n, f, &bad);
        if (e == AL_HTTP_OK)
            e = apply_field(st, h, f, &ff);
        if (e != AL_HTTP_OK)
            return fail(st, e, ls);
    }
    bool v11 = h->version == 11;
    h->keep_alive = !ff.conn_close && (v11 || ff.conn_keep_alive);
    h->upgrade = v11 && ff.conn_upgrade && ff.upgrade_field;
    if (st->mode == AL_HTTP_REQUEST) {
        h->expect_continue = v11 && ff.expect_100;
        if (v11 && !ff.host)
            return fail(st, AL_HTTP_E_MISSING_HOST, head_len - 2);
        if (h->form == AL_HTTP_FORM_ABSOLUTE && ff.host && !ieq_str(h->host, h->authority))
            return fail(st, AL_HTTP_E_HOST_MISMATCH, head_len - 2);
        if (h->form != AL_HTTP_FORM_ABSOLUTE && h->form != AL_HTTP_FORM_AUTHORITY)
            h->authority = h->host;
        e = frame_request(st, h);
        if (e != AL_HTTP_OK)
            return fail(st, e, head_len - 2);
    } else {
        frame_response(st, h);
    }
    out->event = AL_HTTP_EV_HEAD;
    if (h->tunnel) {
        out->done = true;
        st->state = AL_HTTP_S_TUNNEL;
    } else if (!h->has_body) {
        end_message(st, out);
    }
    return (ssize_t)head_len;
}

/* Validates one complete line of the head (content without CRLF). */
static al_http_err_t check_head_line(al_http_parser_t *st, const uint8_t *l, size_t n,
                                     bool first, size_t *bad)
{
    const uint8_t *cr = memchr(l, '\r', n);
    if (cr) { /* RFC 9112 §2.2: a CR must be followed by LF */
        *bad = (size_t)(cr - l);
        return AL_HTTP_E_BARE_CR;
    }
    al_http_head_t tmp;
    al_http_header_t f;
    if (first) {
        memset(&tmp, 0, sizeof tmp);
        return st->mode == AL_HTTP_REQUEST ? parse_request_line(l, n, &tmp, bad)
                                           : parse_status_line(l, n, &tmp, bad);
    }
    al_http_err_t e = parse_field_line(l, n, &f, bad);
    if (e == AL_HTTP_OK && ++st->nfields > max_fields(st)) {
        *bad = 0;
        return AL_HTTP_E_TOO_MANY_HEADERS;
    }
    return e;
}

/* Scans lines from where the last call stopped; validates each complete
 * line at once so garbage is refused without waiting for the whole head. */
static ssize_t parse_head(al_http_parser_t *st, const uint8_t *p, size_t len, al_http_msg_t *out)
{
    size_t max_line = st->limits.max_start_line, max_head = st->limits.max_head;
    al_http_err_t line_err = st->mode == AL_HTTP_REQUEST ? AL_HTTP_E_REQUEST_LINE_TOO_LONG
                                                         : AL_HTTP_E_STATUS_LINE_TOO_LONG;
    size_t pos = st->scan, ls = st->line_start;
    if (len < pos)
        return fail(st, AL_HTTP_E_BAD_CALL, 0);
    if (st->mode == AL_HTTP_RESPONSE && st->req == AL_HTTP_REQ_UNSET)
        return fail(st, AL_HTTP_E_NO_REQUEST_METHOD, 0);
    size_t window = AL_MIN(len, max_head);
    for (;;) {
        const uint8_t *nl = pos < window ? memchr(p + pos, '\n', window - pos) : NULL;
        if (!nl) {
            if (ls == 0 && len >= max_line)
                return fail(st, line_err, max_line);
            if (len >= max_head)
                return fail(st, AL_HTTP_E_HEAD_TOO_LARGE, max_head);
            st->scan = window;
            st->line_start = ls;
            return 0;
        }
        size_t lf = (size_t)(nl - p);
        /* the length first: a caller feeding less would have hit it before
         * the LF arrived, and the answer must not depend on the feeding */
        if (ls == 0 && lf + 1 > max_line)
            return fail(st, line_err, max_line);
        if (lf == ls || p[lf - 1] != '\r')
            return fail(st, AL_HTTP_E_BARE_LF, lf);
        size_t n = lf - 1 - ls, bad = 0;
        if (ls != 0 && n == 0)
            return finish_head(st, p, lf + 1, out);
        al_http_err_t e = check_head_line(st, p + ls, n, ls == 0, &bad);
        if (e != AL_HTTP_OK)
            return fail(st, e, ls + bad);
        ls = pos = lf + 1;
    }
}

/* ---- body --------------------------------------------------------------- */

/* chunk-size CRLF (RFC 9112 §7.1), no extensions. Sets *used to the line
 * length, or 0 when the line is not complete yet (it is at most 18 bytes,
 * so re-reading it is cheap). */
static al_http_err_t chunk_size_line(const uint8_t *p, size_t n, uint64_t *size,
                                     size_t *used, size_t *bad)
{
    uint64_t v = 0;
    size_t i = 0;
    *used = 0;
    for (; i < n && hex_val(p[i]) >= 0; i++) {
        if (i == CHUNK_SIZE_DIGITS) {
            *bad = i;
            return AL_HTTP_E_BAD_CHUNK_SIZE;
        }
        v = (v << 4) | (uint64_t)hex_val(p[i]);
    }
    *bad = i;
    if (i == n)
        return AL_HTTP_OK;
    if (i == 0)
        return AL_HTTP_E_BAD_CHUNK_SIZE;
    if (p[i] == ';')
        return AL_HTTP_E_BAD_CHUNK_EXT;
    if (p[i] == '\n')
        return AL_HTTP_E_BARE_LF;
    if (p[i] != '\r')
        return AL_HTTP_E_BAD_CHUNK_SIZE;
    if (i + 1 == n)
        return AL_HTTP_OK;
    if (p[i + 1] != '\n')
        return AL_HTTP_E_BARE_CR;
    *used = i + 2;
    *size = v;
    return AL_HTTP_OK;
}

/* RFC 9110 §6.5.1: fields a trailer must not carry (framing, routing). */
static bool forbidden_trailer(al_str_t name)
{
    return ieq(name.p, name.len, "content-length") ||
           ieq(name.p, name.len, "transfer-encoding") || ieq(name.p, name.len, "host");
}

/* One trailer line at p[off..len). Returns 1 when a line was consumed
 * (*off advanced; *end set on the empty line), 0 when incomplete, AL_ERR. */
static int trailer_line(al_http_parser_t *st, const uint8_t *p, size_t len, size_t *off, bool *end)
{
    size_t o = *off;
    size_t budget = st->limits.max_head - st->trailer_bytes;
    size_t window = AL_MIN(len, o + budget);
    size_t pos = o + st->scan;
    const uint8_t *nl = pos < window ? memchr(p + pos, '\n', window - pos) : NULL;
    if (!nl) {
        if (len - o >= budget)
            return (int)fail(st, AL_HTTP_E_TRAILERS_TOO_LARGE, o + budget);
        st->scan = window - o;
        return 0;
    }
    size_t lf = (size_t)(nl - p);
    if (lf == o || p[lf - 1] != '\r')
        return (int)fail(st, AL_HTTP_E_BARE_LF, lf);
    size_t n = lf - 1 - o, bad = 0;
    st->scan = 0;
    st->trailer_bytes += n + 2;
    *off = lf + 1;
    if (n == 0) {
        *end = true;
        return 1;
    }
    const uint8_t *cr = memchr(p + o, '\r', n);
    if (cr)
        return (int)fail(st, AL_HTTP_E_BARE_CR, (size_t)(cr - p));
    al_http_header_t f;
    al_http_err_t e = parse_field_line(p + o, n, &f, &bad);
    if (e != AL_HTTP_OK)
        return (int)fail(st, e, o + bad);
    if (forbidden_trailer(f.name))
        return (int)fail(st, AL_HTTP_E_BAD_TRAILER, o);
    if (++st->nfields > st->limits.max_headers)
        return (int)fail(st, AL_HTTP_E_TOO_MANY_HEADERS, o);
    return 1;
}

/* Consumes framing and at most one run of chunk data. */
static ssize_t parse_chunked(al_http_parser_t *st, const uint8_t *p, size_t len, al_http_msg_t *out)
{
    size_t off = 0;
    for (;;) {
        switch (st->state) {
        case AL_HTTP_S_CHUNK_SIZE: {
            uint64_t size = 0;
            size_t used = 0, bad = 0;
            al_http_err_t e = chunk_size_line(p + off, len - off, &size, &used, &bad);
            if (e != AL_HTTP_OK)
                return fail(st, e, off + bad);
            if (used == 0)
                goto need_more;
            off += used;
            st->remaining = size;
            st->scan = 0;
            st->nfields = 0;
            st->state = size ? AL_HTTP_S_CHUNK_DATA : AL_HTTP_S_TRAILERS;
            break;
        }
        case AL_HTTP_S_CHUNK_DATA: {
            size_t take = (size_t)AL_MIN((uint64_t)(len - off), st->remaining);
            if (take == 0)
                goto need_more;
            st->remaining -= take;
            if (st->remaining == 0)
                st->state = AL_HTTP_S_CHUNK_CRLF;
            out->event = AL_HTTP_EV_BODY;
            out->body = view(p + off, take);
            return (ssize_t)(off + take);
        }
        case AL_HTTP_S_CHUNK_CRLF:
            if (off < len && p[off] != '\r')
                return fail(st, AL_HTTP_E_MISSING_CHUNK_CRLF, off);
            if (off + 1 < len && p[off + 1] != '\n')
                return fail(st, AL_HTTP_E_MISSING_CHUNK_CRLF, off + 1);
            if (len - off < 2)
                goto need_more;
            off += 2;
            st->state = AL_HTTP_S_CHUNK_SIZE;
            break;
        case AL_HTTP_S_TRAILERS: {
            bool end = false;
            int r = trailer_line(st, p, len, &off, &end);
            if (r < 0)
                return AL_ERR;
            if (r == 0)
                goto need_more;
            if (end) {
                out->event = AL_HTTP_EV_END;
                out->body = view(p + off, 0);
                end_message(st, out);
                return (ssize_t)off;
            }
            break;
        }
        default:
            return fail(st, AL_HTTP_E_BAD_CALL, off);
        }
    }
need_more:
    if (off == 0)
        return 0;
    out->event = AL_HTTP_EV_BODY; /* framing only */
    out->body = view(p + off, 0);
    return (ssize_t)off;
}

static ssize_t parse_body(al_http_parser_t *st, const uint8_t *p, size_t len, al_http_msg_t *out)
{
    switch (st->state) {
    case AL_HTTP_S_BODY_CL: {
        size_t take = (size_t)AL_MIN((uint64_t)len, st->remaining);
        if (take == 0)
            return 0;
        st->remaining -= take;
        out->body = view(p, take);
        out->event = AL_HTTP_EV_BODY;
        if (st->remaining == 0) {
            out->event = AL_HTTP_EV_END;
            end_message(st, out);
        }
        return (ssize_t)take;
    }
    case AL_HTTP_S_BODY_EOF:
    case AL_HTTP_S_TUNNEL:
        if (len == 0)
            return 0;
        out->event = st->state == AL_HTTP_S_TUNNEL ? AL_HTTP_EV_TUNNEL : AL_HTTP_EV_BODY;
        out->body = view(p, len);
        return (ssize_t)len;
    default:
        return parse_chunked(st, p, len, out);
    }
}

ssize_t al_http_parse(al_http_parser_t *st, const uint8_t *p, size_t len, al_http_msg_t *out)
{
    out->event = AL_HTTP_EV_NONE;
    out->done = false;
    out->body = (al_str_t){NULL, 0};
    if (st->state == AL_HTTP_S_DEAD)
        return AL_ERR;
    if (!p && len)
        return fail(st, AL_HTTP_E_BAD_CALL, 0);
    ssize_t r;
    switch (st->state) {
    case AL_HTTP_S_HEAD:
        r = len ? parse_head(st, p, len, out) : 0;
        break;
    case AL_HTTP_S_HOLD:
        r = fail(st, AL_HTTP_E_AWAITING_RESPONSE, 0);
        break;
    default:
        r = parse_body(st, p, len, out);
        break;
    }
    if (r > 0)
        st->stream_off += (uint64_t)r;
    return r;
}

int al_http_parser_eof(al_http_parser_t *st, al_http_msg_t *out)
{
    out->event = AL_HTTP_EV_NONE;
    out->done = false;
    out->body = (al_str_t){NULL, 0};
    switch (st->state) {
    case AL_HTTP_S_DEAD:
        return AL_ERR;
    case AL_HTTP_S_HEAD:
        if (st->scan == 0)
            return AL_OK;
        return (int)fail(st, AL_HTTP_E_TRUNCATED, st->scan);
    case AL_HTTP_S_BODY_EOF: /* RFC 9112 §6.3 item 8 */
        out->event = AL_HTTP_EV_END;
        end_message(st, out);
        return AL_OK;
    case AL_HTTP_S_HOLD:
    case AL_HTTP_S_TUNNEL:
        return AL_OK;
    default:
        return (int)fail(st, AL_HTTP_E_TRUNCATED, st->scan);
    }
}
