/*
 * push.h — Web Push for alerts: every alert raised for an account becomes one
 * push message per subscription of the account's primary (store.h
 * lw_push_sub), sent by a thread of its own so the loop never waits on a push
 * service.
 *
 * What is sent: the JSON {"alert_id":…,"kind":…} (the app fetches the rest),
 * padded to one length and encrypted for the subscription (RFC 8291
 * aes128gcm, webpush.h), with a VAPID Authorization (RFC 8292: ES256 JWT,
 * aud = the endpoint's origin, exp 12 hours ahead, sub = --push-contact),
 * TTL and Urgency headers. To the endpoint only, as the browser gave it and
 * the API checked it: no redirects, connect and total time-outs, the answer's
 * body read at most LW_PUSH_BODY_MAX bytes and thrown away, and no address
 * that is not public (loopback only with --push-allow-loopback, for tests).
 *
 * Outcomes: 2xx sent; 404/410 the subscription is gone and deleted; 429, 5xx
 * and network errors retried with exponential back-off, at most
 * LW_PUSH_TRIES times in all; anything else, or the last try failing, counts a
 * failure against the subscription, which is deleted after
 * LW_PUSH_FAILURES_MAX in a row. The queue holds LW_PUSH_QUEUE_MAX messages;
 * when full the one waiting longest is dropped. /metrics:
 * linkward_push_sent_total, linkward_push_failed_total{reason},
 * linkward_push_dropped_total{reason}, linkward_push_retries_total.
 *
 * Threads: lw_push_new, lw_push_alert and lw_push_free on the loop; the
 * sender thread touches only its queue and its own curl handle; results come
 * back to the loop (h2o's multithread queue), which updates the store (on a
 * fiber with PostgreSQL). Secrets (auth secrets, keys) are never logged and
 * are wiped when a message is done.
 */
#ifndef LW_PUSH_H
#define LW_PUSH_H

#include <stdbool.h>

#include "webpush.h"

struct st_h2o_context_t;
struct lw_alert;
typedef struct lw_store lw_store;
typedef struct lw_fibers lw_fibers;
typedef struct lw_push lw_push;

#define LW_PUSH_QUEUE_MAX 256
#define LW_PUSH_TRIES 4          /* the first and three retries */
#define LW_PUSH_BACKOFF_MS 1000  /* before the first retry; doubled each time */
#define LW_PUSH_FAILURES_MAX 5   /* pushes in a row that failed: the subscription is deleted */
#define LW_PUSH_CONNECT_MS 5000  /* connecting (DNS, TCP, TLS) */
#define LW_PUSH_TIMEOUT_MS 15000 /* the whole request */
#define LW_PUSH_BODY_MAX 4096    /* the push service's answer, read and dropped */
#define LW_PUSH_TTL_S 86400      /* how long a push service keeps a message for an offline browser */
#define LW_PUSH_JWT_TTL_S (12 * 3600)
#define LW_PUSH_PAD_TO 128 /* every payload the same length: the kind does not show in the size */

typedef struct lw_push_opts {
    struct st_h2o_context_t *ctx; /* the loop results come back to */
    lw_store *store;
    lw_fibers *fibers;   /* PostgreSQL: the result's store update on a fiber; NULL: inline */
    lw_vapid *vapid;     /* taken: freed by lw_push_free */
    const char *contact; /* the VAPID sub (copied) */
    bool allow_loopback; /* --push-allow-loopback (tests) */
    /* Tests: the first retry's delay instead of LW_PUSH_BACKOFF_MS (0: default). */
    int backoff_ms;
} lw_push_opts;

/* libcurl's global set-up, once at start-up before any thread. */
void lw_push_global_init(void);
/* Starts the sender thread. NULL when out of memory or the thread cannot
 * start (the caller still owns opts->vapid then). */
lw_push *lw_push_new(const lw_push_opts *opts);
/* Stops the thread (a message on the wire is aborted: shutdown never waits on
 * a push service) and drops what is queued. NULL does nothing. */
void lw_push_free(lw_push *p);
/* The lw_alert_hook (deps.h): queues one message per subscription of the
 * alert's account. ctx is the lw_push. */
void lw_push_alert(void *ctx, const struct lw_alert *a);

#endif
