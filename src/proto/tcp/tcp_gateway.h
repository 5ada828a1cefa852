/*
 * tcp_gateway.h - HTTP CONNECT tunnels for `protocol: tcp` targets.
 *
 * Same process model as the other gateways (http_gateway.h): listening
 * sockets are made on the control thread (one per worker and tcp target,
 * SO_REUSEPORT) and accepted on the worker's own loop. A session is one
 * client connection carrying one CONNECT request (RFC 9110 §9.3.6). The
 * request is authenticated (Proxy-Authorization: Bearer, RFC 9110 §11.7.2
 * with RFC 6750 syntax), its host:port must be one of the target's
 * `upstreams`, policy decides it as an HTTP request with method CONNECT,
 * and after `200 Connection established` bytes are relayed both ways
 * untouched until either side closes or the token expires (plus the
 * target's session_grace). docs/http.md, "CONNECT tunnels".
 */
#ifndef AL_PROTO_TCP_GATEWAY_H
#define AL_PROTO_TCP_GATEWAY_H

#include "runtime/runtime.h"

/* Control thread, before the workers start: binds every tcp target's
 * listener once per worker and makes the targets' TLS contexts. Logs and
 * returns AL_ERR on failure. */
int al_tcp_listen_all(al_runtime_t *rt);
/* Worker thread, before uv_run: starts accepting on its sockets. */
int al_tcp_worker_start(al_worker_t *w);
/* Worker thread: stop accepting and close sessions that have not opened a
 * tunnel; open tunnels run on until they end. `force` closes every session
 * now (audited with reason "drain"). */
void al_tcp_worker_drain(al_worker_t *w, bool force);
/* Worker thread, after uv_run returned. */
void al_tcp_worker_free(al_worker_t *w);
/* Control thread, after the workers were joined: closes what
 * al_tcp_listen_all made. */
void al_tcp_listen_close(al_runtime_t *rt);

#endif
