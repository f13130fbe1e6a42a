/*
 * linkload — a small link-flow load tool for the Linkward benchmarks.
 *
 * Registers A primaries (POST /v1/accounts), then runs W concurrent workers,
 * each on its own keep-alive HTTP/1.1 connection, each looping the whole link
 * flow of docs/api.md without a PIN:
 *
 *   POST /v1/link-requests               (a fresh companion key)
 *   POST /v1/link-requests/scan          (the primary, with the QR payload)
 *   POST /v1/link-requests/ID/approve    (the primary's account signature)
 *   POST /v1/link-requests/ID/complete   (the companion signs the nonce)
 *
 * until -n links were started or -d seconds passed. Link number i goes to
 * account i % A, so the accounts grow evenly. The companion keys and the account signatures over them are
 * made before the timed phase (they depend on nothing the server says), so the only Ed25519 work left per
 * link in the loop is the signature of the nonce: the tool costs far less CPU than the server it measures. A
 * risk verdict that needs confirmation (409 risk_not_accepted) is confirmed with accept_risk and counted.
 *
 * With -x IP (companions) and -X IP (primaries) every request says
 * "X-Forwarded-For: IP": against a server started with --trusted-proxies
 * 127.0.0.1 and GeoIP data, the risk assessment of each link sees places,
 * as it does in production (without, it has nothing to compare).
 *
 * With -S it prints "ready" on stderr once the primaries and keys are made
 * and waits for a line on standard input before it starts (a profiler
 * switches its counting on in between).
 *
 * With -P PID it reads that process's CPU time (utime + stime from
 * /proc/PID/stat), and its event loop thread's (the thread whose id is the
 * process id) apart from its other threads' (/proc/PID/task), around the
 * timed phase, and its own (getrusage), and prints
 * on stdout one line:
 *
 *   linkload links=N seconds=S links_per_s=R p50_ms=… p99_ms=… errors=E
 *            server_cpu_ms_per_link=… server_cpu_share=… loop_cpu_ms_per_link=…
 *            loop_cpu_share=… other_threads_cpu_ms_per_link=… client_cpu_share=…
 *            risk_accepted=K [error="first failure"]
 *
 * Everything is bounded: -n links at most, -d seconds for starting links, a
 * request timeout (-t, 10 s), and a hard deadline of -d + 30 s after which
 * whatever is in flight is dropped.
 * Only loopback addresses are accepted (-h 127.x.x.x).
 *
 * Build (bench/lib.sh build_linkload does it): from the repository,
 *   cc -O2 -Isrc/common -o linkload bench/linkload.c src/common/proof.c src/common/crypto.c \
 *      src/common/lw.c -lsodium
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "proof.h" /* the signed messages, as the server builds them */

#define MAX_WORKERS 1024
#define MAX_ACCOUNTS 256
#define MAX_LINKS 1000000
#define RESP_MAX (1024 * 1024) /* largest answer we accept (a create answer is ~10 KB) */
#define REQ_MAX 4096
#define VAL_MAX 512
#define HARD_EXTRA_S 30

/* A desktop browser opening a link request, as the web client would. */
static const char *companion_ua =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
    "Safari/537.36";
static const char *primary_ua = "linkward/1.0.0 (linkload)";
/* "X-Forwarded-For: …\r\n" of each side (-x, -X), or "": with a server that
 * trusts loopback as a proxy and has GeoIP data, the risk assessment sees
 * real places. */
static char companion_xff[80], primary_xff[80];

typedef struct account {
    uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    char token[VAL_MAX], id[VAL_MAX];
    /* Pre-made companion keys and the account's signatures over them. */
    uint8_t (*cpk)[crypto_sign_PUBLICKEYBYTES];
    uint8_t (*csk)[crypto_sign_SECRETKEYBYTES];
    char (*asig)[100];
    int nkeys, next_key;
} account;

enum { S_CREATE, S_SCAN, S_APPROVE, S_COMPLETE };

typedef struct worker {
    int fd;
    int acct;
    int step;
    int key;         /* index into the account's key pool */
    int accept_risk; /* approve again with accept_risk */
    int busy;        /* a request is in flight */
    int64_t link_t0; /* ns */
    int64_t req_t0;
    char id[VAL_MAX], token[VAL_MAX], nonce[VAL_MAX], payload[VAL_MAX];
    char out[REQ_MAX];
    size_t out_len, out_off;
    char *in;
    size_t in_len, in_cap;
} worker;

static struct sockaddr_in dst;
static char host_hdr[64];
static int epfd;
static account accounts[MAX_ACCOUNTS];
static worker workers[MAX_WORKERS];
static int nacc = 8, nwork = 16, max_links = 10000;
static double seconds = 20;
static int server_pid, wait_go;
static int req_timeout_s = 10;
static long started, done, errors, risk_accepted;
static double *lat_ms;
static char first_error[300];
static int64_t t_end_start, t_hard;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void b64url(char *out, const uint8_t *in, size_t n)
{
    sodium_bin2base64(out, sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING), in, n,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static int unb64url(uint8_t *out, size_t cap, const char *in, size_t *n)
{
    return sodium_base642bin(out, cap, in, strlen(in), NULL, n, NULL,
                             sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static void note_error(const char *fmt, const char *a, const char *b)
{
    errors++;
    if (!first_error[0]) {
        snprintf(first_error, sizeof first_error, fmt, a, b);
        for (char *p = first_error; *p; p++)
            if (*p == '"' || *p == '\n' || *p == '\r')
                *p = '\'';
    }
}

/* The string value of "key" in a compact JSON object: base64url, ids and
 * payloads only (no escapes), so a backslash means "not ours". */
static int json_str(const char *body, const char *key, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(body, pat);
    if (!p)
        return -1;
    p += strlen(pat);
    const char *e = strchr(p, '"');
    if (!e || (size_t)(e - p) >= cap || memchr(p, '\\', (size_t)(e - p)))
        return -1;
    memcpy(out, p, (size_t)(e - p));
    out[e - p] = 0;
    return 0;
}

/* Formats a POST into w->out. */
static void build(worker *w, const char *path, const char *token, const char *ua, const char *xff,
                  const char *body)
{
    int n = snprintf(w->out, sizeof w->out,
                     "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n%s%s%s%s\r\n%s",
                     path, host_hdr, ua, strlen(body), xff, token ? "Authorization: Bearer " : "",
                     token ? token : "", token ? "\r\n" : "", body);
    w->out_len = n > 0 && (size_t)n < sizeof w->out ? (size_t)n : 0;
    w->out_off = 0;
}

static int connect_fd(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* One parsed answer: status and body (NUL-terminated inside w->in). */
typedef struct resp {
    int status;
    const char *body;
} resp;

/* Whether w->in holds a whole answer; fills r and the bytes it took. */
static int parse_resp(worker *w, resp *r, size_t *used)
{
    if (w->in_len == 0)
        return 0;
    w->in[w->in_len] = 0;
    char *hend = strstr(w->in, "\r\n\r\n");
    if (!hend)
        return 0;
    if (sscanf(w->in, "HTTP/1.%*d %d", &r->status) != 1)
        return -1;
    long clen = -1;
    for (char *p = strstr(w->in, "\r\n"); p && p < hend; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, "content-length:", 15) == 0)
            clen = strtol(p + 17, NULL, 10);
    }
    if (clen < 0 || clen > RESP_MAX)
        return -1;
    size_t total = (size_t)(hend + 4 - w->in) + (size_t)clen;
    if (w->in_len < total)
        return 0;
    /* The body as a C string: the byte after it is saved by the caller's copy. */
    r->body = hend + 4;
    *used = total;
    return 1;
}

static void next_request(worker *w);

static void drop_conn(worker *w)
{
    if (w->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, w->fd, NULL);
        close(w->fd);
        w->fd = -1;
    }
    w->in_len = 0;
}

static void link_failed(worker *w, const char *what, const resp *r)
{
    char st[200];
    snprintf(st, sizeof st, "%d %.180s", r ? r->status : 0, r && r->body ? r->body : "");
    note_error("%s: %s", what, st);
    w->busy = 0;
    w->step = S_CREATE;
    drop_conn(w); /* a fresh connection: the old one may be mid-answer */
}

static void on_answer(worker *w, resp *r)
{
    account *a = &accounts[w->acct];
    switch (w->step) {
    case S_CREATE:
        if (r->status != 201 || json_str(r->body, "id", w->id, sizeof w->id) ||
            json_str(r->body, "token", w->token, sizeof w->token) ||
            json_str(r->body, "nonce", w->nonce, sizeof w->nonce) ||
            json_str(r->body, "payload", w->payload, sizeof w->payload) ||
            !strstr(r->body, "\"qr_svg\":\"<svg")) {
            link_failed(w, "create", r);
            return;
        }
        w->step = S_SCAN;
        break;
    case S_SCAN:
        if (r->status != 200) {
            link_failed(w, "scan", r);
            return;
        }
        w->step = S_APPROVE;
        w->accept_risk = 0;
        break;
    case S_APPROVE:
        if (r->status == 409 && strstr(r->body, "risk_not_accepted") && !w->accept_risk) {
            risk_accepted++;
            w->accept_risk = 1;
            break;
        }
        if (r->status != 200) {
            link_failed(w, "approve", r);
            return;
        }
        w->step = S_COMPLETE;
        break;
    case S_COMPLETE:
        if (r->status != 201 || !strstr(r->body, "\"device_id\":\"")) {
            link_failed(w, "complete", r);
            return;
        }
        if (done < max_links)
            lat_ms[done] = (double)(now_ns() - w->link_t0) / 1e6;
        done++;
        w->step = S_CREATE;
        break;
    }
    (void)a;
    w->busy = 0;
}

/* Writes what is left of w->out; EPOLLOUT only while it does not fit. */
static int flush_out(worker *w)
{
    while (w->out_off < w->out_len) {
        ssize_t k = send(w->fd, w->out + w->out_off, w->out_len - w->out_off, MSG_NOSIGNAL);
        if (k > 0) {
            w->out_off += (size_t)k;
            continue;
        }
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = w};
            epoll_ctl(epfd, EPOLL_CTL_MOD, w->fd, &ev);
            return 0;
        }
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};
    epoll_ctl(epfd, EPOLL_CTL_MOD, w->fd, &ev);
    return 0;
}

static int ensure_conn(worker *w)
{
    if (w->fd >= 0)
        return 0;
    w->fd = connect_fd(); /* loopback: a blocking connect is immediate */
    if (w->fd < 0 || set_nonblock(w->fd) != 0)
        return -1;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, w->fd, &ev) != 0)
        return -1;
    return 0;
}

/* Starts the worker's next request, or leaves it idle when the run is over. */
static void next_request(worker *w)
{
    account *a = &accounts[w->acct];
    char body[1024], path[VAL_MAX + 64];
    int64_t t = now_ns();
    if (w->step == S_CREATE) {
        if (started >= max_links || t >= t_end_start)
            return;
        w->acct = (int)(started % nacc);
        a = &accounts[w->acct];
        if (a->next_key >= a->nkeys)
            return;
        w->key = a->next_key++;
        started++;
        w->link_t0 = t;
        char pk[64];
        b64url(pk, a->cpk[w->key], crypto_sign_PUBLICKEYBYTES);
        snprintf(body, sizeof body, "{\"public_key\":\"%s\"}", pk);
        build(w, "/v1/link-requests", NULL, companion_ua, companion_xff, body);
    } else if (w->step == S_SCAN) {
        snprintf(body, sizeof body, "{\"payload\":\"%s\"}", w->payload);
        build(w, "/v1/link-requests/scan", a->token, primary_ua, primary_xff, body);
    } else if (w->step == S_APPROVE) {
        snprintf(body, sizeof body, "{\"account_signature\":\"%s\"%s}", a->asig[w->key],
                 w->accept_risk ? ",\"accept_risk\":true" : "");
        snprintf(path, sizeof path, "/v1/link-requests/%s/approve", w->id);
        build(w, path, a->token, primary_ua, primary_xff, body);
    } else {
        uint8_t nonce[32], sig[crypto_sign_BYTES];
        size_t nn = 0;
        if (unb64url(nonce, sizeof nonce, w->nonce, &nn) != 0 || nn != 32 ||
            lw_proof_sign(sig, LW_PROOF_LINK, w->id, nonce, sizeof nonce, a->csk[w->key]) != 0) {
            resp r = {0, "bad nonce or id"};
            link_failed(w, "complete", &r);
            return;
        }
        char s64[100];
        b64url(s64, sig, sizeof sig);
        snprintf(body, sizeof body, "{\"signature\":\"%s\"}", s64);
        snprintf(path, sizeof path, "/v1/link-requests/%s/complete", w->id);
        build(w, path, w->token, companion_ua, companion_xff, body);
    }
    if (w->out_len == 0 || ensure_conn(w) != 0) {
        resp r = {0, "cannot connect or build"};
        link_failed(w, "request", &r);
        return;
    }
    w->busy = 1;
    w->req_t0 = t;
    if (flush_out(w) != 0) {
        resp r = {0, "write failed"};
        link_failed(w, "request", &r);
    }
}

static void on_readable(worker *w)
{
    for (;;) {
        if (w->in_cap - w->in_len < 65536 + 1) {
            size_t cap = w->in_cap ? w->in_cap * 2 : 131072;
            if (cap > RESP_MAX + 65536 * 2) {
                link_failed(w, "read", &(resp){0, "answer too large"});
                return;
            }
            char *p = realloc(w->in, cap);
            if (!p) {
                link_failed(w, "read", &(resp){0, "out of memory"});
                return;
            }
            w->in = p;
            w->in_cap = cap;
        }
        ssize_t k = recv(w->fd, w->in + w->in_len, w->in_cap - w->in_len - 1, 0);
        if (k > 0) {
            w->in_len += (size_t)k;
            continue;
        }
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        link_failed(w, "read", &(resp){0, k == 0 ? "connection closed by the server" : strerror(errno)});
        return;
    }
    resp r;
    size_t used;
    int got = parse_resp(w, &r, &used);
    if (got < 0) {
        link_failed(w, "read", &(resp){0, "unparsable answer"});
        return;
    }
    if (got == 0)
        return;
    /* The body is a C string up to `used` (answers come one at a time). */
    char saved = w->in[used];
    w->in[used] = 0;
    on_answer(w, &r);
    if (w->fd >= 0) {
        w->in[used] = saved;
        memmove(w->in, w->in + used, w->in_len - used);
        w->in_len -= used;
    }
}

/* A blocking request outside the loop (registration). */
static int simple_post(const char *path, const char *body, char *ans, size_t cap, int *status)
{
    int fd = connect_fd();
    if (fd < 0)
        return -1;
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n%sConnection: close\r\n\r\n%s",
                     path, host_hdr, primary_ua, strlen(body), primary_xff, body);
    if (n <= 0 || (size_t)n >= sizeof req || send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        close(fd);
        return -1;
    }
    size_t len = 0;
    ssize_t k;
    while (len + 1 < cap && (k = recv(fd, ans + len, cap - 1 - len, 0)) > 0)
        len += (size_t)k;
    ans[len] = 0;
    close(fd);
    if (sscanf(ans, "HTTP/1.%*d %d", status) != 1)
        return -1;
    char *b = strstr(ans, "\r\n\r\n");
    if (!b)
        return -1;
    memmove(ans, b + 4, strlen(b + 4) + 1);
    return 0;
}

static double proc_cpu_s(int pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long ut = 0, st = 0;
    /* After ")": state(3) … utime is field 14, stime 15. */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* CPU seconds of the server's event loop thread (the one whose id is the
 * process id) and of all its other threads. */
static void proc_threads_cpu_s(int pid, double *loop, double *others)
{
    *loop = *others = 0;
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", pid);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int tid = atoi(e->d_name);
        if (tid <= 0)
            continue;
        char path[96], buf[2048];
        snprintf(path, sizeof path, "/proc/%d/task/%d/stat", pid, tid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        char *p = strrchr(buf, ')');
        unsigned long ut = 0, st = 0;
        if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
            continue;
        double s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
        if (tid == pid)
            *loop += s;
        else
            *others += s;
    }
    closedir(d);
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, long n, double p)
{
    if (n <= 0)
        return 0;
    long i = (long)(p / 100.0 * (double)n + 0.999999) - 1;
    if (i < 0)
        i = 0;
    if (i >= n)
        i = n - 1;
    return v[i];
}

static void usage(void)
{
    fprintf(stderr,
            "usage: linkload -p PORT [-h 127.0.0.1] [-a ACCOUNTS] [-w WORKERS] [-n LINKS] [-d SECONDS]\n"
            "                [-P SERVER_PID] [-H HANDLE_PREFIX] [-S] [-x COMPANION_IP] [-X PRIMARY_IP]\n"
            "                [-t REQUEST_TIMEOUT_S]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *prefix = "linkload";
    int port = 0, opt;
    while ((opt = getopt(argc, argv, "h:p:a:w:n:d:P:H:Sx:X:t:")) != -1) {
        switch (opt) {
        case 'h':
            host = optarg;
            break;
        case 'p':
            port = atoi(optarg);
            break;
        case 'a':
            nacc = atoi(optarg);
            break;
        case 'w':
            nwork = atoi(optarg);
            break;
        case 'n':
            max_links = atoi(optarg);
            break;
        case 'd':
            seconds = atof(optarg);
            break;
        case 'P':
            server_pid = atoi(optarg);
            break;
        case 'H':
            prefix = optarg;
            break;
        case 'S':
            wait_go = 1;
            break;
        case 't':
            req_timeout_s = atoi(optarg);
            break;
        case 'x':
            snprintf(companion_xff, sizeof companion_xff, "X-Forwarded-For: %.40s\r\n", optarg);
            break;
        case 'X':
            snprintf(primary_xff, sizeof primary_xff, "X-Forwarded-For: %.40s\r\n", optarg);
            break;
        default:
            usage();
        }
    }
    if (port <= 0 || port > 65535 || nacc < 1 || nacc > MAX_ACCOUNTS || nwork < 1 || nwork > MAX_WORKERS ||
        max_links < 1 || max_links > MAX_LINKS || req_timeout_s < 1 || req_timeout_s > 600 || seconds <= 0 ||
        seconds > 3600 || strlen(prefix) > 16)
        usage();
    memset(&dst, 0, sizeof dst);
    dst.sin_family = AF_INET;
    dst.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &dst.sin_addr) != 1 || (ntohl(dst.sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "linkload: only loopback (127.x.x.x) targets\n");
        return 2;
    }
    snprintf(host_hdr, sizeof host_hdr, "%s:%d", host, port);
    if (sodium_init() < 0)
        return 1;

    /* Primaries. */
    static char ans[65536];
    uint32_t tag = randombytes_uniform(1000000000);
    for (int i = 0; i < nacc; i++) {
        account *a = &accounts[i];
        crypto_sign_keypair(a->pk, a->sk);
        char pk[64], body[256];
        b64url(pk, a->pk, sizeof a->pk);
        snprintf(body, sizeof body, "{\"handle\":\"%s%u_%d\",\"public_key\":\"%s\"}", prefix, tag, i, pk);
        int status = 0;
        if (simple_post("/v1/accounts", body, ans, sizeof ans, &status) != 0 || status != 201 ||
            json_str(ans, "token", a->token, sizeof a->token) ||
            json_str(ans, "account_id", a->id, sizeof a->id)) {
            fprintf(stderr, "linkload: registering a primary failed: %d %.300s\n", status, ans);
            return 1;
        }
    }
    /* Companion keys and account signatures, made before the clock starts. */
    int per = (max_links + nacc - 1) / nacc;
    for (int i = 0; i < nacc; i++) {
        account *a = &accounts[i];
        a->cpk = malloc((size_t)per * sizeof *a->cpk);
        a->csk = malloc((size_t)per * sizeof *a->csk);
        a->asig = malloc((size_t)per * sizeof *a->asig);
        if (!a->cpk || !a->csk || !a->asig)
            return 1;
        uint8_t sig[crypto_sign_BYTES];
        for (int k = 0; k < per; k++) {
            crypto_sign_keypair(a->cpk[k], a->csk[k]);
            if (lw_proof_sign(sig, LW_PROOF_ACCOUNT, a->id, a->cpk[k], 32, a->sk) != 0)
                return 1;
            b64url(a->asig[k], sig, sizeof sig);
        }
        a->nkeys = per;
    }
    lat_ms = calloc((size_t)max_links, sizeof *lat_ms);
    if (!lat_ms)
        return 1;

    epfd = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < nwork; i++)
        workers[i].fd = -1;
    if (wait_go) {
        /* For a profiler to start counting now: "ready" out, one line in. */
        fprintf(stderr, "ready\n");
        char line[16];
        if (!fgets(line, sizeof line, stdin))
            return 1;
    }
    double srv0 = server_pid ? proc_cpu_s(server_pid) : 0, own0 = self_cpu_s(), loop0 = 0, oth0 = 0;
    if (server_pid)
        proc_threads_cpu_s(server_pid, &loop0, &oth0);
    int64_t t0 = now_ns();
    t_end_start = t0 + (int64_t)(seconds * 1e9);
    t_hard = t_end_start + (int64_t)HARD_EXTRA_S * 1000000000LL;
    for (int i = 0; i < nwork; i++)
        next_request(&workers[i]);
    struct epoll_event evs[MAX_WORKERS];
    for (;;) {
        int busy = 0;
        int64_t t = now_ns();
        for (int i = 0; i < nwork; i++) {
            worker *w = &workers[i];
            if (!w->busy && !(w->step == S_CREATE && (started >= max_links || t >= t_end_start)))
                next_request(w);
            if (w->busy && t - w->req_t0 > (int64_t)req_timeout_s * 1000000000LL)
                link_failed(w, "request", &(resp){0, "timed out"});
            busy += w->busy;
        }
        if (!busy || t >= t_hard || errors > 100)
            break;
        int n = epoll_wait(epfd, evs, MAX_WORKERS, 100);
        for (int i = 0; i < n; i++) {
            worker *w = evs[i].data.ptr;
            if (w->fd < 0)
                continue;
            if (evs[i].events & EPOLLOUT && flush_out(w) != 0) {
                link_failed(w, "write", &(resp){0, strerror(errno)});
                continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                on_readable(w);
            if (!w->busy)
                next_request(w);
        }
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    double srv = server_pid ? proc_cpu_s(server_pid) - srv0 : -1, own = self_cpu_s() - own0, loop1 = 0,
           oth1 = 0;
    if (server_pid)
        proc_threads_cpu_s(server_pid, &loop1, &oth1);
    long nl = done < max_links ? done : max_links;
    qsort(lat_ms, (size_t)nl, sizeof *lat_ms, cmp_d);
    printf("linkload links=%ld seconds=%.2f links_per_s=%.0f p50_ms=%.3f p99_ms=%.3f errors=%ld", done, secs,
           (double)done / secs, pct(lat_ms, nl, 50), pct(lat_ms, nl, 99), errors);
    if (server_pid)
        printf(
            " server_cpu_ms_per_link=%.3f server_cpu_share=%.2f loop_cpu_ms_per_link=%.3f loop_cpu_share=%.2f"
            " other_threads_cpu_ms_per_link=%.3f",
            done ? srv * 1000 / (double)done : 0, srv / secs,
            done ? (loop1 - loop0) * 1000 / (double)done : 0, (loop1 - loop0) / secs,
            done ? (oth1 - oth0) * 1000 / (double)done : 0);
    printf(" client_cpu_ms_per_link=%.3f client_cpu_share=%.2f workers=%d accounts=%d risk_accepted=%ld",
           done ? own * 1000 / (double)done : 0, own / secs, nwork, nacc, risk_accepted);
    if (first_error[0])
        printf(" error=\"%s\"", first_error);
    printf("\n");
    for (int i = 0; i < nwork; i++)
        drop_conn(&workers[i]);
    return errors == 0 && done > 0 ? 0 : 1;
}
