// Package integration holds pluginsd's black-box tests: the real server on
// temporary directories, driven by the stock docker CLI and both Go SDK
// clients. It is a module of its own so that test-only dependencies (the SDK
// clients, distribution's registry) never reach bin/pluginsd's go.mod.
package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/pluginsd/pluginsd/distribution"
	"github.com/pluginsd/pluginsd/handlers"
	"github.com/pluginsd/pluginsd/manager"
	"github.com/pluginsd/pluginsd/manager/runtime"
	"github.com/pluginsd/pluginsd/server"
)

// Built once by TestMain.
var (
	testpluginBin string // the test plugin binary
	pluginsdBin   string // bin/pluginsd, for tests of the real process
	dockerBin     string // the stock docker CLI
)

func TestMain(m *testing.M) {
	logrus.SetLevel(logrus.WarnLevel)
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration setup:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setup(m *testing.M) (int, error) {
	tmp, err := os.MkdirTemp("", "pluginsd-integration-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	testpluginBin = filepath.Join(tmp, "testplugin")
	if out, err := goBuild(testpluginBin, "./testplugin", "CGO_ENABLED=0"); err != nil {
		return 0, fmt.Errorf("build testplugin: %v\n%s", err, out)
	}
	pluginsdBin = filepath.Join(tmp, "pluginsd")
	if out, err := goBuild(pluginsdBin, "github.com/pluginsd/pluginsd/cmd/pluginsd"); err != nil {
		return 0, fmt.Errorf("build pluginsd: %v\n%s", err, out)
	}
	if dockerBin, err = exec.LookPath("docker"); err != nil {
		return 0, fmt.Errorf("the stock docker CLI is required on PATH: %v", err)
	}
	return m.Run(), nil
}

func goBuild(out, pkg string, env ...string) ([]byte, error) {
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Env = append(os.Environ(), env...)
	return cmd.CombinedOutput()
}

// daemon is an in-process pluginsd: the real manager and server on a
// temporary data root, listening on a unix socket and on loopback TCP.
type daemon struct {
	t       testing.TB
	root    string
	sock    string // unix socket path
	tcpAddr string // 127.0.0.1:port
	mgr     *manager.Manager
	rt      *runtime.Runtime
	sockets string // the plugin socket root (short: unix socket paths are limited to 107 bytes)
	srv     *server.Server
	wg      sync.WaitGroup
	stopped bool
	// liveRestore is passed to the manager (tests of restarts set it).
	liveRestore bool
	// events is the bus the manager publishes to and GET /events reads.
	events *manager.EventBus
}

// startDaemon starts pluginsd on root (a fresh temp dir when empty) and
// stops it at the end of the test.
func startDaemon(t testing.TB, root string) *daemon {
	t.Helper()
	return startDaemonWith(t, root, false)
}

// startDaemonWith is startDaemon with the live-restore setting given.
func startDaemonWith(t testing.TB, root string, liveRestore bool) *daemon {
	t.Helper()
	return startDaemonOpts(t, root, daemonOptions{liveRestore: liveRestore})
}

// daemonOptions are what tests of one feature add to the standard
// in-process daemon; the zero value is startDaemon's.
type daemonOptions struct {
	liveRestore bool
	// sockets is the plugin socket root (default: <root>/sockets, or a
	// short link to it).
	sockets string
	// manager adjusts the manager's config (authz protection, discovery).
	manager func(*manager.Config)
	// server adjusts the server's config once the manager exists (the authz
	// chain, an upstream).
	server func(*manager.Manager, *server.Config)
	// tcp, when set, serves TCP with it (TLS); noTCP serves only the socket.
	tcp   *tls.Config
	noTCP bool
}

// startDaemonOpts starts the in-process daemon with o.
func startDaemonOpts(t testing.TB, root string, o daemonOptions) *daemon {
	t.Helper()
	if root == "" {
		root = t.TempDir()
	}
	d := &daemon{t: t, root: root, sock: filepath.Join(root, "pluginsd.sock"), liveRestore: o.liveRestore}
	d.sockets = o.sockets
	if d.sockets == "" {
		d.sockets = shortSocketRoot(t, filepath.Join(root, "sockets"))
	}
	rt, err := runtime.New(runtime.Config{
		StateDir:     filepath.Join(root, "exec", "runc"),
		BundleRoot:   filepath.Join(root, "exec", "bundles"),
		SocketRoot:   d.sockets,
		LogRoot:      filepath.Join(root, "data", "logs"),
		CgroupParent: "/pluginsd-test",
	})
	if err != nil {
		t.Fatal(err)
	}
	d.rt = rt
	reg, err := distribution.New(distribution.Options{CertsDir: filepath.Join(root, "certs.d")})
	if err != nil {
		t.Fatal(err)
	}
	d.events = manager.NewEventBus(manager.EventBusConfig{})
	mcfg := manager.Config{DataRoot: filepath.Join(root, "data"), Version: "test", Runtime: rt, Registry: reg, LiveRestore: d.liveRestore, Events: d.events}
	if o.manager != nil {
		o.manager(&mcfg)
	}
	mgr, err := manager.New(mcfg)
	if err != nil {
		t.Fatal(err)
	}
	d.mgr = mgr
	scfg := server.Config{Info: handlers.Info{Version: "test"}, Events: d.events}
	if o.server != nil {
		o.server(mgr, &scfg)
	}
	d.srv = server.New(scfg, mgr)
	ls := []net.Listener{}
	ul, err := server.Listen(t.Context(), "unix://"+d.sock, server.ListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ls = append(ls, ul)
	if !o.noTCP {
		tl, err := server.Listen(t.Context(), "tcp://127.0.0.1:0", server.ListenOptions{TLS: o.tcp})
		if err != nil {
			t.Fatal(err)
		}
		d.tcpAddr = tl.Addr().String()
		ls = append(ls, tl)
	}
	for _, l := range ls {
		d.wg.Go(func() {
			if err := d.srv.Serve(l); err != nil {
				t.Errorf("serve: %v", err)
			}
		})
	}
	t.Cleanup(d.stop)
	return d
}

// shortSocketRoot returns dir, or a short symlink to it: plugin sockets
// live at <dir>/<64-hex id>/tp.sock, and unix socket paths are limited to
// 107 bytes.
func shortSocketRoot(t testing.TB, dir string) string {
	t.Helper()
	if len(dir) <= 30 {
		return dir
	}
	link, err := os.MkdirTemp("", "pd")
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(link)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(link) })
	return link
}

// stop shuts the daemon down gracefully (idempotent).
func (d *daemon) stop() {
	if d.stopped {
		return
	}
	d.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d.events.Close() // event streams would hold Shutdown up
	if err := d.srv.Shutdown(ctx); err != nil {
		d.t.Errorf("shutdown: %v", err)
	}
	d.wg.Wait()
	if err := d.mgr.Close(ctx); err != nil {
		d.t.Errorf("manager close: %v", err)
	}
	if err := d.rt.Close(ctx); err != nil {
		d.t.Errorf("runtime close: %v", err)
	}
}

// host is the DOCKER_HOST of the daemon.
func (d *daemon) host() string { return "unix://" + d.sock }

// docker runs the stock CLI against the daemon and returns its combined
// output, trimmed.
func (d *daemon) docker(args ...string) (string, error) {
	return runDocker(d.t, d.host(), args...)
}

// mustDocker is docker that fails the test on error.
func (d *daemon) mustDocker(args ...string) string {
	d.t.Helper()
	out, err := d.docker(args...)
	if err != nil {
		d.t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func runDocker(t testing.TB, host string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, dockerBin, args...)
	cfgDir := os.Getenv("DOCKER_CONFIG") // a test's credentials
	if cfgDir == "" {
		cfgDir = filepath.Join(os.TempDir(), "pluginsd-test-docker-config")
	}
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+host, "DOCKER_CONFIG="+cfgDir, "DOCKER_CLI_HINTS=false")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// httpClient talks HTTP to the daemon's unix socket.
func (d *daemon) httpClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", d.sock)
		},
	}}
}

// pluginDir lays out a plugin build context (config.json + rootfs/) with the
// test plugin binary at /testplugin and a unique /VARIANT file, so that no
// two calls share layer content unless same is given.
func pluginDir(t testing.TB, config string) string {
	t.Helper()
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	for _, d := range []string{"run/docker/plugins", "data", "tmp", "etc"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin, err := os.ReadFile(testpluginBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "testplugin"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "VARIANT"), []byte(t.Name()+" "+time.Now().String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// volConfig is a volume plugin config like the conformance suite's "vol".
func volConfig(source string) string {
	return `{
  "description": "test volume plugin",
  "documentation": "https://example.invalid/testplugin",
  "entrypoint": ["/testplugin"],
  "env": [{"name": "MODE", "value": "volume"},
          {"name": "DEBUG", "description": "debug level", "settable": ["value"], "value": "0"}],
  "interface": {"socket": "tp.sock", "types": ["docker.volumedriver/1.0"]},
  "network": {"type": "none"},
  "mounts": [{"name": "data", "description": "volume store", "source": "` + source + `", "destination": "/data",
              "type": "bind", "options": ["rbind"], "settable": ["source"]}],
  "linux": {"capabilities": ["CAP_SYS_ADMIN"]}
}`
}

// argsConfig has args, a device, ipc and pid host, like the conformance "args".
const argsConfig = `{
  "description": "test plugin with args and a device",
  "entrypoint": ["/testplugin"],
  "env": [{"name": "MODE", "value": "volume"}],
  "args": {"name": "flags", "description": "extra flags", "settable": ["value"], "value": ["--one", "--two"]},
  "interface": {"socket": "tp.sock", "types": ["docker.volumedriver/1.0"]},
  "network": {"type": "none"},
  "mounts": [{"name": "data", "source": "/tmp", "destination": "/data", "type": "bind", "options": ["rbind"]}],
  "linux": {"devices": [{"name": "null", "path": "/dev/null", "settable": ["path"]}]},
  "ipchost": true,
  "pidhost": true
}`
