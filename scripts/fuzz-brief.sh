#!/usr/bin/env bash
# Coverage-guided fuzzing on the stable toolchain, without cargo-fuzz: builds every target of
# fuzz/ with SanitizerCoverage (the flags `cargo fuzz run -s none` passes) and runs each for
# SECONDS (default 10) from its seed corpus. A crash leaves its input in fuzz/artifacts/<target>/
# and fails the script. Usage: scripts/fuzz-brief.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^hyperfabric-fuzz$')
fi
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
target_dir="${FUZZ_TARGET_DIR:-fuzz/target/stable-sancov}"
# An explicit --target keeps RUSTFLAGS off build scripts (they cannot link the coverage hooks).
host="$(rustc -vV | sed -n 's/^host: //p')"
cargo build --release --manifest-path fuzz/Cargo.toml --target-dir "$target_dir" --target "$host" \
    $(printf -- '--bin %s ' "${targets[@]}")
for t in "${targets[@]}"; do
    corpus="fuzz/corpus/$t"
    mkdir -p "$corpus" "fuzz/artifacts/$t"
    echo "== fuzzing $t for ${seconds}s"
    log="fuzz/artifacts/$t/last-run.log"
    status=0
    "$target_dir/$host/release/$t" "$corpus" "fuzz/seeds/$t" \
        -max_total_time="$seconds" -artifact_prefix="fuzz/artifacts/$t/" -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    grep -E "DONE|stat::number_of_executed_units" "$log" || true
    if [ "$status" -ne 0 ]; then
        tail -40 "$log" >&2
        echo "fuzz target $t failed (exit $status): its input is in fuzz/artifacts/$t/" >&2
        exit 1
    fi
done
