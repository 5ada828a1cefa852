/* write.c - the gateways' socket write path (see write.h). */
#include <stdlib.h>
#include <string.h>

#include "net/write.h"

int al_stream_write(uv_stream_t *dst, const void *p, size_t n, uv_write_cb cb, void *owner,
                    uintptr_t tag)
{
    if (!n)
        return AL_OK;
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    int tw = uv_stream_get_write_queue_size(dst) ? UV_EAGAIN : uv_try_write(dst, &b, 1);
    if (tw < 0 && tw != UV_EAGAIN)
        return AL_ERR;
    size_t done = tw > 0 ? (size_t)tw : 0;
    if (done == n)
        return AL_OK;
    al_wreq_t *w = malloc(sizeof *w + (n - done));
    if (!w)
        return AL_ERR;
    w->owner = owner;
    w->tag = tag;
    memcpy(w->data, (const char *)p + done, n - done);
    b = uv_buf_init(w->data, (unsigned)(n - done));
    if (uv_write(&w->req, dst, &b, 1, cb) != 0) {
        free(w);
        return AL_ERR;
    }
    return AL_OK;
}
