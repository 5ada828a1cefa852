/* pg_codec.c - PostgreSQL protocol 3.0 framing, body parsers and builders.
 * See pg_codec.h for the rules; section names refer to the PostgreSQL
 * manual's "Frontend/Backend Protocol" chapter. */
#include <limits.h>
#include <stdlib.h>

#include "proto/pg/pg_codec.h"

/* A reassembly buffer larger than this is released once its message has
 * been delivered, so an idle session does not pin a 64 MiB allocation. */
#define KEEP_BUF (64u * 1024u)

static const char *const err_names[AL_PG__ERR_COUNT] = {
    [AL_PG_OK] = "ok",
    [AL_PG_E_BAD_CALL] = "bad_call",
    [AL_PG_E_NOMEM] = "out_of_memory",
    [AL_PG_E_UNKNOWN_TYPE] = "unknown_type",
    [AL_PG_E_UNEXPECTED_TYPE] = "unexpected_type",
    [AL_PG_E_BAD_LENGTH] = "bad_length",
    [AL_PG_E_TOO_LARGE] = "too_large",
    [AL_PG_E_UNSUPPORTED_VERSION] = "unsupported_protocol_version",
    [AL_PG_E_DATA_WHILE_HELD] = "data_while_held",
    [AL_PG_E_DATA_AFTER_END] = "data_after_end",
    [AL_PG_E_TRUNCATED] = "truncated",
    [AL_PG_E_SHORT] = "short_body",
    [AL_PG_E_MISSING_NUL] = "missing_nul",
    [AL_PG_E_TRAILING] = "trailing_bytes",
    [AL_PG_E_BAD_COUNT] = "bad_count",
    [AL_PG_E_BAD_VALUE] = "bad_value",
    [AL_PG_E_BAD_FORMAT] = "bad_format_code",
    [AL_PG_E_DUPLICATE_PARAM] = "duplicate_parameter",
    [AL_PG_E_TOO_MANY_PARAMS] = "too_many_parameters",
    [AL_PG_E_MISSING_USER] = "missing_user",
    [AL_PG_E_MISSING_TERMINATOR] = "missing_terminator",
};

const char *al_pg_err_str(al_pg_err_t e)
{
    if ((unsigned)e >= AL_PG__ERR_COUNT || !err_names[e])
        return "unknown";
    return err_names[e];
}

/* ---- framer ---------------------------------------------------------------- */

/* Message Formats: the type bytes each direction sends. */
static const char FE_TYPES[] = "BCDEFHPQSXcdfp";
static const char BE_TYPES[] = "123ACDEGHIKNRSTVWZcdnstv";
/* Message Flow, Start-up: before AuthenticationOk the frontend only answers
 * authentication requests (or leaves); the backend only sends
 * Authentication*, ErrorResponse, NoticeResponse, NegotiateProtocolVersion. */
static const char FE_PREAUTH[] = "pX";
static const char BE_PREAUTH[] = "ENRv";

static bool in_set(const char *set, size_t n, uint8_t c) { return memchr(set, c, n) != NULL; }

static uint32_t clamp_cap(uint32_t v, uint32_t dflt, uint32_t lo)
{
    if (v == 0)
        v = dflt;
    if (v < lo)
        v = lo;
    return v > AL_PG_HARD_MAX_MESSAGE ? AL_PG_HARD_MAX_MESSAGE : v;
}

al_pg_limits_t al_pg_limits_default(void)
{
    return (al_pg_limits_t){AL_PG_DEFAULT_MAX_STARTUP, AL_PG_DEFAULT_MAX_PREAUTH,
                            AL_PG_DEFAULT_MAX_MESSAGE};
}

void al_pg_framer_init(al_pg_framer_t *f, al_pg_dir_t dir, const al_pg_limits_t *limits)
{
    memset(f, 0, sizeof *f);
    f->dir = dir;
    al_pg_limits_t l = limits ? *limits : al_pg_limits_default();
    f->limits.max_startup = clamp_cap(l.max_startup, AL_PG_DEFAULT_MAX_STARTUP, 16);
    f->limits.max_preauth = clamp_cap(l.max_preauth, AL_PG_DEFAULT_MAX_PREAUTH, 4);
    f->limits.max_message = clamp_cap(l.max_message, AL_PG_DEFAULT_MAX_MESSAGE, 4);
    al_pg_framer_reset(f);
}

void al_pg_framer_free(al_pg_framer_t *f)
{
    al_free(&f->buf);
    f->buf_cap = 0;
    f->buf_len = 0;
}

void al_pg_framer_reset(al_pg_framer_t *f)
{
    f->state = f->dir == AL_PG_FRONTEND ? AL_PG_FS_STARTUP : AL_PG_FS_TYPED;
    f->authenticated = false;
    f->hdr_len = 0;
    f->buf_len = 0;
    f->need = 0;
    f->stream_off = 0;
    f->err = AL_PG_OK;
    f->err_pos = 0;
}

void al_pg_framer_set_authenticated(al_pg_framer_t *f) { f->authenticated = true; }

int al_pg_framer_resume(al_pg_framer_t *f)
{
    if (f->state != AL_PG_FS_HOLD)
        return AL_ERR;
    f->state = AL_PG_FS_STARTUP;
    return AL_OK;
}

static ssize_t fail(al_pg_framer_t *f, al_pg_err_t e, uint64_t pos)
{
    f->state = AL_PG_FS_DEAD;
    f->err = e;
    f->err_pos = pos;
    return AL_ERR;
}

/* Checks the first have bytes of a header (as many as have arrived), so a
 * bad type or length is refused as soon as it is seen. Sets *need (the raw
 * message length) once the length field is complete, and *bad_at to the
 * offending byte's offset within the message on failure. */
static al_pg_err_t check_header(const al_pg_framer_t *f, const uint8_t *h, size_t have,
                                size_t *need, size_t *bad_at)
{
    *need = 0;
    if (f->state == AL_PG_FS_STARTUP) {
        if (have < 4)
            return AL_PG_OK;
        uint32_t len = al_pg_u32(h);
        *bad_at = 0;
        if (len < 8)
            return AL_PG_E_BAD_LENGTH;
        if (len > f->limits.max_startup)
            return AL_PG_E_TOO_LARGE;
        if (have < 8)
            return AL_PG_OK;
        switch (al_pg_u32(h + 4)) {
        case AL_PG_SSL_REQUEST_CODE:
        case AL_PG_GSSENC_REQUEST_CODE:
            if (len != 8)
                return AL_PG_E_BAD_LENGTH;
            break;
        case AL_PG_CANCEL_REQUEST_CODE:
            if (len != 16)
                return AL_PG_E_BAD_LENGTH;
            break;
        case AL_PG_PROTOCOL_3_0:
            break;
        default:
            *bad_at = 4;
            return AL_PG_E_UNSUPPORTED_VERSION;
        }
        *need = len;
        return AL_PG_OK;
    }
    if (have < 1)
        return AL_PG_OK;
    bool fe = f->dir == AL_PG_FRONTEND;
    *bad_at = 0;
    if (!(fe ? in_set(FE_TYPES, sizeof FE_TYPES - 1, h[0]) : in_set(BE_TYPES, sizeof BE_TYPES - 1, h[0])))
        return AL_PG_E_UNKNOWN_TYPE;
    if (!f->authenticated && !(fe ? in_set(FE_PREAUTH, sizeof FE_PREAUTH - 1, h[0])
                                  : in_set(BE_PREAUTH, sizeof BE_PREAUTH - 1, h[0])))
        return AL_PG_E_UNEXPECTED_TYPE;
    if (have < 5)
        return AL_PG_OK;
    uint32_t len = al_pg_u32(h + 1);
    *bad_at = 1;
    if (len < 4)
        return AL_PG_E_BAD_LENGTH;
    if (len > (f->authenticated ? f->limits.max_message : f->limits.max_preauth))
        return AL_PG_E_TOO_LARGE;
    *need = (size_t)len + 1;
    return AL_PG_OK;
}

/* Makes room for n raw bytes of the partial message (n <= f->need). */
static bool grow(al_pg_framer_t *f, size_t n)
{
    if (n <= f->buf_cap)
        return true;
    size_t cap = f->buf_cap ? f->buf_cap * 2 : 256;
    if (cap < n)
        cap = n;
    if (cap > f->need)
        cap = f->need;
    uint8_t *p = al_realloc(f->buf, cap);
    if (!p)
        return false;
    f->buf = p;
    f->buf_cap = cap;
    return true;
}

static void deliver(al_pg_framer_t *f, const uint8_t *raw, size_t n, al_pg_msg_t *out)
{
    memset(out, 0, sizeof *out);
    out->raw = raw;
    out->raw_len = n;
    if (f->state == AL_PG_FS_STARTUP) {
        out->code = al_pg_u32(raw + 4);
        out->body = raw + 4;
        out->body_len = n - 4;
        if (out->code == AL_PG_SSL_REQUEST_CODE || out->code == AL_PG_GSSENC_REQUEST_CODE)
            f->state = AL_PG_FS_HOLD;
        else if (out->code == AL_PG_CANCEL_REQUEST_CODE)
            f->state = AL_PG_FS_END;
        else
            f->state = AL_PG_FS_TYPED;
        return;
    }
    out->type = raw[0];
    out->body = raw + 5;
    out->body_len = n - 5;
    /* Message Flow, Termination: the frontend sends nothing after Terminate. */
    if (f->dir == AL_PG_FRONTEND && out->type == 'X')
        f->state = AL_PG_FS_END;
}

ssize_t al_pg_frame(al_pg_framer_t *f, const uint8_t *p, size_t len, al_pg_msg_t *out)
{
    if (f->state == AL_PG_FS_DEAD)
        return AL_ERR;
    if (!out || (!p && len))
        return fail(f, AL_PG_E_BAD_CALL, f->stream_off);
    if (f->hdr_len == 0 && f->buf_len == 0 && f->buf_cap > KEEP_BUF) {
        al_free(&f->buf);
        f->buf_cap = 0;
    }
    if (len == 0)
        return 0;
    if (f->state == AL_PG_FS_HOLD)
        return fail(f, AL_PG_E_DATA_WHILE_HELD, f->stream_off);
    if (f->state == AL_PG_FS_END)
        return fail(f, AL_PG_E_DATA_AFTER_END, f->stream_off);

    size_t hsize = f->state == AL_PG_FS_STARTUP ? 8 : 5;
    size_t need = 0, bad_at = 0, used = 0;
    al_pg_err_t e;

    if (f->hdr_len == 0 && f->buf_len == 0) {
        /* Between messages: frame in place when the whole message is here. */
        e = check_header(f, p, AL_MIN(len, hsize), &need, &bad_at);
        if (e != AL_PG_OK)
            return fail(f, e, f->stream_off + bad_at);
        if (len < hsize) {
            memcpy(f->hdr, p, len);
            f->hdr_len = len;
            f->stream_off += len;
            return 0;
        }
        if (len >= need) {
            deliver(f, p, need, out);
            f->stream_off += need;
            return (ssize_t)need;
        }
        f->need = need;
        if (!grow(f, len))
            return fail(f, AL_PG_E_NOMEM, f->stream_off);
        memcpy(f->buf, p, len);
        f->buf_len = len;
        f->stream_off += len;
        return 0;
    }

    if (f->buf_len == 0) {
        /* Completing a header split across calls. */
        size_t take = AL_MIN(hsize - f->hdr_len, len);
        uint64_t start = f->stream_off - f->hdr_len;
        memcpy(f->hdr + f->hdr_len, p, take);
        e = check_header(f, f->hdr, f->hdr_len + take, &need, &bad_at);
        if (e != AL_PG_OK)
            return fail(f, e, start + bad_at);
        f->hdr_len += take;
        used = take;
        if (f->hdr_len < hsize) {
            f->stream_off += used;
            return 0;
        }
        f->need = need;
        if (!grow(f, AL_MIN(need, hsize + (len - used))))
            return fail(f, AL_PG_E_NOMEM, start);
        memcpy(f->buf, f->hdr, hsize);
        f->buf_len = hsize;
        f->hdr_len = 0;
    }

    size_t take = AL_MIN(f->need - f->buf_len, len - used);
    if (!grow(f, f->buf_len + take))
        return fail(f, AL_PG_E_NOMEM, f->stream_off + used);
    if (take)
        memcpy(f->buf + f->buf_len, p + used, take);
    f->buf_len += take;
    used += take;
    f->stream_off += used;
    if (f->buf_len < f->need)
        return 0;
    deliver(f, f->buf, f->need, out);
    f->buf_len = 0;
    f->need = 0;
    return (ssize_t)used;
}

int al_pg_framer_eof(al_pg_framer_t *f)
{
    if (f->state == AL_PG_FS_DEAD)
        return AL_ERR;
    if (f->hdr_len || f->buf_len) {
        fail(f, AL_PG_E_TRUNCATED, f->stream_off);
        return AL_ERR;
    }
    return AL_OK;
}

/* ---- body reader ------------------------------------------------------------- */

typedef struct rd {
    const uint8_t *p;
    size_t len;
    size_t off;
} rd_t;

static size_t rd_left(const rd_t *r) { return r->len - r->off; }

static bool rd_u8(rd_t *r, uint8_t *v)
{
    if (rd_left(r) < 1)
        return false;
    *v = r->p[r->off++];
    return true;
}

static bool rd_u16(rd_t *r, uint16_t *v)
{
    if (rd_left(r) < 2)
        return false;
    *v = al_pg_u16(r->p + r->off);
    r->off += 2;
    return true;
}

static bool rd_u32(rd_t *r, uint32_t *v)
{
    if (rd_left(r) < 4)
        return false;
    *v = al_pg_u32(r->p + r->off);
    r->off += 4;
    return true;
}

/* Message Data Types, String: bytes up to a NUL. */
static al_pg_err_t rd_str(rd_t *r, al_str_t *s)
{
    const uint8_t *z = rd_left(r) ? memchr(r->p + r->off, 0, rd_left(r)) : NULL;
    if (!z)
        return AL_PG_E_MISSING_NUL;
    s->p = (const char *)(r->p + r->off);
    s->len = (size_t)(z - (r->p + r->off));
    r->off += s->len + 1;
    return AL_PG_OK;
}

static al_pg_err_t rd_end(const rd_t *r) { return r->off == r->len ? AL_PG_OK : AL_PG_E_TRAILING; }

/* A count followed by that many Int16 format codes, each 0 or 1. */
static al_pg_err_t rd_formats(rd_t *r, uint16_t *n, const uint8_t **codes)
{
    if (!rd_u16(r, n))
        return AL_PG_E_SHORT;
    if (rd_left(r) < (size_t)*n * 2)
        return AL_PG_E_BAD_COUNT;
    *codes = r->p + r->off;
    for (size_t i = 0; i < *n; i++)
        if (al_pg_u16(*codes + 2 * i) > 1)
            return AL_PG_E_BAD_FORMAT;
    r->off += (size_t)*n * 2;
    return AL_PG_OK;
}

/* A count followed by that many values (Int32 length, -1 = NULL, bytes). */
static al_pg_err_t rd_values(rd_t *r, uint16_t *n, const uint8_t **start, size_t *vlen)
{
    if (!rd_u16(r, n))
        return AL_PG_E_SHORT;
    if (rd_left(r) < (size_t)*n * 4)
        return AL_PG_E_BAD_COUNT;
    size_t from = r->off;
    for (size_t i = 0; i < *n; i++) {
        uint32_t l;
        if (!rd_u32(r, &l))
            return AL_PG_E_SHORT;
        if (l == UINT32_MAX)
            continue;
        if (l > INT32_MAX)
            return AL_PG_E_BAD_VALUE;
        if (rd_left(r) < l)
            return AL_PG_E_SHORT;
        r->off += l;
    }
    *start = r->p + from;
    *vlen = r->off - from;
    return AL_PG_OK;
}

static al_pg_err_t whole_str(const uint8_t *body, size_t len, al_str_t *s)
{
    rd_t r = {body, len, 0};
    al_pg_err_t e = rd_str(&r, s);
    return e != AL_PG_OK ? e : rd_end(&r);
}

/* ---- frontend bodies ------------------------------------------------------------ */

static al_pg_err_t parse_params(rd_t *r, al_pg_startup_t *out)
{
    for (;;) {
        al_pg_param_t pm;
        if (rd_left(r) == 0)
            return AL_PG_E_MISSING_TERMINATOR;
        al_pg_err_t e = rd_str(r, &pm.name);
        if (e != AL_PG_OK)
            return e;
        if (pm.name.len == 0)
            return rd_end(r); /* the list terminator must be the last byte */
        if ((e = rd_str(r, &pm.value)) != AL_PG_OK)
            return e;
        for (size_t i = 0; i < out->nparams; i++)
            if (al_str_eq(out->params[i].name, pm.name))
                return AL_PG_E_DUPLICATE_PARAM;
        if (out->nparams == AL_PG_MAX_STARTUP_PARAMS)
            return AL_PG_E_TOO_MANY_PARAMS;
        out->params[out->nparams++] = pm;
        if (al_str_eq_c(pm.name, "user"))
            out->user = pm.value;
        else if (al_str_eq_c(pm.name, "database"))
            out->database = pm.value;
    }
}

al_pg_err_t al_pg_parse_startup(const uint8_t *body, size_t len, al_pg_startup_t *out)
{
    memset(out, 0, sizeof *out);
    rd_t r = {body, len, 0};
    if (!rd_u32(&r, &out->code))
        return AL_PG_E_SHORT;
    switch (out->code) {
    case AL_PG_SSL_REQUEST_CODE:
    case AL_PG_GSSENC_REQUEST_CODE:
        out->kind = out->code == AL_PG_SSL_REQUEST_CODE ? AL_PG_SK_SSL_REQUEST : AL_PG_SK_GSSENC_REQUEST;
        return len == 4 ? AL_PG_OK : AL_PG_E_BAD_LENGTH;
    case AL_PG_CANCEL_REQUEST_CODE: {
        uint32_t pid;
        if (len != 12)
            return AL_PG_E_BAD_LENGTH;
        out->kind = AL_PG_SK_CANCEL_REQUEST;
        rd_u32(&r, &pid);
        rd_u32(&r, &out->cancel_key);
        out->cancel_pid = (int32_t)pid;
        return AL_PG_OK;
    }
    case AL_PG_PROTOCOL_3_0:
        break;
    default:
        return AL_PG_E_UNSUPPORTED_VERSION;
    }
    out->kind = AL_PG_SK_STARTUP;
    al_pg_err_t e = parse_params(&r, out);
    if (e != AL_PG_OK)
        return e;
    /* Message Flow, Start-up: the user name is required. */
    if (!out->user.p || out->user.len == 0)
        return AL_PG_E_MISSING_USER;
    return AL_PG_OK;
}

al_pg_err_t al_pg_parse_query(const uint8_t *body, size_t len, al_str_t *sql)
{
    return whole_str(body, len, sql);
}

al_pg_err_t al_pg_parse_copy_fail(const uint8_t *body, size_t len, al_str_t *message)
{
    return whole_str(body, len, message);
}

al_pg_err_t al_pg_parse_password(const uint8_t *body, size_t len, al_str_t *password)
{
    return whole_str(body, len, password);
}

al_pg_err_t al_pg_parse_command_complete(const uint8_t *body, size_t len, al_str_t *tag)
{
    return whole_str(body, len, tag);
}

al_pg_err_t al_pg_parse_empty(const uint8_t *body, size_t len)
{
    AL_UNUSED(body);
    return len == 0 ? AL_PG_OK : AL_PG_E_TRAILING;
}

al_pg_err_t al_pg_parse_parse(const uint8_t *body, size_t len, al_pg_parse_msg_t *out)
{
    memset(out, 0, sizeof *out);
    rd_t r = {body, len, 0};
    al_pg_err_t e;
    if ((e = rd_str(&r, &out->statement)) != AL_PG_OK || (e = rd_str(&r, &out->query)) != AL_PG_OK)
        return e;
    if (!rd_u16(&r, &out->nparam_types))
        return AL_PG_E_SHORT;
    if (rd_left(&r) < (size_t)out->nparam_types * 4)
        return AL_PG_E_BAD_COUNT;
    out->param_types = r.p + r.off;
    r.off += (size_t)out->nparam_types * 4;
    return rd_end(&r);
}

bool al_pg_values_next(al_pg_values_t *it, al_pg_value_t *v)
{
    if (it->left == 0 || it->len - it->off < 4)
        return false;
    uint32_t l = al_pg_u32(it->p + it->off);
    it->off += 4;
    memset(v, 0, sizeof *v);
    if (l == UINT32_MAX) {
        v->null = true;
    } else {
        if (l > it->len - it->off)
            return false;
        v->p = it->p + it->off;
        v->len = l;
        it->off += l;
    }
    it->left--;
    return true;
}

al_pg_err_t al_pg_parse_bind(const uint8_t *body, size_t len, al_pg_bind_t *out)
{
    memset(out, 0, sizeof *out);
    rd_t r = {body, len, 0};
    al_pg_err_t e;
    if ((e = rd_str(&r, &out->portal)) != AL_PG_OK || (e = rd_str(&r, &out->statement)) != AL_PG_OK)
        return e;
    if ((e = rd_formats(&r, &out->nparam_formats, &out->param_formats)) != AL_PG_OK)
        return e;
    if ((e = rd_values(&r, &out->nparams, &out->params, &out->params_len)) != AL_PG_OK)
        return e;
    /* Message Formats, Bind: zero, one, or one format per parameter. */
    if (out->nparam_formats > 1 && out->nparam_formats != out->nparams)
        return AL_PG_E_BAD_COUNT;
    if ((e = rd_formats(&r, &out->nresult_formats, &out->result_formats)) != AL_PG_OK)
        return e;
    return rd_end(&r);
}

al_pg_values_t al_pg_bind_params(const al_pg_bind_t *b)
{
    return (al_pg_values_t){b->params, b->params_len, 0, b->nparams};
}

static int format_at(uint16_t n, const uint8_t *codes, size_t i)
{
    if (n == 0)
        return 0;
    if (n == 1)
        return al_pg_u16(codes);
    return i < n ? al_pg_u16(codes + 2 * i) : 0;
}

int al_pg_bind_param_format(const al_pg_bind_t *b, size_t i)
{
    return format_at(b->nparam_formats, b->param_formats, i);
}

int al_pg_bind_result_format(const al_pg_bind_t *b, size_t i)
{
    return format_at(b->nresult_formats, b->result_formats, i);
}

al_pg_err_t al_pg_parse_execute(const uint8_t *body, size_t len, al_pg_execute_t *out)
{
    memset(out, 0, sizeof *out);
    rd_t r = {body, len, 0};
    uint32_t n;
    al_pg_err_t e = rd_str(&r, &out->portal);
    if (e != AL_PG_OK)
        return e;
    if (!rd_u32(&r, &n))
        return AL_PG_E_SHORT;
    out->max_rows = (int32_t)n;
    return rd_end(&r);
}

static al_pg_err_t parse_target(const uint8_t *body, size_t len, al_pg_target_t *out)
{
    memset(out, 0, sizeof *out);
    rd_t r = {body, len, 0};
    uint8_t k;
    if (!rd_u8(&r, &k))
        return AL_PG_E_SHORT;
    if (k != 'S' && k != 'P')
        return AL_PG_E_BAD_VALUE;
    out->kind = (char)k;
    al_pg_err_t e = rd_str(&r, &out->name);
    return e != AL_PG_OK ? e : rd_end(&r);
}

al_pg_err_t al_pg_parse_describe(const uint8_t *body, size_t len, al_pg_target_t *out)
{
    return parse_target(body, len, out);
}

al_pg_err_t al_pg_parse_close(const uint8_t *body, size_t len, al_pg_target_t *out)
{
    return parse_target(body, len, out);
}

al_pg_err_t al_pg_parse_function_call(const uint8_t *body, size_t len, al_pg_function_call_t *out)
{
    memset(out, 0, sizeof *out);
    rd_t r = {body, len, 0};
    al_pg_err_t e;
    if (!rd_u32(&r, &out->function_oid))
        return AL_PG_E_SHORT;
    if ((e = rd_formats(&r, &out->narg_formats, &out->arg_formats)) != AL_PG_OK)
        return e;
    if ((e = rd_values(&r, &out->nargs, &out->args, &out->args_len)) != AL_PG_OK)
        return e;
    if (out->narg_formats > 1 && out->narg_formats != out->nargs)
        return AL_PG_E_BAD_COUNT;
    if (!rd_u16(&r, &out->result_format))
        return AL_PG_E_SHORT;
    if (out->result_format > 1)
        return AL_PG_E_BAD_FORMAT;
    return rd_end(&r);
}

al_pg_values_t al_pg_function_args(const al_pg_function_call_t *f)
{
    return (al_pg_values_t){f->args, f->args_len, 0, f->nargs};
}

al_pg_err_t al_pg_parse_sasl_initial(const uint8_t *body, size_t len, al_pg_sasl_initial_t *out)
{
    memset(out, 0, sizeof *out);
    rd_t r = {body, len, 0};
    uint32_t n;
    al_pg_err_t e = rd_str(&r, &out->mechanism);
    if (e != AL_PG_OK)
        return e;
    if (out->mechanism.len == 0)
        return AL_PG_E_BAD_VALUE;
    if (!rd_u32(&r, &n))
        return AL_PG_E_SHORT;
    if (n == UINT32_MAX)
        return rd_end(&r);
    if (n > INT32_MAX)
        return AL_PG_E_BAD_VALUE;
    if (rd_left(&r) < n)
        return AL_PG_E_SHORT;
    out->has_data = true;
    out->data = (al_str_t){(const char *)(r.p + r.off), n};
    r.off += n;
    return rd_end(&r);
}

al_pg_err_t al_pg_parse_sasl_response(const uint8_t *body, size_t len, al_str_t *data)
{
    if (!body && len)
        return AL_PG_E_BAD_CALL;
    *data = (al_str_t){(const char *)body, len};
    return AL_PG_OK;
}

/* ---- backend bodies ---------------------------------------------------------------- */

al_pg_err_t al_pg_parse_authentication(const uint8_t *body, size_t len, al_pg_authreq_t *out)
{
    memset(out, 0, sizeof *out);
    rd_t r = {body, len, 0};
    uint32_t code;
    if (!rd_u32(&r, &code))
        return AL_PG_E_SHORT;
    switch (code) {
    case AL_PG_AUTHREQ_OK:
    case AL_PG_AUTHREQ_KERBEROS_V5:
    case AL_PG_AUTHREQ_CLEARTEXT:
    case AL_PG_AUTHREQ_GSS:
    case AL_PG_AUTHREQ_SSPI:
        out->code = (al_pg_authreq_code_t)code;
        return rd_end(&r);
    case AL_PG_AUTHREQ_MD5:
        out->code = AL_PG_AUTHREQ_MD5;
        if (rd_left(&r) < 4)
            return AL_PG_E_SHORT;
        memcpy(out->md5_salt, r.p + r.off, 4);
        r.off += 4;
        return rd_end(&r);
    case AL_PG_AUTHREQ_GSS_CONTINUE:
    case AL_PG_AUTHREQ_SASL_CONTINUE:
    case AL_PG_AUTHREQ_SASL_FINAL:
        out->code = (al_pg_authreq_code_t)code;
        out->data = (al_str_t){(const char *)(r.p + r.off), rd_left(&r)};
        return AL_PG_OK;
    case AL_PG_AUTHREQ_SASL:
        out->code = AL_PG_AUTHREQ_SASL;
        break;
    default:
        return AL_PG_E_BAD_VALUE;
    }
    /* Message Formats, AuthenticationSASL: names, then a zero byte. */
    for (;;) {
        al_str_t m;
        if (rd_left(&r) == 0)
            return AL_PG_E_MISSING_TERMINATOR;
        al_pg_err_t e = rd_str(&r, &m);
        if (e != AL_PG_OK)
            return e;
        if (m.len == 0)
            break;
        if (out->nmechs == AL_PG_MAX_SASL_MECHS)
            return AL_PG_E_TOO_MANY_PARAMS;
        out->mechs[out->nmechs++] = m;
    }
    if (out->nmechs == 0)
        return AL_PG_E_BAD_VALUE;
    return rd_end(&r);
}

al_pg_err_t al_pg_parse_parameter_status(const uint8_t *body, size_t len, al_pg_param_t *out)
{
    memset(out, 0, sizeof *out);
    rd_t r = {body, len, 0};
    al_pg_err_t e;
    if ((e = rd_str(&r, &out->name)) != AL_PG_OK || (e = rd_str(&r, &out->value)) != AL_PG_OK)
        return e;
    if (out->name.len == 0)
        return AL_PG_E_BAD_VALUE;
    return rd_end(&r);
}

al_pg_err_t al_pg_parse_backend_key(const uint8_t *body, size_t len, al_pg_backend_key_t *out)
{
    memset(out, 0, sizeof *out);
    if (len < 8)
        return AL_PG_E_SHORT;
    if (len > 8)
        return AL_PG_E_TRAILING;
    out->pid = (int32_t)al_pg_u32(body);
    out->key = al_pg_u32(body + 4);
    return AL_PG_OK;
}

al_pg_err_t al_pg_parse_ready(const uint8_t *body, size_t len, char *status)
{
    *status = 0;
    if (len < 1)
        return AL_PG_E_SHORT;
    if (len > 1)
        return AL_PG_E_TRAILING;
    if (body[0] != 'I' && body[0] != 'T' && body[0] != 'E')
        return AL_PG_E_BAD_VALUE;
    *status = (char)body[0];
    return AL_PG_OK;
}

/* RowDescription field after its name: Int32 Int16 Int32 Int16 Int32 Int16. */
#define FIELD_FIXED 18

al_pg_err_t al_pg_parse_row_desc(const uint8_t *body, size_t len, al_pg_row_desc_t *out)
{
    memset(out, 0, sizeof *out);
    rd_t r = {body, len, 0};
    if (!rd_u16(&r, &out->nfields))
        return AL_PG_E_SHORT;
    if (rd_left(&r) / (FIELD_FIXED + 1) < out->nfields)
        return AL_PG_E_BAD_COUNT;
    size_t from = r.off;
    for (size_t i = 0; i < out->nfields; i++) {
        al_str_t name;
        al_pg_err_t e = rd_str(&r, &name);
        if (e != AL_PG_OK)
            return e;
        if (rd_left(&r) < FIELD_FIXED)
            return AL_PG_E_SHORT;
        if (al_pg_u16(r.p + r.off + FIELD_FIXED - 2) > 1)
            return AL_PG_E_BAD_FORMAT;
        r.off += FIELD_FIXED;
    }
    out->fields = r.p + from;
    out->fields_len = r.off - from;
    return rd_end(&r);
}

al_pg_fields_t al_pg_row_desc_fields(const al_pg_row_desc_t *d)
{
    return (al_pg_fields_t){d->fields, d->fields_len, 0, d->nfields};
}

bool al_pg_fields_next(al_pg_fields_t *it, al_pg_field_t *f)
{
    if (it->left == 0)
        return false;
    rd_t r = {it->p, it->len, it->off};
    memset(f, 0, sizeof *f);
    if (rd_str(&r, &f->name) != AL_PG_OK || rd_left(&r) < FIELD_FIXED)
        return false;
    const uint8_t *q = r.p + r.off;
    f->table_oid = al_pg_u32(q);
    f->column = (int16_t)al_pg_u16(q + 4);
    f->type_oid = al_pg_u32(q + 6);
    f->type_size = (int16_t)al_pg_u16(q + 10);
    f->type_mod = (int32_t)al_pg_u32(q + 12);
    f->format = (int16_t)al_pg_u16(q + 16);
    it->off = r.off + FIELD_FIXED;
    it->left--;
    return true;
}

al_pg_err_t al_pg_parse_data_row(const uint8_t *body, size_t len, al_pg_data_row_t *out)
{
    memset(out, 0, sizeof *out);
    rd_t r = {body, len, 0};
    al_pg_err_t e = rd_values(&r, &out->ncols, &out->cols, &out->cols_len);
    return e != AL_PG_OK ? e : rd_end(&r);
}

al_pg_values_t al_pg_data_row_values(const al_pg_data_row_t *row)
{
    return (al_pg_values_t){row->cols, row->cols_len, 0, row->ncols};
}

/* Decimal without sign or leading zero ("0" itself allowed), fitting 64 bits. */
static bool parse_count(const char *p, size_t n, uint64_t *v)
{
    if (n == 0 || (n > 1 && p[0] == '0'))
        return false;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        unsigned d = (unsigned)(p[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return false;
        x = x * 10 + d;
    }
    *v = x;
    return true;
}

bool al_pg_command_rows(al_str_t tag, uint64_t *rows)
{
    static const char *const one[] = {"DELETE", "UPDATE", "MERGE", "SELECT", "MOVE", "FETCH", "COPY"};
    if (!tag.p)
        return false;
    const char *sp = memchr(tag.p, ' ', tag.len);
    if (!sp)
        return false;
    al_str_t verb = {tag.p, (size_t)(sp - tag.p)};
    const char *rest = sp + 1;
    size_t rlen = tag.len - verb.len - 1;
    uint64_t v;
    if (al_str_eq_c(verb, "INSERT")) {
        /* "INSERT oid rows"; the oid is 0 since PostgreSQL 12. */
        const char *sp2 = memchr(rest, ' ', rlen);
        if (!sp2 || !parse_count(rest, (size_t)(sp2 - rest), &v))
            return false;
        size_t olen = (size_t)(sp2 - rest) + 1;
        rest += olen;
        rlen -= olen;
    } else {
        size_t i = 0;
        while (i < AL_ARRAY_LEN(one) && !al_str_eq_c(verb, one[i]))
            i++;
        if (i == AL_ARRAY_LEN(one))
            return false;
    }
    if (!parse_count(rest, rlen, &v))
        return false;
    *rows = v;
    return true;
}

static int notice_slot(uint8_t c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return 26 + (c - 'a');
    return -1;
}

al_pg_err_t al_pg_parse_notice(const uint8_t *body, size_t len, al_pg_notice_t *out)
{
    memset(out, 0, sizeof *out);
    rd_t r = {body, len, 0};
    for (;;) {
        uint8_t code;
        al_str_t v;
        if (!rd_u8(&r, &code))
            return AL_PG_E_MISSING_TERMINATOR;
        if (code == 0)
            return rd_end(&r);
        al_pg_err_t e = rd_str(&r, &v);
        if (e != AL_PG_OK)
            return e;
        int slot = notice_slot(code);
        out->nfields++;
        if (slot < 0)
            continue; /* Error and Notice Message Fields: ignore unknown codes */
        if (out->f[slot].p)
            return AL_PG_E_DUPLICATE_PARAM;
        out->f[slot] = v;
    }
}

al_str_t al_pg_notice_get(const al_pg_notice_t *n, char code)
{
    int slot = notice_slot((uint8_t)code);
    return slot < 0 ? (al_str_t){NULL, 0} : n->f[slot];
}

al_pg_err_t al_pg_parse_copy_response(const uint8_t *body, size_t len, al_pg_copy_response_t *out)
{
    memset(out, 0, sizeof *out);
    rd_t r = {body, len, 0};
    if (!rd_u8(&r, &out->format))
        return AL_PG_E_SHORT;
    if (out->format > 1)
        return AL_PG_E_BAD_FORMAT;
    al_pg_err_t e = rd_formats(&r, &out->ncols, &out->col_formats);
    if (e != AL_PG_OK)
        return e;
    if (out->format == 0)
        for (size_t i = 0; i < out->ncols; i++)
            if (al_pg_u16(out->col_formats + 2 * i) != 0)
                return AL_PG_E_BAD_FORMAT;
    return rd_end(&r);
}

al_pg_err_t al_pg_parse_notification(const uint8_t *body, size_t len, al_pg_notification_t *out)
{
    memset(out, 0, sizeof *out);
    rd_t r = {body, len, 0};
    uint32_t pid;
    al_pg_err_t e;
    if (!rd_u32(&r, &pid))
        return AL_PG_E_SHORT;
    out->pid = (int32_t)pid;
    if ((e = rd_str(&r, &out->channel)) != AL_PG_OK || (e = rd_str(&r, &out->payload)) != AL_PG_OK)
        return e;
    return rd_end(&r);
}

al_pg_err_t al_pg_parse_param_desc(const uint8_t *body, size_t len, al_pg_param_desc_t *out)
{
    memset(out, 0, sizeof *out);
    rd_t r = {body, len, 0};
    if (!rd_u16(&r, &out->ntypes))
        return AL_PG_E_SHORT;
    if (rd_left(&r) < (size_t)out->ntypes * 4)
        return AL_PG_E_BAD_COUNT;
    out->types = r.p + r.off;
    r.off += (size_t)out->ntypes * 4;
    return rd_end(&r);
}

al_pg_err_t al_pg_parse_function_result(const uint8_t *body, size_t len, al_pg_value_t *out)
{
    memset(out, 0, sizeof *out);
    rd_t r = {body, len, 0};
    uint32_t n;
    if (!rd_u32(&r, &n))
        return AL_PG_E_SHORT;
    if (n == UINT32_MAX) {
        out->null = true;
        return rd_end(&r);
    }
    if (n > INT32_MAX)
        return AL_PG_E_BAD_VALUE;
    if (rd_left(&r) < n)
        return AL_PG_E_SHORT;
    out->p = r.p + r.off;
    out->len = n;
    r.off += n;
    return rd_end(&r);
}

al_pg_err_t al_pg_parse_negotiate(const uint8_t *body, size_t len, al_pg_negotiate_t *out)
{
    memset(out, 0, sizeof *out);
    rd_t r = {body, len, 0};
    if (!rd_u32(&r, &out->newest_minor) || !rd_u32(&r, &out->nopts))
        return AL_PG_E_SHORT;
    if (out->nopts > rd_left(&r))
        return AL_PG_E_BAD_COUNT; /* every option takes at least its NUL */
    size_t from = r.off;
    for (uint32_t i = 0; i < out->nopts; i++) {
        al_str_t s;
        al_pg_err_t e = rd_str(&r, &s);
        if (e != AL_PG_OK)
            return e;
    }
    out->opts = r.p + from;
    out->opts_len = r.off - from;
    return rd_end(&r);
}

/* ---- builders ---------------------------------------------------------------------- */

typedef struct wr {
    al_buf_t *b;
    size_t start;  /* b->len before the message */
    size_t len_at; /* offset of the Int32 length field */
} wr_t;

static void put(wr_t *w, const void *p, size_t n) { al_buf_append(w->b, p, n); }

static void put_u8(wr_t *w, uint8_t v) { put(w, &v, 1); }

static void put_u16(wr_t *w, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    put(w, x, 2);
}

static void put_u32(wr_t *w, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(w, x, 4);
}

static void put_cstr(wr_t *w, const char *s) { put(w, s, strlen(s) + 1); }

/* type 0: an untyped startup-phase packet. */
static void wr_begin(wr_t *w, al_buf_t *b, uint8_t type)
{
    w->b = b;
    w->start = b->len;
    if (type)
        put_u8(w, type);
    w->len_at = b->len;
    put_u32(w, 0);
}

static int wr_abort(wr_t *w)
{
    if (w->b->len > w->start) {
        w->b->len = w->start;
        w->b->p[w->b->len] = '\0';
    }
    return AL_ERR;
}

static int wr_end(wr_t *w)
{
    if (w->b->oom)
        return wr_abort(w);
    size_t n = w->b->len - w->len_at;
    if (n > AL_PG_HARD_MAX_MESSAGE)
        return wr_abort(w);
    uint8_t *q = (uint8_t *)w->b->p + w->len_at;
    q[0] = (uint8_t)(n >> 24);
    q[1] = (uint8_t)(n >> 16);
    q[2] = (uint8_t)(n >> 8);
    q[3] = (uint8_t)n;
    return AL_OK;
}

static bool one_of(const char *s, const char *const *set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, set[i]) == 0)
            return true;
    return false;
}

static bool sqlstate_ok(const char *s)
{
    for (size_t i = 0; i < 5; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'Z')))
            return false;
    return s[5] == '\0';
}

/* Error and Notice Message Fields. */
static int build_report(al_buf_t *b, uint8_t type, const char *severity, const char *sqlstate,
                        const char *message, const char *detail, const char *hint)
{
    static const char *const err_sev[] = {"ERROR", "FATAL", "PANIC"};
    static const char *const note_sev[] = {"WARNING", "NOTICE", "DEBUG", "INFO", "LOG"};
    if (!severity || !sqlstate || !message || !sqlstate_ok(sqlstate))
        return AL_ERR;
    if (type == 'E' ? !one_of(severity, err_sev, AL_ARRAY_LEN(err_sev))
                    : !one_of(severity, note_sev, AL_ARRAY_LEN(note_sev)))
        return AL_ERR;
    wr_t w;
    wr_begin(&w, b, type);
    put_u8(&w, 'S');
    put_cstr(&w, severity);
    put_u8(&w, 'V');
    put_cstr(&w, severity);
    put_u8(&w, 'C');
    put_cstr(&w, sqlstate);
    put_u8(&w, 'M');
    put_cstr(&w, message);
    if (detail) {
        put_u8(&w, 'D');
        put_cstr(&w, detail);
    }
    if (hint) {
        put_u8(&w, 'H');
        put_cstr(&w, hint);
    }
    put_u8(&w, 0);
    return wr_end(&w);
}

int al_pg_build_error(al_buf_t *b, const char *severity, const char *sqlstate,
                      const char *message, const char *detail, const char *hint)
{
    return build_report(b, 'E', severity, sqlstate, message, detail, hint);
}

int al_pg_build_notice(al_buf_t *b, const char *severity, const char *sqlstate,
                       const char *message, const char *detail, const char *hint)
{
    return build_report(b, 'N', severity, sqlstate, message, detail, hint);
}

static int build_auth(al_buf_t *b, uint32_t code, const void *data, size_t len)
{
    if ((!data && len) || len > AL_PG_HARD_MAX_MESSAGE)
        return AL_ERR;
    wr_t w;
    wr_begin(&w, b, 'R');
    put_u32(&w, code);
    put(&w, data, len);
    return wr_end(&w);
}

int al_pg_build_auth_ok(al_buf_t *b) { return build_auth(b, AL_PG_AUTHREQ_OK, NULL, 0); }

int al_pg_build_auth_cleartext(al_buf_t *b) { return build_auth(b, AL_PG_AUTHREQ_CLEARTEXT, NULL, 0); }

int al_pg_build_auth_sasl(al_buf_t *b, const char *const *mechs, size_t n)
{
    if (!mechs || n == 0)
        return AL_ERR;
    for (size_t i = 0; i < n; i++)
        if (!mechs[i] || !mechs[i][0])
            return AL_ERR;
    wr_t w;
    wr_begin(&w, b, 'R');
    put_u32(&w, AL_PG_AUTHREQ_SASL);
    for (size_t i = 0; i < n; i++)
        put_cstr(&w, mechs[i]);
    put_u8(&w, 0);
    return wr_end(&w);
}

int al_pg_build_auth_sasl_continue(al_buf_t *b, const void *data, size_t len)
{
    return build_auth(b, AL_PG_AUTHREQ_SASL_CONTINUE, data, len);
}

int al_pg_build_auth_sasl_final(al_buf_t *b, const void *data, size_t len)
{
    return build_auth(b, AL_PG_AUTHREQ_SASL_FINAL, data, len);
}

int al_pg_build_parameter_status(al_buf_t *b, const char *name, const char *value)
{
    if (!name || !name[0] || !value)
        return AL_ERR;
    wr_t w;
    wr_begin(&w, b, 'S');
    put_cstr(&w, name);
    put_cstr(&w, value);
    return wr_end(&w);
}

int al_pg_build_backend_key(al_buf_t *b, int32_t pid, uint32_t key)
{
    wr_t w;
    wr_begin(&w, b, 'K');
    put_u32(&w, (uint32_t)pid);
    put_u32(&w, key);
    return wr_end(&w);
}

int al_pg_build_ready(al_buf_t *b, char status)
{
    if (status != 'I' && status != 'T' && status != 'E')
        return AL_ERR;
    wr_t w;
    wr_begin(&w, b, 'Z');
    put_u8(&w, (uint8_t)status);
    return wr_end(&w);
}

int al_pg_build_startup(al_buf_t *b, const al_pg_param_t *params, size_t n)
{
    if ((!params && n) || n > AL_PG_MAX_STARTUP_PARAMS)
        return AL_ERR;
    size_t total = 4 + 4 + 1;
    bool user = false;
    for (size_t i = 0; i < n; i++) {
        al_str_t k = params[i].name, v = params[i].value;
        if (!k.p || k.len == 0 || memchr(k.p, 0, k.len) || (!v.p && v.len) ||
            (v.len && memchr(v.p, 0, v.len)))
            return AL_ERR;
        for (size_t j = 0; j < i; j++)
            if (al_str_eq(params[j].name, k))
                return AL_ERR;
        if (al_str_eq_c(k, "user")) {
            if (v.len == 0)
                return AL_ERR;
            user = true;
        }
        if (k.len > AL_PG_DEFAULT_MAX_STARTUP || v.len > AL_PG_DEFAULT_MAX_STARTUP)
            return AL_ERR;
        total += k.len + v.len + 2;
    }
    if (!user || total > AL_PG_DEFAULT_MAX_STARTUP)
        return AL_ERR;
    wr_t w;
    wr_begin(&w, b, 0);
    put_u32(&w, AL_PG_PROTOCOL_3_0);
    for (size_t i = 0; i < n; i++) {
        put(&w, params[i].name.p, params[i].name.len);
        put_u8(&w, 0);
        put(&w, params[i].value.p, params[i].value.len);
        put_u8(&w, 0);
    }
    put_u8(&w, 0);
    return wr_end(&w);
}

int al_pg_build_ssl_request(al_buf_t *b)
{
    wr_t w;
    wr_begin(&w, b, 0);
    put_u32(&w, AL_PG_SSL_REQUEST_CODE);
    return wr_end(&w);
}

int al_pg_build_cancel_request(al_buf_t *b, int32_t pid, uint32_t key)
{
    wr_t w;
    wr_begin(&w, b, 0);
    put_u32(&w, AL_PG_CANCEL_REQUEST_CODE);
    put_u32(&w, (uint32_t)pid);
    put_u32(&w, key);
    return wr_end(&w);
}

static int build_cstr_msg(al_buf_t *b, uint8_t type, const char *s)
{
    if (!s)
        return AL_ERR;
    wr_t w;
    wr_begin(&w, b, type);
    put_cstr(&w, s);
    return wr_end(&w);
}

int al_pg_build_password(al_buf_t *b, const char *password) { return build_cstr_msg(b, 'p', password); }

int al_pg_build_query(al_buf_t *b, const char *sql) { return build_cstr_msg(b, 'Q', sql); }

int al_pg_build_sasl_initial(al_buf_t *b, const char *mechanism, const void *data, size_t len)
{
    if (!mechanism || !mechanism[0] || (!data && len) || len > INT32_MAX)
        return AL_ERR;
    wr_t w;
    wr_begin(&w, b, 'p');
    put_cstr(&w, mechanism);
    put_u32(&w, data ? (uint32_t)len : UINT32_MAX);
    put(&w, data, len);
    return wr_end(&w);
}

int al_pg_build_sasl_response(al_buf_t *b, const void *data, size_t len)
{
    if ((!data && len) || len > AL_PG_HARD_MAX_MESSAGE)
        return AL_ERR;
    wr_t w;
    wr_begin(&w, b, 'p');
    put(&w, data, len);
    return wr_end(&w);
}

static int build_empty(al_buf_t *b, uint8_t type)
{
    wr_t w;
    wr_begin(&w, b, type);
    return wr_end(&w);
}

int al_pg_build_sync(al_buf_t *b) { return build_empty(b, 'S'); }

int al_pg_build_terminate(al_buf_t *b) { return build_empty(b, 'X'); }

int al_pg_build_data_row_edit(al_buf_t *b, const al_pg_data_row_t *row,
                              const al_pg_cell_edit_t *edits, size_t nedits)
{
    if (!row || nedits > row->ncols || (!edits && nedits))
        return AL_ERR;
    /* Size first, so an edit that cannot fit is refused before writing. */
    size_t total = 4 + 2;
    al_pg_values_t it = al_pg_data_row_values(row);
    al_pg_value_t v;
    for (size_t i = 0; i < row->ncols; i++) {
        if (!al_pg_values_next(&it, &v))
            return AL_ERR;
        const al_pg_cell_edit_t *e = i < nedits ? &edits[i] : NULL;
        size_t n = v.len;
        if (e && e->op == AL_PG_CELL_SET) {
            if ((!e->p && e->len) || e->len > INT32_MAX)
                return AL_ERR;
            n = e->len;
        } else if (e && e->op == AL_PG_CELL_NULL) {
            n = 0;
        } else if (e && e->op != AL_PG_CELL_KEEP) {
            return AL_ERR;
        }
        if (n > AL_PG_HARD_MAX_MESSAGE - total)
            return AL_ERR;
        total += 4 + n;
        if (total > AL_PG_HARD_MAX_MESSAGE)
            return AL_ERR;
    }
    wr_t w;
    wr_begin(&w, b, 'D');
    put_u16(&w, row->ncols);
    it = al_pg_data_row_values(row);
    for (size_t i = 0; i < row->ncols; i++) {
        al_pg_values_next(&it, &v);
        const al_pg_cell_edit_t *e = i < nedits ? &edits[i] : NULL;
        if (e && e->op == AL_PG_CELL_SET) {
            put_u32(&w, (uint32_t)e->len);
            put(&w, e->p, e->len);
        } else if ((e && e->op == AL_PG_CELL_NULL) || v.null) {
            put_u32(&w, UINT32_MAX);
        } else {
            put_u32(&w, v.len);
            put(&w, v.p, v.len);
        }
    }
    return wr_end(&w);
}
