/*
 * Unit tests for geo.c: lookups in the generated test world (tests/tools/make_geoip.pl),
 * both location layouts, classification by metadata, missing databases, addresses
 * with nothing to look up, reload, and the distance/speed arithmetic.
 *
 * The databases come from LINKWARD_GEOIP_TEST_DIR (the CTest fixture); run alone,
 * the test builds them itself in a temporary directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "geo_world.h"

#include "geo.h"
#include "lw.h"

#define assert_near(a, b, eps) assert_true(fabs((double)(a) - (double)(b)) <= (eps))

/* ---- scaffolding ---- */

static int copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int rc = in >= 0 && out >= 0 ? 0 : -1;
    char buf[8192];
    ssize_t n;
    while (rc == 0 && (n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t)n) != n)
            rc = -1;
    if (in >= 0)
        close(in);
    if (out >= 0 && close(out) != 0)
        rc = -1;
    return rc;
}

/* Copies world/<name> (a path relative to the world) to dir/<as>. */
static void put(const char *dir, const char *name, const char *as)
{
    char from[2048], to[2048];
    snprintf(from, sizeof from, "%s/%s", world, name);
    snprintf(to, sizeof to, "%s/%s", dir, as);
    assert_int_equal(copy_file(from, to), 0);
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void unlink_in(const char *dir, const char *name)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(unlink(path), 0);
}

static void scratch(char dir[64])
{
    snprintf(dir, 64, "/tmp/lw-geo-test-XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static void sub(char *dst, size_t cap, const char *name)
{
    int n = snprintf(dst, cap, "%s/%s", world, name);
    assert_true(n > 0 && (size_t)n < cap);
}

/* ---- the world ---- */

struct expect {
    const char *ip;
    const char *country, *country_name, *region, *city;
    bool has_location;
    double lat, lon;
    uint32_t accuracy;
    uint32_t asn;
    const char *org, *conn;
    bool anonymous, vpn, tor, hosting, public_proxy, residential_proxy;
    const char *network, *place;
};

/* clang-format off */
static const struct expect WORLD[] = {
    {"198.51.100.10", "PT", "Portugal", "Lisbon", "Lisbon", true, 38.7, -9.1, 20, 64500, "Lisbon Fibre",
     "Cable/DSL", false, false, false, false, false, false, "Cable/DSL · AS64500 Lisbon Fibre", "Lisbon, PT"},
    {"198.51.100.70", "PT", "Portugal", "Porto", "Porto", true, 41.1, -8.6, 20, 64500, "Lisbon Fibre",
     "Cable/DSL", false, false, false, false, false, false, "Cable/DSL · AS64500 Lisbon Fibre", "Porto, PT"},
    {"198.51.100.130", "ES", "Spain", "Madrid", "Madrid", true, 40.4, -3.7, 50, 64503, "Meseta Telecom",
     "Cable/DSL", false, false, false, false, false, false, "Cable/DSL · AS64503 Meseta Telecom", "Madrid, ES"},
    {"198.51.100.200", "FR", "France", "", "", false, 0, 0, 0, 0, "", "", false, false, false, false, false,
     false, "", "FR"},
    {"203.0.113.5", "AU", "Australia", "New South Wales", "Sydney", true, -33.9, 151.2, 100, 64501,
     "Southern Mobile", "Cellular", false, false, false, false, false, false,
     "Cellular · AS64501 Southern Mobile", "Sydney, AU"},
    {"203.0.113.70", "US", "United States", "New York", "New York", true, 40.71, -74.01, 5, 64504,
     "Hudson Corp", "Corporate", false, false, false, false, false, false, "Corporate · AS64504 Hudson Corp",
     "New York, US"},
    {"192.0.2.1", "NL", "Netherlands", "North Holland", "Amsterdam", true, 52.4, 4.9, 50, 64502,
     "Polder Hosting", "Corporate", true, true, false, true, false, false,
     "Anonymous VPN · Hosting · Corporate · AS64502 Polder Hosting", "Amsterdam, NL"},
    {"192.0.2.65", "DE", "Germany", "Hesse", "Frankfurt am Main", true, 50.1, 8.7, 100, 64505,
     "Main Relay Association", "Corporate", true, false, true, false, false, false,
     "Tor exit · Corporate · AS64505 Main Relay Association", "Frankfurt am Main, DE"},
    {"192.0.2.130", "BR", "Brazil", "São Paulo", "São Paulo", true, -24, -47, 500, 64506,
     "Cruzeiro Satélite", "Satellite", true, false, false, false, true, true,
     "Public proxy · Residential proxy · Satellite · AS64506 Cruzeiro Satélite", "São Paulo, BR"},
    {"2001:db8::1", "DE", "Germany", "Berlin", "Berlin", true, 52.52, 13.41, 10, 64507, "Spree Kabel",
     "Cable/DSL", false, false, false, false, false, false, "Cable/DSL · AS64507 Spree Kabel", "Berlin, DE"},
    {"2001:db8:0:ffff::42", "DE", "Germany", "Berlin", "Berlin", true, 52.52, 13.41, 10, 64507, "Spree Kabel",
     "Cable/DSL", false, false, false, false, false, false, "Cable/DSL · AS64507 Spree Kabel", "Berlin, DE"},
    /* IPv4-mapped and NAT64 forms of a Lisbon address */
    {"::ffff:198.51.100.10", "PT", "Portugal", "Lisbon", "Lisbon", true, 38.7, -9.1, 20, 64500,
     "Lisbon Fibre", "Cable/DSL", false, false, false, false, false, false, "Cable/DSL · AS64500 Lisbon Fibre",
     "Lisbon, PT"},
    {"64:ff9b::c633:640a", "PT", "Portugal", "Lisbon", "Lisbon", true, 38.7, -9.1, 20, 64500, "Lisbon Fibre",
     "Cable/DSL", false, false, false, false, false, false, "Cable/DSL · AS64500 Lisbon Fibre", "Lisbon, PT"},
    /* public, but in no database */
    {"203.0.113.200", "", "", "", "", false, 0, 0, 0, 0, "", "", false, false, false, false, false, false, "", ""},
    {"2001:db8:1::1", "", "", "", "", false, 0, 0, 0, 0, "", "", false, false, false, false, false, false, "", ""},
    {"8.8.8.8", "", "", "", "", false, 0, 0, 0, 0, "", "", false, false, false, false, false, false, "", ""},
};
/* clang-format on */

static void check(const lw_geo *g, const struct expect *x)
{
    lw_geo_info info;
    print_message("  %s\n", x->ip);
    assert_int_equal(lw_geo_lookup(g, x->ip, &info), LW_OK);
    assert_string_equal(info.country, x->country);
    assert_string_equal(info.country_name, x->country_name);
    assert_string_equal(info.region, x->region);
    assert_string_equal(info.city, x->city);
    assert_int_equal(info.has_location, x->has_location);
    /* Rounded values are the nearest doubles to the decimals: equal within 1e-9. */
    assert_near(info.latitude, x->lat, 1e-9);
    assert_near(info.longitude, x->lon, 1e-9);
    assert_int_equal(info.accuracy_radius_km, x->accuracy);
    assert_int_equal(info.asn, x->asn);
    assert_string_equal(info.as_org, x->org);
    assert_string_equal(info.connection_type, x->conn);
    assert_int_equal(info.anonymous, x->anonymous);
    assert_int_equal(info.vpn, x->vpn);
    assert_int_equal(info.tor, x->tor);
    assert_int_equal(info.hosting, x->hosting);
    assert_int_equal(info.public_proxy, x->public_proxy);
    assert_int_equal(info.residential_proxy, x->residential_proxy);
    assert_string_equal(info.network, x->network);
    assert_true(strlen(info.network) < LW_GEO_NETWORK_MAX);
    char place[LW_GEO_PLACE_MAX];
    assert_int_equal(lw_geo_describe_place(&info, place, sizeof place), LW_OK);
    assert_string_equal(place, x->place);
}

static void test_world(void **state)
{
    (void)state;
    lw_geo *g = lw_geo_open(world);
    assert_non_null(g);
    assert_int_equal(lw_geo_count(g), 4); /* the subfolders are not read */
    for (size_t i = 0; i < sizeof WORLD / sizeof WORLD[0]; i++)
        check(g, &WORLD[i]);
    lw_geo_close(g);
}

static void test_lisbon_in_english(void **state)
{
    (void)state;
    lw_geo *g = lw_geo_open(world);
    lw_geo_info info;
    assert_int_equal(lw_geo_lookup(g, "198.51.100.63", &info), LW_OK); /* last of the /26 */
    assert_string_equal(info.city, "Lisbon");                          /* not "Lisboa" */
    assert_int_equal(lw_geo_lookup(g, "198.51.100.64", &info), LW_OK); /* first of the next */
    assert_string_equal(info.city, "Porto");
    lw_geo_close(g);
}

static void test_country_only_layout(void **state)
{
    (void)state;
    char dir[1200];
    sub(dir, sizeof dir, "country-only");
    lw_geo *g = lw_geo_open(dir);
    assert_non_null(g);
    assert_int_equal(lw_geo_count(g), 1);
    static const struct {
        const char *ip, *cc;
    } cases[] = {
        {"198.51.100.10", "PT"}, {"198.51.100.100", "PT"}, {"198.51.100.130", "ES"}, {"198.51.100.250", "FR"},
        {"203.0.113.1", "AU"},   {"203.0.113.99", "US"},   {"192.0.2.1", "NL"},      {"192.0.2.100", "DE"},
        {"192.0.2.150", "BR"},   {"2001:db8::1", "DE"},    {"2001:db8:1::1", "DE"},  {"203.0.113.200", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lw_geo_info info;
        print_message("  %s\n", cases[i].ip);
        assert_int_equal(lw_geo_lookup(g, cases[i].ip, &info), LW_OK);
        assert_string_equal(info.country, cases[i].cc);
        /* The layout knows nothing more: the rest stays empty. */
        assert_string_equal(info.country_name, "");
        assert_string_equal(info.city, "");
        assert_false(info.has_location);
        assert_int_equal(info.asn, 0);
        assert_string_equal(info.network, "");
        char place[LW_GEO_PLACE_MAX];
        assert_int_equal(lw_geo_describe_place(&info, place, sizeof place), LW_OK);
        assert_string_equal(place, cases[i].cc);
    }
    lw_geo_close(g);
}

static void test_unlabelled_database(void **state)
{
    (void)state;
    char dir[1200];
    sub(dir, sizeof dir, "unlabelled");
    lw_geo *g = lw_geo_open(dir);
    assert_int_equal(lw_geo_count(g), 1);
    lw_geo_info info;
    assert_int_equal(lw_geo_lookup(g, "198.51.100.10", &info), LW_OK);
    assert_int_equal(info.asn, 64511);
    assert_string_equal(info.as_org, "Unlabelled Networks");
    assert_string_equal(info.network, "AS64511 Unlabelled Networks");
    assert_string_equal(info.country, "");
    lw_geo_close(g);
}

/* Files are recognised by their metadata, whatever their names; other files
 * are skipped, and a broken database does not keep the others out. */
static void test_chosen_by_metadata(void **state)
{
    (void)state;
    char dir[64];
    scratch(dir);
    put(dir, "GeoLite2-ASN.mmdb", "GeoIP2-City.mmdb"); /* an ASN db under a City name */
    put(dir, "GeoIP2-City.mmdb", "data.mmdb");
    write_text(dir, "broken.mmdb", "not a MaxMind database\n");
    write_text(dir, "README.txt", "hello\n");
    write_text(dir, ".hidden.mmdb", "ignored\n");
    char sub_dir[128];
    snprintf(sub_dir, sizeof sub_dir, "%s/folder.mmdb", dir);
    assert_int_equal(mkdir(sub_dir, 0755), 0);

    lw_geo *g = lw_geo_open(dir);
    assert_non_null(g);
    assert_int_equal(lw_geo_count(g), 2);
    lw_geo_info info;
    assert_int_equal(lw_geo_lookup(g, "198.51.100.10", &info), LW_OK);
    assert_string_equal(info.city, "Lisbon");
    assert_int_equal(info.asn, 64500);
    assert_string_equal(info.network, "AS64500 Lisbon Fibre");

    /* A reload that meets the broken file keeps what is in use. */
    lw_geo *before = g;
    assert_int_equal(lw_geo_reload(&g, dir), LW_EIO);
    assert_ptr_equal(g, before);
    assert_int_equal(lw_geo_count(g), 2);
    unlink_in(dir, "broken.mmdb");
    assert_int_equal(lw_geo_reload(&g, dir), LW_OK);
    assert_int_equal(lw_geo_count(g), 2);
    lw_geo_close(g);
    rm_rf(dir);
}

/* At most two databases of a kind, the more detailed first, so that a
 * coarser one fills the holes of a finer one. */
static void test_preference_and_fallback(void **state)
{
    (void)state;
    char dir[64];
    scratch(dir);
    put(dir, "country-only/geo-whois-asn-country.mmdb", "a-country.mmdb");
    put(dir, "country-only/geo-whois-asn-country.mmdb", "b-country.mmdb");
    put(dir, "GeoIP2-City.mmdb", "z-city.mmdb");
    lw_geo *g = lw_geo_open(dir);
    assert_int_equal(lw_geo_count(g), 2);
    lw_geo_info info;
    assert_int_equal(lw_geo_lookup(g, "198.51.100.10", &info), LW_OK);
    assert_string_equal(info.city, "Lisbon"); /* City first */
    assert_string_equal(info.country_name, "Portugal");
    assert_int_equal(lw_geo_lookup(g, "2001:db8:1::1", &info), LW_OK); /* a hole in City */
    assert_string_equal(info.country, "DE");
    assert_string_equal(info.city, "");
    lw_geo_close(g);
    rm_rf(dir);
}

static void expect_empty(const lw_geo_info *info)
{
    static const lw_geo_info zero;
    assert_memory_equal(info, &zero, sizeof zero);
}

static void test_no_databases(void **state)
{
    (void)state;
    lw_geo_info info;
    char dir[64];
    scratch(dir);
    const char *dirs[] = {NULL, "", "/nonexistent/linkward/geoip", dir};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        lw_geo *g = lw_geo_open(dirs[i]);
        assert_non_null(g);
        assert_int_equal(lw_geo_count(g), 0);
        memset(&info, 0x5a, sizeof info);
        assert_int_equal(lw_geo_lookup(g, "198.51.100.10", &info), LW_OK);
        expect_empty(&info);
        lw_geo_close(g);
    }
    memset(&info, 0x5a, sizeof info);
    assert_int_equal(lw_geo_lookup(NULL, "198.51.100.10", &info), LW_OK);
    expect_empty(&info);
    assert_int_equal(lw_geo_lookup(NULL, "198.51.100.10", NULL), LW_EINVAL);
    lw_geo_close(NULL);
    rm_rf(dir);
}

static void test_nothing_to_look_up(void **state)
{
    (void)state;
    lw_geo *g = lw_geo_open(world);
    static const char *ips[] = {
        /* private, loopback, link-local, shared, multicast, reserved */
        "10.1.2.3",
        "127.0.0.1",
        "172.16.5.4",
        "172.31.255.255",
        "192.168.1.1",
        "100.64.0.1",
        "169.254.1.1",
        "0.0.0.0",
        "192.0.0.8",
        "198.18.0.1",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fec0::1",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "::ffff:10.0.0.1",
        "::ffff:127.0.0.1",
        "64:ff9b::a00:1",
        "::198.51.100.10",
        /* not an address */
        "",
        "not-an-ip",
        "198.51.100",
        "198.51.100.10.5",
        "198.51.100.256",
        " 198.51.100.10",
        "198.51.100.10 ",
        "198.51.100.10:443",
        "fe80::1%eth0",
        "[2001:db8::1]",
        "2001:db8::1/48",
        "0x7f.0.0.1",
        "2001:db8:::1",
        "1234567890123456789012345678901234567890123456789012345678901234567890",
        "198.51.100.10\n",
    };
    for (size_t i = 0; i < sizeof ips / sizeof ips[0]; i++) {
        lw_geo_info info;
        print_message("  \"%s\"\n", ips[i]);
        memset(&info, 0x5a, sizeof info);
        assert_int_equal(lw_geo_lookup(g, ips[i], &info), LW_OK);
        expect_empty(&info);
    }
    lw_geo_info info;
    assert_int_equal(lw_geo_lookup(g, NULL, &info), LW_OK);
    expect_empty(&info);
    /* While the public neighbours of those ranges are found. */
    assert_int_equal(lw_geo_lookup(g, "198.51.100.10", &info), LW_OK);
    assert_string_equal(info.country, "PT");
    lw_geo_close(g);
}

static void test_reload(void **state)
{
    (void)state;
    char dir[64];
    scratch(dir);
    put(dir, "country-only/geo-whois-asn-country.mmdb", "geo-whois-asn-country.mmdb");
    lw_geo *g = lw_geo_open(dir);
    lw_geo_info info;
    assert_int_equal(lw_geo_lookup(g, "198.51.100.10", &info), LW_OK);
    assert_string_equal(info.country, "PT");
    assert_string_equal(info.city, "");

    /* City, ASN, connection type and anonymity dropped in, then SIGHUP. */
    put(dir, "GeoIP2-City.mmdb", "GeoLite2-City.mmdb");
    put(dir, "GeoLite2-ASN.mmdb", "GeoLite2-ASN.mmdb");
    put(dir, "GeoIP2-Connection-Type.mmdb", "GeoIP2-Connection-Type.mmdb");
    put(dir, "GeoIP2-Anonymous-IP.mmdb", "GeoIP2-Anonymous-IP.mmdb");
    assert_int_equal(lw_geo_reload(&g, dir), LW_OK);
    assert_int_equal(lw_geo_count(g), 5);
    assert_int_equal(lw_geo_lookup(g, "192.0.2.1", &info), LW_OK);
    assert_string_equal(info.city, "Amsterdam");
    assert_true(info.vpn && info.hosting && info.anonymous);

    /* A failed reload (no memory) keeps the set in use. */
    lw_geo *before = g;
    lw_alloc_fail_after(0);
    assert_int_equal(lw_geo_reload(&g, dir), LW_ENOMEM);
    lw_alloc_fail_after(-1);
    assert_ptr_equal(g, before);
    lw_alloc_fail_after(1); /* the second allocation: a database's */
    assert_int_equal(lw_geo_reload(&g, dir), LW_ENOMEM);
    lw_alloc_fail_after(-1);
    assert_ptr_equal(g, before);

    /* A directory that went away: keep what we have. */
    char gone[128];
    snprintf(gone, sizeof gone, "%s/gone", dir);
    assert_int_equal(lw_geo_reload(&g, gone), LW_ENOTFOUND);
    assert_ptr_equal(g, before);
    assert_int_equal(lw_geo_lookup(g, "203.0.113.5", &info), LW_OK);
    assert_string_equal(info.city, "Sydney");

    /* Emptied on purpose: the fields go empty. */
    unlink_in(dir, "geo-whois-asn-country.mmdb");
    unlink_in(dir, "GeoLite2-City.mmdb");
    unlink_in(dir, "GeoLite2-ASN.mmdb");
    unlink_in(dir, "GeoIP2-Connection-Type.mmdb");
    unlink_in(dir, "GeoIP2-Anonymous-IP.mmdb");
    assert_int_equal(lw_geo_reload(&g, dir), LW_OK);
    assert_int_equal(lw_geo_count(g), 0);
    assert_int_equal(lw_geo_lookup(g, "203.0.113.5", &info), LW_OK);
    expect_empty(&info);

    assert_int_equal(lw_geo_reload(NULL, dir), LW_EINVAL);
    lw_geo_close(g);
    rm_rf(dir);

    lw_alloc_fail_after(0);
    assert_null(lw_geo_open(world));
    lw_alloc_fail_after(-1);
}

static void test_describe_place(void **state)
{
    (void)state;
    lw_geo_info info;
    memset(&info, 0, sizeof info);
    char buf[LW_GEO_PLACE_MAX];
    assert_int_equal(lw_geo_describe_place(&info, buf, sizeof buf), LW_OK);
    assert_string_equal(buf, "");
    lw_strlcpy(info.city, "Lisbon", sizeof info.city);
    assert_int_equal(lw_geo_describe_place(&info, buf, sizeof buf), LW_OK);
    assert_string_equal(buf, ""); /* no country: say nothing */
    lw_strlcpy(info.country, "PT", sizeof info.country);
    assert_int_equal(lw_geo_describe_place(&info, buf, sizeof buf), LW_OK);
    assert_string_equal(buf, "Lisbon, PT");
    char small[10];
    assert_int_equal(lw_geo_describe_place(&info, small, sizeof small), LW_ETOOBIG);
    assert_string_equal(small, "");
    char exact[11];
    assert_int_equal(lw_geo_describe_place(&info, exact, sizeof exact), LW_OK);
    assert_string_equal(exact, "Lisbon, PT");
    info.city[0] = '\0';
    lw_strlcpy(info.region, "Lisbon District", sizeof info.region);
    assert_int_equal(lw_geo_describe_place(&info, buf, sizeof buf), LW_OK);
    assert_string_equal(buf, "Lisbon District, PT");
    info.region[0] = '\0';
    assert_int_equal(lw_geo_describe_place(&info, buf, sizeof buf), LW_OK);
    assert_string_equal(buf, "PT");
    assert_int_equal(lw_geo_describe_place(&info, buf, 0), LW_ETOOBIG);
    assert_int_equal(lw_geo_describe_place(NULL, buf, sizeof buf), LW_OK);
    assert_string_equal(buf, "");
}

static void test_distance(void **state)
{
    (void)state;
    const double lis_lat = 38.7223, lis_lon = -9.1393;
    double d = lw_geo_distance_km(lis_lat, lis_lon, 40.4168, -3.7038); /* Madrid */
    assert_near(d, 502.45, 0.01);
    assert_near(d, lw_geo_distance_km(40.4168, -3.7038, lis_lat, lis_lon), 1e-9);          /* symmetric */
    assert_near(lw_geo_distance_km(lis_lat, lis_lon, -33.8688, 151.2093), 18177.35, 0.01); /* Sydney */
    assert_near(lw_geo_distance_km(lis_lat, lis_lon, lis_lat, lis_lon), 0.0, 1e-12);
    assert_near(lw_geo_distance_km(0, 0, 0, 180), M_PI * 6371.0088, 1e-6); /* ~20,015.11 km */
    assert_near(lw_geo_distance_km(lis_lat, lis_lon, -lis_lat, lis_lon + 180), 20015.11, 0.01);
    assert_near(lw_geo_distance_km(90, 0, -90, 0), 20015.11, 0.01);
    assert_near(lw_geo_distance_km(0, 179.5, 0, -179.5), 111.19, 0.01); /* across the date line */
    assert_near(lw_geo_distance_km(0, 0, 1, 0), 111.19, 0.01);          /* one degree of meridian */
    assert_true(isnan(lw_geo_distance_km(NAN, 0, 0, 0)));
    assert_true(isnan(lw_geo_distance_km(0, 0, 0, INFINITY)));
}

static void test_speed(void **state)
{
    (void)state;
    assert_near(lw_geo_speed_kmh(503, 3600000), 503.0, 1e-9);
    assert_near(lw_geo_speed_kmh(900, 30 * 60000), 1800.0, 1e-9);
    assert_near(lw_geo_speed_kmh(18177, INT64_C(20) * 3600000), 908.85, 1e-9);
    assert_near(lw_geo_speed_kmh(1, 1), 3600000.0, 1e-6);
    assert_true(isinf(lw_geo_speed_kmh(503, 0)) && lw_geo_speed_kmh(503, 0) > 0);
    assert_true(isinf(lw_geo_speed_kmh(0.001, -5)));
    assert_near(lw_geo_speed_kmh(0, 0), 0.0, 0);
    assert_near(lw_geo_speed_kmh(0, 3600000), 0.0, 0);
    assert_near(lw_geo_speed_kmh(-3, 3600000), 0.0, 0);
    assert_near(lw_geo_speed_kmh(NAN, 0), 0.0, 0);
}

/* The stored precision is never much finer than the accuracy radius: the
 * grid step is the coarsest of 1, 0.1, 0.01, 0.001 degrees not larger than
 * the radius (20 km -> 0.1 deg, not 0.01). */
static void test_rounding_follows_accuracy(void **state)
{
    (void)state;
    lw_geo *g = lw_geo_open(world);
    assert_non_null(g);
    size_t checked = 0;
    for (size_t i = 0; i < sizeof WORLD / sizeof WORLD[0]; i++) {
        lw_geo_info info;
        assert_int_equal(lw_geo_lookup(g, WORLD[i].ip, &info), LW_OK);
        if (!info.has_location)
            continue;
        double step = 1.0;
        while (step > 0.001 && 111.195 * step > info.accuracy_radius_km)
            step /= 10;
        print_message("  %s: %u km -> %g deg\n", WORLD[i].ip, info.accuracy_radius_km, step);
        /* On the grid of that step... */
        assert_near(info.latitude / step, round(info.latitude / step), 1e-6);
        assert_near(info.longitude / step, round(info.longitude / step), 1e-6);
        /* ...and the step is no finer than a tenth of the radius allows. */
        assert_true(111.195 * step * 10 > info.accuracy_radius_km || step == 1.0);
        checked++;
    }
    assert_true(checked >= 8);
    /* Lisbon's 20 km: one decimal (38.7223 -> 38.7), not two (38.72). */
    lw_geo_info lis;
    lw_geo_lookup(g, "198.51.100.10", &lis);
    assert_int_equal(lis.accuracy_radius_km, 20);
    assert_near(lis.latitude, 38.7, 1e-9);
    /* São Paulo's 500 km: whole degrees. */
    lw_geo_info sp;
    lw_geo_lookup(g, "192.0.2.130", &sp);
    assert_near(sp.latitude, -24.0, 1e-9);
    lw_geo_close(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_world),
        cmocka_unit_test(test_rounding_follows_accuracy),
        cmocka_unit_test(test_lisbon_in_english),
        cmocka_unit_test(test_country_only_layout),
        cmocka_unit_test(test_unlabelled_database),
        cmocka_unit_test(test_chosen_by_metadata),
        cmocka_unit_test(test_preference_and_fallback),
        cmocka_unit_test(test_no_databases),
        cmocka_unit_test(test_nothing_to_look_up),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_describe_place),
        cmocka_unit_test(test_distance),
        cmocka_unit_test(test_speed),
    };
    return cmocka_run_group_tests(tests, setup_world, teardown_world);
}
