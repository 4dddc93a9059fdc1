#!/usr/bin/env bash
# The main job on its built-in default, on a fresh Debian 12 machine, as root:
#   ./scripts/lab.sh                 (extra arguments go to `vxdecap lab`, e.g. --keep -w lab.pcap)
# Builds a local Azure-vTAP-like lab in network namespaces, captures the mirrored VXLAN
# with vxdecap, prints the decapsulated HTTP conversation, and tears everything down.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release --locked -p vxdecap
exec ./target/release/vxdecap lab "$@"
