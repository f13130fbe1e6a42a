#!/usr/bin/env bash
# Figure 1: authenticated GET /v1/session — requests/s and p50/p99 latency with
# wrk -c64, side by side in one run against
#   - nginx answering a fixed 204 (the HTTP ceiling), worker_processes 1: one
#     event loop, like Linkward's, so the comparison is loop against loop;
#   - the Node.js baseline (bench/node-baseline.mjs: express + express-session
#     + connect-redis on a redis-server of its own), one process.
# The three targets are measured in interleaved rounds (L, N, node, L, N, node…)
# so that a burst of other load on the machine hits them alike; the median of
# the rounds is reported. Same wrk, same connections, same duration, the same
# Authorization header sent to nginx too (same request size).
#
# Prints:
#   session_check TARGET rps=… p50_ms=… p99_ms=… (TARGET: linkward, nginx, node)
#   session_check ratio linkward/nginx=… linkward/node=…
#   session_check target rps_vs_nginx>=0.80:… rps_vs_node>=30:… p99<2ms:…
source "$(dirname "$0")/lib.sh"
bench_init session_check

# --- Linkward, with a credential that outlives the run
start_linkward "$BENCH_TMP/lw" --credential-ttl 2h
TOKEN=$(lwtool register "$LW_URL")
bench_log "linkward on $LW_URL (pid $LW_PID)"

# --- nginx: a fixed 204, config in the temp dir, not daemonised
NGX_DIR="$BENCH_TMP/nginx"; mkdir -p "$NGX_DIR/tmp"
NGX_PORT=$(free_port)
USER_LINE=""
[ "$(id -u)" -eq 0 ] && USER_LINE="user nobody nogroup;"
cat >"$NGX_DIR/nginx.conf" <<EOF
$USER_LINE
worker_processes 1;
daemon off;
master_process on;
pid $NGX_DIR/nginx.pid;
error_log $NGX_DIR/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 65s;
    client_body_temp_path $NGX_DIR/tmp/body;
    proxy_temp_path $NGX_DIR/tmp/proxy;
    fastcgi_temp_path $NGX_DIR/tmp/fastcgi;
    uwsgi_temp_path $NGX_DIR/tmp/uwsgi;
    scgi_temp_path $NGX_DIR/tmp/scgi;
    server {
        listen 127.0.0.1:$NGX_PORT;
        location / { return 204; }
    }
}
EOF
nginx -e "$NGX_DIR/error.log" -p "$NGX_DIR" -c "$NGX_DIR/nginx.conf" 2>>"$NGX_DIR/error.log" &
bench_track $!
wait_port "$NGX_PORT" || bench_die "nginx did not start: $(tail -5 "$NGX_DIR/error.log")"

# --- Redis and the Node baseline
RDS_DIR="$BENCH_TMP/redis"; mkdir -p "$RDS_DIR"
RDS_PORT=$(free_port)
redis-server --bind 127.0.0.1 --port "$RDS_PORT" --dir "$RDS_DIR" --save '' --appendonly no \
    --daemonize no --protected-mode yes --logfile "$RDS_DIR/redis.log" &
bench_track $!
wait_port "$RDS_PORT" || bench_die "redis-server did not start: $(tail -5 "$RDS_DIR/redis.log")"
NODE_PORT=$(free_port)
node "$BENCH_DIR/node-baseline.mjs" "$NODE_PORT" "$RDS_PORT" >"$BENCH_TMP/node.log" 2>&1 &
bench_track $!
wait_port "$NODE_PORT" || bench_die "the Node baseline did not start: $(cat "$BENCH_TMP/node.log")"
COOKIE=$(lwtool node-login "http://127.0.0.1:$NODE_PORT")

# --- Each answers the authenticated check before anything is measured.
TARGETS=(linkward nginx node)
declare -A URL HN HV
URL[linkward]="$LW_URL/v1/session";             HN[linkward]=Authorization; HV[linkward]="Bearer $TOKEN"
URL[nginx]="http://127.0.0.1:$NGX_PORT/v1/session"; HN[nginx]=Authorization; HV[nginx]="Bearer $TOKEN"
URL[node]="http://127.0.0.1:$NODE_PORT/v1/session"; HN[node]=Cookie;        HV[node]="$COOKIE"
for t in "${TARGETS[@]}"; do
    lwtool check "${URL[$t]%/v1/session}" "${HN[$t]}" "${HV[$t]}" >/dev/null || bench_die "$t does not answer the check"
done

# --- Warm-up (1 s each), then interleaved rounds.
for t in "${TARGETS[@]}"; do wrk_measure "${URL[$t]}" "${HN[$t]}" "${HV[$t]}" 1 >/dev/null; done
declare -A RPS P50 P99 BAD
for t in "${TARGETS[@]}"; do RPS[$t]=""; P50[$t]=""; P99[$t]=""; BAD[$t]=0; done
for r in $(seq "$BENCH_ROUNDS"); do
    for t in "${TARGETS[@]}"; do
        res=$(wrk_measure "${URL[$t]}" "${HN[$t]}" "${HV[$t]}")
        bench_log "round $r $t: $res"
        RPS[$t]+=" $(field rps "$res")"; P50[$t]+=" $(field p50_ms "$res")"; P99[$t]+=" $(field p99_ms "$res")"
        BAD[$t]=$(( BAD[$t] + $(field errors "$res") + $(field non2xx "$res") ))
    done
done

declare -A M
for t in "${TARGETS[@]}"; do
    # shellcheck disable=SC2086
    M[$t]=$(median ${RPS[$t]})
    # shellcheck disable=SC2086
    echo "session_check $t rps=${M[$t]} p50_ms=$(median ${P50[$t]}) p99_ms=$(median ${P99[$t]}) errors=${BAD[$t]} rounds=$BENCH_ROUNDS wrk=-t$BENCH_THREADS/-c$BENCH_CONNS/-d${BENCH_WRK_SECONDS}s"
done
rn=$(ratio "${M[linkward]}" "${M[nginx]}")
rj=$(ratio "${M[linkward]}" "${M[node]}")
echo "session_check ratio linkward/nginx=$rn linkward/node=$rj"
# shellcheck disable=SC2086
p99=$(median ${P99[linkward]})
ok() { awk -v a="$1" -v b="$2" -v op="$3" 'BEGIN {print ((op == ">=" ? a >= b : a < b) ? "met" : "MISSED")}'; }
echo "session_check target rps_vs_nginx>=0.80:$(ok "$rn" 0.80 '>=') rps_vs_node>=30:$(ok "$rj" 30 '>=') p99<2ms:$(ok "$p99" 2 '<')"
[ "${BAD[linkward]}" = 0 ] && [ "${BAD[nginx]}" = 0 ] && [ "${BAD[node]}" = 0 ] \
    || bench_log "warning: some requests failed or were not 2xx (see errors=)"
