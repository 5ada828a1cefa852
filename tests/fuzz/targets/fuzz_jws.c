/*
 * fuzz_jws.c - al_jws_parse and al_keyset_parse on hostile bytes.
 *
 * Every input goes whole through both parsers. When it also holds a
 * newline, the part before it is taken as a token and the rest as a JWK
 * Set, and the token is verified against every key the set offers for its
 * kid and alg, so the fuzzer reaches key building and EVP verification.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "identity/jws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_parsed(const al_jws_t *j, al_tok_status_t st)
{
    /* Contract: refusal leaves nothing; success never yields alg none. */
    if (st != AL_TOK_OK && (j->header || j->payload || j->sig))
        abort();
    if (st == AL_TOK_OK && (j->alg == AL_ALG_NONE || !j->header || !j->payload))
        abort();
}

static void token_against_set(const char *tok, size_t tok_len, const char *set, size_t set_len)
{
    al_jws_t j;
    al_tok_status_t st = al_jws_parse(tok, tok_len, AL_JWS_DEFAULT_MAX_LEN, &j, NULL);
    check_parsed(&j, st);
    al_keyset_t *ks = NULL;
    if (st == AL_TOK_OK && al_keyset_parse(set, set_len, &ks, NULL) == AL_OK) {
        const al_jwk_t *found[8];
        size_t n = al_keyset_find(ks, j.kid, j.alg, found, 8);
        for (size_t i = 0; i < n; i++) {
            al_tok_status_t v = al_jws_verify_sig(j.alg, found[i]->pkey,
                                                  (const uint8_t *)j.signing_input,
                                                  j.signing_input_len, j.sig, j.sig_len);
            if (v != AL_TOK_OK && v != AL_TOK_BAD_SIGNATURE && v != AL_TOK_INTERNAL)
                abort();
        }
        al_keyset_unref(&ks);
    }
    al_jws_free(&j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    al_jws_t j;
    al_tok_status_t st = al_jws_parse(s, size, AL_JWS_DEFAULT_MAX_LEN, &j, NULL);
    check_parsed(&j, st);
    al_jws_free(&j);

    al_keyset_t *ks = NULL;
    if (al_keyset_parse(s, size, &ks, NULL) == AL_OK) {
        /* Exercise export on every key that loaded. */
        for (size_t i = 0; i < ks->n_keys; i++) {
            al_buf_t tp;
            al_buf_init(&tp);
            if (al_jwk_thumbprint(ks->keys[i].pkey, &tp) != AL_OK)
                abort();
            al_buf_free(&tp);
            json_decref(al_jwk_public_json(ks->keys[i].pkey, ks->keys[i].kid, ks->keys[i].alg));
        }
        al_keyset_unref(&ks);
    }

    const uint8_t *nl = memchr(data, '\n', size);
    if (nl) {
        size_t tok_len = (size_t)(nl - data);
        token_against_set(s, tok_len, s + tok_len + 1, size - tok_len - 1);
    }
    return 0;
}
