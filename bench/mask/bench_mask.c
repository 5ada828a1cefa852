/*
 * bench_mask - masking throughput (MB/s, 1 MB = 10^6 bytes) on generated
 * corpora, next to two references measured in the same run:
 *   pcre2    the naive way: the same prefilter patterns, PCRE2 with JIT,
 *            run one after another over the text (no validation at all,
 *            so it does strictly less work than the engine);
 *   memchr   a raw read of the bytes (memchr for a byte that is absent):
 *            the ceiling for anything that looks at every byte.
 * Corpora (4 MiB each):
 *   prose-clean  English-like sentences, a few numbers, no values
 *   text-clean   log lines with timestamps, ids, numbers, paths, no values
 *                (digit-dense: the slow case for digit detectors)
 *   text-sparse  the same with one value (rotating kinds) every ~4 KiB
 *   json-clean   a JSON array of records without personal data
 *   json-pii     the same records, each with an e-mail and a phone number
 * Prints one line per corpus and path, then the ratios and the allocations
 * one warm one-shot call makes (0 expected when nothing is found).
 *   usage: bench_mask [SECONDS_PER_MEASUREMENT]
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>

#include "mask/mask_int.h"

#define CORPUS_BYTES (4u << 20)

/* Counts allocations (glibc's __libc_* entry points are the real ones), to
 * check that the no-match path allocates nothing. */
static uint64_t n_allocs;
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
void *malloc(size_t n);
void *calloc(size_t a, size_t b);
void *realloc(void *p, size_t n);
void *malloc(size_t n)
{
    n_allocs++;
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b)
{
    n_allocs++;
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n)
{
    n_allocs++;
    return __libc_realloc(p, n);
}

static uint64_t rng_state = 0x853c49e6748fea9bull;
static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11) % n;
}

static const char *const words[] = {
    "request", "served",  "cache",  "miss",   "upstream", "latency", "retry",  "order",
    "invoice", "shipped", "queue",  "worker", "session",  "commit",  "replica", "lag",
    "the",     "and",     "of",     "for",    "with",     "from",    "after",  "before",
};

static void add_log_line(al_buf_t *b)
{
    al_buf_printf(b,
                  "2024-%02u-%02uT%02u:%02u:%02u.%03uZ INFO svc=%s req=%08x status=%u bytes=%u "
                  "took=%u.%ums path=/api/v1/%s/%u ",
                  1 + rnd(12), 1 + rnd(28), rnd(24), rnd(60), rnd(60), rnd(1000),
                  words[rnd(AL_ARRAY_LEN(words))], rnd(0x7fffffff), 200 + rnd(5) * 100, rnd(99999),
                  rnd(900), rnd(10), words[rnd(AL_ARRAY_LEN(words))], rnd(100000));
    int n = 4 + (int)rnd(10);
    for (int i = 0; i < n; i++)
        al_buf_printf(b, "%s ", words[rnd(AL_ARRAY_LEN(words))]);
    al_buf_puts(b, "\n");
}

static void make_prose(al_buf_t *b)
{
    while (b->len < CORPUS_BYTES) {
        int n = 8 + (int)rnd(13);
        for (int i = 0; i < n; i++)
            al_buf_printf(b, "%s%s", i ? " " : "", words[rnd(AL_ARRAY_LEN(words))]);
        if (rnd(10) == 0)
            al_buf_printf(b, ", in %u %u of them (%u%%) did", 1900 + rnd(125), 1 + rnd(999),
                          1 + rnd(99));
        al_buf_puts(b, ". ");
    }
}

static const char *const values[] = {
    "bob.smith@example.com",
    "4111 1111 1111 1111",
    "+44 20 7946 0958",
    "(415) 555-2671",
    "192.168.10.20",
    "123-45-6789",
    "GB82 WEST 1234 5698 7654 32",
    "AKIAIOSFODNN7EXAMPLE",
    "api_key=sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "2001:db8::8a2e:370:7334",
};

static void make_text(al_buf_t *b, bool sparse)
{
    size_t next = 4096;
    unsigned k = 0;
    while (b->len < CORPUS_BYTES) {
        add_log_line(b);
        if (sparse && b->len >= next) {
            al_buf_printf(b, "contact %s now\n", values[k++ % AL_ARRAY_LEN(values)]);
            next += 4096;
        }
    }
}

static void make_json(al_buf_t *b, bool pii)
{
    al_buf_puts(b, "[");
    for (unsigned i = 0; b->len < CORPUS_BYTES; i++) {
        al_buf_printf(b,
                      "%s{\"id\":%u,\"name\":\"user %u\",\"status\":\"active\",\"score\":%u.%u,"
                      "\"created_at\":\"2024-%02u-%02uT10:%02u:00Z\",\"tags\":[\"%s\",\"%s\"],"
                      "\"note\":\"said \\\"%s %s\\\" \\u00e9 at %u\"",
                      i ? "," : "", i, i, rnd(100), rnd(10), 1 + rnd(12), 1 + rnd(28), rnd(60),
                      words[rnd(AL_ARRAY_LEN(words))], words[rnd(AL_ARRAY_LEN(words))],
                      words[rnd(AL_ARRAY_LEN(words))], words[rnd(AL_ARRAY_LEN(words))], rnd(9999));
        if (pii)
            al_buf_printf(b, ",\"email\":\"user%u@example.com\",\"phone\":\"+1 415 555 %04u\"", i,
                          rnd(10000));
        al_buf_puts(b, "}");
    }
    al_buf_puts(b, "]");
}

typedef struct ctx {
    al_mask_engine_t *e;
    al_mask_stream_t *st;
    al_mask_scratch_t *s;
    al_buf_t out;
    pcre2_code **re;
    pcre2_match_data *md;
    size_t n_re;
    uint64_t found;
} ctx_t;

typedef void (*run_fn)(ctx_t *c, const char *p, size_t n);

static void run_memchr(ctx_t *c, const char *p, size_t n)
{
    c->found += memchr(p, 0x01, n) != NULL;
}

static void run_buffer(ctx_t *c, const char *p, size_t n)
{
    al_buf_reset(&c->out);
    if (al_mask_buffer(c->e, c->s, p, n, &c->out, NULL) < 0)
        abort();
}

static void run_body(ctx_t *c, const char *p, size_t n)
{
    al_buf_reset(&c->out);
    if (al_mask_http_body(c->e, c->s, AL_STR("application/json"), p, n, &c->out, NULL) < 0)
        abort();
}

static void run_stream(ctx_t *c, const char *p, size_t n, size_t chunk)
{
    al_mask_stream_t *st = c->st;
    al_buf_reset(&c->out);
    for (size_t i = 0; i < n; i += chunk) {
        if (al_mask_stream_feed(st, c->s, p + i, AL_MIN(chunk, n - i), &c->out, NULL) < 0)
            abort();
        if (c->out.len > (1u << 20))
            al_buf_reset(&c->out); /* a proxy would have written it out */
    }
    if (al_mask_stream_flush(st, c->s, &c->out, NULL) < 0)
        abort();
}

static void run_stream_64k(ctx_t *c, const char *p, size_t n) { run_stream(c, p, n, 65536); }
static void run_stream_1500(ctx_t *c, const char *p, size_t n) { run_stream(c, p, n, 1500); }

static void run_pcre2(ctx_t *c, const char *p, size_t n)
{
    for (size_t k = 0; k < c->n_re; k++) {
        PCRE2_SIZE off = 0;
        while (off < n) {
            int rc = pcre2_jit_match(c->re[k], (PCRE2_SPTR)p, n, off, 0, c->md, NULL);
            if (rc < 0)
                break;
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
            c->found++;
            off = ov[1] > off ? ov[1] : off + 1;
        }
    }
}

/* MB/s of fn over p[0..n) for at least secs seconds. */
static double measure(ctx_t *c, run_fn fn, const char *p, size_t n, double secs)
{
    fn(c, p, n); /* warm up */
    uint64_t t0 = al_mono_ns(), iters = 0, t;
    do {
        fn(c, p, n);
        iters++;
        t = al_mono_ns() - t0;
    } while ((double)t < secs * 1e9);
    return (double)n * (double)iters / ((double)t / 1e9) / 1e6;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    static const char *const dets[] = {"credit_card", "us_ssn",  "email",       "phone",
                                       "iban",        "ip_address", "jwt",      "aws_key",
                                       "private_key", "api_key"};
    al_mask_rule_t rules[AL_ARRAY_LEN(dets)];
    for (size_t i = 0; i < AL_ARRAY_LEN(dets); i++)
        rules[i] = (al_mask_rule_t){dets[i], NULL, AL_MASK_STYLE_FULL};
    al_mask_config_t cfg = {.rules = rules, .n_rules = AL_ARRAY_LEN(rules)};
    ctx_t c = {0};
    al_mask_engine_t *e = NULL;
    if (al_mask_compile(&cfg, &e, NULL) != AL_MASK_OK || al_mask_scratch_alloc(e, &c.s) != AL_MASK_OK)
        return 1;
    c.e = e;
    if (al_mask_stream_open(e, 0, &c.st) != AL_MASK_OK)
        return 1;
    c.re = calloc(al__mask_n_patterns, sizeof *c.re);
    for (size_t k = 0; k < al__mask_n_patterns; k++) {
        int err;
        PCRE2_SIZE eoff;
        uint32_t opt = (al__mask_patterns[k].flags & HS_FLAG_CASELESS) ? PCRE2_CASELESS : 0;
        c.re[k] = pcre2_compile((PCRE2_SPTR)al__mask_patterns[k].re, PCRE2_ZERO_TERMINATED, opt,
                                &err, &eoff, NULL);
        if (!c.re[k] || pcre2_jit_compile(c.re[k], PCRE2_JIT_COMPLETE) != 0)
            return 1;
    }
    c.n_re = al__mask_n_patterns;
    c.md = pcre2_match_data_create(4, NULL);

    enum { NC = 5 };
    al_buf_t corp[NC];
    static const char *const names[NC] = {"prose-clean", "text-clean", "text-sparse", "json-clean",
                                          "json-pii"};
    for (int i = 0; i < NC; i++)
        al_buf_init(&corp[i]);
    make_prose(&corp[0]);
    make_text(&corp[1], false);
    make_text(&corp[2], true);
    make_json(&corp[3], false);
    make_json(&corp[4], true);

    printf("%-12s %10s %10s %10s %10s %10s %10s %9s\n", "corpus", "airlock", "stream64k",
           "stream1500", "pcre2", "memchr", "values", "cands/MB");
    for (int i = 0; i < NC; i++) {
        const char *p = corp[i].p;
        size_t n = corp[i].len;
        bool json = i >= 3;
        al_mask_stats_t st = {0};
        al_buf_t o;
        al_buf_init(&o);
        if (json)
            al_mask_http_body(e, c.s, AL_STR("application/json"), p, n, &o, &st);
        else
            al_mask_buffer(e, c.s, p, n, &o, &st);
        al_buf_free(&o);
        if ((i == 0 || i == 1 || i == 3) && st.values != 0) {
            fprintf(stderr, "bench_mask: %s is meant to hold no values, found %llu\n", names[i],
                    (unsigned long long)st.values);
            return 1;
        }
        run_fn one = json ? run_body : run_buffer;
        one(&c, p, n); /* warm: buffers reach their size */
        uint64_t before = n_allocs;
        for (int k = 0; k < 4; k++)
            one(&c, p, n);
        double allocs = (double)(n_allocs - before) / 4.0;
        double a = measure(&c, one, p, n, secs);
        double s64 = json ? 0 : measure(&c, run_stream_64k, p, n, secs);
        double s15 = json ? 0 : measure(&c, run_stream_1500, p, n, secs);
        double pc = measure(&c, run_pcre2, p, n, secs);
        double mc = measure(&c, run_memchr, p, n, secs);
        char c64[16] = "n/a", c15[16] = "n/a"; /* bodies are masked whole, not streamed */
        if (!json) {
            snprintf(c64, sizeof c64, "%.0f", s64);
            snprintf(c15, sizeof c15, "%.0f", s15);
        }
        printf("%-12s %10.0f %10s %10s %10.0f %10.0f %10llu %9.0f\n", names[i], a, c64, c15, pc, mc,
               (unsigned long long)st.values, (double)st.candidates / ((double)n / 1e6));
        printf("%-12s airlock/pcre2 = %.1fx, airlock/memchr = %.3f, allocations/call = %.1f\n", "",
               a / pc, a / mc, allocs);
    }
    printf("MB/s, 1 MB = 10^6 bytes; %.1f s per measurement; %zu patterns; corpora of %u bytes\n",
           secs, al__mask_n_patterns, CORPUS_BYTES);
    for (size_t k = 0; k < c.n_re; k++)
        pcre2_code_free(c.re[k]);
    free(c.re);
    pcre2_match_data_free(c.md);
    for (int i = 0; i < NC; i++)
        al_buf_free(&corp[i]);
    al_buf_free(&c.out);
    al_mask_stream_free(&c.st);
    al_mask_scratch_free(&c.s);
    al_mask_engine_unref(&e);
    return 0;
}
