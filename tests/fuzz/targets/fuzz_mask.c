/*
 * fuzz_mask.c - the masking engine on hostile bytes.
 *
 * Every input goes through al_mask_buffer and through a stream fed in
 * chunks whose sizes come from a generator seeded by the input, with a
 * small max_value_len so inputs span several stream windows. Invariants:
 *  - the stream's output equals the one-shot output, byte for byte;
 *  - `full` keeps the length and every masked byte is '#';
 *  - a re-scan of the output finds nothing (no detected value survives,
 *    and masking never creates a new one);
 *  - a body that jansson parses as JSON still parses after
 *    al_mask_http_body, and nothing any call returns is an error other
 *    than the documented ones.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mask/mask.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static al_mask_engine_t *engine;
static al_mask_scratch_t *scratch;

static void setup(void)
{
    static const char *const builtins[] = {"credit_card", "us_ssn",  "email",      "phone",
                                           "iban",        "ip_address", "jwt",     "aws_key",
                                           "private_key", "api_key"};
    al_mask_rule_t rules[12];
    size_t n = 0;
    for (size_t i = 0; i < AL_ARRAY_LEN(builtins); i++)
        rules[n++] = (al_mask_rule_t){builtins[i], NULL, AL_MASK_STYLE_FULL};
    rules[n++] = (al_mask_rule_t){"acct", "ACCT-[0-9]{6,10}", AL_MASK_STYLE_FULL};
    rules[n++] = (al_mask_rule_t){"codename", "(?i)project[ _][a-z]{4,12}", AL_MASK_STYLE_FULL};
    al_mask_config_t cfg = {.rules = rules, .n_rules = n, .max_value_len = 1024};
    if (al_mask_compile(&cfg, &engine, NULL) != AL_MASK_OK ||
        al_mask_scratch_alloc(engine, &scratch) != AL_MASK_OK)
        abort();
}

static uint64_t rng(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void check_ok(al_mask_rc_t rc)
{
    if (rc < 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!engine)
        setup();
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < size && i < 8; i++)
        seed = seed * 131 + data[i];
    seed |= 1;
    const char *in = (const char *)data;

    /* One shot. */
    al_buf_t one;
    al_buf_init(&one);
    al_mask_rc_t rc = al_mask_buffer(engine, scratch, in, size, &one, NULL);
    check_ok(rc);
    const char *res = rc == AL_MASK_MASKED ? one.p : in;
    size_t res_len = rc == AL_MASK_MASKED ? one.len : size;
    if (res_len != size)
        abort();
    size_t nm;
    const al_mask_match_t *m = al_mask_scratch_matches(scratch, &nm);
    for (size_t i = 0; i < nm; i++)
        for (size_t k = m[i].start; k < m[i].end; k++)
            if (res[k] != '#')
                abort();

    /* Stream, random chunks (mostly small, sometimes large). */
    al_mask_stream_t *st = NULL;
    /* Half the inputs use the smallest window, so it fills and slides. */
    check_ok(al_mask_stream_open(engine, (seed & 2) ? 1 : 0, &st));
    al_buf_t sout;
    al_buf_init(&sout);
    size_t pos = 0;
    while (pos < size) {
        uint64_t r = rng(&seed);
        size_t k = (r & 3) == 0 ? (size_t)(r >> 8) % 4096 : (size_t)(r >> 8) % 64;
        k = AL_MIN(k + 1, size - pos);
        check_ok(al_mask_stream_feed(st, scratch, in + pos, k, &sout, NULL));
        pos += k;
        if (al_mask_stream_pending(st) > al_mask_engine_max_value(engine))
            abort();
    }
    check_ok(al_mask_stream_flush(st, scratch, &sout, NULL));
    if (al_mask_stream_pending(st) != 0 || sout.len != res_len ||
        (res_len && memcmp(sout.p, res, res_len) != 0))
        abort();
    al_mask_stream_free(&st);

    /* Nothing detectable survives. */
    al_buf_t again;
    al_buf_init(&again);
    if (al_mask_buffer(engine, scratch, res, res_len, &again, NULL) != AL_MASK_OK)
        abort();

    /* JSON stays JSON. */
    al_buf_t body;
    al_buf_init(&body);
    rc = al_mask_http_body(engine, scratch, AL_STR("application/json"), in, size, &body, NULL);
    check_ok(rc);
    json_error_t jerr;
    json_t *j = json_loadb(in, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (j && rc == AL_MASK_MASKED) {
        json_t *j2 = json_loadb(body.p, body.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        if (!j2)
            abort();
        json_decref(j2);
    }
    json_decref(j);
    al_buf_reset(&body);
    check_ok(al_mask_http_body(engine, scratch, AL_STR("application/x-www-form-urlencoded"), in,
                               size, &body, NULL));
    al_buf_reset(&body);
    check_ok(al_mask_field(engine, scratch, AL_STR("user_ssn"), in, size, &body, NULL));

    al_buf_free(&body);
    al_buf_free(&again);
    al_buf_free(&sout);
    al_buf_free(&one);
    return 0;
}
