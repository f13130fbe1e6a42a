/*
 * cli.h — what the `linkward` sub-commands share: options, exit codes,
 * printing for people (sanitised, tables) and for programs (JSON).
 */
#ifndef LW_CLI_H
#define LW_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "linkward/client.h"

/* Exit codes of docs/cli.md. */
enum {
    CLI_OK = 0,
    CLI_USAGE = 1,   /* usage error */
    CLI_IO = 2,      /* cannot reach or understand the server */
    CLI_REFUSED = 3, /* denied, expired, wrong PIN, not allowed, limit reached */
};

/* Options of `phone` and `companion` that come before the command (and, to
 * be forgiving, are also accepted among the command's options). */
typedef struct cli_opts {
    const char *server;
    const char *state;
    const char *cacert; /* --cacert FILE */
    const char *headers[LWC_HEADERS_MAX];
    size_t nheaders;
    bool json;
} cli_opts;

/* If argv[*i] is a global option, consumes it (and its value) and returns 1;
 * 0 if it is not one; -1 after printing a usage error. */
int cli_take_global(cli_opts *o, int argc, char **argv, int *i);

/* A sub-command of `linkward phone` / `linkward companion`. */
typedef struct cli_cmd {
    const char *name;
    int (*run)(cli_opts *o, int argc, char **argv);
} cli_cmd;

/* The shared front of the device CLIs: global options, --help, then the
 * command named by the first other argument. */
int cli_dispatch(const char *prog, void (*usage)(FILE *), const cli_cmd *cmds, size_t ncmds, int argc,
                 char **argv);
/* Matches "--name VALUE" or "--name=VALUE" at argv[*i]: 1 (value in *val,
 * *i advanced past it), 0 if argv[*i] is not --name, -1 after printing an
 * error if the value is missing. */
int cli_opt_value(int argc, char **argv, int *i, const char *name, const char **val);
/* Prints "linkward: <what>" and a hint to run --help; returns CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A command's own options: like cli_opt_value, 1 consumed, 0 not mine, -1 error. */
typedef int (*cli_opt_fn)(void *ctx, int argc, char **argv, int *i);
/* Parses the arguments after a command's name (argv[0]): global options
 * anywhere, the command's own through opt (may be NULL), up to max_pos
 * positionals into pos. --help prints usage and exits 0. CLI_OK or
 * CLI_USAGE after printing why. */
int cli_parse_args(cli_opts *o, const char *group, void (*usage)(FILE *), const char *cmd, int argc,
                   char **argv, cli_opt_fn opt, void *ctx, const char **pos, int max_pos, int *npos);

/* The state file's path: --state, else `default_name` in the config folder.
 * CLI_OK or CLI_USAGE after printing why. */
int cli_state_path(const cli_opts *o, const char *default_name, char *dst, size_t cap);
/* Opens the device state (default file name `default_name` in the config
 * folder), applies --server and --header. Returns CLI_OK or an exit code
 * after printing why. */
int cli_open_device(const cli_opts *o, const char *default_name, lwc_device **out);
/* cli_open_device for the commands that start a device (register, link): when
 * neither --server nor the state file names a server, LINKWARD_SERVER, else
 * the address `make run` serves, http://127.0.0.1:8080 (said on stderr). */
#define CLI_DEFAULT_SERVER "http://127.0.0.1:8080"
int cli_open_device_to_start(cli_opts *o, const char *default_name, lwc_device **out);
/* The exit code for an LW_E* result. */
int cli_exit_for(int rc);
/* Prints the device's last error for people (stderr) and returns the exit
 * code for rc. */
int cli_fail(const lwc_device *d, int rc);
/* The error as one sentence (with attempts left, retry time) into dst. */
void cli_error_text(const lwc_error *e, char *dst, size_t cap);

/* Validators with precise messages (they print; false if invalid). */
bool cli_check_pin(const char *option, const char *pin);
bool cli_check_id(const char *what, const char *id);

/* Printing. Strings from the server (device names chosen by whoever asks
 * to link!) may hold terminal escapes: everything shown to people goes
 * through cli_safe, which replaces controls and bidi overrides. */
void cli_safe(const char *s, char *dst, size_t cap);
void cli_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* stderr, sanitised */
void cli_out(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* stdout, sanitised */
/* Prints j as one JSON document (pretty) or one line, to stdout; flushes. */
void cli_json_doc(json_t *j);
void cli_json_line(json_t *j);
/* Prints an answer as a JSON document ({} when the answer was empty). */
void cli_json_answer(json_t *answer);
/* Zeroes a string member in place (PINs in request bodies) and a secret
 * given on the command line (so it no longer shows in /proc/PID/cmdline). */
void cli_json_wipe(json_t *obj, const char *key);
void cli_wipe_arg(const char *arg);
/* Builds and prints {"event": name, ...} from a json_pack format, one line. */
void cli_json_event(const char *fmt, ...);

/* An object's string member, or "" if absent or not a string. */
const char *cli_str(json_t *obj, const char *key);

/* Tables of session records and alerts for people (stdout). A record with
 * "signed_by_this_phone": false is marked with CLI_UNSIGNED_WARNING. */
#define CLI_UNSIGNED_WARNING "NOT approved by this phone: the server lists a device this phone never signed"
void cli_print_devices(json_t *records, bool history);
void cli_print_alerts(json_t *alerts);
/* "12 s ago" style text for an RFC 3339 time; the text itself if unparsable. */
void cli_time_ago(const char *rfc3339, char *dst, size_t cap);
/* "Lisbon, PT" from a record (or an object with city/region/country). */
void cli_place(json_t *rec, char *dst, size_t cap);
/* "Firefox 120" from a record's name and version members. */
void cli_name_version(json_t *rec, const char *name, const char *version, char *dst, size_t cap);
/* Follows the device's live events until its session ends (exit 0) or the
 * server stays unreachable; JSON lines with --json. */
int cli_follow_events(lwc_device *d, bool json);
/* Prints a live event for people; returns false for events not worth showing. */
bool cli_print_event(json_t *ev);

/* Asks a yes/no question on the terminal (stdin if there is none). NONE
 * when no answer came at all (end of input), which is not a no. */
typedef enum { CLI_ANSWER_NONE, CLI_ANSWER_NO, CLI_ANSWER_YES } cli_answer;
cli_answer cli_ask(const char *question);
/* cli_ask: true on y. */
bool cli_confirm(const char *question);
/* Whether, without a terminal, stdin may still give an answer: it holds
 * data, or is a pipe whose writer has not closed it. False at its end
 * (/dev/null, a closed pipe, an exhausted file). */
bool cli_stdin_may_answer(void);
/* True if the process has a terminal to ask questions on. */
bool cli_have_tty(void);
/* Reads a secret from the terminal without echo; false if there is no terminal. */
bool cli_read_secret(const char *prompt, char *dst, size_t cap);

/* The sub-commands. argv[0] is the sub-command's name. */
int cli_phone_main(int argc, char **argv);
int cli_companion_main(int argc, char **argv);
int cli_admin_main(int argc, char **argv);

#endif
