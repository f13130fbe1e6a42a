/*
 * fiber.h — blocking calls off the event loop without rewriting their
 * callers. A fiber is a function run on its own stack on the loop thread;
 * when it makes a call that would block (a PostgreSQL round trip), the call
 * runs on a worker thread while the fiber waits and the loop serves other
 * events; the worker's result resumes the fiber on the loop, where it goes on
 * as if the call had returned at once.
 *
 * What this asks of code that runs on a fiber: anything the loop owns may
 * change while it waits (other requests run meanwhile), so a pointer into a
 * loop-owned table (a cache entry, a socket) is not held across a call that
 * may wait; look it up again after. lw_fiber_gen() tells whether anything
 * waited since a given point.
 *
 * Bounds: at most max fibers at once (each with a stack of stack_kb KiB,
 * mapped lazily: only touched pages cost memory, and a guard page below each
 * stack makes an overflow a crash, not a corruption). When all are busy,
 * lw_fiber_start refuses and the caller runs its function inline, blocking as
 * before: slower, never wrong. Worker jobs queue in lw_work (bounded too;
 * when full, the call also runs inline).
 */
#ifndef LW_FIBER_H
#define LW_FIBER_H

#include <stdbool.h>
#include <stdint.h>

struct st_h2o_context_t;

typedef struct lw_fibers lw_fibers;
typedef void (*lw_fiber_fn)(void *arg);
typedef int (*lw_offload_fn)(void *arg);

typedef struct lw_fibers_opts {
    int threads;  /* worker threads for offloaded calls, 1..8 */
    int max;      /* fibers at once */
    int stack_kb; /* each fiber's stack */
} lw_fibers_opts;

/* NULL (logged) when the stacks or threads cannot be had. */
lw_fibers *lw_fibers_new(struct st_h2o_context_t *ctx, const lw_fibers_opts *opts);
/* Once the loop stopped: fibers still waiting are abandoned (their stacks
 * unmapped), so call it only when nothing will resume them. */
void lw_fibers_free(lw_fibers *f);

/* Runs fn(arg) on a fiber; returns when fn has returned or first waits (it
 * then finishes later, on the loop). LW_ELIMIT when every fiber is busy (f
 * NULL counts as none): fn did not run. On a fiber already, fn runs inline. */
int lw_fiber_start(lw_fibers *f, lw_fiber_fn fn, void *arg);

/* On a fiber whose pool has workers: runs fn(arg) on a worker thread and
 * waits for it (fn must touch nothing the loop owns). Anywhere else, or when
 * the workers' queue is full: runs fn(arg) here. Returns what fn returned. */
int lw_offload(lw_offload_fn fn, void *arg);

/* Waiting for something else than a store call (a job of another pool,
 * say): the code on the fiber takes lw_fiber_current, arranges for
 * lw_fiber_resume(f) to be called on the loop when what it waits for is
 * done, and calls lw_fiber_suspend, which returns after that call (at once
 * if it came already). Off a fiber, lw_fiber_current is NULL. */
typedef struct lw_fiber lw_fiber;
lw_fiber *lw_fiber_current(void);
void lw_fiber_suspend(void);
void lw_fiber_resume(lw_fiber *f);

/* On a fiber: runs run(arg) as a job of w (work.h) and waits for it; its
 * continuation is simply what follows the call. LW_EINVAL off a fiber,
 * lw_work_submit's refusal when w refuses (then nothing ran). */
struct lw_work;
int lw_fiber_await(struct lw_work *w, void (*run)(void *arg), void *arg);

/* True on a fiber (of any pool). */
bool lw_in_fiber(void);

/* Counts every wait of every fiber on this thread: unchanged between two
 * reads means no other event ran in between. */
uint64_t lw_fiber_gen(void);

typedef struct lw_fibers_stats {
    int running; /* fibers started and not finished (waiting or not) */
    int waiting; /* of them, waiting for a worker */
    long long started, waits, refused;
} lw_fibers_stats;
void lw_fibers_stats_get(const lw_fibers *f, lw_fibers_stats *out);

#endif
