/* Fibers (fiber.c): a function started on a fiber runs at once; an
 * offloaded call runs on a worker thread while the loop runs other fibers,
 * and the fiber resumes on the loop with the call's result; many fibers wait
 * at once; a full pool refuses (the caller runs inline); off a fiber an
 * offload is a plain call; deep stacks work; stacks are reused. Real h2o
 * loop, real threads. */
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

#include "fiber.h"
#include "lw.h"

#include "loop_fixture.h"

static lw_fibers *pool(fixture *f, int max)
{
    lw_fibers *p = lw_fibers_new(&f->ctx, &(lw_fibers_opts){.threads = 2, .max = max, .stack_kb = 256});
    assert_non_null(p);
    return p;
}

static void run_until(fixture *f, const int *count, int want)
{
    for (int spins = 0; *count < want && spins < 1000; spins++)
        h2o_evloop_run(f->loop, 100);
    assert_int_equal(*count, want);
}

/* ---- one fiber, one wait ---- */

typedef struct call {
    pthread_t loop_thread, ran_on;
    sem_t *release; /* when set, the worker blocks until posted */
    int in;
} call;

static int blocking(void *arg)
{
    call *c = arg;
    c->ran_on = pthread_self();
    if (c->release)
        sem_wait(c->release);
    return c->in * 2;
}

typedef struct job {
    call c;
    int result;
    int stage; /* 1: started, 2: resumed */
    bool in_fiber, resumed_on_loop;
    int *finished;
} job;

static void body(void *arg)
{
    job *j = arg;
    j->stage = 1;
    j->in_fiber = lw_in_fiber();
    uint64_t g = lw_fiber_gen();
    j->result = lw_offload(blocking, &j->c);
    assert_true(lw_fiber_gen() != g); /* it waited */
    j->resumed_on_loop = pthread_equal(pthread_self(), j->c.loop_thread);
    j->stage = 2;
    (*j->finished)++;
}

static void test_offload_runs_on_a_worker_and_resumes_on_the_loop(void **state)
{
    fixture *f = *state;
    lw_fibers *p = pool(f, 4);
    sem_t release;
    sem_init(&release, 0, 0);
    int finished = 0;
    job j = {.c = {.loop_thread = pthread_self(), .release = &release, .in = 21}, .finished = &finished};
    assert_int_equal(lw_fiber_start(p, body, &j), LW_OK);
    /* Started at once, and now waiting: the loop is ours again. */
    assert_int_equal(j.stage, 1);
    assert_true(j.in_fiber);
    assert_false(lw_in_fiber());
    lw_fibers_stats st;
    lw_fibers_stats_get(p, &st);
    assert_int_equal(st.running, 1);
    assert_int_equal(st.waiting, 1);
    sem_post(&release);
    run_until(f, &finished, 1);
    assert_int_equal(j.stage, 2);
    assert_int_equal(j.result, 42);
    assert_false(pthread_equal(j.c.ran_on, j.c.loop_thread)); /* the call ran on a worker */
    assert_true(j.resumed_on_loop);
    lw_fibers_stats_get(p, &st);
    assert_int_equal(st.running, 0);
    assert_int_equal(st.waiting, 0);
    assert_int_equal(st.waits, 1);
    sem_destroy(&release);
    lw_fibers_free(p);
}

/* ---- many fibers wait at once; the loop runs them all ---- */

static void test_many_wait_at_once(void **state)
{
    fixture *f = *state;
    enum { N = 32 };
    lw_fibers *p = pool(f, N);
    sem_t release;
    sem_init(&release, 0, 0);
    int finished = 0;
    job j[N];
    for (int i = 0; i < N; i++) {
        j[i] =
            (job){.c = {.loop_thread = pthread_self(), .release = &release, .in = i}, .finished = &finished};
        assert_int_equal(lw_fiber_start(p, body, &j[i]), LW_OK);
    }
    /* All started, none finished: each waits while the others start. */
    for (int i = 0; i < N; i++)
        assert_int_equal(j[i].stage, 1);
    for (int i = 0; i < N; i++)
        sem_post(&release);
    run_until(f, &finished, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(j[i].result, 2 * i);
        assert_true(j[i].resumed_on_loop);
    }
    /* The stacks were made once and are reused. */
    lw_fibers_stats st;
    lw_fibers_stats_get(p, &st);
    assert_int_equal(st.started, N);
    finished = 0;
    for (int i = 0; i < N; i++) {
        j[i] = (job){.c = {.loop_thread = pthread_self(), .in = i}, .finished = &finished};
        assert_int_equal(lw_fiber_start(p, body, &j[i]), LW_OK);
    }
    run_until(f, &finished, N);
    lw_fibers_stats_get(p, &st);
    assert_int_equal(st.refused, 0);
    sem_destroy(&release);
    lw_fibers_free(p);
}

/* ---- a full pool refuses; the caller runs the function itself ---- */

static void test_full_pool_refuses(void **state)
{
    fixture *f = *state;
    lw_fibers *p = pool(f, 2);
    sem_t release;
    sem_init(&release, 0, 0);
    int finished = 0;
    job j[3];
    for (int i = 0; i < 3; i++)
        j[i] =
            (job){.c = {.loop_thread = pthread_self(), .release = &release, .in = i}, .finished = &finished};
    assert_int_equal(lw_fiber_start(p, body, &j[0]), LW_OK);
    assert_int_equal(lw_fiber_start(p, body, &j[1]), LW_OK);
    assert_int_equal(lw_fiber_start(p, body, &j[2]), LW_ELIMIT);
    assert_int_equal(j[2].stage, 0); /* did not run */
    lw_fibers_stats st;
    lw_fibers_stats_get(p, &st);
    assert_int_equal(st.refused, 1);
    sem_post(&release);
    sem_post(&release);
    run_until(f, &finished, 2);
    /* A fiber is free again. */
    j[2].c.release = NULL;
    assert_int_equal(lw_fiber_start(p, body, &j[2]), LW_OK);
    run_until(f, &finished, 3);
    assert_int_equal(j[2].result, 4);
    assert_int_equal(lw_fiber_start(NULL, body, &j[2]), LW_ELIMIT); /* no pool: none free */
    sem_destroy(&release);
    lw_fibers_free(p);
}

/* ---- off a fiber, an offload is a plain call; a fiber started on a fiber runs inline ---- */

static int whose_thread(void *arg)
{
    *(pthread_t *)arg = pthread_self();
    return 7;
}

static void nested(void *arg)
{
    int *depth = arg;
    (*depth)++;
}

static void outer(void *arg)
{
    int *depth = arg;
    assert_int_equal(lw_fiber_start(NULL, nested, depth), LW_OK); /* inline: no pool needed */
    (*depth)++;
}

static void test_inline_off_a_fiber(void **state)
{
    fixture *f = *state;
    pthread_t t;
    assert_int_equal(lw_offload(whose_thread, &t), 7);
    assert_true(pthread_equal(t, pthread_self()));
    lw_fibers *p = pool(f, 1);
    int depth = 0;
    assert_int_equal(lw_fiber_start(p, outer, &depth), LW_OK);
    assert_int_equal(depth, 2);
    lw_fibers_free(p);
}

/* ---- a deep stack (a body's JSON parsed 2,000 levels deep, say) ---- */

static int deep(int n)
{
    volatile char pad[96]; /* a frame of some size, as a parser's */
    pad[n % 96] = 1;
    return n == 0 ? 0 : deep(n - 1) + pad[n % 96];
}

static void deep_body(void *arg)
{
    *(int *)arg = deep(1000);
}

static void test_deep_stack(void **state)
{
    fixture *f = *state;
    /* As the server sizes its stacks (serve.c): the sanitizers' frames are
     * several times larger. */
#if defined(__SANITIZE_ADDRESS__)
    int kb = 4096;
#else
    int kb = 1024;
#endif
    lw_fibers *p = lw_fibers_new(&f->ctx, &(lw_fibers_opts){.threads = 1, .max = 1, .stack_kb = kb});
    assert_non_null(p);
    int r = -1;
    assert_int_equal(lw_fiber_start(p, deep_body, &r), LW_OK);
    assert_int_equal(r, 1000);
    lw_fibers_free(p);
}

static void test_bad_options(void **state)
{
    fixture *f = *state;
    assert_null(lw_fibers_new(&f->ctx, &(lw_fibers_opts){.threads = 0, .max = 4, .stack_kb = 256}));
    assert_null(lw_fibers_new(&f->ctx, &(lw_fibers_opts){.threads = 1, .max = 0, .stack_kb = 256}));
    assert_null(lw_fibers_new(&f->ctx, &(lw_fibers_opts){.threads = 1, .max = 4, .stack_kb = 8}));
    assert_null(lw_fibers_new(&f->ctx, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_offload_runs_on_a_worker_and_resumes_on_the_loop, setup),
        cmocka_unit_test_setup(test_many_wait_at_once, setup),
        cmocka_unit_test_setup(test_full_pool_refuses, setup),
        cmocka_unit_test_setup(test_inline_off_a_fiber, setup),
        cmocka_unit_test_setup(test_deep_stack, setup),
        cmocka_unit_test_setup(test_bad_options, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
