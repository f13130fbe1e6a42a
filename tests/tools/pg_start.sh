#!/usr/bin/env bash
# pg_start.sh — starts a throwaway PostgreSQL server for the store tests.
#
#   tests/tools/pg_start.sh [--watch-parent] DIR
#
# initdb in a fresh data directory under DIR, trust authentication (for local
# test use only: it listens on 127.0.0.1 and on a Unix socket in its own
# directory, nowhere else), a free loopback port, no fsync. When it returns 0
# the server accepts connections and DIR/url holds its URL, which the tests
# read through LINKWARD_TEST_PG=DIR/url. tests/tools/pg_stop.sh DIR stops it
# and removes everything.
#
# PostgreSQL refuses to run as root; as root (CI) the server runs as the
# `postgres` user the Debian package creates, or as `nobody`.
#
# --watch-parent (how CTest runs it): a small watchdog stops the server when
# the process that started this script exits, so an interrupted or crashed
# test run never leaves a server behind. Without it (by hand) the server stays
# up until pg_stop.sh.
#
# LW_PG_BINDIR overrides where initdb/pg_ctl/pg_isready are looked for.
set -euo pipefail

watch=0
if [ "${1:-}" = --watch-parent ]; then
    watch=1
    shift
fi
[ $# -eq 1 ] || { echo "usage: pg_start.sh [--watch-parent] DIR" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
dir=$(cd "$1" && pwd)
parent=$PPID
READY_TIMEOUT_S=30

# Leftovers of a run that was killed: stop and remove them first.
bash "$here/pg_stop.sh" "$dir" >/dev/null 2>&1 || true

bindir=${LW_PG_BINDIR:-}
if [ -z "$bindir" ]; then
    # The newest installed major version (directory names are plain version numbers).
    while read -r d; do
        if [ -x "$d/pg_ctl" ]; then bindir=$d; break; fi
    done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r)
fi
if [ -z "$bindir" ] && command -v pg_ctl >/dev/null; then bindir=$(dirname "$(command -v pg_ctl)"); fi
for tool in initdb pg_ctl pg_isready; do
    [ -x "$bindir/$tool" ] || {
        echo "pg_start: $tool not found (install the postgresql package, or set LW_PG_BINDIR)" >&2
        exit 1
    }
done

runas=""
if [ "$(id -u)" -eq 0 ]; then
    for u in postgres nobody; do
        if id -u "$u" >/dev/null 2>&1; then runas=$u; break; fi
    done
    if [ -z "$runas" ]; then
        echo "pg_start: running as root and no unprivileged user to run PostgreSQL as" >&2
        exit 1
    fi
fi

# Runs a command as the server's user (or as ourselves when not root).
run_as() {
    if [ -z "$runas" ]; then
        "$@"
    elif command -v runuser >/dev/null; then
        runuser -u "$runas" -- "$@"
    else
        su -s /bin/bash "$runas" -c "$(printf '%q ' "$@")"
    fi
}

# Everything the server writes lives in $base; the user it runs as must be
# able to reach it. A build dir under a private home (/root is 0700) is not
# reachable, and a Unix socket path must stay under ~100 bytes: fall back to
# a private directory in /tmp for either.
base="$dir/run"
mkdir -p "$base"
[ -z "$runas" ] || chown "$runas" "$base"
chmod 700 "$base"
if ! run_as test -w "$base"; then
    rm -rf "$base"
    base=$(mktemp -d /tmp/lw-pg.XXXXXX)
    [ -z "$runas" ] || chown "$runas" "$base"
fi
sockdir="$base"
if [ $((${#sockdir} + 20)) -ge 100 ]; then
    sockdir=$(mktemp -d /tmp/lw-pgs.XXXXXX)
    [ -z "$runas" ] || chown "$runas" "$sockdir"
fi
data="$base/data"
log="$base/server.log"

# What pg_stop.sh needs; written before anything starts so that a failure from
# here on is cleaned up by the same script.
write_state() {
    {
        printf 'bindir=%q\n' "$bindir"
        printf 'runas=%q\n' "$runas"
        printf 'base=%q\n' "$base"
        printf 'sockdir=%q\n' "$sockdir"
        printf 'data=%q\n' "$data"
        printf 'watchdog=%q\n' "${watchdog:-}"
    } >"$dir/state.tmp"
    mv "$dir/state.tmp" "$dir/state"
}
write_state

fail() {
    echo "pg_start: $*" >&2
    [ -f "$log" ] && tail -n 20 "$log" >&2
    bash "$here/pg_stop.sh" "$dir" >/dev/null 2>&1 || true
    exit 1
}

run_as "$bindir/initdb" -D "$data" -U linkward -A trust -E UTF8 --locale=C --no-sync \
    >"$base/initdb.log" 2>&1 || { cat "$base/initdb.log" >&2; fail "initdb failed"; }

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A random free port; if another process takes it before the server binds,
# the start fails and the next candidate is tried.
started=0
for _ in 1 2 3 4 5; do
    port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    port_in_use "$port" && continue
    # Settings go in the config file, not on a command line, so paths with
    # spaces need no quoting through pg_ctl's shell.
    cat >"$data/postgresql.auto.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$sockdir'
# each node: 4 store connections and 2 for the relay; a test file keeps its
# nodes until it ends, and several run side by side
max_connections = 400
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    chown "${runas:-$(id -un)}" "$data/postgresql.auto.conf" 2>/dev/null || true
    if run_as "$bindir/pg_ctl" -D "$data" -l "$log" -w -t "$READY_TIMEOUT_S" start >/dev/null 2>&1; then
        started=1
        break
    fi
done
[ "$started" = 1 ] || fail "the server did not start"

ready=0
for _ in $(seq 1 $((READY_TIMEOUT_S * 10))); do
    if "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -d postgres -U linkward; then
        ready=1
        break
    fi
    sleep 0.1
done
[ "$ready" = 1 ] || fail "the server was not ready within ${READY_TIMEOUT_S}s"

if [ "$watch" = 1 ]; then
    # Detached and with no inherited output, so CTest does not wait on it.
    # shellcheck disable=SC2016 # expanded by the inner bash, from its arguments
    setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec bash "$2" "$3"' \
        _ "$parent" "$here/pg_stop.sh" "$dir" </dev/null >/dev/null 2>&1 &
    watchdog=$!
    write_state
fi

url="postgresql://linkward@127.0.0.1:$port/postgres?sslmode=disable&gssencmode=disable"
printf '%s\n' "$url" >"$dir/url.tmp"
mv "$dir/url.tmp" "$dir/url"
echo "pg_start: PostgreSQL $("$bindir/pg_ctl" --version | awk '{print $3}') on 127.0.0.1:$port (data in $data)"
