package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/sirupsen/logrus"

	"github.com/pluginsd/pluginsd/manager"
	"github.com/pluginsd/pluginsd/server"
	"github.com/pluginsd/pluginsd/server/authz"
)

// authzReadyTimeout bounds the wait at start-up for the chain's plugins,
// which the manager restores (starts, or adopts) in the background.
const authzReadyTimeout = 60 * time.Second

// tlsConfig is the TLS of tcp hosts (--tls, --tlsverify, --tlscacert,
// --tlscert, --tlskey), or nil without TLS.
func tlsConfig(o options) (*tls.Config, error) {
	return server.TLSOptions{
		TLS: o.TLS, Verify: o.TLSVerify, CACert: o.TLSCACert, Cert: o.TLSCert, Key: o.TLSKey,
	}.Config()
}

// protectAuthz is the manager's Protected hook: the plugins of the
// authorization chain cannot be disabled or force-removed.
func protectAuthz(o options) func(*manager.Plugin) error {
	if len(o.AuthorizationPlugins) == 0 {
		return nil
	}
	return manager.ProtectAuthz(o.AuthorizationPlugins)
}

// authorization builds the AuthZ chain of --authorization-plugin, once the
// manager has restored the plugins: each must be installed, enabled and an
// AuthZ plugin, and is waited for (up to authzReadyTimeout) until it runs.
// Like dockerd, pluginsd does not start without the chain it was asked
// for. It returns nil when no plugin is configured.
func authorization(ctx context.Context, o options, mgr *manager.Manager) (echo.MiddlewareFunc, error) {
	if len(o.AuthorizationPlugins) == 0 {
		return nil, nil
	}
	src := authz.SourceFunc(mgr.AuthzPlugin)
	ctx, cancel := context.WithTimeout(ctx, authzReadyTimeout)
	defer cancel()
	chain, err := authz.WaitReady(ctx, src, o.AuthorizationPlugins)
	if err != nil {
		return nil, fmt.Errorf("--authorization-plugin: %w", err)
	}
	logrus.WithField("plugins", chain).Info("authorization chain ready")
	return authz.Config{Plugins: chain}.ToMiddleware(src)
}
