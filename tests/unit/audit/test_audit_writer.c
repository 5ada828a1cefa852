/* test_audit_writer.c - the writer thread: strict callbacks only after the
 * commit is visible to another connection, group commit (deterministically
 * with a gated fake store, and with real concurrent submitters), the
 * bounded queue, async batching and flush interval, close draining, and
 * the counters. The fake store also shows the vtable is all a store needs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "audit_test.h"

/* ---- a gated fake store --------------------------------------------------------- */

typedef struct fake {
    al_audit_store_t base;
    pthread_mutex_t m;
    pthread_cond_t c;
    bool gate_open, in_append, fail, closed;
    size_t batches, events, sizes[1024];
    char last_session[64];
} fake_t;

static int fake_append(al_audit_store_t *s, const al_audit_event_t *const *evs, size_t n,
                       char *err, size_t cap)
{
    fake_t *f = (fake_t *)s;
    pthread_mutex_lock(&f->m);
    f->in_append = true;
    pthread_cond_broadcast(&f->c);
    while (!f->gate_open)
        pthread_cond_wait(&f->c, &f->m);
    if (f->batches < AL_ARRAY_LEN(f->sizes))
        f->sizes[f->batches] = n;
    f->batches++;
    f->events += n;
    if (n && evs[n - 1]->session_id)
        snprintf(f->last_session, sizeof f->last_session, "%s", evs[n - 1]->session_id);
    f->in_append = false;
    bool fail = f->fail;
    pthread_mutex_unlock(&f->m);
    if (fail) {
        snprintf(err, cap, "audit store: cannot commit: fake failure at %s", s->where);
        return AL_ERR;
    }
    return AL_OK;
}

static int fake_walk(al_audit_store_t *s, int64_t after, al_audit_row_cb cb, void *ud, char *err,
                     size_t cap)
{
    (void)s, (void)after, (void)cb, (void)ud, (void)err, (void)cap;
    return AL_OK;
}

static int fake_query(al_audit_store_t *s, const al_audit_filter_t *f, al_audit_row_cb cb,
                      void *ud, char *err, size_t cap)
{
    (void)s, (void)f, (void)cb, (void)ud, (void)err, (void)cap;
    return AL_OK;
}

static int fake_open(const char *where, const al_audit_opts_t *o, bool ro, al_audit_store_t **out,
                     char *err, size_t cap)
{
    (void)where, (void)o, (void)ro;
    *out = NULL;
    snprintf(err, cap, "fake: open by hand");
    return AL_ERR;
}

static void fake_close(al_audit_store_t *s) { ((fake_t *)s)->closed = true; }

static const al_audit_store_ops_t fake_ops = {
    .name = "fake", .open = fake_open, .append = fake_append, .iterate = fake_walk,
    .query = fake_query, .close = fake_close,
};

static void fake_init(fake_t *f, bool gate_open)
{
    memset(f, 0, sizeof *f);
    f->base.ops = &fake_ops;
    f->base.where = "fake";
    pthread_mutex_init(&f->m, NULL);
    pthread_cond_init(&f->c, NULL);
    f->gate_open = gate_open;
}

static void fake_wait_in_append(fake_t *f)
{
    pthread_mutex_lock(&f->m);
    while (!f->in_append)
        pthread_cond_wait(&f->c, &f->m);
    pthread_mutex_unlock(&f->m);
}

static void fake_open_gate(fake_t *f)
{
    pthread_mutex_lock(&f->m);
    f->gate_open = true;
    pthread_cond_broadcast(&f->c);
    pthread_mutex_unlock(&f->m);
}

static size_t fake_batches(fake_t *f)
{
    pthread_mutex_lock(&f->m);
    size_t n = f->batches;
    pthread_mutex_unlock(&f->m);
    return n;
}

static al_audit_t *writer_on(fake_t *f, const al_audit_opts_t *o)
{
    al_audit_t *a = NULL;
    char err[AL_AUDIT_ERR_SIZE];
    if (al_audit_open_store(&f->base, o, &a, err, sizeof err) != AL_OK)
        fail_msg("open: %s", err);
    return a;
}

/* ---- callback bookkeeping (writer thread: record, never assert) ---------------- */

typedef struct done {
    pthread_mutex_t m;
    pthread_cond_t c;
    int ok, err, odd;
    char msg[AL_AUDIT_ERR_SIZE];
} done_t;

static void done_init(done_t *d)
{
    memset(d, 0, sizeof *d);
    pthread_mutex_init(&d->m, NULL);
    pthread_cond_init(&d->c, NULL);
}

static void on_done(void *ud, int rc, const char *id, const char *err)
{
    done_t *d = ud;
    pthread_mutex_lock(&d->m);
    d->odd += !id || strlen(id) != 36;
    if (rc == AL_OK) {
        d->ok++;
        d->odd += err != NULL;
    } else {
        d->err++;
        d->odd += rc != AL_ERR || !err;
        snprintf(d->msg, sizeof d->msg, "%s", err ? err : "");
    }
    pthread_cond_broadcast(&d->c);
    pthread_mutex_unlock(&d->m);
}

static int done_count(done_t *d)
{
    pthread_mutex_lock(&d->m);
    int n = d->ok + d->err;
    pthread_mutex_unlock(&d->m);
    return n;
}

static void done_wait(done_t *d, int n)
{
    pthread_mutex_lock(&d->m);
    while (d->ok + d->err < n)
        pthread_cond_wait(&d->c, &d->m);
    pthread_mutex_unlock(&d->m);
}

static void event_with_session(al_audit_event_t *ev, const char *sid)
{
    al_audit_event_init(ev);
    ev->agent = "bot";
    ev->session_id = sid;
    ev->action = AL_STR("SELECT 1");
}

/* ---- group commit, deterministic ------------------------------------------------- */

static void test_events_queued_during_commit_form_next_batch(void **st)
{
    (void)st;
    fake_t f;
    fake_init(&f, false);
    al_audit_t *a = writer_on(&f, NULL);
    done_t d;
    done_init(&d);
    al_audit_event_t ev;
    event_with_session(&ev, "first");
    assert_int_equal(al_audit_submit(a, &ev, on_done, &d, NULL, NULL), AL_OK);
    fake_wait_in_append(&f); /* the first commit is running */
    char sid[16];
    for (int i = 0; i < 10; i++) {
        snprintf(sid, sizeof sid, "s%d", i);
        event_with_session(&ev, sid);
        assert_int_equal(al_audit_submit(a, &ev, on_done, &d, NULL, NULL), AL_OK);
    }
    for (int i = 0; i < 5; i++)
        assert_int_equal(al_audit_submit_async(a, &ev, NULL), AL_OK);
    assert_int_equal(done_count(&d), 0); /* nothing committed: no callback yet */
    fake_open_gate(&f);
    done_wait(&d, 11);
    al_audit_close(&a);
    assert_int_equal(d.ok, 11);
    assert_int_equal(d.odd, 0);
    assert_int_equal(f.batches, 2);
    assert_int_equal(f.sizes[0], 1);
    assert_int_equal(f.sizes[1], 15);
    assert_true(f.closed);
}

static void test_queue_full(void **st)
{
    (void)st;
    fake_t f;
    fake_init(&f, false);
    al_audit_opts_t o = {.queue_capacity = 4};
    al_audit_t *a = writer_on(&f, &o);
    done_t d;
    done_init(&d);
    al_audit_event_t ev;
    event_with_session(&ev, "q");
    assert_int_equal(al_audit_submit(a, &ev, on_done, &d, NULL, NULL), AL_OK);
    fake_wait_in_append(&f);
    for (int i = 0; i < 3; i++)
        assert_int_equal(al_audit_submit(a, &ev, on_done, &d, NULL, NULL), AL_OK);
    /* The capacity counts the batch being committed: 4 now, all full. */
    const char *why = NULL;
    char id[AL_AUDIT_ID_SIZE] = "unchanged";
    assert_int_equal(al_audit_submit(a, &ev, on_done, &d, id, &why), AL_ERR);
    assert_string_equal(why, "audit queue full");
    assert_string_equal(id, "unchanged");
    assert_int_equal(al_audit_submit_async(a, &ev, NULL), AL_AGAIN);
    al_audit_stats_t s;
    al_audit_stats(a, &s);
    assert_int_equal(s.rejected, 1);
    assert_int_equal(s.dropped, 1);
    assert_int_equal(s.queue_depth, 4);
    assert_int_equal(s.queue_capacity, 4);
    fake_open_gate(&f);
    done_wait(&d, 4);
    al_audit_stats(a, &s);
    assert_int_equal(s.queue_depth, 0);
    assert_int_equal(s.committed, 4);
    /* room again */
    char err[AL_AUDIT_ERR_SIZE];
    assert_int_equal(al_audit_write_sync(a, &ev, id, err, sizeof err), AL_OK);
    assert_int_equal(strlen(id), 36);
    al_audit_close(&a);
    assert_int_equal(d.ok, 4); /* the refused one never got a callback */
    assert_int_equal(d.odd, 0);
}

static void test_max_batch_and_async_drain_on_close(void **st)
{
    (void)st;
    fake_t f;
    fake_init(&f, true);
    al_audit_opts_t o = {.max_batch = 8, .flush_interval = 10};
    al_audit_t *a = writer_on(&f, &o);
    al_audit_event_t ev;
    event_with_session(&ev, "x");
    char sid[16];
    for (int i = 0; i < 100; i++) {
        snprintf(sid, sizeof sid, "a%d", i);
        ev.session_id = sid;
        assert_int_equal(al_audit_submit_async(a, &ev, NULL), AL_OK);
    }
    al_audit_close(&a); /* drains without waiting out the 10 s interval */
    assert_int_equal(f.events, 100);
    assert_string_equal(f.last_session, "a99");
    for (size_t i = 0; i < f.batches; i++)
        assert_true(f.sizes[i] >= 1 && f.sizes[i] <= 8);
    assert_true(f.batches >= 13);
}

static void test_async_flush_interval(void **st)
{
    (void)st;
    fake_t f;
    fake_init(&f, true);
    al_audit_opts_t o = {.flush_interval = 0.3};
    al_audit_t *a = writer_on(&f, &o);
    al_audit_event_t ev;
    event_with_session(&ev, "async");
    uint64_t t0 = al_mono_ns();
    assert_int_equal(al_audit_submit_async(a, &ev, NULL), AL_OK);
    usleep(100000);
    assert_int_equal(fake_batches(&f), 0); /* held for the flush interval */
    while (fake_batches(&f) == 0 && al_mono_ns() - t0 < 5000000000u)
        usleep(2000);
    uint64_t took = al_mono_ns() - t0;
    assert_int_equal(fake_batches(&f), 1);
    assert_true(took >= 290000000u);

    /* A strict event does not wait: it takes the pending async ones along. */
    done_t d;
    done_init(&d);
    assert_int_equal(al_audit_submit_async(a, &ev, NULL), AL_OK);
    t0 = al_mono_ns();
    assert_int_equal(al_audit_submit(a, &ev, on_done, &d, NULL, NULL), AL_OK);
    done_wait(&d, 1);
    assert_true(al_mono_ns() - t0 < 250000000u);
    assert_int_equal(fake_batches(&f), 2);
    assert_int_equal(f.sizes[1], 2);
    al_audit_close(&a);
}

static void test_failure_reaches_every_caller(void **st)
{
    (void)st;
    fake_t f;
    fake_init(&f, false);
    f.fail = true;
    al_audit_t *a = writer_on(&f, NULL);
    done_t d;
    done_init(&d);
    al_audit_event_t ev;
    event_with_session(&ev, "f");
    assert_int_equal(al_audit_submit(a, &ev, on_done, &d, NULL, NULL), AL_OK);
    fake_wait_in_append(&f);
    for (int i = 0; i < 6; i++)
        assert_int_equal(al_audit_submit(a, &ev, on_done, &d, NULL, NULL), AL_OK);
    assert_int_equal(al_audit_submit_async(a, &ev, NULL), AL_OK);
    fake_open_gate(&f);
    done_wait(&d, 7);
    char err[AL_AUDIT_ERR_SIZE];
    assert_int_equal(al_audit_write_sync(a, &ev, NULL, err, sizeof err), AL_ERR);
    assert_string_equal(err, "audit store: cannot commit: fake failure at fake");
    al_audit_stats_t s;
    al_audit_stats(a, &s);
    al_audit_close(&a);
    assert_int_equal(d.ok, 0);
    assert_int_equal(d.err, 7);
    assert_int_equal(d.odd, 0);
    assert_string_equal(d.msg, "audit store: cannot commit: fake failure at fake");
    assert_int_equal(s.failed, 9); /* 7 strict + 1 async + the sync one */
    assert_int_equal(s.committed, 0);
    assert_int_equal(s.batches, 0);
    assert_int_equal(s.batches_failed, 3);
}

/* ---- SQLite: callbacks after commit, real group commit ----------------------------- */

typedef struct visible {
    const char *path;
    pthread_mutex_t m;
    int checked, missing;
} visible_t;

/* On the writer thread, at callback time: is the row already there for a
 * connection of its own? Only if the transaction committed. */
static void check_visible(void *ud, int rc, const char *id, const char *err)
{
    (void)err;
    visible_t *v = ud;
    sqlite3 *db = NULL;
    int64_t n = -1;
    if (rc == AL_OK && sqlite3_open_v2(v->path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, "SELECT count(*) FROM audit_event WHERE id = ?", -1, &st,
                               NULL) == SQLITE_OK) {
            sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
            if (sqlite3_step(st) == SQLITE_ROW)
                n = sqlite3_column_int64(st, 0);
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    pthread_mutex_lock(&v->m);
    v->checked++;
    v->missing += n != 1;
    pthread_mutex_unlock(&v->m);
}

static void test_strict_callback_after_commit(void **st)
{
    (void)st;
    tdir_t t;
    tdir_make(&t);
    al_audit_opts_t o = {.path = t.db};
    al_audit_t *a = NULL;
    char err[AL_AUDIT_ERR_SIZE];
    assert_int_equal(al_audit_open(&o, &a, err, sizeof err), AL_OK);
    visible_t v = {.path = t.db, .m = PTHREAD_MUTEX_INITIALIZER};
    al_audit_event_t ev;
    full_event(&ev);
    for (int i = 0; i < 60; i++)
        assert_int_equal(al_audit_submit(a, &ev, check_visible, &v, NULL, NULL), AL_OK);
    al_audit_close(&a);
    assert_int_equal(v.checked, 60);
    assert_int_equal(v.missing, 0);
    tdir_remove(&t);
}

typedef struct submitter {
    al_audit_t *a;
    int n, ok;
    done_t d;
} submitter_t;

static void *submit_loop(void *arg)
{
    submitter_t *s = arg;
    al_audit_event_t ev;
    full_event(&ev);
    for (int i = 0; i < s->n; i++) {
        if (al_audit_submit(s->a, &ev, on_done, &s->d, NULL, NULL) != AL_OK)
            break;
        done_wait(&s->d, i + 1); /* wait for this one's commit before the next */
    }
    s->ok = s->d.ok;
    return NULL;
}

static void test_group_commit_concurrent(void **st)
{
    (void)st;
    tdir_t t;
    tdir_make(&t);
    al_audit_opts_t o = {.path = t.db};
    al_audit_t *a = NULL;
    char err[AL_AUDIT_ERR_SIZE];
    assert_int_equal(al_audit_open(&o, &a, err, sizeof err), AL_OK);
    enum { THREADS = 16, EACH = 25 };
    submitter_t s[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        s[i] = (submitter_t){.a = a, .n = EACH};
        done_init(&s[i].d);
        assert_int_equal(pthread_create(&th[i], NULL, submit_loop, &s[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(s[i].ok, EACH);
        assert_int_equal(s[i].d.odd, 0);
    }
    al_audit_stats_t stx;
    al_audit_stats(a, &stx);
    al_audit_close(&a);
    print_message("%d strict events from %d threads in %llu transactions\n", THREADS * EACH,
                  THREADS, (unsigned long long)stx.batches);
    assert_int_equal(stx.committed, THREADS * EACH);
    /* Group commit: far fewer transactions than events. */
    assert_true(stx.batches < (uint64_t)(THREADS * EACH) / 2);
    sqlite3 *db = db_open(t.db);
    assert_int_equal(db_int(db, "SELECT count(DISTINCT id) FROM audit_event"), THREADS * EACH);
    assert_int_equal(db_int(db, "SELECT max(seq) FROM audit_event"), THREADS * EACH);
    sqlite3_close(db);
    al_audit_store_t *rs = NULL;
    assert_int_equal(al_audit_store_open(t.db, NULL, true, &rs, err, sizeof err), AL_OK);
    al_audit_verify_t v;
    assert_int_equal(al_audit_verify(rs, &v, err, sizeof err), AL_OK);
    assert_true(v.intact);
    assert_int_equal(v.events, THREADS * EACH);
    al_audit_store_close(&rs);
    tdir_remove(&t);
}

typedef struct order {
    char ids[300][AL_AUDIT_ID_SIZE];
    size_t n;
} order_t;

static int collect_order(void *ud, const al_audit_row_t *row)
{
    order_t *o = ud;
    if (o->n < 300)
        snprintf(o->ids[o->n], AL_AUDIT_ID_SIZE, "%s", row->ev.id);
    o->n++;
    return AL_OK;
}

static void test_close_drains_in_submission_order(void **st)
{
    (void)st;
    tdir_t t;
    tdir_make(&t);
    al_audit_opts_t o = {.path = t.db};
    al_audit_t *a = NULL;
    char err[AL_AUDIT_ERR_SIZE];
    assert_int_equal(al_audit_open(&o, &a, err, sizeof err), AL_OK);
    done_t d;
    done_init(&d);
    static order_t want, got;
    memset(&want, 0, sizeof want);
    memset(&got, 0, sizeof got);
    al_audit_event_t ev;
    full_event(&ev);
    for (int i = 0; i < 300; i++) {
        int rc = i % 3 ? al_audit_submit(a, &ev, on_done, &d, want.ids[i], NULL)
                       : al_audit_submit_async(a, &ev, want.ids[i]);
        assert_int_equal(rc, AL_OK);
    }
    al_audit_close(&a);
    assert_int_equal(d.ok, 200);
    assert_int_equal(d.odd, 0);
    al_audit_store_t *rs = NULL;
    assert_int_equal(al_audit_store_open(t.db, NULL, true, &rs, err, sizeof err), AL_OK);
    assert_int_equal(al_audit_store_iterate(rs, 0, collect_order, &got, err, sizeof err), AL_OK);
    al_audit_store_close(&rs);
    assert_int_equal(got.n, 300);
    for (int i = 0; i < 300; i++)
        assert_string_equal(got.ids[i], want.ids[i]);
    tdir_remove(&t);
}

static void test_metrics(void **st)
{
    (void)st;
    fake_t f;
    fake_init(&f, true);
    al_audit_t *a = writer_on(&f, NULL);
    al_audit_event_t ev;
    event_with_session(&ev, "m");
    char err[AL_AUDIT_ERR_SIZE];
    for (int i = 0; i < 3; i++)
        assert_int_equal(al_audit_write_sync(a, &ev, NULL, err, sizeof err), AL_OK);
    al_buf_t b;
    al_buf_init(&b);
    assert_int_equal(al_audit_metrics(a, &b), AL_OK);
    assert_non_null(strstr(b.p, "airlock_audit_events_total{result=\"committed\"} 3\n"));
    assert_non_null(strstr(b.p, "airlock_audit_events_total{result=\"dropped\"} 0\n"));
    assert_non_null(strstr(b.p, "airlock_audit_batches_total{result=\"ok\"} 3\n"));
    assert_non_null(strstr(b.p, "airlock_audit_queue_depth 0\n"));
    assert_non_null(strstr(b.p, "airlock_audit_queue_capacity 65536\n"));
    assert_non_null(strstr(b.p, "# TYPE airlock_audit_events_total counter\n"));
    al_buf_free(&b);
    al_audit_close(&a);
    assert_null(a);
    al_audit_close(&a); /* NULL is fine */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_events_queued_during_commit_form_next_batch),
        cmocka_unit_test(test_queue_full),
        cmocka_unit_test(test_max_batch_and_async_drain_on_close),
        cmocka_unit_test(test_async_flush_interval),
        cmocka_unit_test(test_failure_reaches_every_caller),
        cmocka_unit_test(test_strict_callback_after_commit),
        cmocka_unit_test(test_group_commit_concurrent),
        cmocka_unit_test(test_close_drains_in_submission_order),
        cmocka_unit_test(test_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
