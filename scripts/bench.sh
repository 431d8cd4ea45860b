#!/usr/bin/env bash
# The whole fan-out comparison, one command: `scripts/bench.sh` (≈ 20–30 min on 2 cores) or
# `scripts/bench.sh --quick` (≈ 5 min, smaller loads). Writes the issue-7 sections of
# docs/benchmarks.md (between the `bench.sh` markers) and keeps every raw JSON line under
# target/bench/.
#
# Options:
#   --quick              smaller loads (for a smoke run; figures are not comparable)
#   --only LIST          comma-separated scenarios: calib,fanout,rooms,huge,idle,multi,storm
#                        (storm is not in the default list: run it with --only storm)
#   --no-django          skip the Django Channels baseline
#   --no-docs            do not touch docs/benchmarks.md (print the tables instead)
#   --no-build           use the release binaries already in target/release
#
# PARLEY_SERVER_BIN=path benchmarks another build of parley-server (say, a copy of an older
# release binary) with the same load generator: how before/after figures are measured.
# PARLEY_BENCH_BIN=path runs another build of the load generator (with --no-build and copies
# of both, a run is safe from another worktree rebuilding a shared CARGO_TARGET_DIR).
# STORM_CONFIGS="memory:sqlite redis:postgres memory:sqlite:big" picks the storm rows
# (layer:store, `:big` for 19,000 clients; default: all four layer/store pairs and the big one);
# each row runs a cold storm, a restarted storm and the same load without a storm.
# STORM_SENDERS=N sends from N rooms instead of every room (clients / 100).
# PARLEY_BENCH_SERVER_ENV="VAR=value ..." adds settings to every parley-server started (an A/B
# of one feature on the same build, e.g. PARLEY_METRICS_BIND=127.0.0.1:9184).
#
# What it runs, on loopback only, against:
#   - Parley (`parley-server`, release build), in-memory and Redis layers, SQLite and
#     PostgreSQL stores, every message persisted;
#   - the Django Channels tutorial app in ../shared/peers/django_chat (daphne, one process per
#     server), in a venv created at target/peers-venv from its requirements.txt;
#   - the bare tokio fan-out inside parley-bench (no auth, no JSON, no persistence): the limit.
# Each run gets a fresh server and a fresh database; the load generator is
# `parley-bench run` (see crates/parley-bench). Redis is a throwaway redis-server started here
# (so flushing it between runs never touches anyone else's data); PostgreSQL is DATABASE_URL's
# server (default postgres://postgres@127.0.0.1:5432), in databases created and dropped here.
#
# Parley settings changed for the benchmark (the defaults protect production):
#   PARLEY_BCRYPT_COST=4       accounts are created in bulk before timing (cost 12 ≈ 0.25 s each)
#   PARLEY_AUTH_RATE=0         thousands of register/login requests come from one address
#   PARLEY_HTTP_MAX_CONNECTIONS_PER_ADDRESS=0: so do thousands of concurrent handshakes
#   PARLEY_MESSAGE_RATE/BURST  1e6: senders run as fast as their send window allows
#   PARLEY_ROOM_CREATE_RATE/BURST 1e6: one account creates every room of a scenario
#   PARLEY_ACCESS_TOKEN_TTL_SECS=3600: provisioning 19,000 accounts outlasts a 5-minute token
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SHARED=${SHARED:-$ROOT/../shared}
PEERS=$SHARED/peers
OUT=$ROOT/target/bench
mkdir -p "$OUT"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=$OUT/results-$STAMP.jsonl
: >"$RESULTS"

QUICK=0 ONLY="calib,fanout,rooms,huge,idle,multi" DJANGO=1 DOCS=1 BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --only) ONLY=$2; shift ;;
    --no-django) DJANGO=0 ;;
    --no-docs) DOCS=0 ;;
    --no-build) BUILD=0 ;;
    *) echo "usage: scripts/bench.sh [--quick] [--only LIST] [--no-django] [--no-docs] [--no-build]" >&2; exit 2 ;;
  esac
  shift
done

log() { printf '[bench.sh %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf '[bench.sh] ERROR: %s\n' "$*" >&2; exit 1; }
want() { [[ ",$ONLY," == *",$1,"* ]]; }

# Up to the hard limit: 20,000 idle connections need as many descriptors in the server and in
# the load generator (each its own process).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT=$(ulimit -n)

PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() { # PORT SECONDS
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
stop() { # PID
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# --- build, venv, services ----------------------------------------------------------------
if [ "$BUILD" = 1 ]; then
  log "building parley-server and parley-bench (release)"
  cargo build --release -q -p parley-server -p parley-bench
fi
# Where cargo put them (CARGO_TARGET_DIR, when worktrees share one).
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SERVER_BIN=${PARLEY_SERVER_BIN:-$TARGET_DIR/release/parley-server}
BENCH_BIN=${PARLEY_BENCH_BIN:-$TARGET_DIR/release/parley-bench}

VENV=$TARGET_DIR/peers-venv
if [ "$DJANGO" = 1 ]; then
  [ -f "$PEERS/django_chat/run.sh" ] || die "the Django Channels baseline was not found at $PEERS/django_chat. It is not part of this repository: point SHARED at a folder holding peers/django_chat (the Django Channels tutorial app: a consumer at ws/chat/<room>/ joining group chat_<room>, run by peers/django_chat/run.sh PORT), or run with --no-django"
  REQ=$PEERS/django_chat/requirements.txt
  want_hash=$(sha256sum "$REQ" | cut -d' ' -f1)
  if [ ! -x "$VENV/bin/daphne" ] || [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$want_hash" ]; then
    log "creating $VENV from $REQ"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
    echo "$want_hash" >"$VENV/.requirements.sha256"
  fi
fi

command -v redis-server >/dev/null || die "redis-server not found (apt-get install redis-server)"
REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$OUT" --logfile "$OUT/redis.log" --maxclients 30000 &
PIDS+=($!)
wait_port "$REDIS_PORT" 10 || die "redis-server did not start"
REDIS_URL_BENCH=redis://127.0.0.1:$REDIS_PORT
flush_redis() { redis-cli -p "$REDIS_PORT" flushall >/dev/null; }

PG_BASE=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
PG_SERVER=${PG_BASE%/*}
PG_HOSTPORT=${PG_SERVER##*@}
PG_HOST=${PG_HOSTPORT%:*}
PG_PORT=${PG_HOSTPORT##*:}
psql "$PG_BASE" -Atqc 'select 1' >/dev/null 2>&1 || die "PostgreSQL not reachable at $PG_BASE (set DATABASE_URL)"
fresh_pg() { # DBNAME
  psql "$PG_BASE" -qc "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null
  psql "$PG_BASE" -qc "CREATE DATABASE $1" >/dev/null
}

SECRET=parley-bench-secret-0123456789abcdef0123456789
RUN=0

# --- servers ------------------------------------------------------------------------------
# start_parley LAYER STORE [N]: starts N (default 1) parley-server processes sharing one
# database; sets SERVERS (addresses) and SPIDS (pids).
start_parley() {
  local layer=$1 store=$2 count=${3:-1} keep=${4:-} dir db i port
  # keep: start again on the previous run's database (a restarted server), Redis untouched.
  [ -n "$keep" ] || RUN=$((RUN + 1))
  dir=$OUT/run-$RUN
  if [ -z "$keep" ]; then
    rm -rf "$dir"
    mkdir -p "$dir"
  fi
  case "$store" in
    sqlite) db="sqlite://$dir/parley.sqlite3" ;;
    postgres) [ -n "$keep" ] || fresh_pg parley_bench; db="$PG_SERVER/parley_bench" ;;
  esac
  [ -n "$keep" ] || flush_redis
  SERVERS=() SPIDS=()
  for ((i = 0; i < count; i++)); do
    port=$(free_port)
    env -u REDIS_URL PARLEY_BIND=127.0.0.1:$port DATABASE_URL="$db" PARLEY_LAYER="$layer" \
      REDIS_URL="$REDIS_URL_BENCH" PARLEY_REDIS_PREFIX=bench PARLEY_SECRET="$SECRET" \
      PARLEY_SECRET_FILE="$dir/secret" PARLEY_BCRYPT_COST=4 PARLEY_AUTH_RATE=0 \
      PARLEY_HTTP_MAX_CONNECTIONS_PER_ADDRESS=0 \
      PARLEY_MESSAGE_RATE=1000000 PARLEY_MESSAGE_BURST=1000000 \
      PARLEY_ROOM_CREATE_RATE=1000000 PARLEY_ROOM_CREATE_BURST=1000000 \
      PARLEY_ACCESS_TOKEN_TTL_SECS=3600 PARLEY_LOG_LEVEL=warn ${PARLEY_BENCH_SERVER_ENV:-} \
      "$SERVER_BIN" >"$dir/server-$i${keep:+-restarted}.log" 2>&1 &
    SPIDS+=($!)
    PIDS+=($!)
    wait_port "$port" 60 || { cat "$dir/server-$i${keep:+-restarted}.log" >&2; die "parley-server did not start"; }
    SERVERS+=("127.0.0.1:$port")
    # Two processes migrating one database at once would race: start them one by one.
  done
}

# start_django LAYER DB PERSIST [N]: N daphne processes (one per port).
start_django() {
  local layer=$1 db=$2 persist=$3 count=${4:-1} dir i port
  RUN=$((RUN + 1))
  dir=$OUT/run-$RUN
  rm -rf "$dir"
  mkdir -p "$dir"
  [ "$db" = postgres ] && fresh_pg django_bench
  flush_redis
  SERVERS=() SPIDS=()
  for ((i = 0; i < count; i++)); do
    port=$(free_port)
    VENV=$VENV LAYER=$layer DB=$db PERSIST=$persist SQLITE_PATH=$dir/django.sqlite3 \
      REDIS_HOST=127.0.0.1 REDIS_PORT=$REDIS_PORT PGHOST=$PG_HOST PGPORT=$PG_PORT PGDB=django_bench \
      PIDFILE=$dir/pid-$i "$PEERS/django_chat/run.sh" "$port" >"$dir/server-$i.log" 2>&1 &
    PIDS+=($!)
    wait_port "$port" 120 || { cat "$dir/server-$i.log" >&2; die "daphne did not start"; }
    SPIDS+=("$(cat "$dir/pid-$i")")
    SERVERS+=("127.0.0.1:$port")
  done
}

start_bare() {
  local port
  port=$(free_port)
  "$BENCH_BIN" bare-server --bind 127.0.0.1:$port &
  PIDS+=($!)
  SPIDS=($!)
  SERVERS=("127.0.0.1:$port")
  wait_port "$port" 10 || die "bare server did not start"
}

stop_servers() {
  local p
  for p in "${SPIDS[@]}"; do stop "$p"; done
  # run.sh execs into daphne, so its pid is the server's.
  sleep 0.5
}

# bench LABEL SCENARIO TARGET CONFIG -- parley-bench run args...: one measured run, its JSON
# line appended to RESULTS with the label and server config.
bench() {
  local label=$1 scenario=$2 target=$3 config=$4 line args=() s p
  shift 4
  for s in "${SERVERS[@]}"; do args+=(--server "$s"); done
  for p in "${SPIDS[@]}"; do args+=(--pid "$p"); done
  log "$scenario / $label: parley-bench run --target $target $*"
  set +e
  timeout 900 "$BENCH_BIN" run --scenario "$scenario" --target "$target" "${args[@]}" "$@" \
    >"$OUT/last.txt" 2>"$OUT/last.err"
  local rc=$?
  set -e
  sed -n '/^{/!p' "$OUT/last.txt" >&2
  line=$(grep '^{' "$OUT/last.txt" | tail -1 || true)
  if [ -z "$line" ]; then
    tail -5 "$OUT/last.err" >&2
    line="{\"plan\":{\"scenario\":\"$scenario\",\"target\":\"$target\"},\"ok\":false,\"notes\":[\"the load generator failed (exit $rc): $(tail -1 "$OUT/last.err" | tr -d '"\\')\"]}"
  fi
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["label"]=sys.argv[2]; r["config"]=sys.argv[3]; r["command"]=sys.argv[4]; print(json.dumps(r))' \
    "$line" "$label" "$config" "parley-bench run --target $target $*" >>"$RESULTS"
}

# Runs one load against: Parley (each LAYER × STORE), Django (memory and redis layers, no
# persistence, as the tutorial), the bare reference.
#   matrix SCENARIO PARLEY_CONFIGS DJANGO_CONFIGS -- load args...
# PARLEY_CONFIGS: e.g. "memory:sqlite memory:postgres redis:sqlite redis:postgres"
# DJANGO_CONFIGS: e.g. "memory:sqlite:0 redis:sqlite:0" (layer:db:persist), or "" for none.
matrix() {
  local scenario=$1 pconfs=$2 dconfs=$3 c layer store persist
  shift 4
  for c in $pconfs; do
    layer=${c%%:*} store=${c##*:}
    start_parley "$layer" "$store"
    bench "Parley, $layer layer, $store" "$scenario" parley "parley/$layer/$store" "$@"
    stop_servers
  done
  if [ "$DJANGO" = 1 ]; then
    for c in $dconfs; do
      IFS=: read -r layer store persist <<<"$c"
      start_django "$layer" "$store" "$persist"
      local what="no persistence"
      [ "$persist" = 1 ] && what="every message saved ($store)"
      bench "Django Channels, $layer layer, $what" "$scenario" django "django/$layer/$store/$persist" \
        "$@" $DJANGO_LIMITS
      stop_servers
    done
  fi
  start_bare
  bench "bare tokio fan-out (limit reference)" "$scenario" bare "bare" "$@"
  stop_servers
}

ALL4="memory:sqlite memory:postgres redis:sqlite redis:postgres"
# Django is bounded in time: it stops sending after 20 s (what it sent still counts in full).
DJANGO_LIMITS="--max-send-secs 20 --connect-secs 240"
if [ "$QUICK" = 1 ]; then
  CAL=(--clients 200 --rooms 20 --senders 20 --messages 200 --window 8)
  FAN=(--clients 300 --rooms 10 --senders 10 --messages 200 --window 8)
  ROOMS=(--clients 1000 --layout direct --messages 10 --window 4)
  HUGE=(--clients 2000 --rooms 1 --senders 1 --messages 50 --window 4)
  IDLE_N=2000 IDLE_DJANGO=1000
  MULTI=(--clients 300 --rooms 10 --senders 10 --messages 200 --window 8)
  DJANGO_LIMITS="--max-send-secs 8 --connect-secs 120"
else
  CAL=(--clients 200 --rooms 20 --senders 20 --messages 2000 --window 8)
  FAN=(--clients 1000 --rooms 10 --senders 10 --messages 2000 --window 8)
  ROOMS=(--clients 5000 --layout direct --messages 40 --window 4)
  HUGE=(--clients 10000 --rooms 1 --senders 1 --messages 100 --window 4)
  # The hard descriptor limit is per process: the server and the load generator each need one
  # per connection, plus a few.
  IDLE_N=$((FD_LIMIT - 500))
  [ "$IDLE_N" -gt 20000 ] && IDLE_N=20000
  IDLE_DJANGO=5000
  MULTI=(--clients 1000 --rooms 10 --senders 10 --messages 2000 --window 8)
fi

# Storms (issue 19): every client connecting at once, sending one second after the last is in.
# A cold start through the tutorial endpoint (each room created by its first client), then the
# same server restarted on its database and every client back at once through `/ws` + `join`.
# Clients connect from four loopback addresses: a retried handshake takes a fresh port, and
# one address's ~28,000 run out in a storm of 19,000 (issue 19).
STORM_N=5000 STORM_BIG_N=19000
[ "$QUICK" = 1 ] && STORM_N=1000 STORM_BIG_N=2000
storm_args() { # CLIENTS CONNECT_CONCURRENCY
  echo --clients "$1" --rooms $(($1 / 100)) --senders "${STORM_SENDERS:-$(($1 / 100))}" \
    --messages 200 --window 4 --connect-concurrency "$2" --one-burst --settle-secs 1 \
    --connect-secs 600 --user-prefix storm \
    --source-addr 127.0.0.1 --source-addr 127.0.0.2 --source-addr 127.0.0.3 --source-addr 127.0.0.4
}

T_START=$(date +%s)
if want storm; then
  for c in ${STORM_CONFIGS:-$ALL4 memory:sqlite:big}; do
    IFS=: read -r layer store big <<<"$c"
    n=$STORM_N
    [ -n "$big" ] && n=$STORM_BIG_N
    start_parley "$layer" "$store"
    # shellcheck disable=SC2046
    bench "Parley, $layer layer, $store: cold start, $n clients (tutorial endpoint)" storm tutorial \
      "parley/$layer/$store/cold/$n" $(storm_args "$n" "$n")
    stop_servers
    start_parley "$layer" "$store" 1 keep
    # shellcheck disable=SC2046
    bench "Parley, $layer layer, $store: restarted, $n clients (/ws + join)" storm parley \
      "parley/$layer/$store/restart/$n" $(storm_args "$n" "$n")
    stop_servers
    # The same load without a storm (64 connecting at a time): the steady state the storms'
    # p99 is measured against.
    start_parley "$layer" "$store" 1 keep
    # shellcheck disable=SC2046
    bench "Parley, $layer layer, $store: no storm, $n clients (64 at a time, /ws + join)" storm \
      parley "parley/$layer/$store/paced/$n" $(storm_args "$n" 64)
    stop_servers
  done
fi
if want calib; then
  matrix calib "$ALL4" "memory:sqlite:0 redis:sqlite:0 memory:sqlite:1" -- "${CAL[@]}"
fi
if want fanout; then
  matrix fanout "$ALL4" "memory:sqlite:0 redis:sqlite:0" -- "${FAN[@]}"
fi
if want rooms; then
  matrix rooms "$ALL4" "memory:sqlite:0" -- "${ROOMS[@]}"
fi
if want huge; then
  matrix huge "memory:sqlite redis:sqlite" "memory:sqlite:0" -- "${HUGE[@]}"
fi
if want idle; then
  IDLE=(--senders 0 --messages 0 --rooms 100 --settle-secs 5 --connect-concurrency 128)
  start_parley memory sqlite
  bench "Parley, memory layer, sqlite" idle parley parley/memory/sqlite --clients "$IDLE_N" "${IDLE[@]}"
  stop_servers
  if [ "$DJANGO" = 1 ]; then
    start_django memory sqlite 0
    bench "Django Channels, memory layer" idle django django/memory/sqlite/0 --clients "$IDLE_DJANGO" "${IDLE[@]}" --connect-secs 400
    stop_servers
    start_django redis sqlite 0
    bench "Django Channels, redis layer" idle django django/redis/sqlite/0 --clients "$IDLE_DJANGO" "${IDLE[@]}" --connect-secs 400
    stop_servers
  fi
  start_parley memory sqlite
  bench "Parley, memory layer, sqlite, no room joined" idle parley parley/memory/sqlite --clients "$IDLE_N" "${IDLE[@]}" --no-join
  stop_servers
  start_bare
  bench "bare tokio fan-out" idle bare bare --clients "$IDLE_N" "${IDLE[@]}"
  stop_servers
fi
if want multi; then
  for store in sqlite postgres; do
    start_parley redis "$store" 2
    bench "Parley, 2 processes, redis layer, $store" multi parley "parley/redis/$store/x2" "${MULTI[@]}"
    stop_servers
  done
  if [ "$DJANGO" = 1 ]; then
    start_django redis sqlite 0 2
    bench "Django Channels, 2 daphne processes, redis layer" multi django django/redis/sqlite/0/x2 "${MULTI[@]}" $DJANGO_LIMITS
    stop_servers
  fi
fi
T_TOTAL=$(($(date +%s) - T_START))
log "all runs done in ${T_TOTAL}s; raw results: $RESULTS"

# --- the report ---------------------------------------------------------------------------
MACHINE="$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/^Mem:/{print $2}') GiB, $(. /etc/os-release && echo "$PRETTY_NAME")"
VERSIONS="$(rustc --version | cut -d' ' -f1-2); parley $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates bins || echo '+local changes')"
if [ "$DJANGO" = 1 ]; then
  VERSIONS="$VERSIONS; $("$VENV/bin/python" --version 2>&1), $("$VENV/bin/python" -m pip freeze 2>/dev/null | grep -iE '^(django|channels|channels.redis|daphne|twisted)==' | tr '\n' ' ')"
fi
VERSIONS="$VERSIONS; $(redis-server --version | cut -d' ' -f1-3); $(psql "$PG_BASE" -Atc 'show server_version' | cut -d' ' -f1 | sed 's/^/PostgreSQL /')"
MODE=full
[ "$QUICK" = 1 ] && MODE="quick (--quick: small loads)"

python3 - "$RESULTS" "$ROOT/docs/benchmarks.md" "$DOCS" "$MACHINE" "$VERSIONS" "$MODE" "$T_TOTAL" "$STAMP" <<'PY'
import json, sys, re
results_path, doc_path, write_docs, machine, versions, mode, total, stamp = sys.argv[1:9]
rows = [json.loads(l) for l in open(results_path) if l.strip()]

TITLES = {
    "calib": ("Fan-out at Django's saturating load: 200 clients, 20 rooms, 20 senders, window 8",
              "The load the issue's targets are stated on: 20 rooms of 10 clients, one sender in each, each sender keeping 8 messages in flight (a message stays in flight until every member of its room, the sender included, has received it)."),
    "fanout": ("Scenario 1, fan-out: 1,000 clients in 10 rooms, 10 senders",
               "Rooms of 100, one sender each, window 8."),
    "rooms": ("Scenario 2, many rooms: 5,000 clients in 2,500 direct rooms, everyone sending",
              "Pairs in direct (1:1) rooms; every client sends with a window of 4."),
    "huge": ("Scenario 3, one huge room: 10,000 clients, 1 sender",
             "Every message reaches 10,000 sockets; one sender, window 4."),
    "idle": ("Scenario 4, idle: authenticated connections held open, memory per connection",
             "Clients connect (Parley: authenticate with a token and join one of 100 rooms; Django: join the room group of its URL) and stay idle; memory per connection = (server RSS with every client connected − RSS before) / clients."),
    "storm": ("Storms: every client connecting at once, sending one second after the last is in",
              "50 (or 190) rooms of 100; all clients connect in one burst, and one second after the last connection is open one sender per room starts (window 4, 200 messages). *Cold start*: a fresh database, through the tutorial endpoint (`/ws/chat/{room}/?token=…`), each room created by its first client. *Restarted*: the same server stopped and started again on that database, every client back at once through `/ws` and `join`. *p99 by second*: fan-out p99 of the messages sent in each second of sending (ms); *recovered after*: seconds of sending until every later second's p99 is at most 100 ms."),
    "multi": ("Scenario 5, two server processes on one Redis, clients split across them",
              "1,000 clients in 10 rooms, 10 senders, window 8; client i connects to process i mod 2, so every room spans both processes."),
}

def f(x, nd=0):
    if x is None: return "–"
    if isinstance(x, float):
        return f"{x:,.{nd}f}"
    return f"{x:,}"

def lat(r, k, which="latency_ms"):
    v = (r.get(which) or {}).get(k)
    return "–" if not v else (f"{v:,.1f}" if v >= 1 else f"{v:.2f}")

out = []
out.append("<!-- bench.sh:begin (generated by scripts/bench.sh; edit the script, not this block) -->")
out.append("## Fan-out end to end: Parley vs Django Channels vs a bare tokio fan-out")
out.append("")
out.append(f"Generated by `scripts/bench.sh` ({mode}) at {stamp}, in {int(total)//60} min {int(total)%60} s. "
           "Every figure comes from `parley-bench run` (crates/parley-bench): real WebSocket clients on loopback, "
           "a send timestamp in every message body, every delivery's end-to-end latency in an HdrHistogram, "
           "and every (member, message) pair tracked while the message is in flight: a member that misses a message, gets one twice, "
           "or gets a sender's messages out of order fails the run, each counted apart (never from totals). "
           "Deliveries are the *fan-out*: copies to the other members of the room; the sender's own copy "
           "(Parley: its acknowledgement once the message is stored; Django and bare: the broadcast's echo, as in the tutorial) is counted and timed apart. "
           "Parley persists every message (SQLite or PostgreSQL); the Django rows do not persist unless said so (the tutorial's consumer); "
           "the bare reference has no auth, JSON or persistence.")
out.append("")
out.append(f"- Machine: {machine}; load generator on the same box (it competes for the same 2 cores).")
out.append(f"- Versions: {versions}.")
out.append("- Command: `scripts/bench.sh` (one server process per row unless said; fresh database and Redis per row; raw JSON lines in `target/bench/results-*.jsonl`).")
out.append("- Columns: *deliv/s* = fan-out deliveries received ÷ (last delivery − first send); *× Django* = this row ÷ the Django row with the same layer (no persistence); *× bare* = this row ÷ the bare fan-out; latency in ms, fan-out copies (p50 … max) and the sender's own copy (*own p50*, *own p99*); *expected* = Σ messages sent × (room size − 1); *lost* = fan-out copies still missing after a 20 s drain, member by member (*own lost*: senders that never got their own copy); *dup* = copies of a message a member already had; *order* = copies that reached a member after a later message of the same sender; *RSS* = the server's peak resident memory (VmHWM), summed over processes.")
out.append("")
for sc in ["calib", "fanout", "rooms", "huge", "multi", "idle", "storm"]:
    rs = [r for r in rows if r.get("plan", {}).get("scenario") == sc]
    if not rs: continue
    title, desc = TITLES[sc]
    out.append(f"### {title}")
    out.append("")
    out.append(desc)
    out.append("")
    bare = next((r for r in rs if r["plan"].get("target") == "bare"), None)
    dj = {}
    for r in rs:
        cfg = r.get("config", "")
        if r["plan"].get("target") == "django" and (cfg.endswith("/0") or cfg.endswith("/0/x2")):
            dj.setdefault(r["config"].split("/")[1], r)
    if sc == "storm":
        out.append("| server | connect (s) | connect p99 (ms) | never connected | handshakes retried (clients) | deliv/s | p50 | p99 | max | p99 by second (first 8) | **recovered after (s)** | lost | own lost | dup | order | ok |")
        out.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|---|")
        for r in rs:
            secs = r.get("p99_by_second_ms") or []
            rec = r.get("recovery_secs")
            out.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | **{}** | {} | {} | {} | {} | {} |".format(
                r.get("label"), f(r.get("connect_secs"), 1), f((r.get("connect_ms") or [None, None])[1], 0),
                f(r.get("connect_failures")),
                "–" if "connect_retries" not in r else f"{r['connect_retries']:,} ({r.get('clients_retried', 0):,})",
                f(r.get("deliveries_per_sec")), lat(r, "p50"), lat(r, "p99"), lat(r, "max"),
                " ".join(f"{x:,.0f}" for x in secs[:8]), "never" if rec is None and "recovery_secs" in r else f(rec),
                f(r.get("lost")), f(r.get("acks_lost")), f(r.get("duplicates")), f(r.get("order_violations")),
                "yes" if r.get("ok") else "**NO**: " + "; ".join(r.get("notes", []))))
    elif sc == "idle":
        out.append("| server | connections | connect (s) | per connection p99 (ms) | RSS before (MiB) | RSS half connected (MiB) | RSS connected (MiB) | bytes per connection (average) | **bytes per connection (marginal, 2nd half)** | ok |")
        out.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|---|")
        for r in rs:
            p = r.get("plan", {})
            out.append("| {} | {} | {} | {} | {} | {} | {} | {} | **{}** | {} |".format(
                r.get("label"), f(p.get("clients", 0) - r.get("connect_failures", 0)) if "connect_failures" in r else "–",
                f(r.get("connect_secs"), 1), f((r.get("connect_ms") or [None, None])[1], 1),
                f((r.get("rss_before_kb") or 0) / 1024, 1), f((r.get("rss_half_kb") or 0) / 1024, 1),
                f((r.get("rss_connected_kb") or 0) / 1024, 1),
                f(r.get("bytes_per_connection")), f(r.get("marginal_bytes_per_connection")), "yes" if r.get("ok") else "**NO**: " + "; ".join(r.get("notes", []))))
    else:
        out.append("| server | deliv/s | × Django | × bare | p50 | p90 | p99 | p99.9 | max | own p50 | own p99 | sent | expected | lost | own lost | dup | order | connect (s) | RSS (MiB) | ok |")
        out.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
        for r in rs:
            d = r.get("deliveries_per_sec")
            layer = r.get("config", "").split("/")[1] if "/" in r.get("config", "") else None
            base = dj.get(layer)
            ratio_dj = f"{d / base['deliveries_per_sec']:,.0f}×" if (d and base and base.get("deliveries_per_sec") and r["plan"].get("target") == "parley") else ""
            ratio_bare = f"{d / bare['deliveries_per_sec']:.2f}" if (d and bare and bare.get("deliveries_per_sec") and r["plan"].get("target") != "bare") else ""
            ok = "yes" if r.get("ok") else "**NO**: " + "; ".join(r.get("notes", []))
            out.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
                r.get("label"), f(d), ratio_dj, ratio_bare,
                lat(r, "p50"), lat(r, "p90"), lat(r, "p99"), lat(r, "p999"), lat(r, "max"),
                lat(r, "p50", "ack_latency_ms"), lat(r, "p99", "ack_latency_ms"),
                f(r.get("sent")), f(r.get("expected")), f(r.get("lost")), f(r.get("acks_lost")),
                f(r.get("duplicates")), f(r.get("order_violations")),
                f(r.get("connect_secs"), 1), f((r.get("peak_rss_kb") or 0) / 1024, 0), ok))
    out.append("")
    out.append("Commands (servers started by the script; `--server`/`--pid` added per row):")
    out.append("")
    out.append("```text")
    seen = []
    for r in rs:
        c = r.get("command")
        if c and c not in seen:
            seen.append(c); out.append(c)
    out.append("```")
    out.append("")
out.append("<!-- bench.sh:end -->")
block = "\n".join(out)

if write_docs == "1":
    doc = open(doc_path).read()
    pat = re.compile(r"<!-- bench.sh:begin.*?<!-- bench.sh:end -->", re.S)
    if pat.search(doc):
        doc = pat.sub(lambda m: block, doc)
    else:
        doc = doc.rstrip("\n") + "\n\n" + block + "\n"
    open(doc_path, "w").write(doc)
    print(f"[bench.sh] wrote {doc_path}", file=sys.stderr)
else:
    print(block)
PY
