/*
 * cli_admin.c — `linkward admin`: one request to the running server over its
 * local control socket (the server checks we are its user, or root).
 *
 * Protocol: one JSON object per line each way. The answer is bounded and
 * awaited with a deadline, so a wedged server cannot hang the operator's
 * shell or make us buffer without limit.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <fcntl.h>
#include "cli.h"
#include "lw.h"
#include "store.h"

#define ADMIN_ANSWER_MAX (64 * 1024)
#define ADMIN_TIMEOUT_MS 30000
#define ADMIN_DEFAULT_SOCKET "./var/control.sock"

static void admin_usage(FILE *f)
{
    fputs(
        "Usage: linkward admin [--control SOCKET] [--data-dir DIR] [--json] COMMAND\n"
        "  stats               counters of the running server\n"
        "  invite [--ttl 7d] [--handle HANDLE]\n"
        "                      a registration invite code (for --registration invite); with --handle it\n"
        "                      registers only that handle (refused now if the handle is taken)\n"
        "  end-sessions --account HANDLE | --device DEVICE_ID | --all  [--include-primary]\n"
        "                      log out devices (reason admin_logout): the account's companions, one device,\n"
        "                      or every account's companions; --include-primary also ends phones, which\n"
        "                      cannot get back in (no recovery yet)\n"
        "  purge               delete ended sessions past the retention period now\n"
        "  backup FILE         write a consistent copy of the database to FILE\n"
        "  restore FILE        put a backup in place of the database (the server must be stopped;\n"
        "                      the backup is checked first and the current database kept as "
        ".before-restore)\n"
        "\n"
        "The control socket defaults to ./var/control.sock, or DIR/control.sock with --data-dir.\n",
        f);
}

typedef struct admin_opts {
    const char *control, *data_dir, *ttl;
    const char *handle;           /* invite --handle */
    const char *account, *device; /* end-sessions */
    bool all, include_primary;
    bool json;
} admin_opts;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until the deadline: 1 ready, 0 timeout, -1 error. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - mono_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

/* Sends request (one line) to the socket at path and reads one line back
 * into *answer (new). Returns an exit code, having printed why on failure. */
static int exchange(const char *path, const char *request, json_t **answer)
{
    *answer = NULL;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (lw_strlcpy(sa.sun_path, path, sizeof(sa.sun_path)) != LW_OK) {
        cli_msg("linkward: control socket path too long (at most %zu bytes): %s\n", sizeof(sa.sun_path) - 1,
                path);
        return CLI_USAGE;
    }
    int rc = CLI_IO;
    lw_buf in;
    lw_buf_init(&in, ADMIN_ANSWER_MAX);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        cli_msg("linkward: cannot reach the server's control socket %s: %s\n", path, strerror(errno));
        goto fail;
    }
    int64_t deadline = mono_ms() + ADMIN_TIMEOUT_MS;
    size_t len = strlen(request), off = 0;
    while (off < len) {
        ssize_t n = send(fd, request + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (wait_fd(fd, POLLOUT, deadline) <= 0)
                goto timeout;
            continue;
        }
        if (n < 0) {
            cli_msg("linkward: cannot write to %s: %s\n", path, strerror(errno));
            goto fail;
        }
        off += (size_t)n;
    }
    char chunk[4096];
    char *nl = NULL;
    while (nl == NULL) {
        int w = wait_fd(fd, POLLIN, deadline);
        if (w == 0)
            goto timeout;
        if (w < 0) {
            cli_msg("linkward: cannot read from %s: %s\n", path, strerror(errno));
            goto fail;
        }
        ssize_t n = recv(fd, chunk, sizeof(chunk), MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n < 0) {
            cli_msg("linkward: cannot read from %s: %s\n", path, strerror(errno));
            goto fail;
        }
        if (n == 0)
            break; /* the server closed: accept an answer without newline */
        if (lw_buf_append(&in, chunk, (size_t)n) != LW_OK) {
            cli_msg("linkward: the server's answer is larger than %d bytes\n", ADMIN_ANSWER_MAX);
            goto fail;
        }
        nl = memchr(in.data, '\n', in.len);
    }
    size_t line = nl ? (size_t)(nl - in.data) : in.len;
    json_error_t jerr;
    *answer = json_loadb(in.data, line, 0, &jerr);
    if (!json_is_object(*answer)) {
        json_decref(*answer);
        *answer = NULL;
        cli_msg("linkward: the server's answer is not a JSON object\n");
        goto fail;
    }
    rc = CLI_OK;
    goto fail;
timeout:
    cli_msg("linkward: no answer from %s within %d s\n", path, ADMIN_TIMEOUT_MS / 1000);
fail:
    if (fd >= 0)
        close(fd);
    lw_buf_free(&in);
    return rc;
}

static int admin_opt(void *ctx, int argc, char **argv, int *i)
{
    admin_opts *a = ctx;
    int m;
    static const struct {
        const char *name;
        size_t off;
    } flags[] = {{"--json", offsetof(admin_opts, json)},
                 {"--all", offsetof(admin_opts, all)},
                 {"--include-primary", offsetof(admin_opts, include_primary)}};
    for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++)
        if (strcmp(argv[*i], flags[k].name) == 0) {
            *(bool *)((char *)a + flags[k].off) = true;
            (*i)++;
            return 1;
        }
    if ((m = cli_opt_value(argc, argv, i, "--handle", &a->handle)) != 0)
        return m;
    if ((m = cli_opt_value(argc, argv, i, "--account", &a->account)) != 0)
        return m;
    if ((m = cli_opt_value(argc, argv, i, "--device", &a->device)) != 0)
        return m;
    if ((m = cli_opt_value(argc, argv, i, "--control", &a->control)) != 0)
        return m;
    if ((m = cli_opt_value(argc, argv, i, "--data-dir", &a->data_dir)) != 0)
        return m;
    return cli_opt_value(argc, argv, i, "--ttl", &a->ttl);
}

/* Prints stats for people: "name: value" lines, nested objects flattened. */
static void print_flat(const char *prefix, json_t *obj)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        char name[256];
        int n = snprintf(name, sizeof(name), "%s%s%s", prefix, prefix[0] ? "." : "", key);
        if (n < 0 || (size_t)n >= sizeof(name))
            continue;
        if (json_is_object(v)) {
            print_flat(name, v);
            continue;
        }
        char *text = json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        cli_out("%s: %s\n", name, json_is_string(v) ? json_string_value(v) : text ? text : "?");
        free(text);
    }
}

/* Copies src to dst through a temporary file in dst's folder, then renames:
 * the database is either the old one or the whole new one, never half. The
 * copy gets owner, group and mode from like (the file it replaces, or the
 * data directory): restore is run as root while the service runs as its own
 * user, which must still be able to open the database. */
static int copy_file(const char *src, const char *dst, const struct stat *like)
{
    char tmp[PATH_MAX];
    int n = snprintf(tmp, sizeof tmp, "%s.restoring", dst);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return -1;
    int in = open(src, O_RDONLY | O_CLOEXEC), out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = in >= 0 && out >= 0 ? 0 : -1;
    char buf[65536];
    ssize_t r;
    while (rc == 0 && (r = read(in, buf, sizeof buf)) != 0) {
        if (r < 0 || write(out, buf, (size_t)r) != r)
            rc = -1;
    }
    if (rc == 0 && like && geteuid() == 0 && fchown(out, like->st_uid, like->st_gid) != 0)
        rc = -1;
    if (rc == 0 && like && S_ISREG(like->st_mode) && fchmod(out, like->st_mode & 0660) != 0)
        rc = -1;
    if (rc == 0 && fsync(out) != 0)
        rc = -1;
    if (in >= 0)
        close(in);
    if (out >= 0 && close(out) != 0)
        rc = -1;
    if (rc == 0 && rename(tmp, dst) != 0)
        rc = -1;
    if (rc != 0)
        unlink(tmp);
    return rc;
}

/* Offline: the running server owns the database, so restoring under it is refused. */
static int restore(const admin_opts *a, const char *control, const char *file)
{
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (s >= 0 && lw_strlcpy(sa.sun_path, control, sizeof sa.sun_path) == LW_OK &&
        connect(s, (struct sockaddr *)&sa, sizeof sa) == 0) {
        close(s);
        cli_msg("linkward: a server is running on %s: stop it before restoring\n", control);
        return CLI_REFUSED;
    }
    if (s >= 0)
        close(s);
    char db[PATH_MAX];
    int n = snprintf(db, sizeof db, "%s/linkward.db", a->data_dir ? a->data_dir : "var");
    if (n < 0 || (size_t)n >= sizeof db)
        return cli_usage_error("admin", "--data-dir: path too long");
    int version;
    char msg[256];
    if (lw_store_sqlite_check_file(file, &version, msg, sizeof msg) != LW_OK) {
        cli_msg("linkward: %s cannot be restored: %s\n", file, msg);
        return CLI_REFUSED;
    }
    char keep[PATH_MAX];
    n = snprintf(keep, sizeof keep, "%s.before-restore", db);
    if (n < 0 || (size_t)n >= sizeof keep)
        return CLI_USAGE;
    /* Who must own the restored file: the owner of the one it replaces, or
     * of the data directory when there is none. */
    struct stat like;
    const char *dir = a->data_dir ? a->data_dir : "var";
    bool had_db = stat(db, &like) == 0;
    if (!had_db && stat(dir, &like) != 0) {
        cli_msg("linkward: cannot read the data directory %s: %s\n", dir, strerror(errno));
        return CLI_IO;
    }
    /* The old database moves aside whole: its write-ahead log can hold
     * commits never checkpointed into the file, and its -shm indexes that
     * log, so both follow it (as .before-restore-wal/-shm, where SQLite looks
     * for them). Leftovers of an earlier restore go first, so an old log is
     * never paired with a newer file. */
    static const char *const sfx[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        char from[PATH_MAX], to[PATH_MAX];
        if (snprintf(from, sizeof from, "%s%s", db, sfx[i]) >= (int)sizeof from ||
            snprintf(to, sizeof to, "%s%s", keep, sfx[i]) >= (int)sizeof to)
            return cli_usage_error("admin", "--data-dir: path too long");
        if (i > 0 && unlink(to) != 0 && errno != ENOENT) {
            cli_msg("linkward: cannot remove the old %s: %s\n", to, strerror(errno));
            return CLI_IO;
        }
        if (rename(from, to) != 0 && errno != ENOENT) {
            cli_msg("linkward: cannot move %s aside: %s\n", from, strerror(errno));
            return CLI_IO;
        }
    }
    if (copy_file(file, db, &like) != 0) {
        cli_msg("linkward: restoring failed: %s; the previous database is %s\n", strerror(errno), keep);
        return CLI_IO;
    }
    if (a->json)
        cli_json_event("{sb ss si}", "ok", 1, "path", db, "schema_version", version);
    else
        cli_msg("Restored %s (schema %d) to %s; the previous database is kept as %s.\n", file, version, db,
                keep);
    return CLI_OK;
}

int cli_admin_main(int argc, char **argv)
{
    admin_opts a = {0};
    cli_opts unused = {0};
    const char *pos[2];
    int npos = 0, rc;
    /* admin has no sub-command options before its command worth separating:
     * every option is accepted anywhere. */
    rc = cli_parse_args(&unused, "admin", admin_usage, "admin", argc, argv, admin_opt, &a, pos, 2, &npos);
    if (rc != CLI_OK)
        return rc;
    if (unused.server != NULL || unused.state != NULL || unused.nheaders > 0)
        return cli_usage_error(
            "admin", "admin takes --control SOCKET or --data-dir DIR, not --server/--state/--header");
    a.json = a.json || unused.json;
    if (npos == 0) {
        admin_usage(stderr);
        return CLI_USAGE;
    }
    const char *cmd = pos[0];
    char path[PATH_MAX];
    if (a.control != NULL) {
        if (lw_strlcpy(path, a.control, sizeof(path)) != LW_OK)
            return cli_usage_error("admin", "--control: path too long");
    } else if (a.data_dir != NULL) {
        int n = snprintf(path, sizeof(path), "%s/control.sock", a.data_dir);
        if (n < 0 || (size_t)n >= sizeof(path))
            return cli_usage_error("admin", "--data-dir: path too long");
    } else {
        (void)lw_strlcpy(path, ADMIN_DEFAULT_SOCKET, sizeof(path));
    }
    if ((a.ttl != NULL || a.handle != NULL) && strcmp(cmd, "invite") != 0)
        return cli_usage_error("admin", "%s goes with invite", a.ttl != NULL ? "--ttl" : "--handle");
    if ((a.account != NULL || a.device != NULL || a.all || a.include_primary) &&
        strcmp(cmd, "end-sessions") != 0)
        return cli_usage_error("admin",
                               "--account, --device, --all and --include-primary go with end-sessions");

    if (strcmp(cmd, "restore") == 0) {
        if (npos != 2 || pos[1][0] == '\0')
            return cli_usage_error("admin", "restore needs FILE");
        return restore(&a, path, pos[1]);
    }
    json_t *req = NULL;
    if (strcmp(cmd, "stats") == 0 || strcmp(cmd, "purge") == 0) {
        if (npos != 1)
            return cli_usage_error("admin", "%s takes no argument", cmd);
        req = json_pack("{ss}", "cmd", cmd);
    } else if (strcmp(cmd, "invite") == 0) {
        int64_t ttl = 7LL * 86400 * 1000;
        if (npos != 1)
            return cli_usage_error("admin", "invite takes no argument (use --ttl)");
        if (a.ttl != NULL && (lw_duration_parse(a.ttl, &ttl) != LW_OK || ttl <= 0))
            return cli_usage_error("admin", "--ttl: a duration such as 7d, 12h or 30m");
        if (a.handle != NULL && (a.handle[0] == '\0' || strlen(a.handle) >= 64))
            return cli_usage_error("admin", "--handle: a phone number (+ and 8-15 digits) or a user name");
        req = json_pack("{ss sI}", "cmd", "invite", "ttl_ms", (json_int_t)ttl);
        if (req != NULL && a.handle != NULL)
            json_object_set_new(req, "handle", json_string(a.handle));
    } else if (strcmp(cmd, "end-sessions") == 0) {
        if (npos != 1)
            return cli_usage_error("admin",
                                   "end-sessions takes no argument (use --account, --device or --all)");
        if ((a.account != NULL) + (a.device != NULL) + a.all != 1)
            return cli_usage_error("admin",
                                   "end-sessions needs exactly one of --account HANDLE, --device DEVICE_ID "
                                   "or --all");
        if (a.account != NULL && (a.account[0] == '\0' || strlen(a.account) >= 64))
            return cli_usage_error("admin", "--account: a handle (a phone number or a user name)");
        if (a.device != NULL && !cli_check_id("--device", a.device))
            return CLI_USAGE;
        req = json_pack("{ss sb}", "cmd", "end_sessions", "include_primary", a.include_primary);
        if (req != NULL)
            json_object_set_new(req,
                                a.all       ? "all"
                                : a.account ? "account"
                                            : "device",
                                a.all ? json_true() : json_string(a.account ? a.account : a.device));
    } else if (strcmp(cmd, "backup") == 0) {
        if (npos != 2 || pos[1][0] == '\0')
            return cli_usage_error("admin", "backup needs FILE");
        /* The server resolves paths from its own folder: send an absolute one. */
        char abs[PATH_MAX], cwd[PATH_MAX];
        if (pos[1][0] == '/') {
            if (lw_strlcpy(abs, pos[1], sizeof(abs)) != LW_OK)
                return cli_usage_error("admin", "backup: path too long");
        } else {
            int n = getcwd(cwd, sizeof(cwd)) ? snprintf(abs, sizeof(abs), "%s/%s", cwd, pos[1]) : -1;
            if (n < 0 || (size_t)n >= sizeof(abs))
                return cli_usage_error("admin", "backup: cannot make %s absolute", pos[1]);
        }
        req = json_pack("{ss ss}", "cmd", "backup", "path", abs);
    } else {
        return cli_usage_error("admin", "unknown command '%s'", cmd);
    }
    if (npos > 1 && strcmp(cmd, "backup") != 0)
        return cli_usage_error("admin", "unexpected argument '%s'", pos[1]);
    char *line = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    lw_buf out;
    lw_buf_init(&out, 8192);
    if (line == NULL || lw_buf_appendf(&out, "%s\n", line) != LW_OK) {
        free(line);
        lw_buf_free(&out);
        return CLI_IO;
    }
    free(line);
    json_t *answer = NULL;
    rc = exchange(path, out.data, &answer);
    lw_buf_free(&out);
    if (rc != CLI_OK)
        return rc;

    if (!json_is_true(json_object_get(answer, "ok"))) {
        json_t *e = json_object_get(answer, "error");
        const char *msg = cli_str(e, "message");
        if (a.json)
            cli_json_doc(answer);
        cli_msg("linkward: %s\n", msg[0] ? msg : cli_str(e, "code")[0] ? cli_str(e, "code") : "refused");
        json_decref(answer);
        return CLI_REFUSED;
    }
    if (a.json) {
        cli_json_doc(answer);
    } else if (strcmp(cmd, "stats") == 0) {
        print_flat("", json_object_get(answer, "stats"));
    } else if (strcmp(cmd, "invite") == 0) {
        cli_out("%s\n", cli_str(answer, "code"));
        if (cli_str(answer, "handle")[0])
            cli_msg(
                "Invite code for the handle %s only, valid until %s. Register with: linkward phone --server "
                "URL register --handle %s --invite CODE\n",
                cli_str(answer, "handle"), cli_str(answer, "expires_at"), cli_str(answer, "handle"));
        else
            cli_msg("Invite code, valid until %s. Register with: linkward phone --server URL register "
                    "--handle HANDLE --invite CODE\n",
                    cli_str(answer, "expires_at"));
    } else if (strcmp(cmd, "end-sessions") == 0) {
        long long n = (long long)json_integer_value(json_object_get(answer, "ended"));
        if (json_is_true(json_object_get(answer, "already_ended")))
            cli_msg("Device %s had already ended; nothing to do.\n", a.device);
        else
            cli_msg("Ended %lld session%s (reason admin_logout)%s.\n", n, n == 1 ? "" : "s",
                    a.include_primary ? ", primaries included" : "");
    } else if (strcmp(cmd, "purge") == 0) {
        cli_out("Purged %lld ended session record(s).\n",
                (long long)json_integer_value(json_object_get(answer, "purged")));
    } else {
        cli_msg("Backup written to %s.\n", pos[1]);
    }
    json_decref(answer);
    return CLI_OK;
}
