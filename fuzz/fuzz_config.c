/*
 * fuzz_config.c — the config file (`linkward serve --config FILE`, "name =
 * value" lines, src/server/core/config.c): the input is the file, loaded the way
 * serve loads it (lw_config_load with --config), which runs every option's
 * value parser (durations, rates, addresses, origins, numbers, paths).
 *
 * Errors are printed to stderr line by line, as serve does; `make fuzz` runs
 * this harness with -close_fd_mask=2 so they do not slow the run (libFuzzer
 * and the sanitizers still report on their own descriptor).
 */
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"

extern char **environ;

static char dir[256], path[300];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    remove(p);
    return 0;
}

static void at_exit(void)
{
    nftw(dir, rm_entry, 4, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    /* Only the file speaks: LINKWARD_* variables of whoever runs the fuzzer would also be read. */
    for (size_t i = 0; environ[i];) {
        if (strncmp(environ[i], "LINKWARD_", 9) == 0) {
            char name[128];
            size_t n = strcspn(environ[i], "=");
            if (n >= sizeof name)
                abort();
            memcpy(name, environ[i], n);
            name[n] = '\0';
            unsetenv(name); /* shifts environ: look at index i again */
            continue;
        }
        i++;
    }
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof dir, "%s/lwfuzz-config.XXXXXX", base);
    if (!mkdtemp(dir))
        abort();
    snprintf(path, sizeof path, "%s/linkward.conf", dir);
    atexit(at_exit);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256 * 1024) /* the parser's line cap makes more of the same pointless */
        return 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        abort();
    for (size_t off = 0; off < size;) {
        ssize_t n = write(fd, data + off, size - off);
        if (n <= 0)
            abort();
        off += (size_t)n;
    }
    close(fd);
    lw_config *c = malloc(sizeof *c);
    if (!c)
        return 0;
    lw_config_defaults(c);
    /* getopt permutes argv: a fresh array each time. */
    char a0[] = "serve", a1[] = "--config";
    char *argv[] = {a0, a1, path, NULL};
    int rc = lw_config_load(c, 3, argv);
    if (rc != 0 && rc != 1 && rc != -1)
        abort();
    free(c);
    return 0;
}
