#!/usr/bin/env bash
# Quick rate check (a stopgap until the full harness of the benchmark issue):
# blasts VXLAN frames over a veth pair into `vxdecap capture` and prints what the
# sender sent and what vxdecap wrote, dropped and why. Run as root:
#   sudo bench/quick-rate.sh [COUNT] [MODE]        (defaults: 2000000 auto)
# The sender is pinned to CPU 0, the vxdecap worker to CPU 1.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-2000000}
mode=${2:-auto}
cargo build --release --locked -p vxdecap -p vxdecap-bench >/dev/null
tx=vxqr$$-tx rx=vxqr$$-rx
cleanup() { ip netns del "$tx" 2>/dev/null || true; ip netns del "$rx" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$tx"; ip netns add "$rx"
ip link add und0 netns "$tx" type veth peer name eth1 netns "$rx"
ip -n "$tx" addr add 10.77.0.1/24 dev und0; ip -n "$tx" link set und0 up
ip -n "$rx" addr add 10.77.0.2/24 dev eth1; ip -n "$rx" link set eth1 up
mac=$(ip -n "$rx" -br link show eth1 | awk '{print $3}')
out=$(mktemp)
ip netns exec "$rx" ./target/release/vxdecap capture -i eth1 -w /dev/null --mode "$mode" --cpus 1 ${VXDECAP_ARGS:-} 2>"$out" &
cap=$!
for _ in $(seq 100); do grep -q "listening on" "$out" && break; sleep 0.1; done
ip netns exec "$tx" taskset -c 0 ./target/release/vxdecap-blast --interface und0 --dst-mac "$mac" --count "$count"
sleep 0.5
# CPU time of each vxdecap thread (utime+stime, clock ticks) while it handled the burst.
pid=$(pgrep -f "vxdecap capture -i eth1 -w /dev/null" | head -1)
hz=$(getconf CLK_TCK)
for t in /proc/"$pid"/task/*; do
  name=$(cat "$t/comm"); read -r -a st < "$t/stat"
  ticks=$(( st[13] + st[14] ))
  echo "thread $name: cpu $(awk -v t="$ticks" -v hz="$hz" 'BEGIN{printf "%.2f", t/hz}') s, $(awk -v t="$ticks" -v hz="$hz" -v n="$count" 'BEGIN{printf "%.0f", t/hz*1e9/n}') ns per sent frame"
done
kill -INT "$cap"; wait "$cap" || true
cat "$out"; rm -f "$out"
