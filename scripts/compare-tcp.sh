#!/usr/bin/env bash
# compare-tcp.sh - HyperFabric over loopback TCP against iperf3, UCX tcp and sockperf,
# interleaved round by round in one sitting, both sides pinned the same way (server CPU 0,
# client CPU 1, as ../shared/peers/anchors.sh pins its peers).
#
# Usage: scripts/compare-tcp.sh [ROUNDS]      (default 5)
#
# Each round runs, back to back:
#   iperf3 single stream          vs  hfabric bench throughput --transport tcp --sizes 1048576
#   UCX ucx_perftest tcp_bw 1 MiB vs  (the same run of ours)
#   UCX tcp 64 B, sockperf 64 B   vs  hfabric bench latency --transport tcp (64 B one-way)
# Every figure is taken from its own JSON only after that JSON says it ran TCP, 64 B or
# 1 MiB, and the peer it names (scripts/lib/checked_json.py). The last line is one JSON
# object: the machine, per-round figures, and ratios as medians of per-round ratios.
set -euo pipefail
ROUNDS=${1:-5}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HF=${HF:-$ROOT/target/release/hfabric}
ANCHORS=${ANCHORS:-$ROOT/../shared/peers/anchors.sh}
CHECK="python3 $ROOT/scripts/lib/checked_json.py"
# shellcheck source=lib/cpu_model.sh
. "$ROOT/scripts/lib/cpu_model.sh"
[ -x "$HF" ] || { echo "build first: cargo build --release" >&2; exit 2; }
[ -f "$ANCHORS" ] || { echo "no anchors script at $ANCHORS" >&2; exit 2; }
echo "machine: $(cpu_model), $(nproc) cores, kernel $(uname -r)" >&2

peer() { # FIGURE -> value (one repetition, pinned, no sentinel)
  PIN=1 REPS=1 SENTINEL=0 bash "$ANCHORS" "$1" 2>/dev/null | tail -n 1 | $CHECK peer "$1"
}
ours_lat() { # -> "median_ns p99_ns"
  "$HF" bench latency --transport tcp --iterations 20000 --pin 1,0 --json 2>/dev/null |
    $CHECK ours latency tcp 64
}
ours_bw() { # -> GB/s
  "$HF" bench throughput --transport tcp --sizes 1048576 --seconds-per-size 3 --pin 1,0 --json 2>/dev/null |
    $CHECK ours throughput tcp 1048576 copy
}
settle() { sleep "${SETTLE:-1}"; }

declare -a IP UB OB UL SP OL OP
for ((r = 1; r <= ROUNDS; r++)); do
  IP+=("$(peer iperf3_gbps)"); settle
  UB+=("$(peer ucx_tcp_bw1m_gbs)"); settle
  OB+=("$(ours_bw)"); settle
  UL+=("$(peer ucx_tcp_lat64_us)"); settle
  SP+=("$(peer sockperf_tcp_lat64_us)"); settle
  read -r med p99 <<<"$(ours_lat)"; OL+=("$med"); OP+=("$p99"); settle
  i=$((r - 1))
  echo "round $r: 1 MiB ours ${OB[$i]} GB/s | iperf3 ${IP[$i]} Gbit/s | ucx tcp_bw ${UB[$i]} GB/s | 64 B ours ${OL[$i]} ns (p99 ${OP[$i]}) | ucx ${UL[$i]} us | sockperf ${SP[$i]} us" >&2
done

python3 - "$(machine_json)" "${IP[*]}" "${UB[*]}" "${OB[*]}" "${UL[*]}" "${SP[*]}" "${OL[*]}" "${OP[*]}" <<'PY'
import json, statistics, sys
machine = json.loads(sys.argv[1])
ip, ub, ob, ul, sp, ol, op = ([float(x) for x in a.split()] for a in sys.argv[2:])
med = statistics.median
r3 = lambda x: round(x, 3)
print(json.dumps({
    "machine": machine,
    "rounds": len(ob),
    "pinned": "server cpu 0, client cpu 1 (both sides)",
    "tcp_1m_stream": {
        "ours_gbs": r3(med(ob)), "ours_gbps": r3(med(ob) * 8),
        "iperf3_gbps": r3(med(ip)), "ucx_tcp_bw_gbs": r3(med(ub)),
        "ratio_ours_over_iperf3": r3(med([o * 8 / i for o, i in zip(ob, ip)])),
        "ratio_ours_over_ucx": r3(med([o / u for o, u in zip(ob, ub)])),
    },
    "tcp_64b_one_way": {
        "ours_median_us": r3(med(ol) / 1000), "ours_p99_us": r3(med(op) / 1000),
        "ucx_us": r3(med(ul)), "sockperf_us": r3(med(sp)),
        "ratio_ours_over_ucx": r3(med([o / 1000 / u for o, u in zip(ol, ul)])),
        "ratio_ours_over_sockperf": r3(med([o / 1000 / s for o, s in zip(ol, sp)])),
    },
    "per_round": {"ours_gbs": ob, "iperf3_gbps": ip, "ucx_tcp_bw_gbs": ub,
                  "ours_lat_ns": ol, "ours_p99_ns": op, "ucx_lat_us": ul, "sockperf_lat_us": sp},
}))
PY
