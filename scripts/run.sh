#!/usr/bin/env bash
# The main job. Until the server lands: `wxhost demo` with the example `echo` plugin, one push
# through verification, decryption, the plugin, and encryption in each mode, step by step.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-plugins.sh
exec cargo run --quiet -p wxhost -- demo --plugin target/plugins/echo.wasm "$@"
