/*
 * reader.c - finding and reading a session's recording (docs/recordings.md),
 * shared by `airlock replay` and the admin API.
 *
 * A session id becomes a path component only after al_rec_id_ok, and the
 * scan descends only into directories whose names are the digits of a
 * YYYY/MM/DD date, so no id or directory name can lead outside dir.
 *
 * Gzip (RFC 1952) is inflated with zlib; the member trailer's CRC-32 and
 * length are checked by inflate, and a stream that ends before its trailer
 * (the process stopped mid-write) is reported as truncated, never passed
 * off as a shorter recording.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "record/record.h"

/* Closed before open; JSON Lines before asciicast (a session has one kind). */
static const char *const rec_exts[] = {".jsonl.gz", ".cast.gz", ".jsonl", ".cast"};

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool all_digits(const char *s, size_t n)
{
    if (strlen(s) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* Tries every extension in dir/day/id; the best index found, or -1. Writes
 * the path of the best into out. -2 when a path does not fit. */
static int try_day(const char *day, const char *id, int best, char *out, size_t cap)
{
    char p[4096];
    int limit = best < 0 ? (int)AL_ARRAY_LEN(rec_exts) : best;
    for (int i = 0; i < limit; i++) {
        int n = snprintf(p, sizeof p, "%s/%s%s", day, id, rec_exts[i]);
        if (n < 0 || (size_t)n >= sizeof p)
            return -2;
        if (!is_file(p))
            continue;
        if ((size_t)n >= cap)
            return -2;
        memcpy(out, p, (size_t)n + 1);
        return i;
    }
    return best;
}

/* Lists the names in path that are n digits, ascending; NULL-terminated,
 * owned by the caller (free each, then the array). *err_no is set when the
 * directory cannot be read. */
static char **digit_names(const char *path, size_t n, int *err_no)
{
    *err_no = 0;
    DIR *d = opendir(path);
    if (!d) {
        *err_no = errno;
        return NULL;
    }
    size_t len = 0, cap = 0;
    char **v = NULL;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!all_digits(e->d_name, n))
            continue;
        if (len + 2 > cap) {
            size_t nc = cap ? cap * 2 : 16;
            char **nv = al_realloc(v, nc * sizeof *v);
            if (!nv)
                break;
            v = nv;
            cap = nc;
        }
        v[len] = al_strndup(e->d_name, n);
        if (v[len])
            len++;
    }
    closedir(d);
    if (!v)
        v = al_calloc(1, sizeof *v);
    if (!v) {
        *err_no = ENOMEM;
        return NULL;
    }
    v[len] = NULL;
    /* n-digit names sort as numbers when sorted as strings */
    for (size_t i = 1; i < len; i++)
        for (size_t j = i; j > 0 && strcmp(v[j - 1], v[j]) > 0; j--) {
            char *t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return v;
}

/* out = a "/" b; false when it does not fit. */
static bool join(char *out, size_t cap, const char *a, const char *b)
{
    int n = snprintf(out, cap, "%s/%s", a, b);
    return n >= 0 && (size_t)n < cap;
}

static void free_names(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* Scans dir/YYYY/MM/DD for id, newest day first. */
static int scan(const char *dir, const char *id, char *out, size_t cap, char *err, size_t errcap)
{
    int en = 0, best = -1;
    char **years = digit_names(dir, 4, &en);
    if (!years) {
        if (en == ENOENT || en == ENOTDIR)
            return AL_AGAIN; /* nothing recorded yet */
        snprintf(err, errcap, "cannot read the recordings directory %s: %s", dir, strerror(en));
        return AL_ERR;
    }
    char ypath[4096], mpath[4096], dpath[4096];
    size_t ny = 0;
    while (years[ny])
        ny++;
    for (size_t yi = ny; yi-- > 0 && best != 0;) {
        char **months = join(ypath, sizeof ypath, dir, years[yi]) ? digit_names(ypath, 2, &en)
                                                                 : NULL;
        size_t nm = 0;
        while (months && months[nm])
            nm++;
        for (size_t mi = nm; mi-- > 0 && best != 0;) {
            char **days = join(mpath, sizeof mpath, ypath, months[mi])
                              ? digit_names(mpath, 2, &en)
                              : NULL;
            size_t nd = 0;
            while (days && days[nd])
                nd++;
            for (size_t di = nd; di-- > 0 && best != 0;) {
                if (!join(dpath, sizeof dpath, mpath, days[di]))
                    continue;
                int r = try_day(dpath, id, best, out, cap);
                if (r == -2) {
                    free_names(days);
                    free_names(months);
                    free_names(years);
                    snprintf(err, errcap, "the recording path under %s is too long", dir);
                    return AL_ERR;
                }
                best = r;
            }
            free_names(days);
        }
        free_names(months);
    }
    free_names(years);
    return best >= 0 ? AL_OK : AL_AGAIN;
}

int al_rec_find(const char *dir, const char *id, char *out, size_t cap, char *err,
                size_t errcap)
{
    if (!al_rec_id_ok(id)) {
        snprintf(err, errcap, "not a session id (36 characters of lower-case hex in UUID "
                              "layout)");
        return AL_ERR;
    }
    if (!dir || !*dir) {
        snprintf(err, errcap, "no recordings directory");
        return AL_ERR;
    }
    /* The day its UUIDv7 names: where the recorder put it (unless the
     * session started a moment before midnight UTC and the id after). */
    int64_t t = al_rec_id_time(id);
    if (t >= 0) {
        char day[4096];
        const char *rel = NULL;
        /* "<dir>/YYYY/MM/DD/" + id: cut the id off to get the day directory */
        if (al_rec_path(dir, id, t, "", day, sizeof day, &rel) != AL_OK) {
            snprintf(err, errcap, "the recording path under %s is too long", dir);
            return AL_ERR;
        }
        day[strlen(day) - strlen(id) - 1] = '\0';
        int r = try_day(day, id, -1, out, cap);
        if (r == -2) {
            snprintf(err, errcap, "the recording path under %s is too long", dir);
            return AL_ERR;
        }
        if (r == 0)
            return AL_OK;
        if (r > 0) {
            /* an open or asciicast file here; a better one elsewhere is
             * only possible across midnight: let the scan decide */
            char alt[4096];
            int s = scan(dir, id, alt, sizeof alt, err, errcap);
            if (s == AL_OK && strlen(alt) < cap) {
                for (size_t i = 0; i < AL_ARRAY_LEN(rec_exts); i++) {
                    size_t el = strlen(rec_exts[i]), al = strlen(alt);
                    if (al > el && !strcmp(alt + al - el, rec_exts[i])) {
                        if ((int)i < r)
                            memcpy(out, alt, al + 1);
                        break;
                    }
                }
            }
            return AL_OK;
        }
    }
    return scan(dir, id, out, cap, err, errcap);
}

/* ---- reading ----------------------------------------------------------------------- */

#define READ_CHUNK (64u * 1024)
#define INFLATE_CHUNK (256u * 1024)

typedef struct line_state {
    const char *path;
    al_rec_line_cb cb;
    void *ud;
    char *buf;      /* the current line so far */
    size_t len, cap;
    uint64_t lineno;
    char *err;
    size_t errcap;
} line_state_t;

/* Splits p[0..n) into lines; returns AL_OK, the callback's code, or AL_ERR. */
static int feed(line_state_t *ls, const char *p, size_t n)
{
    while (n) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        if (ls->len + take > AL_REC_MAX_LINE) {
            snprintf(ls->err, ls->errcap, "%s: line %llu is longer than %u bytes (corrupt?)",
                     ls->path, (unsigned long long)ls->lineno + 1, AL_REC_MAX_LINE);
            return AL_ERR;
        }
        if (ls->len == 0 && nl) {
            /* the whole line is in the chunk: no copy */
            ls->lineno++;
            int r = ls->cb(ls->ud, p, take);
            if (r != AL_OK)
                return r;
        } else {
            if (ls->len + take + 1 > ls->cap) {
                size_t nc = ls->cap ? ls->cap : 4096;
                while (nc < ls->len + take + 1)
                    nc *= 2;
                char *nb = al_realloc(ls->buf, nc);
                if (!nb) {
                    snprintf(ls->err, ls->errcap, "%s: out of memory at line %llu", ls->path,
                             (unsigned long long)ls->lineno + 1);
                    return AL_ERR;
                }
                ls->buf = nb;
                ls->cap = nc;
            }
            memcpy(ls->buf + ls->len, p, take);
            ls->len += take;
            if (nl) {
                ls->lineno++;
                ls->buf[ls->len] = '\0';
                size_t len = ls->len;
                ls->len = 0;
                int r = ls->cb(ls->ud, ls->buf, len);
                if (r != AL_OK)
                    return r;
            }
        }
        if (!nl)
            break;
        p += take + 1;
        n -= take + 1;
    }
    return AL_OK;
}

/* The last line when the file does not end with a newline. */
static int feed_end(line_state_t *ls)
{
    if (!ls->len)
        return AL_OK;
    ls->lineno++;
    ls->buf[ls->len] = '\0';
    size_t len = ls->len;
    ls->len = 0;
    return ls->cb(ls->ud, ls->buf, len);
}

static int read_plain(int fd, line_state_t *ls, char *in, const char *first, size_t nfirst)
{
    int r = feed(ls, first, nfirst);
    while (r == AL_OK) {
        ssize_t n = read(fd, in, READ_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(ls->err, ls->errcap, "%s: read error: %s", ls->path, strerror(errno));
            return AL_ERR;
        }
        if (n == 0)
            return feed_end(ls);
        r = feed(ls, in, (size_t)n);
    }
    return r;
}

/* Reads more input into in[keep..]; AL_OK (n may be 0 at EOF) or AL_ERR. */
static int fill(int fd, line_state_t *ls, unsigned char *in, size_t keep, size_t *n)
{
    for (;;) {
        ssize_t k = read(fd, in + keep, READ_CHUNK - keep);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            snprintf(ls->err, ls->errcap, "%s: read error: %s", ls->path, strerror(errno));
            return AL_ERR;
        }
        *n = (size_t)k;
        return AL_OK;
    }
}

/* RFC 1952 §2.2: members may follow one another; each is inflated and its
 * CRC-32/ISIZE trailer checked (zlib's windowBits 16 + MAX_WBITS). */
static int read_gzip(int fd, line_state_t *ls, unsigned char *in, size_t nin)
{
    unsigned char *out = al_malloc(INFLATE_CHUNK);
    if (!out) {
        snprintf(ls->err, ls->errcap, "%s: out of memory", ls->path);
        return AL_ERR;
    }
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
        free(out);
        snprintf(ls->err, ls->errcap, "%s: cannot start zlib", ls->path);
        return AL_ERR;
    }
    int r = AL_OK;
    bool eof = false, member_open = true, more_out = false;
    zs.next_in = in;
    zs.avail_in = (uInt)nin;
    while (r == AL_OK) {
        /* At a member boundary two bytes tell whether another follows. */
        size_t want = member_open ? 1 : 2;
        if (!more_out && zs.avail_in < want && !eof) {
            size_t keep = zs.avail_in, n = 0;
            memmove(in, zs.next_in, keep);
            if (fill(fd, ls, in, keep, &n) != AL_OK) {
                r = AL_ERR;
                break;
            }
            eof = n == 0;
            zs.next_in = in;
            zs.avail_in = (uInt)(keep + n);
            continue;
        }
        if (!member_open) {
            if (zs.avail_in == 0) { /* clean end after a whole member */
                r = feed_end(ls);
                break;
            }
            /* RFC 1952 §2.3.1: a member starts with ID1 ID2 */
            if (zs.avail_in < 2 || zs.next_in[0] != 0x1f || zs.next_in[1] != 0x8b) {
                snprintf(ls->err, ls->errcap, "%s: data after the end of the gzip stream "
                         "(corrupt)", ls->path);
                r = AL_ERR;
                break;
            }
            if (inflateReset(&zs) != Z_OK) {
                snprintf(ls->err, ls->errcap, "%s: cannot reset zlib", ls->path);
                r = AL_ERR;
                break;
            }
            member_open = true;
        }
        if (!more_out && zs.avail_in == 0) { /* eof inside a member */
            snprintf(ls->err, ls->errcap, "%s: truncated gzip stream after line %llu (the file "
                     "ends before its compressed data does: cut short, or written by a "
                     "process that stopped)", ls->path, (unsigned long long)ls->lineno);
            r = AL_ERR;
            break;
        }
        zs.next_out = out;
        zs.avail_out = INFLATE_CHUNK;
        int z = inflate(&zs, Z_NO_FLUSH);
        size_t got = INFLATE_CHUNK - zs.avail_out;
        if (z != Z_OK && z != Z_STREAM_END && !(z == Z_BUF_ERROR && got == 0 && !zs.avail_in)) {
            snprintf(ls->err, ls->errcap, "%s: corrupt gzip data after line %llu: %s", ls->path,
                     (unsigned long long)ls->lineno, zs.msg ? zs.msg : zError(z));
            r = AL_ERR;
            break;
        }
        /* a full output buffer may leave output pending without more input */
        more_out = zs.avail_out == 0 && z != Z_STREAM_END;
        if (got)
            r = feed(ls, (const char *)out, got);
        if (z == Z_STREAM_END)
            member_open = false;
    }
    inflateEnd(&zs);
    free(out);
    return r;
}

int al_rec_read(const char *path, al_rec_line_cb cb, void *ud, char *err, size_t cap)
{
    /* O_NONBLOCK: a FIFO put in place of a recording must not hang us */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        snprintf(err, cap, "%s: cannot open: %s", path, strerror(errno));
        return AL_ERR;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, cap, "%s: not a regular file", path);
        close(fd);
        return AL_ERR;
    }
    unsigned char *in = al_malloc(READ_CHUNK);
    if (!in) {
        snprintf(err, cap, "%s: out of memory", path);
        close(fd);
        return AL_ERR;
    }
    line_state_t ls = {.path = path, .cb = cb, .ud = ud, .err = err, .errcap = cap};
    /* Gzip or not, by the magic number (RFC 1952 §2.3.1), not the name. */
    size_t n = 0;
    int r = AL_OK;
    while (n < 2) {
        ssize_t k = read(fd, in + n, READ_CHUNK - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            snprintf(err, cap, "%s: read error: %s", path, strerror(errno));
            r = AL_ERR;
            break;
        }
        if (k == 0)
            break;
        n += (size_t)k;
    }
    if (r == AL_OK) {
        if (n >= 2 && in[0] == 0x1f && in[1] == 0x8b)
            r = read_gzip(fd, &ls, in, n);
        else
            r = read_plain(fd, &ls, (char *)in, (const char *)in, n);
    }
    free(ls.buf);
    free(in);
    close(fd);
    return r;
}
