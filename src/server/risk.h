/*
 * risk.h — how risky a link request looks (low / medium / high, with
 * reasons). The GeoIP-based signals (new country, far from the phone,
 * anonymous network) arrive with the GeoIP work; the interface is final.
 */
#ifndef LW_RISK_H
#define LW_RISK_H

#include <jansson.h>

#include "app.h"
#include "store.h"

typedef enum { LW_RISK_LOW, LW_RISK_MEDIUM, LW_RISK_HIGH } lw_risk_level;

/* Assesses r for the account; returns the level and sets *reasons to a new
 * JSON array of {"code","message"} objects. */
lw_risk_level lw_risk_assess(lw_app *app, const lw_link_request *r, const lw_account *a, json_t **reasons);
const char *lw_risk_name(lw_risk_level l);

#endif
