#!/usr/bin/env bash
# shm-instructions.sh - instructions per shared-memory 64 B round trip, counted by callgrind: a
# figure that does not move with the load of the machine (wall-clock latency on a shared 2-core
# VM does), so two builds can be compared in any sitting. It counts instructions, not time:
# cache-line transfers between the cores and dependency chains do not show in it.
#
# Usage: scripts/shm-instructions.sh HFABRIC [PINGS] [ROUNDS] [OUTDIR]  (default 1000 pings, 4 rounds)
#
# Runs `hfabric serve` (node-b) and `hfabric bench latency --transport shm` (node-a) of the bundled
# two-node fabric, each under `valgrind --tool=callgrind`, ROUNDS times, and counts per function
# (merging inlined fragments, scripts/lib/callgrind_sum.py). Callgrind's files stay in OUTDIR.
#
# Round r pings r x PINGS times (after 100 warm-up pings). A side that waits polls its ring, and
# how often depends on timing, so raw totals do not repeat. What does repeat: the cost of a poll
# that finds nothing (e) and of one that finds a frame and handles it (h). Per side, the reading
# loop (drain_until) costs c + hits*h + (polls-hits)*e, with hits = the frames the other side
# sent (its Conn::send calls) and c what happens once per run; the rounds differ in pings and in
# polls, and a least-squares fit over them gives h and e (scripts/lib/shm_fit.py; fit_residual
# says how well that model holds, in instructions per hit). The last line is one JSON object, per round trip (a ping and its pong):
#   client_send   the ping's Conn::send (header, CRC32C, ring record, publish)
#   server_hit    node-b finding the ping and handling it, its pong's send included
#   client_hit    node-a finding the pong and handling it
#   per_rtt       client_send + server_hit + client_hit
#   empty_poll    e of each side: one poll of a ring that has nothing
set -euo pipefail
HF=${1:?usage: shm-instructions.sh HFABRIC [PINGS] [ROUNDS] [OUTDIR]}
N=${2:-1000}
ROUNDS=${3:-4}
OUT=${4:-$(mktemp -d)}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
command -v valgrind >/dev/null || { echo "shm-instructions: needs valgrind (apt-get install -y valgrind)" >&2; exit 2; }
[ -x "$HF" ] || { echo "shm-instructions: $HF is not an executable" >&2; exit 2; }
((ROUNDS >= 3)) || { echo "shm-instructions: the fit needs at least 3 rounds" >&2; exit 2; }
mkdir -p "$OUT"
DIR=$(mktemp -d)
SERVER=
cleanup() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  rm -rf "$DIR"
}
trap cleanup EXIT
cp "$ROOT/examples/local.toml" "$DIR/local.toml"
"$HF" keygen --out "$DIR/local.key" >/dev/null
CG=(valgrind --tool=callgrind --quiet)

round() { # OUTDIR PINGS
  local R=$1 pings=$2
  mkdir -p "$R"
  rm -f "$DIR/server.json"
  RUST_LOG=error "${CG[@]}" --callgrind-out-file="$R/server.out" "$HF" serve --json --node node-b \
    --listen 127.0.0.1:0 --config "$DIR/local.toml" --profile low_latency --transport shm --read-all \
    >"$DIR/server.json" 2>"$DIR/server.err" &
  SERVER=$!
  for _ in $(seq 600); do
    [ -s "$DIR/server.json" ] && break
    kill -0 "$SERVER" 2>/dev/null || { cat "$DIR/server.err" >&2; exit 1; }
    sleep 0.1
  done
  local addr
  addr=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["addr"])' "$DIR/server.json")
  RUST_LOG=error "${CG[@]}" --callgrind-out-file="$R/client.out" "$HF" bench latency \
    --config "$DIR/local.toml" --from node-a --to node-b --peer "node-b=$addr" --transport shm \
    --iterations "$pings" --warmup 100 --json >"$R/bench.json" 2>"$DIR/client.err" ||
    { cat "$DIR/client.err" >&2; exit 1; }
  # SIGTERM (not SIGKILL): callgrind writes its file as the server exits.
  kill -TERM "$SERVER"
  wait "$SERVER" 2>/dev/null || true
  SERVER=
  python3 "$ROOT/scripts/lib/callgrind_sum.py" "$R/client.out" >"$R/client.json"
  python3 "$ROOT/scripts/lib/callgrind_sum.py" "$R/server.out" >"$R/server.json"
}

for ((r = 1; r <= ROUNDS; r++)); do round "$OUT/round$r" $((r * N)); done
python3 "$ROOT/scripts/lib/shm_fit.py" "$OUT" "$HF" "$N" "$ROUNDS"
