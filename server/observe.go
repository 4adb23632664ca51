package server

import (
	"time"

	"github.com/labstack/echo/v4"

	"github.com/pluginsd/pluginsd/compat"
	"github.com/pluginsd/pluginsd/handlers"
)

// RequestObserver records finished requests (*metrics.Metrics is one).
type RequestObserver interface {
	// ObserveRequest gets the operation (handlers.Operation, or "unknown"
	// for a request no route takes), the status sent and the time taken.
	ObserveRequest(op string, code int, d time.Duration)
}

// unknownOperation labels requests that match no route.
const unknownOperation = "unknown"

// observeRequests reports every request to o, including those refused
// before routing (redirects, page not found, version errors). It is the
// outermost middleware: it writes an error response itself (as Echo would
// after the chain), so that the status it reports is the one sent.
func observeRequests(o RequestObserver) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			r := c.Request()
			_, path, _ := compat.SplitPath(r.URL.Path)
			op := handlers.Operation(r.Method, path)
			if op == "" {
				op = unknownOperation
			}
			if err := next(c); err != nil {
				c.Error(err)
			}
			o.ObserveRequest(op, c.Response().Status, time.Since(start))
			return nil
		}
	}
}

// apiOptions are the handlers' optional dependencies found in cfg.
func apiOptions(cfg Config) []handlers.Option {
	var opts []handlers.Option
	if cfg.Events != nil {
		opts = append(opts, handlers.WithEvents(cfg.Events))
	}
	return opts
}
