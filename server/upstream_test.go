package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/labstack/echo/v4"
	"github.com/moby/moby/api/types/plugin"

	"github.com/pluginsd/pluginsd/handlers"
	"github.com/pluginsd/pluginsd/manager"
	"github.com/pluginsd/pluginsd/server/authz"
	"github.com/pluginsd/pluginsd/server/upstream"
)

// fakeEngine is an Engine API on a unix socket that records "METHOD URI"
// of every request and answers like Podman's compat service (API 1.41).
type fakeEngine struct {
	sock string
	srv  *httptest.Server
	mu   sync.Mutex
	seen []string
}

func newFakeEngine(t *testing.T) *fakeEngine {
	t.Helper()
	dir, err := os.MkdirTemp("", "fe")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e := &fakeEngine{sock: filepath.Join(dir, "e.sock")}
	l, err := net.Listen("unix", e.sock)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(e.serve))
	e.srv.Listener.Close()
	e.srv.Listener = l
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	return e
}

func (e *fakeEngine) serve(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	e.seen = append(e.seen, r.Method+" "+r.RequestURI)
	e.mu.Unlock()
	h := w.Header()
	h.Set("Api-Version", "1.41")
	h.Set("Server", "Libpod/4.3.1 (linux)")
	path := r.URL.Path
	if _, rest, ok := strings.Cut(path[1:], "/"); ok && strings.HasPrefix(path, "/v1.") {
		path = "/" + rest
	}
	switch {
	case path == "/_ping" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		h.Set("Ostype", "linux")
		h.Set("Docker-Experimental", "true")
		h.Set("Builder-Version", "")
		h.Set("Libpod-Api-Version", "4.3.1")
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Type", "text/plain; charset=utf-8")
		if r.Method == http.MethodHead {
			w.WriteHeader(http.StatusOK)
			return
		}
		_, _ = io.WriteString(w, "OK")
	case path == "/version":
		h.Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"Platform":{"Name":"linux/amd64"},"Components":[{"Name":"Podman Engine","Version":"4.3.1"}],"Version":"4.3.1","ApiVersion":"1.41","MinAPIVersion":"1.24","Os":"linux","Arch":"amd64"}`)
	case path == "/info":
		h.Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ID":"engine","Containers":0,"Plugins":{"Volume":["local"],"Network":["bridge"],"Authorization":null,"Log":["journald"]},"ServerVersion":"4.3.1"}`)
	case path == "/containers/json":
		h.Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `[{"Id":"c1"}]`)
	case path == "/events":
		h.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"Type":"container","Action":"start"}`+"\n")
	case strings.HasSuffix(path, "/attach"):
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprint(conn, "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
		in, _ := io.ReadAll(conn)
		_, _ = conn.Write(append([]byte("out:"), in...))
	default:
		h.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"cause":"no such","message":"not found in the engine","response":404}`)
	}
}

func (e *fakeEngine) taken() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.seen
	e.seen = nil
	return s
}

func upstreamTo(t *testing.T, sock string) *upstream.Proxy {
	t.Helper()
	target, err := upstream.Parse("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	p := upstream.New(target)
	t.Cleanup(p.Close)
	return p
}

// frontServer is pluginsd in front of the engine at sock, on loopback.
func frontServer(t *testing.T, b handlers.Backend, sock string, mw echo.MiddlewareFunc) string {
	t.Helper()
	srv := httptest.NewServer(New(Config{Info: handlers.Info{Version: "0.0.0-test"}, Upstream: upstreamTo(t, sock), Authorization: mw}, b).Handler())
	t.Cleanup(srv.Close)
	return "http://" + srv.Listener.Addr().String()
}

func get(t *testing.T, method, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// TestUpstreamRouting: plugin routes (and unknown /plugins paths) stay
// pluginsd's, plugin-only event streams too; everything else reaches the
// engine with the URI the client sent.
func TestUpstreamRouting(t *testing.T) {
	e := newFakeEngine(t)
	b := &fakeBackend{list: []*manager.Plugin{testPlugin("vol:latest")}}
	base := frontServer(t, b, e.sock, nil)

	res, body := get(t, http.MethodGet, base+"/v1.41/containers/json?all=1")
	if res.StatusCode != 200 || body != `[{"Id":"c1"}]` || res.Header.Get("Server") != "Libpod/4.3.1 (linux)" {
		t.Errorf("containers: %d %q %v", res.StatusCode, body, res.Header)
	}
	if diff := cmp.Diff([]string{"GET /v1.41/containers/json?all=1"}, e.taken()); diff != "" {
		t.Errorf("engine (-want +got):\n%s", diff)
	}
	// The engine's own errors are relayed as they are.
	res, body = get(t, http.MethodGet, base+"/v1.41/nosuch")
	if res.StatusCode != 404 || !strings.Contains(body, "not found in the engine") {
		t.Errorf("engine 404: %d %q", res.StatusCode, body)
	}
	e.taken()

	res, body = get(t, http.MethodGet, base+"/v1.41/plugins")
	if res.StatusCode != 200 || !strings.Contains(body, "vol:latest") || res.Header.Get("Api-Version") != "1.57" {
		t.Errorf("plugins: %d %q %v", res.StatusCode, body, res.Header)
	}
	for _, target := range []string{"/v1.41/plugins/x/bogus", "/plugins/", "/v1.41/plugins/pull"} {
		res, body = get(t, http.MethodGet, base+target)
		if res.StatusCode != 404 || body != `{"message":"page not found"}`+"\n" {
			t.Errorf("%s: %d %q", target, res.StatusCode, body)
		}
	}
	res, _ = get(t, http.MethodPut, base+"/v1.41/plugins")
	if res.StatusCode != 404 {
		t.Errorf("PUT /plugins: %d", res.StatusCode)
	}
	if got := e.taken(); len(got) != 0 {
		t.Errorf("plugin routes reached the engine: %v", got)
	}

	// Events: plugin-only filters are ours (501 here: no event source);
	// anything else is the engine's.
	for _, f := range []string{`{"type":["plugin"]}`, `{"plugin":["vol"]}`, `{"type":{"plugin":true}}`} {
		res, _ = get(t, http.MethodGet, base+"/v1.41/events?filters="+url.QueryEscape(f))
		if res.StatusCode != http.StatusNotImplemented {
			t.Errorf("events %s: %d, want pluginsd's 501", f, res.StatusCode)
		}
	}
	if got := e.taken(); len(got) != 0 {
		t.Errorf("plugin events reached the engine: %v", got)
	}
	for _, f := range []string{"", `{"type":["container"]}`, `{"type":["plugin","container"]}`, `{"event":["start"]}`} {
		target := "/v1.41/events"
		if f != "" {
			target += "?filters=" + url.QueryEscape(f)
		}
		res, body = get(t, http.MethodGet, base+target)
		if res.StatusCode != 200 || !strings.Contains(body, `"container"`) {
			t.Errorf("events %q: %d %q", f, res.StatusCode, body)
		}
		if diff := cmp.Diff([]string{"GET " + target}, e.taken()); diff != "" {
			t.Errorf("engine (-want +got):\n%s", diff)
		}
	}
	// A wrong method on one of our fixed paths is the engine's to answer.
	res, _ = get(t, http.MethodPost, base+"/v1.41/_ping")
	if res.StatusCode != 404 || !cmp.Equal(e.taken(), []string{"POST /v1.41/_ping"}) {
		t.Errorf("POST /_ping: %d", res.StatusCode)
	}
}

// TestUpstreamPingVersionInfo: the engine's answers, with the version range
// narrowed to what both serve and pluginsd's component and plugins added.
func TestUpstreamPingVersionInfo(t *testing.T) {
	e := newFakeEngine(t)
	p := testPlugin("vol:latest")
	p.Plugin.Enabled = true
	p.Plugin.Config.Interface.Types = []plugin.CapabilityID{{Capability: "volumedriver", Prefix: "docker", Version: "1.0"}}
	base := frontServer(t, &fakeBackend{list: []*manager.Plugin{p}}, e.sock, nil)

	for _, method := range []string{http.MethodHead, http.MethodGet} {
		res, body := get(t, method, base+"/_ping")
		h := res.Header
		if res.StatusCode != 200 || h.Get("Api-Version") != "1.41" || h.Get("Ostype") != "linux" ||
			h.Get("Docker-Experimental") != "true" || h.Get("Libpod-Api-Version") != "4.3.1" || len(h.Values("Api-Version")) != 1 {
			t.Errorf("%s /_ping: %d %v", method, res.StatusCode, h)
		}
		if method == http.MethodGet && body != "OK" {
			t.Errorf("GET /_ping body %q", body)
		}
	}
	if diff := cmp.Diff([]string{"HEAD /_ping", "GET /_ping"}, e.taken()); diff != "" {
		t.Errorf("engine (-want +got):\n%s", diff)
	}

	res, body := get(t, http.MethodGet, base+"/v1.41/version")
	var v struct {
		APIVersion    string `json:"ApiVersion"`
		MinAPIVersion string
		Version       string
		Components    []struct{ Name, Version string }
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil || res.StatusCode != 200 {
		t.Fatalf("version: %d %q %v", res.StatusCode, body, err)
	}
	if v.APIVersion != "1.41" || v.MinAPIVersion != "1.24" || v.Version != "4.3.1" || len(v.Components) != 2 ||
		v.Components[1].Name != "pluginsd" || v.Components[1].Version != "0.0.0-test" {
		t.Errorf("version: %+v", v)
	}

	res, body = get(t, http.MethodGet, base+"/v1.41/info")
	var info struct {
		ID      string
		Plugins map[string][]string
	}
	if err := json.Unmarshal([]byte(body), &info); err != nil || res.StatusCode != 200 {
		t.Fatalf("info: %d %q %v", res.StatusCode, body, err)
	}
	if info.ID != "engine" || !cmp.Equal(info.Plugins["Volume"], []string{"local", "vol:latest"}) || !cmp.Equal(info.Plugins["Network"], []string{"bridge"}) {
		t.Errorf("info: %+v", info)
	}
	if diff := cmp.Diff([]string{"GET /v1.41/version", "GET /v1.41/info"}, e.taken()); diff != "" {
		t.Errorf("engine (-want +got):\n%s", diff)
	}
}

// TestUpstreamDown: with the engine gone, proxied requests get a 502
// naming it; /_ping still answers (with the version last negotiated) and
// the plugin routes still work.
func TestUpstreamDown(t *testing.T) {
	e := newFakeEngine(t)
	b := &fakeBackend{}
	base := frontServer(t, b, e.sock, nil)
	if res, _ := get(t, http.MethodHead, base+"/_ping"); res.Header.Get("Api-Version") != "1.41" {
		t.Fatalf("ping: %v", res.Header)
	}
	e.srv.Close()

	res, body := get(t, http.MethodGet, base+"/v1.41/containers/json")
	var msg struct{ Message string }
	_ = json.Unmarshal([]byte(body), &msg)
	if res.StatusCode != http.StatusBadGateway || res.Header.Get("Content-Type") != "application/json" ||
		!strings.HasPrefix(msg.Message, "upstream engine unix://"+e.sock+": ") {
		t.Errorf("containers with the engine down: %d %v %q", res.StatusCode, res.Header, body)
	}
	if res, body := get(t, http.MethodGet, base+"/v1.41/version"); res.StatusCode != http.StatusBadGateway {
		t.Errorf("version with the engine down: %d %q", res.StatusCode, body)
	}
	res, body = get(t, http.MethodGet, base+"/_ping")
	if res.StatusCode != 200 || body != "OK" || res.Header.Get("Api-Version") != "1.41" {
		t.Errorf("ping with the engine down: %d %q %v", res.StatusCode, body, res.Header)
	}
	if res, _ := get(t, http.MethodGet, base+"/v1.41/plugins"); res.StatusCode != 200 {
		t.Errorf("plugins with the engine down: %d", res.StatusCode)
	}
}

// TestUpstreamAuthz: proxied requests pass the AuthZ chain like routed
// ones (both phases, the status of the engine's answer); a deny never
// reaches the engine; an attach through the chain still switches
// protocols.
func TestUpstreamAuthz(t *testing.T) {
	e := newFakeEngine(t)
	az := newAuthzPlugin(t)
	mw, err := authz.Config{Plugins: []string{"az"}}.ToMiddleware(authz.SourceFunc(func(string) (string, string, error) {
		return az.socket, "az:latest", nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	base := frontServer(t, &fakeBackend{}, e.sock, mw)

	res, body := get(t, http.MethodGet, base+"/v1.41/containers/json")
	if res.StatusCode != 200 || body != `[{"Id":"c1"}]` {
		t.Errorf("allowed: %d %q", res.StatusCode, body)
	}
	res, body = get(t, http.MethodGet, base+"/v1.41/containers/json?deny=1")
	if res.StatusCode != http.StatusForbidden || !strings.Contains(body, "authorization denied by plugin az:latest: no") {
		t.Errorf("denied: %d %q", res.StatusCode, body)
	}
	get(t, http.MethodHead, base+"/_ping")
	want := []string{
		"AuthZReq /v1.41/containers/json", "AuthZRes /v1.41/containers/json OK",
		"AuthZReq /v1.41/containers/json?deny=1",
		"AuthZReq /_ping", "AuthZRes /_ping OK",
	}
	if diff := cmp.Diff(want, az.taken()); diff != "" {
		t.Errorf("authz calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"GET /v1.41/containers/json", "HEAD /_ping"}, e.taken()); diff != "" {
		t.Errorf("engine (-want +got):\n%s", diff)
	}

	// attach with Upgrade through the chain.
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprint(conn, "POST /v1.41/containers/c1/attach?stream=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
	br := bufio.NewReader(conn)
	res, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("attach: %d", res.StatusCode)
	}
	fmt.Fprint(conn, "stdin")
	_ = conn.(*net.TCPConn).CloseWrite()
	out, err := io.ReadAll(br)
	if err != nil || string(out) != "out:stdin" {
		t.Errorf("attach output %q, %v", out, err)
	}
	// The response phase ran, after the session, with the status sent.
	deadline := time.Now().Add(5 * time.Second)
	var calls []string
	for time.Now().Before(deadline) {
		if calls = append(calls, az.taken()...); len(calls) >= 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(calls) != 2 || calls[0] != "AuthZReq /v1.41/containers/c1/attach?stream=1" || !strings.HasPrefix(calls[1], "AuthZRes /v1.41/containers/c1/attach?stream=1") {
		t.Errorf("attach authz calls: %q", calls)
	}
}
