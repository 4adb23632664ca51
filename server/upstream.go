package server

import (
	"bufio"
	"context"
	"mime"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/sirupsen/logrus"

	"github.com/pluginsd/pluginsd/compat"
	"github.com/pluginsd/pluginsd/handlers"
	"github.com/pluginsd/pluginsd/manager"
	"github.com/pluginsd/pluginsd/server/upstream"
)

// In front of an engine (Config.Upstream), one Pre middleware decides, after
// the path is cleaned and its version prefix taken off, who answers:
//
//   - the plugin routes (/plugins, /plugins/...; unknown ones get our 404)
//     and GET /events asking only for plugin events: pluginsd, as without
//     an upstream;
//   - GET /events asking for plugin events and others: one stream merged
//     from the engine's and pluginsd's (handlers.MergedEvents);
//   - /_ping, /version and /info: pluginsd, from the engine's answer
//     (version range narrowed to what both serve; pluginsd's component and
//     plugins added);
//   - everything else: the engine, through the proxy.
//
// Every one of them passes the AuthZ chain first (when configured): the
// routed ones through the route middleware, the proxied ones through the
// same AuthZ middleware alone. Pluginsd's version check and engine headers
// are not applied to proxied requests: the engine sets its own.

// maxEngineAnswer bounds the /_ping, /version and /info answers read.
const maxEngineAnswer = 4 << 20

// upstreamDispatch is the Pre middleware described above.
func upstreamDispatch(cfg Config, api *handlers.API, b handlers.Backend) echo.MiddlewareFunc {
	p := cfg.Upstream
	routed := func(h echo.HandlerFunc) echo.HandlerFunc { return chain(h, routeMiddleware(cfg)...) }
	var authz []echo.MiddlewareFunc
	if cfg.Authorization != nil {
		authz = append(authz, cfg.Authorization)
	}
	proxied := chain(proxyHandler(p), authz...)
	// The merged stream is the engine's answer with plugin events added:
	// like a proxied request, it carries the engine's headers, not ours.
	merged := chain(api.MergedEvents(p), authz...)
	ping := routed(pingHandler(p))
	version := routed(versionHandler(p, cfg.Info))
	info := routed(infoHandler(p, b))
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			switch handlers.Operation(r.Method, r.URL.Path) {
			case "ping":
				return ping(c)
			case "version":
				return version(c)
			case "info":
				return info(c)
			case "events":
				switch eventsSourceFor(c.QueryParam("filters")) {
				case eventsFromPluginsd:
					return next(c)
				case eventsMerged:
					if cfg.Events != nil && r.Method == http.MethodGet {
						return merged(c)
					}
				}
				return proxied(c)
			case "":
				if pluginPath(r.URL.Path) {
					return next(c) // our 404
				}
				return proxied(c)
			default:
				return next(c)
			}
		}
	}
}

// chain wraps h in mw, the first outermost.
func chain(h echo.HandlerFunc, mw ...echo.MiddlewareFunc) echo.HandlerFunc {
	for _, m := range slices.Backward(mw) {
		h = m(h)
	}
	return h
}

// pluginPath reports whether a (version-less) path is in pluginsd's
// namespace.
func pluginPath(p string) bool { return p == "/plugins" || strings.HasPrefix(p, "/plugins/") }

// eventsSource is who answers a GET /events in front of an engine.
type eventsSource int

const (
	// eventsFromEngine: the filters select no plugin event (or do not
	// parse: the engine says what is wrong with them).
	eventsFromEngine eventsSource = iota
	// eventsFromPluginsd: only plugin events (type=plugin and no other
	// type, or a plugin= filter without type).
	eventsFromPluginsd
	// eventsMerged: plugin events and the engine's (no type filter, or one
	// that includes plugin, and no key outside mergeableEventKeys).
	eventsMerged
)

// mergeableEventKeys are the filters under which a stream of the engine's
// events also carries plugin events (dockerd's semantics): any other key
// (container, image, label, daemon...) names something plugin events do
// not have, so it selects none of them.
var mergeableEventKeys = []string{"event", "plugin", "scope", "type"}

// eventsSourceFor decides, from the raw filters, who serves GET /events.
func eventsSourceFor(raw string) eventsSource {
	f, err := compat.ParseFilters(raw)
	if err != nil {
		return eventsFromEngine
	}
	types := f.Values("type")
	switch {
	case len(types) == 0 && len(f.Values("plugin")) > 0,
		len(types) > 0 && !slices.ContainsFunc(types, func(t string) bool { return t != "plugin" }):
		return eventsFromPluginsd
	case f.Validate(mergeableEventKeys...) == nil && (len(types) == 0 || slices.Contains(types, "plugin")):
		return eventsMerged
	default:
		return eventsFromEngine
	}
}

// upstreamError turns a failure to reach the engine into the 502 the
// client sees: {"message":"upstream engine unix:///...: <error>"}.
func upstreamError(err error) error {
	return echo.NewHTTPError(http.StatusBadGateway, err.Error())
}

// proxyHandler forwards the request to the engine.
func proxyHandler(p *upstream.Proxy) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		status := http.StatusOK // what a hijacked answer turns out to be
		if r.Header.Get("Upgrade") != "" {
			status = http.StatusSwitchingProtocols
		}
		w := &proxyWriter{ResponseWriter: c.Response(), hijackStatus: status}
		if err := p.Serve(w, r); err != nil {
			return upstreamError(err)
		}
		return nil
	}
}

// proxyWriter is the ResponseWriter the proxy writes to. When the proxy
// takes the connection over (attach, exec), it marks every echo.Response
// it wraps as committed with the status sent, so that what runs after the
// handler (AuthZ's response phase, the error handler, metrics) neither
// writes to the hijacked connection nor reports a status that was not
// sent.
type proxyWriter struct {
	http.ResponseWriter
	hijackStatus int
}

func (w *proxyWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	for rw := w.ResponseWriter; rw != nil; {
		if er, ok := rw.(*echo.Response); ok {
			er.Committed = true
			er.Status = w.hijackStatus
		}
		u, ok := rw.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		rw = u.Unwrap()
	}
	return conn, brw, nil
}

func (w *proxyWriter) FlushError() error {
	return http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *proxyWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// pingHandler answers /_ping with the engine's answer (status, headers and
// body) except Api-Version, which becomes the lower of the two maxima, so
// that the client negotiates a version both serve. While the engine cannot
// be reached, pluginsd answers itself (it is up, and its plugin routes
// work), announcing the version last negotiated with the engine if any.
func pingHandler(p *upstream.Proxy) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		h := c.Response().Header()
		res, err := p.Fetch(r.Context(), r.Method, r.RequestURI, r.Header)
		var body []byte
		if err == nil {
			body, err = upstream.ReadLimited(res.Body, maxEngineAnswer)
			res.Body.Close()
		}
		if err != nil {
			if r.Context().Err() != nil {
				return nil //nolint:nilerr // the client left: there is no one to answer
			}
			logrus.WithError(err).Warn("the upstream engine does not answer /_ping; answering for pluginsd alone")
			if v := upstream.CombineAPIVersion(p.APIVersion()); v != "" {
				h.Set("Api-Version", v)
			}
			h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
			h.Set("Pragma", "no-cache")
			h.Set("Content-Type", "text/plain; charset=utf-8")
			if r.Method == http.MethodHead {
				h.Set("Content-Length", "0")
				return c.NoContent(http.StatusOK)
			}
			return c.String(http.StatusOK, "OK")
		}
		p.SetAPIVersion(res.Header.Get("Api-Version"))
		copyEngineHeaders(h, res.Header)
		if r.Method == http.MethodHead {
			h.Set("Content-Length", "0")
			return c.NoContent(res.StatusCode)
		}
		return c.Blob(res.StatusCode, res.Header.Get("Content-Type"), body)
	}
}

// copyEngineHeaders copies the engine's end-to-end response headers over
// ours (its Ostype, Docker-Experimental, Builder-Version, Swarm, Server...),
// leaving out those net/http computes for the body we send. Api-Version
// becomes the lower of the two maxima (pluginsd's stays if the engine
// announces none).
func copyEngineHeaders(dst, src http.Header) {
	handlers.CopyEngineHeaders(dst, src, "Api-Version")
	if v := upstream.CombineAPIVersion(src.Get("Api-Version")); v != "" {
		dst.Set("Api-Version", v)
	}
}

// versionHandler answers GET /version with the engine's answer, its
// ApiVersion and MinAPIVersion narrowed to the range both serve and
// pluginsd appended to Components. An engine that cannot be reached is a
// 502 (the version of the engine is what `docker version` shows); an
// answer that is not a JSON object is relayed as it is.
func versionHandler(p *upstream.Proxy, info handlers.Info) echo.HandlerFunc {
	component := map[string]any{
		"Name":    "pluginsd",
		"Version": info.Version,
		"Details": map[string]string{
			"ApiVersion":    compat.MaxAPIVersion,
			"MinAPIVersion": compat.MinAPIVersion,
			"GitCommit":     info.GitCommit,
			"GoVersion":     runtime.Version(),
			"Os":            runtime.GOOS,
			"Arch":          runtime.GOARCH,
			"BuildTime":     info.BuildTime,
		},
	}
	return engineJSON(p, func(_ context.Context, body []byte) ([]byte, error) {
		return upstream.VersionBody(body, component)
	})
}

// infoHandler answers GET /info with the engine's answer, pluginsd's
// enabled plugins added to its Plugins lists by type.
func infoHandler(p *upstream.Proxy, b handlers.Backend) echo.HandlerFunc {
	return engineJSON(p, func(ctx context.Context, body []byte) ([]byte, error) {
		enabled := true
		ps, err := b.List(ctx, manager.ListRequest{Enabled: &enabled})
		if err != nil {
			return nil, err
		}
		return upstream.InfoBody(body, pluginNamesByKind(ps))
	})
}

// pluginNamesByKind lists plugins under the /info Plugins keys of their
// interface types, by name with tag as dockerd lists them.
func pluginNamesByKind(ps []*manager.Plugin) map[string][]string {
	kinds := map[string]string{
		"volumedriver": "Volume", "networkdriver": "Network", "authz": "Authorization", "logdriver": "Log",
	}
	out := map[string][]string{}
	for _, p := range ps {
		for _, t := range p.Plugin.Config.Interface.Types {
			k, ok := kinds[t.Capability]
			if ok && t.Prefix == "docker" && !slices.Contains(out[k], p.Name()) {
				out[k] = append(out[k], p.Name())
			}
		}
	}
	for _, l := range out {
		slices.Sort(l)
	}
	return out
}

// engineJSON asks the engine the same question and answers with rewrite of
// its JSON answer; any other answer (an error status, another content
// type) is relayed unchanged, and one that does not parse is relayed with
// a warning.
func engineJSON(p *upstream.Proxy, rewrite func(context.Context, []byte) ([]byte, error)) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
		defer cancel()
		res, err := p.Fetch(ctx, r.Method, r.RequestURI, r.Header)
		if err != nil {
			if r.Context().Err() != nil {
				return nil
			}
			return upstreamError(err)
		}
		body, err := upstream.ReadLimited(res.Body, maxEngineAnswer)
		res.Body.Close()
		if err != nil {
			return upstreamError(&upstream.Error{Target: p.Target().String(), Err: err})
		}
		ct := res.Header.Get("Content-Type")
		if mt, _, _ := mime.ParseMediaType(ct); res.StatusCode == http.StatusOK && mt == echo.MIMEApplicationJSON {
			out, err := rewrite(ctx, body)
			if err == nil {
				body = out
			} else {
				logrus.WithError(err).WithField("path", r.URL.Path).Warn("relaying the upstream engine's answer unchanged")
			}
		}
		copyEngineHeaders(c.Response().Header(), res.Header)
		return c.Blob(res.StatusCode, ct, body)
	}
}
