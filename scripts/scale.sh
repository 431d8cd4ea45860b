#!/usr/bin/env bash
# 100,000 connections (issue 19, item 3), one command: `scripts/scale.sh`.
#
# Starts several release `parley-server` processes on one throwaway Redis and one PostgreSQL
# database, each under a supervisor that starts it again when it exits (as systemd would), and
# runs `parley-bench scale` against them: generator processes, each from its own loopback
# address (127.0.0.2, 127.0.0.3, …: each has its own ephemeral ports) and with its own
# descriptor limit, open and hold the sockets, and the run checks, each a check that can fail:
#   - every socket authenticated and joined;
#   - memory per socket: (Σ server RSS with every socket open − Σ before) / sockets (goal ≤ 10 KB);
#   - presence: `GET /api/rooms/{room}/online` on every server, for every room, equals the
#     members the generators hold (polled until it does, up to 2 minutes);
#   - delivery: in rooms whose members are on every process, numbered messages reach every
#     member exactly once;
#   - rolling restart: senders on every process send with client ids; one process gets SIGTERM
#     (its clients move to the others and re-send what was not acknowledged); every
#     acknowledged message must be in its room's history (GET /api/rooms/{room}/messages), once;
#     how long reconnecting took; then, with the process restarted by its supervisor, presence
#     and delivery again.
# The report is one JSON line (target/scale/scale-<stamp>.json); exit status 0 when every check
# held, 3 when one failed, 1 when the run could not be made.
#
# Knobs (environment; not PARLEY_*: parley-server refuses unknown PARLEY_ variables):
#   SCALE_CLIENTS=100000     sockets in all (SCALE_CLIENTS=6000 for a quick run)
#   SCALE_ROOMS              rooms (default clients / 100: rooms of 100)
#   SCALE_SERVERS            server processes (default 6, or more when the clients of a stopped
#                            process would not fit the others' descriptor limit: 7 at 100,000)
#   SCALE_GENERATORS         generator processes (default: one per 12,500 clients, at least 2)
#   SCALE_NICE=19            niceness of everything started here (0: none)
#   SCALE_KEEP_DB=1          reuse the database (accounts already registered: provisioning
#                            only logs in); default: a fresh database
#   SCALE_DB=parley_scale    PostgreSQL database name (on DATABASE_URL's server)
#   SCALE_BUILD=0            use the release binaries already built
#   SCALE_SERVER_ENV="PARLEY_X=y ..."  more settings for every parley-server started (an A/B of
#                            one setting, e.g. PARLEY_LAYER_CAPACITY=10000)
#   SCALE_ARGS="..."         more `parley-bench scale` options (say `--no-restart`,
#                            `--send-rate 5`, `--probe-rooms 100`)
#   PARLEY_SERVER_BIN, PARLEY_BENCH_BIN: other builds (as in scripts/bench.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/target/scale
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
DIR=$OUT/run-$STAMP
mkdir -p "$DIR"

log() { printf '[scale.sh %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf '[scale.sh] ERROR: %s\n' "$*" >&2; exit 1; }

CLIENTS=${SCALE_CLIENTS:-100000}
[[ "$CLIENTS" =~ ^[0-9]+$ ]] && [ "$CLIENTS" -ge 1 ] || die "SCALE_CLIENTS must be a positive number"
ROOMS=${SCALE_ROOMS:-$(( CLIENTS / 100 > 0 ? CLIENTS / 100 : 1 ))}
NICE=${SCALE_NICE:-19}
# A prefix, not a function: a function sent to the background is a subshell, and `$!` would be
# its pid, not the program's (killing it would leave the program running).
NICED=()
[ "$NICE" = 0 ] || NICED=(nice -n "$NICE")

# Every socket is a descriptor in a server and in a generator. The hard limit cannot be raised
# here; raise the soft one to it for every process started below.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT=$(ulimit -n)
# Room for the listener, the database pool, Redis, log files: a server holds at most this many
# sockets, and so does a generator.
PER_PROCESS=$((FD_LIMIT - 1000))
[ "$PER_PROCESS" -ge 100 ] || die "the descriptor limit is $FD_LIMIT: too low for a scale run"
# After the rolling restart the other processes hold every client: size for that.
NEED_SERVERS=$(( (CLIENTS + PER_PROCESS - 1) / PER_PROCESS + 1 ))
SERVERS=${SCALE_SERVERS:-$(( NEED_SERVERS > 6 ? NEED_SERVERS : 6 ))}
if [ "$SERVERS" -lt "$NEED_SERVERS" ]; then
  die "$SERVERS server processes cannot hold $CLIENTS sockets once one is stopped (descriptor limit $FD_LIMIT each, $PER_PROCESS sockets): use SCALE_SERVERS=$NEED_SERVERS or more"
fi
[ -z "${SCALE_SERVERS:-}" ] && [ "$SERVERS" -gt 6 ] &&
  log "$SERVERS server processes (not 6): with one stopped, the others must hold $CLIENTS sockets within $PER_PROCESS descriptors each"
PER_GEN=$(( PER_PROCESS < 12500 ? PER_PROCESS : 12500 ))
GENERATORS=${SCALE_GENERATORS:-$(( (CLIENTS + PER_GEN - 1) / PER_GEN ))}
[ "$GENERATORS" -ge 2 ] || GENERATORS=2
[ $(( (CLIENTS + GENERATORS - 1) / GENERATORS )) -le "$PER_PROCESS" ] ||
  die "$GENERATORS generators cannot hold $CLIENTS sockets (descriptor limit $FD_LIMIT each): raise SCALE_GENERATORS"
read -r PORT_LO PORT_HI </proc/sys/net/ipv4/ip_local_port_range
[ $(( (CLIENTS + GENERATORS - 1) / GENERATORS )) -lt $((PORT_HI - PORT_LO)) ] ||
  die "each generator would need more ephemeral ports than $PORT_LO-$PORT_HI: raise SCALE_GENERATORS"

PIDS=() SUPERVISORS=()
cleanup() {
  local f p
  touch "$DIR/stopping"
  for f in "$DIR"/server-*.pid; do
    [ -e "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
  done
  # Each supervisor reaps its server (a graceful stop takes up to shutdown_timeout_secs).
  for p in "${SUPERVISORS[@]}"; do wait "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() { # PORT SECONDS
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

if [ "${SCALE_BUILD:-1}" = 1 ]; then
  log "building parley-server and parley-bench (release)"
  "${NICED[@]}" cargo build --release -q -p parley-server -p parley-bench
fi
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SERVER_BIN=${PARLEY_SERVER_BIN:-$TARGET_DIR/release/parley-server}
BENCH_BIN=${PARLEY_BENCH_BIN:-$TARGET_DIR/release/parley-bench}
[ -x "$SERVER_BIN" ] || die "no server binary at $SERVER_BIN"
[ -x "$BENCH_BIN" ] || die "no load generator at $BENCH_BIN"

# A throwaway Redis: nobody else's keys, and it goes with the run.
command -v redis-server >/dev/null || die "redis-server not found (apt-get install redis-server)"
REDIS_PORT=$(free_port)
"${NICED[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$DIR" --logfile "$DIR/redis.log" --maxclients 10000 &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
wait_port "$REDIS_PORT" 10 || die "redis-server did not start (see $DIR/redis.log)"

PG_BASE=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
PG_SERVER=${PG_BASE%/*}
DB=${SCALE_DB:-parley_scale}
[[ "$DB" =~ ^[a-z_][a-z0-9_]*$ ]] || die "SCALE_DB must be a plain lower-case name"
psql "$PG_BASE" -Atqc 'select 1' >/dev/null 2>&1 || die "PostgreSQL not reachable at $PG_BASE (set DATABASE_URL)"
if [ "${SCALE_KEEP_DB:-0}" = 1 ] && [ -n "$(psql "$PG_BASE" -Atqc "select 1 from pg_database where datname = '$DB'")" ]; then
  log "reusing database $DB (SCALE_KEEP_DB=1)"
else
  psql "$PG_BASE" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
  psql "$PG_BASE" -qc "CREATE DATABASE $DB" >/dev/null
fi
PG_SLOTS=$(psql "$PG_BASE" -Atqc "select current_setting('max_connections')::int - count(*) from pg_stat_activity")
# Each process's pool must stay below what PostgreSQL has left for all of them (other sessions
# may share it); 4 group-commit writers need a pool of at least 5.
POOL=$(( PG_SLOTS / (SERVERS + 1) ))
[ "$POOL" -gt 6 ] && POOL=6
[ "$POOL" -ge 5 ] || die "PostgreSQL has $PG_SLOTS connections left: too few for $SERVERS processes (5 each)"

# The server settings of scripts/bench.sh (accounts in bulk, no rate limits for one address),
# with longer-lived tokens (provisioning 100,000 accounts and the run outlast 5 minutes).
SECRET=parley-scale-secret-0123456789abcdef0123456789
server_env=(
  DATABASE_URL="$PG_SERVER/$DB" PARLEY_LAYER=redis REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
  PARLEY_REDIS_PREFIX=scale PARLEY_SECRET="$SECRET" PARLEY_SECRET_FILE="$DIR/secret"
  PARLEY_BCRYPT_COST=4 PARLEY_AUTH_RATE=0 PARLEY_HTTP_MAX_CONNECTIONS_PER_ADDRESS=0
  PARLEY_MESSAGE_RATE=1000000 PARLEY_MESSAGE_BURST=1000000
  PARLEY_ROOM_CREATE_RATE=1000000 PARLEY_ROOM_CREATE_BURST=1000000
  PARLEY_ACCESS_TOKEN_TTL_SECS=14400 PARLEY_DB_MAX_CONNECTIONS=$POOL PARLEY_LOG_LEVEL=warn
)
# shellcheck disable=SC2206
[ -n "${SCALE_SERVER_ENV:-}" ] && server_env+=($SCALE_SERVER_ENV)

# supervise INDEX PORT: runs server INDEX on PORT, and again whenever it exits, until the run
# stops; its current process id is in server-INDEX.pid.
supervise() {
  local i=$1 port=$2 pid
  while :; do
    env -u REDIS_URL "${server_env[@]}" PARLEY_BIND="127.0.0.1:$port" \
      "${NICED[@]}" "$SERVER_BIN" >>"$DIR/server-$i.log" 2>&1 &
    pid=$!
    echo "$pid" >"$DIR/server-$i.pid"
    wait "$pid" || true
    [ -e "$DIR/stopping" ] && return 0
    log "server $i (pid $pid) exited: starting it again on port $port"
    sleep 1
  done
}

ARGS=()
for ((i = 0; i < SERVERS; i++)); do
  port=$(free_port)
  supervise "$i" "$port" &
  SUPERVISORS+=($!)
  # One by one: two processes migrating one database at once would race.
  wait_port "$port" 60 || { tail -20 "$DIR/server-$i.log" >&2; die "parley-server $i did not start"; }
  ARGS+=(--server "127.0.0.1:$port" --pid-file "$DIR/server-$i.pid")
done
log "$SERVERS servers up (pool $POOL each), Redis on $REDIS_PORT, database $DB; $CLIENTS clients in $ROOMS rooms from $GENERATORS generators (127.0.0.2…); descriptors $FD_LIMIT per process"

MACHINE="$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/^Mem:/{print $2}') GiB"
REPORT=$OUT/scale-$STAMP.json
set +e
# shellcheck disable=SC2086
"${NICED[@]}" "$BENCH_BIN" scale "${ARGS[@]}" --also-pid "redis=$REDIS_PID" \
  --clients "$CLIENTS" --rooms "$ROOMS" --generators "$GENERATORS" ${SCALE_ARGS:-} \
  >"$DIR/report.json" 2> >(tee "$DIR/scale.log" >&2)
RC=$?
set -e
line=$(grep '^{' "$DIR/report.json" | tail -1 || true)
[ -n "$line" ] || die "parley-bench scale failed (exit $RC) without a report; see $DIR/scale.log and $DIR/server-*.log"
python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["machine"]=sys.argv[2]; r["command"]=sys.argv[3]; r["commit"]=sys.argv[4]; print(json.dumps(r))' \
  "$line" "$MACHINE" "SCALE_CLIENTS=$CLIENTS${SCALE_SERVER_ENV:+ SCALE_SERVER_ENV=\"$SCALE_SERVER_ENV\"}${SCALE_ARGS:+ SCALE_ARGS=\"$SCALE_ARGS\"} scripts/scale.sh" "$(git rev-parse --short HEAD)" >"$REPORT"
log "report: $REPORT (server logs in $DIR)"
cat "$REPORT"
exit "$RC"
