/*
 * cmd_audit.c - `airlock audit verify` (walk the hash chain, check the
 * session recordings it names) and `airlock
 * audit query` (who did what), both on a read-only connection to the audit
 * store, so they run safely while `airlock serve` writes it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "cli/cli.h"
#include "record/record.h"

static void usage(FILE *f)
{
    fputs("usage: airlock audit verify -c FILE [--store PATH] [--recordings DIR]\n"
          "       airlock audit query -c FILE [--store PATH] [filters] [--limit N] [--json]\n\n"
          "verify: walks the audit hash chain in order and reports the first event\n"
          "that was edited, deleted, reordered or inserted. Prints the event count\n"
          "and the head hash (record it elsewhere to detect truncation later).\n"
          "Then checks every session recording the chain names: the file must be\n"
          "there and match the SHA-256 in its session_end event, unless a later\n"
          "retention event removed it. Recordings are read from\n"
          "<server.data_dir>/recordings, or from DIR; with --store and no -c, from\n"
          "the directory \"recordings\" beside the store.\n\n"
          "query: prints matching events, newest first.\n"
          "  --agent NAME       events of this agent\n"
          "  --target NAME      events on this target\n"
          "  --table NAME       statements touching this table (\"public.orders\" or\n"
          "                     \"orders\"; both match an event table public.orders)\n"
          "  --decision D       allow, deny, ...\n"
          "  --kind K           decision, result, admin, auth, session, session_end,\n"
          "                     recording\n"
          "  --session ID       one gateway session\n"
          "  --since T          a duration before now (90s, 15m, 1h, 7d) or an RFC 3339 time\n"
          "  --until T          same form; events strictly before T\n"
          "  --before SEQ       events with seq < SEQ (paging)\n"
          "  --limit N          at most N events (default 100)\n"
          "  --json             a JSON array of events instead of a table\n\n"
          "The store is <server.data_dir>/audit.db unless --store names another file\n"
          "(for example a copy kept elsewhere).\n\n"
          "exit status: 0 ok (verify: chain and recordings intact), 1 verify found a\n"
          "break or a changed or missing recording,\n"
          "2 usage or config error, or the store cannot be read\n",
          f);
}

typedef struct args {
    const char *cfg, *store, *recordings;
    bool json;
    al_audit_filter_t filter;
} args_t;

/* Returns 0 ok, 1 help, 2 usage error. */
static int parse(int argc, char **argv, bool query, args_t *a)
{
    static const char *const filters[] = {"agent", "target", "table", "decision", "kind",
                                          "session", "since", "until", "before", "limit"};
    memset(a, 0, sizeof *a);
    double now = al_now();
    for (int i = 2; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "-h") || !strcmp(s, "--help"))
            return 1;
        if (query && !strcmp(s, "--json")) {
            a->json = true;
            continue;
        }
        const char *key = NULL;
        if (!strcmp(s, "-c") || !strcmp(s, "--config"))
            key = "config";
        else if (!strcmp(s, "--store"))
            key = "store";
        else if (!query && !strcmp(s, "--recordings"))
            key = "recordings";
        for (size_t k = 0; query && !key && k < AL_ARRAY_LEN(filters); k++)
            if (!strncmp(s, "--", 2) && !strcmp(s + 2, filters[k]))
                key = filters[k];
        if (!key) {
            fprintf(stderr, "airlock audit: unknown argument '%s'\n", s);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "airlock audit: %s needs a value\n", s);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(key, "config")) {
            a->cfg = v;
        } else if (!strcmp(key, "store")) {
            a->store = v;
        } else if (!strcmp(key, "recordings")) {
            a->recordings = v;
        } else {
            char err[256];
            if (al_audit_filter_set(&a->filter, key, v, now, err, sizeof err) != AL_OK) {
                fprintf(stderr, "airlock audit: %s\n", err);
                return 2;
            }
        }
    }
    if (!a->cfg && !a->store) {
        fputs("airlock audit: a config file is required (-c FILE)\n", stderr);
        return 2;
    }
    return 0;
}

/* ---- verify ------------------------------------------------------------------- */

static void print_problem(void *ud, al_audit_rec_problem_t what, int64_t seq, const char *line)
{
    (void)ud;
    (void)what;
    (void)seq;
    printf("%s\n", line);
}

static int cmd_verify(al_audit_store_t *s, const char *rec_dir)
{
    al_audit_verify_t v;
    char err[AL_AUDIT_ERR_SIZE], head[65];
    if (al_audit_verify(s, &v, err, sizeof err) != AL_OK) {
        fprintf(stderr, "airlock audit verify: %s\n", err);
        return 2;
    }
    al_hex(v.head, 32, head);
    int rc = 0;
    if (v.intact) {
        printf("audit chain intact: %llu events, head %s (%s)\n", (unsigned long long)v.events,
               head, s->where);
    } else {
        printf("audit chain BROKEN at event seq %lld (id %s): %s\n", (long long)v.bad_seq,
               v.bad_id[0] ? v.bad_id : "?", v.reason);
        unsigned long long ok = v.events - 1;
        printf("%llu event%s before it %s intact; their head is %s (%s)\n", ok, ok == 1 ? "" : "s",
               ok == 1 ? "is" : "are", head, s->where);
        rc = 1;
    }
    /* The recordings are checked even past a break: what the events say
     * about them is still worth knowing. */
    al_audit_rec_verify_t rv;
    fflush(stdout);
    if (al_audit_verify_recordings(s, rec_dir, print_problem, NULL, &rv, err, sizeof err) !=
        AL_OK) {
        fprintf(stderr, "airlock audit verify: %s\n", err);
        return 2;
    }
    if (rv.problems) {
        printf("recordings: %llu problem%s; %llu checked intact, %llu removed by retention (%s)\n",
               (unsigned long long)rv.problems, rv.problems == 1 ? "" : "s",
               (unsigned long long)rv.checked, (unsigned long long)rv.removed, rec_dir);
        return 1;
    }
    if (rv.named)
        printf("recordings intact: %llu checked, %llu removed by retention (%s)\n",
               (unsigned long long)rv.checked, (unsigned long long)rv.removed, rec_dir);
    return rc;
}

/* ---- query -------------------------------------------------------------------- */

/* Prints at most width bytes of s (control characters as spaces, never
 * splitting a UTF-8 character), padded to width columns unless last. */
static void cell(const char *s, size_t len, size_t width, bool last)
{
    if (!s) {
        s = "-";
        len = 1;
    }
    size_t n = len;
    if (n > width) {
        n = width > 3 ? width - 3 : 0;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--;
    }
    size_t shown = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        /* Agents write this text: no control characters reach the
         * terminal, C1 ones (U+0080..U+009F, e.g. CSI) included. */
        if (c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
            (unsigned char)s[i + 1] <= 0x9f) {
            putchar(' ');
            i++;
            shown++;
            continue;
        }
        putchar(c < 0x20 || c == 0x7f ? ' ' : c);
        if ((c & 0xc0) != 0x80)
            shown++;
    }
    if (n < len) {
        fputs("...", stdout);
        shown += 3;
    }
    if (!last)
        for (; shown < width + 2; shown++)
            putchar(' ');
}

static void cell_s(const char *s, size_t width) { cell(s, s ? strlen(s) : 0, width, false); }

static int print_row(void *ud, const al_audit_row_t *row)
{
    size_t *n = ud;
    const al_audit_event_t *e = &row->ev;
    char ts[40], tables[256];
    al_time_rfc3339((double)e->time_us / 1e6, ts, sizeof ts);
    size_t tl = 0;
    tables[0] = '\0';
    for (size_t i = 0; i < e->n_tables && tl < sizeof tables; i++)
        tl += (size_t)snprintf(tables + tl, sizeof tables - tl, "%s%s", i ? "," : "", e->tables[i]);
    cell_s(ts, 24);
    cell_s(e->agent, 16);
    cell_s(e->target, 12);
    cell_s(e->protocol, 8);
    cell_s(e->decision, 8);
    cell_s(e->rule, 16);
    cell_s(e->cls, 7);
    cell_s(e->n_tables ? tables : NULL, 24);
    cell(e->action.p, e->action.len, 80, true);
    putchar('\n');
    (*n)++;
    return AL_OK;
}

static int cmd_query(al_audit_store_t *s, const args_t *a)
{
    char err[AL_AUDIT_ERR_SIZE];
    if (a->json) {
        al_buf_t b;
        al_buf_init(&b);
        int r = al_audit_query_json(s, &a->filter, &b, err, sizeof err);
        if (r == AL_OK)
            printf("%s\n", b.p);
        al_buf_free(&b);
        if (r != AL_OK) {
            fprintf(stderr, "airlock audit query: %s\n", err);
            return 2;
        }
        return 0;
    }
    static const char *const heads[] = {"TIME", "AGENT", "TARGET", "PROTO", "DECISION",
                                        "RULE", "CLASS", "TABLES"};
    static const size_t widths[] = {24, 16, 12, 8, 8, 16, 7, 24};
    for (size_t i = 0; i < AL_ARRAY_LEN(heads); i++)
        cell_s(heads[i], widths[i]);
    puts("ACTION");
    size_t n = 0;
    if (al_audit_store_query(s, &a->filter, print_row, &n, err, sizeof err) != AL_OK) {
        fprintf(stderr, "airlock audit query: %s\n", err);
        return 2;
    }
    printf("(%zu event%s, newest first)\n", n, n == 1 ? "" : "s");
    return 0;
}

int al_cmd_audit(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "verify") && strcmp(argv[1], "query"))) {
        if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
            usage(stdout);
            return 0;
        }
        if (argc >= 2)
            fprintf(stderr, "airlock audit: unknown subcommand '%s'\n", argv[1]);
        usage(stderr);
        return 2;
    }
    bool query = !strcmp(argv[1], "query");
    args_t a;
    int r = parse(argc, argv, query, &a);
    if (r == 1) {
        usage(stdout);
        return 0;
    }
    if (r)
        return 2;
    char path[4096], rdir[4096];
    const char *store = a.store, *rec_dir = a.recordings;
    if (a.cfg && (!store || (!query && !rec_dir))) {
        al_config_t *cfg = al_cli_load_config(a.cfg);
        if (!cfg)
            return 2;
        if (!store)
            store = al_audit_path(cfg, path, sizeof path);
        if (!query && !rec_dir)
            rec_dir = al_rec_dir(cfg, rdir, sizeof rdir);
        al_config_free(cfg);
        if (!store || (!query && !rec_dir)) {
            fputs("airlock audit: server.data_dir is too long\n", stderr);
            return 2;
        }
    }
    if (!query && !rec_dir) {
        /* --store alone: the layout `airlock serve` uses, recordings beside
         * audit.db in the data directory. */
        const char *slash = strrchr(store, '/');
        int n = slash ? snprintf(rdir, sizeof rdir, "%.*s/recordings", (int)(slash - store), store)
                      : snprintf(rdir, sizeof rdir, "recordings");
        if (n < 0 || (size_t)n >= sizeof rdir) {
            fputs("airlock audit: the store path is too long\n", stderr);
            return 2;
        }
        rec_dir = rdir;
    }
    al_audit_store_t *s = NULL;
    char err[AL_AUDIT_ERR_SIZE];
    if (al_audit_store_open(store, NULL, true, &s, err, sizeof err) != AL_OK) {
        fprintf(stderr, "airlock audit: %s\n", err);
        return 2;
    }
    r = query ? cmd_query(s, &a) : cmd_verify(s, rec_dir);
    al_audit_store_close(&s);
    fflush(stdout);
    return r;
}
