/* test_config.c - the YAML config loader (src/core/config*.c) and
 * `airlock check` (src/cli/cmd_check.c). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli/cli.h"
#include "core/config.h"

/* ---- helpers ------------------------------------------------------------------------ */

static al_config_t *load(const char *yaml, al_config_errors_t *e)
{
    return al_config_load_mem("t.yaml", yaml, strlen(yaml), e);
}

/* Loads yaml and asserts exactly the n messages in want, in order
 * (n == 0: the config must load). */
static void check_errs(const char *yaml, const char *const *want, size_t n)
{
    al_config_errors_t e;
    al_config_t *cfg = load(yaml, &e);
    bool same = e.n == n && (n == 0) == (cfg != NULL);
    for (size_t i = 0; same && i < n; i++)
        same = strcmp(e.msgs[i], want[i]) == 0;
    if (!same) {
        fprintf(stderr, "--- for:\n%s--- got %zu:\n", yaml, e.n);
        for (size_t i = 0; i < e.n; i++)
            fprintf(stderr, "  %s\n", e.msgs[i]);
        fprintf(stderr, "--- want %zu:\n", n);
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, "  %s\n", want[i]);
    }
    assert_int_equal(e.n, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(e.msgs[i], want[i]);
    if (n)
        assert_null(cfg);
    else
        assert_non_null(cfg);
    al_config_free(cfg);
    al_config_errors_free(&e);
}

#define ERRS(yaml, ...)                                                                     \
    do {                                                                                    \
        const char *const w_[] = {__VA_ARGS__};                                             \
        check_errs((yaml), w_, AL_ARRAY_LEN(w_));                                           \
    } while (0)
#define OK(yaml) check_errs((yaml), NULL, 0)

/* Loads yaml that must be valid. */
static al_config_t *load_ok(const char *yaml)
{
    check_errs(yaml, NULL, 0);
    al_config_errors_t e;
    al_config_t *cfg = load(yaml, &e);
    assert_non_null(cfg);
    return cfg;
}

static char *cwd_join(const char *rel)
{
    char *cwd = getcwd(NULL, 0);
    assert_non_null(cwd);
    size_t n = strlen(cwd) + strlen(rel) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", cwd, rel);
    free(cwd);
    return p;
}

/* Lines 1-4: a minimal valid issuer; its entry starts at 2:5. */
#define ISS                                                                                 \
    "issuers:\n"                                                                            \
    "  - name: entra\n"                                                                     \
    "    issuer: https://idp.example.com\n"                                                 \
    "    audience: api://airlock\n"

/* ---- defaults -------------------------------------------------------------------------- */

static void test_recordings(void **state)
{
    (void)state;
    al_config_t *c = load_ok("server: {}\n");
    assert_true(c->recordings.enabled);
    assert_true(c->recordings.retain == 90 * 86400.0);
    assert_true(c->recordings.max_bytes == 0);
    assert_int_equal(c->recordings.on_failure, 0);
    assert_int_equal(c->recordings.max_rows, 100);
    assert_int_equal(c->recordings.max_body_bytes, 65536);
    al_config_free(c);
    c = load_ok("recordings:\n  enabled: false\n  retain: 0\n  max_bytes: 50GiB\n"
                "  on_failure: continue\n  max_rows: 0\n  redact_headers: [X-Api-Key]\n");
    assert_false(c->recordings.enabled);
    assert_true(c->recordings.retain == 0);
    assert_true(c->recordings.max_bytes == 50.0 * 1073741824.0);
    assert_int_equal(c->recordings.on_failure, 1);
    assert_int_equal(c->recordings.n_redact_headers, 1);
    al_config_free(c);
    c = load_ok("recordings: { max_bytes: 1500, retain: 12h }\n");
    assert_true(c->recordings.max_bytes == 1500);
    assert_true(c->recordings.retain == 43200);
    al_config_free(c);
    c = load_ok("recordings: { max_bytes: 2MB }\n");
    assert_true(c->recordings.max_bytes == 2e6);
    al_config_free(c);
    static const char *const bad[] = {"-1", "1.5GB", "10 XB", "GB", "1e9", "99999999999999999999"};
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
        char y[128];
        snprintf(y, sizeof y, "recordings: { max_bytes: \"%s\" }\n", bad[i]);
        al_config_errors_t e;
        al_config_t *cfg = load(y, &e);
        assert_null(cfg);
        assert_int_equal(e.n, 1);
        assert_non_null(strstr(e.msgs[0], "recordings.max_bytes is not a size"));
        al_config_errors_free(&e);
    }
    al_config_errors_t e;
    assert_null(load("recordings: { on_failure: drop }\n", &e));
    assert_int_equal(e.n, 1);
    al_config_errors_free(&e);
    assert_null(load("recordings: { retain: forever }\n", &e));
    assert_int_equal(e.n, 1);
    al_config_errors_free(&e);
}

static void test_empty_file_defaults(void **state)
{
    static const char *const empties[] = {"", "\n", "# only a comment\n", "---\n", "~\n",
                                          "--- # c\n...\n"};
    char *var = cwd_join("var");
    for (size_t i = 0; i < AL_ARRAY_LEN(empties); i++) {
        al_config_t *cfg = load_ok(empties[i]);
        assert_string_equal(cfg->path, "t.yaml");
        assert_string_equal(cfg->server.admin_listen, "127.0.0.1:7480");
        assert_string_equal(cfg->server.data_dir, var);
        assert_int_equal(cfg->server.workers, 0);
        assert_true(cfg->server.drain_timeout == 30);
        assert_int_equal(cfg->server.log_level, AL_LOG_INFO);
        assert_false(cfg->dev_issuer);
        assert_true(cfg->dev_token_max_ttl == 3600);
        assert_int_equal(cfg->n_issuers, 0);
        assert_int_equal(cfg->n_agents, 0);
        assert_null(al_config_issuer(cfg, "entra"));
        assert_null(al_config_agent(cfg, "x"));
        al_config_free(cfg);
    }
    free(var);
}

static void test_empty_sections(void **state)
{
    al_config_t *cfg = load_ok("server:\nissuers:\nagents: []\n");
    assert_string_equal(cfg->server.admin_listen, "127.0.0.1:7480");
    assert_int_equal(cfg->n_issuers, 0);
    assert_int_equal(cfg->n_agents, 0);
    al_config_free(cfg);
}

static void test_issuer_defaults(void **state)
{
    al_config_t *cfg = load_ok("\n" ISS);
    assert_int_equal(cfg->n_issuers, 1);
    const al_issuer_conf_t *is = al_config_issuer(cfg, "entra");
    assert_ptr_equal(is, &cfg->issuers[0]);
    assert_string_equal(is->issuer, "https://idp.example.com");
    assert_int_equal(is->n_audiences, 1);
    assert_string_equal(is->audiences[0], "api://airlock");
    assert_null(is->jwks_uri);
    assert_null(is->jwks_file);
    assert_int_equal(is->algorithms, AL_ALG_ALL_ASYMMETRIC);
    assert_true(is->clock_skew == 60);
    assert_true(is->max_token_lifetime == 0);
    assert_true(is->jwks_max_staleness == 86400);
    assert_true(is->jwks_refresh_interval == 3600);
    assert_true(is->jwks_refetch_interval == 30);
    assert_string_equal(is->agent_claim, "azp");
    assert_string_equal(is->groups_claim, "groups");
    assert_null(is->tenant);
    assert_null(is->typ);
    assert_false(is->allow_unknown_agents);
    assert_int_equal(is->group_overage, AL_OVERAGE_DENY);
    assert_int_equal(is->line, 3);
    al_config_free(cfg);
}

static void test_full_example(void **state)
{
    al_config_errors_t e;
    al_config_t *cfg = al_config_load("tests/data/config/full.yaml", &e);
    for (size_t i = 0; i < e.n; i++)
        fprintf(stderr, "%s\n", e.msgs[i]);
    assert_non_null(cfg);
    assert_int_equal(e.n, 0);
    assert_string_equal(cfg->path, "tests/data/config/full.yaml");
    assert_string_equal(cfg->server.admin_listen, "127.0.0.1:7481");
    char *var = cwd_join("tests/data/config/var");
    char *jwks = cwd_join("tests/data/config/keys/jwks.json");
    assert_string_equal(cfg->server.data_dir, var);
    assert_int_equal(cfg->server.workers, 4);
    assert_true(cfg->server.drain_timeout == 45);
    assert_int_equal(cfg->server.log_level, AL_LOG_DEBUG);
    assert_true(cfg->dev_issuer);
    assert_true(cfg->dev_token_max_ttl == 7200);
    assert_int_equal(cfg->n_issuers, 2);
    assert_int_equal(cfg->n_agents, 3);

    const al_issuer_conf_t *en = al_config_issuer(cfg, "entra");
    assert_non_null(en);
    assert_int_equal(en->line, 13);
    assert_string_equal(en->issuer, "https://login.microsoftonline.com/"
                                     "11111111-2222-3333-4444-555555555555/v2.0");
    assert_int_equal(en->n_audiences, 2);
    assert_string_equal(en->audiences[0], "api://airlock");
    assert_string_equal(en->audiences[1], "api://airlock-staging");
    assert_string_equal(en->jwks_uri, "https://login.microsoftonline.com/"
                                       "11111111-2222-3333-4444-555555555555/discovery/v2.0/keys");
    assert_null(en->jwks_file);
    assert_int_equal(en->algorithms, AL_ALG_RS256 | AL_ALG_ES256);
    assert_true(en->clock_skew == 30);
    assert_true(en->max_token_lifetime == 3600);
    assert_true(en->jwks_max_staleness == 12 * 3600);
    assert_true(en->jwks_refresh_interval == 1800);
    assert_true(en->jwks_refetch_interval == 10);
    assert_string_equal(en->agent_claim, "azp");
    assert_string_equal(en->groups_claim, "roles");
    assert_string_equal(en->tenant, "11111111-2222-3333-4444-555555555555");
    assert_string_equal(en->typ, "at+jwt");
    assert_false(en->allow_unknown_agents);
    assert_int_equal(en->group_overage, AL_OVERAGE_IGNORE);

    const al_issuer_conf_t *lo = al_config_issuer(cfg, "local");
    assert_ptr_equal(lo, &cfg->issuers[1]);
    assert_int_equal(lo->n_audiences, 1);
    assert_string_equal(lo->audiences[0], "airlock");
    assert_null(lo->jwks_uri);
    assert_string_equal(lo->jwks_file, jwks);

    const al_agent_conf_t *bb = al_config_agent(cfg, "billing-bot");
    assert_ptr_equal(bb, &cfg->agents[0]);
    assert_string_equal(bb->issuer, "entra");
    assert_string_equal(bb->subject, "00000000-aaaa-bbbb-cccc-000000000001");
    assert_string_equal(bb->owner, "alice@example.com");
    assert_string_equal(bb->system, "billing");
    assert_int_equal(bb->n_groups, 2);
    assert_string_equal(bb->groups[0], "bots");
    assert_string_equal(bb->groups[1], "finance");
    assert_int_equal(bb->line, 35);
    const al_agent_conf_t *ci = al_config_agent(cfg, "ci-runner");
    assert_non_null(ci);
    assert_null(ci->system);
    assert_int_equal(ci->n_groups, 0);
    const al_agent_conf_t *dev = al_config_agent(cfg, "dev-agent");
    assert_string_equal(dev->issuer, AL_DEV_ISSUER_NAME);
    assert_null(al_config_agent(cfg, "nobody"));
    assert_null(al_config_issuer(cfg, "airlock-dev"));
    free(var);
    free(jwks);
    al_config_free(cfg);
}

/* ---- keys --------------------------------------------------------------------------------- */

static void test_unknown_key_examples_fixture(void **state)
{
    al_config_errors_t e;
    al_config_t *cfg = al_config_load("tests/data/config/examples.yaml", &e);
    assert_null(cfg);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.msgs[0], "tests/data/config/examples.yaml:4:5: unknown key "
                                   "'audiance' in issuers[0]; did you mean 'audience'?");
    assert_int_equal(e.read_errno, 0);
    al_config_errors_free(&e);
}

static void test_unknown_keys(void **state)
{
    ERRS("isuers: []\n", "t.yaml:1:1: unknown key 'isuers' in the config; did you mean "
                         "'issuers'?");
    ERRS("server:\n  worker: 2\n  bogus_key: 1\n",
         "t.yaml:2:3: unknown key 'worker' in server; did you mean 'workers'?",
         "t.yaml:3:3: unknown key 'bogus_key' in server; the keys allowed here are "
         "admin_listen, data_dir, workers, drain_timeout, log_level");
    /* short keys (<= 4 chars) get a suggestion only at distance 1 */
    ERRS(ISS "    tip: x\n    tpy: y\n",
         "t.yaml:5:5: unknown key 'tip' in issuers[0]; did you mean 'typ'?",
         "t.yaml:6:5: unknown key 'tpy' in issuers[0]; the keys allowed here are name, "
         "issuer, audience, jwks_uri, jwks_file, algorithms, clock_skew, max_token_lifetime, "
         "jwks_max_staleness, jwks_refresh_interval, jwks_refetch_interval, agent_claim, "
         "groups_claim, tenant, typ, allow_unknown_agents, group_overage");
    ERRS(ISS "agents:\n  - {name: a, issuer: entra, subject: s, owner: o, grups: [x]}\n",
         "t.yaml:6:52: unknown key 'grups' in agents[0]; did you mean 'groups'?");
}

static void test_duplicate_keys(void **state)
{
    ERRS("server:\n  workers: 2\n  workers: 3\n",
         "t.yaml:3:3: duplicate key 'workers' in server (first at line 2); keep one");
    ERRS("dev_issuer: true\ndev_issuer: false\n",
         "t.yaml:2:1: duplicate key 'dev_issuer' in the config (first at line 1); keep one");
    /* the first value wins for what follows: no extra errors about 'b' */
    ERRS(ISS "    name: other\n",
         "t.yaml:5:5: duplicate key 'name' in issuers[0] (first at line 2); keep one");
}

static void test_missing_required(void **state)
{
    ERRS("issuers:\n  - name: a\n",
         "t.yaml:2:5: missing required key 'issuer' in issuers[0]; add 'issuer: <the exact "
         "\"iss\" value of its tokens>'",
         "t.yaml:2:5: missing required key 'audience' in issuers[0]; add 'audience: <the "
         "\"aud\" value airlock's tokens carry>'");
    ERRS(ISS "agents:\n  - {name: bot, issuer: entra, subject: s}\n",
         "t.yaml:6:5: missing required key 'owner' in agents[0]; every agent needs an owner "
         "who answers for it; add 'owner: <email>'");
    ERRS(ISS "agents:\n  - owner: o\n",
         "t.yaml:6:5: missing required key 'name' in agents[0]; add 'name: <agent name>'",
         "t.yaml:6:5: missing required key 'issuer' in agents[0]; add 'issuer: <the name of "
         "an issuers[] entry>'",
         "t.yaml:6:5: missing required key 'subject' in agents[0]; add 'subject: <the \"sub\" "
         "of its tokens>'");
}

static void test_type_errors(void **state)
{
    ERRS("server: [a]\n", "t.yaml:1:9: server must be a mapping of keys, not a list");
    ERRS("issuers: {name: a}\n",
         "t.yaml:1:10: issuers must be a list; start each entry with '- ', not a mapping");
    ERRS("issuers:\n  - entra\n",
         "t.yaml:2:5: issuers[0] must be a mapping of keys (key: value), not a string");
    ERRS("issuers:\n  - name: a\n    issuer: {x: 1}\n    audience: [b, [c]]\n",
         "t.yaml:3:13: issuers[0].issuer must be a string, not a mapping",
         "t.yaml:4:19: issuers[0].audience[1] must be a string, not a list");
    ERRS("server:\n  data_dir: [a]\n  workers: {}\n",
         "t.yaml:2:13: server.data_dir must be a string, not a list",
         "t.yaml:3:12: server.workers must be 'auto' or an integer from 1 to 256, not a "
         "mapping");
    ERRS("dev_issuer: yes\n",
         "t.yaml:1:13: dev_issuer must be true or false (unquoted); got 'yes'");
    ERRS("dev_issuer: \"true\"\n",
         "t.yaml:1:13: dev_issuer must be true or false (unquoted); got 'true'");
    ERRS("dev_issuer: []\n", "t.yaml:1:13: dev_issuer must be true or false, not a list");
    ERRS(ISS "agents:\n  - {name: a, issuer: entra, subject: s, owner: o, groups: bots}\n",
         "t.yaml:6:60: agents[0].groups must be a list such as [a, b], not a string");
    ERRS("[a, b]\n", "t.yaml:1:1: the config must be a mapping of keys (server:, issuers:, "
                     "agents:, ...), not a list");
    ERRS("just text\n", "t.yaml:1:1: the config must be a mapping of keys (server:, issuers:, "
                        "agents:, ...), not a string");
}

static void test_empty_values(void **state)
{
    ERRS(ISS "    tenant:\n    typ: \"\"\n",
         "t.yaml:5:12: issuers[0].tenant is empty; give it a value or remove the key to use "
         "the default",
         "t.yaml:6:10: issuers[0].typ is empty; give it a value or remove it");
    ERRS("issuers:\n  - name: a\n    issuer: ~\n    audience: x\n",
         "t.yaml:3:13: issuers[0].issuer is empty; give it a value");
    ERRS(ISS "agents:\n  - {name: a, issuer: entra, subject: s, owner: o, groups: [x, '']}\n",
         "t.yaml:6:64: agents[0].groups[1] is empty; give it a value or remove it");
    /* a NUL byte would silently truncate a C string */
    ERRS("issuers:\n  - name: a\n    issuer: \"https://a\\0.evil\"\n    audience: x\n",
         "t.yaml:3:13: issuers[0].issuer contains a NUL byte; remove it");
}

static void test_names(void **state)
{
    ERRS("issuers:\n  - name: Entra\n    issuer: x\n    audience: y\n",
         "t.yaml:2:11: issuers[0].name 'Entra' is not a valid name; use lowercase letters, "
         "digits, '_', '.' and '-', starting with a letter or digit (e.g. 'billing-bot')");
    ERRS("issuers:\n  - name: -x\n    issuer: x\n    audience: y\n",
         "t.yaml:2:11: issuers[0].name '-x' is not a valid name; use lowercase letters, "
         "digits, '_', '.' and '-', starting with a letter or digit (e.g. 'billing-bot')");
    al_config_t *cfg = load_ok("issuers:\n  - name: 0a_b.c-d\n    issuer: x\n    audience: y\n");
    assert_non_null(al_config_issuer(cfg, "0a_b.c-d"));
    al_config_free(cfg);
    ERRS("issuers:\n  - name: airlock-dev\n    issuer: x\n    audience: y\n",
         "t.yaml:2:11: issuers[0].name 'airlock-dev' is reserved for the built-in dev issuer; "
         "pick another name (set 'dev_issuer: true' to trust the dev issuer)");
}

static void test_duplicate_names(void **state)
{
    ERRS(ISS "  - name: entra\n    issuer: b\n    audience: c\n"
             "  - {name: entra, issuer: d, audience: e}\n",
         "t.yaml:5:11: issuers[1].name 'entra' is already used by issuers[0] (line 2); names "
         "must be unique",
         "t.yaml:8:12: issuers[2].name 'entra' is already used by issuers[0] (line 2); names "
         "must be unique");
    ERRS(ISS "agents:\n"
             "  - {name: bot, issuer: entra, subject: s1, owner: o}\n"
             "  - {name: bot, issuer: entra, subject: s2, owner: o}\n",
         "t.yaml:7:12: agents[1].name 'bot' is already used by agents[0] (line 6); names must "
         "be unique");
}

/* ---- values --------------------------------------------------------------------------------- */

static void test_durations(void **state)
{
    static const struct {
        const char *text;
        double secs;
    } ok[] = {{"90s", 90}, {"2m", 120}, {"3m", 180}, {"250ms", 0.25}, {"45", 45},
              {"0", 0},    {"1m30s", 90}, {"10m", 600}, {"5m", 300}};
    for (size_t i = 0; i < AL_ARRAY_LEN(ok); i++) {
        char y[128];
        snprintf(y, sizeof y, "server:\n  drain_timeout: %s\n", ok[i].text);
        al_config_t *cfg = load_ok(y);
        assert_true(cfg->server.drain_timeout == ok[i].secs);
        al_config_free(cfg);
    }
    al_config_t *cfg = load_ok("dev_token_max_ttl: 24h\n" ISS "    jwks_max_staleness: 30d\n"
                               "    jwks_refresh_interval: 7d\n    max_token_lifetime: 365d\n");
    assert_true(cfg->dev_token_max_ttl == 86400);
    assert_true(cfg->issuers[0].jwks_max_staleness == 30 * 86400);
    assert_true(cfg->issuers[0].jwks_refresh_interval == 7 * 86400);
    assert_true(cfg->issuers[0].max_token_lifetime == 365 * 86400);
    al_config_free(cfg);
    ERRS("server:\n  drain_timeout: 15x\n",
         "t.yaml:2:18: server.drain_timeout is not a duration: '15x'; write a number with a "
         "unit: 250ms, 90s, 15m, 24h or 7d");
    ERRS("server:\n  drain_timeout: 1m30\n",
         "t.yaml:2:18: server.drain_timeout is not a duration: '1m30'; write a number with a "
         "unit: 250ms, 90s, 15m, 24h or 7d");
    ERRS("server:\n  drain_timeout: -5s\n",
         "t.yaml:2:18: server.drain_timeout is not a duration: '-5s'; write a number with a "
         "unit: 250ms, 90s, 15m, 24h or 7d");
    ERRS("server:\n  drain_timeout: 11m\n",
         "t.yaml:2:18: server.drain_timeout must be between 0s and 10m; got '11m'");
    ERRS("dev_token_max_ttl: 25h\n",
         "t.yaml:1:20: dev_token_max_ttl must be between 1s and 1d; got '25h'");
    ERRS("dev_token_max_ttl: 0\n",
         "t.yaml:1:20: dev_token_max_ttl must be between 1s and 1d; got '0'");
    ERRS(ISS "    clock_skew: 6m\n    jwks_refetch_interval: 2h\n"
             "    jwks_max_staleness: 500ms\n    jwks_refresh_interval: [1h]\n",
         "t.yaml:5:17: issuers[0].clock_skew must be between 0s and 5m; got '6m'",
         "t.yaml:6:28: issuers[0].jwks_refetch_interval must be between 1s and 1h; got '2h'",
         "t.yaml:7:25: issuers[0].jwks_max_staleness must be between 1s and 30d; got '500ms'",
         "t.yaml:8:28: issuers[0].jwks_refresh_interval must be a duration such as 30s, not a "
         "list");
}

static void test_workers_and_log_level(void **state)
{
    al_config_t *cfg = load_ok("server: {workers: 256, log_level: error}\n");
    assert_int_equal(cfg->server.workers, 256);
    assert_int_equal(cfg->server.log_level, AL_LOG_ERROR);
    al_config_free(cfg);
    cfg = load_ok("server: {workers: auto, log_level: warn}\n");
    assert_int_equal(cfg->server.workers, 0);
    assert_int_equal(cfg->server.log_level, AL_LOG_WARN);
    al_config_free(cfg);
    ERRS("server:\n  workers: 0\n  log_level: warning\n",
         "t.yaml:2:12: server.workers must be 'auto' or an integer from 1 to 256; got '0'",
         "t.yaml:3:14: server.log_level must be one of debug, info, warn, error; got 'warning'");
    ERRS("server:\n  workers: 257\n  log_level: inf\n",
         "t.yaml:2:12: server.workers must be 'auto' or an integer from 1 to 256; got '257'",
         "t.yaml:3:14: server.log_level must be one of debug, info, warn, error; got 'inf'; "
         "did you mean 'info'?");
    ERRS("server: {workers: -1}\n",
         "t.yaml:1:19: server.workers must be 'auto' or an integer from 1 to 256; got '-1'");
}

static void test_admin_listen(void **state)
{
    static const char *const good[] = {"[::1]:80", "0.0.0.0:1", "localhost:65535",
                                       "gw-1.example.com:7480", "[2001:db8::1]:443",
                                       "10.1.2.3:8080"};
    for (size_t i = 0; i < AL_ARRAY_LEN(good); i++) {
        char y[128];
        snprintf(y, sizeof y, "server:\n  admin_listen: \"%s\"\n", good[i]);
        al_config_t *cfg = load_ok(y);
        assert_string_equal(cfg->server.admin_listen, good[i]);
        al_config_free(cfg);
    }
    static const struct {
        const char *addr, *msg;
    } bad[] = {
        {"127.0.0.1:0", "has an invalid port; use a number from 1 to 65535"},
        {"127.0.0.1:65536", "has an invalid port; use a number from 1 to 65535"},
        {"127.0.0.1:", "has an invalid port; use a number from 1 to 65535"},
        {"127.0.0.1:8o", "has an invalid port; use a number from 1 to 65535"},
        {"127.0.0.1", "has no port; write host:port, e.g. 127.0.0.1:7480 or [::1]:7480"},
        {"localhost", "has no port; write host:port, e.g. 127.0.0.1:7480 or [::1]:7480"},
        {"[::1]", "has no port; write host:port, e.g. 127.0.0.1:7480 or [::1]:7480"},
        {"::1:80", "looks like an IPv6 address without brackets; write it as [::1]:7480"},
        {":80", "has no host; write host:port, e.g. 127.0.0.1:7480"},
        {"[::1:80", "has an unclosed '['; write an IPv6 address as [::1]:7480"},
        {"[zz]:80", "has an invalid IPv6 address between the brackets"},
        {"[::1]x:80", "has text after ']'; write [IPv6]:port"},
        {"256.1.1.1:80", "has an invalid host; use an IPv4 address, an [IPv6] address in "
                         "brackets or a hostname"},
        {"-bad.example:80", "has an invalid host; use an IPv4 address, an [IPv6] address in "
                            "brackets or a hostname"},
        {"a..b:80", "has an invalid host; use an IPv4 address, an [IPv6] address in "
                    "brackets or a hostname"},
        {"a_b:80", "has an invalid host; use an IPv4 address, an [IPv6] address in "
                   "brackets or a hostname"},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
        char y[128], want[256];
        snprintf(y, sizeof y, "server:\n  admin_listen: \"%s\"\n", bad[i].addr);
        snprintf(want, sizeof want, "t.yaml:2:17: server.admin_listen %s; got '%s'",
                 bad[i].msg, bad[i].addr);
        ERRS(y, want);
    }
}

static void test_jwks_uri(void **state)
{
    static const char *const good[] = {
        "https://login.example.com/keys", "HTTPS://idp.example.com:8443/k?x=1",
        "http://127.0.0.1:8080/jwks", "http://127.9.9.9/jwks", "http://localhost/jwks",
        "http://LOCALHOST:1/jwks", "http://[::1]:9000/jwks", "https://[2001:db8::1]/k"};
    for (size_t i = 0; i < AL_ARRAY_LEN(good); i++) {
        char y[256];
        snprintf(y, sizeof y, ISS "    jwks_uri: \"%s\"\n", good[i]);
        al_config_t *cfg = load_ok(y);
        assert_string_equal(cfg->issuers[0].jwks_uri, good[i]);
        al_config_free(cfg);
    }
    static const struct {
        const char *uri, *msg;
    } bad[] = {
        {"http://example.com/jwks", "must use https (http is allowed only for loopback)"},
        {"http://10.0.0.1/jwks", "must use https (http is allowed only for loopback)"},
        {"http://localhost.evil.com/jwks", "must use https (http is allowed only for loopback)"},
        {"http://128.0.0.1/jwks", "must use https (http is allowed only for loopback)"},
        {"http://[::2]/jwks", "must use https (http is allowed only for loopback)"},
        {"ftp://example.com/jwks",
         "must be an https:// URL, e.g. https://login.example.com/discovery/keys"},
        {"example.com/jwks",
         "must be an https:// URL, e.g. https://login.example.com/discovery/keys"},
        {"https://user:pw@example.com/",
         "must not carry credentials (user@host); JWKS endpoints are public"},
        {"https:///keys", "has no host; write host:port, e.g. 127.0.0.1:7480"},
        {"https://exa mple.com/",
         "must not contain spaces or control characters; percent-encode them"},
        {"https://example.com:0/", "has an invalid port; use a number from 1 to 65535"},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
        char y[256], want[256];
        snprintf(y, sizeof y, ISS "    jwks_uri: \"%s\"\n", bad[i].uri);
        snprintf(want, sizeof want, "t.yaml:5:15: issuers[0].jwks_uri %s; got '%s'", bad[i].msg,
                 bad[i].uri);
        ERRS(y, want);
    }
}

static void test_jwks_exclusive(void **state)
{
    ERRS(ISS "    jwks_file: k.json\n    jwks_uri: https://a.example/k\n",
         "t.yaml:6:5: jwks_uri and jwks_file are mutually exclusive in issuers[0]; keep "
         "jwks_uri to fetch the keys or jwks_file to read them from disk");
    ERRS(ISS "    jwks_uri: https://a.example/k\n    jwks_file: k.json\n",
         "t.yaml:6:5: jwks_uri and jwks_file are mutually exclusive in issuers[0]; keep "
         "jwks_uri to fetch the keys or jwks_file to read them from disk");
}

static void test_audience_forms(void **state)
{
    al_config_t *cfg = load_ok(
        "issuers:\n  - {name: a, issuer: x, audience: [p, q, r]}\n"
        "  - {name: b, issuer: y, audience: \"s\"}\n");
    assert_int_equal(cfg->issuers[0].n_audiences, 3);
    assert_string_equal(cfg->issuers[0].audiences[2], "r");
    assert_int_equal(cfg->issuers[1].n_audiences, 1);
    assert_string_equal(cfg->issuers[1].audiences[0], "s");
    al_config_free(cfg);
    ERRS("issuers:\n  - {name: a, issuer: x, audience: []}\n",
         "t.yaml:2:36: issuers[0].audience must list at least 1 value");
    ERRS("issuers:\n  - {name: a, issuer: x, audience: {k: v}}\n",
         "t.yaml:2:36: issuers[0].audience must be a list such as [a, b], not a mapping");
    ERRS("issuers:\n  - {name: a, issuer: x, audience: }\n",
         "t.yaml:2:36: issuers[0].audience is empty; give it a value");
}

static void test_algorithms(void **state)
{
    al_config_t *cfg = load_ok(ISS "    algorithms: [PS384, EdDSA, ES512, PS384]\n");
    assert_int_equal(cfg->issuers[0].algorithms, AL_ALG_PS384 | AL_ALG_EDDSA | AL_ALG_ES512);
    al_config_free(cfg);
    ERRS(ISS "    algorithms: [none, HS256, hs512, RS265, rs256, XX]\n",
         "t.yaml:5:18: issuers[0].algorithms[0]: algorithm 'none' is never accepted: an "
         "unsigned token proves nothing (RFC 8725 §3.1); remove it",
         "t.yaml:5:24: issuers[0].algorithms[1]: algorithm 'HS256' is never accepted: with a "
         "shared HMAC secret anyone who can verify can also mint tokens; use an asymmetric "
         "algorithm such as RS256 or ES256",
         "t.yaml:5:31: issuers[0].algorithms[2]: algorithm 'hs512' is never accepted: with a "
         "shared HMAC secret anyone who can verify can also mint tokens; use an asymmetric "
         "algorithm such as RS256 or ES256",
         "t.yaml:5:38: issuers[0].algorithms[3]: unknown algorithm 'RS265'; did you mean "
         "'RS256'?",
         "t.yaml:5:45: issuers[0].algorithms[4]: unknown algorithm 'rs256'; did you mean "
         "'RS256'?",
         "t.yaml:5:52: issuers[0].algorithms[5]: unknown algorithm 'XX'; use RS256, RS384, "
         "RS512, PS256, PS384, PS512, ES256, ES384, ES512 or EdDSA");
    ERRS(ISS "    algorithms: []\n",
         "t.yaml:5:17: issuers[0].algorithms must be a non-empty list such as [RS256, ES256]; "
         "remove the key to accept every asymmetric algorithm");
    ERRS(ISS "    algorithms: RS256\n",
         "t.yaml:5:17: issuers[0].algorithms must be a non-empty list such as [RS256, ES256]; "
         "remove the key to accept every asymmetric algorithm");
}

static void test_issuer_enums_bools(void **state)
{
    al_config_t *cfg = load_ok(ISS "    allow_unknown_agents: true\n    group_overage: deny\n");
    assert_true(cfg->issuers[0].allow_unknown_agents);
    assert_int_equal(cfg->issuers[0].group_overage, AL_OVERAGE_DENY);
    al_config_free(cfg);
    ERRS(ISS "    group_overage: ignor\n    allow_unknown_agents: 1\n",
         "t.yaml:5:20: issuers[0].group_overage must be one of deny, ignore; got 'ignor'; did "
         "you mean 'ignore'?",
         "t.yaml:6:27: issuers[0].allow_unknown_agents must be true or false (unquoted); got "
         "'1'");
}

static void test_agent_issuer_refs(void **state)
{
    ERRS(ISS "agents:\n  - {name: a, issuer: entr, subject: s, owner: o}\n"
             "  - {name: b, issuer: okta, subject: s, owner: o}\n",
         "t.yaml:6:23: agents[0].issuer 'entr' is not defined in issuers; did you mean "
         "'entra'?",
         "t.yaml:7:23: agents[1].issuer 'okta' is not defined in issuers; add an issuers entry "
         "with 'name: okta' or fix the name");
    ERRS("agents:\n  - {name: a, issuer: airlock-dev, subject: s, owner: o}\n",
         "t.yaml:2:23: agents[0].issuer 'airlock-dev' is the built-in dev issuer, which is "
         "off; set 'dev_issuer: true' at the top level to use it");
    al_config_t *cfg =
        load_ok("dev_issuer: true\nagents:\n  - {name: a, issuer: airlock-dev, subject: s, "
                "owner: o}\n");
    assert_string_equal(al_config_agent(cfg, "a")->issuer, "airlock-dev");
    al_config_free(cfg);
}

static void test_agent_subjects(void **state)
{
    /* the same subject under two issuers is two different identities */
    al_config_t *cfg = load_ok(ISS "  - {name: okta, issuer: o, audience: a}\nagents:\n"
                                   "  - {name: a, issuer: entra, subject: s, owner: o}\n"
                                   "  - {name: b, issuer: okta, subject: s, owner: o}\n");
    assert_int_equal(cfg->n_agents, 2);
    al_config_free(cfg);
    ERRS(ISS "agents:\n  - {name: a, issuer: entra, subject: '42', owner: o}\n"
             "  - {name: b, issuer: entra, subject: '42', owner: o}\n",
         "t.yaml:7:39: agents[1].subject '42' of issuer 'entra' is already used by agents[0] "
         "(line 6); one subject maps to one agent");
}

static void test_paths(void **state)
{
    al_config_errors_t e;
    const char *y = "server: {data_dir: \"../srv//x/./y/\"}\n" ISS
                    "    jwks_file: keys/../k.json\n";
    al_config_t *cfg = al_config_load_mem("/etc/airlock/a.yaml", y, strlen(y), &e);
    assert_non_null(cfg);
    assert_string_equal(cfg->server.data_dir, "/etc/srv/x/y");
    assert_string_equal(cfg->issuers[0].jwks_file, "/etc/airlock/k.json");
    al_config_free(cfg);

    y = "server: {data_dir: /var/lib/airlock}\n";
    cfg = al_config_load_mem("conf/a.yaml", y, strlen(y), &e);
    assert_string_equal(cfg->server.data_dir, "/var/lib/airlock");
    al_config_free(cfg);

    cfg = al_config_load_mem("conf/a.yaml", "", 0, &e);
    char *want = cwd_join("conf/var");
    assert_string_equal(cfg->server.data_dir, want);
    free(want);
    al_config_free(cfg);

    cfg = al_config_load_mem("/a.yaml", "server: {data_dir: ../../..}\n", 29, &e);
    assert_string_equal(cfg->server.data_dir, "/");
    al_config_free(cfg);

    ERRS("server: {data_dir: ~/airlock}\n",
         "t.yaml:1:20: server.data_dir '~/airlock': '~' is not expanded; use an absolute path "
         "or one relative to the config file");
}

/* ---- hostile YAML ----------------------------------------------------------------------------- */

static void test_aliases_anchors_tags(void **state)
{
    ERRS("issuers:\n  - &e {name: a, issuer: x, audience: y}\n  - *e\n",
         "t.yaml:2:5: YAML anchors ('&e') are not supported; write the value out in full",
         "t.yaml:3:5: YAML aliases are not supported ('*e'); write the value out in full");
    ERRS("server: !!binary aGVsbG8=\ndev_issuer: !custom true\n",
         "t.yaml:1:9: YAML tags ('!!binary') are not supported; remove the tag and write a "
         "plain value",
         "t.yaml:2:13: YAML tags ('!custom') are not supported; remove the tag and write a "
         "plain value");
    /* an alias used as a key is refused too, without a second message */
    ERRS("a: &k x\n*k : 1\n",
         "t.yaml:1:1: unknown key 'a' in the config; the keys allowed here are server, "
         "dev_issuer, dev_token_max_ttl, issuers, agents, targets, policies, admin, audit, approvals, recordings, masking, mask_key_env, mask_key_file",
         "t.yaml:1:4: YAML anchors ('&k') are not supported; write the value out in full",
         "t.yaml:2:1: YAML aliases are not supported ('*k'); write the value out in full");
}

static void test_documents_and_keys(void **state)
{
    ERRS("server: {}\n---\nserver: {}\n",
         "t.yaml:2:1: multiple YAML documents are not supported; keep one document per config "
         "file (remove this '---')");
    ERRS("? [a, b]\n: 1\n? {c: d}\n: 2\n",
         "t.yaml:1:3: keys must be plain strings; found a list used as a key in the config",
         "t.yaml:3:3: keys must be plain strings; found a mapping used as a key in the config");
    ERRS("server:\n  workers: 2\n workers: 3\n",
         "t.yaml:3:2: YAML syntax error: did not find expected key while parsing a block "
         "mapping; check the indentation and quoting here");
    ERRS("server: \"abc\n", "t.yaml:2:1: YAML syntax error: found unexpected end of stream "
                           "while scanning a quoted scalar; check the indentation and quoting "
                           "here");
}

static char *nested(int depth)
{
    /* "x: [[[...]]]": the root mapping plus depth-1 sequences */
    size_t n = 3 + 2 * (size_t)depth + 2;
    char *s = malloc(n);
    size_t o = 0;
    s[o++] = 'x';
    s[o++] = ':';
    s[o++] = ' ';
    for (int i = 1; i < depth; i++)
        s[o++] = '[';
    for (int i = 1; i < depth; i++)
        s[o++] = ']';
    s[o++] = '\n';
    s[o] = '\0';
    return s;
}

static void test_depth_limit(void **state)
{
    char *ok = nested(AL_CONFIG_MAX_DEPTH);
    ERRS(ok, "t.yaml:1:1: unknown key 'x' in the config; the keys allowed here are server, "
             "dev_issuer, dev_token_max_ttl, issuers, agents, targets, policies, admin, audit, approvals, recordings, masking, mask_key_env, mask_key_file");
    free(ok);
    char *deep = nested(AL_CONFIG_MAX_DEPTH + 1);
    ERRS(deep, "t.yaml:1:35: nesting deeper than 32 levels is not supported; flatten the "
               "structure");
    free(deep);
    /* far deeper than libyaml or a recursive walk would like */
    char *huge = nested(100000);
    ERRS(huge, "t.yaml:1:35: nesting deeper than 32 levels is not supported; flatten the "
               "structure");
    free(huge);
}

static void test_size_limit(void **state)
{
    size_t n = AL_CONFIG_MAX_BYTES + 1;
    char *big = malloc(n);
    memset(big, '#', n);
    big[n - 1] = '\n';
    al_config_errors_t e;
    assert_null(al_config_load_mem("big.yaml", big, n, &e));
    assert_int_equal(e.n, 1);
    assert_string_equal(e.msgs[0], "big.yaml:1:1: the config is 1048577 bytes; the limit is "
                                   "1048576 (1 MiB): remove unused entries");
    al_config_errors_free(&e);
    /* exactly at the limit is fine (a comment) */
    al_config_t *cfg = al_config_load_mem("big.yaml", big, n - 1, &e);
    assert_non_null(cfg);
    al_config_free(cfg);

    char path[] = "/tmp/al_test_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, big, n), (ssize_t)n);
    close(fd);
    assert_null(al_config_load(path, &e));
    assert_int_equal(e.n, 1);
    assert_int_equal(e.read_errno, 0);
    char want[256];
    snprintf(want, sizeof want, "%s:1:1: the config is larger than 1048576 bytes (1 MiB); "
                                "remove unused entries", path);
    assert_string_equal(e.msgs[0], want);
    al_config_errors_free(&e);
    unlink(path);
    free(big);
}

static void test_unreadable(void **state)
{
    al_config_errors_t e;
    assert_null(al_config_load("tests/data/config/does-not-exist.yaml", &e));
    assert_int_equal(e.n, 1);
    assert_int_equal(e.read_errno, ENOENT);
    assert_string_equal(e.msgs[0], "tests/data/config/does-not-exist.yaml: cannot read: No "
                                   "such file or directory");
    al_config_errors_free(&e);
    assert_null(al_config_load("tests/data/config", &e));
    assert_int_equal(e.read_errno, EISDIR);
    al_config_errors_free(&e);
}

static void test_many_errors_in_file_order(void **state)
{
    al_config_errors_t e;
    assert_null(al_config_load("tests/data/config/many-errors.yaml", &e));
    FILE *f = fopen("tests/data/config/many-errors.expected", "r");
    assert_non_null(f);
    char line[1024];
    size_t i = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        assert_true(i < e.n);
        if (strcmp(e.msgs[i], line))
            fprintf(stderr, "line %zu:\n got  %s\n want %s\n", i + 1, e.msgs[i], line);
        assert_string_equal(e.msgs[i], line);
        i++;
    }
    fclose(f);
    assert_int_equal(i, e.n);
    al_config_errors_free(&e);
}

static void test_error_cap(void **state)
{
    al_buf_t b;
    al_buf_init(&b);
    for (int i = 0; i < 1500; i++)
        al_buf_printf(&b, "k%d: 1\n", i);
    al_config_errors_t e;
    assert_null(load(b.p, &e));
    assert_int_equal(e.n, 1001);
    assert_string_equal(e.msgs[0], "t.yaml:1:1: unknown key 'k0' in the config; the keys "
                                   "allowed here are server, dev_issuer, dev_token_max_ttl, "
                                   "issuers, agents, targets, policies, admin, audit, approvals, recordings, masking, mask_key_env, mask_key_file");
    assert_string_equal(e.msgs[1000], "t.yaml: too many errors; stopped after the first 1000");
    al_config_errors_free(&e);
    al_buf_free(&b);
}

static void test_long_and_control_values_are_quoted(void **state)
{
    ERRS("server:\n  log_level: \"a\\tb\\u001b[31mred-and-then-a-very-long-tail-that-goes-on-"
         "and-on-and-on-and-on\"\n",
         "t.yaml:2:14: server.log_level must be one of debug, info, warn, error; got "
         "'a\\x09b\\x1b[31mred-and-then-a-very-long-tail-that-goes-on-and-on-and-on-a...'");
}

/* ---- airlock check --------------------------------------------------------------------------- */

typedef struct run {
    int rc;
    char out[4096], err[8192];
} run_t;

static void slurp(FILE *f, char *buf, size_t cap)
{
    rewind(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

static void run_check(run_t *r, int argc, const char **argv)
{
    fflush(stdout);
    fflush(stderr);
    FILE *o = tmpfile(), *e = tmpfile();
    assert_non_null(o);
    assert_non_null(e);
    int so = dup(1), se = dup(2);
    dup2(fileno(o), 1);
    dup2(fileno(e), 2);
    r->rc = al_cmd_check(argc, (char **)argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    slurp(o, r->out, sizeof r->out);
    slurp(e, r->err, sizeof r->err);
}

static void test_cli_check(void **state)
{
    run_t r;
    run_check(&r, 3, (const char *[]){"check", "-c", "tests/data/config/full.yaml", NULL});
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.out, "tests/data/config/full.yaml: ok (2 issuers, 3 agents, 0 targets, 0 policies)\n");
    assert_string_equal(r.err, "");

    run_check(&r, 3,
              (const char *[]){"check", "--config", "tests/data/config/examples.yaml", NULL});
    assert_int_equal(r.rc, 1);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, "tests/data/config/examples.yaml:4:5: unknown key 'audiance' in "
                               "issuers[0]; did you mean 'audience'?\n"
                               "tests/data/config/examples.yaml: 1 error(s)\n");

    run_check(&r, 2, (const char *[]){"check", "--config=tests/data/config/nope.yaml", NULL});
    assert_int_equal(r.rc, 1);
    assert_string_equal(r.err,
                        "tests/data/config/nope.yaml: cannot read: No such file or directory\n");

    run_check(&r, 2, (const char *[]){"check", "--help", NULL});
    assert_int_equal(r.rc, 0);
    assert_true(strncmp(r.out, "usage: airlock check -c FILE\n", 29) == 0);
    assert_string_equal(r.err, "");

    run_check(&r, 1, (const char *[]){"check", NULL});
    assert_int_equal(r.rc, 2);
    assert_string_equal(r.out, "");
    assert_true(strstr(r.err, "a config file is required (-c FILE)\nusage: airlock check") ==
                r.err + strlen("airlock check: "));

    run_check(&r, 3, (const char *[]){"check", "-x", "f.yaml", NULL});
    assert_int_equal(r.rc, 2);
    assert_true(strncmp(r.err, "airlock check: unknown argument '-x'\nusage:", 43) == 0);

    run_check(&r, 2, (const char *[]){"check", "-c", NULL});
    assert_int_equal(r.rc, 2);
    assert_true(strncmp(r.err, "airlock check: -c needs a FILE\nusage:", 37) == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_file_defaults),
        cmocka_unit_test(test_empty_sections),
        cmocka_unit_test(test_issuer_defaults),
        cmocka_unit_test(test_full_example),
        cmocka_unit_test(test_unknown_key_examples_fixture),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_type_errors),
        cmocka_unit_test(test_recordings),
        cmocka_unit_test(test_empty_values),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_duplicate_names),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_workers_and_log_level),
        cmocka_unit_test(test_admin_listen),
        cmocka_unit_test(test_jwks_uri),
        cmocka_unit_test(test_jwks_exclusive),
        cmocka_unit_test(test_audience_forms),
        cmocka_unit_test(test_algorithms),
        cmocka_unit_test(test_issuer_enums_bools),
        cmocka_unit_test(test_agent_issuer_refs),
        cmocka_unit_test(test_agent_subjects),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_aliases_anchors_tags),
        cmocka_unit_test(test_documents_and_keys),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_unreadable),
        cmocka_unit_test(test_many_errors_in_file_order),
        cmocka_unit_test(test_error_cap),
        cmocka_unit_test(test_long_and_control_values_are_quoted),
        cmocka_unit_test(test_cli_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
