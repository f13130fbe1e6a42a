/*
 * clientaddr.h — the client's address. The peer address, unless the peer is
 * a proxy the operator trusts (--trusted-proxies CIDR,…): then the right-most
 * address of the one forwarding header that proxy writes (--proxy-header:
 * X-Forwarded-For by default, or Forwarded) that is not itself a trusted
 * proxy. Headers from untrusted peers are ignored: anyone can write them; so
 * is the other forwarding header, which the proxy passes through untouched.
 */
#ifndef LW_CLIENTADDR_H
#define LW_CLIENTADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netaddr.h"
#include "store.h"

/* Longest forwarding chain read from a request, all header lines joined.
 * Longer chains keep their right-most hops (the ones our proxies wrote). */
#define LW_FORWARDED_MAX 2048

/* The pure decision: peer is the socket's address; hdr is the value of the
 * header p->header names (NULL/0 when absent; several header lines joined by
 * ", "). Writes the client address in canonical text (IPv4-mapped IPv6 as
 * IPv4). */
void lw_clientaddr_pick(const lw_proxies *p, const char *peer, const char *hdr, size_t hdr_len,
                        char out[LW_IP_MAX]);

/* Joins header lines (in request order) with ", " into buf, which holds cap
 * bytes with the terminator. When they do not fit, the left part is dropped
 * up to a hop boundary: the right-most hops are the ones trusted proxies
 * appended, the left ones are the client's to write. Returns the length. */
size_t lw_clientaddr_join(const char *const *lines, const size_t *lens, size_t n, char *buf, size_t cap);

struct st_h2o_req_t;
/* The client address of an h2o request. */
void lw_clientaddr(const lw_proxies *p, struct st_h2o_req_t *req, char out[LW_IP_MAX]);

#endif
