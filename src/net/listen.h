/*
 * listen.h - data-path listening sockets, shared by the protocol gateways.
 *
 * At start, on the control thread, every target a gateway serves gets one
 * socket per worker (SO_REUSEPORT: the kernel spreads connections), bound
 * and listening, so a busy or bad address stops start-up with a clear
 * error. The target's TLS contexts and its session counter are made once
 * and shared by all workers. Each worker later adopts its sockets
 * (uv_tcp_open) on its own loop.
 */
#ifndef AL_NET_LISTEN_H
#define AL_NET_LISTEN_H

#include <stdatomic.h>

#include <uv.h>

#include "core/config.h"
#include "net/tls.h"

typedef struct al_listen_slot {
    int fd;                /* -1 once a worker adopted it */
    char *target;          /* target name */
    al_tls_ctx_t *tls;     /* server context (NULL: tls off); shared */
    al_tls_ctx_t *up_tls;  /* client context to the upstream (NULL: plaintext); shared */
    _Atomic int *count;    /* the target's open sessions across workers; shared */
} al_listen_slot_t;

typedef struct al_listen_set {
    al_listen_slot_t *slots;
    size_t n;
} al_listen_set_t;

/* What a gateway needs for its targets. */
typedef struct al_listen_spec {
    const char *proto;  /* for logs: "postgres", "http" */
    bool (*want)(const al_target_conf_t *t);
    /* true when the upstream needs TLS; then *ca (may stay NULL: system
     * store) and *verify are set. */
    bool (*up_tls)(const al_target_conf_t *t, const char **ca, bool *verify);
} al_listen_spec_t;

/* Fills sets[0..n_workers). AL_ERR (logged) when a socket, certificate or
 * key cannot be set up; nothing is left open then. */
int al_listen_targets(const al_config_t *cfg, const al_listen_spec_t *spec, int n_workers,
                      al_listen_set_t *sets);
/* Closes what workers did not adopt and frees the shared contexts and
 * counters once. */
void al_listen_close(al_listen_set_t *sets, int n_workers);

/* Worker thread: makes `tcp` (initialized on loop, tcp->data = data) accept
 * on the slot's socket with cb; the handle owns the fd from then on. The
 * handle is initialized even when this fails, so the caller closes it as
 * usual (al_listen_stop). Logs and returns AL_ERR on failure. */
int al_listen_start(uv_loop_t *loop, uv_tcp_t *tcp, void *data, al_listen_slot_t *sl,
                    uv_connection_cb cb);
/* Closes a started listener once; *open is cleared. */
void al_listen_stop(uv_tcp_t *tcp, bool *open);

/* "host:port" (IPv6 in brackets, localhost = 127.0.0.1) to an address. */
int al_listen_parse_addr(const char *hp, struct sockaddr_storage *ss);

#endif
