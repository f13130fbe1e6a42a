/*
 * work.h — CPU work off the event loop. A job's run() executes on a worker
 * thread and its done() afterwards on the event loop, through h2o's
 * multithread queue (as the PIN checks of pin.c, which have their own
 * threads because Argon2id holds one for a good part of a second).
 *
 * For the costly pure computations of a request: the two Ed25519
 * verifications of a link are ~40 % of its CPU, and on a machine with more
 * than one core the loop serves other requests meanwhile. Jobs run in the
 * order they were queued; run() must touch nothing the loop owns (copy what
 * it needs into arg), done() may.
 */
#ifndef LW_WORK_H
#define LW_WORK_H

struct st_h2o_context_t;

typedef struct lw_work lw_work;
typedef void (*lw_work_fn)(void *arg);

/* threads workers (at most 8); 0 runs every job inline, run then done, at
 * submission (no thread: what a one-core machine is better off with). */
lw_work *lw_work_new(struct st_h2o_context_t *ctx, int threads);
/* Stops the workers; jobs still queued are dropped without done(), so call
 * it once the loop has finished serving requests. */
void lw_work_free(lw_work *w);

/* Queues run(arg) then done(arg). LW_ELIMIT when LW_WORK_QUEUE_MAX jobs are
 * waiting already (a flood of requests must not queue work without end:
 * answer "busy"), LW_ENOMEM if the job cannot be queued; then nothing runs. */
#define LW_WORK_QUEUE_MAX 4096
int lw_work_submit(lw_work *w, lw_work_fn run, lw_work_fn done, void *arg);

#endif
