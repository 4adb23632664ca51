package manager

import (
	"cmp"
	"slices"

	"github.com/moby/moby/api/types/plugin"
)

// ComputePrivileges lists what a plugin config asks of the host, in dockerd's
// order and words (spec §6.1). The CLI shows this list and the user's
// acceptance comes back with the install.
func ComputePrivileges(c plugin.Config) plugin.Privileges {
	var ps plugin.Privileges
	switch c.Network.Type {
	case "", "null", "bridge":
	default:
		// "host" and also "none": dockerd reports both.
		ps = append(ps, plugin.Privilege{Name: "network", Description: "permissions to access a network", Value: []string{c.Network.Type}})
	}
	if c.IpcHost {
		ps = append(ps, plugin.Privilege{Name: "host ipc namespace", Description: "allow access to host ipc namespace", Value: []string{"true"}})
	}
	if c.PidHost {
		ps = append(ps, plugin.Privilege{Name: "host pid namespace", Description: "allow access to host pid namespace", Value: []string{"true"}})
	}
	for _, m := range c.Mounts {
		if m.Source != nil {
			ps = append(ps, plugin.Privilege{Name: "mount", Description: "host path to mount", Value: []string{*m.Source}})
		}
	}
	for _, d := range c.Linux.Devices {
		if d.Path != nil {
			ps = append(ps, plugin.Privilege{Name: "device", Description: "host device to access", Value: []string{*d.Path}})
		}
	}
	if c.Linux.AllowAllDevices {
		ps = append(ps, plugin.Privilege{Name: "allow-all-devices", Description: "allow 'rwm' access to all devices", Value: []string{"true"}})
	}
	if len(c.Linux.Capabilities) > 0 {
		ps = append(ps, plugin.Privilege{Name: "capabilities", Description: "list of additional capabilities required", Value: c.Linux.Capabilities})
	}
	return ps
}

// PrivilegesEqual compares what a plugin requires with what the user
// accepted: every entry, names and values, ignoring descriptions and the
// order of entries and of values. (dockerd 20.10 and v28 skip the first
// entry after sorting, so different capabilities were let through: public
// case B14.)
func PrivilegesEqual(required, accepted plugin.Privileges) bool {
	if len(required) != len(accepted) {
		return false
	}
	norm := func(ps plugin.Privileges) []plugin.Privilege {
		out := make([]plugin.Privilege, len(ps))
		for i, p := range ps {
			v := slices.Clone(p.Value)
			slices.Sort(v)
			out[i] = plugin.Privilege{Name: p.Name, Value: v}
		}
		slices.SortFunc(out, func(a, b plugin.Privilege) int {
			return cmp.Or(cmp.Compare(a.Name, b.Name), slices.Compare(a.Value, b.Value))
		})
		return out
	}
	a, b := norm(required), norm(accepted)
	for i := range a {
		if a[i].Name != b[i].Name || !slices.Equal(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}
