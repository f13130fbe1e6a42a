/*
 * fuzz_http.c — the request handler entry: the input is the raw bytes a
 * client sends on one connection to the real server (in-process, lwfuzz.h).
 *
 * Reaches h2o's HTTP/1.1 parser, the router (method, path, limits, origin
 * checks, credentials from Authorization and from cookies), body parsing and
 * every handler. Placeholders (@P@, @Q@, …, lwfuzz.h) stand for the fixture's
 * tokens and ids, so authenticated routes get past authentication. Several
 * requests in one input are pipelined on the connection.
 *
 * Beyond the sanitizers, one oracle: no input may make a handler answer
 * 500 "internal", which is how store failures and broken invariants surface.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "lwfuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    lwf_server_init();
    lwf_fixture();
    return 0;
}

/* An escaped quote cannot close a JSON string, so this cannot be input echoed in an error message. */
static const char internal_error[] = "\"code\":\"internal\"";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > LWF_INPUT_MAX)
        return 0;
    lwf_fixture();
    lw_buf req, resp;
    lw_buf_init(&req, 2 * LWF_INPUT_MAX);
    lw_buf_init(&resp, LWF_RESPONSE_MAX);
    if (lwf_expand(data, size, &req) == LW_OK) {
        lwf_exchange(req.data, req.len, &resp);
        if (memmem(resp.data, resp.len, internal_error, sizeof internal_error - 1)) {
            fprintf(stderr, "fuzz_http: the server answered 500 internal:\n%.*s\n", (int)resp.len, resp.data);
            abort();
        }
    }
    lw_buf_free(&req);
    lw_buf_free(&resp);
    return 0;
}
