#!/usr/bin/env bash
# Noisy-neighbour benchmark: tenant `quiet` (echo) is measured with QUIET_CONNECTIONS
# connections, alone and while tenant `noisy`, whose plugin spins until its 1 s deadline on every
# message, is flooded with NOISY_CONNECTIONS connections. The server is pinned to CPU 0 and both
# load generators to CPU 1; the two runs repeat ROUNDS times, interleaved (this machine's speed
# drifts by ±20% within minutes), each on a fresh server. Results: one JSON line per run in
# target/bench/noisy.jsonl, and a table on stdout.
#   scripts/bench-noisy.sh [SECONDS] [ROUNDS] [QUIET_CONNECTIONS] [NOISY_CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
rounds=${2:-3}
quiet_connections=${3:-2}
noisy_connections=${4:-128}

scripts/build-plugins.sh
(cd tests/plugins && cargo build-plugin --locked --quiet -p infinite-loop)
cargo build --release --locked --quiet -p wxhost -p wxhost-loadgen
mkdir -p target/bench
out=target/bench/noisy.jsonl
: > "$out"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/plugins"
cp target/plugins/echo.wasm "$work/plugins/echo.wasm"
cp target/wasm/wasm32-wasip2/release/infinite_loop.wasm "$work/plugins/infinite-loop.wasm"

cat > "$work/wxhost.toml" <<TOML
plugins_dir = "$work/plugins"
data_dir = "$work/data"
cache_dir = "$PWD/target/bench/cache"

[[tenants]]
id = "quiet"
appid = "wxb11529c136998cb6"
token = "pamtest"
mode = "plain"
[[tenants.plugins]]
name = "echo"

[[tenants]]
id = "noisy"
appid = "wxb11529c136998cb6"
token = "pamtest"
mode = "plain"
[[tenants.plugins]]
name = "infinite-loop"
limits = { deadline_ms = 1000, fuel = 100000000000 }
TOML

start_server() {
    rm -rf "$work/data"
    RUST_LOG=error taskset -c 0 target/release/wxhost serve --config "$work/wxhost.toml" \
        --listen 127.0.0.1:0 > "$work/server.out" 2> "$work/server.err" &
    server_pid=$!
    for _ in $(seq 1 200); do
        addr=$(sed -n 's/.*listening on //p' "$work/server.out" | head -n 1)
        [ -n "$addr" ] && sleep 1 && return 0 # plugins load
        sleep 0.1
    done
    echo "server did not start:" >&2
    cat "$work/server.err" >&2
    exit 1
}

stop_server() {
    kill "$server_pid" && wait "$server_pid" 2>/dev/null || true
}

quiet() { # LABEL
    if ! taskset -c 1 target/release/wxhost-loadgen load --url "http://$addr" --tenant quiet \
        --mode plain --connections "$quiet_connections" --seconds "$seconds" --pushes 400000 \
        --label "$1" > "$work/quiet.json"; then
        echo "round $round, $1: the load generator failed; the server ($addr) logged:" >&2
        tail -n 20 "$work/server.err" >&2
        return 0
    fi
    sed "s/^{/{\"round\":$round,/" "$work/quiet.json" | tee -a "$out"
}

for round in $(seq 1 "$rounds"); do
    start_server
    quiet "quiet alone"
    stop_server

    start_server
    # The flood starts first and outlasts the measurement (its own warm-up second included).
    taskset -c 1 target/release/wxhost-loadgen load --url "http://$addr" --tenant noisy --mode plain \
        --connections "$noisy_connections" --seconds $((seconds + 4)) --pushes 20000 \
        --label "noisy flood" > "$work/noisy.json" &
    flood=$!
    sleep 2
    quiet "quiet while noisy is flooded"
    wait "$flood" || true
    sed "s/^{/{\"round\":$round,/" "$work/noisy.json" | tee -a "$out"
    curl -s "http://$addr/metrics" | grep -E '^wxhost_requests_total\{tenant="(noisy|quiet)"' \
        | grep -v ' 0$' | sed 's/^/    /' || true
    stop_server
done

python3 - "$out" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
head = f"{'run':32} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}"
print(f"\nmedian of {len({r['round'] for r in runs})} rounds (p99: median and worst)\n{head}")
for label in dict.fromkeys(r["label"] for r in runs):
    rs = [r for r in runs if r["label"] == label]
    p99 = [r["p99_us"] / 1000 for r in rs]
    print(f"{label:32} {statistics.median(r['rps'] for r in rs):>9.0f} "
          f"{statistics.median(r['p50_us'] for r in rs)/1000:>8.2f} "
          f"{statistics.median(p99):>8.2f} {sum(r['errors'] for r in rs):>6}   worst p99 {max(p99):.2f}")
alone = {r["round"]: r["p99_us"] for r in runs if r["label"] == "quiet alone"}
noisy = {r["round"]: r["p99_us"] for r in runs if r["label"] == "quiet while noisy is flooded"}
ratios = [noisy[k] / alone[k] for k in sorted(alone) if k in noisy]
extra = [(noisy[k] - alone[k]) / 1000 for k in sorted(alone) if k in noisy]
print(f"\nquiet p99 flooded / alone, per round: {', '.join(f'{x:.2f}x' for x in ratios)}")
print(f"quiet p99 flooded - alone, per round: {', '.join(f'{x:+.2f} ms' for x in extra)}")
print("target: at most 2x, or alone + 10 ms")
PY
