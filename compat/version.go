// Package compat holds the pure, HTTP-free rules of the Engine API that vary
// by API version or that keep pluginsd wire-compatible with dockerd: version
// parsing and range checks, list filters, and per-version response shaping.
//
// Nothing here imports Echo, net/http server code or the manager: server/ and
// handlers/ call these functions with plain values.
package compat

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
)

const (
	// MinAPIVersion is the oldest API version pluginsd serves. 1.24 is the
	// oldest version the v28 daemon accepts; managed plugins arrived in 1.25
	// (experimental in 1.24).
	MinAPIVersion = "1.24"
	// MaxAPIVersion is the newest API version pluginsd serves, the version of
	// github.com/moby/moby/api whose types we use. Unversioned paths mean
	// this version, and /_ping advertises it.
	MaxAPIVersion = "1.57"
	// jsonErrorsSince is the first version whose errors are JSON; older
	// requests get plain text (dockerd's rule).
	jsonErrorsSince = "1.24"
	// dockerVersionUntil is the first version that no longer sees
	// Config.DockerVersion (deprecated in API 1.51: "no longer set, and
	// omitted when empty").
	dockerVersionUntil = "1.51"
	// upgradeSince: POST /plugins/{name}/upgrade was added in API 1.26.
	upgradeSince = "1.26"
)

// Compare compares two dotted versions numerically, component by component,
// treating missing components as 0, so "1.41.0" == "1.41". It returns -1, 0
// or +1. Non-numeric components compare as 0, as in moby's versions package.
func Compare(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	n := max(len(as), len(bs))
	for i := range n {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
	}
	return 0
}

// LessThan reports whether version a is older than b.
func LessThan(a, b string) bool { return Compare(a, b) < 0 }

// SplitPath splits a request path into its API version prefix and the rest.
// "/v1.41/plugins" gives ("1.41", "/plugins", true). A path without a
// "/v<digits and dots>/" prefix gives ("", path, false). Like dockerd's
// router, the version must match [0-9.]+, so "/v1.4a/x" is not versioned.
func SplitPath(path string) (version, rest string, ok bool) {
	if len(path) < 3 || path[0] != '/' || path[1] != 'v' {
		return "", path, false
	}
	end := strings.IndexByte(path[2:], '/')
	var v string
	if end < 0 {
		v, rest = path[2:], ""
	} else {
		v, rest = path[2:2+end], path[2+end:]
	}
	if v == "" {
		return "", path, false
	}
	for _, r := range v {
		if (r < '0' || r > '9') && r != '.' {
			return "", path, false
		}
	}
	if rest == "" {
		// "/v1.41" alone routes nowhere in dockerd; keep it unversioned so the
		// router answers "page not found".
		return "", path, false
	}
	return v, rest, true
}

// versionError is an API version outside the served range.
type versionError string

func (e versionError) Error() string { return string(e) }

// Unwrap classifies the error as a bad parameter (400).
func (e versionError) Unwrap() error { return errdefs.ErrInvalidArgument }

// Check returns an InvalidArgument error in dockerd's words when v is outside
// MinAPIVersion..MaxAPIVersion. An empty v means the default and passes.
func Check(v string) error {
	if v == "" {
		return nil
	}
	if LessThan(v, MinAPIVersion) {
		return versionError(fmt.Sprintf("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", v, MinAPIVersion))
	}
	if LessThan(MaxAPIVersion, v) {
		return versionError(fmt.Sprintf("client version %s is too new. Maximum supported API version is %s", v, MaxAPIVersion))
	}
	return nil
}

// PlainTextErrors reports whether errors for a request at version v are
// plain text rather than JSON (dockerd: versions below 1.24).
func PlainTextErrors(v string) bool { return v != "" && LessThan(v, jsonErrorsSince) }

// ShowsDockerVersion reports whether Config.DockerVersion is part of the
// plugin object at version v (only below 1.51).
func ShowsDockerVersion(v string) bool { return v != "" && LessThan(v, dockerVersionUntil) }

// UpgradeSupported reports whether the upgrade route exists at version v
// (introduced in API 1.26).
func UpgradeSupported(v string) bool { return v == "" || !LessThan(v, upgradeSince) }

type versionKey struct{}

// WithVersion returns ctx carrying the request's API version ("" means the
// default, MaxAPIVersion).
func WithVersion(ctx context.Context, v string) context.Context {
	return context.WithValue(ctx, versionKey{}, v)
}

// VersionFromContext returns the API version stored by WithVersion, or
// MaxAPIVersion.
func VersionFromContext(ctx context.Context) string {
	if v, _ := ctx.Value(versionKey{}).(string); v != "" {
		return v
	}
	return MaxAPIVersion
}
