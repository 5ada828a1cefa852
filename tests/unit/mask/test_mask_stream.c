/*
 * test_mask_stream.c - the stream API gives byte-for-byte the one-shot
 * result: a sample fed in two chunks at every split offset, in three
 * chunks, byte by byte, and a large text in random chunks through a
 * sliding window; never more than max_value_len bytes held back.
 */
#include "mask_test.h"

/* Values of every kind, some long, some next to each other. */
static const char sample[] =
    "GET /u?email=ann.o@example.org&card=4111+1111+1111+1111 HTTP/1.1\r\n"
    "Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6"
    "IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c\r\n"
    "{\"ssn\":\"123-45-6789\",\"phone\":\"+44 (0)20 7946 0958\",\"iban\":\"GB82 WEST 1234 5698 7654 32\","
    "\"ip\":\"2001:db8::8a2e:370:7334\",\"from\":\"192.168.10.20\",\"aws\":\"AKIAIOSFODNN7EXAMPLE\","
    "\"api_key\":\"sk_live_4eC39HqLyjWDarjtT1zdp7dc\",\"acct\":\"ACCT-123456\"}\n"
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n"
    "MzEfYyjiWA4R4ypbEHNLmN0ZPN2eNRQpXUJSFTJbMu4ygZqqkz9D5HWhtWc2n2ACpA8GpO4xHx4Cx2XFeKQyX7kB\n"
    "f8jBKaSUdnDZ4tyLrBJ5RNdIN5WC0kfgNmzNnpXOOPKsBGFAZm9FtbXgWdBqNQZBmxiMbaNNUcdQv8BvLiS3PUAA\n"
    "WGQwvo6Vw6rGsxPd3NYO5vpCGYjyOfNXpvMpRv7RvdL5tQXhP2DRxKVpUzPrQmEy5b3JzeTsLvJCsrBpFKPqYyqH\n"
    "-----END PRIVATE KEY-----\n"
    "call (415) 555-2671 or 415.555.2672, amex 3782 822463 10005; not 1.2.3.4.5 or 2024-01-15\n"
    "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY ::1 bob@example.com.\n";

static char *one_shot(const al_mask_engine_t *e, al_mask_scratch_t *s, const char *in, size_t len,
                      size_t *out_len)
{
    al_buf_t out;
    al_buf_init(&out);
    al_mask_rc_t rc = al_mask_buffer(e, s, in, len, &out, NULL);
    assert_true(rc == AL_MASK_OK || rc == AL_MASK_MASKED);
    if (rc == AL_MASK_OK) {
        char *c = malloc(len + 1);
        memcpy(c, in, len);
        c[len] = '\0';
        *out_len = len;
        return c;
    }
    *out_len = out.len;
    return out.p;
}

/* Feeds in[0..len) cut at the given offsets; returns the output. */
static char *streamed(al_mask_engine_t *e, al_mask_scratch_t *s, size_t window, const char *in,
                      size_t len, const size_t *cuts, size_t ncuts, size_t *out_len)
{
    al_mask_stream_t *st = NULL;
    assert_int_equal(al_mask_stream_open(e, window, &st), AL_MASK_OK);
    al_buf_t out;
    al_buf_init(&out);
    size_t pos = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        assert_true(al_mask_stream_feed(st, s, in + pos, end - pos, &out, NULL) >= 0);
        assert_true(al_mask_stream_pending(st) <= al_mask_engine_max_value(e));
        pos = end;
    }
    assert_true(al_mask_stream_flush(st, s, &out, NULL) >= 0);
    assert_int_equal(al_mask_stream_pending(st), 0);
    al_mask_stream_free(&st);
    assert_null(st);
    *out_len = out.len;
    if (!out.p)
        return calloc(1, 1);
    return out.p;
}

static void assert_same(const char *want, size_t wl, const char *got, size_t gl, const char *what,
                        size_t a, size_t b)
{
    if (wl == gl && memcmp(want, got, wl) == 0)
        return;
    size_t i = 0;
    while (i < wl && i < gl && want[i] == got[i])
        i++;
    fail_msg("%s (cuts %zu,%zu): differs at %zu\n one-shot: %.60s\n stream:   %.60s", what, a, b, i,
             want + (i > 20 ? i - 20 : 0), got + (i > 20 ? i - 20 : 0));
}

/* Every split offset, for each style and for the smallest hold-back. */
static void split_everywhere(al_mask_engine_t *e, size_t window)
{
    al_mask_scratch_t *s = NULL;
    assert_int_equal(al_mask_scratch_alloc(e, &s), AL_MASK_OK);
    size_t len = sizeof sample - 1, wl;
    char *want = one_shot(e, s, sample, len, &wl);
    assert_true(wl != len || memcmp(want, sample, len) != 0); /* something was masked */
    for (size_t cut = 0; cut <= len; cut++) {
        size_t gl;
        char *got = streamed(e, s, window, sample, len, &cut, 1, &gl);
        assert_same(want, wl, got, gl, "two chunks", cut, 0);
        free(got);
    }
    free(want);
    al_mask_scratch_free(&s);
}

static void test_split_every_offset(void **state)
{
    AL_UNUSED(state);
    al_mask_rule_t acct = {"acct", "ACCT-[0-9]{6}", AL_MASK_STYLE_LAST4};
    for (int style = 0; style < AL_MASK_STYLE__COUNT; style++) {
        al_mask_engine_t *e = engine_with((al_mask_style_t)style, &acct, 1, 0);
        split_everywhere(e, 0);
        al_mask_engine_unref(&e);
    }
    /* Smallest hold-back and window: the sample spans several scans. */
    al_mask_engine_t *small = engine_with(AL_MASK_STYLE_FULL, &acct, 1, AL_MASK_MAX_VALUE_MIN);
    split_everywhere(small, 1);
    al_mask_engine_unref(&small);
}

static void test_three_chunks_and_bytes(void **state)
{
    AL_UNUSED(state);
    al_mask_engine_t *e = engine_with(AL_MASK_STYLE_HASH, NULL, 0, AL_MASK_MAX_VALUE_MIN);
    al_mask_scratch_t *s = NULL;
    assert_int_equal(al_mask_scratch_alloc(e, &s), AL_MASK_OK);
    size_t len = sizeof sample - 1, wl, gl;
    char *want = one_shot(e, s, sample, len, &wl);
    for (size_t a = 0; a <= len; a += 7) {
        for (size_t b = a; b <= len; b += 13) {
            size_t cuts[2] = {a, b};
            char *got = streamed(e, s, 1, sample, len, cuts, 2, &gl);
            assert_same(want, wl, got, gl, "three chunks", a, b);
            free(got);
        }
    }
    /* One byte at a time. */
    size_t *cuts = malloc(len * sizeof *cuts);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i;
    char *got = streamed(e, s, 0, sample, len, cuts, len, &gl);
    assert_same(want, wl, got, gl, "bytes", 0, 0);
    free(got);
    free(cuts);
    free(want);
    al_mask_scratch_free(&s);
    al_mask_engine_unref(&e);
}

/* Scan boundaries at every offset relative to every value: the sample
 * (twice) behind 0..max/2 filler bytes, fed byte by byte to the smallest
 * hold-back, so each scan's cut lands once on every byte of it. */
static void test_every_alignment(void **state)
{
    AL_UNUSED(state);
    al_mask_rule_t r[] = {{"acct", "ACCT-[0-9]{6}", AL_MASK_STYLE_FULL},
                          {"ovl", "[0-9]{3}\\.[0-9]{2}[0-9.]{0,6}", AL_MASK_STYLE_LAST4}};
    al_mask_engine_t *e = engine_with(AL_MASK_STYLE_HASH, r, 2, AL_MASK_MAX_VALUE_MIN);
    al_mask_scratch_t *s = NULL;
    assert_int_equal(al_mask_scratch_alloc(e, &s), AL_MASK_OK);
    size_t sl = sizeof sample - 1, max_fill = AL_MASK_MAX_VALUE_MIN / 2 + 8;
    char *text = malloc(max_fill + 2 * sl);
    size_t *cuts = malloc((max_fill + 2 * sl) * sizeof *cuts);
    for (size_t i = 0; i < max_fill + 2 * sl; i++)
        cuts[i] = i + 1;
    for (size_t fill = 0; fill <= max_fill; fill++) {
        memset(text, '.', fill);
        memcpy(text + fill, sample, sl);
        memcpy(text + fill + sl, sample, sl);
        size_t len = fill + 2 * sl, wl, gl;
        char *want = one_shot(e, s, text, len, &wl);
        char *got = streamed(e, s, 1, text, len, cuts, len - 1, &gl);
        assert_same(want, wl, got, gl, "alignment", fill, 0);
        free(want);
        free(got);
    }
    free(cuts);
    free(text);
    al_mask_scratch_free(&s);
    al_mask_engine_unref(&e);
}

/* A text much larger than the window, in random chunks. */
static void test_large_text(void **state)
{
    AL_UNUSED(state);
    al_mask_engine_t *e = engine_all(AL_MASK_STYLE_FULL);
    al_mask_scratch_t *s = NULL;
    assert_int_equal(al_mask_scratch_alloc(e, &s), AL_MASK_OK);
    size_t len = 0, cap = 1200 * 1024;
    char *big = malloc(cap);
    uint64_t x = 0x2545f4914f6cdd1dull;
    while (len + sizeof sample < cap) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t filler = x % 3000;
        for (size_t i = 0; i < filler && len < cap - sizeof sample; i++)
            big[len++] = "lorem ipsum dolor 0123456789 .-:@\n"[(x >> (i % 40)) % 34];
        size_t take = 1 + (x >> 20) % (sizeof sample - 1);
        memcpy(big + len, sample + (sizeof sample - 1 - take), take);
        len += take;
    }
    size_t wl, gl;
    char *want = one_shot(e, s, big, len, &wl);
    size_t cuts[4096], n = 0, pos = 0;
    while (n < AL_ARRAY_LEN(cuts)) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        pos += (x & 1) ? x % 64 : x % 70000;
        if (pos >= len)
            break;
        cuts[n++] = pos;
    }
    for (size_t window = 0; window <= 1; window++) {
        char *got = streamed(e, s, window, big, len, cuts, n, &gl);
        assert_same(want, wl, got, gl, "large", window, n);
        free(got);
    }
    free(want);
    free(big);
    al_mask_scratch_free(&s);
    al_mask_engine_unref(&e);
}

/* A value longer than a window's emit step, split across many feeds. */
static void test_long_values(void **state)
{
    AL_UNUSED(state);
    al_mask_engine_t *e = engine_with(AL_MASK_STYLE_FULL, NULL, 0, AL_MASK_MAX_VALUE_MIN);
    al_mask_scratch_t *s = NULL;
    assert_int_equal(al_mask_scratch_alloc(e, &s), AL_MASK_OK);
    al_buf_t in;
    al_buf_init(&in);
    al_buf_puts(&in, "head -----BEGIN PRIVATE KEY-----\n");
    for (int i = 0; i < 6; i++)
        al_buf_puts(&in, "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n");
    al_buf_puts(&in, "-----END PRIVATE KEY----- tail ");
    /* An API key longer than the cap (1024 / 2 - 32 = 480): cut there. */
    al_buf_puts(&in, "api_key=");
    for (int i = 0; i < 60; i++)
        al_buf_puts(&in, "aB3dE6gH9k");
    al_buf_puts(&in, " end");
    size_t wl, gl;
    char *want = one_shot(e, s, in.p, in.len, &wl);
    assert_int_equal(wl, in.len);
    assert_int_equal(strncmp(want, "head ####", 9), 0);
    char *tail = strstr(want, " tail api_key=");
    assert_non_null(tail);
    size_t hashes = strspn(tail + 14, "#");
    assert_int_equal(hashes, AL_MASK_VALUE_CAP(AL_MASK_MAX_VALUE_MIN));
    for (size_t step = 1; step < 700; step += 37) {
        size_t cuts[256], n = 0;
        for (size_t p = step; p < in.len && n < AL_ARRAY_LEN(cuts); p += step)
            cuts[n++] = p;
        char *got = streamed(e, s, 1, in.p, in.len, cuts, n, &gl);
        assert_same(want, wl, got, gl, "long value", step, n);
        free(got);
    }
    free(want);
    al_buf_free(&in);
    al_mask_scratch_free(&s);
    al_mask_engine_unref(&e);
}

/* A flush is a message boundary: the next text is masked on its own. */
static void test_flush_boundary(void **state)
{
    AL_UNUSED(state);
    al_mask_engine_t *e = engine_all(AL_MASK_STYLE_FULL);
    al_mask_scratch_t *s = NULL;
    assert_int_equal(al_mask_scratch_alloc(e, &s), AL_MASK_OK);
    al_mask_stream_t *st = NULL;
    assert_int_equal(al_mask_stream_open(e, 0, &st), AL_MASK_OK);
    al_buf_t out;
    al_buf_init(&out);
    al_mask_stats_t stats = {0};
    /* Held back until the flush: nothing emitted yet. */
    assert_int_equal(al_mask_stream_feed(st, s, "ip 10.0.0", 9, &out, &stats), AL_MASK_OK);
    assert_int_equal(out.len, 0);
    assert_int_equal(al_mask_stream_pending(st), 9);
    assert_int_equal(al_mask_stream_flush(st, s, &out, &stats), AL_MASK_OK);
    assert_string_equal(out.p, "ip 10.0.0");
    /* ".1" alone is no address: the first message ended. */
    assert_int_equal(al_mask_stream_feed(st, s, ".1 and 10.0.0.1", 15, &out, &stats), AL_MASK_OK);
    assert_int_equal(al_mask_stream_flush(st, s, &out, &stats), AL_MASK_MASKED);
    assert_string_equal(out.p, "ip 10.0.0.1 and ########");
    assert_int_equal(stats.bytes, 24);
    assert_int_equal(stats.values, 1);
    /* Bad arguments; a failed stream stays failed. */
    assert_int_equal(al_mask_stream_feed(st, s, NULL, 3, &out, NULL), AL_MASK_E_INVALID);
    assert_int_equal(al_mask_stream_feed(NULL, s, "x", 1, &out, NULL), AL_MASK_E_INVALID);
    assert_int_equal(al_mask_stream_open(NULL, 0, &st), AL_MASK_E_INVALID);
    al_mask_scratch_t *small = NULL;
    al_mask_config_t none = {0};
    al_mask_engine_t *empty = NULL;
    assert_int_equal(al_mask_compile(&none, &empty, NULL), AL_MASK_OK);
    assert_int_equal(al_mask_scratch_alloc(empty, &small), AL_MASK_OK);
    assert_int_equal(al_mask_stream_feed(st, small, "x", 1, &out, NULL), AL_MASK_E_SCRATCH);
    al_mask_stream_free(&st);
    al_mask_stream_free(&st);
    al_mask_scratch_free(&small);
    al_mask_engine_unref(&empty);
    al_buf_free(&out);
    al_mask_scratch_free(&s);
    al_mask_engine_unref(&e);
}

/* The stream keeps its engine alive after a reload drops the snapshot. */
static void test_engine_reference(void **state)
{
    AL_UNUSED(state);
    al_mask_engine_t *e = engine_all(AL_MASK_STYLE_FULL);
    al_mask_scratch_t *s = NULL;
    assert_int_equal(al_mask_scratch_alloc(e, &s), AL_MASK_OK);
    al_mask_stream_t *st = NULL;
    assert_int_equal(al_mask_stream_open(e, 0, &st), AL_MASK_OK);
    al_mask_engine_unref(&e);
    al_buf_t out;
    al_buf_init(&out);
    assert_int_equal(al_mask_stream_feed(st, s, "bob@example.com", 15, &out, NULL), AL_MASK_OK);
    assert_int_equal(al_mask_stream_flush(st, s, &out, NULL), AL_MASK_MASKED);
    assert_string_equal(out.p, "###############");
    al_buf_free(&out);
    al_mask_stream_free(&st);
    al_mask_scratch_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_every_offset), cmocka_unit_test(test_three_chunks_and_bytes),
        cmocka_unit_test(test_every_alignment),
        cmocka_unit_test(test_large_text),         cmocka_unit_test(test_long_values),
        cmocka_unit_test(test_flush_boundary),     cmocka_unit_test(test_engine_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
