package handlers

import (
	"fmt"
	"mime"
	"net/http"

	"github.com/containerd/errdefs"
	"github.com/labstack/echo/v4"

	"github.com/pluginsd/pluginsd/manager"
)

// create answers POST /plugins/create?name=NAME whose body is a tar of
// config.json and rootfs/ (the CLI sends application/x-tar; gzip is accepted
// too). 204 on success.
func (a *API) create(c echo.Context) error {
	ctx := c.Request().Context()
	name := c.QueryParam("name")
	// Refuse a bad or taken name before reading a possibly large body.
	if err := a.b.CheckCreate(ctx, name); err != nil {
		return err
	}
	if err := checkTarContentType(c.Request().Header.Get("Content-Type")); err != nil {
		return err
	}
	if err := a.b.Create(ctx, manager.CreateRequest{Name: name, Context: c.Request().Body}); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// checkTarContentType refuses bodies that are clearly not a tar. dockerd
// does not check, but an urlencoded or multipart body is consumed as a form
// by its parser and fails later with a misleading "no rootfs found".
func checkTarContentType(ct string) error {
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("malformed Content-Type header (%s): %v", ct, err))
	}
	switch mt {
	case "application/x-www-form-urlencoded", "multipart/form-data", "application/json":
		return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("unsupported Content-Type header (%s): must be 'application/x-tar'", ct))
	}
	return nil
}
