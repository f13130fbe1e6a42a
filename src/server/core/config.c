#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "lw.h"
#include "netaddr.h"

#define CONFIG_LINE_MAX 1024
#define CONFIG_LINES_MAX 2000
/* "X.Y.Z": each part a number of at most this many digits. */
#define VERSION_PART_DIGITS_MAX 6

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
    c->ephemeral_idle_ms = 3600LL * 1000;
    c->history_retention_ms = 90LL * 24 * 3600 * 1000;
    c->sweep_interval_ms = 60 * 1000;
    c->pin_lockout_ms = 60 * 1000;
    c->pin_max_failures = 10;
    c->last_active_write_ms = 60 * 1000;
    c->pin_workers = 1;
    c->far_km = 500;
    c->travel_kmh = 900;
    c->move_alert_interval_ms = 10 * 60 * 1000;
    c->rate_register = (lw_rate_rule){"register", 10.0 / 60, 10};
    c->rate_link = (lw_rate_rule){"link", 30.0 / 60, 30};
    c->rate_scan = (lw_rate_rule){"scan", 30.0 / 60, 30};
    c->rate_code = (lw_rate_rule){"code", 10.0 / 60, 10};
    c->rate_pin = (lw_rate_rule){"pin", 20.0 / 60, 20};
    /* A recovery key is 160 bits: the limit is for the noise, not the odds. */
    c->rate_recover = (lw_rate_rule){"recover", 10.0 / 3600, 10};
    c->rate_refresh = (lw_rate_rule){"refresh", 12.0 / 60, 12};
    c->rate_csp = (lw_rate_rule){"csp", 30.0 / 60, 30};
    c->rate_table_keys = LW_RATE_TABLE_KEYS_DEFAULT;
    c->rate_ipv6_prefix = LW_RATE_IPV6_PREFIX_DEFAULT;
    c->max_connections = 16000;
    c->max_connections_per_ip = 256;
    c->max_pending_links_per_ip = 16;
    c->request_timeout_ms = 10000;
    c->shutdown_timeout_ms = 10000;
    c->ws_ping_ms = 30000;
    lw_strlcpy(c->log_level, "info", sizeof c->log_level);
}

typedef enum { K_STR, K_PATH, K_DUR, K_LONG, K_INT, K_DOUBLE, K_FLAG, K_SPECIAL } kind;

typedef struct opt {
    const char *name;
    kind k;
    size_t off, size; /* field and its size (strings) */
    long min, max;    /* K_LONG / K_INT / K_DOUBLE */
    const char *help;
} opt;

#define F(field) offsetof(lw_config, field), sizeof(((lw_config *)0)->field)

/* Options only the command line may give: what to read, what to do this
 * once. --accept-new-server-key ends every session; kept in a file or the
 * environment it would silently accept the next lost key too. */
static bool command_line_only(const char *name)
{
    return strcmp(name, "config") == 0 || strcmp(name, "check-config") == 0 ||
           strcmp(name, "accept-new-server-key") == 0;
}

static const opt opts[] = {
    {"config", K_SPECIAL, 0, 0, 0, 0, "FILE  read options from FILE first (name = value lines)"},
    {"check-config", K_FLAG, F(check_config), 0, 0, "      validate the configuration and exit"},
    {"listen", K_SPECIAL, 0, 0, 0, 0, "HOST:PORT  where to listen (port 0 picks one)"},
    {"db", K_PATH, F(db), 0, 0, "PATH  the SQLite file (or postgres://…)"},
    {"db-listen", K_PATH, F(db_listen), 0, 0,
     "URL  PostgreSQL for the cross-node LISTEN, session mode (--db)"},
    {"data-dir", K_PATH, F(data_dir), 0, 0, "DIR  database, server key, control socket (default ./var)"},
    {"public-origin", K_SPECIAL, 0, 0, 0, 0, "URL  the origin put in QR codes and checked in Origin"},
    {"max-companions", K_LONG, F(max_companions), 0, 1000000, "N  linked devices per account (4)"},
    {"registration", K_SPECIAL, 0, 0, 0, 0, "open|invite"},
    {"pin-required", K_FLAG, F(pin_required), 0, 0, "      every account must set a two-step PIN"},
    {"credential-ttl", K_DUR, F(credential_ttl_ms), 0, 0, "D  lifetime of a device credential (10m)"},
    {"qr-first-ttl", K_DUR, F(qr_first_ttl_ms), 0, 0, "D  first QR ref (60s)"},
    {"qr-next-ttl", K_DUR, F(qr_next_ttl_ms), 0, 0, "D  each next QR ref (20s)"},
    {"inactive-ttl", K_DUR, F(inactive_ttl_ms), 0, 0, "D  companion inactivity for new accounts (30d)"},
    {"primary-inactive", K_DUR, F(primary_inactive_ms), 0, 0, "D  phone unseen this long logs out all (14d)"},
    {"max-age", K_DUR, F(max_age_ms), 0, 0, "D  absolute maximum session age (0: none)"},
    {"browser-session-idle", K_DUR, F(ephemeral_idle_ms), 0, 0,
     "D  unused this long, a browser without 'keep me signed in' is logged out (1h, 0: never)"},
    {"history-retention", K_DUR, F(history_retention_ms), 0, 0, "D  ended records are purged after (90d)"},
    {"sweep-interval", K_DUR, F(sweep_interval_ms), 0, 0, "D  how often expiry runs (60s)"},
    {"pin-lockout", K_DUR, F(pin_lockout_ms), 0, 0, "D  first PIN lockout, doubling (1m)"},
    {"control", K_PATH, F(control_path), 0, 0, "PATH  the admin control socket"},
    {"web-dir", K_PATH, F(web_dir), 0, 0, "DIR  serve the web client from DIR instead of the binary"},
    {"geoip-dir", K_PATH, F(geoip_dir), 0, 0, "DIR  GeoIP databases (default DATA_DIR/geoip)"},
    {"trusted-proxies", K_STR, F(trusted_proxies), 0, 0, "CIDR,…  proxies allowed to name the client"},
    {"proxy-header", K_SPECIAL, 0, 0, 0, 0, "x-forwarded-for|forwarded  the one header those proxies write"},
    {"far-km", K_DOUBLE, F(far_km), 1, 40000, "N  link.far_from_primary distance (500)"},
    {"travel-kmh", K_DOUBLE, F(travel_kmh), 1, 100000, "N  impossible-travel speed (900)"},
    {"move-alert-interval", K_DUR, F(move_alert_interval_ms), 0, 0,
     "D  one impossible-travel / country-change alert per device and kind per D (10m, 0: every move)"},
    {"link-policy", K_SPECIAL, 0, 0, 0, 0, "allow|block-high-risk"},
    {"privacy", K_SPECIAL, 0, 0, 0, 0, "full|country-only  what ended records keep"},
    {"rate", K_SPECIAL, 0, 0, 0, 0,
     "NAME=N/PERIOD,…|off  rate limits (register link scan code pin refresh csp recover)"},
    {"rate-table-keys", K_LONG, F(rate_table_keys), LW_RATE_TABLE_KEYS_MIN, LW_RATE_TABLE_KEYS_MAX,
     "N  clients each rate-limit table remembers; the least recently seen make room (50000)"},
    {"rate-ipv6-prefix", K_INT, F(rate_ipv6_prefix), LW_RATE_IPV6_PREFIX_MIN, LW_RATE_IPV6_PREFIX_MAX,
     "BITS  IPv6 clients are rate-limited by this network prefix (64)"},
    {"max-connections", K_LONG, F(max_connections), 1, 10000000, "N  open connections in total (16000)"},
    {"max-connections-per-ip", K_LONG, F(max_connections_per_ip), 1, 10000000, "N  per address (256)"},
    {"max-pending-links-per-ip", K_LONG, F(max_pending_links_per_ip), 1, 1000000, "N  (16)"},
    {"request-timeout", K_DUR, F(request_timeout_ms), 0, 0,
     "D  to read a whole request; keep-alive idle (10s)"},
    {"tls-cert", K_PATH, F(tls_cert), 0, 0, "FILE  PEM certificate chain (enables TLS)"},
    {"tls-key", K_PATH, F(tls_key), 0, 0, "FILE  PEM private key"},
    {"allow-plain-http", K_FLAG, F(allow_plain_http), 0, 0,
     "      plain HTTP off loopback (behind a TLS proxy)"},
    {"user", K_STR, F(user), 0, 0, "NAME  drop to this user after binding"},
    {"allow-root", K_FLAG, F(allow_root), 0, 0, "      keep running as root (containers, tests)"},
    {"accept-new-server-key", K_FLAG, F(accept_new_server_key), 0, 0,
     "      start with a missing or other server.key: ends every session (command line only)"},
    {"metrics-listen", K_STR, F(metrics_listen), 0, 0, "HOST:PORT  serve /metrics there only"},
    {"min-client-version", K_STR, F(min_client_version), 0, 0, "X.Y.Z  older clients get 426"},
    {"shutdown-timeout", K_DUR, F(shutdown_timeout_ms), 0, 0,
     "D  SIGTERM waits this long for requests (10s)"},
    {"ws-ping", K_DUR, F(ws_ping_ms), 0, 0, "D  WebSocket ping interval; 2.5x silent = closed (30s)"},
    {"log-level", K_SPECIAL, 0, 0, 0, 0, "debug|info|warn|error"},
    {"push-contact", K_STR, F(push_contact), 0, 0,
     "URI  mailto: or https: contact sent to push services in VAPID (default: the https public origin)"},
    {"push-allow-loopback", K_FLAG, F(push_allow_loopback), 0, 0,
     "      tests only: accept Web Push endpoints on http://127.0.0.1 and [::1]"},
};

#define NOPTS (sizeof opts / sizeof opts[0])

static const opt *find(const char *name)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (strcmp(opts[i].name, name) == 0)
            return &opts[i];
    return NULL;
}

/* Where each option got its value, as the prefix of an error about it:
 * "FILE:LINE: name", "linkward serve: LINKWARD_NAME" or "linkward serve:
 * --name". Checks that run after parsing (addresses, users, certificate
 * files) point the operator at the line to fix, not at an option they never
 * typed. One configuration per process, so file-level state is enough. */
static char sources[NOPTS][LW_PATH_MAX + 96];

static void set_source(const opt *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(sources[o - opts], sizeof sources[0], fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof sources[0]) /* a very long path: name the option alone */
        snprintf(sources[o - opts], sizeof sources[0], "linkward serve: --%s", o->name);
}

/* Prints "SOURCE: message" for an error about option name. */
static void report(const char *name, const char *fmt, ...)
{
    const opt *o = find(name);
    if (o && sources[o - opts][0])
        fprintf(stderr, "%s: ", sources[o - opts]);
    else
        fprintf(stderr, "linkward serve: --%s: ", name);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* What lw_vapid_jwt takes as "sub" (webpush.h): checked here so a bad value
 * stops the start, not every push. */
static bool push_contact_ok(const char *v)
{
    if (strncmp(v, "mailto:", 7) != 0 && strncmp(v, "https:", 6) != 0)
        return false;
    for (const char *p = v; *p; p++)
        if (*p < 0x21 || *p > 0x7e || *p == '"' || *p == '\\')
            return false;
    return strlen(v) <= 256;
}

void lw_config_usage(FILE *f)
{
    fputs("usage: linkward serve [OPTIONS]\n"
          "Options (each also LINKWARD_NAME in the environment and `name = value` in --config FILE;\n"
          "the command line wins over the environment, which wins over the file):\n",
          f);
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        fprintf(f, "  --%-26s %s\n", opts[i].name, opts[i].help);
    fputs("Durations D: 250ms, 30s, 10m, 6h, 30d (a bare number is seconds).\n", f);
}

static int parse_rates(lw_config *c, const char *spec, char *msg, size_t cap)
{
    lw_rate_rule *all[] = {&c->rate_register, &c->rate_link,    &c->rate_scan, &c->rate_code,
                           &c->rate_pin,      &c->rate_refresh, &c->rate_csp,  &c->rate_recover};
    if (strcmp(spec, "off") == 0) {
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            all[i]->burst = 0;
        return 0;
    }
    char buf[512];
    if (lw_strlcpy(buf, spec, sizeof buf) != LW_OK) {
        snprintf(msg, cap, "too long");
        return -1;
    }
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        lw_rate_rule *r = NULL;
        if (eq) {
            *eq = '\0';
            for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
                if (strcmp(all[i]->name, item) == 0)
                    r = all[i];
        }
        lw_rate_rule parsed;
        if (!r || lw_rate_rule_parse(eq + 1, &parsed) != LW_OK) {
            snprintf(msg, cap,
                     "'%s' is not NAME=N/PERIOD (names: register, link, scan, code, pin, refresh, csp; "
                     "values like "
                     "30/m, 5/s, 100/h, or 0 to disable; or 'off')",
                     item);
            return -1;
        }
        r->burst = parsed.burst;
        r->per_second = parsed.per_second;
    }
    return 0;
}

static int set_special(lw_config *c, const char *name, const char *v, char *msg, size_t cap)
{
    if (strcmp(name, "listen") == 0) {
        if (lw_listen_parse(v, c->listen_host, sizeof c->listen_host, &c->listen_port) != LW_OK) {
            snprintf(msg, cap, "wants HOST:PORT or [V6]:PORT, not '%s'", v);
            return -1;
        }
        return 0;
    }
    if (strcmp(name, "public-origin") == 0) {
        bool https = strncmp(v, "https://", 8) == 0, http = strncmp(v, "http://", 7) == 0;
        const char *host = v + (https ? 8 : 7);
        if ((!https && !http) || !*host || strchr(host, '/') || strchr(host, '?') || strchr(host, '#') ||
            lw_strlcpy(c->public_origin, v, sizeof c->public_origin) != LW_OK) {
            snprintf(msg, cap, "wants an origin like https://example.org (no path), not '%s'", v);
            return -1;
        }
        return 0;
    }
    static const struct {
        const char *name, *a, *b;
    } choices[] = {{"registration", "open", "invite"},
                   {"link-policy", "allow", "block-high-risk"},
                   {"privacy", "full", "country-only"},
                   {"proxy-header", "x-forwarded-for", "forwarded"}};
    for (size_t i = 0; i < sizeof choices / sizeof choices[0]; i++) {
        if (strcmp(name, choices[i].name) != 0)
            continue;
        bool second = strcmp(v, choices[i].b) == 0;
        if (!second && strcmp(v, choices[i].a) != 0) {
            snprintf(msg, cap, "is '%s' or '%s', not '%s'", choices[i].a, choices[i].b, v);
            return -1;
        }
        if (i == 0)
            c->registration_invite = second;
        else if (i == 1)
            c->block_high_risk = second;
        else if (i == 2)
            c->privacy_country_only = second;
        else
            c->proxy_header_forwarded = second;
        return 0;
    }
    if (strcmp(name, "rate") == 0)
        return parse_rates(c, v, msg, cap);
    if (strcmp(name, "log-level") == 0) {
        if (strcmp(v, "debug") && strcmp(v, "info") && strcmp(v, "warn") && strcmp(v, "error")) {
            snprintf(msg, cap, "is debug, info, warn or error, not '%s'", v);
            return -1;
        }
        lw_strlcpy(c->log_level, v, sizeof c->log_level);
        return 0;
    }
    snprintf(msg, cap, "cannot be set here");
    return -1;
}

int lw_config_set(lw_config *c, const char *name, const char *v, char *msg, size_t cap)
{
    const opt *o = find(name);
    if (!o) {
        snprintf(msg, cap, "unknown option");
        return -1;
    }
    char *field = (char *)c + o->off;
    char *end;
    switch (o->k) {
    case K_STR:
    case K_PATH:
        if (lw_strlcpy(field, v, o->size) != LW_OK) {
            snprintf(msg, cap, "is longer than %zu bytes", o->size - 1);
            return -1;
        }
        return 0;
    case K_DUR:
        if (lw_duration_parse(v, (int64_t *)field) != LW_OK) {
            snprintf(msg, cap, "not a duration: '%s' (use e.g. 30s, 10m, 6h, 30d)", v);
            return -1;
        }
        return 0;
    case K_LONG:
    case K_INT:
    case K_DOUBLE: {
        errno = 0;
        long n = strtol(v, &end, 10);
        if (errno || end == v || *end || n < o->min || n > o->max) {
            snprintf(msg, cap, "must be a whole number from %ld to %ld, not '%s'", o->min, o->max, v);
            return -1;
        }
        if (o->k == K_LONG)
            *(long *)field = n;
        else if (o->k == K_INT)
            *(int *)field = (int)n;
        else
            *(double *)field = (double)n;
        return 0;
    }
    case K_FLAG:
        if (!v || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0 || strcmp(v, "1") == 0 ||
            strcmp(v, "on") == 0)
            *(bool *)field = true;
        else if (strcmp(v, "false") == 0 || strcmp(v, "no") == 0 || strcmp(v, "0") == 0 ||
                 strcmp(v, "off") == 0)
            *(bool *)field = false;
        else {
            snprintf(msg, cap, "is true or false, not '%s'", v);
            return -1;
        }
        return 0;
    case K_SPECIAL:
        return set_special(c, name, v, msg, cap);
    }
    return -1;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

/* Cuts a trailing comment: '#' after a space or tab ("registration = open
 * # or: invite"). Values never contain " #", so this cannot eat one; a '#'
 * inside a value ("a#b") stays. */
static void cut_comment(char *s)
{
    for (char *p = s; *p; p++) {
        if (*p == '#' && p > s && (p[-1] == ' ' || p[-1] == '\t')) {
            *p = '\0';
            return;
        }
    }
}

/* "name = value" lines; '#' starts a comment, at the start of a line or
 * after whitespace; values may be quoted. */
static int load_file(lw_config *c, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "linkward serve: cannot read the config file %s: %s\n", path, strerror(errno));
        return 1;
    }
    char line[CONFIG_LINE_MAX + 2];
    int lineno = 0, errors = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (lineno > CONFIG_LINES_MAX) {
            fprintf(stderr, "%s:%d: the file is longer than %d lines\n", path, lineno, CONFIG_LINES_MAX);
            errors++;
            break;
        }
        if (!strchr(line, '\n') && !feof(f)) {
            fprintf(stderr, "%s:%d: line longer than %d bytes\n", path, lineno, CONFIG_LINE_MAX);
            errors++;
            int ch;
            while ((ch = fgetc(f)) != EOF && ch != '\n')
                ;
            continue;
        }
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        cut_comment(s);
        s = trim(s);
        char *eq = strchr(s, '=');
        if (!eq) {
            fprintf(stderr, "%s:%d: expected 'name = value', got '%s'\n", path, lineno, s);
            errors++;
            continue;
        }
        *eq = '\0';
        char *name = trim(s), *value = trim(eq + 1);
        size_t vl = strlen(value);
        if (vl >= 2 &&
            ((value[0] == '"' && value[vl - 1] == '"') || (value[0] == '\'' && value[vl - 1] == '\''))) {
            value[vl - 1] = '\0';
            value++;
        }
        char msg[256];
        if (command_line_only(name)) {
            fprintf(stderr, "%s:%d: '%s' cannot be set in a config file\n", path, lineno, name);
            errors++;
        } else if (lw_config_set(c, name, value, msg, sizeof msg) != 0) {
            fprintf(stderr, "%s:%d: %s: %s\n", path, lineno, name, msg);
            errors++;
        } else {
            set_source(find(name), "%s:%d: %s", path, lineno, name);
        }
    }
    fclose(f);
    return errors ? 1 : 0;
}

/* LINKWARD_MAX_AGE=6h sets max-age. */
static int load_env(lw_config *c)
{
    int errors = 0;
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        char var[64] = "LINKWARD_";
        size_t n = strlen(var);
        for (const char *p = opts[i].name; *p && n + 1 < sizeof var; p++)
            var[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
        var[n] = '\0';
        const char *v = getenv(var);
        if (!v || command_line_only(opts[i].name))
            continue;
        char msg[256];
        if (lw_config_set(c, opts[i].name, v, msg, sizeof msg) != 0) {
            fprintf(stderr, "linkward serve: %s: %s\n", var, msg);
            errors++;
        } else {
            set_source(&opts[i], "linkward serve: %s", var);
        }
    }
    return errors;
}

int lw_config_finish(lw_config *c, char *msg, size_t cap)
{
    if (c->credential_ttl_ms < 1000 || c->qr_first_ttl_ms < 100 || c->qr_next_ttl_ms < 100 ||
        c->sweep_interval_ms < 50 || c->request_timeout_ms < 100 || c->ws_ping_ms < 100) {
        snprintf(msg, cap,
                 "--credential-ttl must be at least 1s, the QR TTLs and --request-timeout at least "
                 "100ms, --sweep-interval at least 50ms");
        return -1;
    }
    if (c->inactive_ttl_ms <= 0) {
        snprintf(msg, cap, "--inactive-ttl must be positive");
        return -1;
    }
    /* LISTEN only serves several nodes on PostgreSQL; anywhere else the
     * option is a mistake worth naming. */
    if (c->db_listen[0] &&
        (strncmp(c->db, "postgres", 8) != 0 || strncmp(c->db_listen, "postgres", 8) != 0)) {
        snprintf(msg, cap, "--db-listen needs a postgres:// URL, and --db on PostgreSQL too");
        return -1;
    }
    if (!c->data_dir[0]) {
        if (c->db[0] && strncmp(c->db, "postgres", 8) != 0) {
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
    if ((!c->db[0] && snprintf(c->db, sizeof c->db, "%s/linkward.db", c->data_dir) >= (int)sizeof c->db) ||
        (!c->geoip_dir[0] &&
         snprintf(c->geoip_dir, sizeof c->geoip_dir, "%s/geoip", c->data_dir) >= (int)sizeof c->geoip_dir) ||
        (!c->control_path[0] && snprintf(c->control_path, sizeof c->control_path, "%s/control.sock",
                                         c->data_dir) >= (int)sizeof c->control_path)) {
        snprintf(msg, cap, "a path derived from --data-dir is too long");
        return -1;
    }
    return 0;
}

int lw_config_load(lw_config *c, int argc, char **argv)
{
    memset(sources, 0, sizeof sources);
    /* The file first (it may be named on the command line or in the environment). */
    const char *file = getenv("LINKWARD_CONFIG");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            file = argv[i + 1];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            file = argv[i] + 9;
    }
    if (file && lw_strlcpy(c->config_file, file, sizeof c->config_file) == LW_OK && load_file(c, file) != 0)
        return 1;
    if (load_env(c) != 0)
        return 1;

    struct option lo[NOPTS + 2];
    size_t n = 0;
    for (; n < sizeof opts / sizeof opts[0]; n++)
        lo[n] =
            (struct option){opts[n].name, opts[n].k == K_FLAG ? no_argument : required_argument, 0, (int)n};
    lo[n++] = (struct option){"help", no_argument, 0, 1000};
    lo[n] = (struct option){0, 0, 0, 0};
    optind = 1;
    opterr = 0;
    int o;
    while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (o == 1000) {
            lw_config_usage(stdout);
            return -1;
        }
        if (o < 0 || o >= (int)(sizeof opts / sizeof opts[0])) {
            fprintf(stderr, "linkward serve: unknown or incomplete option '%s'\n", argv[optind - 1]);
            lw_config_usage(stderr);
            return 1;
        }
        if (strcmp(opts[o].name, "config") == 0)
            continue; /* already read */
        char msg[256];
        if (lw_config_set(c, opts[o].name, optarg, msg, sizeof msg) != 0) {
            fprintf(stderr, "linkward serve: --%s: %s\n", opts[o].name, msg);
            return 1;
        }
        set_source(&opts[o], "linkward serve: --%s", opts[o].name);
    }
    if (optind < argc) {
        fprintf(stderr, "linkward serve: unexpected argument '%s'\n", argv[optind]);
        return 1;
    }
    char msg[256];
    if (lw_config_finish(c, msg, sizeof msg) != 0) {
        fprintf(stderr, "linkward serve: %s\n", msg);
        return 1;
    }
    return 0;
}

bool lw_config_loopback(const char *host)
{
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 || strcmp(host, "localhost") == 0;
}

/* 0 when host (from HOST:PORT) is an address this machine can bind: a
 * numeric address, or a name that resolves. */
static int check_host(const char *name, const char *host)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host, NULL, &hints, &res);
    if (gai != 0) {
        report(name, "cannot resolve the address '%s': %s", host, gai_strerror(gai));
        return 1;
    }
    freeaddrinfo(res);
    return 0;
}

/* "X.Y.Z", each part digits only: what the router compares (version_cmp). */
static bool version_ok(const char *v)
{
    for (int part = 0; part < 3; part++) {
        size_t n = strspn(v, "0123456789");
        if (n == 0 || n > VERSION_PART_DIGITS_MAX)
            return false;
        v += n;
        if (part < 2 && *v++ != '.')
            return false;
    }
    return *v == '\0';
}

/* Loads the certificate chain and key the way the server will; errors name
 * the option whose file is at fault. */
static int check_tls(const lw_config *c)
{
    if (!c->tls_cert[0] && !c->tls_key[0])
        return 0;
    if (!c->tls_cert[0] || !c->tls_key[0]) {
        report(c->tls_cert[0] ? "tls-cert" : "tls-key", "--tls-cert and --tls-key go together");
        return 1;
    }
    /* OpenSSL says "system lib" for a missing file: say which and why first. */
    const char *names[] = {"tls-cert", "tls-key"}, *files[] = {c->tls_cert, c->tls_key};
    int unreadable = 0;
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(files[i], "r");
        if (!f) {
            report(names[i], "cannot read %s: %s", files[i], strerror(errno));
            unreadable++;
        } else {
            fclose(f);
        }
    }
    if (unreadable)
        return unreadable;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        report("tls-cert", "cannot initialise OpenSSL");
        return 1;
    }
    const char *bad = NULL, *file = NULL;
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(ctx, c->tls_cert) != 1)
        bad = "tls-cert", file = c->tls_cert;
    else if (SSL_CTX_use_PrivateKey_file(ctx, c->tls_key, SSL_FILETYPE_PEM) != 1)
        bad = "tls-key", file = c->tls_key;
    else if (SSL_CTX_check_private_key(ctx) != 1)
        bad = "tls-key", file = c->tls_key;
    if (bad) {
        char err[256];
        ERR_error_string_n(ERR_peek_last_error(), err, sizeof err);
        report(bad, "cannot use %s: %s", file, err);
    }
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return bad ? 1 : 0;
}

int lw_config_check(const lw_config *c)
{
    int errors = 0;
    lw_proxies *proxies = lw_calloc(1, sizeof *proxies);
    const char *bad = NULL;
    if (!proxies) {
        fprintf(stderr, "linkward serve: out of memory\n");
        return 1;
    }
    if (lw_proxies_parse(proxies, c->trusted_proxies, &bad) != LW_OK) {
        report("trusted-proxies", "'%.*s' is not an address or CIDR (up to %d entries)",
               (int)strcspn(bad, ", "), bad, LW_PROXIES_MAX);
        errors++;
    }
    lw_free(proxies);
    errors += check_host("listen", c->listen_host);
    if (c->metrics_listen[0]) {
        char host[256];
        int port;
        if (lw_listen_parse(c->metrics_listen, host, sizeof host, &port) != LW_OK) {
            report("metrics-listen", "wants HOST:PORT or [V6]:PORT, not '%s'", c->metrics_listen);
            errors++;
        } else {
            errors += check_host("metrics-listen", host);
        }
    }
    if (c->min_client_version[0] && !version_ok(c->min_client_version)) {
        report("min-client-version", "wants a version X.Y.Z (numbers), not '%s'", c->min_client_version);
        errors++;
    }
    if (c->push_contact[0] && !push_contact_ok(c->push_contact)) {
        report("push-contact",
               "wants a mailto: or https: URI of printable ASCII without quotes or backslashes");
        errors++;
    }
    if (c->user[0]) {
        errno = 0;
        if (!getpwnam(c->user)) {
            report("user", "no such user '%s'%s%s", c->user, errno ? ": " : "", errno ? strerror(errno) : "");
            errors++;
        }
    }
    errors += check_tls(c);
    if (!c->tls_cert[0] && !c->allow_plain_http && !lw_config_loopback(c->listen_host)) {
        report("listen",
               "refusing plain HTTP on %s: give --tls-cert/--tls-key, or --allow-plain-http behind a "
               "TLS-terminating proxy",
               c->listen_host);
        errors++;
    }
    return errors;
}
