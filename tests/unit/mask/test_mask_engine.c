/*
 * test_mask_engine.c - building engines (every error code and its
 * message), the four styles, HMAC stability and key dependence (RFC 4231
 * §4.2 known answer), overlaps, the column API and scratch rules.
 */
#include <openssl/hmac.h>

#include "mask_test.h"

/* ---- compile errors ------------------------------------------------------------ */

static al_mask_rc_t compile_rules(const al_mask_rule_t *r, size_t n, al_buf_t *detail)
{
    al_mask_config_t cfg = {.rules = r, .n_rules = n};
    al_mask_engine_t *e = (al_mask_engine_t *)1;
    al_mask_rc_t rc = al_mask_compile(&cfg, &e, detail);
    if (rc == AL_MASK_OK)
        assert_non_null(e);
    else
        assert_null(e);
    al_mask_engine_unref(&e);
    return rc;
}

#define EXPECT_ERR(rules, want_rc, want_text)                                                  \
    do {                                                                                       \
        al_buf_t d_;                                                                           \
        al_buf_init(&d_);                                                                      \
        al_mask_rc_t rc_ = compile_rules((rules), AL_ARRAY_LEN(rules), &d_);                   \
        assert_int_equal(rc_, (want_rc));                                                      \
        assert_non_null(d_.p);                                                                 \
        if (!strstr(d_.p, (want_text)))                                                        \
            fail_msg("detail \"%s\" lacks \"%s\"", d_.p, (want_text));                         \
        al_buf_free(&d_);                                                                      \
    } while (0)

static void test_compile_errors(void **state)
{
    AL_UNUSED(state);
    al_mask_rule_t unknown[] = {{"credit_cards", NULL, AL_MASK_STYLE_FULL}};
    EXPECT_ERR(unknown, AL_MASK_E_UNKNOWN_DETECTOR, "\"credit_cards\": not a built-in");
    al_mask_rule_t dup[] = {{"email", NULL, AL_MASK_STYLE_FULL}, {"email", NULL, AL_MASK_STYLE_LAST4}};
    EXPECT_ERR(dup, AL_MASK_E_DUPLICATE, "\"email\" is listed twice");
    al_mask_rule_t dup2[] = {{"acct", "a{3}", AL_MASK_STYLE_FULL}, {"acct", "b{3}", AL_MASK_STYLE_FULL}};
    EXPECT_ERR(dup2, AL_MASK_E_DUPLICATE, "\"acct\"");
    al_mask_rule_t badname[] = {{"Acct", "a{3}", AL_MASK_STYLE_FULL}};
    EXPECT_ERR(badname, AL_MASK_E_BAD_NAME, "[a-z0-9_]");
    al_mask_rule_t builtin_name[] = {{"email", "[a-z]{3}@x", AL_MASK_STYLE_FULL}};
    EXPECT_ERR(builtin_name, AL_MASK_E_BAD_NAME, "\"email\"");
    al_mask_rule_t custom_name[] = {{"custom", "abc", AL_MASK_STYLE_FULL}};
    EXPECT_ERR(custom_name, AL_MASK_E_BAD_NAME, "\"custom\"");
    al_mask_rule_t badpat[] = {{"acct", "ACCT-(", AL_MASK_STYLE_FULL}};
    EXPECT_ERR(badpat, AL_MASK_E_BAD_PATTERN, "custom detector \"acct\": Hyperscan:");
    al_mask_rule_t backref[] = {{"rep", "(a)\\1", AL_MASK_STYLE_FULL}};
    EXPECT_ERR(backref, AL_MASK_E_BAD_PATTERN, "\"rep\"");
    al_mask_rule_t empty[] = {{"opt", "a?", AL_MASK_STYLE_FULL}};
    EXPECT_ERR(empty, AL_MASK_E_BAD_PATTERN, "empty string");
    al_mask_rule_t unbounded[] = {{"acct", "ACCT-[0-9]+", AL_MASK_STYLE_FULL}};
    EXPECT_ERR(unbounded, AL_MASK_E_UNBOUNDED, "{m,n}");
    al_mask_rule_t toolong[] = {{"acct", "ACCT-[0-9]{9000}", AL_MASK_STYLE_FULL}};
    EXPECT_ERR(toolong, AL_MASK_E_UNBOUNDED, "more than 8128 bytes");
    al_mask_rule_t badstyle[] = {{"email", NULL, (al_mask_style_t)7}};
    EXPECT_ERR(badstyle, AL_MASK_E_BAD_STYLE, "unknown style");
    al_mask_rule_t nokey[] = {{"email", NULL, AL_MASK_STYLE_HASH}};
    EXPECT_ERR(nokey, AL_MASK_E_HASH_KEY, "at least 16 bytes");
    al_mask_rule_t noname[] = {{NULL, NULL, AL_MASK_STYLE_FULL}};
    EXPECT_ERR(noname, AL_MASK_E_INVALID, "missing detector name");

    al_mask_rule_t many[AL_MASK_MAX_CUSTOM + 1];
    char names[AL_MASK_MAX_CUSTOM + 1][8];
    for (size_t i = 0; i < AL_ARRAY_LEN(many); i++) {
        snprintf(names[i], sizeof names[i], "c%zu", i);
        many[i] = (al_mask_rule_t){names[i], "zz[0-9]{4}", AL_MASK_STYLE_FULL};
    }
    EXPECT_ERR(many, AL_MASK_E_TOO_MANY, "custom detectors");
    assert_int_equal(compile_rules(many, AL_MASK_MAX_CUSTOM, NULL), AL_MASK_OK);
}

static void test_compile_options(void **state)
{
    AL_UNUSED(state);
    al_mask_engine_t *e = NULL;
    al_mask_rule_t r[] = {{"email", NULL, AL_MASK_STYLE_FULL}};
    al_mask_column_t dupcols[] = {{"*_SSN", AL_MASK_STYLE_DROP}, {"*_ssn", AL_MASK_STYLE_FULL}};
    al_mask_config_t cfg = {.rules = r, .n_rules = 1, .columns = dupcols, .n_columns = 2};
    assert_int_equal(al_mask_compile(&cfg, &e, NULL), AL_MASK_E_DUPLICATE);
    al_mask_column_t hashcol[] = {{"email", AL_MASK_STYLE_HASH}};
    cfg = (al_mask_config_t){.columns = hashcol, .n_columns = 1};
    assert_int_equal(al_mask_compile(&cfg, &e, NULL), AL_MASK_E_HASH_KEY);
    cfg.hash_key = test_key;
    cfg.hash_key_len = 15;
    assert_int_equal(al_mask_compile(&cfg, &e, NULL), AL_MASK_E_HASH_KEY);
    cfg.hash_key_len = 16;
    assert_int_equal(al_mask_compile(&cfg, &e, NULL), AL_MASK_OK);
    al_mask_engine_unref(&e);
    cfg.hash_prefix = "h\"";
    assert_int_equal(al_mask_compile(&cfg, &e, NULL), AL_MASK_E_INVALID);
    cfg.hash_prefix = "0123456789abcdefX";
    assert_int_equal(al_mask_compile(&cfg, &e, NULL), AL_MASK_E_INVALID);
    cfg.hash_prefix = NULL;
    cfg.hash_hex_len = 4;
    assert_int_equal(al_mask_compile(&cfg, &e, NULL), AL_MASK_E_INVALID);
    cfg.hash_hex_len = 65;
    assert_int_equal(al_mask_compile(&cfg, &e, NULL), AL_MASK_E_INVALID);
    cfg.hash_hex_len = 0;
    cfg.max_value_len = 100;
    assert_int_equal(al_mask_compile(&cfg, &e, NULL), AL_MASK_E_INVALID);
    cfg.max_value_len = AL_MASK_MAX_VALUE_MAX + 1;
    assert_int_equal(al_mask_compile(&cfg, &e, NULL), AL_MASK_E_INVALID);
    assert_int_equal(al_mask_compile(NULL, &e, NULL), AL_MASK_E_INVALID);
    assert_int_equal(al_mask_compile(&cfg, NULL, NULL), AL_MASK_E_INVALID);
    al_mask_config_t bad = {.rules = NULL, .n_rules = 3};
    assert_int_equal(al_mask_compile(&bad, &e, NULL), AL_MASK_E_INVALID);
    assert_null(e);
}

static void test_names(void **state)
{
    AL_UNUSED(state);
    for (int d = AL_MASK_DET_CREDIT_CARD; d < AL_MASK_DET_CUSTOM; d++)
        assert_int_equal(al_mask_det_from_name(al_mask_det_name((al_mask_det_t)d)), d);
    assert_string_equal(al_mask_det_name(AL_MASK_DET_IP_ADDRESS), "ip_address");
    assert_int_equal(al_mask_det_from_name("custom"), AL_MASK_DET_NONE);
    assert_int_equal(al_mask_det_from_name(NULL), AL_MASK_DET_NONE);
    al_mask_style_t st;
    assert_int_equal(al_mask_style_from_name("last4", &st), AL_OK);
    assert_int_equal(st, AL_MASK_STYLE_LAST4);
    assert_int_equal(al_mask_style_from_name("partial", &st), AL_ERR);
    assert_string_equal(al_mask_style_name(AL_MASK_STYLE_DROP), "drop");
    for (int rc = AL_MASK_E_TOO_LARGE; rc <= AL_MASK_DROPPED; rc++)
        assert_true(strlen(al_mask_strerror((al_mask_rc_t)rc)) > 0);
}

/* ---- styles ------------------------------------------------------------------------- */

static void test_style_full_last4_drop(void **state)
{
    AL_UNUSED(state);
    al_mask_scratch_t *s = NULL;
    al_mask_engine_t *full = engine_all(AL_MASK_STYLE_FULL);
    al_mask_engine_t *l4 = engine_all(AL_MASK_STYLE_LAST4);
    al_mask_engine_t *drop = engine_all(AL_MASK_STYLE_DROP);
    assert_int_equal(al_mask_scratch_alloc(full, &s), AL_MASK_OK);
    assert_int_equal(al_mask_scratch_alloc(l4, &s), AL_MASK_OK);
    assert_int_equal(al_mask_scratch_alloc(drop, &s), AL_MASK_OK);
    MASKS_TO(full, s, "to bob@example.com now", "to ############### now");
    MASKS_TO(l4, s, "card 4111 1111 1111 1111!", "card #### #### #### 1111!");
    MASKS_TO(l4, s, "ssn 123-45-6789", "ssn ###-##-6789");
    MASKS_TO(l4, s, "ip 1.2.3.4", "ip #.#.#.#"); /* four alphanumerics or fewer: all */
    MASKS_TO(drop, s, "to bob@example.com now", "to  now");
    al_buf_t out;
    al_buf_init(&out);
    assert_int_equal(al_mask_value(full, AL_MASK_STYLE_FULL, "abc", 3, &out), AL_MASK_MASKED);
    assert_string_equal(out.p, "###");
    al_buf_reset(&out);
    assert_int_equal(al_mask_value(full, AL_MASK_STYLE_LAST4, "1234-5678-90", 12, &out),
                     AL_MASK_MASKED);
    assert_string_equal(out.p, "####-##78-90");
    al_buf_reset(&out);
    assert_int_equal(al_mask_value(full, AL_MASK_STYLE_DROP, "abc", 3, &out), AL_MASK_DROPPED);
    assert_int_equal(out.len, 0);
    assert_int_equal(al_mask_value(full, (al_mask_style_t)9, "abc", 3, &out), AL_MASK_E_BAD_STYLE);
    al_buf_free(&out);
    al_mask_scratch_free(&s);
    al_mask_engine_unref(&full);
    al_mask_engine_unref(&l4);
    al_mask_engine_unref(&drop);
}

static al_mask_engine_t *hash_engine(const uint8_t *key, size_t key_len, unsigned hex,
                                     const char *prefix)
{
    al_mask_rule_t r[] = {{"email", NULL, AL_MASK_STYLE_HASH}};
    al_mask_config_t cfg = {.rules = r,
                            .n_rules = 1,
                            .hash_key = key,
                            .hash_key_len = key_len,
                            .hash_hex_len = hex,
                            .hash_prefix = prefix};
    al_mask_engine_t *e = NULL;
    assert_int_equal(al_mask_compile(&cfg, &e, NULL), AL_MASK_OK);
    return e;
}

static void test_style_hash(void **state)
{
    AL_UNUSED(state);
    /* RFC 4231 §4.2 test case 1: key 20 x 0x0b, data "Hi There". */
    uint8_t k1[20];
    memset(k1, 0x0b, sizeof k1);
    al_mask_engine_t *e = hash_engine(k1, sizeof k1, 64, "");
    al_buf_t out;
    al_buf_init(&out);
    assert_int_equal(al_mask_value(e, AL_MASK_STYLE_HASH, "Hi There", 8, &out), AL_MASK_MASKED);
    assert_string_equal(out.p, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    al_mask_engine_unref(&e);

    /* In text: prefix + 16 hex of HMAC(key, value), the same as OpenSSL's. */
    e = hash_engine(test_key, sizeof test_key, 0, NULL);
    al_mask_scratch_t *s = NULL;
    assert_int_equal(al_mask_scratch_alloc(e, &s), AL_MASK_OK);
    MASKS_TO(e, s, "to bob@example.com.", "to h:398ff944f3b43678.");
    uint8_t md[32];
    unsigned mdlen = 0;
    HMAC(EVP_sha256(), test_key, sizeof test_key, (const uint8_t *)"ann@example.org", 15, md, &mdlen);
    char hex[65], want[64];
    al_hex(md, 32, hex);
    snprintf(want, sizeof want, "[h:%.16s]", hex);
    MASKS_TO(e, s, "[ann@example.org]", want);

    /* Stable across engines with the same key; different under another key. */
    al_mask_engine_t *same = hash_engine(test_key, sizeof test_key, 0, NULL);
    uint8_t other_key[32];
    memcpy(other_key, test_key, sizeof other_key);
    other_key[0] ^= 1;
    al_mask_engine_t *other = hash_engine(other_key, sizeof other_key, 0, NULL);
    assert_int_equal(al_mask_scratch_alloc(same, &s), AL_MASK_OK);
    assert_int_equal(al_mask_scratch_alloc(other, &s), AL_MASK_OK);
    char *a = mask_str(e, s, "x bob@example.com y bob@example.com");
    char *b = mask_str(same, s, "x bob@example.com y bob@example.com");
    char *c = mask_str(other, s, "x bob@example.com y bob@example.com");
    assert_string_equal(a, b);
    assert_string_equal(a, "x h:398ff944f3b43678 y h:398ff944f3b43678");
    assert_string_not_equal(a, c);
    assert_int_equal(strlen(c), strlen(a));
    char *d = mask_str(e, s, "x bob@example.net");
    assert_string_not_equal(d + 2, a + 2);
    free(a);
    free(b);
    free(c);
    free(d);

    /* A custom prefix and length. */
    al_mask_engine_t *pfx = hash_engine(test_key, sizeof test_key, 8, "<h>");
    assert_int_equal(al_mask_scratch_alloc(pfx, &s), AL_MASK_OK);
    MASKS_TO(pfx, s, "bob@example.com", "<h>398ff944");

    /* al_mask_value without a key. */
    al_mask_engine_t *nokey = engine_all(AL_MASK_STYLE_FULL);
    al_mask_config_t cfg = {0};
    al_mask_engine_t *bare = NULL;
    assert_int_equal(al_mask_compile(&cfg, &bare, NULL), AL_MASK_OK);
    al_buf_reset(&out);
    assert_int_equal(al_mask_value(bare, AL_MASK_STYLE_HASH, "x", 1, &out), AL_MASK_E_HASH_KEY);
    assert_int_equal(out.len, 0);
    al_buf_free(&out);
    al_mask_scratch_free(&s);
    al_mask_engine_unref(&bare);
    al_mask_engine_unref(&nokey);
    al_mask_engine_unref(&pfx);
    al_mask_engine_unref(&same);
    al_mask_engine_unref(&other);
    al_mask_engine_unref(&e);
}

/* ---- overlaps, per-rule styles, stats ------------------------------------------------ */

static void test_overlap_and_styles(void **state)
{
    AL_UNUSED(state);
    al_mask_rule_t r[] = {
        {"left", "abc[0-9]{3}", AL_MASK_STYLE_FULL},
        {"right", "[0-9]{3}xyz", AL_MASK_STYLE_LAST4},
        {"email", NULL, AL_MASK_STYLE_DROP},
        {"ip_address", NULL, AL_MASK_STYLE_LAST4},
    };
    al_mask_config_t cfg = {.rules = r, .n_rules = AL_ARRAY_LEN(r)};
    al_mask_engine_t *e = NULL;
    al_mask_scratch_t *s = NULL;
    assert_int_equal(al_mask_compile(&cfg, &e, NULL), AL_MASK_OK);
    assert_int_equal(al_mask_engine_rules(e), 4);
    assert_string_equal(al_mask_engine_rule_name(e, 1), "right");
    assert_null(al_mask_engine_rule_name(e, 4));
    assert_int_equal(al_mask_scratch_alloc(e, &s), AL_MASK_OK);
    /* "abc123" is taken first; "123xyz" is masked from its end on, so every
     * byte either claimed is masked (the "xyz" piece by last4: 4 or fewer
     * alphanumerics, all hidden). */
    MASKS_TO(e, s, "[abc123xyz]", "[#########]");
    size_t n;
    const al_mask_match_t *m = al_mask_scratch_matches(s, &n);
    assert_int_equal(n, 2);
    assert_int_equal(m[0].start, 1);
    assert_int_equal(m[0].end, 7);
    assert_int_equal(m[1].start, 7);
    assert_int_equal(m[1].end, 10);
    MASKS_TO(e, s, "a bob@example.com b 10.1.2.3 c", "a  b #0.1.2.3 c");
    al_mask_stats_t st = {0};
    al_buf_t out;
    al_buf_init(&out);
    const char *in = "bob@example.com 10.1.2.3 abc123 and again 10.1.2.3";
    assert_int_equal(al_mask_buffer(e, s, in, strlen(in), &out, &st), AL_MASK_MASKED);
    assert_int_equal(st.bytes, strlen(in));
    assert_int_equal(st.values, 4);
    assert_int_equal(st.by_det[AL_MASK_DET_EMAIL], 1);
    assert_int_equal(st.by_det[AL_MASK_DET_IP_ADDRESS], 2);
    assert_int_equal(st.by_det[AL_MASK_DET_CUSTOM], 1);
    assert_true(st.candidates >= 4);
    al_buf_free(&out);
    al_mask_scratch_free(&s);
    al_mask_engine_unref(&e);
}

/* ---- buffer contract --------------------------------------------------------------------- */

static void test_buffer_contract(void **state)
{
    AL_UNUSED(state);
    al_mask_engine_t *e = engine_all(AL_MASK_STYLE_FULL);
    al_mask_scratch_t *s = NULL;
    assert_int_equal(al_mask_scratch_alloc(e, &s), AL_MASK_OK);
    al_buf_t out;
    al_buf_init(&out);
    /* Nothing found: out untouched (no allocation, no copy). */
    assert_int_equal(al_mask_buffer(e, s, "nothing here", 12, &out, NULL), AL_MASK_OK);
    assert_null(out.p);
    assert_int_equal(al_mask_buffer(e, s, NULL, 0, &out, NULL), AL_MASK_OK);
    assert_int_equal(al_mask_buffer(e, s, "", 0, &out, NULL), AL_MASK_OK);
    assert_null(out.p);
    /* Appends after what is there. */
    al_buf_puts(&out, "pre:");
    assert_int_equal(al_mask_buffer(e, s, "1.2.3.4", 7, &out, NULL), AL_MASK_MASKED);
    assert_string_equal(out.p, "pre:#######");
    /* A NUL byte in the input is just a byte. */
    al_buf_reset(&out);
    assert_int_equal(al_mask_buffer(e, s, "a\0 1.2.3.4", 10, &out, NULL), AL_MASK_MASKED);
    assert_memory_equal(out.p, "a\0 #######", 10);
    /* Bad arguments. */
    assert_int_equal(al_mask_buffer(NULL, s, "x", 1, &out, NULL), AL_MASK_E_INVALID);
    assert_int_equal(al_mask_buffer(e, NULL, "x", 1, &out, NULL), AL_MASK_E_INVALID);
    assert_int_equal(al_mask_buffer(e, s, NULL, 1, &out, NULL), AL_MASK_E_INVALID);
    assert_int_equal(al_mask_buffer(e, s, "x", 1, NULL, NULL), AL_MASK_E_INVALID);
    /* An engine takes references. */
    al_mask_engine_t *r = al_mask_engine_ref(e);
    assert_ptr_equal(r, e);
    al_mask_engine_unref(&r);
    assert_null(r);
    assert_int_equal(al_mask_engine_max_value(e), AL_MASK_MAX_VALUE_DEFAULT);
    al_buf_free(&out);
    al_mask_scratch_free(&s);
    al_mask_engine_unref(&e);
    al_mask_engine_unref(&e); /* NULL: no-op */
}

static void test_scratch(void **state)
{
    AL_UNUSED(state);
    al_mask_rule_t one[] = {{"email", NULL, AL_MASK_STYLE_FULL}};
    al_mask_config_t cfg = {.rules = one, .n_rules = 1};
    al_mask_engine_t *small = NULL, *big = engine_all(AL_MASK_STYLE_FULL);
    assert_int_equal(al_mask_compile(&cfg, &small, NULL), AL_MASK_OK);
    al_mask_scratch_t *s = NULL, *c = NULL;
    assert_int_equal(al_mask_scratch_alloc(small, &s), AL_MASK_OK);
    al_buf_t out;
    al_buf_init(&out);
    /* Allocated for a smaller engine: refused, not overrun. */
    assert_int_equal(al_mask_buffer(big, s, "1.2.3.4", 7, &out, NULL), AL_MASK_E_SCRATCH);
    assert_int_equal(al_mask_scratch_alloc(big, &s), AL_MASK_OK);
    assert_int_equal(al_mask_buffer(big, s, "1.2.3.4", 7, &out, NULL), AL_MASK_MASKED);
    /* It still fits the first engine too; a clone fits both. */
    al_buf_reset(&out);
    assert_int_equal(al_mask_buffer(small, s, "a@b.io", 6, &out, NULL), AL_MASK_MASKED);
    assert_int_equal(al_mask_scratch_clone(s, &c), AL_MASK_OK);
    al_buf_reset(&out);
    assert_int_equal(al_mask_buffer(big, c, "1.2.3.4", 7, &out, NULL), AL_MASK_MASKED);
    assert_string_equal(out.p, "#######");
    assert_int_equal(al_mask_scratch_alloc(NULL, &s), AL_MASK_E_INVALID);
    /* Asking again for an engine it fits is free (the gateways ask once per
     * statement): nothing is reallocated. */
    hs_scratch_t *hs = s->hs;
    assert_int_equal(al_mask_scratch_alloc(big, &s), AL_MASK_OK);
    assert_int_equal(al_mask_scratch_alloc(small, &s), AL_MASK_OK);
    assert_ptr_equal(s->hs, hs);
    /* A new engine, even one at a freed engine's address, is sized for:
     * engines are known by a serial, not a pointer. */
    al_mask_engine_unref(&small);
    al_mask_rule_t cust[8];
    char names[8][8], pats[8][32];
    for (int i = 0; i < 8; i++) {
        snprintf(names[i], sizeof names[i], "ref%d", i);
        snprintf(pats[i], sizeof pats[i], "REF%d-[0-9]{4}", i);
        cust[i] = (al_mask_rule_t){names[i], pats[i], AL_MASK_STYLE_FULL};
    }
    al_mask_engine_t *more = engine_with(AL_MASK_STYLE_FULL, cust, 8, 0); /* more patterns */
    al_mask_scratch_t *s2 = NULL;
    assert_int_equal(al_mask_scratch_alloc(big, &s2), AL_MASK_OK);
    al_buf_reset(&out);
    assert_int_equal(al_mask_buffer(more, s2, "REF7-1234", 9, &out, NULL), AL_MASK_E_SCRATCH);
    assert_int_equal(al_mask_scratch_alloc(more, &s2), AL_MASK_OK);
    assert_int_equal(al_mask_buffer(more, s2, "REF7-1234", 9, &out, NULL), AL_MASK_MASKED);
    assert_string_equal(out.p, "#########");
    al_mask_scratch_free(&s2);
    al_mask_engine_unref(&more);
    al_buf_free(&out);
    al_mask_scratch_free(&c);
    al_mask_scratch_free(&s);
    al_mask_scratch_free(&s);
    al_mask_engine_unref(&small);
    al_mask_engine_unref(&big);
}

/* ---- column API ------------------------------------------------------------------------------ */

static void test_field(void **state)
{
    AL_UNUSED(state);
    al_mask_rule_t r[] = {
        {"email", NULL, AL_MASK_STYLE_HASH},   {"us_ssn", NULL, AL_MASK_STYLE_LAST4},
        {"api_key", NULL, AL_MASK_STYLE_FULL}, {"credit_card", NULL, AL_MASK_STYLE_DROP},
        {"aws_key", NULL, AL_MASK_STYLE_FULL},
    };
    al_mask_column_t cols[] = {
        {"*.secret_notes", AL_MASK_STYLE_DROP},
        {"card_?umber", AL_MASK_STYLE_LAST4},
        {"*name", AL_MASK_STYLE_HASH},
    };
    al_mask_config_t cfg = {.rules = r,
                            .n_rules = AL_ARRAY_LEN(r),
                            .columns = cols,
                            .n_columns = AL_ARRAY_LEN(cols),
                            .hash_key = test_key,
                            .hash_key_len = sizeof test_key};
    al_mask_engine_t *e = NULL;
    al_mask_scratch_t *s = NULL;
    assert_int_equal(al_mask_compile(&cfg, &e, NULL), AL_MASK_OK);
    assert_int_equal(al_mask_scratch_alloc(e, &s), AL_MASK_OK);
    al_buf_t out;
    al_buf_init(&out);
    al_mask_style_t st;
#define FIELD(col, val) al_mask_field(e, s, AL_STR(col), (val), strlen(val), &out, NULL)
    /* 1. column rules, by glob, case-insensitively, first match wins */
    assert_true(al_mask_column_style(e, AL_STR("Users.Secret_Notes"), &st));
    assert_int_equal(st, AL_MASK_STYLE_DROP);
    assert_false(al_mask_column_style(e, AL_STR("notes"), &st));
    assert_int_equal(FIELD("users.secret_notes", "anything"), AL_MASK_DROPPED);
    assert_int_equal(out.len, 0);
    assert_int_equal(FIELD("CARD_NUMBER", "4111-1111-1111-1111"), AL_MASK_MASKED);
    assert_string_equal(out.p, "####-####-####-1111");
    al_buf_reset(&out);
    assert_int_equal(FIELD("full_name", "Ann Smith"), AL_MASK_MASKED);
    assert_int_equal(strncmp(out.p, "h:", 2), 0);
    assert_int_equal(out.len, 18);
    al_buf_reset(&out);
    /* 2. key-like column names give context */
    assert_int_equal(FIELD("customer_ssn", "123456789"), AL_MASK_MASKED);
    assert_string_equal(out.p, "#####6789");
    al_buf_reset(&out);
    assert_int_equal(FIELD("ssn", "900456789"), AL_MASK_OK); /* not a valid SSN */
    assert_int_equal(FIELD("user_password", "hunter2"), AL_MASK_MASKED);
    assert_string_equal(out.p, "#######");
    al_buf_reset(&out);
    assert_int_equal(FIELD("user_password", ""), AL_MASK_OK);
    assert_int_equal(FIELD("api_token", "a8Fq2LzR9xK4mW7pT3vB"), AL_MASK_MASKED);
    assert_string_equal(out.p, "####################");
    al_buf_reset(&out);
    assert_int_equal(FIELD("api_token", "1234"), AL_MASK_OK); /* not secret-looking */
    assert_int_equal(FIELD("aws_secret_access_key", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
                     AL_MASK_MASKED);
    assert_int_equal(out.len, 40);
    al_buf_reset(&out);
    size_t n;
    const al_mask_match_t *m = al_mask_scratch_matches(s, &n);
    assert_int_equal(n, 1);
    assert_int_equal(m[0].det, AL_MASK_DET_AWS_KEY);
    /* 3. otherwise scanned; a value that is wholly dropped is DROPPED */
    assert_int_equal(FIELD("comment", "mail bob@example.com"), AL_MASK_MASKED);
    assert_string_equal(out.p, "mail h:398ff944f3b43678");
    al_buf_reset(&out);
    assert_int_equal(FIELD("pan", "4111111111111111"), AL_MASK_DROPPED);
    assert_int_equal(out.len, 0);
    assert_int_equal(FIELD("note", "pan 4111111111111111"), AL_MASK_MASKED);
    assert_string_equal(out.p, "pan ");
    al_buf_reset(&out);
    assert_int_equal(al_mask_field(e, s, (al_str_t){NULL, 0}, "x", 1, &out, NULL), AL_MASK_OK);
    assert_int_equal(FIELD("comment", "plain"), AL_MASK_OK);
    assert_int_equal(out.len, 0);
#undef FIELD
    al_buf_free(&out);
    al_mask_scratch_free(&s);
    al_mask_engine_unref(&e);
}

/* A column rule works without any detector enabled. */
static void test_columns_only(void **state)
{
    AL_UNUSED(state);
    al_mask_column_t cols[] = {{"ssn", AL_MASK_STYLE_FULL}};
    al_mask_config_t cfg = {.columns = cols, .n_columns = 1};
    al_mask_engine_t *e = NULL;
    al_mask_scratch_t *s = NULL;
    assert_int_equal(al_mask_compile(&cfg, &e, NULL), AL_MASK_OK);
    assert_int_equal(al_mask_scratch_alloc(e, &s), AL_MASK_OK);
    al_buf_t out;
    al_buf_init(&out);
    assert_int_equal(al_mask_field(e, s, AL_STR("SSN"), "123", 3, &out, NULL), AL_MASK_MASKED);
    assert_string_equal(out.p, "###");
    assert_int_equal(al_mask_buffer(e, s, "bob@example.com", 15, &out, NULL), AL_MASK_OK);
    al_buf_free(&out);
    al_mask_scratch_free(&s);
    al_mask_engine_unref(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compile_errors),     cmocka_unit_test(test_compile_options),
        cmocka_unit_test(test_names),              cmocka_unit_test(test_style_full_last4_drop),
        cmocka_unit_test(test_style_hash),         cmocka_unit_test(test_overlap_and_styles),
        cmocka_unit_test(test_buffer_contract),    cmocka_unit_test(test_scratch),
        cmocka_unit_test(test_field),              cmocka_unit_test(test_columns_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
