/* policy.c - compile and evaluate policy rules (see policy.h). */
#include <ctype.h>
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "policy/policy.h"
#include "policy/window.h"

enum {
    NEED_SQL = 1u << 0,  /* the rule has SQL conditions */
    NEED_HTTP = 1u << 1, /* the rule has HTTP conditions */
    NEED_CMD = 1u << 2,  /* the rule has command conditions */
};

typedef struct rule {
    const al_policy_conf_t *conf;
    unsigned needs;
    unsigned classes;     /* bit per al_sql_class_t; 0 = any (but unknown) */
    bool any_target;
    bool has_window;
    al_window_t window;
} rule_t;

struct al_policy {
    const al_config_t *cfg;
    rule_t *rules;
    size_t n_rules;
};

/* ---- compile ----------------------------------------------------------------------- */

typedef struct errs_ctx {
    const al_config_t *cfg;
    al_buf_t *list; /* messages separated by NUL */
    size_t n;
} errs_ctx_t;

static void err(errs_ctx_t *e, const al_policy_conf_t *r, size_t i, const char *fmt, ...)
    AL_PRINTF(4, 5);
static void err(errs_ctx_t *e, const al_policy_conf_t *r, size_t i, const char *fmt, ...)
{
    al_buf_printf(e->list, "%s:%d:3: policies[%zu] '%s': ", e->cfg->path, r->line, i,
                  r->name ? r->name : "?");
    va_list ap;
    va_start(ap, fmt);
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    al_buf_puts(e->list, msg);
    al_buf_append(e->list, "", 1);
    e->n++;
}

static void check_who(errs_ctx_t *e, const al_policy_conf_t *r, size_t i)
{
    for (size_t k = 0; k < r->n_who; k++) {
        const char *w = r->who[k];
        if (!strcmp(w, "*"))
            continue;
        if (!strncmp(w, "group:", 6)) {
            if (!w[6])
                err(e, r, i, "who 'group:' needs a group name, like group:analysts");
            continue;
        }
        if (!strncmp(w, "issuer:", 7)) {
            if (!al_config_issuer(e->cfg, w + 7) &&
                !(e->cfg->dev_issuer && !strcmp(w + 7, AL_DEV_ISSUER_NAME)))
                err(e, r, i, "who '%s' names no issuer in issuers", w);
            continue;
        }
        if (!al_config_agent(e->cfg, w))
            err(e, r, i, "who '%s' is not an agent in agents (use group:X, issuer:X or \"*\" "
                         "for others)", w);
    }
}

static void compile_rule(errs_ctx_t *e, rule_t *ru, const al_policy_conf_t *r, size_t i)
{
    ru->conf = r;
    check_who(e, r, i);
    for (size_t k = 0; k < r->n_targets; k++) {
        if (!strcmp(r->targets[k], "*"))
            ru->any_target = true;
        else if (!al_config_target(e->cfg, r->targets[k]))
            err(e, r, i, "targets '%s' is not defined in targets", r->targets[k]);
    }
    const al_when_conf_t *w = &r->when;
    for (size_t k = 0; k < w->n_sql; k++) {
        al_sql_class_t c;
        if (!strcmp(w->sql[k], "unknown"))
            c = AL_SQL_UNKNOWN;
        else if (al_sql_class_parse(al_str_c(w->sql[k]), &c) != AL_OK) {
            err(e, r, i, "when.sql '%s' is not a class (read, write, ddl, dcl, admin, unknown)",
                w->sql[k]);
            continue;
        }
        ru->classes |= 1u << c;
    }
    if (w->n_sql || w->n_tables || w->n_schemas || w->n_functions)
        ru->needs |= NEED_SQL;
    if (w->n_methods || w->n_paths || w->n_hosts)
        ru->needs |= NEED_HTTP;
    if (w->n_commands)
        ru->needs |= NEED_CMD;
    if (ru->needs & (ru->needs - 1))
        err(e, r, i, "when mixes conditions of different protocols (sql/tables/schemas/"
                     "functions, methods/paths/hosts, commands); split it into one rule each");
    for (size_t k = 0; k < w->n_paths; k++)
        if (w->paths[k][0] != '/')
            err(e, r, i, "when.paths '%s' must start with '/'", w->paths[k]);
    if (w->n_hours || w->n_days || w->timezone) {
        char msg[256];
        if (al_window_parse(&ru->window, (const char *const *)w->hours, w->n_hours,
                            (const char *const *)w->days, w->n_days, w->timezone, msg,
                            sizeof msg) != AL_OK)
            err(e, r, i, "when: %s", msg);
        else
            ru->has_window = true;
    }
}

al_policy_t *al_policy_compile(const al_config_t *cfg, al_config_errors_t *errs)
{
    memset(errs, 0, sizeof *errs);
    al_policy_t *p = al_xcalloc(1, sizeof *p);
    p->cfg = cfg;
    p->n_rules = cfg->n_policies;
    p->rules = al_xcalloc(p->n_rules ? p->n_rules : 1, sizeof *p->rules);
    al_buf_t list;
    al_buf_init(&list);
    errs_ctx_t e = {cfg, &list, 0};
    for (size_t i = 0; i < p->n_rules; i++)
        compile_rule(&e, &p->rules[i], &cfg->policies[i], i);
    if (!e.n) {
        al_buf_free(&list);
        return p;
    }
    errs->msgs = al_xcalloc(e.n, sizeof *errs->msgs);
    for (const char *m = list.p; errs->n < e.n; m += strlen(m) + 1)
        errs->msgs[errs->n++] = al_xstrdup(m);
    al_buf_free(&list);
    al_policy_free(&p);
    return NULL;
}

void al_policy_free(al_policy_t **pp)
{
    al_policy_t *p = *pp;
    if (!p)
        return;
    for (size_t i = 0; i < p->n_rules; i++)
        if (p->rules[i].has_window)
            al_window_free(&p->rules[i].window);
    al_free(&p->rules);
    al_free(pp);
}

const char *al_policy_table_name(const al_sql_table_t *t, char *buf, size_t cap)
{
    if (t->schema.len)
        snprintf(buf, cap, "%.*s.%.*s", (int)t->schema.len, t->schema.p, (int)t->name.len,
                 t->name.p);
    else
        snprintf(buf, cap, "%.*s", (int)t->name.len, t->name.p);
    return buf;
}

size_t al_policy_table_names(const al_sql_result_t *r, char (*buf)[AL_POLICY_TABLE_NAME_MAX],
                             const char **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; r && i < r->n_tables && n < max; i++, n++)
        out[n] = al_policy_table_name(&r->tables[i], buf[n], AL_POLICY_TABLE_NAME_MAX);
    return n;
}

al_sql_class_t al_policy_target_fn_default(const al_policy_t *p, const char *target)
{
    const al_target_conf_t *t = al_config_target(p->cfg, target);
    return t ? (al_sql_class_t)t->sql_default_function_class : AL_SQL_READ;
}

/* ---- matching ---------------------------------------------------------------------- */

static bool who_matches(const al_policy_conf_t *r, const al_subject_t *s)
{
    for (size_t k = 0; k < r->n_who; k++) {
        const char *w = r->who[k];
        if (w[0] == '*' && !w[1])
            return true;
        if (!strncmp(w, "group:", 6)) {
            for (size_t g = 0; g < s->n_groups; g++)
                if (!strcmp(s->groups[g], w + 6))
                    return true;
        } else if (!strncmp(w, "issuer:", 7)) {
            if (s->issuer && !strcmp(s->issuer, w + 7))
                return true;
        } else if (s->agent && !strcmp(s->agent, w)) {
            return true;
        }
    }
    return false;
}

static bool target_matches(const rule_t *ru, const char *target)
{
    if (ru->any_target)
        return true;
    for (size_t k = 0; k < ru->conf->n_targets; k++)
        if (!strcmp(ru->conf->targets[k], target))
            return true;
    return false;
}

/* fnmatch on a length-delimited string, without allocating. */
static bool glob_n(const char *pat, al_str_t s, int flags)
{
    char buf[512];
    if (s.len >= sizeof buf)
        return false;
    memcpy(buf, s.p, s.len);
    buf[s.len] = 0;
    return fnmatch(pat, buf, flags) == 0;
}

static bool path_glob(const char *pat, const char *s, const char *end, int depth)
{
    if (depth > 64)
        return false;
    while (*pat) {
        if (pat[0] == '*' && pat[1] == '*') {
            pat += 2;
            for (const char *t = s;; t++) {
                if (path_glob(pat, t, end, depth + 1))
                    return true;
                if (t == end)
                    return false;
            }
        }
        if (*pat == '*') {
            pat++;
            for (const char *t = s;; t++) {
                if (path_glob(pat, t, end, depth + 1))
                    return true;
                if (t == end || *t == '/')
                    return false;
            }
        }
        if (s == end || (*pat != '?' && *pat != *s) || (*pat == '?' && *s == '/'))
            return false;
        pat++;
        s++;
    }
    return s == end;
}

bool al_policy_path_match(const char *pat, al_str_t path)
{
    if (path_glob(pat, path.p, path.p + path.len, 0))
        return true;
    /* A trailing slash-double-star pattern covers the bare prefix too. */
    size_t pl = strlen(pat);
    if (pl >= 3 && !strcmp(pat + pl - 3, "/**") && path.len == pl - 3 &&
        !memcmp(pat, path.p, path.len))
        return true;
    return false;
}

static bool table_matches(const char *pat, const al_sql_table_t *t)
{
    al_str_t schema = t->schema.len ? t->schema : al_str_c("public");
    const char *dot = strchr(pat, '.');
    if (!dot)
        return glob_n(pat, t->name, 0);
    char sp[256];
    size_t n = (size_t)(dot - pat);
    if (n >= sizeof sp)
        return false;
    memcpy(sp, pat, n);
    sp[n] = 0;
    return glob_n(sp, schema, 0) && glob_n(dot + 1, t->name, 0);
}

static bool str_in(char **list, size_t n, al_str_t s, int flags)
{
    for (size_t k = 0; k < n; k++)
        if (glob_n(list[k], s, flags))
            return true;
    return false;
}

/* all: every item must match (and there is at least one); else any. */
static bool tables_hold(const al_when_conf_t *w, const al_sql_stmt_t *st, bool all)
{
    size_t hits = 0, n = st ? st->n_tables : 0;
    for (size_t i = 0; i < n; i++) {
        bool m = false;
        for (size_t k = 0; k < w->n_tables && !m; k++)
            m = table_matches(w->tables[k], &st->tables[i]);
        hits += m;
    }
    return all ? n && hits == n : hits > 0;
}

static bool schemas_hold(const al_when_conf_t *w, const al_sql_stmt_t *st, bool all)
{
    size_t hits = 0, n = 0;
    for (size_t i = 0; st && i < st->n_tables; i++, n++) {
        al_str_t s = st->tables[i].schema.len ? st->tables[i].schema : al_str_c("public");
        hits += str_in(w->schemas, w->n_schemas, s, 0);
    }
    for (size_t i = 0; st && i < st->n_schemas; i++, n++)
        hits += str_in(w->schemas, w->n_schemas, st->schemas[i], 0);
    return all ? n && hits == n : hits > 0;
}

static bool functions_hold(const al_when_conf_t *w, const al_sql_stmt_t *st, bool all)
{
    size_t hits = 0, n = st ? st->n_funcs : 0;
    for (size_t i = 0; i < n; i++)
        hits += str_in(w->functions, w->n_functions, st->funcs[i].name, FNM_CASEFOLD);
    return all ? n && hits == n : hits > 0;
}

static bool when_holds(const rule_t *ru, const al_action_t *a)
{
    const al_policy_conf_t *r = ru->conf;
    const al_when_conf_t *w = &r->when;
    bool all = r->action != AL_DECIDE_DENY;
    if (ru->has_window && !al_window_contains(&ru->window, a->now))
        return false;
    switch (a->kind) {
    case AL_ACTION_SQL: {
        if (ru->needs & (NEED_HTTP | NEED_CMD))
            return false;
        al_sql_class_t cls = a->stmt ? a->stmt->cls : a->cls;
        if (ru->classes ? !(ru->classes & (1u << cls)) : (cls == AL_SQL_UNKNOWN && all))
            return false;
        if (w->n_tables && !tables_hold(w, a->stmt, all))
            return false;
        if (w->n_schemas && !schemas_hold(w, a->stmt, all))
            return false;
        if (w->n_functions && !functions_hold(w, a->stmt, all))
            return false;
        return true;
    }
    case AL_ACTION_HTTP:
        if (ru->needs & (NEED_SQL | NEED_CMD))
            return false;
        if (w->n_methods && !str_in(w->methods, w->n_methods, a->method, FNM_CASEFOLD))
            return false;
        if (w->n_hosts && !str_in(w->hosts, w->n_hosts, a->host, FNM_CASEFOLD))
            return false;
        if (w->n_paths) {
            bool m = false;
            for (size_t k = 0; k < w->n_paths && !m; k++)
                m = al_policy_path_match(w->paths[k], a->path);
            if (!m)
                return false;
        }
        return true;
    case AL_ACTION_CMD:
        if (ru->needs & (NEED_SQL | NEED_HTTP))
            return false;
        return !w->n_commands || str_in(w->commands, w->n_commands, a->cmd, 0);
    }
    return false;
}

static void add_mask(al_verdict_t *out, const char *m)
{
    for (size_t j = 0; j < out->n_masks; j++)
        if (!strcmp(out->masks[j], m))
            return;
    if (out->n_masks < AL_POLICY_MAX_MASKS)
        out->masks[out->n_masks++] = m;
}

static void add_masks(al_verdict_t *out, const al_policy_conf_t *r)
{
    for (size_t k = 0; k < r->n_masking; k++)
        add_mask(out, r->masking[k]);
}

void al_policy_decide(const al_policy_t *p, const al_subject_t *who, const al_action_t *a,
                      al_verdict_t *out)
{
    memset(out, 0, sizeof *out);
    out->decision = AL_DECIDE_DENY;
    out->reason = "no_matching_rule";
    out->audit = AL_AUDIT_MODE_STRICT;
    if (!al_config_target(p->cfg, a->target)) {
        out->reason = "unknown_target";
        return;
    }
    bool any = false;
    for (size_t i = 0; i < p->n_rules; i++) {
        const rule_t *ru = &p->rules[i];
        if (!target_matches(ru, a->target) || !who_matches(ru->conf, who) || !when_holds(ru, a))
            continue;
        if (!any || ru->conf->action > out->decision) {
            out->decision = ru->conf->action;
            out->rule = ru->conf;
        }
        any = true;
        add_masks(out, ru->conf);
    }
    if (!any)
        return;
    out->reason = out->decision == AL_DECIDE_ALLOW     ? "allowed_by_rule"
                  : out->decision == AL_DECIDE_APPROVE ? "approval_required"
                                                       : "denied_by_rule";
    if (out->decision != AL_DECIDE_ALLOW)
        out->n_masks = 0;
    /* Strict unless the deciding rule says otherwise; reads default to async. */
    al_audit_mode_t m = out->rule->audit;
    al_sql_class_t cls = a->stmt ? a->stmt->cls : a->cls;
    if (m == AL_AUDIT_MODE_DEFAULT)
        m = a->kind == AL_ACTION_SQL && cls == AL_SQL_READ && out->decision == AL_DECIDE_ALLOW
                ? AL_AUDIT_MODE_ASYNC
                : AL_AUDIT_MODE_STRICT;
    out->audit = m;
}

void al_policy_decide_sql(const al_policy_t *p, const al_subject_t *who, const char *target,
                          const al_sql_result_t *r, int64_t now, al_verdict_t *out,
                          al_verdict_t *per_stmt, size_t cap)
{
    al_action_t a = {.kind = AL_ACTION_SQL, .target = target, .now = now};
    if (!r->n_stmts) {
        /* Nothing to run (empty or comments only), or it did not parse. */
        a.cls = r->cls;
        al_policy_decide(p, who, &a, out);
        return;
    }
    for (size_t i = 0; i < r->n_stmts; i++) {
        al_verdict_t v;
        a.stmt = &r->stmts[i];
        al_policy_decide(p, who, &a, &v);
        if (per_stmt && i < cap)
            per_stmt[i] = v;
        if (i == 0 || v.decision > out->decision ||
            (v.decision == out->decision && v.audit == AL_AUDIT_MODE_STRICT &&
             out->audit != AL_AUDIT_MODE_STRICT)) {
            al_verdict_t keep = *out;
            *out = v;
            if (i && v.decision == AL_DECIDE_ALLOW && keep.decision == AL_DECIDE_ALLOW)
                for (size_t k = 0; k < keep.n_masks; k++)
                    add_mask(out, keep.masks[k]);
        } else if (v.decision == AL_DECIDE_ALLOW && out->decision == AL_DECIDE_ALLOW) {
            for (size_t k = 0; k < v.n_masks; k++)
                add_mask(out, v.masks[k]);
        }
    }
}
