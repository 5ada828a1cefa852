/* test_approvals.c - the approvals service (src/approvals): requests and
 * listing, who may approve, min_approvals, denial, expiry, each grant kind,
 * restart recovery, waiters, fingerprints and the config keys. The clock
 * is passed in, so nothing here sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sys/stat.h>
#include <time.h>

#include "approvals_test.h"

#define T0 1700000000.0

static const char yaml[] =
    "server: { data_dir: \"@DIR@\" }\n"
    "approvals: { max_pending_per_agent: 4 }\n"
    "policies:\n"
    "  - { name: ddl, who: ['*'], targets: ['*'], action: approve, approvers: [dba] }\n"
    "  - { name: two, who: ['*'], targets: ['*'], action: approve, approvers: [dba, sec],\n"
    "      min_approvals: 2 }\n"
    "  - { name: dur, who: ['*'], targets: ['*'], action: approve, approvers: [dba],\n"
    "      grant: 15m }\n"
    "  - { name: sess, who: ['*'], targets: ['*'], action: approve, approvers: [dba],\n"
    "      grant: session }\n"
    "  - { name: tgt, who: ['*'], targets: ['*'], action: approve, approvers: [dba],\n"
    "      grant: target, timeout: 10m }\n"
    "  - { name: rty, who: ['*'], targets: ['*'], action: approve, approvers: [dba],\n"
    "      mode: retry }\n";

static const char *const bot_groups[] = {"etl"};
static const char *const dba_groups[] = {"dev", "dba"};
static const char *const sec_groups[] = {"sec"};
static const char *const dev_groups[] = {"dev", "ops"};

static const al_approver_t alice = {.name = "alice", .subject = "sub-alice",
                                    .issuer = "https://idp.test", .groups = dba_groups,
                                    .n_groups = 2};
static const al_approver_t bob = {.name = "bob", .subject = "sub-bob",
                                  .issuer = "https://idp.test", .groups = sec_groups,
                                  .n_groups = 1};
static const al_approver_t carol = {.name = "carol", .subject = "sub-carol",
                                    .issuer = "https://idp.test", .groups = dev_groups,
                                    .n_groups = 2};
static const al_approver_t boot = {.name = "bootstrap", .bootstrap = true};

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    fx_dir(f);
    f->cfg = fx_config(f, yaml);
    fx_open_at(f, T0, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    fx_done(f);
    free(f);
    return 0;
}

/* A request by agent migrator (sub-migrator) under rule `rule`. */
static al_approval_req_t req(const fx_t *f, const char *rule, const char *action)
{
    const al_policy_conf_t *r = fx_rule(f, rule);
    return (al_approval_req_t){
        .agent = "migrator", .owner = "data-team", .subject = "sub-migrator",
        .issuer = "https://idp.test", .groups = bot_groups, .n_groups = 1,
        .target = "orders-db", .protocol = "postgres", .action = al_str_c(action),
        .rule = r, .mode = r->mode, .session_id = "sess-1",
    };
}

static void create_ok(fx_t *f, const al_approval_req_t *r, double now, al_approval_created_t *c)
{
    al_approval_status_t s = al_approvals_create(f->a, r, now, c);
    if (s != AL_APPR_OK)
        fail_msg("create: %s", al_approval_reason(s));
}

static al_approval_state_t state_of(fx_t *f, const char *id, char *reason, size_t cap)
{
    al_approval_state_t st = AL_APPROVAL_PENDING;
    assert_int_equal(al_approvals_status(f->a, id, &st, reason, cap), AL_APPR_OK);
    return st;
}

static al_grant_check_t check(fx_t *f, const char *agent, const char *target, const char *fp,
                              const char *rule, const char *sess, double now,
                              al_grant_use_t *u)
{
    al_grant_query_t q = {.agent = agent, .target = target, .fingerprint = fp, .rule = rule,
                          .session_id = sess};
    return al_approvals_check(f->a, &q, now, u);
}

/* ---- waiters used by several tests --------------------------------------------------- */

typedef struct seen {
    pthread_mutex_t mu;
    int calls;
    al_approval_state_t state;
    char reason[256];
    char grant[AL_APPROVAL_ID_SIZE];
} seen_t;

static void on_decided(void *ud, const al_approval_event_t *ev)
{
    seen_t *s = ud;
    pthread_mutex_lock(&s->mu);
    s->calls++;
    s->state = ev->state;
    snprintf(s->reason, sizeof s->reason, "%s", ev->reason ? ev->reason : "");
    snprintf(s->grant, sizeof s->grant, "%s", ev->grant_id ? ev->grant_id : "");
    pthread_mutex_unlock(&s->mu);
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_create_and_list(void **state)
{
    fx_t *f = *state;
    al_approval_req_t r = req(f, "ddl", "ALTER TABLE orders ADD c int");
    al_approval_created_t c;
    create_ok(f, &r, T0, &c);
    assert_int_equal(strlen(c.id), 36);
    assert_int_equal(c.id[14], '7'); /* UUIDv7 */
    assert_int_equal(strlen(c.fingerprint), 64);
    assert_false(c.existing);
    assert_true(c.expires_at > T0 + 299.9 && c.expires_at < T0 + 300.1);
    assert_int_equal(state_of(f, c.id, NULL, 0), AL_APPROVAL_PENDING);

    struct stat sb;
    assert_int_equal(stat(f->db, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);

    char err[AL_APPROVALS_ERR_SIZE];
    json_t *arr = al_approvals_list_json(f->a, NULL, T0 + 1, err, sizeof err);
    assert_non_null(arr);
    assert_int_equal(json_array_size(arr), 1);
    json_t *o = json_array_get(arr, 0);
    assert_string_equal(json_string_value(json_object_get(o, "id")), c.id);
    assert_string_equal(json_string_value(json_object_get(o, "agent")), "migrator");
    assert_string_equal(json_string_value(json_object_get(o, "owner")), "data-team");
    assert_string_equal(json_string_value(json_object_get(o, "target")), "orders-db");
    assert_string_equal(json_string_value(json_object_get(o, "protocol")), "postgres");
    assert_string_equal(json_string_value(json_object_get(o, "action")),
                        "ALTER TABLE orders ADD c int");
    assert_string_equal(json_string_value(json_object_get(o, "rule")), "ddl");
    assert_string_equal(json_string_value(json_object_get(o, "state")), "pending");
    assert_string_equal(json_string_value(json_object_get(o, "mode")), "wait");
    assert_string_equal(json_string_value(json_object_get(o, "fingerprint")), c.fingerprint);
    assert_string_equal(json_string_value(json_object_get(o, "requested_at")),
                        "2023-11-14T22:13:20.000Z");
    assert_string_equal(json_string_value(json_object_get(o, "expires_at")),
                        "2023-11-14T22:18:20.000Z");
    assert_true(json_is_null(json_object_get(o, "decided_at")));
    assert_string_equal(json_string_value(json_array_get(json_object_get(o, "approvers"), 0)),
                        "dba");
    json_decref(arr);

    /* Filters: by state, and a bad state name is an error. */
    al_approval_filter_t flt = {.state = "approved"};
    arr = al_approvals_list_json(f->a, &flt, T0 + 1, err, sizeof err);
    assert_int_equal(json_array_size(arr), 0);
    json_decref(arr);
    flt.state = "bogus";
    assert_null(al_approvals_list_json(f->a, &flt, T0 + 1, err, sizeof err));
    assert_non_null(strstr(err, "bogus"));

    /* Invalid UTF-8 in the action is kept in the store, shown as U+FFFD. */
    al_approval_req_t r2 = req(f, "ddl", "SELECT '\xff'");
    al_approval_created_t c2;
    create_ok(f, &r2, T0 + 2, &c2);
    o = al_approvals_get_json(f->a, c2.id, err, sizeof err);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "action")), "SELECT '\xef\xbf\xbd'");
    json_decref(o);
    assert_null(al_approvals_get_json(f->a, "nope", err, sizeof err));
    assert_string_equal(err, "unknown_request");
}

static void test_create_refusals(void **state)
{
    fx_t *f = *state;
    al_approval_created_t c;
    al_approval_req_t r = req(f, "ddl", "DROP TABLE x");
    r.agent = NULL;
    assert_int_equal(al_approvals_create(f->a, &r, T0, &c), AL_APPR_BAD_REQUEST);
    r = req(f, "ddl", "DROP TABLE x");
    r.rule = NULL;
    assert_int_equal(al_approvals_create(f->a, &r, T0, &c), AL_APPR_BAD_REQUEST);
    r = req(f, "ddl", "x");
    r.action.len = AL_APPROVALS_MAX_ACTION + 1; /* never read: refused on length */
    assert_int_equal(al_approvals_create(f->a, &r, T0, &c), AL_APPR_ACTION_TOO_LARGE);
    assert_string_equal(al_approval_reason(AL_APPR_ACTION_TOO_LARGE), "action_too_large");

    /* max_pending_per_agent: 4 from the config. */
    for (int i = 0; i < 4; i++) {
        char sql[32];
        snprintf(sql, sizeof sql, "DROP TABLE t%d", i);
        r = req(f, "ddl", sql);
        create_ok(f, &r, T0, &c);
    }
    r = req(f, "ddl", "DROP TABLE t9");
    assert_int_equal(al_approvals_create(f->a, &r, T0, &c), AL_APPR_TOO_MANY_PENDING);
    /* Another agent is not affected. */
    r.agent = "other-bot";
    create_ok(f, &r, T0, &c);
    /* Once they expire they no longer count. */
    r.agent = "migrator";
    create_ok(f, &r, T0 + 301, &c);
}

static void test_approve_by_group(void **state)
{
    fx_t *f = *state;
    al_approval_req_t r = req(f, "ddl", "ALTER TABLE orders ADD c int");
    al_approval_created_t c;
    create_ok(f, &r, T0, &c);
    seen_t s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    uint64_t tok = 0;
    assert_int_equal(al_approvals_wait(f->a, c.id, on_decided, &s, &tok), AL_APPR_OK);
    assert_true(tok != 0);

    al_approval_outcome_t out;
    assert_int_equal(al_approvals_approve(f->a, c.id, &alice, NULL, "looks fine", T0 + 10, &out),
                     AL_APPR_OK);
    assert_int_equal(out.state, AL_APPROVAL_APPROVED);
    assert_int_equal(out.approvals, 1);
    assert_int_equal(out.needed, 1);
    assert_int_equal(out.grant_kind, AL_GRANT_ONCE);
    assert_int_equal(strlen(out.grant_id), 36);
    assert_int_equal(state_of(f, c.id, NULL, 0), AL_APPROVAL_APPROVED);
    char grant[AL_APPROVAL_ID_SIZE];
    snprintf(grant, sizeof grant, "%s", out.grant_id);

    /* The waiter was told, once, with the grant. */
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.state, AL_APPROVAL_APPROVED);
    assert_string_equal(s.grant, out.grant_id);
    assert_false(al_approvals_unwait(f->a, tok)); /* already fired */

    /* The held action claims its grant by request id. */
    al_grant_query_t q = {.agent = "migrator", .target = "orders-db",
                          .fingerprint = c.fingerprint, .request_id = c.id};
    al_grant_use_t u;
    assert_int_equal(al_approvals_check(f->a, &q, T0 + 11, &u), AL_GRANT_FOUND);
    assert_string_equal(u.grant_id, out.grant_id);
    assert_string_equal(u.request_id, c.id);
    assert_int_equal(u.kind, AL_GRANT_ONCE);

    /* Decided: no second vote, no waiting. */
    assert_int_equal(al_approvals_approve(f->a, c.id, &boot, NULL, NULL, T0 + 12, &out),
                     AL_APPR_NOT_PENDING);
    assert_int_equal(out.state, AL_APPROVAL_APPROVED);
    assert_int_equal(al_approvals_wait(f->a, c.id, on_decided, &s, &tok), AL_APPR_NOT_PENDING);
    assert_int_equal(al_approvals_approve(f->a, "0190-none", &alice, NULL, NULL, T0, &out),
                     AL_APPR_UNKNOWN_REQUEST);

    /* The vote is listed with its approver. */
    char err[AL_APPROVALS_ERR_SIZE];
    json_t *o = al_approvals_get_json(f->a, c.id, err, sizeof err);
    json_t *v = json_array_get(json_object_get(o, "votes"), 0);
    assert_string_equal(json_string_value(json_object_get(v, "approver")), "alice");
    assert_string_equal(json_string_value(json_object_get(v, "vote")), "approve");
    assert_string_equal(json_string_value(json_object_get(o, "grant_id")), grant);
    assert_string_equal(json_string_value(json_object_get(o, "decided_by")), "alice");
    json_decref(o);
}

static void test_self_approval_refused(void **state)
{
    fx_t *f = *state;
    al_approval_req_t r = req(f, "ddl", "TRUNCATE orders");
    al_approval_created_t c;
    create_ok(f, &r, T0, &c);
    al_approval_outcome_t out;
    /* Same agent name, even holding the approver group. */
    al_approver_t self = alice;
    self.name = "migrator";
    assert_int_equal(al_approvals_approve(f->a, c.id, &self, NULL, NULL, T0 + 1, &out),
                     AL_APPR_SELF_APPROVAL);
    /* Same issuer and subject under another name. */
    self = alice;
    self.subject = "sub-migrator";
    assert_int_equal(al_approvals_approve(f->a, c.id, &self, NULL, NULL, T0 + 1, &out),
                     AL_APPR_SELF_APPROVAL);
    assert_int_equal(al_approvals_deny(f->a, c.id, &self, "no", T0 + 1, &out),
                     AL_APPR_SELF_APPROVAL);
    /* Same subject at another issuer is someone else. */
    self.issuer = "https://other-idp.test";
    assert_int_equal(al_approvals_approve(f->a, c.id, &self, NULL, NULL, T0 + 1, &out),
                     AL_APPR_OK);
    assert_string_equal(al_approval_reason(AL_APPR_SELF_APPROVAL), "self_approval");
}

static void test_not_an_approver(void **state)
{
    fx_t *f = *state;
    al_approval_req_t r = req(f, "ddl", "TRUNCATE orders");
    al_approval_created_t c;
    create_ok(f, &r, T0, &c);
    al_approval_outcome_t out;
    assert_int_equal(al_approvals_approve(f->a, c.id, &carol, NULL, NULL, T0 + 1, &out),
                     AL_APPR_NOT_AN_APPROVER);
    assert_int_equal(al_approvals_deny(f->a, c.id, &carol, "no", T0 + 1, &out),
                     AL_APPR_NOT_AN_APPROVER);
    /* No identity at all. */
    al_approver_t anon = {.name = "x", .groups = dba_groups, .n_groups = 2};
    assert_int_equal(al_approvals_approve(f->a, c.id, &anon, NULL, NULL, T0 + 1, &out),
                     AL_APPR_NO_IDENTITY);
    assert_int_equal(state_of(f, c.id, NULL, 0), AL_APPROVAL_PENDING);
    /* The bootstrap token may approve any rule. */
    assert_int_equal(al_approvals_approve(f->a, c.id, &boot, NULL, NULL, T0 + 1, &out),
                     AL_APPR_OK);
    assert_int_equal(out.state, AL_APPROVAL_APPROVED);
}

static void test_min_approvals(void **state)
{
    fx_t *f = *state;
    al_approval_req_t r = req(f, "two", "DELETE FROM orders WHERE id = 7");
    al_approval_created_t c;
    create_ok(f, &r, T0, &c);
    al_approval_outcome_t out;
    assert_int_equal(al_approvals_approve(f->a, c.id, &alice, NULL, NULL, T0 + 1, &out),
                     AL_APPR_OK);
    assert_int_equal(out.state, AL_APPROVAL_PENDING);
    assert_int_equal(out.approvals, 1);
    assert_int_equal(out.needed, 2);
    assert_string_equal(out.grant_id, "");
    /* The same approver twice counts once, also under another name. */
    al_approver_t again = alice;
    again.name = "alice2";
    assert_int_equal(al_approvals_approve(f->a, c.id, &again, NULL, NULL, T0 + 2, &out),
                     AL_APPR_ALREADY_VOTED);
    assert_int_equal(state_of(f, c.id, NULL, 0), AL_APPROVAL_PENDING);
    al_grant_use_t u;
    assert_int_equal(check(f, "migrator", "orders-db", c.fingerprint, "two", NULL, T0 + 2, &u),
                     AL_GRANT_NONE);
    assert_int_equal(al_approvals_approve(f->a, c.id, &bob, NULL, NULL, T0 + 3, &out),
                     AL_APPR_OK);
    assert_int_equal(out.state, AL_APPROVAL_APPROVED);
    assert_int_equal(out.approvals, 2);
    assert_int_equal(check(f, "migrator", "orders-db", c.fingerprint, "two", NULL, T0 + 4, &u),
                     AL_GRANT_FOUND);
}

static void test_deny_with_reason(void **state)
{
    fx_t *f = *state;
    al_approval_req_t r = req(f, "ddl", "DROP TABLE customers");
    al_approval_created_t c;
    create_ok(f, &r, T0, &c);
    seen_t s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    uint64_t tok;
    assert_int_equal(al_approvals_wait(f->a, c.id, on_decided, &s, &tok), AL_APPR_OK);
    al_approval_outcome_t out;
    assert_int_equal(al_approvals_deny(f->a, c.id, &alice, NULL, T0 + 1, &out),
                     AL_APPR_REASON_REQUIRED);
    assert_int_equal(al_approvals_deny(f->a, c.id, &alice, " \t", T0 + 1, &out),
                     AL_APPR_REASON_REQUIRED);
    assert_int_equal(s.calls, 0);
    assert_int_equal(al_approvals_deny(f->a, c.id, &alice, "not in prod\r\nplease", T0 + 1,
                                       &out),
                     AL_APPR_OK);
    assert_int_equal(out.state, AL_APPROVAL_DENIED);
    char reason[128];
    assert_int_equal(state_of(f, c.id, reason, sizeof reason), AL_APPROVAL_DENIED);
    assert_string_equal(reason, "not in prod  please"); /* one line for the agent */
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.state, AL_APPROVAL_DENIED);
    assert_string_equal(s.reason, "not in prod  please");
    assert_int_equal(al_approvals_approve(f->a, c.id, &bob, NULL, NULL, T0 + 2, &out),
                     AL_APPR_NOT_PENDING);
    assert_int_equal(out.state, AL_APPROVAL_DENIED);
    al_grant_use_t u;
    assert_int_equal(check(f, "migrator", "orders-db", c.fingerprint, "ddl", NULL, T0 + 2, &u),
                     AL_GRANT_NONE);

    /* A veto after one's own approval (min_approvals 2). */
    r = req(f, "two", "DROP TABLE x");
    create_ok(f, &r, T0, &c);
    assert_int_equal(al_approvals_approve(f->a, c.id, &alice, NULL, NULL, T0 + 1, &out),
                     AL_APPR_OK);
    assert_int_equal(al_approvals_deny(f->a, c.id, &alice, "changed my mind", T0 + 2, &out),
                     AL_APPR_OK);
    assert_int_equal(state_of(f, c.id, NULL, 0), AL_APPROVAL_DENIED);
}

static void test_timeout(void **state)
{
    fx_t *f = *state;
    al_approval_req_t r = req(f, "ddl", "VACUUM FULL orders");
    al_approval_created_t c, c2;
    create_ok(f, &r, T0, &c);
    r.action = AL_STR("VACUUM FULL customers");
    create_ok(f, &r, T0 + 100, &c2);
    seen_t s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    uint64_t tok;
    assert_int_equal(al_approvals_wait(f->a, c.id, on_decided, &s, &tok), AL_APPR_OK);

    double next = 0;
    assert_int_equal(al_approvals_tick(f->a, T0 + 299, &next), 0);
    assert_true(next > T0 + 299.9 && next < T0 + 300.1);
    assert_int_equal(s.calls, 0);
    assert_int_equal(al_approvals_tick(f->a, T0 + 300, &next), 1);
    assert_true(next > T0 + 399.9 && next < T0 + 400.1); /* c2's */
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.state, AL_APPROVAL_TIMED_OUT);
    char reason[64];
    assert_int_equal(state_of(f, c.id, reason, sizeof reason), AL_APPROVAL_TIMED_OUT);
    assert_string_equal(reason, "timeout");
    al_approval_outcome_t out;
    assert_int_equal(al_approvals_approve(f->a, c.id, &alice, NULL, NULL, T0 + 301, &out),
                     AL_APPR_NOT_PENDING);

    /* Without a tick, a vote past the expiry finds it expired. */
    assert_int_equal(al_approvals_approve(f->a, c2.id, &alice, NULL, NULL, T0 + 400, &out),
                     AL_APPR_EXPIRED);
    assert_int_equal(out.state, AL_APPROVAL_TIMED_OUT);
    assert_int_equal(state_of(f, c2.id, NULL, 0), AL_APPROVAL_TIMED_OUT);
    assert_int_equal(al_approvals_tick(f->a, T0 + 500, &next), 0);
    assert_true(next == 0);
}

static void test_grant_once_consumed(void **state)
{
    fx_t *f = *state;
    al_approval_req_t r = req(f, "rty", "UPDATE orders SET paid = true WHERE id = 1");
    al_approval_created_t c;
    create_ok(f, &r, T0, &c);
    al_approval_outcome_t out;
    assert_int_equal(al_approvals_approve(f->a, c.id, &alice, NULL, NULL, T0 + 5, &out),
                     AL_APPR_OK);
    assert_int_equal(out.grant_kind, AL_GRANT_ONCE);
    assert_true(out.grant_expires_at > T0 + 304.9); /* the retry window: the rule's timeout */
    al_grant_use_t u;
    /* Another agent, another target or another action: not covered. */
    assert_int_equal(check(f, "other-bot", "orders-db", c.fingerprint, "rty", NULL, T0 + 6, &u),
                     AL_GRANT_NONE);
    assert_int_equal(check(f, "migrator", "billing-db", c.fingerprint, "rty", NULL, T0 + 6, &u),
                     AL_GRANT_NONE);
    char fp2[AL_APPROVAL_FP_SIZE];
    al_approvals_fingerprint("orders-db", "postgres",
                             AL_STR("UPDATE orders SET paid = true WHERE id = 2"), fp2);
    assert_int_equal(check(f, "migrator", "orders-db", fp2, "rty", NULL, T0 + 6, &u),
                     AL_GRANT_NONE);
    /* The retried action (trailing ';' and spaces do not matter) passes once. */
    char fp[AL_APPROVAL_FP_SIZE];
    al_approvals_fingerprint("orders-db", "postgres",
                             AL_STR("  UPDATE orders SET paid = true WHERE id = 1 ;\n"), fp);
    assert_string_equal(fp, c.fingerprint);
    assert_int_equal(check(f, "migrator", "orders-db", fp, "rty", "sess-9", T0 + 6, &u),
                     AL_GRANT_FOUND);
    assert_string_equal(u.grant_id, out.grant_id);
    assert_int_equal(check(f, "migrator", "orders-db", fp, "rty", "sess-9", T0 + 7, &u),
                     AL_GRANT_NONE);
    assert_string_equal(u.grant_id, "");

    /* An unused once grant expires with its window. */
    r.action = AL_STR("UPDATE orders SET paid = true WHERE id = 3");
    create_ok(f, &r, T0, &c);
    assert_int_equal(al_approvals_approve(f->a, c.id, &alice, NULL, NULL, T0 + 5, &out),
                     AL_APPR_OK);
    assert_int_equal(check(f, "migrator", "orders-db", c.fingerprint, "rty", NULL, T0 + 306, &u),
                     AL_GRANT_NONE);
}

/* Many threads race for one `once` grant: exactly one wins. */
typedef struct race {
    fx_t *f;
    const char *fp;
    int found;
} race_t;

static void *racer(void *arg)
{
    race_t *r = arg;
    al_grant_use_t u;
    r->found = check(r->f, "migrator", "orders-db", r->fp, "ddl", NULL, T0 + 2, &u) ==
               AL_GRANT_FOUND;
    return NULL;
}

static void test_grant_once_race(void **state)
{
    fx_t *f = *state;
    al_approval_req_t r = req(f, "ddl", "DELETE FROM sessions");
    al_approval_created_t c;
    create_ok(f, &r, T0, &c);
    assert_int_equal(al_approvals_approve(f->a, c.id, &alice, NULL, NULL, T0 + 1, NULL),
                     AL_APPR_OK);
    pthread_t th[8];
    race_t rs[8];
    for (int i = 0; i < 8; i++) {
        rs[i] = (race_t){f, c.fingerprint, 0};
        assert_int_equal(pthread_create(&th[i], NULL, racer, &rs[i]), 0);
    }
    int wins = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        wins += rs[i].found;
    }
    assert_int_equal(wins, 1);
}

static void test_duration_grant_expiry(void **state)
{
    fx_t *f = *state;
    al_approval_req_t r = req(f, "dur", "SELECT * FROM payroll");
    al_approval_created_t c;
    create_ok(f, &r, T0, &c);
    al_approval_outcome_t out;
    assert_int_equal(al_approvals_approve(f->a, c.id, &alice, NULL, NULL, T0 + 60, &out),
                     AL_APPR_OK);
    assert_int_equal(out.grant_kind, AL_GRANT_DURATION);
    al_grant_use_t u;
    /* Not consumed by use. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(
            check(f, "migrator", "orders-db", c.fingerprint, "dur", NULL, T0 + 61 + i, &u),
            AL_GRANT_FOUND);
    assert_int_equal(u.kind, AL_GRANT_DURATION);
    assert_true(u.expires_at > T0 + 60 + 899.9 && u.expires_at < T0 + 60 + 900.1);
    assert_int_equal(check(f, "migrator", "orders-db", c.fingerprint, "dur", NULL,
                           T0 + 60 + 899, &u),
                     AL_GRANT_FOUND);
    assert_int_equal(check(f, "migrator", "orders-db", c.fingerprint, "dur", NULL,
                           T0 + 60 + 900, &u),
                     AL_GRANT_NONE);

    /* --for on a `once` rule: that fingerprint for that long. */
    r = req(f, "ddl", "ANALYZE orders");
    create_ok(f, &r, T0, &c);
    assert_int_equal(al_approvals_approve(f->a, c.id, &alice, "90x", NULL, T0 + 1, &out),
                     AL_APPR_BAD_GRANT);
    assert_int_equal(al_approvals_approve(f->a, c.id, &alice, "8d", NULL, T0 + 1, &out),
                     AL_APPR_BAD_GRANT);
    assert_int_equal(al_approvals_approve(f->a, c.id, &alice, "1m", NULL, T0 + 1, &out),
                     AL_APPR_OK);
    assert_int_equal(out.grant_kind, AL_GRANT_DURATION);
    assert_true(out.grant_expires_at > T0 + 60.9 && out.grant_expires_at < T0 + 61.1);
    assert_int_equal(check(f, "migrator", "orders-db", c.fingerprint, "ddl", NULL, T0 + 30, &u),
                     AL_GRANT_FOUND);
    assert_int_equal(check(f, "migrator", "orders-db", c.fingerprint, "ddl", NULL, T0 + 31, &u),
                     AL_GRANT_FOUND);
    assert_int_equal(check(f, "migrator", "orders-db", c.fingerprint, "ddl", NULL, T0 + 62, &u),
                     AL_GRANT_NONE);

    /* Several approvers with --for: the shortest wins. */
    r = req(f, "two", "ANALYZE customers");
    create_ok(f, &r, T0, &c);
    assert_int_equal(al_approvals_approve(f->a, c.id, &alice, "10m", NULL, T0, &out),
                     AL_APPR_OK);
    assert_int_equal(al_approvals_approve(f->a, c.id, &bob, "2m", NULL, T0, &out), AL_APPR_OK);
    assert_true(out.grant_expires_at > T0 + 119.9 && out.grant_expires_at < T0 + 120.1);
}

static void test_session_grant_scoped(void **state)
{
    fx_t *f = *state;
    al_approval_req_t r = req(f, "sess", "CREATE INDEX ON orders(id)");
    r.session_id = "sess-A";
    al_approval_created_t c;
    create_ok(f, &r, T0, &c);
    al_approval_outcome_t out;
    assert_int_equal(al_approvals_approve(f->a, c.id, &alice, NULL, NULL, T0 + 1, &out),
                     AL_APPR_OK);
    assert_int_equal(out.grant_kind, AL_GRANT_SESSION);
    char fp2[AL_APPROVAL_FP_SIZE];
    al_approvals_fingerprint("orders-db", "postgres", AL_STR("CREATE INDEX ON customers(id)"),
                             fp2);
    al_grant_use_t u;
    /* Any action the same rule holds, in the same session. */
    assert_int_equal(check(f, "migrator", "orders-db", fp2, "sess", "sess-A", T0 + 2, &u),
                     AL_GRANT_FOUND);
    assert_int_equal(u.kind, AL_GRANT_SESSION);
    assert_int_equal(check(f, "migrator", "orders-db", fp2, "sess", "sess-A", T0 + 3, &u),
                     AL_GRANT_FOUND);
    /* Not another session, rule, agent or target. */
    assert_int_equal(check(f, "migrator", "orders-db", fp2, "sess", "sess-B", T0 + 3, &u),
                     AL_GRANT_NONE);
    assert_int_equal(check(f, "migrator", "orders-db", fp2, "sess", NULL, T0 + 3, &u),
                     AL_GRANT_NONE);
    assert_int_equal(check(f, "migrator", "orders-db", fp2, "ddl", "sess-A", T0 + 3, &u),
                     AL_GRANT_NONE);
    assert_int_equal(check(f, "other-bot", "orders-db", fp2, "sess", "sess-A", T0 + 3, &u),
                     AL_GRANT_NONE);
    assert_int_equal(check(f, "migrator", "billing-db", fp2, "sess", "sess-A", T0 + 3, &u),
                     AL_GRANT_NONE);
    /* Capped at session_grant_max (24h by default). */
    assert_int_equal(check(f, "migrator", "orders-db", fp2, "sess", "sess-A", T0 + 86402, &u),
                     AL_GRANT_NONE);
    /* The session ends: so does the grant. */
    assert_int_equal(al_approvals_session_end(f->a, "sess-A", T0 + 4), 0);
    assert_int_equal(check(f, "migrator", "orders-db", fp2, "sess", "sess-A", T0 + 5, &u),
                     AL_GRANT_NONE);

    /* A session rule without a session id grants once. */
    r = req(f, "sess", "CREATE INDEX ON x(id)");
    r.session_id = NULL;
    create_ok(f, &r, T0, &c);
    assert_int_equal(al_approvals_approve(f->a, c.id, &alice, NULL, NULL, T0 + 1, &out),
                     AL_APPR_OK);
    assert_int_equal(out.grant_kind, AL_GRANT_ONCE);
}

static void test_target_grant(void **state)
{
    fx_t *f = *state;
    al_approval_req_t r = req(f, "tgt", "DELETE FROM audit_tmp");
    al_approval_created_t c;
    create_ok(f, &r, T0, &c);
    al_approval_outcome_t out;
    assert_int_equal(al_approvals_approve(f->a, c.id, &alice, NULL, NULL, T0 + 1, &out),
                     AL_APPR_OK);
    assert_int_equal(out.grant_kind, AL_GRANT_TARGET);
    /* The rule's timeout (10m) bounds it. */
    assert_true(out.grant_expires_at > T0 + 600.9 && out.grant_expires_at < T0 + 601.1);
    char fp2[AL_APPROVAL_FP_SIZE];
    al_approvals_fingerprint("orders-db", "postgres", AL_STR("TRUNCATE anything"), fp2);
    al_grant_use_t u;
    assert_int_equal(check(f, "migrator", "orders-db", fp2, "ddl", "s9", T0 + 2, &u),
                     AL_GRANT_FOUND);
    assert_int_equal(u.kind, AL_GRANT_TARGET);
    assert_int_equal(check(f, "migrator", "orders-db", fp2, NULL, NULL, T0 + 600, &u),
                     AL_GRANT_FOUND);
    assert_int_equal(check(f, "migrator", "billing-db", fp2, "ddl", "s9", T0 + 2, &u),
                     AL_GRANT_NONE);
    assert_int_equal(check(f, "other-bot", "orders-db", fp2, "ddl", "s9", T0 + 2, &u),
                     AL_GRANT_NONE);
    assert_int_equal(check(f, "migrator", "orders-db", fp2, "ddl", "s9", T0 + 602, &u),
                     AL_GRANT_NONE);

    /* --for sets its length; disabling the agent revokes it. */
    r.action = AL_STR("DELETE FROM audit_tmp2");
    create_ok(f, &r, T0, &c);
    assert_int_equal(al_approvals_approve(f->a, c.id, &alice, "2h", NULL, T0 + 1, &out),
                     AL_APPR_OK);
    assert_int_equal(check(f, "migrator", "orders-db", fp2, "ddl", "s9", T0 + 3600, &u),
                     AL_GRANT_FOUND);
    r.action = AL_STR("DELETE FROM audit_tmp3");
    create_ok(f, &r, T0 + 2, &c);
    assert_int_equal(al_approvals_cancel_agent(f->a, "migrator", "agent_disabled", T0 + 5), 1);
    char reason[64];
    assert_int_equal(state_of(f, c.id, reason, sizeof reason), AL_APPROVAL_CANCELLED);
    assert_string_equal(reason, "agent_disabled");
    assert_int_equal(check(f, "migrator", "orders-db", fp2, "ddl", "s9", T0 + 6, &u),
                     AL_GRANT_NONE);
}

static void test_restart(void **state)
{
    fx_t *f = *state;
    al_approval_created_t w, rt, old, dur, ses;
    al_approval_req_t r = req(f, "ddl", "ALTER TABLE a ADD b int");
    create_ok(f, &r, T0, &w);
    r = req(f, "rty", "ALTER TABLE a ADD c int");
    create_ok(f, &r, T0, &rt);
    r = req(f, "rty", "ALTER TABLE a ADD d int");
    create_ok(f, &r, T0 - 1000, &old); /* expired before the restart */
    r = req(f, "dur", "SELECT 1");
    create_ok(f, &r, T0, &dur);
    assert_int_equal(al_approvals_approve(f->a, dur.id, &alice, NULL, NULL, T0, NULL),
                     AL_APPR_OK);
    r = req(f, "sess", "SELECT 2");
    create_ok(f, &r, T0, &ses);
    assert_int_equal(al_approvals_approve(f->a, ses.id, &alice, NULL, NULL, T0, NULL),
                     AL_APPR_OK);
    al_grant_use_t u;
    assert_int_equal(check(f, "migrator", "orders-db", ses.fingerprint, "sess", "sess-1",
                           T0 + 1, &u),
                     AL_GRANT_FOUND);

    al_approvals_close(&f->a);
    fx_open_at(f, T0 + 10, 0);

    char reason[64];
    assert_int_equal(state_of(f, w.id, reason, sizeof reason), AL_APPROVAL_ABANDONED);
    assert_string_equal(reason, "restart");
    assert_int_equal(state_of(f, rt.id, NULL, 0), AL_APPROVAL_PENDING);
    assert_int_equal(state_of(f, old.id, NULL, 0), AL_APPROVAL_TIMED_OUT);
    /* The retry request can still be approved, and is then usable. */
    assert_int_equal(al_approvals_approve(f->a, rt.id, &alice, NULL, NULL, T0 + 11, NULL),
                     AL_APPR_OK);
    assert_int_equal(check(f, "migrator", "orders-db", rt.fingerprint, "rty", NULL, T0 + 12,
                           &u),
                     AL_GRANT_FOUND);
    assert_int_equal(al_approvals_approve(f->a, w.id, &alice, NULL, NULL, T0 + 11, NULL),
                     AL_APPR_NOT_PENDING);
    /* Grants survive, except session grants (their session died). */
    assert_int_equal(check(f, "migrator", "orders-db", dur.fingerprint, "dur", NULL, T0 + 12,
                           &u),
                     AL_GRANT_FOUND);
    assert_int_equal(check(f, "migrator", "orders-db", ses.fingerprint, "sess", "sess-1",
                           T0 + 12, &u),
                     AL_GRANT_NONE);
}

static void test_retry_dedup_and_cancel(void **state)
{
    fx_t *f = *state;
    al_approval_req_t r = req(f, "rty", "DELETE FROM carts");
    al_approval_created_t c1, c2, c3;
    create_ok(f, &r, T0, &c1);
    create_ok(f, &r, T0 + 5, &c2);
    assert_true(c2.existing);
    assert_string_equal(c1.id, c2.id);
    /* Wait mode never reuses: each held statement is its own request. */
    r = req(f, "ddl", "DELETE FROM carts");
    create_ok(f, &r, T0, &c3);
    assert_string_not_equal(c3.id, c1.id);
    assert_false(c3.existing);

    seen_t s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    uint64_t tok, tok2;
    assert_int_equal(al_approvals_wait(f->a, c3.id, on_decided, &s, &tok), AL_APPR_OK);
    assert_int_equal(al_approvals_cancel(f->a, c3.id, "client_disconnected", T0 + 1),
                     AL_APPR_OK);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.state, AL_APPROVAL_CANCELLED);
    assert_string_equal(s.reason, "client_disconnected");
    assert_int_equal(al_approvals_cancel(f->a, c3.id, "again", T0 + 1), AL_APPR_NOT_PENDING);
    assert_int_equal(al_approvals_cancel(f->a, "nope", "x", T0 + 1), AL_APPR_UNKNOWN_REQUEST);

    /* unwait before the decision: never called. */
    r.action = AL_STR("DELETE FROM wishlists");
    create_ok(f, &r, T0, &c3);
    seen_t s2 = {.mu = PTHREAD_MUTEX_INITIALIZER};
    assert_int_equal(al_approvals_wait(f->a, c3.id, on_decided, &s2, &tok2), AL_APPR_OK);
    assert_true(al_approvals_unwait(f->a, tok2));
    assert_false(al_approvals_unwait(f->a, tok2));
    /* The session ends: its held (wait) requests are cancelled, retry ones stay. */
    assert_int_equal(al_approvals_session_end(f->a, "sess-1", T0 + 2), 1);
    assert_int_equal(s2.calls, 0);
    char reason[64];
    assert_int_equal(state_of(f, c3.id, reason, sizeof reason), AL_APPROVAL_CANCELLED);
    assert_string_equal(reason, "client_disconnected");
    assert_int_equal(state_of(f, c1.id, NULL, 0), AL_APPROVAL_PENDING);
}

/* unwait() of a waiter whose callback is running on another thread returns
 * only after the callback returned (so the caller may free ud). */
typedef struct slow {
    volatile int entered, release, finished;
} slow_t;

static void on_slow(void *ud, const al_approval_event_t *ev)
{
    (void)ev;
    slow_t *s = ud;
    __atomic_store_n(&s->entered, 1, __ATOMIC_SEQ_CST);
    while (!__atomic_load_n(&s->release, __ATOMIC_SEQ_CST))
        nanosleep(&(struct timespec){0, 1000 * 1000}, NULL);
    __atomic_store_n(&s->finished, 1, __ATOMIC_SEQ_CST);
}

typedef struct approver_arg {
    fx_t *f;
    const char *id;
} approver_arg_t;

static void *approve_thread(void *arg)
{
    approver_arg_t *x = arg;
    assert_int_equal(al_approvals_approve(x->f->a, x->id, &alice, NULL, NULL, T0 + 1, NULL),
                     AL_APPR_OK);
    return NULL;
}

static void *release_later(void *arg)
{
    slow_t *s = arg;
    nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
    __atomic_store_n(&s->release, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void test_unwait_waits_for_callback(void **state)
{
    fx_t *f = *state;
    al_approval_req_t r = req(f, "ddl", "REINDEX TABLE orders");
    al_approval_created_t c;
    create_ok(f, &r, T0, &c);
    slow_t s = {0};
    uint64_t tok;
    assert_int_equal(al_approvals_wait(f->a, c.id, on_slow, &s, &tok), AL_APPR_OK);
    approver_arg_t x = {f, c.id};
    pthread_t ta, tr;
    assert_int_equal(pthread_create(&ta, NULL, approve_thread, &x), 0);
    for (int i = 0; i < 10000 && !__atomic_load_n(&s.entered, __ATOMIC_SEQ_CST); i++)
        nanosleep(&(struct timespec){0, 1000 * 1000}, NULL);
    assert_true(s.entered);
    assert_int_equal(pthread_create(&tr, NULL, release_later, &s), 0);
    assert_false(al_approvals_unwait(f->a, tok));
    assert_true(__atomic_load_n(&s.finished, __ATOMIC_SEQ_CST));
    pthread_join(ta, NULL);
    pthread_join(tr, NULL);
    /* The service stays usable while and after a callback runs. */
    assert_int_equal(state_of(f, c.id, NULL, 0), AL_APPROVAL_APPROVED);
}

static void test_fingerprint(void **state)
{
    (void)state;
    char a[AL_APPROVAL_FP_SIZE], b[AL_APPROVAL_FP_SIZE];
    al_approvals_fingerprint("db", "postgres", AL_STR("SELECT 1"), a);
    al_approvals_fingerprint("db", "postgres", AL_STR("SELECT 1"), b);
    assert_string_equal(a, b);
    /* Pinned (computed independently: SHA-256 of the tag and the three
     * length-prefixed fields): stored grants must keep matching after an
     * upgrade. */
    assert_string_equal(a, "a53c1af014587b33d1f6256ae08d2c32ff01f2f394e0a55a7a80e3ec20e8cdac");
    al_approvals_fingerprint("db", "postgres", AL_STR("\n SELECT 1;; \t"), b);
    assert_string_equal(a, b);
    al_approvals_fingerprint("db2", "postgres", AL_STR("SELECT 1"), b);
    assert_string_not_equal(a, b);
    al_approvals_fingerprint("db", "http", AL_STR("SELECT 1"), b);
    assert_string_not_equal(a, b);
    al_approvals_fingerprint("db", "postgres", AL_STR("SELECT  1"), b); /* inner spaces count */
    assert_string_not_equal(a, b);
    al_approvals_fingerprint("db", "postgres", AL_STR("select 1"), b);
    assert_string_not_equal(a, b);
    /* Only postgres drops a trailing ';'. */
    al_approvals_fingerprint("db", "http", AL_STR("GET /a"), a);
    al_approvals_fingerprint("db", "http", AL_STR("GET /a;"), b);
    assert_string_not_equal(a, b);
    /* Field boundaries are unambiguous. */
    al_approvals_fingerprint("ab", "c", AL_STR("x"), a);
    al_approvals_fingerprint("a", "bc", AL_STR("x"), b);
    assert_string_not_equal(a, b);
    /* Bytes after a NUL count. */
    al_approvals_fingerprint("db", "postgres", (al_str_t){"SELECT 1\0a", 10}, a);
    al_approvals_fingerprint("db", "postgres", (al_str_t){"SELECT 1\0b", 10}, b);
    assert_string_not_equal(a, b);
}

static void test_reason_strings(void **state)
{
    (void)state;
    static const char *const want[] = {
        "ok", "unknown_request", "not_pending", "expired", "self_approval", "not_an_approver",
        "already_voted", "no_identity", "bad_grant", "reason_required", "too_many_pending",
        "action_too_large", "bad_request", "store_unavailable",
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        assert_string_equal(al_approval_reason((al_approval_status_t)i), want[i]);
    static const char *const states[] = {"pending", "approved", "denied", "timed_out",
                                         "cancelled", "abandoned"};
    for (size_t i = 0; i < 6; i++) {
        al_approval_state_t s;
        assert_string_equal(al_approval_state_name((al_approval_state_t)i), states[i]);
        assert_int_equal(al_approval_state_parse(states[i], &s), AL_OK);
        assert_int_equal(s, i);
    }
    al_approval_state_t s;
    assert_int_equal(al_approval_state_parse("Pending", &s), AL_ERR);
}

/* ---- config ------------------------------------------------------------------------------ */

static void test_config_keys(void **state)
{
    (void)state;
    static const char ok[] =
        "server: { data_dir: /tmp/x }\n"
        "approvals:\n"
        "  public_url: https://airlock.example.com\n"
        "  max_pending_per_agent: 9\n"
        "  webhook:\n"
        "    url_env: HOOK_URL\n"
        "    slack: true\n"
        "    tries: 5\n"
        "    timeout: 2s\n"
        "    headers: { Authorization: { env: HOOK_TOKEN } }\n"
        "policies:\n"
        "  - name: r\n"
        "    who: ['*']\n"
        "    targets: ['*']\n"
        "    action: approve\n"
        "    approvers: [dba]\n"
        "    webhook: { url: 'http://127.0.0.1:9/hook?k=1' }\n";
    al_config_errors_t e;
    al_config_t *cfg = al_config_load_mem("/tmp/t.yaml", ok, strlen(ok), &e);
    if (!cfg)
        fail_msg("%s", e.msgs[0]);
    assert_string_equal(cfg->approvals.public_url, "https://airlock.example.com");
    assert_int_equal(cfg->approvals.max_pending_per_agent, 9);
    assert_string_equal(cfg->approvals.webhook.url_env, "HOOK_URL");
    assert_true(cfg->approvals.webhook.slack);
    assert_int_equal(cfg->approvals.webhook.tries, 5);
    assert_true(cfg->approvals.webhook.timeout == 2);
    assert_int_equal(cfg->approvals.webhook.n_headers, 1);
    assert_string_equal(cfg->approvals.webhook.headers[0].name, "Authorization");
    assert_string_equal(cfg->approvals.webhook.headers[0].env, "HOOK_TOKEN");
    assert_string_equal(cfg->policies[0].webhook.url, "http://127.0.0.1:9/hook?k=1");
    assert_int_equal(cfg->policies[0].webhook.tries, 3); /* default */
    assert_false(cfg->policies[0].webhook.slack);
    char buf[64];
    assert_string_equal(al_approvals_path(cfg, buf, sizeof buf), "/tmp/x/approvals.db");
    assert_null(al_approvals_path(cfg, buf, 8));
    al_config_free(cfg);

    static const struct {
        const char *yaml, *want;
    } bad[] = {
        {"approvals: { webhook: { url: 'http://hooks.example.com/x' } }\n",
         "must use https"},
        {"approvals: { webhook: { url: 'https://h/x', url_env: U } }\n", "mutually exclusive"},
        {"approvals: { webhook: { url: 'https://u:p@h/x' } }\n", "url_env or url_file"},
        {"approvals: { webhook: { url: 'https://h/x#f' } }\n", "fragment"},
        {"approvals: { webhook: { tries: 0, url_env: U } }\n", "tries"},
        {"approvals: { webhook: { url_env: U, headers: { Host: { env: H } } } }\n", "Host"},
        {"approvals: { public_url: 'ftp://x' }\n", "public_url"},
        {"approvals: { webhok: {} }\n", "did you mean 'webhook'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cfg = al_config_load_mem("/tmp/t.yaml", bad[i].yaml, strlen(bad[i].yaml), &e);
        if (cfg || !e.n || !strstr(e.msgs[0], bad[i].want))
            fail_msg("case %zu: %s", i, cfg ? "loaded" : e.msgs[0]);
        al_config_errors_free(&e);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_and_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_approve_by_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_self_approval_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_an_approver, setup, teardown),
        cmocka_unit_test_setup_teardown(test_min_approvals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deny_with_reason, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grant_once_consumed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grant_once_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duration_grant_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_grant_scoped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_target_grant, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_dedup_and_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unwait_waits_for_callback, setup, teardown),
        cmocka_unit_test(test_fingerprint),
        cmocka_unit_test(test_reason_strings),
        cmocka_unit_test(test_config_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
