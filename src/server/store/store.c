/*
 * store.c — picks a storage backend by the scheme of the location string and
 * forwards every lw_store_* call through its vtable. These wrappers are the
 * one place where timing, tracing or fault injection can attach later.
 */
#include <stdio.h>
#include <string.h>

#include "store.h"

#include <time.h>

#include "metrics.h"

/* Every store call is timed here, the one place all of them pass through. */
static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Reads and writes are timed alike; what they answer feeds the store's
 * health (note_result): writes are what a full or read-only disk refuses. */
#define TIMED_AS(write, call)                                                                                \
    do {                                                                                                     \
        int64_t t0_ = mono_ns();                                                                             \
        int rc_ = (call);                                                                                    \
        lw_metrics_observe(LW_HIST_STORE, (double)(mono_ns() - t0_) / 1e9);                                  \
        note_result(s, rc_, (write));                                                                        \
        return rc_;                                                                                          \
    } while (0)
#define TIMED(call) TIMED_AS(false, call)
#define TIMED_WRITE(call) TIMED_AS(true, call)

/* One JSON line on stderr; msg is a fixed string from this file, never data. */
static void store_log(const char *level, const char *msg)
{
    fprintf(stderr, "{\"level\":\"%s\",\"sub\":\"store\",\"msg\":\"%s\"}\n", level, msg);
}

static void store_log_error(const char *msg)
{
    store_log("error", msg);
}

/* ---- health ---------------------------------------------------------------- */

static void mark_unavailable(lw_store *s)
{
    if (!atomic_exchange(&s->unavailable, true)) {
        /* The failure is news enough: the first probe waits its interval. */
        atomic_store(&s->probed_at, (long long)lw_now_ms());
        store_log("warn", "the database stopped taking writes; requests that write answer 503 "
                          "store_unavailable and /v1/health answers 503 until a write succeeds");
    }
}

/* The write probe: one settings row, replaced with the time, committed.
 * Through the vtable, not a wrapper, so it does not feed note_result. */
static int probe(lw_store *s)
{
    int64_t now = lw_now_ms();
    char at[24];
    int n = snprintf(at, sizeof at, "%lld", (long long)now);
    if (n < 0 || (size_t)n >= sizeof at)
        return LW_EINVAL; /* cannot happen for a 64-bit number */
    atomic_store(&s->probed_at, (long long)now);
    int rc = s->ops->setting_put(s, LW_SETTING_WRITE_PROBE, at);
    if (rc == LW_OK) {
        if (atomic_exchange(&s->unavailable, false))
            store_log("info", "the database takes writes again");
    } else {
        mark_unavailable(s);
    }
    return rc;
}

static void note_result(lw_store *s, int rc, bool write)
{
    if (rc == LW_EUNAVAIL)
        mark_unavailable(s);
    else if (write && rc == LW_OK && atomic_load(&s->unavailable))
        (void)probe(s); /* confirms (and clears) with a write that certainly reached the disk */
}

int lw_store_check_writable(lw_store *s)
{
    return probe(s);
}

bool lw_store_writable(lw_store *s)
{
    if (!atomic_load(&s->unavailable))
        return true;
    if (lw_now_ms() - (int64_t)atomic_load(&s->probed_at) >= LW_STORE_PROBE_INTERVAL_MS)
        (void)probe(s);
    return !atomic_load(&s->unavailable);
}

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

int lw_store_open(lw_store **out, const char *location)
{
    if (out == NULL || location == NULL || location[0] == '\0') {
        store_log_error("no store location given");
        return LW_EINVAL;
    }
    /* The scheme decides; a URL never falls through to become a SQLite file name. */
    if (has_prefix(location, "postgres://") || has_prefix(location, "postgresql://"))
        return lw_store_pg_ops.open(out, location);
    return lw_store_sqlite_ops.open(out, location);
}

void lw_store_close(lw_store *s)
{
    if (s != NULL)
        s->ops->close(s);
}

int lw_store_account_create(lw_store *s, const lw_account *a, const lw_session *primary,
                            const uint8_t *invite_hash)
{
    TIMED_WRITE(s->ops->account_create(s, a, primary, invite_hash));
}

int lw_store_account_get(lw_store *s, const char *id, lw_account *out)
{
    TIMED(s->ops->account_get(s, id, out));
}

int lw_store_account_get_by_handle(lw_store *s, const char *handle, lw_account *out)
{
    TIMED(s->ops->account_get_by_handle(s, handle, out));
}

int lw_store_account_update(lw_store *s, const lw_account *a)
{
    TIMED_WRITE(s->ops->account_update(s, a));
}

int lw_store_account_replace_primary(lw_store *s, const char *account_id, const char *role,
                                     const char *reason, int64_t now, const lw_session *primary,
                                     const char *recovery_hash, lw_ended **out, size_t *n)
{
    TIMED_WRITE(
        s->ops->account_replace_primary(s, account_id, role, reason, now, primary, recovery_hash, out, n));
}

int lw_store_transfer_insert(lw_store *s, const lw_transfer *t)
{
    TIMED_WRITE(s->ops->transfer_insert(s, t));
}

int lw_store_transfer_get(lw_store *s, const char *id, lw_transfer *out)
{
    TIMED(s->ops->transfer_get(s, id, out));
}

int lw_store_transfer_get_by_code(lw_store *s, const uint8_t code_hash[LW_HASH_LEN], lw_transfer *out)
{
    TIMED(s->ops->transfer_get_by_code(s, code_hash, out));
}

int lw_store_transfer_approve(lw_store *s, const char *transfer_id, const char *account_id, int64_t now)
{
    TIMED_WRITE(s->ops->transfer_approve(s, transfer_id, account_id, now));
}

int lw_store_transfer_claim(lw_store *s, const char *transfer_id, const lw_session *primary,
                            const char *reason, int64_t now, lw_ended **out, size_t *n)
{
    TIMED_WRITE(s->ops->transfer_claim(s, transfer_id, primary, reason, now, out, n));
}

int lw_store_session_set_account_sig(lw_store *s, const char *account_id, const char *device_id,
                                     const uint8_t sig[LW_SIG_LEN])
{
    TIMED_WRITE(s->ops->session_set_account_sig(s, account_id, device_id, sig));
}

int lw_store_account_delete(lw_store *s, const char *account_id, lw_ended **out, size_t *n)
{
    TIMED_WRITE(s->ops->account_delete(s, account_id, out, n));
}

int lw_store_invite_create(lw_store *s, const uint8_t hash[LW_HASH_LEN], int64_t expires_at,
                           const char *handle)
{
    TIMED_WRITE(s->ops->invite_create(s, hash, expires_at, handle));
}

int lw_store_session_get(lw_store *s, const char *device_id, lw_session *out)
{
    TIMED(s->ops->session_get(s, device_id, out));
}

int lw_store_session_get_by_selector(lw_store *s, const char *selector, lw_session *out)
{
    TIMED(s->ops->session_get_by_selector(s, selector, out));
}

int lw_store_session_list(lw_store *s, const char *account_id, bool ended, lw_session **out, size_t *n)
{
    TIMED(s->ops->session_list(s, account_id, ended, out, n));
}

int lw_store_session_count_active_companions(lw_store *s, const char *account_id, const uint8_t *except_key,
                                             long *n)
{
    TIMED(s->ops->session_count_active_companions(s, account_id, except_key, n));
}

int lw_store_account_places(lw_store *s, const char *account_id, const char *country, lw_account_places *out)
{
    TIMED(s->ops->account_places(s, account_id, country, out));
}

int lw_store_session_set_credential(lw_store *s, const lw_session *sess)
{
    TIMED_WRITE(s->ops->session_set_credential(s, sess));
}

int lw_store_session_set_name(lw_store *s, const char *device_id, const char *name)
{
    TIMED_WRITE(s->ops->session_set_name(s, device_id, name));
}

int lw_store_session_touch(lw_store *s, const char *device_id, int64_t at, const lw_place *where)
{
    TIMED_WRITE(s->ops->session_touch(s, device_id, at, where));
}

int lw_store_session_end(lw_store *s, const char *device_id, const char *reason, int64_t now)
{
    TIMED_WRITE(s->ops->session_end(s, device_id, reason, now));
}

int lw_store_session_end_all(lw_store *s, const char *account_id, const char *role, const char *except,
                             const char *reason, int64_t now, lw_ended **out, size_t *n)
{
    TIMED_WRITE(s->ops->session_end_all(s, account_id, role, except, reason, now, out, n));
}

int lw_store_session_end_every(lw_store *s, const char *role, const char *reason, int64_t now, lw_ended **out,
                               size_t *n)
{
    TIMED_WRITE(s->ops->session_end_every(s, role, reason, now, out, n));
}

int lw_store_session_redact(lw_store *s, const char *device_id)
{
    TIMED_WRITE(s->ops->session_redact(s, device_id));
}

int lw_store_session_redact_ended(lw_store *s, long *n)
{
    TIMED_WRITE(s->ops->session_redact_ended(s, n));
}

int lw_store_session_delete_ended(lw_store *s, const char *account_id, const char *device_id, long *deleted)
{
    TIMED_WRITE(s->ops->session_delete_ended(s, account_id, device_id, deleted));
}

int lw_store_link_insert(lw_store *s, const lw_link_request *r)
{
    TIMED_WRITE(s->ops->link_insert(s, r));
}

int lw_store_link_get(lw_store *s, const char *id, lw_link_request *out)
{
    TIMED(s->ops->link_get(s, id, out));
}

int lw_store_link_get_by_selector(lw_store *s, const char *token_selector, lw_link_request *out)
{
    TIMED(s->ops->link_get_by_selector(s, token_selector, out));
}

int lw_store_link_get_by_ref(lw_store *s, const uint8_t ref_hash[LW_HASH_LEN], lw_link_request *out)
{
    TIMED(s->ops->link_get_by_ref(s, ref_hash, out));
}

int lw_store_link_get_by_code(lw_store *s, const uint8_t code_hash[LW_HASH_LEN], lw_link_request *out)
{
    TIMED(s->ops->link_get_by_code(s, code_hash, out));
}

int lw_store_link_set_ref(lw_store *s, const char *id, const uint8_t ref_hash[LW_HASH_LEN], int ref_index,
                          int64_t ref_expires_at)
{
    TIMED_WRITE(s->ops->link_set_ref(s, id, ref_hash, ref_index, ref_expires_at));
}

int lw_store_link_transition(lw_store *s, const lw_link_request *r, const char *from, const char *to)
{
    TIMED_WRITE(s->ops->link_transition(s, r, from, to));
}

static int link_complete(lw_store *s, const char *request_id, const lw_session *sess, long max_companions,
                         lw_ended **out, size_t *n)
{
    lw_ended *list = NULL;
    size_t count = 0;
    int rc = s->ops->link_complete(s, request_id, sess, max_companions, &list, &count);
    if (rc == LW_OK && out != NULL && n != NULL) {
        *out = list;
        *n = count;
    } else {
        lw_free(list);
    }
    return rc;
}

int lw_store_link_complete(lw_store *s, const char *request_id, const lw_session *sess, long max_companions,
                           lw_ended **out, size_t *n)
{
    TIMED_WRITE(link_complete(s, request_id, sess, max_companions, out, n));
}

int lw_store_link_purge(lw_store *s, int64_t before, long *deleted)
{
    TIMED_WRITE(s->ops->link_purge(s, before, deleted));
}

int lw_store_alert_insert(lw_store *s, const lw_alert *a)
{
    TIMED_WRITE(s->ops->alert_insert(s, a));
}

int lw_store_alert_list(lw_store *s, const char *account_id, int limit, lw_alert **out, size_t *n)
{
    TIMED(s->ops->alert_list(s, account_id, limit, out, n));
}

int lw_store_alert_raise(lw_store *s, const lw_alert *a, int64_t since, lw_alert *out)
{
    TIMED_WRITE(s->ops->alert_raise(s, a, since, out));
}

int lw_store_alert_get(lw_store *s, const char *account_id, const char *alert_id, lw_alert *out)
{
    TIMED(s->ops->alert_get(s, account_id, alert_id, out));
}

int lw_store_alert_ack(lw_store *s, const char *account_id, const char *alert_id, const char *answer,
                       const char *answered_by, int64_t now)
{
    TIMED_WRITE(s->ops->alert_ack(s, account_id, alert_id, answer, answered_by, now));
}

int lw_store_push_add(lw_store *s, const lw_push_sub *sub, long max_per_device, long max_per_account)
{
    TIMED_WRITE(s->ops->push_add(s, sub, max_per_device, max_per_account));
}

int lw_store_push_list(lw_store *s, const char *account_id, const char *device_id, lw_push_sub **out,
                       size_t *n)
{
    TIMED(s->ops->push_list(s, account_id, device_id, out, n));
}

int lw_store_push_delete(lw_store *s, const char *device_id, const char *endpoint)
{
    TIMED_WRITE(s->ops->push_delete(s, device_id, endpoint));
}

int lw_store_push_result(lw_store *s, const char *device_id, const char *endpoint, bool ok)
{
    TIMED_WRITE(s->ops->push_result(s, device_id, endpoint, ok));
}

int lw_store_sweep(lw_store *s, const lw_sweep_policy *p, lw_ended **out, size_t *n, long *purged)
{
    TIMED_WRITE(s->ops->sweep(s, p, out, n, purged));
}

int lw_store_get_stats(lw_store *s, lw_store_stats *out)
{
    TIMED(s->ops->stats(s, out));
}

/* Not TIMED: it runs on the control socket's backup thread (the histograms
 * belong to the loop), and a backup's seconds are not a store latency. */
int lw_store_changed_elsewhere(lw_store *s, bool *changed)
{
    *changed = false;
    return s->ops->changed_elsewhere ? s->ops->changed_elsewhere(s, changed) : LW_OK;
}

int lw_store_backup(lw_store *s, const char *path)
{
    return s->ops->backup(s, path);
}

int lw_store_setting_get(lw_store *s, const char *name, char *out, size_t cap)
{
    TIMED(s->ops->setting_get(s, name, out, cap));
}

int lw_store_setting_put(lw_store *s, const char *name, const char *value)
{
    TIMED_WRITE(s->ops->setting_put(s, name, value));
}
