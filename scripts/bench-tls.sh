#!/bin/sh
# TLS vs plain TCP: 64 B latency and 1 MiB throughput between two local nodes over TCP.
# Each figure is taken only after its JSON says it ran TCP at that size (scripts/lib/checked_json.py);
# that TLS was on shows in node-b's log ($D/tls-serve.log), which the bench JSON does not carry.
set -u
HF=${HFABRIC:-target/release/hfabric}
D=$(mktemp -d)
scripts/secure-example.sh "$D/secure" "$HF" >/dev/null
for mode in plain tls; do
  port=$([ $mode = plain ] && echo 73 || echo 74)
  extra=""
  [ $mode = tls ] && extra='encryption_enabled = true
tls_cert = "secure/{node}.pem"
tls_key = "secure/{node}.key"
tls_ca = "secure/ca.pem"
secret_file = "secure/fabric.key"'
  cat > "$D/$mode.toml" <<EOT
[fabric]
name = "b$mode"
$extra
[[nodes]]
id = "node-a"
hardware = "cpu-cluster"
listen = "127.0.0.1:${port}01"
[[nodes]]
id = "node-b"
hardware = "cpu-cluster"
listen = "127.0.0.1:${port}02"
EOT
  $HF serve --config "$D/$mode.toml" --node node-b --transport tcp >/dev/null 2>"$D/$mode-serve.log" &
  pid=$!
  sleep 1
  echo "== $mode"
  $HF bench latency --config "$D/$mode.toml" --from node-a --to node-b --transport tcp --iterations 5000 --warmup 500 --json 2>/dev/null | python3 scripts/lib/checked_json.py ours latency tcp 64 | sed 's/^/latency 64B tcp median_ns p99_ns: /'
  $HF bench throughput --config "$D/$mode.toml" --from node-a --to node-b --transport tcp --sizes 1048576 --seconds-per-size 3 --json 2>/dev/null | python3 scripts/lib/checked_json.py ours throughput tcp 1048576 copy | sed 's/^/throughput 1 MiB tcp GB\/s: /'
  kill $pid; wait $pid 2>/dev/null
done
rm -rf "$D"
