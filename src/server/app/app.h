/*
 * app.h — the server's configuration and the one context every handler
 * receives. The event loop thread owns all of it. Three kinds of threads run
 * beside it and touch nothing here: pin.c's Argon2id workers and work.c's
 * crypto worker (each only its job, handed back to the loop), and relay.c's
 * PostgreSQL listener (only its own connection and queue).
 */
#ifndef LW_APP_H
#define LW_APP_H

#include <stdbool.h>
#include <stdint.h>

#include "crypto.h"
#include "clientaddr.h"
#include "payload.h"
#include "rate.h"

#define LW_PATH_MAX 1024

typedef struct lw_config {
    char listen_host[256];
    int listen_port;
    char data_dir[LW_PATH_MAX];
    char db[LW_PATH_MAX];
    char db_listen[LW_PATH_MAX]; /* PostgreSQL: the relay's LISTEN connection (default: db) */
    char public_origin[LW_ORIGIN_MAX];
    char control_path[LW_PATH_MAX];
    char web_dir[LW_PATH_MAX];
    char geoip_dir[LW_PATH_MAX];
    char trusted_proxies[1024];
    bool proxy_header_forwarded; /* --proxy-header forwarded (else X-Forwarded-For) */
    long max_companions;
    bool registration_invite;
    bool pin_required;
    int64_t credential_ttl_ms;
    int64_t qr_first_ttl_ms;
    int64_t qr_next_ttl_ms;
    int qr_refs;
    int64_t inactive_ttl_ms;
    int64_t primary_inactive_ms;
    int64_t max_age_ms;
    int64_t ephemeral_idle_ms; /* --browser-session-idle */
    int64_t history_retention_ms;
    int64_t sweep_interval_ms;
    int64_t pin_lockout_ms;
    int pin_max_failures;
    int64_t last_active_write_ms; /* coalescing window for last-active writes */
    int pin_workers;
    double far_km;                  /* link.far_from_primary beyond this distance */
    double travel_kmh;              /* session.impossible_travel above this speed */
    int64_t move_alert_interval_ms; /* one move alert per device and kind per this (0: every one) */
    bool block_high_risk;           /* --link-policy block-high-risk */
    bool privacy_country_only;      /* ended records keep only the country, no addresses */
    /* Abuse limits (--rate NAME=N/PERIOD,…; --max-connections; …). */
    lw_rate_rule rate_register; /* registrations per address */
    lw_rate_rule rate_link;     /* link requests opened per address */
    lw_rate_rule rate_scan;     /* scans per account and per address */
    lw_rate_rule rate_code;     /* pairing-code attempts per address and per account */
    lw_rate_rule rate_pin;      /* PIN checks per account (on top of the lockout) */
    lw_rate_rule rate_refresh;  /* credential refreshes per device */
    lw_rate_rule rate_csp;      /* CSP violation reports per address */
    long rate_table_keys;       /* buckets each (rule, scope) table keeps; the least recently used go */
    int rate_ipv6_prefix;       /* IPv6 clients are counted by this network prefix */
    long max_connections;       /* open HTTP/WebSocket connections in total */
    long max_connections_per_ip;
    long max_pending_links_per_ip;
    int64_t request_timeout_ms; /* to read a whole request (headers and body); also keep-alive idle */
    /* Operations */
    char config_file[LW_PATH_MAX];
    char tls_cert[LW_PATH_MAX], tls_key[LW_PATH_MAX];
    bool allow_plain_http;       /* plain HTTP off loopback (behind a TLS-terminating proxy) */
    char user[64];               /* drop to this user after binding */
    bool allow_root;             /* keep running as root (containers, tests) */
    bool accept_new_server_key;  /* --accept-new-server-key: replace the key the store's accounts depend on */
    char metrics_listen[300];    /* separate HOST:PORT for /metrics; "" = on the main listener */
    char min_client_version[32]; /* older clients get 426 */
    int64_t shutdown_timeout_ms; /* how long SIGTERM waits for requests in flight */
    int64_t ws_ping_ms;          /* WebSocket ping interval; silent for 2.5x that = gone */
    bool check_config;           /* --check-config: validate and exit */
    char log_level[16];
} lw_config;

/* Fills the defaults of PRODUCT.md (4 companions, 10-minute credentials, 60 s +
 * 5 x 20 s refs, 30-day inactivity, 14-day primary inactivity, 90-day history). */
void lw_config_defaults(lw_config *c);

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
} lw_app;

/* Starts everything but the event loop: data directory, server key, store,
 * HTTP (listening only when listen), modules, the control socket (only when
 * listen), and a first sweep. On failure the caller still calls lw_app_stop. */
int lw_app_start(lw_app *app, bool listen);
/* Flushes and frees what lw_app_start made (safe on a partial start). */
void lw_app_stop(lw_app *app);

#endif
