#include "events.h"

#include <string.h>

#include "alert.h"
#include "lw.h"
#include "qr.h"

json_t *lw_event_alert(const lw_alert *a)
{
    return json_pack("{s:s, s:o}", "event", "alert", "alert", lw_alert_json(a));
}

json_t *lw_event_session_ended(const char *reason)
{
    return json_pack("{s:s, s:s, s:s}", "event", "session.ended", "reason", reason, "message",
                     lw_end_reason_message(reason));
}

json_t *lw_event_device_ended(const char *device_id, const char *reason, json_t *device_ids)
{
    return json_pack("{s:s, s:s, s:s, s:o}", "event", "device.ended", "device_id", device_id, "reason",
                     reason, "device_ids", device_ids);
}

json_t *lw_event_device_linked(json_t *device)
{
    return json_pack("{s:s, s:o}", "event", "device.linked", "device", device);
}

json_t *lw_event_link_ref(const char *payload, const char *qr_svg, int64_t ref_expires_in, int64_t expires_in)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:I}", "event", "link.ref", "payload", payload, "qr_svg", qr_svg,
                     "ref_expires_in", (json_int_t)ref_expires_in, "expires_in", (json_int_t)expires_in);
}

void lw_event_link_complete(json_t *ev)
{
    const char *payload = json_string_value(json_object_get(ev, "payload"));
    if (!payload || json_object_get(ev, "qr_svg"))
        return;
    char *svg = lw_qr_svg(payload);
    if (svg)
        json_object_set_new(ev, "qr_svg", json_string(svg));
    lw_free(svg);
}

json_t *lw_event_link_state(const char *name)
{
    return json_pack("{s:s}", "event", name);
}

json_t *lw_event_link_denied_limit(const char *message, long limit)
{
    return json_pack("{s:s, s:s, s:s, s:I}", "event", "link.denied", "reason", "limit", "message", message,
                     "limit", (json_int_t)limit);
}

json_t *lw_event_proof_challenge(json_t *challenge, int64_t token_expires_in)
{
    return json_pack("{s:s, s:o, s:I}", "event", "proof.challenge", "challenge", challenge,
                     "token_expires_in", (json_int_t)token_expires_in);
}

json_t *lw_event_hello(bool link, const char *id)
{
    return json_pack("{s:s, s:s}", "event", "hello", link ? "request_id" : "device_id", id);
}

/* Each reason once, with its two sentences: the one the ended device shows
 * (second person) and what the device.ended alert says happened to it (third
 * person, after "was"/"were"). */
static const struct {
    const char *reason, *message, *phrase;
} reasons[] = {
    {"logout", "You logged out on this device.", "logged out on the device itself"},
    {"remote_logout", "You were logged out from your phone.", "logged out from your phone"},
    {"logout_all", "You were logged out from your phone (all devices were logged out).",
     "logged out from your phone (log out all devices)"},
    {"inactive", "You were logged out because this device was not used for a long time.",
     "logged out after a long time without use"},
    {"primary_inactive", "You were logged out because your phone was not used for 14 days.",
     "logged out because your phone was not used for too long"},
    {"max_age", "You were logged out because this session reached its maximum age.",
     "logged out at the maximum age of a session"},
    {"token_theft", "You were logged out because this device's credential was used without its key.",
     "logged out because a credential was used without its device key"},
    {"account_reset", "You were logged out because the account was reset.",
     "logged out because the account was reset"},
    {"admin_logout", "You were logged out by the server's administrator.",
     "logged out by the server's administrator"},
    {"account_deleted", "You were logged out because the account was deleted.",
     "logged out because the account was deleted"},
    {"server_key_changed",
     "You were logged out because the server's key was replaced; link this device again.",
     "logged out because the server's key was replaced"},
    {LW_END_RELINKED, "This device was linked again: this earlier session was replaced by the new one.",
     "replaced because the same device was linked again"},
    {"recovered",
     "You were logged out because the account was recovered with its recovery key on a new phone.",
     "logged out because the account was recovered on a new phone"},
    {"moved", "This phone is no longer your Linkward: the account moved to a new phone.",
     "logged out because the account moved to a new phone"},
};

static int find(const char *reason)
{
    for (size_t i = 0; reason && i < sizeof reasons / sizeof reasons[0]; i++)
        if (strcmp(reasons[i].reason, reason) == 0)
            return (int)i;
    return -1;
}

const char *lw_end_reason_message(const char *reason)
{
    int i = find(reason);
    return i < 0 ? "Your session ended." : reasons[i].message;
}

const char *lw_end_reason_phrase(const char *reason)
{
    int i = find(reason);
    return i < 0 ? "logged out" : reasons[i].phrase;
}

bool lw_end_reason_valid(const char *reason)
{
    return find(reason) >= 0;
}
