/* Unit tests of src/proto/http/http_path.c: canonical paths for policy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "proto/http/http_path.h"

/* Normalizes in; checks the result is expected (or the error code when
 * expected starts with '!'), and that normalizing the result again gives
 * the same bytes. */
static void norm(const char *in, const char *expected)
{
    char out[512], again[512];
    size_t n = 0, n2 = 0;
    const char *err = "unset";
    int rc = al_http_path_normalize(in, strlen(in), out, sizeof out, &n, &err);
    if (expected[0] == '!') {
        if (rc != AL_ERR)
            fail_msg("%s: want error %s, got \"%.*s\"", in, expected + 1, (int)n, out);
        assert_non_null(err);
        assert_string_equal(err, expected + 1);
        assert_int_equal(n, 0);
        return;
    }
    if (rc != AL_OK)
        fail_msg("%s: want \"%s\", got error %s", in, expected, err);
    assert_null(err);
    assert_int_equal(n, strlen(out));
    assert_string_equal(out, expected);
    assert_true(n <= strlen(in) + 1);
    assert_int_equal(al_http_path_normalize(out, n, again, sizeof again, &n2, &err), AL_OK);
    assert_int_equal(n2, n);
    assert_memory_equal(again, out, n);
}

/* What a policy rule on /admin and below is expected to match: the directory
 * itself and everything below it, compared byte for byte. */
static bool admin_rule_matches(const char *path)
{
    return strcmp(path, "/admin") == 0 || strcmp(path, "/admin/") == 0 ||
           strncmp(path, "/admin/", 7) == 0;
}

/* The brief's list: every spelling either reaches the rule or is refused. */
static void test_admin_spellings(void **s)
{
    static const struct {
        const char *in;
        const char *out; /* "!code" = refused */
        bool matches;
    } cases[] = {
        {"/a/../admin", "/admin", true},
        {"/%2e%2e/admin", "/admin", true},
        {"/%2E%2e/admin", "/admin", true},
        {"/.%2E/admin/x", "/admin/x", true},
        {"//admin", "/admin", true},
        {"///admin//x", "/admin/x", true},
        {"/./admin", "/admin", true},
        {"/admin/./x/../", "/admin/", true},
        {"/admin;x", "/admin", true},
        {"/admin;x/secret", "/admin/secret", true},
        {"/..;/admin", "/admin", true},
        {"/x/..;y/admin", "/admin", true},
        {"/%61dmin", "/admin", true},
        {"/../../../admin", "/admin", true},
        {"/ADMIN", "/ADMIN", false}, /* case-sensitive: a different resource */
        {"/admin%2fx", "!encoded_slash", false},
        {"/admin%2Fx", "!encoded_slash", false},
        {"/admin%5cx", "!encoded_backslash", false},
        {"/admin\\x", "!backslash", false},
        {"/admin%00", "!encoded_nul", false},
        {"/admin%3bx", "!encoded_semicolon", false},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(cases); i++) {
        norm(cases[i].in, cases[i].out);
        if (cases[i].out[0] != '!' && admin_rule_matches(cases[i].out) != cases[i].matches)
            fail_msg("%s -> %s: rule match should be %d", cases[i].in, cases[i].out,
                     cases[i].matches);
    }
}

static void test_dot_segments(void **s)
{
    norm("", "/");
    norm("/", "/");
    norm("/.", "/");
    norm("/..", "/");
    norm("/a/b/..", "/a/");
    norm("/a/b/.", "/a/b/");
    norm("/a/b/../c", "/a/c");
    norm("/a/./b/../../c/", "/c/");
    norm("/a/b/c/./../../g", "/a/g");   /* RFC 3986 §5.2.4 example */
    norm("/mid/content=5/../6", "/mid/6"); /* RFC 3986 §5.2.4 example */
    norm("/...", "/...");
    norm("/..a/a..", "/..a/a..");
    norm("/.%2e.", "/...");
    norm("/a/%2E", "/a/");
}

static void test_escapes(void **s)
{
    norm("/%41%42%7e%2D%5f", "/AB~-_");
    norm("/%c3%a9t%C3%A9", "/%C3%A9t%C3%A9");
    norm("/%25", "/%25");
    norm("/%252e%252e/x", "/%252e%252e/x"); /* double-encoding is not decoded */
    norm("/a%20b", "/a%20b");
    norm("/%3a%40%21", "/%3A%40%21"); /* only unreserved is decoded */
    norm("/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,=");
    norm("/%", "!bad_escape");
    norm("/%4", "!bad_escape");
    norm("/%zz", "!bad_escape");
    norm("/%4g", "!bad_escape");
    norm("/%0a", "!encoded_ctl");
    norm("/%1F", "!encoded_ctl");
    norm("/%7f", "!encoded_ctl");
    norm("/%2f", "!encoded_slash");
    norm("/%5C", "!encoded_backslash");
    norm("/%00", "!encoded_nul");
    norm("/%3B", "!encoded_semicolon");
}

static void test_params(void **s)
{
    norm("/a;b/c;d", "/a/c");
    norm("/a;b=c;d", "/a");
    norm("/;x/admin", "/admin");
    norm("/admin/;x", "/admin/");
    norm("/a;", "/a");
    /* stripped bytes are still checked */
    norm("/a;%2f/b", "!encoded_slash");
    norm("/a;x y", "!bad_char");
    norm("/a;%zz", "!bad_escape");
}

static void test_refusals(void **s)
{
    norm("admin", "!not_absolute");
    norm("*", "!not_absolute");
    norm("/a b", "!bad_char");
    norm("/a?b", "!bad_char");
    norm("/a#b", "!bad_char");
    norm("/a[b]", "!bad_char");
    norm("/a\"b", "!bad_char");
    norm("/a\x7f", "!bad_char");
    norm("/caf\xc3\xa9", "!bad_char");
    norm("/a\tb", "!bad_char");

    char out[8];
    size_t n = 99;
    const char *err = NULL;
    assert_int_equal(al_http_path_normalize("/abcdefgh", 9, out, sizeof out, &n, &err), AL_ERR);
    assert_string_equal(err, "too_long");
    assert_int_equal(n, 0);
    /* len + 2 always suffices */
    assert_int_equal(al_http_path_normalize("/abcde", 6, out, sizeof out, &n, &err), AL_OK);
    assert_string_equal(out, "/abcde");
    assert_int_equal(al_http_path_normalize("", 0, out, 2, &n, &err), AL_OK);
    assert_string_equal(out, "/");
    assert_int_equal(al_http_path_normalize("/a/", 3, out, 4, &n, &err), AL_OK);
    assert_string_equal(out, "/a/");
    assert_int_equal(al_http_path_normalize("/a/", 3, out, 3, &n, &err), AL_ERR);
    assert_string_equal(err, "too_long");
}

/* Random paths over an alphabet rich in dots, slashes, escapes and params:
 * the result is idempotent and holds no dot-segment, no empty segment
 * except a trailing one, no ';', no lowercase escape, no escaped
 * unreserved character. */
static void test_random_idempotent(void **s)
{
    static const char *atoms[] = {"/", "/", ".", "..", "%2e", "%2E", "a", "B", ";", ";p=1",
                                  "%41", "%25", "~", "%7e", "%c3", "%2f", "%", "%3b", "\\", "-"};
    uint32_t seed = 12345;
    int ok = 0;
    for (int iter = 0; iter < 20000; iter++) {
        char in[128];
        size_t len = 0;
        in[len++] = '/';
        int k = (int)(seed % 12);
        for (int j = 0; j < k; j++) {
            seed = seed * 1103515245u + 12345u;
            const char *a = atoms[(seed >> 16) % AL_ARRAY_LEN(atoms)];
            size_t al = strlen(a);
            memcpy(in + len, a, al);
            len += al;
        }
        seed = seed * 1103515245u + 12345u;
        char out[256], again[256];
        size_t n = 0, n2 = 0;
        const char *err = NULL;
        if (al_http_path_normalize(in, len, out, sizeof out, &n, &err) != AL_OK) {
            assert_non_null(err);
            continue;
        }
        ok++;
        assert_int_equal(al_http_path_normalize(out, n, again, sizeof again, &n2, &err), AL_OK);
        assert_int_equal(n2, n);
        assert_memory_equal(again, out, n);
        assert_int_equal(out[0], '/');
        assert_null(strstr(out, "//"));
        assert_null(strstr(out, "/./"));
        assert_null(strstr(out, "/../"));
        assert_null(strchr(out, ';'));
        assert_null(strstr(out, "%2"
                                "E"));
        assert_null(strstr(out, "%41"));
        assert_null(strstr(out, "%7E"));
        assert_null(strstr(out, "%c"));
        assert_false(n >= 2 && strcmp(out + n - 2, "/.") == 0);
        assert_false(n >= 3 && strcmp(out + n - 3, "/..") == 0);
    }
    assert_true(ok > 1000);
}

static void split(const char *t, int rc, const char *path, const char *query)
{
    al_str_t p, q;
    assert_int_equal(al_http_target_split(al_str_c(t), &p, &q), rc);
    if (rc != AL_OK)
        return;
    assert_int_equal(p.len, strlen(path));
    assert_memory_equal(p.p, path, p.len);
    if (!query) {
        assert_null(q.p);
        return;
    }
    assert_non_null(q.p);
    assert_int_equal(q.len, strlen(query));
    assert_memory_equal(q.p, query, q.len);
}

static void test_target_split(void **s)
{
    split("/a/b?x=1&y=%2F", AL_OK, "/a/b", "x=1&y=%2F");
    split("/a/b", AL_OK, "/a/b", NULL);
    split("/a?", AL_OK, "/a", "");
    split("/a?b?c", AL_OK, "/a", "b?c");
    split("http://h:80/p/q?z", AL_OK, "/p/q", "z");
    split("https://h", AL_OK, "", NULL);
    split("http://h?x", AL_OK, "", "x");
    split("*", AL_ERR, NULL, NULL);
    split("h:443", AL_ERR, NULL, NULL);
    split("/a#b", AL_ERR, NULL, NULL);
    split("", AL_ERR, NULL, NULL);
    split("1http://h/", AL_ERR, NULL, NULL);

    /* the path of an absolute-form target normalizes like any other */
    al_str_t p, q;
    char out[64];
    size_t n;
    const char *err;
    assert_int_equal(al_http_target_split(al_str_c("http://h?x"), &p, &q), AL_OK);
    assert_int_equal(al_http_path_normalize(p.p, p.len, out, sizeof out, &n, &err), AL_OK);
    assert_string_equal(out, "/");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_admin_spellings),
        cmocka_unit_test(test_dot_segments),
        cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_random_idempotent),
        cmocka_unit_test(test_target_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
