/* engine.c - building an engine from a config snapshot: rule checks, the
 * Hyperscan databases and prefilter shapes of the enabled detectors, the
 * keyed HMAC context; reference counting; per-thread scratch. */
#include <limits.h>
#include <openssl/core_names.h>
#include <stdio.h>
#include <stdlib.h>

#include "mask/mask_int.h"

/* ---- names ------------------------------------------------------------------------ */

static const char *const det_names[AL_MASK_DET__COUNT] = {
    [AL_MASK_DET_NONE] = "none",
    [AL_MASK_DET_CREDIT_CARD] = "credit_card",
    [AL_MASK_DET_US_SSN] = "us_ssn",
    [AL_MASK_DET_EMAIL] = "email",
    [AL_MASK_DET_PHONE] = "phone",
    [AL_MASK_DET_IBAN] = "iban",
    [AL_MASK_DET_IP_ADDRESS] = "ip_address",
    [AL_MASK_DET_JWT] = "jwt",
    [AL_MASK_DET_AWS_KEY] = "aws_key",
    [AL_MASK_DET_PRIVATE_KEY] = "private_key",
    [AL_MASK_DET_API_KEY] = "api_key",
    [AL_MASK_DET_CUSTOM] = "custom",
};

static const char *const style_names[AL_MASK_STYLE__COUNT] = {
    [AL_MASK_STYLE_FULL] = "full",
    [AL_MASK_STYLE_LAST4] = "last4",
    [AL_MASK_STYLE_HASH] = "hash",
    [AL_MASK_STYLE_DROP] = "drop",
};

const char *al_mask_det_name(al_mask_det_t det)
{
    return (unsigned)det < AL_MASK_DET__COUNT ? det_names[det] : "none";
}

al_mask_det_t al_mask_det_from_name(const char *name)
{
    if (!name)
        return AL_MASK_DET_NONE;
    for (int d = AL_MASK_DET_CREDIT_CARD; d < AL_MASK_DET_CUSTOM; d++)
        if (strcmp(name, det_names[d]) == 0)
            return (al_mask_det_t)d;
    return AL_MASK_DET_NONE;
}

const char *al_mask_style_name(al_mask_style_t style)
{
    return (unsigned)style < AL_MASK_STYLE__COUNT ? style_names[style] : "?";
}

int al_mask_style_from_name(const char *name, al_mask_style_t *out)
{
    if (!name || !out)
        return AL_ERR;
    for (int s = 0; s < AL_MASK_STYLE__COUNT; s++) {
        if (strcmp(name, style_names[s]) == 0) {
            *out = (al_mask_style_t)s;
            return AL_OK;
        }
    }
    return AL_ERR;
}

const char *al_mask_strerror(al_mask_rc_t rc)
{
    switch (rc) {
    case AL_MASK_OK: return "nothing to mask";
    case AL_MASK_MASKED: return "masked";
    case AL_MASK_DROPPED: return "value dropped";
    case AL_MASK_E_NOMEM: return "out of memory";
    case AL_MASK_E_INVALID: return "invalid argument or option";
    case AL_MASK_E_UNKNOWN_DETECTOR: return "unknown detector";
    case AL_MASK_E_DUPLICATE: return "duplicate rule or column";
    case AL_MASK_E_BAD_NAME: return "bad custom detector name";
    case AL_MASK_E_BAD_PATTERN: return "bad custom pattern";
    case AL_MASK_E_UNBOUNDED: return "custom pattern longer than the value cap";
    case AL_MASK_E_BAD_STYLE: return "unknown masking style";
    case AL_MASK_E_HASH_KEY: return "hash style needs a key of at least 16 bytes";
    case AL_MASK_E_TOO_MANY: return "too many custom detectors";
    case AL_MASK_E_SCAN: return "scan failed";
    case AL_MASK_E_SCRATCH: return "scratch not allocated for this engine, or in use";
    case AL_MASK_E_TOO_LARGE: return "input too large to scan";
    }
    return "unknown error";
}

/* ---- compile ---------------------------------------------------------------------- */

static void engine_free(al_mask_engine_t *e)
{
    if (!e)
        return;
    for (size_t g = 0; g < AL__MASK_DB__COUNT; g++)
        hs_free_database(e->dbs[g]);
    for (size_t i = 0; i < e->n_rules; i++) {
        al_free(&e->rules[i].name);
        al_free(&e->rules[i].pattern);
    }
    for (size_t i = 0; i < e->n_cols; i++)
        al_free(&e->cols[i].glob);
    al_free(&e->rules);
    al_free(&e->cols);
    al_free(&e->pats);
    EVP_MAC_CTX_free(e->mac); /* clears the keyed state */
    al_wipe(e, sizeof *e);
    free(e);
}

static al_mask_rc_t fail(al_buf_t *detail, al_mask_rc_t rc, const char *fmt, ...) AL_PRINTF(3, 4);
static al_mask_rc_t fail(al_buf_t *detail, al_mask_rc_t rc, const char *fmt, ...)
{
    if (detail) {
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        al_buf_puts(detail, msg);
    }
    return rc;
}

static bool custom_name_ok(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = n[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

static bool prefix_ok(const char *p)
{
    size_t n = strlen(p);
    if (n > AL_MASK_HASH_PREFIX_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x20 || p[i] > 0x7e || p[i] == '"' || p[i] == '\\')
            return false;
    return true;
}

static bool ci_eq(const char *a, const char *b)
{
    for (;; a++, b++) {
        int x = (unsigned char)*a, y = (unsigned char)*b;
        if (x >= 'A' && x <= 'Z')
            x += 32;
        if (y >= 'A' && y <= 'Z')
            y += 32;
        if (x != y)
            return false;
        if (!x)
            return true;
    }
}

static al_mask_rc_t check_rules(const al_mask_config_t *cfg, size_t vmax, al_buf_t *detail)
{
    size_t customs = 0;
    for (size_t i = 0; i < cfg->n_rules; i++) {
        const al_mask_rule_t *r = &cfg->rules[i];
        if (!r->name || !*r->name)
            return fail(detail, AL_MASK_E_INVALID, "masking rule %zu: missing detector name", i + 1);
        if ((unsigned)r->style >= AL_MASK_STYLE__COUNT)
            return fail(detail, AL_MASK_E_BAD_STYLE,
                        "detector \"%s\": unknown style; use full, last4, hash or drop", r->name);
        for (size_t j = 0; j < i; j++)
            if (cfg->rules[j].name && strcmp(cfg->rules[j].name, r->name) == 0)
                return fail(detail, AL_MASK_E_DUPLICATE,
                            "detector \"%s\" is listed twice; keep one entry", r->name);
        if (!r->pattern) {
            if (al_mask_det_from_name(r->name) == AL_MASK_DET_NONE)
                return fail(detail, AL_MASK_E_UNKNOWN_DETECTOR,
                            "detector \"%s\": not a built-in (credit_card, us_ssn, email, phone, "
                            "iban, ip_address, jwt, aws_key, private_key, api_key); give a "
                            "pattern to define a custom one",
                            r->name);
            continue;
        }
        if (++customs > AL_MASK_MAX_CUSTOM)
            return fail(detail, AL_MASK_E_TOO_MANY, "more than %d custom detectors",
                        AL_MASK_MAX_CUSTOM);
        if (!custom_name_ok(r->name) || al_mask_det_from_name(r->name) != AL_MASK_DET_NONE ||
            strcmp(r->name, "custom") == 0 || strcmp(r->name, "none") == 0)
            return fail(detail, AL_MASK_E_BAD_NAME,
                        "custom detector \"%s\": name must be 1-64 of [a-z0-9_] and not a "
                        "built-in detector name",
                        r->name);
        hs_expr_info_t *info = NULL;
        hs_compile_error_t *ce = NULL;
        if (hs_expression_info(r->pattern, HS_FLAG_SOM_LEFTMOST, &info, &ce) != HS_SUCCESS) {
            al_mask_rc_t rc = fail(detail, AL_MASK_E_BAD_PATTERN,
                                   "custom detector \"%s\": Hyperscan: %s", r->name,
                                   ce && ce->message ? ce->message : "invalid pattern");
            hs_free_compile_error(ce);
            return rc;
        }
        unsigned minw = info->min_width, maxw = info->max_width;
        free(info);
        if (minw == 0)
            return fail(detail, AL_MASK_E_BAD_PATTERN,
                        "custom detector \"%s\": pattern matches the empty string", r->name);
        if (maxw == UINT_MAX || maxw > vmax)
            return fail(detail, AL_MASK_E_UNBOUNDED,
                        "custom detector \"%s\": pattern can match more than %zu bytes; bound "
                        "every repeat ({m,n} instead of + or *) or raise max_value_len",
                        r->name, vmax);
    }
    return AL_MASK_OK;
}

static al_mask_rc_t check_columns(const al_mask_config_t *cfg, al_buf_t *detail)
{
    if (cfg->n_columns > AL_MASK_MAX_COLUMNS)
        return fail(detail, AL_MASK_E_TOO_MANY, "more than %d column rules", AL_MASK_MAX_COLUMNS);
    for (size_t i = 0; i < cfg->n_columns; i++) {
        const al_mask_column_t *c = &cfg->columns[i];
        if (!c->name || !*c->name || strlen(c->name) > 256)
            return fail(detail, AL_MASK_E_INVALID,
                        "column rule %zu: the column name glob must be 1-256 bytes", i + 1);
        if ((unsigned)c->style >= AL_MASK_STYLE__COUNT)
            return fail(detail, AL_MASK_E_BAD_STYLE,
                        "column \"%s\": unknown style; use full, last4, hash or drop", c->name);
        for (size_t j = 0; j < i; j++)
            if (ci_eq(cfg->columns[j].name, c->name))
                return fail(detail, AL_MASK_E_DUPLICATE,
                            "column \"%s\" is listed twice; keep one entry", c->name);
    }
    return AL_MASK_OK;
}

static bool uses_hash(const al_mask_config_t *cfg)
{
    for (size_t i = 0; i < cfg->n_rules; i++)
        if (cfg->rules[i].style == AL_MASK_STYLE_HASH)
            return true;
    for (size_t i = 0; i < cfg->n_columns; i++)
        if (cfg->columns[i].style == AL_MASK_STYLE_HASH)
            return true;
    return false;
}

static al_mask_rc_t build_mac(al_mask_engine_t *e, const uint8_t *key, size_t len)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!mac)
        return AL_MASK_E_NOMEM;
    e->mac = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac);
    if (!e->mac)
        return AL_MASK_E_NOMEM;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    if (!EVP_MAC_init(e->mac, key, len, params))
        return AL_MASK_E_NOMEM;
    return AL_MASK_OK;
}

static al_mask_rc_t build_db(al_mask_engine_t *e, al_buf_t *detail)
{
    size_t n = 0;
    for (size_t i = 0; i < e->n_rules; i++) {
        if (e->rules[i].det == AL_MASK_DET_CUSTOM) {
            n++;
            continue;
        }
        for (size_t k = 0; k < al__mask_n_patterns; k++)
            n += al__mask_patterns[k].det == e->rules[i].det;
    }
    if (n == 0)
        return AL_MASK_OK;
    e->pats = al_calloc(n, sizeof *e->pats);
    const char **exprs = al_calloc(n * AL__MASK_DB__COUNT, sizeof *exprs);
    unsigned *flags = al_calloc(n * AL__MASK_DB__COUNT, sizeof *flags);
    unsigned *ids = al_calloc(n * AL__MASK_DB__COUNT, sizeof *ids);
    al_mask_rc_t rc = AL_MASK_OK;
    if (!e->pats || !exprs || !flags || !ids) {
        rc = AL_MASK_E_NOMEM;
        goto out;
    }
    /* Hyperscan expressions by database (shapes go to prefilter.c):
     * exprs/flags/ids hold group g's at [g * n, g * n + n_hs[g]). */
    size_t n_hs[AL__MASK_DB__COUNT] = {0};
    for (size_t i = 0; i < e->n_rules; i++) {
        const al__mask_rule_t *r = &e->rules[i];
        if (r->det == AL_MASK_DET_CUSTOM) {
            size_t j = AL__MASK_DB_CUSTOM * n + n_hs[AL__MASK_DB_CUSTOM]++;
            e->pats[e->n_pats] = (al__mask_pat_t){NULL, (uint32_t)i, r->det};
            exprs[j] = r->pattern;
            flags[j] = HS_FLAG_SOM_LEFTMOST;
            ids[j] = (unsigned)e->n_pats;
            e->n_pats++;
            continue;
        }
        for (size_t k = 0; k < al__mask_n_patterns; k++) {
            const al__mask_pattern_t *bp = &al__mask_patterns[k];
            if (bp->det != r->det)
                continue;
            e->pats[e->n_pats] = (al__mask_pat_t){bp->check, (uint32_t)i, r->det};
            if (bp->shape != AL__MASK_SHAPE_NONE) {
                e->shapes |= 1u << bp->shape;
                e->shape_pat[bp->shape] = (uint32_t)e->n_pats;
            } else {
                size_t j = bp->db * n + n_hs[bp->db]++;
                exprs[j] = bp->re;
                flags[j] = bp->flags;
                ids[j] = (unsigned)e->n_pats;
            }
            e->n_pats++;
        }
    }
    for (size_t g = 0; g < AL__MASK_DB__COUNT && rc == AL_MASK_OK; g++) {
        if (n_hs[g] == 0)
            continue;
        hs_compile_error_t *ce = NULL;
        if (hs_compile_multi(exprs + g * n, flags + g * n, ids + g * n, (unsigned)n_hs[g],
                             HS_MODE_BLOCK, NULL, &e->dbs[g], &ce) != HS_SUCCESS) {
            const char *name = "?";
            if (ce && ce->expression >= 0 && (size_t)ce->expression < n_hs[g])
                name = e->rules[e->pats[ids[g * n + (size_t)ce->expression]].rule].name;
            rc = fail(detail, AL_MASK_E_BAD_PATTERN, "detector \"%s\": Hyperscan: %s", name,
                      ce && ce->message ? ce->message : "compile failed");
            hs_free_compile_error(ce);
            e->dbs[g] = NULL;
        } else {
            e->has_db = true;
        }
    }
out:
    free(exprs);
    free(flags);
    free(ids);
    return rc;
}

al_mask_rc_t al_mask_compile(const al_mask_config_t *cfg, al_mask_engine_t **out,
                             al_buf_t *detail)
{
    if (!out)
        return AL_MASK_E_INVALID;
    *out = NULL;
    if (!cfg || (cfg->n_rules && !cfg->rules) || (cfg->n_columns && !cfg->columns))
        return fail(detail, AL_MASK_E_INVALID, "masking: missing rules or columns");
    size_t maxv = cfg->max_value_len ? cfg->max_value_len : AL_MASK_MAX_VALUE_DEFAULT;
    if (maxv < AL_MASK_MAX_VALUE_MIN || maxv > AL_MASK_MAX_VALUE_MAX)
        return fail(detail, AL_MASK_E_INVALID, "masking: max_value_len must be %u..%u bytes",
                    AL_MASK_MAX_VALUE_MIN, AL_MASK_MAX_VALUE_MAX);
    unsigned hex = cfg->hash_hex_len ? cfg->hash_hex_len : AL_MASK_HASH_HEX_DEFAULT;
    if (hex < AL_MASK_HASH_HEX_MIN || hex > AL_MASK_HASH_HEX_MAX)
        return fail(detail, AL_MASK_E_INVALID, "masking: hash length must be %u..%u hex digits",
                    AL_MASK_HASH_HEX_MIN, AL_MASK_HASH_HEX_MAX);
    const char *prefix = cfg->hash_prefix ? cfg->hash_prefix : AL_MASK_HASH_PREFIX_DEFAULT;
    if (!prefix_ok(prefix))
        return fail(detail, AL_MASK_E_INVALID,
                    "masking: hash prefix must be at most %u printable bytes without '\"' or '\\'",
                    AL_MASK_HASH_PREFIX_MAX);
    bool has_key = cfg->hash_key && cfg->hash_key_len > 0;
    if ((has_key || uses_hash(cfg)) &&
        (!cfg->hash_key || cfg->hash_key_len < AL_MASK_HASH_KEY_MIN))
        return fail(detail, AL_MASK_E_HASH_KEY,
                    "masking: the hash style needs a key of at least %u bytes (set a "
                    "per-deployment secret)",
                    AL_MASK_HASH_KEY_MIN);
    size_t vmax = AL_MASK_VALUE_CAP(maxv);
    al_mask_rc_t rc = check_rules(cfg, vmax, detail);
    if (rc == AL_MASK_OK)
        rc = check_columns(cfg, detail);
    if (rc != AL_MASK_OK)
        return rc;

    al_mask_engine_t *e = al_calloc(1, sizeof *e);
    if (!e)
        return AL_MASK_E_NOMEM;
    atomic_init(&e->refs, 1);
    static atomic_uint_fast64_t serials;
    e->serial = atomic_fetch_add_explicit(&serials, 1, memory_order_relaxed) + 1;
    e->max_value = maxv;
    e->vmax = vmax;
    e->hex_len = hex;
    e->prefix_len = strlen(prefix);
    memcpy(e->prefix, prefix, e->prefix_len + 1);
    for (size_t d = 0; d < AL_MASK_DET__COUNT; d++)
        e->det_rule[d] = -1;
    if (cfg->n_rules && !(e->rules = al_calloc(cfg->n_rules, sizeof *e->rules)))
        goto nomem;
    for (size_t i = 0; i < cfg->n_rules; i++, e->n_rules++) {
        const al_mask_rule_t *r = &cfg->rules[i];
        al__mask_rule_t *d = &e->rules[i];
        d->style = r->style;
        d->det = r->pattern ? AL_MASK_DET_CUSTOM : al_mask_det_from_name(r->name);
        if (!(d->name = al_strndup(r->name, strlen(r->name))))
            goto nomem;
        if (r->pattern && !(d->pattern = al_strndup(r->pattern, strlen(r->pattern))))
            goto nomem;
        if (d->det != AL_MASK_DET_CUSTOM)
            e->det_rule[d->det] = (int)i;
    }
    if (cfg->n_columns && !(e->cols = al_calloc(cfg->n_columns, sizeof *e->cols)))
        goto nomem;
    for (size_t i = 0; i < cfg->n_columns; i++, e->n_cols++) {
        e->cols[i].style = cfg->columns[i].style;
        if (!(e->cols[i].glob = al_strndup(cfg->columns[i].name, strlen(cfg->columns[i].name))))
            goto nomem;
    }
    if (has_key && (rc = build_mac(e, cfg->hash_key, cfg->hash_key_len)) != AL_MASK_OK)
        goto err;
    if ((rc = build_db(e, detail)) != AL_MASK_OK)
        goto err;
    *out = e;
    return AL_MASK_OK;
nomem:
    rc = AL_MASK_E_NOMEM;
err:
    engine_free(e);
    return rc;
}

al_mask_engine_t *al_mask_engine_ref(al_mask_engine_t *e)
{
    if (e)
        atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
    return e;
}

void al_mask_engine_unref(al_mask_engine_t **pe)
{
    if (!pe || !*pe)
        return;
    al_mask_engine_t *e = *pe;
    *pe = NULL;
    if (atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1)
        engine_free(e);
}

size_t al_mask_engine_rules(const al_mask_engine_t *e) { return e ? e->n_rules : 0; }

const char *al_mask_engine_rule_name(const al_mask_engine_t *e, size_t i)
{
    return e && i < e->n_rules ? e->rules[i].name : NULL;
}

size_t al_mask_engine_max_value(const al_mask_engine_t *e) { return e ? e->max_value : 0; }

bool al_mask_column_style(const al_mask_engine_t *e, al_str_t column, al_mask_style_t *style)
{
    if (!e || !column.p || !column.len)
        return false;
    for (size_t i = 0; i < e->n_cols; i++) {
        if (al__mask_glob(e->cols[i].glob, column)) {
            if (style)
                *style = e->cols[i].style;
            return true;
        }
    }
    return false;
}

/* ---- scratch ------------------------------------------------------------------------ */

#define HITS_INITIAL 64

static bool hits_reserve(al__mask_hits_t *h, size_t cap)
{
    if (h->cap >= cap)
        return true;
    al_mask_match_t *v = al_realloc(h->v, cap * sizeof *v);
    if (!v)
        return false;
    h->v = v;
    h->cap = cap;
    return true;
}

al_mask_rc_t al_mask_scratch_alloc(const al_mask_engine_t *e, al_mask_scratch_t **ps)
{
    if (!e || !ps)
        return AL_MASK_E_INVALID;
    al_mask_scratch_t *s = *ps;
    for (size_t i = 0; s && i < AL_ARRAY_LEN(s->fits); i++)
        if (s->fits[i] == e->serial)
            return AL_MASK_OK;
    bool fresh = !s;
    if (fresh && !(s = al_calloc(1, sizeof *s)))
        return AL_MASK_E_NOMEM;
    al_mask_rc_t rc = AL_MASK_OK;
    for (size_t g = 0; g < AL__MASK_DB__COUNT && rc == AL_MASK_OK; g++)
        if (e->dbs[g] && hs_alloc_scratch(e->dbs[g], &s->hs) != HS_SUCCESS)
            rc = AL_MASK_E_NOMEM;
    if (rc == AL_MASK_OK && e->n_pats > s->skip_cap) {
        size_t *k = al_realloc(s->skip, e->n_pats * sizeof *k);
        if (k) {
            s->skip = k;
            s->skip_cap = e->n_pats;
        } else {
            rc = AL_MASK_E_NOMEM;
        }
    }
    if (rc == AL_MASK_OK &&
        (!hits_reserve(&s->hits, HITS_INITIAL) || !hits_reserve(&s->hits2, HITS_INITIAL)))
        rc = AL_MASK_E_NOMEM;
    if (rc != AL_MASK_OK && fresh) {
        al_mask_scratch_free(&s);
        return rc;
    }
    if (rc == AL_MASK_OK) {
        memmove(s->fits + 1, s->fits, sizeof s->fits - sizeof s->fits[0]);
        s->fits[0] = e->serial;
    }
    *ps = s;
    return rc;
}

al_mask_rc_t al_mask_scratch_clone(const al_mask_scratch_t *src, al_mask_scratch_t **out)
{
    if (!src || !out)
        return AL_MASK_E_INVALID;
    *out = NULL;
    al_mask_scratch_t *s = al_calloc(1, sizeof *s);
    if (!s)
        return AL_MASK_E_NOMEM;
    bool ok = !src->hs || hs_clone_scratch(src->hs, &s->hs) == HS_SUCCESS;
    if (ok && src->skip_cap) {
        s->skip = al_calloc(src->skip_cap, sizeof *s->skip);
        ok = s->skip != NULL;
        s->skip_cap = ok ? src->skip_cap : 0;
    }
    ok = ok && hits_reserve(&s->hits, AL_MAX(src->hits.cap, HITS_INITIAL)) &&
         hits_reserve(&s->hits2, AL_MAX(src->hits2.cap, HITS_INITIAL));
    memcpy(s->fits, src->fits, sizeof s->fits);
    if (!ok) {
        al_mask_scratch_free(&s);
        return AL_MASK_E_NOMEM;
    }
    *out = s;
    return AL_MASK_OK;
}

void al_mask_scratch_free(al_mask_scratch_t **ps)
{
    if (!ps || !*ps)
        return;
    al_mask_scratch_t *s = *ps;
    hs_free_scratch(s->hs);
    al_free(&s->skip);
    al_free(&s->hits.v);
    al_free(&s->hits.tmp);
    al_free(&s->hits2.v);
    al_free(&s->hits2.tmp);
    al_buf_free(&s->doc);
    al_buf_free(&s->segs);
    al_buf_free(&s->map);
    al_buf_free(&s->val);
    al_free(ps);
}

al_mask_rc_t al__mask_scratch_enter(const al_mask_engine_t *e, al_mask_scratch_t *s)
{
    if (s->busy || e->n_pats > s->skip_cap || (e->has_db && !s->hs))
        return AL_MASK_E_SCRATCH;
    s->busy = true;
    return AL_MASK_OK;
}

void al__mask_scratch_leave(al_mask_scratch_t *s) { s->busy = false; }
