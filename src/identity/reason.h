/*
 * reason.h - why a token was accepted or refused.
 *
 * Every refusal is one of these codes. The string from al_tok_reason() is a
 * stable contract: it appears in `airlock token verify` output, in audit
 * records, in metrics labels and (redacted to the code) in client errors.
 * Never renumber; append new codes before AL_TOK__COUNT.
 */
#ifndef AL_IDENTITY_REASON_H
#define AL_IDENTITY_REASON_H

typedef enum al_tok_status {
    AL_TOK_OK = 0,
    AL_TOK_MALFORMED,         /* not a well-formed JWS compact token */
    AL_TOK_TOO_LARGE,         /* over the size cap, refused before parsing */
    AL_TOK_ALG_NOT_ALLOWED,   /* alg unknown, none, HS*, or not allowed for the issuer */
    AL_TOK_UNKNOWN_KID,       /* no key in the issuer's JWKS fits kid + alg */
    AL_TOK_BAD_SIGNATURE,     /* signature does not verify */
    AL_TOK_ISSUER_MISMATCH,   /* iss is not a configured issuer */
    AL_TOK_AUDIENCE_MISMATCH, /* aud holds no configured audience */
    AL_TOK_EXPIRED,           /* exp + skew <= now */
    AL_TOK_NOT_YET_VALID,     /* nbf - skew > now */
    AL_TOK_ISSUED_IN_FUTURE,  /* iat - skew > now */
    AL_TOK_LIFETIME_TOO_LONG, /* exp - iat (or exp - now) over max_token_lifetime */
    AL_TOK_MISSING_CLAIM,     /* a required claim is absent or of the wrong type */
    AL_TOK_CRIT_UNSUPPORTED,  /* crit names a header parameter we do not implement */
    AL_TOK_UNKNOWN_AGENT,     /* sub is not in the agents inventory */
    AL_TOK_TENANT_MISMATCH,   /* Entra tid differs from the configured tenant */
    AL_TOK_JWKS_UNAVAILABLE,  /* no usable keys: never fetched, or stale past jwks_max_staleness */
    AL_TOK_TYP_MISMATCH,      /* typ header differs from the issuer's required typ */
    AL_TOK_REVOKED,           /* identity disabled (kill switch) */
    AL_TOK_MISSING_TOKEN,     /* no credential was presented */
    AL_TOK_INTERNAL,          /* out of memory or a library failure: fail closed */
    AL_TOK__COUNT
} al_tok_status_t;

/* Stable lowercase reason string ("expired"); "ok" for AL_TOK_OK. */
const char *al_tok_reason(al_tok_status_t s);
/* Human sentence for a reason ("token expired"), used in client errors. */
const char *al_tok_reason_text(al_tok_status_t s);

#endif
