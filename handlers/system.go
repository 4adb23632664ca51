package handlers

import (
	"net/http"
	"runtime"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/pluginsd/pluginsd/compat"
)

// ping answers GET and HEAD /_ping. Every CLI command starts with an
// unversioned HEAD /_ping and negotiates min(its max, Api-Version), so this
// must answer 200 with the server's maximum version (set by the engine
// headers middleware).
func (a *API) ping(c echo.Context) error {
	h := c.Response().Header()
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Set("Pragma", "no-cache")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	if c.Request().Method == http.MethodHead {
		h.Set("Content-Length", "0")
		return c.NoContent(http.StatusOK)
	}
	return c.String(http.StatusOK, "OK")
}

// versionComponent is one entry of /version's Components.
type versionComponent struct {
	Name    string            `json:"Name"`
	Version string            `json:"Version"`
	Details map[string]string `json:"Details,omitempty"`
}

// versionBody is GET /version, with dockerd's key order.
type versionBody struct {
	Platform      struct{ Name string } `json:"Platform"`
	Components    []versionComponent    `json:"Components"`
	Version       string                `json:"Version"`
	APIVersion    string                `json:"ApiVersion"`
	MinAPIVersion string                `json:"MinAPIVersion"`
	GitCommit     string                `json:"GitCommit"`
	GoVersion     string                `json:"GoVersion"`
	Os            string                `json:"Os"`
	Arch          string                `json:"Arch"`
	KernelVersion string                `json:"KernelVersion,omitempty"`
	BuildTime     string                `json:"BuildTime,omitempty"`
}

// version answers GET /version. pluginsd names itself: it is not an engine,
// and `docker version` shows it as the server component.
func (a *API) version(c echo.Context) error {
	v := versionBody{
		Version:       a.info.Version,
		APIVersion:    compat.MaxAPIVersion,
		MinAPIVersion: compat.MinAPIVersion,
		GitCommit:     a.info.GitCommit,
		GoVersion:     runtime.Version(),
		Os:            runtime.GOOS,
		Arch:          runtime.GOARCH,
		KernelVersion: a.info.KernelVersion,
		BuildTime:     a.info.BuildTime,
	}
	v.Platform.Name = "pluginsd"
	v.Components = []versionComponent{{
		Name:    "pluginsd",
		Version: a.info.Version,
		Details: map[string]string{
			"ApiVersion":    compat.MaxAPIVersion,
			"MinAPIVersion": compat.MinAPIVersion,
			"GitCommit":     a.info.GitCommit,
			"GoVersion":     runtime.Version(),
			"Os":            runtime.GOOS,
			"Arch":          runtime.GOARCH,
			"BuildTime":     a.info.BuildTime,
		},
	}}
	return writeJSON(c, http.StatusOK, v)
}

// writeJSON writes v as dockerd's JSON writer does (no HTML escaping,
// trailing newline, Content-Type application/json).
func writeJSON(c echo.Context, status int, v any) error {
	b, err := compat.EncodeJSON(v)
	if err != nil {
		return err
	}
	return c.Blob(status, "application/json", b)
}

// writeBody answers 200 with an encoded JSON body, with its length set so
// that clients read it in one piece instead of as chunks (the hot path of
// agents that poll list and inspect).
func writeBody(c echo.Context, b []byte) error {
	c.Response().Header().Set("Content-Length", strconv.Itoa(len(b)))
	return c.Blob(http.StatusOK, "application/json", b)
}
