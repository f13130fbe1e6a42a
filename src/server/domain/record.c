#include "record.h"

#include <string.h>

#include "lw.h"

static json_t *time_or_null(int64_t ms)
{
    if (ms <= 0)
        return json_null();
    char t[LW_TIME_STRLEN];
    lw_time_format(ms, t);
    return json_string(t);
}

/* One place of the record: first seen (where it was linked) or last seen. */
static json_t *place(const char *ip, const char *country, const char *region, const char *city,
                     const char *network)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "ip", ip, "country", country, "region", region, "city",
                     city, "network", network);
}

json_t *lw_record_json(const lw_session *s, const char *current_device)
{
    uint8_t fp[LW_FP_LEN];
    char fphex[2 * LW_FP_LEN + 1];
    lw_fingerprint(fp, s->public_key);
    lw_hex_encode(fphex, fp, sizeof fp);
    bool ended = strcmp(s->state, "ended") == 0;
    /* The top-level place is where it was last seen, every field of it from
     * the same lookup: a session starts last seen where it was linked, and a
     * move to an address GeoIP knows nothing about leaves these empty rather
     * than mixing in the old place (PRODUCT.md §4: empty, never wrong). */
    json_t *r = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "id",
                          s->id, "role", s->role, "name", s->name, "browser", s->client.browser,
                          "browser_version", s->client.browser_version, "os", s->client.os, "os_version",
                          s->client.os_version, "device_model", s->client.device_model, "ip", s->last.ip,
                          "country", s->last.country, "region", s->last.region, "city", s->last.city,
                          "network", s->last.network, "key_fingerprint", fphex);
    if (!r)
        return NULL;
    json_object_set_new(r, "linked_at", time_or_null(s->linked_at));
    json_object_set_new(r, "last_active_at", time_or_null(s->last_active_at));
    json_object_set_new(r, "state", json_string(s->state));
    json_object_set_new(r, "ended_at", ended ? time_or_null(s->ended_at) : json_null());
    json_object_set_new(r, "end_reason", ended ? json_string(s->end_reason) : json_null());
    json_object_set_new(
        r, "first_seen",
        place(s->first.ip, s->first.country, s->first.region, s->first.city, s->first.network));
    json_object_set_new(r, "last_seen",
                        place(s->last.ip, s->last.country, s->last.region, s->last.city, s->last.network));
    /* The device key and, for a companion, the primary's account signature
     * over it, as stored at approval: the primary checks them itself
     * (PRODUCT.md §2.5), so the list cannot hold a device it never signed
     * without it noticing. A primary signs nobody's key for itself. */
    char pk[lw_b64_enc_len(LW_PK_LEN)];
    lw_b64_encode(pk, s->public_key, LW_PK_LEN);
    json_object_set_new(r, "public_key", json_string(pk));
    if (strcmp(s->role, LW_ROLE_COMPANION) == 0) {
        char sig[lw_b64_enc_len(LW_SIG_LEN)];
        lw_b64_encode(sig, s->account_sig, LW_SIG_LEN);
        json_object_set_new(r, "account_signature", json_string(sig));
    } else {
        json_object_set_new(r, "account_signature", json_null());
    }
    json_object_set_new(r, "persistent", json_boolean(s->persistent));
    json_object_set_new(r, "current", json_boolean(current_device && strcmp(current_device, s->id) == 0));
    return r;
}
