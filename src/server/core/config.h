/*
 * config.h — every `linkward serve` option, from three sources with one
 * definition: a config file (--config FILE, "name = value" lines), the
 * environment (LINKWARD_NAME, e.g. LINKWARD_LISTEN, LINKWARD_RATE), and the
 * command line (--name value), later ones overriding earlier ones. Errors
 * name where the value came from ("linkward.conf:12: --max-age: not a
 * duration: 'soon'").
 */
#ifndef LW_CONFIG_H
#define LW_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

#include "app.h"

/* Parses everything into c (which has its defaults already). Returns 0 to
 * run, 1 on an error (printed to stderr), -1 when done (e.g. --help). */
int lw_config_load(lw_config *c, int argc, char **argv);

/* Sets one option by its long name; msg gets the reason on failure. 0 or -1. */
int lw_config_set(lw_config *c, const char *name, const char *value, char *msg, size_t cap);

/* Fills the paths derived from the data directory; 0 or -1 (msg). */
int lw_config_finish(lw_config *c, char *msg, size_t cap);

/* Everything the server would refuse at start, checked without starting it
 * (--check-config runs it, and so does serve before binding): trusted-proxy
 * CIDRs, that the listen addresses resolve, the --min-client-version format,
 * that --user exists, that the TLS certificate and key load and match, and
 * no plain HTTP off loopback without --allow-plain-http. Each problem is
 * printed to stderr prefixed with where the option was set (FILE:LINE,
 * LINKWARD_NAME or --name). Returns the number of problems. Call after
 * lw_config_load (it reads the sources that recorded). */
int lw_config_check(const lw_config *c);

/* True for the loopback hosts plain HTTP may listen on without --allow-plain-http. */
bool lw_config_loopback(const char *host);

void lw_config_usage(FILE *f);

#endif
