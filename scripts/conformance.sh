#!/usr/bin/env bash
# conformance.sh NN...: runs the shared stock-CLI conformance scenarios NN
# (e.g. 01 02 03) against a fresh pluginsd built from this checkout, on
# temporary state, and stops it afterwards. The suite lives beside the
# repository in ../shared/conformance (override with CONFORMANCE_DIR).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
conf=${CONFORMANCE_DIR:-$here/../shared/conformance}
if [[ ! -d $conf/scenarios ]]; then
  echo "conformance: suite not found at $conf (set CONFORMANCE_DIR)" >&2
  exit 1
fi
command -v docker >/dev/null || { echo "conformance: the docker CLI is required on PATH" >&2; exit 1; }
work=$(mktemp -d /tmp/pluginsd-conformance.XXXXXX)
export OURS_DIR=$work/ours OURS_PORT=${OURS_PORT:-23761}
cleanup() {
  [[ -f $OURS_DIR/pid ]] && kill "$(cat "$OURS_DIR/pid")" 2>/dev/null || true
  [[ -n ${regpid:-} ]] && kill "$regpid" 2>/dev/null || true
  sleep 0.5
  rm -rf "$work"
}
trap cleanup EXIT
bash "$conf/plugins/build.sh" "$work/pd" >/dev/null
# A registry for the install/push/upgrade scenarios: $REG if given, else a
# real distribution registry (in memory) started here.
if [[ -z ${REG:-} ]]; then
  (cd "$here/integration" && go build -o "$work/devregistry" ./cmd/devregistry)
  REG=127.0.0.1:${REG_PORT:-23762}
  "$work/devregistry" -addr "$REG" >"$work/registry.log" 2>&1 &
  regpid=$!
  for _ in $(seq 1 50); do curl -s -o /dev/null "http://$REG/v2/" && break; sleep 0.1; done
fi
API=$(bash "$conf/ours-up.sh" "$here")
files=()
for n in "$@"; do files+=("$conf"/scenarios/"$n"-*.sh); done
API=$API REG=$REG PD=$work/pd bash "$conf/run.sh" ours "${files[@]}"
