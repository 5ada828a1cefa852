/* test_retention.c - al_rec_retention: age and size limits, the order the
 * size cap removes in, open recordings and other files left alone, no
 * symbolic link followed out of the tree, empty directories removed, and
 * the hash each removal reports. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "record/record.h"

#define DAY 86400.0
static const double NOW = 1790000000.0; /* 2026-09-21 */

typedef struct tree {
    char root[64]; /* a temp dir holding rec/ (the recordings) and out/ */
    char rec[96];
    char out[96];
} tree_t;

static void tree_make(tree_t *t)
{
    snprintf(t->root, sizeof t->root, "/tmp/al-retention-test-XXXXXX");
    assert_non_null(mkdtemp(t->root));
    snprintf(t->rec, sizeof t->rec, "%s/rec", t->root);
    snprintf(t->out, sizeof t->out, "%s/out", t->root);
    assert_int_equal(mkdir(t->rec, 0700), 0);
    assert_int_equal(mkdir(t->out, 0700), 0);
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    return flag == FTW_DP ? rmdir(p) : unlink(p);
}

static void tree_remove(tree_t *t) { nftw(t->root, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

/* Creates base/rel (and its directories) holding content, mtime t. */
static void put_file(const char *base, const char *rel, const char *content, double t)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", base, rel);
    char *slash = strrchr(p, '/');
    *slash = '\0';
    assert_int_equal(al_mkdir_p(p, 0700), AL_OK);
    *slash = '/';
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
    struct timespec ts[2] = {{(time_t)t, 0}, {(time_t)t, 0}};
    assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
}

static bool exists(const char *base, const char *rel)
{
    char p[512];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", base, rel);
    return lstat(p, &st) == 0;
}

typedef struct removed {
    char rel[16][128];
    char sha[16][65];
    char reason[16][64];
    size_t n;
} removed_t;

static void on_removed(void *ud, const char *rel, const char *sha, const char *reason)
{
    removed_t *r = ud;
    assert_true(r->n < 16);
    snprintf(r->rel[r->n], sizeof r->rel[0], "%s", rel);
    snprintf(r->sha[r->n], sizeof r->sha[0], "%s", sha);
    snprintf(r->reason[r->n], sizeof r->reason[0], "%s", reason);
    r->n++;
}

static int run_retention(const tree_t *t, double retain, uint64_t max_bytes, removed_t *r)
{
    memset(r, 0, sizeof *r);
    char err[512] = "untouched";
    int rc = al_rec_retention(t->rec, retain, max_bytes, NOW, on_removed, r, err, sizeof err);
    if (rc == AL_OK)
        assert_string_equal(err, "");
    return rc;
}

static void sha_hex(const char *s, char out[65])
{
    uint8_t h[32];
    al_sha256(s, strlen(s), h);
    al_hex(h, 32, out);
}

#define ID(n) "0190f5c2-7d3a-7b4e-8c1d-00000000000" #n

/* Age: only closed recordings past retain go, each reported with its
 * hash; open ones, temp files and other names stay whatever their age. */
static void test_age(void **st)
{
    (void)st;
    tree_t t;
    tree_make(&t);
    put_file(t.rec, "2026/06/01/" ID(1) ".jsonl.gz", "old one", NOW - 100 * DAY);
    put_file(t.rec, "2026/06/01/" ID(2) ".cast.gz", "old cast", NOW - 95 * DAY);
    put_file(t.rec, "2026/06/01/" ID(3) ".jsonl", "open, old", NOW - 100 * DAY);
    put_file(t.rec, "2026/06/02/" ID(4) ".jsonl.gz.tmp", "temp", NOW - 100 * DAY);
    put_file(t.rec, "2026/06/02/notes.txt", "x", NOW - 100 * DAY);
    put_file(t.rec, "2026/06/03/" ID(5) ".jsonl.gz", "old alone", NOW - 91 * DAY);
    put_file(t.rec, "2026/09/20/" ID(6) ".jsonl.gz", "young", NOW - 1 * DAY);
    put_file(t.rec, "2026/06/04/" ID(7) ".jsonl.gz", "just inside", NOW - 89 * DAY);

    removed_t r;
    assert_int_equal(run_retention(&t, 90 * DAY, 0, &r), AL_OK);
    assert_int_equal(r.n, 3);
    /* oldest first */
    assert_string_equal(r.rel[0], "2026/06/01/" ID(1) ".jsonl.gz");
    assert_string_equal(r.rel[1], "2026/06/01/" ID(2) ".cast.gz");
    assert_string_equal(r.rel[2], "2026/06/03/" ID(5) ".jsonl.gz");
    char want[65];
    sha_hex("old one", want);
    assert_string_equal(r.sha[0], want);
    sha_hex("old cast", want);
    assert_string_equal(r.sha[1], want);
    sha_hex("old alone", want);
    assert_string_equal(r.sha[2], want);
    for (size_t i = 0; i < r.n; i++)
        assert_string_equal(r.reason[i], "retention: older than 90d");
    assert_false(exists(t.rec, "2026/06/01/" ID(1) ".jsonl.gz"));
    assert_false(exists(t.rec, "2026/06/01/" ID(2) ".cast.gz"));
    assert_true(exists(t.rec, "2026/06/01/" ID(3) ".jsonl"));
    assert_true(exists(t.rec, "2026/06/02/" ID(4) ".jsonl.gz.tmp"));
    assert_true(exists(t.rec, "2026/06/02/notes.txt"));
    assert_true(exists(t.rec, "2026/09/20/" ID(6) ".jsonl.gz"));
    assert_true(exists(t.rec, "2026/06/04/" ID(7) ".jsonl.gz"));
    /* the emptied day directory went, the others stay */
    assert_false(exists(t.rec, "2026/06/03"));
    assert_true(exists(t.rec, "2026/06/01"));

    /* a second run finds nothing more */
    assert_int_equal(run_retention(&t, 90 * DAY, 0, &r), AL_OK);
    assert_int_equal(r.n, 0);
    /* retain 0 keeps everything */
    assert_int_equal(run_retention(&t, 0, 0, &r), AL_OK);
    assert_int_equal(r.n, 0);
    assert_true(exists(t.rec, "2026/06/04/" ID(7) ".jsonl.gz"));
    tree_remove(&t);
}

/* retain as it was given: the largest unit that divides it. */
static void test_reason_text(void **st)
{
    (void)st;
    static const struct {
        double retain;
        const char *reason;
    } cases[] = {
        {90 * DAY, "retention: older than 90d"},
        {12 * 3600.0, "retention: older than 12h"},
        {36 * 3600.0, "retention: older than 36h"},
        {30 * 60.0, "retention: older than 30m"},
        {45, "retention: older than 45s"},
        {1.5, "retention: older than 1.5s"},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(cases); i++) {
        tree_t t;
        tree_make(&t);
        put_file(t.rec, "2026/01/01/" ID(1) ".jsonl.gz", "x", NOW - 200 * DAY);
        removed_t r;
        assert_int_equal(run_retention(&t, cases[i].retain, 0, &r), AL_OK);
        assert_int_equal(r.n, 1);
        assert_string_equal(r.reason[0], cases[i].reason);
        tree_remove(&t);
    }
}

/* max_bytes: the oldest go first (mtime, then name) until the closed
 * recordings fit; open recordings neither count nor go. */
static void test_max_bytes(void **st)
{
    (void)st;
    tree_t t;
    tree_make(&t);
    char hundred[101];
    memset(hundred, 'a', 100);
    hundred[100] = '\0';
    put_file(t.rec, "2026/09/01/" ID(4) ".jsonl.gz", hundred, NOW - 30 * DAY);
    put_file(t.rec, "2026/09/01/" ID(3) ".jsonl.gz", hundred, NOW - 30 * DAY); /* same age */
    put_file(t.rec, "2026/08/01/" ID(9) ".jsonl.gz", hundred, NOW - 10 * DAY); /* older dir, newer file */
    put_file(t.rec, "2026/09/02/" ID(5) ".cast.gz", hundred, NOW - 5 * DAY);
    put_file(t.rec, "2026/09/02/" ID(6) ".jsonl", hundred, NOW - 99 * DAY);   /* open */
    removed_t r;
    /* 400 bytes closed; cap 250 -> two go: the two oldest, by name */
    assert_int_equal(run_retention(&t, 0, 250, &r), AL_OK);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.rel[0], "2026/09/01/" ID(3) ".jsonl.gz");
    assert_string_equal(r.rel[1], "2026/09/01/" ID(4) ".jsonl.gz");
    for (size_t i = 0; i < r.n; i++)
        assert_string_equal(r.reason[i], "retention: over max_bytes");
    assert_false(exists(t.rec, "2026/09/01"));
    assert_true(exists(t.rec, "2026/08/01/" ID(9) ".jsonl.gz"));
    assert_true(exists(t.rec, "2026/09/02/" ID(6) ".jsonl"));
    /* exactly at the cap: nothing more */
    assert_int_equal(run_retention(&t, 0, 200, &r), AL_OK);
    assert_int_equal(r.n, 0);
    /* age first, then the cap on what is left */
    put_file(t.rec, "2026/01/01/" ID(1) ".jsonl.gz", hundred, NOW - 300 * DAY);
    assert_int_equal(run_retention(&t, 100 * DAY, 100, &r), AL_OK);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.rel[0], "2026/01/01/" ID(1) ".jsonl.gz");
    assert_string_equal(r.reason[0], "retention: older than 100d");
    assert_string_equal(r.rel[1], "2026/08/01/" ID(9) ".jsonl.gz");
    assert_string_equal(r.reason[1], "retention: over max_bytes");
    assert_true(exists(t.rec, "2026/09/02/" ID(5) ".cast.gz"));
    assert_false(exists(t.rec, "2026/01"));
    assert_false(exists(t.rec, "2026/08"));
    tree_remove(&t);
}

/* Links are never followed: a day, month or year directory that is a link
 * to elsewhere, or a recording that is a link to a file elsewhere, keeps
 * what it points at. */
static void test_symlinks_not_followed(void **st)
{
    (void)st;
    tree_t t;
    tree_make(&t);
    put_file(t.out, "day/" ID(1) ".jsonl.gz", "outside day", NOW - 200 * DAY);
    put_file(t.out, "month/01/" ID(2) ".jsonl.gz", "outside month", NOW - 200 * DAY);
    put_file(t.out, "year/01/01/" ID(3) ".jsonl.gz", "outside year", NOW - 200 * DAY);
    put_file(t.out, "file.jsonl.gz", "outside file", NOW - 200 * DAY);
    put_file(t.rec, "2026/01/02/" ID(5) ".jsonl.gz", "inside", NOW - 200 * DAY);
    char p[512], target[512];
    snprintf(p, sizeof p, "%s/2026/01/01", t.rec);
    snprintf(target, sizeof target, "%s/day", t.out);
    assert_int_equal(symlink(target, p), 0);
    snprintf(p, sizeof p, "%s/2026/02", t.rec);
    snprintf(target, sizeof target, "%s/month", t.out);
    assert_int_equal(symlink(target, p), 0);
    snprintf(p, sizeof p, "%s/2025", t.rec);
    snprintf(target, sizeof target, "%s/year", t.out);
    assert_int_equal(symlink(target, p), 0);
    snprintf(p, sizeof p, "%s/2026/01/02/" ID(6) ".jsonl.gz", t.rec);
    snprintf(target, sizeof target, "%s/file.jsonl.gz", t.out);
    assert_int_equal(symlink(target, p), 0);

    removed_t r;
    assert_int_equal(run_retention(&t, 1 * DAY, 1, &r), AL_OK);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.rel[0], "2026/01/02/" ID(5) ".jsonl.gz");
    assert_true(exists(t.out, "day/" ID(1) ".jsonl.gz"));
    assert_true(exists(t.out, "month/01/" ID(2) ".jsonl.gz"));
    assert_true(exists(t.out, "year/01/01/" ID(3) ".jsonl.gz"));
    assert_true(exists(t.out, "file.jsonl.gz"));
    /* the links themselves are not ours to remove either */
    assert_true(exists(t.rec, "2026/01/01"));
    assert_true(exists(t.rec, "2026/01/02/" ID(6) ".jsonl.gz"));
    tree_remove(&t);
}

/* Empty YYYY/MM/DD directories go, bottom up, except today's; anything
 * else stays, and the recordings directory itself is kept. A missing
 * directory is fine. */
static void test_empty_dirs(void **st)
{
    (void)st;
    tree_t t;
    tree_make(&t);
    char p[512];
    snprintf(p, sizeof p, "%s/2025/12/31", t.rec);
    assert_int_equal(al_mkdir_p(p, 0700), AL_OK);
    snprintf(p, sizeof p, "%s/2025/11", t.rec);
    assert_int_equal(al_mkdir_p(p, 0700), AL_OK);
    snprintf(p, sizeof p, "%s/2024/01/xx", t.rec); /* not a day: kept, and so are its parents */
    assert_int_equal(al_mkdir_p(p, 0700), AL_OK);
    snprintf(p, sizeof p, "%s/lost+found", t.rec);
    assert_int_equal(mkdir(p, 0700), 0);
    put_file(t.rec, "2026/03/04/" ID(1) ".jsonl", "open", NOW - 1 * DAY);
    snprintf(p, sizeof p, "%s/2026/09/21", t.rec); /* today (NOW): the recorder's */
    assert_int_equal(al_mkdir_p(p, 0700), AL_OK);
    snprintf(p, sizeof p, "%s/2026/09/20", t.rec); /* yesterday: goes */
    assert_int_equal(al_mkdir_p(p, 0700), AL_OK);
    removed_t r;
    assert_int_equal(run_retention(&t, 90 * DAY, 0, &r), AL_OK);
    assert_int_equal(r.n, 0);
    assert_false(exists(t.rec, "2025"));
    assert_true(exists(t.rec, "2024/01/xx"));
    assert_true(exists(t.rec, "lost+found"));
    assert_true(exists(t.rec, "2026/03/04/" ID(1) ".jsonl"));
    assert_true(exists(t.rec, "2026/09/21"));
    assert_false(exists(t.rec, "2026/09/20"));
    assert_true(exists(t.rec, "."));

    char missing[128];
    snprintf(missing, sizeof missing, "%s/nothing-here", t.root);
    char err[256];
    assert_int_equal(al_rec_retention(missing, 1, 1, NOW, on_removed, &r, err, sizeof err),
                     AL_OK);
    tree_remove(&t);
}

/* A recordings path that is not a directory is an error with a message,
 * and a NULL callback is allowed. */
static void test_errors(void **st)
{
    (void)st;
    tree_t t;
    tree_make(&t);
    put_file(t.root, "plain", "x", NOW);
    char p[128], err[256];
    snprintf(p, sizeof p, "%s/plain", t.root);
    assert_int_equal(al_rec_retention(p, 1, 0, NOW, NULL, NULL, err, sizeof err), AL_ERR);
    assert_non_null(strstr(err, "plain"));
    put_file(t.rec, "2026/01/01/" ID(1) ".jsonl.gz", "x", NOW - 9 * DAY);
    assert_int_equal(al_rec_retention(t.rec, DAY, 0, NOW, NULL, NULL, err, sizeof err), AL_OK);
    assert_false(exists(t.rec, "2026"));
    tree_remove(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_age),
        cmocka_unit_test(test_reason_text),
        cmocka_unit_test(test_max_bytes),
        cmocka_unit_test(test_symlinks_not_followed),
        cmocka_unit_test(test_empty_dirs),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
