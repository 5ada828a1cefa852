/*
 * audit.c - the audit writer: a bounded lock-free queue that any thread
 * submits to, and one writer thread that commits what it finds in groups.
 *
 * Group commit: the writer pops everything queued (up to max_batch) and
 * appends it in one transaction; events submitted while that commit (and
 * its fsync) runs wait in the queue and form the next transaction. So N
 * concurrent strict submitters pay about one fsync per round, not N.
 *
 * Submission cost: one allocation (the event copy), a CSPRNG read for the
 * id, four atomic operations and, only when the writer sleeps and the
 * event needs it awake, a mutex + condition signal. No I/O, no waiting.
 *
 * The queue is Dmitry Vyukov's intrusive multi-producer single-consumer
 * node queue (1024cores.net, "Intrusive MPSC node-based queue"): a push is
 * one atomic exchange plus a store; the single consumer needs no atomics
 * of its own beyond loads. Its one quirk: between a producer's exchange and
 * its link store the queue looks cut; the consumer yields and retries.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "audit/audit.h"

typedef struct item {
    struct item *_Atomic next;
    al_audit_done_cb cb; /* NULL: asynchronous */
    void *ud;
    al_audit_event_t ev; /* every pointer points into this allocation */
} item_t;

struct al_audit {
    al_audit_store_t *store;
    al_audit_opts_t o; /* defaults resolved */

    /* queue: producers exchange head; the writer alone reads tail */
    item_t *_Atomic head;
    item_t *tail;
    item_t stub;
    atomic_size_t depth;     /* accepted and not yet completed (queue + batch) */
    atomic_int entering;     /* producers inside submit() */
    atomic_bool closing;
    atomic_int waiting;      /* the writer is asleep or about to be: SLEEP_* */

    pthread_mutex_t lock;    /* only for sleeping and waking the writer */
    pthread_cond_t cond;
    bool stop;               /* under lock */
    pthread_t thread;

    _Atomic uint64_t committed, failed, rejected, dropped, batches, batches_failed;

    /* writer thread only */
    item_t **batch;
    const al_audit_event_t **evs;
    uint64_t last_log_ns, suppressed;
};

/* ---- queue ------------------------------------------------------------------ */

static void push(al_audit_t *a, item_t *it)
{
    atomic_store_explicit(&it->next, NULL, memory_order_relaxed);
    item_t *prev = atomic_exchange(&a->head, it);
    atomic_store_explicit(&prev->next, it, memory_order_release);
}

/* Pops the oldest item; NULL with *busy when a producer is mid-push (the
 * caller retries), NULL without it when the queue is empty. */
static item_t *pop(al_audit_t *a, bool *busy)
{
    *busy = false;
    item_t *tail = a->tail;
    item_t *next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (tail == &a->stub) {
        if (!next) {
            *busy = atomic_load(&a->head) != tail;
            return NULL;
        }
        a->tail = next;
        tail = next;
        next = atomic_load_explicit(&next->next, memory_order_acquire);
    }
    if (next) {
        a->tail = next;
        return tail;
    }
    if (atomic_load(&a->head) != tail) {
        *busy = true;
        return NULL;
    }
    push(a, &a->stub);
    next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (next) {
        a->tail = next;
        return tail;
    }
    *busy = true;
    return NULL;
}

static bool queue_empty(al_audit_t *a)
{
    return a->tail == &a->stub && atomic_load(&a->head) == &a->stub;
}

/* ---- event copy ------------------------------------------------------------- */

/* Length of s cut at max bytes, backed off to a UTF-8 character boundary
 * so a cut never splits a character. */
static size_t cut_len(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t n = max;
    for (int k = 0; k < 3 && n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80; k++)
        n--;
    return n;
}

/* Copies n bytes of s and a NUL to *w, advancing it; returns the copy. */
static const char *put(char **w, const char *s, size_t n)
{
    if (!s)
        return NULL;
    char *d = *w;
    memcpy(d, s, n);
    d[n] = '\0';
    *w += n + 1;
    return d;
}

static size_t field_len(const char *s, size_t max)
{
    return s ? cut_len(s, strnlen(s, max + 1), max) : 0;
}

enum { F_KIND, F_SESSION, F_AGENT, F_SUBJECT, F_ISSUER, F_TARGET, F_PROTOCOL, F_CLASS,
       F_DECISION, F_RULE, F_REASON, F_APPROVAL, F_REF, F_STATUS, F_ERROR, F_RECORDING,
       F_RECORDING_SHA, F__COUNT };

/* One allocation holding the item, the two pointer arrays and every string.
 * Each length is measured once (strnlen bounded by the cap) and reused. */
static item_t *copy_event(const al_audit_t *a, const al_audit_event_t *ev)
{
    size_t max = a->o.max_action_bytes;
    const char *const strs[F__COUNT] = {
        [F_KIND] = ev->kind ? ev->kind : AL_AUDIT_KIND_DECISION,
        [F_SESSION] = ev->session_id, [F_AGENT] = ev->agent, [F_SUBJECT] = ev->subject,
        [F_ISSUER] = ev->issuer, [F_TARGET] = ev->target, [F_PROTOCOL] = ev->protocol,
        [F_CLASS] = ev->cls, [F_DECISION] = ev->decision, [F_RULE] = ev->rule,
        [F_REASON] = ev->reason, [F_APPROVAL] = ev->approval_id, [F_REF] = ev->ref_id,
        [F_STATUS] = ev->status, [F_ERROR] = ev->error, [F_RECORDING] = ev->recording,
        [F_RECORDING_SHA] = ev->recording_sha256,
    };
    size_t lens[F__COUNT], glen[AL_AUDIT_MAX_LIST], tlen[AL_AUDIT_MAX_LIST];
    size_t ng = AL_MIN(ev->n_groups, (size_t)AL_AUDIT_MAX_LIST);
    size_t nt = AL_MIN(ev->n_tables, (size_t)AL_AUDIT_MAX_LIST);
    size_t alen = ev->action.p ? cut_len(ev->action.p, ev->action.len, max) : 0;
    size_t size = sizeof(item_t) + (ng + nt) * sizeof(char *);
    for (size_t i = 0; i < F__COUNT; i++) {
        lens[i] = field_len(strs[i], max);
        size += strs[i] ? lens[i] + 1 : 0;
    }
    for (size_t i = 0; i < ng; i++)
        size += (glen[i] = field_len(ev->groups[i], max)) + 1;
    for (size_t i = 0; i < nt; i++)
        size += (tlen[i] = field_len(ev->tables[i], max)) + 1;
    if (ev->action.p)
        size += alen + 1;

    item_t *it = al_malloc(size);
    if (!it)
        return NULL;
    memset(it, 0, sizeof *it);
    al_audit_event_t *c = &it->ev;
    const char **gp = (const char **)(it + 1);
    const char **tp = gp + ng;
    char *w = (char *)(tp + nt);
    const char *cp[F__COUNT];
    for (size_t i = 0; i < F__COUNT; i++)
        cp[i] = put(&w, strs[i], lens[i]);
    c->kind = cp[F_KIND];
    c->session_id = cp[F_SESSION];
    c->agent = cp[F_AGENT];
    c->subject = cp[F_SUBJECT];
    c->issuer = cp[F_ISSUER];
    c->target = cp[F_TARGET];
    c->protocol = cp[F_PROTOCOL];
    c->cls = cp[F_CLASS];
    c->decision = cp[F_DECISION];
    c->rule = cp[F_RULE];
    c->reason = cp[F_REASON];
    c->approval_id = cp[F_APPROVAL];
    c->ref_id = cp[F_REF];
    c->status = cp[F_STATUS];
    c->error = cp[F_ERROR];
    c->recording = cp[F_RECORDING];
    c->recording_sha256 = cp[F_RECORDING_SHA];
    /* A NULL list entry is kept as "" (lists hold strings only). */
    for (size_t i = 0; i < ng; i++)
        gp[i] = put(&w, ev->groups[i] ? ev->groups[i] : "", glen[i]);
    for (size_t i = 0; i < nt; i++)
        tp[i] = put(&w, ev->tables[i] ? ev->tables[i] : "", tlen[i]);
    c->groups = ng ? gp : NULL;
    c->n_groups = ng;
    c->groups_truncated = ev->groups_truncated || ev->n_groups > ng;
    c->tables = nt ? tp : NULL;
    c->n_tables = nt;
    c->tables_truncated = ev->tables_truncated || ev->n_tables > nt;
    if (ev->action.p) {
        c->action = (al_str_t){put(&w, ev->action.p, alen), alen};
    }
    c->action_truncated = ev->action_truncated || (ev->action.p && alen < ev->action.len);
    c->time_us = ev->time_us > 0 ? ev->time_us : (int64_t)(al_now() * 1e6);
    c->rows = ev->rows >= 0 ? ev->rows : -1;
    c->duration_us = ev->duration_us >= 0 ? ev->duration_us : -1;
    c->bytes_up = ev->bytes_up >= 0 ? ev->bytes_up : -1;
    c->bytes_down = ev->bytes_down >= 0 ? ev->bytes_down : -1;
    if (al_audit_uuid7(c->time_us, c->id) != AL_OK) {
        al_free(&it);
        return NULL;
    }
    return it;
}

/* ---- submission --------------------------------------------------------------- */

/* What the writer waits for (a->waiting). */
enum { SLEEP_NONE = 0, SLEEP_IDLE, SLEEP_GATHER };

static void wake(al_audit_t *a)
{
    if (atomic_load(&a->waiting) == SLEEP_NONE)
        return;
    pthread_mutex_lock(&a->lock);
    pthread_cond_signal(&a->cond);
    pthread_mutex_unlock(&a->lock);
}

/* AL_OK queued; AL_AGAIN (full, closed) or AL_ERR (out of memory, no
 * randomness) with *why saying so, and nothing queued. */
static int enqueue(al_audit_t *a, const al_audit_event_t *ev, al_audit_done_cb cb, void *ud,
                   char id_out[AL_AUDIT_ID_SIZE], const char **why)
{
    int rc = AL_AGAIN;
    atomic_fetch_add(&a->entering, 1);
    if (atomic_load(&a->closing)) {
        *why = "audit log closed";
        goto out;
    }
    size_t prev = atomic_fetch_add(&a->depth, 1);
    if (prev >= a->o.queue_capacity) {
        atomic_fetch_sub(&a->depth, 1);
        *why = "audit queue full";
        goto out;
    }
    item_t *it = copy_event(a, ev);
    if (!it) {
        atomic_fetch_sub(&a->depth, 1);
        *why = "audit event: out of memory or no randomness";
        rc = AL_ERR;
        goto out;
    }
    it->cb = cb;
    it->ud = ud;
    if (id_out)
        memcpy(id_out, it->ev.id, AL_AUDIT_ID_SIZE);
    push(a, it);
    /* Strict events want the writer now. Async ones when the writer sleeps
     * with nothing to do (it then starts its flush timer) or when they fill
     * a batch; while it gathers a batch its timer is enough. Not decided on
     * `depth`: an event pushed while the previous batch commits counts that
     * batch in prev, and the writer may have found the queue empty and gone
     * to sleep before this push (a lost wake-up). */
    if (cb || atomic_load(&a->waiting) == SLEEP_IDLE || prev + 1 >= a->o.max_batch)
        wake(a);
    rc = AL_OK;
out:
    atomic_fetch_sub(&a->entering, 1);
    return rc;
}

int al_audit_submit(al_audit_t *a, const al_audit_event_t *ev, al_audit_done_cb cb, void *ud,
                    char id_out[AL_AUDIT_ID_SIZE], const char **err)
{
    const char *why = "audit: no completion callback given";
    if (cb && enqueue(a, ev, cb, ud, id_out, &why) == AL_OK)
        return AL_OK;
    atomic_fetch_add_explicit(&a->rejected, 1, memory_order_relaxed);
    if (err)
        *err = why;
    return AL_ERR;
}

int al_audit_submit_async(al_audit_t *a, const al_audit_event_t *ev,
                          char id_out[AL_AUDIT_ID_SIZE])
{
    const char *why = NULL;
    int rc = enqueue(a, ev, NULL, NULL, id_out, &why);
    if (rc != AL_OK)
        atomic_fetch_add_explicit(&a->dropped, 1, memory_order_relaxed);
    return rc;
}

typedef struct sync_wait {
    pthread_mutex_t m;
    pthread_cond_t c;
    bool done;
    int rc;
    char *err;
    size_t cap;
} sync_wait_t;

static void sync_done(void *ud, int rc, const char *id, const char *err)
{
    AL_UNUSED(id);
    sync_wait_t *w = ud;
    pthread_mutex_lock(&w->m);
    w->rc = rc;
    if (err && w->cap)
        snprintf(w->err, w->cap, "%s", err);
    w->done = true;
    pthread_cond_signal(&w->c);
    pthread_mutex_unlock(&w->m); /* w lives on the waiter's stack: touch nothing after */
}

int al_audit_write_sync(al_audit_t *a, const al_audit_event_t *ev,
                        char id_out[AL_AUDIT_ID_SIZE], char *err, size_t cap)
{
    sync_wait_t w = {.m = PTHREAD_MUTEX_INITIALIZER, .c = PTHREAD_COND_INITIALIZER, .err = err,
                     .cap = cap};
    const char *why = NULL;
    if (al_audit_submit(a, ev, sync_done, &w, id_out, &why) != AL_OK) {
        if (cap)
            snprintf(err, cap, "%s", why);
        return AL_ERR;
    }
    pthread_mutex_lock(&w.m);
    while (!w.done)
        pthread_cond_wait(&w.c, &w.m);
    pthread_mutex_unlock(&w.m);
    pthread_cond_destroy(&w.c);
    pthread_mutex_destroy(&w.m);
    return w.rc;
}

/* ---- writer ------------------------------------------------------------------ */

/* Pops into a->batch from n on, up to max_batch; sets *strict if any popped
 * item waits for a callback. Returns the new count. */
static size_t drain(al_audit_t *a, size_t n, bool *strict)
{
    while (n < a->o.max_batch) {
        bool busy;
        item_t *it = pop(a, &busy);
        if (!it) {
            if (!busy)
                break;
            sched_yield(); /* a producer is between its exchange and its link */
            continue;
        }
        if (it->cb)
            *strict = true;
        a->batch[n++] = it;
    }
    return n;
}

/* Sleeps until woken, deadline_ns (CLOCK_MONOTONIC; 0 = none) passes or
 * stop is set, unless the queue already holds something. Returns stop. */
static bool writer_wait(al_audit_t *a, uint64_t deadline_ns)
{
    pthread_mutex_lock(&a->lock);
    bool stop = a->stop;
    if (!stop) {
        /* Set waiting before looking at the queue: a producer pushes before
         * it reads waiting, so one of us sees the other (seq_cst). */
        atomic_store(&a->waiting, deadline_ns ? SLEEP_GATHER : SLEEP_IDLE);
        if (queue_empty(a)) {
            if (deadline_ns) {
                struct timespec ts = {.tv_sec = (time_t)(deadline_ns / 1000000000u),
                                      .tv_nsec = (long)(deadline_ns % 1000000000u)};
                pthread_cond_timedwait(&a->cond, &a->lock, &ts);
            } else {
                pthread_cond_wait(&a->cond, &a->lock);
            }
        }
        atomic_store(&a->waiting, SLEEP_NONE);
        stop = a->stop;
    }
    pthread_mutex_unlock(&a->lock);
    return stop;
}

static void log_failure(al_audit_t *a, const char *err, size_t n)
{
    /* Loud, but at most one line a second while the store stays broken. */
    uint64_t now = al_mono_ns();
    if (a->last_log_ns && now - a->last_log_ns < 1000000000u) {
        a->suppressed++;
        return;
    }
    char nb[32], sb[32];
    al_log(AL_LOG_ERROR, "audit events lost: the audit store cannot commit", "error", err,
           "events", al_log_num(nb, (int64_t)n), "failures_not_logged",
           al_log_num(sb, (int64_t)a->suppressed), NULL);
    a->last_log_ns = now;
    a->suppressed = 0;
}

static void commit(al_audit_t *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        a->evs[i] = &a->batch[i]->ev;
    char err[AL_AUDIT_ERR_SIZE];
    err[0] = '\0';
    int rc = a->store->ops->append(a->store, a->evs, n, err, sizeof err);
    if (rc == AL_OK) {
        atomic_fetch_add_explicit(&a->batches, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&a->committed, n, memory_order_relaxed);
    } else {
        if (!err[0])
            snprintf(err, sizeof err, "audit store: cannot commit at %s", a->store->where);
        atomic_fetch_add_explicit(&a->batches_failed, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&a->failed, n, memory_order_relaxed);
        log_failure(a, err, n);
    }
    /* Room first, so a callback that submits again finds it. */
    atomic_fetch_sub(&a->depth, n);
    for (size_t i = 0; i < n; i++) {
        item_t *it = a->batch[i];
        if (it->cb)
            it->cb(it->ud, rc == AL_OK ? AL_OK : AL_ERR, it->ev.id, rc == AL_OK ? NULL : err);
        free(it);
        a->batch[i] = NULL;
    }
}

static void *writer_main(void *arg)
{
    al_audit_t *a = arg;
    uint64_t flush_ns = (uint64_t)(a->o.flush_interval * 1e9);
    bool stopping = false;
    for (;;) {
        bool strict = false;
        size_t n = drain(a, 0, &strict);
        if (n == 0) {
            if (stopping)
                break; /* closing: no producer is left, and nothing is queued */
            stopping = writer_wait(a, 0);
            continue;
        }
        if (!strict && n < a->o.max_batch && !stopping) {
            /* Only asynchronous events: gather more for up to flush_interval. */
            uint64_t deadline = al_mono_ns() + flush_ns;
            while (!strict && n < a->o.max_batch && !stopping && al_mono_ns() < deadline) {
                stopping = writer_wait(a, deadline);
                n = drain(a, n, &strict);
            }
        }
        commit(a, n);
    }
    return NULL;
}

/* ---- lifecycle ----------------------------------------------------------------- */

static void resolve(al_audit_opts_t *o, const al_audit_opts_t *in)
{
    memset(o, 0, sizeof *o);
    if (in)
        *o = *in;
    o->path = NULL; /* borrowed; not kept */
    if (!o->max_action_bytes)
        o->max_action_bytes = 4096;
    o->max_action_bytes = AL_MIN(o->max_action_bytes, (size_t)16 << 20);
    if (!(o->commit_timeout > 0))
        o->commit_timeout = 5.0;
    if (!(o->flush_interval > 0))
        o->flush_interval = 0.01;
    if (!o->max_batch)
        o->max_batch = 512;
    if (!o->queue_capacity)
        o->queue_capacity = 65536;
}

int al_audit_open_store(al_audit_store_t *store, const al_audit_opts_t *o, al_audit_t **out,
                        char *err, size_t cap)
{
    *out = NULL;
    al_audit_t *a = calloc(1, sizeof *a);
    if (!a)
        goto oom;
    a->store = store;
    resolve(&a->o, o);
    a->batch = al_calloc(a->o.max_batch, sizeof *a->batch);
    a->evs = al_calloc(a->o.max_batch, sizeof *a->evs);
    if (!a->batch || !a->evs)
        goto oom;
    atomic_store(&a->head, &a->stub);
    a->tail = &a->stub;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&a->lock, NULL);
    if (pthread_create(&a->thread, NULL, writer_main, a) != 0) {
        pthread_cond_destroy(&a->cond);
        pthread_mutex_destroy(&a->lock);
        snprintf(err, cap, "audit: cannot start the writer thread");
        goto fail;
    }
    pthread_setname_np(a->thread, "al-audit");
    *out = a;
    return AL_OK;
oom:
    snprintf(err, cap, "audit: out of memory");
fail:
    if (a) {
        al_free(&a->batch);
        al_free(&a->evs);
        free(a);
    }
    al_audit_store_close(&store);
    return AL_ERR;
}

int al_audit_open(const al_audit_opts_t *o, al_audit_t **out, char *err, size_t cap)
{
    *out = NULL;
    al_audit_store_t *s = NULL;
    if (al_audit_store_open(o ? o->path : NULL, o, false, &s, err, cap) != AL_OK)
        return AL_ERR;
    return al_audit_open_store(s, o, out, err, cap);
}

void al_audit_close(al_audit_t **ap)
{
    al_audit_t *a = *ap;
    if (!a)
        return;
    atomic_store(&a->closing, true);
    while (atomic_load(&a->entering))
        sched_yield(); /* a submit that saw closing == false finishes its push */
    pthread_mutex_lock(&a->lock);
    a->stop = true;
    pthread_cond_signal(&a->cond);
    pthread_mutex_unlock(&a->lock);
    pthread_join(a->thread, NULL);
    pthread_cond_destroy(&a->cond);
    pthread_mutex_destroy(&a->lock);
    al_audit_store_close(&a->store);
    al_free(&a->batch);
    al_free(&a->evs);
    free(a);
    *ap = NULL;
}

/* ---- counters -------------------------------------------------------------------- */

void al_audit_stats(const al_audit_t *a, al_audit_stats_t *s)
{
    al_audit_t *m = (al_audit_t *)a; /* atomic loads take non-const pointers in C17 */
    s->committed = atomic_load_explicit(&m->committed, memory_order_relaxed);
    s->failed = atomic_load_explicit(&m->failed, memory_order_relaxed);
    s->rejected = atomic_load_explicit(&m->rejected, memory_order_relaxed);
    s->dropped = atomic_load_explicit(&m->dropped, memory_order_relaxed);
    s->batches = atomic_load_explicit(&m->batches, memory_order_relaxed);
    s->batches_failed = atomic_load_explicit(&m->batches_failed, memory_order_relaxed);
    s->queue_depth = atomic_load_explicit(&m->depth, memory_order_relaxed);
    s->queue_capacity = a->o.queue_capacity;
}

int al_audit_metrics(const al_audit_t *a, al_buf_t *b)
{
    al_audit_stats_t s;
    al_audit_stats(a, &s);
    al_buf_puts(b, "# HELP airlock_audit_events_total Audit events by outcome: committed, failed "
                   "(their transaction failed), rejected (strict, refused at submission), dropped "
                   "(async, queue full).\n# TYPE airlock_audit_events_total counter\n");
    al_buf_printf(b, "airlock_audit_events_total{result=\"committed\"} %llu\n",
                  (unsigned long long)s.committed);
    al_buf_printf(b, "airlock_audit_events_total{result=\"failed\"} %llu\n",
                  (unsigned long long)s.failed);
    al_buf_printf(b, "airlock_audit_events_total{result=\"rejected\"} %llu\n",
                  (unsigned long long)s.rejected);
    al_buf_printf(b, "airlock_audit_events_total{result=\"dropped\"} %llu\n",
                  (unsigned long long)s.dropped);
    al_buf_puts(b, "# HELP airlock_audit_batches_total Audit store transactions by result.\n"
                   "# TYPE airlock_audit_batches_total counter\n");
    al_buf_printf(b, "airlock_audit_batches_total{result=\"ok\"} %llu\n",
                  (unsigned long long)s.batches);
    al_buf_printf(b, "airlock_audit_batches_total{result=\"error\"} %llu\n",
                  (unsigned long long)s.batches_failed);
    al_buf_puts(b, "# HELP airlock_audit_queue_depth Audit events accepted and not yet committed.\n"
                   "# TYPE airlock_audit_queue_depth gauge\n");
    al_buf_printf(b, "airlock_audit_queue_depth %llu\n", (unsigned long long)s.queue_depth);
    al_buf_puts(b, "# HELP airlock_audit_queue_capacity Audit queue bound.\n"
                   "# TYPE airlock_audit_queue_capacity gauge\n");
    al_buf_printf(b, "airlock_audit_queue_capacity %llu\n", (unsigned long long)s.queue_capacity);
    return b->oom ? AL_ERR : AL_OK;
}
