package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/sirupsen/logrus"
)

// ListenOptions configure Listen.
type ListenOptions struct {
	// Group is given access to unix sockets, if it exists (--group).
	Group string
	// TLS, when set, serves tcp hosts over TLS (see TLSOptions.Config).
	// Unix sockets stay plain: their file mode is their access control.
	TLS *tls.Config
	// InsecureTCP allows plain TCP on an address that is not loopback
	// (--insecure-tcp).
	InsecureTCP bool
}

// Listen opens one listener per --host value: unix://PATH or
// tcp://HOST:PORT. A unix socket's directory is created; a stale socket
// file left by a killed server is replaced, but a live one is not (a second
// server on the same socket is an error). Sockets get mode 0660 and, when
// o.Group names an existing group, that group (like dockerd's --group).
//
// Plain TCP is refused on any address that is not loopback unless
// o.InsecureTCP is set: the API starts plugins with any privilege, so
// whoever reaches it is root on this host.
func Listen(ctx context.Context, host string, o ListenOptions) (net.Listener, error) {
	proto, addr, ok := strings.Cut(host, "://")
	if !ok {
		return nil, fmt.Errorf("invalid host %q: want unix://PATH or tcp://HOST:PORT", host)
	}
	switch proto {
	case "unix":
		return listenUnix(ctx, addr, o.Group)
	case "tcp":
		return listenTCP(ctx, host, addr, o)
	default:
		return nil, fmt.Errorf("invalid host %q: unsupported protocol %q", host, proto)
	}
}

func listenUnix(ctx context.Context, path, group string) (net.Listener, error) {
	if path == "" {
		return nil, errors.New("invalid host: empty unix socket path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		var d net.Dialer
		if c, err := d.DialContext(ctx, "unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s is in use by another server", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	// Create the socket with no access for others, then open it up to the
	// group: there is no window in which anyone else can connect. Linux's
	// bind(2) gives the socket file the mode of the socket's own inode (less
	// the umask), so the mode is set on the descriptor before bind. The
	// process-wide umask is left alone: changing it would race with every
	// other goroutine creating files (in-process tests open listeners while
	// other daemons extract plugins).
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) { err = syscall.Fchmod(int(fd), 0o600) }); cerr != nil {
			return cerr
		}
		return err
	}}
	l, err := lc.Listen(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	gid := -1
	if group != "" {
		if g, err := user.LookupGroup(group); err == nil {
			gid, _ = strconv.Atoi(g.Gid)
		} else {
			logrus.WithField("group", group).Debug("socket group does not exist; socket stays owned by root's group")
		}
	}
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			l.Close()
			return nil, err
		}
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}
