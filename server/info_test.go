package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/moby/moby/api/types/plugin"
	"github.com/moby/moby/api/types/system"

	"github.com/pluginsd/pluginsd/handlers"
	"github.com/pluginsd/pluginsd/manager"
)

// systemBackend adds what GET /info tells about pluginsd to fakeBackend.
type systemBackend struct {
	*fakeBackend
}

func (systemBackend) EngineID() string  { return "0b6a3c5e-1d2f-4a5b-8c9d-0e1f2a3b4c5d" }
func (systemBackend) DataRoot() string  { return "/var/lib/pluginsd" }
func (systemBackend) LiveRestore() bool { return true }

// typed is an enabled plugin with the given interface types.
func typed(name string, types ...string) *manager.Plugin {
	p := testPlugin(name)
	p.Plugin.Enabled = true
	for _, s := range types {
		var c plugin.CapabilityID
		if err := c.UnmarshalText([]byte(s)); err != nil {
			panic(err)
		}
		p.Plugin.Config.Interface.Types = append(p.Plugin.Config.Interface.Types, c)
	}
	return p
}

func TestInfo(t *testing.T) {
	f := &fakeBackend{list: []*manager.Plugin{
		typed("vol:latest", "docker.volumedriver/1.0"),
		typed("a-vol:1.0", "docker.volumedriver/2.0", "docker.volumedriver/1.0"),
		typed("net:latest", "docker.networkdriver/1.0", "docker.ipamdriver/1.0"),
		typed("authz:latest", "docker.authz/1.0"),
		typed("logs:latest", "docker.logdriver/1.0"),
		typed("other:latest", "acme.volumedriver/1.0", "docker.metricscollector/1.0"),
	}}
	bus := manager.NewEventBus(manager.EventBusConfig{})
	_, sub := bus.Subscribe(t.Context(), manager.EventQuery{})
	defer sub.Close()
	h := New(Config{Info: handlers.Info{Version: "0.0.0-test", KernelVersion: "6.1.0-test"}, Events: bus}, systemBackend{f}).Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/v1.41/info", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	checkEngineHeaders(t, rec, true)
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if f.listReq == nil || f.listReq.Enabled == nil || !*f.listReq.Enabled {
		t.Errorf("List request = %+v, want enabled plugins", f.listReq)
	}
	var info system.Info
	if err := json.Unmarshal(rec.Body.Bytes(), &info); err != nil {
		t.Fatal(err)
	}
	want := system.PluginsInfo{
		Volume:        []string{"a-vol:1.0", "vol:latest"},
		Network:       []string{"net:latest"},
		Authorization: []string{"authz:latest"},
		Log:           []string{"logs:latest"},
	}
	if diff := cmp.Diff(want, info.Plugins); diff != "" {
		t.Errorf("Plugins (-want +got):\n%s", diff)
	}
	for _, c := range []struct{ name, got, want string }{
		{"ID", info.ID, "0b6a3c5e-1d2f-4a5b-8c9d-0e1f2a3b4c5d"},
		{"ServerVersion", info.ServerVersion, "0.0.0-test"},
		{"DockerRootDir", info.DockerRootDir, "/var/lib/pluginsd"},
		{"KernelVersion", info.KernelVersion, "6.1.0-test"},
		{"OSType", info.OSType, runtime.GOOS},
		{"Swarm", string(info.Swarm.LocalNodeState), "inactive"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if !info.LiveRestoreEnabled || info.NCPU < 1 || info.MemTotal <= 0 || info.Name == "" || info.Architecture == "" || info.NEventsListener != 1 {
		t.Errorf("info = %+v", info)
	}
	if info.SecurityOptions == nil || len(info.SecurityOptions) != 0 || info.Containers != 0 {
		t.Errorf("SecurityOptions = %#v, Containers = %d", info.SecurityOptions, info.Containers)
	}
}

// Without plugins, each list is [] rather than null; without a system
// backend, the fields it gives are empty.
func TestInfoEmpty(t *testing.T) {
	rec := do(t, &fakeBackend{}, request{method: http.MethodGet, target: "/info"})
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var raw struct {
		Plugins       json.RawMessage
		ID            string
		DockerRootDir string
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	if got := string(raw.Plugins); got != `{"Volume":[],"Network":[],"Authorization":[],"Log":[]}` {
		t.Errorf("Plugins = %s", got)
	}
	if raw.ID != "" || raw.DockerRootDir != "" {
		t.Errorf("ID %q, DockerRootDir %q without a system backend", raw.ID, raw.DockerRootDir)
	}
}
