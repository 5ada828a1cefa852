/*
 * pg_gateway.h - the PostgreSQL gateway on the worker loops.
 *
 * Listening sockets are made on the control thread at start (one per
 * worker and target, SO_REUSEPORT, so a bind error stops start-up with a
 * clear message) and handed to the workers, which accept on their own loop.
 * A session lives on one worker: client socket, upstream socket, two pure
 * framers (pg_codec.h), the agent's principal, and its decisions.
 */
#ifndef AL_PROTO_PG_GATEWAY_H
#define AL_PROTO_PG_GATEWAY_H

#include "runtime/runtime.h"

/* Control thread, before the workers start: binds every postgres target's
 * listener once per worker. Logs and returns AL_ERR on failure. */
int al_pg_listen_all(al_runtime_t *rt);
/* Worker thread, before uv_run: starts accepting on its sockets. */
int al_pg_worker_start(al_worker_t *w);
/* Worker thread: stop accepting; close idle sessions; busy ones close when
 * they next become idle. `force` closes every session now. */
void al_pg_worker_drain(al_worker_t *w, bool force);
/* Worker thread, after uv_run returned. */
void al_pg_worker_free(al_worker_t *w);
/* Control thread, after the workers were joined. */
void al_pg_listen_close(al_runtime_t *rt);

#endif
