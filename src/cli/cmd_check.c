/* cmd_check.c - `airlock check -c FILE`: validate a config file. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/config.h"
#include "policy/masking.h"
#include "policy/policy.h"

static void usage(FILE *f)
{
    fputs("usage: airlock check -c FILE\n\n"
          "Validates an airlock config file and prints every problem as\n"
          "FILE:LINE:COL: message.\n\n"
          "options:\n"
          "  -c, --config FILE   the config file to check\n"
          "  -h, --help          print this help\n\n"
          "exit status: 0 valid, 1 invalid or unreadable, 2 usage error\n",
          f);
}

/* Returns the config path, NULL after a usage error, or "" for --help. */
static const char *parse_args(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help"))
            return "";
        if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "airlock check: %s needs a FILE\n", a);
                return NULL;
            }
            path = argv[++i];
        } else if (!strncmp(a, "--config=", 9)) {
            path = a + 9;
        } else {
            fprintf(stderr, "airlock check: unknown argument '%s'\n", a);
            return NULL;
        }
    }
    if (!path || !*path)
        fputs("airlock check: a config file is required (-c FILE)\n", stderr);
    return path && *path ? path : NULL;
}

int al_cmd_check(int argc, char **argv)
{
    const char *path = parse_args(argc, argv);
    if (path && !*path) {
        usage(stdout);
        return 0;
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    al_config_errors_t errs;
    al_config_t *cfg = al_config_load(path, &errs);
    if (cfg) {
        /* Rules are checked against the loaded inventory and targets. */
        al_policy_t *pol = al_policy_compile(cfg, &errs);
        al_mask_set_t *ms = pol ? al_mask_set_build(cfg, &errs) : NULL;
        if (!ms) {
            al_config_free(cfg);
            cfg = NULL;
        }
        al_policy_free(&pol);
        al_mask_set_free(&ms);
    }
    if (cfg) {
        printf("%s: ok (%zu issuers, %zu agents, %zu targets, %zu policies)\n", path,
               cfg->n_issuers, cfg->n_agents, cfg->n_targets, cfg->n_policies);
        al_config_free(cfg);
        return 0;
    }
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "%s\n", errs.msgs[i]);
    if (!errs.read_errno)
        fprintf(stderr, "%s: %zu error(s)\n", path, errs.n);
    al_config_errors_free(&errs);
    return 1;
}
