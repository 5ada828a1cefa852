/*
 * retention.c - removes closed recordings past recordings.retain, then the
 * oldest past recordings.max_bytes (docs/recordings.md), each removal
 * reported with the file's SHA-256 so it becomes an audit event and
 * `airlock audit verify` can tell retention from tampering.
 *
 * The tree is walked with openat/fstatat relative to directory fds, never
 * following a symbolic link (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW): a day
 * directory that is a link to elsewhere is not ours, and nothing outside
 * <dir> can be reached or removed. Only digit-named YYYY/MM/DD directories
 * and regular files ending ".jsonl.gz" or ".cast.gz" are looked at; an open
 * recording (".jsonl", ".cast") and the recorder's ".tmp" files are never
 * counted nor removed. Empty directories are removed, except the current
 * UTC day's, which the recorder may have just made for its next session.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit.h"
#include "record/record.h"

/* One closed recording. */
typedef struct entry {
    char *rel;   /* "YYYY/MM/DD/<name>" (owned) */
    double mtime;
    uint64_t size;
    bool tried; /* removal attempted (done, gone already, or failed) */
    bool gone;
} entry_t;

typedef struct walk {
    entry_t *e;
    size_t n, cap;
    char *err;
    size_t errcap;
    bool failed; /* err holds the first failure */
} walk_t;

static void fail(walk_t *w, const char *what, const char *path, int e)
{
    if (w->failed)
        return;
    w->failed = true;
    if (e)
        snprintf(w->err, w->errcap, "recordings retention: %s %s: %s", what, path, strerror(e));
    else
        snprintf(w->err, w->errcap, "recordings retention: %s %s", what, path);
}

static bool all_digits(const char *s, size_t len)
{
    if (strlen(s) != len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static bool ends_with(const char *s, size_t n, const char *suf)
{
    size_t k = strlen(suf);
    return n > k && !memcmp(s + n - k, suf, k);
}

static bool closed_name(const char *name)
{
    size_t n = strlen(name);
    return ends_with(name, n, AL_REC_EXT_JSONL AL_REC_EXT_GZ) || ends_with(name, n, ".cast.gz");
}

/* Opens the directory `name` under dfd without following a link; -1 with
 * errno when it is not a directory of ours. */
static int open_dir_at(int dfd, const char *name)
{
    return openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* Lists dfd's digit-named subdirectories of the given name length, sorted,
 * into a NULL-terminated array (caller frees each and the array). NULL on
 * failure (recorded in w); dfd is consumed. */
static char **list_dirs(walk_t *w, int dfd, size_t len, const char *where)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        fail(w, "cannot read", where, errno);
        close(dfd);
        return NULL;
    }
    char **v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d))) {
        if (!all_digits(de->d_name, len))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode))
            continue;
        if (n + 1 >= cap) {
            size_t nc = cap ? cap * 2 : 16;
            char **p = al_realloc(v, nc * sizeof *p);
            if (!p)
                goto oom;
            v = p;
            cap = nc;
        }
        if (!(v[n] = al_strndup(de->d_name, len)))
            goto oom;
        v[++n] = NULL;
        errno = 0;
    }
    if (errno)
        fail(w, "cannot read", where, errno);
    closedir(d);
    if (!v)
        v = al_calloc(1, sizeof *v);
    if (!v)
        fail(w, "out of memory at", where, ENOMEM);
    return v;
oom:
    fail(w, "out of memory at", where, ENOMEM);
    closedir(d);
    for (size_t i = 0; i < n; i++)
        al_free(&v[i]);
    al_free(&v);
    return NULL;
}

static void free_list(char ***v)
{
    if (!*v)
        return;
    for (char **p = *v; *p; p++)
        al_free(p);
    al_free(v);
}

static void add_entry(walk_t *w, const char *y, const char *m, const char *d, const char *name,
                      const struct stat *st)
{
    if (w->n == w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 64;
        entry_t *p = al_realloc(w->e, nc * sizeof *p);
        if (!p) {
            fail(w, "out of memory at", name, ENOMEM);
            return;
        }
        w->e = p;
        w->cap = nc;
    }
    size_t len = 4 + 1 + 2 + 1 + 2 + 1 + strlen(name);
    char *rel = al_malloc(len + 1);
    if (!rel) {
        fail(w, "out of memory at", name, ENOMEM);
        return;
    }
    snprintf(rel, len + 1, "%s/%s/%s/%s", y, m, d, name);
    w->e[w->n++] = (entry_t){
        .rel = rel,
        .mtime = (double)st->st_mtim.tv_sec + (double)st->st_mtim.tv_nsec / 1e9,
        .size = (uint64_t)st->st_size,
    };
}

/* Adds the closed recordings of one day directory (dfd consumed). */
static void scan_day(walk_t *w, int dfd, const char *y, const char *m, const char *dd,
                     const char *where)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        fail(w, "cannot read", where, errno);
        close(dfd);
        return;
    }
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d))) {
        if (!closed_name(de->d_name)) {
            errno = 0;
            continue;
        }
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
            add_entry(w, y, m, dd, de->d_name, &st);
        errno = 0;
    }
    if (errno)
        fail(w, "cannot read", where, errno);
    closedir(d);
}

/* Walks root (an open fd, kept) into w; with rmdirs, removes the empty
 * day, month and year directories instead of listing files, except the
 * day directory named `keep` ("YYYY/MM/DD", may be NULL). */
static void walk_tree(walk_t *w, int root, const char *dir, bool rmdirs, const char *keep)
{
    char where[4096];
    int yfd = openat(root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (yfd < 0) {
        fail(w, "cannot read", dir, errno);
        return;
    }
    char **years = list_dirs(w, yfd, 4, dir);
    for (size_t i = 0; years && years[i]; i++) {
        snprintf(where, sizeof where, "%s/%s", dir, years[i]);
        int mfd = open_dir_at(root, years[i]);
        if (mfd < 0)
            continue; /* replaced by a link since it was listed: not ours */
        int ykeep = dup(mfd);
        char **months = ykeep >= 0 ? list_dirs(w, mfd, 2, where) : NULL;
        if (ykeep < 0) {
            fail(w, "cannot read", where, errno);
            close(mfd);
        }
        for (size_t j = 0; months && months[j]; j++) {
            snprintf(where, sizeof where, "%s/%s/%s", dir, years[i], months[j]);
            int dfd = open_dir_at(ykeep, months[j]);
            if (dfd < 0)
                continue;
            int mkeep = dup(dfd);
            char **days = mkeep >= 0 ? list_dirs(w, dfd, 2, where) : NULL;
            if (mkeep < 0) {
                fail(w, "cannot read", where, errno);
                close(dfd);
            }
            for (size_t k = 0; days && days[k]; k++) {
                snprintf(where, sizeof where, "%s/%s/%s/%s", dir, years[i], months[j], days[k]);
                if (rmdirs) {
                    /* Only an empty directory goes; ENOTEMPTY is the
                     * common answer. */
                    if (!keep || memcmp(keep, years[i], 4) || memcmp(keep + 5, months[j], 2) ||
                        memcmp(keep + 8, days[k], 2))
                        unlinkat(mkeep, days[k], AT_REMOVEDIR);
                    continue;
                }
                int ffd = open_dir_at(mkeep, days[k]);
                if (ffd >= 0)
                    scan_day(w, ffd, years[i], months[j], days[k], where);
            }
            free_list(&days);
            if (mkeep >= 0)
                close(mkeep);
            if (rmdirs)
                unlinkat(ykeep, months[j], AT_REMOVEDIR);
        }
        free_list(&months);
        if (ykeep >= 0)
            close(ykeep);
        if (rmdirs)
            unlinkat(root, years[i], AT_REMOVEDIR);
    }
    free_list(&years);
}

/* Oldest first; equal times by name, so the order is stable. */
static int entry_cmp(const void *a, const void *b)
{
    const entry_t *x = a, *y = b;
    if (x->mtime != y->mtime)
        return x->mtime < y->mtime ? -1 : 1;
    return strcmp(x->rel, y->rel);
}

/* Opens rel's day directory under root, link by link without following
 * one; -1 with errno. */
static int open_day(int root, const char *rel)
{
    char part[3][8];
    memcpy(part[0], rel, 4);
    part[0][4] = '\0';
    memcpy(part[1], rel + 5, 2);
    part[1][2] = '\0';
    memcpy(part[2], rel + 8, 2);
    part[2][2] = '\0';
    int fd = root;
    for (int i = 0; i < 3; i++) {
        int nfd = open_dir_at(fd, part[i]);
        int e = errno;
        if (fd != root)
            close(fd);
        if (nfd < 0) {
            errno = e;
            return -1;
        }
        fd = nfd;
    }
    return fd;
}

/* Hashes and unlinks one recording, then reports it. AL_OK removed,
 * AL_AGAIN gone already, AL_ERR (w->err) failed and still there. */
static int remove_one(walk_t *w, int root, const char *dir, entry_t *e, const char *reason,
                      al_rec_removed_cb cb, void *ud)
{
    e->tried = true;
    char where[4096];
    snprintf(where, sizeof where, "%s/%s", dir, e->rel);
    int dfd = open_day(root, e->rel);
    if (dfd < 0) {
        if (errno == ENOENT)
            return AL_AGAIN;
        fail(w, "cannot open", where, errno);
        return AL_ERR;
    }
    const char *name = e->rel + 11;
    int rc = AL_ERR;
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    char hex[65];
    if (fd < 0) {
        if (errno == ENOENT)
            rc = AL_AGAIN;
        else
            fail(w, "cannot open", where, errno);
    } else if (fstat(fd, &st) != 0) {
        fail(w, "cannot stat", where, errno);
    } else if (!S_ISREG(st.st_mode)) {
        fail(w, "not a regular file:", where, 0);
    } else if (al_audit_sha256_fd(fd, hex) != AL_OK) {
        fail(w, "cannot read", where, errno);
    } else if (unlinkat(dfd, name, 0) != 0) {
        if (errno == ENOENT)
            rc = AL_AGAIN;
        else
            fail(w, "cannot remove", where, errno);
    } else {
        rc = AL_OK;
    }
    if (fd >= 0)
        close(fd);
    close(dfd);
    e->gone = rc != AL_ERR;
    /* Reported once it is gone: a failed unlink leaves no event claiming
     * a removal that did not happen. */
    if (rc == AL_OK && cb)
        cb(ud, e->rel, hex, reason);
    return rc;
}

/* "90d", "12h", "30m", "45s", "1.5s": the largest unit that divides. */
static void retain_text(double retain, char *out, size_t cap)
{
    static const struct {
        double secs;
        char unit;
    } units[] = {{86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}};
    for (size_t i = 0; i < AL_ARRAY_LEN(units); i++) {
        double q = retain / units[i].secs;
        if (q >= 1 && q == floor(q) && q < 1e15) {
            snprintf(out, cap, "%.0f%c", q, units[i].unit);
            return;
        }
    }
    snprintf(out, cap, "%gs", retain);
}

int al_rec_retention(const char *dir, double retain, uint64_t max_bytes, double now,
                     al_rec_removed_cb cb, void *ud, char *err, size_t cap)
{
    if (err && cap)
        err[0] = '\0';
    char errbuf[512];
    walk_t w = {.err = err && cap ? err : errbuf, .errcap = err && cap ? cap : sizeof errbuf};
    int root = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) {
        if (errno == ENOENT)
            return AL_OK; /* nothing recorded yet */
        fail(&w, "cannot open", dir, errno);
        return AL_ERR;
    }
    walk_tree(&w, root, dir, false, NULL);
    if (w.n)
        qsort(w.e, w.n, sizeof *w.e, entry_cmp);

    if (retain > 0) {
        char reason[64], rt[32];
        retain_text(retain, rt, sizeof rt);
        snprintf(reason, sizeof reason, "retention: older than %s", rt);
        double cutoff = now - retain;
        for (size_t i = 0; i < w.n && w.e[i].mtime < cutoff; i++)
            remove_one(&w, root, dir, &w.e[i], reason, cb, ud);
    }
    if (max_bytes) {
        /* What is left counts, including a file that could not be
         * removed above: the cap is on what is on disk. */
        uint64_t total = 0;
        for (size_t k = 0; k < w.n; k++)
            if (!w.e[k].gone)
                total += w.e[k].size;
        for (size_t i = 0; i < w.n && total > max_bytes; i++) {
            if (w.e[i].tried)
                continue;
            remove_one(&w, root, dir, &w.e[i], "retention: over max_bytes", cb, ud);
            if (w.e[i].gone)
                total -= w.e[i].size;
        }
    }
    /* Today's directory stays even when empty: the recorder may have made
     * it for the next session and remember that it did. */
    char today[48] = "";
    time_t tt = (time_t)now;
    struct tm tm;
    if (gmtime_r(&tt, &tm))
        snprintf(today, sizeof today, "%04d/%02d/%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday);
    walk_tree(&w, root, dir, true, today[0] ? today : NULL);
    close(root);
    for (size_t k = 0; k < w.n; k++)
        al_free(&w.e[k].rel);
    al_free(&w.e);
    return w.failed ? AL_ERR : AL_OK;
}
