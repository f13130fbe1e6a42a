#!/usr/bin/env bash
# Figure 6: logout-all across nodes. Two nodes share one PostgreSQL (a private
# server started here with tests/tools/pg_start.sh); the companions' sockets
# are on node A, the phone calls logout-all on node B; the time from B's
# answer until every socket on A has received session.ended (and been
# closed), p50/p99 over many runs, with 4 and with 100 companions.
#
# Prints: cross_node companions=N runs=… ended_p50_ms=… ended_p99_ms=… closed_p99_ms=…
source "$(dirname "$0")/lib.sh"
bench_init cross_node
build_wsload
export WSLOAD
# A private PostgreSQL; lib.sh's EXIT trap stops the nodes, then it, even
# when the run fails or is interrupted.
bench_start_pg
export LW_BENCH_PG_URL="$PG_URL"
node "$BENCH_DIR/6-cross-node-logout.mjs" &
bench_track $!
wait $!
