/*
 * cli_companion.c — `linkward companion`: a headless companion (bots,
 * desktops) that links to an account by QR code or pairing code.
 *
 * `link` listens on the WebSocket for the QR rotations and the phone's
 * answer; if the socket drops it carries on by polling the request, so a
 * flaky proxy costs latency, not the link.
 */
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "crypto.h"
#include "lw.h"
#include "qr.h"

#define QR_PNG_SCALE 8
#define POLL_INTERVAL_MS 1000
#define POLL_FAILURES_MAX 10
#define SAFETY_POLL_MS 15000
/* After the server's announced expiry, how long we still wait for its
 * final word before calling the request expired ourselves. */
#define EXPIRY_GRACE_MS 5000

static void companion_usage(FILE *f)
{
    fputs("Usage: linkward companion [--server URL] [--state FILE] [--cacert FILE] [--header 'Name: "
          "value']... [--json] "
          "COMMAND\n"
          "  link [--name NAME] [--qr-png FILE] [--no-persist] [--relink]\n"
          "  whoami | devices | logout\n"
          "  watch\n"
          "  token\n"
          "\n"
          "The state file (default $XDG_CONFIG_HOME/linkward/companion.json) holds this device's key\n"
          "and session; --server is needed at the first link.\n",
          f);
}

static int parse_args(cli_opts *o, const char *cmd, int argc, char **argv, cli_opt_fn opt, void *ctx,
                      const char **pos, int max_pos, int *npos)
{
    return cli_parse_args(o, "companion", companion_usage, cmd, argc, argv, opt, ctx, pos, max_pos, npos);
}

/* Opens the companion's state and checks it holds a session. */
static int open_linked(cli_opts *o, lwc_device **d)
{
    int rc = cli_open_device(o, "companion.json", d);
    if (rc != CLI_OK)
        return rc;
    if (!lwc_device_linked(*d) || lwc_device_client(*d) == NULL) {
        cli_msg("linkward: this companion is not linked: run 'linkward companion --server URL link'\n");
        lwc_device_free(*d);
        *d = NULL;
        return CLI_USAGE;
    }
    return CLI_OK;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* ---- link ---- */

typedef struct link_opts {
    const char *name, *qr_png;
    bool no_persist;
    bool relink; /* link a state that already holds a session again */
} link_opts;

static int link_opt(void *ctx, int argc, char **argv, int *i)
{
    link_opts *l = ctx;
    int m;
    if ((m = cli_opt_value(argc, argv, i, "--name", &l->name)) != 0)
        return m;
    if ((m = cli_opt_value(argc, argv, i, "--qr-png", &l->qr_png)) != 0)
        return m;
    if (strcmp(argv[*i], "--no-persist") == 0) {
        l->no_persist = true;
        (*i)++;
        return 1;
    }
    if (strcmp(argv[*i], "--relink") == 0) {
        l->relink = true;
        (*i)++;
        return 1;
    }
    return 0;
}

/* What a link run keeps between events. */
typedef struct linking {
    const cli_opts *o;
    const link_opts *lo;
    lwc_device *d;
    lwc_link *l;
    int64_t deadline; /* ms since the epoch */
    bool scanned;
    bool png_warned;
} linking;

static void set_deadline(linking *k, long expires_in)
{
    k->deadline = lw_now_ms() + (int64_t)expires_in * 1000 + EXPIRY_GRACE_MS;
}

/* Writes the PNG beside its final name and renames it, so whoever watches
 * the file never reads half an image. */
static void write_png(linking *k, const char *payload)
{
    char tmp[4096];
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp", k->lo->qr_png);
    int rc = n < 0 || (size_t)n >= sizeof(tmp) ? LW_ETOOBIG : lw_qr_png_write(payload, tmp, QR_PNG_SCALE);
    if (rc == LW_OK && rename(tmp, k->lo->qr_png) != 0)
        rc = LW_EIO;
    if (rc != LW_OK) {
        if (n > 0 && (size_t)n < sizeof(tmp))
            (void)remove(tmp);
        if (!k->png_warned)
            cli_msg("linkward: warning: cannot write the QR code to %s\n", k->lo->qr_png);
        k->png_warned = true;
    }
}

static void show_qr(linking *k)
{
    const char *payload = lwc_link_payload(k->l), *code = lwc_link_code(k->l);
    long expires_in = lwc_link_expires_in(k->l);
    if (k->lo->qr_png != NULL)
        write_png(k, payload);
    if (k->o->json) {
        cli_json_event("{ss ss ss sI}", "event", "qr", "payload", payload, "code", code, "expires_in",
                       (json_int_t)expires_in);
        return;
    }
    char *art = lw_qr_terminal(payload);
    if (art != NULL) {
        fputs(art, stderr);
        fflush(stderr);
        lw_free(art);
    }
    cli_msg("Scan this QR code with Linkward on your phone (Linked devices \u203a Link a device),\n"
            "or enter the code %s\n",
            code);
    cli_out("Payload: %s\nCode:    %s\n", payload, code);
    cli_msg("(expires in %ld s)\n", expires_in);
}

static void on_scanned(linking *k)
{
    if (k->scanned)
        return;
    k->scanned = true;
    if (k->o->json)
        cli_json_event("{ss}", "event", "scanned");
    else
        cli_msg("Scanned \u2014 confirm on your phone.\n");
}

/* The request ended denied. why is the server's link.denied event (NULL
 * from a poll): with reason "limit" the account is at its device limit, and
 * its sentence says how to free a slot. */
static int finish_denied(linking *k, json_t *why)
{
    const char *reason = cli_str(why, "reason"), *message = cli_str(why, "message");
    if (k->o->json) {
        json_t *ev = json_pack("{ss}", "event", "denied");
        if (ev != NULL && reason[0] != '\0')
            json_object_set_new(ev, "reason", json_string(reason));
        if (ev != NULL && message[0] != '\0')
            json_object_set_new(ev, "message", json_string(message));
        if (ev != NULL && json_is_integer(json_object_get(why, "limit")))
            json_object_set(ev, "limit", json_object_get(why, "limit"));
        if (ev != NULL)
            cli_json_line(ev);
        json_decref(ev);
    }
    if (message[0] != '\0')
        cli_msg("linkward: %s\n", message);
    else
        cli_msg("The phone denied this link request.\n");
    return CLI_REFUSED;
}

static int finish_expired(linking *k)
{
    if (k->o->json)
        cli_json_event("{ss}", "event", "expired");
    else
        cli_msg("QR code expired \u2014 run 'linkward companion link' again.\n");
    return CLI_REFUSED;
}

static int finish_approved(linking *k)
{
    int lrc = lwc_link_complete(k->d, k->l);
    if (lrc != LW_OK) {
        const lwc_error *e = lwc_device_error(k->d);
        if (k->o->json && strcmp(e->code, "device_limit") != 0) {
            char text[1024];
            cli_error_text(e, text, sizeof(text));
            cli_json_event("{ss ss ss}", "event", "error", "code", e->code, "message", text);
        }
        if (strcmp(e->code, "expired") == 0)
            return finish_expired(k);
        if (strcmp(e->code, "device_limit") == 0) {
            /* Another device took the last slot between approval and now. */
            char text[1024];
            cli_error_text(e, text, sizeof(text));
            json_t *why = json_pack("{ss ss}", "reason", "limit", "message", text);
            int rc = finish_denied(k, why);
            json_decref(why);
            return rc;
        }
        return cli_fail(k->d, lrc);
    }
    const char *id = lwc_device_get(k->d, LWC_DEVICE_ID);
    const char *handle = lwc_device_get(k->d, LWC_HANDLE);
    if (k->o->json)
        cli_json_event("{ss ss}", "event", "linked", "device_id", id);
    else
        cli_msg("Linked%s%s. This device's id is %s.\n", handle ? " to " : "", handle ? handle : "", id);
    return CLI_OK;
}

/* Acts on a request state ("pending", "scanned", ...) from a poll. Returns
 * -1 to keep waiting, else the exit code. */
static int on_state(linking *k, json_t *st)
{
    const char *state = cli_str(st, "state");
    if (strcmp(state, "pending") == 0) {
        const char *payload = cli_str(st, "payload");
        if (payload[0] != '\0' && strcmp(payload, lwc_link_payload(k->l)) != 0 &&
            lwc_link_set_payload(k->l, payload) == LW_OK)
            show_qr(k);
        return -1;
    }
    if (strcmp(state, "scanned") == 0) {
        on_scanned(k);
        return -1;
    }
    if (strcmp(state, "approved") == 0) {
        on_scanned(k);
        return finish_approved(k);
    }
    if (strcmp(state, "denied") == 0)
        return finish_denied(k, NULL);
    if (strcmp(state, "expired") == 0)
        return finish_expired(k);
    cli_msg("linkward: this link request is %s and cannot be used\n", state[0] ? state : "unknown");
    return CLI_REFUSED;
}

static int poll_once(linking *k, int *failures)
{
    json_t *st = NULL;
    int lrc = lwc_link_poll(k->d, k->l, &st);
    if (lrc == LW_EIO) {
        if (++*failures >= POLL_FAILURES_MAX)
            return cli_fail(k->d, lrc);
        return -1;
    }
    *failures = 0;
    if (lrc == LW_EEXPIRED || lrc == LW_ENOTFOUND)
        return finish_expired(k);
    if (lrc != LW_OK)
        return cli_fail(k->d, lrc);
    set_deadline(k, lwc_link_expires_in(k->l));
    int rc = on_state(k, st);
    json_decref(st);
    return rc;
}

/* Acts on a WebSocket event; -1 to keep waiting, else the exit code. */
static int on_event(linking *k, json_t *ev)
{
    const char *name = cli_str(ev, "event");
    if (strcmp(name, "link.ref") == 0) {
        json_t *exp = json_object_get(ev, "expires_in");
        if (json_is_integer(exp))
            set_deadline(k, (long)json_integer_value(exp));
        const char *payload = cli_str(ev, "payload");
        if (payload[0] != '\0' && strcmp(payload, lwc_link_payload(k->l)) != 0 &&
            lwc_link_set_payload(k->l, payload) == LW_OK)
            show_qr(k);
        return -1;
    }
    if (strcmp(name, "link.scanned") == 0) {
        on_scanned(k);
        return -1;
    }
    if (strcmp(name, "link.approved") == 0) {
        on_scanned(k);
        return finish_approved(k);
    }
    if (strcmp(name, "link.denied") == 0)
        return finish_denied(k, ev);
    if (strcmp(name, "link.expired") == 0)
        return finish_expired(k);
    return -1; /* hello, pong, ... */
}

static int cmd_link(cli_opts *o, int argc, char **argv)
{
    link_opts lo = {0};
    const char *pos[1];
    int npos, rc;
    if ((rc = parse_args(o, "link", argc, argv, link_opt, &lo, pos, 0, &npos)) != CLI_OK)
        return rc;
    if (lo.name != NULL && (lo.name[0] == '\0' || strlen(lo.name) > 64))
        return cli_usage_error("companion", "--name: 1 to 64 characters");
    if (lo.qr_png != NULL && lo.qr_png[0] == '\0')
        return cli_usage_error("companion", "--qr-png needs a file name");

    linking k = {.o = o, .lo = &lo};
    lwc_ws *ws = NULL;
    if ((rc = cli_open_device_to_start(o, "companion.json", &k.d)) != CLI_OK)
        return rc;
    if (lwc_device_linked(k.d) && !lo.relink) {
        /* Linking the same key again replaces its session on the server; say
         * so rather than do it by accident (a second device wants a state
         * file of its own). */
        char path[PATH_MAX], text[PATH_MAX + 512];
        const char *handle = lwc_device_get(k.d, LWC_HANDLE);
        if ((rc = cli_state_path(o, "companion.json", path, sizeof(path))) != CLI_OK)
            goto done;
        snprintf(text, sizeof(text),
                 "%s already holds a linked session (device %s%s%s). To link this device again, which "
                 "replaces that session, add --relink; to link another device, give it its own --state FILE.",
                 path, lwc_device_get(k.d, LWC_DEVICE_ID), handle ? ", account " : "", handle ? handle : "");
        if (o->json)
            cli_json_event("{ss ss ss}", "event", "error", "code", "already_linked", "message", text);
        cli_msg("linkward: %s\n", text);
        rc = CLI_USAGE;
        goto done;
    }
    if (lwc_device_linked(k.d) && !o->json)
        cli_msg("Linking this device again: its session (device %s) will be replaced.\n",
                lwc_device_get(k.d, LWC_DEVICE_ID));

    json_t *info = lwc_client_info(lo.name);
    int lrc = info ? lwc_link_create(k.d, info, !lo.no_persist, &k.l) : LW_ENOMEM;
    json_decref(info);
    if (lrc != LW_OK) {
        rc = cli_fail(k.d, lrc);
        goto done;
    }
    set_deadline(&k, lwc_link_expires_in(k.l));
    int err = LW_OK;
    ws = lwc_link_ws_connect(k.d, k.l, &err); /* NULL: we poll instead */
    show_qr(&k);

    int failures = 0;
    int64_t last_look = lw_now_ms();
    rc = -1;
    while (rc < 0) {
        if (lw_now_ms() >= k.deadline) {
            /* Past the expiry: one last look, in case the answer was lost. */
            rc = poll_once(&k, &failures);
            if (rc < 0)
                rc = finish_expired(&k);
            break;
        }
        if (ws != NULL) {
            json_t *ev = NULL;
            int wrc = lwc_ws_next(ws, &ev, POLL_INTERVAL_MS);
            if (wrc == LW_EEXPIRED) {
                /* A socket can die without a word (a NAT forgets it): look
                 * over HTTP now and then, as polling does. */
                if (lw_now_ms() - last_look >= SAFETY_POLL_MS) {
                    last_look = lw_now_ms();
                    rc = poll_once(&k, &failures);
                }
                continue;
            }
            last_look = lw_now_ms();
            if (wrc != LW_OK) {
                lwc_ws_close(ws);
                ws = NULL;
                /* The answer may have come while the socket was going. */
                rc = poll_once(&k, &failures);
                continue;
            }
            rc = on_event(&k, ev);
            json_decref(ev);
        } else {
            sleep_ms(POLL_INTERVAL_MS);
            rc = poll_once(&k, &failures);
        }
    }
done:
    lwc_ws_close(ws);
    lwc_link_free(k.l);
    lwc_device_free(k.d);
    return rc;
}

/* ---- the session ---- */

static int cmd_watch(cli_opts *o, int argc, char **argv)
{
    const char *pos[1];
    int npos, rc;
    if ((rc = parse_args(o, "watch", argc, argv, NULL, NULL, pos, 0, &npos)) != CLI_OK)
        return rc;
    lwc_device *d = NULL;
    if ((rc = open_linked(o, &d)) != CLI_OK)
        return rc;
    if (!o->json)
        cli_msg("Watching events for device %s (Ctrl-C to stop)...\n", lwc_device_get(d, LWC_DEVICE_ID));
    rc = cli_follow_events(d, o->json);
    lwc_device_free(d);
    return rc;
}

static int cmd_token(cli_opts *o, int argc, char **argv)
{
    const char *pos[1];
    int npos, rc;
    if ((rc = parse_args(o, "token", argc, argv, NULL, NULL, pos, 0, &npos)) != CLI_OK)
        return rc;
    lwc_device *d = NULL;
    if ((rc = open_linked(o, &d)) != CLI_OK)
        return rc;
    const char *token = NULL;
    /* A minute of validity at least: enough for the caller to use it. */
    int lrc = lwc_device_token(d, 60, &token);
    if (lrc != LW_OK) {
        rc = cli_fail(d, lrc);
    } else if (token[strspn(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")] !=
               '\0') {
        cli_msg("linkward: the saved credential is malformed\n");
        rc = CLI_USAGE;
    } else if (o->json) {
        /* Printed directly rather than through jansson, which would leave
         * a copy of the credential in freed memory. */
        printf("{\"token\":\"%s\",\"expires_in\":%ld}\n", token, lwc_device_token_expires_in(d));
        fflush(stdout);
    } else {
        printf("%s\n", token);
        fflush(stdout);
    }
    lwc_device_free(d);
    return rc;
}

static int cmd_logout(cli_opts *o, int argc, char **argv)
{
    const char *pos[1];
    int npos, rc;
    if ((rc = parse_args(o, "logout", argc, argv, NULL, NULL, pos, 0, &npos)) != CLI_OK)
        return rc;
    lwc_device *d = NULL;
    if ((rc = cli_open_device(o, "companion.json", &d)) != CLI_OK)
        return rc;
    if (!lwc_device_linked(d) || lwc_device_client(d) == NULL) {
        /* Logging out twice is not an error: the outcome is the one asked for. */
        if (o->json)
            cli_json_event("{sb}", "ended", 0);
        else
            cli_msg("This device has no session; nothing to log out.\n");
        lwc_device_free(d);
        return CLI_OK;
    }
    int lrc = lwc_device_call(d, "DELETE", "/v1/session", NULL, NULL);
    const char *code = lwc_device_error(d)->code;
    /* A session the server already ended (or no longer knows) is as good as
     * logged out: forget it here too. */
    bool gone = lrc != LW_OK && (strcmp(code, "session_ended") == 0 || strcmp(code, "token_theft") == 0 ||
                                 strcmp(code, "unauthenticated") == 0);
    if (lrc != LW_OK && !gone) {
        rc = cli_fail(d, lrc);
        goto done;
    }
    char reason[64];
    cli_safe(lwc_device_error(d)->reason, reason, sizeof(reason));
    lwc_device_forget_session(d);
    if ((lrc = lwc_device_save(d)) != LW_OK) {
        rc = cli_fail(d, lrc);
        goto done;
    }
    if (o->json) {
        json_t *j = json_pack("{sb}", "ended", !gone);
        if (j != NULL && gone)
            json_object_set_new(j, "already_ended", json_true());
        if (j != NULL)
            cli_json_doc(j);
        json_decref(j);
    } else if (gone) {
        cli_msg("This device's session had already ended%s%s%s; it is forgotten here.\n",
                reason[0] ? " (" : "", reason, reason[0] ? ")" : "");
    } else {
        cli_msg("Logged out.\n");
    }
    rc = CLI_OK;
done:
    lwc_device_free(d);
    return rc;
}

static int cmd_whoami(cli_opts *o, int argc, char **argv)
{
    const char *pos[1];
    int npos, rc;
    if ((rc = parse_args(o, "whoami", argc, argv, NULL, NULL, pos, 0, &npos)) != CLI_OK)
        return rc;
    lwc_device *d = NULL;
    json_t *answer = NULL;
    if ((rc = open_linked(o, &d)) != CLI_OK)
        return rc;
    int lrc = lwc_device_call(d, "GET", "/v1/session", NULL, &answer);
    if (lrc != LW_OK) {
        rc = cli_fail(d, lrc);
    } else if (o->json) {
        cli_json_doc(answer);
    } else {
        json_t *dev = json_object_get(answer, "device"), *acct = json_object_get(answer, "account");
        char place[256];
        cli_place(dev, place, sizeof(place));
        cli_out("Handle:   %s\nAccount:  %s\nDevice:   %s (%s, %s)\nServer:   %s\nLinked:   %s from %s\n",
                cli_str(acct, "handle"), cli_str(acct, "id"), cli_str(dev, "id"), cli_str(dev, "role"),
                cli_str(dev, "name"), lwc_device_get(d, LWC_SERVER), cli_str(dev, "linked_at"), place);
    }
    json_decref(answer);
    lwc_device_free(d);
    return rc;
}

static int cmd_devices(cli_opts *o, int argc, char **argv)
{
    const char *pos[1];
    int npos, rc;
    if ((rc = parse_args(o, "devices", argc, argv, NULL, NULL, pos, 0, &npos)) != CLI_OK)
        return rc;
    lwc_device *d = NULL;
    json_t *answer = NULL;
    if ((rc = open_linked(o, &d)) != CLI_OK)
        return rc;
    int lrc = lwc_device_call(d, "GET", "/v1/devices", NULL, &answer);
    json_t *list = json_object_get(answer, "devices");
    if (lrc != LW_OK) {
        rc = cli_fail(d, lrc);
    } else if (!json_is_array(list)) {
        cli_msg("linkward: the server's answer has no \"devices\" list\n");
        rc = CLI_IO;
    } else if (o->json) {
        cli_json_doc(list);
    } else {
        cli_print_devices(list, false);
    }
    json_decref(answer);
    lwc_device_free(d);
    return rc;
}

static const cli_cmd companion_cmds[] = {
    {"link", cmd_link},     {"watch", cmd_watch},   {"token", cmd_token},
    {"logout", cmd_logout}, {"whoami", cmd_whoami}, {"devices", cmd_devices},
};

int cli_companion_main(int argc, char **argv)
{
    return cli_dispatch("companion", companion_usage, companion_cmds,
                        sizeof(companion_cmds) / sizeof(companion_cmds[0]), argc, argv);
}
