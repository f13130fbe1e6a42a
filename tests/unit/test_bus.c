/* The bus alone (bus.h): fake subscribers (no sockets), a fake peer (no
 * PostgreSQL) and fake hooks (no session cache): who gets told what, what the
 * other nodes hear, and what a notice from them does here. Also the one
 * builder of events (events.h) the bus serialises session.ended with. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "bus.h"
#include "events.h"
#include "lw.h"

typedef struct fake_sub {
    lw_bus_sub sub;
    lw_bus *bus;
    int sent, ended, end_code;
    char last[512];
} fake_sub;

static fake_sub *fake_of(lw_bus_sub *sub)
{
    return (fake_sub *)((char *)sub - offsetof(fake_sub, sub));
}

static void keep(fake_sub *f, const char *text, size_t len)
{
    snprintf(f->last, sizeof f->last, "%.*s", (int)len, text ? text : "");
}

static void fake_send(lw_bus_sub *sub, const char *text, size_t len)
{
    fake_sub *f = fake_of(sub);
    f->sent++;
    keep(f, text, len);
}

/* As ws.c does: an ended socket leaves the bus at once. */
static void fake_end(lw_bus_sub *sub, const char *text, size_t len, int code, const char *reason)
{
    fake_sub *f = fake_of(sub);
    f->ended++;
    f->end_code = code;
    if (text)
        keep(f, text, len);
    lw_bus_unsubscribe(f->bus, sub);
}

static const lw_bus_sub_ops fake_ops = {fake_send, fake_end};

typedef struct fake_peer {
    int published, flushed;
    char op[16], key[LW_ID_STRLEN], except[LW_ID_STRLEN], reason[32];
    bool had_event;
} fake_peer;

static void peer_publish(void *ctx, const char *op, const char *key, const char *except, const char *reason,
                         json_t *ev)
{
    fake_peer *p = ctx;
    p->published++;
    lw_strlcpy(p->op, op, sizeof p->op);
    lw_strlcpy(p->key, key, sizeof p->key);
    lw_strlcpy(p->except, except ? except : "", sizeof p->except);
    lw_strlcpy(p->reason, reason ? reason : "", sizeof p->reason);
    p->had_event = ev != NULL;
}

static void peer_flush(void *ctx)
{
    ((fake_peer *)ctx)->flushed++;
}

typedef struct fake_hooks {
    int forgot, completed, resynced, replayed;
    char forgot_id[LW_ID_STRLEN];
} fake_hooks;

static void hook_forget(void *ctx, const char *device_id)
{
    fake_hooks *h = ctx;
    h->forgot++;
    lw_strlcpy(h->forgot_id, device_id, sizeof h->forgot_id);
}

static void hook_complete(void *ctx, json_t *ev)
{
    ((fake_hooks *)ctx)->completed++;
    json_object_set_new(ev, "qr_svg", json_string("<svg/>"));
}

static int hook_resync(void *ctx)
{
    ((fake_hooks *)ctx)->resynced++;
    return LW_ESTORE;
}

static void hook_replay(void *ctx, int64_t since)
{
    ((fake_hooks *)ctx)->replayed++;
}

typedef struct fixture {
    lw_bus *bus;
    fake_peer peer;
    fake_hooks hooks;
    fake_sub d1a, d1b, d2, l1;
} fixture;

static void sub_init(fixture *f, fake_sub *s)
{
    memset(s, 0, sizeof *s);
    s->sub.ops = &fake_ops;
    s->bus = f->bus;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->bus = lw_bus_new();
    if (!f->bus)
        return -1;
    lw_bus_set_peer(f->bus, &(lw_bus_peer){.ctx = &f->peer, .publish = peer_publish, .flush = peer_flush});
    lw_bus_set_hooks(f->bus, &(lw_bus_hooks){.ctx = &f->hooks,
                                             .forget = hook_forget,
                                             .complete_link_event = hook_complete,
                                             .resync = hook_resync,
                                             .replay = hook_replay});
    sub_init(f, &f->d1a);
    sub_init(f, &f->d1b);
    sub_init(f, &f->d2);
    sub_init(f, &f->l1);
    assert_int_equal(lw_bus_subscribe_device(f->bus, &f->d1a.sub, "dev1", "acct1"), LW_OK);
    assert_int_equal(lw_bus_subscribe_device(f->bus, &f->d1b.sub, "dev1", "acct1"), LW_OK);
    assert_int_equal(lw_bus_subscribe_device(f->bus, &f->d2.sub, "dev2", "acct1"), LW_OK);
    assert_int_equal(lw_bus_subscribe_link(f->bus, &f->l1.sub, "req1"), LW_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    lw_bus_free(f->bus);
    free(f);
    return 0;
}

static void test_fan_out(void **state)
{
    fixture *f = *state;
    assert_int_equal(lw_bus_count(f->bus), 4);
    assert_int_equal(lw_bus_device_sockets(f->bus, "dev1"), 2);
    assert_int_equal(lw_bus_link_sockets(f->bus, "req1"), 1);
    json_t *ev = json_pack("{s:s}", "event", "x");
    lw_bus_to_device(f->bus, "dev1", ev);
    assert_int_equal(f->d1a.sent, 1);
    assert_int_equal(f->d1b.sent, 1);
    assert_int_equal(f->d2.sent, 0);
    assert_string_equal(f->d1a.last, "{\"event\":\"x\"}");
    assert_int_equal(f->peer.published, 1);
    assert_string_equal(f->peer.op, "dev");
    assert_string_equal(f->peer.key, "dev1");
    /* An account but the device that caused it. */
    lw_bus_to_account(f->bus, "acct1", "dev1", ev);
    assert_int_equal(f->d1a.sent, 1);
    assert_int_equal(f->d2.sent, 1);
    assert_int_equal(f->l1.sent, 0);
    assert_string_equal(f->peer.op, "acct");
    assert_string_equal(f->peer.except, "dev1");
    lw_bus_to_link(f->bus, "req1", ev);
    assert_int_equal(f->l1.sent, 1);
    assert_string_equal(f->peer.op, "link");
    json_decref(ev);
    lw_bus_flush(f->bus);
    assert_int_equal(f->peer.flushed, 1);
}

static void test_end_device(void **state)
{
    fixture *f = *state;
    lw_bus_end_device(f->bus, "dev1", "remote_logout");
    assert_int_equal(f->d1a.ended, 1);
    assert_int_equal(f->d1b.ended, 1);
    assert_int_equal(f->d1a.end_code, 4001);
    assert_int_equal(f->d2.ended, 0);
    json_t *got = json_loads(f->d1b.last, 0, NULL);
    assert_non_null(got);
    assert_string_equal(json_string_value(json_object_get(got, "event")), "session.ended");
    assert_string_equal(json_string_value(json_object_get(got, "message")),
                        "You were logged out from your phone.");
    json_decref(got);
    assert_int_equal(lw_bus_device_sockets(f->bus, "dev1"), 0);
    assert_int_equal(lw_bus_count(f->bus), 2);
    assert_string_equal(f->peer.op, "end");
    assert_string_equal(f->peer.reason, "remote_logout");
    assert_false(f->peer.had_event);
    /* The link socket closes after its final event. */
    lw_bus_close_link(f->bus, "req1");
    assert_int_equal(f->l1.ended, 1);
    assert_int_equal(f->l1.end_code, 1000);
    assert_string_equal(f->peer.op, "close_link");
    /* Shutdown closes what is left. */
    lw_bus_close_all(f->bus, 1012, "service restart");
    assert_int_equal(f->d2.ended, 1);
    assert_int_equal(f->d2.end_code, 1012);
    assert_int_equal(lw_bus_count(f->bus), 0);
}

static void test_receive(void **state)
{
    fixture *f = *state;
    /* Another node ended dev2: its cached credential is forgotten, its
     * socket here ends, and nothing goes back to the peer. */
    lw_bus_receive(f->bus, "end", "dev2", NULL, "logout_all", NULL);
    assert_int_equal(f->hooks.forgot, 1);
    assert_string_equal(f->hooks.forgot_id, "dev2");
    assert_int_equal(f->d2.ended, 1);
    assert_int_equal(f->peer.published, 0);
    lw_bus_receive(f->bus, "cred", "dev1", NULL, NULL, NULL);
    assert_int_equal(f->hooks.forgot, 2);
    assert_int_equal(f->d1a.ended, 0);
    /* A link event crossed without its QR code: completed, then delivered. */
    json_t *ev = json_pack("{s:s, s:s}", "event", "link.ref", "payload", "lw1:x");
    lw_bus_receive(f->bus, "link", "req1", NULL, NULL, ev);
    json_decref(ev);
    assert_int_equal(f->hooks.completed, 1);
    assert_int_equal(f->l1.sent, 1);
    assert_non_null(strstr(f->l1.last, "qr_svg"));
    ev = json_pack("{s:s}", "event", "y");
    lw_bus_receive(f->bus, "acct", "acct1", "dev1", NULL, ev);
    json_decref(ev);
    assert_int_equal(f->d1a.sent, 0);
    assert_int_equal(f->peer.published, 0);
    /* Missed notices: the hooks say what resynchronising means. */
    assert_int_equal(lw_bus_resync(f->bus), LW_ESTORE);
    lw_bus_replay(f->bus, 0);
    assert_int_equal(f->hooks.resynced, 1);
    assert_int_equal(f->hooks.replayed, 1);
    /* Unknown notices do nothing. */
    lw_bus_receive(f->bus, "nonsense", "dev1", NULL, NULL, NULL);
    lw_bus_receive(f->bus, "end", NULL, NULL, "logout", NULL);
    assert_int_equal(f->d1a.ended, 0);
}

static void test_events_port(void **state)
{
    fixture *f = *state;
    lw_events ev = lw_bus_events(f->bus);
    json_t *e = lw_event_link_state("link.scanned");
    lw_events_to_link(&ev, "req1", e);
    json_decref(e);
    assert_string_equal(f->l1.last, "{\"event\":\"link.scanned\"}");
    lw_events_end_device_here(&ev, "dev1", "admin_logout");
    assert_int_equal(f->d1a.ended, 1);
    assert_int_equal(f->peer.published, 1); /* only the link event: "here" stays here */
    char(*ids)[LW_ID_STRLEN] = NULL;
    size_t n = lw_events_devices_here(&ev, &ids);
    assert_int_equal(n, 1);
    assert_string_equal(ids[0], "dev2");
    lw_free(ids);
    /* A sink without functions drops everything. */
    lw_events none = {0};
    lw_events_to_device(&none, "dev2", NULL);
    lw_events_end_device(&none, "dev2", "logout");
    assert_int_equal(lw_events_devices_here(&none, &ids), 0);
    assert_int_equal(f->d2.ended, 0);
}

static void test_end_reasons(void **state)
{
    (void)state;
    assert_true(lw_end_reason_valid("logout"));
    assert_true(lw_end_reason_valid(LW_END_RELINKED));
    assert_false(lw_end_reason_valid("bored"));
    assert_string_equal(lw_end_reason_message("logout"), "You logged out on this device.");
    assert_string_equal(lw_end_reason_message("bored"), "Your session ended.");
    assert_string_equal(lw_end_reason_phrase("remote_logout"), "logged out from your phone");
    assert_string_equal(lw_end_reason_phrase("bored"), "logged out");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fan_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_end_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_receive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_port, setup, teardown),
        cmocka_unit_test(test_end_reasons),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
