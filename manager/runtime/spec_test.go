package runtime

import (
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/plugin"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// fakeELF returns a 64-bit ELF header in this machine's byte order for
// machine m.
func fakeELF(m elf.Machine) []byte {
	h := make([]byte, 64)
	copy(h, elf.ELFMAG)
	h[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	if hostIsBigEndian() {
		h[elf.EI_DATA] = byte(elf.ELFDATA2MSB)
	}
	h[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	binary.NativeEndian.PutUint16(h[16:], uint16(elf.ET_EXEC))
	binary.NativeEndian.PutUint16(h[18:], uint16(m))
	return h
}

func hostMachine(t *testing.T) elf.Machine {
	t.Helper()
	ms, ok := hostMachines[goruntime.GOARCH]
	if !ok {
		t.Fatalf("no ELF machine known for %s", goruntime.GOARCH)
	}
	return ms[0]
}

// specPlugin returns a plugin whose rootfs holds a fake executable for
// this machine at /bin/plugin.
func specPlugin(t *testing.T) Plugin {
	t.Helper()
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	writeFile(t, filepath.Join(rootfs, "bin/plugin"), fakeELF(hostMachine(t)), 0o755)
	return Plugin{
		ID:     "0123456789abcdef",
		Rootfs: rootfs,
		Config: plugin.Config{
			Entrypoint: []string{"/bin/plugin", "--serve"},
			Interface:  plugin.Interface{Socket: "p.sock"},
		},
	}
}

func writeFile(t *testing.T, p string, b []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, mode); err != nil {
		t.Fatal(err)
	}
}

func mustSpec(t *testing.T, p Plugin) *specs.Spec {
	t.Helper()
	s, err := Spec(p, "/run/test-plugins/"+p.ID)
	if err != nil {
		t.Fatalf("Spec: %v", err)
	}
	return s
}

func specErr(t *testing.T, p Plugin, class func(error) bool, want ...string) {
	t.Helper()
	_, err := Spec(p, "/run/test-plugins/"+p.ID)
	if err == nil {
		t.Fatalf("Spec succeeded, want an error containing %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
	if !class(err) {
		t.Errorf("error %q has the wrong class", err)
	}
}

func nsTypes(s *specs.Spec) []string {
	var out []string
	for _, n := range s.Linux.Namespaces {
		out = append(out, string(n.Type))
	}
	slices.Sort(out)
	return out
}

func TestSpecNamespaces(t *testing.T) {
	for _, tc := range []struct {
		name    string
		network string
		pidHost bool
		ipcHost bool
		want    []string
	}{
		{"default", "", false, false, []string{"ipc", "mount", "network", "pid", "uts"}},
		{"bridge keeps netns", "bridge", false, false, []string{"ipc", "mount", "network", "pid", "uts"}},
		{"host network", "host", false, false, []string{"ipc", "mount", "pid", "uts"}},
		{"pid host", "", true, false, []string{"ipc", "mount", "network", "uts"}},
		{"ipc host", "", false, true, []string{"mount", "network", "pid", "uts"}},
		{"all host", "host", true, true, []string{"mount", "uts"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := specPlugin(t)
			p.Config.Network.Type = tc.network
			p.Config.PidHost, p.Config.IpcHost = tc.pidHost, tc.ipcHost
			if got := nsTypes(mustSpec(t, p)); !slices.Equal(got, tc.want) {
				t.Errorf("namespaces %v, want %v", got, tc.want)
			}
		})
	}
}

func destinations(s *specs.Spec) []string {
	var out []string
	for _, m := range s.Mounts {
		out = append(out, m.Destination)
	}
	return out
}

func findMount(t *testing.T, s *specs.Spec, dest string) specs.Mount {
	t.Helper()
	for _, m := range s.Mounts {
		if m.Destination == dest {
			return m
		}
	}
	t.Fatalf("no mount at %s in %v", dest, destinations(s))
	return specs.Mount{}
}

func TestSpecMountsOrder(t *testing.T) {
	p := specPlugin(t)
	data := t.TempDir()
	p.PropagatedMountDir = filepath.Join(t.TempDir(), "propagated-mount")
	p.Config.PropagatedMount = "/mnt/prop"
	p.Config.Network.Type = "host"
	p.Config.Mounts = []plugin.Mount{
		{Name: "data", Source: new(data), Destination: "/data", Type: "bind", Options: []string{"rbind", "ro"}},
		{Name: "scratch", Source: new("tmpfs"), Destination: "/scratch", Type: "tmpfs"},
		{Name: "shm", Source: new("tmpfs"), Destination: "/dev/shm", Type: "tmpfs", Options: []string{"size=1m"}},
	}
	s := mustSpec(t, p)
	want := []string{
		"/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", // default /dev/shm replaced
		"/mnt/prop", "/data", "/scratch", "/dev/shm", "/run/docker/plugins",
	}
	for _, f := range []string{"/etc/hosts", "/etc/resolv.conf"} {
		if _, err := os.Stat(f); err == nil {
			want = append(want, f)
		}
	}
	if got := destinations(s); !slices.Equal(got, want) {
		t.Fatalf("mount order\n got %v\nwant %v", got, want)
	}
	if m := findMount(t, s, "/dev/shm"); !slices.Equal(m.Options, []string{"size=1m"}) {
		t.Errorf("/dev/shm is not the plugin's: %+v", m)
	}
	sock := findMount(t, s, "/run/docker/plugins")
	if sock.Source != "/run/test-plugins/"+p.ID || !slices.Contains(sock.Options, "rbind") {
		t.Errorf("socket dir mount %+v", sock)
	}
	if m := findMount(t, s, "/data"); m.Source != data || !slices.Equal(m.Options, []string{"rbind", "ro"}) {
		t.Errorf("data mount %+v", m)
	}
	if _, err := os.Stat("/etc/hosts"); err == nil {
		if m := findMount(t, s, "/etc/hosts"); m.Source != "/etc/hosts" || !slices.Equal(m.Options, []string{"rbind", "ro"}) {
			t.Errorf("/etc/hosts mount %+v", m)
		}
	}
	// Without a network type, no host files.
	p.Config.Network.Type = ""
	if slices.Contains(destinations(mustSpec(t, p)), "/etc/hosts") {
		t.Error("/etc/hosts mounted for a plugin without a network type")
	}
}

func TestSpecPropagatedMount(t *testing.T) {
	p := specPlugin(t)
	if s := mustSpec(t, p); s.Linux.RootfsPropagation != "" {
		t.Errorf("rootfs propagation %q without a propagated mount", s.Linux.RootfsPropagation)
	}
	p.Config.PropagatedMount = "/mnt/vols/"
	p.PropagatedMountDir = "/var/lib/pluginsd/plugins/x/propagated-mount"
	s := mustSpec(t, p)
	m := findMount(t, s, "/mnt/vols")
	if m.Source != p.PropagatedMountDir || !slices.Equal(m.Options, []string{"rbind", "rw", "rshared"}) {
		t.Errorf("propagated mount %+v", m)
	}
	if s.Linux.RootfsPropagation != "rshared" {
		t.Errorf("rootfs propagation %q, want rshared", s.Linux.RootfsPropagation)
	}
	p.PropagatedMountDir = ""
	specErr(t, p, errdefs.IsInvalidArgument, "PropagatedMount")
}

func TestSpecConfigMounts(t *testing.T) {
	src := t.TempDir()
	t.Run("bind without options becomes rbind", func(t *testing.T) {
		p := specPlugin(t)
		p.Config.Mounts = []plugin.Mount{{Name: "data", Source: new(src), Destination: "/data", Type: "bind"}}
		m := findMount(t, mustSpec(t, p), "/data")
		if m.Type != "bind" || !slices.Equal(m.Options, []string{"rbind"}) {
			t.Errorf("mount %+v, want type bind with rbind", m)
		}
	})
	t.Run("bind option without type", func(t *testing.T) {
		p := specPlugin(t)
		p.Config.Mounts = []plugin.Mount{{Name: "data", Source: new(src), Destination: "/data", Options: []string{"bind"}}}
		m := findMount(t, mustSpec(t, p), "/data")
		if m.Type != "bind" || !slices.Equal(m.Options, []string{"bind"}) {
			t.Errorf("mount %+v", m)
		}
	})
	t.Run("nil source", func(t *testing.T) {
		p := specPlugin(t)
		p.Config.Mounts = []plugin.Mount{{Name: "data", Destination: "/data", Type: "bind"}}
		specErr(t, p, errdefs.IsInvalidArgument, "mount source is not specified", `"data"`)
	})
	t.Run("missing bind source", func(t *testing.T) {
		p := specPlugin(t)
		missing := filepath.Join(src, "nope")
		p.Config.Mounts = []plugin.Mount{{Name: "data", Source: new(missing), Destination: "/data", Type: "bind"}}
		specErr(t, p, errdefs.IsFailedPrecondition, missing, "does not exist", `"data"`)
	})
	t.Run("relative destination", func(t *testing.T) {
		p := specPlugin(t)
		p.Config.Mounts = []plugin.Mount{{Name: "data", Source: new(src), Destination: "data", Type: "bind"}}
		specErr(t, p, errdefs.IsInvalidArgument, "not an absolute path")
	})
	t.Run("settings mounts are not used", func(t *testing.T) {
		p := specPlugin(t)
		p.Settings.Mounts = []plugin.Mount{{Name: "data", Source: new(src), Destination: "/data", Type: "bind"}}
		if slices.Contains(destinations(mustSpec(t, p)), "/data") {
			t.Error("a Settings mount was used")
		}
	})
}

func TestSpecDevices(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mknod(filepath.Join(dir, "null0"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatalf("mknod: %v", err)
	}
	if err := unix.Mknod(filepath.Join(dir, "blk0"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 99))); err != nil {
		t.Fatalf("mknod: %v", err)
	}
	writeFile(t, filepath.Join(dir, "notadevice"), nil, 0o644)

	p := specPlugin(t)
	p.Settings.Devices = []plugin.Device{{Name: "null", Path: new("/dev/null")}}
	s := mustSpec(t, p)
	if len(s.Linux.Devices) != 1 {
		t.Fatalf("devices %+v", s.Linux.Devices)
	}
	d := s.Linux.Devices[0]
	if d.Path != "/dev/null" || d.Type != "c" || d.Major != 1 || d.Minor != 3 {
		t.Errorf("device %+v", d)
	}
	last := s.Linux.Resources.Devices[len(s.Linux.Resources.Devices)-1]
	if !last.Allow || last.Type != "c" || *last.Major != 1 || *last.Minor != 3 || last.Access != "rwm" {
		t.Errorf("cgroup rule %+v", last)
	}
	if first := s.Linux.Resources.Devices[0]; first.Allow || first.Type != "" {
		t.Errorf("first rule %+v, want deny all", first)
	}

	// A directory stands for every device below it.
	p.Settings.Devices = []plugin.Device{{Name: "dir", Path: new(dir)}}
	s = mustSpec(t, p)
	var got []string
	for _, d := range s.Linux.Devices {
		got = append(got, filepath.Base(d.Path)+":"+d.Type)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"blk0:b", "null0:c"}) {
		t.Errorf("devices from a directory: %v", got)
	}

	p.Config.Linux.AllowAllDevices = true
	s = mustSpec(t, p)
	if r := s.Linux.Resources.Devices[0]; !r.Allow || r.Type != "" || r.Access != "rwm" {
		t.Errorf("AllowAllDevices: first rule %+v", r)
	}
	p.Config.Linux.AllowAllDevices = false

	for _, tc := range []struct {
		dev   plugin.Device
		class func(error) bool
		want  []string
	}{
		{plugin.Device{Name: "gone", Path: new(filepath.Join(dir, "gone"))}, errdefs.IsFailedPrecondition, []string{"gone", "does not exist"}},
		{plugin.Device{Name: "file", Path: new(filepath.Join(dir, "notadevice"))}, errdefs.IsFailedPrecondition, []string{"notadevice", "not a device"}},
		{plugin.Device{Name: "nopath"}, errdefs.IsInvalidArgument, []string{"device path is not specified", "nopath"}},
	} {
		p.Settings.Devices = []plugin.Device{tc.dev}
		specErr(t, p, tc.class, tc.want...)
	}
	// Config devices are not used: Settings carry the user's choice.
	p.Settings.Devices = nil
	p.Config.Linux.Devices = []plugin.Device{{Name: "null", Path: new("/dev/null")}}
	if s := mustSpec(t, p); len(s.Linux.Devices) != 0 {
		t.Errorf("a Config device was used: %+v", s.Linux.Devices)
	}
}

func TestSpecCapabilities(t *testing.T) {
	p := specPlugin(t)
	p.Config.Linux.Capabilities = []string{"CAP_SYS_ADMIN", "net_admin", "CAP_CHOWN", "CAP_SYS_ADMIN"}
	c := mustSpec(t, p).Process.Capabilities
	want := append(slices.Clone(defaultCapabilities), "CAP_SYS_ADMIN", "CAP_NET_ADMIN")
	if len(defaultCapabilities) != 14 {
		t.Errorf("%d default capabilities, want 14", len(defaultCapabilities))
	}
	for name, set := range map[string][]string{"bounding": c.Bounding, "effective": c.Effective, "permitted": c.Permitted} {
		if !slices.Equal(set, want) {
			t.Errorf("%s = %v, want %v", name, set, want)
		}
	}
	if !slices.Equal(c.Inheritable, []string{"CAP_SYS_ADMIN", "CAP_NET_ADMIN"}) {
		t.Errorf("inheritable = %v", c.Inheritable)
	}
	if len(c.Ambient) != 0 {
		t.Errorf("ambient = %v", c.Ambient)
	}
	p.Config.Linux.Capabilities = []string{"CAP_SYS ADMIN"}
	specErr(t, p, errdefs.IsInvalidArgument, "invalid capability")
}

func TestSpecProcess(t *testing.T) {
	p := specPlugin(t)
	p.Config.User = plugin.User{UID: 1000, GID: 1000}
	p.Settings.Env = []string{"MODE=report", "DEBUG=1"}
	p.Settings.Args = []string{"-v", "x"}
	s := mustSpec(t, p)
	proc := s.Process
	if !slices.Equal(proc.Args, []string{"/bin/plugin", "--serve", "-v", "x"}) {
		t.Errorf("args %v", proc.Args)
	}
	if !slices.Equal(proc.Env, []string{defaultPathEnv, "MODE=report", "DEBUG=1"}) {
		t.Errorf("env %v", proc.Env)
	}
	if proc.Cwd != "/" || proc.Terminal || proc.User.UID != 0 || proc.User.GID != 0 {
		t.Errorf("cwd %q terminal %v user %+v", proc.Cwd, proc.Terminal, proc.User)
	}
	if s.Root.Path != p.Rootfs || s.Root.Readonly {
		t.Errorf("root %+v", s.Root)
	}
	if s.Linux.CgroupsPath != "/pluginsd/"+p.ID {
		t.Errorf("cgroups path %q", s.Linux.CgroupsPath)
	}
	if s.Version != specVersion {
		t.Errorf("ociVersion %q", s.Version)
	}
	p.Config.WorkDir = "/srv"
	if s := mustSpec(t, p); s.Process.Cwd != "/srv" {
		t.Errorf("cwd %q, want /srv", s.Process.Cwd)
	}
	p.Settings.Env = []string{"NOVALUE"}
	specErr(t, p, errdefs.IsInvalidArgument, "NOVALUE")
}

func TestSpecEntrypoint(t *testing.T) {
	t.Run("none", func(t *testing.T) {
		p := specPlugin(t)
		p.Config.Entrypoint = nil
		specErr(t, p, errdefs.IsInvalidArgument, "plugin config has no entrypoint")
	})
	t.Run("missing", func(t *testing.T) {
		p := specPlugin(t)
		p.Config.Entrypoint = []string{"/usr/bin/missing-plugin"}
		specErr(t, p, errdefs.IsFailedPrecondition, "/usr/bin/missing-plugin", "does not exist")
	})
	t.Run("foreign architecture", func(t *testing.T) {
		p := specPlugin(t)
		writeFile(t, filepath.Join(p.Rootfs, "bin/plugin"), fakeELF(elf.EM_AARCH64), 0o755)
		if goruntime.GOARCH == "arm64" {
			writeFile(t, filepath.Join(p.Rootfs, "bin/plugin"), fakeELF(elf.EM_S390), 0o755)
		}
		want := []string{"/bin/plugin", "arm64", goruntime.GOARCH}
		if goruntime.GOARCH == "arm64" {
			want = []string{"/bin/plugin", "s390x", "arm64"}
		}
		specErr(t, p, errdefs.IsFailedPrecondition, want...)
	})
	t.Run("other byte order", func(t *testing.T) {
		p := specPlugin(t)
		h := fakeELF(hostMachine(t))
		if hostIsBigEndian() {
			h[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
			binary.LittleEndian.PutUint16(h[18:], uint16(hostMachine(t)))
		} else {
			h[elf.EI_DATA] = byte(elf.ELFDATA2MSB)
			binary.BigEndian.PutUint16(h[18:], uint16(hostMachine(t)))
		}
		writeFile(t, filepath.Join(p.Rootfs, "bin/plugin"), h, 0o755)
		specErr(t, p, errdefs.IsFailedPrecondition, "/bin/plugin", "endian")
	})
	t.Run("not executable", func(t *testing.T) {
		p := specPlugin(t)
		if err := os.Chmod(filepath.Join(p.Rootfs, "bin/plugin"), 0o644); err != nil {
			t.Fatal(err)
		}
		specErr(t, p, errdefs.IsFailedPrecondition, "not executable")
	})
	t.Run("not a binary", func(t *testing.T) {
		p := specPlugin(t)
		writeFile(t, filepath.Join(p.Rootfs, "bin/plugin"), []byte("hello"), 0o755)
		specErr(t, p, errdefs.IsFailedPrecondition, "neither an ELF binary nor a #! script")
	})
	t.Run("looked up in PATH through an absolute symlink", func(t *testing.T) {
		p := specPlugin(t)
		// Alpine style: /usr/bin/plugin -> /bin/plugin, absolute. It must
		// resolve inside the rootfs, not on the host.
		if err := os.MkdirAll(filepath.Join(p.Rootfs, "usr/bin"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("/bin/plugin", filepath.Join(p.Rootfs, "usr/bin/plugin")); err != nil {
			t.Fatal(err)
		}
		p.Config.Entrypoint = []string{"plugin"}
		mustSpec(t, p)
		p.Config.Entrypoint = []string{"/usr/bin/plugin"}
		mustSpec(t, p)
		p.Config.Entrypoint = []string{"no-such-plugin"}
		specErr(t, p, errdefs.IsFailedPrecondition, "no-such-plugin", "PATH")
	})
	t.Run("escaping symlink stays in the rootfs", func(t *testing.T) {
		p := specPlugin(t)
		// ../../../../bin/sh resolves to the rootfs's /bin/sh, which does
		// not exist, even though the host has one.
		if err := os.Symlink("../../../../../../bin/sh", filepath.Join(p.Rootfs, "bin/escape")); err != nil {
			t.Fatal(err)
		}
		p.Config.Entrypoint = []string{"/bin/escape"}
		specErr(t, p, errdefs.IsFailedPrecondition, "does not exist")
	})
	t.Run("script", func(t *testing.T) {
		p := specPlugin(t)
		writeFile(t, filepath.Join(p.Rootfs, "entry.sh"), []byte("#!/bin/plugin -x\necho hi\n"), 0o755)
		p.Config.Entrypoint = []string{"/entry.sh"}
		mustSpec(t, p)
		writeFile(t, filepath.Join(p.Rootfs, "entry.sh"), []byte("#!/bin/nosh\n"), 0o755)
		specErr(t, p, errdefs.IsFailedPrecondition, "/bin/nosh")
	})
	t.Run("relative to WorkDir", func(t *testing.T) {
		p := specPlugin(t)
		p.Config.WorkDir = "/bin"
		p.Config.Entrypoint = []string{"./plugin"}
		mustSpec(t, p)
	})
}

func TestSpecSocketAndID(t *testing.T) {
	for _, sock := range []string{"", "a/b.sock", "../x.sock", "..", "/abs.sock"} {
		p := specPlugin(t)
		p.Config.Interface.Socket = sock
		specErr(t, p, errdefs.IsInvalidArgument, "socket")
	}
	for _, id := range []string{"", "../x", "a/b", ".hidden"} {
		p := specPlugin(t)
		p.ID = id
		specErr(t, p, errdefs.IsInvalidArgument, "invalid plugin ID")
	}
}

func TestPrepareRootfs(t *testing.T) {
	rootfs := t.TempDir()
	// An existing file of the rootfs is left alone.
	writeFile(t, filepath.Join(rootfs, "etc/hostname"), []byte("kept\n"), 0o644)
	if err := prepareRootfs(rootfs); err != nil {
		t.Fatal(err)
	}
	for _, d := range initDirs {
		if fi, err := os.Stat(filepath.Join(rootfs, d)); err != nil || !fi.IsDir() {
			t.Errorf("%s: %v", d, err)
		}
	}
	for _, f := range initFiles {
		if fi, err := os.Lstat(filepath.Join(rootfs, f)); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("%s: %v", f, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(rootfs, "etc/hostname")); string(b) != "kept\n" {
		t.Errorf("etc/hostname overwritten: %q", b)
	}
	if target, err := os.Readlink(filepath.Join(rootfs, "etc/mtab")); err != nil || target != "/proc/mounts" {
		t.Errorf("etc/mtab -> %q, %v", target, err)
	}
	// Idempotent.
	if err := prepareRootfs(rootfs); err != nil {
		t.Fatalf("second run: %v", err)
	}
}

func TestPrepareRootfsHostileSymlink(t *testing.T) {
	outside := t.TempDir()
	rootfs := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(rootfs, "etc")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../../../../.."+outside, filepath.Join(rootfs, "dev")); err != nil {
		t.Fatal(err)
	}
	err := prepareRootfs(rootfs)
	if err == nil {
		t.Fatal("prepareRootfs followed a symlink out of the rootfs")
	}
	if !errdefs.IsFailedPrecondition(err) {
		t.Errorf("error class: %v", err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("wrote outside the rootfs: %v", entries)
	}
}
