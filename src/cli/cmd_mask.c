/*
 * cmd_mask.c - `airlock mask`: run the masking config over stdin, so users
 * can try it on their own data. Masked text on stdout, a summary of what
 * was found on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "policy/masking.h"

#define MAX_INPUT (64u * 1024 * 1024)

static void usage(FILE *f)
{
    fputs("usage: airlock mask -c FILE (--target NAME | --detectors a,b) [--target NAME]\n\n"
          "Reads stdin, writes it masked to stdout and a summary of what was found to\n"
          "stderr. --target uses the masking entries that apply to that target (names\n"
          "referenced by policies are not included); --detectors masks with just those\n"
          "built-in detectors (style full).\n\n"
          "detectors: credit_card us_ssn email phone iban ip_address jwt aws_key\n"
          "           private_key api_key\n\n"
          "exit status: 0 ok, 1 masking failed, 2 usage or config error\n",
          f);
}

static al_mask_engine_t *engine_from_list(const char *list)
{
    al_mask_rule_t rules[AL_MASK_DET__COUNT];
    size_t n = 0;
    char *copy = al_xstrdup(list);
    for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ",")) {
        while (*tok == ' ')
            tok++;
        if (al_mask_det_from_name(tok) == AL_MASK_DET_NONE) {
            fprintf(stderr, "airlock mask: '%s' is not a detector\n", tok);
            free(copy);
            return NULL;
        }
        bool dup = false;
        for (size_t i = 0; i < n; i++)
            dup |= !strcmp(rules[i].name, tok);
        if (!dup && n < AL_ARRAY_LEN(rules))
            rules[n++] = (al_mask_rule_t){al_mask_det_name(al_mask_det_from_name(tok)), NULL,
                                          AL_MASK_STYLE_FULL};
    }
    free(copy);
    if (!n) {
        fputs("airlock mask: --detectors names no detector\n", stderr);
        return NULL;
    }
    al_mask_config_t mc = {.rules = rules, .n_rules = n};
    al_mask_engine_t *e = NULL;
    al_buf_t d;
    al_buf_init(&d);
    if (al_mask_compile(&mc, &e, &d) < 0)
        fprintf(stderr, "airlock mask: %s\n", d.len ? d.p : "cannot compile the detectors");
    al_buf_free(&d);
    return e;
}

int al_cmd_mask(int argc, char **argv)
{
    const char *cfgp = NULL, *target = NULL, *dets = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        const char **slot = !strcmp(a, "-c") || !strcmp(a, "--config") ? &cfgp
                            : !strcmp(a, "--target")                   ? &target
                            : !strcmp(a, "--detectors")                ? &dets
                                                                       : NULL;
        if (!slot || i + 1 >= argc) {
            fprintf(stderr, "airlock mask: %s '%s'\n\n", slot ? "missing value for" :
                    "unknown argument", a);
            usage(stderr);
            return 2;
        }
        *slot = argv[++i];
    }
    if (!cfgp || (!target && !dets)) {
        fputs("airlock mask: give -c FILE and --target NAME or --detectors a,b\n\n", stderr);
        usage(stderr);
        return 2;
    }
    al_config_t *cfg = al_cli_load_config(cfgp);
    if (!cfg)
        return 2;
    int rc = 2;
    al_mask_set_t *set = NULL;
    al_mask_engine_t *own = NULL, *eng = NULL;
    al_mask_scratch_t *scr = NULL;
    char *in = NULL;
    al_buf_t out;
    al_buf_init(&out);
    if (dets) {
        if (!(eng = own = engine_from_list(dets)))
            goto done;
    } else {
        if (!al_config_target(cfg, target)) {
            fprintf(stderr, "airlock mask: no target named '%s' in %s\n", target, cfgp);
            goto done;
        }
        al_config_errors_t errs;
        if (!(set = al_mask_set_build(cfg, &errs))) {
            for (size_t i = 0; i < errs.n; i++)
                fprintf(stderr, "%s\n", errs.msgs[i]);
            al_config_errors_free(&errs);
            goto done;
        }
        if (!(eng = al_mask_set_target(set, target))) {
            fprintf(stderr, "airlock mask: no masking entry applies to target '%s'; input "
                            "passed through unchanged\n", target);
        }
    }
    size_t len = 0, cap = 1 << 16;
    in = al_xmalloc(cap);
    size_t r;
    while ((r = fread(in + len, 1, cap - len, stdin)) > 0) {
        len += r;
        if (len == cap) {
            if (cap >= MAX_INPUT) {
                fprintf(stderr, "airlock mask: input over %u MiB\n", MAX_INPUT >> 20);
                rc = 1;
                goto done;
            }
            cap *= 2;
            in = realloc(in, cap);
            if (!in)
                goto done;
        }
    }
    al_mask_stats_t st = {0};
    al_mask_rc_t mr = AL_MASK_OK;
    if (eng) {
        if (al_mask_scratch_alloc(eng, &scr) < 0)
            goto done;
        mr = al_mask_buffer(eng, scr, in, len, &out, &st);
    }
    if (mr < 0) {
        fprintf(stderr, "airlock mask: %s\n", al_mask_strerror(mr));
        rc = 1;
        goto done;
    }
    if (mr == AL_MASK_MASKED)
        fwrite(out.p, 1, out.len, stdout);
    else
        fwrite(in, 1, len, stdout);
    fprintf(stderr, "airlock mask: %llu value(s) masked in %zu bytes", (unsigned long long)st.values,
            len);
    const char *sep = ": ";
    for (int d = 1; d < AL_MASK_DET__COUNT; d++)
        if (st.by_det[d]) {
            fprintf(stderr, "%s%s %llu", sep, al_mask_det_name((al_mask_det_t)d),
                    (unsigned long long)st.by_det[d]);
            sep = ", ";
        }
    fputc('\n', stderr);
    rc = 0;
done:
    free(in);
    al_buf_free(&out);
    al_mask_scratch_free(&scr);
    al_mask_engine_unref(&own);
    al_mask_set_free(&set);
    al_config_free(cfg);
    return rc;
}
