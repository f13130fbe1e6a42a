/*
 * http.h — the HTTP side of the server on h2o (HTTP/1.1 only; HTTP/2 stays
 * off because Debian's h2o 2.2 predates the fixes for HTTP/2 attacks).
 *
 * Every request becomes an lw_rq (api/rq.h, with the replies this file
 * implements): parsed JSON body, path parameter, client address and, for
 * authenticated routes, who is calling. The functions here take the
 * lw_server serve.c owns (api/server.h), never lw_app.
 */
#ifndef LW_HTTP_H
#define LW_HTTP_H

#include <stdbool.h>
#include <jansson.h>

#include "httpmsg.h"
#include "rq.h"
#include "session.h"
#include "store.h"

/* The User-Agent Client Hints we ask browsers for (the low-entropy ones come
 * anyway): only those lw_api_client_desc reads. The full version list is not
 * asked for: the record keeps the major version the low-entropy Sec-CH-UA
 * gives, and asking for a hint nobody reads only widens the fingerprint. */
#define LW_ACCEPT_CH "Sec-CH-UA-Platform-Version, Sec-CH-UA-Model"

#define LW_BODY_MAX (16 * 1024) /* largest JSON body any route accepts */
#define LW_MAX_HEADERS 64       /* header lines per request */
#define LW_MAX_HEADER_BYTES (16 * 1024)
/* h2o refuses (413) a body beyond this before we see it (http.c answers it as JSON). */
#define LW_H2O_ENTITY_MAX_KIB 64
#define LW_H2O_ENTITY_MAX (LW_H2O_ENTITY_MAX_KIB * 1024)

struct st_h2o_req_t;

typedef enum {
    LW_AUTH_NONE,
    LW_AUTH_SESSION, /* any device with a valid credential */
    LW_AUTH_PRIMARY, /* the primary device only */
    LW_AUTH_REFRESH, /* a session credential, expired allowed */
    LW_AUTH_LINK,    /* a link-request token */
    LW_AUTH_LOGOUT,  /* as SESSION; a browser's cookie of an ended session is
                      * answered 200 "already ended" and cleared, not 401 */
} lw_auth_kind;

/* Creates the h2o configuration and context (and so app->loop). */
void lw_http_init(lw_server *app);
/* Starts listening on cfg.listen_host:listen_port; fills listen_port when it was 0. */
int lw_http_listen(lw_server *app);
/* Open client connections (HTTP and WebSocket). */
long lw_http_connections(void);
/* Serves HTTP on an already connected socket (tests and fuzzing use socketpairs). */
void lw_http_accept_fd(lw_server *app, int fd);
/* Loads (or on SIGHUP reloads) --tls-cert/--tls-key; existing connections keep theirs. */
int lw_http_tls_load(lw_server *app);
/* The port of --metrics-listen (-1 if none), and whether req came in on it. */
int lw_http_metrics_port(void);
bool lw_http_on_metrics_listener(struct st_h2o_req_t *req);
/* Judges the framing of req as its client wrote it (lw_httpmsg_framing: the
 * Content-Length and Transfer-Encoding fields h2o keeps out of req->headers).
 * On LW_FRAMING_CLOSE and LW_FRAMING_REJECT the connection is closed after
 * this request's answer; on REJECT the caller answers 400 with why (cap
 * bytes). Call before anything else looks at the request. */
lw_framing lw_http_framing(struct st_h2o_req_t *req, char *why, size_t cap);
/* Stops accepting (closes the listener). */
void lw_http_stop(lw_server *app);
/* Asks keep-alive connections to close after their next response. */
void lw_http_request_shutdown(lw_server *app);
/* Requests being handled right now. */
long lw_http_inflight(void);

#endif
