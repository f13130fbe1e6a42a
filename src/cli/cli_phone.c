/*
 * cli_phone.c — `linkward phone`: the primary device.
 *
 * The phone is the only device that can let another one in, so `link` is
 * careful in a fixed order: check the QR code offline against the pinned
 * server key and origin, show the account holder who is asking (sanitised),
 * ask, and only then sign the requester's key.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "crypto.h"
#include "lw.h"
#include "qr.h"

#define PIN_MAX 16  /* bytes for a typed PIN: 6 digits, room to detect more */
#define PIN_TRIES 3 /* interactive attempts before giving up */

static void phone_usage(FILE *f)
{
    fputs("Usage: linkward phone [--server URL] [--state FILE] [--cacert FILE] [--header 'Name: value']... "
          "[--json] COMMAND\n"
          "  register --handle HANDLE [--invite CODE] [--name NAME]\n"
          "  link PAYLOAD | --image QR.png | --code XXXX-XXXX  [--pin PIN] [--yes | --deny] [--accept-risk]\n"
          "  deny PAYLOAD | --image QR.png | --code XXXX-XXXX\n"
          "  devices | history | alerts [--follow]\n"
          "  alerts ack ALERT_ID          (\"it was me\")\n"
          "  logout DEVICE_ID [--alert ALERT_ID] | --all   (log out that device / every device)\n"
          "  secure [--alert ALERT_ID]    (log out every device; no links until the PIN is changed)\n"
          "  history delete DEVICE_ID | --all\n"
          "  pin set --pin PIN | pin change --pin OLD --new-pin NEW [--logout-all] | pin disable --pin PIN\n"
          "  delete-account --yes [--pin PIN]\n"
          "                               (delete the account: every device logged out, everything erased)\n"
          "  settings [--inactive-ttl DAYS]\n"
          "  whoami\n"
          "\n"
          "The state file (default $XDG_CONFIG_HOME/linkward/phone.json) holds this phone's key;\n"
          "--server is needed only at register.\n",
          f);
}

static bool server_was_reset(const cli_opts *o, lwc_device *d);

static int parse_args(cli_opts *o, const char *cmd, int argc, char **argv, cli_opt_fn opt, void *ctx,
                      const char **pos, int max_pos, int *npos)
{
    return cli_parse_args(o, "phone", phone_usage, cmd, argc, argv, opt, ctx, pos, max_pos, npos);
}

/* Opens the phone's state and checks it is registered. */
static int open_phone(cli_opts *o, lwc_device **d)
{
    int rc = cli_open_device(o, "phone.json", d);
    if (rc != CLI_OK)
        return rc;
    if (!lwc_device_linked(*d)) {
        cli_msg("linkward: this phone is not registered: run 'linkward phone --server URL register --handle "
                "HANDLE'\n");
        lwc_device_free(*d);
        *d = NULL;
        return CLI_USAGE;
    }
    return CLI_OK;
}

/* ---- register ---- */

typedef struct register_opts {
    const char *handle, *invite, *name;
} register_opts;

static int register_opt(void *ctx, int argc, char **argv, int *i)
{
    register_opts *r = ctx;
    int m;
    if ((m = cli_opt_value(argc, argv, i, "--handle", &r->handle)) != 0)
        return m;
    if ((m = cli_opt_value(argc, argv, i, "--invite", &r->invite)) != 0)
        return m;
    return cli_opt_value(argc, argv, i, "--name", &r->name);
}

/* An E.164 number ("+" and 8-15 digits) or a user name of 3-32 of a-z 0-9 . _ - */
static bool handle_ok(const char *h)
{
    size_t n = strlen(h);
    if (h[0] == '+') {
        if (n < 9 || n > 16)
            return false;
        for (size_t i = 1; i < n; i++)
            if (h[i] < '0' || h[i] > '9')
                return false;
        return true;
    }
    if (n < 3 || n > 32)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

static int cmd_register(cli_opts *o, int argc, char **argv)
{
    register_opts r = {0};
    const char *pos[1];
    int npos, rc;
    if ((rc = parse_args(o, "register", argc, argv, register_opt, &r, pos, 0, &npos)) != CLI_OK)
        return rc;
    if (r.handle == NULL)
        return cli_usage_error("phone", "register needs --handle HANDLE");
    if (!handle_ok(r.handle))
        return cli_usage_error("phone",
                               "--handle: use a phone number in E.164 form (+ and 8-15 digits) or a user "
                               "name of 3-32 letters, digits, '.', '_' or '-'");
    if (r.name != NULL && (r.name[0] == '\0' || strlen(r.name) > 64))
        return cli_usage_error("phone", "--name: 1 to 64 characters");
    if (r.invite != NULL && (r.invite[0] == '\0' || strlen(r.invite) > 128))
        return cli_usage_error("phone", "--invite: 1 to 128 characters");

    lwc_device *d = NULL;
    if ((rc = cli_open_device_to_start(o, "phone.json", &d)) != CLI_OK)
        return rc;
    json_t *info = lwc_client_info(r.name), *answer = NULL;
    int lrc = info ? lwc_register(d, r.handle, r.invite, info, &answer) : LW_ENOMEM;
    json_decref(info);
    if (lrc == LW_ECONFLICT && strcmp(lwc_device_error(d)->code, "state") == 0) {
        /* The state already holds a phone: a reset server (the usual reason
         * to register again) is said so; otherwise name the file. */
        char path[PATH_MAX];
        rc = CLI_USAGE;
        if (server_was_reset(o, d) || cli_state_path(o, "phone.json", path, sizeof(path)) != CLI_OK)
            goto done;
        cli_msg("linkward: %s already holds a registered phone (%s on %s). To register another account, give "
                "--state NEW_FILE (or move %s away).\n",
                path, lwc_device_get(d, LWC_HANDLE) ? lwc_device_get(d, LWC_HANDLE) : "?",
                lwc_device_get(d, LWC_SERVER) ? lwc_device_get(d, LWC_SERVER) : "?", path);
        goto done;
    }
    if (lrc != LW_OK) {
        rc = cli_fail(d, lrc);
        goto done;
    }
    if (o->json) {
        cli_json_doc(answer);
    } else {
        cli_msg("Registered %s on %s.\nDevice id: %s\nServer origin pinned: %s\n",
                lwc_device_get(d, LWC_HANDLE), lwc_device_get(d, LWC_SERVER),
                lwc_device_get(d, LWC_DEVICE_ID), lwc_device_get(d, LWC_ORIGIN));
    }
    rc = CLI_OK;
done:
    json_decref(answer);
    lwc_device_free(d);
    return rc;
}

/* ---- link / deny ---- */

typedef struct link_opts {
    const char *image, *code, *pin;
    bool yes, accept_risk;
    bool deny; /* link --deny: show who asks, then deny */
    bool deny_only;
    bool has_pin; /* the account has a PIN (learnt before the scan) */
} link_opts;

static int link_opt(void *ctx, int argc, char **argv, int *i)
{
    link_opts *l = ctx;
    int m;
    if ((m = cli_opt_value(argc, argv, i, "--image", &l->image)) != 0)
        return m;
    if ((m = cli_opt_value(argc, argv, i, "--code", &l->code)) != 0)
        return m;
    if (l->deny_only)
        return 0;
    if ((m = cli_opt_value(argc, argv, i, "--pin", &l->pin)) != 0)
        return m;
    if (strcmp(argv[*i], "--yes") == 0 || strcmp(argv[*i], "-y") == 0) {
        l->yes = true;
        (*i)++;
        return 1;
    }
    if (strcmp(argv[*i], "--accept-risk") == 0) {
        l->accept_risk = true;
        (*i)++;
        return 1;
    }
    if (strcmp(argv[*i], "--deny") == 0) {
        l->deny = true;
        (*i)++;
        return 1;
    }
    return 0;
}

/* After a refusal that a reset server also gives (a QR code its old key
 * did not sign, a credential it no longer knows): asks the server whether
 * it still is the one this phone registered with. If not, says what
 * changed, where this phone's state is and how to start over, and returns
 * true; otherwise false, with e (the original refusal) left for the caller. */
static bool server_was_reset(const cli_opts *o, lwc_device *d)
{
    int crc = lwc_device_check_server(d);
    if (crc != LW_ECRYPTO && crc != LW_ENOTFOUND)
        return false;
    char path[PATH_MAX], text[PATH_MAX * 2 + 1024];
    if (cli_state_path(o, "phone.json", path, sizeof(path)) != CLI_OK)
        (void)lw_strlcpy(path, "the state file", sizeof(path));
    const char *server = lwc_device_get(d, LWC_SERVER) ? lwc_device_get(d, LWC_SERVER) : "the server";
    snprintf(text, sizeof(text),
             "the server at %s is no longer the one this phone registered with: %s. This phone's state "
             "file %s belongs to the old one; nothing was sent. To start over, move %s away (or give "
             "--state NEW_FILE) and register again: linkward phone --server %s register --handle HANDLE",
             server,
             crc == LW_ECRYPTO ? "it has a new server key (it was reset or replaced)"
                               : "it no longer knows this phone (its database was reset)",
             path, path, server);
    if (o->json)
        cli_json_event("{ss ss ss}", "event", "error", "code", "server_reset", "message", text);
    cli_msg("linkward: %s.\n", text);
    return true;
}

/* Reports a failure of the link flow: an error line in --json, the
 * sentence on stderr in any case. */
static int link_failed(const cli_opts *o, lwc_device *d, int lrc)
{
    if (o->json) {
        const lwc_error *e = lwc_device_error(d);
        char text[1024];
        cli_error_text(e, text, sizeof(text));
        json_t *ev = json_pack("{ss ss ss}", "event", "error", "code", e->code[0] ? e->code : "error",
                               "message", text);
        if (ev != NULL && e->attempts_left >= 0)
            json_object_set_new(ev, "attempts_left", json_integer(e->attempts_left));
        if (ev != NULL && e->retry_after >= 0)
            json_object_set_new(ev, "retry_after", json_integer(e->retry_after));
        if (ev != NULL)
            cli_json_line(ev);
        json_decref(ev);
    }
    return cli_fail(d, lrc);
}

/* link_failed for an error saved before the device's was overwritten. */
static int refusal(const cli_opts *o, const lwc_error *e, int lrc)
{
    char text[1024];
    cli_error_text(e, text, sizeof(text));
    if (o->json)
        cli_json_event("{ss ss ss}", "event", "error", "code", e->code[0] ? e->code : "error", "message",
                       text);
    cli_msg("linkward: %s\n", text);
    return cli_exit_for(lrc);
}

/* "low", "medium", "high" with the reasons, for people. */
static void risk_text(json_t *risk, char *dst, size_t cap)
{
    lw_buf b;
    lw_buf_init(&b, 2048);
    const char *level = cli_str(risk, "level");
    (void)lw_buf_appendf(&b, "%s", level[0] ? level : "unknown");
    json_t *reasons = json_object_get(risk, "reasons");
    size_t i;
    json_t *r;
    json_array_foreach(reasons, i, r)
    {
        const char *text = json_is_string(r) ? json_string_value(r) : cli_str(r, "message");
        if (text[0] == '\0')
            text = cli_str(r, "code");
        /* Each reason is a sentence: joined as sentences, not with "; ". */
        (void)lw_buf_appendf(&b, "%s%s", i == 0 ? " — " : " ", text);
    }
    cli_safe(b.data ? b.data : "", dst, cap);
    lw_buf_free(&b);
}

static void show_request(const cli_opts *o, lwc_scan *s)
{
    json_t *req = lwc_scan_request(s), *risk = lwc_scan_risk(s);
    if (o->json) {
        cli_json_event("{ss sO sO}", "event", "request", "request", req, "risk", risk);
        return;
    }
    char name[256], browser[256], os[256], place[256], asked[64], rtext[1024], network[256];
    cli_safe(cli_str(req, "name")[0] ? cli_str(req, "name") : "(no name)", name, sizeof(name));
    cli_name_version(req, "browser", "browser_version", browser, sizeof(browser));
    cli_name_version(req, "os", "os_version", os, sizeof(os));
    cli_place(req, place, sizeof(place));
    cli_time_ago(cli_str(req, "created_at"), asked, sizeof(asked));
    json_t *net = json_object_get(req, "network");
    if (json_is_string(net)) {
        cli_safe(json_string_value(net)[0] ? json_string_value(net) : "-", network, sizeof(network));
    } else {
        char *t = net ? json_dumps(net, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        cli_safe(t ? t : "-", network, sizeof(network));
        free(t);
    }
    risk_text(risk, rtext, sizeof(rtext));
    char distance[64] = "-";
    json_t *km = json_object_get(req, "distance_km");
    if (json_is_integer(km))
        snprintf(distance, sizeof distance, "%lld km from this phone", (long long)json_integer_value(km));
    cli_msg("\nA device asks to be linked to your account:\n"
            "  Name:     %s\n"
            "  Browser:  %s\n"
            "  System:   %s\n"
            "  Device:   %s\n"
            "  Address:  %s\n"
            "  Place:    %s\n"
            "  Network:  %s\n"
            "  Distance: %s\n"
            "  Asked:    %s\n"
            "  Key:      %s\n"
            "  Risk:     %s\n\n",
            name, browser, os, cli_str(req, "device_model")[0] ? cli_str(req, "device_model") : "-",
            cli_str(req, "ip")[0] ? cli_str(req, "ip") : "-", place, network, distance, asked,
            lwc_scan_fingerprint(s), rtext);
}

/* Reads the QR code's text: the argument, or the PNG decoded; trimmed. */
static int read_payload(const link_opts *l, const char *arg, char **out)
{
    char *text = NULL;
    *out = NULL;
    if (l->image != NULL) {
        int rc = lw_qr_png_decode(l->image, &text);
        if (rc == LW_ENOTFOUND) {
            cli_msg("linkward: no QR code found in %s\n", l->image);
            return CLI_USAGE;
        }
        if (rc != LW_OK) {
            cli_msg("linkward: cannot read the image %s\n", l->image);
            return CLI_USAGE;
        }
    } else {
        if ((text = lw_strdup(arg)) == NULL)
            return CLI_IO;
    }
    /* Pasted or decoded text often carries a newline or spaces. */
    size_t start = 0, end = strlen(text);
    while (start < end &&
           (text[start] == ' ' || text[start] == '\t' || text[start] == '\n' || text[start] == '\r'))
        start++;
    while (end > start &&
           (text[end - 1] == ' ' || text[end - 1] == '\t' || text[end - 1] == '\n' || text[end - 1] == '\r'))
        end--;
    memmove(text, text + start, end - start);
    text[end - start] = '\0';
    *out = text;
    return CLI_OK;
}

/* Approves, asking for the PIN on the terminal when the server wants one
 * and none was given (and we may ask). An account without a PIN on a server
 * that requires one (--pin-required) is asked for none: the server's answer
 * already says to set one first. */
static int approve(const cli_opts *o, lwc_device *d, lwc_scan *s, const link_opts *l, bool accept_risk)
{
    char typed[PIN_MAX];
    const char *pin = l->pin;
    int lrc = lwc_link_approve(d, s, pin, accept_risk);
    for (int tries = 0; lrc != LW_OK && !l->yes && tries < PIN_TRIES; tries++) {
        const lwc_error *e = lwc_device_error(d);
        bool need = (strcmp(e->code, "pin_required") == 0 && l->has_pin) ||
                    (strcmp(e->code, "wrong_pin") == 0 && e->attempts_left != 0);
        if (!need)
            break;
        if (strcmp(e->code, "wrong_pin") == 0) {
            char text[1024];
            cli_error_text(e, text, sizeof(text));
            cli_msg("%s\n", text);
        }
        if (!cli_read_secret("Two-step verification PIN: ", typed, sizeof(typed)))
            break;
        if (!cli_check_pin("PIN", typed)) {
            lw_wipe(typed, sizeof(typed));
            continue;
        }
        lrc = lwc_link_approve(d, s, typed, accept_risk);
        lw_wipe(typed, sizeof(typed));
    }
    if (lrc != LW_OK) {
        if (strcmp(lwc_device_error(d)->code, "pin_required") == 0 && l->pin == NULL && l->has_pin)
            cli_msg("linkward: this account has a two-step verification PIN: add --pin PIN\n");
        return link_failed(o, d, lrc);
    }
    return CLI_OK;
}

static int link_or_deny(cli_opts *o, int argc, char **argv, bool deny_only)
{
    link_opts l = {.deny_only = deny_only};
    const char *cmd = deny_only ? "deny" : "link";
    const char *pos[1];
    int npos, rc, lrc;
    char *payload = NULL;
    lwc_device *d = NULL;
    lwc_scan *s = NULL;
    if ((rc = parse_args(o, cmd, argc, argv, link_opt, &l, pos, 1, &npos)) != CLI_OK)
        return rc;
    int sources = (npos > 0) + (l.image != NULL) + (l.code != NULL);
    if (sources != 1)
        return cli_usage_error("phone", "%s needs exactly one of PAYLOAD, --image QR.png, --code XXXX-XXXX",
                               cmd);
    if (l.pin != NULL && !cli_check_pin("--pin", l.pin))
        return CLI_USAGE;
    if (l.yes && l.deny)
        return cli_usage_error("phone", "link takes --yes or --deny, not both");
    /* Nobody to ask and no answer given: refuse before the scan, which would
     * spend the requester's QR code (and a "no" by default would deny it). */
    if (!deny_only && !l.yes && !l.deny && !cli_have_tty() && !cli_stdin_may_answer()) {
        cli_msg("linkward: no terminal to ask on and no answer on stdin: use --yes to approve or --deny to "
                "deny (nothing was sent)\n");
        return CLI_USAGE;
    }
    if ((rc = open_phone(o, &d)) != CLI_OK)
        return rc;
    if (l.code == NULL && (rc = read_payload(&l, npos ? pos[0] : NULL, &payload)) != CLI_OK)
        goto done;
    if (payload != NULL && (lrc = lwc_payload_check(d, payload)) != LW_OK) {
        lwc_error why = *lwc_device_error(d);
        if (lrc == LW_ECRYPTO && server_was_reset(o, d)) {
            rc = CLI_REFUSED;
            goto done;
        }
        rc = refusal(o, &why, lrc);
        goto done;
    }
    /* Whether the account has a PIN. A scan is single use: if approval is
     * bound to fail for want of a PIN we cannot ask for, say so before
     * spending the requester's QR code. */
    if (!deny_only) {
        json_t *session = NULL;
        int src = lwc_device_call(d, "GET", "/v1/session", NULL, &session);
        l.has_pin = json_is_true(json_object_get(json_object_get(session, "account"), "has_pin"));
        json_decref(session);
        if (src != LW_OK) {
            lwc_error why = *lwc_device_error(d);
            if (src == LW_EDENIED && server_was_reset(o, d)) {
                rc = CLI_REFUSED;
                goto done;
            }
            rc = refusal(o, &why, src);
            goto done;
        }
        if (!l.deny && l.has_pin && l.pin == NULL && (l.yes || !cli_have_tty())) {
            if (o->json)
                cli_json_event("{ss ss ss}", "event", "error", "code", "pin_required", "message",
                               "This account has a two-step verification PIN: add --pin PIN.");
            cli_msg("linkward: this account has a two-step verification PIN: add --pin PIN\n");
            rc = CLI_REFUSED;
            goto done;
        }
    }

    lrc = lwc_link_scan(d, payload, l.code, &s);
    if (lrc == LW_ECRYPTO && strcmp(lwc_device_error(d)->code, "invalid_signature") == 0) {
        lwc_error why = *lwc_device_error(d);
        rc = server_was_reset(o, d) ? CLI_REFUSED : refusal(o, &why, lrc);
        goto done;
    }
    if (lrc != LW_OK) {
        /* A malformed code is a typing error, not a refusal. */
        rc = strcmp(lwc_device_error(d)->code, "invalid_code") == 0 && lwc_device_error(d)->status == 0
                 ? (cli_fail(d, lrc), CLI_USAGE)
                 : link_failed(o, d, lrc);
        goto done;
    }
    show_request(o, s);

    bool approve_it = false, accept_risk = l.accept_risk;
    bool high = strcmp(cli_str(lwc_scan_risk(s), "level"), "high") == 0;
    if (!deny_only && lwc_scan_blocked(s)) {
        /* Nothing the holder can add changes this answer: say whose rule it
         * is, rather than suggest --accept-risk. */
        if (o->json)
            cli_json_event("{ss ss ss}", "event", "error", "code", "risk_blocked", "message",
                           "This server's policy refuses high-risk links; it cannot be linked.");
        cli_msg("linkward: this request is high risk and this server's policy refuses high-risk links "
                "(--link-policy block-high-risk): it cannot be linked, not even with --accept-risk. Denying "
                "it.\n");
    } else if (!deny_only) {
        if (l.yes) {
            approve_it = true;
            if (high && !accept_risk) {
                cli_msg("linkward: this request is high risk; add --accept-risk to link it anyway. Denying "
                        "it.\n");
                approve_it = false;
            }
        } else if (!l.deny) {
            cli_answer a = cli_ask("Link this device? [y/N]");
            if (a == CLI_ANSWER_YES && high && !accept_risk) {
                a = cli_ask("This request is HIGH risk. Are you sure it is you? [y/N]");
                accept_risk = a == CLI_ANSWER_YES;
            }
            if (a == CLI_ANSWER_NONE) {
                /* The input ended without a word: that is not a "no". */
                cli_msg("linkward: no answer came: nothing was approved or denied (this phone may scan it "
                        "again to answer). Use --yes to approve or --deny to deny.\n");
                rc = CLI_USAGE;
                goto done;
            }
            approve_it = a == CLI_ANSWER_YES;
        }
    }
    if (approve_it) {
        if ((rc = approve(o, d, s, &l, accept_risk)) != CLI_OK)
            goto done;
        if (o->json)
            cli_json_event("{ss ss}", "event", "approved", "request_id", lwc_scan_id(s));
        else
            cli_msg("Approved. The device is being linked to your account.\n");
        rc = CLI_OK;
        goto done;
    }
    if ((lrc = lwc_link_deny(d, s)) != LW_OK) {
        rc = link_failed(o, d, lrc);
        goto done;
    }
    if (o->json)
        cli_json_event("{ss ss}", "event", "denied", "request_id", lwc_scan_id(s));
    else
        cli_msg("Denied.\n");
    /* `deny` and `link --deny` did what was asked; a `link` that ends denied did not. */
    rc = deny_only || l.deny ? CLI_OK : CLI_REFUSED;
done:
    cli_wipe_arg(l.pin);
    lwc_scan_free(s);
    lw_free(payload);
    lwc_device_free(d);
    return rc;
}

static int cmd_link(cli_opts *o, int argc, char **argv)
{
    return link_or_deny(o, argc, argv, false);
}

static int cmd_deny(cli_opts *o, int argc, char **argv)
{
    return link_or_deny(o, argc, argv, true);
}

/* ---- lists ---- */

/* Marks every row of list this phone did not approve: each companion gets
 * "signed_by_this_phone" (its account signature checked with this phone's
 * key, PRODUCT.md §2.5), and so does a primary row that is not this phone.
 * Returns how many failed. */
static size_t verify_list(lwc_device *d, json_t *list)
{
    size_t i, bad = 0;
    json_t *rec;
    json_array_foreach(list, i, rec)
    {
        bool primary = strcmp(cli_str(rec, "role"), "primary") == 0;
        bool ok = lwc_device_verify_record(d, rec) == LW_OK;
        if (primary && ok)
            continue;
        json_object_set_new(rec, "signed_by_this_phone", json_boolean(ok));
        bad += !ok;
    }
    return bad;
}

/* Tells people (stderr) about each device this phone never signed. */
static void warn_unsigned(json_t *list, bool history)
{
    size_t i;
    json_t *rec;
    json_array_foreach(list, i, rec)
    {
        if (!json_is_false(json_object_get(rec, "signed_by_this_phone")))
            continue;
        cli_msg("linkward: WARNING: %s (%s) is %s\n",
                cli_str(rec, "name")[0] ? cli_str(rec, "name") : "(no name)", cli_str(rec, "id"),
                CLI_UNSIGNED_WARNING);
    }
    if (history)
        cli_msg("linkward: do not trust this server: it shows devices of this account you never approved.\n");
    else
        cli_msg("linkward: log such a device out (linkward phone logout DEVICE_ID) and do not trust this "
                "server.\n");
}

/* GETs path and prints member `key` (an array) as JSON or a table. A list of
 * session records (records) is checked first: every device in it must have
 * been approved by this phone; if one was not, says so and exits
 * CLI_REFUSED. */
static int show_list(cli_opts *o, const char *path, const char *key, void (*human)(json_t *, bool),
                     bool records, bool history)
{
    lwc_device *d = NULL;
    json_t *answer = NULL;
    int rc = open_phone(o, &d);
    if (rc != CLI_OK)
        return rc;
    int lrc = lwc_device_call(d, "GET", path, NULL, &answer);
    if (lrc != LW_OK) {
        rc = cli_fail(d, lrc);
        goto done;
    }
    json_t *list = json_object_get(answer, key);
    if (!json_is_array(list)) {
        cli_msg("linkward: the server's answer has no \"%s\" list\n", key);
        rc = CLI_IO;
        goto done;
    }
    size_t bad = records ? verify_list(d, list) : 0;
    if (o->json)
        cli_json_doc(list);
    else
        human(list, history);
    if (bad > 0) {
        warn_unsigned(list, history);
        rc = CLI_REFUSED;
    }
done:
    json_decref(answer);
    lwc_device_free(d);
    return rc;
}

static void print_alerts(json_t *list, bool unused)
{
    cli_print_alerts(list);
}

static int cmd_devices(cli_opts *o, int argc, char **argv)
{
    const char *pos[1];
    int npos, rc;
    if ((rc = parse_args(o, "devices", argc, argv, NULL, NULL, pos, 0, &npos)) != CLI_OK)
        return rc;
    return show_list(o, "/v1/devices", "devices", cli_print_devices, true, false);
}

typedef struct all_opt {
    bool all;
    bool follow;
    const char *alert; /* --alert ALERT_ID: the alert a logout or secure answers */
} all_opt;

static int flag_opt(void *ctx, int argc, char **argv, int *i)
{
    all_opt *a = ctx;
    int m;
    if ((m = cli_opt_value(argc, argv, i, "--alert", &a->alert)) != 0)
        return m;
    if (strcmp(argv[*i], "--all") == 0) {
        a->all = true;
        (*i)++;
        return 1;
    }
    if (strcmp(argv[*i], "--follow") == 0 || strcmp(argv[*i], "-f") == 0) {
        a->follow = true;
        (*i)++;
        return 1;
    }
    return 0;
}

/* Calls path with body (may be NULL; not stolen); prints the answer with
 * --json. *count (may be NULL) gets the answer's member count_key for the
 * caller's sentence. */
static int simple_call(cli_opts *o, const char *method, const char *path, json_t *body, const char *count_key,
                       long long *count)
{
    lwc_device *d = NULL;
    json_t *answer = NULL;
    int rc = open_phone(o, &d);
    if (rc != CLI_OK)
        return rc;
    int lrc = lwc_device_call(d, method, path, body, &answer);
    if (lrc != LW_OK) {
        rc = cli_fail(d, lrc);
        goto done;
    }
    if (o->json)
        cli_json_answer(answer);
    if (count != NULL)
        *count = (long long)json_integer_value(json_object_get(answer, count_key));
done:
    json_decref(answer);
    lwc_device_free(d);
    return rc;
}

static int cmd_history(cli_opts *o, int argc, char **argv)
{
    all_opt a = {0};
    const char *pos[2];
    int npos, rc;
    if ((rc = parse_args(o, "history", argc, argv, flag_opt, &a, pos, 2, &npos)) != CLI_OK)
        return rc;
    if (a.follow || a.alert)
        return cli_usage_error("phone", "history: unknown option %s", a.follow ? "--follow" : "--alert");
    if (npos == 0) {
        if (a.all)
            return cli_usage_error("phone", "history: --all goes with 'history delete'");
        return show_list(o, "/v1/history", "sessions", cli_print_devices, true, true);
    }
    if (strcmp(pos[0], "delete") != 0)
        return cli_usage_error("phone", "history: unknown sub-command '%s'", pos[0]);
    if ((npos == 2) == a.all)
        return cli_usage_error("phone", "history delete needs exactly one of DEVICE_ID or --all");
    char path[256];
    if (a.all) {
        (void)lw_strlcpy(path, "/v1/history", sizeof(path));
    } else {
        if (!cli_check_id("DEVICE_ID", pos[1]))
            return CLI_USAGE;
        int n = snprintf(path, sizeof(path), "/v1/history/%s", pos[1]);
        if (n < 0 || (size_t)n >= sizeof(path))
            return CLI_USAGE;
    }
    long long deleted = 0;
    if ((rc = simple_call(o, "DELETE", path, NULL, "deleted", &deleted)) == CLI_OK && !o->json)
        cli_msg("Deleted %lld ended session record%s.\n", deleted, deleted == 1 ? "" : "s");
    return rc;
}

static int cmd_alerts(cli_opts *o, int argc, char **argv)
{
    all_opt a = {0};
    const char *pos[1];
    int npos, rc;
    const char *apos[2];
    if ((rc = parse_args(o, "alerts", argc, argv, flag_opt, &a, apos, 2, &npos)) != CLI_OK)
        return rc;
    (void)pos;
    if (a.all || a.alert)
        return cli_usage_error("phone", "alerts: unknown option %s", a.all ? "--all" : "--alert");
    if (npos > 0) {
        /* "alerts ack ID": the holder answers "it was me". */
        if (npos != 2 || strcmp(apos[0], "ack") != 0 || a.follow)
            return cli_usage_error("phone", "alerts takes no argument, or: alerts ack ALERT_ID");
        if (!cli_check_id("ALERT_ID", apos[1]))
            return CLI_USAGE;
        char path[256];
        int n = snprintf(path, sizeof(path), "/v1/alerts/%s/ack", apos[1]);
        if (n < 0 || (size_t)n >= sizeof(path))
            return CLI_USAGE;
        if ((rc = simple_call(o, "POST", path, NULL, NULL, NULL)) == CLI_OK && !o->json)
            cli_msg("Marked alert %s as \"it was me\".\n", apos[1]);
        return rc;
    }
    if (!a.follow)
        return show_list(o, "/v1/alerts", "alerts", print_alerts, false, false);
    lwc_device *d = NULL;
    if ((rc = open_phone(o, &d)) != CLI_OK)
        return rc;
    if (!o->json)
        cli_msg("Following alerts and device events (Ctrl-C to stop)...\n");
    rc = cli_follow_events(d, o->json);
    lwc_device_free(d);
    return rc;
}

/* The body naming the alert a logout or "secure" answers, or NULL (none
 * given, or an id that cannot be one: then the usage error is printed). */
static json_t *alert_body(const char *alert)
{
    if (alert == NULL || !cli_check_id("--alert", alert))
        return NULL;
    return json_pack("{ss}", "alert_id", alert);
}

/* "Secure my account": every companion logged out, links refused until the PIN is changed. */
static int cmd_secure(cli_opts *o, int argc, char **argv)
{
    all_opt a = {0};
    const char *pos[1];
    int npos, rc;
    if ((rc = parse_args(o, "secure", argc, argv, flag_opt, &a, pos, 0, &npos)) != CLI_OK)
        return rc;
    if (a.all || a.follow)
        return cli_usage_error("phone", "secure takes only --alert ALERT_ID");
    json_t *body = alert_body(a.alert);
    if (a.alert && !body)
        return CLI_USAGE;
    long long ended = 0;
    if ((rc = simple_call(o, "POST", "/v1/account/secure", body, "ended", &ended)) == CLI_OK && !o->json)
        cli_msg(
            "Logged out %lld device%s. Change your PIN now (linkward phone pin change / pin set); no device "
            "can be linked until you do.\n",
            ended, ended == 1 ? "" : "s");
    json_decref(body);
    return rc;
}

static int cmd_logout(cli_opts *o, int argc, char **argv)
{
    all_opt a = {0};
    const char *pos[1];
    int npos, rc;
    if ((rc = parse_args(o, "logout", argc, argv, flag_opt, &a, pos, 1, &npos)) != CLI_OK)
        return rc;
    if (a.follow)
        return cli_usage_error("phone", "logout: unknown option --follow");
    if ((npos == 1) == a.all)
        return cli_usage_error("phone", "logout needs exactly one of DEVICE_ID or --all");
    if (a.all && a.alert)
        return cli_usage_error("phone",
                               "logout: --alert goes with DEVICE_ID (the device the alert is about)");
    long long ended = 0;
    if (a.all) {
        if ((rc = simple_call(o, "POST", "/v1/devices/logout-all", NULL, "ended", &ended)) == CLI_OK &&
            !o->json)
            cli_msg("Logged out %lld device%s.\n", ended, ended == 1 ? "" : "s");
        return rc;
    }
    if (!cli_check_id("DEVICE_ID", pos[0]))
        return CLI_USAGE;
    char path[256];
    int n = snprintf(path, sizeof(path), "/v1/devices/%s", pos[0]);
    if (n < 0 || (size_t)n >= sizeof(path))
        return CLI_USAGE;
    json_t *body = alert_body(a.alert);
    if (a.alert && !body)
        return CLI_USAGE;
    if ((rc = simple_call(o, "DELETE", path, body, NULL, NULL)) == CLI_OK && !o->json)
        cli_msg("Logged out device %s%s%s.\n", pos[0], a.alert ? ", answering alert " : "",
                a.alert ? a.alert : "");
    json_decref(body);
    return rc;
}

/* ---- PIN and settings ---- */

typedef struct pin_opts {
    const char *pin, *new_pin;
    bool logout_all; /* pin change --logout-all */
    bool yes;        /* delete-account --yes */
} pin_opts;

static int pin_opt(void *ctx, int argc, char **argv, int *i)
{
    pin_opts *p = ctx;
    int m;
    if (strcmp(argv[*i], "--logout-all") == 0 || strcmp(argv[*i], "--yes") == 0) {
        *(argv[*i][2] == 'y' ? &p->yes : &p->logout_all) = true;
        (*i)++;
        return 1;
    }
    if ((m = cli_opt_value(argc, argv, i, "--pin", &p->pin)) != 0)
        return m;
    return cli_opt_value(argc, argv, i, "--new-pin", &p->new_pin);
}

/* After a PIN change the server suggests logging out every other device
 * (ASVS 7.4.3): someone who knew the old PIN may have linked one. With
 * --logout-all it is done at once; otherwise the holder is told how. */
static int after_pin_change(lwc_device *d, const cli_opts *o, const pin_opts *p, json_t *answer)
{
    if (!json_is_true(json_object_get(answer, "suggest_logout_all")))
        return CLI_OK;
    if (!p->logout_all) {
        if (!o->json)
            cli_msg("If someone else may have known the old PIN, log out every other device: linkward phone "
                    "logout --all (or pin change ... --logout-all next time).\n");
        return CLI_OK;
    }
    json_t *out = NULL;
    int lrc = lwc_device_call(d, "POST", "/v1/devices/logout-all", NULL, &out);
    if (lrc != LW_OK) {
        json_decref(out);
        cli_msg("linkward: the PIN was changed, but logging out the other devices failed:\n");
        return cli_fail(d, lrc);
    }
    long long n = (long long)json_integer_value(json_object_get(out, "ended"));
    if (o->json)
        json_object_set(answer, "logged_out", json_object_get(out, "ended"));
    else
        cli_msg("Logged out %lld other device%s.\n", n, n == 1 ? "" : "s");
    json_decref(out);
    return CLI_OK;
}

static int cmd_pin(cli_opts *o, int argc, char **argv)
{
    pin_opts p = {0};
    const char *pos[1];
    int npos, rc;
    if ((rc = parse_args(o, "pin", argc, argv, pin_opt, &p, pos, 1, &npos)) != CLI_OK)
        return rc;
    if (npos != 1)
        return cli_usage_error("phone", "pin needs one of: set, change, disable");
    const char *sub = pos[0];
    json_t *body = NULL;
    const char *path = "/v1/pin", *done_msg = NULL;
    if (p.yes || (p.logout_all && strcmp(sub, "change") != 0))
        return cli_usage_error("phone", "pin: %s goes with %s", p.yes ? "--yes" : "--logout-all",
                               p.yes ? "delete-account" : "pin change");
    if (strcmp(sub, "set") == 0) {
        if (p.pin == NULL || p.new_pin != NULL)
            return cli_usage_error("phone", "pin set takes --pin PIN (the new PIN) only");
        if (!cli_check_pin("--pin", p.pin))
            return CLI_USAGE;
        body = json_pack("{ss}", "new_pin", p.pin);
        done_msg = "PIN set. It will be asked for whenever a device is linked.\n";
    } else if (strcmp(sub, "change") == 0) {
        if (p.pin == NULL || p.new_pin == NULL)
            return cli_usage_error("phone", "pin change needs --pin OLD and --new-pin NEW");
        if (!cli_check_pin("--pin", p.pin) || !cli_check_pin("--new-pin", p.new_pin))
            return CLI_USAGE;
        body = json_pack("{ss ss}", "new_pin", p.new_pin, "pin", p.pin);
        done_msg = "PIN changed.\n";
    } else if (strcmp(sub, "disable") == 0) {
        if (p.pin == NULL || p.new_pin != NULL)
            return cli_usage_error("phone", "pin disable needs --pin PIN (the current PIN) only");
        if (!cli_check_pin("--pin", p.pin))
            return CLI_USAGE;
        body = json_pack("{ss}", "pin", p.pin);
        path = "/v1/pin/disable";
        done_msg = "PIN disabled.\n";
    } else {
        return cli_usage_error("phone", "pin: unknown sub-command '%s' (set, change, disable)", sub);
    }
    if (body == NULL)
        return CLI_IO;
    lwc_device *d = NULL;
    json_t *answer = NULL;
    if ((rc = open_phone(o, &d)) != CLI_OK)
        goto done;
    int lrc = lwc_device_call(d, "POST", path, body, &answer);
    if (lrc != LW_OK) {
        rc = cli_fail(d, lrc);
        goto done;
    }
    if (!o->json)
        cli_msg("%s", done_msg);
    rc = after_pin_change(d, o, &p, answer);
    if (o->json)
        cli_json_answer(answer);
done:
    /* The PINs are no business of anyone after this: not of jansson's freed
     * memory, nor of /proc/PID/cmdline. */
    cli_json_wipe(body, "pin");
    cli_json_wipe(body, "new_pin");
    json_decref(body);
    cli_wipe_arg(p.pin);
    cli_wipe_arg(p.new_pin);
    json_decref(answer);
    lwc_device_free(d);
    return rc;
}

/* Deletes the account (DELETE /v1/account): every device is logged out and
 * everything the server keeps of the account is erased; the handle can then
 * be registered again. Asks for --yes, since nothing brings it back. */
static int cmd_delete_account(cli_opts *o, int argc, char **argv)
{
    pin_opts p = {0};
    const char *pos[1];
    int npos, rc;
    if ((rc = parse_args(o, "delete-account", argc, argv, pin_opt, &p, pos, 0, &npos)) != CLI_OK)
        return rc;
    if (p.new_pin != NULL || p.logout_all)
        return cli_usage_error("phone", "delete-account takes --yes and --pin PIN only");
    if (!p.yes)
        return cli_usage_error("phone",
                               "delete-account erases the account and logs out every device, for good: "
                               "add --yes to confirm");
    if (p.pin != NULL && !cli_check_pin("--pin", p.pin))
        return CLI_USAGE;
    json_t *body = p.pin ? json_pack("{ss}", "pin", p.pin) : json_object();
    lwc_device *d = NULL;
    json_t *answer = NULL;
    if (body == NULL)
        return CLI_IO;
    if ((rc = open_phone(o, &d)) != CLI_OK)
        goto done;
    char handle[64];
    const char *h = lwc_device_get(d, LWC_HANDLE);
    (void)lw_strlcpy(handle, h ? h : "", sizeof handle); /* a long one is cut: it is only shown */
    int lrc = lwc_device_call(d, "DELETE", "/v1/account", body, &answer);
    if (lrc != LW_OK) {
        rc = cli_fail(d, lrc);
        goto done;
    }
    /* This phone's key and credential belong to an account that is gone. */
    lwc_device_forget_session(d);
    if (lwc_device_save(d) != LW_OK)
        cli_msg("linkward: the account was deleted, but this phone's state file could not be cleared\n");
    if (o->json) {
        cli_json_answer(answer);
    } else {
        long long n = (long long)json_integer_value(json_object_get(answer, "ended"));
        cli_msg("Deleted the account %s; %lld device%s logged out. The handle can be registered again.\n",
                handle, n, n == 1 ? " was" : "s were");
    }
done:
    cli_json_wipe(body, "pin");
    json_decref(body);
    cli_wipe_arg(p.pin);
    json_decref(answer);
    lwc_device_free(d);
    return rc;
}

typedef struct settings_opts {
    const char *ttl;
} settings_opts;

static int settings_opt(void *ctx, int argc, char **argv, int *i)
{
    settings_opts *s = ctx;
    return cli_opt_value(argc, argv, i, "--inactive-ttl", &s->ttl);
}

static int cmd_settings(cli_opts *o, int argc, char **argv)
{
    settings_opts s = {0};
    const char *pos[1];
    int npos, rc;
    if ((rc = parse_args(o, "settings", argc, argv, settings_opt, &s, pos, 0, &npos)) != CLI_OK)
        return rc;
    json_t *body = NULL;
    if (s.ttl != NULL) {
        long days = 0;
        const char *p = s.ttl;
        /* Whole days; a trailing "d" is forgiven. */
        for (; *p >= '0' && *p <= '9' && days <= 1000; p++)
            days = days * 10 + (*p - '0');
        if (p == s.ttl || (*p != '\0' && strcmp(p, "d") != 0) || days < 7 || days > 365)
            return cli_usage_error("phone", "--inactive-ttl: a whole number of days from 7 to 365");
        if ((body = json_pack("{sI}", "inactive_ttl_days", (json_int_t)days)) == NULL)
            return CLI_IO;
    }
    lwc_device *d = NULL;
    json_t *answer = NULL;
    if ((rc = open_phone(o, &d)) != CLI_OK)
        goto done;
    int lrc = lwc_device_call(d, body ? "PATCH" : "GET", "/v1/settings", body, &answer);
    if (lrc != LW_OK) {
        rc = cli_fail(d, lrc);
        goto done;
    }
    if (o->json) {
        cli_json_answer(answer);
    } else {
        json_t *days = json_object_get(answer, "inactive_ttl_days");
        cli_out("Companions unused for %lld days are logged out.\n", (long long)json_integer_value(days));
    }
done:
    json_decref(body);
    json_decref(answer);
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
    if ((rc = open_phone(o, &d)) != CLI_OK)
        return rc;
    int lrc = lwc_device_call(d, "GET", "/v1/session", NULL, &answer);
    if (lrc != LW_OK) {
        rc = cli_fail(d, lrc);
        goto done;
    }
    if (o->json) {
        cli_json_doc(answer);
    } else {
        json_t *dev = json_object_get(answer, "device"), *acct = json_object_get(answer, "account");
        cli_out("Handle:   %s\nAccount:  %s\nDevice:   %s (%s, %s)\nServer:   %s\nPIN:      %s\n"
                "Companions unused for %lld days are logged out.\n",
                cli_str(acct, "handle"), cli_str(acct, "id"), cli_str(dev, "id"), cli_str(dev, "role"),
                cli_str(dev, "name"), lwc_device_get(d, LWC_SERVER),
                json_is_true(json_object_get(acct, "has_pin")) ? "set" : "not set",
                (long long)json_integer_value(json_object_get(acct, "inactive_ttl_days")));
    }
done:
    json_decref(answer);
    lwc_device_free(d);
    return rc;
}

static const cli_cmd phone_cmds[] = {
    {"register", cmd_register}, {"link", cmd_link},
    {"deny", cmd_deny},         {"devices", cmd_devices},
    {"history", cmd_history},   {"alerts", cmd_alerts},
    {"logout", cmd_logout},     {"pin", cmd_pin},
    {"secure", cmd_secure},     {"delete-account", cmd_delete_account},
    {"settings", cmd_settings}, {"whoami", cmd_whoami},
};

int cli_phone_main(int argc, char **argv)
{
    return cli_dispatch("phone", phone_usage, phone_cmds, sizeof(phone_cmds) / sizeof(phone_cmds[0]), argc,
                        argv);
}
