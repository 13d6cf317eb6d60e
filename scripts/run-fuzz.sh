#!/usr/bin/env bash
# Runs every libFuzzer binary in BUILD_DIR for SECONDS each, starting from the seed corpus
# in fuzz/seeds/<target-without-fuzz_> when there is one. New inputs go to a scratch
# corpus under the build dir, so the checked-in seeds stay as they are. Fails on the
# first crash, leak or timeout (libFuzzer exits non-zero and leaves the input).
set -euo pipefail
build=$1
seconds=$2
status=0
ran=0
for bin in "$build"/fuzz_*; do
    [ -x "$bin" ] || continue
    name=$(basename "$bin")
    corpus="$build/corpus-${name#fuzz_}"
    mkdir -p "$corpus"
    seeds="fuzz/seeds/${name#fuzz_}"
    args=("$corpus")
    [ -d "$seeds" ] && args+=("$seeds")
    echo "fuzz: $name for ${seconds}s"
    if ! "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$build/$name-" -print_final_stats=0 "${args[@]}" > "$build/$name.log" 2>&1; then
        echo "fuzz: $name FAILED"; tail -n 40 "$build/$name.log"; status=1
    else
        ran=$((ran + 1))
        grep -E "^(Done|#[0-9]+ +DONE)" "$build/$name.log" | tail -n 1 || true
    fi
done
echo "fuzz: $ran targets clean, status $status"
exit $status
