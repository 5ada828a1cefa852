/* common.c - helpers shared by subcommands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"
#include "identity/jws.h"
#include "policy/masking.h"
#include "policy/policy.h"
#include "runtime/revoked.h"

al_config_t *al_cli_load_config(const char *cfg_path)
{
    al_config_errors_t errs;
    al_config_t *cfg = al_config_load(cfg_path, &errs);
    if (cfg) {
        al_policy_t *pol = al_policy_compile(cfg, &errs);
        al_mask_set_t *ms = pol ? al_mask_set_build(cfg, &errs) : NULL;
        al_policy_free(&pol);
        if (ms) {
            al_mask_set_free(&ms);
            return cfg;
        }
        al_config_free(cfg);
    }
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "%s\n", errs.msgs[i]);
    if (!errs.read_errno)
        fprintf(stderr, "%s: %zu error(s); run 'airlock check -c %s'\n", cfg_path, errs.n, cfg_path);
    al_config_errors_free(&errs);
    return NULL;
}

/* The token's "iss" if its payload decodes, for fetching just that issuer's
 * keys; NULL otherwise (the verifier then reports why). */
static char *peek_iss(const char *tok, size_t len)
{
    al_jws_t jws;
    if (al_jws_parse(tok, len, SIZE_MAX, &jws, NULL) != AL_TOK_OK)
        return NULL;
    const char *iss = json_string_value(json_object_get(jws.payload, "iss"));
    char *r = iss ? al_xstrdup(iss) : NULL;
    al_jws_free(&jws);
    return r;
}

al_tok_status_t al_cli_verify_token(const al_config_t *cfg, const char *tok, size_t len,
                                    const char *only_issuer, al_principal_t **out,
                                    al_verify_info_t *info)
{
    memset(info, 0, sizeof *info);
    *out = NULL;
    al_tok_status_t st = AL_TOK_INTERNAL;
    al_jwks_mgr_t *mgr = al_jwks_mgr_new(true);
    if (al_jwks_mgr_sync(mgr, cfg) != AL_OK)
        goto out;
    char *iss = peek_iss(tok, len);
    if (iss) {
        /* Fetch keys only for the issuers this token could match. */
        for (size_t i = 0; i < cfg->n_issuers; i++) {
            const al_issuer_conf_t *ic = &cfg->issuers[i];
            if (strcmp(ic->issuer, iss) || (only_issuer && strcmp(only_issuer, ic->name)))
                continue;
            al_jwks_entry_t *e = al_jwks_mgr_entry(mgr, ic->name);
            if (e)
                al_jwks_fetch_now(mgr, e);
        }
        if (cfg->dev_issuer && !strcmp(iss, AL_DEV_ISS) &&
            (!only_issuer || !strcmp(only_issuer, AL_DEV_ISS))) {
            al_jwks_entry_t *e = al_jwks_mgr_entry(mgr, AL_DEV_ISS);
            if (e)
                al_jwks_fetch_now(mgr, e);
        }
        free(iss);
    }
    al_verifier_t *v = al_verifier_new(cfg, mgr, 1);
    if (v) {
        st = al_verify(v, NULL, tok, len, only_issuer, al_now(), out, info);
        al_verifier_free(&v);
    }
    if (st == AL_TOK_OK) {
        /* The kill switch, as the gateway applies it (runtime/revoked.h);
         * a revocation file that cannot be read fails closed there too. */
        al_revset_t *rs = NULL;
        char rerr[512];
        if (al_revset_load(cfg->server.data_dir, &rs, rerr, sizeof rerr) != AL_OK) {
            al_principal_unref(out);
            info->detail = "server.data_dir/revoked.json cannot be read";
            st = AL_TOK_INTERNAL;
        } else if (al_revset_check(rs, *out) != AL_TOK_OK) {
            al_principal_unref(out);
            info->detail = "this agent is disabled (airlock agents enable NAME restores it)";
            st = AL_TOK_REVOKED;
        }
        al_revset_unref(&rs);
    }
out:
    al_jwks_mgr_free(&mgr);
    return st;
}
