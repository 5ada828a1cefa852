/*
 * write.h - one write path for the gateways' sockets: try the socket
 * directly when nothing is queued (no copy, no allocation on the common
 * path), and copy only what it did not take into a queued uv_write.
 * Ordering holds because nothing is tried while a write is queued.
 */
#ifndef AL_NET_WRITE_H
#define AL_NET_WRITE_H

#include <stdint.h>
#include <uv.h>

#include "core/core.h"

/* A queued write; the callback gets it as its uv_write_t and frees it with
 * free() after reading owner and tag. */
typedef struct al_wreq {
    uv_write_t req;
    void *owner;   /* the caller's session */
    uintptr_t tag; /* the caller's note: which side, which upstream */
    char data[];
} al_wreq_t;

/* Writes p[0..n) to dst. AL_OK when written or queued (cb will run for a
 * queued part); AL_ERR on a socket error or no memory: close the session. */
int al_stream_write(uv_stream_t *dst, const void *p, size_t n, uv_write_cb cb, void *owner,
                    uintptr_t tag);

#endif
