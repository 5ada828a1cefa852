/*
 * pg_codec.h - PostgreSQL frontend/backend protocol 3.0: an incremental
 * framer per direction, parsers for the message bodies the gateway
 * inspects, and builders for the messages it writes.
 *
 * Pure: no sockets, no loop, no globals. The only allocation is the
 * framer's reassembly buffer, bounded by the active length cap. Reference:
 * PostgreSQL documentation, chapter "Frontend/Backend Protocol", sections
 * "Message Flow" (protocol-flow.html) and "Message Formats"
 * (protocol-message-formats.html). Citations name the section, because its
 * number changes between releases.
 *
 * Framing (Message Formats: every typed message is Byte1 type, Int32 length that
 * counts itself but not the type byte, body; the first message of a
 * frontend connection has no type byte):
 *  - length < 4 (typed) or < 8 (untyped) is "bad_length"; so is an
 *    SSLRequest / GSSENCRequest whose length is not 8 or a CancelRequest
 *    whose length is not 16.
 *  - Lengths are checked against a cap before a byte of body is buffered:
 *    max_startup for the untyped packet (PostgreSQL's own
 *    MAX_STARTUP_PACKET_LENGTH is 10000), max_preauth for typed messages
 *    until al_pg_framer_set_authenticated, then max_message (clamped to
 *    AL_PG_HARD_MAX_MESSAGE, 1 GiB, about PostgreSQL's own limit for
 *    large messages). Over the cap is "too_large". The buffer grows with
 *    the bytes that actually arrived, not with the announced length, and
 *    one over 64 KiB is released after its message was delivered.
 *  - The type byte must be one the direction defines ("unknown_type"). Before
 *    authentication only the messages that phase allows are accepted
 *    ("unexpected_type"): frontend 'p' (password / SASL) and 'X'; backend
 *    'R', 'E', 'N' and 'v'.
 *  - Frontend startup phase (Message Flow: Start-up, SSL and GSSAPI
 *    Session Encryption, Canceling Requests in Progress): the untyped packet
 *    is a StartupMessage for protocol 3.0, an SSLRequest, a GSSENCRequest or
 *    a CancelRequest. Any other protocol version is
 *    "unsupported_protocol_version"; the caller answers with an
 *    ErrorResponse, SQLSTATE 08P01, severity FATAL.
 *  - After an SSLRequest or GSSENCRequest the framer holds: the client must
 *    wait for the one-byte answer, so a byte arriving before
 *    al_pg_framer_resume is "data_while_held" (the buffered-plaintext
 *    injection of CVE-2021-23214). The caller therefore feeds the rest of
 *    the read that carried the request before it resumes. After a
 *    CancelRequest or a Terminate nothing may follow ("data_after_end").
 *
 * Errors are sticky: once a call fails, every call fails until
 * al_pg_framer_reset.
 */
#ifndef AL_PROTO_PG_CODEC_H
#define AL_PROTO_PG_CODEC_H

#include "core/core.h"

/* Untyped startup-phase request codes (Message Formats). */
#define AL_PG_PROTOCOL_3_0 196608u         /* 3 << 16 | 0 */
#define AL_PG_CANCEL_REQUEST_CODE 80877102u /* 1234 << 16 | 5678 */
#define AL_PG_SSL_REQUEST_CODE 80877103u    /* 1234 << 16 | 5679 */
#define AL_PG_GSSENC_REQUEST_CODE 80877104u /* 1234 << 16 | 5680 */

/* Length caps; every cap counts the Int32 length field, not the type byte. */
#define AL_PG_HARD_MAX_MESSAGE (1u << 30)
#define AL_PG_DEFAULT_MAX_STARTUP 10000u
/* 16 KiB rather than 10 KB: clients put an OIDC token in the password and
 * Entra ID tokens with many claims run to 8-10 KB. */
#define AL_PG_DEFAULT_MAX_PREAUTH (16u * 1024u)
#define AL_PG_DEFAULT_MAX_MESSAGE (64u * 1024u * 1024u)

#define AL_PG_MAX_STARTUP_PARAMS 64u
#define AL_PG_MAX_SASL_MECHS 8u

/* Stable reasons; al_pg_err_str gives the lowercase code. Never renumber;
 * append before AL_PG__ERR_COUNT. */
typedef enum al_pg_err {
    AL_PG_OK = 0,
    AL_PG_E_BAD_CALL,             /* API misuse (NULL input with a length) */
    AL_PG_E_NOMEM,                /* the reassembly buffer could not grow */
    AL_PG_E_UNKNOWN_TYPE,         /* type byte the direction does not define */
    AL_PG_E_UNEXPECTED_TYPE,      /* defined, but not allowed before authentication */
    AL_PG_E_BAD_LENGTH,           /* length field below the minimum or not the fixed size */
    AL_PG_E_TOO_LARGE,            /* length field above the active cap */
    AL_PG_E_UNSUPPORTED_VERSION,  /* startup packet for a protocol other than 3.0 */
    AL_PG_E_DATA_WHILE_HELD,      /* bytes after SSLRequest/GSSENCRequest before resume */
    AL_PG_E_DATA_AFTER_END,       /* bytes after CancelRequest or Terminate */
    AL_PG_E_TRUNCATED,            /* end of stream inside a message */
    /* body parsers */
    AL_PG_E_SHORT,                /* the body ends before a field does */
    AL_PG_E_MISSING_NUL,          /* a string runs to the end of the body */
    AL_PG_E_TRAILING,             /* bytes after the last field (also: NUL inside a string) */
    AL_PG_E_BAD_COUNT,            /* a count that does not match what follows */
    AL_PG_E_BAD_VALUE,            /* a field outside its domain */
    AL_PG_E_BAD_FORMAT,           /* a format code other than 0 (text) or 1 (binary) */
    AL_PG_E_DUPLICATE_PARAM,      /* startup parameter (or notice field) given twice */
    AL_PG_E_TOO_MANY_PARAMS,      /* more than AL_PG_MAX_STARTUP_PARAMS / AL_PG_MAX_SASL_MECHS */
    AL_PG_E_MISSING_USER,         /* StartupMessage without a non-empty "user" */
    AL_PG_E_MISSING_TERMINATOR,   /* parameter / mechanism list without its final NUL */
    AL_PG__ERR_COUNT
} al_pg_err_t;

/* Stable lowercase code ("too_large"); "ok" for AL_PG_OK. */
const char *al_pg_err_str(al_pg_err_t e);

/* ---- framer ---------------------------------------------------------------- */

typedef enum al_pg_dir {
    AL_PG_FRONTEND = 0, /* client -> server; starts with the untyped startup packet */
    AL_PG_BACKEND,      /* server -> client; typed from the first byte */
} al_pg_dir_t;

/* Caps on the length field. 0 = the default; values are clamped to
 * [16, AL_PG_HARD_MAX_MESSAGE] (startup) and [4, AL_PG_HARD_MAX_MESSAGE]. */
typedef struct al_pg_limits {
    uint32_t max_startup; /* the untyped packet */
    uint32_t max_preauth; /* typed messages before authentication */
    uint32_t max_message; /* typed messages after */
} al_pg_limits_t;

/* 10000, 16 KiB, 64 MiB. */
al_pg_limits_t al_pg_limits_default(void);

/* One complete message. Views point either into the caller's input (the
 * whole message arrived in one call) or into the framer's buffer; both stay
 * valid until the next call on the framer, or until the caller reuses the
 * input, whichever comes first. */
typedef struct al_pg_msg {
    uint8_t type;         /* type byte; 0 for the untyped startup packet */
    uint32_t code;        /* untyped packet: the request code or protocol version */
    const uint8_t *body;  /* after the length field (untyped: starts with code) */
    size_t body_len;      /* length field - 4 */
    const uint8_t *raw;   /* the message exactly as received, to forward as is */
    size_t raw_len;       /* body_len + 4, + 1 when typed */
} al_pg_msg_t;

typedef enum al_pg_framer_state {
    AL_PG_FS_STARTUP = 0, /* frontend: an untyped packet is next */
    AL_PG_FS_TYPED,       /* typed messages */
    AL_PG_FS_HOLD,        /* after SSLRequest/GSSENCRequest, until al_pg_framer_resume */
    AL_PG_FS_END,         /* after CancelRequest / Terminate */
    AL_PG_FS_DEAD,        /* after an error */
} al_pg_framer_state_t;

/* Framer state. Callers may read state, err and err_pos; the rest is
 * private. Owns buf: release with al_pg_framer_free. */
typedef struct al_pg_framer {
    al_pg_dir_t dir;
    al_pg_limits_t limits;
    al_pg_framer_state_t state;
    bool authenticated;
    uint8_t hdr[8];    /* header bytes of a message not yet complete */
    size_t hdr_len;
    uint8_t *buf;      /* reassembly: raw bytes of the partial message */
    size_t buf_len;
    size_t buf_cap;
    size_t need;       /* raw length of the partial message, once its header is known */
    uint64_t stream_off; /* bytes consumed since init/reset */
    al_pg_err_t err;
    uint64_t err_pos;  /* stream offset of the offending byte */
} al_pg_framer_t;

/* Initializes f for one direction; limits NULL = defaults. No allocation. */
void al_pg_framer_init(al_pg_framer_t *f, al_pg_dir_t dir, const al_pg_limits_t *limits);

/* Releases the reassembly buffer. f may be re-initialized afterwards. */
void al_pg_framer_free(al_pg_framer_t *f);

/* Back to the initial state (startup phase for a frontend framer, not
 * authenticated), error cleared, limits kept. Keeps the buffer. */
void al_pg_framer_reset(al_pg_framer_t *f);

/* Switches to the post-authentication cap and message set. Frontend: call
 * once the client's credential was accepted; backend: once the upstream's
 * AuthenticationOk was accepted by al_pg_auth_step. */
void al_pg_framer_set_authenticated(al_pg_framer_t *f);

/* Leaves the hold after an SSLRequest/GSSENCRequest, once the caller wrote
 * its one-byte answer (and, for 'S', once TLS is up: then feed the
 * decrypted bytes). The next message is again an untyped packet. AL_OK, or
 * AL_ERR when not held. */
int al_pg_framer_resume(al_pg_framer_t *f);

/* Frames p[0..len). Returns:
 *  - > 0: a message is complete in *out; that many bytes of p were consumed
 *         (the rest of it came from earlier calls). Call again with the
 *         remaining bytes.
 *  -   0: need more; all len bytes were consumed (kept in the framer).
 *  - < 0: AL_ERR; f->err and f->err_pos say why and where.
 * Bytes are never presented twice: the framer keeps what it needs. A
 * message contained in one call's input is returned without copying. */
ssize_t al_pg_frame(al_pg_framer_t *f, const uint8_t *p, size_t len, al_pg_msg_t *out);

/* The peer closed its side: AL_OK between messages, else AL_ERR with
 * "truncated". */
int al_pg_framer_eof(al_pg_framer_t *f);

/* ---- body parsers -------------------------------------------------------------
 *
 * Each takes a message body (al_pg_msg_t.body/body_len), fills *out and
 * returns AL_PG_OK or the reason it refused. Every field is checked against
 * the body's end; a body with bytes past its last field is refused
 * ("trailing_bytes"), as PostgreSQL's pq_getmsgend does. Views in *out point
 * into the body. Strings are NUL-terminated in the body, so an al_str_t
 * view of a string field is also a C string (p[len] == '\0').
 * Counts are read as PostgreSQL reads them: Int16 counts unsigned (0..65535).
 */

/* Reads a big-endian field from a body at a position the parser validated. */
static inline uint16_t al_pg_u16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t al_pg_u32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

typedef enum al_pg_startup_kind {
    AL_PG_SK_NONE = 0,
    AL_PG_SK_STARTUP,        /* StartupMessage, protocol 3.0 */
    AL_PG_SK_SSL_REQUEST,
    AL_PG_SK_GSSENC_REQUEST,
    AL_PG_SK_CANCEL_REQUEST,
} al_pg_startup_kind_t;

typedef struct al_pg_param {
    al_str_t name;
    al_str_t value;
} al_pg_param_t;

typedef struct al_pg_startup {
    al_pg_startup_kind_t kind;
    uint32_t code;
    /* StartupMessage: parameters in order (names unique, non-empty) */
    al_pg_param_t params[AL_PG_MAX_STARTUP_PARAMS];
    size_t nparams;
    al_str_t user;      /* never empty on success */
    al_str_t database;  /* p == NULL when absent (the server then uses user) */
    /* CancelRequest */
    int32_t cancel_pid;
    uint32_t cancel_key;
} al_pg_startup_t;

/* The untyped first packet (Message Formats: StartupMessage, SSLRequest,
 * GSSENCRequest, CancelRequest). body starts with the Int32 code. A
 * StartupMessage needs the final NUL ("missing_terminator"), unique
 * parameter names ("duplicate_parameter"), at most AL_PG_MAX_STARTUP_PARAMS
 * ("too_many_parameters") and a non-empty user ("missing_user"). Other
 * protocol versions: "unsupported_protocol_version". Parameters whose names
 * start with "_pq_." (protocol options) are reported like any other. */
al_pg_err_t al_pg_parse_startup(const uint8_t *body, size_t len, al_pg_startup_t *out);

/* Query 'Q', CopyFail 'f', PasswordMessage 'p' (cleartext or md5 form) and
 * CommandComplete 'C': one String filling the whole body; a NUL before the
 * last byte is "trailing_bytes". */
al_pg_err_t al_pg_parse_query(const uint8_t *body, size_t len, al_str_t *sql);
al_pg_err_t al_pg_parse_copy_fail(const uint8_t *body, size_t len, al_str_t *message);
al_pg_err_t al_pg_parse_password(const uint8_t *body, size_t len, al_str_t *password);
al_pg_err_t al_pg_parse_command_complete(const uint8_t *body, size_t len, al_str_t *tag);

/* Sync, Flush, Terminate, CopyDone, ParseComplete, BindComplete,
 * CloseComplete, NoData, PortalSuspended, EmptyQueryResponse: the body
 * must be empty. */
al_pg_err_t al_pg_parse_empty(const uint8_t *body, size_t len);

/* Parse 'P'. param_types holds nparam_types Int32 OIDs (al_pg_u32(p + 4*i));
 * 0 means unspecified. */
typedef struct al_pg_parse_msg {
    al_str_t statement; /* "" = the unnamed statement */
    al_str_t query;
    uint16_t nparam_types;
    const uint8_t *param_types;
} al_pg_parse_msg_t;
al_pg_err_t al_pg_parse_parse(const uint8_t *body, size_t len, al_pg_parse_msg_t *out);

/* A value of Bind, DataRow, FunctionCall: Int32 length (-1 = NULL), bytes. */
typedef struct al_pg_value {
    bool null;
    const uint8_t *p; /* NULL when null */
    uint32_t len;     /* 0 when null */
} al_pg_value_t;

/* Iterates over a run of values a parser already validated. */
typedef struct al_pg_values {
    const uint8_t *p;
    size_t len;
    size_t off;
    uint32_t left;
} al_pg_values_t;

/* Next value into *v; false once all were returned. */
bool al_pg_values_next(al_pg_values_t *it, al_pg_value_t *v);

/* Bind 'B'. The format arrays hold Int16 codes (al_pg_u16(p + 2*i)), all
 * checked to be 0 or 1; nparam_formats is 0, 1 or nparams (Message Formats). */
typedef struct al_pg_bind {
    al_str_t portal;    /* "" = the unnamed portal */
    al_str_t statement;
    uint16_t nparam_formats;
    const uint8_t *param_formats;
    uint16_t nparams;
    const uint8_t *params; /* nparams values; walk with al_pg_bind_params */
    size_t params_len;
    uint16_t nresult_formats;
    const uint8_t *result_formats;
} al_pg_bind_t;
al_pg_err_t al_pg_parse_bind(const uint8_t *body, size_t len, al_pg_bind_t *out);
al_pg_values_t al_pg_bind_params(const al_pg_bind_t *b);
/* Effective format (0 text, 1 binary) of parameter i / result column i,
 * applying the "none = all text, one = applies to all" rule. */
int al_pg_bind_param_format(const al_pg_bind_t *b, size_t i);
int al_pg_bind_result_format(const al_pg_bind_t *b, size_t i);

/* Execute 'E'. max_rows <= 0 means no limit. */
typedef struct al_pg_execute {
    al_str_t portal;
    int32_t max_rows;
} al_pg_execute_t;
al_pg_err_t al_pg_parse_execute(const uint8_t *body, size_t len, al_pg_execute_t *out);

/* Describe 'D' / Close 'C': kind is 'S' (statement) or 'P' (portal). */
typedef struct al_pg_target {
    char kind;
    al_str_t name;
} al_pg_target_t;
al_pg_err_t al_pg_parse_describe(const uint8_t *body, size_t len, al_pg_target_t *out);
al_pg_err_t al_pg_parse_close(const uint8_t *body, size_t len, al_pg_target_t *out);

/* FunctionCall 'F'. */
typedef struct al_pg_function_call {
    uint32_t function_oid;
    uint16_t narg_formats;
    const uint8_t *arg_formats;
    uint16_t nargs;
    const uint8_t *args; /* walk with al_pg_function_args */
    size_t args_len;
    uint16_t result_format;
} al_pg_function_call_t;
al_pg_err_t al_pg_parse_function_call(const uint8_t *body, size_t len, al_pg_function_call_t *out);
al_pg_values_t al_pg_function_args(const al_pg_function_call_t *f);

/* SASLInitialResponse 'p': mechanism, then Int32 length (-1 = no initial
 * response) and that many bytes, exactly to the end. */
typedef struct al_pg_sasl_initial {
    al_str_t mechanism;
    bool has_data;
    al_str_t data;
} al_pg_sasl_initial_t;
al_pg_err_t al_pg_parse_sasl_initial(const uint8_t *body, size_t len, al_pg_sasl_initial_t *out);
/* SASLResponse 'p' (and CopyData 'd'): the body is the data, any bytes. */
al_pg_err_t al_pg_parse_sasl_response(const uint8_t *body, size_t len, al_str_t *data);

/* Authentication 'R' (Message Formats: AuthenticationOk ... AuthenticationSASLFinal). */
typedef enum al_pg_authreq_code {
    AL_PG_AUTHREQ_OK = 0,
    AL_PG_AUTHREQ_KERBEROS_V5 = 2,
    AL_PG_AUTHREQ_CLEARTEXT = 3,
    AL_PG_AUTHREQ_MD5 = 5,
    AL_PG_AUTHREQ_GSS = 7,
    AL_PG_AUTHREQ_GSS_CONTINUE = 8,
    AL_PG_AUTHREQ_SSPI = 9,
    AL_PG_AUTHREQ_SASL = 10,
    AL_PG_AUTHREQ_SASL_CONTINUE = 11,
    AL_PG_AUTHREQ_SASL_FINAL = 12,
} al_pg_authreq_code_t;

typedef struct al_pg_authreq {
    al_pg_authreq_code_t code;
    uint8_t md5_salt[4];                    /* MD5 */
    al_str_t data;                          /* GSS_CONTINUE, SASL_CONTINUE, SASL_FINAL */
    al_str_t mechs[AL_PG_MAX_SASL_MECHS];   /* SASL: offered mechanisms, non-empty, in order */
    size_t nmechs;
} al_pg_authreq_t;
/* Fixed-size codes must have exactly their size; SASL needs at least one
 * mechanism and the list terminator; an unknown code is "bad_value". */
al_pg_err_t al_pg_parse_authentication(const uint8_t *body, size_t len, al_pg_authreq_t *out);

/* ParameterStatus 'S'. */
al_pg_err_t al_pg_parse_parameter_status(const uint8_t *body, size_t len, al_pg_param_t *out);

/* BackendKeyData 'K': protocol 3.0, a 4-byte key (body exactly 8 bytes). */
typedef struct al_pg_backend_key {
    int32_t pid;
    uint32_t key;
} al_pg_backend_key_t;
al_pg_err_t al_pg_parse_backend_key(const uint8_t *body, size_t len, al_pg_backend_key_t *out);

/* ReadyForQuery 'Z': 'I' idle, 'T' in a transaction, 'E' failed transaction. */
al_pg_err_t al_pg_parse_ready(const uint8_t *body, size_t len, char *status);

/* RowDescription 'T'. */
typedef struct al_pg_field {
    al_str_t name;
    uint32_t table_oid; /* 0 if not a table column */
    int16_t column;     /* attribute number, 0 if not a table column */
    uint32_t type_oid;
    int16_t type_size;  /* negative: variable width */
    int32_t type_mod;
    int16_t format;     /* 0 text, 1 binary */
} al_pg_field_t;

typedef struct al_pg_row_desc {
    uint16_t nfields;
    const uint8_t *fields; /* walk with al_pg_row_desc_next */
    size_t fields_len;
} al_pg_row_desc_t;

typedef struct al_pg_fields {
    const uint8_t *p;
    size_t len;
    size_t off;
    uint32_t left;
} al_pg_fields_t;

al_pg_err_t al_pg_parse_row_desc(const uint8_t *body, size_t len, al_pg_row_desc_t *out);
al_pg_fields_t al_pg_row_desc_fields(const al_pg_row_desc_t *d);
/* Next field into *f; false once all were returned. */
bool al_pg_fields_next(al_pg_fields_t *it, al_pg_field_t *f);

/* DataRow 'D'. */
typedef struct al_pg_data_row {
    uint16_t ncols;
    const uint8_t *cols; /* walk with al_pg_data_row_values */
    size_t cols_len;
} al_pg_data_row_t;
al_pg_err_t al_pg_parse_data_row(const uint8_t *body, size_t len, al_pg_data_row_t *out);
al_pg_values_t al_pg_data_row_values(const al_pg_data_row_t *r);

/* Row count of a CommandComplete tag (Message Formats): "INSERT oid rows", "DELETE
 * rows", "UPDATE rows", "MERGE rows", "SELECT rows", "MOVE rows", "FETCH
 * rows", "COPY rows". true with *rows set for those forms (decimal, no sign,
 * no leading '+', fits 64 bits); false for tags without a count ("BEGIN",
 * "CREATE TABLE") and for anything malformed. */
bool al_pg_command_rows(al_str_t tag, uint64_t *rows);

/* ErrorResponse 'E' / NoticeResponse 'N' (Error and Notice Message Fields): fields by their code.
 * Letter codes are kept; others are skipped, as the spec tells frontends
 * to. A letter given twice is "duplicate_parameter"; an empty field list
 * is allowed. */
typedef struct al_pg_notice {
    al_str_t f[52]; /* 'A'..'Z' then 'a'..'z'; p == NULL when absent */
    size_t nfields; /* fields seen, including skipped ones */
} al_pg_notice_t;
al_pg_err_t al_pg_parse_notice(const uint8_t *body, size_t len, al_pg_notice_t *out);
/* The field with that code ('S', 'V', 'C', 'M', 'D', 'H', 'P', ...), or
 * {NULL, 0} when absent or not a letter. */
al_str_t al_pg_notice_get(const al_pg_notice_t *n, char code);

/* CopyInResponse 'G', CopyOutResponse 'H', CopyBothResponse 'W'. With the
 * overall format 0 (text) every column format must be 0 (Message Formats). */
typedef struct al_pg_copy_response {
    uint8_t format;
    uint16_t ncols;
    const uint8_t *col_formats; /* Int16 each */
} al_pg_copy_response_t;
al_pg_err_t al_pg_parse_copy_response(const uint8_t *body, size_t len, al_pg_copy_response_t *out);

/* NotificationResponse 'A'. */
typedef struct al_pg_notification {
    int32_t pid;
    al_str_t channel;
    al_str_t payload;
} al_pg_notification_t;
al_pg_err_t al_pg_parse_notification(const uint8_t *body, size_t len, al_pg_notification_t *out);

/* ParameterDescription 't': OIDs as in al_pg_parse_msg_t. */
typedef struct al_pg_param_desc {
    uint16_t ntypes;
    const uint8_t *types;
} al_pg_param_desc_t;
al_pg_err_t al_pg_parse_param_desc(const uint8_t *body, size_t len, al_pg_param_desc_t *out);

/* FunctionCallResponse 'V': one value. */
al_pg_err_t al_pg_parse_function_result(const uint8_t *body, size_t len, al_pg_value_t *out);

/* NegotiateProtocolVersion 'v': newest minor version the server supports
 * and the protocol options it did not recognize (a run of nopts strings). */
typedef struct al_pg_negotiate {
    uint32_t newest_minor;
    uint32_t nopts;
    const uint8_t *opts;
    size_t opts_len;
} al_pg_negotiate_t;
al_pg_err_t al_pg_parse_negotiate(const uint8_t *body, size_t len, al_pg_negotiate_t *out);

/* ---- builders -----------------------------------------------------------------
 *
 * Each appends one complete message to b and returns AL_OK, or AL_ERR when
 * b is out of memory or an argument is invalid (then b->len is unchanged,
 * apart from a buffer already out of memory). C-string arguments cannot
 * carry a NUL, so every String field is well formed.
 */

/* ErrorResponse / NoticeResponse with S and V (both set to severity, as
 * PostgreSQL 9.6+ sends them), C, M, and D / H when non-NULL. severity:
 * ERROR, FATAL or PANIC for an error; WARNING, NOTICE, DEBUG, INFO or LOG
 * for a notice. sqlstate: five characters of [0-9A-Z]. */
int al_pg_build_error(al_buf_t *b, const char *severity, const char *sqlstate,
                      const char *message, const char *detail, const char *hint);
int al_pg_build_notice(al_buf_t *b, const char *severity, const char *sqlstate,
                       const char *message, const char *detail, const char *hint);

int al_pg_build_auth_ok(al_buf_t *b);
int al_pg_build_auth_cleartext(al_buf_t *b);
/* mechs: n non-empty mechanism names (n >= 1). */
int al_pg_build_auth_sasl(al_buf_t *b, const char *const *mechs, size_t n);
int al_pg_build_auth_sasl_continue(al_buf_t *b, const void *data, size_t len);
int al_pg_build_auth_sasl_final(al_buf_t *b, const void *data, size_t len);
int al_pg_build_parameter_status(al_buf_t *b, const char *name, const char *value);
int al_pg_build_backend_key(al_buf_t *b, int32_t pid, uint32_t key);
/* status: 'I', 'T' or 'E'. */
int al_pg_build_ready(al_buf_t *b, char status);

/* StartupMessage, protocol 3.0, from n name/value pairs: names non-empty and
 * unique, "user" present with a non-empty value, n <= AL_PG_MAX_STARTUP_PARAMS,
 * total within AL_PG_DEFAULT_MAX_STARTUP. */
int al_pg_build_startup(al_buf_t *b, const al_pg_param_t *params, size_t n);
/* The answer to an SSLRequest is one byte, 'S' or 'N', which the caller
 * reads itself: any byte after an 'S' in the same read arrived before the
 * TLS handshake and must be refused (CVE-2021-23222). */
int al_pg_build_ssl_request(al_buf_t *b);
int al_pg_build_cancel_request(al_buf_t *b, int32_t pid, uint32_t key);
int al_pg_build_password(al_buf_t *b, const char *password);
/* data NULL = no initial response (length -1). */
int al_pg_build_sasl_initial(al_buf_t *b, const char *mechanism, const void *data, size_t len);
int al_pg_build_sasl_response(al_buf_t *b, const void *data, size_t len);
int al_pg_build_query(al_buf_t *b, const char *sql);
int al_pg_build_sync(al_buf_t *b);
int al_pg_build_terminate(al_buf_t *b);

/* DataRow rewriting, for masking. One edit per column (columns past nedits
 * are kept); nedits may not exceed the row's column count. */
typedef enum al_pg_cell_op {
    AL_PG_CELL_KEEP = 0, /* copy the column unchanged */
    AL_PG_CELL_SET,      /* replace with p[0..len) */
    AL_PG_CELL_NULL,     /* replace with SQL NULL */
} al_pg_cell_op_t;

typedef struct al_pg_cell_edit {
    al_pg_cell_op_t op;
    const void *p;
    size_t len;
} al_pg_cell_edit_t;

/* Appends a DataRow made from row (a parsed DataRow, whose body must not
 * overlap b) with edits applied. AL_ERR also when the result would exceed
 * AL_PG_HARD_MAX_MESSAGE or a value 2^31-1 bytes. */
int al_pg_build_data_row_edit(al_buf_t *b, const al_pg_data_row_t *row,
                              const al_pg_cell_edit_t *edits, size_t nedits);

#endif
