/*
 * link.h — the live side of link requests: the rotating QR refs (60 s, then
 * 20 s each, six in all, by default), their signed payloads and SVGs, and the
 * events pushed to the waiting companion. The durable side (state, hashes of
 * ref, code and token) is in the store; this module keeps, per request being
 * shown, the current payload in memory and a timer that rotates or expires it.
 */
#ifndef LW_LINK_H
#define LW_LINK_H

#include <jansson.h>

#include "deps.h"
#include "code.h"
#include "payload.h"
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

#endif
