package integration

// All or nothing under registry faults: a reverse proxy in front of a
// registrytest registry breaks one response per rule (a connection cut
// mid-layer, 500s, a layer with the wrong bytes, too few or too many, a
// truncated manifest, a config that is not JSON or not its digest, an
// unknown layer type, a layer escaping its rootfs, 401s), and for each fault
// a pull and an upgrade must fail cleanly: a real status or an in-stream
// error, no plugin record, no staging or ingest leftovers, the upgraded
// plugin untouched, only referenced blobs, and a retry without the fault
// succeeds. Then: the real binary killed with SIGKILL in the middle of a
// pull and of an upgrade and restarted, a client that goes away mid-pull,
// and a shared layer download whose leader fails.

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/manifest/schema2"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pluginsd/pluginsd/integration/registrytest"
)

// ftProxy is a reverse proxy in front of a registry that applies the first
// matching rule to each request and passes the others through.
type ftProxy struct {
	srv      *httptest.Server
	upstream string // the registry's base URL
	client   *http.Client

	mu    sync.Mutex
	rules []ftRule       // guarded by mu
	hits  map[string]int // guarded by mu; requests each rule answered, by name
}

// ftRule breaks the responses to requests for path (any method).
type ftRule struct {
	name string
	path string
	act  func(p *ftProxy, w http.ResponseWriter, r *http.Request)
}

func ftNewProxy(t testing.TB, reg *registrytest.Registry) *ftProxy {
	t.Helper()
	p := &ftProxy{upstream: reg.URL, client: &http.Client{}, hits: map[string]int{}}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

// host is the proxy's registry host; ref names repoTag behind it.
func (p *ftProxy) host() string              { return p.srv.Listener.Addr().String() }
func (p *ftProxy) ref(repoTag string) string { return p.host() + "/" + repoTag }

// set replaces the rules (none: a transparent proxy).
func (p *ftProxy) set(rules ...ftRule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = rules
}

func (p *ftProxy) hit(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hits[name]
}

func (p *ftProxy) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	var rule *ftRule
	for i := range p.rules {
		if p.rules[i].path == r.URL.Path {
			rule = &p.rules[i]
			p.hits[rule.name]++
			break
		}
	}
	p.mu.Unlock()
	if rule != nil {
		rule.act(p, w, r)
		return
	}
	resp, err := p.fetch(r, r.Method)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	ftCopyHeader(w.Header(), resp.Header)
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// fetch sends r to the registry with method, keeping its headers and body.
func (p *ftProxy) fetch(r *http.Request, method string) (*http.Response, error) {
	u := p.upstream + r.URL.RequestURI()
	var body io.Reader
	if r.Body != nil && method != http.MethodGet && method != http.MethodHead {
		body = r.Body
	}
	req, err := http.NewRequestWithContext(r.Context(), method, u, body)
	if err != nil {
		return nil, err
	}
	req.Header = r.Header.Clone()
	req.ContentLength = r.ContentLength
	if body == nil {
		req.ContentLength = 0
	}
	// Location headers name the registry: rewritten so that uploads come
	// back through the proxy.
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		resp.Header.Set("Location", strings.Replace(loc, p.upstream, p.srv.URL, 1))
	}
	return resp, nil
}

// fetchAll is fetch with GET (whatever the request's method) and the whole
// body read.
func (p *ftProxy) fetchAll(r *http.Request) (*http.Response, []byte, error) {
	resp, err := p.fetch(r, http.MethodGet)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func ftCopyHeader(dst, src http.Header) {
	for k, vs := range src {
		dst[k] = slices.Clone(vs)
	}
}

// ftStatus answers with a registry-style error; challenge, when set, is the
// WWW-Authenticate header.
func ftStatus(code int, challenge string) func(*ftProxy, http.ResponseWriter, *http.Request) {
	return func(_ *ftProxy, w http.ResponseWriter, _ *http.Request) {
		if challenge != "" {
			w.Header().Set("WWW-Authenticate", challenge)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"errors":[{"code":"UNKNOWN","message":"injected fault: %d"}]}`, code)
	}
}

// ftRewrite serves the registry's response with its body transformed, and
// Content-Length (and, when fixDigest, Docker-Content-Digest) matching the
// new body, so only the content itself is wrong.
func ftRewrite(fixDigest bool, transform func([]byte) []byte) func(*ftProxy, http.ResponseWriter, *http.Request) {
	return func(p *ftProxy, w http.ResponseWriter, r *http.Request) {
		resp, b, err := p.fetchAll(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		ftCopyHeader(w.Header(), resp.Header)
		if resp.StatusCode == http.StatusOK {
			b = transform(b)
			if fixDigest {
				w.Header().Set("Docker-Content-Digest", digest.FromBytes(b).String())
			}
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		w.WriteHeader(resp.StatusCode)
		if r.Method != http.MethodHead {
			_, _ = w.Write(b)
		}
	}
}

// ftRewriteChunked serves the registry's body transformed, chunked (no
// Content-Length).
func ftRewriteChunked(transform func([]byte) []byte) func(*ftProxy, http.ResponseWriter, *http.Request) {
	return func(p *ftProxy, w http.ResponseWriter, r *http.Request) {
		resp, b, err := p.fetchAll(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		ftCopyHeader(w.Header(), resp.Header)
		w.Header().Del("Content-Length")
		w.WriteHeader(resp.StatusCode)
		if r.Method == http.MethodHead {
			return
		}
		w.(http.Flusher).Flush()
		_, _ = w.Write(transform(b))
	}
}

// ftShortChunked serves all but the last cut bytes of the registry's body,
// chunked (no Content-Length), so the client only learns at the end.
func ftShortChunked(cut int) func(*ftProxy, http.ResponseWriter, *http.Request) {
	return func(p *ftProxy, w http.ResponseWriter, r *http.Request) {
		resp, b, err := p.fetchAll(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		ftCopyHeader(w.Header(), resp.Header)
		w.Header().Del("Content-Length")
		w.WriteHeader(resp.StatusCode)
		if r.Method == http.MethodHead {
			return
		}
		w.(http.Flusher).Flush() // headers out first: the body goes chunked
		_, _ = w.Write(b[:len(b)-cut])
	}
}

// ftDrop sends the registry's headers (with the full Content-Length) and the
// first n bytes, then cuts the connection.
func ftDrop(n int) func(*ftProxy, http.ResponseWriter, *http.Request) {
	return func(p *ftProxy, w http.ResponseWriter, r *http.Request) {
		resp, b, err := p.fetchAll(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		ftCopyHeader(w.Header(), resp.Header)
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		w.WriteHeader(resp.StatusCode)
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(b[:n])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // net/http closes the connection
	}
}

// ftServe answers with body as a manifest of mediaType (a substitute for
// what the registry holds under that path).
func ftServe(mediaType string, body []byte) func(*ftProxy, http.ResponseWriter, *http.Request) {
	return func(_ *ftProxy, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", mediaType)
		w.Header().Set("Docker-Content-Digest", digest.FromBytes(body).String())
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write(body)
		}
	}
}

// ftStall streams the registry's body: the first n bytes at once, then
// nothing until release is closed (or the client goes away), then the rest.
func ftStall(n int, release <-chan struct{}) func(*ftProxy, http.ResponseWriter, *http.Request) {
	return func(p *ftProxy, w http.ResponseWriter, r *http.Request) {
		resp, b, err := p.fetchAll(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		ftCopyHeader(w.Header(), resp.Header)
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		w.WriteHeader(resp.StatusCode)
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(b[:n])
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			p.mu.Lock()
			p.hits["gone"]++ // the puller dropped its registry connection
			p.mu.Unlock()
			return
		}
		_, _ = w.Write(b[n:])
	}
}

// ftLayer is a gzip tar layer with a VARIANT file and size bytes of
// incompressible data (seeded by variant), compressed at level.
func ftLayer(t testing.TB, variant string, size, level int) []byte {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	files := []struct {
		name string
		body []byte
	}{{"VARIANT", []byte(variant)}, {"blob", ftRandom(variant, size)}}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var gb bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gb, level)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(tb.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return gb.Bytes()
}

func ftRandom(seed string, n int) []byte {
	var s [32]byte
	copy(s[:], seed)
	b := make([]byte, n)
	rng := rand.NewChaCha8(s)
	_, _ = rng.Read(b)
	return b
}

// ftConfig is a plugin config with host network and caps.
func ftConfig(desc string, caps ...string) []byte {
	c, _ := json.Marshal(caps)
	return []byte(`{"description":"` + desc + `","documentation":"https://example.invalid/ft","entrypoint":["/testplugin"],` +
		`"env":[{"name":"DEBUG","settable":["value"],"value":"0"}],` +
		`"interface":{"socket":"tp.sock","types":["docker.volumedriver/1.0"]},"network":{"type":"host"},"linux":{"capabilities":` + string(c) + `}}`)
}

// ftManifest is a docker schema2 manifest of config and layers.
func ftManifest(t testing.TB, config ocispec.Descriptor, layers ...ocispec.Descriptor) []byte {
	t.Helper()
	b, err := json.Marshal(struct {
		SchemaVersion int                  `json:"schemaVersion"`
		Config        ocispec.Descriptor   `json:"config"`
		Layers        []ocispec.Descriptor `json:"layers"`
		MediaType     string               `json:"mediaType"`
	}{2, config, layers, schema2.MediaTypeManifest})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ftResp is one answer of the daemon.
type ftResp struct {
	status int
	header http.Header
	body   string
}

func (r ftResp) String() string { return fmt.Sprintf("%d %q", r.status, r.body) }

// ftDo sends one request to the daemon listening on sock.
func ftDo(t testing.TB, sock, method, path, body string, header map[string]string) ftResp {
	t.Helper()
	r, err := ftDoErr(t.Context(), sock, method, path, body, header)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

func ftDoErr(ctx context.Context, sock, method, path, body string, header map[string]string) (ftResp, error) {
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "unix", sock)
	}}}
	defer c.CloseIdleConnections()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://pluginsd"+path, rd)
	if err != nil {
		return ftResp{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return ftResp{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return ftResp{}, err
	}
	return ftResp{status: resp.StatusCode, header: resp.Header, body: string(b)}, nil
}

// ftPrivileges returns the privileges body of remote (the CLI echoes it).
func ftPrivileges(t testing.TB, sock, remote string) string {
	t.Helper()
	r := ftDo(t, sock, "GET", "/plugins/privileges?remote="+url.QueryEscape(remote), "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("privileges of %s: %s", remote, r)
	}
	return r.body
}

func ftPull(t testing.TB, sock, remote, name, privs string) ftResp {
	t.Helper()
	return ftDo(t, sock, "POST", "/plugins/pull?remote="+url.QueryEscape(remote)+"&name="+url.QueryEscape(name), privs, nil)
}

func ftUpgrade(t testing.TB, sock, name, remote, privs string) ftResp {
	t.Helper()
	return ftDo(t, sock, "POST", "/plugins/"+name+"/upgrade?remote="+url.QueryEscape(remote), privs, nil)
}

// ftStreamLines splits a progress stream into its JSON lines.
func ftStreamLines(body string) []string {
	var out []string
	for l := range strings.SplitSeq(body, "\r\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// ftStreamError returns the errorDetail message of line ("" if none).
func ftStreamError(line string) string {
	var m struct {
		ErrorDetail *struct{ Message string } `json:"errorDetail"`
	}
	if json.Unmarshal([]byte(line), &m) != nil || m.ErrorDetail == nil {
		return ""
	}
	return m.ErrorDetail.Message
}

// ftWantOK checks a pull or upgrade succeeded: 200, no error in the stream.
func ftWantOK(t testing.TB, what string, r ftResp) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("%s: %s", what, r)
	}
	for _, l := range ftStreamLines(r.body) {
		if msg := ftStreamError(l); msg != "" {
			t.Fatalf("%s: in-stream error %q in %s", what, msg, r.body)
		}
	}
}

// ftWantFailure checks a pull or upgrade failed in one of the two ways a
// client can see: a real 4xx/5xx status with a JSON message, or a 200 stream
// whose last line, and only that one, is an errorDetail. It returns the
// message and whether it came in-stream.
func ftWantFailure(t testing.TB, what string, r ftResp) (msg string, inStream bool) {
	t.Helper()
	switch {
	case r.status >= 400 && r.status < 600:
		var e struct{ Message string }
		if err := json.Unmarshal([]byte(r.body), &e); err != nil || e.Message == "" {
			t.Errorf("%s: status %d without a JSON message: %q", what, r.status, r.body)
		}
		return e.Message, false
	case r.status == http.StatusOK:
		lines := ftStreamLines(r.body)
		if len(lines) == 0 {
			t.Errorf("%s: 200 with an empty stream", what)
			return "", true
		}
		for _, l := range lines[:len(lines)-1] {
			if m := ftStreamError(l); m != "" {
				t.Errorf("%s: error line %q before the last line", what, l)
			}
		}
		msg = ftStreamError(lines[len(lines)-1])
		if msg == "" {
			t.Errorf("%s: succeeded, want a failure: %s", what, r.body)
		}
		return msg, true
	default:
		t.Errorf("%s: status %d: %q", what, r.status, r.body)
		return "", false
	}
}

// ftRecord is the part of a plugin record (spec §3.6) naming its blobs and
// rootfs.
type ftRecord struct {
	Plugin struct {
		ID   string `json:"Id"`
		Name string
	} `json:"plugin"`
	Config    string
	Blobsums  []string
	Manifest  string
	RootfsDir string
}

// ftCheckClean checks that the daemon lists exactly the plugins want and
// that its data root holds nothing else: under plugins/ one directory per
// plugin with its record and exactly one rootfs* directory (the one its
// record names), no .tmp-* or other leftover, an empty blobs/ingest, and,
// once the asynchronous GC has had its chance, exactly the blobs the plugins
// reference.
func ftCheckClean(t testing.TB, sock, data string, want ...string) {
	t.Helper()
	r := ftDo(t, sock, "GET", "/plugins", "", nil)
	var ps []struct{ Id, Name string }
	if err := json.Unmarshal([]byte(r.body), &ps); r.status != http.StatusOK || err != nil {
		t.Fatalf("list: %s %v", r, err)
	}
	ids := map[string]bool{}
	names := []string{}
	for _, p := range ps {
		ids[p.Id] = true
		names = append(names, p.Name)
	}
	slices.Sort(names)
	want = append([]string{}, want...)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("plugins listed: %v, want %v", names, want)
	}
	entries, err := os.ReadDir(filepath.Join(data, "plugins"))
	if err != nil {
		t.Fatal(err)
	}
	refs := map[string]bool{}
	for _, e := range entries {
		if !ids[e.Name()] {
			t.Errorf("leftover in plugins/: %s", e.Name())
			continue
		}
		dir := filepath.Join(data, "plugins", e.Name())
		b, err := os.ReadFile(filepath.Join(dir, "config.json"))
		var rec ftRecord
		if err == nil {
			err = json.Unmarshal(b, &rec)
		}
		if err != nil {
			t.Errorf("record of %s: %v", e.Name(), err)
			continue
		}
		for _, dg := range append([]string{rec.Config, rec.Manifest}, rec.Blobsums...) {
			refs[strings.TrimPrefix(dg, "sha256:")] = true
		}
		keep := rec.RootfsDir
		if keep == "" {
			keep = "rootfs"
		}
		des, _ := os.ReadDir(dir)
		var rootfses []string
		for _, de := range des {
			if strings.HasPrefix(de.Name(), "rootfs") {
				rootfses = append(rootfses, de.Name())
			}
		}
		if !slices.Equal(rootfses, []string{keep}) {
			t.Errorf("plugin %s: rootfs dirs %v, want only %s", rec.Plugin.Name, rootfses, keep)
		}
	}
	if ing, err := os.ReadDir(filepath.Join(data, "blobs", "ingest")); err != nil || len(ing) != 0 {
		t.Errorf("blobs/ingest: %d entries (%v), want none", len(ing), err)
	}
	wantBlobs := slices.Sorted(func(yield func(string) bool) {
		for k := range refs {
			if !yield(k) {
				return
			}
		}
	})
	var have []string
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		have = nil
		es, err := os.ReadDir(filepath.Join(data, "blobs", "sha256"))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			have = append(have, e.Name())
		}
		if slices.Equal(have, wantBlobs) || time.Now().After(deadline) {
			break
		}
	}
	if !slices.Equal(have, wantBlobs) {
		t.Errorf("blobs/sha256 holds %v, want exactly the referenced %v", have, wantBlobs)
	}
}

// ftFixture is what every fault case pulls: ft/p:1.0 (installed first) and
// ft/p:2.0 (the target of the faulty pull and upgrade), plus the pieces of
// substitute manifests for 2.0.
type ftFixture struct {
	reg         *registrytest.Registry
	config2     ocispec.Descriptor
	layer2      ocispec.Descriptor
	layer2Bytes []byte
	badConfig   ocispec.Descriptor // a "plugin config" blob that is not JSON
	escapeLayer ocispec.Descriptor // a layer with a good file and then a "../" entry
}

// ftEscapingLayer is a gzip tar whose second entry climbs out of the rootfs.
func ftEscapingLayer(t testing.TB) []byte {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for _, name := range []string{"VARIANT", "../../ft-escaped"} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: 2, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte("x\n")); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var gb bytes.Buffer
	zw := gzip.NewWriter(&gb)
	if _, err := zw.Write(tb.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return gb.Bytes()
}

func ftNewFixture(t *testing.T) *ftFixture {
	t.Helper()
	reg := registrytest.New(t, registrytest.Options{})
	f := &ftFixture{reg: reg}
	reg.PushPlugin(t, "ft/p:1.0", ftConfig("ft v1", "CAP_SYS_ADMIN"), ftLayer(t, "ft v1", 256<<10, gzip.DefaultCompression))
	cfg2 := ftConfig("ft v2", "CAP_SYS_ADMIN", "CAP_NET_ADMIN")
	f.layer2Bytes = ftLayer(t, "ft v2", 256<<10, gzip.DefaultCompression)
	reg.PushPlugin(t, "ft/p:2.0", cfg2, f.layer2Bytes)
	f.config2 = ocispec.Descriptor{MediaType: schema2.MediaTypePluginConfig, Digest: digest.FromBytes(cfg2), Size: int64(len(cfg2))}
	f.layer2 = ocispec.Descriptor{MediaType: schema2.MediaTypeLayer, Digest: digest.FromBytes(f.layer2Bytes), Size: int64(len(f.layer2Bytes))}
	f.badConfig = reg.PushBlob(t, "ft/p", schema2.MediaTypePluginConfig, []byte("this is not JSON {"))
	f.escapeLayer = reg.PushBlob(t, "ft/p", schema2.MediaTypeLayer, ftEscapingLayer(t))
	return f
}

func (f *ftFixture) blobPath(d ocispec.Descriptor) string {
	return "/v2/ft/p/blobs/" + d.Digest.String()
}

const ftManifestPath = "/v2/ft/p/manifests/2.0"

// ftFault is one broken registry behaviour and where it should surface.
type ftFault struct {
	name string
	rule func(f *ftFixture, t testing.TB) ftRule
	// inStream: the failure comes after the first progress line (an
	// errorDetail line), else before it (a real status).
	inStream bool
	status   int    // the status, when not in-stream (0: any 4xx/5xx)
	msg      string // a substring of the error message
}

func ftFaults() []ftFault {
	layer := func(name string, act func(*ftProxy, http.ResponseWriter, *http.Request)) func(*ftFixture, testing.TB) ftRule {
		return func(f *ftFixture, _ testing.TB) ftRule {
			return ftRule{name: name, path: f.blobPath(f.layer2), act: act}
		}
	}
	manifest := func(name string, act func(*ftProxy, http.ResponseWriter, *http.Request)) func(*ftFixture, testing.TB) ftRule {
		return func(*ftFixture, testing.TB) ftRule { return ftRule{name: name, path: ftManifestPath, act: act} }
	}
	return []ftFault{
		// A connection cut mid-layer is a transfer failure naming the blob,
		// not "invalid tar".
		{name: "DropMidLayer", rule: layer("drop", ftDrop(64<<10)), inStream: true, msg: "blob sha256:"},
		{name: "Layer500", rule: layer("layer500", ftStatus(500, "")), inStream: true, msg: "injected fault: 500"},
		{name: "Layer404", rule: layer("layer404", ftStatus(404, "")), inStream: true, msg: "not found"},
		{name: "Manifest500", rule: manifest("manifest500", ftStatus(500, "")), status: http.StatusServiceUnavailable, msg: "injected fault: 500"},
		{name: "LayerWrongBytes", rule: layer("wrongbytes", ftRewrite(false, func(b []byte) []byte {
			// A different gzip MTIME: the layer still decompresses and
			// extracts; only its digest is wrong.
			b = slices.Clone(b)
			b[4] ^= 0x5a
			return b
		})), inStream: true, msg: "digest"},
		{name: "LayerShort", rule: layer("short", ftRewrite(false, func(b []byte) []byte { return b[:len(b)-1000] })), inStream: true},
		{name: "LayerShortChunked", rule: layer("shortchunked", ftShortChunked(1000)), inStream: true},
		{name: "ManifestTruncated", rule: manifest("truncated", ftRewrite(true, func(b []byte) []byte { return b[:len(b)/2] })), status: http.StatusBadRequest, msg: "manifest"},
		{name: "ConfigNotJSON", rule: func(f *ftFixture, t testing.TB) ftRule {
			return ftRule{name: "badconfig", path: ftManifestPath, act: ftServe(schema2.MediaTypeManifest, ftManifest(t, f.badConfig, f.layer2))}
		}, status: http.StatusBadRequest, msg: "config"},
		{name: "UnknownLayerType", rule: func(f *ftFixture, t testing.TB) ftRule {
			l := f.layer2
			l.MediaType = "application/vnd.example.unknown.layer"
			return ftRule{name: "unknownlayer", path: ftManifestPath, act: ftServe(schema2.MediaTypeManifest, ftManifest(t, f.config2, l))}
		}, status: http.StatusBadRequest, msg: "application/vnd.example.unknown.layer"},
		{name: "LayerLongChunked", rule: layer("longchunked", ftRewriteChunked(func(b []byte) []byte { return append(slices.Clone(b), make([]byte, 4096)...) })), inStream: true, msg: "more than the expected"},
		{name: "ConfigWrongBytes", rule: func(f *ftFixture, _ testing.TB) ftRule {
			return ftRule{name: "configbytes", path: f.blobPath(f.config2), act: ftRewrite(false, func(b []byte) []byte {
				return bytes.Replace(b, []byte("ft v2"), []byte("ft v3"), 1) // still JSON, same length
			})}
		}, status: http.StatusBadGateway, msg: "digest"},
		{name: "LayerEscapes", rule: func(f *ftFixture, t testing.TB) ftRule {
			return ftRule{name: "escape", path: ftManifestPath, act: ftServe(schema2.MediaTypeManifest, ftManifest(t, f.config2, f.escapeLayer))}
		}, inStream: true, msg: ".."},
		{name: "Layer401", rule: layer("layer401", ftStatus(401, `Basic realm="ft"`)), inStream: true},
		{name: "Manifest401", rule: manifest("manifest401", ftStatus(401, `Basic realm="ft"`)), status: http.StatusUnauthorized},
	}
}

// TestFaultRegistry runs a pull and an upgrade against each registry fault.
func TestFaultRegistry(t *testing.T) {
	t.Parallel()
	f := ftNewFixture(t)
	for _, fault := range ftFaults() {
		t.Run(fault.name, func(t *testing.T) {
			t.Parallel()
			ftRunFault(t, f, fault)
		})
	}
}

func ftRunFault(t *testing.T, f *ftFixture, fault ftFault) {
	d := startDaemon(t, "")
	data := filepath.Join(d.root, "data")
	px := ftNewProxy(t, f.reg)
	r1, r2 := px.ref("ft/p:1.0"), px.ref("ft/p:2.0")
	privs1, privs2 := ftPrivileges(t, d.sock, r1), ftPrivileges(t, d.sock, r2)
	ftWantOK(t, "install 1.0", ftPull(t, d.sock, r1, "ft-up", privs1))
	if r := ftDo(t, d.sock, "POST", "/plugins/ft-up/set", `["DEBUG=7"]`, nil); r.status != http.StatusNoContent {
		t.Fatalf("set: %s", r)
	}
	before := ftDo(t, d.sock, "GET", "/plugins/ft-up/json", "", nil)
	var p struct{ Id string }
	if err := json.Unmarshal([]byte(before.body), &p); err != nil {
		t.Fatal(err)
	}
	recPath := filepath.Join(data, "plugins", p.Id, "config.json")
	recBefore, err := os.ReadFile(recPath)
	if err != nil {
		t.Fatal(err)
	}

	rule := fault.rule(f, t)
	px.set(rule)
	check := func(what string, r ftResp) {
		t.Helper()
		msg, inStream := ftWantFailure(t, what, r)
		if inStream != fault.inStream {
			t.Errorf("%s: failed in-stream=%v, want %v: %s", what, inStream, fault.inStream, r)
		}
		if !inStream && fault.status != 0 && r.status != fault.status {
			t.Errorf("%s: status %d, want %d: %s", what, r.status, fault.status, r)
		}
		if !strings.Contains(msg, fault.msg) {
			t.Errorf("%s: message %q does not contain %q", what, msg, fault.msg)
		}
		t.Logf("%s: %d in-stream=%v %q", what, r.status, inStream, msg)
	}
	check("upgrade", ftUpgrade(t, d.sock, "ft-up", r2, privs2))
	check("pull", ftPull(t, d.sock, r2, "ft-new", privs2))
	if px.hit(rule.name) == 0 {
		t.Fatalf("the fault %s was never triggered", rule.name)
	}
	after := ftDo(t, d.sock, "GET", "/plugins/ft-up/json", "", nil)
	if after.body != before.body {
		t.Errorf("failed upgrade changed the plugin:\nbefore %s\n after %s", before.body, after.body)
	}
	if rec, err := os.ReadFile(recPath); err != nil || !bytes.Equal(rec, recBefore) {
		t.Errorf("failed upgrade changed the record (%v):\nbefore %s\n after %s", err, recBefore, rec)
	}
	ftCheckClean(t, d.sock, data, "ft-up:latest")
	_ = filepath.WalkDir(filepath.Dir(d.root), func(path string, de fs.DirEntry, err error) error {
		if err == nil && de.Name() == "ft-escaped" {
			t.Errorf("a layer entry escaped the rootfs: %s", path)
		}
		return nil
	})

	// Without the fault, the same requests succeed: nothing was poisoned.
	px.set()
	ftWantOK(t, "pull after the fault", ftPull(t, d.sock, r2, "ft-new", privs2))
	ftWantOK(t, "upgrade after the fault", ftUpgrade(t, d.sock, "ft-up", r2, privs2))
	var up struct {
		Id              string
		PluginReference string
		Settings        struct{ Env []string }
		Config          struct{ Description string }
	}
	if err := json.Unmarshal([]byte(ftDo(t, d.sock, "GET", "/plugins/ft-up/json", "", nil).body), &up); err != nil {
		t.Fatal(err)
	}
	if up.Id != p.Id || up.PluginReference != r2 || !slices.Equal(up.Settings.Env, []string{"DEBUG=7"}) || up.Config.Description != "ft v2" {
		t.Errorf("after the retried upgrade: %+v", up)
	}
	ftCheckClean(t, d.sock, data, "ft-up:latest", "ft-new:latest")
}

// ftProc is the real pluginsd binary running on a temp layout.
type ftProc struct {
	*rsProc
	data string
}

// ftStartBinary runs pluginsdBin on dir (socket, data root and exec root
// under it) and waits until it answers /_ping.
func ftStartBinary(t testing.TB, dir string) *ftProc {
	t.Helper()
	cfgFile := rsWriteFile(t, dir, "empty.json", "{}")
	sock, data := filepath.Join(dir, "s.sock"), filepath.Join(dir, "data")
	p := rsStart(t, sock, "--host", "unix://"+sock, "--data-root", data, "--exec-root", filepath.Join(dir, "exec"),
		"--group", "", "--config-file", cfgFile)
	p.ready(t)
	return &ftProc{rsProc: p, data: data}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *ftProc) kill(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("pluginsd still running 10s after SIGKILL")
	}
}

func ftGlob(pattern string) []string {
	m, _ := filepath.Glob(pattern)
	return m
}

// ftIngest is the number and total size of the files in blobs/ingest.
func ftIngest(data string) (n int, size int64) {
	es, _ := os.ReadDir(filepath.Join(data, "blobs", "ingest"))
	for _, e := range es {
		if fi, err := e.Info(); err == nil {
			size += fi.Size()
		}
	}
	return len(es), size
}

// ftWaitInProgress waits until a pull or upgrade is visibly in progress on
// data: a staging path matching staged, an ingest file for the layer (its
// bytes may still sit in pluginsd's write buffer) and the proxy stalling
// the layer mid-way.
func ftWaitInProgress(t testing.TB, data string, px *ftProxy, staged string) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		s := ftGlob(staged)
		n, size := ftIngest(data)
		if len(s) > 0 && n > 0 && px.hit("stall") > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not visibly in progress: %s %v, ingest %d files %d bytes, stall hits %d", staged, s, n, size, px.hit("stall"))
		}
	}
}

// ftStartStalled starts method path (a pull or an upgrade) in the
// background; the result arrives on the channel.
func ftStartStalled(ctx context.Context, sock, path, body string) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := ftDoErr(ctx, sock, "POST", path, body, nil)
		done <- err
	}()
	return done
}

// ftWantCut checks that a request whose server was killed got no response.
func ftWantCut(t testing.TB, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err == nil {
			t.Error("the killed request got a complete response")
		}
	case <-time.After(10 * time.Second):
		t.Error("the killed request did not return")
	}
}

// TestFaultKillMidPull: SIGKILL of the real binary in the middle of a large
// layer's download, then a restart on the same root: no plugin, no staging
// directory, an empty ingest, no stray blob, and a fresh pull succeeds. The
// same for an upgrade killed mid-layer: the plugin is as it was, with one
// rootfs, and the upgrade then succeeds.
func TestFaultKillMidPull(t *testing.T) {
	t.Parallel()
	reg := registrytest.New(t, registrytest.Options{})
	big1 := ftLayer(t, "ft big 1", 4<<20, gzip.NoCompression)
	big2 := ftLayer(t, "ft big 2", 4<<20, gzip.NoCompression)
	reg.PushPlugin(t, "ft/big:1.0", ftConfig("ft big 1", "CAP_SYS_ADMIN"), big1)
	reg.PushPlugin(t, "ft/big:2.0", ftConfig("ft big 2", "CAP_SYS_ADMIN"), big2)
	px := ftNewProxy(t, reg)
	release := make(chan struct{}) // never closed: the stalled transfers end with their client
	stall := func(layer []byte) ftRule {
		return ftRule{name: "stall", path: "/v2/ft/big/blobs/" + digest.FromBytes(layer).String(), act: ftStall(1<<20, release)}
	}
	r1, r2 := px.ref("ft/big:1.0"), px.ref("ft/big:2.0")

	dir := t.TempDir()
	p := ftStartBinary(t, dir)
	privs1, privs2 := ftPrivileges(t, p.sock, r1), ftPrivileges(t, p.sock, r2)

	// A pull killed mid-layer.
	px.set(stall(big1))
	done := ftStartStalled(t.Context(), p.sock, "/plugins/pull?remote="+url.QueryEscape(r1)+"&name=ft-big", privs1)
	ftWaitInProgress(t, p.data, px, filepath.Join(p.data, "plugins", ".tmp-*"))
	p.kill(t)
	ftWantCut(t, done)
	if s := ftGlob(filepath.Join(p.data, "plugins", ".tmp-*")); len(s) == 0 {
		t.Error("no .tmp-* left by the kill (the test did not catch the pull mid-way)")
	}
	if n, _ := ftIngest(p.data); n == 0 {
		t.Error("no ingest file left by the kill")
	}
	p = ftStartBinary(t, dir)
	if r := ftDo(t, p.sock, "GET", "/plugins", "", nil); r.status != http.StatusOK || r.body != "[]\n" {
		t.Errorf("list after restart: %s", r)
	}
	ftCheckClean(t, p.sock, p.data)
	px.set()
	ftWantOK(t, "pull after restart", ftPull(t, p.sock, r1, "ft-big", privs1))
	ftCheckClean(t, p.sock, p.data, "ft-big:latest")
	if err := ftCompareRootfs(p.data, big1); err != nil {
		t.Error(err)
	}

	// An upgrade killed mid-layer.
	before := ftDo(t, p.sock, "GET", "/plugins/ft-big/json", "", nil).body
	var id struct{ Id string }
	if err := json.Unmarshal([]byte(before), &id); err != nil {
		t.Fatal(err)
	}
	px.set(stall(big2))
	done = ftStartStalled(t.Context(), p.sock, "/plugins/ft-big/upgrade?remote="+url.QueryEscape(r2), privs2)
	ftWaitInProgress(t, p.data, px, filepath.Join(p.data, "plugins", id.Id, "rootfs-*"))
	p.kill(t)
	ftWantCut(t, done)
	p = ftStartBinary(t, dir)
	if after := ftDo(t, p.sock, "GET", "/plugins/ft-big/json", "", nil).body; after != before {
		t.Errorf("the killed upgrade changed the plugin:\nbefore %s\n after %s", before, after)
	}
	ftCheckClean(t, p.sock, p.data, "ft-big:latest")
	if err := ftCompareRootfs(p.data, big1); err != nil {
		t.Error(err)
	}
	px.set()
	ftWantOK(t, "upgrade after restart", ftUpgrade(t, p.sock, "ft-big", r2, privs2))
	ftCheckClean(t, p.sock, p.data, "ft-big:latest")
	if err := ftCompareRootfs(p.data, big2); err != nil {
		t.Error(err)
	}
	var got struct{ Id, PluginReference string }
	if err := json.Unmarshal([]byte(ftDo(t, p.sock, "GET", "/plugins/ft-big/json", "", nil).body), &got); err != nil || got.Id != id.Id || got.PluginReference != r2 {
		t.Errorf("upgraded plugin: %+v %v", got, err)
	}
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Error("pluginsd did not stop on SIGINT")
	}
}

// ftCompareRootfs checks that the single plugin's rootfs/blob equals the one
// in the layer.
func ftCompareRootfs(data string, layer []byte) error {
	zr, err := gzip.NewReader(bytes.NewReader(layer))
	if err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	var want []byte
	for {
		h, err := tr.Next()
		if err != nil {
			return fmt.Errorf("layer has no blob: %v", err)
		}
		if h.Name == "blob" {
			want, _ = io.ReadAll(tr)
			break
		}
	}
	got := ftGlob(filepath.Join(data, "plugins", "*", "rootfs*", "blob"))
	if len(got) != 1 {
		return fmt.Errorf("rootfs blob files: %v", got)
	}
	b, err := os.ReadFile(got[0])
	if err != nil {
		return err
	}
	if !bytes.Equal(b, want) {
		return errors.New("the pulled rootfs/blob differs from the layer's")
	}
	return nil
}

// TestFaultClientGone: a client that goes away in the middle of a pull or
// an upgrade (the registry stalled) stops it: the daemon drops its registry
// connection and cleans up as for any failure, and the retry succeeds.
func TestFaultClientGone(t *testing.T) {
	t.Parallel()
	reg := registrytest.New(t, registrytest.Options{})
	big1 := ftLayer(t, "ft gone 1", 4<<20, gzip.NoCompression)
	big2 := ftLayer(t, "ft gone 2", 4<<20, gzip.NoCompression)
	reg.PushPlugin(t, "ft/big:1.0", ftConfig("ft gone 1", "CAP_SYS_ADMIN"), big1)
	reg.PushPlugin(t, "ft/big:2.0", ftConfig("ft gone 2", "CAP_SYS_ADMIN"), big2)
	px := ftNewProxy(t, reg)
	release := make(chan struct{}) // never closed
	stall := func(layer []byte) ftRule {
		return ftRule{name: "stall", path: "/v2/ft/big/blobs/" + digest.FromBytes(layer).String(), act: ftStall(1<<20, release)}
	}
	r1, r2 := px.ref("ft/big:1.0"), px.ref("ft/big:2.0")
	d := startDaemon(t, "")
	data := filepath.Join(d.root, "data")
	privs1, privs2 := ftPrivileges(t, d.sock, r1), ftPrivileges(t, d.sock, r2)

	gone := func(what, path, body, staged string, want ...string) {
		t.Helper()
		ctx, cancel := context.WithCancel(t.Context())
		done := ftStartStalled(ctx, d.sock, path, body)
		ftWaitInProgress(t, data, px, staged)
		before := px.hit("gone")
		cancel()
		<-done
		for deadline := time.Now().Add(10 * time.Second); px.hit("gone") == before; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the daemon still holds its registry connection 10s after the client left", what)
			}
		}
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			n, _ := ftIngest(data)
			if len(ftGlob(staged)) == 0 && n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: 5s after the client left: %s %v, %d ingest files", what, staged, ftGlob(staged), n)
				break
			}
		}
		ftCheckClean(t, d.sock, data, want...)
	}

	px.set(stall(big1))
	gone("pull", "/plugins/pull?remote="+url.QueryEscape(r1)+"&name=ft-gone", privs1, filepath.Join(data, "plugins", ".tmp-*"))
	px.set()
	ftWantOK(t, "pull after the client left", ftPull(t, d.sock, r1, "ft-gone", privs1))

	before := ftDo(t, d.sock, "GET", "/plugins/ft-gone/json", "", nil).body
	var id struct{ Id string }
	if err := json.Unmarshal([]byte(before), &id); err != nil {
		t.Fatal(err)
	}
	px.set(stall(big2))
	gone("upgrade", "/plugins/ft-gone/upgrade?remote="+url.QueryEscape(r2), privs2, filepath.Join(data, "plugins", id.Id, "rootfs-*"), "ft-gone:latest")
	if after := ftDo(t, d.sock, "GET", "/plugins/ft-gone/json", "", nil).body; after != before {
		t.Errorf("the abandoned upgrade changed the plugin:\nbefore %s\n after %s", before, after)
	}
	px.set()
	ftWantOK(t, "upgrade after the client left", ftUpgrade(t, d.sock, "ft-gone", r2, privs2))
	ftCheckClean(t, d.sock, data, "ft-gone:latest")
	if err := ftCompareRootfs(data, big2); err != nil {
		t.Error(err)
	}
}

// ftLive is a request whose response lines are read as they arrive.
type ftLive struct {
	lines chan string // each line, closed at the end of the body
	done  chan ftResp // the whole response, once the body ended
}

func ftStartLive(t testing.TB, sock, path, body string) *ftLive {
	t.Helper()
	l := &ftLive{lines: make(chan string, 1024), done: make(chan ftResp, 1)}
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "unix", sock)
	}}}
	req, err := http.NewRequestWithContext(t.Context(), "POST", "http://pluginsd"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	go func() {
		defer close(l.lines)
		resp, err := c.Do(req)
		if err != nil {
			l.done <- ftResp{body: err.Error()}
			return
		}
		defer resp.Body.Close()
		var all strings.Builder
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			l.lines <- sc.Text()
		}
		l.done <- ftResp{status: resp.StatusCode, header: resp.Header, body: strings.ReplaceAll(all.String(), "\r\n", "\n")}
	}()
	return l
}

// waitLine waits for a line containing every one of parts.
func (l *ftLive) waitLine(t testing.TB, parts ...string) {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case line, ok := <-l.lines:
			if !ok {
				t.Fatalf("stream ended without a line holding %q", parts)
			}
			if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(line, p) }) {
				return
			}
		case <-timeout:
			t.Fatalf("no line holding %q after 15s", parts)
		}
	}
}

func (l *ftLive) result(t testing.TB) ftResp {
	t.Helper()
	go func() {
		for range l.lines { // drain
		}
	}()
	select {
	case r := <-l.done:
		r.body = strings.ReplaceAll(r.body, "\n", "\r\n")
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("no end of the response after 30s")
		return ftResp{}
	}
}

// TestFaultSharedDownloadFails: two pulls under different names share one
// layer download; the leader's download is cut. The leader fails, the pull
// that was waiting for it downloads the layer itself and succeeds, and only
// its plugin remains.
func TestFaultSharedDownloadFails(t *testing.T) {
	t.Parallel()
	reg := registrytest.New(t, registrytest.Options{})
	layer := ftLayer(t, "ft shared", 1<<20, gzip.NoCompression)
	reg.PushPlugin(t, "ft/shared:1.0", ftConfig("ft shared", "CAP_SYS_ADMIN"), layer)
	px := ftNewProxy(t, reg)
	release := make(chan struct{})
	var once sync.Once
	stallThenDrop := func(p *ftProxy, w http.ResponseWriter, r *http.Request) {
		first := false
		once.Do(func() { first = true })
		if !first { // later requests: the registry's answer
			resp, err := p.fetch(r, r.Method)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			ftCopyHeader(w.Header(), resp.Header)
			w.WriteHeader(resp.StatusCode)
			_, _ = io.Copy(w, resp.Body)
			return
		}
		resp, b, err := p.fetchAll(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		ftCopyHeader(w.Header(), resp.Header)
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(b[:256<<10])
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		panic(http.ErrAbortHandler)
	}
	ldg := digest.FromBytes(layer)
	px.set(ftRule{name: "shared", path: "/v2/ft/shared/blobs/" + ldg.String(), act: stallThenDrop})
	d := startDaemon(t, "")
	remote := px.ref("ft/shared:1.0")
	privs := ftPrivileges(t, d.sock, remote)
	short := ldg.Encoded()[:12]

	leader := ftStartLive(t, d.sock, "/plugins/pull?remote="+url.QueryEscape(remote)+"&name=ft-leader", privs)
	leader.waitLine(t, `"Downloading"`, short)
	follower := ftStartLive(t, d.sock, "/plugins/pull?remote="+url.QueryEscape(remote)+"&name=ft-follower", privs)
	follower.waitLine(t, `"Waiting"`, short)
	close(release)
	if msg, _ := ftWantFailure(t, "leader", leader.result(t)); msg == "" {
		t.Error("the leader's cut download did not fail it")
	}
	ftWantOK(t, "follower", follower.result(t))
	if n := px.hit("shared"); n != 2 {
		t.Errorf("layer requests: %d, want 2 (the cut one and the follower's own)", n)
	}
	ftCheckClean(t, d.sock, filepath.Join(d.root, "data"), "ft-follower:latest")
	if err := ftCompareRootfs(filepath.Join(d.root, "data"), layer); err != nil {
		t.Error(err)
	}
}

// TestFaultDiskFull: an install and a create that fill the disk fail with
// a message naming the cause, leave nothing behind (no plugin, no staging
// directory, no ingest file, no blob), and succeed once there is room. The
// data root is a 16 MiB tmpfs, grown by a remount; the plugin needs twice
// 12 MiB (its rootfs and its layer blob).
func TestFaultDiskFull(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	data := filepath.Join(root, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", data, "tmpfs", 0, "size=16m"); err != nil {
		t.Fatalf("mounting a small tmpfs as the data root (needs root): %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(data, syscall.MNT_DETACH) })

	reg := registrytest.New(t, registrytest.Options{})
	layer := ftLayer(t, "ft full", 12<<20, gzip.NoCompression)
	reg.PushPlugin(t, "ft/full:1.0", ftConfig("ft full", "CAP_SYS_ADMIN"), layer)
	ctxDir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(ctxDir, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "config.json"), ftConfig("ft full create", "CAP_SYS_ADMIN"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "rootfs", "blob"), ftRandom("ft full create", 12<<20), 0o644); err != nil {
		t.Fatal(err)
	}

	d := startDaemon(t, root)
	remote := reg.Ref("ft/full:1.0")
	privs := ftPrivileges(t, d.sock, remote)
	const enospc = "no space left on device"
	msg, _ := ftWantFailure(t, "install on a full disk", ftPull(t, d.sock, remote, "ft-full", privs))
	t.Logf("install on a full disk: %s", msg)
	if !strings.Contains(msg, enospc) {
		t.Errorf("install on a full disk: %q, want it to say %q", msg, enospc)
	}
	ftCheckClean(t, d.sock, data)
	if out, err := d.docker("plugin", "create", "ft-created", ctxDir); err == nil || !strings.Contains(out, enospc) {
		t.Errorf("create on a full disk: %v\n%s\nwant a failure saying %q", err, out, enospc)
	}
	ftCheckClean(t, d.sock, data)

	if err := syscall.Mount("", data, "", syscall.MS_REMOUNT, "size=128m"); err != nil {
		t.Fatal(err)
	}
	ftWantOK(t, "install once there is room", ftPull(t, d.sock, remote, "ft-full", privs))
	d.mustDocker("plugin", "create", "ft-created", ctxDir)
	ftCheckClean(t, d.sock, data, "ft-full:latest", "ft-created:latest")
}
