#include "rate.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto.h"
#include "log.h"
#include "lw.h"

/* A table starts with this many hash slots and doubles them as it fills
 * (load factor 1), up to the power of two above its bound. */
#define SLOTS_INITIAL 64

typedef struct entry {
    struct entry *chain;         /* next in the same hash slot */
    struct entry *newer, *older; /* the table's use order */
    uint64_t hash;
    double tokens;
    int64_t at; /* when tokens was computed */
    char id[];  /* NUL-terminated */
} entry;

typedef struct table {
    char rule[LW_RATE_NAME_MAX], scope[LW_RATE_NAME_MAX];
    double burst, per_ms; /* the rule's, as last given */
    entry **slots;
    size_t nslots; /* power of two */
    size_t count;
    entry *newest, *oldest;
    uint64_t evicted;
} table;

struct lw_rates {
    size_t keys_per_table;
    unsigned char hash_key[crypto_shorthash_KEYBYTES];
    table tables[LW_RATE_TABLES_MAX];
    size_t ntables;
    bool told_tables_full; /* logged once, not per request */
};

lw_rates *lw_rates_new(size_t keys_per_table)
{
    lw_rates *r = lw_calloc(1, sizeof *r);
    if (!r)
        return NULL;
    if (keys_per_table < LW_RATE_TABLE_KEYS_MIN)
        keys_per_table = LW_RATE_TABLE_KEYS_MIN;
    if (keys_per_table > LW_RATE_TABLE_KEYS_MAX)
        keys_per_table = LW_RATE_TABLE_KEYS_MAX;
    r->keys_per_table = keys_per_table;
    /* lw_crypto_init has run (serve.c does it first). */
    lw_random(r->hash_key, sizeof r->hash_key);
    return r;
}

static void table_clear(table *t)
{
    for (entry *e = t->newest, *next; e; e = next) {
        next = e->older;
        lw_free(e);
    }
    lw_free(t->slots);
    memset(t, 0, sizeof *t);
}

void lw_rates_free(lw_rates *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->ntables; i++)
        table_clear(&r->tables[i]);
    lw_wipe(r->hash_key, sizeof r->hash_key);
    lw_free(r);
}

static uint64_t hash_id(const lw_rates *r, const char *id, size_t len)
{
    unsigned char out[crypto_shorthash_BYTES];
    crypto_shorthash(out, (const unsigned char *)id, len, r->hash_key);
    uint64_t h;
    memcpy(&h, out, sizeof h);
    return h;
}

/* The table of (rule, scope), made on first use; NULL when there is no room
 * for another (a programming error: the names are the server's own). */
static table *table_for(lw_rates *r, const char *rule, const char *scope)
{
    for (size_t i = 0; i < r->ntables; i++)
        if (strcmp(r->tables[i].rule, rule) == 0 && strcmp(r->tables[i].scope, scope) == 0)
            return &r->tables[i];
    if (r->ntables == LW_RATE_TABLES_MAX)
        return NULL;
    table *t = &r->tables[r->ntables];
    memset(t, 0, sizeof *t);
    if (lw_strlcpy(t->rule, rule, sizeof t->rule) != LW_OK ||
        lw_strlcpy(t->scope, scope, sizeof t->scope) != LW_OK)
        return NULL;
    if (!(t->slots = lw_calloc(SLOTS_INITIAL, sizeof *t->slots)))
        return NULL;
    t->nslots = SLOTS_INITIAL;
    r->ntables++;
    return t;
}

/* Doubles the slots when the table outgrew them and may still grow; on
 * failure the chains just get longer. */
static void table_grow(table *t, size_t bound)
{
    if (t->count < t->nslots || t->nslots >= bound)
        return;
    size_t n = t->nslots * 2;
    entry **slots = lw_calloc(n, sizeof *slots);
    if (!slots)
        return;
    for (size_t i = 0; i < t->nslots; i++) {
        for (entry *e = t->slots[i], *next; e; e = next) {
            next = e->chain;
            entry **s = &slots[e->hash & (n - 1)];
            e->chain = *s;
            *s = e;
        }
    }
    lw_free(t->slots);
    t->slots = slots;
    t->nslots = n;
}

static void lru_unlink(table *t, entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        t->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        t->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void lru_push(table *t, entry *e)
{
    e->older = t->newest;
    e->newer = NULL;
    if (t->newest)
        t->newest->newer = e;
    t->newest = e;
    if (!t->oldest)
        t->oldest = e;
}

/* Unlinks e from its table and frees it. */
static void table_remove(table *t, entry *e)
{
    entry **p = &t->slots[e->hash & (t->nslots - 1)];
    while (*p && *p != e)
        p = &(*p)->chain;
    if (*p)
        *p = e->chain;
    lru_unlink(t, e);
    t->count--;
    lw_free(e);
}

static entry *table_find(const table *t, uint64_t h, const char *id)
{
    for (entry *e = t->slots[h & (t->nslots - 1)]; e; e = e->chain)
        if (e->hash == h && strcmp(e->id, id) == 0)
            return e;
    return NULL;
}

static void refill(const table *t, entry *e, int64_t now)
{
    if (now > e->at) {
        e->tokens = fmin(t->burst, e->tokens + (double)(now - e->at) * t->per_ms);
        e->at = now;
    }
}

int64_t lw_rates_take(lw_rates *r, const lw_rate_rule *rule, const char *scope, const char *id, int64_t now)
{
    if (rule->burst <= 0)
        return 0;
    table *t = table_for(r, rule->name, scope);
    if (!t) {
        if (!r->told_tables_full)
            lw_log_error("rate", "no table for rule %s by %s (at most %d tables): not limited", rule->name,
                         scope, LW_RATE_TABLES_MAX);
        r->told_tables_full = true;
        return 0;
    }
    t->burst = rule->burst;
    t->per_ms = rule->per_second / 1000.0;
    size_t len = strnlen(id, LW_RATE_ID_MAX - 1);
    char cut[LW_RATE_ID_MAX];
    memcpy(cut, id, len);
    cut[len] = '\0';
    uint64_t h = hash_id(r, cut, len);
    entry *e = table_find(t, h, cut);
    if (e) {
        lru_unlink(t, e);
    } else {
        /* Full: the least recently used bucket makes room. */
        if (t->count >= r->keys_per_table && t->oldest) {
            table_remove(t, t->oldest);
            t->evicted++;
        }
        if (!(e = lw_malloc(sizeof *e + len + 1))) {
            lw_log_warn("rate", "out of memory for a %s bucket: not limited", rule->name);
            return 0;
        }
        memset(e, 0, sizeof *e);
        memcpy(e->id, cut, len + 1);
        e->hash = h;
        e->tokens = t->burst;
        e->at = now;
        entry **s = &t->slots[h & (t->nslots - 1)];
        e->chain = *s;
        *s = e;
        t->count++;
        table_grow(t, r->keys_per_table);
    }
    lru_push(t, e);
    refill(t, e, now);
    if (e->tokens >= 1.0) {
        e->tokens -= 1.0;
        return 0;
    }
    if (t->per_ms <= 0)
        return INT64_MAX / 2;
    return (int64_t)ceil((1.0 - e->tokens) / t->per_ms);
}

void lw_rates_prune(lw_rates *r, int64_t now)
{
    for (size_t i = 0; i < r->ntables; i++) {
        table *t = &r->tables[i];
        for (entry *e = t->oldest, *newer; e; e = newer) {
            newer = e->newer;
            refill(t, e, now);
            if (e->tokens >= t->burst)
                table_remove(t, e);
        }
    }
}

size_t lw_rates_count(const lw_rates *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->ntables; i++)
        n += r->tables[i].count;
    return n;
}

size_t lw_rates_stats(const lw_rates *r, lw_rate_table_stats *out, size_t cap)
{
    for (size_t i = 0; i < r->ntables && i < cap; i++)
        out[i] = (lw_rate_table_stats){r->tables[i].rule, r->tables[i].scope, r->tables[i].count,
                                       r->tables[i].evicted};
    return r->ntables;
}

int lw_rates_addr_key(const char *ip, int ipv6_prefix, char *out, size_t cap)
{
    if (ipv6_prefix < LW_RATE_IPV6_PREFIX_MIN || ipv6_prefix > LW_RATE_IPV6_PREFIX_MAX) {
        if (cap)
            out[0] = '\0';
        return LW_EINVAL;
    }
    struct in6_addr a;
    if (inet_pton(AF_INET6, ip, &a) != 1)
        return lw_strlcpy(out, ip, cap); /* IPv4, or not an address: as it is */
    static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    char text[INET6_ADDRSTRLEN];
    if (memcmp(a.s6_addr, v4mapped, sizeof v4mapped) == 0) {
        /* The same IPv4 client however the socket wrote it. */
        if (!inet_ntop(AF_INET, a.s6_addr + 12, text, sizeof text))
            return lw_strlcpy(out, ip, cap);
        return lw_strlcpy(out, text, cap);
    }
    for (int bit = ipv6_prefix; bit < 128; bit++)
        a.s6_addr[bit / 8] &= (unsigned char)~(0x80u >> (bit % 8));
    if (!inet_ntop(AF_INET6, &a, text, sizeof text))
        return lw_strlcpy(out, ip, cap);
    if (ipv6_prefix == 128)
        return lw_strlcpy(out, text, cap);
    int n = snprintf(out, cap, "%s/%d", text, ipv6_prefix);
    if (n < 0 || (size_t)n >= cap) {
        if (cap)
            out[0] = '\0';
        return LW_ETOOBIG;
    }
    return LW_OK;
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
