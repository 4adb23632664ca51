#!/usr/bin/env bash
# demo.sh (make demo): the whole life of a managed plugin, from nothing, with
# the stock docker CLI against a fresh pluginsd. It builds bin/pluginsd, the
# dev registry and the example volume plugin (examples/volume-plugin), starts
# the registry and pluginsd on temporary state, then creates, pushes,
# installs, configures, enables, uses, upgrades and removes the plugin,
# printing each command ($ ...) and its output. Exits 0 only if every step
# did what it should; stops everything it started and removes its temporary
# directories in any case. Needs root (plugins run under runc), docker
# (the CLI only), runc, curl and go.
#
# DEMO_TIMEOUT (seconds, default 120) bounds each command but the builds,
# which get 15 minutes (a cold module cache downloads everything).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
step_timeout=${DEMO_TIMEOUT:-120}
# Run from `make demo`, the `make build` below is not a sub-make.
unset MAKELEVEL MAKEFLAGS MFLAGS

# --- prerequisites -----------------------------------------------------------
missing=0
need() { # need COMMAND HOW-TO-GET-IT
  command -v "$1" >/dev/null 2>&1 && return
  echo "demo: '$1' is not on PATH. $2" >&2
  missing=1
}
need docker "The demo drives pluginsd with the stock docker CLI (the client only, no daemon): on Debian or Ubuntu 'apt-get install docker.io', or docker-ce-cli from Docker's own apt repository."
need runc "pluginsd runs plugins with runc: 'apt-get install runc'."
need curl "'apt-get install curl'."
need go "Go 1.26 builds pluginsd and the plugin: https://go.dev/dl/."
need make "'apt-get install make'."
need setsid "'apt-get install util-linux'."
need timeout "'apt-get install coreutils'."
if [[ $(id -u) != 0 ]]; then
  echo "demo: must run as root: pluginsd starts plugins with runc, which needs root (try: sudo make demo)." >&2
  missing=1
fi
((missing == 0)) || exit 1

# --- state and cleanup -------------------------------------------------------
W=$(mktemp -d /tmp/pluginsd-demo.XXXXXX)
# Plugin sockets live at $PX/<64-hex id>/<socket>: a unix socket path has at
# most 107 bytes, so this directory gets a short name of its own.
PX=$(mktemp -d /tmp/pd.XXXXXX)
export W PX
pd_pid='' reg_pid='' started=$SECONDS

# mounts_under DIR...: mount points at or below the DIRs, deepest first.
mounts_under() {
  local d
  for d in "$@"; do
    [[ $d == /?* ]] || continue # never "" or "/": that would be every mount
    awk -v d="$d" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo
  done | sort -r -u
}

# stop_pid PID SECONDS: SIGTERM, then SIGKILL if it has not exited in time.
stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$? m id
  trap - EXIT INT TERM
  # pluginsd stops the plugins it runs when it gets SIGTERM (10 s grace each).
  [[ -z $pd_pid ]] || stop_pid "$pd_pid" 30
  [[ -z $reg_pid ]] || stop_pid "$reg_pid" 5
  # Whatever a failure left: runc containers, then mounts.
  if [[ -d $W/exec/runc ]]; then
    for id in $(runc --root "$W/exec/runc" list -q 2>/dev/null); do
      runc --root "$W/exec/runc" kill "$id" KILL 2>/dev/null || true
      runc --root "$W/exec/runc" delete -f "$id" 2>/dev/null || true
    done
  fi
  for m in $(mounts_under "$W" "$PX"); do umount -l "$m" 2>/dev/null || true; done
  if [[ -n $(mounts_under "$W" "$PX") ]]; then
    echo "demo: mounts left under $W or $PX; not removing them" >&2
    rc=1
  else
    rm -rf --one-file-system "$W" "$PX"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
  echo >&2
  echo "demo: FAILED: $*" >&2
  if [[ -s $W/pluginsd.log ]]; then
    echo "demo: last lines of the pluginsd log:" >&2
    tail -n 15 "$W/pluginsd.log" >&2
  fi
  exit 1
}

# --- transcript helpers ------------------------------------------------------
section() { printf '\n## %s\n' "$*"; }
say() { printf '# %s\n' "$*"; }

# run 'COMMAND' [SECONDS]: echoes and runs a shell command line (variables
# such as $W are the ones shown by `show`), prints its output and keeps it in
# $out, and stops the demo if it fails or takes longer than SECONDS (default
# DEMO_TIMEOUT).
run() {
  printf '$ %s\n' "$1"
  local rc=0
  out=$(timeout "${2:-$step_timeout}" bash -o pipefail -c "$1" 2>&1) || rc=$?
  [[ -z $out ]] || printf '%s\n' "$out"
  ((rc == 0)) || fail "exit status $rc from: $1"
}

# eventually 'COMMAND' [SECONDS]: like run, for output that arrives a little
# after the step that causes it (pluginsd relays a plugin's output to its log
# every 100 ms): shows the command once and retries it quietly until it
# succeeds or SECONDS (default 10) have passed.
eventually() {
  printf '$ %s\n' "$1"
  local rc=0 deadline=$((SECONDS + ${2:-10}))
  while :; do
    rc=0
    out=$(timeout "$step_timeout" bash -o pipefail -c "$1" 2>&1) || rc=$?
    ((rc != 0 && SECONDS < deadline)) || break
    sleep 0.2
  done
  [[ -z $out ]] || printf '%s\n' "$out"
  ((rc == 0)) || fail "exit status $rc from: $1"
}

# expect REGEX [what]: the output of the last command must match.
expect() {
  grep -Eq -- "$1" <<<"$out" || fail "${2:-output} does not match /$1/"
}

# reject REGEX: the output of the last command must not match.
reject() {
  ! grep -Eq -- "$1" <<<"$out" || fail "output unexpectedly matches /$1/"
}

# show NAME VALUE: sets and exports a variable that later commands use, and
# shows the assignment.
show() {
  printf '$ export %s=%s\n' "$1" "$2"
  printf -v "$1" '%s' "$2"
  export "${1?}"
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
  local p i
  for ((i = 0; i < 100; i++)); do
    p=$((20000 + RANDOM % 30000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  return 1
}

echo "pluginsd demo: the stock docker CLI managing a volume plugin through pluginsd"
printf '$ cd %s\n' "$repo"

# --- build -------------------------------------------------------------------
section "Build pluginsd, the dev registry and the example plugin"
show W "$W"
show PX "$PX"
run 'make build' 900
run '(cd integration && go build -o "$W/devregistry" ./cmd/devregistry)' 900
run '(cd examples/volume-plugin && go vet ./... && go test -count=1 ./...)' 900
run 'examples/volume-plugin/build.sh "$W/plugin"' 900
say "A managed plugin is a config.json beside a rootfs/; this rootfs is one static binary:"
run 'find "$W/plugin/v1" | sort'
run 'cat "$W/plugin/v1/config.json"'

# --- start -------------------------------------------------------------------
section "Start a registry and pluginsd"
printf '$ %s\n' 'setsid "$W/devregistry" -addr 127.0.0.1:0 >"$W/registry.log" 2>&1 &'
setsid "$W/devregistry" -addr 127.0.0.1:0 >"$W/registry.log" 2>&1 &
reg_pid=$!
reg=''
for _ in $(seq 1 100); do
  reg=$(sed -n 's/^registry listening on //p' "$W/registry.log")
  [[ -z $reg ]] || break
  kill -0 "$reg_pid" 2>/dev/null || break
  sleep 0.1
done
[[ -n $reg ]] || { cat "$W/registry.log"; fail "the registry did not start"; }
cat "$W/registry.log"
show REG "$reg"

# Every setting is a flag: an empty config file keeps /etc/pluginsd/pluginsd.json
# (an installed service's settings) out of the demo.
echo '{}' >"$W/pluginsd.json"
for attempt in 1 2 3; do
  port=$(free_port) || fail "no free TCP port found on 127.0.0.1"
  cmd='setsid bin/pluginsd --host "unix://$W/pluginsd.sock" --host tcp://127.0.0.1:'$port' --data-root "$W/data" --exec-root "$W/exec" --plugin-exec-root "$PX" --config-file "$W/pluginsd.json" >"$W/pluginsd.log" 2>&1 &'
  printf '$ %s\n' "$cmd"
  setsid bin/pluginsd --host "unix://$W/pluginsd.sock" --host "tcp://127.0.0.1:$port" \
    --data-root "$W/data" --exec-root "$W/exec" --plugin-exec-root "$PX" \
    --config-file "$W/pluginsd.json" >"$W/pluginsd.log" 2>&1 &
  pd_pid=$!
  up=''
  for _ in $(seq 1 300); do
    if curl -sf -o /dev/null "http://127.0.0.1:$port/_ping" &&
      curl -sf -o /dev/null --unix-socket "$W/pluginsd.sock" http://pluginsd/_ping; then
      up=1
      break
    fi
    kill -0 "$pd_pid" 2>/dev/null || break
    sleep 0.1
  done
  [[ -z $up ]] || break
  stop_pid "$pd_pid" 5
  pd_pid=''
  # Someone took the port between the check and the listen: try another.
  grep -q 'address already in use' "$W/pluginsd.log" && ((attempt < 3)) || fail "pluginsd did not start"
done
show API "http://127.0.0.1:$port"
# The CLI reads its settings from a directory of our own, not ~/.docker.
show DOCKER_CONFIG "$W/docker-config"
show DOCKER_HOST "unix://$W/pluginsd.sock"
unset DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH
export DOCKER_CLI_HINTS=false
run 'docker version'
expect 'Server:' "docker version"

# --- create, push ------------------------------------------------------------
section "Create the plugin from its directory and push it"
run 'docker plugin create "$REG/demo/dirvol:1.0" "$W/plugin/v1"'
run 'docker plugin ls'
expect "$REG/demo/dirvol:1.0 +dirvol: local volumes"
run 'docker plugin push "$REG/demo/dirvol:1.0"'
expect 'digest: sha256:[0-9a-f]{64}'
say "It is in the registry now; remove the local copy and install it back."
run 'docker plugin rm "$REG/demo/dirvol:1.0"'
run 'docker plugin ls'
reject 'dirvol'

# --- install -----------------------------------------------------------------
section "Install it from the registry"
say "What the plugin asks of the host, as the CLI fetches it before installing:"
run 'curl -sS "$API/plugins/privileges?remote=$REG/demo/dirvol:1.0"'
expect '"Name":"mount".*"/var/lib/dirvol"'
expect '"Name":"capabilities".*"CAP_SYS_ADMIN"'
say "The CLI shows the same list and asks; 'y' grants it. --disable: configure before the first start."
run 'echo y | docker plugin install --alias dirvol --disable "$REG/demo/dirvol:1.0"'
expect 'Do you grant the above permissions\?'
expect 'Installed plugin'
run 'docker plugin ls'
expect 'dirvol:latest +dirvol: local volumes.* false'
run 'docker plugin inspect dirvol'
expect "\"PluginReference\": \"$REG/demo/dirvol:1.0\""

# --- set, enable -------------------------------------------------------------
section "Configure and enable it"
say "Keep the volumes in a directory of the demo's own, and log every request:"
run 'mkdir "$W/volumes"'
run 'docker plugin set dirvol DEBUG=1 data.source="$W/volumes"'
run "docker plugin inspect -f '{{.Settings.Env}} {{range .Config.Mounts}}{{.Name}}={{.Source}}{{end}}' dirvol"
expect "\\[DEBUG=1\\] data=$W/volumes"
run 'docker plugin enable dirvol'
run 'docker plugin ls'
expect 'dirvol:latest .* true'

# --- use ---------------------------------------------------------------------
section "Use the plugin through its socket, as an engine would"
id=$(docker plugin inspect -f '{{.Id}}' dirvol) || fail "inspect"
show ID "$id"
show S "$PX/$ID/dirvol.sock"
run 'ls -l "$PX/$ID"'
vd() { # vd METHOD [JSON]: one call of the plugin protocol on the plugin's socket
  local body=${2:-'{}'}
  run "curl -sS --unix-socket \"\$S\" -X POST -d '$body' http://plugin/$1"
}
vd Plugin.Activate
expect '"Implements":\["VolumeDriver"\]'
vd VolumeDriver.Capabilities
expect '"Scope":"local"'
vd VolumeDriver.Create '{"Name":"demo","Opts":{"mode":"0750"}}'
expect '^\{"Err":""\}$'
vd VolumeDriver.List
expect '"Name":"demo"'
vd VolumeDriver.Mount '{"Name":"demo","ID":"container-1"}'
expect '"Mountpoint":"/mnt/volumes/demo"'
say "/mnt/volumes is the plugin's propagatedMount: the mount shows on the host in"
say "<data-root>/plugins/<id>/propagated-mount, where an engine bind-mounts volumes from."
run 'echo hello from the host > "$W/volumes/demo/greeting"'
run 'cat "$W/data/plugins/$ID/propagated-mount/demo/greeting"'
expect '^hello from the host$'
vd VolumeDriver.Unmount '{"Name":"demo","ID":"container-1"}'
vd VolumeDriver.Get '{"Name":"demo"}'
expect '"Status":\{"mounts":0\}'
vd VolumeDriver.Get '{"Name":"../etc"}'
expect 'invalid volume name'
say "The plugin's output goes to the pluginsd log, one entry per line:"
eventually 'grep -o "created volume demo ([^)]*)" "$W/pluginsd.log"'

# --- upgrade -----------------------------------------------------------------
section "Disable it and upgrade to 2.0"
run 'docker plugin disable dirvol'
say "Disabling stopped the plugin and took down its socket directory and mounts:"
run 'ls -A "$PX"'
expect '^$'
run 'cut -d" " -f5 /proc/self/mountinfo | grep -c -e "$W" -e "$PX" || true'
expect '^0$'
say "Version 2.0 goes to the registry first:"
run 'docker plugin create "$REG/demo/dirvol:2.0" "$W/plugin/v2"'
run 'docker plugin push "$REG/demo/dirvol:2.0"'
run 'docker plugin rm "$REG/demo/dirvol:2.0"'
say "--skip-remote-check: 2.0 is meant, though the old reference said 1.0. The privileges are asked again."
run 'echo y | docker plugin upgrade --skip-remote-check dirvol "$REG/demo/dirvol:2.0"'
expect 'Do you grant the above permissions\?'
expect 'Upgraded plugin dirvol'
run "docker plugin inspect -f '{{.Id}} {{.PluginReference}} {{.Settings.Env}}' dirvol"
expect "^$ID $REG/demo/dirvol:2.0 \\[DEBUG=1\\]$"
say "Settings are kept, including the mount source set above."
run "docker plugin inspect -f '{{range .Config.Mounts}}{{.Name}}={{.Source}}{{end}}' dirvol"
expect "^data=$W/volumes\$"
run 'docker plugin enable dirvol'
run 'docker plugin ls'
expect 'dirvol:latest +dirvol 2: local volumes.* true'
say "Same ID, so the same socket; 2.0 serves the volume 1.0 created:"
vd VolumeDriver.List
expect '"Name":"demo"'
eventually 'grep -o "dirvol 2.0.0 serving" "$W/pluginsd.log"'

# --- remove ------------------------------------------------------------------
section "Remove it while it runs"
run 'docker plugin rm -f dirvol'
run 'docker plugin ls'
reject 'dirvol'
say "The volumes stay on the host: they are the user's data, not the plugin's."
run 'ls "$W/volumes"'
expect '^demo$'
say "Nothing of the plugin is left running or mounted:"
run 'runc --root "$W/exec/runc" list'
reject "$ID"
run 'cut -d" " -f5 /proc/self/mountinfo | grep -c -e "$W" -e "$PX" || true'
expect '^0$'
leftover=$(mounts_under "$W" "$PX")
[[ -z $leftover ]] || fail "mounts left: $leftover"
ls -d /sys/fs/cgroup/*/pluginsd/"$ID" /sys/fs/cgroup/pluginsd/"$ID" >/dev/null 2>&1 && fail "cgroups of $ID left"
echo "(no mounts under \$W or \$PX, no runc container, no cgroup of \$ID)"

section "Stop pluginsd and the registry"
printf '$ kill %s %s\n' "$pd_pid" "$reg_pid"
stop_pid "$pd_pid" 30
stop_pid "$reg_pid" 5
tail -n 1 "$W/pluginsd.log" | grep -q 'pluginsd stopped' || fail "pluginsd did not stop cleanly"
pd_pid='' reg_pid=''
echo "pluginsd stopped"
printf '\ndemo: OK: every step passed in %ds\n' $((SECONDS - started))
