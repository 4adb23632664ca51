package manager

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/pluginsd/pluginsd/manager/runtime"
)

// Runtime runs plugin containers (*runtime.Runtime over runc in
// production).
type Runtime interface {
	Start(ctx context.Context, p runtime.Plugin, timeout time.Duration) (*runtime.Task, error)
	Stop(ctx context.Context, id string, grace time.Duration) error
	Restore(ctx context.Context) (map[string]*runtime.Task, error)
	RemoveLogs(id string) error
	LogIDs() ([]string, error)
}

const (
	// defaultStartTimeout is how long enable waits for a plugin's socket
	// when the client gives no positive timeout.
	defaultStartTimeout = 30 * time.Second
	// stopGrace is how long a plugin gets between SIGTERM and SIGKILL.
	stopGrace = 10 * time.Second
	// Restart backoff after a crash: doubling from min to max; a plugin that
	// ran for backoffReset before crashing starts again from min.
	restartBackoffMin   = 100 * time.Millisecond
	restartBackoffMax   = 30 * time.Second
	restartBackoffReset = 10 * time.Second
)

// running is the supervision of one enabled plugin.
type running struct {
	ctx  context.Context    // cancelled by disable/remove (and shutdown): the supervisor exits
	stop context.CancelFunc // cancels ctx
	done chan struct{}      // closed when the supervisor has exited
	mu   sync.Mutex         // guards task
	task *runtime.Task      // nil while (re)starting
}

// EnableRequest starts a plugin.
type EnableRequest struct {
	Name string // as the client gave it
	// Timeout bounds the wait for the plugin's socket; 0 means the default
	// (30 s).
	Timeout time.Duration
}

// ParseTimeout reads enable's timeout query parameter: absent means the
// default; anything but an integer is a 400 (dockerd answers 500: public
// case B13); zero or negative means the default.
func ParseTimeout(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, invalidf("invalid timeout %q: must be an integer number of seconds", s)
	}
	if n <= 0 {
		return 0, nil
	}
	return time.Duration(n) * time.Second, nil
}

// Enable starts a plugin and returns once its socket accepts connections.
// If it cannot start, the error says why (exit status and last output of a
// plugin that died, the timeout of one that never listened, the config
// problem), nothing is left running and the plugin stays disabled.
func (m *Manager) Enable(ctx context.Context, req EnableRequest) error {
	if m.rt == nil {
		return errNoRuntime
	}
	r, unlock, err := m.lockPlugin(ctx, req.Name)
	if err != nil {
		return err
	}
	defer unlock()
	if r.Plugin.Enabled {
		return errAlreadyEnabled(r.Name())
	}
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = defaultStartTimeout
	}
	// Like dockerd, an enable that was asked for completes even if the
	// client goes away meanwhile; its own deadline still bounds it.
	task, err := m.rt.Start(context.WithoutCancel(ctx), m.runtimePlugin(r), timeout)
	if err != nil {
		return fmt.Errorf("enable %s: %w", r.Name(), err)
	}
	next := r.Clone()
	next.Plugin.Enabled = true
	if err := m.ps.Update(next); err != nil {
		m.stopTask(r.ID())
		return err
	}
	m.supervise(r.ID(), task)
	m.events.Publish(Event{Action: "enable", ID: r.ID(), Name: req.Name, Time: time.Now()})
	return nil
}

// DisableRequest stops a plugin.
type DisableRequest struct {
	Name  string // as the client gave it
	Force bool
}

// Disable stops a plugin: SIGTERM, SIGKILL after 10 s, then its mounts and
// directories are cleaned up.
func (m *Manager) Disable(ctx context.Context, req DisableRequest) error {
	r, unlock, err := m.lockPlugin(ctx, req.Name)
	if err != nil {
		return err
	}
	defer unlock()
	if !r.Plugin.Enabled {
		return errAlreadyDisabled(r.Name())
	}
	if err := m.checkDisable(r); err != nil {
		return err
	}
	if err := m.stopPlugin(ctx, r.ID()); err != nil {
		return err
	}
	next := r.Clone()
	next.Plugin.Enabled = false
	if err := m.ps.Update(next); err != nil {
		return err
	}
	m.events.Publish(Event{Action: "disable", ID: r.ID(), Name: req.Name, Time: time.Now()})
	return nil
}

// checkDisable is where a plugin that must not stop (one in the configured
// authorization chain) is refused; see authz.go.
func (m *Manager) checkDisable(r *Plugin) error {
	if m.cfg.Protected != nil {
		if err := m.cfg.Protected(r); err != nil {
			return err
		}
	}
	return nil
}

// stopPlugin ends supervision of plugin id and stops its process.
func (m *Manager) stopPlugin(ctx context.Context, id string) error {
	m.runMu.Lock()
	run := m.running[id]
	delete(m.running, id)
	m.runMu.Unlock()
	if run != nil {
		run.stop()
		<-run.done
	}
	m.withdrawn(id)
	if m.rt == nil {
		return nil
	}
	return m.rt.Stop(ctx, id, stopGrace)
}

func (m *Manager) stopTask(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*stopGrace)
	defer cancel()
	if err := m.rt.Stop(ctx, id, stopGrace); err != nil {
		logrus.WithError(err).WithField("plugin", id).Warn("stopping plugin")
	}
}

// runtimePlugin is what the runtime needs to run r.
func (m *Manager) runtimePlugin(r *Plugin) runtime.Plugin {
	return runtime.Plugin{
		ID:                 r.ID(),
		Rootfs:             m.ps.RootfsPath(r),
		PropagatedMountDir: filepath.Join(m.ps.Dir(r.ID()), "propagated-mount"),
		Config:             r.Plugin.Config,
		Settings:           r.Plugin.Settings,
	}
}

// supervise watches an enabled plugin in an owned goroutine and restarts it
// with capped exponential backoff when it dies. task may be nil: the
// plugin is then started first (restoring enabled plugins at start-up).
func (m *Manager) supervise(id string, task *runtime.Task) {
	ctx, stop := context.WithCancel(m.ctx)
	run := &running{ctx: ctx, stop: stop, done: make(chan struct{}), task: task}
	m.runMu.Lock()
	m.running[id] = run
	m.runMu.Unlock()
	m.published(id, task)
	m.wg.Go(func() {
		defer close(run.done)
		m.superviseLoop(id, run)
	})
}

func (m *Manager) superviseLoop(id string, run *running) {
	log := logrus.WithField("plugin", id)
	backoff := restartBackoffMin
	started := time.Now()
	// died holds the last death's event attributes until the plugin is up
	// again: that start is a restart, even after failed attempts.
	var died map[string]string
	for {
		run.mu.Lock()
		task := run.task
		run.mu.Unlock()
		if task != nil {
			select {
			case <-run.ctx.Done():
				return
			case <-task.Done():
			}
			attrs := map[string]string{}
			if code, ok := task.ExitStatus(); ok {
				attrs["exitCode"] = strconv.Itoa(code)
			}
			died = attrs
			log.WithField("exitCode", attrs["exitCode"]).Error("plugin exited while enabled; restarting")
			m.withdrawn(id)
			m.events.Publish(Event{Action: "die", ID: id, Name: m.nameOf(id), Attributes: attrs, Time: time.Now()})
			if time.Since(started) >= restartBackoffReset {
				backoff = restartBackoffMin
			}
			run.mu.Lock()
			run.task = nil
			run.mu.Unlock()
		}
		select {
		case <-run.ctx.Done():
			return
		case <-time.After(backoff):
		}
		task, err := m.restart(id, run)
		if err != nil {
			log.WithError(err).Error("restarting plugin")
			backoff = min(backoff*2, restartBackoffMax)
			continue
		}
		if task == nil {
			return // disabled or removed meanwhile
		}
		started = time.Now()
		run.mu.Lock()
		run.task = task
		run.mu.Unlock()
		m.published(id, task)
		if died != nil {
			m.restarts.Add(1)
			m.events.Publish(Event{Action: "restart", ID: id, Name: m.nameOf(id), Attributes: died, Time: time.Now()})
			died = nil
			log.Info("plugin restarted")
		} else {
			log.Info("plugin started")
		}
	}
}

// restart starts plugin id again under its key lock, unless it was
// disabled or removed meanwhile (then it returns nil, nil).
func (m *Manager) restart(id string, run *running) (*runtime.Task, error) {
	// run.ctx ends when a disable (which holds the key lock while it waits
	// for this supervisor) asks us to stop: never wait on the lock past it.
	unlock, err := m.locks.lock(run.ctx, id)
	if err != nil {
		return nil, nil // stopped by disable: not a failure
	}
	defer unlock()
	if run.ctx.Err() != nil {
		return nil, nil
	}
	r, ok := m.ps.Snapshot().Get(id)
	if !ok || !r.Plugin.Enabled {
		return nil, nil
	}
	// Clean what the dead process left (mounts, runc state) first.
	if err := m.rt.Stop(run.ctx, id, stopGrace); err != nil {
		return nil, err
	}
	return m.rt.Start(run.ctx, m.runtimePlugin(r), defaultStartTimeout)
}

func (m *Manager) nameOf(id string) string {
	if r, ok := m.ps.Snapshot().Get(id); ok {
		return r.Name()
	}
	return ""
}

// restore runs at start-up: plugins still running from before (pluginsd
// restarted, live-restore) are adopted; enabled plugins that are not
// running are started; anything running that is not enabled is stopped.
func (m *Manager) restore(ctx context.Context) error {
	tasks, err := m.rt.Restore(ctx)
	if err != nil {
		return err
	}
	for _, r := range m.ps.Snapshot().All() {
		if !r.Plugin.Enabled {
			continue
		}
		task := tasks[r.ID()]
		delete(tasks, r.ID())
		if task != nil {
			logrus.WithField("plugin", r.ID()).Info("adopted running plugin")
		}
		m.supervise(r.ID(), task)
	}
	for id := range tasks {
		logrus.WithField("plugin", id).Info("stopping plugin that is not enabled")
		m.stopTask(id)
	}
	m.removeOrphanLogs()
	return nil
}

// removeOrphanLogs deletes the logs of plugins that no longer exist.
func (m *Manager) removeOrphanLogs() {
	ids, err := m.rt.LogIDs()
	if err != nil {
		logrus.WithError(err).Warn("listing plugin logs")
		return
	}
	snap := m.ps.Snapshot()
	for _, id := range ids {
		if _, ok := snap.Get(id); ok {
			continue
		}
		if err := m.rt.RemoveLogs(id); err != nil {
			logrus.WithError(err).WithField("plugin", id).Warn("removing the logs of a removed plugin")
		}
	}
}

// stopAll stops every running plugin (shutdown without live-restore); their
// records stay enabled so the next start brings them back.
func (m *Manager) stopAll(ctx context.Context) {
	m.runMu.Lock()
	ids := make([]string, 0, len(m.running))
	for id := range m.running {
		ids = append(ids, id)
	}
	m.runMu.Unlock()
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			if err := m.stopPlugin(ctx, id); err != nil {
				logrus.WithError(err).WithField("plugin", id).Warn("stopping plugin at shutdown")
			}
		})
	}
	wg.Wait()
}
