#include "risk.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "alert.h"
#include "log.h"
#include "lw.h"

const char *lw_risk_name(lw_risk_level l)
{
    return l == LW_RISK_HIGH ? "high" : l == LW_RISK_MEDIUM ? "medium" : "low";
}

double lw_risk_speed_kmh(double km, int64_t ms)
{
    if (km <= 0)
        return 0;
    if (ms <= 0)
        return INFINITY;
    return km / ((double)ms / 3600000.0);
}

bool lw_risk_impossible(double km, int64_t ms, double max_kmh)
{
    /* Within the GeoIP noise (neighbouring cities, shared exits) nothing is
     * impossible: a move must also be a real distance. */
    return km >= 100 && lw_risk_speed_kmh(km, ms) > max_kmh;
}

static void reason(lw_risk *k, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void reason(lw_risk *k, const char *code, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_array_append_new(k->reasons, json_pack("{s:s, s:s}", "code", code, "message", msg));
}

double lw_risk_travel_km(const lw_place *from, const lw_place *to)
{
    double km = lw_place_distance_km(from, to);
    if (km < 0)
        return km;
    /* Each place is somewhere within its radius: two coarse places can be
     * much closer than their centres. Only what is left counts as travel. */
    return fmax(0.0, km - from->accuracy_km - to->accuracy_km);
}

void lw_risk_link(const lw_domain_deps *deps, const lw_link_request *r, const char *account_id,
                  const lw_place *primary_at, lw_risk *k)
{
    memset(k, 0, sizeof *k);
    k->reasons = json_array();
    k->distance_km = -1;
    lw_place_lookup(deps, r->place.ip, &k->place, &k->net);
    int medium = 0;
    bool high = false;

    if (k->net.anonymous) {
        k->anonymous = true;
        const char *what = k->net.tor       ? "the Tor network"
                           : k->net.vpn     ? "an anonymous VPN"
                           : k->net.hosting ? "a hosting provider"
                                            : "an anonymous proxy";
        reason(k, "anonymous_network", "The request comes through %s, which hides where it really is.", what);
        if (k->net.tor)
            high = true;
        else
            medium++;
    }
    /* One read for both rules: whether the account knows the country, and
     * where its primary is (two indexed queries, not its session lists). */
    lw_account_places known;
    if ((k->place.country[0] || k->place.has_loc) &&
        lw_store_account_places(deps->store, account_id, k->place.country, &known) == LW_OK) {
        /* The phone asking from that country right now makes it known. */
        bool primary_there =
            primary_at && k->place.country[0] && strcmp(primary_at->country, k->place.country) == 0;
        if (k->place.country[0] && !known.country_seen && known.any_country && !primary_there) {
            k->new_country = true;
            reason(k, "new_country", "This account has never been used from %s before.", k->place.country);
            medium++;
        }
        /* The primary's own request says where it is now; the stored place
         * may be a minute (or a flight) old. */
        const lw_place *primary = primary_at && primary_at->has_loc            ? primary_at
                                  : known.has_primary && known.primary.has_loc ? &known.primary
                                                                               : NULL;
        if (k->place.has_loc && primary) {
            k->distance_km = lw_place_distance_km(primary, &k->place);
            if (k->distance_km > deps->cfg->far_km) {
                k->far = true;
                reason(k, "far_from_primary", "The request is about %.0f km from your phone.",
                       k->distance_km);
                medium++;
            }
        }
    }
    k->level = high || medium >= 2 ? LW_RISK_HIGH : medium ? LW_RISK_MEDIUM : LW_RISK_LOW;
}

void lw_risk_clear(lw_risk *k)
{
    json_decref(k->reasons);
    k->reasons = NULL;
}

void lw_risk_link_alerts(const lw_domain_deps *deps, const lw_risk *k, const char *account_id,
                         const char *device_id, const char *device_name)
{
    char where[2 * LW_PLACE_MAX + 4];
    lw_place_describe(k->place.city, k->place.country, where, sizeof where);
    if (k->new_country)
        lw_alert_raise(
            deps, account_id, "link.new_country", device_id,
            "A device was linked from a country this account never used.",
            json_pack("{s:s, s:s, s:s}", "country", k->place.country, "place", where, "name", device_name));
    if (k->far)
        lw_alert_raise(deps, account_id, "link.far_from_primary", device_id,
                       "A device was linked far from your phone.",
                       json_pack("{s:f, s:s, s:s}", "distance_km", round(k->distance_km), "place", where,
                                 "name", device_name));
    if (k->anonymous)
        lw_alert_raise(deps, account_id, "link.anonymous_network", device_id,
                       "A device was linked through an anonymous network (VPN, Tor or hosting).",
                       json_pack("{s:s, s:b, s:b, s:b, s:s}", "network", k->net.network, "vpn", k->net.vpn,
                                 "tor", k->net.tor, "hosting", k->net.hosting, "name", device_name));
}

/* Whether a move alert of this kind may be raised now, and if so, notes it. */
static bool move_alert_due(const lw_domain_deps *deps, int64_t *last_at, int64_t now)
{
    int64_t every = deps->cfg->move_alert_interval_ms;
    if (last_at && every > 0 && *last_at != 0 && now - *last_at < every)
        return false;
    if (last_at)
        *last_at = now;
    return true;
}

void lw_risk_on_move(const lw_domain_deps *deps, const char *account_id, const char *device_id,
                     const lw_place *from, const lw_place *to, int64_t dt_ms, int64_t now,
                     lw_move_alerts *seen)
{
    double km = lw_place_distance_km(from, to), travel = lw_risk_travel_km(from, to);
    char a[2 * LW_PLACE_MAX + 4], b[2 * LW_PLACE_MAX + 4];
    lw_place_describe(from->city, from->country, a, sizeof a);
    lw_place_describe(to->city, to->country, b, sizeof b);
    if (travel >= 0 && lw_risk_impossible(travel, dt_ms, deps->cfg->travel_kmh)) {
        /* Throttled or not, an impossible move is not also a country change. */
        if (!move_alert_due(deps, seen ? &seen->impossible_at : NULL, now))
            return;
        double kmh = lw_risk_speed_kmh(travel, dt_ms);
        lw_alert_raise(deps, account_id, "session.impossible_travel", device_id,
                       "This session was used from two places too far apart for the time between them.",
                       json_pack("{s:s, s:s, s:s, s:s, s:f, s:I, s:f}", "from", a, "to", b, "from_ip",
                                 from->ip, "to_ip", to->ip, "distance_km", round(km), "seconds",
                                 (json_int_t)(dt_ms / 1000), "speed_kmh", isinf(kmh) ? -1.0 : round(kmh)));
        return;
    }
    if (from->country[0] && to->country[0] && strcmp(from->country, to->country) != 0 &&
        move_alert_due(deps, seen ? &seen->changed_at : NULL, now))
        lw_alert_raise(deps, account_id, "session.country_changed", device_id,
                       "This session is now used from another country.",
                       json_pack("{s:s, s:s, s:s, s:s}", "from", a, "to", b, "from_country", from->country,
                                 "to_country", to->country));
}

void lw_risk_link_completed(const lw_domain_deps *deps, const lw_risk *k, const lw_place *here,
                            const lw_netinfo *net, const char *account_id, const char *device_id,
                            const char *device_name, int64_t dt_ms, int64_t now)
{
    if (strcmp(k->place.ip, here->ip) == 0)
        return;
    /* The primary approved what it was shown: a request from k->place. The
     * credential went to `here`, so that hop is judged like any other move. */
    lw_risk_on_move(deps, account_id, device_id, &k->place, here, dt_ms, now, NULL);
    if (net->anonymous && !k->anonymous)
        lw_alert_raise(
            deps, account_id, "link.anonymous_network", device_id,
            "A device was linked through an anonymous network (VPN, Tor or hosting): it completed the "
            "link from another address than the one you approved.",
            json_pack("{s:s, s:b, s:b, s:b, s:s, s:s}", "network", net->network, "vpn", net->vpn, "tor",
                      net->tor, "hosting", net->hosting, "name", device_name, "ip", here->ip));
}
