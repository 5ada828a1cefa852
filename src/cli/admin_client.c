/*
 * admin_client.c - HTTP/1.1 to the admin API over libcurl, for the CLI.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include <curl/curl.h>

#include "cli/admin_client.h"
#include "cli/cli.h"

#define MAX_ANSWER (64 * 1024 * 1024)

void al_admin_client_init(al_admin_client_t *c, const char *prog)
{
    memset(c, 0, sizeof *c);
    c->prog = prog;
}

int al_admin_client_opt(al_admin_client_t *c, int argc, char **argv, int *i)
{
    const char *s = argv[*i];
    const char **slot = NULL;
    if (!strcmp(s, "--json")) {
        c->json = true;
        return 1;
    }
    if (!strcmp(s, "-c") || !strcmp(s, "--config"))
        slot = &c->cfg_path;
    else if (!strcmp(s, "--server"))
        slot = &c->server;
    else if (!strcmp(s, "--token-file"))
        slot = &c->token_file;
    if (!slot)
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "%s: %s needs a value\n", c->prog, s);
        return -1;
    }
    *slot = argv[++*i];
    return 1;
}

/* "host:port" from server.admin_listen -> a URL a client can reach: a
 * wildcard bind is reached on loopback. */
static char *url_of_listen(const char *listen)
{
    const char *colon = strrchr(listen, ':');
    if (!colon)
        return NULL;
    char host[256];
    size_t hl = (size_t)(colon - listen);
    if (hl >= sizeof host)
        return NULL;
    memcpy(host, listen, hl);
    host[hl] = 0;
    if (!strcmp(host, "0.0.0.0") || !hl)
        snprintf(host, sizeof host, "127.0.0.1");
    else if (!strcmp(host, "[::]"))
        snprintf(host, sizeof host, "[::1]");
    al_buf_t b;
    al_buf_init(&b);
    al_buf_printf(&b, "http://%s:%s", host, colon + 1);
    return b.p;
}

int al_admin_client_open(al_admin_client_t *c)
{
    char tokpath[4096] = "";
    if (c->token_file)
        snprintf(tokpath, sizeof tokpath, "%s", c->token_file);
    if (c->server) {
        if (strncmp(c->server, "http://", 7) && strncmp(c->server, "https://", 8)) {
            fprintf(stderr, "%s: --server wants a URL such as http://127.0.0.1:7480\n", c->prog);
            return AL_EXIT_USAGE;
        }
        c->base = al_xstrdup(c->server);
        size_t n = strlen(c->base);
        while (n > 8 && c->base[n - 1] == '/')
            c->base[--n] = 0;
    }
    if (c->cfg_path && (!c->base || !tokpath[0])) {
        al_config_t *cfg = al_cli_load_config(c->cfg_path);
        if (!cfg)
            return AL_EXIT_USAGE;
        if (!c->base && !(c->base = url_of_listen(cfg->server.admin_listen))) {
            fprintf(stderr, "%s: server.admin_listen '%s' is not host:port\n", c->prog,
                    cfg->server.admin_listen);
            al_config_free(cfg);
            return AL_EXIT_USAGE;
        }
        if (!tokpath[0])
            snprintf(tokpath, sizeof tokpath, "%s/admin-token", cfg->server.data_dir);
        al_config_free(cfg);
    }
    if (!c->base || !tokpath[0]) {
        fprintf(stderr, "%s: say which gateway: -c FILE, or --server URL --token-file PATH\n",
                c->prog);
        return AL_EXIT_USAGE;
    }
    if (al_read_file(tokpath, 64 * 1024, &c->token, &c->token_len) != AL_OK) {
        fprintf(stderr, "%s: cannot read the admin token %s: %s%s\n", c->prog, tokpath,
                strerror(errno),
                c->token_file ? "" : " (the gateway creates it at its first start; run as the "
                                     "user that runs it)");
        return AL_EXIT_USAGE;
    }
    while (c->token_len && strchr(" \t\r\n", c->token[c->token_len - 1]))
        c->token[--c->token_len] = 0;
    if (!c->token_len || memchr(c->token, '\n', c->token_len) ||
        memchr(c->token, '\r', c->token_len)) {
        fprintf(stderr, "%s: the token file %s must hold one token on one line\n", c->prog,
                tokpath);
        return AL_EXIT_USAGE;
    }
    return AL_EXIT_OK;
}

void al_admin_client_close(al_admin_client_t *c)
{
    if (c->token) {
        al_wipe(c->token, c->token_len);
        al_free(&c->token);
    }
    al_free(&c->base);
}

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
    al_buf_t *b = ud;
    size_t len = sz * n;
    if (b->len + len > MAX_ANSWER || al_buf_append(b, p, len) != AL_OK)
        return 0;
    return len;
}

int al_admin_call(al_admin_client_t *c, const char *method, const char *path, const char *body,
                  al_admin_resp_t *r)
{
    memset(r, 0, sizeof *r);
    al_buf_init(&r->body);
    static bool inited;
    if (!inited) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        inited = true;
    }
    al_buf_t url, auth;
    al_buf_init(&url);
    al_buf_init(&auth);
    al_buf_printf(&url, "%s%s", c->base, path);
    al_buf_puts(&auth, "Authorization: Bearer ");
    al_buf_append(&auth, c->token, c->token_len);
    al_buf_append(&auth, "", 1);
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    hdrs = curl_slist_append(hdrs, auth.p);
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    if (body)
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    char errbuf[CURL_ERROR_SIZE] = "";
    CURLcode rc = CURLE_OUT_OF_MEMORY;
    if (h && hdrs && !url.oom && !auth.oom) {
        curl_easy_setopt(h, CURLOPT_URL, url.p);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 60000L);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->body);
        if (body) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        } else if (!strcmp(method, "POST")) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
        }
        rc = curl_easy_perform(h);
        if (rc == CURLE_OK)
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    }
    curl_slist_free_all(hdrs);
    if (h)
        curl_easy_cleanup(h);
    al_wipe(auth.p, auth.len);
    al_buf_free(&auth);
    al_buf_free(&url);
    if (rc != CURLE_OK) {
        fprintf(stderr, "%s: cannot reach the gateway at %s: %s\n", c->prog, c->base,
                errbuf[0] ? errbuf : curl_easy_strerror(rc));
        return AL_EXIT_UNREACHABLE;
    }
    al_buf_append(&r->body, "", 1);
    r->body.len--;
    json_error_t je;
    r->json = json_loadb(r->body.p ? r->body.p : "", r->body.len, 0, &je);
    return AL_EXIT_OK;
}

void al_admin_resp_free(al_admin_resp_t *r)
{
    json_decref(r->json);
    r->json = NULL;
    al_buf_free(&r->body);
}

int al_admin_check(const al_admin_client_t *c, const al_admin_resp_t *r)
{
    if (r->status >= 200 && r->status < 300)
        return AL_EXIT_OK;
    const char *err = json_string_value(json_object_get(r->json, "error"));
    const char *detail = json_string_value(json_object_get(r->json, "detail"));
    const char *reason = json_string_value(json_object_get(r->json, "reason"));
    if (!detail)
        detail = reason;
    fprintf(stderr, "%s: refused by the gateway (%ld %s)%s%s\n", c->prog, r->status,
            err ? err : "error", detail ? ": " : "", detail ? detail : "");
    if (r->status == 401)
        fprintf(stderr, "%s: the token was not accepted; with -c the bootstrap token in "
                        "server.data_dir/admin-token is used\n", c->prog);
    if (c->json && r->body.len)
        printf("%s\n", r->body.p);
    return AL_EXIT_REFUSED;
}

void al_admin_path_seg(al_buf_t *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        /* RFC 3986 §2.3 unreserved characters pass */
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            al_buf_append(b, (const char *)&ch, 1);
        } else {
            char e[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            al_buf_append(b, e, 3);
        }
    }
}
