/*
 * bus.h — who gets told what. Every live event leaves through here: to one
 * device, to every device of an account, or to the companion waiting on a
 * link request. Today the subscribers are this node's WebSockets; a cross-node
 * bus (PostgreSQL LISTEN/NOTIFY) plugs in behind the same calls.
 */
#ifndef LW_BUS_H
#define LW_BUS_H

#include <stdbool.h>
#include <jansson.h>

typedef struct lw_bus lw_bus;
typedef struct lw_ws lw_ws; /* a WebSocket connection (ws.c) */
typedef struct lw_relay lw_relay;

lw_bus *lw_bus_new(void);
void lw_bus_free(lw_bus *b);

/* Subscriptions, made and dropped by ws.c. A session socket is keyed by its
 * device and its account; a link socket by its request id. */
int lw_bus_subscribe_device(lw_bus *b, lw_ws *ws, const char *device_id, const char *account_id);
int lw_bus_subscribe_link(lw_bus *b, lw_ws *ws, const char *request_id);
void lw_bus_unsubscribe(lw_bus *b, lw_ws *ws);

/* Other nodes (relay.c) hear everything published from now on. */
void lw_bus_set_relay(lw_bus *b, lw_relay *relay);

/* Publishing: ev is borrowed and serialised once. These reach this node's
 * sockets and, through the relay, every other node's. */
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
/* The same, for this node's sockets only (what the relay delivers). */
void lw_bus_local_to_device(lw_bus *b, const char *device_id, json_t *ev);
void lw_bus_local_to_account(lw_bus *b, const char *account_id, const char *except_device, json_t *ev);
void lw_bus_local_to_link(lw_bus *b, const char *request_id, json_t *ev);
void lw_bus_local_end_device(lw_bus *b, const char *device_id, const char *reason);
void lw_bus_local_close_link(lw_bus *b, const char *request_id);
/* The account ids with live session sockets here; *out is malloc'd (lw_free). */
size_t lw_bus_accounts(const lw_bus *b, char (**out)[23]);
/* The device ids with live sockets here; *out is malloc'd (lw_free). */
size_t lw_bus_devices(const lw_bus *b, char (**out)[23]);
/* Number of live sockets. */
size_t lw_bus_count(const lw_bus *b);

/* A sentence for people for each end reason ("You were logged out from your phone"). */
const char *lw_end_reason_message(const char *reason);
bool lw_end_reason_valid(const char *reason);

#endif
