/*
 * audit_config.c - the one place that maps the configuration to audit
 * options: where the store lives and how the writer behaves.
 */
#include <stdio.h>

#include "audit/audit.h"

const char *al_audit_path(const al_config_t *cfg, char *buf, size_t cap)
{
    int n;
    if (cfg && cfg->audit.path) /* audit.path; the loader defaults it */
        n = snprintf(buf, cap, "%s", cfg->audit.path);
    else
        n = snprintf(buf, cap, "%s/audit.db",
                     cfg && cfg->server.data_dir ? cfg->server.data_dir : ".");
    return n > 0 && (size_t)n < cap ? buf : NULL;
}

const char *al_audit_opts_from_config(const al_config_t *cfg, al_audit_opts_t *o, char *buf,
                                      size_t cap)
{
    memset(o, 0, sizeof *o);
    o->path = al_audit_path(cfg, buf, cap);
    if (cfg) {
        const al_audit_conf_t *c = &cfg->audit;
        o->max_action_bytes = c->max_action_bytes > 0 ? (size_t)c->max_action_bytes : 0;
        o->commit_timeout = c->commit_timeout;
        o->flush_interval = c->flush_interval;
        o->queue_capacity = c->queue_size > 0 ? (size_t)c->queue_size : 0;
    }
    return o->path;
}
