/*
 * cli_common.c — options, exit codes and printing shared by the sub-commands.
 *
 * Everything printed for people passes through a sanitiser: device names,
 * places and even QR payload origins come from whoever is asking to link,
 * and an escape sequence in a name must not be able to repaint the prompt
 * that asks the account holder to approve.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "crypto.h"
#include "lw.h"

const char *cli_str(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

/* ---- options ---- */

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        msg[0] = '\0';
    cli_msg("linkward: %s\nRun 'linkward %s --help' for usage.\n", msg, cmd);
    return CLI_USAGE;
}

int cli_opt_value(int argc, char **argv, int *i, const char *name, const char **val)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        *val = a + n + 1;
        (*i)++;
        return 1;
    }
    if (a[n] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        cli_msg("linkward: option %s needs a value\n", name);
        return -1;
    }
    *val = argv[*i + 1];
    *i += 2;
    return 1;
}

int cli_take_global(cli_opts *o, int argc, char **argv, int *i)
{
    const char *v = NULL;
    int r;
    if (strcmp(argv[*i], "--json") == 0) {
        o->json = true;
        (*i)++;
        return 1;
    }
    if ((r = cli_opt_value(argc, argv, i, "--server", &v)) != 0) {
        if (r > 0)
            o->server = v;
        return r;
    }
    if ((r = cli_opt_value(argc, argv, i, "--state", &v)) != 0) {
        if (r > 0)
            o->state = v;
        return r;
    }
    if ((r = cli_opt_value(argc, argv, i, "--cacert", &v)) != 0) {
        if (r > 0)
            o->cacert = v; /* applied (and kept in the state) by cli_open_device */
        return r;
    }
    if ((r = cli_opt_value(argc, argv, i, "--header", &v)) != 0) {
        if (r < 0)
            return r;
        if (o->nheaders >= LWC_HEADERS_MAX) {
            cli_msg("linkward: at most %d --header options\n", LWC_HEADERS_MAX);
            return -1;
        }
        o->headers[o->nheaders++] = v;
        return 1;
    }
    return 0;
}

/* A 128-bit id in base64url: 22 characters, none of them '=' or '.'. No
 * option name has this shape. */
static bool looks_like_id(const char *a)
{
    size_t n = strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
    return n == 22 && a[n] == '\0';
}

int cli_parse_args(cli_opts *o, const char *group, void (*usage)(FILE *), const char *cmd, int argc,
                   char **argv, cli_opt_fn opt, void *ctx, const char **pos, int max_pos, int *npos)
{
    *npos = 0;
    bool options = true;
    for (int i = 1; i < argc;) {
        const char *a = argv[i];
        /* Ids are base64url and may begin with '-': after "--", or when an
         * argument has the shape of an id, it is an argument, not an option. */
        if (!options || looks_like_id(a)) {
            if (*npos >= max_pos)
                return cli_usage_error(group, "%s: unexpected argument '%s'", cmd, a);
            pos[(*npos)++] = a;
            i++;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            options = false;
            i++;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(CLI_OK);
        }
        int r = cli_take_global(o, argc, argv, &i);
        if (r < 0)
            return CLI_USAGE;
        if (r > 0)
            continue;
        if (opt != NULL && (r = opt(ctx, argc, argv, &i)) != 0) {
            if (r < 0)
                return CLI_USAGE;
            continue;
        }
        if (a[0] == '-' && a[1] != '\0')
            return cli_usage_error(group, "%s: unknown option %s", cmd, a);
        if (*npos >= max_pos)
            return cli_usage_error(group, "%s: unexpected argument '%s'", cmd, a);
        pos[(*npos)++] = a;
        i++;
    }
    return CLI_OK;
}

/* The default state file: $XDG_CONFIG_HOME/linkward/NAME, else
 * ~/.config/linkward/NAME (XDG says to ignore a relative XDG_CONFIG_HOME). */
static int default_state_path(const char *name, char *dst, size_t cap)
{
    const char *xdg = getenv("XDG_CONFIG_HOME");
    const char *home = getenv("HOME");
    int n;
    if (xdg != NULL && xdg[0] == '/')
        n = snprintf(dst, cap, "%s/linkward/%s", xdg, name);
    else if (home != NULL && home[0] == '/')
        n = snprintf(dst, cap, "%s/.config/linkward/%s", home, name);
    else
        return LW_ENOTFOUND;
    return n < 0 || (size_t)n >= cap ? LW_ETOOBIG : LW_OK;
}

/* The CA file to trust: --cacert (or LINKWARD_CA_FILE) when given, kept in
 * the state as an absolute path (saved with it, so the commands after
 * register or the first link need not repeat it); else the one the state
 * kept. The client library reads LINKWARD_CA_FILE for every connection. */
static int use_ca_file(const cli_opts *o, lwc_device *d)
{
    const char *given = o->cacert;
    const char *env = getenv("LINKWARD_CA_FILE");
    if (given == NULL && env != NULL && env[0] != '\0')
        given = env;
    if (given == NULL) {
        const char *kept = lwc_device_get(d, LWC_CA_FILE);
        if (kept != NULL && setenv("LINKWARD_CA_FILE", kept, 1) != 0)
            return CLI_IO;
        return CLI_OK;
    }
    char abs[PATH_MAX];
    if (given[0] == '\0' || realpath(given, abs) == NULL) {
        cli_msg("linkward: --cacert %s: %s\n", given, given[0] ? strerror(errno) : "needs a file name");
        return CLI_USAGE;
    }
    if (setenv("LINKWARD_CA_FILE", abs, 1) != 0 || lwc_device_set_ca_file(d, abs) != LW_OK)
        return CLI_IO;
    return CLI_OK;
}

int cli_state_path(const cli_opts *o, const char *default_name, char *dst, size_t cap)
{
    if (o->state == NULL) {
        if (default_state_path(default_name, dst, cap) != LW_OK) {
            cli_msg("linkward: cannot find a home folder for the state file; give --state FILE\n");
            return CLI_USAGE;
        }
        return CLI_OK;
    }
    if (o->state[0] == '\0') {
        cli_msg("linkward: --state needs a file name\n");
        return CLI_USAGE;
    }
    if (lw_strlcpy(dst, o->state, cap) != LW_OK) {
        cli_msg("linkward: --state: the file name is too long\n");
        return CLI_USAGE;
    }
    return CLI_OK;
}

int cli_open_device(const cli_opts *o, const char *default_name, lwc_device **out)
{
    char state[PATH_MAX];
    *out = NULL;
    int prc = cli_state_path(o, default_name, state, sizeof(state));
    if (prc != CLI_OK)
        return prc;
    lwc_device *d = NULL;
    int rc = lwc_device_open(state, o->server, &d);
    if (rc != LW_OK) {
        char text[1024];
        if (d != NULL)
            cli_error_text(lwc_device_error(d), text, sizeof(text));
        else
            (void)lw_strlcpy(text, lw_strerror(rc), sizeof(text));
        cli_msg("linkward: %s\n", text);
        lwc_device_free(d);
        return rc == LW_ENOMEM ? CLI_IO : CLI_USAGE;
    }
    if (lwc_device_warning(d) != NULL)
        cli_msg("linkward: warning: %s\n", lwc_device_warning(d));
    if ((rc = use_ca_file(o, d)) != CLI_OK) {
        lwc_device_free(d);
        return rc;
    }
    lwc_client *c = lwc_device_client(d);
    for (size_t i = 0; c != NULL && i < o->nheaders; i++) {
        if (lwc_client_add_header(c, o->headers[i]) != LW_OK) {
            lwc_device_free(d);
            cli_msg("linkward: invalid --header '%s': expected 'Name: value' on one line\n", o->headers[i]);
            return CLI_USAGE;
        }
    }
    *out = d;
    return CLI_OK;
}

int cli_exit_for(int rc)
{
    if (rc == LW_OK)
        return CLI_OK;
    if (rc == LW_EIO || rc == LW_ENOMEM)
        return CLI_IO;
    return CLI_REFUSED;
}

static void append_duration(char *dst, size_t cap, long secs)
{
    size_t len = strlen(dst);
    int n;
    if (secs < 120)
        n = snprintf(dst + len, cap - len, " Try again in %ld s.", secs);
    else if (secs < 7200)
        n = snprintf(dst + len, cap - len, " Try again in %ld min.", (secs + 59) / 60);
    else
        n = snprintf(dst + len, cap - len, " Try again in %ld h.", (secs + 3599) / 3600);
    if (n < 0 || (size_t)n >= cap - len)
        dst[len] = '\0';
}

void cli_error_text(const lwc_error *e, char *dst, size_t cap)
{
    const char *msg = e->message[0] ? e->message : e->code[0] ? e->code : "failed";
    if (lw_strlcpy(dst, msg, cap) != LW_OK) {
        (void)lw_strlcpy(dst, "failed", cap);
        return;
    }
    size_t len = strlen(dst);
    if (strcmp(e->code, "wrong_pin") == 0 && e->attempts_left >= 0 && strstr(msg, "attempt") == NULL) {
        int n = snprintf(dst + len, cap - len, " (%ld attempt%s left)", e->attempts_left,
                         e->attempts_left == 1 ? "" : "s");
        if (n < 0 || (size_t)n >= cap - len)
            dst[len] = '\0';
    }
    if (e->retry_after >= 0 && strstr(msg, "again") == NULL &&
        (strcmp(e->code, "pin_locked") == 0 || strcmp(e->code, "rate_limited") == 0))
        append_duration(dst, cap, e->retry_after);
}

int cli_fail(const lwc_device *d, int rc)
{
    const lwc_error *e = lwc_device_error(d);
    char text[1024];
    cli_error_text(e, text, sizeof(text));
    cli_msg("linkward: %s\n", text);
    if (strcmp(e->code, "no_server") == 0 || strcmp(e->code, "state") == 0 ||
        strcmp(e->code, "invalid_url") == 0)
        return CLI_USAGE;
    return cli_exit_for(rc);
}

bool cli_check_pin(const char *option, const char *pin)
{
    size_t n = 0;
    for (; pin[n] != '\0'; n++) {
        if (pin[n] < '0' || pin[n] > '9' || n >= 6)
            break;
    }
    if (n == 6 && pin[n] == '\0')
        return true;
    cli_msg("linkward: %s: a PIN is exactly 6 digits\n", option);
    return false;
}

bool cli_check_id(const char *what, const char *id)
{
    size_t n = 0;
    for (; id[n] != '\0' && n <= 128; n++) {
        char ch = id[n];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
              ch == '_'))
            break;
    }
    if (n > 0 && n <= 128 && id[n] == '\0')
        return true;
    cli_msg("linkward: %s is not a valid id (letters, digits, '-' and '_')\n", what);
    return false;
}

/* ---- sanitised printing ---- */

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    size_t n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 && s[0] < 0xe0 ? 2 : 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

/* True for code points a terminal would act on rather than show: C1
 * controls, and the marks that reorder text (a name could otherwise hide
 * or reverse part of the line around it). */
static bool invisible(const unsigned char *s, size_t n)
{
    if (n == 2 && s[0] == 0xc2 && s[1] < 0xa0)
        return true; /* U+0080..U+009F */
    if (n == 3 && s[0] == 0xe2 && s[1] == 0x80 &&
        ((s[2] >= 0x8e && s[2] <= 0x8f) || (s[2] >= 0xaa && s[2] <= 0xae)))
        return true; /* U+200E/F, U+202A..U+202E */
    if (n == 3 && s[0] == 0xe2 && s[1] == 0x81 && s[2] >= 0xa6 && s[2] <= 0xa9)
        return true; /* U+2066..U+2069 */
    return false;
}

/* Sanitises s into dst; keep_newlines lets our own message layout through. */
static void sanitise(const char *s, char *dst, size_t cap, bool keep_newlines)
{
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (*p && o + 1 < cap) {
        if (*p < 0x20 || *p == 0x7f) {
            dst[o++] = (*p == '\n' && keep_newlines) ? '\n' : *p == '\t' ? ' ' : '?';
            p++;
            continue;
        }
        size_t n = utf8_len(p);
        if (n == 0 || invisible(p, n)) {
            dst[o++] = '?';
            p += n ? n : 1;
            continue;
        }
        if (o + n >= cap)
            break;
        memcpy(dst + o, p, n);
        o += n;
        p += n;
    }
    dst[o] = '\0';
}

void cli_safe(const char *s, char *dst, size_t cap)
{
    sanitise(s, dst, cap, false);
}

static void vprint(FILE *f, const char *fmt, va_list ap)
{
    char raw[8192], clean[8192];
    int n = vsnprintf(raw, sizeof(raw), fmt, ap);
    if (n < 0)
        return;
    sanitise(raw, clean, sizeof(clean), true);
    fputs(clean, f);
    fflush(f);
}

void cli_msg(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprint(stderr, fmt, ap);
    va_end(ap);
}

void cli_out(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprint(stdout, fmt, ap);
    va_end(ap);
}

void cli_json_doc(json_t *j)
{
    json_dumpf(j, stdout, JSON_INDENT(2));
    fputc('\n', stdout);
    fflush(stdout);
}

void cli_json_line(json_t *j)
{
    json_dumpf(j, stdout, JSON_COMPACT);
    fputc('\n', stdout);
    fflush(stdout);
}

void cli_json_answer(json_t *answer)
{
    if (answer != NULL) {
        cli_json_doc(answer);
    } else {
        fputs("{}\n", stdout);
        fflush(stdout);
    }
}

void cli_json_wipe(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_string(v))
        lw_wipe((char *)json_string_value(v), json_string_length(v));
}

void cli_wipe_arg(const char *arg)
{
    if (arg != NULL)
        lw_wipe((char *)arg, strlen(arg));
}

void cli_json_event(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    json_t *j = json_vpack_ex(NULL, 0, fmt, ap);
    va_end(ap);
    if (j != NULL)
        cli_json_line(j);
    json_decref(j);
}

/* ---- records for people ---- */

/* Parses "YYYY-MM-DDTHH:MM:SS[.fff]Z" into seconds since the epoch. */
static bool parse_time(const char *s, time_t *out)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    for (size_t i = 0; i < sizeof(shape) - 1; i++) {
        if (s[i] == '\0')
            return false;
        if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
            return false;
    }
#define NUM2(p) ((s[p] - '0') * 10 + (s[(p) + 1] - '0'))
    struct tm tm = {0};
    tm.tm_year = NUM2(0) * 100 + NUM2(2) - 1900;
    tm.tm_mon = NUM2(5) - 1;
    tm.tm_mday = NUM2(8);
    tm.tm_hour = NUM2(11);
    tm.tm_min = NUM2(14);
    tm.tm_sec = NUM2(17);
#undef NUM2
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return false;
    *out = t;
    return true;
}

void cli_time_ago(const char *rfc3339, char *dst, size_t cap)
{
    time_t t;
    if (rfc3339 == NULL || rfc3339[0] == '\0') {
        (void)lw_strlcpy(dst, "-", cap);
        return;
    }
    if (!parse_time(rfc3339, &t)) {
        cli_safe(rfc3339, dst, cap);
        return;
    }
    long d = (long)(time(NULL) - t);
    int n;
    if (d < 5)
        n = snprintf(dst, cap, "just now");
    else if (d < 60)
        n = snprintf(dst, cap, "%ld s ago", d);
    else if (d < 3600)
        n = snprintf(dst, cap, "%ld min ago", d / 60);
    else if (d < 86400)
        n = snprintf(dst, cap, "%ld h ago", d / 3600);
    else
        n = snprintf(dst, cap, "%ld d ago", d / 86400);
    if (n < 0 || (size_t)n >= cap)
        (void)lw_strlcpy(dst, "?", cap);
}

/* "2026-01-02 13:45" (UTC) from an RFC 3339 time. */
static void short_time(const char *rfc3339, char *dst, size_t cap)
{
    time_t t;
    if (rfc3339 == NULL || !parse_time(rfc3339, &t)) {
        cli_safe(rfc3339 && rfc3339[0] ? rfc3339 : "-", dst, cap);
        return;
    }
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(dst, cap, "%Y-%m-%d %H:%M", &tm) == 0)
        (void)lw_strlcpy(dst, "?", cap);
}

void cli_place(json_t *rec, char *dst, size_t cap)
{
    const char *parts[3] = {cli_str(rec, "city"), cli_str(rec, "region"), cli_str(rec, "country")};
    lw_buf b;
    lw_buf_init(&b, 512);
    for (int i = 0; i < 3; i++) {
        if (parts[i][0] == '\0' || (i == 1 && strcmp(parts[1], parts[0]) == 0))
            continue;
        if (b.len > 0)
            (void)lw_buf_append(&b, ", ", 2);
        (void)lw_buf_append(&b, parts[i], strlen(parts[i]));
    }
    cli_safe(b.len > 0 ? b.data : "-", dst, cap);
    lw_buf_free(&b);
}

/* "Firefox 120" style: a name and a version, either possibly empty. */
void cli_name_version(json_t *rec, const char *name, const char *version, char *dst, size_t cap)
{
    const char *n = cli_str(rec, name), *v = cli_str(rec, version);
    char raw[256];
    int len = snprintf(raw, sizeof(raw), "%s%s%s", n[0] ? n : "-", n[0] && v[0] ? " " : "", n[0] ? v : "");
    if (len < 0)
        raw[0] = '\0';
    cli_safe(raw, dst, cap);
}

#define CELL 96
#define MAX_COLS 10

/* Display width: code points (close enough for the names we show). */
static size_t width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            w++;
    return w;
}

/* Cuts s to at most maxw code points, ending in "…" when cut. */
static void truncate_cell(char *s, size_t maxw)
{
    if (width(s) <= maxw)
        return;
    size_t w = 0, i = 0;
    for (; s[i]; i++) {
        if (((unsigned char)s[i] & 0xc0) != 0x80) {
            if (w == maxw - 1)
                break;
            w++;
        }
    }
    if (i + 4 <= CELL) {
        memcpy(s + i, "\xe2\x80\xa6", 4);
    } else {
        s[i] = '\0';
    }
}

typedef struct table {
    int ncols;
    const char *heads[MAX_COLS];
    size_t maxw[MAX_COLS];
    size_t nrows;
    char (*cells)[MAX_COLS][CELL];
} table;

static void table_print(const table *t)
{
    size_t w[MAX_COLS];
    for (int c = 0; c < t->ncols; c++) {
        w[c] = width(t->heads[c]);
        for (size_t r = 0; r < t->nrows; r++) {
            size_t cw = width(t->cells[r][c]);
            if (cw > w[c])
                w[c] = cw;
        }
    }
    for (int c = 0; c < t->ncols; c++)
        printf("%s%-*s", c ? "  " : "", c == t->ncols - 1 ? 0 : (int)w[c], t->heads[c]);
    putchar('\n');
    for (size_t r = 0; r < t->nrows; r++) {
        for (int c = 0; c < t->ncols; c++) {
            const char *s = t->cells[r][c];
            /* printf pads by bytes; pad by code points ourselves. */
            printf("%s%s", c ? "  " : "", s);
            if (c < t->ncols - 1)
                for (size_t k = width(s); k < w[c]; k++)
                    putchar(' ');
        }
        putchar('\n');
    }
    fflush(stdout);
}

/* "198.51.100.10 · Lisbon, PT · Cable/DSL · AS64500 …", "-" for what is unknown. */
static void place_line(json_t *place, char *dst, size_t cap)
{
    char ip[CELL], where[CELL], network[CELL];
    cli_safe(cli_str(place, "ip")[0] ? cli_str(place, "ip") : "-", ip, sizeof(ip));
    cli_place(place, where, sizeof(where));
    cli_safe(cli_str(place, "network")[0] ? cli_str(place, "network") : "-", network, sizeof(network));
    /* Callers give 4 * CELL: three cells and the separators always fit. */
    (void)snprintf(dst, cap, "%s · %s · %s", ip, where, network);
}

static void print_device_details(json_t *rec)
{
    char name[CELL], id[CELL], role[CELL], model[CELL], key[CELL], first[4 * CELL], last[4 * CELL];
    cli_safe(cli_str(rec, "name")[0] ? cli_str(rec, "name") : "(no name)", name, sizeof(name));
    cli_safe(cli_str(rec, "id"), id, sizeof(id));
    cli_safe(cli_str(rec, "role")[0] ? cli_str(rec, "role") : "-", role, sizeof(role));
    cli_safe(cli_str(rec, "device_model")[0] ? cli_str(rec, "device_model") : "-", model, sizeof(model));
    cli_safe(cli_str(rec, "key_fingerprint")[0] ? cli_str(rec, "key_fingerprint") : "-", key, sizeof(key));
    place_line(json_object_get(rec, "first_seen"), first, sizeof(first));
    place_line(json_object_get(rec, "last_seen"), last, sizeof(last));
    printf("\n%s (%s)%s\n"
           "  Role:        %s\n"
           "  Device:      %s\n"
           "  Key:         %s\n"
           "  First seen:  %s\n"
           "  Last seen:   %s\n",
           name, id, json_is_true(json_object_get(rec, "current")) ? " — this device" : "", role, model, key,
           first, last);
    json_t *signed_by = json_object_get(rec, "signed_by_this_phone");
    if (json_is_true(signed_by))
        printf("  Approved:    signed by this phone\n");
    else if (json_is_false(signed_by))
        printf("  WARNING:     " CLI_UNSIGNED_WARNING "\n");
    fflush(stdout);
}

/* The first column of an active device: a warning outranks "this device". */
static const char *row_mark(json_t *rec)
{
    if (json_is_false(json_object_get(rec, "signed_by_this_phone")))
        return "!";
    return json_is_true(json_object_get(rec, "current")) ? "*" : " ";
}

void cli_print_devices(json_t *records, bool history)
{
    size_t n = json_array_size(records);
    if (n == 0) {
        cli_msg(history ? "No ended sessions.\n" : "No active devices.\n");
        return;
    }
    table t = {0};
    t.cells = calloc(n, sizeof(*t.cells));
    if (t.cells == NULL)
        return;
    const char *heads_active[] = {" ",     "NAME",    "BROWSER", "OS",          "IP",
                                  "PLACE", "NETWORK", "LINKED",  "LAST ACTIVE", "ID"};
    const char *heads_hist[] = {"NAME",    "BROWSER", "OS",    "IP",     "PLACE",
                                "NETWORK", "LINKED",  "ENDED", "REASON", "ID"};
    const size_t maxw[] = {1, 28, 20, 16, 39, 28, 36, 16, 16, 43};
    t.ncols = 10;
    for (int c = 0; c < t.ncols; c++) {
        t.heads[c] = history ? heads_hist[c] : heads_active[c];
        t.maxw[c] = history && c == 0 ? 28 : maxw[c];
    }
    bool any_unsigned = false;
    for (size_t r = 0; r < n; r++) {
        json_t *rec = json_array_get(records, r);
        char(*row)[CELL] = t.cells[r];
        any_unsigned |= json_is_false(json_object_get(rec, "signed_by_this_phone"));
        int c = 0;
        if (!history)
            (void)lw_strlcpy(row[c++], row_mark(rec), CELL);
        cli_safe(cli_str(rec, "name")[0] ? cli_str(rec, "name") : "-", row[c++], CELL);
        cli_name_version(rec, "browser", "browser_version", row[c++], CELL);
        cli_name_version(rec, "os", "os_version", row[c++], CELL);
        cli_safe(cli_str(rec, "ip")[0] ? cli_str(rec, "ip") : "-", row[c++], CELL);
        cli_place(rec, row[c++], CELL);
        cli_safe(cli_str(rec, "network")[0] ? cli_str(rec, "network") : "-", row[c++], CELL);
        short_time(cli_str(rec, "linked_at"), row[c++], CELL);
        if (history) {
            short_time(cli_str(rec, "ended_at"), row[c++], CELL);
            cli_safe(cli_str(rec, "end_reason")[0] ? cli_str(rec, "end_reason") : "-", row[c++], CELL);
        } else {
            cli_time_ago(cli_str(rec, "last_active_at"), row[c++], CELL);
        }
        cli_safe(cli_str(rec, "id"), row[c++], CELL);
        for (int k = 0; k < t.ncols; k++)
            truncate_cell(row[k], t.maxw[k]);
    }
    t.nrows = n;
    table_print(&t);
    if (!history)
        cli_msg(any_unsigned ? "(* = this device, ! = NOT approved by this phone)\n" : "(* = this device)\n");
    free(t.cells);
    /* The table is the overview; "who is linked" also needs what does not
     * fit a row: the role, the device, the key to compare with the device's
     * own screen, and where it was linked next to where it was last used. */
    for (size_t r = 0; r < n; r++)
        print_device_details(json_array_get(records, r));
}

/* A one-line summary of an alert's details: its sentence when the server
 * wrote one, else key=value pairs. */
static void details_text(json_t *details, char *dst, size_t cap)
{
    const char *sentence = cli_str(details, "message");
    if (sentence[0] != '\0') {
        cli_safe(sentence, dst, cap);
        return;
    }
    lw_buf b;
    lw_buf_init(&b, 1024);
    const char *key;
    json_t *v;
    json_object_foreach(details, key, v)
    {
        char *text = json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        const char *val = json_is_string(v) ? json_string_value(v) : text ? text : "?";
        if (lw_buf_appendf(&b, "%s%s=%s", b.len ? " " : "", key, val) != LW_OK) {
            free(text);
            break;
        }
        free(text);
    }
    cli_safe(b.len ? b.data : "-", dst, cap);
    lw_buf_free(&b);
}

void cli_print_alerts(json_t *alerts)
{
    size_t n = json_array_size(alerts);
    if (n == 0) {
        cli_msg("No alerts.\n");
        return;
    }
    table t = {0};
    t.cells = calloc(n, sizeof(*t.cells));
    if (t.cells == NULL)
        return;
    const char *heads[] = {"TIME", "KIND", "DEVICE", "ANSWER", "DETAILS", "ID"};
    const size_t maxw[] = {16, 28, 22, 17, 80, 43};
    t.ncols = 6;
    for (int c = 0; c < t.ncols; c++) {
        t.heads[c] = heads[c];
        t.maxw[c] = maxw[c];
    }
    for (size_t r = 0; r < n; r++) {
        json_t *a = json_array_get(alerts, r);
        char(*row)[CELL] = t.cells[r];
        short_time(cli_str(a, "created_at"), row[0], CELL);
        cli_safe(cli_str(a, "kind"), row[1], CELL);
        cli_safe(cli_str(a, "device_id")[0] ? cli_str(a, "device_id") : "-", row[2], CELL);
        /* How it was answered; "yes" from a server that does not say. */
        const char *answer = cli_str(a, "answer");
        cli_safe(answer[0] ? answer : json_is_true(json_object_get(a, "acked")) ? "yes" : "-", row[3], CELL);
        details_text(json_object_get(a, "details"), row[4], CELL);
        cli_safe(cli_str(a, "id"), row[5], CELL);
        for (int k = 0; k < t.ncols; k++)
            truncate_cell(row[k], t.maxw[k]);
    }
    t.nrows = n;
    table_print(&t);
    free(t.cells);
}

bool cli_print_event(json_t *ev)
{
    const char *name = cli_str(ev, "event");
    char a[CELL], b[CELL], c[CELL], d[CELL];
    if (strcmp(name, "hello") == 0 || strcmp(name, "pong") == 0 || strcmp(name, "proof.challenge") == 0)
        return false;
    if (strcmp(name, "alert") == 0) {
        json_t *al = json_object_get(ev, "alert");
        short_time(cli_str(al, "created_at"), a, sizeof(a));
        details_text(json_object_get(al, "details"), b, sizeof(b));
        cli_out("%s  alert %s  %s\n", a, cli_str(al, "kind"), b);
    } else if (strcmp(name, "device.linked") == 0) {
        json_t *rec = json_object_get(ev, "device");
        cli_name_version(rec, "browser", "browser_version", b, sizeof(b));
        cli_name_version(rec, "os", "os_version", c, sizeof(c));
        cli_place(rec, d, sizeof(d));
        cli_safe(cli_str(rec, "name"), a, sizeof(a));
        cli_out("A new device was linked: %s (%s on %s), %s\n", a, b, c, d);
    } else if (strcmp(name, "device.ended") == 0) {
        cli_out("Device %s was logged out (%s)\n", cli_str(ev, "device_id"), cli_str(ev, "reason"));
    } else if (strcmp(name, "session.ended") == 0) {
        const char *msg = cli_str(ev, "message");
        cli_out("This device's session ended (%s)%s%s\n", cli_str(ev, "reason"), msg[0] ? ": " : "", msg);
    } else {
        char *text = json_dumps(ev, JSON_COMPACT);
        cli_out("%s\n", text ? text : name);
        free(text);
    }
    return true;
}

/* ---- the terminal ---- */

cli_answer cli_ask(const char *question)
{
    char line[64];
    FILE *in = fopen("/dev/tty", "r");
    FILE *src = in ? in : stdin;
    cli_msg("%s ", question);
    cli_answer answer = CLI_ANSWER_NONE;
    if (fgets(line, sizeof(line), src) != NULL) {
        const char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        bool yes =
            (p[0] == 'y' || p[0] == 'Y') && (p[1] == '\0' || p[1] == '\n' || strncasecmp(p, "yes", 3) == 0);
        answer = yes ? CLI_ANSWER_YES : CLI_ANSWER_NO;
    } else {
        cli_msg("\n");
    }
    if (in != NULL)
        fclose(in);
    return answer;
}

bool cli_confirm(const char *question)
{
    return cli_ask(question) == CLI_ANSWER_YES;
}

bool cli_stdin_may_answer(void)
{
    struct stat st;
    if (isatty(STDIN_FILENO))
        return true;
    if (fstat(STDIN_FILENO, &st) != 0)
        return false; /* closed */
    int waiting = 0;
    if (S_ISREG(st.st_mode) || S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) {
        if (ioctl(STDIN_FILENO, FIONREAD, &waiting) == 0 && waiting > 0)
            return true; /* an answer is already there */
        if (S_ISREG(st.st_mode))
            return false; /* at its end */
        /* A pipe or socket with nothing in it yet: an answer may still come,
         * unless it is readable without data, which is its end (the writer
         * closed or shut down its side). */
        struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
        if (poll(&p, 1, 0) != 1)
            return true;
        return ioctl(STDIN_FILENO, FIONREAD, &waiting) == 0 && waiting > 0; /* it came meanwhile */
    }
    /* /dev/null and the like: nothing will ever be read. */
    struct stat null_st;
    return !(S_ISCHR(st.st_mode) && stat("/dev/null", &null_st) == 0 && st.st_rdev == null_st.st_rdev);
}

bool cli_have_tty(void)
{
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

bool cli_read_secret(const char *prompt, char *dst, size_t cap)
{
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return false;
    struct termios old, quiet;
    bool ok = false;
    if (tcgetattr(fd, &old) != 0)
        goto done;
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
    if (tcsetattr(fd, TCSAFLUSH, &quiet) != 0)
        goto done;
    (void)!write(fd, prompt, strlen(prompt));
    size_t n = 0;
    char ch;
    ssize_t r;
    while ((r = read(fd, &ch, 1)) == 1 && ch != '\n') {
        if (n + 1 < cap)
            dst[n++] = ch;
    }
    dst[n] = '\0';
    ok = r == 1 || n > 0;
    (void)tcsetattr(fd, TCSAFLUSH, &old);
    (void)!write(fd, "\n", 1);
done:
    close(fd);
    return ok;
}

/* ---- live events ---- */

/* Time without any event before we ping the server: proxies drop idle
 * connections, and a ping also tells us when the server has gone. */
#define FOLLOW_PING_MS 25000
/* How long we keep trying to reconnect after the socket drops. */
#define FOLLOW_RECONNECT_MS 30000

static bool session_over(const lwc_error *e)
{
    return strcmp(e->code, "session_ended") == 0 || strcmp(e->code, "token_theft") == 0;
}

static int report_ended(const lwc_device *d, bool json)
{
    const lwc_error *e = lwc_device_error(d);
    const char *reason = e->reason[0]                          ? e->reason
                         : strcmp(e->code, "token_theft") == 0 ? "token_theft"
                                                               : "unknown";
    if (json)
        cli_json_event("{ss ss ss}", "event", "session.ended", "reason", reason, "message", e->message);
    else
        cli_out("This device's session has already ended (%s): %s\n", reason, e->message);
    return CLI_OK;
}

static lwc_ws *follow_connect(lwc_device *d, bool json, int *exit_code)
{
    int64_t give_up = lw_now_ms() + FOLLOW_RECONNECT_MS;
    for (unsigned delay = 250;; delay = delay < 4000 ? delay * 2 : delay) {
        int err = LW_OK;
        lwc_ws *ws = lwc_device_ws_connect(d, &err);
        if (ws != NULL)
            return ws;
        if (session_over(lwc_device_error(d))) {
            *exit_code = report_ended(d, json);
            return NULL;
        }
        if (err != LW_EIO || lw_now_ms() >= give_up) {
            *exit_code = cli_fail(d, err);
            return NULL;
        }
        struct timespec ts = {.tv_sec = delay / 1000, .tv_nsec = (long)(delay % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

int cli_follow_events(lwc_device *d, bool json)
{
    int exit_code = CLI_OK;
    /* The first connection must succeed: a wrong server should fail fast. */
    int err = LW_OK;
    lwc_ws *ws = lwc_device_ws_connect(d, &err);
    if (ws == NULL) {
        if (session_over(lwc_device_error(d)))
            return report_ended(d, json);
        return cli_fail(d, err);
    }
    for (;;) {
        json_t *ev = NULL;
        int rc = lwc_ws_next(ws, &ev, FOLLOW_PING_MS);
        if (rc == LW_EEXPIRED) {
            json_t *ping = json_pack("{ss}", "event", "ping");
            if (ping != NULL)
                (void)lwc_ws_send_json(ws, ping);
            json_decref(ping);
            continue;
        }
        if (rc != LW_OK) {
            /* Dropped without saying why: reconnect; if the session ended
             * meanwhile, the server tells us at the upgrade. */
            lwc_ws_close(ws);
            if ((ws = follow_connect(d, json, &exit_code)) == NULL)
                return exit_code;
            continue;
        }
        const char *name = cli_str(ev, "event");
        bool ended = strcmp(name, "session.ended") == 0;
        if (strcmp(name, "proof.challenge") == 0)
            (void)lwc_device_note_challenge(d, cli_str(ev, "challenge"));
        if (json) {
            if (strcmp(name, "pong") != 0 && strcmp(name, "proof.challenge") != 0)
                cli_json_line(ev);
        } else {
            (void)cli_print_event(ev);
        }
        json_decref(ev);
        if (ended) {
            lwc_ws_close(ws);
            return CLI_OK;
        }
    }
}

int cli_dispatch(const char *prog, void (*usage)(FILE *), const cli_cmd *cmds, size_t ncmds, int argc,
                 char **argv)
{
    cli_opts o = {0};
    int i = 1;
    while (i < argc && argv[i][0] == '-') {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return CLI_OK;
        }
        int r = cli_take_global(&o, argc, argv, &i);
        if (r < 0)
            return CLI_USAGE;
        if (r == 0)
            return cli_usage_error(prog, "unknown option %s", argv[i]);
    }
    if (i >= argc) {
        usage(stderr);
        return CLI_USAGE;
    }
    for (size_t k = 0; k < ncmds; k++)
        if (strcmp(argv[i], cmds[k].name) == 0)
            return cmds[k].run(&o, argc - i, argv + i);
    return cli_usage_error(prog, "unknown command '%s'", argv[i]);
}

int cli_open_device_to_start(cli_opts *o, const char *default_name, lwc_device **out)
{
    int rc = cli_open_device(o, default_name, out);
    if (rc != CLI_OK || lwc_device_client(*out) != NULL)
        return rc;
    /* Neither --server nor the state names a server: open it again with the default one. */
    lwc_device_free(*out);
    *out = NULL;
    const char *env = getenv("LINKWARD_SERVER");
    o->server = env != NULL && env[0] != '\0' ? env : CLI_DEFAULT_SERVER;
    cli_msg("linkward: no --server given; using %s%s\n", o->server,
            env != NULL && env[0] != '\0' ? " (LINKWARD_SERVER)" : "");
    return cli_open_device(o, default_name, out);
}
