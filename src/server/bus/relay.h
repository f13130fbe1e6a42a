/*
 * relay.h — carries the bus's events between nodes that share a PostgreSQL
 * database, with LISTEN/NOTIFY on the channel "linkward". Each node publishes
 * what it delivers locally; every other node delivers it to its own sockets
 * (bus.c) and drops revoked sessions from its cache (session.c).
 *
 * A listener thread holds its own connection and hands notifications to the
 * event loop through h2o's multithread queue. It checks that connection when
 * it has been quiet for a while, so one that died silently is noticed within
 * seconds. If that connection drops, the node may have missed notifications:
 * after reconnecting it resynchronises (forgets its whole session cache, so
 * every credential is checked against the store again, re-checks every live
 * socket's session, and pushes again the alerts raised meanwhile).
 *
 * Ended devices are relayed in batches: the "end" notices of one call (say,
 * a logout-all) leave as one "ends" notice per 256 devices, sent before the
 * next other notice or on the loop's next turn. Receivers still understand
 * the single "end" notice of earlier versions.
 */
#ifndef LW_RELAY_H
#define LW_RELAY_H

#include <jansson.h>

#include "app.h"

typedef struct lw_relay lw_relay;

/* Starts relaying through the PostgreSQL server of conninfo (notifications
 * are sent through it); the listener connects with listen_conninfo, or with
 * conninfo when that is NULL or empty (LISTEN needs a session of its own, so
 * not a transaction pooler). NULL on failure (logged). */
lw_relay *lw_relay_start(lw_app *app, const char *conninfo, const char *listen_conninfo);
void lw_relay_stop(lw_relay *r);

/* Tells the other nodes: op is "dev", "acct", "link", "end" or "close_link";
 * key the device/account/request id; except a device id or NULL; reason for
 * "end"; ev the event (borrowed; NULL for "end"/"close_link"). */
void lw_relay_publish(lw_relay *r, const char *op, const char *key, const char *except, const char *reason,
                      json_t *ev);

/* NOTIFY carries at most 8000 bytes; events are kept well under it. */
#define LW_RELAY_PAYLOAD_MAX 7900

#endif
