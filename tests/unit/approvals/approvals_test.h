/* approvals_test.h - helpers shared by the approvals unit tests: a temp
 * data dir, a config with approve rules, the service opened on it. */
#ifndef AL_APPROVALS_TEST_H
#define AL_APPROVALS_TEST_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "approvals/approvals.h"

typedef struct fx {
    char dir[64];
    char db[128];
    al_config_t *cfg;
    al_approvals_t *a;
} fx_t;

/* Loads yaml (with "@DIR@" replaced by the temp dir) as the config. */
static inline al_config_t *fx_config(fx_t *f, const char *yaml)
{
    al_buf_t b;
    al_buf_init(&b);
    for (const char *p = yaml; *p;) {
        const char *m = strstr(p, "@DIR@");
        if (!m) {
            al_buf_puts(&b, p);
            break;
        }
        al_buf_append(&b, p, (size_t)(m - p));
        al_buf_puts(&b, f->dir);
        p = m + 5;
    }
    al_config_errors_t e;
    al_config_t *cfg = al_config_load_mem("/tmp/t.yaml", b.p, b.len, &e);
    if (!cfg)
        fail_msg("config: %s", e.n ? e.msgs[0] : "?");
    al_buf_free(&b);
    return cfg;
}

static inline void fx_dir(fx_t *f)
{
    snprintf(f->dir, sizeof f->dir, "/tmp/al-appr-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof f->db, "%s/approvals.db", f->dir);
}

static inline void fx_open_at(fx_t *f, double now, double backoff)
{
    char err[AL_APPROVALS_ERR_SIZE];
    char path[256];
    assert_non_null(al_approvals_path(f->cfg, path, sizeof path));
    al_approvals_opts_t o = {.path = path, .now = now, .cfg = f->cfg,
                             .notify_backoff = backoff};
    if (al_approvals_open(&o, &f->a, err, sizeof err) != AL_OK)
        fail_msg("open: %s", err);
}

/* Removes the files of the (flat) directory, then the directory. */
static inline void fx_rmdir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static inline void fx_done(fx_t *f)
{
    al_approvals_close(&f->a);
    assert_null(f->a);
    al_config_free(f->cfg);
    fx_rmdir(f->dir);
}

static inline const al_policy_conf_t *fx_rule(const fx_t *f, const char *name)
{
    for (size_t i = 0; i < f->cfg->n_policies; i++)
        if (!strcmp(f->cfg->policies[i].name, name))
            return &f->cfg->policies[i];
    fail_msg("no rule %s", name);
    return NULL;
}

#endif
