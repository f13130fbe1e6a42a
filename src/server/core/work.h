/*
 * work.h — CPU work off the event loop. A job's run() executes on a worker
 * thread and its done() afterwards on the event loop, through h2o's
 * multithread queue.
 *
 * Two pools use it: the link flow's Ed25519 verifications and QR rendering
 * (~40 % of a link's CPU; on a machine with more than one core the loop
 * serves other requests meanwhile) and the PIN checks of pin.c (Argon2id
 * holds a thread for a good part of a second, so they get their own pool at a
 * lower priority). Jobs run in the order they were queued; run() must touch
 * nothing the loop owns (copy what it needs into arg), done() may.
 */
#ifndef LW_WORK_H
#define LW_WORK_H

struct st_h2o_context_t;

typedef struct lw_work lw_work;
typedef void (*lw_work_fn)(void *arg);

typedef struct lw_work_opts {
    const char *name; /* thread name, at most 15 characters (top -H, the benchmarks) */
    int threads;      /* at most 8; 0 runs every job inline, run then done, at submission */
    int nice;         /* added to the workers' priority (0: as the loop) */
    /* Called instead of done() for jobs still queued when the pool is freed,
     * so that an arg holding secrets is wiped; NULL: nothing to release. */
    lw_work_fn drop;
} lw_work_opts;

lw_work *lw_work_new(struct st_h2o_context_t *ctx, const lw_work_opts *opts);
/* Stops the workers; jobs still queued get drop(), not done(), so call it once
 * the loop has finished serving requests. */
void lw_work_free(lw_work *w);

/* Queues run(arg) then done(arg). LW_ELIMIT when LW_WORK_QUEUE_MAX jobs are
 * waiting already (a flood of requests must not queue work without end:
 * answer "busy"), LW_ENOMEM if the job cannot be queued; then nothing runs. */
#define LW_WORK_QUEUE_MAX 4096
int lw_work_submit(lw_work *w, lw_work_fn run, lw_work_fn done, void *arg);

#endif
