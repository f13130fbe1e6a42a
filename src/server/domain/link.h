/*
 * link.h — the live side of link requests: the rotating QR refs (60 s, then
 * 20 s each, six in all, by default), their signed payloads and SVGs, and the
 * events pushed to the waiting companion. The durable side (state, hashes of
 * ref, code and token) is in the store; this module keeps, per request being
 * shown, the current payload in memory and a timer that rotates or expires it
 * (without a loop in deps, as in a unit test, refs do not rotate and requests
 * end by the clock alone). It also holds the state machine, the rules of each
 * step from scan to completion (below, "the state machine").
 */
#ifndef LW_LINK_H
#define LW_LINK_H

#include <jansson.h>

#include "deps.h"
#include "code.h"
#include "cred.h"
#include "payload.h"
#include "risk.h"
#include "store.h"

lw_links *lw_links_new(const lw_domain_deps *deps);
void lw_links_free(lw_links *L);

/* A ref in the making, in three steps so that the costly one (signing the
 * payload, drawing its QR code: most of the CPU of a new link request) can
 * run off the loop: prepare (loop: ref number idx of r, for r's key), render
 * (any thread: touches only the struct and the server's key), then
 * lw_links_begin (loop). clear frees and wipes what is left. */
typedef struct lw_link_ref {
    uint8_t ref[LW_ID_BYTES];
    uint8_t fp[LW_FP_LEN];
    char origin[LW_ORIGIN_MAX];
    const uint8_t *server_sk; /* the app's, which outlives every job */
    char payload[LW_PAYLOAD_MAX];
    char *svg;
    int rc; /* of render */
} lw_link_ref;

void lw_links_ref_prepare(lw_links *L, const lw_link_request *r, int idx, lw_link_ref *f);
void lw_links_ref_render(lw_link_ref *f);
void lw_links_ref_clear(lw_link_ref *f);

/* Stores a new request r (the caller filled id, token, code hash, key, nonce,
 * who is asking, times and state "pending") with its rendered first ref,
 * inserts it and starts rotating. code is the display form, kept to answer
 * polls. LW_ECONFLICT if the code or token collides: first is left as it
 * was, to retry with a new token and code. */
int lw_links_begin(lw_links *L, lw_link_request *r, const char code[LW_CODE_STRLEN], lw_link_ref *first);

/* {"payload","qr_svg","code","ref_expires_in"} for a pending request, taking
 * over requests that lost their live state (server restart) with a fresh ref.
 * NULL if it is not pending or on failure. */
json_t *lw_links_view(lw_links *L, const lw_link_request *r);
/* The same four members written as JSON text into b, each preceded by a
 * comma (',"payload":…,"qr_svg":…,"code":…,"ref_expires_in":N'), for an
 * answer built by hand: the SVG is copied, not decoded and re-encoded.
 * LW_ENOTFOUND if the request is not pending. */
int lw_links_view_append(lw_links *L, const lw_link_request *r, lw_buf *b);
/* The current payload text of a pending or scanned request (for scans by
 * code), on any node: this node's copy when it shows the request, else
 * rebuilt from the stored ref index and signed. LW_ENOTFOUND if the request
 * is over. */
int lw_links_payload(lw_links *L, const lw_link_request *r, char dst[LW_PAYLOAD_MAX]);

/* Whether payload is exactly the text this node made and signed for the
 * request's current ref (constant-time comparison). */
bool lw_links_issued(lw_links *L, const char *request_id, const char *payload);

/* A companion socket joined: sends it the current ref. */
void lw_links_on_socket(lw_links *L, const lw_link_request *r);
/* Pushes {"event": ev} to the companion; final events close its sockets and stop the rotation. */
void lw_links_notify(lw_links *L, const char *request_id, const char *ev, bool final);
/* The same with an event of the caller's making (taken over, may be NULL). */
void lw_links_push(lw_links *L, const char *request_id, json_t *ev, bool final);

/* How many requests from this address are being shown (pending) right now. */
long lw_links_pending_from(lw_links *L, const char *ip);

/* Milliseconds left before the whole request expires (0 if past). */
int64_t lw_links_remaining(const lw_link_request *r);

/* ---- the state machine (PRODUCT.md §2) ----
 *
 *   pending --scan--> scanned --approve--> approved --complete--> completed
 *                     scanned --deny-----> denied
 *   pending, scanned, approved --time, or the last ref--> expired
 *   scanned, approved --the account at its device limit--> denied
 *
 * Each step checks what the state allows, makes the transition in the store
 * (a transition that lost a race is LW_LINK_CONFLICT), tells the companion
 * waiting on the request (link.* events), counts and logs it, and returns an
 * lw_link_step: LW_LINK_DONE, or why not. The HTTP layer only parses and
 * maps a step to an answer; the sentences of its refusals are its own. */
typedef enum lw_link_status {
    LW_LINK_DONE,      /* the step happened */
    LW_LINK_STORE,     /* the store failed (rc) while `doing` */
    LW_LINK_NOT_FOUND, /* no such request scanned by this device */
    LW_LINK_EXPIRED,   /* the request is over: expired, or out of time */
    LW_LINK_ANSWERED,  /* not in the state the step needs (r->state says which) */
    LW_LINK_CONFLICT,  /* another step moved it first */
    /* scan */
    LW_LINK_BAD_PAYLOAD,     /* not a Linkward QR payload */
    LW_LINK_BAD_SIGNATURE,   /* not signed by this server */
    LW_LINK_WRONG_ORIGIN,    /* it names another origin (lw_link_scanned.origin) */
    LW_LINK_REF_UNKNOWN,     /* no request has this ref (expired or replaced) */
    LW_LINK_KEY_MISMATCH,    /* its fingerprint is not the request's key */
    LW_LINK_REF_EXPIRED,     /* this ref lapsed, the request is still pending */
    LW_LINK_BAD_CODE,        /* not a pairing code */
    LW_LINK_NO_CODE,         /* no request waits with this code */
    LW_LINK_ALREADY_SCANNED, /* another device scanned it, or it moved on */
    /* approve */
    LW_LINK_PIN_CHANGE_REQUIRED, /* the account was secured: a new PIN first */
    LW_LINK_RISK_BLOCKED,        /* high risk, and the server refuses those */
    LW_LINK_RISK_NOT_ACCEPTED,   /* high risk, not confirmed (accept_risk) */
    LW_LINK_DEVICE_LIMIT,        /* the account is at its limit (step.limit); the request was denied */
    LW_LINK_PIN_SETUP_REQUIRED,  /* the server requires a PIN, the account has none */
    LW_LINK_PIN_NEEDED,          /* the account has a PIN and none was given */
    LW_LINK_CHECK_PIN,           /* check the given PIN, then lw_links_approve */
    LW_LINK_STATUS_COUNT
} lw_link_status;

typedef struct lw_link_step {
    lw_link_status status;
    int rc;            /* LW_LINK_STORE: the store's error */
    const char *doing; /* LW_LINK_STORE: what failed, "recording the scan" (static) */
    long limit;        /* LW_LINK_DEVICE_LIMIT: the number of devices allowed */
} lw_link_step;

/* The device limit in words (PRODUCT §2.7): what is full, and how to free a
 * slot, for the phone (to_phone) or for the device that asked. LW_OK, or
 * LW_ETOOBIG with out cut (cannot happen with LW_LINK_LIMIT_TEXT_MAX). */
#define LW_LINK_LIMIT_TEXT_MAX 256
int lw_links_limit_text(char *out, size_t cap, long limit, bool to_phone);

/* A scan by the primary device_id of account_id, from address ip: payload
 * (the QR text) or code (typed), exactly one of them. */
typedef struct lw_link_scan {
    const char *payload, *code;
    const char *account_id, *device_id, *ip;
} lw_link_scan;

typedef struct lw_link_scanned {
    lw_link_request r;          /* the request, now scanned by device_id */
    bool rescan;                /* the same phone scanned it again: nothing changed */
    const char *payload;        /* what the phone checks: the scanned text, or the current ref's */
    bool pin_required;          /* approving will need a PIN */
    lw_risk risk;               /* owned: lw_risk_clear, whatever the step returned */
    bool blocked;               /* high risk on a server that refuses it */
    char origin[LW_ORIGIN_MAX]; /* LW_LINK_WRONG_ORIGIN: the origin named */
    char code_payload[LW_PAYLOAD_MAX];
} lw_link_scanned;

/* pending -> scanned (or the same phone again). Verifies the payload (this
 * node's own text needs no second signature check), finds the request by
 * ref or code, then records the scan, tells the companion link.scanned, and
 * assesses the risk from ip. out->payload points into in or out. */
lw_link_step lw_links_scan(lw_links *L, const lw_link_scan *in, lw_link_scanned *out);

/* Loads request_id for the device that scanned it: LW_LINK_NOT_FOUND for
 * anyone else (other accounts' requests are not revealed), LW_LINK_EXPIRED,
 * LW_LINK_ANSWERED unless it is scanned. */
lw_link_step lw_links_load_scanned(lw_links *L, const char *request_id, const char *device_id,
                                   lw_link_request *r);

/* Whether scanned request r may be approved by account a from phone_ip, in
 * this order: a PIN change the account owes, the risk (a second confirmation,
 * accept_risk, for a high one), the device limit (at it, r is denied and the
 * companion hears why), the PIN. Without a PIN to check it approves at once
 * (lw_links_approve); LW_LINK_CHECK_PIN leaves the PIN to the caller. */
lw_link_step lw_links_approval(lw_links *L, const lw_link_request *r, const lw_account *a,
                               const char *phone_ip, bool accept_risk, bool pin_given);
/* scanned -> approved; the companion hears link.approved. */
lw_link_step lw_links_approve(lw_links *L, const lw_link_request *r);
/* scanned -> denied; the companion hears link.denied. */
lw_link_step lw_links_deny(lw_links *L, const lw_link_request *r);

/* Whether r may be completed: LW_LINK_EXPIRED, LW_LINK_ANSWERED unless it
 * is approved. Pure (and the clock). */
lw_link_step lw_links_completable(const lw_link_request *r);
/* approved -> completed, once the caller verified the possession proof: the
 * companion's session s (filled here; the caller's memory) and its
 * credential token are issued in the completion's transaction, which also
 * ends the session the same key had (relinked); then the cache, the
 * companion (link.completed), the account (device.linked, its alert and the
 * risk's) hear it. here and here_net: where the completing device is. At the
 * device limit (another approval took the last slot) r is denied. */
lw_link_step lw_links_complete(lw_links *L, const lw_link_request *r, const lw_place *here,
                               const lw_netinfo *here_net, lw_session *s, char token[LW_CRED_STRLEN]);

#endif
