#!/usr/bin/env bash
# Fuzzes Parley's untrusted-input parsers (the cargo-fuzz targets under fuzz/):
#   scripts/fuzz.sh              every target for FUZZ_SECONDS (default 20) each
#   FUZZ_SECONDS=1800 scripts/fuzz.sh protocol_decode    a longer run of one target
#
# Works with a nightly toolchain, or with stable through RUSTC_BOOTSTRAP=1 (cargo-fuzz needs
# nightly-only flags). cargo-fuzz is installed (cargo install --locked, into target/tools)
# when missing. Corpora are kept in target/fuzz-corpus/<target> (target/ is CARGO_TARGET_DIR
# when set) so later runs start from
# what earlier ones found; the seeds in fuzz/seeds/<target> are added to them. A crash
# leaves its input in fuzz/artifacts/<target>/ and fails the script: turn it into a
# regression test in the crate's normal tests (see docs/reliability.md).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_PER_TARGET=${FUZZ_SECONDS:-20}
log() { printf '[fuzz.sh] %s\n' "$*" >&2; }

# The workspace's target directory (CARGO_TARGET_DIR when worktrees share one).
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
TOOLS="$TARGET_DIR/tools"
export PATH="$TOOLS/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz into $TOOLS (once)"
  cargo install cargo-fuzz --locked --root "$TOOLS"
fi

# cargo-fuzz passes nightly-only flags (-Zsanitizer=address ...). The default toolchain with
# RUSTC_BOOTSTRAP=1 accepts them (checked with stable 1.95), so a stable-only machine fuzzes
# too; FUZZ_TOOLCHAIN=nightly uses a nightly toolchain instead.
TOOLCHAIN=()
if [ -n "${FUZZ_TOOLCHAIN:-}" ]; then
  TOOLCHAIN=("+$FUZZ_TOOLCHAIN")
else
  export RUSTC_BOOTSTRAP=1
fi

# The fuzz crate has its own target dir (different flags would rebuild the workspace's).
export CARGO_TARGET_DIR="$TARGET_DIR/fuzz"
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  # Not through a process substitution: a failing `cargo fuzz list` must fail the run, not
  # fuzz nothing and pass.
  listed=$(cd fuzz && cargo "${TOOLCHAIN[@]}" fuzz list) || { log "ERROR: cargo fuzz list failed"; exit 1; }
  [ -n "$listed" ] || { log "ERROR: cargo fuzz list found no fuzz targets"; exit 1; }
  mapfile -t TARGETS <<<"$listed"
fi
for t in "${TARGETS[@]}"; do
  corpus="$TARGET_DIR/fuzz-corpus/$t"
  mkdir -p "$corpus"
  seeds=()
  [ -d "fuzz/seeds/$t" ] && seeds=("$ROOT/fuzz/seeds/$t")
  log "$t: ${SECONDS_PER_TARGET}s"
  out="$TARGET_DIR/fuzz/$t.log"
  mkdir -p "$(dirname "$out")"
  if ! (cd fuzz && cargo "${TOOLCHAIN[@]}" fuzz run "$t" "$corpus" "${seeds[@]}" -- \
      -max_total_time="$SECONDS_PER_TARGET" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1) >"$out" 2>&1; then
    tail -n 60 "$out" >&2
    log "$t FAILED: the crashing input is in fuzz/artifacts/$t/ (full log: $out)"
    exit 1
  fi
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)|^#[0-9]+.*DONE' "$out" | sed "s/^/[fuzz.sh] $t: /" >&2 || true
done
log "no crash in ${#TARGETS[@]} target(s)"
