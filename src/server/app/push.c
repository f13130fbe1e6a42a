/*
 * push.c — the Web Push sender (push.h).
 */
#include "push.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <h2o.h>
#include <h2o/multithread.h>

#include "fiber.h"
#include "log.h"
#include "lw.h"
#include "metrics.h"
#include "store.h"

enum { OUT_SENT, OUT_GONE, OUT_FAILED, OUT_DROPPED };

typedef struct push_job {
    h2o_multithread_message_t super; /* first: the queue hands this back */
    struct lw_push *p;
    char device_id[LW_ID_STRLEN];
    char endpoint[LW_WEBPUSH_ENDPOINT_MAX + 1];
    char origin[LW_WEBPUSH_ORIGIN_LEN];
    uint8_t p256dh[LW_WEBPUSH_KEY_LEN];
    uint8_t auth[LW_WEBPUSH_AUTH_LEN];
    char payload[LW_PUSH_PAD_TO];
    size_t payload_len;
    int failures; /* the subscription's, when it was queued */
    int tries;    /* made so far */
    int64_t due;  /* monotonic ms: not before */
    int outcome;
    long status;        /* the last HTTP status, 0 for none */
    const char *reason; /* of a failure: "gone", "http", "network", "address", "crypto" */
} push_job;

struct lw_push {
    h2o_multithread_receiver_t receiver;
    lw_store *store;
    lw_fibers *fibers;
    lw_vapid *vapid;
    char contact[LW_VAPID_SUB_MAX + 1];
    bool allow_loopback;
    int backoff_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    push_job *queue[LW_PUSH_QUEUE_MAX]; /* in the order queued; retries go to the end */
    int n;
    bool stopping;
    atomic_bool abort_now; /* lw_push_free: the message on the wire stops at once */
    bool started;
    pthread_t thread;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void job_free(push_job *j)
{
    if (!j)
        return;
    lw_wipe(j, sizeof *j); /* the auth secret and the keys */
    lw_free(j);
}

/* ---- which addresses a push may go to ---------------------------------------- */

/* Public unicast only: a push endpoint is a browser vendor's service on the
 * internet, and a URL a client gave must not reach the server's own
 * network (SSRF, DNS rebinding). Loopback too when the tests allow it. */
static bool address_allowed(int family, const uint8_t *a, bool allow_loopback)
{
    if (family == AF_INET) {
        if (a[0] == 127)
            return allow_loopback;
        if (a[0] == 0 || a[0] == 10 || a[0] >= 224 || (a[0] == 100 && (a[1] & 0xc0) == 64) ||
            (a[0] == 169 && a[1] == 254) || (a[0] == 172 && (a[1] & 0xf0) == 16) ||
            (a[0] == 192 && a[1] == 168) || (a[0] == 192 && a[1] == 0 && a[2] == 0) ||
            (a[0] == 198 && (a[1] & 0xfe) == 18))
            return false;
        return true;
    }
    if (family != AF_INET6)
        return false;
    static const uint8_t loop6[16] = {[15] = 1}, any6[16] = {0}, mapped[12] = {[10] = 0xff, [11] = 0xff};
    if (memcmp(a, mapped, 12) == 0)
        return address_allowed(AF_INET, a + 12, allow_loopback);
    if (memcmp(a, loop6, 16) == 0)
        return allow_loopback;
    if (memcmp(a, any6, 16) == 0 || (a[0] & 0xfe) == 0xfc || (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) ||
        a[0] == 0xff)
        return false;
    return true;
}

typedef struct conn_check {
    bool allow_loopback;
    bool refused;
} conn_check;

/* curl asks for each socket before it connects: the address is checked
 * there, so a refused one is never connected to (no TCP, no TLS, no SNI). */
static curl_socket_t on_opensocket(void *clientp, curlsocktype purpose, struct curl_sockaddr *address)
{
    conn_check *c = clientp;
    const uint8_t *a = NULL;
    if (purpose == CURLSOCKTYPE_IPCXN && address->family == AF_INET)
        a = (const uint8_t *)&((const struct sockaddr_in *)(const void *)&address->addr)->sin_addr;
    else if (purpose == CURLSOCKTYPE_IPCXN && address->family == AF_INET6)
        a = (const uint8_t *)&((const struct sockaddr_in6 *)(const void *)&address->addr)->sin6_addr;
    if (!a || !address_allowed(address->family, a, c->allow_loopback)) {
        c->refused = true;
        return CURL_SOCKET_BAD;
    }
    return socket(address->family, address->socktype, address->protocol);
}

/* The answer's body: counted and dropped; past the bound the transfer stops. */
static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void)ptr;
    size_t *seen = userdata;
    size_t n = size * nmemb;
    *seen += n;
    return *seen > LW_PUSH_BODY_MAX ? 0 : n;
}

/* Called by curl while a transfer runs: a server shutting down does not wait
 * out a slow push service's time-out. */
static int on_progress(void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    lw_push *p = clientp;
    return atomic_load(&p->abort_now) ? 1 : 0;
}

/* ---- the sender thread ----------------------------------------------------- */

/* One try. Sets j->status and returns the outcome; retry says whether a
 * later try may do better. */
static int send_once(lw_push *p, CURL *curl, push_job *j, bool *retry)
{
    *retry = false;
    j->status = 0;
    uint8_t body[LW_WEBPUSH_BODY_LEN(LW_PUSH_PAD_TO)];
    size_t body_len = 0;
    char auth_header[LW_VAPID_AUTH_LEN + 32];
    int rc = lw_webpush_encrypt(j->p256dh, j->auth, j->payload, j->payload_len, LW_PUSH_PAD_TO, body,
                                sizeof body, &body_len);
    int64_t now_s = (int64_t)time(NULL);
    char value[LW_VAPID_AUTH_LEN];
    if (rc == LW_OK)
        rc = lw_vapid_authorization(p->vapid, j->origin, p->contact, now_s, now_s + LW_PUSH_JWT_TTL_S, value,
                                    sizeof value);
    if (rc != LW_OK) {
        j->reason = "crypto";
        return OUT_FAILED;
    }
    snprintf(auth_header, sizeof auth_header, "Authorization: %s", value);
    struct curl_slist *h = NULL, *t;
    const char *fixed[] = {"Content-Type: application/octet-stream", "Content-Encoding: aes128gcm",
                           "Urgency: high", "Expect:"};
    char ttl[32];
    snprintf(ttl, sizeof ttl, "TTL: %d", LW_PUSH_TTL_S);
    bool ok =
        (t = curl_slist_append(h, auth_header)) && (h = t) && (t = curl_slist_append(h, ttl)) && (h = t);
    for (size_t i = 0; ok && i < sizeof fixed / sizeof fixed[0]; i++)
        ok = (t = curl_slist_append(h, fixed[i])) && (h = t);
    if (!ok) {
        curl_slist_free_all(h);
        *retry = true;
        j->reason = "network";
        return OUT_FAILED;
    }
    conn_check cc = {p->allow_loopback, false};
    size_t seen = 0;
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, j->endpoint);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, p->allow_loopback ? "http,https" : "https");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)LW_PUSH_CONNECT_MS);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)LW_PUSH_TIMEOUT_MS);
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)body_len);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "Linkward");
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &seen);
    curl_easy_setopt(curl, CURLOPT_OPENSOCKETFUNCTION, on_opensocket);
    curl_easy_setopt(curl, CURLOPT_OPENSOCKETDATA, &cc);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, p);
    CURLcode cr = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(h); /* held the JWT: not a secret beyond its 12 hours, but not kept either */
    lw_wipe(auth_header, sizeof auth_header);
    lw_wipe(value, sizeof value);
    lw_wipe(body, sizeof body);
    j->status = status;
    if (cc.refused) {
        j->reason = "address";
        return OUT_FAILED;
    }
    /* A body past the bound stops the transfer (CURLE_WRITE_ERROR), but the
     * status was read: it counts. */
    if (cr != CURLE_OK && !(cr == CURLE_WRITE_ERROR && status >= 200)) {
        *retry = true;
        j->reason = "network";
        return OUT_FAILED;
    }
    if (status >= 200 && status < 300)
        return OUT_SENT;
    if (status == 404 || status == 410) {
        j->reason = "gone";
        return OUT_GONE;
    }
    j->reason = "http";
    *retry = status == 429 || status >= 500;
    return OUT_FAILED;
}

/* The job due first, removed from the queue; NULL with *wait_ms set when
 * none is due yet. Under p->mu. */
static push_job *take_due(lw_push *p, int64_t now, int64_t *wait_ms)
{
    int best = -1;
    for (int i = 0; i < p->n; i++)
        if (best < 0 || p->queue[i]->due < p->queue[best]->due)
            best = i;
    if (best < 0) {
        *wait_ms = -1;
        return NULL;
    }
    push_job *j = p->queue[best];
    if (j->due > now) {
        *wait_ms = j->due - now;
        return NULL;
    }
    memmove(&p->queue[best], &p->queue[best + 1], (size_t)(p->n - best - 1) * sizeof p->queue[0]);
    p->n--;
    return j;
}

static void post_result(lw_push *p, push_job *j, int outcome)
{
    j->outcome = outcome;
    h2o_multithread_send_message(&p->receiver, &j->super);
}

/* Queues j, dropping the one waiting longest when full (reported to the loop
 * as OUT_DROPPED). Under p->mu. */
static void enqueue_locked(lw_push *p, push_job *j)
{
    if (p->n == LW_PUSH_QUEUE_MAX) {
        push_job *old = p->queue[0];
        memmove(&p->queue[0], &p->queue[1], (size_t)(p->n - 1) * sizeof p->queue[0]);
        p->n--;
        old->reason = "queue_full";
        post_result(p, old, OUT_DROPPED);
    }
    p->queue[p->n++] = j;
    pthread_cond_signal(&p->cv);
}

static void *sender(void *arg)
{
    lw_push *p = arg;
    CURL *curl = curl_easy_init();
    pthread_mutex_lock(&p->mu);
    while (!p->stopping) {
        int64_t wait_ms = -1;
        push_job *j = take_due(p, mono_ms(), &wait_ms);
        if (!j) {
            if (wait_ms < 0) {
                pthread_cond_wait(&p->cv, &p->mu);
            } else {
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                ts.tv_sec += wait_ms / 1000;
                ts.tv_nsec += (wait_ms % 1000) * 1000000;
                if (ts.tv_nsec >= 1000000000) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000;
                }
                pthread_cond_timedwait(&p->cv, &p->mu, &ts);
            }
            continue;
        }
        pthread_mutex_unlock(&p->mu);
        bool retry = false;
        int outcome = OUT_FAILED;
        if (curl) {
            outcome = send_once(p, curl, j, &retry);
        } else {
            j->reason = "network";
            retry = true;
            curl = curl_easy_init();
        }
        j->tries++;
        pthread_mutex_lock(&p->mu);
        if (outcome == OUT_FAILED && retry && j->tries < LW_PUSH_TRIES && !p->stopping) {
            j->due = mono_ms() + ((int64_t)p->backoff_ms << (j->tries - 1));
            enqueue_locked(p, j);
        } else {
            post_result(p, j, outcome);
        }
    }
    pthread_mutex_unlock(&p->mu);
    if (curl)
        curl_easy_cleanup(curl);
    return NULL;
}

/* ---- back on the loop ------------------------------------------------------ */

/* The store's side of an outcome, on a fiber with PostgreSQL. Frees j. */
static void apply_result(void *arg)
{
    push_job *j = arg;
    lw_store *s = j->p->store;
    int rc = LW_OK;
    if (j->outcome == OUT_GONE) {
        rc = lw_store_push_delete(s, j->device_id, j->endpoint);
        lw_log_info("push", "a subscription of device %.8s is gone (HTTP %ld): deleted", j->device_id,
                    j->status);
    } else if (j->outcome == OUT_FAILED && j->failures + 1 >= LW_PUSH_FAILURES_MAX) {
        rc = lw_store_push_delete(s, j->device_id, j->endpoint);
        lw_log_warn("push", "a subscription of device %.8s failed %d times in a row: deleted", j->device_id,
                    j->failures + 1);
    } else if (j->outcome == OUT_FAILED) {
        rc = lw_store_push_result(s, j->device_id, j->endpoint, false);
    } else if (j->outcome == OUT_SENT && j->failures > 0) {
        rc = lw_store_push_result(s, j->device_id, j->endpoint, true);
    }
    if (rc != LW_OK && rc != LW_ENOTFOUND)
        lw_log_warn("push", "cannot record a push result for device %.8s: %s", j->device_id, lw_strerror(rc));
    job_free(j);
}

static void on_results(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        push_job *j = H2O_STRUCT_FROM_MEMBER(push_job, super.link, messages->next);
        h2o_linklist_unlink(&j->super.link);
        for (int i = 1; i < j->tries; i++)
            lw_metrics_inc("linkward_push_retries_total", NULL);
        char label[48];
        switch (j->outcome) {
        case OUT_SENT:
            lw_metrics_inc("linkward_push_sent_total", NULL);
            break;
        case OUT_DROPPED:
            snprintf(label, sizeof label, "reason=\"%s\"", j->reason ? j->reason : "other");
            lw_metrics_inc("linkward_push_dropped_total", label);
            lw_log_warn("push", "the push queue is full (%d): dropped the message waiting longest",
                        LW_PUSH_QUEUE_MAX);
            job_free(j);
            continue;
        default:
            snprintf(label, sizeof label, "reason=\"%s\"", j->reason ? j->reason : "other");
            lw_metrics_inc("linkward_push_failed_total", label);
            if (j->outcome == OUT_FAILED)
                lw_log_warn("push", "a push to device %.8s failed after %d tr%s (%s, HTTP %ld)", j->device_id,
                            j->tries, j->tries == 1 ? "y" : "ies", j->reason ? j->reason : "other",
                            j->status);
            break;
        }
        if (lw_fiber_start(j->p->fibers, apply_result, j) != LW_OK)
            apply_result(j);
    }
}

/* ---- the face ------------------------------------------------------------- */

void lw_push_global_init(void)
{
    static bool done;
    if (!done && curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK)
        done = true;
}

lw_push *lw_push_new(const lw_push_opts *o)
{
    lw_push *p = lw_calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->store = o->store;
    p->fibers = o->fibers;
    p->allow_loopback = o->allow_loopback;
    p->backoff_ms = o->backoff_ms > 0 ? o->backoff_ms : LW_PUSH_BACKOFF_MS;
    if (lw_strlcpy(p->contact, o->contact ? o->contact : "", sizeof p->contact) != LW_OK) {
        lw_free(p);
        return NULL;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    h2o_multithread_register_receiver(o->ctx->queue, &p->receiver, on_results);
    if (pthread_create(&p->thread, NULL, sender, p) != 0) {
        h2o_multithread_unregister_receiver(p->receiver.queue, &p->receiver);
        pthread_cond_destroy(&p->cv);
        pthread_mutex_destroy(&p->mu);
        lw_free(p);
        return NULL;
    }
    pthread_setname_np(p->thread, "lw-push");
    p->started = true;
    p->vapid = o->vapid;
    return p;
}

void lw_push_free(lw_push *p)
{
    if (!p)
        return;
    atomic_store(&p->abort_now, true);
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    for (int i = 0; i < p->n; i++)
        job_free(p->queue[i]);
    p->n = 0;
    /* Results sent but not delivered: the thread is joined and only the loop
     * reads the queue, so they are taken back without a lock. */
    h2o_linklist_t *pending = &p->receiver._messages;
    while (!h2o_linklist_is_empty(pending)) {
        push_job *j = H2O_STRUCT_FROM_MEMBER(push_job, super.link, pending->next);
        h2o_linklist_unlink(&j->super.link);
        job_free(j);
    }
    h2o_multithread_unregister_receiver(p->receiver.queue, &p->receiver);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    lw_vapid_free(p->vapid);
    lw_free(p);
}

void lw_push_alert(void *ctx, const struct lw_alert *a)
{
    lw_push *p = ctx;
    if (!p || !a)
        return;
    lw_push_sub *subs = NULL;
    size_t n = 0;
    int rc = lw_store_push_list(p->store, a->account_id, NULL, &subs, &n);
    if (rc != LW_OK) {
        lw_log_warn("push", "cannot list the push subscriptions of account %.8s: %s", a->account_id,
                    lw_strerror(rc));
        return;
    }
    char payload[LW_PUSH_PAD_TO];
    int len = snprintf(payload, sizeof payload, "{\"alert_id\":\"%s\",\"kind\":\"%s\"}", a->id, a->kind);
    if (len < 0 || (size_t)len >= sizeof payload) {
        lw_log_error("push", "an alert of kind %.32s does not fit a push payload", a->kind);
        n = 0;
    }
    int64_t now = mono_ms();
    for (size_t i = 0; i < n; i++) {
        char origin[LW_WEBPUSH_ORIGIN_LEN];
        /* Checked when it was stored; again, in case the flags changed since. */
        if (lw_webpush_endpoint_check(subs[i].endpoint, p->allow_loopback ? LW_WEBPUSH_ALLOW_LOOPBACK : 0,
                                      origin) != LW_OK)
            continue;
        push_job *j = lw_calloc(1, sizeof *j);
        if (!j) {
            lw_metrics_inc("linkward_push_dropped_total", "reason=\"memory\"");
            continue;
        }
        j->p = p;
        memcpy(j->device_id, subs[i].device_id, sizeof j->device_id);
        memcpy(j->endpoint, subs[i].endpoint, sizeof j->endpoint);
        memcpy(j->origin, origin, sizeof j->origin);
        memcpy(j->p256dh, subs[i].p256dh, sizeof j->p256dh);
        memcpy(j->auth, subs[i].auth, sizeof j->auth);
        memcpy(j->payload, payload, (size_t)len);
        j->payload_len = (size_t)len;
        j->failures = subs[i].failures;
        j->due = now;
        pthread_mutex_lock(&p->mu);
        enqueue_locked(p, j);
        pthread_mutex_unlock(&p->mu);
    }
    if (subs)
        lw_wipe(subs, n * sizeof *subs);
    lw_free(subs);
}
