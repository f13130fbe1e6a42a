/*
 * router.h — maps method and path to a handler of api.h, after the checks
 * every request gets: Origin / Sec-Fetch-Site on state-changing requests,
 * Content-Type and size of JSON bodies, and authentication.
 */
#ifndef LW_ROUTER_H
#define LW_ROUTER_H

#include "server.h"

struct st_h2o_req_t;
void lw_router_dispatch(lw_server *app, struct st_h2o_req_t *req);

/* Iterates over the route table (for docs checks): fn(method, pattern). */
void lw_router_each(void (*fn)(const char *method, const char *pattern, void *arg), void *arg);

#endif
