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

#include "api.h"
#include "bus.h"
#include "http.h"
#include "log.h"
#include "lw.h"
#include "session.h"
#include "store.h"
#include "sweep.h"
#include "work.h"

#define CONTROL_LINE_MAX (64 * 1024)
#define INVITE_DEFAULT_TTL_MS (7LL * 24 * 3600 * 1000)
/* Device ids an end_sessions answer lists at most (the CLI reads 64 KiB). */
#define END_IDS_MAX 1000

struct lw_control {
    lw_server *app;
    h2o_socket_t *listener;
    /* Backups copy the whole database: on the loop a big one would stall
     * every request, so they run on a thread of their own, one at a time. */
    lw_work *backups;
    dev_t dev; /* identity of our socket file, to remove only our own */
    ino_t ino;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

typedef struct client {
    lw_control *c;
    h2o_socket_t *sock;
    char *reply;
} client;

/* A backup in progress: run() on the backup thread, done() on the loop. */
typedef struct backup_job {
    client *cl;
    lw_store *store;
    bool pg;
    int rc;
    char path[LW_PATH_MAX];
} backup_job;

static void send_answer(client *cl, json_t *ans);

/* Longest message of an answer, in bytes. */
#define CONTROL_MESSAGE_MAX 256

/* msg may quote what the command named (a handle, an id), cut by a bound
 * anywhere: it is made valid UTF-8 first, or jansson would refuse it and the
 * command would get no answer at all. */
static json_t *error(const char *code, const char *msg)
{
    char text[CONTROL_MESSAGE_MAX];
    if (lw_strlcpy(text, msg, sizeof text) != LW_OK)
        lw_strlcpy(text, "(the message was too long)", sizeof text);
    lw_utf8_sanitize(text);
    return json_pack("{s:b, s:{s:s, s:s}}", "ok", 0, "error", "code", code, "message", text);
}

/* {"cmd":"invite"[, "ttl_ms":N][, "handle":H]}: a registration invite. With
 * a handle it registers only that handle; the operator (trusted) is told now
 * when the handle is taken, so the invitee never has to find out by trying. */
static json_t *invite(lw_server *app, json_t *req)
{
    json_t *t = json_object_get(req, "ttl_ms");
    int64_t ttl = INVITE_DEFAULT_TTL_MS;
    if (t && (!json_is_integer(t) || json_integer_value(t) <= 0))
        return error("invalid_request", "\"ttl_ms\" must be a positive integer.");
    if (t)
        ttl = json_integer_value(t);
    json_t *hv = json_object_get(req, "handle");
    char handle[LW_HANDLE_MAX] = "";
    if (hv && !json_is_null(hv)) {
        const char *in = json_string_value(hv);
        if (!in || json_string_length(hv) >= LW_HANDLE_MAX || !lw_handle_normalize(in, handle))
            return error("invalid_request",
                         "\"handle\" must be a phone number in E.164 form (+ and 8-15 digits) "
                         "or a user name of 3-32 letters, digits, '.', '_' or '-'.");
        lw_account a;
        int rc = lw_store_account_get_by_handle(app->store, handle, &a);
        lw_wipe(&a, sizeof a);
        if (rc == LW_OK)
            return error("handle_taken", "That handle is already registered; no invitation was made.");
        if (rc != LW_ENOTFOUND)
            return error("internal", "Cannot read the store.");
    }
    char code[LW_ID_STRLEN];
    uint8_t h[LW_HASH_LEN];
    lw_random_id(code);
    lw_keyed_hash(h, app->hash_key, code, strlen(code));
    int64_t exp = lw_now_ms() + ttl;
    if (lw_store_invite_create(app->store, h, exp, handle) != LW_OK) {
        lw_wipe(code, sizeof code);
        return error("internal", "Cannot store the invitation.");
    }
    char ts[LW_TIME_STRLEN];
    lw_time_format(exp, ts);
    json_t *ans = json_pack("{s:b, s:s, s:s}", "ok", 1, "code", code, "expires_at", ts);
    if (ans && handle[0])
        json_object_set_new(ans, "handle", json_string(handle));
    lw_wipe(code, sizeof code);
    lw_log_info("control", "invitation created%s", handle[0] ? " for one handle" : "");
    return ans;
}

/* The answer to end_sessions: how many ended and (up to END_IDS_MAX) which. */
static json_t *ended_answer(const lw_ended *e, size_t n)
{
    json_t *ids = json_array();
    for (size_t i = 0; i < n && i < END_IDS_MAX; i++)
        json_array_append_new(ids, json_string(e[i].device_id));
    json_t *ans = json_pack("{s:b, s:I, s:o}", "ok", 1, "ended", (json_int_t)n, "device_ids", ids);
    if (ans && n > END_IDS_MAX)
        json_object_set_new(ans, "device_ids_truncated", json_true());
    return ans;
}

/* {"cmd":"end_sessions", exactly one of "account":HANDLE | "device":ID |
 * "all":true [, "include_primary":true]}: the administrator ends sessions
 * (ASVS 7.4.5) with reason admin_logout. Devices hear session.ended live and
 * the account gets device.ended, as for any other logout. Primaries are left
 * alone unless include_primary (or a device id names one with it): a phone
 * logged out cannot get back in (there is no recovery yet), so that is a
 * decision the operator makes explicitly. */
static json_t *end_sessions(lw_server *app, json_t *req)
{
    json_t *acct = json_object_get(req, "account"), *dev = json_object_get(req, "device");
    json_t *all = json_object_get(req, "all"), *inc = json_object_get(req, "include_primary");
    int scopes = (acct != NULL) + (dev != NULL) + (all != NULL && json_is_true(all));
    if (scopes != 1 || (all && !json_is_boolean(all)) || (inc && !json_is_boolean(inc)) ||
        (acct && !json_is_string(acct)) || (dev && !json_is_string(dev)))
        return error(
            "invalid_request",
            "Give exactly one of \"account\" (a handle), \"device\" (a device id) or \"all\": true.");
    bool include_primary = json_is_true(inc);
    const char *role = include_primary ? NULL : LW_ROLE_COMPANION;
    lw_end_result res;
    int rc;
    if (dev) {
        const char *id = json_string_value(dev);
        lw_session s;
        rc = json_string_length(dev) < LW_ID_STRLEN ? lw_store_session_get(app->store, id, &s) : LW_ENOTFOUND;
        if (rc == LW_ENOTFOUND) {
            char msg[160];
            snprintf(msg, sizeof msg, "No device has the id %.64s.", id);
            return error("not_found", msg);
        }
        if (rc != LW_OK)
            return error("internal", "Cannot read the store.");
        bool primary = strcmp(s.role, LW_ROLE_PRIMARY) == 0, active = strcmp(s.state, "active") == 0;
        lw_wipe(&s, sizeof s);
        if (primary && !include_primary)
            return error(
                "primary_device",
                "That device is the primary (the phone) of its account: ending it locks the holder out "
                "for good. Add include_primary to do it anyway.");
        if (!active)
            return json_pack("{s:b, s:I, s:[], s:b}", "ok", 1, "ended", (json_int_t)0, "device_ids",
                             "already_ended", 1);
        rc = lw_sessions_end(app->sessions, id, "admin_logout");
        if (rc == LW_ECONFLICT)
            return json_pack("{s:b, s:I, s:[], s:b}", "ok", 1, "ended", (json_int_t)0, "device_ids",
                             "already_ended", 1);
        if (rc != LW_OK)
            return error("internal", "Cannot end the session.");
        lw_log_warn("control", "the administrator ended device %.8s", id);
        return json_pack("{s:b, s:I, s:[s]}", "ok", 1, "ended", (json_int_t)1, "device_ids", id);
    }
    if (acct) {
        char handle[LW_HANDLE_MAX];
        lw_account a;
        const char *in = json_string_value(acct);
        rc = json_string_length(acct) < LW_HANDLE_MAX && lw_handle_normalize(in, handle)
                 ? lw_store_account_get_by_handle(app->store, handle, &a)
                 : LW_ENOTFOUND;
        if (rc == LW_ENOTFOUND) {
            char msg[160];
            snprintf(msg, sizeof msg, "No account has the handle %.64s.", in);
            return error("not_found", msg);
        }
        if (rc != LW_OK)
            return error("internal", "Cannot read the store.");
        char account_id[LW_ID_STRLEN];
        lw_strlcpy(account_id, a.id, sizeof account_id);
        lw_wipe(&a, sizeof a);
        lw_end_request what = {
            .scope = LW_END_ACCOUNT, .account_id = account_id, .role = role, .reason = "admin_logout"};
        rc = lw_sessions_end_where(app->sessions, &what, &res);
        if (rc != LW_OK)
            return error("internal", "Cannot end the sessions.");
        lw_log_warn("control", "the administrator ended %zu session(s) of account %.8s", res.n, account_id);
    } else {
        lw_end_request what = {.scope = LW_END_EVERY, .role = role, .reason = "admin_logout"};
        rc = lw_sessions_end_where(app->sessions, &what, &res);
        if (rc != LW_OK)
            return error("internal", "Cannot end the sessions.");
        lw_log_warn("control", "the administrator ended %zu session(s) of every account", res.n);
    }
    /* Ended, and the sockets and the accounts told. */
    json_t *ans = ended_answer(res.ended, res.n);
    lw_free(res.ended);
    return ans ? ans : error("internal", "Out of memory.");
}

static void backup_run(void *arg)
{
    backup_job *j = arg;
    j->rc = lw_store_backup(j->store, j->path);
}

static void backup_done(void *arg)
{
    backup_job *j = arg;
    json_t *ans = j->rc == LW_OK
                      ? json_pack("{s:b, s:s}", "ok", 1, "path", j->path)
                      : error("backup_failed", j->pg ? "This server uses PostgreSQL: back it up with pg_dump."
                                               : j->rc == LW_EINVAL ? "The file exists already."
                                                                    : "The backup failed.");
    if (j->rc == LW_OK)
        lw_log_info("control", "backup written");
    send_answer(j->cl, ans);
    lw_free(j);
}

/* The pool is freed (shutdown) before this backup's answer was sent: the
 * copy has finished or never started; the client sees its socket close. */
static void backup_drop(void *arg)
{
    backup_job *j = arg;
    h2o_socket_close(j->cl->sock);
    lw_free(j->cl);
    lw_free(j);
}

/* {"cmd":"backup","path":ABS}: pending last-active times are written first,
 * then the copy runs off the loop; the answer is sent when it ends. NULL
 * when queued, else the error to answer now. */
static json_t *start_backup(client *cl, json_t *req)
{
    lw_server *app = cl->c->app;
    const char *path = json_string_value(json_object_get(req, "path"));
    if (!path || !path[0])
        return error("invalid_request", "Missing \"path\".");
    if (path[0] != '/')
        return error("invalid_request", "The backup path must be absolute.");
    backup_job *j = lw_calloc(1, sizeof *j);
    if (!j)
        return error("internal", "Out of memory.");
    if (lw_strlcpy(j->path, path, sizeof j->path) != LW_OK) {
        lw_free(j);
        return error("invalid_request", "The backup path is too long.");
    }
    j->cl = cl;
    j->store = app->store;
    j->pg = strncmp(app->cfg.db, "postgres", 8) == 0;
    lw_sessions_flush(app->sessions, true);
    int rc = lw_work_submit(cl->c->backups, backup_run, backup_done, j);
    if (rc != LW_OK) {
        lw_free(j);
        return error("busy", "Too many backups are waiting; try again later.");
    }
    return NULL;
}

/* The answer to one request, or NULL when it will be sent later (a backup). */
static json_t *run(client *cl, json_t *req)
{
    lw_server *app = cl->c->app;
    const char *cmd = json_string_value(json_object_get(req, "cmd"));
    if (!cmd)
        return error("invalid_request", "Missing \"cmd\".");
    if (strcmp(cmd, "stats") == 0) {
        lw_store_stats st;
        if (lw_store_get_stats(app->store, &st) != LW_OK)
            return error("internal", "Cannot read the store.");
        return json_pack("{s:b, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}}", "ok", 1, "stats", "connections",
                         (json_int_t)lw_http_connections(), "accounts", (json_int_t)st.accounts,
                         "sessions_active", (json_int_t)st.sessions_active, "sessions_ended",
                         (json_int_t)st.sessions_ended, "link_requests_pending",
                         (json_int_t)st.link_requests_pending, "alerts", (json_int_t)st.alerts, "websockets",
                         (json_int_t)lw_bus_count(app->bus), "sessions_cached",
                         (json_int_t)lw_sessions_cached(app->sessions));
    }
    if (strcmp(cmd, "invite") == 0)
        return invite(app, req);
    if (strcmp(cmd, "end_sessions") == 0)
        return end_sessions(app, req);
    if (strcmp(cmd, "purge") == 0) {
        long ended = 0, purged = 0;
        if (lw_sweep_run(&app->domain, lw_now_ms(), &ended, &purged) != LW_OK)
            return error("internal", "The sweep failed.");
        return json_pack("{s:b, s:I, s:I}", "ok", 1, "ended", (json_int_t)ended, "purged",
                         (json_int_t)purged);
    }
    if (strcmp(cmd, "backup") == 0)
        return start_backup(cl, req);
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
    json_t *req =
        json_loadb(sock->input->bytes, (size_t)(nl - sock->input->bytes), JSON_REJECT_DUPLICATES, NULL);
    json_t *ans = req && json_is_object(req) ? run(cl, req) : error("invalid_json", "Send one JSON object.");
    json_decref(req);
    if (ans)
        send_answer(cl, ans);
}

/* Writes ans (taking it) as one line, then closes the connection. */
static void send_answer(client *cl, json_t *ans)
{
    h2o_socket_t *sock = cl->sock;
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
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
        (cred.uid != geteuid() && cred.uid != 0)) {
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

lw_control *lw_control_start(lw_server *app, const char *path)
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
    c->backups = lw_work_new(
        app->h2o_ctx, &(lw_work_opts){.name = "lw-backup", .threads = 1, .nice = 5, .drop = backup_drop});
    if (!c->backups) {
        lw_log_error("control", "cannot start the backup thread");
        close(fd);
        lw_free(c);
        return NULL;
    }
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
    /* Waits for a backup being written (it ends on its own, bounded); the
     * answers not yet sent are dropped with their connections. */
    lw_work_free(c->backups);
    h2o_socket_read_stop(c->listener);
    h2o_socket_close(c->listener);
    struct stat st;
    if (stat(c->path, &st) == 0 && st.st_dev == c->dev && st.st_ino == c->ino)
        unlink(c->path);
    lw_free(c);
}
