/*
 * dev_issuer.c - a local ES256 issuer for the quickstart and tests.
 *
 * The key lives in data_dir/dev-issuer/es256.pem (mode 0600, directory
 * 0700). The gateway trusts it only when the config says dev_issuer: true,
 * and says so loudly at start.
 */
#include <errno.h>
#include <jansson.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "identity/identity.h"
#include "identity/jws.h"

static int key_path(const char *data_dir, char *buf, size_t cap, bool dir_only)
{
    int n = snprintf(buf, cap, "%s/dev-issuer%s", data_dir, dir_only ? "" : "/es256.pem");
    return n < 0 || (size_t)n >= cap ? AL_ERR : AL_OK;
}

static EVP_PKEY *create_key(const char *dir, const char *path)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    BIO *mem = BIO_new(BIO_s_mem());
    char *pem = NULL;
    long len = 0;
    if (!k || !mem || !PEM_write_bio_PrivateKey(mem, k, NULL, NULL, 0, NULL, NULL) ||
        (len = BIO_get_mem_data(mem, &pem)) <= 0 || al_mkdir_p(dir, 0700) != AL_OK ||
        al_write_file_atomic(path, pem, (size_t)len, 0600) != AL_OK) {
        al_log(AL_LOG_ERROR, "cannot create the dev issuer key", "path", path, "error",
               strerror(errno), NULL);
        EVP_PKEY_free(k);
        k = NULL;
    } else {
        al_log(AL_LOG_INFO, "created the dev issuer key", "path", path, NULL);
    }
    BIO_free(mem);
    return k;
}

EVP_PKEY *al_dev_issuer_key(const char *data_dir, bool create)
{
    char dir[4096], path[4096];
    if (key_path(data_dir, dir, sizeof dir, true) || key_path(data_dir, path, sizeof path, false))
        return NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return create && errno == ENOENT ? create_key(dir, path) : NULL;
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077)) {
        al_log(AL_LOG_ERROR, "dev issuer key is readable by others; chmod 600 it", "path", path, NULL);
        fclose(f);
        return NULL;
    }
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (k && !EVP_PKEY_is_a(k, "EC")) {
        EVP_PKEY_free(k);
        k = NULL;
    }
    return k;
}

int al_dev_issuer_jwks(EVP_PKEY *key, al_buf_t *b)
{
    al_buf_t kid;
    al_buf_init(&kid);
    if (al_jwk_thumbprint(key, &kid) != AL_OK) {
        al_buf_free(&kid);
        return AL_ERR;
    }
    json_t *jwk = al_jwk_public_json(key, kid.p, AL_ALG_ES256);
    al_buf_free(&kid);
    if (!jwk)
        return AL_ERR;
    json_t *doc = json_pack("{s:[o]}", "keys", jwk);
    char *s = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!s)
        return AL_ERR;
    int rc = al_buf_puts(b, s);
    free(s);
    return rc;
}

int al_dev_issuer_mint(EVP_PKEY *key, const al_mint_req_t *req, al_buf_t *out)
{
    al_buf_t kid;
    al_buf_init(&kid);
    uint8_t rnd[16];
    char jti[33];
    if (al_jwk_thumbprint(key, &kid) != AL_OK || RAND_bytes(rnd, sizeof rnd) != 1) {
        al_buf_free(&kid);
        return AL_ERR;
    }
    al_hex(rnd, sizeof rnd, jti);
    json_t *groups = json_array();
    for (size_t i = 0; i < req->n_groups; i++)
        json_array_append_new(groups, json_string(req->groups[i]));
    json_int_t now = (json_int_t)req->now;
    json_t *hdr = json_pack("{s:s,s:s,s:s}", "alg", "ES256", "typ", "JWT", "kid", kid.p);
    json_t *pl = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:o}", "iss", AL_DEV_ISS, "sub",
                           req->subject, "aud", req->audience ? req->audience : AL_DEV_AUDIENCE,
                           "azp", req->subject, "iat", now, "nbf", now, "exp",
                           (json_int_t)(req->now + req->ttl), "jti", jti, "groups", groups);
    char *h = hdr ? json_dumps(hdr, JSON_COMPACT) : NULL;
    char *p = pl ? json_dumps(pl, JSON_COMPACT) : NULL;
    int rc = h && p ? al_jws_sign(AL_ALG_ES256, key, h, p, out) : AL_ERR;
    free(h);
    free(p);
    json_decref(hdr);
    json_decref(pl);
    al_buf_free(&kid);
    return rc;
}
