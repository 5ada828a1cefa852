/* scan.c - the prefilter passes (bit-parallel shapes, then each Hyperscan
 * database), validators on their candidates, overlap resolution,
 * rewriting; the one-shot entry points (buffer, field, value).
 *
 * The no-match path: one pass of each over the input, a few candidates
 * rejected by their validators, return AL_MASK_OK. Nothing is allocated
 * or copied. */
#include <limits.h>
#include <stdlib.h>

#include "mask/mask_int.h"

typedef struct scan_ctx {
    const al_mask_engine_t *e;
    al_mask_scratch_t *s;
    al__mask_text_t t;
    al__mask_hits_t *hv;
    uint64_t cands;
    al_mask_rc_t err;
} scan_ctx_t;

static bool hits_push(al__mask_hits_t *hv, size_t vs, size_t ve, uint32_t rule, al_mask_det_t det)
{
    if (hv->n == hv->cap) {
        size_t cap = hv->cap ? hv->cap * 2 : 64;
        al_mask_match_t *v = al_realloc(hv->v, cap * sizeof *v);
        if (!v)
            return false;
        hv->v = v;
        hv->cap = cap;
    }
    hv->v[hv->n++] = (al_mask_match_t){vs, ve, rule, det};
    return true;
}

static int on_match(unsigned int id, unsigned long long from, unsigned long long to,
                    unsigned int flags, void *vctx)
{
    AL_UNUSED(flags);
    scan_ctx_t *c = vctx;
    const al__mask_pat_t *pat = &c->e->pats[id];
    if (!pat->check) {
        c->cands++;
        if (!hits_push(c->hv, (size_t)from, (size_t)to, pat->rule, pat->det)) {
            c->err = AL_MASK_E_NOMEM;
            return 1;
        }
        return 0;
    }
    if ((size_t)to <= c->s->skip[id])
        return 0;
    c->cands++;
    al__mask_span_t sp[AL__MASK_SPANS_MAX];
    size_t skip_to = (size_t)to;
    size_t n = pat->check(&c->t, (size_t)to, sp, &skip_to);
    c->s->skip[id] = skip_to;
    for (size_t i = 0; i < n; i++) {
        if (!hits_push(c->hv, sp[i].vs, sp[i].ve, pat->rule, pat->det)) {
            c->err = AL_MASK_E_NOMEM;
            return 1;
        }
    }
    return 0;
}

/* A shape's match (prefilter.c): the same handling as a Hyperscan match of
 * its pattern. */
static int on_shape(unsigned shape, size_t end, void *vctx)
{
    scan_ctx_t *c = vctx;
    return on_match(c->e->shape_pat[shape], end, end, 0, vctx);
}

al_mask_rc_t al__mask_scan(const al_mask_engine_t *e, al_mask_scratch_t *s, const uint8_t *p,
                           size_t len, al__mask_hits_t *hv, al_mask_stats_t *stats)
{
    hv->n = 0;
    if ((!e->has_db && !e->shapes) || len == 0)
        return AL_MASK_OK;
    if (len > UINT_MAX)
        return AL_MASK_E_TOO_LARGE;
    memset(s->skip, 0, e->n_pats * sizeof *s->skip);
    scan_ctx_t c = {e, s, {p, len, e->vmax}, hv, 0, AL_MASK_OK};
    hs_error_t r = HS_SUCCESS;
    if (e->shapes && al__mask_prefilter(p, len, e->shapes, on_shape, &c))
        r = HS_SCAN_TERMINATED;
    for (size_t g = 0; g < AL__MASK_DB__COUNT && r == HS_SUCCESS; g++)
        if (e->dbs[g])
            r = hs_scan(e->dbs[g], (const char *)p, (unsigned)len, 0, s->hs, on_match, &c);
    if (stats)
        stats->candidates += c.cands;
    if (r == HS_SUCCESS)
        return AL_MASK_OK;
    if (r == HS_SCAN_TERMINATED)
        return c.err != AL_MASK_OK ? c.err : AL_MASK_E_SCAN;
    if (r == HS_SCRATCH_IN_USE || r == HS_INVALID)
        return AL_MASK_E_SCRATCH;
    return AL_MASK_E_SCAN;
}

static int cmp_match(const void *a, const void *b)
{
    const al_mask_match_t *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    if (x->end != y->end)
        return x->end > y->end ? -1 : 1; /* longest first */
    if (x->det != y->det)
        return x->det < y->det ? -1 : 1;
    if (x->rule != y->rule)
        return x->rule < y->rule ? -1 : 1;
    return 0;
}

/* In place, no allocation (glibc's qsort may allocate a merge buffer):
 * insertion sort for the few values of a field, heapsort beyond; sort_hits
 * below merges ordered runs through the hit list's own buffer first. */
static void sift_down(al_mask_match_t *v, size_t root, size_t n)
{
    for (;;) {
        size_t c = 2 * root + 1;
        if (c >= n)
            return;
        if (c + 1 < n && cmp_match(&v[c], &v[c + 1]) < 0)
            c++;
        if (cmp_match(&v[root], &v[c]) >= 0)
            return;
        al_mask_match_t t = v[root];
        v[root] = v[c];
        v[c] = t;
        root = c;
    }
}

static void heap_sort(al_mask_match_t *v, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift_down(v, i, n);
    for (size_t end = n - 1; end > 0; end--) {
        al_mask_match_t t = v[0];
        v[0] = v[end];
        v[end] = t;
        sift_down(v, 0, end);
    }
}

static void sort_matches(al_mask_match_t *v, size_t n)
{
    if (n <= 16) {
        for (size_t i = 1; i < n; i++) {
            al_mask_match_t t = v[i];
            size_t j = i;
            while (j > 0 && cmp_match(&v[j - 1], &t) > 0) {
                v[j] = v[j - 1];
                j--;
            }
            v[j] = t;
        }
        return;
    }
    heap_sort(v, n);
}

/* One pass of a natural merge sort: merges each pair of adjacent ordered
 * runs of src into dst. Returns the number of runs src had. */
static size_t merge_pass(const al_mask_match_t *src, al_mask_match_t *dst, size_t n)
{
    size_t runs = 0, i = 0;
    while (i < n) {
        size_t a = i, b = i + 1;
        while (b < n && cmp_match(&src[b - 1], &src[b]) <= 0)
            b++;
        size_t c = b;
        if (c < n) {
            c++;
            while (c < n && cmp_match(&src[c - 1], &src[c]) <= 0)
                c++;
        }
        runs += c > b ? 2 : 1;
        size_t x = a, y = b, o = a;
        while (x < b && y < c)
            dst[o++] = cmp_match(&src[y], &src[x]) < 0 ? src[y++] : src[x++];
        while (x < b)
            dst[o++] = src[x++];
        while (y < c)
            dst[o++] = src[y++];
        i = c;
    }
    return runs;
}

/* Each pattern reports its values roughly in order, so a scan leaves a few
 * long ordered runs: a natural merge sort through hv->tmp takes about
 * log2(runs) linear passes. Heapsort (in place) if tmp cannot grow. */
static void sort_hits(al__mask_hits_t *hv)
{
    al_mask_match_t *v = hv->v;
    size_t n = hv->n;
    if (n <= 16) {
        sort_matches(v, n);
        return;
    }
    size_t i = 1;
    while (i < n && cmp_match(&v[i - 1], &v[i]) <= 0)
        i++;
    if (i == n)
        return;
    if (hv->tmp_cap < n) {
        al_mask_match_t *t = al_realloc(hv->tmp, n * sizeof *t);
        if (!t) {
            heap_sort(v, n);
            return;
        }
        hv->tmp = t;
        hv->tmp_cap = n;
    }
    while (merge_pass(hv->v, hv->tmp, n) > 1) {
        al_mask_match_t *t = hv->v;
        size_t c = hv->cap;
        hv->v = hv->tmp;
        hv->cap = hv->tmp_cap;
        hv->tmp = t;
        hv->tmp_cap = c;
    }
    /* The last pass found v ordered (its copy in tmp is not used). */
}

void al__mask_resolve(al__mask_hits_t *hv, size_t lo, size_t hi, size_t *covered)
{
    size_t w = 0;
    for (size_t i = 0; i < hv->n; i++)
        if (hv->v[i].start >= lo && hv->v[i].start < hi)
            hv->v[w++] = hv->v[i];
    hv->n = w;
    sort_hits(hv);
    size_t cov = *covered;
    w = 0;
    for (size_t i = 0; i < hv->n; i++) {
        al_mask_match_t m = hv->v[i];
        if (m.end <= cov)
            continue;
        if (m.start < cov)
            m.start = cov;
        hv->v[w++] = m;
        cov = m.end;
    }
    hv->n = w;
    *covered = cov;
}

al_mask_rc_t al__mask_emit(const al_mask_engine_t *e, const uint8_t *p, size_t from, size_t to,
                           const al_mask_match_t *pieces, size_t n, al_buf_t *out,
                           al_mask_stats_t *stats)
{
    size_t pos = from;
    for (size_t i = 0; i < n; i++) {
        const al_mask_match_t *m = &pieces[i];
        if (al_buf_append(out, p + pos, m->start - pos) != AL_OK)
            return AL_MASK_E_NOMEM;
        al_mask_rc_t rc = al__mask_apply_style(e, e->rules[m->rule].style, p + m->start,
                                               m->end - m->start, out);
        if (rc < 0)
            return rc;
        pos = m->end;
    }
    if (al_buf_append(out, p + pos, to - pos) != AL_OK)
        return AL_MASK_E_NOMEM;
    al__mask_count(stats, pieces, n);
    return n ? AL_MASK_MASKED : AL_MASK_OK;
}

void al__mask_count(al_mask_stats_t *stats, const al_mask_match_t *pieces, size_t n)
{
    if (!stats)
        return;
    stats->values += n;
    for (size_t i = 0; i < n; i++)
        stats->by_det[pieces[i].det]++;
}

/* Undoes a failed call's partial output. */
static void out_restore(al_buf_t *out, size_t mark)
{
    if (out->p && out->len > mark) {
        out->len = mark;
        out->p[mark] = '\0';
    }
}

/* Scan, resolve, rewrite: the body of al_mask_buffer. s is entered. */
static al_mask_rc_t mask_text(const al_mask_engine_t *e, al_mask_scratch_t *s, const uint8_t *p,
                              size_t len, al_buf_t *out, al_mask_stats_t *stats)
{
    if (stats)
        stats->bytes += len;
    al_mask_rc_t rc = al__mask_scan(e, s, p, len, &s->hits, stats);
    if (rc != AL_MASK_OK || s->hits.n == 0)
        return rc;
    size_t cov = 0;
    al__mask_resolve(&s->hits, 0, SIZE_MAX, &cov);
    return al__mask_emit(e, p, 0, len, s->hits.v, s->hits.n, out, stats);
}

al_mask_rc_t al_mask_buffer(const al_mask_engine_t *e, al_mask_scratch_t *s, const char *in,
                            size_t len, al_buf_t *out, al_mask_stats_t *stats)
{
    if (!e || !s || (!in && len) || !out)
        return AL_MASK_E_INVALID;
    al_mask_rc_t rc = al__mask_scratch_enter(e, s);
    if (rc < 0)
        return rc;
    size_t mark = out->len;
    rc = mask_text(e, s, (const uint8_t *)in, len, out, stats);
    if (rc < 0) {
        s->hits.n = 0;
        out_restore(out, mark);
    }
    al__mask_scratch_leave(s);
    return rc;
}

const al_mask_match_t *al_mask_scratch_matches(const al_mask_scratch_t *s, size_t *n)
{
    if (!s) {
        if (n)
            *n = 0;
        return NULL;
    }
    if (n)
        *n = s->hits.n;
    return s->hits.v;
}

al_mask_rc_t al_mask_value(const al_mask_engine_t *e, al_mask_style_t style, const char *in,
                           size_t len, al_buf_t *out)
{
    if (!e || (!in && len) || !out)
        return AL_MASK_E_INVALID;
    if ((unsigned)style >= AL_MASK_STYLE__COUNT)
        return AL_MASK_E_BAD_STYLE;
    if (style == AL_MASK_STYLE_DROP)
        return AL_MASK_DROPPED;
    size_t mark = out->len;
    al_mask_rc_t rc = al__mask_apply_style(e, style, (const uint8_t *)in, len, out);
    if (rc < 0)
        out_restore(out, mark);
    return rc;
}

/* Does the key-like column name make the whole value one detector's? */
static int whole_value_rule(const al_mask_engine_t *e, al_str_t column, const uint8_t *p,
                            size_t len)
{
    if (!column.p || !column.len || len == 0)
        return -1;
    switch (al__mask_column_kind(column)) {
    case AL__MASK_COL_SSN:
        return al__mask_ssn_whole(p, len) ? e->det_rule[AL_MASK_DET_US_SSN] : -1;
    case AL__MASK_COL_AWS_SECRET:
        return al__mask_aws_secret_whole(p, len) ? e->det_rule[AL_MASK_DET_AWS_KEY] : -1;
    case AL__MASK_COL_PASSWORD:
        return e->det_rule[AL_MASK_DET_API_KEY];
    case AL__MASK_COL_SECRET:
        return al__mask_secret_value_ok(p, len) ? e->det_rule[AL_MASK_DET_API_KEY] : -1;
    case AL__MASK_COL_NONE:
        break;
    }
    return -1;
}

al_mask_rc_t al_mask_field(const al_mask_engine_t *e, al_mask_scratch_t *s, al_str_t column,
                           const char *in, size_t len, al_buf_t *out, al_mask_stats_t *stats)
{
    if (!e || !s || (!in && len) || !out)
        return AL_MASK_E_INVALID;
    al_mask_rc_t rc = al__mask_scratch_enter(e, s);
    if (rc < 0)
        return rc;
    const uint8_t *p = (const uint8_t *)in;
    size_t mark = out->len;
    s->hits.n = 0;
    al_mask_style_t cst;
    int rule;
    if (al_mask_column_style(e, column, &cst)) {
        if (stats) {
            stats->bytes += len;
            stats->values++;
        }
        rc = cst == AL_MASK_STYLE_DROP ? AL_MASK_DROPPED
                                       : al__mask_apply_style(e, cst, p, len, out);
    } else if ((rule = whole_value_rule(e, column, p, len)) >= 0) {
        al_mask_match_t m = {0, len, (uint32_t)rule, e->rules[rule].det};
        if (stats)
            stats->bytes += len;
        al__mask_count(stats, &m, 1);
        s->hits.v[0] = m;
        s->hits.n = 1;
        al_mask_style_t st = e->rules[rule].style;
        rc = st == AL_MASK_STYLE_DROP ? AL_MASK_DROPPED : al__mask_apply_style(e, st, p, len, out);
    } else {
        rc = mask_text(e, s, p, len, out, stats);
        if (rc == AL_MASK_MASKED && out->len == mark && len > 0 && s->hits.n > 0 &&
            s->hits.v[0].start == 0 && s->hits.v[s->hits.n - 1].end == len) {
            /* Every byte belonged to dropped values. */
            size_t covered = 0;
            for (size_t i = 0; i < s->hits.n; i++)
                covered += s->hits.v[i].end - s->hits.v[i].start;
            if (covered == len)
                rc = AL_MASK_DROPPED;
        }
    }
    if (rc < 0) {
        s->hits.n = 0;
        out_restore(out, mark);
    }
    al__mask_scratch_leave(s);
    return rc;
}
