/* test_audit_event.c - canonical form and chain hash (known answers from an
 * independent implementation of docs/audit.md), UUIDv7, event JSON, the
 * table rule, filter parsing and the store path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>

#include "audit_test.h"

/* The event whose hash scripts computed from the documented format
 * (Python: struct.pack(">I"/">q") + hashlib.sha256). */
static void kat_event(al_audit_event_t *ev)
{
    static const char *const groups[] = {"bots", "readers"};
    static const char *const tables[] = {"public.orders"};
    al_audit_event_init(ev);
    snprintf(ev->id, sizeof ev->id, "0190f5c2-7d3a-7b4e-8c1d-2e3f4a5b6c7d");
    ev->time_us = 1720000000123456;
    ev->kind = "decision";
    ev->session_id = "s-1";
    ev->agent = "report-bot";
    ev->subject = "sub-1";
    ev->groups = groups;
    ev->n_groups = 2;
    ev->target = "orders-db";
    ev->protocol = "postgres";
    ev->action = AL_STR("SELECT * FROM orders");
    ev->cls = "read";
    ev->tables = tables;
    ev->n_tables = 1;
    ev->decision = "allow";
    ev->rule = "readers-read";
    ev->reason = "";
}

static void hex_of(const uint8_t h[32], char out[65]) { al_hex(h, 32, out); }

static void test_chain_known_answer(void **st)
{
    (void)st;
    al_audit_event_t ev;
    kat_event(&ev);
    al_buf_t b;
    al_buf_init(&b);
    assert_int_equal(al_audit_canonical(&ev, &b), AL_OK);
    assert_int_equal(b.len, 276);
    uint8_t zero[32] = {0}, h1[32], h2[32];
    char hx[65];
    assert_int_equal(al_audit_chain_hash(zero, &ev, &b, h1), AL_OK);
    hex_of(h1, hx);
    assert_string_equal(hx, "aa54be526ea8f2dfcab3cb5cf8a586a71f134ed9db4804cc05dda81d53276255");
    ev.session_id = "s-2";
    assert_int_equal(al_audit_chain_hash(h1, &ev, &b, h2), AL_OK);
    hex_of(h2, hx);
    assert_string_equal(hx, "b02a8f8669ffa8ce8bb54d3703ef6fbb9af00f105218b7c6ca6c1bee0f12e7dc");
    al_buf_free(&b);
}

/* Fields added later (schema 2: bytes; schema 3: recording) are appended
 * only when set: an event without them hashes as before (the answer above,
 * computed before they existed), and with them as the documented form
 * says (same independent script). */
static void test_chain_known_answer_later_fields(void **st)
{
    (void)st;
    static const struct {
        int64_t up, down;
        const char *rec, *sha;
        size_t len;
        const char *hash;
    } cases[] = {
        {-1, -1, NULL, NULL, 276, "aa54be526ea8f2dfcab3cb5cf8a586a71f134ed9db4804cc05dda81d53276255"},
        {345, 67890, NULL, NULL, 292,
         "cc2707cd1d6daad866b783148dca7c8378c0f37d680c6a35c4953d1bc073a0a5"},
        {-1, -1, "2024/07/03/0190f5c2-7d3a-7b4e-8c1d-2e3f4a5b6c7d.jsonl.gz",
         "abababababababababababababababababababababababababababababababab", 421,
         "474c0e907741bc41f187e52fa87ad73625c69b7288e55fa0138c127959d138cb"},
        {345, 67890, "2024/07/03/0190f5c2-7d3a-7b4e-8c1d-2e3f4a5b6c7d.jsonl.gz",
         "abababababababababababababababababababababababababababababababab", 421,
         "ac33c6312a3e847e55d5e56f717d928fc46ad6bfd2dd31739a9af3173cfe2753"},
    };
    al_buf_t b;
    al_buf_init(&b);
    for (size_t i = 0; i < AL_ARRAY_LEN(cases); i++) {
        al_audit_event_t ev;
        kat_event(&ev);
        if (cases[i].rec)
            ev.kind = "session";
        ev.bytes_up = cases[i].up;
        ev.bytes_down = cases[i].down;
        ev.recording = cases[i].rec;
        ev.recording_sha256 = cases[i].sha;
        al_buf_reset(&b);
        assert_int_equal(al_audit_canonical(&ev, &b), AL_OK);
        if (b.len != cases[i].len)
            fail_msg("case %zu: canonical length %zu, want %zu", i, b.len, cases[i].len);
        uint8_t zero[32] = {0}, h[32];
        char hx[65];
        assert_int_equal(al_audit_chain_hash(zero, &ev, &b, h), AL_OK);
        hex_of(h, hx);
        assert_string_equal(hx, cases[i].hash);
    }
    al_buf_free(&b);
}

static void hash_of(const al_audit_event_t *ev, uint8_t out[32])
{
    al_buf_t b;
    al_buf_init(&b);
    uint8_t zero[32] = {0};
    assert_int_equal(al_audit_chain_hash(zero, ev, &b, out), AL_OK);
    al_buf_free(&b);
}

/* Every field is covered: changing any one changes the hash. NULL and ""
 * differ; list boundaries cannot be shifted. */
static void test_canonical_covers_every_field(void **st)
{
    (void)st;
    al_audit_event_t base, ev;
    full_event(&base);
    snprintf(base.id, sizeof base.id, "x");
    base.time_us = 1;
    uint8_t h0[32], h[32];
    hash_of(&base, h0);
    static const char *const g2[] = {"bots", "readersX"};
    static const char *const t2[] = {"public.orders"};
    static const char *const split_a[] = {"ab"};
    static const char *const split_b[] = {"a", "b"};
    for (int f = 0; f < 34; f++) {
        ev = base;
        switch (f) {
        case 0: ev.id[0] = 'y'; break;
        case 1: ev.time_us = 2; break;
        case 2: ev.kind = "decision"; break;
        case 3: ev.session_id = NULL; break;
        case 4: ev.agent = "other"; break;
        case 5: ev.subject = ""; break;
        case 6: ev.issuer = NULL; break;
        case 7: ev.groups = g2; break;
        case 8: ev.n_groups = 1; break;
        case 9: ev.groups_truncated = true; break;
        case 10: ev.target = "t"; break;
        case 11: ev.protocol = "http"; break;
        case 12: ev.action.len--; break;
        case 13: ev.action_truncated = true; break;
        case 14: ev.cls = "write"; break;
        case 15: ev.tables = t2; ev.n_tables = 1; break;
        case 16: ev.tables_truncated = true; break;
        case 17: ev.decision = "deny"; break;
        case 18: ev.rule = NULL; break;
        case 19: ev.reason = "r"; break;
        case 20: ev.approval_id = NULL; break;
        case 21: ev.ref_id = NULL; break;
        case 22: ev.rows = 18; break;
        case 23: ev.status = "SELECT 18"; break;
        case 24: ev.duration_us = -1; break;
        case 25: ev.error = NULL; break; /* "" vs NULL */
        case 26: ev.action = (al_str_t){NULL, 0}; break;
        case 27: ev.groups = split_a; ev.n_groups = 1; break;
        case 28: ev.rows = -1; break;
        case 29: ev.n_tables = 0; break;
        case 30: ev.recording = NULL; break;
        case 31: ev.recording_sha256 = NULL; break;
        case 32: ev.recording = ""; break;
        case 33: ev.recording = NULL; ev.recording_sha256 = NULL; break;
        }
        hash_of(&ev, h);
        if (!memcmp(h, h0, 32))
            fail_msg("changing field case %d left the hash unchanged", f);
    }
    /* A recording with unknown byte counts differs from no recording with
     * any byte counts, and the recording fields cannot trade places. */
    ev = base;
    ev.bytes_up = ev.bytes_down = -1;
    hash_of(&ev, h0);
    ev.recording = ev.recording_sha256 = NULL;
    hash_of(&ev, h);
    assert_true(memcmp(h, h0, 32) != 0);
    ev = base;
    ev.recording = base.recording_sha256;
    ev.recording_sha256 = base.recording;
    hash_of(&ev, h);
    assert_true(memcmp(h, h0, 32) != 0);
    /* ["ab"] and ["a","b"] must not collide. */
    ev = base;
    ev.groups = split_a;
    ev.n_groups = 1;
    hash_of(&ev, h0);
    ev.groups = split_b;
    ev.n_groups = 2;
    hash_of(&ev, h);
    assert_true(memcmp(h, h0, 32) != 0);
}

static void test_uuid7(void **st)
{
    (void)st;
    char a[AL_AUDIT_ID_SIZE], b[AL_AUDIT_ID_SIZE];
    int64_t t = 1720000000123456;
    assert_int_equal(al_audit_uuid7(t, a), AL_OK);
    assert_int_equal(strlen(a), 36);
    /* 48-bit ms = 1720000000123 = 0x0190_c4fb_7c7b */
    assert_memory_equal(a, "0190", 4);
    char msx[13];
    snprintf(msx, sizeof msx, "%012llx", (unsigned long long)(t / 1000));
    char got[13] = {0};
    memcpy(got, a, 8);
    memcpy(got + 8, a + 9, 4);
    assert_string_equal(got, msx);
    assert_int_equal(a[8], '-');
    assert_int_equal(a[14], '7');                        /* version 7 (§5.7) */
    assert_non_null(strchr("89ab", a[19]));              /* variant 10 (§4.1) */
    for (int i = 0; i < 36; i++)
        if (i != 8 && i != 13 && i != 18 && i != 23)
            assert_non_null(strchr("0123456789abcdef", a[i]));
    /* Sub-millisecond order (§6.2 method 3) and uniqueness. */
    for (int i = 0; i < 2000; i++) {
        assert_int_equal(al_audit_uuid7(t + i * 300, a), AL_OK);
        assert_int_equal(al_audit_uuid7(t + i * 300 + 300, b), AL_OK);
        if (strcmp(a, b) >= 0)
            fail_msg("ids not time ordered: %s >= %s", a, b);
    }
    char seen[64][AL_AUDIT_ID_SIZE];
    for (int i = 0; i < 64; i++) {
        assert_int_equal(al_audit_uuid7(t, seen[i]), AL_OK);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(seen[i], seen[j]);
    }
}

static void test_event_json(void **st)
{
    (void)st;
    al_audit_event_t ev;
    full_event(&ev);
    snprintf(ev.id, sizeof ev.id, "id-1");
    ev.time_us = 1720000000123456;
    ev.action = AL_STR("bad \xff\xc3 utf8 \xe2\x82\xac \"q\"\n");
    uint8_t h[32];
    memset(h, 0xab, 32);
    al_buf_t b;
    al_buf_init(&b);
    assert_int_equal(al_audit_event_json(&ev, 9, h, h, &b), AL_OK);
    json_error_t je;
    json_t *j = json_loads(b.p, 0, &je);
    if (!j)
        fail_msg("invalid JSON (%s): %s", je.text, b.p);
    assert_string_equal(json_string_value(json_object_get(j, "time")),
                        "2024-07-03T09:46:40.123456Z");
    assert_int_equal(json_integer_value(json_object_get(j, "seq")), 9);
    assert_string_equal(json_string_value(json_object_get(j, "action")),
                        "bad \xef\xbf\xbd\xef\xbf\xbd utf8 \xe2\x82\xac \"q\"\n");
    assert_string_equal(json_string_value(json_object_get(j, "class")), "read");
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "tables"), 0)),
                        "public.orders");
    assert_int_equal(json_array_size(json_object_get(j, "groups")), 2);
    assert_true(json_is_null(json_object_get(j, "issuer")) == false);
    assert_int_equal(json_integer_value(json_object_get(j, "rows")), 17);
    assert_true(json_real_value(json_object_get(j, "duration_ms")) > 12.344 &&
                json_real_value(json_object_get(j, "duration_ms")) < 12.346);
    assert_string_equal(json_string_value(json_object_get(j, "hash")),
                        "abababababababababababababababababababababababababababababababab");
    assert_string_equal(json_string_value(json_object_get(j, "recording")), test_recording);
    assert_string_equal(json_string_value(json_object_get(j, "recording_sha256")),
                        test_recording_sha);
    static const char *const keys[] = {"id", "time", "session_id", "agent", "target", "protocol",
                                       "action", "class", "tables", "decision", "rule", "reason",
                                       "kind", "subject", "issuer", "approval_id", "ref_id",
                                       "status", "error", "action_truncated", "prev_hash",
                                       "bytes_up", "bytes_down", "recording",
                                       "recording_sha256"};
    for (size_t i = 0; i < AL_ARRAY_LEN(keys); i++)
        if (!json_object_get(j, keys[i]))
            fail_msg("missing key %s", keys[i]);
    json_decref(j);

    /* Absent values are null, not "". */
    al_audit_event_init(&ev);
    al_buf_reset(&b);
    assert_int_equal(al_audit_event_json(&ev, 0, NULL, NULL, &b), AL_OK);
    j = json_loads(b.p, 0, &je);
    assert_non_null(j);
    assert_true(json_is_null(json_object_get(j, "agent")));
    assert_true(json_is_null(json_object_get(j, "rows")));
    assert_true(json_is_null(json_object_get(j, "action")));
    assert_true(json_is_null(json_object_get(j, "recording")));
    assert_true(json_is_null(json_object_get(j, "recording_sha256")));
    assert_null(json_object_get(j, "seq"));
    json_decref(j);
    al_buf_free(&b);
}

static void test_table_match(void **st)
{
    (void)st;
    assert_true(al_audit_table_match("public.orders", "public.orders"));
    assert_true(al_audit_table_match("public.orders", "orders"));
    assert_true(al_audit_table_match("orders", "public.orders"));
    assert_true(al_audit_table_match("db.public.orders", "public.orders"));
    assert_true(al_audit_table_match("orders", "orders"));
    assert_false(al_audit_table_match("public.orders", "sales.orders"));
    assert_false(al_audit_table_match("public.orders_archive", "orders"));
    assert_false(al_audit_table_match("public.myorders", "orders"));
    assert_false(al_audit_table_match("public.orders", "Orders"));
    assert_false(al_audit_table_match("public.orders", "public"));
    assert_false(al_audit_table_match("orders", "xorders"));
}

static void test_filter_set(void **st)
{
    (void)st;
    al_audit_filter_t f = {0};
    char err[256];
    double now = 1720000000.5;
    assert_int_equal(al_audit_filter_set(&f, "agent", "bot", now, err, sizeof err), AL_OK);
    assert_string_equal(f.agent, "bot");
    assert_int_equal(al_audit_filter_set(&f, "table", "orders", now, err, sizeof err), AL_OK);
    assert_int_equal(al_audit_filter_set(&f, "session", "s", now, err, sizeof err), AL_OK);
    assert_string_equal(f.session_id, "s");
    assert_int_equal(al_audit_filter_set(&f, "since", "1h", now, err, sizeof err), AL_OK);
    assert_int_equal(f.since_us, (int64_t)((now - 3600) * 1e6));
    assert_int_equal(al_audit_filter_set(&f, "until", "2024-07-03T09:46:40.25Z", now, err,
                                         sizeof err), AL_OK);
    assert_int_equal(f.until_us, 1720000000250000);
    assert_int_equal(al_audit_filter_set(&f, "until", "2024-07-03T11:46:40+02:00", now, err,
                                         sizeof err), AL_OK);
    assert_int_equal(f.until_us, 1720000000000000);
    assert_int_equal(al_audit_filter_set(&f, "limit", "25", now, err, sizeof err), AL_OK);
    assert_int_equal(f.limit, 25);
    assert_int_equal(al_audit_filter_set(&f, "before", "1000", now, err, sizeof err), AL_OK);
    assert_int_equal(f.before_seq, 1000);
    static const char *const bad[][2] = {
        {"limit", "0"}, {"limit", "-1"}, {"limit", "100001"}, {"limit", "1e3"}, {"limit", ""},
        {"since", "yesterday"}, {"since", "2024-13-01T00:00:00Z"}, {"since", "2024-07-03"},
        {"until", "2024-07-03T09:46:40"}, {"before", "0"}, {"before", "x"}, {"agent", ""},
        {"colour", "red"},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
        err[0] = 0;
        if (al_audit_filter_set(&f, bad[i][0], bad[i][1], now, err, sizeof err) != AL_ERR)
            fail_msg("%s=%s accepted", bad[i][0], bad[i][1]);
        assert_non_null(strstr(err, bad[i][0]));
    }
}

static void test_path(void **st)
{
    (void)st;
    al_config_t cfg = {0};
    cfg.server.data_dir = "/var/lib/airlock";
    char buf[64];
    /* no audit.path (a config not from the loader): <data_dir>/audit.db */
    assert_string_equal(al_audit_path(&cfg, buf, sizeof buf), "/var/lib/airlock/audit.db");
    char small[10];
    assert_null(al_audit_path(&cfg, small, sizeof small));
    cfg.audit.path = "/srv/audit/a.db";
    assert_string_equal(al_audit_path(&cfg, buf, sizeof buf), "/srv/audit/a.db");
    cfg.audit.max_action_bytes = 100;
    cfg.audit.commit_timeout = 2;
    cfg.audit.flush_interval = 0.01;
    cfg.audit.queue_size = 32;
    al_audit_opts_t o;
    assert_non_null(al_audit_opts_from_config(&cfg, &o, buf, sizeof buf));
    assert_string_equal(o.path, "/srv/audit/a.db");
    assert_int_equal(o.max_action_bytes, 100);
    assert_int_equal(o.queue_capacity, 32);
    assert_true(o.commit_timeout == 2 && o.flush_interval == 0.01);
    assert_int_equal(o.max_batch, 0);

    /* the loader's default */
    al_config_errors_t errs;
    static const char yaml[] = "server: { data_dir: /var/lib/x }\n";
    al_config_t *c = al_config_load_mem("/etc/airlock.yaml", yaml, sizeof yaml - 1, &errs);
    if (!c)
        fail_msg("%s", errs.n ? errs.msgs[0] : "config");
    assert_string_equal(al_audit_path(c, buf, sizeof buf), "/var/lib/x/audit.db");
    al_config_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chain_known_answer),
        cmocka_unit_test(test_chain_known_answer_later_fields),
        cmocka_unit_test(test_canonical_covers_every_field),
        cmocka_unit_test(test_uuid7),
        cmocka_unit_test(test_event_json),
        cmocka_unit_test(test_table_match),
        cmocka_unit_test(test_filter_set),
        cmocka_unit_test(test_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
