#!/usr/bin/env bash
# Throughput and latency of one proxy hop: the fixed upstream alone ("direct"), nginx in front of
# it, and portcullis in front of it, measured with wrk in interleaved rounds on loopback.
# Starts every process it needs, and stops them (and removes its temp dir) on exit.
#
# Usage: bench/run.sh [--no-build] [--only-nginx]
#   --no-build    use the existing release binary instead of running `cargo build --release`
#   --only-nginx  benchmark direct and nginx only, with an nginx stand-in as the upstream
#                 (checks the harness itself without a portcullis binary)
# Environment: DURATION (10s), CONNECTIONS (64), THREADS (2), ROUNDS (3), WARMUP (2s, 0 = none),
#              CARGO_TARGET_DIR (/root/portcullis-target), RUST_LOG (warn)
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-2s}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/root/portcullis-target}
BINARY=$CARGO_TARGET_DIR/release/portcullis

UPSTREAM_ADDR=127.0.0.1:18001
NGINX_ADDR=127.0.0.1:18002
PORTCULLIS_ADDR=127.0.0.1:18080
ADMIN_ADDR=127.0.0.1:19090
START_TIMEOUT_SECONDS=30

build=1
only_nginx=0
for arg in "$@"; do
    case $arg in
        --no-build) build=0 ;;
        --only-nginx) only_nginx=1 ;;
        -h | --help)
            sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "unknown argument: $arg (try --help)" >&2
            exit 2
            ;;
    esac
done

for tool in wrk nginx curl awk; do
    command -v "$tool" >/dev/null || {
        echo "missing $tool (apt-get install wrk nginx curl)" >&2
        exit 1
    }
done

# shellcheck source=bench/common.sh
source "$BENCH_DIR/common.sh"
bench_run_dir bench
mkdir -p "$RUN_DIR/results" "$RUN_DIR/portcullis"

port_in_use() {
    (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null
}

# wait_ready (common.sh), then says so.
ready() {
    wait_ready "$@" "$START_TIMEOUT_SECONDS"
    echo "$1 ready: $2"
}

for addr in "$UPSTREAM_ADDR" "$NGINX_ADDR" "$PORTCULLIS_ADDR" "$ADMIN_ADDR"; do
    if port_in_use "$addr"; then
        echo "$addr is already in use: stop whatever listens there first" >&2
        exit 1
    fi
done

if ((only_nginx == 0)); then
    if ((build == 1)); then
        echo "==> cargo build --release (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
        (cd "$REPO_DIR" && cargo build --release)
    fi
    [[ -x $BINARY ]] || {
        echo "no binary at $BINARY (build it, or use --only-nginx)" >&2
        exit 1
    }
fi

# The upstream: portcullis's built-in fixed responder, or an nginx stand-in.
if ((only_nginx == 1)); then
    UPSTREAM_CMD=(nginx -p "$RUN_DIR" -c "$BENCH_DIR/standin-upstream.conf" -e "$RUN_DIR/standin-error.log")
else
    UPSTREAM_CMD=("$BINARY" upstream --listen "$UPSTREAM_ADDR" --fixed)
fi
echo "==> upstream: ${UPSTREAM_CMD[*]}"
"${UPSTREAM_CMD[@]}" >"$RUN_DIR/upstream.log" 2>&1 &
PIDS+=($!)
ready upstream "http://$UPSTREAM_ADDR/" ok "$RUN_DIR/upstream.log"

NGINX_CMD=(nginx -p "$RUN_DIR" -c "$BENCH_DIR/nginx.conf" -e "$RUN_DIR/error.log")
echo "==> nginx: ${NGINX_CMD[*]}"
"${NGINX_CMD[@]}" >"$RUN_DIR/nginx.log" 2>&1 &
PIDS+=($!)
ready nginx "http://$NGINX_ADDR/" ok "$RUN_DIR/error.log"

TARGETS=(direct nginx)
declare -A URLS=([direct]="http://$UPSTREAM_ADDR/" [nginx]="http://$NGINX_ADDR/")

if ((only_nginx == 0)); then
    # Run from the temp dir so any relative data path (audit, sessions) lands there.
    PORTCULLIS_CMD=("$BINARY" serve --config "${BENCH_CONFIG:-$BENCH_DIR/portcullis.toml}" --log-format json)
    echo "==> portcullis: RUST_LOG=${RUST_LOG:-warn} ${PORTCULLIS_CMD[*]}"
    (cd "$RUN_DIR/portcullis" && RUST_LOG=${RUST_LOG:-warn} exec "${PORTCULLIS_CMD[@]}") \
        >"$RUN_DIR/portcullis.log" 2>&1 &
    PIDS+=($!)
    ready "portcullis admin" "http://$ADMIN_ADDR/healthz" "" "$RUN_DIR/portcullis.log"
    ready portcullis "http://$PORTCULLIS_ADDR/" ok "$RUN_DIR/portcullis.log"
    TARGETS+=(portcullis)
    URLS[portcullis]="http://$PORTCULLIS_ADDR/"
fi

WRK_ARGS=(-t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency)

# Runs wrk as a background child and waits for it, so a TERM or INT reaches the trap at once
# instead of after the measurement.
run_wrk() {
    local out=$1
    shift
    wrk "$@" >"$out" &
    WRK_PID=$!
    wait "$WRK_PID"
    WRK_PID=""
}

# Prints "req_per_sec p50_ms p99_ms non_2xx socket_errors" from one wrk --latency report.
parse_wrk() {
    awk '
        function to_ms(v,   n, unit) {
            n = v + 0
            unit = v
            sub(/^[0-9.]+/, "", unit)
            if (unit == "us") return n / 1000
            if (unit == "ms") return n
            if (unit == "s") return n * 1000
            if (unit == "m") return n * 60000
            if (unit == "h") return n * 3600000
            return -1
        }
        /Latency Distribution/ { in_dist = 1; next }
        in_dist && $1 == "50%" { p50 = to_ms($2) }
        in_dist && $1 == "99%" { p99 = to_ms($2); in_dist = 0 }
        /^Requests\/sec:/ { rps = $2 }
        /Non-2xx or 3xx responses:/ { non2xx = $NF }
        /Socket errors:/ { gsub(",", ""); sockerr = $4 + $6 + $8 + $10 }
        END {
            if (rps == "") { print "unparsable"; exit 1 }
            printf "%.2f %.3f %.3f %d %d\n", rps, p50, p99, non2xx, sockerr
        }' "$1"
}

echo
echo "machine: $(nproc) cores, $(uname -sr); $(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2); $(nginx -v 2>&1)"
echo "command: wrk ${WRK_ARGS[*]} URL   (URL per target below; $ROUNDS interleaved rounds)"
for target in "${TARGETS[@]}"; do
    printf '  %-11s %s\n' "$target" "${URLS[$target]}"
done

if [[ $WARMUP != 0 ]]; then
    for target in "${TARGETS[@]}"; do
        run_wrk /dev/null -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" "${URLS[$target]}"
    done
fi

echo
printf '%-6s %-11s %12s %9s %9s %8s %8s\n' round target req/s p50_ms p99_ms non2xx sockerr
for ((round = 1; round <= ROUNDS; round++)); do
    for target in "${TARGETS[@]}"; do
        report=$RUN_DIR/results/$target.$round.txt
        run_wrk "$report" "${WRK_ARGS[@]}" "${URLS[$target]}"
        if ! line=$(parse_wrk "$report"); then
            echo "could not parse wrk output for $target round $round:" >&2
            cat "$report" >&2
            exit 1
        fi
        echo "$line" >>"$RUN_DIR/results/$target.all"
        read -r rps p50 p99 non2xx sockerr <<<"$line"
        printf '%-6s %-11s %12s %9s %9s %8s %8s\n' "$round" "$target" "$rps" "$p50" "$p99" "$non2xx" "$sockerr"
    done
done

# Median of column COL over the rounds recorded for TARGET.
median() {
    cut -d' ' -f"$2" "$RUN_DIR/results/$1.all" | sort -g | awk '
        { v[NR] = $1 }
        END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo
echo "median of $ROUNDS rounds (wrk ${WRK_ARGS[*]}):"
printf '%-11s %12s %9s %9s %8s %8s\n' target req/s p50_ms p99_ms non2xx sockerr
declare -A MED_RPS MED_P99
for target in "${TARGETS[@]}"; do
    MED_RPS[$target]=$(median "$target" 1)
    MED_P99[$target]=$(median "$target" 3)
    errors=$(awk '{ n += $4 } END { print n + 0 }' "$RUN_DIR/results/$target.all")
    sock=$(awk '{ n += $5 } END { print n + 0 }' "$RUN_DIR/results/$target.all")
    printf '%-11s %12.0f %9.3f %9.3f %8s %8s\n' "$target" "${MED_RPS[$target]}" \
        "$(median "$target" 2)" "${MED_P99[$target]}" "$errors" "$sock"
done

if ((only_nginx == 0)); then
    awk -v pr="${MED_RPS[portcullis]}" -v nr="${MED_RPS[nginx]}" \
        -v pp="${MED_P99[portcullis]}" -v np="${MED_P99[nginx]}" 'BEGIN {
            printf "\nportcullis/nginx: req/s %.2f   p99 %.2f\n", pr / nr, (np > 0 ? pp / np : 0)
        }'
fi

total_errors=$(cat "$RUN_DIR"/results/*.all | awk '{ n += $4 + $5 } END { print n + 0 }')
if ((total_errors > 0)); then
    echo "WARNING: $total_errors non-2xx responses or socket errors: the numbers above are suspect" >&2
fi
