/*
 * log.h — structured JSON-lines logs on stderr:
 *   {"ts":"…","level":"info","sub":"http","msg":"…"}
 * Never pass a credential, PIN or key to these functions; when a log line
 * needs to identify a credential, use lw_log_selector_tag() (hash prefix).
 */
#ifndef LW_LOG_H
#define LW_LOG_H

typedef enum { LW_LOG_DEBUG, LW_LOG_INFO, LW_LOG_WARN, LW_LOG_ERROR } lw_log_level;

void lw_log_set_level(lw_log_level min);
void lw_log(lw_log_level lvl, const char *sub, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define lw_log_info(sub, ...) lw_log(LW_LOG_INFO, sub, __VA_ARGS__)
#define lw_log_warn(sub, ...) lw_log(LW_LOG_WARN, sub, __VA_ARGS__)
#define lw_log_error(sub, ...) lw_log(LW_LOG_ERROR, sub, __VA_ARGS__)
#define lw_log_debug(sub, ...) lw_log(LW_LOG_DEBUG, sub, __VA_ARGS__)

#endif
