/* reason.c - stable reason strings for token decisions. */
#include "identity/reason.h"

static const struct {
    const char *code;
    const char *text;
} reasons[AL_TOK__COUNT] = {
    [AL_TOK_OK] = {"ok", "token accepted"},
    [AL_TOK_MALFORMED] = {"malformed", "token is malformed"},
    [AL_TOK_TOO_LARGE] = {"too_large", "token is too large"},
    [AL_TOK_ALG_NOT_ALLOWED] = {"alg_not_allowed", "token algorithm is not allowed"},
    [AL_TOK_UNKNOWN_KID] = {"unknown_kid", "token signing key is unknown"},
    [AL_TOK_BAD_SIGNATURE] = {"bad_signature", "token signature is invalid"},
    [AL_TOK_ISSUER_MISMATCH] = {"issuer_mismatch", "token issuer is not trusted"},
    [AL_TOK_AUDIENCE_MISMATCH] = {"audience_mismatch", "token audience is not accepted"},
    [AL_TOK_EXPIRED] = {"expired", "token expired"},
    [AL_TOK_NOT_YET_VALID] = {"not_yet_valid", "token is not yet valid"},
    [AL_TOK_ISSUED_IN_FUTURE] = {"issued_in_future", "token is issued in the future"},
    [AL_TOK_LIFETIME_TOO_LONG] = {"lifetime_too_long", "token lifetime is too long"},
    [AL_TOK_MISSING_CLAIM] = {"missing_claim", "token lacks a required claim"},
    [AL_TOK_CRIT_UNSUPPORTED] = {"crit_unsupported", "token requires an unsupported extension"},
    [AL_TOK_UNKNOWN_AGENT] = {"unknown_agent", "token subject is not a known agent"},
    [AL_TOK_TENANT_MISMATCH] = {"tenant_mismatch", "token tenant is not accepted"},
    [AL_TOK_JWKS_UNAVAILABLE] = {"jwks_unavailable", "issuer signing keys are unavailable"},
    [AL_TOK_TYP_MISMATCH] = {"typ_mismatch", "token type is not accepted"},
    [AL_TOK_REVOKED] = {"revoked", "agent access is revoked"},
    [AL_TOK_MISSING_TOKEN] = {"missing_token", "no token was presented"},
    [AL_TOK_INTERNAL] = {"internal_error", "token could not be checked"},
};

const char *al_tok_reason(al_tok_status_t s)
{
    return (unsigned)s < AL_TOK__COUNT ? reasons[s].code : "internal_error";
}

const char *al_tok_reason_text(al_tok_status_t s)
{
    return (unsigned)s < AL_TOK__COUNT ? reasons[s].text : "token could not be checked";
}
