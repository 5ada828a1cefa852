/*
 * verify.c - token verification: issuer, key, signature, claims, inventory.
 *
 * Order matters (RFC 8725 §3.1, §3.8, §3.9): the unverified "iss" only
 * selects which keys to try; no other claim is trusted before the
 * signature verifies. Refusals are decided before any allocation that a
 * hostile token could inflate.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "identity/identity.h"
#include "identity/jws.h"

#define MAX_GROUPS 256
#define MAX_SCOPES 64
#define MAX_CANDIDATE_KEYS 8

typedef struct issuer_rt {
    const al_issuer_conf_t *conf;
    al_jwks_entry_t *jwks;
} issuer_rt_t;

struct al_verifier {
    const al_config_t *cfg;
    uint64_t gen;
    issuer_rt_t *issuers;
    size_t n_issuers;
    al_issuer_conf_t dev;   /* synthesized when cfg->dev_issuer */
    char *dev_aud[1];
    size_t max_len;
};

static _Atomic uint64_t g_counts[AL_TOK__COUNT][2];

uint64_t al_verify_count(al_tok_status_t reason, bool cache_hit)
{
    if ((unsigned)reason >= AL_TOK__COUNT)
        return 0;
    return atomic_load_explicit(&g_counts[reason][cache_hit ? 1 : 0], memory_order_relaxed);
}

static al_tok_status_t count(al_tok_status_t s, al_verify_info_t *info)
{
    atomic_fetch_add_explicit(&g_counts[s][info->cache_hit ? 1 : 0], 1, memory_order_relaxed);
    return s;
}

al_verifier_t *al_verifier_new(const al_config_t *cfg, al_jwks_mgr_t *m, uint64_t generation)
{
    al_verifier_t *v = al_xcalloc(1, sizeof *v);
    v->cfg = cfg;
    v->gen = generation;
    v->max_len = AL_JWS_DEFAULT_MAX_LEN;
    v->issuers = al_xcalloc(cfg->n_issuers + 1, sizeof *v->issuers);
    for (size_t i = 0; i < cfg->n_issuers; i++) {
        v->issuers[v->n_issuers].conf = &cfg->issuers[i];
        v->issuers[v->n_issuers].jwks = al_jwks_mgr_entry(m, cfg->issuers[i].name);
        v->n_issuers++;
    }
    if (cfg->dev_issuer) {
        al_issuer_conf_t *d = &v->dev;
        d->name = AL_DEV_ISSUER_NAME;
        d->issuer = AL_DEV_ISS;
        v->dev_aud[0] = AL_DEV_AUDIENCE;
        d->audiences = v->dev_aud;
        d->n_audiences = 1;
        d->algorithms = AL_ALG_ES256;
        d->clock_skew = 60;
        d->max_token_lifetime = cfg->dev_token_max_ttl;
        d->jwks_max_staleness = 1e9;
        d->agent_claim = "azp";
        d->groups_claim = "groups";
        v->issuers[v->n_issuers].conf = d;
        v->issuers[v->n_issuers].jwks = al_jwks_mgr_entry(m, AL_DEV_ISSUER_NAME);
        v->n_issuers++;
    }
    return v;
}

void al_verifier_free(al_verifier_t **pv)
{
    al_verifier_t *v = *pv;
    if (!v)
        return;
    al_free(&v->issuers);
    al_free(pv);
}

/* ---- claim helpers ----------------------------------------------------- */

/* RFC 7519 §2 NumericDate: a JSON number, possibly fractional. */
static int numeric_date(const json_t *payload, const char *name, double *out, bool *present)
{
    json_t *j = json_object_get(payload, name);
    *present = j != NULL;
    if (!j)
        return AL_OK;
    if (!json_is_number(j))
        return AL_ERR;
    double d = json_number_value(j);
    if (!isfinite(d) || d < 0 || d > 1e11)
        return AL_ERR;
    *out = d;
    return AL_OK;
}

/* RFC 7519 §4.1.3: aud is a string or an array of strings. */
static al_tok_status_t check_audience(const json_t *payload, const al_issuer_conf_t *ic,
                                      const char **detail)
{
    json_t *aud = json_object_get(payload, "aud");
    if (!aud) {
        *detail = "aud claim is required";
        return AL_TOK_MISSING_CLAIM;
    }
    if (json_is_string(aud)) {
        for (size_t i = 0; i < ic->n_audiences; i++)
            if (!strcmp(json_string_value(aud), ic->audiences[i]))
                return AL_TOK_OK;
    } else if (json_is_array(aud)) {
        size_t k;
        json_t *a;
        json_array_foreach(aud, k, a) {
            if (!json_is_string(a)) {
                *detail = "aud array holds a non-string";
                return AL_TOK_MALFORMED;
            }
            for (size_t i = 0; i < ic->n_audiences; i++)
                if (!strcmp(json_string_value(a), ic->audiences[i]))
                    return AL_TOK_OK;
        }
    } else {
        *detail = "aud must be a string or an array of strings";
        return AL_TOK_MALFORMED;
    }
    *detail = "no configured audience in aud";
    return AL_TOK_AUDIENCE_MISMATCH;
}

/* RFC 7515 §4.1.9 / RFC 9068 §2.1: typ compares case-insensitively and the
 * "application/" prefix may be omitted. */
static bool typ_matches(const char *have, const char *want)
{
    if (!have)
        return false;
    if (!strncasecmp(have, "application/", 12))
        have += 12;
    if (!strncasecmp(want, "application/", 12))
        want += 12;
    return strcasecmp(have, want) == 0;
}

static const al_agent_conf_t *find_agent(const al_config_t *cfg, const char *issuer_name,
                                         const char *sub)
{
    for (size_t i = 0; i < cfg->n_agents; i++) {
        const al_agent_conf_t *a = &cfg->agents[i];
        if (!strcmp(a->issuer, issuer_name) && !strcmp(a->subject, sub))
            return a;
    }
    return NULL;
}

/* ---- principal construction ---------------------------------------------- */

typedef struct strlist {
    const char *v[MAX_GROUPS];
    size_t n;
} strlist_t;

static void strlist_add(strlist_t *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i], s))
            return;
    if (l->n < MAX_GROUPS)
        l->v[l->n++] = s;
}

/* Bump allocation inside one block sized in a first pass. */
typedef struct bump {
    char *p;
    size_t used, cap;
} bump_t;

static const char *bump_str(bump_t *b, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    if (b->p == NULL) { /* sizing pass */
        b->used += n;
        return NULL;
    }
    char *d = b->p + b->used;
    memcpy(d, s, n);
    b->used += n;
    return d;
}

typedef struct pfields {
    const char *issuer_name, *iss, *sub, *agent, *owner, *system, *client_id, *tenant;
    strlist_t *groups;
    const char **scopes;
    size_t n_scopes;
    double exp, iat;
    const uint8_t *hash;
} pfields_t;

static void fill(al_principal_t *p, bump_t *b, const pfields_t *f)
{
    p->issuer_name = bump_str(b, f->issuer_name);
    p->iss = bump_str(b, f->iss);
    p->sub = bump_str(b, f->sub);
    p->agent = bump_str(b, f->agent);
    p->owner = bump_str(b, f->owner);
    p->system = bump_str(b, f->system);
    p->client_id = bump_str(b, f->client_id);
    p->tenant = bump_str(b, f->tenant);
    for (size_t i = 0; i < f->groups->n; i++) {
        const char *s = bump_str(b, f->groups->v[i]);
        if (b->p)
            p->groups[i] = s;
    }
    for (size_t i = 0; i < f->n_scopes; i++) {
        const char *s = bump_str(b, f->scopes[i]);
        if (b->p)
            p->scopes[i] = s;
    }
}

static al_principal_t *principal_build(const pfields_t *f)
{
    size_t ng = f->groups->n, ns = f->n_scopes;
    bump_t sizing = {0};
    al_principal_t dummy = {0};
    fill(&dummy, &sizing, f);
    size_t head = sizeof(al_principal_t) + (ng + ns) * sizeof(char *);
    al_principal_t *p = al_calloc(1, head + sizing.used);
    if (!p)
        return NULL;
    p->groups = (const char **)(p + 1);
    p->scopes = p->groups + ng;
    p->n_groups = ng;
    p->n_scopes = ns;
    bump_t b = {(char *)p + head, 0, sizing.used};
    fill(p, &b, f);
    p->exp = f->exp;
    p->iat = f->iat;
    al_hex(f->hash, 32, p->token_hash);
    atomic_store((_Atomic int *)&p->refs, 1);
    return p;
}

al_principal_t *al_principal_ref(al_principal_t *p)
{
    if (p)
        atomic_fetch_add_explicit((_Atomic int *)&p->refs, 1, memory_order_relaxed);
    return p;
}

void al_principal_unref(al_principal_t **pp)
{
    al_principal_t *p = *pp;
    *pp = NULL;
    if (p && atomic_fetch_sub_explicit((_Atomic int *)&p->refs, 1, memory_order_acq_rel) == 1)
        free(p);
}

bool al_principal_in_group(const al_principal_t *p, const char *g)
{
    for (size_t i = 0; i < p->n_groups; i++)
        if (!strcmp(p->groups[i], g))
            return true;
    return false;
}

static void json_kv(al_buf_t *b, const char *k, const char *v, bool *first)
{
    if (!*first)
        al_buf_append(b, ",", 1);
    *first = false;
    al_buf_json_str(b, k, strlen(k));
    al_buf_append(b, ":", 1);
    if (v)
        al_buf_json_str(b, v, strlen(v));
    else
        al_buf_puts(b, "null");
}

static void json_list(al_buf_t *b, const char *k, const char **v, size_t n)
{
    al_buf_printf(b, ",\"%s\":[", k);
    for (size_t i = 0; i < n; i++) {
        if (i)
            al_buf_append(b, ",", 1);
        al_buf_json_str(b, v[i], strlen(v[i]));
    }
    al_buf_append(b, "]", 1);
}

int al_principal_json(const al_principal_t *p, al_buf_t *b)
{
    bool first = true;
    char t[40];
    al_buf_append(b, "{", 1);
    json_kv(b, "issuer", p->issuer_name, &first);
    json_kv(b, "iss", p->iss, &first);
    json_kv(b, "sub", p->sub, &first);
    json_kv(b, "agent", p->agent, &first);
    json_kv(b, "owner", p->owner, &first);
    json_kv(b, "system", p->system, &first);
    json_kv(b, "client_id", p->client_id, &first);
    json_kv(b, "tenant", p->tenant, &first);
    json_list(b, "groups", p->groups, p->n_groups);
    json_list(b, "scopes", p->scopes, p->n_scopes);
    json_kv(b, "expires_at", al_time_rfc3339(p->exp, t, sizeof t), &first);
    al_buf_printf(b, ",\"exp\":%.0f", floor(p->exp));
    json_kv(b, "token_sha256", p->token_hash, &first);
    al_buf_append(b, "}", 1);
    return b->oom ? AL_ERR : AL_OK;
}

/* ---- the verification ------------------------------------------------------ */

static const issuer_rt_t *find_issuer(const al_verifier_t *v, const char *iss, const char *only)
{
    for (size_t i = 0; i < v->n_issuers; i++) {
        const al_issuer_conf_t *c = v->issuers[i].conf;
        if (only && strcmp(c->name, only))
            continue;
        if (!strcmp(c->issuer, iss))
            return &v->issuers[i];
    }
    return NULL;
}

static al_tok_status_t check_signature(const issuer_rt_t *ir, const al_jws_t *jws, double now,
                                       al_verify_info_t *info)
{
    if (!ir->jwks) {
        info->detail = "issuer has no key source";
        return AL_TOK_JWKS_UNAVAILABLE;
    }
    al_tok_status_t why = AL_TOK_JWKS_UNAVAILABLE;
    al_keyset_t *ks = al_jwks_entry_keys(ir->jwks, now, &why);
    if (!ks) {
        info->detail = "issuer keys never fetched or stale past jwks_max_staleness";
        return why;
    }
    const al_jwk_t *cand[MAX_CANDIDATE_KEYS];
    size_t n = al_keyset_find(ks, jws->kid, jws->alg, cand, MAX_CANDIDATE_KEYS);
    al_tok_status_t st = AL_TOK_UNKNOWN_KID;
    if (n == 0) {
        info->detail = jws->kid ? "no key with this kid fits the token's alg"
                                : "no key fits the token's alg";
        if (al_jwks_entry_request_refetch(ir->jwks, now, &info->refetch_ticket))
            info->refetch = ir->jwks;
    } else {
        st = AL_TOK_BAD_SIGNATURE;
        for (size_t i = 0; i < n && st != AL_TOK_OK; i++)
            st = al_jws_verify_sig(jws->alg, cand[i]->pkey, (const uint8_t *)jws->signing_input,
                                   jws->signing_input_len, jws->sig, jws->sig_len);
        if (st != AL_TOK_OK)
            info->detail = "signature does not verify with the issuer's key";
    }
    al_keyset_unref(&ks);
    return st;
}

/* RFC 7519 §4.1.4, §4.1.5, §4.1.6 with clock skew; RFC 8725 §3.10. */
static al_tok_status_t check_times(const json_t *pl, const al_issuer_conf_t *ic, double now,
                                   double *exp, double *iat, const char **detail)
{
    bool has_exp, has_nbf, has_iat;
    double nbf = 0;
    *iat = 0;
    if (numeric_date(pl, "exp", exp, &has_exp) || numeric_date(pl, "nbf", &nbf, &has_nbf) ||
        numeric_date(pl, "iat", iat, &has_iat)) {
        *detail = "exp, nbf and iat must be NumericDate numbers";
        return AL_TOK_MALFORMED;
    }
    if (!has_exp) {
        *detail = "exp claim is required";
        return AL_TOK_MISSING_CLAIM;
    }
    double skew = ic->clock_skew;
    if (now >= *exp + skew) {
        *detail = "exp is in the past";
        return AL_TOK_EXPIRED;
    }
    if (has_nbf && nbf > now + skew) {
        *detail = "nbf is in the future";
        return AL_TOK_NOT_YET_VALID;
    }
    if (has_iat && *iat > now + skew) {
        *detail = "iat is in the future";
        return AL_TOK_ISSUED_IN_FUTURE;
    }
    if (ic->max_token_lifetime > 0) {
        double life = has_iat ? *exp - *iat : *exp - now;
        if (life > ic->max_token_lifetime) {
            *detail = "token lifetime exceeds max_token_lifetime";
            return AL_TOK_LIFETIME_TOO_LONG;
        }
    }
    return AL_TOK_OK;
}

static const char *claim_str(const json_t *pl, const char *name)
{
    const json_t *j = json_object_get(pl, name);
    return json_is_string(j) ? json_string_value(j) : NULL;
}

/* Groups from the configured claim: an array of strings (or one string).
 * Entra group overage (the claim replaced by _claim_names/_claim_sources)
 * is refused unless configured to be ignored. */
static al_tok_status_t collect_groups(const json_t *pl, const al_issuer_conf_t *ic,
                                      strlist_t *groups, const char **detail)
{
    const json_t *g = json_object_get(pl, ic->groups_claim);
    const json_t *names = json_object_get(pl, "_claim_names");
    if (!g && json_is_object(names) && json_object_get(names, ic->groups_claim)) {
        if (ic->group_overage == AL_OVERAGE_DENY) {
            *detail = "group overage: the groups claim was replaced by _claim_names";
            return AL_TOK_MISSING_CLAIM;
        }
        return AL_TOK_OK;
    }
    if (!g)
        return AL_TOK_OK;
    if (json_is_string(g)) {
        strlist_add(groups, json_string_value(g));
        return AL_TOK_OK;
    }
    if (!json_is_array(g) || json_array_size(g) > MAX_GROUPS) {
        *detail = "groups claim must be an array of at most 256 strings";
        return AL_TOK_MALFORMED;
    }
    size_t i;
    json_t *e;
    json_array_foreach(g, i, e) {
        if (!json_is_string(e)) {
            *detail = "groups claim holds a non-string";
            return AL_TOK_MALFORMED;
        }
        strlist_add(groups, json_string_value(e));
    }
    return AL_TOK_OK;
}

/* RFC 8693 §4.2 "scope" / Entra "scp": space-separated. Splits into buf. */
static size_t split_scopes(const char *s, char *buf, size_t cap, const char **out)
{
    size_t n = 0;
    if (!s)
        return 0;
    size_t len = strlen(s);
    if (len >= cap)
        len = cap - 1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *save = NULL;
    for (char *t = strtok_r(buf, " ", &save); t && n < MAX_SCOPES; t = strtok_r(NULL, " ", &save))
        out[n++] = t;
    return n;
}

static al_tok_status_t verify_parsed(const al_verifier_t *v, const al_jws_t *jws,
                                     const char *only_issuer, double now, const uint8_t hash[32],
                                     al_principal_t **out, double *until, al_verify_info_t *info)
{
    const json_t *pl = jws->payload;
    const char *iss = claim_str(pl, "iss");
    if (!iss) {
        info->detail = "iss claim is required";
        return AL_TOK_MISSING_CLAIM;
    }
    const issuer_rt_t *ir = find_issuer(v, iss, only_issuer);
    if (!ir) {
        info->detail = "iss matches no configured issuer";
        return AL_TOK_ISSUER_MISMATCH;
    }
    const al_issuer_conf_t *ic = ir->conf;
    info->issuer_name = ic->name;
    if (!(ic->algorithms & jws->alg)) {
        info->detail = "alg is not in the issuer's algorithms";
        return AL_TOK_ALG_NOT_ALLOWED;
    }
    if (ic->typ && !typ_matches(jws->typ, ic->typ)) {
        info->detail = "typ header differs from the issuer's required typ";
        return AL_TOK_TYP_MISMATCH;
    }
    al_tok_status_t st = check_signature(ir, jws, now, info);
    if (st != AL_TOK_OK)
        return st;

    double exp, iat;
    if ((st = check_times(pl, ic, now, &exp, &iat, &info->detail)) != AL_TOK_OK)
        return st;
    if ((st = check_audience(pl, ic, &info->detail)) != AL_TOK_OK)
        return st;
    const char *sub = claim_str(pl, "sub");
    if (!sub || !*sub) {
        info->detail = "sub claim is required";
        return AL_TOK_MISSING_CLAIM;
    }
    const char *tid = claim_str(pl, "tid");
    if (ic->tenant) {
        if (!tid) {
            info->detail = "tid claim is required when a tenant is configured";
            return AL_TOK_MISSING_CLAIM;
        }
        if (strcmp(tid, ic->tenant)) {
            info->detail = "tid differs from the configured tenant";
            return AL_TOK_TENANT_MISMATCH;
        }
    }
    strlist_t groups;
    groups.n = 0;
    if ((st = collect_groups(pl, ic, &groups, &info->detail)) != AL_TOK_OK)
        return st;
    const al_agent_conf_t *agent = find_agent(v->cfg, ic->name, sub);
    if (!agent && !ic->allow_unknown_agents) {
        info->detail = "sub is not in the agents inventory for this issuer";
        return AL_TOK_UNKNOWN_AGENT;
    }
    if (agent)
        for (size_t i = 0; i < agent->n_groups; i++)
            strlist_add(&groups, agent->groups[i]);

    const char *client = claim_str(pl, ic->agent_claim);
    if (!client && !strcmp(ic->agent_claim, "azp"))
        client = claim_str(pl, "appid"); /* Entra v1 tokens */
    char scope_buf[2048];
    const char *scopes[MAX_SCOPES];
    const char *scp = claim_str(pl, "scp");
    size_t ns = split_scopes(scp ? scp : claim_str(pl, "scope"), scope_buf, sizeof scope_buf, scopes);

    pfields_t f = {
        .issuer_name = ic->name, .iss = iss, .sub = sub,
        .agent = agent ? agent->name : NULL, .owner = agent ? agent->owner : NULL,
        .system = agent ? agent->system : NULL, .client_id = client, .tenant = tid,
        .groups = &groups, .scopes = scopes, .n_scopes = ns, .exp = exp, .iat = iat, .hash = hash,
    };
    *until = exp + ic->clock_skew;
    *out = principal_build(&f);
    if (!*out) {
        info->detail = "out of memory";
        return AL_TOK_INTERNAL;
    }
    return AL_TOK_OK;
}

al_tok_status_t al_verify(const al_verifier_t *v, void *cache, const char *token, size_t len,
                          const char *only_issuer, double now, al_principal_t **out,
                          al_verify_info_t *info)
{
    al_verify_info_t dummy;
    if (!info)
        info = &dummy;
    memset(info, 0, sizeof *info);
    *out = NULL;
    if (len == 0) {
        info->detail = "no token";
        return count(AL_TOK_MISSING_TOKEN, info);
    }
    if (len > v->max_len) {
        info->detail = "token is over the 16 KiB cap";
        return count(AL_TOK_TOO_LARGE, info);
    }
    uint8_t hash[32];
    al_sha256(token, len, hash);
    if (cache && !only_issuer) {
        al_principal_t *p = al_token_cache_get(cache, hash, v->gen, now);
        if (p) { /* the entry expires at exp + clock_skew, as the cold path does */
            info->cache_hit = true;
            info->issuer_name = p->issuer_name;
            *out = p;
            return count(AL_TOK_OK, info);
        }
    }
    al_jws_t jws;
    al_tok_status_t st = al_jws_parse(token, len, v->max_len, &jws, &info->detail);
    if (st == AL_TOK_OK) {
        double until = 0;
        st = verify_parsed(v, &jws, only_issuer, now, hash, out, &until, info);
        if (st == AL_TOK_OK && cache && !only_issuer)
            al_token_cache_put(cache, hash, v->gen, until, *out);
    }
    al_jws_free(&jws);
    return count(st, info);
}
