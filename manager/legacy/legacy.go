// Package legacy publishes the sockets of enabled plugins where engines
// without managed plugins look for legacy (v1) plugins (--legacy-discovery):
// a symbolic link <dir>/<name>.sock to the plugin's socket, created when the
// plugin starts serving and removed when it stops.
//
// The name is the plugin's name with a ":latest" tag dropped: the name a
// user gives to `docker volume create -d NAME` (or `--volume-driver`), the
// name a legacy lookup searches for. The file is <dir>/<name>.sock, exactly
// the path dockerd's legacy discovery (pkg/plugins, and the engines built on
// it) derives from that name, so a '/' in the name is a subdirectory
// (vieux/sshfs → <dir>/vieux/sshfs.sock) and any other tag stays after a
// ':' (foo:1.0 → <dir>/foo:1.0.sock). Nothing is replaced: a replaced name
// would not be found under the name the user types.
//
// Podman looks up no directory: each volume plugin is configured by name and
// socket path in containers.conf ([engine.volume_plugins] NAME = "PATH");
// the link gives that PATH a value that stays the same across restarts,
// reinstalls and upgrades of the plugin.
//
// A link is chosen over a spec file (<name>.spec containing unix://PATH):
// both are legacy conventions, but only the socket is what Podman can be
// configured with, and dockerd-style discovery tries sockets first.
package legacy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/pluginsd/pluginsd/manager"
)

// Links publishes plugin sockets as links in one directory. It implements
// manager.Discovery.
type Links struct {
	dir        string
	socketRoot string // where plugin sockets are: links into it are ours

	mu    sync.Mutex
	links map[string]string // plugin ID → link path
}

var _ manager.Discovery = (*Links)(nil)

// New returns the links in dir (created if missing) to sockets under
// socketRoot (the plugin exec root). Links of an earlier run whose socket
// is gone are removed; those to plugins still running (live-restore) stay
// until the manager, adopting the plugins, publishes them again. Nothing
// that still works is removed: a second pluginsd started by mistake (which
// then fails on the data root's lock) must not unpublish the first one's
// plugins.
func New(dir, socketRoot string) (*Links, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	socketRoot, err = filepath.Abs(socketRoot)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("legacy plugin directory: %w", err)
	}
	l := &Links{dir: dir, socketRoot: socketRoot, links: map[string]string{}}
	l.sweep()
	return l, nil
}

// Name is the legacy name of a plugin named name ("name:tag"): the tag is
// dropped if it is latest.
func Name(name string) string {
	if base, ok := strings.CutSuffix(name, ":latest"); ok {
		return base
	}
	return name
}

// Path returns where the link of the plugin named name is, or an error if
// the name cannot be a path inside the directory.
func (l *Links) Path(name string) (string, error) {
	n := Name(name)
	if n == "" || filepath.IsAbs(n) || filepath.Clean(n) != n || strings.ContainsRune(n, 0) {
		return "", fmt.Errorf("plugin name %q cannot be a legacy plugin name", name)
	}
	for part := range strings.SplitSeq(n, "/") {
		if part == "." || part == ".." {
			return "", fmt.Errorf("plugin name %q cannot be a legacy plugin name", name)
		}
	}
	return filepath.Join(l.dir, n+".sock"), nil
}

// Up links the plugin's legacy name to socket. A file there that is not a
// link of ours (a legacy plugin's own socket) is left alone, and the plugin
// is not published.
func (l *Links) Up(p *manager.Plugin, socket string) {
	log := logrus.WithFields(logrus.Fields{"plugin": p.Name(), "socket": socket})
	path, err := l.Path(p.Name())
	if err != nil {
		log.WithError(err).Warn("legacy discovery: not publishing the plugin")
		return
	}
	if !filepath.IsAbs(socket) {
		if socket, err = filepath.Abs(socket); err != nil {
			log.WithError(err).Warn("legacy discovery: not publishing the plugin")
			return
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if old, ok := l.links[p.ID()]; ok && old != path {
		l.remove(old)
	}
	if err := l.link(path, socket); err != nil {
		log.WithError(err).Warn("legacy discovery: not publishing the plugin")
		return
	}
	l.links[p.ID()] = path
	log.WithField("link", path).Debug("legacy discovery: plugin published")
}

// Down removes the plugin's link, if it made one.
func (l *Links) Down(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	path, ok := l.links[id]
	if !ok {
		return
	}
	delete(l.links, id)
	l.remove(path)
	logrus.WithFields(logrus.Fields{"plugin": id, "link": path}).Debug("legacy discovery: plugin withdrawn")
}

// link makes path a link to socket, replacing a link of ours atomically.
func (l *Links) link(path, socket string) error {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSymlink == 0 || !l.ours(path) {
			return fmt.Errorf("%s exists and was not made by pluginsd", path)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(socket, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// ours reports whether path is a link into the socket root.
func (l *Links) ours(path string) bool {
	target, err := os.Readlink(path)
	if err != nil {
		return false
	}
	rel, err := filepath.Rel(l.socketRoot, target)
	return err == nil && filepath.IsAbs(target) && rel != "." && !strings.HasPrefix(rel, "..")
}

// remove deletes a link of ours and the directories made for it that are
// now empty (a name with '/').
func (l *Links) remove(path string) {
	if !l.ours(path) {
		return
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		logrus.WithError(err).WithField("link", path).Warn("legacy discovery: removing a link")
		return
	}
	for dir := filepath.Dir(path); dir != l.dir && strings.HasPrefix(dir, l.dir+"/"); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break // not empty (or not ours to remove)
		}
	}
}

// sweep removes the dead links of an earlier run: links of ours (into the
// socket root) whose socket is gone. It looks only at links, never at the
// sockets in plugin directories.
func (l *Links) sweep() {
	_ = filepath.WalkDir(l.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil //nolint:nilerr // best effort: skip what cannot be read
		}
		if d.Type()&fs.ModeSymlink == 0 || !strings.HasSuffix(path, ".sock") || !l.ours(path) {
			return nil
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode()&fs.ModeSocket == 0 {
			l.remove(path)
		}
		return nil
	})
}
