/*
 * revoked.h - the kill switch's revocation set: which agents an
 * administrator has disabled, why, by whom and when.
 *
 * A set is immutable and reference-counted, like a config snapshot. The
 * control thread makes a new one for every `agents disable` / `enable`,
 * persists it (data_dir/revoked.json, fsync'd before the caller answers)
 * and hands each worker a reference through its inbox. A worker reads only
 * its own pointer, so the data path looks a name up with no lock and no
 * allocation.
 *
 * Agents are named by their inventory name (config `agents[].name`); a
 * principal without one (an issuer with allow_unknown_agents) is never in
 * the set.
 */
#ifndef AL_RUNTIME_REVOKED_H
#define AL_RUNTIME_REVOKED_H

#include "core/core.h"
#include "identity/identity.h"

typedef struct al_revset al_revset_t;

/* One disabled agent. Strings are owned by the set. */
typedef struct al_revoked {
    const char *agent;    /* inventory name */
    const char *reason;   /* the operator's text; "" when none was given */
    const char *by;       /* who disabled it (admin agent, subject or "bootstrap") */
    const char *event_id; /* the audit event of the disable; "" if unknown */
    double at;            /* when (epoch seconds) */
} al_revoked_t;

/* The file under server.data_dir that holds the set across restarts. */
#define AL_REVOKED_FILE "revoked.json"

/* An empty set (generation 0). Never NULL. */
al_revset_t *al_revset_empty(void);
al_revset_t *al_revset_ref(al_revset_t *s);
void al_revset_unref(al_revset_t **s);

/* A new set: s plus `e` (replacing an entry of the same agent). The strings
 * of e are copied. Its generation is s's plus one. */
al_revset_t *al_revset_with(const al_revset_t *s, const al_revoked_t *e);
/* A new set: s without `agent`, or NULL when agent is not in s. */
al_revset_t *al_revset_without(const al_revset_t *s, const char *agent);

/* The entry for agent (NULL agent or absent: NULL). Lock- and
 * allocation-free; safe from any thread holding a reference. */
const al_revoked_t *al_revset_find(const al_revset_t *s, const char *agent);
/* AL_TOK_REVOKED when the principal's agent is in s, else AL_TOK_OK. */
al_tok_status_t al_revset_check(const al_revset_t *s, const al_principal_t *p);
/* Entries in the order they were disabled; i < al_revset_count(s). */
size_t al_revset_count(const al_revset_t *s);
const al_revoked_t *al_revset_at(const al_revset_t *s, size_t i);
/* Changes every time a set is derived from another; sessions compare it to
 * skip re-checking a principal they already checked against this set. */
uint64_t al_revset_gen(const al_revset_t *s);

/* Loads data_dir/revoked.json. A missing file is an empty set. A file that
 * cannot be read or parsed is an error (fail closed: the caller must not
 * serve, or revoked agents would come back): AL_ERR with a message in err. */
int al_revset_load(const char *data_dir, al_revset_t **out, char *err, size_t cap);
/* Writes s to data_dir/revoked.json atomically (temp file, fsync, rename,
 * fsync of the directory). AL_OK, or AL_ERR with a message in err. */
int al_revset_save(const char *data_dir, const al_revset_t *s, char *err, size_t cap);
/* Appends s as a JSON array of {"agent","reason","by","at","event_id"}. */
int al_revset_json(const al_revset_t *s, al_buf_t *b);

#endif
