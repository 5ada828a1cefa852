/* main.c - CLI dispatch only. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/core.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} cmds[] = {
    {"serve", al_cmd_serve, "run the gateway"},
    {"check", al_cmd_check, "validate a config file (errors carry FILE:LINE:COL)"},
    {"token", al_cmd_token, "mint dev tokens, verify any token against the config"},
    {"audit", al_cmd_audit, "verify the audit chain, query audit events"},
    {"policy", al_cmd_policy, "explain the policy decision for an action"},
    {"mask", al_cmd_mask, "mask stdin with the masking config (try it on your data)"},
    {"sessions", al_cmd_sessions, "list a running gateway's live sessions, kill one"},
    {"agents", al_cmd_agents, "agent inventory and the kill switch (disable, enable)"},
    {"approvals", al_cmd_approvals, "list approval requests, approve or deny one"},
    {"replay", al_cmd_replay, "show a recorded session as it happened"},
};

static void usage(FILE *f)
{
    fprintf(f, "airlock %s - identity-aware gateway for autonomous agents\n\n"
               "usage: airlock <command> [options]\n\ncommands:\n", AL_VERSION);
    for (size_t i = 0; i < AL_ARRAY_LEN(cmds); i++)
        fprintf(f, "  %-10s %s\n", cmds[i].name, cmds[i].summary);
    fprintf(f, "  %-10s %s\n", "version", "print the version");
    fprintf(f, "\nRun 'airlock <command> --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *c = argv[1];
    if (!strcmp(c, "--help") || !strcmp(c, "-h") || !strcmp(c, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(c, "version") || !strcmp(c, "--version")) {
        printf("airlock %s\n", AL_VERSION);
        return 0;
    }
    for (size_t i = 0; i < AL_ARRAY_LEN(cmds); i++)
        if (!strcmp(c, cmds[i].name))
            return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "airlock: unknown command '%s'\n\n", c);
    usage(stderr);
    return 2;
}
