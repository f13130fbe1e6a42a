/*
 * gauges.c — the gauges of /metrics: what is open, stored, cached and
 * remembered right now, read from every layer at each render. The registry
 * (core/metrics.c) does not know these modules; serve.c registers this
 * provider once the server is up.
 */
#include "gauges.h"

#include <string.h>

#include "bus.h"
#include "fiber.h"
#include "http.h"
#include "metrics.h"
#include "rate.h"
#include "relay.h"
#include "session.h"
#include "store.h"

/* What each rate-limit table holds and how many it forgot to make room: a
 * table evicting steadily is being flooded (or is too small for the load). */
static int render_rates(lw_app *app, lw_buf *out)
{
    if (!app->srv.rates)
        return LW_OK;
    lw_rate_table_stats t[LW_RATE_TABLES_MAX];
    size_t n = lw_rates_stats(app->srv.rates, t, LW_RATE_TABLES_MAX);
    if (n > LW_RATE_TABLES_MAX)
        n = LW_RATE_TABLES_MAX;
    int rc = lw_buf_appendf(out, "# HELP linkward_rate_keys Clients each rate-limit table remembers.\n"
                                 "# TYPE linkward_rate_keys gauge\n");
    for (size_t i = 0; i < n; i++)
        rc |= lw_buf_appendf(out, "linkward_rate_keys{rule=\"%s\",scope=\"%s\"} %zu\n", t[i].rule, t[i].scope,
                             t[i].keys);
    rc |=
        lw_buf_appendf(out, "# HELP linkward_rate_evictions_total Clients a full rate-limit table forgot to "
                            "make room for new ones.\n# TYPE linkward_rate_evictions_total counter\n");
    for (size_t i = 0; i < n; i++)
        rc |= lw_buf_appendf(out, "linkward_rate_evictions_total{rule=\"%s\",scope=\"%s\"} %llu\n", t[i].rule,
                             t[i].scope, (unsigned long long)t[i].evicted);
    return rc;
}

static int render_gauges(void *ctx, lw_buf *out)
{
    lw_app *app = ctx;
    int rc = LW_OK;
    /* Gauges, read now. */
    lw_store_stats st;
    memset(&st, 0, sizeof st);
    lw_store_get_stats(app->srv.store, &st);
    rc |= lw_buf_appendf(
        out,
        "# HELP linkward_connections Open client connections.\n# TYPE linkward_connections gauge\n"
        "linkward_connections %ld\n"
        "# HELP linkward_websockets Live WebSockets.\n# TYPE linkward_websockets gauge\n"
        "linkward_websockets %zu\n"
        "# HELP linkward_requests_in_flight Requests being handled.\n"
        "# TYPE linkward_requests_in_flight gauge\nlinkward_requests_in_flight %ld\n"
        "# HELP linkward_sessions Stored sessions by state.\n# TYPE linkward_sessions gauge\n"
        "linkward_sessions{state=\"active\"} %ld\nlinkward_sessions{state=\"ended\"} %ld\n"
        "# HELP linkward_accounts Accounts.\n# TYPE linkward_accounts gauge\nlinkward_accounts %ld\n"
        "# HELP linkward_link_requests_open Link requests not yet finished.\n"
        "# TYPE linkward_link_requests_open gauge\nlinkward_link_requests_open %ld\n"
        "# HELP linkward_sessions_cached Sessions in the credential cache.\n"
        "# TYPE linkward_sessions_cached gauge\nlinkward_sessions_cached %zu\n",
        lw_http_connections(), lw_bus_count(app->srv.bus), lw_http_inflight(), st.sessions_active,
        st.sessions_ended, st.accounts, st.link_requests_pending, lw_sessions_cached(app->srv.sessions));
    rc |= render_rates(app, out);
    if (app->srv.fibers) {
        lw_fibers_stats fs;
        lw_fibers_stats_get(app->srv.fibers, &fs);
        rc |= lw_buf_appendf(
            out,
            "# HELP linkward_fibers Requests on fibers (PostgreSQL), by what they do now.\n"
            "# TYPE linkward_fibers gauge\nlinkward_fibers{state=\"running\"} %d\n"
            "linkward_fibers{state=\"waiting\"} %d\n"
            "# HELP linkward_fiber_waits_total Store calls a request waited for off the event loop.\n"
            "# TYPE linkward_fiber_waits_total counter\nlinkward_fiber_waits_total %lld\n"
            "# HELP linkward_fibers_refused_total Requests served on the loop itself (blocking) because "
            "every fiber was busy.\n# TYPE linkward_fibers_refused_total counter\n"
            "linkward_fibers_refused_total %lld\n",
            fs.running - fs.waiting, fs.waiting, fs.waits, fs.refused);
    }
    if (app->shared_store)
        rc |= lw_buf_appendf(out,
                             "# HELP linkward_relay_healthy 1 while the relay vouches for the session cache "
                             "(heartbeats heard), 0 while every session check reads the store.\n"
                             "# TYPE linkward_relay_healthy gauge\nlinkward_relay_healthy %d\n",
                             lw_relay_healthy(app->relay, lw_mono_ms()) ? 1 : 0);
    return rc;
}

int lw_gauges_register(lw_app *app)
{
    return lw_metrics_add_gauges(render_gauges, app);
}
