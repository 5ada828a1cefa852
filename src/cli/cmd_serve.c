/* cmd_serve.c - `airlock serve -c FILE`: run the gateway. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "runtime/runtime.h"

static void usage(FILE *f)
{
    fputs("usage: airlock serve -c FILE\n\n"
          "Runs the gateway: worker threads, the admin listener, JSON logs on\n"
          "stderr. SIGHUP re-reads FILE (an invalid file is logged and the\n"
          "running config kept); SIGTERM or SIGINT drains and exits 0.\n\n"
          "options:\n"
          "  -c, --config FILE   the config file\n"
          "  -h, --help          print this help\n\n"
          "exit status: 0 after a drain, 1 config or start-up error, 2 usage error\n",
          f);
}

int al_cmd_serve(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if ((!strcmp(a, "-c") || !strcmp(a, "--config")) && i + 1 < argc) {
            path = argv[++i];
        } else if (!strncmp(a, "--config=", 9)) {
            path = a + 9;
        } else {
            fprintf(stderr, "airlock serve: unknown or incomplete argument '%s'\n\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!path || !*path) {
        fputs("airlock serve: a config file is required (-c FILE)\n\n", stderr);
        usage(stderr);
        return 2;
    }
    al_config_t *cfg = al_cli_load_config(path);
    if (!cfg)
        return 1;
    return al_runtime_run(path, cfg);
}
