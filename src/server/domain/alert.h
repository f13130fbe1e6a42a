/*
 * alert.h — security alerts: stored, then pushed live to every device of the
 * account. Kinds are "device.linked", "pin.failed", ... (docs/api.md).
 *
 * Every alert carries its sentence, details.message, written here by the
 * lw_alert_text_* builders or by the caller: what a person reads ("Wrong PIN
 * entered 3 times; 7 tries left."), never a dump of the details. A burst of
 * one kind about one device is one alert with a count (lw_alert_raise_burst).
 */
#ifndef LW_ALERT_H
#define LW_ALERT_H

#include <jansson.h>
#include <stddef.h>

#include "deps.h"
#include "store.h"

/* A burst: alerts of one kind about one device, each within this long of the
 * previous, while the holder has not answered. */
#define LW_ALERT_BURST_MS (10 * 60 * 1000)
/* device.ended names at most this many of the devices that ended together. */
#define LW_ALERT_NAMES_MAX 3
/* Room for any sentence of an alert (they are kept in details, 2 KiB). */
#define LW_ALERT_TEXT_MAX 512

/* Stores and publishes an alert. message is its sentence (copied into
 * details.message); details is a JSON object (stolen; NULL for {}). */
int lw_alert_raise(const lw_domain_deps *deps, const char *account_id, const char *kind,
                   const char *device_id, const char *message, json_t *details);
/* The same for kinds that come in bursts (wrong PINs, refused link attempts):
 * an unanswered alert of this kind about this device raised or updated in the
 * last LW_ALERT_BURST_MS counts this one in — its count goes up, its details
 * and sentence become these — and is pushed again with its own id, so a
 * client replaces it; otherwise a new alert. */
int lw_alert_raise_burst(const lw_domain_deps *deps, const char *account_id, const char *kind,
                         const char *device_id, const char *message, json_t *details);
/* The API form of an alert. */
json_t *lw_alert_json(const lw_alert *a);

/* The sentences. Each writes a whole sentence into out (at most cap bytes,
 * LW_ALERT_TEXT_MAX is always enough for names of LW_NAME_MAX) and returns
 * LW_OK; LW_ETOOBIG when it did not fit, with a shorter sentence written
 * (without the names) if cap allows, else "". */

/* "Wrong PIN entered 3 times; 7 tries left." ("once", "1 try left", "no tries left"). */
int lw_alert_text_pin_failed(char *out, size_t cap, int failures, int left);
/* "Too many wrong PINs (10 in a row): PIN entry is locked for 2 minutes." */
int lw_alert_text_pin_locked(char *out, size_t cap, int failures, int64_t lock_ms);
/* "45 seconds", "1 minute", "2 hours and 5 minutes", "3 days" (rounded up to the unit shown). */
int lw_alert_text_duration(char *out, size_t cap, int64_t ms);
/* device.ended, in the third person, so it reads right on the phone too:
 * "Chrome on Windows was logged out from your phone." or "3 devices were
 * logged out from your phone: A, B and C." (names: the first nnames of
 * count devices; more than are named: "A, B and 2 more"). A device without
 * a name is "A device". */
int lw_alert_text_ended(char *out, size_t cap, const char *reason, size_t count, const char *const *names,
                        size_t nnames);
/* token.theft_suspected: "Chrome on Windows presented its credential without
 * a valid signature by its device key (from 203.0.113.5), so it was logged out." */
int lw_alert_text_theft(char *out, size_t cap, const char *name, const char *ip, bool signature_present);
/* device.linked: "A new device was linked: Chrome on Windows, Lisbon, PT." (where may be ""). */
int lw_alert_text_linked(char *out, size_t cap, const char *name, const char *where);

#endif
