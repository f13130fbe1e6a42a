/*
 * risk.h — every abnormal-login rule in one place (PRODUCT.md §6): how risky
 * a link request looks, and which alerts a link or a move raises. Thresholds
 * come from the configuration (--far-km, --travel-kmh).
 */
#ifndef LW_RISK_H
#define LW_RISK_H

#include <jansson.h>

#include "app.h"
#include "place.h"
#include "store.h"

typedef enum { LW_RISK_LOW, LW_RISK_MEDIUM, LW_RISK_HIGH } lw_risk_level;

typedef struct lw_risk {
    lw_risk_level level;
    json_t *reasons;       /* array of {"code","message"}; owned: lw_risk_clear() */
    double distance_km;    /* from the primary's current place; < 0 when unknown */
    bool new_country;      /* the account has never been used from this country */
    bool far;              /* farther than cfg.far_km from the primary */
    bool anonymous;        /* VPN, Tor, hosting or anonymous proxy */
    lw_place place;        /* where the requester is */
    lw_netinfo net;
} lw_risk;

/* Assesses a link request of the account from its address. */
void lw_risk_link(lw_app *app, const lw_link_request *r, const char *account_id, lw_risk *out);
void lw_risk_clear(lw_risk *k);
const char *lw_risk_name(lw_risk_level l);

/* The alerts a completed link raises beyond device.linked. */
void lw_risk_link_alerts(lw_app *app, const lw_risk *k, const char *account_id, const char *device_id,
                         const char *device_name);

/* A session is used from a new place: raises session.impossible_travel when
 * the speed between the two uses exceeds cfg.travel_kmh, else
 * session.country_changed when the country differs. dt_ms is the time since
 * it was last used at `from`. */
void lw_risk_on_move(lw_app *app, const char *account_id, const char *device_id, const lw_place *from,
                     const lw_place *to, int64_t dt_ms);

/* Pure rule arithmetic, for tests. */
double lw_risk_speed_kmh(double km, int64_t ms);
bool lw_risk_impossible(double km, int64_t ms, double max_kmh);

#endif
