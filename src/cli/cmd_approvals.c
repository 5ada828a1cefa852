/*
 * cmd_approvals.c - `airlock approvals list|approve|deny` against a running
 * gateway's admin API (GET /v1/approvals, POST /v1/approvals/ID/approve,
 * POST /v1/approvals/ID/deny; docs/approvals.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/admin_client.h"
#include "cli/cli.h"

static void usage(FILE *f)
{
    fputs("usage: airlock approvals list [--state STATE] (-c FILE | --server URL --token-file "
          "PATH) [--json]\n"
          "       airlock approvals approve ID [--for DURATION] [--reason TEXT] (-c FILE | ...)\n"
          "       airlock approvals deny ID --reason TEXT (-c FILE | ...)\n\n"
          "list: approval requests, newest first: id, agent, target, rule, state, age\n"
          "and the action (cut to fit; --json prints the whole text). Needs the\n"
          "approver, auditor or admin role.\n"
          "  --state STATE       pending, approved, denied, timed_out, cancelled or abandoned\n\n"
          "approve: one approval of request ID. When the rule's min_approvals is\n"
          "reached, the request is approved and a grant is made. Needs the approver\n"
          "or admin role and one of the rule's approvers groups; nobody approves\n"
          "their own request.\n"
          "  --for DURATION      how long the grant lasts (1s to 7d), e.g. 15m\n"
          "  --reason TEXT       why; kept with the vote and in the audit log\n\n"
          "deny: ends request ID. The reason is required and reaches the agent.\n\n"
          AL_ADMIN_CLIENT_USAGE
          "\nexit status: 0 ok, 1 refused (the reason is printed), 2 usage or config\n"
          "error, 3 the gateway cannot be reached\n",
          f);
}

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s && *s ? s : "-";
}

/* "2026-01-05T10:00:00.000Z" -> seconds ago, as 42s / 7m / 3h / 2d. */
static void age_of(const char *rfc3339, char *out, size_t cap)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(rfc3339, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end) {
        snprintf(out, cap, "-");
        return;
    }
    double s = difftime(time(NULL), timegm(&tm));
    if (s < 0)
        s = 0;
    if (s < 90)
        snprintf(out, cap, "%.0fs", s);
    else if (s < 90 * 60)
        snprintf(out, cap, "%.0fm", s / 60);
    else if (s < 36 * 3600)
        snprintf(out, cap, "%.0fh", s / 3600);
    else
        snprintf(out, cap, "%.0fd", s / 86400);
}

/* The action on one line, cut to max bytes (control bytes shown as spaces;
 * the cut never splits a UTF-8 sequence). */
static void action_cell(const char *a, char *out, size_t max)
{
    size_t n = 0, len = strlen(a);
    for (size_t i = 0; i < len && n < max; i++) {
        unsigned char ch = (unsigned char)a[i];
        out[n++] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
    }
    if (n < len) {
        while (n && ((unsigned char)out[n - 1] & 0xc0) == 0x80)
            n--; /* drop a cut continuation ... */
        if (n && ((unsigned char)out[n - 1] & 0xc0) == 0xc0)
            n--; /* ... and its lead byte */
        if (n > 3)
            n -= 3;
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = 0;
}

static void print_human(json_t *arr)
{
    printf("%-36s  %-14s  %-12s  %-16s  %-9s  %5s  %s\n", "ID", "AGENT", "TARGET", "RULE",
           "STATE", "AGE", "ACTION");
    size_t i;
    json_t *r;
    json_array_foreach(arr, i, r) {
        char age[16], act[64 + 4];
        age_of(str(r, "requested_at"), age, sizeof age);
        action_cell(str(r, "action"), act, 60);
        printf("%-36s  %-14s  %-12s  %-16s  %-9s  %5s  %s\n", str(r, "id"), str(r, "agent"),
               str(r, "target"), str(r, "rule"), str(r, "state"), age, act);
    }
    printf("%zu request(s)\n", json_array_size(arr));
}

static void print_vote(const char *verb, json_t *o)
{
    const char *state = str(o, "state");
    if (!strcmp(verb, "deny")) {
        printf("request %s denied\n", str(o, "id"));
    } else if (!strcmp(state, "pending")) {
        printf("approval recorded for request %s (%lld of %lld); still pending\n", str(o, "id"),
               (long long)json_integer_value(json_object_get(o, "approvals")),
               (long long)json_integer_value(json_object_get(o, "needed")));
    } else {
        printf("request %s %s; grant %s (%s) until %s\n", str(o, "id"), state,
               str(o, "grant_id"), str(o, "grant_kind"), str(o, "grant_expires_at"));
    }
}

int al_cmd_approvals(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? AL_EXIT_USAGE : AL_EXIT_OK;
    }
    const char *sub = argv[1];
    bool list = !strcmp(sub, "list"), approve = !strcmp(sub, "approve"),
         deny = !strcmp(sub, "deny");
    if (!list && !approve && !deny) {
        fprintf(stderr, "airlock approvals: unknown subcommand '%s' (list, approve, deny)\n",
                sub);
        return AL_EXIT_USAGE;
    }
    al_admin_client_t c;
    al_admin_client_init(&c, "airlock approvals");
    const char *state = NULL, *grant_for = NULL, *reason = NULL, *id = NULL;
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
        const char **slot = list && !strcmp(s, "--state")      ? &state
                            : approve && !strcmp(s, "--for")    ? &grant_for
                            : !list && !strcmp(s, "--reason")   ? &reason
                                                                : NULL;
        if (slot) {
            if (i + 1 >= argc) {
                fprintf(stderr, "airlock approvals: %s needs a value\n", s);
                return AL_EXIT_USAGE;
            }
            *slot = argv[++i];
            continue;
        }
        if (!list && !id && s[0] != '-') {
            id = s;
            continue;
        }
        fprintf(stderr, "airlock approvals: unknown argument '%s'\n", s);
        return AL_EXIT_USAGE;
    }
    if (!list && !id) {
        fprintf(stderr, "airlock approvals %s: which request? (an ID from 'airlock approvals "
                        "list')\n", sub);
        return AL_EXIT_USAGE;
    }
    if (deny && (!reason || !*reason)) {
        fprintf(stderr, "airlock approvals deny: --reason TEXT is required (the agent is told "
                        "why)\n");
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
        al_buf_puts(&path, "/v1/approvals");
        if (state) {
            al_buf_puts(&path, "?state=");
            al_admin_path_seg(&path, state);
        }
    } else {
        al_buf_puts(&path, "/v1/approvals/");
        al_admin_path_seg(&path, id);
        al_buf_puts(&path, approve ? "/approve" : "/deny");
        al_buf_puts(&body, "{");
        if (grant_for) {
            al_buf_puts(&body, "\"for\":");
            al_buf_json_str(&body, grant_for, strlen(grant_for));
        }
        if (reason) {
            al_buf_puts(&body, grant_for ? ",\"reason\":" : "\"reason\":");
            al_buf_json_str(&body, reason, strlen(reason));
        }
        al_buf_puts(&body, "}");
    }
    al_admin_resp_t r;
    rc = al_admin_call(&c, list ? "GET" : "POST", path.p, list ? NULL : body.p, &r);
    if (rc == AL_EXIT_OK)
        rc = al_admin_check(&c, &r);
    if (rc == AL_EXIT_OK) {
        if (c.json)
            printf("%s\n", r.body.p);
        else if (list && json_is_array(r.json))
            print_human(r.json);
        else if (!list && json_is_object(r.json))
            print_vote(sub, r.json);
        else {
            fprintf(stderr, "airlock approvals: the server's answer is not what was expected\n");
            rc = AL_EXIT_REFUSED;
        }
    }
    al_admin_resp_free(&r);
    al_buf_free(&path);
    al_buf_free(&body);
    al_admin_client_close(&c);
    return rc;
}
