/*
 * rq.h — the request as the API handlers see it (api.h), and the replies they
 * give: the transport (http.c, router.c) makes every lw_rq and implements
 * these functions, so the handlers never see h2o's request beyond the opaque
 * req they may read headers from. Handlers reply exactly once, possibly later
 * (asynchronous handlers keep the lw_rq, which lives in the request's memory
 * pool; see lw_rq_guard).
 */
#ifndef LW_RQ_H
#define LW_RQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "server.h"
#include "session.h"
#include "store.h"

struct st_h2o_req_t;

typedef struct lw_rq {
    lw_server *app; /* the server: its config, store and modules */
    struct st_h2o_req_t *req;
    json_t *body;          /* the JSON object, for routes that take one */
    char param[64];        /* the {id} path segment, if any */
    lw_principal who;      /* LW_AUTH_SESSION/PRIMARY/REFRESH */
    lw_link_request *link; /* LW_AUTH_LINK (pool-allocated) */
    char ip[LW_IP_MAX];
    const char *ua; /* User-Agent (not NUL-terminated) */
    size_t ua_len;
    bool replied;
    bool cookie_auth; /* the credential came from a cookie (a browser) */
    struct lw_rq_guard *guard;
    struct lw_rq_held *held; /* set on a held copy (lw_rq_hold) */
    const void *route;       /* the transport's route, for a handler started later */
} lw_rq;

void lw_reply_text(lw_rq *rq, int status, const char *type, const char *text, size_t len);
/* The same for a text that lives as long as the request (its pool): not copied. */
void lw_reply_pooled(lw_rq *rq, int status, const char *type, const char *text, size_t len);

void lw_reply_json(lw_rq *rq, int status, json_t *body /* stolen */);
void lw_reply_error(lw_rq *rq, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* As lw_reply_error, with extra fields merged into the error object (stolen). */
void lw_reply_error_x(lw_rq *rq, int status, const char *code, json_t *extra, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void lw_rq_header(lw_rq *rq, const char *name, const char *value);
/* An answer without a body (204), with the API's headers. */
void lw_reply_empty(lw_rq *rq, int status);

/* Body field helpers: on failure they reply 400 invalid_request naming the
 * field and return LW_EINVAL, so handlers just return. */
int lw_body_str(lw_rq *rq, const char *field, bool required, size_t maxlen, const char **out);
int lw_body_b64(lw_rq *rq, const char *field, bool required, uint8_t *out, size_t len, bool *present);
int lw_body_bool(lw_rq *rq, const char *field, bool dflt, bool *out);

/* Asynchronous replies: *slot is set to NULL when the request goes away
 * (client gone) before the handler replied. */
void lw_rq_guard(lw_rq *rq, lw_rq **slot);
/* The asynchronous job is done with the request: stop tracking it. Call
 * before freeing the memory that holds *slot. */
void lw_rq_release(lw_rq **slot);

/* Handlers that may wait (on a fiber: router.c, fiber.h) work on a held copy
 * of their lw_rq, which outlives its h2o request: when the client leaves
 * meanwhile, rq->req becomes NULL and replies and headers are dropped; what
 * the handler reads of the request it reads before it first waits. The copy
 * keeps its own User-Agent and owns its body. NULL if out of memory (or
 * rq is held already, or its client is gone). */
lw_rq *lw_rq_hold(const lw_rq *rq);
void lw_rq_unhold(lw_rq *rq);
/* Memory that lives as long as rq: its request's pool, or the held copy.
 * NULL when out of memory or the client is gone. */
void *lw_rq_alloc(lw_rq *rq, size_t size);

#endif
