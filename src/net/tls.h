/*
 * tls.h - a loop-agnostic TLS engine over OpenSSL 3 memory BIOs.
 *
 * The engine never touches a socket. The session code owns the socket and
 * moves bytes in both directions:
 *
 *     socket read  -> al_tls_feed(t, bytes)      ciphertext in
 *                     al_tls_read(t, &plain)     handshake + decrypt
 *     al_tls_write(t, plain bytes)               encrypt (queued until the
 *                                                handshake completes)
 *     al_tls_pending_out(t, &cipher) -> socket write   ciphertext out
 *
 * After every al_tls_feed/al_tls_read/al_tls_write/al_tls_shutdown call,
 * whatever it returned, the caller appends al_tls_pending_out() to its
 * socket write queue: handshake records, alerts (also on AL_ERR, so the
 * peer learns why), TLS 1.3 KeyUpdate replies and application data all
 * come out there. A client calls al_tls_read() once right after
 * al_tls_new() to produce its ClientHello.
 *
 * Versions: TLS 1.2 (RFC 5246) and TLS 1.3 (RFC 8446) only; 1.3 is chosen
 * whenever the peer offers it (RFC 8446 §4.2.1). TLS 1.2 is limited to
 * ECDHE with AES-GCM or ChaCha20-Poly1305 (forward secrecy, AEAD only),
 * compression is off (RFC 5246 §6.2.2; CRIME) and renegotiation is
 * refused with a no_renegotiation alert (RFC 5246 §7.2.2, §7.4.1.1).
 * Session resumption is off: no tickets, no cache, so a context holds no
 * mutable per-connection state and can be shared by every worker thread.
 *
 * ---- STARTTLS-style upgrades: the CVE-2021-23214 / CVE-2021-23222 lesson --
 *
 * PostgreSQL negotiates TLS in band: the client sends SSLRequest (8 bytes),
 * the server answers the single byte 'S', then the TLS handshake starts.
 * Anything received in plaintext between those two points was not sent
 * through TLS and may come from a man in the middle. PostgreSQL's server
 * once parsed such bytes as if they had arrived inside the TLS session
 * (CVE-2021-23214: injected SQL before authentication) and libpq did the
 * same with bytes that followed 'S' (CVE-2021-23222: forged results). The
 * fix on both sides is to refuse the connection when the plaintext buffer
 * is not empty at the moment TLS starts.
 *
 * The engine cannot see the caller's plaintext buffer, so the contract is:
 *  - server side (agent -> airlock): after consuming the 8-byte SSLRequest
 *    and before sending 'S', the caller's read buffer MUST be empty; if it
 *    holds even one more byte, close the connection (SQLSTATE 08P01,
 *    "received unencrypted data after SSL request") without sending 'S'
 *    and without calling al_tls_feed with those bytes;
 *  - client side (airlock -> upstream): after reading the 'S' byte the
 *    caller's read buffer MUST be empty; otherwise close the connection
 *    ("received unencrypted data after SSL response");
 *  - from then on every byte read from the socket goes to al_tls_feed and
 *    nothing else. al_tls_feed is the only way ciphertext enters the
 *    engine, and plaintext only ever leaves it through al_tls_read after
 *    the handshake has completed (al_tls_read never appends plaintext
 *    while it returns AL_AGAIN), so nothing that predates the handshake
 *    can come out of it as application data.
 *
 * Threads: a context is immutable once created and may be used by any
 * number of threads at once. An al_tls_t belongs to one thread at a time.
 * Every call clears and drains OpenSSL's thread-local error queue, so one
 * connection's failure never leaks into the next connection's error.
 */
#ifndef AL_NET_TLS_H
#define AL_NET_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

/* al_tls_read's result when the peer's close_notify alert has arrived
 * (RFC 8446 §6.1, RFC 5246 §7.2.1). Positive: an orderly end, not an
 * error. */
#define AL_TLS_EOF 1

/* al_tls_feed refuses input once this many received bytes are waiting for
 * al_tls_read: a caller that feeds without reading is a bug, and memory a
 * peer controls stays bounded. One socket read plus one partial record
 * (RFC 8446 §5.2: at most 2^14 + 256 bytes) is far below it. */
#define AL_TLS_MAX_UNREAD ((size_t)4 << 20)

/* Same bound for plaintext given to al_tls_write before the handshake
 * completes. */
#define AL_TLS_MAX_QUEUED ((size_t)4 << 20)

typedef struct al_tls_ctx al_tls_ctx_t;
typedef struct al_tls al_tls_t;

/* ---- contexts (startup / config reload; not on the hot path) ------------ */

/* Server context presenting the certificate chain in cert_file (PEM, leaf
 * first, then intermediates) with the private key in key_file (PEM,
 * unencrypted: an encrypted key is refused rather than prompting on a
 * terminal). Returns a new context owned by the caller, or NULL with a
 * NUL-terminated message in err[cap] that names the file at fault, e.g.
 * "private key 'k.pem' does not match certificate 'c.pem'". */
al_tls_ctx_t *al_tls_server_ctx(const char *cert_file, const char *key_file, char *err,
                                size_t cap);

/* Client context. With verify, the peer's chain must lead to a CA in
 * ca_file (PEM bundle), or in the system store when ca_file is NULL, and
 * every connection must name the host to check (al_tls_new): that is
 * PostgreSQL's sslmode=verify-full. Without verify, any certificate is
 * accepted (sslmode=require: encrypted, not authenticated; a man in the
 * middle wins) and ca_file must be NULL. Returns a new context or NULL
 * with a message in err[cap] naming the file at fault. */
al_tls_ctx_t *al_tls_client_ctx(const char *ca_file, bool verify, char *err, size_t cap);

/* Releases the caller's context and clears *ctx; accepts NULL or a pointer
 * to NULL. Connections made from it stay valid (each holds a reference to
 * the underlying OpenSSL context), so a config snapshot may drop its
 * context while its sessions drain. Must not race al_tls_new on the same
 * context. */
void al_tls_ctx_free(al_tls_ctx_t **ctx);

/* ---- connections ----------------------------------------------------------- */

/* A new connection in the role of ctx (server or client). peer_host:
 *  - server context: must be NULL;
 *  - client context: the upstream's host name or IP literal (IPv6 without
 *    brackets), 1 to 253 bytes. A name is sent as SNI (RFC 6066 §3; never an IP) and, with
 *    verify, matched against the certificate's subjectAltName (RFC 6125
 *    §6.4, no partial wildcards); an IP literal is matched against iPAddress
 *    SANs only. Required when the context verifies.
 * The string is copied. Returns NULL on allocation failure or when
 * peer_host breaks the rules above. Free with al_tls_free. */
al_tls_t *al_tls_new(al_tls_ctx_t *ctx, const char *peer_host);

/* Frees the connection (without sending anything) and clears *t; accepts
 * NULL or a pointer to NULL. */
void al_tls_free(al_tls_t **t);

/* Hands n ciphertext bytes read from the socket to the engine (copied; the
 * caller keeps cipher). Call al_tls_read afterwards. Returns AL_OK;
 * AL_OK without keeping the bytes once the peer's close_notify has been
 * read (RFC 8446 §6.1: data after a closure alert MUST be ignored); AL_ERR
 * after a fatal error or when more than AL_TLS_MAX_UNREAD bytes would be
 * waiting (the connection is then failed). */
int al_tls_feed(al_tls_t *t, const uint8_t *cipher, size_t n);

/* Drives the handshake, then decrypts every complete record fed so far and
 * appends the plaintext to plain_out (which the caller owns; it is grown as
 * needed, never reset). Returns:
 *   AL_OK      handshake complete, all complete records consumed; plain_out
 *              grew by zero or more bytes. Feed more when the socket has it.
 *   AL_AGAIN   handshake still in progress and waiting for the peer: flush
 *              al_tls_pending_out, feed more. Nothing was appended.
 *   AL_TLS_EOF the peer sent close_notify; plain_out holds what came before
 *              it. Later calls return AL_TLS_EOF again. Send al_tls_shutdown
 *              and close (under TLS 1.2 the engine has already queued its
 *              own close_notify, RFC 5246 §7.2.1).
 *   AL_ERR     fatal: handshake refused, verification failed, bad record,
 *              out of memory (plain_out->oom). al_tls_error says why; an
 *              alert for the peer may be in al_tls_pending_out. Every later
 *              call returns AL_ERR.
 * A TCP EOF before AL_TLS_EOF is a truncation, not an orderly close. */
int al_tls_read(al_tls_t *t, al_buf_t *plain_out);

/* Encrypts n plaintext bytes (copied) into application-data records for
 * al_tls_pending_out; before the handshake completes they are queued and
 * sent as soon as it does. n == 0 is a no-op. Returns AL_OK, or AL_ERR
 * after a fatal error, after al_tls_shutdown, on allocation failure or when
 * the pre-handshake queue would exceed AL_TLS_MAX_QUEUED. */
int al_tls_write(al_tls_t *t, const void *plain, size_t n);

/* Appends all ciphertext waiting for the socket to cipher_out (the caller
 * owns it; grown as needed, never reset) and forgets it. Returns AL_OK
 * (also when nothing was waiting) or AL_ERR when cipher_out cannot grow
 * (cipher_out->oom; the waiting bytes are kept). Works after AL_ERR and
 * AL_TLS_EOF so a final alert can still be sent. */
int al_tls_pending_out(al_tls_t *t, al_buf_t *cipher_out);

/* Queues a close_notify alert (RFC 8446 §6.1, RFC 5246 §7.2.1); later
 * writes fail, reads still work until the peer closes too. Idempotent.
 * Before the handshake has completed there is nothing to protect, nothing
 * is queued and the caller just closes the socket. Returns AL_OK, or
 * AL_ERR after a fatal error. */
int al_tls_shutdown(al_tls_t *t);

/* True once the handshake has completed (and, for a verifying client, the
 * peer's certificate and host name have been verified). */
bool al_tls_handshake_done(const al_tls_t *t);

/* "TLSv1.3" or "TLSv1.2" once the handshake is done, NULL before. Static
 * string. */
const char *al_tls_version(const al_tls_t *t);

/* Why the connection failed, as a short stable string fit for logs and
 * audit records (never contains secrets), e.g. "certificate verify failed:
 * hostname mismatch"; "" while nothing has failed. Owned by t, valid until
 * al_tls_free. */
const char *al_tls_error(const al_tls_t *t);

#endif
