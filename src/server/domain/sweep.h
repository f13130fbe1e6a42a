/*
 * sweep.h — ends what is due (companion inactivity, primary inactivity,
 * absolute maximum age) and purges old history, on a schedule and at start-up.
 */
#ifndef LW_SWEEP_H
#define LW_SWEEP_H

#include "deps.h"

/* One sweep at `now`: flushes last-active times, ends due sessions (telling
 * their devices), purges history and finished link requests. */
int lw_sweep_run(const lw_domain_deps *deps, int64_t now, long *ended, long *purged);

/* How long a companion without "keep me signed in" may go unused: the
 * configured time, but never under three credential lifetimes (an open tab
 * refreshes its credential at least once per lifetime, and that counts as use). */
int64_t lw_sweep_ephemeral_idle(const lw_config *cfg);

/* Runs lw_sweep_run every cfg.sweep_interval_ms on the event loop. */
lw_sweeper *lw_sweeper_new(const lw_domain_deps *deps);
void lw_sweeper_free(lw_sweeper *s);
/* Runs a sweep on the event loop's next turn (then on schedule again). */
void lw_sweeper_kick(lw_sweeper *s);

#endif
