#!/usr/bin/env bash
# compare-python.sh - the Python package against pyzmq (what a Python user would pick
# instead: PAIR over ipc:// and tcp://, ../shared/peers/python_peers.py) and against the Rust
# API (`hfabric bench`), interleaved round by round in one sitting.
#
# Usage: scripts/compare-python.sh [ROUNDS]      (default 3; after `pip install ./python`)
#   PYTHON=python3 (the interpreter with hyperfabric installed)
#
# Each round: python_peers.py; python -m hyperfabric.benchmark --json; hfabric bench latency
# and throughput --sizes 1048576 (shared memory, the transport the Python fabric takes).
# Figures are taken only after their JSON says what they measured (64 B, 1 MiB, shm). The
# last line is one JSON object; ratios are medians of per-round ratios.
set -euo pipefail
ROUNDS=${1:-3}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HF=${HF:-$ROOT/target/release/hfabric}
PY=${PYTHON:-python3}
PEERS=${PEERS:-$ROOT/../shared/peers/python_peers.py}
CHECK="python3 $ROOT/scripts/lib/checked_json.py"
# shellcheck source=lib/cpu_model.sh
. "$ROOT/scripts/lib/cpu_model.sh"
[ -x "$HF" ] || { echo "build first: cargo build --release" >&2; exit 2; }
"$PY" -c "import hyperfabric" || { echo "install first: pip install ./python" >&2; exit 2; }
echo "machine: $(cpu_model), $(nproc) cores, kernel $(uname -r)" >&2
out=$(mktemp -d)
for ((r = 1; r <= ROUNDS; r++)); do
  /usr/bin/python3 "$PEERS" 2>/dev/null | tail -n 1 >"$out/zmq-$r.json"; sleep 1
  "$PY" -m hyperfabric.benchmark --json --seconds 3 --iterations 10000 2>/dev/null | tail -n 1 >"$out/py-$r.json"; sleep 1
  "$HF" bench latency --transport shm --json 2>/dev/null | $CHECK ours latency shm 64 >"$out/rust-lat-$r.txt"; sleep 1
  "$HF" bench throughput --transport shm --sizes 1048576 --json 2>/dev/null |
    $CHECK ours throughput shm 1048576 copy >"$out/rust-bw-$r.txt"; sleep 1
  echo "round $r done ($out)" >&2
done
python3 - "$out" "$ROUNDS" "$(machine_json)" <<'PY'
import json, statistics, sys
d, n, machine = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
def fail(m):
    print(f"compare-python: {m}", file=sys.stderr); sys.exit(3)
med = statistics.median
rows = []
for r in range(1, n + 1):
    z = json.load(open(f"{d}/zmq-{r}.json"))
    p = json.load(open(f"{d}/py-{r}.json"))
    rl = [int(x) for x in open(f"{d}/rust-lat-{r}.txt").read().split()]
    rb = float(open(f"{d}/rust-bw-{r}.txt").read())
    for k in ("zmq_ipc_lat64_us", "zmq_ipc_bw1m_gbs"):
        if z.get(k) is None:
            fail(f"round {r}: pyzmq figure {k} missing")
    if p["latency"]["size_bytes"] != 64 or p["throughput"]["size_bytes"] != 1 << 20:
        fail(f"round {r}: the Python bench measured other sizes")
    if p["latency_batched"].get("transport") != "shm":
        fail(f"round {r}: the Python fabric ran over {p['latency_batched'].get('transport')}, not shm")
    rows.append({"zmq_lat_ns": z["zmq_ipc_lat64_us"] * 1000, "zmq_bw": z["zmq_ipc_bw1m_gbs"],
                 "zmq_tcp_lat_ns": (z.get("zmq_tcp_lat64_us") or 0) * 1000, "zmq_tcp_bw": z.get("zmq_tcp_bw1m_gbs"),
                 "py_lat": p["latency"]["median_ns"], "py_p99": p["latency"]["p99_ns"],
                 "py_lat_batched": p["latency_batched"]["median_ns"], "py_bw": p["throughput"]["gb_per_s"],
                 "rust_lat": rl[0], "rust_bw": rb})
col = lambda k: [x[k] for x in rows]
print(json.dumps({
    "machine": machine, "rounds": n,
    "medians": {k: med(col(k)) for k in rows[0] if all(x[k] is not None for x in rows)},
    "ratios": {
        "py_lat_over_zmq_ipc": round(med(x["py_lat"] / x["zmq_lat_ns"] for x in rows), 3),
        "py_bw_over_zmq_ipc": round(med(x["py_bw"] / x["zmq_bw"] for x in rows), 3),
        "py_bw_over_rust": round(med(x["py_bw"] / x["rust_bw"] for x in rows), 3),
        "py_lat_minus_rust_ns": med(x["py_lat"] - x["rust_lat"] for x in rows),
    },
    "per_round": rows,
}))
PY
