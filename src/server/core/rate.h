/*
 * rate.h — token buckets for the rate limits, refilled lazily on use.
 *
 * One table per (rule, scope): "register" by "ip", "scan" by "acct",
 * "refresh" by "device", ... Each table holds at most keys_per_table buckets
 * and, when full, forgets its least recently used bucket to make room: a full
 * table never refuses a newcomer. Refusing would fail closed for everyone —
 * whoever fills one table (many addresses are cheap: an IPv6 /64 is 2^64 of
 * them) would lock every new client out of registering or linking, and
 * linked devices out of refreshing their credential. Forgetting a bucket
 * only ever gives its owner a fresh one, which an attacker able to push a
 * whole table of new keys through has anyway, by using another of its keys.
 * Separate tables keep keys that strangers can make (addresses) from
 * pushing out keys only account holders can make (accounts, devices).
 *
 * Memory is bounded by tables x keys_per_table; buckets that have refilled
 * completely are forgotten early by lw_rates_prune (the sweeper calls it).
 * Buckets are found by a keyed hash (SipHash, random key per process), so
 * chosen keys cannot pile up in one hash chain. Event loop only.
 */
#ifndef LW_RATE_H
#define LW_RATE_H

#include <stddef.h>
#include <stdint.h>

typedef struct lw_rates lw_rates;

/* Buckets each table keeps by default (--rate-table-keys), and the bounds of
 * that option. A bucket costs about 110 bytes, so a full table of the
 * default is about 5.5 MB, and the ten tables the server uses 55 MB at most. */
#define LW_RATE_TABLE_KEYS_DEFAULT 50000
#define LW_RATE_TABLE_KEYS_MIN 16
#define LW_RATE_TABLE_KEYS_MAX 10000000
/* (rule, scope) pairs: the server uses ten. */
#define LW_RATE_TABLES_MAX 16
/* Rule and scope names ("register", "ip"), with their NUL. */
#define LW_RATE_NAME_MAX 16
/* An id (address, address prefix, account or device id), with its NUL;
 * longer ids are cut to this. */
#define LW_RATE_ID_MAX 96
/* IPv6 clients are counted by their network prefix (--rate-ipv6-prefix):
 * one subscriber usually holds a whole /64 (or more), so counting single
 * addresses would give one person 2^64 buckets. */
#define LW_RATE_IPV6_PREFIX_DEFAULT 64
#define LW_RATE_IPV6_PREFIX_MIN 16
#define LW_RATE_IPV6_PREFIX_MAX 128

typedef struct lw_rate_rule {
    const char *name;  /* "link", "scan", ... (for messages and the table) */
    double per_second; /* refill rate */
    double burst;      /* bucket size; 0 disables the rule */
} lw_rate_rule;

/* NULL when out of memory. keys_per_table is clamped to
 * [LW_RATE_TABLE_KEYS_MIN, LW_RATE_TABLE_KEYS_MAX]. */
lw_rates *lw_rates_new(size_t keys_per_table);
void lw_rates_free(lw_rates *r);

/* Takes one token from the bucket of id in the table (rule->name, scope) at
 * time now (ms). Returns 0 when allowed, else the milliseconds until a token
 * will be there. A bucket that cannot be tracked (no memory, more tables than
 * LW_RATE_TABLES_MAX) allows the request and logs it: the bound on memory is
 * the table size, never a refusal of strangers. */
int64_t lw_rates_take(lw_rates *r, const lw_rate_rule *rule, const char *scope, const char *id, int64_t now);
/* Forgets buckets that are full again at now. */
void lw_rates_prune(lw_rates *r, int64_t now);
/* Buckets in all tables. */
size_t lw_rates_count(const lw_rates *r);

typedef struct lw_rate_table_stats {
    const char *rule, *scope; /* valid while r lives */
    size_t keys;              /* buckets held now */
    uint64_t evicted;         /* buckets forgotten to make room, since start */
} lw_rate_table_stats;
/* Fills up to cap entries, one per table in creation order; returns how many tables there are. */
size_t lw_rates_stats(const lw_rates *r, lw_rate_table_stats *out, size_t cap);

/* The id an address is counted under: an IPv4 address as it is (also when
 * written IPv4-mapped, ::ffff:a.b.c.d), an IPv6 address as its network of
 * ipv6_prefix bits ("2001:db8:1:2::/64"; the address itself at 128), and
 * anything else unchanged. LW_EINVAL for a prefix outside
 * [LW_RATE_IPV6_PREFIX_MIN, LW_RATE_IPV6_PREFIX_MAX], LW_ETOOBIG if out
 * cannot hold the result (out is then ""). */
int lw_rates_addr_key(const char *ip, int ipv6_prefix, char *out, size_t cap);

/* Parses "30/m" (also /s, /h) into a rule: burst 30, refill 30 per minute.
 * "0" disables. LW_EINVAL on anything else. */
int lw_rate_rule_parse(const char *text, lw_rate_rule *out);

#endif
