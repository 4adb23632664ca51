package server

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestListenUnixMode(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "sub", "api.sock")
	l, err := Listen(t.Context(), "unix://"+sock, ListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want a socket with 0660", fi.Mode())
	}
	// A live socket is not taken over.
	if _, err := Listen(t.Context(), "unix://"+sock, ListenOptions{}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second Listen on a live socket: %v, want in use", err)
	}
	// A stale one (its server gone without removing it) is replaced.
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	l, err = Listen(t.Context(), "unix://"+sock, ListenOptions{})
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	l.Close()
	// A file that is not a socket is never removed.
	if err := os.WriteFile(sock, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(t.Context(), "unix://"+sock, ListenOptions{}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen over a regular file: %v, want not a socket", err)
	}
}

// TestListenLeavesUmask: opening a socket must not change the mode of files
// other goroutines create meanwhile. (It once set the process umask to 0177
// around bind, and a plugin created by a parallel test lost its execute
// bits: "entrypoint /testplugin is not executable (mode -rw-------)".)
func TestListenLeavesUmask(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			l, err := Listen(ctx, fmt.Sprintf("unix://%s/s%d.sock", dir, i%4), ListenOptions{})
			if err == nil {
				l.Close()
			}
		}
	})
	files := filepath.Join(t.TempDir(), "f")
	for i := range 2000 {
		p := fmt.Sprintf("%s%d", files, i)
		if err := os.WriteFile(p, nil, 0o755); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		// The test process's umask is 022 or stricter on group/other
		// write only; the owner's execute bit must survive.
		if fi.Mode().Perm()&0o700 != 0o700 {
			cancel()
			wg.Wait()
			t.Fatalf("file created during Listen has mode %v", fi.Mode().Perm())
		}
	}
	cancel()
	wg.Wait()
}
