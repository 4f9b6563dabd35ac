#!/usr/bin/env bash
# `make spin-plugins`: packages Mart's `trigger-kafka` and `trigger-timer` as
# Fermyon Spin plugins for this machine's platform: a tarball per plugin
# (the executable, named after the plugin, at its root) and the plugin
# manifest `spin plugins install --file <manifest> --yes` takes (file:// URL
# and the tarball's sha256), as Spin 4's `crates/plugins` reads them.
#   scripts/spin-plugins.sh <folder with the built binaries> <output folder>
set -euo pipefail
cd "$(dirname "$0")/.."
bin_dir=${1:?folder with trigger-kafka and trigger-timer}
out=${2:?output folder}

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' crates/mart-host/Cargo.toml | head -1)
case "$(uname -m)" in
  x86_64) arch=amd64 ;;
  aarch64 | arm64) arch=aarch64 ;;
  *) echo "Spin plugins are published for amd64 and aarch64, not $(uname -m)" >&2; exit 1 ;;
esac
os=linux
[ "$(uname -s)" = Linux ] || { echo "packaging runs on Linux only" >&2; exit 1; }

mkdir -p "$out"
out=$(cd "$out" && pwd)
describe() {
  case "$1" in
    trigger-kafka) echo "Mart's Kafka trigger for Spin: consumer groups, retries, dead letters, and the outbox relay" ;;
    trigger-timer) echo "Mart's timer trigger for Spin: ticks a component at an interval, never overlapping" ;;
  esac
}
for name in trigger-kafka trigger-timer; do
  stage=$(mktemp -d)
  install -m 0755 "$bin_dir/$name" "$stage/$name"
  tarball="$out/$name-$version-$os-$arch.tar.gz"
  tar -C "$stage" -czf "$tarball" "$name"
  rm -rf "$stage"
  sha=$(sha256sum "$tarball" | cut -d' ' -f1)
  cat >"$out/$name.json" <<JSON
{
  "name": "$name",
  "description": "$(describe "$name")",
  "version": "$version",
  "spinCompatibility": ">=4.0",
  "license": "Apache-2.0",
  "packages": [
    {
      "os": "$os",
      "arch": "$arch",
      "url": "file://$tarball",
      "sha256": "$sha"
    }
  ]
}
JSON
  echo "$out/$name.json ($os/$arch, sha256 $sha)"
done
