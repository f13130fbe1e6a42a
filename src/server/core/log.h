/*
 * log.h — structured JSON-lines logs on stderr:
 *   {"ts":"…","level":"info","sub":"http","msg":"…"}
 * Never pass a credential, PIN or key to these functions; when a log line
 * needs to identify a credential, use lw_log_selector_tag() (hash prefix).
 * Devices and accounts are named by id; a client address only through
 * lw_log_addr.
 */
#ifndef LW_LOG_H
#define LW_LOG_H

#include <stdbool.h>

typedef enum { LW_LOG_DEBUG, LW_LOG_INFO, LW_LOG_WARN, LW_LOG_ERROR } lw_log_level;

void lw_log_set_level(lw_log_level min);

/* Room for an address as lw_log_addr writes it (a full IPv6 address, or a
 * network with its prefix length). */
#define LW_LOG_ADDR_MAX 64
/* Prefix lengths an address is cut to in logs: a network, not a client. */
#define LW_LOG_ADDR_V4_BITS 24
#define LW_LOG_ADDR_V6_BITS 48
/* Whether log lines may name a client address in full (serve.c: only at the
 * debug level, and never with --privacy country-only). Off by default. */
void lw_log_set_full_addresses(bool on);
/* The one way an address goes into a log line: the text address ip as it
 * is when full addresses are on, else its network ("203.0.113.0/24",
 * "2001:db8:1::/48"); "-" for empty text or text that is not an address.
 * Writes out and returns it. */
const char *lw_log_addr(const char *ip, char out[LW_LOG_ADDR_MAX]);
void lw_log(lw_log_level lvl, const char *sub, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define lw_log_info(sub, ...) lw_log(LW_LOG_INFO, sub, __VA_ARGS__)
#define lw_log_warn(sub, ...) lw_log(LW_LOG_WARN, sub, __VA_ARGS__)
#define lw_log_error(sub, ...) lw_log(LW_LOG_ERROR, sub, __VA_ARGS__)
#define lw_log_debug(sub, ...) lw_log(LW_LOG_DEBUG, sub, __VA_ARGS__)

#endif
