#include "log.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lw.h"

/* Longest message of one line, in bytes (longer ones are cut, and end in "..."). */
#define LW_LOG_MESSAGE_MAX 1024

static lw_log_level min_level = LW_LOG_INFO;
static const char *level_names[] = {"debug", "info", "warn", "error"};

void lw_log_set_level(lw_log_level min)
{
    min_level = min;
}

static bool full_addresses;

void lw_log_set_full_addresses(bool on)
{
    full_addresses = on;
}

/* Keeps the first bits of the len-byte address a, zeroes the rest. */
static void keep_bits(unsigned char *a, size_t len, unsigned bits)
{
    for (size_t i = 0; i < len; i++) {
        unsigned have = bits > 8 * i ? bits - 8 * (unsigned)i : 0;
        if (have < 8)
            a[i] &= (unsigned char)(0xFF << (8 - have));
    }
}

const char *lw_log_addr(const char *ip, char out[LW_LOG_ADDR_MAX])
{
    unsigned char a[16];
    int family = inet_pton(AF_INET, ip, a) == 1 ? AF_INET : inet_pton(AF_INET6, ip, a) == 1 ? AF_INET6 : 0;
    if (family == 0) {
        /* Not an address (none, from a socketpair): nothing to print, and
         * text that did not parse is not ours to copy into a log. */
        lw_strlcpy(out, "-", LW_LOG_ADDR_MAX);
        return out;
    }
    if (full_addresses) {
        if (!inet_ntop(family, a, out, LW_LOG_ADDR_MAX))
            lw_strlcpy(out, "-", LW_LOG_ADDR_MAX);
        return out;
    }
    unsigned bits = family == AF_INET ? LW_LOG_ADDR_V4_BITS : LW_LOG_ADDR_V6_BITS;
    keep_bits(a, family == AF_INET ? 4 : 16, bits);
    char net[INET6_ADDRSTRLEN];
    if (!inet_ntop(family, a, net, sizeof net)) {
        lw_strlcpy(out, "-", LW_LOG_ADDR_MAX);
        return out;
    }
    int n = snprintf(out, LW_LOG_ADDR_MAX, "%s/%u", net, bits);
    if (n < 0 || n >= LW_LOG_ADDR_MAX)
        lw_strlcpy(out, "-", LW_LOG_ADDR_MAX);
    return out;
}

/* JSON string escaping of msg into buf; control characters become \u00XX so
 * a hostile value cannot forge a second log line. */
static void escape_into(lw_buf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            lw_buf_appendf(b, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            lw_buf_appendf(b, "\\u%04x", c);
        else
            lw_buf_append(b, s, 1);
    }
}

void lw_log(lw_log_level lvl, const char *sub, const char *fmt, ...)
{
    if (lvl < min_level)
        return;
    char msg[LW_LOG_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof msg)
        memcpy(msg + sizeof msg - 4, "...", 4); /* says it was cut */
    /* A log line is JSON: what a client sent (or the bound cut) must not
     * leave bytes that are not UTF-8 in it, or readers drop the line. */
    lw_utf8_sanitize(msg);
    char ts[LW_TIME_STRLEN];
    lw_time_format(lw_now_ms(), ts);
    lw_buf b;
    lw_buf_init(&b, 4096);
    lw_buf_appendf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"sub\":\"", ts, level_names[lvl]);
    escape_into(&b, sub);
    lw_buf_append(&b, "\",\"msg\":\"", 9);
    escape_into(&b, msg);
    lw_buf_append(&b, "\"}\n", 3);
    if (b.data)
        fwrite(b.data, 1, b.len, stderr);
    lw_buf_free(&b);
}
