/*
 * lwfuzz.c — the in-process server and fixture of the HTTP harnesses (lwfuzz.h).
 */
#include "lwfuzz.h"

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <h2o.h>
#include <jansson.h>
#include <sodium.h>

#include "code.h"
#include "cred.h"
#include "crypto.h"
#include "http.h"
#include "link.h"
#include "payload.h"
#include "proof.h"
#include "session.h"
#include "store.h"

/* How long one exchange may take before the harness gives up on the server
 * closing the connection. Long enough for a PIN check (Argon2id, ~0.1 s) on a
 * busy machine; LWFUZZ_BUDGET_MS overrides. A server that needs longer for
 * one connection leaves it behind, which the next exchanges tolerate. */
#define LWF_BUDGET_MS 2000
/* Hard cap on loop turns per exchange, whatever the clock says. */
#define LWF_ROUNDS_MAX 20000
/* Idle turns (no byte moved) before the loop may sleep 1 ms waiting for events. */
#define LWF_IDLE_SPIN 3

static lw_app app;
static bool started;
static char tmpdir[256];
static int64_t budget_ms = LWF_BUDGET_MS;
static bool dump; /* LWFUZZ_DUMP: every exchange to stderr, to see where seeds go */

typedef struct keypair {
    uint8_t pk[LW_PK_LEN];
    uint8_t sk[LW_SK_LEN];
} keypair;

#define SIG_B64 lw_b64_enc_len(LW_SIG_LEN)

/* The fixture: an account with a primary (@P@), one linked companion (@C@),
 * a request it scanned (@R@) and one pending (@I@); and a spare primary (@V@)
 * whose session the refresh route may end. */
static struct {
    bool main_ok, spare_ok;
    unsigned long serial; /* handles are fz<serial>: unique in this run's store */
    keypair primary, companion, scanned, pending, spare;
    char account_id[LW_ID_STRLEN];
    char primary_tok[LW_CRED_STRLEN];
    char companion_tok[LW_CRED_STRLEN];
    char companion_dev[LW_ID_STRLEN];
    char scanned_id[LW_ID_STRLEN];
    char scanned_tok[LW_CRED_STRLEN];
    char approve_sig[SIG_B64];
    char complete_sig[SIG_B64];
    char pending_id[LW_ID_STRLEN];
    char pending_tok[LW_CRED_STRLEN];
    char pending_payload[LW_PAYLOAD_MAX];
    char pending_code[LW_CODE_STRLEN];
    char spare_tok[LW_CRED_STRLEN];
    char spare_dev[LW_ID_STRLEN];
    uint8_t spare_challenge[32];
    char refresh_sig[SIG_B64];
} fx;

static __attribute__((noreturn, format(printf, 1, 2))) void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("lwfuzz: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void at_exit(void)
{
    if (!started)
        return;
    started = false;
    /* Closes the store (and its WAL) before the directory goes. */
    lw_app_stop(&app);
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int path_in_tmp(char *dst, size_t cap, const char *name)
{
    int n = snprintf(dst, cap, "%s/%s", tmpdir, name);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

void lwf_server_init(void)
{
    if (started)
        return;
    /* The fuzzer hangs up mid-answer on purpose; a write must not kill it. */
    signal(SIGPIPE, SIG_IGN);
    const char *b = getenv("LWFUZZ_BUDGET_MS");
    if (b && *b) {
        char *end;
        long v = strtol(b, &end, 10);
        if (*end == '\0' && v > 0 && v < 600000)
            budget_ms = v;
    }
    /* /dev/shm when there is one: the store syncs, and tmpfs makes that free. */
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm"
                       : getenv("TMPDIR")            ? getenv("TMPDIR")
                                                     : "/tmp";
    int n = snprintf(tmpdir, sizeof tmpdir, "%s/lwfuzz.XXXXXX", base);
    if (n < 0 || (size_t)n >= sizeof tmpdir || !mkdtemp(tmpdir))
        die("cannot create a temporary directory under %s: %s", base, strerror(errno));

    lw_config_defaults(&app.srv.cfg);
    lw_config *c = &app.srv.cfg;
    if (lw_strlcpy(c->data_dir, tmpdir, sizeof c->data_dir) != LW_OK ||
        path_in_tmp(c->db, sizeof c->db, "linkward.db") != 0 ||
        path_in_tmp(c->geoip_dir, sizeof c->geoip_dir, "geoip") != 0 ||
        path_in_tmp(c->control_path, sizeof c->control_path, "control.sock") != 0)
        die("temporary path too long");
    /* Lifetimes far beyond any run, so nothing of the fixture expires or
     * rotates under the fuzzer (expiry has its own tests). */
    c->credential_ttl_ms = 30LL * 24 * 3600 * 1000;
    c->qr_first_ttl_ms = 7LL * 24 * 3600 * 1000;
    c->qr_next_ttl_ms = 24LL * 3600 * 1000;
    c->sweep_interval_ms = 3600LL * 1000;
    /* One client sends everything (and from no address: socketpairs have
     * none), so the abuse limits would answer 429 to most inputs and to the
     * fixture itself: off here; they have their own tests. */
    c->rate_register.burst = 0;
    c->rate_link.burst = 0;
    c->rate_scan.burst = 0;
    c->rate_code.burst = 0;
    c->rate_pin.burst = 0;
    c->rate_refresh.burst = 0;
    c->max_connections = 1000000;
    c->max_connections_per_ip = 1000000;
    c->max_pending_links_per_ip = 1000000;
    /* Info lines per request would dominate the run; LWFUZZ_LOG=1 keeps them. */
    lw_strlcpy(c->log_level, getenv("LWFUZZ_LOG") ? "info" : "error", sizeof c->log_level);
    dump = getenv("LWFUZZ_DUMP") != NULL;
    if (lw_app_start(&app, false) != LW_OK)
        die("lw_app_start failed (data in %s)", tmpdir);
    started = true;
    atexit(at_exit);
}

lw_app *lwf_app(void)
{
    return &app;
}

/* ---- one connection ------------------------------------------------------ */

bool lwf_exchange(const void *req, size_t len, lw_buf *resp)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        die("socketpair: %s", strerror(errno));
    lw_http_accept_fd(&app.srv, sv[0]); /* the server owns sv[0] from here */
    if (resp)
        lw_buf_reset(resp);
    const uint8_t *p = req;
    size_t off = 0;
    bool shut = false, closed = false;
    int idle = 0;
    int64_t deadline = lw_now_ms() + budget_ms;
    for (unsigned round = 0; round < LWF_ROUNDS_MAX && !closed; round++) {
        bool progress = false;
        while (off < len) {
            ssize_t n = send(sv[1], p + off, len - off, MSG_NOSIGNAL);
            if (n > 0) {
                off += (size_t)n;
                progress = true;
            } else if (n < 0 && errno == EINTR) {
                continue;
            } else {
                if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                    off = len; /* the server hung up: the rest has nowhere to go */
                break;
            }
        }
        if (off == len && !shut) {
            shutdown(sv[1], SHUT_WR); /* the server sees the end of the input */
            shut = true;
        }
        h2o_evloop_run(app.srv.loop, idle > LWF_IDLE_SPIN ? 1 : 0);
        for (;;) {
            char buf[16384];
            ssize_t n = recv(sv[1], buf, sizeof buf, 0);
            if (n > 0) {
                progress = true;
                if (resp && resp->len + (size_t)n <= resp->max)
                    lw_buf_append(resp, buf, (size_t)n);
                continue;
            }
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
                closed = true;
            if (n < 0 && errno == EINTR)
                continue;
            break;
        }
        idle = progress ? 0 : idle + 1;
        if (!progress && lw_now_ms() > deadline)
            break;
    }
    close(sv[1]);
    if (dump)
        fprintf(stderr, "lwfuzz: >>>\n%.*s\nlwfuzz: <<< (%s)\n%.*s\n", (int)len, (const char *)req,
                closed ? "closed" : "budget spent", resp ? (int)resp->len : 0, resp ? resp->data : "");
    /* Let the server see the hang-up now rather than during the next input. */
    for (int i = 0; i < 4; i++)
        h2o_evloop_run(app.srv.loop, 0);
    return closed;
}

int lwf_status(const lw_buf *resp)
{
    /* "HTTP/1.1 201 Created" */
    if (!resp->data || resp->len < 12 || memcmp(resp->data, "HTTP/1.", 7) != 0 || resp->data[8] != ' ')
        return 0;
    int st = 0;
    for (int i = 9; i < 12; i++) {
        char ch = resp->data[i];
        if (ch < '0' || ch > '9')
            return 0;
        st = st * 10 + (ch - '0');
    }
    return st;
}

/* ---- the fixture --------------------------------------------------------- */

/* One request to the server as a client library would send it; the answer's
 * JSON body in *out (NULL when there is none). Returns the status. */
static int call(const char *method, const char *path, const char *token, json_t *body /* stolen */,
                json_t **out)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    lw_buf rq, resp;
    lw_buf_init(&rq, 64 * 1024);
    lw_buf_init(&resp, LWF_RESPONSE_MAX);
    lw_buf_appendf(&rq, "%s %s HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n", method, path);
    if (token)
        lw_buf_appendf(&rq, "Authorization: Bearer %s\r\n", token);
    if (text)
        lw_buf_appendf(&rq, "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s", strlen(text),
                       text);
    else
        lw_buf_append(&rq, "\r\n", 2);
    free(text);
    lwf_exchange(rq.data, rq.len, &resp);
    int status = lwf_status(&resp);
    if (out) {
        const char *b = resp.data ? strstr(resp.data, "\r\n\r\n") : NULL;
        *out = b ? json_loads(b + 4, 0, NULL) : NULL;
    }
    lw_buf_free(&rq);
    lw_buf_free(&resp);
    return status;
}

static void expect(int got, int want, json_t *ans, const char *what)
{
    if (got == want)
        return;
    char *text = ans ? json_dumps(ans, JSON_COMPACT) : NULL;
    die("fixture: %s answered %d, not %d: %s", what, got, want, text ? text : "(no JSON)");
}

static void take(json_t *ans, const char *key, char *dst, size_t cap)
{
    const char *v = json_string_value(json_object_get(ans, key));
    if (!v || lw_strlcpy(dst, v, cap) != LW_OK)
        die("fixture: the answer has no usable \"%s\"", key);
}

static void take_b64(json_t *ans, const char *key, uint8_t *dst, size_t n)
{
    const char *v = json_string_value(json_object_get(ans, key));
    if (!v || lw_b64_decode(dst, n, v, strlen(v), n) != (long)n)
        die("fixture: the answer has no usable \"%s\"", key);
}

static char *b64(char *dst, const uint8_t *src, size_t n)
{
    lw_b64_encode(dst, src, n);
    return dst;
}

/* Keys from fixed seeds: the same public keys in every run. */
static void keypair_from(keypair *k, uint8_t seed_byte)
{
    uint8_t seed[crypto_sign_SEEDBYTES];
    memset(seed, seed_byte, sizeof seed);
    crypto_sign_seed_keypair(k->pk, k->sk, seed);
}

/* Signs the device message of kind (proof.h) over id and raw into base64url. */
static void sign_b64(char dst[SIG_B64], const keypair *k, lw_proof_kind kind, const char *id,
                     const uint8_t raw[LW_PROOF_RAW_LEN])
{
    uint8_t sig[LW_SIG_LEN];
    if (lw_proof_sign(sig, kind, id, raw, LW_PROOF_RAW_LEN, k->sk) != LW_OK)
        die("cannot build the signed message");
    b64(dst, sig, sizeof sig);
}

/* Registers a primary with key k: its token and device id; the challenge when asked. */
static void register_primary(const keypair *k, char tok[LW_CRED_STRLEN], char dev[LW_ID_STRLEN],
                             char account[LW_ID_STRLEN], uint8_t challenge[32])
{
    char handle[32], pk[lw_b64_enc_len(LW_PK_LEN)];
    snprintf(handle, sizeof handle, "fz%lu", ++fx.serial);
    json_t *ans = NULL;
    int st = call("POST", "/v1/accounts", NULL,
                  json_pack("{s:s, s:s, s:{s:s}}", "handle", handle, "public_key", b64(pk, k->pk, LW_PK_LEN),
                            "client", "name", "fuzz phone"),
                  &ans);
    expect(st, 201, ans, "POST /v1/accounts");
    take(ans, "token", tok, LW_CRED_STRLEN);
    take(ans, "device_id", dev, LW_ID_STRLEN);
    if (account)
        take(ans, "account_id", account, LW_ID_STRLEN);
    if (challenge)
        take_b64(ans, "challenge", challenge, 32);
    json_decref(ans);
}

typedef struct opened {
    char id[LW_ID_STRLEN];
    char token[LW_CRED_STRLEN];
    uint8_t nonce[32];
    char payload[LW_PAYLOAD_MAX];
    char code[LW_CODE_STRLEN];
} opened;

static void open_request(const keypair *k, opened *o)
{
    char pk[lw_b64_enc_len(LW_PK_LEN)];
    json_t *ans = NULL;
    int st = call("POST", "/v1/link-requests", NULL,
                  json_pack("{s:s, s:{s:s}}", "public_key", b64(pk, k->pk, LW_PK_LEN), "client", "name",
                            "fuzz companion"),
                  &ans);
    expect(st, 201, ans, "POST /v1/link-requests");
    take(ans, "id", o->id, sizeof o->id);
    take(ans, "token", o->token, sizeof o->token);
    take_b64(ans, "nonce", o->nonce, sizeof o->nonce);
    take(ans, "payload", o->payload, sizeof o->payload);
    take(ans, "code", o->code, sizeof o->code);
    json_decref(ans);
}

static void scan(const opened *o)
{
    json_t *ans = NULL;
    int st = call("POST", "/v1/link-requests/scan", fx.primary_tok, json_pack("{s:s}", "payload", o->payload),
                  &ans);
    expect(st, 200, ans, "POST /v1/link-requests/scan");
    json_decref(ans);
}

static void build_main(void)
{
    memset(fx.primary_tok, 0, sizeof fx.primary_tok);
    char primary_dev[LW_ID_STRLEN];
    register_primary(&fx.primary, fx.primary_tok, primary_dev, fx.account_id, NULL);

    /* The companion, linked the way a browser links: open, scan, approve, complete. */
    opened o;
    char path[128], sig[SIG_B64];
    json_t *ans = NULL;
    open_request(&fx.companion, &o);
    scan(&o);
    sign_b64(sig, &fx.primary, LW_PROOF_ACCOUNT, fx.account_id, fx.companion.pk);
    snprintf(path, sizeof path, "/v1/link-requests/%s/approve", o.id);
    int st = call("POST", path, fx.primary_tok, json_pack("{s:s}", "account_signature", sig), &ans);
    expect(st, 200, ans, "approve");
    json_decref(ans);
    sign_b64(sig, &fx.companion, LW_PROOF_LINK, o.id, o.nonce);
    snprintf(path, sizeof path, "/v1/link-requests/%s/complete", o.id);
    st = call("POST", path, o.token, json_pack("{s:s}", "signature", sig), &ans);
    expect(st, 201, ans, "complete");
    take(ans, "token", fx.companion_tok, sizeof fx.companion_tok);
    take(ans, "device_id", fx.companion_dev, sizeof fx.companion_dev);
    json_decref(ans);

    /* A request scanned by the primary, waiting for its approval. */
    open_request(&fx.scanned, &o);
    scan(&o);
    lw_strlcpy(fx.scanned_id, o.id, sizeof fx.scanned_id);
    lw_strlcpy(fx.scanned_tok, o.token, sizeof fx.scanned_tok);
    sign_b64(fx.approve_sig, &fx.primary, LW_PROOF_ACCOUNT, fx.account_id, fx.scanned.pk);
    sign_b64(fx.complete_sig, &fx.scanned, LW_PROOF_LINK, o.id, o.nonce);

    /* A pending request: its QR payload and pairing code. */
    open_request(&fx.pending, &o);
    lw_strlcpy(fx.pending_id, o.id, sizeof fx.pending_id);
    lw_strlcpy(fx.pending_tok, o.token, sizeof fx.pending_tok);
    lw_strlcpy(fx.pending_payload, o.payload, sizeof fx.pending_payload);
    lw_strlcpy(fx.pending_code, o.code, sizeof fx.pending_code);
    lw_wipe(&o, sizeof o);
    fx.main_ok = true;
}

static void build_spare(void)
{
    register_primary(&fx.spare, fx.spare_tok, fx.spare_dev, NULL, fx.spare_challenge);
    sign_b64(fx.refresh_sig, &fx.spare, LW_PROOF_REFRESH, fx.spare_dev, fx.spare_challenge);
    fx.spare_ok = true;
}

static bool session_ok(const char *tok)
{
    lw_principal who;
    char reason[LW_REASON_MAX];
    return lw_sessions_check(app.srv.sessions, tok, strlen(tok), false, &who, reason) == LW_OK;
}

static bool link_in(const char *id, const char *state)
{
    lw_link_request r;
    bool ok = lw_store_link_get(app.srv.store, id, &r) == LW_OK && strcmp(r.state, state) == 0 &&
              lw_links_remaining(&r) > 0;
    lw_wipe(&r, sizeof r);
    return ok;
}

/* Everything an input can change that the placeholders or the next input's
 * path depend on. */
static bool main_intact(void)
{
    if (!fx.main_ok || !session_ok(fx.primary_tok) || !session_ok(fx.companion_tok))
        return false;
    lw_account a;
    long companions = -1;
    bool ok =
        lw_store_account_get(app.srv.store, fx.account_id, &a) == LW_OK && a.pin_hash[0] == '\0' &&
        a.pin_failures == 0 && a.pin_locked_until == 0 && !a.pin_change_required &&
        lw_store_session_count_active_companions(app.srv.store, fx.account_id, NULL, &companions) == LW_OK &&
        companions == 1 && link_in(fx.scanned_id, "scanned") && link_in(fx.pending_id, "pending");
    lw_wipe(&a, sizeof a);
    return ok;
}

static bool spare_intact(void)
{
    if (!fx.spare_ok || !session_ok(fx.spare_tok))
        return false;
    lw_session s;
    bool ok = lw_store_session_get(app.srv.store, fx.spare_dev, &s) == LW_OK &&
              memcmp(s.challenge, fx.spare_challenge, sizeof s.challenge) == 0;
    lw_wipe(&s, sizeof s);
    return ok;
}

void lwf_fixture(void)
{
    lwf_server_init();
    if (!fx.serial) {
        keypair_from(&fx.primary, 0x11);
        keypair_from(&fx.companion, 0x22);
        keypair_from(&fx.scanned, 0x33);
        keypair_from(&fx.pending, 0x44);
        keypair_from(&fx.spare, 0x55);
    }
    /* A new account rather than repairs: the old one may hold any state. */
    if (!main_intact())
        build_main();
    if (!spare_intact())
        build_spare();
}

/* ---- placeholders -------------------------------------------------------- */

static const struct {
    uint8_t ch;
    const char *value;
} placeholders[] = {
    {'P', fx.primary_tok},  {'C', fx.companion_tok}, {'D', fx.companion_dev}, {'V', fx.spare_tok},
    {'F', fx.refresh_sig},  {'R', fx.scanned_id},    {'L', fx.scanned_tok},   {'G', fx.approve_sig},
    {'N', fx.complete_sig}, {'I', fx.pending_id},    {'M', fx.pending_tok},   {'Q', fx.pending_payload},
    {'K', fx.pending_code},
};

static const char *placeholder(uint8_t ch)
{
    for (size_t i = 0; i < sizeof placeholders / sizeof placeholders[0]; i++)
        if (placeholders[i].ch == ch)
            return placeholders[i].value;
    return NULL;
}

int lwf_expand(const uint8_t *in, size_t len, lw_buf *out)
{
    lw_buf_reset(out);
    size_t run = 0; /* bytes copied in one append, not one call per byte */
    for (size_t i = 0; i < len; i++) {
        const char *v;
        if (in[i] == '@' && i + 2 < len && in[i + 2] == '@' && (v = placeholder(in[i + 1])) != NULL) {
            if (lw_buf_append(out, in + i - run, run) != LW_OK || lw_buf_append(out, v, strlen(v)) != LW_OK)
                return LW_ETOOBIG;
            run = 0;
            i += 2;
            continue;
        }
        run++;
    }
    if (lw_buf_append(out, in + len - run, run) != LW_OK)
        return LW_ETOOBIG;
    return LW_OK;
}
