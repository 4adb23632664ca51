// Command pluginsd serves the Docker Engine API's managed-plugin surface
// (/plugins/*) so that the stock `docker plugin` CLI and the Go SDK clients
// work against it.
//
// This file is the composition root: it is the only place that knows how the
// parts are built and in which order they stop.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	goruntime "runtime"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/pluginsd/pluginsd/distribution"
	"github.com/pluginsd/pluginsd/handlers"
	"github.com/pluginsd/pluginsd/manager"
	"github.com/pluginsd/pluginsd/manager/runtime"
	"github.com/pluginsd/pluginsd/server"
)

// Set by the Makefile through -ldflags -X.
var (
	version   = "0.1.0-dev"
	gitCommit = ""
	buildTime = ""
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "pluginsd: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	o, showVersion, err := parseOptions(args)
	if err != nil {
		return err
	}
	if showVersion {
		fmt.Printf("pluginsd version %s, API %s\n", version, "1.57")
		return nil
	}
	lvl, err := logrus.ParseLevel(o.LogLevel)
	if err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	logrus.SetLevel(lvl)
	logrus.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, TimestampFormat: time.RFC3339Nano})
	tc, err := tlsConfig(o)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ms, err := listenMetrics(ctx, o.MetricsAddr)
	if err != nil {
		return err
	}
	defer ms.close(context.Background())

	rt, err := newRuntime(o)
	if err != nil {
		return err
	}
	reg, err := distribution.New(distribution.Options{
		InsecureRegistries: o.InsecureRegistries,
		CertsDir:           o.CertsDir,
		UserAgent:          fmt.Sprintf("pluginsd/%s go/%s os/%s arch/%s", version, goruntime.Version(), goruntime.GOOS, goruntime.GOARCH),
	})
	if err != nil {
		return err
	}
	events := manager.NewEventBus(manager.EventBusConfig{})
	mcfg := manager.Config{DataRoot: o.DataRoot, Version: version, LiveRestore: o.LiveRestore, Registry: reg, Events: events}
	if rt != nil {
		mcfg.Runtime = rt
	}
	mcfg.Protected = protectAuthz(o)
	if mcfg.Discovery, err = legacyDiscovery(o); err != nil {
		return err
	}
	up, err := newUpstream(o)
	if err != nil {
		return err
	}
	mgr, err := manager.New(mcfg)
	if err != nil {
		return err
	}
	authzMW, err := authorization(ctx, o, mgr)
	if err != nil {
		_ = mgr.Close(context.Background())
		return err
	}
	srv := server.New(server.Config{Info: handlers.Info{
		Version: version, GitCommit: gitCommit, BuildTime: buildTime, KernelVersion: kernelVersion(),
	}, Events: events, Metrics: ms.start(mgr), Authorization: authzMW, Upstream: up}, mgr)

	var listeners []net.Listener
	for _, h := range o.Hosts {
		l, err := server.Listen(ctx, h, server.ListenOptions{Group: o.Group, TLS: tc, InsecureTCP: o.InsecureTCP})
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			_ = mgr.Close(context.Background())
			return fmt.Errorf("listen on %s: %w", h, err)
		}
		listeners = append(listeners, l)
	}
	var wg sync.WaitGroup
	errc := make(chan error, len(listeners))
	for i, l := range listeners {
		logrus.WithField("host", o.Hosts[i]).Info("API listening")
		wg.Go(func() { errc <- srv.Serve(l) })
	}
	logrus.WithFields(logrus.Fields{"version": version, "data-root": o.DataRoot}).Info("pluginsd started")

	var serveErr error
	select {
	case <-ctx.Done():
		logrus.Info("shutting down")
	case serveErr = <-errc:
		logrus.WithError(serveErr).Error("listener failed; shutting down")
	}
	stop()
	// Reverse order of construction: stop taking requests (letting those in
	// flight finish), then stop the manager, then the runtime. Each step has
	// a budget of its own: a client that holds the HTTP shutdown to its end
	// (a stream it does not read) must not leave the manager and the
	// runtime an expired context, and so plugins unstopped.
	events.Close() // ends event streams, which would hold Shutdown up
	shutdownStep("HTTP shutdown", httpShutdownGrace, srv.Shutdown)
	wg.Wait()
	shutdownStep("manager shutdown", managerShutdownGrace, mgr.Close)
	if rt != nil {
		shutdownStep("runtime shutdown", runtimeShutdownGrace, rt.Close)
	}
	logrus.Info("pluginsd stopped")
	return serveErr
}

// Shutdown budgets, one per step (see contrib/systemd/pluginsd.service's
// TimeoutStopSec, which covers their sum).
const (
	// httpShutdownGrace lets requests in flight (an install, say) finish.
	httpShutdownGrace = 15 * time.Second
	// managerShutdownGrace covers stopping every plugin without
	// live-restore: SIGTERM, then SIGKILL 10 s later.
	managerShutdownGrace = 15 * time.Second
	// runtimeShutdownGrace is for the runtime's watchers to return.
	runtimeShutdownGrace = 5 * time.Second
)

// shutdownStep runs one step of the shutdown with a budget of its own and
// logs its failure.
func shutdownStep(what string, budget time.Duration, step func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	if err := step(ctx); err != nil {
		logrus.WithError(err).Warn(what)
	}
}

// newRuntime builds the runc runtime. Without runc, pluginsd still serves
// everything but enable, which then says what is missing.
func newRuntime(o options) (*runtime.Runtime, error) {
	if _, err := exec.LookPath(o.Runc); err != nil {
		logrus.WithField("runc", o.Runc).Warn("runc not found: plugins cannot be enabled (install the runc package)")
		return nil, nil //nolint:nilerr // no runc is not fatal: pluginsd runs without a runtime

	}
	return runtime.New(runtime.Config{
		Runc:         o.Runc,
		StateDir:     filepath.Join(o.ExecRoot, "runc"),
		BundleRoot:   filepath.Join(o.ExecRoot, "bundles"),
		SocketRoot:   o.PluginExecRoot,
		LogRoot:      filepath.Join(o.DataRoot, "logs"),
		CgroupParent: "/pluginsd",
		Logger:       logrus.WithField("component", "plugin"),
	})
}

func kernelVersion() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}
