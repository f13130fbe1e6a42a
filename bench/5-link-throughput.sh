#!/usr/bin/env bash
# Figure 5: link throughput without a PIN (create → scan → approve → complete
# over HTTP keep-alive, bench/linkload.c: 16 workers in one C process, bounded
# in count and time), once as it comes and once with GeoIP data so that the
# risk rules compare places (when the test GeoIP world can be built); then,
# with a PIN, the latency of unrelated GET /v1/session requests (wrk) while
# PIN approvals (Argon2id) run in parallel, against the same without
# (5-link-throughput.mjs).
#
# Prints: link throughput … links_per_s=… ; link target … ; link pin_effect … .
# Knobs: BENCH_LINKS (30000), BENCH_LINK_SECONDS (20), BENCH_LINK_ACCOUNTS (64),
# BENCH_LINK_WORKERS (16).
source "$(dirname "$0")/lib.sh"
bench_init link
build_linkload
if [ "${BENCH_QUICK:-0}" = 1 ]; then
    : "${BENCH_LINKS:=2000}" "${BENCH_LINK_SECONDS:=5}"
fi
LINKS="${BENCH_LINKS:-30000}"
SECS="${BENCH_LINK_SECONDS:-20}"
ACCOUNTS="${BENCH_LINK_ACCOUNTS:-64}"
WORKERS="${BENCH_LINK_WORKERS:-16}"

# throughput LABEL [server args…] -- [linkload args…]
throughput() {
    local label="$1"; shift
    local sargs=() largs=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do sargs+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    largs=("$@")
    start_linkward "$BENCH_TMP/$label" --credential-ttl 2h --max-companions 1000000 "${sargs[@]}"
    local load0; load0=$(cut -d' ' -f1 /proc/loadavg)
    local out
    out=$(timeout $((SECS + 120)) "$LINKLOAD" -p "$LW_PORT" -a "$ACCOUNTS" -w "$WORKERS" -n "$LINKS" -d "$SECS" \
        -P "$LW_PID" "${largs[@]}" 2>&1) || bench_log "$label: linkload: ${out:0:500}"
    local load1; load1=$(cut -d' ' -f1 /proc/loadavg)
    bench_stop "$LW_PID" 30
    local line; line=$(grep '^linkload ' <<<"$out" | head -1)
    [ -n "$line" ] || { bench_log "$label: no result from linkload"; return 1; }
    echo "link throughput pin=no $label ${line#linkload } loadavg_before=$load0 loadavg_after=$load1"
    local rate cpu loop
    rate=$(field links_per_s "$line"); cpu=$(field server_cpu_ms_per_link "$line"); loop=$(field loop_cpu_ms_per_link "$line")
    echo "link target $label links_per_s>=1000:$(awk -v r="$rate" 'BEGIN {print (r >= 1000) ? "met" : "MISSED"}')" \
        "(server CPU ${cpu} ms per link, event loop ${loop} ms: the loop alone bounds it at" \
        "$(awk -v l="$loop" 'BEGIN {if (l > 0) printf "%.0f", 1000 / l; else print "?"}') links/s)"
    [ "$(field errors "$line")" = 0 ]
}

ok=0
throughput plain || ok=1
# With places: the trusted "proxy" on loopback names a Lisbon companion and a
# Porto phone in the test GeoIP world (tests/tools/make_geoip.pl).
if perl -MMaxMind::DB::Writer::Tree -e1 2>/dev/null && perl "$REPO/tests/tools/make_geoip.pl" "$BENCH_TMP/geoip" >/dev/null 2>&1; then
    throughput geoip --geoip-dir "$BENCH_TMP/geoip" --trusted-proxies 127.0.0.1 -- -x 198.51.100.10 -X 198.51.100.70 || ok=1
else
    bench_log "no GeoIP test world (libmaxmind-db-writer-perl missing): the geoip round is skipped"
fi
node "$BENCH_DIR/5-link-throughput.mjs" &
bench_track $!
wait $! || ok=1
exit $ok
