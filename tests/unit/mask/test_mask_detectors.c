/*
 * test_mask_detectors.c - every built-in detector of src/mask on real
 * positives and deliberate negatives (docs/masking.md lists both), the
 * value extents it reports, and the validators underneath.
 *
 * Card numbers are the public test PANs of the networks; IBANs are the
 * SWIFT IBAN registry's examples; the JWT is the RFC 7519 §3.1 example.
 */
#include "mask_test.h"

static al_mask_engine_t *E;
static al_mask_scratch_t *S;

static int setup(void **state)
{
    AL_UNUSED(state);
    al_mask_rule_t acct = {"acct", "ACCT-[0-9]{6}", AL_MASK_STYLE_FULL};
    E = engine_with(AL_MASK_STYLE_FULL, &acct, 1, 0);
    return al_mask_scratch_alloc(E, &S) == AL_MASK_OK ? 0 : -1;
}

static int teardown(void **state)
{
    AL_UNUSED(state);
    al_mask_scratch_free(&S);
    al_mask_engine_unref(&E);
    return 0;
}

/* Asserts that `in` holds exactly one value, of kind det, spanning `want`. */
static void one_value(const char *in, al_mask_det_t det, const char *want)
{
    unsigned k = kinds_in(E, S, in);
    size_t n;
    const al_mask_match_t *m = al_mask_scratch_matches(S, &n);
    const char *at = strstr(in, want);
    assert_non_null(at);
    if (!(k & KIND(det)))
        fail_msg("%s: no %s value found", in, al_mask_det_name(det));
    bool seen = false;
    for (size_t i = 0; i < n; i++)
        if (m[i].det == det && m[i].start == (size_t)(at - in) && m[i].end == m[i].start + strlen(want))
            seen = true;
    if (!seen)
        fail_msg("%s: %s value is not exactly \"%s\"", in, al_mask_det_name(det), want);
}

/* Asserts that kind det finds nothing in `in`. */
static void no_value(const char *in, al_mask_det_t det)
{
    if (kinds_in(E, S, in) & KIND(det))
        fail_msg("%s: unexpected %s value", in, al_mask_det_name(det));
}

/* ---- cards ------------------------------------------------------------------------- */

static void test_card_positive(void **state)
{
    AL_UNUSED(state);
    static const char *const pans[] = {
        "4111111111111111", "4012888888881881", "4222222222222", "5555555555554444",
        "5105105105105100", "2223000048400011", "378282246310005", "371449635398431",
        "6011111111111117", "6011000990139424", "30569309025904", "38520000023237",
        "3530111333300000", "3566002020360505", "6200000000000005", "4111111111111111110",
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(pans); i++) {
        char in[64];
        snprintf(in, sizeof in, "pan %s.", pans[i]);
        one_value(in, AL_MASK_DET_CREDIT_CARD, pans[i]);
    }
    one_value("card: 4111 1111 1111 1111, exp 12/29", AL_MASK_DET_CREDIT_CARD, "4111 1111 1111 1111");
    one_value("card: 4111-1111-1111-1111", AL_MASK_DET_CREDIT_CARD, "4111-1111-1111-1111");
    one_value("amex 3782 822463 10005 ok", AL_MASK_DET_CREDIT_CARD, "3782 822463 10005");
    one_value("diners 3056-930902-5904", AL_MASK_DET_CREDIT_CARD, "3056-930902-5904");
    one_value("19: 4111 1111 1111 1111 110", AL_MASK_DET_CREDIT_CARD, "4111 1111 1111 1111 110");
    one_value("\"4111111111111111\"", AL_MASK_DET_CREDIT_CARD, "4111111111111111");
    /* A card inside a longer run of groups is still found. */
    one_value("ref 9876 4111 1111 1111 1111", AL_MASK_DET_CREDIT_CARD, "4111 1111 1111 1111");
    /* CSV fields: a ',' between digits is a separator, not a decimal comma
     * (found by the accuracy corpus, tests/data/masking). */
    one_value("42,4111111111111111,12/27,VISA", AL_MASK_DET_CREDIT_CARD, "4111111111111111");
    one_value("5940,3782 822463 10005,05/28", AL_MASK_DET_CREDIT_CARD, "3782 822463 10005");
    MASKS_TO(E, S, "card 4111 1111 1111 1111 ok", "card ################### ok");
}

static void test_card_negative(void **state)
{
    AL_UNUSED(state);
    no_value("4111111111111112", AL_MASK_DET_CREDIT_CARD);      /* Luhn fails */
    no_value("4111 1111 1111 1112", AL_MASK_DET_CREDIT_CARD);   /* Luhn fails */
    no_value("1234567812345670", AL_MASK_DET_CREDIT_CARD);      /* Luhn ok, no issuer */
    no_value("41111111111111111111", AL_MASK_DET_CREDIT_CARD);  /* 20 digits */
    no_value("x4111111111111111", AL_MASK_DET_CREDIT_CARD);     /* part of a word */
    no_value("4111111111111111y", AL_MASK_DET_CREDIT_CARD);
    no_value("0.4111111111111111", AL_MASK_DET_CREDIT_CARD);    /* a decimal fraction */
    no_value("4111111111111111.5", AL_MASK_DET_CREDIT_CARD);
    no_value("4111 1111-1111 1111", AL_MASK_DET_CREDIT_CARD);   /* mixed separators */
    no_value("4111  1111  1111  1111", AL_MASK_DET_CREDIT_CARD); /* two spaces */
    no_value("41 11 11 11 11 11 11 11", AL_MASK_DET_CREDIT_CARD); /* not a card layout */
    no_value("#4111111111111111", AL_MASK_DET_CREDIT_CARD);     /* glued to a mask */
    /* Luhn and Visa-13, but also a valid EAN-13 (GS1 prefix 400): a product
     * code (found by the accuracy corpus, tests/data/masking). */
    no_value("EAN 4006381333924", AL_MASK_DET_CREDIT_CARD);
    one_value("pan 4006 3813 3392 4", AL_MASK_DET_CREDIT_CARD, "4006 3813 3392 4");
    UNTOUCHED(E, S, "order 1234567812345670 shipped");
}

/* ---- SSNs --------------------------------------------------------------------------- */

static void test_ssn(void **state)
{
    AL_UNUSED(state);
    one_value("ssn 123-45-6789.", AL_MASK_DET_US_SSN, "123-45-6789");
    one_value("ssn: 078 05 1121", AL_MASK_DET_US_SSN, "078 05 1121");
    one_value("a,665-01-2345,b", AL_MASK_DET_US_SSN, "665-01-2345");
    one_value("899-99-9999", AL_MASK_DET_US_SSN, "899-99-9999");
    no_value("000-12-3456", AL_MASK_DET_US_SSN); /* area 000 */
    no_value("666-12-3456", AL_MASK_DET_US_SSN); /* area 666 */
    no_value("900-12-3456", AL_MASK_DET_US_SSN); /* area 9xx */
    no_value("999-12-3456", AL_MASK_DET_US_SSN);
    no_value("123-00-4567", AL_MASK_DET_US_SSN); /* group 00 */
    no_value("123-45-0000", AL_MASK_DET_US_SSN); /* serial 0000 */
    no_value("id 123456789", AL_MASK_DET_US_SSN); /* bare digits: only as a column */
    no_value("123-45 6789", AL_MASK_DET_US_SSN); /* mixed separators */
    no_value("1-123-45-6789", AL_MASK_DET_US_SSN); /* part of a longer number */
    no_value("123-45-6789-12", AL_MASK_DET_US_SSN);
    no_value("x123-45-6789", AL_MASK_DET_US_SSN);
    MASKS_TO(E, S, "ssn 123-45-6789", "ssn ###########");
}

/* ---- e-mail ----------------------------------------------------------------------- */

static void test_email(void **state)
{
    AL_UNUSED(state);
    one_value("mail bob@example.com.", AL_MASK_DET_EMAIL, "bob@example.com");
    one_value("first.last+tag@sub.example.co.uk", AL_MASK_DET_EMAIL,
              "first.last+tag@sub.example.co.uk");
    one_value("<x_y%z@a-b.io>", AL_MASK_DET_EMAIL, "x_y%z@a-b.io");
    one_value("mailto:bob@example.com?subject=hi", AL_MASK_DET_EMAIL, "bob@example.com");
    one_value("\"to\":\"Ann.O'Neil@example.org\"", AL_MASK_DET_EMAIL, "Neil@example.org");
    one_value("u@xn--bcher-kva.example", AL_MASK_DET_EMAIL, "u@xn--bcher-kva.example");
    one_value("...bob@example.com", AL_MASK_DET_EMAIL, "bob@example.com");
    one_value("bob@example.com.2x", AL_MASK_DET_EMAIL, "bob@example.com");
    no_value("bob@localhost", AL_MASK_DET_EMAIL);
    no_value("bob@example.c", AL_MASK_DET_EMAIL);     /* one-letter TLD */
    no_value("bob@example.123", AL_MASK_DET_EMAIL);   /* numeric TLD */
    no_value("@example.com", AL_MASK_DET_EMAIL);
    no_value("bob@-example.com", AL_MASK_DET_EMAIL);
    no_value("bob.@example.com", AL_MASK_DET_EMAIL);
    no_value("user@[192.0.2.1]", AL_MASK_DET_EMAIL); /* address literal */
    no_value("#bob@example.com", AL_MASK_DET_EMAIL);
    no_value("bob@example.com#", AL_MASK_DET_EMAIL);
    /* Image scale suffixes (found by the accuracy corpus). */
    no_value("<img src=\"/img/logo@2x.png\">", AL_MASK_DET_EMAIL);
    no_value("GET /static/icon@3X.webp", AL_MASK_DET_EMAIL);
    one_value("to bob@2xl.example.com", AL_MASK_DET_EMAIL, "bob@2xl.example.com");
    char longlocal[128];
    memset(longlocal, 'a', 65);
    memcpy(longlocal + 65, "@example.com", sizeof "@example.com");
    no_value(longlocal, AL_MASK_DET_EMAIL); /* local part over 64 bytes */
}

/* ---- phones ------------------------------------------------------------------------- */

static void test_phone_positive(void **state)
{
    AL_UNUSED(state);
    one_value("call +1 415 555 2671 now", AL_MASK_DET_PHONE, "+1 415 555 2671");
    one_value("tel:+14155552671", AL_MASK_DET_PHONE, "+14155552671");
    one_value("+44 20 7946 0958", AL_MASK_DET_PHONE, "+44 20 7946 0958");
    one_value("+44 (0)20 7946 0958", AL_MASK_DET_PHONE, "+44 (0)20 7946 0958");
    one_value("+33 1 23 45 67 89.", AL_MASK_DET_PHONE, "+33 1 23 45 67 89");
    one_value("office (415) 555-2671", AL_MASK_DET_PHONE, "(415) 555-2671");
    one_value("(415)555-2671", AL_MASK_DET_PHONE, "(415)555-2671");
    one_value("415-555-2671", AL_MASK_DET_PHONE, "415-555-2671");
    one_value("415.555.2671", AL_MASK_DET_PHONE, "415.555.2671");
    one_value("toll free 1-800-555-0199", AL_MASK_DET_PHONE, "1-800-555-0199");
    one_value("london 020 7946 0958", AL_MASK_DET_PHONE, "020 7946 0958");
    one_value("paris 01 23 45 67 89", AL_MASK_DET_PHONE, "01 23 45 67 89");
    one_value("berlin (030) 1234 5678", AL_MASK_DET_PHONE, "(030) 1234 5678");
    /* An area code and one subscriber group; French pairs with dots
     * (found by the accuracy corpus, tests/data/masking). */
    one_value("berlin 030 12345678", AL_MASK_DET_PHONE, "030 12345678");
    one_value("munich 089 1234567.", AL_MASK_DET_PHONE, "089 1234567");
    one_value("mobile 07700 900123", AL_MASK_DET_PHONE, "07700 900123");
    one_value("nl 06-12345678", AL_MASK_DET_PHONE, "06-12345678");
    one_value("tel 01.23.45.67.89", AL_MASK_DET_PHONE, "01.23.45.67.89");
    one_value("id 77 415 555 2671", AL_MASK_DET_PHONE, "415 555 2671");
}

static void test_phone_negative(void **state)
{
    AL_UNUSED(state);
    no_value("at 2024-01-15 10:30:00", AL_MASK_DET_PHONE);     /* timestamps */
    no_value("2024-01-15T10:30:00+05:30", AL_MASK_DET_PHONE);
    no_value("20240115103000", AL_MASK_DET_PHONE);
    no_value("epoch 1697040000", AL_MASK_DET_PHONE);           /* bare 10 digits */
    no_value("4155552671", AL_MASK_DET_PHONE);
    no_value("12:30:45.555", AL_MASK_DET_PHONE);
    no_value("tz +0530", AL_MASK_DET_PHONE);
    no_value("123-456-7890", AL_MASK_DET_PHONE);              /* area code 1xx */
    no_value("415-055-2671", AL_MASK_DET_PHONE);              /* exchange 0xx */
    no_value("ISBN 978-0-306-40615-7", AL_MASK_DET_PHONE);
    no_value("415-555-2671-99", AL_MASK_DET_PHONE);           /* longer dashed number */
    no_value("v415.555.2671", AL_MASK_DET_PHONE);
    no_value("192.168.100.200", AL_MASK_DET_PHONE);
    no_value("01-02-2024", AL_MASK_DET_PHONE);                /* a date */
    no_value("+1234567", AL_MASK_DET_PHONE);                  /* too short for E.164 */
    no_value("+1234567890123456", AL_MASK_DET_PHONE);         /* 16 digits */
    no_value("030 123456789", AL_MASK_DET_PHONE);             /* 12 digits */
    no_value("0301 234", AL_MASK_DET_PHONE);                  /* 7 digits */
    no_value("01.23.45.6789", AL_MASK_DET_PHONE);             /* dots, not pairs */
    no_value("030.12345678", AL_MASK_DET_PHONE);
    no_value("01.23.45.67.89.10", AL_MASK_DET_PHONE);         /* a sixth pair */
    no_value("2030 12345678", AL_MASK_DET_PHONE);             /* no trunk 0 */
}

/* ---- IBAN ------------------------------------------------------------------------------ */

static void test_iban(void **state)
{
    AL_UNUSED(state);
    static const char *const good[] = {
        "GB82WEST12345698765432",      "DE89370400440532013000",   "FR1420041010050500013M02606",
        "NL91ABNA0417164300",          "ES9121000418450200051332", "CH9300762011623852957",
        "BE68539007547034",            "NO9386011117947",          "MT84MALT011000012345MTLCAST001S",
        "GB82 WEST 1234 5698 7654 32", "DE89 3704 0044 0532 0130 00",
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(good); i++) {
        char in[80];
        snprintf(in, sizeof in, "iban: %s.", good[i]);
        one_value(in, AL_MASK_DET_IBAN, good[i]);
    }
    no_value("GB82WEST12345698765433", AL_MASK_DET_IBAN);  /* mod-97 fails */
    no_value("GB83WEST12345698765432", AL_MASK_DET_IBAN);  /* check digits */
    no_value("GB82WEST1234569876543", AL_MASK_DET_IBAN);   /* GB is 22 long */
    no_value("GB82WEST123456987654321", AL_MASK_DET_IBAN);
    no_value("XX82WEST12345698765432", AL_MASK_DET_IBAN);  /* no such country */
    no_value("gb82west12345698765432", AL_MASK_DET_IBAN);  /* lowercase */
    no_value("IDGB82WEST12345698765432", AL_MASK_DET_IBAN); /* glued to a word */
    no_value("GB82 WEST 1234 5698 7654 33", AL_MASK_DET_IBAN);
}

/* ---- IP addresses ------------------------------------------------------------------- */

static void test_ip(void **state)
{
    AL_UNUSED(state);
    one_value("from 192.168.1.1 port", AL_MASK_DET_IP_ADDRESS, "192.168.1.1");
    one_value("10.0.0.1:8080", AL_MASK_DET_IP_ADDRESS, "10.0.0.1");
    one_value("dns 8.8.8.8.", AL_MASK_DET_IP_ADDRESS, "8.8.8.8");
    one_value("net 10.0.0.0/8", AL_MASK_DET_IP_ADDRESS, "10.0.0.0");
    one_value("255.255.255.255", AL_MASK_DET_IP_ADDRESS, "255.255.255.255");
    one_value("lo ::1", AL_MASK_DET_IP_ADDRESS, "::1");
    one_value("fe80::1%eth0", AL_MASK_DET_IP_ADDRESS, "fe80::1");
    one_value("2001:db8::8a2e:370:7334", AL_MASK_DET_IP_ADDRESS, "2001:db8::8a2e:370:7334");
    one_value("2001:0db8:85a3:0000:0000:8a2e:0370:7334", AL_MASK_DET_IP_ADDRESS,
              "2001:0db8:85a3:0000:0000:8a2e:0370:7334");
    one_value("[2001:db8::1]:443", AL_MASK_DET_IP_ADDRESS, "2001:db8::1");
    one_value("::ffff:192.0.2.1", AL_MASK_DET_IP_ADDRESS, "::ffff:192.0.2.1");
    one_value("addr fe80::a:b:", AL_MASK_DET_IP_ADDRESS, "fe80::a:b");
    no_value("999.1.1.1", AL_MASK_DET_IP_ADDRESS);
    no_value("256.1.1.1", AL_MASK_DET_IP_ADDRESS);
    no_value("version 1.2.3.4.5", AL_MASK_DET_IP_ADDRESS);
    no_value("1.2.3", AL_MASK_DET_IP_ADDRESS);
    no_value("01.2.3.4", AL_MASK_DET_IP_ADDRESS);       /* leading zero */
    no_value("v1.2.3.4", AL_MASK_DET_IP_ADDRESS);       /* glued to a word */
    no_value(".1.2.3.4", AL_MASK_DET_IP_ADDRESS);
    no_value("1.2.3.4.#", AL_MASK_DET_IP_ADDRESS);
    no_value("at 12:30:45", AL_MASK_DET_IP_ADDRESS);
    no_value("std::map<int>", AL_MASK_DET_IP_ADDRESS);
    no_value("Data::Dumper", AL_MASK_DET_IP_ADDRESS);
    no_value("mac 00:1a:2b:3c:4d:5e", AL_MASK_DET_IP_ADDRESS);
    no_value("a :: b", AL_MASK_DET_IP_ADDRESS);
    no_value("1:2:3:4:5:6:7:8:9", AL_MASK_DET_IP_ADDRESS); /* nine groups */
    no_value("2001:db8::1::2", AL_MASK_DET_IP_ADDRESS);   /* two "::" */
}

/* ---- JWT and bearer tokens ------------------------------------------------------------- */

#define RFC_JWT                                                                                \
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwi" \
    "aWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"

static void test_jwt(void **state)
{
    AL_UNUSED(state);
    one_value("token " RFC_JWT " end", AL_MASK_DET_JWT, RFC_JWT);
    one_value("{\"id_token\":\"" RFC_JWT "\"}", AL_MASK_DET_JWT, RFC_JWT);
    one_value("?t=" RFC_JWT "&x=1", AL_MASK_DET_JWT, RFC_JWT);
    /* alg none: empty signature, the trailing dot is part of it. */
    one_value("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0. ok", AL_MASK_DET_JWT,
              "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.");
    /* JWE compact, five parts, empty encrypted key (alg dir). */
    one_value("eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..aXY.Y2lwaGVy.dGFn", AL_MASK_DET_JWT,
              "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..aXY.Y2lwaGVy.dGFn");
    /* A header that names no "alg" is not a JOSE header. */
    no_value("eyJ0eXAiOiJKV1QiLCJraWQiOiJrMSJ9.eyJzdWIiOiJ4In0.c2ln", AL_MASK_DET_JWT);
    no_value("x" RFC_JWT, AL_MASK_DET_JWT);
    no_value("eyJhbGciOiJub25lIn0 alone", AL_MASK_DET_JWT);
}

static void test_bearer(void **state)
{
    AL_UNUSED(state);
    one_value("Authorization: Bearer abcDEF123456ghiJKL789", AL_MASK_DET_JWT,
              "abcDEF123456ghiJKL789");
    one_value("authorization: bearer  Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA==", AL_MASK_DET_JWT,
              "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA==");
    MASKS_TO(E, S, "Bearer abcDEF123456ghiJKL789", "Bearer #####################");
    no_value("send a bearer token issued by the IdP", AL_MASK_DET_JWT);
    no_value("Bearer abcdefghijklmnopqrstu", AL_MASK_DET_JWT);      /* one class, short */
    no_value("Bearer your-token-goes-here-0000", AL_MASK_DET_JWT); /* placeholder */
    no_value("Bearer aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1", AL_MASK_DET_JWT); /* entropy */
    no_value("xBearer abcDEF123456ghiJKL789", AL_MASK_DET_JWT);
}

/* ---- AWS -------------------------------------------------------------------------------------- */

static void test_aws(void **state)
{
    AL_UNUSED(state);
    one_value("key AKIAIOSFODNN7EXAMPLE,", AL_MASK_DET_AWS_KEY, "AKIAIOSFODNN7EXAMPLE");
    one_value("ASIAY34FZKBOKMUTVV7A", AL_MASK_DET_AWS_KEY, "ASIAY34FZKBOKMUTVV7A");
    one_value("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
              AL_MASK_DET_AWS_KEY, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    one_value("{\"SecretAccessKey\": \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\"}",
              AL_MASK_DET_AWS_KEY, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    one_value("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
              AL_MASK_DET_AWS_KEY, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    no_value("AKIAIOSFODNN7EXAMPL", AL_MASK_DET_AWS_KEY);    /* 19 */
    no_value("XAKIAIOSFODNN7EXAMPLE", AL_MASK_DET_AWS_KEY);  /* glued */
    no_value("AKIAIOSFODNN7EXAMPLE2", AL_MASK_DET_AWS_KEY);
    no_value("AKIAiosfodnn7example", AL_MASK_DET_AWS_KEY);
    no_value("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKE",
             AL_MASK_DET_AWS_KEY); /* 39 */
    no_value("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEYS",
             AL_MASK_DET_AWS_KEY); /* 41 */
}

/* ---- PEM ---------------------------------------------------------------------------------- */

static void test_private_key(void **state)
{
    AL_UNUSED(state);
    const char *pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n"
                      "BKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n-----END PRIVATE KEY-----";
    char in[512];
    snprintf(in, sizeof in, "key:\n%s\nafter", pem);
    one_value(in, AL_MASK_DET_PRIVATE_KEY, pem);
    const char *rsa = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
                      "DEK-Info: AES-128-CBC,3F17F5316E2BAC89\n\nMIIEpAIBAAKCAQEA\n"
                      "-----END RSA PRIVATE KEY-----";
    one_value(rsa, AL_MASK_DET_PRIVATE_KEY, rsa);
    const char *esc = "-----BEGIN OPENSSH PRIVATE KEY-----\\nb3BlbnNzaC1rZXktdjEAAAAA\\n"
                      "-----END OPENSSH PRIVATE KEY-----\\n";
    snprintf(in, sizeof in, "{\"k\":\"%s\"}", esc);
    one_value(in, AL_MASK_DET_PRIVATE_KEY,
              "-----BEGIN OPENSSH PRIVATE KEY-----\\nb3BlbnNzaC1rZXktdjEAAAAA\\n"
              "-----END OPENSSH PRIVATE KEY-----");
    /* Truncated: masked over the body that is there. */
    one_value("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5C\n\"}",
              AL_MASK_DET_PRIVATE_KEY,
              "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5C\n");
    no_value("-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkq\n-----END PUBLIC KEY-----",
             AL_MASK_DET_PRIVATE_KEY);
    no_value("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
             AL_MASK_DET_PRIVATE_KEY);
}

/* ---- API keys ------------------------------------------------------------------------------ */

static void test_api_key(void **state)
{
    AL_UNUSED(state);
    const char *v = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";
    char in[256];
    static const char *const shapes[][2] = {
        {"{\"api_key\": \"", "\"}"}, {"API_KEY=", "\n"},        {"X-Api-Key: ", "\r\n"},
        {"?access_token=", "&x=1"},  {"'secret' => '", "'"},  {"client_secret: ", ""},
        {"{\"apiKey\":\"", "\"}"},   {"password = \"", "\";"}, {"auth-key:", ""},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(shapes); i++) {
        snprintf(in, sizeof in, "%s%s%s", shapes[i][0], v, shapes[i][1]);
        one_value(in, AL_MASK_DET_API_KEY, v);
    }
    no_value("{\"token_type\": \"Bearer\"}", AL_MASK_DET_API_KEY);
    no_value("{\"password_reset_required\": true}", AL_MASK_DET_API_KEY);
    no_value("{\"api_key\": \"your-api-key-here-please\"}", AL_MASK_DET_API_KEY);
    no_value("token=refresh_token_expired_now", AL_MASK_DET_API_KEY);
    no_value("\"token_url\": \"https://login.example.com/oauth2/v2.0/token\"",
             AL_MASK_DET_API_KEY);
    no_value("\"tokens\": 1234567890123456789", AL_MASK_DET_API_KEY);
    no_value("password=hunter2", AL_MASK_DET_API_KEY); /* short: see docs */
    no_value("api_key=sk_live_4eC39HqLyjWDarjtT1zdp7dc#x", AL_MASK_DET_API_KEY);
    no_value("secret: {\"nested\": 1}", AL_MASK_DET_API_KEY);
    /* Timestamps after key-like names (found by the accuracy corpus). */
    no_value("{\"reset_password_sent_at\": \"2024-12-13T17:58:07.264Z\"}", AL_MASK_DET_API_KEY);
    no_value("token_expires_at=2024-12-13T17:58:07+01:00", AL_MASK_DET_API_KEY);
    one_value("token=2024T12Z13abcdefGHIJ5678", AL_MASK_DET_API_KEY, "2024T12Z13abcdefGHIJ5678");
    /* ARNs, URNs and file paths are identifiers (found by the accuracy corpus). */
    no_value("\"SecretArn\": \"arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf\"",
             AL_MASK_DET_API_KEY);
    no_value("arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf", AL_MASK_DET_API_KEY);
    no_value("token_issuer=urn:example:session:9f1c2a7e-0b7c-4a8e-9d1e-2f3a4b5c6d7e",
             AL_MASK_DET_API_KEY);
    no_value("private_key_path: /etc/ssl/private/site-2024.key", AL_MASK_DET_API_KEY);
    no_value("credentials_file: ~/.aws/credentials_prod2", AL_MASK_DET_API_KEY);
    no_value("SECRET_FILE=./run/secrets/app_secret_v2", AL_MASK_DET_API_KEY);
    /* A base64 secret may start with '/' (no '.', '-' or '_' in base64). */
    one_value("secret=/9j4+Ab/cDe7fGh/iJk2LmNoPq", AL_MASK_DET_API_KEY, "/9j4+Ab/cDe7fGh/iJk2LmNoPq");
    one_value("secret=/9j4Ab/cDe7fGh/iJk2LmNoPq", AL_MASK_DET_API_KEY, "/9j4Ab/cDe7fGh/iJk2LmNoPq");
}

/* ---- custom ------------------------------------------------------------------------------- */

static void test_custom(void **state)
{
    AL_UNUSED(state);
    size_t n;
    kinds_in(E, S, "acct ACCT-123456 and ACCT-12345");
    const al_mask_match_t *m = al_mask_scratch_matches(S, &n);
    assert_int_equal(n, 1);
    assert_int_equal(m[0].det, AL_MASK_DET_CUSTOM);
    assert_string_equal(al_mask_engine_rule_name(E, m[0].rule), "acct");
    assert_int_equal(m[0].start, 5);
    assert_int_equal(m[0].end, 16);
    MASKS_TO(E, S, "acct ACCT-123456 and ACCT-12345", "acct ########### and ACCT-12345");
}

/* ---- text without values ------------------------------------------------------------------ */

static void test_plain_text(void **state)
{
    AL_UNUSED(state);
    static const char *const lines[] = {
        "2024-01-15T10:30:00.123Z INFO request id=9f1c2a7e status=200 bytes=5123 took 12.5ms",
        "The quick brown fox jumps over the lazy dog 1234 times in 2023.",
        "build 1.2.3.4.5 on host-07 (x86_64), 16 GiB, pid 31337, uid 1000",
        "SELECT id, name FROM users WHERE created_at > '2024-01-01' LIMIT 100;",
        "price: 1,234.56 EUR; qty 12; sku AB-1234-XY; tracking 1Z999AA10123456784",
        "uuid 123e4567-e89b-12d3-a456-426614174000 sha d2c5a4f9e8b7c6d5",
        "",
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(lines); i++)
        UNTOUCHED(E, S, lines[i]);
}

/* ---- validators ----------------------------------------------------------------------------- */

static void test_validators(void **state)
{
    AL_UNUSED(state);
    assert_true(al__mask_luhn((const uint8_t *)"79927398713", 11)); /* ISO/IEC 7812-1 example */
    assert_false(al__mask_luhn((const uint8_t *)"79927398710", 11));
    assert_false(al__mask_luhn((const uint8_t *)"", 0));
    assert_true(al__mask_card_iin((const uint8_t *)"4111111111111111", 16));
    assert_false(al__mask_card_iin((const uint8_t *)"411111111111111", 15)); /* Visa not 15 */
    assert_false(al__mask_card_iin((const uint8_t *)"1234567812345670", 16));
    assert_true(al__mask_gtin13_ok((const uint8_t *)"4006381333931")); /* GS1 example */
    assert_false(al__mask_gtin13_ok((const uint8_t *)"4006381333932"));
    assert_false(al__mask_gtin13_ok((const uint8_t *)"4222222222222"));
    assert_true(al__mask_ssn_ok((const uint8_t *)"123", (const uint8_t *)"45",
                                (const uint8_t *)"6789"));
    assert_false(al__mask_ssn_ok((const uint8_t *)"666", (const uint8_t *)"45",
                                 (const uint8_t *)"6789"));
    assert_true(al__mask_iban_ok((const uint8_t *)"GB82WEST12345698765432", 22));
    assert_false(al__mask_iban_ok((const uint8_t *)"GB82WEST12345698765433", 22));
    assert_false(al__mask_iban_ok((const uint8_t *)"GB82west12345698765432", 22));
    assert_true(al__mask_ipv4_ok((const uint8_t *)"0.0.0.0", 7));
    assert_false(al__mask_ipv4_ok((const uint8_t *)"1.2.3.04", 8));
    assert_false(al__mask_ipv4_ok((const uint8_t *)"1.2.3.4.", 8));
    assert_true(al__mask_ipv6_ok((const uint8_t *)"::", 2) == false);
    assert_true(al__mask_ipv6_ok((const uint8_t *)"1::", 3));
    assert_true(al__mask_ipv6_ok((const uint8_t *)"1:2:3:4:5:6:7:8", 15));
    assert_false(al__mask_ipv6_ok((const uint8_t *)"1:2:3:4:5:6:7", 13));
    assert_false(al__mask_ipv6_ok((const uint8_t *)"12345::", 7));
    assert_true(al__mask_ipv6_ok((const uint8_t *)"1:2:3:4:5:6:1.2.3.4", 19));
    assert_false(al__mask_ipv6_ok((const uint8_t *)"1:2:3:4:5:6:7:1.2.3.4", 21));
    assert_true(al__mask_entropy((const uint8_t *)"abcd", 4) == 2.0);
    assert_true(al__mask_entropy((const uint8_t *)"aaaa", 4) == 0.0);
    assert_true(al__mask_secret_value_ok((const uint8_t *)"sk_live_4eC39HqLyjWDarjtT1zdp7dc", 32));
    assert_false(al__mask_secret_value_ok((const uint8_t *)"sk_live_4eC39Hq#yjWDarjtT1zdp7dc", 32));
    assert_false(al__mask_is_value_char('#'));
    assert_true(al__mask_ssn_whole((const uint8_t *)"123456789", 9));
    assert_true(al__mask_ssn_whole((const uint8_t *)"123 45 6789", 11));
    assert_false(al__mask_ssn_whole((const uint8_t *)"900456789", 9));
    assert_false(al__mask_ssn_whole((const uint8_t *)"12345678", 8));
    assert_true(al__mask_aws_secret_whole((const uint8_t *)"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", 40));
}

/* The IBAN prefilter lists exactly the countries validate.c has lengths
 * for: a country missing from either would never be found. */
static void test_iban_countries(void **state)
{
    AL_UNUSED(state);
    const char *re = NULL;
    for (size_t k = 0; k < al__mask_n_patterns; k++)
        if (al__mask_patterns[k].det == AL_MASK_DET_IBAN)
            re = al__mask_patterns[k].re;
    assert_non_null(re);
    assert_int_equal(strncmp(re, "(?:", 3), 0);
    for (char a = 'A'; a <= 'Z'; a++) {
        for (char b = 'A'; b <= 'Z'; b++) {
            const uint8_t cc[2] = {(uint8_t)a, (uint8_t)b};
            bool listed = false;
            for (const char *q = re + 3; *q && *q != ')'; q += 3)
                listed |= q[0] == a && q[1] == b;
            if (listed != (al__mask_iban_country_len(cc) != 0))
                fail_msg("IBAN country %c%c: in prefilter %d, registered %d", a, b, listed,
                         al__mask_iban_country_len(cc) != 0);
        }
    }
}

static void test_column_kind(void **state)
{
    AL_UNUSED(state);
    assert_int_equal(al__mask_column_kind(AL_STR("ssn")), AL__MASK_COL_SSN);
    assert_int_equal(al__mask_column_kind(AL_STR("customer_SSN")), AL__MASK_COL_SSN);
    assert_int_equal(al__mask_column_kind(AL_STR("socialSecurityNumber")), AL__MASK_COL_SSN);
    assert_int_equal(al__mask_column_kind(AL_STR("classn")), AL__MASK_COL_NONE);
    assert_int_equal(al__mask_column_kind(AL_STR("lesson")), AL__MASK_COL_NONE);
    assert_int_equal(al__mask_column_kind(AL_STR("AWS_SECRET_ACCESS_KEY")), AL__MASK_COL_AWS_SECRET);
    assert_int_equal(al__mask_column_kind(AL_STR("user_password")), AL__MASK_COL_PASSWORD);
    assert_int_equal(al__mask_column_kind(AL_STR("pwd")), AL__MASK_COL_PASSWORD);
    assert_int_equal(al__mask_column_kind(AL_STR("password_set")), AL__MASK_COL_NONE);
    assert_int_equal(al__mask_column_kind(AL_STR("api_key")), AL__MASK_COL_SECRET);
    assert_int_equal(al__mask_column_kind(AL_STR("refreshToken")), AL__MASK_COL_SECRET);
    assert_int_equal(al__mask_column_kind(AL_STR("token_expires_at")), AL__MASK_COL_NONE);
    assert_int_equal(al__mask_column_kind(AL_STR("")), AL__MASK_COL_NONE);
    assert_true(al__mask_glob("*_ssn", AL_STR("Customer_SSN")));
    assert_true(al__mask_glob("card?number", AL_STR("card_number")));
    assert_true(al__mask_glob("users.*", AL_STR("users.email")));
    assert_true(al__mask_glob("*", AL_STR("")));
    assert_false(al__mask_glob("*_ssn", AL_STR("ssn_hash")));
    assert_false(al__mask_glob("card?number", AL_STR("cardnumber")));
    assert_true(al__mask_glob("a*b*c", AL_STR("aXbYbZc")));
    assert_false(al__mask_glob("a*b*c", AL_STR("aXbYbZ")));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_card_positive), cmocka_unit_test(test_card_negative),
        cmocka_unit_test(test_ssn),           cmocka_unit_test(test_email),
        cmocka_unit_test(test_phone_positive), cmocka_unit_test(test_phone_negative),
        cmocka_unit_test(test_iban),          cmocka_unit_test(test_ip),
        cmocka_unit_test(test_jwt),           cmocka_unit_test(test_bearer),
        cmocka_unit_test(test_aws),           cmocka_unit_test(test_private_key),
        cmocka_unit_test(test_api_key),       cmocka_unit_test(test_custom),
        cmocka_unit_test(test_plain_text),    cmocka_unit_test(test_validators),
        cmocka_unit_test(test_iban_countries), cmocka_unit_test(test_column_kind),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
