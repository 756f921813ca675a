#!/usr/bin/env bash
# Installs what the test suite needs on a fresh machine, and fails loudly if it can't:
#  - libclang, for kcp-sys (it compiles the reference ikcp.c and runs bindgen);
#  - a Python virtual environment in .venv with the `kcp` package, which vendors
#    ikcp.c: the C peer of the interop tests (tools/kcp_ref_peer.py);
#  - Debian's chromium, for the browser tests (no browser download), and the
#    web/ npm packages pinned by web/package-lock.json (esbuild, TypeScript,
#    playwright-core, @noble/*).
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! ldconfig -p | grep -q 'libclang[-.0-9]*\.so'; then
    echo "setup: installing libclang (for kcp-sys's bindgen)"
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: libclang is missing and this is not root: run 'apt-get install libclang-dev'" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libclang-dev >/dev/null
fi

if ! .venv/bin/python -c 'import kcp' 2>/dev/null; then
    echo "setup: creating .venv with the C KCP reference (PyPI package kcp)"
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r tools/requirements.txt
    .venv/bin/python -c 'import kcp'
fi
if ! command -v chromium >/dev/null; then
    echo "setup: installing chromium (for the browser tests)"
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: chromium is missing and this is not root: run 'apt-get install chromium'" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

# npm ci again whenever the lock file changed since the last install.
if ! cmp -s web/package-lock.json web/node_modules/.hearth-installed-lock 2>/dev/null; then
    echo "setup: installing the web/ npm packages (npm ci)"
    (cd web && npm ci --no-audit --no-fund --loglevel=error)
    cp web/package-lock.json web/node_modules/.hearth-installed-lock
fi
echo "setup: test environment ready"
