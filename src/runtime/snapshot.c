/* snapshot.c - the immutable per-config state every thread reads. */
#include <stdatomic.h>
#include <stdlib.h>

#include "policy/masking.h"
#include "policy/policy.h"
#include "runtime/runtime.h"

al_snapshot_t *al_snapshot_ref(al_snapshot_t *s)
{
    if (s)
        atomic_fetch_add_explicit((_Atomic int *)&s->refs, 1, memory_order_relaxed);
    return s;
}

void al_snapshot_unref(al_snapshot_t **ps)
{
    al_snapshot_t *s = *ps;
    *ps = NULL;
    if (!s || atomic_fetch_sub_explicit((_Atomic int *)&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    al_verifier_free(&s->verifier);
    al_policy_free(&s->policy);
    al_mask_set_free(&s->masks);
    al_config_free(s->cfg);
    free(s);
}
