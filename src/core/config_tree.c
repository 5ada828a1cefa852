/*
 * config_tree.c - YAML text to a small node tree, with libyaml's event API.
 *
 * The event API (not yaml_parser_load) is used so that hostile constructs
 * are seen before they cost anything: an alias is refused where it appears
 * instead of being expanded or shared, nesting stops at AL_CONFIG_MAX_DEPTH
 * without recursion, and a second document stops the parse.
 */
#include <stdio.h>
#include <stdlib.h>
#include <yaml.h>

#include "core/config_int.h"

typedef struct tree_builder {
    al__cfg_diag_t *d;
    al__cfg_node_t *root;
    al__cfg_node_t *stack[AL_CONFIG_MAX_DEPTH];
    int depth;
    int docs;
} tree_builder_t;

void al__cfg_node_free(al__cfg_node_t *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n; i++)
        al__cfg_node_free(n->kids[i]);
    al_free(&n->kids);
    al_free(&n->val);
    al_free(&n);
}

bool al__cfg_is_null(const al__cfg_node_t *n)
{
    if (n->kind != AL__CFG_SCALAR || !n->plain)
        return false;
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    for (size_t i = 0; i < AL_ARRAY_LEN(nulls); i++)
        if (strcmp(n->val, nulls[i]) == 0)
            return true;
    return false;
}

const al__cfg_node_t *al__cfg_map_get(const al__cfg_node_t *map, const char *key)
{
    if (!map || map->kind != AL__CFG_MAP)
        return NULL;
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        const al__cfg_node_t *k = map->kids[i];
        if (k->kind == AL__CFG_SCALAR && strcmp(k->val, key) == 0)
            return map->kids[i + 1];
    }
    return NULL;
}

static al__cfg_node_t *node_new(al__cfg_kind_t kind, yaml_mark_t m)
{
    al__cfg_node_t *n = al_xcalloc(1, sizeof *n);
    n->kind = kind;
    /* libyaml marks are 0-based; messages are 1-based */
    n->line = m.line < INT32_MAX ? (int)m.line + 1 : INT32_MAX;
    n->col = m.column < INT32_MAX ? (int)m.column + 1 : INT32_MAX;
    return n;
}

/* Attaches n to the open collection (or makes it the root). */
static void attach(tree_builder_t *b, al__cfg_node_t *n)
{
    if (b->depth == 0) {
        b->root = n;
        return;
    }
    al__cfg_node_t *p = b->stack[b->depth - 1];
    if (p->n == 0 || (p->n >= 4 && (p->n & (p->n - 1)) == 0)) { /* 4, 8, 16, ... */
        size_t cap = p->n ? p->n * 2 : 4;
        al__cfg_node_t **k = al_realloc(p->kids, cap * sizeof *k);
        if (!k) {
            fputs("airlock: out of memory loading the config\n", stderr);
            abort();
        }
        p->kids = k;
    }
    p->kids[p->n++] = n;
}

/* Records anchors and tags, which the config format does not use. Returns
 * true when the node must be marked bad. */
static bool refuse_decorations(tree_builder_t *b, const yaml_event_t *ev,
                               const yaml_char_t *anchor, const yaml_char_t *tag)
{
    int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;
    if (anchor)
        al__cfg_error(b->d, line, col,
                      "YAML anchors ('&%s') are not supported; write the value out in full",
                      (const char *)anchor);
    if (tag) {
        /* show "!!binary" as written, not the resolved "tag:yaml.org,2002:binary" */
        const char *t = (const char *)tag, *core = "tag:yaml.org,2002:";
        bool short_form = strncmp(t, core, strlen(core)) == 0;
        al__cfg_error(b->d, line, col,
                      "YAML tags ('%s%s') are not supported; remove the tag and write a "
                      "plain value",
                      short_form ? "!!" : "", short_form ? t + strlen(core) : t);
    }
    return anchor || tag;
}

static void on_scalar(tree_builder_t *b, const yaml_event_t *ev)
{
    al__cfg_node_t *n = node_new(AL__CFG_SCALAR, ev->start_mark);
    n->val = al_xstrndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
    n->len = ev->data.scalar.length;
    n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    n->bad = refuse_decorations(b, ev, ev->data.scalar.anchor, ev->data.scalar.tag);
    attach(b, n);
}

static int on_start(tree_builder_t *b, const yaml_event_t *ev, al__cfg_kind_t kind)
{
    if (b->depth == AL_CONFIG_MAX_DEPTH) {
        al__cfg_error(b->d, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
                      "nesting deeper than %d levels is not supported; flatten the "
                      "structure",
                      AL_CONFIG_MAX_DEPTH);
        return AL_ERR;
    }
    al__cfg_node_t *n = node_new(kind, ev->start_mark);
    const yaml_char_t *anchor = kind == AL__CFG_MAP ? ev->data.mapping_start.anchor
                                                    : ev->data.sequence_start.anchor;
    const yaml_char_t *tag = kind == AL__CFG_MAP ? ev->data.mapping_start.tag
                                                 : ev->data.sequence_start.tag;
    n->bad = refuse_decorations(b, ev, anchor, tag);
    attach(b, n);
    b->stack[b->depth++] = n;
    return AL_OK;
}

static int on_event(tree_builder_t *b, const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++b->docs > 1) {
            al__cfg_error(b->d, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
                          "multiple YAML documents are not supported; keep one document "
                          "per config file (remove this '---')");
            return AL_ERR;
        }
        return AL_OK;
    case YAML_ALIAS_EVENT: {
        al__cfg_error(b->d, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
                      "YAML aliases are not supported ('*%s'); write the value out in full",
                      (const char *)ev->data.alias.anchor);
        al__cfg_node_t *n = node_new(AL__CFG_SCALAR, ev->start_mark);
        n->val = al_xstrdup("");
        n->bad = true;
        attach(b, n);
        return AL_OK;
    }
    case YAML_SCALAR_EVENT:
        on_scalar(b, ev);
        return AL_OK;
    case YAML_SEQUENCE_START_EVENT:
        return on_start(b, ev, AL__CFG_SEQ);
    case YAML_MAPPING_START_EVENT:
        return on_start(b, ev, AL__CFG_MAP);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        b->depth--;
        return AL_OK;
    default: /* stream start/end, document end */
        return AL_OK;
    }
}

/* Reader errors carry a byte offset, not a mark: count lines up to it. */
static void offset_to_mark(const char *data, size_t len, size_t off, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (data[i] == '\n') {
            ++*line;
            *col = 1;
        } else {
            ++*col;
        }
    }
}

static void syntax_error(al__cfg_diag_t *d, const yaml_parser_t *p, const char *data,
                         size_t len)
{
    int line = (int)p->problem_mark.line + 1, col = (int)p->problem_mark.column + 1;
    if (p->error == YAML_READER_ERROR) {
        offset_to_mark(data, len, p->problem_offset, &line, &col);
        al__cfg_error(d, line, col, "cannot read the YAML text: %s; save the file as UTF-8",
                      p->problem ? p->problem : "invalid input");
        return;
    }
    if (p->error == YAML_MEMORY_ERROR) {
        al__cfg_error(d, 1, 1, "out of memory while parsing the YAML text");
        return;
    }
    al__cfg_error(d, line, col, "YAML syntax error: %s%s%s; check the indentation and "
                  "quoting here",
                  p->problem ? p->problem : "invalid YAML", p->context ? " " : "",
                  p->context ? p->context : "");
}

al__cfg_node_t *al__cfg_parse(al__cfg_diag_t *d, const char *data, size_t len)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        al__cfg_error(d, 1, 1, "out of memory while parsing the YAML text");
        return NULL;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)(data ? data : ""), len);
    tree_builder_t b = {.d = d};
    int rc = AL_OK;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            syntax_error(d, &p, data, len);
            rc = AL_ERR;
            break;
        }
        yaml_event_type_t type = ev.type;
        rc = on_event(&b, &ev);
        yaml_event_delete(&ev);
        if (rc != AL_OK || type == YAML_STREAM_END_EVENT)
            break;
    }
    yaml_parser_delete(&p);
    if (rc != AL_OK) {
        al__cfg_node_free(b.root);
        return NULL;
    }
    return b.root;
}
