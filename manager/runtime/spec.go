package runtime

import (
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"

	"github.com/moby/moby/api/types/plugin"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

const (
	// DefaultSocketRoot is where plugin socket directories live on the host.
	DefaultSocketRoot = "/run/docker/plugins"
	// DefaultCgroupParent is the cgroup under which plugins run.
	DefaultCgroupParent = "/pluginsd"

	// pluginSocketDir is where the socket directory appears in the plugin.
	pluginSocketDir = "/run/docker/plugins"
	defaultPathEnv  = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	// specVersion is the ociVersion written to config.json: runc 1.1
	// (Debian 12) knows specs up to 1.0.2, and nothing here needs newer.
	specVersion = "1.0.2"
)

// Plugin is what the runtime needs to know about a plugin to run it.
type Plugin struct {
	ID string
	// Rootfs is the plugin's writable root filesystem,
	// <data-root>/plugins/<id>/rootfs.
	Rootfs string
	// PropagatedMountDir is the host directory behind
	// Config.PropagatedMount, e.g. <data-root>/plugins/<id>/propagated-mount.
	// Start creates it and makes it rshared. Required only when the config
	// has a PropagatedMount.
	PropagatedMountDir string
	Config             plugin.Config
	Settings           plugin.Settings
}

// defaultCapabilities is the capability set every plugin gets, the same as
// a default Docker container's.
var defaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

var (
	maskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
		"/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
	}
	readonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// Spec builds the OCI runtime spec that runs p with its socket directory
// socketDir (<SocketRoot>/<id> on the host) mounted at /run/docker/plugins.
// The cgroup path is DefaultCgroupParent/<id>; a [Runtime] replaces it with
// its own parent.
//
// Spec reads the host only to check bind sources and device nodes, and the
// rootfs only to check the entrypoint. Malformed configs give errors of
// class errdefs.ErrInvalidArgument; configs that cannot run here (a missing
// bind source, device or entrypoint, a binary for another architecture)
// give errdefs.ErrFailedPrecondition.
func Spec(p Plugin, socketDir string) (*specs.Spec, error) {
	if err := validateID(p.ID); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(p.Rootfs) {
		return nil, invalidf("plugin rootfs %q is not an absolute path", p.Rootfs)
	}
	if !filepath.IsAbs(socketDir) {
		return nil, invalidf("plugin socket directory %q is not an absolute path", socketDir)
	}
	c := p.Config
	if err := validateSocketName(c.Interface.Socket); err != nil {
		return nil, err
	}
	if len(c.Entrypoint) == 0 || c.Entrypoint[0] == "" {
		return nil, invalidf("plugin config has no entrypoint")
	}
	cwd := c.WorkDir
	if cwd == "" {
		cwd = "/"
	}
	if !path.IsAbs(cwd) {
		return nil, invalidf("plugin config WorkDir %q is not an absolute path", cwd)
	}
	env, err := processEnv(p.Settings.Env)
	if err != nil {
		return nil, err
	}
	caps, err := normalizeCapabilities(c.Linux.Capabilities)
	if err != nil {
		return nil, err
	}
	mounts, err := specMounts(p, socketDir)
	if err != nil {
		return nil, err
	}
	devices, err := hostDevices(p.Settings.Devices)
	if err != nil {
		return nil, err
	}
	if err := checkEntrypoint(p.Rootfs, c.Entrypoint[0], cwd, env); err != nil {
		return nil, err
	}

	rules := defaultDeviceRules()
	if c.Linux.AllowAllDevices {
		rules = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	}
	for _, d := range devices {
		rules = append(rules, specs.LinuxDeviceCgroup{
			Allow: true, Type: d.Type, Major: new(d.Major), Minor: new(d.Minor), Access: "rwm",
		})
	}

	s := &specs.Spec{
		Version: specVersion,
		Root:    &specs.Root{Path: p.Rootfs, Readonly: false},
		Process: &specs.Process{
			Terminal: false,
			User:     specs.User{UID: 0, GID: 0}, // Config.User is ignored, as by dockerd
			Args:     append(slices.Clone(c.Entrypoint), p.Settings.Args...),
			Env:      env,
			Cwd:      cwd,
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  append(slices.Clone(defaultCapabilities), caps...),
				Effective: append(slices.Clone(defaultCapabilities), caps...),
				Permitted: append(slices.Clone(defaultCapabilities), caps...),
				// Like dockerd: only the capabilities the user granted are
				// inheritable, never the default set (CVE-2022-24769).
				Inheritable: caps,
			},
		},
		Mounts: mounts,
		Linux: &specs.Linux{
			CgroupsPath:   path.Join(DefaultCgroupParent, p.ID),
			Namespaces:    namespaces(c),
			Devices:       devices,
			Resources:     &specs.LinuxResources{Devices: rules},
			MaskedPaths:   slices.Clone(maskedPaths),
			ReadonlyPaths: slices.Clone(readonlyPaths),
		},
	}
	if c.PropagatedMount != "" {
		s.Linux.RootfsPropagation = "rshared"
	}
	return s, nil
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// validateID accepts IDs that are safe as a file name and as a runc
// container ID.
func validateID(id string) error {
	if !idPattern.MatchString(id) {
		return invalidf("invalid plugin ID %q", id)
	}
	return nil
}

// validateSocketName requires Interface.Socket to be a plain file name: it
// is joined to the socket directory on the host.
func validateSocketName(name string) error {
	switch {
	case name == "":
		return invalidf("plugin config has no interface socket")
	case name == "." || name == ".." || strings.ContainsAny(name, "/\x00"):
		return invalidf("plugin interface socket %q must be a plain file name", name)
	}
	return nil
}

// namespaces is the default set minus the host namespaces the config asks for.
func namespaces(c plugin.Config) []specs.LinuxNamespace {
	ns := []specs.LinuxNamespace{{Type: specs.MountNamespace}, {Type: specs.UTSNamespace}}
	if c.Network.Type != "host" {
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	}
	if !c.PidHost {
		ns = append(ns, specs.LinuxNamespace{Type: specs.PIDNamespace})
	}
	if !c.IpcHost {
		ns = append(ns, specs.LinuxNamespace{Type: specs.IPCNamespace})
	}
	return ns
}

func processEnv(settings []string) ([]string, error) {
	env := []string{defaultPathEnv}
	for _, e := range settings {
		if i := strings.IndexByte(e, '='); i <= 0 {
			return nil, invalidf("plugin env %q is not NAME=value", e)
		}
		env = append(env, e)
	}
	return env, nil
}

var capPattern = regexp.MustCompile(`^CAP_[A-Z0-9_]+$`)

// normalizeCapabilities upper-cases the config's capabilities, adds the CAP_
// prefix where it is missing and drops duplicates and default ones.
func normalizeCapabilities(in []string) ([]string, error) {
	var out []string
	for _, c := range in {
		name := strings.ToUpper(strings.TrimSpace(c))
		if !strings.HasPrefix(name, "CAP_") {
			name = "CAP_" + name
		}
		if !capPattern.MatchString(name) {
			return nil, invalidf("invalid capability %q in plugin config", c)
		}
		if slices.Contains(defaultCapabilities, name) || slices.Contains(out, name) {
			continue
		}
		out = append(out, name)
	}
	return out, nil
}

func defaultMounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"ro", "nosuid", "noexec", "nodev"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
	}
}

// specMounts lists the plugin's mounts in dockerd's order: the defaults, the
// propagated mount, the config's mounts, the socket directory, and the
// host's /etc/hosts and /etc/resolv.conf for plugins that declare a network.
func specMounts(p Plugin, socketDir string) ([]specs.Mount, error) {
	c := p.Config
	user, err := configMounts(c.Mounts)
	if err != nil {
		return nil, err
	}
	// A plugin mount on a default /dev/ destination replaces the default.
	replaced := map[string]bool{}
	for _, m := range c.Mounts {
		replaced[path.Clean(m.Destination)] = true
	}
	for _, m := range p.Settings.Mounts {
		replaced[path.Clean(m.Destination)] = true
	}
	var mounts []specs.Mount
	for _, m := range defaultMounts() {
		if strings.HasPrefix(m.Destination, "/dev/") && replaced[m.Destination] {
			continue
		}
		mounts = append(mounts, m)
	}
	if c.PropagatedMount != "" {
		if !path.IsAbs(c.PropagatedMount) {
			return nil, invalidf("plugin PropagatedMount %q is not an absolute path", c.PropagatedMount)
		}
		if !filepath.IsAbs(p.PropagatedMountDir) {
			return nil, invalidf("plugin %s has PropagatedMount %s but no absolute host directory for it", p.ID, c.PropagatedMount)
		}
		mounts = append(mounts, specs.Mount{
			Destination: path.Clean(c.PropagatedMount), Type: "bind", Source: p.PropagatedMountDir,
			Options: []string{"rbind", "rw", "rshared"},
		})
	}
	mounts = append(mounts, user...)
	mounts = append(mounts, specs.Mount{
		Destination: pluginSocketDir, Type: "bind", Source: socketDir, Options: []string{"rbind", "rshared"},
	})
	if c.Network.Type != "" {
		for _, f := range []string{"/etc/hosts", "/etc/resolv.conf"} {
			// A host without the file gets none in the plugin, rather than
			// a plugin that cannot start.
			if _, err := os.Stat(f); err != nil {
				continue
			}
			mounts = append(mounts, specs.Mount{Destination: f, Type: "bind", Source: f, Options: []string{"rbind", "ro"}})
		}
	}
	return mounts, nil
}

// configMounts converts Config.Mounts. A bind without a "bind" or "rbind"
// option becomes an rbind (dockerd hands runc a mount of type "bind" without
// MS_BIND, which fails with "no such device").
func configMounts(in []plugin.Mount) ([]specs.Mount, error) {
	var out []specs.Mount
	for _, m := range in {
		label := m.Name
		if label == "" {
			label = m.Destination
		}
		if m.Source == nil {
			return nil, invalidf("mount source is not specified for mount %q (destination %q)", label, m.Destination)
		}
		if !path.IsAbs(m.Destination) {
			return nil, invalidf("mount %q: destination %q is not an absolute path", label, m.Destination)
		}
		sm := specs.Mount{
			Destination: path.Clean(m.Destination), Type: m.Type, Source: *m.Source,
			Options: slices.Clone(m.Options),
		}
		hasBind := slices.Contains(sm.Options, "bind") || slices.Contains(sm.Options, "rbind")
		if sm.Type == "bind" || hasBind {
			if sm.Type == "" {
				sm.Type = "bind"
			}
			if !hasBind {
				sm.Options = append(sm.Options, "rbind")
			}
			if !filepath.IsAbs(sm.Source) {
				return nil, invalidf("mount %q: bind source %q is not an absolute path", label, sm.Source)
			}
			if _, err := os.Stat(sm.Source); err != nil {
				if os.IsNotExist(err) {
					return nil, preconditionf("mount %q: bind source %s does not exist", label, sm.Source)
				}
				return nil, preconditionf("mount %q: bind source: %v", label, err)
			}
		}
		out = append(out, sm)
	}
	return out, nil
}

// defaultDeviceRules denies every device except the usual character devices
// (and mknod of any, which is harmless without the access rule).
func defaultDeviceRules() []specs.LinuxDeviceCgroup {
	c := func(major, minor int64) specs.LinuxDeviceCgroup {
		r := specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: new(major), Access: "rwm"}
		if minor >= 0 {
			r.Minor = new(minor)
		}
		return r
	}
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Access: "m"},
		{Allow: true, Type: "b", Access: "m"},
		c(1, 3),    // null
		c(1, 5),    // zero
		c(1, 7),    // full
		c(1, 8),    // random
		c(1, 9),    // urandom
		c(5, 0),    // tty
		c(5, 1),    // console
		c(5, 2),    // ptmx
		c(136, -1), // pts/*
	}
}

// hostDevices resolves Settings.Devices: each path must be a character or
// block device, or a directory, which stands for every device beneath it.
func hostDevices(in []plugin.Device) ([]specs.LinuxDevice, error) {
	var out []specs.LinuxDevice
	seen := map[string]bool{}
	add := func(p string, fi fs.FileInfo) bool {
		d, ok := deviceFromInfo(p, fi)
		if ok && !seen[p] {
			seen[p] = true
			out = append(out, d)
		}
		return ok
	}
	for _, d := range in {
		label := d.Name
		if d.Path == nil || *d.Path == "" {
			return nil, invalidf("device path is not specified for device %q", label)
		}
		p := *d.Path
		if label == "" {
			label = p
		}
		if !filepath.IsAbs(p) {
			return nil, invalidf("device %q: path %q is not absolute", label, p)
		}
		fi, err := os.Stat(p)
		if err != nil {
			if os.IsNotExist(err) {
				return nil, preconditionf("device %q: %s does not exist on this host", label, p)
			}
			return nil, preconditionf("device %q: %v", label, err)
		}
		if !fi.IsDir() {
			if !add(p, fi) {
				return nil, preconditionf("device %q: %s is not a device node or a directory of device nodes", label, p)
			}
			continue
		}
		err = filepath.WalkDir(p, func(sub string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			if e.Type()&(fs.ModeDevice|fs.ModeCharDevice) == 0 {
				return nil
			}
			// A node that vanished while walking is not ours to report.
			if info, ierr := e.Info(); ierr == nil {
				add(sub, info)
			}
			return nil
		})
		if err != nil {
			return nil, preconditionf("device %q: reading %s: %v", label, p, err)
		}
	}
	return out, nil
}

func deviceFromInfo(p string, fi fs.FileInfo) (specs.LinuxDevice, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || fi.Mode()&fs.ModeDevice == 0 {
		return specs.LinuxDevice{}, false
	}
	typ := "b"
	if fi.Mode()&fs.ModeCharDevice != 0 {
		typ = "c"
	}
	rdev := uint64(st.Rdev) //nolint:unconvert // Rdev is not uint64 on every architecture
	return specs.LinuxDevice{
		Path:     p,
		Type:     typ,
		Major:    int64(unix.Major(rdev)),
		Minor:    int64(unix.Minor(rdev)),
		FileMode: new(fi.Mode().Perm()),
		UID:      new(st.Uid),
		GID:      new(st.Gid),
	}, true
}
