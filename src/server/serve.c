/* `linkward serve`: options, data directory, keys, and the event loop. */
#include "serve.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <h2o.h>
#include <sodium.h>

#include "app.h"
#include "bus.h"
#include "control.h"
#include "geo.h"
#include "ua.h"
#include "http.h"
#include "link.h"
#include "log.h"
#include "lw.h"
#include "pin.h"
#include "session.h"
#include "store.h"
#include "sweep.h"

#define KEY_FILE_HEADER "linkward-server-key-v1\n"

void lw_config_defaults(lw_config *c)
{
    memset(c, 0, sizeof *c);
    lw_strlcpy(c->listen_host, "127.0.0.1", sizeof c->listen_host);
    c->listen_port = 8080;
    c->max_companions = 4;
    c->credential_ttl_ms = 10 * 60 * 1000;
    c->qr_first_ttl_ms = 60 * 1000;
    c->qr_next_ttl_ms = 20 * 1000;
    c->qr_refs = 6;
    c->inactive_ttl_ms = 30LL * 24 * 3600 * 1000;
    c->primary_inactive_ms = 14LL * 24 * 3600 * 1000;
    c->max_age_ms = 0;
    c->history_retention_ms = 90LL * 24 * 3600 * 1000;
    c->sweep_interval_ms = 60 * 1000;
    c->pin_lockout_ms = 60 * 1000;
    c->pin_max_failures = 10;
    c->last_active_write_ms = 60 * 1000;
    c->pin_workers = 1;
    c->far_km = 500;
    c->travel_kmh = 900;
    c->rate_register = (lw_rate_rule){"register", 10.0 / 60, 10};
    c->rate_link = (lw_rate_rule){"link", 30.0 / 60, 30};
    c->rate_scan = (lw_rate_rule){"scan", 30.0 / 60, 30};
    c->rate_code = (lw_rate_rule){"code", 10.0 / 60, 10};
    c->rate_pin = (lw_rate_rule){"pin", 20.0 / 60, 20};
    c->rate_refresh = (lw_rate_rule){"refresh", 12.0 / 60, 12};
    c->max_connections = 16000;
    c->max_connections_per_ip = 256;
    c->max_pending_links_per_ip = 16;
    c->request_timeout_ms = 10000;
}

/* "--rate link=30/m,scan=0" (or "off"): sets the named rules. */
static int parse_rates(lw_config *c, const char *spec)
{
    if (strcmp(spec, "off") == 0) {
        lw_rate_rule *all[] = {&c->rate_register, &c->rate_link, &c->rate_scan, &c->rate_code, &c->rate_pin,
                               &c->rate_refresh};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            all[i]->burst = 0;
        return 0;
    }
    char buf[512];
    if (lw_strlcpy(buf, spec, sizeof buf) != LW_OK)
        return -1;
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (!eq) {
            fprintf(stderr, "linkward serve: --rate wants NAME=N/PERIOD items, not '%s'\n", item);
            return -1;
        }
        *eq = '\0';
        lw_rate_rule *r = strcmp(item, "register") == 0  ? &c->rate_register
                          : strcmp(item, "link") == 0    ? &c->rate_link
                          : strcmp(item, "scan") == 0    ? &c->rate_scan
                          : strcmp(item, "code") == 0    ? &c->rate_code
                          : strcmp(item, "pin") == 0     ? &c->rate_pin
                          : strcmp(item, "refresh") == 0 ? &c->rate_refresh
                                                         : NULL;
        lw_rate_rule parsed;
        if (!r || lw_rate_rule_parse(eq + 1, &parsed) != LW_OK) {
            fprintf(stderr,
                    "linkward serve: --rate: '%s=%s' is not valid (names: register, link, scan, code, pin, "
                    "refresh; values like 30/m, 5/s, 100/h, or 0 to disable)\n",
                    item, eq + 1);
            return -1;
        }
        r->burst = parsed.burst;
        r->per_second = parsed.per_second;
    }
    return 0;
}

static volatile sig_atomic_t stop_requested, reload_requested;

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        reload_requested = 1;
    else
        stop_requested = 1;
}

static void usage(FILE *f)
{
    fputs("usage: linkward serve [--listen HOST:PORT] [--db PATH] [--data-dir DIR] [--public-origin URL]\n"
          "                      [--max-companions N] [--registration open|invite] [--pin-required]\n"
          "                      [--credential-ttl D] [--qr-first-ttl D] [--qr-next-ttl D]\n"
          "                      [--inactive-ttl D] [--primary-inactive D] [--max-age D]\n"
          "                      [--history-retention D] [--sweep-interval D] [--pin-lockout D]\n"
          "                      [--control PATH] [--web-dir DIR] [--geoip-dir DIR] [--trusted-proxies CIDR,...]\n"
          "                      [--far-km 500] [--travel-kmh 900] [--link-policy allow|block-high-risk]\n"
          "                      [--privacy full|country-only] [--rate NAME=N/PERIOD,...|off]\n"
          "                      [--max-connections N] [--max-connections-per-ip N]\n"
          "                      [--max-pending-links-per-ip N] [--request-timeout D]\n"
          "durations D: 250ms, 30s, 10m, 6h, 30d (a bare number is seconds; 0 disables where it makes sense)\n",
          f);
}

/* Reads or creates the server's key (32-byte seed) in the data directory. */
static int load_server_key(lw_app *app, const char *path)
{
    uint8_t seed[32];
    char text[128];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, text, sizeof text - 1);
        close(fd);
        size_t hl = strlen(KEY_FILE_HEADER);
        if (n <= (ssize_t)hl || memcmp(text, KEY_FILE_HEADER, hl) != 0) {
            lw_log_error("serve", "%s is not a Linkward server key file", path);
            return LW_EINVAL;
        }
        text[n] = '\0';
        size_t len = strcspn(text + hl, "\r\n");
        if (lw_b64_decode(seed, sizeof seed, text + hl, len, sizeof seed) != (long)sizeof seed) {
            lw_log_error("serve", "%s is damaged", path);
            return LW_EINVAL;
        }
    } else if (errno == ENOENT) {
        lw_random(seed, sizeof seed);
        char b[lw_b64_enc_len(32)];
        lw_b64_encode(b, seed, sizeof seed);
        int n = snprintf(text, sizeof text, "%s%s\n", KEY_FILE_HEADER, b);
        lw_wipe(b, sizeof b);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, text, (size_t)n) != n || fsync(fd) != 0) {
            lw_log_error("serve", "cannot write %s: %s", path, strerror(errno));
            if (fd >= 0)
                close(fd);
            lw_wipe(text, sizeof text);
            return LW_EIO;
        }
        close(fd);
        lw_log_info("serve", "created a new server key in %s", path);
    } else {
        lw_log_error("serve", "cannot read %s: %s", path, strerror(errno));
        return LW_EIO;
    }
    lw_wipe(text, sizeof text);
    crypto_sign_seed_keypair(app->server_pk, app->server_sk, seed);
    /* A separate key for the hashes of stored secrets, derived from the same seed. */
    static const char label[] = "linkward stored-secret hash key v1";
    lw_keyed_hash(app->hash_key, seed, label, sizeof label - 1);
    lw_wipe(seed, sizeof seed);
    return LW_OK;
}

static int opt_duration(const char *name, const char *v, int64_t *out)
{
    if (lw_duration_parse(v, out) != LW_OK) {
        fprintf(stderr, "linkward serve: %s: not a duration: '%s' (use e.g. 30s, 10m, 6h, 30d)\n", name, v);
        return -1;
    }
    return 0;
}

static int opt_long(const char *name, const char *v, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < min || n > max) {
        fprintf(stderr, "linkward serve: %s must be a whole number from %ld to %ld, not '%s'\n", name, min, max, v);
        return -1;
    }
    *out = n;
    return 0;
}

static int mkdir_p(const char *dir)
{
    char tmp[LW_PATH_MAX];
    if (lw_strlcpy(tmp, dir, sizeof tmp) != LW_OK)
        return -1;
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    return mkdir(tmp, 0700) == 0 || errno == EEXIST ? 0 : -1;
}

static int parse_options(lw_config *c, int argc, char **argv)
{
    enum {
        O_LISTEN = 256, O_DB, O_DATA, O_ORIGIN, O_MAXC, O_REG, O_PINREQ, O_CREDTTL, O_QR1, O_QRN, O_INACT,
        O_PRIMINACT, O_MAXAGE, O_RETAIN, O_SWEEP, O_PINLOCK, O_CONTROL, O_WEB, O_GEOIP, O_PROXIES, O_HELP,
        O_FARKM, O_TRAVEL, O_POLICY, O_PRIVACY, O_RATE, O_MAXCONN, O_MAXCONNIP, O_MAXPEND, O_REQTIMEOUT,
    };
    static const struct option opts[] = {
        {"listen", required_argument, 0, O_LISTEN},
        {"db", required_argument, 0, O_DB},
        {"data-dir", required_argument, 0, O_DATA},
        {"public-origin", required_argument, 0, O_ORIGIN},
        {"max-companions", required_argument, 0, O_MAXC},
        {"registration", required_argument, 0, O_REG},
        {"pin-required", no_argument, 0, O_PINREQ},
        {"credential-ttl", required_argument, 0, O_CREDTTL},
        {"qr-first-ttl", required_argument, 0, O_QR1},
        {"qr-next-ttl", required_argument, 0, O_QRN},
        {"inactive-ttl", required_argument, 0, O_INACT},
        {"primary-inactive", required_argument, 0, O_PRIMINACT},
        {"max-age", required_argument, 0, O_MAXAGE},
        {"history-retention", required_argument, 0, O_RETAIN},
        {"sweep-interval", required_argument, 0, O_SWEEP},
        {"pin-lockout", required_argument, 0, O_PINLOCK},
        {"control", required_argument, 0, O_CONTROL},
        {"web-dir", required_argument, 0, O_WEB},
        {"geoip-dir", required_argument, 0, O_GEOIP},
        {"trusted-proxies", required_argument, 0, O_PROXIES},
        {"far-km", required_argument, 0, O_FARKM},
        {"travel-kmh", required_argument, 0, O_TRAVEL},
        {"link-policy", required_argument, 0, O_POLICY},
        {"privacy", required_argument, 0, O_PRIVACY},
        {"rate", required_argument, 0, O_RATE},
        {"max-connections", required_argument, 0, O_MAXCONN},
        {"max-connections-per-ip", required_argument, 0, O_MAXCONNIP},
        {"max-pending-links-per-ip", required_argument, 0, O_MAXPEND},
        {"request-timeout", required_argument, 0, O_REQTIMEOUT},
        {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0},
    };
    optind = 1;
    opterr = 0;
    int o;
    long n;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        const char *v = optarg;
        switch (o) {
        case O_LISTEN:
            if (lw_http_parse_listen(v, c->listen_host, sizeof c->listen_host, &c->listen_port) != LW_OK) {
                fprintf(stderr, "linkward serve: --listen wants HOST:PORT or [V6]:PORT, not '%s'\n", v);
                return 1;
            }
            break;
        case O_DB:
            if (lw_strlcpy(c->db, v, sizeof c->db) != LW_OK)
                goto toolong;
            break;
        case O_DATA:
            if (lw_strlcpy(c->data_dir, v, sizeof c->data_dir) != LW_OK)
                goto toolong;
            break;
        case O_ORIGIN:
            if (lw_strlcpy(c->public_origin, v, sizeof c->public_origin) != LW_OK ||
                (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0) ||
                strchr(v + 8, '/')) {
                fprintf(stderr, "linkward serve: --public-origin wants an origin like https://example.org\n");
                return 1;
            }
            break;
        case O_MAXC:
            if (opt_long("--max-companions", v, 0, 1000000, &n) != 0)
                return 1;
            c->max_companions = n;
            break;
        case O_REG:
            if (strcmp(v, "open") == 0)
                c->registration_invite = false;
            else if (strcmp(v, "invite") == 0)
                c->registration_invite = true;
            else {
                fprintf(stderr, "linkward serve: --registration is 'open' or 'invite', not '%s'\n", v);
                return 1;
            }
            break;
        case O_PINREQ:
            c->pin_required = true;
            break;
        case O_CREDTTL:
            if (opt_duration("--credential-ttl", v, &c->credential_ttl_ms) != 0)
                return 1;
            break;
        case O_QR1:
            if (opt_duration("--qr-first-ttl", v, &c->qr_first_ttl_ms) != 0)
                return 1;
            break;
        case O_QRN:
            if (opt_duration("--qr-next-ttl", v, &c->qr_next_ttl_ms) != 0)
                return 1;
            break;
        case O_INACT:
            if (opt_duration("--inactive-ttl", v, &c->inactive_ttl_ms) != 0)
                return 1;
            break;
        case O_PRIMINACT:
            if (opt_duration("--primary-inactive", v, &c->primary_inactive_ms) != 0)
                return 1;
            break;
        case O_MAXAGE:
            if (opt_duration("--max-age", v, &c->max_age_ms) != 0)
                return 1;
            break;
        case O_RETAIN:
            if (opt_duration("--history-retention", v, &c->history_retention_ms) != 0)
                return 1;
            break;
        case O_SWEEP:
            if (opt_duration("--sweep-interval", v, &c->sweep_interval_ms) != 0)
                return 1;
            break;
        case O_PINLOCK:
            if (opt_duration("--pin-lockout", v, &c->pin_lockout_ms) != 0)
                return 1;
            break;
        case O_CONTROL:
            if (lw_strlcpy(c->control_path, v, sizeof c->control_path) != LW_OK)
                goto toolong;
            break;
        case O_WEB:
            if (lw_strlcpy(c->web_dir, v, sizeof c->web_dir) != LW_OK)
                goto toolong;
            break;
        case O_GEOIP:
            if (lw_strlcpy(c->geoip_dir, v, sizeof c->geoip_dir) != LW_OK)
                goto toolong;
            break;
        case O_PROXIES:
            if (lw_strlcpy(c->trusted_proxies, v, sizeof c->trusted_proxies) != LW_OK)
                goto toolong;
            break;
        case O_FARKM:
            if (opt_long("--far-km", v, 1, 40000, &n) != 0)
                return 1;
            c->far_km = (double)n;
            break;
        case O_TRAVEL:
            if (opt_long("--travel-kmh", v, 1, 100000, &n) != 0)
                return 1;
            c->travel_kmh = (double)n;
            break;
        case O_POLICY:
            if (strcmp(v, "allow") == 0)
                c->block_high_risk = false;
            else if (strcmp(v, "block-high-risk") == 0)
                c->block_high_risk = true;
            else {
                fprintf(stderr, "linkward serve: --link-policy is 'allow' or 'block-high-risk', not '%s'\n", v);
                return 1;
            }
            break;
        case O_PRIVACY:
            if (strcmp(v, "full") == 0)
                c->privacy_country_only = false;
            else if (strcmp(v, "country-only") == 0)
                c->privacy_country_only = true;
            else {
                fprintf(stderr, "linkward serve: --privacy is 'full' or 'country-only', not '%s'\n", v);
                return 1;
            }
            break;
        case O_RATE:
            if (parse_rates(c, v) != 0)
                return 1;
            break;
        case O_MAXCONN:
            if (opt_long("--max-connections", v, 1, 10000000, &n) != 0)
                return 1;
            c->max_connections = n;
            break;
        case O_MAXCONNIP:
            if (opt_long("--max-connections-per-ip", v, 1, 10000000, &n) != 0)
                return 1;
            c->max_connections_per_ip = n;
            break;
        case O_MAXPEND:
            if (opt_long("--max-pending-links-per-ip", v, 1, 1000000, &n) != 0)
                return 1;
            c->max_pending_links_per_ip = n;
            break;
        case O_REQTIMEOUT:
            if (opt_duration("--request-timeout", v, &c->request_timeout_ms) != 0)
                return 1;
            break;
        case O_HELP:
            usage(stdout);
            return -1;
        default:
            fprintf(stderr, "linkward serve: unknown or incomplete option '%s'\n", argv[optind - 1]);
            usage(stderr);
            return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "linkward serve: unexpected argument '%s'\n", argv[optind]);
        return 1;
    }
    if (c->credential_ttl_ms < 1000 || c->qr_first_ttl_ms < 100 || c->qr_next_ttl_ms < 100 ||
        c->sweep_interval_ms < 50) {
        fprintf(stderr, "linkward serve: --credential-ttl must be at least 1s, QR TTLs at least 100ms, "
                        "--sweep-interval at least 50ms\n");
        return 1;
    }
    if (c->inactive_ttl_ms <= 0) {
        fprintf(stderr, "linkward serve: --inactive-ttl must be positive\n");
        return 1;
    }
    /* Derived paths: the data directory holds everything unless told otherwise. */
    if (!c->data_dir[0]) {
        if (c->db[0]) {
            char tmp[LW_PATH_MAX];
            lw_strlcpy(tmp, c->db, sizeof tmp);
            char *slash = strrchr(tmp, '/');
            if (slash == tmp)
                slash[1] = '\0';
            else if (slash)
                *slash = '\0';
            else
                lw_strlcpy(tmp, ".", sizeof tmp);
            lw_strlcpy(c->data_dir, tmp, sizeof c->data_dir);
        } else {
            lw_strlcpy(c->data_dir, "var", sizeof c->data_dir);
        }
    }
    if (!c->db[0] && snprintf(c->db, sizeof c->db, "%s/linkward.db", c->data_dir) >= (int)sizeof c->db)
        goto toolong;
    if (!c->geoip_dir[0] &&
        snprintf(c->geoip_dir, sizeof c->geoip_dir, "%s/geoip", c->data_dir) >= (int)sizeof c->geoip_dir)
        goto toolong;
    if (!c->control_path[0] &&
        snprintf(c->control_path, sizeof c->control_path, "%s/control.sock", c->data_dir) >=
            (int)sizeof c->control_path)
        goto toolong;
    return 0;
toolong:
    fprintf(stderr, "linkward serve: a path or value is too long\n");
    return 1;
}

int lw_app_start(lw_app *app, bool listen)
{
    const char *bad = NULL;
    if (lw_proxies_parse(&app->proxies, app->cfg.trusted_proxies, &bad) != LW_OK) {
        fprintf(stderr, "linkward serve: --trusted-proxies: '%.*s' is not an address or CIDR (up to %d entries)\n",
                (int)strcspn(bad, ", "), bad, LW_PROXIES_MAX);
        return LW_EINVAL;
    }
    if (lw_crypto_init() != LW_OK) {
        fprintf(stderr, "linkward serve: cannot initialise libsodium\n");
        return LW_ECRYPTO;
    }
    if (mkdir_p(app->cfg.data_dir) != 0) {
        fprintf(stderr, "linkward serve: cannot create data directory %s: %s\n", app->cfg.data_dir, strerror(errno));
        return LW_EIO;
    }
    char keypath[LW_PATH_MAX + 16];
    snprintf(keypath, sizeof keypath, "%s/server.key", app->cfg.data_dir);
    if (load_server_key(app, keypath) != LW_OK)
        return LW_EIO;
    if (lw_store_open(&app->store, app->cfg.db) != LW_OK) {
        fprintf(stderr, "linkward serve: cannot open the store at %s\n", app->cfg.db);
        return LW_ESTORE;
    }
    app->geo = lw_geo_open(app->cfg.geoip_dir);
    if (!app->geo)
        return LW_ENOMEM;
    lw_log_info("geo", "%zu GeoIP database%s from %s", lw_geo_count(app->geo), lw_geo_count(app->geo) == 1 ? "" : "s",
                app->cfg.geoip_dir);
    /* Compile the uap-core expressions now, not on the first request (~0.2 s). */
    if (lw_ua_init(NULL) != LW_OK)
        lw_log_warn("ua", "uap-core regexes not loaded (%s); using the small built-in User-Agent matcher",
                    lw_ua_error());
    lw_http_init(app);
    if (listen && lw_http_listen(app) != LW_OK)
        return LW_EIO;
    if (!app->cfg.public_origin[0]) {
        const char *h = app->cfg.listen_host;
        bool v6 = strchr(h, ':') != NULL;
        int n = snprintf(app->cfg.public_origin, sizeof app->cfg.public_origin, "http://%s%s%s:%d", v6 ? "[" : "",
                         h, v6 ? "]" : "", app->cfg.listen_port);
        if (n < 0 || n >= (int)sizeof app->cfg.public_origin) {
            lw_log_error("serve", "the listen host is too long for an origin; set --public-origin");
            return LW_EINVAL;
        }
    }
    app->bus = lw_bus_new();
    app->rates = lw_rates_new(LW_RATE_KEYS_MAX);
    app->sessions = lw_sessions_new(app);
    app->links = lw_links_new(app);
    app->pins = lw_pins_new(app, app->h2o_ctx, app->cfg.pin_workers);
    app->sweeper = lw_sweeper_new(app);
    if (!app->bus || !app->rates || !app->sessions || !app->links || !app->pins || !app->sweeper) {
        lw_log_error("serve", "out of memory at start-up");
        return LW_ENOMEM;
    }
    if (listen && !(app->control = lw_control_start(app, app->cfg.control_path)))
        return LW_EIO;
    lw_sweep_run(app, lw_now_ms(), NULL, NULL); /* what fell due while we were down */
    return LW_OK;
}

void lw_app_stop(lw_app *app)
{
    if (app->sessions)
        lw_sessions_flush(app->sessions, true);
    lw_control_stop(app->control);
    lw_sweeper_free(app->sweeper);
    lw_pins_free(app->pins);
    lw_links_free(app->links);
    lw_sessions_free(app->sessions);
    lw_bus_free(app->bus);
    lw_rates_free(app->rates);
    if (app->store)
        lw_store_close(app->store);
    lw_geo_close(app->geo);
    lw_ua_free();
    lw_wipe(app->server_sk, sizeof app->server_sk);
    lw_wipe(app->hash_key, sizeof app->hash_key);
}

int lw_serve_main(int argc, char **argv)
{
    lw_app *app = calloc(1, sizeof *app);
    int exit_code = 1;
    if (!app)
        return 1;
    lw_config_defaults(&app->cfg);
    int rc = parse_options(&app->cfg, argc, argv);
    if (rc != 0) {
        free(app);
        return rc < 0 ? 0 : 1;
    }
    signal(SIGPIPE, SIG_IGN);
    if (lw_app_start(app, true) != LW_OK)
        goto out;

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    lw_log_info("serve", "listening on %s:%d (origin %s, data in %s)", app->cfg.listen_host, app->cfg.listen_port,
                app->cfg.public_origin, app->cfg.data_dir);
    printf("linkward listening on http://%s%s%s:%d\n", strchr(app->cfg.listen_host, ':') ? "[" : "",
           app->cfg.listen_host, strchr(app->cfg.listen_host, ':') ? "]" : "", app->cfg.listen_port);
    fflush(stdout);

    while (!stop_requested) {
        h2o_evloop_run(app->loop, 1000);
        if (reload_requested) {
            /* Databases are swapped between requests: nothing in flight sees a half state. */
            reload_requested = 0;
            int grc = lw_geo_reload(&app->geo, app->cfg.geoip_dir);
            if (grc == LW_OK)
                lw_log_info("geo", "reloaded %zu GeoIP databases", lw_geo_count(app->geo));
            else
                lw_log_warn("geo", "GeoIP reload failed (%s); keeping the databases in use", lw_strerror(grc));
        }
    }

    lw_log_info("serve", "shutting down");
    lw_http_stop(app);
    exit_code = 0;
out:
    lw_app_stop(app);
    lw_wipe(app, sizeof *app);
    free(app);
    return exit_code;
}
