#!/usr/bin/env bash
# The benchmark harness, one command, on a fresh Debian 12 machine, as root:
#   ./bench/run.sh                 (as root; full: both rigs, 64 B and IMIX, 0.01 to 4 Mpps and flat out, 2 repetitions, 3 s each)
#   ./bench/run.sh --quick         (seconds-long smoke, as CI runs it)
# Extra arguments go to `vxdecap-bench run` (see --help). Results: bench/results/run-*/ and
# bench/results/latest-{results.json,table.md,plot-64.svg}.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release --locked -p vxdecap -p vxdecap-bench
exec ./target/release/vxdecap-bench run --out bench/results "$@"
