// Package server is pluginsd's HTTP front: the Echo instance, the
// middleware that makes it answer like an Engine (version prefix, version
// range, common headers), the one error handler, and the listeners.
package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/labstack/echo/v4"

	"github.com/pluginsd/pluginsd/compat"
	"github.com/pluginsd/pluginsd/handlers"
	"github.com/pluginsd/pluginsd/server/upstream"
)

// Config configures the HTTP front.
type Config struct {
	Info handlers.Info
	// Events, when set, serves GET /events (otherwise it answers 501).
	Events handlers.EventSource
	// Metrics, when set, observes every request.
	Metrics RequestObserver
	// Authorization, when set, is the AuthZ plugin chain (server/authz).
	// See routeMiddleware for where it runs.
	Authorization echo.MiddlewareFunc
	// Upstream, when set, is the engine pluginsd fronts: what pluginsd does
	// not serve is proxied to it (see upstream.go).
	Upstream *upstream.Proxy
}

// Server serves the API on any number of listeners.
type Server struct {
	e    *echo.Echo
	http *http.Server

	mu        sync.Mutex // guards listeners
	listeners []net.Listener
}

// New builds the Echo instance with every route; it does not listen.
func New(cfg Config, b handlers.Backend) *Server {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = errorHandler
	if cfg.Metrics != nil {
		e.Pre(observeRequests(cfg.Metrics))
	}
	e.Pre(cleanPath, versionPrefix)
	api := handlers.New(b, cfg.Info, apiOptions(cfg)...)
	api.Register(e, routeMiddleware(cfg)...)
	if cfg.Upstream != nil {
		e.Pre(upstreamDispatch(cfg, api, b))
	}
	s := &Server{e: e}
	s.http = &http.Server{
		Handler:           e,
		ReadHeaderTimeout: 30 * time.Second,
		// No read or write timeouts: create bodies and progress streams
		// can legitimately take minutes.
		IdleTimeout: 5 * time.Minute,
		ErrorLog:    nil,
	}
	return s
}

// Handler returns the HTTP handler (for tests).
func (s *Server) Handler() http.Handler { return s.e }

// Serve serves on l until Shutdown. It returns nil after Shutdown.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	err := s.http.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting, waits for requests in flight until ctx ends,
// then closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if err != nil {
		_ = s.http.Close()
	}
	return err
}

// cleanPath answers paths that are not clean ("//", "/./", "/../") with a
// 301 to the cleaned path, as dockerd's router does.
func cleanPath(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		p := r.URL.Path
		if p == "" || p[0] != '/' {
			p = "/" + p
		}
		np := path.Clean(p)
		if len(p) > 1 && p[len(p)-1] == '/' && np != "/" {
			np += "/"
		}
		if np != r.URL.Path {
			u := *r.URL
			u.Path, u.RawPath = np, ""
			c.Response().Header().Set("Location", u.String())
			return c.NoContent(http.StatusMovedPermanently)
		}
		return next(c)
	}
}

// versionPrefix strips "/vX.Y" from the path and keeps the version in the
// request context. Routing then runs on the decoded path (plugin names may
// arrive percent-encoded), while RequestURI keeps what the client sent.
func versionPrefix(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.Method == http.MethodOptions {
			// dockerd has no OPTIONS routes; Echo would answer 204 + Allow.
			return echo.ErrNotFound
		}
		v, rest, ok := compat.SplitPath(r.URL.Path)
		if ok {
			r.URL.Path = rest
		}
		r.URL.RawPath = ""
		c.SetRequest(r.WithContext(compat.WithVersion(r.Context(), v)))
		return next(c)
	}
}

// engineHeaders sets the headers dockerd's version middleware sets on every
// routed response, and refuses versions out of range. Docker-Experimental
// is set only after the version check passed, as in dockerd.
func engineHeaders(info handlers.Info) echo.MiddlewareFunc {
	server := fmt.Sprintf("pluginsd/%s (%s)", info.Version, runtime.GOOS)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Response().Header()
			h.Set("Server", server)
			h.Set("Api-Version", compat.MaxAPIVersion)
			h.Set("Ostype", runtime.GOOS)
			if err := compat.Check(compat.VersionFromContext(c.Request().Context())); err != nil {
				return err
			}
			// dockerd parses the form of every request and refuses a query
			// string that does not decode; Echo would ignore the bad part.
			if raw := c.Request().URL.RawQuery; strings.ContainsAny(raw, "%;") {
				if _, err := url.ParseQuery(raw); err != nil {
					return errdefs.ErrInvalidArgument.WithMessage("invalid query: " + err.Error())
				}
			}
			h.Set("Docker-Experimental", "false")
			return next(c)
		}
	}
}

// routeMiddleware is what wraps every routed request, outermost first. The
// authorization chain runs outside the version check and the engine
// headers, as in dockerd: every routed request is authorized, including
// one with an unsupported API version (the plugins see the 400 in
// AuthZRes), and a deny carries none of the engine headers. Requests that
// match no route (404 page not found), redirects of unclean paths and
// OPTIONS never reach a handler and are not authorized, as in dockerd.
func routeMiddleware(cfg Config) []echo.MiddlewareFunc {
	var mw []echo.MiddlewareFunc
	if cfg.Authorization != nil {
		mw = append(mw, cfg.Authorization)
	}
	return append(mw, engineHeaders(cfg.Info))
}
