/*
 * fuzz_json_routes.c — the input is a JSON body; the harness sends it to
 * every route that takes one, each on its own connection, as a well-formed
 * request with the right credential (lwfuzz.h's fixture):
 *
 *   the primary (@P@) scans, approves (@R@), sets and disables PINs, renames
 *   the companion (@D@) and changes settings; the link token (@L@) completes
 *   @R@; the spare primary (@V@) refreshes, logs out all and secures, so
 *   that the sessions those routes end are the cheap ones to rebuild.
 *
 * Placeholders in the body are replaced too: {"account_signature":"@G@"}
 * approves @R@, and the following complete with {"signature":"@N@"} links it,
 * so the handlers' success paths are in reach. Deny and alert-ack take a body
 * but read nothing from it; fuzz_http covers them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "lwfuzz.h"

static const struct {
    const char *method, *path, *token;
} routes[] = {
    {"POST", "/v1/accounts", NULL},
    {"POST", "/v1/link-requests", NULL},
    {"POST", "/v1/link-requests/scan", "@P@"},
    {"POST", "/v1/link-requests/@R@/approve", "@P@"},
    {"POST", "/v1/link-requests/@R@/complete", "@L@"},
    {"PATCH", "/v1/settings", "@P@"},
    {"PATCH", "/v1/devices/@D@", "@P@"},
    {"POST", "/v1/pin", "@P@"},
    {"POST", "/v1/pin/disable", "@P@"},
    {"POST", "/v1/devices/logout-all", "@V@"},
    {"POST", "/v1/account/secure", "@V@"},
    /* Last: without a valid signature it ends @V@'s session (token theft). */
    {"POST", "/v1/session/refresh", "@V@"},
};

static const char internal_error[] = "\"code\":\"internal\"";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    lwf_server_init();
    lwf_fixture();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024) /* past h2o's entity limit nothing reaches a route */
        return 0;
    lwf_fixture();
    lw_buf body, head, msg, resp;
    lw_buf_init(&body, 2 * LWF_INPUT_MAX);
    lw_buf_init(&head, 4096);
    lw_buf_init(&msg, 2 * LWF_INPUT_MAX + 4096);
    lw_buf_init(&resp, LWF_RESPONSE_MAX);
    if (lwf_expand(data, size, &body) != LW_OK)
        goto out;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        lw_buf_reset(&head);
        lw_buf_appendf(&head, "%s %s HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n", routes[i].method,
                       routes[i].path);
        if (routes[i].token)
            lw_buf_appendf(&head, "Authorization: Bearer %s\r\n", routes[i].token);
        lw_buf_appendf(&head, "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n", body.len);
        /* Header and body in one write, as a client sends them. */
        if (lwf_expand((const uint8_t *)head.data, head.len, &msg) != LW_OK ||
            lw_buf_append(&msg, body.data, body.len) != LW_OK)
            break;
        lwf_exchange(msg.data, msg.len, &resp);
        if (memmem(resp.data, resp.len, internal_error, sizeof internal_error - 1)) {
            fprintf(stderr, "fuzz_json_routes: %s %s answered 500 internal:\n%.*s\n", routes[i].method,
                    routes[i].path, (int)resp.len, resp.data);
            abort();
        }
    }
out:
    lw_buf_free(&body);
    lw_buf_free(&head);
    lw_buf_free(&msg);
    lw_buf_free(&resp);
    return 0;
}
