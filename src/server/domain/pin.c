#include "pin.h"

#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "alert.h"
#include "log.h"
#include "lw.h"
#include "map.h"
#include "metrics.h"
#include "work.h"

/* How much nicer than the process the PIN worker runs. */
#define LW_PIN_NICE 5

bool lw_pin_valid(const char *pin)
{
    if (!pin)
        return false;
    for (int i = 0; i < LW_PIN_DIGITS; i++)
        if (pin[i] < '0' || pin[i] > '9')
            return false;
    return pin[LW_PIN_DIGITS] == '\0';
}

int64_t lw_pin_lock_duration(int failures, int max_failures, int64_t base_ms)
{
    if (failures < max_failures || base_ms <= 0)
        return 0;
    int64_t d = base_ms;
    for (int i = max_failures; i < failures; i++) {
        if (d >= LW_PIN_LOCK_CAP_MS / 2)
            return LW_PIN_LOCK_CAP_MS;
        d *= 2;
    }
    return d < LW_PIN_LOCK_CAP_MS ? d : LW_PIN_LOCK_CAP_MS;
}

/* Milliseconds as whole seconds, rounded up (what a person is told to wait). */
static long long secs(int64_t ms)
{
    return ms <= 0 ? 0 : (long long)((ms + 999) / 1000);
}

long long lw_pin_locked_for(const lw_account *a, int64_t now)
{
    return a->pin_locked_until > now ? secs(a->pin_locked_until - now) : 0;
}

int lw_pin_inflight_cap(const lw_config *cfg, const lw_account *a)
{
    int left = cfg->pin_max_failures - a->pin_failures;
    if (left < 1)
        left = 1; /* past the limit each try locks again, one at a time */
    return left < 4 ? left : 4;
}

/* A wrong PIN: counts it into a (and the store), locks when due, raises the
 * alerts, and says what the holder is to be told. */
static void count_failure(const lw_domain_deps *deps, lw_account *a, const char *device_id, int64_t now,
                          lw_pin_outcome *out)
{
    const lw_config *cfg = deps->cfg;
    lw_metrics_inc("linkward_pin_failures_total", NULL);
    a->pin_failures++;
    int64_t lock = lw_pin_lock_duration(a->pin_failures, cfg->pin_max_failures, cfg->pin_lockout_ms);
    if (lock > 0)
        a->pin_locked_until = now + lock;
    int rc = lw_store_account_update(deps->store, a);
    if (rc != LW_OK)
        lw_log_error("pin", "cannot record a PIN failure: %s", lw_strerror(rc));
    int left = cfg->pin_max_failures - a->pin_failures;
    if (left < 0)
        left = 0;
    /* Ten wrong PINs in a row are one pin.failed alert counting them, not
     * ten; the first of a run (after a right PIN) starts a new one. */
    char text[LW_ALERT_TEXT_MAX];
    lw_alert_text_pin_failed(text, sizeof text, a->pin_failures, left);
    json_t *details = json_pack("{s:i, s:i}", "failures", a->pin_failures, "attempts_left", left);
    if (a->pin_failures == 1)
        lw_alert_raise(deps, a->id, "pin.failed", device_id, text, details);
    else
        lw_alert_raise_burst(deps, a->id, "pin.failed", device_id, text, details);
    out->verdict = LW_PIN_WRONG;
    out->attempts_left = left;
    if (lock <= 0)
        return;
    lw_alert_text_pin_locked(text, sizeof text, a->pin_failures, lock);
    lw_alert_raise_burst(
        deps, a->id, "pin.locked", device_id, text,
        json_pack("{s:I, s:i}", "locked_for_seconds", (json_int_t)secs(lock), "failures", a->pin_failures));
    out->verdict = LW_PIN_LOCKED;
    out->retry_after = lw_pin_locked_for(a, now);
}

lw_pin_outcome lw_pin_record(const lw_domain_deps *deps, const char *account_id, const char *device_id,
                             int verified, int64_t now)
{
    lw_pin_outcome out = {.verdict = LW_PIN_UNCHECKED};
    lw_account a;
    int rc = lw_store_account_get(deps->store, account_id, &a);
    if (rc != LW_OK) {
        out.verdict = LW_PIN_NO_ACCOUNT;
        out.rc = rc;
        return out;
    }
    if (verified == LW_OK) {
        if (a.pin_failures != 0 || a.pin_locked_until != 0) {
            a.pin_failures = 0;
            a.pin_locked_until = 0;
            lw_store_account_update(deps->store, &a);
        }
        out.verdict = LW_PIN_RIGHT;
    } else if (verified == LW_EDENIED) {
        count_failure(deps, &a, device_id, now, &out);
    }
    lw_wipe(&a, sizeof a);
    return out;
}

/* The pepper step: what Argon2id actually sees, as hex text. */
static void pepper(char out[2 * LW_HASH_LEN + 1], const uint8_t key[LW_KEY_LEN], const char *account_id,
                   const char *pin)
{
    uint8_t msg[LW_ID_STRLEN + 1 + 8], h[LW_HASH_LEN];
    size_t alen = strnlen(account_id, LW_ID_STRLEN);
    memcpy(msg, account_id, alen);
    msg[alen] = 0;
    memcpy(msg + alen + 1, pin, LW_PIN_DIGITS);
    lw_keyed_hash(h, key, msg, alen + 1 + LW_PIN_DIGITS);
    lw_hex_encode(out, h, sizeof h);
    lw_wipe(msg, sizeof msg);
    lw_wipe(h, sizeof h);
}

int lw_pin_hash(const uint8_t key[LW_KEY_LEN], const char *account_id, const char *pin, char out[128])
{
    if (!lw_pin_valid(pin))
        return LW_EINVAL;
    char p[2 * LW_HASH_LEN + 1];
    pepper(p, key, account_id, pin);
    int rc = crypto_pwhash_str(out, p, strlen(p), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                               crypto_pwhash_MEMLIMIT_INTERACTIVE) == 0
                 ? LW_OK
                 : LW_ENOMEM;
    lw_wipe(p, sizeof p);
    return rc;
}

int lw_pin_check(const uint8_t key[LW_KEY_LEN], const char *account_id, const char *pin, const char *hash)
{
    if (!lw_pin_valid(pin))
        return LW_EDENIED;
    char p[2 * LW_HASH_LEN + 1];
    pepper(p, key, account_id, pin);
    int rc = crypto_pwhash_str_verify(hash, p, strlen(p)) == 0 ? LW_OK : LW_EDENIED;
    lw_wipe(p, sizeof p);
    return rc;
}

typedef struct job {
    lw_pins *p;
    char account_id[LW_ID_STRLEN];
    char pin[LW_PIN_DIGITS + 1];
    char new_pin[LW_PIN_DIGITS + 1];
    bool check, make;
    char stored_hash[128];
    char new_hash[128];
    int verified;
    lw_pin_done done;
    void *arg;
} job;

struct lw_pins {
    lw_work *pool;
    lw_map *busy; /* account id -> number of jobs in flight, as a pointer-sized integer */
    uint8_t key[LW_KEY_LEN];
};

/* On a worker thread: only the job and the copied key are touched. */
static void run_job(void *arg)
{
    job *j = arg;
    j->verified = LW_OK;
    if (j->check)
        j->verified = lw_pin_check(j->p->key, j->account_id, j->pin, j->stored_hash);
    if (j->make && j->verified == LW_OK &&
        lw_pin_hash(j->p->key, j->account_id, j->new_pin, j->new_hash) != LW_OK)
        j->verified = LW_ENOMEM;
    lw_wipe(j->pin, sizeof j->pin);
    lw_wipe(j->new_pin, sizeof j->new_pin);
}

/* A job ends wiped, whether it ran or was dropped at shutdown. */
static void free_job(void *arg)
{
    job *j = arg;
    lw_wipe(j, sizeof *j);
    lw_free(j);
}

static void busy_add(lw_pins *p, const char *account_id, intptr_t delta)
{
    intptr_t n = (intptr_t)lw_map_get(p->busy, account_id) + delta;
    if (n <= 0)
        lw_map_del(p->busy, account_id);
    else if (lw_map_put(p->busy, account_id, (void *)n) != LW_OK)
        lw_log_warn("pin", "cannot count a PIN check in flight");
}

/* On the event loop: hand the result to its caller. */
static void job_done(void *arg)
{
    job *j = arg;
    busy_add(j->p, j->account_id, -1);
    j->done(j->arg, j->verified, j->make && j->verified == LW_OK ? j->new_hash : NULL);
    free_job(j);
}

lw_pins *lw_pins_new(const lw_domain_deps *deps, struct st_h2o_context_t *ctx, int workers)
{
    lw_pins *p = lw_calloc(1, sizeof *p);
    if (!p)
        return NULL;
    memcpy(p->key, deps->hash_key, sizeof p->key);
    /* Argon2id is deliberately slow, and the event loop answers everyone
     * else: where the two share a core, the loop should win it. A moderately
     * lower priority for these threads only (nice 5: about a quarter of a core
     * shared with the loop, not half); not SCHED_IDLE, which would starve
     * PIN checks whenever the machine is busy. */
    lw_work_opts opts = {
        .name = "lw-pin", .threads = workers < 1 ? 1 : workers, .nice = LW_PIN_NICE, .drop = free_job};
    p->busy = lw_map_new();
    p->pool = p->busy ? lw_work_new(ctx, &opts) : NULL;
    if (!p->pool) {
        lw_log_error("pin", "cannot start the PIN workers");
        lw_pins_free(p);
        return NULL;
    }
    return p;
}

void lw_pins_free(lw_pins *p)
{
    if (!p)
        return;
    lw_work_free(p->pool); /* first: queued jobs are wiped, running ones joined */
    lw_map_free(p->busy);
    lw_wipe(p->key, sizeof p->key);
    lw_free(p);
}

int lw_pins_submit(lw_pins *p, const char *account_id, const char *pin, const char *stored_hash,
                   const char *new_pin, int max_inflight, lw_pin_done done, void *arg)
{
    intptr_t inflight = (intptr_t)lw_map_get(p->busy, account_id);
    if (inflight >= max_inflight)
        return LW_ELIMIT;
    job *j = lw_calloc(1, sizeof *j);
    if (!j)
        return LW_ENOMEM;
    j->p = p;
    lw_strlcpy(j->account_id, account_id, sizeof j->account_id);
    if (pin) {
        j->check = true;
        lw_strlcpy(j->pin, pin, sizeof j->pin);
        lw_strlcpy(j->stored_hash, stored_hash ? stored_hash : "", sizeof j->stored_hash);
    }
    if (new_pin) {
        j->make = true;
        lw_strlcpy(j->new_pin, new_pin, sizeof j->new_pin);
    }
    j->done = done;
    j->arg = arg;
    if (lw_map_put(p->busy, j->account_id, (void *)(inflight + 1)) != LW_OK) {
        free_job(j);
        return LW_ENOMEM;
    }
    int rc = lw_work_submit(p->pool, run_job, job_done, j);
    if (rc != LW_OK) {
        busy_add(p, account_id, -1);
        free_job(j);
    }
    return rc;
}
