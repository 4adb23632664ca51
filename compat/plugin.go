package compat

import (
	"bytes"
	"encoding/json"

	"github.com/moby/moby/api/types/plugin"
)

// legacyConfig is plugin.Config as API versions below 1.51 see it: with
// DockerVersion between Description and Documentation, where dockerd's
// alphabetical field order puts it. The moby/moby/api types dropped the field.
type legacyConfig struct {
	Args            plugin.Args          `json:"Args"`
	Description     string               `json:"Description"`
	DockerVersion   string               `json:"DockerVersion,omitempty"`
	Documentation   string               `json:"Documentation"`
	Entrypoint      []string             `json:"Entrypoint"`
	Env             []plugin.Env         `json:"Env"`
	Interface       plugin.Interface     `json:"Interface"`
	IpcHost         bool                 `json:"IpcHost"`
	Linux           plugin.LinuxConfig   `json:"Linux"`
	Mounts          []plugin.Mount       `json:"Mounts"`
	Network         plugin.NetworkConfig `json:"Network"`
	PidHost         bool                 `json:"PidHost"`
	PropagatedMount string               `json:"PropagatedMount"`
	User            plugin.User          `json:"User"`
	WorkDir         string               `json:"WorkDir"`
	Rootfs          *plugin.RootFS       `json:"rootfs,omitempty"`
}

type legacyPlugin struct {
	Config          legacyConfig    `json:"Config"`
	Enabled         bool            `json:"Enabled"`
	ID              string          `json:"Id,omitempty"`
	Name            string          `json:"Name"`
	PluginReference string          `json:"PluginReference,omitempty"`
	Settings        plugin.Settings `json:"Settings"`
}

// LegacyConfig returns c with DockerVersion added, in the field order of the
// plugin config blob dockerd writes. It is also what create stores as the
// config blob, so configs pushed from pluginsd carry the same keys as
// dockerd's.
func LegacyConfig(c plugin.Config, dockerVersion string) any {
	return legacyConfig{
		Args: c.Args, Description: c.Description, DockerVersion: dockerVersion,
		Documentation: c.Documentation, Entrypoint: c.Entrypoint, Env: c.Env,
		Interface: c.Interface, IpcHost: c.IpcHost, Linux: c.Linux, Mounts: c.Mounts,
		Network: c.Network, PidHost: c.PidHost, PropagatedMount: c.PropagatedMount,
		User: c.User, WorkDir: c.WorkDir, Rootfs: c.Rootfs,
	}
}

// Plugin returns the wire value of p for API version v: Settings arrays are
// [] rather than null, and Config.DockerVersion appears below API 1.51.
func Plugin(v string, p plugin.Plugin, dockerVersion string) any {
	p.Settings = normalizeSettings(p.Settings)
	if !ShowsDockerVersion(v) {
		return p
	}
	return legacyPlugin{
		Config:  LegacyConfig(p.Config, dockerVersion).(legacyConfig),
		Enabled: p.Enabled, ID: p.ID, Name: p.Name,
		PluginReference: p.PluginReference, Settings: p.Settings,
	}
}

func normalizeSettings(s plugin.Settings) plugin.Settings {
	if s.Args == nil {
		s.Args = []string{}
	}
	if s.Devices == nil {
		s.Devices = []plugin.Device{}
	}
	if s.Env == nil {
		s.Env = []string{}
	}
	if s.Mounts == nil {
		s.Mounts = []plugin.Mount{}
	}
	return s
}

// EncodeJSON encodes v the way dockerd's JSON writer does: HTML escaping off,
// terminated by a newline.
func EncodeJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
