/*
 * geo.h — GeoIP: where an address is and over which network, from MaxMind-format
 * databases read with libmaxminddb.
 *
 * The databases are found in one directory (--geoip-dir): any subset of a City or
 * Country database (GeoIP2/GeoLite2 layout, or the flat {"country_code": "PT"}
 * layout of @ip-location-db), ASN, Connection-Type and Anonymous-IP. Files are
 * recognised by their metadata database_type, not by name. Without a database a
 * field stays empty: the answers are incomplete, never wrong.
 *
 * Not thread-safe: the server uses it from its event loop. A lookup allocates
 * nothing; strings are copied into the fixed buffers of lw_geo_info.
 */
#ifndef LW_GEO_H
#define LW_GEO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lw_geo lw_geo;

/* Bounds of the lw_geo_info strings, NUL included. A database string that does
 * not fit (or is not clean UTF-8) leaves its field empty rather than cut. */
#define LW_GEO_NAME_MAX 128                    /* country_name, region, city */
#define LW_GEO_ORG_MAX 128                     /* as_org */
#define LW_GEO_CONN_MAX 32                     /* connection_type */
#define LW_GEO_NETWORK_MAX 128                 /* network: at most 127 bytes of text */
#define LW_GEO_PLACE_MAX (LW_GEO_NAME_MAX + 8) /* enough for lw_geo_describe_place */

typedef struct lw_geo_info {
    char country[3];                    /* ISO 3166-1 alpha-2, "PT" */
    char country_name[LW_GEO_NAME_MAX]; /* English, "Portugal" */
    char region[LW_GEO_NAME_MAX];       /* first (largest) subdivision, English */
    char city[LW_GEO_NAME_MAX];         /* English */
    bool has_location;                  /* latitude/longitude are meaningful */
    double latitude, longitude;         /* degrees, rounded to the accuracy (see lw_geo_lookup) */
    uint32_t accuracy_radius_km;        /* as the database says; 0 = unknown */
    uint32_t asn;                       /* 0 = unknown */
    char as_org[LW_GEO_ORG_MAX];
    char connection_type[LW_GEO_CONN_MAX]; /* "Cable/DSL", "Cellular", "Corporate", "Satellite", "Dialup" */
    bool anonymous;                        /* any of the flags below, or the database's is_anonymous */
    bool vpn, tor, hosting, public_proxy, residential_proxy;
    /* Ready-made human summary: anonymity, connection type, "AS<n> <org>", joined
     * with " · ", e.g. "Cable/DSL · AS64500 Lisbon Fibre",
     * "Anonymous VPN · Hosting · Corporate · AS64502 Polder Hosting". "" if nothing is known. */
    char network[LW_GEO_NETWORK_MAX];
} lw_geo_info;

/* Loads the databases found in dir (not recursively). A missing or empty dir, or
 * dir == NULL, gives a valid lw_geo that answers empty fields; unreadable or
 * unrecognised files are logged and skipped. Returns NULL only when out of
 * memory. The caller owns the result (lw_geo_close). */
lw_geo *lw_geo_open(const char *dir);

/* Re-reads dir into a new lw_geo and, only if that fully succeeds, closes *g and
 * replaces it; otherwise *g is left as it was (for SIGHUP: a database being
 * copied in must not take the old ones away). Fails with LW_ENOTFOUND when dir
 * does not exist, LW_EIO when a .mmdb in it cannot be opened, LW_ENOMEM. An
 * existing dir without databases succeeds and empties the set. */
int lw_geo_reload(lw_geo **g, const char *dir);

void lw_geo_close(lw_geo *g);

/* Number of databases in use (0..8), for logs and tests. */
size_t lw_geo_count(const lw_geo *g);

/* Fills out for the address ip_text (IPv4 or IPv6 text; IPv4-mapped and NAT64
 * addresses are looked up as their IPv4 address). out is always cleared first.
 * Private, loopback, link-local, multicast and other non-public addresses, and
 * text that is not an address, give empty fields. g may be NULL (no databases).
 *
 * Privacy: coordinates are rounded to what the database can vouch for, from
 * its accuracy radius: the grid step (1, 0.1, 0.01, 0.001 degrees: about 111,
 * 11, 1.1, 0.11 km) is the coarsest one not larger than the radius: >= 112 km
 * -> 0 decimals, >= 12 km -> 1, >= 2 km -> 2, 1 km -> 3; unknown -> 1.
 *
 * Returns LW_OK (a database read error is logged and leaves that database's
 * fields empty), or LW_EINVAL when out is NULL. */
int lw_geo_lookup(const lw_geo *g, const char *ip_text, lw_geo_info *out);

/* "Lisbon, PT", or "PT" without a city (the region stands in for a missing
 * city), or "" when the country is unknown. Returns LW_OK, or LW_ETOOBIG
 * (buf left empty) when cap is too small; LW_GEO_PLACE_MAX always suffices. */
int lw_geo_describe_place(const lw_geo_info *info, char *buf, size_t cap);

/* Great-circle distance in km between two points in degrees (haversine on a
 * sphere of the mean Earth radius, 6371.0088 km). NAN if an input is not finite. */
double lw_geo_distance_km(double lat1, double lon1, double lat2, double lon2);

/* Speed in km/h of covering km in ms milliseconds. ms <= 0 gives INFINITY when
 * km > 0 (two places at once) and 0 otherwise; km <= 0 or NaN gives 0. */
double lw_geo_speed_kmh(double km, int64_t ms);

#endif
