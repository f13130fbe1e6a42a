#include "place.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "geo.h"
#include "lw.h"

void lw_place_lookup(const lw_domain_deps *deps, const char *ip, lw_place *place, lw_netinfo *net)
{
    memset(place, 0, sizeof *place);
    if (net)
        memset(net, 0, sizeof *net);
    lw_strlcpy(place->ip, ip ? ip : "", sizeof place->ip);
    if (!deps->geo || !ip || !ip[0])
        return;
    lw_geo_info g;
    if (lw_geo_lookup(deps->geo, ip, &g) != LW_OK)
        return;
    lw_strlcpy(place->country, g.country, sizeof place->country);
    if (!deps->cfg->privacy_country_only) {
        lw_strlcpy(place->region, g.region, sizeof place->region);
        lw_strlcpy(place->city, g.city, sizeof place->city);
    }
    /* Coordinates are kept even in country-only mode while the session is
     * live (risk needs them); ended records are redacted. */
    place->has_loc = g.has_location;
    place->lat = g.latitude;
    place->lon = g.longitude;
    place->accuracy_km = g.has_location ? g.accuracy_radius_km : 0;
    lw_strlcpy(place->network, g.network, sizeof place->network);
    if (net) {
        lw_strlcpy(net->network, g.network, sizeof net->network);
        net->anonymous = g.anonymous;
        net->vpn = g.vpn;
        net->tor = g.tor;
        net->hosting = g.hosting;
        net->proxy = g.public_proxy || g.residential_proxy;
    }
}

void lw_place_seen_first(const lw_place *p, lw_session *s)
{
    s->first = *p;
    s->last = *p;
}

void lw_place_describe(const char *city, const char *country, char *dst, size_t cap)
{
    snprintf(dst, cap, "%s%s%s", city, city[0] && country[0] ? ", " : "", country);
}

double lw_place_distance_km(const lw_place *a, const lw_place *b)
{
    if (!a->has_loc || !b->has_loc)
        return -1;
    const double r = 6371.0088, rad = M_PI / 180.0;
    double dlat = (b->lat - a->lat) * rad, dlon = (b->lon - a->lon) * rad;
    double h =
        sin(dlat / 2) * sin(dlat / 2) + cos(a->lat * rad) * cos(b->lat * rad) * sin(dlon / 2) * sin(dlon / 2);
    return 2 * r * asin(fmin(1.0, sqrt(h)));
}
