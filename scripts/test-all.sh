#!/usr/bin/env bash
# Every test of the repository: the Rust workspace, then the Python package (built, installed
# and tested by scripts/test-python.sh). The README's test command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --release
scripts/test-python.sh
