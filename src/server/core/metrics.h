/*
 * metrics.h — counters and latency histograms, rendered in Prometheus text
 * format at GET /metrics (on --metrics-listen if set). Counters are keyed by
 * family and label ("linkward_alerts_total", "kind=\"pin.failed\""); the
 * families and their help text are listed in metrics.c. Event-loop only.
 */
#ifndef LW_METRICS_H
#define LW_METRICS_H

#include "lw.h"

typedef enum { LW_HIST_REQUEST, LW_HIST_STORE, LW_HIST_COUNT } lw_hist;

/* Adds 1 to a counter; label is 'name="value"' or NULL. Values must be short
 * identifiers (reasons, kinds, outcomes), never user input. */
void lw_metrics_inc(const char *family, const char *label);
void lw_metrics_observe(lw_hist h, double seconds);
/* HTTP answers by status class: on every request, so a plain array. */
void lw_metrics_http_status(int status);
/* Appends gauges, read at the moment of a render, to out; returns LW_OK or
 * the first error of lw_buf_appendf. */
typedef int lw_metrics_gauges_fn(void *ctx, lw_buf *out);
/* Registers a gauge provider: the registry does not know what it counts (the
 * modules above it do). LW_ELIMIT past a small fixed number. */
int lw_metrics_add_gauges(lw_metrics_gauges_fn *fn, void *ctx);
/* Forgets every provider (at shutdown, before what they read is freed). */
void lw_metrics_clear_gauges(void);
/* Appends the whole exposition: counters, histograms, then every provider's gauges. */
int lw_metrics_render(lw_buf *out);

#endif
