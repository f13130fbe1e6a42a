/*
 * replay_main.c — runs a harness's LLVMFuzzerTestOneInput once over every
 * file of the directories (or files) given, in name order, for builds
 * without libFuzzer. CTest runs it over fuzz/corpus/<harness> and
 * fuzz/<harness>/regressions, so `make test` replays what the fuzzers found.
 *
 *   replay_<harness> [--optional] PATH...
 *
 * PATHs after --optional may be missing (a harness without regressions yet).
 * Each input is copied into a buffer of its exact size, so that an overread
 * is caught by the sanitizers as it is under libFuzzer. Fails when nothing
 * was replayed: an empty corpus means a broken build rule, not a pass.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* Weak: harnesses without setup do not define it. */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

#define REPLAY_FILE_MAX (4L * 1024 * 1024) /* seeds are small; anything bigger is a mistake */

static long replayed;

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size > REPLAY_FILE_MAX) {
        fprintf(stderr, "replay: %s: unreadable or larger than %ld bytes\n", path, REPLAY_FILE_MAX);
        fclose(f);
        return -1;
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf || fread(buf, 1, n, f) != n) {
        fprintf(stderr, "replay: %s: read failed\n", path);
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    /* Printed before the call: when the harness crashes, the last line names the input. */
    fprintf(stderr, "replay: %s (%zu bytes)\n", path, n);
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    replayed++;
    return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int replay_path(const char *path, int optional)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        if (optional && errno == ENOENT)
            return 0;
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return replay_file(path);
    struct dirent **names;
    int n = scandir(path, &names, NULL, by_name);
    if (n < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char file[4096];
        const char *name = names[i]->d_name;
        if (name[0] != '.' && rc == 0) {
            int len = snprintf(file, sizeof file, "%s/%s", path, name);
            if (len < 0 || (size_t)len >= sizeof file) {
                fprintf(stderr, "replay: path too long under %s\n", path);
                rc = -1;
            } else if (stat(file, &st) == 0 && S_ISREG(st.st_mode)) {
                rc = replay_file(file);
            }
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    int optional = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--optional") == 0) {
            optional = 1;
            continue;
        }
        if (replay_path(argv[i], optional) != 0)
            return 1;
    }
    if (replayed == 0) {
        fprintf(stderr, "replay: no input found\n");
        return 1;
    }
    fprintf(stderr, "replay: %ld inputs, no crash\n", replayed);
    return 0;
}
