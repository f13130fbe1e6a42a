/*
 * config.h — every `linkward serve` option, from three sources with one
 * definition: a config file (--config FILE, "name = value" lines), the
 * environment (LINKWARD_NAME, e.g. LINKWARD_LISTEN, LINKWARD_RATE), and the
 * command line (--name value), later ones overriding earlier ones. Errors
 * name where the value came from ("linkward.conf:12: --max-age: not a
 * duration: 'soon'").
 */
#ifndef LW_CONFIG_H
#define LW_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

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
    lw_rate_rule rate_recover;  /* recovery attempts per handle and per address */
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
    /* Web Push (app/push.c) */
    char push_contact[257];   /* the VAPID "sub", mailto: or https: ("": a default, serve.c) */
    bool push_allow_loopback; /* tests only: push endpoints on http://127.0.0.1 and http://[::1] */
    char log_level[16];
} lw_config;

/* Fills the defaults of PRODUCT.md (4 companions, 10-minute credentials, 60 s +
 * 5 x 20 s refs, 30-day inactivity, 14-day primary inactivity, 90-day history). */
void lw_config_defaults(lw_config *c);

/* Parses everything into c (which has its defaults already). Returns 0 to
 * run, 1 on an error (printed to stderr), -1 when done (e.g. --help). */
int lw_config_load(lw_config *c, int argc, char **argv);

/* Sets one option by its long name; msg gets the reason on failure. 0 or -1. */
int lw_config_set(lw_config *c, const char *name, const char *value, char *msg, size_t cap);

/* Fills the paths derived from the data directory; 0 or -1 (msg). */
int lw_config_finish(lw_config *c, char *msg, size_t cap);

/* Everything the server would refuse at start, checked without starting it
 * (--check-config runs it, and so does serve before binding): trusted-proxy
 * CIDRs, that the listen addresses resolve, the --min-client-version format,
 * that --user exists, that the TLS certificate and key load and match, and
 * no plain HTTP off loopback without --allow-plain-http. Each problem is
 * printed to stderr prefixed with where the option was set (FILE:LINE,
 * LINKWARD_NAME or --name). Returns the number of problems. Call after
 * lw_config_load (it reads the sources that recorded). */
int lw_config_check(const lw_config *c);

/* True for the loopback hosts plain HTTP may listen on without --allow-plain-http. */
bool lw_config_loopback(const char *host);

void lw_config_usage(FILE *f);

#endif
