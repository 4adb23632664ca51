#!/usr/bin/env bash
# interop.sh: plugins move both ways between pluginsd and the reference
# dockerd 20.10 through a real registry:
#   pluginsd create + push  ->  dockerd install + enable (the plugin runs)
#   dockerd create + push   ->  pluginsd install + enable (the plugin runs)
# Starts the reference with ../shared/conformance/ref-up.sh (installs Debian's
# docker.io when missing), a dev registry and a fresh pluginsd.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
conf=${CONFORMANCE_DIR:-$here/../shared/conformance}
work=$(mktemp -d /tmp/pluginsd-interop.XXXXXX)
export OURS_DIR=$work/ours OURS_PORT=${OURS_PORT:-23763}
cleanup() {
  [[ -f $OURS_DIR/pid ]] && kill "$(cat "$OURS_DIR/pid")" 2>/dev/null || true
  [[ -n ${regpid:-} ]] && kill "$regpid" 2>/dev/null || true
  sleep 0.5; rm -rf "$work"
}
trap cleanup EXIT
REG_ONLY= bash "$conf/ref-up.sh" >"$work/ref-up.log" 2>&1 || { cat "$work/ref-up.log"; exit 1; }
REF=tcp://127.0.0.1:2375
curl -sf -o /dev/null http://127.0.0.1:2375/_ping || { echo "interop: reference dockerd is not up"; cat "$work/ref-up.log"; exit 1; }
(cd "$here/integration" && go build -o "$work/devregistry" ./cmd/devregistry)
REG=127.0.0.1:${REG_PORT:-23764}
"$work/devregistry" -addr "$REG" >"$work/registry.log" 2>&1 &
regpid=$!
for _ in $(seq 1 50); do curl -s -o /dev/null "http://$REG/v2/" && break; sleep 0.1; done
bash "$conf/plugins/build.sh" "$work/pd" >/dev/null
API=$(bash "$conf/ours-up.sh" "$here")
OURS=tcp://${API#http://}
P=interop$(date +%s)
pass=0 fail=0
check() { # description command...
  local d=$1; shift
  if out=$("$@" 2>&1); then pass=$((pass+1)); echo "PASS $d"; else fail=$((fail+1)); echo "FAIL $d: $out"; fi
}
ref() { DOCKER_HOST=$REF docker "$@"; }
ours() { DOCKER_HOST=$OURS docker "$@"; }

A=$REG/$P/from-pluginsd:1.0
check "pluginsd creates $A" ours plugin create "$A" "$work/pd/vol"
check "pluginsd pushes it" ours plugin push "$A"
check "dockerd installs it" ref plugin install --grant-all-permissions "$A"
check "dockerd runs it" sh -c "DOCKER_HOST=$REF docker plugin inspect -f '{{.Enabled}}' '$A' | grep -qx true"
check "dockerd sees its config" sh -c "DOCKER_HOST=$REF docker plugin inspect -f '{{.Config.Description}} {{.Config.Interface.Socket}}' '$A' | grep -qx 'harness volume plugin tp.sock'"
check "dockerd removes it" ref plugin rm -f "$A"

B=$REG/$P/from-dockerd:1.0
check "dockerd creates $B" ref plugin create "$B" "$work/pd/vol2"
check "dockerd pushes it" ref plugin push "$B"
check "pluginsd installs it" ours plugin install --grant-all-permissions "$B"
check "pluginsd runs it" sh -c "DOCKER_HOST=$OURS docker plugin inspect -f '{{.Enabled}}' '$B' | grep -qx true"
check "pluginsd keeps dockerd's DockerVersion for API 1.41" sh -c "curl -sf '$API/v1.41/plugins/$B/json' | grep -q '\"DockerVersion\":\"20.10'"
check "pluginsd removes it" ours plugin rm -f "$B"
ref plugin rm -f "$B" >/dev/null 2>&1 || true
echo "$pass passed, $fail failed"
[[ $fail == 0 ]]
