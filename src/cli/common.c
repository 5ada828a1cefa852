/* common.c - helpers shared by subcommands. */
#include <stdio.h>

#include "cli/cli.h"

al_config_t *al_cli_load_config(const char *cfg_path)
{
    al_config_errors_t errs;
    al_config_t *cfg = al_config_load(cfg_path, &errs);
    if (cfg)
        return cfg;
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "%s\n", errs.msgs[i]);
    if (!errs.read_errno)
        fprintf(stderr, "%s: %zu error(s); run 'airlock check -c %s'\n", cfg_path, errs.n, cfg_path);
    al_config_errors_free(&errs);
    return NULL;
}
