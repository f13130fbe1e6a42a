/*
 * pin.h — the two-step verification PIN (PRODUCT.md §5).
 *
 * PINs are 6 digits. The store keeps crypto_pwhash_str (Argon2id) of a
 * peppered PIN: BLAKE2b keyed with the server's hash key over the account id
 * and the PIN, so a copy of the database alone cannot be brute-forced over the
 * 10^6 possible PINs. Argon2id is deliberately slow, so hashing and checking
 * run on worker threads; results come back to the event loop through h2o's
 * multithread queue. Checks in flight per account are capped by the caller
 * at the attempts left before a lockout, so parallel guesses cannot outrun the
 * failure counter.
 */
#ifndef LW_PIN_H
#define LW_PIN_H

#include <stdbool.h>
#include <stdint.h>

#include "deps.h"
#include "store.h"

#define LW_PIN_DIGITS 6

/* True for exactly six ASCII digits. */
bool lw_pin_valid(const char *pin);

/* Lockout after `failures` consecutive wrong PINs: 0 while failures < max;
 * then base, doubling with each further failure (base * 2^(failures - max)),
 * capped at LW_PIN_LOCK_CAP_MS. */
#define LW_PIN_LOCK_CAP_MS (24LL * 3600 * 1000)
int64_t lw_pin_lock_duration(int failures, int max_failures, int64_t base_ms);

/* The lockout rule (PRODUCT.md §5): at most cfg->pin_max_failures wrong PINs
 * in a row, then a lockout (lw_pin_lock_duration) that each further wrong PIN
 * starts again, longer; a right PIN resets the count. */

/* Seconds (rounded up) a's PIN entry is still locked at now; 0 when it is
 * not locked. Pure: reads only a. */
long long lw_pin_locked_for(const lw_account *a, int64_t now);

/* How many checks may run at once for a: never more than the attempts left
 * before a lockout (at least 1, at most 4), so parallel guesses cannot outrun
 * the failure counter. Pure. */
int lw_pin_inflight_cap(const lw_config *cfg, const lw_account *a);

typedef enum lw_pin_verdict {
    LW_PIN_RIGHT,     /* the PIN matched; the count is reset */
    LW_PIN_WRONG,     /* counted; attempts_left before a lockout */
    LW_PIN_LOCKED,    /* counted, and entry is now locked for retry_after seconds */
    LW_PIN_UNCHECKED, /* the check itself failed (not a wrong PIN): nothing counted */
    LW_PIN_NO_ACCOUNT /* the account could not be loaded: rc */
} lw_pin_verdict;

typedef struct lw_pin_outcome {
    lw_pin_verdict verdict;
    int attempts_left;     /* LW_PIN_WRONG, LW_PIN_LOCKED: 0 and up */
    long long retry_after; /* LW_PIN_LOCKED: seconds, rounded up */
    int rc;                /* LW_PIN_NO_ACCOUNT: the store's error */
} lw_pin_outcome;

/* Records the result of a finished check of account_id's PIN, made from
 * device_id: verified is what lw_pin_done got. A right PIN resets the failure
 * count; a wrong one is counted in the store (a failed write is logged: the
 * answer is a refusal either way), locks entry when due from now, and raises
 * pin.failed (the first of a run a new alert, the others counted into it) and,
 * when locking, pin.locked through deps. Called even when the client went
 * away, so disconnecting cannot dodge the counter. */
lw_pin_outcome lw_pin_record(const lw_domain_deps *deps, const char *account_id, const char *device_id,
                             int verified, int64_t now);

/* Called on the event loop when a job is done. verified: LW_OK (matches),
 * LW_EDENIED (wrong PIN), or another code on internal failure; new_hash is the
 * hash of new_pin when one was asked for (else NULL). */
typedef void (*lw_pin_done)(void *arg, int verified, const char *new_hash);

struct st_h2o_context_t;
lw_pins *lw_pins_new(const lw_domain_deps *deps, struct st_h2o_context_t *ctx, int workers);
void lw_pins_free(lw_pins *p);

/* Starts a job for account_id: checks pin against stored_hash (when pin is not
 * NULL) and/or hashes new_pin (when not NULL; only if the check passed).
 * LW_ELIMIT if max_inflight jobs for the account are already running. The PIN
 * strings are copied and wiped after use. */
int lw_pins_submit(lw_pins *p, const char *account_id, const char *pin, const char *stored_hash,
                   const char *new_pin, int max_inflight, lw_pin_done done, void *arg);

/* Synchronous versions for tests and tools (they block). */
int lw_pin_hash(const uint8_t key[LW_KEY_LEN], const char *account_id, const char *pin, char out[128]);
int lw_pin_check(const uint8_t key[LW_KEY_LEN], const char *account_id, const char *pin, const char *hash);

#endif
