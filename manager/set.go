package manager

import (
	"context"
	"slices"
	"strings"

	"github.com/moby/moby/api/types/plugin"

	"github.com/pluginsd/pluginsd/manager/pluginstore"
)

// SetRequest changes settings of a disabled plugin.
type SetRequest struct {
	Name string   // as the client gave it
	Args []string // "name[.field][=value]" items
}

// Set applies req.Args to the plugin's settings. It is all or nothing: the
// items are applied to a copy, and the copy is stored only if every item is
// valid (dockerd keeps the items before a failing one in memory).
func (m *Manager) Set(ctx context.Context, req SetRequest) error {
	items, err := ParseSettables(req.Args)
	if err != nil {
		return err
	}
	r, unlock, err := m.lockPlugin(ctx, req.Name)
	if err != nil {
		return err
	}
	defer unlock()
	if r.Plugin.Enabled {
		return errSetActive
	}
	if len(items) == 0 {
		return nil
	}
	next := r.Clone()
	for _, it := range items {
		if err := applySettable(&next.Plugin, it); err != nil {
			return err
		}
	}
	return m.ps.Update(next)
}

// Settable is one parsed `set` item.
type Settable struct {
	Name  string
	Field string // "" when not given
	Value string
}

func (s Settable) prettyName() string {
	if s.Field == "" {
		return s.Name
	}
	return s.Name + "." + s.Field
}

// ParseSettables parses "name[.field][=value]" items. The key ends at the
// first '='; with no '=' the value is empty (as in dockerd). In the key, the
// part after the last '.' (if that '.' is not the first character) is the
// field.
func ParseSettables(args []string) ([]Settable, error) {
	out := make([]Settable, 0, len(args))
	for _, arg := range args {
		key, value, _ := strings.Cut(arg, "=")
		if key == "" {
			return nil, invalidf("invalid format, must be <name>[.<field>][=<value>]")
		}
		if strings.ContainsRune(arg, 0) {
			return nil, invalidf("invalid setting %q: contains a NUL byte", arg)
		}
		s := Settable{Name: key, Value: value}
		if i := strings.LastIndexByte(key, '.'); i > 0 {
			s.Name, s.Field = key[:i], key[i+1:]
		}
		out = append(out, s)
	}
	return out, nil
}

// checkSettable resolves the field of s against the fields the kind allows
// and the entry's Settable list, with dockerd's defaulting: no field and one
// settable field means that field.
func checkSettable(s *Settable, allowed string, settable []string) error {
	if s.Field == "" {
		switch len(settable) {
		case 0:
		case 1:
			s.Field = settable[0]
		default:
			return invalidf("multiple fields are settable, one must be specified")
		}
	}
	if s.Field != allowed || !slices.Contains(settable, s.Field) {
		return invalidf("%q is not settable", s.prettyName())
	}
	return nil
}

// applySettable applies one item to p. Names are looked up in Config.Env,
// Config.Mounts, Config.Linux.Devices and Config.Args.Name, in that order.
func applySettable(p *plugin.Plugin, s Settable) error {
	for _, env := range p.Config.Env {
		if env.Name != s.Name {
			continue
		}
		if err := checkSettable(&s, "value", env.Settable); err != nil {
			return err
		}
		kv := s.Name + "=" + s.Value
		for i, cur := range p.Settings.Env {
			if k, _, _ := strings.Cut(cur, "="); k == s.Name {
				p.Settings.Env[i] = kv
				return nil
			}
		}
		p.Settings.Env = append(p.Settings.Env, kv)
		return nil
	}
	for i, mnt := range p.Config.Mounts {
		if mnt.Name != s.Name {
			continue
		}
		if err := checkSettable(&s, "source", mnt.Settable); err != nil {
			return err
		}
		if mnt.Source == nil {
			return invalidf("Plugin config has no mount source")
		}
		// dockerd shares one string between Config and Settings until it
		// restarts; pluginsd updates both so they never disagree.
		p.Config.Mounts[i].Source = new(s.Value)
		for j := range p.Settings.Mounts {
			if p.Settings.Mounts[j].Name == s.Name {
				p.Settings.Mounts[j].Source = new(s.Value)
			}
		}
		return nil
	}
	for i, dev := range p.Config.Linux.Devices {
		if dev.Name != s.Name {
			continue
		}
		if err := checkSettable(&s, "path", dev.Settable); err != nil {
			return err
		}
		if dev.Path == nil {
			return invalidf("Plugin config has no device path")
		}
		p.Config.Linux.Devices[i].Path = new(s.Value)
		for j := range p.Settings.Devices {
			if p.Settings.Devices[j].Name == s.Name {
				p.Settings.Devices[j].Path = new(s.Value)
			}
		}
		return nil
	}
	if p.Config.Args.Name != "" && p.Config.Args.Name == s.Name {
		if err := checkSettable(&s, "value", p.Config.Args.Settable); err != nil {
			return err
		}
		// Split on single spaces: "a  b" gives ["a","","b"], as dockerd does.
		p.Settings.Args = strings.Split(s.Value, " ")
		return nil
	}
	return invalidf("setting %q not found in the plugin configuration", s.Name)
}

// lockPlugin resolves the plugin a client names and takes its key lock,
// then reads its record again: it may have changed or gone while we
// waited. The caller must call unlock.
func (m *Manager) lockPlugin(ctx context.Context, name string) (r *pluginstore.Record, unlock func(), err error) {
	r, err = m.ps.Snapshot().Resolve(name)
	if err != nil {
		return nil, nil, err
	}
	unlock, err = m.locks.lock(ctx, r.ID())
	if err != nil {
		return nil, nil, err
	}
	if r, err = m.current(r.ID(), name); err != nil {
		unlock()
		return nil, nil, err
	}
	return r, unlock, nil
}

// current re-reads record id after a lock was taken, since it may have
// changed or gone while we waited.
func (m *Manager) current(id, input string) (*pluginstore.Record, error) {
	r, ok := m.ps.Snapshot().Get(id)
	if !ok {
		return nil, pluginstore.NotFound(input)
	}
	return r, nil
}
