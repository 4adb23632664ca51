package handlers

import (
	"context"

	"github.com/labstack/echo/v4"

	"github.com/pluginsd/pluginsd/manager"
)

// pull answers POST /plugins/pull?remote=&name= with the accepted
// privileges as body: 200 and a JSON progress stream, with the local name in
// Docker-Plugin-Name (the CLI reads it to enable the plugin afterwards).
// Errors found before the first progress line keep their real status.
func (a *API) pull(c echo.Context) error {
	privs, err := acceptedPrivileges(c)
	if err != nil {
		return err
	}
	ref, tag, err := manager.ParseRemote(c.QueryParam("remote"))
	if err != nil {
		return err
	}
	name, err := manager.LocalName(ref, tag, c.QueryParam("name"))
	if err != nil {
		return err
	}
	c.Response().Header().Set("Docker-Plugin-Name", name)
	ctx, cancel := context.WithCancelCause(c.Request().Context())
	defer cancel(nil)
	s := newJSONStream(c, cancel)
	err = a.b.Pull(ctx, manager.PullRequest{
		Ref: ref, Tag: tag, Name: name, RegistryAuth: registryAuth(c.Request()), Privileges: privs,
	}, s.progress)
	return s.finish(err)
}
