// Package authz is the authorization-plugin chain: Echo middleware that asks
// every configured AuthZ plugin about every routed request before the
// handler runs (AuthZPlugin.AuthZReq) and about its response after it ran
// (AuthZPlugin.AuthZRes), in chain order. It speaks the protocol of
// dockerd's pkg/authorization, so existing authz plugins work unchanged.
//
// Usage:
//
//	mw, err := authz.Config{Plugins: []string{"opa:latest"}}.ToMiddleware(src)
//	if err != nil { ... }
//	api.Register(e, mw, engineHeaders) // outermost, as in dockerd
//
// Where it differs from dockerd, it does so to fail closed:
//
//   - Bodies: a request body with a JSON media type is always read and sent
//     to the plugins, whatever its transfer encoding (chunked, or a
//     Content-Length of 0 on a body that is not empty). A body larger than
//     Config.MaxBodySize (4 MiB) is refused with 413 before any plugin or
//     the handler sees it; dockerd sends nothing above 1 MiB and then runs
//     the request (CVE-2026-34040, public case B24). Other bodies (the tar of
//     POST /plugins/create) are not sent, but the request is still
//     authorized.
//   - Failures: a plugin that cannot be asked answers for the request: 503
//     while it is not running (crashed, being restarted), 500 for any other
//     failure (an error reply, garbage, a timeout). Nothing is ever allowed
//     because a plugin failed.
//   - AuthZRes gets the real status code, for errors too (dockerd sends 0
//     when the handler failed).
//
// Streaming: a response stays in a buffer while it is small (up to
// Config.MaxResponseBuffer), so a response-phase deny can replace it with
// the 403. A handler that flushes (the progress streams of pull, push and
// upgrade) or a response larger than the buffer goes to the client as it is
// written, and AuthZRes is called when the handler returns, with the real
// status code but without the body. Bytes already streamed cannot be
// vetoed: a response-phase deny of a streamed response is only logged. The
// same holds for a handler that hijacks the connection (attach and exec
// through an upstream engine): AuthZRes then reports 101, or the status the
// handler marked on its echo.Response.
package authz

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"time"

	"github.com/containerd/errdefs"
	"github.com/labstack/echo/v4"
	"github.com/sirupsen/logrus"
)

// Source finds the plugins of the chain. The plugin manager satisfies it
// (through SourceFunc); the middleware never changes plugins.
type Source interface {
	// Lookup returns the unix socket of the running AuthZ plugin that name
	// ("name" or "name:tag") refers to, and the plugin's full name
	// ("name:tag"). The error has the errdefs class Unavailable while the
	// plugin is enabled but its process is not running or not yet ready
	// (it crashed and is being restarted); any other error means the plugin
	// cannot serve at all (not installed, not enabled, not an AuthZ plugin).
	Lookup(name string) (socket, fullName string, err error)
}

// SourceFunc adapts a function to Source.
type SourceFunc func(name string) (socket, fullName string, err error)

// Lookup calls f.
func (f SourceFunc) Lookup(name string) (string, string, error) { return f(name) }

// Defaults of Config.
const (
	DefaultMaxBodySize       = 4 << 20
	DefaultMaxResponseBuffer = 4 << 20
	DefaultTimeout           = 30 * time.Second
)

// Config configures the middleware.
type Config struct {
	// Skipper skips the middleware for the requests it returns true for.
	// Optional. Default nil: every request is authorized.
	Skipper func(c echo.Context) bool

	// Plugins is the chain, in order: managed AuthZ plugins by name or
	// name:tag. Required: at least one. Repeated names are asked once.
	Plugins []string

	// MaxBodySize is the largest JSON request body sent to the plugins;
	// a larger one is refused with 413 before the handler runs.
	// Optional. Default DefaultMaxBodySize (4 MiB).
	MaxBodySize int64

	// MaxResponseBuffer is how much of a response is held back until the
	// response phase has allowed it; past it, the response streams.
	// Optional. Default DefaultMaxResponseBuffer (4 MiB).
	MaxResponseBuffer int

	// Timeout bounds each call to a plugin. Optional. Default
	// DefaultTimeout (30 s).
	Timeout time.Duration
}

// ToMiddleware returns the middleware for the chain, or an error for an
// invalid configuration.
func (cfg Config) ToMiddleware(src Source) (echo.MiddlewareFunc, error) {
	a, err := newAuthorizer(cfg, src)
	if err != nil {
		return nil, err
	}
	return a.middleware, nil
}

// authorizer is the chain behind the middleware.
type authorizer struct {
	skipper   func(echo.Context) bool
	src       Source
	maxBody   int64
	maxBuffer int
	timeout   time.Duration
	// plugins is the chain. It is fixed when the middleware is built (the
	// configuration is read at start-up only) and never modified, so
	// requests read it without a lock. What changes at run time — whether
	// a plugin is running, and where its socket is — is asked of the
	// Source on every request.
	plugins []string
}

func newAuthorizer(cfg Config, src Source) (*authorizer, error) {
	if src == nil {
		return nil, errors.New("authz: a plugin Source is required")
	}
	var plugins []string
	for _, p := range cfg.Plugins {
		if p == "" {
			return nil, errors.New("authz: empty plugin name")
		}
		if !slices.Contains(plugins, p) {
			plugins = append(plugins, p)
		}
	}
	if len(plugins) == 0 {
		return nil, errors.New("authz: no authorization plugins configured")
	}
	if cfg.MaxBodySize < 0 || cfg.MaxResponseBuffer < 0 || cfg.Timeout < 0 {
		return nil, errors.New("authz: negative limit")
	}
	a := &authorizer{
		skipper: cfg.Skipper, src: src, plugins: plugins,
		maxBody: cfg.MaxBodySize, maxBuffer: cfg.MaxResponseBuffer, timeout: cfg.Timeout,
	}
	if a.maxBody == 0 {
		a.maxBody = DefaultMaxBodySize
	}
	if a.maxBuffer == 0 {
		a.maxBuffer = DefaultMaxResponseBuffer
	}
	if a.timeout == 0 {
		a.timeout = DefaultTimeout
	}
	return a, nil
}

func (a *authorizer) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if a.skipper != nil && a.skipper(c) {
			return next(c)
		}
		r := c.Request()
		req, err := a.newRequest(r)
		if err != nil {
			return err
		}
		if err := a.askChain(r.Context(), apiRequest, req); err != nil {
			return err
		}
		return a.serve(c, next, req)
	}
}

// newRequest builds the request-phase object; a JSON body is read (and put
// back for the handler) or refused with 413.
func (a *authorizer) newRequest(r *http.Request) (*Request, error) {
	req := &Request{
		RequestMethod:  r.Method,
		RequestURI:     r.RequestURI,
		RequestHeaders: headerMap(r.Header),
	}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.PeerCertificates) > 0 {
		// Only a certificate that the TLS handshake verified against the
		// CA names a user.
		req.User = r.TLS.PeerCertificates[0].Subject.CommonName
		req.UserAuthNMethod = "TLS"
		for _, cert := range r.TLS.PeerCertificates {
			req.RequestPeerCertificates = append(req.RequestPeerCertificates, pemCertificate(cert.Raw))
		}
	}
	if r.Body == nil || r.Body == http.NoBody || !isJSON(r.Header.Get(echo.HeaderContentType)) {
		return req, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, a.maxBody+1))
	if err != nil {
		return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("error reading request body: %v", err))
	}
	if int64(len(body)) > a.maxBody {
		return nil, errdefs.ErrResourceExhausted.WithMessage(fmt.Sprintf(
			"request body too large: more than %d bytes cannot be passed to the authorization plugins", a.maxBody))
	}
	r.Body = replayBody{Reader: bytes.NewReader(body), Closer: r.Body}
	if len(body) > 0 {
		req.RequestBody = body
	}
	return req, nil
}

// replayBody gives the handler the body the middleware already read.
type replayBody struct {
	io.Reader
	io.Closer
}

// serve runs the handler into a recorder, then asks the chain about the
// response and sends it (or the response-phase deny).
func (a *authorizer) serve(c echo.Context, next echo.HandlerFunc, req *Request) error {
	orig := c.Response()
	rec := newRecorder(orig, a.maxBuffer)
	inner := echo.NewResponse(rec, c.Echo())
	c.SetResponse(inner)
	restored := false
	restore := func() {
		if !restored {
			c.SetResponse(orig)
			restored = true
		}
	}
	defer restore()
	if err := next(c); err != nil {
		// Render the error now, into the recorder, so that the plugins see
		// the status and body the client would get.
		c.Error(err)
	}
	restore()
	rec.finish()

	res := *req
	res.ResponseStatusCode = rec.status
	if rec.hijacked {
		// What went over the connection is the handler's business; it may
		// have said which status it sent by marking the response.
		res.ResponseStatusCode = http.StatusSwitchingProtocols
		if inner.Committed && inner.Status != 0 {
			res.ResponseStatusCode = inner.Status
		}
	}
	res.ResponseHeaders = headerMap(rec.header)
	if !rec.streamed && isJSON(rec.header.Get(echo.HeaderContentType)) && rec.buf.Len() > 0 {
		res.ResponseBody = rec.buf.Bytes()
	}
	// The handler has run: whatever happens to the client's connection,
	// the plugins hear how the request ended.
	ctx := context.WithoutCancel(c.Request().Context())
	if err := a.askChain(ctx, apiResponse, &res); err != nil {
		if rec.streamed {
			logrus.WithError(err).WithFields(logrus.Fields{
				"method": req.RequestMethod, "uri": req.RequestURI,
			}).Error("authorization: the response phase refused a response that was already streamed; it cannot be taken back")
			return nil
		}
		return err
	}
	if err := rec.commit(); err != nil {
		logrus.WithError(err).Debug("authorization: sending the response") // the client went away
	}
	return nil
}

// askChain asks every plugin in order about req in one phase (method) and
// returns nil if all allow; the first refusal or failure answers.
func (a *authorizer) askChain(ctx context.Context, method string, req *Request) error {
	var body bytes.Buffer
	if err := json.NewEncoder(&body).Encode(req); err != nil { // Encode adds the "\n"
		return fmt.Errorf("authorization: encoding the request: %w", err)
	}
	for _, name := range a.plugins {
		if err := a.ask(ctx, name, method, req, body.Bytes()); err != nil {
			return err
		}
	}
	return nil
}

// ask asks plugin name about req (encoded as body) in one phase and returns
// nil if it allows. Every failure refuses the request.
func (a *authorizer) ask(ctx context.Context, name, method string, req *Request, body []byte) error {
	socket, full, err := a.src.Lookup(name)
	if err != nil {
		if errdefs.IsUnavailable(err) {
			return errdefs.ErrUnavailable.WithMessage(fmt.Sprintf("authorization plugin %s is not available: %v", name, err))
		}
		// %v, not %w: whatever the class of the cause, a chain that cannot
		// be asked is the server's fault (500), never a 404 or 400.
		return fmt.Errorf("plugin %s failed with error: %v", name, err) //nolint:errorlint // the cause's class must not leak
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	res, err := callPlugin(ctx, socket, method, body)
	switch {
	case errors.Is(err, errUnreachable):
		return errdefs.ErrUnavailable.WithMessage(fmt.Sprintf("authorization plugin %s is not available: %v", full, err))
	case err != nil:
		// Not %w either: a timeout (DeadlineExceeded) would become a 503.
		return fmt.Errorf("plugin %s failed with error: %v", full, err) //nolint:errorlint // see above
	case !res.Allow:
		logrus.WithFields(logrus.Fields{
			"plugin": full, "phase": method, "method": req.RequestMethod, "uri": req.RequestURI, "user": req.User,
		}).Info("authorization denied")
		return errdefs.ErrPermissionDenied.WithMessage(fmt.Sprintf("authorization denied by plugin %s: %s", full, res.Msg))
	}
	return nil
}

// isJSON reports whether a Content-Type's media type is application/json,
// the bodies dockerd's handlers decode (and the only ones they accept).
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == echo.MIMEApplicationJSON
}

// headerMap flattens h for the plugins (the last value of a repeated header
// wins), without the credentials a client sends for registries and
// authentication.
func headerMap(h http.Header) map[string]string {
	m := make(map[string]string, len(h))
	for k, v := range h {
		switch http.CanonicalHeaderKey(k) {
		case "Authorization", "X-Registry-Auth", "X-Registry-Config":
			continue
		}
		if len(v) > 0 {
			m[k] = v[len(v)-1]
		}
	}
	if len(m) == 0 {
		return nil
	}
	return m
}
