#!/usr/bin/env bash
# Fuzz smoke run for CI: builds the cargo-fuzz targets in fuzz/ and runs each one for a bounded
# time (FUZZ_SECONDS, default 20) from its committed seed corpus, one process, one job. Fails on
# any crash, panic or broken invariant; the input that did it is left in fuzz/artifacts/<target>/
# and the command to replay it is printed by cargo-fuzz.
#
#   scripts/fuzz-smoke.sh                  # every target, 20 s each
#   FUZZ_SECONDS=60 scripts/fuzz-smoke.sh reassembly
#   FUZZ_SANITIZER=none scripts/fuzz-smoke.sh   # without AddressSanitizer
#
# Needs only stable Rust: cargo-fuzz passes nightly -Z flags, which RUSTC_BOOTSTRAP=1 lets a
# stable rustc accept (AddressSanitizer works that way on x86_64 Linux), and a C++ compiler for
# libFuzzer (g++ on Debian). cargo-fuzz itself is installed from crates.io if missing.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${FUZZ_SECONDS:-20}
sanitizer=${FUZZ_SANITIZER:-address}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(decapsulate decapsulate_link reassembly)
fi
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version > /dev/null 2>&1; then
  echo "== cargo-fuzz is not installed: cargo install cargo-fuzz --locked"
  cargo install cargo-fuzz --locked
fi

# New finds go to a scratch corpus so the committed seeds stay as they are.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

summary=()
for target in "${targets[@]}"; do
  echo "== fuzz $target for ${seconds}s (sanitizer: $sanitizer)"
  mkdir -p "$scratch/$target"
  log="$scratch/$target.log"
  status=0
  cargo fuzz run --sanitizer "$sanitizer" "$target" "$scratch/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len=8192 -timeout=10 -print_final_stats=1 > "$log" 2>&1 \
    || status=$?
  grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::(number_of_executed_units|average_exec_per_sec)' \
    "$log" || true
  if [ "$status" -ne 0 ]; then
    echo "fuzz-smoke: $target failed (exit $status); the end of its log:" >&2
    tail -n 60 "$log" >&2
    exit 1
  fi
  execs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$log")
  rate=$(awk '/stat::average_exec_per_sec/ { print $2 }' "$log")
  summary+=("$target: $execs execs, $rate exec/s")
done
for line in "${summary[@]}"; do
  echo "fuzz-smoke: $line, no crash"
done
