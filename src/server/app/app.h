/*
 * app.h — the owner of the running server: lw_app holds the lw_server the
 * handlers and the transport receive (server.h) and what only serve.c uses,
 * and fills the domain's deps (deps.h). The event loop thread owns all of it.
 * Web Push's sender thread (push.c: its queue and curl handle only) and
 * four kinds of threads run beside it and touch nothing here: pin.c's
 * Argon2id workers and work.c's crypto worker (each only its job, handed back
 * to the loop), with PostgreSQL the store workers of fiber.c (only the store
 * operation of a request waiting on a fiber), and relay.c's PostgreSQL
 * listener (only its own connection and queue).
 */
#ifndef LW_APP_H
#define LW_APP_H

#include <stdbool.h>
#include <stdint.h>

#include "crypto.h"
#include "events.h"
#include "server.h"

typedef struct lw_sweeper lw_sweeper;
typedef struct lw_control lw_control;
typedef struct lw_geo lw_geo;

typedef struct lw_app {
    lw_server srv;                /* what the handlers and the transport see */
    uint8_t server_sk[LW_SK_LEN]; /* the domain signs with it (srv.domain.server_sk) */
    lw_events events;             /* the domain publishes through it: the bus (lw_bus_events) */
    lw_sweeper *sweeper;
    lw_control *control;
    lw_geo *geo;            /* GeoIP databases of cfg.geoip_dir (reloaded on SIGHUP) */
    bool shared_store;      /* PostgreSQL: other nodes may change sessions under us */
    struct lw_relay *relay; /* cross-node events (with a shared store) */
    struct lw_push *push;   /* Web Push for alerts (push.h); NULL when it could not start */
} lw_app;

/* Starts everything but the event loop: data directory, server key, store,
 * HTTP (listening only when listen), modules, the control socket (only when
 * listen), and a first sweep. On failure the caller still calls lw_app_stop. */
int lw_app_start(lw_app *app, bool listen);
/* Flushes and frees what lw_app_start made (safe on a partial start). */
void lw_app_stop(lw_app *app);

#endif
