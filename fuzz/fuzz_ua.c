/*
 * fuzz_ua.c — the User-Agent and the User-Agent Client Hints a client sends
 * (lw_ua_parse with the uap-core rules, lw_ua_apply_client_hints,
 * lw_ua_name), which end up in device names, records and alerts.
 *
 * Input: up to five fields separated by '\n':
 *   user-agent '\n' sec-ch-ua '\n' platform '\n' platform-version '\n' model
 * A missing field is an absent header (NULL). The User-Agent goes in as the
 * unterminated slice the server passes (h2o header values are not strings).
 * Each input also runs the three uncached uap-core sections, the regex
 * matching itself (a pathological User-Agent shows up as a slow input).
 *
 * Oracle: ua.h promises printable ASCII in every field, after the hints too:
 * they are logged and shown to people.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "lw.h"
#include "ua.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    /* Compiled once (~0.2 s); without the file the built-in matcher answers, also worth fuzzing. */
    lw_ua_init(NULL);
    return 0;
}

static void check_field(const char *f, size_t cap, const char *what, const uint8_t *data, size_t size)
{
    size_t n = strnlen(f, cap);
    bool ok = n < cap;
    for (size_t i = 0; ok && i < n; i++)
        ok = f[i] >= 0x20 && f[i] < 0x7f;
    if (!ok) {
        fprintf(stderr, "fuzz_ua: %s is not printable ASCII for input '%.*s'\n", what, (int)size,
                (const char *)data);
        abort();
    }
}

static void check(const lw_ua *u, const uint8_t *data, size_t size)
{
    check_field(u->browser, sizeof u->browser, "browser", data, size);
    check_field(u->browser_version, sizeof u->browser_version, "browser_version", data, size);
    check_field(u->os, sizeof u->os, "os", data, size);
    check_field(u->os_version, sizeof u->os_version, "os_version", data, size);
    check_field(u->device_model, sizeof u->device_model, "device_model", data, size);
    char name[LW_UA_FIELD * 2 + 8];
    lw_ua_name(u, name, sizeof name);
    if (!memchr(name, '\0', sizeof name))
        abort();
}

/* A field in a heap block of its exact size (one more for a terminator, if
 * asked): what lies past it is the sanitizers' to guard. */
static char *dup_field(const uint8_t *p, size_t n, bool terminate)
{
    char *f = malloc(n + terminate + (n == 0));
    if (f) {
        memcpy(f, p, n);
        if (terminate)
            f[n] = '\0';
    }
    return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *field[5] = {NULL, NULL, NULL, NULL, NULL};
    size_t flen[5] = {0, 0, 0, 0, 0};
    const uint8_t *p = data, *end = data + size;
    for (int i = 0; i < 5; i++) {
        const uint8_t *nl = i < 4 ? memchr(p, '\n', (size_t)(end - p)) : NULL;
        flen[i] = (size_t)((nl ? nl : end) - p);
        /* The hints are C strings (the server copies them out bounded); the User-Agent is a slice. */
        if (!(field[i] = dup_field(p, flen[i], i > 0)))
            goto out;
        if (!nl)
            break;
        p = nl + 1;
    }

    lw_ua u;
    lw_ua_parse(&u, field[0], flen[0]);
    check(&u, data, size);
    if (field[1] || field[2] || field[3] || field[4]) {
        lw_ua_apply_client_hints(&u, field[1], field[2], field[3], field[4]);
        check(&u, data, size);
    }
    lw_uap a;
    lw_ua_parse_agent(&a, field[0], flen[0]);
    lw_ua_parse_os(&a, field[0], flen[0]);
    lw_ua_parse_device(&a, field[0], flen[0]);
out:
    for (int i = 0; i < 5; i++)
        free(field[i]);
    return 0;
}
