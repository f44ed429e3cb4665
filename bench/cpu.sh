#!/usr/bin/env bash
# CPU time per proxied request, split user/system, for portcullis and nginx in front of the same
# fixed upstream: a steadier yardstick than req/s when wrk and the servers share two cores.
# Each round loads one proxy with wrk and reads the proxy's own CPU ticks from /proc around it.
#
# Usage: bench/cpu.sh [BINARY ...]   (default: $CARGO_TARGET_DIR/release/portcullis)
#   several binaries are measured in interleaved rounds, so an A/B of two builds is one command.
# Environment: DURATION (8s), CONNECTIONS (64), ROUNDS (3), BENCH_CONFIG (bench/portcullis.toml)
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DURATION=${DURATION:-8s}
CONNECTIONS=${CONNECTIONS:-64}
ROUNDS=${ROUNDS:-3}
CONFIG=${BENCH_CONFIG:-$BENCH_DIR/portcullis.toml}
TARGET_DIR=${CARGO_TARGET_DIR:-/root/portcullis-target}
BINARIES=("$@")
((${#BINARIES[@]})) || BINARIES=("$TARGET_DIR/release/portcullis")
HZ=$(getconf CLK_TCK)

# shellcheck source=bench/common.sh
source "$BENCH_DIR/common.sh"
bench_run_dir cpu

# Sum of utime and stime (ticks) of a process and its threads, and of nginx's workers.
ticks() {
    local total_user=0 total_sys=0 pid fields
    for pid in "$@"; do
        read -r -a fields <"/proc/$pid/stat"
        total_user=$((total_user + fields[13]))
        total_sys=$((total_sys + fields[14]))
    done
    echo "$total_user $total_sys"
}

start_upstream "${BINARIES[0]}" 30

nginx -p "$RUN_DIR" -c "$BENCH_DIR/nginx.conf" -e "$RUN_DIR/error.log" >/dev/null 2>&1 &
PIDS+=($!)
NGINX_MASTER=$!
wait_ready nginx http://127.0.0.1:18002/ "" "$RUN_DIR/error.log" 30
NGINX_WORKERS=$(pgrep -P "$NGINX_MASTER" | tr '\n' ' ')

# Measures one target: prints "req/s user_us/req sys_us/req".
measure() {
    local url=$1
    shift
    local before after out reqs
    before=$(ticks "$@")
    out=$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" "$url")
    after=$(ticks "$@")
    reqs=$(awk '/requests in/ { print $1 }' <<<"$out")
    awk -v b="$before" -v a="$after" -v n="$reqs" -v hz="$HZ" -v d="${DURATION%s}" 'BEGIN {
        split(b, x, " "); split(a, y, " ")
        printf "%10.0f %8.2f %8.2f %8.2f\n", n / d, (y[1] - x[1]) * 1e6 / hz / n,
            (y[2] - x[2]) * 1e6 / hz / n, ((y[1] - x[1]) + (y[2] - x[2])) * 1e6 / hz / n
    }'
}

printf '%-5s %-40s %10s %8s %8s %8s\n' round target req/s user_us sys_us cpu_us
for ((round = 1; round <= ROUNDS; round++)); do
    printf '%-5s %-40s %s\n' "$round" nginx "$(measure http://127.0.0.1:18002/ $NGINX_WORKERS)"
    for binary in "${BINARIES[@]}"; do
        (cd "$RUN_DIR" && RUST_LOG=warn exec "$binary" serve --config "$CONFIG") \
            >"$RUN_DIR/portcullis.log" 2>&1 &
        pid=$!
        wait_ready portcullis http://127.0.0.1:18080/ "" "$RUN_DIR/portcullis.log" 30
        wrk -t2 -c"$CONNECTIONS" -d1s http://127.0.0.1:18080/ >/dev/null
        printf '%-5s %-40s %s\n' "$round" "$(basename "$binary")" "$(measure http://127.0.0.1:18080/ "$pid")"
        kill -TERM "$pid"
        wait "$pid" 2>/dev/null || true
    done
done
