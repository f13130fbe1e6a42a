/*
 * bus.h — who gets told what. Every live event leaves through here: to one
 * device, to every device of an account, or to the companion waiting on a
 * link request. Two interfaces keep the bus apart from what it serves:
 *
 * - Subscribers (this node's WebSockets, ws.c) embed an lw_bus_sub with a
 *   small vtable (send a text, end with a last text and a close, close), so
 *   the bus never sees a socket.
 * - A peer (lw_bus_peer: the PostgreSQL LISTEN/NOTIFY relay, relay.c) hears
 *   everything published here, and hands what the other nodes published to
 *   lw_bus_receive. What a received notice means beyond this node's sockets
 *   (forget a cached credential, redraw a QR code, re-check sessions, push
 *   alerts again) the bus asks of lw_bus_hooks, which serve.c wires: neither
 *   the bus nor its peer reads the session cache or draws QR codes.
 */
#ifndef LW_BUS_H
#define LW_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "events.h"

typedef struct lw_bus lw_bus;

/* ---- subscribers ---- */

/* An intrusive list node, the bus's (zeroed: in no list). */
typedef struct lw_bus_link {
    struct lw_bus_link *prev, *next;
} lw_bus_link;

typedef struct lw_bus_sub lw_bus_sub;
typedef struct lw_bus_sub_ops {
    /* Queues one text message. */
    void (*send)(lw_bus_sub *sub, const char *text, size_t len);
    /* The last message (text may be NULL) and a close with code and reason. */
    void (*end)(lw_bus_sub *sub, const char *text, size_t len, int code, const char *reason);
} lw_bus_sub_ops;

/* Embedded in a subscriber and zeroed with it; ops set before subscribing.
 * The rest is the bus's. A subscriber's end may unsubscribe it (and so may
 * send, when it gives up on a peer too far behind): the bus copes. */
struct lw_bus_sub {
    const lw_bus_sub_ops *ops;
    lw_bus_link primary_link; /* in the bucket of the device or link request */
    lw_bus_link account_link; /* in the bucket of the account (session sockets) */
    char primary_key[2 + LW_ID_STRLEN];
    char account_key[2 + LW_ID_STRLEN];
};

lw_bus *lw_bus_new(void);
void lw_bus_free(lw_bus *b);

/* Subscriptions, made and dropped by ws.c. A session socket is keyed by its
 * device and its account; a link socket by its request id. */
int lw_bus_subscribe_device(lw_bus *b, lw_bus_sub *sub, const char *device_id, const char *account_id);
int lw_bus_subscribe_link(lw_bus *b, lw_bus_sub *sub, const char *request_id);
void lw_bus_unsubscribe(lw_bus *b, lw_bus_sub *sub);

/* ---- the peer: other nodes ---- */

typedef struct lw_bus_peer {
    void *ctx;
    /* Tells the other nodes: op is "dev", "acct", "link", "end", "close_link"
     * or "cred"; key the device/account/request id; except a device id or
     * NULL; reason for "end"; ev the event (borrowed; NULL for "end",
     * "close_link" and "cred"). */
    void (*publish)(void *ctx, const char *op, const char *key, const char *except, const char *reason,
                    json_t *ev);
    /* Sends now what is held back to be batched. */
    void (*flush)(void *ctx);
} lw_bus_peer;

/* The peer hears everything published from now on (copied; NULL: none). */
void lw_bus_set_peer(lw_bus *b, const lw_bus_peer *peer);

/* What a received notice means beyond this node's sockets. Any may be NULL. */
typedef struct lw_bus_hooks {
    void *ctx;
    /* A device's session ended or its credential was replaced on another
     * node: its cached credential stops working here too. */
    void (*forget)(void *ctx, const char *device_id);
    /* An event for a link socket came without what does not fit a notice
     * (the QR code's SVG): add it to ev. */
    void (*complete_link_event)(void *ctx, json_t *ev);
    /* Notices may have been missed: re-check every session cached or with a
     * socket here. LW_OK, or an error when some could not be read (retried). */
    int (*resync)(void *ctx);
    /* The same, and push again the alerts raised since (ms) to this node's
     * sockets. */
    void (*replay)(void *ctx, int64_t since);
    /* One notice was applied: do what it left that may wait for the store
     * (the last-active times of the sessions forget dropped). */
    void (*settle)(void *ctx);
} lw_bus_hooks;

void lw_bus_set_hooks(lw_bus *b, const lw_bus_hooks *hooks);

/* What the peer heard from another node (op, key, except, reason, ev as
 * lw_bus_peer.publish): delivered to this node's sockets only, after the
 * hooks it needs. */
void lw_bus_receive(lw_bus *b, const char *op, const char *key, const char *except, const char *reason,
                    json_t *ev);
/* The peer applied one notice (all it named): lw_bus_hooks.settle. */
void lw_bus_settle(lw_bus *b);
/* The peer may have missed notices: lw_bus_hooks.resync (its result). */
int lw_bus_resync(lw_bus *b);
/* The peer was deaf since (ms): lw_bus_hooks.replay. */
void lw_bus_replay(lw_bus *b, int64_t since);

/* ---- publishing ---- */

/* Publishing: ev is borrowed and serialised once. These reach this node's
 * sockets and, through the peer, every other node's. */
void lw_bus_to_device(lw_bus *b, const char *device_id, json_t *ev);
void lw_bus_to_account(lw_bus *b, const char *account_id, const char *except_device, json_t *ev);
void lw_bus_to_link(lw_bus *b, const char *request_id, json_t *ev);
/* Tells the device its session ended (session.ended with reason and message)
 * and closes its sockets. */
void lw_bus_end_device(lw_bus *b, const char *device_id, const char *reason);
/* The device's credential was replaced (a refresh): other nodes forget the
 * one they cached, so the old credential stops working there as here. */
void lw_bus_credential_replaced(lw_bus *b, const char *device_id);
/* Tells the other nodes now what is held back to be batched (ended devices),
 * so that it leaves before the answer to the request that ended them. */
void lw_bus_flush(lw_bus *b);
/* Closes the sockets waiting on a link request after its final event. */
void lw_bus_close_link(lw_bus *b, const char *request_id);
/* Closes every socket with code and reason (shutdown: 1012 "service restart"
 * tells clients to reconnect, to this server's successor). */
void lw_bus_close_all(lw_bus *b, int code, const char *reason);
/* Sockets open on this node for one device, or for one link request. */
size_t lw_bus_device_sockets(const lw_bus *b, const char *device_id);
size_t lw_bus_link_sockets(const lw_bus *b, const char *request_id);
/* The same, for this node's sockets only. */
void lw_bus_local_to_device(lw_bus *b, const char *device_id, json_t *ev);
void lw_bus_local_to_account(lw_bus *b, const char *account_id, const char *except_device, json_t *ev);
void lw_bus_local_to_link(lw_bus *b, const char *request_id, json_t *ev);
void lw_bus_local_end_device(lw_bus *b, const char *device_id, const char *reason);
void lw_bus_local_close_link(lw_bus *b, const char *request_id);
/* The account ids with live session sockets here; *out is malloc'd (lw_free). */
size_t lw_bus_accounts(const lw_bus *b, char (**out)[LW_ID_STRLEN]);
/* The device ids with live sockets here; *out is malloc'd (lw_free). */
size_t lw_bus_devices(const lw_bus *b, char (**out)[LW_ID_STRLEN]);
/* Number of live sockets. */
size_t lw_bus_count(const lw_bus *b);

/* The bus as the domain's events sink (events.h): publishing as above. */
lw_events lw_bus_events(lw_bus *b);

#endif
