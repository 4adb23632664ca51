package legacy

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/moby/moby/api/types/plugin"

	"github.com/pluginsd/pluginsd/manager"
)

func record(id, name string) *manager.Plugin {
	return &manager.Plugin{Plugin: plugin.Plugin{ID: id, Name: name}}
}

// layout is a legacy directory and a socket root with one listening
// plugin socket per id.
func layout(t *testing.T, ids ...string) (dir, root string, sockets map[string]string) {
	t.Helper()
	base, err := os.MkdirTemp("", "lg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	dir, root = filepath.Join(base, "legacy"), filepath.Join(base, "sockets")
	sockets = map[string]string{}
	for _, id := range ids {
		s := filepath.Join(root, id, "p.sock")
		if err := os.MkdirAll(filepath.Dir(s), 0o755); err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("unix", s)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		sockets[id] = s
	}
	return dir, root, sockets
}

// dialable checks that path reaches a listening socket (through the link).
func dialable(path string) bool {
	c, err := net.Dial("unix", path)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func TestName(t *testing.T) {
	for in, want := range map[string]string{
		"vol:latest": "vol", "vieux/sshfs:latest": "vieux/sshfs", "foo:1.0": "foo:1.0",
		"localhost:5000/foo:latest": "localhost:5000/foo", "localhost:5000/foo:2": "localhost:5000/foo:2",
	} {
		if got := Name(in); got != want {
			t.Errorf("Name(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestUpDown(t *testing.T) {
	dir, root, socks := layout(t, "a1", "b2")
	l, err := New(dir, root)
	if err != nil {
		t.Fatal(err)
	}
	l.Up(record("a1", "vol:latest"), socks["a1"])
	l.Up(record("b2", "vieux/sshfs:1.0"), socks["b2"])
	volLink, nestedLink := filepath.Join(dir, "vol.sock"), filepath.Join(dir, "vieux", "sshfs:1.0.sock")
	for _, p := range []string{volLink, nestedLink} {
		fi, err := os.Stat(p) // follows the link: what an engine's lookup does
		if err != nil || fi.Mode()&os.ModeSocket == 0 || !dialable(p) {
			t.Errorf("%s: %v, mode %v", p, err, fi)
		}
	}
	// Up again (a restart): still one link, still working.
	l.Up(record("a1", "vol:latest"), socks["a1"])
	if !dialable(volLink) {
		t.Error("link broken by a second Up")
	}
	l.Down("b2")
	if _, err := os.Lstat(nestedLink); !os.IsNotExist(err) {
		t.Errorf("link left after Down: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "vieux")); !os.IsNotExist(err) {
		t.Errorf("empty name directory left after Down: %v", err)
	}
	l.Down("b2") // twice (a crash, then a disable): nothing happens
	l.Down("unknown")
	if !dialable(volLink) {
		t.Error("another plugin's link was touched")
	}
	// The socket directories are not touched.
	if _, err := os.Stat(socks["b2"]); err != nil {
		t.Errorf("plugin socket removed: %v", err)
	}
}

// TestForeignFilesAreKept: a legacy plugin's own socket (or any file that
// is not a link of ours) is never replaced or removed.
func TestForeignFilesAreKept(t *testing.T) {
	dir, root, socks := layout(t, "a1")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(dir, "vol.sock")
	if err := os.WriteFile(foreign, []byte("not ours"), 0o644); err != nil {
		t.Fatal(err)
	}
	elsewhere := filepath.Join(dir, "other.sock")
	if err := os.Symlink("/somewhere/else.sock", elsewhere); err != nil {
		t.Fatal(err)
	}
	l, err := New(dir, root)
	if err != nil {
		t.Fatal(err)
	}
	l.Up(record("a1", "vol:latest"), socks["a1"])
	if b, err := os.ReadFile(foreign); err != nil || string(b) != "not ours" {
		t.Errorf("foreign file replaced: %q %v", b, err)
	}
	l.Down("a1")
	if _, err := os.Lstat(foreign); err != nil {
		t.Errorf("foreign file removed: %v", err)
	}
	if _, err := os.Lstat(elsewhere); err != nil {
		t.Errorf("foreign link removed by the sweep: %v", err)
	}
}

// TestSweep: dead links of an earlier run (into the socket root, socket
// gone) are removed at start; links to running plugins stay (the manager
// publishes them again when it adopts them).
func TestSweep(t *testing.T) {
	dir, root, socks := layout(t, "a1")
	if err := os.MkdirAll(filepath.Join(dir, "ns"), 0o755); err != nil {
		t.Fatal(err)
	}
	dead := []string{filepath.Join(dir, "old.sock"), filepath.Join(dir, "ns", "gone.sock")}
	if err := os.Symlink(filepath.Join(root, "a1", "gone.sock"), dead[0]); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "deadbeef", "p.sock"), dead[1]); err != nil {
		t.Fatal(err)
	}
	live := filepath.Join(dir, "live.sock")
	if err := os.Symlink(socks["a1"], live); err != nil {
		t.Fatal(err)
	}
	l, err := New(dir, root)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range dead {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("dead link %s left: %v", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ns")); !os.IsNotExist(err) {
		t.Errorf("emptied directory left: %v", err)
	}
	if !dialable(live) {
		t.Error("the link to a running plugin was removed")
	}
	// Adopted and published again under the same name: replaced in place.
	l.Up(record("a1", "live"), socks["a1"])
	if !dialable(live) {
		t.Error("link broken by publishing an adopted plugin")
	}
	if _, err := os.Stat(socks["a1"]); err != nil {
		t.Errorf("plugin socket touched: %v", err)
	}
}

// TestSameDirectory: the legacy directory may be the socket root itself
// (both default to /run/docker/plugins); plugin directories are left
// alone.
func TestSameDirectory(t *testing.T) {
	_, root, socks := layout(t, "a1")
	l, err := New(root, root)
	if err != nil {
		t.Fatal(err)
	}
	l.Up(record("a1", "vol:latest"), socks["a1"])
	if !dialable(filepath.Join(root, "vol.sock")) {
		t.Error("no link next to the plugin directories")
	}
	if _, err := New(root, root); err != nil { // a restart sweeps
		t.Fatal(err)
	}
	if !dialable(filepath.Join(root, "vol.sock")) || !dialable(socks["a1"]) {
		t.Error("a restart's sweep broke a live link or a plugin socket")
	}
	if err := os.Remove(socks["a1"]); err != nil { // the plugin is gone
		t.Fatal(err)
	}
	if _, err := New(root, root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(root, "vol.sock")); !os.IsNotExist(err) {
		t.Errorf("dead link left: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "a1")); err != nil {
		t.Errorf("plugin directory touched: %v", err)
	}
}

func TestPathRefusesEscapes(t *testing.T) {
	l := &Links{dir: "/run/docker/plugins"}
	for _, name := range []string{"../x", "a/../../x", "/abs", "a//b", "./a", "", ":latest"} {
		if p, err := l.Path(name); err == nil {
			t.Errorf("Path(%q) = %q, want an error", name, p)
		}
	}
}
