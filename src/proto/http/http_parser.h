/*
 * http_parser.h - strict, incremental HTTP/1.1 message parser (RFC 9112).
 *
 * Pure: no sockets, no loop, no globals, no allocation. One parser per
 * direction of a connection: requests (client -> airlock) or responses
 * (upstream -> airlock). airlock sits between two HTTP implementations, so
 * any message the two could frame differently (request smuggling) is
 * refused, never repaired. Strictness choices, each a stable reason code:
 *
 * Lines (RFC 9112 §2.2)
 *  - Every line ends in CRLF, in the head, the chunk framing and the
 *    trailers. A bare LF is "bare_lf"; a CR not followed by LF is "bare_cr".
 *  - Empty lines before the request line (which §2.2 says a server SHOULD
 *    skip) are refused: after a message we framed, a stray CRLF means the
 *    peer framed it differently ("bad_method" / "bad_status_line").
 *
 * Request line (RFC 9112 §3)
 *  - method SP request-target SP HTTP-version, exactly one SP each; a
 *    missing part is "bad_request_line". The method is a token ("bad_method",
 *    case-sensitive). The version is exactly "HTTP/1.1" or "HTTP/1.0"
 *    ("bad_version"; HTTP-name is case-sensitive, §2.3).
 *  - The target holds only RFC 3986 characters: no CTL, SP, DEL, non-ASCII,
 *    '#', '"', '<', '>', '\', '^', '`', '{', '|', '}', and every '%' starts
 *    a valid %HH escape ("bad_target"). Forms (§3.2): origin-form
 *    ('/'...), absolute-form (http:// or https:// with a non-empty
 *    authority, no userinfo), authority-form (host:port) for CONNECT only,
 *    asterisk-form ("*") for OPTIONS only. CONNECT with any other form is
 *    "bad_target".
 *  - Host (§3.2): an HTTP/1.1 request needs exactly one ("missing_host",
 *    "duplicate_host"); its value is [host][:port] ("bad_host"). With an
 *    absolute-form target it must equal the target's authority
 *    (case-insensitively), else "host_mismatch": policy and upstream must
 *    not see two different hosts.
 *  - The request line (CRLF included) is capped by max_start_line
 *    ("request_line_too_long"; responses: "status_line_too_long").
 *
 * Status line (RFC 9112 §4)
 *  - HTTP-version SP 3DIGIT (100..599) [SP reason-phrase]; the reason may
 *    be absent with or without its SP (clients ignore it, §4). Anything
 *    else is "bad_status_line".
 *
 * Field lines (RFC 9112 §5)
 *  - name is a non-empty token ("bad_header_name"); no whitespace between
 *    name and colon (§5.1, "space_before_colon"); a line without a colon is
 *    "missing_colon".
 *  - obs-fold, i.e. a field line starting with SP or HTAB, is refused
 *    (§5.2, "obs_fold"), also for the first field line.
 *  - value: VCHAR, obs-text, SP, HTAB only; NUL, other CTLs and DEL are
 *    "bad_header_value". Leading and trailing OWS is trimmed (§5.1), so
 *    "Transfer-Encoding:\tchunked" is valid.
 *  - At most max_headers field lines ("too_many_headers"), the whole head
 *    (CRLFCRLF included) at most max_head bytes ("head_too_large"). Limits
 *    are checked before the caller is asked to buffer more.
 *
 * Transfer-Encoding (RFC 9112 §6.1)
 *  - The only accepted value is exactly "chunked" (case-insensitive, OWS
 *    trimmed). Lists ("gzip, chunked", "chunked, chunked"), parameters
 *    ("chunked;q=1") and look-alikes ("xchunked") are "bad_transfer_encoding";
 *    a second Transfer-Encoding line is "duplicate_transfer_encoding".
 *  - Transfer-Encoding in an HTTP/1.0 message (either direction) is
 *    "te_in_http10" (§6.1: treat the framing as faulty).
 *  - Transfer-Encoding with Content-Length is "cl_and_te", in requests and,
 *    stricter than §6.3 asks, in responses too.
 *
 * Content-Length and body length (RFC 9112 §6.3, RFC 9110 §8.6)
 *  - 1*DIGIT, at most 2^62 ("bad_content_length": empty, signed, spaces
 *    inside, lists such as "5, 5", overflow). A second Content-Length line
 *    is refused even when equal ("duplicate_content_length"): accepting
 *    equal copies buys nothing and is one more rule two parsers can differ on.
 *  - Requests: chunked, else Content-Length, else no body. A CONNECT request
 *    with a body is "connect_with_body" (its bytes would be tunnel data to
 *    the upstream).
 *  - Responses (§6.3): to HEAD, 1xx, 204 and 304 carry no body whatever
 *    their headers say; 2xx to CONNECT and 101 turn the connection into a
 *    tunnel; then chunked; then Content-Length; otherwise the body runs to
 *    the end of the connection (close_delimited, keep_alive false).
 *
 * Chunked coding (RFC 9112 §7.1)
 *  - chunk-size is 1 to 16 hex digits followed directly by CRLF: no "0x",
 *    no whitespace, no other junk ("bad_chunk_size"; overflow impossible).
 *  - Chunk extensions are all refused ("bad_chunk_ext"): nothing we proxy
 *    uses them and their quoted-string grammar is where lenient parsers
 *    have disagreed before.
 *  - chunk data must be followed by CRLF ("missing_chunk_crlf").
 *  - Trailer fields are validated like header fields, then ignored; they
 *    count against max_headers ("too_many_headers") and max_head
 *    ("trailers_too_large"). Content-Length, Transfer-Encoding and Host are
 *    refused in trailers (RFC 9110 §6.5.1, "bad_trailer").
 *
 * End of input: al_http_parser_eof() ends a close-delimited body; any other
 * message cut short is "truncated".
 *
 * Errors are sticky: after one, every call fails until al_http_parser_reset.
 */
#ifndef AL_PROTO_HTTP_PARSER_H
#define AL_PROTO_HTTP_PARSER_H

#include "core/core.h"

/* Default limits (al_http_limits_default). */
#define AL_HTTP_DEFAULT_MAX_START_LINE (8u * 1024u)
#define AL_HTTP_DEFAULT_MAX_HEAD (64u * 1024u)
#define AL_HTTP_DEFAULT_MAX_HEADERS 100u

typedef enum al_http_mode {
    AL_HTTP_REQUEST = 0,  /* parse requests (server side) */
    AL_HTTP_RESPONSE,     /* parse responses (client side) */
} al_http_mode_t;

/* Stable refusal reasons; al_http_err_str gives the lowercase code. Never
 * renumber; append before AL_HTTP__ERR_COUNT. */
typedef enum al_http_err {
    AL_HTTP_OK = 0,
    AL_HTTP_E_BAD_CALL,             /* API misuse (input shrank, NULL input) */
    AL_HTTP_E_NO_REQUEST_METHOD,    /* response mode: al_http_parser_set_request not called */
    AL_HTTP_E_AWAITING_RESPONSE,    /* bytes after CONNECT/upgrade before tunnel/resume */
    AL_HTTP_E_REQUEST_LINE_TOO_LONG,
    AL_HTTP_E_STATUS_LINE_TOO_LONG,
    AL_HTTP_E_HEAD_TOO_LARGE,
    AL_HTTP_E_TOO_MANY_HEADERS,
    AL_HTTP_E_BARE_LF,
    AL_HTTP_E_BARE_CR,
    AL_HTTP_E_BAD_REQUEST_LINE,
    AL_HTTP_E_BAD_METHOD,
    AL_HTTP_E_BAD_TARGET,
    AL_HTTP_E_BAD_VERSION,
    AL_HTTP_E_BAD_STATUS_LINE,
    AL_HTTP_E_OBS_FOLD,
    AL_HTTP_E_SPACE_BEFORE_COLON,
    AL_HTTP_E_BAD_HEADER_NAME,
    AL_HTTP_E_MISSING_COLON,
    AL_HTTP_E_BAD_HEADER_VALUE,
    AL_HTTP_E_BAD_CONTENT_LENGTH,
    AL_HTTP_E_DUPLICATE_CONTENT_LENGTH,
    AL_HTTP_E_BAD_TRANSFER_ENCODING,
    AL_HTTP_E_DUPLICATE_TRANSFER_ENCODING,
    AL_HTTP_E_TE_IN_HTTP10,
    AL_HTTP_E_CL_AND_TE,
    AL_HTTP_E_MISSING_HOST,
    AL_HTTP_E_DUPLICATE_HOST,
    AL_HTTP_E_BAD_HOST,
    AL_HTTP_E_HOST_MISMATCH,
    AL_HTTP_E_CONNECT_WITH_BODY,
    AL_HTTP_E_BAD_CHUNK_SIZE,
    AL_HTTP_E_BAD_CHUNK_EXT,
    AL_HTTP_E_MISSING_CHUNK_CRLF,
    AL_HTTP_E_TRAILERS_TOO_LARGE,
    AL_HTTP_E_BAD_TRAILER,
    AL_HTTP_E_TRUNCATED,
    AL_HTTP__ERR_COUNT
} al_http_err_t;

/* Stable lowercase code ("cl_and_te"); "ok" for AL_HTTP_OK. */
const char *al_http_err_str(al_http_err_t e);

typedef struct al_http_limits {
    size_t max_start_line; /* request/status line, CRLF included (clamped to max_head) */
    size_t max_head;       /* whole head, final CRLFCRLF included; also caps trailers */
    size_t max_headers;    /* field lines in the head, and in the trailers */
} al_http_limits_t;

/* 8 KiB start line, 64 KiB head, 100 headers. */
al_http_limits_t al_http_limits_default(void);

typedef struct al_http_header {
    al_str_t name;  /* as received (compare case-insensitively) */
    al_str_t value; /* surrounding OWS trimmed; may be empty */
} al_http_header_t;

typedef enum al_http_form {
    AL_HTTP_FORM_NONE = 0,  /* response mode */
    AL_HTTP_FORM_ORIGIN,    /* "/path?query" */
    AL_HTTP_FORM_ABSOLUTE,  /* "http://host/path" (proxy requests) */
    AL_HTTP_FORM_AUTHORITY, /* "host:port" (CONNECT) */
    AL_HTTP_FORM_ASTERISK,  /* "*" (OPTIONS) */
} al_http_form_t;

/* A parsed head. Every al_str_t points into the caller's input buffer and
 * is valid only while the caller keeps those bytes where they were. */
typedef struct al_http_head {
    al_str_t raw;            /* the whole head, CRLFCRLF included */
    int version;             /* 10 or 11 */
    /* request mode */
    al_str_t method;
    al_str_t target;
    al_http_form_t form;
    al_str_t host;           /* Host value; p == NULL when absent */
    al_str_t authority;      /* target authority (absolute/authority form), else host */
    /* response mode */
    int status;              /* 100..599 */
    al_str_t reason;
    /* fields, in order; the array is the one given to al_http_parser_init */
    al_http_header_t *headers;
    size_t nheaders;
    /* framing, derived (RFC 9112 §6.3) */
    int64_t content_length;  /* the Content-Length field, -1 when absent */
    bool chunked;            /* Transfer-Encoding: chunked was present */
    bool has_body;           /* BODY/END events follow this head */
    bool close_delimited;    /* response body ends at EOF (al_http_parser_eof) */
    bool keep_alive;         /* persistent per version + Connection (RFC 9112 §9.3) */
    bool upgrade;            /* HTTP/1.1 with Connection: upgrade and an Upgrade field */
    bool expect_continue;    /* request: HTTP/1.1 with Expect: 100-continue */
    bool tunnel;             /* response: 101 or 2xx to CONNECT; bytes after it are TUNNEL */
} al_http_head_t;

typedef enum al_http_event {
    AL_HTTP_EV_NONE = 0,
    AL_HTTP_EV_HEAD,   /* out->head is filled; consumed = head length */
    AL_HTTP_EV_BODY,   /* out->body: decoded payload bytes (may be empty when only
                        * chunk framing was consumed) */
    AL_HTTP_EV_END,    /* message complete; out->body holds its last decoded bytes
                        * (possibly none); trailers were validated and skipped */
    AL_HTTP_EV_TUNNEL, /* out->body: raw bytes after a tunnel was established */
} al_http_event_t;

typedef struct al_http_msg {
    al_http_event_t event;
    bool done;          /* this call completed the message: END, or a HEAD
                         * with has_body == false. The parser then expects
                         * the next message (keep-alive, pipelining). */
    al_str_t body;      /* BODY/END/TUNNEL: view into the input; never copied */
    al_http_head_t head; /* written on HEAD events only */
} al_http_msg_t;

typedef enum al_http_state {
    AL_HTTP_S_HEAD = 0,
    AL_HTTP_S_BODY_CL,
    AL_HTTP_S_BODY_EOF,
    AL_HTTP_S_CHUNK_SIZE,
    AL_HTTP_S_CHUNK_DATA,
    AL_HTTP_S_CHUNK_CRLF,
    AL_HTTP_S_TRAILERS,
    AL_HTTP_S_HOLD,
    AL_HTTP_S_TUNNEL,
    AL_HTTP_S_DEAD,
} al_http_state_t;

typedef enum al_http_req_kind {
    AL_HTTP_REQ_UNSET = 0,
    AL_HTTP_REQ_OTHER,
    AL_HTTP_REQ_HEAD,
    AL_HTTP_REQ_CONNECT,
} al_http_req_kind_t;

/* Parser state. Plain data: embed it anywhere. Callers may read state
 * (e.g. AL_HTTP_S_HOLD after a CONNECT request), err and err_pos (set when
 * a call fails); every other field is private. */
typedef struct al_http_parser {
    al_http_mode_t mode;
    al_http_limits_t limits;
    al_http_header_t *headers; /* borrowed; caller owns */
    size_t headers_cap;
    al_http_state_t state;
    al_http_req_kind_t req;    /* response mode: the request being answered */
    uint64_t stream_off;       /* bytes consumed since init/reset */
    size_t scan;               /* unconsumed bytes already scanned (head, trailers) */
    size_t line_start;         /* head: start of the line being scanned */
    size_t nfields;            /* field lines seen in the head or trailers */
    size_t trailer_bytes;
    uint64_t remaining;        /* body bytes left in the Content-Length or chunk */
    bool hold_after;           /* request: CONNECT/upgrade, hold after the message */
    al_http_err_t err;         /* why the last call failed */
    uint64_t err_pos;          /* stream offset of the offending byte */
} al_http_parser_t;

/* Initializes st for one direction. limits NULL = defaults. headers is the
 * caller's array that HEAD events fill (it must outlive st); the effective
 * header limit is min(limits->max_headers, headers_cap). */
void al_http_parser_init(al_http_parser_t *st, al_http_mode_t mode,
                         const al_http_limits_t *limits,
                         al_http_header_t *headers, size_t headers_cap);

/* Back to "expect a new message" at stream offset 0, error cleared;
 * configuration kept. */
void al_http_parser_reset(al_http_parser_t *st);

/* Response mode: the method of the request the next response answers
 * (HEAD => no body; CONNECT 2xx => tunnel). Must be called before each final
 * response (1xx keep it; a final response clears it), else the parse fails
 * with "no_request_method". */
void al_http_parser_set_request(al_http_parser_t *st, al_str_t method);

/* Parses p[0..len). Contract: bytes not consumed must be presented again at
 * the start of p on the next call, followed by any new bytes.
 *  - > 0: bytes consumed (framing included), out->event says what they were.
 *         In the head phase nothing is consumed until the whole head is
 *         there; then it returns the head length with event HEAD.
 *  -   0: need more bytes (nothing consumed; already scanned bytes are not
 *         rescanned, so feeding a growing buffer is linear).
 *  - < 0: AL_ERR; st->err and st->err_pos say why and where.
 * In request mode after a CONNECT request or one with head.upgrade, the
 * parser holds: further calls fail ("awaiting_response") until the caller
 * calls al_http_parser_tunnel or al_http_parser_resume. */
ssize_t al_http_parse(al_http_parser_t *st, const uint8_t *p, size_t len,
                      al_http_msg_t *out);

/* The peer closed its side. Returns AL_OK with out->event END (a
 * close-delimited body ended) or NONE (no message in progress, or a
 * tunnel/hold); AL_ERR with "truncated" when a message was cut short. */
int al_http_parser_eof(al_http_parser_t *st, al_http_msg_t *out);

/* Request mode, while held after CONNECT/upgrade: the upstream accepted
 * (tunnel: every further byte is a TUNNEL event) or refused (resume: parse
 * the next request). Return AL_OK, or AL_ERR when the parser is not held. */
int al_http_parser_tunnel(al_http_parser_t *st);
int al_http_parser_resume(al_http_parser_t *st);

/* Finds the first field named name (case-insensitive) in head; returns its
 * value, or {NULL, 0} when absent. */
al_str_t al_http_head_get(const al_http_head_t *head, const char *name);

#endif
