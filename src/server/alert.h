/*
 * alert.h — security alerts: stored, then pushed live to every device of the
 * account. Kinds are PRODUCT.md §6's ("device.linked", "pin.failed", ...).
 */
#ifndef LW_ALERT_H
#define LW_ALERT_H

#include <jansson.h>

#include "app.h"
#include "store.h"

/* Stores and publishes an alert. details is a JSON object (stolen; NULL for {}). */
int lw_alert_raise(lw_app *app, const char *account_id, const char *kind, const char *device_id,
                   json_t *details);
/* The API form of an alert. */
json_t *lw_alert_json(const lw_alert *a);

#endif
