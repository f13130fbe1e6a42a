/*
 * control.h — the local control socket for `linkward admin`: a Unix socket
 * (mode 0600) in the data directory; each connection sends one JSON line and
 * gets one back. Only the server's own user (or root) may connect
 * (SO_PEERCRED). Commands: stats, invite, purge, backup, end_sessions.
 */
#ifndef LW_CONTROL_H
#define LW_CONTROL_H

#include "server.h"

typedef struct lw_control lw_control;

lw_control *lw_control_start(lw_server *app, const char *path);
void lw_control_stop(lw_control *c);

#endif
