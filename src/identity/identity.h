/*
 * identity.h - the identity layer's one public header: who is this token?
 *
 * Flow (RFC 7519 §7.2, RFC 8725 §3): size cap -> verified-token cache ->
 * JWS parse (jws.h) -> issuer chosen by exact "iss" -> alg allowed for the
 * issuer -> key from the issuer's JWKS by kid + alg -> signature -> claims
 * (exp, nbf, iat, lifetime, aud, sub, tid, typ, Entra overage) -> agent
 * inventory -> principal. Every refusal is an al_tok_status_t.
 *
 * Threads: an al_verifier_t is immutable once built and shared by every
 * thread of one config snapshot. An al_token_cache_t belongs to one thread.
 * The JWKS manager runs one fetch thread; keysets are swapped under a
 * short lock that only the cold path (signature verification) takes.
 */
#ifndef AL_IDENTITY_H
#define AL_IDENTITY_H

#include "core/config.h"
#include "core/core.h"
#include "identity/reason.h"

/* ---- principal ----------------------------------------------------------- */

/* Who a verified token speaks for. Immutable and reference-counted; one
 * allocation holds the struct and all its strings. Never holds the token. */
typedef struct al_principal {
    int refs;               /* atomic; al_principal_ref/unref */
    const char *issuer_name;/* config name of the issuer */
    const char *iss;
    const char *sub;
    const char *agent;      /* inventory name; NULL when unknown agents are allowed */
    const char *owner;      /* inventory owner; NULL if none */
    const char *system;     /* inventory system; NULL if none */
    const char *client_id;  /* agent_claim (azp; Entra v1 appid), NULL if absent */
    const char *tenant;     /* tid, NULL if absent */
    const char **groups;    /* token groups_claim plus inventory groups, deduplicated */
    size_t n_groups;
    const char **scopes;    /* "scp" or "scope", space-separated in the token */
    size_t n_scopes;
    double exp;             /* NumericDate */
    double iat;             /* 0 when absent */
    char token_hash[65];    /* hex SHA-256 of the token */
} al_principal_t;

al_principal_t *al_principal_ref(al_principal_t *p);
void al_principal_unref(al_principal_t **p);
/* Appends the principal as a JSON object to b. */
int al_principal_json(const al_principal_t *p, al_buf_t *b);
/* True if the principal holds group g. */
bool al_principal_in_group(const al_principal_t *p, const char *g);

/* ---- JWKS manager -------------------------------------------------------- */

typedef struct al_jwks_mgr al_jwks_mgr_t;
typedef struct al_jwks_entry al_jwks_entry_t;

/* Creates a manager. `offline` managers never start a thread: callers fetch
 * synchronously with al_jwks_fetch_now (the CLI). */
al_jwks_mgr_t *al_jwks_mgr_new(bool offline);
/* Stops the fetch thread and frees every entry. */
void al_jwks_mgr_free(al_jwks_mgr_t **m);
/* Reconciles entries with cfg: one entry per issuer, kept across reloads
 * while its key source (issuer, jwks_uri, jwks_file) is unchanged, so cached
 * keys survive SIGHUP. Schedules an immediate fetch of new entries. The dev
 * issuer's entry is added when cfg->dev_issuer is set. Returns AL_OK or
 * AL_ERR (dev key unreadable). Call from one thread at a time. */
int al_jwks_mgr_sync(al_jwks_mgr_t *m, const al_config_t *cfg);
/* Starts the background fetch/refresh thread (not for offline managers). */
int al_jwks_mgr_start(al_jwks_mgr_t *m);
/* The entry for an issuer config name, or NULL. Valid until the manager is
 * freed. */
al_jwks_entry_t *al_jwks_mgr_entry(al_jwks_mgr_t *m, const char *issuer_name);
/* Fetches an entry's keys now, on the calling thread (blocking: never call
 * from a worker loop). Returns AL_OK or AL_ERR (logged). */
int al_jwks_fetch_now(al_jwks_mgr_t *m, al_jwks_entry_t *e);

/* The entry's current keyset (a new reference; release with
 * al_keyset_unref), or NULL with *why = AL_TOK_JWKS_UNAVAILABLE when it was
 * never fetched or its last success is older than jwks_max_staleness. */
struct al_keyset;
struct al_keyset *al_jwks_entry_keys(al_jwks_entry_t *e, double now, al_tok_status_t *why);
/* Asks for a refetch after an unknown kid, at most once per
 * jwks_refetch_interval (RFC 7517 §5 key rotation). Returns true if one was
 * scheduled or is in progress, and sets *ticket for al_jwks_entry_on_fetched. */
bool al_jwks_entry_request_refetch(al_jwks_entry_t *e, double now, uint64_t *ticket);
/* Registers fn(arg) to be called once, from the fetch thread, when the
 * fetch attempt that `ticket` names has finished (success or failure).
 * Returns 1 without registering when it already has (verify again now),
 * 0 when registered. fn must be thread-safe (typically uv_async_send). */
int al_jwks_entry_on_fetched(al_jwks_entry_t *e, uint64_t ticket, void (*fn)(void *), void *arg);
/* Forgets a registration made with al_jwks_entry_on_fetched (the waiter went
 * away before the fetch finished). */
void al_jwks_entry_cancel_wait(al_jwks_entry_t *e, void (*fn)(void *), void *arg);
/* Counters for /metrics. */
typedef struct al_jwks_stats {
    uint64_t fetch_ok, fetch_err;
    double last_success;  /* 0 if never */
    size_t n_keys;
} al_jwks_stats_t;
void al_jwks_entry_stats(al_jwks_entry_t *e, al_jwks_stats_t *out);

/* ---- verifier ------------------------------------------------------------- */

typedef struct al_verifier al_verifier_t;

/* Builds a verifier for cfg, taking entries from m (which must already be
 * synced with cfg). The verifier borrows cfg and m: both must outlive it. */
al_verifier_t *al_verifier_new(const al_config_t *cfg, al_jwks_mgr_t *m, uint64_t generation);
void al_verifier_free(al_verifier_t **v);

/* Extra facts about a verification, for errors, logs and retries. */
typedef struct al_verify_info {
    const char *detail;        /* static text explaining the refusal, or NULL */
    const char *issuer_name;   /* issuer config name once known, else NULL */
    al_jwks_entry_t *refetch;  /* set on UNKNOWN_KID when a refetch was scheduled:
                                  the caller may wait (al_jwks_entry_on_fetched
                                  with refetch_ticket) and verify once more */
    uint64_t refetch_ticket;
    bool cache_hit;
    const char *revoked_agent; /* AL_TOK_REVOKED (kill switch, runtime/revoked.h): the
                                  disabled agent, for the audit record; borrowed from
                                  the revocation set, valid during the caller's callback */
} al_verify_info_t;

/* Verifies a token. On AL_TOK_OK, *out is a new principal reference. cache
 * may be NULL. `only_issuer` (NULL for any) restricts which issuer may
 * match. Thread-safe for a given (v, cache-owned-by-this-thread). */
al_tok_status_t al_verify(const al_verifier_t *v, void *cache, const char *token, size_t len,
                          const char *only_issuer, double now, al_principal_t **out,
                          al_verify_info_t *info);

/* Global verification counters by reason, for /metrics (atomic). */
uint64_t al_verify_count(al_tok_status_t reason, bool cache_hit);

/* ---- verified-token cache (one per thread) ----------------------------------- */

typedef struct al_token_cache al_token_cache_t;

/* A fixed-size cache of `slots` entries (rounded up to a power of two),
 * keyed by SHA-256 of the token. An entry lives until its token expires or
 * it is evicted; a verifier generation change makes entries stale. */
al_token_cache_t *al_token_cache_new(size_t slots);
void al_token_cache_free(al_token_cache_t **c);
/* Looks up hash; on a live hit returns a new principal reference. */
al_principal_t *al_token_cache_get(al_token_cache_t *c, const uint8_t hash[32], uint64_t gen, double now);
void al_token_cache_put(al_token_cache_t *c, const uint8_t hash[32], uint64_t gen, double until,
                        al_principal_t *p);

/* ---- dev issuer --------------------------------------------------------------- */

/* The dev issuer's "iss" value and default audience. */
#define AL_DEV_ISS "airlock-dev"
#define AL_DEV_AUDIENCE "airlock"

/* Loads (creating on first use, mode 0600) the dev issuer's ES256 key under
 * data_dir/dev-issuer/. Returns an EVP_PKEY (caller frees) or NULL. */
struct evp_pkey_st;
struct evp_pkey_st *al_dev_issuer_key(const char *data_dir, bool create);
/* Writes the dev issuer's public JWKS document to b. */
int al_dev_issuer_jwks(struct evp_pkey_st *key, al_buf_t *b);

typedef struct al_mint_req {
    const char *subject;
    const char **groups;
    size_t n_groups;
    const char *audience;   /* NULL: AL_DEV_AUDIENCE */
    double ttl;             /* seconds */
    double now;
} al_mint_req_t;
/* Mints a dev token (ES256, kid = JWK thumbprint) into out. */
int al_dev_issuer_mint(struct evp_pkey_st *key, const al_mint_req_t *req, al_buf_t *out);

#endif
