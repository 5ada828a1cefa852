/*
 * config.h - the airlock configuration model and its YAML loader.
 *
 * al_config_load() parses one YAML file (libyaml), validates every key,
 * and returns an immutable al_config_t. Every error carries FILE:LINE:COL
 * and says how to fix it. The config owns all its strings; release it with
 * al_config_free(). Secrets never live in the file: keys ending in _env or
 * _file name where a secret comes from, and the loader only records the
 * name (it does not read secrets).
 */
#ifndef AL_CONFIG_H
#define AL_CONFIG_H

#include "core/core.h"

/* JWS algorithms an issuer may accept. Bit flags. */
typedef enum al_alg {
    AL_ALG_NONE = 0,
    AL_ALG_RS256 = 1 << 0,
    AL_ALG_RS384 = 1 << 1,
    AL_ALG_RS512 = 1 << 2,
    AL_ALG_PS256 = 1 << 3,
    AL_ALG_PS384 = 1 << 4,
    AL_ALG_PS512 = 1 << 5,
    AL_ALG_ES256 = 1 << 6,
    AL_ALG_ES384 = 1 << 7,
    AL_ALG_ES512 = 1 << 8,
    AL_ALG_EDDSA = 1 << 9,
} al_alg_t;
#define AL_ALG_ALL_ASYMMETRIC 0x3ffu

/* Name of a single algorithm ("RS256"); NULL for anything else. */
const char *al_alg_name(al_alg_t a);
/* Parses "RS256" etc. (exact, case-sensitive per RFC 7518 §3.1); returns
 * AL_ALG_NONE for any other string, including "none" and "HS256". */
al_alg_t al_alg_parse(const char *s, size_t len);

/* What to do when a token reports Entra group overage
 * (_claim_names/_claim_sources instead of an inline groups claim). */
typedef enum al_overage {
    AL_OVERAGE_DENY = 0, /* refuse the token: missing_claim (default) */
    AL_OVERAGE_IGNORE,   /* accept, using only inventory groups */
} al_overage_t;

typedef struct al_issuer_conf {
    char *name;          /* config name, unique */
    char *issuer;        /* exact expected "iss" */
    char **audiences;    /* at least one; token "aud" must contain one */
    size_t n_audiences;
    char *jwks_uri;      /* NULL: discovered, unless jwks_file is set */
    char *jwks_file;     /* offline JWKS */
    unsigned algorithms; /* al_alg_t bit set; default AL_ALG_ALL_ASYMMETRIC */
    double clock_skew;   /* seconds, default 60 */
    double max_token_lifetime;   /* seconds; 0 = no limit. default 0 */
    double jwks_max_staleness;   /* seconds, default 24h */
    double jwks_refresh_interval;/* seconds, default 1h: upper bound between refreshes */
    double jwks_refetch_interval;/* seconds, default 30s: min gap between unknown-kid refetches */
    char *agent_claim;   /* claim naming the agent's client app, default "azp" */
    char *groups_claim;  /* default "groups" */
    char *tenant;        /* Entra tenant id; when set, "tid" must equal it */
    char *typ;           /* when set, the JOSE "typ" header must equal it (case-insensitive, "application/" prefix optional per RFC 7515 §4.1.9) */
    bool allow_unknown_agents; /* default false: unknown subject -> unknown_agent */
    al_overage_t group_overage;
    int line;            /* where the entry starts, for messages */
} al_issuer_conf_t;

typedef struct al_agent_conf {
    char *name;
    char *issuer;   /* issuer config name */
    char *subject;  /* matched against "sub" */
    char *owner;
    char *system;
    char **groups;
    size_t n_groups;
    int line;
} al_agent_conf_t;

typedef struct al_server_conf {
    char *admin_listen;  /* "host:port", default "127.0.0.1:7480" */
    char *data_dir;      /* default "./var"; relative paths are resolved against the config file's directory */
    int workers;         /* 0 = auto (number of cores) */
    double drain_timeout;/* seconds, default 30 */
    al_log_level_t log_level; /* default info */
} al_server_conf_t;

/* Protocols a target speaks. */
typedef enum al_proto {
    AL_PROTO_POSTGRES = 0,
    AL_PROTO_MYSQL,
    AL_PROTO_HTTP,
    AL_PROTO_SSH,
    AL_PROTO_TCP,
} al_proto_t;
const char *al_proto_name(al_proto_t p);

typedef enum al_tls_mode {
    AL_TLS_REQUIRED = 0, /* default: clients must use TLS */
    AL_TLS_OFF,          /* plaintext only (loopback use) */
    AL_TLS_OPTIONAL,     /* TLS when the client asks, plaintext allowed */
} al_tls_mode_t;

typedef enum al_sslmode {
    AL_SSLMODE_DISABLE = 0,
    AL_SSLMODE_REQUIRE,
    AL_SSLMODE_VERIFY_FULL,
} al_sslmode_t;

/* HTTP: a header airlock sets on every upstream request. Its value is a
 * secret read from `env` or `file` (exactly one is set) when a client
 * connection opens; it is never logged. */
typedef struct al_http_header_conf {
    char *name;          /* field name (RFC 9110 token) */
    char *env;           /* environment variable name */
    char *file;          /* file path (absolute after loading) */
    int line;
} al_http_header_conf_t;

/* Where a target's traffic goes, with the credential airlock holds. */
typedef struct al_upstream_conf {
    char *host;          /* PostgreSQL: name or address (required); HTTP: unset */
    int port;
    char *database;      /* PostgreSQL: default = the client's database */
    char *user;          /* PostgreSQL: the upstream role */
    char *password_env;  /* secret: environment variable name */
    char *password_file; /* secret: file path (mode 0600) */
    al_sslmode_t sslmode;
    char *ca_file;
    double connect_timeout; /* seconds; default 10, 5 for a tcp target */
    char *url;           /* HTTP: "http[s]://host[:port][/base]" (al_config_http_url) */
    al_http_header_conf_t *headers; /* HTTP: injected credential headers */
    size_t n_headers;
} al_upstream_conf_t;

typedef enum al_http_compressed {
    AL_HTTP_COMPRESSED_DECOMPRESS = 0, /* gzip/deflate bodies decoded, masked, sent plain */
    AL_HTTP_COMPRESSED_REFUSE,         /* any encoded body to be masked is a 502 */
} al_http_compressed_t;

/* HTTP targets: timeouts, parser caps, pooling (docs/http.md). */
typedef struct al_http_conf {
    double header_timeout;  /* a request head from its first byte, and a response
                               head after the request went out; default 30s */
    double idle_timeout;    /* a kept-alive connection between requests; default 60s */
    double request_timeout; /* one whole exchange; default 300s */
    int max_request_line;   /* bytes, CRLF included; default 8192 */
    int max_header_bytes;   /* whole head; default 65536 */
    int max_headers;        /* field lines; default 100 */
    char **redact_params; size_t n_redact_params; /* query parameters audited as REDACTED,
                                                      besides the built-in list */
    int pool_size;          /* idle upstream connections kept per worker; default 32 */
    int max_mask_body;      /* bytes of a response body buffered to mask it; default 8 MiB */
    al_http_compressed_t compressed;
} al_http_conf_t;

/* Something agents reach through airlock. */
typedef struct al_target_conf {
    char *name;
    al_proto_t protocol;
    char *listen;        /* host:port of the data-path listener */
    al_tls_mode_t tls;
    char *tls_cert_file;
    char *tls_key_file;
    al_upstream_conf_t upstream;
    char **upstreams;     /* tcp: "host:port" entries a CONNECT may name */
    size_t n_upstreams;
    double session_grace; /* how long a session may outlive its token; default 0 */
    bool sasl_oauthbearer; /* postgres: ask for SASL OAUTHBEARER (RFC 7628) instead of
                              a cleartext password (PostgreSQL 18+ clients) */
    int max_connections;  /* per target, default 10000 */
    double auth_timeout;  /* start-up and authentication must finish within, default 30s */
    /* SQL class (al_sql_class_t as int) of a function missing from the
     * side-effect table; default read. */
    int sql_default_function_class;
    al_http_conf_t http;  /* protocol http only */
    int line;
} al_target_conf_t;

/* A policy rule's conditions; every one that is set must hold. */
typedef struct al_when_conf {
    char **sql; size_t n_sql;             /* statement classes */
    char **tables; size_t n_tables;       /* [schema.]name globs */
    char **schemas; size_t n_schemas;
    char **functions; size_t n_functions;
    char **methods; size_t n_methods;     /* HTTP */
    char **paths; size_t n_paths;         /* HTTP path globs */
    char **hosts; size_t n_hosts;         /* HTTP host globs */
    char **commands; size_t n_commands;   /* command globs */
    char **hours; size_t n_hours;         /* "09:00-17:00" */
    char **days; size_t n_days;           /* "mon", "mon-fri" */
    char *timezone;                       /* IANA name, UTC, +02:00 */
} al_when_conf_t;

typedef enum al_decision {
    AL_DECIDE_ALLOW = 0,
    AL_DECIDE_APPROVE = 1,
    AL_DECIDE_DENY = 2,   /* ordered: a larger value wins */
} al_decision_t;
const char *al_decision_name(al_decision_t d);

typedef enum al_audit_mode {
    AL_AUDIT_MODE_DEFAULT = 0, /* strict for every class but read */
    AL_AUDIT_MODE_STRICT,
    AL_AUDIT_MODE_ASYNC,
} al_audit_mode_t;

typedef enum al_approval_mode {
    AL_APPROVAL_WAIT = 0,
    AL_APPROVAL_RETRY,
} al_approval_mode_t;

/* Approvals: where a new approval request is announced (docs/approvals.md).
 * The URL is given by exactly one of url (not secret), url_env or url_file
 * (secret, e.g. a Slack incoming-webhook URL): read when a notification is
 * sent, never logged. https is required except for loopback. */
typedef struct al_webhook_conf {
    char *url;
    char *url_env;
    char *url_file;
    bool slack;          /* add a Slack-compatible "text" field to the body */
    al_http_header_conf_t *headers; /* secret headers (env/file), e.g. Authorization */
    size_t n_headers;
    int tries;           /* attempts per notification, default 3 */
    double timeout;      /* per attempt, default 10s */
} al_webhook_conf_t;

/* True when w names a URL (a webhook is configured). */
static inline bool al_webhook_set(const al_webhook_conf_t *w)
{
    return w->url || w->url_env || w->url_file;
}

typedef struct al_policy_conf {
    char *name;
    char **who; size_t n_who;         /* agent, group:X, issuer:X, * */
    char **targets; size_t n_targets; /* target names or * */
    al_when_conf_t when;
    al_decision_t action;
    char *message;
    char **approvers; size_t n_approvers; /* groups that may approve */
    double timeout;                   /* approval wait, default 5m */
    char *grant;                      /* once | session | target | duration */
    al_approval_mode_t mode;
    int min_approvals;
    al_webhook_conf_t webhook;        /* approve rules: replaces approvals.webhook */
    char **masking; size_t n_masking; /* masking references */
    al_audit_mode_t audit;
    int line;
} al_policy_conf_t;

typedef struct al_admin_roles_conf {
    char **admin; size_t n_admin;       /* groups holding each role */
    char **approver; size_t n_approver;
    char **auditor; size_t n_auditor;
} al_admin_roles_conf_t;

typedef struct al_admin_conf {
    al_admin_roles_conf_t roles;
} al_admin_conf_t;

typedef struct al_audit_conf {
    char *path;              /* default <data_dir>/audit.db */
    int max_action_bytes;    /* default 4096 */
    double commit_timeout;   /* default 5s */
    double flush_interval;   /* async batches, default 10ms */
    int queue_size;          /* default 65536 */
} al_audit_conf_t;

/* The `approvals:` section. */
typedef struct al_approvals_conf {
    char *path;          /* default <data_dir>/approvals.db */
    char *public_url;    /* base URL of the admin API, for approve links */
    al_webhook_conf_t webhook; /* every approval request, unless its rule has one */
    int max_pending_per_agent; /* default 64 */
} al_approvals_conf_t;

/* The `recordings:` section (docs/recordings.md). */
typedef struct al_recordings_conf {
    bool enabled;          /* default true */
    double retain;         /* seconds; 0 = forever; default 90d */
    double max_bytes;      /* total bytes of closed recordings; 0 = no cap */
    int on_failure;        /* al_rec_failure_t: 0 refuse (default), 1 continue */
    int max_rows;          /* result rows per statement, default 100 */
    int max_body_bytes;    /* HTTP body bytes per message, default 65536 */
    char **redact_headers; size_t n_redact_headers; /* lower-cased */
} al_recordings_conf_t;

/* A custom masking detector: a regex (Hyperscan PCRE subset). */
typedef struct al_mask_custom_conf {
    char *name;
    char *pattern;
    int line;
} al_mask_custom_conf_t;

/* One masking entry (docs/masking.md). Without a name it applies to all
 * traffic of its targets; with a name, only to actions allowed by a policy
 * rule whose `masking:` lists it. */
typedef struct al_masking_conf {
    char *name;
    char **targets; size_t n_targets;     /* target names or * */
    char **detectors; size_t n_detectors; /* built-in or custom detector names */
    char **columns; size_t n_columns;     /* column name globs, masked whole */
    char *style;                          /* full | last4 | hash | drop */
    al_mask_custom_conf_t *custom; size_t n_custom;
    int line;
} al_masking_conf_t;

typedef struct al_config {
    char *path;          /* the file it was loaded from */
    al_masking_conf_t *masking;
    size_t n_masking;
    char *mask_key_env;  /* secret for the hash style: env var name */
    char *mask_key_file; /* or a file (mode 0600) */
    al_server_conf_t server;
    al_admin_conf_t admin;
    al_audit_conf_t audit;
    al_approvals_conf_t approvals;
    al_recordings_conf_t recordings;
    al_target_conf_t *targets;
    size_t n_targets;
    al_policy_conf_t *policies;
    size_t n_policies;
    bool dev_issuer;     /* trust the local dev issuer (airlock token mint) */
    double dev_token_max_ttl; /* seconds, default 1h */
    al_issuer_conf_t *issuers;
    size_t n_issuers;
    al_agent_conf_t *agents;
    size_t n_agents;
} al_config_t;

/* Collected validation errors, each already formatted "FILE:LINE:COL: msg". */
typedef struct al_config_errors {
    char **msgs;
    size_t n;
    int read_errno; /* al_config_load only: nonzero (an errno) when the file
                       could not be read; msgs then holds the one message
                       "FILE: cannot read: <strerror>" */
} al_config_errors_t;

/* Hostile-input limits: a config file larger than this many bytes, or with
 * collections nested deeper than this, is refused with an error. */
#define AL_CONFIG_MAX_BYTES (1u << 20)
#define AL_CONFIG_MAX_DEPTH 32

/* Loads and validates path. On success returns a config (caller owns, free
 * with al_config_free) and errs->n == 0. On failure returns NULL and errs
 * holds at least one message (caller frees with al_config_errors_free).
 * errs need not be initialized: it is overwritten. Errors come in file
 * order; all of them are collected (up to 1000), not just the first. */
al_config_t *al_config_load(const char *path, al_config_errors_t *errs);

/* Same, from a memory buffer (len bytes, need not be NUL-terminated);
 * `name` is used in messages as FILE, and relative paths in the config
 * (data_dir, jwks_file) are resolved against the directory of `name`. */
al_config_t *al_config_load_mem(const char *name, const char *data, size_t len,
                                al_config_errors_t *errs);

void al_config_free(al_config_t *cfg);
void al_config_errors_free(al_config_errors_t *errs);

/* Lookups; NULL when absent. */
const al_issuer_conf_t *al_config_issuer(const al_config_t *cfg, const char *name);
const al_agent_conf_t *al_config_agent(const al_config_t *cfg, const char *name);
const al_target_conf_t *al_config_target(const al_config_t *cfg, const char *name);

/* An HTTP upstream URL split into its parts. Views into the URL string. */
typedef struct al_http_url {
    bool https;
    al_str_t host;       /* without the brackets of an IPv6 literal */
    int port;            /* explicit, else 80 / 443 */
    al_str_t base;       /* the path prefix without a trailing '/'; may be empty */
} al_http_url_t;

/* Splits and checks an upstream.url: "http://" or "https://" (scheme
 * case-insensitive), host (RFC 1123 name, IPv4 or [IPv6]), optional
 * ":port" (1-65535), optional path; no userinfo, query or fragment, no
 * spaces or control bytes. Returns NULL and fills *out, or a static
 * message saying what is wrong. */
const char *al_config_http_url(const char *url, al_http_url_t *out);

/* The name of the built-in dev issuer, and its "iss" value is
 * "airlock-dev:<absolute data_dir>". */
#define AL_DEV_ISSUER_NAME "airlock-dev"

#endif
