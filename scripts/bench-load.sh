#!/usr/bin/env bash
# Load benchmark, in one run on this machine: a bare axum hello-world, the native pipeline
# (verify, decrypt, parse, dedup, encode, encrypt with a native echo, no plugins), and wxhost
# with the echo plugin, each in plaintext and safe mode. The server is pinned to CPU 0 and the
# load generator to CPU 1. Results: one JSON line per run in target/bench/load.jsonl, and a
# table on stdout.
#   scripts/bench-load.sh [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
connections=${2:-16}

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
TOML

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

load() { # TENANT MODE LABEL
    taskset -c 1 target/release/wxhost-loadgen load --url "http://$addr" --tenant "$1" --mode "$2" \
        --connections "$connections" --seconds "$seconds" --label "$3" | tee -a "$out"
}

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
for mode in plain safe; do
    RUST_LOG=warn start_server target/release/wxhost serve --config "$work/wxhost.toml" --listen 127.0.0.1:0
    sleep 1 # plugins load
    if [ "$mode" = plain ]; then
        load bench plain "wxhost + echo plugin, plaintext"
    else
        load bench-safe safe "wxhost + echo plugin, safe mode"
    fi
    stop_server
done

python3 - "$out" <<'PY'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
base = runs[0]["rps"]
print(f"\n{'run':34} {'req/s':>9} {'% hello':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}")
for r in runs:
    print(f"{r['label']:34} {r['rps']:>9.0f} {100*r['rps']/base:>7.1f}% {r['p50_us']/1000:>7.2f} {r['p99_us']/1000:>7.2f} {r['errors']:>6}")
PY
