/*
 * test_mask_body.c - al_mask_http_body: JSON masked inside string tokens
 * only and still valid JSON (checked by parsing the output with jansson),
 * escape-aware; form bodies decoded, masked and re-encoded; text masked;
 * other media types passed through untouched.
 */
#include <jansson.h>

#include "mask_test.h"

static al_mask_engine_t *E, *L4;
static al_mask_scratch_t *S;

static int setup(void **state)
{
    AL_UNUSED(state);
    E = engine_all(AL_MASK_STYLE_FULL);
    L4 = engine_all(AL_MASK_STYLE_LAST4);
    return al_mask_scratch_alloc(E, &S) == AL_MASK_OK && al_mask_scratch_alloc(L4, &S) == AL_MASK_OK
               ? 0
               : -1;
}

static int teardown(void **state)
{
    AL_UNUSED(state);
    al_mask_scratch_free(&S);
    al_mask_engine_unref(&E);
    al_mask_engine_unref(&L4);
    return 0;
}

/* Masks body as ct; returns the output (NULL when untouched) and rc. */
static char *body(const al_mask_engine_t *e, const char *ct, const char *in, al_mask_rc_t *rc)
{
    al_buf_t out;
    al_buf_init(&out);
    *rc = al_mask_http_body(e, S, al_str_c(ct), in, strlen(in), &out, NULL);
    assert_true(*rc >= 0);
    if (*rc == AL_MASK_OK)
        assert_null(out.p);
    return out.p;
}

/* JSON in -> JSON out; both must parse, and out must equal want. */
static void json_case(const al_mask_engine_t *e, const char *in, const char *want)
{
    json_error_t err;
    json_t *a = json_loads(in, JSON_DECODE_ANY, &err);
    if (!a)
        fail_msg("test input is not JSON: %s: %s", in, err.text);
    json_decref(a);
    al_mask_rc_t rc;
    char *got = body(e, "application/json", in, &rc);
    const char *res = got ? got : in;
    if (strcmp(res, want) != 0)
        fail_msg("json %s\n  got  %s\n  want %s", in, res, want);
    json_t *b = json_loads(res, JSON_DECODE_ANY, &err);
    if (!b)
        fail_msg("masked output is not JSON: %s: %s", res, err.text);
    json_decref(b);
    free(got);
}

static void test_json_strings(void **state)
{
    AL_UNUSED(state);
    json_case(E, "{\"user\":{\"email\":\"a.b@example.com\",\"card\":\"4111 1111 1111 1111\"},\"ok\":true}",
              "{\"user\":{\"email\":\"###############\",\"card\":\"###################\"},\"ok\":true}");
    /* keys are strings too */
    json_case(E, "{\"bob@example.com\": [1, 2.5e3, -7, null, false]}",
              "{\"###############\": [1, 2.5e3, -7, null, false]}");
    /* key context for API keys */
    json_case(E, "{\"api_key\":\"sk_live_4eC39HqLyjWDarjtT1zdp7dc\"}",
              "{\"api_key\":\"################################\"}");
    /* nothing to mask: untouched */
    al_mask_rc_t rc;
    assert_null(body(E, "application/json", "{\"a\":\"plain\",\"n\":[1,2,3]}", &rc));
    assert_int_equal(rc, AL_MASK_OK);
    assert_null(body(E, "application/json", "", &rc));
    assert_int_equal(rc, AL_MASK_OK);
}

static void test_json_escapes(void **state)
{
    AL_UNUSED(state);
    /* \" and \u00e9 around a value: the escapes outside it survive */
    json_case(E, "{\"note\":\"say \\\"hi\\\" to bob@example.com \\u00e9 now\"}",
              "{\"note\":\"say \\\"hi\\\" to ############### \\u00e9 now\"}");
    /* a value written with an escape is still found, and replaced whole */
    json_case(E, "{\"e\":\"bob\\u0040example.com\"}", "{\"e\":\"###############\"}");
    json_case(E, "{\"ip\":\"10.0.0.1\\/8\"}", "{\"ip\":\"########\\/8\"}");
    /* API key containing an escaped slash, key kept as context */
    json_case(E, "{\"api_key\":\"Xk9Lm2Pq\\/7Rt4Vw8Yz3Bc6Df\"}", "{\"api_key\":\"########################\"}");
    /* PEM with \n escapes: masked to its END line, the last \n kept */
    json_case(E,
              "{\"k\":\"-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\n"
              "-----END PRIVATE KEY-----\\n\"}",
              "{\"k\":\"########################################################################"
              "##############\\n\"}"); /* 27 + 1 + 32 + 1 + 25 bytes */
    /* last4 keeps bytes of the value; a quote among them is re-escaped */
    json_case(L4, "{\"e\":\"\\\"bob@example.com\\\"\"}", "{\"e\":\"\\\"###@######e.com\\\"\"}");
    /* surrogate pairs and raw UTF-8 next to values are left whole */
    json_case(E, "{\"x\":\"\\ud83d\\ude00bob@example.com\\ud83d\\ude00 \xc3\xa9\"}",
              "{\"x\":\"\\ud83d\\ude00###############\\ud83d\\ude00 \xc3\xa9\"}");
}

static void test_json_numbers(void **state)
{
    AL_UNUSED(state);
    /* a number holding a card becomes a string of its masked form */
    json_case(E, "{\"card\":4111111111111111,\"n\":12}", "{\"card\":\"################\",\"n\":12}");
    json_case(E, "[4111111111111111]", "[\"################\"]");
}

/* A family of generated JSON documents: output always parses, and no
 * detected value is left in any decoded string. */
static void test_json_generated(void **state)
{
    AL_UNUSED(state);
    static const char *const parts[] = {
        "bob@example.com", "\\\"",     "\\\\",          "\\u00e9", "\\ud83d\\ude00", "\\n",
        " ",               "\\/",      "4111111111111111", "x",    "\xc3\xa9",       "10.1.2.3",
        "\\u0040",         "example.", "com",           "+1 415 555 2671",
    };
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int n = 0; n < 3000; n++) {
        char doc[1024] = "{\"k\":\"";
        size_t len = strlen(doc);
        for (int k = 0; k < 8; k++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            /* Escapes glue to their neighbours; other parts are words. */
            const char *p = parts[x % AL_ARRAY_LEN(parts)];
            if (p[0] != '\\' && len > 6 && doc[len - 1] != ' ')
                doc[len++] = ' ';
            memcpy(doc + len, p, strlen(p));
            len += strlen(p);
        }
        memcpy(doc + len, "\",\"n\":4111111111111111}", 24);
        json_error_t err;
        json_t *in = json_loads(doc, 0, &err);
        assert_non_null(in);
        json_decref(in);
        al_mask_rc_t rc;
        char *got = body(E, "application/json", doc, &rc);
        assert_int_equal(rc, AL_MASK_MASKED);
        json_t *j = json_loads(got, 0, &err);
        if (!j)
            fail_msg("not JSON: %s -> %s: %s", doc, got, err.text);
        const char *k = json_string_value(json_object_get(j, "k"));
        assert_non_null(k);
        if (strstr(k, "bob@example.com"))
            fail_msg("value left: %s -> %s", doc, got);
        assert_null(strstr(k, "4111111111111111"));
        assert_string_equal(json_string_value(json_object_get(j, "n")), "################");
        /* a re-scan of the decoded string finds nothing */
        UNTOUCHED(E, S, k);
        json_decref(j);
        free(got);
    }
}

static void test_not_json(void **state)
{
    AL_UNUSED(state);
    al_mask_rc_t rc;
    /* labelled JSON but is an HTML error page: every byte may be data */
    char *got = body(E, "application/json", "<p>no user bob@example.com</p>", &rc);
    assert_int_equal(rc, AL_MASK_MASKED);
    assert_string_equal(got, "<p>no user ###############</p>");
    free(got);
    got = body(E, "application/json", "{\"a\":\"bob@example.com", &rc); /* unterminated */
    assert_string_equal(got, "{\"a\":\"###############");
    free(got);
    got = body(E, "application/json", "{\"a\":\"\\x\", \"b\":\"1.2.3.4\"}", &rc); /* bad escape */
    assert_string_equal(got, "{\"a\":\"\\x\", \"b\":\"#######\"}");
    free(got);
}

static void test_media_types(void **state)
{
    AL_UNUSED(state);
    const char *v = "{\"e\":\"bob@example.com\"}";
    static const char *const json_types[] = {"application/json", "Application/JSON; charset=utf-8",
                                             " application/problem+json", "application/vnd.api+json"};
    for (size_t i = 0; i < AL_ARRAY_LEN(json_types); i++) {
        al_mask_rc_t rc;
        char *got = body(E, json_types[i], v, &rc);
        assert_int_equal(rc, AL_MASK_MASKED);
        assert_string_equal(got, "{\"e\":\"###############\"}");
        free(got);
    }
    static const char *const text_types[] = {"text/plain", "text/html; charset=utf-8", "TEXT/CSV",
                                             ""};
    for (size_t i = 0; i < AL_ARRAY_LEN(text_types); i++) {
        al_mask_rc_t rc;
        char *got = body(E, text_types[i], "id,mail\n1,bob@example.com\n", &rc);
        assert_int_equal(rc, AL_MASK_MASKED);
        assert_string_equal(got, "id,mail\n1,###############\n");
        free(got);
    }
    static const char *const pass[] = {"image/png", "application/octet-stream", "application/xml",
                                       "application/jsonx", "multipart/form-data; boundary=x"};
    for (size_t i = 0; i < AL_ARRAY_LEN(pass); i++) {
        al_mask_rc_t rc;
        assert_null(body(E, pass[i], v, &rc));
        assert_int_equal(rc, AL_MASK_OK);
    }
    al_buf_t out;
    al_buf_init(&out);
    assert_int_equal(al_mask_http_body(E, S, AL_STR("text/plain"), NULL, 3, &out, NULL),
                     AL_MASK_E_INVALID);
    assert_int_equal(al_mask_http_body(E, NULL, AL_STR("text/plain"), "x", 1, &out, NULL),
                     AL_MASK_E_INVALID);
    al_buf_free(&out);
}

static void test_form(void **state)
{
    AL_UNUSED(state);
    al_mask_rc_t rc;
    const char *in = "user=bob%40example.com&token=sk_live_4eC39HqLyjWDarjtT1zdp7dc&q=a+b"
                     "&card=4111+1111+1111+1111&bad=%zz&flag&email=bob@example.com";
    char *got = body(E, "application/x-www-form-urlencoded", in, &rc);
    assert_int_equal(rc, AL_MASK_MASKED);
    /* Masked values are re-encoded ('#' is %23); the rest is byte for byte. */
    assert_string_equal(got,
                        "user=%23%23%23%23%23%23%23%23%23%23%23%23%23%23%23"
                        "&token=%23%23%23%23%23%23%23%23%23%23%23%23%23%23%23%23%23%23%23%23%23%23"
                        "%23%23%23%23%23%23%23%23%23%23&q=a+b"
                        "&card=%23%23%23%23%23%23%23%23%23%23%23%23%23%23%23%23%23%23%23&bad=%zz&flag"
                        "&email=%23%23%23%23%23%23%23%23%23%23%23%23%23%23%23");
    free(got);
    /* last4 keeps an encoded separator encoded */
    got = body(L4, "application/x-www-form-urlencoded", "c=4111%201111%201111%201111", &rc);
    assert_string_equal(got, "c=%23%23%23%23+%23%23%23%23+%23%23%23%23+1111");
    free(got);
    /* names are not masked; nothing found: untouched */
    assert_null(body(E, "application/x-www-form-urlencoded", "bob%40example.com=1&a=b", &rc));
    assert_int_equal(rc, AL_MASK_OK);
    assert_null(body(E, "application/x-www-form-urlencoded", "", &rc));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_strings), cmocka_unit_test(test_json_escapes),
        cmocka_unit_test(test_json_numbers), cmocka_unit_test(test_json_generated),
        cmocka_unit_test(test_not_json),     cmocka_unit_test(test_media_types),
        cmocka_unit_test(test_form),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
