/*
 * sessions.h - live sessions and the kill switch.
 *
 * Every gateway (PostgreSQL, HTTP, CONNECT tunnels, ...) registers each
 * client connection here. An entry says who (agent), where (target,
 * protocol), from where (client address), since when, and counts bytes
 * each way and actions. It also carries the gateway's close callback, which
 * the registry runs on the session's own worker loop when an administrator
 * kills the session or disables its agent.
 *
 * Threads and locks:
 *   - A session belongs to one worker. Its entry sits in that worker's own
 *     list (no lock; the worker walks it to apply a revocation) and in the
 *     process-wide list that `GET /v1/sessions` reads, under a mutex taken
 *     only at session start, at identification (once per agent change) and
 *     at end - never per statement or request.
 *   - Counters are relaxed atomics written by the owning worker.
 *   - Kills and new revocation sets reach a worker through its inbox
 *     (runtime.h) and a uv_async wake-up; the close callback always runs on
 *     the owning worker's loop.
 *
 * What a gateway calls (all on its worker thread; every function accepts a
 * NULL entry and does nothing):
 *
 *   accept:     e = al_sess_start(w, &(al_sess_info_t){...})
 *   identity:   verify with al_worker_verify() (runtime.h: refuses revoked
 *               agents with AL_TOK_REVOKED), then al_sess_identify(e, p)
 *   each action (statement, request):  al_sess_action(e)
 *   bytes read: al_sess_bytes(e, from_client, from_upstream)
 *   close:      al_sess_end(&e) when the session starts closing
 *   kill(sess, reason): close the connection at once; reason is
 *               AL_SESS_REVOKED or AL_SESS_KILLED, the operator's text is
 *               al_sess_note(e) (may be ""). Must not call back into the
 *               registry except al_sess_end/al_sess_note.
 */
#ifndef AL_RUNTIME_SESSIONS_H
#define AL_RUNTIME_SESSIONS_H

#include <uv.h>

#include "core/core.h"
#include "identity/identity.h"
#include "runtime/revoked.h"

struct al_worker;
struct al_runtime;
typedef struct al_sess al_sess_t;
typedef struct al_sess_reg al_sess_reg_t;

/* Reasons a session is ended by the registry (stable; in audit records). */
#define AL_SESS_REVOKED "revoked" /* its agent was disabled */
#define AL_SESS_KILLED "killed"   /* an administrator killed this session */
/* Audit kind of the record written when the registry ends a session. */
#define AL_SESS_AUDIT_KIND "session"

/* What a gateway says about a new session. Strings are copied. */
typedef struct al_sess_info {
    const char *id;        /* the session id used in its audit records (UUIDv7) */
    const char *protocol;  /* "postgres", "http", "tcp", ... (static string) */
    const char *target;    /* target name; NULL if unknown */
    const char *client;    /* "ip:port" of the peer (al_sess_peer_name) */
    void (*kill)(void *sess, const char *reason); /* see above; required */
    void *sess;            /* the gateway's session, passed to kill */
} al_sess_info_t;

/* ---- gateway side (owning worker thread) ------------------------------------------ */

/* Registers a session on worker w. Returns the entry (owned by the registry
 * until al_sess_end). */
al_sess_t *al_sess_start(struct al_worker *w, const al_sess_info_t *info);
/* Records who the session speaks for (agent, or sub when the principal has
 * no inventory name). Takes the registry lock only when that changed. */
void al_sess_identify(al_sess_t *e, const al_principal_t *p);
/* One action (statement, request, command) was decided. */
void al_sess_action(al_sess_t *e);
/* Bytes read from the client and from the upstream. */
void al_sess_bytes(al_sess_t *e, uint64_t from_client, uint64_t from_upstream);
/* The operator's text of the kill or disable now running; "" otherwise. */
const char *al_sess_note(const al_sess_t *e);
/* Unregisters and frees the entry; clears *e. Safe inside the kill callback. */
void al_sess_end(al_sess_t **e);
/* Writes the peer address of t as "ip:port" ("[ip6]:port") into out. */
void al_sess_peer_name(const uv_tcp_t *t, char *out, size_t cap);

/* ---- runtime side ----------------------------------------------------------------- */

/* A registry; revocations are saved under data_dir (copied). */
al_sess_reg_t *al_sess_reg_new(const char *data_dir);
/* After every worker has been joined (no entry is left). */
void al_sess_reg_free(al_sess_reg_t **r);

/* A request to end one session, posted to its worker's inbox. */
typedef struct al_sess_kill {
    char id[64];
    char ref[64];               /* the audit id of the admin event; "" if none */
    char by[128];               /* who asked */
    char *note;                 /* operator's text, owned */
    struct al_sess_kill *next;
} al_sess_kill_t;
void al_sess_kill_free(al_sess_kill_t **k);

/* Worker thread, from its wake-up: adopts `rev` (a reference the inbox held,
 * or NULL for no change), ends every session whose agent it revokes, then
 * runs the posted kills (a list, freed here). */
void al_sess_worker_wake(struct al_worker *w, al_revset_t *rev, al_sess_kill_t *kills);

/* ---- control thread (admin API) --------------------------------------------------- */

/* Appends {"sessions":[...]} (optionally only agent's) to b. */
int al_sess_list_json(struct al_runtime *rt, const char *agent, al_buf_t *b);
/* Asks the session's worker to end it. AL_OK when a live session had this
 * id (it closes shortly after), AL_ERR when none. */
int al_sess_kill(struct al_runtime *rt, const char *id, const char *note, const char *by,
                 const char *ref);
/* True while a session with this id is registered. */
bool al_sess_exists(struct al_runtime *rt, const char *id);
/* Live sessions of agent right now. */
size_t al_sess_count_agent(struct al_runtime *rt, const char *agent);
/* When agent was last seen (session identified, action, end), 0 if never
 * since start. */
double al_sess_last_seen(struct al_runtime *rt, const char *agent);
/* The same for n agents in one pass under the lock (for `GET /v1/agents`):
 * live[i] sessions and last_seen[i] of names[i]. */
void al_sess_agent_stats(struct al_runtime *rt, const char *const *names, size_t n,
                         size_t *live, double *last_seen);

/* Disables agent: a new revocation set with it, saved under
 * server.data_dir before anything else, then handed to every worker, whose
 * sessions of that agent end at once; then the revoke hooks run. On a save
 * failure the agent is still revoked in memory (stop the damage first) and
 * AL_ERR is returned with a message saying it will not survive a restart. */
int al_killswitch_disable(struct al_runtime *rt, const al_revoked_t *e, char *err, size_t cap);
/* Re-enables agent. Saved first: if the save fails nothing changes (fail
 * closed) and AL_ERR carries why. AL_AGAIN when agent was not disabled. */
int al_killswitch_enable(struct al_runtime *rt, const char *agent, char *err, size_t cap);

/* Hook for work held on behalf of an agent that must not outlive its
 * revocation (held approvals): fn(ud, agent, reason, by) runs on the
 * control thread right after a disable took effect. At most 8 hooks. */
typedef void (*al_revoke_hook_fn)(void *ud, const char *agent, const char *reason,
                                  const char *by);
int al_killswitch_on_revoke(struct al_runtime *rt, al_revoke_hook_fn fn, void *ud);

#endif
