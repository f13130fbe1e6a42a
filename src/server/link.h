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

#include "app.h"
#include "code.h"
#include "store.h"

lw_links *lw_links_new(lw_app *app);
void lw_links_free(lw_links *L);

/* Stores a new request r (the caller filled id, token, code hash, key, nonce,
 * who is asking, times and state "pending"): makes its first ref, inserts it
 * and starts rotating. code is the display form, kept to answer polls.
 * LW_ECONFLICT if the code or token collides (retry with new ones). */
int lw_links_begin(lw_links *L, lw_link_request *r, const char code[LW_CODE_STRLEN]);

/* {"payload","qr_svg","code","ref_expires_in"} for a pending request, taking
 * over requests that lost their live state (server restart) with a fresh ref.
 * NULL if it is not pending or on failure. */
json_t *lw_links_view(lw_links *L, const lw_link_request *r);
/* The same four members written as JSON text into b, each preceded by a
 * comma (',"payload":…,"qr_svg":…,"code":…,"ref_expires_in":N'), for an
 * answer built by hand: the SVG is copied, not decoded and re-encoded.
 * LW_ENOTFOUND if the request is not pending. */
int lw_links_view_append(lw_links *L, const lw_link_request *r, lw_buf *b);
/* The current payload text of a pending request (for scans by code), or NULL. */
const char *lw_links_payload(lw_links *L, const lw_link_request *r);

/* Whether payload is exactly the text this node made and signed for the
 * request's current ref (constant-time comparison). */
bool lw_links_issued(lw_links *L, const char *request_id, const char *payload);

/* A companion socket joined: sends it the current ref. */
void lw_links_on_socket(lw_links *L, const lw_link_request *r);
/* Pushes {"event": ev} to the companion; final events close its sockets and stop the rotation. */
void lw_links_notify(lw_links *L, const char *request_id, const char *ev, bool final);

/* How many requests from this address are being shown (pending) right now. */
long lw_links_pending_from(lw_links *L, const char *ip);

/* Milliseconds left before the whole request expires (0 if past). */
int64_t lw_links_remaining(const lw_link_request *r);

#endif
