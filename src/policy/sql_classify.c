/*
 * sql_classify.c - statement classes from the real PostgreSQL parser.
 *
 * libpg_query turns the text into its JSON parse tree (pg_query_parse).
 * Building that JSON costs about 13 us for a typical SELECT; loading it into
 * jansson would add about 60 us more, and the protobuf form is slower to
 * produce (about 70 us) before it is even unpacked. So the JSON is cut into
 * a flat token array here (no per-node allocation; the arrays are reused
 * from call to call) and the classifier walks that.
 *
 * Shape of libpg_query's JSON: a node stored in a generic Node* field is
 * wrapped as {"TypeName": {fields}}; a field whose C type is a specific
 * struct (InsertStmt.relation is a RangeVar*, SelectStmt.larg a SelectStmt*,
 * CallStmt.funccall a FuncCall*) is written inline, unwrapped. Fields at
 * their zero value are left out. So RangeVars are recognised by shape
 * (every RangeVar carries "relpersistence"), and the few inline structs that
 * matter by their field name.
 */
#include <pg_query.h>
#include <stdlib.h>
#include <strings.h>

#include "policy/sql_classify.h"

/* Deeper JSON than this is refused as `unknown` (PostgreSQL's own stack
 * check stops the parser long before ordinary SQL gets near it). */
#define MAX_DEPTH 4000

/* ---- classes -------------------------------------------------------------- */

static const char *const class_names[AL_SQL_CLASS_COUNT] = {
    "read", "write", "ddl", "dcl", "admin", "unknown",
};

const char *al_sql_class_name(al_sql_class_t cls)
{
    if ((unsigned)cls >= AL_SQL_CLASS_COUNT)
        return "unknown";
    return class_names[cls];
}

int al_sql_class_parse(al_str_t name, al_sql_class_t *out)
{
    for (int i = 0; i < AL_SQL_CLASS_COUNT; i++) {
        if (al_str_eq_c(name, class_names[i])) {
            *out = (al_sql_class_t)i;
            return AL_OK;
        }
    }
    return AL_ERR;
}

/* ---- scratch state ----------------------------------------------------------- */

enum { J_OBJ, J_ARR, J_STR, J_PRIM };

typedef struct jtok {
    uint32_t start, end; /* strings: the bytes between the quotes */
    uint32_t next;       /* index of the token after this subtree */
    uint8_t type;
} jtok_t;

/* A string in the scratch string buffer: offset and length. */
typedef struct sref {
    uint32_t off, len;
} sref_t;

typedef struct s_table {
    sref_t cat, sch, name;
} s_table_t;

typedef struct s_func {
    sref_t sch, name;
    al_sql_class_t cls;
    bool listed;
} s_func_t;

typedef struct s_stmt {
    size_t offset, len;
    const char *kind;
    al_sql_class_t cls;
    const char *reason;
    sref_t reason_arg;
    sref_t prepare, execute;
    bool executes;
    size_t t0, nt, f0, nf, s0, ns; /* slices of the vectors below */
} s_stmt_t;

typedef struct vec {
    void *p;
    size_t n, cap;
} vec_t;

struct al_sql {
    al_sql_config_t cfg;
    al__sql_cache_t *cache;
    char *text; /* NUL-terminated copy of the input */
    size_t text_cap;
    vec_t toks, stack, scope; /* jtok_t, uint32_t, uint32_t */
    vec_t stmts, tables, funcs, schemas; /* s_stmt_t, s_table_t, s_func_t, sref_t */
    char *sb; /* strings, each NUL-terminated */
    size_t sb_len, sb_cap;
    bool oom;
    sref_t error;
    int error_pos;
    al__sql_block_t last; /* the uncached result */
    bool lit_sensitive;   /* the walk read a value a literal may have given */
    al__sql_cache_t *shape_cache;
    char *shape_key; /* cfg.cache_max_text bytes */
    al_sql_result_t shape_res; /* a shape hit: the cached result ... */
    al_sql_stmt_t shape_stmt;  /* ... with its statement range for this text */
};

static const al_sql_result_t oom_result = {
    .cls = AL_SQL_UNKNOWN,
    .error = {"out of memory while classifying", sizeof("out of memory while classifying") - 1},
};

static bool vec_reserve(al_sql_t *c, vec_t *v, size_t elem, size_t extra)
{
    if (v->n + extra <= v->cap)
        return true;
    size_t cap = v->cap ? v->cap : 64;
    while (cap < v->n + extra)
        cap *= 2;
    void *p = al_realloc(v->p, cap * elem);
    if (!p) {
        c->oom = true;
        return false;
    }
    v->p = p;
    v->cap = cap;
    return true;
}

#define VEC_AT(v, type, i) (((type *)(v).p)[i])

static sref_t sb_reserve_ref(al_sql_t *c, size_t n)
{
    if (c->sb_len + n + 1 > c->sb_cap) {
        size_t cap = c->sb_cap ? c->sb_cap : 1024;
        while (cap < c->sb_len + n + 1)
            cap *= 2;
        if (cap > UINT32_MAX) {
            c->oom = true;
            return (sref_t){0, 0};
        }
        char *p = al_realloc(c->sb, cap);
        if (!p) {
            c->oom = true;
            return (sref_t){0, 0};
        }
        c->sb = p;
        c->sb_cap = cap;
    }
    return (sref_t){(uint32_t)c->sb_len, 0};
}

/* Copies p[0..n) (not inside c->sb) as a new string. */
static sref_t sb_add(al_sql_t *c, const char *p, size_t n)
{
    sref_t r = sb_reserve_ref(c, n);
    if (c->oom)
        return r;
    memcpy(c->sb + r.off, p, n);
    c->sb[r.off + n] = '\0';
    c->sb_len += n + 1;
    r.len = (uint32_t)n;
    return r;
}

static al_str_t sb_str(const al_sql_t *c, sref_t r)
{
    return r.len ? (al_str_t){c->sb + r.off, r.len} : (al_str_t){"", 0};
}

/* ---- JSON tokens ------------------------------------------------------------ */

static bool push_tok(al_sql_t *c, uint8_t type, size_t start, size_t end)
{
    if (!vec_reserve(c, &c->toks, sizeof(jtok_t), 1))
        return false;
    jtok_t *t = &VEC_AT(c->toks, jtok_t, c->toks.n);
    t->type = type;
    t->start = (uint32_t)start;
    t->end = (uint32_t)end;
    t->next = (uint32_t)(c->toks.n + 1);
    c->toks.n++;
    return true;
}

static bool is_delim(char ch)
{
    return ch == ',' || ch == ':' || ch == '}' || ch == ']' || ch == ' ' || ch == '\n' ||
           ch == '\t' || ch == '\r' || ch == '"' || ch == '{' || ch == '[';
}

/* Cuts js into tokens. Containers get `next` when they close. Returns false
 * on malformed JSON (never expected from libpg_query) or out of memory. */
static bool json_tokenize(al_sql_t *c, const char *js, size_t n)
{
    c->toks.n = c->stack.n = 0;
    if (n >= UINT32_MAX)
        return false;
    size_t i = 0;
    while (i < n) {
        char ch = js[i];
        if (ch == '{' || ch == '[') {
            if (c->stack.n >= MAX_DEPTH || !vec_reserve(c, &c->stack, sizeof(uint32_t), 1) ||
                !push_tok(c, ch == '{' ? J_OBJ : J_ARR, i, i))
                return false;
            VEC_AT(c->stack, uint32_t, c->stack.n++) = (uint32_t)(c->toks.n - 1);
            i++;
        } else if (ch == '}' || ch == ']') {
            if (c->stack.n == 0)
                return false;
            jtok_t *t = &VEC_AT(c->toks, jtok_t, VEC_AT(c->stack, uint32_t, --c->stack.n));
            if (t->type != (ch == '}' ? J_OBJ : J_ARR))
                return false;
            t->end = (uint32_t)(i + 1);
            t->next = (uint32_t)c->toks.n;
            i++;
        } else if (ch == '"') {
            size_t j = i + 1;
            while (j < n && js[j] != '"')
                j += js[j] == '\\' ? 2 : 1;
            if (j >= n || !push_tok(c, J_STR, i + 1, j))
                return false;
            i = j + 1;
        } else if (ch == ',' || ch == ':' || ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r') {
            i++;
        } else {
            size_t j = i;
            while (j < n && !is_delim(js[j]))
                j++;
            if (!push_tok(c, J_PRIM, i, j))
                return false;
            i = j;
        }
    }
    return c->stack.n == 0 && c->toks.n > 0;
}

/* ---- walking ----------------------------------------------------------------- */

typedef struct walk {
    al_sql_t *c;
    const char *js;
    const jtok_t *t;
    uint32_t ntok;
    al_sql_class_t fn_default;
    /* the statement being walked */
    al_sql_class_t cls;
    const char *reason;
    sref_t reason_arg;
    sref_t prepare, execute;
    bool executes;
    uint32_t top_body;
    int suppress; /* > 0 under plain EXPLAIN: nothing runs, nothing counts */
    int fn_def;   /* > 0 inside CREATE/ALTER FUNCTION: SET clauses there
                   * apply only while that function runs */
    uint32_t schema_elts; /* CREATE SCHEMA's element list, or NO_TOK */
    sref_t elt_schema;    /* ... and the schema its objects are created in */
    unsigned depth;
    bool too_deep;
} walk_t;

#define NO_TOK UINT32_MAX

static al_str_t raw(const walk_t *w, uint32_t i)
{
    return (al_str_t){w->js + w->t[i].start, w->t[i].end - w->t[i].start};
}

static bool tok_is(const walk_t *w, uint32_t i, const char *lit)
{
    return i != NO_TOK && w->t[i].type == J_STR && al_str_eq_c(raw(w, i), lit);
}

/* The value token of `key` in object obj, or NO_TOK. */
static uint32_t obj_get(const walk_t *w, uint32_t obj, const char *key)
{
    if (obj == NO_TOK || w->t[obj].type != J_OBJ)
        return NO_TOK;
    uint32_t end = w->t[obj].next;
    for (uint32_t k = obj + 1; k < end;) {
        uint32_t v = w->t[k].next;
        if (v >= end)
            break;
        if (tok_is(w, k, key))
            return v;
        k = w->t[v].next;
    }
    return NO_TOK;
}

static bool obj_true(const walk_t *w, uint32_t obj, const char *key)
{
    uint32_t v = obj_get(w, obj, key);
    return v != NO_TOK && w->t[v].type == J_PRIM && al_str_eq_c(raw(w, v), "true");
}

static bool field_is(const walk_t *w, uint32_t obj, const char *key, const char *val)
{
    return tok_is(w, obj_get(w, obj, key), val);
}

/* {"Name": {...}}: a wrapped node. Node names start with a capital; field
 * names never do. */
static bool node_unwrap(const walk_t *w, uint32_t i, uint32_t *name, uint32_t *body)
{
    if (i == NO_TOK || w->t[i].type != J_OBJ || i + 2 >= w->ntok)
        return false;
    uint32_t k = i + 1, v = i + 2;
    if (w->t[k].type != J_STR || w->t[v].type != J_OBJ || w->t[v].next != w->t[i].next)
        return false;
    al_str_t n = raw(w, k);
    if (n.len == 0 || n.p[0] < 'A' || n.p[0] > 'Z')
        return false;
    *name = k;
    *body = v;
    return true;
}

static void put_utf8(char *out, size_t *o, uint32_t cp)
{
    if (cp < 0x80) {
        out[(*o)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*o)++] = (char)(0xC0 | (cp >> 6));
        out[(*o)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out[(*o)++] = (char)(0xE0 | (cp >> 12));
        out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*o)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        out[(*o)++] = (char)(0xF0 | (cp >> 18));
        out[(*o)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*o)++] = (char)(0x80 | (cp & 0x3F));
    }
}

static int hex4(const char *p, size_t left)
{
    if (left < 4)
        return -1;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char ch = p[i];
        int d = ch >= '0' && ch <= '9'   ? ch - '0'
                : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                         : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Decodes one \uXXXX escape (and its low surrogate) at s[i] == 'u'. Returns
 * the code point (U+FFFD when malformed) and advances *i past it. */
static uint32_t json_u_escape(al_str_t s, size_t *i)
{
    int hi = hex4(s.p + *i + 1, s.len - *i - 1);
    if (hi < 0) {
        *i += 1;
        return 0xFFFD;
    }
    *i += 5;
    if (hi < 0xD800 || hi > 0xDFFF)
        return (uint32_t)hi;
    if (hi <= 0xDBFF && *i + 1 < s.len && s.p[*i] == '\\' && s.p[*i + 1] == 'u') {
        int lo = hex4(s.p + *i + 2, s.len - *i - 2);
        if (lo >= 0xDC00 && lo <= 0xDFFF) {
            *i += 6;
            return 0x10000 + (((uint32_t)hi - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
        }
    }
    return 0xFFFD;
}

/* The unescaped value of JSON string token i, as a new scratch string. */
static sref_t unescape(walk_t *w, uint32_t i)
{
    al_sql_t *c = w->c;
    if (i == NO_TOK || w->t[i].type != J_STR)
        return (sref_t){0, 0};
    al_str_t s = raw(w, i);
    sref_t r = sb_reserve_ref(c, s.len); /* unescaping never grows */
    if (c->oom)
        return r;
    char *out = c->sb + r.off;
    size_t o = 0;
    for (size_t k = 0; k < s.len;) {
        if (s.p[k] != '\\' || k + 1 >= s.len) {
            out[o++] = s.p[k++];
            continue;
        }
        char e = s.p[k + 1];
        if (e == 'u') {
            k++;
            put_utf8(out, &o, json_u_escape(s, &k));
            continue;
        }
        out[o++] = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e == 'b' ? '\b' : e == 'f' ? '\f' : e;
        k += 2;
    }
    out[o] = '\0';
    c->sb_len += o + 1;
    r.len = (uint32_t)o;
    return r;
}

/* The sval of a {"String": {"sval": ...}} node (or of its bare body). */
static uint32_t string_node_val(const walk_t *w, uint32_t i)
{
    uint32_t name, body;
    if (node_unwrap(w, i, &name, &body) && al_str_eq_c(raw(w, name), "String"))
        return obj_get(w, body, "sval");
    return NO_TOK;
}

/* Raises the statement's class. Under plain EXPLAIN (w->suppress) nothing
 * runs, so nothing counts, except through contribute_planned. */
static void contribute(walk_t *w, al_sql_class_t cls, const char *reason, sref_t arg)
{
    if (w->suppress > 0 || cls <= w->cls)
        return;
    w->cls = cls;
    w->reason = reason;
    w->reason_arg = arg;
}

/* For what plain EXPLAIN may still run: the planner evaluates immutable
 * functions with constant arguments (eval_const_expressions) and stable ones
 * for selectivity estimates (estimate_expression_value), and the classifier
 * does not know a function's volatility. */
static void contribute_planned(walk_t *w, al_sql_class_t cls, const char *reason, sref_t arg)
{
    int suppress = w->suppress;
    w->suppress = 0;
    contribute(w, cls, reason, arg);
    w->suppress = suppress;
}

static void contribute_s(walk_t *w, al_sql_class_t cls, const char *reason, const char *arg)
{
    if (w->suppress > 0 || cls <= w->cls)
        return;
    contribute(w, cls, reason, sb_add(w->c, arg, strlen(arg)));
}

/* The walk is about to read a value that a literal constant may have
 * given (a String, Integer or Float node's value, or a COPY file name):
 * the result then depends on more than the statement's shape. */
static void reads_constant(const walk_t *w)
{
    w->c->lit_sensitive = true;
}

/* ---- extraction ------------------------------------------------------------- */

static void add_schema(walk_t *w, sref_t s)
{
    al_sql_t *c = w->c;
    if (s.len == 0 || !vec_reserve(c, &c->schemas, sizeof(sref_t), 1))
        return;
    VEC_AT(c->schemas, sref_t, c->schemas.n++) = s;
}

static void add_table(walk_t *w, sref_t cat, sref_t sch, sref_t name)
{
    al_sql_t *c = w->c;
    if (name.len == 0 || !vec_reserve(c, &c->tables, sizeof(s_table_t), 1))
        return;
    VEC_AT(c->tables, s_table_t, c->tables.n++) = (s_table_t){cat, sch, name};
    add_schema(w, sch);
}

/* Table from a list of 1..3 String nodes (DROP TABLE a.b, ...). */
static void add_table_from_names(walk_t *w, uint32_t list)
{
    uint32_t parts[3], n = 0;
    if (list == NO_TOK || w->t[list].type != J_ARR)
        return;
    for (uint32_t e = list + 1; e < w->t[list].next; e = w->t[e].next) {
        if (n == 3)
            return;
        parts[n++] = string_node_val(w, e);
    }
    if (n == 0)
        return;
    sref_t none = {0, 0};
    sref_t name = unescape(w, parts[n - 1]);
    sref_t sch = n >= 2 ? unescape(w, parts[n - 2]) : none;
    sref_t cat = n == 3 ? unescape(w, parts[0]) : none;
    add_table(w, cat, sch, name);
}

/* Unqualified names in these fields may name a CTE instead of a table. */
static bool cte_position(al_str_t field)
{
    return al_str_eq_c(field, "fromClause") || al_str_eq_c(field, "larg") ||
           al_str_eq_c(field, "rarg") || al_str_eq_c(field, "usingClause") ||
           al_str_eq_c(field, "sourceRelation");
}

static bool cte_in_scope(const walk_t *w, uint32_t rel)
{
    al_str_t r = raw(w, rel);
    for (size_t i = w->c->scope.n; i-- > 0;)
        if (al_str_eq(raw(w, VEC_AT(w->c->scope, uint32_t, i)), r))
            return true;
    return false;
}

/* CREATE SCHEMA s CREATE TABLE x ...: PostgreSQL (transformCreateSchemaStmt)
 * creates each element's object in s, whatever the search_path. Only the
 * created object's own name (and an index's or trigger's table) is
 * qualified so; names inside, like a view's query, resolve as usual. */
static bool schema_elt_target(const walk_t *w, uint32_t obj)
{
    static const char *const fields[] = {"relation", "view", "sequence"};
    uint32_t elts = w->schema_elts;
    if (elts == NO_TOK || w->t[elts].type != J_ARR)
        return false;
    for (uint32_t e = elts + 1; e < w->t[elts].next; e = w->t[e].next) {
        uint32_t name, body;
        if (!node_unwrap(w, e, &name, &body))
            continue;
        for (size_t i = 0; i < AL_ARRAY_LEN(fields); i++)
            if (obj_get(w, body, fields[i]) == obj)
                return true;
    }
    return false;
}

static void on_rangevar(walk_t *w, uint32_t obj, al_str_t field)
{
    uint32_t rel = obj_get(w, obj, "relname");
    uint32_t sch = obj_get(w, obj, "schemaname");
    uint32_t cat = obj_get(w, obj, "catalogname");
    if (rel == NO_TOK)
        return;
    if (sch == NO_TOK && cat == NO_TOK && cte_position(field) && cte_in_scope(w, rel))
        return;
    sref_t n = unescape(w, rel);
    sref_t s = unescape(w, sch);
    if (sch == NO_TOK && w->elt_schema.len && schema_elt_target(w, obj))
        s = w->elt_schema;
    add_table(w, unescape(w, cat), s, n);
}

static void on_funccall(walk_t *w, uint32_t body)
{
    uint32_t names = obj_get(w, body, "funcname");
    uint32_t last = NO_TOK, prev = NO_TOK;
    if (names == NO_TOK || w->t[names].type != J_ARR)
        return;
    for (uint32_t e = names + 1; e < w->t[names].next; e = w->t[e].next) {
        prev = last;
        last = string_node_val(w, e);
    }
    al_sql_t *c = w->c;
    /* SQL-standard syntax (EXTRACT, TRIM, SUBSTRING, AT TIME ZONE ...) is
     * turned by the grammar into a call of a built-in that it qualifies with
     * pg_catalog itself (SystemFuncName), so search_path cannot redirect it
     * to a user function: the qualification was not written by the client
     * and the default class for unlisted functions does not apply. */
    bool syntax = field_is(w, body, "funcformat", "COERCE_SQL_SYNTAX");
    sref_t name = unescape(w, last);
    sref_t sch = syntax ? (sref_t){0, 0} : unescape(w, prev);
    if (c->oom || name.len == 0)
        return;
    bool listed = false;
    al_sql_class_t cls =
        al_sql_function_class(sb_str(c, name), syntax ? AL_SQL_READ : w->fn_default, &listed);
    if (vec_reserve(c, &c->funcs, sizeof(s_func_t), 1))
        VEC_AT(c->funcs, s_func_t, c->funcs.n++) = (s_func_t){sch, name, cls, listed};
    add_schema(w, sch);
    contribute_planned(w, cls,
                       listed ? "side-effect function" : "function outside the table (default class)",
                       name);
}

/* ---- statements --------------------------------------------------------------- */

typedef enum special {
    S_NONE = 0,
    S_EXPLAIN,
    S_COPY,
    S_SET,
    S_TXN,
    S_DISCARD,
    S_PREPARE,
    S_EXECUTE,
    S_DROP,
    S_RENAME,
    S_OBJTYPE,
    S_CREATE_FUNCTION,
    S_CREATE_SCHEMA,
    S_GRANT,
    S_VACUUM,
} special_t;

typedef struct stmt_rule {
    const char *node;
    al_sql_class_t cls;
    const char *label;
    special_t special;
} stmt_rule_t;

#define R(n, c, l, s) {#n, AL_SQL_##c, l, s}

/* Every statement node of PostgreSQL 15's raw grammar. A node not listed
 * here (a newer parser, PLAssignStmt) is `unknown`. The table in
 * docs/sql-classification.md follows this one. */
static const stmt_rule_t stmt_rules[] = {
    R(SelectStmt, READ, "SELECT", S_NONE),
    R(VariableShowStmt, READ, "SHOW", S_NONE),
    R(ExplainStmt, READ, "EXPLAIN", S_EXPLAIN),
    R(CopyStmt, READ, "COPY", S_COPY),
    R(VariableSetStmt, READ, "SET", S_SET),
    R(TransactionStmt, READ, "transaction control", S_TXN),
    R(ClosePortalStmt, READ, "CLOSE", S_NONE),
    R(FetchStmt, READ, "FETCH/MOVE", S_NONE),
    R(DeallocateStmt, READ, "DEALLOCATE", S_NONE),
    R(DiscardStmt, READ, "DISCARD", S_DISCARD),
    R(ListenStmt, READ, "LISTEN", S_NONE),
    R(UnlistenStmt, READ, "UNLISTEN", S_NONE),
    R(ConstraintsSetStmt, READ, "SET CONSTRAINTS", S_NONE),
    R(DeclareCursorStmt, READ, "DECLARE CURSOR", S_NONE),
    R(PrepareStmt, READ, "PREPARE", S_PREPARE),
    R(ExecuteStmt, READ, "EXECUTE", S_EXECUTE),
    R(ReturnStmt, READ, "RETURN", S_NONE),
    R(InsertStmt, WRITE, "INSERT", S_NONE),
    R(UpdateStmt, WRITE, "UPDATE", S_NONE),
    R(DeleteStmt, WRITE, "DELETE", S_NONE),
    R(MergeStmt, WRITE, "MERGE", S_NONE),
    R(TruncateStmt, WRITE, "TRUNCATE", S_NONE),
    R(LockStmt, WRITE, "LOCK", S_NONE),
    R(NotifyStmt, WRITE, "NOTIFY", S_NONE),
    R(RefreshMatViewStmt, WRITE, "REFRESH MATERIALIZED VIEW", S_NONE),
    R(CreateStmt, DDL, "CREATE TABLE", S_NONE),
    R(CreateTableAsStmt, DDL, "CREATE TABLE AS", S_NONE),
    R(ViewStmt, DDL, "CREATE VIEW", S_NONE),
    R(IndexStmt, DDL, "CREATE INDEX", S_NONE),
    R(CreateSeqStmt, DDL, "CREATE SEQUENCE", S_NONE),
    R(AlterSeqStmt, DDL, "ALTER SEQUENCE", S_NONE),
    R(AlterTableStmt, DDL, "ALTER TABLE", S_NONE),
    R(AlterTableMoveAllStmt, DDL, "ALTER TABLE ALL IN TABLESPACE", S_NONE),
    R(AlterDomainStmt, DDL, "ALTER DOMAIN", S_NONE),
    R(CreateDomainStmt, DDL, "CREATE DOMAIN", S_NONE),
    R(DefineStmt, DDL, "CREATE AGGREGATE/OPERATOR/TYPE/COLLATION/TEXT SEARCH", S_NONE),
    R(DropStmt, DDL, "DROP", S_DROP),
    R(CommentStmt, DDL, "COMMENT", S_NONE),
    R(SecLabelStmt, DDL, "SECURITY LABEL", S_NONE),
    R(RenameStmt, DDL, "ALTER ... RENAME", S_RENAME),
    R(AlterObjectSchemaStmt, DDL, "ALTER ... SET SCHEMA", S_OBJTYPE),
    R(AlterObjectDependsStmt, DDL, "ALTER ... DEPENDS ON EXTENSION", S_NONE),
    R(CreateFunctionStmt, DDL, "CREATE FUNCTION/PROCEDURE", S_CREATE_FUNCTION),
    R(AlterFunctionStmt, DDL, "ALTER FUNCTION/PROCEDURE", S_NONE),
    R(CreateTrigStmt, DDL, "CREATE TRIGGER", S_NONE),
    R(RuleStmt, DDL, "CREATE RULE", S_NONE),
    R(CreateSchemaStmt, DDL, "CREATE SCHEMA", S_CREATE_SCHEMA),
    R(CreateConversionStmt, DDL, "CREATE CONVERSION", S_NONE),
    R(CreateCastStmt, DDL, "CREATE CAST", S_NONE),
    R(CreateOpClassStmt, DDL, "CREATE OPERATOR CLASS", S_NONE),
    R(CreateOpFamilyStmt, DDL, "CREATE OPERATOR FAMILY", S_NONE),
    R(AlterOpFamilyStmt, DDL, "ALTER OPERATOR FAMILY", S_NONE),
    R(AlterOperatorStmt, DDL, "ALTER OPERATOR", S_NONE),
    R(AlterTypeStmt, DDL, "ALTER TYPE", S_NONE),
    R(CompositeTypeStmt, DDL, "CREATE TYPE AS", S_NONE),
    R(CreateEnumStmt, DDL, "CREATE TYPE AS ENUM", S_NONE),
    R(CreateRangeStmt, DDL, "CREATE TYPE AS RANGE", S_NONE),
    R(AlterEnumStmt, DDL, "ALTER TYPE (enum)", S_NONE),
    R(AlterTSDictionaryStmt, DDL, "ALTER TEXT SEARCH DICTIONARY", S_NONE),
    R(AlterTSConfigurationStmt, DDL, "ALTER TEXT SEARCH CONFIGURATION", S_NONE),
    R(CreateForeignTableStmt, DDL, "CREATE FOREIGN TABLE", S_NONE),
    R(CreatePolicyStmt, DDL, "CREATE POLICY", S_NONE),
    R(AlterPolicyStmt, DDL, "ALTER POLICY", S_NONE),
    R(CreateTransformStmt, DDL, "CREATE TRANSFORM", S_NONE),
    R(CreatePublicationStmt, DDL, "CREATE PUBLICATION", S_NONE),
    R(AlterPublicationStmt, DDL, "ALTER PUBLICATION", S_NONE),
    R(CreateStatsStmt, DDL, "CREATE STATISTICS", S_NONE),
    R(AlterStatsStmt, DDL, "ALTER STATISTICS", S_NONE),
    R(AlterCollationStmt, DDL, "ALTER COLLATION", S_NONE),
    R(ReplicaIdentityStmt, DDL, "REPLICA IDENTITY", S_NONE),
    R(GrantStmt, DCL, "GRANT/REVOKE", S_GRANT),
    R(GrantRoleStmt, DCL, "GRANT/REVOKE role", S_NONE),
    R(AlterDefaultPrivilegesStmt, DCL, "ALTER DEFAULT PRIVILEGES", S_NONE),
    R(CreateRoleStmt, DCL, "CREATE ROLE/USER/GROUP", S_NONE),
    R(AlterRoleStmt, DCL, "ALTER ROLE/USER/GROUP", S_NONE),
    R(AlterRoleSetStmt, DCL, "ALTER ROLE SET", S_NONE),
    R(DropRoleStmt, DCL, "DROP ROLE/USER/GROUP", S_NONE),
    R(ReassignOwnedStmt, DCL, "REASSIGN OWNED", S_NONE),
    R(DropOwnedStmt, DCL, "DROP OWNED", S_NONE),
    R(AlterOwnerStmt, DCL, "ALTER ... OWNER TO", S_OBJTYPE),
    R(DoStmt, ADMIN, "DO", S_NONE),
    R(CallStmt, ADMIN, "CALL", S_NONE),
    R(AlterSystemStmt, ADMIN, "ALTER SYSTEM", S_NONE),
    R(LoadStmt, ADMIN, "LOAD", S_NONE),
    R(CreateExtensionStmt, ADMIN, "CREATE EXTENSION", S_NONE),
    R(AlterExtensionStmt, ADMIN, "ALTER EXTENSION", S_NONE),
    R(AlterExtensionContentsStmt, ADMIN, "ALTER EXTENSION ADD/DROP", S_NONE),
    R(CreatedbStmt, ADMIN, "CREATE DATABASE", S_NONE),
    R(DropdbStmt, ADMIN, "DROP DATABASE", S_NONE),
    R(AlterDatabaseStmt, ADMIN, "ALTER DATABASE", S_NONE),
    R(AlterDatabaseSetStmt, ADMIN, "ALTER DATABASE SET", S_NONE),
    R(AlterDatabaseRefreshCollStmt, ADMIN, "ALTER DATABASE REFRESH COLLATION VERSION", S_NONE),
    R(VacuumStmt, ADMIN, "VACUUM", S_VACUUM),
    R(ClusterStmt, ADMIN, "CLUSTER", S_NONE),
    R(ReindexStmt, ADMIN, "REINDEX", S_NONE),
    R(CheckPointStmt, ADMIN, "CHECKPOINT", S_NONE),
    R(CreateFdwStmt, ADMIN, "CREATE FOREIGN DATA WRAPPER", S_NONE),
    R(AlterFdwStmt, ADMIN, "ALTER FOREIGN DATA WRAPPER", S_NONE),
    R(CreateForeignServerStmt, ADMIN, "CREATE SERVER", S_NONE),
    R(AlterForeignServerStmt, ADMIN, "ALTER SERVER", S_NONE),
    R(CreateUserMappingStmt, ADMIN, "CREATE USER MAPPING", S_NONE),
    R(AlterUserMappingStmt, ADMIN, "ALTER USER MAPPING", S_NONE),
    R(DropUserMappingStmt, ADMIN, "DROP USER MAPPING", S_NONE),
    R(ImportForeignSchemaStmt, ADMIN, "IMPORT FOREIGN SCHEMA", S_NONE),
    R(CreatePLangStmt, ADMIN, "CREATE LANGUAGE", S_NONE),
    R(CreateEventTrigStmt, ADMIN, "CREATE EVENT TRIGGER", S_NONE),
    R(AlterEventTrigStmt, ADMIN, "ALTER EVENT TRIGGER", S_NONE),
    R(CreateTableSpaceStmt, ADMIN, "CREATE TABLESPACE", S_NONE),
    R(DropTableSpaceStmt, ADMIN, "DROP TABLESPACE", S_NONE),
    R(AlterTableSpaceOptionsStmt, ADMIN, "ALTER TABLESPACE", S_NONE),
    R(CreateSubscriptionStmt, ADMIN, "CREATE SUBSCRIPTION", S_NONE),
    R(AlterSubscriptionStmt, ADMIN, "ALTER SUBSCRIPTION", S_NONE),
    R(DropSubscriptionStmt, ADMIN, "DROP SUBSCRIPTION", S_NONE),
    R(CreateAmStmt, ADMIN, "CREATE ACCESS METHOD", S_NONE),
};

#undef R

static const stmt_rule_t *find_rule(al_str_t name)
{
    for (size_t i = 0; i < AL_ARRAY_LEN(stmt_rules); i++)
        if (al_str_eq_c(name, stmt_rules[i].node))
            return &stmt_rules[i];
    return NULL;
}

/* Object types whose CREATE/ALTER/DROP/RENAME/OWNER is server-level. */
static al_sql_class_t objtype_class(const walk_t *w, uint32_t tok)
{
    static const char *const admin[] = {
        "OBJECT_DATABASE",   "OBJECT_TABLESPACE",    "OBJECT_FDW",
        "OBJECT_FOREIGN_SERVER", "OBJECT_USER_MAPPING", "OBJECT_LANGUAGE",
        "OBJECT_EVENT_TRIGGER",  "OBJECT_SUBSCRIPTION", "OBJECT_EXTENSION",
        "OBJECT_ACCESS_METHOD",
    };
    if (tok_is(w, tok, "OBJECT_ROLE"))
        return AL_SQL_DCL;
    for (size_t i = 0; i < AL_ARRAY_LEN(admin); i++)
        if (tok_is(w, tok, admin[i]))
            return AL_SQL_ADMIN;
    return AL_SQL_READ;
}

static void walk(walk_t *w, uint32_t i, al_str_t field);
static void walk_fields(walk_t *w, uint32_t obj, al_str_t field);

/* EXPLAIN runs its statement only with ANALYZE. PostgreSQL's ExplainQuery
 * reads each option in turn with defGetBoolean, so the last ANALYZE wins: no
 * argument, true/on, 1 mean yes; false/off, 0 no. Anything else is taken as
 * yes (the server rejects it anyway). */
static bool explain_analyzes(const walk_t *w, uint32_t body)
{
    uint32_t opts = obj_get(w, body, "options");
    if (opts == NO_TOK || w->t[opts].type != J_ARR)
        return false;
    bool analyze = false;
    for (uint32_t e = opts + 1; e < w->t[opts].next; e = w->t[e].next) {
        uint32_t name, def;
        if (!node_unwrap(w, e, &name, &def) || !field_is(w, def, "defname", "analyze"))
            continue;
        uint32_t arg = obj_get(w, def, "arg"), an, ab;
        if (arg == NO_TOK || !node_unwrap(w, arg, &an, &ab)) {
            analyze = true;
            continue;
        }
        reads_constant(w); /* ANALYZE 0, ANALYZE 'off' */
        al_str_t kind = raw(w, an);
        if (al_str_eq_c(kind, "Integer")) {
            uint32_t iv = obj_get(w, ab, "ival"); /* left out when 0 */
            analyze = iv != NO_TOK;
        } else if (al_str_eq_c(kind, "String")) {
            uint32_t sv = obj_get(w, ab, "sval");
            al_str_t v = sv == NO_TOK ? (al_str_t){"", 0} : raw(w, sv);
            bool no = v.len == 5 ? strncasecmp(v.p, "false", 5) == 0
                      : v.len == 3 ? strncasecmp(v.p, "off", 3) == 0
                                   : false;
            analyze = !no;
        } else {
            analyze = true;
        }
    }
    return analyze;
}

static void on_copy(walk_t *w, uint32_t body)
{
    /* the class does not depend on the file name or the command, but they
     * are literals the classifier looks at: keep such results to their
     * exact text */
    if (obj_true(w, body, "is_program") || obj_get(w, body, "filename") != NO_TOK)
        reads_constant(w);
    if (obj_true(w, body, "is_program"))
        contribute_s(w, AL_SQL_ADMIN, "COPY runs a program on the server", "COPY PROGRAM");
    else if (obj_get(w, body, "filename") != NO_TOK)
        contribute_s(w, AL_SQL_ADMIN, "COPY reads or writes a server file", "COPY file");
    else if (obj_true(w, body, "is_from"))
        contribute_s(w, AL_SQL_WRITE, "COPY FROM STDIN loads rows", "COPY FROM STDIN");
}

/* The first argument of SET as text: a string or an integer constant. */
static sref_t set_value(walk_t *w, uint32_t body)
{
    uint32_t args = obj_get(w, body, "args"), name, ac;
    if (args == NO_TOK || w->t[args].type != J_ARR || args + 1 >= w->t[args].next ||
        !node_unwrap(w, args + 1, &name, &ac) || !al_str_eq_c(raw(w, name), "A_Const"))
        return (sref_t){0, 0};
    uint32_t s = obj_get(w, obj_get(w, ac, "sval"), "sval");
    if (s != NO_TOK)
        return unescape(w, s);
    uint32_t iv = obj_get(w, ac, "ival");
    if (iv != NO_TOK) {
        uint32_t n = obj_get(w, iv, "ival");
        al_str_t v = n == NO_TOK ? (al_str_t){"0", 1} : raw(w, n);
        return sb_add(w->c, v.p, v.len);
    }
    return (sref_t){0, 0};
}

static void on_set(walk_t *w, uint32_t body)
{
    /* al_sql_setting_class judges some settings by value (SET x = 'v',
     * SET x TO 5, SET TIME ZONE 'UTC', ALTER ROLE ... SET, a function's SET
     * clause) */
    reads_constant(w);
    uint32_t kind = obj_get(w, body, "kind");
    if (tok_is(w, kind, "VAR_SET_MULTI") || tok_is(w, kind, "VAR_RESET_ALL"))
        return;
    bool reset = tok_is(w, kind, "VAR_RESET") || tok_is(w, kind, "VAR_SET_DEFAULT") ||
                 tok_is(w, kind, "VAR_SET_CURRENT");
    sref_t name = unescape(w, obj_get(w, body, "name"));
    sref_t value = reset ? (sref_t){0, 0} : set_value(w, body);
    if (w->c->oom)
        return;
    al_str_t n = sb_str(w->c, name);
    if (w->fn_def > 0 && n.len == 11 && strncasecmp(n.p, "search_path", 11) == 0)
        return; /* CREATE FUNCTION ... SET search_path: the usual hardening */
    al_sql_class_t cls = al_sql_setting_class(n, sb_str(w->c, value), reset);
    contribute(w, cls, "privileged setting", name);
}

static void on_txn(walk_t *w, uint32_t body)
{
    uint32_t kind = obj_get(w, body, "kind");
    if (tok_is(w, kind, "TRANS_STMT_PREPARE") || tok_is(w, kind, "TRANS_STMT_COMMIT_PREPARED") ||
        tok_is(w, kind, "TRANS_STMT_ROLLBACK_PREPARED"))
        contribute_s(w, AL_SQL_ADMIN, "two-phase commit acts beyond the session",
                     "PREPARE TRANSACTION / COMMIT PREPARED / ROLLBACK PREPARED");
}

static void on_drop(walk_t *w, uint32_t body)
{
    static const char *const relkinds[] = {
        "OBJECT_TABLE", "OBJECT_VIEW", "OBJECT_MATVIEW", "OBJECT_SEQUENCE",
        "OBJECT_INDEX", "OBJECT_FOREIGN_TABLE",
    };
    uint32_t type = obj_get(w, body, "removeType");
    uint32_t objs = obj_get(w, body, "objects");
    if (objs == NO_TOK || w->t[objs].type != J_ARR)
        return;
    bool rel = false;
    for (size_t i = 0; i < AL_ARRAY_LEN(relkinds); i++)
        rel |= tok_is(w, type, relkinds[i]);
    bool schema = tok_is(w, type, "OBJECT_SCHEMA");
    for (uint32_t e = objs + 1; e < w->t[objs].next; e = w->t[e].next) {
        uint32_t name, list;
        if (rel && node_unwrap(w, e, &name, &list) && al_str_eq_c(raw(w, name), "List"))
            add_table_from_names(w, obj_get(w, list, "items"));
        else if (schema)
            add_schema(w, unescape(w, string_node_val(w, e)));
    }
}

static void on_grant(walk_t *w, uint32_t body)
{
    if (!field_is(w, body, "objtype", "OBJECT_SCHEMA") &&
        !field_is(w, body, "targtype", "ACL_TARGET_ALL_IN_SCHEMA"))
        return;
    uint32_t objs = obj_get(w, body, "objects");
    if (objs == NO_TOK || w->t[objs].type != J_ARR)
        return;
    for (uint32_t e = objs + 1; e < w->t[objs].next; e = w->t[e].next)
        add_schema(w, unescape(w, string_node_val(w, e)));
}

/* C and internal functions load server code; by convention a language
 * whose name ends in "u" (plpython3u, plperlu, pltclu) is untrusted. Both
 * need superuser and run anything. */
static void on_create_function(walk_t *w, uint32_t body)
{
    uint32_t opts = obj_get(w, body, "options");
    if (opts == NO_TOK || w->t[opts].type != J_ARR)
        return;
    for (uint32_t e = opts + 1; e < w->t[opts].next; e = w->t[e].next) {
        uint32_t name, def;
        if (!node_unwrap(w, e, &name, &def) || !field_is(w, def, "defname", "language"))
            continue;
        reads_constant(w); /* LANGUAGE 'c' is a string constant */
        sref_t lang = unescape(w, string_node_val(w, obj_get(w, def, "arg")));
        al_str_t l = sb_str(w->c, lang);
        if ((l.len == 1 && (l.p[0] == 'c' || l.p[0] == 'C')) ||
            (l.len == 8 && strncasecmp(l.p, "internal", 8) == 0) ||
            (l.len > 0 && (l.p[l.len - 1] == 'u' || l.p[l.len - 1] == 'U')))
            contribute(w, AL_SQL_ADMIN, "function in an untrusted language", lang);
    }
}

static void on_special(walk_t *w, special_t sp, uint32_t body)
{
    switch (sp) {
    case S_COPY:
        on_copy(w, body);
        break;
    case S_SET:
        on_set(w, body);
        break;
    case S_TXN:
        on_txn(w, body);
        break;
    case S_DISCARD:
        if (field_is(w, body, "target", "DISCARD_ALL"))
            contribute_s(w, AL_SQL_ADMIN,
                         "DISCARD ALL includes SET SESSION AUTHORIZATION DEFAULT", "DISCARD ALL");
        break;
    case S_PREPARE:
        if (body == w->top_body)
            w->prepare = unescape(w, obj_get(w, body, "name"));
        break;
    case S_EXECUTE:
        /* Also under plain EXPLAIN: planning the prepared statement may run
         * its functions, and only its class as a whole is known. */
        w->executes = true;
        w->execute = unescape(w, obj_get(w, body, "name"));
        break;
    case S_DROP:
        contribute_s(w, objtype_class(w, obj_get(w, body, "removeType")),
                     "object type is server-level or a role", "DROP");
        on_drop(w, body);
        break;
    case S_RENAME: {
        uint32_t type = obj_get(w, body, "renameType");
        contribute_s(w, objtype_class(w, type), "object type is server-level or a role",
                     "ALTER ... RENAME");
        if (tok_is(w, type, "OBJECT_SCHEMA")) {
            add_schema(w, unescape(w, obj_get(w, body, "subname")));
            add_schema(w, unescape(w, obj_get(w, body, "newname")));
        }
        break;
    }
    case S_OBJTYPE:
        contribute_s(w, objtype_class(w, obj_get(w, body, "objectType")),
                     "object type is server-level or a role", "ALTER");
        break;
    case S_CREATE_FUNCTION:
        on_create_function(w, body);
        break;
    case S_CREATE_SCHEMA: {
        /* CREATE SCHEMA AUTHORIZATION joe names the schema joe */
        uint32_t sn = obj_get(w, body, "schemaname");
        if (sn == NO_TOK && field_is(w, obj_get(w, body, "authrole"), "roletype", "ROLESPEC_CSTRING"))
            sn = obj_get(w, obj_get(w, body, "authrole"), "rolename");
        w->elt_schema = unescape(w, sn);
        w->schema_elts = obj_get(w, body, "schemaElts");
        add_schema(w, w->elt_schema);
        break;
    }
    case S_GRANT:
        on_grant(w, body);
        break;
    case S_VACUUM:
    case S_NONE:
    case S_EXPLAIN:
        break;
    }
}

static void on_stmt(walk_t *w, al_str_t name, uint32_t body, al_str_t field)
{
    const stmt_rule_t *r = find_rule(name);
    if (!r) {
        contribute(w, AL_SQL_UNKNOWN, "statement kind not recognised",
                   sb_add(w->c, name.p, name.len));
        walk_fields(w, body, field);
        return;
    }
    const char *label = r->label;
    if (r->special == S_VACUUM && !obj_true(w, body, "is_vacuumcmd"))
        label = "ANALYZE";
    contribute_s(w, r->cls, "statement kind", label);
    on_special(w, r->special, body);
    bool hide = r->special == S_EXPLAIN && !explain_analyzes(w, body);
    bool fn_def = al_str_eq_c(name, "CreateFunctionStmt") || al_str_eq_c(name, "AlterFunctionStmt");
    w->suppress += hide;
    w->fn_def += fn_def;
    walk_fields(w, body, field);
    w->fn_def -= fn_def;
    w->suppress -= hide;
}

static void on_node(walk_t *w, uint32_t name_tok, uint32_t body, al_str_t field)
{
    al_str_t name = raw(w, name_tok);
    if (al_str_eq_c(name, "RangeVar")) {
        on_rangevar(w, body, field);
        return;
    }
    if (al_str_eq_c(name, "FuncCall")) {
        on_funccall(w, body);
        walk_fields(w, body, AL_STR(""));
        return;
    }
    if (al_str_eq_c(name, "LockingClause"))
        contribute_s(w, AL_SQL_WRITE, "row-locking clause (FOR UPDATE/SHARE)", "FOR UPDATE/SHARE");
    else if (al_str_eq_c(name, "AlterTableCmd") && field_is(w, body, "subtype", "AT_ChangeOwner"))
        contribute_s(w, AL_SQL_DCL, "ownership change", "OWNER TO");
    if (name.len > 4 && memcmp(name.p + name.len - 4, "Stmt", 4) == 0) {
        on_stmt(w, name, body, field);
        return;
    }
    walk_fields(w, body, field);
}

/* WITH: a non-recursive CTE sees only the CTEs before it; a recursive WITH
 * makes every name visible everywhere. The main statement sees them all.
 * Names stay pushed until the caller pops to its mark. */
static void walk_with(walk_t *w, uint32_t with)
{
    al_sql_t *c = w->c;
    uint32_t ctes = obj_get(w, with, "ctes");
    bool rec = obj_true(w, with, "recursive");
    if (ctes == NO_TOK || w->t[ctes].type != J_ARR)
        return;
    for (int pass = rec ? 0 : 1; pass < 2; pass++) {
        for (uint32_t e = ctes + 1; e < w->t[ctes].next; e = w->t[e].next) {
            uint32_t name, body;
            if (pass == 1)
                walk(w, e, AL_STR("ctes"));
            if (!node_unwrap(w, e, &name, &body) || (rec && pass == 1))
                continue;
            uint32_t cn = obj_get(w, body, "ctename");
            if (cn != NO_TOK && vec_reserve(c, &c->scope, sizeof(uint32_t), 1))
                VEC_AT(c->scope, uint32_t, c->scope.n++) = cn;
        }
    }
}

/* A struct's fields, wrapped or inline. */
static void walk_fields(walk_t *w, uint32_t obj, al_str_t field)
{
    if (w->t[obj].type != J_OBJ)
        return;
    if (obj_get(w, obj, "relpersistence") != NO_TOK) {
        on_rangevar(w, obj, field);
        return;
    }
    if (al_str_eq_c(field, "funccall")) /* CallStmt's inline FuncCall */
        on_funccall(w, obj);
    /* ALTER ROLE / DATABASE / SYSTEM ... SET: an inline VariableSetStmt that
     * sets the parameter for later sessions */
    if (al_str_eq_c(field, "setstmt"))
        on_set(w, obj);
    if (obj_get(w, obj, "intoClause") != NO_TOK)
        contribute_s(w, AL_SQL_DDL, "SELECT INTO creates a table", "SELECT INTO");
    size_t mark = w->c->scope.n;
    uint32_t with = obj_get(w, obj, "withClause");
    if (with != NO_TOK)
        walk_with(w, with);
    uint32_t end = w->t[obj].next;
    for (uint32_t k = obj + 1; k < end;) {
        uint32_t v = w->t[k].next;
        if (v >= end)
            break;
        if (v != with)
            walk(w, v, raw(w, k));
        k = w->t[v].next;
    }
    w->c->scope.n = mark;
}

static void walk(walk_t *w, uint32_t i, al_str_t field)
{
    if (++w->depth > MAX_DEPTH) {
        w->too_deep = true;
        w->depth--;
        return;
    }
    uint32_t name, body;
    if (w->t[i].type == J_ARR) {
        for (uint32_t e = i + 1; e < w->t[i].next; e = w->t[e].next)
            walk(w, e, field);
    } else if (node_unwrap(w, i, &name, &body)) {
        on_node(w, name, body, field);
    } else if (w->t[i].type == J_OBJ) {
        walk_fields(w, i, field);
    }
    w->depth--;
}

/* ---- per statement ------------------------------------------------------------ */

static int cmp_sref(const char *sb, sref_t a, sref_t b)
{
    size_t n = AL_MIN(a.len, b.len);
    int r = n ? memcmp(sb + a.off, sb + b.off, n) : 0;
    if (r)
        return r;
    return a.len < b.len ? -1 : a.len > b.len;
}

static int cmp_table(const void *a, const void *b, void *sb)
{
    const s_table_t *x = a, *y = b;
    int r = cmp_sref(sb, x->cat, y->cat);
    if (!r)
        r = cmp_sref(sb, x->sch, y->sch);
    return r ? r : cmp_sref(sb, x->name, y->name);
}

static int cmp_func(const void *a, const void *b, void *sb)
{
    const s_func_t *x = a, *y = b;
    int r = cmp_sref(sb, x->sch, y->sch);
    return r ? r : cmp_sref(sb, x->name, y->name);
}

static int cmp_schema(const void *a, const void *b, void *sb)
{
    return cmp_sref(sb, *(const sref_t *)a, *(const sref_t *)b);
}

/* Sorts v[from..) and drops duplicates; returns the new count from `from`. */
static size_t sort_unique(al_sql_t *c, vec_t *v, size_t from, size_t elem,
                          int (*cmp)(const void *, const void *, void *))
{
    size_t n = v->n - from;
    if (n < 2)
        return n;
    char *base = (char *)v->p + from * elem;
    qsort_r(base, n, elem, cmp, c->sb);
    size_t out = 1;
    for (size_t i = 1; i < n; i++) {
        if (cmp(base + (out - 1) * elem, base + i * elem, c->sb) != 0) {
            if (out != i)
                memcpy(base + out * elem, base + i * elem, elem);
            out++;
        }
    }
    v->n = from + out;
    return out;
}

static uint64_t prim_u64(const walk_t *w, uint32_t i)
{
    if (i == NO_TOK || w->t[i].type != J_PRIM)
        return 0;
    al_str_t s = raw(w, i);
    uint64_t v = 0;
    for (size_t k = 0; k < s.len && s.p[k] >= '0' && s.p[k] <= '9' && v < UINT32_MAX; k++)
        v = v * 10 + (uint64_t)(s.p[k] - '0');
    return v;
}

static void walk_stmt(walk_t *w, uint32_t raw_stmt, size_t input_len)
{
    al_sql_t *c = w->c;
    if (!vec_reserve(c, &c->stmts, sizeof(s_stmt_t), 1))
        return;
    s_stmt_t *s = &VEC_AT(c->stmts, s_stmt_t, c->stmts.n++);
    memset(s, 0, sizeof(*s));
    uint64_t off = prim_u64(w, obj_get(w, raw_stmt, "stmt_location"));
    uint64_t len = prim_u64(w, obj_get(w, raw_stmt, "stmt_len"));
    s->offset = AL_MIN(off, input_len);
    s->len = len == 0 || len > input_len - s->offset ? input_len - s->offset : len;
    s->t0 = c->tables.n;
    s->f0 = c->funcs.n;
    s->s0 = c->schemas.n;

    w->cls = AL_SQL_READ;
    w->reason = "statement kind";
    w->reason_arg = (sref_t){0, 0};
    w->prepare = w->execute = (sref_t){0, 0};
    w->executes = false;
    w->suppress = 0;
    w->fn_def = 0;
    w->schema_elts = NO_TOK;
    w->elt_schema = (sref_t){0, 0};
    c->scope.n = 0;
    s->kind = "unrecognised";

    uint32_t name, body;
    uint32_t node = obj_get(w, raw_stmt, "stmt");
    if (node_unwrap(w, node, &name, &body)) {
        const stmt_rule_t *r = find_rule(raw(w, name));
        if (r) {
            s->kind = r->node;
            w->reason_arg = sb_add(c, r->label, strlen(r->label));
        }
        w->top_body = body;
        on_node(w, name, body, AL_STR(""));
    } else {
        contribute_s(w, AL_SQL_UNKNOWN, "no statement in the parse tree", "");
    }

    /* the vectors may have moved: find the statement again */
    s = &VEC_AT(c->stmts, s_stmt_t, c->stmts.n - 1);
    s->cls = w->cls;
    s->reason = w->reason;
    s->reason_arg = w->reason_arg;
    s->prepare = w->prepare;
    s->execute = w->execute;
    s->executes = w->executes;
    s->nt = sort_unique(c, &c->tables, s->t0, sizeof(s_table_t), cmp_table);
    s->nf = sort_unique(c, &c->funcs, s->f0, sizeof(s_func_t), cmp_func);
    s->ns = sort_unique(c, &c->schemas, s->s0, sizeof(sref_t), cmp_schema);
}

/* Walks libpg_query's JSON. Returns false when it could not (malformed,
 * too deep), with c->error set; out of memory shows in c->oom. */
static bool walk_tree(al_sql_t *c, const char *js, size_t input_len, al_sql_class_t fn_default)
{
    static const char bad[] = "parse tree not understood";
    static const char deep[] = "statement nested too deeply to classify";
    if (!json_tokenize(c, js, strlen(js))) {
        if (!c->oom)
            c->error = c->stack.n >= MAX_DEPTH ? sb_add(c, deep, sizeof(deep) - 1)
                                               : sb_add(c, bad, sizeof(bad) - 1);
        return false;
    }
    walk_t w = {.c = c, .js = js, .t = c->toks.p, .ntok = (uint32_t)c->toks.n,
                .fn_default = fn_default};
    uint32_t stmts = obj_get(&w, 0, "stmts");
    if (stmts != NO_TOK && w.t[stmts].type == J_ARR)
        for (uint32_t e = stmts + 1; e < w.t[stmts].next && !c->oom; e = w.t[e].next)
            walk_stmt(&w, e, input_len);
    if (w.too_deep) {
        c->error = sb_add(c, deep, sizeof(deep) - 1);
        c->stmts.n = 0;
        return false;
    }
    return true;
}

/* ---- result block --------------------------------------------------------------- */

static size_t align8(size_t n) { return (n + 7) & ~(size_t)7; }

static al_str_t block_str(const char *strings, sref_t r)
{
    return r.len ? (al_str_t){strings + r.off, r.len} : (al_str_t){"", 0};
}

typedef struct layout {
    size_t stmts, tables, funcs, schemas, strings, key, total;
} layout_t;

static layout_t plan(const al_sql_t *c, size_t key_len)
{
    layout_t l;
    l.stmts = align8(sizeof(al_sql_result_t));
    l.tables = l.stmts + align8(c->stmts.n * sizeof(al_sql_stmt_t));
    l.funcs = l.tables + align8(c->tables.n * sizeof(al_sql_table_t));
    l.schemas = l.funcs + align8(c->funcs.n * sizeof(al_sql_func_t));
    l.strings = l.schemas + align8(c->schemas.n * sizeof(al_str_t));
    l.key = l.strings + c->sb_len;
    l.total = l.key + key_len + 1;
    return l;
}

static void fill_stmt(const al_sql_t *c, const s_stmt_t *s, al_sql_stmt_t *d, const char *strings,
                      al_sql_table_t *tables, al_sql_func_t *funcs, al_str_t *schemas)
{
    d->offset = s->offset;
    d->len = s->len;
    d->kind = s->kind;
    d->tree_cls = d->cls = s->cls;
    d->tree_reason = d->reason = s->reason;
    d->tree_reason_arg = d->reason_arg = block_str(strings, s->reason_arg);
    d->prepare_name = block_str(strings, s->prepare);
    d->execute_name = block_str(strings, s->execute);
    d->executes = s->executes;
    d->tables = tables + s->t0;
    d->n_tables = s->nt;
    d->funcs = funcs + s->f0;
    d->n_funcs = s->nf;
    d->schemas = schemas + s->s0;
    d->n_schemas = s->ns;
    AL_UNUSED(c);
}

/* Lays the scratch results out in blk (allocating or growing it). */
static al_sql_result_t *build(al_sql_t *c, al__sql_block_t *blk, const char *key, size_t key_len)
{
    layout_t l = plan(c, key_len);
    if (blk->size < l.total) {
        void *m = al_realloc(blk->mem, l.total);
        if (!m)
            return NULL;
        blk->mem = m;
        blk->size = l.total;
    }
    char *base = blk->mem;
    al_sql_result_t *r = (al_sql_result_t *)base;
    al_sql_stmt_t *stmts = (al_sql_stmt_t *)(base + l.stmts);
    al_sql_table_t *tables = (al_sql_table_t *)(base + l.tables);
    al_sql_func_t *funcs = (al_sql_func_t *)(base + l.funcs);
    al_str_t *schemas = (al_str_t *)(base + l.schemas);
    char *strings = base + l.strings;
    if (c->sb_len)
        memcpy(strings, c->sb, c->sb_len);
    memcpy(base + l.key, key, key_len);
    base[l.key + key_len] = '\0';
    for (size_t i = 0; i < c->tables.n; i++) {
        const s_table_t *t = &VEC_AT(c->tables, s_table_t, i);
        tables[i] = (al_sql_table_t){block_str(strings, t->cat), block_str(strings, t->sch),
                                     block_str(strings, t->name)};
    }
    for (size_t i = 0; i < c->funcs.n; i++) {
        const s_func_t *f = &VEC_AT(c->funcs, s_func_t, i);
        funcs[i] = (al_sql_func_t){block_str(strings, f->sch), block_str(strings, f->name), f->cls,
                                   f->listed};
    }
    for (size_t i = 0; i < c->schemas.n; i++)
        schemas[i] = block_str(strings, VEC_AT(c->schemas, sref_t, i));
    for (size_t i = 0; i < c->stmts.n; i++)
        fill_stmt(c, &VEC_AT(c->stmts, s_stmt_t, i), &stmts[i], strings, tables, funcs, schemas);
    *r = (al_sql_result_t){
        .cls = c->error.len ? AL_SQL_UNKNOWN : AL_SQL_READ,
        .stmts = stmts,
        .n_stmts = c->stmts.n,
        .tables = tables,
        .n_tables = c->tables.n,
        .error = block_str(strings, c->error),
        .error_pos = c->error_pos,
        .literal_sensitive = c->lit_sensitive,
    };
    return r;
}

/* EXECUTE depends on the session's prepared statements, so it is joined in
 * on every call, cached or not. */
static void resolve(al_sql_result_t *r, const al_sql_opts_t *o)
{
    al_sql_class_t all = r->error.len ? AL_SQL_UNKNOWN : AL_SQL_READ;
    for (size_t i = 0; i < r->n_stmts; i++) {
        al_sql_stmt_t *s = (al_sql_stmt_t *)&r->stmts[i];
        s->cls = s->tree_cls;
        s->reason = s->tree_reason;
        s->reason_arg = s->tree_reason_arg;
        if (s->executes) {
            al_sql_class_t ec = o->resolve_prepared ? o->resolve_prepared(o->resolve_arg, s->execute_name)
                                                    : AL_SQL_UNKNOWN;
            if ((unsigned)ec >= AL_SQL_CLASS_COUNT)
                ec = AL_SQL_UNKNOWN;
            if (ec > s->cls) {
                s->cls = ec;
                s->reason = o->resolve_prepared ? "EXECUTE of a prepared statement"
                                                : "EXECUTE with no way to resolve the prepared statement";
                s->reason_arg = s->execute_name;
            }
        }
        all = al_sql_class_max(all, s->cls);
    }
    r->cls = all;
}

/* ---- public ---------------------------------------------------------------------- */

al_sql_t *al_sql_new(const al_sql_config_t *cfg)
{
    al_sql_t *c = al_calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    if (cfg)
        c->cfg = *cfg;
    if (!c->cfg.cache_entries)
        c->cfg.cache_entries = 4096;
    if (!c->cfg.cache_max_bytes)
        c->cfg.cache_max_bytes = 16u << 20;
    if (!c->cfg.cache_max_text)
        c->cfg.cache_max_text = 16u << 10;
    if (!c->cfg.max_text)
        c->cfg.max_text = 4u << 20;
    if (c->cfg.max_text > (256u << 20))
        c->cfg.max_text = 256u << 20; /* token offsets are 32-bit */
    if (!c->cfg.shape_cache_entries)
        c->cfg.shape_cache_entries = 4096;
    if (!c->cfg.shape_cache_max_bytes)
        c->cfg.shape_cache_max_bytes = 16u << 20;
    if (!c->cfg.no_cache) {
        c->cache = al__sql_cache_new(c->cfg.cache_entries, c->cfg.cache_max_bytes);
        if (!c->cache) {
            al_free(&c);
            return NULL;
        }
    }
    if (!c->cfg.no_cache && !c->cfg.no_shape_cache) {
        c->shape_cache = al__sql_cache_new(c->cfg.shape_cache_entries, c->cfg.shape_cache_max_bytes);
        c->shape_key = al_malloc(c->cfg.cache_max_text);
        if (!c->shape_cache || !c->shape_key) {
            al_sql_free(&c);
            return NULL;
        }
    }
    return c;
}

void al_sql_free(al_sql_t **cp)
{
    al_sql_t *c = *cp;
    if (!c)
        return;
    al__sql_cache_free(&c->cache);
    al__sql_cache_free(&c->shape_cache);
    al_free(&c->shape_key);
    al_free(&c->text);
    al_free(&c->toks.p);
    al_free(&c->stack.p);
    al_free(&c->scope.p);
    al_free(&c->stmts.p);
    al_free(&c->tables.p);
    al_free(&c->funcs.p);
    al_free(&c->schemas.p);
    al_free(&c->sb);
    al_free(&c->last.mem);
    al_free(cp);
}

void al_sql_cache_stats(const al_sql_t *c, al_sql_cache_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (c->cache)
        al__sql_cache_stats(c->cache, out);
    if (c->shape_cache) {
        al_sql_cache_stats_t s;
        al__sql_cache_stats(c->shape_cache, &s);
        out->shape_hits = s.hits;
        out->shape_misses = s.misses;
        out->shape_evictions = s.evictions;
        out->shape_entries = s.entries;
        out->shape_bytes = s.bytes;
    }
}

static void reset_scratch(al_sql_t *c)
{
    c->toks.n = c->stack.n = c->scope.n = 0;
    c->stmts.n = c->tables.n = c->funcs.n = c->schemas.n = 0;
    c->sb_len = 0;
    c->oom = false;
    c->error = (sref_t){0, 0};
    c->error_pos = 0;
    c->lit_sensitive = false;
}

/* Runs the parser and the walk into the scratch state. */
static void classify_text(al_sql_t *c, const char *sql, size_t len, al_sql_class_t fn_default)
{
    static const char too_long[] = "statement too long to classify";
    static const char nul[] = "statement contains a NUL byte";
    if (len > c->cfg.max_text) {
        c->error = sb_add(c, too_long, sizeof(too_long) - 1);
        return;
    }
    if (memchr(sql, '\0', len)) {
        c->error = sb_add(c, nul, sizeof(nul) - 1);
        return;
    }
    if (c->text_cap < len + 1) {
        char *p = al_realloc(c->text, len + 1);
        if (!p) {
            c->oom = true;
            return;
        }
        c->text = p;
        c->text_cap = len + 1;
    }
    memcpy(c->text, sql, len);
    c->text[len] = '\0';
    PgQueryParseResult pr = pg_query_parse(c->text);
    if (pr.error) {
        const char *m = pr.error->message ? pr.error->message : "syntax error";
        c->error = sb_add(c, m, strlen(m));
        c->error_pos = pr.error->cursorpos;
    } else if (pr.parse_tree) {
        walk_tree(c, pr.parse_tree, len, fn_default);
    } else {
        c->oom = true;
    }
    pg_query_free_parse_result(pr);
}

/* Stores the scratch result under the shape key when it may be shared:
 * it parsed, it is one statement, and no literal's value was read. The
 * statement's range is kept in key coordinates: its start (the text before
 * it holds only empty statements, so no literal, and is the same in key and
 * text) and its distance from the end (likewise). */
static void shape_put(al_sql_t *c, const char *sql, size_t len, size_t klen, uint64_t shash,
                      al_sql_class_t fn_default)
{
    if (c->error.len || c->stmts.n != 1 || c->lit_sensitive)
        return;
    s_stmt_t *s = &VEC_AT(c->stmts, s_stmt_t, 0);
    size_t off = s->offset, tail = len - s->offset - s->len;
    if (off + tail > klen || memcmp(c->shape_key, sql, off) != 0 ||
        memcmp(c->shape_key + klen - tail, sql + len - tail, tail) != 0)
        return; /* not expected: then this text is simply not shared */
    if (plan(c, klen).total > c->cfg.shape_cache_max_bytes)
        return;
    size_t keep_len = s->len;
    s->len = klen - off - tail;
    al__sql_block_t blk = {NULL, 0};
    al_sql_result_t *r = build(c, &blk, c->shape_key, klen);
    s->len = keep_len;
    if (!r) {
        al_free(&blk.mem);
        return;
    }
    (void)al__sql_cache_put(c->shape_cache, blk, shash, (char *)blk.mem + plan(c, klen).key, klen,
                            fn_default);
}

/* A shape hit as the result for this text: the cached result, with the
 * statement's range moved from key to text coordinates. The copy lives in
 * `c`; tables, functions and strings stay in the cached block, which no
 * eviction touches before the next call. */
static const al_sql_result_t *shape_view(al_sql_t *c, const al_sql_result_t *sr, size_t len,
                                         size_t klen, const al_sql_opts_t *o)
{
    c->shape_stmt = sr->stmts[0];
    size_t off = c->shape_stmt.offset;
    size_t tail = klen - off - c->shape_stmt.len;
    c->shape_stmt.len = len - off - tail;
    c->shape_res = *sr;
    c->shape_res.stmts = &c->shape_stmt;
    c->shape_res.from_cache = true;
    c->shape_res.from_shape_cache = true;
    resolve(&c->shape_res, o);
    return &c->shape_res;
}

int al_sql_classify(al_sql_t *c, const char *sql, size_t len, const al_sql_opts_t *opts,
                    const al_sql_result_t **out)
{
    static const al_sql_opts_t defaults;
    const al_sql_opts_t *o = opts ? opts : &defaults;
    al_sql_class_t fn_default = o->default_function_class;
    if ((unsigned)fn_default >= AL_SQL_CLASS_COUNT)
        fn_default = AL_SQL_UNKNOWN;
    if (!sql)
        len = 0, sql = "";

    bool cacheable = c->cache && len <= c->cfg.cache_max_text;
    uint64_t hash = 0;
    al_sql_result_t *r = cacheable ? al__sql_cache_get(c->cache, sql, len, fn_default, &hash) : NULL;
    if (r) {
        r->from_cache = true;
        r->from_shape_cache = false;
        resolve(r, o);
        *out = r;
        return AL_OK;
    }

    /* Shape cache: same text but for literal values. Text without literals
     * is left to the exact cache. */
    ssize_t klen = -1;
    uint64_t shash = 0;
    if (c->shape_cache && cacheable && len <= c->cfg.max_text) {
        size_t n_lits = 0;
        klen = al__sql_shape(sql, len, c->shape_key, c->cfg.cache_max_text, &n_lits, NULL);
        if (klen >= 0 && n_lits == 0)
            klen = -1;
    }
    if (klen >= 0) {
        const al_sql_result_t *sr =
            al__sql_cache_get(c->shape_cache, c->shape_key, (size_t)klen, fn_default, &shash);
        if (sr) {
            *out = shape_view(c, sr, len, (size_t)klen, o);
            return AL_OK;
        }
    }

    reset_scratch(c);
    classify_text(c, sql, len, fn_default);
    if (c->oom) {
        *out = &oom_result;
        return AL_ERR;
    }
    if (klen >= 0)
        shape_put(c, sql, len, (size_t)klen, shash, fn_default);
    if (cacheable && plan(c, len).total <= c->cfg.cache_max_bytes) {
        al__sql_block_t blk = {NULL, 0};
        r = build(c, &blk, sql, len);
        if (r)
            r = al__sql_cache_put(c->cache, blk, hash, (char *)blk.mem + plan(c, len).key, len,
                                  fn_default);
        else
            al_free(&blk.mem);
    } else {
        r = build(c, &c->last, "", 0);
    }
    if (!r) {
        *out = &oom_result;
        return AL_ERR;
    }
    r->from_cache = false;
    r->from_shape_cache = false;
    resolve(r, o);
    *out = r;
    return AL_OK;
}
