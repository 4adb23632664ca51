package server

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"

	"github.com/pluginsd/pluginsd/handlers"
	"github.com/pluginsd/pluginsd/server/authz"
)

// authzPlugin is a minimal AuthZ plugin on a unix socket: it denies
// requests whose URI contains "deny" and records "phase uri status".
type authzPlugin struct {
	socket string
	mu     sync.Mutex
	calls  []string
}

func newAuthzPlugin(t *testing.T) *authzPlugin {
	t.Helper()
	dir, err := os.MkdirTemp("", "az")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := &authzPlugin{socket: filepath.Join(dir, "p.sock")}
	l, err := net.Listen("unix", p.socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req authz.Request
		_ = json.NewDecoder(r.Body).Decode(&req)
		phase := strings.TrimPrefix(r.URL.Path, "/AuthZPlugin.")
		p.mu.Lock()
		p.calls = append(p.calls, strings.TrimSpace(phase+" "+req.RequestURI+" "+statusText(req.ResponseStatusCode)))
		p.mu.Unlock()
		allow := !strings.Contains(req.RequestURI, "deny")
		_ = json.NewEncoder(w).Encode(authz.Response{Allow: allow, Msg: "no"})
	}))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return p
}

func statusText(code int) string {
	if code == 0 {
		return ""
	}
	return http.StatusText(code)
}

func (p *authzPlugin) taken() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.calls
	p.calls = nil
	return c
}

// authzServer is a server whose chain is the one plugin p, named "az".
func authzServer(t *testing.T, b handlers.Backend, p *authzPlugin) http.Handler {
	t.Helper()
	mw, err := authz.Config{Plugins: []string{"az"}}.ToMiddleware(authz.SourceFunc(func(string) (string, string, error) {
		return p.socket, "az:latest", nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return New(Config{Info: handlers.Info{Version: "0.0.0-test"}, Authorization: mw}, b).Handler()
}

// TestAuthzOrder pins where the chain runs: outermost on every routed
// request (before the version check and the engine headers, as in
// dockerd), and not at all for requests that match no route.
func TestAuthzOrder(t *testing.T) {
	p := newAuthzPlugin(t)
	b := &fakeBackend{}
	h := authzServer(t, b, p)
	send := func(method, target string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), method, target, http.NoBody))
		return rec
	}

	// Allowed: the handler's response with every engine header.
	rec := send(http.MethodGet, "/v1.41/_ping")
	if rec.Code != 200 || rec.Body.String() != "OK" {
		t.Fatalf("allowed ping: %d %q", rec.Code, rec.Body)
	}
	checkEngineHeaders(t, rec, true)
	rec = send(http.MethodHead, "/_ping")
	if rec.Code != 200 || rec.Body.Len() != 0 || rec.Header().Get("Content-Length") != "0" {
		t.Errorf("HEAD /_ping through the chain: %d %q %v", rec.Code, rec.Body, rec.Header())
	}
	checkEngineHeaders(t, rec, true)
	want := []string{"AuthZReq /v1.41/_ping", "AuthZRes /v1.41/_ping OK", "AuthZReq /_ping", "AuthZRes /_ping OK"}
	if diff := cmp.Diff(want, p.taken()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}

	// Denied: 403 from the outermost layer, without engine headers, and the
	// backend was not called.
	rec = send(http.MethodGet, "/v1.41/plugins?deny=1")
	checkJSONError(t, rec, http.StatusForbidden, "authorization denied by plugin az:latest: no")
	for _, k := range engineHeaderNames {
		if v := rec.Header().Get(k); v != "" {
			t.Errorf("a deny carries %s: %q", k, v)
		}
	}
	if calls := b.called(); len(calls) != 0 {
		t.Errorf("backend called despite the deny: %v", calls)
	}

	// A version out of range is still authorized; the plugin sees the 400.
	rec = send(http.MethodGet, "/v1.12/plugins")
	if rec.Code != http.StatusBadRequest {
		t.Errorf("/v1.12: %d %q", rec.Code, rec.Body)
	}
	p.taken()
	rec = send(http.MethodGet, "/v1.12/_ping")
	if diff := cmp.Diff([]string{"AuthZReq /v1.12/_ping", "AuthZRes /v1.12/_ping Bad Request"}, p.taken()); diff != "" || rec.Code != 400 {
		t.Errorf("old version (%d): calls (-want +got):\n%s", rec.Code, diff)
	}

	// No route: page not found, no plugin asked (like dockerd).
	for _, target := range []string{"/v1.41/nosuch", "/v1.41/plugins/x/bogus", "/v1.41/plugins/"} {
		rec = send(http.MethodGet, target)
		checkJSONError(t, rec, http.StatusNotFound, "page not found")
	}
	rec = send(http.MethodPost, "/v1.41/_ping")
	checkJSONError(t, rec, http.StatusNotFound, "page not found")
	if calls := p.taken(); len(calls) != 0 {
		t.Errorf("unrouted requests reached the chain: %v", calls)
	}

	// A routed 404 goes through the chain with its real status.
	b.err = errdefs.ErrNotFound.WithMessage(`plugin "x" not found`)
	rec = send(http.MethodGet, "/v1.41/plugins/x/json")
	checkJSONError(t, rec, http.StatusNotFound, `plugin "x" not found`)
	checkEngineHeaders(t, rec, true)
	want = []string{"AuthZReq /v1.41/plugins/x/json", "AuthZRes /v1.41/plugins/x/json Not Found"}
	if diff := cmp.Diff(want, p.taken()); diff != "" {
		t.Errorf("routed 404: calls (-want +got):\n%s", diff)
	}
}

// TestAuthzBodyLimit: a JSON body above 4 MiB is a 413 through the server's
// error mapping, and the handler never runs.
func TestAuthzBodyLimit(t *testing.T) {
	p := newAuthzPlugin(t)
	b := &fakeBackend{}
	h := authzServer(t, b, p)
	body := `["` + strings.Repeat("x", 5<<20) + `"]`
	req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/v1.41/plugins/x/set", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(rec.Body.String(), "more than 4194304 bytes") {
		t.Errorf("5 MiB body: %d %q", rec.Code, rec.Body)
	}
	if calls := b.called(); len(calls) != 0 {
		t.Errorf("backend called: %v", calls)
	}
	if calls := p.taken(); len(calls) != 0 {
		t.Errorf("plugin called: %v", calls)
	}

	// A create tar is not forwarded, but the request is authorized.
	req = httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/v1.41/plugins/create?name=deny", strings.NewReader("tar"))
	req.Header.Set("Content-Type", "application/x-tar")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Errorf("denied create: %d %q", rec.Code, rec.Body)
	}
	if calls := b.called(); len(calls) != 0 {
		t.Errorf("backend called: %v", calls)
	}
	if diff := cmp.Diff([]string{"AuthZReq /v1.41/plugins/create?name=deny"}, p.taken()); diff != "" {
		t.Errorf("create: calls (-want +got):\n%s", diff)
	}
}
