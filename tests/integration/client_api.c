/*
 * client_api.c — an integrator's program, built by client_api.test.js from
 * the installed public header and library only (pkg-config linkward-client,
 * -std=c11 -Wall -Wextra -Werror): nothing of src/ is visible to it.
 *
 * Usage: client_api SERVER_URL DIR
 * Registers a primary (DIR/primary.json), links a companion
 * (DIR/companion.json) by its QR payload, waits for the approval on the
 * WebSocket, completes the link and uses the companion's credential. Prints
 * one JSON line {"device_id","token","primary_token","account_id"} and exits
 * 0, or says on stderr what failed and exits 1.
 */
#include <linkward/client.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int fail(const char *what, int rc, const lwc_error *e)
{
    fprintf(stderr, "client_api: %s: %d (%s)", what, rc, lwc_strerror(rc));
    if (e != NULL)
        fprintf(stderr, " status %ld code \"%s\": %s", e->status, e->code, e->message);
    fputc('\n', stderr);
    return 1;
}

static const char *event_name(json_t *ev)
{
    const char *s = json_string_value(json_object_get(ev, "event"));
    return s != NULL ? s : "";
}

/* Waits for link.approved on the link's WebSocket (at most 30 s), following
 * rotated payloads as a real companion would. */
static int wait_approved(lwc_link *l, lwc_ws *ws)
{
    time_t end = time(NULL) + 30;
    while (time(NULL) < end) {
        json_t *ev = NULL;
        int rc = lwc_ws_next(ws, &ev, 1000);
        if (rc == LWC_EEXPIRED)
            continue; /* nothing within a second */
        if (rc != LWC_OK)
            return rc;
        const char *name = event_name(ev);
        const char *payload = json_string_value(json_object_get(ev, "payload"));
        if (strcmp(name, "link.ref") == 0 && payload != NULL)
            rc = lwc_link_set_payload(l, payload);
        else if (strcmp(name, "link.denied") == 0)
            rc = LWC_EDENIED;
        else if (strcmp(name, "link.expired") == 0)
            rc = LWC_EEXPIRED;
        else if (strcmp(name, "link.approved") == 0)
            rc = 1;
        json_decref(ev);
        if (rc != LWC_OK)
            return rc == 1 ? LWC_OK : rc;
    }
    return LWC_EEXPIRED;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fputs("usage: client_api SERVER_URL DIR\n", stderr);
        return 2;
    }
    const char *url = argv[1];
    char ppath[1024], cpath[1024];
    if (snprintf(ppath, sizeof ppath, "%s/primary.json", argv[2]) >= (int)sizeof ppath ||
        snprintf(cpath, sizeof cpath, "%s/companion.json", argv[2]) >= (int)sizeof cpath)
        return fail("DIR too long", LWC_ETOOBIG, NULL);

    /* Twice: idempotent. */
    int rc = lwc_init();
    if (rc != LWC_OK || (rc = lwc_init()) != LWC_OK)
        return fail("lwc_init", rc, NULL);

    lwc_device *primary = NULL, *companion = NULL;
    lwc_link *link = NULL;
    lwc_scan *scan = NULL;
    lwc_ws *ws = NULL;
    json_t *info = NULL, *session = NULL, *out = NULL;
    int status = 1;

    /* The primary app: a new account. */
    if ((rc = lwc_device_open(ppath, url, &primary)) != LWC_OK) {
        fail("lwc_device_open primary", rc, NULL);
        goto done;
    }
    info = lwc_client_info("integrator primary");
    if ((rc = lwc_register(primary, "integrator", NULL, info, NULL)) != LWC_OK) {
        fail("lwc_register", rc, lwc_device_error(primary));
        goto done;
    }
    json_decref(info);
    info = NULL;

    /* A malformed payload is refused before anything is sent, with a
     * public code and words. */
    rc = lwc_link_scan(primary, "lw1:not-a-payload", NULL, &scan);
    if (rc != LWC_EINVAL || strcmp(lwc_device_error(primary)->code, "invalid_payload") != 0) {
        fail("lwc_link_scan of garbage should be LWC_EINVAL invalid_payload", rc, lwc_device_error(primary));
        goto done;
    }

    /* The companion: a link request, and its WebSocket. */
    if ((rc = lwc_device_open(cpath, url, &companion)) != LWC_OK) {
        fail("lwc_device_open companion", rc, NULL);
        goto done;
    }
    info = lwc_client_info("integrator companion");
    if ((rc = lwc_link_create(companion, info, true, &link)) != LWC_OK) {
        fail("lwc_link_create", rc, lwc_device_error(companion));
        goto done;
    }
    int err = LWC_OK;
    if ((ws = lwc_link_ws_connect(companion, link, &err)) == NULL) {
        fail("lwc_link_ws_connect", err, lwc_client_error(lwc_device_client(companion)));
        goto done;
    }

    /* The primary "scans" the QR payload and approves. */
    if ((rc = lwc_link_scan(primary, lwc_link_payload(link), NULL, &scan)) != LWC_OK) {
        fail("lwc_link_scan", rc, lwc_device_error(primary));
        goto done;
    }
    if (lwc_scan_blocked(scan)) {
        fail("lwc_scan_blocked", LWC_EDENIED, NULL);
        goto done;
    }
    const char *level = json_string_value(json_object_get(lwc_scan_risk(scan), "level"));
    bool risky = level != NULL && strcmp(level, "high") == 0;
    if ((rc = lwc_link_approve(primary, scan, NULL, risky)) != LWC_OK) {
        fail("lwc_link_approve", rc, lwc_device_error(primary));
        goto done;
    }

    /* The companion sees the approval, completes, and uses its session. */
    if ((rc = wait_approved(link, ws)) != LWC_OK) {
        fail("waiting for link.approved", rc, NULL);
        goto done;
    }
    if ((rc = lwc_link_complete(companion, link)) != LWC_OK || !lwc_device_linked(companion)) {
        fail("lwc_link_complete", rc, lwc_device_error(companion));
        goto done;
    }
    if ((rc = lwc_device_call(companion, "GET", "/v1/session", NULL, &session)) != LWC_OK) {
        fail("lwc_device_call GET /v1/session", rc, lwc_device_error(companion));
        goto done;
    }
    const char *token = NULL, *ptoken = NULL;
    if ((rc = lwc_device_token(companion, 60, &token)) != LWC_OK ||
        (rc = lwc_device_token(primary, 60, &ptoken)) != LWC_OK) {
        fail("lwc_device_token", rc, lwc_device_error(companion));
        goto done;
    }
    const char *device_id = lwc_device_get(companion, LWC_DEVICE_ID);
    const char *seen = json_string_value(json_object_get(json_object_get(session, "device"), "id"));
    if (device_id == NULL || seen == NULL || strcmp(device_id, seen) != 0) {
        fail("GET /v1/session names another device", LWC_EINVAL, NULL);
        goto done;
    }
    out = json_pack("{ss ss ss ss}", "device_id", device_id, "token", token, "primary_token", ptoken,
                    "account_id", lwc_device_get(companion, LWC_ACCOUNT_ID));
    char *line = out ? json_dumps(out, JSON_COMPACT) : NULL;
    if (line == NULL) {
        fail("json", LWC_ENOMEM, NULL);
        goto done;
    }
    printf("%s\n", line);
    free(line);
    status = 0;
done:
    json_decref(out);
    json_decref(session);
    json_decref(info);
    lwc_scan_free(scan);
    lwc_ws_close(ws);
    lwc_link_free(link);
    lwc_device_free(companion);
    lwc_device_free(primary);
    lwc_cleanup();
    return status;
}
