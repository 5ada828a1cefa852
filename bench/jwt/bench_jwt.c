/*
 * bench_jwt - verifications per second per algorithm through the gateway's
 * own verifier: cold (every call parses and checks the signature) and warm
 * (the verified-token cache answers). Prints one line per algorithm:
 *   ALG cold_per_sec warm_per_sec warm_ns_per_verify token_bytes
 * bench/jwt/run puts these next to `openssl speed` from the same run.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/config.h"
#include "identity/identity.h"
#include "identity/jws.h"

static const struct {
    al_alg_t alg;
    const char *type, *param;
} algs[] = {
    {AL_ALG_RS256, "RSA", NULL}, {AL_ALG_RS384, "RSA", NULL}, {AL_ALG_RS512, "RSA", NULL},
    {AL_ALG_PS256, "RSA", NULL}, {AL_ALG_PS384, "RSA", NULL}, {AL_ALG_PS512, "RSA", NULL},
    {AL_ALG_ES256, "EC", "P-256"}, {AL_ALG_ES384, "EC", "P-384"}, {AL_ALG_ES512, "EC", "P-521"},
    {AL_ALG_EDDSA, "ED25519", NULL},
};

static EVP_PKEY *keygen(size_t i)
{
    if (!strcmp(algs[i].type, "RSA"))
        return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    if (!strcmp(algs[i].type, "EC"))
        return EVP_PKEY_Q_keygen(NULL, NULL, "EC", algs[i].param);
    return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
}

static double run_for(const al_verifier_t *v, al_token_cache_t *c, const char *tok, size_t len,
                      double secs, uint64_t *iters)
{
    uint64_t n = 0;
    uint64_t t0 = al_mono_ns(), limit = (uint64_t)(secs * 1e9), t;
    double now = al_now();
    do {
        for (int k = 0; k < 64; k++) {
            al_principal_t *p = NULL;
            if (al_verify(v, c, tok, len, NULL, now, &p, NULL) != AL_TOK_OK) {
                fprintf(stderr, "bench_jwt: verification failed\n");
                exit(1);
            }
            al_principal_unref(&p);
        }
        n += 64;
        t = al_mono_ns() - t0;
    } while (t < limit);
    *iters = n;
    return (double)t / 1e9;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    char dir[] = "/tmp/airlock-bench-jwt-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    EVP_PKEY *keys[AL_ARRAY_LEN(algs)];
    json_t *set = json_array();
    for (size_t i = 0; i < AL_ARRAY_LEN(algs); i++) {
        keys[i] = keygen(i);
        json_array_append_new(set, al_jwk_public_json(keys[i], al_alg_name(algs[i].alg), algs[i].alg));
    }
    json_t *doc = json_pack("{s:o}", "keys", set);
    char path[256], yaml[1024];
    snprintf(path, sizeof path, "%s/jwks.json", dir);
    json_dump_file(doc, path, JSON_COMPACT);
    json_decref(doc);
    snprintf(yaml, sizeof yaml,
             "server: { data_dir: %s }\n"
             "issuers:\n  - { name: b, issuer: 'https://login.example.test/tid/v2.0', "
             "audience: 'api://airlock', jwks_file: %s }\n"
             "agents:\n  - { name: a, issuer: b, subject: 8f0c2a4e-agent, owner: o@example.com, "
             "groups: [bots] }\n", dir, path);
    al_config_errors_t errs = {0};
    al_config_t *cfg = al_config_load_mem("bench.yaml", yaml, strlen(yaml), &errs);
    if (!cfg) {
        fprintf(stderr, "bench_jwt: %s\n", errs.n ? errs.msgs[0] : "config");
        return 1;
    }
    al_log_set_level(AL_LOG_ERROR);
    al_jwks_mgr_t *m = al_jwks_mgr_new(true);
    al_jwks_mgr_sync(m, cfg);
    al_jwks_fetch_now(m, al_jwks_mgr_entry(m, "b"));
    al_verifier_t *v = al_verifier_new(cfg, m, 1);
    al_token_cache_t *cache = al_token_cache_new(4096);

    /* A realistic Entra-like access token payload (~900 bytes of JWT). */
    long now = (long)al_now();
    for (size_t i = 0; i < AL_ARRAY_LEN(algs); i++) {
        const char *name = al_alg_name(algs[i].alg);
        char hdr[128], pl[1024];
        snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", name, name);
        snprintf(pl, sizeof pl,
                 "{\"aud\":\"api://airlock\",\"iss\":\"https://login.example.test/tid/v2.0\","
                 "\"iat\":%ld,\"nbf\":%ld,\"exp\":%ld,\"aio\":\"E2ZgYNjY3Jt1mP7aQ8s2vK4Lw1Rz\","
                 "\"azp\":\"3f1c9b2e-7d4a-4c1e-9a5b-2e8f6d1c0a7b\",\"azpacr\":\"1\","
                 "\"oid\":\"6b2d8e1f-4a3c-4b9e-8f7d-1c2e3a4b5c6d\",\"rh\":\"0.AAAA-example-rh.\","
                 "\"roles\":[\"Data.Read\",\"Data.Write\"],\"sub\":\"8f0c2a4e-agent\","
                 "\"tid\":\"tid\",\"uti\":\"r4nd0mUt1v4lu3\",\"ver\":\"2.0\"}",
                 now, now, now + 3600);
        al_buf_t tok;
        al_buf_init(&tok);
        if (al_jws_sign(algs[i].alg, keys[i], hdr, pl, &tok) != AL_OK)
            return 1;
        uint64_t nc, nw;
        double tc = run_for(v, NULL, tok.p, tok.len, secs, &nc);
        double tw = run_for(v, cache, tok.p, tok.len, secs, &nw);
        printf("%s %.0f %.0f %.1f %zu\n", name, nc / tc, nw / tw, tw * 1e9 / nw, tok.len);
        fflush(stdout);
        al_buf_free(&tok);
    }
    al_token_cache_free(&cache);
    al_verifier_free(&v);
    al_jwks_mgr_free(&m);
    al_config_free(cfg);
    for (size_t i = 0; i < AL_ARRAY_LEN(algs); i++)
        EVP_PKEY_free(keys[i]);
    unlink(path);
    rmdir(dir);
    return 0;
}
