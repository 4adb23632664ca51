package handlers

import (
	"context"

	"github.com/containerd/errdefs"
	"github.com/labstack/echo/v4"

	"github.com/pluginsd/pluginsd/compat"
	"github.com/pluginsd/pluginsd/manager"
)

// upgrade answers POST /plugins/{name}/upgrade?remote= like pull. {name}
// goes through the same naming rules as pull's name (dockerd's getName): the
// CLI sends the plugin's full name.
func (a *API) upgrade(c echo.Context, rawName string) error {
	ctx := c.Request().Context()
	// Introduced in API v1.26.
	if !compat.UpgradeSupported(compat.VersionFromContext(ctx)) {
		return errdefs.ErrInvalidArgument.WithMessage("POST /plugins/{name:.*}/upgrade requires minimum API version 1.26")
	}
	privs, err := acceptedPrivileges(c)
	if err != nil {
		return err
	}
	ref, tag, err := manager.ParseRemote(c.QueryParam("remote"))
	if err != nil {
		return err
	}
	name, err := manager.LocalName(ref, tag, rawName)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Docker-Plugin-Name", name)
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	s := newJSONStream(c, cancel)
	err = a.b.Upgrade(sctx, manager.UpgradeRequest{
		Name: name, Ref: ref, Tag: tag, RegistryAuth: registryAuth(c.Request()), Privileges: privs,
	}, s.progress)
	return s.finish(err)
}
