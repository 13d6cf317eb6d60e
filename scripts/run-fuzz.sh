#!/usr/bin/env bash
# Runs every libFuzzer binary in BUILD_DIR for SECONDS each, starting from the seed corpus
# in fuzz/seeds/<target-without-fuzz_> when there is one. New inputs go to a scratch
# corpus under the build dir, so the checked-in seeds stay as they are. Fails on any
# crash, leak or timeout (libFuzzer exits non-zero and leaves the input).
#
# Targets run JOBS at a time (default 2, one per core of the CI machine): each is
# single-threaded, so two at once give every target its full SECONDS in half the wall time.
set -euo pipefail
build=$1
seconds=$2
jobs=${3:-2}

run_one() {
    local bin=$1 name corpus seeds
    name=$(basename "$bin")
    corpus="$build/corpus-${name#fuzz_}"
    mkdir -p "$corpus"
    seeds="fuzz/seeds/${name#fuzz_}"
    local args=("$corpus")
    [ -d "$seeds" ] && args+=("$seeds")
    if ! "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$build/$name-" -print_final_stats=0 "${args[@]}" > "$build/$name.log" 2>&1; then
        echo "fuzz: $name FAILED"; tail -n 40 "$build/$name.log"
        return 1
    fi
    echo "fuzz: $name for ${seconds}s: $(grep -E "^(Done|#[0-9]+ +DONE)" "$build/$name.log" | tail -n 1 || true)"
}

status=0
ran=0
running=0
for bin in "$build"/fuzz_*; do
    [ -x "$bin" ] || continue
    case "$bin" in *.log) continue ;; esac
    if [ "$running" -ge "$jobs" ]; then
        wait -n || status=1
        running=$((running - 1))
    fi
    run_one "$bin" &
    running=$((running + 1))
    ran=$((ran + 1))
done
while [ "$running" -gt 0 ]; do
    wait -n || status=1
    running=$((running - 1))
done
echo "fuzz: $ran targets run, status $status"
exit $status
