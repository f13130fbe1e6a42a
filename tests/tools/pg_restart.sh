#!/usr/bin/env bash
# pg_restart.sh DIR — restarts the test PostgreSQL server that pg_start.sh
# started in DIR (fast shutdown: connections are cut, as in a real restart),
# and waits until it accepts connections again.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: pg_restart.sh DIR" >&2; exit 2; }
bindir="" runas="" base="" sockdir="" data="" watchdog=""
. "$1/state"
run_as() {
    if [ -z "$runas" ]; then "$@"
    elif command -v runuser >/dev/null; then runuser -u "$runas" -- "$@"
    else su -s /bin/bash "$runas" -c "$(printf '%q ' "$@")"; fi
}
run_as "$bindir/pg_ctl" -D "$data" -m fast -w -t 30 restart -l "$base/server.log" >/dev/null
