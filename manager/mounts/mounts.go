// Package mounts removes the host mounts under a plugin's directories.
package mounts

import (
	"fmt"

	"github.com/moby/sys/mount"
	"github.com/moby/sys/mountinfo"
)

// maxRounds bounds UnmountAll: mounts can be stacked on one mount point
// (a plugin's propagated-mount dir is bound onto itself, and a plugin's own
// mounts can propagate on top of it), and each round takes off at least
// one layer.
const maxRounds = 16

// UnmountAll unmounts everything at and below dir, including mounts stacked
// on the same mount point, and reports an error if anything is still
// mounted there afterwards: callers must then not delete dir, since a
// delete would go through the mount into someone else's files.
func UnmountAll(dir string) error {
	for range maxRounds {
		ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
		if err != nil {
			return err
		}
		if len(ms) == 0 {
			return nil
		}
		if err := mount.RecursiveUnmount(dir); err != nil {
			return fmt.Errorf("unmounting %s: %w", dir, err)
		}
	}
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return err
	}
	if len(ms) > 0 {
		return fmt.Errorf("unmounting %s: %d mounts remain", dir, len(ms))
	}
	return nil
}
