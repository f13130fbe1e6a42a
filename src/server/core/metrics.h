/*
 * metrics.h — counters and latency histograms, rendered in Prometheus text
 * format at GET /metrics (on --metrics-listen if set). Counters are keyed by
 * family and label ("linkward_alerts_total", "kind=\"pin.failed\""); the
 * families and their help text are listed in metrics.c. Event-loop only.
 */
#ifndef LW_METRICS_H
#define LW_METRICS_H

#include "app.h"
#include "lw.h"

typedef enum { LW_HIST_REQUEST, LW_HIST_STORE, LW_HIST_COUNT } lw_hist;

/* Adds 1 to a counter; label is 'name="value"' or NULL. Values must be short
 * identifiers (reasons, kinds, outcomes), never user input. */
void lw_metrics_inc(const char *family, const char *label);
void lw_metrics_observe(lw_hist h, double seconds);
/* HTTP answers by status class: on every request, so a plain array. */
void lw_metrics_http_status(int status);
/* Appends the whole exposition (counters, histograms, gauges read from app). */
int lw_metrics_render(lw_app *app, lw_buf *out);

#endif
