# Sourced by scripts/test.sh (bash, `set -euo pipefail`, cwd = repo root).
#
# Creates target/interop-venv, a Python virtual environment with the real channels_redis
# pinned in crates/parley-redis/tests/interop/requirements.txt, for parley-redis's
# cross-language tests and benchmarks, and exports PARLEY_PYTHON (its interpreter).
# Cached: rebuilt only when the requirements file changes (its hash is stored in the venv).
# Usable alone too: `source scripts/interop-venv.sh`.

interop_venv_setup() {
  local root venv req want have
  root=$(pwd)
  # In the target directory (CARGO_TARGET_DIR when worktrees share one).
  venv="${CARGO_TARGET_DIR:-$root/target}/interop-venv"
  req="$root/crates/parley-redis/tests/interop/requirements.txt"
  want=$(sha256sum "$req" | cut -d' ' -f1)
  have=$(cat "$venv/.requirements.sha256" 2>/dev/null || true)
  if [ ! -x "$venv/bin/python" ] || [ "$want" != "$have" ]; then
    printf '[interop-venv] creating %s (channels_redis, pinned)\n' "$venv" >&2
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv" \
      || { printf '[interop-venv] ERROR: python3 -m venv failed: install python3-venv\n' >&2; return 1; }
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" \
      || { printf '[interop-venv] ERROR: pip install -r %s failed\n' "$req" >&2; return 1; }
    printf '%s\n' "$want" >"$venv/.requirements.sha256"
  fi
  export PARLEY_PYTHON="$venv/bin/python"
}
interop_venv_setup
