#include "place.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lw.h"

void lw_place_lookup(lw_app *app, const char *ip, lw_place *place, lw_netinfo *net)
{
    memset(place, 0, sizeof *place);
    if (net)
        memset(net, 0, sizeof *net);
    lw_strlcpy(place->ip, ip ? ip : "", sizeof place->ip);
    (void)app;
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
    double h = sin(dlat / 2) * sin(dlat / 2) + cos(a->lat * rad) * cos(b->lat * rad) * sin(dlon / 2) * sin(dlon / 2);
    return 2 * r * asin(fmin(1.0, sqrt(h)));
}
