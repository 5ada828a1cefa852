/* Unit tests of src/proto/tcp/tcp_connect.c: which upstream a CONNECT
 * authority names, and Proxy-Authorization bearer credentials. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "proto/tcp/tcp_connect.h"

static const char *const list[] = {"db.internal:5432", "10.0.0.5:5432", "[::1]:22",
                                   "DB2.Example:6543"};

static int match(const char *req)
{
    return al_tcp_upstream_match(al_str_c(req), list, sizeof list / sizeof *list);
}

static void test_match(void **state)
{
    assert_int_equal(match("db.internal:5432"), 0);
    assert_int_equal(match("DB.INTERNAL:5432"), 0);     /* RFC 3986 §6.2.2.1 */
    assert_int_equal(match("db2.example:6543"), 3);
    assert_int_equal(match("10.0.0.5:5432"), 1);
    assert_int_equal(match("10.0.0.5:05432"), 1);       /* ports compare as numbers */
    assert_int_equal(match("[::1]:22"), 2);
    assert_int_equal(match("[0:0::1]:22"), 2);          /* addresses compare as addresses */
    assert_int_equal(match("[0000:0000:0000:0000:0000:0000:0000:0001]:22"), 2);
    /* names nothing */
    static const char *const no[] = {
        "db.internal:5433", "db.internal", "db.internal:", "db.internal:0",
        "db.internal:65536", "db.internal:123456", "db.internal.:5432", "db%2einternal:5432",
        "xdb.internal:5432", "db.interna:5432", "10.0.0.5:22", "10.0.0.05:5432",
        "10.0.5:5432", "[::ffff:10.0.0.5]:5432", "[::1]:23", "::1:22", "[::1]22", "[::1",
        "[]:22", ":5432", "", "127.0.0.1:22", "localhost:22", "[::2]:22",
        "[fe80::1%25eth0]:22", "db.internal:5432 ", "db.internal:+5432", "db.internal:-1",
    };
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        if (match(no[i]) != -1)
            fail_msg("'%s' must name no upstream", no[i]);
    assert_int_equal(al_tcp_upstream_match((al_str_t){NULL, 0}, list, 4), -1);
    assert_int_equal(al_tcp_upstream_match(al_str_c("db.internal:5432"), list, 0), -1);
    /* an over-long name is refused before any comparison */
    char big[400];
    memset(big, 'a', 300);
    snprintf(big + 300, sizeof big - 300, ":5432");
    const char *const longlist[] = {big};
    assert_int_equal(al_tcp_upstream_match(al_str_c(big), longlist, 1), -1);
}

static void test_split(void **state)
{
    al_tcp_authority_t a;
    assert_int_equal(al_tcp_authority_split(al_str_c("[2001:db8::1]:443"), &a), AL_OK);
    assert_true(a.ip6);
    assert_int_equal(a.port, 443);
    assert_int_equal(a.host.len, 11);
    assert_memory_equal(a.host.p, "2001:db8::1", 11);
    assert_int_equal(al_tcp_authority_split(al_str_c("h:65535"), &a), AL_OK);
    assert_false(a.ip6);
    assert_int_equal(a.port, 65535);
    assert_int_equal(al_tcp_authority_split(al_str_c("h:1x"), &a), AL_ERR);
    assert_int_equal(al_tcp_authority_split(al_str_c("[h]x:1"), &a), AL_ERR);
}

static void bearer(const char *v, int want, const char *tok)
{
    al_str_t t = {NULL, 0};
    int rc = al_tcp_bearer(al_str_c(v), &t);
    if (rc != want)
        fail_msg("'%s': want %d, got %d", v, want, rc);
    if (tok) {
        assert_int_equal(t.len, strlen(tok));
        assert_memory_equal(t.p, tok, t.len);
    }
}

static void test_bearer(void **state)
{
    bearer("Bearer abc.def-_~+/ghi==", 0, "abc.def-_~+/ghi==");
    bearer("bearer abc", 0, "abc");
    bearer("BEARER   abc", 0, "abc");
    bearer("Basic Ym90OnB3", 1, NULL);
    bearer("Bearerabc", 1, NULL);
    bearer("", 1, NULL);
    bearer("Bearer", -1, NULL);
    bearer("Bearer ", -1, NULL);
    bearer("Bearer abc def", -1, NULL);
    bearer("Bearer abc,", -1, NULL);
    bearer("Bearer ==", -1, NULL);
    bearer("Bearer a=b", -1, NULL);
    bearer("Bearer\tabc", 1, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_bearer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
