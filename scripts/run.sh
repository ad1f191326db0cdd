#!/usr/bin/env bash
# The main job: wxhost serving the demo tenants of wxhost.toml with the example plugins
# (built into target/plugins, which the server watches). Try it from another terminal:
#   cargo run -q -p wxhost -- send --config wxhost.toml --tenant demo --text hello
# Extra arguments go to `wxhost serve` (e.g. --listen 0.0.0.0:8080).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-plugins.sh
exec cargo run --quiet -p wxhost -- serve --config wxhost.toml "$@"
