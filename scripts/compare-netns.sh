#!/usr/bin/env bash
# compare-netns.sh - HyperFabric TCP between two network namespaces (two "hosts" joined by a
# veth pair) against iperf3 between the same two namespaces, interleaved round by round in
# one sitting (issue 21: "at least 1.0x iperf3's single stream").
#
# Usage: sudo scripts/compare-netns.sh [ROUNDS]      (default 5; needs root for `ip netns`)
#
# Each round: iperf3 -c (one stream, 5 s) from host A to host B, then `hfabric bench
# throughput --config F --from node-a --to node-b --transport tcp --sizes 1048576` from host A
# against `hfabric serve --node node-b` running in host B. Every figure is taken only after
# its own JSON says it ran TCP to host B's address (iperf3: protocol, one stream, remote
# host; ours: scripts/lib/checked_json.py). The last line is one JSON object: the machine,
# per-round figures and the ratio as the median of per-round ratios.
set -euo pipefail
ROUNDS=${1:-5}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HF=${HF:-$ROOT/target/release/hfabric}
CHECK="python3 $ROOT/scripts/lib/checked_json.py"
# shellcheck source=lib/cpu_model.sh
. "$ROOT/scripts/lib/cpu_model.sh"
[ -x "$HF" ] || { echo "build first: cargo build --release" >&2; exit 2; }
command -v iperf3 >/dev/null || { echo "iperf3 is not installed (apt-get install iperf3)" >&2; exit 2; }
TAG=hfcmp$$
A=${TAG}a B=${TAG}b ADDR_A=10.231.0.1 ADDR_B=10.231.0.2
WORK=$(mktemp -d)
SERVER=""
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
if ! ip netns add "$A" 2>/dev/null; then
  echo "compare-netns: cannot create network namespaces here (needs root)" >&2
  exit 2
fi
ip netns add "$B"
ip link add vA netns "$A" type veth peer name vB netns "$B"
ip -n "$A" addr add "$ADDR_A/24" dev vA
ip -n "$B" addr add "$ADDR_B/24" dev vB
for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done
ip -n "$A" link set vA up
ip -n "$B" link set vB up
echo "machine: $(cpu_model), $(nproc) cores, kernel $(uname -r); $A=$ADDR_A <veth> $B=$ADDR_B" >&2

cat >"$WORK/fabric.toml" <<EOF
[fabric]
name = "netns-compare"
profile = "high_throughput"

[[nodes]]
id = "node-a"
hardware = "cpu-cluster"
listen = "$ADDR_A:7601"

[[nodes]]
id = "node-b"
hardware = "cpu-cluster"
listen = "$ADDR_B:7602"

[[links]]
between = ["node-a", "node-b"]
bandwidth_gbps = 100
latency_ns = 10000
EOF

# node-b serves in host B for the whole sitting (memory sink: nothing goes to disk).
ip netns exec "$B" "$HF" serve --config "$WORK/fabric.toml" --node node-b >"$WORK/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do grep -q listening "$WORK/serve.log" && break; sleep 0.1; done
grep -q listening "$WORK/serve.log" || { echo "node-b did not start:" >&2; cat "$WORK/serve.log" >&2; exit 1; }

iperf() { # -> Gbit/s of one stream A -> B, checked from iperf3's own JSON
  ip netns exec "$B" iperf3 -s -1 -p 5299 >/dev/null 2>&1 &
  local srv=$!
  sleep 0.3
  ip netns exec "$A" iperf3 -c "$ADDR_B" -p 5299 -P 1 -t 5 -J 2>/dev/null | python3 -c '
import json, sys
r = json.load(sys.stdin)
s = r["start"]
if s["test_start"]["protocol"] != "TCP" or s["test_start"]["num_streams"] != 1:
    sys.exit("iperf3 did not run one TCP stream")
if s["connected"][0]["remote_host"] != sys.argv[1]:
    sys.exit("iperf3 connected to %s, not %s" % (s["connected"][0]["remote_host"], sys.argv[1]))
print("%.3f" % (r["end"]["sum_received"]["bits_per_second"] / 1e9))
' "$ADDR_B"
  wait "$srv" 2>/dev/null || true
}
ours() { # -> Gbit/s of 1 MiB messages A -> B over TCP
  local gbs
  gbs=$(ip netns exec "$A" "$HF" bench throughput --config "$WORK/fabric.toml" --from node-a --to node-b \
    --transport tcp --sizes 1048576 --seconds-per-size 5 --json 2>"$WORK/bench.log" |
    $CHECK ours throughput tcp 1048576 copy)
  python3 -c "print('%.3f' % (float('$gbs') * 8))"
}

declare -a IP OB
for ((r = 1; r <= ROUNDS; r++)); do
  if ((r % 2)); then IP+=("$(iperf)"); sleep 1; OB+=("$(ours)"); else OB+=("$(ours)"); sleep 1; IP+=("$(iperf)"); fi
  sleep 1
  i=$((r - 1))
  echo "round $r: hfabric tcp 1 MiB ${OB[$i]} Gbit/s | iperf3 one stream ${IP[$i]} Gbit/s" >&2
done

python3 - "$(machine_json)" "${IP[*]}" "${OB[*]}" <<'PY'
import json, statistics, sys
machine = json.loads(sys.argv[1])
ip, ob = ([float(x) for x in a.split()] for a in sys.argv[2:])
med = statistics.median
print(json.dumps({
    "machine": machine,
    "between": "two network namespaces joined by a veth pair",
    "rounds": len(ob),
    "hfabric_tcp_1m_gbps": ob,
    "iperf3_one_stream_gbps": ip,
    "median": {"hfabric": med(ob), "iperf3": med(ip)},
    "ratio_vs_iperf3": round(med([o / i for o, i in zip(ob, ip)]), 3),
}))
PY
