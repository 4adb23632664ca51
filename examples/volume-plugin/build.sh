#!/usr/bin/env bash
# build.sh OUTDIR: builds the dirvol plugin and lays out two plugin
# directories, each a config.json beside a rootfs/ that holds one static
# binary, ready for `docker plugin create NAME OUTDIR/v1`:
#   OUTDIR/v1  config.json,    binary stamped 1.0.0
#   OUTDIR/v2  config.v2.json, binary stamped 2.0.0 (for `docker plugin upgrade`)
set -euo pipefail
src=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUTDIR}
for v in 1 2; do
  dir=$out/v$v
  rm -rf "$dir"
  mkdir -p "$dir/rootfs"
  # CGO_ENABLED=0: a static binary needs no libc in the rootfs.
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$v.0.0" -o "$dir/rootfs/dirvol" .)
  cfg=$src/config.json
  [[ $v == 1 ]] || cfg=$src/config.v$v.json
  cp "$cfg" "$dir/config.json"
done
echo "$out/v1 $out/v2"
