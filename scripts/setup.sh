#!/usr/bin/env bash
# Installs what building and testing wxhost needs, idempotently: the wasm32-wasip2 target for
# plugins (RUSTUP_AUTO_INSTALL=0 means a toolchain file alone would not install it), and with
# --tests also redis-server, which the tests of the Redis backend start on a loopback port of
# their own, the JavaScript SDK's build tools (componentize-js and rolldown, from npm, as pinned
# in package-lock.json) and the Python SDK's (componentize-py and pytest, from PyPI, as pinned in
# plugin-sdk-py/requirements.lock, in the virtualenv target/py-venv), which build and test the
# JavaScript and Python plugins the tests run (the quick start's server needs none of them).
#   scripts/setup.sh [--tests]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    echo "setup: adding the wasm32-wasip2 target" >&2
    rustup target add wasm32-wasip2
fi

if [ "${1:-}" = --tests ] && ! command -v redis-server >/dev/null 2>&1; then
    echo "setup: installing redis-server" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends redis-server >/dev/null
fi

# `npm ci` again only when the lock changed since the last install (it deletes node_modules).
if [ "${1:-}" = --tests ] && ! cmp -s package-lock.json node_modules/.wxhost-installed-lock 2>/dev/null; then
    echo "setup: installing the JavaScript SDK's tools (npm ci)" >&2
    npm ci --no-audit --no-fund --cache target/npm-cache --loglevel=error
    cp package-lock.json node_modules/.wxhost-installed-lock
fi

# The Python tools, again only when their lock changed; the SDK itself is on the venv's path.
venv=target/py-venv
if [ "${1:-}" = --tests ] && ! cmp -s plugin-sdk-py/requirements.lock "$venv/.wxhost-installed-lock" 2>/dev/null; then
    echo "setup: installing the Python SDK's tools (pip, into $venv)" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --require-virtualenv -r plugin-sdk-py/requirements.lock
    site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    echo "$PWD/plugin-sdk-py" > "$site/wxhost-plugin-sdk.pth"
    cp plugin-sdk-py/requirements.lock "$venv/.wxhost-installed-lock"
fi
