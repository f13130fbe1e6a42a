/*
 * http.c — lwc_client: JSON requests over libcurl, and the errors they bring.
 *
 * One easy handle per client, reused so that consecutive requests share the
 * connection. Every answer is bounded (LWC_RESPONSE_MAX) in the write
 * callback, before it is kept, so a hostile or broken server cannot make the
 * client allocate without limit.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/utsname.h>
#include <net/if.h>
#include <pthread.h>
#include <unistd.h>

#include <curl/curl.h>

#include "client_int.h"

#ifndef LINKWARD_VERSION
#define LINKWARD_VERSION "0"
#endif

struct lwc_client {
    CURL *curl;
    char *url;   /* base URL without trailing slash */
    char *token; /* bearer credential; a secret */
    char *headers[LWC_HEADERS_MAX];
    size_t nheaders;
    char user_agent[160];
    lwc_error err;
};

/* What the header and write callbacks fill during one transfer. */
typedef struct transfer {
    lw_buf body;
    long retry_after;
    bool too_big;
} transfer;

void lwc_err_clear(lwc_error *err)
{
    memset(err, 0, sizeof(*err));
    err->retry_after = -1;
    err->attempts_left = -1;
}

void lwc_err_set(lwc_error *err, long status, const char *code, const char *fmt, ...)
{
    lwc_err_clear(err);
    err->status = status;
    (void)lw_strlcpy(err->code, code, sizeof(err->code));
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    /* A truncated sentence is still more useful than none: keep it, marked. */
    if (n >= (int)sizeof(err->message) && sizeof(err->message) > 4)
        memcpy(err->message + sizeof(err->message) - 4, "...", 4);
    else if (n < 0)
        err->message[0] = '\0';
}

const char *lwc_json_str(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

/* The reasons a session ends; a server that names one in its message (but
 * not in a field) still lets us report it precisely. */
/* Longer names first: "logout" is in "admin_logout" and "remote_logout". */
static const char *const end_reasons[] = {
    "remote_logout", "logout_all",  "admin_logout",  "primary_inactive", "inactive",
    "max_age",       "token_theft", "account_reset", "account_deleted",  "logout",
};

static void copy_bounded(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

void lwc_err_from_json(lwc_error *err, long status, json_t *answer)
{
    lwc_err_clear(err);
    err->status = status;
    json_t *e = json_object_get(answer, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    if (code == NULL) {
        copy_bounded(err->code, sizeof(err->code), status >= 500 ? "server_error" : "error");
        snprintf(err->message, sizeof(err->message), "the server answered HTTP %ld", status);
        return;
    }
    copy_bounded(err->code, sizeof(err->code), code);
    copy_bounded(err->message, sizeof(err->message), msg ? msg : code);
    json_t *left = json_object_get(e, "attempts_left");
    if (json_is_integer(left))
        err->attempts_left = (long)json_integer_value(left);
    const char *reason = json_string_value(json_object_get(e, "reason"));
    if (reason != NULL) {
        copy_bounded(err->reason, sizeof(err->reason), reason);
    } else if (strcmp(code, "token_theft") == 0) {
        copy_bounded(err->reason, sizeof(err->reason), "token_theft");
    } else if (strcmp(code, "session_ended") == 0) {
        for (size_t i = 0; i < sizeof(end_reasons) / sizeof(end_reasons[0]); i++) {
            if (msg != NULL && strstr(msg, end_reasons[i]) != NULL) {
                copy_bounded(err->reason, sizeof(err->reason), end_reasons[i]);
                break;
            }
        }
    }
}

int lwc_status_to_err(long status, const char *code)
{
    if (status >= 200 && status < 300)
        return LW_OK;
    if (code == NULL)
        code = "";
    switch (status) {
    case 400:
        return strcmp(code, "invalid_signature") == 0 ? LW_ECRYPTO : LW_EINVAL;
    case 401:
        return strcmp(code, "credential_expired") == 0 ? LW_EEXPIRED : LW_EDENIED;
    case 403:
        return LW_EDENIED;
    case 404:
        return LW_ENOTFOUND;
    case 409:
        return strcmp(code, "device_limit") == 0 ? LW_ELIMIT : LW_ECONFLICT;
    case 410:
        return LW_EEXPIRED;
    case 413:
        return LW_ETOOBIG;
    case 423:
        return LW_ELOCKED;
    case 429:
        return LW_ELIMIT;
    default:
        /* Other 4xx are refusals; anything else means we did not get a
         * usable answer (5xx, or a proxy speaking another protocol). */
        return status >= 400 && status < 500 ? LW_EDENIED : LW_EIO;
    }
}

bool lwc_id_ok(const char *id)
{
    size_t n = 0;
    for (; id[n] != '\0'; n++) {
        unsigned char ch = (unsigned char)id[n];
        if (n >= 128 || !(isalnum(ch) || ch == '-' || ch == '_'))
            return false;
    }
    return n > 0;
}

void lwc_curl_tls(void *curl)
{
    /* A private CA (a self-hosted server's own certificate): LINKWARD_CA_FILE,
     * which the CLI's --cacert sets. Verification itself is never turned off. */
    const char *ca = getenv("LINKWARD_CA_FILE");
    if (ca && *ca)
        curl_easy_setopt((CURL *)curl, CURLOPT_CAINFO, ca);
}

lwc_client *lwc_client_new(const char *server_url)
{
    if (server_url == NULL)
        return NULL;
    size_t len = strnlen(server_url, LWC_URL_MAX + 1);
    if (len > LWC_URL_MAX)
        return NULL;
    if (strncmp(server_url, "http://", 7) != 0 && strncmp(server_url, "https://", 8) != 0)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)server_url[i];
        if (ch <= 0x20 || ch == 0x7f)
            return NULL; /* no spaces or controls: they would split headers */
    }
    while (len > 0 && server_url[len - 1] == '/')
        len--;

    lwc_client *c = lw_calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    lwc_err_clear(&c->err);
    c->url = lw_strndup(server_url, len);
    c->curl = curl_easy_init();
    if (c->url == NULL || c->curl == NULL)
        goto fail;

    struct utsname u;
    const char *sys = "unknown", *machine = "unknown";
    if (uname(&u) == 0) {
        sys = u.sysname;
        machine = u.machine;
    }
    int n =
        snprintf(c->user_agent, sizeof(c->user_agent), "linkward/%s (%s %s)", LINKWARD_VERSION, sys, machine);
    if (n < 0 || (size_t)n >= sizeof(c->user_agent))
        (void)lw_strlcpy(c->user_agent, "linkward/" LINKWARD_VERSION, sizeof(c->user_agent));
    return c;
fail:
    lwc_client_free(c);
    return NULL;
}

void lwc_client_free(lwc_client *c)
{
    if (c == NULL)
        return;
    if (c->curl != NULL)
        curl_easy_cleanup(c->curl);
    if (c->token != NULL) {
        lw_wipe(c->token, strlen(c->token));
        lw_free(c->token);
    }
    for (size_t i = 0; i < c->nheaders; i++) {
        /* Extra headers may carry proxy credentials. */
        lw_wipe(c->headers[i], strlen(c->headers[i]));
        lw_free(c->headers[i]);
    }
    lw_free(c->url);
    lw_free(c);
}

const char *lwc_client_url(const lwc_client *c)
{
    return c->url;
}

const char *lwc_client_user_agent(const lwc_client *c)
{
    return c->user_agent;
}

size_t lwc_client_header_count(const lwc_client *c)
{
    return c->nheaders;
}

const char *lwc_client_header(const lwc_client *c, size_t i)
{
    return i < c->nheaders ? c->headers[i] : NULL;
}

const lwc_error *lwc_client_error(const lwc_client *c)
{
    return &c->err;
}

lwc_error *lwc_client_err(lwc_client *c)
{
    return &c->err;
}

int lwc_client_add_header(lwc_client *c, const char *header)
{
    if (c->nheaders >= LWC_HEADERS_MAX)
        return LW_ELIMIT;
    size_t len = strnlen(header, 8193);
    if (len > 8192)
        return LW_EINVAL;
    const char *colon = memchr(header, ':', len);
    if (colon == NULL || colon == header)
        return LW_EINVAL;
    /* The name is an RFC 9110 token; the value may not break the line. */
    for (const char *p = header; p < colon; p++) {
        unsigned char ch = (unsigned char)*p;
        if (!(isalnum(ch) || strchr("!#$%&'*+-.^_`|~", ch) != NULL))
            return LW_EINVAL;
    }
    for (const char *p = colon + 1; p < header + len; p++) {
        unsigned char ch = (unsigned char)*p;
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return LW_EINVAL;
    }
    char *copy = lw_strndup(header, len);
    if (copy == NULL)
        return LW_ENOMEM;
    c->headers[c->nheaders++] = copy;
    return LW_OK;
}

int lwc_client_set_token(lwc_client *c, const char *token)
{
    char *copy = NULL;
    if (token != NULL) {
        for (const char *p = token; *p; p++)
            if ((unsigned char)*p <= 0x20 || *p == 0x7f)
                return LW_EINVAL;
        if ((copy = lw_strdup(token)) == NULL)
            return LW_ENOMEM;
    }
    if (c->token != NULL) {
        lw_wipe(c->token, strlen(c->token));
        lw_free(c->token);
    }
    c->token = copy;
    return LW_OK;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    transfer *t = userdata;
    size_t n = size * nmemb;
    if (lw_buf_append(&t->body, ptr, n) != LW_OK) {
        t->too_big = true;
        return 0; /* makes curl abort with CURLE_WRITE_ERROR */
    }
    return n;
}

/* Warns once per process when the server is newer (major.minor) than this
 * client: it may speak things we do not understand. */
static void check_server_version(const char *v, size_t len)
{
    static bool warned;
    if (warned)
        return;
    char buf[32];
    size_t k = 0;
    while (k < len && k < sizeof buf - 1 && ((v[k] >= '0' && v[k] <= '9') || v[k] == '.'))
        buf[k] = v[k], k++;
    buf[k] = '\0';
    long smaj = 0, smin = 0, cmaj = 0, cmin = 0;
    char *e;
    smaj = strtol(buf, &e, 10);
    if (*e == '.')
        smin = strtol(e + 1, NULL, 10);
    cmaj = strtol(LINKWARD_VERSION, &e, 10);
    if (*e == '.')
        cmin = strtol(e + 1, NULL, 10);
    if (k && (smaj > cmaj || (smaj == cmaj && smin > cmin))) {
        warned = true;
        fprintf(stderr,
                "linkward: the server runs Linkward %s, newer than this client (%s); update this client "
                "if something does not work.\n",
                buf, LINKWARD_VERSION);
    }
}

static size_t on_header(char *ptr, size_t size, size_t nitems, void *userdata)
{
    transfer *t = userdata;
    size_t n = size * nitems;
    static const char vname[] = "linkward-version:";
    if (n > sizeof(vname) - 1 && strncasecmp(ptr, vname, sizeof(vname) - 1) == 0) {
        size_t i = sizeof(vname) - 1;
        while (i < n && (ptr[i] == ' ' || ptr[i] == '\t'))
            i++;
        check_server_version(ptr + i, n - i);
    }
    static const char name[] = "retry-after:";
    if (n > sizeof(name) - 1 && strncasecmp(ptr, name, sizeof(name) - 1) == 0) {
        long v = 0;
        bool any = false;
        for (size_t i = sizeof(name) - 1; i < n; i++) {
            unsigned char ch = (unsigned char)ptr[i];
            if (ch == ' ' || ch == '\t')
                continue;
            if (!isdigit(ch))
                break;
            if (v < 100000000)
                v = v * 10 + (ch - '0');
            any = true;
        }
        if (any)
            t->retry_after = v;
    }
    return n;
}

/* Frees a header list after zeroing it: it may hold the bearer credential. */
static void free_headers(struct curl_slist *h)
{
    for (struct curl_slist *p = h; p != NULL; p = p->next)
        lw_wipe(p->data, strlen(p->data));
    curl_slist_free_all(h);
}

static int append_header(struct curl_slist **list, const char *h)
{
    struct curl_slist *n = curl_slist_append(*list, h);
    if (n == NULL)
        return LW_ENOMEM;
    *list = n;
    return LW_OK;
}

/* The interface of the default route (/proc/net/route), or false. */
static bool default_interface(char name[IF_NAMESIZE + 1])
{
    FILE *f = fopen("/proc/net/route", "r");
    if (f == NULL)
        return false;
    char line[256];
    bool found = false;
    while (!found && fgets(line, sizeof line, f) != NULL) {
        char ifname[IF_NAMESIZE + 1];
        unsigned long dest, mask;
        /* Iface Destination Gateway Flags RefCnt Use Metric Mask ... */
        if (sscanf(line, "%16s %lx %*x %*x %*d %*d %*d %lx", ifname, &dest, &mask) == 3 && dest == 0 &&
            mask == 0) {
            memcpy(name, ifname, sizeof ifname);
            found = true;
        }
    }
    fclose(f);
    return found;
}

static bool sys_net_exists(const char *ifname, const char *leaf)
{
    char path[128];
    int n = snprintf(path, sizeof path, "/sys/class/net/%s/%s", ifname, leaf);
    return n > 0 && (size_t)n < sizeof path && access(path, F_OK) == 0;
}

static const char *network_kind;
static pthread_once_t network_once = PTHREAD_ONCE_INIT;

/* What the server may show as "reported Wi-Fi / Cellular / Ethernet"
 * (Linkward-Network, PRODUCT §4): the kind of the interface of the default
 * route, when the kernel says so plainly. A virtual interface (a container's
 * veth, a VPN tunnel) reports nothing rather than something wrong. */
static void find_network_kind(void)
{
    /* LINKWARD_NETWORK=wifi|cellular|ethernet says it instead, "none" not at all. */
    const char *env = getenv("LINKWARD_NETWORK");
    if (env != NULL && env[0] != '\0') {
        static const char *const kinds[] = {"wifi", "cellular", "ethernet"};
        for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
            if (strcmp(env, kinds[i]) == 0)
                network_kind = kinds[i];
        return;
    }
    char ifname[IF_NAMESIZE + 1];
    if (!default_interface(ifname))
        return;
    if (sys_net_exists(ifname, "wireless") || sys_net_exists(ifname, "phy80211"))
        network_kind = "wifi";
    else if (strncmp(ifname, "ww", 2) == 0 || strncmp(ifname, "rmnet", 5) == 0)
        network_kind = "cellular";
    else if (sys_net_exists(ifname, "device") && !sys_net_exists(ifname, "bridge"))
        network_kind = "ethernet";
}

int lwc_request_bearer(lwc_client *c, const char *method, const char *path, const char *bearer, json_t *body,
                       long *status, json_t **response)
{
    int rc = LW_ENOMEM;
    char *text = NULL;
    struct curl_slist *headers = NULL;
    lw_buf url, auth;
    transfer t = {.retry_after = -1};
    lw_buf_init(&url, LWC_URL_MAX + 1024);
    lw_buf_init(&auth, 4096);
    lw_buf_init(&t.body, LWC_RESPONSE_MAX);
    *status = 0;
    if (response != NULL)
        *response = NULL;
    lwc_err_clear(&c->err);

    bool has_body = strcmp(method, "POST") == 0 || strcmp(method, "PATCH") == 0 ||
                    (body != NULL && strcmp(method, "GET") != 0);
    if (has_body) {
        text = body ? json_dumps(body, JSON_COMPACT) : strdup("{}");
        if (text == NULL)
            goto fail;
        if (strlen(text) > LWC_BODY_MAX) {
            rc = LW_ETOOBIG;
            lwc_err_set(&c->err, 0, "too_large", "request body too large");
            goto fail;
        }
    }
    if (lw_buf_appendf(&url, "%s%s", c->url, path) != LW_OK) {
        rc = LW_ETOOBIG;
        lwc_err_set(&c->err, 0, "too_large", "request URL too long");
        goto fail;
    }
    if (append_header(&headers, "Accept: application/json") != LW_OK ||
        append_header(&headers, "Expect:") != LW_OK)
        goto fail;
    if (has_body && append_header(&headers, "Content-Type: application/json") != LW_OK)
        goto fail;
    if (bearer != NULL) {
        if (lw_buf_appendf(&auth, "Authorization: Bearer %s", bearer) != LW_OK ||
            append_header(&headers, auth.data) != LW_OK)
            goto fail;
    }
    bool network_given = false;
    for (size_t i = 0; i < c->nheaders; i++) {
        if (append_header(&headers, c->headers[i]) != LW_OK)
            goto fail;
        network_given |= strncasecmp(c->headers[i], "linkward-network:", 17) == 0;
    }
    pthread_once(&network_once, find_network_kind);
    if (!network_given && network_kind != NULL) {
        char h[64];
        snprintf(h, sizeof h, "Linkward-Network: %s", network_kind);
        if (append_header(&headers, h) != LW_OK)
            goto fail;
    }

    CURL *h = c->curl;
    /* Reset so nothing of the previous request (method, body) leaks into this
     * one; the connection cache survives a reset. */
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url.data);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    lwc_curl_tls(h);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)LWC_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)LWC_REQUEST_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_USERAGENT, c->user_agent);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        if (has_body) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, text);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(text));
        }
    }

    CURLcode cr = curl_easy_perform(h);
    if (cr != CURLE_OK) {
        rc = LW_EIO;
        if (t.too_big)
            lwc_err_set(&c->err, 0, "bad_response", "the server's answer is larger than %d bytes",
                        LWC_RESPONSE_MAX);
        else
            lwc_err_set(&c->err, 0, "unreachable", "cannot reach %s: %s", c->url, curl_easy_strerror(cr));
        goto fail;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);

    json_t *answer = NULL;
    if (t.body.len > 0) {
        json_error_t jerr;
        answer = json_loadb(t.body.data, t.body.len, JSON_REJECT_DUPLICATES, &jerr);
        if (answer == NULL) {
            rc = LW_EINVAL;
            lwc_err_set(&c->err, *status, "bad_response",
                        "the server's answer is not JSON (HTTP %ld from %s)", *status, c->url);
            goto fail;
        }
    }
    if (*status >= 300 || *status < 200) {
        lwc_err_from_json(&c->err, *status, answer);
        c->err.retry_after = t.retry_after;
    }
    if (response != NULL)
        *response = answer;
    else
        json_decref(answer);
    rc = LW_OK;
fail:
    if (text != NULL) {
        lw_wipe(text, strlen(text)); /* may hold a PIN or signature */
        free(text);
    }
    free_headers(headers);
    lw_buf_free(&auth);
    lw_buf_free(&url);
    lw_buf_free(&t.body);
    if (rc == LW_ENOMEM && c->err.code[0] == '\0')
        lwc_err_set(&c->err, 0, "no_memory", "out of memory");
    return rc;
}

int lwc_request(lwc_client *c, const char *method, const char *path, json_t *body, long *status,
                json_t **response)
{
    return lwc_request_bearer(c, method, path, c->token, body, status, response);
}
