/*
 * config.c - the config schema as tables, and the walk that fills al_config_t.
 *
 * Every mapping of the file has a schema: a table of keys, each naming a
 * storage type, the member it fills (offsetof), its default, its range and
 * optional hooks. Unknown, duplicate and missing keys, defaults and
 * al_config_free all follow from the tables, so a new section (targets,
 * policies, masking, ...) is a struct, a key table and one line in its
 * parent's table. Rules that span keys or entries live in a schema's check.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "core/config_int.h"

typedef struct cfg_ctx cfg_ctx_t;
typedef struct cfg_key cfg_key_t;
typedef struct cfg_schema cfg_schema_t;

typedef enum cfg_type {
    CT_STR = 0,  /* char *, non-empty */
    CT_NAME,     /* char *, [a-z0-9][a-z0-9_.-]* */
    CT_PATH,     /* char *, made absolute against the config file's directory */
    CT_BOOL,     /* bool: true or false, unquoted */
    CT_INT,      /* int in [lo, hi] */
    CT_DURATION, /* double seconds in [lo, hi]; hi < 0: no upper bound */
    CT_ENUM,     /* an int-sized enum; aux: cfg_enum_t[] ending with {NULL} */
    CT_ALGS,     /* unsigned al_alg_t bit set */
    CT_STRLIST,  /* char ** at off, size_t count at off_n; at least lo items */
    CT_MAP,      /* a nested struct at off; aux: its schema */
    CT_LIST,     /* an array of structs at off, size_t count at off_n; aux: schema */
} cfg_type_t;

typedef void (*cfg_parse_fn)(cfg_ctx_t *c, const cfg_key_t *k, const al__cfg_node_t *v,
                             void *obj);

struct cfg_key {
    const char *name;
    cfg_type_t type;
    size_t off, off_n;
    double lo, hi;
    double def;        /* default of a numeric, bool or enum member */
    const char *defs;  /* default of a string or path member (NULL: none) */
    const void *aux;
    cfg_parse_fn parse;                  /* replaces the type's parser */
    const char *(*check)(const char *s); /* CT_STR: NULL or what is wrong */
    const char *hint;  /* set: the key is required; how to add it */
};

typedef struct cfg_enum {
    const char *name;
    int value;
} cfg_enum_t;

/* Where each known key of one mapping was found (index = key table index). */
typedef struct cfg_seen {
    const al__cfg_node_t *key, *val;
} cfg_seen_t;

struct cfg_schema {
    const cfg_key_t *keys;
    size_t n_keys;
    size_t size;        /* sizeof the struct, for CT_LIST elements */
    ptrdiff_t line_off; /* offset of an int "line" member, or -1 */
    /* Rules across keys, run after the mapping's keys were read. */
    void (*check)(cfg_ctx_t *c, const cfg_schema_t *s, const cfg_seen_t *seen, void *obj);
};

#define CFG_MAX_KEYS 32
#define CFG_PATH_MAX 256

struct cfg_ctx {
    al__cfg_diag_t *d;
    const char *base_dir;
    char path[CFG_PATH_MAX]; /* where we are: "issuers[0].audience" */
};

#define FIELD(obj, off, T) ((T *)((char *)(obj) + (off)))

static void walk_map(cfg_ctx_t *c, const cfg_schema_t *s, const al__cfg_node_t *map,
                     void *obj);

/* ---- messages ------------------------------------------------------------------- */

#define QBUF 80
/* s made safe to echo: control bytes escaped, long values cut. */
static const char *quote(char *buf, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (; *s && o + 8 < QBUF; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch < 0x20 || ch == 0x7f) {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[ch >> 4];
            buf[o++] = hex[ch & 15];
        } else {
            buf[o++] = (char)ch;
        }
    }
    if (*s) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}
#define Q(s) quote((char[QBUF]){0}, (s))

static const char *kind_name(const al__cfg_node_t *n)
{
    return n->kind == AL__CFG_MAP ? "a mapping" : n->kind == AL__CFG_SEQ ? "a list" : "a string";
}

/* "0s", "250ms", "5m", "30d": the largest unit that divides exactly. */
static const char *fmt_dur(char *buf, double s)
{
    static const struct {
        double secs;
        const char *unit;
    } units[] = {{86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}};
    for (size_t i = 0; i < AL_ARRAY_LEN(units); i++) {
        double n = s / units[i].secs;
        if (s > 0 && n == (double)(long long)n) {
            snprintf(buf, 32, "%lld%s", (long long)n, units[i].unit);
            return buf;
        }
    }
    snprintf(buf, 32, s == 0 ? "0s" : "%gms", s * 1000);
    return buf;
}
#define DUR(s) fmt_dur((char[32]){0}, (s))

static size_t path_push(cfg_ctx_t *c, const char *key, size_t idx, bool is_idx)
{
    size_t mark = strlen(c->path);
    size_t room = sizeof c->path - mark;
    if (is_idx)
        snprintf(c->path + mark, room, "[%zu]", idx);
    else
        snprintf(c->path + mark, room, "%s%s", mark ? "." : "", key);
    return mark;
}

static void path_pop(cfg_ctx_t *c, size_t mark) { c->path[mark] = '\0'; }

/* ---- scalar parsers ------------------------------------------------------------- */

/* The non-empty string in v, or NULL after saying why there is none. */
static const char *string_value(cfg_ctx_t *c, const al__cfg_node_t *v)
{
    if (v->kind != AL__CFG_SCALAR) {
        al__cfg_error_at(c->d, v, "%s must be a string, not %s", c->path, kind_name(v));
        return NULL;
    }
    if (strlen(v->val) != v->len) {
        al__cfg_error_at(c->d, v, "%s contains a NUL byte; remove it", c->path);
        return NULL;
    }
    if (al__cfg_is_null(v) || v->len == 0) {
        al__cfg_error_at(c->d, v, "%s is empty; give it a value or remove it", c->path);
        return NULL;
    }
    return v->val;
}

static void set_str(void *obj, size_t off, char *s)
{
    char **f = FIELD(obj, off, char *);
    al_free(f);
    *f = s;
}

static void parse_str(cfg_ctx_t *c, const cfg_key_t *k, const al__cfg_node_t *v, void *obj)
{
    const char *s = string_value(c, v);
    if (!s)
        return;
    const char *err = k->check ? k->check(s) : NULL;
    if (err) {
        al__cfg_error_at(c->d, v, "%s %s; got '%s'", c->path, err, Q(s));
        return;
    }
    set_str(obj, k->off, al_xstrdup(s));
}

static bool is_name(const char *s)
{
    if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_.-") == strlen(s);
}

static void parse_name(cfg_ctx_t *c, const cfg_key_t *k, const al__cfg_node_t *v, void *obj)
{
    const char *s = string_value(c, v);
    if (!s)
        return;
    if (!is_name(s)) {
        al__cfg_error_at(c->d, v,
                         "%s '%s' is not a valid name; use lowercase letters, digits, '_', "
                         "'.' and '-', starting with a letter or digit (e.g. 'billing-bot')",
                         c->path, Q(s));
        return;
    }
    set_str(obj, k->off, al_xstrdup(s));
}

static void parse_path(cfg_ctx_t *c, const cfg_key_t *k, const al__cfg_node_t *v, void *obj)
{
    const char *s = string_value(c, v);
    if (!s)
        return;
    if (s[0] == '~') {
        al__cfg_error_at(c->d, v,
                         "%s '%s': '~' is not expanded; use an absolute path or one "
                         "relative to the config file",
                         c->path, Q(s));
        return;
    }
    set_str(obj, k->off, al__cfg_path_resolve(c->base_dir, s));
}

static void parse_bool(cfg_ctx_t *c, const cfg_key_t *k, const al__cfg_node_t *v, void *obj)
{
    if (v->kind != AL__CFG_SCALAR) {
        al__cfg_error_at(c->d, v, "%s must be true or false, not %s", c->path, kind_name(v));
        return;
    }
    bool t = !strcmp(v->val, "true"), f = !strcmp(v->val, "false");
    if (!v->plain || (!t && !f)) {
        al__cfg_error_at(c->d, v, "%s must be true or false (unquoted); got '%s'", c->path,
                         Q(v->val));
        return;
    }
    *FIELD(obj, k->off, bool) = t;
}

/* A plain decimal integer in [lo, hi]. */
static bool int_in(const char *s, double lo, double hi, int *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 9 || strspn(s, "0123456789") != n)
        return false;
    long v = strtol(s, NULL, 10);
    if ((double)v < lo || (double)v > hi)
        return false;
    *out = (int)v;
    return true;
}

static void parse_int(cfg_ctx_t *c, const cfg_key_t *k, const al__cfg_node_t *v, void *obj)
{
    if (v->kind != AL__CFG_SCALAR)
        al__cfg_error_at(c->d, v, "%s must be an integer from %.0f to %.0f, not %s", c->path,
                         k->lo, k->hi, kind_name(v));
    else if (!int_in(v->val, k->lo, k->hi, FIELD(obj, k->off, int)))
        al__cfg_error_at(c->d, v, "%s must be an integer from %.0f to %.0f; got '%s'", c->path,
                         k->lo, k->hi, Q(v->val));
}

/* server.workers: "auto" (stored as 0: one per core) or an integer. */
static void parse_workers(cfg_ctx_t *c, const cfg_key_t *k, const al__cfg_node_t *v,
                          void *obj)
{
    if (v->kind == AL__CFG_SCALAR && !strcmp(v->val, "auto")) {
        *FIELD(obj, k->off, int) = 0;
        return;
    }
    if (v->kind != AL__CFG_SCALAR)
        al__cfg_error_at(c->d, v, "%s must be 'auto' or an integer from %.0f to %.0f, not %s",
                         c->path, k->lo, k->hi, kind_name(v));
    else if (!int_in(v->val, k->lo, k->hi, FIELD(obj, k->off, int)))
        al__cfg_error_at(c->d, v, "%s must be 'auto' or an integer from %.0f to %.0f; got '%s'",
                         c->path, k->lo, k->hi, Q(v->val));
}

static void parse_duration(cfg_ctx_t *c, const cfg_key_t *k, const al__cfg_node_t *v,
                           void *obj)
{
    if (v->kind != AL__CFG_SCALAR) {
        al__cfg_error_at(c->d, v, "%s must be a duration such as 30s, not %s", c->path,
                         kind_name(v));
        return;
    }
    double secs;
    if (strlen(v->val) != v->len || al_parse_duration(v->val, &secs) != AL_OK) {
        al__cfg_error_at(c->d, v,
                         "%s is not a duration: '%s'; write a number with a unit: 250ms, "
                         "90s, 15m, 24h or 7d",
                         c->path, Q(v->val));
        return;
    }
    if (secs < k->lo || (k->hi >= 0 && secs > k->hi)) {
        if (k->hi >= 0)
            al__cfg_error_at(c->d, v, "%s must be between %s and %s; got '%s'", c->path,
                             DUR(k->lo), DUR(k->hi), Q(v->val));
        else
            al__cfg_error_at(c->d, v, "%s must be at least %s; got '%s'", c->path,
                             DUR(k->lo), Q(v->val));
        return;
    }
    *FIELD(obj, k->off, double) = secs;
}

static void parse_enum(cfg_ctx_t *c, const cfg_key_t *k, const al__cfg_node_t *v, void *obj)
{
    const cfg_enum_t *e = k->aux;
    const char *s = string_value(c, v);
    if (!s)
        return;
    al__cfg_suggest_t sug;
    al__cfg_suggest_init(&sug, s);
    al_buf_t names;
    al_buf_init(&names);
    for (size_t i = 0; e[i].name; i++) {
        if (!strcmp(s, e[i].name)) {
            memcpy(FIELD(obj, k->off, int), &e[i].value, sizeof(int));
            al_buf_free(&names);
            return;
        }
        al__cfg_suggest_add(&sug, e[i].name);
        al_buf_printf(&names, "%s%s", i ? ", " : "", e[i].name);
    }
    if (sug.best)
        al__cfg_error_at(c->d, v, "%s must be one of %s; got '%s'; did you mean '%s'?",
                         c->path, names.p, Q(s), sug.best);
    else
        al__cfg_error_at(c->d, v, "%s must be one of %s; got '%s'", c->path, names.p, Q(s));
    al_buf_free(&names);
}

/* ---- lists ---------------------------------------------------------------------------- */

static void free_strlist(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        al_free(&v[i]);
    al_free(&v);
}

/* Fills the char ** at k->off and the count at k->off_n from the items of
 * list that are valid strings; reports the others. */
static void store_strlist(cfg_ctx_t *c, const cfg_key_t *k, const al__cfg_node_t *const *items,
                          size_t n, void *obj)
{
    char ***arr = FIELD(obj, k->off, char **);
    size_t *cnt = FIELD(obj, k->off_n, size_t);
    free_strlist(*arr, *cnt);
    *arr = al_xcalloc(n ? n : 1, sizeof(char *));
    *cnt = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i]->bad)
            continue;
        size_t mark = path_push(c, NULL, i, true);
        const char *s = string_value(c, items[i]);
        path_pop(c, mark);
        if (s)
            (*arr)[(*cnt)++] = al_xstrdup(s);
    }
}

static void parse_strlist(cfg_ctx_t *c, const cfg_key_t *k, const al__cfg_node_t *v,
                          void *obj)
{
    if (v->kind != AL__CFG_SEQ) {
        al__cfg_error_at(c->d, v, "%s must be a list such as [a, b], not %s", c->path,
                         kind_name(v));
        return;
    }
    if (v->n < (size_t)k->lo) {
        al__cfg_error_at(c->d, v, "%s must list at least %.0f value", c->path, k->lo);
        return;
    }
    store_strlist(c, k, (const al__cfg_node_t *const *)v->kids, v->n, obj);
}

/* issuers[].audience: one string, or a non-empty list of strings. */
static void parse_audience(cfg_ctx_t *c, const cfg_key_t *k, const al__cfg_node_t *v,
                           void *obj)
{
    if (v->kind == AL__CFG_SCALAR)
        store_strlist(c, k, &v, 1, obj);
    else
        parse_strlist(c, k, v, obj);
}

/* issuers[].algorithms: RFC 7518 §3.1 names of asymmetric algorithms only. */
static void parse_alg(cfg_ctx_t *c, const al__cfg_node_t *v, unsigned *set)
{
    const char *s = string_value(c, v);
    if (!s)
        return;
    al_alg_t a = al_alg_parse(s, strlen(s));
    if (a != AL_ALG_NONE) {
        *set |= (unsigned)a;
        return;
    }
    if (!strcasecmp(s, "none")) {
        al__cfg_error_at(c->d, v,
                         "%s: algorithm 'none' is never accepted: an unsigned token proves "
                         "nothing (RFC 8725 §3.1); remove it",
                         c->path);
        return;
    }
    if (!strcasecmp(s, "HS256") || !strcasecmp(s, "HS384") || !strcasecmp(s, "HS512")) {
        al__cfg_error_at(c->d, v,
                         "%s: algorithm '%s' is never accepted: with a shared HMAC secret "
                         "anyone who can verify can also mint tokens; use an asymmetric "
                         "algorithm such as RS256 or ES256",
                         c->path, Q(s));
        return;
    }
    al__cfg_suggest_t sug;
    al__cfg_suggest_init(&sug, s);
    for (unsigned bit = 1; bit <= AL_ALG_EDDSA; bit <<= 1)
        al__cfg_suggest_add(&sug, al_alg_name((al_alg_t)bit));
    if (sug.best)
        al__cfg_error_at(c->d, v, "%s: unknown algorithm '%s'; did you mean '%s'?", c->path,
                         Q(s), sug.best);
    else
        al__cfg_error_at(c->d, v,
                         "%s: unknown algorithm '%s'; use RS256, RS384, RS512, PS256, PS384, "
                         "PS512, ES256, ES384, ES512 or EdDSA",
                         c->path, Q(s));
}

static void parse_algs(cfg_ctx_t *c, const cfg_key_t *k, const al__cfg_node_t *v, void *obj)
{
    if (v->kind != AL__CFG_SEQ || v->n == 0) {
        al__cfg_error_at(c->d, v,
                         "%s must be a non-empty list such as [RS256, ES256]; remove the key "
                         "to accept every asymmetric algorithm",
                         c->path);
        return;
    }
    unsigned set = 0;
    for (size_t i = 0; i < v->n; i++) {
        if (v->kids[i]->bad)
            continue;
        size_t mark = path_push(c, NULL, i, true);
        parse_alg(c, v->kids[i], &set);
        path_pop(c, mark);
    }
    if (set)
        *FIELD(obj, k->off, unsigned) = set;
}

/* ---- nested mappings and lists of entries ------------------------------------------ */

static void apply_defaults(cfg_ctx_t *c, const cfg_schema_t *s, void *obj);

static void parse_map(cfg_ctx_t *c, const cfg_key_t *k, const al__cfg_node_t *v, void *obj)
{
    if (v->kind != AL__CFG_MAP) {
        al__cfg_error_at(c->d, v, "%s must be a mapping of keys, not %s", c->path,
                         kind_name(v));
        return;
    }
    walk_map(c, k->aux, v, FIELD(obj, k->off, char));
}

static void parse_list(cfg_ctx_t *c, const cfg_key_t *k, const al__cfg_node_t *v, void *obj)
{
    const cfg_schema_t *s = k->aux;
    if (v->kind != AL__CFG_SEQ) {
        al__cfg_error_at(c->d, v, "%s must be a list; start each entry with '- ', not %s",
                         c->path, kind_name(v));
        return;
    }
    char *arr = al_xcalloc(v->n ? v->n : 1, s->size);
    *FIELD(obj, k->off, void *) = arr;
    *FIELD(obj, k->off_n, size_t) = v->n;
    for (size_t i = 0; i < v->n; i++) {
        const al__cfg_node_t *item = v->kids[i];
        void *elem = arr + i * s->size;
        apply_defaults(c, s, elem);
        if (s->line_off >= 0)
            *FIELD(elem, (size_t)s->line_off, int) = item->line;
        if (item->bad)
            continue;
        size_t mark = path_push(c, NULL, i, true);
        if (item->kind != AL__CFG_MAP)
            al__cfg_error_at(c->d, item, "%s must be a mapping of keys (key: value), not %s",
                             c->path, kind_name(item));
        else
            walk_map(c, s, item, elem);
        path_pop(c, mark);
    }
}

static const cfg_parse_fn parsers[] = {
    [CT_STR] = parse_str,       [CT_NAME] = parse_name,         [CT_PATH] = parse_path,
    [CT_BOOL] = parse_bool,     [CT_INT] = parse_int,           [CT_DURATION] = parse_duration,
    [CT_ENUM] = parse_enum,     [CT_ALGS] = parse_algs,         [CT_STRLIST] = parse_strlist,
    [CT_MAP] = parse_map,       [CT_LIST] = parse_list,
};

/* ---- the walk ------------------------------------------------------------------------ */

static void apply_defaults(cfg_ctx_t *c, const cfg_schema_t *s, void *obj)
{
    for (size_t i = 0; i < s->n_keys; i++) {
        const cfg_key_t *k = &s->keys[i];
        switch (k->type) {
        case CT_STR:
        case CT_NAME:
            if (k->defs)
                set_str(obj, k->off, al_xstrdup(k->defs));
            break;
        case CT_PATH:
            if (k->defs)
                set_str(obj, k->off, al__cfg_path_resolve(c->base_dir, k->defs));
            break;
        case CT_BOOL:
            *FIELD(obj, k->off, bool) = k->def != 0;
            break;
        case CT_INT:
        case CT_ENUM:
            *FIELD(obj, k->off, int) = (int)k->def;
            break;
        case CT_DURATION:
            *FIELD(obj, k->off, double) = k->def;
            break;
        case CT_ALGS:
            *FIELD(obj, k->off, unsigned) = (unsigned)k->def;
            break;
        case CT_MAP:
            apply_defaults(c, k->aux, FIELD(obj, k->off, char));
            break;
        case CT_STRLIST:
        case CT_LIST:
            break;
        }
    }
}

static void free_obj(const cfg_schema_t *s, void *obj)
{
    for (size_t i = 0; i < s->n_keys; i++) {
        const cfg_key_t *k = &s->keys[i];
        if (k->type == CT_STR || k->type == CT_NAME || k->type == CT_PATH) {
            al_free(FIELD(obj, k->off, char *));
        } else if (k->type == CT_STRLIST) {
            free_strlist(*FIELD(obj, k->off, char **), *FIELD(obj, k->off_n, size_t));
            *FIELD(obj, k->off, char **) = NULL;
        } else if (k->type == CT_MAP) {
            free_obj(k->aux, FIELD(obj, k->off, char));
        } else if (k->type == CT_LIST) {
            const cfg_schema_t *es = k->aux;
            char **arr = FIELD(obj, k->off, char *);
            for (size_t j = 0; *arr && j < *FIELD(obj, k->off_n, size_t); j++)
                free_obj(es, *arr + j * es->size);
            al_free(arr);
        }
    }
}

static const cfg_key_t *find_key(const cfg_schema_t *s, const char *name, size_t *idx)
{
    for (size_t i = 0; i < s->n_keys; i++)
        if (!strcmp(s->keys[i].name, name)) {
            *idx = i;
            return &s->keys[i];
        }
    return NULL;
}

static void unknown_key(cfg_ctx_t *c, const cfg_schema_t *s, const al__cfg_node_t *key)
{
    const char *where = c->path[0] ? c->path : "the config";
    al__cfg_suggest_t sug;
    al__cfg_suggest_init(&sug, key->val);
    for (size_t i = 0; i < s->n_keys; i++)
        al__cfg_suggest_add(&sug, s->keys[i].name);
    if (sug.best) {
        al__cfg_error_at(c->d, key, "unknown key '%s' in %s; did you mean '%s'?", Q(key->val),
                         where, sug.best);
        return;
    }
    al_buf_t b;
    al_buf_init(&b);
    for (size_t i = 0; i < s->n_keys; i++)
        al_buf_printf(&b, "%s%s", i ? ", " : "", s->keys[i].name);
    al__cfg_error_at(c->d, key, "unknown key '%s' in %s; the keys allowed here are %s",
                     Q(key->val), where, b.p ? b.p : "");
    al_buf_free(&b);
}

/* Reads one key: value pair; records it in seen. */
static void read_pair(cfg_ctx_t *c, const cfg_schema_t *s, const al__cfg_node_t *key,
                      const al__cfg_node_t *val, void *obj, cfg_seen_t *seen)
{
    const char *where = c->path[0] ? c->path : "the config";
    if (key->bad)
        return;
    if (key->kind != AL__CFG_SCALAR || strlen(key->val) != key->len) {
        al__cfg_error_at(c->d, key, "keys must be plain strings; found %s used as a key in %s",
                         key->kind ? kind_name(key) : "a string with a NUL byte", where);
        return;
    }
    size_t idx;
    const cfg_key_t *k = find_key(s, key->val, &idx);
    if (!k) {
        unknown_key(c, s, key);
        return;
    }
    if (seen[idx].key) {
        al__cfg_error_at(c->d, key, "duplicate key '%s' in %s (first at line %d); keep one",
                         k->name, where, seen[idx].key->line);
        return;
    }
    seen[idx] = (cfg_seen_t){key, val};
    if (val->bad)
        return;
    size_t mark = path_push(c, k->name, 0, false);
    bool container = k->type == CT_MAP || k->type == CT_LIST ||
                     (k->type == CT_STRLIST && k->lo == 0 && !k->parse);
    if (al__cfg_is_null(val) && container)
        ; /* "key:" with nothing after it: an empty section */
    else if (al__cfg_is_null(val))
        al__cfg_error_at(c->d, val, "%s is empty; give it a value%s", c->path,
                         k->hint ? "" : " or remove the key to use the default");
    else
        (k->parse ? k->parse : parsers[k->type])(c, k, val, obj);
    path_pop(c, mark);
}

static void walk_map(cfg_ctx_t *c, const cfg_schema_t *s, const al__cfg_node_t *map,
                     void *obj)
{
    cfg_seen_t seen[CFG_MAX_KEYS] = {0};
    for (size_t i = 0; i + 1 < map->n; i += 2)
        read_pair(c, s, map->kids[i], map->kids[i + 1], obj, seen);
    for (size_t i = 0; i < s->n_keys; i++)
        if (s->keys[i].hint && !seen[i].key)
            al__cfg_error_at(c->d, map, "missing required key '%s' in %s; %s", s->keys[i].name,
                             c->path[0] ? c->path : "the config", s->keys[i].hint);
    if (s->check)
        s->check(c, s, seen, obj);
}

static const cfg_seen_t *seen_get(const cfg_schema_t *s, const cfg_seen_t *seen,
                                  const char *name)
{
    size_t idx;
    return find_key(s, name, &idx) && seen[idx].key ? &seen[idx] : NULL;
}

/* ---- the schema ------------------------------------------------------------------------ */

#define DAY 86400.0

static const cfg_enum_t log_levels[] = {
    {"debug", AL_LOG_DEBUG}, {"info", AL_LOG_INFO}, {"warn", AL_LOG_WARN},
    {"error", AL_LOG_ERROR}, {NULL, 0},
};
static const cfg_enum_t overages[] = {
    {"deny", AL_OVERAGE_DENY}, {"ignore", AL_OVERAGE_IGNORE}, {NULL, 0},
};
_Static_assert(sizeof(al_log_level_t) == sizeof(int), "CT_ENUM stores an int");
_Static_assert(sizeof(al_overage_t) == sizeof(int), "CT_ENUM stores an int");

#define S(m) .off = offsetof(al_server_conf_t, m)
static const cfg_key_t server_keys[] = {
    {"admin_listen", CT_STR, S(admin_listen), .defs = "127.0.0.1:7480",
     .check = al__cfg_check_hostport},
    {"data_dir", CT_PATH, S(data_dir), .defs = "./var"},
    {"workers", CT_INT, S(workers), .lo = 1, .hi = 256, .def = 0, .parse = parse_workers},
    {"drain_timeout", CT_DURATION, S(drain_timeout), .lo = 0, .hi = 600, .def = 30},
    {"log_level", CT_ENUM, S(log_level), .aux = log_levels, .def = AL_LOG_INFO},
};
#undef S
static const cfg_schema_t server_schema = {server_keys, AL_ARRAY_LEN(server_keys),
                                           sizeof(al_server_conf_t), -1, NULL};

static void issuer_check(cfg_ctx_t *c, const cfg_schema_t *s, const cfg_seen_t *seen,
                         void *obj);

#define I(m) .off = offsetof(al_issuer_conf_t, m)
static const cfg_key_t issuer_keys[] = {
    {"name", CT_NAME, I(name), .hint = "add 'name: <short name>' (agents refer to it)"},
    {"issuer", CT_STR, I(issuer),
     .hint = "add 'issuer: <the exact \"iss\" value of its tokens>'"},
    {"audience", CT_STRLIST, I(audiences), .off_n = offsetof(al_issuer_conf_t, n_audiences),
     .lo = 1, .parse = parse_audience,
     .hint = "add 'audience: <the \"aud\" value airlock's tokens carry>'"},
    {"jwks_uri", CT_STR, I(jwks_uri), .check = al__cfg_check_jwks_uri},
    {"jwks_file", CT_PATH, I(jwks_file)},
    {"algorithms", CT_ALGS, I(algorithms), .def = AL_ALG_ALL_ASYMMETRIC},
    {"clock_skew", CT_DURATION, I(clock_skew), .lo = 0, .hi = 300, .def = 60},
    {"max_token_lifetime", CT_DURATION, I(max_token_lifetime), .lo = 0, .hi = -1, .def = 0},
    {"jwks_max_staleness", CT_DURATION, I(jwks_max_staleness), .lo = 1, .hi = 30 * DAY,
     .def = DAY},
    {"jwks_refresh_interval", CT_DURATION, I(jwks_refresh_interval), .lo = 1, .hi = 7 * DAY,
     .def = 3600},
    {"jwks_refetch_interval", CT_DURATION, I(jwks_refetch_interval), .lo = 1, .hi = 3600,
     .def = 30},
    {"agent_claim", CT_STR, I(agent_claim), .defs = "azp"},
    {"groups_claim", CT_STR, I(groups_claim), .defs = "groups"},
    {"tenant", CT_STR, I(tenant)},
    {"typ", CT_STR, I(typ)},
    {"allow_unknown_agents", CT_BOOL, I(allow_unknown_agents), .def = 0},
    {"group_overage", CT_ENUM, I(group_overage), .aux = overages, .def = AL_OVERAGE_DENY},
};
#undef I
static const cfg_schema_t issuer_schema = {issuer_keys, AL_ARRAY_LEN(issuer_keys),
                                           sizeof(al_issuer_conf_t),
                                           offsetof(al_issuer_conf_t, line), issuer_check};

#define A(m) .off = offsetof(al_agent_conf_t, m)
static const cfg_key_t agent_keys[] = {
    {"name", CT_NAME, A(name), .hint = "add 'name: <agent name>'"},
    {"issuer", CT_STR, A(issuer), .hint = "add 'issuer: <the name of an issuers[] entry>'"},
    {"subject", CT_STR, A(subject), .hint = "add 'subject: <the \"sub\" of its tokens>'"},
    {"owner", CT_STR, A(owner),
     .hint = "every agent needs an owner who answers for it; add 'owner: <email>'"},
    {"system", CT_STR, A(system)},
    {"groups", CT_STRLIST, A(groups), .off_n = offsetof(al_agent_conf_t, n_groups)},
};
#undef A
static const cfg_schema_t agent_schema = {agent_keys, AL_ARRAY_LEN(agent_keys),
                                          sizeof(al_agent_conf_t),
                                          offsetof(al_agent_conf_t, line), NULL};

/* ---- targets, policies, admin, audit ------------------------------------------------ */

static const cfg_enum_t protocols[] = {
    {"postgres", AL_PROTO_POSTGRES}, {"mysql", AL_PROTO_MYSQL}, {"http", AL_PROTO_HTTP},
    {"ssh", AL_PROTO_SSH}, {"tcp", AL_PROTO_TCP}, {NULL, 0},
};
/* Same order as al_sql_class_t (src/policy/sql_classify.h). */
static const cfg_enum_t sql_classes[] = {
    {"read", 0}, {"write", 1}, {"ddl", 2}, {"dcl", 3}, {"admin", 4}, {NULL, 0},
};
static const cfg_enum_t actions[] = {
    {"allow", AL_DECIDE_ALLOW}, {"deny", AL_DECIDE_DENY}, {"approve", AL_DECIDE_APPROVE},
    {NULL, 0},
};
static const cfg_enum_t audit_modes[] = {
    {"strict", AL_AUDIT_MODE_STRICT}, {"async", AL_AUDIT_MODE_ASYNC}, {NULL, 0},
};
static const cfg_enum_t approval_modes[] = {
    {"wait", AL_APPROVAL_WAIT}, {"retry", AL_APPROVAL_RETRY}, {NULL, 0},
};
_Static_assert(sizeof(al_proto_t) == sizeof(int), "CT_ENUM stores an int");
_Static_assert(sizeof(al_decision_t) == sizeof(int), "CT_ENUM stores an int");
_Static_assert(sizeof(al_audit_mode_t) == sizeof(int), "CT_ENUM stores an int");
_Static_assert(sizeof(al_approval_mode_t) == sizeof(int), "CT_ENUM stores an int");

static const cfg_enum_t tls_modes[] = {
    {"required", AL_TLS_REQUIRED}, {"off", AL_TLS_OFF}, {"optional", AL_TLS_OPTIONAL},
    {NULL, 0},
};
static const cfg_enum_t sslmodes[] = {
    {"disable", AL_SSLMODE_DISABLE}, {"require", AL_SSLMODE_REQUIRE},
    {"verify-full", AL_SSLMODE_VERIFY_FULL}, {NULL, 0},
};
_Static_assert(sizeof(al_tls_mode_t) == sizeof(int), "CT_ENUM stores an int");
_Static_assert(sizeof(al_sslmode_t) == sizeof(int), "CT_ENUM stores an int");

/* ---- HTTP upstreams ---------------------------------------------------------------- */

static bool url_host_ok(const char *h, size_t n, bool bracketed)
{
    if (!n || n > 253)
        return false;
    const char *ok = bracketed ? "0123456789abcdefABCDEF:." :
                     "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-";
    for (size_t i = 0; i < n; i++)
        if (!strchr(ok, h[i]))
            return false;
    if (bracketed)
        return memchr(h, ':', n) != NULL;
    return h[0] != '-' && h[0] != '.' && h[n - 1] != '-' && h[n - 1] != '.' &&
           !strstr(h, "..");
}

const char *al_config_http_url(const char *url, al_http_url_t *out)
{
    memset(out, 0, sizeof *out);
    size_t skip;
    if (!strncasecmp(url, "https://", 8)) {
        out->https = true;
        skip = 8;
    } else if (!strncasecmp(url, "http://", 7)) {
        skip = 7;
    } else {
        return "must start with http:// or https://, e.g. http://127.0.0.1:8080";
    }
    for (const char *c = url; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f)
            return "must not contain spaces or control characters; percent-encode them";
    const char *a = url + skip;
    size_t alen = strcspn(a, "/?#");
    if (strpbrk(a, "?#"))
        return "must not have a query or fragment; give the base URL only";
    if (memchr(a, '@', alen))
        return "must not carry credentials (user@host); put them in upstream.headers";
    const char *h = a, *rest;
    size_t hlen;
    if (alen && a[0] == '[') {
        const char *rb = memchr(a, ']', alen);
        if (!rb || !url_host_ok(a + 1, (size_t)(rb - a - 1), true))
            return "has an invalid IPv6 host; write http://[::1]:8080";
        h = a + 1;
        hlen = (size_t)(rb - a - 1);
        rest = rb + 1;
    } else {
        const char *colon = memchr(a, ':', alen);
        hlen = colon ? (size_t)(colon - a) : alen;
        if (!hlen)
            return "has no host; write http://host[:port]";
        if (!url_host_ok(a, hlen, false))
            return "has an invalid host; use a DNS name, an IPv4 address or an [IPv6] address";
        rest = a + hlen;
    }
    out->host = (al_str_t){h, hlen};
    out->port = out->https ? 443 : 80;
    if (rest < a + alen) {
        if (*rest != ':')
            return "has junk after the host; write http://host[:port][/path]";
        rest++;
        size_t pl = (size_t)(a + alen - rest);
        if (!pl || pl > 5 || strspn(rest, "0123456789") < pl)
            return "has an invalid port; use a number from 1 to 65535";
        int port = 0;
        for (size_t i = 0; i < pl; i++)
            port = port * 10 + (rest[i] - '0');
        if (port < 1 || port > 65535)
            return "has an invalid port; use a number from 1 to 65535";
        out->port = port;
    }
    /* RFC 3986 §3.3: path-abempty = *( "/" segment ), segment = *pchar. */
    const char *path = a + alen;
    size_t plen = strlen(path);
    static const char pchar[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                "0123456789-._~!$&'()*+,;=:@/%";
    if (strspn(path, pchar) != plen)
        return "has a character not allowed in a URL path; percent-encode it";
    for (size_t i = 0; i < plen; i++)
        if (path[i] == '%' && !(isxdigit((unsigned char)path[i + 1]) &&
                                isxdigit((unsigned char)path[i + 2])))
            return "has a '%' not followed by two hex digits";
    for (const char *seg = path; *seg == '/'; ) {
        size_t sl = strcspn(seg + 1, "/");
        if ((sl == 1 && seg[1] == '.') || (sl == 2 && seg[1] == '.' && seg[2] == '.'))
            return "must not contain '.' or '..' path segments";
        seg += 1 + sl;
    }
    while (plen && path[plen - 1] == '/')
        plen--;
    out->base = (al_str_t){path, plen};
    return NULL;
}

static const char *check_http_url(const char *s)
{
    al_http_url_t u;
    return al_config_http_url(s, &u);
}

#define H(m) .off = offsetof(al_http_header_conf_t, m)
static const cfg_key_t header_val_keys[] = {
    {"env", CT_STR, H(env)},
    {"file", CT_PATH, H(file)},
};
static void header_check(cfg_ctx_t *c, const cfg_schema_t *s, const cfg_seen_t *seen,
                         void *obj)
{
    AL_UNUSED(obj);
    const cfg_seen_t *f = seen_get(s, seen, "file");
    if (seen_get(s, seen, "env") && f)
        al__cfg_error_at(c->d, f->key, "%s: env and file are mutually exclusive; keep one",
                         c->path);
}
static const cfg_schema_t header_val_schema = {header_val_keys, AL_ARRAY_LEN(header_val_keys),
                                               sizeof(al_http_header_conf_t), -1,
                                               header_check};
/* Frees what parse_headers filled (the name is not a key of the value map). */
static const cfg_key_t header_all_keys[] = {
    {"env", CT_STR, H(env)},
    {"file", CT_PATH, H(file)},
    {"name", CT_STR, H(name)},
};
#undef H
static const cfg_schema_t header_free_schema = {header_all_keys, AL_ARRAY_LEN(header_all_keys),
                                                sizeof(al_http_header_conf_t), -1, NULL};

/* Fields airlock frames or sets itself (RFC 9110 §7.6.1 hop-by-hop, RFC
 * 9112 §6 framing, RFC 7239): a configured value would fight them. */
static const char *const header_reserved[] = {
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "te",
    "trailer", "upgrade", "forwarded", "x-request-id", "expect",
};

static void parse_headers(cfg_ctx_t *c, const cfg_key_t *k, const al__cfg_node_t *v, void *obj)
{
    if (v->kind != AL__CFG_MAP) {
        al__cfg_error_at(c->d, v, "%s must be a mapping of header name to { env: VAR } or "
                                  "{ file: PATH }, not %s", c->path, kind_name(v));
        return;
    }
    size_t n = v->n / 2;
    al_http_header_conf_t *arr = al_xcalloc(n ? n : 1, sizeof *arr);
    *FIELD(obj, k->off, al_http_header_conf_t *) = arr;
    *FIELD(obj, k->off_n, size_t) = n;
    for (size_t i = 0; i < n; i++) {
        const al__cfg_node_t *key = v->kids[2 * i], *val = v->kids[2 * i + 1];
        al_http_header_conf_t *h = &arr[i];
        h->line = key->line;
        if (key->bad || val->bad)
            continue;
        /* RFC 9110 §5.1: field-name = token. */
        static const char tchar[] = "!#$%&'*+-.^_`|~0123456789"
                                    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        if (key->kind != AL__CFG_SCALAR || !key->len || strlen(key->val) != key->len ||
            strspn(key->val, tchar) != key->len) {
            al__cfg_error_at(c->d, key, "%s: '%s' is not a valid header name; use letters, "
                                        "digits and '-' (e.g. X-Api-Key)", c->path,
                             key->kind == AL__CFG_SCALAR ? Q(key->val) : "");
            continue;
        }
        bool bad = !strncasecmp(key->val, "proxy-", 6);
        for (size_t j = 0; j < AL_ARRAY_LEN(header_reserved); j++)
            bad |= !strcasecmp(key->val, header_reserved[j]);
        if (bad) {
            al__cfg_error_at(c->d, key, "%s: airlock sets or frames '%s' itself; it cannot be "
                                        "configured", c->path, Q(key->val));
            continue;
        }
        for (size_t j = 0; j < i; j++)
            if (arr[j].name && !strcasecmp(arr[j].name, key->val)) {
                al__cfg_error_at(c->d, key, "%s: duplicate header '%s' (first at line %d; "
                                            "names are case-insensitive); keep one",
                                 c->path, Q(key->val), arr[j].line);
                bad = true;
            }
        if (bad)
            continue;
        h->name = al_xstrdup(key->val);
        size_t mark = path_push(c, key->val, 0, false);
        if (val->kind != AL__CFG_MAP) {
            al__cfg_error_at(c->d, val, "%s must be { env: VAR } or { file: PATH }, not %s; "
                                        "secrets never live in the config", c->path,
                             kind_name(val));
        } else {
            walk_map(c, &header_val_schema, val, h);
            if (!h->env && !h->file && !al__cfg_map_get(val, "env") &&
                !al__cfg_map_get(val, "file"))
                al__cfg_error_at(c->d, val, "%s needs 'env: VAR' or 'file: PATH'", c->path);
        }
        path_pop(c, mark);
    }
}

#define U(m) .off = offsetof(al_upstream_conf_t, m)
static const cfg_key_t upstream_keys[] = {
    {"host", CT_STR, U(host)}, /* required for postgres: target_check */
    {"port", CT_INT, U(port), .lo = 1, .hi = 65535, .def = 5432},
    {"database", CT_STR, U(database)},
    {"user", CT_STR, U(user)},
    {"password_env", CT_STR, U(password_env)},
    {"password_file", CT_PATH, U(password_file)},
    {"sslmode", CT_ENUM, U(sslmode), .aux = sslmodes, .def = AL_SSLMODE_DISABLE},
    {"ca_file", CT_PATH, U(ca_file)},
    {"connect_timeout", CT_DURATION, U(connect_timeout), .lo = 0.1, .hi = 300, .def = 10},
    {"url", CT_STR, U(url), .check = check_http_url},
    {"headers", CT_LIST, U(headers), .off_n = offsetof(al_upstream_conf_t, n_headers),
     .aux = &header_free_schema, .parse = parse_headers},
};
#undef U
static void upstream_check(cfg_ctx_t *c, const cfg_schema_t *s, const cfg_seen_t *seen,
                           void *obj)
{
    const al_upstream_conf_t *u = obj;
    const cfg_seen_t *pe = seen_get(s, seen, "password_env");
    const cfg_seen_t *pf = seen_get(s, seen, "password_file");
    if (pe && pf)
        al__cfg_error_at(c->d, pf->key,
                         "%s: password_env and password_file are mutually exclusive; keep one",
                         c->path);
    AL_UNUSED(u);
}
static const cfg_schema_t upstream_schema = {upstream_keys, AL_ARRAY_LEN(upstream_keys),
                                             sizeof(al_upstream_conf_t), -1, upstream_check};

/* The key node named key in a mapping node; NULL when absent. */
static const al__cfg_node_t *map_key(const al__cfg_node_t *map, const char *key)
{
    for (size_t i = 0; map && map->kind == AL__CFG_MAP && i + 1 < map->n; i += 2)
        if (map->kids[i]->kind == AL__CFG_SCALAR && !strcmp(map->kids[i]->val, key))
            return map->kids[i];
    return NULL;
}

/* Upstream keys that belong to one protocol only. */
static void upstream_proto_check(cfg_ctx_t *c, const al_target_conf_t *t,
                                 const cfg_seen_t *up)
{
    static const char *const pg_only[] = {"host", "port", "database", "user", "password_env",
                                          "password_file", "sslmode"};
    static const char *const http_only[] = {"url", "headers"};
    const al__cfg_node_t *m = up->val;
    if (m->kind != AL__CFG_MAP)
        return;
    const al_upstream_conf_t *u = &t->upstream;
    if (t->protocol == AL_PROTO_HTTP) {
        for (size_t i = 0; i < AL_ARRAY_LEN(pg_only); i++) {
            const al__cfg_node_t *k = map_key(m, pg_only[i]);
            if (k)
                al__cfg_error_at(c->d, k, "%s.upstream.%s does not apply to an http target; "
                                          "give the address as upstream.url (e.g. "
                                          "http://10.0.0.5:8080) and credentials in "
                                          "upstream.headers", c->path, pg_only[i]);
        }
        if (!map_key(m, "url"))
            al__cfg_error_at(c->d, m, "missing required key 'url' in %s.upstream; add "
                                      "'url: http://<host>:<port>' (or https://)", c->path);
        al_http_url_t hu;
        const al__cfg_node_t *ca = map_key(m, "ca_file");
        if (ca && u->url && !al_config_http_url(u->url, &hu) && !hu.https)
            al__cfg_error_at(c->d, ca, "%s.upstream.ca_file applies to https:// upstream URLs "
                                       "only; remove it or use https", c->path);
        return;
    }
    if (t->protocol == AL_PROTO_TCP) {
        for (size_t i = 0; i < AL_ARRAY_LEN(upstream_keys); i++) {
            const al__cfg_node_t *k = map_key(m, upstream_keys[i].name);
            if (k && strcmp(upstream_keys[i].name, "connect_timeout"))
                al__cfg_error_at(c->d, k, "%s.upstream.%s does not apply to a tcp target; list "
                                          "the addresses a CONNECT may reach in 'upstreams: "
                                          "[host:port, ...]' (only upstream.connect_timeout "
                                          "applies)", c->path, upstream_keys[i].name);
        }
        return;
    }
    for (size_t i = 0; i < AL_ARRAY_LEN(http_only); i++) {
        const al__cfg_node_t *k = map_key(m, http_only[i]);
        if (k)
            al__cfg_error_at(c->d, k, "%s.upstream.%s applies to http targets only; this "
                                      "target's protocol is %s", c->path, http_only[i],
                             al_proto_name(t->protocol));
    }
    if (!map_key(m, "host"))
        al__cfg_error_at(c->d, m, "missing required key 'host' in %s.upstream; add 'host: "
                                  "<upstream host name or address>'", c->path);
}

/* targets[].upstreams (tcp): a non-empty list of host:port, each checked like
 * `listen`, no entry twice. */
static void parse_upstreams(cfg_ctx_t *c, const cfg_key_t *k, const al__cfg_node_t *v,
                            void *obj)
{
    if (v->kind != AL__CFG_SEQ || v->n == 0) {
        al__cfg_error_at(c->d, v, "%s must be a non-empty list of host:port strings, e.g. "
                                  "[db.internal:5432]", c->path);
        return;
    }
    parse_strlist(c, k, v, obj);
    for (size_t i = 0; i < v->n; i++) {
        const al__cfg_node_t *it = v->kids[i];
        if (it->bad || it->kind != AL__CFG_SCALAR || al__cfg_is_null(it) || !it->len ||
            strlen(it->val) != it->len)
            continue; /* reported by parse_strlist */
        size_t mark = path_push(c, NULL, i, true);
        const char *err = al__cfg_check_hostport(it->val);
        if (err)
            al__cfg_error_at(c->d, it, "%s %s; got '%s'", c->path, err, Q(it->val));
        for (size_t j = 0; !err && j < i; j++)
            if (v->kids[j]->kind == AL__CFG_SCALAR && v->kids[j]->val &&
                !strcasecmp(v->kids[j]->val, it->val)) {
                al__cfg_error_at(c->d, it, "%s: duplicate entry '%s' (first at line %d); keep "
                                           "one", c->path, Q(it->val), v->kids[j]->line);
                break;
            }
        path_pop(c, mark);
    }
}

static void target_check(cfg_ctx_t *c, const cfg_schema_t *s, const cfg_seen_t *seen,
                         void *obj)
{
    const al_target_conf_t *t = obj;
    const cfg_seen_t *listen = seen_get(s, seen, "listen");
    const cfg_seen_t *up = seen_get(s, seen, "upstream");
    const cfg_seen_t *tls = seen_get(s, seen, "tls");
    const cfg_seen_t *ups = seen_get(s, seen, "upstreams");
    bool tcp = t->protocol == AL_PROTO_TCP;
    if (up)
        upstream_proto_check(c, t, up);
    if (ups && !tcp)
        al__cfg_error_at(c->d, ups->key, "%s.upstreams applies to tcp targets only; this "
                                         "target's protocol is %s, whose upstream goes under "
                                         "'upstream:'", c->path,
                         al_proto_name(t->protocol));
    if (tcp && listen && !ups)
        al__cfg_error_at(c->d, listen->key, "%s: a tcp target with 'listen' needs 'upstreams: "
                                            "[host:port, ...]', the addresses a CONNECT may "
                                            "reach", c->path);
    if (tcp && !(up && map_key(up->val, "connect_timeout")))
        ((al_target_conf_t *)obj)->upstream.connect_timeout = 5;
    if (listen && !up && !tcp)
        al__cfg_error_at(c->d, listen->key,
                         t->protocol == AL_PROTO_HTTP
                             ? "%s: a target with 'listen' needs 'upstream: { url: "
                               "http://host:port }'"
                             : "%s: a target with 'listen' needs 'upstream: { host: ..., "
                               "port: ... }'",
                         c->path);
    if (listen && t->protocol != AL_PROTO_POSTGRES && t->protocol != AL_PROTO_HTTP && !tcp)
        al__cfg_error_at(c->d, listen->key,
                         "%s: data-path listeners exist so far for protocols postgres, http "
                         "and tcp only",
                         c->path);
    const cfg_seen_t *http = seen_get(s, seen, "http");
    if (http && t->protocol != AL_PROTO_HTTP)
        al__cfg_error_at(c->d, http->key, "%s.http applies to http targets only; this "
                                          "target's protocol is %s", c->path,
                         al_proto_name(t->protocol));
    if (listen && (t->protocol == AL_PROTO_HTTP || tcp) && t->tls == AL_TLS_OPTIONAL)
        al__cfg_error_at(c->d, tls->val,
                         "%s: %s listener takes 'tls: required' or 'tls: off', not "
                         "optional", c->path, tcp ? "a tcp" : "an http");
    if (listen && t->tls != AL_TLS_OFF && (!t->tls_cert_file || !t->tls_key_file))
        al__cfg_error_at(c->d, tls ? tls->val : listen->key,
                         "%s: TLS (the default, 'tls: required') needs tls_cert_file and "
                         "tls_key_file; or set 'tls: off' for a loopback-only listener",
                         c->path);
}

static const cfg_enum_t http_compressed[] = {
    {"decompress", AL_HTTP_COMPRESSED_DECOMPRESS}, {"refuse", AL_HTTP_COMPRESSED_REFUSE},
    {NULL, 0},
};
_Static_assert(sizeof(al_http_compressed_t) == sizeof(int), "CT_ENUM stores an int");

#define H(m) .off = offsetof(al_http_conf_t, m)
static const cfg_key_t http_keys[] = {
    {"header_timeout", CT_DURATION, H(header_timeout), .lo = 0.1, .hi = 3600, .def = 30},
    {"idle_timeout", CT_DURATION, H(idle_timeout), .lo = 0.1, .hi = 86400, .def = 60},
    {"request_timeout", CT_DURATION, H(request_timeout), .lo = 0.1, .hi = 7 * DAY, .def = 300},
    {"max_request_line", CT_INT, H(max_request_line), .lo = 64, .hi = 1 << 20, .def = 8192},
    {"max_header_bytes", CT_INT, H(max_header_bytes), .lo = 256, .hi = 1 << 24, .def = 65536},
    {"max_headers", CT_INT, H(max_headers), .lo = 1, .hi = 100, .def = 100},
    {"redact_params", CT_STRLIST, H(redact_params),
     .off_n = offsetof(al_http_conf_t, n_redact_params)},
    {"pool_size", CT_INT, H(pool_size), .lo = 0, .hi = 100000, .def = 32},
    {"max_mask_body", CT_INT, H(max_mask_body), .lo = 1024, .hi = 1 << 30, .def = 8 << 20},
    {"compressed", CT_ENUM, H(compressed), .aux = http_compressed,
     .def = AL_HTTP_COMPRESSED_DECOMPRESS},
};
#undef H
static const cfg_schema_t http_schema = {http_keys, AL_ARRAY_LEN(http_keys),
                                         sizeof(al_http_conf_t), -1, NULL};

#define T(m) .off = offsetof(al_target_conf_t, m)
static const cfg_key_t target_keys[] = {
    {"listen", CT_STR, T(listen), .check = al__cfg_check_hostport},
    {"tls", CT_ENUM, T(tls), .aux = tls_modes, .def = AL_TLS_REQUIRED},
    {"tls_cert_file", CT_PATH, T(tls_cert_file)},
    {"tls_key_file", CT_PATH, T(tls_key_file)},
    {"upstream", CT_MAP, T(upstream), .aux = &upstream_schema},
    {"upstreams", CT_STRLIST, T(upstreams), .off_n = offsetof(al_target_conf_t, n_upstreams),
     .lo = 1, .parse = parse_upstreams},
    {"http", CT_MAP, T(http), .aux = &http_schema},
    {"session_grace", CT_DURATION, T(session_grace), .lo = 0, .hi = 7 * DAY, .def = 0},
    {"sasl_oauthbearer", CT_BOOL, T(sasl_oauthbearer), .def = 0},
    {"auth_timeout", CT_DURATION, T(auth_timeout), .lo = 0.1, .hi = 600, .def = 30},
    {"max_connections", CT_INT, T(max_connections), .lo = 1, .hi = 1000000, .def = 10000},
    {"name", CT_NAME, T(name), .hint = "add 'name: <target name>' (policies refer to it)"},
    {"protocol", CT_ENUM, T(protocol), .aux = protocols, .def = AL_PROTO_POSTGRES,
     .hint = "add 'protocol: postgres' (or mysql, http, ssh, tcp)"},
    {"sql_default_function_class", CT_ENUM, T(sql_default_function_class),
     .aux = sql_classes, .def = 0},
};
#undef T
static const cfg_schema_t target_schema = {target_keys, AL_ARRAY_LEN(target_keys),
                                           sizeof(al_target_conf_t),
                                           offsetof(al_target_conf_t, line), target_check};

#define W(m) .off = offsetof(al_when_conf_t, m), .off_n = offsetof(al_when_conf_t, n_##m), \
             .parse = parse_audience, .lo = 1
static const cfg_key_t when_keys[] = {
    {"sql", CT_STRLIST, W(sql)},
    {"tables", CT_STRLIST, W(tables)},
    {"schemas", CT_STRLIST, W(schemas)},
    {"functions", CT_STRLIST, W(functions)},
    {"methods", CT_STRLIST, W(methods)},
    {"paths", CT_STRLIST, W(paths)},
    {"hosts", CT_STRLIST, W(hosts)},
    {"commands", CT_STRLIST, W(commands)},
    {"hours", CT_STRLIST, W(hours)},
    {"days", CT_STRLIST, W(days)},
    {"timezone", CT_STR, .off = offsetof(al_when_conf_t, timezone)},
};
#undef W
static const cfg_schema_t when_schema = {when_keys, AL_ARRAY_LEN(when_keys),
                                         sizeof(al_when_conf_t), -1, NULL};

/* A webhook URL: http(s), https unless loopback (approval details are not
 * sent in clear over a network); a query is allowed (some services carry
 * their key there), userinfo and fragments are not. */
static const char *check_webhook_url(const char *s)
{
    if (strchr(s, '#'))
        return "must not contain a fragment ('#')";
    const char *auth = strstr(s, "://");
    if (auth && memchr(auth + 3, '@', strcspn(auth + 3, "/?")))
        return "must not carry credentials (user@host); give a secret URL with url_env or "
               "url_file, or secret headers";
    size_t n = strcspn(s, "?");
    char *base = al_xstrndup(s, n);
    al_http_url_t u;
    const char *err = al_config_http_url(base, &u);
    if (!err && !u.https && !al__cfg_is_loopback(u.host.p, u.host.len))
        err = "must use https (http is allowed only for loopback)";
    al_free(&base);
    return err;
}

#define WH(m) .off = offsetof(al_webhook_conf_t, m)
static const cfg_key_t webhook_keys[] = {
    {"url", CT_STR, WH(url), .check = check_webhook_url},
    {"url_env", CT_STR, WH(url_env)},
    {"url_file", CT_PATH, WH(url_file)},
    {"slack", CT_BOOL, WH(slack), .def = 0},
    {"headers", CT_LIST, WH(headers), .off_n = offsetof(al_webhook_conf_t, n_headers),
     .aux = &header_free_schema, .parse = parse_headers},
    {"tries", CT_INT, WH(tries), .lo = 1, .hi = 10, .def = 3},
    {"timeout", CT_DURATION, WH(timeout), .lo = 0.1, .hi = 120, .def = 10},
};
#undef WH
static void webhook_check(cfg_ctx_t *c, const cfg_schema_t *s, const cfg_seen_t *seen,
                          void *obj)
{
    AL_UNUSED(obj);
    const cfg_seen_t *u = seen_get(s, seen, "url"), *e = seen_get(s, seen, "url_env"),
                     *f = seen_get(s, seen, "url_file");
    if ((u != NULL) + (e != NULL) + (f != NULL) > 1)
        al__cfg_error_at(c->d, (f ? f : e)->key, "%s: url, url_env and url_file are mutually "
                                                 "exclusive; keep one", c->path);
}
static const cfg_schema_t webhook_schema = {webhook_keys, AL_ARRAY_LEN(webhook_keys),
                                            sizeof(al_webhook_conf_t), -1, webhook_check};

#define P(m) .off = offsetof(al_policy_conf_t, m)
#define PL(m) P(m), .off_n = offsetof(al_policy_conf_t, n_##m), .parse = parse_audience
static const cfg_key_t policy_keys[] = {
    {"name", CT_NAME, P(name), .hint = "add 'name: <rule name>' (decisions and audit cite it)"},
    {"who", CT_STRLIST, PL(who), .lo = 1,
     .hint = "add 'who: [<agent>, group:<g>, issuer:<i> or \"*\"]'"},
    {"targets", CT_STRLIST, PL(targets), .lo = 1,
     .hint = "add 'targets: [<target name> or \"*\"]'"},
    {"when", CT_MAP, P(when), .aux = &when_schema},
    {"action", CT_ENUM, P(action), .aux = actions, .def = AL_DECIDE_DENY,
     .hint = "add 'action: allow' (or deny, approve)"},
    {"message", CT_STR, P(message)},
    {"approvers", CT_STRLIST, PL(approvers), .lo = 1},
    {"timeout", CT_DURATION, P(timeout), .lo = 1, .hi = 7 * DAY, .def = 300},
    {"grant", CT_STR, P(grant), .defs = "once"},
    {"mode", CT_ENUM, P(mode), .aux = approval_modes, .def = AL_APPROVAL_WAIT},
    {"min_approvals", CT_INT, P(min_approvals), .lo = 1, .hi = 10, .def = 1},
    {"webhook", CT_MAP, P(webhook), .aux = &webhook_schema},
    {"masking", CT_STRLIST, PL(masking), .lo = 1},
    {"audit", CT_ENUM, P(audit), .aux = audit_modes, .def = AL_AUDIT_MODE_DEFAULT},
};
#undef P
#undef PL
static void policy_check(cfg_ctx_t *c, const cfg_schema_t *s, const cfg_seen_t *seen,
                         void *obj)
{
    const al_policy_conf_t *p = obj;
    const cfg_seen_t *appr = seen_get(s, seen, "approvers");
    const cfg_seen_t *act = seen_get(s, seen, "action");
    if (p->action == AL_DECIDE_APPROVE && !appr && act)
        al__cfg_error_at(c->d, act->val,
                         "%s: action approve needs 'approvers: [<group>, ...]' (who may "
                         "approve)", c->path);
    const cfg_seen_t *g = seen_get(s, seen, "grant");
    if (g && p->grant && strcmp(p->grant, "once") && strcmp(p->grant, "session") &&
        strcmp(p->grant, "target")) {
        double d;
        if (al_parse_duration(p->grant, &d) != AL_OK || d < 1)
            al__cfg_error_at(c->d, g->val,
                             "%s.grant must be once, session, target or a duration like "
                             "15m; got '%s'", c->path, Q(p->grant));
    }
}
static const cfg_schema_t policy_schema = {policy_keys, AL_ARRAY_LEN(policy_keys),
                                           sizeof(al_policy_conf_t),
                                           offsetof(al_policy_conf_t, line), policy_check};

#define RL(m) .off = offsetof(al_admin_roles_conf_t, m), \
              .off_n = offsetof(al_admin_roles_conf_t, n_##m), .parse = parse_audience
static const cfg_key_t roles_keys[] = {
    {"admin", CT_STRLIST, RL(admin)},
    {"approver", CT_STRLIST, RL(approver)},
    {"auditor", CT_STRLIST, RL(auditor)},
};
#undef RL
static const cfg_schema_t roles_schema = {roles_keys, AL_ARRAY_LEN(roles_keys),
                                          sizeof(al_admin_roles_conf_t), -1, NULL};
static const cfg_key_t admin_keys[] = {
    {"roles", CT_MAP, .off = offsetof(al_admin_conf_t, roles), .aux = &roles_schema},
};
static const cfg_schema_t admin_schema = {admin_keys, AL_ARRAY_LEN(admin_keys),
                                          sizeof(al_admin_conf_t), -1, NULL};

#define AU(m) .off = offsetof(al_audit_conf_t, m)
static const cfg_key_t audit_keys[] = {
    {"path", CT_PATH, AU(path)},
    {"max_action_bytes", CT_INT, AU(max_action_bytes), .lo = 64, .hi = 1 << 20, .def = 4096},
    {"commit_timeout", CT_DURATION, AU(commit_timeout), .lo = 0.01, .hi = 600, .def = 5},
    {"flush_interval", CT_DURATION, AU(flush_interval), .lo = 0.001, .hi = 60, .def = 0.01},
    {"queue_size", CT_INT, AU(queue_size), .lo = 16, .hi = 1 << 24, .def = 65536},
};
#undef AU
static const cfg_schema_t audit_schema = {audit_keys, AL_ARRAY_LEN(audit_keys),
                                          sizeof(al_audit_conf_t), -1, NULL};

#define AP(m) .off = offsetof(al_approvals_conf_t, m)
static const cfg_key_t approvals_keys[] = {
    {"path", CT_PATH, AP(path)},
    {"public_url", CT_STR, AP(public_url), .check = check_http_url},
    {"webhook", CT_MAP, AP(webhook), .aux = &webhook_schema},
    {"max_pending_per_agent", CT_INT, AP(max_pending_per_agent), .lo = 1, .hi = 100000,
     .def = 64},
};
#undef AP
static const cfg_schema_t approvals_schema = {approvals_keys, AL_ARRAY_LEN(approvals_keys),
                                              sizeof(al_approvals_conf_t), -1, NULL};

/* recordings.retain: a duration, or 0 (keep forever). */
static void parse_retain(cfg_ctx_t *c, const cfg_key_t *k, const al__cfg_node_t *v, void *obj)
{
    if (v->kind == AL__CFG_SCALAR && !strcmp(v->val, "0")) {
        *FIELD(obj, k->off, double) = 0;
        return;
    }
    parse_duration(c, k, v, obj);
}

/* A byte size: an integer with an optional unit (B, KB, MB, GB, TB: powers
 * of 1000; KiB, MiB, GiB, TiB: powers of 1024), stored as a double. */
static void parse_size(cfg_ctx_t *c, const cfg_key_t *k, const al__cfg_node_t *v, void *obj)
{
    static const struct { const char *u; double m; } units[] = {
        {"", 1},      {"B", 1},          {"KB", 1e3},        {"MB", 1e6},
        {"GB", 1e9},  {"TB", 1e12},      {"KiB", 1024.0},    {"MiB", 1048576.0},
        {"GiB", 1073741824.0}, {"TiB", 1099511627776.0},
    };
    const char *s = v->kind == AL__CFG_SCALAR ? v->val : NULL;
    size_t i = 0;
    double n = 0;
    while (s && s[i] >= '0' && s[i] <= '9' && i < 16)
        n = n * 10 + (s[i++] - '0');
    if (s && i > 0 && strlen(s) == v->len) {
        const char *u = s + i;
        while (*u == ' ')
            u++;
        for (size_t j = 0; j < AL_ARRAY_LEN(units); j++)
            if (!strcmp(u, units[j].u) && n * units[j].m <= k->hi && n * units[j].m >= k->lo) {
                *FIELD(obj, k->off, double) = n * units[j].m;
                return;
            }
    }
    al__cfg_error_at(c->d, v,
                     "%s is not a size: '%s'; write a whole number with an optional unit: "
                     "1000000, 500MB, 50GiB (0 = no cap)",
                     c->path, s ? Q(v->val) : kind_name(v));
}

static const cfg_enum_t rec_failures[] = {{"refuse", 0}, {"continue", 1}, {NULL, 0}};

#define RC(m) .off = offsetof(al_recordings_conf_t, m)
static const cfg_key_t recordings_keys[] = {
    {"enabled", CT_BOOL, RC(enabled), .def = 1},
    {"retain", CT_DURATION, RC(retain), .lo = 1, .hi = -1, .def = 90 * DAY,
     .parse = parse_retain},
    {"max_bytes", CT_DURATION, RC(max_bytes), .lo = 0, .hi = 1e18, .def = 0,
     .parse = parse_size},
    {"on_failure", CT_ENUM, RC(on_failure), .aux = rec_failures, .def = 0},
    {"max_rows", CT_INT, RC(max_rows), .lo = 0, .hi = 1000000, .def = 100},
    {"max_body_bytes", CT_INT, RC(max_body_bytes), .lo = 0, .hi = 64 << 20, .def = 65536},
    {"redact_headers", CT_STRLIST, RC(redact_headers),
     .off_n = offsetof(al_recordings_conf_t, n_redact_headers), .parse = parse_audience},
};
#undef RC
static const cfg_schema_t recordings_schema = {recordings_keys, AL_ARRAY_LEN(recordings_keys),
                                               sizeof(al_recordings_conf_t), -1, NULL};

#define MC(m) .off = offsetof(al_mask_custom_conf_t, m)
static const cfg_key_t mask_custom_keys[] = {
    {"name", CT_NAME, MC(name), .hint = "add 'name: <detector name>'"},
    {"pattern", CT_STR, MC(pattern), .hint = "add 'pattern: <regex, bounded like [0-9]{8}>'"},
};
#undef MC
static const cfg_schema_t mask_custom_schema = {mask_custom_keys, AL_ARRAY_LEN(mask_custom_keys),
                                                sizeof(al_mask_custom_conf_t),
                                                offsetof(al_mask_custom_conf_t, line), NULL};
#define MK(m) .off = offsetof(al_masking_conf_t, m)
#define MKL(m) MK(m), .off_n = offsetof(al_masking_conf_t, n_##m), .parse = parse_audience
static const cfg_key_t masking_keys[] = {
    {"name", CT_NAME, MK(name)},
    {"targets", CT_STRLIST, MKL(targets), .lo = 1,
     .hint = "add 'targets: [<target name> or \"*\"]'"},
    {"detectors", CT_STRLIST, MKL(detectors), .lo = 1},
    {"columns", CT_STRLIST, MKL(columns), .lo = 1},
    {"style", CT_STR, MK(style), .defs = "full"},
    {"custom", CT_LIST, MK(custom), .off_n = offsetof(al_masking_conf_t, n_custom),
     .aux = &mask_custom_schema},
};
#undef MK
#undef MKL
static const cfg_schema_t masking_schema = {masking_keys, AL_ARRAY_LEN(masking_keys),
                                            sizeof(al_masking_conf_t),
                                            offsetof(al_masking_conf_t, line), NULL};

static void root_check(cfg_ctx_t *c, const cfg_schema_t *s, const cfg_seen_t *seen,
                       void *obj);

#define R(m) .off = offsetof(al_config_t, m)
static const cfg_key_t root_keys[] = {
    {"server", CT_MAP, R(server), .aux = &server_schema},
    {"dev_issuer", CT_BOOL, R(dev_issuer), .def = 0},
    {"dev_token_max_ttl", CT_DURATION, R(dev_token_max_ttl), .lo = 1, .hi = DAY, .def = 3600},
    {"issuers", CT_LIST, R(issuers), .off_n = offsetof(al_config_t, n_issuers),
     .aux = &issuer_schema},
    {"agents", CT_LIST, R(agents), .off_n = offsetof(al_config_t, n_agents),
     .aux = &agent_schema},
    {"targets", CT_LIST, R(targets), .off_n = offsetof(al_config_t, n_targets),
     .aux = &target_schema},
    {"policies", CT_LIST, R(policies), .off_n = offsetof(al_config_t, n_policies),
     .aux = &policy_schema},
    {"admin", CT_MAP, R(admin), .aux = &admin_schema},
    {"audit", CT_MAP, R(audit), .aux = &audit_schema},
    {"approvals", CT_MAP, R(approvals), .aux = &approvals_schema},
    {"recordings", CT_MAP, R(recordings), .aux = &recordings_schema},
    {"masking", CT_LIST, R(masking), .off_n = offsetof(al_config_t, n_masking),
     .aux = &masking_schema},
    {"mask_key_env", CT_STR, R(mask_key_env)},
    {"mask_key_file", CT_PATH, R(mask_key_file)},
};
#undef R
static const cfg_schema_t root_schema = {root_keys, AL_ARRAY_LEN(root_keys),
                                         sizeof(al_config_t), -1, root_check};

_Static_assert(AL_ARRAY_LEN(issuer_keys) <= CFG_MAX_KEYS, "raise CFG_MAX_KEYS");

/* ---- rules across keys and entries --------------------------------------------------- */

static void issuer_check(cfg_ctx_t *c, const cfg_schema_t *s, const cfg_seen_t *seen,
                         void *obj)
{
    al_issuer_conf_t *is = obj;
    const cfg_seen_t *name = seen_get(s, seen, "name");
    if (is->name && !strcmp(is->name, AL_DEV_ISSUER_NAME)) {
        al__cfg_error_at(c->d, name->val,
                         "%s.name '%s' is reserved for the built-in dev issuer; pick another "
                         "name (set 'dev_issuer: true' to trust the dev issuer)",
                         c->path, AL_DEV_ISSUER_NAME);
        al_free(&is->name); /* so agents naming it get the dev issuer's rules */
    }
    const cfg_seen_t *uri = seen_get(s, seen, "jwks_uri");
    const cfg_seen_t *file = seen_get(s, seen, "jwks_file");
    if (uri && file) {
        const al__cfg_node_t *later = uri->key->line > file->key->line ||
                                              (uri->key->line == file->key->line &&
                                               uri->key->col > file->key->col)
                                          ? uri->key
                                          : file->key;
        al__cfg_error_at(c->d, later,
                         "jwks_uri and jwks_file are mutually exclusive in %s; keep jwks_uri "
                         "to fetch the keys or jwks_file to read them from disk",
                         c->path);
    }
}

/* The value node of key in entry i of the list found at seen (or NULL). */
static const al__cfg_node_t *entry_val(const cfg_seen_t *list, size_t i, const char *key)
{
    if (!list || list->val->kind != AL__CFG_SEQ || i >= list->val->n)
        return NULL;
    return al__cfg_map_get(list->val->kids[i], key);
}

typedef struct dup_ent {
    const char *a, *b; /* compared as a pair */
    size_t idx;
} dup_ent_t;

static int dup_cmp(const void *x, const void *y)
{
    const dup_ent_t *p = x, *q = y;
    int r = strcmp(p->a, q->a);
    if (!r)
        r = strcmp(p->b, q->b);
    if (!r)
        r = p->idx < q->idx ? -1 : p->idx > q->idx;
    return r;
}

/* Sorts v and sets dup_of[idx] to the first (file order) entry equal to it,
 * or SIZE_MAX. O(n log n): a hostile file may hold many thousands. */
static void find_dups(dup_ent_t *v, size_t n, size_t *dup_of)
{
    qsort(v, n, sizeof *v, dup_cmp);
    for (size_t i = 0, first = 0; i < n; i++) {
        if (i && !strcmp(v[i].a, v[first].a) && !strcmp(v[i].b, v[first].b))
            dup_of[v[i].idx] = v[first].idx;
        else
            first = i;
    }
}

/* Unique names across the entries of one list. */
static void check_unique_names(cfg_ctx_t *c, const cfg_seen_t *list, const char *what,
                               const void *arr, size_t n, size_t size, size_t name_off)
{
    dup_ent_t *v = al_xcalloc(n ? n : 1, sizeof *v);
    size_t *dup_of = al_xcalloc(n ? n : 1, sizeof *dup_of), m = 0;
    for (size_t i = 0; i < n; i++) {
        dup_of[i] = SIZE_MAX;
        const char *name = *FIELD((char *)arr + i * size, name_off, char *);
        if (name)
            v[m++] = (dup_ent_t){name, "", i};
    }
    find_dups(v, m, dup_of);
    for (size_t i = 0; i < n; i++) {
        const al__cfg_node_t *node = entry_val(list, i, "name");
        if (dup_of[i] == SIZE_MAX || !node)
            continue;
        const al__cfg_node_t *first = entry_val(list, dup_of[i], "name");
        al__cfg_error_at(c->d, node,
                         "%s[%zu].name '%s' is already used by %s[%zu] (line %d); names must "
                         "be unique",
                         what, i, Q(node->val), what, dup_of[i], first ? first->line : 0);
    }
    al_free(&v);
    al_free(&dup_of);
}

static int str_ptr_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* agents[].issuer names an issuers[] entry, or the dev issuer when enabled. */
static void check_agent_issuers(cfg_ctx_t *c, const al_config_t *cfg, const cfg_seen_t *agents)
{
    const char **names = al_xcalloc(cfg->n_issuers ? cfg->n_issuers : 1, sizeof *names);
    size_t m = 0;
    for (size_t i = 0; i < cfg->n_issuers; i++)
        if (cfg->issuers[i].name)
            names[m++] = cfg->issuers[i].name;
    qsort(names, m, sizeof *names, str_ptr_cmp);
    for (size_t i = 0; i < cfg->n_agents; i++) {
        const char *iss = cfg->agents[i].issuer;
        const al__cfg_node_t *node = entry_val(agents, i, "issuer");
        if (!iss || !node || bsearch(&iss, names, m, sizeof *names, str_ptr_cmp))
            continue;
        if (!strcmp(iss, AL_DEV_ISSUER_NAME)) {
            if (!cfg->dev_issuer)
                al__cfg_error_at(c->d, node,
                                 "agents[%zu].issuer '%s' is the built-in dev issuer, which is "
                                 "off; set 'dev_issuer: true' at the top level to use it",
                                 i, AL_DEV_ISSUER_NAME);
            continue;
        }
        al__cfg_suggest_t sug;
        al__cfg_suggest_init(&sug, iss);
        for (size_t j = 0; j < m && j < 256; j++)
            al__cfg_suggest_add(&sug, names[j]);
        if (sug.best)
            al__cfg_error_at(c->d, node,
                             "agents[%zu].issuer '%s' is not defined in issuers; did you mean "
                             "'%s'?",
                             i, Q(iss), sug.best);
        else
            al__cfg_error_at(c->d, node,
                             "agents[%zu].issuer '%s' is not defined in issuers; add an "
                             "issuers entry with 'name: %s' or fix the name",
                             i, Q(iss), Q(iss));
    }
    al_free(&names);
}

/* One agent per (issuer, subject): the subject is how a token finds its agent. */
static void check_agent_subjects(cfg_ctx_t *c, const al_config_t *cfg, const cfg_seen_t *agents)
{
    size_t n = cfg->n_agents, m = 0;
    dup_ent_t *v = al_xcalloc(n ? n : 1, sizeof *v);
    size_t *dup_of = al_xcalloc(n ? n : 1, sizeof *dup_of);
    for (size_t i = 0; i < n; i++) {
        dup_of[i] = SIZE_MAX;
        const al_agent_conf_t *a = &cfg->agents[i];
        if (a->issuer && a->subject)
            v[m++] = (dup_ent_t){a->issuer, a->subject, i};
    }
    find_dups(v, m, dup_of);
    for (size_t i = 0; i < n; i++) {
        const al__cfg_node_t *node = entry_val(agents, i, "subject");
        if (dup_of[i] == SIZE_MAX || !node)
            continue;
        const al__cfg_node_t *first = entry_val(agents, dup_of[i], "subject");
        al__cfg_error_at(c->d, node,
                         "agents[%zu].subject '%s' of issuer '%s' is already used by "
                         "agents[%zu] (line %d); one subject maps to one agent",
                         i, Q(node->val), Q(cfg->agents[i].issuer), dup_of[i],
                         first ? first->line : 0);
    }
    al_free(&v);
    al_free(&dup_of);
}

static void root_check(cfg_ctx_t *c, const cfg_schema_t *s, const cfg_seen_t *seen, void *obj)
{
    const al_config_t *cfg = obj;
    const cfg_seen_t *issuers = seen_get(s, seen, "issuers");
    const cfg_seen_t *agents = seen_get(s, seen, "agents");
    check_unique_names(c, issuers, "issuers", cfg->issuers, cfg->n_issuers,
                       sizeof *cfg->issuers, offsetof(al_issuer_conf_t, name));
    check_unique_names(c, agents, "agents", cfg->agents, cfg->n_agents, sizeof *cfg->agents,
                       offsetof(al_agent_conf_t, name));
    check_agent_issuers(c, cfg, agents);
    check_agent_subjects(c, cfg, agents);
    check_unique_names(c, seen_get(s, seen, "targets"), "targets", cfg->targets,
                       cfg->n_targets, sizeof *cfg->targets, offsetof(al_target_conf_t, name));
    check_unique_names(c, seen_get(s, seen, "policies"), "policies", cfg->policies,
                       cfg->n_policies, sizeof *cfg->policies, offsetof(al_policy_conf_t, name));
}

/* ---- public API ------------------------------------------------------------------------ */

void al_config_free(al_config_t *cfg)
{
    if (!cfg)
        return;
    free_obj(&root_schema, cfg);
    al_free(&cfg->path);
    al_free(&cfg);
}

void al_config_errors_free(al_config_errors_t *errs)
{
    if (!errs)
        return;
    for (size_t i = 0; i < errs->n; i++)
        al_free(&errs->msgs[i]);
    al_free(&errs->msgs);
    errs->n = 0;
}

static al_config_t *fail(al__cfg_diag_t *d, al_config_errors_t *errs, al_config_t *cfg)
{
    al_config_free(cfg);
    al__cfg_diag_finish(d, errs);
    return NULL;
}

al_config_t *al_config_load_mem(const char *name, const char *data, size_t len,
                                al_config_errors_t *errs)
{
    memset(errs, 0, sizeof *errs);
    if (!name)
        name = "<config>";
    al__cfg_diag_t d = {.file = name};
    if (len > AL_CONFIG_MAX_BYTES) {
        al__cfg_error(&d, 1, 1, "the config is %zu bytes; the limit is %u (1 MiB): remove "
                      "unused entries", len, AL_CONFIG_MAX_BYTES);
        return fail(&d, errs, NULL);
    }
    char *base = al__cfg_base_dir(name);
    if (!base) {
        al__cfg_error(&d, 1, 1, "cannot find the config's directory: %s", strerror(errno));
        return fail(&d, errs, NULL);
    }
    al_config_t *cfg = al_xcalloc(1, sizeof *cfg);
    cfg->path = al_xstrdup(name);
    cfg_ctx_t c = {.d = &d, .base_dir = base};
    apply_defaults(&c, &root_schema, cfg);
    al__cfg_node_t *root = al__cfg_parse(&d, data, len);
    if (root && !root->bad && !al__cfg_is_null(root)) {
        if (root->kind == AL__CFG_MAP)
            walk_map(&c, &root_schema, root, cfg);
        else
            al__cfg_error_at(&d, root,
                             "the config must be a mapping of keys (server:, issuers:, "
                             "agents:, ...), not %s",
                             kind_name(root));
    }
    al__cfg_node_free(root);
    al_free(&base);
    if (d.n || d.truncated)
        return fail(&d, errs, cfg);
    al__cfg_diag_free(&d);
    if (!cfg->audit.path) {
        size_t n = strlen(cfg->server.data_dir) + sizeof "/audit.db";
        cfg->audit.path = al_xmalloc(n);
        snprintf(cfg->audit.path, n, "%s/audit.db", cfg->server.data_dir);
    }
    return cfg;
}

al_config_t *al_config_load(const char *path, al_config_errors_t *errs)
{
    memset(errs, 0, sizeof *errs);
    char *data = NULL;
    size_t len = 0;
    if (al_read_file(path, AL_CONFIG_MAX_BYTES, &data, &len) != AL_OK) {
        int e = errno;
        if (e == EFBIG) {
            al__cfg_diag_t d = {.file = path};
            al__cfg_error(&d, 1, 1, "the config is larger than %u bytes (1 MiB); remove "
                          "unused entries", AL_CONFIG_MAX_BYTES);
            return fail(&d, errs, NULL);
        }
        al_buf_t b;
        al_buf_init(&b);
        al_buf_printf(&b, "%s: cannot read: %s", path, strerror(e));
        errs->msgs = al_xcalloc(1, sizeof *errs->msgs);
        errs->msgs[0] = b.p ? b.p : al_xstrdup("cannot read the config");
        errs->n = 1;
        errs->read_errno = e;
        return NULL;
    }
    al_config_t *cfg = al_config_load_mem(path, data, len, errs);
    al_free(&data);
    return cfg;
}

const al_issuer_conf_t *al_config_issuer(const al_config_t *cfg, const char *name)
{
    for (size_t i = 0; cfg && name && i < cfg->n_issuers; i++)
        if (cfg->issuers[i].name && !strcmp(cfg->issuers[i].name, name))
            return &cfg->issuers[i];
    return NULL;
}

const al_target_conf_t *al_config_target(const al_config_t *cfg, const char *name)
{
    for (size_t i = 0; name && i < cfg->n_targets; i++)
        if (cfg->targets[i].name && !strcmp(cfg->targets[i].name, name))
            return &cfg->targets[i];
    return NULL;
}

const char *al_proto_name(al_proto_t p)
{
    for (size_t i = 0; protocols[i].name; i++)
        if (protocols[i].value == (int)p)
            return protocols[i].name;
    return "unknown";
}

const char *al_decision_name(al_decision_t d)
{
    return d == AL_DECIDE_ALLOW ? "allow" : d == AL_DECIDE_APPROVE ? "approve" : "deny";
}

const al_agent_conf_t *al_config_agent(const al_config_t *cfg, const char *name)
{
    for (size_t i = 0; cfg && name && i < cfg->n_agents; i++)
        if (cfg->agents[i].name && !strcmp(cfg->agents[i].name, name))
            return &cfg->agents[i];
    return NULL;
}
