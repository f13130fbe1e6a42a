/*
 * web.h — serving the web client: its files are built into the binary
 * (lw_web_assets, generated from web/ by cmake/embed.cmake) or, while
 * developing, read from --web-dir. Every page and asset carries the strict
 * security headers of PRODUCT.md §8 (CSP without inline script or style).
 */
#ifndef LW_WEB_H
#define LW_WEB_H

#include <stdbool.h>
#include <stddef.h>

typedef struct lw_asset {
    const char *path; /* "/index.html" */
    const char *type; /* Content-Type */
    const unsigned char *data;
    size_t len;
} lw_asset;

/* Terminated by an entry whose path is NULL. */
extern const lw_asset lw_web_assets[];

#define LW_WEB_FILE_MAX (4 * 1024 * 1024) /* largest file served from --web-dir */

struct lw_server;
struct st_h2o_req_t;

/* Serves GET/HEAD of a web client file; "/" is "/index.html". Returns false
 * (and sends nothing) when no such file exists. */
bool lw_web_serve(struct lw_server *app, struct st_h2o_req_t *req);

/* The Content-Security-Policy of pages, for the given public origin. */
void lw_web_csp(const char *origin, char *dst, size_t cap);

#endif
