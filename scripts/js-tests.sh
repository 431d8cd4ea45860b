#!/usr/bin/env bash
# Tests of the JavaScript client library (clients/js): `scripts/js-tests.sh` (also run by
# scripts/test.sh).
#
# 1. Finds Node.js (>= 20) and npm, installs clients/js's locked development dependencies
#    (`ws` for Node 20, which has no global WebSocket, and `typescript` to check the
#    declarations; the library itself has none) with `npm ci`, skipped when the lockfile has
#    not changed.
# 2. Builds parley-server (debug) unless PARLEY_SERVER_BIN names a binary already.
# 3. Runs `node --test` in clients/js: the frame types against the protocol's JSON Schema
#    (protocol.test.mjs) and the library against the real server, each test starting its own
#    on a free port with a fresh SQLite file (client.test.mjs).
#
# Extra arguments go to `node --test` (e.g. `--test-name-pattern=renew`).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

log() { printf '[js-tests] %s\n' "$*" >&2; }
die() { printf '[js-tests] ERROR: %s\n' "$*" >&2; exit 1; }

command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
  && [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ] \
  || die "Node.js >= 20 and npm are needed (found: $(node --version 2>/dev/null || echo none)): apt-get install nodejs npm"
log "using Node.js $(node --version)"

cd "$ROOT/clients/js"
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f node_modules/.parley-lock-hash ] && [ "$(cat node_modules/.parley-lock-hash)" = "$lock_hash" ]; then
  log "development dependencies up to date"
else
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error >&2 || die "npm ci failed in clients/js (is the npm registry reachable?)"
  printf '%s\n' "$lock_hash" > node_modules/.parley-lock-hash
fi
cd "$ROOT"

if [ -z "${PARLEY_SERVER_BIN:-}" ]; then
  log "cargo build -p parley-server"
  cargo build -p parley-server --locked
  PARLEY_SERVER_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/parley-server"
fi
[ -x "$PARLEY_SERVER_BIN" ] || die "no parley-server binary at $PARLEY_SERVER_BIN"
export PARLEY_SERVER_BIN

log "node --test clients/js/test"
cd "$ROOT/clients/js"
node --test --test-reporter=spec "$@" test/*.test.mjs
