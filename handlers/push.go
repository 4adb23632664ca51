package handlers

import (
	"context"

	"github.com/labstack/echo/v4"

	"github.com/pluginsd/pluginsd/manager"
)

// push answers POST /plugins/{name}/push with a JSON progress stream that
// ends with the pushed manifest's tag, digest and size.
func (a *API) push(c echo.Context, name string) error {
	ctx, cancel := context.WithCancelCause(c.Request().Context())
	defer cancel(nil)
	s := newJSONStream(c, cancel)
	err := a.b.Push(ctx, manager.PushRequest{Name: name, RegistryAuth: registryAuth(c.Request())}, s.progress)
	return s.finish(err)
}
