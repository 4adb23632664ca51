package main

import (
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/pluginsd/pluginsd/manager"
	"github.com/pluginsd/pluginsd/manager/legacy"
	"github.com/pluginsd/pluginsd/server/upstream"
)

// newUpstream is the proxy to the engine of --upstream, or nil without one.
// The engine need not be up yet: it is dialled per request.
func newUpstream(o options) (*upstream.Proxy, error) {
	if o.Upstream == "" {
		return nil, nil
	}
	t, err := upstream.Parse(o.Upstream)
	if err != nil {
		return nil, fmt.Errorf("--upstream: %w", err)
	}
	logrus.WithField("upstream", t.String()).Info("fronting an engine: requests outside /plugins are proxied to it")
	return upstream.New(t), nil
}

// legacyDiscovery is the manager's Discovery for --legacy-discovery (links
// in --legacy-plugin-dir to the sockets under --plugin-exec-root), or nil.
func legacyDiscovery(o options) (manager.Discovery, error) {
	if !o.LegacyDiscovery {
		return nil, nil
	}
	l, err := legacy.New(o.LegacyPluginDir, o.PluginExecRoot)
	if err != nil {
		return nil, fmt.Errorf("--legacy-discovery: %w", err)
	}
	return l, nil
}
