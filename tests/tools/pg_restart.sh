#!/usr/bin/env bash
# pg_restart.sh [--down|--up] DIR — restarts the test PostgreSQL server that
# pg_start.sh started in DIR (fast shutdown: connections are cut, as in a real
# restart), and waits until it accepts connections again.
#
#   --down  only stops it (data and port kept): an outage that lasts until
#   --up    starts it again and waits until it accepts connections.
# Split, a test can keep traffic going for as long as the outage lasts.
set -euo pipefail
mode=restart
case "${1:-}" in
--down) mode=stop; shift ;;
--up) mode=start; shift ;;
esac
[ $# -eq 1 ] || { echo "usage: pg_restart.sh [--down|--up] DIR" >&2; exit 2; }
bindir="" runas="" base="" sockdir="" data="" watchdog=""
. "$1/state"
run_as() {
    if [ -z "$runas" ]; then "$@"
    elif command -v runuser >/dev/null; then runuser -u "$runas" -- "$@"
    else su -s /bin/bash "$runas" -c "$(printf '%q ' "$@")"; fi
}
case "$mode" in
stop) run_as "$bindir/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null ;;
*) run_as "$bindir/pg_ctl" -D "$data" -m fast -w -t 30 "$mode" -l "$base/server.log" >/dev/null ;;
esac
