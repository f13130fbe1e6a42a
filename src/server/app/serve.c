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
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <h2o.h>
#include <sodium.h>

#include "app.h"
#include "bus.h"
#include "config.h"
#include "events.h"
#include "fiber.h"
#include "control.h"
#include "geo.h"
#include "ua.h"
#include "http.h"
#include "link.h"
#include "log.h"
#include "lw.h"
#include "pin.h"
#include "push.h"
#include "relay.h"
#include "gauges.h"
#include "metrics.h"
#include "session.h"
#include "store.h"
#include "sweep.h"
#include "work.h"
#include "ws.h"

/* Fibers (fiber.h), with PostgreSQL. A request's fiber stack holds the
 * handler, jansson parsing its body (up to 2,048 levels deep) and h2o
 * sending the answer; the sanitizers' frames are several times larger.
 * Mapped lazily: only what a request touched costs memory. */
#define LW_FIBERS 256
#define LW_STORE_THREADS LW_STORE_PG_CONNECTIONS
#if defined(__SANITIZE_ADDRESS__)
#define LW_FIBER_STACK_KB 4096
#else
#define LW_FIBER_STACK_KB 1024
#endif

#define KEY_FILE_HEADER "linkward-server-key-v1\n"

static volatile sig_atomic_t stop_requested, reload_requested;

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        reload_requested = 1;
    else
        stop_requested = 1;
}

#define KEY_SEED_LEN 32
#define KEY_FP_HEX_LEN (2 * LW_FP_LEN + 1)
/* The reason sessions end with when the operator accepts a new server key. */
#define KEY_CHANGED_REASON "server_key_changed"

/* Reads the server's key (a 32-byte seed) from path. LW_OK with *present
 * false when there is no such file; an unreadable or damaged file is an
 * error, never a reason to make a new key. */
static int read_server_key(const char *path, uint8_t seed[KEY_SEED_LEN], bool *present)
{
    char text[128];
    *present = false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return LW_OK;
        lw_log_error("serve", "cannot read %s: %s", path, strerror(errno));
        return LW_EIO;
    }
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    size_t hl = strlen(KEY_FILE_HEADER);
    int rc = LW_OK;
    if (n <= (ssize_t)hl || memcmp(text, KEY_FILE_HEADER, hl) != 0) {
        lw_log_error("serve", "%s is not a Linkward server key file", path);
        rc = LW_EINVAL;
    } else {
        text[n] = '\0';
        size_t len = strcspn(text + hl, "\r\n");
        if (lw_b64_decode(seed, KEY_SEED_LEN, text + hl, len, KEY_SEED_LEN) != KEY_SEED_LEN) {
            lw_log_error("serve", "%s is damaged", path);
            rc = LW_EINVAL;
        }
    }
    lw_wipe(text, sizeof text);
    *present = rc == LW_OK;
    return rc;
}

/* Makes a new seed and writes it to path, which must not exist. Written
 * whole to a temporary file first and linked into place (link fails rather
 * than replace an existing key), so a crash never leaves a partial key file
 * that the next start would refuse as damaged. */
static int create_server_key(const char *path, uint8_t seed[KEY_SEED_LEN])
{
    char text[128], tmp[LW_PATH_MAX + 32];
    int tn = snprintf(tmp, sizeof tmp, "%s.new", path);
    if (tn < 0 || (size_t)tn >= sizeof tmp) {
        lw_log_error("serve", "the server key's path is too long");
        return LW_EINVAL;
    }
    lw_random(seed, KEY_SEED_LEN);
    char b[lw_b64_enc_len(KEY_SEED_LEN)];
    lw_b64_encode(b, seed, KEY_SEED_LEN);
    int n = snprintf(text, sizeof text, "%s%s\n", KEY_FILE_HEADER, b);
    lw_wipe(b, sizeof b);
    int rc = LW_OK;
    /* A leftover of a crash here is only ever a copy of a key never used. */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (n < 0 || (size_t)n >= sizeof text || fd < 0 || write(fd, text, (size_t)n) != n || fsync(fd) != 0)
        rc = LW_EIO;
    if (fd >= 0 && close(fd) != 0)
        rc = LW_EIO;
    if (rc == LW_OK && link(tmp, path) != 0)
        rc = LW_EIO;
    if (rc != LW_OK)
        lw_log_error("serve", "cannot write %s: %s", path, strerror(errno));
    (void)unlink(tmp); /* the key is in place (or not): the temporary name goes either way */
    lw_wipe(text, sizeof text);
    if (rc == LW_OK)
        lw_log_info("serve", "created a new server key in %s", path);
    return rc;
}

/* The fingerprint the store keeps of the key: BLAKE2b-256 of the Ed25519
 * public key, lowercase hex (what phones pin is that public key). */
static void key_fingerprint_hex(const uint8_t seed[KEY_SEED_LEN], char out[KEY_FP_HEX_LEN])
{
    uint8_t pk[LW_PK_LEN], sk[LW_SK_LEN], fp[LW_FP_LEN];
    crypto_sign_seed_keypair(pk, sk, seed);
    lw_fingerprint(fp, pk);
    lw_hex_encode(out, fp, LW_FP_LEN);
    lw_wipe(sk, sizeof sk);
}

/* The operator accepted a new key on a store whose accounts depend on the
 * old one. Every session ends (phones included): their credentials are
 * stored as hashes keyed by the old key and can never verify again, so
 * leaving them "active" would only make the records, the counts and the
 * device limit lie. Ended first, recorded after (the caller): a crash in
 * between refuses the next start again, and repeating the flag finishes. */
static int end_sessions_for_new_key(lw_app *app, size_t *ended)
{
    lw_ended *list = NULL;
    size_t n = 0;
    int rc = lw_store_session_end_every(app->srv.store, NULL, KEY_CHANGED_REASON, lw_now_ms(), &list, &n);
    lw_free(list);
    *ended = rc == LW_OK ? n : 0;
    if (rc != LW_OK)
        lw_log_error("serve", "cannot end the sessions of the old server key: %s", lw_strerror(rc));
    return rc;
}

/* Loads the server's key and holds it against the fingerprint the store
 * recorded, so that a lost or swapped key file cannot silently turn into a
 * new key: phones pinned the old public key, and every stored credential,
 * link token, QR ref, pairing code and invite is a hash keyed by it.
 *  - the recorded key: go on;
 *  - no fingerprint recorded yet (a new store, or one from before they were
 *    recorded) and a key file: record it;
 *  - a missing or other key while the store holds accounts: refuse, naming
 *    the file and both fingerprints, unless --accept-new-server-key (then
 *    end every session and record the new key);
 *  - a missing or other key and no account: nothing depends on it; make or
 *    take the new one and record it.
 * On LW_OK the signing and hashing keys are in app; *ended_all tells whether
 * every session was ended (the other nodes must then be told). */
static int load_server_key(lw_app *app, const char *path, bool *ended_all)
{
    uint8_t seed[KEY_SEED_LEN];
    bool present = false;
    char found[KEY_FP_HEX_LEN] = "", expected[KEY_FP_HEX_LEN] = "";
    int rc = read_server_key(path, seed, &present);
    if (rc != LW_OK)
        goto out;
    if (present)
        key_fingerprint_hex(seed, found);
    rc = lw_store_setting_get(app->srv.store, LW_SETTING_SERVER_KEY, expected, sizeof expected);
    bool recorded = rc == LW_OK;
    if (rc != LW_OK && rc != LW_ENOTFOUND) {
        fprintf(stderr, "linkward serve: cannot read the server key's fingerprint from the store (%s)\n",
                lw_strerror(rc));
        goto out;
    }
    bool same = present && recorded && strcmp(found, expected) == 0;
    /* Missing, or not the key the store recorded. */
    bool replaced = !present || (recorded && !same);
    lw_store_stats st = {0};
    if (replaced && (rc = lw_store_get_stats(app->srv.store, &st)) != LW_OK) {
        fprintf(stderr, "linkward serve: cannot count the store's accounts (%s)\n", lw_strerror(rc));
        goto out;
    }
    bool depended_on = replaced && st.accounts > 0;
    if (depended_on && !app->srv.cfg.accept_new_server_key) {
        static const char cost[] = "which ends every session: every phone must register again and every "
                                   "companion link again (docs/operations.md)";
        if (!present && recorded)
            fprintf(stderr,
                    "linkward serve: refusing to start: the server key %s is missing, and the %ld account%s "
                    "in the store depend%s on the key with fingerprint %s (phones pinned it, credentials are "
                    "hashed with it); restore that file from a backup, or start once with "
                    "--accept-new-server-key to make a new key, %s\n",
                    path, st.accounts, st.accounts == 1 ? "" : "s", st.accounts == 1 ? "s" : "", expected,
                    cost);
        else if (!present)
            fprintf(stderr,
                    "linkward serve: refusing to start: the server key %s is missing, and the %ld account%s "
                    "in the store depend%s on the key it was used with (its fingerprint is not recorded: the "
                    "store predates that); restore that file from a backup, or start once with "
                    "--accept-new-server-key to make a new key, %s\n",
                    path, st.accounts, st.accounts == 1 ? "" : "s", st.accounts == 1 ? "s" : "", cost);
        else
            fprintf(stderr,
                    "linkward serve: refusing to start: the server key %s has fingerprint %s, but the %ld "
                    "account%s in the store depend%s on the key with fingerprint %s (phones pinned it, "
                    "credentials are hashed with it); put back the file with that fingerprint, or start "
                    "once with --accept-new-server-key to use this key, %s\n",
                    path, found, st.accounts, st.accounts == 1 ? "" : "s", st.accounts == 1 ? "s" : "",
                    expected, cost);
        rc = LW_EDENIED;
        goto out;
    }
    if (!present) {
        if ((rc = create_server_key(path, seed)) != LW_OK)
            goto out;
        key_fingerprint_hex(seed, found);
    }
    if (depended_on) {
        size_t ended = 0;
        if ((rc = end_sessions_for_new_key(app, &ended)) != LW_OK)
            goto out;
        *ended_all = true;
        lw_log_warn("serve",
                    "--accept-new-server-key: using the server key %s (fingerprint %s) in place of %s; "
                    "ended %zu sessions (reason %s): every phone must register again and every companion "
                    "link again; pending link requests and unused invites no longer work",
                    path, found, recorded ? expected : "an unrecorded one", ended, KEY_CHANGED_REASON);
    } else if (replaced && recorded) {
        lw_log_warn("serve",
                    "the server key %s (fingerprint %s) is not the one the store recorded (%s); "
                    "no account depends on it: using the new one",
                    path, found, expected);
    } else if (app->srv.cfg.accept_new_server_key) {
        lw_log_info("serve", "--accept-new-server-key: nothing to accept, %s is the key the store records",
                    path);
    }
    if (!same) {
        rc = lw_store_setting_put(app->srv.store, LW_SETTING_SERVER_KEY, found);
        if (rc != LW_OK) {
            fprintf(stderr, "linkward serve: cannot record the server key's fingerprint in the store (%s)\n",
                    lw_strerror(rc));
            goto out;
        }
        if (!recorded)
            lw_log_info("serve", "recorded the server key's fingerprint %s in the store", found);
    }
    crypto_sign_seed_keypair(app->srv.server_pk, app->server_sk, seed);
    /* A separate key for the hashes of stored secrets, derived from the same seed. */
    static const char label[] = "linkward stored-secret hash key v1";
    lw_keyed_hash(app->srv.hash_key, seed, label, sizeof label - 1);
    rc = LW_OK;
out:
    lw_wipe(seed, sizeof seed);
    return rc;
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

/* Root only to bind: afterwards run as --user, or refuse to go on as root
 * unless told to (--allow-root, for containers and test machines). Started
 * as someone else (systemd's User= with CAP_NET_BIND_SERVICE), there is
 * nothing to drop: --user is then ignored, and said to be. */
static int drop_privileges(lw_app *app)
{
    if (app->srv.cfg.user[0] && getuid() != 0) {
        struct passwd *me = getpwuid(getuid());
        lw_log_warn("serve", "--user %s ignored: not started as root (already running as %s)",
                    app->srv.cfg.user, me ? me->pw_name : "a non-root user");
        return LW_OK;
    }
    if (app->srv.cfg.user[0]) {
        struct passwd *pw = getpwnam(app->srv.cfg.user);
        if (!pw) {
            fprintf(stderr, "linkward serve: --user: no such user '%s'\n", app->srv.cfg.user);
            return LW_EINVAL;
        }
        if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
            fprintf(stderr, "linkward serve: cannot become %s: %s\n", app->srv.cfg.user, strerror(errno));
            return LW_EDENIED;
        }
        if (setuid(0) == 0 && pw->pw_uid != 0) {
            fprintf(stderr, "linkward serve: dropping privileges did not stick\n");
            return LW_EDENIED;
        }
        lw_log_info("serve", "running as %s", app->srv.cfg.user);
        return LW_OK;
    }
    if (geteuid() == 0 && !app->srv.cfg.allow_root) {
        fprintf(stderr,
                "linkward serve: refusing to run as root: give --user NAME (privileges are dropped after "
                "binding) or --allow-root\n");
        return LW_EDENIED;
    }
    return LW_OK;
}

/* Opens the store and proves it takes writes, as the user the server now
 * runs as (privileges are dropped before this): a database that user may
 * only read would otherwise start, answer every read and /v1/health, and
 * fail every write with a 500. */
/* Fills what the domain modules are given (they keep &app->srv.domain) from the
 * fields serve.c owns; again whenever one of those is replaced. */
static void domain_sync(lw_app *app)
{
    app->srv.domain = (lw_domain_deps){
        .store = app->srv.store,
        .events = &app->events,
        .cfg = &app->srv.cfg,
        .hash_key = app->srv.hash_key,
        .server_sk = app->server_sk,
        .server_pk = app->srv.server_pk,
        .loop = app->srv.loop,
        .geo = app->geo,
        .rates = app->srv.rates,
        .sessions = app->srv.sessions,
        .fibers = app->srv.fibers,
        .shared_store = app->shared_store,
        .on_alert = {.ctx = app->push, .raised = app->push ? lw_push_alert : NULL},
    };
}

/* The VAPID key (webpush.h) beside server.key: made at the first start, 0600.
 * Unlike the server key nothing stored depends on it; a new one only means
 * browsers subscribed with the old one get nothing until they subscribe
 * again, so a missing file is made anew. An unreadable one stops the start. */
static int start_push(lw_app *app)
{
    char path[LW_PATH_MAX + 16];
    int n = snprintf(path, sizeof path, "%s/vapid.key", app->srv.cfg.data_dir);
    if (n < 0 || (size_t)n >= sizeof path)
        return LW_EINVAL;
    lw_vapid *v = NULL;
    int rc = lw_vapid_load(path, &v);
    if (rc == LW_ENOTFOUND) {
        if ((rc = lw_vapid_generate(&v)) == LW_OK && (rc = lw_vapid_save(v, path)) == LW_OK)
            lw_log_info("push", "created a new VAPID key in %s", path);
    }
    if (rc != LW_OK) {
        lw_vapid_free(v);
        fprintf(stderr, "linkward serve: cannot use the VAPID key %s: %s\n", path, lw_strerror(rc));
        return rc;
    }
    lw_vapid_public_b64(v, app->srv.vapid_public);
    char contact[LW_VAPID_SUB_MAX + 1];
    const char *c = app->srv.cfg.push_contact;
    if (!c[0])
        c = strncmp(app->srv.cfg.public_origin, "https://", 8) == 0 ? app->srv.cfg.public_origin
                                                                    : "mailto:root@localhost";
    lw_strlcpy(contact, c, sizeof contact);
    const char *backoff =
        getenv("LINKWARD_TEST_PUSH_BACKOFF_MS"); /* tests: retries without waiting seconds */
    app->push = lw_push_new(&(lw_push_opts){.ctx = app->srv.h2o_ctx,
                                            .store = app->srv.store,
                                            .fibers = app->srv.fibers,
                                            .vapid = v,
                                            .contact = contact,
                                            .allow_loopback = app->srv.cfg.push_allow_loopback,
                                            .backoff_ms = backoff ? (int)strtol(backoff, NULL, 10) : 0});
    if (!app->push) {
        lw_vapid_free(v);
        app->srv.vapid_public[0] = '\0';
        lw_log_error("push", "cannot start the Web Push sender: alerts are not pushed");
    }
    return LW_OK;
}

static int open_store(lw_app *app)
{
    /* A PostgreSQL URL may carry a password: name only what is safe to print. */
    bool pg = strncmp(app->srv.cfg.db, "postgres", 8) == 0;
    const char *where = pg ? "the PostgreSQL database of --db" : app->srv.cfg.db;
    struct passwd *me = getpwuid(geteuid());
    const char *user = me ? me->pw_name : "this user";
    int rc = lw_store_open(&app->srv.store, app->srv.cfg.db);
    if (rc == LW_OK && (rc = lw_store_check_writable(app->srv.store)) != LW_OK && rc != LW_EUNAVAIL)
        rc = LW_ESTORE;
    if (rc == LW_EUNAVAIL && pg)
        fprintf(stderr,
                "linkward serve: refusing to start: %s does not take writes (the server is unreachable, "
                "read-only or out of disk space; see the log)\n",
                where);
    else if (rc == LW_EUNAVAIL)
        fprintf(stderr,
                "linkward serve: refusing to start: the database %s cannot be written as user %s (give %s "
                "write access to it and its folder, free disk space, or run as its owner; see the log)\n",
                where, user, user);
    else if (rc != LW_OK)
        fprintf(stderr, "linkward serve: cannot open the store at %s\n", where);
    return rc;
}

/* The session cache (domain) trusts itself on several nodes only while the
 * relay (bus) has heard its own heartbeat: wired here, since the domain does
 * not see the bus. */
static bool relay_vouches(void *ctx, int64_t mono_now)
{
    return lw_relay_healthy(ctx, mono_now);
}

/* What a notice from another node means beyond this node's sockets
 * (lw_bus_hooks): the bus and its relay read no session cache, draw no QR
 * code and list no alerts; the domain does, wired here. */
static void hook_forget(void *ctx, const char *device_id)
{
    lw_app *app = ctx;
    lw_sessions_forget(app->srv.sessions, device_id);
}

static void hook_settle(void *ctx)
{
    lw_app *app = ctx;
    lw_sessions_write_late(app->srv.sessions);
}

static void hook_complete_link_event(void *ctx, json_t *ev)
{
    lw_event_link_complete(ev);
}

static int hook_resync(void *ctx)
{
    lw_app *app = ctx;
    return lw_sessions_resync(app->srv.sessions);
}

/* Alerts raised on other nodes while we could not hear them: pushed now to
 * this node's sockets (an alert raised here meanwhile may arrive twice;
 * clients know alerts by id). */
static void hook_replay(void *ctx, int64_t since)
{
    lw_app *app = ctx;
    char(*accounts)[LW_ID_STRLEN] = NULL;
    size_t n = lw_bus_accounts(app->srv.bus, &accounts);
    for (size_t i = 0; i < n; i++) {
        lw_alert *list = NULL;
        size_t k = 0;
        int rc = lw_store_alert_list(app->srv.store, accounts[i], 100, &list, &k);
        if (rc != LW_OK) {
            lw_log_error("relay", "cannot list the alerts of %.8s to push them again (%d)", accounts[i], rc);
            continue;
        }
        for (size_t j = k; j-- > 0;) { /* oldest first */
            if (list[j].created_at < since)
                continue;
            json_t *ev = lw_event_alert(&list[j]);
            if (ev)
                lw_bus_local_to_account(app->srv.bus, accounts[i], NULL, ev);
            json_decref(ev);
        }
        lw_free(list);
    }
    lw_free(accounts);
}

int lw_app_start(lw_app *app, bool listen)
{
    const char *lv = app->srv.cfg.log_level;
    lw_log_set_level(strcmp(lv, "debug") == 0   ? LW_LOG_DEBUG
                     : strcmp(lv, "warn") == 0  ? LW_LOG_WARN
                     : strcmp(lv, "error") == 0 ? LW_LOG_ERROR
                                                : LW_LOG_INFO);
    /* Logs name clients by network; the full address only to an operator
     * debugging, and never when ended records may keep no address. */
    lw_log_set_full_addresses(strcmp(lv, "debug") == 0 && !app->srv.cfg.privacy_country_only);
    const char *bad = NULL;
    if (lw_proxies_parse(&app->srv.proxies, app->srv.cfg.trusted_proxies, &bad) != LW_OK) {
        fprintf(stderr,
                "linkward serve: --trusted-proxies: '%.*s' is not an address or CIDR (up to %d entries)\n",
                (int)strcspn(bad, ", "), bad, LW_PROXIES_MAX);
        return LW_EINVAL;
    }
    app->srv.proxies.header =
        app->srv.cfg.proxy_header_forwarded ? LW_PROXY_HEADER_FORWARDED : LW_PROXY_HEADER_XFF;
    lw_push_global_init();
    if (lw_crypto_init() != LW_OK) {
        fprintf(stderr, "linkward serve: cannot initialise libsodium\n");
        return LW_ECRYPTO;
    }
    /* Compile the uap-core expressions now, not on the first request (~0.2 s). */
    if (lw_ua_init(NULL) != LW_OK)
        lw_log_warn("ua", "uap-core regexes not loaded (%s); using the small built-in User-Agent matcher",
                    lw_ua_error());
    lw_http_init(&app->srv);
    if (app->srv.cfg.tls_cert[0] && lw_http_tls_load(&app->srv) != LW_OK) {
        fprintf(stderr, "linkward serve: cannot use the TLS certificate/key (see the log)\n");
        return LW_ECRYPTO;
    }
    /* lw_config_check refused plain HTTP off loopback unless it was allowed. */
    if (listen && !app->srv.cfg.tls_cert[0] && !lw_config_loopback(app->srv.cfg.listen_host))
        lw_log_warn("serve", "serving plain HTTP on %s: only safe behind a TLS-terminating proxy",
                    app->srv.cfg.listen_host);
    if (listen && lw_http_listen(&app->srv) != LW_OK)
        return LW_EIO;
    if (listen && drop_privileges(app) != LW_OK)
        return LW_EDENIED;
    if (mkdir_p(app->srv.cfg.data_dir) != 0) {
        fprintf(stderr, "linkward serve: cannot create data directory %s: %s\n", app->srv.cfg.data_dir,
                strerror(errno));
        return LW_EIO;
    }
    if (open_store(app) != LW_OK)
        return LW_ESTORE;
    char keypath[LW_PATH_MAX + 16];
    int kn = snprintf(keypath, sizeof keypath, "%s/server.key", app->srv.cfg.data_dir);
    if (kn < 0 || (size_t)kn >= sizeof keypath) {
        fprintf(stderr, "linkward serve: the data directory's path is too long\n");
        return LW_EINVAL;
    }
    /* After the store: the key is held against the fingerprint it records. */
    bool ended_all = false;
    if (load_server_key(app, keypath, &ended_all) != LW_OK)
        return LW_EIO;
    app->geo = lw_geo_open(app->srv.cfg.geoip_dir);
    if (!app->geo)
        return LW_ENOMEM;
    lw_log_info("geo", "%zu GeoIP database%s from %s", lw_geo_count(app->geo),
                lw_geo_count(app->geo) == 1 ? "" : "s", app->srv.cfg.geoip_dir);
    if (!app->srv.cfg.public_origin[0]) {
        const char *h = app->srv.cfg.listen_host;
        bool v6 = strchr(h, ':') != NULL;
        int n = snprintf(app->srv.cfg.public_origin, sizeof app->srv.cfg.public_origin, "%s://%s%s%s:%d",
                         app->srv.cfg.tls_cert[0] ? "https" : "http", v6 ? "[" : "", h, v6 ? "]" : "",
                         app->srv.cfg.listen_port);
        if (n < 0 || n >= (int)sizeof app->srv.cfg.public_origin) {
            lw_log_error("serve", "the listen host is too long for an origin; set --public-origin");
            return LW_EINVAL;
        }
    }
    app->srv.bus = lw_bus_new();
    if (app->srv.bus)
        app->events = lw_bus_events(app->srv.bus); /* what the domain publishes through */
    app->srv.rates = lw_rates_new((size_t)app->srv.cfg.rate_table_keys);
    domain_sync(app);
    app->srv.sessions = lw_sessions_new(&app->srv.domain);
    app->srv.links = lw_links_new(&app->srv.domain);
    app->srv.pins = lw_pins_new(&app->srv.domain, app->srv.h2o_ctx, app->srv.cfg.pin_workers);
    /* One thread: the loop and it fill a two-core machine; with one core,
     * handing work over would only add to it. */
    app->srv.work =
        lw_work_new(app->srv.h2o_ctx,
                    &(lw_work_opts){.name = "lw-work", .threads = sysconf(_SC_NPROCESSORS_ONLN) > 1 ? 1 : 0});
    /* PostgreSQL: each API request on a fiber, its store calls on as many
     * worker threads as the store has connections (drv_pg.c). SQLite answers
     * from the page cache faster than a hand-over to a thread would. */
    if (strncmp(app->srv.cfg.db, "postgres", 8) == 0 &&
        !(app->srv.fibers =
              lw_fibers_new(app->srv.h2o_ctx, &(lw_fibers_opts){.threads = LW_STORE_THREADS,
                                                                .max = LW_FIBERS,
                                                                .stack_kb = LW_FIBER_STACK_KB})))
        return LW_ENOMEM;
    if (start_push(app) != LW_OK)
        return LW_EIO;
    domain_sync(app); /* the sweeper ends sessions through app->srv.sessions */
    app->sweeper = lw_sweeper_new(&app->srv.domain);
    if (!app->srv.bus || !app->srv.rates || !app->srv.sessions || !app->srv.links || !app->srv.pins ||
        !app->srv.work || !app->sweeper) {
        lw_log_error("serve", "out of memory at start-up");
        return LW_ENOMEM;
    }
    if (listen && !(app->control = lw_control_start(&app->srv, app->srv.cfg.control_path)))
        return LW_EIO;
    app->shared_store = strncmp(app->srv.cfg.db, "postgres", 8) == 0;
    domain_sync(app);
    if (app->shared_store) {
        lw_bus_set_hooks(app->srv.bus, &(lw_bus_hooks){.ctx = app,
                                                       .forget = hook_forget,
                                                       .settle = hook_settle,
                                                       .complete_link_event = hook_complete_link_event,
                                                       .resync = hook_resync,
                                                       .replay = hook_replay});
        if (!(app->relay =
                  lw_relay_start(app->srv.bus, app->srv.h2o_ctx, app->srv.cfg.db, app->srv.cfg.db_listen)))
            return LW_ESTORE;
        lw_relay_set_fibers(app->relay, app->srv.fibers);
        lw_bus_peer peer = lw_relay_peer(app->relay);
        lw_bus_set_peer(app->srv.bus, &peer);
        lw_sessions_set_vouch(app->srv.sessions, relay_vouches, app->relay);
        /* Ended before the relay could tell anyone: nodes still running
         * would trust their caches. */
        if (ended_all)
            lw_relay_publish_resync(app->relay);
    }
    if (lw_gauges_register(app) != LW_OK)
        return LW_ELIMIT;
    /* What fell due while we were down is swept on the loop's first turn: a
     * big store's first sweep must not delay listening. */
    lw_sweeper_kick(app->sweeper);
    return LW_OK;
}

void lw_app_stop(lw_app *app)
{
    lw_metrics_clear_gauges();
    if (app->srv.sessions) {
        lw_sessions_flush(app->srv.sessions, true);
        lw_sessions_set_vouch(app->srv.sessions, NULL, NULL);
    }
    if (app->srv.bus) {
        lw_bus_set_peer(app->srv.bus, NULL);
        lw_bus_set_hooks(app->srv.bus, NULL);
    }
    lw_relay_stop(app->relay);
    lw_control_stop(app->control);
    app->srv.domain.on_alert = (lw_alert_hook){0};
    lw_push_free(app->push);
    app->push = NULL;
    lw_sweeper_free(app->sweeper);
    lw_pins_free(app->srv.pins);
    lw_work_free(app->srv.work);
    lw_fibers_free(app->srv.fibers);
    lw_links_free(app->srv.links);
    lw_sessions_free(app->srv.sessions);
    app->events = (lw_events){0};
    lw_bus_free(app->srv.bus);
    lw_rates_free(app->srv.rates);
    if (app->srv.store)
        lw_store_close(app->srv.store);
    lw_geo_close(app->geo);
    lw_ua_free();
    lw_wipe(app->server_sk, sizeof app->server_sk);
    lw_wipe(app->srv.hash_key, sizeof app->srv.hash_key);
}

int lw_serve_main(int argc, char **argv)
{
    lw_app *app = calloc(1, sizeof *app);
    int exit_code = 1;
    if (!app)
        return 1;
    lw_config_defaults(&app->srv.cfg);
    int rc = lw_config_load(&app->srv.cfg, argc, argv);
    if (rc != 0) {
        free(app);
        return rc < 0 ? 0 : 1;
    }
    /* The same checks whether only checking or about to start, so that
     * --check-config passes exactly what the server accepts. */
    if (lw_config_check(&app->srv.cfg) != 0) {
        free(app);
        return 1;
    }
    if (app->srv.cfg.check_config) {
        printf("configuration OK%s%s\n", app->srv.cfg.config_file[0] ? ": " : "", app->srv.cfg.config_file);
        free(app);
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    if (lw_app_start(app, true) != LW_OK)
        goto out;

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    lw_log_info("serve", "listening on %s:%d (origin %s, data in %s)", app->srv.cfg.listen_host,
                app->srv.cfg.listen_port, app->srv.cfg.public_origin, app->srv.cfg.data_dir);
    printf("linkward listening on %s://%s%s%s:%d\n", app->srv.cfg.tls_cert[0] ? "https" : "http",
           strchr(app->srv.cfg.listen_host, ':') ? "[" : "", app->srv.cfg.listen_host,
           strchr(app->srv.cfg.listen_host, ':') ? "]" : "", app->srv.cfg.listen_port);
    fflush(stdout);

    while (!stop_requested) {
        h2o_evloop_run(app->srv.loop, 1000);
        if (reload_requested) {
            /* Databases are swapped between requests: nothing in flight sees a half state. */
            reload_requested = 0;
            if (app->srv.cfg.tls_cert[0]) {
                if (lw_http_tls_load(&app->srv) == LW_OK)
                    lw_log_info("tls", "certificate reloaded; new handshakes use it");
                else
                    lw_log_warn("tls", "certificate reload failed; keeping the one in use");
            }
            int grc = lw_geo_reload(&app->geo, app->srv.cfg.geoip_dir);
            domain_sync(app);
            if (grc == LW_OK)
                lw_log_info("geo", "reloaded %zu GeoIP databases", lw_geo_count(app->geo));
            else
                lw_log_warn("geo", "GeoIP reload failed (%s); keeping the databases in use",
                            lw_strerror(grc));
        }
    }

    /* Graceful: stop accepting (a successor bound beside us takes new
     * connections), tell sockets to reconnect, let requests in flight finish
     * within the deadline, then flush and exit 0. */
    lw_log_info("serve", "shutting down: %ld requests in flight, %zu sockets", lw_http_inflight(),
                lw_bus_count(app->srv.bus));
    lw_http_stop(&app->srv);
    lw_http_request_shutdown(&app->srv);
    lw_bus_close_all(app->srv.bus, 1012, "service restart");
    int64_t deadline = lw_now_ms() + app->srv.cfg.shutdown_timeout_ms;
    /* A short grace even when idle, so a request racing our close on a
     * keep-alive connection still gets its answer (with Connection: close). */
    int64_t grace = lw_now_ms() + 100;
    while (lw_now_ms() < deadline && (lw_http_inflight() > 0 || lw_ws_live() > 0 || lw_now_ms() < grace))
        h2o_evloop_run(app->srv.loop, 10);
    if (lw_http_inflight() > 0)
        lw_log_warn("serve", "%ld requests still in flight at the shutdown deadline", lw_http_inflight());
    exit_code = 0;
out:
    lw_app_stop(app);
    lw_wipe(app, sizeof *app);
    free(app);
    return exit_code;
}
