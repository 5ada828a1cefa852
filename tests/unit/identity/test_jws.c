/*
 * test_jws.c - JWS / JWK / JWK Set / base64url (src/identity/jws.h).
 *
 * Known answers come from the RFCs (RFC 7515 Appendix A.2, A.3, A.4;
 * RFC 8037 Appendix A; RFC 7638 §3.1) and from Project Wycheproof
 * (tests/data/wycheproof, every vector of ten files). Round trips sign
 * with freshly generated keys; hostile inputs cover every refusal the
 * header documents.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>

#include "identity/jws.h"

/* ---- helpers ---------------------------------------------------------------------- */

static const al_alg_t all_algs[] = {
    AL_ALG_RS256, AL_ALG_RS384, AL_ALG_RS512, AL_ALG_PS256, AL_ALG_PS384,
    AL_ALG_PS512, AL_ALG_ES256, AL_ALG_ES384, AL_ALG_ES512, AL_ALG_EDDSA,
};

static char *b64(const void *p, size_t n)
{
    al_buf_t b;
    al_buf_init(&b);
    assert_int_equal(al_b64url_encode(&b, p, n), AL_OK);
    if (!b.p) /* nothing appended for n == 0 */
        return strdup("");
    return b.p;
}

/* "<b64 hdr>.<b64 payload>.<sig>" with hdr and payload taken verbatim. */
static char *tok3(const char *hdr, const char *payload, const char *sig)
{
    char *h = b64(hdr, strlen(hdr)), *p = b64(payload, strlen(payload));
    size_t n = strlen(h) + strlen(p) + strlen(sig) + 3;
    char *t = malloc(n);
    assert_non_null(t);
    snprintf(t, n, "%s.%s.%s", h, p, sig);
    free(h);
    free(p);
    return t;
}

static al_tok_status_t parse_str(const char *t)
{
    al_jws_t j;
    const char *detail = NULL;
    al_tok_status_t st = al_jws_parse(t, strlen(t), AL_JWS_DEFAULT_MAX_LEN, &j, &detail);
    assert_non_null(detail);
    if (st != AL_TOK_OK) { /* refused: nothing left behind */
        assert_null(j.header);
        assert_null(j.payload);
        assert_null(j.sig);
        assert_int_equal(j.alg, AL_ALG_NONE);
    }
    al_jws_free(&j);
    return st;
}

/* Parses a JWK from JSON text. */
static int jwk_parse(const char *json, al_jwk_t *k, const char **err)
{
    json_error_t jerr;
    json_t *o = json_loads(json, 0, &jerr);
    assert_non_null(o);
    int rc = al_jwk_from_json(o, k, err);
    json_decref(o);
    return rc;
}

/* Loads a JWK that must succeed and returns its key (caller frees). */
static EVP_PKEY *jwk_key(const char *json, unsigned want_fits)
{
    al_jwk_t k;
    const char *err = NULL;
    assert_int_equal(jwk_parse(json, &k, &err), AL_OK);
    assert_int_equal(k.fits, want_fits);
    EVP_PKEY *pk = k.pkey;
    k.pkey = NULL;
    al_jwk_clear(&k);
    return pk;
}

static uint8_t *unhex(const char *hex, size_t *out_len)
{
    size_t n = strlen(hex) / 2;
    uint8_t *p = malloc(n ? n : 1);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        p[i] = (uint8_t)v;
    }
    *out_len = n;
    return p;
}

/* Parses a full token and verifies it with key. */
static al_tok_status_t verify_token(const char *t, EVP_PKEY *key)
{
    al_jws_t j;
    al_tok_status_t st = al_jws_parse(t, strlen(t), AL_JWS_DEFAULT_MAX_LEN, &j, NULL);
    if (st == AL_TOK_OK)
        st = al_jws_verify_sig(j.alg, key, (const uint8_t *)j.signing_input, j.signing_input_len,
                               j.sig, j.sig_len);
    al_jws_free(&j);
    return st;
}

/* ---- RFC vectors ------------------------------------------------------------------ */

/* RFC 7515 Appendix A.1-A.3 payload: {"iss":"joe",\r\n "exp":1300819380,\r\n ...} */
#define RFC7515_PAYLOAD                                                                    \
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290" \
    "Ijp0cnVlfQ"

/* RFC 7515 Appendix A.2: RS256. */
static const char a2_token[] =
    "eyJhbGciOiJSUzI1NiJ9." RFC7515_PAYLOAD "."
    "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7"
    "AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4"
    "BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K"
    "0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqv"
    "hJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrB"
    "p0igcN_IoypGlUPQGe77Rw";
#define A2_N                                                                                 \
    "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1" \
    "Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSH" \
    "SXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_" \
    "I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"
static const char a2_jwk[] = "{\"kty\":\"RSA\",\"n\":\"" A2_N "\",\"e\":\"AQAB\"}";

/* RFC 7515 Appendix A.3: ES256. */
static const char a3_token[] =
    "eyJhbGciOiJFUzI1NiJ9." RFC7515_PAYLOAD "."
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
#define A3_X "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"
#define A3_Y "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
static const char a3_jwk[] =
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" A3_X "\",\"y\":\"" A3_Y "\"}";

/* RFC 7515 Appendix A.4: ES512 over the payload "Payload" (not JSON). */
static const char a4_input[] = "eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZA";
static const char a4_sig[] =
    "AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKPWROc-mZZqwqT2SI-KGDKB34XO0aw_7Xdt"
    "AG8GaSwFKdCAPZgoXD2YBJZCPEX3xKpRwcdOO8KpEHwJjyqOgzDO7iKvU8vcnwNrmxYbSW9ERBXukOXolLzeO_Jn";
#define A4_X \
    "AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk"
#define A4_Y \
    "ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2"
static const char a4_jwk[] =
    "{\"kty\":\"EC\",\"crv\":\"P-521\",\"x\":\"" A4_X "\",\"y\":\"" A4_Y "\"}";

/* RFC 8037 Appendix A.1 (key), A.4 (signature of "Example of Ed25519
 * signing"; payload not JSON). */
#define ED_X "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
static const char ed_jwk[] = "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" ED_X "\"}";
static const char ed_input[] = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
static const char ed_sig[] =
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

/* RFC 7638 §3.1 example key and its thumbprint. */
static const char rfc7638_jwk[] =
    "{\"kty\":\"RSA\",\"e\":\"AQAB\",\"alg\":\"RS256\",\"kid\":\"2011-04-29\",\"n\":\""
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
    "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_F"
    "DW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4"
    "vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw\"}";

#define RSA_FITS 0x3fu

/* Verifies a detached signing input + base64url signature. */
static al_tok_status_t verify_detached(al_alg_t alg, EVP_PKEY *k, const char *input,
                                       const char *sig_b64, size_t want_sig_len)
{
    uint8_t sig[512];
    ssize_t n = al_b64url_decode(sig_b64, strlen(sig_b64), sig, sizeof sig);
    assert_int_equal(n, (ssize_t)want_sig_len);
    return al_jws_verify_sig(alg, k, (const uint8_t *)input, strlen(input), sig, (size_t)n);
}

static void test_rfc7515_a2_rs256(void **state)
{
    (void)state;
    EVP_PKEY *k = jwk_key(a2_jwk, RSA_FITS);
    al_jws_t j;
    assert_int_equal(al_jws_parse(a2_token, strlen(a2_token), AL_JWS_DEFAULT_MAX_LEN, &j, NULL),
                     AL_TOK_OK);
    assert_int_equal(j.alg, AL_ALG_RS256);
    assert_null(j.kid);
    assert_null(j.typ);
    assert_int_equal(j.sig_len, 256);
    assert_ptr_equal(j.signing_input, a2_token);
    assert_int_equal(j.signing_input_len, strlen("eyJhbGciOiJSUzI1NiJ9." RFC7515_PAYLOAD));
    assert_string_equal(json_string_value(json_object_get(j.payload, "iss")), "joe");
    assert_int_equal(json_integer_value(json_object_get(j.payload, "exp")), 1300819380);
    assert_true(json_is_true(json_object_get(j.payload, "http://example.com/is_root")));
    assert_int_equal(al_jws_verify_sig(j.alg, k, (const uint8_t *)j.signing_input,
                                       j.signing_input_len, j.sig, j.sig_len),
                     AL_TOK_OK);
    /* The same signature under any other RSA alg fails. */
    for (size_t i = 1; i < 6; i++)
        assert_int_equal(al_jws_verify_sig(all_algs[i], k, (const uint8_t *)j.signing_input,
                                           j.signing_input_len, j.sig, j.sig_len),
                         AL_TOK_BAD_SIGNATURE);
    /* Every bit of the first, a middle and the last byte matters. */
    size_t pos[] = {0, 128, 255};
    for (size_t p = 0; p < AL_ARRAY_LEN(pos); p++)
        for (int bit = 0; bit < 8; bit++) {
            j.sig[pos[p]] ^= (uint8_t)(1u << bit);
            assert_int_equal(al_jws_verify_sig(j.alg, k, (const uint8_t *)j.signing_input,
                                               j.signing_input_len, j.sig, j.sig_len),
                             AL_TOK_BAD_SIGNATURE);
            j.sig[pos[p]] ^= (uint8_t)(1u << bit);
        }
    al_jws_free(&j);
    EVP_PKEY_free(k);
}

static void test_rfc7515_a3_es256(void **state)
{
    (void)state;
    EVP_PKEY *k = jwk_key(a3_jwk, AL_ALG_ES256);
    assert_int_equal(verify_token(a3_token, k), AL_TOK_OK);
    al_jws_t j;
    assert_int_equal(al_jws_parse(a3_token, strlen(a3_token), AL_JWS_DEFAULT_MAX_LEN, &j, NULL),
                     AL_TOK_OK);
    assert_int_equal(j.alg, AL_ALG_ES256);
    assert_int_equal(j.sig_len, 64);
    /* Flip one bit of r and of s, and of the signing input. */
    uint8_t *msg = malloc(j.signing_input_len);
    assert_non_null(msg);
    memcpy(msg, j.signing_input, j.signing_input_len);
    size_t bytes[] = {0, 31, 32, 63};
    for (size_t i = 0; i < AL_ARRAY_LEN(bytes); i++) {
        j.sig[bytes[i]] ^= 0x01;
        assert_int_equal(al_jws_verify_sig(AL_ALG_ES256, k, msg, j.signing_input_len, j.sig, 64),
                         AL_TOK_BAD_SIGNATURE);
        j.sig[bytes[i]] ^= 0x01;
    }
    msg[5] ^= 0x20;
    assert_int_equal(al_jws_verify_sig(AL_ALG_ES256, k, msg, j.signing_input_len, j.sig, 64),
                     AL_TOK_BAD_SIGNATURE);
    msg[5] ^= 0x20;
    assert_int_equal(al_jws_verify_sig(AL_ALG_ES256, k, msg, j.signing_input_len, j.sig, 64),
                     AL_TOK_OK);
    /* Not an ES384/ES512 signature, and not with this key's curve. */
    assert_int_equal(al_jws_verify_sig(AL_ALG_ES384, k, msg, j.signing_input_len, j.sig, 64),
                     AL_TOK_BAD_SIGNATURE);
    free(msg);
    al_jws_free(&j);
    EVP_PKEY_free(k);
}

static void test_rfc7515_a4_es512(void **state)
{
    (void)state;
    EVP_PKEY *k = jwk_key(a4_jwk, AL_ALG_ES512);
    assert_int_equal(verify_detached(AL_ALG_ES512, k, a4_input, a4_sig, 132), AL_TOK_OK);
    /* The A.4 payload is the text "Payload", not a claims object, so as a
     * token it is refused before any crypto. */
    char *t = NULL;
    size_t n = strlen(a4_input) + strlen(a4_sig) + 2;
    t = malloc(n);
    assert_non_null(t);
    snprintf(t, n, "%s.%s", a4_input, a4_sig);
    assert_int_equal(parse_str(t), AL_TOK_MALFORMED);
    free(t);
    /* Any other input fails. */
    assert_int_equal(verify_detached(AL_ALG_ES512, k, "eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZB", a4_sig,
                                     132),
                     AL_TOK_BAD_SIGNATURE);
    EVP_PKEY_free(k);
}

static void test_rfc8037_ed25519(void **state)
{
    (void)state;
    EVP_PKEY *k = jwk_key(ed_jwk, AL_ALG_EDDSA);
    assert_int_equal(verify_detached(AL_ALG_EDDSA, k, ed_input, ed_sig, 64), AL_TOK_OK);
    assert_int_equal(verify_detached(AL_ALG_EDDSA, k, "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmd",
                                     ed_sig, 64),
                     AL_TOK_BAD_SIGNATURE);
    /* RFC 8037 A.3: the key's thumbprint. */
    al_buf_t tp;
    al_buf_init(&tp);
    assert_int_equal(al_jwk_thumbprint(k, &tp), AL_OK);
    assert_string_equal(tp.p, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    al_buf_free(&tp);
    EVP_PKEY_free(k);
}

static void test_rfc7638_thumbprint(void **state)
{
    (void)state;
    al_jwk_t k;
    const char *err = NULL;
    assert_int_equal(jwk_parse(rfc7638_jwk, &k, &err), AL_OK);
    assert_string_equal(k.kid, "2011-04-29");
    assert_int_equal(k.alg, AL_ALG_RS256);
    assert_int_equal(k.fits, AL_ALG_RS256);
    al_buf_t tp;
    al_buf_init(&tp);
    al_buf_puts(&tp, "prefix:");
    assert_int_equal(al_jwk_thumbprint(k.pkey, &tp), AL_OK);
    assert_string_equal(tp.p, "prefix:NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    al_buf_free(&tp);
    al_jwk_clear(&k);
    /* EC: SHA-256 of {"crv":"P-256","kty":"EC","x":..,"y":..} computed
     * independently (Python hashlib) for the RFC 7515 A.3 key. */
    EVP_PKEY *ec = jwk_key(a3_jwk, AL_ALG_ES256);
    al_buf_init(&tp);
    assert_int_equal(al_jwk_thumbprint(ec, &tp), AL_OK);
    assert_string_equal(tp.p, "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U");
    al_buf_free(&tp);
    EVP_PKEY_free(ec);
    assert_int_equal(al_jwk_thumbprint(NULL, &tp), AL_ERR);
}

/* al_jwk_public_json reproduces the published members exactly. */
static void test_public_json(void **state)
{
    (void)state;
    struct {
        const char *jwk;
        unsigned fits;
        al_alg_t alg;
        const char *kty, *crv, *m1, *v1, *m2, *v2;
    } cases[] = {
        {a2_jwk, RSA_FITS, AL_ALG_PS384, "RSA", NULL, "n", A2_N, "e", "AQAB"},
        {a3_jwk, AL_ALG_ES256, AL_ALG_ES256, "EC", "P-256", "x", A3_X, "y", A3_Y},
        {a4_jwk, AL_ALG_ES512, AL_ALG_ES512, "EC", "P-521", "x", A4_X, "y", A4_Y},
        {ed_jwk, AL_ALG_EDDSA, AL_ALG_EDDSA, "OKP", "Ed25519", "x", ED_X, NULL, NULL},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(cases); i++) {
        EVP_PKEY *k = jwk_key(cases[i].jwk, cases[i].fits);
        json_t *o = al_jwk_public_json(k, "kid-1", cases[i].alg);
        assert_non_null(o);
        assert_string_equal(json_string_value(json_object_get(o, "kty")), cases[i].kty);
        if (cases[i].crv)
            assert_string_equal(json_string_value(json_object_get(o, "crv")), cases[i].crv);
        else
            assert_null(json_object_get(o, "crv"));
        assert_string_equal(json_string_value(json_object_get(o, cases[i].m1)), cases[i].v1);
        if (cases[i].m2)
            assert_string_equal(json_string_value(json_object_get(o, cases[i].m2)), cases[i].v2);
        assert_string_equal(json_string_value(json_object_get(o, "kid")), "kid-1");
        assert_string_equal(json_string_value(json_object_get(o, "alg")), al_alg_name(cases[i].alg));
        assert_string_equal(json_string_value(json_object_get(o, "use")), "sig");
        assert_null(json_object_get(o, "d"));
        /* And it loads back, narrowed to its alg. */
        al_jwk_t back;
        const char *err = NULL;
        assert_int_equal(al_jwk_from_json(o, &back, &err), AL_OK);
        assert_int_equal(back.fits, cases[i].alg);
        assert_int_equal(EVP_PKEY_eq(back.pkey, k), 1);
        al_jwk_clear(&back);
        json_decref(o);
        /* No kid, no alg: both left out. */
        o = al_jwk_public_json(k, NULL, AL_ALG_NONE);
        assert_non_null(o);
        assert_null(json_object_get(o, "kid"));
        assert_null(json_object_get(o, "alg"));
        json_decref(o);
        EVP_PKEY_free(k);
    }
    assert_null(al_jwk_public_json(NULL, "x", AL_ALG_RS256));
}

/* ---- Wycheproof ------------------------------------------------------------------- */

typedef struct wp_file {
    const char *name;
    al_alg_t alg;
    size_t hash_len; /* PSS: the salt and MGF1 hash must match (RFC 7518 §3.5) */
    const char *sha; /* expected "sha" of every group */
    int valid, invalid, acceptable; /* expected totals, so a truncated file fails */
} wp_file_t;

static const wp_file_t wp_files[] = {
    {"rsa_signature_2048_sha256_test.json", AL_ALG_RS256, 0, "SHA-256", 9, 249, 1},
    {"rsa_signature_2048_sha384_test.json", AL_ALG_RS384, 0, "SHA-384", 7, 250, 1},
    {"rsa_signature_2048_sha512_test.json", AL_ALG_RS512, 0, "SHA-512", 8, 250, 1},
    {"rsa_pss_2048_sha256_mgf1_32_test.json", AL_ALG_PS256, 32, "SHA-256", 63, 45, 0},
    {"rsa_pss_2048_sha384_mgf1_48_test.json", AL_ALG_PS384, 48, "SHA-384", 95, 46, 0},
    {"rsa_pss_4096_sha512_mgf1_64_test.json", AL_ALG_PS512, 64, "SHA-512", 132, 47, 0},
    {"ecdsa_secp256r1_sha256_p1363_test.json", AL_ALG_ES256, 0, "SHA-256", 169, 83, 0},
    {"ecdsa_secp384r1_sha384_p1363_test.json", AL_ALG_ES384, 0, "SHA-384", 189, 81, 0},
    {"ecdsa_secp521r1_sha512_p1363_test.json", AL_ALG_ES512, 0, "SHA-512", 227, 81, 0},
    {"ed25519_test.json", AL_ALG_EDDSA, 0, NULL, 88, 62, 0},
};

/* Whether a PSS group uses the JWS parameters; other groups are skipped. */
static bool wp_group_is_jws(const wp_file_t *f, const json_t *g)
{
    if (f->sha && strcmp(json_string_value(json_object_get(g, "sha")), f->sha) != 0)
        return false;
    if (!f->hash_len)
        return true;
    const char *mgf = json_string_value(json_object_get(g, "mgf"));
    const char *mgf_sha = json_string_value(json_object_get(g, "mgfSha"));
    return mgf && strcmp(mgf, "MGF1") == 0 && mgf_sha && strcmp(mgf_sha, f->sha) == 0 &&
           json_integer_value(json_object_get(g, "sLen")) == (json_int_t)f->hash_len;
}

static void run_wycheproof_file(const wp_file_t *f)
{
    char path[256];
    snprintf(path, sizeof path, "tests/data/wycheproof/%s", f->name);
    json_error_t jerr;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc)
        fail_msg("%s: %s (line %d)", path, jerr.text, jerr.line);
    int valid = 0, invalid = 0, acceptable = 0, acc_accepted = 0, skipped_groups = 0, bad = 0;
    size_t gi;
    json_t *g;
    json_array_foreach(json_object_get(doc, "testGroups"), gi, g) {
        if (!wp_group_is_jws(f, g)) {
            skipped_groups++;
            continue;
        }
        const json_t *jwk = json_object_get(g, "publicKeyJwk");
        if (!jwk)
            jwk = json_object_get(g, "keyJwk");
        al_jwk_t k;
        const char *err = NULL;
        if (al_jwk_from_json(jwk, &k, &err) != AL_OK)
            fail_msg("%s group %zu: key refused: %s", f->name, gi, err);
        assert_true(k.fits & f->alg);
        size_t ti;
        json_t *t;
        json_array_foreach(json_object_get(g, "tests"), ti, t) {
            size_t ml, sl;
            uint8_t *msg = unhex(json_string_value(json_object_get(t, "msg")), &ml);
            uint8_t *sig = unhex(json_string_value(json_object_get(t, "sig")), &sl);
            const char *result = json_string_value(json_object_get(t, "result"));
            al_tok_status_t st = al_jws_verify_sig(f->alg, k.pkey, msg, ml, sig, sl);
            int tc = (int)json_integer_value(json_object_get(t, "tcId"));
            if (strcmp(result, "valid") == 0) {
                valid++;
                if (st != AL_TOK_OK) {
                    print_error("%s tc %d (valid) refused: %s\n", f->name, tc,
                                json_string_value(json_object_get(t, "comment")));
                    bad++;
                }
            } else if (strcmp(result, "invalid") == 0) {
                invalid++;
                if (st != AL_TOK_BAD_SIGNATURE) {
                    print_error("%s tc %d (invalid) accepted: %s\n", f->name, tc,
                                json_string_value(json_object_get(t, "comment")));
                    bad++;
                }
            } else {
                /* "acceptable": legal to accept or refuse. We assert
                 * refusal: the stricter answer, and what OpenSSL gives. */
                acceptable++;
                if (st == AL_TOK_OK) {
                    acc_accepted++;
                    print_error("%s tc %d (acceptable) accepted: %s\n", f->name, tc,
                                json_string_value(json_object_get(t, "comment")));
                }
            }
            free(msg);
            free(sig);
        }
        al_jwk_clear(&k);
    }
    json_decref(doc);
    print_message("wycheproof %-42s %-5s valid %3d ok, invalid %3d refused, acceptable %d "
                  "(%d accepted, %d refused), groups skipped %d\n",
                  f->name, al_alg_name(f->alg), valid, invalid, acceptable, acc_accepted,
                  acceptable - acc_accepted, skipped_groups);
    assert_int_equal(bad, 0);
    assert_int_equal(acc_accepted, 0);
    assert_int_equal(skipped_groups, 0);
    assert_int_equal(valid, f->valid);
    assert_int_equal(invalid, f->invalid);
    assert_int_equal(acceptable, f->acceptable);
}

static void test_wycheproof_rs(void **state)
{
    (void)state;
    for (size_t i = 0; i < 3; i++)
        run_wycheproof_file(&wp_files[i]);
}

static void test_wycheproof_ps(void **state)
{
    (void)state;
    for (size_t i = 3; i < 6; i++)
        run_wycheproof_file(&wp_files[i]);
}

static void test_wycheproof_es(void **state)
{
    (void)state;
    for (size_t i = 6; i < 9; i++)
        run_wycheproof_file(&wp_files[i]);
}

static void test_wycheproof_eddsa(void **state)
{
    (void)state;
    run_wycheproof_file(&wp_files[9]);
}

/* ---- round trips with fresh keys ---------------------------------------------------- */

typedef struct keys {
    EVP_PKEY *rsa, *p256, *p384, *p521, *ed;
} keys_t;

static int keys_setup(void **state)
{
    keys_t *k = calloc(1, sizeof *k);
    if (!k)
        return -1;
    k->rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    k->p256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    k->p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    k->p521 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
    k->ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    *state = k;
    return k->rsa && k->p256 && k->p384 && k->p521 && k->ed ? 0 : -1;
}

static int keys_teardown(void **state)
{
    keys_t *k = *state;
    EVP_PKEY_free(k->rsa);
    EVP_PKEY_free(k->p256);
    EVP_PKEY_free(k->p384);
    EVP_PKEY_free(k->p521);
    EVP_PKEY_free(k->ed);
    free(k);
    return 0;
}

static EVP_PKEY *key_for(const keys_t *k, al_alg_t alg, size_t *sig_len)
{
    switch (alg) {
    case AL_ALG_ES256: *sig_len = 64; return k->p256;
    case AL_ALG_ES384: *sig_len = 96; return k->p384;
    case AL_ALG_ES512: *sig_len = 132; return k->p521;
    case AL_ALG_EDDSA: *sig_len = 64; return k->ed;
    default: *sig_len = 256; return k->rsa;
    }
}

static const char rt_payload[] = "{\"sub\":\"agent-7\",\"iat\":1700000000,\"n\":\"\\u00e9\"}";

static void roundtrip_one(const keys_t *keys, al_alg_t alg)
{
    size_t want_sig;
    EVP_PKEY *priv = key_for(keys, alg, &want_sig);
    char hdr[128];
    snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\",\"kid\":\"k1\",\"typ\":\"JWT\"}", al_alg_name(alg));
    al_buf_t tok;
    al_buf_init(&tok);
    assert_int_equal(al_jws_sign(alg, priv, hdr, rt_payload, &tok), AL_OK);

    al_jws_t j;
    assert_int_equal(al_jws_parse(tok.p, tok.len, AL_JWS_DEFAULT_MAX_LEN, &j, NULL), AL_TOK_OK);
    assert_int_equal(j.alg, alg);
    assert_string_equal(j.kid, "k1");
    assert_string_equal(j.typ, "JWT");
    assert_int_equal(j.sig_len, want_sig); /* ES*: raw r||s at field size */
    assert_string_equal(json_string_value(json_object_get(j.payload, "sub")), "agent-7");
    const uint8_t *msg = (const uint8_t *)j.signing_input;
    assert_int_equal(al_jws_verify_sig(alg, priv, msg, j.signing_input_len, j.sig, j.sig_len),
                     AL_TOK_OK);

    /* Through the published JWK, as a verifier would get it. */
    json_t *pub = al_jwk_public_json(priv, "k1", alg);
    al_jwk_t k;
    const char *err = NULL;
    assert_int_equal(al_jwk_from_json(pub, &k, &err), AL_OK);
    json_decref(pub);
    assert_int_equal(k.fits, alg);
    assert_int_equal(al_jws_verify_sig(alg, k.pkey, msg, j.signing_input_len, j.sig, j.sig_len),
                     AL_TOK_OK);

    /* A flipped bit anywhere in the signature. */
    size_t pos[] = {0, j.sig_len / 2, j.sig_len - 1};
    for (size_t p = 0; p < AL_ARRAY_LEN(pos); p++) {
        j.sig[pos[p]] ^= 0x10;
        assert_int_equal(
            al_jws_verify_sig(alg, k.pkey, msg, j.signing_input_len, j.sig, j.sig_len),
            AL_TOK_BAD_SIGNATURE);
        j.sig[pos[p]] ^= 0x10;
    }
    /* A flipped bit in the header part and in the payload part. */
    uint8_t *m = malloc(j.signing_input_len);
    assert_non_null(m);
    memcpy(m, msg, j.signing_input_len);
    size_t mpos[] = {1, j.signing_input_len - 2};
    for (size_t p = 0; p < AL_ARRAY_LEN(mpos); p++) {
        m[mpos[p]] ^= 0x01;
        assert_int_equal(al_jws_verify_sig(alg, k.pkey, m, j.signing_input_len, j.sig, j.sig_len),
                         AL_TOK_BAD_SIGNATURE);
        m[mpos[p]] ^= 0x01;
    }
    free(m);

    /* The signature spliced onto other claims or another header. */
    const char *sig_seg = strrchr(tok.p, '.') + 1;
    char *t2 = tok3(hdr, "{\"sub\":\"agent-8\",\"iat\":1700000000}", sig_seg);
    assert_int_equal(verify_token(t2, k.pkey), AL_TOK_BAD_SIGNATURE);
    free(t2);
    char hdr2[128];
    snprintf(hdr2, sizeof hdr2, "{\"alg\":\"%s\",\"kid\":\"k2\",\"typ\":\"JWT\"}",
             al_alg_name(alg));
    t2 = tok3(hdr2, rt_payload, sig_seg);
    assert_int_equal(verify_token(t2, k.pkey), AL_TOK_BAD_SIGNATURE);
    free(t2);

    /* Under any other algorithm the same bytes never verify. */
    for (size_t i = 0; i < AL_ARRAY_LEN(all_algs); i++)
        if (all_algs[i] != alg)
            assert_int_equal(al_jws_verify_sig(all_algs[i], priv, msg, j.signing_input_len,
                                               j.sig, j.sig_len),
                             AL_TOK_BAD_SIGNATURE);
    /* Nor with any other key. */
    EVP_PKEY *others[] = {keys->rsa, keys->p256, keys->p384, keys->p521, keys->ed};
    for (size_t i = 0; i < AL_ARRAY_LEN(others); i++)
        if (others[i] != priv)
            assert_int_equal(al_jws_verify_sig(alg, others[i], msg, j.signing_input_len, j.sig,
                                               j.sig_len),
                             AL_TOK_BAD_SIGNATURE);
    al_jwk_clear(&k);
    al_jws_free(&j);
    al_buf_free(&tok);
}

static void test_roundtrip_all_algs(void **state)
{
    const keys_t *keys = *state;
    for (size_t i = 0; i < AL_ARRAY_LEN(all_algs); i++)
        roundtrip_one(keys, all_algs[i]);
}

/* PSS is randomized, PKCS#1 v1.5 and Ed25519 are not (RFC 8017 §8.1,
 * RFC 8032 §5.1.6). */
static void test_sign_determinism(void **state)
{
    const keys_t *keys = *state;
    al_alg_t algs[] = {AL_ALG_RS256, AL_ALG_EDDSA, AL_ALG_PS256, AL_ALG_ES256};
    bool same[] = {true, true, false, false};
    for (size_t i = 0; i < AL_ARRAY_LEN(algs); i++) {
        size_t sl;
        EVP_PKEY *k = key_for(keys, algs[i], &sl);
        al_buf_t a, b;
        al_buf_init(&a);
        al_buf_init(&b);
        assert_int_equal(al_jws_sign(algs[i], k, "{\"alg\":\"x\"}", "{}", &a), AL_OK);
        assert_int_equal(al_jws_sign(algs[i], k, "{\"alg\":\"x\"}", "{}", &b), AL_OK);
        assert_int_equal(strcmp(a.p, b.p) == 0, same[i]);
        al_buf_free(&a);
        al_buf_free(&b);
    }
}

static void test_sign_refusals(void **state)
{
    const keys_t *keys = *state;
    al_buf_t out;
    al_buf_init(&out);
    al_buf_puts(&out, "keep");
    /* Key of the wrong type or curve for the alg. */
    assert_int_equal(al_jws_sign(AL_ALG_ES256, keys->rsa, "{}", "{}", &out), AL_ERR);
    assert_int_equal(al_jws_sign(AL_ALG_ES256, keys->p384, "{}", "{}", &out), AL_ERR);
    assert_int_equal(al_jws_sign(AL_ALG_RS256, keys->p256, "{}", "{}", &out), AL_ERR);
    assert_int_equal(al_jws_sign(AL_ALG_EDDSA, keys->p256, "{}", "{}", &out), AL_ERR);
    assert_int_equal(al_jws_sign(AL_ALG_NONE, keys->rsa, "{}", "{}", &out), AL_ERR);
    assert_int_equal(al_jws_sign(AL_ALG_RS256 | AL_ALG_RS384, keys->rsa, "{}", "{}", &out),
                     AL_ERR);
    assert_int_equal(al_jws_sign(AL_ALG_RS256, NULL, "{}", "{}", &out), AL_ERR);
    /* A public-only key cannot sign. */
    EVP_PKEY *pub = jwk_key(a3_jwk, AL_ALG_ES256);
    assert_int_equal(al_jws_sign(AL_ALG_ES256, pub, "{}", "{}", &out), AL_ERR);
    EVP_PKEY_free(pub);
    /* out is left as it was. */
    assert_int_equal(out.len, 4);
    assert_string_equal(out.p, "keep");
    /* And success appends. */
    assert_int_equal(al_jws_sign(AL_ALG_ES256, keys->p256, "{\"alg\":\"ES256\"}", "{}", &out),
                     AL_OK);
    assert_memory_equal(out.p, "keep", 4);
    assert_int_equal(verify_token(out.p + 4, keys->p256), AL_TOK_OK);
    al_buf_free(&out);
    assert_int_equal(ERR_peek_error(), 0); /* no OpenSSL errors left behind */
}

/* RFC 7518 §3.4: exactly 64 bytes for ES256; r, s in [1, n-1]. */
static void test_es256_signature_shape(void **state)
{
    const keys_t *keys = *state;
    static const uint8_t p256_n[32] = {
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17,
        0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};
    const uint8_t msg[] = "eyJhbGciOiJFUzI1NiJ9.e30";
    size_t ml = sizeof msg - 1;
    al_buf_t tok;
    al_buf_init(&tok);
    assert_int_equal(al_jws_sign(AL_ALG_ES256, keys->p256, "{\"alg\":\"ES256\"}", "{}", &tok),
                     AL_OK);
    assert_memory_equal(tok.p, msg, ml);
    uint8_t sig[80] = {0};
    ssize_t sl = al_b64url_decode(tok.p + ml + 1, tok.len - ml - 1, sig, sizeof sig);
    assert_int_equal(sl, 64);
    assert_int_equal(al_jws_verify_sig(AL_ALG_ES256, keys->p256, msg, ml, sig, 64), AL_TOK_OK);
    /* Wrong lengths: short, long, empty, zero-prefixed. */
    assert_int_equal(al_jws_verify_sig(AL_ALG_ES256, keys->p256, msg, ml, sig, 63),
                     AL_TOK_BAD_SIGNATURE);
    assert_int_equal(al_jws_verify_sig(AL_ALG_ES256, keys->p256, msg, ml, sig, 65),
                     AL_TOK_BAD_SIGNATURE);
    assert_int_equal(al_jws_verify_sig(AL_ALG_ES256, keys->p256, msg, ml, sig, 0),
                     AL_TOK_BAD_SIGNATURE);
    uint8_t longer[66] = {0};
    memcpy(longer + 1, sig, 32);
    memcpy(longer + 34, sig + 32, 32);
    assert_int_equal(al_jws_verify_sig(AL_ALG_ES256, keys->p256, msg, ml, longer, 66),
                     AL_TOK_BAD_SIGNATURE);
    /* The same signature DER-encoded, as OpenSSL would emit it. */
    ECDSA_SIG *es = ECDSA_SIG_new();
    assert_non_null(es);
    assert_int_equal(ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL)),
                     1);
    unsigned char *der = NULL;
    int dl = i2d_ECDSA_SIG(es, &der);
    assert_true(dl > 0);
    assert_int_equal(al_jws_verify_sig(AL_ALG_ES256, keys->p256, msg, ml, der, (size_t)dl),
                     AL_TOK_BAD_SIGNATURE);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    /* r or s zero, or equal to the order n, or all-ones. */
    uint8_t bad[64];
    for (int which = 0; which < 2; which++) {
        memcpy(bad, sig, 64);
        memset(bad + 32 * which, 0, 32);
        assert_int_equal(al_jws_verify_sig(AL_ALG_ES256, keys->p256, msg, ml, bad, 64),
                         AL_TOK_BAD_SIGNATURE);
        memcpy(bad + 32 * which, p256_n, 32);
        assert_int_equal(al_jws_verify_sig(AL_ALG_ES256, keys->p256, msg, ml, bad, 64),
                         AL_TOK_BAD_SIGNATURE);
        memset(bad + 32 * which, 0xff, 32);
        assert_int_equal(al_jws_verify_sig(AL_ALG_ES256, keys->p256, msg, ml, bad, 64),
                         AL_TOK_BAD_SIGNATURE);
    }
    /* r and s swapped. */
    memcpy(bad, sig + 32, 32);
    memcpy(bad + 32, sig, 32);
    assert_int_equal(al_jws_verify_sig(AL_ALG_ES256, keys->p256, msg, ml, bad, 64),
                     AL_TOK_BAD_SIGNATURE);
    /* ES384 / ES512 lengths are 96 / 132. */
    assert_int_equal(al_jws_verify_sig(AL_ALG_ES384, keys->p384, msg, ml, sig, 64),
                     AL_TOK_BAD_SIGNATURE);
    al_buf_free(&tok);
}

/* A 256-bit curve that is not P-256 (brainpoolP256r1) yields a 64-byte
 * r||s that is cryptographically valid over SHA-256; ES256 must still
 * refuse the key (RFC 7518 §3.4 names P-256 only). */
static void test_es256_other_curve(void **state)
{
    (void)state;
    EVP_PKEY *bp = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "brainpoolP256r1");
    assert_non_null(bp);
    const uint8_t msg[] = "eyJhbGciOiJFUzI1NiJ9.e30";
    size_t ml = sizeof msg - 1;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_non_null(ctx);
    uint8_t der[80];
    size_t dl = sizeof der;
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, bp), 1);
    assert_int_equal(EVP_DigestSign(ctx, der, &dl, msg, ml), 1);
    EVP_MD_CTX_free(ctx);
    const unsigned char *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)dl);
    assert_non_null(es);
    uint8_t raw[64];
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32), 32);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32), 32);
    ECDSA_SIG_free(es);
    assert_int_equal(al_jws_verify_sig(AL_ALG_ES256, bp, msg, ml, raw, 64), AL_TOK_BAD_SIGNATURE);
    al_buf_t out;
    al_buf_init(&out);
    assert_int_equal(al_jws_sign(AL_ALG_ES256, bp, "{\"alg\":\"ES256\"}", "{}", &out), AL_ERR);
    /* Nor can it be exported as a JWK we would load. */
    assert_null(al_jwk_public_json(bp, "bp", AL_ALG_ES256));
    assert_int_equal(al_jwk_thumbprint(bp, &out), AL_ERR);
    assert_int_equal(out.len, 0);
    al_buf_free(&out);
    EVP_PKEY_free(bp);
}

static void test_rsa_signature_shape(void **state)
{
    const keys_t *keys = *state;
    al_buf_t tok;
    al_buf_init(&tok);
    assert_int_equal(al_jws_sign(AL_ALG_RS256, keys->rsa, "{\"alg\":\"RS256\"}", "{}", &tok),
                     AL_OK);
    al_jws_t j;
    assert_int_equal(al_jws_parse(tok.p, tok.len, 4096, &j, NULL), AL_TOK_OK);
    uint8_t sig[258] = {0};
    memcpy(sig + 1, j.sig, 256);
    const uint8_t *m = (const uint8_t *)j.signing_input;
    assert_int_equal(al_jws_verify_sig(AL_ALG_RS256, keys->rsa, m, j.signing_input_len, sig + 1, 256),
                     AL_TOK_OK);
    /* k+1 bytes with a leading zero, k-1 bytes, empty: RFC 8017 §8.2.2. */
    assert_int_equal(al_jws_verify_sig(AL_ALG_RS256, keys->rsa, m, j.signing_input_len, sig, 257),
                     AL_TOK_BAD_SIGNATURE);
    assert_int_equal(al_jws_verify_sig(AL_ALG_RS256, keys->rsa, m, j.signing_input_len, sig + 1, 255),
                     AL_TOK_BAD_SIGNATURE);
    assert_int_equal(al_jws_verify_sig(AL_ALG_RS256, keys->rsa, m, j.signing_input_len, sig, 0),
                     AL_TOK_BAD_SIGNATURE);
    al_jws_free(&j);
    al_buf_free(&tok);

    /* A 1024-bit RSA key is refused everywhere: sign, verify, JWK. */
    EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    assert_non_null(small);
    al_buf_init(&tok);
    assert_int_equal(al_jws_sign(AL_ALG_RS256, small, "{\"alg\":\"RS256\"}", "{}", &tok), AL_ERR);
    assert_int_equal(tok.len, 0);
    uint8_t sig128[128] = {1};
    assert_int_equal(al_jws_verify_sig(AL_ALG_RS256, small, (const uint8_t *)"a.b", 3, sig128, 128),
                     AL_TOK_BAD_SIGNATURE);
    json_t *pub = al_jwk_public_json(small, "small", AL_ALG_RS256);
    assert_non_null(pub);
    al_jwk_t k;
    const char *err = NULL;
    assert_int_equal(al_jwk_from_json(pub, &k, &err), AL_ERR);
    assert_string_equal(err, "RSA modulus is under 2048 bits");
    assert_null(k.pkey);
    json_decref(pub);
    EVP_PKEY_free(small);
    assert_int_equal(al_jws_verify_sig(AL_ALG_RS256, NULL, (const uint8_t *)"a.b", 3, sig128, 128),
                     AL_TOK_BAD_SIGNATURE);
}

/* ---- parsing: structure and hostile input --------------------------------------------- */

#define HDR_RS256 "eyJhbGciOiJSUzI1NiJ9" /* {"alg":"RS256"} */
#define PAY_EMPTY "e30"                  /* {} */

static void test_parse_segments(void **state)
{
    (void)state;
    assert_int_equal(parse_str(HDR_RS256 "." PAY_EMPTY ".AAAA"), AL_TOK_OK);
    const char *bad[] = {
        "",
        ".",
        "..",
        "...",
        HDR_RS256,
        HDR_RS256 "." PAY_EMPTY,
        HDR_RS256 "." PAY_EMPTY ".",          /* empty signature */
        HDR_RS256 ".." "AAAA",                /* empty payload */
        "." PAY_EMPTY ".AAAA",                /* empty header */
        HDR_RS256 "." PAY_EMPTY ".AAAA.",     /* four segments */
        HDR_RS256 "." PAY_EMPTY ".AAAA.AAAA", /* four segments */
        /* RFC 7516 JWE compact: five segments */
        "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.AAAA.AAAA.AAAA.AAAA",
        HDR_RS256 "." PAY_EMPTY ".AAAA.AAAA.AAAA",
        "." HDR_RS256 "." PAY_EMPTY ".AAAA",
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
        if (parse_str(bad[i]) != AL_TOK_MALFORMED)
            fail_msg("accepted: \"%s\"", bad[i]);
    }
}

static void test_parse_base64_strict(void **state)
{
    (void)state;
    const char *bad[] = {
        HDR_RS256 "=." PAY_EMPTY ".AAAA",       /* '=' padding */
        HDR_RS256 "." PAY_EMPTY "=.AAAA",
        HDR_RS256 "." PAY_EMPTY ".AAA=",
        HDR_RS256 "." PAY_EMPTY ".AA==",
        HDR_RS256 " ." PAY_EMPTY ".AAAA",       /* whitespace */
        HDR_RS256 "." PAY_EMPTY ".AA AA",
        HDR_RS256 "." PAY_EMPTY ".AAAA\n",
        "\t" HDR_RS256 "." PAY_EMPTY ".AAAA",
        HDR_RS256 "." PAY_EMPTY ".AA+A",        /* standard alphabet */
        HDR_RS256 "." PAY_EMPTY ".AA/A",
        HDR_RS256 "." PAY_EMPTY ".AAAAA",       /* length 1 mod 4 */
        HDR_RS256 "." PAY_EMPTY ".AB",          /* non-canonical last char */
        HDR_RS256 "." PAY_EMPTY ".AAB",
        HDR_RS256 "." "e31" ".AAAA",            /* "{}" with stray low bits */
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++)
        if (parse_str(bad[i]) != AL_TOK_MALFORMED)
            fail_msg("accepted: \"%s\"", bad[i]);
    /* An embedded NUL is not a base64url character. */
    const char nul[] = HDR_RS256 "." PAY_EMPTY ".AA\0A";
    al_jws_t j;
    assert_int_equal(al_jws_parse(nul, sizeof nul - 1, 1024, &j, NULL), AL_TOK_MALFORMED);
}

static void test_parse_json(void **state)
{
    (void)state;
    struct {
        const char *hdr, *payload;
        al_tok_status_t want;
    } cases[] = {
        {"{\"alg\":\"RS256\"}", "{}", AL_TOK_OK},
        /* Duplicate member names, header and payload (RFC 7515 §5.2). */
        {"{\"alg\":\"RS256\",\"alg\":\"none\"}", "{}", AL_TOK_MALFORMED},
        {"{\"alg\":\"none\",\"alg\":\"RS256\"}", "{}", AL_TOK_MALFORMED},
        {"{\"alg\":\"RS256\",\"kid\":\"a\",\"kid\":\"b\"}", "{}", AL_TOK_MALFORMED},
        {"{\"alg\":\"RS256\"}", "{\"sub\":\"a\",\"sub\":\"b\"}", AL_TOK_MALFORMED},
        {"{\"alg\":\"RS256\"}", "{\"x\":{\"y\":1,\"y\":2}}", AL_TOK_MALFORMED},
        /* Not objects. */
        {"[\"alg\",\"RS256\"]", "{}", AL_TOK_MALFORMED},
        {"\"RS256\"", "{}", AL_TOK_MALFORMED},
        {"null", "{}", AL_TOK_MALFORMED},
        {"{\"alg\":\"RS256\"}", "[]", AL_TOK_MALFORMED},
        {"{\"alg\":\"RS256\"}", "\"claims\"", AL_TOK_MALFORMED},
        {"{\"alg\":\"RS256\"}", "42", AL_TOK_MALFORMED},
        {"{\"alg\":\"RS256\"}", "Payload", AL_TOK_MALFORMED},
        /* Broken JSON, trailing data, bad UTF-8, NUL escapes. */
        {"{\"alg\":\"RS256\"", "{}", AL_TOK_MALFORMED},
        {"{\"alg\":\"RS256\"}x", "{}", AL_TOK_MALFORMED},
        {"{\"alg\":\"RS256\"}{}", "{}", AL_TOK_MALFORMED},
        {"{\"alg\":\"RS256\",\"x\":\"\xff\"}", "{}", AL_TOK_MALFORMED},
        {"{\"alg\":\"RS256\"}", "{\"sub\":\"\xc3\x28\"}", AL_TOK_MALFORMED},
        {"{\"alg\":\"RS256\"}", "{\"sub\":\"\xed\xa0\x80\"}", AL_TOK_MALFORMED},
        {"{\"alg\":\"RS256\",\"kid\":\"a\\u0000b\"}", "{}", AL_TOK_MALFORMED},
        {"{\"alg\":\"RS256\"}", "{\"sub\":\"\\ud800\"}", AL_TOK_MALFORMED},
        /* alg missing or not a string. */
        {"{}", "{}", AL_TOK_MALFORMED},
        {"{\"typ\":\"JWT\"}", "{}", AL_TOK_MALFORMED},
        {"{\"alg\":256}", "{}", AL_TOK_MALFORMED},
        {"{\"alg\":null}", "{}", AL_TOK_MALFORMED},
        {"{\"alg\":[\"RS256\"]}", "{}", AL_TOK_MALFORMED},
        /* alg not one of ours (RFC 7518 §3.1 names are case-sensitive). */
        {"{\"alg\":\"none\"}", "{}", AL_TOK_ALG_NOT_ALLOWED},
        {"{\"alg\":\"None\"}", "{}", AL_TOK_ALG_NOT_ALLOWED},
        {"{\"alg\":\"NONE\"}", "{}", AL_TOK_ALG_NOT_ALLOWED},
        {"{\"alg\":\"HS256\"}", "{}", AL_TOK_ALG_NOT_ALLOWED},
        {"{\"alg\":\"HS512\"}", "{}", AL_TOK_ALG_NOT_ALLOWED},
        {"{\"alg\":\"hs256\"}", "{}", AL_TOK_ALG_NOT_ALLOWED},
        {"{\"alg\":\"rs256\"}", "{}", AL_TOK_ALG_NOT_ALLOWED},
        {"{\"alg\":\"RS256 \"}", "{}", AL_TOK_ALG_NOT_ALLOWED},
        {"{\"alg\":\" RS256\"}", "{}", AL_TOK_ALG_NOT_ALLOWED},
        {"{\"alg\":\"RS2560\"}", "{}", AL_TOK_ALG_NOT_ALLOWED},
        {"{\"alg\":\"RS25\"}", "{}", AL_TOK_ALG_NOT_ALLOWED},
        {"{\"alg\":\"\"}", "{}", AL_TOK_ALG_NOT_ALLOWED},
        {"{\"alg\":\"ES256K\"}", "{}", AL_TOK_ALG_NOT_ALLOWED},
        {"{\"alg\":\"Ed25519\"}", "{}", AL_TOK_ALG_NOT_ALLOWED},
        {"{\"alg\":\"eddsa\"}", "{}", AL_TOK_ALG_NOT_ALLOWED},
        {"{\"alg\":\"RSA-OAEP\",\"enc\":\"A256GCM\"}", "{}", AL_TOK_ALG_NOT_ALLOWED},
        /* crit (RFC 7515 §4.1.11). */
        {"{\"alg\":\"RS256\",\"crit\":[\"exp\"],\"exp\":1}", "{}", AL_TOK_CRIT_UNSUPPORTED},
        {"{\"alg\":\"ES256\",\"crit\":[\"b64\"],\"b64\":false}", "{}", AL_TOK_CRIT_UNSUPPORTED},
        {"{\"alg\":\"RS256\",\"crit\":[]}", "{}", AL_TOK_MALFORMED},
        {"{\"alg\":\"RS256\",\"crit\":\"exp\"}", "{}", AL_TOK_MALFORMED},
        {"{\"alg\":\"RS256\",\"crit\":[1]}", "{}", AL_TOK_MALFORMED},
        {"{\"alg\":\"RS256\",\"crit\":[\"\"]}", "{}", AL_TOK_MALFORMED},
        {"{\"alg\":\"RS256\",\"crit\":null}", "{}", AL_TOK_MALFORMED},
        /* kid / typ types. */
        {"{\"alg\":\"RS256\",\"kid\":7}", "{}", AL_TOK_MALFORMED},
        {"{\"alg\":\"RS256\",\"kid\":null}", "{}", AL_TOK_MALFORMED},
        {"{\"alg\":\"RS256\",\"typ\":{}}", "{}", AL_TOK_MALFORMED},
        {"{\"alg\":\"RS256\",\"typ\":true}", "{}", AL_TOK_MALFORMED},
        /* Key-bearing header parameters are ignored (RFC 7515 §10.7). */
        {"{\"alg\":\"RS256\",\"jku\":\"https://evil.example/jwks\",\"x5u\":\"https://evil."
         "example/c\",\"jwk\":{\"kty\":\"oct\",\"k\":\"AAAA\"},\"x5c\":[\"MIIB\"]}",
         "{}", AL_TOK_OK},
        {"{\"alg\":\"RS256\",\"jwk\":\"not even an object\",\"x5c\":7}", "{}", AL_TOK_OK},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(cases); i++) {
        char *t = tok3(cases[i].hdr, cases[i].payload, "AAAA");
        al_tok_status_t st = parse_str(t);
        if (st != cases[i].want)
            fail_msg("case %zu (%s . %s): got %s, want %s", i, cases[i].hdr, cases[i].payload,
                     al_tok_reason(st), al_tok_reason(cases[i].want));
        free(t);
    }
}

static void test_parse_fields_and_detail(void **state)
{
    (void)state;
    char *t = tok3("{\"typ\":\"at+jwt\",\"kid\":\"key-\\u00e9\",\"alg\":\"PS384\"}",
                   "{\"iss\":\"https://issuer.example\"}", "AQID");
    al_jws_t j;
    const char *detail = NULL;
    assert_int_equal(al_jws_parse(t, strlen(t), AL_JWS_DEFAULT_MAX_LEN, &j, &detail), AL_TOK_OK);
    assert_int_equal(j.alg, AL_ALG_PS384);
    assert_string_equal(j.kid, "key-\xc3\xa9");
    assert_string_equal(j.typ, "at+jwt");
    assert_int_equal(j.sig_len, 3);
    assert_memory_equal(j.sig, "\x01\x02\x03", 3);
    assert_int_equal(j.signing_input_len, (size_t)(strrchr(t, '.') - t));
    assert_string_equal(json_string_value(json_object_get(j.payload, "iss")),
                        "https://issuer.example");
    al_jws_free(&j);
    al_jws_free(&j); /* idempotent */
    free(t);

    t = tok3("{\"alg\":\"none\"}", "{}", "AAAA");
    assert_int_equal(al_jws_parse(t, strlen(t), AL_JWS_DEFAULT_MAX_LEN, &j, &detail),
                     AL_TOK_ALG_NOT_ALLOWED);
    assert_string_equal(detail, "alg is not an allowed asymmetric algorithm");
    free(t);
    assert_int_equal(al_jws_parse("a.b", 3, AL_JWS_DEFAULT_MAX_LEN, &j, &detail),
                     AL_TOK_MALFORMED);
    assert_string_equal(detail, "not three non-empty segments");
    /* detail may be NULL. */
    assert_int_equal(al_jws_parse("a.b", 3, AL_JWS_DEFAULT_MAX_LEN, &j, NULL), AL_TOK_MALFORMED);
}

static void test_parse_too_large(void **state)
{
    (void)state;
    size_t len = strlen(a3_token);
    al_jws_t j;
    const char *detail = NULL;
    assert_int_equal(al_jws_parse(a3_token, len, len, &j, &detail), AL_TOK_OK);
    al_jws_free(&j);
    assert_int_equal(al_jws_parse(a3_token, len, len - 1, &j, &detail), AL_TOK_TOO_LARGE);
    assert_string_equal(detail, "token exceeds the size cap");
    assert_null(j.header);
    /* Refused before looking at the bytes. */
    size_t big = AL_JWS_DEFAULT_MAX_LEN + 1;
    char *junk = malloc(big);
    assert_non_null(junk);
    memset(junk, '.', big);
    assert_int_equal(al_jws_parse(junk, big, AL_JWS_DEFAULT_MAX_LEN, &j, NULL), AL_TOK_TOO_LARGE);
    assert_int_equal(al_jws_parse(junk, big - 1, AL_JWS_DEFAULT_MAX_LEN, &j, NULL),
                     AL_TOK_MALFORMED);
    free(junk);
}

/* The parse + verify chain refuses alg confusion: an RS256 token whose
 * header is rewritten to another alg no longer verifies. */
static void test_alg_substitution(void **state)
{
    (void)state;
    EVP_PKEY *k = jwk_key(a2_jwk, RSA_FITS);
    const char *sig = strrchr(a2_token, '.') + 1;
    const char *hdrs[] = {"{\"alg\":\"PS256\"}", "{\"alg\":\"RS512\"}", "{\"alg\":\"ES256\"}",
                          "{\"alg\":\"EdDSA\"}"};
    for (size_t i = 0; i < AL_ARRAY_LEN(hdrs); i++) {
        char *t = tok3(hdrs[i], "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n "
                                "\"http://example.com/is_root\":true}",
                       sig);
        assert_int_equal(verify_token(t, k), AL_TOK_BAD_SIGNATURE);
        free(t);
    }
    EVP_PKEY_free(k);
}

/* ---- base64url ------------------------------------------------------------------------ */

static void test_b64url_vectors(void **state)
{
    (void)state;
    /* RFC 4648 §10, unpadded, plus the two url-safe characters. */
    struct {
        const char *raw, *enc;
        size_t n;
    } v[] = {
        {"", "", 0},          {"f", "Zg", 1},          {"fo", "Zm8", 2},
        {"foo", "Zm9v", 3},   {"foob", "Zm9vYg", 4},   {"fooba", "Zm9vYmE", 5},
        {"foobar", "Zm9vYmFy", 6}, {"\xfb\xff", "-_8", 2}, {"\xff\xff\xfe", "___-", 3},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(v); i++) {
        char *e = b64(v[i].raw, v[i].n);
        assert_string_equal(e, v[i].enc);
        free(e);
        uint8_t out[16];
        assert_int_equal(al_b64url_decode(v[i].enc, strlen(v[i].enc), out, sizeof out),
                         (ssize_t)v[i].n);
        assert_memory_equal(out, v[i].raw, v[i].n);
    }
    /* Every byte value at every length up to 300 round-trips. */
    uint8_t raw[300], back[300];
    for (size_t i = 0; i < sizeof raw; i++)
        raw[i] = (uint8_t)(i * 7 + 3);
    for (size_t n = 0; n <= sizeof raw; n++) {
        char *e = b64(raw, n);
        assert_int_equal(strlen(e), (n * 4 + 2) / 3);
        assert_true(al_b64url_decoded_max(strlen(e)) >= n);
        assert_int_equal(al_b64url_decode(e, strlen(e), back, sizeof back), (ssize_t)n);
        assert_memory_equal(back, raw, n);
        free(e);
    }
}

static void test_b64url_strict(void **state)
{
    (void)state;
    uint8_t out[16];
    const char *bad[] = {"Zg==", "Zg=", "Zm8=", "=", "Z", "Zm9vY", " Zg", "Zg ", "Z g", "Zg\n",
                         "Zg\r", "+/8", "-/8", "+_8", "Zh", "Zm9", "Zm9vYh", "Zm9vYmF", "Z\x80"};
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++)
        if (al_b64url_decode(bad[i], strlen(bad[i]), out, sizeof out) != -1)
            fail_msg("accepted \"%s\"", bad[i]);
    assert_int_equal(al_b64url_decode("A\0AA", 4, out, sizeof out), -1);
    /* Canonical trailing bits: of the 64 possible last characters after
     * "A", only those with the low 4 bits clear decode (RFC 4648 §3.5). */
    const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int ok2 = 0, ok3 = 0;
    for (int i = 0; i < 64; i++) {
        char two[2] = {'A', alpha[i]}, three[3] = {'A', 'A', alpha[i]};
        ssize_t r2 = al_b64url_decode(two, 2, out, sizeof out);
        ssize_t r3 = al_b64url_decode(three, 3, out, sizeof out);
        assert_int_equal(r2, (i & 15) == 0 ? 1 : -1);
        assert_int_equal(r3, (i & 3) == 0 ? 2 : -1);
        ok2 += r2 == 1;
        ok3 += r3 == 2;
    }
    assert_int_equal(ok2, 4);
    assert_int_equal(ok3, 16);
    /* Capacity: exact fits, one less does not. */
    assert_int_equal(al_b64url_decode("Zm9vYmFy", 8, out, 6), 6);
    assert_int_equal(al_b64url_decode("Zm9vYmFy", 8, out, 5), -1);
    assert_int_equal(al_b64url_decode("Zm9vYmE", 7, out, 5), 5);
    assert_int_equal(al_b64url_decode("Zm9vYmE", 7, out, 4), -1);
    assert_int_equal(al_b64url_decode("", 0, out, 0), 0);
}

/* ---- JWK ------------------------------------------------------------------------------- */

static void test_jwk_rules(void **state)
{
    (void)state;
    struct {
        const char *json;
        int rc;
        unsigned fits;
    } cases[] = {
        {a2_jwk, AL_OK, RSA_FITS},
        /* use (RFC 7517 §4.2) */
        {"{\"kty\":\"RSA\",\"use\":\"sig\",\"n\":\"" A2_N "\",\"e\":\"AQAB\"}", AL_OK, RSA_FITS},
        {"{\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"" A2_N "\",\"e\":\"AQAB\"}", AL_OK, 0},
        {"{\"kty\":\"RSA\",\"use\":\"Sig\",\"n\":\"" A2_N "\",\"e\":\"AQAB\"}", AL_OK, 0},
        {"{\"kty\":\"RSA\",\"use\":1,\"n\":\"" A2_N "\",\"e\":\"AQAB\"}", AL_ERR, 0},
        /* key_ops (RFC 7517 §4.3) */
        {"{\"kty\":\"RSA\",\"key_ops\":[\"verify\"],\"n\":\"" A2_N "\",\"e\":\"AQAB\"}", AL_OK,
         RSA_FITS},
        {"{\"kty\":\"RSA\",\"key_ops\":[\"sign\",\"verify\"],\"n\":\"" A2_N "\",\"e\":\"AQAB\"}",
         AL_OK, RSA_FITS},
        {"{\"kty\":\"RSA\",\"key_ops\":[\"sign\"],\"n\":\"" A2_N "\",\"e\":\"AQAB\"}", AL_OK, 0},
        {"{\"kty\":\"RSA\",\"key_ops\":[],\"n\":\"" A2_N "\",\"e\":\"AQAB\"}", AL_OK, 0},
        {"{\"kty\":\"RSA\",\"key_ops\":\"verify\",\"n\":\"" A2_N "\",\"e\":\"AQAB\"}", AL_ERR, 0},
        {"{\"kty\":\"RSA\",\"key_ops\":[\"verify\",3],\"n\":\"" A2_N "\",\"e\":\"AQAB\"}", AL_ERR,
         0},
        /* alg (RFC 7517 §4.4) */
        {"{\"kty\":\"RSA\",\"alg\":\"PS512\",\"n\":\"" A2_N "\",\"e\":\"AQAB\"}", AL_OK,
         AL_ALG_PS512},
        {"{\"kty\":\"RSA\",\"alg\":\"ES256\",\"n\":\"" A2_N "\",\"e\":\"AQAB\"}", AL_OK, 0},
        {"{\"kty\":\"RSA\",\"alg\":\"RSA-OAEP\",\"n\":\"" A2_N "\",\"e\":\"AQAB\"}", AL_OK, 0},
        {"{\"kty\":\"RSA\",\"alg\":\"rs256\",\"n\":\"" A2_N "\",\"e\":\"AQAB\"}", AL_OK, 0},
        {"{\"kty\":\"RSA\",\"alg\":256,\"n\":\"" A2_N "\",\"e\":\"AQAB\"}", AL_ERR, 0},
        {"{\"kty\":\"EC\",\"crv\":\"P-256\",\"alg\":\"ES384\",\"x\":\"" A3_X "\",\"y\":\"" A3_Y
         "\"}",
         AL_OK, 0},
        {"{\"kty\":\"EC\",\"crv\":\"P-256\",\"alg\":\"ES256\",\"use\":\"sig\",\"x\":\"" A3_X
         "\",\"y\":\"" A3_Y "\"}",
         AL_OK, AL_ALG_ES256},
        {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"alg\":\"ES256\",\"x\":\"" ED_X "\"}", AL_OK, 0},
        {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"alg\":\"EdDSA\",\"x\":\"" ED_X "\"}", AL_OK,
         AL_ALG_EDDSA},
        /* Private members are ignored. */
        {"{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" A3_X "\",\"y\":\"" A3_Y
         "\",\"d\":\"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI\"}",
         AL_OK, AL_ALG_ES256},
        /* kty */
        {"{\"kty\":\"oct\",\"k\":\"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ\"}", AL_ERR, 0},
        {"{\"kty\":\"rsa\",\"n\":\"" A2_N "\",\"e\":\"AQAB\"}", AL_ERR, 0},
        {"{\"n\":\"" A2_N "\",\"e\":\"AQAB\"}", AL_ERR, 0},
        {"{\"kty\":[\"RSA\"],\"n\":\"" A2_N "\",\"e\":\"AQAB\"}", AL_ERR, 0},
        {"{\"kty\":\"RSA\",\"kid\":5,\"n\":\"" A2_N "\",\"e\":\"AQAB\"}", AL_ERR, 0},
        /* RSA members */
        {"{\"kty\":\"RSA\",\"e\":\"AQAB\"}", AL_ERR, 0},
        {"{\"kty\":\"RSA\",\"n\":\"" A2_N "\"}", AL_ERR, 0},
        {"{\"kty\":\"RSA\",\"n\":\"" A2_N "\",\"e\":\"AQAB=\"}", AL_ERR, 0},
        {"{\"kty\":\"RSA\",\"n\":\"" A2_N "=\",\"e\":\"AQAB\"}", AL_ERR, 0},
        {"{\"kty\":\"RSA\",\"n\":\"" A2_N "\",\"e\":\"AQAC\"}", AL_ERR, 0}, /* even e */
        {"{\"kty\":\"RSA\",\"n\":\"" A2_N "\",\"e\":\"AQ\"}", AL_ERR, 0},   /* e = 1 */
        {"{\"kty\":\"RSA\",\"n\":\"" A2_N "\",\"e\":\"\"}", AL_ERR, 0},
        {"{\"kty\":\"RSA\",\"n\":\"" A2_N "\",\"e\":\"AQABAQABAQABAQAB\"}", AL_ERR, 0}, /* 12 B */
        {"{\"kty\":\"RSA\",\"n\":\"" A2_N "\",\"e\":\"Aw\"}", AL_OK, RSA_FITS},        /* e = 3 */
        /* EC members: exact field size, curve known, point on curve. */
        {"{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"" A3_X "\",\"y\":\"" A3_Y "\"}", AL_ERR, 0},
        {"{\"kty\":\"EC\",\"crv\":\"secp256k1\",\"x\":\"" A3_X "\",\"y\":\"" A3_Y "\"}", AL_ERR,
         0},
        {"{\"kty\":\"EC\",\"x\":\"" A3_X "\",\"y\":\"" A3_Y "\"}", AL_ERR, 0},
        {"{\"kty\":\"EC\",\"crv\":1,\"x\":\"" A3_X "\",\"y\":\"" A3_Y "\"}", AL_ERR, 0},
        {"{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" A3_X "\"}", AL_ERR, 0},
        {"{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" A3_X "\",\"y\":\"" A3_Y "AA\"}", AL_ERR, 0},
        {"{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" A3_X "\",\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6"
         "pCyStikYjKIWI5a4\"}",
         AL_ERR, 0},
        {"{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
         "\"y\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
         AL_ERR, 0},
        /* x = p (field prime): not a field element. */
        {"{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"_____wAAAAEAAAAAAAAAAAAAAAD_______________8\","
         "\"y\":\"" A3_Y "\"}",
         AL_ERR, 0},
        {"{\"kty\":\"EC\",\"crv\":\"P-521\",\"x\":\"" A4_X "\",\"y\":\"" A3_Y "\"}", AL_ERR, 0},
        /* OKP members. */
        {"{\"kty\":\"OKP\",\"crv\":\"Ed448\",\"x\":\"" ED_X "\"}", AL_ERR, 0},
        {"{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"3p7bfXt9wbTTW2HC7OQ1Nz-DQ8hbeGdNrfx-FG-IK08\"}",
         AL_ERR, 0},
        {"{\"kty\":\"OKP\",\"x\":\"" ED_X "\"}", AL_ERR, 0},
        {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" ED_X "AA\"}", AL_ERR, 0},
        {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHUQ\"}",
         AL_ERR, 0}, /* 31 bytes */
        {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\"}", AL_ERR, 0},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(cases); i++) {
        al_jwk_t k;
        const char *err = NULL;
        int rc = jwk_parse(cases[i].json, &k, &err);
        if (rc != cases[i].rc || k.fits != cases[i].fits)
            fail_msg("case %zu: rc %d fits 0x%x (err %s), want rc %d fits 0x%x", i, rc, k.fits,
                     err ? err : "-", cases[i].rc, cases[i].fits);
        if (rc == AL_OK)
            assert_non_null(k.pkey);
        else {
            assert_non_null(err);
            assert_null(k.pkey);
            assert_null(k.kid);
        }
        al_jwk_clear(&k);
    }
    /* Not an object at all. */
    al_jwk_t k;
    const char *err = NULL;
    json_t *arr = json_array();
    assert_int_equal(al_jwk_from_json(arr, &k, &err), AL_ERR);
    assert_int_equal(al_jwk_from_json(NULL, &k, NULL), AL_ERR);
    json_decref(arr);
}

/* The same RSA key with a leading zero octet in n is still the key (some
 * libraries emit it; RFC 7518 §6.3.1.1 says not to, we tolerate it). */
static void test_jwk_rsa_leading_zero(void **state)
{
    (void)state;
    uint8_t n[257];
    n[0] = 0;
    assert_int_equal(al_b64url_decode(A2_N, strlen(A2_N), n + 1, 256), 256);
    char *nz = b64(n, sizeof n);
    char json[600];
    snprintf(json, sizeof json, "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\"}", nz);
    free(nz);
    EVP_PKEY *k = jwk_key(json, RSA_FITS);
    assert_int_equal(EVP_PKEY_get_bits(k), 2048);
    assert_int_equal(verify_token(a2_token, k), AL_TOK_OK);
    EVP_PKEY_free(k);
}

/* ---- JWK Set ------------------------------------------------------------------------------ */

static al_keyset_t *load_rfc_set(void)
{
    char *doc = NULL;
    size_t len = 0;
    assert_int_equal(al_read_file("tests/data/jws/rfc_jwks.json", 1 << 20, &doc, &len), AL_OK);
    al_keyset_t *ks = NULL;
    const char *err = NULL;
    assert_int_equal(al_keyset_parse(doc, len, &ks, &err), AL_OK);
    free(doc);
    return ks;
}

static void test_keyset_rfc(void **state)
{
    (void)state;
    al_keyset_t *ks = load_rfc_set();
    assert_int_equal(ks->refs, 1);
    /* 4 usable; oct, use enc, key_ops encrypt, off-curve, X25519 and a
     * number are skipped. */
    assert_int_equal(ks->n_keys, 4);
    assert_int_equal(ks->n_skipped, 6);
    const al_jwk_t *f[8];
    /* With a kid: exact match and a fitting alg. */
    assert_int_equal(al_keyset_find(ks, "2010-12-29", AL_ALG_RS256, f, 8), 1);
    assert_string_equal(f[0]->kid, "2010-12-29");
    assert_int_equal(al_keyset_find(ks, "2010-12-29", AL_ALG_PS512, f, 8), 1);
    assert_int_equal(al_keyset_find(ks, "2010-12-29", AL_ALG_ES256, f, 8), 0);
    assert_int_equal(al_keyset_find(ks, "2010-12-2", AL_ALG_RS256, f, 8), 0);
    assert_int_equal(al_keyset_find(ks, "2010-12-29 ", AL_ALG_RS256, f, 8), 0);
    assert_int_equal(al_keyset_find(ks, "2010-12-29x", AL_ALG_RS256, f, 8), 0);
    assert_int_equal(al_keyset_find(ks, "E9BC097A-CE51-4036-9562-D2ADE882DB0D", AL_ALG_ES256, f, 8),
                     0);
    assert_int_equal(al_keyset_find(ks, "e9bc097a-ce51-4036-9562-d2ade882db0d", AL_ALG_ES256, f, 8),
                     1);
    assert_int_equal(al_keyset_find(ks, "", AL_ALG_RS256, f, 8), 0);
    assert_int_equal(al_keyset_find(ks, "enc-only", AL_ALG_RS256, f, 8), 0);
    assert_int_equal(al_keyset_find(ks, "off-curve", AL_ALG_ES256, f, 8), 0);
    /* rfc7515-a4 carries alg ES512. */
    assert_int_equal(al_keyset_find(ks, "rfc7515-a4", AL_ALG_ES512, f, 8), 1);
    assert_int_equal(f[0]->alg, AL_ALG_ES512);
    assert_int_equal(al_keyset_find(ks, "rfc7515-a4", AL_ALG_ES384, f, 8), 0);
    /* Without a kid: every key that fits. */
    assert_int_equal(al_keyset_find(ks, NULL, AL_ALG_RS256, f, 8), 1);
    assert_int_equal(al_keyset_find(ks, NULL, AL_ALG_ES256, f, 8), 1);
    assert_int_equal(al_keyset_find(ks, NULL, AL_ALG_ES384, f, 8), 0);
    assert_int_equal(al_keyset_find(ks, NULL, AL_ALG_EDDSA, f, 8), 1);
    assert_string_equal(f[0]->kid, "rfc8037-a1");
    assert_int_equal(al_keyset_find(ks, NULL, AL_ALG_NONE, f, 8), 0);
    assert_int_equal(al_keyset_find(ks, NULL, AL_ALG_RS256, f, 0), 0);
    assert_int_equal(al_keyset_find(NULL, NULL, AL_ALG_RS256, f, 8), 0);

    /* End to end: the RFC tokens verify with the key the set gives. */
    assert_int_equal(al_keyset_find(ks, NULL, AL_ALG_RS256, f, 8), 1);
    assert_int_equal(verify_token(a2_token, f[0]->pkey), AL_TOK_OK);
    assert_int_equal(al_keyset_find(ks, NULL, AL_ALG_ES256, f, 8), 1);
    assert_int_equal(verify_token(a3_token, f[0]->pkey), AL_TOK_OK);
    assert_int_equal(al_keyset_find(ks, "rfc7515-a4", AL_ALG_ES512, f, 8), 1);
    assert_int_equal(verify_detached(AL_ALG_ES512, f[0]->pkey, a4_input, a4_sig, 132), AL_TOK_OK);

    /* Reference counting. */
    al_keyset_t *again = al_keyset_ref(ks);
    assert_ptr_equal(again, ks);
    assert_int_equal(ks->refs, 2);
    al_keyset_unref(&again);
    assert_null(again);
    assert_int_equal(ks->refs, 1);
    al_keyset_unref(&ks);
    assert_null(ks);
    al_keyset_unref(&ks); /* NULL is fine */
    assert_null(al_keyset_ref(NULL));
}

static void test_keyset_find_many(void **state)
{
    (void)state;
    const char doc[] =
        "{\"keys\":["
        "{\"kty\":\"EC\",\"kid\":\"a\",\"crv\":\"P-256\",\"x\":\"" A3_X "\",\"y\":\"" A3_Y "\"},"
        "{\"kty\":\"EC\",\"kid\":\"a\",\"crv\":\"P-256\",\"x\":\"" A3_X "\",\"y\":\"" A3_Y "\"},"
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" A3_X "\",\"y\":\"" A3_Y "\"},"
        "{\"kty\":\"EC\",\"kid\":\"b\",\"crv\":\"P-256\",\"x\":\"" A3_X "\",\"y\":\"" A3_Y "\"}"
        "],\"extra\":true}";
    al_keyset_t *ks = NULL;
    assert_int_equal(al_keyset_parse(doc, strlen(doc), &ks, NULL), AL_OK);
    assert_int_equal(ks->n_keys, 4);
    assert_int_equal(ks->n_skipped, 0);
    const al_jwk_t *f[8];
    assert_int_equal(al_keyset_find(ks, "a", AL_ALG_ES256, f, 8), 2);
    assert_int_equal(al_keyset_find(ks, "b", AL_ALG_ES256, f, 8), 1);
    /* A keyless entry never matches a kid, but is found without one. */
    assert_int_equal(al_keyset_find(ks, NULL, AL_ALG_ES256, f, 8), 4);
    assert_null(f[2]->kid);
    /* max is respected. */
    assert_int_equal(al_keyset_find(ks, NULL, AL_ALG_ES256, f, 3), 3);
    assert_int_equal(al_keyset_find(ks, "a", AL_ALG_ES256, f, 1), 1);
    al_keyset_unref(&ks);
}

static void test_keyset_refusals(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "[]",
        "{}",
        "null",
        "{\"keys\":{}}",
        "{\"keys\":\"[]\"}",
        "{\"keys\":null}",
        "{\"keys\":[]",
        "{\"keys\":[]} x",
        "{\"keys\":[],\"keys\":[]}",
        "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" ED_X "\",\"x\":\"" ED_X
        "\"}]}",
        "{\"keys\":[{\"kty\":\"OKP\",\"kid\":\"\xff\",\"crv\":\"Ed25519\",\"x\":\"" ED_X "\"}]}",
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
        al_keyset_t *ks = (al_keyset_t *)&ks; /* must be overwritten */
        const char *err = NULL;
        if (al_keyset_parse(bad[i], strlen(bad[i]), &ks, &err) != AL_ERR)
            fail_msg("accepted %s", bad[i]);
        assert_null(ks);
        assert_non_null(err);
    }
    al_keyset_t *ks = NULL;
    assert_int_equal(al_keyset_parse(NULL, 0, &ks, NULL), AL_ERR);
    /* An empty set is fine; the caller decides. */
    assert_int_equal(al_keyset_parse("{\"keys\":[]}", 11, &ks, NULL), AL_OK);
    assert_int_equal(ks->n_keys, 0);
    assert_int_equal(ks->n_skipped, 0);
    al_keyset_unref(&ks);
    const char junk[] = "{\"keys\":[1,\"x\",[],{},{\"kty\":\"EC\"}]}";
    assert_int_equal(al_keyset_parse(junk, strlen(junk), &ks, NULL), AL_OK);
    assert_int_equal(ks->n_keys, 0);
    assert_int_equal(ks->n_skipped, 5);
    al_keyset_unref(&ks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url_vectors),
        cmocka_unit_test(test_b64url_strict),
        cmocka_unit_test(test_parse_segments),
        cmocka_unit_test(test_parse_base64_strict),
        cmocka_unit_test(test_parse_json),
        cmocka_unit_test(test_parse_fields_and_detail),
        cmocka_unit_test(test_parse_too_large),
        cmocka_unit_test(test_rfc7515_a2_rs256),
        cmocka_unit_test(test_rfc7515_a3_es256),
        cmocka_unit_test(test_rfc7515_a4_es512),
        cmocka_unit_test(test_rfc8037_ed25519),
        cmocka_unit_test(test_rfc7638_thumbprint),
        cmocka_unit_test(test_public_json),
        cmocka_unit_test(test_alg_substitution),
        cmocka_unit_test(test_jwk_rules),
        cmocka_unit_test(test_jwk_rsa_leading_zero),
        cmocka_unit_test(test_keyset_rfc),
        cmocka_unit_test(test_keyset_find_many),
        cmocka_unit_test(test_keyset_refusals),
        cmocka_unit_test(test_wycheproof_rs),
        cmocka_unit_test(test_wycheproof_ps),
        cmocka_unit_test(test_wycheproof_es),
        cmocka_unit_test(test_wycheproof_eddsa),
    };
    const struct CMUnitTest keyed[] = {
        cmocka_unit_test(test_roundtrip_all_algs),
        cmocka_unit_test(test_sign_determinism),
        cmocka_unit_test(test_sign_refusals),
        cmocka_unit_test(test_es256_signature_shape),
        cmocka_unit_test(test_es256_other_curve),
        cmocka_unit_test(test_rsa_signature_shape),
    };
    int failed = cmocka_run_group_tests_name("jws", tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("jws_keys", keyed, keys_setup, keys_teardown);
    return failed ? 1 : 0;
}
