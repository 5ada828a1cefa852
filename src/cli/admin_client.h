/*
 * admin_client.h - the CLI's client for a running gateway's admin API
 * (docs/killswitch.md). Every subcommand that talks to `airlock serve`
 * (sessions, agents, approvals, ...) uses it, so they share their flags,
 * their error messages and their exit codes:
 *
 *   -c, --config FILE   the gateway's config: the admin address is
 *                       server.admin_listen, the token is the bootstrap
 *                       token in server.data_dir/admin-token
 *   --server URL        the admin API's base URL instead (http://host:port)
 *   --token-file PATH   a file holding the bearer token (an admin's OIDC
 *                       access token, or the bootstrap token)
 *   --json              machine-readable output: the server's JSON
 *
 * Exit codes: AL_EXIT_OK 0, AL_EXIT_REFUSED 1 (the server refused, or no
 * such thing: the reason is printed), AL_EXIT_USAGE 2, AL_EXIT_UNREACHABLE
 * 3 (no answer from the gateway: the address is printed).
 */
#ifndef AL_CLI_ADMIN_CLIENT_H
#define AL_CLI_ADMIN_CLIENT_H

#include <jansson.h>

#include "core/core.h"

#define AL_EXIT_OK 0
#define AL_EXIT_REFUSED 1
#define AL_EXIT_USAGE 2
#define AL_EXIT_UNREACHABLE 3

/* The usage lines every command prints for the shared flags. */
#define AL_ADMIN_CLIENT_USAGE                                                              \
    "  -c, --config FILE   the gateway's config (admin address and bootstrap token)\n"    \
    "  --server URL        admin API base URL instead, e.g. http://127.0.0.1:7480\n"      \
    "  --token-file PATH   bearer token for --server (or to override the config's)\n"     \
    "  --json              print the server's JSON answer\n"

typedef struct al_admin_client {
    const char *prog;        /* "airlock sessions": prefixes every message */
    const char *cfg_path;    /* -c */
    const char *server;      /* --server */
    const char *token_file;  /* --token-file */
    bool json;               /* --json */
    /* set by al_admin_client_open */
    char *base;              /* "http://host:port", no trailing slash; owned */
    char *token;             /* owned; wiped by al_admin_client_close */
    size_t token_len;
} al_admin_client_t;

/* Starts a client for prog (a static string). */
void al_admin_client_init(al_admin_client_t *c, const char *prog);
/* Looks at argv[*i]. Returns 1 when it was a shared flag (consumed, with its
 * value: *i then indexes the last argument used), 0 when it is not one, -1
 * on a usage error (printed). */
int al_admin_client_opt(al_admin_client_t *c, int argc, char **argv, int *i);
/* Resolves the address and reads the token. Returns AL_EXIT_OK, or
 * AL_EXIT_USAGE after printing why (no -c/--server, unreadable config or
 * token file). */
int al_admin_client_open(al_admin_client_t *c);
void al_admin_client_close(al_admin_client_t *c);

/* One answer. */
typedef struct al_admin_resp {
    long status;    /* HTTP status */
    al_buf_t body;  /* as received, NUL-terminated */
    json_t *json;   /* the body parsed, or NULL */
} al_admin_resp_t;

/* Sends METHOD base+path with an optional JSON body (NULL for none) and
 * waits for the answer. Returns AL_EXIT_OK when one arrived (any status:
 * check r->status), AL_EXIT_UNREACHABLE after printing which address could
 * not be reached. Free r with al_admin_resp_free either way. */
int al_admin_call(al_admin_client_t *c, const char *method, const char *path, const char *body,
                  al_admin_resp_t *r);
void al_admin_resp_free(al_admin_resp_t *r);
/* For an answer that is not 2xx: prints "prog: refused (STATUS error):
 * detail" to stderr (with --json, the body goes to stdout too) and returns
 * AL_EXIT_REFUSED. For 2xx returns AL_EXIT_OK and prints nothing. */
int al_admin_check(const al_admin_client_t *c, const al_admin_resp_t *r);
/* Appends s percent-encoded as one path segment (RFC 3986 §3.3). */
void al_admin_path_seg(al_buf_t *b, const char *s);

#endif
