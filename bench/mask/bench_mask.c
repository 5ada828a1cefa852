/*
 * bench_mask - masking throughput (MB/s, 1 MB = 10^6 bytes), one core.
 *
 * Part 1, the measurement: 1 GiB of mixed text (prose, log lines,
 * JSON records, CSV rows, config snippets; distinct bytes, 32x the L3
 * cache, so it streams from memory) masked in 1 MiB blocks with the ten
 * built-in detectors, once without any value in it and once with values
 * at a realistic density (an IP address on every log line, e-mail and
 * phone in some records, cards, IBANs and SSNs in some CSV rows, keys in
 * some config). Next to it, on the same blocks:
 *   memcpy   copying the bytes: the physical limit of anything that reads
 *            every byte once;
 *   pcre2    the naive way: the same prefilter patterns, PCRE2 with JIT,
 *            run one after another over the text (no validation at all,
 *            so it does strictly less work than the engine).
 * It prints whether the targets hold: >= 1000 MB/s with no matches, and
 * >= 5x PCRE2.
 *
 * Part 2: 4 MiB cache-resident corpora of one kind each, one-shot and
 * streamed, with the same references:
 *   prose-clean  English-like sentences, a few numbers, no values
 *   text-clean   log lines with timestamps, ids, numbers, paths, no values
 *                (digit-dense: the slow case for digit detectors)
 *   text-sparse  the same with one value (rotating kinds) every ~4 KiB
 *   json-clean   a JSON array of records without personal data
 *   json-pii     the same records, each with an e-mail and a phone number
 * and the allocations one warm one-shot call makes (0 expected).
 *   usage: bench_mask [SECONDS_PER_MEASUREMENT [MIXED_MIB]]
 *          (MIXED_MIB: size of part 1, default 1024; 0 skips it)
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

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

/* Time is the benchmark thread's CPU time: MB/s per core, and the other
 * engineers' processes on this shared machine do not count against it
 * (they still share caches and memory bandwidth). */
static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
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

/* ---- part 1: 1 GiB of mixed text -------------------------------------------------- */

/* A preallocated buffer (1 GiB does not go through realloc doubling). */
typedef struct big {
    char *p;
    size_t len, cap;
} big_t;

static void bp(big_t *b, const char *fmt, ...) AL_PRINTF(2, 3);
static void bp(big_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->cap - b->len)
        abort(); /* the caller leaves 64 KiB of slack */
    b->len += (size_t)n;
}

static unsigned mix_values;

static void mix_prose(big_t *b)
{
    for (int k = 0, n = 2 + (int)rnd(4); k < n; k++) {
        int w = 8 + (int)rnd(13);
        for (int i = 0; i < w; i++)
            bp(b, "%s%s", i ? " " : "", words[rnd(AL_ARRAY_LEN(words))]);
        if (rnd(6) == 0)
            bp(b, ", %u of %u (%u%%) in %u", 1 + rnd(999), 1000 + rnd(9000), 1 + rnd(99),
               1990 + rnd(35));
        bp(b, ". ");
    }
    bp(b, "\n");
}

static void mix_log(big_t *b, bool pii)
{
    bp(b,
       "2024-%02u-%02uT%02u:%02u:%02u.%03uZ INFO svc=%s req=%08x status=%u bytes=%u took=%u.%ums",
       1 + rnd(12), 1 + rnd(28), rnd(24), rnd(60), rnd(60), rnd(1000),
       words[rnd(AL_ARRAY_LEN(words))], rnd(0x7fffffff), 200 + rnd(5) * 100, rnd(99999), rnd(900),
       rnd(10));
    if (pii) {
        bp(b, " client=%u.%u.%u.%u", 1 + rnd(223), rnd(256), rnd(256), 1 + rnd(254));
        mix_values++;
        if (rnd(8) == 0) {
            bp(b, " user=user%u@example.com", rnd(100000));
            mix_values++;
        }
    }
    bp(b, " path=/api/v1/%s/%u\n", words[rnd(AL_ARRAY_LEN(words))], rnd(100000));
}

static void mix_json(big_t *b, bool pii)
{
    bp(b, "{\"id\": %u, \"uuid\": \"%08x-%04x-4%03x-a%03x-%08x%04x\", \"status\": \"%s\", "
          "\"total\": %u.%02u, \"created_at\": \"2024-%02u-%02uT10:%02u:00Z\", "
          "\"version\": \"%u.%u.%u\"",
       rnd(1000000), rnd(0xffffffff), rnd(0xffff), rnd(0xfff), rnd(0xfff), rnd(0xffffffff),
       rnd(0xffff), words[rnd(AL_ARRAY_LEN(words))], rnd(1000), rnd(100), 1 + rnd(12),
       1 + rnd(28), rnd(60), rnd(10), rnd(30), rnd(100));
    if (pii && rnd(2) == 0) {
        bp(b, ", \"email\": \"user%u@example.com\", \"phone\": \"+1 415 555 %04u\"",
           rnd(100000), rnd(10000));
        mix_values += 2;
    }
    bp(b, "}\n");
}

static const char *const mix_cards[] = {"4111 1111 1111 1111", "5555555555554444",
                                        "3782 822463 10005", "6011-1111-1111-1117"};
static const char *const mix_ibans[] = {"GB82 WEST 1234 5698 7654 32", "DE89370400440532013000",
                                        "FR1420041010050500013M02606"};

static void mix_csv(big_t *b, bool pii)
{
    bp(b, "%u,2024-%02u-%02u,SKU-%05u,%u,%u.%02u,%s", rnd(10000000), 1 + rnd(12), 1 + rnd(28),
       rnd(100000), 1 + rnd(20), rnd(1000), rnd(100), words[rnd(AL_ARRAY_LEN(words))]);
    if (pii && rnd(3) == 0) {
        unsigned k = rnd(3);
        if (k == 0)
            bp(b, ",%s", mix_cards[rnd(AL_ARRAY_LEN(mix_cards))]);
        else if (k == 1)
            bp(b, ",%s", mix_ibans[rnd(AL_ARRAY_LEN(mix_ibans))]);
        else
            bp(b, ",%03u-%02u-%04u", 100 + rnd(500), 1 + rnd(98), 1 + rnd(9998));
        mix_values++;
    }
    bp(b, "\n");
}

static void mix_config(big_t *b, bool pii)
{
    bp(b, "name: %s-%s\nversion: %u.%u.%u\nreplicas: %u\ntimeout: %us\nimage: "
          "registry.example.com/%s:%u.%u\n",
       words[rnd(AL_ARRAY_LEN(words))], words[rnd(AL_ARRAY_LEN(words))], rnd(10), rnd(30),
       rnd(100), 1 + rnd(9), 5 + rnd(120), words[rnd(AL_ARRAY_LEN(words))], rnd(10), rnd(30));
    if (pii && rnd(4) == 0) {
        bp(b, "api_key: sk_live_%08x%08x%08xAbC\n", rnd(0xffffffff), rnd(0xffffffff),
           rnd(0xffffffff));
        mix_values++;
    }
}

/* By bytes about 38% prose, 30% log lines, 24% JSON, 6% CSV, 3% config;
 * 22% of all bytes are digits. */
static void make_mixed(big_t *b, size_t want, bool pii)
{
    b->cap = want + 65536;
    b->p = malloc(b->cap);
    if (!b->p)
        abort();
    b->len = 0;
    mix_values = 0;
    while (b->len < want) {
        unsigned k = rnd(100);
        if (k < 17)
            mix_prose(b);
        else if (k < 55)
            mix_log(b, pii);
        else if (k < 77)
            mix_json(b, pii);
        else if (k < 95)
            mix_csv(b, pii);
        else
            mix_config(b, pii);
    }
    b->len = want;
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
    char *dst; /* memcpy destination, CORPUS_BYTES */
} ctx_t;

typedef void (*run_fn)(ctx_t *c, const char *p, size_t n);

static void run_memcpy(ctx_t *c, const char *p, size_t n)
{
    memcpy(c->dst, p, n);
    c->found += (unsigned char)c->dst[n / 2];
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
    uint64_t t0 = cpu_ns(), iters = 0, t;
    do {
        fn(c, p, n);
        iters++;
        t = cpu_ns() - t0;
    } while ((double)t < secs * 1e9);
    return (double)n * (double)iters / ((double)t / 1e9) / 1e6;
}

/* ---- part 1 measurements --------------------------------------------------------- */

#define BLOCK (1u << 20)

static double mbps(size_t bytes, uint64_t ns) { return (double)bytes / ((double)ns / 1e9) / 1e6; }

/* One pass of fn over b in BLOCK-sized blocks; MB/s. */
static double pass(ctx_t *c, run_fn fn, const big_t *b)
{
    uint64_t t0 = cpu_ns();
    for (size_t off = 0; off < b->len; off += BLOCK)
        fn(c, b->p + off, AL_MIN(BLOCK, b->len - off));
    return mbps(b->len, cpu_ns() - t0);
}

static double median3(ctx_t *c, run_fn fn, const big_t *b)
{
    double v[3];
    for (int i = 0; i < 3; i++)
        v[i] = pass(c, fn, b);
    double lo = AL_MIN(v[0], AL_MIN(v[1], v[2])), hi = v[0] > v[1] ? v[0] : v[1];
    hi = hi > v[2] ? hi : v[2];
    return v[0] + v[1] + v[2] - lo - hi;
}

static double part1(ctx_t *c, size_t bytes, bool pii, double *pc, double *mc)
{
    big_t b;
    uint64_t t0 = cpu_ns();
    make_mixed(&b, bytes, pii);
    double gen_s = (double)(cpu_ns() - t0) / 1e9;
    al_mask_stats_t st = {0};
    for (size_t off = 0; off < b.len; off += BLOCK) {
        al_buf_reset(&c->out);
        if (al_mask_buffer(c->e, c->s, b.p + off, AL_MIN(BLOCK, b.len - off), &c->out, &st) < 0)
            abort();
    }
    if (!pii && st.values != 0) {
        fprintf(stderr, "bench_mask: mixed-clean is meant to hold no values, found %llu\n",
                (unsigned long long)st.values);
        exit(1);
    }
    double a = median3(c, run_buffer, &b);
    *mc = median3(c, run_memcpy, &b);
    *pc = pass(c, run_pcre2, &b);
    double mb = (double)b.len / 1e6;
    printf("%-12s %9.0f %9.0f %9.0f %13.1fx %14.3f %10.0f %9.0f   (generated in %.1f s)\n",
           pii ? "mixed-pii" : "mixed-clean", a, *mc, *pc, a / *pc, a / *mc,
           (double)st.values / mb, (double)st.candidates / mb, gen_s);
    free(b.p);
    return a;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    size_t mixed_mib = argc > 2 ? (size_t)atol(argv[2]) : 1024;
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
    c.dst = malloc(CORPUS_BYTES);
    if (!c.dst)
        return 1;

    if (mixed_mib) {
        size_t bytes = mixed_mib << 20;
        printf("part 1: mixed text, %zu bytes per corpus in 1 MiB blocks, %zu detectors "
               "(%zu patterns), one core; median of 3 passes (pcre2: 1 pass)\n",
               bytes, AL_ARRAY_LEN(dets), al__mask_n_patterns);
        printf("%-12s %9s %9s %9s %14s %14s %10s %9s\n", "corpus", "airlock", "memcpy", "pcre2",
               "airlock/pcre2", "airlock/memcpy", "values/MB", "cands/MB");
        double pc0, mc0, pc1, mc1;
        double clean = part1(&c, bytes, false, &pc0, &mc0);
        double pii = part1(&c, bytes, true, &pc1, &mc1);
        printf("target >= 1000 MB/s per core with no matches: %s (%.0f MB/s)\n",
               clean >= 1000 ? "met" : "NOT met", clean);
        printf("target >= 5x PCRE2: %s on mixed-clean (%.1fx), %s on mixed-pii (%.1fx)\n\n",
               clean >= 5 * pc0 ? "met" : "NOT met", clean / pc0,
               pii >= 5 * pc1 ? "met" : "NOT met", pii / pc1);
    }

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

    printf("part 2: 4 MiB cache-resident corpora, %.1f s per measurement\n", secs);
    printf("%-12s %10s %10s %10s %10s %10s %10s %9s\n", "corpus", "airlock", "stream64k",
           "stream1500", "pcre2", "memcpy", "values", "cands/MB");
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
        double mc = measure(&c, run_memcpy, p, n, secs);
        char c64[16] = "n/a", c15[16] = "n/a"; /* bodies are masked whole, not streamed */
        if (!json) {
            snprintf(c64, sizeof c64, "%.0f", s64);
            snprintf(c15, sizeof c15, "%.0f", s15);
        }
        printf("%-12s %10.0f %10s %10s %10.0f %10.0f %10llu %9.0f\n", names[i], a, c64, c15, pc, mc,
               (unsigned long long)st.values, (double)st.candidates / ((double)n / 1e6));
        printf("%-12s airlock/pcre2 = %.1fx, airlock/memcpy = %.3f, allocations/call = %.1f\n", "",
               a / pc, a / mc, allocs);
    }
    printf("MB/s, 1 MB = 10^6 bytes; %.1f s per measurement; %zu patterns; corpora of %u bytes\n",
           secs, al__mask_n_patterns, CORPUS_BYTES);
    for (size_t k = 0; k < c.n_re; k++)
        pcre2_code_free(c.re[k]);
    free(c.re);
    free(c.dst);
    pcre2_match_data_free(c.md);
    for (int i = 0; i < NC; i++)
        al_buf_free(&corp[i]);
    al_buf_free(&c.out);
    al_mask_stream_free(&c.st);
    al_mask_scratch_free(&c.s);
    al_mask_engine_unref(&e);
    return 0;
}
