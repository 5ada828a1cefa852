/*
 * config_int.h - internals shared by the config loader's files (not for use
 * outside src/core/config*.c):
 *   config_tree.c   YAML text -> a small node tree, refusing hostile YAML
 *   config_value.c  diagnostics, did-you-mean, addresses, URLs, paths
 *   config.c        the schema tables and the walk that fills al_config_t
 */
#ifndef AL_CONFIG_INT_H
#define AL_CONFIG_INT_H

#include "core/config.h"

/* ---- node tree ------------------------------------------------------------ */

typedef enum al__cfg_kind {
    AL__CFG_SCALAR = 0,
    AL__CFG_SEQ,
    AL__CFG_MAP,
} al__cfg_kind_t;

typedef struct al__cfg_node al__cfg_node_t;
struct al__cfg_node {
    al__cfg_kind_t kind;
    int line, col;         /* 1-based, from the libyaml start mark */
    bool plain;            /* an unquoted scalar (only these can be null/bool) */
    bool bad;              /* already reported (alias, tag): skip silently */
    char *val;             /* scalar bytes, NUL-terminated; owned */
    size_t len;
    al__cfg_node_t **kids; /* seq: items; map: key, value, key, value, ... */
    size_t n;
};

/* ---- diagnostics ------------------------------------------------------------ */

typedef struct al__cfg_err {
    int line, col;
    size_t seq;
    char *msg;
} al__cfg_err_t;

/* Errors collected while loading; sorted into file order at the end. */
typedef struct al__cfg_diag {
    const char *file;
    al__cfg_err_t *v;
    size_t n, cap;
    bool truncated; /* more than AL__CFG_MAX_ERRORS: the rest were dropped */
} al__cfg_diag_t;

#define AL__CFG_MAX_ERRORS 1000

/* Records "msg" at line:col (1-based). Config-sized: aborts on OOM. */
void al__cfg_error(al__cfg_diag_t *d, int line, int col, const char *fmt, ...)
    AL_PRINTF(4, 5);
/* Same, at a node's position. */
void al__cfg_error_at(al__cfg_diag_t *d, const al__cfg_node_t *n, const char *fmt, ...)
    AL_PRINTF(3, 4);
/* Moves the messages, sorted by position, into errs as "FILE:LINE:COL: msg"
 * and empties d. */
void al__cfg_diag_finish(al__cfg_diag_t *d, al_config_errors_t *errs);
void al__cfg_diag_free(al__cfg_diag_t *d);

/* ---- YAML -> tree --------------------------------------------------------- */

/* Parses data (len bytes, need not be NUL-terminated) into a tree owned by
 * the caller (al__cfg_node_free). Returns NULL for an empty stream, or for
 * a fatal problem (syntax error, a second document, nesting deeper than
 * AL_CONFIG_MAX_DEPTH), which is then recorded in d. Aliases, anchors and
 * tags are recorded in d too and the nodes marked bad, so that the rest of
 * the file is still checked. */
al__cfg_node_t *al__cfg_parse(al__cfg_diag_t *d, const char *data, size_t len);
void al__cfg_node_free(al__cfg_node_t *n);
/* A plain scalar "", "~", "null", "Null" or "NULL". */
bool al__cfg_is_null(const al__cfg_node_t *n);
/* The value of the first scalar key equal to key in map; NULL when absent. */
const al__cfg_node_t *al__cfg_map_get(const al__cfg_node_t *map, const char *key);

/* ---- did-you-mean ----------------------------------------------------------- */

/* Accumulates the closest candidate to word: Levenshtein distance <= 2, or
 * <= 1 when the candidate is at most 4 characters long. */
typedef struct al__cfg_suggest {
    const char *word;
    const char *best;
    size_t dist;
} al__cfg_suggest_t;

void al__cfg_suggest_init(al__cfg_suggest_t *s, const char *word);
void al__cfg_suggest_add(al__cfg_suggest_t *s, const char *cand);
/* Levenshtein distance; strings longer than 64 bytes count as far apart. */
size_t al__cfg_edit_distance(const char *a, const char *b);

/* ---- values ------------------------------------------------------------------ */

/* Checks "host:port" (IPv4, [IPv6] or an RFC 1123 hostname; port 1-65535).
 * Returns NULL when valid, else what is wrong and how to fix it. */
const char *al__cfg_check_hostport(const char *s);
/* Checks a JWKS URL: https://host[:port]/..., or http:// to a loopback host
 * (127.0.0.0/8, ::1, localhost). Returns NULL or the problem. */
const char *al__cfg_check_jwks_uri(const char *s);
/* True for 127.0.0.0/8, ::1 and "localhost" (host without brackets). */
bool al__cfg_is_loopback(const char *host, size_t len);

/* The absolute, normalized directory holding file (relative to the current
 * directory). Returns NULL with errno set when getcwd fails. Caller frees. */
char *al__cfg_base_dir(const char *file);
/* Joins base and p (unless p is absolute) and removes ".", ".." and repeated
 * slashes lexically. Caller frees. */
char *al__cfg_path_resolve(const char *base, const char *p);

#endif
