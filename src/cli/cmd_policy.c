/*
 * cmd_policy.c - `airlock policy explain`: the decision the gateway would
 * take for one action, as JSON, from the same classifier and policy code.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "policy/policy.h"
#include "proto/http/http_path.h"

static void usage(FILE *f)
{
    fputs("usage: airlock policy explain -c FILE (--agent NAME | --token TOKEN) --target NAME\n"
          "                              (--sql TEXT | --http \"METHOD PATH\" | --cmd TEXT)\n"
          "                              [--host HOST] [--at TIME]\n\n"
          "Prints the decision for one action as JSON: decision, rule, reason,\n"
          "statements (class, tables, functions, each statement's decision), masks.\n"
          "It runs the gateway's own classifier and policy engine.\n"
          "--at decides as of TIME (RFC 3339, like 2026-11-24T10:00:00Z or\n"
          "2026-11-24T10:00:00+01:00) instead of now, to check time windows.\n\n"
          "exit status: 0 allow, 3 deny, 4 approve, 2 usage or config error\n",
          f);
}

typedef struct args {
    const char *cfg, *agent, *token, *target, *sql, *http, *cmd, *host, *at;
} args_t;

static int parse(int argc, char **argv, args_t *a)
{
    memset(a, 0, sizeof *a);
    static const struct {
        const char *flag;
        size_t off;
    } opts[] = {
        {"-c", offsetof(args_t, cfg)},         {"--config", offsetof(args_t, cfg)},
        {"--agent", offsetof(args_t, agent)},  {"--token", offsetof(args_t, token)},
        {"--target", offsetof(args_t, target)}, {"--sql", offsetof(args_t, sql)},
        {"--http", offsetof(args_t, http)},    {"--cmd", offsetof(args_t, cmd)},
        {"--host", offsetof(args_t, host)},    {"--at", offsetof(args_t, at)},
    };
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
            return 1;
        size_t k = 0;
        while (k < AL_ARRAY_LEN(opts) && strcmp(argv[i], opts[k].flag))
            k++;
        if (k == AL_ARRAY_LEN(opts) || i + 1 >= argc) {
            fprintf(stderr, "airlock policy explain: %s '%s'\n",
                    k == AL_ARRAY_LEN(opts) ? "unknown argument" : "missing value for", argv[i]);
            return 2;
        }
        *(const char **)((char *)a + opts[k].off) = argv[++i];
    }
    const char *why = NULL;
    if (!a->cfg)
        why = "a config file is required (-c FILE)";
    else if (!a->agent == !a->token)
        why = "give exactly one of --agent NAME or --token TOKEN";
    else if (!a->target)
        why = "--target NAME is required";
    else if ((a->sql != NULL) + (a->http != NULL) + (a->cmd != NULL) != 1)
        why = "give exactly one of --sql, --http or --cmd";
    if (why) {
        fprintf(stderr, "airlock policy explain: %s\n", why);
        return 2;
    }
    return 0;
}

static void jstr(al_buf_t *b, const char *s)
{
    if (s)
        al_buf_json_str(b, s, strlen(s));
    else
        al_buf_puts(b, "null");
}

static void jstrn(al_buf_t *b, al_str_t s) { al_buf_json_str(b, s.p ? s.p : "", s.len); }

static void verdict_json(al_buf_t *b, const al_verdict_t *v)
{
    al_buf_puts(b, "\"decision\":");
    jstr(b, al_decision_name(v->decision));
    al_buf_puts(b, ",\"rule\":");
    jstr(b, v->rule ? v->rule->name : NULL);
    al_buf_puts(b, ",\"reason\":");
    jstr(b, v->reason);
}

static void table_json(al_buf_t *b, const al_sql_table_t *t)
{
    char n[AL_POLICY_TABLE_NAME_MAX];
    jstr(b, al_policy_table_name(t, n, sizeof n));
}

static void stmts_json(al_buf_t *b, const char *sql, const al_sql_result_t *r,
                       const al_verdict_t *per, size_t n_per)
{
    al_buf_puts(b, ",\"statements\":[");
    for (size_t i = 0; i < r->n_stmts; i++) {
        const al_sql_stmt_t *s = &r->stmts[i];
        al_buf_puts(b, i ? ",{\"text\":" : "{\"text\":");
        al_str_t text = {sql + s->offset, s->len};
        while (text.len && (*text.p == ' ' || *text.p == '\n' || *text.p == '\t')) {
            text.p++;
            text.len--;
        }
        jstrn(b, text);
        al_buf_puts(b, ",\"class\":");
        jstr(b, al_sql_class_name(s->cls));
        al_buf_puts(b, ",\"kind\":");
        jstr(b, s->kind);
        al_buf_puts(b, ",\"why\":");
        jstr(b, s->reason);
        al_buf_puts(b, ",\"tables\":[");
        for (size_t k = 0; k < s->n_tables; k++) {
            if (k)
                al_buf_puts(b, ",");
            table_json(b, &s->tables[k]);
        }
        al_buf_puts(b, "],\"functions\":[");
        for (size_t k = 0; k < s->n_funcs; k++) {
            if (k)
                al_buf_puts(b, ",");
            jstrn(b, s->funcs[k].name);
        }
        al_buf_puts(b, "],");
        if (i < n_per)
            verdict_json(b, &per[i]);
        al_buf_puts(b, "}");
    }
    if (!r->n_stmts && r->error.len) {
        al_buf_puts(b, "{\"text\":");
        jstr(b, sql);
        al_buf_puts(b, ",\"class\":\"unknown\",\"error\":");
        jstrn(b, r->error);
        al_buf_puts(b, ",\"tables\":[],\"functions\":[]}");
    }
    al_buf_puts(b, "]");
}

#define MAX_STMTS 256

/* RFC 3339 date-time (§5.6) to unix seconds; fractions are ignored. */
static int parse_rfc3339(const char *s, int64_t *out)
{
    struct tm tm = {0};
    char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest)
        rest = strptime(s, "%Y-%m-%dt%H:%M:%S", &tm);
    if (!rest)
        return AL_ERR;
    if (*rest == '.') {
        rest++;
        if (*rest < '0' || *rest > '9')
            return AL_ERR;
        while (*rest >= '0' && *rest <= '9')
            rest++;
    }
    long off = 0;
    if ((*rest == 'Z' || *rest == 'z') && !rest[1]) {
        off = 0;
    } else if ((*rest == '+' || *rest == '-') && strlen(rest) == 6 && rest[3] == ':') {
        int hh = atoi(rest + 1), mm = atoi(rest + 4);
        if (hh > 23 || mm > 59)
            return AL_ERR;
        off = (hh * 3600L + mm * 60L) * (*rest == '-' ? -1 : 1);
    } else {
        return AL_ERR;
    }
    *out = (int64_t)timegm(&tm) - off;
    return AL_OK;
}

static int explain(const args_t *a, al_config_t *cfg)
{
    al_config_errors_t errs;
    al_policy_t *pol = al_policy_compile(cfg, &errs);
    if (!pol) {
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "%s\n", errs.msgs[i]);
        al_config_errors_free(&errs);
        return 2;
    }
    const al_target_conf_t *tgt = al_config_target(cfg, a->target);
    if (!tgt) {
        fprintf(stderr, "airlock policy explain: no target named '%s' in %s\n", a->target,
                cfg->path);
        al_policy_free(&pol);
        return 2;
    }
    al_subject_t who = {0};
    al_principal_t *pr = NULL;
    al_buf_t b;
    al_buf_init(&b);
    int rc = 2;
    if (a->agent) {
        const al_agent_conf_t *ag = al_config_agent(cfg, a->agent);
        if (!ag) {
            fprintf(stderr, "airlock policy explain: no agent named '%s' in %s\n", a->agent,
                    cfg->path);
            goto out;
        }
        who = (al_subject_t){ag->name, ag->issuer, (const char *const *)ag->groups, ag->n_groups};
    } else {
        al_verify_info_t info;
        al_tok_status_t st = al_cli_verify_token(cfg, a->token, strlen(a->token), NULL, &pr, &info);
        if (st != AL_TOK_OK) {
            if (st == AL_TOK_INTERNAL && !info.detail)
                goto out;
            al_buf_puts(&b, "{\"decision\":\"deny\",\"rule\":null,\"reason\":\"invalid_token\","
                            "\"token_error\":");
            jstr(&b, al_tok_reason(st));
            al_buf_puts(&b, ",\"detail\":");
            jstr(&b, info.detail ? info.detail : al_tok_reason_text(st));
            al_buf_puts(&b, ",\"statements\":[],\"masks\":[]}");
            rc = 3;
            goto print;
        }
        who = (al_subject_t){pr->agent, pr->issuer_name, pr->groups, pr->n_groups};
    }

    al_verdict_t v;
    int64_t now = (int64_t)al_now();
    if (a->at && parse_rfc3339(a->at, &now) != AL_OK) {
        fprintf(stderr, "airlock policy explain: --at '%s' is not an RFC 3339 time like "
                        "2026-11-24T10:00:00Z\n", a->at);
        goto out;
    }
    al_buf_puts(&b, "{");
    if (a->sql) {
        al_sql_t *sq = al_sql_new(&(al_sql_config_t){.no_cache = true});
        const al_sql_result_t *r = NULL;
        al_sql_opts_t o = {.default_function_class = al_policy_target_fn_default(pol, a->target)};
        if (!sq) {
            rc = 2;
            goto out;
        }
        al_sql_classify(sq, a->sql, strlen(a->sql), &o, &r);
        al_verdict_t *per = al_xcalloc(MAX_STMTS, sizeof *per);
        al_policy_decide_sql(pol, &who, a->target, r, now, &v, per, MAX_STMTS);
        verdict_json(&b, &v);
        al_buf_puts(&b, ",\"class\":");
        jstr(&b, al_sql_class_name(r->cls));
        stmts_json(&b, a->sql, r, per, r->n_stmts < MAX_STMTS ? r->n_stmts : MAX_STMTS);
        free(per);
        al_sql_free(&sq);
    } else if (a->http) {
        const char *sp = strchr(a->http, ' ');
        if (!sp || sp == a->http || !sp[1]) {
            fputs("airlock policy explain: --http takes \"METHOD PATH\", like \"GET /v1/items\"\n",
                  stderr);
            goto out;
        }
        al_str_t target = al_str_c(sp + 1), path, query;
        size_t cap = target.len + 2, plen = 0;
        char *norm = al_xmalloc(cap);
        const char *perr = NULL;
        if (al_http_target_split(target, &path, &query) != AL_OK)
            perr = "bad_target";
        else if (al_http_path_normalize(path.p, path.len, norm, cap, &plen, &perr) == AL_OK)
            perr = NULL;
        else if (!perr)
            perr = "bad_path";
        if (perr) {
            memset(&v, 0, sizeof v);
            v.decision = AL_DECIDE_DENY;
            v.reason = perr;
            verdict_json(&b, &v);
            al_buf_puts(&b, ",\"request\":{\"path\":null}");
        } else {
            al_action_t act = {.kind = AL_ACTION_HTTP, .target = a->target,
                               .method = {a->http, (size_t)(sp - a->http)},
                               .path = {norm, plen}, .host = al_str_c(a->host ? a->host : ""),
                               .now = now};
            al_policy_decide(pol, &who, &act, &v);
            verdict_json(&b, &v);
            al_buf_puts(&b, ",\"request\":{\"method\":");
            jstrn(&b, act.method);
            al_buf_puts(&b, ",\"path\":");
            jstrn(&b, act.path);
            al_buf_puts(&b, "}");
        }
        free(norm);
    } else {
        al_action_t act = {.kind = AL_ACTION_CMD, .target = a->target, .cmd = al_str_c(a->cmd),
                           .now = now};
        al_policy_decide(pol, &who, &act, &v);
        verdict_json(&b, &v);
        al_buf_puts(&b, ",\"command\":");
        jstr(&b, a->cmd);
    }
    al_buf_puts(&b, ",\"message\":");
    jstr(&b, v.rule && v.decision != AL_DECIDE_ALLOW ? v.rule->message : NULL);
    al_buf_puts(&b, ",\"masks\":[");
    for (size_t i = 0; i < v.n_masks; i++) {
        if (i)
            al_buf_puts(&b, ",");
        jstr(&b, v.masks[i]);
    }
    al_buf_puts(&b, "],\"audit\":");
    jstr(&b, v.audit == AL_AUDIT_MODE_ASYNC ? "async" : "strict");
    if (v.decision == AL_DECIDE_APPROVE && v.rule) {
        const al_policy_conf_t *r = v.rule;
        al_buf_puts(&b, ",\"approval\":{\"approvers\":[");
        for (size_t i = 0; i < r->n_approvers; i++) {
            if (i)
                al_buf_puts(&b, ",");
            jstr(&b, r->approvers[i]);
        }
        al_buf_printf(&b, "],\"timeout_seconds\":%.0f,\"grant\":", r->timeout);
        jstr(&b, r->grant);
        al_buf_puts(&b, ",\"mode\":");
        jstr(&b, r->mode == AL_APPROVAL_RETRY ? "retry" : "wait");
        al_buf_printf(&b, ",\"min_approvals\":%d}", r->min_approvals);
    }
    al_buf_puts(&b, ",\"target\":");
    jstr(&b, a->target);
    al_buf_puts(&b, ",\"agent\":");
    jstr(&b, who.agent);
    al_buf_puts(&b, "}");
    rc = v.decision == AL_DECIDE_ALLOW ? 0 : v.decision == AL_DECIDE_APPROVE ? 4 : 3;
print:
    printf("%.*s\n", (int)b.len, b.p);
out:
    al_buf_free(&b);
    al_principal_unref(&pr);
    al_policy_free(&pol);
    return rc;
}

int al_cmd_policy(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "explain")) {
        bool help = argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"));
        if (!help && argc >= 2)
            fprintf(stderr, "airlock policy: unknown subcommand '%s' (explain)\n\n", argv[1]);
        usage(help ? stdout : stderr);
        return help ? 0 : 2;
    }
    args_t a;
    int r = parse(argc, argv, &a);
    if (r) {
        usage(r == 1 ? stdout : stderr);
        return r == 1 ? 0 : 2;
    }
    al_config_t *cfg = al_cli_load_config(a.cfg);
    if (!cfg)
        return 2;
    if (al_log_get_level() < AL_LOG_WARN)
        al_log_set_level(AL_LOG_WARN);
    int rc = explain(&a, cfg);
    al_config_free(cfg);
    return rc;
}
