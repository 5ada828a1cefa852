/*
 * sessions.c - the live-session registry and the kill switch.
 *
 * Two lists hold each entry: its worker's own (walked by that worker alone
 * when a revocation arrives, so no lock) and the process-wide one behind
 * reg->lock (read by the admin API; written at start, identify and end).
 * Entries are freed only by their worker, under the lock, so the control
 * thread may read any entry it finds while it holds the lock.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "audit/audit.h"
#include "runtime/runtime.h"
#include "runtime/sessions.h"

#define MAX_HOOKS 8

typedef struct seen {
    char *agent;
    double at;
} seen_t;

struct al_sess_reg {
    pthread_mutex_t lock;
    al_sess_t *all;
    size_t n;
    seen_t *seen;           /* last seen per agent name (bounded by the inventory) */
    size_t n_seen, cap_seen;
    char *data_dir;
    struct {
        al_revoke_hook_fn fn;
        void *ud;
    } hooks[MAX_HOOKS];     /* control thread only */
    size_t n_hooks;
};

struct al_sess {
    al_sess_reg_t *reg;
    al_worker_t *w;
    char id[64];
    const char *protocol;   /* static */
    char *target;
    char client[64];
    double started;
    void (*kill)(void *, const char *);
    void *sess;
    /* written by the owning worker under reg->lock; the owner reads them
     * without it (nobody else writes) */
    char *agent, *subject;
    /* relaxed counters written by the owner */
    _Atomic uint64_t bytes_up, bytes_down, actions;
    _Atomic int64_t last_ms; /* last activity, epoch milliseconds */
    /* owner only */
    bool ending;
    const char *note;
    al_sess_t *wnext, **wpprev;
    al_sess_t *gnext, **gpprev;
};

/* ---- registry ---------------------------------------------------------------------- */

al_sess_reg_t *al_sess_reg_new(const char *data_dir)
{
    al_sess_reg_t *r = al_xcalloc(1, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
    r->data_dir = al_xstrdup(data_dir ? data_dir : ".");
    return r;
}

static void entry_free(al_sess_t *e)
{
    free(e->target);
    free(e->agent);
    free(e->subject);
    free(e);
}

void al_sess_reg_free(al_sess_reg_t **pr)
{
    al_sess_reg_t *r = *pr;
    if (!r)
        return;
    for (al_sess_t *e = r->all, *n; e; e = n) { /* a gateway forgot to end it */
        n = e->gnext;
        entry_free(e);
    }
    for (size_t i = 0; i < r->n_seen; i++)
        free(r->seen[i].agent);
    free(r->seen);
    free(r->data_dir);
    pthread_mutex_destroy(&r->lock);
    al_free(pr);
}

/* Under the lock. */
static void seen_at(al_sess_reg_t *r, const char *agent, double at)
{
    if (!agent)
        return;
    for (size_t i = 0; i < r->n_seen; i++)
        if (!strcmp(r->seen[i].agent, agent)) {
            if (at > r->seen[i].at)
                r->seen[i].at = at;
            return;
        }
    if (r->n_seen == r->cap_seen) {
        size_t cap = r->cap_seen ? 2 * r->cap_seen : 16;
        seen_t *n = al_realloc(r->seen, cap * sizeof *n);
        if (!n)
            return; /* last-seen is informational */
        r->seen = n;
        r->cap_seen = cap;
    }
    char *a = al_strndup(agent, strlen(agent));
    if (!a)
        return;
    r->seen[r->n_seen++] = (seen_t){a, at};
}

/* ---- gateway side -------------------------------------------------------------------- */

static int64_t now_ms(void) { return (int64_t)(al_now() * 1000); }

al_sess_t *al_sess_start(al_worker_t *w, const al_sess_info_t *info)
{
    al_sess_reg_t *r = w->rt ? w->rt->sessions : NULL;
    if (!r)
        return NULL;
    al_sess_t *e = al_xcalloc(1, sizeof *e);
    e->reg = r;
    e->w = w;
    snprintf(e->id, sizeof e->id, "%s", info->id ? info->id : "");
    e->protocol = info->protocol ? info->protocol : "unknown";
    e->target = info->target ? al_xstrdup(info->target) : NULL;
    snprintf(e->client, sizeof e->client, "%s", info->client ? info->client : "");
    e->started = al_now();
    e->kill = info->kill;
    e->sess = info->sess;
    atomic_init(&e->last_ms, (int64_t)(e->started * 1000));
    /* the worker's own list */
    e->wnext = w->sessions;
    if (w->sessions)
        w->sessions->wpprev = &e->wnext;
    e->wpprev = &w->sessions;
    w->sessions = e;
    pthread_mutex_lock(&r->lock);
    e->gnext = r->all;
    if (r->all)
        r->all->gpprev = &e->gnext;
    e->gpprev = &r->all;
    r->all = e;
    r->n++;
    pthread_mutex_unlock(&r->lock);
    return e;
}

static bool same(const char *a, const char *b)
{
    return a == b || (a && b && !strcmp(a, b));
}

void al_sess_identify(al_sess_t *e, const al_principal_t *p)
{
    if (!e || !p)
        return;
    atomic_store_explicit(&e->last_ms, now_ms(), memory_order_relaxed);
    if (same(e->agent, p->agent) && same(e->subject, p->sub))
        return;
    char *agent = p->agent ? al_xstrdup(p->agent) : NULL;
    char *subject = p->sub ? al_xstrdup(p->sub) : NULL;
    pthread_mutex_lock(&e->reg->lock);
    char *oa = e->agent, *os = e->subject;
    e->agent = agent;
    e->subject = subject;
    seen_at(e->reg, agent, al_now());
    pthread_mutex_unlock(&e->reg->lock);
    free(oa);
    free(os);
}

void al_sess_action(al_sess_t *e)
{
    if (!e)
        return;
    atomic_fetch_add_explicit(&e->actions, 1, memory_order_relaxed);
    atomic_store_explicit(&e->last_ms, now_ms(), memory_order_relaxed);
}

void al_sess_bytes(al_sess_t *e, uint64_t from_client, uint64_t from_upstream)
{
    if (!e)
        return;
    if (from_client)
        atomic_fetch_add_explicit(&e->bytes_up, from_client, memory_order_relaxed);
    if (from_upstream)
        atomic_fetch_add_explicit(&e->bytes_down, from_upstream, memory_order_relaxed);
}

const char *al_sess_note(const al_sess_t *e) { return e && e->note ? e->note : ""; }

void al_sess_end(al_sess_t **pe)
{
    al_sess_t *e = *pe;
    if (!e)
        return;
    *pe = NULL;
    if (e->wnext)
        e->wnext->wpprev = e->wpprev;
    *e->wpprev = e->wnext;
    al_sess_reg_t *r = e->reg;
    pthread_mutex_lock(&r->lock);
    if (e->gnext)
        e->gnext->gpprev = e->gpprev;
    *e->gpprev = e->gnext;
    r->n--;
    seen_at(r, e->agent, (double)atomic_load_explicit(&e->last_ms, memory_order_relaxed) / 1000);
    pthread_mutex_unlock(&r->lock);
    entry_free(e);
}

void al_sess_peer_name(const uv_tcp_t *t, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "";
    if (uv_tcp_getpeername(t, (struct sockaddr *)&ss, &len) != 0) {
        snprintf(out, cap, "unknown");
        return;
    }
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, ip, sizeof ip);
        snprintf(out, cap, "[%s]:%u", ip, ntohs(a->sin6_port));
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        uv_ip4_name(a, ip, sizeof ip);
        snprintf(out, cap, "%s:%u", ip, ntohs(a->sin_port));
    }
}

/* ---- ending sessions (owning worker) ----------------------------------------------------- */

/* Audits the end, then asks the gateway to close. e may be freed on return. */
static void end_by(al_sess_t *e, const char *reason, const char *note, const char *by,
                   const char *ref)
{
    if (e->ending)
        return;
    e->ending = true;
    al_audit_t *a = e->w->rt ? e->w->rt->audit : NULL;
    if (a) {
        char action[512];
        snprintf(action, sizeof action, "session ended by %s%s%s", by && *by ? by : "an administrator",
                 note && *note ? ": " : "", note ? note : "");
        al_audit_event_t ev;
        al_audit_event_init(&ev);
        ev.kind = AL_SESS_AUDIT_KIND;
        ev.session_id = e->id;
        ev.protocol = e->protocol;
        ev.target = e->target;
        ev.agent = e->agent;
        ev.subject = e->subject;
        ev.action = al_str_c(action);
        ev.decision = "deny";
        ev.reason = reason;
        ev.ref_id = ref && *ref ? ref : NULL;
        ev.bytes_up = (int64_t)atomic_load_explicit(&e->bytes_up, memory_order_relaxed);
        ev.bytes_down = (int64_t)atomic_load_explicit(&e->bytes_down, memory_order_relaxed);
        ev.duration_us = (int64_t)((al_now() - e->started) * 1e6);
        al_audit_submit_async(a, &ev, NULL);
    }
    char sid[64];
    snprintf(sid, sizeof sid, "%s", e->id);
    al_log(AL_LOG_INFO, "session ended by the kill switch", "session", sid, "reason", reason,
           "agent", e->agent ? e->agent : "", NULL);
    e->note = note ? note : "";
    e->kill(e->sess, reason);
}

void al_sess_worker_wake(al_worker_t *w, al_revset_t *rev, al_sess_kill_t *kills)
{
    if (rev) {
        al_revset_unref(&w->revoked);
        w->revoked = rev;
        /* The kill callback ends only its own session, so `n` stays valid. */
        for (al_sess_t *e = w->sessions, *n; e; e = n) {
            n = e->wnext;
            const al_revoked_t *r = al_revset_find(rev, e->agent);
            if (r)
                end_by(e, AL_SESS_REVOKED, r->reason, r->by, r->event_id);
        }
    }
    for (al_sess_kill_t *k = kills, *next; k; k = next) {
        next = k->next;
        for (al_sess_t *e = w->sessions; e; e = e->wnext)
            if (!strcmp(e->id, k->id)) {
                end_by(e, AL_SESS_KILLED, k->note, k->by, k->ref);
                break;
            }
        k->next = NULL;
        al_sess_kill_free(&k);
    }
}

void al_sess_kill_free(al_sess_kill_t **pk)
{
    for (al_sess_kill_t *k = *pk, *n; k; k = n) {
        n = k->next;
        free(k->note);
        free(k);
    }
    *pk = NULL;
}

/* ---- control thread ----------------------------------------------------------------------- */

static void json_str_or_null(al_buf_t *b, const char *s)
{
    if (s)
        al_buf_json_str(b, s, strlen(s));
    else
        al_buf_puts(b, "null");
}

int al_sess_list_json(al_runtime_t *rt, const char *agent, al_buf_t *b)
{
    al_sess_reg_t *r = rt->sessions;
    al_buf_puts(b, "{\"sessions\":[");
    bool first = true;
    double now = al_now();
    pthread_mutex_lock(&r->lock);
    for (al_sess_t *e = r->all; e; e = e->gnext) {
        if (agent && !same(agent, e->agent))
            continue;
        char t0[40], t1[40];
        al_time_rfc3339(e->started, t0, sizeof t0);
        double last = (double)atomic_load_explicit(&e->last_ms, memory_order_relaxed) / 1000;
        al_time_rfc3339(last, t1, sizeof t1);
        al_buf_puts(b, first ? "{\"id\":" : ",{\"id\":");
        first = false;
        al_buf_json_str(b, e->id, strlen(e->id));
        al_buf_puts(b, ",\"agent\":");
        json_str_or_null(b, e->agent);
        al_buf_puts(b, ",\"subject\":");
        json_str_or_null(b, e->subject);
        al_buf_puts(b, ",\"target\":");
        json_str_or_null(b, e->target);
        al_buf_puts(b, ",\"protocol\":");
        json_str_or_null(b, e->protocol);
        al_buf_puts(b, ",\"client\":");
        json_str_or_null(b, e->client);
        al_buf_printf(b, ",\"started\":\"%s\",\"age_seconds\":%.3f,\"last_active\":\"%s\","
                         "\"bytes_up\":%llu,\"bytes_down\":%llu,\"actions\":%llu,\"worker\":%d}",
                      t0, now - e->started, t1,
                      (unsigned long long)atomic_load_explicit(&e->bytes_up, memory_order_relaxed),
                      (unsigned long long)atomic_load_explicit(&e->bytes_down, memory_order_relaxed),
                      (unsigned long long)atomic_load_explicit(&e->actions, memory_order_relaxed),
                      e->w->id);
    }
    pthread_mutex_unlock(&r->lock);
    al_buf_puts(b, "]}");
    return b->oom ? AL_ERR : AL_OK;
}

/* Hands a worker something through its inbox and wakes it. */
static void post(al_runtime_t *rt, al_worker_t *w, al_revset_t *rev, al_sess_kill_t *k)
{
    pthread_mutex_lock(&w->inbox_lock);
    if (rev) {
        al_revset_unref(&w->inbox_rev);
        w->inbox_rev = al_revset_ref(rev);
    }
    if (k) {
        k->next = w->inbox_kill;
        w->inbox_kill = k;
    }
    pthread_mutex_unlock(&w->inbox_lock);
    /* A draining worker closes its wake handle with its last session; its
     * sessions are ending anyway. */
    if (!rt->draining)
        uv_async_send(&w->wake);
}

int al_sess_kill(al_runtime_t *rt, const char *id, const char *note, const char *by,
                 const char *ref)
{
    al_sess_reg_t *r = rt->sessions;
    al_worker_t *w = NULL;
    pthread_mutex_lock(&r->lock);
    for (al_sess_t *e = r->all; e; e = e->gnext)
        if (!strcmp(e->id, id)) {
            w = e->w;
            break;
        }
    pthread_mutex_unlock(&r->lock);
    if (!w)
        return AL_ERR;
    al_sess_kill_t *k = al_xcalloc(1, sizeof *k);
    snprintf(k->id, sizeof k->id, "%s", id);
    snprintf(k->ref, sizeof k->ref, "%s", ref ? ref : "");
    snprintf(k->by, sizeof k->by, "%s", by ? by : "");
    k->note = al_xstrdup(note ? note : "");
    post(rt, w, NULL, k);
    return AL_OK;
}

bool al_sess_exists(al_runtime_t *rt, const char *id)
{
    al_sess_reg_t *r = rt->sessions;
    bool found = false;
    pthread_mutex_lock(&r->lock);
    for (al_sess_t *e = r->all; e && !found; e = e->gnext)
        found = !strcmp(e->id, id);
    pthread_mutex_unlock(&r->lock);
    return found;
}

size_t al_sess_count_agent(al_runtime_t *rt, const char *agent)
{
    al_sess_reg_t *r = rt->sessions;
    size_t n = 0;
    pthread_mutex_lock(&r->lock);
    for (al_sess_t *e = r->all; e; e = e->gnext)
        n += same(agent, e->agent);
    pthread_mutex_unlock(&r->lock);
    return n;
}

double al_sess_last_seen(al_runtime_t *rt, const char *agent)
{
    al_sess_reg_t *r = rt->sessions;
    double at = 0;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->n_seen; i++)
        if (!strcmp(r->seen[i].agent, agent))
            at = r->seen[i].at;
    for (al_sess_t *e = r->all; e; e = e->gnext)
        if (same(agent, e->agent)) {
            double t = (double)atomic_load_explicit(&e->last_ms, memory_order_relaxed) / 1000;
            if (t > at)
                at = t;
        }
    pthread_mutex_unlock(&r->lock);
    return at;
}

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

void al_sess_agent_stats(al_runtime_t *rt, const char *const *names, size_t n, size_t *live,
                         double *last_seen)
{
    size_t cap = 8;
    while (cap < 2 * n)
        cap <<= 1;
    size_t *slot = al_xcalloc(cap, sizeof *slot); /* index + 1 */
    for (size_t i = 0; i < n; i++) {
        live[i] = 0;
        last_seen[i] = 0;
        size_t k = name_hash(names[i]) & (cap - 1);
        while (slot[k])
            k = (k + 1) & (cap - 1);
        slot[k] = i + 1;
    }
#define FIND(name, idx)                                                                      \
    do {                                                                                     \
        (idx) = SIZE_MAX;                                                                    \
        for (size_t k_ = name_hash(name) & (cap - 1); slot[k_]; k_ = (k_ + 1) & (cap - 1))  \
            if (!strcmp(names[slot[k_] - 1], (name))) {                                      \
                (idx) = slot[k_] - 1;                                                        \
                break;                                                                       \
            }                                                                                \
    } while (0)
    al_sess_reg_t *r = rt->sessions;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->n_seen; i++) {
        size_t idx;
        FIND(r->seen[i].agent, idx);
        if (idx != SIZE_MAX)
            last_seen[idx] = r->seen[i].at;
    }
    for (al_sess_t *e = r->all; e; e = e->gnext) {
        if (!e->agent)
            continue;
        size_t idx;
        FIND(e->agent, idx);
        if (idx == SIZE_MAX)
            continue;
        live[idx]++;
        double t = (double)atomic_load_explicit(&e->last_ms, memory_order_relaxed) / 1000;
        if (t > last_seen[idx])
            last_seen[idx] = t;
    }
    pthread_mutex_unlock(&r->lock);
#undef FIND
    free(slot);
}

/* ---- the kill switch ---------------------------------------------------------------------- */

static void adopt(al_runtime_t *rt, al_revset_t *set)
{
    al_revset_unref(&rt->revoked);
    rt->revoked = set;
    for (int i = 0; i < rt->n_workers; i++)
        post(rt, &rt->workers[i], set, NULL);
}

int al_killswitch_disable(al_runtime_t *rt, const al_revoked_t *e, char *err, size_t cap)
{
    al_sess_reg_t *r = rt->sessions;
    al_revset_t *set = al_revset_with(rt->revoked, e);
    char serr[512];
    int rc = al_revset_save(r->data_dir, set, serr, sizeof serr);
    if (rc != AL_OK) {
        snprintf(err, cap, "agent %s is disabled now, but NOT persisted: it comes back at the "
                           "next restart unless this is fixed and it is disabled again (%s)",
                 e->agent, serr);
        al_log(AL_LOG_ERROR, "cannot persist a revocation", "agent", e->agent, "error", serr,
               NULL);
    }
    adopt(rt, set);
    for (size_t i = 0; i < r->n_hooks; i++)
        r->hooks[i].fn(r->hooks[i].ud, e->agent, e->reason ? e->reason : "", e->by ? e->by : "");
    return rc;
}

int al_killswitch_enable(al_runtime_t *rt, const char *agent, char *err, size_t cap)
{
    al_revset_t *set = al_revset_without(rt->revoked, agent);
    if (!set)
        return AL_AGAIN;
    char serr[512];
    if (al_revset_save(rt->sessions->data_dir, set, serr, sizeof serr) != AL_OK) {
        al_revset_unref(&set);
        snprintf(err, cap, "agent %s stays disabled: the change could not be saved (%s)", agent,
                 serr);
        return AL_ERR;
    }
    adopt(rt, set);
    return AL_OK;
}

int al_killswitch_on_revoke(al_runtime_t *rt, al_revoke_hook_fn fn, void *ud)
{
    al_sess_reg_t *r = rt->sessions;
    if (r->n_hooks == MAX_HOOKS)
        return AL_ERR;
    r->hooks[r->n_hooks].fn = fn;
    r->hooks[r->n_hooks].ud = ud;
    r->n_hooks++;
    return AL_OK;
}
