package distribution

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fakeTokenServer issues opaque bearer tokens and records what it was asked.
type fakeTokenServer struct {
	srv *httptest.Server

	mu         sync.Mutex
	users      map[string]string // guarded by mu
	refresh    map[string]string // refresh token -> user
	issued     map[string]bool
	requests   []tokenRequest
	postStatus int // when set, every POST is answered with it
}

type tokenRequest struct {
	Method, GrantType, User, ClientID, Service string
	Scopes                                     []string
	Header                                     http.Header
}

func newFakeTokenServer(t *testing.T) *fakeTokenServer {
	t.Helper()
	ts := &fakeTokenServer{
		users:   map[string]string{"alice": "s3cret"},
		refresh: map[string]string{"refresh-alice": "alice"},
		issued:  map[string]bool{},
	}
	ts.srv = httptest.NewServer(http.HandlerFunc(ts.serve))
	t.Cleanup(ts.srv.Close)
	return ts
}

func (ts *fakeTokenServer) serve(w http.ResponseWriter, r *http.Request) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	req := tokenRequest{Method: r.Method, Header: r.Header.Clone()}
	fail := func(status int) {
		ts.requests = append(ts.requests, req)
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}`)
	}
	switch r.Method {
	case http.MethodGet:
		for _, s := range r.URL.Query()["scope"] {
			req.Scopes = append(req.Scopes, strings.Fields(s)...)
		}
		req.Service = r.URL.Query().Get("service")
		if u, p, ok := r.BasicAuth(); ok {
			req.User = u
			if ts.users[u] != p {
				fail(http.StatusUnauthorized)
				return
			}
		}
	case http.MethodPost:
		if ts.postStatus != 0 {
			fail(ts.postStatus)
			return
		}
		if err := r.ParseForm(); err != nil {
			fail(http.StatusBadRequest)
			return
		}
		req.GrantType, req.ClientID, req.Service = r.PostForm.Get("grant_type"), r.PostForm.Get("client_id"), r.PostForm.Get("service")
		req.Scopes = strings.Fields(r.PostForm.Get("scope"))
		switch req.GrantType {
		case "password":
			req.User = r.PostForm.Get("username")
			if ts.users[req.User] != r.PostForm.Get("password") {
				fail(http.StatusUnauthorized)
				return
			}
		case "refresh_token":
			user, ok := ts.refresh[r.PostForm.Get("refresh_token")]
			req.User = user
			if !ok {
				fail(http.StatusUnauthorized)
				return
			}
		default:
			fail(http.StatusBadRequest)
			return
		}
	}
	ts.requests = append(ts.requests, req)
	tok := fmt.Sprintf("tok-%s-%d", req.User, len(ts.requests))
	ts.issued[tok] = true
	json.NewEncoder(w).Encode(map[string]string{"token": tok, "access_token": tok})
}

func (ts *fakeTokenServer) seen() []tokenRequest {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return slices.Clone(ts.requests)
}

func (ts *fakeTokenServer) reset() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.requests = nil
}

// requireBearer makes f answer 401 with a bearer challenge unless the
// request carries a token issued by ts or one of static.
func requireBearer(f *fakeRegistry, ts *fakeTokenServer, static ...string) {
	f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		ts.mu.Lock()
		valid := ok && (ts.issued[tok] || slices.Contains(static, tok))
		ts.mu.Unlock()
		if valid {
			return false
		}
		w.Header().Set("Www-Authenticate", fmt.Sprintf(`Bearer realm=%q,service="fake-registry"`, ts.srv.URL+"/token"))
		writeErr(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
		return true
	})
}

// B15, B16: the scopes name both the repository(plugin) and the repository
// class; each credential kind takes its own flow.
func TestTokenAuthFlows(t *testing.T) {
	f := newFakeRegistry(t)
	f.putPlugin("sample", "1.0")
	ts := newFakeTokenServer(t)
	requireBearer(f, ts, "static-registry-token")
	pullScopes := []string{"repository(plugin):sample:pull", "repository:sample:pull"}

	tests := []struct {
		name    string
		auth    Auth
		want    []tokenRequest // Header ignored
		wantErr func(error) bool
	}{
		{"anonymous", Auth{}, []tokenRequest{{Method: "GET", Service: "fake-registry", Scopes: pullScopes}}, nil},
		{"password", Auth{Username: "alice", Password: "s3cret"},
			[]tokenRequest{{Method: "POST", GrantType: "password", User: "alice", ClientID: "containerd-client", Service: "fake-registry", Scopes: pullScopes}}, nil},
		{"wrong password", Auth{Username: "alice", Password: "nope"},
			[]tokenRequest{{Method: "POST"}}, errdefs.IsUnauthorized},
		{"identity token", Auth{IdentityToken: "refresh-alice"},
			[]tokenRequest{{Method: "POST", GrantType: "refresh_token", User: "alice", ClientID: "containerd-client", Service: "fake-registry", Scopes: pullScopes}}, nil},
		{"bad identity token", Auth{IdentityToken: "refresh-mallory"}, []tokenRequest{{Method: "POST"}}, errdefs.IsUnauthorized},
		{"registry token", Auth{RegistryToken: "static-registry-token"}, nil, nil},
		{"bad registry token", Auth{RegistryToken: "forged"}, nil, errdefs.IsUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts.reset()
			c := newTestClient(t, Options{})
			tg := target(t, f.host()+"/sample:1.0")
			tg.Auth = tt.auth
			tg.MetaHeaders = map[string][]string{"X-Meta-Trace": {"t1"}}
			_, err := c.Resolve(t.Context(), tg)
			if tt.wantErr != nil {
				if !tt.wantErr(err) {
					t.Fatalf("err = %v, wrong class", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			got := ts.seen()
			if len(got) != len(tt.want) {
				t.Fatalf("token requests %+v, want %+v", got, tt.want)
			}
			for i, g := range got {
				if g.Header.Get("X-Meta-Trace") != "" {
					t.Error("meta headers leaked to the token server")
				}
				w := tt.want[i]
				if tt.wantErr != nil {
					if g.Method != w.Method {
						t.Errorf("method %s want %s", g.Method, w.Method)
					}
					continue
				}
				g.Header = nil
				if fmt.Sprint(g) != fmt.Sprint(w) {
					t.Errorf("token request\n got %+v\nwant %+v", g, w)
				}
			}
		})
	}
}

func TestTokenScopesForPush(t *testing.T) {
	f := newFakeRegistry(t)
	ts := newFakeTokenServer(t)
	requireBearer(f, ts)
	c := newTestClient(t, Options{})
	tg := target(t, f.host()+"/pushed:1.0")
	tg.Auth = Auth{Username: "alice", Password: "s3cret"}

	data := []byte("blob")
	desc := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromBytes(data), Size: 4}
	if ok, err := c.BlobExists(t.Context(), tg, desc); err != nil || ok {
		t.Fatal(ok, err)
	}
	if err := c.PushBlob(t.Context(), tg, desc, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	m := manifestJSON(MediaTypeManifest, ocispec.Descriptor{MediaType: MediaTypePluginConfig, Digest: desc.Digest, Size: 4})
	if err := c.PushManifest(t.Context(), tg, "1.0", MediaTypeManifest, m); err != nil {
		t.Fatal(err)
	}
	reqs := ts.seen()
	if len(reqs) != 1 {
		t.Fatalf("%d token requests, want 1 (cached for the push): %+v", len(reqs), reqs)
	}
	want := []string{"repository(plugin):pushed:pull,push", "repository:pushed:pull,push"}
	if !slices.Equal(reqs[0].Scopes, want) || reqs[0].GrantType != "password" {
		t.Errorf("token request %+v, want scopes %v", reqs[0], want)
	}
}

// Tokens are cached per credential: the same credential reuses its token,
// another credential never gets it.
func TestTokenCachePerCredential(t *testing.T) {
	f := newFakeRegistry(t)
	f.putPlugin("sample", "1.0")
	ts := newFakeTokenServer(t)
	ts.users["bob"] = "hunter2"
	requireBearer(f, ts)
	c := newTestClient(t, Options{})
	resolve := func(a Auth) {
		t.Helper()
		tg := target(t, f.host()+"/sample:1.0")
		tg.Auth = a
		if _, err := c.Resolve(t.Context(), tg); err != nil {
			t.Fatal(err)
		}
	}
	alice := Auth{Username: "alice", Password: "s3cret"}
	resolve(alice)
	resolve(alice)
	if n := len(ts.seen()); n != 1 {
		t.Fatalf("%d token requests for one credential, want 1", n)
	}
	resolve(Auth{Username: "bob", Password: "hunter2"})
	reqs := ts.seen()
	if len(reqs) != 2 || reqs[1].User != "bob" {
		t.Fatalf("second credential reused the first one's token: %+v", reqs)
	}
}

// A token service that only knows the GET flow answers the OAuth2 POST with
// 405; the client falls back to GET with basic credentials and remembers.
func TestTokenPostRefusedFallsBackToGet(t *testing.T) {
	f := newFakeRegistry(t)
	f.putPlugin("sample", "1.0")
	ts := newFakeTokenServer(t)
	ts.postStatus = http.StatusMethodNotAllowed
	requireBearer(f, ts)
	c := newTestClient(t, Options{})
	tg := target(t, f.host()+"/sample:1.0")
	tg.Auth = Auth{Username: "alice", Password: "s3cret"}
	if _, err := c.Resolve(t.Context(), tg); err != nil {
		t.Fatal(err)
	}
	reqs := ts.seen()
	if len(reqs) != 2 || reqs[0].Method != http.MethodPost || reqs[1].Method != http.MethodGet || reqs[1].User != "alice" {
		t.Fatalf("token requests %+v", reqs)
	}
	ts.reset()
	ts.mu.Lock()
	ts.users["bob"] = "hunter2"
	ts.mu.Unlock()
	tg.Auth = Auth{Username: "bob", Password: "hunter2"} // another credential: a fresh token
	if _, err := c.Resolve(t.Context(), tg); err != nil {
		t.Fatal(err)
	}
	if reqs := ts.seen(); len(reqs) != 1 || reqs[0].Method != http.MethodGet || reqs[0].User != "bob" {
		t.Errorf("POST tried again after the service refused it: %+v", reqs)
	}
}

// The realm of a registry on this machine may be on this machine too, even
// under another name (localhost vs 127.0.0.1).
func TestLoopbackRealmAllowedForLoopbackRegistry(t *testing.T) {
	f := newFakeRegistry(t)
	f.putPlugin("sample", "1.0")
	ts := newFakeTokenServer(t)
	requireBearer(f, ts)
	c := newTestClient(t, Options{})
	if _, err := c.Resolve(t.Context(), target(t, "localhost:"+f.port()+"/sample:1.0")); err != nil {
		t.Fatal(err)
	}
	for _, p := range realmBlocklist("localhost:5000") {
		if p.Addr().IsLoopback() {
			t.Errorf("loopback realm blocked for a loopback registry: %v", p)
		}
	}
	if realmBlocklist("registry.example.com") != nil {
		t.Error("non-loopback registries must keep oras's default blocklist (nil)")
	}
}

func TestBasicAuth(t *testing.T) {
	f := newFakeRegistry(t)
	f.putPlugin("sample", "1.0")
	f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if u, p, ok := r.BasicAuth(); ok && u == "alice" && p == "s3cret" {
			return false
		}
		w.Header().Set("Www-Authenticate", `Basic realm="fake"`)
		writeErr(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
		return true
	})
	c := newTestClient(t, Options{})
	for name, tc := range map[string]struct {
		auth Auth
		ok   bool
	}{
		"right":     {Auth{Username: "alice", Password: "s3cret"}, true},
		"wrong":     {Auth{Username: "alice", Password: "nope"}, false},
		"anonymous": {Auth{}, false},
	} {
		t.Run(name, func(t *testing.T) {
			tg := target(t, f.host()+"/sample:1.0")
			tg.Auth = tc.auth
			_, err := c.Resolve(t.Context(), tg)
			if tc.ok != (err == nil) || (!tc.ok && !errdefs.IsUnauthorized(err)) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}
