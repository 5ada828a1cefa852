/*
 * jwk.c - JSON Web Keys (RFC 7517) and JWK Sets for verification, built
 * into OpenSSL 3 EVP_PKEYs with EVP_PKEY_fromdata (no deprecated RSA_* /
 * EC_KEY_* calls). Only public parts are ever read: a private member such
 * as "d" in a published set is ignored, never loaded.
 */
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>

#include "identity/jws.h"

#define RSA_ALGS                                                                   \
    (AL_ALG_RS256 | AL_ALG_RS384 | AL_ALG_RS512 | AL_ALG_PS256 | AL_ALG_PS384 | \
     AL_ALG_PS512)

/* RFC 7518 §3.3 / §3.5: moduli under 2048 bits MUST NOT be used. */
#define RSA_MIN_BITS 2048
/* An upper bound keeps the cost of one verification bounded. */
#define RSA_MAX_BYTES (16384 / 8)
/* Public exponents wider than 64 bits are refused; nobody publishes one,
 * and OpenSSL refuses them for large moduli anyway. */
#define RSA_MAX_E_BYTES 8
#define EC_MAX_FIELD 66
#define ED25519_LEN 32 /* RFC 8032 §5.1.5 */

/* The curves of RFC 7518 §6.2.1.1 with OpenSSL's names for them. */
typedef struct curve {
    const char *crv;
    const char *ossl;
    size_t field;
    al_alg_t alg;
} curve_t;

static const curve_t curves[] = {
    {"P-256", "prime256v1", 32, AL_ALG_ES256},
    {"P-384", "secp384r1", 48, AL_ALG_ES384},
    {"P-521", "secp521r1", 66, AL_ALG_ES512},
};

static const curve_t *curve_by_crv(const char *crv)
{
    for (size_t i = 0; i < AL_ARRAY_LEN(curves); i++)
        if (strcmp(curves[i].crv, crv) == 0)
            return &curves[i];
    return NULL;
}

static const curve_t *curve_by_ossl(const char *name)
{
    for (size_t i = 0; i < AL_ARRAY_LEN(curves); i++)
        if (strcmp(curves[i].ossl, name) == 0 || strcmp(curves[i].crv, name) == 0)
            return &curves[i];
    return NULL;
}

/* ---- reading members ------------------------------------------------------- */

/* Decodes the required base64url string member name into dst (strictly,
 * RFC 7518 §6: "Base64urlUInt" and friends). Returns the length or -1. */
static ssize_t b64_member(const json_t *obj, const char *name, uint8_t *dst, size_t cap)
{
    const json_t *v = json_object_get(obj, name);
    if (!json_is_string(v))
        return -1;
    return al_b64url_decode(json_string_value(v), json_string_length(v), dst, cap);
}

/* Builds a public key of the given OpenSSL type from params. */
static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pk = NULL;
    if (params && ctx && EVP_PKEY_fromdata_init(ctx) == 1 &&
        EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pk = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pk;
}

/* ---- per key type ----------------------------------------------------------------- */

/* RFC 7518 §6.3.1: n and e. */
static EVP_PKEY *rsa_from_json(const json_t *obj, unsigned *fits, const char **err)
{
    uint8_t n[RSA_MAX_BYTES + 1], e[RSA_MAX_E_BYTES];
    ssize_t nl = b64_member(obj, "n", n, sizeof n);
    ssize_t el = b64_member(obj, "e", e, sizeof e);
    if (nl <= 0 || el <= 0) {
        *err = "RSA key lacks a valid n or e";
        return NULL;
    }
    /* An even modulus or exponent is no RSA key; e = 1 signs nothing. */
    if (!(n[nl - 1] & 1) || !(e[el - 1] & 1) || (el == 1 && e[0] == 1)) {
        *err = "RSA key has an even modulus or a trivial exponent";
        return NULL;
    }
    BIGNUM *bn = BN_bin2bn(n, (int)nl, NULL), *be = BN_bin2bn(e, (int)el, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pk = NULL;
    if (bn && be && bld && BN_num_bits(bn) >= RSA_MIN_BITS &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
        pk = pkey_fromdata("RSA", bld);
    if (!pk)
        *err = bn && BN_num_bits(bn) < RSA_MIN_BITS ? "RSA modulus is under 2048 bits"
                                                    : "RSA key could not be built";
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    *fits = RSA_ALGS;
    return pk;
}

/* RFC 7518 §6.2.1: crv, x, y, each coordinate exactly the field size
 * (§6.2.1.2/3: "MUST be the full size of a coordinate"), and the point on
 * the curve (otherwise invalid-curve attacks apply). */
static EVP_PKEY *ec_from_json(const json_t *obj, const char *crv, unsigned *fits,
                              const char **err)
{
    const curve_t *c = curve_by_crv(crv);
    if (!c) {
        *err = "EC curve is not P-256, P-384 or P-521";
        return NULL;
    }
    uint8_t pt[1 + 2 * EC_MAX_FIELD];
    pt[0] = 0x04; /* SEC 1 §2.3.3 uncompressed point */
    if (b64_member(obj, "x", pt + 1, c->field) != (ssize_t)c->field ||
        b64_member(obj, "y", pt + 1 + c->field, c->field) != (ssize_t)c->field) {
        *err = "EC x or y is not the curve's field size";
        return NULL;
    }
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pk = NULL;
    if (bld && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, c->ossl, 0) &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, 1 + 2 * c->field))
        pk = pkey_fromdata("EC", bld);
    OSSL_PARAM_BLD_free(bld);
    if (pk) {
        /* SP 800-56A §5.6.2.3.3: on the curve, not infinity, right order. */
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
        if (!ctx || EVP_PKEY_public_check(ctx) != 1) {
            EVP_PKEY_free(pk);
            pk = NULL;
        }
        EVP_PKEY_CTX_free(ctx);
    }
    if (!pk)
        *err = "EC point is not on the curve";
    *fits = c->alg;
    return pk;
}

/* RFC 8037 §2: kty OKP, crv Ed25519, x the 32-byte public key. */
static EVP_PKEY *okp_from_json(const json_t *obj, const char *crv, unsigned *fits,
                               const char **err)
{
    if (strcmp(crv, "Ed25519") != 0) {
        *err = "OKP curve is not Ed25519";
        return NULL;
    }
    uint8_t x[ED25519_LEN];
    if (b64_member(obj, "x", x, sizeof x) != ED25519_LEN) {
        *err = "Ed25519 x is not 32 bytes";
        return NULL;
    }
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pk = NULL;
    if (bld && OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, x, sizeof x))
        pk = pkey_fromdata("ED25519", bld);
    OSSL_PARAM_BLD_free(bld);
    if (!pk)
        *err = "Ed25519 key could not be built";
    *fits = AL_ALG_EDDSA;
    return pk;
}

/* ---- use, key_ops, alg ---------------------------------------------------------- */

/* Narrows fits by RFC 7517 §4.2 (use), §4.3 (key_ops) and §4.4 (alg). */
static int restrict_fits(const json_t *obj, al_jwk_t *out, const char **err)
{
    const json_t *use = json_object_get(obj, "use");
    if (use) {
        if (!json_is_string(use)) {
            *err = "use is not a string";
            return AL_ERR;
        }
        if (strcmp(json_string_value(use), "sig") != 0)
            out->fits = 0;
    }
    const json_t *ops = json_object_get(obj, "key_ops");
    if (ops) {
        if (!json_is_array(ops)) {
            *err = "key_ops is not an array";
            return AL_ERR;
        }
        bool verify = false;
        size_t i;
        const json_t *op;
        json_array_foreach(ops, i, op) {
            if (!json_is_string(op)) {
                *err = "key_ops holds a non-string";
                return AL_ERR;
            }
            verify |= strcmp(json_string_value(op), "verify") == 0;
        }
        if (!verify)
            out->fits = 0;
    }
    const json_t *alg = json_object_get(obj, "alg");
    if (alg) {
        if (!json_is_string(alg)) {
            *err = "alg is not a string";
            return AL_ERR;
        }
        /* An alg we do not know (or one for another kty) leaves nothing. */
        out->alg = al_alg_parse(json_string_value(alg), json_string_length(alg));
        out->fits &= (unsigned)out->alg;
    }
    return AL_OK;
}

int al_jwk_from_json(const json_t *obj, al_jwk_t *out, const char **err)
{
    const char *dummy;
    if (!err)
        err = &dummy;
    memset(out, 0, sizeof *out);
    if (!json_is_object(obj)) {
        *err = "JWK is not an object";
        return AL_ERR;
    }
    const json_t *kty = json_object_get(obj, "kty"); /* RFC 7517 §4.1 */
    const json_t *crv = json_object_get(obj, "crv");
    const json_t *kid = json_object_get(obj, "kid"); /* RFC 7517 §4.5 */
    if (!json_is_string(kty)) {
        *err = "kty is missing or not a string";
        return AL_ERR;
    }
    if (crv && !json_is_string(crv)) {
        *err = "crv is not a string";
        return AL_ERR;
    }
    if (kid && !json_is_string(kid)) {
        *err = "kid is not a string";
        return AL_ERR;
    }
    const char *k = json_string_value(kty), *c = crv ? json_string_value(crv) : "";
    if (strcmp(k, "RSA") == 0)
        out->pkey = rsa_from_json(obj, &out->fits, err);
    else if (strcmp(k, "EC") == 0)
        out->pkey = ec_from_json(obj, c, &out->fits, err);
    else if (strcmp(k, "OKP") == 0)
        out->pkey = okp_from_json(obj, c, &out->fits, err);
    else
        *err = "kty is not RSA, EC or OKP"; /* "oct" never verifies a token */
    ERR_clear_error();
    if (!out->pkey || restrict_fits(obj, out, err) != AL_OK)
        goto fail;
    if (kid && !(out->kid = al_strndup(json_string_value(kid), json_string_length(kid)))) {
        *err = "out of memory";
        goto fail;
    }
    return AL_OK;
fail:
    al_jwk_clear(out);
    return AL_ERR;
}

void al_jwk_clear(al_jwk_t *k)
{
    if (!k)
        return;
    al_free(&k->kid);
    EVP_PKEY_free(k->pkey);
    memset(k, 0, sizeof *k);
}

/* ---- JWK Set (RFC 7517 §5) ----------------------------------------------------- */

static void keyset_free(al_keyset_t *ks)
{
    for (size_t i = 0; i < ks->n_keys; i++)
        al_jwk_clear(&ks->keys[i]);
    al_free(&ks->keys);
    al_free(&ks);
}

int al_keyset_parse(const char *json, size_t len, al_keyset_t **out, const char **err)
{
    const char *dummy;
    if (!err)
        err = &dummy;
    *out = NULL;
    json_error_t jerr;
    json_t *doc = json ? json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    const json_t *keys = json_object_get(doc, "keys"); /* NULL-safe */
    if (!json_is_object(doc) || !json_is_array(keys)) {
        *err = "not a JWK Set: an object with a \"keys\" array";
        json_decref(doc);
        return AL_ERR;
    }
    al_keyset_t *ks = al_calloc(1, sizeof *ks);
    if (ks)
        ks->keys = al_calloc(json_array_size(keys), sizeof *ks->keys);
    if (!ks || !ks->keys) {
        if (ks)
            keyset_free(ks);
        json_decref(doc);
        *err = "out of memory";
        return AL_ERR;
    }
    ks->refs = 1;
    size_t i;
    const json_t *v;
    json_array_foreach(keys, i, v) {
        /* RFC 7517 §5: keys we cannot use are ignored, not fatal. A key
         * that may verify nothing (use "enc", ...) is skipped as well. */
        al_jwk_t k;
        const char *kerr;
        if (al_jwk_from_json(v, &k, &kerr) == AL_OK && k.fits) {
            ks->keys[ks->n_keys++] = k;
        } else {
            al_jwk_clear(&k);
            ks->n_skipped++;
        }
    }
    json_decref(doc);
    *out = ks;
    return AL_OK;
}

al_keyset_t *al_keyset_ref(al_keyset_t *ks)
{
    if (ks)
        __atomic_fetch_add(&ks->refs, 1, __ATOMIC_RELAXED);
    return ks;
}

void al_keyset_unref(al_keyset_t **ks)
{
    if (!ks || !*ks)
        return;
    /* Acquire-release so the last owner sees every other owner's reads
     * finished before it frees. */
    if (__atomic_sub_fetch(&(*ks)->refs, 1, __ATOMIC_ACQ_REL) == 0)
        keyset_free(*ks);
    *ks = NULL;
}

size_t al_keyset_find(const al_keyset_t *ks, const char *kid, al_alg_t alg,
                      const al_jwk_t **found, size_t max)
{
    size_t n = 0;
    if (!ks || alg == AL_ALG_NONE)
        return 0;
    for (size_t i = 0; i < ks->n_keys && n < max; i++) {
        const al_jwk_t *k = &ks->keys[i];
        if (!(k->fits & (unsigned)alg))
            continue;
        /* RFC 7515 §4.1.4: kid is compared exactly (case-sensitive). */
        if (kid && (!k->kid || strcmp(k->kid, kid) != 0))
            continue;
        found[n++] = k;
    }
    return n;
}

/* ---- export: public JWK and thumbprint ------------------------------------------ */

/* The required public members of a key, base64url-encoded. */
typedef struct pub_parts {
    const char *kty;
    const char *crv; /* NULL for RSA */
    al_buf_t a;      /* RSA n; EC/OKP x */
    al_buf_t b;      /* RSA e; EC y; unused for OKP */
} pub_parts_t;

static int bn_param_b64(EVP_PKEY *pk, const char *name, int pad_to, al_buf_t *out)
{
    BIGNUM *bn = NULL;
    uint8_t buf[RSA_MAX_BYTES + 1];
    int rc = AL_ERR;
    if (EVP_PKEY_get_bn_param(pk, name, &bn) == 1) {
        int n = pad_to ? pad_to : BN_num_bytes(bn);
        /* RFC 7518 §2 Base64urlUInt: minimal octets (zero is one octet). */
        if (n == 0)
            n = 1;
        if ((size_t)n <= sizeof buf && BN_bn2binpad(bn, buf, n) == n)
            rc = al_b64url_encode(out, buf, (size_t)n);
    }
    BN_free(bn);
    return rc;
}

static int pub_parts(EVP_PKEY *pk, pub_parts_t *p)
{
    memset(p, 0, sizeof *p);
    if (!pk)
        return AL_ERR;
    int rc = AL_ERR;
    switch (EVP_PKEY_get_base_id(pk)) {
    case EVP_PKEY_RSA:
        p->kty = "RSA";
        rc = bn_param_b64(pk, OSSL_PKEY_PARAM_RSA_N, 0, &p->a) == AL_OK &&
                     bn_param_b64(pk, OSSL_PKEY_PARAM_RSA_E, 0, &p->b) == AL_OK
                 ? AL_OK
                 : AL_ERR;
        break;
    case EVP_PKEY_EC: {
        char name[64];
        const curve_t *c = NULL;
        if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof name,
                                           NULL))
            c = curve_by_ossl(name);
        if (!c)
            break;
        p->kty = "EC";
        p->crv = c->crv;
        /* RFC 7518 §6.2.1.2: coordinates at the full field size. */
        rc = bn_param_b64(pk, OSSL_PKEY_PARAM_EC_PUB_X, (int)c->field, &p->a) == AL_OK &&
                     bn_param_b64(pk, OSSL_PKEY_PARAM_EC_PUB_Y, (int)c->field, &p->b) == AL_OK
                 ? AL_OK
                 : AL_ERR;
        break;
    }
    case EVP_PKEY_ED25519: {
        uint8_t x[ED25519_LEN];
        size_t xl = sizeof x;
        p->kty = "OKP";
        p->crv = "Ed25519";
        if (EVP_PKEY_get_raw_public_key(pk, x, &xl) == 1 && xl == ED25519_LEN)
            rc = al_b64url_encode(&p->a, x, xl);
        break;
    }
    default: break;
    }
    ERR_clear_error();
    return rc;
}

static void pub_parts_free(pub_parts_t *p)
{
    al_buf_free(&p->a);
    al_buf_free(&p->b);
}

static int set_str(json_t *o, const char *k, const char *v)
{
    return json_object_set_new(o, k, json_string(v)) == 0 ? AL_OK : AL_ERR;
}

json_t *al_jwk_public_json(EVP_PKEY *pkey, const char *kid, al_alg_t alg)
{
    pub_parts_t p;
    json_t *o = NULL;
    if (pub_parts(pkey, &p) != AL_OK || !(o = json_object()))
        goto out;
    bool rsa = p.crv == NULL, okp = strcmp(p.kty, "OKP") == 0;
    int rc = set_str(o, "kty", p.kty);
    if (!rsa)
        rc |= set_str(o, "crv", p.crv);
    rc |= set_str(o, rsa ? "n" : "x", p.a.p);
    if (!okp)
        rc |= set_str(o, rsa ? "e" : "y", p.b.p);
    if (kid)
        rc |= set_str(o, "kid", kid);
    if (al_alg_name(alg))
        rc |= set_str(o, "alg", al_alg_name(alg));
    rc |= set_str(o, "use", "sig");
    if (rc != AL_OK) {
        json_decref(o);
        o = NULL;
    }
out:
    pub_parts_free(&p);
    return o;
}

int al_jwk_thumbprint(EVP_PKEY *pkey, al_buf_t *out)
{
    pub_parts_t p;
    al_buf_t j;
    al_buf_init(&j);
    int rc = pub_parts(pkey, &p);
    /* RFC 7638 §3.2/§3.3: required members only, in lexicographic order,
     * no whitespace. Values are base64url or fixed ASCII: no escaping.
     * RFC 8037 §2 gives OKP's members (crv, kty, x). */
    if (rc == AL_OK && p.crv == NULL)
        rc = al_buf_printf(&j, "{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", p.b.p, p.a.p);
    else if (rc == AL_OK && strcmp(p.kty, "EC") == 0)
        rc = al_buf_printf(&j, "{\"crv\":\"%s\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", p.crv,
                           p.a.p, p.b.p);
    else if (rc == AL_OK)
        rc = al_buf_printf(&j, "{\"crv\":\"%s\",\"kty\":\"OKP\",\"x\":\"%s\"}", p.crv, p.a.p);
    if (rc == AL_OK) {
        uint8_t h[32];
        al_sha256(j.p, j.len, h);
        rc = al_b64url_encode(out, h, sizeof h);
    }
    al_buf_free(&j);
    pub_parts_free(&p);
    return rc;
}
