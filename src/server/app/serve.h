/*
 * serve.h — `linkward serve`: parses its options, opens the store, runs the
 * event loop until SIGINT/SIGTERM. Returns the process exit code.
 */
#ifndef LW_SERVE_H
#define LW_SERVE_H

int lw_serve_main(int argc, char **argv);

#endif
