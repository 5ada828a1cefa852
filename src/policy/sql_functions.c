/*
 * sql_functions.c - the documented tables behind SQL classification: which
 * function calls have side effects, and which configuration parameters are
 * privileged to SET. docs/sql-classification.md lists every entry; keep the
 * two in step (tests/unit/policy/test_sql_classify.c checks each entry).
 */
#include "policy/sql_classify.h"

typedef struct entry {
    const char *name;
    bool prefix; /* name is a prefix: "pg_ls_" matches pg_ls_dir, ... */
    al_sql_class_t cls;
} entry_t;

#define X(n, c) {n, false, AL_SQL_##c}
#define P(n, c) {n, true, AL_SQL_##c}

/* Keep in the order of the table in docs/sql-classification.md. */
static const entry_t functions[] = {
    /* admin: other sessions, server configuration and logs */
    X("pg_terminate_backend", ADMIN),
    X("pg_cancel_backend", ADMIN),
    X("pg_reload_conf", ADMIN),
    X("pg_rotate_logfile", ADMIN),
    X("pg_rotate_logfile_old", ADMIN),
    X("pg_log_backend_memory_contexts", ADMIN),
    X("set_config", ADMIN),
    P("pg_stat_reset", ADMIN),
    X("pg_stat_statements_reset", ADMIN),
    /* admin: the server's file system */
    X("pg_read_file", ADMIN),
    X("pg_read_file_old", ADMIN),
    X("pg_read_binary_file", ADMIN),
    X("pg_stat_file", ADMIN),
    P("pg_ls_", ADMIN),
    X("lo_import", ADMIN),
    X("lo_export", ADMIN),
    X("pg_file_write", ADMIN),
    X("pg_file_rename", ADMIN),
    X("pg_file_unlink", ADMIN),
    X("pg_file_sync", ADMIN),
    X("pg_logdir_ls", ADMIN),
    /* admin: other servers */
    X("dblink", ADMIN),
    P("dblink_", ADMIN),
    /* admin: WAL, backup, recovery, replication */
    X("pg_promote", ADMIN),
    X("pg_switch_wal", ADMIN),
    X("pg_switch_xlog", ADMIN),
    X("pg_create_restore_point", ADMIN),
    X("pg_backup_start", ADMIN),
    X("pg_backup_stop", ADMIN),
    X("pg_start_backup", ADMIN),
    X("pg_stop_backup", ADMIN),
    X("pg_wal_replay_pause", ADMIN),
    X("pg_wal_replay_resume", ADMIN),
    X("pg_create_physical_replication_slot", ADMIN),
    X("pg_create_logical_replication_slot", ADMIN),
    X("pg_drop_replication_slot", ADMIN),
    X("pg_copy_physical_replication_slot", ADMIN),
    X("pg_copy_logical_replication_slot", ADMIN),
    X("pg_replication_slot_advance", ADMIN),
    X("pg_logical_slot_get_changes", ADMIN),
    X("pg_logical_slot_peek_changes", ADMIN),
    X("pg_logical_slot_get_binary_changes", ADMIN),
    X("pg_logical_slot_peek_binary_changes", ADMIN),
    X("pg_logical_emit_message", ADMIN),
    P("pg_replication_origin_", ADMIN),
    X("pg_import_system_collations", ADMIN),
    /* admin: run SQL text the classifier never sees */
    X("query_to_xml", ADMIN),
    X("query_to_xmlschema", ADMIN),
    X("query_to_xml_and_xmlschema", ADMIN),
    X("ts_stat", ADMIN),
    X("ts_rewrite", ADMIN),
    /* admin: read rows of relations named in an argument, out of sight of
     * table rules */
    X("table_to_xml", ADMIN),
    X("table_to_xml_and_xmlschema", ADMIN),
    X("schema_to_xml", ADMIN),
    X("schema_to_xml_and_xmlschema", ADMIN),
    X("database_to_xml", ADMIN),
    X("database_to_xml_and_xmlschema", ADMIN),
    X("get_raw_page", ADMIN),
    /* write */
    X("nextval", WRITE),
    X("setval", WRITE),
    P("pg_advisory_", WRITE),
    P("pg_try_advisory_", WRITE),
    X("pg_notify", WRITE),
    X("lo_create", WRITE),
    X("lo_creat", WRITE),
    X("lo_unlink", WRITE),
    X("lo_put", WRITE),
    X("lo_from_bytea", WRITE),
    X("lowrite", WRITE),
    X("lo_truncate", WRITE),
    X("lo_truncate64", WRITE),
    X("brin_summarize_new_values", WRITE),
    X("brin_summarize_range", WRITE),
    X("brin_desummarize_range", WRITE),
    X("gin_clean_pending_list", WRITE),
    /* read, listed so a stricter default does not catch them */
    X("txid_current", READ),
    X("txid_current_if_assigned", READ),
    X("pg_current_xact_id", READ),
    X("pg_current_xact_id_if_assigned", READ),
    X("currval", READ),
    X("lastval", READ),
    X("current_setting", READ),
    X("table_to_xmlschema", READ),
    X("schema_to_xmlschema", READ),
    X("database_to_xmlschema", READ),
    X("cursor_to_xml", READ),
    X("cursor_to_xmlschema", READ),
};

/* Configuration parameters whose SET (any value) or RESET is admin: they
 * switch identity, or need superuser because they weaken the server's
 * safety or hide activity from its logs and statistics. */
static const entry_t settings[] = {
    X("role", ADMIN),
    X("session_authorization", ADMIN),
    X("session_replication_role", ADMIN),
    X("allow_system_table_mods", ADMIN),
    X("ignore_system_indexes", ADMIN),
    X("ignore_checksum_failure", ADMIN),
    X("ignore_invalid_pages", ADMIN),
    X("zero_damaged_pages", ADMIN),
    X("dynamic_library_path", ADMIN),
    X("session_preload_libraries", ADMIN),
    X("local_preload_libraries", ADMIN),
    X("max_stack_depth", ADMIN),
    X("temp_file_limit", ADMIN),
    X("lc_messages", ADMIN),
    X("commit_delay", ADMIN),
    X("deadlock_timeout", ADMIN),
    X("wal_compression", ADMIN),
    X("wal_consistency_checking", ADMIN),
    P("log_", ADMIN),
    P("debug_", ADMIN),
    P("trace_", ADMIN),
    P("track_", ADMIN),
};

#undef X
#undef P

static char lower_ascii(char ch)
{
    return (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
}

/* Case-insensitive (ASCII) match of s against a lowercase table name. */
static bool entry_match(const entry_t *e, al_str_t s)
{
    size_t n = strlen(e->name);
    if (e->prefix ? s.len < n : s.len != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower_ascii(s.p[i]) != e->name[i])
            return false;
    return true;
}

static const entry_t *lookup(const entry_t *tab, size_t n, al_str_t s)
{
    for (size_t i = 0; i < n; i++)
        if (entry_match(&tab[i], s))
            return &tab[i];
    return NULL;
}

al_sql_class_t al_sql_function_class(al_str_t name, al_sql_class_t dflt, bool *listed)
{
    const entry_t *e = lookup(functions, AL_ARRAY_LEN(functions), name);
    if (listed)
        *listed = e != NULL;
    return e ? e->cls : dflt;
}

static bool ieq(al_str_t a, const char *lit)
{
    entry_t e = {lit, false, AL_SQL_READ};
    return entry_match(&e, a);
}

/* UTF8 / utf-8 / Unicode / utf_8 name the encoding libpg_query lexes in. */
static bool is_utf8_name(al_str_t v)
{
    char norm[16];
    size_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.p[i] == '-' || v.p[i] == '_')
            continue;
        if (n == sizeof(norm))
            return false;
        norm[n++] = lower_ascii(v.p[i]);
    }
    al_str_t s = {norm, n};
    return al_str_eq_c(s, "utf8") || al_str_eq_c(s, "unicode");
}

static bool is_true_name(al_str_t v)
{
    return ieq(v, "on") || ieq(v, "true") || ieq(v, "yes") || ieq(v, "1");
}

al_sql_class_t al_sql_setting_class(al_str_t name, al_str_t value, bool reset)
{
    if (lookup(settings, AL_ARRAY_LEN(settings), name))
        return AL_SQL_ADMIN;
    /* libpg_query lexes as UTF-8 with standard_conforming_strings on. A
     * session that changes either makes the server split the text
     * differently from us (backslash escapes in '...' strings; multibyte
     * characters whose trail byte is a quote or backslash), so such a SET
     * could hide statements. RESET / DEFAULT return to the startup value,
     * which the gateway pins. */
    if (reset)
        return AL_SQL_READ;
    /* Policies read an unqualified table as public.name; a session that
     * moves search_path elsewhere would reach other schemas' tables under
     * names the policy takes for public ones. */
    if (ieq(name, "search_path"))
        return AL_SQL_ADMIN;
    if (ieq(name, "client_encoding"))
        return is_utf8_name(value) ? AL_SQL_READ : AL_SQL_ADMIN;
    if (ieq(name, "standard_conforming_strings"))
        return is_true_name(value) ? AL_SQL_READ : AL_SQL_ADMIN;
    return AL_SQL_READ;
}

size_t al__sql_table_entry(int which, size_t i, const char **name, bool *prefix,
                           al_sql_class_t *cls)
{
    const entry_t *tab = which == 0 ? functions : settings;
    size_t n = which == 0 ? AL_ARRAY_LEN(functions) : AL_ARRAY_LEN(settings);
    if (i < n) {
        *name = tab[i].name;
        *prefix = tab[i].prefix;
        *cls = tab[i].cls;
    }
    return n;
}
