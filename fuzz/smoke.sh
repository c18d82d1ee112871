#!/usr/bin/env bash
# A short run of every cargo-fuzz target (CI: .ci/run), seeded from the repository
# (fuzz/seed.sh): a smoke test that each target builds and survives a few seconds of
# mutation, not a search. Skipped, saying so, where the nightly toolchain is missing;
# cargo-fuzz is installed when missing. AXVM_FUZZ_SECONDS sets the time per target (5).
set -euo pipefail
cd "$(dirname "$0")"

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz smoke run SKIPPED: no nightly toolchain (rustup toolchain install nightly)" >&2
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz (once; cargo keeps it in ~/.cargo/bin)"
  if ! cargo install cargo-fuzz --locked; then
    echo "fuzz smoke run SKIPPED: cargo-fuzz could not be installed" >&2
    exit 0
  fi
fi

seconds=${AXVM_FUZZ_SECONDS:-5}
./seed.sh
cargo +nightly fuzz build
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for target in $(cargo +nightly fuzz list); do
  if ! cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -print_final_stats=1 \
      >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "fuzz target $target failed; the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  echo "fuzz smoke run: $target: ${runs:-?} inputs in ${seconds}s (${rate:-?}/s), no crash"
done
