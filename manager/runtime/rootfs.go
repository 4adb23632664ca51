package runtime

import (
	"errors"
	"io/fs"
	"os"
	"path"
)

var (
	initDirs  = []string{"dev/pts", "dev/shm", "proc", "sys"}
	initFiles = []string{".dockerenv", "etc/resolv.conf", "etc/hosts", "etc/hostname", "dev/console"}
)

// prepareRootfs creates the placeholders a container runtime expects in the
// rootfs (mount points, files bind-mounted over, /etc/mtab). Whatever exists
// already, of any type, is left alone. Everything goes through os.Root, so a
// symlink in a hostile rootfs cannot make this write outside it.
func prepareRootfs(rootfs string) error {
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		return preconditionf("preparing plugin rootfs: %v", err)
	}
	defer func() { _ = root.Close() }()
	for _, d := range initDirs {
		if err := root.MkdirAll(d, 0o755); err != nil {
			return preconditionf("preparing plugin rootfs: %v", err)
		}
	}
	missing := func(name string) (bool, error) {
		_, err := root.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			return true, nil
		}
		return false, err
	}
	for _, name := range initFiles {
		ok, err := missing(name)
		if err == nil && ok {
			err = createEmpty(root, name)
		}
		if err != nil {
			return preconditionf("preparing plugin rootfs: %v", err)
		}
	}
	ok, err := missing("etc/mtab")
	if err == nil && ok {
		err = root.Symlink("/proc/mounts", "etc/mtab")
	}
	if err != nil {
		return preconditionf("preparing plugin rootfs: %v", err)
	}
	return nil
}

func createEmpty(root *os.Root, name string) error {
	if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
		return err
	}
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}
