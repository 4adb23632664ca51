package handlers

import (
	"github.com/labstack/echo/v4"

	"github.com/pluginsd/pluginsd/compat"
)

// inspect answers GET /plugins/{name}/json.
func (a *API) inspect(c echo.Context, name string) error {
	ctx := c.Request().Context()
	gen := a.b.Generation()
	p, err := a.b.Inspect(ctx, name)
	if err != nil {
		return err
	}
	b, err := a.cache.encodePlugin(gen, compat.VersionFromContext(ctx), p)
	if err != nil {
		return err
	}
	return writeBody(c, b)
}
