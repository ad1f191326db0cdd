#!/usr/bin/env bash
# Builds the example plugins for wasm32-wasip2 and copies them to target/plugins/<name>.wasm,
# the plugins folder the main job serves from.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

(cd plugins && cargo build-plugin --locked --quiet)
mkdir -p target/plugins
for manifest in plugins/*/Cargo.toml; do
    name=$(basename "$(dirname "$manifest")")
    cp "target/wasm/wasm32-wasip2/release/${name//-/_}.wasm" "target/plugins/$name.wasm.tmp"
    mv "target/plugins/$name.wasm.tmp" "target/plugins/$name.wasm"
done
echo "plugins in target/plugins: $(cd target/plugins && ls *.wasm | tr '\n' ' ')" >&2
