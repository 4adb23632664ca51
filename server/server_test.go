package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
	"github.com/moby/moby/api/types/plugin"

	"github.com/pluginsd/pluginsd/handlers"
	"github.com/pluginsd/pluginsd/manager"
)

// fakeBackend records what the handlers ask of the manager. Methods it does
// not implement come from the nil embedded Backend and panic if called.
type fakeBackend struct {
	handlers.Backend

	mu          sync.Mutex
	calls       []string
	inspectName string
	listReq     *manager.ListRequest
	enableReq   *manager.EnableRequest
	disableReq  *manager.DisableRequest
	setReq      *manager.SetRequest
	removeReq   *manager.RemoveRequest
	createName  string
	createBody  []byte
	err         error // returned by every method when set
	list        []*manager.Plugin
}

func (f *fakeBackend) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

func (f *fakeBackend) called() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeBackend) List(ctx context.Context, req manager.ListRequest) ([]*manager.Plugin, error) {
	f.record("List")
	f.listReq = &req
	return f.list, f.err
}

func (f *fakeBackend) Inspect(ctx context.Context, name string) (*manager.Plugin, error) {
	f.record("Inspect")
	f.inspectName = name
	if f.err != nil {
		return nil, f.err
	}
	return testPlugin(name), nil
}

func (f *fakeBackend) Remove(ctx context.Context, req manager.RemoveRequest) error {
	f.record("Remove")
	f.removeReq = &req
	return f.err
}

func (f *fakeBackend) Set(ctx context.Context, req manager.SetRequest) error {
	f.record("Set")
	f.setReq = &req
	return f.err
}

func (f *fakeBackend) Enable(ctx context.Context, req manager.EnableRequest) error {
	f.record("Enable")
	f.enableReq = &req
	return f.err
}

func (f *fakeBackend) Disable(ctx context.Context, req manager.DisableRequest) error {
	f.record("Disable")
	f.disableReq = &req
	return f.err
}

func (f *fakeBackend) Privileges(ctx context.Context, req manager.PrivilegesRequest) (plugin.Privileges, error) {
	f.record("Privileges")
	return nil, f.err
}

func (f *fakeBackend) Pull(ctx context.Context, req manager.PullRequest, progress manager.ProgressFunc) error {
	f.record("Pull")
	return f.err
}

func (f *fakeBackend) Upgrade(ctx context.Context, req manager.UpgradeRequest, progress manager.ProgressFunc) error {
	f.record("Upgrade")
	return f.err
}

func (f *fakeBackend) Push(ctx context.Context, req manager.PushRequest, progress manager.ProgressFunc) error {
	f.record("Push")
	return f.err
}

func (f *fakeBackend) CheckCreate(ctx context.Context, name string) error {
	f.record("CheckCreate")
	f.createName = name
	return f.err
}

func (f *fakeBackend) Create(ctx context.Context, req manager.CreateRequest) error {
	f.record("Create")
	b, err := io.ReadAll(req.Context)
	if err != nil {
		return err
	}
	f.createBody = b
	return f.err
}

func (f *fakeBackend) Generation() uint64 { return 1 }

// testPlugin is a plugin whose ID is derived from its name, so the
// handlers' encode cache never mixes two of them up.
func testPlugin(name string) *manager.Plugin {
	id := strings.Repeat("0", 64)
	h := []byte(id)
	for i, c := range []byte(name) {
		h[i%64] = "0123456789abcdef"[(int(h[i%64])+int(c))%16]
	}
	return &manager.Plugin{
		Plugin: plugin.Plugin{
			ID: string(h), Name: name, PluginReference: name,
			Config: plugin.Config{Description: "a <test> & plugin"},
		},
		DockerVersion: "pluginsd-test",
	}
}

// request is one HTTP request to the server.
type request struct {
	method, target string
	contentType    string
	body           string
}

// do sends r through a new server backed by b.
func do(t *testing.T, b handlers.Backend, r request) *httptest.ResponseRecorder {
	t.Helper()
	var body io.Reader = http.NoBody
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req := httptest.NewRequestWithContext(t.Context(), r.method, r.target, body)
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	rec := httptest.NewRecorder()
	New(Config{Info: handlers.Info{Version: "0.0.0-test"}}, b).Handler().ServeHTTP(rec, req)
	return rec
}

// engineHeaderNames are the headers of every routed response.
var engineHeaderNames = []string{"Api-Version", "Server", "Ostype", "Docker-Experimental"}

func checkEngineHeaders(t *testing.T, rec *httptest.ResponseRecorder, experimental bool) {
	t.Helper()
	h := rec.Header()
	if got := h.Get("Api-Version"); got != "1.57" {
		t.Errorf("Api-Version = %q, want 1.57", got)
	}
	if got := h.Get("Ostype"); got != runtime.GOOS {
		t.Errorf("Ostype = %q, want %q", got, runtime.GOOS)
	}
	if got, want := h.Get("Server"), "pluginsd/0.0.0-test ("+runtime.GOOS+")"; got != want {
		t.Errorf("Server = %q, want %q", got, want)
	}
	if experimental {
		if got := h.Values("Docker-Experimental"); !cmp.Equal(got, []string{"false"}) {
			t.Errorf("Docker-Experimental = %q, want [false]", got)
		}
	} else if got, ok := h["Docker-Experimental"]; ok {
		t.Errorf("Docker-Experimental = %q, want no header", got)
	}
}

// checkJSONError checks a {"message":...} body with Content-Type
// application/json exactly.
func checkJSONError(t *testing.T, rec *httptest.ResponseRecorder, status int, msg string) {
	t.Helper()
	if rec.Code != status {
		t.Errorf("status = %d, want %d (body %q)", rec.Code, status, rec.Body.String())
	}
	if got := rec.Header().Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", got)
	}
	want, err := json.Marshal(map[string]string{"message": msg})
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.Body.String(); got != string(want)+"\n" {
		t.Errorf("body = %q, want %q", got, string(want)+"\n")
	}
}

func TestPing(t *testing.T) {
	for _, target := range []string{"/_ping", "/v1.41/_ping", "/v1.24/_ping", "/v1.57/_ping", "/v1.57.0/_ping", "/v01.41/_ping"} {
		t.Run(target, func(t *testing.T) {
			rec := do(t, &fakeBackend{}, request{method: http.MethodGet, target: target})
			if rec.Code != http.StatusOK || rec.Body.String() != "OK" {
				t.Fatalf("GET %s = %d %q, want 200 OK", target, rec.Code, rec.Body.String())
			}
			checkEngineHeaders(t, rec, true)
			for k, want := range map[string]string{
				"Cache-Control": "no-cache, no-store, must-revalidate",
				"Pragma":        "no-cache",
				"Content-Type":  "text/plain; charset=utf-8",
			} {
				if got := rec.Header().Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

func TestPingHead(t *testing.T) {
	rec := do(t, &fakeBackend{}, request{method: http.MethodHead, target: "/_ping"})
	if rec.Code != http.StatusOK {
		t.Fatalf("HEAD /_ping = %d, want 200", rec.Code)
	}
	if rec.Body.Len() != 0 {
		t.Errorf("HEAD /_ping body = %q, want none", rec.Body.String())
	}
	checkEngineHeaders(t, rec, true)
	for k, want := range map[string]string{
		"Cache-Control":  "no-cache, no-store, must-revalidate",
		"Pragma":         "no-cache",
		"Content-Length": "0",
	} {
		if got := rec.Header().Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

// TestPageNotFound: unknown paths and known paths with the wrong method get
// dockerd's 404, outside the engine middleware (no version headers).
func TestPageNotFound(t *testing.T) {
	tests := []struct {
		name      string
		method    string
		target    string
		plainText bool
	}{
		{name: "POST ping", method: http.MethodPost, target: "/_ping"},
		{name: "versioned POST ping", method: http.MethodPost, target: "/v1.41/_ping"},
		{name: "PUT plugins", method: http.MethodPut, target: "/v1.41/plugins"},
		{name: "HEAD plugins", method: http.MethodHead, target: "/v1.41/plugins"},
		{name: "POST plugins", method: http.MethodPost, target: "/plugins"},
		{name: "GET pull", method: http.MethodGet, target: "/v1.41/plugins/pull"},
		{name: "POST json", method: http.MethodPost, target: "/v1.41/plugins/x/json"},
		{name: "GET trailing slash", method: http.MethodGet, target: "/v1.41/plugins/"},
		{name: "GET plugins slash unversioned", method: http.MethodGet, target: "/plugins/"},
		{name: "GET json with empty name", method: http.MethodGet, target: "/plugins/json"},
		{name: "GET name without operation", method: http.MethodGet, target: "/plugins/spec-a"},
		{name: "POST unknown operation", method: http.MethodPost, target: "/plugins/spec-a/frobnicate"},
		{name: "POST set with empty name", method: http.MethodPost, target: "/plugins/set"},
		{name: "DELETE plugins", method: http.MethodDelete, target: "/plugins"},
		{name: "DELETE plugins slash", method: http.MethodDelete, target: "/plugins/"},
		{name: "unknown path", method: http.MethodGet, target: "/nonexistent"},
		{name: "root", method: http.MethodGet, target: "/"},
		{name: "version alone", method: http.MethodGet, target: "/v1.41"},
		{name: "letters as version", method: http.MethodGet, target: "/vx/_ping"},
		{name: "letter in version", method: http.MethodGet, target: "/v1.4a/_ping"},
		{name: "empty version", method: http.MethodGet, target: "/v/_ping"},
		{name: "wrong method, bad version", method: http.MethodPost, target: "/v1.58/_ping"},
		// dockerd's not-found handler still reads the version: plain text
		// below 1.24.
		{name: "unknown path, old version", method: http.MethodGet, target: "/v1.12/nonexistent", plainText: true},
		{name: "wrong method, old version", method: http.MethodPost, target: "/v1.23/_ping", plainText: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeBackend{}
			rec := do(t, f, request{method: tt.method, target: tt.target})
			if rec.Code != http.StatusNotFound {
				t.Fatalf("%s %s = %d %q, want 404", tt.method, tt.target, rec.Code, rec.Body.String())
			}
			switch {
			case tt.method == http.MethodHead:
				// The same headers as GET; net/http drops the body on the
				// wire (see TestHeadOverTheWire).
				if got := rec.Header().Get("Content-Type"); got != "application/json" {
					t.Errorf("HEAD Content-Type = %q, want application/json", got)
				}
			case tt.plainText:
				if ct, body := rec.Header().Get("Content-Type"), rec.Body.String(); ct != "text/plain; charset=utf-8" || body != "page not found\n" {
					t.Errorf("Content-Type %q, body %q; want plain text page not found", ct, body)
				}
			default:
				checkJSONError(t, rec, http.StatusNotFound, "page not found")
			}
			for _, k := range append(engineHeaderNames, "Allow") {
				if v, ok := rec.Header()[k]; ok {
					t.Errorf("header %s = %q, want none", k, v)
				}
			}
			if calls := f.called(); len(calls) != 0 {
				t.Errorf("backend called: %v", calls)
			}
		})
	}
}

// TestOptionsIsPageNotFound: dockerd registers no OPTIONS routes, so OPTIONS
// is a wrong method like any other.
func TestOptionsIsPageNotFound(t *testing.T) {
	for _, target := range []string{"/_ping", "/v1.41/plugins", "/plugins/x/json"} {
		t.Run(target, func(t *testing.T) {
			f := &fakeBackend{}
			rec := do(t, f, request{method: http.MethodOptions, target: target})
			checkJSONError(t, rec, http.StatusNotFound, "page not found")
			for _, k := range append(engineHeaderNames, "Allow") {
				if v, ok := rec.Header()[k]; ok {
					t.Errorf("header %s = %q, want none", k, v)
				}
			}
			if calls := f.called(); len(calls) != 0 {
				t.Errorf("backend called: %v", calls)
			}
		})
	}
}

func TestVersionErrors(t *testing.T) {
	const tooNew = "client version 1.58 is too new. Maximum supported API version is 1.57"
	tests := []struct {
		name      string
		method    string
		target    string
		plainText bool
		msg       string
	}{
		{name: "too new", method: http.MethodGet, target: "/v1.58/_ping", msg: tooNew},
		{name: "too new plugins", method: http.MethodGet, target: "/v1.58/plugins", msg: tooNew},
		{name: "too new inspect", method: http.MethodGet, target: "/v1.58/plugins/x/json", msg: tooNew},
		{name: "too new set", method: http.MethodPost, target: "/v1.58/plugins/x/set", msg: tooNew},
		{name: "too new by a component", method: http.MethodGet, target: "/v1.57.1/_ping",
			msg: "client version 1.57.1 is too new. Maximum supported API version is 1.57"},
		{name: "too old, JSON era", method: http.MethodGet, target: "/v2/_ping",
			msg: "client version 2 is too new. Maximum supported API version is 1.57"},
		{name: "too old is plain text", method: http.MethodGet, target: "/v1.12/_ping", plainText: true,
			msg: "client version 1.12 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"},
		{name: "1.23 is plain text", method: http.MethodGet, target: "/v1.23/plugins/nonexist/json", plainText: true,
			msg: "client version 1.23 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"},
		{name: "v1 is plain text", method: http.MethodGet, target: "/v1/_ping", plainText: true,
			msg: "client version 1 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeBackend{}
			rec := do(t, f, request{method: tt.method, target: tt.target})
			checkEngineHeaders(t, rec, false)
			if calls := f.called(); len(calls) != 0 {
				t.Errorf("backend called: %v", calls)
			}
			if !tt.plainText {
				checkJSONError(t, rec, http.StatusBadRequest, tt.msg)
				return
			}
			if rec.Code != http.StatusBadRequest {
				t.Errorf("status = %d, want 400", rec.Code)
			}
			if got := rec.Header().Get("Content-Type"); got != "text/plain; charset=utf-8" {
				t.Errorf("Content-Type = %q, want text/plain; charset=utf-8", got)
			}
			if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
			}
			if got := rec.Body.String(); got != tt.msg+"\n" {
				t.Errorf("body = %q, want %q", got, tt.msg+"\n")
			}
		})
	}
}

func TestVersionErrorHead(t *testing.T) {
	rec := do(t, &fakeBackend{}, request{method: http.MethodHead, target: "/v1.58/_ping"})
	if rec.Code != http.StatusBadRequest {
		t.Errorf("HEAD /v1.58/_ping = %d, want 400", rec.Code)
	}
	if got := rec.Header().Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q, want application/json as for GET", got)
	}
	checkEngineHeaders(t, rec, false)
}

// TestHeadOverTheWire: through a real HTTP server, HEAD answers carry the
// status and headers of GET and no body.
func TestHeadOverTheWire(t *testing.T) {
	srv := httptest.NewServer(New(Config{Info: handlers.Info{Version: "0.0.0-test"}}, &fakeBackend{}).Handler())
	t.Cleanup(srv.Close)
	tests := []struct {
		target      string
		status      int
		contentType string
	}{
		{target: "/_ping", status: http.StatusOK, contentType: "text/plain; charset=utf-8"},
		{target: "/v1.58/_ping", status: http.StatusBadRequest, contentType: "application/json"},
		{target: "/v1.12/_ping", status: http.StatusBadRequest, contentType: "text/plain; charset=utf-8"},
		{target: "/v1.41/plugins", status: http.StatusNotFound, contentType: "application/json"},
		{target: "/nonexistent", status: http.StatusNotFound, contentType: "application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodHead, srv.URL+tt.target, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status || len(b) != 0 {
				t.Errorf("HEAD %s = %d with %d body bytes, want %d and none", tt.target, resp.StatusCode, len(b), tt.status)
			}
			if got := resp.Header.Get("Content-Type"); got != tt.contentType {
				t.Errorf("Content-Type = %q, want %q", got, tt.contentType)
			}
		})
	}
}

func TestUncleanPathRedirects(t *testing.T) {
	tests := []struct {
		target   string
		location string
	}{
		{target: "/v1.41/plugins//json", location: "/v1.41/plugins/json"},
		{target: "//_ping", location: "/_ping"},
		{target: "/plugins/./x/json", location: "/plugins/x/json"},
		{target: "/plugins/a/../b/json", location: "/plugins/b/json"},
		{target: "/v1.41/plugins//json?x=1", location: "/v1.41/plugins/json?x=1"},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			f := &fakeBackend{}
			rec := do(t, f, request{method: http.MethodGet, target: tt.target})
			if rec.Code != http.StatusMovedPermanently {
				t.Fatalf("GET %s = %d, want 301", tt.target, rec.Code)
			}
			if got := rec.Header().Get("Location"); got != tt.location {
				t.Errorf("Location = %q, want %q", got, tt.location)
			}
			if calls := f.called(); len(calls) != 0 {
				t.Errorf("backend called: %v", calls)
			}
		})
	}
}

// TestNamesReachTheBackend: plugin names with '/', ':' and '@', percent-
// encoded or not, arrive intact, and the operation is the path's suffix.
func TestNamesReachTheBackend(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		target   string
		body     string
		wantCall string
		wantName string
	}{
		{name: "privileges is a name", method: http.MethodGet, target: "/plugins/privileges/json", wantCall: "Inspect", wantName: "privileges"},
		{name: "percent-encoded colon", method: http.MethodGet, target: "/v1.41/plugins/spec-a%3Alatest/json", wantCall: "Inspect", wantName: "spec-a:latest"},
		{name: "percent-encoded slash", method: http.MethodGet, target: "/plugins/user%2Fspec-a/json", wantCall: "Inspect", wantName: "user/spec-a"},
		{name: "registry name", method: http.MethodGet, target: "/v1.41/plugins/localhost:5000/x:1.0/json", wantCall: "Inspect", wantName: "localhost:5000/x:1.0"},
		{name: "digest", method: http.MethodGet, target: "/plugins/x@sha256:abc/json", wantCall: "Inspect", wantName: "x@sha256:abc"},
		{name: "name ending in json", method: http.MethodGet, target: "/plugins/a/json/json", wantCall: "Inspect", wantName: "a/json"},
		{name: "name that is an ID", method: http.MethodGet, target: "/plugins/" + strings.Repeat("a", 64) + "/json", wantCall: "Inspect", wantName: strings.Repeat("a", 64)},
		{name: "set registry name", method: http.MethodPost, target: "/plugins/localhost:5000/x:1.0/set", body: `["A=1"]`, wantCall: "Set", wantName: "localhost:5000/x:1.0"},
		{name: "set name ending in set", method: http.MethodPost, target: "/v1.41/plugins/set/set", body: `["A=1"]`, wantCall: "Set", wantName: "set"},
		{name: "delete registry name", method: http.MethodDelete, target: "/v1.41/plugins/localhost:5000/x:1.0", wantCall: "Remove", wantName: "localhost:5000/x:1.0"},
		{name: "delete name ending in json", method: http.MethodDelete, target: "/plugins/x/json", wantCall: "Remove", wantName: "x/json"},
		{name: "delete encoded", method: http.MethodDelete, target: "/plugins/spec-a%3Alatest", wantCall: "Remove", wantName: "spec-a:latest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeBackend{}
			r := request{method: tt.method, target: tt.target, body: tt.body}
			if tt.body != "" {
				r.contentType = "application/json"
			}
			rec := do(t, f, r)
			if rec.Code >= 300 {
				t.Fatalf("%s %s = %d %q", tt.method, tt.target, rec.Code, rec.Body.String())
			}
			checkEngineHeaders(t, rec, true)
			if diff := cmp.Diff([]string{tt.wantCall}, f.called()); diff != "" {
				t.Fatalf("backend calls (-want +got):\n%s", diff)
			}
			var got string
			switch tt.wantCall {
			case "Inspect":
				got = f.inspectName
			case "Set":
				got = f.setReq.Name
			case "Remove":
				got = f.removeReq.Name
			}
			if got != tt.wantName {
				t.Errorf("backend got name %q, want %q", got, tt.wantName)
			}
		})
	}
}

func TestInspectShape(t *testing.T) {
	tests := []struct {
		target            string
		wantDockerVersion bool
	}{
		{target: "/plugins/spec-a/json", wantDockerVersion: false},
		{target: "/v1.57/plugins/spec-a/json", wantDockerVersion: false},
		{target: "/v1.51/plugins/spec-a/json", wantDockerVersion: false},
		{target: "/v1.50/plugins/spec-a/json", wantDockerVersion: true},
		{target: "/v1.41/plugins/spec-a/json", wantDockerVersion: true},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			rec := do(t, &fakeBackend{}, request{method: http.MethodGet, target: tt.target})
			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d %q", rec.Code, rec.Body.String())
			}
			if got := rec.Header().Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", got)
			}
			body := rec.Body.String()
			if !strings.HasSuffix(body, "}\n") {
				t.Errorf("body does not end in a newline: %q", body)
			}
			if !strings.Contains(body, `"a <test> & plugin"`) {
				t.Errorf("body escapes HTML: %s", body)
			}
			if got := strings.Contains(body, `"DockerVersion":"pluginsd-test"`); got != tt.wantDockerVersion {
				t.Errorf("DockerVersion present = %v, want %v: %s", got, tt.wantDockerVersion, body)
			}
			if !strings.Contains(body, `"Settings":{"Args":[],"Devices":[],"Env":[],"Mounts":[]}`) {
				t.Errorf("Settings arrays are not []: %s", body)
			}
		})
	}
}

func TestBackendErrorsThroughHTTP(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
	}{
		{name: "not found", err: errdefs.ErrNotFound.WithMessage(`plugin "x" not found`), status: http.StatusNotFound},
		{name: "ambiguous", err: errdefs.ErrInvalidArgument.WithMessage(`multiple plugins found for "a"`), status: http.StatusBadRequest},
		{name: "conflict", err: errdefs.ErrConflict.WithMessage("plugin x:latest is enabled"), status: http.StatusConflict},
		{name: "untyped", err: io.ErrUnexpectedEOF, status: http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, r := range []request{
				{method: http.MethodGet, target: "/v1.41/plugins/x/json"},
				{method: http.MethodDelete, target: "/v1.41/plugins/x"},
				{method: http.MethodPost, target: "/v1.41/plugins/x/set", contentType: "application/json", body: `["A=1"]`},
				{method: http.MethodGet, target: "/v1.41/plugins"},
			} {
				rec := do(t, &fakeBackend{err: tt.err}, r)
				checkJSONError(t, rec, tt.status, tt.err.Error())
				// Routed errors carry every engine header.
				checkEngineHeaders(t, rec, true)
			}
		})
	}
}

func TestRemoveForce(t *testing.T) {
	tests := []struct {
		query string
		want  bool
	}{
		{query: "", want: false},
		{query: "?force=1", want: true},
		{query: "?force=true", want: true},
		{query: "?force=TRUE", want: true},
		{query: "?force=yes", want: true},
		{query: "?force=anything", want: true},
		{query: "?force=%201%20", want: true},
		{query: "?force=0", want: false},
		{query: "?force=false", want: false},
		{query: "?force=False", want: false},
		{query: "?force=no", want: false},
		{query: "?force=none", want: false},
		{query: "?force=", want: false},
		{query: "?force=%20", want: false},
		{query: "?force=%20No%20", want: false},
		{query: "?other=1", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			f := &fakeBackend{}
			rec := do(t, f, request{method: http.MethodDelete, target: "/v1.41/plugins/spec-a" + tt.query})
			if rec.Code != http.StatusOK || rec.Body.Len() != 0 {
				t.Fatalf("DELETE = %d %q, want 200 with no body", rec.Code, rec.Body.String())
			}
			if f.removeReq == nil {
				t.Fatal("Remove not called")
			}
			if f.removeReq.Name != "spec-a" || f.removeReq.Force != tt.want {
				t.Errorf("Remove(%+v), want name spec-a, force %v", *f.removeReq, tt.want)
			}
		})
	}
}

func TestSetBody(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		body        string
		wantStatus  int
		wantMsg     string // exact, or prefix when it ends in "..."
		wantArgs    []string
		wantCalled  bool
	}{
		{name: "array", contentType: "application/json", body: `["DEBUG=3","data.source=/var/tmp"]`,
			wantStatus: http.StatusNoContent, wantArgs: []string{"DEBUG=3", "data.source=/var/tmp"}, wantCalled: true},
		{name: "json with charset", contentType: "application/json; charset=utf-8", body: `["A=1"]`,
			wantStatus: http.StatusNoContent, wantArgs: []string{"A=1"}, wantCalled: true},
		{name: "empty body is a no-op", wantStatus: http.StatusNoContent, wantCalled: true},
		{name: "empty body with any content type", contentType: "text/plain", wantStatus: http.StatusNoContent, wantCalled: true},
		{name: "empty array", contentType: "application/json", body: `[]`, wantStatus: http.StatusNoContent, wantArgs: []string{}, wantCalled: true},
		{name: "null", contentType: "application/json", body: `null`, wantStatus: http.StatusNoContent, wantCalled: true},
		{name: "trailing whitespace", contentType: "application/json", body: "[\"A=1\"]\n\n", wantStatus: http.StatusNoContent, wantArgs: []string{"A=1"}, wantCalled: true},

		{name: "wrong content type", contentType: "text/plain", body: `["A=1"]`, wantStatus: http.StatusBadRequest,
			wantMsg: "unsupported Content-Type header (text/plain): must be 'application/json'"},
		{name: "no content type", body: `["A=1"]`, wantStatus: http.StatusBadRequest,
			wantMsg: "unsupported Content-Type header (): must be 'application/json'"},
		{name: "malformed content type", contentType: "application/json; =x", body: `["A=1"]`, wantStatus: http.StatusBadRequest,
			wantMsg: "malformed Content-Type header (application/json; =x): ..."},
		{name: "invalid JSON", contentType: "application/json", body: `notjson`, wantStatus: http.StatusBadRequest, wantMsg: "invalid JSON: ..."},
		{name: "truncated JSON", contentType: "application/json", body: `["A=1"`, wantStatus: http.StatusBadRequest,
			wantMsg: "invalid JSON: got EOF while reading request body"},
		{name: "not an array", contentType: "application/json", body: `"A=1"`, wantStatus: http.StatusBadRequest, wantMsg: "invalid JSON: ..."},
		{name: "trailing data", contentType: "application/json", body: `["DEBUG=1"] x`, wantStatus: http.StatusBadRequest,
			wantMsg: "unexpected content after JSON"},
		{name: "second value", contentType: "application/json", body: `["A=1"]["B=2"]`, wantStatus: http.StatusBadRequest,
			wantMsg: "unexpected content after JSON"},
		{name: "2 MiB body", contentType: "application/json", body: `["` + strings.Repeat("x", 2<<20) + `"]`,
			wantStatus: http.StatusRequestEntityTooLarge, wantMsg: "request body too large: ..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeBackend{}
			rec := do(t, f, request{method: http.MethodPost, target: "/v1.41/plugins/spec-a/set", contentType: tt.contentType, body: tt.body})
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d %q, want %d", rec.Code, rec.Body.String(), tt.wantStatus)
			}
			if tt.wantCalled != (f.setReq != nil) {
				t.Fatalf("Set called = %v, want %v", f.setReq != nil, tt.wantCalled)
			}
			if tt.wantStatus == http.StatusNoContent {
				if rec.Body.Len() != 0 {
					t.Errorf("204 with a body: %q", rec.Body.String())
				}
				if diff := cmp.Diff(tt.wantArgs, f.setReq.Args); diff != "" {
					t.Errorf("Set args (-want +got):\n%s", diff)
				}
				return
			}
			var body struct{ Message string }
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("error body %q: %v", rec.Body.String(), err)
			}
			if got := rec.Header().Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q", got)
			}
			if prefix, ok := strings.CutSuffix(tt.wantMsg, "..."); ok {
				if !strings.HasPrefix(body.Message, prefix) {
					t.Errorf("message = %q, want prefix %q", body.Message, prefix)
				}
			} else if body.Message != tt.wantMsg {
				t.Errorf("message = %q, want %q", body.Message, tt.wantMsg)
			}
		})
	}
}

func TestCreate(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		wantStatus  int
		wantCreate  bool
	}{
		{name: "tar", contentType: "application/x-tar", wantStatus: http.StatusNoContent, wantCreate: true},
		{name: "no content type", wantStatus: http.StatusNoContent, wantCreate: true},
		{name: "text/plain is not checked", contentType: "text/plain", wantStatus: http.StatusNoContent, wantCreate: true},
		{name: "gzip", contentType: "application/gzip", wantStatus: http.StatusNoContent, wantCreate: true},
		{name: "urlencoded", contentType: "application/x-www-form-urlencoded", wantStatus: http.StatusBadRequest},
		{name: "multipart", contentType: "multipart/form-data; boundary=x", wantStatus: http.StatusBadRequest},
		{name: "json", contentType: "application/json", wantStatus: http.StatusBadRequest},
		{name: "malformed", contentType: "application/x-tar; =", wantStatus: http.StatusBadRequest},
	}
	const body = "pretend this is a tar"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeBackend{}
			rec := do(t, f, request{method: http.MethodPost, target: "/v1.41/plugins/create?name=spec-a", contentType: tt.contentType, body: body})
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d %q, want %d", rec.Code, rec.Body.String(), tt.wantStatus)
			}
			if f.createName != "spec-a" {
				t.Errorf("CheckCreate name = %q, want spec-a", f.createName)
			}
			calledCreate := len(f.called()) == 2
			if calledCreate != tt.wantCreate {
				t.Fatalf("calls %v, want Create called = %v", f.called(), tt.wantCreate)
			}
			if tt.wantCreate && string(f.createBody) != body {
				t.Errorf("Create body = %q, want %q", f.createBody, body)
			}
			if !tt.wantCreate {
				var m struct{ Message string }
				if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil || !strings.Contains(m.Message, "Content-Type header") {
					t.Errorf("error body %q", rec.Body.String())
				}
			}
		})
	}
}

// TestCreateNameRefusedBeforeBody: a taken name is refused before the body
// is read.
func TestCreateNameRefusedBeforeBody(t *testing.T) {
	f := &fakeBackend{err: errdefs.ErrConflict.WithMessage("plugin spec-a:latest already exists")}
	rec := do(t, f, request{method: http.MethodPost, target: "/plugins/create?name=spec-a", contentType: "application/x-tar", body: "x"})
	checkJSONError(t, rec, http.StatusConflict, "plugin spec-a:latest already exists")
	if diff := cmp.Diff([]string{"CheckCreate"}, f.called()); diff != "" {
		t.Errorf("backend calls (-want +got):\n%s", diff)
	}
}

func TestList(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		want    manager.ListRequest
		wantErr string
	}{
		{name: "no filters", query: ""},
		{name: "empty filters", query: "?filters="},
		{name: "null filters", query: "?filters=null"},
		{name: "enabled", query: `?filters={"enabled":{"true":true}}`, want: manager.ListRequest{Enabled: new(true)}},
		{name: "disabled, legacy", query: `?filters={"enabled":["false"]}`, want: manager.ListRequest{Enabled: new(false)}},
		{name: "capability", query: `?filters={"capability":{"volumedriver":true,"authz":true}}`,
			want: manager.ListRequest{Capabilities: []string{"authz", "volumedriver"}}},
		{name: "capability, legacy", query: `?filters={"capability":["volume.*"]}`, want: manager.ListRequest{Capabilities: []string{"volume.*"}}},
		{name: "swagger spelling", query: `?filters={"enable":{"true":true}}`, wantErr: "invalid filter 'enable'"},
		{name: "both enabled values", query: `?filters={"enabled":{"true":true,"false":true}}`, wantErr: "invalid filter 'enabled=[false true]'"},
		{name: "empty enabled set", query: `?filters={"enabled":{}}`, wantErr: "invalid filter 'enabled'"},
		{name: "junk", query: "?filters=nope", wantErr: "invalid filter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeBackend{}
			target := "/v1.41/plugins" + strings.NewReplacer(`"`, "%22", "{", "%7B", "}", "%7D", " ", "%20").Replace(tt.query)
			rec := do(t, f, request{method: http.MethodGet, target: target})
			if tt.wantErr != "" {
				checkJSONError(t, rec, http.StatusBadRequest, tt.wantErr)
				if f.listReq != nil {
					t.Error("List called despite a bad filter")
				}
				return
			}
			if rec.Code != http.StatusOK || rec.Body.String() != "[]\n" {
				t.Fatalf("GET %s = %d %q, want 200 []", target, rec.Code, rec.Body.String())
			}
			if got := rec.Header().Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q", got)
			}
			if f.listReq == nil {
				t.Fatal("List not called")
			}
			if diff := cmp.Diff(tt.want, *f.listReq); diff != "" {
				t.Errorf("ListRequest (-want +got):\n%s", diff)
			}
		})
	}
}

func TestListBody(t *testing.T) {
	f := &fakeBackend{list: []*manager.Plugin{testPlugin("a:latest"), testPlugin("b:latest")}}
	for _, v := range []string{"/v1.41", ""} {
		rec := do(t, f, request{method: http.MethodGet, target: v + "/plugins"})
		if rec.Code != http.StatusOK {
			t.Fatalf("status = %d", rec.Code)
		}
		var got []json.RawMessage
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatalf("body %q: %v", rec.Body.String(), err)
		}
		if len(got) != 2 {
			t.Fatalf("%d plugins, want 2", len(got))
		}
		if !bytes.HasSuffix(rec.Body.Bytes(), []byte("]\n")) || bytes.Count(rec.Body.Bytes(), []byte("\n")) != 1 {
			t.Errorf("list body is not one line ending in a newline: %q", rec.Body.String())
		}
		if want := v != ""; bytes.Contains(rec.Body.Bytes(), []byte(`"DockerVersion"`)) != want {
			t.Errorf("at %q DockerVersion present = %v, want %v", v, !want, want)
		}
	}
}

func TestVersion(t *testing.T) {
	rec := do(t, &fakeBackend{}, request{method: http.MethodGet, target: "/v1.41/version"})
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d", rec.Code)
	}
	checkEngineHeaders(t, rec, true)
	var v struct {
		Version, APIVersion, MinAPIVersion, Os string
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	if v.Version != "0.0.0-test" || v.APIVersion != "1.57" || v.MinAPIVersion != "1.24" || v.Os != runtime.GOOS {
		t.Errorf("version body = %s", rec.Body.String())
	}
}

// TestSetTrailingCloser: a body must hold exactly one JSON value, so a stray
// closing bracket or brace after it is trailing content like any other.
func TestSetTrailingCloser(t *testing.T) {
	for _, body := range []string{`["A=1"]]`, `["A=1"]}`, `null]`} {
		t.Run(body, func(t *testing.T) {
			f := &fakeBackend{}
			rec := do(t, f, request{method: http.MethodPost, target: "/plugins/x/set", contentType: "application/json", body: body})
			checkJSONError(t, rec, http.StatusBadRequest, "unexpected content after JSON")
			if f.setReq != nil {
				t.Error("Set called")
			}
		})
	}
}

// TestBadQueryString: a query string that does not decode is a 400, as in
// dockerd (Echo alone would drop the bad part and answer 200).
func TestBadQueryString(t *testing.T) {
	f := &fakeBackend{}
	rec := do(t, f, request{method: http.MethodGet, target: "/plugins?filters=%zz"})
	checkJSONError(t, rec, http.StatusBadRequest, `invalid query: invalid URL escape "%zz"`)
}
