/*
 * policy.h - may this principal do this action on this target, now?
 *
 * A policy is compiled once per config snapshot (al_policy_compile) and is
 * then immutable: any number of threads evaluate it at once. Evaluation
 * (al_policy_decide) allocates nothing and takes no lock.
 *
 * Semantics (docs/policy.md has worked examples):
 *  - A rule matches when its `who` names the principal (agent name,
 *    group:X, issuer:X or *), its `targets` name the target (or *), and
 *    every condition under `when` holds.
 *  - Every matching rule counts: deny beats approve beats allow. No
 *    matching rule means deny (reason no_matching_rule).
 *  - SQL: each statement of a multi-statement string is decided on its own;
 *    the string takes the worst decision, reported with that statement's
 *    rule. A statement of class unknown (did not parse, or an EXECUTE of a
 *    statement airlock never saw prepared) is matched by an allow or
 *    approve rule only when its `sql` list names `unknown`.
 *  - tables / schemas / functions: for allow and approve rules the
 *    condition holds only when EVERY table (schema, function) the statement
 *    touches matches the list, and it touches at least one; for deny rules
 *    it holds when ANY of them matches. An unqualified table is in schema
 *    public. Patterns are globs: `orders`, `public.orders`, `vault.*`.
 *  - Masks from every matching rule of an allowed action apply.
 */
#ifndef AL_POLICY_POLICY_H
#define AL_POLICY_POLICY_H

#include "core/config.h"
#include "policy/sql_classify.h"

typedef struct al_policy al_policy_t;

/* Compiles cfg's policies. Returns NULL with errs filled ("FILE:LINE:COL:
 * message", like al_config_load) when a rule names an unknown agent or
 * target, a bad class, time window or time zone. The policy borrows cfg:
 * cfg must outlive it. */
al_policy_t *al_policy_compile(const al_config_t *cfg, al_config_errors_t *errs);
void al_policy_free(al_policy_t **p);

/* Who is asking: from a verified principal or an inventory agent. */
typedef struct al_subject {
    const char *agent;  /* inventory name; NULL for an unknown agent */
    const char *issuer; /* issuer config name */
    const char *const *groups;
    size_t n_groups;
} al_subject_t;

typedef enum al_action_kind {
    AL_ACTION_SQL = 0,
    AL_ACTION_HTTP,
    AL_ACTION_CMD,
} al_action_kind_t;

typedef struct al_action {
    al_action_kind_t kind;
    const char *target;          /* target name */
    const al_sql_stmt_t *stmt;   /* SQL: one statement, or NULL with `cls` */
    al_sql_class_t cls;          /* SQL: class when stmt is NULL */
    al_str_t method, path, host; /* HTTP: path already normalized */
    al_str_t cmd;                /* command line */
    int64_t now;                 /* unix seconds, for time windows */
} al_action_t;

#define AL_POLICY_MAX_MASKS 32

typedef struct al_verdict {
    al_decision_t decision;
    const al_policy_conf_t *rule; /* deciding rule; NULL when none matched */
    const char *reason;  /* allowed_by_rule, denied_by_rule, approval_required,
                            no_matching_rule, unknown_target */
    const char *masks[AL_POLICY_MAX_MASKS]; /* masking references of the
                            matching rules (allowed actions), deduplicated */
    size_t n_masks;
    al_audit_mode_t audit; /* strict or async for this action */
} al_verdict_t;

/* Decides one action (one SQL statement). No allocation. */
void al_policy_decide(const al_policy_t *p, const al_subject_t *who, const al_action_t *a,
                      al_verdict_t *out);

/* Decides a whole classified SQL string: every statement on its own, the
 * worst one wins. per_stmt (may be NULL) receives min(n, cap) verdicts. */
void al_policy_decide_sql(const al_policy_t *p, const al_subject_t *who, const char *target,
                          const al_sql_result_t *r, int64_t now, al_verdict_t *out,
                          al_verdict_t *per_stmt, size_t cap);

/* "schema.name" (or "name" when unqualified) of a table, as policy, audit
 * and explain write it. Truncated to cap. */
const char *al_policy_table_name(const al_sql_table_t *t, char *buf, size_t cap);

/* Fills out[0..max) with the names of r's tables (buf holds the text), for
 * audit events. Returns how many. */
#define AL_POLICY_TABLE_NAME_MAX 160
size_t al_policy_table_names(const al_sql_result_t *r, char (*buf)[AL_POLICY_TABLE_NAME_MAX],
                             const char **out, size_t max);

/* The target's configured default class for functions outside the table. */
al_sql_class_t al_policy_target_fn_default(const al_policy_t *p, const char *target);

/* Glob match used for paths: `*` within a segment, `**` across segments
 * (and a trailing slash-double-star also matches the bare prefix), `?` one byte. Exposed for tests. */
bool al_policy_path_match(const char *pat, al_str_t path);

#endif
