/*
 * fetch.h - blocking HTTP GET for JWKS and OIDC discovery (libcurl).
 * Internal to src/identity. Never call from a worker loop.
 */
#ifndef AL_IDENTITY_FETCH_H
#define AL_IDENTITY_FETCH_H

#include "core/core.h"

#define AL_FETCH_MAX_BYTES (1024 * 1024)

typedef struct al_fetch_result {
    long status;        /* HTTP status, 0 if none */
    al_buf_t body;      /* owned; release with al_buf_free */
    double max_age;     /* Cache-Control max-age seconds, -1 when absent */
    char err[256];      /* why it failed, when the call returns AL_ERR */
} al_fetch_result_t;

/* True when url is https://, or http:// to a loopback host (127.0.0.0/8,
 * [::1], localhost). */
bool al_url_allowed(const char *url);

/* GETs url (no redirects, 1 MiB cap, 10 s total timeout). Returns AL_OK
 * only for a 200 response; otherwise AL_ERR with r->err set. The caller
 * frees r->body either way. */
int al_fetch(const char *url, al_fetch_result_t *r);

/* OpenID Connect Discovery 1.0 §4: fetches
 * <issuer>/.well-known/openid-configuration, requires its "issuer" to equal
 * `issuer` exactly (§4.3) and returns a heap copy of its jwks_uri. */
int al_oidc_discover(const char *issuer, char **jwks_uri, char *err, size_t errcap);

#endif
