#!/usr/bin/env bash
# pg_stop.sh — stops the server tests/tools/pg_start.sh DIR started and
# removes its data. Safe to run any number of times, and when nothing runs.
#
#   tests/tools/pg_stop.sh DIR
set -uo pipefail

[ $# -eq 1 ] || { echo "usage: pg_stop.sh DIR" >&2; exit 2; }
dir=$1
state="$dir/state"
[ -f "$state" ] || exit 0
bindir="" runas="" base="" sockdir="" data="" watchdog=""
# shellcheck disable=SC1090 # written by pg_start.sh with printf %q
. "$state"

run_as() {
    if [ -z "$runas" ]; then
        "$@"
    elif command -v runuser >/dev/null; then
        runuser -u "$runas" -- "$@"
    else
        su -s /bin/bash "$runas" -c "$(printf '%q ' "$@")"
    fi
}

# The watchdog runs this very script when its parent exits: do not kill ourselves.
if [ -n "$watchdog" ] && [ "$watchdog" != "$$" ]; then
    kill "$watchdog" 2>/dev/null || true
fi

rc=0
if [ -n "$data" ] && [ -f "$data/postmaster.pid" ]; then
    # immediate: the data is thrown away, so no checkpoint is worth waiting for.
    if ! run_as "$bindir/pg_ctl" -D "$data" -m immediate -w -t 30 stop >/dev/null 2>&1; then
        pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null || true)
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
            echo "pg_stop: the server did not stop cleanly; killed it" >&2
            rc=1
        fi
    fi
fi

# Keep the server log next to the state for a look after a failed run.
[ -n "$base" ] && [ -f "$base/server.log" ] && cp "$base/server.log" "$dir/server.log" 2>/dev/null
[ -n "$base" ] && rm -rf "$base"
[ -n "$sockdir" ] && [ "$sockdir" != "$base" ] && rm -rf "$sockdir"
rm -f "$dir/url" "$state"
exit $rc
