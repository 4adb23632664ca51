package handlers

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/labstack/echo/v4"
	"github.com/moby/moby/api/types/plugin"

	"github.com/pluginsd/pluginsd/distribution"
	"github.com/pluginsd/pluginsd/manager"
)

// registryAuth reads X-Registry-Auth (base64url JSON of the credentials)
// and the X-Meta-* headers forwarded to the registry. As in dockerd, a
// header that does not decode means anonymous, not an error.
func registryAuth(r *http.Request) manager.RegistryAuth {
	ra := manager.RegistryAuth{Auth: decodeAuth(r.Header.Get("X-Registry-Auth"))}
	for k, v := range r.Header {
		if strings.HasPrefix(k, "X-Meta-") {
			if ra.MetaHeaders == nil {
				ra.MetaHeaders = map[string][]string{}
			}
			ra.MetaHeaders[k] = v
		}
	}
	return ra
}

func decodeAuth(h string) distribution.Auth {
	if h == "" {
		return distribution.Auth{}
	}
	var b []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.URLEncoding, base64.RawURLEncoding, base64.StdEncoding, base64.RawStdEncoding} {
		if b, err = enc.DecodeString(h); err == nil {
			break
		}
	}
	if err != nil {
		return distribution.Auth{}
	}
	var a struct {
		Username      string `json:"username"`
		Password      string `json:"password"`
		IdentityToken string `json:"identitytoken"`
		RegistryToken string `json:"registrytoken"`
	}
	if json.Unmarshal(b, &a) != nil {
		return distribution.Auth{}
	}
	return distribution.Auth{Username: a.Username, Password: a.Password, IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken}
}

// privileges answers GET /plugins/privileges?remote=.
func (a *API) privileges(c echo.Context) error {
	ps, err := a.b.Privileges(c.Request().Context(), manager.PrivilegesRequest{
		Remote: c.QueryParam("remote"), RegistryAuth: registryAuth(c.Request()),
	})
	if errdefs.IsUnauthorized(err) {
		// The stock CLI answers a 401 from this endpoint by prompting for a
		// login on the terminal, and waits there forever when there is no
		// terminal (CI). dockerd never sends it (it answers 200 [] for every
		// registry error); pluginsd reports the error, as 403.
		return errdefs.ErrPermissionDenied.WithMessage(err.Error())
	}
	if err != nil {
		return err
	}
	if ps == nil {
		ps = plugin.Privileges{}
	}
	return writeJSON(c, http.StatusOK, ps)
}

// acceptedPrivileges reads the privileges the user accepted (the body of
// pull and upgrade); an empty body means none.
func acceptedPrivileges(c echo.Context) (plugin.Privileges, error) {
	var ps plugin.Privileges
	if _, err := readJSON(c, &ps); err != nil {
		return nil, err
	}
	return ps, nil
}
