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
	b     Backend
	info  Info
	cache encodeCache
}

// New returns the handlers for b.
func New(b Backend, info Info) *API {
	return &API{b: b, info: info}
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
	e.GET("/_ping", wrap(a.ping))
	e.HEAD("/_ping", wrap(a.ping))
	e.GET("/version", wrap(a.version))
	e.GET("/plugins", wrap(a.list))
	routes := map[string]func(rest string) echo.HandlerFunc{
		http.MethodGet:    a.getRoute,
		http.MethodPost:   a.postRoute,
		http.MethodDelete: a.deleteRoute,
	}
	for method, route := range routes {
		e.Add(method, "/plugins/*", func(c echo.Context) error {
			h := route(c.Param("*"))
			if h == nil {
				return echo.ErrNotFound
			}
			return wrap(h)(c)
		})
	}
}

// getRoute: GET /plugins/{name}/json, then GET /plugins/privileges.
func (a *API) getRoute(rest string) echo.HandlerFunc {
	if name, ok := strings.CutSuffix(rest, "/json"); ok && name != "" {
		return a.withName(name, a.inspect)
	}
	if rest == "privileges" {
		return a.privileges
	}
	return nil
}

// postRoute follows dockerd's order: enable, disable, pull, push, upgrade,
// set, create.
func (a *API) postRoute(rest string) echo.HandlerFunc {
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
			return a.withName(name, r.h)
		}
	}
	switch rest {
	case "pull":
		return a.pull
	case "create":
		return a.create
	}
	return nil
}

// deleteRoute: DELETE /plugins/{name}.
func (a *API) deleteRoute(rest string) echo.HandlerFunc {
	if rest == "" {
		return nil
	}
	return a.withName(rest, a.remove)
}

func (a *API) withName(name string, h func(echo.Context, string) error) echo.HandlerFunc {
	return func(c echo.Context) error { return h(c, name) }
}
