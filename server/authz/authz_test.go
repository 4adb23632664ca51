package authz

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
	"github.com/labstack/echo/v4"
)

// call is one RPC a fake plugin received.
type call struct {
	Plugin string
	Path   string
	Accept string
	CType  string
	Host   string
	Raw    []byte // the body as sent
	Req    Request
}

// log collects the calls of every fake plugin of a test, in order.
type callLog struct {
	mu    sync.Mutex
	calls []call
}

func (l *callLog) add(c call) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, c)
}

func (l *callLog) all() []call {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]call(nil), l.calls...)
}

// summary lists the calls as "plugin phase".
func (l *callLog) summary() []string {
	var out []string
	for _, c := range l.all() {
		out = append(out, c.Plugin+" "+strings.TrimPrefix(c.Path, "/AuthZPlugin."))
	}
	return out
}

// fakePlugin is an AuthZ plugin on a unix socket; reply decides each call.
type fakePlugin struct {
	name   string
	socket string
	reply  func(path string, req Request) (status int, body string)
}

// fakes runs AuthZ plugins for one test and is their Source.
type fakes struct {
	t       *testing.T
	log     *callLog
	plugins map[string]*fakePlugin
	// lookup, when set, overrides the Source's answer for a name.
	lookup func(name string) (string, string, error)
}

func newFakes(t *testing.T) *fakes {
	t.Helper()
	return &fakes{t: t, log: &callLog{}, plugins: map[string]*fakePlugin{}}
}

// dropConnection, as a reply's status, closes the connection without a
// reply (a plugin that dies while answering).
const dropConnection = -1

// allow is a reply that allows everything.
func allow(string, Request) (int, string) { return 200, `{"Allow":true}` }

// add starts plugin name; full is "name:latest".
func (f *fakes) add(name string, reply func(path string, req Request) (int, string)) *fakePlugin {
	t := f.t
	dir, err := os.MkdirTemp("", "az") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := &fakePlugin{name: name, socket: filepath.Join(dir, "p.sock"), reply: reply}
	l, err := net.Listen("unix", p.socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		c := call{Plugin: name, Path: r.URL.Path, Accept: r.Header.Get("Accept"), CType: r.Header.Get("Content-Type"), Host: r.Host, Raw: raw}
		if err := json.Unmarshal(raw, &c.Req); err != nil {
			t.Errorf("plugin %s: body is not a Request: %v", name, err)
		}
		f.log.add(c)
		status, body := p.reply(r.URL.Path, c.Req)
		if status == dropConnection {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	f.plugins[name] = p
	return p
}

func (f *fakes) Lookup(name string) (string, string, error) {
	if f.lookup != nil {
		return f.lookup(name)
	}
	p, ok := f.plugins[strings.TrimSuffix(name, ":latest")]
	if !ok {
		return "", "", errdefs.ErrNotFound.WithMessage("plugin " + name + " not found")
	}
	return p.socket, p.name + ":latest", nil
}

// testErrorHandler maps errors as server/errors.go does, for the classes
// this package produces.
func testErrorHandler(err error, c echo.Context) {
	status := http.StatusInternalServerError
	if he, ok := errors.AsType[*echo.HTTPError](err); ok {
		status = he.Code
	}
	switch {
	case errdefs.IsPermissionDenied(err):
		status = http.StatusForbidden
	case errdefs.IsResourceExhausted(err):
		status = http.StatusRequestEntityTooLarge
	case errdefs.IsUnavailable(err):
		status = http.StatusServiceUnavailable
	case errdefs.IsNotFound(err):
		status = http.StatusNotFound
	case errdefs.IsInvalidArgument(err):
		status = http.StatusBadRequest
	}
	if c.Response().Committed {
		return
	}
	_ = c.JSON(status, map[string]string{"message": err.Error()})
}

// handlerLog records what the handlers saw.
type handlerLog struct {
	mu    sync.Mutex
	runs  int
	body  []byte
	ctype string
}

func (h *handlerLog) ran(body []byte, ctype string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.runs++
	h.body, h.ctype = body, ctype
}

func (h *handlerLog) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.runs
}

// newEcho builds an Echo instance with the middleware of cfg over src and
// test routes:
//
//	POST /v1.41/echo     200 {"got":<len>} after reading the whole body
//	GET  /v1.41/missing  the handler's error: NotFound (404)
//	GET  /v1.41/text     200 text/plain "hello"
//	GET  /v1.41/big      200 application/json of n bytes (query n)
//	POST /v1.41/stream   a flushed progress stream; waits for release
func newEcho(t *testing.T, cfg Config, src Source, hl *handlerLog, release chan struct{}) *echo.Echo {
	t.Helper()
	mw, err := cfg.ToMiddleware(src)
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	e.HTTPErrorHandler = testErrorHandler
	e.POST("/v1.41/echo", func(c echo.Context) error {
		b, err := io.ReadAll(c.Request().Body)
		if err != nil {
			return err
		}
		hl.ran(b, c.Request().Header.Get("Content-Type"))
		c.Response().Header().Set("X-Handler", "yes")
		c.Response().Header().Set("X-Registry-Auth", "secret")
		return c.JSON(http.StatusOK, map[string]int{"got": len(b)})
	}, mw)
	e.GET("/v1.41/missing", func(c echo.Context) error {
		hl.ran(nil, "")
		return errdefs.ErrNotFound.WithMessage(`plugin "nosuch" not found`)
	}, mw)
	e.GET("/v1.41/text", func(c echo.Context) error {
		hl.ran(nil, "")
		return c.String(http.StatusOK, "hello")
	}, mw)
	e.GET("/v1.41/big", func(c echo.Context) error {
		hl.ran(nil, "")
		n := len(c.QueryParam("n"))
		c.Response().Header().Set("Content-Type", "application/json")
		c.Response().WriteHeader(http.StatusOK)
		_, err := c.Response().Write([]byte(`"` + strings.Repeat("x", n*1000) + `"`))
		return err
	}, mw)
	e.POST("/v1.41/stream", func(c echo.Context) error {
		hl.ran(nil, "")
		c.Response().Header().Set("Content-Type", "application/json")
		c.Response().WriteHeader(http.StatusOK)
		_, _ = c.Response().Write([]byte(`{"status":"first"}` + "\r\n"))
		c.Response().Flush()
		<-release
		_, _ = c.Response().Write([]byte(`{"status":"last"}` + "\r\n"))
		c.Response().Flush()
		return nil
	}, mw)
	e.POST("/v1.41/hijack", func(c echo.Context) error {
		hl.ran(nil, "")
		conn, brw, err := http.NewResponseController(c.Response()).Hijack()
		if err != nil {
			return err
		}
		defer conn.Close()
		if c.QueryParam("mark") != "" {
			// As the upstream proxy does: say which status went out.
			c.Response().Committed, c.Response().Status = true, http.StatusOK
		}
		_, _ = brw.WriteString("HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nhello")
		return brw.Flush()
	}, mw)
	return e
}

// serve sends req through e and returns the recorded response.
func serve(e *echo.Echo, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return rec
}

func message(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var m struct{ Message string }
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("body %q: %v", rec.Body, err)
	}
	return m.Message
}

// TestProtocol checks the wire of both phases against what dockerd sends.
func TestProtocol(t *testing.T) {
	f := newFakes(t)
	f.add("az", allow)
	hl := &handlerLog{}
	e := newEcho(t, Config{Plugins: []string{"az"}}, f, hl, nil)

	body := `{"Name":"x","Privileged":true}`
	req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/v1.41/echo?name=a%2Fb&force=1", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Authorization", "Bearer secret")
	req.Header.Set("X-Registry-Auth", "secret")
	req.Header.Set("X-Registry-Config", "secret")
	req.Header.Add("X-Multi", "one")
	req.Header.Add("X-Multi", "two")
	rec := serve(e, req)
	if rec.Code != http.StatusOK || rec.Body.String() != `{"got":30}`+"\n" {
		t.Fatalf("response %d %q", rec.Code, rec.Body)
	}
	if string(hl.body) != body {
		t.Errorf("the handler got %q, want the body unchanged", hl.body)
	}
	if rec.Header().Get("X-Handler") != "yes" {
		t.Errorf("handler headers lost: %v", rec.Header())
	}
	calls := f.log.all()
	if diff := cmp.Diff([]string{"az AuthZReq", "az AuthZRes"}, f.log.summary()); diff != "" {
		t.Fatalf("calls (-want +got):\n%s", diff)
	}
	for _, c := range calls {
		if c.Accept != "application/vnd.docker.plugins.v1.2+json" || c.CType != "" || c.Host != "plugin.moby.localhost" {
			t.Errorf("%s: Accept %q, Content-Type %q, Host %q", c.Path, c.Accept, c.CType, c.Host)
		}
		if !bytes.HasSuffix(c.Raw, []byte("}\n")) {
			t.Errorf("%s: body does not end with a newline: %q", c.Path, c.Raw)
		}
		r := c.Req
		if r.RequestMethod != "POST" || r.RequestURI != "/v1.41/echo?name=a%2Fb&force=1" || string(r.RequestBody) != body {
			t.Errorf("%s: method %q uri %q body %q", c.Path, r.RequestMethod, r.RequestURI, r.RequestBody)
		}
		wantHeaders := map[string]string{"Content-Type": "application/json; charset=utf-8", "X-Multi": "two"}
		if diff := cmp.Diff(wantHeaders, r.RequestHeaders); diff != "" {
			t.Errorf("%s: request headers (-want +got):\n%s", c.Path, diff)
		}
		if r.User != "" || r.UserAuthNMethod != "" || r.RequestPeerCertificates != nil {
			t.Errorf("%s: a client without TLS has a user: %+v", c.Path, r)
		}
	}
	// The body travels as base64, and every field has dockerd's name.
	var raw map[string]any
	if err := json.Unmarshal(calls[1].Raw, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"RequestMethod", "RequestUri", "RequestBody", "RequestHeaders", "ResponseStatusCode", "ResponseBody", "ResponseHeaders"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("AuthZRes lacks %s: %s", k, calls[1].Raw)
		}
	}
	if _, ok := raw["User"]; ok {
		t.Errorf("empty User is not omitted: %s", calls[1].Raw)
	}
	res := calls[1].Req
	if res.ResponseStatusCode != 200 || string(res.ResponseBody) != `{"got":30}`+"\n" {
		t.Errorf("AuthZRes: status %d body %q", res.ResponseStatusCode, res.ResponseBody)
	}
	if res.ResponseHeaders["Content-Type"] != "application/json" || res.ResponseHeaders["X-Handler"] != "yes" {
		t.Errorf("AuthZRes headers: %v", res.ResponseHeaders)
	}
	if _, ok := res.ResponseHeaders["X-Registry-Auth"]; ok {
		t.Errorf("AuthZRes headers keep X-Registry-Auth: %v", res.ResponseHeaders)
	}
	if calls[0].Req.ResponseStatusCode != 0 || calls[0].Req.ResponseHeaders != nil {
		t.Errorf("AuthZReq has response fields: %+v", calls[0].Req)
	}
}

// TestDeny: the first deny stops the chain with 403 and dockerd's message;
// the handler does not run.
func TestDeny(t *testing.T) {
	f := newFakes(t)
	f.add("first", func(path string, r Request) (int, string) {
		if strings.Contains(r.RequestURI, "secret") {
			return 200, `{"Allow":false,"Msg":"no secrets","Err":"ignored"}`
		}
		return 200, `{"Allow":true}`
	})
	f.add("second", func(path string, r Request) (int, string) {
		if strings.Contains(string(r.RequestBody), `"Privileged":true`) {
			return 200, `{"Allow":false,"Msg":"no privileged"}`
		}
		return 200, `{"Allow":true}`
	})
	hl := &handlerLog{}
	e := newEcho(t, Config{Plugins: []string{"first", "second", "first"}}, f, hl, nil)

	rec := serve(e, httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/v1.41/echo?secret=1", http.NoBody))
	if rec.Code != http.StatusForbidden || message(t, rec) != "authorization denied by plugin first:latest: no secrets" {
		t.Errorf("deny by URI: %d %q", rec.Code, rec.Body)
	}
	if diff := cmp.Diff([]string{"first AuthZReq"}, f.log.summary()); diff != "" {
		t.Errorf("calls after the first plugin denied (-want +got):\n%s", diff)
	}

	f.log = &callLog{}
	req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/v1.41/echo", strings.NewReader(`{"Privileged":true}`))
	req.Header.Set("Content-Type", "application/json")
	rec = serve(e, req)
	if rec.Code != http.StatusForbidden || message(t, rec) != "authorization denied by plugin second:latest: no privileged" {
		t.Errorf("deny by body: %d %q", rec.Code, rec.Body)
	}
	if diff := cmp.Diff([]string{"first AuthZReq", "second AuthZReq"}, f.log.summary()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}

	// Allowed by both: both phases in chain order, the repeated name once.
	f.log = &callLog{}
	req = httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/v1.41/echo", strings.NewReader(`{"Privileged":false}`))
	req.Header.Set("Content-Type", "application/json")
	if rec = serve(e, req); rec.Code != http.StatusOK {
		t.Errorf("allowed: %d %q", rec.Code, rec.Body)
	}
	want := []string{"first AuthZReq", "second AuthZReq", "first AuthZRes", "second AuthZRes"}
	if diff := cmp.Diff(want, f.log.summary()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if hl.count() != 1 {
		t.Errorf("the handler ran %d times, want once (for the allowed request)", hl.count())
	}
}

// chunkedReader hides its length, so the request goes out chunked.
type chunkedReader struct{ io.Reader }

// TestBodies: JSON bodies reach the plugins whatever their framing; one
// over the limit is refused before anyone sees it; other bodies are not
// read but the request is still authorized.
func TestBodies(t *testing.T) {
	f := newFakes(t)
	f.add("az", func(path string, r Request) (int, string) {
		if bytes.Contains(r.RequestBody, []byte("evil")) {
			return 200, `{"Allow":false,"Msg":"evil body"}`
		}
		return 200, `{"Allow":true}`
	})
	hl := &handlerLog{}
	e := newEcho(t, Config{Plugins: []string{"az"}, MaxBodySize: 1000}, f, hl, nil)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)

	post := func(ctype string, body io.Reader) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/v1.41/echo", body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", ctype)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	lastReq := func() Request {
		t.Helper()
		calls := f.log.all()
		if len(calls) == 0 {
			t.Fatal("no calls")
		}
		for _, c := range slices.Backward(calls) {
			if c.Path == "/"+apiRequest {
				return c.Req
			}
		}
		t.Fatal("no AuthZReq")
		return Request{}
	}

	// Chunked: the body is forwarded, and denied on its content (B24 a3).
	status, body := post("application/json", chunkedReader{strings.NewReader(`{"x":"evil"}`)})
	if status != http.StatusForbidden || !strings.Contains(body, "evil body") {
		t.Errorf("chunked evil body: %d %s", status, body)
	}
	if got := lastReq(); string(got.RequestBody) != `{"x":"evil"}` || got.RequestHeaders["Transfer-Encoding"] != "" {
		t.Errorf("chunked body forwarded as %q", got.RequestBody)
	}
	status, body = post("application/json", chunkedReader{strings.NewReader(`{"x":"good"}`)})
	if status != http.StatusOK || body != `{"got":12}`+"\n" {
		t.Errorf("chunked good body: %d %s", status, body)
	}

	// Exactly the limit passes; one byte more is 413, before any plugin
	// or the handler (B24 a2), chunked or not.
	runs := hl.count()
	ncalls := len(f.log.all())
	at := `"` + strings.Repeat("a", 998) + `"`
	if status, body = post("application/json", strings.NewReader(at)); status != http.StatusOK {
		t.Errorf("body at the limit: %d %s", status, body)
	}
	if got := lastReq(); len(got.RequestBody) != 1000 {
		t.Errorf("body at the limit forwarded with %d bytes", len(got.RequestBody))
	}
	runs++
	ncalls += 2
	over := `"evil` + strings.Repeat("a", 995) + `"`
	for _, r := range []io.Reader{strings.NewReader(over), chunkedReader{strings.NewReader(over)}} {
		status, body = post("application/json", r)
		if status != http.StatusRequestEntityTooLarge || !strings.Contains(body, "more than 1000 bytes") {
			t.Errorf("body over the limit: %d %s", status, body)
		}
	}
	if hl.count() != runs || len(f.log.all()) != ncalls {
		t.Errorf("a body over the limit reached the handler (%d runs, want %d) or a plugin (%d calls, want %d)",
			hl.count(), runs, len(f.log.all()), ncalls)
	}

	// Not JSON: not read, not forwarded; the handler gets it whole, and
	// the plugin was still asked.
	tarBody := strings.Repeat("t", 5000)
	if status, body = post("application/x-tar", strings.NewReader(tarBody)); status != http.StatusOK || body != `{"got":5000}`+"\n" {
		t.Errorf("tar body: %d %s", status, body)
	}
	if got := lastReq(); got.RequestBody != nil || got.RequestURI != "/v1.41/echo" {
		t.Errorf("tar body forwarded: %d bytes", len(got.RequestBody))
	}
}

// TestResponsePhase: AuthZRes gets the real status (also of errors) and a
// JSON body only; a response-phase deny replaces a held-back response.
func TestResponsePhase(t *testing.T) {
	f := newFakes(t)
	f.add("az", func(path string, r Request) (int, string) {
		if path == "/"+apiResponse && strings.Contains(r.RequestURI, "veto") {
			return 200, `{"Allow":false,"Msg":"not this answer"}`
		}
		return 200, `{"Allow":true}`
	})
	hl := &handlerLog{}
	e := newEcho(t, Config{Plugins: []string{"az"}, MaxResponseBuffer: 10_000}, f, hl, nil)
	lastRes := func() Request {
		t.Helper()
		calls := f.log.all()
		if len(calls) == 0 || calls[len(calls)-1].Path != "/"+apiResponse {
			t.Fatalf("last call is not AuthZRes: %v", f.log.summary())
		}
		return calls[len(calls)-1].Req
	}
	get := func(target string) *httptest.ResponseRecorder {
		return serve(e, httptest.NewRequestWithContext(t.Context(), http.MethodGet, target, http.NoBody))
	}

	rec := get("/v1.41/missing")
	if rec.Code != http.StatusNotFound {
		t.Errorf("missing: %d %q", rec.Code, rec.Body)
	}
	if res := lastRes(); res.ResponseStatusCode != 404 || string(res.ResponseBody) != `{"message":"plugin \"nosuch\" not found"}`+"\n" {
		t.Errorf("AuthZRes of a 404: status %d body %q", res.ResponseStatusCode, res.ResponseBody)
	}

	if rec = get("/v1.41/text"); rec.Code != 200 || rec.Body.String() != "hello" {
		t.Errorf("text: %d %q", rec.Code, rec.Body)
	}
	if res := lastRes(); res.ResponseStatusCode != 200 || res.ResponseBody != nil || !strings.HasPrefix(res.ResponseHeaders["Content-Type"], "text/plain") {
		t.Errorf("AuthZRes of text: %+v", res)
	}

	// A held-back response is replaced by the deny, without its headers.
	rec = get("/v1.41/missing?veto=1")
	if rec.Code != http.StatusForbidden || message(t, rec) != "authorization denied by plugin az:latest: not this answer" {
		t.Errorf("response-phase deny: %d %q", rec.Code, rec.Body)
	}
	hl2 := &handlerLog{}
	e2 := newEcho(t, Config{Plugins: []string{"az"}, MaxResponseBuffer: 10_000}, f, hl2, nil)
	req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/v1.41/echo?veto=1", http.NoBody)
	rec = serve(e2, req)
	if rec.Code != http.StatusForbidden || rec.Header().Get("X-Handler") != "" || hl2.count() != 1 {
		t.Errorf("response-phase deny after the handler ran: %d %v %q (runs %d)", rec.Code, rec.Header(), rec.Body, hl2.count())
	}

	// Within the buffer the body is forwarded and a deny still replaces
	// it; past it, the response streams and the body is not forwarded.
	if rec = get("/v1.41/big?n=xxxxxxxxx&veto=1"); rec.Code != http.StatusForbidden {
		t.Errorf("9 kB response, vetoed: %d", rec.Code)
	}
	if res := lastRes(); len(res.ResponseBody) != 9002 {
		t.Errorf("9 kB response: %d body bytes forwarded", len(res.ResponseBody))
	}
	rec = get("/v1.41/big?n=xxxxxxxxxxxx&veto=1")
	if rec.Code != http.StatusOK || rec.Body.Len() != 12002 {
		t.Errorf("12 kB response, vetoed after it streamed: %d, %d bytes", rec.Code, rec.Body.Len())
	}
	if res := lastRes(); res.ResponseStatusCode != 200 || res.ResponseBody != nil {
		t.Errorf("AuthZRes of a streamed response: status %d, %d body bytes", res.ResponseStatusCode, len(res.ResponseBody))
	}
}

// TestStreaming: a handler that flushes reaches the client at once; the
// response phase runs when the stream ends, with the real status.
func TestStreaming(t *testing.T) {
	f := newFakes(t)
	f.add("az", func(path string, r Request) (int, string) {
		if path == "/"+apiResponse {
			return 200, `{"Allow":false,"Msg":"too late"}`
		}
		return 200, `{"Allow":true}`
	})
	release := make(chan struct{})
	e := newEcho(t, Config{Plugins: []string{"az"}}, f, &handlerLog{}, release)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/v1.41/stream", http.NoBody)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadString('\n')
	if err != nil || first != `{"status":"first"}`+"\r\n" || resp.StatusCode != http.StatusOK {
		t.Fatalf("first line before the handler ended: %d %q %v", resp.StatusCode, first, err)
	}
	if diff := cmp.Diff([]string{"az AuthZReq"}, f.log.summary()); diff != "" {
		t.Errorf("calls while streaming (-want +got):\n%s", diff)
	}
	close(release)
	rest, _ := io.ReadAll(br)
	if string(rest) != `{"status":"last"}`+"\r\n" {
		t.Errorf("rest of the stream: %q (a late deny cannot change it)", rest)
	}
	calls := f.log.all()
	if len(calls) != 2 || calls[1].Req.ResponseStatusCode != 200 || calls[1].Req.ResponseBody != nil {
		t.Errorf("AuthZRes after the stream: %+v", calls)
	}
}

// TestHijack: a handler may take the connection over (attach and exec
// through the upstream proxy); the response phase then runs with status
// 101, or the status the handler marked, and cannot veto anything.
func TestHijack(t *testing.T) {
	f := newFakes(t)
	f.add("az", func(path string, r Request) (int, string) {
		if path == "/"+apiResponse {
			return 200, `{"Allow":false,"Msg":"too late"}`
		}
		return 200, `{"Allow":true}`
	})
	e := newEcho(t, Config{Plugins: []string{"az"}}, f, &handlerLog{}, nil)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	for _, tt := range []struct {
		query  string
		status int
	}{{"", http.StatusSwitchingProtocols}, {"?mark=1", http.StatusOK}} {
		f.log = &callLog{}
		var d net.Dialer
		conn, err := d.DialContext(t.Context(), "tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(conn, "POST /v1.41/hijack"+tt.query+" HTTP/1.1\r\nHost: x\r\nUpgrade: tcp\r\nConnection: Upgrade\r\n\r\n")
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, _ := io.ReadAll(conn)
		conn.Close()
		if string(got) != "HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nhello" {
			t.Errorf("hijacked connection got %q", got)
		}
		deadline := time.Now().Add(5 * time.Second)
		for len(f.log.all()) < 2 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		calls := f.log.all()
		if len(calls) != 2 || calls[1].Req.ResponseStatusCode != tt.status {
			t.Errorf("%q: calls %v, want AuthZRes with status %d", tt.query, f.log.summary(), tt.status)
		}
	}
}

// TestFailClosed: nothing is allowed because a plugin could not be asked.
func TestFailClosed(t *testing.T) {
	hl := &handlerLog{}
	for _, tt := range []struct {
		name   string
		reply  func(string, Request) (int, string)
		lookup func(string) (string, string, error)
		status int
		msg    string
	}{
		{name: "error reply", reply: func(string, Request) (int, string) { return 500, `{"Err":"policy engine down"}` },
			status: 500, msg: "plugin az:latest failed with error: AuthZPlugin.AuthZReq: policy engine down"},
		{name: "garbage", reply: func(string, Request) (int, string) { return 200, `<html>` },
			status: 500, msg: "plugin az:latest failed with error: AuthZPlugin.AuthZReq: invalid reply"},
		{name: "empty object", reply: func(string, Request) (int, string) { return 200, `{}` },
			status: 403, msg: "authorization denied by plugin az:latest: "},
		{name: "Err beside Allow is ignored", reply: func(string, Request) (int, string) { return 200, `{"Allow":true,"Err":"x"}` },
			status: 200},
		{name: "not found", reply: allow, lookup: func(n string) (string, string, error) {
			return "", "", errdefs.ErrNotFound.WithMessage(`plugin "az" not found`)
		}, status: 500, msg: `plugin az failed with error: plugin "az" not found`},
		{name: "restarting", reply: allow, lookup: func(n string) (string, string, error) {
			return "", "", errdefs.ErrUnavailable.WithMessage("plugin az:latest is not running")
		}, status: 503, msg: "authorization plugin az is not available: plugin az:latest is not running"},
		{name: "connection dropped", reply: func(string, Request) (int, string) { return dropConnection, "" },
			status: 503, msg: "authorization plugin az:latest is not available: AuthZPlugin.AuthZReq: the plugin's process is not reachable"},
		{name: "socket gone", reply: allow, lookup: func(n string) (string, string, error) {
			return "/nonexistent/p.sock", "az:latest", nil
		}, status: 503, msg: "authorization plugin az:latest is not available: "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakes(t)
			f.add("az", tt.reply)
			f.lookup = tt.lookup
			e := newEcho(t, Config{Plugins: []string{"az"}}, f, hl, nil)
			before := hl.count()
			rec := serve(e, httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/v1.41/echo", http.NoBody))
			if rec.Code != tt.status {
				t.Errorf("status %d, want %d (%q)", rec.Code, tt.status, rec.Body)
			}
			if tt.status != 200 {
				if got := message(t, rec); !strings.HasPrefix(got, tt.msg) {
					t.Errorf("message %q, want prefix %q", got, tt.msg)
				}
				if hl.count() != before {
					t.Error("the handler ran")
				}
			}
		})
	}
}

// TestTimeout: a plugin that does not answer fails the request (500) once
// the timeout passed.
func TestTimeout(t *testing.T) {
	f := newFakes(t)
	stuck := make(chan struct{})
	f.add("az", func(string, Request) (int, string) { <-stuck; return 200, `{"Allow":true}` })
	t.Cleanup(func() { close(stuck) }) // before the plugin's server closes
	e := newEcho(t, Config{Plugins: []string{"az"}, Timeout: 200 * time.Millisecond}, f, &handlerLog{}, nil)
	start := time.Now()
	rec := serve(e, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/v1.41/text", http.NoBody))
	if rec.Code != 500 || !strings.Contains(message(t, rec), "plugin az:latest failed with error") {
		t.Errorf("stuck plugin: %d %q", rec.Code, rec.Body)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("took %v", el)
	}
}

// TestTLSUser: the CN of a verified client certificate is the User.
func TestTLSUser(t *testing.T) {
	f := newFakes(t)
	f.add("az", allow)
	e := newEcho(t, Config{Plugins: []string{"az"}}, f, &handlerLog{}, nil)
	cert := selfSigned(t, "alice")

	for _, verified := range []bool{true, false} {
		f.log = &callLog{}
		req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/v1.41/text", http.NoBody)
		req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
		if verified {
			req.TLS.VerifiedChains = [][]*x509.Certificate{{cert}}
		}
		if rec := serve(e, req); rec.Code != 200 {
			t.Fatalf("status %d", rec.Code)
		}
		r := f.log.all()[0].Req
		if !verified {
			if r.User != "" || r.UserAuthNMethod != "" {
				t.Errorf("an unverified certificate names a user: %+v", r)
			}
			continue
		}
		if r.User != "alice" || r.UserAuthNMethod != "TLS" || len(r.RequestPeerCertificates) != 1 {
			t.Fatalf("User %q method %q certs %d", r.User, r.UserAuthNMethod, len(r.RequestPeerCertificates))
		}
		block, _ := pem.Decode(r.RequestPeerCertificates[0])
		if block == nil || block.Type != "CERTIFICATE" || !bytes.Equal(block.Bytes, cert.Raw) {
			t.Errorf("peer certificate is not the client's in PEM: %q", r.RequestPeerCertificates[0])
		}
	}
}

func selfSigned(t *testing.T, cn string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestConfigErrors(t *testing.T) {
	f := newFakes(t)
	for _, tt := range []struct {
		name string
		cfg  Config
		src  Source
	}{
		{"no plugins", Config{}, f},
		{"empty name", Config{Plugins: []string{"a", ""}}, f},
		{"no source", Config{Plugins: []string{"a"}}, nil},
		{"negative", Config{Plugins: []string{"a"}, Timeout: -1}, f},
	} {
		if _, err := tt.cfg.ToMiddleware(tt.src); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
}

func TestWaitReady(t *testing.T) {
	var mu sync.Mutex
	tries := map[string]int{}
	src := SourceFunc(func(name string) (string, string, error) {
		mu.Lock()
		defer mu.Unlock()
		tries[name]++
		switch name {
		case "slow", "slow:latest":
			if tries[name] < 3 {
				return "", "", errdefs.ErrUnavailable.WithMessage("starting")
			}
			return "/s", "slow:latest", nil
		case "never":
			return "", "", errdefs.ErrUnavailable.WithMessage("starting")
		case "gone":
			return "", "", errdefs.ErrNotFound.WithMessage(`plugin "gone" not found`)
		}
		return "/a", name + ":latest", nil
	})
	full, err := WaitReady(t.Context(), src, []string{"a", "slow", "slow:latest", "b"})
	if err != nil || !cmp.Equal(full, []string{"a:latest", "slow:latest", "b:latest"}) {
		t.Errorf("WaitReady = %v, %v", full, err)
	}
	if _, err := WaitReady(t.Context(), src, []string{"a", "gone"}); err == nil || err.Error() != `authorization plugin gone: plugin "gone" not found` {
		t.Errorf("missing plugin: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if _, err := WaitReady(ctx, src, []string{"never"}); err == nil || !strings.Contains(err.Error(), "not ready: starting") {
		t.Errorf("plugin never ready: %v", err)
	}
}
