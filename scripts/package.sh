#!/usr/bin/env bash
# Builds the Debian package target/debian/vxdecap_VERSION-1_ARCH.deb with cargo-deb (installed
# from crates.io if missing): the binary, the systemd unit vxdecap@.service and its sysusers
# file, /etc/vxdecap/vxdecap.toml, the man pages and the bash, zsh and fish completions. The
# pages and completions are made by the binary just built (`vxdecap generate`), from the clap
# definitions it parses with, so they cannot drift from its flags. The manifest is
# [package.metadata.deb] in userspace/vxdecap/Cargo.toml; the files are in packaging/.
#
#   ./scripts/package.sh            # build the .deb; its path is the last line printed
#   ./scripts/package-check.sh      # also install it, check it and remove it (what CI runs)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deb --version > /dev/null 2>&1; then
  echo "== cargo-deb is not installed: cargo install cargo-deb --locked"
  cargo install cargo-deb --locked --version '^3'
fi

# Reproducible: the man pages' date and the archive's times come from the commit.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2> /dev/null || date +%s)}
export SOURCE_DATE_EPOCH

cargo build --release --locked -p vxdecap
generated=target/release/generated
rm -rf "$generated"
./target/release/vxdecap generate man "$generated/man" > /dev/null
gzip -9n "$generated"/man/*.1
for shell in bash zsh fish; do
  ./target/release/vxdecap generate completions "$shell" "$generated/completions" > /dev/null
done

# --strip: the release profile keeps line tables for the benchmarks' profiles; the package
# does not need them (55 MB unstripped).
cargo deb -p vxdecap --no-build --locked --strip --output target/debian/ | tail -n 1
