/*
 * fuzz_duration.c — durations in options and config values
 * (lw_duration_parse: "250ms", "30s", "10m", "6h", "30d", a bare number is
 * seconds), which fuzz_config also reaches through the option table.
 *
 * Oracle: a model with checked arithmetic (digits, then one unit, nothing
 * else, no overflow) must agree on acceptance and value.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "lw.h"

static bool model(const char *s, int64_t *out)
{
    int64_t v = 0;
    const char *p = s;
    if (*p < '0' || *p > '9')
        return false;
    for (; *p >= '0' && *p <= '9'; p++)
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *p - '0', &v))
            return false;
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"", 1000}, {"s", 1000}, {"ms", 1}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(p, units[i].unit) == 0)
            return !__builtin_mul_overflow(v, units[i].ms, out);
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0'; /* options and config values are C strings: stops at an embedded NUL too */
    int64_t got = -1, want = -1;
    int rc = lw_duration_parse(s, &got);
    bool ok = model(s, &want);
    if ((rc == LW_OK) != ok || (ok && got != want) || (rc != LW_OK && rc != LW_EINVAL)) {
        fprintf(stderr, "fuzz_duration: '%s': parse %d -> %lld, model %d -> %lld\n", s, rc, (long long)got,
                ok, (long long)want);
        abort();
    }
    free(s);
    return 0;
}
