#include "rate.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lw.h"
#include "map.h"

typedef struct bucket {
    double tokens;
    double burst;
    double per_ms;
    int64_t at; /* when tokens was computed */
} bucket;

struct lw_rates {
    lw_map *buckets;
    size_t max_keys;
};

lw_rates *lw_rates_new(size_t max_keys)
{
    lw_rates *r = lw_calloc(1, sizeof *r);
    if (!r)
        return NULL;
    if (!(r->buckets = lw_map_new())) {
        lw_free(r);
        return NULL;
    }
    r->max_keys = max_keys;
    return r;
}

static void free_bucket(const char *key, void *value, void *arg)
{
    lw_free(value);
}

void lw_rates_free(lw_rates *r)
{
    if (!r)
        return;
    lw_map_each(r->buckets, free_bucket, NULL);
    lw_map_free(r->buckets);
    lw_free(r);
}

static void refill(bucket *b, int64_t now)
{
    if (now > b->at) {
        b->tokens = fmin(b->burst, b->tokens + (double)(now - b->at) * b->per_ms);
        b->at = now;
    }
}

int64_t lw_rates_take(lw_rates *r, const lw_rate_rule *rule, const char *key, int64_t now)
{
    if (rule->burst <= 0)
        return 0;
    bucket *b = lw_map_get(r->buckets, key);
    if (!b) {
        if (lw_map_size(r->buckets) >= r->max_keys)
            return 1000; /* full: refuse until pruning makes room */
        if (!(b = lw_malloc(sizeof *b)))
            return 1000;
        b->tokens = rule->burst;
        b->burst = rule->burst;
        b->per_ms = rule->per_second / 1000.0;
        b->at = now;
        if (lw_map_put(r->buckets, key, b) != LW_OK) {
            lw_free(b);
            return 1000;
        }
    }
    refill(b, now);
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return 0;
    }
    if (b->per_ms <= 0)
        return INT64_MAX / 2;
    return (int64_t)ceil((1.0 - b->tokens) / b->per_ms);
}

typedef struct {
    lw_rates *r;
    int64_t now;
    char **keys;
    size_t n, cap;
} prune_ctx;

static void collect_full(const char *key, void *value, void *arg)
{
    prune_ctx *p = arg;
    bucket *b = value;
    refill(b, p->now);
    if (b->tokens < b->burst || p->n == p->cap)
        return;
    p->keys[p->n++] = (char *)key;
}

void lw_rates_prune(lw_rates *r, int64_t now)
{
    size_t total = lw_map_size(r->buckets);
    if (total == 0)
        return;
    prune_ctx p = {r, now, lw_malloc(total * sizeof(char *)), 0, total};
    if (!p.keys)
        return;
    lw_map_each(r->buckets, collect_full, &p);
    for (size_t i = 0; i < p.n; i++) {
        /* The key belongs to the map node: copy before deleting it. */
        char key[256];
        if (lw_strlcpy(key, p.keys[i], sizeof key) != LW_OK)
            continue;
        lw_free(lw_map_del(r->buckets, key));
    }
    lw_free(p.keys);
}

size_t lw_rates_count(const lw_rates *r)
{
    return lw_map_size(r->buckets);
}

int lw_rate_rule_parse(const char *text, lw_rate_rule *out)
{
    if (!text || !*text)
        return LW_EINVAL;
    char *end;
    errno = 0;
    long n = strtol(text, &end, 10);
    if (errno || end == text || n < 0 || n > 1000000)
        return LW_EINVAL;
    if (n == 0 && *end == '\0') {
        out->burst = 0;
        out->per_second = 0;
        return LW_OK;
    }
    double period;
    if (strcmp(end, "/s") == 0)
        period = 1;
    else if (strcmp(end, "/m") == 0)
        period = 60;
    else if (strcmp(end, "/h") == 0)
        period = 3600;
    else
        return LW_EINVAL;
    out->burst = (double)n;
    out->per_second = (double)n / period;
    return LW_OK;
}
