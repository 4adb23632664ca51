package integration

// pluginsd in front of another Engine API (--upstream) with legacy
// discovery (--legacy-discovery): the stock CLI and a Go SDK client pinned
// to API 1.41, as dockerd integration suites use it, through one
// DOCKER_HOST, against a recording fake engine written for these tests and,
// where the machine can run it, against Podman's Docker-compatible service.

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	dockerclient "github.com/docker/docker/client"

	"github.com/pluginsd/pluginsd/manager"
	"github.com/pluginsd/pluginsd/manager/legacy"
	"github.com/pluginsd/pluginsd/server"
	"github.com/pluginsd/pluginsd/server/upstream"
)

// upFront is an in-process pluginsd in front of the engine at engineSock,
// publishing enabled plugins in legacyDir. It is startDaemon's daemon with
// the upstream and the discovery added.
func upFront(t *testing.T, engineSock, legacyDir string) *daemon {
	t.Helper()
	sockets, err := os.MkdirTemp("", "ps") // short: <sockets>/<id>/tp.sock must fit in 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockets) })
	return upFrontAt(t, t.TempDir(), sockets, engineSock, legacyDir, false)
}

// upFrontAt is upFront on a given root and plugin socket root (to restart
// on them), with live-restore as given.
func upFrontAt(t *testing.T, root, sockets, engineSock, legacyDir string, liveRestore bool) *daemon {
	t.Helper()
	links, err := legacy.New(legacyDir, sockets)
	if err != nil {
		t.Fatal(err)
	}
	target, err := upstream.Parse("unix://" + engineSock)
	if err != nil {
		t.Fatal(err)
	}
	proxy := upstream.New(target)
	t.Cleanup(proxy.Close)
	return startDaemonOpts(t, root, daemonOptions{
		liveRestore: liveRestore,
		sockets:     sockets,
		noTCP:       true,
		manager:     func(c *manager.Config) { c.Discovery = links },
		server:      func(_ *manager.Manager, c *server.Config) { c.Upstream = proxy },
	})
}

// fakeEngine is an Engine API that is not pluginsd: it serves API 1.41
// (what Podman's compat service announces), records every request as
// "METHOD URI", and uses volume plugins the way an engine without managed
// plugins does: it looks up <legacyDir>/<driver>.sock (dockerd's legacy
// discovery path), activates the plugin (/Plugin.Activate, which must
// implement VolumeDriver) and calls /VolumeDriver.Create and .Remove.
type fakeEngine struct {
	sock      string
	legacyDir string
	srv       *httptest.Server
	quit      chan struct{} // ends streaming answers

	mu      sync.Mutex
	seen    []string
	volumes map[string]string // name → driver
}

func startFakeEngine(t *testing.T, legacyDir string) *fakeEngine {
	t.Helper()
	dir, err := os.MkdirTemp("", "fe")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e := &fakeEngine{sock: filepath.Join(dir, "engine.sock"), legacyDir: legacyDir, quit: make(chan struct{}), volumes: map[string]string{}}
	l, err := net.Listen("unix", e.sock)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(e.serve))
	e.srv.Listener.Close()
	e.srv.Listener = l
	e.srv.Start()
	t.Cleanup(e.stop)
	return e
}

func (e *fakeEngine) stop() {
	select {
	case <-e.quit:
	default:
		close(e.quit)
		e.srv.Close()
	}
}

// requests returns the requests recorded since the last call.
func (e *fakeEngine) requests() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.seen
	e.seen = nil
	return s
}

func (e *fakeEngine) reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (e *fakeEngine) serve(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	e.seen = append(e.seen, r.Method+" "+r.RequestURI)
	e.mu.Unlock()
	h := w.Header()
	h.Set("Api-Version", "1.41")
	h.Set("Server", "FakeEngine/1.0 (linux)")
	h.Set("Ostype", "linux")
	path := r.URL.Path
	if strings.HasPrefix(path, "/v1.") {
		if i := strings.IndexByte(path[1:], '/'); i > 0 {
			path = path[i+1:]
		}
	}
	get := r.Method == http.MethodGet
	switch {
	case path == "/_ping" && (get || r.Method == http.MethodHead):
		h.Set("Docker-Experimental", "false")
		h.Set("Swarm", "inactive")
		h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
		h.Set("Content-Type", "text/plain; charset=utf-8")
		if get {
			_, _ = io.WriteString(w, "OK")
		}
	case path == "/version" && get:
		details := map[string]string{"ApiVersion": "1.41", "MinAPIVersion": "1.24", "Os": "linux", "Arch": "amd64", "GitCommit": "fake", "GoVersion": "go1.0"}
		e.reply(w, 200, map[string]any{
			"Platform":   map[string]string{"Name": "FakeEngine"},
			"Components": []any{map[string]any{"Name": "Engine", "Version": "1.0-fake", "Details": details}},
			"Version":    "1.0-fake", "ApiVersion": "1.41", "MinAPIVersion": "1.24", "GitCommit": "fake",
			"GoVersion": "go1.0", "Os": "linux", "Arch": "amd64",
		})
	case path == "/info" && get:
		e.reply(w, 200, map[string]any{
			"ID": "FAKE:ENGINE", "Containers": 1, "ContainersRunning": 1, "Images": 1, "Driver": "fake",
			"Plugins":       map[string]any{"Volume": []string{"local"}, "Network": []string{"bridge", "host", "null"}, "Authorization": nil, "Log": []string{"json-file"}},
			"ServerVersion": "1.0-fake", "OSType": "linux", "Architecture": "x86_64", "Name": "fake-engine",
		})
	case path == "/containers/json" && get:
		e.reply(w, 200, []any{map[string]any{"Id": "c0ffee", "Names": []string{"/one"}, "Image": "fake/img", "State": "running", "Status": "Up 1 minute", "Command": "sleep"}})
	case path == "/images/json" && get:
		e.reply(w, 200, []any{map[string]any{"Id": "sha256:0123", "RepoTags": []string{"fake/img:latest"}, "Size": 1, "Containers": -1}})
	case path == "/networks" && get:
		e.reply(w, 200, []any{map[string]any{"Name": "bridge", "Id": "n1", "Driver": "bridge", "Scope": "local"}})
	case path == "/volumes" && get:
		e.mu.Lock()
		vols := []any{}
		for _, name := range slices.Sorted(maps.Keys(e.volumes)) {
			vols = append(vols, map[string]string{"Name": name, "Driver": e.volumes[name], "Scope": "local"})
		}
		e.mu.Unlock()
		e.reply(w, 200, map[string]any{"Volumes": vols, "Warnings": []string{}})
	case path == "/volumes/create" && r.Method == http.MethodPost:
		var req struct{ Name, Driver string }
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req.Driver != "" && req.Driver != "local" {
			if err := e.pluginCall(req.Driver, "VolumeDriver.Create", map[string]any{"Name": req.Name, "Opts": map[string]string{}}); err != nil {
				e.reply(w, 404, map[string]string{"message": err.Error()})
				return
			}
		}
		e.mu.Lock()
		e.volumes[req.Name] = cmp.Or(req.Driver, "local")
		e.mu.Unlock()
		e.reply(w, 201, map[string]string{"Name": req.Name, "Driver": cmp.Or(req.Driver, "local"), "Scope": "local"})
	case strings.HasPrefix(path, "/volumes/") && r.Method == http.MethodDelete:
		name := strings.TrimPrefix(path, "/volumes/")
		e.mu.Lock()
		driver, ok := e.volumes[name]
		delete(e.volumes, name)
		e.mu.Unlock()
		if !ok {
			e.reply(w, 404, map[string]string{"message": "no such volume"})
			return
		}
		if driver != "local" {
			if err := e.pluginCall(driver, "VolumeDriver.Remove", map[string]any{"Name": name}); err != nil {
				e.reply(w, 500, map[string]string{"message": err.Error()})
				return
			}
		}
		w.WriteHeader(http.StatusNoContent)
	case path == "/events" && get:
		// One event now, then the stream stays open, as dockerd's does.
		h.Set("Content-Type", "application/json")
		w.WriteHeader(200)
		_ = json.NewEncoder(w).Encode(map[string]any{"Type": "container", "Action": "start", "Actor": map[string]any{"ID": "c0ffee"}, "scope": "local", "time": time.Now().Unix()})
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-e.quit:
		}
	case strings.HasSuffix(path, "/logs") && get:
		// Lines one by one, the next after the client read the previous
		// (a stream, not one answer).
		h.Set("Content-Type", "text/plain")
		w.WriteHeader(200)
		for i := range 3 {
			fmt.Fprintf(w, "line %d\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-time.After(100 * time.Millisecond):
			case <-e.quit:
				return
			}
		}
	case strings.HasSuffix(path, "/attach") && r.Method == http.MethodPost:
		e.attach(w, r)
	default:
		e.reply(w, 404, map[string]string{"message": "page not found"})
	}
}

// attach takes the connection over as dockerd does and echoes stdin in
// upper case until the client half-closes.
func (e *fakeEngine) attach(w http.ResponseWriter, r *http.Request) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	if r.Header.Get("Upgrade") != "" {
		fmt.Fprint(conn, "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
	} else {
		fmt.Fprint(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n")
	}
	in, _ := io.ReadAll(brw)
	_, _ = conn.Write(bytes.ToUpper(in))
}

// pluginCall finds the legacy plugin name where dockerd's legacy discovery
// would, activates it and calls method.
func (e *fakeEngine) pluginCall(name, method string, args any) error {
	sock := filepath.Join(e.legacyDir, name+".sock")
	if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("error looking up volume plugin %s: plugin %q not found", name, name)
	}
	var act struct{ Implements []string }
	if err := pluginCallErr(sock, "Plugin.Activate", nil, &act); err != nil {
		return err
	}
	if !slices.Contains(act.Implements, "VolumeDriver") {
		return fmt.Errorf("plugin %s does not implement VolumeDriver: %v", name, act.Implements)
	}
	var res struct{ Err string }
	if err := pluginCallErr(sock, method, args, &res); err != nil {
		return err
	}
	if res.Err != "" {
		return fmt.Errorf("%s: %s", method, res.Err)
	}
	return nil
}

// pluginCallErr is one plugin RPC on a unix socket, as engines send it.
func pluginCallErr(sock, method string, args, out any) error {
	var body io.Reader = http.NoBody
	if args != nil {
		b, err := json.Marshal(args)
		if err != nil {
			return err
		}
		body = bytes.NewReader(append(b, '\n'))
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	req, err := http.NewRequest(http.MethodPost, "http://plugin.moby.localhost/"+method, body)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/vnd.docker.plugins.v1.2+json")
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		return fmt.Errorf("%s: %d %s", method, res.StatusCode, b)
	}
	return json.NewDecoder(res.Body).Decode(out)
}

// upLegacyDir is a fresh legacy plugin directory (short, like the socket
// root it links into).
func upLegacyDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "lg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// TestUpstreamFakeEngineCLI: the stock CLI through one DOCKER_HOST:
// `docker version`, `docker ps` and the volume commands reach the engine,
// `docker plugin ...` stays with pluginsd, and a volume plugin enabled
// through pluginsd is used by the engine through its legacy socket.
func TestUpstreamFakeEngineCLI(t *testing.T) {
	legacyDir := upLegacyDir(t)
	e := startFakeEngine(t, legacyDir)
	d := upFront(t, e.sock, legacyDir)

	out := d.mustDocker("version")
	for _, want := range []string{"API version:       1.41", "FakeEngine", "1.0-fake", "pluginsd"} {
		if !strings.Contains(out, want) {
			t.Errorf("docker version lacks %q:\n%s", want, out)
		}
	}
	if out := d.mustDocker("ps", "--format", "{{.ID}} {{.Names}}"); out != "c0ffee one" {
		t.Errorf("docker ps: %q", out)
	}
	if out := d.mustDocker("plugin", "ls", "--format", "{{.Name}}"); out != "" {
		t.Errorf("docker plugin ls: %q", out)
	}
	seen := e.requests()
	for _, r := range seen {
		if strings.Contains(r, "/plugins") {
			t.Errorf("a plugin request reached the engine: %s", r)
		}
	}
	// The CLI negotiated the engine's version, and the engine got the URI
	// as the CLI sent it.
	if !slices.Contains(seen, "GET /v1.41/containers/json") || !slices.Contains(seen, "HEAD /_ping") || !slices.Contains(seen, "GET /v1.41/version") {
		t.Errorf("engine requests: %q", seen)
	}

	// A volume plugin, installed and enabled through pluginsd, used by the
	// engine. Its name has a namespace: the link is <dir>/acme/vol.sock.
	data := t.TempDir()
	d.mustDocker("plugin", "create", "acme/vol", pluginDir(t, volConfig(data)))
	if _, err := d.docker("volume", "create", "-d", "acme/vol", "before"); err == nil {
		t.Error("the engine used a plugin that is not enabled")
	}
	d.mustDocker("plugin", "enable", "acme/vol")
	link := filepath.Join(legacyDir, "acme", "vol.sock")
	if fi, err := os.Stat(link); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("legacy link %s: %v", link, err)
	}
	if out := d.mustDocker("volume", "create", "-d", "acme/vol", "v1"); out != "v1" {
		t.Errorf("volume create: %q", out)
	}
	if _, err := os.Stat(filepath.Join(data, "v1")); err != nil {
		t.Errorf("the plugin did not create the volume: %v", err)
	}
	if out := d.mustDocker("volume", "ls", "--format", "{{.Driver}} {{.Name}}"); out != "acme/vol v1" {
		t.Errorf("volume ls: %q", out)
	}
	d.mustDocker("volume", "rm", "v1")
	if _, err := os.Stat(filepath.Join(data, "v1")); !os.IsNotExist(err) {
		t.Errorf("the plugin did not remove the volume: %v", err)
	}
	if out := d.mustDocker("plugin", "ls", "--format", "{{.Name}} {{.Enabled}}"); out != "acme/vol:latest true" {
		t.Errorf("plugin ls: %q", out)
	}

	// Disabled: the link is gone and the engine no longer finds the plugin.
	d.mustDocker("plugin", "disable", "acme/vol")
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Errorf("legacy link left after disable: %v", err)
	}
	out, err := d.docker("volume", "create", "-d", "acme/vol", "v2")
	if err == nil || !strings.Contains(out, `plugin "acme/vol" not found`) {
		t.Errorf("volume create with the plugin disabled: %v %q", err, out)
	}
	// Enabled again, then removed by force: the link follows.
	d.mustDocker("plugin", "enable", "acme/vol")
	if _, err := os.Stat(link); err != nil {
		t.Errorf("legacy link not back after enable: %v", err)
	}
	d.mustDocker("plugin", "rm", "-f", "acme/vol")
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Errorf("legacy link left after remove: %v", err)
	}
	if entries, _ := os.ReadDir(legacyDir); len(entries) != 0 {
		t.Errorf("legacy directory not empty: %v", entries)
	}
}

// TestUpstreamPinnedSDK: what dockerd integration suites do around their
// plugin tests, with the SDK client pinned to API 1.41 and no negotiation,
// works unchanged against pluginsd in front of an engine: lists of
// containers, images, volumes and networks and /info come from the engine,
// the plugin calls from pluginsd.
func TestUpstreamPinnedSDK(t *testing.T) {
	legacyDir := upLegacyDir(t)
	e := startFakeEngine(t, legacyDir)
	d := upFront(t, e.sock, legacyDir)
	runPinnedSuite(t, d, "FAKE:ENGINE")
}

// runPinnedSuite runs the dockerd-suite calls against d; engineID is the
// engine's /info ID (any non-empty one if "").
func runPinnedSuite(t *testing.T, d *daemon, engineID string) {
	t.Helper()
	ctx := t.Context()
	c, err := dockerclient.NewClientWithOpts(dockerclient.WithHost(d.host()), dockerclient.WithVersion("1.41"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d.mustDocker("plugin", "create", "sdkvol", pluginDir(t, volConfig(t.TempDir())))
	d.mustDocker("plugin", "enable", "sdkvol")

	if _, err := c.ContainerList(ctx, container.ListOptions{All: true}); err != nil {
		t.Errorf("ContainerList: %v", err)
	}
	if _, err := c.ImageList(ctx, image.ListOptions{}); err != nil {
		t.Errorf("ImageList: %v", err)
	}
	if _, err := c.VolumeList(ctx, volume.ListOptions{}); err != nil {
		t.Errorf("VolumeList: %v", err)
	}
	nets, err := c.NetworkList(ctx, network.ListOptions{})
	if err != nil || len(nets) == 0 {
		t.Errorf("NetworkList: %v %v", nets, err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	if (engineID != "" && info.ID != engineID) || info.ID == "" || !slices.Contains(info.Plugins.Volume, "sdkvol:latest") {
		t.Errorf("Info: ID %q, volume plugins %v", info.ID, info.Plugins.Volume)
	}
	v, err := c.ServerVersion(ctx)
	if err != nil || v.APIVersion != "1.41" {
		t.Errorf("ServerVersion: %+v %v", v, err)
	}
	plugins, err := c.PluginList(ctx, filters.NewArgs())
	if err != nil || len(plugins) != 1 || plugins[0].Name != "sdkvol:latest" || !plugins[0].Enabled {
		t.Errorf("PluginList: %v %v", plugins, err)
	}
	p, raw, err := c.PluginInspectWithRaw(ctx, "sdkvol")
	if err != nil || p.Name != "sdkvol:latest" || len(raw) == 0 {
		t.Errorf("PluginInspectWithRaw: %v %v", p, err)
	}
	// And around the plugin test again, as suites do in their cleanup.
	if _, err := c.ContainerList(ctx, container.ListOptions{All: true}); err != nil {
		t.Errorf("ContainerList after: %v", err)
	}
	if _, err := c.VolumeList(ctx, volume.ListOptions{}); err != nil {
		t.Errorf("VolumeList after: %v", err)
	}
}

// TestUpstreamStreamsAndHijack: streams reach the client as the engine
// writes them, attach takes the connection over both ways (with Upgrade, as
// the SDK sends it), and event streams are the engine's unless only plugin
// events are asked for, which pluginsd serves.
func TestUpstreamStreamsAndHijack(t *testing.T) {
	legacyDir := upLegacyDir(t)
	e := startFakeEngine(t, legacyDir)
	d := upFront(t, e.sock, legacyDir)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	c, err := dockerclient.NewClientWithOpts(dockerclient.WithHost(d.host()), dockerclient.WithVersion("1.41"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// attach
	hr, err := c.ContainerAttach(ctx, "c0ffee", container.AttachOptions{Stream: true, Stdin: true, Stdout: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(hr.Conn, "hello engine"); err != nil {
		t.Fatal(err)
	}
	if err := hr.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(hr.Reader)
	hr.Close()
	if err != nil || string(out) != "HELLO ENGINE" {
		t.Errorf("attach output %q, %v", out, err)
	}

	// logs --follow: the first line arrives before the stream ends.
	rc, err := c.ContainerLogs(ctx, "c0ffee", container.LogsOptions{ShowStdout: true, Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(rc)
	start := time.Now()
	first, err := br.ReadString('\n')
	if err != nil || first != "line 0\n" || time.Since(start) > 150*time.Millisecond {
		t.Errorf("first log line %q after %v: %v", first, time.Since(start), err)
	}
	rest, _ := io.ReadAll(br)
	rc.Close()
	if string(rest) != "line 1\nline 2\n" {
		t.Errorf("rest of the logs %q", rest)
	}

	// Events: the engine's stream...
	ectx, ecancel := context.WithCancel(ctx)
	msgs, errs := c.Events(ectx, events.ListOptions{Filters: filters.NewArgs(filters.Arg("type", "container"))})
	select {
	case m := <-msgs:
		if m.Type != "container" || m.Action != "start" {
			t.Errorf("engine event %+v", m)
		}
	case err := <-errs:
		t.Fatal(err)
	case <-ctx.Done():
		t.Fatal("no engine event")
	}
	ecancel()
	// ...and pluginsd's, for plugin events only.
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	msgs, errs = c.Events(pctx, events.ListOptions{Filters: filters.NewArgs(filters.Arg("type", "plugin"))})
	time.Sleep(200 * time.Millisecond) // subscribed
	d.mustDocker("plugin", "create", "evplug", pluginDir(t, volConfig("/tmp")))
	select {
	case m := <-msgs:
		if m.Type != "plugin" || m.Action != "create" || m.Actor.Attributes["name"] != "evplug:latest" {
			t.Errorf("plugin event %+v", m)
		}
	case err := <-errs:
		t.Fatal(err)
	case <-ctx.Done():
		t.Fatal("no plugin event")
	}
	for _, r := range e.requests() {
		if strings.Contains(r, "/events") && strings.Contains(r, "plugin") {
			t.Errorf("plugin events were asked of the engine: %s", r)
		}
	}
	pcancel()

	// ...and without filters, one stream with both: the engine's event,
	// then a plugin event.
	actx, acancel := context.WithCancel(ctx)
	defer acancel()
	msgs, errs = c.Events(actx, events.ListOptions{})
	for _, want := range []string{"container start", "plugin remove"} {
		if want == "plugin remove" {
			d.mustDocker("plugin", "rm", "evplug")
		}
		select {
		case m := <-msgs:
			if got := string(m.Type) + " " + string(m.Action); got != want {
				t.Errorf("merged stream: %q (%+v), want %q", got, m, want)
			}
		case err := <-errs:
			t.Fatal(err)
		case <-ctx.Done():
			t.Fatalf("merged stream: no %q", want)
		}
	}
}

// TestUpstreamEngineDown: without its engine, pluginsd still serves the
// plugin commands; the rest fails with a message naming the engine.
func TestUpstreamEngineDown(t *testing.T) {
	legacyDir := upLegacyDir(t)
	e := startFakeEngine(t, legacyDir)
	d := upFront(t, e.sock, legacyDir)
	d.mustDocker("ps")
	e.stop()
	out, err := d.docker("ps")
	if err == nil || !strings.Contains(out, "upstream engine unix://"+e.sock) {
		t.Errorf("docker ps with the engine down: %v %q", err, out)
	}
	if out := d.mustDocker("plugin", "ls", "--format", "{{.Name}}"); out != "" {
		t.Errorf("docker plugin ls with the engine down: %q", out)
	}
}

// TestLegacyDiscoveryRestarts: the link follows the plugin through a crash
// and its restart, stays while a plugin runs on across a pluginsd restart
// (live-restore: adopted, published again), and goes when pluginsd stops
// the plugin at shutdown.
func TestLegacyDiscoveryRestarts(t *testing.T) {
	legacyDir := upLegacyDir(t)
	e := startFakeEngine(t, legacyDir)
	root := t.TempDir()
	sockets, err := os.MkdirTemp("", "ps")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockets) })
	d := upFrontAt(t, root, sockets, e.sock, legacyDir, true)
	data := t.TempDir()
	d.mustDocker("plugin", "create", "rsvol", pluginDir(t, volConfig(data)))
	d.mustDocker("plugin", "enable", "rsvol")
	id := d.mustDocker("plugin", "inspect", "-f", "{{.Id}}", "rsvol")
	link := filepath.Join(legacyDir, "rsvol.sock")
	usable := func(vol string) error {
		_, err := d.docker("volume", "create", "-d", "rsvol", vol)
		return err
	}

	// Crash: withdrawn while dead, published again once restarted.
	pid := pluginPid(t, d, id)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if p := pluginPidOrZero(d, id); p != 0 && p != pid {
			if err := usable("after-crash"); err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("plugin not usable through its link 20 s after a crash")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(data, "after-crash")); err != nil {
		t.Errorf("volume after the crash: %v", err)
	}

	// live-restore: the plugin runs on while pluginsd is away, and its link
	// stays; the next pluginsd adopts and publishes it again.
	d.stop()
	if fi, err := os.Stat(link); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("link while pluginsd is away (plugin running): %v", err)
	}
	d2 := upFrontAt(t, root, sockets, e.sock, legacyDir, false)
	if out, err := d2.docker("volume", "create", "-d", "rsvol", "adopted"); err != nil {
		t.Errorf("volume create after adoption: %v %s", err, out)
	}
	// Without live-restore the shutdown stops the plugin: the link goes.
	d2.stop()
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Errorf("link left after a shutdown that stopped the plugin: %v", err)
	}
}

// TestUpstreamRealBinary: the flags of the real binary (--upstream,
// --legacy-discovery, --legacy-plugin-dir), and a shutdown without
// live-restore withdraws the links.
func TestUpstreamRealBinary(t *testing.T) {
	legacyDir := upLegacyDir(t)
	e := startFakeEngine(t, legacyDir)
	l := newRSLayout(t)
	sockets, err := os.MkdirTemp("", "pe")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockets) })
	p := rsStart(t, l.sock, l.args("--plugin-exec-root", sockets, "--live-restore=false",
		"--upstream", "unix://"+e.sock, "--legacy-discovery", "--legacy-plugin-dir", legacyDir)...)
	p.ready(t)
	host := "unix://" + l.sock
	docker := func(args ...string) string {
		t.Helper()
		out, err := runDocker(t, host, args...)
		if err != nil {
			t.Fatalf("docker %s: %v\n%s\n%s", strings.Join(args, " "), err, out, p.out)
		}
		return out
	}
	if out := docker("ps", "--format", "{{.Names}}"); out != "one" {
		t.Errorf("docker ps: %q", out)
	}
	docker("plugin", "create", "binvol", pluginDir(t, volConfig(t.TempDir())))
	docker("plugin", "enable", "binvol")
	if out := docker("volume", "create", "-d", "binvol", "bv"); out != "bv" {
		t.Errorf("volume create: %q", out)
	}
	link := filepath.Join(legacyDir, "binvol.sock")
	if _, err := os.Stat(link); err != nil {
		t.Fatalf("legacy link: %v", err)
	}
	id := docker("plugin", "inspect", "-f", "{{.Id}}", "binvol")
	// A proxied stream the engine keeps open holds the HTTP shutdown to its
	// 15 s budget; the plugins must still be stopped after it, in a budget
	// of their own.
	conn, err := net.Dial("unix", l.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v1.41/events?filters=%s HTTP/1.1\r\nHost: x\r\n\r\n", url.QueryEscape(`{"type":["container"]}`))
	if status, err := bufio.NewReader(conn).ReadString('\n'); err != nil || !strings.Contains(status, " 200 ") {
		t.Fatalf("engine events stream: %q %v", status, err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 40*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM:\n%s", code, p.out)
	}
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Errorf("legacy link left after a shutdown that stopped the plugin: %v", err)
	}
	if socketAnswers(filepath.Join(sockets, id, "tp.sock")) {
		t.Error("the plugin still serves after a shutdown without live-restore")
	}
	if out := p.out.String(); strings.Contains(out, "manager shutdown") || strings.Contains(out, "runtime shutdown") {
		t.Errorf("shutdown steps failed:\n%s", out)
	}
}

// podmanEngine runs Podman's Docker-compatible service (`podman system
// service`) on a private storage root, with the volume plugins of
// volumePlugins (name → socket path) configured in containers.conf, as
// Podman needs them. It skips the test where Podman is missing or cannot
// run here.
func podmanEngine(t *testing.T, volumePlugins map[string]string) string {
	t.Helper()
	bin, err := exec.LookPath("podman")
	if err != nil {
		podmanUnavailable(t, "podman is not installed (apt-get install podman)")
	}
	if os.Getuid() != 0 {
		podmanUnavailable(t, "the Podman test runs the service as root")
	}
	dir, err := os.MkdirTemp("", "pm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// File locks live under --tmpdir; the default (shm) is one segment,
	// /dev/shm/libpod_lock, shared by every Podman on the host.
	// Events go to a file of the test's: the default logger is journald,
	// which a machine without systemd running does not have.
	conf := fmt.Sprintf("[engine]\nlock_type = \"file\"\nevents_logger = \"file\"\nevents_logfile_path = %q\n\n[engine.volume_plugins]\n",
		filepath.Join(dir, "events.log"))
	for name, sock := range volumePlugins {
		conf += fmt.Sprintf("%q = %q\n", name, sock)
	}
	confPath := filepath.Join(dir, "containers.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "podman.sock")
	cmd := exec.Command(bin, "--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "runroot"),
		"--tmpdir", filepath.Join(dir, "tmp"), "system", "service", "--time=0", "unix://"+sock)
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+confPath)
	var logs rsBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		podmanUnavailable(t, fmt.Sprintf("podman system service: %v", err))
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	// Podman's image code keeps a blob cache in /var/lib/containers/cache
	// whatever --root says: removed if this test made it.
	_, statErr := os.Stat("/var/lib/containers")
	madeVarLib := os.IsNotExist(statErr)
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		// Containers the test left would keep the storage busy.
		rm := exec.Command(bin, "--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "runroot"),
			"--tmpdir", filepath.Join(dir, "tmp"), "rm", "-af")
		rm.Env = cmd.Env
		_ = rm.Run()
		_ = exec.Command("umount", "-R", filepath.Join(dir, "root")).Run()
		if madeVarLib {
			_ = os.RemoveAll("/var/lib/containers")
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if r, err := wireRawErr(sock, "GET", "/_ping", nil, nil); err == nil && r.Status == 200 {
			return sock
		}
		select {
		case <-done:
			podmanUnavailable(t, "podman system service cannot run here:\n"+logs.String())
		default:
		}
		if time.Now().After(deadline) {
			podmanUnavailable(t, "podman system service not answering after 30 s:\n"+logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestUpstreamPodman: the stock CLI through pluginsd in front of Podman:
// docker version, ps and plugin ls; a volume plugin enabled through
// pluginsd, used by Podman (through the legacy link that containers.conf
// names) to create a volume; an image imported and a container run with
// stdin attached (a request body and a hijacked connection through the
// proxy); and the pinned-SDK suite.
func TestUpstreamPodman(t *testing.T) {
	legacyDir := upLegacyDir(t)
	sock := podmanEngine(t, map[string]string{"pmvol": filepath.Join(legacyDir, "pmvol.sock")})
	d := upFront(t, sock, legacyDir)

	out := d.mustDocker("version")
	for _, want := range []string{"Podman Engine", "pluginsd", "API version:       1.41"} {
		if !strings.Contains(out, want) {
			t.Errorf("docker version lacks %q:\n%s", want, out)
		}
	}
	d.mustDocker("ps", "-a")
	if out := d.mustDocker("plugin", "ls", "--format", "{{.Name}}"); out != "" {
		t.Errorf("docker plugin ls: %q", out)
	}

	data := t.TempDir()
	since := strconv.FormatInt(time.Now().Add(-time.Second).Unix(), 10)
	d.mustDocker("plugin", "create", "pmvol", pluginDir(t, volConfig(data)))
	d.mustDocker("plugin", "enable", "pmvol")
	if out := d.mustDocker("volume", "create", "-d", "pmvol", "pv1"); out != "pv1" {
		t.Errorf("volume create: %q", out)
	}
	if _, err := os.Stat(filepath.Join(data, "pv1")); err != nil {
		t.Errorf("Podman did not create the volume through the plugin: %v", err)
	}
	if out := d.mustDocker("volume", "ls", "--format", "{{.Driver}} {{.Name}}"); !strings.Contains(out, "pmvol pv1") {
		t.Errorf("volume ls: %q", out)
	}
	d.mustDocker("volume", "rm", "pv1")
	if _, err := os.Stat(filepath.Join(data, "pv1")); !os.IsNotExist(err) {
		t.Errorf("Podman did not remove the volume through the plugin: %v", err)
	}

	// docker events: Podman's volume events and pluginsd's plugin events in
	// one stream, through one DOCKER_HOST.
	dockerEventsSeen(t, d, since, "plugin create pmvol:latest", "plugin enable pmvol", "volume create pv1", "volume remove pv1")

	// docker import (a streamed request body) and docker run -i (attach,
	// hijacked with Upgrade: tcp), with a static program as the image.
	img := upCatImage(t)
	d.mustDocker("import", img, "localhost/upcat:test")
	cmd := exec.Command(dockerBin, "run", "-i", "--rm", "--network", "none",
		// Podman's default rlimits are above this sandbox's hard limits.
		"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
		"localhost/upcat:test", "/cat")
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+d.host(), "DOCKER_CONFIG="+filepath.Join(os.TempDir(), "pluginsd-test-docker-config"))
	cmd.Stdin = strings.NewReader("through pluginsd\n")
	runOut, err := cmd.CombinedOutput()
	if err != nil || string(runOut) != "through pluginsd\ndone\n" {
		t.Errorf("docker run -i: %v %q", err, runOut)
	}

	// Disabled: Podman can no longer reach the plugin.
	d.mustDocker("plugin", "disable", "pmvol")
	if out, err := d.docker("volume", "create", "-d", "pmvol", "pv2"); err == nil {
		t.Errorf("Podman created a volume with the plugin disabled: %q", out)
	}
	d.mustDocker("plugin", "rm", "pmvol")

	runPinnedSuite(t, d, "") // Podman makes up a new ID for every /info
}

// upCatImage is a tar of a root file system holding /cat, a static program
// that copies stdin to stdout and then writes "done".
func upCatImage(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "cat.go")
	prog := "package main\n\nimport (\n\t\"io\"\n\t\"os\"\n)\n\nfunc main() {\n\t_, _ = io.Copy(os.Stdout, os.Stdin)\n\t_, _ = os.Stdout.WriteString(\"done\\n\")\n}\n"
	if err := os.WriteFile(src, []byte(prog), 0o644); err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(dir, "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := goBuild(filepath.Join(rootfs, "cat"), src, "CGO_ENABLED=0"); err != nil {
		t.Fatalf("build cat: %v\n%s", err, out)
	}
	tarPath := filepath.Join(dir, "rootfs.tar")
	f, err := os.Create(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, tarDir(t, rootfs)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return tarPath
}

// podmanUnavailable skips the Podman test on a developer machine that cannot
// run Podman, but fails it in CI, whose .ci/run installs Podman: there the
// test must run.
func podmanUnavailable(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
}

// dockerEventsSeen runs `docker events --since SINCE` (which streams until
// stopped) and waits until each of want ("TYPE ACTION NAME") has been
// printed, in any order.
func dockerEventsSeen(t *testing.T, d *daemon, since string, want ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, dockerBin, "events", "--since", since, "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}")
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+d.host(), "DOCKER_CONFIG="+filepath.Join(os.TempDir(), "pluginsd-test-docker-config"))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	missing := map[string]bool{}
	for _, w := range want {
		missing[w] = true
	}
	var seen []string
	sc := bufio.NewScanner(out)
	for len(missing) > 0 && sc.Scan() {
		seen = append(seen, sc.Text())
		delete(missing, sc.Text())
	}
	if len(missing) > 0 {
		t.Errorf("docker events did not show %v; it showed:\n%s", slices.Sorted(maps.Keys(missing)), strings.Join(seen, "\n"))
	}
}
