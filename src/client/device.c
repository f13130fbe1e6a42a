/*
 * device.c — lwc_device: a device's state file, its credential and the
 * refresh that keeps the credential alive.
 *
 * The state file is the device's identity: whoever reads it can act as the
 * device, so it is created 0600 and replaced atomically (a crash leaves the
 * old or the new file, never half of one). Several processes may share it
 * (`companion watch` running while `companion token` is called): a refresh
 * consumes the server's challenge, and signing a consumed challenge would
 * end the session as a theft, so refreshes take a lock on the state's
 * folder and first adopt whatever another process saved meanwhile.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <sodium.h>

#include "client_int.h"

#ifndef LINKWARD_VERSION
#define LINKWARD_VERSION "0"
#endif

#define STATE_FIELD_MAX 4096
/* Refresh a little before the server would refuse, so a request sent just
 * before expiry does not fail on the way. */
#define REFRESH_MARGIN_MS 5000

static const char *const field_names[LWC_FIELD_COUNT] = {
    [LWC_SERVER] = "server",       [LWC_ORIGIN] = "origin",         [LWC_ROLE] = "role",
    [LWC_DEVICE_ID] = "device_id", [LWC_ACCOUNT_ID] = "account_id", [LWC_HANDLE] = "handle",
    [LWC_TOKEN] = "token",         [LWC_CA_FILE] = "ca_file",
};

/* What the state file holds. */
typedef struct state {
    char *fields[LWC_FIELD_COUNT];
    char *challenge;
    int64_t token_expires_at; /* ms since the epoch; 0 if unknown */
    uint8_t server_key[LW_PK_LEN];
    bool has_server_key;
    uint8_t sk[LW_SK_LEN];
    bool has_key;
} state;

struct lwc_device {
    char *path;
    state st;
    lwc_client *client;
    lwc_error err;
    char warning[PATH_MAX + 128];
};

static void free_str(char **p, bool secret)
{
    if (*p != NULL) {
        if (secret)
            lw_wipe(*p, strlen(*p));
        lw_free(*p);
        *p = NULL;
    }
}

static void state_clear(state *st)
{
    for (int i = 0; i < LWC_FIELD_COUNT; i++)
        free_str(&st->fields[i], i == LWC_TOKEN);
    free_str(&st->challenge, false);
    lw_wipe(st, sizeof(*st));
}

/* Replaces a string; value NULL unsets it. */
static int set_str(char **dst, const char *value, bool secret)
{
    char *copy = NULL;
    if (value != NULL && (copy = lw_strdup(value)) == NULL)
        return LW_ENOMEM;
    free_str(dst, secret);
    *dst = copy;
    return LW_OK;
}

void lwc_json_wipe(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_string(v))
        lw_wipe((char *)json_string_value(v), json_string_length(v));
}

static int decode_fixed(const char *text, uint8_t *dst, size_t n)
{
    long got = lw_b64_decode(dst, n, text, strlen(text), n);
    return got == (long)n ? LW_OK : LW_EINVAL;
}

/* Parses state JSON into st. LW_EINVAL (with why in err) if malformed. */
static int state_from_json(state *st, json_t *j, lwc_error *err, const char *path)
{
    if (!json_is_object(j)) {
        lwc_err_set(err, 0, "state", "%s is not a Linkward state file", path);
        return LW_EINVAL;
    }
    for (int i = 0; i < LWC_FIELD_COUNT; i++) {
        json_t *v = json_object_get(j, field_names[i]);
        if (v == NULL || json_is_null(v))
            continue;
        if (!json_is_string(v) || json_string_length(v) > STATE_FIELD_MAX ||
            strlen(json_string_value(v)) != json_string_length(v)) {
            lwc_err_set(err, 0, "state", "%s: \"%s\" is not valid", path, field_names[i]);
            return LW_EINVAL;
        }
        if (set_str(&st->fields[i], json_string_value(v), i == LWC_TOKEN) != LW_OK)
            return LW_ENOMEM;
    }
    const char *ch = json_string_value(json_object_get(j, "challenge"));
    if (ch != NULL && set_str(&st->challenge, ch, false) != LW_OK)
        return LW_ENOMEM;
    json_t *exp = json_object_get(j, "token_expires_at");
    if (json_is_integer(exp))
        st->token_expires_at = (int64_t)json_integer_value(exp);
    const char *sk = json_string_value(json_object_get(j, "server_key"));
    if (sk != NULL) {
        if (decode_fixed(sk, st->server_key, LW_PK_LEN) != LW_OK) {
            lwc_err_set(err, 0, "state", "%s: \"server_key\" is not valid", path);
            return LW_EINVAL;
        }
        st->has_server_key = true;
    }
    const char *dk = json_string_value(json_object_get(j, "device_secret_key"));
    if (dk != NULL) {
        /* Check the key is whole: the public half must follow from the seed. */
        uint8_t pk[LW_PK_LEN], sk2[LW_SK_LEN];
        int bad = decode_fixed(dk, st->sk, LW_SK_LEN) != LW_OK ||
                  crypto_sign_seed_keypair(pk, sk2, st->sk) != 0 || !lw_ct_equal(pk, st->sk + 32, LW_PK_LEN);
        lw_wipe(sk2, sizeof(sk2));
        if (bad) {
            lw_wipe(st->sk, sizeof(st->sk));
            lwc_err_set(err, 0, "state", "%s: \"device_secret_key\" is not valid", path);
            return LW_EINVAL;
        }
        st->has_key = true;
    }
    return LW_OK;
}

/* Reads the state file. LW_ENOTFOUND if it does not exist. */
static int state_read(const char *path, state *st, lwc_error *err, char *warning, size_t wcap)
{
    int rc = LW_EIO;
    lw_buf text;
    lw_buf_init(&text, LWC_STATE_MAX);
    json_t *j = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        if (errno == ENOENT)
            return LW_ENOTFOUND;
        lwc_err_set(err, 0, "state", "cannot open %s: %s", path, strerror(errno));
        return LW_EIO;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        lwc_err_set(err, 0, "state", "%s is not a regular file", path);
        goto fail;
    }
    if ((sb.st_mode & 077) != 0 && warning != NULL) {
        int n = snprintf(warning, wcap,
                         "%s is readable by other users (mode %03o); it holds this device's "
                         "key: chmod 600 it",
                         path, (unsigned)(sb.st_mode & 0777));
        if (n < 0 || (size_t)n >= wcap)
            (void)lw_strlcpy(warning, "the state file is readable by other users", wcap);
    }
    char chunk[4096];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            lwc_err_set(err, 0, "state", "cannot read %s: %s", path, strerror(errno));
            goto fail;
        }
        if (n == 0)
            break;
        if (lw_buf_append(&text, chunk, (size_t)n) != LW_OK) {
            rc = LW_ETOOBIG;
            lwc_err_set(err, 0, "state", "%s is larger than %d bytes", path, LWC_STATE_MAX);
            goto fail;
        }
    }
    json_error_t jerr;
    j = json_loadb(text.data, text.len, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL) {
        rc = LW_EINVAL;
        lwc_err_set(err, 0, "state", "%s is not valid JSON (line %d)", path, jerr.line);
        goto fail;
    }
    rc = state_from_json(st, j, err, path);
fail:
    lw_wipe(chunk, sizeof(chunk));
    if (j != NULL) {
        lwc_json_wipe(j, "device_secret_key");
        lwc_json_wipe(j, "token");
        json_decref(j);
    }
    lw_buf_free(&text);
    close(fd);
    return rc;
}

/* Creates the missing folders above path, 0700 (they hold device keys). */
static int make_parents(const char *path)
{
    char dir[PATH_MAX];
    if (lw_strlcpy(dir, path, sizeof(dir)) != LW_OK)
        return LW_ETOOBIG;
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST)
            return LW_EIO;
        *p = '/';
    }
    return LW_OK;
}

/* The folder of path (for the temporary file and the lock). */
static int dir_of(const char *path, char *dst, size_t cap)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return lw_strlcpy(dst, ".", cap);
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    if (n >= cap)
        return LW_ETOOBIG;
    memcpy(dst, path, n);
    dst[n] = '\0';
    return LW_OK;
}

static json_t *state_to_json(const state *st)
{
    json_t *j = json_object();
    if (j == NULL)
        return NULL;
    int bad = json_object_set_new(j, "version", json_integer(1));
    for (int i = 0; i < LWC_FIELD_COUNT; i++)
        if (st->fields[i] != NULL)
            bad |= json_object_set_new(j, field_names[i], json_string(st->fields[i]));
    if (st->challenge != NULL)
        bad |= json_object_set_new(j, "challenge", json_string(st->challenge));
    if (st->token_expires_at > 0)
        bad |= json_object_set_new(j, "token_expires_at", json_integer(st->token_expires_at));
    if (st->has_server_key) {
        char b[lw_b64_enc_len(LW_PK_LEN)];
        lw_b64_encode(b, st->server_key, LW_PK_LEN);
        bad |= json_object_set_new(j, "server_key", json_string(b));
    }
    if (st->has_key) {
        char b[lw_b64_enc_len(LW_SK_LEN)];
        lw_b64_encode(b, st->sk, LW_SK_LEN);
        bad |= json_object_set_new(j, "device_secret_key", json_string(b));
        lw_wipe(b, sizeof(b));
    }
    if (bad) {
        lwc_json_wipe(j, "device_secret_key");
        lwc_json_wipe(j, "token");
        json_decref(j);
        return NULL;
    }
    return j;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return LW_EIO;
        p += w;
        n -= (size_t)w;
    }
    return LW_OK;
}

static int state_write(const char *path, const state *st, lwc_error *err)
{
    int rc = LW_EIO;
    int fd = -1;
    char *text = NULL;
    char tmp[PATH_MAX], dir[PATH_MAX];
    json_t *j = state_to_json(st);
    if (j == NULL) {
        lwc_err_set(err, 0, "no_memory", "out of memory");
        return LW_ENOMEM;
    }
    text = json_dumps(j, JSON_INDENT(2));
    lwc_json_wipe(j, "device_secret_key");
    lwc_json_wipe(j, "token");
    json_decref(j);
    if (text == NULL) {
        lwc_err_set(err, 0, "no_memory", "out of memory");
        return LW_ENOMEM;
    }
    if (make_parents(path) != LW_OK || dir_of(path, dir, sizeof(dir)) != LW_OK) {
        lwc_err_set(err, 0, "state", "cannot create the folder of %s", path);
        goto fail;
    }
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        lwc_err_set(err, 0, "state", "state file path too long");
        goto fail;
    }
    /* mkstemp creates the file 0600 and exclusively: no window in which the
     * key sits in a file others could open. */
    fd = mkstemp(tmp);
    if (fd < 0) {
        lwc_err_set(err, 0, "state", "cannot write %s: %s", path, strerror(errno));
        goto fail;
    }
    if (fchmod(fd, 0600) != 0 || write_all(fd, text, strlen(text)) != LW_OK ||
        write_all(fd, "\n", 1) != LW_OK || fsync(fd) != 0) {
        lwc_err_set(err, 0, "state", "cannot write %s: %s", tmp, strerror(errno));
        goto fail_unlink;
    }
    if (close(fd) != 0) {
        fd = -1;
        lwc_err_set(err, 0, "state", "cannot write %s: %s", tmp, strerror(errno));
        goto fail_unlink;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        lwc_err_set(err, 0, "state", "cannot replace %s: %s", path, strerror(errno));
        goto fail_unlink;
    }
    /* Make the rename itself durable. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    rc = LW_OK;
    goto fail;
fail_unlink:
    if (fd >= 0)
        close(fd);
    fd = -1;
    unlink(tmp);
fail:
    if (fd >= 0)
        close(fd);
    lw_wipe(text, strlen(text));
    free(text);
    return rc;
}

/* ---- the device ---- */

static int sync_token(lwc_device *d)
{
    if (d->client == NULL)
        return LW_OK;
    return lwc_client_set_token(d->client, d->st.fields[LWC_TOKEN]);
}

int lwc_device_open(const char *state_path, const char *server_url, lwc_device **out)
{
    *out = NULL;
    lwc_device *d = lw_calloc(1, sizeof(*d));
    if (d == NULL)
        return LW_ENOMEM;
    lwc_err_clear(&d->err);
    int rc = LW_ENOMEM;
    if (state_path != NULL && (d->path = lw_strdup(state_path)) == NULL)
        goto fail;
    if (state_path != NULL) {
        rc = state_read(state_path, &d->st, &d->err, d->warning, sizeof(d->warning));
        if (rc == LW_ENOTFOUND)
            rc = LW_OK;
        if (rc != LW_OK)
            goto fail;
    }
    const char *url = server_url != NULL ? server_url : d->st.fields[LWC_SERVER];
    if (url != NULL) {
        d->client = lwc_client_new(url);
        if (d->client == NULL) {
            rc = LW_EINVAL;
            lwc_err_set(&d->err, 0, "invalid_url", "not a valid server URL (http:// or https://): %s", url);
            goto fail;
        }
    }
    if ((rc = sync_token(d)) != LW_OK)
        goto fail;
    *out = d;
    return LW_OK;
fail:
    /* Keep the device so the caller can read the error; it is unusable. */
    *out = d;
    return rc;
}

void lwc_device_free(lwc_device *d)
{
    if (d == NULL)
        return;
    state_clear(&d->st);
    lwc_client_free(d->client);
    lw_free(d->path);
    lw_free(d);
}

int lwc_device_save(lwc_device *d)
{
    if (d->path == NULL)
        return LW_OK; /* an in-memory device: the integrator keeps it */
    return state_write(d->path, &d->st, &d->err);
}

const char *lwc_device_warning(const lwc_device *d)
{
    return d->warning[0] ? d->warning : NULL;
}

lwc_client *lwc_device_client(lwc_device *d)
{
    return d->client;
}

const char *lwc_device_get(const lwc_device *d, lwc_field f)
{
    if ((int)f < 0 || f >= LWC_FIELD_COUNT)
        return NULL;
    return d->st.fields[f];
}

bool lwc_device_linked(const lwc_device *d)
{
    return d->st.has_key && d->st.fields[LWC_DEVICE_ID] != NULL && d->st.fields[LWC_TOKEN] != NULL;
}

void lwc_device_forget_session(lwc_device *d)
{
    free_str(&d->st.fields[LWC_DEVICE_ID], false);
    free_str(&d->st.fields[LWC_ACCOUNT_ID], false);
    free_str(&d->st.fields[LWC_HANDLE], false);
    free_str(&d->st.fields[LWC_TOKEN], true);
    free_str(&d->st.challenge, false);
    d->st.token_expires_at = 0;
    (void)sync_token(d);
}

const lwc_error *lwc_device_error(const lwc_device *d)
{
    return &d->err;
}

lwc_error *lwc_device_err(lwc_device *d)
{
    return &d->err;
}

void lwc_device_take_error(lwc_device *d, const lwc_client *c)
{
    d->err = *lwc_client_error(c);
}

int lwc_device_server_key(const lwc_device *d, uint8_t key[LW_PK_LEN])
{
    if (!d->st.has_server_key)
        return LW_ENOTFOUND;
    memcpy(key, d->st.server_key, LW_PK_LEN);
    return LW_OK;
}

const uint8_t *lwc_device_sk(const lwc_device *d)
{
    return d->st.has_key ? d->st.sk : NULL;
}

int lwc_device_ensure_key(lwc_device *d)
{
    if (d->st.has_key)
        return LW_OK;
    uint8_t pk[LW_PK_LEN];
    if (lw_sign_keypair(pk, d->st.sk) != LW_OK) {
        lwc_err_set(&d->err, 0, "crypto", "cannot create a device key");
        return LW_ECRYPTO;
    }
    d->st.has_key = true;
    return LW_OK;
}

int lwc_device_set(lwc_device *d, lwc_field f, const char *value)
{
    if ((int)f < 0 || f >= LWC_FIELD_COUNT)
        return LW_EINVAL;
    int rc = set_str(&d->st.fields[f], value, f == LWC_TOKEN);
    if (rc == LW_OK && f == LWC_TOKEN)
        rc = sync_token(d);
    return rc;
}

int lwc_device_set_session(lwc_device *d, const char *token, const char *challenge, long expires_in)
{
    int rc = set_str(&d->st.fields[LWC_TOKEN], token, true);
    if (rc == LW_OK)
        rc = set_str(&d->st.challenge, challenge, false);
    d->st.token_expires_at = expires_in > 0 ? lw_now_ms() + (int64_t)expires_in * 1000 : 0;
    if (rc == LW_OK)
        rc = sync_token(d);
    return rc;
}

int lwc_device_pin_server(lwc_device *d, const char *origin, const char *server_key_b64)
{
    uint8_t key[LW_PK_LEN];
    if (decode_fixed(server_key_b64, key, LW_PK_LEN) != LW_OK)
        return LW_EINVAL;
    int rc = set_str(&d->st.fields[LWC_ORIGIN], origin, false);
    if (rc != LW_OK)
        return rc;
    memcpy(d->st.server_key, key, LW_PK_LEN);
    d->st.has_server_key = true;
    return LW_OK;
}

/* Takes the lock that serialises refreshes of this state file; -1 if the
 * device has no file (nothing to share) or the lock is unavailable. */
static int lock_state(const lwc_device *d)
{
    char dir[PATH_MAX];
    if (d->path == NULL || dir_of(d->path, dir, sizeof(dir)) != LW_OK)
        return -1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            close(fd);
            return -1;
        }
    }
    return fd;
}

static void unlock_state(int fd)
{
    if (fd >= 0) {
        (void)flock(fd, LOCK_UN);
        close(fd);
    }
}

/* Adopts the session another process saved for the same device, if any.
 * Returns true when the credential changed. */
static bool adopt_saved_session(lwc_device *d)
{
    if (d->path == NULL)
        return false;
    state disk = {0};
    lwc_error ignored;
    lwc_err_clear(&ignored);
    bool changed = false;
    if (state_read(d->path, &disk, &ignored, NULL, 0) != LW_OK)
        goto done;
    const char *mine = d->st.fields[LWC_DEVICE_ID], *theirs = disk.fields[LWC_DEVICE_ID];
    if (mine == NULL || theirs == NULL || strcmp(mine, theirs) != 0)
        goto done;
    const char *tok = disk.fields[LWC_TOKEN];
    if (tok == NULL)
        goto done;
    changed = d->st.fields[LWC_TOKEN] == NULL || strcmp(tok, d->st.fields[LWC_TOKEN]) != 0;
    /* The saved challenge is at least as recent as ours: every writer saves
     * right after the server hands out a new one. */
    if (set_str(&d->st.fields[LWC_TOKEN], tok, true) != LW_OK ||
        set_str(&d->st.challenge, disk.challenge, false) != LW_OK) {
        changed = false;
        goto done;
    }
    d->st.token_expires_at = disk.token_expires_at;
    (void)sync_token(d);
done:
    state_clear(&disk);
    return changed;
}

static bool token_fresh(const lwc_device *d, int64_t margin_ms)
{
    return d->st.token_expires_at == 0 || lw_now_ms() + margin_ms < d->st.token_expires_at;
}

/* The refresh itself, with the lock held. */
static int refresh_locked(lwc_device *d, bool adopt)
{
    if (adopt && adopt_saved_session(d) && token_fresh(d, REFRESH_MARGIN_MS))
        return LW_OK; /* another process refreshed meanwhile */
    if (!lwc_device_linked(d) || d->st.challenge == NULL) {
        lwc_err_set(&d->err, 0, "no_session", "this device has no session to refresh");
        return LW_EDENIED;
    }
    char sig[LWC_SIG_B64_LEN + 1];
    int rc = lwc_sign_refresh(d->st.sk, d->st.fields[LWC_DEVICE_ID], d->st.challenge, sig);
    if (rc != LW_OK) {
        lwc_err_set(&d->err, 0, "state", "the saved refresh challenge is not valid");
        return rc;
    }
    json_t *body = json_pack("{ss}", "signature", sig);
    json_t *resp = NULL;
    long status = 0;
    if (body == NULL)
        return LW_ENOMEM;
    rc = lwc_request_bearer(d->client, "POST", "/v1/session/refresh", d->st.fields[LWC_TOKEN], body, &status,
                            &resp);
    json_decref(body);
    if (rc != LW_OK) {
        lwc_device_take_error(d, d->client);
        return LW_EIO;
    }
    if ((rc = lwc_status_to_err(status, lwc_client_error(d->client)->code)) != LW_OK) {
        lwc_device_take_error(d, d->client);
        json_decref(resp);
        return rc;
    }
    const char *token = json_string_value(json_object_get(resp, "token"));
    const char *challenge = json_string_value(json_object_get(resp, "challenge"));
    json_t *exp = json_object_get(resp, "token_expires_in");
    if (token == NULL || challenge == NULL) {
        lwc_err_set(&d->err, status, "bad_response", "the refresh answer lacks token or challenge");
        rc = LW_EIO;
    } else {
        rc = lwc_device_set_session(d, token, challenge,
                                    json_is_integer(exp) ? (long)json_integer_value(exp) : 0);
        if (rc == LW_OK)
            rc = lwc_device_save(d);
    }
    lwc_json_wipe(resp, "token");
    json_decref(resp);
    return rc;
}

int lwc_device_refresh(lwc_device *d)
{
    if (d->client == NULL) {
        lwc_err_set(&d->err, 0, "no_server", "no server URL is known for this device");
        return LW_EINVAL;
    }
    int fd = lock_state(d);
    int rc = refresh_locked(d, true);
    unlock_state(fd);
    return rc;
}

/* Refreshes when the credential that was presented has been replaced or
 * has lapsed. `presented` is the credential the refused request carried. */
static int refresh_after_refusal(lwc_device *d, const char *presented)
{
    int fd = lock_state(d);
    int rc = LW_OK;
    bool changed = adopt_saved_session(d);
    if (!changed && d->st.fields[LWC_TOKEN] != NULL && presented != NULL &&
        strcmp(d->st.fields[LWC_TOKEN], presented) != 0)
        changed = true; /* refreshed in this process meanwhile */
    if (!changed || !token_fresh(d, REFRESH_MARGIN_MS))
        rc = refresh_locked(d, false);
    unlock_state(fd);
    return rc;
}

static int need_session(lwc_device *d)
{
    if (d->client == NULL) {
        lwc_err_set(&d->err, 0, "no_server", "no server URL is known for this device");
        return LW_EINVAL;
    }
    if (!lwc_device_linked(d)) {
        lwc_err_set(&d->err, 0, "no_session", "this device is not registered or linked");
        return LW_EDENIED;
    }
    return LW_OK;
}

int lwc_device_call(lwc_device *d, const char *method, const char *path, json_t *body, json_t **response)
{
    if (response != NULL)
        *response = NULL;
    int rc = need_session(d);
    if (rc != LW_OK)
        return rc;
    if (!token_fresh(d, REFRESH_MARGIN_MS) && (rc = lwc_device_refresh(d)) != LW_OK)
        return rc;
    json_t *resp = NULL;
    long status = 0;
    char *presented = NULL;
    for (int attempt = 0;; attempt++) {
        json_decref(resp);
        resp = NULL;
        free_str(&presented, true);
        if ((presented = lw_strdup(d->st.fields[LWC_TOKEN])) == NULL) {
            rc = LW_ENOMEM;
            break;
        }
        rc = lwc_request(d->client, method, path, body, &status, &resp);
        if (rc != LW_OK) {
            lwc_device_take_error(d, d->client);
            rc = LW_EIO; /* unreachable or not JSON: we could not understand */
            break;
        }
        const char *code = lwc_client_error(d->client)->code;
        /* Expired: refresh and retry once. Unknown credential: another
         * process may have refreshed it; adopt its result and retry once. */
        bool expired = status == 401 && strcmp(code, "credential_expired") == 0;
        bool unknown = status == 401 && strcmp(code, "unauthenticated") == 0;
        if (attempt == 0 && (expired || unknown)) {
            lwc_device_take_error(d, d->client);
            if (unknown && !adopt_saved_session(d))
                break;
            if (expired && (rc = refresh_after_refusal(d, presented)) != LW_OK)
                goto done;
            continue;
        }
        break;
    }
    if (rc == LW_OK) {
        lwc_device_take_error(d, d->client);
        rc = lwc_status_to_err(status, d->err.code);
    }
done:
    free_str(&presented, true);
    if (rc == LW_OK && response != NULL)
        *response = resp;
    else
        json_decref(resp);
    return rc;
}

int lwc_device_token(lwc_device *d, long min_seconds, const char **token)
{
    *token = NULL;
    int rc = need_session(d);
    if (rc != LW_OK)
        return rc;
    if (d->st.token_expires_at == 0) {
        /* Unknown lifetime (an older state): ask, which also refreshes an
         * expired credential on the way. */
        json_t *s = NULL;
        if ((rc = lwc_device_call(d, "GET", "/v1/session", NULL, &s)) != LW_OK)
            return rc;
        json_t *exp = json_object_get(s, "token_expires_in");
        if (json_is_integer(exp))
            d->st.token_expires_at = lw_now_ms() + (int64_t)json_integer_value(exp) * 1000;
        json_decref(s);
    }
    if (!token_fresh(d, (int64_t)min_seconds * 1000) && (rc = lwc_device_refresh(d)) != LW_OK)
        return rc;
    *token = d->st.fields[LWC_TOKEN];
    return LW_OK;
}

long lwc_device_token_expires_in(const lwc_device *d)
{
    if (d->st.token_expires_at == 0)
        return -1;
    int64_t left = d->st.token_expires_at - lw_now_ms();
    return left > 0 ? (long)(left / 1000) : 0;
}

int lwc_device_note_challenge(lwc_device *d, const char *challenge_b64)
{
    uint8_t raw[32];
    if (challenge_b64 == NULL || decode_fixed(challenge_b64, raw, sizeof(raw)) != LW_OK)
        return LW_EINVAL;
    if (d->st.challenge != NULL && strcmp(d->st.challenge, challenge_b64) == 0)
        return LW_OK;
    int fd = lock_state(d);
    (void)adopt_saved_session(d);
    int rc = set_str(&d->st.challenge, challenge_b64, false);
    if (rc == LW_OK)
        rc = lwc_device_save(d);
    unlock_state(fd);
    return rc;
}

lwc_ws *lwc_device_ws_connect(lwc_device *d, int *err)
{
    lwc_ws *ws = NULL;
    char *presented = NULL;
    int rc = need_session(d);
    if (rc == LW_OK && !token_fresh(d, REFRESH_MARGIN_MS))
        rc = lwc_device_refresh(d);
    for (int attempt = 0; rc == LW_OK && attempt < 2; attempt++) {
        free_str(&presented, true);
        if ((presented = lw_strdup(d->st.fields[LWC_TOKEN])) == NULL) {
            rc = LW_ENOMEM;
            break;
        }
        if ((ws = lwc_ws_connect(d->client, presented, &rc)) != NULL)
            break;
        lwc_device_take_error(d, d->client);
        if (attempt > 0)
            break;
        /* As in lwc_device_call: refresh an expired credential, adopt one
         * another process refreshed, then try once more. */
        if (rc == LW_EEXPIRED)
            rc = refresh_after_refusal(d, presented);
        else if (rc == LW_EDENIED && strcmp(d->err.code, "unauthenticated") == 0 && adopt_saved_session(d))
            rc = LW_OK;
        else
            break;
    }
    free_str(&presented, true);
    if (err != NULL)
        *err = ws != NULL ? LW_OK : rc;
    return ws;
}

/* The value of KEY=value (quotes removed) in an os-release file, or "". */
static void os_release_field(const char *text, const char *key, char *dst, size_t cap)
{
    dst[0] = '\0';
    size_t kl = strlen(key);
    for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, key, kl) != 0 || line[kl] != '=')
            continue;
        const char *v = line + kl + 1;
        size_t n = strcspn(v, "\n");
        if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
            v++;
            n -= 2;
        }
        if (n >= cap)
            n = cap - 1;
        memcpy(dst, v, n);
        dst[n] = '\0';
        return;
    }
}

/* What a person calls this system: "Debian GNU/Linux" "12" from os-release
 * (systemd's os-release(5)), else the kernel's name and release. */
static void system_name(const struct utsname *u, bool have_u, char *os, char *version, size_t cap)
{
    char text[4096];
    size_t len = 0;
    FILE *f = fopen("/etc/os-release", "r");
    if (!f)
        f = fopen("/usr/lib/os-release", "r");
    if (f) {
        len = fread(text, 1, sizeof text - 1, f);
        fclose(f);
    }
    text[len] = '\0';
    os_release_field(text, "NAME", os, cap);
    os_release_field(text, "VERSION_ID", version, cap);
    if (os[0] == '\0') {
        lw_strlcpy(os, have_u ? u->sysname : "", cap);
        lw_strlcpy(version, have_u ? u->release : "", cap);
    }
}

json_t *lwc_client_info(const char *name)
{
    struct utsname u;
    bool ok = uname(&u) == 0;
    char os[64], os_version[64];
    system_name(&u, ok, os, os_version, sizeof os);
    json_t *j = json_pack("{ss ss ss ss ss}", "browser", "Linkward CLI", "browser_version", LINKWARD_VERSION,
                          "os", os, "os_version", os_version, "device_model", ok ? u.machine : "");
    if (j != NULL && name != NULL && json_object_set_new(j, "name", json_string(name)) != 0) {
        json_decref(j);
        return NULL;
    }
    return j;
}

int lwc_register(lwc_device *d, const char *handle, const char *invite, json_t *client, json_t **response)
{
    if (response != NULL)
        *response = NULL;
    if (d->client == NULL) {
        lwc_err_set(&d->err, 0, "no_server", "no server URL: give --server URL");
        return LW_EINVAL;
    }
    if (d->st.fields[LWC_DEVICE_ID] != NULL) {
        lwc_err_set(&d->err, 0, "state",
                    "this state file already holds a registered device (%s); use another state file",
                    d->st.fields[LWC_HANDLE] ? d->st.fields[LWC_HANDLE] : d->st.fields[LWC_DEVICE_ID]);
        return LW_ECONFLICT;
    }
    int rc = lwc_device_ensure_key(d);
    if (rc != LW_OK)
        return rc;
    char pk[lw_b64_enc_len(LW_PK_LEN)];
    lw_b64_encode(pk, d->st.sk + 32, LW_PK_LEN);
    json_t *body = json_pack("{ss ss}", "handle", handle, "public_key", pk);
    json_t *resp = NULL;
    long status = 0;
    if (body == NULL)
        return LW_ENOMEM;
    if (invite != NULL && json_object_set_new(body, "invite", json_string(invite)) != 0)
        goto nomem;
    if (client != NULL && json_object_set(body, "client", client) != 0)
        goto nomem;
    rc = lwc_request_bearer(d->client, "POST", "/v1/accounts", NULL, body, &status, &resp);
    lwc_device_take_error(d, d->client);
    if (rc != LW_OK) {
        rc = LW_EIO;
        goto done;
    }
    if ((rc = lwc_status_to_err(status, d->err.code)) != LW_OK)
        goto done;

    const char *account = lwc_json_str(resp, "account_id"), *device = lwc_json_str(resp, "device_id");
    const char *token = lwc_json_str(resp, "token"), *challenge = lwc_json_str(resp, "challenge");
    const char *origin = lwc_json_str(resp, "origin"), *key = lwc_json_str(resp, "server_key");
    json_t *exp = json_object_get(resp, "token_expires_in");
    if (!lwc_id_ok(account) || !lwc_id_ok(device) || token[0] == '\0' || challenge[0] == '\0' ||
        (strncmp(origin, "http://", 7) != 0 && strncmp(origin, "https://", 8) != 0)) {
        lwc_err_set(&d->err, status, "bad_response", "the server's answer to registration is incomplete");
        rc = LW_EIO;
        goto done;
    }
    /* Trust on first use: from now on QR codes must carry this key's
     * signature and this origin. */
    if (lwc_device_pin_server(d, origin, key) != LW_OK) {
        lwc_err_set(&d->err, status, "bad_response", "the server's key in its answer is not valid");
        rc = LW_EIO;
        goto done;
    }
    const char *h = lwc_json_str(resp, "handle");
    if ((rc = lwc_device_set(d, LWC_SERVER, lwc_client_url(d->client))) != LW_OK ||
        (rc = lwc_device_set(d, LWC_ROLE, "primary")) != LW_OK ||
        (rc = lwc_device_set(d, LWC_DEVICE_ID, device)) != LW_OK ||
        (rc = lwc_device_set(d, LWC_ACCOUNT_ID, account)) != LW_OK ||
        (rc = lwc_device_set(d, LWC_HANDLE, h[0] ? h : handle)) != LW_OK ||
        (rc = lwc_device_set_session(d, token, challenge,
                                     json_is_integer(exp) ? (long)json_integer_value(exp) : 0)) != LW_OK)
        goto done;
    if ((rc = lwc_device_save(d)) != LW_OK)
        goto done;
    lwc_json_wipe(resp, "token");
    json_object_del(resp, "token");
    json_object_del(resp, "challenge");
    if (response != NULL) {
        *response = resp;
        resp = NULL;
    }
done:
    lwc_json_wipe(resp, "token");
    json_decref(resp);
    json_decref(body);
    return rc;
nomem:
    json_decref(body);
    return LW_ENOMEM;
}

int lwc_device_check_server(lwc_device *d)
{
    uint8_t theirs[LW_PK_LEN];
    long status = 0;
    json_t *ans = NULL;
    if (d->client == NULL || !d->st.has_server_key) {
        lwc_err_set(&d->err, 0, "state", "this device has no server or pinned server key");
        return LW_EINVAL;
    }
    int rc = lwc_request(d->client, "GET", "/v1/server", NULL, &status, &ans);
    if (rc != LW_OK || status != 200) {
        lwc_device_take_error(d, d->client);
        json_decref(ans);
        return LW_EIO;
    }
    const char *key = lwc_json_str(ans, "server_key");
    bool same = lw_b64_decode(theirs, sizeof theirs, key, strlen(key), LW_PK_LEN) == LW_PK_LEN &&
                lw_ct_equal(theirs, d->st.server_key, LW_PK_LEN);
    json_decref(ans);
    if (!same) {
        lwc_err_set(&d->err, 0, "server_key_changed", "the server's key is not the one this device pinned");
        return LW_ECRYPTO;
    }
    rc = lwc_device_call(d, "GET", "/v1/session", NULL, NULL);
    if (rc == LW_EDENIED && strcmp(d->err.code, "unauthenticated") == 0) {
        lwc_err_set(&d->err, 401, "device_unknown", "the server does not know this device");
        return LW_ENOTFOUND;
    }
    return rc == LW_EIO ? LW_EIO : LW_OK;
}

int lwc_device_set_ca_file(lwc_device *d, const char *path)
{
    if (path != NULL && path[0] != '/')
        return LW_EINVAL;
    return lwc_device_set(d, LWC_CA_FILE, path);
}
