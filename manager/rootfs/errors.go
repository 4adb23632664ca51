package rootfs

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/containerd/errdefs"
)

// invalidf builds a client-caused error: its text is the formatted message
// and errdefs.IsInvalidArgument reports true for it.
func invalidf(format string, args ...any) error {
	return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf(format, args...))
}

// serverErrnos are the failures that say something about the server's disk
// rather than about the archive. Everything else an extraction step can hit
// (ENOTDIR, EEXIST, ELOOP, ENAMETOOLONG, a path escaping the root...) is a
// consequence of what the tar asked for.
var serverErrnos = []syscall.Errno{
	syscall.ENOSPC, syscall.EDQUOT, syscall.EIO, syscall.EROFS,
	syscall.ENOMEM, syscall.ENOBUFS, syscall.EMFILE, syscall.ENFILE,
	syscall.EFBIG,
}

func isServerError(err error) bool {
	for _, e := range serverErrnos {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// fsError classifies the failure of a filesystem operation made for the
// entry named name (as it appeared in the tar).
func fsError(name string, err error) error {
	if isServerError(err) {
		return fmt.Errorf("extracting %q: %w", name, err)
	}
	return invalidf("cannot extract %q: %v", name, err)
}

// lchownError drops the EPERM an unprivileged process gets for chown, so
// extraction works (without ownership) outside of production, e.g. in
// tests. As root, a failing chown is reported.
func lchownError(err error) error {
	if errors.Is(err, syscall.EPERM) && geteuid() != 0 {
		return nil
	}
	return err
}
