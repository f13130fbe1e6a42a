/*
 * netaddr.h — addresses as the options name them, parsed without a socket:
 * "HOST:PORT" and "[V6]:PORT" (--listen, --metrics-listen), and the CIDR list
 * of --trusted-proxies. config.c checks them and transport uses them; neither
 * needs the other (clientaddr.c picks the client address with these lists).
 */
#ifndef LW_NETADDR_H
#define LW_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LW_PROXIES_MAX 32

typedef struct lw_cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    int bits;
} lw_cidr;

/* The header the trusted proxies write. Only that one is read: a proxy that
 * appends to X-Forwarded-For forwards a client's own Forwarded header as it
 * came, and the other way round. */
typedef enum { LW_PROXY_HEADER_XFF = 0, LW_PROXY_HEADER_FORWARDED } lw_proxy_header;

typedef struct lw_proxies {
    lw_cidr nets[LW_PROXIES_MAX];
    size_t n;
    lw_proxy_header header; /* --proxy-header */
} lw_proxies;

/* Parses "10.0.0.0/8,::1,192.168.1.7" (a bare address is a /32 or /128).
 * LW_EINVAL with *bad pointing at the offending item. "" gives an empty list.
 * Leaves p->header as X-Forwarded-For; set it after parsing. */
int lw_proxies_parse(lw_proxies *p, const char *list, const char **bad);
bool lw_proxies_contains(const lw_proxies *p, const char *ip_text);
/* The same for a parsed address (family and 16 bytes, as lw_ip_parse gives). */
bool lw_proxies_contains_addr(const lw_proxies *p, int family, const uint8_t addr[16]);

/* Parses the len bytes of s as an address: IPv4, IPv6, IPv4-mapped IPv6
 * folded to IPv4. */
bool lw_ip_parse(const char *s, size_t len, int *family, uint8_t addr[16]);
/* The canonical text of an address into out (cap bytes; "" if it does not fit). */
void lw_ip_format(int family, const uint8_t addr[16], char *out, size_t cap);

/* Parses "host:port" or "[v6]:port" (port 0 to 65535). LW_OK or LW_EINVAL. */
int lw_listen_parse(const char *in, char *host, size_t hcap, int *port);

#endif
