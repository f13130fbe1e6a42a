# Shared shell helpers of the benchmark scripts (sourced, not run).
#
# Every script: bench_init NAME at the top; it makes a private temp dir and an
# EXIT trap that stops every process the script started (by pid, TERM then
# KILL) and removes the temp dir. Only 127.0.0.1 (and 127.0.0.x as client
# source addresses) is ever used.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$BENCH_DIR/.." && pwd)"
LINKWARD="${LINKWARD_BIN:-$REPO/build/linkward}"
export LINKWARD_BIN="$LINKWARD"
# Durations, overridable for a quick check (BENCH_QUICK=1 shortens them all).
if [ "${BENCH_QUICK:-0}" = 1 ]; then
    : "${BENCH_WRK_SECONDS:=2}" "${BENCH_ROUNDS:=1}"
fi
BENCH_WRK_SECONDS="${BENCH_WRK_SECONDS:-5}"   # one wrk measurement
BENCH_ROUNDS="${BENCH_ROUNDS:-3}"             # interleaved rounds per target; the median is reported
BENCH_CONNS="${BENCH_CONNS:-64}"              # wrk -c
BENCH_THREADS="${BENCH_THREADS:-1}"           # wrk -t

BENCH_PIDS=()
BENCH_TMP=""
BENCH_PGDIR=""   # a private PostgreSQL started by bench_start_pg, stopped after the processes

bench_log() { echo "[$BENCH_NAME] $*" >&2; }
bench_die() { echo "[$BENCH_NAME] error: $*" >&2; exit 1; }

bench_cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local p
    for p in "${BENCH_PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${BENCH_PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    # PostgreSQL last: the nodes above held connections to it.
    if [ -n "$BENCH_PGDIR" ]; then
        bash "$REPO/tests/tools/pg_stop.sh" "$BENCH_PGDIR" >/dev/null 2>&1 || true
    fi
    if [ -n "$BENCH_TMP" ] && [ -d "$BENCH_TMP" ] && [ -z "${BENCH_KEEP_TMP:-}" ]; then
        rm -rf "$BENCH_TMP"
    fi
    exit "$rc"
}

# bench_start_pg: a private PostgreSQL (tests/tools/pg_start.sh: loopback,
# trust, no fsync) in the temp dir; sets PG_URL. The EXIT trap stops it after
# every tracked process, then removes it with the temp dir.
bench_start_pg() {
    BENCH_PGDIR="$BENCH_TMP/postgres"
    bash "$REPO/tests/tools/pg_start.sh" "$BENCH_PGDIR" >&2 || bench_die "PostgreSQL did not start (bench/deps installs it)"
    PG_URL=$(cat "$BENCH_PGDIR/url")
}

bench_init() {
    BENCH_NAME="$1"
    BENCH_TMP="$(mktemp -d "${TMPDIR:-/tmp}/lw-bench-$BENCH_NAME.XXXXXX")"
    chmod 755 "$BENCH_TMP"
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
    [ -x "$LINKWARD" ] || bench_die "no server binary at $LINKWARD (make build)"
    # A private copy of the binary: a rebuild of build/ during the run must not
    # pull it from under us (or swap versions between two measurements).
    local i
    for i in $(seq 30); do
        if cp "$LINKWARD" "$BENCH_TMP/linkward.tmp" 2>/dev/null && chmod 755 "$BENCH_TMP/linkward.tmp" \
            && "$BENCH_TMP/linkward.tmp" --version >/dev/null 2>&1; then
            mv "$BENCH_TMP/linkward.tmp" "$BENCH_TMP/linkward"
            break
        fi
        sleep 2
    done
    [ -x "$BENCH_TMP/linkward" ] || bench_die "cannot copy a working $LINKWARD"
    LINKWARD="$BENCH_TMP/linkward"
    export LINKWARD_BIN="$LINKWARD"
    # Server options of every benchmark, each only when the binary has it:
    # - the per-address/per-account rate limits are an operator policy, not a
    #   capacity: the benchmarks measure the server with them off (--rate off);
    # - the Node clients create links from one address (127.0.0.1), many at a
    #   time: --max-pending-links-per-ip is raised (the other per-address caps
    #   keep their defaults: the socket tools spread over 127.0.0.2-250);
    # - these machines run everything as root: --allow-root when root.
    LW_EXTRA_ARGS=()
    local help; help=$("$LINKWARD" serve --help 2>&1 || true)
    grep -q -- '--rate ' <<<"$help" && LW_EXTRA_ARGS+=(--rate off)
    grep -q -- '--max-pending-links-per-ip' <<<"$help" && LW_EXTRA_ARGS+=(--max-pending-links-per-ip 1000000)
    if [ "$(id -u)" -eq 0 ] && grep -q -- '--allow-root' <<<"$help"; then LW_EXTRA_ARGS+=(--allow-root); fi
    export BENCH_LW_ARGS="${LW_EXTRA_ARGS[*]}"
    # As many descriptors as allowed: the server and the load tools inherit it.
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}

bench_track() { BENCH_PIDS+=("$1"); }

# Stops one process we started: TERM, bounded wait, then KILL.
bench_stop() {
    local p="$1" t="${2:-10}"
    kill -TERM "$p" 2>/dev/null || return 0
    local i
    for i in $(seq $((t * 10))); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    local keep=() q
    for q in "${BENCH_PIDS[@]}"; do [ "$q" = "$p" ] || keep+=("$q"); done
    BENCH_PIDS=("${keep[@]}")
}

# A free TCP port on 127.0.0.1.
free_port() {
    node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

# Waits (bounded) until something accepts on 127.0.0.1:PORT.
wait_port() {
    local port="$1" t="${2:-20}" i
    for i in $(seq $((t * 20))); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    return 1
}

now_ms() { date +%s%3N; }

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# start_linkward DATADIR [ARGS…]: starts the server on a free port; sets LW_PID,
# LW_PORT, LW_URL, LW_START_MS (spawn to the "listening" line), LW_T0_NS (the
# spawn, date +%s%N). Bounded: 120 s.
start_linkward() {
    local dir="$1"; shift
    mkdir -p "$dir"
    local out="$dir/stdout.log"
    : >"$out"
    local t0; t0=$(date +%s%N)
    LW_T0_NS=$t0
    "$LINKWARD" serve --listen 127.0.0.1:0 --data-dir "$dir" "${LW_EXTRA_ARGS[@]}" "$@" >"$out" 2>>"$dir/stderr.log" &
    LW_PID=$!
    bench_track "$LW_PID"
    local i line=""
    for i in $(seq 12000); do
        line=$(grep -m1 '^linkward listening on ' "$out" 2>/dev/null || true)
        [ -n "$line" ] && break
        kill -0 "$LW_PID" 2>/dev/null || bench_die "linkward exited before listening: $(tail -5 "$dir/stderr.log")"
        sleep 0.01
    done
    [ -n "$line" ] || bench_die "linkward did not print its listening line in 120 s"
    LW_START_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
    LW_URL="${line#linkward listening on }"
    LW_PORT="${LW_URL##*:}"
}

# wrk_measure URL HEADER_NAME HEADER_VALUE [SECONDS]: one wrk run through
# bench/session.lua; prints "rps=… p50_ms=… p99_ms=… requests=… errors=…".
wrk_measure() {
    local url="$1" hn="$2" hv="$3" secs="${4:-$BENCH_WRK_SECONDS}"
    local out
    out=$(BENCH_HDR_NAME="$hn" BENCH_HDR_VALUE="$hv" timeout $((secs + 30)) \
        wrk -t"$BENCH_THREADS" -c"$BENCH_CONNS" -d"${secs}s" --timeout 5s -s "$BENCH_DIR/session.lua" "$url" 2>&1) \
        || bench_die "wrk failed on $url: $out"
    local res; res=$(grep '^wrk_result ' <<<"$out" | head -1)
    [ -n "$res" ] || bench_die "wrk printed no result for $url: $out"
    echo "${res#wrk_result }"
}

# field NAME "k=v k=v…": the value of k=NAME.
field() { tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1 == k {print $2; exit}'; }

# median of numbers given as arguments
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# ratio A B with 3 decimals
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.3f", a / b; else print "nan"}'; }

# Node helper (bench/tool.mjs), which reuses the integration-test harness.
lwtool() { node "$BENCH_DIR/tool.mjs" "$@"; }

# Compiles bench/linkload.c (needs libsodium) once per source change into
# bench/.build/linkload; sets LINKLOAD.
build_linkload() {
    mkdir -p "$BENCH_DIR/.build"
    local bin="$BENCH_DIR/.build/linkload"
    # The signed messages come from src/common/proof.c (with crypto.c and lw.c
    # under it), so the tool signs the bytes the server checks.
    local common="$REPO/src/common"
    local srcs=("$BENCH_DIR/linkload.c" "$common/proof.c" "$common/crypto.c" "$common/lw.c")
    local stale=0 s
    [ -x "$bin" ] || stale=1
    for s in "${srcs[@]}" "$common/proof.h"; do
        if [ "$s" -nt "$bin" ]; then stale=1; fi
    done
    if [ "$stale" = 1 ]; then
        cc -O2 -Wall -I"$common" -o "$bin.tmp" "${srcs[@]}" -lsodium && mv "$bin.tmp" "$bin"
    fi
    LINKLOAD="$bin"
}

# Compiles bench/wsload.c once per source change into bench/.build/wsload.
build_wsload() {
    mkdir -p "$BENCH_DIR/.build"
    local bin="$BENCH_DIR/.build/wsload"
    if [ ! -x "$bin" ] || [ "$BENCH_DIR/wsload.c" -nt "$bin" ]; then
        cc -O2 -Wall -o "$bin.tmp" "$BENCH_DIR/wsload.c" && mv "$bin.tmp" "$bin"
    fi
    WSLOAD="$bin"
}
