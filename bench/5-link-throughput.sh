#!/usr/bin/env bash
# Figure 5: link throughput without a PIN (create → scan → approve → complete
# over HTTP keep-alive, concurrent workers in Node, bounded in count and time),
# and with a PIN the latency of unrelated GET /v1/session requests (wrk)
# while PIN approvals (Argon2id) run in parallel, against the same without.
#
# Prints: link throughput … links_per_s=… ; link pin_effect … ; targets.
source "$(dirname "$0")/lib.sh"
bench_init link
node "$BENCH_DIR/5-link-throughput.mjs" &
bench_track $!
wait $!
