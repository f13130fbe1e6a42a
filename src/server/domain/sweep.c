#include "sweep.h"

#include <h2o.h>

#include "fiber.h"
#include "log.h"
#include "metrics.h"
#include "lw.h"
#include "session.h"
#include "store.h"

struct lw_sweeper {
    const lw_domain_deps *deps;
    h2o_timeout_t every, now;
    h2o_timeout_entry_t entry;
    bool running; /* a sweep is on (on a fiber it may wait for the store) */
    bool again;   /* kicked meanwhile: sweep once more when it ends */
};

/* Finished link requests are kept an hour for diagnosis, then dropped. */
#define LINK_KEEP_MS (3600LL * 1000)

int64_t lw_sweep_ephemeral_idle(const lw_config *cfg)
{
    if (cfg->ephemeral_idle_ms <= 0)
        return 0;
    int64_t floor = 3 * cfg->credential_ttl_ms;
    return cfg->ephemeral_idle_ms > floor ? cfg->ephemeral_idle_ms : floor;
}

/* Country-only privacy: redacts what ended before the option was switched
 * on, or before a crash let the redaction after an end run. Idempotent. */
static void redact_ended(const lw_domain_deps *deps)
{
    if (!deps->cfg->privacy_country_only)
        return;
    long n = 0;
    int rc = lw_store_session_redact_ended(deps->store, &n);
    if (rc != LW_OK)
        lw_log_error("sweep", "cannot redact ended records: %s", lw_strerror(rc));
    else if (n > 0)
        lw_log_info("sweep", "redacted %ld ended records (privacy country-only)", n);
}

int lw_sweep_run(const lw_domain_deps *deps, int64_t now, long *ended_out, long *purged_out)
{
    lw_metrics_inc("linkward_sweeper_runs_total", NULL);
    lw_sweep_policy p = {
        .now = now,
        .primary_inactive_ms = deps->cfg->primary_inactive_ms,
        .max_age_ms = deps->cfg->max_age_ms,
        .ephemeral_idle_ms = lw_sweep_ephemeral_idle(deps->cfg),
        .history_retention_ms = deps->cfg->history_retention_ms,
    };
    long links = 0;
    lw_end_request what = {.scope = LW_END_SWEEP, .sweep = &p};
    lw_end_result res;
    int rc = lw_sessions_end_where(deps->sessions, &what, &res);
    if (rc != LW_OK) {
        lw_log_error("sweep", "sweep failed: %s", lw_strerror(rc));
        return rc;
    }
    size_t n = res.n;
    long purged = res.purged;
    lw_free(res.ended);
    redact_ended(deps);
    lw_store_link_purge(deps->store, now - LINK_KEEP_MS, &links);
    if (deps->rates)
        lw_rates_prune(deps->rates, lw_now_ms());
    if (n || purged)
        lw_log_info("sweep", "ended %zu sessions, purged %ld history records", n, purged);
    if (ended_out)
        *ended_out = (long)n;
    if (purged_out)
        *purged_out = purged;
    return LW_OK;
}

static void sweep_now(void *arg)
{
    lw_sweeper *s = arg;
    lw_sweep_run(s->deps, lw_now_ms(), NULL, NULL);
    s->running = false;
    if (h2o_timeout_is_linked(&s->entry))
        h2o_timeout_unlink(&s->entry);
    h2o_timeout_link(s->deps->loop, s->again ? &s->now : &s->every, &s->entry);
    s->again = false;
}

/* With PostgreSQL the sweep's transactions wait on a fiber (fiber.h), and
 * the loop serves requests meanwhile; one sweep at a time. */
static void on_tick(h2o_timeout_entry_t *entry)
{
    lw_sweeper *s = H2O_STRUCT_FROM_MEMBER(lw_sweeper, entry, entry);
    if (s->running) {
        s->again = true;
        return;
    }
    s->running = true;
    if (lw_fiber_start(s->deps->fibers, sweep_now, s) != LW_OK)
        sweep_now(s);
}

lw_sweeper *lw_sweeper_new(const lw_domain_deps *deps)
{
    lw_sweeper *s = lw_calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->deps = deps;
    /* At once, not at the first tick: records may have waited since before
     * the option was switched on. */
    redact_ended(deps);
    s->entry.cb = on_tick;
    h2o_timeout_init(deps->loop, &s->every, (uint64_t)deps->cfg->sweep_interval_ms);
    h2o_timeout_init(deps->loop, &s->now, 0);
    h2o_timeout_link(deps->loop, &s->every, &s->entry);
    return s;
}

void lw_sweeper_kick(lw_sweeper *s)
{
    if (h2o_timeout_is_linked(&s->entry))
        h2o_timeout_unlink(&s->entry);
    h2o_timeout_link(s->deps->loop, &s->now, &s->entry);
}

void lw_sweeper_free(lw_sweeper *s)
{
    if (!s)
        return;
    if (h2o_timeout_is_linked(&s->entry))
        h2o_timeout_unlink(&s->entry);
    lw_free(s);
}
