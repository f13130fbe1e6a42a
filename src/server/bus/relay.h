/*
 * relay.h — carries the bus's events between nodes that share a PostgreSQL
 * database, with LISTEN/NOTIFY on the channel "linkward". Each node publishes
 * what it delivers locally; every other node hands it to its bus
 * (lw_bus_receive), which delivers it to its own sockets and asks its hooks
 * for the rest (revoked sessions leave the cache, QR codes are redrawn):
 * the relay is one peer of the bus (lw_relay_peer) and knows neither.
 *
 * A listener thread holds its own connection and hands notifications to the
 * event loop through h2o's multithread queue. It checks that connection when
 * it has been quiet for a while, so one that died silently is noticed within
 * seconds. If that connection drops, the node may have missed notifications:
 * after reconnecting it asks the bus to resynchronise (lw_bus_resync: the
 * whole session cache is forgotten, so every credential is checked against
 * the store again, and every live socket's session is re-checked; then
 * lw_bus_replay: the alerts raised meanwhile are pushed again).
 *
 * Ended devices are relayed in batches: the "end" notices of one call (say,
 * a logout-all) leave as one "ends" notice per 256 devices, sent before the
 * next other notice or on the loop's next turn. Receivers still understand
 * the single "end" notice of earlier versions.
 *
 * Health. The session cache is trusted only while the relay can prove that
 * this node has applied every notification committed up to a moment ago.
 * The proof is a heartbeat: every LW_RELAY_HEARTBEAT_MS the listener thread
 * sends a NOTIFY on a channel of this node's own, from its LISTEN connection,
 * carrying the time it was sent. PostgreSQL delivers notifications of
 * different transactions in commit order, through one queue for every
 * channel; so when the loop handles a heartbeat sent at t (messages reach the
 * loop in the order the thread read them), every notification committed
 * before t has already been applied here. "Healthy" is: that t is less than
 * LW_RELAY_HEALTHY_MS old, and the connection it came through is still the
 * current one (a lost connection makes the node unhealthy at once, not after
 * the horizon).
 */
#ifndef LW_RELAY_H
#define LW_RELAY_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "bus.h"

typedef struct lw_relay lw_relay;
struct st_h2o_context_t;

/* Starts relaying through the PostgreSQL server of conninfo (notifications
 * are sent through it); the listener connects with listen_conninfo, or with
 * conninfo when that is NULL or empty (LISTEN needs a session of its own, so
 * not a transaction pooler). What other nodes publish goes to bus; ctx gives
 * the loop and its queue. NULL on failure (logged). */
/* With fibers (PostgreSQL), what the listener hands over is applied on a
 * fiber, in order, so its store calls wait off the loop; NULL: on the loop. */
typedef struct lw_fibers lw_fibers;
void lw_relay_set_fibers(lw_relay *r, lw_fibers *fibers);
lw_relay *lw_relay_start(lw_bus *bus, struct st_h2o_context_t *ctx, const char *conninfo,
                         const char *listen_conninfo);
void lw_relay_stop(lw_relay *r);

/* The relay as the bus's peer (lw_bus_set_peer): publish and flush below. */
lw_bus_peer lw_relay_peer(lw_relay *r);

/* Tells the other nodes: op is "dev", "acct", "link", "end", "close_link" or
 * "cred" (the device's credential was replaced: other nodes forget their
 * cached one); key the device/account/request id; except a device id or NULL;
 * reason for "end"; ev the event (borrowed; NULL for "end"/"close_link"/"cred"). */
void lw_relay_publish(lw_relay *r, const char *op, const char *key, const char *except, const char *reason,
                      json_t *ev);

/* Sends the "end" notices held back now (before an answer leaves, say). */
void lw_relay_flush(lw_relay *r);

/* Tells the other nodes to forget their whole session cache and re-check
 * their sockets, as after missed notifications: sessions were changed in the
 * store before this node's relay started (a replaced server key). */
void lw_relay_publish_resync(lw_relay *r);

/* Heartbeats every 500 ms: a round trip to PostgreSQL from the listener
 * thread (never the loop) and one transaction id each, 2 per second per node.
 * Healthy for 1,500 ms after a heartbeat was sent: three heartbeats may be
 * late or lost (a busy database, a vacuum, a loop turn that took long)
 * before the node falls back to reading the store per request; and no
 * revocation is ever trusted away for longer than that, even if the listener
 * stalls without its connection dropping. */
#define LW_RELAY_HEARTBEAT_MS 500
#define LW_RELAY_HEALTHY_MS 1500

/* The health rule, as a pure function: the last heartbeat handled on the loop
 * was sent at heard_at (0: none yet) through the connection numbered
 * heard_conn, and the listener's current connection is conn. */
static inline bool lw_relay_heard_recently(uint32_t heard_conn, uint32_t conn, int64_t heard_at, int64_t now)
{
    return heard_at > 0 && heard_conn == conn && now >= heard_at && now - heard_at < LW_RELAY_HEALTHY_MS;
}

/* True while this node's cache may be trusted without reading the store:
 * every notification committed until LW_RELAY_HEALTHY_MS before now has been
 * applied (see "Health" above). False for a NULL relay. Event loop only; now
 * from lw_mono_ms. */
bool lw_relay_healthy(const lw_relay *r, int64_t now);

/* NOTIFY carries at most 8000 bytes; events are kept well under it. */
#define LW_RELAY_PAYLOAD_MAX 7900

#endif
