/* test_verify.c - the verifier: one test per rejection reason, the cache,
 * Entra claims, principal contents. Tokens are signed with al_jws_sign over
 * keys generated here; the issuer's JWKS is a file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/config.h"
#include "identity/identity.h"
#include "identity/jws.h"

#define ISS "https://issuer.example.test/"

typedef struct fx {
    char dir[64];
    EVP_PKEY *es256, *rs256, *other;
    al_config_t *cfg;
    al_jwks_mgr_t *m;
    al_verifier_t *v;
    al_token_cache_t *cache;
    double now;
} fx_t;

static fx_t F;

static void write_jwks(void)
{
    json_t *set = json_array();
    json_array_append_new(set, al_jwk_public_json(F.es256, "es", AL_ALG_ES256));
    json_array_append_new(set, al_jwk_public_json(F.rs256, "rs", AL_ALG_RS256));
    json_t *doc = json_pack("{s:o}", "keys", set);
    char p[128];
    snprintf(p, sizeof p, "%s/jwks.json", F.dir);
    assert_int_equal(json_dump_file(doc, p, JSON_COMPACT), 0);
    json_decref(doc);
}

static int setup(void **state)
{
    (void)state;
    memset(&F, 0, sizeof F);
    snprintf(F.dir, sizeof F.dir, "/tmp/al-test-verify-XXXXXX");
    assert_non_null(mkdtemp(F.dir));
    F.es256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    F.rs256 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    F.other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    write_jwks();
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "server: { data_dir: %s/var }\n"
             "issuers:\n"
             "  - { name: t, issuer: '" ISS "', audience: [api://airlock], jwks_file: %s/jwks.json,"
             "      max_token_lifetime: 2h }\n"
             "  - { name: entra, issuer: 'https://login.microsoftonline.com/tid-1/v2.0',"
             "      audience: api://airlock, jwks_file: %s/jwks.json, tenant: tid-1,"
             "      groups_claim: roles }\n"
             "  - { name: open, issuer: 'https://open.example.test', audience: x,"
             "      jwks_file: %s/jwks.json, allow_unknown_agents: true, algorithms: [ES256],"
             "      typ: at+jwt }\n"
             "  - { name: nokeys, issuer: 'https://nokeys.example.test', audience: x,"
             "      jwks_file: %s/missing.json }\n"
             "agents:\n"
             "  - { name: bot, issuer: t, subject: bot-sub, owner: o@example.com, groups: [bots] }\n"
             "  - { name: app, issuer: entra, subject: app-sub, owner: o@example.com }\n",
             F.dir, F.dir, F.dir, F.dir, F.dir);
    al_config_errors_t errs = {0};
    F.cfg = al_config_load_mem("test.yaml", yaml, strlen(yaml), &errs);
    if (!F.cfg)
        fail_msg("config: %s", errs.n ? errs.msgs[0] : "?");
    al_log_set_level(AL_LOG_ERROR);
    F.m = al_jwks_mgr_new(true);
    al_jwks_mgr_sync(F.m, F.cfg);
    for (size_t i = 0; i < F.cfg->n_issuers; i++)
        al_jwks_fetch_now(F.m, al_jwks_mgr_entry(F.m, F.cfg->issuers[i].name));
    F.v = al_verifier_new(F.cfg, F.m, 1);
    F.cache = al_token_cache_new(64);
    F.now = al_now();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    al_token_cache_free(&F.cache);
    al_verifier_free(&F.v);
    al_jwks_mgr_free(&F.m);
    al_config_free(F.cfg);
    EVP_PKEY_free(F.es256);
    EVP_PKEY_free(F.rs256);
    EVP_PKEY_free(F.other);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", F.dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

/* Signs a payload built from printf-style JSON with the given key/alg/kid. */
static char *sign_with(EVP_PKEY *k, al_alg_t alg, const char *hdr_extra, const char *fmt, ...)
    AL_PRINTF(4, 5);
static char *sign_with(EVP_PKEY *k, al_alg_t alg, const char *hdr_extra, const char *fmt, ...)
{
    char hdr[512], pl[4096];
    snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\",\"kid\":\"%s\"%s}", al_alg_name(alg),
             alg == AL_ALG_RS256 ? "rs" : "es", hdr_extra ? hdr_extra : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pl, sizeof pl, fmt, ap);
    va_end(ap);
    al_buf_t b;
    al_buf_init(&b);
    assert_int_equal(al_jws_sign(alg, k, hdr, pl, &b), AL_OK);
    return b.p;
}

#define STD "\"iss\":\"" ISS "\",\"aud\":\"api://airlock\",\"sub\":\"bot-sub\""

static al_tok_status_t check(const char *tok, al_principal_t **p)
{
    al_principal_t *tmp = NULL;
    al_verify_info_t info;
    al_tok_status_t st = al_verify(F.v, NULL, tok, strlen(tok), NULL, F.now, p ? p : &tmp, &info);
    if (st != AL_TOK_OK)
        assert_non_null(info.detail);
    al_principal_unref(&tmp);
    return st;
}

static void expect(al_tok_status_t want, char *tok)
{
    al_tok_status_t got = check(tok, NULL);
    if (got != want)
        fail_msg("want %s, got %s", al_tok_reason(want), al_tok_reason(got));
    free(tok);
}

static long T(double off) { return (long)(F.now + off); }

static void test_ok_principal(void **s)
{
    (void)s;
    char *tok = sign_with(F.es256, AL_ALG_ES256, NULL,
                          "{" STD ",\"exp\":%ld,\"iat\":%ld,\"groups\":[\"g1\",\"bots\"],"
                          "\"azp\":\"client-1\",\"scp\":\"read write\"}", T(300), T(0));
    al_principal_t *p = NULL;
    assert_int_equal(check(tok, &p), AL_TOK_OK);
    assert_string_equal(p->agent, "bot");
    assert_string_equal(p->owner, "o@example.com");
    assert_string_equal(p->client_id, "client-1");
    assert_int_equal(p->n_groups, 2); /* bots deduplicated */
    assert_true(al_principal_in_group(p, "g1") && al_principal_in_group(p, "bots"));
    assert_int_equal(p->n_scopes, 2);
    assert_string_equal(p->scopes[1], "write");
    uint8_t h[32];
    char hex[65];
    al_sha256(tok, strlen(tok), h);
    al_hex(h, 32, hex);
    assert_string_equal(p->token_hash, hex);
    al_buf_t j;
    al_buf_init(&j);
    al_principal_json(p, &j);
    assert_null(strstr(j.p, tok));
    assert_non_null(strstr(j.p, "\"agent\":\"bot\""));
    al_buf_free(&j);
    al_principal_unref(&p);
    free(tok);
}

static void test_rs256_ok(void **s)
{
    (void)s;
    expect(AL_TOK_OK, sign_with(F.rs256, AL_ALG_RS256, NULL, "{" STD ",\"exp\":%ld}", T(60)));
}

static void test_malformed(void **s)
{
    (void)s;
    expect(AL_TOK_MALFORMED, strdup("a.b"));
    expect(AL_TOK_MALFORMED, strdup("a.b.c.d.e"));
    expect(AL_TOK_MALFORMED, sign_with(F.es256, AL_ALG_ES256, NULL, "{" STD ",\"exp\":\"%ld\"}", T(60)));
    expect(AL_TOK_MALFORMED,
           sign_with(F.es256, AL_ALG_ES256, NULL, "{" STD ",\"exp\":%ld,\"groups\":[1]}", T(60)));
    expect(AL_TOK_MALFORMED,
           sign_with(F.es256, AL_ALG_ES256, NULL, "{" STD ",\"exp\":%ld,\"aud\":1}", T(60)));
}

static void test_missing_token_and_too_large(void **s)
{
    (void)s;
    assert_int_equal(check("", NULL), AL_TOK_MISSING_TOKEN);
    char *big = malloc(20000);
    memset(big, 'a', 19999);
    big[19999] = '\0';
    expect(AL_TOK_TOO_LARGE, big);
}

static void test_alg_not_allowed(void **s)
{
    (void)s;
    /* the "open" issuer allows ES256 only */
    expect(AL_TOK_ALG_NOT_ALLOWED,
           sign_with(F.rs256, AL_ALG_RS256, ",\"typ\":\"at+jwt\"",
                     "{\"iss\":\"https://open.example.test\",\"aud\":\"x\",\"sub\":\"s\",\"exp\":%ld}", T(60)));
}

static void test_unknown_kid_and_bad_signature(void **s)
{
    (void)s;
    char hdr[] = "{\"alg\":\"ES256\",\"kid\":\"zz\"}";
    char pl[256];
    snprintf(pl, sizeof pl, "{" STD ",\"exp\":%ld}", T(60));
    al_buf_t b;
    al_buf_init(&b);
    assert_int_equal(al_jws_sign(AL_ALG_ES256, F.es256, hdr, pl, &b), AL_OK);
    expect(AL_TOK_UNKNOWN_KID, b.p);
    expect(AL_TOK_BAD_SIGNATURE, sign_with(F.other, AL_ALG_ES256, NULL, "{" STD ",\"exp\":%ld}", T(60)));
}

static void test_issuer_and_audience(void **s)
{
    (void)s;
    expect(AL_TOK_ISSUER_MISMATCH,
           sign_with(F.es256, AL_ALG_ES256, NULL,
                     "{\"iss\":\"https://evil.test/\",\"aud\":\"api://airlock\",\"sub\":\"bot-sub\",\"exp\":%ld}", T(60)));
    expect(AL_TOK_AUDIENCE_MISMATCH,
           sign_with(F.es256, AL_ALG_ES256, NULL,
                     "{\"iss\":\"" ISS "\",\"aud\":[\"a\",\"b\"],\"sub\":\"bot-sub\",\"exp\":%ld}", T(60)));
}

static void test_times(void **s)
{
    (void)s;
    expect(AL_TOK_EXPIRED, sign_with(F.es256, AL_ALG_ES256, NULL, "{" STD ",\"exp\":%ld}", T(-61)));
    expect(AL_TOK_OK, sign_with(F.es256, AL_ALG_ES256, NULL, "{" STD ",\"exp\":%ld.5}", T(-59)));
    expect(AL_TOK_NOT_YET_VALID,
           sign_with(F.es256, AL_ALG_ES256, NULL, "{" STD ",\"exp\":%ld,\"nbf\":%ld}", T(900), T(120)));
    expect(AL_TOK_ISSUED_IN_FUTURE,
           sign_with(F.es256, AL_ALG_ES256, NULL, "{" STD ",\"exp\":%ld,\"iat\":%ld}", T(900), T(120)));
    expect(AL_TOK_LIFETIME_TOO_LONG,
           sign_with(F.es256, AL_ALG_ES256, NULL, "{" STD ",\"exp\":%ld,\"iat\":%ld}", T(7201), T(0)));
    expect(AL_TOK_LIFETIME_TOO_LONG,
           sign_with(F.es256, AL_ALG_ES256, NULL, "{" STD ",\"exp\":%ld}", T(7300)));
}

static void test_missing_claims(void **s)
{
    (void)s;
    expect(AL_TOK_MISSING_CLAIM, sign_with(F.es256, AL_ALG_ES256, NULL, "{" STD "}"));
    expect(AL_TOK_MISSING_CLAIM,
           sign_with(F.es256, AL_ALG_ES256, NULL,
                     "{\"iss\":\"" ISS "\",\"aud\":\"api://airlock\",\"exp\":%ld}", T(60)));
    expect(AL_TOK_MISSING_CLAIM,
           sign_with(F.es256, AL_ALG_ES256, NULL, "{\"aud\":\"api://airlock\",\"sub\":\"x\",\"exp\":%ld}", T(60)));
}

static void test_crit(void **s)
{
    (void)s;
    expect(AL_TOK_CRIT_UNSUPPORTED,
           sign_with(F.es256, AL_ALG_ES256, ",\"crit\":[\"b64\"],\"b64\":false",
                     "{" STD ",\"exp\":%ld}", T(60)));
}

static void test_unknown_agent_and_allowed(void **s)
{
    (void)s;
    expect(AL_TOK_UNKNOWN_AGENT,
           sign_with(F.es256, AL_ALG_ES256, NULL,
                     "{\"iss\":\"" ISS "\",\"aud\":\"api://airlock\",\"sub\":\"ghost\",\"exp\":%ld}", T(60)));
    char *tok = sign_with(F.es256, AL_ALG_ES256, ",\"typ\":\"at+jwt\"",
                          "{\"iss\":\"https://open.example.test\",\"aud\":\"x\",\"sub\":\"ghost\",\"exp\":%ld}", T(60));
    al_principal_t *p = NULL;
    assert_int_equal(check(tok, &p), AL_TOK_OK);
    assert_null(p->agent);
    al_principal_unref(&p);
    free(tok);
    expect(AL_TOK_TYP_MISMATCH,
           sign_with(F.es256, AL_ALG_ES256, ",\"typ\":\"JWT\"",
                     "{\"iss\":\"https://open.example.test\",\"aud\":\"x\",\"sub\":\"ghost\",\"exp\":%ld}", T(60)));
}

static void test_entra(void **s)
{
    (void)s;
#define ENTRA "\"iss\":\"https://login.microsoftonline.com/tid-1/v2.0\",\"aud\":\"api://airlock\",\"sub\":\"app-sub\""
    char *tok = sign_with(F.es256, AL_ALG_ES256, NULL,
                          "{" ENTRA ",\"exp\":%ld,\"tid\":\"tid-1\",\"roles\":[\"Data.Read\"],\"appid\":\"v1app\"}", T(60));
    al_principal_t *p = NULL;
    assert_int_equal(check(tok, &p), AL_TOK_OK);
    assert_string_equal(p->groups[0], "Data.Read");
    assert_string_equal(p->client_id, "v1app");
    assert_string_equal(p->tenant, "tid-1");
    al_principal_unref(&p);
    free(tok);
    expect(AL_TOK_TENANT_MISMATCH,
           sign_with(F.es256, AL_ALG_ES256, NULL, "{" ENTRA ",\"exp\":%ld,\"tid\":\"tid-2\"}", T(60)));
    expect(AL_TOK_MISSING_CLAIM, sign_with(F.es256, AL_ALG_ES256, NULL, "{" ENTRA ",\"exp\":%ld}", T(60)));
    expect(AL_TOK_MISSING_CLAIM,
           sign_with(F.es256, AL_ALG_ES256, NULL,
                     "{" ENTRA ",\"exp\":%ld,\"tid\":\"tid-1\",\"_claim_names\":{\"roles\":\"s1\"},"
                     "\"_claim_sources\":{\"s1\":{\"endpoint\":\"https://x\"}}}", T(60)));
}

static void test_jwks_unavailable(void **s)
{
    (void)s;
    expect(AL_TOK_JWKS_UNAVAILABLE,
           sign_with(F.es256, AL_ALG_ES256, NULL,
                     "{\"iss\":\"https://nokeys.example.test\",\"aud\":\"x\",\"sub\":\"s\",\"exp\":%ld}", T(60)));
}

static void test_cache(void **s)
{
    (void)s;
    char *tok = sign_with(F.es256, AL_ALG_ES256, NULL, "{" STD ",\"exp\":%ld}", T(30));
    al_principal_t *p = NULL;
    al_verify_info_t info;
    assert_int_equal(al_verify(F.v, F.cache, tok, strlen(tok), NULL, F.now, &p, &info), AL_TOK_OK);
    assert_false(info.cache_hit);
    al_principal_unref(&p);
    assert_int_equal(al_verify(F.v, F.cache, tok, strlen(tok), NULL, F.now, &p, &info), AL_TOK_OK);
    assert_true(info.cache_hit);
    al_principal_unref(&p);
    /* past exp + skew the cache must not answer, and the cold path refuses */
    assert_int_equal(al_verify(F.v, F.cache, tok, strlen(tok), NULL, F.now + 91, &p, &info),
                     AL_TOK_EXPIRED);
    assert_false(info.cache_hit);
    /* a one-byte change is a different token: never a hit */
    tok[strlen(tok) - 1] ^= 1;
    assert_int_not_equal(al_verify(F.v, F.cache, tok, strlen(tok), NULL, F.now, &p, &info), AL_TOK_OK);
    assert_false(info.cache_hit);
    free(tok);
}

static void test_cache_generation(void **s)
{
    (void)s;
    al_token_cache_t *c = al_token_cache_new(4);
    uint8_t h[32] = {1};
    al_principal_t *p = al_calloc(1, sizeof *p);
    p->refs = 1;
    al_token_cache_put(c, h, 7, F.now + 10, p);
    al_principal_t *got = al_token_cache_get(c, h, 7, F.now);
    assert_ptr_equal(got, p);
    al_principal_unref(&got);
    assert_null(al_token_cache_get(c, h, 8, F.now)); /* reload invalidates */
    assert_null(al_token_cache_get(c, h, 7, F.now));
    /* fill beyond capacity: eviction keeps the cache bounded and correct */
    for (int i = 0; i < 100; i++) {
        uint8_t k[32] = {0};
        k[0] = (uint8_t)i;
        k[1] = 9;
        al_token_cache_put(c, k, 7, F.now + i, p);
    }
    al_principal_unref(&p);
    al_token_cache_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ok_principal),
        cmocka_unit_test(test_rs256_ok),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_missing_token_and_too_large),
        cmocka_unit_test(test_alg_not_allowed),
        cmocka_unit_test(test_unknown_kid_and_bad_signature),
        cmocka_unit_test(test_issuer_and_audience),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_missing_claims),
        cmocka_unit_test(test_crit),
        cmocka_unit_test(test_unknown_agent_and_allowed),
        cmocka_unit_test(test_entra),
        cmocka_unit_test(test_jwks_unavailable),
        cmocka_unit_test(test_cache),
        cmocka_unit_test(test_cache_generation),
    };
    return cmocka_run_group_tests_name("verify", tests, setup, teardown);
}
