#!/usr/bin/env bash
# Where the server's time goes, for docs/benchmarks.md. Two scenarios:
#   session_check  wrk -c64 on GET /v1/session with a valid credential;
#   link           bench/linkload.c (16 workers, 8 accounts) looping create →
#                  scan → approve → complete: BENCH_PROFILE_LINKS links (1000;
#                  a fixed count, since a link costs more as accounts grow).
# Profilers:
#   - perf record (hardware cycles when `perf stat -e instructions true` works,
#     else the cpu-clock software event, which works in these VMs), on the
#     running server, kernel included: --sort dso,sym;
#   - valgrind --tool=callgrind: user-space instructions of the server run
#     under valgrind for a short load (exact counts, insensitive to the noise
#     of other processes; kernel time not seen).
#   - valgrind --tool=massif on the server holding idle WebSockets: heap
#     snapshots (vgdb detailed_snapshot) before and after wsload opens 300
#     sockets of 300 devices; the growth per socket by allocation site.
# Prints the top functions as lines "profile TOOL SCENARIO self=P% SYMBOL [DSO]";
# full reports go to bench/results/ (BENCH_RESULTS to change).
source "$(dirname "$0")/lib.sh"
bench_init profile
RESULTS="${BENCH_RESULTS:-$BENCH_DIR/results}"
mkdir -p "$RESULTS"
SECS=$([ "${BENCH_QUICK:-0}" = 1 ] && echo 3 || echo 8)
build_linkload
TOP="${BENCH_PROFILE_TOP:-15}"

if command -v perf >/dev/null; then
    if perf stat -e instructions true 2>&1 | grep -q 'not supported\|not counted'; then
        PERF_EVENT=cpu-clock
    else
        PERF_EVENT=cycles
    fi
fi

# load SCENARIO URL TOKEN SECONDS [LINKS]: runs the load in the background;
# sets LOAD_PID.
load() {
    case "$1" in
    session_check)
        BENCH_HDR_NAME=Authorization BENCH_HDR_VALUE="Bearer $3" \
            wrk -t1 -c64 -d"${4}s" --timeout 5s -s "$BENCH_DIR/session.lua" "$2/v1/session" >"$BENCH_TMP/load.out" 2>&1 &
        ;;
    link)
        "$LINKLOAD" -p "${2##*:}" -a 8 -w 16 -n "${5:-1000000}" -d "$4" -t 300 \
            >"$BENCH_TMP/load.out" 2>&1 &
        ;;
    esac
    LOAD_PID=$!
    bench_track "$LOAD_PID"
}

perf_profile() {
    local sc="$1"
    start_linkward "$BENCH_TMP/perf-$sc" --credential-ttl 2h --max-companions 1000000
    local token; token=$(lwtool register "$LW_URL")
    load "$sc" "$LW_URL" "$token" $((SECS + 2))
    sleep 1
    perf record -e "$PERF_EVENT" -F 999 -g -p "$LW_PID" -o "$BENCH_TMP/perf-$sc.data" -- sleep "$SECS" \
        >"$BENCH_TMP/perf-$sc.log" 2>&1 || { bench_log "perf record failed: $(tail -3 "$BENCH_TMP/perf-$sc.log")"; return 0; }
    wait "$LOAD_PID" 2>/dev/null || true
    bench_stop "$LW_PID" 30
    perf report -i "$BENCH_TMP/perf-$sc.data" --stdio --no-children --sort dso,sym -g none --percent-limit 0.5 \
        2>/dev/null >"$RESULTS/perf-$sc.txt" || true
    perf report -i "$BENCH_TMP/perf-$sc.data" --stdio --no-children --sort dso -g none 2>/dev/null \
        >"$RESULTS/perf-$sc-dso.txt" || true
    awk -v sc="$sc" -v ev="$PERF_EVENT" '/^#/ || NF < 3 {next} $1 ~ /%$/ {
            pct = $1; dso = $2; $1 = ""; $2 = ""; $3 = ""; sub(/^ +/, "");
            printf "profile perf(%s) %s self=%s %s [%s]\n", ev, sc, pct, $0, dso }' \
        "$RESULTS/perf-$sc.txt" | head -n "$TOP" || true
    awk -v sc="$sc" -v ev="$PERF_EVENT" '/^#/ || NF < 2 {next} $1 ~ /%$/ {printf "profile perf(%s) %s dso self=%s %s\n", ev, sc, $1, $2}' \
        "$RESULTS/perf-$sc-dso.txt" | head -n 8 || true
}

callgrind_profile() {
    local sc="$1" dir="$BENCH_TMP/cg-$sc"
    mkdir -p "$dir"
    # The listening line can take a few seconds under valgrind.
    local out="$dir/cg.out"
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" \
        "$LINKWARD" serve --listen 127.0.0.1:0 --data-dir "$dir" "${LW_EXTRA_ARGS[@]}" \
        --credential-ttl 2h --max-companions 1000000 >"$dir/stdout.log" 2>"$dir/stderr.log" &
    local pid=$!
    bench_track "$pid"
    local i line=""
    for i in $(seq 600); do
        line=$(grep -m1 '^linkward listening on ' "$dir/stdout.log" 2>/dev/null || true)
        [ -n "$line" ] && break
        kill -0 "$pid" 2>/dev/null || { bench_log "server under valgrind exited: $(tail -3 "$dir/stderr.log")"; return 0; }
        sleep 0.1
    done
    [ -n "$line" ] || { bench_log "no listening line under valgrind"; bench_stop "$pid"; return 0; }
    local url="${line#linkward listening on }"
    local token; token=$(lwtool register "$url")
    # Instrumentation on only now: start-up and the setup are not in the profile.
    callgrind_control -i on "$pid" >/dev/null 2>&1 || bench_log "callgrind_control -i on failed"
    # Links: a fixed count however slow the server runs under valgrind.
    if [ "$sc" = link ]; then load "$sc" "$url" "$token" 900 "${BENCH_PROFILE_LINKS:-1000}"; else load "$sc" "$url" "$token" $((SECS * 2)); fi
    wait "$LOAD_PID" 2>/dev/null || true
    grep -h '^wrk_result\|^linkload\|^[0-9]' "$BENCH_TMP/load.out" | sed "s/^/[profile] callgrind $sc load: /" >&2 || true
    bench_stop "$pid" 60
    local f; f=$(ls "$out"* 2>/dev/null | tail -1)
    [ -n "$f" ] || { bench_log "no callgrind output"; return 0; }
    cp "$f" "$RESULTS/callgrind-$sc.out"   # for callgrind_annotate --tree=caller|calling
    callgrind_annotate --inclusive=no "$f" 2>/dev/null >"$RESULTS/callgrind-$sc.txt" || true
    callgrind_annotate --inclusive=yes "$f" 2>/dev/null >"$RESULTS/callgrind-$sc-inclusive.txt" || true
    # Lines: "  1,234,567 (12.34%)  file:function [object]"; the totals first.
    local total; total=$(awk '/PROGRAM TOTALS/ {gsub(/,/, "", $1); print $1; exit}' "$RESULTS/callgrind-$sc.txt")
    local reqs; reqs=$(grep -ho 'requests=[0-9]*\|^linkload links=[0-9]*' "$BENCH_TMP/load.out" | cut -d= -f2 || true)
    [ -z "$reqs" ] && reqs=$(grep -hx '[0-9]*' "$BENCH_TMP/load.out" | head -1 || true)
    echo "profile callgrind $sc total_instructions=$total operations=${reqs:-?} instructions_per_operation=$(awk -v t="$total" -v n="${reqs:-0}" 'BEGIN {if (n > 0) printf "%.0f", t / n; else print "?"}')"
    callgrind_lines() {
        sed 's/( */(/' | awk -v sc="$sc" -v kind="$1" '/^ *[0-9,]+ \([0-9.]+%\)/ && !/PROGRAM TOTALS/ {
                pct = $2; gsub(/[()]/, "", pct); $1 = ""; $2 = ""; sub(/^ +/, "");
                sub(/^[^ ]*:/, "");   # drop the source file
                sub(/\[.*\//, "[");  # base name of the object
                printf "profile callgrind %s %s=%s %s\n", sc, kind, pct, $0 }'
    }
    callgrind_lines self <"$RESULTS/callgrind-$sc.txt" | head -n "$TOP" || true
    # Inclusive: the named functions below the request dispatch (not the event loop frames).
    callgrind_lines inclusive <"$RESULTS/callgrind-$sc-inclusive.txt" \
        | grep -v ' 0x[0-9a-f]*\|(below main)\| main \|lw_serve_main\|h2o_evloop_run' | head -n $((TOP + 10)) || true
}

massif_idle_ws() {
    local dir="$BENCH_TMP/massif" n="${BENCH_MASSIF_SOCKETS:-300}"
    mkdir -p "$dir"
    build_wsload
    valgrind --tool=massif --vgdb=yes --massif-out-file="$dir/massif.out" \
        "$LINKWARD" serve --listen 127.0.0.1:0 --data-dir "$dir" "${LW_EXTRA_ARGS[@]}" \
        --credential-ttl 2h --max-companions $((n + 10)) --sweep-interval 1h >"$dir/stdout.log" 2>"$dir/stderr.log" &
    local pid=$!
    bench_track "$pid"
    local i line=""
    for i in $(seq 600); do
        line=$(grep -m1 '^linkward listening on ' "$dir/stdout.log" 2>/dev/null || true)
        [ -n "$line" ] && break
        kill -0 "$pid" 2>/dev/null || { bench_log "server under massif exited: $(tail -3 "$dir/stderr.log")"; return 0; }
        sleep 0.1
    done
    [ -n "$line" ] || { bench_log "no listening line under massif"; bench_stop "$pid"; return 0; }
    local url="${line#linkward listening on }"
    lwtool link-tokens "$url" "$n" "$dir/tokens" >/dev/null || { bench_log "linking under massif failed"; bench_stop "$pid"; return 0; }
    timeout 60 vgdb --pid="$pid" detailed_snapshot "$dir/before.ms" >/dev/null 2>&1
    "$WSLOAD" -p "${url##*:}" -n "$n" -t "$dir/tokens" -s 127.0.0.2-127.0.0.250 -o 120 -w 90 \
        </dev/null >"$dir/wsload.out" 2>&1 &
    local wl=$!
    bench_track "$wl"
    for i in $(seq 1200); do grep -q '^ready' "$dir/wsload.out" && break; sleep 0.1; done
    sleep 1
    timeout 60 vgdb --pid="$pid" detailed_snapshot "$dir/after.ms" >/dev/null 2>&1
    local opened; opened=$(sed -n 's/^ready opened=\([0-9]*\).*/\1/p' "$dir/wsload.out")
    bench_stop "$wl"
    bench_stop "$pid" 60
    if [ -s "$dir/before.ms" ] && [ -s "$dir/after.ms" ] && [ "${opened:-0}" -gt 0 ]; then
        cp "$dir/before.ms" "$RESULTS/massif-idle_ws-before.ms"; cp "$dir/after.ms" "$RESULTS/massif-idle_ws-after.ms"
        node "$BENCH_DIR/massif-sites.mjs" "$dir/before.ms" "$dir/after.ms" "$opened"
    else
        bench_log "massif: no snapshots (opened=${opened:-0})"
    fi
}

if command -v valgrind >/dev/null && command -v vgdb >/dev/null && command -v ms_print >/dev/null; then massif_idle_ws; fi
for sc in session_check link; do
    if [ -n "${PERF_EVENT:-}" ]; then perf_profile "$sc"; fi
    if command -v valgrind >/dev/null; then callgrind_profile "$sc"; fi
done
