package manager

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/plugin"

	"github.com/pluginsd/pluginsd/manager/pluginstore"
)

// UpgradeRequest replaces a disabled plugin's config and rootfs with those
// of another remote, keeping its ID and settings.
type UpgradeRequest struct {
	Name string          // from LocalName, as dockerd's getName computes it
	Ref  reference.Named // from ParseRemote
	Tag  string
	RegistryAuth
	Privileges plugin.Privileges
}

// Upgrade is all or nothing: the new rootfs is extracted beside the old one
// and the record is switched atomically only when everything succeeded; a
// failure (or a kill) leaves the plugin exactly as it was.
func (m *Manager) Upgrade(ctx context.Context, req UpgradeRequest, progress ProgressFunc) error {
	name, err := pluginstore.NormalizeName(req.Name)
	if err != nil {
		return err
	}
	p, ok := m.ps.Snapshot().ByName(name)
	if !ok {
		return pluginstore.NotFound(name)
	}
	unlock, err := m.locks.lock(ctx, p.ID())
	if err != nil {
		return err
	}
	defer unlock()
	if p, err = m.current(p.ID(), name); err != nil {
		return err
	}
	if p.Plugin.Enabled {
		return errdefs.ErrConflict.WithMessage(fmt.Sprintf("plugin must be disabled before upgrading: plugin %s is enabled", p.Name()))
	}
	t := target(req.Ref, req.RegistryAuth)
	res, err := m.resolve(ctx, t)
	if err != nil {
		return err
	}
	m.events.Publish(Event{Action: "pull", ID: reference.FamiliarString(req.Ref), Name: req.Name, Time: time.Now()})
	cfg, dockerVersion, err := ParseConfig(res.ConfigBytes)
	if err != nil {
		return err
	}
	if err := checkPullable(cfg, res, req.Privileges); err != nil {
		return err
	}

	m.gcMu.RLock()
	defer m.gcMu.RUnlock()
	dir, dirName, err := m.ps.NewRootfs(p.ID())
	if err != nil {
		return err
	}
	switched := false
	defer func() {
		if !switched {
			m.ps.DiscardRootfs(dir)
			m.kickGC()
		}
	}()
	pullingFrom(progress, req.Ref, req.Tag, res)
	layers, err := m.fetchLayers(ctx, t, res, dir, progress)
	if err != nil {
		return err
	}
	if err := m.storeMetadata(ctx, res); err != nil {
		return err
	}
	next := p.Clone()
	keepSettings(&cfg, next.Plugin.Settings)
	next.Plugin.Config = cfg
	next.Plugin.PluginReference = req.Ref.String()
	next.DockerVersion = dockerVersion
	next.ConfigDigest = res.Config.Digest
	next.Blobsums = layers
	next.Manifest = res.Manifest.Digest
	next.RootfsDir = dirName
	old := m.ps.RootfsPath(p)
	if err := m.ps.Update(next); err != nil {
		return err
	}
	switched = true
	m.ps.DiscardRootfs(old)
	m.kickGC()
	return nil
}

// keepSettings carries the user's mount sources and device paths (set
// through `docker plugin set`) into the new config, where the new config
// still has a settable entry of that name: the runtime reads mounts from
// the config, so without this an upgrade would silently undo them (dockerd
// does). Env and args live in Settings and are kept as they are.
func keepSettings(cfg *plugin.Config, s plugin.Settings) {
	for _, sm := range s.Mounts {
		for i, m := range cfg.Mounts {
			if m.Name == sm.Name && sm.Source != nil && m.Source != nil && slices.Contains(m.Settable, "source") {
				cfg.Mounts[i].Source = new(*sm.Source)
			}
		}
	}
	for _, sd := range s.Devices {
		for i, d := range cfg.Linux.Devices {
			if d.Name == sd.Name && sd.Path != nil && d.Path != nil && slices.Contains(d.Settable, "path") {
				cfg.Linux.Devices[i].Path = new(*sd.Path)
			}
		}
	}
}
