#!/usr/bin/env bash
# Puts promtool (and the prometheus server binary) into DEST/bin from Debian's `prometheus` package,
# without installing the package: `apt-get download` + `dpkg-deb -x`, so no system service is set up
# or started. Idempotent. Usage: tools/deploy/install_promtool.sh DEST   (e.g. .tools)
set -euo pipefail
dest=$(realpath -m "${1:?usage: $0 DEST}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# apt-get download needs the package lists; a fresh machine may have none yet.
if ! apt-get download prometheus >/dev/null 2>&1; then
    apt-get update -qq
    apt-get download prometheus
fi
rm -rf "$dest/prometheus"
mkdir -p "$dest/prometheus" "$dest/bin"
dpkg-deb -x prometheus_*.deb "$dest/prometheus"
ln -sf ../prometheus/usr/bin/promtool "$dest/bin/promtool"
ln -sf ../prometheus/usr/bin/prometheus "$dest/bin/prometheus"
"$dest/bin/promtool" --version | head -1
