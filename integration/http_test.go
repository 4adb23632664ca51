package integration

// Black-box tests of the wire: raw HTTP over the daemon's unix socket,
// checking status codes, headers, exact bodies and JSON key order as the
// stock clients see them (spec §1, §2, §3.1, §4, §5.1, §5.4, §5.5, §5.9,
// §5.11).

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// wireResp is one HTTP exchange's result.
type wireResp struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r wireResp) String() string {
	return fmt.Sprintf("%d %s %q", r.Status, r.Header.Get("Content-Type"), r.Body)
}

// wireClient is the daemon's unix-socket client that reports redirects
// instead of following them.
func wireClient(d *daemon) *http.Client {
	c := d.httpClient()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.Timeout = 30 * time.Second
	return c
}

// wireDo sends one request. target is the request path with query, sent as
// written (percent-encoding included).
func wireDo(t testing.TB, c *http.Client, method, target, contentType string, body []byte) wireResp {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://pluginsd.invalid"+target, rd)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, target, err)
	}
	return wireResp{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// wireRaw sends one request on a fresh unix-socket connection, writing the
// body concurrently with reading the response. Unlike http.Client it still
// returns the response when the server answers (and stops reading) before
// the whole body is sent, which is what servers do with bodies they refuse.
func wireRaw(t testing.TB, sock, method, target string, header map[string]string, body []byte) wireResp {
	t.Helper()
	resp, err := wireRawErr(sock, method, target, header, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	return resp
}

func wireRawErr(sock, method, target string, header map[string]string, body []byte) (wireResp, error) {
	conn, err := net.DialTimeout("unix", sock, 10*time.Second)
	if err != nil {
		return wireResp{}, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return wireResp{}, err
	}
	req := &http.Request{
		Method: method, URL: u, Host: "api.moby.localhost", Header: http.Header{},
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Close: true,
		ContentLength: int64(len(body)),
	}
	if len(body) > 0 {
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	written := make(chan struct{})
	go func() {
		defer close(written)
		_ = req.Write(conn) // the server may stop reading: ignore EPIPE
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		conn.Close()
		<-written
		return wireResp{}, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	conn.Close()
	<-written
	if err != nil {
		return wireResp{}, err
	}
	return wireResp{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// wireKeys returns the keys of the JSON object raw, in wire order.
func wireKeys(t testing.TB, raw []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object (%v): %s", err, raw)
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatalf("bad JSON object: %v: %s", err, raw)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatalf("bad JSON object: %v: %s", err, raw)
		}
	}
	return keys
}

// wireField returns the raw value of key in the JSON object raw (nil when
// absent).
func wireField(t testing.TB, raw []byte, key string) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("not a JSON object (%v): %s", err, raw)
	}
	return m[key]
}

// wireMessage checks that r is a JSON error body with exactly dockerd's
// framing and returns its message.
func wireMessage(t testing.TB, r wireResp) string {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type = %q, want application/json exactly (%s)", ct, r)
	}
	if !bytes.HasSuffix(r.Body, []byte("}\n")) {
		t.Errorf("error body does not end with }\\n: %q", r.Body)
	}
	if keys := wireKeys(t, r.Body); !slices.Equal(keys, []string{"message"}) {
		t.Errorf("error body keys = %v, want [message]", keys)
	}
	var e struct{ Message string }
	if err := json.Unmarshal(r.Body, &e); err != nil {
		t.Fatalf("error body: %v: %q", err, r.Body)
	}
	if e.Message == "" {
		t.Errorf("empty error message: %s", r)
	}
	return e.Message
}

// wireWantError checks status and that the JSON message contains want.
func wireWantError(t testing.TB, r wireResp, status int, want string) {
	t.Helper()
	if r.Status != status {
		t.Errorf("status %d, want %d: %s", r.Status, status, r)
		return
	}
	if msg := wireMessage(t, r); !strings.Contains(msg, want) {
		t.Errorf("message %q does not contain %q", msg, want)
	}
}

// wireCreate creates a plugin named name from config through raw HTTP and
// returns its ID.
func wireCreate(t testing.TB, d *daemon, name, config string) string {
	t.Helper()
	c := wireClient(d)
	r := wireDo(t, c, "POST", "/plugins/create?name="+url.QueryEscape(name), "application/x-tar", biContext(t, config))
	if r.Status != http.StatusNoContent || len(r.Body) != 0 {
		t.Fatalf("create %s: %s", name, r)
	}
	r = wireDo(t, c, "GET", "/plugins/"+url.PathEscape(name)+"/json", "", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("inspect %s after create: %s", name, r)
	}
	var p struct{ Id string }
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Fatal(err)
	}
	return p.Id
}

// wireListNames returns the sorted names of GET target (a list).
func wireListNames(t testing.TB, c *http.Client, target string) []string {
	t.Helper()
	r := wireDo(t, c, "GET", target, "", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET %s: %s", target, r)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q", target, ct)
	}
	var ps []struct{ Name string }
	if err := json.Unmarshal(r.Body, &ps); err != nil {
		t.Fatalf("GET %s: %v: %q", target, err, r.Body)
	}
	if ps == nil {
		t.Errorf("GET %s: null instead of an array: %q", target, r.Body)
	}
	names := []string{}
	for _, p := range ps {
		names = append(names, p.Name)
	}
	slices.Sort(names)
	return names
}

const minimalConfig = `{"description":"minimal <&> plugin","entrypoint":["/testplugin"],` +
	`"interface":{"socket":"m.sock","types":["docker.volumedriver/1.0"]}}`

// engineHeaders checks the headers dockerd's middleware sets on every routed
// response (experimental: whether Docker-Experimental is expected).
func checkEngineHeaders(t testing.TB, what string, r wireResp, experimental bool) {
	t.Helper()
	if v := r.Header.Get("Api-Version"); v != "1.57" {
		t.Errorf("%s: Api-Version %q, want 1.57", what, v)
	}
	if v := r.Header.Get("Ostype"); v != runtime.GOOS {
		t.Errorf("%s: Ostype %q", what, v)
	}
	if v := r.Header.Get("Server"); v == "" {
		t.Errorf("%s: no Server header", what)
	}
	if r.Header.Get("Date") == "" {
		t.Errorf("%s: no Date header", what)
	}
	_, has := r.Header["Docker-Experimental"]
	switch {
	case experimental && r.Header.Get("Docker-Experimental") != "false":
		t.Errorf("%s: Docker-Experimental %q, want false", what, r.Header.Get("Docker-Experimental"))
	case !experimental && has:
		t.Errorf("%s: Docker-Experimental present on a version error", what)
	}
}

func TestWirePing(t *testing.T) {
	d := startDaemon(t, "")
	c := wireClient(d)
	for _, p := range []string{"/_ping", "/v1.24/_ping", "/v1.41/_ping", "/v1.57/_ping"} {
		r := wireDo(t, c, "GET", p, "", nil)
		if r.Status != 200 || string(r.Body) != "OK" {
			t.Errorf("GET %s: %s", p, r)
		}
		checkEngineHeaders(t, "GET "+p, r, true)
		for k, want := range map[string]string{
			"Content-Type":  "text/plain; charset=utf-8",
			"Cache-Control": "no-cache, no-store, must-revalidate",
			"Pragma":        "no-cache",
		} {
			if got := r.Header.Get(k); got != want {
				t.Errorf("GET %s: %s = %q, want %q", p, k, got, want)
			}
		}
		h := wireDo(t, c, "HEAD", p, "", nil)
		if h.Status != 200 || len(h.Body) != 0 || h.Header.Get("Content-Length") != "0" {
			t.Errorf("HEAD %s: %s Content-Length %q", p, h, h.Header.Get("Content-Length"))
		}
		checkEngineHeaders(t, "HEAD "+p, h, true)
		for _, k := range []string{"Content-Type", "Cache-Control", "Pragma"} {
			if h.Header.Get(k) != r.Header.Get(k) {
				t.Errorf("HEAD %s: %s = %q, GET has %q", p, k, h.Header.Get(k), r.Header.Get(k))
			}
		}
	}
	// Out of range: 400 before the handler, without Docker-Experimental.
	r := wireDo(t, c, "GET", "/v9.99/_ping", "", nil)
	wireWantError(t, r, 400, "client version 9.99 is too new. Maximum supported API version is 1.57")
	checkEngineHeaders(t, "GET /v9.99/_ping", r, false)
	h := wireDo(t, c, "HEAD", "/v1.11/_ping", "", nil)
	if h.Status != 400 || len(h.Body) != 0 {
		t.Errorf("HEAD /v1.11/_ping: %s", h)
	}
	// POST is not a ping route.
	wireWantNotFound(t, wireDo(t, c, "POST", "/_ping", "", nil), "POST /_ping")
}

func TestWireVersion(t *testing.T) {
	d := startDaemon(t, "")
	c := wireClient(d)
	for _, p := range []string{"/version", "/v1.24/version", "/v1.57/version"} {
		r := wireDo(t, c, "GET", p, "", nil)
		if r.Status != 200 || r.Header.Get("Content-Type") != "application/json" || !bytes.HasSuffix(r.Body, []byte("}\n")) {
			t.Fatalf("GET %s: %s", p, r)
		}
		checkEngineHeaders(t, p, r, true)
		keys := wireKeys(t, r.Body)
		// dockerd's types.Version field order; optional keys may be absent
		// but those present must keep this order.
		order := []string{"Platform", "Components", "Version", "ApiVersion", "MinAPIVersion", "GitCommit",
			"GoVersion", "Os", "Arch", "KernelVersion", "Experimental", "BuildTime"}
		if len(keys) < 5 || !slices.Equal(keys[:5], order[:5]) {
			t.Errorf("GET %s: keys start %v, want %v", p, keys, order[:5])
		}
		last := -1
		for _, k := range keys {
			i := slices.Index(order, k)
			if i < 0 {
				t.Errorf("GET %s: unexpected key %q", p, k)
				continue
			}
			if i < last {
				t.Errorf("GET %s: key %q out of order in %v", p, k, keys)
			}
			last = i
		}
		for _, k := range []string{"Version", "ApiVersion", "MinAPIVersion", "GitCommit", "GoVersion", "Os", "Arch"} {
			if !slices.Contains(keys, k) {
				t.Errorf("GET %s: missing key %s", p, k)
			}
		}
		var v struct {
			Platform                                                struct{ Name string }
			Components                                              []struct{ Name, Version string }
			Version, ApiVersion, MinAPIVersion, Os, Arch, GoVersion string
		}
		if err := json.Unmarshal(r.Body, &v); err != nil {
			t.Fatal(err)
		}
		if v.Version != "test" || v.ApiVersion != "1.57" || v.MinAPIVersion != "1.24" ||
			v.Os != runtime.GOOS || v.Arch != runtime.GOARCH || !strings.HasPrefix(v.GoVersion, "go") {
			t.Errorf("GET %s: %+v", p, v)
		}
		if v.Components == nil {
			t.Errorf("GET %s: Components is null", p)
		}
	}
	r := wireDo(t, c, "GET", "/v1.23/version", "", nil)
	if r.Status != 400 || r.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("GET /v1.23/version: %s", r)
	}
}

func TestWireVersionedPaths(t *testing.T) {
	d := startDaemon(t, "")
	c := wireClient(d)
	for _, p := range []string{"/plugins", "/v1.24/plugins", "/v1.41/plugins", "/v1.57/plugins",
		"/v1.41.0/plugins", "/v01.41/plugins", "/v1.57/plugins?filters=", "/plugins?filters=%7B%7D", "/plugins?filters=null"} {
		r := wireDo(t, c, "GET", p, "", nil)
		if r.Status != 200 || string(r.Body) != "[]\n" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("GET %s on an empty store: %s", p, r)
		}
		checkEngineHeaders(t, p, r, true)
	}

	// Too old: plain text, as dockerd answers requests below 1.24.
	r := wireDo(t, c, "GET", "/v1.23/plugins", "", nil)
	want := "client version 1.23 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version\n"
	if r.Status != 400 || string(r.Body) != want {
		t.Errorf("GET /v1.23/plugins: %s", r)
	}
	if ct := r.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("GET /v1.23/plugins: Content-Type %q", ct)
	}
	if v := r.Header.Get("X-Content-Type-Options"); v != "nosniff" {
		t.Errorf("GET /v1.23/plugins: X-Content-Type-Options %q", v)
	}
	checkEngineHeaders(t, "/v1.23/plugins", r, false)
	r = wireDo(t, c, "GET", "/v1.12/plugins/nosuch/json", "", nil)
	if r.Status != 400 || !strings.HasPrefix(string(r.Body), "client version 1.12 is too old") {
		t.Errorf("GET /v1.12/plugins/nosuch/json: %s", r)
	}

	// Too new: JSON.
	r = wireDo(t, c, "GET", "/v9.99/plugins", "", nil)
	if string(r.Body) != `{"message":"client version 9.99 is too new. Maximum supported API version is 1.57"}`+"\n" {
		t.Errorf("GET /v9.99/plugins body %q", r.Body)
	}
	wireWantError(t, r, 400, "too new")
	checkEngineHeaders(t, "/v9.99/plugins", r, false)
	wireWantError(t, wireDo(t, c, "GET", "/v1.58/plugins", "", nil), 400, "client version 1.58 is too new")
	wireWantError(t, wireDo(t, c, "POST", "/v1.57.1/plugins/create?name=x", "application/x-tar", nil), 400, "client version 1.57.1 is too new")

	// A filtered list that matches nothing is [] too.
	wireCreate(t, d, "one", minimalConfig)
	r = wireDo(t, c, "GET", "/plugins?filters="+url.QueryEscape(`{"enabled":{"true":true}}`), "", nil)
	if r.Status != 200 || string(r.Body) != "[]\n" {
		t.Errorf("filtered list matching nothing: %s", r)
	}
}

// wireWantNotFound checks dockerd's router 404: exact body, exact
// Content-Type, and none of the middleware's headers.
func wireWantNotFound(t testing.TB, r wireResp, what string) {
	t.Helper()
	if r.Status != 404 {
		t.Errorf("%s: status %d, want 404: %s", what, r.Status, r)
		return
	}
	// HEAD responses carry no body; everything else is byte-exact.
	if !strings.HasPrefix(what, "HEAD ") && string(r.Body) != `{"message":"page not found"}`+"\n" {
		t.Errorf("%s: body %q", what, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q, want application/json", what, ct)
	}
	for _, k := range []string{"Api-Version", "Server", "Ostype", "Docker-Experimental", "Allow"} {
		if _, ok := r.Header[k]; ok {
			t.Errorf("%s: has %s header %q", what, k, r.Header.Get(k))
		}
	}
}

func TestWireNotFound(t *testing.T) {
	d := startDaemon(t, "")
	c := wireClient(d)
	wireCreate(t, d, "x", minimalConfig) // so that /plugins/x/... names a real plugin
	cases := [][2]string{
		{"PUT", "/plugins"},
		{"POST", "/plugins"},
		{"DELETE", "/plugins"},
		{"GET", "/plugins/pull"},
		{"POST", "/plugins/x/json"},
		{"GET", "/plugins/"},
		{"GET", "/plugins/json"},
		{"GET", "/plugins/x"},
		{"PUT", "/plugins/x"},
		{"GET", "/plugins/x/set"},
		{"POST", "/plugins/x/nosuchaction"},
		{"GET", "/plugins/create"},
		{"PUT", "/plugins/create"},
		{"PATCH", "/plugins/x"},
		// dockerd has no OPTIONS routes (Echo would answer 204 + Allow).
		{"OPTIONS", "/plugins"},
		{"OPTIONS", "/_ping"},
		{"OPTIONS", "/plugins/x/json"},
		{"OPTIONS", "/plugins/create"},
		{"OPTIONS", "/nosuch"},
		{"GET", "/nosuch"},
		{"GET", "/"},
		{"GET", "/v1.41"},
		{"GET", "/vx/plugins"},
		{"GET", "/v1.4a/plugins"},
		{"POST", "/version"},
		{"DELETE", "/_ping"},
	}
	for _, v := range []string{"", "/v1.41", "/v1.57"} {
		for _, tc := range cases {
			what := tc[0] + " " + v + tc[1]
			wireWantNotFound(t, wireDo(t, c, tc[0], v+tc[1], "", nil), what)
		}
	}
	// HEAD is mapped to GET only for /_ping. The body is empty by HTTP's
	// rules; the headers are still the router's 404.
	for _, p := range []string{"/plugins", "/v1.41/plugins", "/plugins/x/json", "/version"} {
		r := wireDo(t, c, "HEAD", p, "", nil)
		// As dockerd, the JSON error's headers, with the body dropped.
		wireWantNotFound(t, r, "HEAD "+p)
	}
	// The version check does not run for unrouted paths: the router answers.
	wireWantNotFound(t, wireDo(t, c, "PUT", "/v9.99/plugins", "", nil), "PUT /v9.99/plugins")
}

func TestWireErrorBodies(t *testing.T) {
	d := startDaemon(t, "")
	c := wireClient(d)
	for _, tc := range []struct {
		method, target, ct string
		body               []byte
		status             int
		msg                string
	}{
		{"GET", "/plugins/nosuch/json", "", nil, 404, `plugin "nosuch" not found`},
		{"GET", "/v1.41/plugins/nosuch:1.0/json", "", nil, 404, `plugin "nosuch:1.0" not found`},
		// dockerd answers 404 "not found" for names that cannot parse;
		// pluginsd deliberately says why with a 400 (pluginstore.Resolve).
		{"GET", "/plugins/Spec-A/json", "", nil, 400, `invalid plugin name "Spec-A"`},
		{"DELETE", "/plugins/x/json", "", nil, 404, `plugin "x/json" not found`}, // route 4 matches across "/"
		{"GET", "/plugins/" + strings.Repeat("a", 64) + "/json", "", nil, 404, `plugin "` + strings.Repeat("a", 64) + `" not found`},
		{"DELETE", "/plugins/nosuch?force=1", "", nil, 404, `plugin "nosuch" not found`},
		{"POST", "/plugins/nosuch/set", "application/json", []byte(`["A=1"]`), 404, `plugin "nosuch" not found`},
		{"POST", "/plugins/create?name=Bad", "application/x-tar", nil, 400, "must be lowercase"},
		{"GET", "/plugins?filters=notjson", "", nil, 400, "invalid filter"},
	} {
		r := wireDo(t, c, tc.method, tc.target, tc.ct, tc.body)
		what := tc.method + " " + tc.target
		if r.Status != tc.status {
			t.Errorf("%s: %s, want %d", what, r, tc.status)
			continue
		}
		if msg := wireMessage(t, r); !strings.Contains(msg, tc.msg) {
			t.Errorf("%s: message %q, want %q", what, msg, tc.msg)
		}
		checkEngineHeaders(t, what, r, true)
	}
	// HTML stays literal in error messages, as in every JSON body.
	r := wireDo(t, c, "GET", "/plugins/a<b>&c/json", "", nil)
	if !strings.HasPrefix(string(r.Body), `{"message":"invalid plugin name \"a<b>&c\"`) {
		t.Errorf("error body with <>&: %q", r.Body)
	}
}

func TestWireInspectShape(t *testing.T) {
	d := startDaemon(t, "")
	c := wireClient(d)
	id := wireCreate(t, d, "min", minimalConfig)
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(id) {
		t.Fatalf("Id %q", id)
	}
	r := wireDo(t, c, "GET", "/plugins/min/json", "", nil)
	if r.Status != 200 || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("inspect: %s", r)
	}
	diff := regexp.MustCompile(`"diff_ids":\["(sha256:[0-9a-f]{64})"\]`).FindSubmatch(r.Body)
	if diff == nil {
		t.Fatalf("no diff_ids in %s", r.Body)
	}
	// The layer digest is the diff ID (compressed digest, spec §3.5).
	if _, err := os.Stat(filepath.Join(d.root, "data", "blobs", "sha256", strings.TrimPrefix(string(diff[1]), "sha256:"))); err != nil {
		t.Errorf("layer blob of diff_id: %v", err)
	}
	body := func(dockerVersion string) string {
		return `{"Config":{"Args":{"Description":"","Name":"","Settable":null,"Value":null},` +
			`"Description":"minimal <&> plugin",` + dockerVersion + `"Documentation":"","Entrypoint":["/testplugin"],"Env":null,` +
			`"Interface":{"Socket":"m.sock","Types":["docker.volumedriver/1.0"]},"IpcHost":false,` +
			`"Linux":{"AllowAllDevices":false,"Capabilities":null,"Devices":null},"Mounts":null,"Network":{"Type":""},` +
			`"PidHost":false,"PropagatedMount":"","User":{},"WorkDir":"",` +
			`"rootfs":{"diff_ids":["` + string(diff[1]) + `"],"type":"layers"}},` +
			`"Enabled":false,"Id":"` + id + `","Name":"min:latest","PluginReference":"min:latest",` +
			`"Settings":{"Args":[],"Devices":[],"Env":[],"Mounts":[]}}` + "\n"
	}
	withDV, withoutDV := body(`"DockerVersion":"test",`), body("")
	for _, tc := range []struct{ path, want string }{
		{"/plugins/min/json", withoutDV},
		{"/v1.57/plugins/min/json", withoutDV},
		{"/v1.51/plugins/min/json", withoutDV},
		{"/v1.50/plugins/min/json", withDV},
		{"/v1.41/plugins/min/json", withDV},
		{"/v1.24/plugins/min/json", withDV},
	} {
		r := wireDo(t, c, "GET", tc.path, "", nil)
		if diff := cmp.Diff(tc.want, string(r.Body)); diff != "" {
			t.Errorf("GET %s (-want +got):\n%s", tc.path, diff)
		}
		// The list holds the same object.
		list := strings.Replace(tc.path, "/min/json", "", 1)
		l := wireDo(t, c, "GET", list, "", nil)
		if want := "[" + strings.TrimSuffix(tc.want, "\n") + "]\n"; string(l.Body) != want {
			t.Errorf("GET %s:\n got %s\nwant %s", list, l.Body, want)
		}
	}

	// Key order, checked structurally on a rich config too.
	wireCreate(t, d, "rich", argsConfig)
	for _, tc := range []struct {
		path   string
		config []string
	}{
		{"/v1.57/plugins/rich/json", []string{"Args", "Description", "Documentation", "Entrypoint", "Env", "Interface",
			"IpcHost", "Linux", "Mounts", "Network", "PidHost", "PropagatedMount", "User", "WorkDir", "rootfs"}},
		{"/v1.41/plugins/rich/json", []string{"Args", "Description", "DockerVersion", "Documentation", "Entrypoint", "Env", "Interface",
			"IpcHost", "Linux", "Mounts", "Network", "PidHost", "PropagatedMount", "User", "WorkDir", "rootfs"}},
	} {
		r := wireDo(t, c, "GET", tc.path, "", nil)
		if got := wireKeys(t, r.Body); !slices.Equal(got, []string{"Config", "Enabled", "Id", "Name", "PluginReference", "Settings"}) {
			t.Errorf("%s: plugin keys %v", tc.path, got)
		}
		cfg := wireField(t, r.Body, "Config")
		if got := wireKeys(t, cfg); !slices.Equal(got, tc.config) {
			t.Errorf("%s: config keys\n got %v\nwant %v", tc.path, got, tc.config)
		}
		if got := wireKeys(t, wireField(t, cfg, "rootfs")); !slices.Equal(got, []string{"diff_ids", "type"}) {
			t.Errorf("%s: rootfs keys %v", tc.path, got)
		}
		if got := wireKeys(t, wireField(t, r.Body, "Settings")); !slices.Equal(got, []string{"Args", "Devices", "Env", "Mounts"}) {
			t.Errorf("%s: settings keys %v", tc.path, got)
		}
		for _, sub := range []struct {
			raw  []byte
			want []string
		}{
			{wireField(t, cfg, "Args"), []string{"Description", "Name", "Settable", "Value"}},
			{wireField(t, cfg, "Linux"), []string{"AllowAllDevices", "Capabilities", "Devices"}},
			{wireField(t, cfg, "Interface"), []string{"Socket", "Types"}},
		} {
			if got := wireKeys(t, sub.raw); !slices.Equal(got, sub.want) {
				t.Errorf("%s: keys %v, want %v", tc.path, got, sub.want)
			}
		}
		for _, want := range []string{
			`"Settings":{"Args":["--one","--two"],"Devices":[{"Description":"","Name":"null","Path":"/dev/null","Settable":["path"]}],"Env":["MODE=volume"],` +
				`"Mounts":[{"Description":"","Destination":"/data","Name":"data","Options":["rbind"],"Settable":null,"Source":"/tmp","Type":"bind"}]}`,
			`"User":{}`, `"IpcHost":true`, `"PidHost":true`,
			`"Env":[{"Description":"","Name":"MODE","Settable":null,"Value":"volume"}]`,
		} {
			if !bytes.Contains(r.Body, []byte(want)) {
				t.Errorf("%s: body lacks %s:\n%s", tc.path, want, r.Body)
			}
		}
	}
}

func TestWireListFilters(t *testing.T) {
	d := startDaemon(t, "")
	c := wireClient(d)
	wireCreate(t, d, "vol", minimalConfig)
	wireCreate(t, d, "mixed", `{"entrypoint":["/x"],"interface":{"socket":"s.sock","types":["docker.volumedriver/1.0","docker.authz/1.0"]}}`)
	wireCreate(t, d, "notypes", `{"entrypoint":["/x"],"interface":{"socket":"s.sock"}}`)
	all := []string{"mixed:latest", "notypes:latest", "vol:latest"}
	q := func(f string) string { return "/plugins?filters=" + url.QueryEscape(f) }
	for _, tc := range []struct {
		filters string
		want    []string
	}{
		{``, all},
		{`{}`, all},
		{`null`, all},
		{`{"enabled":{"false":true}}`, all},
		{`{"enabled":{"0":true}}`, all},
		{`{"enabled":{"true":true}}`, []string{}},
		{`{"enabled":["false"]}`, all},
		{`{"enabled":["true"]}`, []string{}},
		{`{"capability":["volumedriver"]}`, []string{"notypes:latest", "vol:latest"}},
		{`{"capability":{"volumedriver":true}}`, []string{"notypes:latest", "vol:latest"}},
		{`{"capability":{"volume":true}}`, []string{"notypes:latest", "vol:latest"}},
		{`{"capability":{"volume.*":true}}`, []string{"notypes:latest", "vol:latest"}},
		{`{"capability":{"VolumeDriver":true}}`, []string{"notypes:latest"}},
		{`{"capability":{"volumedriver":true,"authz":true}}`, all},
		{`{"capability":["authz"]}`, []string{"notypes:latest"}},
		{`{"capability":{"volumedriver":true},"enabled":{"false":true}}`, []string{"notypes:latest", "vol:latest"}},
	} {
		for _, v := range []string{"", "/v1.41"} {
			target := v + q(tc.filters)
			if tc.filters == "" {
				target = v + "/plugins"
			}
			if got := wireListNames(t, c, target); !slices.Equal(got, tc.want) {
				t.Errorf("filters %s at %q: %v, want %v", tc.filters, v, got, tc.want)
			}
		}
	}
	for _, tc := range []struct{ filters, msg string }{
		{`notjson`, "invalid filter"},
		{`{"enabled":"true"}`, "invalid filter"},
		{`[1]`, "invalid filter"},
		{`{"enable":{"true":true}}`, "invalid filter 'enable'"},
		{`{"label":["a"]}`, "invalid filter 'label'"},
		{`{"enabled":{"maybe":true}}`, "invalid filter 'enabled=[maybe]'"},
		{`{"enabled":["maybe"]}`, "invalid filter 'enabled=[maybe]'"},
		{`{"enabled":{"true":true,"false":true}}`, "invalid filter 'enabled"},
		{`{"enabled":{"true":false}}`, "invalid filter 'enabled"},
		{`{"enabled":{}}`, "invalid filter 'enabled'"},
	} {
		wireWantError(t, wireDo(t, c, "GET", q(tc.filters), "", nil), 400, tc.msg)
	}
}

func TestWireStatusesAndNames(t *testing.T) {
	d := startDaemon(t, "")
	c := wireClient(d)

	// create: 204, no body.
	r := wireDo(t, c, "POST", "/plugins/create?name="+url.QueryEscape("a/b:1.0"), "application/x-tar", biContext(t, volConfig("/tmp")))
	if r.Status != 204 || len(r.Body) != 0 {
		t.Fatalf("create a/b:1.0: %s", r)
	}
	checkEngineHeaders(t, "create", r, true)
	r = wireDo(t, c, "POST", "/v1.41/plugins/create?name=localhost:5000/x/y:2", "", biContext(t, minimalConfig))
	if r.Status != 204 {
		t.Fatalf("create localhost:5000/x/y:2 without Content-Type: %s", r)
	}
	// Plugins named like route keywords stay reachable.
	wireCreate(t, d, "privileges", minimalConfig)
	wireCreate(t, d, "x/json", minimalConfig)
	wireCreate(t, d, "y/set", volConfig("/tmp"))
	if r := wireDo(t, c, "POST", "/plugins/y/set/set", "application/json", []byte(`["DEBUG=9"]`)); r.Status != 204 {
		t.Errorf("POST /plugins/y/set/set: %s", r)
	}
	if r := wireDo(t, c, "DELETE", "/plugins/y/set", "", nil); r.Status != 200 {
		t.Errorf("DELETE /plugins/y/set: %s", r)
	}

	name := func(path string) string {
		t.Helper()
		r := wireDo(t, c, "GET", path, "", nil)
		if r.Status != 200 {
			t.Errorf("GET %s: %s", path, r)
			return ""
		}
		var p struct{ Name string }
		_ = json.Unmarshal(r.Body, &p)
		return p.Name
	}
	for path, want := range map[string]string{
		"/plugins/a/b:1.0/json":                            "a/b:1.0",
		"/plugins/a%2Fb%3A1.0/json":                        "a/b:1.0",
		"/v1.41/plugins/a%2Fb%3A1.0/json":                  "a/b:1.0",
		"/plugins/docker.io/a/b:1.0/json":                  "a/b:1.0",
		"/plugins/localhost:5000/x/y:2/json":               "localhost:5000/x/y:2",
		"/plugins/localhost%3A5000%2Fx%2Fy%3A2/json":       "localhost:5000/x/y:2",
		"/v1.57/plugins/localhost:5000/x/y:2/json":         "localhost:5000/x/y:2",
		"/plugins/privileges/json":                         "privileges:latest",
		"/plugins/privileges:latest/json":                  "privileges:latest",
		"/plugins/docker.io/library/privileges/json":       "privileges:latest",
		"/plugins/index.docker.io/library/privileges/json": "privileges:latest",
	} {
		if got := name(path); got != want {
			t.Errorf("GET %s: name %q, want %q", path, got, want)
		}
	}
	for _, p := range []string{"/plugins/a/b/json", "/plugins/localhost:5000/x/y/json", "/plugins/a/b:1.0:x/json", "/plugins/%20a/b:1.0/json"} {
		// 404 for names that parse, 400 for those that cannot (a
		// deliberate difference from dockerd's 404, see Resolve).
		if r := wireDo(t, c, "GET", p, "", nil); (r.Status != 404 && r.Status != 400) || wireMessage(t, r) == "page not found" {
			t.Errorf("GET %s: %s, want a plugin-not-found 404 or an invalid-name 400", p, r)
		}
	}
	// A path with "//" is redirected to its clean form.
	r = wireDo(t, c, "GET", "/v1.41/plugins//json?x=1", "", nil)
	if r.Status != 301 || r.Header.Get("Location") != "/v1.41/plugins/json?x=1" {
		t.Errorf("GET /v1.41/plugins//json: %s Location %q, want 301 to /v1.41/plugins/json?x=1", r, r.Header.Get("Location"))
	}

	// set: 204, no body, through either spelling of the name.
	for _, p := range []string{"/plugins/a/b:1.0/set", "/plugins/a%2Fb%3A1.0/set"} {
		r := wireDo(t, c, "POST", p, "application/json", []byte(`["DEBUG=3"]`))
		if r.Status != 204 || len(r.Body) != 0 {
			t.Errorf("POST %s: %s", p, r)
		}
	}
	for _, body := range []string{"", "null", "[]"} { // no-ops
		r := wireDo(t, c, "POST", "/plugins/a/b:1.0/set", "application/json", []byte(body))
		if r.Status != 204 {
			t.Errorf("set %q: %s", body, r)
		}
	}
	r = wireDo(t, c, "GET", "/plugins/a/b:1.0/json", "", nil)
	if env := wireField(t, wireField(t, r.Body, "Settings"), "Env"); string(env) != `["MODE=volume","DEBUG=3"]` {
		t.Errorf("env after set: %s", env)
	}
	// Setting logic errors are 400s (dockerd: 500) with dockerd's words.
	wireWantError(t, wireDo(t, c, "POST", "/plugins/a/b:1.0/set", "application/json", []byte(`["NOPE=1"]`)), 400,
		`setting "NOPE" not found in the plugin configuration`)

	// remove: 200, empty body, no Content-Type; both spellings.
	for _, p := range []string{"/plugins/a%2Fb%3A1.0?force=1", "/v1.41/plugins/localhost:5000/x/y:2", "/plugins/privileges", "/plugins/x/json:latest"} {
		r := wireDo(t, c, "DELETE", p, "", nil)
		if r.Status != 200 || len(r.Body) != 0 {
			t.Errorf("DELETE %s: %s", p, r)
		}
		if _, ok := r.Header["Content-Type"]; ok {
			t.Errorf("DELETE %s: Content-Type %q on an empty body", p, r.Header.Get("Content-Type"))
		}
		if cl := r.Header.Get("Content-Length"); cl != "0" {
			t.Errorf("DELETE %s: Content-Length %q", p, cl)
		}
		checkEngineHeaders(t, "DELETE "+p, r, true)
	}
	if got := wireListNames(t, c, "/plugins"); len(got) != 0 {
		t.Errorf("list after removes: %v", got)
	}
	wireWantError(t, wireDo(t, c, "GET", "/plugins/a/b:1.0/json", "", nil), 404, `plugin "a/b:1.0" not found`)
}

// TestWireCreateOverrides: what create computes wins over what config.json
// claims (spec §3.5, §5.9): rootfs, DockerVersion, the name and the
// reference; keys are matched case-insensitively and unknown ones ignored.
func TestWireCreateOverrides(t *testing.T) {
	d := startDaemon(t, "")
	c := wireClient(d)
	cfg := `{"DESCRIPTION":"upper","Entrypoint":["/x"],"interface":{"Socket":"s.sock","types":["docker.volumedriver/1.0"]},` +
		`"dockerVersion":"1.2.3","rootfs":{"type":"bogus","diff_ids":["sha256:` + strings.Repeat("0", 64) + `"]},` +
		`"unknownKey":{"nested":[1,2,3]},"ipchost":true,"propagatedMount":"/data/prop","workdir":"/w","user":{"uid":0,"gid":7}}`
	r := wireDo(t, c, "POST", "/plugins/create?name="+url.QueryEscape("docker.io/library/over"), "application/x-tar", biContext(t, cfg))
	if r.Status != 204 {
		t.Fatalf("create: %s", r)
	}
	r = wireDo(t, c, "GET", "/v1.41/plugins/over/json", "", nil)
	for _, want := range []string{`"Name":"over:latest"`, `"PluginReference":"over:latest"`, `"Description":"upper","DockerVersion":"test",`,
		`"IpcHost":true`, `"PropagatedMount":"/data/prop"`, `"WorkDir":"/w"`, `"User":{"GID":7}`, `"type":"layers"`} {
		if !bytes.Contains(r.Body, []byte(want)) {
			t.Errorf("inspect lacks %s:\n%s", want, r.Body)
		}
	}
	for _, bad := range []string{"bogus", strings.Repeat("0", 64), "unknownKey", "1.2.3"} {
		if bytes.Contains(r.Body, []byte(bad)) {
			t.Errorf("inspect shows config.json's %s:\n%s", bad, r.Body)
		}
	}
	if keys := wireKeys(t, wireField(t, wireField(t, r.Body, "Config"), "User")); !slices.Equal(keys, []string{"GID"}) {
		t.Errorf("User keys %v, want [GID] (UID omitted when 0)", keys)
	}
}
