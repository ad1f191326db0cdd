#!/usr/bin/env bash
# The main job. Until the server lands, `wxhost demo`: one push through verification,
# decryption, parsing, reply and encryption in each mode, printed step by step.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec cargo run --quiet -p wxhost -- demo "$@"
