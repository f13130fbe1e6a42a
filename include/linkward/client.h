/*
 * linkward/client.h — the C client library for Linkward servers.
 *
 * What an integrator links to write a companion (a bot, a desktop app) or a
 * primary app, and what the `linkward phone` / `linkward companion` commands
 * are built on. Three layers:
 *
 *   lwc_client  one server: HTTP requests with JSON bodies (libcurl), the
 *               last error the server (or the transport) reported.
 *   lwc_ws      the server's WebSocket (/v1/ws): JSON events in, JSON out.
 *   lwc_device  a device: its state file (device key, pinned server key,
 *               session credential) plus the operations of the API with the
 *               signatures they need, and credential refresh done for you.
 *
 * This header is all an integrator needs (with jansson.h, which it includes):
 * build with `pkg-config --cflags --libs linkward-client`, see
 * docs/client-library.md. A companion, in short (checks of the results left
 * out; each call returns LWC_OK or a negative LWC_E* code):
 *
 *   lwc_init();                                       // once, at start
 *   lwc_device *d;                                    // state: key + session
 *   lwc_device_open("companion.json", "https://lw.example", &d);
 *   json_t *me = lwc_client_info("build bot");        // how the phone shows us
 *   lwc_link *l;
 *   lwc_link_create(d, me, true, &l);                 // POST /v1/link-requests
 *   json_decref(me);
 *   // show lwc_link_payload(l) as a QR code, or lwc_link_code(l) to type
 *   int err;
 *   lwc_ws *ws = lwc_link_ws_connect(d, l, &err);     // events of this request
 *   json_t *ev;                                       // wait for the phone
 *   while (lwc_ws_next(ws, &ev, 30000) == LWC_OK) {   // "link.ref" (new payload:
 *       const char *e = json_string_value(json_object_get(ev, "event"));
 *       bool ok = e && strcmp(e, "link.approved") == 0;  // lwc_link_set_payload),
 *       json_decref(ev);                              // "link.denied",
 *       if (ok) break;                                // "link.expired" end it
 *   }
 *   lwc_ws_close(ws);
 *   lwc_link_complete(d, l);                          // proves the key; saved
 *   lwc_link_free(l);
 *   const char *token;                                // bearer credential,
 *   lwc_device_token(d, 60, &token);                  // refreshed as needed
 *   json_t *me_now;                                   // or let the library
 *   lwc_device_call(d, "GET", "/v1/session", NULL, &me_now);  // sign requests
 *   json_decref(me_now);
 *   lwc_device_free(d);
 *
 * A primary registers with lwc_register(), then links a companion with
 * lwc_link_scan() (the companion's QR payload or pairing code) and
 * lwc_link_approve().
 *
 * Conventions: functions returning int return 0 (LWC_OK) or a negative
 * LWC_E* code, declared below (LWC_EIO = cannot reach or understand the
 * server; any other negative code = the server, or a local check, refused).
 * (The library's sources spell them LW_*, with the same values.) After a
 * failure, lwc_client_error() / lwc_device_error() tell what happened in words.
 * JSON values are jansson's json_t: "borrowed" ones stay owned by the
 * library object they came from; "new" ones are the caller's to json_decref.
 * Threads: call lwc_init() once before any other thread uses the library
 * (or any other function here). After that, different objects may be used
 * from different threads at the same time; one object (and what it hands
 * out: a device's client, a borrowed JSON value) only by one thread at a
 * time. The library installs no signal handlers and has no global state
 * beyond lwc_init's.
 * Secrets (device key, tokens, PINs) are wiped from memory when freed.
 */
#ifndef LINKWARD_CLIENT_H
#define LINKWARD_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Result codes and initialisation
 * ------------------------------------------------------------------------ */

/* What functions returning int return. The values are fixed (a program may
 * store or compare them); src/client/init.c asserts they equal the
 * library's internal codes. */
enum {
    LWC_OK = 0,
    LWC_EINVAL = -1,    /* malformed input (or an answer that is not JSON) */
    LWC_ENOMEM = -2,    /* out of memory */
    LWC_ENOTFOUND = -3, /* no such thing (request, device, ...) */
    LWC_ECONFLICT = -4, /* state does not allow it (already linked, already used) */
    LWC_ESTORE = -5,    /* (a server-side code; the library does not return it) */
    LWC_EEXPIRED = -6,  /* too late (request or credential expired), or a wait timed out */
    LWC_ELIMIT = -7,    /* a limit was reached (rate, device count, ...) */
    LWC_EDENIED = -8,   /* not allowed (denied, wrong PIN, not authenticated) */
    LWC_EIO = -9,       /* cannot reach or understand the server; file I/O */
    LWC_ECRYPTO = -10,  /* a signature or key check failed */
    LWC_ETOOBIG = -11,  /* larger than its bound */
    LWC_ELOCKED = -12,  /* temporarily locked out (PIN attempts); see retry_after */
};

/* Name of a result code in words ("denied"). Never NULL; static storage. */
const char *lwc_strerror(int err);

/* Initialises what the library depends on (libsodium, libcurl's global
 * state). Call it once at the start of the program, before other threads
 * run and before any other lwc_ function. Calling it again is harmless (it
 * does nothing once it has succeeded); concurrent calls are serialised.
 * LWC_OK, LWC_ECRYPTO if libsodium cannot start (no entropy source), LWC_EIO
 * if libcurl cannot. An application that also uses libcurl or libsodium
 * itself may initialise them before or after: both count or ignore
 * repeated initialisation. */
int lwc_init(void);
/* Releases libcurl's global state taken by lwc_init (call it last, when no
 * other thread uses the library; optional at exit). lwc_init may be called
 * again afterwards. */
void lwc_cleanup(void);

/* Bounds the library enforces on what it receives. */
#define LWC_RESPONSE_MAX (1024 * 1024) /* HTTP response body */
#define LWC_WS_MSG_MAX (1024 * 1024)   /* one WebSocket message */
#define LWC_WS_HANDSHAKE_MAX 8192      /* the WebSocket upgrade response */
#define LWC_STATE_MAX (64 * 1024)      /* a state file */
#define LWC_HEADERS_MAX 32             /* extra request headers */
#define LWC_URL_MAX 2048               /* server URL */

/* Timeouts (milliseconds). */
#define LWC_CONNECT_TIMEOUT_MS 5000
#define LWC_REQUEST_TIMEOUT_MS 30000

/* Binary sizes used by the signing helpers. */
#define LWC_SK_LEN 64      /* Ed25519 secret key, libsodium layout (seed || public key) */
#define LWC_PK_LEN 32      /* Ed25519 public key */
#define LWC_SIG_B64_LEN 87 /* base64url of a 64-byte signature, without NUL */

/* What went wrong with the last call. Strings are always NUL-terminated
 * (possibly empty); numbers are -1 when unknown. */
typedef struct lwc_error {
    long status;        /* HTTP status; 0 when no answer came (or a local check failed) */
    char code[64];      /* API error code ("wrong_pin"), or a local one ("unreachable",
                           "bad_response", "invalid_signature", "wrong_origin",
                           "fingerprint_mismatch", "no_session", "state") */
    char message[512];  /* sentence for people */
    char reason[32];    /* session end reason when code is "session_ended"/"token_theft" */
    long retry_after;   /* seconds from Retry-After (423, 429) */
    long attempts_left; /* from a wrong_pin error */
} lwc_error;

/* ------------------------------------------------------------------------
 * lwc_client — HTTP
 * ------------------------------------------------------------------------ */

typedef struct lwc_client lwc_client;

/* A client for the server at server_url ("http://host:port" or https, a path
 * prefix allowed). NULL if the URL is not http(s), too long, or memory runs out. */
lwc_client *lwc_client_new(const char *server_url);
/* Frees the client (NULL is fine); wipes its token. */
void lwc_client_free(lwc_client *c);
/* The base URL, without a trailing slash. Borrowed. */
const char *lwc_client_url(const lwc_client *c);
/* Adds "Name: value" to every request and to the WebSocket upgrade.
 * LWC_EINVAL if malformed (no colon, bad name, CR/LF), LWC_ELIMIT past LWC_HEADERS_MAX. */
int lwc_client_add_header(lwc_client *c, const char *header);
/* Sets the bearer credential sent with lwc_request (copied; NULL clears). */
int lwc_client_set_token(lwc_client *c, const char *token);
/* Performs one request. body (borrowed, may be NULL) is sent as JSON; POST
 * and PATCH without a body send "{}". On LWC_OK an answer came: *status is its
 * HTTP status and *response (new, NULL for an empty body) its JSON; a 4xx/5xx
 * answer also fills the client's error. LWC_EIO if the server cannot be
 * reached or the answer exceeds LWC_RESPONSE_MAX, LWC_EINVAL if it is not JSON. */
int lwc_request(lwc_client *c, const char *method, const char *path, json_t *body, long *status,
                json_t **response);
/* The last error of this client (never NULL; status 0 and empty strings if none). */
const lwc_error *lwc_client_error(const lwc_client *c);
/* Maps an HTTP status and API error code to an LW_E* code: LWC_OK for 2xx,
 * LWC_EIO for 5xx and unexpected statuses, else the code closest in meaning
 * (LWC_EDENIED, LWC_EEXPIRED, LWC_ELOCKED, LWC_ELIMIT, LWC_ENOTFOUND, ...). */
int lwc_status_to_err(long status, const char *code);

/* ------------------------------------------------------------------------
 * lwc_ws — the WebSocket
 * ------------------------------------------------------------------------ */

typedef struct lwc_ws lwc_ws;

/* Opens /v1/ws of c's server, authenticated with bearer_token (a session
 * credential, or a link token before linking), with c's extra headers.
 * Returns NULL and sets *err (may be NULL) on failure: LWC_EIO if the server
 * cannot be reached or does not speak WebSocket, or the code of the refusal
 * (LWC_EDENIED for 401, ...) with the server's error in lwc_client_error(c).
 * c must outlive the socket. */
lwc_ws *lwc_ws_connect(lwc_client *c, const char *bearer_token, int *err);
/* Waits for the next server event, at most timeout_ms (< 0: no limit).
 * LWC_OK with *event (new JSON object), LWC_EEXPIRED on timeout, LWC_EIO once the
 * socket is closed and every event received before has been returned. Pings
 * are answered while waiting. */
int lwc_ws_next(lwc_ws *ws, json_t **event, int timeout_ms);
/* Sends msg (borrowed) as one text frame. LWC_OK, or LWC_EIO if the socket is closed. */
int lwc_ws_send_json(lwc_ws *ws, json_t *msg);
/* The close code the server sent (4001 after session.ended), or 0. */
int lwc_ws_close_code(const lwc_ws *ws);
/* Closes the socket (politely if it is still open) and frees ws (NULL is fine). */
void lwc_ws_close(lwc_ws *ws);

/* ------------------------------------------------------------------------
 * Signing helpers: the exact messages of docs/api.md. Each writes the
 * base64url signature (LWC_SIG_B64_LEN + 1 bytes) into out. Binary inputs
 * are given in their base64url text form, as the API carries them.
 * LWC_EINVAL if one does not decode to 32 bytes.
 * ------------------------------------------------------------------------ */

/* "linkward-link-v1" \0 request_id \0 nonce */
int lwc_sign_link(const uint8_t sk[LWC_SK_LEN], const char *request_id, const char *nonce_b64,
                  char out[LWC_SIG_B64_LEN + 1]);
/* "linkward-refresh-v1" \0 device_id \0 challenge */
int lwc_sign_refresh(const uint8_t sk[LWC_SK_LEN], const char *device_id, const char *challenge_b64,
                     char out[LWC_SIG_B64_LEN + 1]);
/* "linkward-account-v1" \0 account_id \0 companion public key */
int lwc_sign_account(const uint8_t sk[LWC_SK_LEN], const char *account_id, const char *companion_pk_b64,
                     char out[LWC_SIG_B64_LEN + 1]);

/* Checks a companion's session record (an element of GET /v1/devices or
 * /v1/history, a session answer's or a device.linked event's "device")
 * against the primary whose device key is sk, in account account_id: its
 * "account_signature" must be sk's signature over "linkward-account-v1" \0
 * account_id \0 its "public_key" (what lwc_sign_account signed at approval),
 * and its "key_fingerprint" the fingerprint of that key. LWC_OK if both hold;
 * LWC_ECRYPTO if the signature or the fingerprint does not match; LWC_EINVAL if
 * a field is missing or malformed (a null signature included). Anything but
 * LWC_OK means this primary never approved the device the record describes. */
int lwc_verify_account(const uint8_t sk[LWC_SK_LEN], const char *account_id, json_t *record);

/* ------------------------------------------------------------------------
 * lwc_device — a device and its state file
 *
 * The state file is JSON, mode 0600, replaced atomically (temporary file in
 * the same folder, fsync, rename): server URL, server origin and pinned
 * server key, the device secret key, device id, account id, handle, the
 * session credential and the refresh challenge.
 * ------------------------------------------------------------------------ */

typedef struct lwc_device lwc_device;

typedef enum lwc_field {
    LWC_SERVER = 0, /* server URL saved in the state */
    LWC_ORIGIN,     /* server origin (pinned by a primary) */
    LWC_ROLE,       /* "primary" or "companion" */
    LWC_DEVICE_ID,
    LWC_ACCOUNT_ID,
    LWC_HANDLE,
    LWC_TOKEN,   /* the session credential: a secret */
    LWC_CA_FILE, /* a CA file to trust for the server (absolute path), given once (the CLI's --cacert) */
    LWC_FIELD_COUNT
} lwc_field;

/* Opens the device whose state lives at state_path. A missing file gives an
 * empty device (nothing is written until it is saved). server_url, when not
 * NULL, is used for this process instead of the URL saved in the state (the
 * state keeps its own). LWC_EINVAL if the file is not a valid state, LWC_ETOOBIG
 * past LWC_STATE_MAX, LWC_EIO if it cannot be read, LWC_ENOMEM. */
int lwc_device_open(const char *state_path, const char *server_url, lwc_device **out);
/* Frees the device (NULL is fine), wiping its key and credential. */
void lwc_device_free(lwc_device *d);
/* Writes the state file. LWC_OK or LWC_EIO. */
int lwc_device_save(lwc_device *d);
/* A warning about the state file (readable by group or others), or NULL. */
const char *lwc_device_warning(const lwc_device *d);
/* The client talking to this device's server, or NULL when no server URL is
 * known (neither given nor saved). Borrowed; add headers to it. */
lwc_client *lwc_device_client(lwc_device *d);
/* A field of the state, or NULL if unset. Borrowed until the next call that
 * changes the device. */
const char *lwc_device_get(const lwc_device *d, lwc_field f);
/* True if the device has a key, a device id and a credential. */
bool lwc_device_linked(const lwc_device *d);
/* Keeps a CA file (an absolute path, or NULL to forget it) in the state,
 * written at its next save; read it back with LWC_CA_FILE. LWC_EINVAL if
 * the path is not absolute. */
int lwc_device_set_ca_file(lwc_device *d, const char *path);
/* Forgets the session (device id, account, handle, credential, challenge);
 * keeps the key and the server. Does not save. */
void lwc_device_forget_session(lwc_device *d);
/* The last error of a device operation (never NULL). */
const lwc_error *lwc_device_error(const lwc_device *d);

/* Authenticated request with the device's credential. When the server says
 * the credential expired (401 credential_expired), refreshes it with the
 * device key, saves the state and retries once. LWC_OK only for a 2xx answer,
 * with *response (new, may be NULL; response may be NULL to discard);
 * otherwise the code of lwc_status_to_err (LWC_EIO: unreachable, not JSON, 5xx). */
int lwc_device_call(lwc_device *d, const char *method, const char *path, json_t *body, json_t **response);
/* Refreshes the credential now (POST /v1/session/refresh), saves the state.
 * Safe against other processes using the same state file (they are locked
 * out meanwhile, and a credential they refreshed is adopted instead). */
int lwc_device_refresh(lwc_device *d);
/* Makes sure the credential stays valid for at least min_seconds (refreshing
 * if needed) and returns it in *token (borrowed, a secret). */
int lwc_device_token(lwc_device *d, long min_seconds, const char **token);
/* Seconds the credential stays valid by the server's last word, or -1 if
 * unknown. */
long lwc_device_token_expires_in(const lwc_device *d);
/* Notes a proof.challenge event (challenge base64url) seen on the WebSocket,
 * so the next refresh signs the current challenge; saves the state. */
int lwc_device_note_challenge(lwc_device *d, const char *challenge_b64);
/* Opens the WebSocket with the device's credential, refreshing it first if
 * it expired. NULL and *err on failure (see lwc_ws_connect). */
lwc_ws *lwc_device_ws_connect(lwc_device *d, int *err);

/* A primary checks a record of its own account with its own key and account
 * id: a companion's with lwc_verify_account; a primary's must be this device
 * (its public_key this device's, its fingerprint that key's), else
 * LWC_ECRYPTO. LWC_EINVAL if the device has no key or account, or the record
 * is malformed. */
int lwc_device_verify_record(const lwc_device *d, json_t *record);

/* Whether the server is still the one this registered device knows, for a
 * refusal that may mean it was reset (a QR code that does not verify, a
 * credential not known): GET /v1/server, then GET /v1/session; nothing is
 * changed. LWC_OK if it is; LWC_ECRYPTO (code "server_key_changed") if its
 * key is not the pinned one; LWC_ENOTFOUND (code "device_unknown") if it
 * does not know this device's credential (its database was reset);
 * LWC_EIO if it cannot be asked; LWC_EINVAL if the device has no pinned key. */
int lwc_device_check_server(lwc_device *d);

/* A description of this program for register and link requests (new JSON
 * object): {"name" (if not NULL), "browser":"Linkward CLI", "browser_version",
 * "os", "os_version", "device_model"} from uname(2). NULL if out of memory. */
json_t *lwc_client_info(const char *name);

/* Primary: creates the account (POST /v1/accounts) with the device key
 * (created if the device has none), pins the server key and origin from the
 * answer and saves the state. invite and client (borrowed) may be NULL.
 * LWC_ECONFLICT (code "state") if the state already holds a device.
 * *response (new, may be NULL to discard) is the server's answer without the
 * credential. */
int lwc_register(lwc_device *d, const char *handle, const char *invite, json_t *client, json_t **response);

/* ---- The primary's side of linking ---- */

typedef struct lwc_scan lwc_scan;

/* Checks a scanned QR payload before anything is sent: it must parse, carry a
 * signature by the pinned server key (LWC_ECRYPTO, code "invalid_signature")
 * and name the pinned origin (LWC_EDENIED, code "wrong_origin"); LWC_EINVAL
 * ("invalid_payload") if malformed. */
int lwc_payload_check(lwc_device *d, const char *payload);
/* Scans a link request (POST /v1/link-requests/scan) by payload or by typed
 * pairing code (exactly one non-NULL; the code is normalised). The payload in
 * the server's answer is checked as above, and its key fingerprint must match
 * the requester's public key (LWC_ECRYPTO, "fingerprint_mismatch"). *out is
 * freed with lwc_scan_free. */
int lwc_link_scan(lwc_device *d, const char *payload, const char *code, lwc_scan **out);
/* The request id, the "request" and "risk" objects of the scan (borrowed). */
const char *lwc_scan_id(const lwc_scan *s);
json_t *lwc_scan_request(const lwc_scan *s);
json_t *lwc_scan_risk(const lwc_scan *s);
/* True when the server's link policy refuses this request outright (the
 * scan's "blocked"): no approval, with or without accepting the risk, can
 * link it. */
bool lwc_scan_blocked(const lwc_scan *s);
/* The requester's key fingerprint in human form ("a1b2 c3d4 ..."). */
const char *lwc_scan_fingerprint(const lwc_scan *s);
void lwc_scan_free(lwc_scan *s);
/* Approves with the account signature over the requester's key; pin may be
 * NULL. Errors carry attempts_left (wrong_pin) and retry_after (pin_locked). */
int lwc_link_approve(lwc_device *d, const lwc_scan *s, const char *pin, bool accept_risk);
/* Denies the request. */
int lwc_link_deny(lwc_device *d, const lwc_scan *s);

/* ---- The companion's side of linking ---- */

typedef struct lwc_link lwc_link;

/* Opens a link request (POST /v1/link-requests) with the device key (created
 * if the device has none), describing this client as `client` (borrowed JSON
 * object of name/browser/os/... strings, may be NULL). persistent asks for a
 * session that survives restarts. *out is freed with lwc_link_free. */
int lwc_link_create(lwc_device *d, json_t *client, bool persistent, lwc_link **out);
void lwc_link_free(lwc_link *l);
const char *lwc_link_id(const lwc_link *l);
/* The current QR payload (changes with lwc_link_set_payload) and pairing code. */
const char *lwc_link_payload(const lwc_link *l);
const char *lwc_link_code(const lwc_link *l);
/* Seconds left before the request expires, from the server's last word. */
long lwc_link_expires_in(const lwc_link *l);
/* Records a rotated payload (from a link.ref event or a poll). */
int lwc_link_set_payload(lwc_link *l, const char *payload);
/* The WebSocket authenticated with the link token. */
lwc_ws *lwc_link_ws_connect(lwc_device *d, lwc_link *l, int *err);
/* GET /v1/link-requests/{id}: *response (new) holds state, payload, ... */
int lwc_link_poll(lwc_device *d, lwc_link *l, json_t **response);
/* After approval: proves possession of the key over the server nonce
 * (POST .../complete), stores the session in the device and saves it. */
int lwc_link_complete(lwc_device *d, lwc_link *l);

#ifdef __cplusplus
}
#endif

#endif
