package manager

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/pluginsd/pluginsd/manager/pluginstore"
)

// testVersion is the Version given to test managers; create records it as
// DockerVersion in config blobs.
const testVersion = "pluginsd-test"

// minimalConfig is a valid config.json with one interface type.
const minimalConfig = `{"description":"test plugin","entrypoint":["/hello"],` +
	`"interface":{"socket":"p.sock","types":["docker.volumedriver/1.0"]},` +
	`"env":[{"name":"DEBUG","settable":["value"],"value":"0"}],` +
	`"mounts":[{"name":"data","destination":"/data","source":"/tmp","type":"bind","options":["rbind"],"settable":["source"]}]}`

// tarEntry is one entry of a test build context.
type tarEntry struct {
	name string
	body string
	dir  bool
}

// buildContext returns an uncompressed tar of entries with fixed metadata,
// so equal entries give equal bytes.
func buildContext(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Mode: 0o644, ModTime: mtime, Typeflag: tar.TypeReg, Size: int64(len(e.body))}
		if e.dir {
			hdr = &tar.Header{Name: e.name, Mode: 0o755, ModTime: mtime, Typeflag: tar.TypeDir}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if !e.dir {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// goodContext is a build context with config and a rootfs of one file.
func goodContext(t testing.TB, config string) []byte {
	t.Helper()
	return buildContext(t,
		tarEntry{name: "config.json", body: config},
		tarEntry{name: "rootfs/", dir: true},
		tarEntry{name: "rootfs/hello", body: "hello, plugin\n"},
	)
}

// recordingSink keeps the events it receives.
type recordingSink struct {
	mu     sync.Mutex
	events []Event
}

func (r *recordingSink) Publish(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recordingSink) actions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		out = append(out, e.Action+" "+e.Name)
	}
	return out
}

// newManager starts a manager on a fresh data root and closes it at the end
// of the test.
func newManager(t *testing.T) (*Manager, *recordingSink) {
	t.Helper()
	sink := &recordingSink{}
	m, err := New(Config{DataRoot: t.TempDir(), Version: testVersion, Events: sink})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { closeManager(t, m) })
	// Let the start-up GC pass run now rather than in the middle of a test.
	if err := m.gc(t.Context()); err != nil {
		t.Fatalf("gc: %v", err)
	}
	return m, sink
}

// blobs returns the committed blob digests, sorted.
func blobs(t *testing.T, m *Manager) []digest.Digest {
	t.Helper()
	var out []digest.Digest
	if err := m.bs.Walk(t.Context(), func(d digest.Digest) error {
		out = append(out, d)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// referenced returns the blobs record r refers to, sorted.
func referenced(r *Plugin) []digest.Digest {
	out := append([]digest.Digest{r.ConfigDigest, r.Manifest}, r.Blobsums...)
	slices.Sort(out)
	return slices.Compact(out)
}

// pluginDirs lists the entries of the plugin store's root.
func pluginDirs(t *testing.T, m *Manager) []string {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(m.cfg.DataRoot, "plugins"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// ingest lists the blob store's ingest directory.
func ingest(t *testing.T, m *Manager) []string {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(m.cfg.DataRoot, "blobs", "ingest"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// mustCreate creates a plugin named name from body.
func mustCreate(t *testing.T, m *Manager, name string, body []byte) *Plugin {
	t.Helper()
	if err := m.Create(t.Context(), CreateRequest{Name: name, Context: bytes.NewReader(body)}); err != nil {
		t.Fatalf("Create(%s): %v", name, err)
	}
	p, err := m.Inspect(t.Context(), name)
	if err != nil {
		t.Fatalf("Inspect(%s) after Create: %v", name, err)
	}
	return p
}

// setRecord replaces a plugin's record through the store (to craft states
// such as Enabled that this package cannot reach yet).
func setRecord(t *testing.T, m *Manager, id string, change func(r *Plugin)) {
	t.Helper()
	r, ok := m.ps.Snapshot().Get(id)
	if !ok {
		t.Fatalf("no plugin %s", id)
	}
	next := r.Clone()
	change(next)
	if err := m.ps.Update(next); err != nil {
		t.Fatal(err)
	}
}

// addRecord adds a record built in the test, with an empty rootfs.
func addRecord(t *testing.T, m *Manager, r *Plugin) {
	t.Helper()
	staged, err := m.ps.Stage()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(pluginstore.StagedRootfs(staged), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m.ps.Add(r, staged); err != nil {
		m.ps.Discard(staged)
		t.Fatal(err)
	}
}

// eventually polls cond for up to five seconds.
func eventually(t *testing.T, cond func() bool) bool {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func contextWithCancel(t *testing.T) (context.Context, context.CancelFunc) {
	t.Helper()
	return context.WithCancel(t.Context())
}

// closed holds the managers closeManager has closed (Close is not
// idempotent: the second call fails on the data-root lock file).
var closed sync.Map

// closeManager closes m once; later calls do nothing.
func closeManager(t *testing.T, m *Manager) {
	t.Helper()
	if _, done := closed.LoadOrStore(m, true); done {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}
