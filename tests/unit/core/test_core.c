/* test_core.c - durations, JSON string escaping, buffers, hex, files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"

static void test_durations(void **s)
{
    (void)s;
    static const struct {
        const char *in;
        double want;
    } ok[] = {{"90s", 90}, {"15m", 900}, {"24h", 86400}, {"7d", 604800}, {"250ms", 0.25},
              {"1h30m", 5400}, {"0", 0}, {"45", 45}, {"1.5s", 1.5}};
    for (size_t i = 0; i < AL_ARRAY_LEN(ok); i++) {
        double d = -1;
        assert_int_equal(al_parse_duration(ok[i].in, &d), AL_OK);
        assert_true(d > ok[i].want - 1e-9 && d < ok[i].want + 1e-9);
    }
    static const char *bad[] = {"", "s", "15x", "-5s", "1m30", " 5s", "5s ", "5 s", "1e3s",
                                "nan", "inf", "0x10s", "5ss", "99999999999d"};
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
        double d;
        if (al_parse_duration(bad[i], &d) != AL_ERR)
            fail_msg("'%s' was accepted as %f", bad[i], d);
    }
}

static void test_json_str(void **s)
{
    (void)s;
    al_buf_t b;
    al_buf_init(&b);
    const char in[] = "a\"b\\c\n\x01\x7f\xc3\xa9";
    assert_int_equal(al_buf_json_str(&b, in, sizeof in - 1), AL_OK);
    assert_string_equal(b.p, "\"a\\\"b\\\\c\\n\\u0001\\u007f\xc3\xa9\"");
    al_buf_reset(&b);
    assert_int_equal(al_buf_printf(&b, "%d-%s", 42, "x"), AL_OK);
    assert_string_equal(b.p, "42-x");
    al_buf_free(&b);
}

/* The escaping, one character at a time, as RFC 8259 §7 states it: the
 * reference the run-copying al_buf_json_str must agree with. */
static void json_ref(al_buf_t *b, const unsigned char *p, size_t n)
{
    al_buf_append(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        char t[8];
        switch (p[i]) {
        case '"': al_buf_append(b, "\\\"", 2); break;
        case '\\': al_buf_append(b, "\\\\", 2); break;
        case '\n': al_buf_append(b, "\\n", 2); break;
        case '\r': al_buf_append(b, "\\r", 2); break;
        case '\t': al_buf_append(b, "\\t", 2); break;
        default:
            if (p[i] < 0x20 || p[i] == 0x7f) {
                snprintf(t, sizeof t, "\\u%04x", p[i]);
                al_buf_append(b, t, 6);
            } else {
                al_buf_append(b, &p[i], 1);
            }
        }
    }
    al_buf_append(b, "\"", 1);
}

static void test_json_str_random(void **s)
{
    (void)s;
    static const unsigned char alphabet[] = {'a', 'Z', ' ', '"', '\\', '\n', '\r', '\t', 0,
                                             1, 0x1f, 0x7f, 0x80, 0xc3, 0xff, '/'};
    unsigned seed = 12345;
    al_buf_t got, want;
    al_buf_init(&got);
    al_buf_init(&want);
    for (int round = 0; round < 2000; round++) {
        unsigned char in[300];
        size_t n = (size_t)(rand_r(&seed) % sizeof in);
        for (size_t i = 0; i < n; i++)
            in[i] = alphabet[rand_r(&seed) % sizeof alphabet];
        al_buf_reset(&got);
        al_buf_reset(&want);
        if (round & 1) /* appending after existing content, from a small buffer */
            al_buf_append(&got, "x", 1), al_buf_append(&want, "x", 1);
        assert_int_equal(al_buf_json_str(&got, (const char *)in, n), AL_OK);
        json_ref(&want, in, n);
        assert_int_equal(got.len, want.len);
        assert_memory_equal(got.p, want.p, want.len);
        assert_int_equal(got.p[got.len], '\0');
        al_buf_free(&got); /* every other round starts from no allocation */
        if (round % 3)
            al_buf_init(&got);
    }
    al_buf_free(&got);
    al_buf_free(&want);
}

static void test_hex_ct_sha(void **s)
{
    (void)s;
    uint8_t h[32];
    char hex[65];
    al_sha256("abc", 3, h);
    al_hex(h, 32, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_true(al_ct_eq("abc", "abc", 3));
    assert_false(al_ct_eq("abc", "abd", 3));
}

static void test_files(void **s)
{
    (void)s;
    char dir[] = "/tmp/al-core-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char p[128];
    snprintf(p, sizeof p, "%s/a/b/c", dir);
    assert_int_equal(al_mkdir_p(p, 0700), AL_OK);
    snprintf(p, sizeof p, "%s/a/f", dir);
    assert_int_equal(al_write_file_atomic(p, "hello", 5, 0600), AL_OK);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char *data = NULL;
    size_t n = 0;
    assert_int_equal(al_read_file(p, 100, &data, &n), AL_OK);
    assert_int_equal(n, 5);
    assert_string_equal(data, "hello");
    al_free(&data);
    assert_null(data);
    assert_int_equal(al_read_file(p, 3, &data, &n), AL_ERR);
    assert_int_equal(errno, EFBIG);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_json_str),
        cmocka_unit_test(test_json_str_random),
        cmocka_unit_test(test_hex_ct_sha),
        cmocka_unit_test(test_files),
    };
    return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
