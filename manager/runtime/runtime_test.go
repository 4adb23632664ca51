package runtime

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/plugin"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// testPluginBin is the integration test plugin, built by TestMain.
var testPluginBin string

const testCgroupParent = "/pluginsd-test"

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "runtime-testplugin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	testPluginBin = filepath.Join(dir, "testplugin")
	src, err := filepath.Abs("../../integration/testplugin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cmd := exec.Command("go", "build", "-o", testPluginBin, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the test plugin in %s: %v\n%s", src, err, out)
		return 1
	}
	defer func() {
		// runc removes each plugin's cgroup, not the parent.
		dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", testCgroupParent))
		for _, d := range dirs {
			_ = os.Remove(d)
		}
	}()
	return m.Run()
}

type testEnv struct {
	rt   *Runtime
	cfg  Config
	hook *logtest.Hook
	root string
}

// newTestRuntime returns a runtime whose directories are all under a
// temporary directory. The test's cleanup kills whatever a failed test left.
func newTestRuntime(t *testing.T) *testEnv {
	t.Helper()
	root := t.TempDir()
	logger, hook := logtest.NewNullLogger()
	logger.SetLevel(logrus.DebugLevel)
	cfg := Config{
		StateDir:     filepath.Join(root, "runc"),
		BundleRoot:   filepath.Join(root, "bundles"),
		SocketRoot:   filepath.Join(root, "s"),
		LogRoot:      filepath.Join(root, "logs"),
		CgroupParent: testCgroupParent,
		Logger:       logrus.NewEntry(logger),
	}
	env := &testEnv{cfg: cfg, hook: hook, root: root}
	env.rt = env.newRuntime(t)
	t.Cleanup(func() { sweep(t, cfg) })
	return env
}

func (e *testEnv) newRuntime(t *testing.T) *Runtime {
	t.Helper()
	rt, err := New(e.cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = rt.Close(context.Background()) })
	return rt
}

// sweep force-deletes every container in the test's state dir and unmounts
// everything under the test's root.
func sweep(t *testing.T, cfg Config) {
	t.Helper()
	out, _ := exec.Command("runc", "--root", cfg.StateDir, "list", "-q").Output()
	for id := range strings.FieldsSeq(string(out)) {
		t.Logf("sweeping leftover container %s", id)
		_ = exec.Command("runc", "--root", cfg.StateDir, "delete", "--force", id).Run()
	}
	_ = unmountAll(filepath.Dir(cfg.StateDir))
}

func newID(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// testPlugin returns a plugin running the test plugin in mode, with env
// added to its settings.
func (e *testEnv) testPlugin(t *testing.T, mode string, env ...string) Plugin {
	t.Helper()
	id := newID(t)
	dir := filepath.Join(e.root, "plugins", id)
	rootfs := filepath.Join(dir, "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(rootfs, "testplugin")
	if err := os.Link(testPluginBin, bin); err != nil {
		b, err := os.ReadFile(testPluginBin)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, bin, b, 0o755)
	}
	return Plugin{
		ID:                 id,
		Rootfs:             rootfs,
		PropagatedMountDir: filepath.Join(dir, "propagated-mount"),
		Config: plugin.Config{
			Entrypoint: []string{"/testplugin"},
			Interface:  plugin.Interface{Socket: "tp.sock", Types: []plugin.CapabilityID{{Capability: "volumedriver", Prefix: "docker", Version: "1.0"}}},
		},
		Settings: plugin.Settings{Env: append([]string{"MODE=" + mode}, env...)},
	}
}

func (e *testEnv) start(t *testing.T, p Plugin) *Task {
	t.Helper()
	task, err := e.rt.Start(context.Background(), p, 10*time.Second)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = e.rt.Stop(context.Background(), p.ID, 0) })
	return task
}

// call posts body to the plugin's endpoint the way dockerd does.
func call(t *testing.T, sock, endpoint string, out any) {
	t.Helper()
	client := http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}},
	}
	req, err := http.NewRequest(http.MethodPost, "http://plugin.moby.localhost"+endpoint, strings.NewReader("{}\n"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/vnd.docker.plugins.v1.2+json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", endpoint, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s: %s", endpoint, resp.Status, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("POST %s: %v: %s", endpoint, err, b)
	}
}

func capabilities(t *testing.T, sock string) string {
	t.Helper()
	var v struct{ Capabilities struct{ Scope string } }
	call(t, sock, "/VolumeDriver.Capabilities", &v)
	return v.Capabilities.Scope
}

// assertClean checks that nothing of plugin id is left: no mount, no socket
// directory, bundle, runc state or cgroup.
func (e *testEnv) assertClean(t *testing.T, id string) {
	t.Helper()
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(mi), "\n") {
		if strings.Contains(line, id) {
			t.Errorf("mount left behind: %s", line)
		}
	}
	for _, p := range []string{
		filepath.Join(e.cfg.SocketRoot, id), filepath.Join(e.cfg.BundleRoot, id), filepath.Join(e.cfg.StateDir, id),
		filepath.Join("/sys/fs/cgroup/memory", testCgroupParent, id), filepath.Join("/sys/fs/cgroup/pids", testCgroupParent, id),
	} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s left behind (%v)", p, err)
		}
	}
	out, err := exec.Command("runc", "--root", e.cfg.StateDir, "list", "-q").Output()
	if err != nil {
		t.Errorf("runc list: %v", err)
	}
	if strings.Contains(string(out), id) {
		t.Errorf("runc still lists %s", id)
	}
}

func waitDone(t *testing.T, task *Task, d time.Duration) {
	t.Helper()
	select {
	case <-task.Done():
		return
	default:
	}
	select {
	case <-task.Done():
	case <-time.After(d):
		t.Fatalf("plugin %s still running after %s", task.ID(), d)
	}
}

func TestStartVolumePlugin(t *testing.T) {
	e := newTestRuntime(t)
	p := e.testPlugin(t, "volume")
	begin := time.Now()
	task := e.start(t, p)
	t.Logf("started in %s", time.Since(begin))
	if task.ID() != p.ID || task.SocketPath() != filepath.Join(e.cfg.SocketRoot, p.ID, "tp.sock") || task.Adopted() {
		t.Errorf("task %s socket %s adopted %v", task.ID(), task.SocketPath(), task.Adopted())
	}
	if task.Pid() <= 0 {
		t.Errorf("pid %d", task.Pid())
	}
	if scope := capabilities(t, task.SocketPath()); scope != "local" {
		t.Errorf("scope %q", scope)
	}
	if _, known := task.ExitStatus(); known {
		t.Error("exit status known while running")
	}
	// The plugin runs in its cgroup.
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", task.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cg), testCgroupParent+"/"+p.ID) {
		t.Errorf("plugin cgroups:\n%s", cg)
	}
	// A second start is refused while it runs.
	if _, err := e.rt.Start(context.Background(), p, time.Second); !errdefs.IsAlreadyExists(err) {
		t.Errorf("second Start: %v, want already exists", err)
	}
	if err := e.rt.Stop(context.Background(), p.ID, 10*time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	e.assertClean(t, p.ID)
	// Stopping again is not an error, and it can start again.
	if err := e.rt.Stop(context.Background(), p.ID, time.Second); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	task = e.start(t, p)
	if scope := capabilities(t, task.SocketPath()); scope != "local" {
		t.Errorf("scope after restart %q", scope)
	}
}

type report struct {
	UID    int
	CapEff string
	Mounts string
	Env    []string
	Args   []string
	Cwd    string
}

func TestStartReportsConfig(t *testing.T) {
	e := newTestRuntime(t)
	p := e.testPlugin(t, "report", "GREETING=hello")
	data := filepath.Join(e.root, "data")
	writeFile(t, filepath.Join(data, "marker"), []byte("x"), 0o644)
	p.Config.Mounts = []plugin.Mount{{Name: "data", Source: &data, Destination: "/data", Type: "bind"}} // no options: fixed to rbind
	p.Config.Linux.Capabilities = []string{"CAP_SYS_ADMIN"}
	p.Config.PropagatedMount = "/mnt/prop"
	p.Config.WorkDir = "/etc"
	p.Config.User = plugin.User{UID: 1000, GID: 1000}
	p.Settings.Args = []string{"--one", "two"}
	task := e.start(t, p)

	var r report
	call(t, task.SocketPath(), "/Report", &r)
	capEff, err := strconv.ParseUint(r.CapEff, 16, 64)
	if err != nil {
		t.Fatalf("CapEff %q: %v", r.CapEff, err)
	}
	const capSysAdmin = 21
	if capEff&(1<<capSysAdmin) == 0 {
		t.Errorf("CapEff %s lacks CAP_SYS_ADMIN", r.CapEff)
	}
	const capSysModule = 16 // not granted
	if capEff&(1<<capSysModule) != 0 {
		t.Errorf("CapEff %s has CAP_SYS_MODULE", r.CapEff)
	}
	if r.UID != 0 {
		t.Errorf("uid %d, want 0", r.UID)
	}
	for _, want := range []string{" /data ", " /mnt/prop ", " /run/docker/plugins "} {
		if !strings.Contains(r.Mounts, want) {
			t.Errorf("mount %q missing in the plugin:\n%s", want, r.Mounts)
		}
	}
	for _, want := range []string{"GREETING=hello", "MODE=report", defaultPathEnv} {
		if !strings.Contains(strings.Join(r.Env, "\n"), want) {
			t.Errorf("env %v lacks %s", r.Env, want)
		}
	}
	if strings.Join(r.Args, " ") != "--one two" {
		t.Errorf("args %v", r.Args)
	}
	if r.Cwd != "/etc" {
		t.Errorf("cwd %q", r.Cwd)
	}
	// The propagated-mount directory is an rshared mount on the host.
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	var found bool
	for line := range strings.SplitSeq(string(mi), "\n") {
		if f := strings.Fields(line); len(f) > 6 && f[4] == p.PropagatedMountDir {
			found = true
			if !strings.Contains(line, "shared:") {
				t.Errorf("propagated mount is not shared: %s", line)
			}
		}
	}
	if !found {
		t.Errorf("%s is not a mount point", p.PropagatedMountDir)
	}
	if err := e.rt.Stop(context.Background(), p.ID, 10*time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	e.assertClean(t, p.ID)
}

func TestStartHostNamespaces(t *testing.T) {
	e := newTestRuntime(t)
	p := e.testPlugin(t, "volume")
	p.Config.Network.Type = "host"
	p.Config.PidHost, p.Config.IpcHost = true, true
	task := e.start(t, p)
	if scope := capabilities(t, task.SocketPath()); scope != "local" {
		t.Errorf("scope %q", scope)
	}
	self, _ := os.Readlink("/proc/self/ns/net")
	theirs, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", task.Pid()))
	if self == "" || self != theirs {
		t.Errorf("net namespace %q, want the host's %q", theirs, self)
	}
	if err := e.rt.Stop(context.Background(), p.ID, 10*time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	e.assertClean(t, p.ID)
}

func TestStartSlowPlugin(t *testing.T) {
	e := newTestRuntime(t)
	p := e.testPlugin(t, "slow", "DELAY=1")
	begin := time.Now()
	task, err := e.rt.Start(context.Background(), p, 5*time.Second)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer e.rt.Stop(context.Background(), p.ID, 0)
	if took := time.Since(begin); took < time.Second {
		t.Errorf("ready after %s, before the plugin listened", took)
	}
	if scope := capabilities(t, task.SocketPath()); scope != "local" {
		t.Errorf("scope %q", scope)
	}
}

func TestStartTimeout(t *testing.T) {
	e := newTestRuntime(t)
	p := e.testPlugin(t, "slow", "DELAY=10")
	begin := time.Now()
	_, err := e.rt.Start(context.Background(), p, time.Second)
	took := time.Since(begin)
	t.Logf("failed after %s: %v", took, err)
	if err == nil {
		t.Fatal("Start succeeded")
	}
	want := "plugin did not listen on " + filepath.Join(e.cfg.SocketRoot, p.ID, "tp.sock") + " within 1s"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q, want %q", err, want)
	}
	// About the timeout plus the cleanup; far from the plugin's 10 s.
	if took > 5*time.Second {
		t.Errorf("took %s", took)
	}
	e.assertClean(t, p.ID)
}

func TestStartCancelled(t *testing.T) {
	e := newTestRuntime(t)
	p := e.testPlugin(t, "slow", "DELAY=10")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := e.rt.Start(ctx, p, 0)
	if !errdefs.IsDeadlineExceeded(err) {
		t.Errorf("Start: %v, want deadline exceeded", err)
	}
	e.assertClean(t, p.ID)
}

func TestStartCrash(t *testing.T) {
	e := newTestRuntime(t)
	p := e.testPlugin(t, "crash")
	begin := time.Now()
	_, err := e.rt.Start(context.Background(), p, 30*time.Second)
	took := time.Since(begin)
	t.Logf("failed after %s: %v", took, err)
	if err == nil {
		t.Fatal("Start succeeded")
	}
	for _, want := range []string{"plugin exited with status 3 before its socket was ready", "testplugin: crash mode, exiting with status 3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if took > 2*time.Second {
		t.Errorf("took %s", took)
	}
	e.assertClean(t, p.ID)
}

func TestStartBadMount(t *testing.T) {
	e := newTestRuntime(t)
	p := e.testPlugin(t, "volume")
	p.Config.Mounts = []plugin.Mount{{Name: "data", Destination: "/data", Type: "bind"}}
	_, err := e.rt.Start(context.Background(), p, time.Second)
	if err == nil || !strings.Contains(err.Error(), "mount source is not specified") {
		t.Fatalf("Start: %v", err)
	}
	e.assertClean(t, p.ID)
}

func TestStopTerminates(t *testing.T) {
	e := newTestRuntime(t)
	p := e.testPlugin(t, "volume")
	p.Config.PropagatedMount = "/mnt/prop"
	task := e.start(t, p)
	begin := time.Now()
	if err := e.rt.Stop(context.Background(), p.ID, 10*time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("stopped in %s", time.Since(begin))
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("Stop took %s", took)
	}
	waitDone(t, task, 0)
	code, known := task.ExitStatus()
	t.Logf("exit status %d (known %v)", code, known)
	if !known {
		t.Error("exit status unknown")
	}
	e.assertClean(t, p.ID)
}

func TestStopEscalatesToKill(t *testing.T) {
	e := newTestRuntime(t)
	p := e.testPlugin(t, "volume")
	task := e.start(t, p)
	// A grace too short for any plugin to react: Stop must SIGKILL it.
	if err := e.rt.Stop(context.Background(), p.ID, time.Nanosecond); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	waitDone(t, task, 0)
	code, known := task.ExitStatus()
	if !known || (code != 128+int(syscall.SIGKILL) && code != 2) {
		t.Errorf("exit status %d (known %v)", code, known)
	}
	e.assertClean(t, p.ID)
	// Zero grace goes straight to SIGKILL.
	task = e.start(t, p)
	if err := e.rt.Stop(context.Background(), p.ID, 0); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if code, known := task.ExitStatus(); !known || code != 137 {
		t.Errorf("exit status %d (known %v), want 137", code, known)
	}
	e.assertClean(t, p.ID)
}

func TestDoneWhenKilledExternally(t *testing.T) {
	e := newTestRuntime(t)
	p := e.testPlugin(t, "volume")
	task := e.start(t, p)
	if err := syscall.Kill(task.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitDone(t, task, 5*time.Second)
	if code, known := task.ExitStatus(); !known || code != 137 {
		t.Errorf("exit status %d (known %v), want 137", code, known)
	}
	if err := e.rt.Stop(context.Background(), p.ID, time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	e.assertClean(t, p.ID)
}

func TestRestoreAdoptsRunningPlugin(t *testing.T) {
	e := newTestRuntime(t)
	p := e.testPlugin(t, "volume")
	p.Config.PropagatedMount = "/mnt/prop"
	first, err := e.rt.Start(context.Background(), p, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.rt.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := e.rt.Start(context.Background(), e.testPlugin(t, "volume"), time.Second); !errdefs.IsUnavailable(err) {
		t.Errorf("Start after Close: %v", err)
	}
	// The plugin outlives the runtime.
	if scope := capabilities(t, first.SocketPath()); scope != "local" {
		t.Errorf("scope after Close %q", scope)
	}

	rt := e.newRuntime(t)
	tasks, err := rt.Restore(context.Background())
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	task := tasks[p.ID]
	if len(tasks) != 1 || task == nil {
		t.Fatalf("Restore found %v", tasks)
	}
	if !task.Adopted() || task.Pid() != first.Pid() || task.SocketPath() != first.SocketPath() {
		t.Errorf("adopted task: adopted %v pid %d (was %d) socket %s", task.Adopted(), task.Pid(), first.Pid(), task.SocketPath())
	}
	if scope := capabilities(t, task.SocketPath()); scope != "local" {
		t.Errorf("scope after Restore %q", scope)
	}
	// Restoring again returns the same task.
	if again, err := rt.Restore(context.Background()); err != nil || again[p.ID] != task {
		t.Errorf("second Restore: %v %v", again, err)
	}
	if err := rt.Stop(context.Background(), p.ID, 10*time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	waitDone(t, task, 0)
	if _, known := task.ExitStatus(); known {
		t.Error("exit status of an adopted plugin is known")
	}
	e.assertClean(t, p.ID)
}

func TestRestoreDoneOnExit(t *testing.T) {
	e := newTestRuntime(t)
	p := e.testPlugin(t, "volume")
	first := e.start(t, p)
	if err := e.rt.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	rt := e.newRuntime(t)
	tasks, err := rt.Restore(context.Background())
	if err != nil || tasks[p.ID] == nil {
		t.Fatalf("Restore: %v %v", tasks, err)
	}
	if err := syscall.Kill(first.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitDone(t, tasks[p.ID], 5*time.Second)
	if err := rt.Stop(context.Background(), p.ID, time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	e.assertClean(t, p.ID)
}

func TestRestoreCleansExited(t *testing.T) {
	e := newTestRuntime(t)
	// A plugin that exited while pluginsd was away leaves its bundle (and
	// socket directory and mounts); runc run deleted its container.
	p := e.testPlugin(t, "volume")
	p.Config.PropagatedMount = "/mnt/prop"
	task := e.start(t, p)
	if err := e.rt.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(task.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.rt.hasState(p.ID) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	rt := e.newRuntime(t)
	tasks, err := rt.Restore(context.Background())
	if err != nil || len(tasks) != 0 {
		t.Fatalf("Restore: %v %v", tasks, err)
	}
	e.assertClean(t, p.ID)
}

func TestLogRelay(t *testing.T) {
	e := newTestRuntime(t)
	p := e.testPlugin(t, "volume")
	e.start(t, p)
	want := "testplugin: volume mode listening on /run/docker/plugins/tp.sock"
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, entry := range e.hook.AllEntries() {
			if entry.Data["plugin"] == p.ID && strings.Contains(entry.Message, want) {
				return
			}
		}
		if time.Now().After(deadline) {
			var got bytes.Buffer
			for _, entry := range e.hook.AllEntries() {
				fmt.Fprintf(&got, "%v %s\n", entry.Data, entry.Message)
			}
			t.Fatalf("no log entry %q with plugin=%s; got:\n%s", want, p.ID, got.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRuncDeathKeepsWatching(t *testing.T) {
	e := newTestRuntime(t)
	p := e.testPlugin(t, "volume")
	task := e.start(t, p)
	// runc dies; the plugin does not, and Done must not say it did.
	if err := task.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-task.Done():
		t.Fatal("Done closed when runc died, while the plugin runs on")
	case <-time.After(500 * time.Millisecond):
	}
	if scope := capabilities(t, task.SocketPath()); scope != "local" {
		t.Errorf("scope %q", scope)
	}
	if err := e.rt.Stop(context.Background(), p.ID, 10*time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	waitDone(t, task, 0)
	if _, known := task.ExitStatus(); known {
		t.Error("exit status known without runc")
	}
	e.assertClean(t, p.ID)
}

func TestStopUntrackedPlugin(t *testing.T) {
	e := newTestRuntime(t)
	p := e.testPlugin(t, "volume")
	task, err := e.rt.Start(context.Background(), p, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.rt.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A new runtime that did not Restore still stops it.
	rt := e.newRuntime(t)
	if err := rt.Stop(context.Background(), p.ID, 10*time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := syscall.Kill(task.Pid(), 0); err == nil {
		t.Errorf("plugin pid %d still alive", task.Pid())
	}
	e.assertClean(t, p.ID)
}
