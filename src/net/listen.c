/* listen.c - data-path listening sockets (see listen.h). */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "net/listen.h"

int al_listen_parse_addr(const char *hp, struct sockaddr_storage *ss)
{
    char host[256];
    const char *colon = strrchr(hp, ':');
    if (!colon || (size_t)(colon - hp) >= sizeof host)
        return AL_ERR;
    size_t hl = (size_t)(colon - hp);
    memcpy(host, hp, hl);
    host[hl] = 0;
    int port = atoi(colon + 1);
    memset(ss, 0, sizeof *ss);
    if (host[0] == '[' && hl > 2) {
        host[hl - 1] = 0;
        return uv_ip6_addr(host + 1, port, (struct sockaddr_in6 *)ss) ? AL_ERR : AL_OK;
    }
    if (!strcmp(host, "localhost"))
        snprintf(host, sizeof host, "127.0.0.1");
    return uv_ip4_addr(host, port, (struct sockaddr_in *)ss) ? AL_ERR : AL_OK;
}

static int open_socket(const al_target_conf_t *tc, const char *proto)
{
    struct sockaddr_storage ss;
    if (al_listen_parse_addr(tc->listen, &ss) != AL_OK) {
        al_log(AL_LOG_ERROR, "targets[].listen must be an IP:port address", "target", tc->name,
               "listen", tc->listen, "protocol", proto, NULL);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    socklen_t sl = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                            : sizeof(struct sockaddr_in);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) ||
        bind(fd, (struct sockaddr *)&ss, sl) || listen(fd, 1024)) {
        al_log(AL_LOG_ERROR, "cannot listen for the target", "target", tc->name, "listen",
               tc->listen, "error", strerror(errno), NULL);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

int al_listen_targets(const al_config_t *cfg, const al_listen_spec_t *spec, int n_workers,
                      al_listen_set_t *sets)
{
    size_t nt = cfg->n_targets;
    for (int i = 0; i < n_workers; i++)
        sets[i] = (al_listen_set_t){al_xcalloc(nt ? nt : 1, sizeof(al_listen_slot_t)), 0};
    for (size_t t = 0; t < nt; t++) {
        const al_target_conf_t *tc = &cfg->targets[t];
        if (!spec->want(tc))
            continue;
        char err[512];
        al_tls_ctx_t *srv = NULL, *cli = NULL;
        const char *ca = NULL;
        bool verify = true;
        if (tc->tls != AL_TLS_OFF &&
            !(srv = al_tls_server_ctx(tc->tls_cert_file, tc->tls_key_file, err, sizeof err))) {
            al_log(AL_LOG_ERROR, "cannot set up TLS for the target's listener", "target",
                   tc->name, "error", err, NULL);
            goto fail;
        }
        if (spec->up_tls(tc, &ca, &verify) &&
            !(cli = al_tls_client_ctx(ca, verify, err, sizeof err))) {
            al_log(AL_LOG_ERROR, "cannot set up TLS to the target's upstream", "target",
                   tc->name, "error", err, NULL);
            al_tls_ctx_free(&srv);
            goto fail;
        }
        _Atomic int *count = al_xcalloc(1, sizeof *count);
        /* Owned by worker 0's slot from here (al_listen_close frees them). */
        for (int i = 0; i < n_workers; i++)
            sets[i].slots[sets[i].n++] = (al_listen_slot_t){-1, al_xstrdup(tc->name), srv, cli,
                                                            count};
        for (int i = 0; i < n_workers; i++)
            if ((sets[i].slots[sets[i].n - 1].fd = open_socket(tc, spec->proto)) < 0)
                goto fail;
        al_log(AL_LOG_INFO, "listener", "protocol", spec->proto, "target", tc->name, "listen",
               tc->listen, "tls", tc->tls == AL_TLS_OFF ? "off"
                                  : tc->tls == AL_TLS_OPTIONAL ? "optional" : "required",
               NULL);
    }
    return AL_OK;
fail:
    al_listen_close(sets, n_workers);
    return AL_ERR;
}

void al_listen_close(al_listen_set_t *sets, int n_workers)
{
    for (int i = 0; i < n_workers; i++) {
        for (size_t k = 0; k < sets[i].n; k++) {
            al_listen_slot_t *sl = &sets[i].slots[k];
            if (sl->fd >= 0)
                close(sl->fd);
            free(sl->target);
            if (i == 0) { /* shared: free once */
                al_tls_ctx_free(&sl->tls);
                al_tls_ctx_free(&sl->up_tls);
                free((void *)sl->count);
            }
        }
        al_free(&sets[i].slots);
        sets[i].n = 0;
    }
}

int al_listen_start(uv_loop_t *loop, uv_tcp_t *tcp, void *data, al_listen_slot_t *sl,
                    uv_connection_cb cb)
{
    uv_tcp_init(loop, tcp);
    tcp->data = data;
    if (uv_tcp_open(tcp, sl->fd) != 0 || uv_listen((uv_stream_t *)tcp, 1024, cb) != 0) {
        al_log(AL_LOG_ERROR, "worker cannot accept on a listener", "target", sl->target, NULL);
        return AL_ERR;
    }
    sl->fd = -1; /* the handle owns it now */
    return AL_OK;
}

void al_listen_stop(uv_tcp_t *tcp, bool *open)
{
    if (!*open)
        return;
    *open = false;
    uv_close((uv_handle_t *)tcp, NULL);
}
