#include "metrics.h"

#include <stdio.h>
#include <string.h>

#include "map.h"

static const struct family {
    const char *name, *help;
} families[] = {
    {"linkward_http_requests_total", "HTTP requests answered, by status class."},
    {"linkward_link_requests_total", "Link requests by outcome."},
    {"linkward_sessions_ended_total", "Sessions ended, by reason."},
    {"linkward_alerts_total", "Alerts raised, by kind."},
    {"linkward_pin_failures_total", "Wrong two-step PINs."},
    {"linkward_rate_limited_total", "Requests refused by a rate limit, by rule."},
    {"linkward_sweeper_runs_total", "Sweeper runs."},
    {"linkward_csp_violations_total", "Content-Security-Policy violations browsers reported, by directive."},
    {"linkward_accounts_deleted_total", "Accounts deleted by their holders."},
    {"linkward_push_sent_total", "Web Push messages a push service accepted."},
    {"linkward_push_failed_total",
     "Web Push messages not delivered, by reason: gone (404/410, the subscription deleted), http, network, "
     "address (not a public address), crypto."},
    {"linkward_push_dropped_total",
     "Web Push messages dropped before sending, by reason (queue_full, memory)."},
    {"linkward_push_retries_total", "Web Push tries after the first (429, 5xx, network errors)."},
    {"linkward_relay_notifications_total", "Cross-node notifications sent (NOTIFY), by kind."},
    {"linkward_store_waits_on_loop_total",
     "PostgreSQL operations that waited on the event loop itself, not on a fiber (start-up, timers, socket "
     "messages)."},
    {"linkward_session_store_reads_total",
     "Session checks that read the store, by why: miss (not cached), unhealthy (several nodes, the relay "
     "cannot vouch for the cache), recheck (several nodes, the periodic re-read)."},
};

static const struct hist_def {
    const char *name, *help;
} hist_defs[LW_HIST_COUNT] = {
    {"linkward_http_request_duration_seconds", "Time from request to response."},
    {"linkward_store_duration_seconds", "Time spent in one store operation."},
};

/* Seconds: 50 µs .. 2.5 s. */
static const double bounds[] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                0.025,   0.05,   0.1,     0.25,   0.5,   1,      2.5};
#define NBOUNDS (sizeof bounds / sizeof bounds[0])

static struct {
    uint64_t buckets[NBOUNDS];
    uint64_t count;
    double sum;
} hists[LW_HIST_COUNT];

static lw_map *counters; /* "family{label}" -> uint64_t* */
static uint64_t http_status[5];

void lw_metrics_http_status(int status)
{
    if (status >= 100 && status < 600)
        http_status[status / 100 - 1]++;
}

void lw_metrics_inc(const char *family, const char *label)
{
    if (!counters && !(counters = lw_map_new()))
        return;
    char key[160];
    int n = snprintf(key, sizeof key, "%s{%s}", family, label ? label : "");
    if (n < 0 || n >= (int)sizeof key)
        return;
    uint64_t *v = lw_map_get(counters, key);
    if (!v) {
        if (!(v = lw_calloc(1, sizeof *v)))
            return;
        if (lw_map_put(counters, key, v) != LW_OK) {
            lw_free(v);
            return;
        }
    }
    (*v)++;
}

void lw_metrics_observe(lw_hist h, double seconds)
{
    for (size_t i = 0; i < NBOUNDS; i++)
        if (seconds <= bounds[i])
            hists[h].buckets[i]++;
    hists[h].count++;
    hists[h].sum += seconds;
}

typedef struct {
    lw_buf *out;
    const char *family;
    size_t flen;
    int rc;
} render_ctx;

static void render_counter(const char *key, void *value, void *arg)
{
    render_ctx *r = arg;
    if (strncmp(key, r->family, r->flen) != 0 || key[r->flen] != '{')
        return;
    const char *label = key + r->flen; /* "{...}" */
    bool empty = strcmp(label, "{}") == 0;
    if (lw_buf_appendf(r->out, "%s%s %llu\n", r->family, empty ? "" : label,
                       (unsigned long long)*(uint64_t *)value) != LW_OK)
        r->rc = LW_ETOOBIG;
}

/* Gauge providers: the modules above the registry that own what is counted
 * (serve.c registers the server's); read at every render, in order. */
#define GAUGES_MAX 8
static struct {
    lw_metrics_gauges_fn *fn;
    void *ctx;
} gauges[GAUGES_MAX];
static size_t ngauges;

int lw_metrics_add_gauges(lw_metrics_gauges_fn *fn, void *ctx)
{
    if (ngauges == GAUGES_MAX)
        return LW_ELIMIT;
    gauges[ngauges].fn = fn;
    gauges[ngauges].ctx = ctx;
    ngauges++;
    return LW_OK;
}

void lw_metrics_clear_gauges(void)
{
    ngauges = 0;
}

int lw_metrics_render(lw_buf *out)
{
    int rc = LW_OK;
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
        rc |= lw_buf_appendf(out, "# HELP %s %s\n# TYPE %s counter\n", families[f].name, families[f].help,
                             families[f].name);
        if (f == 0)
            for (int c = 0; c < 5; c++)
                if (http_status[c])
                    rc |= lw_buf_appendf(out, "linkward_http_requests_total{code=\"%dxx\"} %llu\n", c + 1,
                                         (unsigned long long)http_status[c]);
        render_ctx r = {out, families[f].name, strlen(families[f].name), LW_OK};
        if (counters)
            lw_map_each(counters, render_counter, &r);
        rc |= r.rc;
    }
    for (int h = 0; h < LW_HIST_COUNT; h++) {
        const char *n = hist_defs[h].name;
        rc |= lw_buf_appendf(out, "# HELP %s %s\n# TYPE %s histogram\n", n, hist_defs[h].help, n);
        for (size_t i = 0; i < NBOUNDS; i++)
            rc |= lw_buf_appendf(out, "%s_bucket{le=\"%g\"} %llu\n", n, bounds[i],
                                 (unsigned long long)hists[h].buckets[i]);
        rc |= lw_buf_appendf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9f\n%s_count %llu\n", n,
                             (unsigned long long)hists[h].count, n, hists[h].sum, n,
                             (unsigned long long)hists[h].count);
    }
    for (size_t g = 0; g < ngauges; g++)
        rc |= gauges[g].fn(gauges[g].ctx, out);
    return rc == LW_OK ? LW_OK : LW_ETOOBIG;
}
