/* test_recorder.c - the recorder end to end without a gateway: lines built
 * on "worker" threads come out of the closed, compressed file in order and
 * as valid JSON; hostile bytes survive as JSON strings or base64; a ring too
 * small for the traffic spills to the overflow list without reordering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/audit.h"
#include "record/record.h"

static char g_dir[256];

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/al-recorder-test-XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    nftw(g_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

typedef struct lines {
    json_t *arr;
} lines_t;

static int collect(void *ud, const char *line, size_t n)
{
    lines_t *l = ud;
    json_error_t e;
    json_t *j = json_loadb(line, n, JSON_ALLOW_NUL, &e);
    if (!j) {
        fprintf(stderr, "not JSON: %.*s (%s)\n", (int)n, line, e.text);
        return AL_ERR;
    }
    json_array_append_new(l->arr, j);
    return AL_OK;
}

/* Reads the closed recording of id (waits for the .gz). */
static json_t *read_closed(const char *id)
{
    char path[1024], err[256];
    for (int i = 0; i < 500; i++) {
        if (al_rec_find(g_dir, id, path, sizeof path, err, sizeof err) == AL_OK &&
            strstr(path, ".jsonl.gz"))
            break;
        usleep(10000);
    }
    assert_non_null(strstr(path, ".jsonl.gz"));
    lines_t l = {json_array()};
    assert_int_equal(al_rec_read(path, collect, &l, err, sizeof err), AL_OK);
    return l.arr;
}

static void new_id(char id[AL_AUDIT_ID_SIZE])
{
    assert_int_equal(al_audit_uuid7((int64_t)(al_now() * 1e6), id), AL_OK);
}

static void test_hostile_values(void **state)
{
    (void)state;
    al_rec_opts_t o = {.dir = g_dir, .n_workers = 1};
    al_recorder_t *r = NULL;
    char err[256];
    assert_int_equal(al_recorder_open(&o, NULL, &r, err, sizeof err), AL_OK);
    char id[AL_AUDIT_ID_SIZE];
    new_id(id);
    const char *extra[] = {"database", "app\"\n<x>", NULL};
    al_rec_t *s = al_rec_open(r, 0, &(al_rec_meta_t){.session_id = id, .protocol = "postgres",
                                                     .target = "db", .client = "1.2.3.4:5",
                                                     .extra = extra});
    assert_non_null(s);
    al_rec_identify(s, &(al_rec_who_t){"bot", "sub-1", NULL});
    static const char bin[] = {'a', '\0', 'b', (char)0xff, (char)0xc0, (char)0x80};
    static const char ctl[] = "tab\there \x1b[31m \"q\" \\ \xe2\x80\xae end \xf0\x9f\x98\x80";
    al_buf_t *b = al_rec_begin(s, "row");
    assert_non_null(b);
    al_rec_bytes(b, "text", ctl, strlen(ctl));
    al_rec_bytes(b, "bin", bin, sizeof bin);
    al_rec_str(b, "lossy", bin, sizeof bin);
    al_rec_int(b, "neg", -42);
    al_rec_int(b, "max", INT64_MAX);
    al_rec_bool(b, "flag", true);
    al_rec_cstr(b, "none", NULL);
    al_rec_end(s);
    al_rec_close(s, &(al_rec_end_info_t){.reason = "done", .bytes_up = 7, .bytes_down = -1});
    json_t *a = read_closed(id);
    al_recorder_close(&r);

    assert_int_equal(json_array_size(a), 4);
    json_t *h = json_array_get(a, 0);
    assert_string_equal(json_string_value(json_object_get(h, "type")), "session");
    assert_string_equal(json_string_value(json_object_get(h, "session_id")), id);
    assert_string_equal(json_string_value(json_object_get(h, "database")), "app\"\n<x>");
    assert_int_equal(json_integer_value(json_object_get(h, "version")), AL_REC_VERSION);
    json_t *who = json_array_get(a, 1);
    assert_string_equal(json_string_value(json_object_get(who, "agent")), "bot");
    assert_true(json_is_null(json_object_get(who, "issuer")));
    json_t *row = json_array_get(a, 2);
    assert_true(json_number_value(json_object_get(row, "t")) >= 0);
    assert_string_equal(json_string_value(json_object_get(row, "text")), ctl);
    /* not UTF-8 (and a NUL): base64 of the exact bytes */
    const char *b64 = json_string_value(json_object_get(json_object_get(row, "bin"), "base64"));
    assert_non_null(b64);
    unsigned char dec[32];
    int dl = EVP_DecodeBlock(dec, (const unsigned char *)b64, (int)strlen(b64));
    assert_true(dl >= (int)sizeof bin);
    assert_memory_equal(dec, bin, sizeof bin);
    /* al_rec_str: a string, invalid bytes replaced */
    json_t *lj = json_object_get(row, "lossy");
    assert_true(json_is_string(lj));
    assert_int_equal(json_string_length(lj), 3 + 3 * 3); /* a NUL b, three U+FFFD */
    assert_memory_equal(json_string_value(lj), "a\0b\xef\xbf\xbd", 6);
    assert_int_equal(json_integer_value(json_object_get(row, "neg")), -42);
    assert_true(json_integer_value(json_object_get(row, "max")) == INT64_MAX);
    assert_true(json_is_true(json_object_get(row, "flag")));
    assert_true(json_is_null(json_object_get(row, "none")));
    json_t *cl = json_array_get(a, 3);
    assert_string_equal(json_string_value(json_object_get(cl, "type")), "close");
    assert_string_equal(json_string_value(json_object_get(cl, "reason")), "done");
    assert_int_equal(json_integer_value(json_object_get(cl, "bytes_up")), 7);
    assert_null(json_object_get(cl, "bytes_down"));
    json_decref(a);
}

#define N_WORKERS 2
#define N_SESS 3
#define N_LINES 20000

static al_recorder_t *g_r;

static void *worker(void *arg)
{
    int w = (int)(intptr_t)arg;
    char ids[N_SESS][AL_AUDIT_ID_SIZE];
    al_rec_t *s[N_SESS];
    for (int k = 0; k < N_SESS; k++) {
        new_id(ids[k]);
        s[k] = al_rec_open(g_r, w, &(al_rec_meta_t){.session_id = ids[k], .protocol = "x"});
    }
    static const char pad[300] = {[0 ... 298] = 'p'};
    for (int i = 0; i < N_LINES; i++) {
        int k = i % N_SESS;
        al_buf_t *b = al_rec_begin(s[k], "n");
        al_rec_int(b, "i", i);
        al_rec_str(b, "pad", pad, 150 + (size_t)(i * 7 % 149)); /* every 8-byte residue */
        al_rec_end(s[k]);
    }
    for (int k = 0; k < N_SESS; k++)
        al_rec_close(s[k], NULL);
    char *out = malloc(sizeof ids);
    memcpy(out, ids, sizeof ids);
    return out;
}

/* A 4 KiB ring cannot hold what two threads write: lines spill over to the
 * overflow list, and each session's lines still come out in order. */
static void test_overflow_keeps_order(void **state)
{
    (void)state;
    al_rec_opts_t o = {.dir = g_dir, .n_workers = N_WORKERS, .ring_bytes = 4096,
                       .flush_interval = 0.001};
    char err[256];
    assert_int_equal(al_recorder_open(&o, NULL, &g_r, err, sizeof err), AL_OK);
    pthread_t t[N_WORKERS];
    for (intptr_t w = 0; w < N_WORKERS; w++)
        assert_int_equal(pthread_create(&t[w], NULL, worker, (void *)w), 0);
    char *ids[N_WORKERS];
    for (int w = 0; w < N_WORKERS; w++)
        pthread_join(t[w], (void **)&ids[w]);
    al_rec_stats_t st;
    al_recorder_stats(g_r, &st);
    assert_true(st.overflow > 0);
    assert_int_equal(st.failures, 0);
    for (int w = 0; w < N_WORKERS; w++) {
        for (int k = 0; k < N_SESS; k++) {
            json_t *a = read_closed(ids[w] + k * AL_AUDIT_ID_SIZE);
            size_t n = json_array_size(a);
            assert_int_equal(n, 2 + (N_LINES - k + N_SESS - 1) / N_SESS);
            int want = k;
            double last_t = 0;
            for (size_t j = 1; j + 1 < n; j++, want += N_SESS) {
                json_t *l = json_array_get(a, j);
                assert_int_equal(json_integer_value(json_object_get(l, "i")), want);
                double tt = json_number_value(json_object_get(l, "t"));
                assert_true(tt >= last_t);
                last_t = tt;
            }
            assert_string_equal(
                json_string_value(json_object_get(json_array_get(a, n - 1), "type")), "close");
            json_decref(a);
        }
        free(ids[w]);
    }
    al_recorder_close(&g_r);
}

/* NULL sessions (recording off or refused) make every call a no-op. */
static void test_null_session(void **state)
{
    (void)state;
    assert_null(al_rec_open(NULL, 0, &(al_rec_meta_t){.session_id = "x"}));
    assert_null(al_rec_begin(NULL, "row"));
    al_rec_end(NULL);
    al_rec_identify(NULL, &(al_rec_who_t){"a", "b", "c"});
    al_rec_close(NULL, NULL);
    assert_false(al_recorder_refusing(NULL));
    al_rec_opts_t o = {.dir = g_dir, .n_workers = 1};
    al_recorder_t *r = NULL;
    char err[256];
    assert_int_equal(al_recorder_open(&o, NULL, &r, err, sizeof err), AL_OK);
    /* a bad session id or worker index is not recorded */
    assert_null(al_rec_open(r, 0, &(al_rec_meta_t){.session_id = "../../etc/passwd"}));
    char id[AL_AUDIT_ID_SIZE];
    new_id(id);
    assert_null(al_rec_open(r, 1, &(al_rec_meta_t){.session_id = id}));
    assert_null(al_rec_open(r, -1, &(al_rec_meta_t){.session_id = id}));
    assert_false(al_recorder_refusing(r));
    al_recorder_close(&r);
}

/* Random bytes through the JSON writers: always valid JSON; al_rec_bytes
 * round-trips exactly (string or base64), al_rec_str keeps valid UTF-8. */
static void test_json_random(void **state)
{
    (void)state;
    srand(7);
    al_buf_t b;
    al_buf_init(&b);
    unsigned char in[300], dec[512];
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = (size_t)(rand() % (int)sizeof in);
        int kind = rand() % 3;
        for (size_t i = 0; i < n; i++)
            in[i] = kind == 0 ? (unsigned char)(rand() & 0xff)
                  : kind == 1 ? (unsigned char)(0x20 + rand() % 0x5f)
                              : (unsigned char)("a\"\\\n\x01\xc3\xa9\xe2\x82\xac\xf0"[rand() % 12]);
        al_buf_reset(&b);
        al_buf_puts(&b, "{\"x\":0");
        al_rec_bytes(&b, "b", in, n);
        al_rec_str(&b, "s", in, n);
        al_buf_puts(&b, "}");
        assert_false(b.oom);
        json_error_t e;
        json_t *j = json_loadb(b.p, b.len, JSON_ALLOW_NUL, &e);
        if (!j)
            fail_msg("not JSON (%s): %s", e.text, b.p);
        json_t *bv = json_object_get(j, "b");
        if (json_is_string(bv)) {
            assert_int_equal(json_string_length(bv), n);
            assert_memory_equal(json_string_value(bv), in, n);
        } else {
            const char *b64 = json_string_value(json_object_get(bv, "base64"));
            assert_non_null(b64);
            int dl = EVP_DecodeBlock(dec, (const unsigned char *)b64, (int)strlen(b64));
            size_t pad = strlen(b64) >= 2 ? (b64[strlen(b64) - 1] == '=') +
                                                (b64[strlen(b64) - 2] == '=')
                                          : 0;
            assert_int_equal((size_t)dl - pad, n);
            assert_memory_equal(dec, in, n);
        }
        assert_true(json_is_string(json_object_get(j, "s")));
        json_decref(j);
    }
    al_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hostile_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overflow_keeps_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_session, setup, teardown),
        cmocka_unit_test(test_json_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
