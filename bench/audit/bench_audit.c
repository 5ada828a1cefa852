/*
 * bench_audit - audit events per second through the real writer and the
 * SQLite store (WAL, synchronous=FULL) in a directory on the disk under
 * test:
 *
 *   strict W   W threads, each submitting one strict event and waiting for
 *              its commit callback before the next: events/s committed,
 *              transactions, events per transaction, commit latency p50/p99
 *   async W    W threads submitting asynchronous events flat out: events/s
 *              committed (the clock runs until the queue is drained), and
 *              what a submission costs the submitting thread (ns,
 *              allocations)
 *
 *   null W     async W, but into a store that keeps nothing: the cost of
 *              submission and of the writer thread without the disk
 *
 * "lost" counts strict failures, or async events dropped because the
 * queue was full (expected: producers outrun any disk; a producer that
 * finds it full sleeps 100 us so the writer keeps a core). "submit ns" and
 * "allocs" are per accepted async submission, timed call by call.
 *
 *   usage: bench_audit [SECONDS] [DIR]     (defaults: 2, $TMPDIR or /tmp)
 *
 * Allocations are counted by interposing malloc/calloc/realloc (glibc's
 * __libc_* entry points), per thread, so only the submitting thread's are
 * seen. Not available under a sanitizer build (it owns malloc); the column
 * then reads n/a.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "audit/audit.h"

/* ---- allocation counting -------------------------------------------------------- */

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define COUNT_ALLOCS 0
#else
#define COUNT_ALLOCS 1
#endif

static _Thread_local uint64_t t_allocs;

#if COUNT_ALLOCS
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
/* Interposed for the whole process; each just counts and forwards. */
void *malloc(size_t n);
void *calloc(size_t c, size_t n);
void *realloc(void *p, size_t n);
void *malloc(size_t n)
{
    t_allocs++;
    return __libc_malloc(n);
}
void *calloc(size_t c, size_t n)
{
    t_allocs++;
    return __libc_calloc(c, n);
}
void *realloc(void *p, size_t n)
{
    t_allocs++;
    return __libc_realloc(p, n);
}
#endif

/* ---- a representative event --------------------------------------------------------- */

static const char *const groups[] = {"bots", "readers", "finance-ro"};
static const char *const tables[] = {"public.orders", "public.customers"};

static void make_event(al_audit_event_t *ev)
{
    al_audit_event_init(ev);
    ev->session_id = "01a2080a-44f2-7b60-9445-4ac867309ca0";
    ev->agent = "report-bot";
    ev->subject = "8f0c2a4e-agent";
    ev->issuer = "https://login.microsoftonline.com/tid/v2.0";
    ev->groups = groups;
    ev->n_groups = 3;
    ev->target = "orders-db";
    ev->protocol = "postgres";
    ev->action = AL_STR("SELECT o.id, o.total, c.name FROM public.orders o JOIN public.customers c "
                        "USING (customer_id) WHERE o.created_at > now() - interval '1 day' "
                        "ORDER BY o.total DESC LIMIT 100");
    ev->cls = "read";
    ev->tables = tables;
    ev->n_tables = 2;
    ev->decision = "allow";
    ev->rule = "readers-may-read";
    ev->reason = "matched rule readers-may-read";
}

/* ---- strict ----------------------------------------------------------------------- */

#define MAX_SAMPLES 20000

typedef struct worker {
    al_audit_t *a;
    atomic_bool *stop;
    pthread_mutex_t m;
    pthread_cond_t c;
    bool done;
    int rc;
    uint64_t n, failed;
    uint64_t *lat; /* ns, first MAX_SAMPLES */
    uint64_t submit_ns, allocs;
} worker_t;

static void on_done(void *ud, int rc, const char *id, const char *err)
{
    (void)id, (void)err;
    worker_t *w = ud;
    pthread_mutex_lock(&w->m);
    w->rc = rc;
    w->done = true;
    pthread_cond_signal(&w->c);
    pthread_mutex_unlock(&w->m);
}

static void *strict_loop(void *arg)
{
    worker_t *w = arg;
    al_audit_event_t ev;
    make_event(&ev);
    while (!atomic_load(w->stop)) {
        w->done = false;
        uint64_t t0 = al_mono_ns();
        if (al_audit_submit(w->a, &ev, on_done, w, NULL, NULL) != AL_OK) {
            w->failed++;
            continue;
        }
        pthread_mutex_lock(&w->m);
        while (!w->done)
            pthread_cond_wait(&w->c, &w->m);
        pthread_mutex_unlock(&w->m);
        if (w->rc != AL_OK)
            w->failed++;
        if (w->n < MAX_SAMPLES)
            w->lat[w->n] = al_mono_ns() - t0;
        w->n++;
    }
    return NULL;
}

static void *async_loop(void *arg)
{
    worker_t *w = arg;
    al_audit_event_t ev;
    make_event(&ev);
    while (!atomic_load(w->stop)) {
        uint64_t a0 = t_allocs, t0 = al_mono_ns();
        int rc = al_audit_submit_async(w->a, &ev, NULL);
        uint64_t t1 = al_mono_ns();
        if (rc == AL_OK) {
            w->n++;
            w->submit_ns += t1 - t0;
            w->allocs += t_allocs - a0;
        } else {
            /* Queue full: the writer is the bottleneck. Yield the CPU to it
             * rather than spin, so the figure is the store's rate. */
            w->failed++;
            usleep(100);
        }
    }
    return NULL;
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

/* A store that keeps nothing: isolates what submission and the writer
 * thread cost from what the disk costs. */
static int null_append(al_audit_store_t *s, const al_audit_event_t *const *evs, size_t n,
                       char *err, size_t cap)
{
    (void)s, (void)evs, (void)n, (void)err, (void)cap;
    return AL_OK;
}
static int null_iterate(al_audit_store_t *s, int64_t after, al_audit_row_cb cb, void *ud,
                        char *err, size_t cap)
{
    (void)s, (void)after, (void)cb, (void)ud, (void)err, (void)cap;
    return AL_OK;
}
static int null_query(al_audit_store_t *s, const al_audit_filter_t *f, al_audit_row_cb cb,
                      void *ud, char *err, size_t cap)
{
    (void)s, (void)f, (void)cb, (void)ud, (void)err, (void)cap;
    return AL_OK;
}
static void null_close(al_audit_store_t *s) { (void)s; }
static const al_audit_store_ops_t null_ops = {
    .name = "null", .append = null_append, .iterate = null_iterate, .query = null_query,
    .close = null_close,
};
static al_audit_store_t null_store = {.ops = &null_ops, .where = "null"};

static al_audit_t *open_fresh(const char *dir, char *path, size_t cap)
{
    if (!dir) {
        al_audit_t *a = NULL;
        char err[AL_AUDIT_ERR_SIZE];
        path[0] = '\0';
        if (al_audit_open_store(&null_store, NULL, &a, err, sizeof err) != AL_OK)
            exit(1);
        return a;
    }
    snprintf(path, cap, "%s/bench-audit.db", dir);
    char side[600];
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    al_audit_opts_t o = {.path = path};
    al_audit_t *a = NULL;
    char err[AL_AUDIT_ERR_SIZE];
    if (al_audit_open(&o, &a, err, sizeof err) != AL_OK) {
        fprintf(stderr, "bench_audit: %s\n", err);
        exit(1);
    }
    return a;
}

static void remove_db(const char *path)
{
    char side[600];
    if (!*path)
        return;
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
}

static void run(const char *dir, bool strict, int nw, double secs)
{
    char path[512];
    al_audit_t *a = open_fresh(dir, path, sizeof path);
    atomic_bool stop = false;
    worker_t *w = calloc((size_t)nw, sizeof *w);
    pthread_t *th = calloc((size_t)nw, sizeof *th);
    for (int i = 0; i < nw; i++) {
        w[i].a = a;
        w[i].stop = &stop;
        pthread_mutex_init(&w[i].m, NULL);
        pthread_cond_init(&w[i].c, NULL);
        w[i].lat = strict ? calloc(MAX_SAMPLES, sizeof(uint64_t)) : NULL;
    }
    uint64_t t0 = al_mono_ns();
    for (int i = 0; i < nw; i++)
        pthread_create(&th[i], NULL, strict ? strict_loop : async_loop, &w[i]);
    usleep((useconds_t)(secs * 1e6));
    atomic_store(&stop, true);
    for (int i = 0; i < nw; i++)
        pthread_join(th[i], NULL);
    al_audit_stats_t s;
    al_audit_stats(a, &s);
    while (s.queue_depth) { /* async: the rate counts until everything committed */
        usleep(1000);
        al_audit_stats(a, &s);
    }
    double el = (double)(al_mono_ns() - t0) / 1e9;
    uint64_t failed = 0, sub_ns = 0, allocs = 0, subs = 0;
    for (int i = 0; i < nw; i++) {
        failed += w[i].failed;
        sub_ns += w[i].submit_ns;
        allocs += w[i].allocs;
        subs += w[i].n; /* accepted submissions: their cost is what matters */
    }
    char p50[16] = "-", p99[16] = "-", sub[16] = "-", al[16] = "-";
    if (strict) {
        size_t ns = 0;
        for (int i = 0; i < nw; i++)
            ns += AL_MIN(w[i].n, (uint64_t)MAX_SAMPLES);
        uint64_t *all = calloc(ns ? ns : 1, sizeof *all), *p = all;
        for (int i = 0; i < nw; i++) {
            size_t k = AL_MIN(w[i].n, (uint64_t)MAX_SAMPLES);
            memcpy(p, w[i].lat, k * sizeof *p);
            p += k;
        }
        qsort(all, ns, sizeof *all, cmp_u64);
        if (ns) {
            snprintf(p50, sizeof p50, "%.2f", (double)all[ns / 2] / 1e6);
            snprintf(p99, sizeof p99, "%.2f", (double)all[ns * 99 / 100] / 1e6);
        }
        free(all);
    } else if (subs) {
        snprintf(sub, sizeof sub, "%.0f", (double)sub_ns / (double)subs);
        if (COUNT_ALLOCS)
            snprintf(al, sizeof al, "%.2f", (double)allocs / (double)subs);
        else
            snprintf(al, sizeof al, "n/a");
    }
    printf("%-6s %4d %10.0f %9llu %8.1f %8s %8s %9s %7s %8llu\n", strict ? "strict" : dir ? "async" : "null", nw,
           (double)s.committed / el, (unsigned long long)s.batches,
           s.batches ? (double)s.committed / (double)s.batches : 0.0, p50, p99, sub, al,
           (unsigned long long)(failed + s.failed));
    al_audit_close(&a);
    fflush(stdout);
    for (int i = 0; i < nw; i++)
        free(w[i].lat);
    free(w);
    free(th);
    remove_db(path);
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 2.0;
    const char *dir = argc > 2 ? argv[2] : getenv("TMPDIR");
    if (!dir || !*dir)
        dir = "/tmp";
    if (!(secs > 0)) {
        fprintf(stderr, "usage: bench_audit [SECONDS] [DIR]\n");
        return 2;
    }
    al_log_set_level(AL_LOG_ERROR);
    printf("%-6s %4s %10s %9s %8s %8s %8s %9s %7s %8s\n", "mode", "thr", "events/s", "txns",
           "ev/txn", "p50 ms", "p99 ms", "submit ns", "allocs", "lost");
    if (getenv("BENCH_AUDIT_ASYNC_ONLY")) { /* for a profile of the writer: async, 1 thread */
        run(dir, false, 1, secs);
        return 0;
    }
    static const int writers[] = {1, 8, 64};
    for (size_t i = 0; i < AL_ARRAY_LEN(writers); i++)
        run(dir, true, writers[i], secs);
    run(dir, false, 1, secs);
    run(dir, false, 8, secs);
    run(NULL, false, 1, secs);
    run(NULL, false, 8, secs);
    return 0;
}
