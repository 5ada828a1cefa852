/*
 * runtime.c - control loop, worker threads, reload and drain.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "admin/admin.h"
#include "audit/audit.h"
#include "proto/http/http_gateway.h"
#include "proto/tcp/tcp_gateway.h"
#include "proto/pg/pg_gateway.h"
#include "policy/masking.h"
#include "policy/policy.h"
#include "runtime/revoked.h"
#include "runtime/runtime.h"
#include "runtime/sessions.h"
#include "approvals/approvals.h"
#include "record/record.h"

#define TOKEN_CACHE_SLOTS 16384

static _Atomic int g_workers_exited;

int al_runtime_worker_count(const al_config_t *cfg)
{
    if (cfg->server.workers > 0)
        return cfg->server.workers;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)AL_MIN(n, 256) : 1;
}

/* Takes ownership of cfg, pol and ms. */
static al_snapshot_t *snapshot_new(al_runtime_t *rt, al_config_t *cfg, al_policy_t *pol,
                                   al_mask_set_t *ms)
{
    al_snapshot_t *s = al_xcalloc(1, sizeof *s);
    s->policy = pol;
    s->masks = ms;
    s->refs = 1;
    s->gen = ++rt->gen;
    s->cfg = cfg;
    s->loaded_at = al_now();
    al_jwks_mgr_sync(rt->jwks, cfg);
    s->verifier = al_verifier_new(cfg, rt->jwks, s->gen);
    return s;
}

/* ---- workers ------------------------------------------------------------ */

al_tok_status_t al_worker_verify(al_worker_t *w, const char *token, size_t len, double now,
                                 al_principal_t **out, al_verify_info_t *info)
{
    al_tok_status_t st = al_verify(w->snap->verifier, w->token_cache, token, len, NULL, now, out,
                                   info);
    const al_revoked_t *r = st == AL_TOK_OK ? al_revset_find(w->revoked, (*out)->agent) : NULL;
    if (r) {
        al_principal_unref(out);
        if (info) {
            info->detail = "this agent is disabled (airlock agents enable NAME restores it)";
            info->revoked_agent = r->agent;
        }
        return AL_TOK_REVOKED;
    }
    return st;
}

static void worker_on_close(uv_handle_t *h) { AL_UNUSED(h); }

static void worker_on_wake(uv_async_t *a)
{
    al_worker_t *w = a->data;
    pthread_mutex_lock(&w->inbox_lock);
    al_snapshot_t *snap = w->inbox_snap;
    bool stop = w->inbox_stop, force = w->inbox_force;
    al_revset_t *rev = w->inbox_rev;
    al_sess_kill_t *kills = w->inbox_kill;
    w->inbox_snap = NULL;
    w->inbox_rev = NULL;
    w->inbox_kill = NULL;
    pthread_mutex_unlock(&w->inbox_lock);
    if (snap) {
        al_snapshot_unref(&w->snap);
        w->snap = snap;
    }
    if (rev || kills)
        al_sess_worker_wake(w, rev, kills);
    if (stop) {
        al_pg_worker_drain(w, force);
        al_http_worker_drain(w, force);
        al_tcp_worker_drain(w, force);
    }
    /* The wake handle stays open while sessions drain, so a drain timeout
     * can still reach this worker; the gateway closes it at the last one. */
    if (stop && !w->active && !uv_is_closing((uv_handle_t *)&w->wake))
        uv_close((uv_handle_t *)&w->wake, worker_on_close);
}

static void *worker_main(void *arg)
{
    al_worker_t *w = arg;
    if (al_pg_worker_start(w) != AL_OK || al_http_worker_start(w) != AL_OK ||
        al_tcp_worker_start(w) != AL_OK)
        al_log(AL_LOG_ERROR, "a worker could not start its listeners", NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    al_pg_worker_free(w);
    al_http_worker_free(w);
    al_tcp_worker_free(w);
    al_snapshot_unref(&w->snap);
    al_revset_unref(&w->revoked);
    al_token_cache_free(&w->token_cache);
    atomic_fetch_add(&g_workers_exited, 1);
    return NULL;
}

int al_runtime_listen(al_runtime_t *rt, const al_listen_spec_t *spec, size_t set_off)
{
    al_listen_set_t *sets = al_xcalloc((size_t)rt->n_workers, sizeof *sets);
    int rc = al_listen_targets(rt->snap->cfg, spec, rt->n_workers, sets);
    for (int i = 0; rc == AL_OK && i < rt->n_workers; i++)
        *(al_listen_set_t *)((char *)&rt->workers[i] + set_off) = sets[i];
    free(sets);
    return rc;
}

void al_runtime_listen_close(al_runtime_t *rt, size_t set_off)
{
    if (!rt->workers)
        return;
    al_listen_set_t *sets = al_xcalloc((size_t)rt->n_workers, sizeof *sets);
    for (int i = 0; i < rt->n_workers; i++) {
        al_listen_set_t *ws = (al_listen_set_t *)((char *)&rt->workers[i] + set_off);
        sets[i] = *ws;
        *ws = (al_listen_set_t){0};
    }
    al_listen_close(sets, rt->n_workers);
    free(sets);
}

static int workers_start(al_runtime_t *rt)
{
    rt->n_workers = al_runtime_worker_count(rt->snap->cfg);
    rt->workers = al_xcalloc((size_t)rt->n_workers, sizeof *rt->workers);
    for (int i = 0; i < rt->n_workers; i++) {
        al_worker_t *w = &rt->workers[i];
        w->id = i;
        w->rt = rt;
        w->snap = al_snapshot_ref(rt->snap);
        w->revoked = al_revset_ref(rt->revoked);
        w->token_cache = al_token_cache_new(TOKEN_CACHE_SLOTS);
        pthread_mutex_init(&w->inbox_lock, NULL);
        if (uv_loop_init(&w->loop) != 0)
            return AL_ERR;
        if (uv_async_init(&w->loop, &w->wake, worker_on_wake) != 0) {
            uv_loop_close(&w->loop);
            return AL_ERR;
        }
        w->loop_inited = true;
        w->wake.data = w;
    }
    if (al_pg_listen_all(rt) != AL_OK || al_http_listen_all(rt) != AL_OK ||
        al_tcp_listen_all(rt) != AL_OK)
        return AL_ERR;
    for (int i = 0; i < rt->n_workers; i++) {
        if (pthread_create(&rt->workers[i].thread, NULL, worker_main, &rt->workers[i]) != 0)
            return AL_ERR;
        rt->workers[i].started = true;
    }
    return AL_OK;
}

static void workers_post_force(al_runtime_t *rt)
{
    for (int i = 0; i < rt->n_workers; i++) {
        al_worker_t *w = &rt->workers[i];
        pthread_mutex_lock(&w->inbox_lock);
        w->inbox_stop = w->inbox_force = true;
        pthread_mutex_unlock(&w->inbox_lock);
        uv_async_send(&w->wake);
    }
}

static void workers_post(al_runtime_t *rt, al_snapshot_t *snap, bool stop)
{
    for (int i = 0; i < rt->n_workers; i++) {
        al_worker_t *w = &rt->workers[i];
        pthread_mutex_lock(&w->inbox_lock);
        if (snap) {
            al_snapshot_unref(&w->inbox_snap);
            w->inbox_snap = al_snapshot_ref(snap);
        }
        w->inbox_stop |= stop;
        pthread_mutex_unlock(&w->inbox_lock);
        uv_async_send(&w->wake);
    }
}

static void workers_join(al_runtime_t *rt)
{
    for (int i = 0; i < rt->n_workers; i++) {
        al_worker_t *w = &rt->workers[i];
        if (w->started) {
            pthread_join(w->thread, NULL);
        } else if (w->token_cache) {
            /* Start-up failed before this worker ran: undo workers_start. */
            if (w->loop_inited) {
                uv_close((uv_handle_t *)&w->wake, NULL);
                uv_run(&w->loop, UV_RUN_NOWAIT);
            }
            al_snapshot_unref(&w->snap);
            al_revset_unref(&w->revoked);
            al_token_cache_free(&w->token_cache);
        }
        if (w->loop_inited)
            uv_loop_close(&w->loop);
        al_snapshot_unref(&w->inbox_snap);
        al_revset_unref(&w->inbox_rev);
        al_sess_kill_free(&w->inbox_kill);
        pthread_mutex_destroy(&w->inbox_lock);
    }
    al_pg_listen_close(rt);
    al_http_listen_close(rt);
    al_tcp_listen_close(rt);
    al_free(&rt->workers);
}

/* ---- reload ----------------------------------------------------------------- */

static void reload(al_runtime_t *rt)
{
    al_config_errors_t errs = {0};
    al_config_t *cfg = al_config_load(rt->config_path, &errs);
    al_policy_t *pol = cfg ? al_policy_compile(cfg, &errs) : NULL;
    al_mask_set_t *ms = pol ? al_mask_set_build(cfg, &errs) : NULL;
    if (cfg && !ms) {
        al_policy_free(&pol);
        al_config_free(cfg);
        cfg = NULL;
    }
    if (!cfg) {
        rt->reloads_err++;
        for (size_t i = 0; i < errs.n; i++)
            al_log(AL_LOG_ERROR, "config reload refused; keeping the running config", "error",
                   errs.msgs[i], NULL);
        al_config_errors_free(&errs);
        return;
    }
    al_config_errors_free(&errs);
    if (strcmp(cfg->audit.path, rt->snap->cfg->audit.path))
        al_log(AL_LOG_WARN, "audit.path takes effect only at restart", NULL);
    if (strcmp(cfg->server.admin_listen, rt->snap->cfg->server.admin_listen) ||
        strcmp(cfg->server.data_dir, rt->snap->cfg->server.data_dir) ||
        cfg->server.workers != rt->snap->cfg->server.workers)
        al_log(AL_LOG_WARN, "server.admin_listen, server.data_dir and server.workers take effect "
                            "only at restart", NULL);
    al_log_set_level(cfg->server.log_level);
    al_snapshot_t *s = snapshot_new(rt, cfg, pol, ms);
    workers_post(rt, s, false);
    al_snapshot_unref(&rt->snap);
    rt->snap = s;
    if (rt->approvals)
        al_approvals_configure(rt->approvals, s->cfg); /* webhook, public_url, limits */
    rt->reloads_ok++;
    char g[32];
    al_log(AL_LOG_INFO, "config reloaded", "path", rt->config_path, "generation",
           al_log_num(g, (int64_t)s->gen), NULL);
    if (cfg->dev_issuer)
        al_log(AL_LOG_WARN, "dev_issuer is enabled: tokens minted locally are trusted", NULL);
}

/* ---- drain -------------------------------------------------------------------- */

static void close_cb(uv_handle_t *h) { AL_UNUSED(h); }
static void appr_timer_close(al_runtime_t *rt);

static void finish(al_runtime_t *rt, bool timed_out)
{
    if (timed_out) {
        al_log(AL_LOG_WARN, "drain timeout reached; closing what is left", NULL);
        workers_post_force(rt);
    }
    uv_timer_stop(&rt->drain_timer);
    al_admin_close_all(rt->admin);
    appr_timer_close(rt);
    uv_close((uv_handle_t *)&rt->sig_term, close_cb);
    uv_close((uv_handle_t *)&rt->sig_int, close_cb);
    uv_close((uv_handle_t *)&rt->sig_hup, close_cb);
    uv_close((uv_handle_t *)&rt->drain_timer, close_cb);
}

static void on_drain_tick(uv_timer_t *t)
{
    al_runtime_t *rt = t->data;
    bool idle = al_admin_inflight(rt->admin) == 0 &&
                atomic_load(&g_workers_exited) == rt->n_workers;
    double deadline = rt->snap->cfg->server.drain_timeout;
    static double began;
    if (began == 0)
        began = al_now();
    if (idle || al_now() - began >= deadline)
        finish(rt, !idle);
}

static void drain(al_runtime_t *rt, const char *why)
{
    if (rt->draining)
        return;
    rt->draining = true;
    al_log(AL_LOG_INFO, "draining: no longer accepting; finishing in-flight work", "signal", why,
           NULL);
    al_admin_stop_accepting(rt->admin);
    workers_post(rt, NULL, true);
    uv_timer_start(&rt->drain_timer, on_drain_tick, 0, 20);
}

static void on_signal(uv_signal_t *s, int signum)
{
    al_runtime_t *rt = s->data;
    if (signum == SIGHUP && !rt->draining)
        reload(rt);
    else if (signum == SIGTERM || signum == SIGINT)
        drain(rt, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* ---- approvals timer ------------------------------------------------------------- */

/* al_approvals_tick writes (and fsyncs) when something is due, so it runs
 * on a uv pool thread; at most one tick is in flight. The timer is armed
 * for the next deadline the tick returned. */
static void appr_tick_work(uv_work_t *w)
{
    al_runtime_t *rt = w->data;
    double next = 0;
    if (al_approvals_tick(rt->approvals, al_now(), &next) < 0)
        next = al_now() + 5; /* the store failed: try again in a while */
    rt->appr_next = next;
}

#define AL_APPR_POLL_MS 1000.0

static void appr_tick(al_runtime_t *rt);
static void on_appr_timer(uv_timer_t *t);

static void appr_arm(al_runtime_t *rt)
{
    if (rt->appr_closed)
        return;
    /* A little past the deadline; and at least every AL_APPR_POLL_MS, so a
     * request raised by a caller that did not kick still times out on time
     * (a tick with nothing due is one read, no fsync). */
    double ms = rt->appr_next > 0 ? (rt->appr_next - al_now()) * 1000.0 + 5 : AL_APPR_POLL_MS;
    if (ms < 0)
        ms = 0;
    if (ms > AL_APPR_POLL_MS)
        ms = AL_APPR_POLL_MS;
    uv_timer_start(&rt->appr_timer, on_appr_timer, (uint64_t)ms, 0);
}

static void appr_tick_after(uv_work_t *w, int status)
{
    al_runtime_t *rt = w->data;
    AL_UNUSED(status);
    rt->appr_busy = false;
    if (rt->appr_again && !rt->appr_closed) {
        rt->appr_again = false;
        appr_tick(rt);
        return;
    }
    appr_arm(rt);
}

static void appr_tick(al_runtime_t *rt)
{
    if (rt->appr_closed || !rt->approvals)
        return;
    if (rt->appr_busy) {
        rt->appr_again = true;
        return;
    }
    rt->appr_busy = true;
    rt->appr_work.data = rt;
    if (uv_queue_work(rt->loop, &rt->appr_work, appr_tick_work, appr_tick_after) != 0)
        rt->appr_busy = false;
}

static void on_appr_timer(uv_timer_t *t) { appr_tick(t->data); }
static void on_appr_kick(uv_async_t *h) { appr_tick(h->data); }

void al_runtime_approvals_kick(al_runtime_t *rt)
{
    if (!rt)
        return;
    pthread_mutex_lock(&rt->appr_lock);
    if (rt->appr_started && !rt->appr_closed)
        uv_async_send(&rt->appr_kick);
    pthread_mutex_unlock(&rt->appr_lock);
}

static void appr_timer_start(al_runtime_t *rt)
{
    uv_timer_init(rt->loop, &rt->appr_timer);
    uv_async_init(rt->loop, &rt->appr_kick, on_appr_kick);
    rt->appr_timer.data = rt->appr_kick.data = rt;
    pthread_mutex_lock(&rt->appr_lock);
    rt->appr_started = true;
    pthread_mutex_unlock(&rt->appr_lock);
    appr_tick(rt); /* the first deadline (requests that survived a restart) */
}

static void appr_timer_close(al_runtime_t *rt)
{
    pthread_mutex_lock(&rt->appr_lock);
    bool started = rt->appr_started && !rt->appr_closed;
    rt->appr_closed = true;
    pthread_mutex_unlock(&rt->appr_lock);
    if (!started)
        return;
    uv_timer_stop(&rt->appr_timer);
    uv_close((uv_handle_t *)&rt->appr_timer, close_cb);
    uv_close((uv_handle_t *)&rt->appr_kick, close_cb);
}

/* ---- run ------------------------------------------------------------------------- */

/* The kill switch (control thread): a disabled agent's pending approval
 * requests are cancelled and its grants revoked. */
static void cancel_approvals_of(void *ud, const char *agent, const char *reason,
                                const char *by)
{
    AL_UNUSED(reason);
    AL_UNUSED(by);
    if (al_approvals_cancel_agent(ud, agent, "agent_disabled", al_now()) < 0)
        al_log(AL_LOG_ERROR, "cannot cancel the disabled agent's approval requests", "agent",
               agent, NULL);
}

int al_runtime_run(const char *config_path, al_config_t *cfg)
{
    /* Each session holds a client and an upstream socket: raise the soft
     * descriptor limit to the hard one, as proxies do. */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }
    al_runtime_t rt;
    memset(&rt, 0, sizeof rt);
    rt.config_path = al_xstrdup(config_path);
    rt.loop = uv_default_loop();
    rt.started = al_now();
    pthread_mutex_init(&rt.appr_lock, NULL);
    al_log_set_level(cfg->server.log_level);
    signal(SIGPIPE, SIG_IGN);

    if (al_mkdir_p(cfg->server.data_dir, 0700) != AL_OK) {
        al_log(AL_LOG_ERROR, "cannot create server.data_dir", "path", cfg->server.data_dir,
               "error", strerror(errno), NULL);
        al_config_free(cfg);
        free(rt.config_path);
        return 1;
    }
    /* Revocations before any listener opens: a disabled agent must not get
     * in during start-up. An unreadable file stops the start (fail closed). */
    char rerr[1024];
    if (al_revset_load(cfg->server.data_dir, &rt.revoked, rerr, sizeof rerr) != AL_OK) {
        al_log(AL_LOG_ERROR, "cannot load the kill switch's revocations; not starting", "error",
               rerr, NULL);
        al_config_free(cfg);
        free(rt.config_path);
        return 1;
    }
    if (al_revset_count(rt.revoked)) {
        char nrev[32];
        al_log(AL_LOG_INFO, "disabled agents loaded", "count",
               al_log_num(nrev, (int64_t)al_revset_count(rt.revoked)), NULL);
    }
    rt.sessions = al_sess_reg_new(cfg->server.data_dir);
    rt.jwks = al_jwks_mgr_new(false);
    al_config_errors_t perrs;
    al_policy_t *pol = al_policy_compile(cfg, &perrs);
    al_mask_set_t *ms = pol ? al_mask_set_build(cfg, &perrs) : NULL;
    if (!ms) { /* al_cli_load_config already checked; a race with an edit */
        al_policy_free(&pol);
        for (size_t i = 0; i < perrs.n; i++)
            al_log(AL_LOG_ERROR, "invalid policy", "error", perrs.msgs[i], NULL);
        al_config_errors_free(&perrs);
        al_config_free(cfg);
        free(rt.config_path);
        al_revset_unref(&rt.revoked);
        al_sess_reg_free(&rt.sessions);
        return 1;
    }
    rt.snap = snapshot_new(&rt, cfg, pol, ms);
    if (cfg->dev_issuer)
        al_log(AL_LOG_WARN, "dev_issuer is enabled: tokens minted locally are trusted; never "
                            "enable it in production", NULL);
    al_jwks_mgr_start(rt.jwks);

    int rc = 1;
    char aerr[AL_AUDIT_ERR_SIZE];
    al_audit_opts_t ao = {.path = cfg->audit.path,
                          .max_action_bytes = (size_t)cfg->audit.max_action_bytes,
                          .commit_timeout = cfg->audit.commit_timeout,
                          .flush_interval = cfg->audit.flush_interval,
                          .queue_capacity = (size_t)cfg->audit.queue_size};
    if (al_audit_open(&ao, &rt.audit, aerr, sizeof aerr) != AL_OK) {
        /* Fail closed: no gateway without its audit log. */
        al_log(AL_LOG_ERROR, "cannot open the audit store; not starting", "path",
               cfg->audit.path, "error", aerr, NULL);
        goto out;
    }
    /* Approvals before any listener: pending `wait` requests of the last
     * run are marked abandoned (their clients are gone). Fail closed. */
    char apath[4096], apperr[AL_APPROVALS_ERR_SIZE];
    al_approvals_opts_t apo = {.cfg = cfg};
    apo.path = al_approvals_path(cfg, apath, sizeof apath);
    if (!apo.path || al_approvals_open(&apo, &rt.approvals, apperr, sizeof apperr) != AL_OK) {
        al_log(AL_LOG_ERROR, "cannot open the approvals store; not starting", "error",
               apo.path ? apperr : "approvals path too long", NULL);
        goto out;
    }
    al_killswitch_on_revoke(&rt, cancel_approvals_of, rt.approvals);
    if (cfg->recordings.enabled) {
        /* Fail closed: sessions are not served unrecorded. */
        char rdir[4096], recerr[600];
        al_rec_opts_t ro = {.dir = al_rec_dir(cfg, rdir, sizeof rdir),
                            .retain = cfg->recordings.retain,
                            .max_bytes = (uint64_t)cfg->recordings.max_bytes,
                            .on_failure = (al_rec_failure_t)cfg->recordings.on_failure,
                            .n_workers = al_runtime_worker_count(cfg)};
        if (!ro.dir || al_recorder_open(&ro, rt.audit, &rt.recorder, recerr, sizeof recerr) != AL_OK) {
            al_log(AL_LOG_ERROR, "cannot start session recording; not starting", "error",
                   ro.dir ? recerr : "recordings path too long", NULL);
            goto out;
        }
    }
    rt.admin = al_admin_new(&rt);
    if (al_admin_bootstrap(rt.admin, cfg->server.data_dir) != AL_OK)
        goto out;
    if (al_admin_listen(rt.admin, cfg->server.admin_listen) != AL_OK)
        goto out;
    if (workers_start(&rt) != AL_OK) {
        al_log(AL_LOG_ERROR, "cannot start worker threads", NULL);
        goto out;
    }
    uv_signal_init(rt.loop, &rt.sig_term);
    uv_signal_init(rt.loop, &rt.sig_int);
    uv_signal_init(rt.loop, &rt.sig_hup);
    uv_timer_init(rt.loop, &rt.drain_timer);
    rt.sig_term.data = rt.sig_int.data = rt.sig_hup.data = rt.drain_timer.data = &rt;
    uv_signal_start(&rt.sig_term, on_signal, SIGTERM);
    uv_signal_start(&rt.sig_int, on_signal, SIGINT);
    uv_signal_start(&rt.sig_hup, on_signal, SIGHUP);
    appr_timer_start(&rt);

    char n[32], pid[32];
    al_log(AL_LOG_INFO, "airlock serving", "version", AL_VERSION, "admin", cfg->server.admin_listen,
           "workers", al_log_num(n, rt.n_workers), "pid", al_log_num(pid, getpid()), "config",
           config_path, NULL);
    uv_run(rt.loop, UV_RUN_DEFAULT);
    workers_join(&rt);
    al_log(AL_LOG_INFO, "airlock stopped", NULL);
    rc = 0;
out:
    if (rc != 0 && rt.workers) {
        workers_post(&rt, NULL, true);
        workers_join(&rt);
    }
    if (rc != 0 && rt.admin) {
        al_admin_close_all(rt.admin);
        uv_run(rt.loop, UV_RUN_NOWAIT);
    }
    appr_timer_close(&rt); /* (no-op when finish() closed it) */
    /* Workers are gone: the recorder writes their last lines and the
     * closing audit events, before the audit log closes. */
    al_recorder_close(&rt.recorder);
    /* Commits what is queued; strict callbacks reach the admin's queue,
     * which is freed next without a loop to answer on. */
    al_audit_close(&rt.audit);
    al_admin_free(&rt.admin);
    al_approvals_close(&rt.approvals);
    uv_loop_close(rt.loop);
    al_jwks_mgr_free(&rt.jwks);
    al_snapshot_unref(&rt.snap);
    al_revset_unref(&rt.revoked);
    al_sess_reg_free(&rt.sessions);
    free(rt.config_path);
    pthread_mutex_destroy(&rt.appr_lock);
    return rc;
}
