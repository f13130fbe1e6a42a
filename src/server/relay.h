/*
 * relay.h — carries the bus's events between nodes that share a PostgreSQL
 * database, with LISTEN/NOTIFY on the channel "linkward". Each node publishes
 * what it delivers locally; every other node delivers it to its own sockets
 * (bus.c) and drops revoked sessions from its cache (session.c).
 *
 * A listener thread holds its own connection and hands notifications to the
 * event loop through h2o's multithread queue. If that connection drops, the
 * node may have missed notifications: after reconnecting it resynchronises
 * (forgets its whole session cache, so every credential is checked against
 * the store again, and re-checks every live socket's session).
 */
#ifndef LW_RELAY_H
#define LW_RELAY_H

#include <jansson.h>

#include "app.h"

typedef struct lw_relay lw_relay;

/* Starts relaying through the PostgreSQL server of conninfo. NULL on failure (logged). */
lw_relay *lw_relay_start(lw_app *app, const char *conninfo);
void lw_relay_stop(lw_relay *r);

/* Tells the other nodes: op is "dev", "acct", "link", "end" or "close_link";
 * key the device/account/request id; except a device id or NULL; reason for
 * "end"; ev the event (borrowed; NULL for "end"/"close_link"). */
void lw_relay_publish(lw_relay *r, const char *op, const char *key, const char *except, const char *reason,
                      json_t *ev);

/* NOTIFY carries at most 8000 bytes; events are kept well under it. */
#define LW_RELAY_PAYLOAD_MAX 7900

#endif
