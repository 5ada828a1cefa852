/*
 * verify.c - walks the hash chain of a store in order and names the first
 * event that does not link to its predecessor or does not match its own
 * hash (docs/audit.md "How verify works").
 */
#include <inttypes.h>
#include <stdio.h>

#include "audit/audit.h"

#define STOP 1 /* row callback: break found, stop walking */

typedef struct vstate {
    al_audit_verify_t *out;
    uint8_t prev[32]; /* hash of the last intact event; zeros before the first */
    int64_t last_seq;
    al_buf_t scratch;
    bool oom;
} vstate_t;

static int broken(vstate_t *v, const al_audit_row_t *row, const char *fmt, ...) AL_PRINTF(3, 4);
static int broken(vstate_t *v, const al_audit_row_t *row, const char *fmt, ...)
{
    al_audit_verify_t *o = v->out;
    o->intact = false;
    o->bad_seq = row->seq;
    snprintf(o->bad_id, sizeof o->bad_id, "%s", row->ev.id);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->reason, sizeof o->reason, fmt, ap);
    va_end(ap);
    return STOP;
}

static int check_row(void *ud, const al_audit_row_t *row)
{
    vstate_t *v = ud;
    v->out->events++;
    if (row->decode_error)
        return broken(v, row, "event cannot be decoded (%s): it was edited", row->decode_error);
    if (row->prev_len != 32 || row->hash_len != 32)
        return broken(v, row, "prev_hash or hash is not 32 bytes: the event was edited");
    uint8_t h[32];
    if (al_audit_chain_hash(row->prev_hash, &row->ev, &v->scratch, h) != AL_OK) {
        v->oom = true;
        return AL_ERR;
    }
    if (memcmp(h, row->hash, 32) != 0)
        return broken(v, row, "content does not match its hash: the event was edited");
    if (memcmp(row->prev_hash, v->prev, 32) != 0) {
        if (v->last_seq == 0)
            return broken(v, row, "the first event does not start the chain (prev_hash is not "
                                  "zero): events before it were deleted, or it was inserted or reordered");
        if (row->seq != v->last_seq + 1)
            return broken(v, row, "prev_hash does not match the hash of the previous event (seq %"
                                  PRId64 ") and seq jumps from %" PRId64 " to %" PRId64 ": an event "
                                  "was deleted (or inserted or reordered)", v->last_seq,
                          v->last_seq, row->seq);
        return broken(v, row, "prev_hash does not match the hash of the previous event (seq %"
                              PRId64 "): an event was deleted, inserted or reordered here",
                      v->last_seq);
    }
    memcpy(v->prev, row->hash, 32);
    v->last_seq = row->seq;
    return AL_OK;
}

int al_audit_verify(al_audit_store_t *s, al_audit_verify_t *out, char *err, size_t cap)
{
    memset(out, 0, sizeof *out);
    out->intact = true;
    vstate_t v = {.out = out};
    al_buf_init(&v.scratch);
    int r = al_audit_store_iterate(s, 0, check_row, &v, err, cap);
    al_buf_free(&v.scratch);
    memcpy(out->head, v.prev, 32);
    if (v.oom) {
        snprintf(err, cap, "audit verify: out of memory");
        return AL_ERR;
    }
    if (r == STOP || r == AL_OK)
        return AL_OK;
    return AL_ERR;
}
