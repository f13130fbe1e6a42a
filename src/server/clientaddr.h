/*
 * clientaddr.h — the client's address. The peer address, unless the peer is
 * a proxy the operator trusts (--trusted-proxies CIDR,…): then the right-most
 * address of Forwarded / X-Forwarded-For that is not itself a trusted proxy.
 * Headers from untrusted peers are ignored: anyone can write them.
 */
#ifndef LW_CLIENTADDR_H
#define LW_CLIENTADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define LW_PROXIES_MAX 32

typedef struct lw_cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    int bits;
} lw_cidr;

typedef struct lw_proxies {
    lw_cidr nets[LW_PROXIES_MAX];
    size_t n;
} lw_proxies;

/* Parses "10.0.0.0/8,::1,192.168.1.7" (a bare address is a /32 or /128).
 * LW_EINVAL with *bad pointing at the offending item. "" gives an empty list. */
int lw_proxies_parse(lw_proxies *p, const char *list, const char **bad);
bool lw_proxies_contains(const lw_proxies *p, const char *ip_text);

/* The pure decision: peer is the socket's address; xff and forwarded are the
 * header values (NULL/0 when absent; several header lines joined by ", ").
 * Writes the client address in canonical text (IPv4-mapped IPv6 as IPv4). */
void lw_clientaddr_pick(const lw_proxies *p, const char *peer, const char *xff, size_t xff_len,
                        const char *forwarded, size_t fwd_len, char out[LW_IP_MAX]);

struct st_h2o_req_t;
/* The client address of an h2o request. */
void lw_clientaddr(const lw_proxies *p, struct st_h2o_req_t *req, char out[LW_IP_MAX]);

#endif
