/*
 * sql_classify.h - classify PostgreSQL statements for policy decisions.
 *
 * Every statement an agent sends is parsed by the real PostgreSQL 15 parser
 * (libpg_query) and given one class. The class names are a public contract
 * (policy files use them); they are ordered by danger:
 *
 *     read < write < ddl < dcl < admin < unknown
 *
 * A statement takes the most dangerous class found anywhere in its parse
 * tree; a string of several statements takes the most dangerous class of
 * its statements. Input that does not parse is `unknown` (fail closed). The
 * full rule set and the side-effect function table are in
 * docs/sql-classification.md.
 *
 * Threading: an al_sql_t (scratch buffers + optional result cache) is NOT
 * thread-safe. Create one per worker thread. libpg_query itself keeps its
 * memory contexts per thread, so several al_sql_t on several threads are
 * fine.
 *
 * Ownership: every pointer inside a result returned by al_sql_classify()
 * (statements, tables, functions, schemas, strings, the result itself) is
 * owned by the al_sql_t and stays valid until the next call of
 * al_sql_classify() on the same al_sql_t, or al_sql_free(). Copy what must
 * outlive that. Nothing in a result needs freeing by the caller.
 */
#ifndef AL_POLICY_SQL_CLASSIFY_H
#define AL_POLICY_SQL_CLASSIFY_H

#include "core/core.h"

/* ---- classes ------------------------------------------------------------ */

typedef enum al_sql_class {
    AL_SQL_READ = 0,
    AL_SQL_WRITE = 1,
    AL_SQL_DDL = 2,
    AL_SQL_DCL = 3,
    AL_SQL_ADMIN = 4,
    AL_SQL_UNKNOWN = 5,
} al_sql_class_t;

#define AL_SQL_CLASS_COUNT 6

/* The contract name of a class: "read", "write", "ddl", "dcl", "admin",
 * "unknown". A value out of range yields "unknown". Static storage. */
const char *al_sql_class_name(al_sql_class_t cls);

/* Parses a class name as spelled by al_sql_class_name (exact, lowercase).
 * Returns AL_OK and sets *out, or AL_ERR for anything else. */
int al_sql_class_parse(al_str_t name, al_sql_class_t *out);

/* The more dangerous of two classes. */
static inline al_sql_class_t al_sql_class_max(al_sql_class_t a, al_sql_class_t b)
{
    return a > b ? a : b;
}

/* ---- side-effect function table ----------------------------------------- */

/* Class of a function call by the documented side-effect table
 * (sql_functions.c). The name is compared case-insensitively; the schema is
 * accepted whatever it is (extension functions live in any schema, and a
 * wrapper with the same name is presumed to do the same). Returns the
 * table's class, or `dflt` when the function is not in the table; sets
 * *listed (may be NULL) to whether it was. */
al_sql_class_t al_sql_function_class(al_str_t name, al_sql_class_t dflt, bool *listed);

/* Class of `SET name = value` for a configuration parameter: AL_SQL_ADMIN for
 * role/session switching and superuser-level settings (the settings table,
 * whatever the value, RESET included); for search_path set to any value
 * (policies take an unqualified table for public.name); and for
 * client_encoding / standard_conforming_strings when `value` would make the
 * server lex the text differently from this classifier. AL_SQL_READ
 * otherwise, and for a reset (`reset` true: RESET, SET ... TO DEFAULT,
 * SET ... FROM CURRENT) of those last three. `value` is the first value as
 * text, empty for a reset. */
al_sql_class_t al_sql_setting_class(al_str_t name, al_str_t value, bool reset);

/* ---- results ------------------------------------------------------------- */

/* A relation named in a statement (FROM, JOIN, subquery, CTE body, DML
 * target, COPY, TRUNCATE, LOCK, DDL target ...). Unquoted identifiers are
 * already lowercased by the parser; quoted ones are kept exactly. Each
 * string is also NUL-terminated. An empty al_str_t (len 0) means "not
 * written" (unqualified), except that the objects CREATE SCHEMA s creates
 * get schema s, as the server puts them there. References to a CTE in scope
 * are not tables. */
typedef struct al_sql_table {
    al_str_t catalog; /* database, from a three-part name; usually empty */
    al_str_t schema;
    al_str_t name;
} al_sql_table_t;

/* A function called in a statement, with the class it contributed. */
typedef struct al_sql_func {
    al_str_t schema; /* empty when unqualified, and for calls the grammar
                      * makes from SQL syntax (EXTRACT, TRIM ...): those are
                      * always pg_catalog built-ins, read unless listed */
    al_str_t name;
    al_sql_class_t cls; /* from the side-effect table, else the default */
    bool listed;        /* true when found in the side-effect table */
} al_sql_func_t;

/* One statement of the input. Tables, functions and schemas are sorted and
 * free of duplicates within the statement. */
typedef struct al_sql_stmt {
    al_sql_class_t cls;  /* final class: tree_cls joined with EXECUTE's */
    size_t offset, len;  /* byte range in the input, as PostgreSQL splits it
                          * (it starts right after the previous ';', so it
                          * may begin with white space or comments) */
    const char *kind;    /* parse node of the statement, e.g. "SelectStmt";
                          * static storage */
    const char *reason;  /* why `cls`, e.g. "side-effect function"; static */
    al_str_t reason_arg; /* what triggered it: function, node, setting ... */

    al_sql_class_t tree_cls; /* class from this statement's parse tree alone */
    const char *tree_reason;
    al_str_t tree_reason_arg;

    al_str_t prepare_name; /* PREPARE name AS ...: the name; else empty */
    al_str_t execute_name; /* EXECUTE name, also inside EXPLAIN (planning
                            * may run its functions) or CREATE TABLE AS:
                            * the prepared statement whose class is joined
                            * in */
    bool executes;         /* true when the statement has an EXECUTE */

    const al_sql_table_t *tables;
    size_t n_tables;
    const al_sql_func_t *funcs;
    size_t n_funcs;
    const al_str_t *schemas; /* every schema named by a table, a function
                              * or a schema-level DDL/DCL statement */
    size_t n_schemas;
} al_sql_stmt_t;

typedef struct al_sql_result {
    al_sql_class_t cls; /* most dangerous statement class; read for zero
                         * statements (empty input or only comments);
                         * unknown when the input did not parse */
    const al_sql_stmt_t *stmts;
    size_t n_stmts;
    const al_sql_table_t *tables; /* all statements' tables, statement by
                                   * statement (stmt->tables points in) */
    size_t n_tables;
    al_str_t error;  /* parser message (or why classification gave up) when
                      * the input was not classified; empty otherwise */
    int error_pos;   /* 1-based character position of the error as
                      * PostgreSQL reports it; 0 when none */
    bool from_cache; /* true when served from the cache (either one) */
    bool from_shape_cache;  /* true when served from the shape cache: the
                             * result of another text that differs only in
                             * literal values (see the shape cache below) */
    bool literal_sensitive; /* true when the class or anything extracted
                             * depended on a literal's value (a SET value,
                             * an EXPLAIN option, a COPY file name, a
                             * function's LANGUAGE ...): such a result is
                             * never shared by shape */
} al_sql_result_t;

/* ---- options ------------------------------------------------------------- */

/* Resolves a SQL-level prepared statement name (EXECUTE name) to the class
 * the session recorded when it was prepared. Return AL_SQL_UNKNOWN for a
 * name it does not know. Called on every al_sql_classify(), cache hits
 * included, since prepared statements are per session state. */
typedef al_sql_class_t (*al_sql_prepared_fn)(void *arg, al_str_t name);

/* Per-call options. A zeroed struct is the documented default. */
typedef struct al_sql_opts {
    /* Class of a function that is not in the side-effect table. Default
     * (zero) AL_SQL_READ. Part of the cache key. */
    al_sql_class_t default_function_class;
    /* Optional: resolves EXECUTE; without it EXECUTE is `unknown`. */
    al_sql_prepared_fn resolve_prepared;
    void *resolve_arg;
} al_sql_opts_t;

/* ---- classifier ---------------------------------------------------------- */

typedef struct al_sql al_sql_t;

/* Sizing. A zeroed struct gives the defaults in brackets. */
typedef struct al_sql_config {
    bool no_cache;          /* true: classify every call afresh */
    size_t cache_entries;   /* results kept [4096] */
    size_t cache_max_bytes; /* bytes of all cached entries [16 MiB] */
    size_t cache_max_text;  /* longer statements are not cached [16 KiB] */
    size_t max_text;        /* longer input is `unknown` [4 MiB] */
    /* The shape cache (docs/sql-classification.md, "Shape cache"): results
     * keyed by the text with literal constants replaced by placeholders,
     * so statements that differ only in constant values share one
     * classification. Only single-statement results that parsed and did
     * not depend on a literal's value are stored; statements up to
     * cache_max_text. Off when no_cache is set. */
    bool no_shape_cache;          /* true: exact-text cache only */
    size_t shape_cache_entries;   /* results kept [4096] */
    size_t shape_cache_max_bytes; /* bytes of all entries [16 MiB] */
} al_sql_config_t;

/* Creates a classifier (cfg may be NULL). Returns NULL when out of memory.
 * Release with al_sql_free. */
AL_MUST_USE al_sql_t *al_sql_new(const al_sql_config_t *cfg);

/* Frees the classifier, its cache and every result it handed out; clears
 * *c. Accepts a pointer to NULL. */
void al_sql_free(al_sql_t **c);

/* Classifies sql[0..len) (need not be NUL-terminated; an embedded NUL makes
 * it `unknown`). opts may be NULL (defaults). Sets *out to the result, owned
 * by `c` (see the ownership note at the top of this file).
 * Returns AL_OK; or AL_ERR when out of memory, in which case *out still
 * points to a valid `unknown` result (fail closed). */
int al_sql_classify(al_sql_t *c, const char *sql, size_t len, const al_sql_opts_t *opts,
                    const al_sql_result_t **out);

/* Cache counters, for metrics. A shape lookup happens only after a miss
 * of the exact-text cache, and only for text that has a shape key with at
 * least one literal. */
typedef struct al_sql_cache_stats {
    uint64_t hits, misses, evictions;
    size_t entries, bytes;
    uint64_t shape_hits, shape_misses, shape_evictions;
    size_t shape_entries, shape_bytes;
} al_sql_cache_stats_t;

void al_sql_cache_stats(const al_sql_t *c, al_sql_cache_stats_t *out);

/* ---- internal, shared by sql_classify.c and sql_cache.c ------------------- */

typedef struct al__sql_cache al__sql_cache_t;

/* A finished result laid out in one heap block: the al_sql_result_t at the
 * start, then statements, tables, functions, schemas, strings, and a copy of
 * the statement text (the cache key). */
typedef struct al__sql_block {
    void *mem;
    size_t size;
} al__sql_block_t;

AL_MUST_USE al__sql_cache_t *al__sql_cache_new(size_t entries, size_t max_bytes);
void al__sql_cache_free(al__sql_cache_t **cache);
/* Finds the result for (text, fn_default). Returns it (owned by the cache,
 * moved to the most-recently-used end) or NULL; *hash gets the key's hash
 * for a following al__sql_cache_put. */
al_sql_result_t *al__sql_cache_get(al__sql_cache_t *cache, const char *text, size_t len,
                                   al_sql_class_t fn_default, uint64_t *hash);
/* Stores `blk` under the key (hash from al__sql_cache_get; text must point
 * into blk). Ownership of blk moves to the cache, also on failure, when it
 * is freed at once. Evicts least recently used entries to stay within both
 * bounds. Returns the stored result, or NULL when blk alone is over the
 * byte bound. */
al_sql_result_t *al__sql_cache_put(al__sql_cache_t *cache, al__sql_block_t blk, uint64_t hash,
                                   const char *text, size_t len, al_sql_class_t fn_default);
void al__sql_cache_stats(const al__sql_cache_t *cache, al_sql_cache_stats_t *out);

/* Shape keys (sql_shape.c). In a key every literal constant becomes one
 * byte naming its kind. The bytes 0xF8..0xFD never occur in well-formed
 * UTF-8 (RFC 3629 §3), and only well-formed UTF-8 gets a key, so a
 * placeholder can never be confused with the statement's own bytes. */
#define AL__SQL_SHAPE_INT '\xF8'  /* integer PostgreSQL reads as ICONST (fits 32 bits) */
#define AL__SQL_SHAPE_NUM '\xF9'  /* any other number (FCONST) */
#define AL__SQL_SHAPE_STR '\xFA'  /* '...', E'...', $tag$...$tag$, continued */
#define AL__SQL_SHAPE_USTR '\xFB' /* U&'...' */
#define AL__SQL_SHAPE_BIT '\xFC'  /* B'...' */
#define AL__SQL_SHAPE_HEX '\xFD'  /* X'...' */

/* Writes the shape key of sql[0..len) into out (cap bytes; a key is never
 * longer than its text). Pure: no allocation, no state. Returns the key's
 * length and sets *n_literals (may be NULL) to the number of placeholders;
 * or returns -1 when the text gets no key (longer than cap, a NUL byte,
 * invalid UTF-8, an unterminated string, comment or quoted name, a
 * backslash in a '' string, an escape the server validates in E'' or U&'',
 * UESCAPE, trailing junk after a number), with *why (may be NULL) set to a
 * static reason. Then the caller classifies the text itself. */
ssize_t al__sql_shape(const char *sql, size_t len, char *out, size_t cap, size_t *n_literals,
                      const char **why);

/* SipHash-2-4 of p[0..n) under a 128-bit key (k0, k1). */
uint64_t al__sql_siphash(uint64_t k0, uint64_t k1, const void *p, size_t n);

/* Entry i of the function table (which = 0) or the settings table
 * (which = 1); returns the table's length, filling the outputs when i is in
 * range. For the unit test that checks every documented entry. */
size_t al__sql_table_entry(int which, size_t i, const char **name, bool *prefix,
                           al_sql_class_t *cls);

#endif
