package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sort"
	"strings"
)

// options are pluginsd's settings. Flags use dockerd's names; the config
// file (--config-file) uses the same names as JSON keys, like daemon.json.
type options struct {
	Hosts                []string `json:"hosts"`
	DataRoot             string   `json:"data-root"`
	ExecRoot             string   `json:"exec-root"`
	PluginExecRoot       string   `json:"plugin-exec-root"`
	Group                string   `json:"group"`
	LogLevel             string   `json:"log-level"`
	InsecureRegistries   []string `json:"insecure-registries"`
	AuthorizationPlugins []string `json:"authorization-plugins"`
	TLS                  bool     `json:"tls"`
	TLSVerify            bool     `json:"tlsverify"`
	TLSCACert            string   `json:"tlscacert"`
	TLSCert              string   `json:"tlscert"`
	TLSKey               string   `json:"tlskey"`
	InsecureTCP          bool     `json:"insecure-tcp"`
	LiveRestore          bool     `json:"live-restore"`
	CertsDir             string   `json:"certs-dir"`
	Runc                 string   `json:"runc"`
	MetricsAddr          string   `json:"metrics-addr"`
	Upstream             string   `json:"upstream"`
	LegacyDiscovery      bool     `json:"legacy-discovery"`
	LegacyPluginDir      string   `json:"legacy-plugin-dir"`
}

const defaultConfigFile = "/etc/pluginsd/pluginsd.json"

func defaults() options {
	return options{
		DataRoot:       "/var/lib/pluginsd",
		ExecRoot:       "/run/pluginsd",
		PluginExecRoot: "/run/docker/plugins",
		Group:          "docker",
		LogLevel:       "info",
		LiveRestore:    true,
		Runc:           "runc",
		// Where engines without managed plugins look for plugin sockets.
		LegacyPluginDir: "/run/docker/plugins",
	}
}

// stringList is a repeatable flag.
type stringList struct{ p *[]string }

func (s stringList) String() string {
	if s.p == nil {
		return ""
	}
	return strings.Join(*s.p, ",")
}

func (s stringList) Set(v string) error { *s.p = append(*s.p, v); return nil }

// flagKeys maps each flag name to its config-file key.
var flagKeys = map[string]string{
	"H": "hosts", "host": "hosts", "data-root": "data-root", "exec-root": "exec-root",
	"plugin-exec-root": "plugin-exec-root", "G": "group", "group": "group", "log-level": "log-level", "l": "log-level",
	"insecure-registry": "insecure-registries", "authorization-plugin": "authorization-plugins",
	"tls": "tls", "tlsverify": "tlsverify", "tlscacert": "tlscacert", "tlscert": "tlscert", "tlskey": "tlskey",
	"insecure-tcp": "insecure-tcp",
	"live-restore": "live-restore", "runc": "runc", "certs-dir": "certs-dir",
	"metrics-addr": "metrics-addr",
	// Fronting an engine (server/upstream, manager/legacy).
	"upstream": "upstream", "legacy-discovery": "legacy-discovery", "legacy-plugin-dir": "legacy-plugin-dir",
}

// parseOptions reads flags and the config file. As in dockerd, a setting
// given both as a flag and in the file is an error, and unknown file keys
// are errors.
func parseOptions(args []string) (options, bool, error) {
	o := defaults()
	fs := flag.NewFlagSet("pluginsd", flag.ContinueOnError)
	fs.Var(stringList{&o.Hosts}, "H", "shorthand for --host")
	fs.Var(stringList{&o.Hosts}, "host", "`address` to serve the API on: unix://PATH or tcp://HOST:PORT (repeatable; default unix:///run/pluginsd/pluginsd.sock)")
	fs.StringVar(&o.DataRoot, "data-root", o.DataRoot, "`dir` for plugin records, rootfs and blobs")
	fs.StringVar(&o.ExecRoot, "exec-root", o.ExecRoot, "`dir` for runtime state")
	fs.StringVar(&o.PluginExecRoot, "plugin-exec-root", o.PluginExecRoot, "`dir` where plugin sockets appear (<dir>/<id>/<socket>)")
	fs.StringVar(&o.Group, "G", o.Group, "shorthand for --group")
	fs.StringVar(&o.Group, "group", o.Group, "`group` given access to unix sockets (if it exists)")
	fs.StringVar(&o.LogLevel, "l", o.LogLevel, "shorthand for --log-level")
	fs.StringVar(&o.LogLevel, "log-level", o.LogLevel, "`level`: debug, info, warn, error, fatal")
	fs.Var(stringList{&o.InsecureRegistries}, "insecure-registry", "`host[:port]` of a registry reached over plain HTTP (repeatable)")
	fs.Var(stringList{&o.AuthorizationPlugins}, "authorization-plugin", "`plugin` in the authorization chain (repeatable)")
	fs.BoolVar(&o.TLS, "tls", false, "serve TCP with TLS (implied by --tlsverify)")
	fs.BoolVar(&o.TLSVerify, "tlsverify", false, "serve TCP with TLS and require client certificates signed by --tlscacert")
	fs.StringVar(&o.TLSCACert, "tlscacert", "", "`file`: CA of trusted client certificates")
	fs.StringVar(&o.TLSCert, "tlscert", "", "`file`: server certificate")
	fs.StringVar(&o.TLSKey, "tlskey", "", "`file`: server key")
	fs.BoolVar(&o.InsecureTCP, "insecure-tcp", false, "allow plain TCP (no TLS) on addresses other than loopback: whoever reaches it is root on this host")
	fs.BoolVar(&o.LiveRestore, "live-restore", o.LiveRestore, "keep plugins running while pluginsd restarts (false: stop them at shutdown and re-enable them at start, like dockerd)")
	fs.StringVar(&o.CertsDir, "certs-dir", "/etc/docker/certs.d", "`dir` of per-registry TLS files: <dir>/<host[:port]>/{ca.crt,client.cert,client.key}")
	fs.StringVar(&o.Runc, "runc", o.Runc, "`path` of the runc binary that runs plugins")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", "", "`host:port` to serve Prometheus metrics on (/metrics); empty: off")
	fs.StringVar(&o.Upstream, "upstream", "", "`address` of an Engine API to front: unix:///PATH or tcp://HOST:PORT; what pluginsd does not serve is proxied to it")
	fs.BoolVar(&o.LegacyDiscovery, "legacy-discovery", false, "publish each enabled plugin's socket as <legacy-plugin-dir>/<name>.sock, where engines without managed plugins look")
	fs.StringVar(&o.LegacyPluginDir, "legacy-plugin-dir", o.LegacyPluginDir, "`dir` of --legacy-discovery's links")
	configFile := fs.String("config-file", defaultConfigFile, "`file`: JSON settings with the flags' names as keys")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return o, false, err
	}
	if fs.NArg() > 0 {
		return o, false, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if *showVersion {
		return o, true, nil
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) {
		if k, ok := flagKeys[f.Name]; ok {
			set[k] = true
		}
	})
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config-file" })
	if err := mergeConfigFile(&o, *configFile, explicit, set); err != nil {
		return o, false, err
	}
	if len(o.Hosts) == 0 {
		o.Hosts = []string{"unix:///run/pluginsd/pluginsd.sock"}
	}
	return o, false, nil
}

// mergeConfigFile applies the config file's settings to o. A missing default
// file is fine; a missing explicit one is not.
func mergeConfigFile(o *options, path string, explicit bool, fromFlags map[string]bool) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return nil
	}
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(b, &keys); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	var conflicts []string
	for k := range keys {
		if fromFlags[k] {
			conflicts = append(conflicts, k)
		}
	}
	if len(conflicts) > 0 {
		sort.Strings(conflicts)
		return fmt.Errorf("config file %s: these settings are given both as a flag and in the file: %s", path, strings.Join(conflicts, ", "))
	}
	known := slices.Collect(func(yield func(string) bool) {
		for _, v := range flagKeys {
			if !yield(v) {
				return
			}
		}
	})
	for k := range keys {
		if !slices.Contains(known, k) {
			return fmt.Errorf("config file %s: unknown setting %q", path, k)
		}
	}
	// Decode over the flag values: only keys present in the file change.
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(o); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}
