#!/usr/bin/env bash
# The whole test suite, on a fresh machine or this one: `scripts/test.sh`.
#
# 1. Finds PostgreSQL and Redis (DATABASE_URL / REDIS_URL, else the defaults on 127.0.0.1),
#    or starts throwaway instances from the installed binaries on free ports under
#    target/test-services/, stopped again on exit. If it can do neither, it fails and says
#    what to install. Tests that need a service never skip: they fail when it is missing.
# 2. Checks formatting and clippy (-D warnings on all targets).
# 3. Runs every test in the workspace against those services.
#
# Extra arguments go to the test runner (e.g. `scripts/test.sh -p parley-layer`).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SERVICES_DIR="$ROOT/target/test-services"
mkdir -p "$SERVICES_DIR"

log() { printf '[test.sh] %s\n' "$*" >&2; }
die() { printf '[test.sh] ERROR: %s\n' "$*" >&2; exit 1; }

CLEANUP=()
cleanup() { for c in "${CLEANUP[@]}"; do eval "$c" || true; done; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# tcp_open HOST PORT: true when something accepts connections there.
tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# --- PostgreSQL ---------------------------------------------------------------------------
find_pg_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && { echo "$d"; return 0; }; done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

pg_reachable() { # URL
  if command -v psql >/dev/null 2>&1; then
    psql "$1" -Atqc 'select 1' >/dev/null 2>&1
  else
    local hostport=${1#*@}; hostport=${hostport%%/*}
    tcp_open "${hostport%%:*}" "${hostport##*:}"
  fi
}

start_throwaway_pg() {
  local bin port dir owner
  bin=$(find_pg_bin) || die "PostgreSQL is not reachable at ${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test} and no PostgreSQL binaries were found. Install them: apt-get install postgresql (or set DATABASE_URL)."
  export PARLEY_PG_BIN="$bin"
  port=$(free_port)
  dir="$SERVICES_DIR/pg-$port"
  rm -rf "$dir"; mkdir -p "$dir"
  owner=$(id -un)
  # initdb refuses to run as root: run the cluster as the unprivileged `postgres` user.
  local as=()
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown -R postgres "$dir"; chmod 755 "$SERVICES_DIR" "$ROOT/target" 2>/dev/null || true
    as=(runuser -u postgres --); owner=postgres
  fi
  log "starting a throwaway PostgreSQL on 127.0.0.1:$port ($bin)"
  "${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" start >/dev/null \
    || { cat "$dir/server.log" >&2; die "PostgreSQL did not start"; }
  CLEANUP+=("${as[*]} '$bin/pg_ctl' -D '$dir/data' -m immediate stop >/dev/null 2>&1")
  "${as[@]}" "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc 'create database test' >/dev/null
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/test"
}

DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
if pg_reachable "$DATABASE_URL"; then
  log "using PostgreSQL at $DATABASE_URL"
  PARLEY_PG_BIN=${PARLEY_PG_BIN:-$(find_pg_bin || true)}
  export PARLEY_PG_BIN
else
  log "PostgreSQL not reachable at $DATABASE_URL"
  start_throwaway_pg
fi
export DATABASE_URL

# --- Redis --------------------------------------------------------------------------------
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
redis_reachable() {
  local hostport=${1#redis://}; hostport=${hostport##*@}; hostport=${hostport%%/*}
  local host=${hostport%%:*} port=${hostport##*:}
  [ "$port" = "$hostport" ] && port=6379
  if command -v redis-cli >/dev/null 2>&1; then
    [ "$(redis-cli -h "$host" -p "$port" ping 2>/dev/null)" = PONG ]
  else
    tcp_open "$host" "$port"
  fi
}
PARLEY_REDIS_SERVER=${PARLEY_REDIS_SERVER:-$(command -v redis-server || true)}
export PARLEY_REDIS_SERVER
if redis_reachable "$REDIS_URL"; then
  log "using Redis at $REDIS_URL"
else
  log "Redis not reachable at $REDIS_URL"
  [ -n "$PARLEY_REDIS_SERVER" ] || die "Redis is not reachable at $REDIS_URL and redis-server is not installed. Install it: apt-get install redis-server (or set REDIS_URL)."
  port=$(free_port)
  dir="$SERVICES_DIR/redis-$port"; mkdir -p "$dir"
  log "starting a throwaway Redis on 127.0.0.1:$port"
  "$PARLEY_REDIS_SERVER" --bind 127.0.0.1 --port "$port" --save "" --appendonly no --dir "$dir" \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
  for _ in $(seq 50); do redis_reachable "redis://127.0.0.1:$port" && break; sleep 0.1; done
  redis_reachable "redis://127.0.0.1:$port" || die "throwaway Redis did not start (see $dir/redis.log)"
  CLEANUP+=("kill \$(cat '$dir/redis.pid')")
  REDIS_URL="redis://127.0.0.1:$port"
fi
export REDIS_URL

# --- Python interop environment (channels_redis), cached in target/ -------------------------
if [ -f scripts/interop-venv.sh ]; then
  # shellcheck source=/dev/null
  source scripts/interop-venv.sh
fi

# --- Checks and tests ---------------------------------------------------------------------
log "cargo fmt --check"
cargo fmt --all -- --check || die "formatting differs: run 'cargo fmt --all'"
log "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

# --- Supply chain: cargo-deny --------------------------------------------------------------
# Licences, bans and sources work offline. Advisories need the RustSec database: checked
# (and failing on a finding) when it can be fetched or a copy is cached; skipped with a
# warning on an offline machine without one, never failed for that alone. Tools live in the
# target directory (CARGO_TARGET_DIR when set, so worktrees sharing one install them once).
TOOLS="${CARGO_TARGET_DIR:-$ROOT/target}/tools"
export PATH="$TOOLS/bin:$PATH"
if ! cargo deny --version >/dev/null 2>&1; then
  log "installing cargo-deny 0.20.2 into $TOOLS (once, about 5 minutes)"
  cargo install cargo-deny --locked --version 0.20.2 --root "$TOOLS"
fi
log "cargo deny check bans licenses sources"
cargo deny --log-level error check bans licenses sources
if cargo deny --log-level error fetch db >/dev/null 2>&1; then
  log "cargo deny check advisories"
  cargo deny --log-level error check advisories
elif ls -d "${CARGO_HOME:-$HOME/.cargo}"/advisory-dbs/*/crates >/dev/null 2>&1; then
  log "cargo deny check advisories (offline, cached advisory database)"
  cargo deny --offline --log-level error check advisories
else
  log "WARNING: advisory database unreachable and not cached: advisories not checked"
fi

# The reverse-proxy test (bins/parley-server/tests/proxy.rs) runs Debian's nginx: installed
# here when missing and we are root; otherwise the test fails and says how to install it.
if [ ! -x "${NGINX_BIN:-/usr/sbin/nginx}" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  log "installing nginx with apt-get (the reverse-proxy test)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx; } >&2 \
    || die "cannot install nginx: apt-get install nginx (or set NGINX_BIN)"
fi
# The Sentinel failover test (bins/parley-server/tests/sentinel.rs) runs Debian's
# redis-sentinel and redis-server (its own, on free ports) and redis-cli: installed here when
# missing and we are root; otherwise stop and say how to install them.
PARLEY_REDIS_SENTINEL=${PARLEY_REDIS_SENTINEL:-$(command -v redis-sentinel || true)}
if [ -z "$PARLEY_REDIS_SENTINEL" ] || [ -z "$PARLEY_REDIS_SERVER" ] || ! command -v redis-cli >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing redis-sentinel and redis-server with apt-get (the Sentinel failover test)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-sentinel redis-server redis-tools; } >&2 \
      || die "cannot install redis-sentinel: apt-get install redis-sentinel redis-server (or set PARLEY_REDIS_SENTINEL)"
    PARLEY_REDIS_SENTINEL=$(command -v redis-sentinel)
    PARLEY_REDIS_SERVER=${PARLEY_REDIS_SERVER:-$(command -v redis-server)}
  else
    die "the Sentinel failover test needs redis-sentinel, redis-server and redis-cli: apt-get install redis-sentinel redis-server redis-tools (or set PARLEY_REDIS_SENTINEL / PARLEY_REDIS_SERVER)"
  fi
fi
export PARLEY_REDIS_SENTINEL PARLEY_REDIS_SERVER
# The slow-clients test (bins/parley-server/tests/slow_clients.rs) opens 3,000 connections:
# the soft open-files limit is often 1,024.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if cargo nextest --version >/dev/null 2>&1; then
  log "cargo nextest run --workspace"
  cargo nextest run --workspace --locked --no-fail-fast "$@"
  log "doc tests"
  cargo test --workspace --locked --doc "$@"
else
  log "cargo test --workspace (cargo-nextest not installed)"
  cargo test --workspace --locked --no-fail-fast "$@"
fi
# --- Fuzzing: a short bounded run of every cargo-fuzz target (fuzz/) --------------------------
# FUZZ_SECONDS per target (default 20; 0 skips). Longer runs: see docs/reliability.md.
if [ "${FUZZ_SECONDS:-20}" != 0 ]; then
  log "fuzzing (${FUZZ_SECONDS:-20}s per target)"
  FUZZ_SECONDS=${FUZZ_SECONDS:-20} bash scripts/fuzz.sh
fi
# --- The JavaScript client library (clients/js) against the real server --------------------
log "JavaScript client tests"
bash scripts/js-tests.sh
# --- Browser tests of the web client (headless Chromium) -----------------------------------
if [ -f scripts/browser-tests.sh ]; then
  log "browser tests"
  bash scripts/browser-tests.sh
fi
log "all tests passed"
