/* test_sessions.c - the live-session registry and the kill switch, with two
 * workers whose inboxes are drained by hand (no threads): registration,
 * listing, kill by id, disable/enable with persistence, revoke hooks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "runtime/revoked.h"
#include "runtime/runtime.h"
#include "runtime/sessions.h"

typedef struct fake {
    al_sess_t *e;
    char id[40];
    int kills;
    char reason[32];
    char note[128];
} fake_t;

static al_runtime_t rt;
static al_worker_t workers[2];
static char dir[64];
static int hooks;
static char hook_agent[32];

static void on_wake(uv_async_t *a) { (void)a; }

static int setup(void **st)
{
    (void)st;
    snprintf(dir, sizeof dir, "/tmp/al-sessions-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    memset(&rt, 0, sizeof rt);
    memset(workers, 0, sizeof workers);
    rt.sessions = al_sess_reg_new(dir);
    rt.revoked = al_revset_empty();
    rt.workers = workers;
    rt.n_workers = 2;
    for (int i = 0; i < 2; i++) {
        al_worker_t *w = &workers[i];
        w->id = i;
        w->rt = &rt;
        w->revoked = al_revset_ref(rt.revoked);
        pthread_mutex_init(&w->inbox_lock, NULL);
        uv_loop_init(&w->loop);
        uv_async_init(&w->loop, &w->wake, on_wake);
    }
    hooks = 0;
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    for (int i = 0; i < 2; i++) {
        al_worker_t *w = &workers[i];
        uv_close((uv_handle_t *)&w->wake, NULL);
        uv_run(&w->loop, UV_RUN_DEFAULT);
        uv_loop_close(&w->loop);
        al_revset_unref(&w->revoked);
        al_revset_unref(&w->inbox_rev);
        al_sess_kill_free(&w->inbox_kill);
        pthread_mutex_destroy(&w->inbox_lock);
    }
    al_revset_unref(&rt.revoked);
    al_sess_reg_free(&rt.sessions);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

/* The gateway side of a kill: record it, then close (end the entry). */
static void fake_kill(void *arg, const char *reason)
{
    fake_t *f = arg;
    f->kills++;
    snprintf(f->reason, sizeof f->reason, "%s", reason);
    snprintf(f->note, sizeof f->note, "%s", al_sess_note(f->e));
    al_sess_end(&f->e);
}

static void start(fake_t *f, int worker, const char *id, const char *agent)
{
    memset(f, 0, sizeof *f);
    snprintf(f->id, sizeof f->id, "%s", id);
    f->e = al_sess_start(&workers[worker],
                         &(al_sess_info_t){.id = f->id, .protocol = "postgres",
                                           .target = "appdb", .client = "127.0.0.1:5555",
                                           .kill = fake_kill, .sess = f});
    assert_non_null(f->e);
    if (agent) {
        al_principal_t p = {.agent = agent, .sub = agent};
        al_sess_identify(f->e, &p);
    }
}

/* What the runtime's worker_on_wake does with the inbox. */
static void wake(int i)
{
    al_worker_t *w = &workers[i];
    pthread_mutex_lock(&w->inbox_lock);
    al_revset_t *rev = w->inbox_rev;
    al_sess_kill_t *k = w->inbox_kill;
    w->inbox_rev = NULL;
    w->inbox_kill = NULL;
    pthread_mutex_unlock(&w->inbox_lock);
    if (rev || k)
        al_sess_worker_wake(w, rev, k);
}

static json_t *list(const char *agent)
{
    al_buf_t b;
    al_buf_init(&b);
    assert_int_equal(al_sess_list_json(&rt, agent, &b), AL_OK);
    json_error_t je;
    json_t *doc = json_loadb(b.p, b.len, 0, &je);
    assert_non_null(doc);
    al_buf_free(&b);
    return json_object_get(doc, "sessions") ? doc : NULL;
}

static void test_list_fields_and_counters(void **st)
{
    (void)st;
    fake_t a, b;
    start(&a, 0, "s-a", "bot");
    start(&b, 1, "s-b", NULL);
    al_sess_bytes(a.e, 100, 0);
    al_sess_bytes(a.e, 20, 3000);
    al_sess_action(a.e);
    al_sess_action(a.e);
    json_t *doc = list(NULL);
    json_t *arr = json_object_get(doc, "sessions");
    assert_int_equal(json_array_size(arr), 2);
    json_t *s = NULL, *it;
    size_t i;
    json_array_foreach(arr, i, it) if (!strcmp(json_string_value(json_object_get(it, "id")), "s-a")) s = it;
    assert_non_null(s);
    assert_string_equal(json_string_value(json_object_get(s, "agent")), "bot");
    assert_string_equal(json_string_value(json_object_get(s, "target")), "appdb");
    assert_string_equal(json_string_value(json_object_get(s, "protocol")), "postgres");
    assert_string_equal(json_string_value(json_object_get(s, "client")), "127.0.0.1:5555");
    assert_int_equal(json_integer_value(json_object_get(s, "bytes_up")), 120);
    assert_int_equal(json_integer_value(json_object_get(s, "bytes_down")), 3000);
    assert_int_equal(json_integer_value(json_object_get(s, "actions")), 2);
    assert_int_equal(json_integer_value(json_object_get(s, "worker")), 0);
    json_decref(doc);
    doc = list("bot");
    assert_int_equal(json_array_size(json_object_get(doc, "sessions")), 1);
    json_decref(doc);
    assert_int_equal(al_sess_count_agent(&rt, "bot"), 1);
    assert_true(al_sess_last_seen(&rt, "bot") > 0);
    assert_true(al_sess_last_seen(&rt, "ro") == 0);
    assert_true(al_sess_exists(&rt, "s-b"));
    const char *names[] = {"ro", "bot", "x"};
    size_t live[3];
    double seen[3];
    al_sess_agent_stats(&rt, names, 3, live, seen);
    assert_int_equal(live[0], 0);
    assert_int_equal(live[1], 1);
    assert_int_equal(live[2], 0);
    assert_true(seen[1] > 0 && seen[0] == 0 && seen[2] == 0);
    al_sess_end(&a.e);
    al_sess_end(&b.e);
    assert_null(a.e);
    assert_false(al_sess_exists(&rt, "s-b"));
    assert_true(al_sess_last_seen(&rt, "bot") > 0); /* remembered after the end */
    /* NULL entries are accepted everywhere */
    al_sess_action(NULL);
    al_sess_bytes(NULL, 1, 1);
    al_sess_identify(NULL, NULL);
    al_sess_end(&a.e);
}

static void test_kill_one(void **st)
{
    (void)st;
    fake_t a, b, c;
    start(&a, 0, "s-a", "bot");
    start(&b, 0, "s-b", "bot");
    start(&c, 1, "s-c", "bot");
    assert_int_equal(al_sess_kill(&rt, "nope", "x", "op", ""), AL_ERR);
    assert_int_equal(al_sess_kill(&rt, "s-b", "runaway", "op", "ref-1"), AL_OK);
    assert_null(workers[1].inbox_kill); /* only the owner gets it */
    wake(1);
    assert_int_equal(b.kills, 0);
    wake(0);
    assert_int_equal(b.kills, 1);
    assert_string_equal(b.reason, AL_SESS_KILLED);
    assert_string_equal(b.note, "runaway");
    assert_int_equal(a.kills + c.kills, 0);
    assert_false(al_sess_exists(&rt, "s-b"));
    /* a kill that arrives after its session ended finds nothing */
    assert_int_equal(al_sess_kill(&rt, "s-a", "", "op", ""), AL_OK);
    al_sess_end(&a.e);
    wake(0);
    assert_int_equal(a.kills, 0);
    al_sess_end(&c.e);
}

static void on_revoke(void *ud, const char *agent, const char *reason, const char *by)
{
    (void)ud;
    (void)reason;
    (void)by;
    hooks++;
    snprintf(hook_agent, sizeof hook_agent, "%s", agent);
}

static void test_disable_enable(void **st)
{
    (void)st;
    fake_t a, b, c, d;
    start(&a, 0, "s-a", "bot");
    start(&b, 1, "s-b", "bot");
    start(&c, 1, "s-c", "ro");
    start(&d, 0, "s-d", NULL); /* not authenticated yet */
    assert_int_equal(al_killswitch_on_revoke(&rt, on_revoke, NULL), AL_OK);
    char err[1024];
    al_revoked_t e = {"bot", "leaked", "op", "ev-1", al_now()};
    assert_int_equal(al_killswitch_disable(&rt, &e, err, sizeof err), AL_OK);
    assert_int_equal(hooks, 1);
    assert_string_equal(hook_agent, "bot");
    /* the control thread's set first, then each worker's on wake-up */
    assert_non_null(al_revset_find(rt.revoked, "bot"));
    assert_null(al_revset_find(workers[0].revoked, "bot"));
    wake(0);
    wake(1);
    assert_non_null(al_revset_find(workers[0].revoked, "bot"));
    assert_non_null(al_revset_find(workers[1].revoked, "bot"));
    assert_int_equal(a.kills, 1);
    assert_int_equal(b.kills, 1);
    assert_string_equal(a.reason, AL_SESS_REVOKED);
    assert_string_equal(b.note, "leaked");
    assert_int_equal(c.kills + d.kills, 0);
    /* persisted */
    al_revset_t *l = NULL;
    assert_int_equal(al_revset_load(dir, &l, err, sizeof err), AL_OK);
    assert_string_equal(al_revset_find(l, "bot")->event_id, "ev-1");
    al_revset_unref(&l);
    /* enable */
    assert_int_equal(al_killswitch_enable(&rt, "ro", err, sizeof err), AL_AGAIN);
    assert_int_equal(al_killswitch_enable(&rt, "bot", err, sizeof err), AL_OK);
    wake(0);
    assert_null(al_revset_find(workers[0].revoked, "bot"));
    assert_int_equal(al_revset_load(dir, &l, err, sizeof err), AL_OK);
    assert_int_equal(al_revset_count(l), 0);
    al_revset_unref(&l);
    wake(1);
    al_sess_end(&c.e);
    al_sess_end(&d.e);
}

/* The save fails: a disable still takes effect (and says it is not
 * persisted); an enable does not (fail closed). */
static void test_save_failure(void **st)
{
    (void)st;
    char err[1024];
    fake_t a;
    start(&a, 0, "s-a", "bot");
    char moved[80];
    snprintf(moved, sizeof moved, "%s.gone", dir);
    assert_int_equal(rename(dir, moved), 0);
    al_revoked_t e = {"bot", "", "op", "", al_now()};
    assert_int_equal(al_killswitch_disable(&rt, &e, err, sizeof err), AL_ERR);
    assert_non_null(strstr(err, "NOT persisted"));
    wake(0);
    assert_int_equal(a.kills, 1);
    assert_int_equal(al_killswitch_enable(&rt, "bot", err, sizeof err), AL_ERR);
    assert_non_null(strstr(err, "stays disabled"));
    assert_non_null(al_revset_find(rt.revoked, "bot"));
    assert_int_equal(rename(moved, dir), 0);
    wake(1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_list_fields_and_counters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disable_enable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_failure, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
