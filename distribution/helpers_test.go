package distribution

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote/retry"
)

// fakeRegistry is a small in-memory registry speaking enough of the v2 API
// for unit tests, with hooks to misbehave. The real registry is exercised in
// the integration module.
type fakeRegistry struct {
	t   testing.TB
	srv *httptest.Server

	mu        sync.Mutex
	manifests map[string]fakeObject // guarded by mu; repo + "@" + tag or digest
	blobs     map[digest.Digest][]byte
	uploads   int
	requests  []*http.Request // clones, without bodies

	// hook, when set, sees every request first and reports whether it
	// answered it.
	hook func(w http.ResponseWriter, r *http.Request) bool
}

type fakeObject struct {
	mediaType string
	body      []byte
}

func newFakeRegistry(t testing.TB) *fakeRegistry {
	t.Helper()
	return newFakeRegistryTLS(t, nil)
}

// newFakeRegistryTLS serves over TLS with cfg when it is not nil.
func newFakeRegistryTLS(t testing.TB, cfg *tls.Config) *fakeRegistry {
	t.Helper()
	f := &fakeRegistry{t: t, manifests: map[string]fakeObject{}, blobs: map[digest.Digest][]byte{}}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // TLS handshake failures are expected
	if cfg != nil {
		f.srv.TLS = cfg
		f.srv.StartTLS()
	} else {
		f.srv.Start()
	}
	t.Cleanup(f.srv.Close)
	return f
}

// host is the registry's 127.0.0.1:port.
func (f *fakeRegistry) host() string { return f.srv.Listener.Addr().String() }

// port is the registry's port.
func (f *fakeRegistry) port() string {
	_, p, _ := net.SplitHostPort(f.host())
	return p
}

func (f *fakeRegistry) setHook(h func(w http.ResponseWriter, r *http.Request) bool) {
	f.mu.Lock()
	f.hook = h
	f.mu.Unlock()
}

func (f *fakeRegistry) seen() []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*http.Request(nil), f.requests...)
}

func (f *fakeRegistry) putBlob(mediaType string, b []byte) ocispec.Descriptor {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := digest.FromBytes(b)
	f.blobs[d] = b
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}
}

// putManifest stores body under tag (if not empty) and under its digest.
func (f *fakeRegistry) putManifest(repo, tag, mediaType string, body []byte) ocispec.Descriptor {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := digest.FromBytes(body)
	f.manifests[repo+"@"+d.String()] = fakeObject{mediaType, body}
	if tag != "" {
		f.manifests[repo+"@"+tag] = fakeObject{mediaType, body}
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(body))}
}

// putPlugin stores a schema2 plugin under repo:tag and returns its manifest
// descriptor.
func (f *fakeRegistry) putPlugin(repo, tag string) ocispec.Descriptor {
	cfg := f.putBlob(MediaTypePluginConfig, []byte(`{"Entrypoint":["/plugin"],"Interface":{"Socket":"p.sock","Types":["docker.volumedriver/1.0"]}}`))
	layer := f.putBlob("application/vnd.docker.image.rootfs.diff.tar.gzip", []byte("layer of "+repo+":"+tag))
	return f.putManifest(repo, tag, MediaTypeManifest, manifestJSON(MediaTypeManifest, cfg, layer))
}

func manifestJSON(mediaType string, cfg ocispec.Descriptor, layers ...ocispec.Descriptor) []byte {
	b, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaType,
		"config":        cfg,
		"layers":        layers,
	})
	if err != nil {
		panic(err)
	}
	return b
}

func indexJSON(mediaType string, entries ...ocispec.Descriptor) []byte {
	b, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaType,
		"manifests":     entries,
	})
	if err != nil {
		panic(err)
	}
	return b
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"errors":[{"code":%q,"message":%q}]}`, code, msg)
}

func (f *fakeRegistry) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	clone := r.Clone(r.Context())
	clone.Body = nil
	f.requests = append(f.requests, clone)
	hook := f.hook
	f.mu.Unlock()
	if hook != nil && hook(w, r) {
		return
	}
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	path := strings.TrimPrefix(r.URL.Path, "/v2/")
	if r.URL.Path == "/v2/" {
		return
	}
	if repo, ref, ok := strings.Cut(path, "/manifests/"); ok {
		f.serveManifest(w, r, repo, ref)
		return
	}
	if repo, rest, ok := strings.Cut(path, "/blobs/uploads/"); ok {
		f.serveUpload(w, r, repo, rest)
		return
	}
	if _, ref, ok := strings.Cut(path, "/blobs/"); ok {
		f.mu.Lock()
		b, ok := f.blobs[digest.Digest(ref)]
		f.mu.Unlock()
		if !ok {
			writeErr(w, http.StatusNotFound, "BLOB_UNKNOWN", "blob unknown to registry")
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Docker-Content-Digest", ref)
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		if r.Method == http.MethodGet {
			w.Write(b)
		}
		return
	}
	writeErr(w, http.StatusNotFound, "NAME_UNKNOWN", "repository name not known to registry")
}

func (f *fakeRegistry) serveManifest(w http.ResponseWriter, r *http.Request, repo, ref string) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		f.mu.Lock()
		m, ok := f.manifests[repo+"@"+ref]
		f.mu.Unlock()
		if !ok {
			writeErr(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest unknown")
			return
		}
		w.Header().Set("Content-Type", m.mediaType)
		w.Header().Set("Docker-Content-Digest", digest.FromBytes(m.body).String())
		w.Header().Set("Content-Length", strconv.Itoa(len(m.body)))
		if r.Method == http.MethodGet {
			w.Write(m.body)
		}
	case http.MethodPut:
		body, _ := io.ReadAll(r.Body)
		d := f.putManifest(repo, ref, r.Header.Get("Content-Type"), body)
		w.Header().Set("Docker-Content-Digest", d.Digest.String())
		w.WriteHeader(http.StatusCreated)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func (f *fakeRegistry) serveUpload(w http.ResponseWriter, r *http.Request, repo, id string) {
	switch r.Method {
	case http.MethodPost:
		f.mu.Lock()
		f.uploads++
		n := f.uploads
		f.mu.Unlock()
		w.Header().Set("Location", fmt.Sprintf("/v2/%s/blobs/uploads/u%d?state=x", repo, n))
		w.WriteHeader(http.StatusAccepted)
	case http.MethodPut:
		want := digest.Digest(r.URL.Query().Get("digest"))
		var buf bytes.Buffer
		if _, err := io.Copy(&buf, r.Body); err != nil {
			return
		}
		if digest.FromBytes(buf.Bytes()) != want {
			writeErr(w, http.StatusBadRequest, "DIGEST_INVALID", "provided digest did not match uploaded content")
			return
		}
		f.putBlob("", buf.Bytes())
		w.Header().Set("Docker-Content-Digest", want.String())
		w.WriteHeader(http.StatusCreated)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

// noRetries keeps failing tests fast.
var noRetries = &retry.GenericPolicy{Retryable: retry.DefaultPredicate, Backoff: retry.DefaultBackoff, MaxRetry: 0}

// fastRetries is the production predicate with short waits.
var fastRetries = &retry.GenericPolicy{
	Retryable: retry.DefaultPredicate,
	Backoff:   retry.ExponentialBackoff(5*time.Millisecond, 2, 0.1),
	MinWait:   time.Millisecond,
	MaxWait:   50 * time.Millisecond,
	MaxRetry:  5,
}

func newTestClient(t testing.TB, opts Options) *Client {
	t.Helper()
	if opts.Platform.OS == "" {
		opts.Platform = ocispec.Platform{OS: "linux", Architecture: "amd64"}
	}
	if opts.CertsDir == "" {
		opts.CertsDir = t.TempDir()
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	c.retryPolicy = noRetries
	return c
}

func target(t testing.TB, ref string) Target {
	t.Helper()
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		t.Fatal(err)
	}
	return Target{Ref: named}
}
