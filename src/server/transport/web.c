#include "web.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <h2o.h>

#include "server.h"
#include "csp.h"
#include "http.h"
#include "log.h"
#include "lw.h"
#include "qr.h"

#define WEB_PATH_MAX 128
#define PHONE_PREFIX "/phone/"              /* the phone app (PRODUCT.md §12): its own headers */
#define PHONE_VENDOR PHONE_PREFIX "vendor/" /* npm files copied in at build time (cmake/embed.cmake) */
#define PHONE_SW_PATH PHONE_PREFIX "sw.js"  /* the service worker */
#define PHONE_QR_PATH "/phone/qr.svg"       /* a QR code of the phone app's address, for the link screen */

/* The policy of pages; phone (the /phone/ app) also lets the page use the
 * camera's stream in a <video>, and its service worker and manifest. */
static void csp(const char *origin, bool phone, char *dst, size_t cap)
{
    /* connect-src names the WebSocket origin explicitly: 'self' does not
     * cover ws:/wss: in every browser. */
    const char *host = strstr(origin, "://");
    bool tls = strncmp(origin, "https://", 8) == 0;
    /* Violations are reported to us (ASVS 3.4.7): report-to for browsers
     * with the Reporting API (with the Reporting-Endpoints header), and
     * report-uri for the others (a browser that knows report-to ignores it). */
    int n = snprintf(dst, cap,
                     "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                     "connect-src 'self' %s%s; manifest-src 'self'; %sbase-uri 'none'; form-action 'none'; "
                     "frame-ancestors 'none'; object-src 'none'; report-uri " LW_CSP_REPORT_PATH
                     "; report-to csp",
                     tls ? "wss://" : "ws://", host ? host + 3 : "",
                     phone ? "worker-src 'self'; media-src 'self' blob: mediastream:; " : "");
    if (n < 0 || (size_t)n >= cap)
        snprintf(dst, cap, "default-src 'none'; frame-ancestors 'none'");
}

void lw_web_csp(const char *origin, char *dst, size_t cap)
{
    csp(origin, false, dst, cap);
}

static bool is_phone(const char *path)
{
    return strncmp(path, PHONE_PREFIX, sizeof PHONE_PREFIX - 1) == 0;
}

/* path: the file served ("/phone/…" gets the phone app's policies). */
static void headers(lw_server *app, h2o_req_t *req, const char *path, const char *type, bool html)
{
    bool phone = is_phone(path);
    h2o_mem_pool_t *p = &req->pool;
    h2o_headers_t *h = &req->res.headers;
    h2o_add_header(p, h, H2O_TOKEN_CONTENT_TYPE, NULL, type, strlen(type));
    /* Pages are small and security-relevant: always revalidate, never keep a stale client. */
    h2o_add_header(p, h, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-cache"));
    h2o_add_header_by_str(p, h, H2O_STRLIT("x-content-type-options"), 0, NULL, H2O_STRLIT("nosniff"));
    h2o_add_header_by_str(p, h, H2O_STRLIT("referrer-policy"), 0, NULL, H2O_STRLIT("no-referrer"));
    h2o_add_header_by_str(p, h, H2O_STRLIT("x-frame-options"), 0, NULL, H2O_STRLIT("DENY"));
    h2o_add_header_by_str(p, h, H2O_STRLIT("cross-origin-opener-policy"), 0, NULL, H2O_STRLIT("same-origin"));
    h2o_add_header_by_str(p, h, H2O_STRLIT("cross-origin-resource-policy"), 0, NULL,
                          H2O_STRLIT("same-origin"));
    /* Only the phone app scans QR codes: the camera is its own, nobody else's. */
    if (phone)
        h2o_add_header_by_str(p, h, H2O_STRLIT("permissions-policy"), 0, NULL,
                              H2O_STRLIT("camera=(self), microphone=(), geolocation=(), payment=(), usb=()"));
    else
        h2o_add_header_by_str(p, h, H2O_STRLIT("permissions-policy"), 0, NULL,
                              H2O_STRLIT("camera=(), microphone=(), geolocation=(), payment=(), usb=()"));
    h2o_add_header_by_str(p, h, H2O_STRLIT("accept-ch"), 0, NULL, H2O_STRLIT(LW_ACCEPT_CH));
    char policy[640];
    csp(html ? app->cfg.public_origin : "", phone, policy, sizeof policy);
    if (!html && strcmp(path, PHONE_SW_PATH) == 0)
        /* A worker lives under the policy of its own script: the service
         * worker fetches the shell into its cache (and nothing else). */
        lw_strlcpy(policy, "default-src 'none'; connect-src 'self'; frame-ancestors 'none'", sizeof policy);
    else if (!html)
        lw_strlcpy(policy, "default-src 'none'; frame-ancestors 'none'", sizeof policy);
    h2o_iovec_t v = h2o_strdup(p, policy, SIZE_MAX);
    h2o_add_header_by_str(p, h, H2O_STRLIT("content-security-policy"), 0, NULL, v.base, v.len);
    if (html)
        h2o_add_header_by_str(p, h, H2O_STRLIT("reporting-endpoints"), 0, NULL,
                              H2O_STRLIT("csp=\"" LW_CSP_REPORT_PATH "\""));
    if (app->cfg.tls_cert[0] || strncmp(app->cfg.public_origin, "https://", 8) == 0)
        h2o_add_header(p, h, H2O_TOKEN_STRICT_TRANSPORT_SECURITY, NULL,
                       H2O_STRLIT("max-age=31536000; includeSubDomains"));
    h2o_add_header_by_str(p, h, H2O_STRLIT("linkward-version"), 0, NULL, H2O_STRLIT(LINKWARD_VERSION));
}

static const char *type_of(const char *path)
{
    const char *dot = strrchr(path, '.');
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".json", "application/json"},
        {".webmanifest", "application/manifest+json"},
        {".txt", "text/plain; charset=utf-8"},
    };
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

/* A path we are willing to map onto a file: letters, digits, '.', '_', '-'
 * and '/', no dot-files or "..", bounded. */
static bool safe_path(const char *p, size_t len)
{
    if (len < 2 || len >= WEB_PATH_MAX || p[0] != '/')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-' || c == '/'))
            return false;
        if (c == '.' && p[i - 1] == '/')
            return false;
    }
    return true;
}

static bool serve_from_dir(lw_server *app, h2o_req_t *req, const char *path)
{
    char file[LW_PATH_MAX + WEB_PATH_MAX];
    if (snprintf(file, sizeof file, "%s%s", app->cfg.web_dir, path) >= (int)sizeof file)
        return false;
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return false;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > LW_WEB_FILE_MAX) {
        close(fd);
        return false;
    }
    char *buf = h2o_mem_alloc_pool(&req->pool, (size_t)st.st_size + 1);
    ssize_t got = 0;
    while (got < st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)(st.st_size - got));
        if (n <= 0)
            break;
        got += n;
    }
    close(fd);
    if (got != st.st_size)
        return false;
    const char *type = type_of(path);
    req->res.status = 200;
    req->res.reason = "OK";
    headers(app, req, path, type, strncmp(type, "text/html", 9) == 0);
    req->res.content_length = (size_t)got;
    h2o_send_inline(req, buf, (size_t)got);
    return true;
}

/* GET /phone/qr.svg: the phone app's address (public origin + /phone/) as a
 * QR code, drawn per request (a few hundred microseconds) so that it follows
 * --public-origin without a file to keep in step. */
static bool serve_phone_qr(lw_server *app, h2o_req_t *req)
{
    char url[LW_ORIGIN_MAX + sizeof PHONE_PREFIX];
    if (snprintf(url, sizeof url, "%s" PHONE_PREFIX, app->cfg.public_origin) >= (int)sizeof url)
        return false;
    char *svg = lw_qr_svg(url);
    if (svg == NULL) {
        lw_log_warn("web", "cannot draw the QR code of %s", url);
        return false;
    }
    h2o_iovec_t body = h2o_strdup(&req->pool, svg, SIZE_MAX);
    lw_free(svg);
    req->res.status = 200;
    req->res.reason = "OK";
    headers(app, req, PHONE_QR_PATH, "image/svg+xml", false);
    req->res.content_length = body.len;
    h2o_send_inline(req, body.base, body.len);
    return true;
}

bool lw_web_serve(lw_server *app, h2o_req_t *req)
{
    const char *p = req->path_normalized.base;
    size_t len = req->path_normalized.len;
    char path[WEB_PATH_MAX];
    if (len == 1 && p[0] == '/') {
        lw_strlcpy(path, "/index.html", sizeof path);
    } else if (h2o_memis(p, len, H2O_STRLIT("/phone"))) {
        /* The app's scope is /phone/: its relative URLs need the slash. */
        h2o_send_redirect(req, 301, "Moved Permanently", H2O_STRLIT(PHONE_PREFIX));
        return true;
    } else if (h2o_memis(p, len, H2O_STRLIT(PHONE_PREFIX))) {
        lw_strlcpy(path, PHONE_PREFIX "index.html", sizeof path);
    } else {
        if (!safe_path(p, len))
            return false;
        memcpy(path, p, len);
        path[len] = '\0';
    }
    if (strcmp(path, PHONE_QR_PATH) == 0)
        return serve_phone_qr(app, req);
    /* --web-dir serves a checkout of web/, which has no vendored npm files:
     * those still come from the binary. */
    if (app->cfg.web_dir[0]) {
        if (serve_from_dir(app, req, path))
            return true;
        if (strncmp(path, PHONE_VENDOR, sizeof PHONE_VENDOR - 1) != 0)
            return false;
    }
    for (const lw_asset *a = lw_web_assets; a->path; a++) {
        if (strcmp(a->path, path) != 0)
            continue;
        req->res.status = 200;
        req->res.reason = "OK";
        headers(app, req, path, a->type, strncmp(a->type, "text/html", 9) == 0);
        req->res.content_length = a->len;
        /* The data is static: no copy needed. */
        h2o_send_inline(req, (const char *)a->data, a->len);
        return true;
    }
    return false;
}
