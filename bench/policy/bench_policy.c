/*
 * bench_policy: policy decisions per second for SQL, the way the gateway
 * takes them: classify (per-worker cache) then decide per statement.
 *
 *   bench_policy [seconds]
 * prints one line per case: name decisions_per_sec ns_per_decision
 * allocations_per_decision.
 * Cases: decide only (pre-classified), classify+decide with a warm cache
 * (repeated statements, the common case for agents and ORMs), and
 * classify+decide with the cache off (every statement parsed).
 */
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "policy/policy.h"

/* Counts allocations made through malloc/calloc/realloc (glibc's
 * __libc_* entry points are the real ones). */
static _Atomic uint64_t n_alloc;
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
void *malloc(size_t n)
{
    atomic_fetch_add_explicit(&n_alloc, 1, memory_order_relaxed);
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b)
{
    atomic_fetch_add_explicit(&n_alloc, 1, memory_order_relaxed);
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n)
{
    atomic_fetch_add_explicit(&n_alloc, 1, memory_order_relaxed);
    return __libc_realloc(p, n);
}

static const char *CONFIG =
    "server: { data_dir: /tmp/airlock-bench-policy }\n"
    "dev_issuer: true\n"
    "targets:\n  - { name: db, protocol: postgres }\n"
    "agents:\n"
    "  - { name: app, issuer: airlock-dev, subject: app, owner: o@example.com, groups: [apps, readers] }\n"
    "policies:\n"
    "  - { name: reads, who: [group:readers], targets: [db], when: { sql: [read] }, action: allow }\n"
    "  - name: writes\n    who: [app]\n    targets: [db]\n"
    "    when: { sql: [write], schemas: [public, app] }\n    action: allow\n    audit: strict\n"
    "  - name: no-secrets\n    who: [\"*\"]\n    targets: [db]\n"
    "    when: { tables: [secrets, \"vault.*\", \"*.card_numbers\"] }\n    action: deny\n"
    "  - name: ddl\n    who: [app]\n    targets: [db]\n    when: { sql: [ddl] }\n"
    "    action: approve\n    approvers: [dba]\n"
    "  - name: office-hours\n    who: [\"group:apps\"]\n    targets: [db]\n"
    "    when: { sql: [admin], hours: [\"09:00-17:00\"], days: [mon-fri], timezone: Europe/Paris }\n"
    "    action: deny\n";

static const char *STMTS[] = {
    "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
    "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2",
    "SELECT o.id, o.total, c.name FROM orders o JOIN customers c ON c.id = o.customer_id "
    "WHERE o.created_at > now() - interval '1 day' ORDER BY o.total DESC LIMIT 50",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, "
    "CURRENT_TIMESTAMP)",
    "SELECT * FROM secrets",
};

static double run(al_sql_t *sq, const al_policy_t *pol, const al_subject_t *who, bool classify,
                  double secs, uint64_t *n_out, uint64_t *allocs)
{
    const al_sql_result_t *pre[AL_ARRAY_LEN(STMTS)];
    al_sql_t *pre_sq[AL_ARRAY_LEN(STMTS)];
    for (size_t i = 0; i < AL_ARRAY_LEN(STMTS); i++) {
        pre_sq[i] = al_sql_new(NULL);
        al_sql_classify(pre_sq[i], STMTS[i], strlen(STMTS[i]), NULL, &pre[i]);
    }
    uint64_t n = 0, a0 = atomic_load(&n_alloc);
    uint64_t t0 = al_mono_ns(), lim = (uint64_t)(secs * 1e9), t;
    int64_t now = (int64_t)al_now();
    volatile int sink = 0;
    do {
        for (int k = 0; k < 256; k++, n++) {
            size_t i = n % AL_ARRAY_LEN(STMTS);
            const al_sql_result_t *r = pre[i];
            if (classify)
                al_sql_classify(sq, STMTS[i], strlen(STMTS[i]), NULL, &r);
            al_verdict_t v;
            al_policy_decide_sql(pol, who, "db", r, now, &v, NULL, 0);
            sink += (int)v.decision;
        }
        t = al_mono_ns() - t0;
    } while (t < lim);
    *allocs = atomic_load(&n_alloc) - a0;
    if (sink < 0) /* keeps the decisions observable */
        puts("impossible");
    *n_out = n;
    for (size_t i = 0; i < AL_ARRAY_LEN(STMTS); i++)
        al_sql_free(&pre_sq[i]);
    return (double)t / 1e9;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    al_config_errors_t errs;
    al_config_t *cfg = al_config_load_mem("bench.yaml", CONFIG, strlen(CONFIG), &errs);
    if (!cfg) {
        fprintf(stderr, "bench_policy: %s\n", errs.n ? errs.msgs[0] : "config");
        return 1;
    }
    al_policy_t *pol = al_policy_compile(cfg, &errs);
    if (!pol) {
        fprintf(stderr, "bench_policy: %s\n", errs.n ? errs.msgs[0] : "policy");
        return 1;
    }
    const char *groups[] = {"apps", "readers"};
    al_subject_t who = {"app", "airlock-dev", groups, 2};
    al_sql_t *warm = al_sql_new(NULL);
    al_sql_t *cold = al_sql_new(&(al_sql_config_t){.no_cache = true});
    static const struct {
        const char *name;
        bool classify, cached;
    } cases[] = {
        {"decide_only", false, false},
        {"classify_cached+decide", true, true},
        {"classify_uncached+decide", true, false},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(cases); i++) {
        uint64_t n, allocs;
        double t = run(cases[i].cached ? warm : cold, pol, &who, cases[i].classify, secs, &n,
                       &allocs);
        printf("%s %.0f %.1f %.2f\n", cases[i].name, n / t, t * 1e9 / n, (double)allocs / n);
    }
    al_sql_free(&warm);
    al_sql_free(&cold);
    al_policy_free(&pol);
    al_config_free(cfg);
    return 0;
}
