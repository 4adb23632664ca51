package runtime

import (
	"fmt"

	"github.com/containerd/errdefs"
)

// invalidf reports a malformed plugin config or argument.
func invalidf(format string, args ...any) error {
	return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf(format, args...))
}

// preconditionf reports a config that is well formed but cannot run on this
// host: a missing bind source or device, an entrypoint missing from the
// rootfs or built for another architecture.
func preconditionf(format string, args ...any) error {
	return errdefs.ErrFailedPrecondition.WithMessage(fmt.Sprintf(format, args...))
}

var errClosed = errdefs.ErrUnavailable.WithMessage("plugin runtime is closed")
