/*
 * masking.h - the config's `masking:` entries compiled into mask engines
 * (src/mask), once per config snapshot.
 *
 * Entries without a name apply to every response of their targets: they
 * are merged into one engine per target. A named entry applies only to
 * actions allowed by a policy rule that lists it under `masking:`; it gets
 * its own engine.
 */
#ifndef AL_POLICY_MASKING_H
#define AL_POLICY_MASKING_H

#include "core/config.h"
#include "mask/mask.h"

typedef struct al_mask_set al_mask_set_t;

/* Compiles cfg's masking entries. NULL with errs ("FILE:LINE:COL: ...")
 * for unknown detectors or styles, bad patterns, a hash style without
 * mask_key_env/mask_key_file, or a policy naming no masking entry. A config
 * without masking gives an empty set (never NULL on success). */
al_mask_set_t *al_mask_set_build(const al_config_t *cfg, al_config_errors_t *errs);
void al_mask_set_free(al_mask_set_t **s);

/* The always-on engine of a target, or NULL when none applies. Borrowed
 * from the set. */
al_mask_engine_t *al_mask_set_target(const al_mask_set_t *s, const char *target);
/* True when any entry that applies to target (named or not) has column
 * rules: results without column names (COPY TO) cannot honour them. */
bool al_mask_set_has_columns(const al_mask_set_t *s, const char *target);
/* A named entry's engine when it applies to target, else NULL. */
al_mask_engine_t *al_mask_set_named(const al_mask_set_t *s, const char *name, const char *target);

#endif
