#include "control.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <h2o.h>
#include <jansson.h>

#include "bus.h"
#include "http.h"
#include "log.h"
#include "lw.h"
#include "session.h"
#include "store.h"
#include "sweep.h"

#define CONTROL_LINE_MAX (64 * 1024)
#define INVITE_DEFAULT_TTL_MS (7LL * 24 * 3600 * 1000)

struct lw_control {
    lw_app *app;
    h2o_socket_t *listener;
    dev_t dev; /* identity of our socket file, to remove only our own */
    ino_t ino;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

typedef struct client {
    lw_control *c;
    h2o_socket_t *sock;
    char *reply;
} client;

static json_t *error(const char *code, const char *msg)
{
    return json_pack("{s:b, s:{s:s, s:s}}", "ok", 0, "error", "code", code, "message", msg);
}

static json_t *run(lw_app *app, json_t *req)
{
    const char *cmd = json_string_value(json_object_get(req, "cmd"));
    if (!cmd)
        return error("invalid_request", "Missing \"cmd\".");
    if (strcmp(cmd, "stats") == 0) {
        lw_store_stats st;
        if (lw_store_get_stats(app->store, &st) != LW_OK)
            return error("internal", "Cannot read the store.");
        return json_pack("{s:b, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}}", "ok", 1, "stats", "connections",
                         (json_int_t)lw_http_connections(), "accounts",
                         (json_int_t)st.accounts, "sessions_active", (json_int_t)st.sessions_active, "sessions_ended",
                         (json_int_t)st.sessions_ended, "link_requests_pending",
                         (json_int_t)st.link_requests_pending, "alerts", (json_int_t)st.alerts, "websockets",
                         (json_int_t)lw_bus_count(app->bus), "sessions_cached",
                         (json_int_t)lw_sessions_cached(app->sessions));
    }
    if (strcmp(cmd, "invite") == 0) {
        json_t *t = json_object_get(req, "ttl_ms");
        int64_t ttl = INVITE_DEFAULT_TTL_MS;
        if (t && (!json_is_integer(t) || json_integer_value(t) <= 0))
            return error("invalid_request", "\"ttl_ms\" must be a positive integer.");
        if (t)
            ttl = json_integer_value(t);
        char code[LW_ID_STRLEN];
        uint8_t h[LW_HASH_LEN];
        lw_random_id(code);
        lw_keyed_hash(h, app->hash_key, code, strlen(code));
        int64_t exp = lw_now_ms() + ttl;
        if (lw_store_invite_create(app->store, h, exp) != LW_OK)
            return error("internal", "Cannot store the invitation.");
        char ts[LW_TIME_STRLEN];
        lw_time_format(exp, ts);
        json_t *ans = json_pack("{s:b, s:s, s:s}", "ok", 1, "code", code, "expires_at", ts);
        lw_wipe(code, sizeof code);
        lw_log_info("control", "invitation created");
        return ans;
    }
    if (strcmp(cmd, "purge") == 0) {
        long ended = 0, purged = 0;
        if (lw_sweep_run(app, lw_now_ms(), &ended, &purged) != LW_OK)
            return error("internal", "The sweep failed.");
        return json_pack("{s:b, s:I, s:I}", "ok", 1, "ended", (json_int_t)ended, "purged", (json_int_t)purged);
    }
    if (strcmp(cmd, "backup") == 0) {
        const char *path = json_string_value(json_object_get(req, "path"));
        if (!path || !path[0])
            return error("invalid_request", "Missing \"path\".");
        if (path[0] != '/')
            return error("invalid_request", "The backup path must be absolute.");
        lw_sessions_flush(app->sessions, true);
        int rc = lw_store_backup(app->store, path);
        if (rc != LW_OK)
            return error("backup_failed", strncmp(app->cfg.db, "postgres", 8) == 0
                                              ? "This server uses PostgreSQL: back it up with pg_dump."
                                          : rc == LW_EINVAL ? "The file exists already."
                                                            : "The backup failed.");
        return json_pack("{s:b, s:s}", "ok", 1, "path", path);
    }
    return error("invalid_request", "Unknown command.");
}

static void on_written(h2o_socket_t *sock, const char *err)
{
    client *cl = sock->data;
    free(cl->reply);
    h2o_socket_close(sock);
    lw_free(cl);
}

static void on_read(h2o_socket_t *sock, const char *err)
{
    client *cl = sock->data;
    if (err) {
        h2o_socket_close(sock);
        lw_free(cl);
        return;
    }
    char *nl = memchr(sock->input->bytes, '\n', sock->input->size);
    if (!nl) {
        if (sock->input->size > CONTROL_LINE_MAX) {
            h2o_socket_close(sock);
            lw_free(cl);
        }
        return;
    }
    h2o_socket_read_stop(sock);
    json_t *req = json_loadb(sock->input->bytes, (size_t)(nl - sock->input->bytes), JSON_REJECT_DUPLICATES, NULL);
    json_t *ans = req && json_is_object(req) ? run(cl->c->app, req) : error("invalid_json", "Send one JSON object.");
    json_decref(req);
    char *text = json_dumps(ans, JSON_COMPACT);
    json_decref(ans);
    size_t len = text ? strlen(text) : 0;
    cl->reply = malloc(len + 2);
    if (!cl->reply) {
        free(text);
        h2o_socket_close(sock);
        lw_free(cl);
        return;
    }
    memcpy(cl->reply, text ? text : "", len);
    cl->reply[len] = '\n';
    free(text);
    h2o_iovec_t buf = h2o_iovec_init(cl->reply, len + 1);
    h2o_socket_write(sock, &buf, 1, on_written);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    lw_control *c = listener->data;
    if (err)
        return;
    h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
    if (!sock)
        return;
    /* Only our own user (or root) may steer the server. */
    struct ucred cred;
    socklen_t len = sizeof cred;
    int fd = h2o_socket_get_fd(sock);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || (cred.uid != geteuid() && cred.uid != 0)) {
        lw_log_warn("control", "refused a control connection from uid %d", (int)cred.uid);
        h2o_socket_close(sock);
        return;
    }
    client *cl = lw_calloc(1, sizeof *cl);
    if (!cl) {
        h2o_socket_close(sock);
        return;
    }
    cl->c = c;
    cl->sock = sock;
    sock->data = cl;
    h2o_socket_read_start(sock, on_read);
}

lw_control *lw_control_start(lw_app *app, const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (lw_strlcpy(sa.sun_path, path, sizeof sa.sun_path) != LW_OK) {
        lw_log_error("control", "control socket path too long: %s", path);
        return NULL;
    }
    /* A socket left by a crashed server is replaced; one a running server
     * answers on is taken over (a graceful restart starts the new server
     * before the old one stops; the old one then leaves our socket alone). */
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe >= 0) {
        if (connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0)
            lw_log_warn("control", "taking over the control socket %s from a running server", path);
        close(probe);
        unlink(path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    mode_t old = umask(0077);
    int rc = fd < 0 ? -1 : bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (rc != 0 || listen(fd, 16) != 0) {
        lw_log_error("control", "cannot listen on %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    lw_control *c = lw_calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return NULL;
    }
    c->app = app;
    lw_strlcpy(c->path, path, sizeof c->path);
    struct stat st;
    if (stat(path, &st) == 0) {
        c->dev = st.st_dev;
        c->ino = st.st_ino;
    }
    c->listener = h2o_evloop_socket_create(app->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    c->listener->data = c;
    h2o_socket_read_start(c->listener, on_accept);
    return c;
}

void lw_control_stop(lw_control *c)
{
    if (!c)
        return;
    h2o_socket_read_stop(c->listener);
    h2o_socket_close(c->listener);
    struct stat st;
    if (stat(c->path, &st) == 0 && st.st_dev == c->dev && st.st_ino == c->ino)
        unlink(c->path);
    lw_free(c);
}
