/* config_alg.c - JWS algorithm names (RFC 7518 §3.1, RFC 8037 §3.1). */
#include "core/config.h"

static const struct {
    al_alg_t alg;
    const char *name;
} algs[] = {
    {AL_ALG_RS256, "RS256"}, {AL_ALG_RS384, "RS384"}, {AL_ALG_RS512, "RS512"},
    {AL_ALG_PS256, "PS256"}, {AL_ALG_PS384, "PS384"}, {AL_ALG_PS512, "PS512"},
    {AL_ALG_ES256, "ES256"}, {AL_ALG_ES384, "ES384"}, {AL_ALG_ES512, "ES512"},
    {AL_ALG_EDDSA, "EdDSA"},
};

const char *al_alg_name(al_alg_t a)
{
    for (size_t i = 0; i < AL_ARRAY_LEN(algs); i++)
        if (algs[i].alg == a)
            return algs[i].name;
    return NULL;
}

al_alg_t al_alg_parse(const char *s, size_t len)
{
    for (size_t i = 0; i < AL_ARRAY_LEN(algs); i++)
        if (strlen(algs[i].name) == len && memcmp(algs[i].name, s, len) == 0)
            return algs[i].alg;
    return AL_ALG_NONE;
}
