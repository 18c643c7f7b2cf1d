#!/bin/sh
# End-to-end test of examples/web in headless Chromium against a real authd.
# Needs: Debian's chromium (apt-get install -y chromium), node >= 20, npm, and an authd binary
# (target/debug/authd after cargo build / cargo test, or AUTHD_BIN=...).
set -eu
cd "$(dirname "$0")/../.."
if [ ! -d tests/browser/node_modules ]; then
  npm ci --prefix tests/browser --no-audit --no-fund
fi
# e2e.mjs stops itself after E2E_TIMEOUT_MS (120 s); this is the backstop if it cannot.
exec timeout --kill-after=10 150 node tests/browser/e2e.mjs "$@"
