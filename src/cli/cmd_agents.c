/*
 * cmd_agents.c - `airlock agents list|disable|enable`: the agent inventory
 * as a running gateway sees it, and the kill switch (GET /v1/agents,
 * POST /v1/agents/NAME/disable, POST /v1/agents/NAME/enable).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/admin_client.h"
#include "cli/cli.h"

static void usage(FILE *f)
{
    fputs("usage: airlock agents list (-c FILE | --server URL --token-file PATH) [--json]\n"
          "       airlock agents disable NAME [--reason TEXT] (-c FILE | ...) [--json]\n"
          "       airlock agents enable NAME (-c FILE | ...) [--json]\n\n"
          "list: every inventory agent with its owner, system, groups, when it was\n"
          "last seen (since the gateway started), its live sessions and its status\n"
          "(needs the auditor or admin role).\n\n"
          "disable: the kill switch. At once, every live session of the agent on\n"
          "every protocol ends, its tokens are refused (reason \"revoked\") and its\n"
          "held approvals are cancelled. The revocation is saved under\n"
          "server.data_dir and survives restarts until 'agents enable'. Needs the\n"
          "admin role.\n"
          "  --reason TEXT       why; audited and shown to PostgreSQL clients\n\n"
          "enable: lifts a revocation (admin role).\n\n"
          AL_ADMIN_CLIENT_USAGE
          "\nexit status: 0 ok, 1 refused or no such agent, 2 usage or config error,\n"
          "3 the gateway cannot be reached\n",
          f);
}

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s && *s ? s : "-";
}

static void print_list(json_t *doc)
{
    json_t *arr = json_object_get(doc, "agents");
    printf("%-16s  %-22s  %-12s  %-20s  %-20s  %-8s  %8s\n", "NAME", "OWNER", "SYSTEM", "GROUPS",
           "LAST_SEEN", "STATUS", "SESSIONS");
    size_t i;
    json_t *a;
    json_array_foreach(arr, i, a) {
        char groups[128] = "";
        size_t off = 0, j;
        json_t *g;
        json_array_foreach(json_object_get(a, "groups"), j, g) {
            int n = snprintf(groups + off, sizeof groups - off, "%s%s", j ? "," : "",
                             json_string_value(g));
            if (n < 0 || (size_t)n >= sizeof groups - off)
                break;
            off += (size_t)n;
        }
        char seen[24] = "never";
        if (json_is_string(json_object_get(a, "last_seen")))
            snprintf(seen, sizeof seen, "%.19sZ", str(a, "last_seen"));
        printf("%-16s  %-22s  %-12s  %-20s  %-20s  %-8s  %8lld\n", str(a, "name"),
               str(a, "owner"), str(a, "system"), groups[0] ? groups : "-", seen,
               str(a, "status"), (long long)json_integer_value(json_object_get(a, "sessions")));
        json_t *d = json_object_get(a, "disabled");
        if (json_is_object(d))
            printf("  disabled %s by %s: %s\n", str(d, "at"), str(d, "by"), str(d, "reason"));
    }
}

int al_cmd_agents(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? AL_EXIT_USAGE : AL_EXIT_OK;
    }
    const char *sub = argv[1];
    bool list = !strcmp(sub, "list"), disable = !strcmp(sub, "disable"),
         enable = !strcmp(sub, "enable");
    if (!list && !disable && !enable) {
        fprintf(stderr, "airlock agents: unknown subcommand '%s' (list, disable, enable)\n", sub);
        return AL_EXIT_USAGE;
    }
    al_admin_client_t c;
    al_admin_client_init(&c, "airlock agents");
    const char *name = NULL, *reason = NULL;
    for (int i = 2; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            usage(stdout);
            return AL_EXIT_OK;
        }
        int k = al_admin_client_opt(&c, argc, argv, &i);
        if (k < 0)
            return AL_EXIT_USAGE;
        if (k)
            continue;
        if (disable && !strcmp(s, "--reason")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "airlock agents: --reason needs a value\n");
                return AL_EXIT_USAGE;
            }
            reason = argv[++i];
            continue;
        }
        if (!list && !name && s[0] != '-') {
            name = s;
            continue;
        }
        fprintf(stderr, "airlock agents: unknown argument '%s'\n", s);
        return AL_EXIT_USAGE;
    }
    if (!list && (!name || !*name)) {
        fprintf(stderr, "airlock agents %s: which agent? (a NAME from 'airlock agents list')\n",
                sub);
        return AL_EXIT_USAGE;
    }
    int rc = al_admin_client_open(&c);
    if (rc != AL_EXIT_OK) {
        al_admin_client_close(&c);
        return rc;
    }
    al_buf_t path, body;
    al_buf_init(&path);
    al_buf_init(&body);
    al_buf_puts(&path, "/v1/agents");
    if (!list) {
        al_buf_puts(&path, "/");
        al_admin_path_seg(&path, name);
        al_buf_puts(&path, disable ? "/disable" : "/enable");
        if (reason) {
            al_buf_puts(&body, "{\"reason\":");
            al_buf_json_str(&body, reason, strlen(reason));
            al_buf_puts(&body, "}");
        }
    }
    al_admin_resp_t r;
    rc = al_admin_call(&c, list ? "GET" : "POST", path.p, body.len ? body.p : NULL, &r);
    if (rc == AL_EXIT_OK)
        rc = al_admin_check(&c, &r);
    if (rc == AL_EXIT_OK) {
        if (c.json)
            printf("%s\n", r.body.p);
        else if (list)
            print_list(r.json);
        else if (disable)
            printf("agent %s disabled: %lld live session(s) ended, its tokens are refused\n",
                   name, (long long)json_integer_value(json_object_get(r.json, "sessions_ended")));
        else
            printf("agent %s enabled%s\n", name,
                   json_is_true(json_object_get(r.json, "was_disabled")) ? ""
                                                                        : " (it was not disabled)");
    }
    al_admin_resp_free(&r);
    al_buf_free(&path);
    al_buf_free(&body);
    al_admin_client_close(&c);
    return rc;
}
