/* test_approval_hold.c - the gateways' approval hold (src/proto/approval_hold.c)
 * on a real libuv loop and a real approvals store: grants, retry, wait
 * with approve and deny, cancel on detach, and the hold's own timeout
 * guard when nobody ticks the store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../approvals/approvals_test.h"
#include "proto/approval_hold.h"

static const char yaml[] =
    "server: { data_dir: \"@DIR@\" }\n"
    "policies:\n"
    "  - { name: waitr, who: ['*'], targets: ['*'], action: approve, approvers: [dba] }\n"
    "  - { name: rty, who: ['*'], targets: ['*'], action: approve, approvers: [dba],\n"
    "      mode: retry }\n"
    "  - { name: quick, who: ['*'], targets: ['*'], action: approve, approvers: [dba],\n"
    "      timeout: 1s }\n";

static const char *const bot_groups[] = {"etl"};
static const char *const dba_groups[] = {"dba"};
static const al_approver_t alice = {.name = "alice", .subject = "sub-alice",
                                    .issuer = "https://idp.test", .groups = dba_groups,
                                    .n_groups = 1};

typedef struct tx {
    fx_t f;
    uv_loop_t loop;
    al_runtime_t rt;
    al_snapshot_t snap;
    int calls;
    al_hold_result_t last;
    char id[AL_APPROVAL_ID_SIZE], reason[256], grant[AL_APPROVAL_ID_SIZE];
    al_grant_use_t use;
    al_hold_t *h;
} tx_t;

static void on_result(void *ud, const al_hold_result_t *r)
{
    tx_t *t = ud;
    t->calls++;
    t->last = *r;
    snprintf(t->id, sizeof t->id, "%s", r->id ? r->id : "");
    snprintf(t->reason, sizeof t->reason, "%s", r->reason ? r->reason : "");
    snprintf(t->grant, sizeof t->grant, "%s", r->use ? r->use->grant_id : "");
    if (r->use)
        t->use = *r->use;
    /* r's strings live in the hold, freed after a final outcome */
    t->last.id = t->id;
    t->last.reason = t->reason;
    t->last.use = r->use ? &t->use : NULL;
    if (r->outcome != AL_HOLD_WAITING)
        al_hold_detach(&t->h);
}

static int setup(void **state)
{
    tx_t *t = calloc(1, sizeof *t);
    fx_dir(&t->f);
    t->f.cfg = fx_config(&t->f, yaml);
    fx_open_at(&t->f, 0, 0);
    uv_loop_init(&t->loop);
    t->rt.approvals = t->f.a;
    t->snap.refs = 1; /* the test's own reference: never freed by the hold */
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    tx_t *t = *state;
    al_hold_detach(&t->h);
    uv_run(&t->loop, UV_RUN_DEFAULT); /* the hold's jobs and handles end */
    assert_int_equal(uv_loop_close(&t->loop), 0);
    assert_int_equal(t->snap.refs, 1);
    fx_done(&t->f);
    free(t);
    return 0;
}

static void start(tx_t *t, const char *rule, const char *action)
{
    const al_policy_conf_t *r = fx_rule(&t->f, rule);
    al_approval_req_t q = {.agent = "bot", .subject = "sub-bot", .issuer = "https://idp.test",
                           .groups = bot_groups, .n_groups = 1, .target = "db",
                           .protocol = "postgres", .action = al_str_c(action), .rule = r,
                           .mode = r->mode, .session_id = "s1"};
    t->calls = 0;
    t->h = al_hold_start(&t->loop, &t->rt, &t->snap, &q, on_result, t);
}

/* Runs the loop until the callback was called n times in all. */
static void run_until(tx_t *t, int n)
{
    double end = al_now() + 20;
    while (t->calls < n && al_now() < end)
        uv_run(&t->loop, UV_RUN_ONCE);
    assert_int_equal(t->calls, n);
}

static void test_retry_then_grant(void **state)
{
    tx_t *t = *state;
    start(t, "rty", "DROP TABLE x");
    run_until(t, 1);
    assert_int_equal(t->last.outcome, AL_HOLD_RETRY);
    char id[AL_APPROVAL_ID_SIZE];
    snprintf(id, sizeof id, "%s", t->id);
    char msg[512];
    al_hold_message(&t->last, msg, sizeof msg);
    char want[256];
    snprintf(want, sizeof want, "airlock: approval required (request %s); ask an approver: "
                                "airlock approvals approve %s", id, id);
    assert_string_equal(msg, want);
    /* the same action while pending: the same request */
    start(t, "rty", "DROP TABLE x;");
    run_until(t, 1);
    assert_int_equal(t->last.outcome, AL_HOLD_RETRY);
    assert_string_equal(t->id, id);
    al_approval_outcome_t o;
    assert_int_equal(al_approvals_approve(t->f.a, id, &alice, NULL, NULL, al_now(), &o),
                     AL_APPR_OK);
    start(t, "rty", "DROP TABLE x");
    run_until(t, 1);
    assert_int_equal(t->last.outcome, AL_HOLD_GRANTED);
    assert_string_equal(t->id, id);
    assert_string_equal(t->grant, o.grant_id);
    char why[128];
    assert_string_equal(al_hold_audit_reason(&t->last, why, sizeof why) + 15, o.grant_id);
    /* once: used up */
    start(t, "rty", "DROP TABLE x");
    run_until(t, 1);
    assert_int_equal(t->last.outcome, AL_HOLD_RETRY);
    assert_string_not_equal(t->id, id);
}

static void test_wait_approve(void **state)
{
    tx_t *t = *state;
    start(t, "waitr", "ALTER TABLE y ADD c int");
    run_until(t, 1);
    assert_int_equal(t->last.outcome, AL_HOLD_WAITING);
    char id[AL_APPROVAL_ID_SIZE];
    snprintf(id, sizeof id, "%s", t->id);
    assert_non_null(t->h);
    al_approval_outcome_t o;
    assert_int_equal(al_approvals_approve(t->f.a, id, &alice, NULL, NULL, al_now(), &o),
                     AL_APPR_OK);
    run_until(t, 2);
    assert_int_equal(t->last.outcome, AL_HOLD_APPROVED);
    assert_string_equal(t->grant, o.grant_id);
    /* the once grant was claimed by the held action */
    start(t, "waitr", "ALTER TABLE y ADD c int");
    run_until(t, 1);
    assert_int_equal(t->last.outcome, AL_HOLD_WAITING);
    assert_string_not_equal(t->id, id);
}

static void test_wait_deny(void **state)
{
    tx_t *t = *state;
    start(t, "waitr", "TRUNCATE z");
    run_until(t, 1);
    char id[AL_APPROVAL_ID_SIZE];
    snprintf(id, sizeof id, "%s", t->id);
    assert_int_equal(al_approvals_deny(t->f.a, id, &alice, "not today", al_now(), NULL),
                     AL_APPR_OK);
    run_until(t, 2);
    assert_int_equal(t->last.outcome, AL_HOLD_ENDED);
    assert_int_equal(t->last.state, AL_APPROVAL_DENIED);
    assert_string_equal(t->reason, "not today");
    char msg[512];
    al_hold_message(&t->last, msg, sizeof msg);
    assert_non_null(strstr(msg, "approval denied"));
    assert_non_null(strstr(msg, "not today"));
}

static void test_detach_cancels(void **state)
{
    tx_t *t = *state;
    start(t, "waitr", "DROP SCHEMA s");
    run_until(t, 1);
    char id[AL_APPROVAL_ID_SIZE];
    snprintf(id, sizeof id, "%s", t->id);
    al_hold_detach(&t->h);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    char why[64];
    al_approval_state_t st;
    assert_int_equal(al_approvals_status(t->f.a, id, &st, why, sizeof why), AL_APPR_OK);
    assert_int_equal(st, AL_APPROVAL_CANCELLED);
    assert_string_equal(why, "client_disconnected");
    assert_int_equal(t->calls, 1);
}

/* Detached while the first job still runs: the request it raises is
 * cancelled once the job is back. */
static void test_detach_while_starting(void **state)
{
    tx_t *t = *state;
    start(t, "waitr", "DROP SCHEMA early");
    al_hold_detach(&t->h);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    assert_int_equal(t->calls, 0);
    al_approval_filter_t f = {.state = "pending"};
    char err[256];
    json_t *a = al_approvals_list_json(t->f.a, &f, al_now(), err, sizeof err);
    assert_non_null(a);
    assert_int_equal(json_array_size(a), 0);
    json_decref(a);
}

/* Nobody ticks the store here: the hold's guard times the request out. */
static void test_guard_times_out(void **state)
{
    tx_t *t = *state;
    double t0 = al_now();
    start(t, "quick", "VACUUM");
    run_until(t, 2);
    assert_int_equal(t->last.outcome, AL_HOLD_ENDED);
    assert_int_equal(t->last.state, AL_APPROVAL_TIMED_OUT);
    assert_true(al_now() - t0 >= 1.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_retry_then_grant, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_approve, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_deny, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detach_cancels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detach_while_starting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guard_times_out, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
