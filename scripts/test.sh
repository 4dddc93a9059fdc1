#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine, as root:
#   ./scripts/test.sh  (as root)
# Installs what is missing (scripts/setup.sh), then runs every test. Without root the
# privileged tests (netns, XDP, AF_XDP) skip loudly; VXDECAP_REQUIRE_PRIVILEGED=1 makes
# such a skip a failure (CI sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then ./scripts/setup.sh; fi
exec cargo test --workspace --locked "$@"
