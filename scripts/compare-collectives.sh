#!/usr/bin/env bash
# compare-collectives.sh - `hfabric bench allreduce` against Open MPI (vader shared memory)
# and torch.distributed's Gloo, all-reduce sum of float32, interleaved round by round in one
# sitting (../shared/peers/collectives.py, which installs both from Debian's packages).
#
# Usage: scripts/compare-collectives.sh RANKS [ROUNDS]        (default ROUNDS 3)
#   SIZES=8,1048576,16777216,67108864 ITERS=20 ARENA=0
#   ARENA=1 runs ours with --arena (the intra-host arena up to --small-bytes); each size's
#   `ours_path` in the result is the path our JSON says every rank took.
#
# Every figure is taken from its JSON only after that JSON says it ran all_reduce, sum,
# float32, with RANKS ranks, at that size; the machine is named. The last line is one JSON
# object: per size the medians of busbw and time, and ratios as medians of per-round ratios
# (busbw ours/peer: > 1 is better; time ours/peer: < 1 is better).
set -euo pipefail
RANKS=${1:?usage: compare-collectives.sh RANKS [ROUNDS]}
ROUNDS=${2:-3}
SIZES=${SIZES:-8,1048576,16777216,67108864}
ITERS=${ITERS:-20}
ARENA=${ARENA:-0}
OURS_FLAGS=()
[ "$ARENA" = 1 ] && OURS_FLAGS+=(--arena)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HF=${HF:-$ROOT/target/release/hfabric}
PEERS=${PEERS:-$ROOT/../shared/peers/collectives.py}
# shellcheck source=lib/cpu_model.sh
. "$ROOT/scripts/lib/cpu_model.sh"
[ -x "$HF" ] || { echo "build first: cargo build --release" >&2; exit 2; }
echo "machine: $(cpu_model), $(nproc) cores, kernel $(uname -r); $RANKS ranks, sizes $SIZES" >&2
out=$(mktemp -d)
for ((r = 1; r <= ROUNDS; r++)); do
  /usr/bin/python3 "$PEERS" --ranks "$RANKS" --sizes "$SIZES" --iters "$ITERS" 2>"$out/peer-$r.log" | tail -n 1 >"$out/peer-$r.json"
  sleep 1
  "$HF" bench allreduce --ranks "$RANKS" --sizes "$SIZES" --op sum --dtype f32 --iters "$ITERS" "${OURS_FLAGS[@]}" --json 2>"$out/ours-$r.log" >"$out/ours-$r.json"
  sleep 1
  echo "round $r done ($out)" >&2
done
python3 - "$out" "$ROUNDS" "$RANKS" "$SIZES" "$(machine_json)" "$ARENA" <<'PY'
import json, statistics, sys
d, rounds, ranks, sizes, machine = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), [int(s) for s in sys.argv[4].split(",")], json.loads(sys.argv[5])
def fail(m):
    print(f"compare-collectives: {m}", file=sys.stderr); sys.exit(3)
med = statistics.median
arena = sys.argv[6] == "1"
rows = {s: {"ours": [], "mpi": [], "gloo": [], "path": set()} for s in sizes}
for r in range(1, rounds + 1):
    ours = json.load(open(f"{d}/ours-{r}.json"))
    peer = json.load(open(f"{d}/peer-{r}.json"))
    if ours.get("collective") != "all_reduce" or ours.get("ranks") != ranks:
        fail(f"round {r}: ours ran {ours.get('collective')} with {ours.get('ranks')} ranks")
    cfg = ours.get("config", {})
    if cfg.get("op") != "sum" or cfg.get("dtype") != "f32":
        fail(f"round {r}: ours ran {cfg.get('op')} {cfg.get('dtype')}")
    if cfg.get("arena", False) != arena:
        fail(f"round {r}: ours ran with arena={cfg.get('arena')}, asked {arena}")
    if peer.get("ranks") != ranks or peer.get("op") != "all_reduce sum float32":
        fail(f"round {r}: the peers ran {peer.get('op')} with {peer.get('ranks')} ranks")
    by = {row["size_bytes"]: row for row in ours["rows"]}
    for s in sizes:
        row = by.get(s) or fail(f"round {r}: ours has no row for {s} B")
        if row["wrong"] not in (0, -1):
            fail(f"round {r}: ours got {row['wrong']} wrong elements at {s} B")
        rows[s]["ours"].append((row["busbw_gbs"], row["time_median_us"]))
        rows[s]["path"].add(row.get("path", "unreported"))
        for p in ("mpi", "gloo"):
            pr = [x for x in (peer.get(p) or []) if x["bytes"] == s]
            rows[s][p].append((pr[0]["busbw_gbs"], pr[0]["time_us"]) if pr else None)
res = {}
for s, v in rows.items():
    e = {"ours_busbw_gbs": med(b for b, _ in v["ours"]), "ours_time_us": med(t for _, t in v["ours"]),
         "ours_path": "/".join(sorted(v["path"]))}
    for p in ("mpi", "gloo"):
        pairs = [(o, q) for o, q in zip(v["ours"], v[p]) if q]
        if not pairs:
            e[p] = None; continue
        e[f"{p}_busbw_gbs"] = med(q[0] for _, q in pairs)
        e[f"{p}_time_us"] = med(q[1] for _, q in pairs)
        e[f"busbw_ratio_vs_{p}"] = round(med(o[0] / q[0] for o, q in pairs if q[0] > 0), 3) if any(q[0] > 0 for _, q in pairs) else None
        e[f"time_ratio_vs_{p}"] = round(med(o[1] / q[1] for o, q in pairs), 3)
    res[str(s)] = e
print(json.dumps({"machine": machine, "ranks": ranks, "rounds": rounds, "arena": arena, "sizes": res}))
PY
