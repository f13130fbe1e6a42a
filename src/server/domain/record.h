/*
 * record.h — the session record of PRODUCT.md §4 as the API and its events
 * (device.linked) show it: pure JSON of a stored session.
 */
#ifndef LW_RECORD_H
#define LW_RECORD_H

#include <jansson.h>

#include "store.h"

/* New JSON object for s; "current" is true when s is current_device. */
json_t *lw_record_json(const lw_session *s, const char *current_device);

#endif
