#!/usr/bin/env bash
# Runs built libFuzzer harnesses for a bounded time each (`make fuzz` calls it).
#   fuzz/run.sh BUILD_DIR SECONDS NAME...
# New corpus entries go to BUILD_DIR/corpus/NAME (the seeds in fuzz/corpus/NAME
# are only read), crashes to fuzz/NAME/crashes/, the log to BUILD_DIR/fuzz-NAME.log.
# Exits non-zero when any harness found something.
set -uo pipefail
cd "$(dirname "$0")/.."
build=$1 seconds=$2
shift 2

status=0
for h in "$@"; do
    bin=$build/fuzz_$h log=$build/fuzz-$h.log corpus=$build/corpus/$h
    mkdir -p "$corpus" "fuzz/$h/crashes"
    opts=(-timeout=25 -print_final_stats=1 "-artifact_prefix=fuzz/$h/crashes/")
    leakpass=0
    case $h in
    http | json_routes | ws)
        opts+=(-dict=fuzz/http.dict)
        # The server keeps state (store, caches), so libFuzzer's per-input leak
        # check fires on nearly every input and scans the whole heap: 8x
        # slower. Fuzz without it, then replay the corpus once with it.
        opts+=(-detect_leaks=0)
        leakpass=1
        ;;
    config)
        opts+=(-close_fd_mask=2) # its error lines, not libFuzzer's reports
        ;;
    esac
    echo "fuzz: $h for ${seconds}s"
    if ! "$bin" -max_total_time="$seconds" "${opts[@]}" "$corpus" "fuzz/corpus/$h" >"$log" 2>&1; then
        status=1
        echo "fuzz: $h FOUND SOMETHING: fuzz/$h/crashes/, $log"
    elif [ "$leakpass" = 1 ] && ! "$bin" -runs=0 "${opts[@]/-detect_leaks=0/-detect_leaks=1}" "$corpus" "fuzz/corpus/$h" >>"$log" 2>&1; then
        status=1
        echo "fuzz: $h LEAKS on an input: fuzz/$h/crashes/, $log"
    fi
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" | head -3 | tr '\n' ' '
    echo
done
exit $status
