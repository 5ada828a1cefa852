/* fetch.c - JWKS / discovery fetches over libcurl, HTTPS unless loopback. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "identity/fetch.h"

static bool host_is_loopback(const char *h)
{
    if (!strcasecmp(h, "localhost"))
        return true;
    struct in_addr a4;
    if (inet_pton(AF_INET, h, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    char tmp[64];
    size_t n = strlen(h);
    if (n >= 2 && n < sizeof tmp && h[0] == '[' && h[n - 1] == ']') {
        memcpy(tmp, h + 1, n - 2);
        tmp[n - 2] = '\0';
        h = tmp;
    }
    struct in6_addr a6;
    return inet_pton(AF_INET6, h, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

bool al_url_allowed(const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    bool ok = false;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        if (!strcasecmp(scheme, "https"))
            ok = true;
        else if (!strcasecmp(scheme, "http"))
            ok = host_is_loopback(host);
    }
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return ok;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    al_fetch_result_t *r = ud;
    size_t len = size * n;
    if (r->body.len + len > AL_FETCH_MAX_BYTES || al_buf_append(&r->body, p, len) != AL_OK)
        return 0; /* aborts the transfer */
    return len;
}

/* RFC 9111 §5.2.2.1 max-age; no-store / no-cache count as 0. */
static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    al_fetch_result_t *r = ud;
    size_t len = size * n;
    if (len > 14 && !strncasecmp(p, "cache-control:", 14)) {
        char line[512];
        size_t l = AL_MIN(len, sizeof line - 1);
        memcpy(line, p, l);
        line[l] = '\0';
        for (char *c = line; *c; c++)
            *c = (char)((*c >= 'A' && *c <= 'Z') ? *c + 32 : *c);
        char *m = strstr(line, "max-age=");
        if (m)
            r->max_age = strtod(m + 8, NULL);
        if (strstr(line, "no-store") || strstr(line, "no-cache"))
            r->max_age = 0;
    }
    return len;
}

int al_fetch(const char *url, al_fetch_result_t *r)
{
    memset(r, 0, sizeof *r);
    r->max_age = -1;
    al_buf_init(&r->body);
    if (!al_url_allowed(url)) {
        snprintf(r->err, sizeof r->err, "refusing %s: https is required except for loopback", url);
        return AL_ERR;
    }
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(r->err, sizeof r->err, "curl_easy_init failed");
        return AL_ERR;
    }
    char ebuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "airlock/" AL_VERSION);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) {
        snprintf(r->err, sizeof r->err, "GET %s: %s", url,
                 rc == CURLE_WRITE_ERROR ? "response over 1 MiB" : (*ebuf ? ebuf : curl_easy_strerror(rc)));
        return AL_ERR;
    }
    if (r->status != 200) {
        snprintf(r->err, sizeof r->err, "GET %s: HTTP status %ld", url, r->status);
        return AL_ERR;
    }
    return AL_OK;
}

int al_oidc_discover(const char *issuer, char **jwks_uri, char *err, size_t errcap)
{
    al_buf_t url;
    al_buf_init(&url);
    size_t n = strlen(issuer);
    /* §4.1: the path is appended to the issuer, minus a trailing slash. */
    al_buf_append(&url, issuer, n && issuer[n - 1] == '/' ? n - 1 : n);
    al_buf_puts(&url, "/.well-known/openid-configuration");
    al_fetch_result_t r;
    int rc = al_fetch(url.p, &r);
    al_buf_free(&url);
    if (rc != AL_OK) {
        snprintf(err, errcap, "discovery: %s", r.err);
        al_buf_free(&r.body);
        return AL_ERR;
    }
    json_error_t je;
    json_t *doc = json_loadb(r.body.p, r.body.len, JSON_REJECT_DUPLICATES, &je);
    al_buf_free(&r.body);
    const char *iss = json_string_value(json_object_get(doc, "issuer"));
    const char *ju = json_string_value(json_object_get(doc, "jwks_uri"));
    rc = AL_ERR;
    if (!json_is_object(doc))
        snprintf(err, errcap, "discovery document is not a JSON object");
    else if (!iss || strcmp(iss, issuer))
        snprintf(err, errcap, "discovery document issuer does not equal the configured issuer exactly");
    else if (!ju)
        snprintf(err, errcap, "discovery document has no jwks_uri");
    else if (!al_url_allowed(ju))
        snprintf(err, errcap, "discovered jwks_uri must use https (http only for loopback)");
    else {
        *jwks_uri = al_xstrdup(ju);
        rc = AL_OK;
    }
    json_decref(doc);
    return rc;
}
