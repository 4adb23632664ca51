package manager

import (
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
	"github.com/moby/moby/api/types/plugin"
)

const errFormat = "invalid format, must be <name>[.<field>][=<value>]"

func TestParseSettables(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    []Settable
		wantErr string
	}{
		{name: "nil", args: nil, want: []Settable{}},
		{name: "empty", args: []string{}, want: []Settable{}},
		{name: "name and value", args: []string{"DEBUG=3"}, want: []Settable{{Name: "DEBUG", Value: "3"}}},
		{name: "field", args: []string{"data.source=/srv"}, want: []Settable{{Name: "data", Field: "source", Value: "/srv"}}},
		{name: "no value", args: []string{"DEBUG"}, want: []Settable{{Name: "DEBUG"}}},
		{name: "empty value", args: []string{"DEBUG="}, want: []Settable{{Name: "DEBUG"}}},
		{name: "field without value", args: []string{"data.source"}, want: []Settable{{Name: "data", Field: "source"}}},
		{name: "field is after the last dot", args: []string{"a.b.c=1"}, want: []Settable{{Name: "a.b", Field: "c", Value: "1"}}},
		{name: "leading dot is part of the name", args: []string{".x=1"}, want: []Settable{{Name: ".x", Value: "1"}}},
		{name: "trailing dot gives an empty field", args: []string{"a.=1"}, want: []Settable{{Name: "a", Value: "1"}}},
		{name: "key ends at the first =", args: []string{"x==y"}, want: []Settable{{Name: "x", Value: "=y"}}},
		{name: "value keeps later = and dots", args: []string{"x=a=b.c"}, want: []Settable{{Name: "x", Value: "a=b.c"}}},
		{name: "value keeps spaces", args: []string{"args=a   b"}, want: []Settable{{Name: "args", Value: "a   b"}}},
		{name: "several", args: []string{"DEBUG=3", "data.source=/srv"},
			want: []Settable{{Name: "DEBUG", Value: "3"}, {Name: "data", Field: "source", Value: "/srv"}}},
		{name: "leading =", args: []string{"=x"}, wantErr: errFormat},
		{name: "= alone", args: []string{"="}, wantErr: errFormat},
		{name: "empty item", args: []string{""}, wantErr: errFormat},
		{name: "one bad item fails all", args: []string{"DEBUG=3", "=x"}, wantErr: errFormat},
		{name: "NUL byte", args: []string{"A\x00=1"}, wantErr: `invalid setting "A\x00=1": contains a NUL byte`},
		{name: "NUL in value", args: []string{"A=\x00"}, wantErr: `invalid setting "A=\x00": contains a NUL byte`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSettables(tt.args)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseSettables(%q) = %+v, want error %q", tt.args, got, tt.wantErr)
				}
				if err.Error() != tt.wantErr {
					t.Errorf("error = %q, want %q", err.Error(), tt.wantErr)
				}
				if !errdefs.IsInvalidArgument(err) {
					t.Errorf("error %q is not InvalidArgument", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSettables(%q): %v", tt.args, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseSettables(%q) (-want +got):\n%s", tt.args, diff)
			}
		})
	}
}

// settablePlugin is the sample of spec §3.1 and case B07, plus entries for
// the error paths: a mount with no source, a mount with two settable
// fields, and a device with no path.
func settablePlugin() plugin.Plugin {
	cfg := plugin.Config{
		Args: plugin.Args{Name: "args", Description: "cli args", Settable: []string{"value"}, Value: []string{"--sock=/run/x.sock"}},
		Env: []plugin.Env{
			{Name: "DEBUG", Settable: []string{"value"}, Value: new("0")},
			{Name: "FIXED", Value: new("x")},
			{Name: "NOVALUE", Settable: []string{"value"}},
			{Name: "LATE", Settable: []string{"value"}, Value: new("1")},
		},
		Mounts: []plugin.Mount{
			{Name: "data", Destination: "/data/src", Source: new("/tmp"), Type: "bind", Options: []string{"rbind", "rw"}, Settable: []string{"source"}},
			{Name: "ro", Destination: "/hostetc", Source: new("/etc"), Type: "bind", Options: []string{"rbind", "ro"}},
			{Name: "nosrc", Destination: "/nosrc", Type: "bind", Options: []string{"rbind"}, Settable: []string{"source"}},
			{Name: "multi", Destination: "/multi", Source: new("/m"), Type: "bind", Settable: []string{"source", "destination"}},
		},
		Linux: plugin.LinuxConfig{Devices: []plugin.Device{
			{Name: "null", Path: new("/dev/null"), Settable: []string{"path"}},
			{Name: "nopath", Settable: []string{"path"}},
		}},
	}
	return plugin.Plugin{Config: cfg, Settings: InitSettings(cfg)}
}

func TestApplySettable(t *testing.T) {
	tests := []struct {
		name    string
		arg     string
		change  func(p *plugin.Plugin) // applied to a fresh settablePlugin for the expected result
		wantErr string
	}{
		{name: "env replaced in place", arg: "DEBUG=3", change: func(p *plugin.Plugin) { p.Settings.Env[0] = "DEBUG=3" }},
		{name: "env with field", arg: "DEBUG.value=4", change: func(p *plugin.Plugin) { p.Settings.Env[0] = "DEBUG=4" }},
		{name: "env without = sets empty", arg: "DEBUG", change: func(p *plugin.Plugin) { p.Settings.Env[0] = "DEBUG=" }},
		{name: "env after others replaced in place", arg: "LATE=2", change: func(p *plugin.Plugin) { p.Settings.Env[2] = "LATE=2" }},
		{name: "env with null value appended", arg: "NOVALUE=z",
			change: func(p *plugin.Plugin) { p.Settings.Env = append(p.Settings.Env, "NOVALUE=z") }},
		{name: "env value keeps =", arg: "DEBUG=a=b", change: func(p *plugin.Plugin) { p.Settings.Env[0] = "DEBUG=a=b" }},
		{name: "env not settable", arg: "FIXED=1", wantErr: `"FIXED" is not settable`},
		{name: "env not settable with field", arg: "FIXED.value=1", wantErr: `"FIXED.value" is not settable`},
		{name: "env wrong field", arg: "DEBUG.source=1", wantErr: `"DEBUG.source" is not settable`},

		{name: "args split on single spaces", arg: "args=a   b",
			change: func(p *plugin.Plugin) { p.Settings.Args = []string{"a", "", "", "b"} }},
		{name: "args one word", arg: "args=--debug", change: func(p *plugin.Plugin) { p.Settings.Args = []string{"--debug"} }},
		{name: "args empty", arg: "args=", change: func(p *plugin.Plugin) { p.Settings.Args = []string{""} }},
		{name: "args with field", arg: "args.value=x y", change: func(p *plugin.Plugin) { p.Settings.Args = []string{"x", "y"} }},
		{name: "args wrong field", arg: "args.source=x", wantErr: `"args.source" is not settable`},

		{name: "mount source", arg: "data.source=/srv", change: func(p *plugin.Plugin) {
			p.Config.Mounts[0].Source = new("/srv")
			p.Settings.Mounts[0].Source = new("/srv")
		}},
		{name: "mount default field", arg: "data=/srv", change: func(p *plugin.Plugin) {
			p.Config.Mounts[0].Source = new("/srv")
			p.Settings.Mounts[0].Source = new("/srv")
		}},
		{name: "mount without value", arg: "data.source", change: func(p *plugin.Plugin) {
			p.Config.Mounts[0].Source = new("")
			p.Settings.Mounts[0].Source = new("")
		}},
		{name: "mount one of two settable fields", arg: "multi.source=/n", change: func(p *plugin.Plugin) {
			p.Config.Mounts[3].Source = new("/n")
			p.Settings.Mounts[3].Source = new("/n")
		}},
		{name: "mount destination not settable", arg: "data.destination=/x", wantErr: `"data.destination" is not settable`},
		{name: "mount destination listed but not allowed", arg: "multi.destination=/x", wantErr: `"multi.destination" is not settable`},
		{name: "mount not settable", arg: "ro.source=/x", wantErr: `"ro.source" is not settable`},
		{name: "mount not settable, no field", arg: "ro=/x", wantErr: `"ro" is not settable`},
		{name: "two settable fields need a field", arg: "multi=/x", wantErr: "multiple fields are settable, one must be specified"},
		{name: "mount without source", arg: "nosrc.source=/tmp", wantErr: "Plugin config has no mount source"},

		{name: "device path", arg: "null.path=/dev/zero", change: func(p *plugin.Plugin) {
			p.Config.Linux.Devices[0].Path = new("/dev/zero")
			p.Settings.Devices[0].Path = new("/dev/zero")
		}},
		{name: "device default field", arg: "null=/dev/zero", change: func(p *plugin.Plugin) {
			p.Config.Linux.Devices[0].Path = new("/dev/zero")
			p.Settings.Devices[0].Path = new("/dev/zero")
		}},
		{name: "device wrong field", arg: "null.source=/dev/zero", wantErr: `"null.source" is not settable`},
		{name: "device without path", arg: "nopath.path=/dev/x", wantErr: "Plugin config has no device path"},

		{name: "unknown name", arg: "NOTSETTABLE=1", wantErr: `setting "NOTSETTABLE" not found in the plugin configuration`},
		{name: "unknown mount", arg: "nomount.source=/x", wantErr: `setting "nomount" not found in the plugin configuration`},
		{name: "unknown device", arg: "mydev.path=/dev/x", wantErr: `setting "mydev" not found in the plugin configuration`},
		{name: "names are case-sensitive", arg: "debug=1", wantErr: `setting "debug" not found in the plugin configuration`},
		{name: "a dotted name cannot be addressed without a field", arg: "a.b=1", wantErr: `setting "a" not found in the plugin configuration`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items, err := ParseSettables([]string{tt.arg})
			if err != nil {
				t.Fatalf("ParseSettables(%q): %v", tt.arg, err)
			}
			got := settablePlugin()
			err = applySettable(&got, items[0])
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("applySettable(%q) succeeded, want %q", tt.arg, tt.wantErr)
				}
				if err.Error() != tt.wantErr {
					t.Errorf("error = %q, want %q", err.Error(), tt.wantErr)
				}
				if !errdefs.IsInvalidArgument(err) {
					t.Errorf("error %q is not InvalidArgument", err)
				}
				if diff := cmp.Diff(settablePlugin(), got); diff != "" {
					t.Errorf("a failed item changed the plugin (-want +got):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatalf("applySettable(%q): %v", tt.arg, err)
			}
			want := settablePlugin()
			tt.change(&want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("applySettable(%q) (-want +got):\n%s", tt.arg, diff)
			}
		})
	}
}

// TestApplySettableDoesNotAlias: after a mount or device set, Config and
// Settings hold separate strings, and setting twice keeps one entry.
func TestApplySettableDoesNotAlias(t *testing.T) {
	p := settablePlugin()
	for _, arg := range []string{"data.source=/a", "null.path=/dev/a", "NOVALUE=1", "NOVALUE=2"} {
		items, err := ParseSettables([]string{arg})
		if err != nil {
			t.Fatal(err)
		}
		if err := applySettable(&p, items[0]); err != nil {
			t.Fatalf("applySettable(%q): %v", arg, err)
		}
	}
	*p.Settings.Mounts[0].Source = "/changed"
	*p.Settings.Devices[0].Path = "/dev/changed"
	if got := *p.Config.Mounts[0].Source; got != "/a" {
		t.Errorf("Config mount source = %q after changing Settings, want /a", got)
	}
	if got := *p.Config.Linux.Devices[0].Path; got != "/dev/a" {
		t.Errorf("Config device path = %q after changing Settings, want /dev/a", got)
	}
	if diff := cmp.Diff([]string{"DEBUG=0", "FIXED=x", "LATE=1", "NOVALUE=2"}, p.Settings.Env); diff != "" {
		t.Errorf("Settings.Env (-want +got):\n%s", diff)
	}
}

// TestApplySettableLookupOrder: env names are looked up before mounts,
// mounts before devices, devices before args.
func TestApplySettableLookupOrder(t *testing.T) {
	cfg := plugin.Config{
		Args:   plugin.Args{Name: "x", Settable: []string{"value"}},
		Env:    []plugin.Env{{Name: "x", Settable: []string{"value"}}},
		Mounts: []plugin.Mount{{Name: "x", Destination: "/x", Source: new("/s"), Settable: []string{"source"}}, {Name: "y", Destination: "/y", Source: new("/s"), Settable: []string{"source"}}},
		Linux:  plugin.LinuxConfig{Devices: []plugin.Device{{Name: "y", Path: new("/dev/y"), Settable: []string{"path"}}}},
	}
	p := plugin.Plugin{Config: cfg, Settings: InitSettings(cfg)}
	for _, arg := range []string{"x=1", "y=/new"} {
		items, err := ParseSettables([]string{arg})
		if err != nil {
			t.Fatal(err)
		}
		if err := applySettable(&p, items[0]); err != nil {
			t.Fatalf("applySettable(%q): %v", arg, err)
		}
	}
	if diff := cmp.Diff([]string{"x=1"}, p.Settings.Env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	if got := *p.Config.Mounts[0].Source; got != "/s" {
		t.Errorf("mount x changed to %q; env should have matched first", got)
	}
	if got := *p.Config.Mounts[1].Source; got != "/new" {
		t.Errorf("mount y = %q, want /new", got)
	}
	if got := *p.Config.Linux.Devices[0].Path; got != "/dev/y" {
		t.Errorf("device y changed to %q; the mount should have matched first", got)
	}
	if len(p.Settings.Args) != 0 {
		t.Errorf("args changed to %q", p.Settings.Args)
	}
}

// TestApplySettableArgsWithoutName: a config whose Args has no name
// exposes nothing under the empty name.
func TestApplySettableArgsWithoutName(t *testing.T) {
	p := plugin.Plugin{Config: plugin.Config{Args: plugin.Args{Settable: []string{"value"}}}}
	err := applySettable(&p, Settable{Name: "", Value: "x"})
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "not found") {
		t.Errorf("applySettable with an empty name = %v, want not found", err)
	}
}
