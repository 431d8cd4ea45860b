#!/usr/bin/env bash
# Hostile clients against the shipped limits, one command: `scripts/hostile.sh` runs every
# probe of `parley-bench hostile` (crates/parley-bench) against a fresh release server with the
# default settings, for the "after" build and, when one is given, a "before" build, and writes
# the side-by-side table into docs/reliability.md (between the `hostile.sh` markers). Raw JSON
# lines are kept under target/hostile/. About 7 min per build at the default 12 s per probe
# (22 probes, and 80 s for ping-no-read), so ≈ 14 min for before and after.
#
# Options:
#   --secs N          seconds each probe floods (default 12)
#   --long-secs N     seconds of the ping-no-read probe (default 80: past the server's 60 s
#                     ping timeout, the bound on a write to a client that does not read)
#   --only LIST       comma-separated probes (default: all; `parley-bench hostile --help`)
#   --before PATH     the "before" server binary (or PARLEY_BEFORE_BIN); without it, only the
#                     "after" column is measured
#   --no-build        do not build: use PARLEY_SERVER_BIN and PARLEY_BENCH_BIN (default: the
#                     release binaries in CARGO_TARGET_DIR or target/)
#   --no-docs         print the table instead of writing docs/reliability.md
#   --reuse-before F  take the "before" column from the JSON lines of an earlier run (F, a
#                     target/hostile/results-*.jsonl) instead of running it again; its label is
#                     the one recorded there
#
# PARLEY_BEFORE_LABEL / PARLEY_AFTER_LABEL name the columns (default: the binaries' file
# names). With --no-build and copies of the binaries outside the shared target directory, a
# run is safe from other worktrees rebuilding it, e.g.:
#   PARLEY_BEFORE_BIN=/work/bench-bins/parley-server-7bbdcc2 \
#   PARLEY_SERVER_BIN=/work/bench-bins/parley-server-after \
#   PARLEY_BENCH_BIN=/work/bench-bins/parley-bench-after scripts/hostile.sh --no-build
#
# The server runs as shipped: every limit at its default, SQLite in a fresh temporary
# directory, the in-memory layer, and a 1,024-descriptor limit (`prlimit`, a common service
# default). Only these are set, none of them a limit: the bind address, the database, the
# secret, PARLEY_LOG_LEVEL=warn, and PARLEY_ACCESS_TOKEN_TTL_SECS=3600 (a run outlasts the
# 5-minute token, and since the hardening a socket closes when its token expires). Each build
# gets its own server; when a probe kills the server, the probe is recorded as such and a
# fresh server runs the remaining probes.
#
# Loopback only: the load generator binds 127.0.0.1–8, 127.0.3.x and 127.0.4.x (all of
# 127.0.0.0/8 is the loopback interface on Linux). Every probe stops at its deadline.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/target/hostile
mkdir -p "$OUT"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=$OUT/results-$STAMP.jsonl
: >"$RESULTS"

SECS=12 LONG_SECS=80 ONLY="" DOCS=1 BUILD=1 BEFORE_BIN=${PARLEY_BEFORE_BIN:-} REUSE_BEFORE=""
ARGS="$*"
while [ $# -gt 0 ]; do
  case "$1" in
    --secs) SECS=$2; shift ;;
    --long-secs) LONG_SECS=$2; shift ;;
    --only) ONLY=$2; shift ;;
    --before) BEFORE_BIN=$2; shift ;;
    --no-build) BUILD=0 ;;
    --no-docs) DOCS=0 ;;
    --reuse-before) REUSE_BEFORE=$2; shift ;;
    *) echo "usage: scripts/hostile.sh [--secs N] [--long-secs N] [--only LIST] [--before PATH] [--no-build] [--no-docs] [--reuse-before FILE]" >&2; exit 2 ;;
  esac
  shift
done

log() { printf '[hostile.sh %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf '[hostile.sh] ERROR: %s\n' "$*" >&2; exit 1; }

# The load generator holds up to ~1,100 connections at once.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
command -v prlimit >/dev/null || die "prlimit not found (util-linux)"

SPID=""
TMP=$(mktemp -d)
cleanup() {
  if [ -n "$SPID" ]; then kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; fi
  rm -rf "$TMP"
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

if [ "$BUILD" = 1 ]; then
  log "building parley-server and parley-bench (release)"
  cargo build --release -q -p parley-server -p parley-bench
fi
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
AFTER_BIN=${PARLEY_SERVER_BIN:-$TARGET_DIR/release/parley-server}
BENCH_BIN=${PARLEY_BENCH_BIN:-$TARGET_DIR/release/parley-bench}
[ -x "$AFTER_BIN" ] || die "no server binary at $AFTER_BIN"
[ -x "$BENCH_BIN" ] || die "no load generator at $BENCH_BIN"
[ -z "$BEFORE_BIN" ] || [ -n "$REUSE_BEFORE" ] || [ -x "$BEFORE_BIN" ] || die "no before binary at $BEFORE_BIN"
AFTER_LABEL=${PARLEY_AFTER_LABEL:-after ($(basename "$AFTER_BIN"))}
BEFORE_LABEL=${PARLEY_BEFORE_LABEL:-before ($(basename "${BEFORE_BIN:-none}"))}
ALL_PROBES=$("$BENCH_BIN" hostile --list)
[ -n "$ONLY" ] && ALL_PROBES=$ONLY

SECRET=parley-hostile-secret-0123456789abcdef0123456789

# start_server BIN: a fresh server on a fresh database; sets SPID and ADDR.
start_server() {
  local bin=$1 dir port
  dir=$(mktemp -d -p "$TMP")
  port=$(free_port)
  env -i PATH="$PATH" HOME="$TMP" PARLEY_BIND="127.0.0.1:$port" \
    DATABASE_URL="sqlite://$dir/parley.sqlite3" PARLEY_LAYER=memory \
    PARLEY_SECRET="$SECRET" PARLEY_SECRET_FILE="$dir/secret" \
    PARLEY_ACCESS_TOKEN_TTL_SECS=3600 PARLEY_LOG_LEVEL=warn \
    prlimit --nofile=1024:1024 "$bin" >"$dir/server.log" 2>&1 &
  SPID=$!
  ADDR=127.0.0.1:$port
  SLOG=$dir/server.log
  wait_port "$port" 60 || { cat "$dir/server.log" >&2; die "$bin did not start"; }
}

stop_server() {
  [ -n "$SPID" ] || return 0
  kill "$SPID" 2>/dev/null || true
  wait "$SPID" 2>/dev/null || true
  SPID=""
}

# run_build LABEL BIN: every probe against BIN; a fresh server after a probe that killed one.
run_build() {
  local label=$1 bin=$2 todo=$ALL_PROBES rc done_now
  while [ -n "$todo" ]; do
    start_server "$bin"
    log "$label: probes $todo against pid $SPID"
    set +e
    "$BENCH_BIN" hostile --server "$ADDR" --pid "$SPID" --secs "$SECS" --long-secs "$LONG_SECS" --label "$label" \
      --probes "$todo" >"$OUT/last.jsonl" 2>"$OUT/last.err"
    rc=$?
    set -e
    grep '^{' "$OUT/last.jsonl" >>"$RESULTS" || true
    done_now=$(python3 -c 'import json,sys; print(",".join(json.loads(l)["probe"] for l in open(sys.argv[1]) if l.startswith("{")))' "$OUT/last.jsonl")
    if [ "$rc" = 4 ]; then
      log "$label: the server died (see $OUT/last.err); the rest on a fresh server"
      cp "$SLOG" "$OUT/server-died-$STAMP-$(echo "$done_now" | tr ',' '\n' | tail -1).log" || true
    elif [ "$rc" != 0 ]; then
      tail -5 "$OUT/last.err" >&2
      python3 -c 'import json,sys; print(json.dumps({"label":sys.argv[1],"probe":"(run)","ran":False,"error":sys.argv[2]}))' \
        "$label" "the load generator failed (exit $rc): $(tail -1 "$OUT/last.err")" >>"$RESULTS"
      stop_server
      return 0
    fi
    stop_server
    todo=$(python3 -c 'import sys; done=set(sys.argv[2].split(",")); print(",".join(p for p in sys.argv[1].split(",") if p not in done))' "$todo" "$done_now")
    [ "$rc" = 4 ] || break
  done
}

T_START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
if [ -n "$REUSE_BEFORE" ]; then
  [ -f "$REUSE_BEFORE" ] || die "no results file $REUSE_BEFORE"
  # The first label in the file is its "before" column.
  BEFORE_LABEL=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["label"])' "$REUSE_BEFORE")
  BEFORE_BIN="(reused from $REUSE_BEFORE)"
  python3 -c 'import json,sys
for l in open(sys.argv[1]):
    if l.strip() and json.loads(l)["label"] == sys.argv[2]:
        print(l.strip())' "$REUSE_BEFORE" "$BEFORE_LABEL" >>"$RESULTS"
  log "before: reused $(wc -l <"$RESULTS") probes of \"$BEFORE_LABEL\" from $REUSE_BEFORE"
elif [ -n "$BEFORE_BIN" ]; then
  run_build "$BEFORE_LABEL" "$BEFORE_BIN"
fi
run_build "$AFTER_LABEL" "$AFTER_BIN"
T_TOTAL=$(($(date +%s) - T_START))
log "done in ${T_TOTAL}s; raw results: $RESULTS"

MACHINE="$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/^Mem:/{print $2}') GiB, $(. /etc/os-release && echo "$PRETTY_NAME")"
COMMAND="scripts/hostile.sh${ARGS:+ $ARGS}"
python3 - "$RESULTS" "$ROOT/docs/reliability.md" "$DOCS" "$MACHINE" "$COMMAND" "$STAMP" "$T_TOTAL" \
  "$SECS" "${BEFORE_BIN:+$BEFORE_LABEL}" "$AFTER_LABEL" "$LOAD_START" "$LONG_SECS" <<'PY'
import json, re, sys
(results, doc_path, write_docs, machine, command, stamp, total, secs, before, after, load_start, long_secs) = sys.argv[1:13]
rows = [json.loads(l) for l in open(results) if l.strip()]
by = {}
order = []
for r in rows:
    by[(r["label"], r["probe"])] = r
    if r["probe"] not in order and r["probe"] != "(run)":
        order.append(r["probe"])
builds = [b for b in (before, after) if b]

def lat(r):
    if not r or not r.get("ran", True):
        return "–"
    l = r["bystander"]["latency_ms"]
    if not l["count"]:
        return "no delivery"
    p99 = f"{l['p99']:.1f}"
    if r["label"] == after and l["p99"] >= 100:
        p99 = f"**{p99}**"
    return f"{l['p50']:.1f} / {p99} / {l['max']:.1f}"

def mb(r):
    if not r or not r.get("ran", True):
        return "–"
    g = r["rss_kb"]
    return f"{g['start']/1024:.0f} → {g['peak']/1024:.0f} → {g['end']/1024:.0f}"

def fds(r):
    if not r or not r.get("ran", True):
        return "–"
    g = r["fds"]
    return f"{g['start']} → {g['peak']} → {g['end']}"

def alive(r):
    if not r:
        return "not run (the server died in an earlier probe)"
    if not r.get("server_alive"):
        return "**died**"
    return "yes" if r.get("healthz") else "yes (`/healthz` silent for 10 s)"

def ach(r):
    if not r:
        return "not run"
    return r.get("achieved", "").replace("|", "/")

out = ["<!-- hostile.sh:begin (generated by scripts/hostile.sh; edit the script, not this block) -->"]
out.append(f"Generated by `{command}` at {stamp}, in {int(total)//60} min {int(total)%60} s; {secs} s per probe ({long_secs} s for `ping-no-read`).")
out.append("")
out.append(f"- Machine: {machine}; the load generator on the same box (the flood, the bystanders and the server share its cores).")
loads = [r.get("load", "") for r in rows if r.get("load")]
out.append(f"- Load average (1, 5, 15 min) at the start: {load_start}; at the end of each probe: from {min(loads, key=lambda s: float(s.split()[0])) if loads else '–'} to {max(loads, key=lambda s: float(s.split()[0])) if loads else '–'}.")
out.append(f"- Builds: " + "; ".join(f"*{b}*" for b in builds) + ". Server: release build, default settings, SQLite, in-memory layer, 1,024 descriptors.")
out.append("- Columns: *bystander* = send → delivery of the bystanders' messages at the receiving bystander, ms (p50 / p99 / max, measured from each message's due time, one every 50 ms); *RSS* = the server's resident memory at the start → peak → 1 s after the flood, MB; *fds* = its open descriptors, the same three. An *after* p99 ≥ 100 ms is in bold.")
out.append("")
if len(builds) == 2:
    out.append(f"| probe | what the flood achieved: {before} | … {after} | bystander p50 / p99 / max: before | … after | RSS MB: before | … after | fds: before | … after | server alive: before / after |")
    out.append("|---|---|---|--:|--:|--:|--:|--:|--:|---|")
    for p in order:
        b, a = by.get((before, p)), by.get((after, p))
        out.append(f"| `{p}` | {ach(b)} | {ach(a)} | {lat(b)} | {lat(a)} | {mb(b)} | {mb(a)} | {fds(b)} | {fds(a)} | {alive(b)} / {alive(a)} |")
else:
    out.append(f"| probe | what the flood achieved ({after}) | bystander p50 / p99 / max | RSS MB | fds | server alive |")
    out.append("|---|---|--:|--:|--:|---|")
    for p in order:
        a = by.get((after, p))
        out.append(f"| `{p}` | {ach(a)} | {lat(a)} | {mb(a)} | {fds(a)} | {alive(a)} |")
fails = [r for r in rows if r["probe"] == "(run)"]
for f in fails:
    out.append("")
    out.append(f"*{f['label']}*: {f['error']}")
out.append("")
out.append("Probes (`parley-bench hostile --help`):")
out.append("")
seen = set()
for r in rows:
    if r["probe"] in seen or r["probe"] == "(run)":
        continue
    seen.add(r["probe"])
    out.append(f"- `{r['probe']}`: {r.get('what', '')}")
out.append("<!-- hostile.sh:end -->")
block = "\n".join(out)
if write_docs == "1":
    doc = open(doc_path).read()
    pat = re.compile(r"<!-- hostile.sh:begin.*?<!-- hostile.sh:end -->", re.S)
    if pat.search(doc):
        doc = pat.sub(lambda m: block, doc)
    else:
        doc = doc.rstrip("\n") + "\n\n" + block + "\n"
    open(doc_path, "w").write(doc)
    print(f"[hostile.sh] wrote {doc_path}", file=sys.stderr)
else:
    print(block)
PY
