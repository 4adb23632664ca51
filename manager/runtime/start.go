package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/sys/mount"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const (
	// DefaultStartTimeout is how long Start waits for the socket when the
	// caller gives no timeout.
	DefaultStartTimeout = 30 * time.Second
	// maxSocketPath is the longest path connect(2) takes for a unix socket.
	maxSocketPath = 107
	// killWait bounds the wait for a plugin to exit after SIGKILL.
	killWait    = 10 * time.Second
	pidFileName = "init.pid"
)

// Start runs plugin p and returns once its socket accepts connections,
// waiting at most timeout (DefaultStartTimeout when timeout <= 0). If the
// plugin exits first, the error quotes its exit status and last lines of
// output. On any failure everything Start did is undone: the plugin is
// killed and its runc state, bundle, socket directory and mounts are gone.
//
// The plugin is not tied to ctx: cancelling ctx only abandons the wait for
// the socket (and then stops the plugin).
func (r *Runtime) Start(ctx context.Context, p Plugin, timeout time.Duration) (*Task, error) {
	if err := validateID(p.ID); err != nil {
		return nil, err
	}
	unlock, err := r.locks.lock(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if r.isClosed() {
		return nil, errClosed
	}
	if t := r.task(p.ID); t != nil {
		if !t.exited() {
			return nil, errdefs.ErrAlreadyExists.WithMessage(fmt.Sprintf("plugin %s is already running (pid %d)", p.ID, t.Pid()))
		}
		r.forget(t)
	}
	socketDir := r.socketDir(p.ID)
	spec, err := Spec(p, socketDir)
	if err != nil {
		return nil, err
	}
	spec.Linux.CgroupsPath = path.Join(r.cfg.CgroupParent, p.ID)
	sock := filepath.Join(socketDir, p.Config.Interface.Socket)
	if len(sock) > maxSocketPath {
		return nil, preconditionf("plugin socket path %s is %d bytes long, more than a unix socket address holds (%d); use a shorter socket root",
			sock, len(sock), maxSocketPath)
	}
	// What an earlier run left (a crash, a pluginsd killed mid-start).
	if err := r.clearLeftovers(ctx, p.ID); err != nil {
		return nil, err
	}

	t, logOffset, err := r.launch(p, spec, sock)
	if err != nil {
		r.abort(p.ID, nil)
		return nil, fmt.Errorf("starting plugin %s: %w", p.ID, err)
	}
	if err := r.waitReady(ctx, t, timeout, logOffset); err != nil {
		r.abort(p.ID, t)
		return nil, err
	}
	if pid, err := readPidFile(filepath.Join(r.bundleDir(p.ID), pidFileName)); err == nil {
		t.setPid(pid)
	} else if c, err := r.runc.State(ctx, p.ID); err == nil {
		t.setPid(c.Pid)
	}
	return t, nil
}

// clearLeftovers removes what an earlier run of id left, refusing when its
// container is still running.
func (r *Runtime) clearLeftovers(ctx context.Context, id string) error {
	if r.hasState(id) {
		c, err := r.runc.State(ctx, id)
		if err == nil && isLive(c.Status) {
			return errdefs.ErrAlreadyExists.WithMessage(fmt.Sprintf("plugin %s is already running (pid %d) outside this runtime's control", id, c.Pid))
		}
	}
	if err := r.cleanup(ctx, id); err != nil {
		return fmt.Errorf("clearing what an earlier run of plugin %s left: %w", id, err)
	}
	return nil
}

// launch prepares the bundle, the rootfs, the socket directory and the
// propagated mount, then starts runc run and the task's goroutines.
func (r *Runtime) launch(p Plugin, spec *specs.Spec, sock string) (*Task, int64, error) {
	bundle := r.bundleDir(p.ID)
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		return nil, 0, err
	}
	// Recorded before anything is mounted, so that cleanup finds it all.
	st := bundleState{Rootfs: p.Rootfs, SocketPath: sock}
	if p.Config.PropagatedMount != "" {
		st.PropagatedMountDir = p.PropagatedMountDir
	}
	if err := writeBundleState(bundle, st); err != nil {
		return nil, 0, err
	}
	if err := prepareRootfs(p.Rootfs); err != nil {
		return nil, 0, err
	}
	socketDir := filepath.Dir(sock)
	if err := os.RemoveAll(socketDir); err != nil {
		return nil, 0, err
	}
	if err := os.Mkdir(socketDir, 0o700); err != nil {
		return nil, 0, err
	}
	if st.PropagatedMountDir != "" {
		if err := os.MkdirAll(st.PropagatedMountDir, 0o755); err != nil {
			return nil, 0, err
		}
		if err := mount.MakeRShared(st.PropagatedMountDir); err != nil {
			return nil, 0, fmt.Errorf("making %s rshared: %w", st.PropagatedMountDir, err)
		}
	}
	b, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		return nil, 0, err
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o600); err != nil {
		return nil, 0, err
	}

	logFile, logOffset, err := openLog(r.logPath(p.ID))
	if err != nil {
		return nil, 0, fmt.Errorf("plugin log: %w", err)
	}
	defer logFile.Close()
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, 0, err
	}
	defer devNull.Close()

	// No context: runc and the plugin must outlive every request, and
	// pluginsd itself (see the package doc).
	cmd := exec.Command(r.cfg.Runc, //nolint:noctx // deliberately not cancellable
		"--root", r.cfg.StateDir, "run",
		"--bundle", bundle, "--pid-file", filepath.Join(bundle, pidFileName), p.ID)
	cmd.Dir = "/"
	cmd.Env = runcEnv(os.Environ())
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devNull, logFile, logFile
	// Its own process group keeps runc out of signals sent to pluginsd's
	// group (a terminal's ^C); no Pdeathsig, so it outlives pluginsd.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, 0, fmt.Errorf("running runc: %w", err)
	}
	proc, err := openPidFD(cmd.Process.Pid)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, 0, err
	}
	t := &Task{
		id: p.ID, socketPath: sock, logPath: r.logPath(p.ID),
		done: make(chan struct{}), proc: proc, cmd: cmd,
	}
	if err := r.track(t, func() { r.watchStarted(t) }, logOffset); err != nil {
		proc.close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, 0, err
	}
	return t, logOffset, nil
}

// runcEnv is pluginsd's environment without what would make runc talk to
// systemd or hand pluginsd's socket-activation descriptors to the plugin.
func runcEnv(env []string) []string {
	out := env[:0:0]
	for _, e := range env {
		name, _, _ := strings.Cut(e, "=")
		switch name {
		case "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES":
			continue
		}
		out = append(out, e)
	}
	return out
}

// waitReady connects to the task's socket until it accepts, backing off
// from 5 to 50 ms.
func (r *Runtime) waitReady(ctx context.Context, t *Task, timeout time.Duration, logOffset int64) error {
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	dialer := net.Dialer{Timeout: time.Second}
	delay := 5 * time.Millisecond
	for {
		conn, err := dialer.DialContext(ctx, "unix", t.socketPath)
		if err == nil {
			conn.Close()
			return nil
		}
		retry := time.NewTimer(delay)
		select {
		case <-t.done:
			retry.Stop()
			return exitedError(t, tailOutput(t.logPath, logOffset))
		case <-ctx.Done():
			retry.Stop()
			return fmt.Errorf("waiting for plugin %s to listen on %s: %w", t.id, t.socketPath, ctx.Err())
		case <-r.ctx.Done():
			retry.Stop()
			return errClosed
		case <-deadline.C:
			retry.Stop()
			if t.exited() {
				return exitedError(t, tailOutput(t.logPath, logOffset))
			}
			msg := fmt.Sprintf("plugin did not listen on %s within %s", t.socketPath, timeout)
			if out := tailOutput(t.logPath, logOffset); out != "" {
				msg += "; its last output:\n" + out
			}
			return errors.New(msg)
		case <-retry.C:
			delay = min(2*delay, 50*time.Millisecond)
		}
	}
}

func exitedError(t *Task, output string) error {
	msg := "plugin exited before its socket was ready"
	if code, known := t.ExitStatus(); known {
		msg = fmt.Sprintf("plugin exited with status %d before its socket was ready", code)
	}
	if output != "" {
		msg += ": " + output
	}
	return errors.New(msg)
}

// abort undoes a failed start: it kills the plugin (or runc, when there is
// no container yet) and removes everything. It does not use the caller's
// context, which may be what failed the start.
func (r *Runtime) abort(id string, t *Task) {
	ctx, cancel := context.WithTimeout(context.Background(), killWait+5*time.Second)
	defer cancel()
	log := r.log.WithField("plugin", id)
	if t != nil {
		if err := r.kill(ctx, t, syscall.SIGKILL, killWait); err != nil {
			log.WithError(err).Warn("stopping the plugin after a failed start")
		}
		r.forget(t)
	}
	if err := r.cleanup(ctx, id); err != nil {
		log.WithError(err).Warn("cleaning up after a failed start")
	}
}

func readPidFile(p string) (int, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
