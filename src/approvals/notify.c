/*
 * notify.c - approval notifications: an HTTP POST of a JSON body to a
 * webhook, on one dedicated thread with a bounded queue.
 *
 * A notification only informs: whatever happens to it (queue full, URL
 * unset, connection refused, HTTP 500) is logged and counted, and never
 * changes a request. Each job is tried `tries` times; the delay before try
 * k+1 is backoff * 2^(k-1) (1s, 2s, ... by default). Any 2xx answer is
 * success (RFC 9110 §15.3); anything else, or no answer, is a failure.
 *
 * Secrets: the URL may be one (a Slack incoming webhook carries its key in
 * the path) and header values are (Authorization). They are read from
 * their env variable or file at each delivery, wiped after it, and never
 * logged: log lines name the request id, the host and the error only.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

#include "approvals/approvals_int.h"

#define URL_FILE_MAX 8192
#define ANSWER_MAX (64 * 1024) /* bytes of an answer we read (then discard) */

typedef struct job {
    struct job *next;
    char id[AL_APPROVAL_ID_SIZE];
    al_webhook_conf_t *w;
    char *body;
} job_t;

struct al__notify {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t th;
    job_t *head, *tail;
    size_t n, cap;
    bool stop;
    double backoff;
    al_approvals_notify_stats_t st;
};

/* ---- webhook conf copies ---------------------------------------------------------- */

static char *dup_or_null(const char *s) { return s ? al_xstrdup(s) : NULL; }

al_webhook_conf_t *al__webhook_dup(const al_webhook_conf_t *w)
{
    if (!w || !al_webhook_set(w))
        return NULL;
    al_webhook_conf_t *c = al_xcalloc(1, sizeof *c);
    c->url = dup_or_null(w->url);
    c->url_env = dup_or_null(w->url_env);
    c->url_file = dup_or_null(w->url_file);
    c->slack = w->slack;
    c->tries = w->tries > 0 ? w->tries : 3;
    c->timeout = w->timeout > 0 ? w->timeout : 10;
    if (w->n_headers) {
        c->headers = al_xcalloc(w->n_headers, sizeof *c->headers);
        c->n_headers = w->n_headers;
        for (size_t i = 0; i < w->n_headers; i++) {
            c->headers[i].name = dup_or_null(w->headers[i].name);
            c->headers[i].env = dup_or_null(w->headers[i].env);
            c->headers[i].file = dup_or_null(w->headers[i].file);
        }
    }
    return c;
}

void al__webhook_free(al_webhook_conf_t **pw)
{
    al_webhook_conf_t *w = *pw;
    if (!w)
        return;
    al_free(&w->url);
    al_free(&w->url_env);
    al_free(&w->url_file);
    for (size_t i = 0; i < w->n_headers; i++) {
        al_free(&w->headers[i].name);
        al_free(&w->headers[i].env);
        al_free(&w->headers[i].file);
    }
    al_free(&w->headers);
    al_free(pw);
}

static void job_free(job_t *j)
{
    al__webhook_free(&j->w);
    free(j->body);
    free(j);
}

/* ---- one delivery ---------------------------------------------------------------- */

/* A secret from env (its value) or file (its content without the trailing
 * line break). Heap copy, wipe before freeing; NULL with why. */
static char *read_secret(const char *env, const char *file, const char *what, char *why,
                         size_t cap)
{
    if (env) {
        const char *v = getenv(env);
        if (!v || !*v) {
            snprintf(why, cap, "%s: environment variable %s is not set", what, env);
            return NULL;
        }
        return al_strndup(v, strlen(v));
    }
    char *data = NULL;
    size_t len = 0;
    if (!file || al_read_file(file, URL_FILE_MAX, &data, &len) != AL_OK) {
        snprintf(why, cap, "%s: cannot read %s: %s", what, file ? file : "(none)",
                 strerror(errno));
        return NULL;
    }
    while (len && (data[len - 1] == '\n' || data[len - 1] == '\r'))
        data[--len] = '\0';
    return data;
}

static void secret_free(char **s)
{
    if (*s)
        al_wipe(*s, strlen(*s));
    al_free(s);
}

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

/* Checks url as the loader checks `url` (https, or http to loopback; no
 * userinfo) and writes its host into host. The URL itself is never put in
 * why: it may be the secret. */
static int check_url(const char *url, char *host, size_t hcap, char *why, size_t cap)
{
    for (const char *c = url; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f) {
            snprintf(why, cap, "webhook URL contains spaces or control bytes");
            return AL_ERR;
        }
    CURLU *u = curl_url();
    char *scheme = NULL, *h = NULL, *user = NULL;
    int rc = AL_ERR;
    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK) {
        snprintf(why, cap, "webhook URL does not parse");
    } else if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) {
        snprintf(why, cap, "webhook URL must not carry user:password@");
    } else if (strcasecmp(scheme, "https") &&
               (strcasecmp(scheme, "http") || !host_is_loopback(h))) {
        snprintf(why, cap, "webhook URL must use https (http only to loopback)");
    } else {
        snprintf(host, hcap, "%s", h);
        rc = AL_OK;
    }
    curl_free(scheme);
    curl_free(h);
    curl_free(user);
    curl_url_cleanup(u);
    return rc;
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    AL_UNUSED(p);
    size_t *total = ud;
    *total += size * n;
    return *total > ANSWER_MAX ? 0 : size * n;
}

/* One POST. AL_OK on 2xx; AL_ERR with why otherwise. host receives the
 * host for log lines ("?" until known). */
static int post_once(const al_webhook_conf_t *w, const char *body, char *host, size_t hcap,
                     char *why, size_t cap)
{
    snprintf(host, hcap, "?");
    char *url = w->url ? al_strndup(w->url, strlen(w->url))
                       : read_secret(w->url_env, w->url_file, "webhook url", why, cap);
    if (!url) {
        if (w->url)
            snprintf(why, cap, "out of memory");
        return AL_ERR;
    }
    int rc = AL_ERR;
    struct curl_slist *hdrs = NULL;
    CURL *c = NULL;
    if (check_url(url, host, hcap, why, cap) != AL_OK)
        goto out;
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    for (size_t i = 0; i < w->n_headers; i++) {
        const al_http_header_conf_t *h = &w->headers[i];
        char what[160];
        snprintf(what, sizeof what, "header %s", h->name);
        char *v = read_secret(h->env, h->file, what, why, cap);
        if (!v)
            goto out;
        bool bad = strpbrk(v, "\r\n") != NULL; /* RFC 9110 §5.5: no line breaks */
        al_buf_t line;
        al_buf_init(&line);
        al_buf_printf(&line, "%s: %s", h->name, v);
        secret_free(&v);
        struct curl_slist *nh = bad || line.oom ? NULL : curl_slist_append(hdrs, line.p);
        if (line.p)
            al_wipe(line.p, line.len);
        al_buf_free(&line);
        if (!nh) {
            snprintf(why, cap, "%s: %s", what, bad ? "value has a line break" : "out of memory");
            goto out;
        }
        hdrs = nh;
    }
    c = curl_easy_init();
    if (!c) {
        snprintf(why, cap, "curl_easy_init failed");
        goto out;
    }
    size_t answered = 0;
    long ms = (long)(w->timeout * 1000);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, AL_MIN(ms, 5000L));
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, ms);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "airlock/" AL_VERSION);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &answered);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (cc != CURLE_OK && !(cc == CURLE_WRITE_ERROR && status >= 200 && status < 300))
        /* curl_easy_strerror, not the error buffer: the latter may quote the URL. */
        snprintf(why, cap, "%s", curl_easy_strerror(cc));
    else if (status < 200 || status > 299)
        snprintf(why, cap, "HTTP %ld", status);
    else
        rc = AL_OK;
out:
    if (c)
        curl_easy_cleanup(c);
    /* The slist holds header values: wipe before freeing. */
    for (struct curl_slist *s = hdrs; s; s = s->next)
        al_wipe(s->data, strlen(s->data));
    curl_slist_free_all(hdrs);
    secret_free(&url);
    return rc;
}

/* ---- the thread -------------------------------------------------------------------- */

/* Sleeps up to secs unless stop is asked. Called and returns with mu held.
 * True when stopping. */
static bool nap(al__notify_t *n, double secs)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double t = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + secs;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    while (!n->stop && pthread_cond_timedwait(&n->cv, &n->mu, &ts) != ETIMEDOUT)
        ;
    return n->stop;
}

static void deliver(al__notify_t *n, job_t *j)
{
    char host[256], why[512], num[32], tries[32];
    int max = j->w->tries > 0 ? j->w->tries : 1;
    for (int k = 1; k <= max; k++) {
        why[0] = '\0';
        if (post_once(j->w, j->body, host, sizeof host, why, sizeof why) == AL_OK) {
            pthread_mutex_lock(&n->mu);
            n->st.sent++;
            pthread_mutex_unlock(&n->mu);
            al_log(AL_LOG_INFO, "approval notification sent", "approval_id", j->id, "host",
                   host, "attempt", al_log_num(num, k), NULL);
            return;
        }
        al_log(AL_LOG_WARN, "approval notification failed", "approval_id", j->id, "host", host,
               "attempt", al_log_num(num, k), "error", why, NULL);
        if (k == max)
            break;
        pthread_mutex_lock(&n->mu);
        n->st.retries++;
        bool stop = nap(n, n->backoff * (double)(1u << (k - 1)));
        pthread_mutex_unlock(&n->mu);
        if (stop)
            break;
    }
    pthread_mutex_lock(&n->mu);
    n->st.failed++;
    pthread_mutex_unlock(&n->mu);
    al_log(AL_LOG_ERROR, "approval notification given up", "approval_id", j->id, "host", host,
           "tries", al_log_num(tries, max), "error", why, NULL);
}

static void *run(void *arg)
{
    al__notify_t *n = arg;
    pthread_mutex_lock(&n->mu);
    for (;;) {
        while (!n->stop && !n->head)
            pthread_cond_wait(&n->cv, &n->mu);
        if (n->stop)
            break;
        job_t *j = n->head;
        n->head = j->next;
        if (!n->head)
            n->tail = NULL;
        n->n--;
        pthread_mutex_unlock(&n->mu);
        deliver(n, j);
        job_free(j);
        pthread_mutex_lock(&n->mu);
    }
    size_t dropped = 0;
    while (n->head) {
        job_t *j = n->head;
        n->head = j->next;
        job_free(j);
        dropped++;
    }
    n->tail = NULL;
    n->n = 0;
    n->st.dropped += dropped;
    pthread_mutex_unlock(&n->mu);
    if (dropped) {
        char num[32];
        al_log(AL_LOG_WARN, "approval notifications dropped at shutdown", "count",
               al_log_num(num, (int64_t)dropped), NULL);
    }
    return NULL;
}

al__notify_t *al__notify_start(size_t queue, double backoff)
{
    al__notify_t *n = al_xcalloc(1, sizeof *n);
    n->cap = queue ? queue : 1024;
    n->backoff = backoff > 0 ? backoff : 1.0;
    pthread_mutex_init(&n->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_cond_init(&n->cv, &ca); /* CLOCK_REALTIME, as nap() computes */
    pthread_condattr_destroy(&ca);
    int e = pthread_create(&n->th, NULL, run, n);
    if (e) {
        al_log(AL_LOG_ERROR, "cannot start the approval notifier", "error", strerror(e), NULL);
        pthread_cond_destroy(&n->cv);
        pthread_mutex_destroy(&n->mu);
        free(n);
        return NULL;
    }
    return n;
}

int al__notify_post(al__notify_t *n, const al_webhook_conf_t *w, const char *id, char *body)
{
    job_t *j = calloc(1, sizeof *j);
    if (!n || !j || !body) {
        free(j);
        free(body);
        if (n) {
            pthread_mutex_lock(&n->mu);
            n->st.dropped++;
            pthread_mutex_unlock(&n->mu);
        }
        al_log(AL_LOG_WARN, "approval notification dropped", "approval_id", id, "error",
               n ? "out of memory" : "no notifier", NULL);
        return AL_AGAIN;
    }
    snprintf(j->id, sizeof j->id, "%s", id);
    j->body = body;
    j->w = al__webhook_dup(w);
    pthread_mutex_lock(&n->mu);
    bool ok = !n->stop && n->n < n->cap && j->w;
    if (ok) {
        if (n->tail)
            n->tail->next = j;
        else
            n->head = j;
        n->tail = j;
        n->n++;
        n->st.queued++;
        pthread_cond_signal(&n->cv);
    } else {
        n->st.dropped++;
    }
    pthread_mutex_unlock(&n->mu);
    if (!ok) {
        al_log(AL_LOG_WARN, "approval notification dropped", "approval_id", id, "error",
               "queue full or closing", NULL);
        job_free(j);
        return AL_AGAIN;
    }
    return AL_OK;
}

void al__notify_stop(al__notify_t **pn)
{
    al__notify_t *n = *pn;
    if (!n)
        return;
    pthread_mutex_lock(&n->mu);
    n->stop = true;
    pthread_cond_broadcast(&n->cv);
    pthread_mutex_unlock(&n->mu);
    pthread_join(n->th, NULL);
    pthread_cond_destroy(&n->cv);
    pthread_mutex_destroy(&n->mu);
    al_free(pn);
}

void al__notify_stats(al__notify_t *n, al_approvals_notify_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if (!n)
        return;
    pthread_mutex_lock(&n->mu);
    *out = n->st;
    pthread_mutex_unlock(&n->mu);
}
