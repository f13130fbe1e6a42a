/* The sentences of alerts (src/server/domain/alert.c): what a person reads, never
 * "failures=10 attempts_left=0"; plurals right; device.ended names the
 * device in the third person. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <stdlib.h>

#include "alert.h"
#include "config.h"
#include "deps.h"
#include "events.h"
#include "lw.h"
#include "store.h"

static void test_pin_failed(void **state)
{
    char t[LW_ALERT_TEXT_MAX];
    assert_int_equal(lw_alert_text_pin_failed(t, sizeof t, 1, 9), LW_OK);
    assert_string_equal(t, "Wrong PIN entered once; 9 tries left.");
    lw_alert_text_pin_failed(t, sizeof t, 3, 7);
    assert_string_equal(t, "Wrong PIN entered 3 times; 7 tries left.");
    lw_alert_text_pin_failed(t, sizeof t, 9, 1);
    assert_string_equal(t, "Wrong PIN entered 9 times; 1 try left.");
    lw_alert_text_pin_failed(t, sizeof t, 10, 0);
    assert_string_equal(t, "Wrong PIN entered 10 times; no tries left.");
    lw_alert_text_pin_failed(t, sizeof t, 12, -2);
    assert_string_equal(t, "Wrong PIN entered 12 times; no tries left.");
    /* No room: a shorter whole sentence, or nothing; never a cut one. */
    char small[30];
    assert_int_equal(lw_alert_text_pin_failed(small, sizeof small, 3, 7), LW_ETOOBIG);
    assert_string_equal(small, "A wrong PIN was entered.");
    char tiny[4];
    assert_int_equal(lw_alert_text_pin_failed(tiny, sizeof tiny, 3, 7), LW_ETOOBIG);
    assert_string_equal(tiny, "");
}

static void duration(int64_t ms, const char *want)
{
    char t[64];
    assert_int_equal(lw_alert_text_duration(t, sizeof t, ms), LW_OK);
    assert_string_equal(t, want);
}

static void test_duration_and_lock(void **state)
{
    duration(1000, "1 second");
    duration(1500, "2 seconds");
    duration(59000, "59 seconds");
    duration(60000, "1 minute");
    duration(61000, "2 minutes");
    duration(2 * 60000, "2 minutes");
    duration(3599000, "1 hour");
    duration(3600000, "1 hour");
    duration(3600000 + 60000, "1 hour and 1 minute");
    duration(512LL * 60000, "8 hours and 32 minutes");
    duration(86400000LL, "1 day");
    duration(86400000LL * 2 + 3600000, "2 days and 1 hour");
    char t[LW_ALERT_TEXT_MAX];
    assert_int_equal(lw_alert_text_pin_locked(t, sizeof t, 10, 60000), LW_OK);
    assert_string_equal(t, "Too many wrong PINs (10 in a row): PIN entry is locked for 1 minute.");
    lw_alert_text_pin_locked(t, sizeof t, 11, 120000);
    assert_string_equal(t, "Too many wrong PINs (11 in a row): PIN entry is locked for 2 minutes.");
}

static void test_ended(void **state)
{
    char t[LW_ALERT_TEXT_MAX];
    const char *one[] = {"Chrome on Windows"};
    assert_int_equal(lw_alert_text_ended(t, sizeof t, "remote_logout", 1, one, 1), LW_OK);
    /* Not "You were logged out from your phone": the phone reads it too. */
    assert_string_equal(t, "Chrome on Windows was logged out from your phone.");
    lw_alert_text_ended(t, sizeof t, "logout", 1, one, 1);
    assert_string_equal(t, "Chrome on Windows was logged out on the device itself.");
    lw_alert_text_ended(t, sizeof t, "admin_logout", 1, one, 1);
    assert_string_equal(t, "Chrome on Windows was logged out by the server's administrator.");
    lw_alert_text_ended(t, sizeof t, "no_such_reason", 1, one, 1);
    assert_string_equal(t, "Chrome on Windows was logged out.");
    const char *unnamed[] = {""};
    lw_alert_text_ended(t, sizeof t, "inactive", 1, unnamed, 1);
    assert_string_equal(t, "A device was logged out after a long time without use.");
    lw_alert_text_ended(t, sizeof t, "inactive", 1, NULL, 0);
    assert_string_equal(t, "A device was logged out after a long time without use.");

    const char *three[] = {"Chrome on Windows", "Firefox on Linux", "Build server"};
    lw_alert_text_ended(t, sizeof t, "logout_all", 2, three, 2);
    assert_string_equal(t,
                        "2 devices were logged out from your phone (log out all devices): Chrome on Windows "
                        "and Firefox on Linux.");
    lw_alert_text_ended(t, sizeof t, "logout_all", 3, three, 3);
    assert_string_equal(t,
                        "3 devices were logged out from your phone (log out all devices): Chrome on Windows, "
                        "Firefox on Linux and Build server.");
    lw_alert_text_ended(t, sizeof t, "max_age", 1000, three, 3);
    assert_string_equal(t, "1000 devices were logged out at the maximum age of a session: Chrome on Windows, "
                           "Firefox on Linux, Build server and 997 more.");
    lw_alert_text_ended(t, sizeof t, "max_age", 5, NULL, 0);
    assert_string_equal(t, "5 devices were logged out at the maximum age of a session.");
    /* Names that do not fit are left out, the sentence stays whole. */
    char small[64];
    assert_int_equal(lw_alert_text_ended(small, sizeof small, "remote_logout", 3, three, 3), LW_ETOOBIG);
    assert_string_equal(small, "3 devices were logged out from your phone.");
}

static void test_theft_and_linked(void **state)
{
    char t[LW_ALERT_TEXT_MAX];
    lw_alert_text_theft(t, sizeof t, "Chrome on Windows", "203.0.113.5", false);
    assert_string_equal(t, "Chrome on Windows presented its credential without a signature by its device key "
                           "(from 203.0.113.5), so it was logged out.");
    lw_alert_text_theft(t, sizeof t, "", "", true);
    assert_string_equal(t,
                        "A device presented its credential with a wrong signature by its device key, so it "
                        "was logged out.");
    lw_alert_text_linked(t, sizeof t, "Chrome on Windows", "Lisbon, PT");
    assert_string_equal(t, "A new device was linked: Chrome on Windows, Lisbon, PT.");
    lw_alert_text_linked(t, sizeof t, "Build server", "");
    assert_string_equal(t, "A new device was linked: Build server.");
}

/* The longest names and places still fit LW_ALERT_TEXT_MAX. */
static void test_bounds(void **state)
{
    char name[LW_NAME_MAX], where[2 * LW_PLACE_MAX + 4];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    memset(where, 'w', sizeof where - 1);
    where[sizeof where - 1] = '\0';
    char t[LW_ALERT_TEXT_MAX];
    assert_int_equal(lw_alert_text_linked(t, sizeof t, name, where), LW_OK);
    assert_int_equal(
        lw_alert_text_theft(t, sizeof t, name, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", true), LW_OK);
    const char *names[LW_ALERT_NAMES_MAX] = {name, name, name};
    assert_int_equal(lw_alert_text_ended(t, sizeof t, "primary_inactive", 100000, names, LW_ALERT_NAMES_MAX),
                     LW_OK);
}

/* lw_alert_raise built alone: the domain library, a real SQLite store in a
 * temporary file and a fake events sink, through lw_domain_deps (no lw_app,
 * bus or transport in this program). The alert is stored, and the account
 * hears it; a burst counts into one alert, pushed again. */
typedef struct sink {
    int heard;
    char account[LW_ID_STRLEN];
    char last_id[LW_ID_STRLEN];
} sink;

static void sink_to_account(void *ctx, const char *account_id, const char *except_device, json_t *ev)
{
    sink *k = ctx;
    assert_null(except_device);
    assert_string_equal(json_string_value(json_object_get(ev, "event")), "alert");
    lw_strlcpy(k->account, account_id, sizeof k->account);
    const char *id = json_string_value(json_object_get(json_object_get(ev, "alert"), "id"));
    lw_strlcpy(k->last_id, id ? id : "", sizeof k->last_id);
    k->heard++;
}

static void test_raise_with_narrow_deps(void **state)
{
    (void)state;
    char dir[] = "/tmp/lw-test-alert-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char db[64];
    snprintf(db, sizeof db, "%s/t.db", dir);
    lw_config cfg;
    lw_config_defaults(&cfg);
    lw_store *store = NULL;
    assert_int_equal(lw_store_open(&store, db), LW_OK);

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
    assert_int_equal(lw_store_account_create(store, &a, &p, NULL), LW_OK);

    sink k = {0};
    lw_events events = {.ctx = &k, .to_account = sink_to_account};
    lw_domain_deps deps = {.store = store, .events = &events, .cfg = &cfg};

    assert_int_equal(lw_alert_raise(&deps, "acct1", "pin.changed", "acct1-p", "Your PIN was changed.", NULL),
                     LW_OK);
    assert_int_equal(k.heard, 1);
    assert_string_equal(k.account, "acct1");
    assert_int_equal(lw_alert_raise_burst(&deps, "acct1", "pin.failed", "acct1-p", "A wrong PIN.", NULL),
                     LW_OK);
    assert_int_equal(lw_alert_raise_burst(&deps, "acct1", "pin.failed", "acct1-p", "Two wrong PINs.", NULL),
                     LW_OK);
    assert_int_equal(k.heard, 3);

    lw_alert *list = NULL;
    size_t n = 0;
    assert_int_equal(lw_store_alert_list(store, "acct1", 10, &list, &n), LW_OK);
    assert_int_equal(n, 2); /* pin.changed, and one pin.failed counting two */
    int burst = -1;
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i].kind, "pin.failed") == 0)
            burst = list[i].count;
    assert_int_equal(burst, 2);
    lw_free(list);

    lw_store_close(store);
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pin_failed), cmocka_unit_test(test_duration_and_lock),
        cmocka_unit_test(test_ended),      cmocka_unit_test(test_theft_and_linked),
        cmocka_unit_test(test_bounds),     cmocka_unit_test(test_raise_with_narrow_deps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
