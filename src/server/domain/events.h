/*
 * events.h — the events port of the domain. Every event a client hears is
 * built here, once (its name, its JSON, the sentences of end reasons), and
 * every module publishes through an lw_events sink: a struct of function
 * pointers that the bus implements (lw_bus_events) and serve.c wires. The
 * domain so never sees the bus, its sockets or the other nodes; a unit test
 * gives a module a fake sink. A new event kind touches a builder here and its
 * caller.
 *
 * Events (docs/api.md, "WebSocket"): alert, session.ended, device.ended,
 * device.linked, link.ref, link.scanned/approved/denied/completed/expired,
 * proof.challenge, hello.
 */
#ifndef LW_EVENTS_H
#define LW_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "crypto.h"
#include "store.h"

/* ---- the sink ---- */

/* Where events go. ctx is the implementation's (the bus); a NULL function
 * drops what it would carry (a test's sink may leave any of them out).
 * Events are borrowed: the sink serialises what it keeps. */
typedef struct lw_events {
    void *ctx;
    /* To one device, to every device of an account but except_device (or
     * NULL), to the companion waiting on a link request: here and on the
     * other nodes. */
    void (*to_device)(void *ctx, const char *device_id, json_t *ev);
    void (*to_account)(void *ctx, const char *account_id, const char *except_device, json_t *ev);
    void (*to_link)(void *ctx, const char *request_id, json_t *ev);
    /* Tells the device its session ended (lw_event_session_ended) and closes
     * its sockets, here and on the other nodes. */
    void (*end_device)(void *ctx, const char *device_id, const char *reason);
    /* Closes the sockets waiting on a link request after its final event. */
    void (*close_link)(void *ctx, const char *request_id);
    /* The device's credential was replaced (a refresh): other nodes forget
     * the one they cached. */
    void (*credential_replaced)(void *ctx, const char *device_id);
    /* Sends to the other nodes now what is held back to be batched (ended
     * devices), before the answer to the request that ended them. */
    void (*flush)(void *ctx);
    /* This node only: the devices with live sockets here (*out malloc'd,
     * lw_free), and ending one device's sockets here (a resynchronisation). */
    size_t (*devices_here)(void *ctx, char (**out)[LW_ID_STRLEN]);
    void (*end_device_here)(void *ctx, const char *device_id, const char *reason);
} lw_events;

static inline void lw_events_to_device(const lw_events *e, const char *device_id, json_t *ev)
{
    if (e && e->to_device && ev)
        e->to_device(e->ctx, device_id, ev);
}
static inline void lw_events_to_account(const lw_events *e, const char *account_id, const char *except_device,
                                        json_t *ev)
{
    if (e && e->to_account && ev)
        e->to_account(e->ctx, account_id, except_device, ev);
}
static inline void lw_events_to_link(const lw_events *e, const char *request_id, json_t *ev)
{
    if (e && e->to_link && ev)
        e->to_link(e->ctx, request_id, ev);
}
static inline void lw_events_end_device(const lw_events *e, const char *device_id, const char *reason)
{
    if (e && e->end_device)
        e->end_device(e->ctx, device_id, reason);
}
static inline void lw_events_close_link(const lw_events *e, const char *request_id)
{
    if (e && e->close_link)
        e->close_link(e->ctx, request_id);
}
static inline void lw_events_credential_replaced(const lw_events *e, const char *device_id)
{
    if (e && e->credential_replaced)
        e->credential_replaced(e->ctx, device_id);
}
static inline void lw_events_flush(const lw_events *e)
{
    if (e && e->flush)
        e->flush(e->ctx);
}
static inline size_t lw_events_devices_here(const lw_events *e, char (**out)[LW_ID_STRLEN])
{
    *out = NULL;
    return e && e->devices_here ? e->devices_here(e->ctx, out) : 0;
}
static inline void lw_events_end_device_here(const lw_events *e, const char *device_id, const char *reason)
{
    if (e && e->end_device_here)
        e->end_device_here(e->ctx, device_id, reason);
}

/* ---- the builders: each returns a new event, NULL when out of memory ---- */

/* {"event":"alert","alert":{…}} (lw_alert_json). */
json_t *lw_event_alert(const lw_alert *a);
/* {"event":"session.ended","reason":…,"message":…}: what an ended device hears. */
json_t *lw_event_session_ended(const char *reason);
/* {"event":"device.ended","device_id":…,"reason":…,"device_ids":[…]}: what
 * the devices that remain hear; device_ids is stolen. */
json_t *lw_event_device_ended(const char *device_id, const char *reason, json_t *device_ids);
/* {"event":"device.linked","device":…}; device (the record) is stolen. */
json_t *lw_event_device_linked(json_t *device);
/* {"event":"link.ref","payload":…,"qr_svg":…,"ref_expires_in":…,"expires_in":…} (seconds). */
json_t *lw_event_link_ref(const char *payload, const char *qr_svg, int64_t ref_expires_in,
                          int64_t expires_in);
/* An event for a link socket that crossed nodes without its "qr_svg" (it
 * does not fit a notification): draws it again from its "payload". */
void lw_event_link_complete(json_t *ev);
/* {"event":name}: link.scanned, link.approved, link.denied, link.completed, link.expired. */
json_t *lw_event_link_state(const char *name);
/* {"event":"link.denied","reason":"limit","message":…,"limit":N}. */
json_t *lw_event_link_denied_limit(const char *message, long limit);
/* {"event":"proof.challenge","challenge":…,"token_expires_in":…}; challenge is stolen. */
json_t *lw_event_proof_challenge(json_t *challenge, int64_t token_expires_in);
/* {"event":"hello","device_id":…} or {"event":"hello","request_id":…}. */
json_t *lw_event_hello(bool link, const char *id);

/* ---- end reasons ---- */

/* The sentence an ended device shows, in the second person ("You were
 * logged out from your phone."); "Your session ended." for an unknown reason. */
const char *lw_end_reason_message(const char *reason);
/* What happened to ended devices, in the third person, after "was"/"were"
 * ("logged out from your phone"), for the device.ended alert; "logged out"
 * for an unknown reason. */
const char *lw_end_reason_phrase(const char *reason);
bool lw_end_reason_valid(const char *reason);

#endif
