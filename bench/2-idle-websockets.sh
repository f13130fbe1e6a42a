#!/usr/bin/env bash
# Figure 2: concurrent idle authenticated WebSockets. Builds bench/wsload.c,
# raises the descriptor limit to the hard limit (20,000 on these machines), and
# runs 2-idle-websockets.mjs: open 15,000 sockets of 15,000 devices (10,000 if 15,000
# fails), server RSS growth per socket, and whether one account-wide push still
# reaches every socket.
#
# Prints: idle_ws conns=N opened=… bytes_per_conn=… push_all=yes|no …
source "$(dirname "$0")/lib.sh"
bench_init idle_ws
build_wsload
export WSLOAD
bench_log "descriptors: soft $(ulimit -n), hard $(ulimit -Hn)"
node "$BENCH_DIR/2-idle-websockets.mjs" &
bench_track $!
wait $!
