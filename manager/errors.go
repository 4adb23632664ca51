package manager

import (
	"fmt"

	"github.com/containerd/errdefs"
)

// Plugin-state errors keep dockerd's wording, because users and scripts match
// on it; each carries exactly one errdefs class, which server/ maps to a
// status in one place.

func errEnabled(name string) error {
	return errdefs.ErrConflict.WithMessage(fmt.Sprintf("plugin %s is enabled", name))
}

// errSetActive: dockerd answers 500 for this; it is a state conflict (409).
var errSetActive = errdefs.ErrConflict.WithMessage("cannot set on an active plugin, disable plugin before setting")

func invalidf(format string, args ...any) error {
	return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf(format, args...))
}

func errAlreadyEnabled(name string) error {
	return errdefs.ErrConflict.WithMessage(fmt.Sprintf("plugin already enabled: plugin %s is enabled", name))
}

func errAlreadyDisabled(name string) error {
	return errdefs.ErrConflict.WithMessage(fmt.Sprintf("plugin is already disabled: plugin %s found but disabled", name))
}

var errNoRuntime = errdefs.ErrNotImplemented.WithMessage("plugins cannot be enabled: runc was not found when pluginsd started")
