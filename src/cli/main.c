/*
 * main.c — the `linkward` binary: one entry point that dispatches to the
 * server (`serve`) or to one of the clients (`phone`, `companion`, `admin`).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "crypto.h"
#include "lw.h"
#include "serve.h"

#ifndef LINKWARD_VERSION
#define LINKWARD_VERSION "0"
#endif

static void usage(FILE *f)
{
    fputs("Usage: linkward COMMAND [OPTIONS]\n"
          "\n"
          "Commands:\n"
          "  serve       run the server\n"
          "  phone       the primary device: register, link companions, manage devices\n"
          "  companion   a headless companion: link to an account, watch, get a token\n"
          "  admin       talk to a running server over its control socket\n"
          "\n"
          "Run 'linkward COMMAND --help' for a command's options.\n"
          "Exit codes: 0 success, 1 usage error, 2 cannot reach or understand the server,\n"
          "3 refused (denied, expired, wrong PIN, not allowed, limit reached).\n",
          f);
}

int main(int argc, char **argv)
{
    /* Lines of --json output must reach a reading process as they happen. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("linkward %s\n", LINKWARD_VERSION);
        return CLI_OK;
    }
    if (lw_crypto_init() != LW_OK) {
        fputs("linkward: cannot initialise the cryptography library\n", stderr);
        return CLI_IO;
    }
    if (strcmp(cmd, "serve") == 0)
        return lw_serve_main(argc - 1, argv + 1);

    /* The clients are built on the public library (linkward/client.h) and
     * start it as any integrator would. */
    if (lwc_init() != LWC_OK) {
        fputs("linkward: cannot initialise the client library (libsodium, libcurl)\n", stderr);
        return CLI_IO;
    }
    int rc;
    if (strcmp(cmd, "phone") == 0) {
        rc = cli_phone_main(argc - 1, argv + 1);
    } else if (strcmp(cmd, "companion") == 0) {
        rc = cli_companion_main(argc - 1, argv + 1);
    } else if (strcmp(cmd, "admin") == 0) {
        rc = cli_admin_main(argc - 1, argv + 1);
    } else {
        fprintf(stderr, "linkward: unknown command '%s'\n\n", cmd);
        usage(stderr);
        rc = CLI_USAGE;
    }
    lwc_cleanup();
    return rc;
}
