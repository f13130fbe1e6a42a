/*
 * init.c — what the client library needs once per process (lwc_init), and
 * the public result codes, kept equal to the internal ones by the compiler.
 *
 * The library's files return the internal LW_* codes of lw.h; the public
 * header names the same numbers LWC_*, so nothing is translated at the
 * boundary. The assertions below fail the build if the two lists drift.
 */
#include <pthread.h>
#include <stdbool.h>

#include <curl/curl.h>
#include <sodium.h>

#include "client_int.h"

/* Two enums: compared as ints (-Wenum-compare). */
#define SAME_CODE(pub, internal) _Static_assert((int)(pub) == (int)(internal), #pub " == " #internal)
SAME_CODE(LWC_OK, LW_OK);
SAME_CODE(LWC_EINVAL, LW_EINVAL);
SAME_CODE(LWC_ENOMEM, LW_ENOMEM);
SAME_CODE(LWC_ENOTFOUND, LW_ENOTFOUND);
SAME_CODE(LWC_ECONFLICT, LW_ECONFLICT);
SAME_CODE(LWC_ESTORE, LW_ESTORE);
SAME_CODE(LWC_EEXPIRED, LW_EEXPIRED);
SAME_CODE(LWC_ELIMIT, LW_ELIMIT);
SAME_CODE(LWC_EDENIED, LW_EDENIED);
SAME_CODE(LWC_EIO, LW_EIO);
SAME_CODE(LWC_ECRYPTO, LW_ECRYPTO);
SAME_CODE(LWC_ETOOBIG, LW_ETOOBIG);
SAME_CODE(LWC_ELOCKED, LW_ELOCKED);

/* Guarded by a mutex rather than pthread_once so that lwc_cleanup can undo it
 * and a later lwc_init start again (tests, plugins loaded and unloaded). */
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static bool init_done;

int lwc_init(void)
{
    int rc = LW_OK;
    (void)pthread_mutex_lock(&init_lock);
    if (!init_done) {
        /* sodium_init is itself idempotent and thread-safe (1 = already
         * done, by us or by the application); curl_global_init counts its
         * calls, so an application that also calls it stays balanced. */
        if (sodium_init() < 0)
            rc = LW_ECRYPTO;
        else if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            rc = LW_EIO;
        else
            init_done = true;
    }
    (void)pthread_mutex_unlock(&init_lock);
    return rc;
}

void lwc_cleanup(void)
{
    (void)pthread_mutex_lock(&init_lock);
    if (init_done) {
        curl_global_cleanup();
        init_done = false;
    }
    (void)pthread_mutex_unlock(&init_lock);
}

const char *lwc_strerror(int err)
{
    return lw_strerror(err);
}
