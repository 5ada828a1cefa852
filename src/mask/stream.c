/* stream.c - masking a byte stream fed in arbitrary chunks, with the
 * result al_mask_buffer gives on the whole text.
 *
 * The window holds absolute offsets [base, base + n). Three marks move
 * forward through it:
 *   x     every value starting before x has been taken (in one-shot order);
 *   emit  everything before emit has been written out (emit >= x: a value
 *         taken may end past x, and is written whole);
 *   covered  the end of the last value taken (overlap clipping carries
 *         over from one scan to the next exactly as in one pass).
 * A scan of the window takes the values starting in [x, E - max/2): each
 * such value and its lookahead end inside the window, because values are
 * capped at max/2 - lookahead; and every byte their validators read lies
 * at or after x - 128, inside the AL_MASK_CONTEXT bytes kept before x.
 * So each decision sees the same bytes it would see in one pass.
 * A scan runs when the window is full or more than max_value_len bytes
 * are pending, and leaves max/2 pending: at most max_value_len bytes are
 * ever held back, and each byte is scanned about twice at worst, however
 * small the chunks. */
#include <stdlib.h>

#include "mask/mask_int.h"

struct al_mask_stream {
    al_mask_engine_t *e;
    uint8_t *buf;
    size_t cap, n;
    uint64_t base, x, emit, covered, start;
    bool failed;
};

al_mask_rc_t al_mask_stream_open(al_mask_engine_t *e, size_t window, al_mask_stream_t **out)
{
    if (!e || !out)
        return AL_MASK_E_INVALID;
    *out = NULL;
    size_t unit = e->max_value + AL_MASK_CONTEXT;
    size_t min = 2 * unit;
    if (window == 0)
        window = AL_MAX((size_t)256 * 1024, 4 * unit);
    window = AL_MAX(window, min);
    al_mask_stream_t *st = al_calloc(1, sizeof *st);
    if (!st)
        return AL_MASK_E_NOMEM;
    st->buf = al_malloc(window);
    if (!st->buf) {
        al_free(&st);
        return AL_MASK_E_NOMEM;
    }
    st->cap = window;
    st->e = al_mask_engine_ref(e);
    *out = st;
    return AL_MASK_OK;
}

void al_mask_stream_free(al_mask_stream_t **pst)
{
    if (!pst || !*pst)
        return;
    al_mask_stream_t *st = *pst;
    al_mask_engine_unref(&st->e);
    al_free(&st->buf);
    al_free(pst);
}

size_t al_mask_stream_pending(const al_mask_stream_t *st)
{
    return st ? (size_t)(st->base + st->n - st->emit) : 0;
}

/* Scans the window and emits what is settled; final = at a flush. */
static al_mask_rc_t step(al_mask_stream_t *st, al_mask_scratch_t *s, bool final, al_buf_t *out,
                         al_mask_stats_t *stats)
{
    const al_mask_engine_t *e = st->e;
    uint64_t end = st->base + st->n;
    uint64_t xn = final ? end : end - e->max_value / 2;
    if (xn <= st->x && !final)
        return AL_MASK_OK;
    al_mask_rc_t rc = al__mask_scan(e, s, st->buf, st->n, &s->hits, stats);
    if (rc < 0)
        return rc;
    size_t lo = (size_t)(st->x - st->base), hi = (size_t)(xn - st->base);
    size_t cov = st->covered > st->base ? (size_t)(st->covered - st->base) : 0;
    al__mask_resolve(&s->hits, lo, final ? SIZE_MAX : hi, &cov);
    uint64_t target = final ? end : AL_MAX(xn, st->base + cov);
    rc = al__mask_emit(e, st->buf, (size_t)(st->emit - st->base), (size_t)(target - st->base),
                       s->hits.v, s->hits.n, out, stats);
    if (rc < 0)
        return rc;
    st->x = xn;
    st->emit = target;
    st->covered = AL_MAX(st->covered, st->base + cov);
    if (final) {
        st->base = st->x = st->emit = st->covered = st->start = end;
        st->n = 0;
        return rc;
    }
    uint64_t keep = st->x > st->start + AL_MASK_CONTEXT ? st->x - AL_MASK_CONTEXT : st->start;
    if (keep > st->base) {
        size_t drop = (size_t)(keep - st->base);
        memmove(st->buf, st->buf + drop, st->n - drop);
        st->n -= drop;
        st->base = keep;
    }
    return rc;
}

static al_mask_rc_t stream_enter(al_mask_stream_t *st, al_mask_scratch_t *s, al_buf_t *out)
{
    if (!st || !s || !out)
        return AL_MASK_E_INVALID;
    if (st->failed)
        return AL_MASK_E_INVALID;
    return al__mask_scratch_enter(st->e, s);
}

al_mask_rc_t al_mask_stream_feed(al_mask_stream_t *st, al_mask_scratch_t *s, const char *chunk,
                                 size_t len, al_buf_t *out, al_mask_stats_t *stats)
{
    if (!chunk && len)
        return AL_MASK_E_INVALID;
    al_mask_rc_t rc = stream_enter(st, s, out);
    if (rc < 0)
        return rc;
    bool masked = false;
    if (stats)
        stats->bytes += len;
    while (len > 0 && rc >= 0) {
        if (st->n == st->cap) {
            rc = step(st, s, false, out, stats);
            masked |= rc == AL_MASK_MASKED;
            continue;
        }
        size_t k = AL_MIN(len, st->cap - st->n);
        memcpy(st->buf + st->n, chunk, k);
        st->n += k;
        chunk += k;
        len -= k;
    }
    if (rc >= 0 && st->base + st->n - st->emit > st->e->max_value) {
        rc = step(st, s, false, out, stats);
        masked |= rc == AL_MASK_MASKED;
    }
    if (rc < 0)
        st->failed = true;
    al__mask_scratch_leave(s);
    return rc < 0 ? rc : masked ? AL_MASK_MASKED : AL_MASK_OK;
}

al_mask_rc_t al_mask_stream_flush(al_mask_stream_t *st, al_mask_scratch_t *s, al_buf_t *out,
                                  al_mask_stats_t *stats)
{
    al_mask_rc_t rc = stream_enter(st, s, out);
    if (rc < 0)
        return rc;
    rc = step(st, s, true, out, stats);
    if (rc < 0)
        st->failed = true;
    al__mask_scratch_leave(s);
    return rc;
}
