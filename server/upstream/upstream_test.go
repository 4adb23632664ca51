package upstream

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, network, address string
		ok                   bool
	}{
		{"unix:///run/podman/podman.sock", "unix", "/run/podman/podman.sock", true},
		{"tcp://127.0.0.1:2375", "tcp", "127.0.0.1:2375", true},
		{"tcp://[::1]:2375", "tcp", "[::1]:2375", true},
		{"unix://relative.sock", "", "", false},
		{"unix://", "", "", false},
		{"tcp://host", "", "", false},
		{"tcp://host:2375/base", "", "", false},
		{"http://host:2375", "", "", false},
		{"/run/podman/podman.sock", "", "", false},
	} {
		got, err := Parse(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("Parse(%q): err %v, want ok %v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && (got.network != tc.network || got.address != tc.address || got.String() != tc.in) {
			t.Errorf("Parse(%q) = %+v", tc.in, got)
		}
	}
}

// engine is a fake Engine API on a unix socket: h answers, and every
// request is recorded as "METHOD URI".
type engine struct {
	sock string
	srv  *httptest.Server
	mu   sync.Mutex
	seen []string
}

func newEngine(t *testing.T, h http.HandlerFunc) *engine {
	t.Helper()
	dir, err := os.MkdirTemp("", "up")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e := &engine{sock: filepath.Join(dir, "e.sock")}
	l, err := net.Listen("unix", e.sock)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.seen = append(e.seen, r.Method+" "+r.RequestURI)
		e.mu.Unlock()
		h(w, r)
	}))
	e.srv.Listener.Close()
	e.srv.Listener = l
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	return e
}

func (e *engine) requests() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.seen...)
}

// front serves p on loopback TCP as the server does: errors become 502.
func front(t *testing.T, p *Proxy) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := p.Serve(w, r); err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadGateway)
			_ = json.NewEncoder(w).Encode(map[string]string{"message": err.Error()})
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(p.Close)
	return srv.Listener.Addr().String()
}

func proxyTo(t *testing.T, e *engine) *Proxy {
	t.Helper()
	target, err := Parse("unix://" + e.sock)
	if err != nil {
		t.Fatal(err)
	}
	return New(target)
}

// TestForwardsTheRequestAsSent: the engine gets the URI as the client sent
// it (version prefix, escaped path, query), the headers and the body; the
// client gets the engine's status, headers and body.
func TestForwardsTheRequestAsSent(t *testing.T) {
	var gotBody, gotCT, gotHost string
	e := newEngine(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		gotBody, gotCT, gotHost = string(b), r.Header.Get("Content-Type"), r.Host
		w.Header().Set("Api-Version", "1.41")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"Id":"abc"}`)
	})
	addr := front(t, proxyTo(t, e))
	uri := "/v1.41/containers/create?name=a%2Fb&x=1"
	res, err := http.Post("http://"+addr+uri, "application/json", strings.NewReader(`{"Image":"busybox"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated || string(body) != `{"Id":"abc"}` || res.Header.Get("Api-Version") != "1.41" {
		t.Errorf("answer: %d %v %q", res.StatusCode, res.Header, body)
	}
	if diff := cmp.Diff([]string{"POST " + uri}, e.requests()); diff != "" {
		t.Errorf("engine saw (-want +got):\n%s", diff)
	}
	if gotBody != `{"Image":"busybox"}` || gotCT != "application/json" || gotHost != "api.moby.localhost" {
		t.Errorf("engine got body %q, Content-Type %q, Host %q", gotBody, gotCT, gotHost)
	}
}

// TestStreams: a response without a length reaches the client as it is
// written, headers first.
func TestStreams(t *testing.T) {
	next := make(chan string)
	e := newEngine(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for line := range next {
			_, _ = io.WriteString(w, line+"\n")
			w.(http.Flusher).Flush()
		}
	})
	addr := front(t, proxyTo(t, e))
	res, err := http.Get("http://" + addr + "/v1.41/events")
	if err != nil {
		t.Fatal(err) // the headers came before any event
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	for _, want := range []string{`{"n":1}`, `{"n":2}`} {
		next <- want
		got, err := br.ReadString('\n')
		if err != nil || strings.TrimSpace(got) != want {
			t.Fatalf("read %q, %v; want %q", got, err, want)
		}
	}
	close(next)
	if rest, _ := io.ReadAll(br); len(rest) != 0 {
		t.Errorf("left over: %q", rest)
	}
}

// hijackEcho is an engine endpoint that takes the connection over as
// dockerd's attach does (101 with Upgrade, 200 raw-stream without), then
// echoes what it reads in upper case until the client half-closes, writes
// "bye" and closes.
func hijackEcho(w http.ResponseWriter, r *http.Request) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	if r.Header.Get("Upgrade") == "tcp" {
		fmt.Fprint(conn, "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
	} else {
		fmt.Fprint(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n")
	}
	buf := make([]byte, 1024)
	for {
		n, err := brw.Read(buf)
		if n > 0 {
			_, _ = conn.Write([]byte(strings.ToUpper(string(buf[:n]))))
		}
		if err != nil {
			break
		}
	}
	_, _ = io.WriteString(conn, "bye")
}

// attach sends an attach request on a raw connection, reads the response
// header, sends stdin, half-closes and returns the status line and all the
// output.
func attach(t *testing.T, addr string, upgrade bool) (string, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := "POST /v1.41/containers/c1/attach?stream=1&stdin=1&stdout=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
	if upgrade {
		req += "Connection: Upgrade\r\nUpgrade: tcp\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	status, err := br.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	for { // the rest of the header
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
	}
	if _, err := io.WriteString(conn, "hello "); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // two separate writes
	if _, err := io.WriteString(conn, "engine"); err != nil {
		t.Fatal(err)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("reading the output: %v (got %q)", err, out)
	}
	return strings.TrimSpace(status), string(out)
}

// TestUpgrade: attach with "Upgrade: tcp" switches protocols through the
// proxy; stdin reaches the engine, the half-close too, and the output
// comes back to the end.
func TestUpgrade(t *testing.T) {
	e := newEngine(t, hijackEcho)
	addr := front(t, proxyTo(t, e))
	status, out := attach(t, addr, true)
	if status != "HTTP/1.1 101 UPGRADED" && status != "HTTP/1.1 101 Switching Protocols" {
		t.Errorf("status line %q", status)
	}
	if out != "HELLO ENGINEbye" {
		t.Errorf("output %q", out)
	}
}

// TestRawHijack: attach without Upgrade (old clients): the engine's raw
// stream takes the client's connection over, both ways.
func TestRawHijack(t *testing.T) {
	e := newEngine(t, hijackEcho)
	addr := front(t, proxyTo(t, e))
	status, out := attach(t, addr, false)
	if status != "HTTP/1.1 200 OK" {
		t.Errorf("status line %q", status)
	}
	if out != "HELLO ENGINEbye" {
		t.Errorf("output %q", out)
	}
}

// TestRawPathPlainAnswer: an exec start without Upgrade that the engine
// answers normally (detached) is relayed as a response, and the client's
// connection stays usable.
func TestRawPathPlainAnswer(t *testing.T) {
	e := newEngine(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(b)
	})
	addr := front(t, proxyTo(t, e))
	c := &http.Client{}
	for range 2 { // the same keep-alive connection twice
		res, err := c.Post("http://"+addr+"/v1.41/exec/e1/start", "application/json", strings.NewReader(`{"Detach":true}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(b) != `{"Detach":true}` {
			t.Errorf("answer %d %q", res.StatusCode, b)
		}
	}
	if got := e.requests(); len(got) != 2 || got[0] != "POST /v1.41/exec/e1/start" {
		t.Errorf("engine saw %v", got)
	}
}

// TestEngineDown: a failure to reach the engine is an *Error naming it;
// nothing was written.
func TestEngineDown(t *testing.T) {
	target, err := Parse("unix:///nonexistent/engine.sock")
	if err != nil {
		t.Fatal(err)
	}
	p := New(target)
	for _, r := range []*http.Request{
		httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/v1.41/containers/json", nil),
		httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/v1.41/containers/c/attach", nil),
	} {
		rec := httptest.NewRecorder()
		err = p.Serve(rec, r)
		var ue *Error
		if !errors.As(err, &ue) || !strings.HasPrefix(err.Error(), "upstream engine unix:///nonexistent/engine.sock: ") {
			t.Errorf("%s: error %v", r.RequestURI, err)
		}
		if rec.Body.Len() != 0 {
			t.Errorf("%s: wrote %q", r.RequestURI, rec.Body)
		}
	}
}

// TestEngineCutsTheStream: a stream the engine cuts is cut for the client
// too (an error, not a clean end).
func TestEngineCutsTheStream(t *testing.T) {
	e := newEngine(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "{}\n")
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close() // no final chunk
		}
	})
	addr := front(t, proxyTo(t, e))
	res, err := http.Get("http://" + addr + "/v1.41/events")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err == nil {
		t.Errorf("a cut stream ended cleanly for the client: %q", b)
	}
}

func TestCombineAPIVersion(t *testing.T) {
	for in, want := range map[string]string{"1.41": "1.41", "1.57": "1.57", "1.58": "1.57", "1.60.1": "1.57", "": ""} {
		if got := CombineAPIVersion(in); got != want {
			t.Errorf("CombineAPIVersion(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"1.24": "1.24", "1.12": "1.24", "1.40": "1.40", "": "1.24"} {
		if got := CombineMinAPIVersion(in); got != want {
			t.Errorf("CombineMinAPIVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestVersionBody(t *testing.T) {
	engine := `{"Platform":{"Name":"linux/amd64/debian-12"},"Components":[{"Name":"Podman Engine","Version":"4.3.1"}],` +
		`"Version":"4.3.1","ApiVersion":"1.41","MinAPIVersion":"1.12","Os":"linux"}`
	got, err := VersionBody([]byte(engine), map[string]string{"Name": "pluginsd", "Version": "1.0"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"Platform":{"Name":"linux/amd64/debian-12"},"Components":[{"Name":"Podman Engine","Version":"4.3.1"},{"Name":"pluginsd","Version":"1.0"}],` +
		`"Version":"4.3.1","ApiVersion":"1.41","MinAPIVersion":"1.24","Os":"linux"}` + "\n"
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	got, err = VersionBody([]byte(`{"ApiVersion":"1.60","MinAPIVersion":"1.44"}`), "x")
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"ApiVersion":"1.57","MinAPIVersion":"1.44","Components":["x"]}` + "\n"; string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if _, err := VersionBody([]byte(`[1]`), "x"); err == nil {
		t.Error("a non-object was accepted")
	}
}

func TestInfoBody(t *testing.T) {
	engine := `{"ID":"x","Plugins":{"Volume":["local"],"Network":["bridge"],"Authorization":null,"Log":["journald"]},"Name":"h"}`
	got, err := InfoBody([]byte(engine), map[string][]string{"Volume": {"vol:latest", "local"}, "Authorization": {"az:latest"}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"ID":"x","Plugins":{"Volume":["local","vol:latest"],"Network":["bridge"],"Authorization":["az:latest"],"Log":["journald"]},"Name":"h"}` + "\n"
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	got, err = InfoBody([]byte(`{"ID":"x"}`), map[string][]string{"Volume": {"v"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"ID":"x","Plugins":{"Volume":["v"]}}` + "\n"; string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
