package runtime

import (
	"os/exec"
	"sync"
	"syscall"
)

// Task is a running plugin, started by Start or adopted by Restore.
type Task struct {
	id         string
	socketPath string
	logPath    string
	adopted    bool
	done       chan struct{}

	// proc is what the watcher waits for: runc for a started task, the
	// plugin's init for an adopted one.
	proc *pidFD
	cmd  *exec.Cmd // runc run; nil when adopted

	mu    sync.Mutex // guards pid, code, known
	pid   int
	code  int
	known bool
}

// ID returns the plugin ID.
func (t *Task) ID() string { return t.id }

// Pid returns the host PID of the plugin's init process.
func (t *Task) Pid() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pid
}

// SocketPath returns the host path of the plugin's socket,
// <SocketRoot>/<id>/<Interface.Socket>.
func (t *Task) SocketPath() string { return t.socketPath }

// LogPath returns the file that receives the plugin's stdout and stderr.
func (t *Task) LogPath() string { return t.logPath }

// Adopted reports whether the task was adopted by Restore rather than
// started by this runtime.
func (t *Task) Adopted() bool { return t.adopted }

// Done is closed when the plugin process has exited.
func (t *Task) Done() <-chan struct{} { return t.done }

// ExitStatus returns the plugin's exit status once Done is closed. known is
// false while the plugin runs, and for plugins adopted by Restore (runc, not
// pluginsd, is their parent). A plugin killed by a signal exits with
// 128+signal.
func (t *Task) ExitStatus() (code int, known bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.code, t.known
}

func (t *Task) exited() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

func (t *Task) setPid(pid int) {
	t.mu.Lock()
	t.pid = pid
	t.mu.Unlock()
}

func (t *Task) finish(code int, known bool) {
	t.mu.Lock()
	t.code, t.known = code, known
	t.mu.Unlock()
	close(t.done)
}

// watchStarted waits for runc run to exit and reaps it. runc exits with the
// plugin's status once the plugin has exited and runc has deleted the
// container. If runc itself died while the plugin runs on, the plugin's
// init is watched instead, and the status is unknown.
func (r *Runtime) watchStarted(t *Task) {
	defer t.proc.close()
	if err := t.proc.wait(r.ctx); err != nil {
		return // closing, or the poller failed: the plugin is not ours to judge
	}
	code, known := -1, false
	err := t.cmd.Wait()
	if ps := t.cmd.ProcessState; ps != nil {
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Exited() {
			code, known = ws.ExitStatus(), true
		}
	} else if err != nil {
		r.log.WithField("plugin", t.id).WithError(err).Warn("reaping runc")
	}
	if !known {
		// runc was killed: is the plugin still running without it?
		if c, err := r.runc.State(r.ctx, t.id); err == nil && isLive(c.Status) && c.Pid > 0 {
			if init, err := openPidFD(c.Pid); err == nil {
				r.log.WithField("plugin", t.id).Warnf("runc exited while the plugin runs on; watching pid %d", c.Pid)
				err := init.wait(r.ctx)
				init.close()
				if err != nil {
					return
				}
			}
		}
	}
	t.finish(code, known)
}

// watchAdopted waits for the init process of an adopted plugin.
func (r *Runtime) watchAdopted(t *Task) {
	defer t.proc.close()
	if err := t.proc.wait(r.ctx); err != nil {
		return
	}
	t.finish(-1, false)
}

func isLive(status string) bool { return status == "running" || status == "paused" }
