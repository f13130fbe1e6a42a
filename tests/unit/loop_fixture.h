/* A real h2o loop and multithread queue for unit tests of modules that hand
 * work to threads and take it back on the loop (work.c, fiber.c). Include it
 * once per test program, after cmocka.h and h2o.h. */
#ifndef LW_LOOP_FIXTURE_H
#define LW_LOOP_FIXTURE_H

typedef struct fixture {
    h2o_evloop_t *loop;
    h2o_context_t ctx; /* only .loop and .queue are read */
} fixture;

/* One loop and queue for the program, as in the server, where they live as
 * long as the process: h2o 2.2.5's h2o_multithread_destroy_queue() does not
 * free the queue itself, so destroying one per test would only leak it. */
static fixture the_fixture;

static int setup(void **state)
{
    if (!the_fixture.loop) {
        the_fixture.loop = h2o_evloop_create();
        the_fixture.ctx.loop = the_fixture.loop;
        the_fixture.ctx.queue = h2o_multithread_create_queue(the_fixture.loop);
    }
    *state = &the_fixture;
    return 0;
}

#endif
