/*
 * tcp_connect.h - the pure rules of an HTTP CONNECT request (RFC 9110
 * §9.3.6): which configured upstream a requested authority names, and the
 * bearer token in Proxy-Authorization.
 *
 * No sockets, loop, globals or allocation: the gateway (tcp_gateway.c) and
 * the unit tests call these directly.
 */
#ifndef AL_PROTO_TCP_CONNECT_H
#define AL_PROTO_TCP_CONNECT_H

#include "core/core.h"

/* The longest host (brackets excluded) the rules accept: RFC 1035 §2.3.4
 * names are at most 253 bytes; an IPv6 literal is shorter. */
#define AL_TCP_HOST_MAX 253

/* An authority split into its parts. host is a view into the input, without
 * the brackets of an IP-literal. */
typedef struct al_tcp_authority {
    al_str_t host;
    bool ip6;  /* host was a bracketed IP-literal */
    int port;  /* 1..65535 */
} al_tcp_authority_t;

/* Splits "host:port" or "[v6]:port" (RFC 9112 §3.2.3 authority-form: the
 * port is required). Returns AL_OK, or AL_ERR for anything else: no port,
 * port 0 or above 65535, an empty or over-long host, an unclosed bracket,
 * text after ']'. The syntax of the host itself is the caller's business
 * (the HTTP parser and the config checker already validated it). */
int al_tcp_authority_split(al_str_t a, al_tcp_authority_t *out);

/* Finds the configured upstream ("host:port" strings, as the config loader
 * validated them) that the requested authority names. Ports compare as
 * numbers; two IP literals compare as addresses (so "[0:0::1]:5432" names
 * "[::1]:5432"); a name compares case-insensitively (RFC 3986 §6.2.2.1),
 * byte for byte otherwise: no resolution, no trailing-dot or percent-decoding
 * equivalence, so anything unusual names nothing. An IPv4 address never
 * names an IPv6 entry or a host name and the other way round.
 * Returns the index into list, or -1 when none matches (or `req` does not
 * split). */
int al_tcp_upstream_match(al_str_t req, const char *const *list, size_t n);

/* Reads `Proxy-Authorization` credentials (RFC 9110 §11.7.2) of the Bearer
 * scheme (RFC 6750 §2.1: "Bearer" 1*SP b64token, scheme case-insensitive per
 * RFC 9110 §11.1). Returns 0 with *tok a view into v; 1 when v holds no
 * bearer credentials (another scheme); -1 when it is a malformed bearer
 * credential. */
int al_tcp_bearer(al_str_t v, al_str_t *tok);

#endif
