/* Fuzz target for src/proto/pg/pg_codec.c: both framers and every body
 * parser, plus the DataRow rewriter and StartupMessage builder as round
 * trips.
 *
 * Input: one control byte, then the stream.
 *   bit 0     0 = frontend (client) stream, 1 = backend (server) stream
 *   bit 1     small limits (to reach the cap paths)
 *   bits 2-4  chunk size for the second run: 1, 2, 3, 5, 7, 11, 16, 64
 * The driver plays the gateway: it resumes after SSLRequest/GSSENCRequest
 * and switches to the post-authentication cap after a frontend 'p' or a
 * backend AuthenticationOk.
 *
 * Checked (abort on violation):
 *  - feeding the stream whole or in chunks gives the same transcript
 *    (messages, parse results, errors and their positions);
 *  - every message's length field, raw and body views agree and respect
 *    the active cap; consumed counts stay inside the input;
 *  - a parsed body's iterators return exactly the announced count, inside
 *    the body; a DataRow rebuilt without edits is byte-identical, with
 *    edits it parses again with the same column count; a parsed
 *    StartupMessage rebuilt from its parameters is byte-identical.
 * Every body parser also runs over every message body and over the raw
 * input, whatever its type. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/pg/pg_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok)
        abort();
}

static bool inside(const void *p, size_t n, const uint8_t *base, size_t len)
{
    const uint8_t *q = p;
    return n == 0 || (q >= base && q + n <= base + len);
}

static void check_values(al_pg_values_t it, uint32_t count, const uint8_t *body, size_t len)
{
    al_pg_value_t v;
    uint32_t n = 0;
    while (al_pg_values_next(&it, &v)) {
        check(v.null ? (v.p == NULL && v.len == 0) : inside(v.p, v.len, body, len));
        n++;
    }
    check(n == count && it.off == it.len);
}

static void check_data_row(const uint8_t *body, size_t len, const al_pg_data_row_t *row)
{
    check_values(al_pg_data_row_values(row), row->ncols, body, len);
    al_buf_t b;
    al_buf_init(&b);
    /* no edits: the same bytes */
    check(al_pg_build_data_row_edit(&b, row, NULL, 0) == AL_OK);
    check(b.len == len + 5 && memcmp(b.p + 5, body, len) == 0);
    /* edits: NULL, "x", keep, in turn */
    size_t n = row->ncols;
    al_pg_cell_edit_t *e = calloc(n ? n : 1, sizeof *e);
    check(e != NULL);
    for (size_t i = 0; i < n; i++)
        e[i] = (al_pg_cell_edit_t){(al_pg_cell_op_t)((i % 3) == 0 ? AL_PG_CELL_NULL
                                                     : (i % 3) == 1 ? AL_PG_CELL_SET : AL_PG_CELL_KEEP),
                                   "x", 1};
    al_buf_reset(&b);
    check(al_pg_build_data_row_edit(&b, row, e, n) == AL_OK);
    al_pg_data_row_t again;
    check(b.len >= 5 && al_pg_u32((const uint8_t *)b.p + 1) == b.len - 1);
    check(al_pg_parse_data_row((const uint8_t *)b.p + 5, b.len - 5, &again) == AL_PG_OK);
    check(again.ncols == row->ncols);
    free(e);
    al_buf_free(&b);
}

static void check_startup(const uint8_t *body, size_t len, const al_pg_startup_t *s)
{
    for (size_t i = 0; i < s->nparams; i++) {
        check(inside(s->params[i].name.p, s->params[i].name.len + 1, body, len));
        check(inside(s->params[i].value.p, s->params[i].value.len + 1, body, len));
        check(s->params[i].name.p[s->params[i].name.len] == '\0');
    }
    if (s->kind != AL_PG_SK_STARTUP || len + 4 > AL_PG_DEFAULT_MAX_STARTUP)
        return;
    al_buf_t b;
    al_buf_init(&b);
    check(al_pg_build_startup(&b, s->params, s->nparams) == AL_OK);
    check(b.len == len + 4 && memcmp(b.p + 4, body, len) == 0);
    al_buf_free(&b);
}

/* Runs every parser over body; returns a short digest of what each said. */
static void parse_all(const uint8_t *body, size_t len, al_buf_t *t)
{
    al_str_t s;
    al_pg_startup_t st;
    al_pg_parse_msg_t pm;
    al_pg_bind_t bd;
    al_pg_execute_t ex;
    al_pg_target_t tg;
    al_pg_function_call_t fc;
    al_pg_sasl_initial_t si;
    al_pg_authreq_t ar;
    al_pg_param_t ps;
    al_pg_backend_key_t bk;
    char rs;
    al_pg_row_desc_t rd;
    al_pg_data_row_t dr;
    al_pg_notice_t nt;
    al_pg_copy_response_t cr;
    al_pg_notification_t nf;
    al_pg_param_desc_t pd;
    al_pg_value_t fv;
    al_pg_negotiate_t ng;
    uint64_t rows;
    int r[22];
    r[0] = al_pg_parse_startup(body, len, &st);
    if (r[0] == AL_PG_OK)
        check_startup(body, len, &st);
    r[1] = al_pg_parse_query(body, len, &s);
    if (r[1] == AL_PG_OK) {
        check(inside(s.p, s.len + 1, body, len) && s.len + 1 == len);
        if (al_pg_command_rows(s, &rows))
            al_buf_printf(t, "rows=%llu ", (unsigned long long)rows);
    }
    r[2] = al_pg_parse_parse(body, len, &pm);
    if (r[2] == AL_PG_OK)
        check(inside(pm.param_types, (size_t)pm.nparam_types * 4, body, len));
    r[3] = al_pg_parse_bind(body, len, &bd);
    if (r[3] == AL_PG_OK) {
        check_values(al_pg_bind_params(&bd), bd.nparams, body, len);
        for (size_t i = 0; i < bd.nparams; i++)
            check((unsigned)al_pg_bind_param_format(&bd, i) <= 1);
        check((unsigned)al_pg_bind_result_format(&bd, 0) <= 1);
    }
    r[4] = al_pg_parse_execute(body, len, &ex);
    r[5] = al_pg_parse_describe(body, len, &tg);
    if (r[5] == AL_PG_OK)
        check(tg.kind == 'S' || tg.kind == 'P');
    r[6] = al_pg_parse_function_call(body, len, &fc);
    if (r[6] == AL_PG_OK)
        check_values(al_pg_function_args(&fc), fc.nargs, body, len);
    r[7] = al_pg_parse_sasl_initial(body, len, &si);
    if (r[7] == AL_PG_OK && si.has_data)
        check(inside(si.data.p, si.data.len, body, len) && si.data.p + si.data.len == (const char *)body + len);
    r[8] = al_pg_parse_authentication(body, len, &ar);
    if (r[8] == AL_PG_OK) {
        check(ar.nmechs <= AL_PG_MAX_SASL_MECHS);
        for (size_t i = 0; i < ar.nmechs; i++)
            check(ar.mechs[i].len > 0 && inside(ar.mechs[i].p, ar.mechs[i].len, body, len));
        check(inside(ar.data.p, ar.data.len, body, len));
    }
    r[9] = al_pg_parse_parameter_status(body, len, &ps);
    r[10] = al_pg_parse_backend_key(body, len, &bk);
    r[11] = al_pg_parse_ready(body, len, &rs);
    r[12] = al_pg_parse_row_desc(body, len, &rd);
    if (r[12] == AL_PG_OK) {
        al_pg_fields_t it = al_pg_row_desc_fields(&rd);
        al_pg_field_t f;
        uint32_t n = 0;
        while (al_pg_fields_next(&it, &f)) {
            check(inside(f.name.p, f.name.len, body, len) && (f.format == 0 || f.format == 1));
            n++;
        }
        check(n == rd.nfields && it.off == it.len);
    }
    r[13] = al_pg_parse_data_row(body, len, &dr);
    if (r[13] == AL_PG_OK)
        check_data_row(body, len, &dr);
    r[14] = al_pg_parse_notice(body, len, &nt);
    if (r[14] == AL_PG_OK) {
        al_str_t c = al_pg_notice_get(&nt, 'C');
        check(c.p == NULL || inside(c.p, c.len, body, len));
    }
    r[15] = al_pg_parse_copy_response(body, len, &cr);
    r[16] = al_pg_parse_notification(body, len, &nf);
    r[17] = al_pg_parse_param_desc(body, len, &pd);
    r[18] = al_pg_parse_function_result(body, len, &fv);
    if (r[18] == AL_PG_OK && !fv.null)
        check(inside(fv.p, fv.len, body, len));
    r[19] = al_pg_parse_negotiate(body, len, &ng);
    r[20] = al_pg_parse_empty(body, len);
    r[21] = al_pg_parse_command_complete(body, len, &s);
    for (size_t i = 0; i < AL_ARRAY_LEN(r); i++) {
        check(r[i] >= 0 && r[i] < AL_PG__ERR_COUNT);
        al_buf_printf(t, "%c", 'a' + r[i]);
    }
}

typedef struct run {
    al_pg_framer_t f;
    al_buf_t t;
} run_t;

static void record(run_t *r, const al_pg_msg_t *m, const uint8_t *in, size_t inlen, size_t n)
{
    size_t hdr = m->type ? 5 : 4;
    check(m->raw_len == m->body_len + hdr && m->body == m->raw + hdr);
    check(al_pg_u32(m->raw + (m->type ? 1 : 0)) == m->body_len + 4);
    check(inside(m->raw, m->raw_len, in, inlen) || inside(m->raw, m->raw_len, r->f.buf, r->f.buf_cap));
    check(n <= m->raw_len);
    al_buf_printf(&r->t, "%c%u %zu ", m->type ? m->type : '0', m->code, m->body_len);
    parse_all(m->body, m->body_len, &r->t);
    al_buf_puts(&r->t, "\n");
    if (m->type == 0 && (m->code == AL_PG_SSL_REQUEST_CODE || m->code == AL_PG_GSSENC_REQUEST_CODE))
        check(al_pg_framer_resume(&r->f) == AL_OK);
    if ((m->type == 'p' && r->f.dir == AL_PG_FRONTEND) ||
        (m->type == 'R' && m->body_len == 4 && al_pg_u32(m->body) == 0))
        al_pg_framer_set_authenticated(&r->f);
}

static char *run(uint8_t ctl, const uint8_t *in, size_t len, size_t step)
{
    static const al_pg_limits_t small = {16, 32, 64};
    run_t r;
    al_pg_framer_init(&r.f, (ctl & 1) ? AL_PG_BACKEND : AL_PG_FRONTEND, (ctl & 2) ? &small : NULL);
    al_buf_init(&r.t);
    bool ok = true;
    for (size_t off = 0; ok && off < len;) {
        /* a private copy of each chunk, so ASan catches reads past it */
        size_t n = AL_MIN(step, len - off);
        uint8_t *chunk = malloc(n);
        check(chunk != NULL);
        memcpy(chunk, in + off, n);
        size_t used = 0;
        while (used < n) {
            al_pg_msg_t m;
            ssize_t k = al_pg_frame(&r.f, chunk + used, n - used, &m);
            if (k < 0) {
                check(k == AL_ERR && r.f.err != AL_PG_OK && r.f.state == AL_PG_FS_DEAD);
                check(r.f.err_pos < off + n);
                al_buf_printf(&r.t, "ERR %s@%llu\n", al_pg_err_str(r.f.err),
                              (unsigned long long)r.f.err_pos);
                ok = false;
                break;
            }
            if (k == 0)
                break;
            check((size_t)k <= n - used);
            record(&r, &m, chunk + used, n - used, (size_t)k);
            used += (size_t)k;
        }
        free(chunk);
        off += n;
    }
    if (ok)
        al_buf_printf(&r.t, "EOF %d\n", al_pg_framer_eof(&r.f));
    check(!r.t.oom);
    char *t = al_strndup(r.t.p ? r.t.p : "", r.t.len);
    check(t != NULL);
    al_buf_free(&r.t);
    al_pg_framer_free(&r.f);
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t steps[] = {1, 2, 3, 5, 7, 11, 16, 64};
    if (size < 1 || size > 1 << 16)
        return 0;
    uint8_t ctl = data[0];
    const uint8_t *in = data + 1;
    size_t len = size - 1;

    char *whole = run(ctl, in, len, len ? len : 1);
    char *chunked = run(ctl, in, len, steps[(ctl >> 2) & 7]);
    check(strcmp(whole, chunked) == 0);
    free(whole);
    free(chunked);

    /* the parsers on arbitrary bytes, without a framer in front */
    uint8_t *copy = malloc(len ? len : 1);
    check(copy != NULL);
    memcpy(copy, in, len);
    al_buf_t t;
    al_buf_init(&t);
    parse_all(copy, len, &t);
    al_buf_free(&t);
    free(copy);
    return 0;
}
