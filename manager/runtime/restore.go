package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// Restore adopts the plugins still running after pluginsd restarted, keyed
// by plugin ID. Every running (or paused) runc container in StateDir gets a
// Task that watches its init process; its log relay starts at the current
// end of the log. Containers in any other state are deleted and cleaned up
// like a stopped plugin, and so are bundles that have no container left (the
// plugin exited while pluginsd was away). Errors of single plugins are
// joined; the plugins that could be adopted are returned all the same.
func (r *Runtime) Restore(ctx context.Context) (map[string]*Task, error) {
	if r.isClosed() {
		return nil, errClosed
	}
	list, err := r.runc.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing runc containers in %s: %w", r.cfg.StateDir, err)
	}
	out := map[string]*Task{}
	seen := map[string]bool{}
	var errs []error
	restore := func(id, status string, pid int) {
		t, err := r.restoreOne(ctx, id, status, pid)
		if err != nil {
			errs = append(errs, fmt.Errorf("restoring plugin %s: %w", id, err))
		}
		if t != nil {
			out[id] = t
		}
	}
	for _, c := range list {
		if validateID(c.ID) != nil {
			continue
		}
		seen[c.ID] = true
		restore(c.ID, c.Status, c.Pid)
	}
	entries, err := os.ReadDir(r.cfg.BundleRoot)
	if err != nil {
		errs = append(errs, err)
	}
	for _, e := range entries {
		if id := e.Name(); e.IsDir() && !seen[id] && validateID(id) == nil {
			restore(id, "", 0)
		}
	}
	return out, errors.Join(errs...)
}

func (r *Runtime) restoreOne(ctx context.Context, id, status string, pid int) (*Task, error) {
	unlock, err := r.locks.lock(ctx, id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if t := r.task(id); t != nil && !t.exited() {
		return t, nil
	}
	log := r.log.WithField("plugin", id)
	if isLive(status) && pid > 0 {
		t, err := r.adopt(ctx, id, pid)
		if err == nil {
			log.Infof("adopted running plugin, pid %d", pid)
			return t, nil
		}
		if errors.Is(err, errClosed) {
			return nil, err
		}
		log.WithError(err).Warn("cannot adopt plugin; cleaning it up")
	}
	if status != "" {
		log.Infof("cleaning up plugin container in state %q", status)
	} else {
		log.Info("cleaning up the bundle of a plugin that exited")
	}
	return nil, r.cleanup(ctx, id)
}

var errNotRunning = errors.New("container is not running")

// adopt watches the running container id, whose init is pid.
func (r *Runtime) adopt(ctx context.Context, id string, pid int) (*Task, error) {
	proc, err := openPidFD(pid)
	if err != nil {
		return nil, err
	}
	// The pid may have been reused between runc's look and ours; runc
	// checks the process's start time, so ask it again.
	if c, err := r.runc.State(ctx, id); err != nil || !isLive(c.Status) || c.Pid != pid {
		proc.close()
		return nil, errNotRunning
	}
	st, err := readBundleState(r.bundleDir(id))
	if err != nil {
		r.log.WithField("plugin", id).WithError(err).Warn("no socket path for the adopted plugin")
	}
	t := &Task{
		id: id, socketPath: st.SocketPath, logPath: r.logPath(id), adopted: true,
		done: make(chan struct{}), proc: proc, pid: pid,
	}
	var offset int64
	if fi, err := os.Stat(t.logPath); err == nil {
		offset = fi.Size()
	}
	if err := r.track(t, func() { r.watchAdopted(t) }, offset); err != nil {
		proc.close()
		return nil, err
	}
	return t, nil
}
