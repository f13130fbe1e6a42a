/*
 * app.h — the one context every handler receives (its configuration,
 * lw_config, is core's: config.h). The event loop thread owns all of it.
 * Three kinds of threads run beside it and touch nothing here: pin.c's Argon2id workers and work.c's
 * crypto worker (each only its job, handed back to the loop), and relay.c's
 * PostgreSQL listener (only its own connection and queue).
 */
#ifndef LW_APP_H
#define LW_APP_H

#include <stdbool.h>
#include <stdint.h>

#include "clientaddr.h"
#include "config.h"
#include "crypto.h"
#include "deps.h"
#include "events.h"
#include "rate.h"

typedef struct lw_store lw_store;
typedef struct lw_bus lw_bus;
typedef struct lw_sessions lw_sessions;
typedef struct lw_links lw_links;
typedef struct lw_pins lw_pins;
typedef struct lw_work lw_work;
typedef struct lw_sweeper lw_sweeper;
typedef struct lw_control lw_control;
typedef struct lw_geo lw_geo;
typedef struct st_h2o_evloop_t lw_loop;

typedef struct lw_app {
    lw_config cfg;
    lw_store *store;
    lw_loop *loop;
    uint8_t server_pk[LW_PK_LEN];
    uint8_t server_sk[LW_SK_LEN];
    uint8_t hash_key[LW_KEY_LEN]; /* keys the hashes of stored credentials, codes, refs, PINs */
    lw_proxies proxies;           /* --trusted-proxies */
    lw_bus *bus;
    lw_events events; /* the domain publishes through it: the bus (lw_bus_events) */
    lw_sessions *sessions;
    lw_links *links;
    lw_pins *pins;
    lw_work *work; /* CPU work off the loop (Ed25519 verifications) */
    lw_sweeper *sweeper;
    lw_control *control;
    lw_geo *geo;            /* GeoIP databases of cfg.geoip_dir (reloaded on SIGHUP) */
    lw_rates *rates;        /* the token buckets of the rate limits */
    bool shared_store;      /* PostgreSQL: other nodes may change sessions under us */
    struct lw_relay *relay; /* cross-node events (with a shared store) */
    void *h2o_ctx;          /* h2o_context_t*, for modules that need the loop's timeouts */
    lw_domain_deps domain;  /* what the domain modules see of the above (serve.c's domain_sync) */
} lw_app;

/* Starts everything but the event loop: data directory, server key, store,
 * HTTP (listening only when listen), modules, the control socket (only when
 * listen), and a first sweep. On failure the caller still calls lw_app_stop. */
int lw_app_start(lw_app *app, bool listen);
/* Flushes and frees what lw_app_start made (safe on a partial start). */
void lw_app_stop(lw_app *app);

#endif
