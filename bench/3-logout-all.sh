#!/usr/bin/env bash
# Figure 3: logout-all propagation. Builds wsload and runs 3-logout-all.mjs:
# with 4 and with 1,000 companions on one account, each holding a socket, the
# time from the answer of POST /v1/devices/logout-all until every companion
# socket has received session.ended (and until the server has closed every
# one), p50/p99 over many runs (50 with 4; as many as fit the time budget,
# at most 50, with 1,000).
#
# Prints: logout_all companions=N runs=… ended_p50_ms=… ended_p99_ms=… closed_p50_ms=… closed_p99_ms=…
source "$(dirname "$0")/lib.sh"
bench_init logout_all
build_wsload
export WSLOAD
node "$BENCH_DIR/3-logout-all.mjs" &
bench_track $!
wait $!
