#!/usr/bin/env bash
# ab-builds.sh - two builds of hfabric against each other, interleaved round by round in one
# sitting: did a change cost speed? (Issue #16 asks "each new median within 5% of the old".)
#
# Usage: scripts/ab-builds.sh OLD_HFABRIC NEW_HFABRIC [ROUNDS]     (default 5 rounds)
#   e.g. git worktree add /tmp/old <commit> && (cd /tmp/old && cargo build --release -p hfabric)
#        scripts/ab-builds.sh /tmp/old/target/release/hfabric target/release/hfabric 5
#
# Each round measures, for both builds back to back (the order alternates by round, so a slow
# episode of this VM does not always land on the same side), pinned server CPU 0 / client CPU 1:
#   shm_lat64_ns    bench latency    --transport shm  (64 B one-way median)
#   shm_copy1m_gbs  bench throughput --transport shm --api copy  (1 MiB)
#   shm_loan1m_gbs  bench throughput --transport shm --api loan  (1 MiB)
#   tcp_bw1m_gbs    bench throughput --transport tcp (1 MiB)
#   tcp_lat64_ns    bench latency    --transport tcp  (64 B one-way median)
# Every figure is taken from its own JSON after that JSON says it ran the transport, size and API
# named (scripts/lib/checked_json.py). The last line is one JSON object: the machine, both builds,
# per-round figures, medians, and new/old as the median of per-round ratios, with "within_5pct"
# judged in the direction that matters (latency: new <= 1.05 x old; bandwidth: new >= 0.95 x old).
set -euo pipefail
OLD=${1:?usage: ab-builds.sh OLD_HFABRIC NEW_HFABRIC [ROUNDS]}
NEW=${2:?usage: ab-builds.sh OLD_HFABRIC NEW_HFABRIC [ROUNDS]}
ROUNDS=${3:-5}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CHECK="python3 $ROOT/scripts/lib/checked_json.py"
# shellcheck source=lib/cpu_model.sh
. "$ROOT/scripts/lib/cpu_model.sh"
for b in "$OLD" "$NEW"; do [ -x "$b" ] || { echo "ab-builds: $b is not an executable" >&2; exit 2; }; done
echo "machine: $(cpu_model), $(nproc) cores, kernel $(uname -r)" >&2

FIGS=(shm_lat64_ns shm_copy1m_gbs shm_loan1m_gbs tcp_bw1m_gbs tcp_lat64_ns)
measure() { # BIN FIGURE -> value
  local hf=$1
  case $2 in
  shm_lat64_ns) "$hf" bench latency --transport shm --iterations 100000 --pin 1,0 --json 2>/dev/null |
    $CHECK ours latency shm 64 | cut -d' ' -f1 ;;
  tcp_lat64_ns) "$hf" bench latency --transport tcp --iterations 20000 --pin 1,0 --json 2>/dev/null |
    $CHECK ours latency tcp 64 | cut -d' ' -f1 ;;
  shm_copy1m_gbs | shm_loan1m_gbs)
    local api=${2#shm_}; api=${api%1m_gbs}
    "$hf" bench throughput --transport shm --sizes 1048576 --seconds-per-size 2 --api "$api" --pin 1,0 --json 2>/dev/null |
      $CHECK ours throughput shm 1048576 "$api" ;;
  tcp_bw1m_gbs) "$hf" bench throughput --transport tcp --sizes 1048576 --seconds-per-size 2 --pin 1,0 --json 2>/dev/null |
    $CHECK ours throughput tcp 1048576 copy ;;
  esac
}
settle() { sleep "${SETTLE:-1}"; }

declare -A A B
for ((r = 1; r <= ROUNDS; r++)); do
  line="round $r:"
  for f in "${FIGS[@]}"; do
    if ((r % 2)); then
      a=$(measure "$OLD" "$f"); settle; b=$(measure "$NEW" "$f"); settle
    else
      b=$(measure "$NEW" "$f"); settle; a=$(measure "$OLD" "$f"); settle
    fi
    A[$f]+="$a "; B[$f]+="$b "
    line+=" $f old $a new $b |"
  done
  echo "$line" >&2
done

args=()
for f in "${FIGS[@]}"; do args+=("$f" "${A[$f]}" "${B[$f]}"); done
python3 - "$(machine_json)" "$OLD" "$NEW" "${args[@]}" <<'EOF'
import json, statistics, sys
machine, old, new, rest = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
out = {"machine": machine, "old": old, "new": new,
       "pinned": "server cpu 0, client cpu 1 (both builds)", "figures": {}}
for i in range(0, len(rest), 3):
    name = rest[i]
    a = [float(x) for x in rest[i + 1].split()]
    b = [float(x) for x in rest[i + 2].split()]
    ratio = round(statistics.median([y / x for x, y in zip(a, b)]), 3)
    lower_is_better = name.endswith("_ns")
    ok = ratio <= 1.05 if lower_is_better else ratio >= 0.95
    out["figures"][name] = {"old_median": statistics.median(a), "new_median": statistics.median(b),
                            "ratio_new_over_old": ratio, "within_5pct": ok,
                            "old": a, "new": b}
out["rounds"] = len(a)
print(json.dumps(out))
EOF
