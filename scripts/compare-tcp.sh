#!/usr/bin/env bash
# Measures HyperFabric over loopback TCP and the peers (iperf3, sockperf, UCX tcp) in the same
# sitting, alternating them ROUNDS times, and prints the medians and ratios as JSON.
#   scripts/compare-tcp.sh            # ROUNDS=3 by default
# Needs ../shared/peers/anchors.sh (installs the peers from Debian's packages).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
ANCHORS=${ANCHORS:-../shared/peers/anchors.sh}
cargo build --release -q -p hfabric
out=$(mktemp -d)
for i in $(seq 1 "$ROUNDS"); do
  "$ANCHORS" iperf3_gbps sockperf_tcp_lat64_us ucx_tcp_lat64_us 2>/dev/null | tail -n 1 > "$out/peer-$i.json"
  ./target/release/hfabric bench --json latency throughput --sizes 1048576 --seconds-per-size 3 --iterations 10000 2>/dev/null > "$out/hf-$i.json"
done
python3 - "$out" "$ROUNDS" <<'PY'
import json, statistics, sys
d, n = sys.argv[1], int(sys.argv[2])
peers = [json.load(open(f"{d}/peer-{i}.json")) for i in range(1, n + 1)]
ours = [json.load(open(f"{d}/hf-{i}.json")) for i in range(1, n + 1)]
med = lambda xs: statistics.median([x for x in xs if x is not None])
iperf = med([p["iperf3_gbps"] for p in peers])
sockperf = med([p["sockperf_tcp_lat64_us"] for p in peers])
ucx = med([p["ucx_tcp_lat64_us"] for p in peers])
tput = med([o["tests"]["throughput"]["results"][0]["gbit_per_s"] for o in ours])
lat = med([o["tests"]["latency"]["figures"]["median_ns"] / 1000 for o in ours])
p99 = med([o["tests"]["latency"]["figures"]["p99_ns"] / 1000 for o in ours])
print(json.dumps({
    "rounds": n,
    "hyperfabric_tcp_1m_stream_gbps": round(tput, 2),
    "iperf3_gbps": iperf,
    "ratio_vs_iperf3": round(tput / iperf, 2),
    "hyperfabric_tcp_lat64_median_us": round(lat, 2),
    "hyperfabric_tcp_lat64_p99_us": round(p99, 2),
    "sockperf_tcp_lat64_us": sockperf,
    "ratio_vs_sockperf": round(lat / sockperf, 2),
    "ucx_tcp_lat64_us": ucx,
    "sentinels_ns": [p["_meta"].get("sentinel_shm_lat_ns") for p in peers],
    "per_round": {"hyperfabric_gbps": [o["tests"]["throughput"]["results"][0]["gbit_per_s"] for o in ours],
                  "iperf3_gbps": [p["iperf3_gbps"] for p in peers],
                  "hyperfabric_lat_us": [o["tests"]["latency"]["figures"]["median_ns"] / 1000 for o in ours],
                  "sockperf_lat_us": [p["sockperf_tcp_lat64_us"] for p in peers]},
}, indent=1))
PY
