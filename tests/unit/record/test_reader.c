/* test_reader.c - reading recordings (plain, gzip, truncated, corrupt, over
 * the line cap) and finding them (UUIDv7 day, scan fallback, preference of
 * closed files, hostile ids). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "record/record.h"

typedef struct fixture {
    char dir[256];
} fixture_t;

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/al-rec-test-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void write_plain(const char *path, const void *p, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(p, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

static void write_gz(const char *path, const void *p, size_t n)
{
    gzFile g = gzopen(path, "wb");
    assert_non_null(g);
    if (n)
        assert_int_equal(gzwrite(g, p, (unsigned)n), (int)n);
    assert_int_equal(gzclose(g), Z_OK);
}

static char *slurp(const char *path, size_t *n)
{
    char *p = NULL;
    assert_int_equal(al_read_file(path, 1u << 30, &p, n), AL_OK);
    return p;
}

/* Collects lines joined by '|' (lines hold no '|' in these tests). */
typedef struct coll {
    al_buf_t b;
    size_t n;
    size_t longest;
    int stop_at; /* return 7 at this line (1-based), 0 = never */
} coll_t;

static int collect(void *ud, const char *line, size_t n)
{
    coll_t *c = ud;
    c->n++;
    if (n > c->longest)
        c->longest = n;
    assert_null(memchr(line, '\n', n));
    if (n < 4096) {
        if (c->n > 1)
            al_buf_puts(&c->b, "|");
        al_buf_append(&c->b, line, n);
    }
    return c->stop_at && (int)c->n == c->stop_at ? 7 : AL_OK;
}

static int read_all(const char *path, coll_t *c, char *err, size_t cap)
{
    memset(c, 0, sizeof *c);
    al_buf_init(&c->b);
    err[0] = 0;
    return al_rec_read(path, collect, c, err, cap);
}

static void test_plain(void **state)
{
    fixture_t *f = *state;
    char path[512], err[1024];
    coll_t c;
    snprintf(path, sizeof path, "%s/a.jsonl", f->dir);
    const char text[] = "{\"type\":\"session\"}\n{\"t\":0.5}\n\n{\"t\":1}";
    write_plain(path, text, sizeof text - 1);
    assert_int_equal(read_all(path, &c, err, sizeof err), AL_OK);
    assert_int_equal(c.n, 4); /* the last line has no newline: still a line */
    assert_string_equal(c.b.p, "{\"type\":\"session\"}|{\"t\":0.5}||{\"t\":1}");
    al_buf_free(&c.b);

    /* a callback's code stops the read and comes back */
    memset(&c, 0, sizeof c);
    al_buf_init(&c.b);
    c.stop_at = 2;
    assert_int_equal(al_rec_read(path, collect, &c, err, sizeof err), 7);
    assert_int_equal(c.n, 2);
    al_buf_free(&c.b);

    /* empty file: no lines */
    write_plain(path, "", 0);
    assert_int_equal(read_all(path, &c, err, sizeof err), AL_OK);
    assert_int_equal(c.n, 0);
    al_buf_free(&c.b);

    /* missing file, directory: errors naming the path */
    snprintf(path, sizeof path, "%s/missing.jsonl", f->dir);
    assert_int_equal(read_all(path, &c, err, sizeof err), AL_ERR);
    assert_non_null(strstr(err, path));
    al_buf_free(&c.b);
    assert_int_equal(read_all(f->dir, &c, err, sizeof err), AL_ERR);
    assert_non_null(strstr(err, "not a regular file"));
    al_buf_free(&c.b);
}

/* Many lines, crossing every read and inflate chunk boundary. */
static void make_lines(al_buf_t *b, size_t n)
{
    al_buf_init(b);
    for (size_t i = 0; i < n; i++)
        al_buf_printf(b, "{\"t\":%zu,\"type\":\"row\",\"values\":[\"%0*zu\"]}\n", i,
                      (int)(i % 97), i);
}

static void test_gzip(void **state)
{
    fixture_t *f = *state;
    char path[512], plain[512], err[1024];
    snprintf(path, sizeof path, "%s/b.jsonl.gz", f->dir);
    snprintf(plain, sizeof plain, "%s/b.jsonl", f->dir);
    al_buf_t want;
    make_lines(&want, 40000);
    write_gz(path, want.p, want.len);
    write_plain(plain, want.p, want.len);
    coll_t g, p;
    assert_int_equal(read_all(path, &g, err, sizeof err), AL_OK);
    assert_int_equal(read_all(plain, &p, err, sizeof err), AL_OK);
    assert_int_equal(g.n, 40000);
    assert_int_equal(p.n, 40000);
    assert_string_equal(g.b.p, p.b.p);
    al_buf_free(&g.b);
    al_buf_free(&p.b);

    /* gzip is found by its magic number, whatever the name */
    char odd[512];
    snprintf(odd, sizeof odd, "%s/b.txt", f->dir);
    assert_int_equal(rename(path, odd), 0);
    assert_int_equal(read_all(odd, &g, err, sizeof err), AL_OK);
    assert_int_equal(g.n, 40000);
    al_buf_free(&g.b);

    /* two members (RFC 1952 §2.2), the second starting mid-line */
    char m1[512], m2[512];
    snprintf(m1, sizeof m1, "%s/m1.gz", f->dir);
    snprintf(m2, sizeof m2, "%s/m2.gz", f->dir);
    write_gz(m1, "{\"a\":1}\n{\"b\"", 12);
    write_gz(m2, ":2}\n", 4);
    size_t n1, n2;
    char *d1 = slurp(m1, &n1), *d2 = slurp(m2, &n2);
    al_buf_t cat;
    al_buf_init(&cat);
    al_buf_append(&cat, d1, n1);
    al_buf_append(&cat, d2, n2);
    write_plain(path, cat.p, cat.len);
    assert_int_equal(read_all(path, &g, err, sizeof err), AL_OK);
    assert_string_equal(g.b.p, "{\"a\":1}|{\"b\":2}");
    al_buf_free(&g.b);

    /* garbage after the last member is corruption, not data */
    al_buf_append(&cat, "junk", 4);
    write_plain(path, cat.p, cat.len);
    assert_int_equal(read_all(path, &g, err, sizeof err), AL_ERR);
    assert_non_null(strstr(err, "after the end of the gzip stream"));
    al_buf_free(&g.b);
    al_buf_free(&cat);
    free(d1);
    free(d2);
    al_buf_free(&want);
}

static void test_gzip_truncated(void **state)
{
    fixture_t *f = *state;
    char path[512], err[1024];
    snprintf(path, sizeof path, "%s/c.jsonl.gz", f->dir);
    al_buf_t want;
    make_lines(&want, 20000);
    write_gz(path, want.p, want.len);
    size_t n;
    char *full = slurp(path, &n);
    /* cut anywhere: in the trailer, in the data, right after the header */
    size_t cuts[] = {n - 1, n - 4, n - 8, n / 2, 20, 10, 2};
    for (size_t i = 0; i < AL_ARRAY_LEN(cuts); i++) {
        write_plain(path, full, cuts[i]);
        coll_t c;
        if (read_all(path, &c, err, sizeof err) != AL_ERR)
            fail_msg("a gzip file cut to %zu of %zu bytes was read as whole (%zu lines)",
                     cuts[i], n, c.n);
        assert_non_null(strstr(err, path));
        assert_true(strstr(err, "truncated") || strstr(err, "corrupt"));
        if (cuts[i] >= n - 8)
            assert_non_null(strstr(err, "truncated"));
        if (cuts[i] < n - 8) /* lines before the cut are delivered, not the rest */
            assert_true(c.n < 20000);
        al_buf_free(&c.b);
    }
    /* a changed byte in the data: the CRC-32 or the inflater notices */
    memcpy(want.p, full, n);
    want.p[n / 2] ^= 0x55;
    write_plain(path, want.p, n);
    coll_t c;
    assert_int_equal(read_all(path, &c, err, sizeof err), AL_ERR);
    assert_non_null(strstr(err, "corrupt"));
    al_buf_free(&c.b);
    free(full);
    al_buf_free(&want);
}

static void test_line_cap(void **state)
{
    fixture_t *f = *state;
    char path[512], err[1024];
    size_t big = (size_t)AL_REC_MAX_LINE;
    char *p = malloc(big + 16);
    assert_non_null(p);
    memcpy(p, "{\"a\":1}\n", 8);
    memset(p + 8, 'x', big + 1);
    p[8 + big + 1] = '\n';
    /* one byte over the cap, plain and gzip: refused */
    snprintf(path, sizeof path, "%s/big.jsonl", f->dir);
    write_plain(path, p, 8 + big + 2);
    coll_t c;
    assert_int_equal(read_all(path, &c, err, sizeof err), AL_ERR);
    assert_non_null(strstr(err, "line 2 is longer than"));
    assert_int_equal(c.n, 1);
    al_buf_free(&c.b);
    snprintf(path, sizeof path, "%s/big.jsonl.gz", f->dir);
    write_gz(path, p, 8 + big + 2);
    assert_int_equal(read_all(path, &c, err, sizeof err), AL_ERR);
    assert_non_null(strstr(err, "line 2 is longer than"));
    al_buf_free(&c.b);
    /* exactly at the cap: read */
    p[8 + big] = '\n';
    write_gz(path, p, 8 + big + 1);
    assert_int_equal(read_all(path, &c, err, sizeof err), AL_OK);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.longest, big);
    al_buf_free(&c.b);
    free(p);
}

/* A UUIDv7 for Unix milliseconds ms (RFC 9562 §5.7). */
static void uuid7(int64_t ms, char out[37])
{
    snprintf(out, 37, "%08llx-%04llx-7abc-8def-0123456789ab", (unsigned long long)(ms >> 16),
             (unsigned long long)(ms & 0xffff));
}

static void place(const char *dir, const char *day, const char *id, const char *ext)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, day);
    assert_int_equal(al_mkdir_p(p, 0700), AL_OK);
    snprintf(p, sizeof p, "%s/%s/%s%s", dir, day, id, ext);
    write_plain(p, "{}\n", 3);
}

static void assert_found(const char *dir, const char *id, const char *suffix)
{
    char out[1024], err[256] = "";
    int r = al_rec_find(dir, id, out, sizeof out, err, sizeof err);
    if (r != AL_OK)
        fail_msg("%s not found (%d: %s)", id, r, err);
    size_t n = strlen(out), s = strlen(suffix);
    if (n < s || strcmp(out + n - s, suffix))
        fail_msg("found %s, wanted ...%s", out, suffix);
    assert_true(!strncmp(out, dir, strlen(dir)));
}

static void test_find(void **state)
{
    fixture_t *f = *state;
    char dir[512], out[1024], err[256];
    snprintf(dir, sizeof dir, "%s/recordings", f->dir);
    /* no directory yet: none, not an error */
    char id[37];
    uuid7(1795452001123LL, id); /* 2026-11-23T16:40:01.123Z */
    assert_int_equal(al_rec_id_time(id), 1795452001123000LL);
    assert_int_equal(al_rec_find(dir, id, out, sizeof out, err, sizeof err), AL_AGAIN);

    /* the day its UUIDv7 names; the closed file preferred over the open one */
    place(dir, "2026/11/23", id, ".jsonl");
    char want[256];
    snprintf(want, sizeof want, "/2026/11/23/%s.jsonl", id);
    assert_found(dir, id, want);
    place(dir, "2026/11/23", id, ".jsonl.gz");
    snprintf(want, sizeof want, "/2026/11/23/%s.jsonl.gz", id);
    assert_found(dir, id, want);

    /* scan fallback: a v7 id whose file is on another day (midnight) */
    char id2[37];
    uuid7(1795478400000LL - 1, id2); /* 2026-11-23T23:59:59.999Z */
    place(dir, "2026/11/24", id2, ".jsonl.gz");
    snprintf(want, sizeof want, "/2026/11/24/%s.jsonl.gz", id2);
    assert_found(dir, id2, want);
    /* an open file on the named day, the closed one on the next: closed wins */
    place(dir, "2026/11/23", id2, ".jsonl");
    assert_found(dir, id2, want);

    /* not a v7 id (version 4): found by scanning only */
    const char *v4 = "0193aaaa-bbbb-4ccc-8ddd-eeeeffff0000";
    assert_int_equal(al_rec_id_time(v4), -1);
    assert_int_equal(al_rec_find(dir, v4, out, sizeof out, err, sizeof err), AL_AGAIN);
    place(dir, "2025/01/02", v4, ".cast.gz");
    snprintf(want, sizeof want, "/2025/01/02/%s.cast.gz", v4);
    assert_found(dir, v4, want);
    place(dir, "2024/12/31", v4, ".cast");
    assert_found(dir, v4, want);

    /* directories that are not YYYY/MM/DD are never searched */
    const char *v4b = "0193aaaa-bbbb-4ccc-8ddd-eeeeffff0001";
    place(dir, "evil/11/23", v4b, ".jsonl.gz");
    place(dir, "2026/1/23", v4b, ".jsonl.gz");
    place(dir, "2026/11/2x", v4b, ".jsonl.gz");
    place(dir, "20261/11/23", v4b, ".jsonl.gz");
    assert_int_equal(al_rec_find(dir, v4b, out, sizeof out, err, sizeof err), AL_AGAIN);
    /* a directory with the recording's name is not a recording */
    char p[1024];
    snprintf(p, sizeof p, "%s/2026/11/23/%s.jsonl.gz", dir, v4b);
    assert_int_equal(al_mkdir_p(p, 0700), AL_OK);
    assert_int_equal(al_rec_find(dir, v4b, out, sizeof out, err, sizeof err), AL_AGAIN);

    /* a path that does not fit the caller's buffer is an error, not a cut path */
    char tiny[16];
    assert_int_equal(al_rec_find(dir, id, tiny, sizeof tiny, err, sizeof err), AL_ERR);
}

static void test_hostile_ids(void **state)
{
    fixture_t *f = *state;
    char dir[512], out[1024], err[256];
    snprintf(dir, sizeof dir, "%s/recordings", f->dir);
    /* a file a traversing id could reach, one level up */
    char p[1024];
    snprintf(p, sizeof p, "%s/x.jsonl.gz", f->dir);
    write_plain(p, "{}\n", 3);
    const char *bad[] = {
        "../x",
        "../../../../../../../../../../etc/passwd",
        "0193AAAA-BBBB-7CCC-8DDD-EEEEFFFF0000",  /* upper case */
        "0193aaaa-bbbb-7ccc-8ddd-eeeeffff000",   /* 35 */
        "0193aaaa-bbbb-7ccc-8ddd-eeeeffff00000", /* 37 */
        "0193aaaa-bbbb-7ccc-8ddd-eeeeffff000/",
        "0193aaaa/bbbb-7ccc-8ddd-eeeeffff0000",
        "0193aaaabbbbb7ccc-8ddd-eeeeffff00000",
        "..3aaaa-bbbb-7ccc-8ddd-eeeeffff0000",
        "",
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
        assert_false(al_rec_id_ok(bad[i]));
        out[0] = 0;
        if (al_rec_find(dir, bad[i], out, sizeof out, err, sizeof err) != AL_ERR)
            fail_msg("id '%s' was not refused", bad[i]);
        assert_non_null(strstr(err, "not a session id"));
        assert_string_equal(out, "");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gzip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gzip_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_find, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_ids, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
