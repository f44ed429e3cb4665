# Shared by bench/cpu.sh and bench/instructions.sh (sourced, not run): a temp run dir removed
# on exit with every process started through it, a readiness wait, and the fixed upstream.

# Creates RUN_DIR (named after $1) and the exit trap that stops PIDS and removes the dir.
bench_run_dir() {
    RUN_DIR=$(mktemp -d -t "portcullis-$1.XXXXXX")
    mkdir -p "$RUN_DIR/tmp"
    PIDS=()
    trap bench_cleanup EXIT
}

bench_cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$RUN_DIR"
}

# Waits until URL ($1) answers 200, for at most $2 seconds; exits the script otherwise.
wait_port() {
    local i
    for ((i = 0; i < $2 * 5; i++)); do
        curl -fsS --max-time 1 "$1" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    echo "nothing answers at $1" >&2
    exit 1
}

# Starts `BINARY ($1) upstream --fixed` on 127.0.0.1:18001 and waits up to $2 seconds.
start_upstream() {
    "$1" upstream --listen 127.0.0.1:18001 --fixed >"$RUN_DIR/upstream.log" 2>&1 &
    PIDS+=($!)
    wait_port http://127.0.0.1:18001/ "$2"
}
