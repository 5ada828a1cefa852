/*
 * mask_test.h - helpers shared by the src/mask unit tests: engines with
 * every built-in detector, and "mask this string" shorthands that fail the
 * test on an error return.
 */
#ifndef AL_TEST_MASK_TEST_H
#define AL_TEST_MASK_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "mask/mask_int.h"

static const char *const all_builtins[] = {"credit_card", "us_ssn",  "email",       "phone",
                                           "iban",        "ip_address", "jwt",       "aws_key",
                                           "private_key", "api_key"};

static const uint8_t test_key[32] = "0123456789abcdef-deployment-key";

/* An engine with every built-in in `style`, plus extra rules. */
static inline al_mask_engine_t *engine_with(al_mask_style_t style, const al_mask_rule_t *extra,
                                            size_t n_extra, size_t max_value)
{
    al_mask_rule_t rules[AL_ARRAY_LEN(all_builtins) + 8];
    size_t n = 0;
    for (size_t i = 0; i < AL_ARRAY_LEN(all_builtins); i++)
        rules[n++] = (al_mask_rule_t){all_builtins[i], NULL, style};
    for (size_t i = 0; i < n_extra && n < AL_ARRAY_LEN(rules); i++)
        rules[n++] = extra[i];
    al_mask_config_t cfg = {.rules = rules,
                            .n_rules = n,
                            .hash_key = test_key,
                            .hash_key_len = sizeof test_key,
                            .max_value_len = max_value};
    al_mask_engine_t *e = NULL;
    al_buf_t d;
    al_buf_init(&d);
    al_mask_rc_t rc = al_mask_compile(&cfg, &e, &d);
    if (rc != AL_MASK_OK)
        fail_msg("compile: %s: %s", al_mask_strerror(rc), d.p ? d.p : "");
    al_buf_free(&d);
    return e;
}

static inline al_mask_engine_t *engine_all(al_mask_style_t style)
{
    return engine_with(style, NULL, 0, 0);
}

/* Masks s; returns a heap copy of the result (the input itself when
 * nothing matched). */
static inline char *mask_str(const al_mask_engine_t *e, al_mask_scratch_t *sc, const char *s)
{
    al_buf_t out;
    al_buf_init(&out);
    al_mask_rc_t rc = al_mask_buffer(e, sc, s, strlen(s), &out, NULL);
    assert_true(rc == AL_MASK_OK || rc == AL_MASK_MASKED);
    if (rc == AL_MASK_OK) {
        assert_null(out.p); /* untouched */
        return strdup(s);
    }
    return out.p;
}

/* Asserts that masking `in` gives `want`. */
#define MASKS_TO(e, sc, in, want)                                                              \
    do {                                                                                       \
        char *got_ = mask_str((e), (sc), (in));                                                \
        if (strcmp(got_, (want)) != 0)                                                         \
            fail_msg("mask(\"%s\")\n  got  \"%s\"\n  want \"%s\"", (in), got_, (want));       \
        free(got_);                                                                            \
    } while (0)

/* Asserts that nothing in `in` is masked. */
#define UNTOUCHED(e, sc, in) MASKS_TO(e, sc, in, in)

/* The kinds found in `in`, as a bit set. */
static inline unsigned kinds_in(const al_mask_engine_t *e, al_mask_scratch_t *sc, const char *s)
{
    al_buf_t out;
    al_buf_init(&out);
    al_mask_rc_t rc = al_mask_buffer(e, sc, s, strlen(s), &out, NULL);
    assert_true(rc >= 0);
    size_t n;
    const al_mask_match_t *m = al_mask_scratch_matches(sc, &n);
    unsigned k = 0;
    for (size_t i = 0; i < n; i++)
        k |= 1u << m[i].det;
    al_buf_free(&out);
    return k;
}

#define KIND(d) (1u << (d))

#endif
