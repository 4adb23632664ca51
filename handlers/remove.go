package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/pluginsd/pluginsd/manager"
)

// remove answers DELETE /plugins/{name}?force=: 200 with an empty body (the
// swagger's Plugin body was never sent by dockerd).
func (a *API) remove(c echo.Context, name string) error {
	err := a.b.Remove(c.Request().Context(), manager.RemoveRequest{Name: name, Force: boolValue(c.Request(), "force")})
	if err != nil {
		return err
	}
	return c.NoContent(http.StatusOK)
}
