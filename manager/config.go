package manager

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"

	"github.com/moby/moby/api/types/plugin"
	"github.com/opencontainers/go-digest"

	"github.com/pluginsd/pluginsd/compat"
)

// Media types of a plugin in a registry.
const (
	MediaTypeManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypePluginConfig = "application/vnd.docker.plugin.v1+json"
	MediaTypeLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
)

// configFile is a plugin config as written by authors and stored in config
// blobs: plugin.Config plus the DockerVersion the moby/moby/api types lack.
// Keys are matched case-insensitively (authors write "entrypoint",
// "interface"...), as dockerd's encoding/json decoding does.
type configFile struct {
	plugin.Config
	DockerVersion string
}

// ParseConfig decodes a plugin config (from a create context or a pulled
// config blob) and checks what would be unsafe or meaningless to run.
// Errors are 400s worded "failed to parse config: ...".
func ParseConfig(b []byte) (plugin.Config, string, error) {
	var cf configFile
	if err := json.Unmarshal(b, &cf); err != nil {
		return plugin.Config{}, "", invalidf("failed to parse config: %v", err)
	}
	if err := validateConfig(&cf.Config); err != nil {
		return plugin.Config{}, "", invalidf("failed to parse config: %v", err)
	}
	return cf.Config, cf.DockerVersion, nil
}

// validateConfig refuses configs that would let a plugin name paths outside
// its own directories. dockerd validates nothing here and fails (or worse)
// at enable time.
func validateConfig(c *plugin.Config) error {
	s := c.Interface.Socket
	if s != "" && (strings.ContainsRune(s, '/') || s == "." || s == "..") {
		return fmt.Errorf("interface socket %q must be a file name", s)
	}
	if p := c.PropagatedMount; p != "" && !path.IsAbs(p) {
		return fmt.Errorf("propagatedMount %q must be an absolute path", p)
	}
	for _, m := range c.Mounts {
		if m.Destination == "" || !path.IsAbs(m.Destination) {
			return fmt.Errorf("mount %q: destination %q must be an absolute path", m.Name, m.Destination)
		}
	}
	for _, t := range c.Interface.Types {
		if t.Capability == "" || strings.ContainsAny(t.Capability, "./") || strings.Contains(t.Prefix, "/") {
			return fmt.Errorf("invalid interface type %q", t.String())
		}
	}
	return nil
}

// InitSettings returns the initial settings of a new plugin, as dockerd
// computes them: mounts and devices copied from the config, env entries
// with a value as NAME=value, args from the config's default value.
func InitSettings(c plugin.Config) plugin.Settings {
	s := plugin.Settings{Args: []string{}, Devices: []plugin.Device{}, Env: []string{}, Mounts: []plugin.Mount{}}
	for _, m := range c.Mounts {
		m.Options = cloneStrings(m.Options)
		m.Settable = cloneStrings(m.Settable)
		if m.Source != nil {
			m.Source = new(*m.Source)
		}
		s.Mounts = append(s.Mounts, m)
	}
	for _, d := range c.Linux.Devices {
		d.Settable = cloneStrings(d.Settable)
		if d.Path != nil {
			d.Path = new(*d.Path)
		}
		s.Devices = append(s.Devices, d)
	}
	for _, e := range c.Env {
		if e.Value != nil {
			s.Env = append(s.Env, e.Name+"="+*e.Value)
		}
	}
	s.Args = append(s.Args, c.Args.Value...)
	return s
}

func cloneStrings(s []string) []string {
	if s == nil {
		return nil
	}
	return append([]string{}, s...)
}

// EncodeConfig is the config blob of c: the keys dockerd writes (with
// DockerVersion when set), newline-terminated like its json.Encoder output.
func EncodeConfig(c plugin.Config, dockerVersion string) ([]byte, error) {
	return compat.EncodeJSON(compat.LegacyConfig(c, dockerVersion))
}

// descriptor is a manifest entry.
type descriptor struct {
	MediaType string        `json:"mediaType"`
	Digest    digest.Digest `json:"digest"`
	Size      int64         `json:"size"`
}

// manifest is a schema2 plugin manifest, with dockerd's key order.
type manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	Config        descriptor   `json:"config"`
	Layers        []descriptor `json:"layers"`
	MediaType     string       `json:"mediaType"`
}

// encodeManifest builds the schema2 manifest of a config and its layers.
func encodeManifest(cfg descriptor, layers []descriptor) ([]byte, error) {
	return json.Marshal(manifest{SchemaVersion: 2, Config: cfg, Layers: layers, MediaType: MediaTypeManifest})
}
