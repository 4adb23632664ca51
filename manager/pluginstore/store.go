// Package pluginstore keeps plugin records on disk and resolves the names
// clients use for them.
//
// On-disk layout under the store's root (<data-root>/plugins):
//
//	<id>/config.json     the record (Record as JSON), replaced atomically
//	<id>/rootfs/         the plugin's root filesystem
//	.tmp-<random>/       a plugin being built (create, pull); renamed to <id>
//	                     when complete, deleted at start-up if a kill left it
//	.removing-<id>/      a plugin being deleted; deleted at start-up
//
// A plugin exists exactly when <id>/config.json exists: every step before the
// final rename is invisible, so a crash never leaves half a plugin.
//
// Readers never lock: the index is an immutable Snapshot behind an atomic
// pointer, replaced copy-on-write by every change. Records in a snapshot are
// never modified; a change stores a new *Record.
package pluginstore

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/plugin"
	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"

	"github.com/pluginsd/pluginsd/manager/mounts"
)

const (
	recordFile    = "config.json"
	rootfsDir     = "rootfs"
	tmpPrefix     = ".tmp-"
	removingPrefx = ".removing-"
)

// Record is one installed plugin: its API object plus what the store needs to
// push it again without rework.
type Record struct {
	Plugin plugin.Plugin `json:"plugin"`
	// DockerVersion is Config.DockerVersion of the config blob, shown only to
	// API versions below 1.51 (the moby/moby/api types dropped the field).
	DockerVersion string `json:"DockerVersion,omitempty"`
	// ConfigDigest is the digest of the config blob in the blob store.
	ConfigDigest digest.Digest `json:"Config"`
	// Blobsums are the layer digests, in manifest order, for every layer type.
	Blobsums []digest.Digest `json:"Blobsums"`
	// Manifest is the digest of the stored manifest blob.
	Manifest digest.Digest `json:"Manifest"`
	// RootfsDir names the plugin's rootfs directory inside its plugin
	// directory; empty means "rootfs". An upgrade extracts the new rootfs
	// beside the old one and switches by rewriting the record, so the switch
	// is atomic and a kill never leaves a plugin with a mixed rootfs.
	RootfsDir string `json:"RootfsDir,omitempty"`
}

// ID returns the plugin's 64-hex ID.
func (r *Record) ID() string { return r.Plugin.ID }

// Name returns the plugin's familiar name with tag.
func (r *Record) Name() string { return r.Plugin.Name }

// Clone returns a deep copy of r that may be modified.
func (r *Record) Clone() *Record {
	b, err := json.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("pluginstore: record does not marshal: %v", err))
	}
	var c Record
	if err := json.Unmarshal(b, &c); err != nil {
		panic(fmt.Sprintf("pluginstore: record does not unmarshal: %v", err))
	}
	return &c
}

// Snapshot is an immutable view of all records.
type Snapshot struct {
	// Gen increases with every change; equal Gens mean equal contents.
	Gen    uint64
	sorted []*Record // by name
	byID   map[string]*Record
	byName map[string]*Record

	// resolved memoizes successful Resolve calls (input -> *Record): the
	// snapshot never changes, and parsing a reference is most of the cost
	// of an inspect. At most maxResolved entries are kept.
	resolved  sync.Map
	nResolved atomic.Int32
}

const maxResolved = 4096

// All returns the records sorted by name. The slice must not be modified.
func (s *Snapshot) All() []*Record { return s.sorted }

// Get returns the record with the full ID id.
func (s *Snapshot) Get(id string) (*Record, bool) {
	r, ok := s.byID[id]
	return r, ok
}

// ByName returns the record with the familiar name name ("x:latest").
func (s *Snapshot) ByName(name string) (*Record, bool) {
	r, ok := s.byName[name]
	return r, ok
}

// Store is the on-disk plugin store.
type Store struct {
	root string
	snap atomic.Pointer[Snapshot]

	mu      sync.Mutex      // guards writes to snap, pending, nextGen and the directory tree
	pending map[string]bool // names reserved by creates and pulls in progress
	nextGen uint64
}

// Open opens (creating if needed) the store at root, deletes what an
// interrupted create, pull or remove left behind, and loads every record.
// A record that cannot be read is logged and skipped, not fatal: one
// damaged plugin must not keep the server down.
func Open(root string) (*Store, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("plugin store: %w", err)
	}
	s := &Store{root: root, pending: map[string]bool{}}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("plugin store: %w", err)
	}
	var recs []*Record
	for _, e := range entries {
		name := e.Name()
		p := filepath.Join(root, name)
		switch {
		case strings.HasPrefix(name, tmpPrefix), strings.HasPrefix(name, removingPrefx):
			logrus.WithField("path", p).Info("removing leftover of an interrupted operation")
			if err := removeAll(p); err != nil {
				logrus.WithError(err).WithField("path", p).Warn("cannot remove leftover")
			}
			continue
		case !e.IsDir() || !IsID(name):
			continue
		}
		r, err := readRecord(filepath.Join(p, recordFile))
		if err != nil {
			logrus.WithError(err).WithField("plugin", name).Error("skipping unreadable plugin record")
			continue
		}
		if r.Plugin.ID != name {
			logrus.WithField("plugin", name).Errorf("skipping plugin record whose ID is %q", r.Plugin.ID)
			continue
		}
		s.cleanRootfsDirs(r)
		recs = append(recs, r)
	}
	s.publishLocked(recs)
	return s, nil
}

func readRecord(path string) (*Record, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Snapshot returns the current view. It never blocks.
func (s *Store) Snapshot() *Snapshot { return s.snap.Load() }

// RootfsPath returns the rootfs directory of r.
func (s *Store) RootfsPath(r *Record) string {
	if r.RootfsDir != "" {
		return filepath.Join(s.root, r.Plugin.ID, r.RootfsDir)
	}
	return filepath.Join(s.root, r.Plugin.ID, rootfsDir)
}

// NewRootfs makes an empty rootfs directory for plugin id beside its
// current one (for an upgrade) and returns its path and its RootfsDir name.
// Until a record names it, Open deletes it.
func (s *Store) NewRootfs(id string) (path, name string, err error) {
	path, err = os.MkdirTemp(s.Dir(id), rootfsDir+"-")
	if err != nil {
		return "", "", fmt.Errorf("plugin store: %w", err)
	}
	if err := os.Chmod(path, 0o755); err != nil {
		return "", "", fmt.Errorf("plugin store: %w", err)
	}
	return path, filepath.Base(path), nil
}

// cleanRootfsDirs deletes rootfs directories of r that its record does not
// name: what an interrupted or completed upgrade left.
func (s *Store) cleanRootfsDirs(r *Record) {
	keep := filepath.Base(s.RootfsPath(r))
	entries, err := os.ReadDir(s.Dir(r.Plugin.ID))
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), rootfsDir) && e.Name() != keep {
			p := filepath.Join(s.Dir(r.Plugin.ID), e.Name())
			logrus.WithField("path", p).Info("removing rootfs left by an upgrade")
			if err := removeAll(p); err != nil {
				logrus.WithError(err).WithField("path", p).Warn("cannot remove old rootfs")
			}
		}
	}
}

// DiscardRootfs deletes a rootfs directory of plugin id that no record
// names any more (after an upgrade switched away from it, or failed).
func (s *Store) DiscardRootfs(path string) {
	if err := removeAll(path); err != nil {
		logrus.WithError(err).WithField("path", path).Warn("cannot remove rootfs")
	}
}

// Dir returns the directory of plugin id.
func (s *Store) Dir(id string) string { return filepath.Join(s.root, id) }

// publishLocked installs a new snapshot made of recs. Callers hold s.mu (or
// are Open).
func (s *Store) publishLocked(recs []*Record) {
	s.nextGen++
	snap := &Snapshot{
		Gen:    s.nextGen,
		sorted: recs,
		byID:   make(map[string]*Record, len(recs)),
		byName: make(map[string]*Record, len(recs)),
	}
	slices.SortFunc(snap.sorted, func(a, b *Record) int { return strings.Compare(a.Plugin.Name, b.Plugin.Name) })
	for _, r := range recs {
		snap.byID[r.Plugin.ID] = r
		snap.byName[r.Plugin.Name] = r
	}
	s.snap.Store(snap)
}

func (s *Store) replaceLocked(fn func(recs []*Record) []*Record) {
	cur := s.snap.Load()
	s.publishLocked(fn(slices.Clone(cur.sorted)))
}

// alreadyExists is the name-taken error in dockerd's words.
func alreadyExists(name string) error {
	return errdefs.ErrConflict.WithMessage(fmt.Sprintf("plugin %s already exists", name))
}

// Reserve claims name for a create or pull in progress, so that concurrent
// requests for one name fail fast instead of doing the work twice. The
// returned release must be called when the operation ends, whether or not
// Add was called.
func (s *Store) Reserve(name string) (release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.snap.Load().byName[name]; ok || s.pending[name] {
		return nil, alreadyExists(name)
	}
	s.pending[name] = true
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			delete(s.pending, name)
			s.mu.Unlock()
		})
	}, nil
}

// Stage makes a fresh private directory in which a new plugin is assembled.
// Add turns it into the plugin; on failure the caller deletes it with
// Discard (and Open deletes it after a kill).
func (s *Store) Stage() (string, error) {
	dir, err := os.MkdirTemp(s.root, tmpPrefix)
	if err != nil {
		return "", fmt.Errorf("plugin store: %w", err)
	}
	return dir, nil
}

// StagedRootfs returns the rootfs directory inside a staged directory.
func StagedRootfs(staged string) string { return filepath.Join(staged, rootfsDir) }

// Discard deletes a staged directory.
func (s *Store) Discard(staged string) {
	if staged == "" {
		return
	}
	if err := removeAll(staged); err != nil {
		logrus.WithError(err).WithField("path", staged).Warn("cannot remove staged plugin")
	}
}

// Add makes r a plugin: it writes the record into the staged directory, renames
// the directory to r's ID and publishes the record. The name must be free
// (or reserved by the caller through Reserve).
func (s *Store) Add(r *Record, staged string) error {
	if !IsID(r.Plugin.ID) {
		return fmt.Errorf("plugin store: invalid id %q", r.Plugin.ID)
	}
	if err := writeFileAtomic(filepath.Join(staged, recordFile), r); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.snap.Load()
	if _, ok := cur.byName[r.Plugin.Name]; ok {
		return alreadyExists(r.Plugin.Name)
	}
	if _, ok := cur.byID[r.Plugin.ID]; ok {
		return errdefs.ErrConflict.WithMessage(fmt.Sprintf("plugin id %s already exists", r.Plugin.ID))
	}
	dst := s.Dir(r.Plugin.ID)
	if err := os.Rename(staged, dst); err != nil {
		return fmt.Errorf("plugin store: %w", err)
	}
	if err := syncDir(s.root); err != nil {
		return err
	}
	s.replaceLocked(func(recs []*Record) []*Record { return append(recs, r) })
	return nil
}

// Update replaces the stored record of r.Plugin.ID with r (a new value; the
// old record is not modified) and persists it atomically.
func (s *Store) Update(r *Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.snap.Load().byID[r.Plugin.ID]
	if !ok {
		return errdefs.ErrNotFound.WithMessage(fmt.Sprintf("plugin %q not found", r.Plugin.ID))
	}
	if old.Plugin.Name != r.Plugin.Name {
		return fmt.Errorf("plugin store: renaming is not supported")
	}
	if err := writeFileAtomic(filepath.Join(s.Dir(r.Plugin.ID), recordFile), r); err != nil {
		return err
	}
	s.replaceLocked(func(recs []*Record) []*Record {
		for i, x := range recs {
			if x.Plugin.ID == r.Plugin.ID {
				recs[i] = r
			}
		}
		return recs
	})
	return nil
}

// Remove deletes plugin id: the directory is first renamed aside (atomic:
// from then on the plugin is gone even if we are killed), then the record is
// unpublished and the directory deleted. unmount, if not nil, runs on the
// renamed directory before deletion so no mount is left behind.
func (s *Store) Remove(id string, unmount func(dir string) error) error {
	s.mu.Lock()
	if _, ok := s.snap.Load().byID[id]; !ok {
		s.mu.Unlock()
		return errdefs.ErrNotFound.WithMessage(fmt.Sprintf("plugin %q not found", id))
	}
	aside := filepath.Join(s.root, removingPrefx+id)
	if err := os.Rename(s.Dir(id), aside); err != nil {
		s.mu.Unlock()
		return fmt.Errorf("plugin store: %w", err)
	}
	if err := syncDir(s.root); err != nil {
		logrus.WithError(err).Warn("plugin store: fsync after remove")
	}
	s.replaceLocked(func(recs []*Record) []*Record {
		return slices.DeleteFunc(recs, func(r *Record) bool { return r.Plugin.ID == id })
	})
	s.mu.Unlock()
	if unmount != nil {
		if err := unmount(aside); err != nil {
			logrus.WithError(err).WithField("plugin", id).Warn("unmount before delete")
		}
	}
	return removeAll(aside)
}

// removeAll deletes path; a path already gone is not an error. Mounts
// under it (a plugin's propagated mount, bound onto itself, with whatever
// the plugin mounted there) are taken off first, and if one cannot be, the
// delete is refused: deleting through a mount would delete the files of
// the volume or host directory behind it. Without root, read-only
// directories in a plugin's rootfs would stop the delete half-way, so they
// are made writable and the delete is tried again.
func removeAll(path string) error {
	if err := mounts.UnmountAll(path); err != nil {
		return fmt.Errorf("not deleting %s: %w", path, err)
	}
	err := os.RemoveAll(path)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	_ = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			// WalkDir does not follow symlinks, and this tree is ours: the
			// plugin that owned it is no longer running.
			_ = os.Chmod(p, 0o700) //nolint:gosec // see above
		}
		return nil
	})
	return os.RemoveAll(path)
}

// writeFileAtomic writes v as JSON to path through a temporary file that is
// fsynced and renamed over path, so readers see the old or the new record,
// never a torn one.
func writeFileAtomic(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("plugin store: %w", err)
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".record-")
	if err != nil {
		return fmt.Errorf("plugin store: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(b); err != nil {
		return fmt.Errorf("plugin store: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("plugin store: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("plugin store: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("plugin store: %w", err)
	}
	ok = true
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("plugin store: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("plugin store: fsync %s: %w", dir, err)
	}
	return nil
}

// NewID returns a random 64-hex plugin ID, as dockerd does: plugin IDs are
// not content addresses.
func NewID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// IsID reports whether s is a full plugin ID (64 lowercase hex digits).
func IsID(s string) bool { return len(s) == 64 && isLowerHex(s) }

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
