/*
 * fuzz_sql.c - al_sql_classify on arbitrary bytes.
 *
 * Every input is classified three ways: by an uncached classifier, and
 * twice by one with a small cache (the second call is a hit unless the input
 * is over the cache's text bound), under a default function class and a
 * prepared-statement resolver derived from the input's length. Checked for
 * each result: classes in range; every statement inside the input; the
 * result's class is the most dangerous statement class (unknown when the
 * input was refused); a statement's class is never below its tree class;
 * cached and uncached answers agree. Each statement's own text, classified
 * alone, must give that statement's tree class again.
 *
 * Shape cache: when the input has a shape key with literals, a sibling of
 * the same shape (its literals respelled) is classified first by a
 * shape-caching classifier, then the input twice; both answers must agree
 * with the uncached one in everything, statement ranges included. The
 * sibling must have the same key, so the normalizer is checked too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <stdio.h>

#include "policy/sql_classify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static al_sql_t *cached, *uncached, *alone, *shaped;
static char *key, *key2, *sib;
#define SHAPE_CAP (16u << 10)

static al_sql_class_t resolve(void *arg, al_str_t name)
{
    AL_UNUSED(arg);
    /* some names known, some not, one out of range */
    return name.len == 7 ? (al_sql_class_t)9 : (al_sql_class_t)(name.len % AL_SQL_CLASS_COUNT);
}

static bool ident_byte(char ch)
{
    return (unsigned char)ch >= 0x80 || ch == '_' || ch == '$' || (ch >= '0' && ch <= '9') ||
           ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z');
}

/* The sibling: each placeholder of the key respelled as another literal of
 * the same kind, picked by the input's length. */
static size_t sibling(const char *k, size_t klen, size_t seed, char *out, size_t cap)
{
    static const char *const ints[] = {"0", "42", "2147483647", "0007"};
    static const char *const nums[] = {"2147483648", "1.5", ".5", "5.", "1e10", "2E-3"};
    static const char *const strs[] = {"''", "'x''y'", "E'\\''", "$$;$$", "$t$a$t$", "'a'\n'b'", "'{1,2}'"};
    size_t o = 0;
    for (size_t i = 0; i < klen; i++, seed++) {
        const char *lit = NULL;
        switch (k[i]) {
        case AL__SQL_SHAPE_INT: lit = ints[seed % AL_ARRAY_LEN(ints)]; break;
        case AL__SQL_SHAPE_NUM:
            lit = nums[seed % AL_ARRAY_LEN(nums)];
            if (o > 0 && (ident_byte(out[o - 1]) || out[o - 1] == '.'))
                lit = seed & 1 ? ".5" : ".25e3"; /* a1.5 is a1 then .5, 1.5.5 */
            else if (i + 1 < klen && k[i + 1] == AL__SQL_SHAPE_NUM)
                lit = "1.5"; /* "5." then ".5" would read "5..5" */
            break;
        case AL__SQL_SHAPE_STR:
            lit = strs[seed % AL_ARRAY_LEN(strs)];
            /* after a name's last byte (N'...', a'...') a prefix or a $
             * would join the name: plain quotes only */
            if (o > 0 && ident_byte(out[o - 1]))
                lit = seed & 1 ? "'x''y'" : "'a'\n'b'";
            else if (o > 0 && out[o - 1] == '\'' && lit[0] == '\'')
                lit = "$$;$$"; /* 'a''b' would be one string */
            break;
        case AL__SQL_SHAPE_USTR: lit = "U&'z'"; break;
        case AL__SQL_SHAPE_BIT: lit = "B'0'"; break;
        case AL__SQL_SHAPE_HEX: lit = "X'f'"; break;
        default: break;
        }
        size_t n = lit ? strlen(lit) : 1;
        if (o + n > cap)
            return SIZE_MAX;
        memcpy(out + o, lit ? lit : &k[i], n);
        o += n;
    }
    return o;
}

static void check_result(const al_sql_result_t *r, size_t size)
{
    if ((unsigned)r->cls >= AL_SQL_CLASS_COUNT)
        abort();
    al_sql_class_t max = r->error.len ? AL_SQL_UNKNOWN : AL_SQL_READ;
    size_t n_tables = 0;
    for (size_t i = 0; i < r->n_stmts; i++) {
        const al_sql_stmt_t *s = &r->stmts[i];
        if ((unsigned)s->cls >= AL_SQL_CLASS_COUNT || (unsigned)s->tree_cls >= AL_SQL_CLASS_COUNT ||
            s->cls < s->tree_cls)
            abort();
        if (s->offset > size || s->len > size - s->offset)
            abort();
        if (i > 0 && s->offset < r->stmts[i - 1].offset + r->stmts[i - 1].len)
            abort(); /* statements do not overlap */
        if (!s->kind || !s->reason || (s->execute_name.len && !s->executes))
            abort();
        for (size_t k = 0; k < s->n_tables; k++)
            if (s->tables[k].name.len == 0 || s->tables[k].name.p[s->tables[k].name.len] != '\0')
                abort();
        for (size_t k = 0; k < s->n_funcs; k++)
            if ((unsigned)s->funcs[k].cls >= AL_SQL_CLASS_COUNT || s->funcs[k].cls > s->tree_cls)
                abort(); /* a function's class is joined into the tree's */
        n_tables += s->n_tables;
        max = al_sql_class_max(max, s->cls);
    }
    if (r->cls != max || r->n_tables != n_tables)
        abort();
    if (r->error.len && r->n_stmts)
        abort();
}

static void same(const al_sql_result_t *a, const al_sql_result_t *b)
{
    if (a->cls != b->cls || a->n_stmts != b->n_stmts || a->n_tables != b->n_tables ||
        a->error_pos != b->error_pos || !al_str_eq(a->error, b->error))
        abort();
    for (size_t i = 0; i < a->n_stmts; i++) {
        const al_sql_stmt_t *x = &a->stmts[i], *y = &b->stmts[i];
        if (x->cls != y->cls || x->tree_cls != y->tree_cls || x->offset != y->offset ||
            x->len != y->len || x->n_tables != y->n_tables || x->n_funcs != y->n_funcs ||
            x->n_schemas != y->n_schemas || strcmp(x->kind, y->kind) != 0 ||
            !al_str_eq(x->prepare_name, y->prepare_name) || !al_str_eq(x->execute_name, y->execute_name) ||
            strcmp(x->reason, y->reason) != 0 || !al_str_eq(x->reason_arg, y->reason_arg) ||
            strcmp(x->tree_reason, y->tree_reason) != 0)
            abort();
        for (size_t k = 0; k < x->n_schemas; k++)
            if (!al_str_eq(x->schemas[k], y->schemas[k]))
                abort();
        for (size_t k = 0; k < x->n_tables; k++)
            if (!al_str_eq(x->tables[k].catalog, y->tables[k].catalog) ||
                !al_str_eq(x->tables[k].schema, y->tables[k].schema) ||
                !al_str_eq(x->tables[k].name, y->tables[k].name))
                abort();
        for (size_t k = 0; k < x->n_funcs; k++)
            if (!al_str_eq(x->funcs[k].name, y->funcs[k].name) || x->funcs[k].cls != y->funcs[k].cls ||
                !al_str_eq(x->funcs[k].schema, y->funcs[k].schema) || x->funcs[k].listed != y->funcs[k].listed)
                abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!cached) {
        al_sql_config_t small = {.cache_entries = 8, .cache_max_bytes = 64 << 10, .max_text = 1 << 20};
        al_sql_config_t none = {.no_cache = true, .max_text = 1 << 20};
        al_sql_config_t shape = {.cache_entries = 8, .shape_cache_entries = 8, .max_text = 1 << 20};
        cached = al_sql_new(&small);
        uncached = al_sql_new(&none);
        alone = al_sql_new(&none);
        shaped = al_sql_new(&shape);
        key = malloc(SHAPE_CAP);
        key2 = malloc(SHAPE_CAP);
        sib = malloc(8 * SHAPE_CAP);
        if (!cached || !uncached || !alone || !shaped || !key || !key2 || !sib)
            abort();
    }
    const char *sql = (const char *)data;
    al_sql_opts_t o = {.default_function_class = (al_sql_class_t)(size % (AL_SQL_CLASS_COUNT + 1)),
                       .resolve_prepared = size & 1 ? resolve : NULL};
    const al_sql_result_t *u = NULL, *c1 = NULL, *c2 = NULL;
    if (al_sql_classify(uncached, sql, size, &o, &u) != AL_OK)
        return 0; /* out of memory: nothing to compare */
    check_result(u, size);
    if (al_sql_classify(cached, sql, size, &o, &c1) != AL_OK)
        return 0;
    check_result(c1, size);
    same(u, c1);
    if (al_sql_classify(cached, sql, size, &o, &c2) != AL_OK)
        return 0;
    check_result(c2, size);
    if (size <= (16u << 10) && !c2->from_cache)
        abort();
    same(u, c2);

    /* A sibling of the same shape warms the shape cache; the input must
     * then get the uncached answer, from the shape cache or not. */
    size_t n_lits = 0;
    ssize_t kl = al__sql_shape(sql, size, key, SHAPE_CAP, &n_lits, NULL);
    if (kl >= 0) {
        if ((size_t)kl > size)
            abort();
        for (ssize_t i = 0; i < kl; i++) /* placeholders, and nothing else, are >= 0xF8 */
            if ((unsigned char)key[i] >= 0xF8 && (unsigned char)key[i] <= 0xFD)
                n_lits--;
        if (n_lits != 0)
            abort();
        size_t sl = sibling(key, (size_t)kl, size, sib, 8 * SHAPE_CAP);
        if (sl != SIZE_MAX) {
            size_t n2 = 0;
            ssize_t k2 = al__sql_shape(sib, sl, key2, SHAPE_CAP, &n2, NULL);
            if (sl <= SHAPE_CAP && (k2 != kl || memcmp(key, key2, (size_t)kl) != 0))
                abort(); /* respelling literals must keep the shape */
            const al_sql_result_t *s1 = NULL, *s2 = NULL, *s3 = NULL;
            if (al_sql_classify(shaped, sib, sl, &o, &s1) != AL_OK)
                return 0;
            check_result(s1, sl);
            if (al_sql_classify(shaped, sql, size, &o, &s2) != AL_OK)
                return 0;
            check_result(s2, size);
            same(u, s2);
            if (s2->literal_sensitive != u->literal_sensitive)
                abort();
            if (al_sql_classify(shaped, sql, size, &o, &s3) != AL_OK)
                return 0;
            check_result(s3, size);
            same(u, s3);
        }
    }

    /* Each statement alone gives its tree class again. */
    for (size_t i = 0; i < u->n_stmts; i++) {
        const al_sql_stmt_t *s = &u->stmts[i];
        const al_sql_result_t *a = NULL;
        if (al_sql_classify(alone, sql + s->offset, s->len, &o, &a) != AL_OK)
            return 0;
        if (a->n_stmts != 1 || a->stmts[0].tree_cls != s->tree_cls || a->stmts[0].cls != s->cls)
            abort();
    }
    return 0;
}
