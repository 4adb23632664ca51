package compat

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/moby/moby/api/types/plugin"
)

// objectKeys returns the keys of the JSON object b in the order they appear.
func objectKeys(t *testing.T, b []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		t.Fatalf("reading %s: %v", b, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		t.Fatalf("not a JSON object: %s", b)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("reading key of %s: %v", b, err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatalf("reading value of %s: %v", b, err)
		}
	}
	return keys
}

// member returns the raw value of key in the JSON object b.
func member(t *testing.T, b []byte, key string) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	v, ok := m[key]
	if !ok {
		t.Fatalf("no key %q in %s", key, b)
	}
	return v
}

func samplePlugin() plugin.Plugin {
	src := "/tmp"
	val := "0"
	return plugin.Plugin{
		ID:              "cc9f58982c21dcdf54e5fb74ac0d83c30575d345376b7af4f9141b50a3f74684",
		Name:            "spec-rich:latest",
		PluginReference: "spec-rich:latest",
		Config: plugin.Config{
			Description:   "spec <rich> & test",
			Documentation: "https://example.invalid/rich?a=1&b=2",
			Entrypoint:    []string{"/rich"},
			Env:           []plugin.Env{{Name: "DEBUG", Settable: []string{"value"}, Value: &val}},
			Interface: plugin.Interface{
				Socket: "rich.sock",
				Types:  []plugin.CapabilityID{{Prefix: "docker", Capability: "volumedriver", Version: "1.0"}},
			},
			Mounts: []plugin.Mount{{Name: "data", Destination: "/data", Source: &src, Type: "bind", Settable: []string{"source"}}},
			Rootfs: &plugin.RootFS{Type: "layers", DiffIds: []string{"sha256:e4e329078ea7e1581b06c63c2574553981d8812e5b730d29a94260dc109a821c"}},
		},
	}
}

var wantConfigKeys = []string{
	"Args", "Description", "Documentation", "Entrypoint", "Env", "Interface", "IpcHost",
	"Linux", "Mounts", "Network", "PidHost", "PropagatedMount", "User", "WorkDir", "rootfs",
}

var wantLegacyConfigKeys = []string{
	"Args", "Description", "DockerVersion", "Documentation", "Entrypoint", "Env", "Interface", "IpcHost",
	"Linux", "Mounts", "Network", "PidHost", "PropagatedMount", "User", "WorkDir", "rootfs",
}

func TestPluginShape(t *testing.T) {
	tests := []struct {
		name          string
		version       string
		dockerVersion string
		wantKeys      []string
	}{
		{name: "1.24 sees DockerVersion", version: "1.24", dockerVersion: "20.10.24", wantKeys: wantLegacyConfigKeys},
		{name: "1.41 sees DockerVersion", version: "1.41", dockerVersion: "20.10.24", wantKeys: wantLegacyConfigKeys},
		{name: "1.50 sees DockerVersion", version: "1.50", dockerVersion: "20.10.24", wantKeys: wantLegacyConfigKeys},
		{name: "1.51 does not", version: "1.51", dockerVersion: "20.10.24", wantKeys: wantConfigKeys},
		{name: "1.57 does not", version: "1.57", dockerVersion: "20.10.24", wantKeys: wantConfigKeys},
		{name: "empty DockerVersion is omitted", version: "1.41", dockerVersion: "", wantKeys: wantConfigKeys},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := EncodeJSON(Plugin(tt.version, samplePlugin(), tt.dockerVersion))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{"Config", "Enabled", "Id", "Name", "PluginReference", "Settings"}, objectKeys(t, b)); diff != "" {
				t.Errorf("plugin keys (-want +got):\n%s", diff)
			}
			cfg := member(t, b, "Config")
			if diff := cmp.Diff(tt.wantKeys, objectKeys(t, cfg)); diff != "" {
				t.Errorf("config keys (-want +got):\n%s", diff)
			}
			if len(tt.wantKeys) == len(wantLegacyConfigKeys) {
				var got string
				if err := json.Unmarshal(member(t, cfg, "DockerVersion"), &got); err != nil {
					t.Fatal(err)
				}
				if got != tt.dockerVersion {
					t.Errorf("DockerVersion = %q, want %q", got, tt.dockerVersion)
				}
			}
			// Settings arrays are never null, whatever the version.
			if got, want := string(member(t, b, "Settings")), `{"Args":[],"Devices":[],"Env":[],"Mounts":[]}`; got != want {
				t.Errorf("Settings = %s, want %s", got, want)
			}
		})
	}
}

// TestPluginLegacyIsSupersetOfCurrent checks that the legacy shape differs
// from the current one by DockerVersion alone: every other byte is the same,
// so no field of plugin.Config is lost below 1.51.
func TestPluginLegacyIsSupersetOfCurrent(t *testing.T) {
	p := samplePlugin()
	p.Enabled = true
	p.Config.IpcHost, p.Config.PidHost = true, true
	p.Config.PropagatedMount = "/prop"
	p.Config.WorkDir = "/w"
	p.Config.User = plugin.User{UID: 1000, GID: 1000}
	p.Config.Network.Type = "host"
	p.Config.Interface.ProtocolScheme = "moby.plugins.http/v1"
	p.Config.Linux = plugin.LinuxConfig{AllowAllDevices: true, Capabilities: []string{"CAP_SYS_ADMIN"}}
	p.Config.Args = plugin.Args{Name: "args", Settable: []string{"value"}, Value: []string{"a"}}
	p.Settings = plugin.Settings{Args: []string{"a"}, Env: []string{"DEBUG=0"}}

	current, err := EncodeJSON(Plugin("1.57", p, "x"))
	if err != nil {
		t.Fatal(err)
	}
	legacy, err := EncodeJSON(Plugin("1.41", p, "x"))
	if err != nil {
		t.Fatal(err)
	}
	stripped := bytes.Replace(legacy, []byte(`"DockerVersion":"x",`), nil, 1)
	if diff := cmp.Diff(string(current), string(stripped)); diff != "" {
		t.Errorf("legacy shape without DockerVersion differs from the current shape (-current +legacy):\n%s", diff)
	}
	// And both decode to the same plugin.
	var a, b plugin.Plugin
	if err := json.Unmarshal(current, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(legacy, &b); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("decoded shapes differ (-current +legacy):\n%s", diff)
	}
}

func TestPluginSettings(t *testing.T) {
	src := "/src"
	tests := []struct {
		name string
		in   plugin.Settings
		want string
	}{
		{name: "all nil", in: plugin.Settings{}, want: `{"Args":[],"Devices":[],"Env":[],"Mounts":[]}`},
		{name: "values kept", in: plugin.Settings{Args: []string{"a", ""}, Env: []string{"A=1"}},
			want: `{"Args":["a",""],"Devices":[],"Env":["A=1"],"Mounts":[]}`},
		{name: "mount kept", in: plugin.Settings{Mounts: []plugin.Mount{{Name: "m", Source: &src}}},
			want: `{"Args":[],"Devices":[],"Env":[],"Mounts":[{"Description":"","Destination":"","Name":"m","Options":null,"Settable":null,"Source":"/src","Type":""}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, v := range []string{"1.41", "1.57"} {
				p := samplePlugin()
				p.Settings = tt.in
				b, err := EncodeJSON(Plugin(v, p, "x"))
				if err != nil {
					t.Fatal(err)
				}
				if got := string(member(t, b, "Settings")); got != tt.want {
					t.Errorf("at %s Settings = %s, want %s", v, got, tt.want)
				}
			}
		})
	}
}

func TestPluginDoesNotModifyInput(t *testing.T) {
	p := samplePlugin()
	_ = Plugin("1.41", p, "x")
	_ = Plugin("1.57", p, "x")
	if diff := cmp.Diff(samplePlugin(), p); diff != "" {
		t.Errorf("Plugin changed its argument (-want +got):\n%s", diff)
	}
}

func TestEncodeJSON(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{name: "no HTML escaping", in: map[string]string{"message": "a<b>&c"}, want: `{"message":"a<b>&c"}` + "\n"},
		{name: "empty slice", in: []string{}, want: "[]\n"},
		{name: "nil", in: nil, want: "null\n"},
		{name: "string", in: "x", want: `"x"` + "\n"},
		{name: "escapes quotes", in: `a"b`, want: `"a\"b"` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := EncodeJSON(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("EncodeJSON = %q, want %q", b, tt.want)
			}
		})
	}
}

func TestEncodeJSONPluginKeepsHTML(t *testing.T) {
	b, err := EncodeJSON(Plugin("1.57", samplePlugin(), ""))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"spec <rich> & test"`, `?a=1&b=2`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("encoded plugin lacks %s: %s", want, b)
		}
	}
	if !bytes.HasSuffix(b, []byte("}\n")) || bytes.Count(b, []byte("\n")) != 1 {
		t.Errorf("encoded plugin is not one line ending in a newline: %q", b)
	}
}

func TestEncodeJSONError(t *testing.T) {
	_, err := EncodeJSON(make(chan int))
	if _, ok := errors.AsType[*json.UnsupportedTypeError](err); !ok {
		t.Fatalf("EncodeJSON(chan) error = %v, want *json.UnsupportedTypeError", err)
	}
}

// TestLegacyConfigDecodesAsConfig checks that the config blob shape reads
// back into plugin.Config (which ignores DockerVersion).
func TestLegacyConfigDecodesAsConfig(t *testing.T) {
	want := samplePlugin().Config
	b, err := EncodeJSON(LegacyConfig(want, "29.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	var got plugin.Config
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		t.Errorf("trailing content after the config blob: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}
