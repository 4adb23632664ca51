package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	gorunc "github.com/containerd/go-runc"

	"github.com/pluginsd/pluginsd/manager/mounts"
)

// Stop stops plugin id: SIGTERM, up to grace for it to exit, then SIGKILL to
// every process of the plugin and up to 10 s more. Then it deletes the runc
// state, the bundle and the socket directory, and unmounts whatever was
// mounted on the host for the plugin. Stopping a plugin that is not running
// only cleans up; it is not an error. A plugin running outside this
// runtime's knowledge (not started nor restored by it) is stopped too.
func (r *Runtime) Stop(ctx context.Context, id string, grace time.Duration) error {
	if err := validateID(id); err != nil {
		return err
	}
	unlock, err := r.locks.lock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	if r.isClosed() {
		return errClosed
	}
	t := r.task(id)
	if t == nil && r.hasState(id) {
		if c, err := r.runc.State(ctx, id); err == nil && isLive(c.Status) {
			if t, err = r.adopt(ctx, id, c.Pid); err != nil {
				r.log.WithField("plugin", id).WithError(err).Warn("cannot watch the plugin to stop it")
			}
		}
	}
	if t != nil {
		if err := r.terminate(ctx, t, grace); err != nil {
			return fmt.Errorf("stopping plugin %s: %w", id, err)
		}
		r.forget(t)
	}
	if err := r.cleanup(ctx, id); err != nil {
		return fmt.Errorf("cleaning up plugin %s: %w", id, err)
	}
	return nil
}

// terminate asks the plugin to exit, then forces it.
func (r *Runtime) terminate(ctx context.Context, t *Task, grace time.Duration) error {
	if grace > 0 {
		if err := r.kill(ctx, t, syscall.SIGTERM, grace); !errors.Is(err, errStillRunning) {
			return err
		}
		r.log.WithField("plugin", t.id).Infof("plugin did not exit within %s of SIGTERM; killing it", grace)
	}
	return r.kill(ctx, t, syscall.SIGKILL, killWait)
}

var errStillRunning = errors.New("plugin still running")

// kill sends sig to the plugin (SIGKILL to all its processes) and waits up
// to wait for the task to end. SIGKILL is repeated while waiting: a start
// being aborted may not have a container to signal yet.
func (r *Runtime) kill(ctx context.Context, t *Task, sig syscall.Signal, wait time.Duration) error {
	if t.exited() {
		return nil
	}
	r.signal(ctx, t, sig, 0)
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	again := time.NewTicker(100 * time.Millisecond)
	defer again.Stop()
	for attempt := 1; ; attempt++ {
		select {
		case <-t.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-r.ctx.Done():
			return errClosed
		case <-timeout.C:
			return fmt.Errorf("%w %s after %v", errStillRunning, wait, sig)
		case <-again.C:
			if sig == syscall.SIGKILL {
				r.signal(ctx, t, sig, attempt)
			}
		}
	}
}

// signal delivers sig through runc; attempt counts repeated SIGKILLs. When
// runc cannot signal the container, an adopted task's init gets sig through
// its pidfd. A started task's runc is SIGKILLed instead when its container
// is still missing 200 ms after the first attempt: runc is then stuck before
// creating it. (Right after the plugin exits a missing container is normal:
// runc deletes it on its way out, and must be left to exit with the status.)
// Should runc have created a container after all, the task watches it.
func (r *Runtime) signal(ctx context.Context, t *Task, sig syscall.Signal, attempt int) {
	err := r.runc.Kill(ctx, t.id, int(sig), &gorunc.KillOpts{All: sig == syscall.SIGKILL})
	if err == nil || t.exited() {
		return
	}
	switch {
	case t.adopted:
		_ = t.proc.signal(sig)
	case sig == syscall.SIGKILL && attempt >= 2 && !r.hasState(t.id):
		_ = t.proc.signal(sig)
	}
}

// cleanup deletes what a run of plugin id leaves behind: the runc state,
// host mounts, the socket directory and the bundle. The plugin must not be
// running.
func (r *Runtime) cleanup(ctx context.Context, id string) error {
	var errs []error
	if err := r.deleteState(ctx, id); err != nil {
		errs = append(errs, err)
	}
	bundle := r.bundleDir(id)
	st, err := readBundleState(bundle)
	if err != nil {
		errs = append(errs, err)
	}
	for _, dir := range []string{st.PropagatedMountDir, st.Rootfs} {
		if dir != "" {
			if err := unmountAll(dir); err != nil {
				errs = append(errs, err)
			}
		}
	}
	socketDir := r.socketDir(id)
	if err := unmountAll(socketDir); err != nil {
		// Never remove through a mount.
		errs = append(errs, err)
	} else if err := os.RemoveAll(socketDir); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(bundle); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// deleteState force-deletes runc's container id. A runc run that outlived
// its plugin may be deleting it at the same time, so a failure counts only
// while the state is still there.
func (r *Runtime) deleteState(ctx context.Context, id string) error {
	var err error
	for attempt := 0; attempt < 5 && r.hasState(id); attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
		err = r.runc.Delete(ctx, id, &gorunc.DeleteOpts{Force: true})
		if err == nil {
			return nil
		}
	}
	if !r.hasState(id) {
		return nil
	}
	return fmt.Errorf("runc delete %s: %w", id, err)
}

// unmountAll unmounts everything at and below dir.
func unmountAll(dir string) error { return mounts.UnmountAll(dir) }
