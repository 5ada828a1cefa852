/*
 * admin.h - the admin listener on the control loop: /healthz, /metrics
 * (Prometheus text exposition 0.0.4) and the JSON API under /v1/.
 */
#ifndef AL_ADMIN_H
#define AL_ADMIN_H

#include "core/core.h"

struct al_runtime;
typedef struct al_admin al_admin_t;

/* Creates the admin server for rt (not yet listening). */
al_admin_t *al_admin_new(struct al_runtime *rt);
/* Loads (creating on first start, mode 0600) the bootstrap admin token at
 * data_dir/admin-token. It holds every admin role, for local use. Logs and
 * returns AL_ERR when it cannot. */
int al_admin_bootstrap(al_admin_t *a, const char *data_dir);
/* Binds and listens on "host:port". Logs and returns AL_ERR on failure. */
int al_admin_listen(al_admin_t *a, const char *addr);
/* Stops accepting new connections (drain). */
void al_admin_stop_accepting(al_admin_t *a);
/* Requests being served right now. */
size_t al_admin_inflight(const al_admin_t *a);
/* Closes every connection and the listener. */
void al_admin_close_all(al_admin_t *a);
/* Frees after the loop has run the close callbacks. */
void al_admin_free(al_admin_t **a);

/* The web console's asset at path ("/", "/console.js", "/console.css"):
 * its content type and bytes (static storage, not owned). AL_OK, or AL_ERR
 * for any other path. */
int al_admin_console_asset(const char *path, const char **ctype, const char **body,
                           size_t *len);

/* Renders the Prometheus metrics page into b. */
int al_admin_metrics(struct al_runtime *rt, al_buf_t *b);

#endif
