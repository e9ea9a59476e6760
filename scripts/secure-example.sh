#!/bin/sh
# Key material for examples/secure.toml: a fabric secret (hfabric keygen, mode 0600), a CA,
# and one certificate per node whose DNS name is the node id (what the TLS peers check).
# Usage: scripts/secure-example.sh [OUT_DIR] [HFABRIC]   (defaults: examples/secure, target/release/hfabric)
set -eu
out=${1:-examples/secure}
hfabric=${2:-target/release/hfabric}
mkdir -p "$out"
umask 077
[ -e "$out/fabric.key" ] || "$hfabric" keygen --out "$out/fabric.key"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
    -subj "/CN=hyperfabric example CA" -keyout "$out/ca.key" -out "$out/ca.pem" 2>/dev/null
for node in node-a node-b; do
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$node" \
        -keyout "$out/$node.key" -out "$out/$node.csr" 2>/dev/null
    printf 'subjectAltName=DNS:%s\n' "$node" > "$out/$node.ext"
    openssl x509 -req -in "$out/$node.csr" -CA "$out/ca.pem" -CAkey "$out/ca.key" \
        -CAcreateserial -days 365 -extfile "$out/$node.ext" -out "$out/$node.pem" 2>/dev/null
    rm -f "$out/$node.csr" "$out/$node.ext"
done
echo "wrote $out: fabric.key, ca.pem, node-a.{pem,key}, node-b.{pem,key}"
