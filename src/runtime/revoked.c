/*
 * revoked.c - immutable revocation sets and their file.
 *
 * Lookups hash the name (FNV-1a) into an open-addressing table built with
 * the set, so a worker's check before each statement is a hash and one or
 * two string compares, with no lock: nobody writes a set once it is made.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <jansson.h>

#include "runtime/revoked.h"

#define MAX_FILE (16 * 1024 * 1024)

struct al_revset {
    _Atomic int refs;
    uint64_t gen;
    al_revoked_t *e;    /* entries, strings owned */
    size_t n;
    uint32_t *slots;    /* index + 1; 0 = empty */
    size_t mask;        /* slots - 1 */
};

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

/* Takes ownership of e[0..n). */
static al_revset_t *build(al_revoked_t *e, size_t n, uint64_t gen)
{
    al_revset_t *s = al_xcalloc(1, sizeof *s);
    atomic_init(&s->refs, 1);
    s->gen = gen;
    s->e = e;
    s->n = n;
    size_t cap = 8;
    while (cap < 2 * n)
        cap <<= 1;
    s->slots = al_xcalloc(cap, sizeof *s->slots);
    s->mask = cap - 1;
    for (size_t i = 0; i < n; i++) {
        size_t k = fnv1a(e[i].agent) & s->mask;
        while (s->slots[k])
            k = (k + 1) & s->mask;
        s->slots[k] = (uint32_t)(i + 1);
    }
    return s;
}

static void ent_copy(al_revoked_t *d, const al_revoked_t *src)
{
    d->agent = al_xstrdup(src->agent);
    d->reason = al_xstrdup(src->reason ? src->reason : "");
    d->by = al_xstrdup(src->by ? src->by : "");
    d->event_id = al_xstrdup(src->event_id ? src->event_id : "");
    d->at = src->at;
}

static void ent_free(al_revoked_t *e)
{
    free((char *)e->agent);
    free((char *)e->reason);
    free((char *)e->by);
    free((char *)e->event_id);
}

al_revset_t *al_revset_empty(void) { return build(NULL, 0, 0); }

al_revset_t *al_revset_ref(al_revset_t *s)
{
    if (s)
        atomic_fetch_add(&s->refs, 1);
    return s;
}

void al_revset_unref(al_revset_t **ps)
{
    al_revset_t *s = *ps;
    *ps = NULL;
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    for (size_t i = 0; i < s->n; i++)
        ent_free(&s->e[i]);
    free(s->e);
    free(s->slots);
    free(s);
}

const al_revoked_t *al_revset_find(const al_revset_t *s, const char *agent)
{
    if (!s || !agent || !s->n)
        return NULL;
    for (size_t k = fnv1a(agent) & s->mask; s->slots[k]; k = (k + 1) & s->mask) {
        const al_revoked_t *e = &s->e[s->slots[k] - 1];
        if (!strcmp(e->agent, agent))
            return e;
    }
    return NULL;
}

al_tok_status_t al_revset_check(const al_revset_t *s, const al_principal_t *p)
{
    return p && al_revset_find(s, p->agent) ? AL_TOK_REVOKED : AL_TOK_OK;
}

size_t al_revset_count(const al_revset_t *s) { return s ? s->n : 0; }

const al_revoked_t *al_revset_at(const al_revset_t *s, size_t i)
{
    return s && i < s->n ? &s->e[i] : NULL;
}

uint64_t al_revset_gen(const al_revset_t *s) { return s ? s->gen : 0; }

al_revset_t *al_revset_with(const al_revset_t *s, const al_revoked_t *add)
{
    al_revoked_t *e = al_xcalloc(s->n + 1, sizeof *e);
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->e[i].agent, add->agent))
            ent_copy(&e[n++], &s->e[i]);
    ent_copy(&e[n++], add);
    return build(e, n, s->gen + 1);
}

al_revset_t *al_revset_without(const al_revset_t *s, const char *agent)
{
    if (!al_revset_find(s, agent))
        return NULL;
    al_revoked_t *e = al_xcalloc(s->n ? s->n : 1, sizeof *e);
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->e[i].agent, agent))
            ent_copy(&e[n++], &s->e[i]);
    return build(e, n, s->gen + 1);
}

/* ---- the file ------------------------------------------------------------------- */

int al_revset_json(const al_revset_t *s, al_buf_t *b)
{
    al_buf_puts(b, "[");
    for (size_t i = 0; i < s->n; i++) {
        const al_revoked_t *e = &s->e[i];
        al_buf_puts(b, i ? ",{\"agent\":" : "{\"agent\":");
        al_buf_json_str(b, e->agent, strlen(e->agent));
        al_buf_puts(b, ",\"reason\":");
        al_buf_json_str(b, e->reason, strlen(e->reason));
        al_buf_puts(b, ",\"by\":");
        al_buf_json_str(b, e->by, strlen(e->by));
        al_buf_puts(b, ",\"event_id\":");
        al_buf_json_str(b, e->event_id, strlen(e->event_id));
        al_buf_printf(b, ",\"at\":%.6f}", e->at);
    }
    al_buf_puts(b, "]");
    return b->oom ? AL_ERR : AL_OK;
}

static void path_of(const char *data_dir, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", data_dir, AL_REVOKED_FILE);
}

int al_revset_load(const char *data_dir, al_revset_t **out, char *err, size_t cap)
{
    char path[4096];
    path_of(data_dir, path, sizeof path);
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    if (al_read_file(path, MAX_FILE, &text, &len) != AL_OK) {
        if (errno == ENOENT) {
            *out = al_revset_empty();
            return AL_OK;
        }
        snprintf(err, cap, "%s: cannot read: %s", path, strerror(errno));
        return AL_ERR;
    }
    json_error_t je;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    free(text);
    json_t *arr = json_object_get(doc, "revoked");
    if (!json_is_object(doc) || json_integer_value(json_object_get(doc, "version")) != 1 ||
        !json_is_array(arr)) {
        snprintf(err, cap, "%s: not a revocation file (want {\"version\":1,\"revoked\":[...]}%s%s)",
                 path, doc ? "" : ": ", doc ? "" : je.text);
        json_decref(doc);
        return AL_ERR;
    }
    size_t n = json_array_size(arr);
    al_revoked_t *e = al_xcalloc(n ? n : 1, sizeof *e);
    size_t k = 0;
    size_t i;
    json_t *it;
    json_array_foreach(arr, i, it) {
        const char *agent = json_string_value(json_object_get(it, "agent"));
        const char *reason = json_string_value(json_object_get(it, "reason"));
        const char *by = json_string_value(json_object_get(it, "by"));
        const char *ev = json_string_value(json_object_get(it, "event_id"));
        json_t *at = json_object_get(it, "at");
        if (!agent || !*agent || !json_is_number(at)) {
            snprintf(err, cap, "%s: entry %zu lacks \"agent\" or \"at\"", path, i + 1);
            for (size_t j = 0; j < k; j++)
                ent_free(&e[j]);
            free(e);
            json_decref(doc);
            return AL_ERR;
        }
        al_revoked_t src = {agent, reason, by, ev, json_number_value(at)};
        bool dup = false;
        for (size_t j = 0; j < k; j++)
            dup |= !strcmp(e[j].agent, agent);
        if (!dup)
            ent_copy(&e[k++], &src);
    }
    json_decref(doc);
    *out = build(e, k, 1);
    return AL_OK;
}

int al_revset_save(const char *data_dir, const al_revset_t *s, char *err, size_t cap)
{
    char path[4096];
    path_of(data_dir, path, sizeof path);
    al_buf_t b;
    al_buf_init(&b);
    al_buf_puts(&b, "{\"version\":1,\"revoked\":");
    al_revset_json(s, &b);
    al_buf_puts(&b, "}\n");
    if (b.oom) {
        al_buf_free(&b);
        snprintf(err, cap, "%s: out of memory", path);
        return AL_ERR;
    }
    int rc = al_write_file_atomic(path, b.p, b.len, 0600);
    al_buf_free(&b);
    if (rc != AL_OK) {
        snprintf(err, cap, "%s: cannot write: %s", path, strerror(errno));
        return AL_ERR;
    }
    /* The rename is durable only once the directory is on disk too. */
    int fd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        snprintf(err, cap, "%s: cannot sync the directory: %s", data_dir, strerror(errno));
        if (fd >= 0)
            close(fd);
        return AL_ERR;
    }
    close(fd);
    return AL_OK;
}
