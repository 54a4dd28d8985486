#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets) for SECONDS each (default 60) with cargo fuzz on the
# nightly toolchain, starting from the committed seeds (fuzz/seeds/TARGET) and the corpus earlier
# runs grew (target/fuzz-corpus/TARGET, not committed), and prints executions, coverage and
# corpus size per target. A crash stops the run, leaves its input in fuzz/artifacts/TARGET/, and
# is reproduced with `cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/<file>`; every crash
# found becomes an ordinary regression test before its fix lands.
#
#     bash scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
targets=(http_framing http_head chunked websocket ring macro_attribute proxy_header channels game)

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi
echo "== building the fuzz targets (nightly, with AddressSanitizer)"
cargo +nightly fuzz build

summary=()
for target in "${targets[@]}"; do
    corpus="target/fuzz-corpus/$target"
    log="target/fuzz-$target.log"
    mkdir -p "$corpus"
    echo "== fuzzing $target for ${seconds}s"
    if ! cargo +nightly fuzz run "$target" "$corpus" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "fuzz target $target failed: its input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
    executions=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    done_line=$(grep -aE '#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
    coverage=$(grep -o 'cov: [0-9]*' <<<"$done_line" | grep -o '[0-9]*' || echo '?')
    features=$(grep -o 'ft: [0-9]*' <<<"$done_line" | grep -o '[0-9]*' || echo '?')
    units=$(grep -o 'corp: [0-9]*' <<<"$done_line" | grep -o '[0-9]*' || echo '?')
    summary+=("| $target | $executions | $rate | $coverage | $features | $units |")
done

echo
echo "| target | executions | per second | edges covered | features | corpus |"
echo "|---|---:|---:|---:|---:|---:|"
printf '%s\n' "${summary[@]}"
