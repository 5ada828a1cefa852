/* test_approvals_notify.c - webhook notifications of new approval requests
 * (src/approvals/notify.c) against a real HTTP server on loopback: a tiny
 * one-thread HTTP/1.1 server that records each request and answers with a
 * scripted status. Covers the body, the Slack text, secret headers and URL
 * from the environment, the rule's webhook over the global one, retries
 * with backoff, giving up, and that no secret reaches the log. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "approvals_test.h"

#define T0 1700000000.0
#define MAX_REQS 16

/* ---- the server ------------------------------------------------------------------------ */

typedef struct hreq {
    char head[4096]; /* request line and headers */
    char *body;
} hreq_t;

typedef struct srv {
    int fd, port;
    pthread_t th;
    pthread_mutex_t mu;
    volatile bool stop;
    int statuses[MAX_REQS]; /* answer to request i; 0 = 200 */
    hreq_t reqs[MAX_REQS];
    int n;
} srv_t;

static void srv_handle(srv_t *s, int c)
{
    char buf[65536];
    size_t len = 0;
    char *end = NULL;
    while (!end && len < sizeof buf - 1) {
        struct pollfd p = {c, POLLIN, 0};
        if (poll(&p, 1, 5000) <= 0)
            return;
        ssize_t r = read(c, buf + len, sizeof buf - 1 - len);
        if (r <= 0)
            return;
        len += (size_t)r;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    if (!end)
        return;
    size_t hlen = (size_t)(end - buf) + 4;
    size_t clen = 0;
    for (char *h = buf; h && h < end; h = strstr(h, "\r\n") ? strstr(h, "\r\n") + 2 : NULL)
        if (!strncasecmp(h, "content-length:", 15))
            clen = strtoul(h + 15, NULL, 10);
    while (len < hlen + clen && len < sizeof buf - 1) {
        struct pollfd p = {c, POLLIN, 0};
        if (poll(&p, 1, 5000) <= 0)
            return;
        ssize_t r = read(c, buf + len, sizeof buf - 1 - len);
        if (r <= 0)
            return;
        len += (size_t)r;
    }
    pthread_mutex_lock(&s->mu);
    int i = s->n < MAX_REQS ? s->n++ : -1;
    int status = i >= 0 && s->statuses[i] ? s->statuses[i] : 200;
    if (i >= 0) {
        snprintf(s->reqs[i].head, sizeof s->reqs[i].head, "%.*s", (int)hlen, buf);
        s->reqs[i].body = strndup(buf + hlen, clen);
    }
    pthread_mutex_unlock(&s->mu);
    char out[128];
    int n = snprintf(out, sizeof out,
                     "HTTP/1.1 %d X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                     status);
    if (write(c, out, (size_t)n) < 0)
        return;
}

static void *srv_run(void *arg)
{
    srv_t *s = arg;
    while (!s->stop) {
        struct pollfd p = {s->fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            continue;
        srv_handle(s, c);
        close(c);
    }
    return NULL;
}

static void srv_start(srv_t *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s->fd, 16), 0);
    socklen_t al = sizeof a;
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &al), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->th, NULL, srv_run, s), 0);
}

static void srv_stop(srv_t *s)
{
    s->stop = true;
    pthread_join(s->th, NULL);
    close(s->fd);
    for (int i = 0; i < s->n; i++)
        free(s->reqs[i].body);
    pthread_mutex_destroy(&s->mu);
}

static int srv_count(srv_t *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->n;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Waits (generously) until cond(a) holds. */
static bool wait_for(bool (*cond)(void *), void *arg)
{
    for (int i = 0; i < 2000; i++) {
        if (cond(arg))
            return true;
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    return cond(arg);
}

typedef struct want {
    al_approvals_t *a;
    uint64_t sent, failed;
} want_t;

static bool stats_reached(void *arg)
{
    want_t *w = arg;
    al_approvals_notify_stats_t st;
    al_approvals_notify_stats(w->a, &st);
    return st.sent >= w->sent && st.failed >= w->failed;
}

/* ---- stderr capture (the log) ------------------------------------------------------------- */

typedef struct cap {
    char path[128];
    int saved;
} cap_t;

static void cap_start(cap_t *c)
{
    snprintf(c->path, sizeof c->path, "/tmp/al-appr-log-XXXXXX");
    int fd = mkstemp(c->path);
    assert_true(fd >= 0);
    c->saved = dup(2);
    dup2(fd, 2);
    close(fd);
}

static char *cap_end(cap_t *c)
{
    dup2(c->saved, 2);
    close(c->saved);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(al_read_file(c->path, 1 << 20, &data, &len), AL_OK);
    unlink(c->path);
    return data;
}

/* ---- tests ------------------------------------------------------------------------------ */

static al_approval_req_t req(const fx_t *f, const char *rule, const char *action)
{
    const al_policy_conf_t *r = fx_rule(f, rule);
    return (al_approval_req_t){
        .agent = "migrator", .owner = "R&D <data>", .subject = "sub-m", .issuer = "iss",
        .target = "orders-db", .protocol = "postgres", .action = al_str_c(action), .rule = r,
        .mode = r->mode, .session_id = "s1",
    };
}

static void test_slack_body_and_secrets(void **state)
{
    (void)state;
    srv_t global, rule;
    srv_start(&global);
    srv_start(&rule);
    fx_t f = {0};
    fx_dir(&f);
    char url[128], y[2048];
    /* The URL comes from the environment (a secret), with a query. */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hook/s3cr3t-path?k=1", rule.port);
    setenv("AL_TEST_HOOK_URL", url, 1);
    setenv("AL_TEST_HOOK_TOKEN", "Bearer tok-very-secret", 1);
    snprintf(y, sizeof y,
             "server: { data_dir: \"@DIR@\" }\n"
             "approvals:\n"
             "  public_url: https://airlock.example.com/\n"
             "  webhook: { url: 'http://127.0.0.1:%d/global' }\n"
             "policies:\n"
             "  - { name: plain, who: ['*'], targets: ['*'], action: approve,\n"
             "      approvers: [dba] }\n"
             "  - name: slacky\n"
             "    who: ['*']\n"
             "    targets: ['*']\n"
             "    action: approve\n"
             "    approvers: [dba, sec]\n"
             "    min_approvals: 2\n"
             "    webhook:\n"
             "      url_env: AL_TEST_HOOK_URL\n"
             "      slack: true\n"
             "      headers: { Authorization: { env: AL_TEST_HOOK_TOKEN } }\n",
             global.port);
    f.cfg = fx_config(&f, y);
    cap_t cap;
    cap_start(&cap);
    fx_open_at(&f, T0, 0.01);

    al_approval_req_t r = req(&f, "slacky", "UPDATE t SET a = 1 WHERE b < 2 AND `c` & d");
    al_approval_created_t c;
    assert_int_equal(al_approvals_create(f.a, &r, T0, &c), AL_APPR_OK);
    r = req(&f, "plain", "DROP TABLE t");
    al_approval_created_t c2;
    assert_int_equal(al_approvals_create(f.a, &r, T0, &c2), AL_APPR_OK);
    want_t w = {f.a, 2, 0};
    bool done = wait_for(stats_reached, &w);
    fx_done(&f); /* stops the notifier: nothing more arrives */
    char *log = cap_end(&cap);
    assert_true(done);

    /* The rule's webhook got its request, the global one the other. */
    assert_int_equal(srv_count(&rule), 1);
    assert_int_equal(srv_count(&global), 1);
    hreq_t *h = &rule.reqs[0];
    assert_true(!strncmp(h->head, "POST /hook/s3cr3t-path?k=1 HTTP/1.1\r\n", 37));
    assert_non_null(strcasestr(h->head, "\r\nAuthorization: Bearer tok-very-secret\r\n"));
    assert_non_null(strcasestr(h->head, "\r\nContent-Type: application/json\r\n"));
    json_t *o = json_loads(h->body, 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "id")), c.id);
    assert_string_equal(json_string_value(json_object_get(o, "agent")), "migrator");
    assert_string_equal(json_string_value(json_object_get(o, "owner")), "R&D <data>");
    assert_string_equal(json_string_value(json_object_get(o, "target")), "orders-db");
    assert_string_equal(json_string_value(json_object_get(o, "protocol")), "postgres");
    assert_string_equal(json_string_value(json_object_get(o, "action")),
                        "UPDATE t SET a = 1 WHERE b < 2 AND `c` & d");
    assert_string_equal(json_string_value(json_object_get(o, "rule")), "slacky");
    assert_string_equal(json_string_value(json_object_get(o, "requested_at")),
                        "2023-11-14T22:13:20.000Z");
    assert_string_equal(json_string_value(json_object_get(o, "expires_at")),
                        "2023-11-14T22:18:20.000Z");
    assert_int_equal(json_integer_value(json_object_get(o, "min_approvals")), 2);
    assert_int_equal(json_array_size(json_object_get(o, "approvers")), 2);
    char au[256];
    snprintf(au, sizeof au, "https://airlock.example.com/v1/approvals/%s", c.id);
    assert_string_equal(json_string_value(json_object_get(o, "approve_url")), au);
    const char *text = json_string_value(json_object_get(o, "text"));
    assert_non_null(text);
    /* Slack escaping: entities, and no backtick inside the code block. */
    assert_non_null(strstr(text, "R&amp;D &lt;data&gt;"));
    assert_non_null(strstr(text, "WHERE b &lt; 2 AND \xcb\x8b" "c\xcb\x8b &amp; d"));
    assert_non_null(strstr(text, c.id));
    assert_non_null(strstr(text, au));
    json_decref(o);

    /* The plain webhook: no text field. */
    o = json_loads(global.reqs[0].body, 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "id")), c2.id);
    assert_null(json_object_get(o, "text"));
    json_decref(o);

    /* Logged as sent, by id and host; never the URL path or the token. */
    assert_non_null(strstr(log, "approval notification sent"));
    assert_null(strstr(log, "s3cr3t-path"));
    assert_null(strstr(log, "tok-very-secret"));
    free(log);
    unsetenv("AL_TEST_HOOK_URL");
    unsetenv("AL_TEST_HOOK_TOKEN");
    srv_stop(&global);
    srv_stop(&rule);
}

static void test_retries_then_success(void **state)
{
    (void)state;
    srv_t s;
    srv_start(&s);
    s.statuses[0] = 503;
    s.statuses[1] = 500;
    fx_t f = {0};
    fx_dir(&f);
    char y[1024];
    snprintf(y, sizeof y,
             "server: { data_dir: \"@DIR@\" }\n"
             "approvals: { webhook: { url: 'http://127.0.0.1:%d/h', tries: 3 } }\n"
             "policies:\n"
             "  - { name: p, who: ['*'], targets: ['*'], action: approve, approvers: [dba] }\n",
             s.port);
    f.cfg = fx_config(&f, y);
    fx_open_at(&f, T0, 0.01);
    al_approval_req_t r = req(&f, "p", "DROP TABLE t");
    al_approval_created_t c;
    assert_int_equal(al_approvals_create(f.a, &r, T0, &c), AL_APPR_OK);
    want_t w = {f.a, 1, 0};
    assert_true(wait_for(stats_reached, &w));
    al_approvals_notify_stats_t st;
    al_approvals_notify_stats(f.a, &st);
    assert_int_equal(st.sent, 1);
    assert_int_equal(st.retries, 2);
    assert_int_equal(st.failed, 0);
    assert_int_equal(srv_count(&s), 3);
    fx_done(&f);
    srv_stop(&s);
}

static void test_gives_up_and_never_approves(void **state)
{
    (void)state;
    srv_t s;
    srv_start(&s);
    for (int i = 0; i < MAX_REQS; i++)
        s.statuses[i] = 500;
    fx_t f = {0};
    fx_dir(&f);
    char y[1024];
    snprintf(y, sizeof y,
             "server: { data_dir: \"@DIR@\" }\n"
             "approvals: { webhook: { url: 'http://127.0.0.1:%d/h' } }\n"
             "policies:\n"
             "  - { name: p, who: ['*'], targets: ['*'], action: approve, approvers: [dba] }\n",
             s.port);
    f.cfg = fx_config(&f, y);
    cap_t cap;
    cap_start(&cap);
    fx_open_at(&f, T0, 0.01);
    al_approval_req_t r = req(&f, "p", "DROP TABLE t");
    al_approval_created_t c;
    assert_int_equal(al_approvals_create(f.a, &r, T0, &c), AL_APPR_OK);
    want_t w = {f.a, 0, 1};
    bool done = wait_for(stats_reached, &w);
    al_approvals_notify_stats_t st;
    al_approvals_notify_stats(f.a, &st);
    al_approval_state_t state_now;
    assert_int_equal(al_approvals_status(f.a, c.id, &state_now, NULL, 0), AL_APPR_OK);
    al_grant_query_t q = {.agent = "migrator", .target = "orders-db",
                          .fingerprint = c.fingerprint};
    al_grant_check_t g = al_approvals_check(f.a, &q, T0 + 1, NULL);
    fx_done(&f);
    char *log = cap_end(&cap);
    assert_true(done);
    assert_int_equal(st.failed, 1);
    assert_int_equal(st.sent, 0);
    assert_int_equal(st.retries, 2);
    assert_int_equal(srv_count(&s), 3); /* the default: 3 tries */
    assert_int_equal(state_now, AL_APPROVAL_PENDING);
    assert_int_equal(g, AL_GRANT_NONE);
    assert_non_null(strstr(log, "approval notification given up"));
    assert_non_null(strstr(log, "HTTP 500"));
    free(log);
    srv_stop(&s);
}

static void test_unset_url_env(void **state)
{
    (void)state;
    fx_t f = {0};
    fx_dir(&f);
    unsetenv("AL_TEST_NO_SUCH_URL");
    f.cfg = fx_config(&f,
                      "server: { data_dir: \"@DIR@\" }\n"
                      "approvals: { webhook: { url_env: AL_TEST_NO_SUCH_URL, tries: 2 } }\n"
                      "policies:\n"
                      "  - { name: p, who: ['*'], targets: ['*'], action: approve,\n"
                      "      approvers: [dba] }\n");
    cap_t cap;
    cap_start(&cap);
    fx_open_at(&f, T0, 0.01);
    al_approval_req_t r = req(&f, "p", "DROP TABLE t");
    al_approval_created_t c;
    assert_int_equal(al_approvals_create(f.a, &r, T0, &c), AL_APPR_OK);
    want_t w = {f.a, 0, 1};
    bool done = wait_for(stats_reached, &w);
    fx_done(&f);
    char *log = cap_end(&cap);
    assert_true(done);
    assert_non_null(strstr(log, "AL_TEST_NO_SUCH_URL is not set"));
    free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slack_body_and_secrets),
        cmocka_unit_test(test_retries_then_success),
        cmocka_unit_test(test_gives_up_and_never_approves),
        cmocka_unit_test(test_unset_url_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
