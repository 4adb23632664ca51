package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/pluginsd/pluginsd/manager"
)

// set answers POST /plugins/{name}/set with a JSON array of
// "name[.field][=value]" strings: 204 on success; an empty body is a no-op.
func (a *API) set(c echo.Context, name string) error {
	var args []string
	if _, err := readJSON(c, &args); err != nil {
		return err
	}
	if err := a.b.Set(c.Request().Context(), manager.SetRequest{Name: name, Args: args}); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
