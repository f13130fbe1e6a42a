#include "work.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <unistd.h>

#include <h2o.h>

#include "log.h"
#include "lw.h"

#define WORK_THREADS_MAX 8

typedef struct job {
    h2o_multithread_message_t super; /* first: the queue hands us this pointer */
    struct job *next;                /* pending queue */
    struct lw_work *w;
    lw_work_fn run, done;
    void *arg;
} job;

struct lw_work {
    h2o_multithread_receiver_t receiver;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *head, *tail;
    int queued; /* jobs waiting or running */
    bool stopping;
    lw_work_opts opts;
    int nthreads;
    pthread_t threads[WORK_THREADS_MAX];
};

static void *worker(void *arg)
{
    lw_work *w = arg;
    pthread_setname_np(pthread_self(), w->opts.name ? w->opts.name : "lw-work");
    if (w->opts.nice > 0) {
        /* Per thread on Linux: only this worker yields to the loop. */
        errno = 0;
        int base = getpriority(PRIO_PROCESS, (id_t)gettid());
        int lowered = (errno == 0 ? base : 0) + w->opts.nice;
        if (setpriority(PRIO_PROCESS, (id_t)gettid(), lowered > 19 ? 19 : lowered) != 0)
            lw_log_warn("work", "cannot lower the priority of a %s thread",
                        w->opts.name ? w->opts.name : "work");
    }
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->head && !w->stopping)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->stopping) {
            pthread_mutex_unlock(&w->mu);
            return NULL;
        }
        job *j = w->head;
        w->head = j->next;
        if (!w->head)
            w->tail = NULL;
        pthread_mutex_unlock(&w->mu);
        j->run(j->arg);
        h2o_multithread_send_message(&w->receiver, &j->super);
    }
}

static void drop_job(lw_work *w, job *j)
{
    if (w->opts.drop)
        w->opts.drop(j->arg);
    lw_free(j);
}

/* On the event loop: the finished jobs' done(). */
static void on_done(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    while (!h2o_linklist_is_empty(messages)) {
        job *j = H2O_STRUCT_FROM_MEMBER(job, super.link, messages->next);
        h2o_linklist_unlink(&j->super.link);
        lw_work *w = j->w;
        pthread_mutex_lock(&w->mu);
        w->queued--;
        pthread_mutex_unlock(&w->mu);
        j->done(j->arg);
        lw_free(j);
    }
}

lw_work *lw_work_new(h2o_context_t *ctx, const lw_work_opts *opts)
{
    lw_work *w = lw_calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->opts = *opts;
    int threads = opts->threads;
    if (threads <= 0)
        return w; /* inline */
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    h2o_multithread_register_receiver(ctx->queue, &w->receiver, on_done);
    if (threads > WORK_THREADS_MAX)
        threads = WORK_THREADS_MAX;
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&w->threads[i], NULL, worker, w) != 0) {
            lw_log_warn("work", "cannot start a %s thread; running %d", w->opts.name ? w->opts.name : "work",
                        w->nthreads);
            break;
        }
        w->nthreads++;
    }
    if (w->nthreads == 0) {
        /* Asked for threads but got none: running the jobs inline could stall
         * the loop for as long as an Argon2id check, so refuse. */
        lw_work_free(w);
        return NULL;
    }
    return w;
}

void lw_work_free(lw_work *w)
{
    if (!w)
        return;
    if (w->receiver.queue) {
        pthread_mutex_lock(&w->mu);
        w->stopping = true;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
        for (int i = 0; i < w->nthreads; i++)
            pthread_join(w->threads[i], NULL);
        while (w->head) {
            job *j = w->head;
            w->head = j->next;
            drop_job(w, j);
        }
        /* Results sent but not yet delivered: the workers are joined and only
         * this thread (the loop's) reads the queue, so no lock is needed to
         * take them back before leaving the queue. */
        h2o_linklist_t *pending = &w->receiver._messages;
        while (!h2o_linklist_is_empty(pending)) {
            job *j = H2O_STRUCT_FROM_MEMBER(job, super.link, pending->next);
            h2o_linklist_unlink(&j->super.link);
            drop_job(w, j);
        }
        h2o_multithread_unregister_receiver(w->receiver.queue, &w->receiver);
    }
    lw_free(w);
}

int lw_work_submit(lw_work *w, lw_work_fn run, lw_work_fn done, void *arg)
{
    if (w->nthreads == 0) {
        run(arg);
        done(arg);
        return LW_OK;
    }
    /* Only the loop submits and finishes jobs; the lock is for the workers. */
    pthread_mutex_lock(&w->mu);
    bool full = w->queued >= LW_WORK_QUEUE_MAX;
    pthread_mutex_unlock(&w->mu);
    if (full)
        return LW_ELIMIT;
    job *j = lw_calloc(1, sizeof *j);
    if (!j)
        return LW_ENOMEM;
    j->w = w;
    j->run = run;
    j->done = done;
    j->arg = arg;
    pthread_mutex_lock(&w->mu);
    if (w->tail)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    w->queued++;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return LW_OK;
}
