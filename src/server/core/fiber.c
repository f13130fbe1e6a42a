/*
 * fiber.c — fibers on Boost.Context's fcontext, their waits on lw_work.
 *
 * The context switch is Boost.Context's (libboost-context: make_fcontext and
 * jump_fcontext, assembly per architecture with a C calling convention): it
 * saves the callee-saved registers and the stack pointer and nothing else.
 * ucontext's swapcontext also saves and restores the signal mask, two system
 * calls per switch: 1.35 µs a round trip on the benchmark machine, 8 % of a
 * cached session check.
 *
 * A fiber, once made, loops: run its function, go back to whoever started it,
 * wait to be handed the next function. So a stack is set up once, and
 * starting a request costs two context switches, not an mmap.
 *
 * Switches are annotated for AddressSanitizer, which otherwise takes the
 * jump to another stack for a stack overflow and reports false errors.
 */
#include "fiber.h"

#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <h2o.h>

#include "log.h"
#include "lw.h"
#include "work.h"

#if defined(__SANITIZE_ADDRESS__)
#define LW_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LW_ASAN 1
#endif
#endif
#ifdef LW_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

#define FIBERS_MAX 4096

/* Boost.Context's C interface (boost/context/detail/fcontext.hpp, a C++
 * header: declared here as the library exports it, extern "C"). */
typedef void *fcontext_t;
typedef struct {
    fcontext_t fctx; /* the context that jumped here */
    void *data;      /* what it passed */
} transfer_t;
transfer_t jump_fcontext(fcontext_t const to, void *vp);
fcontext_t make_fcontext(void *sp, size_t size, void (*fn)(transfer_t));

struct lw_fiber {
    fcontext_t ctx;  /* the fiber, while switched out */
    fcontext_t back; /* where it goes when it waits or finishes, while it runs */
    struct lw_fibers *owner;
    struct lw_fiber *next_free;
    void *map; /* the mapping: guard page, then the stack */
    size_t map_len;
    char *stack;
    size_t stack_len;
    lw_fiber_fn fn;
    void *arg;
    bool busy;      /* running fn (maybe waiting) */
    bool suspended; /* switched out in lw_fiber_suspend, until lw_fiber_resume */
    bool woken;     /* resumed before it suspended (the job finished at once) */
    /* the offloaded call in flight */
    lw_offload_fn job_fn;
    void *job_arg;
    int job_rc;
#ifdef LW_ASAN
    void *fake;             /* ASan's fake stack of the fiber while it is switched out */
    const void *back_stack; /* the stack it switches back to */
    size_t back_len;
#endif
};
typedef struct lw_fiber fiber;

struct lw_fibers {
    lw_work *work;
    fiber *free; /* idle fibers, ready to run */
    int made;    /* fibers made (idle or busy) */
    int max;
    size_t stack_len;
    fiber **all; /* every fiber made, for lw_fibers_free */
    lw_fibers_stats stats;
};

/* The fiber this thread runs now, NULL on the loop's own stack. */
static _Thread_local fiber *current;
static _Thread_local uint64_t gen;

bool lw_in_fiber(void)
{
    return current != NULL;
}

uint64_t lw_fiber_gen(void)
{
    return gen;
}

/* ---- switching ------------------------------------------------------------- */

/* From the loop's stack (or a worker-done callback on it) into f, until f
 * waits or finishes. */
static void switch_in(fiber *f)
{
    fiber *prev = current;
    current = f;
#ifdef LW_ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(&fake, f->stack, f->stack_len);
#endif
    transfer_t t = jump_fcontext(f->ctx, f);
    f->ctx = t.fctx; /* where it stopped: waiting, or done with its function */
#ifdef LW_ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
    current = prev;
}

/* From f back to where it was switched in from. */
static void switch_out(fiber *f)
{
#ifdef LW_ASAN
    __sanitizer_start_switch_fiber(&f->fake, f->back_stack, f->back_len);
#endif
    transfer_t t = jump_fcontext(f->back, NULL);
    f->back = t.fctx; /* resumed: by whoever switched it in this time */
#ifdef LW_ASAN
    __sanitizer_finish_switch_fiber(f->fake, &f->back_stack, &f->back_len);
#endif
}

static void fiber_main(transfer_t t)
{
    fiber *f = t.data;
    f->back = t.fctx;
#ifdef LW_ASAN
    __sanitizer_finish_switch_fiber(NULL, &f->back_stack, &f->back_len);
#endif
    for (;;) {
        f->fn(f->arg);
        f->fn = NULL;
        f->arg = NULL;
        f->busy = false;
        switch_out(f); /* the starter (or a done callback) puts it back on the free list */
    }
}

static void recycle_if_done(lw_fibers *p, fiber *f)
{
    if (f->busy)
        return;
    f->next_free = p->free;
    p->free = f;
    p->stats.running--;
}

/* ---- making fibers --------------------------------------------------------- */

static fiber *fiber_make(lw_fibers *p)
{
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0)
        page = 4096;
    fiber *f = lw_calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->owner = p;
    f->map_len = p->stack_len + (size_t)page;
    f->map =
        mmap(NULL, f->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (f->map == MAP_FAILED) {
        lw_free(f);
        return NULL;
    }
    /* Stacks grow down: the guard page is the lowest one. */
    if (mprotect(f->map, (size_t)page, PROT_NONE) != 0) {
        munmap(f->map, f->map_len);
        lw_free(f);
        return NULL;
    }
    f->stack = (char *)f->map + page;
    f->stack_len = p->stack_len;
    /* fcontext takes the top of the stack; fiber_main never returns. */
    f->ctx = make_fcontext(f->stack + f->stack_len, f->stack_len, fiber_main);
    p->all[p->made++] = f;
    return f;
}

lw_fibers *lw_fibers_new(struct st_h2o_context_t *ctx, const lw_fibers_opts *opts)
{
    if (!opts || opts->max < 1 || opts->max > FIBERS_MAX || opts->stack_kb < 64 || opts->threads < 1) {
        lw_log_error("fiber", "bad fiber pool options");
        return NULL;
    }
    lw_fibers *p = lw_calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->all = lw_calloc((size_t)opts->max, sizeof *p->all);
    p->max = opts->max;
    p->stack_len = (size_t)opts->stack_kb * 1024;
    lw_work_opts wo = {.name = "lw-store", .threads = opts->threads};
    p->work = p->all ? lw_work_new(ctx, &wo) : NULL;
    if (!p->work) {
        lw_log_error("fiber", "cannot start the store's worker threads");
        lw_free(p->all);
        lw_free(p);
        return NULL;
    }
    return p;
}

void lw_fibers_free(lw_fibers *p)
{
    if (!p)
        return;
    /* Jobs still queued are dropped: their fibers are abandoned with them. */
    lw_work_free(p->work);
    for (int k = 0; k < p->made; k++) {
        munmap(p->all[k]->map, p->all[k]->map_len);
        lw_free(p->all[k]);
    }
    lw_free(p->all);
    lw_free(p);
}

/* ---- running --------------------------------------------------------------- */

int lw_fiber_start(lw_fibers *p, lw_fiber_fn fn, void *arg)
{
    if (current) {
        fn(arg); /* already on a fiber: its waits are this one's */
        return LW_OK;
    }
    if (!p)
        return LW_ELIMIT;
    fiber *f = p->free;
    if (f)
        p->free = f->next_free;
    else if (p->made < p->max)
        f = fiber_make(p);
    if (!f) {
        p->stats.refused++;
        return LW_ELIMIT;
    }
    f->fn = fn;
    f->arg = arg;
    f->busy = true;
    p->stats.running++;
    p->stats.started++;
    switch_in(f);
    recycle_if_done(p, f);
    return LW_OK;
}

lw_fiber *lw_fiber_current(void)
{
    return current;
}

void lw_fiber_suspend(void)
{
    fiber *f = current;
    if (!f)
        return;
    if (f->woken) { /* what it waits for is done already */
        f->woken = false;
        return;
    }
    f->suspended = true;
    f->owner->stats.waiting++;
    f->owner->stats.waits++;
    gen++;
    switch_out(f);
}

void lw_fiber_resume(lw_fiber *f)
{
    if (!f->suspended) {
        f->woken = true; /* resumed from inside itself, before it suspended */
        return;
    }
    f->suspended = false;
    lw_fibers *p = f->owner;
    p->stats.waiting--;
    switch_in(f);
    recycle_if_done(p, f);
}

static void job_run(void *arg)
{
    fiber *f = arg;
    f->job_rc = f->job_fn(f->job_arg);
}

/* On the loop: the worker finished; the fiber goes on from its wait. */
static void job_done(void *arg)
{
    lw_fiber_resume(arg);
}

int lw_offload(lw_offload_fn fn, void *arg)
{
    fiber *f = current;
    if (!f)
        return fn(arg);
    f->job_fn = fn;
    f->job_arg = arg;
    if (lw_work_submit(f->owner->work, job_run, job_done, f) != LW_OK)
        return fn(arg); /* the queue is full: blocking beats failing */
    lw_fiber_suspend();
    f->job_fn = NULL;
    f->job_arg = NULL;
    return f->job_rc;
}

typedef struct await_job {
    lw_fiber *f;
    lw_work_fn run;
    void *arg;
} await_job;

static void await_run(void *arg)
{
    await_job *a = arg;
    a->run(a->arg);
}

static void await_done(void *arg)
{
    lw_fiber_resume(((await_job *)arg)->f);
}

int lw_fiber_await(lw_work *w, lw_work_fn run, void *arg)
{
    if (!current)
        return LW_EINVAL;
    await_job a = {current, run, arg};
    int rc = lw_work_submit(w, await_run, await_done, &a);
    if (rc == LW_OK)
        lw_fiber_suspend();
    return rc;
}

void lw_fibers_stats_get(const lw_fibers *p, lw_fibers_stats *out)
{
    memset(out, 0, sizeof *out);
    if (p)
        *out = p->stats;
}
