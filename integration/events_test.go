package integration

// GET /events, GET /info and the metrics listener, through the stock CLI
// and, for metrics, the real binary.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pluginsd/pluginsd/integration/registrytest"
)

// unixArg is t as the CLI sends --since/--until: Unix seconds with nanoseconds.
func unixArg(t time.Time) string { return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond()) }

// wireEvent is an event line as `docker events --format '{{json .}}'`
// prints it.
type wireEvent struct {
	Type   string
	Action string
	Actor  struct {
		ID         string
		Attributes map[string]string
	}
	Scope    string `json:"scope"`
	Time     int64  `json:"time"`
	TimeNano int64  `json:"timeNano"`
}

// summary is "action id name".
func (e wireEvent) summary() string {
	return e.Action + " " + e.Actor.ID + " " + e.Actor.Attributes["name"]
}

func parseEvent(t *testing.T, line string) wireEvent {
	t.Helper()
	var e wireEvent
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		t.Fatalf("event line %q: %v", line, err)
	}
	return e
}

func parseEvents(t *testing.T, out string) []wireEvent {
	t.Helper()
	var evs []wireEvent
	for l := range strings.Lines(out) {
		if l = strings.TrimSpace(l); l != "" {
			evs = append(evs, parseEvent(t, l))
		}
	}
	return evs
}

func summaries(evs []wireEvent) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.summary())
	}
	return out
}

// TestEventsCLIHistory: `docker events --since --until` replays what
// happened, with the names the client typed for enable, disable and remove.
func TestEventsCLIHistory(t *testing.T) {
	d := startDaemon(t, "")
	t0 := time.Now()
	d.mustDocker("plugin", "create", "evh", pluginDir(t, volConfig(t.TempDir())))
	id := d.mustDocker("plugin", "inspect", "-f", "{{.Id}}", "evh")
	d.mustDocker("plugin", "enable", id[:12])
	d.mustDocker("plugin", "disable", "evh")
	d.mustDocker("plugin", "rm", "evh:latest")
	t1 := time.Now()
	d.mustDocker("plugin", "create", "later", pluginDir(t, volConfig(t.TempDir()))) // after --until

	out := d.mustDocker("events", "--filter", "type=plugin", "--since", unixArg(t0), "--until", unixArg(t1), "--format", "{{json .}}")
	evs := parseEvents(t, out)
	want := []string{
		"create " + id + " evh:latest",
		"enable " + id + " " + id[:12],
		"disable " + id + " evh",
		"remove " + id + " evh:latest",
	}
	if diff := cmp.Diff(want, summaries(evs)); diff != "" {
		t.Fatalf("events (-want +got):\n%s\n%s", diff, out)
	}
	for _, e := range evs {
		at := time.Unix(0, e.TimeNano)
		if e.Type != "plugin" || e.Scope != "local" || e.Time != at.Unix() || at.Before(t0) || at.After(t1) {
			t.Errorf("event %+v", e)
		}
	}
	for _, legacy := range []string{`"status"`, `"id"`, `"from"`} {
		if strings.Contains(out, legacy) {
			t.Errorf("legacy field %s in %s", legacy, out)
		}
	}

	// The CLI's default rendering.
	out = d.mustDocker("events", "--filter", "type=plugin", "--filter", "event=remove", "--since", unixArg(t0), "--until", unixArg(t1))
	if !strings.HasSuffix(out, "plugin remove "+id+" (name=evh:latest)") || strings.Count(out, "\n") != 0 {
		t.Errorf("default format: %q", out)
	}
	// plugin= matches an ID prefix or a name prefix, as dockerd does.
	out = d.mustDocker("events", "--filter", "plugin="+id[:8], "--since", unixArg(t0), "--until", unixArg(t1), "--format", "{{.Action}}")
	if out != "create\nenable\ndisable\nremove" {
		t.Errorf("plugin=<id prefix>: %q", out)
	}
	out = d.mustDocker("events", "--filter", "plugin=evh", "--since", unixArg(t0), "--until", unixArg(t1), "--format", "{{.Action}}")
	if out != "create\ndisable\nremove" {
		t.Errorf("plugin=evh: %q", out)
	}
	// Other event types: nothing, and no error.
	if out := d.mustDocker("events", "--filter", "type=container", "--since", unixArg(t0), "--until", unixArg(t1)); out != "" {
		t.Errorf("type=container: %q", out)
	}
	// Filters pluginsd has no events for are refused.
	out, err := d.docker("events", "--filter", "container=x", "--since", unixArg(t0), "--until", unixArg(t1))
	if err == nil || !strings.Contains(out, "invalid filter 'container'") {
		t.Errorf("container filter: %v %q", err, out)
	}
}

// TestEventsCLIStream: a `docker events` started first receives the
// matching events that happen after it, and only those.
func TestEventsCLIStream(t *testing.T) {
	d := startDaemon(t, "")
	d.mustDocker("plugin", "create", "evs", pluginDir(t, volConfig(t.TempDir())))
	id := d.mustDocker("plugin", "inspect", "-f", "{{.Id}}", "evs")

	ctx, cancel := context.WithCancel(t.Context())
	cmd := exec.CommandContext(ctx, dockerBin, "events", "--filter", "type=plugin", "--filter", "event=enable", "--format", "{{json .}}")
	cmd.Env = append(cmd.Environ(), "DOCKER_HOST="+d.host(), "DOCKER_CLI_HINTS=false")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })

	// The stream is subscribed once the bus counts it.
	for deadline := time.Now().Add(30 * time.Second); d.events.Subscribers() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("docker events never subscribed")
		}
	}
	next := func() wireEvent {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("docker events ended")
			}
			return parseEvent(t, l)
		case <-time.After(30 * time.Second):
			t.Fatal("no event from docker events within 30s")
			return wireEvent{}
		}
	}
	d.mustDocker("plugin", "enable", "evs")
	if got := next().summary(); got != "enable "+id+" evs" {
		t.Errorf("first event: %s", got)
	}
	// The disable is filtered out: the next line is the second enable.
	d.mustDocker("plugin", "disable", "evs")
	d.mustDocker("plugin", "enable", "evs:latest")
	if got := next().summary(); got != "enable "+id+" evs:latest" {
		t.Errorf("second event: %s", got)
	}
	d.mustDocker("plugin", "rm", "-f", "evs")
	// When the client leaves, its subscription goes.
	cancel()
	_ = cmd.Wait()
	for deadline := time.Now().Add(10 * time.Second); d.events.Subscribers() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("subscription left after the client went away")
		}
	}
}

// TestInfoCLI: `docker info` renders, and lists enabled plugins by type.
func TestInfoCLI(t *testing.T) {
	d := startDaemon(t, "")
	d.mustDocker("plugin", "create", "infovol", pluginDir(t, volConfig(t.TempDir())))
	d.mustDocker("plugin", "create", "infooff", pluginDir(t, volConfig(t.TempDir())))
	d.mustDocker("plugin", "enable", "infovol")
	t.Cleanup(func() { _, _ = d.docker("plugin", "disable", "infovol") })

	out := d.mustDocker("info") // fails on any server error
	for _, want := range []string{"Server Version: test", "  Volume: infovol:latest\n", "Swarm: inactive", "Docker Root Dir: " + filepath.Join(d.root, "data")} {
		if !strings.Contains(out, want) {
			t.Errorf("docker info lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "ERROR") || strings.Contains(out, "infooff") {
		t.Errorf("docker info:\n%s", out)
	}
	var plugins struct{ Volume, Network, Authorization, Log []string }
	if err := json.Unmarshal([]byte(d.mustDocker("info", "--format", "{{json .Plugins}}")), &plugins); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(plugins.Volume, []string{"infovol:latest"}) || len(plugins.Network)+len(plugins.Authorization)+len(plugins.Log) != 0 {
		t.Errorf("Plugins = %+v", plugins)
	}
	id := d.mustDocker("info", "--format", "{{.ID}}")
	if len(id) != 36 || id != d.mgr.EngineID() {
		t.Errorf("ID = %q, want the engine ID %q", id, d.mgr.EngineID())
	}
}

// scrape reads the Prometheus text exposition at url: the value of every
// sample, by its name and labels as printed.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %d %v", url, resp.StatusCode, err)
	}
	out := map[string]float64{}
	for l := range strings.Lines(string(b)) {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			t.Fatalf("sample %q: %v", l, err)
		}
		out[l[:i]] = v
	}
	return out
}

// TestMetricsRealBinary: bin/pluginsd with --metrics-addr serves request,
// plugin and registry metrics on that address, and not on the API.
func TestMetricsRealBinary(t *testing.T) {
	l := newRSLayout(t)
	maddr := "127.0.0.1:" + freePort(t)
	p := rsStart(t, l.sock, l.args("--metrics-addr", maddr)...)
	p.ready(t)
	host := "unix://" + l.sock
	docker := func(args ...string) string {
		t.Helper()
		out, err := runDocker(t, host, args...)
		if err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}

	reg := registrytest.New(t, registrytest.Options{})
	r := reg.Ref("team/metrics:1.0")
	docker("plugin", "create", r, pluginDir(t, volConfig(t.TempDir())))
	docker("plugin", "push", r)
	// Install content pluginsd does not have yet, so that layers are
	// downloaded (the pushed plugin's are already stored).
	fixture := "team/fixture:1.0"
	reg.PushPlugin(t, fixture, []byte(registryPluginConfig), registryLayer(t, "metrics fixture"))
	docker("plugin", "install", "--grant-all-permissions", "--disable", "--alias", "pulled", reg.Ref(fixture))
	for range 3 {
		docker("plugin", "ls")
	}
	if out, err := runDocker(t, host, "plugin", "inspect", "nosuch"); err == nil {
		t.Fatalf("inspect nosuch: %s", out)
	}

	m := scrape(t, "http://"+maddr+"/metrics")
	at := func(name string) float64 {
		v, ok := m[name]
		if !ok {
			t.Errorf("no sample %s", name)
		}
		return v
	}
	if v := at(`pluginsd_http_requests_total{code="200",operation="list"}`); v < 3 {
		t.Errorf("list requests = %v, want >= 3", v)
	}
	if v := at(`pluginsd_http_requests_total{code="404",operation="inspect"}`); v < 1 {
		t.Errorf("inspect 404s = %v", v)
	}
	if v := at(`pluginsd_http_requests_total{code="200",operation="pull"}`); v != 1 {
		t.Errorf("pulls = %v", v)
	}
	if v := at(`pluginsd_plugins{state="disabled"}`); v != 2 {
		t.Errorf("disabled plugins = %v, want 2", v)
	}
	if v := at(`pluginsd_plugins{state="enabled"}`); v != 0 {
		t.Errorf("enabled plugins = %v, want 0", v)
	}
	count := at(`pluginsd_http_request_duration_seconds_count{operation="list"}`)
	inf := at(`pluginsd_http_request_duration_seconds_bucket{operation="list",le="+Inf"}`)
	sum := at(`pluginsd_http_request_duration_seconds_sum{operation="list"}`)
	if count < 3 || inf != count || sum <= 0 || sum > 60*count {
		t.Errorf("list latency: count %v, +Inf bucket %v, sum %v", count, inf, sum)
	}
	if v := at("pluginsd_pulled_bytes_total"); v <= 0 {
		t.Errorf("pulled bytes = %v", v)
	}
	if v := at("pluginsd_pushed_bytes_total"); v <= 0 {
		t.Errorf("pushed bytes = %v", v)
	}
	if v := at("pluginsd_plugin_restarts_total"); v != 0 {
		t.Errorf("restarts = %v", v)
	}
	// Not on the API socket.
	if resp := wireRaw(t, l.sock, "GET", "/metrics", nil, nil); resp.Status != http.StatusNotFound {
		t.Errorf("GET /metrics on the API socket: %d", resp.Status)
	}
	p.term(t)
}

// TestEventsCrashRestart: a plugin that dies while enabled gives a die and
// a restart event, both with its exit code, and counts as a restart.
func TestEventsCrashRestart(t *testing.T) {
	d := startDaemon(t, "")
	d.mustDocker("plugin", "create", "evcr", pluginDir(t, volConfig(t.TempDir())))
	t0 := time.Now()
	d.mustDocker("plugin", "enable", "evcr")
	id := d.mustDocker("plugin", "inspect", "-f", "{{.Id}}", "evcr")
	if err := syscall.Kill(pluginPid(t, d, id), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var out string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out = d.mustDocker("events", "--filter", "plugin="+id, "--filter", "event=die", "--filter", "event=restart",
			"--since", unixArg(t0), "--until", unixArg(time.Now()), "--format", "{{.Action}} {{.Actor.Attributes.exitCode}} {{.Actor.Attributes.name}}")
		if strings.Contains(out, "restart") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no restart event within 30s: %q", out)
		}
	}
	if out != "die 137 evcr:latest\nrestart 137 evcr:latest" {
		t.Errorf("events: %q", out)
	}
	if s := d.mgr.Stats(); s.Restarts != 1 {
		t.Errorf("restarts = %d", s.Restarts)
	}
	d.mustDocker("plugin", "rm", "-f", "evcr")
}
