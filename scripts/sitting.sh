#!/usr/bin/env bash
# sitting.sh - every comparison with the peers in one sitting, one after the other, on a
# quiet machine; each script's last line (JSON) is saved under OUT (default: a new temp dir).
#
#   scripts/sitting.sh                 # shm (5 rounds), TCP (5), Python (3), all-reduce 2 and 4 ranks (2 each)
#   ICE_BIN=... PYTHON=... OUT=dir     # iceoryx2-bench binary, interpreter with hyperfabric installed
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
run() { # NAME CMD... : runs CMD, keeps its stderr log and its last stdout line
  local name=$1; shift
  echo "== $name: $*" >&2
  "$@" 2>"$OUT/$name.log" | tail -n 1 >"$OUT/$name.json" || echo "$name failed (see $OUT/$name.log)" >&2
  cat "$OUT/$name.json" >&2
}
run shm "$ROOT/scripts/shm-compare.sh" "${SHM_ROUNDS:-5}"
run tcp "$ROOT/scripts/compare-tcp.sh" "${TCP_ROUNDS:-5}"
run python "$ROOT/scripts/compare-python.sh" "${PY_ROUNDS:-3}"
run allreduce2 "$ROOT/scripts/compare-collectives.sh" 2 "${COLL_ROUNDS:-2}"
run allreduce4 "$ROOT/scripts/compare-collectives.sh" 4 "${COLL_ROUNDS:-2}"
echo "results in $OUT" >&2
