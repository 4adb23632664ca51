package handlers

import (
	"bufio"
	"bytes"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/system"
	"golang.org/x/sys/unix"

	"github.com/pluginsd/pluginsd/manager"
)

// SystemBackend is what GET /info tells about pluginsd itself beyond its
// plugins: *manager.Manager.
type SystemBackend interface {
	EngineID() string
	DataRoot() string
	LiveRestore() bool
}

// WithSystem takes GET /info's identity and data root from s.
func WithSystem(s SystemBackend) Option {
	return func(a *API) { a.system = s }
}

// indexServer is what dockerd reports as IndexServerAddress: pluginsd
// resolves unqualified names to Docker Hub as well.
const indexServer = "https://index.docker.io/v1/"

// pluginKinds maps the interface types dockerd lists in /info's Plugins
// (prefix "docker") to their list.
var pluginKinds = map[string]func(*system.PluginsInfo) *[]string{
	"volumedriver":  func(p *system.PluginsInfo) *[]string { return &p.Volume },
	"networkdriver": func(p *system.PluginsInfo) *[]string { return &p.Network },
	"authz":         func(p *system.PluginsInfo) *[]string { return &p.Authorization },
	"logdriver":     func(p *system.PluginsInfo) *[]string { return &p.Log },
}

// systemInfo answers GET /info with dockerd's Info object, enough for
// `docker info` and for test suites that read it: pluginsd's identity,
// versions and host, no containers or images, and its enabled plugins by
// type under Plugins (names with their tag, as dockerd lists them; there
// are no built-in drivers, so lists may be empty). Fields that describe an
// engine pluginsd is not (storage and logging drivers, runtimes, swarm
// beyond "inactive") stay empty.
func (a *API) systemInfo(c echo.Context) error {
	enabled := true
	ps, err := a.b.List(c.Request().Context(), manager.ListRequest{Enabled: &enabled})
	if err != nil {
		return err
	}
	name, _ := os.Hostname()
	osName, osVersion := osRelease()
	var uts unix.Utsname
	_ = unix.Uname(&uts) // cannot fail on Linux; fields stay empty otherwise
	kernel := a.info.KernelVersion
	if kernel == "" {
		kernel = unix.ByteSliceToString(uts.Release[:])
	}
	v := system.Info{
		Plugins:            pluginsInfo(ps),
		NGoroutines:        runtime.NumGoroutine(),
		NFd:                openFiles(),
		SystemTime:         time.Now().Format(time.RFC3339Nano),
		CgroupDriver:       "cgroupfs",
		CgroupVersion:      cgroupVersion(),
		KernelVersion:      kernel,
		OperatingSystem:    osName,
		OSVersion:          osVersion,
		OSType:             runtime.GOOS,
		Architecture:       unix.ByteSliceToString(uts.Machine[:]),
		IndexServerAddress: indexServer,
		NCPU:               runtime.NumCPU(),
		MemTotal:           memTotal(),
		Name:               name,
		Labels:             []string{},
		ServerVersion:      a.info.Version,
		Swarm:              swarm.Info{LocalNodeState: swarm.LocalNodeStateInactive},
		SecurityOptions:    []string{},
		CDISpecDirs:        []string{},
	}
	if a.system != nil {
		v.ID = a.system.EngineID()
		v.DockerRootDir = a.system.DataRoot()
		v.LiveRestoreEnabled = a.system.LiveRestore()
	}
	if a.events != nil {
		v.NEventsListener = a.events.Subscribers()
	}
	return writeJSON(c, http.StatusOK, v)
}

// pluginsInfo lists the plugins by the types dockerd reports, each list
// sorted; all four lists are present, empty when no plugin has the type.
func pluginsInfo(ps []*manager.Plugin) system.PluginsInfo {
	out := system.PluginsInfo{Volume: []string{}, Network: []string{}, Authorization: []string{}, Log: []string{}}
	for _, p := range ps {
		for _, t := range p.Plugin.Config.Interface.Types {
			list, ok := pluginKinds[t.Capability]
			if !ok || t.Prefix != "docker" {
				continue
			}
			if l := list(&out); !slices.Contains(*l, p.Name()) {
				*l = append(*l, p.Name())
			}
		}
	}
	for _, l := range [][]string{out.Volume, out.Network, out.Authorization, out.Log} {
		slices.Sort(l)
	}
	return out
}

// osRelease reads PRETTY_NAME and VERSION_ID from /etc/os-release.
func osRelease() (name, version string) {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return "", ""
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `"'`)
		switch k {
		case "PRETTY_NAME":
			name = v
		case "VERSION_ID":
			version = v
		}
	}
	return name, version
}

// memTotal is the host's RAM in bytes.
func memTotal() int64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 0
	}
	return int64(si.Totalram) * int64(si.Unit)
}

// cgroupVersion is "2" on a unified hierarchy, else "1".
func cgroupVersion() string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return "2"
	}
	return "1"
}

// openFiles counts this process's file descriptors (-1 if unknown, as
// dockerd reports).
func openFiles() int {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(fds)
}
