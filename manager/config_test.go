package manager

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
	"github.com/moby/moby/api/types/plugin"
)

// lowercaseConfig is a config.json as plugin authors write it.
const lowercaseConfig = `{
  "description": "spec rich test plugin",
  "documentation": "https://example.invalid/rich",
  "entrypoint": ["/rich"],
  "workdir": "/tmp",
  "user": {"uid": 1000, "gid": 1000},
  "network": {"type": "host"},
  "ipchost": true,
  "pidhost": true,
  "propagatedmount": "/data/prop",
  "interface": {"socket": "rich.sock", "types": ["docker.volumedriver/1.0", "authz/2.0", "vendor.x.logdriver/1"]},
  "env": [
    {"name": "DEBUG", "description": "debug level", "settable": ["value"], "value": "0"},
    {"name": "NOVALUE", "settable": ["value"], "value": null}
  ],
  "mounts": [
    {"name": "data", "destination": "/data/src", "source": "/tmp", "type": "bind", "options": ["rbind", "rw"], "settable": ["source"]}
  ],
  "linux": {"capabilities": ["CAP_SYS_ADMIN"], "allowalldevices": false,
            "devices": [{"name": "null", "path": "/dev/null", "settable": ["path"]}]},
  "args": {"name": "args", "settable": ["value"], "value": ["--sock=/run/rich.sock"]},
  "dockerversion": "20.10.24"
}`

func TestParseConfigLowercase(t *testing.T) {
	got, dv, err := ParseConfig([]byte(lowercaseConfig))
	if err != nil {
		t.Fatal(err)
	}
	want := plugin.Config{
		Description:     "spec rich test plugin",
		Documentation:   "https://example.invalid/rich",
		Entrypoint:      []string{"/rich"},
		WorkDir:         "/tmp",
		User:            plugin.User{UID: 1000, GID: 1000},
		Network:         plugin.NetworkConfig{Type: "host"},
		IpcHost:         true,
		PidHost:         true,
		PropagatedMount: "/data/prop",
		Interface: plugin.Interface{Socket: "rich.sock", Types: []plugin.CapabilityID{
			{Prefix: "docker", Capability: "volumedriver", Version: "1.0"},
			{Prefix: "", Capability: "authz", Version: "2.0"},
			{Prefix: "vendor.x", Capability: "logdriver", Version: "1"},
		}},
		Env: []plugin.Env{
			{Name: "DEBUG", Description: "debug level", Settable: []string{"value"}, Value: new("0")},
			{Name: "NOVALUE", Settable: []string{"value"}},
		},
		Mounts: []plugin.Mount{{Name: "data", Destination: "/data/src", Source: new("/tmp"), Type: "bind",
			Options: []string{"rbind", "rw"}, Settable: []string{"source"}}},
		Linux: plugin.LinuxConfig{Capabilities: []string{"CAP_SYS_ADMIN"},
			Devices: []plugin.Device{{Name: "null", Path: new("/dev/null"), Settable: []string{"path"}}}},
		Args: plugin.Args{Name: "args", Settable: []string{"value"}, Value: []string{"--sock=/run/rich.sock"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseConfig (-want +got):\n%s", diff)
	}
	if dv != "20.10.24" {
		t.Errorf("DockerVersion = %q, want 20.10.24", dv)
	}
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		config  string
		check   func(t *testing.T, c plugin.Config)
		wantErr string // prefix of the message
	}{
		{name: "minimal", config: `{"description":"d","entrypoint":["/x"],"interface":{"socket":"p.sock","types":["docker.volumedriver/1.0"]}}`,
			check: func(t *testing.T, c plugin.Config) {
				t.Helper()
				if c.Env != nil || c.Mounts != nil || c.Linux.Devices != nil || c.Args.Value != nil {
					t.Errorf("absent lists are not nil: %+v", c)
				}
			}},
		{name: "exact-case keys", config: `{"Description":"d","Interface":{"Socket":"p.sock","Types":["docker.authz/1.0"]}}`,
			check: func(t *testing.T, c plugin.Config) {
				t.Helper()
				if c.Description != "d" || c.Interface.Types[0].Capability != "authz" {
					t.Errorf("got %+v", c)
				}
			}},
		{name: "empty object", config: `{}`},
		{name: "type without version", config: `{"interface":{"types":["docker.authz"]}}`,
			check: func(t *testing.T, c plugin.Config) {
				t.Helper()
				want := []plugin.CapabilityID{{Prefix: "docker", Capability: "authz"}}
				if diff := cmp.Diff(want, c.Interface.Types); diff != "" {
					t.Errorf("types (-want +got):\n%s", diff)
				}
			}},
		{name: "type without prefix keeps its first letter", config: `{"interface":{"types":["volumedriver/1.0"]}}`,
			check: func(t *testing.T, c plugin.Config) {
				t.Helper()
				if got := c.Interface.Types[0].Capability; got != "volumedriver" {
					t.Errorf("capability = %q, want volumedriver", got)
				}
			}},
		{name: "rootfs key kept", config: `{"rootfs":{"type":"layers","diff_ids":["sha256:00"]}}`,
			check: func(t *testing.T, c plugin.Config) {
				t.Helper()
				if c.Rootfs == nil || c.Rootfs.Type != "layers" || len(c.Rootfs.DiffIds) != 1 {
					t.Errorf("rootfs = %+v", c.Rootfs)
				}
			}},

		{name: "object interface type", config: `{"interface":{"types":[{"Prefix":"docker","Capability":"volumedriver","Version":"1.0"}]}}`,
			wantErr: "failed to parse config: "},
		{name: "number interface type", config: `{"interface":{"types":[1]}}`, wantErr: "failed to parse config: "},
		{name: "empty capability", config: `{"interface":{"types":["docker./1.0"]}}`, wantErr: `failed to parse config: invalid interface type`},
		{name: "type is only a version", config: `{"interface":{"types":["/1.0"]}}`, wantErr: `failed to parse config: invalid interface type`},
		{name: "invalid JSON", config: `{"description":`, wantErr: "failed to parse config: "},
		{name: "empty", config: ``, wantErr: "failed to parse config: "},
		{name: "array", config: `[]`, wantErr: "failed to parse config: "},
		{name: "wrong value type", config: `{"entrypoint":"/x"}`, wantErr: "failed to parse config: "},
		{name: "socket escapes", config: `{"interface":{"socket":"../x"}}`, wantErr: `failed to parse config: interface socket "../x" must be a file name`},
		{name: "socket with a directory", config: `{"interface":{"socket":"a/b.sock"}}`, wantErr: `failed to parse config: interface socket "a/b.sock" must be a file name`},
		{name: "socket absolute", config: `{"interface":{"socket":"/run/x.sock"}}`, wantErr: `failed to parse config: interface socket "/run/x.sock" must be a file name`},
		{name: "socket dot dot", config: `{"interface":{"socket":".."}}`, wantErr: `failed to parse config: interface socket ".." must be a file name`},
		{name: "socket dot", config: `{"interface":{"socket":"."}}`, wantErr: `failed to parse config: interface socket "." must be a file name`},
		{name: "relative mount destination", config: `{"mounts":[{"name":"m","destination":"data","type":"bind"}]}`,
			wantErr: `failed to parse config: mount "m": destination "data" must be an absolute path`},
		{name: "empty mount destination", config: `{"mounts":[{"name":"m","type":"bind"}]}`,
			wantErr: `failed to parse config: mount "m": destination "" must be an absolute path`},
		{name: "relative propagated mount", config: `{"propagatedmount":"prop"}`,
			wantErr: `failed to parse config: propagatedMount "prop" must be an absolute path`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := ParseConfig([]byte(tt.config))
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseConfig(%s) succeeded, want %q", tt.config, tt.wantErr)
				}
				if !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Errorf("error = %q, want prefix %q", err.Error(), tt.wantErr)
				}
				if !errdefs.IsInvalidArgument(err) {
					t.Errorf("error %q is not InvalidArgument", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseConfig(%s): %v", tt.config, err)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func TestInitSettings(t *testing.T) {
	tests := []struct {
		name string
		cfg  plugin.Config
		want plugin.Settings
	}{
		{name: "empty config", cfg: plugin.Config{},
			want: plugin.Settings{Args: []string{}, Devices: []plugin.Device{}, Env: []string{}, Mounts: []plugin.Mount{}}},
		{name: "env with null value skipped", cfg: plugin.Config{Env: []plugin.Env{
			{Name: "A", Value: new("1")}, {Name: "B"}, {Name: "C", Value: new("")}, {Name: "D", Value: new("x=y")},
		}}, want: plugin.Settings{Args: []string{}, Devices: []plugin.Device{}, Env: []string{"A=1", "C=", "D=x=y"}, Mounts: []plugin.Mount{}}},
		{name: "args copied", cfg: plugin.Config{Args: plugin.Args{Name: "args", Value: []string{"a", "b"}}},
			want: plugin.Settings{Args: []string{"a", "b"}, Devices: []plugin.Device{}, Env: []string{}, Mounts: []plugin.Mount{}}},
		{name: "mounts and devices copied", cfg: plugin.Config{
			Mounts: []plugin.Mount{{Name: "m", Destination: "/m", Source: new("/s"), Options: []string{"rbind"}, Settable: []string{"source"}}, {Name: "n", Destination: "/n"}},
			Linux:  plugin.LinuxConfig{Devices: []plugin.Device{{Name: "d", Path: new("/dev/null"), Settable: []string{"path"}}, {Name: "e"}}},
		}, want: plugin.Settings{Args: []string{}, Env: []string{},
			Mounts:  []plugin.Mount{{Name: "m", Destination: "/m", Source: new("/s"), Options: []string{"rbind"}, Settable: []string{"source"}}, {Name: "n", Destination: "/n"}},
			Devices: []plugin.Device{{Name: "d", Path: new("/dev/null"), Settable: []string{"path"}}, {Name: "e"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := InitSettings(tt.cfg)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("InitSettings (-want +got):\n%s", diff)
			}
			// Arrays encode as [], never null.
			b, err := json.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte(`"Args":null`)) || bytes.Contains(b, []byte(`"Env":null`)) ||
				bytes.Contains(b, []byte(`"Mounts":null`)) || bytes.Contains(b, []byte(`"Devices":null`)) {
				t.Errorf("Settings encode a null array: %s", b)
			}
		})
	}
}

// TestInitSettingsDeepCopy: changing the settings never changes the config.
func TestInitSettingsDeepCopy(t *testing.T) {
	cfg := plugin.Config{
		Args:   plugin.Args{Value: []string{"a"}},
		Mounts: []plugin.Mount{{Name: "m", Source: new("/s"), Options: []string{"rbind"}, Settable: []string{"source"}}},
		Linux:  plugin.LinuxConfig{Devices: []plugin.Device{{Name: "d", Path: new("/dev/null"), Settable: []string{"path"}}}},
	}
	s := InitSettings(cfg)
	*s.Mounts[0].Source = "/changed"
	s.Mounts[0].Options[0] = "changed"
	s.Mounts[0].Settable[0] = "changed"
	s.Mounts[0].Name = "changed"
	*s.Devices[0].Path = "/dev/changed"
	s.Devices[0].Settable[0] = "changed"
	s.Args[0] = "changed"

	want := plugin.Config{
		Args:   plugin.Args{Value: []string{"a"}},
		Mounts: []plugin.Mount{{Name: "m", Source: new("/s"), Options: []string{"rbind"}, Settable: []string{"source"}}},
		Linux:  plugin.LinuxConfig{Devices: []plugin.Device{{Name: "d", Path: new("/dev/null"), Settable: []string{"path"}}}},
	}
	if diff := cmp.Diff(want, cfg); diff != "" {
		t.Errorf("changing Settings changed Config (-want +got):\n%s", diff)
	}
}

func TestEncodeConfig(t *testing.T) {
	cfg, _, err := ParseConfig([]byte(lowercaseConfig))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name          string
		dockerVersion string
		wantDV        bool
	}{
		{name: "with DockerVersion", dockerVersion: "pluginsd-1", wantDV: true},
		{name: "without DockerVersion", dockerVersion: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := EncodeConfig(cfg, tt.dockerVersion)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasSuffix(b, []byte("}\n")) {
				t.Errorf("config blob does not end in a newline: %q", b)
			}
			if got := bytes.Contains(b, []byte(`"Description":"spec rich test plugin","DockerVersion":"pluginsd-1","Documentation":`)); got != tt.wantDV {
				t.Errorf("DockerVersion between Description and Documentation: %v, want %v\n%s", got, tt.wantDV, b)
			}
			// The blob parses back to the same config.
			back, dv, err := ParseConfig(b)
			if err != nil {
				t.Fatal(err)
			}
			if dv != tt.dockerVersion {
				t.Errorf("DockerVersion read back = %q, want %q", dv, tt.dockerVersion)
			}
			if diff := cmp.Diff(cfg, back); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseConfigTrailingData: dockerd parses config.json with
// json.Unmarshal, which refuses anything after the object.
func TestParseConfigTrailingData(t *testing.T) {
	for _, cfg := range []string{`{"description":"x"} junk`, `{"description":"x"}{"description":"y"}`} {
		t.Run(cfg, func(t *testing.T) {
			_, _, err := ParseConfig([]byte(cfg))
			if !errdefs.IsInvalidArgument(err) || !strings.HasPrefix(err.Error(), "failed to parse config: ") {
				t.Errorf("ParseConfig(%q) = %v, want a 400 \"failed to parse config: ...\"", cfg, err)
			}
		})
	}
	// Trailing whitespace is fine.
	if _, _, err := ParseConfig([]byte("{}\n\n")); err != nil {
		t.Errorf("config with trailing newlines: %v", err)
	}
}
