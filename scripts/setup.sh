#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build and test vxdecap (run as root).
# Idempotent: packages already present are left alone.
set -euo pipefail

packages=(
  clang-19 llvm-19      # XDP program and libxdp's BPF objects (Debian's clang 14 is too old for libxdp)
  libbpf-dev            # bpf_helpers.h for the XDP program
  linux-libc-dev        # linux/bpf.h, linux/if_ether.h, ...
  m4 make pkg-config libelf-dev zlib1g-dev  # libxdp/libbpf C build
  iproute2 iputils-ping # namespaces, veth, VXLAN, tc mirred; ping in the live tests
  tcpdump tshark        # tests check our pcaps with the tools users read them with
  netsniff-ng           # a baseline of the benchmark harness
  python3-prometheus-client  # the reference text-format parser checks --metrics in the tests
  g++                   # libFuzzer (cargo-fuzz) for the fuzz smoke in CI
  libpcap-dev           # inner filters: libpcap's compiler turns tcpdump expressions into BPF (pcap crate)
  nfdump                # tests read the --tap device with nfdump's flow meter (nfpcapd) and query it with nfdump
  prometheus            # tests/prometheus.rs scrapes a live capture with the real server (never run as a service here)
  tmux                  # tests/top.rs drives `vxdecap top` in a terminal (send-keys, capture-pane)
  shellcheck            # tests/deploy.rs lints the deploy and packaging scripts
  cloud-init            # tests/deploy.rs checks the collector's cloud-init with `cloud-init schema` (disabled on this machine)
  mandoc                # tests/deploy.rs lints the generated man pages (mandoc -T lint)
  systemd strace        # tests/service.rs: systemd-analyze verify/security on the unit; the system calls a capture makes
  nftables              # tests/relay.rs and the relay lab scenarios: the DNAT proxy and the hash load balancer the relay is compared with
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  # cloud-init is here only for `cloud-init schema`: this file keeps it from configuring this
  # machine at its next boot.
  mkdir -p /etc/cloud && touch /etc/cloud/cloud-init.disabled
  # Installing prometheus must not start it as a daemon (the tests start their own on loopback):
  # a policy-rc.d that refuses every start, for the length of this install only.
  policy_rc=/usr/sbin/policy-rc.d
  if [ ! -e "$policy_rc" ]; then
    trap 'rm -f "$policy_rc"' EXIT
    printf '#!/bin/sh\nexit 101\n' > "$policy_rc"
    chmod 755 "$policy_rc"
  fi
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# bpffs is not needed (links are not pinned), but aya and bpftool like it mounted.
if ! mountpoint -q /sys/fs/bpf 2>/dev/null; then
  mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true
fi
echo "setup: ok"
