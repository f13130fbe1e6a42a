#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <h2o.h>

#include "alert.h"
#include "events.h"
#include "log.h"
#include "lw.h"
#include "map.h"
#include "metrics.h"
#include "place.h"
#include "proof.h"
#include "risk.h"

/* What the cache keeps per live session: only what a request check needs. */
typedef struct centry {
    char selector[LW_ID_STRLEN];
    char device_id[LW_ID_STRLEN];
    char account_id[LW_ID_STRLEN];
    bool primary;
    bool dirty;
    uint8_t cred_hash[LW_HASH_LEN];
    int64_t cred_expires_at;
    int64_t last_active_at;
    int64_t last_written_at;
    int64_t checked_at; /* lw_mono_ms when the store last showed it active (several nodes) */
    /* Where it was last used: what impossible-travel and country-change
     * checks compare a new address with. The city is looked up again when
     * written, so the entry stays small. */
    char last_ip[LW_IP_MAX];
    char last_country[8];
    double last_lat, last_lon;
    bool last_has_loc;
    bool place_dirty;
    int64_t last_place_at;
    lw_move_alerts move_alerts; /* the move-alert throttle (risk.c), kept across credential refreshes */
    char *view;                 /* rendered GET /v1/session answer, or NULL */
    uint32_t view_len, view_ts;
} centry;

/* How often a server alone on its SQLite file looks whether another process
 * wrote to it, when no request asks sooner (see check_foreign_writes). */
#define LW_FOREIGN_CHECK_MS 250

/* Several nodes: how long a cached session is trusted on notifications alone
 * before the store is read once again. Notifications are exact while the
 * relay is healthy, except in one case no listener can notice: the node that
 * revoked a session died (or lost PostgreSQL) between its commit and its
 * NOTIFY. This bounds that case at the cost of one read per device per 10 s. */
#define LW_SESSION_RECHECK_MS 10000

struct lw_sessions {
    const lw_domain_deps *deps;
    lw_map *by_selector;
    lw_map *by_device;
    /* Another server on the same SQLite file (check_foreign_writes). */
    int64_t foreign_checked_at;
    int64_t foreign_logged_at;
    bool sockets_stale; /* a change was seen by a request: the timer checks the sockets */
    h2o_timeout_t foreign_every;
    h2o_timeout_entry_t foreign_timer;
    lw_sessions_vouch_fn *vouch; /* several nodes: may the cache be trusted now? */
    void *vouch_ctx;
    /* With PostgreSQL a store call waits on a fiber while other requests run
     * (fiber.h), and one of them may end a session meanwhile. So nothing read
     * from the store before a wait is cached after it if an entry was dropped
     * in between (drops), and a view rendered across a wait is kept only if
     * no view was invalidated meanwhile (views). */
    uint64_t drops, views;
    /* Last-active times of sessions forgotten at another node's word, to be
     * written once the notice is applied (lw_sessions_write_late): the write
     * may wait, and a batch of ends must drop every credential first. */
    struct pending_touch *late;
    size_t nlate;
};

void lw_sessions_set_vouch(lw_sessions *s, lw_sessions_vouch_fn *fn, void *ctx)
{
    s->vouch = fn;
    s->vouch_ctx = ctx;
}

static void check_foreign_writes(lw_sessions *s, bool sockets);

static void on_foreign_timer(h2o_timeout_entry_t *entry)
{
    lw_sessions *s = H2O_STRUCT_FROM_MEMBER(lw_sessions, foreign_timer, entry);
    check_foreign_writes(s, true);
    h2o_timeout_link(s->deps->loop, &s->foreign_every, &s->foreign_timer);
}

lw_sessions *lw_sessions_new(const lw_domain_deps *deps)
{
    lw_sessions *s = lw_calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->deps = deps;
    s->by_selector = lw_map_new();
    s->by_device = lw_map_new();
    if (!s->by_selector || !s->by_device) {
        lw_sessions_free(s);
        return NULL;
    }
    if (deps->loop && !deps->shared_store) {
        s->foreign_timer.cb = on_foreign_timer;
        h2o_timeout_init(deps->loop, &s->foreign_every, LW_FOREIGN_CHECK_MS);
        h2o_timeout_link(deps->loop, &s->foreign_every, &s->foreign_timer);
    }
    return s;
}

static void free_entry(const char *key, void *value, void *arg)
{
    centry *e = value;
    lw_free(e->view);
    lw_wipe(e, sizeof *e);
    lw_free(e);
}

void lw_sessions_free(lw_sessions *s)
{
    if (!s)
        return;
    if (h2o_timeout_is_linked(&s->foreign_timer))
        h2o_timeout_unlink(&s->foreign_timer);
    if (s->by_device)
        lw_map_each(s->by_device, free_entry, NULL);
    lw_map_free(s->by_device);
    lw_map_free(s->by_selector);
    lw_free(s->late);
    lw_free(s);
}

static void drop(lw_sessions *s, const char *device_id)
{
    s->drops++;
    s->views++;
    centry *e = lw_map_del(s->by_device, device_id);
    if (!e)
        return;
    lw_map_del(s->by_selector, e->selector);
    lw_free(e->view);
    lw_wipe(e, sizeof *e);
    lw_free(e);
}

static centry *cache_put(lw_sessions *s, const lw_session *sess)
{
    drop(s, sess->id);
    centry *e = lw_calloc(1, sizeof *e);
    if (!e)
        return NULL;
    lw_strlcpy(e->selector, sess->cred_selector, sizeof e->selector);
    lw_strlcpy(e->device_id, sess->id, sizeof e->device_id);
    lw_strlcpy(e->account_id, sess->account_id, sizeof e->account_id);
    e->primary = strcmp(sess->role, LW_ROLE_PRIMARY) == 0;
    memcpy(e->cred_hash, sess->cred_hash, sizeof e->cred_hash);
    e->cred_expires_at = sess->cred_expires_at;
    e->last_active_at = sess->last_active_at;
    e->last_written_at = sess->last_active_at;
    e->checked_at = lw_mono_ms();
    /* The last place as a whole, or (a session built here, not yet stored
     * with its last place) the first one as a whole: never a mix of the two. */
    bool last = sess->last.ip[0] != '\0';
    lw_strlcpy(e->last_ip, sess->last.ip, sizeof e->last_ip);
    lw_strlcpy(e->last_country, last ? sess->last.country : sess->first.country, sizeof e->last_country);
    e->last_lat = last ? sess->last.lat : sess->first.lat;
    e->last_lon = last ? sess->last.lon : sess->first.lon;
    e->last_has_loc = last ? sess->last.has_loc : sess->first.has_loc;
    e->last_place_at = sess->last_active_at;
    if (lw_map_put(s->by_device, e->device_id, e) != LW_OK) {
        lw_free(e);
        return NULL;
    }
    if (lw_map_put(s->by_selector, e->selector, e) != LW_OK) {
        lw_map_del(s->by_device, e->device_id);
        lw_free(e);
        return NULL;
    }
    return e;
}

/* The entry may be gone or replaced when the write returns (the store call
 * may wait): what was written is copied first, and the entry looked up again. */
typedef struct pending_touch {
    char device_id[LW_ID_STRLEN], ip[LW_IP_MAX];
    int64_t at;
    bool place;
} pending_touch;

static pending_touch touch_of(const centry *e)
{
    pending_touch t = {.at = e->last_active_at, .place = e->place_dirty};
    lw_strlcpy(t.device_id, e->device_id, sizeof t.device_id);
    lw_strlcpy(t.ip, e->last_ip, sizeof t.ip);
    return t;
}

static void write_touch(lw_sessions *s, const pending_touch *t)
{
    const char *device_id = t->device_id, *ip = t->ip;
    int64_t at = t->at;
    bool place = t->place;
    lw_place where;
    if (place)
        lw_place_lookup(s->deps, ip, &where, NULL);
    int rc = lw_store_session_touch(s->deps->store, device_id, at, place ? &where : NULL);
    if (rc != LW_OK && rc != LW_ENOTFOUND) {
        lw_log_warn("session", "cannot write last-active of %.8s: %s", device_id, lw_strerror(rc));
        return;
    }
    centry *e = lw_map_get(s->by_device, device_id);
    if (!e)
        return;
    e->last_written_at = at;
    if (e->last_active_at == at)
        e->dirty = false;
    if (place && strcmp(e->last_ip, ip) == 0)
        e->place_dirty = false;
}

static void write_last_active(lw_sessions *s, centry *e)
{
    pending_touch t = touch_of(e);
    write_touch(s, &t);
}

/* The device is used from a new address: look it up, judge the move,
 * remember it. Judging may raise an alert, a store call that may wait: the
 * entry is looked up again after it, and returned (NULL: gone meanwhile). */
static centry *moved(lw_sessions *s, centry *e, const char *ip, int64_t now)
{
    lw_place from, to;
    /* The cache keeps only what the checks need; the names are looked up again. */
    lw_place_lookup(s->deps, e->last_ip, &from, NULL);
    lw_strlcpy(from.country, e->last_country, sizeof from.country);
    from.lat = e->last_lat;
    from.lon = e->last_lon;
    from.has_loc = e->last_has_loc;
    lw_place_lookup(s->deps, ip, &to, NULL);
    if (e->last_ip[0]) {
        char device_id[LW_ID_STRLEN], account_id[LW_ID_STRLEN];
        lw_strlcpy(device_id, e->device_id, sizeof device_id);
        lw_strlcpy(account_id, e->account_id, sizeof account_id);
        lw_move_alerts seen = e->move_alerts;
        lw_risk_on_move(s->deps, account_id, device_id, &from, &to, now - e->last_place_at, now, &seen);
        if (!(e = lw_map_get(s->by_device, device_id)))
            return NULL;
        e->move_alerts = seen;
    }
    lw_strlcpy(e->last_ip, ip, sizeof e->last_ip);
    lw_strlcpy(e->last_country, to.country, sizeof e->last_country);
    e->last_lat = to.lat;
    e->last_lon = to.lon;
    e->last_has_loc = to.has_loc;
    e->last_place_at = now;
    e->place_dirty = true;
    lw_free(e->view); /* the record shows where it was last used */
    e->view = NULL;
    s->views++;
    return e;
}

/* A session check that reads the store, by why ("miss": not cached; with
 * several nodes "unhealthy": the relay cannot vouch for the cache, "recheck":
 * LW_SESSION_RECHECK_MS passed). Flat on a healthy node's warm cache. */
static void count_read(const char *why)
{
    char label[32];
    snprintf(label, sizeof label, "why=\"%s\"", why);
    lw_metrics_inc("linkward_session_store_reads_total", label);
}

/*
 * Several nodes: may a cached session be trusted without reading the store?
 * Only while the relay is healthy (relay.h: every notification committed
 * until LW_RELAY_HEALTHY_MS ago has been applied here, and every revocation
 * notifies: an end, a batch of ends, a replaced credential, a resync) and
 * the store confirmed it less than LW_SESSION_RECHECK_MS ago. NULL when
 * trusted, else why not (for count_read).
 *
 * A fill never outlives the notification of an earlier revocation. With
 * PostgreSQL the read waits on a fiber, and the loop applies notifications
 * (and runs other requests' ends) meanwhile; so an entry is filled only if
 * no entry was dropped while the read waited (s->drops). Say this node
 * reads the row while another node ends the session: if the end committed
 * before the read, the read shows it ended and nothing is cached; if after,
 * its NOTIFY is committed later still: handled before the fill, it dropped
 * an entry and the fill does not happen; handled after, it drops the entry. Entries filled while the
 * relay was unhealthy (or before its first LISTEN) may have missed a
 * notification: the resynchronisation that follows every new LISTEN
 * connection drops the whole cache before the first heartbeat of that
 * connection can make the node healthy again.
 */
static const char *distrust(lw_sessions *s, const centry *e)
{
    int64_t mono = lw_mono_ms();
    if (!s->vouch || !s->vouch(s->vouch_ctx, mono))
        return "unhealthy";
    if (mono - e->checked_at >= LW_SESSION_RECHECK_MS)
        return "recheck";
    return NULL;
}

int lw_sessions_check(lw_sessions *s, const char *text, size_t len, bool allow_expired, lw_principal *out,
                      char end_reason[LW_REASON_MAX])
{
    lw_cred cred;
    if (lw_cred_parse(&cred, text, len) != LW_OK || cred.kind != LW_CRED_SESSION) {
        lw_cred_wipe(&cred);
        return LW_ENOTFOUND;
    }
    char selector[LW_ID_STRLEN];
    lw_cred_selector_text(text, selector);
    uint8_t hash[LW_HASH_LEN];
    lw_cred_hash(&cred, s->deps->hash_key, hash);
    lw_cred_wipe(&cred);

    check_foreign_writes(s, false);
    centry *e = lw_map_get(s->by_selector, selector);
    const char *why = NULL;
    lw_session sess;
    bool read = false;       /* sess holds a stored session (wiped at the end) */
    bool from_store = false; /* the answer comes from sess, not from e */
    if (!e) {
        count_read("miss");
        uint64_t drops = s->drops;
        int rc = lw_store_session_get_by_selector(s->deps->store, selector, &sess);
        if (rc != LW_OK)
            return rc == LW_ENOTFOUND ? LW_ENOTFOUND : rc;
        read = true;
        if (!lw_ct_equal(sess.cred_hash, hash, LW_HASH_LEN)) {
            lw_wipe(&sess, sizeof sess);
            return LW_ENOTFOUND;
        }
        if (strcmp(sess.state, "active") != 0) {
            lw_strlcpy(end_reason, sess.end_reason, LW_REASON_MAX);
            lw_wipe(&sess, sizeof sess);
            return LW_EDENIED;
        }
        /* A session may have ended while the read waited: then what it
         * read answers this request only (it ran alongside the end), and
         * the next one reads again. */
        if (s->drops != drops)
            from_store = true;
        else if (!(e = cache_put(s, &sess))) {
            lw_wipe(&sess, sizeof sess);
            return LW_ENOMEM;
        }
    } else if (!lw_ct_equal(e->cred_hash, hash, LW_HASH_LEN)) {
        return LW_ENOTFOUND;
    } else if (s->deps->shared_store && (why = distrust(s, e)) != NULL) {
        /* Several nodes, and the cache cannot be vouched for (distrust):
         * another node may have ended this session and this one may not have
         * heard. The store is the one truth every node shares. The entry is
         * looked up again after the read, which may have waited. */
        count_read(why);
        char device_id[LW_ID_STRLEN];
        lw_strlcpy(device_id, e->device_id, sizeof device_id);
        int rc = lw_store_session_get(s->deps->store, device_id, &sess);
        read = true;
        e = lw_map_get(s->by_selector, selector);
        if (rc == LW_OK && (strcmp(sess.state, "active") != 0 || strcmp(sess.cred_selector, selector) != 0)) {
            lw_strlcpy(end_reason, sess.end_reason, LW_REASON_MAX);
            bool ended = strcmp(sess.state, "active") != 0;
            drop(s, device_id);
            lw_wipe(&sess, sizeof sess);
            return ended ? LW_EDENIED : LW_ENOTFOUND;
        }
        if (rc != LW_OK) {
            lw_wipe(&sess, sizeof sess);
            return rc == LW_ENOTFOUND ? LW_ENOTFOUND : rc;
        }
        if (e)
            e->checked_at = lw_mono_ms();
        else
            from_store = true; /* dropped while the read waited: answered from the read */
    }

    if (from_store) {
        lw_strlcpy(out->device_id, sess.id, sizeof out->device_id);
        lw_strlcpy(out->account_id, sess.account_id, sizeof out->account_id);
        out->primary = strcmp(sess.role, LW_ROLE_PRIMARY) == 0;
        out->cred_expires_at = sess.cred_expires_at;
    } else {
        lw_strlcpy(out->device_id, e->device_id, sizeof out->device_id);
        lw_strlcpy(out->account_id, e->account_id, sizeof out->account_id);
        out->primary = e->primary;
        out->cred_expires_at = e->cred_expires_at;
    }
    if (read)
        lw_wipe(&sess, sizeof sess);
    if (lw_now_ms() >= out->cred_expires_at && !allow_expired) {
        memset(out, 0, sizeof *out);
        return LW_EEXPIRED;
    }
    return LW_OK;
}

void lw_sessions_seen(lw_sessions *s, const lw_principal *who, const char *ip, int64_t now)
{
    centry *e = lw_map_get(s->by_device, who->device_id);
    if (!e)
        return; /* not cached (out of memory on the fill): nothing to keep it in */
    e->last_active_at = now;
    if (ip && ip[0] && strcmp(ip, e->last_ip) != 0) {
        if (!(e = moved(s, e, ip, now)))
            return;
        e->last_active_at = now;
    } else if (ip && ip[0]) {
        e->last_place_at = now;
    }
    e->dirty = true;
    if (now - e->last_written_at >= s->deps->cfg->last_active_write_ms)
        write_last_active(s, e);
}

int lw_sessions_prepare(lw_sessions *s, lw_session *sess, char token[LW_CRED_STRLEN])
{
    lw_cred cred;
    lw_cred_new(&cred, LW_CRED_SESSION);
    lw_cred_selector_str(&cred, sess->cred_selector);
    lw_cred_hash(&cred, s->deps->hash_key, sess->cred_hash);
    sess->cred_expires_at = lw_now_ms() + s->deps->cfg->credential_ttl_ms;
    lw_random(sess->challenge, sizeof sess->challenge);
    lw_cred_format(&cred, token);
    lw_cred_wipe(&cred);
    return LW_OK;
}

uint64_t lw_sessions_epoch(const lw_sessions *s)
{
    return s->drops;
}

void lw_sessions_cache(lw_sessions *s, const lw_session *sess, uint64_t epoch)
{
    if (s->drops != epoch) {
        drop(s, sess->id); /* a session ended while its caller waited: the next check reads the store */
        return;
    }
    if (!cache_put(s, sess))
        drop(s, sess->id); /* the store has it; the next check reloads */
}

int lw_sessions_issue(lw_sessions *s, lw_session *sess, char token[LW_CRED_STRLEN])
{
    lw_sessions_prepare(s, sess, token);
    uint64_t drops = s->drops;
    int rc = lw_store_session_set_credential(s->deps->store, sess);
    if (rc != LW_OK) {
        lw_wipe(token, LW_CRED_STRLEN);
        return rc;
    }
    /* Carry the in-memory last-active over so no activity is lost. */
    centry *old = lw_map_get(s->by_device, sess->id);
    if (old && old->last_active_at > sess->last_active_at)
        sess->last_active_at = old->last_active_at;
    /* A refresh every few minutes must not reset the move-alert throttle. */
    lw_move_alerts moves = old ? old->move_alerts : (lw_move_alerts){0};
    if (old && old->dirty)
        write_last_active(s, old); /* may wait: old is not used after it */
    /* Cached only if no session ended while the store calls waited (it may
     * have been this one, after the new credential was written). */
    centry *e = s->drops == drops ? cache_put(s, sess) : NULL;
    if (!e)
        drop(s, sess->id); /* the store has it; the next check reloads */
    else
        e->move_alerts = moves;
    /* Other nodes may have the old credential cached: as here, it stops
     * working there (told before the answer with the new one leaves). */
    lw_events_credential_replaced(s->deps->events, sess->id);
    return LW_OK;
}

int lw_sessions_refresh(lw_sessions *s, lw_session *sess, const uint8_t *sig, const char *ip,
                        char token[LW_CRED_STRLEN])
{
    if (sig && lw_proof_verify(sig, LW_PROOF_REFRESH, sess->id, sess->challenge, sizeof sess->challenge,
                               sess->public_key) == LW_OK)
        return lw_sessions_issue(s, sess, token);
    char addr[LW_LOG_ADDR_MAX];
    lw_log_warn("session", "refresh of %.8s from %s without a valid device-key proof: ending it", sess->id,
                lw_log_addr(ip, addr));
    char text[LW_ALERT_TEXT_MAX];
    lw_alert_text_theft(text, sizeof text, sess->name, ip, sig != NULL);
    lw_alert_raise(s->deps, sess->account_id, "token.theft_suspected", sess->id, text,
                   json_pack("{s:s, s:s, s:s}", "ip", ip, "name", sess->name, "proof",
                             sig ? "wrong signature" : "missing"));
    int rc = lw_sessions_end(s, sess->id, "token_theft");
    if (rc != LW_OK && rc != LW_ECONFLICT)
        lw_log_error("session", "cannot end %.8s after a theft: %s", sess->id, lw_strerror(rc));
    /* Refused either way: the proof failed. */
    return LW_EDENIED;
}

/* After sessions ended in the store: drop them from the cache, close their
 * sockets with session.ended, tell the other devices (device.ended), and raise
 * device.ended alerts (one per account when several ended together). */
static void tell_ended(lw_sessions *s, const lw_ended *e, size_t n)
{
    const lw_domain_deps *deps = s->deps;
    /* First close every ended device's sockets, so that in a logout-all the
     * companions hear their own session.ended at once and not their siblings'
     * device.ended first; then tell the devices that remain. */
    for (size_t i = 0; i < n; i++) {
        char label[64];
        snprintf(label, sizeof label, "reason=\"%s\"", e[i].reason);
        lw_metrics_inc("linkward_sessions_ended_total", label);
        drop(s, e[i].device_id);
        lw_events_end_device(deps->events, e[i].device_id, e[i].reason);
    }
    lw_events_flush(deps->events); /* other nodes drop them before the answer leaves */
    /* Country-only privacy: one transaction redacts every ended record not
     * redacted yet (these and whatever a crash left) with its alerts; the
     * sweeper runs the same at start and on every pass, so a failure here
     * only delays it. */
    if (n > 0 && deps->cfg->privacy_country_only) {
        int rc = lw_store_session_redact_ended(deps->store, NULL);
        if (rc != LW_OK)
            lw_log_error("session", "cannot redact ended records: %s", lw_strerror(rc));
    }
    /* Then one device.ended per (account, reason) run: a logout-all of 1,000
     * devices is one message to each remaining socket, not 1,000. */
    for (size_t i = 0; i < n;) {
        size_t j = i;
        json_t *ids = json_array();
        while (j < n && strcmp(e[j].account_id, e[i].account_id) == 0 &&
               strcmp(e[j].reason, e[i].reason) == 0)
            json_array_append_new(ids, json_string(e[j++].device_id));
        json_t *ev = lw_event_device_ended(e[i].device_id, e[i].reason, ids);
        lw_events_to_account(deps->events, e[i].account_id, e[i].device_id, ev);
        json_decref(ev);
        for (size_t k = i; k < j; k++)
            lw_log_info("session", "device %.8s ended: %s", e[k].device_id, e[k].reason);
        i = j;
    }
    /* One alert per (account, reason) run, listing the devices: logging out
     * 1,000 devices at once is one event for the holder, not 1,000. */
    for (size_t i = 0; i < n;) {
        size_t j = i;
        json_t *ids = json_array();
        while (j < n && strcmp(e[j].account_id, e[i].account_id) == 0 &&
               strcmp(e[j].reason, e[i].reason) == 0)
            json_array_append_new(ids, json_string(e[j++].device_id));
        /* The sentence names the devices (their records outlive them), in the
         * third person: the phone reads it too, and it was not logged out. */
        char names[LW_ALERT_NAMES_MAX][LW_NAME_MAX];
        const char *named[LW_ALERT_NAMES_MAX];
        size_t nnames = 0;
        for (size_t k = i; k < j && nnames < LW_ALERT_NAMES_MAX; k++) {
            lw_session ended;
            names[nnames][0] = '\0';
            if (lw_store_session_get(deps->store, e[k].device_id, &ended) == LW_OK)
                lw_strlcpy(names[nnames], ended.name, sizeof names[nnames]);
            lw_wipe(&ended, sizeof ended);
            named[nnames] = names[nnames];
            nnames++;
        }
        char text[LW_ALERT_TEXT_MAX];
        lw_alert_text_ended(text, sizeof text, e[i].reason, j - i, named, nnames);
        json_t *details = json_pack("{s:s, s:I, s:o}", "reason", e[i].reason, "count", (json_int_t)(j - i),
                                    "device_ids", ids);
        lw_alert_raise(deps, e[i].account_id, "device.ended", j - i == 1 ? e[i].device_id : "", text,
                       details);
        i = j;
    }
}

/* After the store deleted sessions with their account: drop them from the
 * cache and close their sockets with session.ended. Nobody is left to tell
 * (no device.ended, no alert). */
static void tell_gone(lw_sessions *s, const lw_ended *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char label[64];
        snprintf(label, sizeof label, "reason=\"%s\"", e[i].reason);
        lw_metrics_inc("linkward_sessions_ended_total", label);
        drop(s, e[i].device_id);
        lw_events_end_device(s->deps->events, e[i].device_id, e[i].reason);
        lw_log_info("session", "device %.8s ended: %s", e[i].device_id, e[i].reason);
    }
    lw_events_flush(s->deps->events); /* other nodes drop them before the answer leaves */
}

/* One device: its account is read first, for the device.ended it causes. */
static int end_device(lw_sessions *s, const char *device_id, const char *reason, lw_ended **out, size_t *n)
{
    lw_session sess;
    int rc = lw_store_session_get(s->deps->store, device_id, &sess);
    if (rc == LW_OK)
        rc = lw_store_session_end(s->deps->store, device_id, reason, lw_now_ms());
    lw_ended *e = rc == LW_OK ? lw_calloc(1, sizeof *e) : NULL;
    if (rc == LW_OK && e) {
        lw_strlcpy(e->device_id, device_id, sizeof e->device_id);
        lw_strlcpy(e->account_id, sess.account_id, sizeof e->account_id);
        lw_strlcpy(e->reason, reason, sizeof e->reason);
    } else if (rc == LW_OK) {
        /* Ended in the store, and not enough memory to tell it: the cache at
         * least must not keep accepting the credential. */
        drop(s, device_id);
        rc = LW_ENOMEM;
    }
    lw_wipe(&sess, sizeof sess);
    *out = e;
    *n = e ? 1 : 0;
    return rc;
}

int lw_sessions_end_where(lw_sessions *s, const lw_end_request *w, lw_end_result *res)
{
    lw_store *st = s->deps->store;
    lw_ended *ended = NULL;
    size_t n = 0;
    long purged = 0;
    int64_t now = lw_now_ms();
    int rc;
    switch (w->scope) {
    case LW_END_DEVICE:
        rc = end_device(s, w->device_id, w->reason, &ended, &n);
        break;
    case LW_END_ACCOUNT:
        rc = lw_store_session_end_all(st, w->account_id, w->role, w->except, w->reason, now, &ended, &n);
        break;
    case LW_END_EVERY:
        rc = lw_store_session_end_every(st, w->role, w->reason, now, &ended, &n);
        break;
    case LW_END_DELETE:
        rc = lw_store_account_delete(st, w->account_id, &ended, &n);
        break;
    case LW_END_SWEEP:
        /* Inactivity is judged on the stored times: write what is pending. */
        lw_sessions_flush(s, true);
        rc = lw_store_sweep(st, w->sweep, &ended, &n, &purged);
        break;
    case LW_END_TOLD:
        rc = LW_OK;
        if (w->ntold > 0) {
            ended = lw_malloc(w->ntold * sizeof *ended);
            if (!ended) {
                for (size_t i = 0; i < w->ntold; i++)
                    drop(s, w->told[i].device_id);
                rc = LW_ENOMEM;
                break;
            }
            memcpy(ended, w->told, w->ntold * sizeof *ended);
            n = w->ntold;
        }
        break;
    default:
        rc = LW_EINVAL;
        break;
    }
    if (rc != LW_OK) {
        lw_free(ended);
        ended = NULL;
        n = 0;
        purged = 0;
    } else if (w->scope == LW_END_DELETE) {
        tell_gone(s, ended, n);
    } else if (n > 0) {
        tell_ended(s, ended, n);
    }
    if (res) {
        res->ended = ended;
        res->n = n;
        res->purged = purged;
    } else {
        lw_free(ended);
    }
    return rc;
}

int lw_sessions_end(lw_sessions *s, const char *device_id, const char *reason)
{
    lw_end_request w = {.scope = LW_END_DEVICE, .device_id = device_id, .reason = reason};
    return lw_sessions_end_where(s, &w, NULL);
}

const char *lw_sessions_view(lw_sessions *s, const char *device_id, size_t *len, size_t *ts_off)
{
    centry *e = lw_map_get(s->by_device, device_id);
    if (!e || !e->view)
        return NULL;
    *len = e->view_len;
    *ts_off = e->view_ts;
    return e->view;
}

uint64_t lw_sessions_view_epoch(const lw_sessions *s)
{
    return s->views;
}

bool lw_sessions_set_view(lw_sessions *s, const char *device_id, char *text, size_t len, size_t ts_off,
                          uint64_t epoch)
{
    centry *e = lw_map_get(s->by_device, device_id);
    if (!e || len > UINT32_MAX || s->views != epoch)
        return false;
    lw_free(e->view);
    e->view = text;
    e->view_len = (uint32_t)len;
    e->view_ts = (uint32_t)ts_off;
    return true;
}

void lw_sessions_invalidate_view(lw_sessions *s, const char *device_id)
{
    s->views++;
    centry *e = lw_map_get(s->by_device, device_id);
    if (e) {
        lw_free(e->view);
        e->view = NULL;
    }
}

typedef struct {
    const char *account_id;
} inv_arg;

static void invalidate_if_account(const char *key, void *value, void *arg)
{
    centry *e = value;
    if (strcmp(e->account_id, ((inv_arg *)arg)->account_id) == 0) {
        lw_free(e->view);
        e->view = NULL;
    }
}

void lw_sessions_invalidate_account_views(lw_sessions *s, const char *account_id)
{
    s->views++;
    inv_arg a = {account_id};
    lw_map_each(s->by_device, invalidate_if_account, &a);
}

/* Dropped now, written later (lw_sessions_write_late): the write may wait
 * (fiber.h), and the credential must stop working at once, with every other
 * one a batch of ends names. */
#define LATE_MAX 1024

void lw_sessions_forget(lw_sessions *s, const char *device_id)
{
    centry *e = lw_map_get(s->by_device, device_id);
    bool dirty = e && e->dirty;
    pending_touch t = dirty ? touch_of(e) : (pending_touch){0};
    drop(s, device_id);
    if (!dirty)
        return;
    if (!s->late)
        s->late = lw_calloc(LATE_MAX, sizeof *s->late);
    if (s->late && s->nlate < LATE_MAX)
        s->late[s->nlate++] = t;
    else
        write_touch(s, &t); /* no room to keep it: written now */
}

void lw_sessions_write_late(lw_sessions *s)
{
    while (s->nlate > 0) {
        pending_touch t = s->late[--s->nlate]; /* copied: more may be queued while it waits */
        write_touch(s, &t);
    }
}

/* Forgets every cached session (their last-active times written first). */
static void drop_cache(lw_sessions *s)
{
    lw_sessions_flush(s, true);
    s->drops++;
    s->views++;
    lw_map_each(s->by_device, free_entry, NULL);
    lw_map_free(s->by_device);
    lw_map_free(s->by_selector);
    s->by_device = lw_map_new();
    s->by_selector = lw_map_new();
}

/*
 * Two servers on one SQLite file (the overlap of a restart without downtime,
 * SO_REUSEPORT) each keep a session cache, and only the one that ended a
 * session knows. So before trusting its cache a server asks SQLite whether
 * another process committed since it last looked (PRAGMA data_version, a
 * page-cache counter: no disk read), at most once per millisecond of the loop's
 * clock; if so it drops the cache, and each credential is read from the store
 * again. The timer (every 250 ms) also closes the sockets of sessions the
 * other process ended, as a node does after missed notifications. Alone on its
 * file, a server never sees a change and keeps its cache.
 */
static void check_foreign_writes(lw_sessions *s, bool sockets)
{
    if (s->deps->shared_store)
        return;
    int64_t now = lw_now_ms();
    if (!sockets && now == s->foreign_checked_at)
        return;
    s->foreign_checked_at = now;
    bool changed = false;
    int rc = lw_store_changed_elsewhere(s->deps->store, &changed);
    if (rc != LW_OK)
        return;
    if (changed && now - s->foreign_logged_at >= 10000) {
        lw_log_info("session", "another process wrote to the store: cached sessions are read again");
        s->foreign_logged_at = now;
    }
    if (sockets && (changed || s->sockets_stale)) {
        s->sockets_stale = false;
        lw_sessions_resync(s);
    } else if (changed) {
        s->sockets_stale = true;
        drop_cache(s);
    }
}

int lw_sessions_resync(lw_sessions *s)
{
    drop_cache(s);
    char(*ids)[LW_ID_STRLEN] = NULL;
    size_t n = lw_events_devices_here(s->deps->events, &ids);
    int result = LW_OK;
    for (size_t i = 0; i < n; i++) {
        lw_session sess;
        int rc = lw_store_session_get(s->deps->store, ids[i], &sess);
        if (rc == LW_OK && strcmp(sess.state, "active") != 0) {
            lw_events_end_device_here(s->deps->events, ids[i], sess.end_reason);
        } else if (rc == LW_ENOTFOUND) {
            /* Deleting an account deletes its sessions' rows: a socket whose
             * session is gone belonged to an account deleted meanwhile. */
            lw_events_end_device_here(s->deps->events, ids[i], "account_deleted");
        } else if (rc != LW_OK) {
            lw_log_error("session",
                         "resync: cannot read the session of %.8s (%d); its sockets stay open for now",
                         ids[i], rc);
            if (result == LW_OK)
                result = rc;
        }
        lw_wipe(&sess, sizeof sess);
    }
    lw_free(ids);
    return result;
}

typedef struct {
    lw_sessions *s;
    bool force;
    int64_t now;
    char (*ids)[LW_ID_STRLEN];
    size_t n, cap;
} flush_arg;

/* Writes wait on a fiber, and the map may change meanwhile: the devices
 * due are listed first, then each is looked up and written. */
static void flush_one(const char *key, void *value, void *arg)
{
    flush_arg *fa = arg;
    centry *e = value;
    if (fa->n < fa->cap && e->dirty &&
        (fa->force || fa->now - e->last_written_at >= fa->s->deps->cfg->last_active_write_ms))
        lw_strlcpy(fa->ids[fa->n++], key, LW_ID_STRLEN);
}

void lw_sessions_flush(lw_sessions *s, bool force)
{
    if (force)
        lw_sessions_write_late(s);
    size_t cap = lw_map_size(s->by_device);
    if (cap == 0)
        return;
    flush_arg fa = {s, force, lw_now_ms(), lw_calloc(cap, LW_ID_STRLEN), 0, cap};
    if (!fa.ids) {
        lw_log_warn("session", "out of memory writing last-active times; they are written later");
        return;
    }
    lw_map_each(s->by_device, flush_one, &fa);
    for (size_t i = 0; i < fa.n; i++) {
        centry *e = lw_map_get(s->by_device, fa.ids[i]);
        if (e && e->dirty)
            write_last_active(s, e);
    }
    lw_free(fa.ids);
}

bool lw_sessions_place(lw_sessions *s, const char *device_id, lw_place *out)
{
    centry *e = lw_map_get(s->by_device, device_id);
    if (!e || !e->last_ip[0])
        return false;
    memset(out, 0, sizeof *out);
    lw_strlcpy(out->ip, e->last_ip, sizeof out->ip);
    lw_strlcpy(out->country, e->last_country, sizeof out->country);
    out->lat = e->last_lat;
    out->lon = e->last_lon;
    out->has_loc = e->last_has_loc;
    return true;
}

size_t lw_sessions_cached(const lw_sessions *s)
{
    return lw_map_size(s->by_device);
}
