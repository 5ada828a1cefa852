/*
 * cmd_token.c - `airlock token mint` (dev issuer) and `airlock token verify`
 * (any configured issuer, same verifier as the gateway).
 */
#include <ctype.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"
#include "identity/identity.h"
#include "identity/jws.h"

#define MAX_GROUPS 64

static void usage(FILE *f)
{
    fputs("usage: airlock token mint -c FILE (--agent NAME | --subject SUB) [options]\n"
          "       airlock token verify -c FILE [--issuer NAME] [TOKEN | -]\n\n"
          "mint: signs a short-lived ES256 token with the local dev issuer (its key\n"
          "lives in server.data_dir/dev-issuer/). Only for development: the gateway\n"
          "trusts these tokens only when the config sets dev_issuer: true.\n"
          "  --agent NAME      an inventory agent whose issuer is airlock-dev\n"
          "  --subject SUB     a raw subject instead of an agent\n"
          "  --groups a,b      extra groups claim values\n"
          "  --ttl DURATION    lifetime, default 5m, at most dev_token_max_ttl\n"
          "  --aud AUDIENCE    audience, default \"airlock\"\n\n"
          "verify: validates TOKEN (or one read from stdin) exactly as the gateway\n"
          "would and prints the principal as JSON.\n"
          "  --issuer NAME     accept only this configured issuer\n\n"
          "exit status: 0 ok, 1 token refused (JSON {\"error\",\"detail\"} on stdout),\n"
          "2 usage or config error\n",
          f);
}

typedef struct args {
    const char *cfg, *agent, *subject, *groups, *ttl, *aud, *issuer, *token;
} args_t;

/* Returns 0 ok, 1 help, 2 usage error. */
static int parse(int argc, char **argv, bool mint, args_t *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 2; i < argc; i++) {
        const char *s = argv[i];
        const char **slot = NULL;
        if (!strcmp(s, "-h") || !strcmp(s, "--help"))
            return 1;
        if (!strcmp(s, "-c") || !strcmp(s, "--config"))
            slot = &a->cfg;
        else if (mint && !strcmp(s, "--agent"))
            slot = &a->agent;
        else if (mint && !strcmp(s, "--subject"))
            slot = &a->subject;
        else if (mint && !strcmp(s, "--groups"))
            slot = &a->groups;
        else if (mint && !strcmp(s, "--ttl"))
            slot = &a->ttl;
        else if (mint && !strcmp(s, "--aud"))
            slot = &a->aud;
        else if (!mint && !strcmp(s, "--issuer"))
            slot = &a->issuer;
        if (slot) {
            if (i + 1 >= argc) {
                fprintf(stderr, "airlock token: %s needs a value\n", s);
                return 2;
            }
            *slot = argv[++i];
            continue;
        }
        if (!mint && !a->token && (s[0] != '-' || !strcmp(s, "-"))) {
            a->token = s;
            continue;
        }
        fprintf(stderr, "airlock token: unknown argument '%s'\n", s);
        return 2;
    }
    if (!a->cfg) {
        fputs("airlock token: a config file is required (-c FILE)\n", stderr);
        return 2;
    }
    return 0;
}

static int split_groups(char *s, const char **out, size_t *n)
{
    *n = 0;
    for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
        while (isspace((unsigned char)*tok))
            tok++;
        size_t l = strlen(tok);
        while (l && isspace((unsigned char)tok[l - 1]))
            tok[--l] = 0;
        if (!l)
            continue;
        if (*n == MAX_GROUPS)
            return -1;
        out[(*n)++] = tok;
    }
    return 0;
}

static int cmd_mint(const args_t *a, al_config_t *cfg)
{
    if (!a->agent == !a->subject) {
        fputs("airlock token mint: give exactly one of --agent NAME or --subject SUB\n", stderr);
        return 2;
    }
    const char *sub = a->subject;
    if (a->agent) {
        const al_agent_conf_t *ag = al_config_agent(cfg, a->agent);
        if (!ag) {
            fprintf(stderr, "airlock token mint: no agent named '%s' in %s\n", a->agent, cfg->path);
            return 2;
        }
        if (strcmp(ag->issuer, AL_DEV_ISS)) {
            fprintf(stderr, "airlock token mint: agent '%s' belongs to issuer '%s'; only agents "
                            "with issuer: %s can get dev tokens\n", ag->name, ag->issuer, AL_DEV_ISS);
            return 2;
        }
        sub = ag->subject;
    }
    if (!*sub) {
        fputs("airlock token mint: the subject must not be empty\n", stderr);
        return 2;
    }
    double ttl = 300;
    if (a->ttl && (al_parse_duration(a->ttl, &ttl) != AL_OK || ttl < 1)) {
        fprintf(stderr, "airlock token mint: --ttl '%s' is not a duration of at least 1s "
                        "(like 90s, 15m, 1h)\n", a->ttl);
        return 2;
    }
    if (ttl > cfg->dev_token_max_ttl) {
        fprintf(stderr, "airlock token mint: --ttl %s is longer than dev_token_max_ttl (%.0fs)\n",
                a->ttl, cfg->dev_token_max_ttl);
        return 2;
    }
    const char *groups[MAX_GROUPS];
    size_t n_groups = 0;
    char *gcopy = a->groups ? al_xstrdup(a->groups) : NULL;
    if (gcopy && split_groups(gcopy, groups, &n_groups)) {
        fprintf(stderr, "airlock token mint: at most %d groups\n", MAX_GROUPS);
        free(gcopy);
        return 2;
    }
    if (!cfg->dev_issuer)
        fprintf(stderr, "airlock token mint: warning: %s does not set dev_issuer: true, so a "
                        "gateway with this config will refuse the token\n", cfg->path);
    EVP_PKEY *key = al_dev_issuer_key(cfg->server.data_dir, true);
    if (!key) {
        fprintf(stderr, "airlock token mint: cannot load or create the dev issuer key under "
                        "%s/dev-issuer\n", cfg->server.data_dir);
        free(gcopy);
        return 2;
    }
    al_mint_req_t req = {.subject = sub, .groups = groups, .n_groups = n_groups,
                         .audience = a->aud, .ttl = ttl, .now = al_now()};
    al_buf_t out;
    al_buf_init(&out);
    int rc = al_dev_issuer_mint(key, &req, &out);
    EVP_PKEY_free(key);
    free(gcopy);
    if (rc != AL_OK) {
        fputs("airlock token mint: signing failed\n", stderr);
        al_buf_free(&out);
        return 2;
    }
    printf("%.*s\n", (int)out.len, out.p);
    al_wipe(out.p, out.len);
    al_buf_free(&out);
    return 0;
}

/* Reads the token from stdin (at most 64 KiB), trimming whitespace. */
static char *read_stdin_token(size_t *len)
{
    size_t cap = 64 * 1024, n = 0;
    char *buf = al_xmalloc(cap + 1);
    size_t r;
    while (n < cap && (r = fread(buf + n, 1, cap - n, stdin)) > 0)
        n += r;
    buf[n] = 0;
    size_t s = 0;
    while (s < n && isspace((unsigned char)buf[s]))
        s++;
    while (n > s && isspace((unsigned char)buf[n - 1]))
        n--;
    memmove(buf, buf + s, n - s);
    buf[n - s] = 0;
    *len = n - s;
    return buf;
}

static int print_refusal(al_tok_status_t st, const al_verify_info_t *info)
{
    al_buf_t b;
    al_buf_init(&b);
    al_buf_puts(&b, "{\"error\":");
    al_buf_json_str(&b, al_tok_reason(st), strlen(al_tok_reason(st)));
    const char *d = info->detail ? info->detail : al_tok_reason_text(st);
    al_buf_puts(&b, ",\"detail\":");
    al_buf_json_str(&b, d, strlen(d));
    al_buf_puts(&b, "}");
    printf("%.*s\n", (int)b.len, b.p);
    al_buf_free(&b);
    return 1;
}

static int cmd_verify(const args_t *a, al_config_t *cfg)
{
    if (a->issuer && !al_config_issuer(cfg, a->issuer) &&
        !(cfg->dev_issuer && !strcmp(a->issuer, AL_DEV_ISS))) {
        fprintf(stderr, "airlock token verify: no issuer named '%s' in %s\n", a->issuer, cfg->path);
        return 2;
    }
    size_t len;
    char *tok;
    if (!a->token || !strcmp(a->token, "-")) {
        tok = read_stdin_token(&len);
    } else {
        tok = al_xstrdup(a->token);
        len = strlen(tok);
    }
    al_principal_t *p = NULL;
    al_verify_info_t info;
    int rc;
    al_tok_status_t st = al_cli_verify_token(cfg, tok, len, a->issuer, &p, &info);
    if (st == AL_TOK_OK) {
        al_buf_t b;
        al_buf_init(&b);
        al_principal_json(p, &b);
        printf("%.*s\n", (int)b.len, b.p);
        al_buf_free(&b);
        al_principal_unref(&p);
        rc = 0;
    } else if (st == AL_TOK_INTERNAL && !info.detail) {
        fputs("airlock token verify: cannot set up the verifier (see log above)\n", stderr);
        rc = 2;
    } else {
        rc = print_refusal(st, &info);
    }
    al_wipe(tok, len);
    free(tok);
    return rc;
}

int al_cmd_token(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    bool mint = !strcmp(argv[1], "mint");
    if (!mint && strcmp(argv[1], "verify")) {
        fprintf(stderr, "airlock token: unknown subcommand '%s' (mint or verify)\n\n", argv[1]);
        usage(stderr);
        return 2;
    }
    args_t a;
    int r = parse(argc, argv, mint, &a);
    if (r == 1) {
        usage(stdout);
        return 0;
    }
    if (r) {
        fputc('\n', stderr);
        usage(stderr);
        return 2;
    }
    al_config_t *cfg = al_cli_load_config(a.cfg);
    if (!cfg)
        return 2;
    /* stdout carries the result; stderr keeps only what needs attention. */
    if (al_log_get_level() < AL_LOG_WARN)
        al_log_set_level(AL_LOG_WARN);
    int rc = mint ? cmd_mint(&a, cfg) : cmd_verify(&a, cfg);
    al_config_free(cfg);
    return rc;
}
