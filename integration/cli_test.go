package integration

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestCLICreateInspectList drives create, ls and inspect with the stock CLI
// and checks what a user sees.
func TestCLICreateInspectList(t *testing.T) {
	d := startDaemon(t, "")
	src := t.TempDir()
	dir := pluginDir(t, volConfig(src))

	if out := d.mustDocker("plugin", "create", "vol", dir); out != "vol" {
		t.Errorf("create printed %q, want vol", out)
	}
	if out := d.mustDocker("plugin", "ls", "--format", "{{.Name}} {{.Enabled}} {{.Description}}"); out != "vol:latest false test volume plugin" {
		t.Errorf("ls = %q", out)
	}
	id := d.mustDocker("plugin", "inspect", "-f", "{{.Id}}", "vol")
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(id) {
		t.Fatalf("id = %q", id)
	}
	for _, name := range []string{"vol", "vol:latest", "docker.io/library/vol:latest", "library/vol", id, id[:12]} {
		if out := d.mustDocker("plugin", "inspect", "-f", "{{.Name}}", name); out != "vol:latest" {
			t.Errorf("inspect %s: name %q", name, out)
		}
	}
	checks := map[string]string{
		"{{json .Config.Entrypoint}} {{.Config.Interface.Socket}} {{json .Config.Interface.Types}}": `["/testplugin"] tp.sock ["docker.volumedriver/1.0"]`,
		"{{json .Settings.Env}} {{json .Config.Linux.Capabilities}} {{.Config.Network.Type}}":       `["MODE=volume","DEBUG=0"] ["CAP_SYS_ADMIN"] none`,
		"{{.Config.Rootfs.Type}} {{len .Config.Rootfs.DiffIds}} {{.PluginReference}}":               "layers 1 vol:latest",
		"{{range .Settings.Mounts}}{{.Name}}:{{.Source}}:{{.Destination}}:{{.Type}}{{end}}":         "data:" + src + ":/data:bind",
	}
	for f, want := range checks {
		if out := d.mustDocker("plugin", "inspect", "-f", f, "vol"); out != want {
			t.Errorf("inspect -f %s = %q, want %q", f, out, want)
		}
	}
	out, err := d.docker("plugin", "inspect", "nosuch")
	if err == nil || !strings.Contains(out, `plugin "nosuch" not found`) {
		t.Errorf("inspect nosuch: err=%v out=%q", err, out)
	}
	out, err = d.docker("plugin", "create", "vol", dir)
	if err == nil || !strings.Contains(out, "plugin vol:latest already exists") {
		t.Errorf("duplicate create: err=%v out=%q", err, out)
	}
	out, err = d.docker("plugin", "create", "dig@sha256:"+strings.Repeat("0", 64), dir)
	if err == nil || !strings.Contains(out, "canonical references are not permitted") {
		t.Errorf("digest create: err=%v out=%q", err, out)
	}
	// Byte-identical content under a second name works (dockerd refuses it:
	// public case B03).
	d.mustDocker("plugin", "create", "vol-copy", dir)
	if out := d.mustDocker("plugin", "ls", "-q", "--no-trunc"); len(strings.Fields(out)) != 2 {
		t.Errorf("ls -q after copy: %q", out)
	}
	// --compress sends a gzip body, which dockerd cannot read.
	d.mustDocker("plugin", "create", "--compress", "vol-gz", dir)
	if out := d.mustDocker("plugin", "inspect", "-f", "{{.Config.Description}}", "vol-gz"); out != "test volume plugin" {
		t.Errorf("gzip create: description %q", out)
	}
	for _, n := range []string{"vol", "vol-copy", "vol-gz"} {
		if out := d.mustDocker("plugin", "rm", n); out != n {
			t.Errorf("rm printed %q", out)
		}
	}
	if out := d.mustDocker("plugin", "ls", "-q"); out != "" {
		t.Errorf("ls after rm: %q", out)
	}
	// Removal leaves nothing of the plugins on disk.
	entries, err := os.ReadDir(filepath.Join(d.root, "data", "plugins"))
	if err != nil || len(entries) != 0 {
		t.Errorf("plugins dir after rm: %v %v", entries, err)
	}
}

// TestCLISet covers docker plugin set for env, mount source, device path
// and args, and its refusals.
func TestCLISet(t *testing.T) {
	d := startDaemon(t, "")
	d.mustDocker("plugin", "create", "set", pluginDir(t, volConfig("/tmp")))
	d.mustDocker("plugin", "create", "args", pluginDir(t, argsConfig))

	d.mustDocker("plugin", "set", "set", "DEBUG=2")
	if out := d.mustDocker("plugin", "inspect", "-f", "{{json .Settings.Env}}", "set"); out != `["MODE=volume","DEBUG=2"]` {
		t.Errorf("env after set: %s", out)
	}
	for args, want := range map[string]string{
		"MODE=authz":          `"MODE" is not settable`,
		"NOPE=1":              `setting "NOPE" not found in the plugin configuration`,
		"data.destination=/x": `"data.destination" is not settable`,
		"=x":                  "invalid format",
	} {
		out, err := d.docker("plugin", "set", "set", args)
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("set %s: err=%v out=%q, want %q", args, err, out, want)
		}
	}
	d.mustDocker("plugin", "set", "set", "data.source=/var/tmp")
	if out := d.mustDocker("plugin", "inspect", "-f", "{{range .Settings.Mounts}}{{.Source}}{{end}} {{range .Config.Mounts}}{{.Source}}{{end}}", "set"); out != "/var/tmp /var/tmp" {
		t.Errorf("mount after set: %s", out)
	}
	d.mustDocker("plugin", "set", "args", "null.path=/dev/zero")
	if out := d.mustDocker("plugin", "inspect", "-f", "{{range .Settings.Devices}}{{.Path}}{{end}}", "args"); out != "/dev/zero" {
		t.Errorf("device after set: %s", out)
	}
	if out := d.mustDocker("plugin", "inspect", "-f", "{{json .Settings.Args}}", "args"); out != `["--one","--two"]` {
		t.Errorf("args: %s", out)
	}
	d.mustDocker("plugin", "set", "args", "flags=--three --four")
	if out := d.mustDocker("plugin", "inspect", "-f", "{{json .Settings.Args}}", "args"); out != `["--three","--four"]` {
		t.Errorf("args after set: %s", out)
	}
	// All or nothing: a failing item leaves the earlier ones unapplied.
	if out, err := d.docker("plugin", "set", "set", "DEBUG=5", "NOPE=1"); err == nil {
		t.Errorf("set with a bad item succeeded: %s", out)
	}
	if out := d.mustDocker("plugin", "inspect", "-f", "{{json .Settings.Env}}", "set"); out != `["MODE=volume","DEBUG=2"]` {
		t.Errorf("env after failed set: %s", out)
	}
}

// TestCLIVersion checks that docker version negotiates with pluginsd.
func TestCLIVersion(t *testing.T) {
	d := startDaemon(t, "")
	out := d.mustDocker("version", "--format", "{{.Server.APIVersion}} {{.Server.Os}}")
	if out != "1.57 linux" {
		t.Errorf("docker version = %q", out)
	}
	// The CLI negotiates down to its own maximum; plugin commands work.
	d.mustDocker("plugin", "ls")
	// A pinned older API version works too.
	out, err := runDocker(t, d.host(), "plugin", "ls")
	if err != nil {
		t.Fatal(out)
	}
	t.Setenv("DOCKER_API_VERSION", "1.25")
	if out, err := d.docker("plugin", "ls", "--format", "{{.Name}}"); err != nil {
		t.Errorf("API 1.25: %v %s", err, out)
	}
}
