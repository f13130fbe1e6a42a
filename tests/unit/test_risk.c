/* Risk rules and their thresholds (PRODUCT.md §2 step 4, §6), on a real
 * store and the generated GeoIP world (tests/tools/make_geoip.pl). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "geo_world.h"

#include "deps.h"
#include "config.h"
#include "geo.h"
#include "lw.h"
#include "place.h"
#include "risk.h"
#include "session.h"
#include "store.h"

#define LISBON "198.51.100.10"
#define PORTO "198.51.100.70"
#define MADRID "198.51.100.130"
#define SYDNEY "203.0.113.10"
#define NEW_YORK "203.0.113.70"
#define FRANCE "198.51.100.200"
#define VPN "192.0.2.10"
#define TOR "192.0.2.70"

static void test_speed_and_threshold(void **state)
{
    assert_true(fabs(lw_risk_speed_kmh(900, 3600 * 1000) - 900) < 1e-9);
    assert_true(isinf(lw_risk_speed_kmh(10, 0)));
    assert_true(lw_risk_speed_kmh(0, 0) == 0);
    /* Across the 900 km/h threshold: 1,000 km in 66 min is 909 km/h, in 67 min 895 km/h. */
    assert_true(lw_risk_impossible(1000, 66 * 60 * 1000, 900));
    assert_false(lw_risk_impossible(1000, 67 * 60 * 1000, 900));
    /* Short hops are GeoIP noise, never impossible, however fast. */
    assert_false(lw_risk_impossible(99, 1, 900));
    assert_true(lw_risk_impossible(100, 1, 900));
}

static void test_distance(void **state)
{
    lw_place lisbon = {.lat = 38.72, .lon = -9.14, .has_loc = true};
    lw_place madrid = {.lat = 40.42, .lon = -3.70, .has_loc = true};
    lw_place nowhere = {0};
    double km = lw_place_distance_km(&lisbon, &madrid);
    assert_true(km > 495 && km < 510);
    assert_true(lw_place_distance_km(&lisbon, &lisbon) < 1e-6);
    assert_true(lw_place_distance_km(&lisbon, &nowhere) < 0);
}

/* What serve.c's lw_app holds for the domain, here without the bus or the
 * transport: the modules see only app.domain (deps.h), filled by wire(). */
typedef struct holder {
    lw_config cfg;
    uint8_t hash_key[LW_KEY_LEN];
    lw_store *store;
    lw_sessions *sessions;
    lw_geo *geo;
    lw_domain_deps domain;
} holder;

typedef struct fixture {
    char dir[64];
    char db[128];
    holder app;
} fixture;

static const lw_domain_deps *wire(fixture *f)
{
    f->app.domain = (lw_domain_deps){
        .store = f->app.store,
        .cfg = &f->app.cfg,
        .hash_key = f->app.hash_key,
        .sessions = f->app.sessions,
        .geo = f->app.geo,
    };
    return &f->app.domain;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/lw-test-risk-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->db, sizeof f->db, "%s/t.db", f->dir);
    lw_config_defaults(&f->app.cfg);
    lw_random(f->app.hash_key, sizeof f->app.hash_key);
    if (lw_store_open(&f->app.store, f->db) != LW_OK)
        return -1;
    f->app.sessions = lw_sessions_new(wire(f));
    f->app.geo = lw_geo_open(world);
    wire(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    lw_geo_close(f->app.geo);
    lw_sessions_free(f->app.sessions);
    lw_store_close(f->app.store);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

/* An account whose primary registered (and is used) at `ip`. */
static void make_account(fixture *f, const char *ip)
{
    lw_account a;
    memset(&a, 0, sizeof a);
    lw_strlcpy(a.id, "acct1", sizeof a.id);
    lw_strlcpy(a.handle, "alice", sizeof a.handle);
    a.inactive_ttl_ms = 30LL * 24 * 3600 * 1000;
    lw_session p;
    memset(&p, 0, sizeof p);
    lw_strlcpy(p.id, "acct1-p", sizeof p.id);
    lw_strlcpy(p.account_id, "acct1", sizeof p.account_id);
    lw_strlcpy(p.role, LW_ROLE_PRIMARY, sizeof p.role);
    lw_strlcpy(p.state, "active", sizeof p.state);
    lw_strlcpy(p.cred_selector, "sel-p", sizeof p.cred_selector);
    lw_place where;
    lw_place_lookup(wire(f), ip, &where, NULL);
    lw_strlcpy(p.first.ip, ip, sizeof p.first.ip);
    lw_strlcpy(p.first.country, where.country, sizeof p.first.country);
    p.first.lat = where.lat;
    p.first.lon = where.lon;
    p.first.has_loc = where.has_loc;
    assert_int_equal(lw_store_account_create(f->app.store, &a, &p, NULL), LW_OK);
}

static lw_risk_level assess_from(fixture *f, const char *ip, const lw_place *primary_at, lw_risk *k)
{
    lw_link_request r;
    memset(&r, 0, sizeof r);
    lw_strlcpy(r.place.ip, ip, sizeof r.place.ip);
    lw_risk_link(wire(f), &r, "acct1", primary_at, k);
    return k->level;
}

static lw_risk_level assess(fixture *f, const char *ip, lw_risk *k)
{
    return assess_from(f, ip, NULL, k);
}

static size_t count_alerts(fixture *f, const char *kind)
{
    lw_alert *list = NULL;
    size_t n = 0, c = 0;
    assert_int_equal(lw_store_alert_list(f->app.store, "acct1", 1000, &list, &n), LW_OK);
    for (size_t i = 0; i < n; i++)
        c += strcmp(list[i].kind, kind) == 0;
    lw_free(list);
    return c;
}

static bool has_reason(const lw_risk *k, const char *code)
{
    size_t i;
    json_t *v;
    json_array_foreach(k->reasons, i,
                       v) if (strcmp(json_string_value(json_object_get(v, "code")), code) == 0) return true;
    return false;
}

static void test_rules(void **state)
{
    fixture *f = *state;
    make_account(f, LISBON);
    lw_risk k;
    /* Rounded to their 20 and 50 km accuracy, Lisbon and Madrid are 500 km
     * apart, right at the default: the test world's threshold is set below. */
    f->app.cfg.far_km = 450;

    /* Porto: same country, ~270 km: nothing to say. */
    assert_int_equal(assess(f, PORTO, &k), LW_RISK_LOW);
    assert_int_equal(json_array_size(k.reasons), 0);
    assert_true(k.distance_km > 250 && k.distance_km < 300);
    lw_risk_clear(&k);

    /* Madrid: a new country and ~500 km: two signals make it high. */
    assert_int_equal(assess(f, MADRID, &k), LW_RISK_HIGH);
    assert_true(k.new_country && k.far);
    assert_true(has_reason(&k, "new_country") && has_reason(&k, "far_from_primary"));
    lw_risk_clear(&k);

    /* The far threshold, just above and just below the measured distance. */
    assess(f, MADRID, &k);
    double d = k.distance_km;
    lw_risk_clear(&k);
    f->app.cfg.far_km = d + 0.5;
    assert_int_equal(assess(f, MADRID, &k), LW_RISK_MEDIUM);
    assert_false(k.far);
    assert_true(k.new_country);
    lw_risk_clear(&k);
    f->app.cfg.far_km = d - 0.5;
    assess(f, MADRID, &k);
    assert_true(k.far);
    lw_risk_clear(&k);
    f->app.cfg.far_km = 450;

    /* Anonymous networks: a VPN (also a new country, NL) and Tor (high on its own). */
    assess(f, VPN, &k);
    assert_true(k.anonymous && has_reason(&k, "anonymous_network"));
    assert_int_equal(k.level, LW_RISK_HIGH); /* VPN + new country + far (Amsterdam) */
    lw_risk_clear(&k);
    assess(f, TOR, &k);
    assert_true(k.net.tor);
    assert_int_equal(k.level, LW_RISK_HIGH);
    lw_risk_clear(&k);

    /* An address no database knows: no signal can be computed, nothing is claimed. */
    assert_int_equal(assess(f, "203.0.113.200", &k), LW_RISK_LOW);
    assert_true(k.distance_km < 0);
    lw_risk_clear(&k);
}

static void test_first_country_is_not_new(void **state)
{
    fixture *f = *state;
    /* A primary registered from an address without a known country: there is
     * no history to compare with, so no place is "new". */
    make_account(f, "127.0.0.1");
    lw_risk k;
    assess(f, MADRID, &k);
    assert_false(k.new_country);
    assert_true(k.distance_km < 0);
    assert_int_equal(k.level, LW_RISK_LOW);
    lw_risk_clear(&k);
}

static void test_moves_raise_alerts(void **state)
{
    fixture *f = *state;
    make_account(f, LISBON);
    lw_place lisbon, sydney, porto, france;
    lw_place_lookup(wire(f), LISBON, &lisbon, NULL);
    lw_place_lookup(wire(f), SYDNEY, &sydney, NULL);
    lw_place_lookup(wire(f), PORTO, &porto, NULL);
    lw_place_lookup(wire(f), "198.51.100.200", &france, NULL);
    /* Lisbon -> Sydney in a minute: impossible. In 30 hours: fine (and a country change). */
    lw_risk_on_move(wire(f), "acct1", "acct1-p", &lisbon, &sydney, 60 * 1000, 0, NULL);
    lw_risk_on_move(wire(f), "acct1", "acct1-p", &lisbon, &sydney, 30LL * 3600 * 1000, 0, NULL);
    /* Lisbon -> Porto in a minute: same country, 275 km at 16,500 km/h: impossible too. */
    lw_risk_on_move(wire(f), "acct1", "acct1-p", &lisbon, &porto, 60 * 1000, 0, NULL);
    /* Lisbon -> France without coordinates: a country change. */
    lw_risk_on_move(wire(f), "acct1", "acct1-p", &lisbon, &france, 60 * 1000, 0, NULL);
    lw_alert *list = NULL;
    size_t n = 0;
    assert_int_equal(lw_store_alert_list(f->app.store, "acct1", 10, &list, &n), LW_OK);
    assert_int_equal(n, 4);
    int impossible = 0, changed = 0;
    for (size_t i = 0; i < n; i++) {
        impossible += strcmp(list[i].kind, "session.impossible_travel") == 0;
        changed += strcmp(list[i].kind, "session.country_changed") == 0;
    }
    assert_int_equal(impossible, 2);
    assert_int_equal(changed, 2);
    lw_free(list);
}

/* The distance from the primary is from where its own request comes from
 * now, not its stored place (written at most once a minute). */
static void test_primary_place_is_the_scan(void **state)
{
    fixture *f = *state;
    make_account(f, LISBON); /* stored: Lisbon */
    lw_place ny;
    lw_place_lookup(wire(f), NEW_YORK, &ny, NULL);
    lw_risk k;
    /* The phone flew to New York and scans a New York request: nothing odd. */
    assert_int_equal(assess_from(f, NEW_YORK, &ny, &k), LW_RISK_LOW);
    assert_false(k.far);
    assert_false(k.new_country);
    assert_true(k.distance_km >= 0 && k.distance_km < 1);
    lw_risk_clear(&k);
    /* Judged against the stored place, the same request looked far and new. */
    assert_int_equal(assess_from(f, NEW_YORK, NULL, &k), LW_RISK_HIGH);
    assert_true(k.far && k.new_country);
    lw_risk_clear(&k);
    /* And from New York, a Lisbon request is now the far one. */
    assess_from(f, LISBON, &ny, &k);
    assert_true(k.far);
    assert_true(k.distance_km > 5000);
    lw_risk_clear(&k);
    /* A phone at an unknown address: the stored place stands in. */
    lw_place nowhere;
    lw_place_lookup(wire(f), "203.0.113.200", &nowhere, NULL);
    assess_from(f, NEW_YORK, &nowhere, &k);
    assert_true(k.far);
    lw_risk_clear(&k);
}

/* A session flapping between two countries: one country_changed per
 * --move-alert-interval per device, not one per request. */
static void test_move_alerts_throttled(void **state)
{
    fixture *f = *state;
    make_account(f, LISBON);
    lw_place pt, fr;
    lw_place_lookup(wire(f), LISBON, &pt, NULL);
    lw_place_lookup(wire(f), FRANCE, &fr, NULL);
    assert_int_equal(f->app.cfg.move_alert_interval_ms, 10 * 60 * 1000); /* the default */
    lw_move_alerts seen = {0};
    int64_t t0 = 1700000000000LL, now = t0;
    for (int i = 0; i < 20; i++, now += 1000)
        lw_risk_on_move(wire(f), "acct1", "dev-a", i % 2 ? &fr : &pt, i % 2 ? &pt : &fr, 1000, now, &seen);
    assert_int_equal(count_alerts(f, "session.country_changed"), 1);
    /* Just before the interval is over: still quiet; at it: the next one. */
    lw_risk_on_move(wire(f), "acct1", "dev-a", &pt, &fr, 1000, t0 + 10 * 60 * 1000 - 1, &seen);
    assert_int_equal(count_alerts(f, "session.country_changed"), 1);
    lw_risk_on_move(wire(f), "acct1", "dev-a", &pt, &fr, 1000, t0 + 10 * 60 * 1000, &seen);
    assert_int_equal(count_alerts(f, "session.country_changed"), 2);
    /* Per device: another device has its own. */
    lw_move_alerts other = {0};
    lw_risk_on_move(wire(f), "acct1", "dev-b", &pt, &fr, 1000, now, &other);
    assert_int_equal(count_alerts(f, "session.country_changed"), 3);
    /* Per kind: an impossible move is not held back by a country change. */
    lw_place sydney;
    lw_place_lookup(wire(f), SYDNEY, &sydney, NULL);
    lw_risk_on_move(wire(f), "acct1", "dev-a", &fr, &sydney, 1000, t0 + 10 * 60 * 1000 + 1, &seen);
    lw_risk_on_move(wire(f), "acct1", "dev-a", &sydney, &pt, 1000, t0 + 10 * 60 * 1000 + 2, &seen);
    assert_int_equal(count_alerts(f, "session.impossible_travel"), 1);
    assert_int_equal(count_alerts(f, "session.country_changed"),
                     3); /* the throttled impossible move did not fall through */
    /* --move-alert-interval 0: every move. */
    f->app.cfg.move_alert_interval_ms = 0;
    lw_move_alerts all = {0};
    for (int i = 0; i < 20; i++)
        lw_risk_on_move(wire(f), "acct1", "dev-c", i % 2 ? &fr : &pt, i % 2 ? &pt : &fr, 1000, now + i, &all);
    assert_int_equal(count_alerts(f, "session.country_changed"), 23);
}

/* Impossible travel judges the distance less both accuracy radii, at the
 * configured --travel-kmh. */
static void test_travel_minus_accuracy(void **state)
{
    (void)state;
    /* 10 degrees of longitude on the equator: 1,111.95 km between centres. */
    lw_place a = {.lat = 0, .lon = 0, .has_loc = true, .accuracy_km = 20};
    lw_place b = {.lat = 0, .lon = 10, .has_loc = true, .accuracy_km = 30};
    double km = lw_place_distance_km(&a, &b);
    assert_true(km > 1111 && km < 1113);
    assert_true(fabs(lw_risk_travel_km(&a, &b) - (km - 50)) < 1e-9);
    lw_place fuzzy = b;
    fuzzy.accuracy_km = 2000; /* coarser than the distance: no travel at all */
    assert_true(lw_risk_travel_km(&a, &fuzzy) == 0);
    lw_place nowhere = {0};
    assert_true(lw_risk_travel_km(&a, &nowhere) < 0);

    holder app;
    memset(&app, 0, sizeof app);
    lw_config_defaults(&app.cfg);
    /* The time at which the certain distance is covered at exactly 900 km/h. */
    int64_t at = (int64_t)((km - 50) / 900.0 * 3600000.0);
    /* At the threshold and across it: only the certain distance counts. */
    assert_false(lw_risk_impossible(lw_risk_travel_km(&a, &b), at + 1000, app.cfg.travel_kmh));
    assert_true(lw_risk_impossible(lw_risk_travel_km(&a, &b), at - 1000, app.cfg.travel_kmh));
    /* Centre to centre, the same slower move would have looked impossible. */
    assert_true(lw_risk_impossible(km, at + 1000, app.cfg.travel_kmh));
}

/* --travel-kmh moves the threshold of lw_risk_on_move (through the config). */
static void test_travel_kmh_option(void **state)
{
    fixture *f = *state;
    make_account(f, LISBON);
    lw_place lisbon, madrid;
    lw_place_lookup(wire(f), LISBON, &lisbon, NULL);
    lw_place_lookup(wire(f), MADRID, &madrid, NULL);
    /* Lisbon-Madrid less 20 + 50 km of accuracy, in one hour. */
    double travel = lw_risk_travel_km(&lisbon, &madrid);
    assert_true(travel > 400 && travel < 460);
    const int64_t hour = 3600 * 1000;
    /* Set as the option is (an integration test cannot wait an hour). */
    char msg[128], v[32];
    snprintf(v, sizeof v, "%.0f", ceil(travel) + 1); /* just above the speed: possible, a country change */
    assert_int_equal(lw_config_set(&f->app.cfg, "travel-kmh", v, msg, sizeof msg), 0);
    lw_risk_on_move(wire(f), "acct1", "d1", &lisbon, &madrid, hour, 1, NULL);
    assert_int_equal(count_alerts(f, "session.impossible_travel"), 0);
    assert_int_equal(count_alerts(f, "session.country_changed"), 1);
    snprintf(v, sizeof v, "%.0f", floor(travel) - 1); /* just below: impossible */
    assert_int_equal(lw_config_set(&f->app.cfg, "travel-kmh", v, msg, sizeof msg), 0);
    lw_risk_on_move(wire(f), "acct1", "d2", &lisbon, &madrid, hour, 2, NULL);
    assert_int_equal(count_alerts(f, "session.impossible_travel"), 1);
    assert_int_equal(count_alerts(f, "session.country_changed"), 1);
}

/* --far-km through the config: the option file's value reaches the rule. */
static void test_far_km_option(void **state)
{
    fixture *f = *state;
    make_account(f, LISBON);
    char msg[128];
    lw_risk k;
    assert_int_equal(lw_config_set(&f->app.cfg, "far-km", "250", msg, sizeof msg), 0);
    assess(f, PORTO, &k); /* ~275 km */
    assert_true(k.far && has_reason(&k, "far_from_primary"));
    assert_int_equal(k.level, LW_RISK_MEDIUM);
    lw_risk_clear(&k);
    assert_int_equal(lw_config_set(&f->app.cfg, "far-km", "300", msg, sizeof msg), 0);
    assess(f, PORTO, &k);
    assert_false(k.far);
    assert_int_equal(k.level, LW_RISK_LOW);
    lw_risk_clear(&k);
}

int main(void)
{
    lw_crypto_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_speed_and_threshold),
        cmocka_unit_test(test_distance),
        cmocka_unit_test_setup_teardown(test_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_country_is_not_new, setup, teardown),
        cmocka_unit_test_setup_teardown(test_moves_raise_alerts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_primary_place_is_the_scan, setup, teardown),
        cmocka_unit_test_setup_teardown(test_move_alerts_throttled, setup, teardown),
        cmocka_unit_test(test_travel_minus_accuracy),
        cmocka_unit_test_setup_teardown(test_travel_kmh_option, setup, teardown),
        cmocka_unit_test_setup_teardown(test_far_km_option, setup, teardown),
    };
    return cmocka_run_group_tests(tests, setup_world, teardown_world);
}
