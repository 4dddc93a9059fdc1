#!/usr/bin/env bash
# CI's package check, as root on a Debian 12 machine where systemd need not run as PID 1:
# builds the .deb (scripts/package.sh), installs it with dpkg -i, runs the installed binary,
# verifies the installed unit with systemd-analyze (verify and the security score), checks the
# installed configuration and man pages, then purges the package and checks that none of its
# files is left. A vxdecap package installed before is replaced, then purged.
set -euo pipefail
cd "$(dirname "$0")/.."

deb=$(./scripts/package.sh | tail -n 1)
echo "== package: $deb"
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
dpkg-deb --contents "$deb"

echo "== dpkg -i"
dpkg -i "$deb"
files=$(dpkg -L vxdecap)
trap 'dpkg --purge vxdecap > /dev/null 2>&1 || true' EXIT

/usr/bin/vxdecap --version
getent passwd vxdecap > /dev/null || { echo "the package did not create the user vxdecap" >&2; exit 1; }
vxdecap check-config --no-host-checks /etc/vxdecap/vxdecap.toml > /dev/null
man -w vxdecap vxdecap-capture vxdecap-top > /dev/null
test -f /usr/share/bash-completion/completions/vxdecap
test -f /usr/share/zsh/vendor-completions/_vxdecap
test -f /usr/share/fish/vendor_completions.d/vxdecap.fish

echo "== systemd-analyze verify and security (the installed unit, as the instance vxdecap@eth0)"
unit_dir=$(mktemp -d)
cp /usr/lib/systemd/system/vxdecap@.service "$unit_dir/vxdecap@eth0.service"
systemd-analyze verify "$unit_dir/vxdecap@eth0.service"
systemd-analyze security --offline=true --threshold=21 --no-pager "$unit_dir/vxdecap@eth0.service" | tail -n 1
rm -rf "$unit_dir"

echo "== dpkg --purge"
trap - EXIT
dpkg --purge vxdecap
left=""
while IFS= read -r f; do
  # Directories the package shares with others (/usr/bin, /etc, …) stay.
  if [ -e "$f" ] && [ ! -d "$f" ]; then left="$left $f"; fi
done <<< "$files"
for d in /etc/vxdecap /usr/share/doc/vxdecap; do
  if [ -e "$d" ]; then left="$left $d"; fi
done
if [ -n "$left" ]; then
  echo "files left after purging vxdecap:$left" >&2
  exit 1
fi
echo "package: built, installed, verified and removed cleanly"
