#!/usr/bin/env bash
# bigpull.sh [SIZE_MB]: measures pluginsd's peak resident memory (VmHWM)
# while it creates, pushes and installs a plugin with SIZE_MB (default
# 1024) of incompressible data, against a dev registry. Streaming means
# the peak stays flat whatever the size; run with 64 and 1024 to compare.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
size=${1:-1024}
work=$(mktemp -d /tmp/pluginsd-bigpull.XXXXXX)
cleanup() { kill "${pdpid:-}" "${regpid:-}" 2>/dev/null || true; sleep 0.5; rm -rf "$work"; }
trap cleanup EXIT
(cd "$here" && make -s build >/dev/null)
(cd "$here/integration" && go build -o "$work/devregistry" ./cmd/devregistry)
"$work/devregistry" -addr 127.0.0.1:23765 >/dev/null 2>&1 & regpid=$!
"$here/bin/pluginsd" --host tcp://127.0.0.1:23766 --data-root "$work/data" --exec-root "$work/exec" --log-level warn >"$work/log" 2>&1 & pdpid=$!
for _ in $(seq 1 50); do curl -s -o /dev/null 127.0.0.1:23766/_ping && curl -s -o /dev/null 127.0.0.1:23765/v2/ && break; sleep 0.1; done
mkdir -p "$work/p/rootfs"
echo '{"description":"big","entrypoint":["/x"],"interface":{"socket":"s.sock","types":["docker.volumedriver/1.0"]}}' > "$work/p/config.json"
head -c $((size << 20)) /dev/urandom > "$work/p/rootfs/blob.bin"
export DOCKER_HOST=tcp://127.0.0.1:23766
R=127.0.0.1:23765/big/p:1.0
hwm() { awk '/VmHWM/ {print int($2/1024)}' /proc/$pdpid/status; }
t() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); echo "scale=1; $size / ($e - $s)" | bc; }
echo "start: peak_rss_mb $(hwm)"
echo "create: $(t docker plugin create "$R" "$work/p") MB/s, peak_rss_mb $(hwm)"
echo "push: $(t docker plugin push "$R") MB/s, peak_rss_mb $(hwm)"
docker plugin rm "$R" >/dev/null
echo "install: $(t docker plugin install --grant-all-permissions --disable "$R") MB/s, peak_rss_mb $(hwm)"
