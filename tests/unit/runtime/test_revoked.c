/* test_revoked.c - revocation sets: lookups, derivation, the file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "runtime/revoked.h"

static al_revset_t *add(al_revset_t *s, const char *agent, const char *reason)
{
    al_revoked_t e = {agent, reason, "tester", "01900000-0000-7000-8000-000000000001", 1.5e9};
    al_revset_t *n = al_revset_with(s, &e);
    al_revset_unref(&s);
    return n;
}

static void test_empty(void **st)
{
    (void)st;
    al_revset_t *s = al_revset_empty();
    assert_int_equal(al_revset_count(s), 0);
    assert_null(al_revset_find(s, "bot"));
    assert_null(al_revset_find(s, NULL));
    assert_null(al_revset_at(s, 0));
    assert_null(al_revset_without(s, "bot"));
    al_revset_unref(&s);
    assert_null(s);
}

static void test_with_without(void **st)
{
    (void)st;
    al_revset_t *s = add(al_revset_empty(), "bot", "leaked");
    uint64_t g1 = al_revset_gen(s);
    const al_revoked_t *e = al_revset_find(s, "bot");
    assert_non_null(e);
    assert_string_equal(e->reason, "leaked");
    assert_string_equal(e->by, "tester");
    assert_null(al_revset_find(s, "bo"));
    assert_null(al_revset_find(s, "bot2"));
    /* disabling again replaces: one entry, the new reason */
    s = add(s, "bot", "still leaked");
    assert_true(al_revset_gen(s) > g1);
    assert_int_equal(al_revset_count(s), 1);
    assert_string_equal(al_revset_find(s, "bot")->reason, "still leaked");
    s = add(s, "ro", NULL);
    assert_string_equal(al_revset_find(s, "ro")->reason, "");
    /* sets are immutable: deriving leaves the old one as it was */
    al_revset_t *keep = al_revset_ref(s);
    al_revset_t *n = al_revset_without(s, "bot");
    assert_non_null(n);
    assert_null(al_revset_find(n, "bot"));
    assert_non_null(al_revset_find(n, "ro"));
    assert_non_null(al_revset_find(keep, "bot"));
    assert_null(al_revset_without(n, "bot"));
    al_revset_unref(&keep);
    al_revset_unref(&s);
    al_revset_unref(&n);
}

/* Many names: every member found, no non-member (collisions probe on). */
static void test_many(void **st)
{
    (void)st;
    al_revset_t *s = al_revset_empty();
    char name[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof name, "agent-%d", i);
        s = add(s, name, "bulk");
    }
    assert_int_equal(al_revset_count(s), 1000);
    for (int i = 0; i < 2000; i++) {
        snprintf(name, sizeof name, "agent-%d", i);
        if (i < 1000)
            assert_non_null(al_revset_find(s, name));
        else
            assert_null(al_revset_find(s, name));
    }
    al_revset_unref(&s);
}

static void test_check_principal(void **st)
{
    (void)st;
    al_revset_t *s = add(al_revset_empty(), "bot", "x");
    al_principal_t p = {.agent = "bot", .sub = "bot"};
    assert_int_equal(al_revset_check(s, &p), AL_TOK_REVOKED);
    assert_string_equal(al_tok_reason(AL_TOK_REVOKED), "revoked");
    p.agent = "ro";
    assert_int_equal(al_revset_check(s, &p), AL_TOK_OK);
    p.agent = NULL; /* an unknown agent (allow_unknown_agents) is never in a set */
    p.sub = "bot";
    assert_int_equal(al_revset_check(s, &p), AL_TOK_OK);
    al_revset_unref(&s);
}

static char dir[64];

static int mkdir_tmp(void **st)
{
    (void)st;
    snprintf(dir, sizeof dir, "/tmp/al-revoked-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int rm_tmp(void **st)
{
    (void)st;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

static void put(const char *text)
{
    char p[128];
    snprintf(p, sizeof p, "%s/%s", dir, AL_REVOKED_FILE);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
}

static void test_file_round_trip(void **st)
{
    (void)st;
    char err[512];
    al_revset_t *s = NULL;
    /* no file yet: nothing revoked */
    assert_int_equal(al_revset_load(dir, &s, err, sizeof err), AL_OK);
    assert_int_equal(al_revset_count(s), 0);
    s = add(s, "bot", "quote \" and \\ and \xc3\xa9");
    s = add(s, "ro", "");
    assert_int_equal(al_revset_save(dir, s, err, sizeof err), AL_OK);
    al_revset_t *l = NULL;
    assert_int_equal(al_revset_load(dir, &l, err, sizeof err), AL_OK);
    assert_int_equal(al_revset_count(l), 2);
    const al_revoked_t *e = al_revset_find(l, "bot");
    assert_non_null(e);
    assert_string_equal(e->reason, "quote \" and \\ and \xc3\xa9");
    assert_string_equal(e->by, "tester");
    assert_string_equal(e->event_id, "01900000-0000-7000-8000-000000000001");
    assert_true(e->at == 1.5e9);
    assert_non_null(al_revset_find(l, "ro"));
    al_revset_unref(&l);
    al_revset_unref(&s);
}

/* A file that cannot be trusted stops the start: fail closed. */
static void test_file_corrupt(void **st)
{
    (void)st;
    static const char *bad[] = {
        "{\"version\":1,\"revoked\":[{\"agent\":\"bot\",\"at\":1}]",       /* truncated */
        "{\"version\":2,\"revoked\":[]}",                                  /* unknown version */
        "{\"version\":1,\"revoked\":{}}",                                  /* not a list */
        "{\"version\":1,\"revoked\":[{\"reason\":\"x\",\"at\":1}]}",       /* no agent */
        "{\"version\":1,\"revoked\":[{\"agent\":\"\",\"at\":1}]}",         /* empty agent */
        "{\"version\":1,\"revoked\":[{\"agent\":\"bot\"}]}",               /* no time */
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        put(bad[i]);
        char err[512] = "";
        al_revset_t *s = (al_revset_t *)1;
        assert_int_equal(al_revset_load(dir, &s, err, sizeof err), AL_ERR);
        assert_null(s);
        assert_non_null(strstr(err, AL_REVOKED_FILE));
    }
    put("{\"version\":1,\"revoked\":[{\"agent\":\"bot\",\"at\":1},{\"agent\":\"bot\",\"at\":2}]}");
    al_revset_t *s = NULL;
    char err[512];
    assert_int_equal(al_revset_load(dir, &s, err, sizeof err), AL_OK);
    assert_int_equal(al_revset_count(s), 1);
    al_revset_unref(&s);
}

static void test_save_fails_loudly(void **st)
{
    (void)st;
    al_revset_t *s = add(al_revset_empty(), "bot", "x");
    char err[512] = "";
    assert_int_equal(al_revset_save("/nonexistent/dir", s, err, sizeof err), AL_ERR);
    assert_non_null(strstr(err, "/nonexistent/dir"));
    al_revset_unref(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_with_without),
        cmocka_unit_test(test_many),
        cmocka_unit_test(test_check_principal),
        cmocka_unit_test_setup_teardown(test_file_round_trip, mkdir_tmp, rm_tmp),
        cmocka_unit_test_setup_teardown(test_file_corrupt, mkdir_tmp, rm_tmp),
        cmocka_unit_test(test_save_fails_loudly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
