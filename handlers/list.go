package handlers

import (
	"github.com/labstack/echo/v4"

	"github.com/pluginsd/pluginsd/compat"
	"github.com/pluginsd/pluginsd/manager"
)

// list answers GET /plugins?filters=... Accepted filter keys are enabled
// and capability (the swagger's "enable" is not one: dockerd refuses it too).
func (a *API) list(c echo.Context) error {
	ctx := c.Request().Context()
	v := compat.VersionFromContext(ctx)
	f, err := compat.ParseFilters(c.QueryParam("filters"))
	if err != nil {
		return err
	}
	if err := f.Validate("enabled", "capability"); err != nil {
		return err
	}
	var req manager.ListRequest
	if _, ok := f["enabled"]; ok {
		en, err := f.Bool("enabled", false)
		if err != nil {
			return err
		}
		req.Enabled = &en
	}
	req.Capabilities = f.Values("capability")
	if req.Enabled == nil && len(req.Capabilities) == 0 {
		if b, ok := a.cache.list(a.b.Generation(), v); ok {
			return writeBody(c, b)
		}
	}
	gen := a.b.Generation() // before the read: a change during it invalidates
	ps, err := a.b.List(ctx, req)
	if err != nil {
		return err
	}
	b, err := a.cache.encodeList(gen, v, ps, req.Enabled == nil && len(req.Capabilities) == 0)
	if err != nil {
		return err
	}
	return writeBody(c, b)
}
