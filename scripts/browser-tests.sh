#!/usr/bin/env bash
# Browser tests of the web client: `scripts/browser-tests.sh` (also run by scripts/test.sh).
#
# 1. Finds headless Chromium (CHROMIUM_PATH, else /usr/bin/chromium), installing Debian's
#    `chromium` and `chromium-driver` with apt-get when it is missing and we are root; fails
#    with what to install otherwise. Nothing here downloads a browser build of its own.
# 2. Finds Node.js (>= 20, what playwright-core needs) and npm, installs tests/browser's locked dependencies
#    (playwright-core, and axe-core for the colour-contrast checks) with `npm ci`, skipped when the lockfile has not changed.
# 3. Builds parley-server (debug), then runs `node --test` in tests/browser/. The tests start
#    the server themselves on a free port with a fresh SQLite file in a temporary directory
#    (they kill and restart it mid-chat), and save screenshots to target/browser-screenshots/.
#
# Extra arguments go to `node --test` (e.g. `--test-name-pattern=call`).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

log() { printf '[browser-tests] %s\n' "$*" >&2; }
die() { printf '[browser-tests] ERROR: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"; else return 1; fi
}

apt_install() { # packages...
  command -v apt-get >/dev/null 2>&1 || return 1
  log "installing $* with apt-get"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || return 1
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2 || return 1
}

# --- Chromium -------------------------------------------------------------------------------
CHROMIUM_PATH=${CHROMIUM_PATH:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM_PATH" ]; then
  log "Chromium not found at $CHROMIUM_PATH"
  apt_install chromium chromium-driver \
    || die "cannot install Chromium. Install Debian's packages by hand: apt-get install chromium chromium-driver (or set CHROMIUM_PATH to a Chromium binary)."
  [ -x "$CHROMIUM_PATH" ] || die "Chromium is still missing at $CHROMIUM_PATH after apt-get install chromium"
fi
"$CHROMIUM_PATH" --version >/dev/null 2>&1 || die "$CHROMIUM_PATH does not run ($CHROMIUM_PATH --version failed)"
log "using $("$CHROMIUM_PATH" --version 2>/dev/null | head -1)"
export CHROMIUM_PATH

# --- Node.js and the test dependencies ------------------------------------------------------
node_ok() { command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
  && [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ]; }
if ! node_ok; then
  apt_install nodejs npm || die "Node.js >= 20 and npm are needed: apt-get install nodejs npm"
  node_ok || die "Node.js >= 20 and npm are needed (found: $(node --version 2>/dev/null || echo none)); Debian 12's nodejs is 18: install Node.js 20 from your distribution's backports or nodejs.org packages"
fi
log "using Node.js $(node --version)"

cd "$ROOT/tests/browser"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f node_modules/.parley-lock-hash ] && [ "$(cat node_modules/.parley-lock-hash)" = "$lock_hash" ] \
  && [ -d node_modules/playwright-core ]; then
  log "test dependencies up to date"
else
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error >&2 || die "npm ci failed in tests/browser (is the npm registry reachable?)"
  printf '%s\n' "$lock_hash" > node_modules/.parley-lock-hash
fi
cd "$ROOT"

# --- The server -----------------------------------------------------------------------------
log "cargo build -p parley-server"
cargo build -p parley-server --locked
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PARLEY_SERVER_BIN="$TARGET_DIR/debug/parley-server"
[ -x "$PARLEY_SERVER_BIN" ] || die "the build did not produce $PARLEY_SERVER_BIN"
export PARLEY_SERVER_BIN

PARLEY_TEST_DIR=$(mktemp -d "${TMPDIR:-/tmp}/parley-browser.XXXXXX")
export PARLEY_TEST_DIR
trap 'rm -rf "$PARLEY_TEST_DIR"' EXIT

export PARLEY_SCREENSHOTS="$ROOT/target/browser-screenshots"
rm -rf "$PARLEY_SCREENSHOTS"
mkdir -p "$PARLEY_SCREENSHOTS"

# --- The tests ------------------------------------------------------------------------------
log "node --test tests/browser (server logs: $PARLEY_TEST_DIR)"
status=0
(cd "$ROOT/tests/browser" && node --test --test-concurrency=1 --test-reporter=spec "$@" ./*.test.mjs) || status=$?
if [ "$status" != 0 ]; then
  for f in "$PARLEY_TEST_DIR"/server-*.log; do
    [ -f "$f" ] || continue
    log "last lines of $f:"
    tail -n 30 "$f" >&2
  done
  die "browser tests failed"
fi
log "screenshots in $PARLEY_SCREENSHOTS:"
ls "$PARLEY_SCREENSHOTS" >&2
