/* The string-keyed hash map behind the session cache and the WebSocket registry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lw.h"
#include "map.h"

static void test_basic(void **state)
{
    lw_map *m = lw_map_new();
    assert_non_null(m);
    int a = 1, b = 2;
    assert_null(lw_map_get(m, "x"));
    assert_int_equal(lw_map_put(m, "x", &a), LW_OK);
    assert_ptr_equal(lw_map_get(m, "x"), &a);
    assert_int_equal(lw_map_put(m, "x", &b), LW_OK); /* replace */
    assert_ptr_equal(lw_map_get(m, "x"), &b);
    assert_int_equal(lw_map_size(m), 1);
    assert_ptr_equal(lw_map_del(m, "x"), &b);
    assert_null(lw_map_del(m, "x"));
    assert_int_equal(lw_map_size(m), 0);
    lw_map_free(m);
}

static void count_cb(const char *key, void *value, void *arg)
{
    (*(long *)arg) += (long)(intptr_t)value;
}

static void test_grow_and_iterate(void **state)
{
    lw_map *m = lw_map_new();
    char key[32];
    enum { N = 10000 };
    for (long i = 1; i <= N; i++) {
        snprintf(key, sizeof key, "key-%ld", i);
        assert_int_equal(lw_map_put(m, key, (void *)(intptr_t)i), LW_OK);
    }
    assert_int_equal(lw_map_size(m), N);
    for (long i = 1; i <= N; i++) {
        snprintf(key, sizeof key, "key-%ld", i);
        assert_int_equal((intptr_t)lw_map_get(m, key), i);
    }
    long sum = 0;
    lw_map_each(m, count_cb, &sum);
    assert_int_equal(sum, (long)N * (N + 1) / 2);
    for (long i = 1; i <= N; i += 2) {
        snprintf(key, sizeof key, "key-%ld", i);
        assert_non_null(lw_map_del(m, key));
    }
    assert_int_equal(lw_map_size(m), N / 2);
    assert_null(lw_map_get(m, "key-1"));
    assert_int_equal((intptr_t)lw_map_get(m, "key-2"), 2);
    lw_map_free(m);
}

static void test_alloc_failure(void **state)
{
    lw_map *m = lw_map_new();
    int a = 1;
    lw_alloc_fail_after(0); /* the node allocation fails */
    assert_int_equal(lw_map_put(m, "x", &a), LW_ENOMEM);
    assert_null(lw_map_get(m, "x"));
    assert_int_equal(lw_map_size(m), 0);
    assert_int_equal(lw_map_put(m, "x", &a), LW_OK);
    lw_map_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_grow_and_iterate),
        cmocka_unit_test(test_alloc_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
