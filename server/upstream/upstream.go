// Package upstream puts pluginsd in front of another Engine API (--upstream):
// requests pluginsd does not serve itself are proxied to that engine, so that
// one DOCKER_HOST serves `docker plugin ...` from pluginsd and everything
// else from the engine (Podman's Docker-compatible service, say, which has
// no managed plugins).
//
// What is proxied, and how:
//
//   - The request goes out with the URI the client sent, version prefix and
//     query untouched (RequestURI, not the routed path), with its headers
//     (minus the hop-by-hop ones) and its body streamed.
//   - Responses stream: a response without a Content-Length (logs, events,
//     stats, pull progress, attach output) is flushed on every write, and
//     its headers as soon as they arrive. A response with a Content-Length
//     is written as it comes but not flushed early, so the AuthZ
//     middleware can still hold it for its response phase.
//   - Connections the engine takes over:
//     with "Connection: Upgrade" (every Docker client since API 1.22 sends
//     "Upgrade: tcp" for attach and exec start; BuildKit's /session and
//     /grpc use "Upgrade: h2c"), the engine's 101 is relayed and both
//     directions are copied, half-closes included;
//     without it (older clients), POST /containers/{id}/attach and
//     POST /exec/{id}/start are forwarded on a connection of their own, and
//     when the engine answers with a raw stream (200 and
//     application/vnd.docker.raw-stream or multiplexed-stream, no length),
//     the client's connection is taken over and spliced to it. Any other
//     request without Upgrade is plain HTTP, so a hijack the proxy does not
//     know about would carry output only (stdin would not reach the engine).
//
// Failures to reach the engine or to get its answer are *Error values; the
// server answers them with 502 and {"message":"upstream engine ADDR: ..."}.
package upstream

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Target is the engine's address.
type Target struct {
	raw     string // as given, for messages
	network string // "unix" or "tcp"
	address string // socket path or host:port
	host    string // the Host header sent
}

// Parse reads an --upstream value: unix:///path/to/engine.sock or
// tcp://host:port (plain TCP; TLS to the engine is not supported).
func Parse(s string) (Target, error) {
	proto, addr, ok := strings.Cut(s, "://")
	if !ok {
		return Target{}, fmt.Errorf("invalid upstream %q: want unix:///PATH or tcp://HOST:PORT", s)
	}
	switch proto {
	case "unix":
		if addr == "" || addr[0] != '/' {
			return Target{}, fmt.Errorf("invalid upstream %q: the socket path must be absolute", s)
		}
		// Go clients send this placeholder host over unix sockets; engines
		// ignore it.
		return Target{raw: s, network: "unix", address: addr, host: "api.moby.localhost"}, nil
	case "tcp":
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host == "" || port == "" || strings.ContainsAny(addr, "/?#") {
			return Target{}, fmt.Errorf("invalid upstream %q: want tcp://HOST:PORT", s)
		}
		return Target{raw: s, network: "tcp", address: addr, host: addr}, nil
	default:
		return Target{}, fmt.Errorf("invalid upstream %q: unsupported protocol %q (want unix or tcp)", s, proto)
	}
}

// String returns the address as given.
func (t Target) String() string { return t.raw }

// Error is a failure to reach the engine or to get its answer.
type Error struct {
	Target string
	Err    error
}

func (e *Error) Error() string { return fmt.Sprintf("upstream engine %s: %v", e.Target, e.Err) }

func (e *Error) Unwrap() error { return e.Err }

// Proxy forwards requests to one engine. It is safe for concurrent use.
type Proxy struct {
	target Target
	tr     *http.Transport
	rp     *httputil.ReverseProxy
	// apiVersion is the Api-Version of the engine's last answer to
	// /_ping ("" until one came).
	apiVersion atomic.Pointer[string]
}

// New returns a proxy to t. It dials nothing until the first request.
func New(t Target) *Proxy {
	p := &Proxy{target: t}
	p.tr = &http.Transport{
		DialContext: p.dial,
		// Bodies pass through as the engine sent them: no Accept-Encoding
		// of our own, no transparent decompression.
		DisableCompression:  true,
		MaxIdleConns:        64,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		// No response header timeout: some answers (a container wait, a
		// long pull) legitimately take minutes to start.
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:   p.rewrite,
		Transport: p.tr,
		// Responses without a Content-Length (every stream) are flushed on
		// each write regardless (httputil does that); 0 keeps the others
		// unflushed until done, which lets the AuthZ middleware buffer them.
		FlushInterval: 0,
		ErrorHandler:  recordError,
		ErrorLog:      nil,
	}
	return p
}

// Target returns the engine's address.
func (p *Proxy) Target() Target { return p.target }

// Close drops idle connections to the engine.
func (p *Proxy) Close() { p.tr.CloseIdleConnections() }

func (p *Proxy) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, p.target.network, p.target.address)
}

// rewrite sends the request to the engine with the URI the client sent: the
// server's router strips the /vX.Y prefix from URL.Path, RequestURI keeps it.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	out := pr.Out
	if u, err := url.ParseRequestURI(pr.In.RequestURI); err == nil {
		out.URL.Path, out.URL.RawPath, out.URL.RawQuery = u.Path, u.RawPath, u.RawQuery
	}
	out.URL.Scheme = "http"
	out.URL.Host = p.target.host
	out.Host = p.target.host
}

// errorSlot carries ReverseProxy's error back to Serve.
type errorSlot struct{ err error }

type errorSlotKey struct{}

func recordError(_ http.ResponseWriter, r *http.Request, err error) {
	if s, ok := r.Context().Value(errorSlotKey{}).(*errorSlot); ok && s.err == nil {
		s.err = err
	}
}

// Serve proxies r to the engine and writes the engine's answer to w. It
// returns an *Error, having written nothing, when the engine could not be
// reached or did not answer; nil once an answer was relayed (even if the
// relay was cut short: a stream cut by the engine is cut for the client
// too). A client that went away gets nothing and nil.
//
// w must support http.ResponseController's Flush and Hijack (through
// Unwrap) for streams and upgrades to work.
func (p *Proxy) Serve(w http.ResponseWriter, r *http.Request) (err error) {
	if isRawHijack(r) {
		return p.serveRaw(w, r)
	}
	slot := &errorSlot{}
	in := r.WithContext(context.WithValue(r.Context(), errorSlotKey{}, slot))
	defer func() {
		// ReverseProxy aborts the handler (panic ErrAbortHandler) when
		// relaying a body fails midway. Handle it here, so that the
		// middleware around us (AuthZ, metrics) still sees the request end.
		v := recover()
		if v == nil {
			return
		}
		if v != http.ErrAbortHandler { //nolint:errorlint // a panic value, compared as net/http does
			panic(v)
		}
		if r.Context().Err() != nil {
			err = nil // the client left: nothing more to say
			return
		}
		// The engine cut the stream: cut the client's too, so it sees a
		// truncated response rather than a complete one.
		conn, _, herr := http.NewResponseController(w).Hijack()
		if herr != nil {
			panic(http.ErrAbortHandler)
		}
		conn.Close()
		err = nil
	}()
	p.rp.ServeHTTP(w, in)
	switch {
	case slot.err == nil:
		return nil
	case r.Context().Err() != nil:
		return nil
	default:
		return &Error{Target: p.target.raw, Err: slot.err}
	}
}

// Fetch sends one request to the engine: method and uri (with its /vX.Y
// prefix and query) as the client sent them, with the client's end-to-end
// headers. The caller closes the body. Errors are *Error.
func (p *Proxy) Fetch(ctx context.Context, method, uri string, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+p.target.host+uri, nil)
	if err != nil {
		return nil, &Error{Target: p.target.raw, Err: err}
	}
	req.Host = p.target.host
	for k, vs := range header {
		if !hopByHop(k) {
			req.Header[k] = append([]string(nil), vs...)
		}
	}
	res, err := p.tr.RoundTrip(req)
	if err != nil {
		return nil, &Error{Target: p.target.raw, Err: err}
	}
	return res, nil
}

// ReadLimited reads a response body of at most limit bytes (an Engine's
// /version or /info is a few KiB).
func ReadLimited(body io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("answer larger than %d bytes", limit)
	}
	return b, nil
}

// hopByHop reports whether a header belongs to one connection only
// (RFC 9110 §7.6.1) and is not forwarded as such.
func hopByHop(k string) bool {
	switch http.CanonicalHeaderKey(k) {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// SetAPIVersion records the Api-Version the engine last announced.
func (p *Proxy) SetAPIVersion(v string) {
	if v != "" {
		p.apiVersion.Store(&v)
	}
}

// APIVersion is the Api-Version the engine last announced on /_ping, or ""
// if it has not answered yet.
func (p *Proxy) APIVersion() string {
	if v := p.apiVersion.Load(); v != nil {
		return *v
	}
	return ""
}
