/*
 * test_mask_prefilter.c - the bit-parallel prefilter (src/mask/prefilter.c)
 * against Hyperscan: for every shape, on random and structured text, the
 * end offsets it reports must be exactly the ones Hyperscan block mode
 * reports for the shape's regex in al__mask_patterns. That is what keeps
 * masking results unchanged by moving those patterns out of Hyperscan.
 * Also: the SIMD classifiers (SSE2, and AVX2 and AVX-512BW where the CPU
 * has them) against the byte-by-byte one.
 */
#include "mask_test.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11) % n;
}

typedef struct ends {
    size_t v[4096];
    size_t n;
} ends_t;

static int hs_collect(unsigned id, unsigned long long from, unsigned long long to, unsigned flags,
                      void *ctx)
{
    AL_UNUSED(id);
    AL_UNUSED(from);
    AL_UNUSED(flags);
    ends_t *e = ctx;
    if (e->n < AL_ARRAY_LEN(e->v))
        e->v[e->n++] = (size_t)to;
    return 0;
}

typedef struct pf_ctx {
    ends_t per[AL__MASK_SHAPE__COUNT];
} pf_ctx_t;

static int pf_collect(unsigned shape, size_t end, void *ctx)
{
    pf_ctx_t *c = ctx;
    ends_t *e = &c->per[shape];
    if (e->n < AL_ARRAY_LEN(e->v))
        e->v[e->n++] = end;
    return 0;
}

typedef struct shape_db {
    unsigned shape;
    const char *re;
    hs_database_t *db;
    hs_scratch_t *s;
} shape_db_t;

static shape_db_t DB[AL__MASK_SHAPE__COUNT];
static size_t n_db;
static pf_ctx_t PF;
static ends_t HS;

static int setup(void **state)
{
    AL_UNUSED(state);
    for (size_t k = 0; k < al__mask_n_patterns; k++) {
        const al__mask_pattern_t *p = &al__mask_patterns[k];
        if (p->shape == AL__MASK_SHAPE_NONE)
            continue;
        shape_db_t *d = &DB[n_db++];
        d->shape = p->shape;
        d->re = p->re;
        hs_compile_error_t *ce = NULL;
        if (hs_compile(p->re, p->flags, HS_MODE_BLOCK, NULL, &d->db, &ce) != HS_SUCCESS ||
            hs_alloc_scratch(d->db, &d->s) != HS_SUCCESS)
            return -1;
    }
    return n_db == AL__MASK_SHAPE__COUNT - 1 ? 0 : -1;
}

static int teardown(void **state)
{
    AL_UNUSED(state);
    for (size_t i = 0; i < n_db; i++) {
        hs_free_scratch(DB[i].s);
        hs_free_database(DB[i].db);
    }
    return 0;
}

/* Compares every shape on p[0..len), all shapes enabled at once and each
 * alone. Returns the number of matches seen (so callers can check their
 * inputs exercise something). */
static size_t compare(const uint8_t *p, size_t len)
{
    size_t seen = 0;
    for (int pass = 0; pass < 2; pass++) {
        memset(&PF, 0, sizeof PF);
        uint32_t all = 0;
        for (size_t i = 0; i < n_db; i++)
            all |= 1u << DB[i].shape;
        if (pass == 0)
            assert_int_equal(al__mask_prefilter(p, len, all, pf_collect, &PF), 0);
        for (size_t i = 0; i < n_db; i++) {
            const shape_db_t *d = &DB[i];
            if (pass == 1)
                assert_int_equal(al__mask_prefilter(p, len, 1u << d->shape, pf_collect, &PF), 0);
            HS.n = 0;
            if (len)
                assert_int_equal(hs_scan(d->db, (const char *)p, (unsigned)len, 0, d->s,
                                         hs_collect, &HS),
                                 HS_SUCCESS);
            const ends_t *got = &PF.per[d->shape];
            bool same = got->n == HS.n;
            for (size_t k = 0; same && k < HS.n; k++)
                same = got->v[k] == HS.v[k];
            if (!same) {
                size_t k = 0;
                while (k < HS.n && k < got->n && got->v[k] == HS.v[k])
                    k++;
                fail_msg("shape %u /%s/ on \"%.*s\" (%zu bytes): Hyperscan %zu ends, prefilter "
                         "%zu; first difference at #%zu: hs %zu, prefilter %zu",
                         d->shape, d->re, (int)AL_MIN(len, 300), (const char *)p, len, HS.n,
                         got->n, k, k < HS.n ? HS.v[k] : 0, k < got->n ? got->v[k] : 0);
            }
            seen += HS.n;
        }
    }
    return seen;
}

/* Bytes the shapes care about, and some they do not. */
static const char alphabet[] = "0123456789012345678901234567890123456789 - . ) ( : :"
                               "ABCDEFGHIJKLMNOPQRSTUVWXYZ GB DE FR NL abcdefxyz_+\n";

static void test_random(void **state)
{
    AL_UNUSED(state);
    static uint8_t buf[8192];
    size_t seen = 0;
    for (int it = 0; it < 20000; it++) {
        size_t len = it % 50 == 0 ? 1000 + rnd(7000) : rnd(200);
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)alphabet[rnd(sizeof alphabet - 1)];
        seen += compare(buf, len);
    }
    assert_true(seen > 1000); /* the inputs do produce matches */
}

/* Values of every shape at every offset around the 64-byte block edges. */
static void test_values_at_every_offset(void **state)
{
    AL_UNUSED(state);
    static const char *const vals[] = {
        "4111111111111111",        "4111 1111 1111 1111",   "3782-822463-10005",
        "123-45-6789",             "123 45 6789",           "415-555-2671",
        "(415) 555-2671",          "(415)555.2671",         "1234 5678",
        "12345678",                "01 23 45 67 89",        "01.23.45.67.89",
        "089 1234567",             "192.168.1.1",           "1.22.333.4",
        "GB82 WEST 1234 5698 7654 32", "DE89370400440532013000", "XX82WEST12345698765432",
        "2001:db8:85a3:0:0:8a2e:370:7334", "fe80:0:0:0:0:0:0:1",
        "abcd:ef01:2345:6789:abcd:ef01:2345:6789",
        "1:2:3:4:5:6:7:8:9",       "12345:1:2:3:4:5:6:7",   "2024-01-15T10:30:00.123Z",
    };
    static uint8_t buf[512];
    size_t seen = 0;
    for (size_t v = 0; v < AL_ARRAY_LEN(vals); v++) {
        size_t vl = strlen(vals[v]);
        for (size_t off = 0; off < 140; off++) {
            memset(buf, 'x', sizeof buf);
            if (off % 3 == 1)
                memset(buf, ' ', off);
            memcpy(buf + off, vals[v], vl);
            seen += compare(buf, off + vl);
            seen += compare(buf, off + vl + 1 + rnd(100));
        }
    }
    assert_true(seen > 10000);
    /* A long digit-free stretch between two values: the skipped blocks. */
    static uint8_t big[4096];
    memset(big, 'w', sizeof big);
    memcpy(big + 10, "GB82 WEST 1234 5698 7654 32", 27);
    memcpy(big + 3000 - 5, "GB82 WEST", 9); /* CC and digits straddle a skipped block */
    memcpy(big + 3000 + 4, "1234 5678", 9);
    memcpy(big + 4096 - 11, "123-45-6789", 11);
    assert_true(compare(big, sizeof big) > 0);
}

static void test_classify(void **state)
{
    AL_UNUSED(state);
    uint8_t b[64];
    for (int it = 0; it < 2000; it++) {
        for (size_t i = 0; i < 64; i++)
            b[i] = (uint8_t)(it < 4 ? (size_t)it * 64 + i : rnd(256));
        al__mask_cls_t s;
        al__mask_classify_scalar(b, &s);
        for (unsigned isa = 0; isa < AL__MASK_ISA__COUNT; isa++) {
            al__mask_cls_t a;
            if (al__mask_classify_isa(isa, b, &a))
                assert_memory_equal(&a, &s, sizeof a);
        }
    }
}

/* The engine gives the same values with shapes as the regexes did: an
 * engine with one detector per rule must find what test_mask_detectors
 * expects; here, one check that a shape-only engine (credit_card alone, no
 * Hyperscan database) works. */
static void test_shape_only_engine(void **state)
{
    AL_UNUSED(state);
    al_mask_rule_t r = {"credit_card", NULL, AL_MASK_STYLE_FULL};
    al_mask_config_t cfg = {.rules = &r, .n_rules = 1};
    al_mask_engine_t *e = NULL;
    assert_int_equal(al_mask_compile(&cfg, &e, NULL), AL_MASK_OK);
    assert_false(e->has_db);
    assert_int_equal(e->shapes, 1u << AL__MASK_SHAPE_CARD);
    al_mask_scratch_t *s = NULL;
    assert_int_equal(al_mask_scratch_alloc(e, &s), AL_MASK_OK);
    MASKS_TO(e, s, "card 4111 1111 1111 1111 ok", "card ################### ok");
    UNTOUCHED(e, s, "bob@example.com 123-45-6789");
    al_mask_scratch_free(&s);
    al_mask_engine_unref(&e);
}

/* Thousands of values of every kind in one text: the hits of the shape
 * pass and of each Hyperscan database interleave, and the sort (merging
 * ordered runs) must still give every value in order, exactly once. */
static void test_many_values(void **state)
{
    AL_UNUSED(state);
    static const struct {
        const char *v;
        al_mask_det_t det;
    } vals[] = {
        {"bob@example.com", AL_MASK_DET_EMAIL},
        {"4111 1111 1111 1111", AL_MASK_DET_CREDIT_CARD},
        {"123-45-6789", AL_MASK_DET_US_SSN},
        {"+44 20 7946 0958", AL_MASK_DET_PHONE},
        {"(415) 555-2671", AL_MASK_DET_PHONE},
        {"192.168.1.7", AL_MASK_DET_IP_ADDRESS},
        {"2001:db8::1", AL_MASK_DET_IP_ADDRESS},
        {"GB82 WEST 1234 5698 7654 32", AL_MASK_DET_IBAN},
        {"AKIAIOSFODNN7EXAMPLE", AL_MASK_DET_AWS_KEY},
    };
    al_mask_engine_t *e = engine_all(AL_MASK_STYLE_FULL);
    al_mask_scratch_t *s = NULL;
    assert_int_equal(al_mask_scratch_alloc(e, &s), AL_MASK_OK);
    enum { N = 3000 };
    static size_t st[N], en[N];
    static al_mask_det_t dt[N];
    al_buf_t in, want, out;
    al_buf_init(&in);
    al_buf_init(&want);
    al_buf_init(&out);
    for (size_t i = 0; i < N; i++) {
        static const char *const fill[] = {" and ", ", ", "\n", " x "};
        const char *f = fill[rnd(AL_ARRAY_LEN(fill))];
        al_buf_puts(&in, f);
        al_buf_puts(&want, f);
        size_t k = rnd(AL_ARRAY_LEN(vals));
        st[i] = in.len;
        al_buf_puts(&in, vals[k].v);
        en[i] = in.len;
        dt[i] = vals[k].det;
        for (size_t j = st[i]; j < en[i]; j++)
            al_buf_puts(&want, "#");
    }
    al_buf_puts(&in, ".");
    al_buf_puts(&want, ".");
    assert_int_equal(al_mask_buffer(e, s, in.p, in.len, &out, NULL), AL_MASK_MASKED);
    size_t n;
    const al_mask_match_t *m = al_mask_scratch_matches(s, &n);
    assert_int_equal(n, N);
    for (size_t i = 0; i < N; i++) {
        if (m[i].start != st[i] || m[i].end != en[i] || m[i].det != dt[i])
            fail_msg("value %zu: got [%zu,%zu) %s, want [%zu,%zu) %s", i, m[i].start, m[i].end,
                     al_mask_det_name(m[i].det), st[i], en[i], al_mask_det_name(dt[i]));
    }
    assert_string_equal(out.p, want.p);
    al_buf_free(&in);
    al_buf_free(&want);
    al_buf_free(&out);
    al_mask_scratch_free(&s);
    al_mask_engine_unref(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_values_at_every_offset),
        cmocka_unit_test(test_shape_only_engine),
        cmocka_unit_test(test_many_values),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
