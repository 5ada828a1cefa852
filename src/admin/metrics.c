/*
 * metrics.c - Prometheus text exposition format 0.0.4: token verifications
 * by result and reason, JWKS fetches per issuer, reloads, uptime, build.
 */
#include <math.h>

#include "admin/admin.h"
#include "runtime/runtime.h"

/* Label values escape \, " and newline (exposition format spec). */
static void label(al_buf_t *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            al_buf_append(b, "\\", 1);
        if (*v == '\n')
            al_buf_puts(b, "\\n");
        else
            al_buf_append(b, v, 1);
    }
}

static void help(al_buf_t *b, const char *name, const char *type, const char *text)
{
    al_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

static void jwks_issuer(al_buf_t *b, al_runtime_t *rt, const char *name, int which)
{
    al_jwks_entry_t *e = al_jwks_mgr_entry(rt->jwks, name);
    if (!e)
        return;
    al_jwks_stats_t st;
    al_jwks_entry_stats(e, &st);
    switch (which) {
    case 0:
        al_buf_puts(b, "airlock_jwks_fetches_total{issuer=\"");
        label(b, name);
        al_buf_printf(b, "\",result=\"ok\"} %llu\n", (unsigned long long)st.fetch_ok);
        al_buf_puts(b, "airlock_jwks_fetches_total{issuer=\"");
        label(b, name);
        al_buf_printf(b, "\",result=\"error\"} %llu\n", (unsigned long long)st.fetch_err);
        break;
    case 1:
        al_buf_puts(b, "airlock_jwks_keys{issuer=\"");
        label(b, name);
        al_buf_printf(b, "\"} %zu\n", st.n_keys);
        break;
    default:
        al_buf_puts(b, "airlock_jwks_last_success_timestamp_seconds{issuer=\"");
        label(b, name);
        al_buf_printf(b, "\"} %.3f\n", st.last_success);
    }
}

int al_admin_metrics(al_runtime_t *rt, al_buf_t *b)
{
    const al_config_t *cfg = rt->snap->cfg;
    help(b, "airlock_build_info", "gauge", "Build information; the value is always 1.");
    al_buf_printf(b, "airlock_build_info{version=\"%s\"} 1\n", AL_VERSION);
    help(b, "airlock_uptime_seconds", "gauge", "Seconds since the gateway started.");
    al_buf_printf(b, "airlock_uptime_seconds %.3f\n", al_now() - rt->started);
    help(b, "airlock_workers", "gauge", "Worker threads.");
    al_buf_printf(b, "airlock_workers %d\n", rt->n_workers);
    help(b, "airlock_config_generation", "gauge", "Generation of the running config snapshot.");
    al_buf_printf(b, "airlock_config_generation %llu\n", (unsigned long long)rt->snap->gen);
    help(b, "airlock_config_reloads_total", "counter", "Config reloads by result.");
    al_buf_printf(b, "airlock_config_reloads_total{result=\"ok\"} %llu\n",
                  (unsigned long long)rt->reloads_ok);
    al_buf_printf(b, "airlock_config_reloads_total{result=\"error\"} %llu\n",
                  (unsigned long long)rt->reloads_err);

    help(b, "airlock_token_verifications_total", "counter",
         "Token verifications by result, reason and whether the verified-token cache answered.");
    for (int r = 0; r < AL_TOK__COUNT; r++) {
        for (int hit = 0; hit < 2; hit++) {
            uint64_t n = al_verify_count((al_tok_status_t)r, hit);
            if (hit && r != AL_TOK_OK && n == 0)
                continue; /* the cache only answers accepted tokens */
            al_buf_printf(b, "airlock_token_verifications_total{result=\"%s\",reason=\"%s\","
                             "cache=\"%s\"} %llu\n", r == AL_TOK_OK ? "accepted" : "refused",
                          al_tok_reason((al_tok_status_t)r), hit ? "hit" : "miss",
                          (unsigned long long)n);
        }
    }
    static const char *const names[] = {"airlock_jwks_fetches_total", "airlock_jwks_keys",
                                        "airlock_jwks_last_success_timestamp_seconds"};
    static const char *const types[] = {"counter", "gauge", "gauge"};
    static const char *const texts[] = {"JWKS fetch attempts per issuer by result.",
                                        "Usable keys in the issuer's current JWKS.",
                                        "When the issuer's JWKS was last fetched successfully."};
    for (int w = 0; w < 3; w++) {
        help(b, names[w], types[w], texts[w]);
        for (size_t i = 0; i < cfg->n_issuers; i++)
            jwks_issuer(b, rt, cfg->issuers[i].name, w);
        if (cfg->dev_issuer)
            jwks_issuer(b, rt, AL_DEV_ISSUER_NAME, w);
    }
    return b->oom ? AL_ERR : AL_OK;
}
