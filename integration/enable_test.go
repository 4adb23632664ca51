package integration

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pluginClient talks HTTP to an enabled plugin's socket.
func pluginClient(sock string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
}

// pluginCall POSTs to a plugin method and decodes the JSON answer.
func pluginCall(t *testing.T, sock, method string, out any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://plugin/"+method, strings.NewReader("{}"))
	resp, err := pluginClient(sock).Do(req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("%s: %v", method, err)
	}
}

// mountinfoMentions reports whether any mount line mentions s.
func mountinfoMentions(t *testing.T, s string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(b), s)
}

// TestCLIEnableDisable runs a real plugin in runc through the stock CLI.
func TestCLIEnableDisable(t *testing.T) {
	d := startDaemon(t, "")
	src := t.TempDir()
	d.mustDocker("plugin", "create", "en", pluginDir(t, volConfig(src)))
	id := d.mustDocker("plugin", "inspect", "-f", "{{.Id}}", "en")

	d.mustDocker("plugin", "enable", "en")
	if out := d.mustDocker("plugin", "inspect", "-f", "{{.Enabled}}", "en"); out != "true" {
		t.Fatalf("enabled = %s", out)
	}
	sock := filepath.Join(d.sockets, id, "tp.sock")
	var caps struct{ Capabilities struct{ Scope string } }
	pluginCall(t, sock, "VolumeDriver.Capabilities", &caps)
	if caps.Capabilities.Scope != "local" {
		t.Errorf("capabilities: %+v", caps)
	}
	for args, want := range map[string]string{
		"plugin enable en":        "plugin already enabled: plugin en:latest is enabled",
		"plugin rm en":            "plugin en:latest is enabled",
		"plugin set en DEBUG=1":   "cannot set on an active plugin",
		"plugin upgrade en x:1.0": "disable",
	} {
		out, err := d.docker(strings.Fields(args)...)
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("docker %s: err=%v out=%q, want %q", args, err, out, want)
		}
	}
	d.mustDocker("plugin", "disable", "en")
	if out := d.mustDocker("plugin", "inspect", "-f", "{{.Enabled}}", "en"); out != "false" {
		t.Errorf("enabled after disable = %s", out)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket still there after disable: %v", err)
	}
	out, err := d.docker("plugin", "disable", "en")
	if err == nil || !strings.Contains(out, "plugin is already disabled: plugin en:latest found but disabled") {
		t.Errorf("second disable: %v %q", err, out)
	}
	// Enable again, then a forced remove leaves nothing with the ID behind.
	d.mustDocker("plugin", "enable", "en")
	d.mustDocker("plugin", "rm", "-f", "en")
	if mountinfoMentions(t, id) {
		t.Error("a mount with the plugin ID is left after rm -f")
	}
	for _, dir := range []string{d.sockets, filepath.Join(d.root, "exec", "bundles"), filepath.Join(d.root, "exec", "runc"), filepath.Join(d.root, "data", "plugins"), filepath.Join(d.root, "data", "logs")} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.Contains(e.Name(), id) {
				t.Errorf("%s/%s left after rm -f", dir, e.Name())
			}
		}
	}
}

// TestEnableFailures: a plugin that cannot start fails at once with the
// cause, stays disabled, and leaves nothing running.
func TestEnableFailures(t *testing.T) {
	d := startDaemon(t, "")
	crash := strings.Replace(volConfig("/tmp"), `"value": "volume"`, `"value": "crash"`, 1)
	d.mustDocker("plugin", "create", "crash", pluginDir(t, crash))
	start := time.Now()
	out, err := d.docker("plugin", "enable", "--timeout", "20", "crash")
	if err == nil || !strings.Contains(out, "status 3") || !strings.Contains(out, "crash mode") {
		t.Errorf("enable crash: err=%v out=%q", err, out)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("crash detected after %v, want at once", el)
	}
	slow := strings.Replace(volConfig("/tmp"), `"value": "volume"`, `"value": "slow"`, 1)
	slow = strings.Replace(slow, `{"name": "DEBUG"`, `{"name": "DELAY", "settable": ["value"], "value": "10"}, {"name": "DEBUG"`, 1)
	d.mustDocker("plugin", "create", "slow", pluginDir(t, slow))
	start = time.Now()
	out, err = d.docker("plugin", "enable", "--timeout", "1", "slow")
	if err == nil || !strings.Contains(out, "within") {
		t.Errorf("enable slow with timeout 1: err=%v out=%q", err, out)
	}
	if el := time.Since(start); el > 6*time.Second {
		t.Errorf("timeout 1 took %v", el)
	}
	d.mustDocker("plugin", "create", "missing", pluginDir(t, volConfig("/nonexistent/source")))
	out, err = d.docker("plugin", "enable", "missing")
	if err == nil || !strings.Contains(out, "/nonexistent/source") {
		t.Errorf("enable with a missing bind source: err=%v out=%q", err, out)
	}
	for _, n := range []string{"crash", "slow", "missing"} {
		if out := d.mustDocker("plugin", "inspect", "-f", "{{.Enabled}}", n); out != "false" {
			t.Errorf("%s enabled = %s after a failed enable", n, out)
		}
	}
	// timeout must be an integer (dockerd: 500), and may be absent.
	resp := rawDo(t, d, http.MethodPost, "/v1.41/plugins/crash/enable?timeout=abc")
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("timeout=abc: %d", resp.StatusCode)
	}
	d.mustDocker("plugin", "set", "slow", "DELAY=0")
	if resp := rawDo(t, d, http.MethodPost, "/v1.41/plugins/slow/enable"); resp.StatusCode != http.StatusOK {
		t.Errorf("enable without timeout: %d", resp.StatusCode)
	}
}

func rawDo(t *testing.T, d *daemon, method, path string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), method, "http://pluginsd"+path, nil)
	resp, err := d.httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// TestCrashRestart: a plugin that dies while enabled comes back.
func TestCrashRestart(t *testing.T) {
	d := startDaemon(t, "")
	d.mustDocker("plugin", "create", "cr", pluginDir(t, volConfig("/tmp")))
	d.mustDocker("plugin", "enable", "cr")
	id := d.mustDocker("plugin", "inspect", "-f", "{{.Id}}", "cr")
	sock := filepath.Join(d.sockets, id, "tp.sock")
	pid := pluginPid(t, d, id)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		// A new process that answers on the socket: the pid alone appears
		// before the plugin listens.
		if p := pluginPidOrZero(d, id); p != 0 && p != pid && socketAnswers(sock) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("plugin not restarted within 15 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out := d.mustDocker("plugin", "inspect", "-f", "{{.Enabled}}", "cr"); out != "true" {
		t.Errorf("enabled = %s after restart", out)
	}
}

// socketAnswers reports whether a plugin answers on sock.
func socketAnswers(sock string) bool {
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://plugin/VolumeDriver.Capabilities", strings.NewReader("{}"))
	resp, err := pluginClient(sock).Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// pluginPid reads the plugin's init pid from runc's state.
func pluginPid(t *testing.T, d *daemon, id string) int {
	t.Helper()
	if p := pluginPidOrZero(d, id); p != 0 {
		return p
	}
	t.Fatalf("no runc state for %s", id)
	return 0
}

func pluginPidOrZero(d *daemon, id string) int {
	b, err := os.ReadFile(filepath.Join(d.root, "exec", "runc", id, "state.json"))
	if err != nil {
		return 0
	}
	var st struct {
		InitProcessPid int `json:"init_process_pid"`
	}
	if json.Unmarshal(b, &st) != nil {
		return 0
	}
	if syscall.Kill(st.InitProcessPid, 0) != nil {
		return 0
	}
	return st.InitProcessPid
}

// TestLiveRestore: with live-restore, a pluginsd restart does not disturb a
// running plugin; without it, the plugin is stopped and started again.
func TestLiveRestore(t *testing.T) {
	root := t.TempDir()
	d := startDaemonWith(t, root, true)
	d.mustDocker("plugin", "create", "lr", pluginDir(t, volConfig("/tmp")))
	d.mustDocker("plugin", "enable", "lr")
	id := d.mustDocker("plugin", "inspect", "-f", "{{.Id}}", "lr")
	pid := pluginPid(t, d, id)
	d.stop()
	if syscall.Kill(pid, 0) != nil {
		t.Fatal("plugin stopped with its server despite live-restore")
	}
	d2 := startDaemonWith(t, root, false)
	if got := pluginPid(t, d2, id); got != pid {
		t.Errorf("adopted plugin pid %d, want %d (not restarted)", got, pid)
	}
	var caps struct{ Capabilities struct{ Scope string } }
	pluginCall(t, filepath.Join(d2.sockets, id, "tp.sock"), "VolumeDriver.Capabilities", &caps)
	// Without live-restore the server stops it at shutdown and starts it
	// again at the next start.
	d2.stop()
	if syscall.Kill(pid, 0) == nil {
		t.Error("plugin still running after a shutdown without live-restore")
	}
	d3 := startDaemonWith(t, root, false)
	deadline := time.Now().Add(15 * time.Second)
	for pluginPidOrZero(d3, id) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("enabled plugin not started again at start-up")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out := d3.mustDocker("plugin", "inspect", "-f", "{{.Enabled}}", "lr"); out != "true" {
		t.Errorf("enabled = %s", out)
	}
}

// TestEnableBadConfigs: configs that cannot run give an error naming the
// cause, the plugin stays disabled, and nothing with its ID is left.
func TestEnableBadConfigs(t *testing.T) {
	d := startDaemon(t, "")
	base := func(repl ...string) string {
		c := volConfig("/tmp")
		for i := 0; i+1 < len(repl); i += 2 {
			c = strings.Replace(c, repl[i], repl[i+1], 1)
		}
		return c
	}
	cases := []struct {
		name, config, want string
		prep               func(dir string)
	}{
		{"noentry", base(`"entrypoint": ["/testplugin"],`, ``), "entrypoint", nil},
		{"missingbin", base(`"/testplugin"`, `"/nosuchbinary"`), "/nosuchbinary", nil},
		{"foreignarch", base(`"/testplugin"`, `"/arm64bin"`), "is built for arm64", func(dir string) {
			// An ELF header for aarch64 (e_machine 183).
			elf := make([]byte, 64)
			copy(elf, "\x7fELF\x02\x01\x01")
			elf[16], elf[18] = 2, 183
			if err := os.WriteFile(filepath.Join(dir, "rootfs", "arm64bin"), elf, 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{"nodevice", base(`"linux": {"capabilities": ["CAP_SYS_ADMIN"]}`, `"linux": {"capabilities": ["CAP_SYS_ADMIN"], "devices": [{"name": "d", "path": "/etc/hostname"}]}`), "/etc/hostname", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := pluginDir(t, tc.config)
			if tc.prep != nil {
				tc.prep(dir)
			}
			d.mustDocker("plugin", "create", tc.name, dir)
			id := d.mustDocker("plugin", "inspect", "-f", "{{.Id}}", tc.name)
			out, err := d.docker("plugin", "enable", tc.name)
			if err == nil || !strings.Contains(out, tc.want) {
				t.Errorf("enable: err=%v out=%q, want it to name %q", err, out, tc.want)
			}
			if out := d.mustDocker("plugin", "inspect", "-f", "{{.Enabled}}", tc.name); out != "false" {
				t.Errorf("enabled = %s", out)
			}
			if mountinfoMentions(t, id) {
				t.Error("a mount with the plugin ID is left")
			}
			for _, dir := range []string{d.sockets, filepath.Join(d.root, "exec", "bundles"), filepath.Join(d.root, "exec", "runc")} {
				if _, err := os.Stat(filepath.Join(dir, id)); err == nil {
					t.Errorf("%s/%s left behind", dir, id)
				}
			}
		})
	}
	// A bind mount without options is a bind (dockerd fails with "no such
	// device").
	d.mustDocker("plugin", "create", "bindnoopts", pluginDir(t, base(`"options": ["rbind"], `, ``)))
	d.mustDocker("plugin", "enable", "bindnoopts")
	d.mustDocker("plugin", "rm", "-f", "bindnoopts")
}

// TestKillRestoreRealBinary: bin/pluginsd killed with SIGKILL while a plugin
// runs; with live-restore (the default) the restarted server adopts the
// running plugin (same process) instead of starting it again, and can
// disable it; without live-restore the next start enables it again.
func TestKillRestoreRealBinary(t *testing.T) {
	l := newRSLayout(t)
	sockets, err := os.MkdirTemp("", "pk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockets) })
	args := l.args("--plugin-exec-root", sockets)
	p := rsStart(t, l.sock, args...)
	p.ready(t)
	host := "unix://" + l.sock
	if out, err := runDocker(t, host, "plugin", "create", "kr", pluginDir(t, volConfig("/tmp"))); err != nil {
		t.Fatal(out)
	}
	if out, err := runDocker(t, host, "plugin", "enable", "kr"); err != nil {
		t.Fatal(out)
	}
	id, _ := runDocker(t, host, "plugin", "inspect", "-f", "{{.Id}}", "kr")
	pidOf := func() int {
		b, err := os.ReadFile(filepath.Join(l.exec, "runc", id, "state.json"))
		if err != nil {
			return 0
		}
		var st struct {
			InitProcessPid int `json:"init_process_pid"`
		}
		_ = json.Unmarshal(b, &st)
		if st.InitProcessPid == 0 || syscall.Kill(st.InitProcessPid, 0) != nil {
			return 0
		}
		return st.InitProcessPid
	}
	pid := pidOf()
	if pid == 0 {
		t.Fatal("no running plugin")
	}
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	p.wait(t, 10*time.Second)
	if syscall.Kill(pid, 0) != nil {
		t.Fatal("the plugin died with its server")
	}
	p = rsStart(t, l.sock, args...)
	p.ready(t)
	if got := pidOf(); got != pid {
		t.Errorf("after restart the plugin runs as %d, want the adopted %d", got, pid)
	}
	if !socketAnswers(filepath.Join(sockets, id, "tp.sock")) {
		t.Error("adopted plugin does not answer")
	}
	if out, _ := runDocker(t, host, "plugin", "inspect", "-f", "{{.Enabled}}", "kr"); out != "true" {
		t.Errorf("enabled = %s", out)
	}
	// Killed again, and restarted without live-restore: stopped at that
	// server's shutdown, started again by the next one.
	_ = p.cmd.Process.Kill()
	p.wait(t, 10*time.Second)
	p = rsStart(t, l.sock, append(args, "--live-restore=false")...)
	p.ready(t)
	p.term(t)
	if syscall.Kill(pid, 0) == nil {
		t.Error("plugin still running after a shutdown without live-restore")
	}
	p = rsStart(t, l.sock, args...)
	p.ready(t)
	deadline := time.Now().Add(15 * time.Second)
	for pidOf() == 0 || !socketAnswers(filepath.Join(sockets, id, "tp.sock")) {
		if time.Now().After(deadline) {
			t.Fatalf("enabled plugin not started again:\n%s", p.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out, err := runDocker(t, host, "plugin", "rm", "-f", "kr"); err != nil {
		t.Fatal(out)
	}
	if mountinfoMentions(t, id) {
		t.Error("mount with the plugin ID left after rm -f")
	}
	p.term(t)
}

// TestPropagatedMountCleanup: a plugin with a propagated mount leaves no
// mount behind on disable or remove, and leftovers of an interrupted remove
// are unmounted before they are deleted, never deleted through a mount.
func TestPropagatedMountCleanup(t *testing.T) {
	root := t.TempDir()
	d := startDaemon(t, root)
	src := t.TempDir()
	cfg := strings.Replace(volConfig(src), `"network": {"type": "none"},`, `"network": {"type": "none"}, "propagatedMount": "/data",`, 1)
	d.mustDocker("plugin", "create", "pm", pluginDir(t, cfg))
	id := d.mustDocker("plugin", "inspect", "-f", "{{.Id}}", "pm")
	d.mustDocker("plugin", "enable", "pm")
	if !mountinfoMentions(t, id) {
		t.Fatal("no propagated mount while enabled")
	}
	d.mustDocker("plugin", "disable", "pm")
	if mountinfoMentions(t, id) {
		t.Error("a mount with the plugin ID is left after disable")
	}
	d.mustDocker("plugin", "enable", "pm")
	d.mustDocker("plugin", "rm", "-f", "pm")
	if mountinfoMentions(t, id) {
		t.Error("a mount with the plugin ID is left after rm -f")
	}
	if entries, _ := os.ReadDir(filepath.Join(root, "data", "plugins")); len(entries) != 0 {
		t.Errorf("plugins dir after rm -f: %v", entries)
	}
	// What a kill mid-remove could leave: a directory being removed with a
	// mount inside. The next start must unmount it, not delete through it.
	d.stop()
	victim := t.TempDir()
	if err := os.WriteFile(filepath.Join(victim, "keep"), []byte("important"), 0o644); err != nil {
		t.Fatal(err)
	}
	inside := filepath.Join(root, "data", "plugins", ".removing-"+id, "propagated-mount")
	if err := os.MkdirAll(inside, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(victim, inside, "", syscall.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(inside, syscall.MNT_DETACH) })
	startDaemon(t, root)
	if b, err := os.ReadFile(filepath.Join(victim, "keep")); err != nil || string(b) != "important" {
		t.Errorf("the file behind the leftover's mount: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(root, "data", "plugins", ".removing-"+id)); !os.IsNotExist(err) {
		t.Errorf("leftover not removed: %v", err)
	}
}

// TestOrphanLogsRemoved: at start, logs of plugins that no longer exist
// (a remove interrupted between the plugin and its logs) are deleted; the
// logs of existing plugins are kept.
func TestOrphanLogsRemoved(t *testing.T) {
	root := t.TempDir()
	d := startDaemon(t, root)
	d.mustDocker("plugin", "create", "keep", pluginDir(t, volConfig("/tmp")))
	d.mustDocker("plugin", "enable", "keep")
	id := d.mustDocker("plugin", "inspect", "-f", "{{.Id}}", "keep")
	d.stop()
	logs := filepath.Join(root, "data", "logs")
	orphan := filepath.Join(logs, strings.Repeat("ab", 32)+".log")
	for _, p := range []string{orphan, orphan + ".1"} {
		if err := os.WriteFile(p, []byte("old\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	startDaemon(t, root)
	for _, p := range []string{orphan, orphan + ".1"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s not removed: %v", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(logs, id+".log")); err != nil {
		t.Errorf("the log of an existing plugin: %v", err)
	}
}
