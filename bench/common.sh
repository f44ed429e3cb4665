# Shared by the bench scripts (sourced, not run): a temp run dir removed on exit with every
# process started through it, a readiness wait that shows the process's log when it fails,
# and the fixed upstream.

# Creates RUN_DIR (named after $1) and the traps that stop WRK_PID and PIDS and remove the
# dir on exit; INT or TERM exits at once (through the same cleanup).
bench_run_dir() {
    RUN_DIR=$(mktemp -d -t "portcullis-$1.XXXXXX")
    mkdir -p "$RUN_DIR/tmp"
    PIDS=()
    WRK_PID=""
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

bench_cleanup() {
    local pid
    [[ -z ${WRK_PID:-} ]] || kill -TERM "$WRK_PID" 2>/dev/null || true
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$RUN_DIR"
}

# Polls URL ($2) until it answers 200 with a body containing EXPECTED ($3, may be empty), for
# at most TIMEOUT ($5, default 30) seconds; otherwise names NAME ($1), shows the last answer and
# the end of LOG ($4, the process's output) and exits the script.
wait_ready() {
    local name=$1 url=$2 expected=$3 log=$4 timeout=${5:-30}
    local deadline=$((SECONDS + timeout))
    local body
    until body=$(curl -fsS --max-time 2 "$url" 2>/dev/null) && [[ $body == *"$expected"* ]]; do
        if ((SECONDS >= deadline)); then
            echo "$name did not answer 200 '$expected' at $url within ${timeout}s" >&2
            curl -sS -i --max-time 2 "$url" >&2 || true
            echo "--- $log ---" >&2
            tail -n 30 "$log" >&2 || true
            exit 1
        fi
        sleep 0.2
    done
}

# Starts `BINARY ($1) upstream --fixed` on 127.0.0.1:18001 and waits up to $2 seconds.
start_upstream() {
    "$1" upstream --listen 127.0.0.1:18001 --fixed >"$RUN_DIR/upstream.log" 2>&1 &
    PIDS+=($!)
    wait_ready upstream http://127.0.0.1:18001/ ok "$RUN_DIR/upstream.log" "$2"
}
