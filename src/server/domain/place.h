/*
 * place.h — where an address is, for records, risk and alerts: one call over
 * GeoIP (geo.c) that fills the store's lw_place and what we show of the
 * network. Without databases every field stays empty, never wrong.
 */
#ifndef LW_PLACE_H
#define LW_PLACE_H

#include <stdbool.h>

#include "deps.h"
#include "store.h"

typedef struct lw_netinfo {
    char network[LW_NETWORK_MAX]; /* "Cable/DSL · AS64500 Lisbon Fibre" */
    bool anonymous;               /* any of the below, or an anonymous proxy */
    bool vpn, tor, hosting, proxy;
} lw_netinfo;

/* Fills place (always its ip) and, when net is not NULL, the network. */
void lw_place_lookup(const lw_domain_deps *deps, const char *ip, lw_place *place, lw_netinfo *net);
/* A new session is first and last seen at p: address, place, network, coordinates. */
void lw_place_seen_first(const lw_place *p, lw_session *s);
/* "Lisbon, PT", "PT" or "" */
void lw_place_describe(const char *city, const char *country, char *dst, size_t cap);
/* Great-circle distance; negative when either side has no coordinates. */
double lw_place_distance_km(const lw_place *a, const lw_place *b);

#endif
