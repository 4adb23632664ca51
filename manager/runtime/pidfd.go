package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// pidFD is a pidfd registered with the Go netpoller: waiting for the
// process to exit blocks no thread and can be cancelled. The os.File keeps
// the descriptor alive while a call uses it, so a concurrent close cannot
// make a signal go to a reused descriptor.
type pidFD struct {
	pid int
	f   *os.File
}

func openPidFD(pid int) (*pidFD, error) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	return &pidFD{pid: pid, f: os.NewFile(uintptr(fd), fmt.Sprintf("pidfd:%d", pid))}, nil
}

// wait returns nil once the process has exited, or ctx's error.
func (p *pidFD) wait(ctx context.Context) error {
	rc, err := p.f.SyscallConn()
	if err != nil {
		return err
	}
	// Waking the poller through a deadline is what makes the wait
	// cancellable; a pidfd cannot be read, only polled.
	stop := context.AfterFunc(ctx, func() { _ = p.f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	err = rc.Read(func(fd uintptr) bool { return pollExited(int(fd)) })
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// signal sends sig to the process; it fails with ESRCH once the process
// has exited.
func (p *pidFD) signal(sig syscall.Signal) error {
	rc, err := p.f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.PidfdSendSignal(int(fd), sig, nil, 0) }); err != nil {
		return err
	}
	return serr
}

func (p *pidFD) close() { _ = p.f.Close() }

func pollExited(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err == nil && n > 0
	}
}
