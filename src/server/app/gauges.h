/*
 * gauges.h — registers the server's gauges (connections, sockets, stored and
 * cached sessions, rate-limit tables, the relay's health) with the metrics
 * registry. They read app at every render: lw_metrics_clear_gauges before app
 * is torn down.
 */
#ifndef LW_GAUGES_H
#define LW_GAUGES_H

#include "app.h"

int lw_gauges_register(lw_app *app);

#endif
