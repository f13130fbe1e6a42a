/*
 * server.h — what the API handlers and the transport are given: lw_server,
 * the part of the running server they read (its configuration, the store,
 * the modules, the keys they answer with). serve.c's lw_server owns one and
 * fills it; the event loop thread owns all of it. The handlers reach it as
 * rq->app (rq.h); the transport (http.c, router.c, ws.c, control.c, web.c)
 * takes it from serve.c. What only the owner needs (the server's secret key,
 * the sweeper, the relay, the control socket) stays in lw_server.
 */
#ifndef LW_SERVER_H
#define LW_SERVER_H

#include <stdint.h>

#include "config.h"
#include "crypto.h"
#include "deps.h"
#include "netaddr.h"
#include "rate.h"

typedef struct lw_bus lw_bus;
typedef struct lw_work lw_work;
typedef struct lw_fibers lw_fibers;

typedef struct lw_server {
    lw_config cfg;
    lw_store *store;
    lw_loop *loop;
    uint8_t server_pk[LW_PK_LEN];
    uint8_t hash_key[LW_KEY_LEN]; /* keys the hashes of stored credentials, codes, refs, PINs */
    lw_proxies proxies;           /* --trusted-proxies */
    lw_bus *bus;
    lw_sessions *sessions;
    lw_links *links;
    lw_pins *pins;
    lw_work *work;         /* CPU work off the loop (Ed25519 verifications) */
    lw_fibers *fibers;     /* PostgreSQL: API requests run on fibers (fiber.h); NULL on SQLite */
    lw_rates *rates;       /* the token buckets of the rate limits */
    void *h2o_ctx;         /* h2o_context_t*, for modules that need the loop's timeouts */
    lw_domain_deps domain; /* what the domain modules see (filled by serve.c) */
    char vapid_public[88]; /* LW_VAPID_PUB_B64_LEN: the Web Push applicationServerKey, base64url */
} lw_server;

#endif
