/*
 * verify.c - walks the hash chain of a store in order and names the first
 * event that does not link to its predecessor or does not match its own
 * hash (docs/audit.md "How verify works"), then checks the session
 * recordings the chain names (docs/recordings.md "Audit events").
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit.h"

#define STOP 1 /* row callback: break found, stop walking */

typedef struct vstate {
    al_audit_verify_t *out;
    uint8_t prev[32]; /* hash of the last intact event; zeros before the first */
    int64_t last_seq;
    al_buf_t scratch;
    bool oom;
} vstate_t;

static int broken(vstate_t *v, const al_audit_row_t *row, const char *fmt, ...) AL_PRINTF(3, 4);
static int broken(vstate_t *v, const al_audit_row_t *row, const char *fmt, ...)
{
    al_audit_verify_t *o = v->out;
    o->intact = false;
    o->bad_seq = row->seq;
    snprintf(o->bad_id, sizeof o->bad_id, "%s", row->ev.id);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->reason, sizeof o->reason, fmt, ap);
    va_end(ap);
    return STOP;
}

static int check_row(void *ud, const al_audit_row_t *row)
{
    vstate_t *v = ud;
    v->out->events++;
    if (row->decode_error)
        return broken(v, row, "event cannot be decoded (%s): it was edited", row->decode_error);
    if (row->prev_len != 32 || row->hash_len != 32)
        return broken(v, row, "prev_hash or hash is not 32 bytes: the event was edited");
    uint8_t h[32];
    if (al_audit_chain_hash(row->prev_hash, &row->ev, &v->scratch, h) != AL_OK) {
        v->oom = true;
        return AL_ERR;
    }
    if (memcmp(h, row->hash, 32) != 0)
        return broken(v, row, "content does not match its hash: the event was edited");
    if (memcmp(row->prev_hash, v->prev, 32) != 0) {
        if (v->last_seq == 0)
            return broken(v, row, "the first event does not start the chain (prev_hash is not "
                                  "zero): events before it were deleted, or it was inserted or reordered");
        if (row->seq != v->last_seq + 1)
            return broken(v, row, "prev_hash does not match the hash of the previous event (seq %"
                                  PRId64 ") and seq jumps from %" PRId64 " to %" PRId64 ": an event "
                                  "was deleted (or inserted or reordered)", v->last_seq,
                          v->last_seq, row->seq);
        return broken(v, row, "prev_hash does not match the hash of the previous event (seq %"
                              PRId64 "): an event was deleted, inserted or reordered here",
                      v->last_seq);
    }
    memcpy(v->prev, row->hash, 32);
    v->last_seq = row->seq;
    return AL_OK;
}

int al_audit_verify(al_audit_store_t *s, al_audit_verify_t *out, char *err, size_t cap)
{
    memset(out, 0, sizeof *out);
    out->intact = true;
    vstate_t v = {.out = out};
    al_buf_init(&v.scratch);
    int r = al_audit_store_iterate(s, 0, check_row, &v, err, cap);
    al_buf_free(&v.scratch);
    memcpy(out->head, v.prev, 32);
    if (v.oom) {
        snprintf(err, cap, "audit verify: out of memory");
        return AL_ERR;
    }
    if (r == STOP || r == AL_OK)
        return AL_OK;
    return AL_ERR;
}

/* ---- recordings -------------------------------------------------------------
 * docs/recordings.md "Audit events": a "session_end" event names its recording
 * (a path under the recordings directory) and the compressed file's
 * SHA-256; a later "recording" event (retention) says it was removed.
 * Three walks over the store: (1) every removal, (2) every session up to
 * the last event walk 1 saw, each checked against its file, (3) removals
 * committed meanwhile, which excuse a file walk 2 found missing. */

#define REC_STOP 2 /* row callback: past the end of walk 1 */

static const char *const problem_str[] = {
    [AL_AUDIT_REC_OK] = "recording ok",
    [AL_AUDIT_REC_CHANGED] = "recording changed",
    [AL_AUDIT_REC_MISSING] = "recording missing",
    [AL_AUDIT_REC_PATH_INVALID] = "recording path invalid",
    [AL_AUDIT_REC_HASH_INVALID] = "recording hash invalid",
    [AL_AUDIT_REC_UNREADABLE] = "recording unreadable",
    [AL_AUDIT_REC_REMOVED_CHANGED] = "recording changed before removal",
};

const char *al_audit_rec_problem_str(al_audit_rec_problem_t p)
{
    if ((size_t)p >= AL_ARRAY_LEN(problem_str) || !problem_str[p])
        return "recording problem";
    return problem_str[p];
}

int al_audit_sha256_fd(int fd, char hex[65])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(c);
        errno = ENOMEM;
        return AL_ERR;
    }
    uint8_t buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            EVP_MD_CTX_free(c);
            errno = e;
            return AL_ERR;
        }
        if (EVP_DigestUpdate(c, buf, (size_t)n) != 1) {
            EVP_MD_CTX_free(c);
            errno = ENOMEM;
            return AL_ERR;
        }
    }
    uint8_t md[32];
    unsigned int mdlen = 0;
    int ok = EVP_DigestFinal_ex(c, md, &mdlen) == 1 && mdlen == 32;
    EVP_MD_CTX_free(c);
    if (!ok) {
        errno = ENOMEM;
        return AL_ERR;
    }
    al_hex(md, 32, hex);
    return AL_OK;
}

/* The only layout a recording may have: YYYY/MM/DD/<session id><ext>, the
 * id in UUID layout (lower-case hex), so no absolute path, no "..", no
 * extra component can reach the file system. */
static bool rec_path_ok(const char *rel)
{
    static const char *const exts[] = {".jsonl.gz", ".cast.gz", ".jsonl", ".cast"};
    static const char shape[] = "dddd/dd/dd/";
    size_t n = strlen(rel);
    if (n < 11 + 36)
        return false;
    for (size_t i = 0; i < 11; i++) {
        char c = rel[i];
        if (shape[i] == 'd' ? !(c >= '0' && c <= '9') : c != '/')
            return false;
    }
    const char *id = rel + 11;
    for (size_t i = 0; i < 36; i++) {
        char c = id[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    for (size_t i = 0; i < AL_ARRAY_LEN(exts); i++)
        if (!strcmp(id + 36, exts[i]))
            return true;
    return false;
}

static bool sha_hex_ok(const char *h)
{
    if (!h || strlen(h) != 64)
        return false;
    for (size_t i = 0; i < 64; i++)
        if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
            return false;
    return true;
}

/* Untrusted text for a terminal: printable ASCII as is, every other byte
 * (and the backslash) as \xNN, at most max bytes of s. */
static void put_shown(al_buf_t *b, const char *s, size_t max)
{
    if (!s) {
        al_buf_puts(b, "-");
        return;
    }
    size_t n = strlen(s);
    for (size_t i = 0; i < n && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c > 0x20 && c < 0x7f && c != '\\')
            al_buf_append(b, &c, 1);
        else
            al_buf_printf(b, "\\x%02x", c);
    }
    if (n > max)
        al_buf_puts(b, "...");
}

/* A removal: the recording's path is kept as 16 bytes of its SHA-256. */
typedef struct removal {
    uint8_t key[16];
    uint8_t sha[32];
    bool has_sha;
    int64_t seq;
} removal_t;

/* A problem waiting to be reported (after walk 3). */
typedef struct pending {
    al_audit_rec_problem_t what;
    int64_t seq;
    uint8_t key[16];
    uint8_t sha[32]; /* the session's recorded hash, when valid */
    bool has_sha;
    size_t off;      /* its line in rstate.lines */
} pending_t;

typedef struct rstate {
    const char *dir;
    int root;          /* the recordings directory, opened on first use; -1 */
    bool root_missing; /* it does not exist: every recording is missing */
    removal_t *rm;
    size_t n_rm, cap_rm;
    pending_t *pend;
    size_t n_pend, cap_pend;
    al_buf_t lines;    /* pending lines, NUL-separated */
    int64_t last_seq;  /* end of walk 1 */
    al_audit_rec_verify_t *out;
    bool oom;
    char *err;
    size_t errcap;
    bool failed;       /* err holds a message */
} rstate_t;

static void rec_key(const char *rel, uint8_t key[16])
{
    uint8_t h[32];
    al_sha256(rel, strlen(rel), h);
    memcpy(key, h, 16);
}

static int unhex(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }

static void sha_bin(const char *hex, uint8_t out[32])
{
    for (int i = 0; i < 32; i++)
        out[i] = (uint8_t)(unhex(hex[2 * i]) << 4 | unhex(hex[2 * i + 1]));
}

static int rm_cmp(const void *a, const void *b)
{
    const removal_t *x = a, *y = b;
    int c = memcmp(x->key, y->key, 16);
    if (c)
        return c;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The first removal of key after seq, or NULL. rm sorted by rm_cmp. */
static const removal_t *rm_find(const rstate_t *r, const uint8_t key[16], int64_t seq)
{
    size_t lo = 0, hi = r->n_rm;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(r->rm[mid].key, key, 16);
        if (c < 0 || (c == 0 && r->rm[mid].seq <= seq))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < r->n_rm && !memcmp(r->rm[lo].key, key, 16))
        return &r->rm[lo];
    return NULL;
}

static int collect_removal(void *ud, const al_audit_row_t *row)
{
    rstate_t *r = ud;
    const al_audit_event_t *ev = &row->ev;
    if (row->seq > r->last_seq)
        r->last_seq = row->seq;
    if (row->decode_error || !ev->kind || strcmp(ev->kind, AL_AUDIT_KIND_RECORDING) ||
        !ev->recording)
        return AL_OK;
    if (r->n_rm == r->cap_rm) {
        size_t nc = r->cap_rm ? r->cap_rm * 2 : 64;
        removal_t *p = al_realloc(r->rm, nc * sizeof *p);
        if (!p) {
            r->oom = true;
            return AL_ERR;
        }
        r->rm = p;
        r->cap_rm = nc;
    }
    removal_t *m = &r->rm[r->n_rm++];
    memset(m, 0, sizeof *m);
    rec_key(ev->recording, m->key);
    m->seq = row->seq;
    m->has_sha = sha_hex_ok(ev->recording_sha256);
    if (m->has_sha)
        sha_bin(ev->recording_sha256, m->sha);
    return AL_OK;
}

static int add_problem(rstate_t *r, const al_audit_row_t *row, al_audit_rec_problem_t what,
                       const char *detail)
{
    const al_audit_event_t *ev = &row->ev;
    if (r->n_pend == r->cap_pend) {
        size_t nc = r->cap_pend ? r->cap_pend * 2 : 16;
        pending_t *p = al_realloc(r->pend, nc * sizeof *p);
        if (!p) {
            r->oom = true;
            return AL_ERR;
        }
        r->pend = p;
        r->cap_pend = nc;
    }
    pending_t *q = &r->pend[r->n_pend++];
    memset(q, 0, sizeof *q);
    q->what = what;
    q->seq = row->seq;
    rec_key(ev->recording, q->key);
    q->has_sha = sha_hex_ok(ev->recording_sha256);
    if (q->has_sha)
        sha_bin(ev->recording_sha256, q->sha);
    q->off = r->lines.len;
    al_buf_printf(&r->lines, "%s: ", al_audit_rec_problem_str(what));
    put_shown(&r->lines, ev->recording, 200);
    al_buf_puts(&r->lines, " (session ");
    put_shown(&r->lines, ev->session_id, 64);
    al_buf_printf(&r->lines, ", audit seq %" PRId64 ")", row->seq);
    if (detail)
        al_buf_printf(&r->lines, ": %s", detail);
    al_buf_append(&r->lines, "", 1);
    if (r->lines.oom) {
        r->oom = true;
        return AL_ERR;
    }
    return AL_OK;
}

/* Opens dir component by component without following a symbolic link.
 * Returns the fd, or -1 with errno. */
static int open_rec(rstate_t *r, const char *rel)
{
    if (r->root < 0 && !r->root_missing) {
        r->root = open(r->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (r->root < 0) {
            if (errno != ENOENT) {
                snprintf(r->err, r->errcap, "audit verify: cannot open recordings directory %s: %s",
                         r->dir, strerror(errno));
                r->failed = true;
                return -2;
            }
            r->root_missing = true;
        }
    }
    if (r->root_missing) {
        errno = ENOENT;
        return -1;
    }
    char part[8];
    int fd = r->root;
    for (int i = 0; i < 3; i++) {
        size_t len = i == 0 ? 4 : 2;
        const char *p = rel + (i == 0 ? 0 : i == 1 ? 5 : 8);
        memcpy(part, p, len);
        part[len] = '\0';
        int nfd = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int e = errno;
        if (fd != r->root)
            close(fd);
        if (nfd < 0) {
            errno = e;
            return -1;
        }
        fd = nfd;
    }
    /* O_NONBLOCK: a FIFO put in its place must not hang the check. */
    int f = openat(fd, rel + 11, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    int e = errno;
    close(fd);
    errno = e;
    return f;
}

static int check_session(void *ud, const al_audit_row_t *row)
{
    rstate_t *r = ud;
    const al_audit_event_t *ev = &row->ev;
    if (row->seq > r->last_seq)
        return REC_STOP;
    /* Any event but a removal that names a recording vouches for it. */
    if (row->decode_error || !ev->recording ||
        (ev->kind && !strcmp(ev->kind, AL_AUDIT_KIND_RECORDING)))
        return AL_OK;
    r->out->named++;
    uint8_t key[16];
    rec_key(ev->recording, key);
    const removal_t *m = rm_find(r, key, row->seq);
    bool sha_ok = sha_hex_ok(ev->recording_sha256);
    if (m) {
        r->out->removed++;
        uint8_t want[32];
        if (sha_ok && m->has_sha) {
            sha_bin(ev->recording_sha256, want);
            if (memcmp(want, m->sha, 32) != 0) {
                char d[64];
                snprintf(d, sizeof d, "removed at audit seq %" PRId64, m->seq);
                return add_problem(r, row, AL_AUDIT_REC_REMOVED_CHANGED, d);
            }
        }
        return AL_OK;
    }
    if (!rec_path_ok(ev->recording))
        return add_problem(r, row, AL_AUDIT_REC_PATH_INVALID, NULL);
    if (!sha_ok)
        return add_problem(r, row, AL_AUDIT_REC_HASH_INVALID, NULL);
    int fd = open_rec(r, ev->recording);
    if (fd == -2)
        return AL_ERR;
    if (fd < 0) {
        if (errno == ENOENT)
            return add_problem(r, row, AL_AUDIT_REC_MISSING, NULL);
        if (errno == ELOOP || errno == ENOTDIR)
            return add_problem(r, row, AL_AUDIT_REC_CHANGED,
                               "a symbolic link or not a regular file");
        return add_problem(r, row, AL_AUDIT_REC_UNREADABLE, strerror(errno));
    }
    struct stat st;
    char hex[65];
    int what = AL_AUDIT_REC_OK;
    const char *detail = NULL;
    if (fstat(fd, &st) != 0) {
        what = AL_AUDIT_REC_UNREADABLE;
        detail = strerror(errno);
    } else if (!S_ISREG(st.st_mode)) {
        what = AL_AUDIT_REC_CHANGED;
        detail = "a symbolic link or not a regular file";
    } else if (al_audit_sha256_fd(fd, hex) != AL_OK) {
        what = AL_AUDIT_REC_UNREADABLE;
        detail = strerror(errno);
    } else if (strcmp(hex, ev->recording_sha256) != 0) {
        what = AL_AUDIT_REC_CHANGED;
    }
    close(fd);
    if (what == AL_AUDIT_REC_OK) {
        r->out->checked++;
        return AL_OK;
    }
    return add_problem(r, row, (al_audit_rec_problem_t)what, detail);
}

int al_audit_verify_recordings(al_audit_store_t *s, const char *dir, al_audit_rec_problem_cb cb,
                               void *ud, al_audit_rec_verify_t *out, char *err, size_t cap)
{
    memset(out, 0, sizeof *out);
    rstate_t r = {.dir = dir, .root = -1, .out = out, .err = err, .errcap = cap};
    al_buf_init(&r.lines);
    int rc = AL_ERR;
    /* walk 1: removals, and where the chain ends now */
    int w = al_audit_store_iterate(s, 0, collect_removal, &r, err, cap);
    if (r.oom || w != AL_OK)
        goto out;
    qsort(r.rm, r.n_rm, sizeof *r.rm, rm_cmp);
    /* walk 2: sessions up to there */
    w = al_audit_store_iterate(s, 0, check_session, &r, err, cap);
    if (r.oom || r.failed || (w != AL_OK && w != REC_STOP))
        goto out;
    /* walk 3: removals committed since walk 1 excuse what walk 2 found
     * missing or changed (retention ran alongside) */
    if (r.n_pend) {
        size_t before = r.n_rm;
        int64_t end = r.last_seq;
        w = al_audit_store_iterate(s, end, collect_removal, &r, err, cap);
        if (r.oom || w != AL_OK)
            goto out;
        if (r.n_rm > before)
            qsort(r.rm, r.n_rm, sizeof *r.rm, rm_cmp);
    }
    for (size_t i = 0; i < r.n_pend; i++) {
        pending_t *q = &r.pend[i];
        if (q->what == AL_AUDIT_REC_MISSING || q->what == AL_AUDIT_REC_CHANGED ||
            q->what == AL_AUDIT_REC_UNREADABLE) {
            const removal_t *m = rm_find(&r, q->key, q->seq);
            if (m && (!m->has_sha || !q->has_sha || !memcmp(m->sha, q->sha, 32))) {
                out->removed++;
                continue;
            }
        }
        out->problems++;
        if (cb)
            cb(ud, q->what, q->seq, r.lines.p + q->off);
    }
    rc = AL_OK;
out:
    if (r.oom)
        snprintf(err, cap, "audit verify: out of memory");
    if (r.root >= 0)
        close(r.root);
    al_free(&r.rm);
    al_free(&r.pend);
    al_buf_free(&r.lines);
    return rc;
}
