/*
 * ws.h — the per-device WebSocket at /v1/ws: h2o answers the handshake and
 * hands over the raw socket, and this module frames by itself (wsframe.h).
 * The per-connection state is kept small, since it is what every idle device
 * costs: no buffer is held while a socket is idle. Messages sent before the
 * 101 has been written wait in the socket's outbox.
 */
#ifndef LW_WS_H
#define LW_WS_H

#include <stddef.h>
#include "server.h"

typedef struct lw_ws lw_ws;
struct st_h2o_req_t;

/* Sockets one device may hold open at once (tabs, reconnect overlaps). */
#define LW_WS_MAX_PER_DEVICE 8
/* Sockets one link request may hold open at once: a page waiting to be
 * linked needs one (more across reloads); its token is handed out to anyone
 * who asks, so without a cap one request could hold any number. */
#define LW_WS_MAX_PER_LINK 8

/* Upgrades req. Exactly one of device_id (a session socket, with account_id)
 * or request_id (a link socket) is set. Returns 0, or -1 if the request is not
 * a valid WebSocket handshake (the caller answers 400). */
int lw_ws_upgrade(lw_server *app, struct st_h2o_req_t *req, const char *device_id, const char *account_id,
                  const char *request_id);
/* Queues one text message. */
void lw_ws_send(lw_ws *ws, const char *text, size_t len);
/* Sends a close frame with code and reason (after what is queued) and drops
 * the socket once the peer answers, or after a grace period. */
void lw_ws_close(lw_ws *ws, int code, const char *reason);
/* The last message and the close frame in one write: how a session's end is told. */
void lw_ws_end(lw_ws *ws, const char *text, size_t len, int code, const char *reason);
/* Sockets not yet freed, closing ones included (shutdown waits for them). */
size_t lw_ws_live(void);

#endif
