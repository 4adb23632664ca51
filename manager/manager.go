// Package manager is the plugin lifecycle: create, list, inspect, set and
// remove (and, beside them, install, push, enable...). It speaks no HTTP:
// handlers/ turns requests into the request structs here, and the errors it
// returns carry errdefs classes that server/ maps to statuses in one place.
//
// Concurrency: every mutating operation takes the plugin's key lock (see
// keyLocks), reads the current record again, and stores a new record; readers
// use the store's lock-free snapshots. Blob garbage collection runs in one
// owned goroutine and excludes creates through gcMu.
package manager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/pluginsd/pluginsd/manager/blobstore"
	"github.com/pluginsd/pluginsd/manager/pluginstore"
)

// Plugin is an installed plugin's record. Values are immutable: never modify
// one returned by the manager.
type Plugin = pluginstore.Record

// Config holds what the manager needs to start.
type Config struct {
	// DataRoot holds plugins/ and blobs/ (--data-root).
	DataRoot string
	// Version is pluginsd's version, recorded as DockerVersion in the config
	// blobs it creates (as dockerd records its engine version).
	Version string
	// Events receives lifecycle events; nil discards them.
	Events EventSink
	// Registry is the registry client for install, upgrade and push; nil
	// makes those operations fail with 501.
	Registry Registry
	// Runtime runs enabled plugins; nil makes enable fail with 501.
	Runtime Runtime
	// LiveRestore keeps plugins running when pluginsd stops; at the next
	// start they are adopted. Without it, Close stops them and the next
	// start re-enables them (dockerd's default).
	LiveRestore bool
	// Protected, if set, may refuse to disable or force-remove a plugin
	// (one in the authorization chain) with a Conflict error.
	Protected func(*Plugin) error
	// Discovery, if set, is told when enabled plugins start and stop
	// serving (legacy discovery; see discovery.go).
	Discovery Discovery
}

// Manager owns the plugin store and blob store.
type Manager struct {
	cfg    Config
	ps     *pluginstore.Store
	bs     *blobstore.Store
	events EventSink
	reg    Registry
	locks  keyLocks

	inflight inflight // layer downloads in progress, shared by concurrent pulls

	gcMu     sync.RWMutex  // creates and pulls hold R while their blobs are unreferenced; GC holds W
	gcKick   chan struct{} // 1-buffered: a request for a GC pass
	rt       Runtime
	runMu    sync.Mutex          // guards running
	running  map[string]*running // supervision of enabled plugins, by ID
	restarts atomic.Int64        // crash restarts, for metrics
	pulled   atomic.Int64        // layer bytes downloaded, for metrics
	pushed   atomic.Int64        // blob bytes uploaded, for metrics
	idOnce   sync.Once           // makes engineID, on first use
	engineID string              // see EngineID

	ctx       context.Context // ends at Close
	cancel    context.CancelFunc
	wg        sync.WaitGroup // the GC worker and the supervisors
	lock      *os.File       // flock on <data-root>/pluginsd.lock, held until Close
	closeOnce sync.Once
}

// New opens the stores under cfg.DataRoot, cleaning up what an interrupted
// run left, and starts the GC worker. Close stops it.
func New(cfg Config) (*Manager, error) {
	if cfg.DataRoot == "" {
		return nil, fmt.Errorf("manager: DataRoot is required")
	}
	lock, err := lockDataRoot(cfg.DataRoot)
	if err != nil {
		return nil, err
	}
	ps, err := pluginstore.Open(filepath.Join(cfg.DataRoot, "plugins"))
	if err != nil {
		lock.Close()
		return nil, err
	}
	bs, err := blobstore.Open(filepath.Join(cfg.DataRoot, "blobs"))
	if err != nil {
		lock.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{
		cfg: cfg, ps: ps, bs: bs, lock: lock, events: cfg.Events, rt: cfg.Runtime, reg: cfg.Registry,
		running: map[string]*running{}, gcKick: make(chan struct{}, 1), ctx: ctx, cancel: cancel,
	}
	if m.events == nil {
		m.events = discardEvents{}
	}
	m.wg.Go(func() { m.gcLoop(ctx) })
	m.kickGC() // blobs orphaned by a kill are collected at start
	if m.rt != nil {
		if err := m.restore(ctx); err != nil {
			_ = m.Close(context.Background())
			return nil, fmt.Errorf("restoring plugins: %w", err)
		}
	}
	return m, nil
}

// Close stops the manager's goroutines and releases the data root. Running
// plugins keep running with LiveRestore; otherwise they are stopped first.
func (m *Manager) Close(ctx context.Context) error {
	var err error
	m.closeOnce.Do(func() {
		if !m.cfg.LiveRestore && m.rt != nil {
			m.stopAll(ctx)
		}
		m.cancel()
		done := make(chan struct{})
		go func() { m.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			err = ctx.Err()
		}
		if cerr := m.lock.Close(); err == nil {
			err = cerr
		}
	})
	return err
}

// lockDataRoot takes an exclusive lock on the data root, so that a second
// pluginsd on the same directory fails to start instead of deleting the
// first one's work in progress as leftovers.
func lockDataRoot(root string) (*os.File, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("data root: %w", err)
	}
	path := filepath.Join(root, "pluginsd.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data root: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("data root %s is in use by another pluginsd", root)
		}
		return nil, fmt.Errorf("data root: lock %s: %w", path, err)
	}
	return f, nil
}

// Generation changes whenever any plugin changes; callers may cache what
// they derive from the plugin list under it.
func (m *Manager) Generation() uint64 { return m.ps.Snapshot().Gen }

// ListRequest selects plugins; zero values select all.
type ListRequest struct {
	// Enabled, when not nil, keeps only plugins in that state.
	Enabled *bool
	// Capabilities, when not empty, keeps plugins all of whose interface
	// types match one of these (exactly or as an unanchored regexp on the
	// capability part, as dockerd does). Plugins with no types always pass.
	Capabilities []string
}

// List returns the selected plugins sorted by name.
func (m *Manager) List(ctx context.Context, req ListRequest) ([]*Plugin, error) {
	all := m.ps.Snapshot().All()
	if req.Enabled == nil && len(req.Capabilities) == 0 {
		return all, nil
	}
	match := capabilityMatcher(req.Capabilities)
	var out []*Plugin
	for _, p := range all {
		if req.Enabled != nil && p.Plugin.Enabled != *req.Enabled {
			continue
		}
		if !match(p) {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// capabilityMatcher builds dockerd's capability test: every type's
// capability must equal a value or match it as an unanchored regexp.
func capabilityMatcher(values []string) func(*Plugin) bool {
	if len(values) == 0 {
		return func(*Plugin) bool { return true }
	}
	res := make([]*regexp.Regexp, 0, len(values))
	for _, v := range values {
		if re, err := regexp.Compile(v); err == nil {
			res = append(res, re)
		}
	}
	return func(p *Plugin) bool {
		for _, t := range p.Plugin.Config.Interface.Types {
			ok := slices.Contains(values, t.Capability) ||
				slices.ContainsFunc(res, func(re *regexp.Regexp) bool { return re.MatchString(t.Capability) })
			if !ok {
				return false
			}
		}
		return true
	}
}

// Inspect returns the plugin a client names (ID, name in any spelling, or
// unique ID prefix).
func (m *Manager) Inspect(ctx context.Context, name string) (*Plugin, error) {
	return m.ps.Snapshot().Resolve(name)
}

// RemoveRequest deletes a plugin.
type RemoveRequest struct {
	Name  string // as the client gave it
	Force bool   // remove even if enabled
}

// Remove deletes a plugin: its record, rootfs and (through GC) the blobs no
// other plugin shares.
func (m *Manager) Remove(ctx context.Context, req RemoveRequest) error {
	r, unlock, err := m.lockPlugin(ctx, req.Name)
	if err != nil {
		return err
	}
	defer unlock()
	if r.Plugin.Enabled {
		if !req.Force {
			return errEnabled(r.Name())
		}
		if err := m.checkDisable(r); err != nil {
			return err
		}
		// As dockerd: a forced remove disables first, without a disable event.
		if err := m.stopPlugin(ctx, r.ID()); err != nil {
			return err
		}
	}
	if err := m.ps.Remove(r.ID(), nil); err != nil {
		return err
	}
	if m.rt != nil {
		if err := m.rt.RemoveLogs(r.ID()); err != nil {
			logrus.WithError(err).WithField("plugin", r.ID()).Warn("removing plugin logs")
		}
	}
	m.events.Publish(Event{Action: "remove", ID: r.ID(), Name: req.Name, Time: time.Now()})
	m.kickGC()
	return nil
}

func (m *Manager) kickGC() {
	select {
	case m.gcKick <- struct{}{}:
	default: // a pass is already pending; it will see this change too
	}
}

func (m *Manager) gcLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.gcKick:
			if err := m.gc(ctx); err != nil && ctx.Err() == nil {
				logrus.WithError(err).Warn("blob garbage collection")
			}
		}
	}
}

// gc deletes every blob no plugin references. It holds gcMu exclusively, so
// it never runs between a create committing its blobs and recording them.
func (m *Manager) gc(ctx context.Context) error {
	m.gcMu.Lock()
	defer m.gcMu.Unlock()
	keep := map[digest.Digest]bool{}
	for _, p := range m.ps.Snapshot().All() {
		keep[p.ConfigDigest] = true
		keep[p.Manifest] = true
		for _, b := range p.Blobsums {
			keep[b] = true
		}
	}
	var n int
	err := m.bs.Walk(ctx, func(d digest.Digest) error {
		if keep[d] {
			return nil
		}
		n++
		return m.bs.Delete(ctx, d)
	})
	if n > 0 {
		logrus.WithField("blobs", n).Debug("garbage collected unreferenced blobs")
	}
	return err
}
