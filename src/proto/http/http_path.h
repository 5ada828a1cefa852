/*
 * http_path.h - canonical form of a request path, for policy matching.
 *
 * Policy and upstream both see the normalized path, so it must have one
 * spelling per resource and be idempotent:
 * normalize(normalize(x)) == normalize(x). The rules, in order:
 *
 *  1. Refused (the caller answers 400) rather than guessed at, with a
 *     stable reason code:
 *       "not_absolute"       the path does not start with '/'
 *       "bad_char"           a byte outside RFC 3986 pchar and '/' (CTL,
 *                            SP, non-ASCII, '?', '#', '[', '"', ...)
 *       "backslash"          '\' (some servers treat it as '/')
 *       "bad_escape"         '%' not followed by two hex digits
 *       "encoded_slash"      %2F: would hide a segment boundary
 *       "encoded_backslash"  %5C
 *       "encoded_nul"        %00
 *       "encoded_ctl"        %01-%1F, %7F
 *       "encoded_semicolon"  %3B: ';' has a meaning here (rule 3)
 *       "too_long"           the result does not fit in cap
 *  2. Percent-escapes of unreserved characters (ALPHA DIGIT - . _ ~) are
 *     decoded (RFC 3986 §6.2.2.2); the hex of every other escape is
 *     uppercased (§6.2.2.1). Nothing else is decoded, so "%25" stays "%25"
 *     and a second pass decodes nothing new.
 *  3. Path parameters are stripped: in each segment, ';' and everything up
 *     to the next '/' is removed ("/admin;x" -> "/admin",
 *     "/..;/admin" -> "/admin"), as Tomcat and Spring do before routing.
 *     The stripped bytes are still checked by rule 1.
 *  4. Dot-segments are removed (RFC 3986 §5.2.4) after decoding, so
 *     "/%2e%2e/admin" == "/../admin" == "/admin"; a path that climbs above
 *     the root stays at the root. A final "." or ".." leaves a trailing
 *     slash ("/a/b/.." -> "/a/"), as §5.2.4 does.
 *  5. Empty segments are dropped ("//admin" -> "/admin"); a trailing slash
 *     is kept ("/admin/" stays "/admin/"), it names a different resource.
 *  6. Case is kept: "/ADMIN" is not "/admin". Policy matching is
 *     case-sensitive, as path comparison is for HTTP (RFC 3986 §6.2.2.1).
 */
#ifndef AL_PROTO_HTTP_PATH_H
#define AL_PROTO_HTTP_PATH_H

#include "core/core.h"

/* Normalizes the path in[0..len) (no query: see al_http_target_split) into
 * out[0..cap), NUL-terminated; *out_len excludes the NUL. An empty path
 * becomes "/". The result is never longer than len + 1, so cap >= len + 2
 * always suffices. Returns AL_OK, or AL_ERR with *err set to a static
 * reason code (see above) and out holding no meaningful data. */
int al_http_path_normalize(const char *in, size_t len, char *out, size_t cap,
                           size_t *out_len, const char **err);

/* Splits a request-target in origin-form ("/p?q") or absolute-form
 * ("http://h/p?q") into the path (may be empty for "http://h") and the
 * query, without '?', left untouched ({NULL, 0} when there is no '?').
 * Both point into target. Returns AL_OK, or AL_ERR for other forms
 * (authority, asterisk) and for a target holding '#'. */
int al_http_target_split(al_str_t target, al_str_t *path, al_str_t *query);

#endif
