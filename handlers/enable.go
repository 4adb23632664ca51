package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/pluginsd/pluginsd/manager"
)

// enable answers POST /plugins/{name}/enable?timeout=N: 200 with an empty
// body once the plugin's socket accepts connections. timeout bounds that
// wait (absent or 0: 30 s); dockerd ignores it for the wait (public case
// B08) and answers 500 when it is missing (B13).
func (a *API) enable(c echo.Context, name string) error {
	timeout, err := manager.ParseTimeout(c.QueryParam("timeout"))
	if err != nil {
		return err
	}
	if err := a.b.Enable(c.Request().Context(), manager.EnableRequest{Name: name, Timeout: timeout}); err != nil {
		return err
	}
	return c.NoContent(http.StatusOK)
}

// disable answers POST /plugins/{name}/disable?force=: 200 with an empty
// body once the plugin has stopped.
func (a *API) disable(c echo.Context, name string) error {
	err := a.b.Disable(c.Request().Context(), manager.DisableRequest{Name: name, Force: boolValue(c.Request(), "force")})
	if err != nil {
		return err
	}
	return c.NoContent(http.StatusOK)
}
