/*
 * cmd_sessions.c - `airlock sessions list` and `airlock sessions kill ID`,
 * against a running gateway's admin API (GET /v1/sessions,
 * POST /v1/sessions/ID/kill).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/admin_client.h"
#include "cli/cli.h"

static void usage(FILE *f)
{
    fputs("usage: airlock sessions list [--agent NAME] (-c FILE | --server URL --token-file PATH) "
          "[--json]\n"
          "       airlock sessions kill ID [--reason TEXT] (-c FILE | --server URL --token-file "
          "PATH) [--json]\n\n"
          "list: the gateway's live sessions on every protocol: id, agent, target,\n"
          "protocol, client address, start, bytes each way, actions (needs the\n"
          "auditor or admin role).\n"
          "  --agent NAME        only this agent's sessions\n\n"
          "kill: ends one session now (PostgreSQL clients get FATAL 57P01 with the\n"
          "reason; HTTP and tunnel connections are closed). Needs the admin role.\n"
          "  --reason TEXT       why; kept in the audit log and shown to the client\n\n"
          AL_ADMIN_CLIENT_USAGE
          "\nexit status: 0 ok, 1 refused or no such session, 2 usage or config error,\n"
          "3 the gateway cannot be reached\n",
          f);
}

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "-";
}

static void print_human(json_t *doc)
{
    json_t *arr = json_object_get(doc, "sessions");
    printf("%-36s  %-14s  %-12s  %-8s  %-21s  %-20s  %10s  %10s  %7s\n", "ID", "AGENT", "TARGET",
           "PROTO", "CLIENT", "STARTED", "BYTES_UP", "BYTES_DOWN", "ACTIONS");
    size_t i;
    json_t *s;
    json_array_foreach(arr, i, s) {
        char started[24];
        snprintf(started, sizeof started, "%.19sZ", str(s, "started")); /* to the second */
        printf("%-36s  %-14s  %-12s  %-8s  %-21s  %-20s  %10lld  %10lld  %7lld\n", str(s, "id"),
               str(s, "agent"), str(s, "target"), str(s, "protocol"), str(s, "client"),
               started, (long long)json_integer_value(json_object_get(s, "bytes_up")),
               (long long)json_integer_value(json_object_get(s, "bytes_down")),
               (long long)json_integer_value(json_object_get(s, "actions")));
    }
    printf("%zu session(s)\n", json_array_size(arr));
}

int al_cmd_sessions(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? AL_EXIT_USAGE : AL_EXIT_OK;
    }
    bool list = !strcmp(argv[1], "list"), kill = !strcmp(argv[1], "kill");
    if (!list && !kill) {
        fprintf(stderr, "airlock sessions: unknown subcommand '%s' (list, kill)\n", argv[1]);
        return AL_EXIT_USAGE;
    }
    al_admin_client_t c;
    al_admin_client_init(&c, "airlock sessions");
    const char *agent = NULL, *reason = NULL, *id = NULL;
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
        const char **slot = list && !strcmp(s, "--agent") ? &agent
                            : kill && !strcmp(s, "--reason") ? &reason
                                                              : NULL;
        if (slot) {
            if (i + 1 >= argc) {
                fprintf(stderr, "airlock sessions: %s needs a value\n", s);
                return AL_EXIT_USAGE;
            }
            *slot = argv[++i];
            continue;
        }
        if (kill && !id && s[0] != '-') {
            id = s;
            continue;
        }
        fprintf(stderr, "airlock sessions: unknown argument '%s'\n", s);
        return AL_EXIT_USAGE;
    }
    if (kill && !id) {
        fprintf(stderr, "airlock sessions kill: which session? (an ID from 'airlock sessions "
                        "list')\n");
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
    if (list) {
        al_buf_puts(&path, "/v1/sessions");
        if (agent) {
            al_buf_puts(&path, "?agent=");
            al_admin_path_seg(&path, agent);
        }
    } else {
        al_buf_puts(&path, "/v1/sessions/");
        al_admin_path_seg(&path, id);
        al_buf_puts(&path, "/kill");
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
            print_human(r.json);
        else
            printf("session %s killed\n", id);
    }
    al_admin_resp_free(&r);
    al_buf_free(&path);
    al_buf_free(&body);
    al_admin_client_close(&c);
    return rc;
}
