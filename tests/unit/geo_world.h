/*
 * geo_world.h — the GeoIP test world for the unit tests that need one
 * (test_geo, test_risk): the CTest fixture's directory when
 * LINKWARD_GEOIP_TEST_DIR names one, else, run alone, a world built here
 * with tests/tools/make_geoip.pl and removed afterwards, so no test is ever
 * skipped. Static state: include it from one test program only.
 */
#ifndef LW_TEST_GEO_WORLD_H
#define LW_TEST_GEO_WORLD_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef LW_PERL
#define LW_PERL "perl"
#endif
#ifndef LW_MAKE_GEOIP
#define LW_MAKE_GEOIP "tests/tools/make_geoip.pl"
#endif

static char world[1024];      /* the test world's directory */
static char made_world[1024]; /* set when this program generated it (and removes it) */

static int geo_world_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* Removes dir and everything below it. */
static void rm_rf(const char *dir)
{
    nftw(dir, geo_world_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int setup_world(void **state)
{
    (void)state;
    const char *env = getenv("LINKWARD_GEOIP_TEST_DIR");
    if (env && env[0]) {
        snprintf(world, sizeof world, "%s", env);
        return 0;
    }
    snprintf(made_world, sizeof made_world, "/tmp/lw-geo-world-XXXXXX");
    if (!mkdtemp(made_world))
        return -1;
    snprintf(world, sizeof world, "%s", made_world);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execl(LW_PERL, "perl", LW_MAKE_GEOIP, world, (char *)NULL);
        execlp("perl", "perl", LW_MAKE_GEOIP, world, (char *)NULL);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "%s failed\n", LW_MAKE_GEOIP);
        return -1;
    }
    return 0;
}

static int teardown_world(void **state)
{
    (void)state;
    if (made_world[0])
        rm_rf(made_world);
    return 0;
}

#endif
