/* The link state machine (src/server/domain/link.c) built alone: the domain
 * library over a real store (a SQLite file, or PostgreSQL with
 * LINKWARD_TEST_PG: store_fixture.h), a fake events sink and no loop (refs do
 * not rotate; requests still end by the clock), through lw_domain_deps; no
 * lw_app, bus or HTTP. pending -> scanned -> approved -> completed, denied,
 * expired, the steps a state refuses, the device limit, the PIN decision.
 * (The risk rules have their own test, test_risk.c, with a GeoIP world.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "domain_fixture.h"
#include "store_fixture.h"

#include "code.h"
#include "config.h"
#include "cred.h"
#include "crypto.h"
#include "deps.h"
#include "events.h"
#include "link.h"
#include "lw.h"
#include "payload.h"
#include "place.h"
#include "session.h"
#include "store.h"

#define ACCT "acct-link"
#define PHONE "acct-link-p"
#define OTHER_PHONE "someone-else-p"
#define ORIGIN "https://link.example"
#define COMPANION_IP "192.0.2.10"
#define PHONE_IP "198.51.100.7"

/* What the companion and the account heard. */
typedef struct heard {
    char link_events[16][32]; /* the event names, in order */
    int nlink, closed, account_events;
    char last_account_event[32];
    json_t *last_link; /* the last link event (a copy) */
} heard;

typedef struct fixture {
    store_fx fx;
    lw_config cfg;
    uint8_t hash_key[LW_KEY_LEN];
    uint8_t server_pk[LW_PK_LEN], server_sk[LW_SK_LEN];
    lw_store *store;
    lw_events events;
    heard h;
    lw_sessions *sessions;
    lw_links *links;
    lw_domain_deps deps;
} fixture;

static void to_link(void *ctx, const char *request_id, json_t *ev)
{
    fixture *f = ctx;
    (void)request_id;
    const char *name = json_string_value(json_object_get(ev, "event"));
    if (f->h.nlink < 16)
        lw_strlcpy(f->h.link_events[f->h.nlink++], name ? name : "?", sizeof f->h.link_events[0]);
    json_decref(f->h.last_link);
    f->h.last_link = json_deep_copy(ev);
}

static void close_link(void *ctx, const char *request_id)
{
    fixture *f = ctx;
    (void)request_id;
    f->h.closed++;
}

static void to_account(void *ctx, const char *account_id, const char *except_device, json_t *ev)
{
    fixture *f = ctx;
    (void)except_device;
    assert_string_equal(account_id, ACCT);
    const char *name = json_string_value(json_object_get(ev, "event"));
    lw_strlcpy(f->h.last_account_event, name ? name : "?", sizeof f->h.last_account_event);
    f->h.account_events++;
}

static const char *last_link_event(const fixture *f)
{
    return f->h.nlink ? f->h.link_events[f->h.nlink - 1] : "";
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    fx_init(&f->fx, "link");
    lw_config_defaults(&f->cfg);
    lw_strlcpy(f->cfg.public_origin, ORIGIN, sizeof f->cfg.public_origin);
    lw_random(f->hash_key, sizeof f->hash_key);
    if (lw_sign_keypair(f->server_pk, f->server_sk) != LW_OK ||
        lw_store_open(&f->store, f->fx.location) != LW_OK)
        return -1;
    if (dx_account_create(f->store, ACCT, "linker", PHONE, NULL) != LW_OK)
        return -1;
    f->events = (lw_events){.ctx = f, .to_link = to_link, .close_link = close_link, .to_account = to_account};
    f->deps = (lw_domain_deps){.store = f->store,
                               .events = &f->events,
                               .cfg = &f->cfg,
                               .hash_key = f->hash_key,
                               .server_sk = f->server_sk,
                               .server_pk = f->server_pk};
    f->sessions = lw_sessions_new(&f->deps);
    f->deps.sessions = f->sessions;
    f->links = lw_links_new(&f->deps);
    if (!f->sessions || !f->links)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    lw_links_free(f->links);
    lw_sessions_free(f->sessions);
    lw_store_close(f->store);
    fx_fini(&f->fx);
    json_decref(f->h.last_link);
    free(f);
    return 0;
}

/* A companion's request, opened as lw_api_link_create does (its first ref
 * rendered, stored, shown), expiring `ttl_ms` from now, for device key pk
 * (NULL: a new one). Its pairing code is written into code. */
static void open_request_for(fixture *f, lw_link_request *r, int64_t ttl_ms, char code[LW_CODE_STRLEN],
                             const uint8_t *pk)
{
    memset(r, 0, sizeof *r);
    uint8_t sk[LW_SK_LEN];
    if (pk)
        memcpy(r->public_key, pk, LW_PK_LEN);
    else
        assert_int_equal(lw_sign_keypair(r->public_key, sk), LW_OK);
    lw_random_id(r->id);
    lw_random(r->nonce, sizeof r->nonce);
    int64_t now = lw_now_ms();
    r->created_at = now;
    r->expires_at = now + ttl_ms;
    lw_strlcpy(r->state, "pending", sizeof r->state);
    lw_strlcpy(r->name, "Firefox on Linux", sizeof r->name);
    lw_strlcpy(r->place.ip, COMPANION_IP, sizeof r->place.ip);
    lw_cred cred;
    lw_cred_new(&cred, LW_CRED_LINK);
    lw_cred_selector_str(&cred, r->token_selector);
    lw_cred_hash(&cred, f->hash_key, r->token_hash);
    lw_cred_wipe(&cred);
    lw_code_new(code);
    lw_keyed_hash(r->code_hash, f->hash_key, code, strlen(code));
    lw_link_ref ref;
    lw_links_ref_prepare(f->links, r, 0, &ref);
    lw_links_ref_render(&ref);
    assert_int_equal(lw_links_begin(f->links, r, code, &ref), LW_OK);
    lw_links_ref_clear(&ref);
}

static void open_request(fixture *f, lw_link_request *r, int64_t ttl_ms, char code[LW_CODE_STRLEN])
{
    open_request_for(f, r, ttl_ms, code, NULL);
}

/* The same, with the payload it shows. */
static void open_shown(fixture *f, lw_link_request *r, char code[LW_CODE_STRLEN],
                       char payload[LW_PAYLOAD_MAX])
{
    open_request(f, r, 60000, code);
    assert_int_equal(lw_links_payload(f->links, r, payload), LW_OK);
}

static void state_is(fixture *f, const char *id, const char *want)
{
    lw_link_request r;
    assert_int_equal(lw_store_link_get(f->store, id, &r), LW_OK);
    assert_string_equal(r.state, want);
}

static lw_link_status scan_as(fixture *f, const char *payload, const char *code, const char *device,
                              lw_link_scanned *out)
{
    lw_link_scan in = {
        .payload = payload, .code = code, .account_id = ACCT, .device_id = device, .ip = PHONE_IP};
    lw_link_status st = lw_links_scan(f->links, &in, out).status;
    lw_risk_clear(&out->risk);
    return st;
}

static lw_link_status scan(fixture *f, const char *payload, const char *code)
{
    lw_link_scanned out;
    return scan_as(f, payload, code, PHONE, &out);
}

static void account_of(fixture *f, lw_account *a)
{
    assert_int_equal(lw_store_account_get(f->store, ACCT, a), LW_OK);
}

/* Scans r by its payload and approves it as the phone (no PIN). */
static void scan_and_approve(fixture *f, lw_link_request *r)
{
    char payload[LW_PAYLOAD_MAX];
    assert_int_equal(lw_links_payload(f->links, r, payload), LW_OK);
    assert_int_equal(scan(f, payload, NULL), LW_LINK_DONE);
    assert_int_equal(lw_links_load_scanned(f->links, r->id, PHONE, r).status, LW_LINK_DONE);
    lw_account a;
    account_of(f, &a);
    assert_int_equal(lw_links_approval(f->links, r, &a, PHONE_IP, false, false).status, LW_LINK_DONE);
    assert_int_equal(lw_store_link_get(f->store, r->id, r), LW_OK);
}

static lw_link_step complete(fixture *f, const lw_link_request *r, lw_session *s, char token[LW_CRED_STRLEN])
{
    lw_place here;
    lw_netinfo net;
    lw_place_lookup(&f->deps, COMPANION_IP, &here, &net);
    return lw_links_complete(f->links, r, &here, &net, s, token);
}

static void test_pending_to_completed(void **state)
{
    fixture *f = *state;
    lw_link_request r;
    char code[LW_CODE_STRLEN], payload[LW_PAYLOAD_MAX];
    open_shown(f, &r, code, payload);
    /* Not approvable, not completable while pending. */
    lw_link_request got;
    assert_int_equal(lw_links_load_scanned(f->links, r.id, PHONE, &got).status, LW_LINK_NOT_FOUND);
    assert_int_equal(lw_links_completable(&r).status, LW_LINK_ANSWERED);

    lw_link_scanned out;
    lw_link_scan in = {.payload = payload, .account_id = ACCT, .device_id = PHONE, .ip = PHONE_IP};
    assert_int_equal(lw_links_scan(f->links, &in, &out).status, LW_LINK_DONE);
    assert_false(out.rescan);
    assert_string_equal(out.payload, payload);
    assert_string_equal(out.r.id, r.id);
    assert_false(out.pin_required);
    assert_false(out.blocked);
    assert_int_equal(out.risk.level, LW_RISK_LOW);
    lw_risk_clear(&out.risk);
    state_is(f, r.id, "scanned");
    assert_string_equal(last_link_event(f), "link.scanned");

    /* The same phone may scan again (nothing changes, nobody is told)... */
    int told = f->h.nlink;
    assert_int_equal(scan_as(f, payload, NULL, PHONE, &out), LW_LINK_DONE);
    assert_true(out.rescan);
    assert_int_equal(f->h.nlink, told);
    /* ...anyone else finds it used, and cannot answer it. */
    assert_int_equal(scan_as(f, payload, NULL, OTHER_PHONE, &out), LW_LINK_ALREADY_SCANNED);
    assert_int_equal(lw_links_load_scanned(f->links, r.id, OTHER_PHONE, &got).status, LW_LINK_NOT_FOUND);
    assert_int_equal(lw_links_load_scanned(f->links, "no-such-request", PHONE, &got).status,
                     LW_LINK_NOT_FOUND);

    /* Approval without a PIN approves at once. */
    assert_int_equal(lw_links_load_scanned(f->links, r.id, PHONE, &got).status, LW_LINK_DONE);
    lw_account a;
    account_of(f, &a);
    assert_int_equal(lw_links_approval(f->links, &got, &a, PHONE_IP, false, false).status, LW_LINK_DONE);
    state_is(f, r.id, "approved");
    assert_string_equal(last_link_event(f), "link.approved");
    assert_int_equal(f->h.closed, 0);
    /* Approved is no longer scanned: a second answer is refused. */
    assert_int_equal(lw_links_approve(f->links, &got).status, LW_LINK_CONFLICT);
    assert_int_equal(lw_links_deny(f->links, &got).status, LW_LINK_CONFLICT);
    assert_int_equal(lw_links_load_scanned(f->links, r.id, PHONE, &got).status, LW_LINK_ANSWERED);
    assert_string_equal(got.state, "approved");

    assert_int_equal(lw_links_completable(&got).status, LW_LINK_DONE);
    lw_session s;
    char token[LW_CRED_STRLEN];
    assert_int_equal(complete(f, &got, &s, token).status, LW_LINK_DONE);
    state_is(f, r.id, "completed");
    assert_string_equal(last_link_event(f), "link.completed");
    assert_int_equal(f->h.closed, 1);
    assert_string_equal(s.account_id, ACCT);
    assert_string_equal(s.role, LW_ROLE_COMPANION);
    assert_string_equal(s.name, "Firefox on Linux");
    assert_memory_equal(s.public_key, r.public_key, LW_PK_LEN);
    assert_true(strlen(token) > 0);
    /* The session is stored and its credential checks. */
    lw_session stored;
    assert_int_equal(lw_store_session_get(f->store, s.id, &stored), LW_OK);
    assert_string_equal(stored.state, "active");
    lw_principal who;
    char reason[LW_REASON_MAX];
    assert_int_equal(lw_sessions_check(f->sessions, token, strlen(token), false, &who, reason), LW_OK);
    assert_string_equal(who.device_id, s.id);
    /* The account heard device.linked (and its alert). */
    assert_true(f->h.account_events >= 2);
    lw_alert *list = NULL;
    size_t n = 0;
    bool linked = false;
    assert_int_equal(lw_store_alert_list(f->store, ACCT, 10, &list, &n), LW_OK);
    for (size_t i = 0; i < n; i++)
        linked |= strcmp(list[i].kind, "device.linked") == 0;
    lw_free(list);
    assert_true(linked);

    /* Over: nothing moves it again. */
    assert_int_equal(lw_store_link_get(f->store, r.id, &got), LW_OK);
    assert_int_equal(lw_links_completable(&got).status, LW_LINK_ANSWERED);
    assert_int_equal(complete(f, &got, &s, token).status, LW_LINK_CONFLICT);
    assert_int_equal(scan(f, payload, NULL), LW_LINK_ALREADY_SCANNED);
    lw_wipe(token, sizeof token);
}

static void test_scan_by_code(void **state)
{
    fixture *f = *state;
    lw_link_request r;
    char code[LW_CODE_STRLEN];
    open_request(f, &r, 60000, code);
    assert_int_equal(scan(f, NULL, "12-34"), LW_LINK_BAD_CODE);
    assert_int_equal(scan(f, NULL, "ZZZZ-ZZZZ"), LW_LINK_NO_CODE);
    lw_link_scanned out;
    assert_int_equal(scan_as(f, NULL, code, PHONE, &out), LW_LINK_DONE);
    /* The phone checks the current ref's payload, made for the code. */
    char payload[LW_PAYLOAD_MAX];
    assert_int_equal(lw_links_payload(f->links, &r, payload), LW_OK);
    assert_string_equal(out.payload, payload);
    assert_ptr_equal(out.payload, out.code_payload);
    state_is(f, r.id, "scanned");
}

static void test_payload_refusals(void **state)
{
    fixture *f = *state;
    lw_link_request r;
    char code[LW_CODE_STRLEN], payload[LW_PAYLOAD_MAX];
    open_request(f, &r, 60000, code);
    assert_int_equal(scan(f, "lw1:nonsense", NULL), LW_LINK_BAD_PAYLOAD);

    lw_link_ref ref;
    lw_links_ref_prepare(f->links, &r, 0, &ref);
    /* Signed by another key. */
    uint8_t pk[LW_PK_LEN], sk[LW_SK_LEN];
    assert_int_equal(lw_sign_keypair(pk, sk), LW_OK);
    assert_int_equal(lw_payload_make(payload, sizeof payload, ORIGIN, ref.ref, ref.fp, sk), LW_OK);
    assert_int_equal(scan(f, payload, NULL), LW_LINK_BAD_SIGNATURE);
    /* Signed here, for another site. */
    lw_link_scanned out;
    assert_int_equal(
        lw_payload_make(payload, sizeof payload, "https://evil.example", ref.ref, ref.fp, f->server_sk),
        LW_OK);
    assert_int_equal(scan_as(f, payload, NULL, PHONE, &out), LW_LINK_WRONG_ORIGIN);
    assert_string_equal(out.origin, "https://evil.example");
    /* Signed here, naming another device's key. */
    uint8_t other_fp[LW_FP_LEN];
    lw_fingerprint(other_fp, pk);
    assert_int_equal(lw_payload_make(payload, sizeof payload, ORIGIN, ref.ref, other_fp, f->server_sk),
                     LW_OK);
    assert_int_equal(scan(f, payload, NULL), LW_LINK_KEY_MISMATCH);
    /* Signed here, with a ref no request has (expired or replaced). */
    lw_link_ref next;
    lw_links_ref_prepare(f->links, &r, 1, &next);
    assert_int_equal(lw_payload_make(payload, sizeof payload, ORIGIN, next.ref, next.fp, f->server_sk),
                     LW_OK);
    assert_int_equal(scan(f, payload, NULL), LW_LINK_REF_UNKNOWN);
    /* The current ref, signed here but not the text this node shows: still
     * verified, and good. */
    assert_int_equal(lw_payload_make(payload, sizeof payload, ORIGIN, ref.ref, ref.fp, f->server_sk), LW_OK);
    assert_int_equal(scan(f, payload, NULL), LW_LINK_DONE);
    lw_links_ref_clear(&ref);
    lw_links_ref_clear(&next);
    state_is(f, r.id, "scanned");
}

static void test_denied(void **state)
{
    fixture *f = *state;
    lw_link_request r, got;
    char code[LW_CODE_STRLEN], payload[LW_PAYLOAD_MAX];
    open_shown(f, &r, code, payload);
    assert_int_equal(scan(f, payload, NULL), LW_LINK_DONE);
    assert_int_equal(lw_links_load_scanned(f->links, r.id, PHONE, &got).status, LW_LINK_DONE);
    assert_int_equal(lw_links_deny(f->links, &got).status, LW_LINK_DONE);
    state_is(f, r.id, "denied");
    assert_string_equal(last_link_event(f), "link.denied");
    assert_int_equal(f->h.closed, 1); /* final: the companion's sockets close */
    /* Answered: neither deny nor approve again, nor a new scan. */
    assert_int_equal(lw_links_deny(f->links, &got).status, LW_LINK_CONFLICT);
    assert_int_equal(lw_links_load_scanned(f->links, r.id, PHONE, &got).status, LW_LINK_ANSWERED);
    assert_string_equal(got.state, "denied");
    assert_int_equal(scan(f, payload, NULL), LW_LINK_ANSWERED);
    assert_int_equal(lw_links_completable(&got).status, LW_LINK_ANSWERED);
}

static void test_expired(void **state)
{
    fixture *f = *state;
    lw_link_request r, got;
    char code[LW_CODE_STRLEN], payload[LW_PAYLOAD_MAX];
    /* Out of time before anyone scanned it. */
    open_shown(f, &r, code, payload);
    char sql[160];
    snprintf(sql, sizeof sql, "UPDATE link_requests SET expires_at = 1 WHERE id = '%s'", r.id);
    fx_exec(&f->fx, sql);
    assert_int_equal(scan(f, payload, NULL), LW_LINK_EXPIRED);
    assert_int_equal(scan(f, NULL, code), LW_LINK_EXPIRED);

    /* Its ref lapsed (the request itself still runs): scan the current one. */
    open_shown(f, &r, code, payload);
    snprintf(sql, sizeof sql, "UPDATE link_requests SET ref_expires_at = 1 WHERE id = '%s'", r.id);
    fx_exec(&f->fx, sql);
    assert_int_equal(scan(f, payload, NULL), LW_LINK_REF_EXPIRED);

    /* Scanned, then out of time: neither approved nor denied. */
    open_shown(f, &r, code, payload);
    assert_int_equal(scan(f, payload, NULL), LW_LINK_DONE);
    snprintf(sql, sizeof sql, "UPDATE link_requests SET expires_at = 1 WHERE id = '%s'", r.id);
    fx_exec(&f->fx, sql);
    assert_int_equal(lw_links_load_scanned(f->links, r.id, PHONE, &got).status, LW_LINK_EXPIRED);

    /* Approved, then out of time (or marked expired): not completable. */
    open_request(f, &r, 60000, code);
    scan_and_approve(f, &r);
    assert_int_equal(lw_links_completable(&r).status, LW_LINK_DONE);
    got = r;
    got.expires_at = lw_now_ms() - 1;
    assert_int_equal(lw_links_completable(&got).status, LW_LINK_EXPIRED);
    got = r;
    lw_strlcpy(got.state, "expired", sizeof got.state);
    assert_int_equal(lw_links_completable(&got).status, LW_LINK_EXPIRED);
}

static void test_device_limit(void **state)
{
    fixture *f = *state;
    f->cfg.max_companions = 1;
    lw_link_request r, racer, third;
    char code[LW_CODE_STRLEN], token[LW_CRED_STRLEN];
    lw_session s;
    /* Two approved for the one slot: the first completes... */
    open_request(f, &r, 60000, code);
    scan_and_approve(f, &r);
    open_request(f, &racer, 60000, code);
    scan_and_approve(f, &racer);
    assert_int_equal(complete(f, &r, &s, token).status, LW_LINK_DONE);
    /* ...the second lost the race: refused with the limit, and denied. */
    lw_link_step st = complete(f, &racer, &s, token);
    assert_int_equal(st.status, LW_LINK_DEVICE_LIMIT);
    assert_int_equal(st.limit, 1);
    state_is(f, racer.id, "denied");
    assert_string_equal(last_link_event(f), "link.denied");
    assert_string_equal(json_string_value(json_object_get(f->h.last_link, "reason")), "limit");

    /* At the limit already: the approval itself refuses, and denies. */
    char payload[LW_PAYLOAD_MAX];
    open_shown(f, &third, code, payload);
    assert_int_equal(scan(f, payload, NULL), LW_LINK_DONE);
    assert_int_equal(lw_links_load_scanned(f->links, third.id, PHONE, &third).status, LW_LINK_DONE);
    lw_account a;
    account_of(f, &a);
    st = lw_links_approval(f->links, &third, &a, PHONE_IP, false, false);
    assert_int_equal(st.status, LW_LINK_DEVICE_LIMIT);
    assert_int_equal(st.limit, 1);
    state_is(f, third.id, "denied");
    char text[LW_LINK_LIMIT_TEXT_MAX];
    assert_int_equal(lw_links_limit_text(text, sizeof text, 1, false), LW_OK);
    assert_string_equal(json_string_value(json_object_get(f->h.last_link, "message")), text);
    assert_string_equal(text,
                        "This account already has 1 linked devices, the limit. Log one out from the phone "
                        "(Linked devices) to free a slot, then link this device again.");
    assert_int_equal(lw_links_limit_text(text, 20, 1, true), LW_ETOOBIG);

    /* The device that linked may link again at the limit: its own session
     * does not count, and the completion ends it (relinked). */
    lw_link_request again;
    char first_id[LW_ID_STRLEN];
    lw_strlcpy(first_id, s.id, sizeof first_id);
    open_request_for(f, &again, 60000, code, r.public_key);
    scan_and_approve(f, &again);
    assert_int_equal(complete(f, &again, &s, token).status, LW_LINK_DONE);
    assert_string_not_equal(s.id, first_id);
    lw_session old;
    assert_true(lw_store_session_get(f->store, first_id, &old) != LW_OK || strcmp(old.state, "active") != 0);
    lw_wipe(token, sizeof token);
}

static void test_pin_decision(void **state)
{
    fixture *f = *state;
    lw_link_request r;
    char code[LW_CODE_STRLEN], payload[LW_PAYLOAD_MAX];
    open_shown(f, &r, code, payload);
    lw_account a;
    account_of(f, &a);
    lw_strlcpy(a.pin_hash, "$argon2id$checked-elsewhere", sizeof a.pin_hash);
    assert_int_equal(lw_store_account_update(f->store, &a), LW_OK);

    lw_link_scanned out;
    assert_int_equal(scan_as(f, payload, NULL, PHONE, &out), LW_LINK_DONE);
    assert_true(out.pin_required);
    assert_int_equal(lw_links_load_scanned(f->links, r.id, PHONE, &r).status, LW_LINK_DONE);
    /* A PIN is set: none given is refused, one given is the caller's to check. */
    assert_int_equal(lw_links_approval(f->links, &r, &a, PHONE_IP, false, false).status, LW_LINK_PIN_NEEDED);
    assert_int_equal(lw_links_approval(f->links, &r, &a, PHONE_IP, false, true).status, LW_LINK_CHECK_PIN);
    state_is(f, r.id, "scanned"); /* nothing approved yet */
    /* Secured after an alert: the PIN must change first, whatever was given. */
    a.pin_change_required = true;
    assert_int_equal(lw_links_approval(f->links, &r, &a, PHONE_IP, false, true).status,
                     LW_LINK_PIN_CHANGE_REQUIRED);
    a.pin_change_required = false;
    /* The server requires a PIN the account does not have. */
    a.pin_hash[0] = '\0';
    f->cfg.pin_required = true;
    assert_int_equal(lw_links_approval(f->links, &r, &a, PHONE_IP, false, false).status,
                     LW_LINK_PIN_SETUP_REQUIRED);
    state_is(f, r.id, "scanned");
    /* The PIN checked out: the caller approves. */
    assert_int_equal(lw_links_approve(f->links, &r).status, LW_LINK_DONE);
    state_is(f, r.id, "approved");
}

int main(void)
{
    print_message("[   NOTE   ] store: %s\n", fx_backend_name());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pending_to_completed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_by_code, setup, teardown),
        cmocka_unit_test_setup_teardown(test_payload_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_denied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pin_decision, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
