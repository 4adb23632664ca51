package manager

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
	"github.com/moby/moby/api/types/plugin"
	"github.com/opencontainers/go-digest"

	"github.com/pluginsd/pluginsd/manager/pluginstore"
)

func TestNewNeedsDataRoot(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New with no DataRoot succeeded")
	}
}

func TestCreate(t *testing.T) {
	m, sink := newManager(t)
	ctx := t.Context()
	body := goodContext(t, minimalConfig)
	if err := m.Create(ctx, CreateRequest{Name: "spec-a", Context: bytes.NewReader(body)}); err != nil {
		t.Fatalf("Create: %v", err)
	}

	list, err := m.List(ctx, ListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("List returned %d plugins, want 1", len(list))
	}
	p := list[0]
	if !pluginstore.IsID(p.ID()) {
		t.Errorf("ID %q is not a 64-hex ID", p.ID())
	}
	for _, in := range []string{"spec-a", "spec-a:latest", "docker.io/library/spec-a", p.ID(), p.ID()[:12]} {
		got, err := m.Inspect(ctx, in)
		if err != nil {
			t.Errorf("Inspect(%q): %v", in, err)
			continue
		}
		if got != p {
			t.Errorf("Inspect(%q) returned another record than List", in)
		}
	}
	if p.Name() != "spec-a:latest" || p.Plugin.PluginReference != "spec-a:latest" || p.Plugin.Enabled {
		t.Errorf("Name = %q, PluginReference = %q, Enabled = %v; want spec-a:latest, spec-a:latest, false",
			p.Name(), p.Plugin.PluginReference, p.Plugin.Enabled)
	}
	if p.DockerVersion != testVersion {
		t.Errorf("record DockerVersion = %q, want %q", p.DockerVersion, testVersion)
	}
	wantSettings := plugin.Settings{
		Args: []string{}, Devices: []plugin.Device{}, Env: []string{"DEBUG=0"},
		Mounts: []plugin.Mount{{Name: "data", Destination: "/data", Source: new("/tmp"), Type: "bind", Options: []string{"rbind"}, Settable: []string{"source"}}},
	}
	if diff := cmp.Diff(wantSettings, p.Plugin.Settings); diff != "" {
		t.Errorf("Settings (-want +got):\n%s", diff)
	}

	// rootfs.diff_ids names the layer blob, which exists.
	if len(p.Blobsums) != 1 {
		t.Fatalf("Blobsums = %v, want one layer", p.Blobsums)
	}
	rootfs := p.Plugin.Config.Rootfs
	if rootfs == nil || rootfs.Type != "layers" || len(rootfs.DiffIds) != 1 || rootfs.DiffIds[0] != p.Blobsums[0].String() {
		t.Errorf("Config.Rootfs = %+v, want layers with diff_ids [%s]", rootfs, p.Blobsums[0])
	}
	if _, err := m.bs.Info(ctx, p.Blobsums[0]); err != nil {
		t.Errorf("layer blob: %v", err)
	}
	if diff := cmp.Diff(referenced(p), blobs(t, m)); diff != "" {
		t.Errorf("blob store holds other blobs than the plugin's (-want +got):\n%s", diff)
	}

	// The layer is the gzip of a tar of the rootfs, without the rootfs/ prefix.
	layer, err := m.bs.ReadAll(ctx, p.Blobsums[0], 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if got := layerFiles(t, layer); !cmp.Equal(got, map[string]string{"hello": "hello, plugin\n"}) {
		t.Errorf("layer files = %v", got)
	}

	// The config blob: JSON + "\n", with DockerVersion, and the record's config.
	cfgBlob, err := m.bs.ReadAll(ctx, p.ConfigDigest, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(cfgBlob, []byte("}\n")) {
		t.Errorf("config blob does not end in a newline: %q", cfgBlob)
	}
	if !bytes.Contains(cfgBlob, []byte(`"DockerVersion":"`+testVersion+`"`)) {
		t.Errorf("config blob lacks DockerVersion: %s", cfgBlob)
	}
	blobCfg, dv, err := ParseConfig(cfgBlob)
	if err != nil {
		t.Fatalf("config blob does not parse: %v", err)
	}
	if dv != testVersion {
		t.Errorf("config blob DockerVersion = %q", dv)
	}
	if diff := cmp.Diff(p.Plugin.Config, blobCfg); diff != "" {
		t.Errorf("config blob differs from the record's config (-record +blob):\n%s", diff)
	}

	// The manifest names the config and the layer with their sizes.
	mfBlob, err := m.bs.ReadAll(ctx, p.Manifest, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var mf manifest
	if err := json.Unmarshal(mfBlob, &mf); err != nil {
		t.Fatal(err)
	}
	wantMf := manifest{
		SchemaVersion: 2,
		MediaType:     MediaTypeManifest,
		Config:        descriptor{MediaType: MediaTypePluginConfig, Digest: p.ConfigDigest, Size: int64(len(cfgBlob))},
		Layers:        []descriptor{{MediaType: MediaTypeLayerGzip, Digest: p.Blobsums[0], Size: int64(len(layer))}},
	}
	if diff := cmp.Diff(wantMf, mf); diff != "" {
		t.Errorf("manifest (-want +got):\n%s", diff)
	}

	// The rootfs is extracted.
	b, err := os.ReadFile(filepath.Join(m.ps.RootfsPath(p), "hello"))
	if err != nil || string(b) != "hello, plugin\n" {
		t.Errorf("rootfs/hello = %q, %v", b, err)
	}
	if got := ingest(t, m); len(got) != 0 {
		t.Errorf("ingest after Create: %v", got)
	}
	if diff := cmp.Diff([]string{"create spec-a:latest"}, sink.actions()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}

	// Survives a restart.
	closeManager(t, m)
	m2, err := New(Config{DataRoot: m.cfg.DataRoot, Version: testVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer closeManager(t, m2)
	if err := m2.gc(ctx); err != nil {
		t.Fatal(err)
	}
	p2, err := m2.Inspect(ctx, "spec-a")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p, p2); diff != "" {
		t.Errorf("record after restart (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(referenced(p), blobs(t, m2)); diff != "" {
		t.Errorf("blobs after restart and GC (-want +got):\n%s", diff)
	}
}

// layerFiles returns the regular files of a gzipped tar layer.
func layerFiles(t *testing.T, layer []byte) map[string]string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(layer))
	if err != nil {
		t.Fatalf("layer is not gzip: %v", err)
	}
	tr := tar.NewReader(zr)
	files := map[string]string{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("layer tar: %v", err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[hdr.Name] = string(b)
	}
	return files
}

func TestCreateName(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		want    string
		wantErr string
	}{
		{name: "familiar", input: "spec-a", want: "spec-a:latest"},
		{name: "tagged", input: "spec-a:1.0", want: "spec-a:1.0"},
		{name: "fully qualified", input: "docker.io/library/foo:bar", want: "foo:bar"},
		{name: "registry", input: "localhost:5000/x", want: "localhost:5000/x:latest"},
		{name: "empty", input: "", wantErr: "failed to parse reference : invalid reference format"},
		{name: "uppercase", input: "Spec-B", wantErr: "failed to parse reference Spec-B: invalid reference format: repository name (library/Spec-B) must be lowercase"},
		{name: "digest", input: "foo@sha256:" + strings.Repeat("0", 64), wantErr: "canonical references are not permitted"},
		{name: "tag and digest", input: "foo:1@sha256:" + strings.Repeat("0", 64), wantErr: "canonical references are not permitted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CreateName(tt.input)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("CreateName(%q) = (%q, %v), want error %q", tt.input, got, err, tt.wantErr)
				}
				if !errdefs.IsInvalidArgument(err) {
					t.Errorf("error is not InvalidArgument")
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("CreateName(%q) = (%q, %v), want %q", tt.input, got, err, tt.want)
			}
		})
	}
}

func TestCheckCreate(t *testing.T) {
	m, _ := newManager(t)
	ctx := t.Context()
	mustCreate(t, m, "spec-a", goodContext(t, minimalConfig))
	tests := []struct {
		name  string
		input string
		class func(error) bool
		msg   string
	}{
		{name: "free", input: "spec-b"},
		{name: "taken", input: "spec-a", class: errdefs.IsConflict, msg: "plugin spec-a:latest already exists"},
		{name: "taken, other spelling", input: "docker.io/library/spec-a:latest", class: errdefs.IsConflict, msg: "plugin spec-a:latest already exists"},
		{name: "invalid", input: "Spec-A", class: errdefs.IsInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := m.CheckCreate(ctx, tt.input)
			if tt.class == nil {
				if err != nil {
					t.Fatalf("CheckCreate(%q) = %v", tt.input, err)
				}
				return
			}
			if !tt.class(err) {
				t.Fatalf("CheckCreate(%q) = %v, wrong class", tt.input, err)
			}
			if tt.msg != "" && err.Error() != tt.msg {
				t.Errorf("message = %q, want %q", err.Error(), tt.msg)
			}
		})
	}
	// Create itself refuses the taken name with the same words.
	err := m.Create(ctx, CreateRequest{Name: "spec-a:latest", Context: bytes.NewReader(goodContext(t, minimalConfig))})
	if !errdefs.IsConflict(err) || err.Error() != "plugin spec-a:latest already exists" {
		t.Errorf("Create of a taken name = %v, want Conflict %q", err, "plugin spec-a:latest already exists")
	}
}

func TestCreateBadContextLeavesNothing(t *testing.T) {
	good := goodContext(t, minimalConfig)
	tests := []struct {
		name string
		body []byte
	}{
		{name: "not a tar", body: []byte("this is not a tar archive, not even close, but it is long enough to look at")},
		{name: "empty body", body: nil},
		{name: "truncated tar", body: good[:700]},
		{name: "no config", body: buildContext(t, tarEntry{name: "rootfs/", dir: true}, tarEntry{name: "rootfs/a", body: "a"})},
		{name: "no rootfs", body: buildContext(t, tarEntry{name: "config.json", body: minimalConfig})},
		{name: "config in a subdirectory", body: buildContext(t, tarEntry{name: "ctx/config.json", body: minimalConfig}, tarEntry{name: "rootfs/", dir: true})},
		{name: "invalid config JSON", body: goodContext(t, `{"description":`)},
		{name: "object interface type", body: goodContext(t, `{"interface":{"types":[{"Capability":"x"}]}}`)},
		{name: "relative mount destination", body: goodContext(t, `{"mounts":[{"name":"m","destination":"rel","type":"bind"}]}`)},
		{name: "socket escapes", body: goodContext(t, `{"interface":{"socket":"../x.sock"}}`)},
		{name: "rootfs escapes", body: buildContext(t, tarEntry{name: "config.json", body: minimalConfig}, tarEntry{name: "rootfs/../../x", body: "x"})},
	}
	m, _ := newManager(t)
	ctx := t.Context()
	existing := mustCreate(t, m, "existing", goodContext(t, `{"description":"other"}`))
	wantBlobs := blobs(t, m)
	wantDirs := pluginDirs(t, m)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := m.Create(ctx, CreateRequest{Name: "broken", Context: bytes.NewReader(tt.body)})
			if err == nil {
				t.Fatal("Create succeeded")
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("Create error %v is not InvalidArgument", err)
			}
			if err := m.gc(ctx); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(wantDirs, pluginDirs(t, m)); diff != "" {
				t.Errorf("plugin store (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(wantBlobs, blobs(t, m)); diff != "" {
				t.Errorf("blob store (-want +got):\n%s", diff)
			}
			if got := ingest(t, m); len(got) != 0 {
				t.Errorf("ingest: %v", got)
			}
			if _, err := m.Inspect(ctx, "broken"); !errdefs.IsNotFound(err) {
				t.Errorf("Inspect(bad) = %v, want NotFound", err)
			}
		})
	}
	// The failed creates released the name, and left the other plugin alone.
	mustCreate(t, m, "broken", good)
	if p, err := m.Inspect(ctx, "existing"); err != nil || p != existing {
		t.Errorf("existing plugin after failed creates: %v, %v", p, err)
	}
}

// TestCreateCancelled: a context cancelled before the body is read fails
// the create and leaves nothing behind.
func TestCreateCancelled(t *testing.T) {
	m, _ := newManager(t)
	ctx, cancel := contextWithCancel(t)
	cancel()
	err := m.Create(ctx, CreateRequest{Name: "x", Context: bytes.NewReader(goodContext(t, minimalConfig))})
	if err == nil {
		t.Fatal("Create with a cancelled context succeeded")
	}
	if err := m.gc(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := pluginDirs(t, m); len(got) != 0 {
		t.Errorf("plugin store: %v", got)
	}
	if got := blobs(t, m); len(got) != 0 {
		t.Errorf("blobs: %v", got)
	}
}

func TestCreateIdenticalContentSharesBlobs(t *testing.T) {
	m, _ := newManager(t)
	ctx := t.Context()
	body := goodContext(t, minimalConfig)
	a := mustCreate(t, m, "twin-a", body)
	b := mustCreate(t, m, "twin-b", body)
	if a.ID() == b.ID() {
		t.Fatal("two plugins share an ID")
	}
	if diff := cmp.Diff(referenced(a), referenced(b)); diff != "" {
		t.Fatalf("identical content references different blobs (-a +b):\n%s", diff)
	}
	if diff := cmp.Diff(referenced(a), blobs(t, m)); diff != "" {
		t.Fatalf("blob store (-want +got):\n%s", diff)
	}

	if err := m.Remove(ctx, RemoveRequest{Name: "twin-a"}); err != nil {
		t.Fatal(err)
	}
	if err := m.gc(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(referenced(b), blobs(t, m)); diff != "" {
		t.Errorf("after removing one, shared blobs (-want +got):\n%s", diff)
	}
	if _, err := m.Inspect(ctx, "twin-b"); err != nil {
		t.Errorf("twin-b after removing twin-a: %v", err)
	}

	if err := m.Remove(ctx, RemoveRequest{Name: b.ID()[:12]}); err != nil {
		t.Fatal(err)
	}
	if err := m.gc(ctx); err != nil {
		t.Fatal(err)
	}
	if got := blobs(t, m); len(got) != 0 {
		t.Errorf("after removing both, blobs left: %v", got)
	}
	if got := pluginDirs(t, m); len(got) != 0 {
		t.Errorf("after removing both, plugin store holds %v", got)
	}
}

// TestRemoveCollectsInBackground: Remove's GC pass runs without help.
func TestRemoveCollectsInBackground(t *testing.T) {
	m, _ := newManager(t)
	mustCreate(t, m, "spec-a", goodContext(t, minimalConfig))
	if err := m.Remove(t.Context(), RemoveRequest{Name: "spec-a"}); err != nil {
		t.Fatal(err)
	}
	if !eventually(t, func() bool { return len(blobs(t, m)) == 0 }) {
		t.Errorf("blobs left after Remove: %v", blobs(t, m))
	}
}

func TestConcurrentCreateSameName(t *testing.T) {
	m, _ := newManager(t)
	const n = 8
	body := goodContext(t, minimalConfig)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = m.Create(t.Context(), CreateRequest{Name: "race", Context: bytes.NewReader(body)})
		})
	}
	close(start)
	wg.Wait()
	var ok int
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errdefs.IsConflict(err):
		default:
			t.Errorf("Create error %v is not a Conflict", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d creates succeeded, want 1 (errors: %v)", ok, errs)
	}
	if got := pluginDirs(t, m); len(got) != 1 {
		t.Errorf("plugin store holds %v, want one plugin", got)
	}
	if err := m.gc(t.Context()); err != nil {
		t.Fatal(err)
	}
	p, err := m.Inspect(t.Context(), "race")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(referenced(p), blobs(t, m)); diff != "" {
		t.Errorf("blob store (-want +got):\n%s", diff)
	}
}

func TestSet(t *testing.T) {
	m, _ := newManager(t)
	ctx := t.Context()
	p := mustCreate(t, m, "spec-a", goodContext(t, minimalConfig))

	if err := m.Set(ctx, SetRequest{Name: "spec-a", Args: []string{"DEBUG=5", "data=/srv"}}); err != nil {
		t.Fatalf("Set: %v", err)
	}
	got, _ := m.Inspect(ctx, "spec-a")
	if diff := cmp.Diff([]string{"DEBUG=5"}, got.Plugin.Settings.Env); diff != "" {
		t.Errorf("Settings.Env (-want +got):\n%s", diff)
	}
	if *got.Plugin.Config.Mounts[0].Source != "/srv" || *got.Plugin.Settings.Mounts[0].Source != "/srv" {
		t.Errorf("mount source not set in both Config and Settings")
	}
	if *p.Plugin.Config.Mounts[0].Source != "/tmp" {
		t.Error("Set modified the record returned before it")
	}

	// All or nothing: a failing item leaves the earlier ones unapplied.
	before := got
	err := m.Set(ctx, SetRequest{Name: "spec-a", Args: []string{"DEBUG=7", "UNKNOWN=1"}})
	if !errdefs.IsInvalidArgument(err) || err.Error() != `setting "UNKNOWN" not found in the plugin configuration` {
		t.Fatalf("Set with a bad item = %v", err)
	}
	after, _ := m.Inspect(ctx, "spec-a")
	if after != before {
		t.Errorf("a failed Set changed the record: Env %v", after.Plugin.Settings.Env)
	}

	// No items: nothing to do, nothing stored.
	gen := m.Generation()
	if err := m.Set(ctx, SetRequest{Name: "spec-a"}); err != nil {
		t.Errorf("Set with no items: %v", err)
	}
	if m.Generation() != gen {
		t.Error("Set with no items stored a new record")
	}

	tests := []struct {
		name  string
		req   SetRequest
		class func(error) bool
	}{
		{name: "unknown plugin", req: SetRequest{Name: "nonexist", Args: []string{"DEBUG=1"}}, class: errdefs.IsNotFound},
		{name: "bad format", req: SetRequest{Name: "spec-a", Args: []string{"=1"}}, class: errdefs.IsInvalidArgument},
		{name: "bad name", req: SetRequest{Name: "Spec-A", Args: []string{"DEBUG=1"}}, class: errdefs.IsInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := m.Set(ctx, tt.req); !tt.class(err) {
				t.Errorf("Set = %v, wrong class", err)
			}
		})
	}
}

func TestEnabledPluginConflicts(t *testing.T) {
	m, _ := newManager(t)
	ctx := t.Context()
	p := mustCreate(t, m, "spec-a", goodContext(t, minimalConfig))
	setRecord(t, m, p.ID(), func(r *Plugin) { r.Plugin.Enabled = true })

	for _, args := range [][]string{{"DEBUG=1"}, nil} {
		err := m.Set(ctx, SetRequest{Name: "spec-a", Args: args})
		if !errdefs.IsConflict(err) {
			t.Errorf("Set(%q) on an enabled plugin = %v, want Conflict", args, err)
		} else if want := "cannot set on an active plugin, disable plugin before setting"; err.Error() != want {
			t.Errorf("message = %q, want %q", err.Error(), want)
		}
	}

	err := m.Remove(ctx, RemoveRequest{Name: "spec-a"})
	if !errdefs.IsConflict(err) || err.Error() != "plugin spec-a:latest is enabled" {
		t.Errorf("Remove of an enabled plugin = %v, want Conflict %q", err, "plugin spec-a:latest is enabled")
	}
	if _, err := m.Inspect(ctx, "spec-a"); err != nil {
		t.Errorf("refused Remove deleted the plugin: %v", err)
	}
	if err := m.Remove(ctx, RemoveRequest{Name: "spec-a", Force: true}); err != nil {
		t.Errorf("forced Remove: %v", err)
	}
	if _, err := m.Inspect(ctx, "spec-a"); !errdefs.IsNotFound(err) {
		t.Errorf("Inspect after forced Remove = %v, want NotFound", err)
	}
}

func TestRemove(t *testing.T) {
	m, sink := newManager(t)
	ctx := t.Context()
	mustCreate(t, m, "spec-a", goodContext(t, minimalConfig))
	tests := []struct {
		name  string
		req   RemoveRequest
		class func(error) bool
		msg   string
	}{
		{name: "unknown", req: RemoveRequest{Name: "nonexist"}, class: errdefs.IsNotFound, msg: `plugin "nonexist" not found`},
		{name: "invalid name", req: RemoveRequest{Name: "Spec-A"}, class: errdefs.IsInvalidArgument},
		{name: "tag is case-sensitive", req: RemoveRequest{Name: "spec-a:LATEST"}, class: errdefs.IsNotFound, msg: `plugin "spec-a:LATEST" not found`},
		{name: "by another spelling", req: RemoveRequest{Name: "docker.io/library/spec-a:latest"}},
		{name: "already removed", req: RemoveRequest{Name: "spec-a"}, class: errdefs.IsNotFound, msg: `plugin "spec-a" not found`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := m.Remove(ctx, tt.req)
			if tt.class == nil {
				if err != nil {
					t.Fatalf("Remove: %v", err)
				}
				return
			}
			if !tt.class(err) {
				t.Fatalf("Remove = %v, wrong class", err)
			}
			if tt.msg != "" && err.Error() != tt.msg {
				t.Errorf("message = %q, want %q", err.Error(), tt.msg)
			}
		})
	}
	if diff := cmp.Diff([]string{"create spec-a:latest", "remove docker.io/library/spec-a:latest"}, sink.actions()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestList(t *testing.T) {
	m, _ := newManager(t)
	ctx := t.Context()
	capID := func(s string) plugin.CapabilityID {
		var c plugin.CapabilityID
		if err := c.UnmarshalText([]byte(s)); err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, p := range []struct {
		name    string
		enabled bool
		types   []string
	}{
		{name: "vol:latest", types: []string{"docker.volumedriver/1.0"}},
		{name: "vol-on:latest", enabled: true, types: []string{"docker.volumedriver/1.0"}},
		{name: "notypes:latest"},
		{name: "both:latest", types: []string{"docker.volumedriver/1.0", "docker.authz/1.0"}},
		{name: "net-on:latest", enabled: true, types: []string{"docker.networkdriver/1.0"}},
	} {
		r := &Plugin{Plugin: plugin.Plugin{ID: pluginstore.NewID(), Name: p.name, Enabled: p.enabled}}
		for _, ty := range p.types {
			r.Plugin.Config.Interface.Types = append(r.Plugin.Config.Interface.Types, capID(ty))
		}
		addRecord(t, m, r)
	}
	all := []string{"both:latest", "net-on:latest", "notypes:latest", "vol-on:latest", "vol:latest"}
	tests := []struct {
		name string
		req  ListRequest
		want []string
	}{
		{name: "no filter", req: ListRequest{}, want: all},
		{name: "enabled", req: ListRequest{Enabled: new(true)}, want: []string{"net-on:latest", "vol-on:latest"}},
		{name: "disabled", req: ListRequest{Enabled: new(false)}, want: []string{"both:latest", "notypes:latest", "vol:latest"}},
		{name: "capability exact", req: ListRequest{Capabilities: []string{"volumedriver"}},
			want: []string{"notypes:latest", "vol-on:latest", "vol:latest"}},
		{name: "capability regexp", req: ListRequest{Capabilities: []string{"volume.*"}},
			want: []string{"notypes:latest", "vol-on:latest", "vol:latest"}},
		{name: "capability unanchored", req: ListRequest{Capabilities: []string{"volume"}},
			want: []string{"notypes:latest", "vol-on:latest", "vol:latest"}},
		{name: "capability suffix matches several", req: ListRequest{Capabilities: []string{"driver"}},
			want: []string{"net-on:latest", "notypes:latest", "vol-on:latest", "vol:latest"}},
		{name: "capability is case-sensitive", req: ListRequest{Capabilities: []string{"VolumeDriver"}},
			want: []string{"notypes:latest"}},
		{name: "every type must match", req: ListRequest{Capabilities: []string{"authz"}},
			want: []string{"notypes:latest"}},
		{name: "two values admit two types", req: ListRequest{Capabilities: []string{"volumedriver", "authz"}},
			want: []string{"both:latest", "notypes:latest", "vol-on:latest", "vol:latest"}},
		{name: "prefix is not matched", req: ListRequest{Capabilities: []string{"^docker$"}},
			want: []string{"notypes:latest"}},
		{name: "invalid regexp matches exactly only", req: ListRequest{Capabilities: []string{"[volumedriver"}},
			want: []string{"notypes:latest"}},
		{name: "enabled and capability", req: ListRequest{Enabled: new(true), Capabilities: []string{"volumedriver"}},
			want: []string{"vol-on:latest"}},
		{name: "nothing matches", req: ListRequest{Enabled: new(true), Capabilities: []string{"authz"}}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := m.List(ctx, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, p := range got {
				names = append(names, p.Name())
			}
			if diff := cmp.Diff(tt.want, names); diff != "" {
				t.Errorf("List (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGCKeepsReferencedAndDeletesOrphans(t *testing.T) {
	m, _ := newManager(t)
	ctx := t.Context()
	p := mustCreate(t, m, "spec-a", goodContext(t, minimalConfig))
	orphan, err := m.bs.Put(ctx, []byte("orphan"))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.gc(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(referenced(p), blobs(t, m)); diff != "" {
		t.Errorf("after GC (-want +got):\n%s", diff)
	}
	if _, err := m.bs.Info(ctx, orphan); !errdefs.IsNotFound(err) {
		t.Errorf("orphan blob: %v, want NotFound", err)
	}
	// An orphan left by a kill is collected when the manager starts.
	orphan2 := digest.FromString("left by a kill")
	if err := os.WriteFile(filepath.Join(m.cfg.DataRoot, "blobs", "sha256", orphan2.Encoded()), []byte("left by a kill"), 0o444); err != nil {
		t.Fatal(err)
	}
	closeManager(t, m)
	m2, err := New(Config{DataRoot: m.cfg.DataRoot})
	if err != nil {
		t.Fatal(err)
	}
	defer closeManager(t, m2)
	if !eventually(t, func() bool { _, err := m2.bs.Info(ctx, orphan2); return errdefs.IsNotFound(err) }) {
		t.Error("start-up GC did not collect the orphan")
	}
	if diff := cmp.Diff(referenced(p), blobs(t, m2)); diff != "" {
		t.Errorf("after start-up GC (-want +got):\n%s", diff)
	}
}

// TestCreateGzipContext: a gzipped context makes the same plugin content as
// the plain tar, down to the layer bytes, so the two share blobs.
func TestCreateGzipContext(t *testing.T) {
	m, _ := newManager(t)
	plain := goodContext(t, minimalConfig)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	a := mustCreate(t, m, "plain", plain)
	b := mustCreate(t, m, "gzipped", gz.Bytes())
	if diff := cmp.Diff(referenced(a), referenced(b)); diff != "" {
		t.Errorf("gzipped context gave other blobs (-plain +gzipped):\n%s", diff)
	}
	if diff := cmp.Diff(a.Plugin.Config, b.Plugin.Config); diff != "" {
		t.Errorf("configs differ (-plain +gzipped):\n%s", diff)
	}
}

// TestDataRootLock: a second manager on the same data root fails to start
// while the first runs, and starts once it is closed.
func TestDataRootLock(t *testing.T) {
	m, _ := newManager(t)
	if m2, err := New(Config{DataRoot: m.cfg.DataRoot}); err == nil {
		closeManager(t, m2)
		t.Fatal("a second manager started on a data root in use")
	} else if !strings.Contains(err.Error(), "in use by another pluginsd") {
		t.Errorf("second New error = %v", err)
	}
	closeManager(t, m)
	m3, err := New(Config{DataRoot: m.cfg.DataRoot})
	if err != nil {
		t.Fatalf("New after Close: %v", err)
	}
	closeManager(t, m3)
}
