#!/usr/bin/env bash
# shm-compare.sh - our shared-memory figures against the peers', interleaved round by round
# in one sitting, so that this VM's slow and fast episodes hit both sides alike.
#
# Usage: scripts/shm-compare.sh [ROUNDS]      (default 5)
#
# Each round runs, back to back:
#   UCX  ucx_shm_lat64_ns   vs  hfabric bench latency   (64 B one-way median, pinned 1,0)
#   UCX  ucx_shm_bw1m_gbs   vs  hfabric bench throughput --api copy  (1 MiB)
#   ice  ice_bw1m_read_gbs  vs  hfabric bench throughput --api loan  (1 MiB, every byte
#                               written by the sender and read by the receiver)
# and prints every pair; the last line is one JSON object with the medians and ratios
# (latency ratio ours/UCX, < 1 is better; bandwidth ratios ours/peer, > 1 is better; each a
# median of per-round ratios). Every figure is taken only after its own JSON says it ran shm,
# the size and the API named (scripts/lib/checked_json.py); the machine is named.
#
# Needs a release build (cargo build --release) and ../shared/peers/anchors.sh.

set -euo pipefail
ROUNDS=${1:-5}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HF=${HF:-$ROOT/target/release/hfabric}
ANCHORS=${ANCHORS:-$ROOT/../shared/peers/anchors.sh}
[ -x "$HF" ] || { echo "build first: cargo build --release" >&2; exit 2; }
[ -f "$ANCHORS" ] || { echo "no anchors script at $ANCHORS" >&2; exit 2; }
CHECK="python3 $ROOT/scripts/lib/checked_json.py"
# shellcheck source=lib/cpu_model.sh
. "$ROOT/scripts/lib/cpu_model.sh"
echo "machine: $(cpu_model), $(nproc) cores, kernel $(uname -r)" >&2

peer() { # FIGURE -> value (one repetition, no sentinel)
  PIN=1 REPS=1 SENTINEL=0 bash "$ANCHORS" "$1" 2>/dev/null | tail -1 | $CHECK peer "$1"
}

ours_lat() {
  "$HF" bench latency --transport shm --iterations 100000 --pin 1,0 --json 2>/dev/null |
    $CHECK ours latency shm 64 | cut -d' ' -f1
}

ours_bw() { # API -> GB/s
  "$HF" bench throughput --transport shm --sizes 1048576 --seconds-per-size 2 --api "$1" --pin 1,0 --json 2>/dev/null |
    $CHECK ours throughput shm 1048576 "$1"
}

# A second between runs: a peer's busy-polling server may take a moment to go away, and the
# next run (ours or theirs) would share a core with it.
settle() { sleep "${SETTLE:-1}"; }

declare -a UL OL UB OB IB LB
for ((r = 1; r <= ROUNDS; r++)); do
  UL+=("$(peer ucx_shm_lat64_ns)"); settle; OL+=("$(ours_lat)"); settle
  UB+=("$(peer ucx_shm_bw1m_gbs)"); settle; OB+=("$(ours_bw copy)"); settle
  IB+=("$(peer ice_bw1m_read_gbs)"); settle; LB+=("$(ours_bw loan)"); settle
  i=$((r - 1))
  echo "round $r: lat64 ucx ${UL[$i]} ns / ours ${OL[$i]} ns | bw1m ucx ${UB[$i]} / copy ${OB[$i]} GB/s | ice read ${IB[$i]} / loan ${LB[$i]} GB/s" >&2
done

python3 - "$(machine_json)" "${UL[*]}" "${OL[*]}" "${UB[*]}" "${OB[*]}" "${IB[*]}" "${LB[*]}" <<'EOF'
import json, math, statistics, sys
machine = json.loads(sys.argv[1])
cols = [[float(x) for x in a.split()] for a in sys.argv[2:]]
per = lambda a, b: round(statistics.median([x / y for x, y in zip(a, b)]), 3)
med = lambda xs: statistics.median([x for x in xs if not math.isnan(x)] or [float("nan")])
ul, ol, ub, ob, ib, lb = (med(c) for c in cols)
print(json.dumps({
    "machine": machine,
    "rounds": len(cols[0]),
    "pinned": "server cpu 0, client cpu 1 (both sides)",
    # ratios are medians of per-round ratios
    "lat64_ns": {"ucx": ul, "ours": ol, "ratio_ours_over_ucx": per(cols[1], cols[0])},
    "bw1m_copy_gbs": {"ucx": ub, "ours": ob, "ratio_ours_over_ucx": per(cols[3], cols[2]),
                      "min_round_ratio": round(min(o / u for o, u in zip(cols[3], cols[2])), 3)},
    "bw1m_loan_read_gbs": {"iceoryx2": ib, "ours": lb, "ratio_ours_over_ice": per(cols[5], cols[4])},
    "raw": {"ucx_lat": cols[0], "ours_lat": cols[1], "ucx_bw": cols[2], "ours_copy": cols[3],
            "ice_read": cols[4], "ours_loan": cols[5]},
}))
EOF
