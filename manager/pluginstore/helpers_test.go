package pluginstore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/plugin"
	"github.com/opencontainers/go-digest"
)

// Fixed IDs: idA1 and idA2 share the prefix "aaaa" (and much more).
var (
	idSpecA = "5f0c" + strings.Repeat("1", 60)
	idBig   = "b16" + strings.Repeat("2", 61)
	idA1    = strings.Repeat("a", 63) + "1"
	idA2    = strings.Repeat("a", 63) + "2"
)

// newRecord returns a record for a plugin with the given ID and familiar
// name, with enough content that a lossy round trip would show.
func newRecord(id, name string) *Record {
	val := "0"
	src := "/var/tmp"
	return &Record{
		Plugin: plugin.Plugin{
			ID:              id,
			Name:            name,
			PluginReference: name,
			Config: plugin.Config{
				Description: "test plugin " + name,
				Entrypoint:  []string{"/bin/plugin"},
				Env:         []plugin.Env{{Name: "DEBUG", Settable: []string{"value"}, Value: &val}},
				Interface: plugin.Interface{
					Socket: "p.sock",
					Types:  []plugin.CapabilityID{{Prefix: "docker", Capability: "volumedriver", Version: "1.0"}},
				},
				Mounts: []plugin.Mount{{Name: "data", Destination: "/data", Source: &src, Type: "bind", Settable: []string{"source"}}},
				Rootfs: &plugin.RootFS{Type: "layers", DiffIds: []string{digest.FromString(id).String()}},
			},
			Settings: plugin.Settings{Args: []string{}, Devices: []plugin.Device{}, Env: []string{"DEBUG=0"}, Mounts: []plugin.Mount{}},
		},
		DockerVersion: "test",
		ConfigDigest:  digest.FromString("config " + id),
		Blobsums:      []digest.Digest{digest.FromString(id)},
		Manifest:      digest.FromString("manifest " + id),
	}
}

// openStore opens a store on a fresh directory.
func openStore(t testing.TB) (*Store, string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "plugins")
	s, err := Open(root)
	if err != nil {
		t.Fatalf("Open(%s): %v", root, err)
	}
	return s, root
}

// addRecord stages a directory with a rootfs file and adds r.
func addRecord(t *testing.T, s *Store, r *Record) {
	t.Helper()
	if err := tryAdd(s, r); err != nil {
		t.Fatalf("Add(%s, %s): %v", r.ID(), r.Name(), err)
	}
}

// tryAdd stages and adds r, discarding the staged directory on failure.
func tryAdd(s *Store, r *Record) error {
	staged, err := s.Stage()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(StagedRootfs(staged), 0o755); err != nil {
		s.Discard(staged)
		return err
	}
	if err := os.WriteFile(filepath.Join(StagedRootfs(staged), "hello"), []byte("hi"), 0o644); err != nil {
		s.Discard(staged)
		return err
	}
	if err := s.Add(r, staged); err != nil {
		s.Discard(staged)
		return err
	}
	return nil
}

// dirEntries lists the names in dir.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("ReadDir(%s): %v", dir, err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// names returns the names of the records of snap, in snapshot order.
func names(snap *Snapshot) []string {
	var out []string
	for _, r := range snap.All() {
		out = append(out, r.Name())
	}
	return out
}
