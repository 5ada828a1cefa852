/*
 * jwks_cache.c - per-issuer JWK Sets: fetch, refresh, staleness, refetch.
 *
 * One fetch thread does all network and file I/O; worker threads only take
 * the manager's mutex for a pointer copy and a reference count on the cold
 * path. Policy (RFC 7517 §5, OIDC Core §10.1.1 key rotation):
 *  - refresh every min(max-age, jwks_refresh_interval), at least every 60 s
 *    apart unless the interval itself is shorter;
 *  - an unknown kid schedules a refetch at most once per
 *    jwks_refetch_interval (default 30 s) per issuer;
 *  - on failure keep serving the last good keys, retry with backoff, and
 *    stop serving them once the last success is older than
 *    jwks_max_staleness (fail closed).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "identity/fetch.h"
#include "identity/identity.h"
#include "identity/jws.h"

#include <openssl/evp.h>

typedef struct waiter {
    void (*fn)(void *);
    void *arg;
    uint64_t ticket;
    struct waiter *next;
} waiter_t;

struct al_jwks_entry {
    al_jwks_mgr_t *mgr;
    char *name, *issuer, *jwks_uri, *jwks_file, *dev_dir;
    double refresh_interval, refetch_interval, max_staleness;
    /* protected by mgr->lock */
    al_keyset_t *keys;
    double last_success, next_fetch, last_refetch, backoff;
    bool wanted;          /* a refetch was requested */
    bool fetching;
    uint64_t started, done; /* fetch attempt counters (tickets) */
    uint64_t ok, err;
    waiter_t *waiters;
    struct al_jwks_entry *next;
};

struct al_jwks_mgr {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t thread;
    bool running, stop, offline;
    al_jwks_entry_t *entries;
};

al_jwks_mgr_t *al_jwks_mgr_new(bool offline)
{
    al_jwks_mgr_t *m = al_xcalloc(1, sizeof *m);
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->cond, NULL);
    m->offline = offline;
    return m;
}

static void entry_free(al_jwks_entry_t *e)
{
    al_keyset_unref(&e->keys);
    for (waiter_t *w = e->waiters, *n; w; w = n) {
        n = w->next;
        free(w);
    }
    free(e->name);
    free(e->issuer);
    free(e->jwks_uri);
    free(e->jwks_file);
    free(e->dev_dir);
    free(e);
}

void al_jwks_mgr_free(al_jwks_mgr_t **pm)
{
    al_jwks_mgr_t *m = *pm;
    if (!m)
        return;
    if (m->running) {
        pthread_mutex_lock(&m->lock);
        m->stop = true;
        pthread_cond_signal(&m->cond);
        pthread_mutex_unlock(&m->lock);
        pthread_join(m->thread, NULL);
    }
    for (al_jwks_entry_t *e = m->entries, *n; e; e = n) {
        n = e->next;
        entry_free(e);
    }
    pthread_mutex_destroy(&m->lock);
    pthread_cond_destroy(&m->cond);
    al_free(pm);
}

static bool same(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }

static al_jwks_entry_t *find(al_jwks_mgr_t *m, const char *name)
{
    for (al_jwks_entry_t *e = m->entries; e; e = e->next)
        if (!strcmp(e->name, name))
            return e;
    return NULL;
}

/* Adds or updates the entry for one issuer; a changed key source starts
 * over with no keys. Called with the lock held. */
static void upsert(al_jwks_mgr_t *m, const char *name, const char *issuer, const char *uri,
                   const char *file, const char *dev_dir, const al_issuer_conf_t *c)
{
    al_jwks_entry_t *e = find(m, name);
    if (e && (!same(e->issuer, issuer) || !same(e->jwks_uri, uri) || !same(e->jwks_file, file) ||
              !same(e->dev_dir, dev_dir))) {
        al_keyset_unref(&e->keys);
        e->last_success = 0;
        free(e->issuer);
        free(e->jwks_uri);
        free(e->jwks_file);
        free(e->dev_dir);
        e->issuer = e->jwks_uri = e->jwks_file = e->dev_dir = NULL;
        e->next_fetch = 0;
    } else if (e) {
        goto settings;
    }
    if (!e) {
        e = al_xcalloc(1, sizeof *e);
        e->mgr = m;
        e->name = al_xstrdup(name);
        e->next = m->entries;
        m->entries = e;
    }
    e->issuer = issuer ? al_xstrdup(issuer) : NULL;
    e->jwks_uri = uri ? al_xstrdup(uri) : NULL;
    e->jwks_file = file ? al_xstrdup(file) : NULL;
    e->dev_dir = dev_dir ? al_xstrdup(dev_dir) : NULL;
settings:
    if (c) {
        e->refresh_interval = c->jwks_refresh_interval > 0 ? c->jwks_refresh_interval : 3600;
        e->refetch_interval = c->jwks_refetch_interval > 0 ? c->jwks_refetch_interval : 30;
        e->max_staleness = c->jwks_max_staleness > 0 ? c->jwks_max_staleness : 86400;
    } else { /* dev issuer: a local file that does not go stale */
        e->refresh_interval = 3600;
        e->refetch_interval = 30;
        e->max_staleness = 1e12;
    }
}

int al_jwks_mgr_sync(al_jwks_mgr_t *m, const al_config_t *cfg)
{
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < cfg->n_issuers; i++) {
        const al_issuer_conf_t *c = &cfg->issuers[i];
        upsert(m, c->name, c->issuer, c->jwks_uri, c->jwks_file, NULL, c);
    }
    if (cfg->dev_issuer)
        upsert(m, AL_DEV_ISSUER_NAME, AL_DEV_ISS, NULL, NULL, cfg->server.data_dir, NULL);
    pthread_cond_signal(&m->cond);
    pthread_mutex_unlock(&m->lock);
    return AL_OK;
}

al_jwks_entry_t *al_jwks_mgr_entry(al_jwks_mgr_t *m, const char *issuer_name)
{
    pthread_mutex_lock(&m->lock);
    al_jwks_entry_t *e = find(m, issuer_name);
    pthread_mutex_unlock(&m->lock);
    return e;
}

/* ---- loading keys (fetch thread or CLI; no lock held) ------------------- */

typedef struct loaded {
    al_keyset_t *keys;
    double max_age;
    char err[512];
} loaded_t;

static void load_from_doc(const char *doc, size_t len, loaded_t *out, const char *src)
{
    const char *why = NULL;
    if (al_keyset_parse(doc, len, &out->keys, &why) != AL_OK)
        snprintf(out->err, sizeof out->err, "%s: not a usable JWK Set: %s", src, why ? why : "?");
    else if (out->keys->n_keys == 0) {
        snprintf(out->err, sizeof out->err, "%s: JWK Set holds no usable key (%zu skipped)", src,
                 out->keys->n_skipped);
        al_keyset_unref(&out->keys);
    }
}

static void load_keys(const char *uri, const char *file, const char *issuer, const char *dev_dir,
                      loaded_t *out)
{
    out->keys = NULL;
    out->max_age = -1;
    out->err[0] = '\0';
    if (dev_dir) {
        EVP_PKEY *k = al_dev_issuer_key(dev_dir, true);
        al_buf_t b;
        al_buf_init(&b);
        if (!k || al_dev_issuer_jwks(k, &b) != AL_OK)
            snprintf(out->err, sizeof out->err, "dev issuer key under %s is unusable", dev_dir);
        else
            load_from_doc(b.p, b.len, out, "dev issuer");
        EVP_PKEY_free(k);
        al_buf_free(&b);
        return;
    }
    if (file) {
        char *doc = NULL;
        size_t len = 0;
        if (al_read_file(file, AL_FETCH_MAX_BYTES, &doc, &len) != AL_OK)
            snprintf(out->err, sizeof out->err, "jwks_file %s: %s", file, strerror(errno));
        else
            load_from_doc(doc, len, out, file);
        free(doc);
        return;
    }
    char *discovered = NULL;
    if (!uri) {
        if (al_oidc_discover(issuer, &discovered, out->err, sizeof out->err) != AL_OK)
            return;
        uri = discovered;
    }
    al_fetch_result_t r;
    if (al_fetch(uri, &r) != AL_OK)
        snprintf(out->err, sizeof out->err, "%s", r.err);
    else {
        load_from_doc(r.body.p, r.body.len, out, uri);
        out->max_age = r.max_age;
    }
    al_buf_free(&r.body);
    free(discovered);
}

/* Records a fetch attempt's outcome and wakes its waiters. Lock held. */
static waiter_t *finish(al_jwks_entry_t *e, loaded_t *l, double now, uint64_t ticket)
{
    e->fetching = false;
    if (ticket > e->done)
        e->done = ticket;
    if (l->keys) {
        al_keyset_unref(&e->keys);
        e->keys = l->keys;
        e->last_success = now;
        e->ok++;
        e->backoff = 0;
        double lo = AL_MIN(60.0, e->refresh_interval);
        double next = l->max_age >= 0 ? l->max_age : e->refresh_interval;
        e->next_fetch = now + AL_MAX(lo, AL_MIN(next, e->refresh_interval));
    } else {
        e->err++;
        e->backoff = e->backoff ? AL_MIN(e->backoff * 2, 300.0) : 1.0;
        e->next_fetch = now + AL_MIN(e->backoff, e->refresh_interval);
    }
    /* detach the waiters whose attempt is done */
    waiter_t *ready = NULL, **pp = &e->waiters;
    while (*pp) {
        waiter_t *w = *pp;
        if (w->ticket <= e->done) {
            *pp = w->next;
            w->next = ready;
            ready = w;
        } else {
            pp = &w->next;
        }
    }
    return ready;
}

static void run_waiters(waiter_t *w)
{
    while (w) {
        waiter_t *n = w->next;
        w->fn(w->arg);
        free(w);
        w = n;
    }
}

static void log_outcome(const al_jwks_entry_t *e, const loaded_t *l)
{
    if (l->keys) {
        char n[32];
        al_log(AL_LOG_INFO, "jwks fetched", "issuer", e->name, "keys",
               al_log_num(n, (int64_t)l->keys->n_keys), NULL);
    } else {
        al_log(AL_LOG_WARN, "jwks fetch failed; serving cached keys if fresh enough", "issuer",
               e->name, "error", l->err, NULL);
    }
}

static int fetch_entry(al_jwks_mgr_t *m, al_jwks_entry_t *e)
{
    pthread_mutex_lock(&m->lock);
    char *uri = e->jwks_uri ? al_xstrdup(e->jwks_uri) : NULL;
    char *file = e->jwks_file ? al_xstrdup(e->jwks_file) : NULL;
    char *iss = e->issuer ? al_xstrdup(e->issuer) : NULL;
    char *dev = e->dev_dir ? al_xstrdup(e->dev_dir) : NULL;
    uint64_t ticket = ++e->started;
    e->fetching = true;
    e->wanted = false;
    pthread_mutex_unlock(&m->lock);

    loaded_t l;
    load_keys(uri, file, iss, dev, &l);
    log_outcome(e, &l);
    free(uri);
    free(file);
    free(iss);
    free(dev);

    pthread_mutex_lock(&m->lock);
    bool ok = l.keys != NULL;
    waiter_t *ready = finish(e, &l, al_now(), ticket);
    pthread_mutex_unlock(&m->lock);
    run_waiters(ready);
    return ok ? AL_OK : AL_ERR;
}

int al_jwks_fetch_now(al_jwks_mgr_t *m, al_jwks_entry_t *e) { return fetch_entry(m, e); }

static void *fetch_thread(void *arg)
{
    al_jwks_mgr_t *m = arg;
    pthread_mutex_lock(&m->lock);
    while (!m->stop) {
        double now = al_now(), wake = now + 3600;
        al_jwks_entry_t *due = NULL;
        for (al_jwks_entry_t *e = m->entries; e; e = e->next) {
            if (e->wanted || e->next_fetch <= now) {
                due = e;
                break;
            }
            wake = AL_MIN(wake, e->next_fetch);
        }
        if (due) {
            pthread_mutex_unlock(&m->lock);
            fetch_entry(m, due);
            pthread_mutex_lock(&m->lock);
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double d = wake - now;
        ts.tv_sec += (time_t)d;
        ts.tv_nsec += (long)((d - (double)(time_t)d) * 1e9);
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&m->cond, &m->lock, &ts);
    }
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

int al_jwks_mgr_start(al_jwks_mgr_t *m)
{
    if (m->offline || m->running)
        return AL_OK;
    if (pthread_create(&m->thread, NULL, fetch_thread, m) != 0)
        return AL_ERR;
    m->running = true;
    return AL_OK;
}

/* ---- worker-facing ---------------------------------------------------------- */

al_keyset_t *al_jwks_entry_keys(al_jwks_entry_t *e, double now, al_tok_status_t *why)
{
    al_keyset_t *ks = NULL;
    pthread_mutex_lock(&e->mgr->lock);
    if (e->keys && now - e->last_success <= e->max_staleness)
        ks = al_keyset_ref(e->keys);
    pthread_mutex_unlock(&e->mgr->lock);
    if (!ks)
        *why = AL_TOK_JWKS_UNAVAILABLE;
    return ks;
}

bool al_jwks_entry_request_refetch(al_jwks_entry_t *e, double now, uint64_t *ticket)
{
    al_jwks_mgr_t *m = e->mgr;
    bool scheduled = false;
    pthread_mutex_lock(&m->lock);
    if (m->running) {
        if (e->wanted || e->fetching) {
            scheduled = true; /* ride on the attempt already under way */
            *ticket = e->started + (e->wanted ? 1 : 0);
        } else if (e->last_refetch == 0 || now - e->last_refetch >= e->refetch_interval) {
            e->last_refetch = now;
            e->wanted = true;
            scheduled = true;
            *ticket = e->started + 1;
            pthread_cond_signal(&m->cond);
        }
    }
    pthread_mutex_unlock(&m->lock);
    return scheduled;
}

int al_jwks_entry_on_fetched(al_jwks_entry_t *e, uint64_t ticket, void (*fn)(void *), void *arg)
{
    pthread_mutex_lock(&e->mgr->lock);
    if (e->done >= ticket) {
        pthread_mutex_unlock(&e->mgr->lock);
        return 1;
    }
    waiter_t *w = al_xcalloc(1, sizeof *w);
    w->fn = fn;
    w->arg = arg;
    w->ticket = ticket;
    w->next = e->waiters;
    e->waiters = w;
    pthread_mutex_unlock(&e->mgr->lock);
    return 0;
}

void al_jwks_entry_cancel_wait(al_jwks_entry_t *e, void (*fn)(void *), void *arg)
{
    pthread_mutex_lock(&e->mgr->lock);
    for (waiter_t **pp = &e->waiters; *pp;) {
        waiter_t *w = *pp;
        if (w->fn == fn && w->arg == arg) {
            *pp = w->next;
            free(w);
        } else {
            pp = &w->next;
        }
    }
    pthread_mutex_unlock(&e->mgr->lock);
}

void al_jwks_entry_stats(al_jwks_entry_t *e, al_jwks_stats_t *out)
{
    pthread_mutex_lock(&e->mgr->lock);
    out->fetch_ok = e->ok;
    out->fetch_err = e->err;
    out->last_success = e->last_success;
    out->n_keys = e->keys ? e->keys->n_keys : 0;
    pthread_mutex_unlock(&e->mgr->lock);
}
