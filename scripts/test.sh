#!/usr/bin/env bash
# The whole test suite: unit, integration, property and doc tests of the workspace (the test
# crate's build script builds the example and misbehaving plugins, Rust and JavaScript), and the
# example plugins' and the JavaScript SDK's own unit tests, run natively (cargo, node --test).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
else
    cargo test --workspace --no-fail-fast --lib --bins --tests
fi
cargo test --workspace --doc
(cd plugins && cargo test --locked)
npm test --workspaces --if-present --silent
python="$PWD/target/py-venv/bin/python"
for dir in plugin-sdk-py plugins-py/*/; do
    (cd "$dir" && "$python" -m pytest -q -p no:cacheprovider)
done
