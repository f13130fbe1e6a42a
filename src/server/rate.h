/*
 * rate.h — token buckets keyed by string ("link:198.51.100.7",
 * "scan:acct:…"), refilled lazily on use. Memory is bounded: buckets that
 * have refilled completely are forgotten by lw_rates_prune (the sweeper calls
 * it), and past max_keys new keys are refused rather than tracked (fail
 * closed: an attacker spraying keys gets 429s, not unbounded memory).
 */
#ifndef LW_RATE_H
#define LW_RATE_H

#include <stddef.h>
#include <stdint.h>

typedef struct lw_rates lw_rates;

/* Buckets tracked at most (keys are addresses, accounts, devices). */
#define LW_RATE_KEYS_MAX 200000

typedef struct lw_rate_rule {
    const char *name;  /* "link", "scan", ... (for messages) */
    double per_second; /* refill rate */
    double burst;      /* bucket size; 0 disables the rule */
} lw_rate_rule;

lw_rates *lw_rates_new(size_t max_keys);
void lw_rates_free(lw_rates *r);

/* Takes one token from the bucket `key` under rule at time now (ms).
 * Returns 0 when allowed, else the milliseconds until a token will be there. */
int64_t lw_rates_take(lw_rates *r, const lw_rate_rule *rule, const char *key, int64_t now);
/* Forgets buckets that are full again at now. */
void lw_rates_prune(lw_rates *r, int64_t now);
size_t lw_rates_count(const lw_rates *r);

/* Parses "30/m" (also /s, /h) into a rule: burst 30, refill 30 per minute.
 * "0" disables. LW_EINVAL on anything else. */
int lw_rate_rule_parse(const char *text, lw_rate_rule *out);

#endif
