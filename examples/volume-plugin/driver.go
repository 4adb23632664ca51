package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
)

// A driver keeps each volume as a directory <store>/<name>. While at least
// one caller has a volume mounted, the volume's directory is bind-mounted at
// <publish>/<name>, and that is the mountpoint the engine is told about.
//
// Inside the plugin, store is a bind mount of a host directory (the
// config's settable "data" mount) and publish is the config's
// propagatedMount: mounts made beneath it propagate to the host, at
// <data-root>/plugins/<id>/propagated-mount/<name>, which is where an engine
// looks for the mountpoints of a managed plugin.
//
// What is mounted, and by whom, is kept in memory only: the server that
// runs the plugin removes the mounts a plugin left when it restarts it.
type driver struct {
	store   string
	publish string
	mnt     mounter
	debug   func(format string, args ...any) // nil: quiet

	mu     sync.Mutex
	users  map[string][]string // volume name -> IDs of the callers that mounted it
	closed bool
}

// mounter makes and removes the bind mounts (a fake in the tests).
type mounter interface {
	bind(source, target string) error
	unbind(target string) error
}

// volume is one entry of a Get or List answer.
type volume struct {
	Name       string
	Mountpoint string         `json:",omitempty"`
	Status     map[string]any `json:",omitempty"`
}

// errNoVolume is what the engine gets for a name that does not exist.
var errNoVolume = errors.New("no such volume")

// A volume name is one path element that starts with a letter or digit, so
// it can never name the store itself, its parent, or anything hidden.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

func checkName(name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("invalid volume name %q: use 1 to 128 letters, digits, '_', '.' or '-', starting with a letter or digit", name)
	}
	return nil
}

func newDriver(store, publish string, m mounter) *driver {
	return &driver{store: store, publish: publish, mnt: m, users: map[string][]string{}}
}

func (d *driver) logf(format string, args ...any) {
	if d.debug != nil {
		d.debug(format, args...)
	}
}

// cleanPublished removes what an earlier run left under publish: bind mounts
// and the directories they were made on. Nothing there is in use by this
// process, which has only just started.
func (d *driver) cleanPublished() error {
	entries, err := os.ReadDir(d.publish)
	if errors.Is(err, fs.ErrNotExist) {
		return os.MkdirAll(d.publish, 0o755)
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(d.publish, e.Name())
		_ = d.mnt.unbind(p) // most are not mounts at all
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("cleaning %s: %w", p, err)
		}
	}
	return nil
}

// options are what `docker volume create -o KEY=VALUE` may pass.
type options struct {
	mode     fs.FileMode
	uid, gid int
}

func parseOptions(opts map[string]string) (options, error) {
	o := options{mode: 0o755, uid: -1, gid: -1}
	for k, v := range opts {
		switch k {
		case "mode":
			n, err := strconv.ParseUint(v, 8, 32)
			if err != nil || n > 0o7777 {
				return o, fmt.Errorf("option mode=%q: want octal permissions such as 0750", v)
			}
			o.mode = fs.FileMode(n) & fs.ModePerm
			if n&0o4000 != 0 {
				o.mode |= fs.ModeSetuid
			}
			if n&0o2000 != 0 {
				o.mode |= fs.ModeSetgid
			}
			if n&0o1000 != 0 {
				o.mode |= fs.ModeSticky
			}
		case "uid", "gid":
			n, err := strconv.ParseUint(v, 10, 31)
			if err != nil {
				return o, fmt.Errorf("option %s=%q: want a numeric ID", k, v)
			}
			if k == "uid" {
				o.uid = int(n)
			} else {
				o.gid = int(n)
			}
		default:
			return o, fmt.Errorf("unknown option %q (this driver knows mode, uid and gid)", k)
		}
	}
	return o, nil
}

// Create makes the volume's directory. Creating a volume that exists is not
// an error (engines may ask again), but then options are refused, since
// they would not be applied.
func (d *driver) Create(name string, opts map[string]string) error {
	if err := checkName(name); err != nil {
		return err
	}
	o, err := parseOptions(opts)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	dir := filepath.Join(d.store, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			if fi, serr := os.Lstat(dir); serr == nil && fi.IsDir() && len(opts) == 0 {
				return nil
			}
			return fmt.Errorf("volume %s already exists", name)
		}
		return err
	}
	// Chown before chmod: chown clears the set-ID bits.
	if o.uid >= 0 || o.gid >= 0 {
		err = os.Lchown(dir, o.uid, o.gid)
	}
	if err == nil {
		err = os.Chmod(dir, o.mode)
	}
	if err != nil {
		_ = os.Remove(dir)
		return fmt.Errorf("creating volume %s: %w", name, err)
	}
	d.logf("created volume %s (mode %#o)", name, o.mode.Perm())
	return nil
}

// Remove deletes a volume and everything in it, unless it is mounted.
func (d *driver) Remove(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.exists(name); err != nil {
		return err
	}
	if n := len(d.users[name]); n > 0 {
		return fmt.Errorf("volume %s is in use (mounted %d times)", name, n)
	}
	if err := os.RemoveAll(filepath.Join(d.store, name)); err != nil {
		return fmt.Errorf("removing volume %s: %w", name, err)
	}
	d.logf("removed volume %s", name)
	return nil
}

// Mount makes the volume available at its mountpoint for caller id. The
// first caller makes the bind mount; later ones share it.
func (d *driver) Mount(name, id string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return "", errors.New("the driver is shutting down")
	}
	if err := d.exists(name); err != nil {
		return "", err
	}
	target := filepath.Join(d.publish, name)
	if len(d.users[name]) == 0 {
		if err := os.Mkdir(target, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return "", err
		}
		if err := d.mnt.bind(filepath.Join(d.store, name), target); err != nil {
			_ = os.Remove(target)
			return "", fmt.Errorf("mounting volume %s: %w", name, err)
		}
		d.logf("mounted volume %s at %s", name, target)
	}
	d.users[name] = append(d.users[name], id)
	return target, nil
}

// Unmount ends caller id's use of a volume; the last caller's Unmount
// removes the bind mount. An ID that has no mount of the volume has nothing
// to undo (after a plugin restart, for one, its mount is already gone), so
// that is not an error.
func (d *driver) Unmount(name, id string) error {
	if err := checkName(name); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	users := d.users[name]
	i := slices.Index(users, id)
	if i < 0 {
		d.logf("unmount of volume %s by %q: not mounted by it, nothing to do", name, id)
		return nil
	}
	if len(users) == 1 {
		target := filepath.Join(d.publish, name)
		if err := d.mnt.unbind(target); err != nil {
			return fmt.Errorf("unmounting volume %s: %w", name, err)
		}
		_ = os.Remove(target)
		delete(d.users, name)
		d.logf("unmounted volume %s", name)
		return nil
	}
	d.users[name] = slices.Delete(slices.Clone(users), i, i+1)
	return nil
}

// Path is the volume's mountpoint, or "" while nobody has it mounted.
func (d *driver) Path(name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.exists(name); err != nil {
		return "", err
	}
	return d.mountpoint(name), nil
}

// Get describes one volume.
func (d *driver) Get(name string) (volume, error) {
	if err := checkName(name); err != nil {
		return volume{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.exists(name); err != nil {
		return volume{}, err
	}
	return d.describe(name), nil
}

// List describes every volume in the store. Entries that are not
// directories, or whose names no volume could have, are not volumes.
func (d *driver) List() ([]volume, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	entries, err := os.ReadDir(d.store)
	if err != nil {
		return nil, err
	}
	out := []volume{}
	for _, e := range entries {
		if e.IsDir() && checkName(e.Name()) == nil {
			out = append(out, d.describe(e.Name()))
		}
	}
	return out, nil
}

// Close removes every bind mount this process made; later Mounts fail.
func (d *driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	var errs []error
	for name := range d.users {
		target := filepath.Join(d.publish, name)
		if err := d.mnt.unbind(target); err != nil {
			errs = append(errs, err)
			continue
		}
		_ = os.Remove(target)
		delete(d.users, name)
	}
	return errors.Join(errs...)
}

// exists is nil if name is a volume; d.mu is held.
func (d *driver) exists(name string) error {
	fi, err := os.Lstat(filepath.Join(d.store, name))
	if err != nil || !fi.IsDir() {
		return fmt.Errorf("%w: %s", errNoVolume, name)
	}
	return nil
}

// mountpoint is where a mounted volume is; d.mu is held.
func (d *driver) mountpoint(name string) string {
	if len(d.users[name]) == 0 {
		return ""
	}
	return filepath.Join(d.publish, name)
}

// describe builds a volume entry; d.mu is held. Status is free-form: the
// engine shows it in `docker volume inspect`.
func (d *driver) describe(name string) volume {
	return volume{
		Name:       name,
		Mountpoint: d.mountpoint(name),
		Status:     map[string]any{"mounts": len(d.users[name])},
	}
}
