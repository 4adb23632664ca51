package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sync"

	gorunc "github.com/containerd/go-runc"
	"github.com/sirupsen/logrus"
)

// Config configures a Runtime. StateDir, BundleRoot and LogRoot are
// required; New creates every directory it names.
type Config struct {
	// Runc is the runc binary, looked up in PATH; default "runc".
	Runc string
	// StateDir is runc's --root, e.g. <exec-root>/runc. It belongs to this
	// runtime: every container in it is taken to be a plugin.
	StateDir string
	// BundleRoot holds the bundles, <BundleRoot>/<id>.
	BundleRoot string
	// SocketRoot holds the plugins' socket directories, <SocketRoot>/<id>;
	// default DefaultSocketRoot (/run/docker/plugins).
	SocketRoot string
	// LogRoot holds the plugins' output, <LogRoot>/<id>.log.
	LogRoot string
	// CgroupParent is the cgroup plugins run under, <CgroupParent>/<id>;
	// default DefaultCgroupParent (/pluginsd).
	CgroupParent string
	// Logger receives the runtime's messages and every line the plugins
	// print, with the field plugin=<id>; default logrus's standard logger.
	Logger *logrus.Entry
}

// Runtime starts, stops and adopts plugins. Its methods are safe for
// concurrent use; calls for one plugin ID are serialised.
type Runtime struct {
	cfg  Config
	runc *gorunc.Runc
	log  *logrus.Entry

	// ctx is cancelled by Close; it stops the goroutines in wg (one exit
	// watcher and one log relay per task).
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	locks keyedMutex // per plugin ID: Start, Stop and Restore's adoption

	mu     sync.Mutex // guards tasks and closed
	tasks  map[string]*Task
	closed bool
}

// New checks cfg, fills in defaults and creates the runtime's directories.
func New(cfg Config) (*Runtime, error) {
	if cfg.Runc == "" {
		cfg.Runc = "runc"
	}
	bin, err := exec.LookPath(cfg.Runc)
	if err != nil {
		return nil, preconditionf("runc binary: %v", err)
	}
	cfg.Runc = bin
	if cfg.SocketRoot == "" {
		cfg.SocketRoot = DefaultSocketRoot
	}
	if cfg.CgroupParent == "" {
		cfg.CgroupParent = DefaultCgroupParent
	}
	if !path.IsAbs(cfg.CgroupParent) {
		return nil, invalidf("cgroup parent %q is not an absolute cgroup path", cfg.CgroupParent)
	}
	cfg.CgroupParent = path.Clean(cfg.CgroupParent)
	for _, d := range []struct {
		name string
		dir  *string
		perm os.FileMode
	}{
		{"StateDir", &cfg.StateDir, 0o700},
		{"BundleRoot", &cfg.BundleRoot, 0o700},
		{"SocketRoot", &cfg.SocketRoot, 0o755},
		{"LogRoot", &cfg.LogRoot, 0o700},
	} {
		if !filepath.IsAbs(*d.dir) {
			return nil, invalidf("runtime %s %q is not an absolute path", d.name, *d.dir)
		}
		*d.dir = filepath.Clean(*d.dir)
		if err := os.MkdirAll(*d.dir, d.perm); err != nil {
			return nil, fmt.Errorf("runtime %s: %w", d.name, err)
		}
	}
	log := cfg.Logger
	if log == nil {
		log = logrus.NewEntry(logrus.StandardLogger())
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Runtime{
		cfg:    cfg,
		runc:   &gorunc.Runc{Command: cfg.Runc, Root: cfg.StateDir},
		log:    log,
		ctx:    ctx,
		cancel: cancel,
		tasks:  map[string]*Task{},
	}, nil
}

// Close stops every goroutine the runtime started and waits for them, or
// for ctx. Plugins keep running: a new Runtime on the same directories can
// adopt them with Restore. The Done channels of tasks still running never
// close after Close. Calls after Close fail with errdefs.ErrUnavailable.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	waited := make(chan struct{})
	go func() { // ends when the runtime's goroutines have
		r.wg.Wait()
		close(waited)
	}()
	select {
	case <-waited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("closing plugin runtime: %w", ctx.Err())
	}
}

func (r *Runtime) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

func (r *Runtime) task(id string) *Task {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tasks[id]
}

// track registers t and starts its watcher and log relay.
func (r *Runtime) track(t *Task, watch func(), logOffset int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errClosed
	}
	r.tasks[t.id] = t
	r.wg.Go(watch)
	r.wg.Go(func() { r.relayLog(t, logOffset) })
	return nil
}

func (r *Runtime) forget(t *Task) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tasks[t.id] == t {
		delete(r.tasks, t.id)
	}
}

func (r *Runtime) bundleDir(id string) string { return filepath.Join(r.cfg.BundleRoot, id) }
func (r *Runtime) socketDir(id string) string { return filepath.Join(r.cfg.SocketRoot, id) }
func (r *Runtime) logPath(id string) string   { return filepath.Join(r.cfg.LogRoot, id+".log") }

// hasState reports whether runc has a container id (of any status).
func (r *Runtime) hasState(id string) bool {
	_, err := os.Stat(filepath.Join(r.cfg.StateDir, id))
	return err == nil
}

// bundleState is what Stop and Restore need to know about a plugin beyond
// its ID. It is written to the bundle before anything is mounted.
type bundleState struct {
	Rootfs             string `json:"rootfs"`
	PropagatedMountDir string `json:"propagatedMountDir,omitempty"`
	SocketPath         string `json:"socketPath"`
}

const bundleStateFile = "pluginsd.json"

func writeBundleState(bundle string, st bundleState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(bundle, bundleStateFile), b, 0o600)
}

// readBundleState returns the zero state when there is none.
func readBundleState(bundle string) (bundleState, error) {
	var st bundleState
	b, err := os.ReadFile(filepath.Join(bundle, bundleStateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("%s: %w", filepath.Join(bundle, bundleStateFile), err)
	}
	return st, nil
}

// keyedMutex is a mutex per key whose Lock honours cancellation.
type keyedMutex struct {
	mu    sync.Mutex // guards locks
	locks map[string]*keyLock
}

type keyLock struct {
	ch   chan struct{} // holds a token while locked
	refs int           // holders and waiters
}

func (k *keyedMutex) lock(ctx context.Context, key string) (unlock func(), err error) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyLock{}
	}
	l := k.locks[key]
	if l == nil {
		l = &keyLock{ch: make(chan struct{}, 1)}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()
	release := func() {
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return sync.OnceFunc(func() { <-l.ch; release() }), nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
