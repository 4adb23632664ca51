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
	"path"
	"runtime"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/pluginsd/pluginsd/compat"
	"github.com/pluginsd/pluginsd/handlers"
)

// Config configures the HTTP front.
type Config struct {
	Info handlers.Info
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
	e.Pre(cleanPath, versionPrefix)
	api := handlers.New(b, cfg.Info)
	api.Register(e, engineHeaders(cfg.Info))
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
			h.Set("Docker-Experimental", "false")
			return next(c)
		}
	}
}
