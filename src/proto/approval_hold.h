/*
 * approval_hold.h - a gateway's side of an `approve` verdict (docs/approvals.md).
 *
 * Shared by the PostgreSQL and HTTP gateways. Every call into the
 * approvals service (it fsyncs) runs on the libuv pool (uv_queue_work);
 * results come back on the session's worker loop through the callback.
 * One hold per held action:
 *
 *   al_hold_start   off-loop: a grant for the action?  -> GRANTED
 *                   else raise a request                -> REFUSED (could not)
 *                     retry mode                        -> RETRY (refuse now)
 *                     wait mode: register a waiter      -> WAITING, then later
 *                                                          APPROVED (grant claimed)
 *                                                          or ENDED (denied, ...)
 *   al_hold_detach  the gateway is done with the hold (after a final
 *                   outcome, or because its client went away: a request
 *                   still waiting is then cancelled, "client_disconnected")
 *
 * The rule timeout is guarded here too: when a waiting request is not
 * decided one second after it expires (the control loop's tick lags), the
 * hold times it out itself (al_approvals_tick, off-loop).
 */
#ifndef AL_PROTO_APPROVAL_HOLD_H
#define AL_PROTO_APPROVAL_HOLD_H

#include <uv.h>

#include "approvals/approvals.h"
#include "runtime/runtime.h"

typedef struct al_hold al_hold_t;

typedef enum al_hold_outcome {
    AL_HOLD_GRANTED = 0, /* a live grant covers the action: proceed (use set) */
    AL_HOLD_REFUSED,     /* no request could be raised (status): refuse, fail closed */
    AL_HOLD_RETRY,       /* retry mode: request id raised (or the pending one): refuse */
    AL_HOLD_WAITING,     /* wait mode: request id raised; keep holding, more follows */
    AL_HOLD_APPROVED,    /* approved and its grant claimed (use set): proceed */
    AL_HOLD_ENDED,       /* denied, timed out, cancelled, abandoned (state, reason),
                            or approved but the grant could not be claimed
                            (state approved, reason "grant_unavailable") */
} al_hold_outcome_t;

/* What the callback is told; valid during the call only. */
typedef struct al_hold_result {
    al_hold_outcome_t outcome;
    const char *id;               /* the request ("" for REFUSED) */
    double expires_at;            /* WAITING/RETRY: when the request times out */
    al_approval_status_t status;  /* REFUSED: why */
    al_approval_state_t state;    /* ENDED */
    const char *reason;           /* ENDED: denial reason or cause, "" if none */
    const al_grant_use_t *use;    /* GRANTED, APPROVED */
} al_hold_result_t;

/* Called on the loop given to al_hold_start. After any outcome but
 * WAITING, no more calls come: detach then. */
typedef void (*al_hold_cb)(void *ud, const al_hold_result_t *r);

/* Starts a hold for r (every string, the groups and the action are
 * copied; r->rule must live in snap, which is referenced until the request
 * is stored) against rt->approvals (not NULL), which outlives the hold. A
 * new request wakes the control loop's approvals timer
 * (al_runtime_approvals_kick) so its expiry is ticked on time. Returns the
 * hold (the caller owns it: al_hold_detach). Call on loop's thread. */
al_hold_t *al_hold_start(uv_loop_t *loop, al_runtime_t *rt, al_snapshot_t *snap,
                         const al_approval_req_t *r, al_hold_cb cb, void *ud);

/* No more calls of the callback. A request still waiting is cancelled
 * ("client_disconnected") off-loop; the hold frees itself when the last
 * off-loop job and the waiter registration are gone. Accepts *h == NULL;
 * clears *h. */
void al_hold_detach(al_hold_t **h);

/* The gateway session session_id ended after it raised a request or used
 * a grant: al_approvals_session_end off-loop (pending `wait` requests are
 * cancelled, `session` grants end). Fire and forget. */
void al_hold_session_end(uv_loop_t *loop, al_approvals_t *a, const char *session_id);

/* The agent-facing text for a final outcome or a refusal (no trailing
 * newline), into out. The texts name the request id and how to decide it:
 *   RETRY    "airlock: approval required (request ID); ask an approver:
 *             airlock approvals approve ID"
 *   WAITING  "airlock: approval required (request ID); holding this action
 *             for up to Ns until an approver runs: airlock approvals approve ID"
 *   ENDED    "airlock: approval denied (request ID): REASON" / "... timed out
 *             (request ID): nobody decided within the rule's timeout" / ...
 *   REFUSED  "airlock: approval required but no request could be raised (CODE)" */
void al_hold_message(const al_hold_result_t *r, char *out, size_t cap);

/* The audit reason for an outcome, into buf (cap >= 64) and returned:
 * "approval_grant:GRANT_ID" (GRANTED, APPROVED: each grant use names its
 * grant), "approval_required" (RETRY, WAITING), "approval_denied",
 * "approval_timed_out", "approval_cancelled", "approval_abandoned",
 * "approval_grant_unavailable", or "approval_" + the status code (REFUSED,
 * e.g. "approval_too_many_pending"). */
const char *al_hold_audit_reason(const al_hold_result_t *r, char *buf, size_t cap);

#endif
