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
    lw_strlcpy(s->ip, p->ip, sizeof s->ip);
    lw_strlcpy(s->country, p->country, sizeof s->country);
    lw_strlcpy(s->region, p->region, sizeof s->region);
    lw_strlcpy(s->city, p->city, sizeof s->city);
    lw_strlcpy(s->network, p->network, sizeof s->network);
    s->lat = p->lat;
    s->lon = p->lon;
    s->has_loc = p->has_loc;
    lw_strlcpy(s->last_ip, p->ip, sizeof s->last_ip);
    lw_strlcpy(s->last_country, p->country, sizeof s->last_country);
    lw_strlcpy(s->last_region, p->region, sizeof s->last_region);
    lw_strlcpy(s->last_city, p->city, sizeof s->last_city);
    lw_strlcpy(s->last_network, p->network, sizeof s->last_network);
    s->last_lat = p->lat;
    s->last_lon = p->lon;
    s->last_has_loc = p->has_loc;
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
