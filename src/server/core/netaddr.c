#include "netaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "lw.h"

/* Parses an address (IPv4, IPv6, IPv4-mapped IPv6 folded to IPv4). */
bool lw_ip_parse(const char *s, size_t len, int *family, uint8_t addr[16])
{
    char buf[64];
    if (len == 0 || len >= sizeof buf)
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET, buf, addr) == 1) {
        *family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, buf, addr) == 1) {
        if (IN6_IS_ADDR_V4MAPPED((struct in6_addr *)addr)) {
            memmove(addr, addr + 12, 4);
            *family = AF_INET;
        } else {
            *family = AF_INET6;
        }
        return true;
    }
    return false;
}

void lw_ip_format(int family, const uint8_t addr[16], char *out, size_t cap)
{
    if (family == AF_INET && cap >= 16) {
        /* By hand: glibc's inet_ntop for IPv4 is a sprintf, and this runs
         * on every request. */
        char *o = out;
        for (int i = 0; i < 4; i++) {
            o += lw_fmt_i64(o, addr[i]);
            *o++ = i < 3 ? '.' : '\0';
        }
        return;
    }
    if (!inet_ntop(family, addr, out, (socklen_t)cap))
        out[0] = '\0';
}

int lw_proxies_parse(lw_proxies *p, const char *list, const char **bad)
{
    memset(p, 0, sizeof *p);
    const char *s = list;
    while (s && *s) {
        while (*s == ' ' || *s == ',')
            s++;
        if (!*s)
            break;
        const char *end = s + strcspn(s, ", ");
        const char *slash = memchr(s, '/', (size_t)(end - s));
        lw_cidr c;
        memset(&c, 0, sizeof c);
        if (p->n == LW_PROXIES_MAX || !lw_ip_parse(s, (size_t)((slash ? slash : end) - s), &c.family, c.addr))
            goto fail;
        int max = c.family == AF_INET ? 32 : 128;
        c.bits = max;
        if (slash) {
            char *e;
            long b = strtol(slash + 1, &e, 10);
            if (e != end || slash + 1 == end || b < 0 || b > max)
                goto fail;
            c.bits = (int)b;
        }
        p->nets[p->n++] = c;
        s = end;
        continue;
    fail:
        if (bad)
            *bad = s;
        return LW_EINVAL;
    }
    return LW_OK;
}

bool lw_proxies_contains_addr(const lw_proxies *p, int family, const uint8_t addr[16])
{
    for (size_t i = 0; i < p->n; i++) {
        const lw_cidr *c = &p->nets[i];
        if (c->family != family)
            continue;
        int full = c->bits / 8, rest = c->bits % 8;
        if (memcmp(c->addr, addr, (size_t)full) != 0)
            continue;
        if (rest && ((c->addr[full] ^ addr[full]) & (uint8_t)(0xff << (8 - rest))))
            continue;
        return true;
    }
    return false;
}

bool lw_proxies_contains(const lw_proxies *p, const char *ip)
{
    int family;
    uint8_t addr[16];
    return ip && lw_ip_parse(ip, strlen(ip), &family, addr) && lw_proxies_contains_addr(p, family, addr);
}

int lw_listen_parse(const char *in, char *host, size_t hcap, int *port)
{
    const char *colon;
    size_t hlen;
    if (in[0] == '[') {
        const char *end = strchr(in, ']');
        if (!end || end[1] != ':')
            return LW_EINVAL;
        hlen = (size_t)(end - in - 1);
        if (hlen == 0 || hlen >= hcap)
            return LW_EINVAL;
        memcpy(host, in + 1, hlen);
        colon = end + 1;
    } else {
        colon = strrchr(in, ':');
        if (!colon)
            return LW_EINVAL;
        hlen = (size_t)(colon - in);
        if (hlen == 0 || hlen >= hcap || memchr(in, ':', hlen))
            return LW_EINVAL;
        memcpy(host, in, hlen);
    }
    host[hlen] = '\0';
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || p < 0 || p > 65535)
        return LW_EINVAL;
    *port = (int)p;
    return LW_OK;
}
