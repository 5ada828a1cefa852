/* masking.c - config masking entries -> mask engines (see masking.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/masking.h"

typedef struct named {
    const al_masking_conf_t *conf;
    al_mask_engine_t *eng;
} named_t;

struct al_mask_set {
    const al_config_t *cfg;
    al_mask_engine_t **by_target; /* parallel to cfg->targets */
    named_t *named;
    size_t n_named;
};

typedef struct errs {
    const al_config_t *cfg;
    al_buf_t list;
    size_t n;
} errs_t;

static void err(errs_t *e, int line, const char *fmt, ...) AL_PRINTF(3, 4);
static void err(errs_t *e, int line, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    al_buf_printf(&e->list, "%s:%d:3: %s", e->cfg->path, line, msg);
    al_buf_append(&e->list, "", 1);
    e->n++;
}

static bool lists(char **v, size_t n, const char *x)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i], x) || !strcmp(v[i], "*"))
            return true;
    return false;
}

/* The per-deployment HMAC key, from mask_key_env or mask_key_file. */
static int load_key(const al_config_t *cfg, errs_t *e, uint8_t **key, size_t *len)
{
    *key = NULL;
    *len = 0;
    if (cfg->mask_key_env) {
        const char *v = getenv(cfg->mask_key_env);
        if (!v) {
            err(e, 1, "mask_key_env: the environment variable %s is not set",
                cfg->mask_key_env);
            return AL_ERR;
        }
        *key = (uint8_t *)al_xstrdup(v);
        *len = strlen(v);
    } else if (cfg->mask_key_file) {
        char *d = NULL;
        if (al_read_file(cfg->mask_key_file, 4096, &d, len) != AL_OK) {
            err(e, 1, "mask_key_file: cannot read %s", cfg->mask_key_file);
            return AL_ERR;
        }
        while (*len && (d[*len - 1] == '\n' || d[*len - 1] == '\r'))
            (*len)--;
        *key = (uint8_t *)d;
    }
    return AL_OK;
}

/* Appends entry m's detectors and columns to the config under assembly. */
static bool add_entry(errs_t *e, const al_masking_conf_t *m, size_t idx, al_mask_rule_t *rules,
                      size_t *nr, al_mask_column_t *cols, size_t *nc)
{
    al_mask_style_t style;
    if (al_mask_style_from_name(m->style, &style) != AL_OK) {
        err(e, m->line, "masking[%zu].style '%s' must be full, last4, hash or drop", idx,
            m->style);
        return false;
    }
    bool ok = true;
    for (size_t k = 0; k < m->n_detectors; k++) {
        const char *d = m->detectors[k];
        const char *pattern = NULL;
        for (size_t j = 0; j < m->n_custom; j++)
            if (!strcmp(m->custom[j].name, d))
                pattern = m->custom[j].pattern;
        if (!pattern && al_mask_det_from_name(d) == AL_MASK_DET_NONE) {
            err(e, m->line, "masking[%zu].detectors '%s' is not a detector (credit_card, us_ssn, "
                            "email, phone, iban, ip_address, jwt, aws_key, private_key, "
                            "api_key) nor a custom one of this entry", idx, d);
            ok = false;
            continue;
        }
        bool dup = false;
        for (size_t j = 0; j < *nr; j++)
            dup |= !strcmp(rules[j].name, d);
        if (!dup && *nr < AL_MASK_MAX_CUSTOM + AL_MASK_DET__COUNT)
            rules[(*nr)++] = (al_mask_rule_t){d, pattern, style};
    }
    for (size_t j = 0; j < m->n_custom; j++) {
        bool used = false;
        for (size_t k = 0; k < m->n_detectors; k++)
            used |= !strcmp(m->detectors[k], m->custom[j].name);
        if (!used) /* a custom detector is enabled by being defined */
            if (*nr < AL_MASK_MAX_CUSTOM + AL_MASK_DET__COUNT)
                rules[(*nr)++] = (al_mask_rule_t){m->custom[j].name, m->custom[j].pattern, style};
    }
    for (size_t k = 0; k < m->n_columns && *nc < AL_MASK_MAX_COLUMNS; k++)
        cols[(*nc)++] = (al_mask_column_t){m->columns[k], style};
    return ok;
}

static al_mask_engine_t *compile(errs_t *e, int line, const char *what, al_mask_rule_t *rules,
                                 size_t nr, al_mask_column_t *cols, size_t nc,
                                 const uint8_t *key, size_t key_len)
{
    if (!nr && !nc)
        return NULL;
    al_mask_config_t mc = {.rules = rules, .n_rules = nr, .columns = cols, .n_columns = nc,
                           .hash_key = key, .hash_key_len = key_len};
    al_mask_engine_t *eng = NULL;
    al_buf_t detail;
    al_buf_init(&detail);
    al_mask_rc_t rc = al_mask_compile(&mc, &eng, &detail);
    if (rc < 0) {
        if (rc == AL_MASK_E_HASH_KEY)
            err(e, line, "%s: the hash style needs a key of at least %u bytes: set "
                         "mask_key_file (or mask_key_env)", what, AL_MASK_HASH_KEY_MIN);
        else
            err(e, line, "%s: %s%s%s", what, al_mask_strerror(rc), detail.len ? ": " : "",
                detail.len ? detail.p : "");
        eng = NULL;
    }
    al_buf_free(&detail);
    return eng;
}

al_mask_set_t *al_mask_set_build(const al_config_t *cfg, al_config_errors_t *errs)
{
    memset(errs, 0, sizeof *errs);
    errs_t e = {.cfg = cfg};
    al_buf_init(&e.list);
    al_mask_set_t *s = al_xcalloc(1, sizeof *s);
    s->cfg = cfg;
    s->by_target = al_xcalloc(cfg->n_targets ? cfg->n_targets : 1, sizeof *s->by_target);
    s->named = al_xcalloc(cfg->n_masking ? cfg->n_masking : 1, sizeof *s->named);
    uint8_t *key = NULL;
    size_t key_len = 0;
    load_key(cfg, &e, &key, &key_len);
    size_t cap = AL_MASK_MAX_CUSTOM + AL_MASK_DET__COUNT;
    al_mask_rule_t *rules = al_xcalloc(cap, sizeof *rules);
    al_mask_column_t *cols = al_xcalloc(AL_MASK_MAX_COLUMNS, sizeof *cols);
    for (size_t i = 0; i < cfg->n_masking; i++) {
        const al_masking_conf_t *m = &cfg->masking[i];
        for (size_t k = 0; k < m->n_targets; k++)
            if (strcmp(m->targets[k], "*") && !al_config_target(cfg, m->targets[k]))
                err(&e, m->line, "masking[%zu].targets '%s' is not defined in targets", i,
                    m->targets[k]);
        if (!m->n_detectors && !m->n_columns && !m->n_custom)
            err(&e, m->line, "masking[%zu] masks nothing: add detectors, columns or custom", i);
        if (!m->name)
            continue;
        size_t nr = 0, nc = 0;
        char what[96];
        snprintf(what, sizeof what, "masking[%zu] '%s'", i, m->name);
        if (add_entry(&e, m, i, rules, &nr, cols, &nc))
            s->named[s->n_named++] = (named_t){m, compile(&e, m->line, what, rules, nr, cols, nc,
                                                          key, key_len)};
    }
    for (size_t t = 0; t < cfg->n_targets; t++) {
        size_t nr = 0, nc = 0;
        int line = 1;
        bool ok = true;
        for (size_t i = 0; i < cfg->n_masking; i++) {
            const al_masking_conf_t *m = &cfg->masking[i];
            if (m->name || !lists(m->targets, m->n_targets, cfg->targets[t].name))
                continue;
            line = m->line;
            ok &= add_entry(&e, m, i, rules, &nr, cols, &nc);
        }
        char what[96];
        snprintf(what, sizeof what, "masking for target '%s'", cfg->targets[t].name);
        if (ok)
            s->by_target[t] = compile(&e, line, what, rules, nr, cols, nc, key, key_len);
    }
    /* policies[].masking must name a masking entry */
    for (size_t i = 0; i < cfg->n_policies; i++) {
        const al_policy_conf_t *p = &cfg->policies[i];
        for (size_t k = 0; k < p->n_masking; k++) {
            bool found = false;
            for (size_t j = 0; j < cfg->n_masking; j++)
                found |= cfg->masking[j].name && !strcmp(cfg->masking[j].name, p->masking[k]);
            if (!found)
                err(&e, p->line, "policies[%zu] '%s': masking '%s' names no masking entry (give "
                                 "one 'name: %s')", i, p->name, p->masking[k], p->masking[k]);
        }
    }
    free(rules);
    free(cols);
    if (key) {
        al_wipe(key, key_len);
        free(key);
    }
    if (e.n) {
        errs->msgs = al_xcalloc(e.n, sizeof *errs->msgs);
        for (const char *m = e.list.p; errs->n < e.n; m += strlen(m) + 1)
            errs->msgs[errs->n++] = al_xstrdup(m);
        al_buf_free(&e.list);
        al_mask_set_free(&s);
        return NULL;
    }
    al_buf_free(&e.list);
    return s;
}

void al_mask_set_free(al_mask_set_t **ps)
{
    al_mask_set_t *s = *ps;
    if (!s)
        return;
    for (size_t t = 0; t < s->cfg->n_targets; t++)
        al_mask_engine_unref(&s->by_target[t]);
    for (size_t i = 0; i < s->n_named; i++)
        al_mask_engine_unref(&s->named[i].eng);
    free(s->by_target);
    free(s->named);
    al_free(ps);
}

al_mask_engine_t *al_mask_set_target(const al_mask_set_t *s, const char *target)
{
    for (size_t t = 0; s && target && t < s->cfg->n_targets; t++)
        if (!strcmp(s->cfg->targets[t].name, target))
            return s->by_target[t];
    return NULL;
}

al_mask_engine_t *al_mask_set_named(const al_mask_set_t *s, const char *name, const char *target)
{
    for (size_t i = 0; s && i < s->n_named; i++) {
        const al_masking_conf_t *m = s->named[i].conf;
        if (!strcmp(m->name, name) && lists(m->targets, m->n_targets, target))
            return s->named[i].eng;
    }
    return NULL;
}

bool al_mask_set_has_columns(const al_mask_set_t *s, const char *target)
{
    for (size_t i = 0; s && i < s->cfg->n_masking; i++) {
        const al_masking_conf_t *m = &s->cfg->masking[i];
        if (m->n_columns && lists(m->targets, m->n_targets, target))
            return true;
    }
    return false;
}
