/* The job pool of work.c (link crypto, PIN checks): run() on a worker, done()
 * back on the event loop, in order; a full queue refused; every job ends
 * exactly once (done, or drop at shutdown); the inline mode. Real h2o loop,
 * real threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <h2o.h>
#include <pthread.h>
#include <semaphore.h>

#include "lw.h"
#include "work.h"

#include "loop_fixture.h"

typedef struct rec {
    pthread_t loop_thread, ran_on;
    int order; /* position in which done() was called */
    int ran, done, dropped;
    sem_t *started, *release; /* when set: run() blocks until released */
    int *next;                /* shared done() counter */
} rec;

/* n fresh records, to be finished on this (the loop's) thread, counted in *next. */
static void recs_init(rec *r, size_t n, int *next)
{
    memset(r, 0, n * sizeof *r);
    for (size_t i = 0; i < n; i++) {
        r[i].loop_thread = pthread_self();
        r[i].next = next;
    }
}

static void run(void *arg)
{
    rec *r = arg;
    r->ran_on = pthread_self();
    r->ran++;
    if (r->started)
        sem_post(r->started);
    if (r->release)
        sem_wait(r->release);
}

static void done(void *arg)
{
    rec *r = arg;
    assert_true(pthread_equal(pthread_self(), r->loop_thread)); /* back on the loop */
    r->done++;
    r->order = (*r->next)++;
}

static void drop(void *arg)
{
    ((rec *)arg)->dropped++;
}

/* Runs the loop until *count reaches want; bounded (10 s). */
static void run_until(fixture *f, const int *count, int want)
{
    uint64_t deadline = h2o_now(f->loop) + 10000;
    while (*count < want && h2o_now(f->loop) < deadline)
        h2o_evloop_run(f->loop, 100);
    assert_int_equal(*count, want);
}

static void test_runs_off_the_loop_in_order(void **state)
{
    fixture *f = *state;
    lw_work *w = lw_work_new(&f->ctx, &(lw_work_opts){.name = "t-work", .threads = 1, .drop = drop});
    assert_non_null(w);
    enum { N = 50 };
    rec r[N];
    int next = 0;
    recs_init(r, N, &next);
    for (int i = 0; i < N; i++)
        assert_int_equal(lw_work_submit(w, run, done, &r[i]), LW_OK);
    run_until(f, &next, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].ran, 1);
        assert_int_equal(r[i].done, 1);
        assert_int_equal(r[i].dropped, 0);
        assert_int_equal(r[i].order, i);
        assert_false(pthread_equal(r[i].ran_on, pthread_self()));
    }
    lw_work_free(w);
}

static void test_full_queue_refused_then_drained(void **state)
{
    fixture *f = *state;
    lw_work *w = lw_work_new(&f->ctx, &(lw_work_opts){.name = "t-work", .threads = 1});
    assert_non_null(w);
    sem_t started, release;
    sem_init(&started, 0, 0);
    sem_init(&release, 0, 0);
    int next = 0;
    rec *r = malloc((LW_WORK_QUEUE_MAX + 1) * sizeof *r);
    recs_init(r, LW_WORK_QUEUE_MAX + 1, &next);
    r[0].started = &started;
    r[0].release = &release;
    assert_int_equal(lw_work_submit(w, run, done, &r[0]), LW_OK);
    sem_wait(&started); /* the worker holds job 0 */
    for (int i = 1; i < LW_WORK_QUEUE_MAX; i++)
        assert_int_equal(lw_work_submit(w, run, done, &r[i]), LW_OK);
    /* Waiting plus running reached the bound: refused, and it never runs. */
    assert_int_equal(lw_work_submit(w, run, done, &r[LW_WORK_QUEUE_MAX]), LW_ELIMIT);
    sem_post(&release);
    run_until(f, &next, LW_WORK_QUEUE_MAX);
    assert_int_equal(r[LW_WORK_QUEUE_MAX].ran, 0);
    assert_int_equal(r[LW_WORK_QUEUE_MAX].done, 0);
    /* Room again once done() ran. */
    assert_int_equal(lw_work_submit(w, run, done, &r[LW_WORK_QUEUE_MAX]), LW_OK);
    run_until(f, &next, LW_WORK_QUEUE_MAX + 1);
    lw_work_free(w);
    free(r);
    sem_destroy(&started);
    sem_destroy(&release);
}

static void *post_later(void *arg)
{
    sem_post(arg);
    return NULL;
}

static void test_free_ends_every_job_once(void **state)
{
    fixture *f = *state;
    lw_work *w = lw_work_new(&f->ctx, &(lw_work_opts){.name = "t-work", .threads = 2, .drop = drop});
    assert_non_null(w);
    sem_t started, release;
    sem_init(&started, 0, 0);
    sem_init(&release, 0, 0);
    enum { N = 40 };
    rec r[N];
    int next = 0;
    recs_init(r, N, &next);
    for (int i = 0; i < 2; i++) { /* both workers busy */
        r[i].started = &started;
        r[i].release = &release;
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(lw_work_submit(w, run, done, &r[i]), LW_OK);
    sem_wait(&started);
    sem_wait(&started);
    pthread_t t1, t2;
    pthread_create(&t1, NULL, post_later, &release);
    pthread_create(&t2, NULL, post_later, &release);
    lw_work_free(w); /* joins the workers; what is still queued is dropped */
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    h2o_evloop_run(f->loop, 0); /* results sent before the end reach no one: the pool is gone */
    for (int i = 0; i < N; i++) {
        /* The loop never ran while the pool lived, so no done(): every job,
         * run or not, was handed to drop() exactly once (a PIN job is wiped
         * there), and none leaked (LeakSanitizer in the sanitizer build). */
        assert_int_equal(r[i].done, 0);
        assert_int_equal(r[i].dropped, 1);
        assert_true(r[i].ran <= 1);
    }
    assert_int_equal(r[0].ran, 1);
    assert_int_equal(r[1].ran, 1);
    sem_destroy(&started);
    sem_destroy(&release);
}

static void test_inline_mode(void **state)
{
    fixture *f = *state;
    lw_work *w = lw_work_new(&f->ctx, &(lw_work_opts){.name = "t-work", .threads = 0});
    assert_non_null(w);
    int next = 0;
    rec r = {.loop_thread = pthread_self(), .next = &next};
    assert_int_equal(lw_work_submit(w, run, done, &r), LW_OK);
    /* Ran and finished before submit returned, on this thread. */
    assert_int_equal(r.done, 1);
    assert_true(pthread_equal(r.ran_on, pthread_self()));
    lw_work_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_runs_off_the_loop_in_order, setup),
        cmocka_unit_test_setup(test_full_queue_refused_then_drained, setup),
        cmocka_unit_test_setup(test_free_ends_every_job_once, setup),
        cmocka_unit_test_setup(test_inline_mode, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
