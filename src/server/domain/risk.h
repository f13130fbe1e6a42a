/*
 * risk.h — every abnormal-login rule in one place (PRODUCT.md §6): how risky
 * a link request looks, and which alerts a link or a move raises. Thresholds
 * come from the configuration (--far-km, --travel-kmh, --move-alert-interval).
 */
#ifndef LW_RISK_H
#define LW_RISK_H

#include <jansson.h>

#include "deps.h"
#include "place.h"
#include "store.h"

typedef enum { LW_RISK_LOW, LW_RISK_MEDIUM, LW_RISK_HIGH } lw_risk_level;

typedef struct lw_risk {
    lw_risk_level level;
    json_t *reasons;    /* array of {"code","message"}; owned: lw_risk_clear() */
    double distance_km; /* from the primary's current place; < 0 when unknown */
    bool new_country;   /* the account has never been used from this country */
    bool far;           /* farther than cfg.far_km from the primary */
    bool anonymous;     /* VPN, Tor, hosting or anonymous proxy */
    lw_place place;     /* where the requester is */
    lw_netinfo net;
} lw_risk;

/* Assesses a link request of the account from its address. primary_at is
 * where the primary is right now: the place of the request it is making (a
 * scan or an approval). NULL, or a place without coordinates, falls back to
 * the primary's stored place, which is written at most once a minute. */
void lw_risk_link(const lw_domain_deps *deps, const lw_link_request *r, const char *account_id,
                  const lw_place *primary_at, lw_risk *out);
void lw_risk_clear(lw_risk *k);
const char *lw_risk_name(lw_risk_level l);

/* The alerts a completed link raises beyond device.linked. */
void lw_risk_link_alerts(const lw_domain_deps *deps, const lw_risk *k, const char *account_id,
                         const char *device_id, const char *device_name);

/* When a device last raised each kind of move alert (0 = never): kept by the
 * caller per device, so a session flapping between two countries raises one
 * alert per cfg.move_alert_interval_ms and kind, not one per request. */
typedef struct lw_move_alerts {
    int64_t impossible_at, changed_at;
} lw_move_alerts;

/* A session is used from a new place: raises session.impossible_travel when
 * the speed between the two uses, after taking both places' accuracy radii
 * off the distance, exceeds cfg.travel_kmh; otherwise
 * session.country_changed when the country differs (an impossible move is
 * not also reported as a country change). dt_ms is the time since it was last
 * used at `from`. seen (may be NULL: no throttle) is the device's
 * lw_move_alerts; an alert of a kind raised less than
 * cfg.move_alert_interval_ms before now is not raised again. */
void lw_risk_on_move(const lw_domain_deps *deps, const char *account_id, const char *device_id,
                     const lw_place *from, const lw_place *to, int64_t dt_ms, int64_t now,
                     lw_move_alerts *seen);

/* A link completed from another address than the one that asked (and was
 * judged by k, what the primary approved): the move from the request's place
 * to here (lw_risk_on_move, dt_ms after the request), and an anonymous
 * network here that the request did not show raises link.anonymous_network. */
void lw_risk_link_completed(const lw_domain_deps *deps, const lw_risk *k, const lw_place *here,
                            const lw_netinfo *net, const char *account_id, const char *device_id,
                            const char *device_name, int64_t dt_ms, int64_t now);

/* Pure rule arithmetic, for tests. */
double lw_risk_speed_kmh(double km, int64_t ms);
bool lw_risk_impossible(double km, int64_t ms, double max_kmh);
/* The distance a move certainly covered: great-circle distance less both
 * accuracy radii (never below 0); negative when either has no coordinates. */
double lw_risk_travel_km(const lw_place *from, const lw_place *to);

#endif
