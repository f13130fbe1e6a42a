#!/usr/bin/env bash
# Figure 4: the store at 1,000,000 sessions.
#
#  1. A server starts once on an empty data dir (so it creates its schema), a
#     primary registers over HTTP (credential TTL 2 h), the server stops.
#  2. The sqlite3 shell bulk-inserts filler accounts (1 primary + 3 companions
#     each, realistic field sizes, random keys/hashes) straight into that
#     database, in one transaction: 1,000 sessions. The directory is copied and
#     the copy is filled on to 1,000,000 (BENCH_STORE_N) sessions. Filler
#     selectors are "b<20 digits>A", so a client can name existing records.
#  3. Start-up time (spawn to the "listening" line, and spawn to the answer of
#     a first GET /v1/session sent at once), alternating 1k / 1M,
#     BENCH_ROUNDS times each; database size; the duration of one sweep (the
#     expiry pass start-up runs before listening), through `linkward admin purge`.
#  4. Both servers run side by side; wrk -c64 measures, in interleaved rounds:
#     - validate: GET /v1/session with the primary's valid credential (the
#       cached path: what every request of a live device costs);
#     - cold_lookup: GET /v1/session with a random existing filler selector and
#       a wrong verifier (never cached: each request reads the store through
#       the selector index, then answers 401) — the store's own lookup cost.
#
# Prints:
#   store stored=N db_bytes=… startup_ms=… first_answer_ms=… sweep_ms=… fill_s=…
#   store validate stored=N rps=… p50_ms=… p99_ms=…
#   store cold_lookup stored=N rps=… p50_ms=… p99_ms=…
#   store ratio validate_p50_1m/1k=… cold_p50_1m/1k=… ; store target …
source "$(dirname "$0")/lib.sh"
bench_init store
BIG="${BENCH_STORE_N:-1000000}"
[ "${BENCH_QUICK:-0}" = 1 ] && BIG="${BENCH_STORE_N:-100000}"
SMALL=1000
command -v sqlite3 >/dev/null || bench_die "sqlite3 is missing (bench/deps)"
command -v curl >/dev/null || bench_die "curl is missing (bench/deps)"

D1="$BENCH_TMP/small" D2="$BENCH_TMP/big"
start_linkward "$D1" --credential-ttl 2h
TOKEN=$(lwtool register "$LW_URL")
bench_stop "$LW_PID" 30
DB1="$D1/linkward.db"

# The columns the generator fills must cover every NOT NULL column without a default.
REQUIRED_SESS=$(sqlite3 "$DB1" "SELECT group_concat(name, ' ') FROM pragma_table_info('sessions') WHERE \"notnull\" = 1 AND dflt_value IS NULL")
REQUIRED_ACC=$(sqlite3 "$DB1" "SELECT group_concat(name, ' ') FROM pragma_table_info('accounts') WHERE \"notnull\" = 1 AND dflt_value IS NULL")
SESS_COLS="id account_id role name browser browser_version os os_version device_model ip country city network last_ip last_country last_city public_key account_sig linked_at last_active_at state persistent cred_selector cred_hash cred_expires_at challenge"
ACC_COLS="id handle created_at inactive_ttl_ms"
for c in $REQUIRED_SESS; do [[ " $SESS_COLS " == *" $c "* ]] || bench_die "the sessions table has a new required column '$c': update bench/4-store-1m.sh"; done
for c in $REQUIRED_ACC; do [[ " $ACC_COLS " == *" $c "* ]] || bench_die "the accounts table has a new required column '$c': update bench/4-store-1m.sh"; done

# fill DB FROM TO: filler sessions FROM..TO (FROM-1 divisible by 4), with their accounts.
fill() {
    local db="$1" s0="$2" s1="$3" now; now=$(now_ms)
    local a0=$(( (s0 - 1) / 4 + 1 )) a1=$(( (s1 - 1) / 4 + 1 ))
    sqlite3 "$db" >/dev/null <<SQL
PRAGMA journal_mode=DELETE;
PRAGMA synchronous=OFF;
PRAGMA cache_size=-262144;
BEGIN;
INSERT INTO accounts (id, handle, created_at, inactive_ttl_ms)
  SELECT printf('a%021d', value), printf('filler%d', value), $now - 86400000, 2592000000
  FROM generate_series($a0, $a1);
INSERT INTO sessions (id, account_id, role, name, browser, browser_version, os, os_version,
    device_model, ip, country, city, network, last_ip, last_country, last_city, public_key,
    account_sig, linked_at, last_active_at, state, persistent, cred_selector, cred_hash,
    cred_expires_at, challenge)
  SELECT printf('d%021d', value), printf('a%021d', (value - 1) / 4 + 1),
    CASE WHEN (value - 1) % 4 = 0 THEN 'primary' ELSE 'companion' END,
    CASE WHEN (value - 1) % 4 = 0 THEN 'Pixel 8' ELSE 'Chrome on Windows' END,
    'Chrome', '124.0.0.0', 'Windows', '10', '', printf('198.51.%d.%d', (value / 256) % 256, value % 256),
    'NL', 'Amsterdam', 'Example Networks B.V.', printf('198.51.%d.%d', (value / 256) % 256, value % 256),
    'NL', 'Amsterdam', randomblob(32),
    CASE WHEN (value - 1) % 4 = 0 THEN zeroblob(64) ELSE randomblob(64) END,
    $now - 86400000 + value % 3600000, $now - value % 600000, 'active', 1,
    printf('b%020dA', value), randomblob(32), $now + 600000, randomblob(32)
  FROM generate_series($s0, $s1);
COMMIT;
PRAGMA journal_mode=WAL;
SQL
}

bench_log "filling $SMALL sessions"
fill "$DB1" 1 "$SMALL"
cp -a "$D1" "$D2"
rm -f "$D2"/*.log "$D2/control.sock"
bench_log "filling $BIG sessions (one transaction)"
t0=$(now_ms)
fill "$D2/linkward.db" $((SMALL + 1)) "$BIG"
FILL_S=$(awk -v ms=$(( $(now_ms) - t0 )) 'BEGIN {printf "%.1f", ms / 1000}')
count() { sqlite3 "$1" "SELECT count(*) FROM sessions"; }
N1=$(count "$DB1"); N2=$(count "$D2/linkward.db")
bench_log "stored: $N1 and $N2 sessions (fill of the big one: ${FILL_S} s)"

dbsize() { du -cb "$1"/linkward.db* | tail -1 | cut -f1; }

# Start-up time, alternating: to the "listening" line, and to the answer of a
# first GET /v1/session sent right then (work the server does after listening,
# e.g. a first sweep on the event loop, shows in the second).
first_answer_ms() {
    local code
    code=$(curl -s -o /dev/null -m 120 -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$LW_URL/v1/session" || true)
    [ "$code" = 200 ] || bench_log "first request answered $code"
    echo $(( ($(date +%s%N) - LW_T0_NS) / 1000000 ))
}
S1=() S2=() F1=() F2=()
for r in $(seq "$BENCH_ROUNDS"); do
    start_linkward "$D1" --credential-ttl 2h; S1+=("$LW_START_MS"); F1+=("$(first_answer_ms)"); bench_stop "$LW_PID" 30
    start_linkward "$D2" --credential-ttl 2h; S2+=("$LW_START_MS"); F2+=("$(first_answer_ms)"); bench_stop "$LW_PID" 30
    bench_log "round $r: listening after ${S1[-1]} ms, first answer after ${F1[-1]} ms ($N1 stored); ${S2[-1]} ms, ${F2[-1]} ms ($N2 stored)"
done

# Both servers side by side.
start_linkward "$D1" --credential-ttl 2h; P1=$LW_PID; U1=$LW_URL
start_linkward "$D2" --credential-ttl 2h; P2=$LW_PID; U2=$LW_URL
for u in "$U1" "$U2"; do lwtool check "$u" Authorization "Bearer $TOKEN" >/dev/null || bench_die "$u does not accept the credential"; done
RSS1=$(rss_kb "$P1"); RSS2=$(rss_kb "$P2")
# One sweep (what start-up runs before listening: "what fell due while we were
# down"), timed through the control socket: linkward admin purge.
sweep_ms() {
    local t0; t0=$(date +%s%N)
    "$LINKWARD" admin --data-dir "$1" --json purge >/dev/null 2>&1 || { echo nan; return; }
    echo $(( ($(date +%s%N) - t0) / 1000000 ))
}
SW1=$(sweep_ms "$D1"); SW2=$(sweep_ms "$D2")

cold_measure() {
    local url="$1" n="$2" secs="${3:-$BENCH_WRK_SECONDS}" out
    out=$(BENCH_SELECTORS="$n" timeout $((secs + 30)) wrk -t"$BENCH_THREADS" -c"$BENCH_CONNS" -d"${secs}s" \
        --timeout 5s -s "$BENCH_DIR/cold-lookup.lua" "$url" 2>&1) || bench_die "wrk failed on $url: $out"
    local res; res=$(grep '^wrk_result ' <<<"$out" | head -1)
    [ -n "$res" ] || bench_die "wrk printed no result for $url: $out"
    echo "${res#wrk_result }"
}

declare -A V50 V99 VR C50 C99 CR
for k in 1 2; do V50[$k]=""; V99[$k]=""; VR[$k]=""; C50[$k]=""; C99[$k]=""; CR[$k]=""; done
# warm-up
wrk_measure "$U1/v1/session" Authorization "Bearer $TOKEN" 1 >/dev/null
wrk_measure "$U2/v1/session" Authorization "Bearer $TOKEN" 1 >/dev/null
for r in $(seq "$BENCH_ROUNDS"); do
    for k in 1 2; do
        u=$U1; n=$SMALL; [ $k = 2 ] && { u=$U2; n=$BIG; }
        res=$(wrk_measure "$u/v1/session" Authorization "Bearer $TOKEN")
        bench_log "round $r validate stored=$n: $res"
        [ "$(field non2xx "$res")" = 0 ] || bench_die "validation answered non-2xx: $res"
        VR[$k]+=" $(field rps "$res")"; V50[$k]+=" $(field p50_ms "$res")"; V99[$k]+=" $(field p99_ms "$res")"
        res=$(cold_measure "$u/v1/session" "$n")
        bench_log "round $r cold_lookup stored=$n: $res"
        CR[$k]+=" $(field rps "$res")"; C50[$k]+=" $(field p50_ms "$res")"; C99[$k]+=" $(field p99_ms "$res")"
    done
done
# Still the right answers: the valid credential works, a filler selector with a wrong verifier is refused.
lwtool check "$U2" Authorization "Bearer $TOKEN" >/dev/null || bench_die "the big store lost the credential"

# shellcheck disable=SC2086
for k in 1 2; do
    n=$N1; dir=$D1; st=("${S1[@]}"); fa=("${F1[@]}"); rss=$RSS1; sw=$SW1
    [ $k = 2 ] && { n=$N2; dir=$D2; st=("${S2[@]}"); fa=("${F2[@]}"); rss=$RSS2; sw=$SW2; }
    fs=""; [ $k = 2 ] && fs=" fill_s=$FILL_S"
    echo "store stored=$n db_bytes=$(dbsize "$dir") startup_ms=$(median "${st[@]}") first_answer_ms=$(median "${fa[@]}") sweep_ms=$sw rss_after_start_kb=$rss$fs"
    echo "store validate stored=$n rps=$(median ${VR[$k]}) p50_ms=$(median ${V50[$k]}) p99_ms=$(median ${V99[$k]})"
    echo "store cold_lookup stored=$n rps=$(median ${CR[$k]}) p50_ms=$(median ${C50[$k]}) p99_ms=$(median ${C99[$k]})"
done
# shellcheck disable=SC2086
{
vr=$(ratio "$(median ${V50[2]})" "$(median ${V50[1]})"); vq=$(ratio "$(median ${VR[2]})" "$(median ${VR[1]})")
cr=$(ratio "$(median ${C50[2]})" "$(median ${C50[1]})"); cq=$(ratio "$(median ${CR[2]})" "$(median ${CR[1]})")
}
echo "store ratio validate_p50_big/small=$vr validate_rps_big/small=$vq cold_p50_big/small=$cr cold_rps_big/small=$cq"
su=$(median "${S2[@]}"); fu=$(median "${F2[@]}")
echo "store target startup<2s:$(awk -v s="$su" 'BEGIN {print (s < 2000) ? "met" : "MISSED"}') first_answer<2s:$(awk -v s="$fu" 'BEGIN {print (s < 2000) ? "met" : "MISSED"}') validation_independent(rps_big/small>=0.9):$(awk -v q="$vq" 'BEGIN {print (q >= 0.9) ? "met" : "MISSED"}')"
