#!/usr/bin/env bash
# User-space instructions per proxied request, counted by valgrind's callgrind: the same
# binary, config and load give the same count within about 1%, whatever else the machine is
# doing, so a change that saves 2% shows (req/s on two shared cores swings by 10% between
# runs). Optionally counts nginx on the same hop for reference.
#
# Usage: bench/instructions.sh [--nginx] [BINARY ...]
#   (default binary: $CARGO_TARGET_DIR/release/portcullis)
# Environment: DURATION (8s), CONNECTIONS (8), BENCH_CONFIG (bench/portcullis.toml),
#   KEEP (a directory: each callgrind profile is copied there, for callgrind_annotate),
#   CACHE_SIM=1 (also simulate caches and branches: prints L1 instruction, L1 data and
#   last-level misses and branch mispredictions per request; slower, and the misses vary
#   ~10% between runs; user time follows them more than it follows instructions)
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DURATION=${DURATION:-8s}
CONNECTIONS=${CONNECTIONS:-8}
CONFIG=${BENCH_CONFIG:-$BENCH_DIR/portcullis.toml}
TARGET_DIR=${CARGO_TARGET_DIR:-/root/portcullis-target}

with_nginx=0
BINARIES=()
for arg in "$@"; do
    case $arg in
        --nginx) with_nginx=1 ;;
        -h | --help)
            sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *) BINARIES+=("$arg") ;;
    esac
done
((${#BINARIES[@]})) || BINARIES=("$TARGET_DIR/release/portcullis")
for tool in valgrind callgrind_annotate callgrind_control wrk curl; do
    command -v "$tool" >/dev/null || {
        echo "missing $tool (apt-get install valgrind wrk curl)" >&2
        exit 1
    }
done

# shellcheck source=bench/common.sh
source "$BENCH_DIR/common.sh"
bench_run_dir instr

start_upstream "${BINARIES[0]}" 60

# Runs CMD... under callgrind with instrumentation off, warms it up through URL, counts the
# instructions of a measured wrk run, and prints "instructions/request".
count() {
    local name=$1 url=$2
    shift 2
    local out="$RUN_DIR/callgrind.$name"
    local sim=()
    [[ ${CACHE_SIM:-0} == 1 ]] && sim=(--cache-sim=yes --branch-sim=yes)
    (cd "$RUN_DIR" && RUST_LOG=warn exec valgrind --tool=callgrind "${sim[@]}" --instr-atstart=no \
        --callgrind-out-file="$out.%p" "$@") >"$RUN_DIR/$name.log" 2>&1 &
    local vg=$!
    wait_ready "$name" "$url" "" "$RUN_DIR/$name.log" 60
    wrk -t1 -c"$CONNECTIONS" -d2s "$url" >/dev/null
    callgrind_control -i on "$vg" >/dev/null
    local requests
    requests=$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "$url" | awk '/requests in/ { print $1 }')
    callgrind_control -i off "$vg" >/dev/null
    kill -TERM "$vg"
    wait "$vg" 2>/dev/null || true
    local file total
    file=$(ls -S "$out".* | head -n 1)
    total=$(callgrind_annotate "$file" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
    printf '%-40s %10s requests %10d instructions/request\n' "$name" "$requests" $((total / requests))
    if [[ ${CACHE_SIM:-0} == 1 ]]; then
        # Totals line: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw Bc Bcm Bi Bim, each with a (%).
        callgrind_annotate "$file" 2>/dev/null | awk -v n="$requests" '/PROGRAM TOTALS/ {
            gsub(/\([^)]*\)/, ""); gsub(",", "")
            printf "%-40s I1 miss %.0f  D1 miss %.0f  LL miss %.1f  branch mispredict %.0f  (per request)\n",
                "", $4 / n, ($5 + $6) / n, ($7 + $8 + $9) / n, ($11 + $13) / n }'
    fi
    if [[ -n ${KEEP:-} ]]; then
        mkdir -p "$KEEP"
        cp "$file" "$KEEP/callgrind.$name"
    fi
}

for binary in "${BINARIES[@]}"; do
    count "$(basename "$binary")" http://127.0.0.1:18080/ "$binary" serve --config "$CONFIG"
done
if ((with_nginx)); then
    sed -e 's/^worker_processes auto;/worker_processes 1;\nmaster_process off;/' \
        "$BENCH_DIR/nginx.conf" >"$RUN_DIR/nginx.conf"
    count nginx http://127.0.0.1:18002/ nginx -p "$RUN_DIR" -c "$RUN_DIR/nginx.conf" -e "$RUN_DIR/error.log"
fi
