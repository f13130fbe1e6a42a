/*
 * recovery.h — the recovery key ("I lost my phone") and the replacement of an
 * account's primary ("I lost my phone", "Move to a new phone").
 *
 * A recovery key is LW_RECOVERY_KEY_LEN random bytes (160 bits) made by the
 * server at registration and shown once, as 8 groups of 4 RFC 4648 base32
 * letters ("ABCD-EFGH-..."). The store keeps only its verifier: BLAKE2b keyed
 * with the server's hash key over a domain tag, the account id and the key,
 * in hex; checks compare in constant time (docs/security.md, "Recovery key").
 */
#ifndef LW_RECOVERY_H
#define LW_RECOVERY_H

#include <stdbool.h>
#include <stdint.h>

#include "deps.h"
#include "store.h"

#define LW_RECOVERY_KEY_LEN 20 /* bytes: 160 bits */
#define LW_RECOVERY_GROUPS 8   /* of LW_RECOVERY_GROUP letters */
#define LW_RECOVERY_GROUP 4
#define LW_RECOVERY_TEXT_MAX 40  /* 32 letters, 7 dashes, NUL */
#define LW_RECOVERY_INPUT_MAX 64 /* what a person may type (spaces, dashes) */

/* End reasons of the replaced sessions. */
#define LW_END_RECOVERED "recovered"
#define LW_END_MOVED "moved"

/* A fresh key: raw bytes and their grouped text. */
void lw_recovery_generate(uint8_t raw[LW_RECOVERY_KEY_LEN], char text[LW_RECOVERY_TEXT_MAX]);

/* The grouped text of raw. */
void lw_recovery_format(const uint8_t raw[LW_RECOVERY_KEY_LEN], char text[LW_RECOVERY_TEXT_MAX]);

/* Parses what a person typed: base32 letters in either case, with any spaces
 * or dashes between them; 0 and 1 are read as O and I (never in the
 * alphabet). LW_EINVAL unless exactly 32 letters remain. */
int lw_recovery_parse(const char *in, uint8_t raw[LW_RECOVERY_KEY_LEN]);

/* The verifier the store keeps for account_id's key raw. */
void lw_recovery_hash(const uint8_t key[LW_KEY_LEN], const char *account_id,
                      const uint8_t raw[LW_RECOVERY_KEY_LEN], char out[LW_RECOVERY_HASH_MAX]);

/* True when raw is account_id's key for stored (its verifier). Takes the
 * same time whatever matches, and for an empty stored (no key, or no
 * account: the caller passes "" then) it still hashes, and says false. */
bool lw_recovery_check(const uint8_t key[LW_KEY_LEN], const char *account_id,
                       const uint8_t raw[LW_RECOVERY_KEY_LEN], const char *stored);

/* Gives account_id a new primary, primary (its credential already prepared
 * with lw_sessions_prepare; the caller caches it after): in one store
 * transaction every active session of role (NULL: every role) ends with
 * reason and, when new_hash is not NULL, the recovery verifier becomes it;
 * then the devices that ended are told through lw_sessions_end_where
 * (LW_END_TOLD; deps->sessions may be NULL in a test without a loop) and,
 * with alert_text (its sentence; NULL: none), an account.recovered alert is
 * raised for the account. *ended
 * (may be NULL) gets how many sessions ended. LW_ENOTFOUND when there is no
 * such account. */
int lw_recovery_replace(const lw_domain_deps *deps, const char *account_id, const char *role,
                        const char *reason, const lw_session *primary, const char *new_hash,
                        const char *alert_text, size_t *ended);

/* "Move to a new phone": the approved transfer_id becomes claimed by the new
 * primary (its credential prepared; the caller caches it after); in the
 * same store transaction the old primary ends with LW_END_MOVED (its
 * companions stay linked); then the old primary is told through
 * lw_sessions_end_where (LW_END_TOLD) and an account.moved alert is raised.
 * LW_ECONFLICT when the transfer is not approved for primary's account or
 * has expired. */
int lw_recovery_claim(const lw_domain_deps *deps, const char *transfer_id, const lw_session *primary,
                      size_t *ended);

#endif
