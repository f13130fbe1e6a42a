#include "clientaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <h2o.h>

#include "lw.h"

#define HEADER_LINES_MAX 64 /* forwarding header lines read; the last ones are kept */

/* One element of a forwarding list: strips spaces, quotes, "[v6]:port" and
 * "v4:port". Returns false for "unknown", obfuscated identifiers, garbage. */
static bool element_ip(const char *s, size_t len, int *family, uint8_t addr[16])
{
    while (len && (*s == ' ' || *s == '"'))
        s++, len--;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '"'))
        len--;
    if (len && *s == '[') {
        const char *close = memchr(s, ']', len);
        if (!close)
            return false;
        return lw_ip_parse(s + 1, (size_t)(close - s - 1), family, addr);
    }
    const char *colon = memchr(s, ':', len);
    if (colon && !memchr(colon + 1, ':', len - (size_t)(colon - s) - 1))
        len = (size_t)(colon - s); /* IPv4 with a port */
    return lw_ip_parse(s, len, family, addr);
}

/* Walks a comma-separated list right to left; the first address that is not
 * a trusted proxy is the client. Returns false if the list yields nothing. */
static bool walk(const lw_proxies *p, const char *list, size_t len, bool forwarded, int *family,
                 uint8_t addr[16])
{
    bool any = false;
    int last_family = 0;
    uint8_t last[16];
    size_t end = len;
    while (end > 0) {
        size_t start = end;
        while (start > 0 && list[start - 1] != ',')
            start--;
        const char *e = list + start;
        size_t elen = end - start;
        if (forwarded) {
            /* "for=…;proto=…;by=…": take the for= parameter, case-insensitively. */
            const char *f = NULL;
            for (size_t i = 0; i + 4 <= elen; i++)
                if (strncasecmp(e + i, "for=", 4) == 0 && (i == 0 || e[i - 1] == ';' || e[i - 1] == ' ')) {
                    f = e + i + 4;
                    break;
                }
            if (!f) {
                end = start ? start - 1 : 0;
                continue;
            }
            /* Bounded by the element, which need not be NUL-terminated. */
            size_t flen = 0;
            while (f + flen < e + elen && f[flen] != ';' && f[flen] != ',')
                flen++;
            e = f;
            elen = flen;
        }
        int fam;
        uint8_t a[16];
        if (!element_ip(e, elen, &fam, a))
            return any ? (*family = last_family, memcpy(addr, last, 16), true) : false;
        any = true;
        last_family = fam;
        memcpy(last, a, 16);
        if (!lw_proxies_contains_addr(p, fam, a)) {
            *family = fam;
            memcpy(addr, a, 16);
            return true;
        }
        end = start ? start - 1 : 0;
    }
    if (any) {
        /* Every hop was a trusted proxy: the left-most is the best we know. */
        *family = last_family;
        memcpy(addr, last, 16);
    }
    return any;
}

/* The client behind a peer given as bytes: the peer itself unless it is a
 * trusted proxy, in which case the one configured forwarding header is
 * walked. */
static void pick(const lw_proxies *p, int family, uint8_t addr[16], const char *hdr, size_t hdr_len,
                 char out[LW_IP_MAX])
{
    if (lw_proxies_contains_addr(p, family, addr)) {
        int f2;
        uint8_t a2[16];
        if (hdr && walk(p, hdr, hdr_len, p->header == LW_PROXY_HEADER_FORWARDED, &f2, a2)) {
            family = f2;
            memcpy(addr, a2, 16);
        }
    }
    lw_ip_format(family, addr, out, LW_IP_MAX);
}

void lw_clientaddr_pick(const lw_proxies *p, const char *peer, const char *hdr, size_t hdr_len,
                        char out[LW_IP_MAX])
{
    int family;
    uint8_t addr[16];
    out[0] = '\0';
    if (!peer || !lw_ip_parse(peer, strlen(peer), &family, addr))
        return;
    pick(p, family, addr, hdr, hdr_len, out);
}

/* Copies the part of src past the first *skip bytes still to be dropped. */
static void join_piece(char *buf, size_t *o, size_t *skip, const char *src, size_t len)
{
    if (*skip >= len) {
        *skip -= len;
        return;
    }
    src += *skip;
    len -= *skip;
    *skip = 0;
    memcpy(buf + *o, src, len);
    *o += len;
}

/* The byte at position i of the lines joined by ", ". */
static char joined_at(const char *const *lines, const size_t *lens, size_t n, size_t i)
{
    for (size_t k = 0; k < n; k++) {
        if (k) {
            if (i < 2)
                return i == 0 ? ',' : ' ';
            i -= 2;
        }
        if (i < lens[k])
            return lines[k][i];
        i -= lens[k];
    }
    return '\0';
}

size_t lw_clientaddr_join(const char *const *lines, const size_t *lens, size_t n, char *buf, size_t cap)
{
    if (cap == 0)
        return 0;
    size_t total = 0;
    for (size_t k = 0; k < n; k++)
        total += lens[k] + (k ? 2 : 0);
    /* Too long: the client wrote the left part, our proxies appended the
     * right one, so the left is what goes. */
    size_t start = total > cap - 1 ? total - (cap - 1) : 0, skip = start, o = 0;
    for (size_t k = 0; k < n; k++) {
        if (k)
            join_piece(buf, &o, &skip, ", ", 2);
        join_piece(buf, &o, &skip, lines[k], lens[k]);
    }
    if (start > 0) {
        /* Cut in the middle of a hop: that hop is gone, its tail would read
         * as another address ("11.1.1.1" cut to "1.1.1.1"). */
        char before = joined_at(lines, lens, n, start - 1);
        bool boundary =
            before == ',' || (before == ' ' && start >= 2 && joined_at(lines, lens, n, start - 2) == ',');
        size_t drop = 0;
        if (!boundary) {
            const char *comma = memchr(buf, ',', o);
            drop = comma ? (size_t)(comma - buf) + 1 : o;
        }
        while (drop < o && buf[drop] == ' ')
            drop++;
        memmove(buf, buf + drop, o - drop);
        o -= drop;
    }
    buf[o] = '\0';
    return o;
}

/* All values of a header, in request order, joined into buf (see
 * lw_clientaddr_join). Beyond HEADER_LINES_MAX lines the last ones count. */
static size_t join_header(h2o_req_t *req, const char *name, char *buf, size_t cap)
{
    const char *lines[HEADER_LINES_MAX];
    size_t lens[HEADER_LINES_MAX], n = 0;
    for (ssize_t i = -1; (i = h2o_find_header_by_str(&req->headers, name, strlen(name), i)) >= 0;) {
        if (n == HEADER_LINES_MAX) {
            memmove(lines, lines + 1, (n - 1) * sizeof lines[0]);
            memmove(lens, lens + 1, (n - 1) * sizeof lens[0]);
            n--;
        }
        lines[n] = req->headers.entries[i].value.base;
        lens[n++] = req->headers.entries[i].value.len;
    }
    return lw_clientaddr_join(lines, lens, n, buf, cap);
}

void lw_clientaddr(const lw_proxies *p, h2o_req_t *req, char out[LW_IP_MAX])
{
    struct sockaddr_storage ss;
    out[0] = '\0';
    if (!req->conn->callbacks->get_peername)
        return;
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    if (len == 0)
        return;
    int family;
    uint8_t addr[16] = {0};
    if (ss.ss_family == AF_INET) {
        family = AF_INET;
        memcpy(addr, &((struct sockaddr_in *)&ss)->sin_addr, 4);
    } else if (ss.ss_family == AF_INET6) {
        const struct in6_addr *a6 = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            family = AF_INET;
            memcpy(addr, a6->s6_addr + 12, 4);
        } else {
            family = AF_INET6;
            memcpy(addr, a6->s6_addr, 16);
        }
    } else {
        return;
    }
    /* The common case, no trusted proxy in front: no header is read. */
    if (!p || p->n == 0 || !lw_proxies_contains_addr(p, family, addr)) {
        lw_ip_format(family, addr, out, LW_IP_MAX);
        return;
    }
    char hdr[LW_FORWARDED_MAX];
    size_t hl = join_header(req, p->header == LW_PROXY_HEADER_FORWARDED ? "forwarded" : "x-forwarded-for",
                            hdr, sizeof hdr);
    pick(p, family, addr, hl ? hdr : NULL, hl, out);
}
