#!/usr/bin/env bash
# Figure 7: figure 1 (authenticated GET /v1/session, wrk -t1 -c64) on
# PostgreSQL beside SQLite, in one run on the same machine, against
#   - sqlite: one node on its own SQLite file (figure 1's Linkward);
#   - postgres: one node on a private PostgreSQL;
#   - postgres_2nodes: two nodes sharing one PostgreSQL (same server.key, same
#     origin, as docs/operations.md sets them up), the load on node A only, the
#     device registered through node B. This is the case that matters: with a
#     shared store every check reads the session row (docs/architecture.md,
#     "Several nodes"), and B's relay is listening as in production.
# The two PostgreSQL targets use one server (schemas of their own), so they
# cost the machine the same; the three are measured in interleaved rounds
# (sqlite, postgres, postgres_2nodes, sqlite, …) so a burst of other load hits
# them alike; the median of the rounds is reported. Same wrk, connections,
# duration and request (bench/session.lua, one Authorization header).
#
# Prints:
#   session_check_pg TARGET rps=… p50_ms=… p99_ms=… (TARGET: sqlite, postgres, postgres_2nodes)
#   session_check_pg ratio postgres/sqlite=… postgres_2nodes/sqlite=…
#   session_check_pg target TARGET ratio>=0.80:… p99<5ms:… (TARGET: postgres, postgres_2nodes)
source "$(dirname "$0")/lib.sh"
bench_init session_check_pg

# --- A private PostgreSQL, stopped by lib.sh's EXIT trap after the nodes.
bench_start_pg
# One schema per PostgreSQL target: the single node must not see the pair's
# writes (nor share its relay channel's traffic).
psql "$PG_URL" -qc "CREATE SCHEMA single; CREATE SCHEMA pair" >/dev/null
db_in() { echo "$PG_URL&options=-csearch_path%3D$1"; }

# --- The nodes, each with a credential that outlives the run
start_linkward "$BENCH_TMP/sqlite" --credential-ttl 2h
SQ_URL=$LW_URL
bench_log "sqlite node on $SQ_URL (pid $LW_PID)"
start_linkward "$BENCH_TMP/pg" --db "$(db_in single)" --credential-ttl 2h
PG1_URL=$LW_URL
bench_log "postgres node on $PG1_URL (pid $LW_PID)"
start_linkward "$BENCH_TMP/pg-a" --db "$(db_in pair)" --credential-ttl 2h
PGA_URL=$LW_URL
# Node B: A's server.key (it keys the credential hashes: a token B issues must
# check on A) and A's origin.
mkdir -p "$BENCH_TMP/pg-b"
cp "$BENCH_TMP/pg-a/server.key" "$BENCH_TMP/pg-b/server.key"
start_linkward "$BENCH_TMP/pg-b" --db "$(db_in pair)" --credential-ttl 2h --public-origin "$PGA_URL"
PGB_URL=$LW_URL
bench_log "postgres pair: node A on $PGA_URL (load), node B on $PGB_URL (registration)"

TARGETS=(sqlite postgres postgres_2nodes)
declare -A URL TOKEN
URL[sqlite]="$SQ_URL/v1/session";             TOKEN[sqlite]=$(lwtool register "$SQ_URL")
URL[postgres]="$PG1_URL/v1/session";          TOKEN[postgres]=$(lwtool register "$PG1_URL")
URL[postgres_2nodes]="$PGA_URL/v1/session";   TOKEN[postgres_2nodes]=$(lwtool register "$PGB_URL")

# --- Each answers the authenticated check before anything is measured (for
# the pair: a device B registered, checked on A).
for t in "${TARGETS[@]}"; do
    lwtool check "${URL[$t]%/v1/session}" Authorization "Bearer ${TOKEN[$t]}" >/dev/null \
        || bench_die "$t does not answer the check"
done

# --- Warm-up (1 s each), then interleaved rounds.
for t in "${TARGETS[@]}"; do wrk_measure "${URL[$t]}" Authorization "Bearer ${TOKEN[$t]}" 1 >/dev/null; done
declare -A RPS P50 P99 BAD
for t in "${TARGETS[@]}"; do RPS[$t]=""; P50[$t]=""; P99[$t]=""; BAD[$t]=0; done
for r in $(seq "$BENCH_ROUNDS"); do
    for t in "${TARGETS[@]}"; do
        res=$(wrk_measure "${URL[$t]}" Authorization "Bearer ${TOKEN[$t]}")
        bench_log "round $r $t: $res"
        RPS[$t]+=" $(field rps "$res")"; P50[$t]+=" $(field p50_ms "$res")"; P99[$t]+=" $(field p99_ms "$res")"
        BAD[$t]=$(( BAD[$t] + $(field errors "$res") + $(field non2xx "$res") ))
    done
done

declare -A M MP99
for t in "${TARGETS[@]}"; do
    # shellcheck disable=SC2086
    M[$t]=$(median ${RPS[$t]})
    # shellcheck disable=SC2086
    MP99[$t]=$(median ${P99[$t]})
    # shellcheck disable=SC2086
    echo "session_check_pg $t rps=${M[$t]} p50_ms=$(median ${P50[$t]}) p99_ms=${MP99[$t]} errors=${BAD[$t]} rounds=$BENCH_ROUNDS wrk=-t$BENCH_THREADS/-c$BENCH_CONNS/-d${BENCH_WRK_SECONDS}s"
done
r1=$(ratio "${M[postgres]}" "${M[sqlite]}")
r2=$(ratio "${M[postgres_2nodes]}" "${M[sqlite]}")
echo "session_check_pg ratio postgres/sqlite=$r1 postgres_2nodes/sqlite=$r2"
ok() { awk -v a="$1" -v b="$2" -v op="$3" 'BEGIN {print ((op == ">=" ? a >= b : a < b) ? "met" : "MISSED")}'; }
echo "session_check_pg target postgres ratio>=0.80:$(ok "$r1" 0.80 '>=') p99<5ms:$(ok "${MP99[postgres]}" 5 '<')"
echo "session_check_pg target postgres_2nodes ratio>=0.80:$(ok "$r2" 0.80 '>=') p99<5ms:$(ok "${MP99[postgres_2nodes]}" 5 '<')"
[ "${BAD[sqlite]}" = 0 ] && [ "${BAD[postgres]}" = 0 ] && [ "${BAD[postgres_2nodes]}" = 0 ] \
    || bench_log "warning: some requests failed or were not 2xx (see errors=)"
