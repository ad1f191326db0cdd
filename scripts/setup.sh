#!/usr/bin/env bash
# Installs what building and testing wxhost needs, idempotently: the wasm32-wasip2 target for
# plugins (RUSTUP_AUTO_INSTALL=0 means a toolchain file alone would not install it).
set -euo pipefail

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    echo "setup: adding the wasm32-wasip2 target" >&2
    rustup target add wasm32-wasip2
fi
