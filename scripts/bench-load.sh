#!/usr/bin/env bash
# Load benchmark, in one run on this machine: a bare axum hello-world, the native pipeline
# (verify, decrypt, parse, dedup, encode, encrypt with a native echo, no plugins), wxhost
# with the echo plugin, each in plaintext and safe mode, and wxhost with visit-counter (a kv
# write on every push, durable before the answer) in safe mode, with kv embedded and with kv on a
# redis-server (pinned with the load generator, no persistence), and safe echo on a node with
# its signature bindings and dedup entries on that Redis (a cluster node; the Redis runs also
# report their round trips per push). The server is pinned to CPU 0 and the
# load generator to CPU 1. The eight runs repeat ROUNDS times, interleaved, because this
# machine's speed drifts by ±20% within minutes: each run is compared with the hello-world run
# of its own round, and the table gives the median over the rounds. Results: one JSON line per
# run in target/bench/load.jsonl, and the tables on stdout.
#   scripts/bench-load.sh [SECONDS] [CONNECTIONS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
connections=${2:-16}
rounds=${3:-3}

scripts/build-plugins.sh
cargo build --release --locked --quiet -p wxhost -p wxhost-loadgen
mkdir -p target/bench
out=target/bench/load.jsonl
: > "$out"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

cat > "$work/wxhost.toml" <<TOML
plugins_dir = "$PWD/target/plugins"
data_dir = "$work/data"
cache_dir = "$PWD/target/bench/cache"

[[tenants]]
id = "bench"
appid = "wxb11529c136998cb6"
token = "pamtest"
mode = "plain"
[[tenants.plugins]]
name = "echo"

[[tenants]]
id = "bench-safe"
appid = "wxb11529c136998cb6"
token = "pamtest"
encoding_aes_key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
mode = "safe"
[[tenants.plugins]]
name = "echo"

[[tenants]]
id = "bench-kv"
appid = "wxb11529c136998cb6"
token = "pamtest"
encoding_aes_key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
mode = "safe"
[[tenants.plugins]]
name = "visit-counter"
TOML
redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cp "$work/wxhost.toml" "$work/wxhost-redis.toml"
printf '[storage]\nbackend = "redis"\nurl = "redis://127.0.0.1:%s"\n' "$redis_port" >> "$work/wxhost-redis.toml"
taskset -c 1 redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$work" > "$work/redis.out" 2>&1 &

# start_server CMD... : runs it on CPU 0 and sets $addr from its "listening on" line.
start_server() {
    taskset -c 0 "$@" > "$work/server.out" 2> "$work/server.err" &
    server_pid=$!
    for _ in $(seq 1 200); do
        addr=$(sed -n 's/.*listening on //p' "$work/server.out" | head -n 1)
        [ -n "$addr" ] && return 0
        sleep 0.1
    done
    echo "server did not start:" >&2
    cat "$work/server.err" >&2
    exit 1
}

stop_server() {
    kill "$server_pid" && wait "$server_pid" 2>/dev/null || true
}

# round_trips: the Redis commands per push answered so far by this server (its counters are
# reported every second).
round_trips() {
    sleep 1.2
    curl -s "http://$addr/metrics" | python3 -c '
import re, sys
text = sys.stdin.read()
commands = sum(float(v) for v in re.findall(r"^wxhost_redis_commands_total (\S+)", text, re.M))
pushes = sum(float(v) for v in re.findall(r"^wxhost_requests_total\{[^}]*\} (\S+)", text, re.M))
print(f"  {commands:.0f} redis commands for {pushes:.0f} pushes: {commands / max(pushes, 1):.3f} a push")'
}

load() { # TENANT MODE LABEL
    taskset -c 1 target/release/wxhost-loadgen load --url "http://$addr" --tenant "$1" --mode "$2" \
        --connections "$connections" --seconds "$seconds" --label "$3" |
        sed "s/^{/{\"round\":$round,/" | tee -a "$out"
}

for round in $(seq 1 "$rounds"); do
    start_server target/release/wxhost-loadgen hello --listen 127.0.0.1:0
    load bench plain "axum hello-world"
    stop_server

    start_server target/release/wxhost-loadgen native --listen 127.0.0.1:0 --mode plain
    load bench plain "native pipeline, plaintext"
    stop_server
    start_server target/release/wxhost-loadgen native --listen 127.0.0.1:0 --mode safe
    load bench safe "native pipeline, safe mode"
    stop_server

    # A fresh server per mode, as for the native pipeline: the retry table of one run (every MsgId
    # is kept for dedup_ttl_secs) does not weigh on the next.
    for run in plain safe kv redis redis-echo; do
        rm -rf "$work/data"
        config="$work/wxhost.toml"
        case $run in redis*) config="$work/wxhost-redis.toml" ;; esac
        RUST_LOG=warn start_server target/release/wxhost serve --config "$config" --listen 127.0.0.1:0
        sleep 1 # plugins load
        case $run in
            plain) load bench plain "wxhost + echo plugin, plaintext" ;;
            safe) load bench-safe safe "wxhost + echo plugin, safe mode" ;;
            kv) load bench-kv safe "wxhost + visit-counter (kv), safe" ;;
            redis) load bench-kv safe "visit-counter, kv on Redis, safe" ;;
            redis-echo) load bench-safe safe "echo, dedup on Redis, safe" ;;
        esac
        case $run in redis*) round_trips ;; esac
        stop_server
    done
done

python3 - "$out" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
hello = {r["round"]: r["rps"] for r in runs if r["label"] == "axum hello-world"}
labels = list(dict.fromkeys(r["label"] for r in runs))
head = f"{'run':34} {'req/s':>9} {'% hello':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}"
for rnd in sorted(hello):
    print(f"\nround {rnd}\n{head}")
    for r in (r for r in runs if r["round"] == rnd):
        print(f"{r['label']:34} {r['rps']:>9.0f} {100*r['rps']/hello[rnd]:>7.1f}% "
              f"{r['p50_us']/1000:>7.2f} {r['p99_us']/1000:>7.2f} {r['errors']:>6}")
print(f"\nmedian of {len(hello)} rounds (% hello: median of each round's ratio; p99: worst)\n{head}")
for label in labels:
    rs = [r for r in runs if r["label"] == label]
    ratio = statistics.median(100 * r["rps"] / hello[r["round"]] for r in rs)
    print(f"{label:34} {statistics.median(r['rps'] for r in rs):>9.0f} {ratio:>7.1f}% "
          f"{statistics.median(r['p50_us'] for r in rs)/1000:>7.2f} "
          f"{max(r['p99_us'] for r in rs)/1000:>7.2f} {sum(r['errors'] for r in rs):>6}")
PY
