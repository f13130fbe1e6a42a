/*
 * lwfuzz.h — the real server, in-process, for the harnesses that speak HTTP
 * to it (fuzz_http, fuzz_json_routes, fuzz_ws), and the fixture they aim at.
 *
 * The server is started once (lw_app_start without a listener, data in a
 * temporary directory removed at exit). Every exchange is one fresh
 * connection: a socketpair whose server end goes to lw_http_accept_fd, the
 * bytes written to the other end, the write side shut, the loop run until the
 * server closes (or a bounded budget is spent).
 *
 * Tokens, ids and signatures are random per run, so inputs name them by
 * placeholders that lwf_expand replaces with the current fixture's values:
 *
 *   @P@  primary's session token (lws_…)     @C@  companion's session token
 *   @D@  companion's device id               @V@  a spare primary's token
 *   @F@  a valid refresh signature for @V@   @R@  id of a request scanned by @P@
 *   @L@  link token (lwl_…) of @R@           @G@  @P@'s account signature approving @R@
 *   @N@  @R@'s completion signature          @I@  id of a pending request
 *   @M@  link token of @I@                   @Q@  QR payload of @I@ (lw1:…)
 *   @K@  pairing code of @I@
 *
 * Each expands to a value of fixed length (tokens 70 bytes, ids 22,
 * signatures 86, the code 9, the payload 186 with the harness's origin), so
 * a seed's Content-Length can count the expanded body.
 *
 * So a seed like "POST /v1/link-requests/@R@/approve" + "Authorization:
 * Bearer @P@" + {"account_signature":"@G@"} reaches the handler's success
 * path in every run, and a crash input replays on its own.
 *
 * Before each input lwf_fixture() checks that what the previous input may
 * have changed (PIN set, sessions ended, requests approved, …) is still as
 * built, and rebuilds the parts that are not: every input starts from the
 * same state, which keeps runs deterministic where the server allows it.
 */
#ifndef LWFUZZ_H
#define LWFUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "app.h"
#include "lw.h"

/* Largest input the server harnesses pass on (h2o refuses bodies past 64 KiB anyway). */
#define LWF_INPUT_MAX (256 * 1024)
/* Largest response kept by lwf_exchange (the rest is read and dropped). */
#define LWF_RESPONSE_MAX (256 * 1024)

/* Starts the server once; aborts the process if it cannot (a harness without
 * its server would only report false negatives). Safe to call repeatedly. */
void lwf_server_init(void);
lw_app *lwf_app(void);

/* Makes sure the fixture is intact, rebuilding what is not. Aborts if it
 * cannot be built (the server refuses its own happy path: a real bug). */
void lwf_fixture(void);

/* Replaces the placeholders above in in[0..len) into out (reset first).
 * LW_ETOOBIG when the result does not fit out's maximum. */
int lwf_expand(const uint8_t *in, size_t len, lw_buf *out);

/* One connection: writes req, shuts the write side, runs the loop until the
 * server closes or the budget is spent, and collects up to LWF_RESPONSE_MAX
 * bytes of the answer into resp (when not NULL). Returns true when the server
 * closed the connection within the budget. */
bool lwf_exchange(const void *req, size_t len, lw_buf *resp);

/* The status code of the first response in resp, or 0. */
int lwf_status(const lw_buf *resp);

#endif
