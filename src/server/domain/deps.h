/*
 * deps.h — what a domain module is given: the store, the events sink, the
 * configuration, the keys and the loop, each borrowed from the owner (serve.c
 * fills lw_app's `domain` from its own fields; a unit test fills one on the
 * stack). A module keeps the pointer, so the struct outlives every module made
 * with it, and a field the owner replaces (the GeoIP databases on SIGHUP) is
 * seen by every module at once. The domain so never sees lw_app, the bus or
 * the transport; a field a module does not read may stay NULL.
 */
#ifndef LW_DEPS_H
#define LW_DEPS_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "crypto.h"
#include "events.h"
#include "rate.h"

typedef struct lw_store lw_store;
typedef struct lw_sessions lw_sessions;
typedef struct lw_links lw_links;
typedef struct lw_pins lw_pins;
typedef struct lw_sweeper lw_sweeper;
typedef struct lw_geo lw_geo;
typedef struct st_h2o_evloop_t lw_loop;
typedef struct lw_fibers lw_fibers;
struct lw_alert;

/* Told of every alert once it is stored and published (alert.c), on the loop
 * thread where the alert was raised (on its fiber with PostgreSQL, so it may
 * call the store): the app hands it to Web Push (app/push.c). The alert is
 * borrowed. */
typedef struct lw_alert_hook {
    void *ctx;
    void (*raised)(void *ctx, const struct lw_alert *a);
} lw_alert_hook;

typedef struct lw_domain_deps {
    lw_store *store;
    const lw_events *events;  /* where events go (the bus, or a test's sink) */
    const lw_config *cfg;     /* read on every use: `config set` changes it */
    const uint8_t *hash_key;  /* LW_KEY_LEN: keys the hashes of credentials, codes, refs, PINs */
    const uint8_t *server_sk; /* LW_SK_LEN: signs link payloads (link.c) */
    const uint8_t *server_pk; /* LW_PK_LEN: verifies a scanned payload another node signed (link.c) */
    lw_loop *loop;            /* timers (link.c, session.c, sweep.c); NULL in tests without one */
    lw_geo *geo;              /* place.c; NULL: places are unknown */
    lw_rates *rates;          /* sweep.c prunes them; may be NULL */
    lw_sessions *sessions;    /* sweep.c flushes and ends through it; link.c issues through it */
    lw_fibers *fibers;        /* PostgreSQL: timers\' store work runs on a fiber (sweep.c); NULL: inline */
    bool shared_store;        /* PostgreSQL: other nodes may change sessions under us */
    lw_alert_hook on_alert;   /* alert.c; zero: nobody else hears of alerts */
} lw_domain_deps;

#endif
