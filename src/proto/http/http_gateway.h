/*
 * http_gateway.h - the HTTP/1.1 reverse proxy on the worker loops.
 *
 * Same process model as the PostgreSQL gateway (pg_gateway.h): listening
 * sockets are made on the control thread (one per worker and http target,
 * SO_REUSEPORT) and accepted on the worker's own loop. A session is one
 * client connection with at most one upstream connection; requests on it
 * are handled one at a time, each authenticated (RFC 6750 bearer token),
 * decided by policy on method, normalized path and Host, audited, then
 * streamed to the upstream and back (docs/http.md).
 */
#ifndef AL_PROTO_HTTP_GATEWAY_H
#define AL_PROTO_HTTP_GATEWAY_H

#include "runtime/runtime.h"

/* Control thread, before the workers start: binds every http target's
 * listener once per worker and makes the targets' TLS contexts. Logs and
 * returns AL_ERR on failure. */
int al_http_listen_all(al_runtime_t *rt);
/* Worker thread, before uv_run: starts accepting on its sockets. */
int al_http_worker_start(al_worker_t *w);
/* Worker thread: stop accepting; close idle sessions now, busy ones when
 * their current exchange ends. `force` closes every session now. */
void al_http_worker_drain(al_worker_t *w, bool force);
/* Worker thread, after uv_run returned. */
void al_http_worker_free(al_worker_t *w);
/* Control thread, after the workers were joined: closes what
 * al_http_listen_all made. */
void al_http_listen_close(al_runtime_t *rt);

#endif
