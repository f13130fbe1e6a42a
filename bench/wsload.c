/*
 * wsload — a small WebSocket load tool for the Linkward benchmarks.
 *
 * Opens N client WebSockets to ws://HOST:PORT/v1/ws (plain TCP, the HTTP/1.1
 * upgrade written by hand, no TLS), each authenticated with
 * "Authorization: Bearer TOKEN" (one token for all, or one per line from a
 * file, used round-robin), from several loopback source addresses so that
 * one address's ephemeral ports are not the limit. It keeps them idle, reads
 * what the server pushes, answers pings, and reports on stdout, one line each:
 *
 *   ready opened=N failed=F ms=T [error="first failure"]
 *       every connection has either received its "hello" or failed;
 *   expect event=E got=K of=N first_ns=… last_ns=… closed=C closed_last_ns=… timed_out=0|1
 *       once every open socket has received the event E (and, with -C, has
 *       been closed by the server), or the deadline passed.
 *
 * Times are CLOCK_MONOTONIC nanoseconds, the clock of Node's
 * process.hrtime.bigint(), so a driver in Node can compare them with the
 * moment it got an API answer. Everything is bounded: a deadline for the
 * opening phase (-o) and one for the waiting phase (-w); without -e the tool
 * stays idle for -w seconds, or until its standard input reaches end of file
 * when -i is given, then exits.
 *
 * Build: cc -O2 -o wsload wsload.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum { ST_IDLE, ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_CLOSED, ST_FAILED };

typedef struct conn {
    int fd;
    uint8_t state;
    uint8_t got_hello;
    uint8_t got_event;
    uint8_t closed;
    uint8_t settled; /* has its hello, or failed, or was closed */
    uint16_t hlen;   /* bytes of the HTTP answer seen so far (handshake) */
    uint32_t plen;   /* bytes kept in pbuf (a partial frame) */
    uint32_t pcap;
    uint8_t *pbuf; /* only while a frame is split across reads */
    char *hbuf;    /* only during the handshake */
} conn;

static conn *conns;
static int nconns;
static char **tokens;
static int ntokens;
static struct in_addr *srcs;
static int nsrcs;
static struct sockaddr_in dst;
static const char *path = "/v1/ws";
static const char *expect_event;
static int want_close;
static int epfd;
static char first_error[200];
static int nfailed, nopen, nhello, ngot, nclosed, nsettled;

static void settle(conn *c)
{
    if (!c->settled) {
        c->settled = 1;
        nsettled++;
    }
}
static int64_t first_ns, last_ns, closed_last_ns;
static char host_hdr[64];

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void fail(conn *c, const char *why)
{
    if (!first_error[0])
        snprintf(first_error, sizeof first_error, "%s", why);
    settle(c);
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    if (c->state == ST_OPEN)
        nopen--;
    c->state = ST_FAILED;
    free(c->hbuf);
    c->hbuf = NULL;
    free(c->pbuf);
    c->pbuf = NULL;
    nfailed++;
}

static void mark_closed(conn *c)
{
    if (c->closed)
        return;
    c->closed = 1;
    settle(c);
    nclosed++;
    closed_last_ns = now_ns();
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    if (c->state == ST_OPEN)
        nopen--;
    c->state = ST_CLOSED;
    free(c->pbuf);
    c->pbuf = NULL;
}

static void b64(const uint8_t *in, size_t n, char *out)
{
    static const char tb[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i, o = 0;
    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = tb[v >> 18 & 63];
        out[o++] = tb[v >> 12 & 63];
        out[o++] = tb[v >> 6 & 63];
        out[o++] = tb[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = tb[v >> 18 & 63];
        out[o++] = tb[v >> 12 & 63];
        out[o++] = i + 1 < n ? tb[v >> 6 & 63] : '=';
        out[o++] = '=';
    }
    out[o] = 0;
}

static int start_connect(int i)
{
    conn *c = &conns[i];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        char m[100];
        snprintf(m, sizeof m, "socket: %s", strerror(errno));
        c->fd = -1;
        fail(c, m);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* Small kernel buffers: these sockets only ever carry a few short frames. */
    int sz = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    if (nsrcs > 0) {
        /* Blocks of consecutive connections share a source address. */
        int per = (nconns + nsrcs - 1) / nsrcs;
        struct sockaddr_in src = {.sin_family = AF_INET, .sin_port = 0, .sin_addr = srcs[i / per]};
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0) {
            char m[100];
            snprintf(m, sizeof m, "bind %s: %s", inet_ntoa(src.sin_addr), strerror(errno));
            close(fd);
            c->fd = -1;
            fail(c, m);
            return -1;
        }
    }
    c->fd = fd;
    c->state = ST_CONNECTING;
    if (connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0 && errno != EINPROGRESS) {
        char m[100];
        snprintf(m, sizeof m, "connect: %s", strerror(errno));
        fail(c, m);
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.u32 = (uint32_t)i};
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    return 0;
}

static void send_upgrade(int i)
{
    conn *c = &conns[i];
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) {
        char m[100];
        snprintf(m, sizeof m, "connect: %s", strerror(err));
        fail(c, m);
        return;
    }
    uint8_t key[16];
    for (int k = 0; k < 16; k++)
        key[k] = (uint8_t)rand();
    char k64[32];
    b64(key, 16, k64);
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                     "Authorization: Bearer %s\r\nUser-Agent: wsload\r\n\r\n",
                     path, host_hdr, k64, tokens[i % ntokens]);
    if (write(c->fd, req, (size_t)n) != n) {
        fail(c, "write of the upgrade request failed");
        return;
    }
    c->state = ST_HANDSHAKE;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)i};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void send_frame(conn *c, int opcode, const uint8_t *p, size_t n)
{
    /* Client frames are masked; only short control frames are sent. */
    uint8_t f[2 + 4 + 125];
    if (n > 125)
        n = 125;
    f[0] = (uint8_t)(0x80 | opcode);
    f[1] = (uint8_t)(0x80 | n);
    uint8_t m[4] = {0x12, 0x34, 0x56, 0x78};
    memcpy(f + 2, m, 4);
    for (size_t k = 0; k < n; k++)
        f[6 + k] = p[k] ^ m[k & 3];
    if (write(c->fd, f, 6 + n) < 0) {
        /* the server went away; the read side will notice */
    }
}

static void on_text(conn *c, const uint8_t *p, size_t n)
{
    /* {"event":"NAME",...}: find the event name without a JSON parser. */
    const char *s = memmem(p, n, "\"event\":\"", 9);
    if (!s)
        return;
    s += 9;
    const char *e = memchr(s, '"', n - (size_t)(s - (const char *)p));
    if (!e)
        return;
    size_t len = (size_t)(e - s);
    if (!c->got_hello && len == 5 && memcmp(s, "hello", 5) == 0) {
        c->got_hello = 1;
        nhello++;
        settle(c);
    }
    if (expect_event && !c->got_event && strlen(expect_event) == len && memcmp(s, expect_event, len) == 0) {
        c->got_event = 1;
        ngot++;
        int64_t t = now_ns();
        if (!first_ns)
            first_ns = t;
        last_ns = t;
    }
}

/* Consumes whole frames from buf; returns the bytes used. */
static size_t on_frames(conn *c, const uint8_t *buf, size_t n)
{
    size_t off = 0;
    while (n - off >= 2) {
        const uint8_t *h = buf + off;
        int opcode = h[0] & 0x0f;
        int masked = h[1] & 0x80;
        uint64_t len = h[1] & 0x7f;
        size_t hl = 2;
        if (len == 126) {
            if (n - off < 4)
                break;
            len = (uint64_t)h[2] << 8 | h[3];
            hl = 4;
        } else if (len == 127) {
            if (n - off < 10)
                break;
            len = 0;
            for (int k = 0; k < 8; k++)
                len = len << 8 | h[2 + k];
            hl = 10;
        }
        if (masked)
            hl += 4;
        if (len > (1u << 20)) {
            fail(c, "frame too large");
            return n;
        }
        if (n - off < hl + len)
            break;
        const uint8_t *p = h + hl;
        if (opcode == 1 || opcode == 0)
            on_text(c, p, (size_t)len);
        else if (opcode == 9)
            send_frame(c, 10, p, (size_t)len);
        else if (opcode == 8) {
            send_frame(c, 8, p, len >= 2 ? 2 : 0);
            mark_closed(c);
            return n;
        }
        off += hl + (size_t)len;
    }
    return off;
}

static uint8_t rbuf[65536];

static void on_readable(int i)
{
    conn *c = &conns[i];
    for (;;) {
        ssize_t r = read(c->fd, rbuf, sizeof rbuf);
        if (r == 0) {
            if (c->state == ST_HANDSHAKE)
                fail(c, "connection closed during the handshake");
            else
                mark_closed(c);
            return;
        }
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            if (c->state == ST_OPEN) {
                mark_closed(c);
                return;
            }
            char m[100];
            snprintf(m, sizeof m, "read: %s", strerror(errno));
            fail(c, m);
            return;
        }
        const uint8_t *data = rbuf;
        size_t n = (size_t)r;
        if (c->state == ST_HANDSHAKE) {
            if (!c->hbuf && !(c->hbuf = malloc(4096))) {
                fail(c, "out of memory");
                return;
            }
            size_t take = n;
            if (c->hlen + take > 4095)
                take = 4095 - c->hlen;
            memcpy(c->hbuf + c->hlen, data, take);
            c->hlen = (uint16_t)(c->hlen + take);
            c->hbuf[c->hlen] = 0;
            char *end = strstr(c->hbuf, "\r\n\r\n");
            if (!end) {
                if (c->hlen >= 4095)
                    fail(c, "handshake answer too long");
                continue;
            }
            if (strncmp(c->hbuf, "HTTP/1.1 101", 12) != 0) {
                char m[200];
                char *body = end + 4;
                char *eol = strstr(c->hbuf, "\r\n");
                *eol = 0;
                snprintf(m, sizeof m, "upgrade refused: %.60s %.100s", c->hbuf, body);
                fail(c, m);
                return;
            }
            size_t hdr = (size_t)(end + 4 - c->hbuf);
            size_t used_before = c->hlen - take; /* bytes that came in earlier reads */
            size_t rest_off = hdr - used_before; /* where the frames start in this read */
            free(c->hbuf);
            c->hbuf = NULL;
            c->state = ST_OPEN;
            nopen++;
            data += rest_off;
            n -= rest_off;
        }
        if (n == 0)
            continue;
        if (c->plen) {
            if (c->plen + n > c->pcap) {
                uint32_t cap = (uint32_t)(c->plen + n);
                uint8_t *nb = realloc(c->pbuf, cap);
                if (!nb) {
                    fail(c, "out of memory");
                    return;
                }
                c->pbuf = nb;
                c->pcap = cap;
            }
            memcpy(c->pbuf + c->plen, data, n);
            c->plen += (uint32_t)n;
            size_t used = on_frames(c, c->pbuf, c->plen);
            if (c->state != ST_OPEN)
                return;
            memmove(c->pbuf, c->pbuf + used, c->plen - used);
            c->plen -= (uint32_t)used;
            if (!c->plen) {
                free(c->pbuf);
                c->pbuf = NULL;
                c->pcap = 0;
            }
        } else {
            size_t used = on_frames(c, data, n);
            if (c->state != ST_OPEN)
                return;
            if (used < n) {
                c->pbuf = malloc(n - used);
                if (!c->pbuf) {
                    fail(c, "out of memory");
                    return;
                }
                c->pcap = (uint32_t)(n - used);
                memcpy(c->pbuf, data + used, n - used);
                c->plen = (uint32_t)(n - used);
            }
        }
    }
}

static void handle(struct epoll_event *ev)
{
    int i = (int)ev->data.u32;
    conn *c = &conns[i];
    if (c->fd < 0)
        return;
    if (c->state == ST_CONNECTING) {
        if (ev->events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            send_upgrade(i);
        return;
    }
    if (ev->events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP))
        on_readable(i);
}

static int parse_srcs(const char *spec)
{
    /* "127.0.0.2-127.0.0.9" or "127.0.0.2,127.0.0.3" */
    char buf[256];
    snprintf(buf, sizeof buf, "%s", spec);
    char *dash = strchr(buf, '-');
    if (dash) {
        *dash = 0;
        struct in_addr a, b;
        if (!inet_aton(buf, &a) || !inet_aton(dash + 1, &b))
            return -1;
        uint32_t x = ntohl(a.s_addr), y = ntohl(b.s_addr);
        if (y < x || y - x > 250)
            return -1;
        nsrcs = (int)(y - x + 1);
        srcs = calloc((size_t)nsrcs, sizeof *srcs);
        for (int k = 0; k < nsrcs; k++)
            srcs[k].s_addr = htonl(x + (uint32_t)k);
        return 0;
    }
    srcs = calloc(64, sizeof *srcs);
    for (char *t = strtok(buf, ","); t && nsrcs < 64; t = strtok(NULL, ","))
        if (!inet_aton(t, &srcs[nsrcs++]))
            return -1;
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: wsload -p PORT -n N (-T TOKEN | -t TOKENFILE) [-h 127.0.0.1] [-s SRC-RANGE (e.g. "
                    "127.0.0.2-127.0.0.250)]\n"
                    "              [-e EVENT] [-C] [-o OPEN_SECONDS] [-w WAIT_SECONDS] [-k INFLIGHT] [-i]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *token = NULL, *tokfile = NULL, *srcspec = NULL;
    int port = 0, inflight_max = 256, stdin_hold = 0;
    double open_s = 60, wait_s = 10;
    int opt;
    while ((opt = getopt(argc, argv, "h:p:n:T:t:s:e:Co:w:k:iP:")) != -1) {
        switch (opt) {
        case 'h':
            host = optarg;
            break;
        case 'p':
            port = atoi(optarg);
            break;
        case 'n':
            nconns = atoi(optarg);
            break;
        case 'T':
            token = optarg;
            break;
        case 't':
            tokfile = optarg;
            break;
        case 's':
            srcspec = optarg;
            break;
        case 'e':
            expect_event = optarg;
            break;
        case 'C':
            want_close = 1;
            break;
        case 'o':
            open_s = atof(optarg);
            break;
        case 'w':
            wait_s = atof(optarg);
            break;
        case 'k':
            inflight_max = atoi(optarg);
            break;
        case 'i':
            stdin_hold = 1;
            break;
        case 'P':
            path = optarg;
            break;
        default:
            usage();
        }
    }
    if (port <= 0 || nconns <= 0 || (!token && !tokfile))
        usage();
    if (strncmp(host, "127.", 4) != 0) {
        fprintf(stderr, "wsload: only loopback targets (127.0.0.0/8)\n");
        return 2;
    }
    if (srcspec && parse_srcs(srcspec) != 0) {
        fprintf(stderr, "wsload: bad source addresses %s\n", srcspec);
        return 2;
    }
    for (int k = 0; k < nsrcs; k++)
        if ((ntohl(srcs[k].s_addr) >> 24) != 127) {
            fprintf(stderr, "wsload: only loopback source addresses\n");
            return 2;
        }
    if (token) {
        tokens = malloc(sizeof *tokens);
        tokens[0] = strdup(token);
        ntokens = 1;
    } else {
        FILE *f = fopen(tokfile, "r");
        if (!f) {
            perror(tokfile);
            return 2;
        }
        char line[512];
        int cap = 0;
        while (fgets(line, sizeof line, f)) {
            line[strcspn(line, "\r\n")] = 0;
            if (!line[0])
                continue;
            if (ntokens == cap) {
                cap = cap ? cap * 2 : 64;
                tokens = realloc(tokens, (size_t)cap * sizeof *tokens);
            }
            tokens[ntokens++] = strdup(line);
        }
        fclose(f);
        if (!ntokens) {
            fprintf(stderr, "wsload: no token in %s\n", tokfile);
            return 2;
        }
    }

    /* As many descriptors as the hard limit allows. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)nconns + 16 > rl.rlim_cur)
        fprintf(stderr, "wsload: warning: %d connections but only %ld descriptors allowed\n", nconns,
                (long)rl.rlim_cur);

    dst.sin_family = AF_INET;
    dst.sin_port = htons((uint16_t)port);
    inet_aton(host, &dst.sin_addr);
    snprintf(host_hdr, sizeof host_hdr, "%s:%d", host, port);
    srand((unsigned)now_ns());

    conns = calloc((size_t)nconns, sizeof *conns);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!conns || epfd < 0) {
        perror("wsload");
        return 1;
    }
    for (int i = 0; i < nconns; i++)
        conns[i].fd = -1;

    /* Phase 1: open, at most inflight_max handshakes at a time. */
    struct epoll_event evs[1024];
    int64_t t0 = now_ns(), open_deadline = t0 + (int64_t)(open_s * 1e9);
    int next = 0;
    for (;;) {
        while (next < nconns && next - nsettled < inflight_max)
            start_connect(next++);
        if (next >= nconns && nsettled >= nconns)
            break;
        if (now_ns() > open_deadline)
            break;
        int n = epoll_wait(epfd, evs, 1024, 100);
        for (int k = 0; k < n; k++)
            handle(&evs[k]);
    }
    /* Those still opening at the deadline count as failures. */
    for (int i = 0; i < nconns; i++) {
        conn *c = &conns[i];
        if (c->state == ST_IDLE || c->state == ST_CONNECTING || c->state == ST_HANDSHAKE ||
            (c->state == ST_OPEN && !c->got_hello)) {
            fail(c, "not open before the deadline");
        }
    }
    printf("ready opened=%d failed=%d ms=%.0f", nopen, nfailed + nclosed, (now_ns() - t0) / 1e6);
    if (first_error[0])
        printf(" error=\"%s\"", first_error);
    printf("\n");
    fflush(stdout);

    /* Phase 2: idle; wait for the expected event (and the close) on every open socket. */
    int target = nopen;
    int64_t deadline = now_ns() + (int64_t)(wait_s * 1e9);
    int timed_out = 0;
    if (stdin_hold) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
        epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &ev);
    }
    int stdin_eof = 0;
    for (;;) {
        if (expect_event && ngot >= target && (!want_close || nclosed >= target))
            break;
        if (stdin_eof)
            break;
        int64_t left = deadline - now_ns();
        if (left <= 0) {
            timed_out = expect_event != NULL;
            break;
        }
        int n = epoll_wait(epfd, evs, 1024, (int)(left / 1000000 + 1));
        for (int k = 0; k < n; k++) {
            if (evs[k].data.u32 == UINT32_MAX) {
                char b[256];
                if (read(0, b, sizeof b) <= 0)
                    stdin_eof = 1;
                continue;
            }
            handle(&evs[k]);
        }
    }
    if (expect_event)
        printf("expect event=%s got=%d of=%d first_ns=%lld last_ns=%lld closed=%d closed_last_ns=%lld "
               "timed_out=%d\n",
               expect_event, ngot, target, (long long)first_ns, (long long)last_ns, nclosed,
               (long long)closed_last_ns, timed_out);
    else
        printf("idle still_open=%d closed=%d\n", nopen, nclosed);
    fflush(stdout);
    for (int i = 0; i < nconns; i++)
        if (conns[i].fd >= 0)
            close(conns[i].fd);
    return 0;
}
