// Package handlers turns Engine API requests into manager calls and manager
// results into dockerd's wire format. Handlers are thin: parse, call, encode.
// They never choose an error status: they return errors, and server/ maps
// their errdefs class to a status in one place.
package handlers

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/moby/moby/api/types/plugin"

	"github.com/pluginsd/pluginsd/manager"
)

// Backend is what the handlers need from the plugin manager.
type Backend interface {
	List(ctx context.Context, req manager.ListRequest) ([]*manager.Plugin, error)
	Inspect(ctx context.Context, name string) (*manager.Plugin, error)
	Remove(ctx context.Context, req manager.RemoveRequest) error
	Set(ctx context.Context, req manager.SetRequest) error
	CheckCreate(ctx context.Context, name string) error
	Create(ctx context.Context, req manager.CreateRequest) error
	Enable(ctx context.Context, req manager.EnableRequest) error
	Disable(ctx context.Context, req manager.DisableRequest) error
	Privileges(ctx context.Context, req manager.PrivilegesRequest) (plugin.Privileges, error)
	Pull(ctx context.Context, req manager.PullRequest, progress manager.ProgressFunc) error
	Upgrade(ctx context.Context, req manager.UpgradeRequest, progress manager.ProgressFunc) error
	Push(ctx context.Context, req manager.PushRequest, progress manager.ProgressFunc) error
	// Generation changes whenever any plugin changes (encoded responses are
	// cached under it).
	Generation() uint64
}

// Info identifies the server in /version and the Server header.
type Info struct {
	Version       string
	GitCommit     string
	BuildTime     string
	KernelVersion string
}

// API holds the handlers' dependencies.
type API struct {
	b      Backend
	info   Info
	cache  encodeCache
	events EventSource   // nil: GET /events answers 501
	system SystemBackend // nil: GET /info has no ID and no data root
}

// Option sets an optional dependency of the handlers.
type Option func(*API)

// New returns the handlers for b. A b that is also a SystemBackend (the
// manager is) serves as one unless WithSystem says otherwise.
func New(b Backend, info Info, opts ...Option) *API {
	a := &API{b: b, info: info}
	if s, ok := b.(SystemBackend); ok {
		a.system = s
	}
	for _, o := range opts {
		o(a)
	}
	return a
}

// Register adds every route to e, each wrapped in mw (the engine headers and
// version check): like dockerd's mux, requests that match no route get
// "page not found" without passing through mw.
//
// Plugin names contain '/', ':' and '@', so /plugins/* is one route per
// method and the operation is chosen from the path's suffix, in the order of
// dockerd's route table (so a plugin named "privileges" is still reachable
// as /plugins/privileges/json).
func (a *API) Register(e *echo.Echo, mw ...echo.MiddlewareFunc) {
	wrap := func(h echo.HandlerFunc) echo.HandlerFunc {
		for _, m := range slices.Backward(mw) {
			h = m(h)
		}
		return h
	}
	for _, r := range a.fixedRoutes() {
		e.Add(r.method, r.path, wrap(r.h))
	}
	for method, route := range a.pluginRoutes() {
		e.Add(method, "/plugins/*", func(c echo.Context) error {
			_, h := route(c.Param("*"))
			if h == nil {
				return echo.ErrNotFound
			}
			return wrap(h)(c)
		})
	}
}

// fixedRoute is a route whose path has no parameter.
type fixedRoute struct {
	method, path string
	op           string // see Operation
	h            echo.HandlerFunc
}

func (a *API) fixedRoutes() []fixedRoute {
	return []fixedRoute{
		{http.MethodGet, "/_ping", "ping", a.ping},
		{http.MethodHead, "/_ping", "ping", a.ping},
		{http.MethodGet, "/version", "version", a.version},
		{http.MethodGet, "/info", "info", a.systemInfo},
		{http.MethodGet, "/events", "events", a.eventStream},
		{http.MethodGet, "/plugins", "list", a.list},
	}
}

// pluginRoutes dispatch /plugins/{rest} by method: each returns the
// operation and its handler, or nil for no route.
func (a *API) pluginRoutes() map[string]func(rest string) (string, echo.HandlerFunc) {
	return map[string]func(rest string) (string, echo.HandlerFunc){
		http.MethodGet:    a.getRoute,
		http.MethodPost:   a.postRoute,
		http.MethodDelete: a.deleteRoute,
	}
}

// Operation names the operation a request is for, as the routes choose
// it: "ping", "version", "info", "events", "list", "inspect", "privileges",
// "remove", "enable", "disable", "push", "upgrade", "set", "pull" or
// "create"; "" when no route matches. path is without its /vX.Y prefix.
// The names are few and fixed, so metrics can label requests with them.
func Operation(method, path string) string {
	a := &API{} // only to reach the route tables: no handler is called
	for _, r := range a.fixedRoutes() {
		if r.method == method && r.path == path {
			return r.op
		}
	}
	rest, ok := strings.CutPrefix(path, "/plugins/")
	route := a.pluginRoutes()[method]
	if !ok || route == nil {
		return ""
	}
	op, _ := route(rest)
	return op
}

// getRoute: GET /plugins/{name}/json, then GET /plugins/privileges.
func (a *API) getRoute(rest string) (string, echo.HandlerFunc) {
	if name, ok := strings.CutSuffix(rest, "/json"); ok && name != "" {
		return "inspect", a.withName(name, a.inspect)
	}
	if rest == "privileges" {
		return "privileges", a.privileges
	}
	return "", nil
}

// postRoute follows dockerd's order: enable, disable, pull, push, upgrade,
// set, create.
func (a *API) postRoute(rest string) (string, echo.HandlerFunc) {
	for _, r := range []struct {
		suffix string
		h      func(echo.Context, string) error
	}{
		{"/enable", a.enable},
		{"/disable", a.disable},
		{"/push", a.push},
		{"/upgrade", a.upgrade},
		{"/set", a.set},
	} {
		if name, ok := strings.CutSuffix(rest, r.suffix); ok && name != "" {
			return r.suffix[1:], a.withName(name, r.h)
		}
	}
	switch rest {
	case "pull":
		return "pull", a.pull
	case "create":
		return "create", a.create
	}
	return "", nil
}

// deleteRoute: DELETE /plugins/{name}.
func (a *API) deleteRoute(rest string) (string, echo.HandlerFunc) {
	if rest == "" {
		return "", nil
	}
	return "remove", a.withName(rest, a.remove)
}

func (a *API) withName(name string, h func(echo.Context, string) error) echo.HandlerFunc {
	return func(c echo.Context) error { return h(c, name) }
}
