/*
 * client_int.h — what the client library's files share and the public
 * header does not show.
 */
#ifndef LWC_CLIENT_INT_H
#define LWC_CLIENT_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "linkward/client.h"
#include "crypto.h"
#include "lw.h"

/* Request bodies we build stay small; the server refuses more than 16 KiB. */
#define LWC_BODY_MAX (64 * 1024)

/* Sets err: code and printf-style message; status/reason/retry/attempts reset. */
void lwc_err_set(lwc_error *err, long status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void lwc_err_clear(lwc_error *err);
/* Fills err from an API error answer ({"error":{...}}) of the given status. */
void lwc_err_from_json(lwc_error *err, long status, json_t *answer);
/* Mutable access to a client's error, for the other files of the library. */
lwc_error *lwc_client_err(lwc_client *c);

/* lwc_request with an explicit bearer credential instead of the client's own
 * (NULL: no Authorization at all), for link tokens, refreshes with an expired
 * credential, and unauthenticated routes. */
int lwc_request_bearer(lwc_client *c, const char *method, const char *path, const char *bearer, json_t *body,
                       long *status, json_t **response);
/* The User-Agent and extra headers, for the WebSocket upgrade. */
const char *lwc_client_user_agent(const lwc_client *c);
size_t lwc_client_header_count(const lwc_client *c);
const char *lwc_client_header(const lwc_client *c, size_t i);

/* A path segment we put into a URL must be base64url text of bounded length,
 * so server-provided or typed ids cannot steer requests elsewhere. */
bool lwc_id_ok(const char *id);

/* The device key of d (LWC_SK_LEN bytes), or NULL if it has none. */
const uint8_t *lwc_device_sk(const lwc_device *d);
/* Creates a device key if d has none. */
int lwc_device_ensure_key(lwc_device *d);
/* Setters used by register and link completion. value NULL unsets. */
int lwc_device_set(lwc_device *d, lwc_field f, const char *value);
int lwc_device_set_session(lwc_device *d, const char *token, const char *challenge, long expires_in);
int lwc_device_pin_server(lwc_device *d, const char *origin, const char *server_key_b64);
/* Copies c's error into d's, so lwc_device_error reports it. */
void lwc_device_take_error(lwc_device *d, const lwc_client *c);
lwc_error *lwc_device_err(lwc_device *d);
/* Checks the payload text against the pinned key and origin; on LW_OK fills
 * fp with the fingerprint it carries. */
int lwc_device_check_payload(lwc_device *d, const char *payload, uint8_t fp[LW_FP_LEN]);

/* An object's string member, or "" if absent or not a string. */
const char *lwc_json_str(json_t *obj, const char *key);
/* Zeroes a string member in place before the value is freed: jansson's free
 * does not, and answers and state files carry credentials, keys and PINs. */
void lwc_json_wipe(json_t *obj, const char *key);
/* The pinned server key: LW_OK, or LW_ENOTFOUND if none was pinned. */
int lwc_device_server_key(const lwc_device *d, uint8_t key[LW_PK_LEN]);

/* Applies the TLS trust settings (LINKWARD_CA_FILE) to a curl handle. */
void lwc_curl_tls(void *curl);

#endif
