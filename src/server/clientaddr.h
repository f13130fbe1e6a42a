/*
 * clientaddr.h — the client's address: the peer address (the trusted-proxy
 * logic of --trusted-proxies lands here later without changing callers).
 */
#ifndef LW_CLIENTADDR_H
#define LW_CLIENTADDR_H

#include "store.h"

struct st_h2o_req_t;

/* Writes the client's address in text form ("127.0.0.1", "::1"); IPv4-mapped
 * IPv6 addresses are shown as IPv4. "" if unknown. */
void lw_clientaddr(struct st_h2o_req_t *req, char out[LW_IP_MAX]);

#endif
