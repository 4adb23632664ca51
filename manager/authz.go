package manager

import (
	"fmt"

	"github.com/containerd/errdefs"

	"github.com/pluginsd/pluginsd/manager/pluginstore"
)

// What the manager does for the authorization chain (server/authz): find a
// chain plugin's socket, and refuse to stop a plugin in the chain. The
// manager knows nothing of the chain's middleware; cmd/pluginsd wires them.

// AuthzPlugin returns the socket of the running AuthZ plugin that name
// ("name" or "name:tag", as given to --authorization-plugin) refers to, and
// its full name. The errors: NotFound if no plugin has that name;
// FailedPrecondition if it does not implement authz (docker.authz/1.0) or
// is not enabled; Unavailable while it is enabled but its process is not
// running and ready (being started at start-up, or restarted after a
// crash). It satisfies server/authz.Source through authz.SourceFunc.
func (m *Manager) AuthzPlugin(name string) (socket, fullName string, err error) {
	if m.rt == nil {
		return "", "", errNoRuntime
	}
	norm, err := pluginstore.NormalizeName(name)
	if err != nil {
		return "", "", err
	}
	r, ok := m.ps.Snapshot().ByName(norm)
	if !ok {
		return "", "", pluginstore.NotFound(name)
	}
	if !implementsAuthz(r) {
		return "", "", errdefs.ErrFailedPrecondition.WithMessage(fmt.Sprintf("plugin %s does not implement the authz interface (docker.authz/1.0)", r.Name()))
	}
	if !r.Plugin.Enabled {
		return "", "", errdefs.ErrFailedPrecondition.WithMessage(fmt.Sprintf("plugin %s is not enabled", r.Name()))
	}
	m.runMu.Lock()
	run := m.running[r.ID()]
	m.runMu.Unlock()
	if run != nil {
		run.mu.Lock()
		task := run.task
		run.mu.Unlock()
		if task != nil {
			select {
			case <-task.Done():
			default:
				return task.SocketPath(), r.Name(), nil
			}
		}
	}
	return "", "", errdefs.ErrUnavailable.WithMessage(fmt.Sprintf("plugin %s is not running (it is being started or restarted)", r.Name()))
}

// implementsAuthz reports whether r declares docker.authz (any version).
func implementsAuthz(r *Plugin) bool {
	for _, t := range r.Plugin.Config.Interface.Types {
		if t.Capability == "authz" && t.Prefix == "docker" {
			return true
		}
	}
	return false
}

// ProtectAuthz returns a Config.Protected hook for the authorization chain
// (the --authorization-plugin values): disabling or force-removing one of
// its plugins is refused with 409, because authorization must never turn
// off silently (dockerd drops the plugin from the chain and lets every
// request through: public case B25). Names are matched as AuthzPlugin
// resolves them.
func ProtectAuthz(chain []string) func(*Plugin) error {
	protected := map[string]bool{}
	for _, name := range chain {
		if norm, err := pluginstore.NormalizeName(name); err == nil {
			protected[norm] = true
		}
	}
	return func(p *Plugin) error {
		if !protected[p.Name()] {
			return nil
		}
		return errdefs.ErrConflict.WithMessage(fmt.Sprintf(
			"plugin %s is in the authorization chain (--authorization-plugin); remove it from the configuration first", p.Name()))
	}
}
